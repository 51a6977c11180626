/* test_ike_frag.c — IKE fragmentation (RFC 7383): seal and reassemble round trips for every suite at
 * the usual MTUs, disorder, duplicates, forgeries, a refragmenting sender, the bounds on fragments,
 * memory and time; and both directions against an independent implementation in python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ike/ike_frag.h"
#include "testdata.h"

static const struct ike_sk_suite suites[] = {
	{IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE},
	{IKE_ENCR_AES_GCM_16, 256, IKE_INTEG_NONE},
	{IKE_ENCR_AES_CBC, 128, IKE_INTEG_HMAC_SHA2_256_128},
	{IKE_ENCR_CHACHA20_POLY1305, 0, IKE_INTEG_NONE},
};
#define N_SUITES (sizeof(suites) / sizeof(suites[0]))
static const struct ike_sk_suite gcm128 = {IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
static const struct ike_hdr hdr = {
	.spi_i = 0x1122334455667788ull, .spi_r = 0x99aabbccddeeff00ull, .exchange = IKE_AUTH,
	.flags = IKE_FLAG_INITIATOR, .msg_id = 1};

static uint8_t ke[36], ka[64];

/* fragments of one message */
struct frags {
	uint8_t buf[96 * 1024];
	size_t len[IKE_FRAG_MAX], off[IKE_FRAG_MAX];
	unsigned n;
};

static int setup(void **state)
{
	for (size_t i = 0; i < sizeof(ke); i++)
		ke[i] = (uint8_t)(0xa0 + i);
	for (size_t i = 0; i < sizeof(ka); i++)
		ka[i] = (uint8_t)(0x30 + 7 * i);
	return 0;
}

/* An IKE_AUTH-like chain: IDi, two CERT-like blobs of cert_len bytes, AUTH, TSi-like raw data. */
static size_t make_chain(uint8_t *buf, size_t cap, size_t cert_len, uint8_t *first)
{
	static uint8_t blob[70000];
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 131 + (i >> 8));
	struct ike_builder b;
	ike_build_chain_begin(&b, buf, cap);
	ike_put_id(&b, IKE_PL_IDI, IKE_ID_FQDN, "gw.example.net", 14);
	ike_put_raw(&b, IKE_PL_CERT, blob, cert_len);
	ike_put_raw(&b, IKE_PL_CERT, blob + 7, cert_len / 2);
	ike_put_auth(&b, 14, blob + 100, 256);
	ike_put_notify(&b, IKE_PROTO_IKE, NULL, 0, IKE_N_INITIAL_CONTACT, NULL, 0);
	size_t len = ike_build_end(&b);
	assert_false(b.w.overflow);
	*first = b.first;
	return len;
}

static void seal(struct frags *f, const struct ike_sk_suite *s, const uint8_t *chain, size_t len, uint8_t first,
		 size_t frag_max)
{
	f->n = ike_frag_seal(s, ke, ka, &hdr, first, chain, len, frag_max, f->buf, sizeof(f->buf), f->len, IKE_FRAG_MAX);
	assert_true(f->n > 0);
	size_t at = 0;
	for (unsigned i = 0; i < f->n; i++) {
		f->off[i] = at;
		at += f->len[i];
		assert_true(f->len[i] <= frag_max);
	}
}

static enum ike_frag_result feed(struct ike_frag_reasm *r, const struct ike_sk_suite *s, const uint8_t *m, size_t len,
				 uint64_t now, enum ike_frag_drop *why)
{
	uint8_t first;
	const uint8_t *inner;
	size_t inner_len;
	/* an exact-size copy, so ASan sees any over-read */
	uint8_t *copy = malloc(len);
	memcpy(copy, m, len);
	enum ike_frag_result res = ike_frag_reasm_feed(r, s, ke, ka, copy, len, now, &first, &inner, &inner_len, why);
	assert_memory_equal(copy, m, len); /* msg is not modified */
	free(copy);
	return res;
}

static void check_complete(struct ike_frag_reasm *r, const uint8_t *chain, size_t len, uint8_t first)
{
	assert_true(r->complete);
	assert_int_equal(r->first, first);
	assert_int_equal(r->chain_len, len);
	assert_memory_equal(r->chain, chain, len);
	static struct ike_chain c;
	assert_int_equal(ike_parse_chain(r->first, r->chain, r->chain_len, &c), IKE_PERR_OK);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.pl[1].type, IKE_PL_CERT);
}

