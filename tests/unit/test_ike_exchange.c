/* test_ike_exchange.c — IKE_SA_INIT and IKE_AUTH between an initiator and a responder engine in one
 * process: the SA and its Child SA come up with matching keys, SPIs and narrowed selectors; a wrong
 * PSK, a wrong identity, no common proposal or group, disjoint selectors each fail the way
 * RFC 7296 says; a retransmitted request gets the same response; a forged message changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ike_test.h"
#include "testdata.h"

/* Injected randomness: deterministic, so runs repeat (DH exponents come from OpenSSL). */
static void conf(struct ike_conf *c, bool initiator)
{
	static struct ike_conf_room room[8]; /* the last 8 configurations made (a test holds at most 4) */
	static unsigned next;
	test_psk_conf(c, &room[next++ % 8], initiator,
		      (struct ike_sk_suite){IKE_ENCR_AES_CBC, 128, IKE_INTEG_HMAC_SHA2_256_128},
		      initiator ? "10.1.0.0/16" : "10.2.0.0/24", initiator ? "10.2.0.0/16" : "10.1.0.0/24");
}

struct pair {
	struct ike_sa i, r;
	uint64_t si, sr;
	uint8_t m1[4096], m2[4096], m3[4096], m4[4096];
	size_t l1, l2, l3, l4;
};

static void run(struct pair *p, struct ike_conf *ci, struct ike_conf *cr)
{
	p->si = 0x1234567, p->sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p->si}, rr = {xorshift, &p->sr};
	ike_sa_init(&p->i, ci, true, &ri);
	ike_sa_init(&p->r, cr, false, &rr);
	p->l1 = ike_start(&p->i, p->m1, sizeof(p->m1));
	assert_true(p->l1 > 0);
	p->l2 = ike_process(&p->r, p->m1, p->l1, p->m2, sizeof(p->m2));
	p->l3 = p->l2 ? ike_process(&p->i, p->m2, p->l2, p->m3, sizeof(p->m3)) : 0;
	p->l4 = p->l3 ? ike_process(&p->r, p->m3, p->l3, p->m4, sizeof(p->m4)) : 0;
	if (p->l4)
		assert_int_equal(ike_process(&p->i, p->m4, p->l4, p->m1, sizeof(p->m1)), 0);
}

static void done(struct pair *p)
{
	ike_sa_free(&p->i);
	ike_sa_free(&p->r);
}

static void test_established(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	run(&p, &ci, &cr);
	assert_string_equal(ike_state_name(p.i.state), "established");
	assert_string_equal(ike_state_name(p.r.state), "established");
	assert_int_equal(p.i.spi_r, p.r.spi_r);
	assert_memory_equal(p.i.keys.sk_d, p.r.keys.sk_d, 32);
	assert_memory_equal(p.i.keys.sk_ei, p.r.keys.sk_ei, 16);
	/* the Child SA: same SPIs and keys on both ends */
	assert_true((p.i.child[0] && !p.i.child[0]->gone) && (p.r.child[0] && !p.r.child[0]->gone));
	assert_int_equal(p.i.child[0]->spi_i, p.r.child[0]->spi_i);
	assert_int_equal(p.i.child[0]->spi_r, p.r.child[0]->spi_r);
	assert_int_equal(p.i.child[0]->encr_len, 20);
	assert_memory_equal(p.i.child[0]->ei, p.r.child[0]->ei, 20);
	assert_memory_equal(p.i.child[0]->er, p.r.child[0]->er, 20);
	assert_memory_not_equal(p.i.child[0]->ei, p.i.child[0]->er, 20);
	/* narrowed: the initiator asked 10.1/16 <-> 10.2/16, the responder allows 10.1/24 <-> 10.2/24 */
	char buf[64];
	assert_string_equal(bt_ts_str(&p.i.child[0]->ts_i[0], buf, sizeof(buf)), "10.1.0.0/24");
	assert_string_equal(bt_ts_str(&p.i.child[0]->ts_r[0], buf, sizeof(buf)), "10.2.0.0/24");
	/* the IKE_AUTH request again (a retransmission): the very same response */
	uint8_t again[4096];
	size_t la = ike_process(&p.r, p.m3, p.l3, again, sizeof(again));
	assert_int_equal(la, p.l4);
	assert_memory_equal(again, p.m4, la);
	done(&p);
}

static void test_suites(void **state)
{
	static const struct {
		struct ike_sk_suite ike;
		uint16_t prf, dh;
		struct ike_sk_suite esp;
	} v[] = {
		{{IKE_ENCR_AES_GCM_16, 256, 0}, IKE_PRF_HMAC_SHA2_384, IKE_DH_ECP384, {IKE_ENCR_AES_CBC, 256, IKE_INTEG_HMAC_SHA2_512_256}},
		{{IKE_ENCR_CHACHA20_POLY1305, 0, 0}, IKE_PRF_HMAC_SHA2_512, IKE_DH_ECP256, {IKE_ENCR_CHACHA20_POLY1305, 0, 0}},
		{{IKE_ENCR_AES_CBC, 256, IKE_INTEG_HMAC_SHA2_384_192}, IKE_PRF_HMAC_SHA2_256, IKE_DH_MODP2048, {IKE_ENCR_AES_GCM_16, 256, 0}},
	};
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		static struct pair p;
		struct ike_conf ci, cr;
		conf(&ci, true), conf(&cr, false);
		ci.ike = cr.ike = v[k].ike;
		ci.prf = cr.prf = v[k].prf;
		ci.dh = cr.dh = v[k].dh;
		ci.esp = cr.esp = v[k].esp;
		run(&p, &ci, &cr);
		assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
		assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
		assert_memory_equal(p.i.child[0]->ei, p.r.child[0]->ei, p.i.child[0]->encr_len);
		assert_memory_equal(p.i.child[0]->ar, p.r.child[0]->ar, p.i.child[0]->integ_len);
		done(&p);
	}
}

static void test_failures(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;

	conf(&ci, true), conf(&cr, false);
	memcpy(cr.psk, "another secret!", 15);
	run(&p, &ci, &cr);
	assert_int_equal(p.r.error, IKE_N_AUTHENTICATION_FAILED);
	assert_int_equal(p.i.error, IKE_N_AUTHENTICATION_FAILED); /* told in the encrypted response */
	assert_false((p.i.child[0] && !p.i.child[0]->gone) || (p.r.child[0] && !p.r.child[0]->gone));
	done(&p);

	conf(&ci, true), conf(&cr, false);
	cr.peer_id[3] = 9; /* expects someone else */
	run(&p, &ci, &cr);
	assert_int_equal(p.r.error, IKE_N_AUTHENTICATION_FAILED);
	done(&p);

	conf(&ci, true), conf(&cr, false);
	cr.ike.encr_bits = 256;
	run(&p, &ci, &cr);
	assert_int_equal(p.r.error, IKE_N_NO_PROPOSAL_CHOSEN);
	assert_int_equal(p.i.error, IKE_N_NO_PROPOSAL_CHOSEN);
	done(&p);

	conf(&ci, true), conf(&cr, false);
	cr.dh = IKE_DH_ECP256;
	cr.ike = ci.ike;
	run(&p, &ci, &cr);
	/* the initiator offered one group only, and not the responder's: no proposal can be chosen
	 * (INVALID_KE_PAYLOAD is for a group that was offered but not sent in KE) */
	assert_int_equal(p.r.error, IKE_N_NO_PROPOSAL_CHOSEN);
	assert_int_equal(p.i.error, IKE_N_NO_PROPOSAL_CHOSEN);
	done(&p);

	conf(&ci, true), conf(&cr, false);
	cr.esp.encr = IKE_ENCR_AES_CBC, cr.esp.integ = IKE_INTEG_HMAC_SHA2_256_128;
	run(&p, &ci, &cr);
	assert_int_equal(p.i.error, IKE_N_NO_PROPOSAL_CHOSEN);
	done(&p);

	conf(&ci, true), conf(&cr, false);
	char err[64];
	bt_ts_parse("10.9.0.0/24", &cr.local_ts[0], err, sizeof(err));
	run(&p, &ci, &cr);
	assert_int_equal(p.i.error, IKE_N_TS_UNACCEPTABLE);
	done(&p);
}

