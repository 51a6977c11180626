/* dp_internal.h — the data plane's private structures, shared by dataplane.c, worker.c and the
 * socket/TUN helpers. */
#ifndef BT_DP_INTERNAL_H
#define BT_DP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "io/dataplane.h"

#define DP_VNET_HDR 10          /* struct virtio_net_hdr */
#define DP_FRAME_MAX 65536      /* largest TUN frame (TSO super-packet) */
#define DP_RX_BATCH 16          /* UDP receive buffers per lane */
#define DP_TX_MAX 64            /* queued outer sends per lane */
#define DP_GSO_SEGS 40
#define TUN_ARENA_FRAMES 9       /* outer bytes buffered before a flush, in frames */          /* ESP packets in one UDP GSO send (keeps it under 64 KiB) */

struct lane_stats {
	uint64_t tun_rx, tun_tx, net_rx, net_tx, ike_rx, keepalive_rx, bypass, discard;
	uint64_t drops[ESP_DROP_MAX];
} __attribute__((aligned(64)));

/* An outer packet (or a run of equal-size ESP packets for UDP GSO) waiting to be sent. */
struct tx_entry {
	uint8_t *data;
	size_t len;
	uint16_t seg;          /* UDP GSO segment size, 0 = single datagram */
	int fd;
	struct sockaddr_storage dst;
	socklen_t dst_len;
	struct bt_addr src;    /* outer source to use (IP_PKTINFO), family 0 = kernel's choice */
	struct esp_sa *sa;     /* for counting send errors */
	unsigned npkts;
};

struct lane {
	struct dataplane *dp;
	unsigned id;
	pthread_t thread;
	int epfd;
	int tun_fd;
	int udp4, udp6;        /* encapsulation port, SO_REUSEPORT */
	int raw4, raw6;        /* raw ESP; only lane 0 reads them */
	int bypass4, bypass6;  /* IPPROTO_RAW for BYPASS */
	_Atomic uint64_t epoch; /* odd while idle (quiescent), even while processing */
	struct lane_stats st;

	uint8_t *frame;        /* TUN read buffer: vnet header + frame */
	uint8_t *seg;          /* scratch for one segment */
	uint8_t *arena;        /* outer packets being built */
	size_t arena_used, arena_cap;
	struct tx_entry tx[DP_TX_MAX];
	unsigned ntx;
	uint8_t *rx[DP_RX_BATCH]; /* UDP receive buffers */
	/* inbound TCP segments of one flow coalesced into one GSO write to the TUN (gro.c) */
	uint8_t *gro;          /* vnet header + super-packet */
	size_t gro_len;        /* bytes of IP packet held, 0 = none */
	size_t gro_hdrs;       /* IP + TCP header bytes */
	uint16_t gro_mss;
	unsigned gro_segs;
	bool gro_closed;       /* a short segment ended it */
};

struct dataplane {
	struct dp_config cfg;
	unsigned lanes;
	unsigned mtu;
	int tun_ifindex;
	struct sad *sad;
	_Atomic(struct spd *) spd;
	struct spd_dyn *dyn;   /* the SPD's dynamic level, kept across dp_set_spd */
	struct lane *lane;
	int stop_fd;           /* eventfd: wakes and stops the workers */
	_Atomic bool stopping;
	bool started;
	bool tso, udp_gso, udp_gro;
	dp_ike_cb ike_cb;
	void *ike_arg;
	dp_acquire_cb acq_cb;
	void *acq_arg;
};

/* tun.c */
int tun_open_queue(const char *name, bool offload, bool *tso);
int tun_configure(const char *name, unsigned mtu, int *ifindex);

/* sock.c */
int sock_udp(int family, const struct bt_addr *bind_addr, uint16_t port, bool gro, bool *gro_on);
int sock_raw_esp(int family);
int sock_bypass(int family);
bool sock_udp_gso_supported(int fd);
/* Send one tx entry (UDP with optional GSO, or raw). Returns 0 or -errno. */
int sock_send(const struct tx_entry *e);

/* gro.c */
/* Take an authenticated inner packet for the TUN: coalesce it or write it. */
void gro_write(struct lane *l, uint8_t *ip, size_t len);
void gro_flush(struct lane *l);
void tun_write_one(struct lane *l, uint8_t *ip, size_t len);

/* worker.c */
void *worker_main(void *arg);
/* One TUN frame (virtio-net header + packet) through the outbound path, sends flushed. */
void worker_tun_frame(struct lane *l, uint8_t *frame, size_t n);
/* One UDP datagram at buf[off, off + len) (buf has ESP_HEADROOM before off) through the inbound
 * path: IKE, keepalive or ESP; what it delivers is written (and flushed) to the TUN. */
void worker_udp_datagram(struct lane *l, uint8_t *buf, size_t cap, size_t off, size_t len,
			 const struct bt_addr *src, uint16_t sport, const struct bt_addr *dst);

/* dataplane.c: a data plane without TUN or sockets (lanes, buffers, SAD, SPD), for tests and
 * fuzzing of the packet paths; every send or write fails and is counted as io. */
struct dataplane *dp_new_detached(const struct dp_config *cfg, unsigned lanes);

#endif
