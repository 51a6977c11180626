/* b64.h — base64 for binary values in the control protocol's JSON (a sealed session context),
 * on OpenSSL's encoder. Callers link libcrypto. */
#ifndef BT_B64_H
#define BT_B64_H

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* A new NUL-terminated string, or NULL. */
static inline char *b64_encode(const uint8_t *p, size_t n)
{
	char *s = n < ((size_t)1 << 30) ? malloc(4 * ((n + 2) / 3) + 1) : NULL;
	if (s)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* A new buffer with the decoded bytes (*n of them), or NULL if s is not base64. */
static inline uint8_t *b64_decode(const char *s, size_t *n)
{
	size_t len = strlen(s);
	if (len % 4 || len >= ((size_t)1 << 30))
		return NULL;
	uint8_t *p = malloc(len / 4 * 3 + 1);
	int r = p ? EVP_DecodeBlock(p, (const unsigned char *)s, (int)len) : -1;
	if (r < 0) {
		free(p);
		return NULL;
	}
	size_t pad = len && s[len - 1] == '=' ? (len > 1 && s[len - 2] == '=' ? 2 : 1) : 0;
	*n = (size_t)r - pad;
	return p;
}

#endif
