/* test_ike_mobike.c — MOBIKE (RFC 4555) between an initiator and a responder engine in one process:
 * MOBIKE_SUPPORTED negotiated only when both offer it; the original initiator's
 * UPDATE_SA_ADDRESSES moves the responder's view of the SA to the addresses the request came
 * from, with NAT detection for the new path and COOKIE2 echoed; a path test is answered; a forged,
 * replayed or responder-sent update moves nothing; a retransmitted update from yet another
 * address asks for a return routability check there first; the peer's additional addresses are
 * learnt. A gateway that took the session over at another address (Multi-LAN transfer) sends its
 * own UPDATE_SA_ADDRESSES: the original initiator follows an authentic, newer one (also after an
 * IKE SA rekey), answers with NAT detection for the new pair, and ignores replays, forgeries and
 * updates without MOBIKE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ike_test.h"

static struct bt_addr addr(const char *s)
{
	struct bt_addr a;
	assert_int_equal(bt_addr_parse(s, &a), 0);
	return a;
}

static void conf(struct ike_conf *c, bool initiator, bool mobike)
{
	static struct ike_conf_room room[2]; /* one configuration per role at a time */
	test_psk_conf(c, &room[initiator], initiator, (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE},
		      initiator ? "10.1.0.1/32" : "10.2.0.0/24", initiator ? "10.2.0.0/24" : "10.1.0.1/32");
	c->mobike = mobike;
}

struct pair {
	struct ike_sa i, r;
	struct ike_conf ci, cr;
	uint64_t si, sr;
	uint8_t a[4096], b[4096];
};

/* What the responder sees: a message from the initiator's address and port to its own. */
static void rx(struct ike_sa *sa, const char *local, uint16_t lport, const char *remote, uint16_t rport)
{
	sa->rx_local = addr(local), sa->rx_remote = addr(remote);
	sa->rx_local_port = lport, sa->rx_remote_port = rport;
}

static const char *gw_extra = NULL; /* an additional address the responder announces in IKE_AUTH */

static void up(struct pair *p, bool mi, bool mr)
{
	memset(p, 0, sizeof(*p));
	conf(&p->ci, true, mi), conf(&p->cr, false, mr);
	p->si = 0x1234567, p->sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p->si}, rr = {xorshift, &p->sr};
	ike_sa_init(&p->i, &p->ci, true, &ri);
	ike_sa_init(&p->r, &p->cr, false, &rr);
	struct bt_addr c1 = addr("192.168.1.2"), g = addr("172.16.0.2");
	ike_sa_set_endpoints(&p->i, &c1, 4500, &g, 4500);
	ike_sa_set_endpoints(&p->r, &g, 4500, &c1, 4500);
	rx(&p->r, "172.16.0.2", 4500, "192.168.1.2", 4500);
	size_t l = ike_start(&p->i, p->a, sizeof(p->a));
	assert_true(l > 0);
	l = ike_process(&p->r, p->a, l, p->b, sizeof(p->b));
	assert_true(l > 0);
	l = ike_process(&p->i, p->b, l, p->a, sizeof(p->a));
	assert_true(l > 0);
	if (gw_extra) {
		p->r.my_addrs[0] = addr(gw_extra);
		p->r.n_my_addrs = 1;
	}
	l = ike_process(&p->r, p->a, l, p->b, sizeof(p->b));
	assert_true(l > 0);
	assert_int_equal(ike_process(&p->i, p->b, l, p->a, sizeof(p->a)), 0);
	assert_int_equal(p->i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p->r.state, IKE_ST_ESTABLISHED);
	assert_false(p->i.nat_local || p->i.nat_remote || p->r.nat_local || p->r.nat_remote);
}

static void done(struct pair *p)
{
	ike_sa_free(&p->i);
	ike_sa_free(&p->r);
}

/* A liveness check of the initiator's is answered: message IDs are in step on both sides. */
static void in_step(struct pair *p)
{
	size_t l = ike_informational(&p->i, IKE_INFO_DPD, p->a, sizeof(p->a));
	size_t rl = ike_process(&p->r, p->a, l, p->b, sizeof(p->b));
	assert_true(rl > 0);
	assert_int_equal(ike_process(&p->i, p->b, rl, p->a, sizeof(p->a)), 0);
	assert_false(p->i.info_pending);
}