static void test_forgery(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	uint64_t si = 1, sr = 2;
	struct ike_rng ri = {xorshift, &si}, rr = {xorshift, &sr};
	ike_sa_init(&p.i, &ci, true, &ri);
	ike_sa_init(&p.r, &cr, false, &rr);
	p.l1 = ike_start(&p.i, p.m1, sizeof(p.m1));
	p.l2 = ike_process(&p.r, p.m1, p.l1, p.m2, sizeof(p.m2));
	p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
	/* every bit flipped in turn in the IKE_AUTH request: nothing answers, nothing changes */
	for (size_t i = IKE_HDR_LEN; i < p.l3; i += 7) {
		p.m3[i] ^= 0x10;
		assert_int_equal(ike_process(&p.r, p.m3, p.l3, p.m4, sizeof(p.m4)), 0);
		assert_int_equal(p.r.state, IKE_ST_INIT_DONE);
		p.m3[i] ^= 0x10;
	}
	/* truncations */
	for (size_t l = 0; l < p.l3; l++)
		assert_int_equal(ike_process(&p.r, p.m3, l, p.m4, sizeof(p.m4)), 0);
	assert_true(ike_process(&p.r, p.m3, p.l3, p.m4, sizeof(p.m4)) > 0);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	done(&p);
}

static void test_strongswan_request(void **state)
{
	/* strongSwan 5.9.8's own IKE_SA_INIT request (aes128-sha256-ecp256): our responder accepts it */
	static uint8_t req[2048], resp[4096];
	size_t len = testdata_load("strongswan-ike-sa-init-request.bin", req, sizeof(req));
	struct ike_conf cr;
	conf(&cr, false);
	cr.dh = IKE_DH_ECP256;
	uint64_t s = 5;
	struct ike_rng rr = {xorshift, &s};
	static struct ike_sa r;
	ike_sa_init(&r, &cr, false, &rr);
	struct bt_addr me, peer;
	bt_addr_parse("172.16.0.2", &me);
	bt_addr_parse("172.16.0.1", &peer);
	ike_sa_set_endpoints(&r, &me, 500, &peer, 500);
	size_t rl = ike_process(&r, req, len, resp, sizeof(resp));
	assert_true(rl > 0);
	assert_int_equal(r.state, IKE_ST_INIT_DONE);
	/* its NAT_DETECTION_DESTINATION_IP is the true hash of our address: we are not behind a NAT;
	 * its source hash is faked on purpose (the connection has encap = yes, which makes strongSwan
	 * pretend to be behind a NAT so that ESP goes into UDP): we see the peer as NATed */
	assert_false(r.nat_local);
	assert_true(r.nat_remote);
	struct ike_hdr h;
	static struct ike_chain c;
	struct ike_sa_payload sa;
	assert_int_equal(ike_parse(resp, rl, &h, &c), IKE_PERR_OK);
	assert_int_equal(h.flags, IKE_FLAG_RESPONSE);
	assert_int_equal(ike_parse_sa(ike_find(&c, IKE_PL_SA, 0), &sa), IKE_PERR_OK);
	assert_int_equal(sa.prop[0].n_tr, 4);
	assert_non_null(ike_find(&c, IKE_PL_KE, 0));
	ike_sa_free(&r);
}

static void test_nat_detection(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	struct bt_addr a, b, c;
	uint64_t si = 3, sr = 4;
	struct ike_rng ri = {xorshift, &si}, rr = {xorshift, &sr};
	for (int natted = 0; natted < 2; natted++) {
		conf(&ci, true), conf(&cr, false);
		ike_sa_init(&p.i, &ci, true, &ri);
		ike_sa_init(&p.r, &cr, false, &rr);
		bt_addr_parse("10.0.0.5", &a);     /* the initiator's own address */
		bt_addr_parse("203.0.113.1", &b);  /* the responder */
		bt_addr_parse("198.51.100.7", &c); /* the initiator as the responder sees it behind a NAT */
		ike_sa_set_endpoints(&p.i, &a, 500, &b, 500);
		if (natted)
			ike_sa_set_endpoints(&p.r, &b, 500, &c, 4501);
		else
			ike_sa_set_endpoints(&p.r, &b, 500, &a, 500);
		p.l1 = ike_start(&p.i, p.m1, sizeof(p.m1));
		p.l2 = ike_process(&p.r, p.m1, p.l1, p.m2, sizeof(p.m2));
		p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
		assert_true(p.l3 > 0);
		assert_int_equal(p.r.nat_remote, natted);
		assert_int_equal(p.i.nat_local, natted);
		assert_false(p.r.nat_local);
		assert_false(p.i.nat_remote);
		done(&p);
	}
}

