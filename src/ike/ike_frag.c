/* ike_frag.c — Encrypted Fragment payloads (RFC 7383): sealing, checking and reassembly, over
 * OpenSSL EVP. The cipher handling follows ike_sk.c; only the payload header (8 bytes instead of 4,
 * all of it associated data) differs. */
#include "ike/ike_frag.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "util/cursor.h"

struct layout {
	const EVP_CIPHER *cipher;
	const char *digest;
	size_t key_len, salt_len, iv_len, block, icv_len, integ_key_len;
	bool aead;
};

static int layout_of(const struct ike_sk_suite *s, struct layout *l)
{
	size_t encr_len;
	memset(l, 0, sizeof(*l));
	if (ike_sk_key_lens(s, &encr_len, &l->integ_key_len))
		return -1;
	size_t kb = s->encr_bits ? s->encr_bits / 8u : 16;
	switch (s->encr) {
	case IKE_ENCR_AES_CBC:
		l->cipher = kb == 16 ? EVP_aes_128_cbc() : kb == 24 ? EVP_aes_192_cbc() : EVP_aes_256_cbc();
		l->iv_len = 16, l->block = 16;
		break;
	case IKE_ENCR_3DES: l->cipher = EVP_des_ede3_cbc(), l->iv_len = 8, l->block = 8; break;
	case IKE_ENCR_AES_GCM_16:
		l->cipher = kb == 16 ? EVP_aes_128_gcm() : kb == 24 ? EVP_aes_192_gcm() : EVP_aes_256_gcm();
		l->salt_len = 4, l->iv_len = 8, l->block = 1, l->icv_len = 16, l->aead = true;
		break;
	case IKE_ENCR_CHACHA20_POLY1305:
		l->cipher = EVP_chacha20_poly1305(), l->salt_len = 4, l->iv_len = 8, l->block = 1, l->icv_len = 16;
		l->aead = true;
		break;
	default: return -1;
	}
	l->key_len = encr_len - l->salt_len;
	if (l->aead)
		return 0;
	switch (s->integ) {
	case IKE_INTEG_HMAC_SHA1_96: l->digest = "SHA1", l->icv_len = 12; break;
	case IKE_INTEG_HMAC_SHA2_256_128: l->digest = "SHA2-256", l->icv_len = 16; break;
	case IKE_INTEG_HMAC_SHA2_384_192: l->digest = "SHA2-384", l->icv_len = 24; break;
	case IKE_INTEG_HMAC_SHA2_512_256: l->digest = "SHA2-512", l->icv_len = 32; break;
	default: return -1;
	}
	return 0;
}

static int hmac(const struct layout *l, const uint8_t *key, const uint8_t *data, size_t len, uint8_t *out)
{
	uint8_t full[EVP_MAX_MD_SIZE];
	size_t fl = 0;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)l->digest, 0),
			  OSSL_PARAM_construct_end()};
	int ok = ctx && EVP_MAC_init(ctx, key, l->integ_key_len, p) && EVP_MAC_update(ctx, data, len) &&
		 EVP_MAC_final(ctx, full, &fl, sizeof(full)) && fl >= l->icv_len;
	if (ok)
		memcpy(out, full, l->icv_len);
	OPENSSL_cleanse(full, sizeof(full));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return ok ? 0 : -1;
}

/* En- or decrypt data in place; AEAD also authenticates aad and writes or checks the tag. */
static int crypt(const struct layout *l, const uint8_t *ke, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
		 uint8_t *data, size_t len, uint8_t *tag, int enc)
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

size_t ike_frag_max_len(size_t mtu, bool ipv6, bool non_esp_marker)
{
	size_t over = (ipv6 ? 40u : 20u) + 8u + (non_esp_marker ? 4u : 0u);
	return mtu > over ? mtu - over : 0;
}

