/* fuzz_ike_frag.c — IKE fragment reassembly (RFC 7383) with fixed keys, driven by records: raw
 * bytes as an SKF message, a fragment we seal ourselves (so the checks after the ICV are reached
 * with any numbering, header and MTU), or the clock moving on. Never a crash or a leak, and the
 * bounds on fragments and bytes always hold.
 *   input: suite byte, then records: kind (mod 3) 0 = raw: len16, bytes
 *                                               1 = sealed: frag_max16, pick, flags, len16, bytes
 *                                               2 = time: ms16 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_frag.h"
#include "util/cursor.h"

static const struct ike_sk_suite suites[] = {
	{IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE},
	{IKE_ENCR_AES_CBC, 128, IKE_INTEG_HMAC_SHA2_256_128},
	{IKE_ENCR_CHACHA20_POLY1305, 0, IKE_INTEG_NONE},
	{IKE_ENCR_AES_GCM_16, 256, IKE_INTEG_NONE},
};
static const uint8_t ke[36], ka[64];
static uint8_t frags[IKE_FRAG_MAX * 2048];

static void take(struct ike_frag_reasm *r, const struct ike_sk_suite *s, const uint8_t *m, size_t len, uint64_t now)
{
	uint8_t first;
	const uint8_t *inner;
	size_t inner_len;
	uint8_t *copy = malloc(len ? len : 1); /* exact size, so ASan sees any over-read */
	if (!copy)
		return;
	if (len)
		memcpy(copy, m, len);
	enum ike_frag_drop why = IKE_FRAG_DROP_COUNT;
	enum ike_frag_result res = ike_frag_reasm_feed(r, s, ke, ka, copy, len, now, &first, &inner, &inner_len, &why);
	if (res == IKE_FRAG_DROPPED && (unsigned)why >= IKE_FRAG_DROP_COUNT)
		abort();
	if (res == IKE_FRAG_COMPLETE) {
		static struct ike_chain c;
		if (inner != r->chain || inner_len != r->chain_len || inner_len > IKE_FRAG_BYTES_MAX)
			abort();
		(void)ike_parse_chain(first, inner, inner_len, &c);
	}
	if (r->bytes > IKE_FRAG_BYTES_MAX || r->n > IKE_FRAG_MAX || (r->total && r->n > r->total))
		abort();
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cur c = cur_init(data, size);
	uint8_t sel, kind;
	if (!cur_u8(&c, &sel))
		return 0;
	const struct ike_sk_suite *s = &suites[sel % 4];
	struct ike_frag_reasm r;
	uint64_t now = 1000;
	ike_frag_reasm_init(&r, 1, now, 5000);
	while (cur_u8(&c, &kind)) {
		uint16_t len, fmax, ms;
		uint8_t pick, flags;
		const uint8_t *p;
		switch (kind % 3) {
		case 0: {
			if (!cur_u16(&c, &len))
				goto out;
			size_t n = len < c.left ? len : c.left;
			if (!cur_bytes(&c, n, &p))
				goto out;
			take(&r, s, p, n, now);
			break;
		}
		case 1: {
			if (!cur_u16(&c, &fmax) || !cur_u8(&c, &pick) || !cur_u8(&c, &flags) || !cur_u16(&c, &len))
				goto out;
			size_t dlen = len < c.left ? len : c.left;
			if (!cur_bytes(&c, dlen, &p))
				goto out;
			struct ike_hdr h = {.spi_i = 1, .spi_r = 2, .exchange = IKE_AUTH, .flags = flags,
					    .msg_id = pick & 0x80 ? 2 : 1};
			size_t lens[IKE_FRAG_MAX];
			unsigned n = ike_frag_seal(s, ke, ka, &h, dlen ? p[0] : 0, p, dlen, fmax % 2048, frags, sizeof(frags),
						   lens, IKE_FRAG_MAX);
			size_t off = 0;
			for (unsigned i = 0; i < n; i++) {
				if (lens[i] > fmax % 2048)
					abort();
				if (i == (pick & 0x7f) % n)
					take(&r, s, frags + off, lens[i], now);
				off += lens[i];
			}
			break;
		}
		default:
			if (!cur_u16(&c, &ms))
				goto out;
			now += ms;
			break;
		}
	}
out:
	ike_frag_reasm_clear(&r);
	return 0;
}
