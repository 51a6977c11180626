/* test_ike_ctx.c — the engine's part of the session context, with an initiator and a responder
 * engine in one process: the responder's established IKE SA and its Child SA written as attributes
 * and read into a fresh SA keep every field; the restored SA answers a liveness check and a Child
 * SA rekey of the peer, which never notices (no IKE_SA_INIT, no IKE_AUTH); every truncation and a
 * bad value are refused; a newer writer's unknown attribute is skipped. The ESP SA's runtime state
 * (sequence number with the jump, replay window, IV salt, counters) round-trips as well. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "esp/sa.h"
#include "ike/ike_ctx.h"
#include "ike/ike_wire.h"

static int xorshift(void *arg, uint8_t *buf, size_t len)
{
	uint64_t *s = arg;
	for (size_t i = 0; i < len; i++) {
		*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
		buf[i] = (uint8_t)*s;
	}
	return 0;
}

static void conf(struct ike_conf *c, struct ike_conf_room *room, bool initiator)
{
	char err[64];
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, room);
	c->ike = (struct ike_sk_suite){IKE_ENCR_AES_CBC, 256, IKE_INTEG_HMAC_SHA2_256_128};
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_X25519;
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	memcpy(c->psk, "a shared secret", 15);
	c->psk_len = 15;
	static const uint8_t a[4] = {172, 16, 0, 1}, b[4] = {172, 16, 0, 2};
	c->id_type = c->peer_id_type = IKE_ID_IPV4;
	memcpy(c->id, initiator ? a : b, 4), c->id_len = 4;
	memcpy(c->peer_id, initiator ? b : a, 4), c->peer_id_len = 4;
	bt_ts_parse(initiator ? "10.1.0.0/24" : "10.2.0.0/24[tcp/80-90]", &c->local_ts[0], err, sizeof(err));
	bt_ts_parse(initiator ? "10.2.0.0/24[tcp/80-90]" : "10.1.0.0/24", &c->remote_ts[0], err, sizeof(err));
	c->n_local_ts = c->n_remote_ts = 1;
	c->mobike = true;
}

static struct ike_conf ci, cr;
static struct ike_conf_room room_i, room_r;
static struct ike_sa ini, resp, copy;
static uint64_t si = 0x1234567, sr = 0x7654321;
static uint8_t a[8192], b[8192];

static void pair_up(void)
{
	conf(&ci, &room_i, true), conf(&cr, &room_r, false);
	struct ike_rng ri = {xorshift, &si}, rr = {xorshift, &sr};
	ike_sa_init(&ini, &ci, true, &ri);
	ike_sa_init(&resp, &cr, false, &rr);
	struct bt_addr c, g;
	bt_addr_parse("192.0.2.2", &c), bt_addr_parse("192.0.2.1", &g);
	ike_sa_set_endpoints(&ini, &c, 4500, &g, 4500);
	ike_sa_set_endpoints(&resp, &g, 4500, &c, 4500);
	size_t l = ike_start(&ini, a, sizeof(a));
	l = ike_process(&resp, a, l, b, sizeof(b));
	l = ike_process(&ini, b, l, a, sizeof(a));
	l = ike_process(&resp, a, l, b, sizeof(b));
	assert_int_equal(ike_process(&ini, b, l, a, sizeof(a)), 0);
	assert_int_equal(resp.state, IKE_ST_ESTABLISHED);
	assert_non_null(resp.child[0]);
	resp.child[0]->up = ini.child[0]->up = false;
	/* one exchange on the established SA, so that message IDs and the cached response are not 0 */
	l = ike_informational(&ini, IKE_INFO_DPD, a, sizeof(a));
	l = ike_process(&resp, a, l, b, sizeof(b));
	assert_true(l > 0);
	assert_int_equal(ike_process(&ini, b, l, a, sizeof(a)), 0);
}

/* The responder's context: its IKE SA then its child, each in an attribute of its own. */
static size_t write_ctx(const struct ike_sa *sa, uint8_t *buf, size_t cap)
{
	struct wbuf w = wbuf_init(buf, cap);
	size_t at = tlv_open(&w, 1);
	ike_ctx_write_sa(sa, &w);
	tlv_close(&w, at);
	at = tlv_open(&w, 2);
	ike_ctx_write_child(sa->child[0], &w);
	tlv_close(&w, at);
	assert_false(w.overflow);
	return w.len;
}