unsigned ike_frag_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		       uint8_t first, const uint8_t *inner, size_t inner_len, size_t frag_max, uint8_t *out,
		       size_t cap, size_t *frag_len, unsigned max_frags)
{
	struct layout l;
	size_t fixed = IKE_HDR_LEN + IKE_FRAG_HDR_LEN;
	if (layout_of(s, &l) || frag_max > IKE_MSG_MAX || frag_max < fixed + l.iv_len + l.icv_len + l.block)
		return 0;
	/* the most plaintext a fragment holds: whole cipher blocks, less the pad-length byte */
	size_t data_max = (frag_max - fixed - l.iv_len - l.icv_len) / l.block * l.block - 1;
	if (data_max == 0)
		return 0;
	size_t n = inner_len ? (inner_len + data_max - 1) / data_max : 1;
	if (n > max_frags || n > IKE_FRAG_MAX)
		return 0;
	struct wbuf w = wbuf_init(out, cap);
	size_t done = 0;
	for (size_t i = 0; i < n; i++) {
		size_t dlen = inner_len - done < data_max ? inner_len - done : data_max;
		size_t pad = (l.block - (dlen + 1) % l.block) % l.block;
		size_t clen = dlen + pad + 1;
		size_t total = fixed + l.iv_len + clen + l.icv_len;
		size_t start = w.len;
		wbuf_u64(&w, h->spi_i);
		wbuf_u64(&w, h->spi_r);
		wbuf_u8(&w, IKE_PL_SKF);
		wbuf_u8(&w, IKE_VERSION);
		wbuf_u8(&w, h->exchange);
		wbuf_u8(&w, h->flags);
		wbuf_u32(&w, h->msg_id);
		wbuf_u32(&w, (uint32_t)total);
		wbuf_u8(&w, i == 0 ? first : IKE_PL_NONE); /* RFC 7383 2.5: only fragment 1 names it */
		wbuf_u8(&w, 0);
		wbuf_u16(&w, (uint16_t)(total - IKE_HDR_LEN));
		wbuf_u16(&w, (uint16_t)(i + 1));
		wbuf_u16(&w, (uint16_t)n);
		uint8_t *iv = wbuf_reserve(&w, l.iv_len);
		uint8_t *c = wbuf_reserve(&w, clen);
		uint8_t *icv = wbuf_reserve(&w, l.icv_len);
		if (w.overflow || RAND_bytes(iv, (int)l.iv_len) != 1)
			return 0;
		if (dlen)
			memcpy(c, inner + done, dlen);
		memset(c + dlen, 0, pad);
		c[clen - 1] = (uint8_t)pad;
		uint8_t *m = out + start;
		if (l.aead) {
			if (crypt(&l, ke, iv, m, fixed, c, clen, icv, 1))
				return 0;
		} else if (crypt(&l, ke, iv, NULL, 0, c, clen, NULL, 1) || hmac(&l, ka, m, fixed + l.iv_len + clen, icv)) {
			return 0;
		}
		frag_len[i] = total;
		done += dlen;
	}
	return (unsigned)n;
}

static const char *const drop_names[IKE_FRAG_DROP_COUNT] = {
	[IKE_FRAG_DROP_MALFORMED] = "malformed",   [IKE_FRAG_DROP_HEADER] = "header-mismatch",
	[IKE_FRAG_DROP_NUMBER] = "bad-number",     [IKE_FRAG_DROP_TOO_MANY] = "too-many-fragments",
	[IKE_FRAG_DROP_OLD_TOTAL] = "lower-total", [IKE_FRAG_DROP_DUPLICATE] = "duplicate",
	[IKE_FRAG_DROP_ICV] = "icv-failed",        [IKE_FRAG_DROP_MEMORY] = "memory-bound",
	[IKE_FRAG_DROP_COMPLETE] = "already-complete", [IKE_FRAG_DROP_TIMEOUT] = "timed-out",
	[IKE_FRAG_DROP_RESTART] = "restarted",
};

const char *ike_frag_drop_name(enum ike_frag_drop d)
{
	return (unsigned)d < IKE_FRAG_DROP_COUNT ? drop_names[d] : "?";
}

/* A received SKF message, its fields located (all pointers into the message). */
struct skf {
	uint32_t msg_id;
	uint8_t exchange, flags, next;
	uint16_t num, total;
	const uint8_t *iv, *c, *icv;
	size_t clen;
};

