/* ike_sk.c — protecting IKE messages with the SK payload, over OpenSSL EVP. */
#include "ike/ike_sk.h"
#include "ike/ike_sk_internal.h"
#include "ike/ike_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

int ike_sk_layout_of(const struct ike_sk_suite *s, struct ike_sk_layout *l)
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
	/* HMAC keys are the digest's output length (RFC 4868 2.1.1; 20 for SHA-1) */
	switch (s->integ) {
	case IKE_INTEG_HMAC_SHA1_96: l->digest = "SHA1", l->icv_len = 12, l->integ_key_len = 20; break;
	case IKE_INTEG_HMAC_SHA2_256_128: l->digest = "SHA2-256", l->icv_len = 16, l->integ_key_len = 32; break;
	case IKE_INTEG_HMAC_SHA2_384_192: l->digest = "SHA2-384", l->icv_len = 24, l->integ_key_len = 48; break;
	case IKE_INTEG_HMAC_SHA2_512_256: l->digest = "SHA2-512", l->icv_len = 32, l->integ_key_len = 64; break;
	default: return -1;
	}
	return 0;
}

int ike_sk_key_lens(const struct ike_sk_suite *s, size_t *encr_len, size_t *integ_len)
{
	struct ike_sk_layout l;
	if (ike_sk_layout_of(s, &l))
		return -1;
	*encr_len = l.key_len + l.salt_len;
	*integ_len = l.integ_key_len;
	return 0;
}

size_t ike_sk_clen(const struct ike_sk_layout *l, size_t inner_len)
{
	return inner_len + (l->block - (inner_len + 1) % l->block) % l->block + 1;
}

static int hmac(const struct ike_sk_layout *l, const uint8_t *key, const uint8_t *data, size_t len, uint8_t *out)
{
	uint8_t full[EVP_MAX_MD_SIZE];
	size_t fl = 0;
	EVP_MAC_CTX *ctx = ike_hmac_new(l->digest);
	int ok = ctx && EVP_MAC_init(ctx, key, l->integ_key_len, NULL) && EVP_MAC_update(ctx, data, len) &&
		 EVP_MAC_final(ctx, full, &fl, sizeof(full)) && fl >= l->icv_len;
	if (ok)
		memcpy(out, full, l->icv_len);
	OPENSSL_cleanse(full, sizeof(full));
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* En- or decrypt data in place; AEAD also authenticates aad and writes or checks the tag. */
static int crypt(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *iv, const uint8_t *aad,
		 size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, int enc)
{
	uint8_t nonce[16], scratch[16];
	int n, ok = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (l->aead) {
		memcpy(nonce, ke + l->key_len, 4); /* salt || IV (RFC 5282 4, RFC 7634 2) */
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
	if (!EVP_CipherFinal_ex(ctx, scratch, &n)) /* no padding: writes nothing */
		goto out;
	if (l->aead && enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag))
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

void ike_sk_put_hdrs(struct wbuf *w, const struct ike_hdr *h, uint8_t type, size_t total, uint8_t next)
{
	wbuf_u64(w, h->spi_i);
	wbuf_u64(w, h->spi_r);
	wbuf_u8(w, type);
	wbuf_u8(w, IKE_VERSION);
	wbuf_u8(w, h->exchange);
	wbuf_u8(w, h->flags);
	wbuf_u32(w, h->msg_id);
	wbuf_u32(w, (uint32_t)total);
	wbuf_u8(w, next);
	wbuf_u8(w, 0);
	wbuf_u16(w, (uint16_t)(total - IKE_HDR_LEN));
}

int ike_sk_body_seal(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *ka, uint8_t *msg,
		     size_t hdr_len, const uint8_t *inner, size_t inner_len)
{
	size_t clen = ike_sk_clen(l, inner_len);
	uint8_t *iv = msg + hdr_len, *c = iv + l->iv_len, *icv = c + clen;
	if (RAND_bytes(iv, (int)l->iv_len) != 1)
		return -1;
	if (inner_len)
		memcpy(c, inner, inner_len);
	memset(c + inner_len, 0, clen - inner_len - 1);
	c[clen - 1] = (uint8_t)(clen - inner_len - 1);
	if (l->aead)
		return crypt(l, ke, iv, msg, hdr_len, c, clen, icv, 1);
	/* the ICV covers the message from the IKE header to the end of the ciphertext */
	if (crypt(l, ke, iv, NULL, 0, c, clen, NULL, 1) || hmac(l, ka, msg, hdr_len + l->iv_len + clen, icv))
		return -1;
	return 0;
}

int ike_sk_body_open(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *ka, const uint8_t *msg,
		     size_t hdr_len, uint8_t *plain, size_t clen, size_t *inner_len)
{
	const uint8_t *iv = msg + hdr_len, *icv = iv + l->iv_len + clen;
	uint8_t tag[32];
	int rc = -1;
	if (clen == 0 || clen % l->block)
		return -1;
	if (l->aead) {
		/* AAD: the IKE header and the payload's header (RFC 5282 5.1, RFC 7383 2.5.3) */
		memcpy(tag, icv, 16);
		if (crypt(l, ke, iv, msg, hdr_len, plain, clen, tag, 0))
			goto out;
	} else if (hmac(l, ka, msg, hdr_len + l->iv_len + clen, tag) || CRYPTO_memcmp(tag, icv, l->icv_len) != 0 ||
		   crypt(l, ke, iv, NULL, 0, plain, clen, NULL, 0)) {
		goto out;
	}
	uint8_t pad = plain[clen - 1];
	if ((size_t)pad + 1 > clen)
		goto out;
	*inner_len = clen - pad - 1;
	rc = 0;
out:
	OPENSSL_cleanse(tag, sizeof(tag));
	return rc;
}

int ike_sk_open(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, uint8_t *msg, size_t msg_len,
		const struct ike_payload *sk, uint8_t *first, const uint8_t **inner, size_t *inner_len)
{
	struct ike_sk_layout l;
	if (ike_sk_layout_of(s, &l) || sk->type != IKE_PL_SK)
		return -1;
	size_t body_off = (size_t)(sk->body - msg);
	if (body_off < IKE_HDR_LEN + IKE_GENERIC_HDR_LEN || body_off + sk->len != msg_len ||
	    sk->len < l.iv_len + l.icv_len + 1)
		return -1;
	uint8_t *c = msg + body_off + l.iv_len;
	if (ike_sk_body_open(&l, ke, ka, msg, body_off, c, sk->len - l.iv_len - l.icv_len, inner_len))
		return -1;
	*first = msg[body_off - IKE_GENERIC_HDR_LEN];
	*inner = c;
	return 0;
}

size_t ike_sk_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		   uint8_t first, const uint8_t *inner, size_t inner_len, uint8_t *out, size_t cap)
{
	struct ike_sk_layout l;
	if (ike_sk_layout_of(s, &l))
		return 0;
	size_t clen = ike_sk_clen(&l, inner_len);
	size_t total = IKE_HDR_LEN + IKE_GENERIC_HDR_LEN + l.iv_len + clen + l.icv_len;
	if (total > cap || total > IKE_MSG_MAX)
		return 0;
	struct wbuf w = wbuf_init(out, cap);
	ike_sk_put_hdrs(&w, h, IKE_PL_SK, total, first);
	wbuf_reserve(&w, l.iv_len + clen + l.icv_len);
	if (w.overflow || ike_sk_body_seal(&l, ke, ka, out, IKE_HDR_LEN + IKE_GENERIC_HDR_LEN, inner, inner_len))
		return 0;
	return total;
}
