/* ike_sk.c — protecting IKE messages with the SK payload, over OpenSSL EVP. */
#include "ike/ike_sk.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

struct layout {
	const EVP_CIPHER *cipher;
	const char *digest;
	size_t key_len, salt_len, iv_len, block, icv_len;
	bool aead;
};

static int layout_of(const struct ike_sk_suite *s, struct layout *l)
{
	memset(l, 0, sizeof(*l));
	size_t kb = s->encr_bits ? s->encr_bits / 8u : 16;
	switch (s->encr) {
	case IKE_ENCR_AES_CBC:
		l->cipher = kb == 16 ? EVP_aes_128_cbc() : kb == 24 ? EVP_aes_192_cbc() : kb == 32 ? EVP_aes_256_cbc() : NULL;
		l->key_len = kb, l->iv_len = 16, l->block = 16;
		break;
	case IKE_ENCR_3DES:
		l->cipher = EVP_des_ede3_cbc(), l->key_len = 24, l->iv_len = 8, l->block = 8;
		break;
	case IKE_ENCR_AES_GCM_16:
		l->cipher = kb == 16 ? EVP_aes_128_gcm() : kb == 24 ? EVP_aes_192_gcm() : kb == 32 ? EVP_aes_256_gcm() : NULL;
		l->key_len = kb, l->salt_len = 4, l->iv_len = 8, l->block = 1, l->icv_len = 16, l->aead = true;
		break;
	case IKE_ENCR_CHACHA20_POLY1305:
		l->cipher = EVP_chacha20_poly1305(), l->key_len = 32, l->salt_len = 4, l->iv_len = 8, l->block = 1;
		l->icv_len = 16, l->aead = true;
		break;
	default:
		return -1;
	}
	if (!l->cipher)
		return -1;
	if (l->aead)
		return s->integ == IKE_INTEG_NONE ? 0 : -1;
	switch (s->integ) {
	case IKE_INTEG_HMAC_SHA1_96: l->digest = "SHA1", l->icv_len = 12; break;
	case IKE_INTEG_HMAC_SHA2_256_128: l->digest = "SHA2-256", l->icv_len = 16; break;
	case IKE_INTEG_HMAC_SHA2_384_192: l->digest = "SHA2-384", l->icv_len = 24; break;
	case IKE_INTEG_HMAC_SHA2_512_256: l->digest = "SHA2-512", l->icv_len = 32; break;
	default: return -1;
	}
	return 0;
}

int ike_sk_key_lens(const struct ike_sk_suite *s, size_t *encr_len, size_t *integ_len)
{
	struct layout l;
	if (layout_of(s, &l))
		return -1;
	*encr_len = l.key_len + l.salt_len;
	*integ_len = !l.digest ? 0 : !strcmp(l.digest, "SHA1") ? 20 : !strcmp(l.digest, "SHA2-256") ? 32
					      : !strcmp(l.digest, "SHA2-384") ? 48 : 64;
	return 0;
}

static int hmac(const char *digest, const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
		uint8_t *out, size_t out_len)
{
	uint8_t full[EVP_MAX_MD_SIZE];
	size_t fl = 0;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
			  OSSL_PARAM_construct_end()};
	int ok = ctx && EVP_MAC_init(ctx, key, key_len, p) && EVP_MAC_update(ctx, data, len) &&
		 EVP_MAC_final(ctx, full, &fl, sizeof(full)) && fl >= out_len;
	if (ok)
		memcpy(out, full, out_len);
	OPENSSL_cleanse(full, sizeof(full));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return ok ? 0 : -1;
}

/* En- or decrypt data in place; AEAD also authenticates aad and writes or checks the tag. */
static int crypt(const struct layout *l, const uint8_t *ke, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
		 uint8_t *data, size_t len, uint8_t *tag, int enc)
{
	uint8_t nonce[16];
	int n, ok = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (l->aead) {
		memcpy(nonce, ke + l->key_len, 4); /* salt || IV */
		memcpy(nonce + 4, iv, 8);
	} else {
		memcpy(nonce, iv, l->iv_len);
	}
	if (!ctx || !EVP_CipherInit_ex(ctx, l->cipher, NULL, ke, nonce, enc))
		goto out;
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	if (l->aead && !enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag))
		goto out;
	if (l->aead && !EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len))
		goto out;
	if (len && !EVP_CipherUpdate(ctx, data, &n, data, (int)len))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, data + len, &n))
		goto out;
	if (l->aead && enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag))
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

