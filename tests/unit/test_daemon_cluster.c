/* test_daemon_cluster.c — the transfer channel's bytes: frames read in any pieces and refused when
 * their length is 0 or too large; the target's reply sealed and opened, refused when tampered with,
 * under another challenge or key; the gratuitous ARP packets of a shared address; and the target's
 * listener in a real event loop on loopback, facing peers that misbehave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "daemon/vip.h"
#include "daemon/xfer.h"

static void test_frames(void **state)
{
	uint8_t in[4 + 300];
	in[0] = 0, in[1] = 0, in[2] = 1, in[3] = 44; /* 300 */
	for (int i = 0; i < 300; i++)
		in[4 + i] = (uint8_t)i;
	/* every split into pieces of k bytes gives the same frame */
	for (size_t k = 1; k <= sizeof(in); k++) {
		struct cluster_rx rx = {.max = 1000};
		size_t off = 0, used;
		int rc = 0;
		while (rc == 0 && off < sizeof(in)) {
			size_t n = sizeof(in) - off < k ? sizeof(in) - off : k;
			rc = cluster_rx_feed(&rx, in + off, n, &used);
			assert_true(used <= n);
			off += used;
		}
		assert_int_equal(rc, 1);
		assert_int_equal(off, sizeof(in));
		assert_int_equal(rx.len, 300);
		assert_memory_equal(rx.buf, in + 4, 300);
		cluster_rx_free(&rx);
		assert_null(rx.buf);
	}
	/* bytes after the frame are not consumed */
	uint8_t two[4 + 2 + 3] = {0, 0, 0, 2, 'h', 'i', 'x', 'y', 'z'};
	struct cluster_rx rx = {.max = 10};
	size_t used;
	assert_int_equal(cluster_rx_feed(&rx, two, sizeof(two), &used), 1);
	assert_int_equal(used, 6);
	cluster_rx_free(&rx);
	/* a length of 0, one above the maximum, a huge one */
	static const uint8_t bad[][4] = {{0, 0, 0, 0}, {0, 0, 0, 11}, {0xff, 0xff, 0xff, 0xff}};
	for (size_t i = 0; i < 3; i++) {
		struct cluster_rx r2 = {.max = 10};
		assert_int_equal(cluster_rx_feed(&r2, bad[i], 4, &used), -1);
		assert_null(r2.buf);
		cluster_rx_free(&r2);
	}
}

