/* esp.c — RFC 4303 encapsulation and decapsulation in place, with lifetimes and counters. */
#include "esp/esp.h"

#include <openssl/crypto.h>
#include <string.h>

#include "esp/esp_wire.h"
#include "esp/replay.h"
#include "esp/xform.h"

/* Without ESN the counter must not cycle (RFC 4303 3.3.3); warn for rekey well before. */
#define SEQ32_SOFT (0xffffffffull - (1ull << 24))

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static enum esp_drop drop(struct esp_sa *sa, enum esp_drop why)
{
	atomic_fetch_add_explicit(&sa->ctr.drops[why], 1, memory_order_relaxed);
	return why;
}

/* Count a packet and raise lifetime events (the hard limit stops the next packet). */
static void account(struct esp_sa *sa, size_t bytes)
{
	uint64_t pk = atomic_fetch_add_explicit(&sa->ctr.packets, 1, memory_order_relaxed) + 1;
	uint64_t by = atomic_fetch_add_explicit(&sa->ctr.bytes, bytes, memory_order_relaxed) + bytes;
	uint32_t ev = 0;
	if ((sa->soft.packets && pk >= sa->soft.packets) || (sa->soft.bytes && by >= sa->soft.bytes))
		ev |= ESP_EV_SOFT;
	if ((sa->hard.packets && pk >= sa->hard.packets) || (sa->hard.bytes && by >= sa->hard.bytes))
		ev |= ESP_EV_HARD;
	if (ev && (atomic_load_explicit(&sa->events, memory_order_relaxed) & ev) != ev)
		atomic_fetch_or(&sa->events, ev);
}

static inline bool expired(const struct esp_sa *sa)
{
	return atomic_load_explicit(&sa->events, memory_order_relaxed) & ESP_EV_HARD;
}

/* AEAD additional data: SPI || seq, or SPI || seq_hi || seq_lo with ESN (RFC 4106 5). */
static size_t make_aad(const struct esp_sa *sa, const uint8_t *h, const uint8_t seq_hi[4], uint8_t aad[12])
{
	memcpy(aad, h, 4);
	if (!sa->esn) {
		memcpy(aad + 4, h + 4, 4);
		return 8;
	}
	memcpy(aad + 4, seq_hi, 4);
	memcpy(aad + 8, h + 4, 4);
	return 12;
}

size_t esp_overhead(const struct esp_sa *sa, size_t payload_len)
{
	struct xform_info xi;
	if (xform_info(sa->enc, sa->integ, &xi) != 0)
		return ESP_MAX_OVERHEAD;
	size_t body = (payload_len + 2 + xi.block - 1) / xi.block * xi.block;
	return sizeof(struct esp_hdr) + xi.iv_len + (body - payload_len) + xi.icv_len;
}

size_t esp_header_len(const struct esp_sa *sa)
{
	struct xform_info xi;
	if (xform_info(sa->enc, sa->integ, &xi) != 0)
		return sizeof(struct esp_hdr);
	return sizeof(struct esp_hdr) + xi.iv_len;
}

uint32_t esp_peek_spi(const uint8_t *data, size_t len)
{
	return len >= sizeof(struct esp_hdr) ? get32(data) : 0;
}

/* This lane's crypto state, built on its first packet (only this lane touches the slot). */
static struct esp_xform *lane_xform(struct esp_sa *sa, unsigned lane)
{
	struct esp_xform **slot = &sa->xf[lane % sa->n_lanes];
	if (!*slot)
		*slot = xform_new(sa, NULL, 0);
	return *slot;
}

enum esp_drop esp_encap(struct esp_sa *sa, unsigned lane, struct pkt *p, uint8_t nh)
{
	struct xform_info xi;
	struct esp_xform *xf = lane_xform(sa, lane);
	xform_info(sa->enc, sa->integ, &xi);

	if (!xf)
		return drop(sa, ESP_DROP_NOMEM);
	if (expired(sa))
		return drop(sa, ESP_DROP_EXPIRED);
	size_t plen = p->len;
	size_t body = (plen + 2 + xi.block - 1) / xi.block * xi.block;
	size_t pad = body - plen - 2;
	size_t hdr = sizeof(struct esp_hdr) + xi.iv_len;
	if (p->off < hdr || pkt_tailroom(p) < pad + 2 + xi.icv_len)
		return drop(sa, ESP_DROP_NOBUF);