int ike_sk_open(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, uint8_t *msg, size_t msg_len,
		const struct ike_payload *sk, uint8_t *first, const uint8_t **inner, size_t *inner_len)
{
	struct layout l;
	if (layout_of(s, &l) || sk->type != IKE_PL_SK)
		return -1;
	size_t body_off = (size_t)(sk->body - msg);
	if (body_off < IKE_HDR_LEN + IKE_GENERIC_HDR_LEN || body_off + sk->len != msg_len ||
	    sk->len < l.iv_len + l.icv_len + 1)
		return -1;
	uint8_t *iv = msg + body_off, *c = iv + l.iv_len;
	size_t clen = sk->len - l.iv_len - l.icv_len;
	uint8_t *icv = c + clen;
	if (clen % l.block)
		return -1;
	if (l.aead) {
		/* AAD: the IKE header and the SK payload's generic header (RFC 5282 5.1) */
		if (crypt(&l, ke, iv, msg, body_off, c, clen, icv, 0))
			return -1;
	} else {
		uint8_t mac[32];
		/* the ICV covers the message from the IKE header to the end of the ciphertext */
		if (hmac(l.digest, ka, l.icv_len == 12 ? 20 : l.icv_len * 2, msg, body_off + l.iv_len + clen, mac, l.icv_len) ||
		    CRYPTO_memcmp(mac, icv, l.icv_len) != 0)
			return -1;
		if (crypt(&l, ke, iv, NULL, 0, c, clen, NULL, 0))
			return -1;
	}
	uint8_t pad = c[clen - 1];
	if ((size_t)pad + 1 > clen)
		return -1;
	*first = msg[body_off - IKE_GENERIC_HDR_LEN];
	*inner = c;
	*inner_len = clen - pad - 1;
	return 0;
}

size_t ike_sk_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		   uint8_t first, const uint8_t *inner, size_t inner_len, uint8_t *out, size_t cap)
{
	struct layout l;
	if (layout_of(s, &l))
		return 0;
	size_t pad = (l.block - (inner_len + 1) % l.block) % l.block;
	size_t clen = inner_len + pad + 1;
	size_t total = IKE_HDR_LEN + IKE_GENERIC_HDR_LEN + l.iv_len + clen + l.icv_len;
	if (total > cap || total > IKE_MSG_MAX)
		return 0;
	struct wbuf w = wbuf_init(out, cap);
	wbuf_u64(&w, h->spi_i);
	wbuf_u64(&w, h->spi_r);
	wbuf_u8(&w, IKE_PL_SK);
	wbuf_u8(&w, IKE_VERSION);
	wbuf_u8(&w, h->exchange);
	wbuf_u8(&w, h->flags);
	wbuf_u32(&w, h->msg_id);
	wbuf_u32(&w, (uint32_t)total);
	wbuf_u8(&w, first);
	wbuf_u8(&w, 0);
	wbuf_u16(&w, (uint16_t)(total - IKE_HDR_LEN));
	uint8_t *iv = wbuf_reserve(&w, l.iv_len);
	uint8_t *c = wbuf_reserve(&w, clen);
	uint8_t *icv = wbuf_reserve(&w, l.icv_len);
	if (w.overflow || RAND_bytes(iv, (int)l.iv_len) != 1)
		return 0;
	memcpy(c, inner, inner_len);
	memset(c + inner_len, 0, pad);
	c[clen - 1] = (uint8_t)pad;
	size_t aad_len = IKE_HDR_LEN + IKE_GENERIC_HDR_LEN;
	if (l.aead)
		return crypt(&l, ke, iv, out, aad_len, c, clen, icv, 1) ? 0 : total;
	if (crypt(&l, ke, iv, NULL, 0, c, clen, NULL, 1) ||
	    hmac(l.digest, ka, l.icv_len == 12 ? 20 : l.icv_len * 2, out, aad_len + l.iv_len + clen, icv, l.icv_len))
		return 0;
	return total;
}
