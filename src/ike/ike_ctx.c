/* ike_ctx.c — an established IKE SA and its Child SAs as context attributes, and back. Every value
 * read is checked for its size and range; unknown attributes are skipped (a newer writer), missing
 * required ones are an error. */
#include <openssl/x509.h>
#include <stdarg.h>

#include "ike/ike_ctx.h"
#include "ike/ike_exchange_internal.h"

/* IKE SA attributes */
enum {
	IA_INITIATOR = 1, IA_SPI_I, IA_SPI_R, IA_ENCR, IA_ENCR_BITS, IA_INTEG, IA_PRF, IA_GROUP, IA_NI, IA_NR,
	IA_SK_D, IA_SK_AI, IA_SK_AR, IA_SK_EI, IA_SK_ER, IA_SK_PI, IA_SK_PR,
	IA_SEND_ID, IA_RECV_ID, IA_LAST_RESP, IA_LAST_RESP_ID, IA_LAST_REQ_UPDATE, IA_CHOSEN,
	IA_PEER_ID_TYPE, IA_PEER_ID, IA_PEER_CERT, IA_PEER_AUTH, IA_PEER_SIGHASH, IA_PEER_CERTREQ,
	IA_NAT_LOCAL, IA_NAT_REMOTE, IA_LOCAL, IA_REMOTE, IA_LPORT, IA_RPORT,
	IA_FRAG_PEER, IA_MOBIKE, IA_MOBIKE_INITIATOR, IA_UPDATE_ID, IA_COOKIE2, IA_PEER_ADDR, IA_MY_ADDR,
	IA_PEER_ANSWERS, IA_CHILD_REKEYS, IA_REKEY_COLLISIONS, IA_IKE_REKEYS, IA_UPDATES_SENT, IA_UPDATES_RECEIVED,
	IA_FRAGS_SENT, IA_FRAGS_RECEIVED, IA_FRAG_DROPS,
};

/* Child SA attributes */
enum { IC_SPI_I = 1, IC_SPI_R, IC_EI, IC_AI, IC_ER, IC_AR, IC_ESP, IC_TS_I, IC_TS_R, IC_REKEYS };

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

const char *ike_ctx_busy(const struct ike_sa *sa)
{
	if (sa->state != IKE_ST_ESTABLISHED)
		return "the IKE SA is not established";
	if (sa->ccs_pending || sa->info_pending)
		return "an exchange of ours is in flight";
	if (sa->old_ike.present || sa->red_ike || sa->coll_ike)
		return "an IKE SA rekey is not finished";
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		const struct ike_child *c = sa->child[k];
		if (c && (c->next || c->old || c->coll || c->red || c->up || c->gone))
			return "a Child SA rekey is not finished";
	}
	return NULL;
}

/* --- proposals and selectors ------------------------------------------------------------------- */

static void put_prop(struct wbuf *w, uint16_t type, const struct ike_proposal *p)
{
	size_t at = tlv_open(w, type);
	wbuf_u8(w, p->num), wbuf_u8(w, p->protocol), wbuf_u8(w, p->spi_len);
	wbuf_bytes(w, p->spi, sizeof(p->spi));
	wbuf_u8(w, (uint8_t)p->n_tr);
	for (unsigned i = 0; i < p->n_tr; i++)
		wbuf_u8(w, p->tr[i].type), wbuf_u16(w, p->tr[i].id), wbuf_u16(w, p->tr[i].key_bits);
	tlv_close(w, at);
}

static bool get_prop(struct cur v, struct ike_proposal *p)
{
	const uint8_t *spi;
	uint8_t n;
	memset(p, 0, sizeof(*p));
	if (!cur_u8(&v, &p->num) || !cur_u8(&v, &p->protocol) || !cur_u8(&v, &p->spi_len) || p->spi_len > 8 ||
	    !cur_bytes(&v, sizeof(p->spi), &spi) || !cur_u8(&v, &n) || n > IKE_MAX_TRANSFORMS || v.left != 5u * n)
		return false;
	memcpy(p->spi, spi, sizeof(p->spi));
	for (unsigned i = 0; i < n; i++)
		if (!cur_u8(&v, &p->tr[i].type) || !cur_u16(&v, &p->tr[i].id) || !cur_u16(&v, &p->tr[i].key_bits))
			return false;
	p->n_tr = n;
	return true;
}

