/* ike_msg.c — IKEv2 message parsing and building over the bounds-checked cursor: every length
 * field is checked against what is left before it is used; the parser only records facts. */
#include "ike/ike_msg.h"

#include <string.h>

const char *ike_perr_name(enum ike_perr e)
{
	static const char *const n[] = {"ok", "short", "length", "version", "too_many", "syntax"};
	return (unsigned)e < sizeof(n) / sizeof(n[0]) ? n[e] : "?";
}

static bool known_payload(uint8_t t)
{
	return (t >= IKE_PL_SA && t <= IKE_PL_EAP) || t == IKE_PL_SKF;
}

enum ike_perr ike_parse_chain(uint8_t first, const uint8_t *p, size_t len, struct ike_chain *c)
{
	struct cur cur = cur_init(p, len);
	uint8_t type = first;
	c->n = 0;
	c->unsupported_critical = 0;
	while (type != IKE_PL_NONE) {
		uint8_t next, flags;
		uint16_t plen;
		if (!cur_u8(&cur, &next) || !cur_u8(&cur, &flags) || !cur_u16(&cur, &plen))
			return IKE_PERR_SHORT;
		if (plen < IKE_GENERIC_HDR_LEN || (size_t)plen - IKE_GENERIC_HDR_LEN > cur.left)
			return IKE_PERR_LENGTH;
		if (c->n == IKE_MAX_PAYLOADS)
			return IKE_PERR_TOO_MANY;
		struct ike_payload *pl = &c->pl[c->n++];
		pl->type = type;
		pl->critical = flags & 0x80;
		pl->len = plen - IKE_GENERIC_HDR_LEN;
		if (!cur_bytes(&cur, pl->len, &pl->body))
			return IKE_PERR_LENGTH;
		if (!known_payload(type) && pl->critical && !c->unsupported_critical)
			c->unsupported_critical = type;
		/* SK and SKF hold the rest of the message: their next-payload names the first inner one */
		if (type == IKE_PL_SK || type == IKE_PL_SKF) {
			if (cur.left)
				return IKE_PERR_SYNTAX;
			break;
		}
		type = next;
	}
	return cur.left ? IKE_PERR_LENGTH : IKE_PERR_OK;
}

enum ike_perr ike_parse(const uint8_t *msg, size_t len, struct ike_hdr *h, struct ike_chain *c)
{
	struct cur cur = cur_init(msg, len);
	if (!cur_u64(&cur, &h->spi_i) || !cur_u64(&cur, &h->spi_r) || !cur_u8(&cur, &h->next_payload) ||
	    !cur_u8(&cur, &h->version) || !cur_u8(&cur, &h->exchange) || !cur_u8(&cur, &h->flags) ||
	    !cur_u32(&cur, &h->msg_id) || !cur_u32(&cur, &h->length))
		return IKE_PERR_SHORT;
	if ((h->version >> 4) != 2)
		return IKE_PERR_VERSION;
	if (h->length != len || h->length < IKE_HDR_LEN)
		return IKE_PERR_LENGTH;
	return ike_parse_chain(h->next_payload, cur.p, cur.left, c);
}

const struct ike_payload *ike_find(const struct ike_chain *c, uint8_t type, unsigned nth)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->pl[i].type == type && nth-- == 0)
			return &c->pl[i];
	return NULL;
}

static enum ike_perr parse_transform(struct cur *cur, bool *last, struct ike_transform *t)
{
	uint8_t more, reserved, type, r2;
	uint16_t tlen, id;
	struct cur body;
	if (!cur_u8(cur, &more) || !cur_u8(cur, &reserved) || !cur_u16(cur, &tlen))
		return IKE_PERR_SHORT;
	if (tlen < 8 || !cur_sub(cur, tlen - 4u, &body))
		return IKE_PERR_LENGTH;
	if ((more != 0 && more != 3) || !cur_u8(&body, &type) || !cur_u8(&body, &r2) || !cur_u16(&body, &id))
		return IKE_PERR_SYNTAX;
	*last = more == 0;
	t->type = type, t->id = id, t->key_bits = 0;
	while (body.left) {
		uint16_t at, av;
		if (!cur_u16(&body, &at) || !cur_u16(&body, &av))
			return IKE_PERR_SHORT;
		if (at & IKE_ATTR_TV) {
			if ((at & 0x7fff) == IKE_ATTR_KEY_LENGTH)
				t->key_bits = av;
		} else { /* TLV: av is the length; skip the value */
			const uint8_t *skip;
			if (!cur_bytes(&body, av, &skip))
				return IKE_PERR_LENGTH;
		}
	}
	return IKE_PERR_OK;
}