static void test_round_trip(void **state)
{
	static const size_t mtus[] = {576, 1280, 1500};
	static uint8_t chain[16384];
	static struct frags f;
	for (size_t s = 0; s < N_SUITES; s++)
		for (size_t m = 0; m < 3; m++)
			for (int natt = 0; natt < 2; natt++) {
				uint8_t first;
				size_t len = make_chain(chain, sizeof(chain), 3000, &first);
				size_t max = ike_frag_max_len(mtus[m], mtus[m] == 1280, natt);
				seal(&f, &suites[s], chain, len, first, max);
				assert_true(f.n >= 4 || mtus[m] > 576);
				for (unsigned i = 0; i < f.n; i++) {
					/* the existing parser reads each as a header and one SKF payload */
					struct ike_hdr h;
					static struct ike_chain c;
					assert_int_equal(ike_parse(f.buf + f.off[i], f.len[i], &h, &c), IKE_PERR_OK);
					assert_int_equal(h.next_payload, IKE_PL_SKF);
					assert_int_equal(h.msg_id, hdr.msg_id);
					assert_int_equal(c.n, 1);
					assert_int_equal(c.pl[0].type, IKE_PL_SKF);
				}
				/* in order, and in reverse */
				for (int rev = 0; rev < 2; rev++) {
					struct ike_frag_reasm r;
					ike_frag_reasm_init(&r, hdr.msg_id, 1000, 30000);
					for (unsigned k = 0; k < f.n; k++) {
						unsigned i = rev ? f.n - 1 - k : k;
						enum ike_frag_result res =
							feed(&r, &suites[s], f.buf + f.off[i], f.len[i], 1000 + k, NULL);
						assert_int_equal(res, k + 1 == f.n ? IKE_FRAG_COMPLETE : IKE_FRAG_STORED);
					}
					check_complete(&r, chain, len, first);
					ike_frag_reasm_clear(&r);
				}
			}
}

/* A small message still goes as one fragment; an empty chain too */
static void test_single_and_empty(void **state)
{
	uint8_t chain[64] = {0, 0, 0, 8, 1, 2, 3, 4};
	static struct frags f;
	for (size_t s = 0; s < N_SUITES; s++) {
		for (size_t len = 0; len <= 8; len += 8) {
			seal(&f, &suites[s], chain, len, len ? IKE_PL_NONCE : IKE_PL_NONE, 1280);
			assert_int_equal(f.n, 1);
			struct ike_frag_reasm r;
			ike_frag_reasm_init(&r, hdr.msg_id, 0, 1000);
			assert_int_equal(feed(&r, &suites[s], f.buf, f.len[0], 0, NULL), IKE_FRAG_COMPLETE);
			assert_int_equal(r.chain_len, len);
			assert_memory_equal(r.chain, chain, len);
			ike_frag_reasm_clear(&r);
		}
	}
	/* no room for data, or too many fragments needed: refused */
	assert_int_equal(ike_frag_seal(&gcm128, ke, ka, &hdr, IKE_PL_NONCE, chain, 8, 36 + 8 + 16, f.buf, sizeof(f.buf),
				       f.len, IKE_FRAG_MAX),
			 0);
	static uint8_t big[20000];
	assert_int_equal(ike_frag_seal(&gcm128, ke, ka, &hdr, IKE_PL_CERT, big, sizeof(big), 576, f.buf, sizeof(f.buf),
				       f.len, IKE_FRAG_MAX),
			 0);
	assert_int_equal(ike_frag_seal(&gcm128, ke, ka, &hdr, IKE_PL_CERT, big, 5000, 1280, f.buf, sizeof(f.buf), f.len, 3),
			 0);
	assert_int_equal(ike_frag_seal(&gcm128, ke, ka, &hdr, IKE_PL_CERT, big, 5000, 1280, f.buf, 2000, f.len, 32), 0);
	assert_int_equal(ike_frag_max_len(576, false, true), 576 - 20 - 8 - 4);
	assert_int_equal(ike_frag_max_len(1280, true, false), 1280 - 40 - 8);
	assert_int_equal(ike_frag_max_len(30, false, true), 0);
}

