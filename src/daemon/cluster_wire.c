/* cluster_wire.c — the transfer channel's bytes (cluster.h): length-prefixed frames read in pieces,
 * and the target's reply, sealed with the cluster key and bound to the transfer's challenge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "daemon/cluster.h"
#include "daemon/xfer.h"

_Static_assert(CLUSTER_REPLY_MAX == CLUSTER_REPLY_HDR + CLUSTER_ERR_MAX + XFER_AEAD_OVERHEAD, "reply size");

int cluster_rx_feed(struct cluster_rx *rx, const uint8_t *p, size_t n, size_t *used)
{
	size_t k = 0;
	*used = 0;
	if (rx->hdr_got < 4) {
		k = 4 - rx->hdr_got < n ? 4 - rx->hdr_got : n;
		memcpy(rx->hdr + rx->hdr_got, p, k);
		rx->hdr_got += k;
		*used = k;
		if (rx->hdr_got < 4)
			return 0;
		rx->len = (uint32_t)rx->hdr[0] << 24 | (uint32_t)rx->hdr[1] << 16 | (uint32_t)rx->hdr[2] << 8 | rx->hdr[3];
		if (rx->len == 0 || rx->len > rx->max)
			return -1;
		if (!(rx->buf = malloc(rx->len)))
			return -ENOMEM;
	}
	size_t m = rx->len - rx->got < n - k ? rx->len - rx->got : n - k;
	memcpy(rx->buf + rx->got, p + k, m);
	rx->got += (uint32_t)m;
	*used = k + m;
	return rx->got == rx->len;
}

void cluster_rx_free(struct cluster_rx *rx)
{
	if (rx->buf)
		OPENSSL_cleanse(rx->buf, rx->got);
	free(rx->buf);
	rx->buf = NULL;
	rx->hdr_got = 0, rx->len = rx->got = 0;
}

static const uint8_t reply_aad[] = {'r', 'e', 'p', 'l', 'y'};

int cluster_reply_seal(const uint8_t key[32], const uint8_t chal[CLUSTER_CHALLENGE], const struct cluster_reply *r,
		       uint8_t *out, size_t *out_len)
{
	uint8_t pt[CLUSTER_REPLY_HDR + CLUSTER_ERR_MAX];
	size_t el = r->ok ? 0 : strnlen(r->error, CLUSTER_ERR_MAX);
	pt[0] = CLUSTER_REPLY_VERSION, pt[1] = r->ok ? 0 : 1, pt[2] = r->multi_lan ? 1 : 0, pt[3] = 0;
	pt[4] = (uint8_t)(r->import_us >> 24), pt[5] = (uint8_t)(r->import_us >> 16);
	pt[6] = (uint8_t)(r->import_us >> 8), pt[7] = (uint8_t)r->import_us;
	pt[8] = (uint8_t)(el >> 8), pt[9] = (uint8_t)el;
	memcpy(pt + CLUSTER_REPLY_HDR, r->error, el);
	size_t n = CLUSTER_REPLY_HDR + el;
	int rc = xfer_aead_seal(key, chal, CLUSTER_CHALLENGE, reply_aad, sizeof(reply_aad), pt, n, out);
	OPENSSL_cleanse(pt, sizeof(pt));
	*out_len = rc ? 0 : n + XFER_AEAD_OVERHEAD;
	return rc;
}

int cluster_reply_decode(const uint8_t *pt, size_t n, struct cluster_reply *r)
{
	memset(r, 0, sizeof(*r));
	if (n < CLUSTER_REPLY_HDR || pt[0] != CLUSTER_REPLY_VERSION || pt[1] > 1 || pt[2] > 1 || pt[3])
		return -1;
	size_t el = (size_t)pt[8] << 8 | pt[9];
	if (el > CLUSTER_ERR_MAX || n != CLUSTER_REPLY_HDR + el || (pt[1] == 0 && el))
		return -1;
	r->ok = pt[1] == 0, r->multi_lan = pt[2];
	r->import_us = (uint32_t)pt[4] << 24 | (uint32_t)pt[5] << 16 | (uint32_t)pt[6] << 8 | pt[7];
	/* the text is the peer's: keep it printable */
	for (size_t i = 0; i < el; i++) {
		uint8_t c = pt[CLUSTER_REPLY_HDR + i];
		r->error[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	return 0;
}

int cluster_reply_open(const uint8_t key[32], const uint8_t chal[CLUSTER_CHALLENGE], const uint8_t *in, size_t n,
		       struct cluster_reply *r)
{
	uint8_t pt[CLUSTER_REPLY_MAX];
	memset(r, 0, sizeof(*r));
	if (n < XFER_AEAD_OVERHEAD || n > CLUSTER_REPLY_MAX ||
	    xfer_aead_open(key, chal, CLUSTER_CHALLENGE, reply_aad, sizeof(reply_aad), in, n, pt) != 0)
		return -1;
	int rc = cluster_reply_decode(pt, n - XFER_AEAD_OVERHEAD, r);
	OPENSSL_cleanse(pt, sizeof(pt));
	return rc;
}
