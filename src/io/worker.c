/* worker.c — one data-path lane: TUN frames out through SPD, SAD and ESP to the network, ESP from
 * the network in through SAD, ESP and the inbound selector check to the TUN. Batched, no locks,
 * no allocation, no logging per packet. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "esp/esp.h"
#include "esp/esp_wire.h"
#include "io/dp_internal.h"
#include "io/gso.h"

#define TUN_BURST 8 /* TUN frames read before the sends are flushed */

static inline void count_drop(struct lane *l, struct esp_sa *sa, enum esp_drop why, bool on_sa)
{
	l->st.drops[why]++;
	if (sa && on_sa)
		atomic_fetch_add_explicit(&sa->ctr.drops[why], 1, memory_order_relaxed);
}

/* ---- outbound -------------------------------------------------------------------------------- */

/* The run of equal-size ESP packets being built for one UDP GSO send. */
struct run {
	struct esp_sa *sa;
	size_t start;  /* arena offset */
	size_t seg;    /* ESP packet size */
	unsigned n;
	bool closed;   /* a shorter packet ended it */
};

static void tx_push(struct lane *l, struct run *r)
{
	if (!r->sa || r->n == 0)
		goto reset;
	struct esp_sa *sa = r->sa;
	struct tx_entry *e = &l->tx[l->ntx++];
	struct esp_path path;
	esp_sa_get_path(sa, &path); /* one snapshot: a rebind never splits a datagram's addresses */
	bool udp = path.encap == ESP_ENCAP_UDP;
	e->data = l->arena + r->start;
	e->len = l->arena_used - r->start;
	e->seg = r->n > 1 ? (uint16_t)r->seg : 0; /* a run only grows with UDP GSO; one cut by a rebind to raw ESP fails, counted */
	e->dst_len = bt_addr_to_sockaddr(&path.remote, udp ? path.remote_port : 0, &e->dst);
	e->src = path.local;
	if (path.remote.family == AF_INET6)
		e->fd = udp ? l->udp6 : l->raw6;
	else
		e->fd = udp ? l->udp4 : l->raw4;
	e->sa = sa;
	e->npkts = r->n;
reset:
	memset(r, 0, sizeof(*r));
}

static void tx_flush(struct lane *l, struct run *r)
{
	tx_push(l, r);
	for (unsigned i = 0; i < l->ntx; i++) {
		struct tx_entry *e = &l->tx[i];
		if (e->fd >= 0 && sock_send(e) == 0) {
			l->st.net_tx += e->npkts;
		} else {
			l->st.drops[ESP_DROP_IO] += e->npkts;
			atomic_fetch_add_explicit(&e->sa->ctr.drops[ESP_DROP_IO], e->npkts, memory_order_relaxed);
		}
	}
	l->ntx = 0;
	l->arena_used = 0;
}

/* Encapsulate one inner packet for sa into the arena, extending the current GSO run if it can. */
static void out_one(struct lane *l, struct run *r, struct esp_sa *sa, const uint8_t *ip, size_t len)
{
	const uint8_t *payload = ip;
	size_t plen = len;
	uint8_t nh = (ip[0] >> 4) == 6 ? ESP_NH_IPV6 : ESP_NH_IPV4;
	if (sa->mode == ESP_MODE_TRANSPORT) {
		/* the SA's endpoints are the packet's: protect the L4 part */
		size_t iph = (ip[0] >> 4) == 4 ? (size_t)(ip[0] & 0x0f) * 4 : 40;
		nh = (ip[0] >> 4) == 4 ? ip[9] : ip[6];
		payload = ip + iph;
		plen = len - iph;
	}
	size_t hdr = esp_header_len(sa);
	size_t esp_len = plen + esp_overhead(sa, plen);
	bool gso = l->dp->udp_gso && sa->encap == ESP_ENCAP_UDP;
	if (r->sa && (!gso || r->sa != sa || r->closed || esp_len > r->seg || r->n >= DP_GSO_SEGS))
		tx_push(l, r);
	if (l->ntx >= DP_TX_MAX - 1 || l->arena_cap - l->arena_used < esp_len + ESP_TAILROOM + 64) {
		struct run keep = {0};
		tx_flush(l, r);
		*r = keep;
	}
	struct pkt p = {.buf = l->arena, .cap = l->arena_cap, .off = l->arena_used + hdr, .len = plen};
	memcpy(l->arena + p.off, payload, plen);
	enum esp_drop d = esp_encap(sa, l->id, &p, nh);
	if (d != ESP_DROP_NONE) {
		l->st.drops[d]++; /* esp_encap counted it on the SA */
		return;
	}
	if (!r->sa) {
		r->sa = sa, r->start = l->arena_used, r->seg = esp_len;
	} else if (esp_len < r->seg) {
		r->closed = true; /* a shorter datagram may only end a GSO run */
	}
	r->n++;
	l->arena_used += p.len;
}

