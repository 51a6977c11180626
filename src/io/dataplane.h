/* dataplane.h — the user-space ESP gateway: TUN <-> ESP engine <-> UDP 4500 / raw ESP.
 *
 * One worker thread per lane (default: one per core). Each worker owns one queue of a multi-queue
 * TUN device, one UDP socket on the encapsulation port (SO_REUSEPORT) and, for raw ESP, one raw
 * socket. Workers read in batches (recvmmsg, TUN with virtio-net header and TSO, UDP GRO), process,
 * and write in batches (sendmmsg / UDP GSO); no locks, allocation or logging per packet.
 *
 * The SAD and SPD are read by workers without locks and changed only from the control thread
 * through the dp_* calls below, which retire old objects after a grace period (every worker has
 * passed a quiescent point).
 */
#ifndef BT_DATAPLANE_H
#define BT_DATAPLANE_H

#include <net/if.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "esp/sa.h"
#include "policy/sad.h"
#include "policy/spd.h"

#define DP_MAX_LANES 16

struct dp_config {
	char tun_name[IFNAMSIZ];  /* created if missing; e.g. "bt0" */
	unsigned mtu;             /* inner MTU; 0 = derive from outer_mtu and the largest overhead */
	unsigned outer_mtu;       /* path MTU of the outer network, default 1500 */
	unsigned lanes;           /* worker threads; 0 = number of online CPUs (max DP_MAX_LANES) */
	uint16_t udp_port;        /* ESP-in-UDP / IKE NAT-T port, default 4500 */
	struct bt_addr bind_addr; /* family 0 = any (dual-stack) */
	bool raw_esp;             /* also open raw IPPROTO_ESP sockets (v4 and v6) */
	bool offload;             /* TUN TSO/GSO and UDP GSO/GRO where the kernel has them; default on */
};

/* Global (not per-SA) counters. */
struct dp_stats {
	uint64_t tun_rx, tun_tx;       /* inner packets read from / written to the TUN */
	uint64_t net_rx, net_tx;       /* outer ESP packets received / sent */
	uint64_t ike_rx;               /* non-ESP-marked packets passed to the control plane */
	uint64_t keepalive_rx;
	uint64_t bypass, discard;
	uint64_t drops[ESP_DROP_MAX];  /* includes drops without an SA (unknown SPI, no SA, ...) */
	unsigned lanes;
	bool tso, udp_gso, udp_gro;    /* which offloads are active */
};

/* Called on a worker thread for each IKE packet (non-ESP marker stripped) seen on the UDP port.
 * Must not block; the control plane copies and queues it. */
typedef void (*dp_ike_cb)(void *arg, const uint8_t *msg, size_t len, const struct bt_addr *src,
			  uint16_t sport, const struct bt_addr *dst, uint16_t dport);

/* Called on a worker thread when outbound traffic hits a PROTECT policy that has no SA yet (the
 * trap of start_action = trap). Must not block; called for every such packet. */
typedef void (*dp_acquire_cb)(void *arg, uint32_t reqid);

struct dataplane;

/* Create the TUN device and sockets; no threads yet. Returns NULL with a message in err. */
struct dataplane *dp_new(const struct dp_config *cfg, char *err, size_t errlen);
void dp_set_ike_cb(struct dataplane *dp, dp_ike_cb cb, void *arg);
void dp_set_acquire_cb(struct dataplane *dp, dp_acquire_cb cb, void *arg);
int dp_start(struct dataplane *dp);          /* start workers */
void dp_free(struct dataplane *dp);          /* stop workers, close everything, free SAs */

/* Control thread only. dp_sa_add takes sa (already esp_sa_init'ed with dp_lanes(dp) lanes); on
 * failure (duplicate inbound SPI) it returns -EEXIST and sa stays the caller's. */
int dp_sa_add(struct dataplane *dp, struct esp_sa *sa);
int dp_sa_del(struct dataplane *dp, uint32_t spi, enum esp_dir dir);
/* Remove a Child SA's inbound SA (by SPI; 0: none) and outbound SA (by reqid) and hand them back
 * once no worker uses them any more (their counters and replay window are final): sa[0] in, sa[1]
 * out, NULL where there was none; the caller frees them (esp_sa_clear, free) or adds them again. */
void dp_sa_take(struct dataplane *dp, uint32_t spi_in, uint32_t reqid_out, struct esp_sa *sa[2]);
/* Rebind: give an installed SA a new outer path (addresses, ports, encapsulation) in place; the
 * SA is found by its SPI (inbound) or its reqid (outbound). Workers see the old path or the new
 * one, never a mix. Returns 0 or -ENOENT. */
int dp_sa_rebind(struct dataplane *dp, enum esp_dir dir, uint32_t spi_or_reqid, const struct esp_path *p);
/* Replace the SPD's static level (takes spd; the dynamic level carries over); the old one is freed
 * after a grace period. */
void dp_set_spd(struct dataplane *dp, struct spd *spd);
/* The dynamic level: a negotiated Child SA's policy, in effect at once (pol is copied; O(1)
 * amortised, no rebuild); removed again by the same direction, reqid and remote selectors, freed
 * after a grace period. 0, -ENOMEM or -ENOENT. */
int dp_pol_add(struct dataplane *dp, const struct spd_policy *pol);
int dp_pol_del(struct dataplane *dp, const struct spd_policy *pol);
const struct sad *dp_sad(const struct dataplane *dp);
const struct spd *dp_spd(const struct dataplane *dp);
unsigned dp_lanes(const struct dataplane *dp);
unsigned dp_mtu(const struct dataplane *dp);
void dp_get_stats(const struct dataplane *dp, struct dp_stats *st);
/* Wait until every worker has passed a quiescent point. */
void dp_synchronize(struct dataplane *dp);
/* Send an IKE message from the encapsulation port with the non-ESP marker; src (may be NULL) picks
 * the source address. */
int dp_send_ike(struct dataplane *dp, const uint8_t *msg, size_t len, const struct bt_addr *src,
		const struct bt_addr *dst, uint16_t dport);
/* Send a datagram as it is from the encapsulation port (NAT keepalives). */
int dp_send_udp(struct dataplane *dp, const uint8_t *data, size_t len, const struct bt_addr *src,
		const struct bt_addr *dst, uint16_t dport);
/* The encapsulation port in use. */
uint16_t dp_udp_port(const struct dataplane *dp);

#endif