static void test_informational(void **state)
{
	static struct pair p;
	static uint8_t req[4096], resp[4096], again[4096];
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	run(&p, &ci, &cr);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);

	/* liveness check from the initiator (its message ID 2), then one from the responder (its 0) */
	size_t lq = ike_informational(&p.i, IKE_INFO_DPD, req, sizeof(req));
	assert_true(lq > 0);
	assert_int_equal(ike_informational(&p.i, IKE_INFO_DPD, again, sizeof(again)), 0); /* window of one */
	size_t lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_int_equal(ike_process(&p.r, req, lq, again, sizeof(again)), lr); /* retransmission: cached */
	assert_memory_equal(again, resp, lr);
	assert_int_equal(ike_process(&p.i, resp, lr, again, sizeof(again)), 0);
	assert_int_equal(p.i.peer_answers, 1);
	assert_int_equal(p.i.next_send_id, 3);
	assert_false(p.i.info_pending);
	lq = ike_informational(&p.r, IKE_INFO_DPD, req, sizeof(req));
	lr = ike_process(&p.i, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	ike_process(&p.r, resp, lr, again, sizeof(again));
	assert_int_equal(p.r.peer_answers, 1);
	assert_int_equal(p.r.next_send_id, 1);

	/* a forged liveness check: no answer, no state change */
	lq = ike_informational(&p.i, IKE_INFO_DPD, req, sizeof(req));
	req[lq - 3] ^= 1;
	assert_int_equal(ike_process(&p.r, req, lq, resp, sizeof(resp)), 0);
	req[lq - 3] ^= 1;
	lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	ike_process(&p.i, resp, lr, again, sizeof(again));

	/* the initiator deletes the Child SA: both sides drop it, the IKE SA stays */
	assert_int_equal(ike_informational(&p.i, IKE_INFO_DELETE_CHILD, req, sizeof(req)), 0);
	uint32_t spi = p.i.child[0]->spi_i;
	assert_int_equal(ike_delete_child(&p.i, &p.i.child[0]->spi_r, 1, req, sizeof(req)), 0); /* not ours */
	lq = ike_delete_child(&p.i, &spi, 1, req, sizeof(req));
	lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	assert_false((p.r.child[0] && !p.r.child[0]->gone));
	static struct ike_chain c, in;
	struct ike_hdr h;
	assert_int_equal(ike_parse(resp, lr, &h, &c), IKE_PERR_OK);
	ike_process(&p.i, resp, lr, again, sizeof(again));
	assert_false((p.i.child[0] && !p.i.child[0]->gone));
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	ike_child_reap(&p.i), ike_child_reap(&p.r);
	assert_null(p.i.child[0]);
	assert_int_equal(ike_delete_child(&p.i, &spi, 1, req, sizeof(req)), 0);

	/* the responder deletes the IKE SA */
	lq = ike_informational(&p.r, IKE_INFO_DELETE_IKE, req, sizeof(req));
	lr = ike_process(&p.i, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_string_equal(ike_state_name(p.i.state), "deleted");
	ike_process(&p.r, resp, lr, again, sizeof(again));
	assert_int_equal(p.r.state, IKE_ST_DELETED);
	(void)in;
	done(&p);
}

static void props(struct ike_conf *c, const char *ike, const char *esp)
{
	char err[128], buf[256], *save = NULL;
	c->n_ike_props = c->n_esp_props = 0;
	snprintf(buf, sizeof(buf), "%s", ike);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		assert_int_equal(ike_prop_parse(t, IKE_PROTO_IKE, &c->ike_props[c->n_ike_props++], err, sizeof(err)), 0);
	snprintf(buf, sizeof(buf), "%s", esp);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		assert_int_equal(ike_prop_parse(t, IKE_PROTO_ESP, &c->esp_props[c->n_esp_props++], err, sizeof(err)), 0);
}

/* Several proposals each side, several algorithms per type: the responder takes the first of the
 * initiator's proposals it accepts, one transform of each type, in the initiator's order. */
static void test_proposal_choice(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	char name[96];
	conf(&ci, true), conf(&cr, false);
	props(&ci, "aes256-sha384-x25519,aes128gcm16-aes256gcm16-prfsha256-prfsha512-x25519-ecp256",
	      "aes256-sha256,chacha20poly1305-aes256gcm16");
	props(&cr, "aes256gcm16-prfsha512-x25519", "aes256gcm16-chacha20poly1305-esn-noesn");
	run(&p, &ci, &cr);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	ike_prop_name(&p.i.ike_chosen, name, sizeof(name));
	assert_string_equal(name, "aes256gcm16-prfsha512-curve25519");
	ike_prop_name(&p.r.ike_chosen, name, sizeof(name));
	assert_string_equal(name, "aes256gcm16-prfsha512-curve25519");
	ike_prop_name(&p.i.child[0]->esp, name, sizeof(name));
	assert_string_equal(name, "chacha20poly1305"); /* the initiator's order wins */
	assert_int_equal(p.i.child[0]->encr_len, 36);
	assert_memory_equal(p.i.child[0]->ei, p.r.child[0]->ei, 36);
	done(&p);
	/* nothing in common */
	props(&cr, "aes128-sha1-modp2048", "aes128gcm16");
	run(&p, &ci, &cr);
	assert_int_equal(p.r.error, IKE_N_NO_PROPOSAL_CHOSEN);
	assert_int_equal(p.i.error, IKE_N_NO_PROPOSAL_CHOSEN);
	done(&p);
}

/* The initiator guesses x25519, the responder wants ecp256: INVALID_KE_PAYLOAD names the group,
 * the initiator starts over with it (same SPI) and the SA comes up. A group we never offered is
 * not taken up. */
static void test_invalid_ke_retry(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	props(&ci, "aes128gcm16-prfsha256-x25519-ecp256", "aes128gcm16");
	props(&cr, "aes128gcm16-prfsha256-ecp256", "aes128gcm16");
	p.si = 0x1234567, p.sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p.si}, rr = {xorshift, &p.sr};
	ike_sa_init(&p.i, &ci, true, &ri);
	p.l1 = ike_start(&p.i, p.m1, sizeof(p.m1));
	uint64_t spi = p.i.spi_i;
	/* a fresh responder per request: it keeps no state for a refused IKE_SA_INIT */
	ike_sa_init(&p.r, &cr, false, &rr);
	p.l2 = ike_process(&p.r, p.m1, p.l1, p.m2, sizeof(p.m2));
	assert_int_equal(p.r.error, IKE_N_INVALID_KE_PAYLOAD);
	ike_sa_free(&p.r);
	p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
	assert_true(p.l3 > 0);
	assert_int_equal(p.i.state, IKE_ST_INIT_SENT);
	assert_int_equal(p.i.spi_i, spi);
	assert_int_equal(p.i.group, IKE_DH_ECP256);
	assert_int_equal(p.i.restarts, 1);
	ike_sa_init(&p.r, &cr, false, &rr);
	p.l2 = ike_process(&p.r, p.m3, p.l3, p.m2, sizeof(p.m2));
	p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
	p.l4 = ike_process(&p.r, p.m3, p.l3, p.m4, sizeof(p.m4));
	ike_process(&p.i, p.m4, p.l4, p.m1, sizeof(p.m1));
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	done(&p);
	/* a group outside our proposals: the SA fails rather than use it */
	props(&cr, "aes128gcm16-prfsha256-modp2048", "aes128gcm16");
	ike_sa_init(&p.i, &ci, true, &ri);
	ike_sa_init(&p.r, &cr, false, &rr);
	p.l1 = ike_start(&p.i, p.m1, sizeof(p.m1));
	p.l2 = ike_process(&p.r, p.m1, p.l1, p.m2, sizeof(p.m2));
	assert_int_equal(p.r.error, IKE_N_NO_PROPOSAL_CHOSEN);
	done(&p);
}

/* A responder under load answers with a COOKIE; the initiator repeats IKE_SA_INIT with the cookie
 * as its first payload, and retransmitted IKE_SA_INIT requests get the identical response. */
