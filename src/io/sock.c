/* sock.c — the outer sockets: UDP on the encapsulation port (with GRO/GSO), raw ESP, raw IP for
 * bypassed packets, and sending one queued entry with its source address and segment size. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "esp/esp_wire.h"
#include "io/dp_internal.h"

int sock_udp(int family, const struct bt_addr *bind_addr, uint16_t port, bool gro, bool *gro_on)
{
	int one = 1, fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	} else {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	}
	/* a larger buffer rides out bursts while a worker is busy encrypting */
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	*gro_on = gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	struct sockaddr_storage ss;
	struct bt_addr any = {.family = (uint8_t)family};
	socklen_t sl = bt_addr_to_sockaddr(bind_addr && bind_addr->family == family ? bind_addr : &any,
					   port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	return -e;
}

int sock_raw_esp(int family)
{
	int one = 1, fd = socket(family, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ESP);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	return fd;
}

int sock_bypass(int family)
{
	int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
	return fd < 0 ? -errno : fd;
}

bool sock_udp_gso_supported(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);
	return getsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &v, &l) == 0;
}

int sock_send(const struct tx_entry *e)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = e->data, .iov_len = e->len};
	struct msghdr mh = {
		.msg_name = (void *)&e->dst, .msg_namelen = e->dst_len, .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	memset(ctl.buf, 0, sizeof(ctl.buf));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	size_t used = 0;
	if (e->src.family == AF_INET && e->dst.ss_family == AF_INET) {
		struct in_pktinfo pi = {0};
		memcpy(&pi.ipi_spec_dst, e->src.b, 4);
		cm->cmsg_level = IPPROTO_IP, cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		used += CMSG_SPACE(sizeof(pi));
		cm = CMSG_NXTHDR(&mh, cm);
	} else if (e->src.family == AF_INET6 && e->dst.ss_family == AF_INET6) {
		struct in6_pktinfo pi = {0};
		memcpy(&pi.ipi6_addr, e->src.b, 16);
		cm->cmsg_level = IPPROTO_IPV6, cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		used += CMSG_SPACE(sizeof(pi));
		cm = CMSG_NXTHDR(&mh, cm);
	}
	if (e->seg && cm) {
		uint16_t seg = e->seg;
		cm->cmsg_level = IPPROTO_UDP, cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
		used += CMSG_SPACE(sizeof(seg));
	}
	mh.msg_controllen = used;
	if (!used)
		mh.msg_control = NULL;
	for (int tries = 0; tries < 3; tries++) {
		if (sendmsg(e->fd, &mh, 0) >= 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS)
			break;
		if (errno == EAGAIN || errno == ENOBUFS) {
			/* the socket buffer is full: wait for room briefly rather than drop a burst */
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	return -errno;
}
