/* gro.c — receive-side coalescing: consecutive in-order TCP segments of one flow leave the data
 * plane as one super-packet with a GSO virtio-net header, one write() instead of dozens (what GRO
 * does in a NIC driver, and what wireguard-go does for its TUN). */
#include <linux/virtio_net.h>
#include <string.h>
#include <unistd.h>

#include "io/dp_internal.h"
#include "io/gso.h"

#define GRO_MAX 65535

/* Whole (unfragmented) TCP or UDP: the only packets whose checksum "data valid" can speak for. */
static bool csum_trustworthy(const uint8_t *ip, size_t len)
{
	if ((ip[0] >> 4) == 4)
		return len >= 20 && !(ip[6] & 0x3f) && !ip[7] && (ip[9] == 6 || ip[9] == 17);
	return len >= 40 && (ip[6] == 6 || ip[6] == 17);
}

void tun_write_one(struct lane *l, uint8_t *ip, size_t len)
{
	/* ESP authenticated the packet: tell the kernel not to verify its checksum again. Not for
	 * fragments: their checksum covers the reassembled datagram. */
	struct virtio_net_hdr vh = {.flags = csum_trustworthy(ip, len) ? VIRTIO_NET_HDR_F_DATA_VALID : 0};
	uint8_t *frame = ip - DP_VNET_HDR;
	memcpy(frame, &vh, sizeof(vh));
	if (write(l->tun_fd, frame, len + DP_VNET_HDR) < 0)
		l->st.drops[ESP_DROP_IO]++;
	else
		l->st.tun_tx++;
}

void gro_flush(struct lane *l)
{
	if (!l->gro_len)
		return;
	uint8_t *ip = l->gro + DP_VNET_HDR;
	size_t len = l->gro_len;
	bool v4 = (ip[0] >> 4) == 4;
	size_t iph = v4 ? 20 : 40;
	if (l->gro_segs == 1) {
		tun_write_one(l, ip, len);
	} else {
		if (v4) {
			ip[2] = (uint8_t)(len >> 8), ip[3] = (uint8_t)len;
			ip4_set_csum(ip);
		} else {
			ip[4] = (uint8_t)((len - 40) >> 8), ip[5] = (uint8_t)(len - 40);
		}
		/* a partial checksum: the kernel finishes it per segment if it must */
		uint8_t *t = ip + iph;
		uint16_t c = csum_fold(csum_pseudo(ip, 6, len - iph));
		memcpy(t + 16, &c, 2);
		struct virtio_net_hdr vh = {
			.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			.gso_type = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6,
			.hdr_len = (uint16_t)l->gro_hdrs,
			.gso_size = l->gro_mss,
			.csum_start = (uint16_t)iph,
			.csum_offset = 16,
		};
		memcpy(l->gro, &vh, sizeof(vh));
		if (write(l->tun_fd, l->gro, len + DP_VNET_HDR) < 0)
			l->st.drops[ESP_DROP_IO] += l->gro_segs;
		else
			l->st.tun_tx += l->gro_segs;
	}
	l->gro_len = 0;
}

/* Header bytes of a TCP packet we are willing to coalesce, or 0. */
static size_t tcp_hdrs(const uint8_t *ip, size_t len)
{
	size_t iph;
	if ((ip[0] >> 4) == 4) {
		if (len < 40 || ip[0] != 0x45 || ip[9] != 6 || (ip[6] & 0x3f) || ip[7]) /* no options, fragments */
			return 0;
		iph = 20;
	} else if ((ip[0] >> 4) == 6) {
		if (len < 60 || ip[6] != 6)
			return 0;
		iph = 40;
	} else {
		return 0;
	}
	size_t th = (size_t)(ip[iph + 12] >> 4) * 4;
	if (th < 20 || iph + th > len)
		return 0;
	/* only plain data segments: ACK, optionally PSH */
	if (ip[iph + 13] & ~(0x10 | 0x08))
		return 0;
	return iph + th;
}

static uint32_t seq_of(const uint8_t *tcp) { return (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7]; }

/* Does (ip, len) continue the held super-packet? */
static bool continues(struct lane *l, const uint8_t *ip, size_t len, size_t hdrs)
{
	const uint8_t *g = l->gro + DP_VNET_HDR;
	if (!l->gro_len || l->gro_closed || hdrs != l->gro_hdrs || (g[0] >> 4) != (ip[0] >> 4))
		return false;
	size_t payload = len - hdrs, iph = (ip[0] >> 4) == 4 ? 20 : 40;
	if (payload > l->gro_mss || l->gro_len + payload > GRO_MAX)
		return false;
	if ((ip[0] >> 4) == 4) {
		/* same addresses, TOS, TTL and DF */
		if (memcmp(g + 12, ip + 12, 8) || g[1] != ip[1] || g[8] != ip[8] || (g[6] & 0x40) != (ip[6] & 0x40))
			return false;
	} else if (memcmp(g + 8, ip + 8, 32) || memcmp(g, ip, 4) || g[7] != ip[7]) {
		return false;
	}
	const uint8_t *gt = g + iph, *t = ip + iph;
	/* same ports, ack, window and options; the next sequence number; PSH only at the end */
	if (memcmp(gt, t, 4) || memcmp(gt + 8, t + 8, 4) || memcmp(gt + 14, t + 14, 2) ||
	    memcmp(gt + 20, t + 20, hdrs - iph - 20) || (gt[13] & 0x08))
		return false;
	return seq_of(t) == seq_of(gt) + (uint32_t)(l->gro_len - hdrs);
}

void gro_write(struct lane *l, uint8_t *ip, size_t len)
{
	size_t hdrs = tcp_hdrs(ip, len);
	if (!hdrs || len == hdrs) {
		gro_flush(l);
		tun_write_one(l, ip, len);
		return;
	}
	size_t payload = len - hdrs;
	if (continues(l, ip, len, hdrs)) {
		uint8_t *g = l->gro + DP_VNET_HDR;
		memcpy(g + l->gro_len, ip + hdrs, payload);
		l->gro_len += payload;
		l->gro_segs++;
		/* carry PSH over to the super-packet: it ends it */
		size_t iph = (ip[0] >> 4) == 4 ? 20 : 40;
		g[iph + 13] |= ip[iph + 13] & 0x08;
		if (payload < l->gro_mss)
			l->gro_closed = true;
		return;
	}
	gro_flush(l);
	memcpy(l->gro + DP_VNET_HDR, ip, len);
	l->gro_len = len;
	l->gro_hdrs = hdrs;
	l->gro_mss = (uint16_t)payload;
	l->gro_segs = 1;
	l->gro_closed = false;
}