static void test_disorder_and_duplicates(void **state)
{
	static uint8_t chain[16384];
	static struct frags f;
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	for (size_t s = 0; s < N_SUITES; s++) {
		seal(&f, &suites[s], chain, len, first, ike_frag_max_len(576, false, false));
		unsigned order[IKE_FRAG_MAX];
		for (unsigned i = 0; i < f.n; i++)
			order[i] = i;
		srand(7 + (unsigned)s);
		for (unsigned i = f.n - 1; i > 0; i--) {
			unsigned j = (unsigned)rand() % (i + 1), t = order[i];
			order[i] = order[j], order[j] = t;
		}
		struct ike_frag_reasm r;
		ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
		enum ike_frag_drop why;
		for (unsigned k = 0; k < f.n; k++) {
			unsigned i = order[k];
			enum ike_frag_result res = feed(&r, &suites[s], f.buf + f.off[i], f.len[i], k, &why);
			assert_int_equal(res, k + 1 == f.n ? IKE_FRAG_COMPLETE : IKE_FRAG_STORED);
			if (k + 1 < f.n) {
				/* each one twice: the copy is dropped, before any decryption */
				assert_int_equal(feed(&r, &suites[s], f.buf + f.off[i], f.len[i], k, &why), IKE_FRAG_DROPPED);
				assert_int_equal(why, IKE_FRAG_DROP_DUPLICATE);
			}
		}
		check_complete(&r, chain, len, first);
		assert_int_equal(r.drops[IKE_FRAG_DROP_DUPLICATE], f.n - 1);
		/* a retransmitted fragment of the completed message: reported, so the response can be resent */
		assert_int_equal(feed(&r, &suites[s], f.buf, f.len[0], 99, &why), IKE_FRAG_DROPPED);
		assert_int_equal(why, IKE_FRAG_DROP_COMPLETE);
		ike_frag_reasm_clear(&r);
	}
}

/* A forged copy is dropped; the genuine one, arriving later, still completes the message. */
static void test_tampered(void **state)
{
	static uint8_t chain[16384], bad[2048];
	static struct frags f;
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	for (size_t s = 0; s < N_SUITES; s++) {
		seal(&f, &suites[s], chain, len, first, 1280 - 48);
		assert_true(f.n >= 3);
		struct ike_frag_reasm r;
		ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
		enum ike_frag_drop why;
		/* flipped bits in: ciphertext, ICV, IV, fragment number field, message-ID, next payload */
		static const size_t where[] = {100, SIZE_MAX, 37, 33, 20, 28};
		for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
			memcpy(bad, f.buf + f.off[1], f.len[1]);
			size_t at = where[w] == SIZE_MAX ? f.len[1] - 1 : where[w];
			bad[at] ^= 0x01;
			enum ike_frag_result res = feed(&r, &suites[s], bad, f.len[1], 0, &why);
			assert_int_equal(res, IKE_FRAG_DROPPED);
			/* the message ID is checked before anything else; the rest fail the ICV (number 3 is
			 * in range and not stored yet) */
			assert_int_equal(why, at == 20 ? IKE_FRAG_DROP_HEADER : IKE_FRAG_DROP_ICV);
		}
		assert_int_equal(r.n, 0);
		/* a forged Total Fragments (higher) does not throw away what is stored */
		assert_int_equal(feed(&r, &suites[s], f.buf, f.len[0], 0, NULL), IKE_FRAG_STORED);
		memcpy(bad, f.buf + f.off[2], f.len[2]);
		bad[35] = (uint8_t)(f.n + 1);
		assert_int_equal(feed(&r, &suites[s], bad, f.len[2], 0, &why), IKE_FRAG_DROPPED);
		assert_int_equal(why, IKE_FRAG_DROP_ICV);
		assert_int_equal(r.n, 1);
		assert_int_equal(r.total, f.n);
		for (unsigned i = 1; i < f.n; i++)
			assert_int_equal(feed(&r, &suites[s], f.buf + f.off[i], f.len[i], 0, NULL),
					 i + 1 == f.n ? IKE_FRAG_COMPLETE : IKE_FRAG_STORED);
		check_complete(&r, chain, len, first);
		assert_int_equal(r.drops[IKE_FRAG_DROP_ICV], 6);
		ike_frag_reasm_clear(&r);
	}
}

