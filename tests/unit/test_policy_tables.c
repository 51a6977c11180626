/* test_policy_tables.c — traffic selectors, flows from packets, the SAD hash tables (with concurrent
 * readers) and SPD ordering, its dynamic level included (with concurrent readers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "policy/sad.h"
#include "policy/spd.h"
#include "policy/ts.h"

static void test_ts_parse(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} v[] = {
		{"10.0.0.0/24", 0, "10.0.0.0/24"},
		{"10.0.0.1", 0, "10.0.0.1/32"},
		{"10.0.0.1-10.0.0.9", 0, "10.0.0.1-10.0.0.9"},
		{"10.0.0.0-10.0.0.255", 0, "10.0.0.0/24"},
		{"0.0.0.0/0[tcp/80]", 0, "0.0.0.0/0[tcp/80]"},
		{"192.168.2.0/24[sctp]", 0, "192.168.2.0/24[sctp]"},
		{"192.168.2.1[132/5000-5010]", 0, "192.168.2.1/32[sctp/5000-5010]"},
		{"2001:db8::/64[udp/%any]", 0, "2001:db8::/64[udp]"},
		{"10.0.0.9-10.0.0.1", -1, NULL},
		{"10.0.0.1-2001:db8::1", -1, NULL},
		{"10.0.0.0/24[tcp", -1, NULL},
		{"10.0.0.0/24[tcp/80-70]", -1, NULL},
		{"10.0.0.0/24[foo]", -1, NULL},
		{"10.0.0.0/24[tcp/99999]", -1, NULL},
		{"10.0.0.0/24[tcp]x", -1, NULL},
		{"", -1, NULL},
		{"dynamic", -1, NULL},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct bt_ts ts;
		char err[128], buf[128];
		int rc = bt_ts_parse(v[i].in, &ts, err, sizeof(err));
		if (rc != v[i].rc)
			fail_msg("%s: rc %d (%s)", v[i].in, rc, err);
		if (rc == 0)
			assert_string_equal(bt_ts_str(&ts, buf, sizeof(buf)), v[i].out);
	}
}

static size_t mk_ipv4(uint8_t *p, const char *src, const char *dst, uint8_t proto, uint16_t sp,
		      uint16_t dp, uint16_t frag)
{
	struct bt_addr a;
	memset(p, 0, 60);
	p[0] = 0x45;
	p[3] = 28;
	p[6] = (uint8_t)(frag >> 8), p[7] = (uint8_t)frag;
	p[9] = proto;
	bt_addr_parse(src, &a), memcpy(p + 12, a.b, 4);
	bt_addr_parse(dst, &a), memcpy(p + 16, a.b, 4);
	p[20] = (uint8_t)(sp >> 8), p[21] = (uint8_t)sp, p[22] = (uint8_t)(dp >> 8), p[23] = (uint8_t)dp;
	return 28;
}

static void test_flow(void **state)
{
	uint8_t p[128];
	struct bt_flow f;
	size_t n = mk_ipv4(p, "10.1.0.2", "10.2.0.2", 6, 40000, 80, 0);
	assert_int_equal(bt_flow_from_packet(p, n, &f), 0);
	assert_int_equal(f.proto, 6);
	assert_int_equal(f.sport, 40000);
	assert_int_equal(f.dport, 80);
	n = mk_ipv4(p, "10.1.0.2", "10.2.0.2", 132, 5000, 5001, 0x0010); /* non-first fragment */
	assert_int_equal(bt_flow_from_packet(p, n, &f), 0);
	assert_int_equal(f.proto, 132);
	assert_int_equal(f.sport, 0);
	for (size_t l = 0; l < n; l++) /* truncations never read past the end */
		assert_true(bt_flow_from_packet(p, l, &f) == -1 || l >= 20);
	p[0] = 0x44; /* IHL 16 < 20 */
	assert_int_equal(bt_flow_from_packet(p, n, &f), -1);

	/* IPv6 with a hop-by-hop and a destination-options header before UDP */
	memset(p, 0, sizeof(p));
	p[0] = 0x60;
	p[5] = 16 + 8; /* payload length */
	p[6] = 0;      /* hop-by-hop */
	p[23] = 1, p[39] = 2;
	p[40] = 60, p[41] = 0; /* -> dest opts, 8 bytes */
	p[48] = 17, p[49] = 0; /* -> UDP */
	p[56] = 0x13, p[57] = 0x88, p[58] = 0x00, p[59] = 0x35;
	assert_int_equal(bt_flow_from_packet(p, 64, &f), 0);
	assert_int_equal(f.proto, 17);
	assert_int_equal(f.sport, 5000);
	assert_int_equal(f.dport, 53);
	p[49] = 200; /* extension header longer than the packet */
	assert_int_equal(bt_flow_from_packet(p, 64, &f), -1);
}

