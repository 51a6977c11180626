/* ike_frag.c — Encrypted Fragment payloads (RFC 7383): sealing, checking and reassembly. The cipher
 * layer is ike_sk.c's (ike_sk_internal.h); only the payload header (8 bytes instead of 4, all of it
 * associated data) differs. */
#include "ike/ike_frag.h"

#include <openssl/crypto.h>
#include <string.h>

#include "ike/ike_sk_internal.h"
#include "util/cursor.h"

size_t ike_frag_max_len(size_t mtu, bool ipv6, bool non_esp_marker)
{
	size_t over = (ipv6 ? 40u : 20u) + 8u + (non_esp_marker ? 4u : 0u);
	return mtu > over ? mtu - over : 0;
}

unsigned ike_frag_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		       uint8_t first, const uint8_t *inner, size_t inner_len, size_t frag_max, uint8_t *out,
		       size_t cap, size_t *frag_len, unsigned max_frags)
{
	struct ike_sk_layout l;
	size_t fixed = IKE_HDR_LEN + IKE_FRAG_HDR_LEN;
	if (ike_sk_layout_of(s, &l) || frag_max > IKE_MSG_MAX || frag_max < fixed + l.iv_len + l.icv_len + l.block)
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
		size_t clen = ike_sk_clen(&l, dlen);
		size_t total = fixed + l.iv_len + clen + l.icv_len;
		size_t start = w.len;
		/* RFC 7383 2.5: only fragment 1 names the first inner payload */
		ike_sk_put_hdrs(&w, h, IKE_PL_SKF, total, i == 0 ? first : IKE_PL_NONE);
		wbuf_u16(&w, (uint16_t)(i + 1));
		wbuf_u16(&w, (uint16_t)n);
		wbuf_reserve(&w, l.iv_len + clen + l.icv_len);
		if (w.overflow || ike_sk_body_seal(&l, ke, ka, out + start, fixed, inner + done, dlen))
			return 0;
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

static int parse_skf(const struct ike_sk_layout *l, const uint8_t *msg, size_t len, struct skf *f)
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
static uint8_t *open_skf(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *ka, const uint8_t *msg,
			 const struct skf *f, size_t *plen)
{
	uint8_t *p = OPENSSL_malloc(f->clen);
	if (!p)
		return NULL;
	memcpy(p, f->c, f->clen);
	if (ike_sk_body_open(l, ke, ka, msg, IKE_HDR_LEN + IKE_FRAG_HDR_LEN, p, f->clen, plen)) {
		OPENSSL_clear_free(p, f->clen);
		return NULL;
	}
	return p;
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
	struct ike_sk_layout l;
	struct skf f;
	if (ike_sk_layout_of(s, &l) || parse_skf(&l, msg, len, &f))
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