static void test_cookie_and_init_retransmit(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	p.si = 0x1234567, p.sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p.si}, rr = {xorshift, &p.sr};
	ike_sa_init(&p.i, &ci, true, &ri);
	p.l1 = ike_start(&p.i, p.m1, sizeof(p.m1));
	struct ike_hdr h;
	struct ike_chain c;
	assert_int_equal(ike_parse(p.m1, p.l1, &h, &c), IKE_PERR_OK);
	static const uint8_t cookie[] = {0, 0, 0, 1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
	struct ike_builder b;
	struct ike_hdr rh = {.spi_i = h.spi_i, .exchange = IKE_SA_INIT, .flags = IKE_FLAG_RESPONSE};
	ike_build_begin(&b, p.m2, sizeof(p.m2), &rh);
	ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE, cookie, sizeof(cookie));
	p.l2 = ike_build_end(&b);
	uint8_t ni[64];
	memcpy(ni, p.i.ni, sizeof(ni));
	p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
	assert_true(p.l3 > 0);
	/* RFC 7296 2.6: the same request with the cookie in front: the nonce (the cookie's input) kept */
	assert_memory_equal(p.i.ni, ni, sizeof(ni));
	assert_int_equal(p.l3, p.l1 + 8 + sizeof(cookie));
	assert_int_equal(ike_parse(p.m3, p.l3, &h, &c), IKE_PERR_OK);
	struct ike_notify_payload n;
	assert_int_equal(c.pl[0].type, IKE_PL_NOTIFY);
	assert_int_equal(ike_parse_notify(&c.pl[0], &n), IKE_PERR_OK);
	assert_int_equal(n.type, IKE_N_COOKIE);
	assert_memory_equal(n.data, cookie, sizeof(cookie));
	/* the responder answers the cookie-carrying request; the same request again gets the same bytes */
	ike_sa_init(&p.r, &cr, false, &rr);
	p.l2 = ike_process(&p.r, p.m3, p.l3, p.m2, sizeof(p.m2));
	assert_true(p.l2 > 0);
	uint8_t again[4096];
	assert_int_equal(ike_process(&p.r, p.m3, p.l3, again, sizeof(again)), p.l2);
	assert_memory_equal(again, p.m2, p.l2);
	p.l3 = ike_process(&p.i, p.m2, p.l2, p.m3, sizeof(p.m3));
	p.l4 = ike_process(&p.r, p.m3, p.l3, p.m4, sizeof(p.m4));
	ike_process(&p.i, p.m4, p.l4, p.m1, sizeof(p.m1));
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	/* established: the IKE_SA_INIT copies are gone */
	assert_null(p.i.init_i);
	assert_null(p.r.init_r);
	done(&p);
}

/* One side's CREATE_CHILD_SA rekey: both ends end up with the same new child (new SPIs, new keys
 * that agree and differ from the old ones), the old one is kept until its delete completes. */
static void rekey_slot(struct pair *p, bool by_initiator, int k)
{
	struct ike_sa *a = by_initiator ? &p->i : &p->r, *b = by_initiator ? &p->r : &p->i;
	uint8_t req[4096], resp[4096];
	struct ike_child *ca = a->child[k], *cb = b->child[k];
	uint32_t old_in_i = ca->spi_i, old_in_r = ca->spi_r;
	uint8_t old_key[36];
	memcpy(old_key, ca->ei, sizeof(old_key));
	size_t lq = ike_rekey_child(a, ca, req, sizeof(req));
	assert_true(lq > 0);
	assert_int_equal(ike_rekey_child(a, ca, resp, sizeof(resp)), 0); /* one at a time */
	assert_int_equal(ike_informational(a, IKE_INFO_DPD, resp, sizeof(resp)), 0);
	size_t lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_true(cb->next_ready && !cb->next_ours);
	/* a retransmitted request gets the same response and changes nothing */
	uint8_t again[4096];
	assert_int_equal(ike_process(b, req, lq, again, sizeof(again)), lr);
	assert_memory_equal(again, resp, lr);
	assert_int_equal(ike_process(a, resp, lr, again, sizeof(again)), 0);
	assert_true(ca->next_ready && ca->next_ours);
	assert_int_equal(a->ccs_error, 0);
	assert_int_equal(ca->next->spi_i, cb->next->spi_i);
	assert_int_equal(ca->next->spi_r, cb->next->spi_r);
	assert_int_not_equal(ca->next->spi_i, old_in_i);
	assert_int_not_equal(ca->next->spi_r, old_in_r);
	assert_int_equal(ca->next->encr_len, ca->encr_len);
	assert_memory_equal(ca->next->ei, cb->next->ei, ca->next->encr_len);
	assert_memory_equal(ca->next->er, cb->next->er, ca->next->encr_len);
	assert_memory_not_equal(ca->next->ei, old_key, ca->next->encr_len);
	assert_int_equal(ca->next->n_ts_i, cb->next->n_ts_i);
	assert_memory_equal(ca->next->ts_i, cb->next->ts_i, ca->next->n_ts_i * sizeof(struct bt_ts));
	ike_child_promote(a, ca);
	ike_child_promote(b, cb);
	ca = a->child[k], cb = b->child[k];
	assert_true(ca->old_present && cb->old_present);
	/* the side that rekeyed deletes the old child */
	uint32_t old_spi = by_initiator == p->i.initiator ? old_in_i : old_in_r;
	lq = ike_delete_child(a, &old_spi, 1, req, sizeof(req));
	assert_true(lq > 0);
	lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_true(cb->old_deleted && !cb->old_present);
	assert_int_equal(ike_process(a, resp, lr, again, sizeof(again)), 0);
	assert_true(ca->old_deleted && !ca->old_present);
	assert_true(!ca->gone && !cb->gone);
	ca->old_deleted = cb->old_deleted = false;
}

static void rekey_from(struct pair *p, bool by_initiator) { rekey_slot(p, by_initiator, 0); }