static struct esp_sa *mk_sa(uint32_t spi, enum esp_dir dir, uint32_t reqid)
{
	struct esp_sa *sa = calloc(1, sizeof(*sa));
	sa->spi = spi, sa->dir = dir, sa->reqid = reqid;
	return sa;
}

static void test_sad_basic(void **state)
{
	struct sad *s = sad_new();
	struct esp_sa *rep;
	assert_int_equal(sad_add(s, mk_sa(0x100, ESP_DIR_IN, 1), &rep), 0);
	struct esp_sa *dup = mk_sa(0x100, ESP_DIR_IN, 2);
	assert_int_equal(sad_add(s, dup, &rep), -EEXIST);
	free(dup);
	assert_int_equal(sad_add(s, mk_sa(0x200, ESP_DIR_OUT, 1), &rep), 0);
	assert_null(rep);
	struct esp_sa *newer = mk_sa(0x201, ESP_DIR_OUT, 1);
	assert_int_equal(sad_add(s, newer, &rep), 0);
	assert_non_null(rep);
	assert_int_equal(rep->spi, 0x200);
	free(rep);
	assert_ptr_equal(sad_lookup_out(s, 1), newer);
	assert_int_equal(sad_lookup_in(s, 0x100)->reqid, 1);
	assert_null(sad_lookup_in(s, 0x101));
	struct esp_sa *gone = sad_remove(s, 0x100, ESP_DIR_IN);
	assert_non_null(gone);
	free(gone);
	assert_null(sad_lookup_in(s, 0x100));
	assert_null(sad_remove(s, 0x100, ESP_DIR_IN));
	assert_int_equal(sad_count(s), 1);
	sad_free(s);
}

static void test_sad_many(void **state)
{
	struct sad *s = sad_new();
	const uint32_t n = 100000;
	for (uint32_t i = 1; i <= n; i++)
		assert_int_equal(sad_add(s, mk_sa(0xc0000000u + i, ESP_DIR_IN, i), NULL), 0);
	assert_int_equal(sad_count(s), n);
	for (uint32_t i = 1; i <= n; i++)
		assert_int_equal(sad_lookup_in(s, 0xc0000000u + i)->reqid, i);
	/* churn: remove and re-add through the tombstones many times */
	for (uint32_t r = 0; r < 3; r++)
		for (uint32_t i = 1; i <= n; i += 2) {
			struct esp_sa *sa = sad_remove(s, 0xc0000000u + i, ESP_DIR_IN);
			assert_non_null(sa);
			assert_int_equal(sad_add(s, sa, NULL), 0);
		}
	for (uint32_t i = 1; i <= n; i++)
		assert_non_null(sad_lookup_in(s, 0xc0000000u + i));
	sad_garbage_free(sad_take_garbage(s));
	sad_free(s);
}

struct reader_arg {
	struct sad *s;
	_Atomic int stop;
	unsigned long found;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	while (!atomic_load(&a->stop))
		for (uint32_t i = 1; i <= 64; i++) {
			struct esp_sa *sa = sad_lookup_in(a->s, i); /* the 64 stable SAs must always be found */
			if (!sa || sa->spi != i)
				abort();
			a->found++;
			(void)sad_lookup_in(a->s, 1000 + i);
		}
	return NULL;
}

