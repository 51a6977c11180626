/* fuzz_esp_decap.c — arbitrary bytes as ESP packets for SAs of every transform family: never a
 * crash, never an out-of-bounds access; the first byte picks the SA. An input whose first byte is
 * odd is also encapsulated and must then decapsulate to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "esp/esp.h"
#include "esp/esp_wire.h"

static const char *const props[] = {"aes128gcm16", "aes128-sha256", "null-sha1", "3des-md5",
				    "chacha20poly1305-esn", "aes256ctr-sha512-esn"};
#define NSA (sizeof(props) / sizeof(props[0]))
static struct esp_sa *in[NSA], *out[NSA];

static struct esp_sa *mk(const char *p, enum esp_dir dir)
{
	struct esp_sa *sa = calloc(1, sizeof(*sa));
	unsigned ekl, ikl;
	char err[128];
	if (!sa || esp_proposal_parse(p, &sa->enc, &ekl, &sa->integ, &ikl, &sa->esn) != 0)
		abort();
	sa->spi = 0x1000, sa->dir = dir;
	sa->enc_key_len = (uint8_t)ekl, sa->integ_key_len = (uint8_t)ikl;
	memset(sa->enc_key, 0x11, ekl);
	memset(sa->integ_key, 0x22, ikl);
	esp_sa_set_replay_window(sa, 64);
	if (esp_sa_init(sa, 1, err, sizeof(err)) != 0)
		abort();
	return sa;
}

static uint8_t buf[ESP_HEADROOM + 4096 + ESP_TAILROOM];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!in[0])
		for (size_t i = 0; i < NSA; i++)
			in[i] = mk(props[i], ESP_DIR_IN), out[i] = mk(props[i], ESP_DIR_OUT);
	if (size < 1 || size > 4096)
		return 0;
	size_t k = data[0] % NSA;
	struct pkt p = {.buf = buf, .cap = sizeof(buf), .off = ESP_HEADROOM, .len = size - 1};
	memcpy(buf + ESP_HEADROOM, data + 1, size - 1);
	uint8_t nh;
	if (esp_decap(in[k], 0, &p, &nh) == ESP_DROP_NONE && (p.off < ESP_HEADROOM || p.off + p.len > sizeof(buf)))
		abort();
	if (data[0] & 1) {
		/* round trip: what we encapsulate we must get back */
		p = (struct pkt){.buf = buf, .cap = sizeof(buf), .off = ESP_HEADROOM, .len = size - 1};
		memcpy(buf + ESP_HEADROOM, data + 1, size - 1);
		if (esp_encap(out[k], 0, &p, ESP_NH_IPV4) != ESP_DROP_NONE)
			return 0; /* e.g. sequence numbers exhausted after many runs */
		/* the fuzzer's inputs reach the window in any order: use a fresh window each time */
		esp_sa_set_replay_window(in[k], 64);
		if (esp_decap(in[k], 0, &p, &nh) != ESP_DROP_NONE || nh != ESP_NH_IPV4 || p.len != size - 1 ||
		    memcmp(buf + p.off, data + 1, size - 1) != 0)
			abort();
	}
	return 0;
}
