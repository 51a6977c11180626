/* addr.c — parsing, formatting and comparing addresses and prefixes. */
#include "util/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bt_addr_parse(const char *s, struct bt_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->b) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->b) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

int bt_prefix_parse(const char *s, struct bt_prefix *out)
{
	char buf[BT_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (bt_addr_parse(buf, &out->addr) != 0)
		return -1;
	unsigned max = out->addr.family == AF_INET ? 32 : 128;
	out->len = (uint8_t)max;
	if (slash) {
		const char *n = slash + 1;
		char *end;
		if (*n < '0' || *n > '9')
			return -1;
		unsigned long len = strtoul(n, &end, 10);
		if (*end != '\0' || len > max)
			return -1;
		out->len = (uint8_t)len;
	}
	/* clear host bits, so that equal networks compare equal */
	for (unsigned i = 0; i < bt_addr_len(&out->addr); i++) {
		unsigned bit = i * 8;
		if (bit >= out->len)
			out->addr.b[i] = 0;
		else if (bit + 8 > out->len)
			out->addr.b[i] &= (uint8_t)(0xff << (8 - (out->len - bit)));
	}
	return 0;
}

const char *bt_addr_str(const struct bt_addr *a, char *buf, size_t len)
{
	if (a->family != AF_INET && a->family != AF_INET6) {
		snprintf(buf, len, "%%any");
		return buf;
	}
	if (!inet_ntop(a->family, a->b, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

const char *bt_prefix_str(const struct bt_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN + 8];
	bt_addr_str(&p->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, p->len);
	return buf;
}

bool bt_addr_eq(const struct bt_addr *a, const struct bt_addr *b)
{
	return a->family == b->family && memcmp(a->b, b->b, bt_addr_len(a)) == 0;
}

int bt_addr_cmp(const struct bt_addr *a, const struct bt_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->b, b->b, bt_addr_len(a));
}

bool bt_prefix_contains(const struct bt_prefix *p, const struct bt_addr *a)
{
	if (p->addr.family != a->family)
		return false;
	unsigned full = p->len / 8, rest = p->len % 8;
	if (memcmp(p->addr.b, a->b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (p->addr.b[full] & mask) == (a->b[full] & mask);
}

void bt_prefix_range(const struct bt_prefix *p, struct bt_addr *lo, struct bt_addr *hi)
{
	*lo = p->addr;
	*hi = p->addr;
	for (unsigned i = 0; i < bt_addr_len(&p->addr); i++) {
		unsigned bit = i * 8;
		uint8_t host;
		if (bit >= p->len)
			host = 0xff;
		else if (bit + 8 > p->len)
			host = (uint8_t)(0xff >> (p->len - bit));
		else
			host = 0;
		lo->b[i] &= (uint8_t)~host;
		hi->b[i] |= host;
	}
}

void bt_addr_from_sockaddr(const struct sockaddr *sa, struct bt_addr *a, uint16_t *port)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		a->family = AF_INET;
		memcpy(a->b, &s4->sin_addr, 4);
		if (port)
			*port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		/* a v4-mapped address from a dual-stack socket is the IPv4 peer it stands for */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			a->family = AF_INET;
			memcpy(a->b, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->b, &s6->sin6_addr, 16);
		}
		if (port)
			*port = ntohs(s6->sin6_port);
	} else if (port) {
		*port = 0;
	}
}

socklen_t bt_addr_to_sockaddr(const struct bt_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a->b, 16);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	memcpy(&s4->sin_addr, a->b, 4);
	return sizeof(*s4);
}