static void test_sad_concurrent(void **state)
{
	struct reader_arg a = {.s = sad_new()};
	for (uint32_t i = 1; i <= 64; i++)
		sad_add(a.s, mk_sa(i, ESP_DIR_IN, i), NULL);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &a);
	/* the writer grows and churns; removed SAs are kept (not freed) until the readers stop,
	 * standing in for the data plane's grace period */
	struct esp_sa **retired = calloc(20000, sizeof(*retired));
	size_t nret = 0;
	for (uint32_t i = 1; i <= 20000; i++) {
		sad_add(a.s, mk_sa(1000 + i, ESP_DIR_IN, 0), NULL);
		if (i % 2 == 0)
			retired[nret++] = sad_remove(a.s, 1000 + i - 1, ESP_DIR_IN);
	}
	atomic_store(&a.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_true(a.found > 0);
	for (size_t i = 0; i < nret; i++)
		free(retired[i]);
	free(retired);
	sad_garbage_free(sad_take_garbage(a.s));
	sad_free(a.s);
}

static void test_spd(void **state)
{
	struct spd *spd = spd_new();
	struct bt_ts ts_l, ts_r;
	struct spd_policy p = {.local = &ts_l, .remote = &ts_r};
	char err[64];
	/* 1000: protect 10.1/16 -> 10.2/16; 10: bypass 10.1/16 -> 10.2.9.0/24; 500: discard udp */
	p.dir = SPD_DIR_OUT, p.action = SPD_PROTECT, p.priority = 1000, p.reqid = 7, p.n_local = p.n_remote = 1;
	bt_ts_parse("10.1.0.0/16", &ts_l, err, sizeof(err));
	bt_ts_parse("10.2.0.0/16", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	p.action = SPD_BYPASS, p.priority = 10;
	bt_ts_parse("10.2.9.0/24", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	p.action = SPD_DISCARD, p.priority = 500;
	bt_ts_parse("10.2.0.0/16[udp]", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	p.action = SPD_PROTECT, p.priority = 500, p.reqid = 8; /* same priority: after the discard */
	bt_ts_parse("10.2.0.0/16[udp/53]", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	assert_int_equal(spd_count(spd), 4);

	struct bt_flow f = {.proto = 6, .sport = 1000, .dport = 80};
	bt_addr_parse("10.1.0.2", &f.src);
	bt_addr_parse("10.2.0.2", &f.dst);
	assert_int_equal(spd_lookup(spd, SPD_DIR_OUT, &f)->action, SPD_PROTECT);
	assert_int_equal(spd_lookup(spd, SPD_DIR_OUT, &f)->reqid, 7);
	assert_null(spd_lookup(spd, SPD_DIR_IN, &f));
	bt_addr_parse("10.2.9.1", &f.dst);
	assert_int_equal(spd_lookup(spd, SPD_DIR_OUT, &f)->action, SPD_BYPASS);
	bt_addr_parse("10.2.0.2", &f.dst);
	f.proto = 17, f.dport = 53;
	assert_int_equal(spd_lookup(spd, SPD_DIR_OUT, &f)->action, SPD_DISCARD);
	bt_addr_parse("10.3.0.2", &f.dst);
	assert_null(spd_lookup(spd, SPD_DIR_OUT, &f));
	spd_free(spd);
}

/* spd_append + spd_sort orders like spd_add: by priority, ties in the order added */
static void test_spd_sort(void **state)
{
	struct spd *a = spd_new(), *b = spd_new();
	struct bt_ts ts_l, ts_r;
	struct spd_policy p = {.local = &ts_l, .remote = &ts_r};
	assert_int_equal(spd_reserve(b, 3000), 0);
	for (unsigned i = 0; i < 3000; i++) {
		p.priority = (i * 7919u) % 13, p.reqid = i;
		assert_int_equal(spd_add(a, &p), 0);
		assert_int_equal(spd_append(b, &p), 0);
	}
	assert_int_equal(spd_sort(b), 0);
	assert_int_equal(spd_count(b), 3000);
	for (unsigned i = 0; i < 3000; i++)
		assert_int_equal(spd_get(a, i)->reqid, spd_get(b, i)->reqid);
	assert_int_equal(spd_sort(b), 0); /* in order already */
	assert_int_equal(spd_get(b, 0)->reqid, spd_get(a, 0)->reqid);
	spd_free(a);
	spd_free(b);
}

/* the index of a sorted SPD finds what a plain scan finds: host and subnet selectors, mixed
 * priorities and directions, ports */
static void test_spd_index(void **state)
{
	struct spd *lin = spd_new(), *idx = spd_new();
	struct bt_ts ts_l, ts_r;
	struct spd_policy p = {.local = &ts_l, .remote = &ts_r};
	char err[64], buf[64];
	unsigned seed = 12345, found = 0, subnet = 0;
	for (unsigned i = 0; i < 2000; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned r = seed >> 8;
		memset(&p, 0, sizeof(p));
		p.local = &ts_l, p.remote = &ts_r;
		p.dir = r & 1 ? SPD_DIR_IN : SPD_DIR_OUT;
		p.priority = (r >> 1) % 3 ? 100 : (r >> 3) % 200;
		p.reqid = i, p.n_local = p.n_remote = 1;
		snprintf(buf, sizeof(buf), "10.1.%u.%u/32", (r >> 4) % 8, (r >> 7) % 16);
		bt_ts_parse((r >> 11) % 5 ? buf : "10.1.0.0/16", &ts_l, err, sizeof(err));
		if ((r >> 14) % 7 == 0)
			snprintf(buf, sizeof(buf), "10.2.%u.0/24", (r >> 17) % 8);
		else if ((r >> 14) % 7 == 1)
			snprintf(buf, sizeof(buf), "10.2.%u.%u/32[udp/%u]", (r >> 17) % 8, (r >> 20) % 16, 50 + (r >> 24) % 4);
		else
			snprintf(buf, sizeof(buf), "10.2.%u.%u/32", (r >> 17) % 8, (r >> 20) % 16);
		assert_int_equal(bt_ts_parse(buf, &ts_r, err, sizeof(err)), 0);
		assert_int_equal(spd_add(lin, &p), 0);
		assert_int_equal(spd_append(idx, &p), 0);
	}
	assert_int_equal(spd_sort(idx), 0);
	for (unsigned k = 0; k < 20000; k++) {
		seed = seed * 1103515245u + 12345u;
		unsigned r = seed >> 8;
		struct bt_flow f = {.proto = r & 1 ? 17 : 6, .sport = 1000, .dport = 50 + (r >> 1) % 5};
		snprintf(buf, sizeof(buf), "10.1.%u.%u", (r >> 4) % 9, (r >> 8) % 17);
		bt_addr_parse(buf, &f.src);
		snprintf(buf, sizeof(buf), "10.2.%u.%u", (r >> 13) % 9, (r >> 17) % 17);
		bt_addr_parse(buf, &f.dst);
		enum spd_dir dir = (r >> 22) & 1 ? SPD_DIR_IN : SPD_DIR_OUT;
		if (dir == SPD_DIR_IN) { /* inbound: remote is the source */
			struct bt_addr t = f.src;
			f.src = f.dst, f.dst = t;
		}
		const struct spd_policy *a = spd_lookup(lin, dir, &f), *b = spd_lookup(idx, dir, &f);
		assert_int_equal(a ? (int)a->reqid : -1, b ? (int)b->reqid : -1);
		found += a != NULL;
		subnet += a && !bt_addr_eq(&a->remote[0].lo, &a->remote[0].hi);
	}
	assert_true(found > 5000 && subnet > 100); /* both kinds of policy are found */
	spd_free(lin);
	spd_free(idx);
}

/* --- the dynamic level -------------------------------------------------------------------------- */

static void set_pol(struct spd_policy *p, struct bt_ts *l, struct bt_ts *r, enum spd_dir dir, uint32_t prio,
		    uint32_t reqid, const char *local, const char *remote)
{
	char err[64];
	memset(p, 0, sizeof(*p));
	p->dir = dir, p->action = SPD_PROTECT, p->priority = prio, p->reqid = reqid;
	p->local = l, p->remote = r, p->n_local = p->n_remote = 1;
	assert_int_equal(bt_ts_parse(local, l, err, sizeof(err)), 0);
	assert_int_equal(bt_ts_parse(remote, r, err, sizeof(err)), 0);
}

static int reqid_of(const struct spd *spd, const char *src, const char *dst, uint16_t dport)
{
	struct bt_flow f = {.proto = 17, .sport = 1000, .dport = dport};
	bt_addr_parse(src, &f.src);
	bt_addr_parse(dst, &f.dst);
	const struct spd_policy *p = spd_lookup(spd, SPD_DIR_OUT, &f);
	return p ? (int)p->reqid : -1;
}

/* order across the levels: priority first; at equal priority dynamic before static, the later
 * dynamic one first, a subnet policy against a host one by the same rule; removal uncovers */
static void test_spd_dyn_order(void **state)
{
	struct spd *spd = spd_new();
	struct spd_dyn *dyn = spd_dyn_new();
	struct bt_ts l, r, hl[3], hr[3]; /* h1, h2 and q keep theirs: removed later */
	struct spd_policy p, q, h1, h2;
	spd_set_dyn(spd, dyn);
	assert_ptr_equal(spd_get_dyn(spd), dyn);
	set_pol(&p, &l, &r, SPD_DIR_OUT, 100, 1, "10.1.0.0/16", "10.2.0.0/16"); /* static trap */
	assert_int_equal(spd_add(spd, &p), 0);
	set_pol(&p, &l, &r, SPD_DIR_OUT, 50, 2, "10.1.0.0/16", "10.2.9.0/24"); /* static, ahead */
	assert_int_equal(spd_add(spd, &p), 0);
	assert_int_equal(spd_sort(spd), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 53), 1);

	set_pol(&h1, &hl[0], &hr[0], SPD_DIR_OUT, 100, 10, "10.1.0.1/32", "10.2.0.1/32");
	assert_int_equal(spd_dyn_add(dyn, &h1), 0);
	assert_int_equal(spd_dyn_count(dyn), 1);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 53), 10); /* equal priority: dynamic first */
	assert_int_equal(reqid_of(spd, "10.1.0.2", "10.2.0.1", 53), 1);  /* its local selector fails */
	set_pol(&h2, &hl[1], &hr[1], SPD_DIR_OUT, 100, 11, "10.1.0.1/32", "10.2.0.1/32");
	assert_int_equal(spd_dyn_add(dyn, &h2), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 53), 11); /* the later one first */
	set_pol(&q, &hl[2], &hr[2], SPD_DIR_OUT, 100, 12, "10.1.0.0/24", "10.2.0.0/24"); /* subnet: the other chain */
	assert_int_equal(spd_dyn_add(dyn, &q), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 53), 12);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.7", 53), 12);
	set_pol(&p, &l, &r, SPD_DIR_OUT, 100, 13, "10.1.0.1/32", "10.2.0.1/32[udp/53]"); /* later host: ahead of 12 */
	assert_int_equal(spd_dyn_add(dyn, &p), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 53), 13);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 54), 12);
	set_pol(&p, &l, &r, SPD_DIR_OUT, 40, 14, "10.1.0.0/16", "10.2.9.9/32"); /* a better priority */
	assert_int_equal(spd_dyn_add(dyn, &p), 0);
	assert_int_equal(reqid_of(spd, "10.1.5.5", "10.2.9.9", 53), 14);
	assert_int_equal(reqid_of(spd, "10.1.5.5", "10.2.9.8", 53), 2); /* the static one at 50 */
	set_pol(&p, &l, &r, SPD_DIR_OUT, 60, 15, "10.1.0.0/16", "10.2.9.8/32"); /* a worse one: static wins */
	assert_int_equal(spd_dyn_add(dyn, &p), 0);
	assert_int_equal(reqid_of(spd, "10.1.5.5", "10.2.9.8", 53), 2);
	set_pol(&p, &l, &r, SPD_DIR_IN, 1, 16, "10.1.0.1/32", "10.2.0.1/32"); /* other direction */
	assert_int_equal(spd_dyn_add(dyn, &p), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 54), 12);

	/* the listing: lookup order over both levels */
	static const uint32_t want[] = {16, 14, 2, 15, 13, 12, 11, 10, 1};
	size_t n;
	const struct spd_policy **v = spd_list(spd, &n);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i]->reqid, want[i]);
	free(v);

	/* removal by direction, reqid and remote selectors */
	set_pol(&p, &l, &r, SPD_DIR_IN, 1, 12, "10.1.0.0/24", "10.2.0.0/24");
	assert_int_equal(spd_dyn_remove(dyn, &p), -1); /* wrong direction */
	assert_int_equal(spd_dyn_remove(dyn, &q), 0);
	assert_int_equal(spd_dyn_remove(dyn, &q), -1);
	assert_true(spd_dyn_has_garbage(dyn));
	spd_dyn_reclaim(dyn);
	assert_false(spd_dyn_has_garbage(dyn));
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 54), 11);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.7", 54), 1);
	assert_int_equal(spd_dyn_remove(dyn, &h2), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 54), 10);
	assert_int_equal(spd_dyn_remove(dyn, &h1), 0);
	assert_int_equal(reqid_of(spd, "10.1.0.1", "10.2.0.1", 54), 1);
	assert_int_equal(spd_dyn_count(dyn), 4);
	spd_free(spd); /* the dynamic level is borrowed: it lives on */
	assert_int_equal(spd_dyn_count(dyn), 4);
	spd_dyn_free(dyn);
}