struct seg_ctx {
	struct lane *l;
	struct run *r;
	struct esp_sa *sa;
};

static int emit_segment(void *arg, uint8_t *seg, size_t len)
{
	struct seg_ctx *c = arg;
	out_one(c->l, c->r, c->sa, seg, len);
	return 0;
}

static void bypass(struct lane *l, const uint8_t *ip, size_t len, const struct bt_flow *f)
{
	struct sockaddr_storage ss;
	socklen_t sl = bt_addr_to_sockaddr(&f->dst, 0, &ss);
	int fd = f->dst.family == AF_INET6 ? l->bypass6 : l->bypass4;
	/* IPPROTO_RAW sockets take the whole packet, header included, in both families */
	if (fd < 0 || sendto(fd, ip, len, 0, (struct sockaddr *)&ss, sl) < 0)
		goto fail;
	l->st.bypass++;
	return;
fail:
	l->st.drops[ESP_DROP_IO]++;
}

/* Hook for IKE's on-demand negotiation (start_action = trap): a PROTECT policy without an SA. */
static void acquire(struct lane *l, const struct spd_policy *pol, const struct bt_flow *f)
{
	l->st.drops[ESP_DROP_NO_SA]++;
	if (l->dp->acq_cb)
		l->dp->acq_cb(l->dp->acq_arg, pol->reqid);
}

/* Length of the IP header a packet starts with (already validated by bt_flow_from_packet). */
static size_t ip_hdr_len(const uint8_t *ip)
{
	return (ip[0] >> 4) == 4 ? (size_t)(ip[0] & 0x0f) * 4 : 40;
}

