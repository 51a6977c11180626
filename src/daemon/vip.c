/* vip.c — Mono-LAN shared addresses (vip.h): added and removed with netlink (libmnl), announced with a
 * gratuitous ARP request and reply (IPv4, AF_PACKET) or an unsolicited neighbour advertisement with
 * the override flag (IPv6), so that the LAN's neighbours send to this node at once. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "daemon/vip.h"
#include "util/log.h"

/* One RTM_NEWADDR (NLM_F_CREATE | NLM_F_EXCL) or RTM_DELADDR of sh, acknowledged. 0 or -errno. */
static int addr_change(const struct cfg_shared *sh, unsigned ifindex, bool add)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	struct timeval tv = {1, 0}; /* the kernel answers at once; never wait for it forever */
	int rc = -EIO;
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		rc = -errno;
		goto out;
	}
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = (uint32_t)time(NULL);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = sh->addr.family;
	ifa->ifa_prefixlen = sh->plen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = ifindex;
	size_t alen = bt_addr_len(&sh->addr);
	mnl_attr_put(nlh, IFA_LOCAL, alen, sh->addr.b);
	mnl_attr_put(nlh, IFA_ADDRESS, alen, sh->addr.b);
	if (add && sh->addr.family == AF_INET6) /* usable at once: the address has an owner, no DAD */
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
		goto out;
	}
	ssize_t r = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (r < 0) {
		rc = -errno;
		goto out;
	}
	rc = mnl_cb_run(buf, (size_t)r, nlh->nlmsg_seq, mnl_socket_get_portid(nl), NULL, NULL) < 0 ? -errno : 0;
out:
	if (nl)
		mnl_socket_close(nl);
	return rc;
}

void vip_garp_build(uint8_t out[28], const uint8_t mac[6], const struct bt_addr *a, bool reply)
{
	static const uint8_t hdr[6] = {0, 1, 8, 0, 6, 4}; /* Ethernet, IPv4, 6-byte MAC, 4-byte address */
	memcpy(out, hdr, 6);
	out[6] = 0, out[7] = reply ? 2 : 1;
	memcpy(out + 8, mac, 6);
	memcpy(out + 14, a->b, 4);
	if (reply)
		memcpy(out + 18, mac, 6);
	else
		memset(out + 18, 0, 6);
	memcpy(out + 24, a->b, 4);
}

static int if_mac(const char *dev, uint8_t mac[6])
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER) {
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
		rc = 0;
	} else if (fd >= 0) {
		errno = errno ? errno : EAFNOSUPPORT;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Gratuitous ARP request and reply, broadcast from the interface's MAC, through the daemon's
 * AF_PACKET socket (protocol 0: it sends and never receives). */
static int announce4(struct cluster *cl, const struct cfg_shared *sh, unsigned ifindex, const uint8_t mac[6])
{
	if (cl->pkt_fd < 0 && (cl->pkt_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_ifindex = (int)ifindex,
				 .sll_halen = 6};
	memset(ll.sll_addr, 0xff, 6);
	int rc = 0;
	for (int reply = 0; reply < 2 && rc == 0; reply++) {
		uint8_t pkt[28];
		vip_garp_build(pkt, mac, &sh->addr, reply);
		if (sendto(cl->pkt_fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&ll, sizeof(ll)) != (ssize_t)sizeof(pkt))
			rc = -1;
	}
	return rc;
}

/* Unsolicited neighbour advertisement to all nodes (RFC 4861 7.2.6), override set. */
static int announce6(struct cluster *cl, const struct cfg_shared *sh, unsigned ifindex, const uint8_t mac[6])
{
	int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6), hops = 255;
	if (fd < 0)
		return -1;
	struct {
		struct nd_neighbor_advert na;
		uint8_t opt[8];
	} m = {0};
	m.na.nd_na_type = ND_NEIGHBOR_ADVERT;
	m.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
	memcpy(&m.na.nd_na_target, sh->addr.b, 16);
	m.opt[0] = ND_OPT_TARGET_LINKADDR, m.opt[1] = 1;
	memcpy(m.opt + 2, mac, 6);
	struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_scope_id = ifindex};
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	int rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) == 0 &&
				 setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) == 0 &&
				 sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)sizeof(m)
			 ? 0
			 : -1;
	close(fd);
	return rc;
}

int cluster_claim(struct daemon *d)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	int added = 0;
	for (unsigned i = 0; i < cc->n_shared; i++) {
		const struct cfg_shared *sh = &cc->shared[i];
		char as[BT_ADDRSTRLEN];
		uint8_t mac[6];
		unsigned ifindex = if_nametoindex(sh->dev);
		bt_addr_str(&sh->addr, as, sizeof(as));
		if (!ifindex) {
			bt_warn("cluster: shared address %s: no interface %s", as, sh->dev);
			continue;
		}
		int rc = addr_change(sh, ifindex, true);
		if (rc && rc != -EEXIST) {
			bt_warn("cluster: cannot add shared address %s/%u to %s: %s", as, sh->plen, sh->dev, strerror(-rc));
			continue;
		}
		if (!rc) {
			added++;
			if (d->cluster)
				d->cluster->vip_claims++;
			bt_info("cluster: shared address %s/%u added to %s", as, sh->plen, sh->dev);
		}
		/* announced also when we held it: we just took sessions over, the LAN must send here */
		if (if_mac(sh->dev, mac) != 0)
			bt_warn("cluster: shared address %s: no Ethernet address on %s to announce it from", as, sh->dev);
		else if (!d->cluster || (sh->addr.family == AF_INET ? announce4 : announce6)(d->cluster, sh, ifindex, mac) != 0)
			bt_warn("cluster: cannot announce shared address %s on %s: %s", as, sh->dev, strerror(errno));
	}
	return added;
}

int cluster_release(struct daemon *d)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	int removed = 0;
	for (unsigned i = 0; i < cc->n_shared; i++)
		if (ike_mgr_addr_users(d, &cc->shared[i].addr))
			return 0; /* still in use: keep them all, they move together */
	for (unsigned i = 0; i < cc->n_shared; i++) {
		const struct cfg_shared *sh = &cc->shared[i];
		char as[BT_ADDRSTRLEN];
		unsigned ifindex = if_nametoindex(sh->dev);
		int rc = ifindex ? addr_change(sh, ifindex, false) : -ENODEV;
		bt_addr_str(&sh->addr, as, sizeof(as));
		if (rc == 0) {
			removed++;
			if (d->cluster)
				d->cluster->vip_releases++;
			bt_info("cluster: shared address %s/%u removed from %s", as, sh->plen, sh->dev);
		} else if (rc != -EADDRNOTAVAIL && rc != -ENOENT && rc != -ENODEV) {
			bt_warn("cluster: cannot remove shared address %s from %s: %s", as, sh->dev, strerror(-rc));
		}
	}
	return removed;
}
