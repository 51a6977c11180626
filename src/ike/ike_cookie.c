/* ike_cookie.c — COOKIE values (RFC 7296 2.6) over OpenSSL SHA-256 and RAND. */
#include "ike/ike_cookie.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

int ike_cookie_init(struct ike_cookie_gen *g, uint64_t now_ms, uint64_t period_ms)
{
	memset(g, 0, sizeof(*g));
	g->period_ms = period_ms;
	g->rotated_ms = now_ms;
	/* a random first version, so a restarted responder does not reuse its predecessor's */
	if (RAND_bytes((uint8_t *)&g->version, sizeof(g->version)) != 1 ||
	    RAND_priv_bytes(g->secret, sizeof(g->secret)) != 1)
		return -1;
	return 0;
}

void ike_cookie_clear(struct ike_cookie_gen *g)
{
	OPENSSL_cleanse(g, sizeof(*g));
}

int ike_cookie_rotate(struct ike_cookie_gen *g, uint64_t now_ms)
{
	uint8_t fresh[IKE_COOKIE_SECRET_LEN];
	if (RAND_priv_bytes(fresh, sizeof(fresh)) != 1)
		return -1;
	memcpy(g->prev, g->secret, sizeof(g->prev));
	memcpy(g->secret, fresh, sizeof(g->secret));
	OPENSSL_cleanse(fresh, sizeof(fresh));
	g->prev_version = g->version;
	g->version++;
	g->have_prev = true;
	g->rotated_ms = now_ms;
	return 0;
}

int ike_cookie_tick(struct ike_cookie_gen *g, uint64_t now_ms)
{
	return now_ms - g->rotated_ms >= g->period_ms ? ike_cookie_rotate(g, now_ms) : 0;
}

static int make(uint32_t version, const uint8_t *secret, const uint8_t *ni, size_t ni_len, const struct bt_addr *ip,
		uint64_t spi_i, uint8_t out[IKE_COOKIE_LEN])
{
	uint8_t spi[8];
	unsigned int len = 0;
	for (int i = 0; i < 8; i++)
		spi[i] = (uint8_t)(spi_i >> (56 - 8 * i));
	out[0] = (uint8_t)(version >> 24), out[1] = (uint8_t)(version >> 16);
	out[2] = (uint8_t)(version >> 8), out[3] = (uint8_t)version;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, ni, ni_len) &&
		 EVP_DigestUpdate(ctx, ip->b, bt_addr_len(ip)) && EVP_DigestUpdate(ctx, spi, sizeof(spi)) &&
		 EVP_DigestUpdate(ctx, secret, IKE_COOKIE_SECRET_LEN) && EVP_DigestFinal_ex(ctx, out + 4, &len) &&
		 len == IKE_COOKIE_LEN - 4;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int ike_cookie_make(const struct ike_cookie_gen *g, const uint8_t *ni, size_t ni_len, const struct bt_addr *ip_i,
		    uint64_t spi_i, uint8_t out[IKE_COOKIE_LEN])
{
	return make(g->version, g->secret, ni, ni_len, ip_i, spi_i, out);
}

bool ike_cookie_verify(const struct ike_cookie_gen *g, const uint8_t *ni, size_t ni_len, const struct bt_addr *ip_i,
		       uint64_t spi_i, const uint8_t *cookie, size_t cookie_len)
{
	uint8_t want[IKE_COOKIE_LEN];
	if (cookie_len != IKE_COOKIE_LEN)
		return false;
	uint32_t v = (uint32_t)cookie[0] << 24 | (uint32_t)cookie[1] << 16 | (uint32_t)cookie[2] << 8 | cookie[3];
	const uint8_t *secret = v == g->version ? g->secret : g->have_prev && v == g->prev_version ? g->prev : NULL;
	if (!secret || make(v, secret, ni, ni_len, ip_i, spi_i, want))
		return false;
	return CRYPTO_memcmp(want, cookie, IKE_COOKIE_LEN) == 0;
}
