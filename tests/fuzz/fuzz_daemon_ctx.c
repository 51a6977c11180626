/* fuzz_daemon_ctx.c — arbitrary bytes as an opened session context (the attributes PUT reads after
 * the seal verified): accepted or refused with a reason, never a crash, a leak or a read past the
 * end. The seeds are real contexts of an IKE SA with a Child SA. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/xfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	if (xfer_ctx_validate(data, size, err, sizeof(err)) != 0 && !err[0])
		abort(); /* every refusal says why */
	return 0;
}
