/* xfer.h — the transfer primitive: a live session's context out of this daemon (GET) and into a
 * daemon (PUT), sealed with the cluster key whenever it leaves the process. Migration between
 * gateways, HA and key distribution are triggers around these two calls (SYSTEM.md, part D). */
#ifndef BT_DAEMON_XFER_H
#define BT_DAEMON_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp/sa.h"
#include "util/addr.h"

struct daemon;

/* What a GET or PUT did, for the caller to report and act on. */
struct xfer_info {
	char conn[BT_NAME_MAX];
	uint64_t spi_i, spi_r;          /* the IKE SA */
	struct bt_addr local, remote;   /* its outer addresses (after PUT: as installed) */
	uint16_t lport, rport;
	bool multi_lan;                 /* PUT: the context's local address is not ours: the session was
					 * rebound to our address and the peer told (mobike_gateway_move) */
	unsigned children;              /* Child SAs carried */
	unsigned spi_rekeys;            /* PUT: of them, rekeyed because an SPI collided here */
	uint64_t seq_jump;              /* PUT: how far outbound sequence numbers jumped */
	double ms;                      /* time the call took */
};

/* AES-256-GCM with a random nonce, as everything sealed with the cluster key is: out = nonce |
 * ciphertext | tag (n + XFER_AEAD_OVERHEAD bytes); aad then aad2 (either may be empty) are
 * authenticated with it. xfer_aead_open takes that back into out (n - XFER_AEAD_OVERHEAD bytes);
 * -1 if it does not authenticate (out is then zeroed). */
#define XFER_NONCE 12
#define XFER_TAG 16
#define XFER_AEAD_OVERHEAD (XFER_NONCE + XFER_TAG)
int xfer_aead_seal(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		   const uint8_t *pt, size_t n, uint8_t *out);
int xfer_aead_open(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		   const uint8_t *in, size_t n, uint8_t *out);

/* Multi-LAN: has the peer of the session (SPIs as PUT reported them) answered the gateway's
 * address update, so that it sends here now? True also when the session is gone. */
bool xfer_peer_told(struct daemon *d, uint64_t spi_i, uint64_t spi_r);

/* The final word of a migration that copied the session first (make before break): the old
 * node's context taken when it stopped the session, sealed with bind. Each inbound SA of the
 * session here marks seen every sequence number the old node's copy saw after the first context
 * was taken, so a packet that reached the old node then cannot be replayed here. Returns 0, or -1
 * with err (nothing changed). */
int xfer_merge(struct daemon *d, const uint8_t *in, size_t len, const uint8_t *bind, size_t bind_len, char *err,
	       size_t errlen);

/* Check an opened context (its attributes) through and through without installing anything:
 * PUT does this first, and the fuzzer feeds it. Returns 0, or -1 with err. */
int xfer_ctx_validate(const uint8_t *pt, size_t n, char *err, size_t errlen);


/* What GET does to the session: leaves it running (a copy: not to be put elsewhere while it runs
 * on, both would send the same sequence numbers under the same keys), leaves it running but caps
 * its outbound SAs below the numbers the context hands on (a migration's copy: the target starts
 * above them), or stops it here. */
enum xfer_take { XFER_COPY, XFER_HANDOVER, XFER_DETACH };

/* GET: the sealed context of the session `name` (a connection with exactly one IKE SA, or the
 * 16-hex-digit SPI of either side). bind (may be NULL) is bound into the seal: the transfer channel
 * binds its challenge, so a context sealed for one transfer cannot be replayed into another. With
 * XFER_DETACH the session stops here at once and silently (no delete to the peer): its SAs leave the
 * data plane before their counters are read, and the shared addresses go if no session here ends
 * there any more (cluster_release). *out is malloc'ed. Returns 0, or -1 with err (then
 * nothing changed, also with detach). -EBUSY while an exchange of the session is in flight. */
int xfer_get(struct daemon *d, const char *name, enum xfer_take take, const uint8_t *bind, size_t bind_len,
	     uint8_t **out, size_t *out_len, struct xfer_info *info, char *err, size_t errlen);

/* The session `name` names (as for xfer_get): info gets its connection, SPIs and addresses.
 * Returns 0, -EBUSY with err when it cannot be exported right now (as xfer_get would say), or -1
 * with err. */
int xfer_locate(struct daemon *d, const char *name, struct xfer_info *info, char *err, size_t errlen);

/* PUT: open a sealed context (with the same bind) and install the session: IKE SA, Child SAs and
 * their policies, outbound sequence numbers jumped by the configured seq_jump. No IKE_SA_INIT /
 * IKE_AUTH: this node now owns the session's message IDs. A Child SA whose inbound SPI another SA
 * here holds goes in without it and is rekeyed at once (that SA is never touched). The cluster's
 * Mono-LAN shared addresses come here (cluster_claim); a context whose local address is not ours
 * moves to our address and the peer is told (Multi-LAN). Returns 0, or -1 with err and nothing
 * installed (tampered, truncated, wrong key, unknown connection, IKE SA already present, a
 * Multi-LAN peer that cannot be told). */
int xfer_put(struct daemon *d, const uint8_t *in, size_t len, const uint8_t *bind, size_t bind_len,
	     struct xfer_info *info, char *err, size_t errlen);

#endif
