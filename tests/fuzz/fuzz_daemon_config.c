/* fuzz_daemon_config.c — arbitrary text as a configuration: a config or an error with file:line,
 * never a crash or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_config *cfg = NULL;
	char err[512];
	if (config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err)) == 0) {
		char e2[256];
		struct spd *spd = config_build_spd(cfg, e2, sizeof(e2));
		spd_free(spd);
		config_free(cfg);
	} else if (strncmp(err, "fuzz.conf:", 10) != 0) {
		abort(); /* every error names the file (and the line) */
	}
	return 0;
}
