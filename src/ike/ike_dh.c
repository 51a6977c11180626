/* ike_dh.c — IKEv2 key exchange groups over OpenSSL 3 EVP_PKEY. */
#include "ike/ike_dh.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/dh.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_wire.h"

struct ike_dh {
	uint16_t group;
	EVP_PKEY *key;
};

enum kind { K_NONE, K_X25519, K_EC, K_MODP };

static enum kind group_kind(uint16_t g, const char **name, size_t *len)
{
	switch (g) {
	case IKE_DH_X25519: *name = "X25519", *len = 32; return K_X25519;
	case IKE_DH_ECP256: *name = "P-256", *len = 64; return K_EC;
	case IKE_DH_ECP384: *name = "P-384", *len = 96; return K_EC;
	case IKE_DH_MODP2048: *name = "modp_2048", *len = 256; return K_MODP;
	case IKE_DH_MODP3072: *name = "modp_3072", *len = 384; return K_MODP;
	case IKE_DH_MODP4096: *name = "modp_4096", *len = 512; return K_MODP;
	default: *name = NULL, *len = 0; return K_NONE;
	}
}

size_t ike_dh_public_len(uint16_t group)
{
	const char *n;
	size_t l;
	group_kind(group, &n, &l);
	return l;
}

uint16_t ike_dh_group(const struct ike_dh *dh) { return dh->group; }

struct ike_dh *ike_dh_new(uint16_t group)
{
	const char *name;
	size_t len;
	enum kind k = group_kind(group, &name, &len);
	EVP_PKEY *key = NULL;
	if (k == K_X25519) {
		key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	} else if (k == K_EC) {
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", name);
	} else if (k == K_MODP) {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
		OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
				  OSSL_PARAM_construct_end()};
		if (ctx && EVP_PKEY_keygen_init(ctx) > 0 && EVP_PKEY_CTX_set_params(ctx, p) > 0)
			EVP_PKEY_generate(ctx, &key);
		EVP_PKEY_CTX_free(ctx);
	}
	if (!key)
		return NULL;
	struct ike_dh *dh = calloc(1, sizeof(*dh));
	if (!dh) {
		EVP_PKEY_free(key);
		return NULL;
	}
	dh->group = group, dh->key = key;
	return dh;
}

int ike_dh_public(const struct ike_dh *dh, uint8_t *out, size_t *len)
{
	const char *name;
	size_t want;
	enum kind k = group_kind(dh->group, &name, &want);
	if (*len < want)
		return -1;
	if (k == K_X25519) {
		size_t l = want;
		if (EVP_PKEY_get_raw_public_key(dh->key, out, &l) != 1 || l != want)
			return -1;
	} else if (k == K_EC) {
		uint8_t pt[1 + 96];
		size_t l = 0;
		if (EVP_PKEY_get_octet_string_param(dh->key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &l) != 1 ||
		    l != want + 1 || pt[0] != 0x04)
			return -1;
		memcpy(out, pt + 1, want); /* RFC 5903: x || y without the 0x04 point format */
	} else {
		BIGNUM *pub = NULL;
		int ok = EVP_PKEY_get_bn_param(dh->key, OSSL_PKEY_PARAM_PUB_KEY, &pub) == 1 &&
			 BN_bn2binpad(pub, out, (int)want) == (int)want;
		BN_free(pub);
		if (!ok)
			return -1;
	}
	*len = want;
	return 0;
}

/* The peer's public value as an EVP_PKEY of our group. */
static EVP_PKEY *peer_key(const struct ike_dh *dh, const uint8_t *peer, size_t len)
{
	const char *name;
	size_t want;
	enum kind k = group_kind(dh->group, &name, &want);
	if (len != want)
		return NULL;
	if (k == K_X25519)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, len);
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, k == K_EC ? "EC" : "DH", NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	BIGNUM *bn = NULL;
	uint8_t pt[1 + 96];
	if (!ctx || !bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, name, 0))
		goto out;
	if (k == K_EC) {
		pt[0] = 0x04;
		memcpy(pt + 1, peer, len);
		if (!OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, len + 1))
			goto out;
	} else {
		bn = BN_bin2bn(peer, (int)len, NULL);
		if (!bn || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, bn))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	if (!params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key = NULL;
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

int ike_dh_shared(struct ike_dh *dh, const uint8_t *peer, size_t peer_len, uint8_t *out, size_t *out_len)
{
	const char *name;
	size_t want;
	enum kind k = group_kind(dh->group, &name, &want);
	EVP_PKEY *pk = peer_key(dh, peer, peer_len);
	EVP_PKEY_CTX *ctx = pk ? EVP_PKEY_CTX_new_from_pkey(NULL, dh->key, NULL) : NULL;
	int rc = -1;
	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0)
		goto out;
	/* check the peer's value: on the curve / in range, not a small-subgroup element */
	if (k != K_X25519) {
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		int valid = chk && EVP_PKEY_public_check(chk) == 1;
		EVP_PKEY_CTX_free(chk);
		if (!valid)
			goto out;
	}
	if (k == K_MODP && EVP_PKEY_CTX_set_dh_pad(ctx, 1) <= 0) /* g^ir padded to the modulus length */
		goto out;
	size_t l = *out_len;
	if (EVP_PKEY_derive_set_peer(ctx, pk) <= 0 || EVP_PKEY_derive(ctx, out, &l) <= 0)
		goto out;
	if (k == K_X25519) {
		/* an all-zero result means a low-order peer value (RFC 7748 6.1) */
		uint8_t acc = 0;
		for (size_t i = 0; i < l; i++)
			acc |= out[i];
		if (!acc)
			goto out;
	}
	*out_len = l;
	rc = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return rc;
}

void ike_dh_free(struct ike_dh *dh)
{
	if (!dh)
		return;
	EVP_PKEY_free(dh->key);
	free(dh);
}
