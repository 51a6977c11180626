/* fuzz_daemon_cluster.c — whatever arrives on the transfer channel: the first byte sets the size of
 * the pieces a peer's bytes come in, the rest is read as a length-prefixed frame (at most
 * CLUSTER_FRAME_MAX) whose payload is opened as a reply and decoded as one; never a crash, a leak
 * or a read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[32] = {1}, chal[CLUSTER_CHALLENGE] = {2};
	if (size < 1)
		return 0;
	size_t piece = data[0] ? data[0] : 1, off = 1, used;
	struct cluster_rx rx = {.max = CLUSTER_FRAME_MAX};
	struct cluster_reply r;
	int rc = 0;
	while (rc == 0 && off < size) {
		size_t n = size - off < piece ? size - off : piece;
		rc = cluster_rx_feed(&rx, data + off, n, &used);
		if (used > n || (rc == 0 && used != n))
			abort();
		off += used;
	}
	if (rc == 1) {
		if (rx.len < 1 || rx.len > CLUSTER_FRAME_MAX)
			abort();
		cluster_reply_open(key, chal, rx.buf, rx.len, &r);
		if (cluster_reply_decode(rx.buf, rx.len, &r) == 0 && strlen(r.error) > CLUSTER_ERR_MAX)
			abort();
	}
	cluster_rx_free(&rx);
	return 0;
}