static void test_reply(void **state)
{
	uint8_t key[32], key2[32], chal[CLUSTER_CHALLENGE], chal2[CLUSTER_CHALLENGE];
	memset(key, 0x11, sizeof(key));
	memset(key2, 0x22, sizeof(key2));
	memset(chal, 0xa5, sizeof(chal));
	memcpy(chal2, chal, sizeof(chal2));
	chal2[15] ^= 1;
	uint8_t out[CLUSTER_REPLY_MAX];
	size_t n;
	struct cluster_reply r = {.ok = true, .multi_lan = true, .import_us = 1234567}, back;
	assert_int_equal(cluster_reply_seal(key, chal, &r, out, &n), 0);
	assert_int_equal(n, CLUSTER_REPLY_HDR + XFER_AEAD_OVERHEAD);
	assert_int_equal(cluster_reply_open(key, chal, out, n, &back), 0);
	assert_true(back.ok && back.multi_lan);
	assert_int_equal(back.import_us, 1234567);
	assert_string_equal(back.error, "");
	/* another challenge, another key, any flipped bit, cut short: refused */
	assert_int_equal(cluster_reply_open(key, chal2, out, n, &back), -1);
	assert_int_equal(cluster_reply_open(key2, chal, out, n, &back), -1);
	for (size_t i = 0; i < n * 8; i += 7) {
		out[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(cluster_reply_open(key, chal, out, n, &back), -1);
		out[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_int_equal(cluster_reply_open(key, chal, out, n - 1, &back), -1);
	assert_int_equal(cluster_reply_open(key, chal, out, 0, &back), -1);

	/* a refusal carries its text, cut at CLUSTER_ERR_MAX */
	struct cluster_reply no = {.ok = false};
	memset(no.error, 'e', CLUSTER_ERR_MAX);
	assert_int_equal(cluster_reply_seal(key, chal, &no, out, &n), 0);
	assert_int_equal(n, CLUSTER_REPLY_MAX);
	assert_int_equal(cluster_reply_open(key, chal, out, n, &back), 0);
	assert_false(back.ok);
	assert_int_equal(strlen(back.error), CLUSTER_ERR_MAX);
	strcpy(no.error, "IKE SA already present");
	assert_int_equal(cluster_reply_seal(key, chal, &no, out, &n), 0);
	assert_int_equal(cluster_reply_open(key, chal, out, n, &back), 0);
	assert_string_equal(back.error, "IKE SA already present");
}

static void test_reply_decode(void **state)
{
	struct cluster_reply r;
	uint8_t ok[CLUSTER_REPLY_HDR] = {1, 0, 0, 0, 0, 0, 3, 232, 0, 0};
	assert_int_equal(cluster_reply_decode(ok, sizeof(ok), &r), 0);
	assert_int_equal(r.import_us, 1000);
	uint8_t v[CLUSTER_REPLY_HDR + 2];
	static const struct { size_t at; uint8_t val; } bad[] = {
		{0, 2}, /* version */ {1, 2}, /* status */ {2, 2}, /* flags */ {3, 1}, /* reserved */ {9, 1}, /* text on ok */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(v, ok, sizeof(ok));
		v[bad[i].at] = bad[i].val;
		assert_int_equal(cluster_reply_decode(v, sizeof(ok) + (bad[i].at == 9), &r), -1);
	}
	/* text length beyond the message, and non-printable text made printable */
	uint8_t no[CLUSTER_REPLY_HDR + 2] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 'a', '\n'};
	assert_int_equal(cluster_reply_decode(no, sizeof(no), &r), -1);
	no[9] = 2;
	assert_int_equal(cluster_reply_decode(no, sizeof(no), &r), 0);
	assert_string_equal(r.error, "a?");
	assert_int_equal(cluster_reply_decode(no, 3, &r), -1);
}

static void test_garp(void **state)
{
	const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
	struct bt_addr a;
	assert_int_equal(bt_addr_parse("192.0.2.1", &a), 0);
	uint8_t req[28], rep[28];
	vip_garp_build(req, mac, &a, false);
	vip_garp_build(rep, mac, &a, true);
	static const uint8_t want_req[28] = {0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 9, 192, 0, 2, 1,
					     0, 0, 0, 0, 0, 0, 192, 0, 2, 1};
	static const uint8_t want_rep[28] = {0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 9, 192, 0, 2, 1,
					     2, 0, 0, 0, 0, 9, 192, 0, 2, 1};
	assert_memory_equal(req, want_req, 28);
	assert_memory_equal(rep, want_rep, 28);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents) { ev_break(loop, EVBREAK_ALL); }

static void run_for(struct ev_loop *loop, double s)
{
	ev_timer t;
	ev_timer_init(&t, stop_cb, s, 0);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

static int dial(uint16_t port, const void *data, size_t n)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (n)
		assert_int_equal(send(fd, data, n, 0), (ssize_t)n);
	return fd;
}

/* The target never blocks and never trusts its peer: a huge or zero length, a peer that leaves
 * half-way, one that never sends, one too many at once: each dropped and counted. */
static void test_channel(void **state)
{
	static const char conf[] = "cluster {\n key = 0x" "00112233445566778899aabbccddeeff" "00112233445566778899aabbccddeeff\n"
				   " listen = 127.0.0.1\n}\n";
	struct daemon d = {.listen_fd = -1};
	char err[256];
	assert_int_equal(config_parse(conf, strlen(conf), "t.conf", &d.cfg, err, sizeof(err)), 0);
	d.cfg->cluster.port = 0; /* any free port */
	d.loop = ev_loop_new(0);
	assert_int_equal(cluster_start(&d, err, sizeof(err)), 0);
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	assert_int_equal(getsockname(d.cluster->fd, (struct sockaddr *)&sin, &sl), 0);
	uint16_t port = ntohs(sin.sin_port);

	static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff}, zero[4] = {0}, half[6] = {0, 0, 0, 10, 'a', 'b'};
	int fds[4] = {dial(port, huge, 4), dial(port, zero, 4), dial(port, half, 6), dial(port, NULL, 0)};
	shutdown(fds[2], SHUT_WR);
	run_for(d.loop, 0.3);
	assert_int_equal(d.cluster->channel_drops, 3);
	assert_int_equal(d.cluster->n_conns, 1);
	/* the silent one had its challenge, and is dropped after the time-out */
	uint8_t hello[64];
	assert_int_equal(recv(fds[3], hello, sizeof(hello), 0), CLUSTER_HELLO);
	assert_memory_equal(hello, CLUSTER_MAGIC, 4);
	run_for(d.loop, CLUSTER_TIMEOUT_S + 0.3);
	assert_int_equal(d.cluster->channel_drops, 4);
	assert_int_equal(d.cluster->n_conns, 0);
	assert_int_equal(recv(fds[3], hello, sizeof(hello), 0), 0);
	for (int i = 0; i < 4; i++)
		close(fds[i]);

	/* more transfers than CLUSTER_CONNS_MAX at once: the rest are refused */
	int many[CLUSTER_CONNS_MAX + 2];
	for (int i = 0; i < CLUSTER_CONNS_MAX + 2; i++)
		many[i] = dial(port, NULL, 0);
	run_for(d.loop, 0.2);
	assert_int_equal(d.cluster->n_conns, CLUSTER_CONNS_MAX);
	assert_int_equal(d.cluster->channel_drops, 4 + 2);
	cluster_stop(&d); /* frees the transfers in progress */
	assert_null(d.cluster);
	for (int i = 0; i < CLUSTER_CONNS_MAX + 2; i++)
		close(many[i]);
	ev_loop_destroy(d.loop);
	config_free(d.cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_reply_decode),
		cmocka_unit_test(test_garp),
		cmocka_unit_test(test_channel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
