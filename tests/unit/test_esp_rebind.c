/* test_esp_rebind.c — the rebind primitive on an ESP SA: a new outer path (addresses, ports,
 * encapsulation) replaces the old one at once while workers read it (never a mix of the two),
 * and nothing else of the SA changes: SPI, keys, sequence numbers, replay window, lifetimes,
 * counters; traffic protected before the rebind still opens after it and vice versa. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "esp/esp.h"
#include "esp/esp_wire.h"

static struct esp_path path(const char *local, const char *remote, uint16_t lport, uint16_t rport,
			    enum esp_encap encap)
{
	struct esp_path p = {.local_port = lport, .remote_port = rport, .encap = encap};
	assert_int_equal(bt_addr_parse(local, &p.local), 0);
	assert_int_equal(bt_addr_parse(remote, &p.remote), 0);
	return p;
}

static struct esp_sa *mk_sa(enum esp_dir dir)
{
	char err[160];
	struct esp_sa *sa = calloc(1, sizeof(*sa));
	assert_non_null(sa);
	sa->spi = 0xc0ffee01;
	sa->dir = dir;
	sa->enc = ESP_ENC_AES_GCM_16;
	sa->enc_key_len = 20;
	for (unsigned i = 0; i < 20; i++)
		sa->enc_key[i] = (uint8_t)(i * 7 + 1);
	sa->hard.seconds = 3600;
	assert_int_equal(esp_sa_set_replay_window(sa, dir == ESP_DIR_IN ? 128 : 0), 0);
	struct esp_path p = path("192.168.1.2", "172.16.0.2", 4500, 4500, ESP_ENCAP_UDP);
	sa->local = p.local, sa->remote = p.remote, sa->local_port = 4500, sa->remote_port = 4500;
	if (esp_sa_init(sa, 1, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return sa;
}

static size_t protect(struct esp_sa *out, uint8_t *buf, size_t cap, uint8_t tag)
{
	struct pkt p = {.buf = buf, .cap = cap, .off = 64, .len = 40};
	memset(buf + 64, tag, 40);
	buf[64] = 0x45; /* an IPv4 header's first byte */
	assert_int_equal(esp_encap(out, 0, &p, ESP_NH_IPV4), ESP_DROP_NONE);
	memmove(buf, buf + p.off, p.len);
	return p.len;
}

static void unprotect(struct esp_sa *in, uint8_t *buf, size_t len, uint8_t tag)
{
	uint8_t nh;
	struct pkt p = {.buf = buf, .cap = 2048, .off = 0, .len = len};
	assert_int_equal(esp_decap(in, 0, &p, &nh), ESP_DROP_NONE);
	assert_int_equal(nh, ESP_NH_IPV4);
	assert_int_equal(pkt_data(&p)[1], tag);
}

static void test_rebind_keeps_state(void **state)
{
	struct esp_sa *out = mk_sa(ESP_DIR_OUT), *in = mk_sa(ESP_DIR_IN);
	static uint8_t a[2048], b[2048];
	size_t la = protect(out, a, sizeof(a), 1), lb = protect(out, b, sizeof(b), 2);
	unprotect(in, a, la, 1);
	uint64_t seq = atomic_load(&out->seq_out), top = in->replay.top, salt = out->iv_salt;
	uint8_t key[20];
	memcpy(key, out->enc_key, 20);

	struct esp_path np = path("192.168.2.2", "172.16.0.2", 4500, 4500, ESP_ENCAP_UDP), got;
	esp_sa_set_path(out, &np);
	np.remote_port = 61000; /* the peer moved behind a NAT */
	esp_sa_set_path(in, &np);
	esp_sa_get_path(out, &got);
	char s[64];
	assert_string_equal(bt_addr_str(&got.local, s, sizeof(s)), "192.168.2.2");
	assert_int_equal(got.remote_port, 4500);
	esp_sa_get_path(in, &got);
	assert_int_equal(got.remote_port, 61000);
	/* everything but the path is as it was */
	assert_int_equal(out->spi, 0xc0ffee01);
	assert_int_equal(atomic_load(&out->seq_out), seq);
	assert_int_equal(in->replay.top, top);
	assert_int_equal(out->iv_salt, salt);
	assert_memory_equal(out->enc_key, key, 20);
	assert_int_equal(out->hard.seconds, 3600);
	/* a packet sent before the move opens after it; one sent after continues the sequence; a
	 * replay of the first is still refused */
	unprotect(in, b, lb, 2);
	la = protect(out, a, sizeof(a), 3);
	assert_int_equal(atomic_load(&out->seq_out), seq + 1);
	static uint8_t c[2048];
	memcpy(c, a, la);
	unprotect(in, a, la, 3);
	uint8_t nh;
	struct pkt p = {.buf = c, .cap = sizeof(c), .off = 0, .len = la};
	assert_int_equal(esp_decap(in, 0, &p, &nh), ESP_DROP_REPLAY);
	/* the inbound SA takes its peer from the new path; with any_peer (MOBIKE) from anywhere */
	struct bt_addr x;
	bt_addr_parse("172.16.0.2", &x);
	assert_true(esp_sa_peer_allowed(in, &x));
	bt_addr_parse("203.0.113.9", &x);
	assert_false(esp_sa_peer_allowed(in, &x));
	in->any_peer = true;
	assert_true(esp_sa_peer_allowed(in, &x));
	esp_sa_clear(out), esp_sa_clear(in);
	free(out), free(in);
}

/* Readers on other threads while the control thread flips between two paths: each snapshot is
 * wholly one or the other. */
struct race {
	struct esp_sa *sa;
	_Atomic bool stop;
	_Atomic unsigned long reads, mixed;
};

static void *reader(void *arg)
{
	struct race *r = arg;
	struct esp_path p;
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		esp_sa_get_path(r->sa, &p);
		bool one = p.local.b[2] == 1 && p.remote.b[3] == 1 && p.local_port == 1111 && p.remote_port == 1111 &&
			   p.encap == ESP_ENCAP_UDP;
		bool two = p.local.b[2] == 2 && p.remote.b[3] == 2 && p.local_port == 2222 && p.remote_port == 2222 &&
			   p.encap == ESP_ENCAP_RAW;
		if (!one && !two)
			atomic_fetch_add(&r->mixed, 1);
		atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed);
	}
	return NULL;
}

static void test_rebind_atomic(void **state)
{
	struct race r = {.sa = mk_sa(ESP_DIR_OUT)};
	struct esp_path p1 = path("192.168.1.2", "172.16.0.1", 1111, 1111, ESP_ENCAP_UDP),
			p2 = path("192.168.2.2", "172.16.0.2", 2222, 2222, ESP_ENCAP_RAW);
	esp_sa_set_path(r.sa, &p1);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
	/* flip until the readers have looked many times (they may start late on a busy machine);
	 * bounded: at most 5 s */
	time_t until = time(NULL) + 5;
	for (unsigned long i = 0; i < 200000 || (atomic_load(&r.reads) < 200000 && time(NULL) < until); i++)
		esp_sa_set_path(r.sa, i & 1 ? &p1 : &p2);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&r.mixed), 0);
	assert_true(atomic_load(&r.reads) >= 200000);
	esp_sa_clear(r.sa);
	free(r.sa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rebind_keeps_state),
		cmocka_unit_test(test_rebind_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