enum ike_perr ike_parse_sa(const struct ike_payload *p, struct ike_sa_payload *sa)
{
	struct cur cur = cur_init(p->body, p->len);
	sa->n = 0;
	bool last = false;
	while (!last) {
		uint8_t more, reserved, n_tr;
		uint16_t plen;
		struct cur body;
		if (!cur_u8(&cur, &more) || !cur_u8(&cur, &reserved) || !cur_u16(&cur, &plen))
			return IKE_PERR_SHORT;
		if (plen < 8 || !cur_sub(&cur, plen - 4u, &body))
			return IKE_PERR_LENGTH;
		if (more != 0 && more != 2)
			return IKE_PERR_SYNTAX;
		last = more == 0;
		if (sa->n == IKE_MAX_PROPOSALS)
			return IKE_PERR_TOO_MANY;
		struct ike_proposal *pr = &sa->prop[sa->n++];
		const uint8_t *spi;
		if (!cur_u8(&body, &pr->num) || !cur_u8(&body, &pr->protocol) || !cur_u8(&body, &pr->spi_len) ||
		    !cur_u8(&body, &n_tr))
			return IKE_PERR_SHORT;
		if (pr->spi_len > sizeof(pr->spi) || !cur_bytes(&body, pr->spi_len, &spi))
			return IKE_PERR_SYNTAX;
		memcpy(pr->spi, spi, pr->spi_len);
		if (n_tr > IKE_MAX_TRANSFORMS)
			return IKE_PERR_TOO_MANY;
		pr->n_tr = 0;
		bool tlast = n_tr == 0;
		while (!tlast) {
			if (pr->n_tr == n_tr)
				return IKE_PERR_SYNTAX; /* more transforms than announced */
			enum ike_perr e = parse_transform(&body, &tlast, &pr->tr[pr->n_tr]);
			if (e)
				return e;
			pr->n_tr++;
		}
		if (pr->n_tr != n_tr || body.left)
			return IKE_PERR_SYNTAX;
	}
	return cur.left ? IKE_PERR_LENGTH : IKE_PERR_OK;
}

enum ike_perr ike_parse_notify(const struct ike_payload *p, struct ike_notify_payload *n)
{
	struct cur cur = cur_init(p->body, p->len);
	if (!cur_u8(&cur, &n->protocol) || !cur_u8(&cur, &n->spi_len) || !cur_u16(&cur, &n->type))
		return IKE_PERR_SHORT;
	if (!cur_bytes(&cur, n->spi_len, &n->spi))
		return IKE_PERR_LENGTH;
	n->data = cur.p, n->data_len = cur.left;
	return IKE_PERR_OK;
}

enum ike_perr ike_parse_ke(const struct ike_payload *p, struct ike_ke_payload *ke)
{
	struct cur cur = cur_init(p->body, p->len);
	uint16_t reserved;
	if (!cur_u16(&cur, &ke->group) || !cur_u16(&cur, &reserved))
		return IKE_PERR_SHORT;
	ke->data = cur.p, ke->len = cur.left;
	return ke->len ? IKE_PERR_OK : IKE_PERR_SYNTAX;
}

enum ike_perr ike_parse_id(const struct ike_payload *p, struct ike_id_payload *id)
{
	struct cur cur = cur_init(p->body, p->len);
	const uint8_t *reserved;
	if (!cur_u8(&cur, &id->type) || !cur_bytes(&cur, 3, &reserved))
		return IKE_PERR_SHORT;
	id->data = cur.p, id->len = cur.left;
	if ((id->type == IKE_ID_IPV4 && id->len != 4) || (id->type == IKE_ID_IPV6 && id->len != 16))
		return IKE_PERR_SYNTAX;
	return IKE_PERR_OK;
}

enum ike_perr ike_parse_auth(const struct ike_payload *p, struct ike_auth_payload *a)
{
	struct cur cur = cur_init(p->body, p->len);
	const uint8_t *reserved;
	if (!cur_u8(&cur, &a->method) || !cur_bytes(&cur, 3, &reserved))
		return IKE_PERR_SHORT;
	a->data = cur.p, a->len = cur.left;
	return a->len ? IKE_PERR_OK : IKE_PERR_SYNTAX;
}