static void out_frame(struct lane *l, struct run *r, uint8_t *frame, size_t n)
{
	if (n <= DP_VNET_HDR)
		return;
	struct virtio_net_hdr vh;
	memcpy(&vh, frame, sizeof(vh));
	uint8_t *ip = frame + DP_VNET_HDR;
	size_t len = n - DP_VNET_HDR;
	struct bt_flow f;
	l->st.tun_rx++;
	if (bt_flow_from_packet(ip, len, &f) != 0) {
		l->st.drops[ESP_DROP_MALFORMED]++;
		return;
	}
	struct spd *spd = atomic_load_explicit(&l->dp->spd, memory_order_acquire);
	const struct spd_policy *pol = spd ? spd_lookup(spd, SPD_DIR_OUT, &f) : NULL;
	if (!pol) {
		/* routed into the tunnel but no policy covers it: never send it in clear */
		l->st.drops[ESP_DROP_POLICY]++;
		return;
	}
	if (pol->hits)
		atomic_fetch_add_explicit(pol->hits, 1, memory_order_relaxed);
	if (pol->action == SPD_DISCARD) {
		l->st.discard++;
		l->st.drops[ESP_DROP_DISCARD]++;
		return;
	}
	uint8_t gso_type = vh.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	/* a partial checksum lies in the L4 header: never let it overwrite the IP header we parsed */
	bool csum_bad = (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && vh.csum_start < ip_hdr_len(ip);
	if (pol->action == SPD_BYPASS) {
		if (gso_type == VIRTIO_NET_HDR_GSO_NONE && (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
		    (csum_bad || gso_complete_csum(ip, len, vh.csum_start, vh.csum_offset) != 0)) {
			l->st.drops[ESP_DROP_MALFORMED]++;
			return;
		}
		if (gso_type == VIRTIO_NET_HDR_GSO_NONE)
			bypass(l, ip, len, &f);
		else
			l->st.drops[ESP_DROP_NOBUF]++;
		return;
	}
	struct esp_sa *sa = sad_lookup_out(l->dp->sad, pol->reqid);
	if (!sa) {
		acquire(l, pol, &f);
		return;
	}
	if (sa->mode == ESP_MODE_TRANSPORT &&
	    (!bt_addr_eq(&f.src, &sa->local) || !bt_addr_eq(&f.dst, &sa->remote) ||
	     ((ip[0] >> 4) == 6 && (ip[6] == 0 || ip[6] == 43 || ip[6] == 44 || ip[6] == 60)))) {
		count_drop(l, sa, ESP_DROP_POLICY, true);
		return;
	}
	if (gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || gso_type == VIRTIO_NET_HDR_GSO_TCPV6) {
		struct seg_ctx c = {l, r, sa};
		if (gso_segment_tcp(ip, len, vh.gso_size, l->seg, DP_FRAME_MAX, emit_segment, &c) < 0)
			count_drop(l, sa, ESP_DROP_MALFORMED, true);
		return;
	}
	if (gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		count_drop(l, sa, ESP_DROP_MALFORMED, true);
		return;
	}
	if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (csum_bad || gso_complete_csum(ip, len, vh.csum_start, vh.csum_offset) != 0)) {
		count_drop(l, sa, ESP_DROP_MALFORMED, true);
		return;
	}
	out_one(l, r, sa, ip, len);
}

static void tun_drain(struct lane *l)
{
	struct run r = {0};
	for (int burst = 0; burst < 64; burst++) {
		ssize_t n = read(l->tun_fd, l->frame, DP_VNET_HDR + DP_FRAME_MAX);
		if (n < 0)
			break;
		out_frame(l, &r, l->frame, (size_t)n);
		if (burst % TUN_BURST == TUN_BURST - 1)
			tx_flush(l, &r);
	}
	tx_flush(l, &r);
}

/* ---- inbound --------------------------------------------------------------------------------- */

/* Transport mode: put an IP header back in front of the decrypted L4 payload. */
static uint8_t *rebuild_ip(struct pkt *p, uint8_t nh, const struct bt_addr *src, const struct bt_addr *dst,
			   size_t *len)
{
	size_t iph = src->family == AF_INET6 ? 40 : 20;
	if (p->off < iph + DP_VNET_HDR)
		return NULL;
	uint8_t *ip = pkt_data(p) - iph;
	memset(ip, 0, iph);
	if (iph == 20) {
		size_t tot = p->len + 20;
		ip[0] = 0x45;
		ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
		ip[6] = 0x40; /* DF */
		ip[8] = 64;
		ip[9] = nh;
		memcpy(ip + 12, src->b, 4);
		memcpy(ip + 16, dst->b, 4);
		ip4_set_csum(ip);
	} else {
		ip[0] = 0x60;
		ip[4] = (uint8_t)(p->len >> 8), ip[5] = (uint8_t)p->len;
		ip[6] = nh;
		ip[7] = 64;
		memcpy(ip + 8, src->b, 16);
		memcpy(ip + 24, dst->b, 16);
	}
	*len = p->len + iph;
	return ip;
}

static void in_esp(struct lane *l, struct pkt *p, const struct bt_addr *src, const struct bt_addr *dst)
{
	uint32_t spi = esp_peek_spi(pkt_data(p), p->len);
	struct esp_sa *sa = spi ? sad_lookup_in(l->dp->sad, spi) : NULL;
	l->st.net_rx++;
	if (!sa) {
		l->st.drops[spi ? ESP_DROP_NO_SA : ESP_DROP_MALFORMED]++;
		return;
	}
	if (!esp_sa_peer_allowed(sa, src)) {
		count_drop(l, sa, ESP_DROP_PEER, true);
		return;
	}
	uint8_t nh;
	enum esp_drop d = esp_decap(sa, l->id, p, &nh);
	if (d != ESP_DROP_NONE) {
		l->st.drops[d]++;
		return;
	}
	if (nh == ESP_NH_NONE)
		return; /* dummy packet (RFC 4303 2.6) */
	uint8_t *ip = pkt_data(p);
	size_t len = p->len;
	if (sa->mode == ESP_MODE_TRANSPORT) {
		if (nh == ESP_NH_IPV4 || nh == ESP_NH_IPV6) {
			count_drop(l, sa, ESP_DROP_NEXT_HDR, true);
			return;
		}
		ip = rebuild_ip(p, nh, src, dst && dst->family ? dst : &sa->local, &len);
		if (!ip) {
			count_drop(l, sa, ESP_DROP_NOBUF, true);
			return;
		}
	} else if ((nh != ESP_NH_IPV4 && nh != ESP_NH_IPV6) || len < 1 ||
		   (ip[0] >> 4) != (nh == ESP_NH_IPV4 ? 4 : 6)) {
		count_drop(l, sa, ESP_DROP_NEXT_HDR, true);
		return;
	}
	struct bt_flow f;
	if (bt_flow_from_packet(ip, len, &f) != 0) {
		count_drop(l, sa, ESP_DROP_MALFORMED, true);
		return;
	}
	/* RFC 4301 5.2: what came out of the SA must be what the SA was negotiated for */
	if (!bt_ts_list_match(sa->remote_ts, sa->n_remote_ts, &f.src, f.proto, f.sport) ||
	    !bt_ts_list_match(sa->local_ts, sa->n_local_ts, &f.dst, f.proto, f.dport)) {
		count_drop(l, sa, ESP_DROP_POLICY, true);
		return;
	}
	/* an inner packet may carry trailing bytes beyond its IP length (padding): trim them */
	size_t ip_len = (ip[0] >> 4) == 4 ? (size_t)(ip[2] << 8 | ip[3]) : 40 + (size_t)(ip[4] << 8 | ip[5]);
	if (ip_len < len)
		len = ip_len;
	gro_write(l, ip, len);
}

static void pktinfo_dst(struct msghdr *mh, struct bt_addr *dst, uint16_t *gro)
{
	memset(dst, 0, sizeof(*dst));
	*gro = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			dst->family = AF_INET;
			memcpy(dst->b, &pi.ipi_addr, 4);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			dst->family = AF_INET6;
			memcpy(dst->b, &pi.ipi6_addr, 16);
		} else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
			int v;
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			*gro = (uint16_t)v;
		}
	}
}