static void test_child_rekey(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	run(&p, &ci, &cr);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	rekey_from(&p, true);
	rekey_from(&p, false); /* the original responder rekeys too */
	rekey_from(&p, true);
	assert_int_equal(p.i.child_rekeys, 3);
	assert_int_equal(p.r.child_rekeys, 3);
	/* message IDs moved on both ways; a liveness check still works */
	uint8_t req[512], resp[512];
	size_t lq = ike_informational(&p.i, IKE_INFO_DPD, req, sizeof(req));
	size_t lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	ike_process(&p.i, resp, lr, req, sizeof(req));
	assert_false(p.i.info_pending);
	done(&p);
	/* with PFS: both ESP proposals name x25519 */
	conf(&ci, true), conf(&cr, false);
	props(&ci, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519");
	props(&cr, "aes128gcm16-prfsha256-x25519", "aes256gcm16-x25519,aes128gcm16-x25519");
	run(&p, &ci, &cr);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	rekey_from(&p, true);
	done(&p);
}

/* Randomness that also records every 32-byte draw (the nonces), in order. */
struct rec_rng {
	uint64_t s;
	uint8_t n[4][32];
	unsigned k;
};

static int rec_fill(void *arg, uint8_t *buf, size_t len)
{
	struct rec_rng *r = arg;
	xorshift(&r->s, buf, len);
	if (len == 32 && r->k < 4)
		memcpy(r->n[r->k++], buf, 32);
	return 0;
}

/* RFC 7296 2.8.1 order: octet by octet. */
static bool lower(const uint8_t *a, const uint8_t *b) { return memcmp(a, b, 32) < 0; }

/* Both sides rekey the same child at once: both exchanges complete, the SA made by the exchange
 * with the lowest of the four nonces is deleted by the side that started it, and afterwards one new
 * child survives on both ends with the same SPIs and keys. Run with several seeds, so that each
 * side loses at least once. */
static void test_rekey_collision(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	uint8_t qi[4096], qr[4096], ri[4096], rr[4096], x[4096];
	unsigned lost[2] = {0, 0};
	for (uint64_t seed = 1; seed <= 8; seed++) {
		conf(&ci, true), conf(&cr, false);
		run(&p, &ci, &cr);
		struct rec_rng gi = {.s = seed * 7919}, gr = {.s = seed * 104729};
		p.i.rng = (struct ike_rng){rec_fill, &gi}, p.r.rng = (struct ike_rng){rec_fill, &gr};
		uint32_t old_i = p.i.child[0]->spi_i, old_r = p.i.child[0]->spi_r;
		size_t li = ike_rekey_child(&p.i, p.i.child[0], qi, sizeof(qi));
		size_t lr = ike_rekey_child(&p.r, p.r.child[0], qr, sizeof(qr));
		assert_true(li && lr);
		size_t ai = ike_process(&p.r, qi, li, ri, sizeof(ri)), ar = ike_process(&p.i, qr, lr, rr, sizeof(rr));
		assert_true(ai && ar);
		assert_false(p.i.child[0]->next_ready || p.r.child[0]->next_ready); /* undecided yet */
		assert_int_equal(ike_process(&p.i, ri, ai, x, sizeof(x)), 0);
		assert_int_equal(ike_process(&p.r, rr, ar, x, sizeof(x)), 0);
		assert_int_equal(p.i.ccs_error, 0);
		assert_int_equal(p.r.ccs_error, 0);
		struct ike_child *a = p.i.child[0], *b = p.r.child[0];
		assert_true(a->next_ready && b->next_ready && a->red && b->red);
		assert_int_equal(p.i.rekey_collisions, 1);
		/* nonces: each side drew its request's, then its response's */
		bool i_exchange_lowest = false;
		const uint8_t *lo = gi.n[0];
		i_exchange_lowest = true;
		if (lower(gr.n[1], lo))
			lo = gr.n[1];
		if (lower(gr.n[0], lo))
			lo = gr.n[0], i_exchange_lowest = false;
		if (lower(gi.n[1], lo))
			lo = gi.n[1], i_exchange_lowest = false;
		assert_int_equal(a->red_delete, i_exchange_lowest);
		assert_int_equal(b->red_delete, !i_exchange_lowest);
		assert_int_equal(a->next_ours, !i_exchange_lowest);
		assert_int_equal(b->next_ours, i_exchange_lowest);
		lost[i_exchange_lowest]++;
		/* the same survivor on both sides, the redundant SAs paired too */
		assert_int_equal(a->next->spi_i, b->next->spi_i);
		assert_int_equal(a->next->spi_r, b->next->spi_r);
		assert_memory_equal(a->next->ei, b->next->ei, a->next->encr_len);
		assert_memory_equal(a->next->er, b->next->er, a->next->encr_len);
		assert_int_equal(a->red->spi_i, b->red->spi_i);
		assert_int_equal(a->red->spi_r, b->red->spi_r);
		assert_int_not_equal(a->next->spi_i, a->red->spi_i);
		ike_child_promote(&p.i, a), ike_child_promote(&p.r, b);
		a = p.i.child[0], b = p.r.child[0];
		/* the loser deletes its redundant SA, the winner the old child */
		struct ike_sa *lz = i_exchange_lowest ? &p.i : &p.r, *w = i_exchange_lowest ? &p.r : &p.i;
		struct ike_child *lc = lz->child[0], *wc = w->child[0];
		uint32_t red = lz->initiator ? lc->red->spi_i : lc->red->spi_r;
		uint32_t old = w->initiator ? old_i : old_r;
		size_t l1 = ike_delete_child(lz, &red, 1, qi, sizeof(qi)), l2 = ike_delete_child(w, &old, 1, qr, sizeof(qr));
		assert_true(l1 && l2);
		ai = ike_process(w, qi, l1, ri, sizeof(ri));
		ar = ike_process(lz, qr, l2, rr, sizeof(rr));
		assert_true(ai && ar);
		ike_process(lz, ri, ai, x, sizeof(x));
		ike_process(w, rr, ar, x, sizeof(x));
		assert_true(!lc->red && !wc->red && !lc->old_present && !wc->old_present);
		assert_true(lc->old_deleted && wc->old_deleted);
		assert_false(a->gone || b->gone);
		assert_int_equal(a->spi_i, b->spi_i);
		assert_int_equal(a->spi_r, b->spi_r);
		assert_memory_equal(a->ei, b->ei, a->encr_len);
		assert_memory_equal(a->ar, b->ar, a->integ_len);
		assert_true(a->spi_i != old_i && a->spi_r != old_r);
		assert_null(p.i.child[1]);
		assert_null(p.r.child[1]);
		a->old_deleted = b->old_deleted = false;
		rekey_from(&p, false); /* and it rekeys again */
		done(&p);
	}
	assert_true(lost[0] && lost[1]);
}

/* Both sides rekey the IKE SA at once (RFC 7296 2.8.2): both exchanges complete, the SA made by
 * the exchange with the lowest nonce is redundant and deleted by the side that made it, the other
 * one's initiator deletes the old SA, and both ends go on with the same new IKE SA. */
static void test_ike_rekey_collision(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	uint8_t qi[4096], qr[4096], ri[4096], rr[4096], x[4096];
	unsigned lost[2] = {0, 0};
	for (uint64_t seed = 1; seed <= 8; seed++) {
		conf(&ci, true), conf(&cr, false);
		run(&p, &ci, &cr);
		struct rec_rng gi = {.s = seed * 31337}, gr = {.s = seed * 65537};
		p.i.rng = (struct ike_rng){rec_fill, &gi}, p.r.rng = (struct ike_rng){rec_fill, &gr};
		uint64_t old_i = p.i.spi_i, old_r = p.i.spi_r;
		uint32_t child = p.i.child[0]->spi_i;
		size_t li = ike_rekey_ike(&p.i, qi, sizeof(qi)), lr = ike_rekey_ike(&p.r, qr, sizeof(qr));
		assert_true(li && lr);
		size_t ai = ike_process(&p.r, qi, li, ri, sizeof(ri)), ar = ike_process(&p.i, qr, lr, rr, sizeof(rr));
		assert_true(ai && ar);
		assert_false(p.i.ike_rekeyed || p.r.ike_rekeyed); /* undecided yet */
		ike_process(&p.i, ri, ai, x, sizeof(x));
		ike_process(&p.r, rr, ar, x, sizeof(x));
		assert_int_equal(p.i.ccs_error, 0);
		assert_int_equal(p.r.ccs_error, 0);
		assert_true(p.i.ike_rekeyed && p.r.ike_rekeyed);
		assert_int_equal(p.i.rekey_collisions, 1);
		bool i_lowest = true; /* does the exchange the initiator started hold the lowest nonce? */
		const uint8_t *lo = gi.n[0];
		if (lower(gr.n[1], lo))
			lo = gr.n[1];
		if (lower(gr.n[0], lo))
			lo = gr.n[0], i_lowest = false;
		if (lower(gi.n[1], lo))
			i_lowest = false;
		lost[i_lowest]++;
		assert_int_equal(p.i.red_ike_ours, i_lowest);
		assert_int_equal(p.r.red_ike_ours, !i_lowest);
		/* the same new SA on both ends; its initiator started the surviving exchange */
		assert_int_equal(p.i.spi_i, p.r.spi_i);
		assert_int_equal(p.i.spi_r, p.r.spi_r);
		assert_true(p.i.spi_i != old_i && p.i.spi_r != old_r);
		assert_memory_equal(p.i.keys.sk_d, p.r.keys.sk_d, 32);
		assert_memory_equal(p.i.keys.sk_ei, p.r.keys.sk_ei, p.i.keys.encr_len);
		assert_int_equal(p.i.initiator, !i_lowest);
		assert_int_equal(p.r.initiator, i_lowest);
		assert_true(p.i.red_ike && p.r.red_ike);
		assert_int_equal(p.i.red_ike->spi_i, p.r.red_ike->spi_i);
		assert_int_equal(p.i.red_ike->spi_r, p.r.red_ike->spi_r);
		assert_true(p.i.red_ike->spi_i != p.i.spi_i);
		/* the loser deletes the redundant SA, the survivor's initiator the old one */
		struct ike_sa *lz = i_lowest ? &p.i : &p.r, *w = i_lowest ? &p.r : &p.i;
		assert_int_equal(ike_delete_red_ike(w, qi, sizeof(qi)), 0);
		size_t l1 = ike_delete_red_ike(lz, qi, sizeof(qi)), l2 = ike_delete_old_ike(w, qr, sizeof(qr));
		assert_true(l1 && l2);
		ai = ike_process(w, qi, l1, ri, sizeof(ri));
		ar = ike_process(lz, qr, l2, rr, sizeof(rr));
		assert_true(ai && ar);
		assert_true(w->red_ike_gone && lz->old_ike_gone);
		ike_process(lz, ri, ai, x, sizeof(x));
		ike_process(w, rr, ar, x, sizeof(x));
		assert_true(lz->red_ike_gone && w->old_ike_gone);
		assert_false(p.i.red_ike || p.r.red_ike || p.i.old_ike.present || p.r.old_ike.present);
		assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
		assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
		/* the child lives on, and the new SA carries exchanges: a liveness check, a child rekey */
		assert_int_equal(p.i.initiator ? p.i.child[0]->spi_i : p.i.child[0]->spi_r, child);
		li = ike_informational(&p.r, IKE_INFO_DPD, qi, sizeof(qi));
		ai = ike_process(&p.i, qi, li, ri, sizeof(ri));
		assert_true(ai > 0);
		ike_process(&p.r, ri, ai, x, sizeof(x));
		assert_false(p.r.info_pending);
		p.i.ike_rekeyed = p.r.ike_rekeyed = p.i.old_ike_gone = p.r.old_ike_gone = false;
		p.i.red_ike_gone = p.r.red_ike_gone = false;
		rekey_from(&p, true);
		done(&p);
	}
	assert_true(lost[0] && lost[1]);
}

/* A Child SA rekey that meets an IKE SA rekey is not a collision: RFC 7296 2.25 TEMPORARY_FAILURE
 * for both, nothing changes, and a later rekey works. A rekey naming an unknown SPI gets
 * CHILD_SA_NOT_FOUND. */
static void test_rekey_meets_ike_rekey(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	uint8_t qi[4096], qr[4096], ri[4096], rr[4096], x[4096];
	conf(&ci, true), conf(&cr, false);
	run(&p, &ci, &cr);
	size_t li = ike_rekey_ike(&p.i, qi, sizeof(qi)), lr = ike_rekey_child(&p.r, p.r.child[0], qr, sizeof(qr));
	assert_true(li && lr);
	size_t ai = ike_process(&p.r, qi, li, ri, sizeof(ri)), ar = ike_process(&p.i, qr, lr, rr, sizeof(rr));
	assert_true(ai && ar);
	ike_process(&p.i, ri, ai, x, sizeof(x));
	ike_process(&p.r, rr, ar, x, sizeof(x));
	assert_int_equal(p.i.ccs_error, IKE_N_TEMPORARY_FAILURE);
	assert_int_equal(p.r.ccs_error, IKE_N_TEMPORARY_FAILURE);
	assert_false(p.i.child[0]->next_ready || p.r.child[0]->next_ready || p.i.ccs_pending || p.r.ccs_pending);
	assert_false(p.i.ike_rekeyed || p.r.ike_rekeyed);
	rekey_from(&p, false);
	/* REKEY_SA naming an SPI that is no child of ours */
	p.r.child[0]->spi_r ^= 1;
	lr = ike_rekey_child(&p.r, p.r.child[0], qr, sizeof(qr));
	p.r.child[0]->spi_r ^= 1;
	ar = ike_process(&p.i, qr, lr, rr, sizeof(rr));
	ike_process(&p.r, rr, ar, x, sizeof(x));
	assert_int_equal(p.r.ccs_error, IKE_N_CHILD_SA_NOT_FOUND);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	rekey_from(&p, true);
	done(&p);
}

static void ike_rekey_from(struct pair *p, bool by_initiator);

/* One CREATE_CHILD_SA exchange from a to b; returns b's response length. */
static size_t ccs(struct ike_sa *a, struct ike_sa *b, size_t lq, uint8_t *req)
{
	uint8_t resp[4096], x[4096];
	assert_true(lq > 0);
	size_t lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_int_equal(ike_process(a, resp, lr, x, sizeof(x)), 0);
	assert_false(a->ccs_pending);
	return lr;
}

static void same_child(const struct ike_child *a, const struct ike_child *b)
{
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->spi_i, b->spi_i);
	assert_int_equal(a->spi_r, b->spi_r);
	assert_int_equal(a->encr_len, b->encr_len);
	assert_memory_equal(a->ei, b->ei, a->encr_len);
	assert_memory_equal(a->er, b->er, a->encr_len);
	assert_int_equal(a->n_ts_i, b->n_ts_i);
	assert_int_equal(a->n_ts_r, b->n_ts_r);
	assert_memory_equal(a->ts_i, b->ts_i, a->n_ts_i * sizeof(struct bt_ts));
	assert_memory_equal(a->ts_r, b->ts_r, a->n_ts_r * sizeof(struct bt_ts));
}

