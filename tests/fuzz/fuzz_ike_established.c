/* fuzz_ike_established.c — arbitrary payload chains inside authentic messages of an established IKE
 * SA. Each run brings an SA up between two engines (deterministic randomness), then seals the
 * input as the plaintext of a request or response from the initiator — CREATE_CHILD_SA (Child and
 * IKE rekeys), INFORMATIONAL (deletes), IKE_AUTH, or as RFC 7383 fragments — so the parsers and
 * handlers behind the integrity check see it: a response or nothing, never a crash or a leak.
 * Input: [0] exchange selector, [1] flags (bit 0: response, bit 1: as fragments, bit 2: first a
 * Child rekey so an old child exists, bit 3: first an IKE rekey, bit 4: first a second Child SA by
 * CREATE_CHILD_SA, bit 5: the responder's own IKE SA rekey in flight, bit 6: its own rekey of the
 * first child in flight — so a rekey in the input meets a collision, RFC 7296 2.8), [2] first
 * payload type, [3] message ID offset, then the chain. [0] bit 3: the input is a request of the
 * responder's to the initiator instead (a gateway's UPDATE_SA_ADDRESSES, deletes, address lists);
 * with [1] bit 4, [3] bit 3 makes the MOBIKE request the responder's gateway update, answered by
 * the input sealed by the initiator. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_sa.h"

static int counter_rng(void *arg, uint8_t *buf, size_t len)
{
	uint8_t *c = arg;
	for (size_t i = 0; i < len; i++)
		buf[i] = (*c)++ ^ (uint8_t)(i * 31);
	return 0;
}

static void conf(struct ike_conf *c, bool initiator)
{
	char err[64];
	static const uint8_t a[4] = {172, 16, 0, 1}, b[4] = {172, 16, 0, 2};
	static struct ike_conf_room room[2]; /* one configuration per role at a time */
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, &room[initiator]);
	c->ike = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_X25519;
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->psk_len = 4;
	memcpy(c->psk, "fuzz", 4);
	c->id_type = c->peer_id_type = IKE_ID_IPV4;
	c->id_len = c->peer_id_len = 4;
	memcpy(c->id, initiator ? a : b, 4);
	memcpy(c->peer_id, initiator ? b : a, 4);
	c->fragmentation = true;
	c->frag_mtu = 200;
	c->mobike = true;
	bt_ts_parse("10.0.0.0/8", &c->local_ts[0], err, sizeof(err));
	c->remote_ts[0] = c->local_ts[0];
	c->n_local_ts = c->n_remote_ts = 1;
}

static uint8_t m1[IKE_MSG_MAX], m2[IKE_MSG_MAX];

/* Hand every whole message of buf (fragments come back to back) to sa. */
static size_t deliver(struct ike_sa *sa, const uint8_t *buf, size_t len, uint8_t *out, size_t cap)
{
	size_t off = 0, r = 0;
	while (off + 28 <= len) {
		size_t l = (size_t)buf[off + 24] << 24 | (size_t)buf[off + 25] << 16 | (size_t)buf[off + 26] << 8 | buf[off + 27];
		if (l < 28 || l > len - off)
			abort(); /* the engine produced a malformed message */
		size_t x = ike_process(sa, buf + off, l, out, cap);
		if (x > cap)
			abort();
		r = x ? x : r;
		off += l;
	}
	return r;
}