enum ike_perr ike_parse_delete(const struct ike_payload *p, struct ike_delete_payload *d)
{
	struct cur cur = cur_init(p->body, p->len);
	if (!cur_u8(&cur, &d->protocol) || !cur_u8(&cur, &d->spi_len) || !cur_u16(&cur, &d->n_spi))
		return IKE_PERR_SHORT;
	if (cur.left != (size_t)d->spi_len * d->n_spi)
		return IKE_PERR_LENGTH;
	if ((d->protocol == IKE_PROTO_IKE && (d->spi_len || d->n_spi)) ||
	    (d->protocol != IKE_PROTO_IKE && d->spi_len != 4))
		return IKE_PERR_SYNTAX;
	d->spis = cur.p;
	return IKE_PERR_OK;
}

enum ike_perr ike_parse_ts(const struct ike_payload *p, struct ike_ts_payload *ts)
{
	struct cur cur = cur_init(p->body, p->len);
	uint8_t n;
	const uint8_t *reserved;
	if (!cur_u8(&cur, &n) || !cur_bytes(&cur, 3, &reserved))
		return IKE_PERR_SHORT;
	if (n == 0 || n > BT_TS_MAX)
		return n ? IKE_PERR_TOO_MANY : IKE_PERR_SYNTAX;
	ts->n = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t type, proto;
		uint16_t slen;
		struct cur body;
		if (!cur_u8(&cur, &type) || !cur_u8(&cur, &proto) || !cur_u16(&cur, &slen))
			return IKE_PERR_SHORT;
		size_t alen = type == IKE_TS_IPV4_RANGE ? 4 : type == IKE_TS_IPV6_RANGE ? 16 : 0;
		if (!alen)
			return IKE_PERR_SYNTAX;
		if (slen != 8 + 2 * alen || !cur_sub(&cur, slen - 4u, &body))
			return IKE_PERR_LENGTH;
		struct bt_ts *t = &ts->ts[ts->n++];
		const uint8_t *lo, *hi;
		memset(t, 0, sizeof(*t));
		t->proto = proto;
		if (!cur_u16(&body, &t->port_lo) || !cur_u16(&body, &t->port_hi) || !cur_bytes(&body, alen, &lo) ||
		    !cur_bytes(&body, alen, &hi))
			return IKE_PERR_SHORT;
		t->lo.family = t->hi.family = alen == 4 ? AF_INET : AF_INET6;
		memcpy(t->lo.b, lo, alen);
		memcpy(t->hi.b, hi, alen);
		/* an empty range (start > end) is how "no traffic" would be said; refuse it here */
		if (bt_addr_cmp(&t->lo, &t->hi) > 0)
			return IKE_PERR_SYNTAX;
	}
	return cur.left ? IKE_PERR_LENGTH : IKE_PERR_OK;
}

/* --- building ---------------------------------------------------------------------------------- */

#define NO_PAYLOAD ((size_t)-1)

void ike_build_chain_begin(struct ike_builder *b, uint8_t *buf, size_t cap)
{
	b->w = wbuf_init(buf, cap);
	b->last_hdr = NO_PAYLOAD;
	b->next_at = NO_PAYLOAD;
	b->first = IKE_PL_NONE;
	b->chain_only = true;
}

void ike_build_begin(struct ike_builder *b, uint8_t *buf, size_t cap, const struct ike_hdr *h)
{
	b->w = wbuf_init(buf, cap);
	b->chain_only = false;
	b->first = IKE_PL_NONE;
	b->last_hdr = NO_PAYLOAD;
	wbuf_u64(&b->w, h->spi_i);
	wbuf_u64(&b->w, h->spi_r);
	b->next_at = b->w.len;
	wbuf_u8(&b->w, IKE_PL_NONE);
	wbuf_u8(&b->w, IKE_VERSION);
	wbuf_u8(&b->w, h->exchange);
	wbuf_u8(&b->w, h->flags);
	wbuf_u32(&b->w, h->msg_id);
	wbuf_u32(&b->w, 0); /* length, at the end */
}

static void close_payload(struct ike_builder *b)
{
	if (b->last_hdr != NO_PAYLOAD)
		wbuf_patch16(&b->w, b->last_hdr + 2, (uint16_t)(b->w.len - b->last_hdr));
}

void ike_build_payload(struct ike_builder *b, uint8_t type, bool critical)
{
	close_payload(b);
	if (b->next_at == NO_PAYLOAD)
		b->first = type;
	else if (!b->w.overflow && b->next_at < b->w.len)
		b->w.p[b->next_at] = type;
	b->last_hdr = b->w.len;
	b->next_at = b->w.len;
	wbuf_u8(&b->w, IKE_PL_NONE);
	wbuf_u8(&b->w, critical ? 0x80 : 0);
	wbuf_u16(&b->w, 0);
}

