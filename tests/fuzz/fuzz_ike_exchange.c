/* fuzz_ike_exchange.c — arbitrary bytes as the first message a responder engine sees (IKE_SA_INIT
 * request path: proposal choice, KE, nonce, error notifies), and as the message an initiator waiting
 * for the IKE_SA_INIT response gets: an answer or nothing, never a crash or a leak. Odd-sized inputs
 * run with certificate peers allowed (SIGNATURE_HASH_ALGORITHMS and CERTREQ noted). */
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
	static struct ike_conf_room room[2]; /* one configuration per role at a time */
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, &room[initiator]);
	c->ike = (struct ike_sk_suite){IKE_ENCR_AES_CBC, 128, IKE_INTEG_HMAC_SHA2_256_128};
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_ECP256; /* strongSwan's seed request uses it */
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->psk_len = 4;
	memcpy(c->psk, "seed", 4);
	c->id_type = c->peer_id_type = IKE_ID_IPV4;
	c->id_len = c->peer_id_len = 4;
	bt_ts_parse("0.0.0.0/0", &c->local_ts[0], err, sizeof(err));
	c->remote_ts[0] = c->local_ts[0];
	c->n_local_ts = c->n_remote_ts = 1;
	(void)initiator;
}

static uint8_t out[IKE_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ike_sa sa;
	struct ike_conf c;
	uint8_t seed = 7;
	struct ike_rng rng = {counter_rng, &seed};
	conf(&c, false);
	c.peer_auth = size & 1 ? IKE_AUTHBY_ANY : IKE_AUTHBY_PSK; /* certificate notifies parsed and sent */
	ike_sa_init(&sa, &c, false, &rng);
	size_t n = ike_process(&sa, data, size, out, sizeof(out));
	if (n > sizeof(out))
		abort();
	ike_sa_free(&sa);

	/* an initiator that sent its request: the input as the response (its SPI patched in) */
	conf(&c, true);
	c.peer_auth = size & 1 ? IKE_AUTHBY_ANY : IKE_AUTHBY_PSK;
	ike_sa_init(&sa, &c, true, &rng);
	if (ike_start(&sa, out, sizeof(out)) && size >= 8) {
		uint8_t *m = malloc(size);
		memcpy(m, data, size);
		for (int i = 0; i < 8; i++)
			m[i] = (uint8_t)(sa.spi_i >> (56 - 8 * i));
		ike_process(&sa, m, size, out, sizeof(out));
		free(m);
	}
	ike_sa_free(&sa);
	return 0;
}