/* Nothing moved: no move event, the peer's address as it was. */
static void unmoved(const struct ike_sa *sa, const char *remote)
{
	char buf[64];
	assert_false(sa->gw_moved || sa->addr_update);
	assert_string_equal(bt_addr_str(&sa->remote, buf, sizeof(buf)), remote);
}

static void test_negotiation(void **state)
{
	static struct pair p;
	up(&p, true, true);
	assert_true(p.i.mobike && p.r.mobike);
	assert_true(p.i.mobike_initiator);
	assert_false(p.r.mobike_initiator);
	/* only the original initiator moves the SA */
	assert_int_equal(ike_mobike_update(&p.r, p.a, sizeof(p.a)), 0);
	done(&p);
	up(&p, true, false);
	assert_false(p.i.mobike || p.r.mobike);
	assert_int_equal(ike_mobike_update(&p.i, p.a, sizeof(p.a)), 0);
	done(&p);
	up(&p, false, true);
	assert_false(p.i.mobike || p.r.mobike);
	done(&p);
}

/* The initiator moves to 192.168.2.2; the update's IP header carries that address. */
static size_t update_from(struct pair *p, const char *new_local, const char *seen_as, uint16_t seen_port)
{
	struct bt_addr c2 = addr(new_local), g = addr("172.16.0.2");
	ike_sa_set_endpoints(&p->i, &c2, 4500, &g, 4500);
	size_t l = ike_mobike_update(&p->i, p->a, sizeof(p->a));
	assert_true(l > 0);
	rx(&p->r, "172.16.0.2", 4500, seen_as, seen_port);
	return l;
}

static void test_update(void **state)
{
	static struct pair p;
	char buf[64];
	up(&p, true, true);
	uint32_t spi_in = p.r.child[0]->spi_r;
	size_t l = update_from(&p, "192.168.2.2", "192.168.2.2", 4500);
	static uint8_t req[4096];
	memcpy(req, p.a, l);
	size_t rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_true(rl > 0);
	assert_true(p.r.addr_update);
	assert_string_equal(bt_addr_str(&p.r.remote, buf, sizeof(buf)), "192.168.2.2");
	assert_false(p.r.nat_remote);
	assert_int_equal(p.r.child[0]->spi_r, spi_in); /* the Child SA is untouched */
	assert_int_equal(p.r.updates_received, 1);
	/* the answer completes the update: no NAT on the new path */
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	assert_true(p.i.update_done);
	assert_false(p.i.info_pending);
	assert_int_equal(p.i.update_error, 0);
	assert_false(p.i.nat_local || p.i.nat_remote);

	/* the same update replayed later by someone else's address: the cached answer, but only for
	 * an authentic copy; a forged one moves nothing */
	p.r.addr_update = false;
	req[l - 1] ^= 1;
	rx(&p.r, "172.16.0.2", 4500, "203.0.113.66", 4500);
	assert_int_equal(ike_process(&p.r, req, l, p.b, sizeof(p.b)), 0);
	unmoved(&p.r, "192.168.2.2");
	done(&p);
}

/* The answer is lost; the initiator moves again and retransmits the same request from there (or
 * someone replays it from elsewhere): the responder tests that path before it moves. */
static void test_retransmit_checked(void **state)
{
	static struct pair p;
	char buf[64];
	up(&p, true, true);
	size_t l = update_from(&p, "192.168.2.2", "192.168.2.2", 4500);
	static uint8_t req[4096];
	memcpy(req, p.a, l);
	assert_true(ike_process(&p.r, req, l, p.b, sizeof(p.b)) > 0);
	p.r.addr_update = false;
	rx(&p.r, "172.16.0.2", 4500, "192.168.3.2", 4500);
	size_t rl = ike_process(&p.r, req, l, p.b, sizeof(p.b));
	assert_true(rl > 0);
	/* not moved yet: the responder checks that the initiator answers there first */
	assert_false(p.r.addr_update);
	assert_true(p.r.addr_check);
	assert_string_equal(bt_addr_str(&p.r.remote, buf, sizeof(buf)), "192.168.2.2");
	assert_string_equal(bt_addr_str(&p.r.rr_remote, buf, sizeof(buf)), "192.168.3.2");
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	assert_true(p.i.update_done);
	/* the return routability check: the initiator answers it */
	static uint8_t probe[4096];
	size_t pl = ike_mobike_probe(&p.r, probe, sizeof(probe));
	assert_true(pl > 0);
	rl = ike_process(&p.i, probe, pl, p.a, sizeof(p.a));
	assert_true(rl > 0);
	assert_int_equal(ike_process(&p.r, p.a, rl, p.b, sizeof(p.b)), 0);
	assert_true(p.r.probe_done);
	done(&p);
}

