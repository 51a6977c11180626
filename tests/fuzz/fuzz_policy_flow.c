/* fuzz_policy_flow.c — arbitrary bytes as an IP packet (flow extraction, selector matching) and as
 * a traffic-selector string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/spd.h"
#include "policy/ts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_flow f;
	uint8_t *copy = malloc(size ? size : 1); /* exact size: any over-read is caught by ASan */
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (bt_flow_from_packet(copy, size, &f) == 0) {
		struct bt_ts ts;
		char err[128];
		if (bt_ts_parse("0.0.0.0/0[tcp/80-443]", &ts, err, sizeof(err)) == 0)
			(void)bt_ts_match(&ts, &f.dst, f.proto, f.dport);
	}
	free(copy);
	char s[200];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	struct bt_ts ts;
	char err[160], out[160];
	if (bt_ts_parse(s, &ts, err, sizeof(err)) == 0)
		bt_ts_str(&ts, out, sizeof(out));
	return 0;
}