/* many dynamic policies added and removed (the table grows several times) find what one plain
 * ordered list of both levels finds: dynamic ones newest first, ahead of static ones of equal
 * priority */
struct model_pol {
	struct spd_policy p;
	struct bt_ts l, r;
	bool live;
};

static struct spd *model_spd(const struct model_pol *dyn, unsigned n, const struct model_pol *st, unsigned ns)
{
	struct spd *m = spd_new();
	for (unsigned i = n; i-- > 0;)
		if (dyn[i].live)
			assert_int_equal(spd_add(m, &dyn[i].p), 0);
	for (unsigned i = 0; i < ns; i++)
		assert_int_equal(spd_add(m, &st[i].p), 0);
	return m;
}

static void random_pol(struct model_pol *x, unsigned *seed, uint32_t reqid)
{
	char lbuf[64], rbuf[64], err[64];
	*seed = *seed * 1103515245u + 12345u;
	unsigned r = *seed >> 8;
	memset(x, 0, sizeof(*x));
	x->p.dir = r & 1 ? SPD_DIR_IN : SPD_DIR_OUT;
	x->p.priority = 100 + 10 * ((r >> 1) % 3);
	x->p.reqid = reqid, x->p.n_local = x->p.n_remote = 1, x->p.action = SPD_PROTECT;
	snprintf(lbuf, sizeof(lbuf), (r >> 3) % 4 ? "10.1.%u.%u/32" : "10.1.%u.0/24", (r >> 5) % 8, (r >> 8) % 32);
	if ((r >> 13) % 9 == 0)
		snprintf(rbuf, sizeof(rbuf), "10.2.%u.0/24", (r >> 16) % 8);
	else
		snprintf(rbuf, sizeof(rbuf), "10.2.%u.%u/32[udp/%u]", (r >> 16) % 8, (r >> 19) % 32, 50 + (r >> 24) % 3);
	assert_int_equal(bt_ts_parse(lbuf, &x->l, err, sizeof(err)), 0);
	assert_int_equal(bt_ts_parse(rbuf, &x->r, err, sizeof(err)), 0);
	x->live = true;
}