/* An older update (message ID below the last applied one) cannot move the SA back; a plain DPD
 * or a message from a new address without UPDATE_SA_ADDRESSES does not move it either. */
static void test_no_move_without_update(void **state)
{
	static struct pair p;
	char buf[64];
	up(&p, true, true);
	size_t l = ike_informational(&p.i, IKE_INFO_DPD, p.a, sizeof(p.a));
	assert_true(l > 0);
	rx(&p.r, "172.16.0.2", 4500, "203.0.113.66", 4500);
	size_t rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_true(rl > 0);
	assert_false(p.r.addr_update);
	assert_string_equal(bt_addr_str(&p.r.remote, buf, sizeof(buf)), "192.168.1.2");
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);

	/* update 1 moves to .2; update 2 to .3; update 1 replayed: not a valid request any more */
	l = update_from(&p, "192.168.2.2", "192.168.2.2", 4500);
	static uint8_t first[4096];
	size_t fl = l;
	memcpy(first, p.a, l);
	rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	l = update_from(&p, "192.168.3.2", "192.168.3.2", 4500);
	rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	p.r.addr_update = false;
	rx(&p.r, "172.16.0.2", 4500, "192.168.2.2", 4500);
	assert_int_equal(ike_process(&p.r, first, fl, p.b, sizeof(p.b)), 0);
	assert_false(p.r.addr_update);
	assert_string_equal(bt_addr_str(&p.r.remote, buf, sizeof(buf)), "192.168.3.2");
	assert_int_equal(p.r.updates_received, 2);
	done(&p);
}

static void test_probe(void **state)
{
	static struct pair p;
	up(&p, true, true);
	size_t l = ike_mobike_probe(&p.i, p.a, sizeof(p.a));
	assert_true(l > 0);
	rx(&p.r, "172.16.0.2", 4500, "192.168.2.2", 4500);
	size_t rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_true(rl > 0);
	assert_false(p.r.addr_update); /* a path test moves nothing */
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	assert_true(p.i.probe_done);
	assert_false(p.i.update_done);
	in_step(&p); /* the next request still works */
	done(&p);
}

/* The responder's additional addresses: learnt from IKE_AUTH, withdrawn by an address list
 * update (NO_ADDITIONAL_ADDRESSES), announced anew. */
static void test_additional_addresses(void **state)
{
	static struct pair p;
	char buf[64];
	gw_extra = "2001:db8::1";
	up(&p, true, true);
	gw_extra = NULL;
	assert_int_equal(p.i.n_peer_addrs, 1);
	assert_string_equal(bt_addr_str(&p.i.peer_addrs[0], buf, sizeof(buf)), "2001:db8::1");
	p.i.peer_addrs_changed = false;
	p.r.n_my_addrs = 0;
	size_t l = ike_mobike_addresses(&p.r, p.b, sizeof(p.b));
	assert_true(l > 0);
	size_t rl = ike_process(&p.i, p.b, l, p.a, sizeof(p.a));
	assert_true(rl > 0);
	assert_true(p.i.peer_addrs_changed);
	assert_int_equal(p.i.n_peer_addrs, 0);
	assert_int_equal(ike_process(&p.r, p.a, rl, p.b, sizeof(p.b)), 0);
	assert_false(p.r.info_pending);
	p.r.my_addrs[0] = addr("172.16.9.9"), p.r.my_addrs[1] = addr("172.16.9.10");
	p.r.n_my_addrs = 2;
	l = ike_mobike_addresses(&p.r, p.b, sizeof(p.b));
	rl = ike_process(&p.i, p.b, l, p.a, sizeof(p.a));
	assert_int_equal(p.i.n_peer_addrs, 2);
	assert_string_equal(bt_addr_str(&p.i.peer_addrs[1], buf, sizeof(buf)), "172.16.9.10");
	assert_false(p.i.addr_update); /* the initiator decides: a list moves nothing by itself */
	done(&p);
	/* without MOBIKE there is no such message */
	up(&p, true, false);
	assert_int_equal(ike_mobike_addresses(&p.r, p.b, sizeof(p.b)), 0);
	done(&p);
}

