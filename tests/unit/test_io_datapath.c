/* test_io_datapath.c — the worker's packet paths on a data plane without TUN or sockets: an
 * encrypted inner packet reaches the point of delivery (the write to the absent TUN is counted as
 * io), its replay is dropped, a packet outside the SA's selectors is dropped as policy, and a TUN
 * frame under a PROTECT policy is encrypted and handed to the (absent) socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "esp/esp.h"
#include "esp/esp_wire.h"
#include "io/dp_internal.h"

static struct esp_sa *mk(uint32_t spi, uint32_t reqid, enum esp_dir dir, const char *ts_remote)
{
	struct esp_sa *sa = calloc(1, sizeof(*sa));
	char err[128];
	unsigned ekl, ikl;
	assert_int_equal(esp_proposal_parse("aes128-sha256", &sa->enc, &ekl, &sa->integ, &ikl, &sa->esn), 0);
	sa->spi = spi, sa->reqid = reqid, sa->dir = dir, sa->mode = ESP_MODE_TUNNEL, sa->encap = ESP_ENCAP_UDP;
	bt_addr_parse("172.16.0.1", &sa->local);
	bt_addr_parse("172.16.0.2", &sa->remote);
	sa->remote_port = 4500;
	sa->enc_key_len = (uint8_t)ekl, sa->integ_key_len = (uint8_t)ikl;
	memset(sa->enc_key, 1, ekl);
	memset(sa->integ_key, 2, ikl);
	struct bt_ts l, r;
	bt_ts_parse("10.1.0.0/24", &l, err, sizeof(err));
	bt_ts_parse(ts_remote, &r, err, sizeof(err));
	assert_int_equal(esp_sa_set_ts(sa, &l, 1, &r, 1), 0);
	esp_sa_set_replay_window(sa, dir == ESP_DIR_IN ? 64 : 0);
	assert_int_equal(esp_sa_init(sa, 1, err, sizeof(err)), 0);
	return sa;
}

static size_t icmp4(uint8_t *p, const char *src, const char *dst)
{
	struct bt_addr a;
	memset(p, 0, 28);
	p[0] = 0x45, p[3] = 28, p[8] = 64, p[9] = 1;
	bt_addr_parse(src, &a), memcpy(p + 12, a.b, 4);
	bt_addr_parse(dst, &a), memcpy(p + 16, a.b, 4);
	p[20] = 8;
	return 28;
}

static uint8_t buf[ESP_HEADROOM + 4096 + ESP_TAILROOM];

static void test_inbound(void **state)
{
	struct dp_config cfg = {.udp_port = 4500};
	struct dataplane *dp = dp_new_detached(&cfg, 1);
	assert_non_null(dp);
	struct esp_sa *in = mk(0x100, 1, ESP_DIR_IN, "10.2.0.0/24");
	assert_int_equal(sad_add(dp->sad, in, NULL), 0);
	struct esp_sa *peer = mk(0x100, 1, ESP_DIR_OUT, "10.2.0.0/24"); /* the other gateway's view */
	struct bt_addr src, dst;
	bt_addr_parse("172.16.0.2", &src);
	bt_addr_parse("172.16.0.1", &dst);
	struct lane *l = &dp->lane[0];

	struct pkt p = {.buf = buf, .cap = sizeof(buf), .off = ESP_HEADROOM};
	p.len = icmp4(buf + ESP_HEADROOM, "10.2.0.2", "10.1.0.2");
	assert_int_equal(esp_encap(peer, 0, &p, ESP_NH_IPV4), ESP_DROP_NONE);
	uint8_t copy[256];
	size_t off = p.off, len = p.len;
	memcpy(copy, buf + off, len);
	worker_udp_datagram(l, buf, sizeof(buf), off, len, &src, 4500, &dst);
	assert_int_equal(atomic_load(&in->ctr.packets), 1);
	assert_int_equal(l->st.drops[ESP_DROP_IO], 1); /* it reached the TUN write */

	memcpy(buf + off, copy, len);
	worker_udp_datagram(l, buf, sizeof(buf), off, len, &src, 4500, &dst);
	assert_int_equal(atomic_load(&in->ctr.drops[ESP_DROP_REPLAY]), 1);

	/* a packet from outside the SA's selectors, correctly encrypted: dropped as policy */
	p = (struct pkt){.buf = buf, .cap = sizeof(buf), .off = ESP_HEADROOM};
	p.len = icmp4(buf + ESP_HEADROOM, "10.9.0.2", "10.1.0.2");
	assert_int_equal(esp_encap(peer, 0, &p, ESP_NH_IPV4), ESP_DROP_NONE);
	worker_udp_datagram(l, buf, sizeof(buf), p.off, p.len, &src, 4500, &dst);
	assert_int_equal(atomic_load(&in->ctr.drops[ESP_DROP_POLICY]), 1);

	/* from an address outside the peer set: dropped as peer before decryption */
	struct bt_addr stranger;
	bt_addr_parse("172.16.0.9", &stranger);
	memcpy(buf + off, copy, len);
	worker_udp_datagram(l, buf, sizeof(buf), off, len, &stranger, 4500, &dst);
	assert_int_equal(atomic_load(&in->ctr.drops[ESP_DROP_PEER]), 1);

	/* IKE and keepalives are not ESP */
	uint8_t ike[32] = {0};
	memcpy(buf + ESP_HEADROOM, ike, sizeof(ike));
	worker_udp_datagram(l, buf, sizeof(buf), ESP_HEADROOM, sizeof(ike), &src, 4500, &dst);
	buf[ESP_HEADROOM] = 0xff;
	worker_udp_datagram(l, buf, sizeof(buf), ESP_HEADROOM, 1, &src, 4500, &dst);
	assert_int_equal(l->st.ike_rx, 1);
	assert_int_equal(l->st.keepalive_rx, 1);
	esp_sa_clear(peer);
	free(peer);
	dp_free(dp);
}

