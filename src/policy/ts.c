/* ts.c — traffic selectors: parsing strongSwan's syntax, matching, and reading flows from packets. */
#include "policy/ts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	uint8_t proto;
} proto_names[] = {
	{"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50}, {"ipv6-icmp", 58},
	{"icmpv6", 58}, {"sctp", 132}, {"udplite", 136},
};

static int parse_u16(const char *s, const char *end, uint16_t *out)
{
	unsigned long v = 0;
	if (s == end || end - s > 5)
		return -1;
	for (const char *c = s; c < end; c++) {
		if (!isdigit((unsigned char)*c))
			return -1;
		v = v * 10 + (unsigned long)(*c - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* "[proto]" or "[proto/port]" or "[proto/lo-hi]" (the brackets already removed) */
static int parse_proto_port(const char *s, struct bt_ts *ts, char *err, size_t errlen)
{
	const char *slash = strchr(s, '/');
	size_t plen = slash ? (size_t)(slash - s) : strlen(s);
	char name[16];
	if (plen == 0 || plen >= sizeof(name)) {
		snprintf(err, errlen, "bad protocol in selector");
		return -1;
	}
	memcpy(name, s, plen);
	name[plen] = '\0';
	bool found = false;
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (strcasecmp(name, proto_names[i].name) == 0)
			ts->proto = proto_names[i].proto, found = true;
	if (!found) {
		uint16_t v;
		if (strcmp(name, "%any") == 0)
			ts->proto = 0, found = true;
		else if (parse_u16(name, name + plen, &v) == 0 && v <= 255)
			ts->proto = (uint8_t)v, found = true;
	}
	if (!found) {
		snprintf(err, errlen, "unknown protocol '%s' in selector", name);
		return -1;
	}
	if (!slash)
		return 0;
	const char *p = slash + 1, *dash = strchr(p, '-');
	if (strcmp(p, "%any") == 0)
		return 0;
	if (parse_u16(p, dash ? dash : p + strlen(p), &ts->port_lo) != 0 ||
	    parse_u16(dash ? dash + 1 : p, p + strlen(p), &ts->port_hi) != 0 || ts->port_lo > ts->port_hi) {
		snprintf(err, errlen, "bad port or port range '%s' in selector", p);
		return -1;
	}
	return 0;
}

int bt_ts_parse(const char *s, struct bt_ts *out, char *err, size_t errlen)
{
	char buf[160];
	size_t n = strlen(s);
	memset(out, 0, sizeof(*out));
	out->port_hi = 65535;
	if (n == 0 || n >= sizeof(buf)) {
		snprintf(err, errlen, "bad traffic selector '%.40s'", s);
		return -1;
	}
	memcpy(buf, s, n + 1);
	char *br = strchr(buf, '[');
	if (br) {
		char *close = strchr(br, ']');
		if (!close || close[1] != '\0') {
			snprintf(err, errlen, "unterminated '[' in selector '%s'", s);
			return -1;
		}
		*close = '\0';
		*br = '\0';
		if (parse_proto_port(br + 1, out, err, errlen) != 0)
			return -1;
	}
	char *dash = strchr(buf, '-');
	if (dash && !strchr(buf, '/')) {
		*dash = '\0';
		if (bt_addr_parse(buf, &out->lo) != 0 || bt_addr_parse(dash + 1, &out->hi) != 0 ||
		    out->lo.family != out->hi.family || bt_addr_cmp(&out->lo, &out->hi) > 0) {
			snprintf(err, errlen, "bad address range in selector '%s'", s);
			return -1;
		}
		return 0;
	}
	struct bt_prefix p;
	if (bt_prefix_parse(buf, &p) != 0) {
		snprintf(err, errlen, "bad address or subnet in selector '%s'", s);
		return -1;
	}
	bt_prefix_range(&p, &out->lo, &out->hi);
	return 0;
}

const char *bt_ts_str(const struct bt_ts *ts, char *buf, size_t len)
{
	char lo[BT_ADDRSTRLEN], hi[BT_ADDRSTRLEN], pp[32] = "";
	bt_addr_str(&ts->lo, lo, sizeof(lo));
	/* a range that is a prefix prints as one */
	int plen = -1;
	unsigned bits = ts->lo.family == AF_INET6 ? 128 : 32;
	for (unsigned l = 0; l <= bits; l++) {
		struct bt_prefix p = {.addr = ts->lo, .len = (uint8_t)l};
		struct bt_addr a, b;
		bt_prefix_range(&p, &a, &b);
		if (bt_addr_eq(&a, &ts->lo) && bt_addr_eq(&b, &ts->hi)) {
			plen = (int)l;
			break;
		}
	}
	if (ts->proto) {
		const char *name = NULL;
		for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
			if (proto_names[i].proto == ts->proto && !name)
				name = proto_names[i].name;
		char pn[8];
		snprintf(pn, sizeof(pn), "%u", ts->proto);
		if (ts->port_lo == 0 && ts->port_hi == 65535)
			snprintf(pp, sizeof(pp), "[%s]", name ? name : pn);
		else if (ts->port_lo == ts->port_hi)
			snprintf(pp, sizeof(pp), "[%s/%u]", name ? name : pn, ts->port_lo);
		else
			snprintf(pp, sizeof(pp), "[%s/%u-%u]", name ? name : pn, ts->port_lo, ts->port_hi);
	}
	if (plen >= 0)
		snprintf(buf, len, "%s/%d%s", lo, plen, pp);
	else
		snprintf(buf, len, "%s-%s%s", lo, bt_addr_str(&ts->hi, hi, sizeof(hi)), pp);
	return buf;
}

bool bt_ts_match(const struct bt_ts *ts, const struct bt_addr *a, uint8_t proto, uint16_t port)
{
	if (ts->lo.family != a->family)
		return false;
	if (ts->proto && ts->proto != proto)
		return false;
	if (port < ts->port_lo || port > ts->port_hi)
		return false;
	return bt_addr_cmp(a, &ts->lo) >= 0 && bt_addr_cmp(a, &ts->hi) <= 0;
}

bool bt_ts_list_match(const struct bt_ts *ts, unsigned n, const struct bt_addr *a, uint8_t proto,
		      uint16_t port)
{
	for (unsigned i = 0; i < n; i++)
		if (bt_ts_match(&ts[i], a, proto, port))
			return true;
	return false;
}

static void read_ports(const uint8_t *l4, size_t left, uint8_t proto, struct bt_flow *f)
{
	switch (proto) {
	case 6: case 17: case 132: case 136:
		if (left >= 4) {
			f->sport = (uint16_t)(l4[0] << 8 | l4[1]);
			f->dport = (uint16_t)(l4[2] << 8 | l4[3]);
		}
		break;
	case 1: case 58:
		if (left >= 2)
			f->sport = f->dport = (uint16_t)(l4[0] << 8 | l4[1]);
		break;
	default:
		break;
	}
}

int bt_flow_from_packet(const uint8_t *pkt, size_t len, struct bt_flow *f)
{
	memset(f, 0, sizeof(*f));
	if (len < 1)
		return -1;
	unsigned version = pkt[0] >> 4;
	if (version == 4) {
		if (len < 20)
			return -1;
		size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
		size_t tot = (size_t)(pkt[2] << 8 | pkt[3]);
		if (ihl < 20 || ihl > len || tot < ihl || tot > len)
			return -1;
		f->src.family = f->dst.family = AF_INET;
		memcpy(f->src.b, pkt + 12, 4);
		memcpy(f->dst.b, pkt + 16, 4);
		f->proto = pkt[9];
		uint16_t frag = (uint16_t)((pkt[6] & 0x1f) << 8 | pkt[7]);
		if (frag == 0) /* only the first fragment has ports */
			read_ports(pkt + ihl, tot - ihl, f->proto, f);
		return 0;
	}
	if (version == 6) {
		if (len < 40)
			return -1;
		size_t tot = 40 + (size_t)(pkt[4] << 8 | pkt[5]);
		if (tot > len)
			return -1;
		f->src.family = f->dst.family = AF_INET6;
		memcpy(f->src.b, pkt + 8, 16);
		memcpy(f->dst.b, pkt + 24, 16);
		uint8_t nh = pkt[6];
		size_t off = 40;
		for (int hops = 0; hops < 8; hops++) {
			if (nh == 0 || nh == 43 || nh == 60) { /* hop-by-hop, routing, destination options */
				if (off + 8 > tot)
					return -1;
				size_t hl = ((size_t)pkt[off + 1] + 1) * 8;
				if (off + hl > tot)
					return -1;
				nh = pkt[off];
				off += hl;
			} else if (nh == 44) { /* fragment */
				if (off + 8 > tot)
					return -1;
				uint16_t fo = (uint16_t)(pkt[off + 2] << 8 | pkt[off + 3]) & 0xfff8;
				nh = pkt[off];
				off += 8;
				if (fo) {
					f->proto = nh;
					return 0;
				}
			} else {
				break;
			}
		}
		f->proto = nh;
		read_ports(pkt + off, tot - off, nh, f);
		return 0;
	}
	return -1;
}