/* The gateway (the responder) now runs at new_gw: its update, as the client sees it arrive. */
static size_t gw_update_from(struct pair *p, const char *new_gw, const char *seen_as, uint16_t seen_port)
{
	struct bt_addr g2 = addr(new_gw), c1 = addr("192.168.1.2");
	ike_sa_set_endpoints(&p->r, &g2, 4500, &c1, 4500);
	size_t l = ike_mobike_gw_update(&p->r, p->b, sizeof(p->b));
	assert_true(l > 0);
	rx(&p->i, "192.168.1.2", 4500, seen_as, seen_port);
	return l;
}

/* Answer a gateway update at the client and hand the answer back. */
static void gw_answer(struct pair *p, size_t l)
{
	size_t rl = ike_process(&p->i, p->b, l, p->a, sizeof(p->a));
	assert_true(rl > 0);
	assert_int_equal(ike_process(&p->r, p->a, rl, p->b, sizeof(p->b)), 0);
	assert_true(p->r.update_done);
	p->r.update_done = false;
}

static void test_gw_update(void **state)
{
	static struct pair p;
	char buf[64];
	gw_extra = "172.16.9.9"; /* the old gateway's additional address, void after the move */
	up(&p, true, true);
	gw_extra = NULL;
	assert_int_equal(p.i.n_peer_addrs, 1);
	p.r.n_my_addrs = 0;
	uint32_t spi_in = p.i.child[0]->spi_i, spi_out = p.i.child[0]->spi_r;
	/* the original initiator has its own update; the gateway's is for the other side */
	assert_int_equal(ike_mobike_gw_update(&p.i, p.a, sizeof(p.a)), 0);
	size_t l = gw_update_from(&p, "172.16.0.3", "172.16.0.3", 4500);
	size_t rl = ike_process(&p.i, p.b, l, p.a, sizeof(p.a));
	assert_true(rl > 0);
	assert_true(p.i.gw_moved);
	assert_false(p.i.addr_update);
	assert_string_equal(bt_addr_str(&p.i.remote, buf, sizeof(buf)), "172.16.0.3");
	assert_string_equal(bt_addr_str(&p.i.local, buf, sizeof(buf)), "192.168.1.2");
	assert_int_equal(p.i.remote_port, 4500);
	assert_false(p.i.nat_local || p.i.nat_remote);
	assert_int_equal(p.i.n_peer_addrs, 0); /* NO_ADDITIONAL_ADDRESSES came with it */
	assert_int_equal(p.i.child[0]->spi_i, spi_in); /* the Child SA is untouched */
	assert_int_equal(p.i.child[0]->spi_r, spi_out);
	assert_int_equal(p.i.updates_received, 1);
	/* the answer (COOKIE2 echoed) completes the gateway's update */
	assert_int_equal(ike_process(&p.r, p.a, rl, p.b, sizeof(p.b)), 0);
	assert_true(p.r.update_done);
	assert_false(p.r.info_pending);
	assert_int_equal(p.r.update_error, 0);
	assert_false(p.r.nat_local || p.r.nat_remote);
	assert_int_equal(p.r.updates_sent, 1);
	in_step(&p); /* the client's next request reaches the gateway */
	done(&p);
}

/* An older gateway update cannot move the client back; the last one again from elsewhere asks
 * for a return routability check first; a tampered one and one without MOBIKE move nothing. */