/* Read a context written by write_ctx into copy; 0 or -1. */
static int read_ctx(const uint8_t *buf, size_t len)
{
	char err[160];
	struct cur c = cur_init(buf, len), v;
	uint16_t type;
	struct ike_rng rr = {xorshift, &sr};
	ike_sa_free(&copy);
	ike_sa_init(&copy, &cr, false, &rr);
	if (tlv_next(&c, &type, &v) != 1 || type != 1 || ike_ctx_read_sa(&copy, v, err, sizeof(err)) != 0)
		return -1;
	if (tlv_next(&c, &type, &v) != 1 || type != 2)
		return -1;
	copy.child[0] = ike_ctx_read_child(&cr, v, err, sizeof(err));
	return copy.child[0] ? 0 : -1;
}

static bool prop_eq(const struct ike_proposal *x, const struct ike_proposal *y)
{
	if (x->num != y->num || x->protocol != y->protocol || x->spi_len != y->spi_len ||
	    memcmp(x->spi, y->spi, x->spi_len) || x->n_tr != y->n_tr)
		return false;
	for (unsigned i = 0; i < x->n_tr; i++)
		if (x->tr[i].type != y->tr[i].type || x->tr[i].id != y->tr[i].id || x->tr[i].key_bits != y->tr[i].key_bits)
			return false;
	return true;
}

static bool ts_eq(const struct bt_ts *x, const struct bt_ts *y, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!bt_addr_eq(&x[i].lo, &y[i].lo) || !bt_addr_eq(&x[i].hi, &y[i].hi) || x[i].proto != y[i].proto ||
		    x[i].port_lo != y[i].port_lo || x[i].port_hi != y[i].port_hi)
			return false;
	return true;
}

static void test_round_trip(void **state)
{
	static uint8_t ctx[16384];
	pair_up();
	size_t n = write_ctx(&resp, ctx, sizeof(ctx));
	assert_int_equal(read_ctx(ctx, n), 0);
	const struct ike_sa *x = &resp, *y = &copy;
	assert_int_equal(y->state, IKE_ST_ESTABLISHED);
	assert_true(x->initiator == y->initiator && x->spi_i == y->spi_i && x->spi_r == y->spi_r);
	assert_memory_equal(&x->suite, &y->suite, sizeof(x->suite));
	assert_true(x->prf == y->prf && x->group == y->group);
	assert_true(x->ni_len == y->ni_len && !memcmp(x->ni, y->ni, x->ni_len));
	assert_true(x->nr_len == y->nr_len && !memcmp(x->nr, y->nr, x->nr_len));
	const struct ike_keys *kx = &x->keys, *ky = &y->keys;
	assert_true(kx->prf_len == ky->prf_len && kx->integ_len == ky->integ_len && kx->encr_len == ky->encr_len);
	assert_memory_equal(kx->sk_d, ky->sk_d, kx->prf_len);
	assert_memory_equal(kx->sk_pi, ky->sk_pi, kx->prf_len);
	assert_memory_equal(kx->sk_pr, ky->sk_pr, kx->prf_len);
	assert_memory_equal(kx->sk_ai, ky->sk_ai, kx->integ_len);
	assert_memory_equal(kx->sk_ar, ky->sk_ar, kx->integ_len);
	assert_memory_equal(kx->sk_ei, ky->sk_ei, kx->encr_len);
	assert_memory_equal(kx->sk_er, ky->sk_er, kx->encr_len);
	assert_true(x->next_send_id == y->next_send_id && x->next_recv_id == y->next_recv_id);
	assert_int_equal(y->next_recv_id, 3); /* IKE_SA_INIT, IKE_AUTH, the DPD */
	assert_true(x->last_resp_len == y->last_resp_len && x->last_resp_id == y->last_resp_id);
	assert_memory_equal(x->last_resp, y->last_resp, x->last_resp_len);
	assert_true(prop_eq(&x->ike_chosen, &y->ike_chosen));
	assert_true(x->peer_id_type == y->peer_id_type && x->peer_id_len == y->peer_id_len);
	assert_memory_equal(x->peer_id, y->peer_id, x->peer_id_len);
	assert_true(x->peer_auth_method == y->peer_auth_method && x->peer_sighash == y->peer_sighash);
	assert_true(bt_addr_eq(&x->local, &y->local) && bt_addr_eq(&x->remote, &y->remote));
	assert_true(x->local_port == y->local_port && x->remote_port == y->remote_port);
	assert_true(x->nat_local == y->nat_local && x->nat_remote == y->nat_remote && x->frag_peer == y->frag_peer);
	assert_true(y->mobike && x->mobike_initiator == y->mobike_initiator && x->update_id == y->update_id);
	assert_true(x->peer_answers == y->peer_answers);
	const struct ike_child *cx = x->child[0], *cy = y->child[0];
	assert_true(cx->spi_i == cy->spi_i && cx->spi_r == cy->spi_r);
	assert_true(cx->encr_len == cy->encr_len && cx->integ_len == cy->integ_len);
	assert_memory_equal(cx->ei, cy->ei, cx->encr_len);
	assert_memory_equal(cx->er, cy->er, cx->encr_len);
	assert_true(prop_eq(&cx->esp, &cy->esp));
	assert_true(cx->n_ts_i == cy->n_ts_i && cx->n_ts_r == cy->n_ts_r);
	assert_true(ts_eq(cx->ts_i, cy->ts_i, cx->n_ts_i) && ts_eq(cx->ts_r, cy->ts_r, cx->n_ts_r));
	assert_int_equal(cy->ts_r[0].port_lo, 80);
	assert_ptr_equal(cy->conf, &cr);
	assert_null(ike_ctx_busy(&copy));
}