static void test_outbound(void **state)
{
	struct dp_config cfg = {.udp_port = 4500, .offload = true};
	struct dataplane *dp = dp_new_detached(&cfg, 1);
	struct esp_sa *out = mk(0x200, 7, ESP_DIR_OUT, "10.2.0.0/24");
	assert_int_equal(sad_add(dp->sad, out, NULL), 0);
	struct spd *spd = atomic_load(&dp->spd);
	struct bt_ts ts_l, ts_r;
	struct spd_policy pol = {.dir = SPD_DIR_OUT, .action = SPD_PROTECT, .reqid = 7, .n_local = 1, .n_remote = 1, .local = &ts_l, .remote = &ts_r};
	char err[64];
	bt_ts_parse("10.1.0.0/24", &ts_l, err, sizeof(err));
	bt_ts_parse("10.2.0.0/24", &ts_r, err, sizeof(err));
	spd_add(spd, &pol);
	struct lane *l = &dp->lane[0];
	uint8_t frame[DP_VNET_HDR + 64] = {0};
	size_t n = DP_VNET_HDR + icmp4(frame + DP_VNET_HDR, "10.1.0.2", "10.2.0.2");
	worker_tun_frame(l, frame, n);
	assert_int_equal(atomic_load(&out->ctr.packets), 1);
	assert_int_equal(atomic_load(&out->ctr.drops[ESP_DROP_IO]), 1); /* no socket: counted, not lost */
	/* no policy for 10.3/24: never sent, counted */
	n = DP_VNET_HDR + icmp4(frame + DP_VNET_HDR, "10.1.0.2", "10.3.0.2");
	worker_tun_frame(l, frame, n);
	assert_int_equal(l->st.drops[ESP_DROP_POLICY], 1);
	assert_int_equal(atomic_load(&out->ctr.packets), 1);
	/* a partial checksum that would land in the IP header: refused */
	n = DP_VNET_HDR + icmp4(frame + DP_VNET_HDR, "10.1.0.2", "10.2.0.2");
	frame[0] = 1; /* NEEDS_CSUM */
	frame[6] = 2; /* csum_start 2 */
	worker_tun_frame(l, frame, n);
	assert_int_equal(l->st.drops[ESP_DROP_MALFORMED], 1);
	dp_free(dp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inbound),
		cmocka_unit_test(test_outbound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