#define RX_BUF (ESP_HEADROOM + DP_FRAME_MAX + ESP_TAILROOM)

/* RFC 3948 demultiplexing of one datagram on the encapsulation port. */
static void udp_datagram(struct lane *l, uint8_t *buf, size_t cap, size_t off, size_t len,
			 const struct bt_addr *src, uint16_t sport, const struct bt_addr *dst)
{
	uint8_t *d = buf + off;
	if (len == 1 && d[0] == ESP_NATT_KEEPALIVE) {
		l->st.keepalive_rx++;
		return;
	}
	if (len >= ESP_NON_ESP_MARKER_LEN && !d[0] && !d[1] && !d[2] && !d[3]) {
		l->st.ike_rx++;
		if (l->dp->ike_cb)
			l->dp->ike_cb(l->dp->ike_arg, d + 4, len - 4, src, sport, dst, l->dp->cfg.udp_port);
		return;
	}
	struct pkt p = {.buf = buf, .cap = cap, .off = off, .len = len};
	in_esp(l, &p, src, dst);
}

void worker_udp_datagram(struct lane *l, uint8_t *buf, size_t cap, size_t off, size_t len,
			 const struct bt_addr *src, uint16_t sport, const struct bt_addr *dst)
{
	udp_datagram(l, buf, cap, off, len, src, sport, dst);
	gro_flush(l);
}

