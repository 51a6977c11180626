/* addr.h — IPv4/IPv6 addresses, prefixes and ranges as plain values (no sockaddr juggling in the core). */
#ifndef BT_ADDR_H
#define BT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* An address; bytes are in network order. family is AF_INET or AF_INET6 (0 = unset). */
struct bt_addr {
	uint8_t family;
	uint8_t pad_[3];
	union {
		uint8_t b[16];
		uint32_t w[4];
		struct in_addr v4;
		struct in6_addr v6;
	};
};

/* A network as [address, prefix length]; a single host is /32 or /128. */
struct bt_prefix {
	struct bt_addr addr;
	uint8_t len;
};

#define BT_ADDRSTRLEN 64 /* enough for "addr/len" and "lo-hi" of IPv6 */

static inline size_t bt_addr_len(const struct bt_addr *a) { return a->family == AF_INET6 ? 16 : 4; }

/* Parse "1.2.3.4" or "2001:db8::1". Returns 0 or -1. */
int bt_addr_parse(const char *s, struct bt_addr *out);
/* Parse "net/len" or a bare address (host prefix). Host bits beyond len are cleared. */
int bt_prefix_parse(const char *s, struct bt_prefix *out);
/* Format into buf (at least BT_ADDRSTRLEN); returns buf. */
const char *bt_addr_str(const struct bt_addr *a, char *buf, size_t len);
const char *bt_prefix_str(const struct bt_prefix *p, char *buf, size_t len);

bool bt_addr_eq(const struct bt_addr *a, const struct bt_addr *b);
/* Compare as unsigned big-endian numbers of the same family: <0, 0, >0. Different families order by family. */
int bt_addr_cmp(const struct bt_addr *a, const struct bt_addr *b);
bool bt_prefix_contains(const struct bt_prefix *p, const struct bt_addr *a);
/* A single address (/32, /128), not a subnet. */
static inline bool bt_prefix_is_host(const struct bt_prefix *p) { return p->len == (p->addr.family == AF_INET ? 32 : 128); }
/* First and last address of a prefix. */
void bt_prefix_range(const struct bt_prefix *p, struct bt_addr *lo, struct bt_addr *hi);

/* Conversions for the socket layer. */
void bt_addr_from_sockaddr(const struct sockaddr *sa, struct bt_addr *a, uint16_t *port);
socklen_t bt_addr_to_sockaddr(const struct bt_addr *a, uint16_t port, struct sockaddr_storage *ss);

#endif
