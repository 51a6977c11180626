/* test_ike_keys.c — IKEv2 key derivation against strongSwan 5.9.8: from the nonces and SPIs of its
 * captured IKE_SA_INIT exchange and the DH secret it logged, we must derive the SKEYSEED and the
 * seven SK_* keys it logged in the same run; plus HMAC-SHA-256 (RFC 4231) as the PRF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ike/ike_keys.h"
#include "ike/ike_msg.h"
#include "testdata.h"

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = 0;
	for (; h[0] && h[1] && h[0] != '\n'; h += 2)
		sscanf(h, "%2hhx", &out[n++]);
	return n;
}

/* The value named `key` in strongswan-keymat.txt. */
static size_t keymat(const char *key, uint8_t *out)
{
	FILE *f = testdata_open("strongswan-keymat.txt", "r");
	char line[512];
	size_t n = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ')
			n = unhex(line + strlen(key) + 1, out);
	fclose(f);
	assert_true(n > 0);
	return n;
}

static void nonce_of(const char *file, uint8_t *msg, const uint8_t **nonce, size_t *len, struct ike_hdr *h)
{
	FILE *f = testdata_open(file, "rb");
	size_t n = fread(msg, 1, 2048, f);
	fclose(f);
	static struct ike_chain c;
	assert_int_equal(ike_parse(msg, n, h, &c), IKE_PERR_OK);
	const struct ike_payload *p = ike_find(&c, IKE_PL_NONCE, 0);
	assert_non_null(p);
	*nonce = p->body, *len = p->len;
}

static void test_against_strongswan(void **state)
{
	static uint8_t req[2048], resp[2048];
	const uint8_t *ni, *nr;
	size_t ni_len, nr_len;
	struct ike_hdr hi, hr;
	nonce_of("strongswan-ike-sa-init-request.bin", req, &ni, &ni_len, &hi);
	nonce_of("strongswan-ike-sa-init-response.bin", resp, &nr, &nr_len, &hr);
	uint8_t g_ir[64], want[64];
	size_t gl = keymat("g_ir", g_ir);
	struct ike_keys k;
	/* aes128-sha256-ecp256: PRF HMAC-SHA2-256, integrity 32-byte key, AES-128-CBC 16-byte key */
	assert_int_equal(ike_derive(IKE_PRF_HMAC_SHA2_256, 32, 16, ni, ni_len, nr, nr_len, hi.spi_i, hr.spi_r, g_ir,
				    gl, &k),
			 0);
	struct {
		const char *name;
		const uint8_t *got;
		size_t len;
	} v[] = {
		{"skeyseed", k.skeyseed, 32}, {"sk_d", k.sk_d, 32},   {"sk_ai", k.sk_ai, 32}, {"sk_ar", k.sk_ar, 32},
		{"sk_ei", k.sk_ei, 16},       {"sk_er", k.sk_er, 16}, {"sk_pi", k.sk_pi, 32}, {"sk_pr", k.sk_pr, 32},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(keymat(v[i].name, want), v[i].len);
		if (memcmp(v[i].got, want, v[i].len) != 0)
			fail_msg("%s differs from strongSwan's", v[i].name);
	}
	ike_keys_clear(&k);
}

static void test_prf(void **state)
{
	/* RFC 4231 test case 2 (HMAC-SHA-256, key "Jefe") as the IKE PRF, split over two pieces */
	uint8_t out[64], want[32];
	const char *msg = "what do ya want for nothing?";
	unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want);
	assert_int_equal(ike_prf(IKE_PRF_HMAC_SHA2_256, (const uint8_t *)"Jefe", 4, (const uint8_t *)msg, 4,
				 (const uint8_t *)msg + 4, strlen(msg) - 4, out),
			 0);
	assert_memory_equal(out, want, 32);
	/* prf+ is T1 | T2 ...: its first block is prf(K, S | 0x01), its prefix property holds */
	uint8_t a[100], b[40], t1[32], s[5] = {1, 2, 3, 4, 1};
	assert_int_equal(ike_prf_plus(IKE_PRF_HMAC_SHA2_256, want, 32, s, 4, a, sizeof(a)), 0);
	assert_int_equal(ike_prf_plus(IKE_PRF_HMAC_SHA2_256, want, 32, s, 4, b, sizeof(b)), 0);
	assert_int_equal(ike_prf(IKE_PRF_HMAC_SHA2_256, want, 32, s, 5, NULL, 0, t1), 0);
	assert_memory_equal(a, t1, 32);
	assert_memory_equal(a, b, sizeof(b));
	assert_int_equal(ike_prf_plus(IKE_PRF_HMAC_SHA2_256, want, 32, s, 4, a, 255 * 32 + 1), -1);
	assert_int_equal(ike_prf_len(99), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_strongswan),
		cmocka_unit_test(test_prf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
