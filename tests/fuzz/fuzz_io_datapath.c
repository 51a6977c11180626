/* fuzz_io_datapath.c — the data plane's packet paths without a TUN or sockets: arbitrary bytes as
 * (0) a datagram on the encapsulation port, (1) an inner packet that arrives correctly encrypted in
 * tunnel mode, (2) a payload that arrives correctly encrypted in transport mode with any next
 * header, (3) a TUN frame with any virtio-net header (TSO, partial checksums). Everything must end
 * in a delivery or a counted drop, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "esp/esp.h"
#include "esp/esp_wire.h"
#include "io/dp_internal.h"

static struct dataplane *dp;
static struct esp_sa *twin_tun, *twin_trn; /* the peer's outbound SAs, to make valid ESP */
static struct bt_addr local, remote;

static struct esp_sa *mk(uint32_t spi, uint32_t reqid, enum esp_dir dir, enum esp_mode mode)
{
	struct esp_sa *sa = calloc(1, sizeof(*sa));
	char err[128];
	unsigned ekl, ikl;
	if (!sa || esp_proposal_parse("aes128gcm16", &sa->enc, &ekl, &sa->integ, &ikl, &sa->esn))
		abort();
	sa->spi = spi, sa->reqid = reqid, sa->dir = dir, sa->mode = mode, sa->encap = ESP_ENCAP_UDP;
	sa->local = dir == ESP_DIR_IN ? local : local, sa->remote = remote;
	sa->local_port = sa->remote_port = 4500;
	sa->enc_key_len = (uint8_t)ekl;
	memset(sa->enc_key, 0x5a, ekl);
	/* selectors: anything, both families */
	struct bt_ts any[2];
	bt_ts_parse("0.0.0.0/0", &any[0], err, sizeof(err));
	bt_ts_parse("::/0", &any[1], err, sizeof(err));
	if (esp_sa_set_ts(sa, any, 2, any, 2))
		abort();
	esp_sa_set_replay_window(sa, dir == ESP_DIR_IN ? 64 : 0);
	if (esp_sa_init(sa, 1, err, sizeof(err)))
		abort();
	return sa;
}

static void setup(void)
{
	struct dp_config cfg = {.udp_port = 4500, .offload = true};
	char err[64];
	bt_addr_parse("10.0.0.1", &local);
	bt_addr_parse("10.0.0.2", &remote);
	dp = dp_new_detached(&cfg, 1);
	if (!dp)
		abort();
	if (sad_add(dp->sad, mk(0x100, 1, ESP_DIR_IN, ESP_MODE_TUNNEL), NULL) ||
	    sad_add(dp->sad, mk(0x200, 2, ESP_DIR_IN, ESP_MODE_TRANSPORT), NULL) ||
	    sad_add(dp->sad, mk(0x300, 1, ESP_DIR_OUT, ESP_MODE_TUNNEL), NULL) ||
	    sad_add(dp->sad, mk(0x400, 3, ESP_DIR_OUT, ESP_MODE_TRANSPORT), NULL))
		abort();
	struct spd *spd = atomic_load(&dp->spd);
	struct bt_ts ts_l, ts_r;
	struct spd_policy p = {.dir = SPD_DIR_OUT, .action = SPD_PROTECT, .reqid = 1, .priority = 10,
			       .n_local = 1, .n_remote = 1, .local = &ts_l, .remote = &ts_r};
	bt_ts_parse("10.0.0.1/32", &ts_l, err, sizeof(err)); /* transport: own traffic */
	bt_ts_parse("10.0.0.2/32", &ts_r, err, sizeof(err));
	p.reqid = 3;
	spd_add(spd, &p);
	p.action = SPD_DISCARD, p.priority = 20;
	bt_ts_parse("0.0.0.0/0[udp/53]", &ts_r, err, sizeof(err));
	bt_ts_parse("0.0.0.0/0", &ts_l, err, sizeof(err));
	spd_add(spd, &p);
	p.action = SPD_BYPASS, p.priority = 30;
	bt_ts_parse("0.0.0.0/0[udp/123]", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	p.action = SPD_PROTECT, p.reqid = 1, p.priority = 40;
	bt_ts_parse("0.0.0.0/0", &ts_r, err, sizeof(err));
	spd_add(spd, &p);
	bt_ts_parse("::/0", &ts_r, err, sizeof(err));
	bt_ts_parse("::/0", &ts_l, err, sizeof(err));
	spd_add(spd, &p);
	twin_tun = mk(0x100, 1, ESP_DIR_OUT, ESP_MODE_TUNNEL);
	twin_trn = mk(0x200, 2, ESP_DIR_OUT, ESP_MODE_TRANSPORT);
}

static uint8_t buf[ESP_HEADROOM + DP_FRAME_MAX + ESP_TAILROOM];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dp)
		setup();
	if (size < 2 || size > 9000)
		return 0;
	struct lane *l = &dp->lane[0];
	uint8_t mode = data[0] % 4, nh = data[1];
	data += 2, size -= 2;
	struct pkt p = {.buf = buf, .cap = sizeof(buf), .off = ESP_HEADROOM, .len = size};
	memcpy(buf + ESP_HEADROOM, data, size);
	switch (mode) {
	case 0:
		worker_udp_datagram(l, buf, sizeof(buf), ESP_HEADROOM, size, &remote, 4500, &local);
		break;
	case 1:
	case 2:
		if (esp_encap(mode == 1 ? twin_tun : twin_trn, 0, &p,
			      mode == 1 ? ((size && (data[0] >> 4) == 6) ? ESP_NH_IPV6 : ESP_NH_IPV4) : nh) ==
		    ESP_DROP_NONE)
			worker_udp_datagram(l, buf, sizeof(buf), p.off, p.len, &remote, 4500, &local);
		break;
	default:
		worker_tun_frame(l, buf + ESP_HEADROOM, size);
		break;
	}
	return 0;
}
