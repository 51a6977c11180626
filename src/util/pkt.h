/* pkt.h — a packet buffer with head- and tailroom, so ESP is added and removed in place. */
#ifndef BT_PKT_H
#define BT_PKT_H

#include <stddef.h>
#include <stdint.h>

/* Data is buf[off, off + len). cap is the size of buf. */
struct pkt {
	uint8_t *buf;
	size_t cap;
	size_t off;
	size_t len;
};

static inline uint8_t *pkt_data(const struct pkt *p) { return p->buf + p->off; }
static inline size_t pkt_headroom(const struct pkt *p) { return p->off; }
static inline size_t pkt_tailroom(const struct pkt *p) { return p->cap - p->off - p->len; }

#endif
