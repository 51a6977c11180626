/* netmon.c — the host's addresses, links and routes as MOBIKE needs them: a netlink (libmnl)
 * subscription that reports every change at once, and the questions asked after one (which
 * source address the kernel would use toward a peer; whether an address is still on an interface
 * that is up and has carrier).
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "util/log.h"

struct netmon {
	struct mnl_socket *nl;
	ev_io io;
	struct ev_loop *loop;
	netmon_cb cb;
	void *arg;
	uint64_t events;
};

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	unsigned *n = data;
	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK: case RTM_DELLINK: case RTM_NEWADDR: case RTM_DELADDR: case RTM_NEWROUTE: case RTM_DELROUTE:
		(*n)++;
		break;
	default:
		break;
	}
	return MNL_CB_OK;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct netmon *nm = w->data;
	uint8_t buf[16384];
	unsigned n = 0;
	/* drain everything queued, then report once: a link going down comes as a burst */
	for (;;) {
		ssize_t r = mnl_socket_recvfrom(nm->nl, buf, sizeof(buf));
		if (r < 0) {
			if (errno == ENOBUFS)
				n++; /* we lost some: something changed */
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			break;
		}
		mnl_cb_run(buf, (size_t)r, 0, 0, count_cb, &n);
	}
	if (n) {
		nm->events += n;
		nm->cb(nm->arg);
	}
}

struct netmon *netmon_new(struct ev_loop *loop, netmon_cb cb, void *arg, char *err, size_t errlen)
{
	struct netmon *nm = calloc(1, sizeof(*nm));
	if (!nm) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	nm->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!nm->nl || mnl_socket_bind(nm->nl, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
						  RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink: %s", strerror(errno));
		if (nm->nl)
			mnl_socket_close(nm->nl);
		free(nm);
		return NULL;
	}
	nm->loop = loop, nm->cb = cb, nm->arg = arg;
	ev_io_init(&nm->io, io_cb, mnl_socket_get_fd(nm->nl), EV_READ);
	nm->io.data = nm;
	ev_io_start(loop, &nm->io);
	return nm;
}

void netmon_free(struct netmon *nm)
{
	if (!nm)
		return;
	ev_io_stop(nm->loop, &nm->io);
	mnl_socket_close(nm->nl);
	free(nm);
}

uint64_t netmon_events(const struct netmon *nm) { return nm ? nm->events : 0; }

int netmon_route_src(const struct bt_addr *from, const struct bt_addr *dst, struct bt_addr *src)
{
	struct sockaddr_storage ss, me;
	socklen_t sl = bt_addr_to_sockaddr(dst, 4500, &ss), ml = sizeof(me);
	int fd = socket(dst->family, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;
	if (fd < 0)
		return -1;
	if (from && from->family) {
		struct sockaddr_storage b;
		socklen_t bl = bt_addr_to_sockaddr(from, 0, &b);
		if (bind(fd, (struct sockaddr *)&b, bl) != 0)
			goto out;
	}
	/* a UDP connect sends nothing: it is the kernel's route lookup, source selection included */
	if (connect(fd, (struct sockaddr *)&ss, sl) == 0 && getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
		uint16_t port;
		bt_addr_from_sockaddr((struct sockaddr *)&me, src, &port);
		rc = 0;
	}
out:
	close(fd);
	return rc;
}

bool netmon_addr_usable(const struct bt_addr *a)
{
	struct ifaddrs *ifs, *i;
	bool ok = false;
	if (!a->family || getifaddrs(&ifs) != 0)
		return false;
	for (i = ifs; i && !ok; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != a->family)
			continue;
		struct bt_addr x;
		uint16_t port;
		bt_addr_from_sockaddr(i->ifa_addr, &x, &port);
		ok = bt_addr_eq(&x, a) && (i->ifa_flags & IFF_UP) && (i->ifa_flags & IFF_RUNNING);
	}
	freeifaddrs(ifs);
	return ok;
}