static void test_numbers(void **state)
{
	static uint8_t chain[16384], bad[2048];
	static struct frags f;
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	seal(&f, &gcm128, chain, len, first, 1200);
	struct ike_frag_reasm r;
	ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
	enum ike_frag_drop why;
	static const struct {
		uint16_t num, total;
		enum ike_frag_drop want;
	} cases[] = {
		{0, 5, IKE_FRAG_DROP_NUMBER},  {6, 5, IKE_FRAG_DROP_NUMBER},   {1, 0, IKE_FRAG_DROP_NUMBER},
		{1, 33, IKE_FRAG_DROP_TOO_MANY}, {33, 33, IKE_FRAG_DROP_TOO_MANY}, {65535, 65535, IKE_FRAG_DROP_TOO_MANY},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, f.buf, f.len[0]);
		bad[32] = (uint8_t)(cases[i].num >> 8), bad[33] = (uint8_t)cases[i].num;
		bad[34] = (uint8_t)(cases[i].total >> 8), bad[35] = (uint8_t)cases[i].total;
		assert_int_equal(feed(&r, &gcm128, bad, f.len[0], 0, &why), IKE_FRAG_DROPPED);
		assert_int_equal(why, cases[i].want);
	}
	/* malformed: truncated, trailing bytes, wrong payload type, length fields */
	size_t cut[] = {0, 10, 28, 35, 36, 52, f.len[0] - 1};
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		assert_int_equal(feed(&r, &gcm128, f.buf, cut[i], 0, &why), IKE_FRAG_DROPPED);
		assert_int_equal(why, IKE_FRAG_DROP_MALFORMED);
	}
	memcpy(bad, f.buf, f.len[0]);
	bad[16] = IKE_PL_SK;
	assert_int_equal(feed(&r, &gcm128, bad, f.len[0], 0, &why), IKE_FRAG_DROPPED);
	assert_int_equal(why, IKE_FRAG_DROP_MALFORMED);
	/* another message ID, or another exchange once the first fragment is in */
	struct ike_frag_reasm r2;
	ike_frag_reasm_init(&r2, 2, 0, 30000);
	assert_int_equal(feed(&r2, &gcm128, f.buf, f.len[0], 0, &why), IKE_FRAG_DROPPED);
	assert_int_equal(why, IKE_FRAG_DROP_HEADER);
	ike_frag_reasm_clear(&r2);
	assert_int_equal(feed(&r, &gcm128, f.buf, f.len[0], 0, NULL), IKE_FRAG_STORED);
	memcpy(bad, f.buf + f.off[1], f.len[1]);
	bad[18] = IKE_CREATE_CHILD_SA;
	assert_int_equal(feed(&r, &gcm128, bad, f.len[1], 0, &why), IKE_FRAG_DROPPED);
	assert_int_equal(why, IKE_FRAG_DROP_HEADER);
	ike_frag_reasm_clear(&r);

	/* every reason has a distinct name */
	for (int i = 0; i < IKE_FRAG_DROP_COUNT; i++) {
		assert_non_null(ike_frag_drop_name(i));
		assert_string_not_equal(ike_frag_drop_name(i), "?");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(ike_frag_drop_name(i), ike_frag_drop_name(j));
	}
	assert_string_equal(ike_frag_drop_name(IKE_FRAG_DROP_COUNT), "?");
}

/* RFC 7383 2.6.2: a sender that retransmits with smaller fragments sends a higher Total Fragments;
 * the receiver starts over with those and refuses the old, lower total. */