/* The restored SA takes over: the peer's next requests are answered by it as by the original. */
static void test_restored_sa_goes_on(void **state)
{
	static uint8_t ctx[16384];
	pair_up();
	size_t n = write_ctx(&resp, ctx, sizeof(ctx));
	assert_int_equal(read_ctx(ctx, n), 0);
	/* a retransmission of the last request is answered from the transferred cache */
	size_t l = ike_informational(&ini, IKE_INFO_DPD, a, sizeof(a));
	assert_true(l > 0);
	l = ike_process(&copy, a, l, b, sizeof(b));
	assert_true(l > 0);
	uint64_t answers = ini.peer_answers;
	assert_int_equal(ike_process(&ini, b, l, a, sizeof(a)), 0);
	assert_int_equal(ini.peer_answers, answers + 1);
	/* a Child SA rekey of the peer */
	l = ike_rekey_child(&ini, ini.child[0], a, sizeof(a));
	assert_true(l > 0);
	l = ike_process(&copy, a, l, b, sizeof(b));
	assert_true(l > 0);
	assert_int_equal(ike_process(&ini, b, l, a, sizeof(a)), 0);
	assert_true(ini.child[0]->next_ready);
	assert_true(copy.child[0]->next_ready);
	assert_int_equal(ini.child[0]->next->spi_r, copy.child[0]->next->spi_r);
	assert_int_equal(copy.state, IKE_ST_ESTABLISHED);
	assert_int_equal(ini.state, IKE_ST_ESTABLISHED);
	/* a busy SA is not exported */
	assert_non_null(ike_ctx_busy(&copy));
}

static void test_truncated_and_bad(void **state)
{
	static uint8_t ctx[16384], bad[16384 + 16];
	pair_up();
	size_t n = write_ctx(&resp, ctx, sizeof(ctx));
	/* every prefix is refused: the child's required attributes come last */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(read_ctx(ctx, k), -1);
	/* a value of the wrong size */
	memcpy(bad, ctx, n);
	struct cur c = cur_init(bad, n), v = {0}, in = {0};
	uint16_t type;
	assert_int_equal(tlv_next(&c, &type, &v), 1);
	in = v;
	assert_int_equal(tlv_next(&in, &type, &v), 1); /* IA_INITIATOR, one byte */
	bad[(size_t)(v.p - bad)] = 2;                  /* not a boolean */
	assert_int_equal(read_ctx(bad, n), -1);
	/* an attribute this version does not know is skipped */
	struct wbuf w = wbuf_init(bad, sizeof(bad));
	size_t at = tlv_open(&w, 1);
	tlv_u32(&w, 999, 0xdeadbeef);
	ike_ctx_write_sa(&resp, &w);
	tlv_close(&w, at);
	at = tlv_open(&w, 2);
	ike_ctx_write_child(resp.child[0], &w);
	tlv_u8(&w, 77, 1);
	tlv_close(&w, at);
	assert_int_equal(read_ctx(bad, w.len), 0);
}

