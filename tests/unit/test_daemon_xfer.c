/* test_daemon_xfer.c — the sealed session context: AES-256-GCM seal and open, refused when any byte
 * of the ciphertext, tag, nonce or associated data changes or the input is cut; whole contexts
 * written by batond (the fuzz seeds, decrypted) pass validation, and every truncation of them is
 * refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/xfer.h"

static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_seal_open(void **state)
{
	const char *msg = "a session context, or any other secret";
	const uint8_t hdr[8] = "BTCX\0\1\0\0", bind[4] = {9, 9, 9, 9};
	size_t n = strlen(msg);
	uint8_t sealed[128], out[128];
	assert_int_equal(xfer_aead_seal(key, hdr, 8, bind, 4, (const uint8_t *)msg, n, sealed), 0);
	size_t sn = n + XFER_AEAD_OVERHEAD;
	assert_int_equal(xfer_aead_open(key, hdr, 8, bind, 4, sealed, sn, out), 0);
	assert_memory_equal(out, msg, n);
	for (size_t i = 0; i < sn; i++) {
		sealed[i] ^= 0x40;
		assert_int_equal(xfer_aead_open(key, hdr, 8, bind, 4, sealed, sn, out), -1);
		sealed[i] ^= 0x40;
	}
	for (size_t k = 0; k < sn; k++)
		assert_int_equal(xfer_aead_open(key, hdr, 8, bind, 4, sealed, k, out), -1);
	assert_int_equal(xfer_aead_open(key, hdr, 8, NULL, 0, sealed, sn, out), -1); /* another bind */
	uint8_t other[32];
	memcpy(other, key, 32), other[31] ^= 1;
	assert_int_equal(xfer_aead_open(other, hdr, 8, bind, 4, sealed, sn, out), -1);
	/* two seals of the same text differ (random nonce) */
	uint8_t again[128];
	assert_int_equal(xfer_aead_seal(key, hdr, 8, bind, 4, (const uint8_t *)msg, n, again), 0);
	assert_memory_not_equal(again, sealed, sn);
}

static uint8_t *load(const char *name, size_t *n)
{
	char path[512];
	const char *src = getenv("BATON_SRC");
	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/fuzz_daemon_ctx/%s", src ? src : ".", name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static uint8_t buf[65536];
	*n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return buf;
}

static void test_contexts_validate(void **state)
{
	static const char *const seeds[] = {"g1_ctx", "g2_ctx"};
	char err[256];
	for (size_t s = 0; s < 2; s++) {
		size_t n;
		uint8_t *p = load(seeds[s], &n);
		assert_true(n > 500);
		assert_int_equal(xfer_ctx_validate(p, n, err, sizeof(err)), 0);
		for (size_t k = 0; k < n; k++) {
			err[0] = 0;
			assert_int_equal(xfer_ctx_validate(p, k, err, sizeof(err)), -1);
			assert_true(err[0] != 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_contexts_validate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