void worker_tun_frame(struct lane *l, uint8_t *frame, size_t n)
{
	struct run r = {0};
	out_frame(l, &r, frame, n);
	tx_flush(l, &r);
}

static void udp_drain(struct lane *l, int fd)
{
	struct mmsghdr mm[DP_RX_BATCH];
	struct iovec iov[DP_RX_BATCH];
	struct sockaddr_storage from[DP_RX_BATCH];
	union {
		char buf[256];
		struct cmsghdr align;
	} ctl[DP_RX_BATCH];
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < DP_RX_BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = l->rx[i] + ESP_HEADROOM, .iov_len = DP_FRAME_MAX};
			mm[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							.msg_iov = &iov[i], .msg_iovlen = 1,
							.msg_control = ctl[i].buf, .msg_controllen = sizeof(ctl[i].buf)};
		}
		int n = recvmmsg(fd, mm, DP_RX_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct bt_addr src, dst;
			uint16_t sport, seg;
			bt_addr_from_sockaddr((struct sockaddr *)&from[i], &src, &sport);
			pktinfo_dst(&mm[i].msg_hdr, &dst, &seg);
			size_t total = mm[i].msg_len;
			if (!seg || seg > total)
				seg = (uint16_t)(total > 65535 ? 65535 : total);
			for (size_t off = 0; off < total; off += seg) {
				size_t dl = total - off < seg ? total - off : seg;
				udp_datagram(l, l->rx[i], RX_BUF, ESP_HEADROOM + off, dl, &src, sport, &dst);
			}
		}
		gro_flush(l);
		if (n < DP_RX_BATCH)
			return;
	}
}

static void raw_drain(struct lane *l, int fd, int family)
{
	for (int round = 0; round < 64; round++) {
		struct sockaddr_storage from;
		union {
			char buf[128];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = l->rx[0] + ESP_HEADROOM, .iov_len = DP_FRAME_MAX};
		struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				    .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
		if (n <= 0)
			return;
		struct bt_addr src, dst;
		uint16_t port, seg;
		bt_addr_from_sockaddr((struct sockaddr *)&from, &src, &port);
		pktinfo_dst(&mh, &dst, &seg);
		struct pkt p = {.buf = l->rx[0], .cap = RX_BUF, .off = ESP_HEADROOM, .len = (size_t)n};
		if (family == AF_INET) { /* IPv4 raw sockets deliver the IP header */
			size_t ihl = (size_t)(p.buf[p.off] & 0x0f) * 4;
			if ((size_t)n < ihl || ihl < 20) {
				l->st.drops[ESP_DROP_MALFORMED]++;
				continue;
			}
			dst.family = AF_INET;
			memcpy(dst.b, p.buf + p.off + 16, 4);
			p.off += ihl, p.len -= ihl;
		}
		in_esp(l, &p, &src, &dst);
		gro_flush(l);
	}
}

/* ---- the loop -------------------------------------------------------------------------------- */

void *worker_main(void *arg)
{
	struct lane *l = arg;
	struct epoll_event ev[8];
	for (;;) {
		atomic_fetch_add(&l->epoch, 1); /* odd: idle, quiescent */
		int n = epoll_wait(l->epfd, ev, 8, 100);
		atomic_fetch_add(&l->epoch, 1); /* even: busy */
		if (atomic_load(&l->dp->stopping))
			break;
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			if (fd == l->tun_fd)
				tun_drain(l);
			else if (fd == l->udp4 || fd == l->udp6)
				udp_drain(l, fd);
			else if (fd == l->raw4)
				raw_drain(l, fd, AF_INET);
			else if (fd == l->raw6)
				raw_drain(l, fd, AF_INET6);
		}
	}
	atomic_fetch_add_explicit(&l->epoch, 1, memory_order_release);
	return NULL;
}