static void compare_with_model(const struct spd *spd, const struct model_pol *dyn, unsigned n,
			       const struct model_pol *st, unsigned ns, unsigned *seed)
{
	struct spd *m = model_spd(dyn, n, st, ns);
	char buf[64];
	for (unsigned k = 0; k < 4000; k++) {
		*seed = *seed * 1103515245u + 12345u;
		unsigned r = *seed >> 8;
		struct bt_flow f = {.proto = 17, .sport = 1000, .dport = 50 + (r >> 1) % 4};
		snprintf(buf, sizeof(buf), "10.1.%u.%u", (r >> 4) % 9, (r >> 8) % 33);
		bt_addr_parse(buf, &f.src);
		snprintf(buf, sizeof(buf), "10.2.%u.%u", (r >> 13) % 9, (r >> 17) % 33);
		bt_addr_parse(buf, &f.dst);
		enum spd_dir dir = (r >> 23) & 1 ? SPD_DIR_IN : SPD_DIR_OUT;
		if (dir == SPD_DIR_IN) {
			struct bt_addr t = f.src;
			f.src = f.dst, f.dst = t;
		}
		const struct spd_policy *a = spd_lookup(m, dir, &f), *b = spd_lookup(spd, dir, &f);
		assert_int_equal(a ? (int)a->reqid : -1, b ? (int)b->reqid : -1);
	}
	size_t nl;
	const struct spd_policy **v = spd_list(spd, &nl);
	assert_int_equal(nl, spd_count(m));
	for (size_t i = 0; i < nl; i++)
		assert_int_equal(v[i]->reqid, spd_get(m, (unsigned)i)->reqid);
	free(v);
	spd_free(m);
}