static enum ike_frag_result drop(struct ike_frag_reasm *r, enum ike_frag_drop d, enum ike_frag_drop *why)
{
	r->drops[d]++;
	if (why)
		*why = d;
	return IKE_FRAG_DROPPED;
}

static int parse_skf(const struct layout *l, const uint8_t *msg, size_t len, struct skf *f)
{
	struct cur c = cur_init(msg, len);
	uint64_t spi;
	uint32_t mlen;
	uint16_t plen;
	uint8_t type, version, crit;
	if (!cur_u64(&c, &spi) || !cur_u64(&c, &spi) || !cur_u8(&c, &type) || !cur_u8(&c, &version) ||
	    !cur_u8(&c, &f->exchange) || !cur_u8(&c, &f->flags) || !cur_u32(&c, &f->msg_id) || !cur_u32(&c, &mlen) ||
	    !cur_u8(&c, &f->next) || !cur_u8(&c, &crit) || !cur_u16(&c, &plen) || !cur_u16(&c, &f->num) ||
	    !cur_u16(&c, &f->total))
		return -1;
	/* one SKF payload and nothing after it (RFC 7383 2.5) */
	if (type != IKE_PL_SKF || version >> 4 != 2 || mlen != len || plen != len - IKE_HDR_LEN ||
	    c.left < l->iv_len + l->icv_len + 1)
		return -1;
	f->clen = c.left - l->iv_len - l->icv_len;
	if (f->clen % l->block)
		return -1;
	f->iv = c.p, f->c = c.p + l->iv_len, f->icv = f->c + f->clen;
	return 0;
}

/* Check and decrypt one fragment; returns its plaintext (malloc'd, *plen bytes) or NULL. */
static uint8_t *open_skf(const struct layout *l, const uint8_t *ke, const uint8_t *ka, const uint8_t *msg,
			 const struct skf *f, size_t *plen)
{
	uint8_t *p = OPENSSL_malloc(f->clen);
	uint8_t tag[32];
	if (!p)
		return NULL;
	memcpy(p, f->c, f->clen);
	if (l->aead) {
		memcpy(tag, f->icv, 16);
		if (crypt(l, ke, f->iv, msg, IKE_HDR_LEN + IKE_FRAG_HDR_LEN, p, f->clen, tag, 0))
			goto fail;
	} else {
		/* the ICV covers the message from the IKE header to the end of the ciphertext */
		if (hmac(l, ka, msg, (size_t)(f->icv - msg), tag) || CRYPTO_memcmp(tag, f->icv, l->icv_len) != 0 ||
		    crypt(l, ke, f->iv, NULL, 0, p, f->clen, NULL, 0))
			goto fail;
	}
	uint8_t pad = p[f->clen - 1];
	if ((size_t)pad + 1 > f->clen)
		goto fail;
	*plen = f->clen - pad - 1;
	return p;
fail:
	OPENSSL_clear_free(p, f->clen);
	return NULL;
}

/* Forget the stored fragments (not the message identity or the counters). */
static void discard(struct ike_frag_reasm *r)
{
	for (unsigned i = 0; i < IKE_FRAG_MAX; i++) {
		if (r->frag[i])
			OPENSSL_clear_free(r->frag[i], r->frag_len[i]);
		r->frag[i] = NULL, r->frag_len[i] = 0;
	}
	r->n = 0, r->total = 0, r->bytes = 0, r->first = 0;
}

void ike_frag_reasm_init(struct ike_frag_reasm *r, uint32_t msg_id, uint64_t now_ms, uint64_t timeout_ms)
{
	memset(r, 0, sizeof(*r));
	r->msg_id = msg_id;
	r->started_ms = now_ms;
	r->timeout_ms = timeout_ms;
}

void ike_frag_reasm_clear(struct ike_frag_reasm *r)
{
	discard(r);
	if (r->chain)
		OPENSSL_clear_free(r->chain, r->chain_len);
	r->chain = NULL, r->chain_len = 0;
}

bool ike_frag_reasm_expired(const struct ike_frag_reasm *r, uint64_t now_ms)
{
	return !r->complete && r->n > 0 && now_ms - r->started_ms >= r->timeout_ms;
}