size_t ike_build_end(struct ike_builder *b)
{
	close_payload(b);
	if (b->w.len > IKE_MSG_MAX)
		b->w.overflow = true;
	if (!b->chain_only)
		wbuf_patch32(&b->w, 24, (uint32_t)b->w.len);
	return b->w.overflow ? 0 : b->w.len;
}

void ike_put_sa(struct ike_builder *b, const struct ike_sa_payload *sa)
{
	ike_build_payload(b, IKE_PL_SA, false);
	for (unsigned i = 0; i < sa->n; i++) {
		const struct ike_proposal *pr = &sa->prop[i];
		size_t start = b->w.len;
		wbuf_u8(&b->w, i + 1 < sa->n ? 2 : 0);
		wbuf_u8(&b->w, 0);
		wbuf_u16(&b->w, 0);
		wbuf_u8(&b->w, pr->num);
		wbuf_u8(&b->w, pr->protocol);
		wbuf_u8(&b->w, pr->spi_len);
		wbuf_u8(&b->w, (uint8_t)pr->n_tr);
		wbuf_bytes(&b->w, pr->spi, pr->spi_len);
		for (unsigned t = 0; t < pr->n_tr; t++) {
			const struct ike_transform *tr = &pr->tr[t];
			wbuf_u8(&b->w, t + 1 < pr->n_tr ? 3 : 0);
			wbuf_u8(&b->w, 0);
			wbuf_u16(&b->w, tr->key_bits ? 12 : 8);
			wbuf_u8(&b->w, tr->type);
			wbuf_u8(&b->w, 0);
			wbuf_u16(&b->w, tr->id);
			if (tr->key_bits) {
				wbuf_u16(&b->w, IKE_ATTR_TV | IKE_ATTR_KEY_LENGTH);
				wbuf_u16(&b->w, tr->key_bits);
			}
		}
		wbuf_patch16(&b->w, start + 2, (uint16_t)(b->w.len - start));
	}
}

void ike_put_notify(struct ike_builder *b, uint8_t protocol, const uint8_t *spi, uint8_t spi_len, uint16_t type,
		    const void *data, size_t len)
{
	ike_build_payload(b, IKE_PL_NOTIFY, false);
	wbuf_u8(&b->w, protocol);
	wbuf_u8(&b->w, spi_len);
	wbuf_u16(&b->w, type);
	wbuf_bytes(&b->w, spi, spi_len);
	wbuf_bytes(&b->w, data, len);
}

void ike_put_ke(struct ike_builder *b, uint16_t group, const void *data, size_t len)
{
	ike_build_payload(b, IKE_PL_KE, false);
	wbuf_u16(&b->w, group);
	wbuf_u16(&b->w, 0);
	wbuf_bytes(&b->w, data, len);
}

void ike_put_raw(struct ike_builder *b, uint8_t type, const void *data, size_t len)
{
	ike_build_payload(b, type, false);
	wbuf_bytes(&b->w, data, len);
}

void ike_put_id(struct ike_builder *b, uint8_t type, uint8_t id_type, const void *data, size_t len)
{
	ike_build_payload(b, type, false);
	wbuf_u8(&b->w, id_type);
	wbuf_u8(&b->w, 0);
	wbuf_u16(&b->w, 0);
	wbuf_bytes(&b->w, data, len);
}

void ike_put_auth(struct ike_builder *b, uint8_t method, const void *data, size_t len)
{
	ike_build_payload(b, IKE_PL_AUTH, false);
	wbuf_u8(&b->w, method);
	wbuf_u8(&b->w, 0);
	wbuf_u16(&b->w, 0);
	wbuf_bytes(&b->w, data, len);
}

void ike_put_ts(struct ike_builder *b, uint8_t type, const struct bt_ts *ts, unsigned n)
{
	ike_build_payload(b, type, false);
	wbuf_u8(&b->w, (uint8_t)n);
	wbuf_u8(&b->w, 0);
	wbuf_u16(&b->w, 0);
	for (unsigned i = 0; i < n; i++) {
		size_t alen = ts[i].lo.family == AF_INET6 ? 16 : 4;
		wbuf_u8(&b->w, alen == 4 ? IKE_TS_IPV4_RANGE : IKE_TS_IPV6_RANGE);
		wbuf_u8(&b->w, ts[i].proto);
		wbuf_u16(&b->w, (uint16_t)(8 + 2 * alen));
		wbuf_u16(&b->w, ts[i].port_lo);
		wbuf_u16(&b->w, ts[i].port_hi);
		wbuf_bytes(&b->w, ts[i].lo.b, alen);
		wbuf_bytes(&b->w, ts[i].hi.b, alen);
	}
}