static void test_spd_dyn_many(void **state)
{
	enum { NS = 100, ND = 5000 };
	static struct model_pol st[NS], dyn[ND];
	unsigned seed = 777;
	struct spd *spd = spd_new();
	struct spd_dyn *d = spd_dyn_new();
	for (unsigned i = 0; i < NS; i++) {
		random_pol(&st[i], &seed, 100000 + i);
		st[i].p.local = &st[i].l, st[i].p.remote = &st[i].r;
		assert_int_equal(spd_append(spd, &st[i].p), 0);
	}
	assert_int_equal(spd_sort(spd), 0);
	spd_set_dyn(spd, d);
	for (unsigned i = 0; i < ND; i++) {
		random_pol(&dyn[i], &seed, i);
		dyn[i].p.local = &dyn[i].l, dyn[i].p.remote = &dyn[i].r;
		assert_int_equal(spd_dyn_add(d, &dyn[i].p), 0);
		spd_dyn_reclaim(d);
		if (i == 10 || i == 1000)
			compare_with_model(spd, dyn, i + 1, st, NS, &seed);
	}
	assert_int_equal(spd_dyn_count(d), ND);
	compare_with_model(spd, dyn, ND, st, NS, &seed);
	for (unsigned i = 0; i < ND; i += 3) { /* a third gone, in an order unrelated to their addition */
		unsigned k = (i * 7919u) % ND;
		if (!dyn[k].live)
			continue;
		assert_int_equal(spd_dyn_remove(d, &dyn[k].p), 0);
		dyn[k].live = false;
	}
	spd_dyn_reclaim(d);
	compare_with_model(spd, dyn, ND, st, NS, &seed);
	for (unsigned i = 0; i < ND; i++)
		if (dyn[i].live)
			assert_int_equal(spd_dyn_remove(d, &dyn[i].p), 0), dyn[i].live = false;
	assert_int_equal(spd_dyn_count(d), 0);
	compare_with_model(spd, dyn, ND, st, NS, &seed);
	spd_free(spd);
	spd_dyn_free(d);
}

