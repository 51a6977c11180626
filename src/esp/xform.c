/* xform.c — ESP transforms through OpenSSL 3: AEAD (AES-GCM, ChaCha20-Poly1305), AES-CBC, AES-CTR,
 * 3DES-CBC and NULL, with HMAC integrity. Contexts are keyed once; per packet only the IV changes. */
#include "esp/xform.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xform_info(enum esp_enc_alg enc, enum esp_integ_alg integ, struct xform_info *xi)
{
	static const unsigned icv[ESP_INTEG_MAX] = {
		[ESP_INTEG_NONE] = 0,
		[ESP_INTEG_HMAC_MD5_96] = 12,
		[ESP_INTEG_HMAC_SHA1_96] = 12,
		[ESP_INTEG_HMAC_SHA2_256_128] = 16,
		[ESP_INTEG_HMAC_SHA2_384_192] = 24,
		[ESP_INTEG_HMAC_SHA2_512_256] = 32,
	};
	if ((unsigned)integ >= ESP_INTEG_MAX)
		return -1;
	memset(xi, 0, sizeof(*xi));
	switch (enc) {
	case ESP_ENC_AES_GCM_16:
	case ESP_ENC_CHACHA20_POLY1305:
		if (integ != ESP_INTEG_NONE)
			return -1;
		*xi = (struct xform_info){.iv_len = 8, .block = 4, .icv_len = 16, .aead = true};
		return 0;
	case ESP_ENC_AES_CBC:
		xi->iv_len = 16, xi->block = 16;
		break;
	case ESP_ENC_AES_CTR:
		xi->iv_len = 8, xi->block = 4;
		break;
	case ESP_ENC_3DES_CBC:
		xi->iv_len = 8, xi->block = 8;
		break;
	case ESP_ENC_NULL:
		xi->iv_len = 0, xi->block = 4;
		break;
	default:
		return -1;
	}
	if (integ == ESP_INTEG_NONE) /* RFC 4303: confidentiality-only ESP is not offered */
		return -1;
	xi->icv_len = icv[integ];
	return 0;
}

static const char *digest_name(enum esp_integ_alg a, unsigned *key_len)
{
	switch (a) {
	case ESP_INTEG_HMAC_MD5_96: *key_len = 16; return "MD5";
	case ESP_INTEG_HMAC_SHA1_96: *key_len = 20; return "SHA1";
	case ESP_INTEG_HMAC_SHA2_256_128: *key_len = 32; return "SHA2-256";
	case ESP_INTEG_HMAC_SHA2_384_192: *key_len = 48; return "SHA2-384";
	case ESP_INTEG_HMAC_SHA2_512_256: *key_len = 64; return "SHA2-512";
	default: *key_len = 0; return NULL;
	}
}

int xform_key_lens(enum esp_enc_alg enc, unsigned enc_bits, enum esp_integ_alg integ,
		   unsigned *enc_len, unsigned *integ_len)
{
	struct xform_info xi;
	if (xform_info(enc, integ, &xi) != 0)
		return -1;
	switch (enc) {
	case ESP_ENC_AES_GCM_16:
	case ESP_ENC_AES_CTR:
	case ESP_ENC_AES_CBC:
		if (enc_bits != 128 && enc_bits != 192 && enc_bits != 256)
			return -1;
		*enc_len = enc_bits / 8 + (enc == ESP_ENC_AES_CBC ? 0 : 4);
		break;
	case ESP_ENC_CHACHA20_POLY1305: *enc_len = 36; break;
	case ESP_ENC_3DES_CBC: *enc_len = 24; break;
	case ESP_ENC_NULL: *enc_len = 0; break;
	default: return -1;
	}
	if (!digest_name(integ, integ_len))
		*integ_len = 0;
	return 0;
}

static const EVP_CIPHER *cipher_for(enum esp_enc_alg enc, unsigned key_len)
{
	switch (enc) {
	case ESP_ENC_AES_GCM_16:
		return key_len == 16 ? EVP_aes_128_gcm() : key_len == 24 ? EVP_aes_192_gcm() : EVP_aes_256_gcm();
	case ESP_ENC_CHACHA20_POLY1305: return EVP_chacha20_poly1305();
	case ESP_ENC_AES_CBC:
		return key_len == 16 ? EVP_aes_128_cbc() : key_len == 24 ? EVP_aes_192_cbc() : EVP_aes_256_cbc();
	case ESP_ENC_AES_CTR:
		return key_len == 16 ? EVP_aes_128_ctr() : key_len == 24 ? EVP_aes_192_ctr() : EVP_aes_256_ctr();
	case ESP_ENC_3DES_CBC: return EVP_des_ede3_cbc();
	default: return NULL;
	}
}

