/* testdata.h — reading the files in tests/unit/data (captures from real peers) from a unit test. */
#ifndef BT_TESTDATA_H
#define BT_TESTDATA_H

#include <stdio.h>
#include <stdlib.h>

/* Open tests/unit/data/NAME under $BATON_SRC (ctest sets it); fails the test if missing. */
static inline FILE *testdata_open(const char *name, const char *mode)
{
	char path[512];
	const char *src = getenv("BATON_SRC");
	snprintf(path, sizeof(path), "%s/tests/unit/data/%s", src ? src : ".", name);
	FILE *f = fopen(path, mode);
	if (!f)
		fail_msg("cannot open %s (set BATON_SRC to the source tree)", path);
	return f;
}

static inline size_t testdata_load(const char *name, uint8_t *buf, size_t cap)
{
	FILE *f = testdata_open(name, "rb");
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

#endif