static int assemble(struct ike_frag_reasm *r)
{
	uint8_t *chain = OPENSSL_malloc(r->bytes ? r->bytes : 1);
	if (!chain)
		return -1;
	size_t at = 0;
	for (unsigned i = 0; i < r->total; i++) {
		if (r->frag_len[i])
			memcpy(chain + at, r->frag[i], r->frag_len[i]);
		at += r->frag_len[i];
	}
	r->chain = chain, r->chain_len = at;
	uint8_t first = r->first;
	discard(r);
	r->first = first;
	r->complete = true;
	return 0;
}

enum ike_frag_result ike_frag_reasm_feed(struct ike_frag_reasm *r, const struct ike_sk_suite *s, const uint8_t *ke,
					 const uint8_t *ka, const uint8_t *msg, size_t len, uint64_t now_ms,
					 uint8_t *first, const uint8_t **inner, size_t *inner_len,
					 enum ike_frag_drop *why)
{
	struct layout l;
	struct skf f;
	if (layout_of(s, &l) || parse_skf(&l, msg, len, &f))
		return drop(r, IKE_FRAG_DROP_MALFORMED, why);
	if (f.msg_id != r->msg_id || (r->have_hdr && (f.exchange != r->exchange || f.flags != r->flags)))
		return drop(r, IKE_FRAG_DROP_HEADER, why);
	if (f.num == 0 || f.total == 0 || f.num > f.total)
		return drop(r, IKE_FRAG_DROP_NUMBER, why);
	if (f.total > IKE_FRAG_MAX)
		return drop(r, IKE_FRAG_DROP_TOO_MANY, why);
	if (ike_frag_reasm_expired(r, now_ms)) {
		r->drops[IKE_FRAG_DROP_TIMEOUT]++;
		discard(r);
	}
	/* cheap refusals before any cryptography: an unauthentic fragment never displaces a stored one */
	if (!r->complete && f.total < r->total)
		return drop(r, IKE_FRAG_DROP_OLD_TOTAL, why);
	if (!r->complete && f.total == r->total && r->frag[f.num - 1])
		return drop(r, IKE_FRAG_DROP_DUPLICATE, why);
	size_t plen = 0;
	uint8_t *p = open_skf(&l, ke, ka, msg, &f, &plen);
	if (!p)
		return drop(r, IKE_FRAG_DROP_ICV, why);
	/* authentic from here on; a retransmission of a completed message is reported as such, so
	 * the caller may resend its response */
	enum ike_frag_drop d = IKE_FRAG_DROP_COUNT;
	if (r->complete)
		d = IKE_FRAG_DROP_COMPLETE;
	if (d == IKE_FRAG_DROP_COUNT && f.total > r->total && r->n > 0) {
		/* the sender refragmented, e.g. for a smaller MTU (RFC 7383 2.6.2) */
		r->drops[IKE_FRAG_DROP_RESTART]++;
		discard(r);
	}
	if (d == IKE_FRAG_DROP_COUNT && r->bytes + plen > IKE_FRAG_BYTES_MAX)
		d = IKE_FRAG_DROP_MEMORY;
	if (d != IKE_FRAG_DROP_COUNT) {
		OPENSSL_clear_free(p, f.clen);
		return drop(r, d, why);
	}
	if (r->n == 0)
		r->started_ms = now_ms;
	r->have_hdr = true, r->exchange = f.exchange, r->flags = f.flags;
	r->total = f.total;
	/* padding bytes past plen are not secret; only plen bytes are cleansed */
	r->frag[f.num - 1] = p;
	r->frag_len[f.num - 1] = plen;
	r->bytes += plen;
	r->n++;
	if (f.num == 1)
		r->first = f.next;
	if (r->n < r->total)
		return IKE_FRAG_STORED;
	if (assemble(r)) {
		discard(r);
		return drop(r, IKE_FRAG_DROP_MEMORY, why);
	}
	*first = r->first;
	*inner = r->chain;
	*inner_len = r->chain_len;
	return IKE_FRAG_COMPLETE;
}
