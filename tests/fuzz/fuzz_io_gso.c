/* fuzz_io_gso.c — arbitrary bytes as a TSO super-packet from the TUN (segmentation) and as a
 * packet whose partial checksum is to be completed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gso.h"

static int emit(void *arg, uint8_t *seg, size_t len)
{
	size_t *total = arg;
	*total += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint16_t mss = (uint16_t)(data[0] << 8 | data[1]);
	uint16_t cs = data[2], co = data[3];
	data += 4, size -= 4;
	uint8_t *copy = malloc(size ? size : 1);
	uint8_t *scratch = malloc(65536);
	if (!copy || !scratch)
		abort();
	memcpy(copy, data, size);
	size_t total = 0;
	gso_segment_tcp(copy, size, mss, scratch, 65536, emit, &total);
	gso_complete_csum(copy, size, cs, co);
	free(copy);
	free(scratch);
	return 0;
}