static void test_esp_state(void **state)
{
	static uint8_t buf[4096];
	struct esp_sa in, out, in2, out2;
	memset(&in, 0, sizeof(in)), memset(&out, 0, sizeof(out));
	memset(&in2, 0, sizeof(in2)), memset(&out2, 0, sizeof(out2));
	in.dir = in2.dir = ESP_DIR_IN, out.dir = out2.dir = ESP_DIR_OUT;
	in.iv_salt = 0x1111, out.iv_salt = 0x2222;
	esp_sa_set_seq_out(&out, 5000);
	assert_int_equal(esp_sa_set_replay_window(&in, 256), 0);
	uint64_t bm[4] = {0xf0f0, 0, 1, 0x8000000000000000ull};
	esp_sa_set_replay_state(&in, 4321, bm, 4);
	atomic_store(&out.ctr.packets, 4999), atomic_store(&out.ctr.bytes, 123456);
	out.add_time = 100;
	struct wbuf w = wbuf_init(buf, sizeof(buf));
	esp_ctx_write(&in, &w, 160);
	size_t split = w.len;
	esp_ctx_write(&out, &w, 160);
	assert_false(w.overflow);
	assert_int_equal(esp_sa_set_replay_window(&in2, 64), 0); /* the receiver's own window size */
	assert_int_equal(esp_ctx_read(&in2, cur_init(buf, split), 1000, 0), 0);
	assert_int_equal(esp_ctx_read(&out2, cur_init(buf + split, w.len - split), 1000, 10000), 0);
	assert_int_equal(in2.replay.size, 256);
	assert_int_equal(in2.replay.top, 4321);
	assert_memory_equal(in2.replay.bitmap, bm, sizeof(bm));
	assert_int_equal(in2.iv_salt, 0x1111);
	assert_int_equal(out2.iv_salt, 0x2222);
	assert_int_equal(atomic_load(&out2.seq_out), 15000);
	assert_int_equal(atomic_load(&out2.ctr.packets), 4999);
	assert_int_equal(atomic_load(&out2.ctr.bytes), 123456);
	assert_int_equal(out2.add_time, 940); /* 60 s old */
	/* truncated: refused */
	for (size_t k = 1; k < split; k++) {
		struct esp_sa t;
		memset(&t, 0, sizeof(t));
		t.dir = ESP_DIR_IN;
		assert_int_equal(esp_ctx_read(&t, cur_init(buf, k), 1000, 0), -1);
		esp_sa_clear(&t);
	}
	/* the old node's later window merged into a live copy: what either saw is seen */
	struct esp_sa live;
	memset(&live, 0, sizeof(live));
	live.dir = ESP_DIR_IN;
	assert_int_equal(esp_sa_set_replay_window(&live, 256), 0);
	pthread_spin_init(&live.replay.lock, PTHREAD_PROCESS_PRIVATE);
	esp_sa_set_replay_state(&live, 4300, (uint64_t[4]){0x0f0f0f0full, 0x10, 0, 0x4000}, 4);
	assert_int_equal(esp_ctx_merge(&live, cur_init(buf, split)), 0);
	assert_int_equal(live.replay.top, 4321);
	uint64_t bl[4] = {0x0f0f0f0full, 0x10, 0, 0x4000};
	for (uint64_t seq = 4321 - 255; seq <= 4321; seq++) {
		/* seen after the merge = seen by the old node (top 4321) or here before (top 4300, bl) */
		bool old_saw = seq == 4321 || (bm[seq % 256 / 64] >> (seq % 64) & 1);
		bool here = seq <= 4300 && seq > 4300 - 256 && (bl[seq % 256 / 64] >> (seq % 64) & 1);
		bool now = live.replay.bitmap[seq % 256 / 64] >> (seq % 64) & 1;
		assert_int_equal(now, old_saw || here);
	}
	assert_int_equal(esp_ctx_merge(&out2, cur_init(buf, split)), -1); /* outbound SAs have no window */
	pthread_spin_destroy(&live.replay.lock);
	esp_sa_clear(&live);
	esp_sa_clear(&in), esp_sa_clear(&out), esp_sa_clear(&in2), esp_sa_clear(&out2);
}

static int teardown(void **state)
{
	ike_sa_free(&ini), ike_sa_free(&resp), ike_sa_free(&copy);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_round_trip, teardown),
		cmocka_unit_test_teardown(test_restored_sa_goes_on, teardown),
		cmocka_unit_test_teardown(test_truncated_and_bad, teardown),
		cmocka_unit_test(test_esp_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