/* Several Child SAs on one IKE SA (RFC 7296 1.3.1): new ones from either side, made for the
 * configured child whose selectors fit; one that fits none gets TS_UNACCEPTABLE and leaves the IKE
 * SA and the other children as they were; a second child rekeys on its own; one DELETE closes two. */
static void test_children(void **state)
{
	static struct pair p;
	static struct ike_conf ci, cr, ci2, cr2;
	uint8_t req[4096], x[4096];
	char buf[128], err[64];
	conf(&ci, true), conf(&cr, false), conf(&ci2, true), conf(&cr2, false);
	bt_ts_parse("10.3.0.0/24", &ci2.local_ts[0], err, sizeof(err));
	bt_ts_parse("10.4.0.0/16[tcp/443]", &ci2.remote_ts[0], err, sizeof(err));
	bt_ts_parse("10.4.0.0/24", &cr2.local_ts[0], err, sizeof(err));
	bt_ts_parse("10.3.0.0/16", &cr2.remote_ts[0], err, sizeof(err));
	ike_conf_finish(&ci2), ike_conf_finish(&cr2);
	const struct ike_conf *rconfs[] = {&cr, &cr2}, *iconfs[] = {&ci, &ci2};
	run(&p, &ci, &cr);
	p.r.child_confs = rconfs, p.r.n_child_confs = 2;
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_true(p.i.child[0]->up && p.r.child[0]->up);
	p.i.child[0]->up = p.r.child[0]->up = false;
	struct ike_child c0 = *p.i.child[0];

	/* the initiator asks for the second child: the responder picks cr2 and narrows */
	ccs(&p.i, &p.r, ike_create_child(&p.i, &ci2, req, sizeof(req)), req);
	assert_int_equal(p.i.ccs_error, 0);
	same_child(p.i.child[1], p.r.child[1]);
	assert_true(p.i.child[1]->up && p.r.child[1]->up);
	assert_ptr_equal(p.i.child[1]->conf, &ci2);
	assert_ptr_equal(p.r.child[1]->conf, &cr2);
	assert_string_equal(bt_ts_str(&p.i.child[1]->ts_i[0], buf, sizeof(buf)), "10.3.0.0/24");
	assert_string_equal(bt_ts_str(&p.i.child[1]->ts_r[0], buf, sizeof(buf)), "10.4.0.0/24[tcp/443]");
	assert_int_not_equal(p.i.child[1]->spi_i, p.i.child[0]->spi_i);
	assert_memory_not_equal(p.i.child[1]->ei, p.i.child[0]->ei, p.i.child[0]->encr_len);

	/* the responder asks for one the initiator is not configured for: TS_UNACCEPTABLE */
	ccs(&p.r, &p.i, ike_create_child(&p.r, &cr2, req, sizeof(req)), req);
	assert_int_equal(p.r.ccs_error, IKE_N_TS_UNACCEPTABLE);
	assert_null(p.i.child[2]);
	assert_null(p.r.child[2]);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	same_child(p.i.child[0], &c0);
	same_child(p.i.child[1], p.r.child[1]);
	/* no proposal in common: NO_PROPOSAL_CHOSEN, same result */
	p.i.child_confs = iconfs, p.i.n_child_confs = 2;
	props(&cr2, "aes128gcm16-prfsha256-x25519", "aes256gcm16");
	ccs(&p.r, &p.i, ike_create_child(&p.r, &cr2, req, sizeof(req)), req);
	assert_int_equal(p.r.ccs_error, IKE_N_NO_PROPOSAL_CHOSEN);
	assert_null(p.i.child[2]);
	/* once configured, it works from the responder's side too */
	props(&cr2, "aes128gcm16-prfsha256-x25519", "aes128gcm16");
	ccs(&p.r, &p.i, ike_create_child(&p.r, &cr2, req, sizeof(req)), req);
	assert_int_equal(p.r.ccs_error, 0);
	same_child(p.i.child[2], p.r.child[2]);
	assert_ptr_equal(p.i.child[2]->conf, &ci2);
	assert_string_equal(bt_ts_str(&p.r.child[2]->ts_r[0], buf, sizeof(buf)), "10.4.0.0/24[tcp/443]");

	/* the second child rekeys on its own, from either side; the first does not change */
	rekey_slot(&p, false, 1);
	rekey_slot(&p, true, 1);
	same_child(p.i.child[0], &c0);
	same_child(p.i.child[1], p.r.child[1]);
	assert_int_equal(p.i.child[1]->rekeys, 2);
	assert_int_equal(p.i.child[0]->rekeys, 0);

	/* an IKE SA rekey by the responder flips roles: every child follows */
	ike_rekey_from(&p, false);
	for (int k = 0; k < 3; k++)
		same_child(p.i.child[k], p.r.child[k]);

	/* one DELETE with two SPIs: both go, on both sides; the first child stays */
	uint32_t spis[2] = {p.r.initiator ? p.r.child[1]->spi_i : p.r.child[1]->spi_r,
			    p.r.initiator ? p.r.child[2]->spi_i : p.r.child[2]->spi_r};
	size_t lq = ike_delete_child(&p.r, spis, 2, req, sizeof(req));
	uint8_t resp[4096];
	size_t lr = ike_process(&p.i, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	static struct ike_chain c, in;
	struct ike_hdr h;
	assert_true(p.i.child[1]->gone && p.i.child[2]->gone && !p.i.child[0]->gone);
	assert_int_equal(ike_parse(resp, lr, &h, &c), IKE_PERR_OK);
	ike_process(&p.r, resp, lr, x, sizeof(x));
	assert_true(p.r.child[1]->gone && p.r.child[2]->gone && !p.r.child[0]->gone);
	ike_child_reap(&p.i), ike_child_reap(&p.r);
	assert_null(p.i.child[1]);
	assert_null(p.r.child[2]);
	assert_non_null(p.r.child[0]);
	(void)in;
	rekey_from(&p, true);
	/* the table fills up: NO_ADDITIONAL_SAS from the peer when it is full there */
	for (int k = 1; k < IKE_CHILD_MAX; k++)
		ccs(&p.i, &p.r, ike_create_child(&p.i, &ci2, req, sizeof(req)), req);
	assert_int_equal(ike_create_child(&p.i, &ci2, req, sizeof(req)), 0);
	p.r.child[1]->gone = true; /* (not told to the initiator: its table stays full) */
	ike_child_reap(&p.r);
	ccs(&p.r, &p.i, ike_create_child(&p.r, &cr2, req, sizeof(req)), req);
	assert_int_equal(p.r.ccs_error, IKE_N_NO_ADDITIONAL_SAS);
	assert_null(p.r.child[1]);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	done(&p);
}

/* An IKE SA rekey from one side: new SPIs and keys on both ends, message IDs from 0, the new SA's
 * initiator is the side that rekeyed; the old SA answers only its delete; the child lives on. */
static void ike_rekey_from(struct pair *p, bool by_initiator)
{
	struct ike_sa *a = by_initiator ? &p->i : &p->r, *b = by_initiator ? &p->r : &p->i;
	uint8_t req[4096], resp[4096], x[4096];
	uint64_t old_i = a->spi_i, old_r = a->spi_r;
	uint8_t old_d[32];
	memcpy(old_d, a->keys.sk_d, 32);
	uint32_t child_in = a->initiator ? a->child[0]->spi_i : a->child[0]->spi_r;
	size_t lq = ike_rekey_ike(a, req, sizeof(req));
	assert_true(lq > 0);
	assert_int_equal(ike_rekey_child(a, a->child[0], x, sizeof(x)), 0);
	size_t lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_true(b->ike_rekeyed);
	assert_int_equal(ike_process(a, resp, lr, x, sizeof(x)), 0);
	assert_true(a->ike_rekeyed);
	assert_int_equal(a->ccs_error, 0);
	assert_true(a->initiator);
	assert_false(b->initiator);
	assert_int_equal(a->spi_i, b->spi_i);
	assert_int_equal(a->spi_r, b->spi_r);
	assert_true(a->spi_i != old_i && a->spi_r != old_r);
	assert_memory_equal(a->keys.sk_d, b->keys.sk_d, 32);
	assert_memory_not_equal(a->keys.sk_d, old_d, 32);
	assert_memory_equal(a->keys.sk_ei, b->keys.sk_ei, a->keys.encr_len);
	assert_int_equal(a->next_send_id, 0);
	/* the child's SPIs, seen from each side, did not change */
	assert_int_equal(a->initiator ? a->child[0]->spi_i : a->child[0]->spi_r, child_in);
	/* the new SA works: a liveness check */
	lq = ike_informational(a, IKE_INFO_DPD, req, sizeof(req));
	lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	ike_process(a, resp, lr, x, sizeof(x));
	assert_false(a->info_pending);
	/* the old SA's delete, sent with the old keys, and its answer */
	lq = ike_delete_old_ike(a, req, sizeof(req));
	assert_true(lq > 0);
	lr = ike_process(b, req, lq, resp, sizeof(resp));
	assert_true(lr > 0);
	assert_true(b->old_ike_gone && !b->old_ike.present);
	assert_int_equal(b->state, IKE_ST_ESTABLISHED); /* not the new SA's delete */
	ike_process(a, resp, lr, x, sizeof(x));
	assert_true(a->old_ike_gone && !a->old_ike.present);
	a->ike_rekeyed = b->ike_rekeyed = a->old_ike_gone = b->old_ike_gone = false;
}

static void test_ike_rekey(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true), conf(&cr, false);
	run(&p, &ci, &cr);
	ike_rekey_from(&p, false); /* the responder rekeys: roles flip */
	ike_rekey_from(&p, false);
	ike_rekey_from(&p, true);
	/* a Child SA rekey over the rekeyed IKE SA: KEYMAT from the new SK_d, on both ends */
	uint8_t req[4096], resp[4096], x[4096];
	size_t lq = ike_rekey_child(&p.i, p.i.child[0], req, sizeof(req));
	size_t lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	ike_process(&p.i, resp, lr, x, sizeof(x));
	assert_true(p.i.child[0]->next_ready && p.r.child[0]->next_ready);
	assert_memory_equal(p.i.child[0]->next->ei, p.r.child[0]->next->ei, p.i.child[0]->next->encr_len);
	assert_int_equal(p.i.child[0]->next->spi_i, p.r.child[0]->next->spi_i);
	done(&p);
}

