/* ts.h — traffic selectors as IKEv2 has them: an address range, an IP protocol and a port range.
 * Selector sets are lists of these; a pool of [network, mask] pairs is a list of ranges. */
#ifndef BT_TS_H
#define BT_TS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/addr.h"

#define BT_TS_MAX 16

struct bt_ts {
	struct bt_addr lo, hi; /* inclusive address range, same family */
	uint8_t proto;         /* IP protocol, 0 = any (SCTP is 132) */
	uint16_t port_lo, port_hi; /* inclusive, host order; 0..65535 = any. ICMP: type<<8|code */
};

/* Parse strongSwan's syntax: "10.0.0.0/24", "10.0.0.1-10.0.0.9", "0.0.0.0/0[tcp/80]",
 * "10.1.0.0/16[sctp]", "192.168.2.1[udp/1000-2000]", "dynamic" is NOT handled here. */
int bt_ts_parse(const char *s, struct bt_ts *out, char *err, size_t errlen);
const char *bt_ts_str(const struct bt_ts *ts, char *buf, size_t len); /* len >= 128 */
bool bt_ts_match(const struct bt_ts *ts, const struct bt_addr *a, uint8_t proto, uint16_t port);
bool bt_ts_list_match(const struct bt_ts *ts, unsigned n, const struct bt_addr *a, uint8_t proto,
		      uint16_t port);

/* The facts a selector looks at, pulled out of an IP packet once. */
struct bt_flow {
	struct bt_addr src, dst;
	uint8_t proto;
	uint16_t sport, dport; /* host order; ICMP: type<<8|code in both; 0 when absent */
};

/* Extract the flow from an IPv4 or IPv6 packet (walks IPv6 extension headers). Non-first
 * fragments have no ports (0). Returns 0, or -1 if the packet is malformed. */
int bt_flow_from_packet(const uint8_t *pkt, size_t len, struct bt_flow *f);

#endif