/* readers look up without locks while the writer adds and removes (and the table grows); what it
 * unlinks is freed after every reader passed a lookup since (the data plane's grace period):
 * under AddressSanitizer a reader touching a freed policy fails */
struct dyn_reader {
	const struct spd *spd;
	_Atomic int stop;
	_Atomic unsigned long passes;
};

static void *dyn_reader(void *p)
{
	struct dyn_reader *a = p;
	char buf[32];
	while (!atomic_load(&a->stop)) {
		for (unsigned i = 0; i < 64; i++) {
			struct bt_flow f = {.proto = 17, .sport = 1, .dport = 1};
			snprintf(buf, sizeof(buf), "10.9.0.%u", i);
			bt_addr_parse(buf, &f.dst);
			bt_addr_parse("10.1.0.1", &f.src);
			const struct spd_policy *pol = spd_lookup(a->spd, SPD_DIR_OUT, &f);
			if (!pol || pol->reqid != 1000000 + i) /* the stable policies are always found */
				abort();
			snprintf(buf, sizeof(buf), "10.2.%u.%u", i % 4, (unsigned)(atomic_load(&a->passes) % 250));
			bt_addr_parse(buf, &f.dst);
			pol = spd_lookup(a->spd, SPD_DIR_OUT, &f);
			if (pol && pol->n_remote != 1)
				abort();
		}
		atomic_fetch_add(&a->passes, 1);
	}
	return NULL;
}

