/* fuzz_ike_msg.c — arbitrary bytes as an IKEv2 message: header, payload chain and every payload
 * body parser; what parses as SA or TS payloads is rebuilt and must parse back to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_msg.h"
#include "ike/ike_sk.h"

static uint8_t out[IKE_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ike_hdr h;
	static struct ike_chain c;
	uint8_t *copy = malloc(size ? size : 1); /* exact size, so ASan sees any over-read */
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (ike_parse(copy, size, &h, &c) != IKE_PERR_OK)
		goto out;
	for (unsigned i = 0; i < c.n; i++) {
		const struct ike_payload *p = &c.pl[i];
		static struct ike_sa_payload sa, sa2;
		struct ike_ts_payload ts, ts2;
		struct ike_notify_payload n;
		struct ike_ke_payload ke;
		struct ike_id_payload id;
		struct ike_auth_payload au;
		struct ike_delete_payload d;
		struct ike_builder b;
		struct ike_chain c2;
		struct ike_hdr h2;
		switch (p->type) {
		case IKE_PL_SA:
			if (ike_parse_sa(p, &sa) != IKE_PERR_OK)
				break;
			ike_build_begin(&b, out, sizeof(out), &h);
			ike_put_sa(&b, &sa);
			size_t len = ike_build_end(&b);
			if (!len || ike_parse(out, len, &h2, &c2) != IKE_PERR_OK || ike_parse_sa(&c2.pl[0], &sa2) != IKE_PERR_OK ||
			    sa2.n != sa.n)
				abort();
			for (unsigned k = 0; k < sa.n; k++)
				if (sa2.prop[k].n_tr != sa.prop[k].n_tr ||
				    memcmp(sa2.prop[k].tr, sa.prop[k].tr, sa.prop[k].n_tr * sizeof(sa.prop[k].tr[0])))
					abort();
			break;
		case IKE_PL_TSI:
		case IKE_PL_TSR:
			if (ike_parse_ts(p, &ts) != IKE_PERR_OK)
				break;
			ike_build_begin(&b, out, sizeof(out), &h);
			ike_put_ts(&b, p->type, ts.ts, ts.n);
			len = ike_build_end(&b);
			if (!len || ike_parse(out, len, &h2, &c2) != IKE_PERR_OK || ike_parse_ts(&c2.pl[0], &ts2) != IKE_PERR_OK ||
			    ts2.n != ts.n || memcmp(ts2.ts, ts.ts, ts.n * sizeof(ts.ts[0])))
				abort();
			break;
		case IKE_PL_NOTIFY: (void)ike_parse_notify(p, &n); break;
		case IKE_PL_KE: (void)ike_parse_ke(p, &ke); break;
		case IKE_PL_IDI:
		case IKE_PL_IDR: (void)ike_parse_id(p, &id); break;
		case IKE_PL_AUTH: (void)ike_parse_auth(p, &au); break;
		case IKE_PL_DELETE: (void)ike_parse_delete(p, &d); break;
		case IKE_PL_SK: {
			/* the integrity check and decryption must cope with any lengths (keys fixed) */
			static const struct ike_sk_suite suites[] = {
				{IKE_ENCR_AES_CBC, 128, IKE_INTEG_HMAC_SHA2_256_128}, {IKE_ENCR_AES_GCM_16, 256, IKE_INTEG_NONE}};
			static const uint8_t ekey[36], akey[64];
			uint8_t first;
			const uint8_t *inner;
			size_t inner_len;
			for (unsigned k = 0; k < 2; k++)
				if (ike_sk_open(&suites[k], ekey, akey, copy, size, p, &first, &inner, &inner_len) == 0 &&
				    (inner < copy || inner + inner_len > copy + size))
					abort();
			break;
		}
		default: break;
		}
	}
out:
	free(copy);
	return 0;
}