static void test_changed_total(void **state)
{
	static uint8_t chain[16384];
	static struct frags big, small;
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	for (size_t s = 0; s < N_SUITES; s++) {
		seal(&big, &suites[s], chain, len, first, ike_frag_max_len(1500, false, true));
		seal(&small, &suites[s], chain, len, first, ike_frag_max_len(576, false, true));
		assert_true(small.n > big.n);
		struct ike_frag_reasm r;
		ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
		enum ike_frag_drop why;
		assert_int_equal(feed(&r, &suites[s], big.buf, big.len[0], 0, NULL), IKE_FRAG_STORED);
		assert_int_equal(feed(&r, &suites[s], big.buf + big.off[1], big.len[1], 0, NULL), IKE_FRAG_STORED);
		assert_int_equal(feed(&r, &suites[s], small.buf + small.off[3], small.len[3], 0, NULL), IKE_FRAG_STORED);
		assert_int_equal(r.drops[IKE_FRAG_DROP_RESTART], 1);
		assert_int_equal(r.n, 1);
		assert_int_equal(r.total, small.n);
		assert_int_equal(feed(&r, &suites[s], big.buf + big.off[2], big.len[2], 0, &why), IKE_FRAG_DROPPED);
		assert_int_equal(why, IKE_FRAG_DROP_OLD_TOTAL);
		for (unsigned i = 0; i < small.n; i++) {
			enum ike_frag_result res = feed(&r, &suites[s], small.buf + small.off[i], small.len[i], 0, &why);
			if (i == 3)
				assert_int_equal(why, IKE_FRAG_DROP_DUPLICATE);
			else
				assert_int_equal(res, i + 1 == small.n ? IKE_FRAG_COMPLETE : IKE_FRAG_STORED);
		}
		check_complete(&r, chain, len, first);
		ike_frag_reasm_clear(&r);
	}
}

/* Authentic fragments that add up to more than IKE_FRAG_BYTES_MAX are not kept. */
static void test_memory_bound(void **state)
{
	/* not a chain a builder makes (those stop at IKE_MSG_MAX), but what a peer could send */
	static uint8_t chain[70000];
	static struct frags f;
	size_t len = sizeof(chain);
	/* two big fragments, or the most we take of smaller ones */
	for (int many = 0; many < 2; many++) {
		seal(&f, &gcm128, chain, len, IKE_PL_CERT, many ? 2300 : IKE_MSG_MAX);
		assert_int_equal(f.n, many ? IKE_FRAG_MAX : 2);
		struct ike_frag_reasm r;
		ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
		enum ike_frag_drop why = IKE_FRAG_DROP_COUNT;
		unsigned dropped = 0;
		for (unsigned i = 0; i < f.n; i++) {
			enum ike_frag_result res = feed(&r, &gcm128, f.buf + f.off[i], f.len[i], 0, &why);
			assert_int_not_equal(res, IKE_FRAG_COMPLETE);
			if (res == IKE_FRAG_DROPPED) {
				assert_int_equal(why, IKE_FRAG_DROP_MEMORY);
				dropped++;
			}
			assert_true(r.bytes <= IKE_FRAG_BYTES_MAX);
		}
		assert_true(dropped >= 1);
		assert_int_equal(r.drops[IKE_FRAG_DROP_MEMORY], dropped);
		ike_frag_reasm_clear(&r);
	}
}

/* A partial message that waits too long is thrown away; the late fragment starts a new one. */
static void test_timeout(void **state)
{
	static uint8_t chain[16384];
	static struct frags f;
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	seal(&f, &gcm128, chain, len, first, 1280);
	struct ike_frag_reasm r;
	ike_frag_reasm_init(&r, hdr.msg_id, 5000, 10000);
	assert_false(ike_frag_reasm_expired(&r, 100000)); /* nothing stored yet */
	assert_int_equal(feed(&r, &gcm128, f.buf, f.len[0], 20000, NULL), IKE_FRAG_STORED);
	assert_false(ike_frag_reasm_expired(&r, 29999)); /* measured from the first stored fragment */
	assert_true(ike_frag_reasm_expired(&r, 30000));
	assert_int_equal(feed(&r, &gcm128, f.buf + f.off[1], f.len[1], 30000, NULL), IKE_FRAG_STORED);
	assert_int_equal(r.drops[IKE_FRAG_DROP_TIMEOUT], 1);
	assert_int_equal(r.n, 1);
	for (unsigned i = 0; i < f.n; i++)
		if (i != 1)
			assert_int_equal(feed(&r, &gcm128, f.buf + f.off[i], f.len[i], 30001 + i, NULL),
					 i + 1 == f.n ? IKE_FRAG_COMPLETE : IKE_FRAG_STORED);
	check_complete(&r, chain, len, first);
	assert_false(ike_frag_reasm_expired(&r, 1000000));
	ike_frag_reasm_clear(&r);
}

