/* test_io_gso.c — user-space TCP segmentation of TSO super-packets: every segment's lengths, IPv4
 * ids, sequence numbers, flags and checksums, checked against an independent checksum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "io/gso.h"

/* The textbook RFC 1071 checksum, written separately from csum_add. */
static uint16_t rfc1071(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)(p[n - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static bool l4_ok(const uint8_t *ip, size_t len)
{
	uint8_t ph[40] = {0};
	size_t iph, phl;
	if ((ip[0] >> 4) == 4) {
		iph = 20;
		memcpy(ph, ip + 12, 8);
		ph[9] = 6;
		ph[10] = (uint8_t)((len - iph) >> 8), ph[11] = (uint8_t)(len - iph);
		phl = 12;
	} else {
		iph = 40;
		memcpy(ph, ip + 8, 32);
		ph[34] = (uint8_t)((len - iph) >> 8), ph[35] = (uint8_t)(len - iph);
		ph[39] = 6;
		phl = 40;
	}
	uint32_t s = 0;
	for (size_t i = 0; i < phl; i += 2)
		s += (uint32_t)(ph[i] << 8 | ph[i + 1]);
	return rfc1071(ip + iph, len - iph, s) == 0;
}

struct seen {
	uint8_t seg[64][1600];
	size_t len[64];
	int n;
};

static int keep(void *arg, uint8_t *seg, size_t len)
{
	struct seen *s = arg;
	memcpy(s->seg[s->n], seg, len);
	s->len[s->n++] = len;
	return 0;
}

static size_t mk_super(uint8_t *p, bool v6, size_t payload, uint8_t flags)
{
	size_t iph = v6 ? 40 : 20;
	memset(p, 0, iph + 32);
	if (v6) {
		p[0] = 0x60;
		p[4] = (uint8_t)((payload + 32) >> 8), p[5] = (uint8_t)(payload + 32);
		p[6] = 6, p[7] = 64;
		p[8] = 0xfd, p[23] = 1, p[24] = 0xfd, p[39] = 2;
	} else {
		size_t tot = iph + 32 + payload;
		p[0] = 0x45, p[2] = (uint8_t)(tot >> 8), p[3] = (uint8_t)tot;
		p[4] = 0x12, p[5] = 0x34, p[6] = 0x40, p[8] = 64, p[9] = 6;
		p[12] = 10, p[13] = 1, p[15] = 2, p[16] = 10, p[17] = 2, p[19] = 2;
	}
	uint8_t *t = p + iph;
	t[0] = 0x9c, t[1] = 0x40, t[3] = 80;
	t[4] = 0xff, t[5] = 0xff, t[6] = 0xf0, t[7] = 0x00; /* the sequence wraps inside */
	t[12] = 8 << 4; /* 32-byte header: timestamps */
	t[13] = flags;
	t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;
	for (size_t i = 0; i < payload; i++)
		p[iph + 32 + i] = (uint8_t)(i * 13);
	return iph + 32 + payload;
}

static void run(bool v6)
{
	static uint8_t super[70000], scratch[65536];
	static struct seen s;
	size_t payload = 10000, mss = 1388, iph = v6 ? 40 : 20;
	size_t len = mk_super(super, v6, payload, 0x10 | 0x08 | 0x01 | 0x80); /* ACK PSH FIN CWR */
	memset(&s, 0, sizeof(s));
	int n = gso_segment_tcp(super, len, (uint16_t)mss, scratch, sizeof(scratch), keep, &s);
	assert_int_equal(n, (int)((payload + mss - 1) / mss));
	assert_int_equal(s.n, n);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		uint8_t *ip = s.seg[i];
		size_t chunk = payload - off < mss ? payload - off : mss;
		assert_int_equal(s.len[i], iph + 32 + chunk);
		if (v6) {
			assert_int_equal(ip[4] << 8 | ip[5], 32 + chunk);
		} else {
			assert_int_equal(ip[2] << 8 | ip[3], s.len[i]);
			assert_int_equal(ip[4] << 8 | ip[5], 0x1234 + i);
			assert_int_equal(rfc1071(ip, 20, 0), 0);
		}
		uint8_t *t = ip + iph;
		uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
		assert_int_equal(seq, (uint32_t)(0xfffff000u + off));
		bool last = i == n - 1;
		assert_int_equal(!!(t[13] & 0x01), last); /* FIN */
		assert_int_equal(!!(t[13] & 0x08), last); /* PSH */
		assert_int_equal(!!(t[13] & 0x80), i == 0); /* CWR */
		assert_true(t[13] & 0x10);
		assert_memory_equal(t + 20, super + iph + 20, 12); /* options copied */
		assert_memory_equal(t + 32, super + iph + 32 + off, chunk);
		assert_true(l4_ok(ip, s.len[i]));
		off += chunk;
	}
}

static void test_segment_v4(void **state) { run(false); }
static void test_segment_v6(void **state) { run(true); }

static void test_partial_checksum(void **state)
{
	/* a packet as the kernel hands it with NEEDS_CSUM: the field holds the pseudo-header sum */
	static uint8_t p[2000];
	size_t len = mk_super(p, false, 500, 0x18);
	uint32_t ps = csum_pseudo(p, 6, len - 20);
	uint16_t folded = csum_fold(ps);
	memcpy(p + 20 + 16, &folded, 2);
	assert_int_equal(gso_complete_csum(p, len, 20, 16), 0);
	assert_true(l4_ok(p, len));
	assert_int_equal(gso_complete_csum(p, len, 1990, 16), -1);
	/* malformed super-packets are refused */
	static uint8_t scratch[65536];
	static struct seen s;
	p[0] = 0x46; /* options claimed, not there as TCP */
	p[9] = 17;
	assert_int_equal(gso_segment_tcp(p, len, 1000, scratch, sizeof(scratch), keep, &s), -1);
	assert_int_equal(gso_segment_tcp(p, 10, 1000, scratch, sizeof(scratch), keep, &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_v4),
		cmocka_unit_test(test_segment_v6),
		cmocka_unit_test(test_partial_checksum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
