/* cursor.h — the one parsing discipline: a bounds-checked read cursor whose reads fail rather than
 * run past the end, and a write buffer that records overflow instead of writing past it. */
#ifndef BT_CURSOR_H
#define BT_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cur {
	const uint8_t *p;
	size_t left;
};

static inline struct cur cur_init(const uint8_t *p, size_t len) { return (struct cur){p, len}; }

static inline bool cur_u8(struct cur *c, uint8_t *v)
{
	if (c->left < 1)
		return false;
	*v = c->p[0];
	c->p++, c->left--;
	return true;
}

static inline bool cur_u16(struct cur *c, uint16_t *v)
{
	if (c->left < 2)
		return false;
	*v = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2, c->left -= 2;
	return true;
}

static inline bool cur_u32(struct cur *c, uint32_t *v)
{
	if (c->left < 4)
		return false;
	*v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
	c->p += 4, c->left -= 4;
	return true;
}

static inline bool cur_u64(struct cur *c, uint64_t *v)
{
	uint32_t hi, lo;
	if (c->left < 8 || !cur_u32(c, &hi) || !cur_u32(c, &lo))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

/* Borrow n bytes (pointer into the buffer being parsed). */
static inline bool cur_bytes(struct cur *c, size_t n, const uint8_t **out)
{
	if (c->left < n)
		return false;
	*out = c->p;
	c->p += n, c->left -= n;
	return true;
}

/* Split off the next n bytes as a cursor of their own. */
static inline bool cur_sub(struct cur *c, size_t n, struct cur *sub)
{
	const uint8_t *p;
	if (!cur_bytes(c, n, &p))
		return false;
	*sub = cur_init(p, n);
	return true;
}

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

static inline struct wbuf wbuf_init(uint8_t *p, size_t cap) { return (struct wbuf){p, 0, cap, false}; }

static inline uint8_t *wbuf_reserve(struct wbuf *w, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return NULL;
	}
	uint8_t *r = w->p + w->len;
	w->len += n;
	return r;
}

static inline void wbuf_u8(struct wbuf *w, uint8_t v)
{
	uint8_t *p = wbuf_reserve(w, 1);
	if (p)
		p[0] = v;
}

static inline void wbuf_u16(struct wbuf *w, uint16_t v)
{
	uint8_t *p = wbuf_reserve(w, 2);
	if (p)
		p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}

static inline void wbuf_u32(struct wbuf *w, uint32_t v)
{
	uint8_t *p = wbuf_reserve(w, 4);
	if (p)
		p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline void wbuf_u64(struct wbuf *w, uint64_t v)
{
	wbuf_u32(w, (uint32_t)(v >> 32));
	wbuf_u32(w, (uint32_t)v);
}

static inline void wbuf_bytes(struct wbuf *w, const void *src, size_t n)
{
	uint8_t *p = wbuf_reserve(w, n);
	if (p && n)
		memcpy(p, src, n);
}

/* Write a big-endian 16-bit value at an earlier offset (lengths known only at the end). */
static inline void wbuf_patch16(struct wbuf *w, size_t at, uint16_t v)
{
	if (!w->overflow && at + 2 <= w->len)
		w->p[at] = (uint8_t)(v >> 8), w->p[at + 1] = (uint8_t)v;
}

static inline void wbuf_patch32(struct wbuf *w, size_t at, uint32_t v)
{
	if (!w->overflow && at + 4 <= w->len)
		w->p[at] = (uint8_t)(v >> 24), w->p[at + 1] = (uint8_t)(v >> 16), w->p[at + 2] = (uint8_t)(v >> 8),
		w->p[at + 3] = (uint8_t)v;
}

#endif