static bool enc_has_salt(enum esp_enc_alg enc)
{
	return enc == ESP_ENC_AES_GCM_16 || enc == ESP_ENC_CHACHA20_POLY1305 || enc == ESP_ENC_AES_CTR;
}

struct esp_xform *xform_new(const struct esp_sa *sa, char *err, size_t errlen)
{
	struct esp_xform *xf = calloc(1, sizeof(*xf));
	if (!xf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	xf->rnd_pos = sizeof(xf->rnd);
	if (sa->enc != ESP_ENC_NULL) {
		unsigned key_len = sa->enc_key_len - (enc_has_salt(sa->enc) ? 4 : 0);
		const EVP_CIPHER *c = cipher_for(sa->enc, key_len);
		int encrypt = sa->dir == ESP_DIR_OUT;
		if (enc_has_salt(sa->enc))
			memcpy(xf->salt, sa->enc_key + key_len, 4);
		xf->cipher = EVP_CIPHER_CTX_new();
		if (!c || !xf->cipher || !EVP_CipherInit_ex(xf->cipher, c, NULL, sa->enc_key, NULL, encrypt)) {
			snprintf(err, errlen, "cannot set up the %s cipher", esp_enc_name(sa->enc, key_len * 8));
			goto fail;
		}
		EVP_CIPHER_CTX_set_padding(xf->cipher, 0);
	}
	if (sa->integ != ESP_INTEG_NONE) {
		unsigned klen;
		const char *md = digest_name(sa->integ, &klen);
		EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0),
			OSSL_PARAM_construct_end(),
		};
		xf->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
		EVP_MAC_free(hmac);
		if (!xf->mac || !EVP_MAC_init(xf->mac, sa->integ_key, sa->integ_key_len, params)) {
			snprintf(err, errlen, "cannot set up HMAC-%s", md);
			goto fail;
		}
	}
	return xf;
fail:
	xform_free(xf);
	return NULL;
}

int xform_check(const struct esp_sa *sa, char *err, size_t errlen)
{
	unsigned klen;
	if (sa->enc != ESP_ENC_NULL &&
	    !cipher_for(sa->enc, sa->enc_key_len - (enc_has_salt(sa->enc) ? 4 : 0))) {
		snprintf(err, errlen, "no %s cipher for a %u-byte key", esp_enc_name(sa->enc, 0), sa->enc_key_len);
		return -1;
	}
	if (sa->integ != ESP_INTEG_NONE && !digest_name(sa->integ, &klen)) {
		snprintf(err, errlen, "no digest for %s", esp_integ_name(sa->integ));
		return -1;
	}
	return 0;
}

void xform_free(struct esp_xform *xf)
{
	if (!xf)
		return;
	EVP_CIPHER_CTX_free(xf->cipher); /* cleanses the key schedule */
	EVP_MAC_CTX_free(xf->mac);
	OPENSSL_cleanse(xf, sizeof(*xf));
	free(xf);
}

int xform_make_iv(struct esp_xform *xf, const struct esp_sa *sa, uint64_t seq, uint8_t *iv,
		  unsigned iv_len)
{
	if (iv_len == 0)
		return 0;
	if (sa->enc == ESP_ENC_AES_CBC || sa->enc == ESP_ENC_3DES_CBC) {
		/* CBC needs unpredictable IVs: take them from the DRBG in batches */
		if (xf->rnd_pos + iv_len > sizeof(xf->rnd)) {
			if (RAND_bytes(xf->rnd, sizeof(xf->rnd)) != 1)
				return -1;
			xf->rnd_pos = 0;
		}
		memcpy(iv, xf->rnd + xf->rnd_pos, iv_len);
		xf->rnd_pos += iv_len;
		return 0;
	}
	/* GCM, ChaCha20-Poly1305 and CTR need unique IVs: the 64-bit sequence number is one within the
	 * SA; the per-instance salt keeps a restarted static SA from repeating them */
	uint64_t v = seq ^ sa->iv_salt;
	for (unsigned i = 0; i < 8; i++)
		iv[i] = (uint8_t)(v >> (56 - 8 * i));
	return 0;
}

