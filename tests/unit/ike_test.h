/* ike_test.h — what the in-process IKE tests share: a deterministic random source (xorshift, so a
 * seed replays an exchange) and a PSK configuration for either end (initiator 172.16.0.1, responder
 * 172.16.0.2, X25519, PRF SHA-256, ESP AES-GCM-128). Include after cmocka.h. */
#ifndef BT_TEST_IKE_TEST_H
#define BT_TEST_IKE_TEST_H

#include "ike/ike_sa.h"
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

/* c with its lists in room: the IKE suite ike, this end's selectors local_ts and remote_ts. */
static void test_psk_conf(struct ike_conf *c, struct ike_conf_room *room, bool initiator, struct ike_sk_suite ike,
			  const char *local_ts, const char *remote_ts)
{
	char err[64];
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, room);
	c->ike = ike;
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_X25519;
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	memcpy(c->psk, "a shared secret", 15);
	c->psk_len = 15;
	static const uint8_t a[4] = {172, 16, 0, 1}, b[4] = {172, 16, 0, 2};
	c->id_type = c->peer_id_type = IKE_ID_IPV4;
	memcpy(c->id, initiator ? a : b, 4), c->id_len = 4;
	memcpy(c->peer_id, initiator ? b : a, 4), c->peer_id_len = 4;
	assert_int_equal(bt_ts_parse(local_ts, &c->local_ts[0], err, sizeof(err)), 0);
	assert_int_equal(bt_ts_parse(remote_ts, &c->remote_ts[0], err, sizeof(err)), 0);
	c->n_local_ts = c->n_remote_ts = 1;
}

#endif