	uint64_t seq = atomic_fetch_add_explicit(&sa->seq_out, 1, memory_order_relaxed);
	if (seq == 0 || (!sa->esn && seq > 0xffffffffull) || seq == UINT64_MAX) {
		atomic_fetch_or(&sa->events, ESP_EV_HARD);
		return drop(sa, ESP_DROP_SEQ_EXHAUSTED);
	}
	uint64_t limit = atomic_load_explicit(&sa->seq_limit, memory_order_relaxed);
	if (limit && seq > limit)
		return drop(sa, ESP_DROP_SEQ_EXHAUSTED);
	if (!sa->esn && seq >= SEQ32_SOFT && !(atomic_load(&sa->events) & ESP_EV_SEQ_SOFT))
		atomic_fetch_or(&sa->events, ESP_EV_SEQ_SOFT);

	uint8_t *payload = pkt_data(p);
	uint8_t *trailer = payload + plen;
	for (size_t i = 0; i < pad; i++)
		trailer[i] = (uint8_t)(i + 1); /* RFC 4303 2.4: 1, 2, 3, ... */
	trailer[pad] = (uint8_t)pad;
	trailer[pad + 1] = nh;

	uint8_t *h = payload - hdr;
	put32(h, sa->spi);
	put32(h + 4, (uint32_t)seq);
	uint8_t *iv = h + 8;
	uint8_t *icv = payload + body;
	if (xform_make_iv(xf, sa, seq, iv, xi.iv_len) != 0)
		return drop(sa, ESP_DROP_IO);

	uint8_t seq_hi[4];
	put32(seq_hi, (uint32_t)(seq >> 32));
	if (xi.aead) {
		uint8_t aad[12];
		if (xform_encrypt(xf, sa, aad, make_aad(sa, h, seq_hi, aad), iv, payload, body, icv) != 0)
			return drop(sa, ESP_DROP_IO);
	} else {
		if (xform_encrypt(xf, sa, NULL, 0, iv, payload, body, NULL) != 0 ||
		    xform_mac(xf, h, hdr + body, seq_hi, sa->esn ? 4 : 0, icv, xi.icv_len) != 0)
			return drop(sa, ESP_DROP_IO);
	}
	account(sa, plen);
	p->off -= hdr;
	p->len = hdr + body + xi.icv_len;
	return ESP_DROP_NONE;
}

enum esp_drop esp_decap(struct esp_sa *sa, unsigned lane, struct pkt *p, uint8_t *nh)
{
	struct xform_info xi;
	struct esp_xform *xf = lane_xform(sa, lane);
	xform_info(sa->enc, sa->integ, &xi);

	if (!xf)
		return drop(sa, ESP_DROP_NOMEM);
	if (expired(sa))
		return drop(sa, ESP_DROP_EXPIRED);
	uint8_t *h = pkt_data(p);
	size_t hdr = sizeof(struct esp_hdr) + xi.iv_len;
	if (p->len < hdr + xi.icv_len + xi.block)
		return drop(sa, ESP_DROP_MALFORMED);
	size_t body = p->len - hdr - xi.icv_len;
	if (body % xi.block)
		return drop(sa, ESP_DROP_MALFORMED);

	uint64_t seq = replay_infer(&sa->replay, get32(h + 4), sa->esn);
	if (!replay_check(&sa->replay, seq))
		return drop(sa, ESP_DROP_REPLAY);

	uint8_t *iv = h + 8, *payload = h + hdr, *icv = payload + body;
	uint8_t seq_hi[4];
	put32(seq_hi, (uint32_t)(seq >> 32));
	if (xi.aead) {
		uint8_t aad[12];
		if (xform_decrypt(xf, sa, aad, make_aad(sa, h, seq_hi, aad), iv, payload, body, icv) != 0)
			return drop(sa, ESP_DROP_AUTH);
	} else {
		uint8_t mac[32];
		if (xform_mac(xf, h, hdr + body, seq_hi, sa->esn ? 4 : 0, mac, xi.icv_len) != 0)
			return drop(sa, ESP_DROP_IO);
		if (CRYPTO_memcmp(mac, icv, xi.icv_len) != 0)
			return drop(sa, ESP_DROP_AUTH);
		if (xform_decrypt(xf, sa, NULL, 0, iv, payload, body, NULL) != 0)
			return drop(sa, ESP_DROP_IO);
	}

	uint8_t pad = payload[body - 2];
	if ((size_t)pad + 2 > body)
		return drop(sa, ESP_DROP_PAD);
	size_t plen = body - 2 - pad;
	for (unsigned i = 0; i < pad; i++)
		if (payload[plen + i] != (uint8_t)(i + 1))
			return drop(sa, ESP_DROP_PAD);

	/* authenticated: only now may the window move */
	if (!replay_update(&sa->replay, seq))
		return drop(sa, ESP_DROP_REPLAY);
	*nh = payload[body - 1];
	account(sa, plen);
	p->off += hdr;
	p->len = plen;
	return ESP_DROP_NONE;
}
