/* test_ike_cookie.c — stateless cookies (RFC 7296 2.6): the layout against a SHA-256 computed here,
 * what changes the cookie, tampering, the secret's rotation, and the half-open threshold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "ike/ike_cookie.h"

static const uint8_t ni[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint64_t spi = 0x0123456789abcdefull;

static struct bt_addr addr(const char *s)
{
	struct bt_addr a;
	assert_int_equal(bt_addr_parse(s, &a), 0);
	return a;
}

static void test_layout(void **state)
{
	struct ike_cookie_gen g;
	assert_int_equal(ike_cookie_init(&g, 0, 60000), 0);
	struct bt_addr ip = addr("192.0.2.7");
	uint8_t c[IKE_COOKIE_LEN], buf[32 + 4 + 8 + IKE_COOKIE_SECRET_LEN], want[32];
	assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &ip, spi, c), 0);
	/* <VersionIDofSecret> | SHA-256(Ni | IPi | SPIi | <secret>) */
	assert_int_equal((uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3], g.version);
	memcpy(buf, ni, 32);
	memcpy(buf + 32, (uint8_t[]){192, 0, 2, 7}, 4);
	memcpy(buf + 36, (uint8_t[]){0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}, 8);
	memcpy(buf + 44, g.secret, IKE_COOKIE_SECRET_LEN);
	SHA256(buf, sizeof(buf), want);
	assert_memory_equal(c + 4, want, 32);
	ike_cookie_clear(&g);
}

static void test_verify(void **state)
{
	struct ike_cookie_gen g;
	assert_int_equal(ike_cookie_init(&g, 0, 60000), 0);
	static const char *ips[] = {"192.0.2.7", "2001:db8::7"};
	for (int k = 0; k < 2; k++) {
		struct bt_addr ip = addr(ips[k]), other = addr(k ? "2001:db8::8" : "192.0.2.8");
		uint8_t c[IKE_COOKIE_LEN], n2[32];
		assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &ip, spi, c), 0);
		assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c, sizeof(c)));
		/* another address, SPI or nonce (content or length) */
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &other, spi, c, sizeof(c)));
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi ^ 1, c, sizeof(c)));
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi << 1, c, sizeof(c)));
		memcpy(n2, ni, sizeof(n2));
		n2[31] ^= 0x80;
		assert_false(ike_cookie_verify(&g, n2, sizeof(n2), &ip, spi, c, sizeof(c)));
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni) - 1, &ip, spi, c, sizeof(c)));
		/* every bit of the cookie matters, and so does its length */
		for (size_t i = 0; i < sizeof(c); i++)
			for (int bit = 0; bit < 8; bit++) {
				c[i] ^= (uint8_t)(1 << bit);
				assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c, sizeof(c)));
				c[i] ^= (uint8_t)(1 << bit);
			}
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c, sizeof(c) - 1));
		uint8_t longer[IKE_COOKIE_LEN + 1] = {0};
		memcpy(longer, c, sizeof(c));
		assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, longer, sizeof(longer)));
		assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c, sizeof(c)));
	}
	/* the IPv4 address 192.0.2.7 and an IPv6 address starting with its bytes differ */
	struct bt_addr v4 = addr("192.0.2.7"), v6 = addr("c000:207::");
	uint8_t c[IKE_COOKIE_LEN];
	assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &v4, spi, c), 0);
	assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &v6, spi, c, sizeof(c)));
	ike_cookie_clear(&g);
}

static void test_rotation(void **state)
{
	struct ike_cookie_gen g;
	assert_int_equal(ike_cookie_init(&g, 1000, 60000), 0);
	struct bt_addr ip = addr("198.51.100.1");
	uint8_t c0[IKE_COOKIE_LEN], c1[IKE_COOKIE_LEN];
	assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &ip, spi, c0), 0);
	uint32_t v0 = g.version;
	/* the period has not passed: nothing changes */
	assert_int_equal(ike_cookie_tick(&g, 60999), 0);
	assert_int_equal(g.version, v0);
	assert_false(g.have_prev);
	/* one rotation: the old cookie still verifies, new ones carry the next version and differ */
	assert_int_equal(ike_cookie_tick(&g, 61000), 0);
	assert_int_equal(g.version, v0 + 1);
	assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c0, sizeof(c0)));
	assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &ip, spi, c1), 0);
	assert_memory_not_equal(c0 + 4, c1 + 4, 32);
	assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c1, sizeof(c1)));
	/* the old hash under the new version number, or the new one under the old: refused */
	uint8_t mix[IKE_COOKIE_LEN];
	memcpy(mix, c1, 4);
	memcpy(mix + 4, c0 + 4, 32);
	assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, mix, sizeof(mix)));
	memcpy(mix, c0, 4);
	memcpy(mix + 4, c1 + 4, 32);
	assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, mix, sizeof(mix)));
	/* two rotations: the first cookie is refused, the second still good */
	assert_int_equal(ike_cookie_rotate(&g, 70000), 0);
	assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c0, sizeof(c0)));
	assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c1, sizeof(c1)));
	assert_int_equal(ike_cookie_rotate(&g, 80000), 0);
	assert_false(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c1, sizeof(c1)));
	/* the version wraps without trouble */
	g.version = UINT32_MAX;
	assert_int_equal(ike_cookie_make(&g, ni, sizeof(ni), &ip, spi, c0), 0);
	assert_int_equal(ike_cookie_rotate(&g, 90000), 0);
	assert_int_equal(g.version, 0);
	assert_true(ike_cookie_verify(&g, ni, sizeof(ni), &ip, spi, c0, sizeof(c0)));
	/* a second generator (another restart of the daemon) does not accept our cookies */
	struct ike_cookie_gen g2;
	assert_int_equal(ike_cookie_init(&g2, 0, 60000), 0);
	g2.version = g.version;
	assert_false(ike_cookie_verify(&g2, ni, sizeof(ni), &ip, spi, c0, sizeof(c0)));
	ike_cookie_clear(&g);
	ike_cookie_clear(&g2);
	static const uint8_t zero[sizeof(g)];
	assert_memory_equal(&g, zero, sizeof(g));
}

static void test_half_open(void **state)
{
	struct ike_half_open h = {.threshold = 3};
	assert_false(ike_cookie_required(&h));
	ike_half_open_inc(&h);
	ike_half_open_inc(&h);
	assert_false(ike_cookie_required(&h));
	ike_half_open_inc(&h);
	assert_true(ike_cookie_required(&h));
	ike_half_open_dec(&h);
	assert_false(ike_cookie_required(&h));
	for (int i = 0; i < 5; i++)
		ike_half_open_dec(&h); /* never below zero */
	assert_int_equal(h.n, 0);
	struct ike_half_open always = {.threshold = 0};
	assert_true(ike_cookie_required(&always));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_half_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