/* A selector list: each as lo, hi (family + 16 bytes), protocol, port range. */
static void put_ts(struct wbuf *w, uint16_t type, const struct bt_ts *ts, unsigned n)
{
	size_t at = tlv_open(w, type);
	for (unsigned i = 0; i < n; i++) {
		wbuf_u8(w, ts[i].lo.family), wbuf_bytes(w, ts[i].lo.b, 16);
		wbuf_u8(w, ts[i].hi.family), wbuf_bytes(w, ts[i].hi.b, 16);
		wbuf_u8(w, ts[i].proto), wbuf_u16(w, ts[i].port_lo), wbuf_u16(w, ts[i].port_hi);
	}
	tlv_close(w, at);
}

#define TS_BYTES 39

static bool get_ts_addr(struct cur *v, struct bt_addr *a)
{
	const uint8_t *b;
	memset(a, 0, sizeof(*a));
	if (!cur_u8(v, &a->family) || (a->family != AF_INET && a->family != AF_INET6) || !cur_bytes(v, 16, &b))
		return false;
	memcpy(a->b, b, 16);
	return true;
}

/* Into a new exact-size list in *out (n in *n). */
static bool get_ts(struct cur v, struct bt_ts **out, uint8_t *n)
{
	size_t cnt = v.left / TS_BYTES;
	if (v.left % TS_BYTES || cnt > BT_TS_MAX)
		return false;
	struct bt_ts *ts = calloc(cnt ? cnt : 1, sizeof(*ts));
	if (!ts)
		return false;
	for (size_t i = 0; i < cnt; i++) {
		if (!get_ts_addr(&v, &ts[i].lo) || !get_ts_addr(&v, &ts[i].hi) || ts[i].lo.family != ts[i].hi.family ||
		    !cur_u8(&v, &ts[i].proto) || !cur_u16(&v, &ts[i].port_lo) || !cur_u16(&v, &ts[i].port_hi)) {
			free(ts);
			return false;
		}
	}
	free(*out);
	*out = ts, *n = (uint8_t)cnt;
	return true;
}

/* --- the IKE SA -------------------------------------------------------------------------------- */

void ike_ctx_write_sa(const struct ike_sa *sa, struct wbuf *w)
{
	const struct ike_keys *k = &sa->keys;
	tlv_u8(w, IA_INITIATOR, sa->initiator);
	tlv_u64(w, IA_SPI_I, sa->spi_i), tlv_u64(w, IA_SPI_R, sa->spi_r);
	tlv_u16(w, IA_ENCR, sa->suite.encr), tlv_u16(w, IA_ENCR_BITS, sa->suite.encr_bits);
	tlv_u16(w, IA_INTEG, sa->suite.integ), tlv_u16(w, IA_PRF, sa->prf), tlv_u16(w, IA_GROUP, sa->group);
	tlv_bytes(w, IA_NI, sa->ni, sa->ni_len), tlv_bytes(w, IA_NR, sa->nr, sa->nr_len);
	tlv_bytes(w, IA_SK_D, k->sk_d, k->prf_len);
	tlv_bytes(w, IA_SK_PI, k->sk_pi, k->prf_len), tlv_bytes(w, IA_SK_PR, k->sk_pr, k->prf_len);
	tlv_bytes(w, IA_SK_AI, k->sk_ai, k->integ_len), tlv_bytes(w, IA_SK_AR, k->sk_ar, k->integ_len);
	tlv_bytes(w, IA_SK_EI, k->sk_ei, k->encr_len), tlv_bytes(w, IA_SK_ER, k->sk_er, k->encr_len);
	tlv_u32(w, IA_SEND_ID, sa->next_send_id), tlv_u32(w, IA_RECV_ID, sa->next_recv_id);
	if (sa->last_resp) {
		tlv_bytes(w, IA_LAST_RESP, sa->last_resp, sa->last_resp_len);
		tlv_u32(w, IA_LAST_RESP_ID, sa->last_resp_id);
		tlv_u8(w, IA_LAST_REQ_UPDATE, sa->last_req_update);
	}
	put_prop(w, IA_CHOSEN, &sa->ike_chosen);
	tlv_u8(w, IA_PEER_ID_TYPE, sa->peer_id_type), tlv_bytes(w, IA_PEER_ID, sa->peer_id, sa->peer_id_len);
	if (sa->peer_cert) {
		unsigned char *der = NULL;
		int n = i2d_X509(sa->peer_cert, &der);
		if (n > 0)
			tlv_bytes(w, IA_PEER_CERT, der, (size_t)n);
		else
			w->overflow = true; /* cannot be written: refuse the whole context */
		OPENSSL_free(der);
	}
	tlv_u8(w, IA_PEER_AUTH, sa->peer_auth_method), tlv_u32(w, IA_PEER_SIGHASH, sa->peer_sighash);
	tlv_u8(w, IA_PEER_CERTREQ, sa->peer_certreq);
	tlv_u8(w, IA_NAT_LOCAL, sa->nat_local), tlv_u8(w, IA_NAT_REMOTE, sa->nat_remote);
	tlv_addr(w, IA_LOCAL, &sa->local), tlv_addr(w, IA_REMOTE, &sa->remote);
	tlv_u16(w, IA_LPORT, sa->local_port), tlv_u16(w, IA_RPORT, sa->remote_port);
	tlv_u8(w, IA_FRAG_PEER, sa->frag_peer);
	tlv_u8(w, IA_MOBIKE, sa->mobike), tlv_u8(w, IA_MOBIKE_INITIATOR, sa->mobike_initiator);
	tlv_u32(w, IA_UPDATE_ID, sa->update_id), tlv_bytes(w, IA_COOKIE2, sa->cookie2, sizeof(sa->cookie2));
	for (unsigned i = 0; i < sa->n_peer_addrs; i++)
		tlv_addr(w, IA_PEER_ADDR, &sa->peer_addrs[i]);
	for (unsigned i = 0; i < sa->n_my_addrs; i++)
		tlv_addr(w, IA_MY_ADDR, &sa->my_addrs[i]);
	tlv_u64(w, IA_PEER_ANSWERS, sa->peer_answers), tlv_u64(w, IA_CHILD_REKEYS, sa->child_rekeys);
	tlv_u64(w, IA_REKEY_COLLISIONS, sa->rekey_collisions), tlv_u64(w, IA_IKE_REKEYS, sa->ike_rekeys);
	tlv_u64(w, IA_UPDATES_SENT, sa->updates_sent), tlv_u64(w, IA_UPDATES_RECEIVED, sa->updates_received);
	tlv_u64(w, IA_FRAGS_SENT, sa->frags_sent), tlv_u64(w, IA_FRAGS_RECEIVED, sa->frags_received);
	tlv_u64(w, IA_FRAG_DROPS, sa->frag_drops);
}