static void test_gw_update_refused(void **state)
{
	static struct pair p;
	static uint8_t first[4096], second[4096];
	up(&p, true, true);
	size_t fl = gw_update_from(&p, "172.16.0.3", "172.16.0.3", 4500);
	memcpy(first, p.b, fl);
	gw_answer(&p, fl);
	size_t sl = gw_update_from(&p, "172.16.0.4", "172.16.0.4", 4500);
	memcpy(second, p.b, sl);
	gw_answer(&p, sl);
	p.i.gw_moved = false;
	rx(&p.i, "192.168.1.2", 4500, "172.16.0.3", 4500);
	assert_int_equal(ike_process(&p.i, first, fl, p.a, sizeof(p.a)), 0);
	unmoved(&p.i, "172.16.0.4");
	rx(&p.i, "192.168.1.2", 4500, "203.0.113.66", 4500);
	assert_true(ike_process(&p.i, second, sl, p.a, sizeof(p.a)) > 0); /* the cached answer */
	unmoved(&p.i, "172.16.0.4");
	assert_true(p.i.addr_check);
	assert_int_equal(p.i.updates_received, 2);
	/* tampered: dropped before anything is read */
	size_t l = gw_update_from(&p, "172.16.0.5", "172.16.0.5", 4500);
	p.b[l - 1] ^= 1;
	assert_int_equal(ike_process(&p.i, p.b, l, p.a, sizeof(p.a)), 0);
	unmoved(&p.i, "172.16.0.4");
	done(&p);
	/* without MOBIKE the gateway has no such message, and a client ignores one */
	up(&p, true, false);
	assert_int_equal(ike_mobike_gw_update(&p.r, p.b, sizeof(p.b)), 0);
	p.r.mobike = true; /* forced: the client must not follow it */
	l = gw_update_from(&p, "172.16.0.3", "172.16.0.3", 4500);
	size_t rl = ike_process(&p.i, p.b, l, p.a, sizeof(p.a));
	assert_true(rl > 0); /* an authentic INFORMATIONAL is answered, but moves nothing */
	unmoved(&p.i, "172.16.0.2");
	done(&p);
}

/* After an IKE SA rekey message IDs start at 0 again: a gateway update is still newer than the
 * last one applied (which belongs to the old SA). */
static void test_gw_update_after_ike_rekey(void **state)
{
	static struct pair p;
	char buf[64];
	up(&p, true, true);
	gw_answer(&p, gw_update_from(&p, "172.16.0.3", "172.16.0.3", 4500));
	size_t l = ike_rekey_ike(&p.i, p.a, sizeof(p.a));
	assert_true(l > 0);
	size_t rl = ike_process(&p.r, p.a, l, p.b, sizeof(p.b));
	assert_true(rl > 0);
	assert_int_equal(ike_process(&p.i, p.b, rl, p.a, sizeof(p.a)), 0);
	assert_true(p.i.ike_rekeyed && p.r.ike_rekeyed);
	p.i.gw_moved = false;
	gw_answer(&p, gw_update_from(&p, "172.16.0.4", "172.16.0.4", 4500));
	assert_true(p.i.gw_moved);
	assert_string_equal(bt_addr_str(&p.i.remote, buf, sizeof(buf)), "172.16.0.4");
	done(&p);
}

/* A NAT on the new path: the update arrives from the NAT's address and port, and the side that
 * moved learns from the answer (NAT detection for the pair the update came with) that it is behind
 * one. gw: the gateway's update, else the original initiator's. */
static void nat_on_new_path(bool gw)
{
	static struct pair p;
	char buf[64];
	up(&p, true, true);
	struct ike_sa *mover = gw ? &p.r : &p.i, *peer = gw ? &p.i : &p.r;
	uint8_t *req = gw ? p.b : p.a, *ans = gw ? p.a : p.b;
	size_t l = gw ? gw_update_from(&p, "172.16.0.3", "198.51.100.1", 61000)
		      : update_from(&p, "192.168.2.2", "198.51.100.1", 61000);
	size_t rl = ike_process(peer, req, l, ans, sizeof(p.a));
	assert_true(rl > 0 && (gw ? peer->gw_moved : peer->addr_update));
	assert_string_equal(bt_addr_str(&peer->remote, buf, sizeof(buf)), "198.51.100.1");
	assert_int_equal(peer->remote_port, 61000);
	assert_true(peer->nat_remote);
	assert_false(peer->nat_local);
	assert_int_equal(ike_process(mover, ans, rl, req, sizeof(p.a)), 0);
	assert_true(mover->update_done);
	assert_true(mover->nat_local);
	done(&p);
}

static void test_update_nat(void **state) { nat_on_new_path(false); }
static void test_gw_update_nat(void **state) { nat_on_new_path(true); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiation),       cmocka_unit_test(test_update),
		cmocka_unit_test(test_update_nat),        cmocka_unit_test(test_retransmit_checked),
		cmocka_unit_test(test_no_move_without_update), cmocka_unit_test(test_probe),
		cmocka_unit_test(test_additional_addresses), cmocka_unit_test(test_gw_update),
		cmocka_unit_test(test_gw_update_nat),     cmocka_unit_test(test_gw_update_refused),
		cmocka_unit_test(test_gw_update_after_ike_rekey),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
