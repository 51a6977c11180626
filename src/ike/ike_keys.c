/* ike_keys.c — IKEv2 key derivation over OpenSSL HMAC. */
#include "ike/ike_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_wire.h"

static const char *prf_digest(uint16_t prf, size_t *len)
{
	switch (prf) {
	case IKE_PRF_HMAC_SHA1: *len = 20; return "SHA1";
	case IKE_PRF_HMAC_SHA2_256: *len = 32; return "SHA2-256";
	case IKE_PRF_HMAC_SHA2_384: *len = 48; return "SHA2-384";
	case IKE_PRF_HMAC_SHA2_512: *len = 64; return "SHA2-512";
	default: *len = 0; return NULL;
	}
}

size_t ike_prf_len(uint16_t prf)
{
	size_t l;
	prf_digest(prf, &l);
	return l;
}

static const char *const hmac_digests[] = {"SHA1", "SHA2-256", "SHA2-384", "SHA2-512"};
static EVP_MAC_CTX *hmac_tmpl[4];
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static EVP_MAC_CTX *hmac_fresh(const char *digest)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
			       OSSL_PARAM_construct_end()};
	EVP_MAC_free(mac); /* the context holds its own reference */
	if (ctx && !EVP_MAC_CTX_set_params(ctx, params)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static void hmac_make_templates(void)
{
	for (size_t i = 0; i < sizeof(hmac_digests) / sizeof(hmac_digests[0]); i++)
		hmac_tmpl[i] = hmac_fresh(hmac_digests[i]); /* kept for the process's life */
}

EVP_MAC_CTX *ike_hmac_new(const char *digest)
{
	pthread_once(&hmac_once, hmac_make_templates);
	for (size_t i = 0; i < sizeof(hmac_digests) / sizeof(hmac_digests[0]); i++)
		if (!strcmp(digest, hmac_digests[i]))
			return hmac_tmpl[i] ? EVP_MAC_CTX_dup(hmac_tmpl[i]) : NULL;
	return hmac_fresh(digest);
}

/* prf(key, a | b) with a context from ike_hmac_new (re-keyed here, so one serves many calls) */
static int prf_with(EVP_MAC_CTX *ctx, size_t len, const uint8_t *key, size_t key_len, const uint8_t *a,
		    size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out)
{
	/* HMAC takes an empty key; OpenSSL wants a non-NULL pointer for it */
	static const uint8_t empty[1];
	size_t outl = 0;
	return ctx && EVP_MAC_init(ctx, key_len ? key : empty, key_len, NULL) && EVP_MAC_update(ctx, a, a_len) &&
			       (!b_len || EVP_MAC_update(ctx, b, b_len)) && EVP_MAC_final(ctx, out, &outl, len) &&
			       outl == len
		       ? 0
		       : -1;
}

int ike_prf(uint16_t prf, const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
	    const uint8_t *b, size_t b_len, uint8_t *out)
{
	size_t len;
	const char *md = prf_digest(prf, &len);
	if (!md)
		return -1;
	EVP_MAC_CTX *ctx = ike_hmac_new(md);
	int rc = prf_with(ctx, len, key, key_len, a, a_len, b, b_len, out);
	EVP_MAC_CTX_free(ctx);
	return rc;
}

int ike_prf_plus(uint16_t prf, const uint8_t *key, size_t key_len, const uint8_t *seed, size_t seed_len,
		 uint8_t *out, size_t out_len)
{
	size_t hl;
	const char *md = prf_digest(prf, &hl);
	if (!md || out_len > 255 * hl)
		return -1;
	uint8_t t[64], *in = malloc(hl + seed_len + 1);
	size_t tl = 0;
	int rc = -1;
	EVP_MAC_CTX *ctx = ike_hmac_new(md);
	if (!in || !ctx)
		goto out;
	for (unsigned n = 1; out_len; n++) {
		/* T(n) = prf(K, T(n-1) | S | n) */
		memcpy(in, t, tl);
		memcpy(in + tl, seed, seed_len);
		in[tl + seed_len] = (uint8_t)n;
		if (prf_with(ctx, hl, key, key_len, in, tl + seed_len + 1, NULL, 0, t) != 0)
			goto out;
		tl = hl;
		size_t take = out_len < hl ? out_len : hl;
		memcpy(out, t, take);
		out += take, out_len -= take;
	}
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	OPENSSL_cleanse(t, sizeof(t));
	if (in)
		OPENSSL_clear_free(in, hl + seed_len + 1);
	return rc;
}

/* The seven SK_* keys from SKEYSEED (already in k->skeyseed): prf+(SKEYSEED, Ni | Nr | SPIi | SPIr). */
static int derive_from_seed(uint16_t prf, size_t seed_len, size_t integ_len, size_t encr_len, const uint8_t *ni,
			    size_t ni_len, const uint8_t *nr, size_t nr_len, uint64_t spi_i, uint64_t spi_r, struct ike_keys *k)
{
	size_t pl = ike_prf_len(prf);
	uint8_t seed[512 + 16], *keymat;
	size_t total = 3 * pl + 2 * integ_len + 2 * encr_len, s = ni_len + nr_len;
	k->prf_len = pl, k->integ_len = integ_len, k->encr_len = encr_len;
	memcpy(seed, ni, ni_len);
	memcpy(seed + ni_len, nr, nr_len);
	for (int i = 0; i < 8; i++)
		seed[s + i] = (uint8_t)(spi_i >> (56 - 8 * i)), seed[s + 8 + i] = (uint8_t)(spi_r >> (56 - 8 * i));
	keymat = malloc(total);
	if (!keymat || ike_prf_plus(prf, k->skeyseed, seed_len, seed, s + 16, keymat, total) != 0) {
		free(keymat);
		ike_keys_clear(k);
		return -1;
	}
	uint8_t *p = keymat;
	memcpy(k->sk_d, p, pl), p += pl;
	memcpy(k->sk_ai, p, integ_len), p += integ_len;
	memcpy(k->sk_ar, p, integ_len), p += integ_len;
	memcpy(k->sk_ei, p, encr_len), p += encr_len;
	memcpy(k->sk_er, p, encr_len), p += encr_len;
	memcpy(k->sk_pi, p, pl), p += pl;
	memcpy(k->sk_pr, p, pl);
	OPENSSL_clear_free(keymat, total);
	OPENSSL_cleanse(seed, sizeof(seed));
	return 0;
}

int ike_derive(uint16_t prf, size_t integ_len, size_t encr_len, const uint8_t *ni, size_t ni_len,
	       const uint8_t *nr, size_t nr_len, uint64_t spi_i, uint64_t spi_r, const uint8_t *g_ir,
	       size_t g_ir_len, struct ike_keys *k)
{
	uint8_t nonces[512];
	memset(k, 0, sizeof(*k));
	if (!ike_prf_len(prf) || integ_len > IKE_KEY_MAX || encr_len > IKE_KEY_MAX + 4 || ni_len + nr_len > 512)
		return -1;
	/* SKEYSEED = prf(Ni | Nr, g^ir): the nonces are the key */
	memcpy(nonces, ni, ni_len);
	memcpy(nonces + ni_len, nr, nr_len);
	int rc = ike_prf(prf, nonces, ni_len + nr_len, g_ir, g_ir_len, NULL, 0, k->skeyseed);
	OPENSSL_cleanse(nonces, sizeof(nonces));
	return rc ? -1 : derive_from_seed(prf, ike_prf_len(prf), integ_len, encr_len, ni, ni_len, nr, nr_len, spi_i, spi_r, k);
}

int ike_derive_rekey(uint16_t old_prf, const uint8_t *old_sk_d, uint16_t prf, size_t integ_len, size_t encr_len,
		     const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len, uint64_t spi_i, uint64_t spi_r,
		     const uint8_t *g_ir, size_t g_ir_len, struct ike_keys *k)
{
	uint8_t data[512 + 512];
	memset(k, 0, sizeof(*k));
	if (!ike_prf_len(prf) || !ike_prf_len(old_prf) || integ_len > IKE_KEY_MAX || encr_len > IKE_KEY_MAX + 4 ||
	    ni_len + nr_len > 512 || g_ir_len > 512)
		return -1;
	/* SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old IKE SA's PRF */
	memcpy(data, g_ir, g_ir_len);
	memcpy(data + g_ir_len, ni, ni_len);
	memcpy(data + g_ir_len + ni_len, nr, nr_len);
	int rc = ike_prf(old_prf, old_sk_d, ike_prf_len(old_prf), data, g_ir_len + ni_len + nr_len, NULL, 0, k->skeyseed);
	OPENSSL_cleanse(data, sizeof(data));
	if (rc)
		return -1;
	/* SKEYSEED is as long as the old PRF's output; prf+ keys the new PRF with it */
	return derive_from_seed(prf, ike_prf_len(old_prf), integ_len, encr_len, ni, ni_len, nr, nr_len, spi_i, spi_r, k);
}

void ike_keys_clear(struct ike_keys *k) { OPENSSL_cleanse(k, sizeof(*k)); }

int ike_child_keymat(uint16_t prf, const uint8_t *sk_d, const uint8_t *g_ir, size_t g_ir_len, const uint8_t *ni,
		     size_t ni_len, const uint8_t *nr, size_t nr_len, size_t encr_len, size_t integ_len,
		     uint8_t *ei, uint8_t *ai, uint8_t *er, uint8_t *ar)
{
	size_t pl = ike_prf_len(prf), seed_len = (g_ir ? g_ir_len : 0) + ni_len + nr_len;
	size_t total = 2 * (encr_len + integ_len);
	uint8_t *seed = malloc(seed_len ? seed_len : 1), *km = malloc(total ? total : 1);
	int rc = -1;
	if (!pl || !seed || !km)
		goto out;
	uint8_t *p = seed;
	if (g_ir)
		memcpy(p, g_ir, g_ir_len), p += g_ir_len;
	memcpy(p, ni, ni_len), p += ni_len;
	memcpy(p, nr, nr_len);
	if (ike_prf_plus(prf, sk_d, pl, seed, seed_len, km, total) != 0)
		goto out;
	memcpy(ei, km, encr_len);
	memcpy(ai, km + encr_len, integ_len);
	memcpy(er, km + encr_len + integ_len, encr_len);
	memcpy(ar, km + 2 * encr_len + integ_len, integ_len);
	rc = 0;
out:
	if (seed)
		OPENSSL_clear_free(seed, seed_len ? seed_len : 1);
	if (km)
		OPENSSL_clear_free(km, total ? total : 1);
	return rc;
}

uint8_t *ike_auth_octets(uint16_t prf, const uint8_t *msg, size_t msg_len, const uint8_t *nonce, size_t nonce_len,
			 const uint8_t *sk_p, const uint8_t *id, size_t id_len, size_t *len)
{
	size_t pl = ike_prf_len(prf);
	uint8_t *octets = pl ? malloc(msg_len + nonce_len + pl) : NULL;
	if (!octets)
		return NULL;
	/* the sender's first message, the peer's nonce, prf(SK_p, ID') */
	memcpy(octets, msg, msg_len);
	memcpy(octets + msg_len, nonce, nonce_len);
	if (ike_prf(prf, sk_p, pl, id, id_len, NULL, 0, octets + msg_len + nonce_len) != 0) {
		OPENSSL_clear_free(octets, msg_len + nonce_len + pl);
		return NULL;
	}
	*len = msg_len + nonce_len + pl;
	return octets;
}

int ike_auth_psk_octets(uint16_t prf, const uint8_t *psk, size_t psk_len, const uint8_t *octets, size_t len,
			uint8_t *out)
{
	static const char pad[] = "Key Pad for IKEv2";
	uint8_t key[64];
	int rc = ike_prf(prf, psk, psk_len, (const uint8_t *)pad, sizeof(pad) - 1, NULL, 0, key) == 0 &&
				 ike_prf(prf, key, ike_prf_len(prf), octets, len, NULL, 0, out) == 0
			 ? 0
			 : -1;
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int ike_auth_psk(uint16_t prf, const uint8_t *psk, size_t psk_len, const uint8_t *msg, size_t msg_len,
		 const uint8_t *nonce, size_t nonce_len, const uint8_t *sk_p, const uint8_t *id, size_t id_len,
		 uint8_t *out)
{
	size_t len;
	uint8_t *octets = ike_auth_octets(prf, msg, msg_len, nonce, nonce_len, sk_p, id, id_len, &len);
	if (!octets)
		return -1;
	int rc = ike_auth_psk_octets(prf, psk, psk_len, octets, len, out);
	OPENSSL_clear_free(octets, len);
	return rc;
}