/* One key of the IKE SA: its length must match the others of its kind (*len, 0 = first seen). */
static bool get_key(struct cur v, uint8_t *key, size_t cap, size_t *len)
{
	size_t n;
	if (!tlv_get_var(v, key, cap, &n) || (*len && n != *len))
		return false;
	*len = n;
	return true;
}

static bool get_peer_cert(struct cur v, X509 **out)
{
	const unsigned char *p = v.p;
	X509 *x = d2i_X509(NULL, &p, (long)v.left);
	if (!x || p != v.p + v.left) {
		X509_free(x);
		return false;
	}
	X509_free(*out);
	*out = x;
	return true;
}

static bool get_addr_list(struct cur v, struct bt_addr *list, uint8_t *n)
{
	return *n < IKE_PEER_ADDRS && tlv_get_addr(v, &list[*n]) && list[(*n)++].family;
}

/* One IKE SA attribute into sa; false if its value is wrong. */
static bool read_sa_attr(struct ike_sa *sa, uint16_t type, struct cur v)
{
	struct ike_keys *k = &sa->keys;
	switch (type) {
	case IA_INITIATOR: return tlv_get_bool(v, &sa->initiator);
	case IA_SPI_I: return tlv_get_u64(v, &sa->spi_i) && sa->spi_i;
	case IA_SPI_R: return tlv_get_u64(v, &sa->spi_r) && sa->spi_r;
	case IA_ENCR: return tlv_get_u16(v, &sa->suite.encr);
	case IA_ENCR_BITS: return tlv_get_u16(v, &sa->suite.encr_bits);
	case IA_INTEG: return tlv_get_u16(v, &sa->suite.integ);
	case IA_PRF: return tlv_get_u16(v, &sa->prf);
	case IA_GROUP: return tlv_get_u16(v, &sa->group);
	case IA_NI: return tlv_get_var(v, sa->ni, sizeof(sa->ni), &sa->ni_len);
	case IA_NR: return tlv_get_var(v, sa->nr, sizeof(sa->nr), &sa->nr_len);
	case IA_SK_D: return get_key(v, k->sk_d, sizeof(k->sk_d), &k->prf_len);
	case IA_SK_PI: return get_key(v, k->sk_pi, sizeof(k->sk_pi), &k->prf_len);
	case IA_SK_PR: return get_key(v, k->sk_pr, sizeof(k->sk_pr), &k->prf_len);
	case IA_SK_AI: return get_key(v, k->sk_ai, sizeof(k->sk_ai), &k->integ_len);
	case IA_SK_AR: return get_key(v, k->sk_ar, sizeof(k->sk_ar), &k->integ_len);
	case IA_SK_EI: return get_key(v, k->sk_ei, sizeof(k->sk_ei), &k->encr_len);
	case IA_SK_ER: return get_key(v, k->sk_er, sizeof(k->sk_er), &k->encr_len);
	case IA_SEND_ID: return tlv_get_u32(v, &sa->next_send_id);
	case IA_RECV_ID: return tlv_get_u32(v, &sa->next_recv_id);
	case IA_LAST_RESP:
		if (!v.left || sa->last_resp)
			return false;
		sa->last_resp = ike_x_dup_bytes(v.p, v.left);
		sa->last_resp_len = v.left;
		return sa->last_resp != NULL;
	case IA_LAST_RESP_ID: return tlv_get_u32(v, &sa->last_resp_id);
	case IA_LAST_REQ_UPDATE: return tlv_get_bool(v, &sa->last_req_update);
	case IA_CHOSEN: return get_prop(v, &sa->ike_chosen);
	case IA_PEER_ID_TYPE: return tlv_get_u8(v, &sa->peer_id_type);
	case IA_PEER_ID: return tlv_get_var(v, sa->peer_id, sizeof(sa->peer_id), &sa->peer_id_len);
	case IA_PEER_CERT: return get_peer_cert(v, &sa->peer_cert);
	case IA_PEER_AUTH: return tlv_get_u8(v, &sa->peer_auth_method);
	case IA_PEER_SIGHASH: return tlv_get_u32(v, &sa->peer_sighash);
	case IA_PEER_CERTREQ: return tlv_get_bool(v, &sa->peer_certreq);
	case IA_NAT_LOCAL: return tlv_get_bool(v, &sa->nat_local);
	case IA_NAT_REMOTE: return tlv_get_bool(v, &sa->nat_remote);
	case IA_LOCAL: return tlv_get_addr(v, &sa->local) && sa->local.family;
	case IA_REMOTE: return tlv_get_addr(v, &sa->remote) && sa->remote.family;
	case IA_LPORT: return tlv_get_u16(v, &sa->local_port);
	case IA_RPORT: return tlv_get_u16(v, &sa->remote_port);
	case IA_FRAG_PEER: return tlv_get_bool(v, &sa->frag_peer);
	case IA_MOBIKE: return tlv_get_bool(v, &sa->mobike);
	case IA_MOBIKE_INITIATOR: return tlv_get_bool(v, &sa->mobike_initiator);
	case IA_UPDATE_ID: return tlv_get_u32(v, &sa->update_id);
	case IA_COOKIE2: return tlv_get_fixed(v, sa->cookie2, sizeof(sa->cookie2));
	case IA_PEER_ADDR: return get_addr_list(v, sa->peer_addrs, &sa->n_peer_addrs);
	case IA_MY_ADDR: return get_addr_list(v, sa->my_addrs, &sa->n_my_addrs);
	case IA_PEER_ANSWERS: return tlv_get_u64(v, &sa->peer_answers);
	case IA_CHILD_REKEYS: return tlv_get_u64(v, &sa->child_rekeys);
	case IA_REKEY_COLLISIONS: return tlv_get_u64(v, &sa->rekey_collisions);
	case IA_IKE_REKEYS: return tlv_get_u64(v, &sa->ike_rekeys);
	case IA_UPDATES_SENT: return tlv_get_u64(v, &sa->updates_sent);
	case IA_UPDATES_RECEIVED: return tlv_get_u64(v, &sa->updates_received);
	case IA_FRAGS_SENT: return tlv_get_u64(v, &sa->frags_sent);
	case IA_FRAGS_RECEIVED: return tlv_get_u64(v, &sa->frags_received);
	case IA_FRAG_DROPS: return tlv_get_u64(v, &sa->frag_drops);
	default: return true; /* a newer writer's attribute: skipped */
	}
}

