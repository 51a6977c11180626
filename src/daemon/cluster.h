/* cluster.h — the transfer channel between the gateways of a cluster (a session's context moves from
 * one batond to another: `batonctl migrate`), its wire format, and the Mono-LAN shared addresses
 * that move with the sessions (vip.c).
 *
 * One TCP connection per transfer, opened by the node that gives the session away (the source);
 * make before break:
 *   target -> source  "BTX1" | challenge (16 random bytes)
 *   source -> target  u32 length | a copy of the context (the session runs on at the source), sealed
 *                     by xfer_get with bind = challenge | "put"
 *   target -> source  u32 length | reply sealed with the cluster key, AAD = challenge | "reply"; on
 *                     success the target runs the session (and holds the shared addresses)
 *   source -> target  u32 length | the context as the source stopped it (bind = challenge | "fin"):
 *                     the target's replay windows take in what the source saw after the copy
 *                     (xfer_merge)
 * Lengths are big-endian. The reply (plaintext, before sealing):
 *   u8 version (1) | u8 status (0 ok, 1 refused) | u8 flags (bit 0 multi_lan) | u8 0 |
 *   u32 import time in microseconds | u16 n | n bytes of error text (no NUL)
 */
#ifndef BT_DAEMON_CLUSTER_H
#define BT_DAEMON_CLUSTER_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;

#define CLUSTER_MAGIC "BTX1"
#define CLUSTER_CHALLENGE 16
#define CLUSTER_HELLO (4 + CLUSTER_CHALLENGE)
#define CLUSTER_BIND_PUT (CLUSTER_CHALLENGE + 3)  /* challenge | "put" */
#define CLUSTER_FRAME_MAX (1u << 20)              /* a context is a few tens of KiB */
#define CLUSTER_REPLY_VERSION 1
#define CLUSTER_REPLY_HDR 10
#define CLUSTER_ERR_MAX 255
#define CLUSTER_REPLY_MAX (CLUSTER_REPLY_HDR + CLUSTER_ERR_MAX + 28) /* + XFER_AEAD_OVERHEAD */
#define CLUSTER_TIMEOUT_S 2.0                     /* per connection (target), per migration (source) */
#define CLUSTER_CONNS_MAX 8                       /* transfers in progress on the target at once */

struct cluster_reply {
	bool ok, multi_lan;
	uint32_t import_us;
	char error[CLUSTER_ERR_MAX + 1];
};

/* A u32-length-prefixed frame arriving in pieces. Zero-initialise; cluster_rx_free after use. */
struct cluster_rx {
	uint8_t hdr[4];
	size_t hdr_got;
	uint8_t *buf;      /* malloc'ed once the length is known */
	uint32_t len, got;
	uint32_t max;      /* largest length accepted */
};

/* Take up to n bytes of input; *used tells how many were consumed. Returns 1 when the frame is complete
 * (rx->buf, rx->len), 0 when more is needed, -1 for a length of 0 or above rx->max (-ENOMEM: no memory). */
int cluster_rx_feed(struct cluster_rx *rx, const uint8_t *p, size_t n, size_t *used);
/* Zero and free the frame's buffer. */
void cluster_rx_free(struct cluster_rx *rx);

/* Seal a reply for the transfer with this challenge: out (CLUSTER_REPLY_MAX bytes) gets the sealed
 * bytes (no length prefix), *out_len their number. Returns 0 or -1. */
int cluster_reply_seal(const uint8_t key[32], const uint8_t chal[CLUSTER_CHALLENGE], const struct cluster_reply *r,
		       uint8_t *out, size_t *out_len);
/* Open and decode a sealed reply. Returns 0, or -1 (does not authenticate, or malformed). */
int cluster_reply_open(const uint8_t key[32], const uint8_t chal[CLUSTER_CHALLENGE], const uint8_t *in, size_t n,
		       struct cluster_reply *r);
/* Decode an opened reply (exact size). Returns 0 or -1. */
int cluster_reply_decode(const uint8_t *pt, size_t n, struct cluster_reply *r);

/* cluster.c: the listener on cluster.listen:port in the daemon's loop (nothing without listen). */
int cluster_start(struct daemon *d, char *err, size_t errlen);
void cluster_stop(struct daemon *d);
/* Hand the session `name` (as xfer_get names it) to the node `to` (cluster.nodes) over the channel:
 * a bounded synchronous exchange (CLUSTER_TIMEOUT_S). The session stops here only once the target
 * runs it: on failure it simply goes on here. A session that ends at a Mono-LAN shared address
 * moves alone only if no other session here ends there (the address moves as a whole); with all,
 * every session that ends where `name` does moves, one after another.
 * Returns the control response. */
json_t *cluster_migrate(struct daemon *d, const char *name, const char *to, bool all);
/* {"migrations_out", "migrations_in", "migration_failures", "channel_drops", "vip_claims", "vip_releases"} */
json_t *cluster_stats_json(struct daemon *d);

/* Counters of the channel and of the shared addresses; d->cluster. */
struct cluster {
	int fd;                 /* listener, -1: none */
	int pkt_fd;             /* AF_PACKET socket for gratuitous ARP, kept: its close waits for an RCU grace period */
	ev_io w;
	struct xconn *conns;    /* transfers in progress (target side) */
	unsigned n_conns;
	uint64_t migrations_out, migrations_in, migration_failures, channel_drops, vip_claims, vip_releases;
};

#endif