/* The per-packet IV as the cipher wants it. */
static void cipher_iv(const struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *iv,
		      uint8_t out[16])
{
	switch (sa->enc) {
	case ESP_ENC_AES_GCM_16:
	case ESP_ENC_CHACHA20_POLY1305: /* salt || IV (RFC 4106 4, RFC 7634 2) */
		memcpy(out, xf->salt, 4);
		memcpy(out + 4, iv, 8);
		break;
	case ESP_ENC_AES_CTR: /* nonce || IV || block counter 1 (RFC 3686 4) */
		memcpy(out, xf->salt, 4);
		memcpy(out + 4, iv, 8);
		out[12] = out[13] = out[14] = 0;
		out[15] = 1;
		break;
	case ESP_ENC_AES_CBC: memcpy(out, iv, 16); break;
	case ESP_ENC_3DES_CBC: memcpy(out, iv, 8); break;
	default: break;
	}
}

static int cipher_run(struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *aad,
		      size_t aad_len, const uint8_t *iv, uint8_t *data, size_t len, uint8_t *tag_out,
		      const uint8_t *tag_in)
{
	uint8_t civ[16] = {0}; /* every cipher fills it; zero keeps -O3 from seeing a path that does not */
	int n, fin;
	if (sa->enc == ESP_ENC_NULL)
		return 0;
	cipher_iv(xf, sa, iv, civ);
	if (!EVP_CipherInit_ex(xf->cipher, NULL, NULL, NULL, civ, -1))
		return -1;
	if (tag_in && !EVP_CIPHER_CTX_ctrl(xf->cipher, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag_in))
		return -1;
	if (aad_len && !EVP_CipherUpdate(xf->cipher, NULL, &n, aad, (int)aad_len))
		return -1;
	if (len && !EVP_CipherUpdate(xf->cipher, data, &n, data, (int)len))
		return -1;
	if (!EVP_CipherFinal_ex(xf->cipher, data + len, &fin))
		return -1; /* for AEAD decryption: the tag did not verify (constant-time compare) */
	if (tag_out && !EVP_CIPHER_CTX_ctrl(xf->cipher, EVP_CTRL_AEAD_GET_TAG, 16, tag_out))
		return -1;
	return 0;
}

int xform_encrypt(struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *aad, size_t aad_len,
		  const uint8_t *iv, uint8_t *data, size_t len, uint8_t *icv)
{
	bool aead = sa->enc == ESP_ENC_AES_GCM_16 || sa->enc == ESP_ENC_CHACHA20_POLY1305;
	return cipher_run(xf, sa, aead ? aad : NULL, aead ? aad_len : 0, iv, data, len,
			  aead ? icv : NULL, NULL);
}

int xform_decrypt(struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *aad, size_t aad_len,
		  const uint8_t *iv, uint8_t *data, size_t len, const uint8_t *icv)
{
	bool aead = sa->enc == ESP_ENC_AES_GCM_16 || sa->enc == ESP_ENC_CHACHA20_POLY1305;
	return cipher_run(xf, sa, aead ? aad : NULL, aead ? aad_len : 0, iv, data, len, NULL,
			  aead ? icv : NULL);
}

int xform_mac(struct esp_xform *xf, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
	      uint8_t *out, unsigned icv_len)
{
	uint8_t full[EVP_MAX_MD_SIZE];
	size_t outl;
	/* a NULL key re-initialises the context with the key it already has */
	if (!EVP_MAC_init(xf->mac, NULL, 0, NULL) || !EVP_MAC_update(xf->mac, a, alen) ||
	    (blen && !EVP_MAC_update(xf->mac, b, blen)) ||
	    !EVP_MAC_final(xf->mac, full, &outl, sizeof(full)) || outl < icv_len)
		return -1;
	memcpy(out, full, icv_len);
	OPENSSL_cleanse(full, sizeof(full));
	return 0;
}
