/* test_ike_dh.c — IKEv2 key exchange: both ends of every group agree; X25519 against RFC 7748 6.1's
 * public values (a low-order point refused); strongSwan's captured ECP-256 public value is accepted
 * as a curve point and a point off the curve is refused; wrong lengths are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ike/ike_dh.h"
#include "ike/ike_msg.h"
#include "testdata.h"

static void test_agree(void **state)
{
	static const uint16_t groups[] = {IKE_DH_X25519, IKE_DH_ECP256, IKE_DH_ECP384, IKE_DH_MODP2048};
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		struct ike_dh *a = ike_dh_new(groups[i]), *b = ike_dh_new(groups[i]);
		assert_non_null(a);
		assert_non_null(b);
		uint8_t pa[512], pb[512], sa[512], sb[512];
		size_t la = sizeof(pa), lb = sizeof(pb), ka = sizeof(sa), kb = sizeof(sb);
		assert_int_equal(ike_dh_public(a, pa, &la), 0);
		assert_int_equal(ike_dh_public(b, pb, &lb), 0);
		assert_int_equal(la, ike_dh_public_len(groups[i]));
		assert_int_equal(ike_dh_shared(a, pb, lb, sa, &ka), 0);
		assert_int_equal(ike_dh_shared(b, pa, la, sb, &kb), 0);
		assert_int_equal(ka, kb);
		assert_memory_equal(sa, sb, ka);
		if (groups[i] == IKE_DH_MODP2048)
			assert_int_equal(ka, 256); /* padded to the modulus */
		if (groups[i] == IKE_DH_ECP256)
			assert_int_equal(ka, 32); /* the x coordinate */
		assert_int_equal(ike_dh_shared(a, pb, lb - 1, sa, &ka), -1);
		ike_dh_free(a);
		ike_dh_free(b);
	}
	assert_null(ike_dh_new(1)); /* MODP-768: not offered */
}

static void test_x25519_low_order(void **state)
{
	/* RFC 7748 6.1: a public value of 0 (and other low-order points) gives an all-zero secret */
	struct ike_dh *a = ike_dh_new(IKE_DH_X25519);
	uint8_t zero[32] = {0}, s[32];
	size_t l = sizeof(s);
	assert_int_equal(ike_dh_shared(a, zero, 32, s, &l), -1);
	ike_dh_free(a);
}

static void test_strongswan_point(void **state)
{
	static uint8_t msg[2048];
	size_t n = testdata_load("strongswan-ike-sa-init-request.bin", msg, sizeof(msg));
	struct ike_hdr h;
	static struct ike_chain c;
	struct ike_ke_payload ke;
	assert_int_equal(ike_parse(msg, n, &h, &c), IKE_PERR_OK);
	assert_int_equal(ike_parse_ke(ike_find(&c, IKE_PL_KE, 0), &ke), IKE_PERR_OK);
	struct ike_dh *a = ike_dh_new(IKE_DH_ECP256);
	uint8_t s[64], bad[64];
	size_t l = sizeof(s);
	assert_int_equal(ike_dh_shared(a, ke.data, ke.len, s, &l), 0);
	assert_int_equal(l, 32);
	memcpy(bad, ke.data, 64);
	bad[63] ^= 1; /* y no longer matches x: off the curve */
	l = sizeof(s);
	assert_int_equal(ike_dh_shared(a, bad, 64, s, &l), -1);
	ike_dh_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agree),
		cmocka_unit_test(test_x25519_low_order),
		cmocka_unit_test(test_strongswan_point),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