/* Attributes a context cannot do without. */
#define IA_REQUIRED                                                                                         \
	((1ull << IA_INITIATOR) | (1ull << IA_SPI_I) | (1ull << IA_SPI_R) | (1ull << IA_ENCR) | (1ull << IA_PRF) | \
	 (1ull << IA_SK_D) | (1ull << IA_SK_EI) | (1ull << IA_SK_ER) | (1ull << IA_SEND_ID) | (1ull << IA_RECV_ID) | \
	 (1ull << IA_CHOSEN) | (1ull << IA_LOCAL) | (1ull << IA_REMOTE))

int ike_ctx_read_sa(struct ike_sa *sa, struct cur v, char *err, size_t errlen)
{
	uint64_t seen = 0;
	uint16_t type;
	struct cur val;
	int r;
	while ((r = tlv_next(&v, &type, &val)) > 0) {
		if (!read_sa_attr(sa, type, val))
			return bad(err, errlen, "IKE SA attribute %u has a bad value", type);
		if (type < 64)
			seen |= 1ull << type;
	}
	if (r < 0)
		return bad(err, errlen, "IKE SA attributes truncated");
	if ((seen & IA_REQUIRED) != IA_REQUIRED)
		return bad(err, errlen, "IKE SA attributes incomplete");
	size_t el, il;
	if (ike_sk_key_lens(&sa->suite, &el, &il) != 0 || el != sa->keys.encr_len || il != sa->keys.integ_len ||
	    !sa->keys.prf_len)
		return bad(err, errlen, "IKE SA keys do not fit its transforms");
	if (sa->last_resp && !(seen & (1ull << IA_LAST_RESP_ID)))
		return bad(err, errlen, "IKE SA cached response without its message ID");
	sa->state = IKE_ST_ESTABLISHED;
	return 0;
}