/* Feed a buffer of one or more whole IKE messages (our fragments come back to back) to an engine;
 * returns what the last one produced. */
static size_t deliver(struct ike_sa *sa, const uint8_t *buf, size_t len, uint8_t *out, size_t cap, unsigned *pieces)
{
	size_t r = 0, off = 0;
	*pieces = 0;
	while (off + 28 <= len) {
		size_t l = (size_t)buf[off + 24] << 24 | (size_t)buf[off + 25] << 16 | (size_t)buf[off + 26] << 8 | buf[off + 27];
		assert_true(l >= 28 && off + l <= len);
		size_t x = ike_process(sa, buf + off, l, out, cap);
		if (x)
			r = x;
		off += l, (*pieces)++;
	}
	return r;
}

/* RFC 7383: both offer fragmentation; with a small fragment size IKE_AUTH goes out as several SKF
 * messages each way, is reassembled, and the SA comes up; without the peer's support nothing is
 * fragmented. */
static void test_fragmentation(void **state)
{
	static struct pair p;
	static uint8_t m1[8192], m2[8192], m3[8192], m4[8192];
	struct ike_conf ci, cr;
	unsigned n;
	conf(&ci, true), conf(&cr, false);
	ci.fragmentation = cr.fragmentation = true;
	ci.frag_mtu = cr.frag_mtu = 200;
	p.si = 0x1234567, p.sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p.si}, rr = {xorshift, &p.sr};
	ike_sa_init(&p.i, &ci, true, &ri);
	ike_sa_init(&p.r, &cr, false, &rr);
	size_t l1 = ike_start(&p.i, m1, sizeof(m1));
	size_t l2 = deliver(&p.r, m1, l1, m2, sizeof(m2), &n);
	size_t l3 = deliver(&p.i, m2, l2, m3, sizeof(m3), &n);
	assert_true(p.i.frag_peer && p.r.frag_peer);
	size_t l4 = deliver(&p.r, m3, l3, m4, sizeof(m4), &n);
	assert_true(n >= 2); /* the IKE_AUTH request came in pieces */
	assert_true(l4 > 0);
	/* the responder's IKE_AUTH response is fragmented too; feed its pieces in reverse order */
	unsigned k = 0;
	size_t offs[IKE_FRAG_MAX], lens[IKE_FRAG_MAX], off = 0;
	while (off < l4) {
		lens[k] = (size_t)m4[off + 24] << 24 | (size_t)m4[off + 25] << 16 | (size_t)m4[off + 26] << 8 | m4[off + 27];
		offs[k++] = off;
		off += lens[k - 1];
	}
	assert_true(k >= 2);
	for (unsigned j = k; j-- > 0;)
		ike_process(&p.i, m4 + offs[j], lens[j], m1, sizeof(m1));
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p.i.child[0]->spi_i, p.r.child[0]->spi_i);
	assert_true(p.i.frags_received >= 2 && p.r.frags_received >= 2);
	/* a retransmitted fragmented request: the cached (fragmented) response again */
	uint8_t again[8192];
	assert_int_equal(deliver(&p.r, m3, l3, again, sizeof(again), &n), l4);
	done(&p);
	/* the responder does not offer it: whole messages */
	cr.fragmentation = false;
	run(&p, &ci, &cr);
	assert_false(p.i.frag_peer);
	assert_int_equal(p.i.frags_sent + p.r.frags_sent, 0);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	done(&p);
}