/* --- against python's cryptography ------------------------------------------------------------- */

static void hex(FILE *o, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(o, "%02x", p[i]);
}

static void write_common(FILE *o, const struct ike_sk_suite *s, const uint8_t *chain, size_t len, uint8_t first)
{
	size_t el, al;
	assert_int_equal(ike_sk_key_lens(s, &el, &al), 0);
	fprintf(o, "suite %u %u %u\nke ", s->encr, s->encr_bits, s->integ);
	hex(o, ke, el);
	fprintf(o, "\nka ");
	hex(o, ka, al);
	fprintf(o, "\ninner %u ", first);
	hex(o, chain, len);
	fprintf(o, "\n");
}

/* Runs skf_check.py; returns its exit status, or 77 if python3 is not there. */
static int python(const char *mode, const char *in, const char *out)
{
	char cmd[1024];
	const char *src = getenv("BATON_SRC");
	snprintf(cmd, sizeof(cmd), "python3 %s/tests/unit/data/skf_check.py %s %s > %s", src ? src : ".", mode, in,
		 out ? out : "/dev/null");
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 127 ? 77 : WEXITSTATUS(st);
}

static void test_python(void **state)
{
	static uint8_t chain[16384];
	static struct frags f;
	char in[] = "/tmp/skf-in-XXXXXX", out[] = "/tmp/skf-out-XXXXXX";
	int fd_in = mkstemp(in), fd_out = mkstemp(out);
	assert_true(fd_in >= 0 && fd_out >= 0);
	close(fd_in), close(fd_out);
	uint8_t first;
	size_t len = make_chain(chain, sizeof(chain), 3000, &first);
	bool skipped = false;
	for (size_t s = 0; s < N_SUITES && !skipped; s++) {
		/* ours, opened and reassembled there */
		seal(&f, &suites[s], chain, len, first, 576 - 32);
		FILE *o = fopen(in, "w");
		write_common(o, &suites[s], chain, len, first);
		for (unsigned i = 0; i < f.n; i++) {
			fprintf(o, "frag ");
			hex(o, f.buf + f.off[i], f.len[i]);
			fprintf(o, "\n");
		}
		fclose(o);
		int st = python("open", in, NULL);
		if (st == 77) {
			skipped = true;
			break;
		}
		assert_int_equal(st, 0);
		/* theirs, reassembled here */
		o = fopen(in, "w");
		write_common(o, &suites[s], chain, len, first);
		fprintf(o, "hdr %llu %llu %u %u %u\nsize 700\n", (unsigned long long)hdr.spi_i,
			(unsigned long long)hdr.spi_r, hdr.exchange, hdr.flags, hdr.msg_id);
		fclose(o);
		assert_int_equal(python("seal", in, out), 0);
		FILE *fi = fopen(out, "r");
		static char line[8192];
		static uint8_t m[4096];
		struct ike_frag_reasm r;
		ike_frag_reasm_init(&r, hdr.msg_id, 0, 30000);
		enum ike_frag_result res = IKE_FRAG_DROPPED;
		unsigned n = 0;
		while (fgets(line, sizeof(line), fi)) {
			size_t ml = 0;
			for (const char *h = line + 5; h[0] && h[1] && h[0] != '\n'; h += 2)
				assert_int_equal(sscanf(h, "%2hhx", &m[ml++]), 1);
			res = feed(&r, &suites[s], m, ml, 0, NULL);
			assert_int_not_equal(res, IKE_FRAG_DROPPED);
			n++;
		}
		fclose(fi);
		assert_true(n > 1);
		assert_int_equal(res, IKE_FRAG_COMPLETE);
		check_complete(&r, chain, len, first);
		ike_frag_reasm_clear(&r);
	}
	unlink(in);
	unlink(out);
	if (skipped)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_single_and_empty),
		cmocka_unit_test(test_disorder_and_duplicates), cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_numbers),        cmocka_unit_test(test_changed_total),
		cmocka_unit_test(test_memory_bound),   cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_python),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