static void exchange(struct ike_sa *from, struct ike_sa *to, size_t len)
{
	size_t l2 = deliver(to, m1, len, m2, sizeof(m2));
	if (l2)
		deliver(from, m2, l2, m1, sizeof(m1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ike_sa i, r;
	static struct ike_conf ci, cr;
	uint8_t si = 1, sr = 2;
	struct ike_rng ri = {counter_rng, &si}, rr = {counter_rng, &sr};
	if (size < 4 || size > 16384)
		return 0;
	conf(&ci, true), conf(&cr, false);
	ike_sa_init(&i, &ci, true, &ri);
	ike_sa_init(&r, &cr, false, &rr);
	size_t l = ike_start(&i, m1, sizeof(m1));
	l = deliver(&r, m1, l, m2, sizeof(m2));      /* IKE_SA_INIT response */
	l = deliver(&i, m2, l, m1, sizeof(m1));      /* IKE_AUTH request */
	l = deliver(&r, m1, l, m2, sizeof(m2));      /* IKE_AUTH response */
	deliver(&i, m2, l, m1, sizeof(m1));
	if (i.state != IKE_ST_ESTABLISHED || r.state != IKE_ST_ESTABLISHED)
		abort(); /* the fixed exchange must work */
	if (data[1] & 16) {
		l = ike_create_child(&i, &ci, m1, sizeof(m1));
		exchange(&i, &r, l);
		if (!i.child[1] || !r.child[1])
			abort(); /* the fixed exchange must work */
	}
	if (data[1] & 4) {
		l = ike_rekey_child(&i, i.child[0], m1, sizeof(m1));
		exchange(&i, &r, l);
		ike_child_promote(&i, i.child[0]), ike_child_promote(&r, r.child[0]);
	}
	if (data[1] & 8) {
		l = ike_rekey_ike(&i, m1, sizeof(m1));
		exchange(&i, &r, l);
	}
	struct bt_addr a1, a2;
	bt_addr_parse("192.168.1.2", &a1), bt_addr_parse("172.16.0.2", &a2);
	ike_sa_set_endpoints(&i, &a1, 4500, &a2, 4500);
	r.rx_local = a2, r.rx_remote = a1, r.rx_local_port = r.rx_remote_port = 4500;
	if (data[1] & 16) {
		/* MOBIKE: the input answers the initiator's UPDATE_SA_ADDRESSES (or path test), sealed by
		 * the responder */
		bool gw = data[3] & 8; /* the gateway's update, answered by the initiator */
		struct ike_sa *q = gw ? &r : &i, *a = gw ? &i : &r;
		l = data[3] & 4 ? ike_mobike_probe(q, m1, sizeof(m1))
		    : gw	    ? ike_mobike_gw_update(q, m1, sizeof(m1))
				    : ike_mobike_update(q, m1, sizeof(m1));
		if (!l)
			abort(); /* MOBIKE was negotiated: the request must be built */
		struct ike_hdr h = {.spi_i = i.spi_i, .spi_r = i.spi_r, .exchange = IKE_INFORMATIONAL,
				    .flags = (uint8_t)(IKE_FLAG_RESPONSE | (gw ? IKE_FLAG_INITIATOR : 0)),
				    .msg_id = q->info_id + (data[3] & 1)};
		const uint8_t *ke = gw ? a->keys.sk_ei : a->keys.sk_er, *ka = gw ? a->keys.sk_ai : a->keys.sk_ar;
		l = ike_sk_seal(&a->suite, ke, ka, &h, data[2], data + 4, size - 4, m1, sizeof(m1));
		if (l)
			deliver(q, m1, l, m2, sizeof(m2));
		ike_sa_free(&i);
		ike_sa_free(&r);
		return 0;
	}
	if (data[1] & 32)
		ike_rekey_ike(&r, m2, sizeof(m2)); /* (not delivered: in flight when the input comes) */
	else if (data[1] & 64)
		ike_rekey_child(&r, r.child[0], m2, sizeof(m2));
	if (data[0] & 8) {
		/* a request of the responder's, sealed with its keys, arriving at the initiator from a new
		 * address (as a gateway's after a Multi-LAN transfer) */
		struct ike_hdr h = {.spi_i = i.spi_i, .spi_r = i.spi_r, .exchange = IKE_INFORMATIONAL,
				    .msg_id = i.next_recv_id + (data[3] & 3)};
		struct bt_addr a3;
		bt_addr_parse("172.16.0.3", &a3);
		i.rx_local = a1, i.rx_remote = a3, i.rx_local_port = i.rx_remote_port = 4500;
		l = ike_sk_seal(&r.suite, r.keys.sk_er, r.keys.sk_ar, &h, data[2], data + 4, size - 4, m1, sizeof(m1));
		if (l)
			deliver(&i, m1, l, m2, sizeof(m2));
		ike_sa_free(&i);
		ike_sa_free(&r);
		return 0;
	}
	/* the input, sealed by the initiator as the given exchange */
	static const uint8_t ex[] = {IKE_CREATE_CHILD_SA, IKE_INFORMATIONAL, IKE_AUTH, IKE_CREATE_CHILD_SA};
	bool response = data[1] & 1;
	struct ike_hdr h = {.spi_i = i.spi_i, .spi_r = i.spi_r, .exchange = ex[data[0] & 3],
			    .flags = (uint8_t)(IKE_FLAG_INITIATOR | (response ? IKE_FLAG_RESPONSE : 0)),
			    .msg_id = (response ? r.next_send_id : r.next_recv_id) + (data[3] & 3)};
	if ((data[0] & 4) && i.old_ike.present) { /* on the old IKE SA instead */
		h.spi_i = i.old_ike.spi_i, h.spi_r = i.old_ike.spi_r;
	}
	const uint8_t *ke = i.initiator ? i.keys.sk_ei : i.keys.sk_er, *ka = i.initiator ? i.keys.sk_ai : i.keys.sk_ar;
	if (data[1] & 2) {
		size_t fl[IKE_FRAG_MAX];
		unsigned n = ike_frag_seal(&i.suite, ke, ka, &h, data[2], data + 4, size - 4, 160, m1, sizeof(m1), fl,
					   IKE_FRAG_MAX);
		l = 0;
		for (unsigned k = 0; k < n; k++)
			l += fl[k];
	} else {
		l = ike_sk_seal(&i.suite, ke, ka, &h, data[2], data + 4, size - 4, m1, sizeof(m1));
	}
	if (l)
		deliver(&r, m1, l, m2, sizeof(m2));
	ike_sa_free(&i);
	ike_sa_free(&r);
	return 0;
}