/* A rekey with PFS in a group the responder does not take: INVALID_KE_PAYLOAD names its group,
 * and the next try uses it. */
static void test_rekey_invalid_ke(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	uint8_t req[4096], resp[4096], x[4096];
	conf(&ci, true), conf(&cr, false);
	props(&ci, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519,aes128gcm16-ecp256");
	props(&cr, "aes128gcm16-prfsha256-x25519", "aes128gcm16-ecp256");
	run(&p, &ci, &cr);
	assert_int_equal(p.i.state, IKE_ST_ESTABLISHED);
	size_t lq = ike_rekey_child(&p.i, p.i.child[0], req, sizeof(req));
	size_t lr = ike_process(&p.r, req, lq, resp, sizeof(resp));
	ike_process(&p.i, resp, lr, x, sizeof(x));
	assert_int_equal(p.i.ccs_error, IKE_N_INVALID_KE_PAYLOAD);
	assert_int_equal(p.i.ccs_group, IKE_DH_ECP256);
	assert_false(p.r.child[0]->next_ready);
	rekey_from(&p, true);
	done(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_established),
		cmocka_unit_test(test_suites),
		cmocka_unit_test(test_proposal_choice),
		cmocka_unit_test(test_invalid_ke_retry),
		cmocka_unit_test(test_cookie_and_init_retransmit),
		cmocka_unit_test(test_child_rekey),
		cmocka_unit_test(test_rekey_collision),
		cmocka_unit_test(test_rekey_meets_ike_rekey),
		cmocka_unit_test(test_ike_rekey_collision),
		cmocka_unit_test(test_children),
		cmocka_unit_test(test_ike_rekey),
		cmocka_unit_test(test_rekey_invalid_ke),
		cmocka_unit_test(test_fragmentation),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_forgery),
		cmocka_unit_test(test_strongswan_request),
		cmocka_unit_test(test_nat_detection),
		cmocka_unit_test(test_informational),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
