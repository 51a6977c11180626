/* tlv.h — attributes, the shape of the session context (daemon/xfer.c): a type (16 bits), a length
 * (32 bits) and a value, big-endian, on the cursor and write buffer of cursor.h. Values nest
 * (an attribute's value is itself a list of attributes), and a reader skips types it does not
 * know, so a newer version's additions are not fatal to an older reader. */
#ifndef BT_TLV_H
#define BT_TLV_H

#include "util/addr.h"
#include "util/cursor.h"

/* An attribute whose value follows (nested attributes, ...): returns where its length goes. */
static inline size_t tlv_open(struct wbuf *w, uint16_t type)
{
	wbuf_u16(w, type);
	size_t at = w->len;
	wbuf_u32(w, 0);
	return at;
}

static inline void tlv_close(struct wbuf *w, size_t at) { wbuf_patch32(w, at, (uint32_t)(w->len - at - 4)); }

static inline void tlv_bytes(struct wbuf *w, uint16_t type, const void *v, size_t n)
{
	wbuf_u16(w, type);
	wbuf_u32(w, (uint32_t)n);
	wbuf_bytes(w, v, n);
}

static inline void tlv_u8(struct wbuf *w, uint16_t type, uint8_t v) { tlv_bytes(w, type, &v, 1); }

static inline void tlv_u16(struct wbuf *w, uint16_t type, uint16_t v)
{
	wbuf_u16(w, type), wbuf_u32(w, 2), wbuf_u16(w, v);
}

static inline void tlv_u32(struct wbuf *w, uint16_t type, uint32_t v)
{
	wbuf_u16(w, type), wbuf_u32(w, 4), wbuf_u32(w, v);
}

static inline void tlv_u64(struct wbuf *w, uint16_t type, uint64_t v)
{
	wbuf_u16(w, type), wbuf_u32(w, 8), wbuf_u64(w, v);
}

/* An address: family (1 byte) then 4 or 16 bytes. */
static inline void tlv_addr(struct wbuf *w, uint16_t type, const struct bt_addr *a)
{
	size_t at = tlv_open(w, type);
	wbuf_u8(w, a->family);
	if (a->family)
		wbuf_bytes(w, a->b, bt_addr_len(a));
	tlv_close(w, at);
}

/* The next attribute: 1 with its type and value, 0 at the end, -1 if the rest is malformed. */
static inline int tlv_next(struct cur *c, uint16_t *type, struct cur *val)
{
	uint32_t n;
	if (!c->left)
		return 0;
	if (!cur_u16(c, type) || !cur_u32(c, &n) || !cur_sub(c, n, val))
		return -1;
	return 1;
}

/* Values: each must have exactly its size. */
static inline bool tlv_get_u8(struct cur v, uint8_t *o) { return v.left == 1 && cur_u8(&v, o); }
static inline bool tlv_get_bool(struct cur v, bool *o)
{
	uint8_t b;
	if (!tlv_get_u8(v, &b) || b > 1)
		return false;
	*o = b;
	return true;
}
static inline bool tlv_get_u16(struct cur v, uint16_t *o) { return v.left == 2 && cur_u16(&v, o); }
static inline bool tlv_get_u32(struct cur v, uint32_t *o) { return v.left == 4 && cur_u32(&v, o); }
static inline bool tlv_get_u64(struct cur v, uint64_t *o) { return v.left == 8 && cur_u64(&v, o); }

/* Exactly n bytes. */
static inline bool tlv_get_fixed(struct cur v, void *o, size_t n)
{
	if (v.left != n)
		return false;
	if (n)
		memcpy(o, v.p, n);
	return true;
}

/* Up to cap bytes; *n gets the length. */
static inline bool tlv_get_var(struct cur v, void *o, size_t cap, size_t *n)
{
	if (v.left > cap)
		return false;
	if (v.left)
		memcpy(o, v.p, v.left);
	*n = v.left;
	return true;
}

/* A string into buf (at most len - 1 bytes, no NUL inside), NUL-terminated. */
static inline bool tlv_get_str(struct cur v, char *buf, size_t len)
{
	if (v.left >= len || memchr(v.p, 0, v.left))
		return false;
	memcpy(buf, v.p, v.left);
	buf[v.left] = 0;
	return true;
}

static inline bool tlv_get_addr(struct cur v, struct bt_addr *a)
{
	uint8_t fam;
	memset(a, 0, sizeof(*a));
	if (!cur_u8(&v, &fam))
		return false;
	if (fam == 0)
		return v.left == 0;
	if ((fam != AF_INET || v.left != 4) && (fam != AF_INET6 || v.left != 16))
		return false;
	a->family = fam;
	memcpy(a->b, v.p, v.left);
	return true;
}

#endif