static void grace(struct dyn_reader *r, unsigned n)
{
	unsigned long snap[2];
	for (unsigned i = 0; i < n; i++)
		snap[i] = atomic_load(&r[i].passes);
	for (unsigned i = 0; i < n; i++)
		while (atomic_load(&r[i].passes) < snap[i] + 2) /* a whole pass begun after the snapshot */
			sched_yield();
}

static void test_spd_dyn_concurrent(void **state)
{
	struct spd *spd = spd_new();
	struct spd_dyn *d = spd_dyn_new();
	struct bt_ts l, r;
	struct spd_policy p;
	char buf[32];
	spd_set_dyn(spd, d);
	for (unsigned i = 0; i < 64; i++) {
		snprintf(buf, sizeof(buf), "10.9.0.%u/32", i);
		set_pol(&p, &l, &r, SPD_DIR_OUT, 100, 1000000 + i, "10.1.0.0/16", buf);
		assert_int_equal(spd_dyn_add(d, &p), 0);
	}
	struct dyn_reader rd[2] = {{.spd = spd}, {.spd = spd}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, dyn_reader, &rd[i]), 0);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < 1000; i++) {
			snprintf(buf, sizeof(buf), "10.2.%u.%u/32", i % 4, i / 4);
			set_pol(&p, &l, &r, SPD_DIR_OUT, 100, i, "10.1.0.0/16", buf);
			assert_int_equal(spd_dyn_add(d, &p), 0);
			if (spd_dyn_has_garbage(d)) {
				grace(rd, 2);
				spd_dyn_reclaim(d);
			}
		}
		for (unsigned i = 0; i < 1000; i++) {
			snprintf(buf, sizeof(buf), "10.2.%u.%u/32", i % 4, i / 4);
			set_pol(&p, &l, &r, SPD_DIR_OUT, 100, i, "10.1.0.0/16", buf);
			assert_int_equal(spd_dyn_remove(d, &p), 0);
			if (i % 16 == 15) {
				grace(rd, 2);
				spd_dyn_reclaim(d);
			}
		}
	}
	grace(rd, 2);
	spd_dyn_reclaim(d);
	for (int i = 0; i < 2; i++) {
		atomic_store(&rd[i].stop, 1);
		pthread_join(t[i], NULL);
		assert_true(atomic_load(&rd[i].passes) > 0);
	}
	assert_int_equal(spd_dyn_count(d), 64);
	spd_free(spd);
	spd_dyn_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ts_parse),  cmocka_unit_test(test_flow),
		cmocka_unit_test(test_sad_basic), cmocka_unit_test(test_sad_many),
		cmocka_unit_test(test_sad_concurrent), cmocka_unit_test(test_spd),
		cmocka_unit_test(test_spd_sort), cmocka_unit_test(test_spd_index), cmocka_unit_test(test_spd_dyn_order),
		cmocka_unit_test(test_spd_dyn_many), cmocka_unit_test(test_spd_dyn_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
