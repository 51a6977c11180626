/* ike_frag.h — IKEv2 message fragmentation (RFC 7383): splitting a message's encrypted payload chain
 * into Encrypted Fragment (SKF) messages, each protected on its own, and reassembling them. Pure
 * functions; the caller owns the socket, the timers and the decision to fragment. */
#ifndef BT_IKE_FRAG_H
#define BT_IKE_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ike/ike_msg.h"
#include "ike/ike_sk.h"

#define IKE_FRAG_MAX 32            /* fragments of one message we accept (RFC 7383 2.6.2 bounds) */
#define IKE_FRAG_BYTES_MAX 65536u  /* decrypted bytes of one message we keep */
#define IKE_FRAG_HDR_LEN 8         /* SKF generic header + Fragment Number + Total Fragments */

/* The largest IKE message that fits an IP datagram of `mtu` bytes: minus the IPv4 or IPv6 header,
 * UDP, and the non-ESP marker when the message goes to port 4500. 0 if nothing fits. RFC 7383 2.5.1
 * suggests 1280 (IPv6) and 576 (IPv4) as the mtu when the path's is unknown. */
size_t ike_frag_max_len(size_t mtu, bool ipv6, bool non_esp_marker);

/* Split the plaintext payload chain `inner` (first type `first`) into SKF messages of at most
 * frag_max bytes each, all with header h (its next-payload and length are set per fragment),
 * numbered from 1, each encrypted and integrity-protected on its own (AEAD: the IKE header and the
 * 8-byte SKF header are the associated data, RFC 7383 2.5.3). The fragments are written back to
 * back into out; frag_len[i] receives the length of fragment i+1. Returns the number of fragments,
 * or 0 if frag_max leaves no room for data, more than max_frags (or IKE_FRAG_MAX) would be needed,
 * or out is too small. */
unsigned ike_frag_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		       uint8_t first, const uint8_t *inner, size_t inner_len, size_t frag_max, uint8_t *out,
		       size_t cap, size_t *frag_len, unsigned max_frags);

/* Why a received fragment was not stored. Each is counted in ike_frag_reasm.drops. */
enum ike_frag_drop {
	IKE_FRAG_DROP_MALFORMED,  /* not a single SKF payload, or its lengths disagree */
	IKE_FRAG_DROP_HEADER,     /* message ID, exchange or flags differ from the message in progress */
	IKE_FRAG_DROP_NUMBER,     /* Fragment Number 0 or above Total Fragments, or Total 0 */
	IKE_FRAG_DROP_TOO_MANY,   /* Total Fragments above IKE_FRAG_MAX */
	IKE_FRAG_DROP_OLD_TOTAL,  /* Total Fragments below the one in progress (RFC 7383 2.6.2) */
	IKE_FRAG_DROP_DUPLICATE,  /* that fragment number is already stored */
	IKE_FRAG_DROP_ICV,        /* integrity check (or padding) failed */
	IKE_FRAG_DROP_MEMORY,     /* storing it would exceed IKE_FRAG_BYTES_MAX */
	IKE_FRAG_DROP_COMPLETE,   /* the message was reassembled already */
	IKE_FRAG_DROP_TIMEOUT,    /* a partial message expired and was discarded (not this fragment) */
	IKE_FRAG_DROP_RESTART,    /* a higher Total Fragments discarded the stored ones (not this fragment) */
	IKE_FRAG_DROP_COUNT
};
const char *ike_frag_drop_name(enum ike_frag_drop d);

enum ike_frag_result {
	IKE_FRAG_DROPPED = -1, /* *why says why */
	IKE_FRAG_STORED = 0,   /* waiting for more */
	IKE_FRAG_COMPLETE = 1, /* the whole chain is ready */
};

/* Reassembly of one message: one per (IKE SA, message ID, direction). Owns the decrypted fragments
 * and the reassembled chain; ike_frag_reasm_clear zeroes and frees them. */
struct ike_frag_reasm {
	uint32_t msg_id;
	uint8_t exchange, flags;
	bool have_hdr;             /* exchange and flags set by the first authentic fragment */
	uint16_t total;            /* Total Fragments in progress, 0 before the first */
	uint16_t n;                /* fragments stored */
	uint8_t first;             /* first inner payload type, from fragment 1 */
	bool complete;
	size_t bytes;              /* decrypted bytes stored */
	uint64_t started_ms, timeout_ms;
	uint8_t *frag[IKE_FRAG_MAX];
	size_t frag_len[IKE_FRAG_MAX];
	uint8_t *chain;            /* the reassembled chain once complete */
	size_t chain_len;
	uint32_t drops[IKE_FRAG_DROP_COUNT];
};

void ike_frag_reasm_init(struct ike_frag_reasm *r, uint32_t msg_id, uint64_t now_ms, uint64_t timeout_ms);
void ike_frag_reasm_clear(struct ike_frag_reasm *r);
/* True if a partial message has waited longer than the timeout (for the caller's timer). */
bool ike_frag_reasm_expired(const struct ike_frag_reasm *r, uint64_t now_ms);

/* Take one received SKF message (whole, IKE header first; the caller has matched the SPIs and the
 * direction). Checks its numbers, then its integrity with keys ke/ka, and stores its plaintext. An
 * expired partial message is discarded first and reassembly starts over with this fragment. On
 * IKE_FRAG_COMPLETE, *first and *inner (owned by r, valid until clear) give the reassembled chain
 * for ike_parse_chain. msg is not modified. */
enum ike_frag_result ike_frag_reasm_feed(struct ike_frag_reasm *r, const struct ike_sk_suite *s, const uint8_t *ke,
					 const uint8_t *ka, const uint8_t *msg, size_t len, uint64_t now_ms,
					 uint8_t *first, const uint8_t **inner, size_t *inner_len,
					 enum ike_frag_drop *why);

#endif
