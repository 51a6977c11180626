/* test_util_addr.c — address and prefix parsing, containment and ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "util/addr.h"

static void test_parse_format(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} cases[] = {
		{"10.1.2.3", 0, "10.1.2.3/32"},
		{"10.1.2.3/24", 0, "10.1.2.0/24"},
		{"192.168.3.0/0", 0, "0.0.0.0/0"},
		{"2001:db8::1", 0, "2001:db8::1/128"},
		{"2001:db8:ffff::/33", 0, "2001:db8:8000::/33"},
		{"10.1.2.3/33", -1, NULL},
		{"10.1.2.3/", -1, NULL},
		{"10.1.2.3/-1", -1, NULL},
		{"10.1.2", -1, NULL},
		{"", -1, NULL},
		{"/24", -1, NULL},
		{"::/129", -1, NULL},
		{"10.0.0.1/24x", -1, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bt_prefix p;
		char buf[BT_ADDRSTRLEN];
		int rc = bt_prefix_parse(cases[i].in, &p);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0)
			assert_string_equal(bt_prefix_str(&p, buf, sizeof(buf)), cases[i].out);
	}
}

static void test_contains_range(void **state)
{
	struct bt_prefix p;
	struct bt_addr a, lo, hi;
	char b1[BT_ADDRSTRLEN], b2[BT_ADDRSTRLEN];

	assert_int_equal(bt_prefix_parse("192.168.2.0/23", &p), 0);
	assert_int_equal(bt_addr_parse("192.168.3.1", &a), 0);
	assert_true(bt_prefix_contains(&p, &a));
	assert_int_equal(bt_addr_parse("192.168.4.1", &a), 0);
	assert_false(bt_prefix_contains(&p, &a));
	assert_int_equal(bt_addr_parse("::ffff:192.168.2.1", &a), 0);
	assert_false(bt_prefix_contains(&p, &a)); /* other family */
	bt_prefix_range(&p, &lo, &hi);
	assert_string_equal(bt_addr_str(&lo, b1, sizeof(b1)), "192.168.2.0");
	assert_string_equal(bt_addr_str(&hi, b2, sizeof(b2)), "192.168.3.255");
	assert_true(bt_addr_cmp(&lo, &hi) < 0);

	assert_int_equal(bt_prefix_parse("fd00::/7", &p), 0);
	bt_prefix_range(&p, &lo, &hi);
	assert_string_equal(bt_addr_str(&hi, b2, sizeof(b2)), "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_int_equal(bt_prefix_parse("0.0.0.0/0", &p), 0);
	assert_int_equal(bt_addr_parse("8.8.8.8", &a), 0);
	assert_true(bt_prefix_contains(&p, &a));
}

static void test_sockaddr(void **state)
{
	struct bt_addr a, b;
	struct sockaddr_storage ss;
	uint16_t port;

	assert_int_equal(bt_addr_parse("2001:db8::5", &a), 0);
	bt_addr_to_sockaddr(&a, 4500, &ss);
	bt_addr_from_sockaddr((struct sockaddr *)&ss, &b, &port);
	assert_true(bt_addr_eq(&a, &b));
	assert_int_equal(port, 4500);

	/* a v4-mapped source from a dual-stack socket is reported as IPv4 */
	assert_int_equal(bt_addr_parse("::ffff:10.0.0.7", &a), 0);
	bt_addr_to_sockaddr(&a, 500, &ss);
	bt_addr_from_sockaddr((struct sockaddr *)&ss, &b, &port);
	assert_int_equal(b.family, AF_INET);
	assert_int_equal(bt_addr_parse("10.0.0.7", &a), 0);
	assert_true(bt_addr_eq(&a, &b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_contains_range),
		cmocka_unit_test(test_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