/* --- Child SAs --------------------------------------------------------------------------------- */

void ike_ctx_write_child(const struct ike_child *c, struct wbuf *w)
{
	tlv_u32(w, IC_SPI_I, c->spi_i), tlv_u32(w, IC_SPI_R, c->spi_r);
	tlv_bytes(w, IC_EI, c->ei, c->encr_len), tlv_bytes(w, IC_ER, c->er, c->encr_len);
	tlv_bytes(w, IC_AI, c->ai, c->integ_len), tlv_bytes(w, IC_AR, c->ar, c->integ_len);
	put_prop(w, IC_ESP, &c->esp);
	put_ts(w, IC_TS_I, c->ts_i, c->n_ts_i), put_ts(w, IC_TS_R, c->ts_r, c->n_ts_r);
	tlv_u64(w, IC_REKEYS, c->rekeys);
}

static bool read_child_attr(struct ike_child *c, uint16_t type, struct cur v)
{
	switch (type) {
	case IC_SPI_I: return tlv_get_u32(v, &c->spi_i) && c->spi_i;
	case IC_SPI_R: return tlv_get_u32(v, &c->spi_r) && c->spi_r;
	case IC_EI: return get_key(v, c->ei, sizeof(c->ei), &c->encr_len);
	case IC_ER: return get_key(v, c->er, sizeof(c->er), &c->encr_len);
	case IC_AI: return get_key(v, c->ai, sizeof(c->ai), &c->integ_len);
	case IC_AR: return get_key(v, c->ar, sizeof(c->ar), &c->integ_len);
	case IC_ESP: return get_prop(v, &c->esp);
	case IC_TS_I: return get_ts(v, &c->ts_i, &c->n_ts_i);
	case IC_TS_R: return get_ts(v, &c->ts_r, &c->n_ts_r);
	case IC_REKEYS: return tlv_get_u64(v, &c->rekeys);
	default: return true;
	}
}

#define IC_REQUIRED                                                                                       \
	((1u << IC_SPI_I) | (1u << IC_SPI_R) | (1u << IC_EI) | (1u << IC_ER) | (1u << IC_ESP) | (1u << IC_TS_I) | \
	 (1u << IC_TS_R))

struct ike_child *ike_ctx_read_child(const struct ike_conf *conf, struct cur v, char *err, size_t errlen)
{
	struct ike_child *c = ike_x_child_new(conf);
	uint32_t seen = 0;
	uint16_t type;
	struct cur val;
	int r;
	if (!c) {
		bad(err, errlen, "out of memory");
		return NULL;
	}
	while ((r = tlv_next(&v, &type, &val)) > 0) {
		if (!read_child_attr(c, type, val)) {
			bad(err, errlen, "Child SA attribute %u has a bad value", type);
			goto fail;
		}
		if (type < 32)
			seen |= 1u << type;
	}
	size_t el, il;
	if (r < 0 || (seen & IC_REQUIRED) != IC_REQUIRED) {
		bad(err, errlen, r < 0 ? "Child SA attributes truncated" : "Child SA attributes incomplete");
		goto fail;
	}
	if (ike_prop_esp_key_lens(&c->esp, &el, &il) != 0 || el != c->encr_len || il != c->integ_len) {
		bad(err, errlen, "Child SA keys do not fit its transforms");
		goto fail;
	}
	return c;
fail:
	ike_x_child_free(c);
	return NULL;
}

void ike_ctx_child_free(struct ike_child *c) { ike_x_child_free(c); }
