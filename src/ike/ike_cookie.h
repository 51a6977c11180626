/* ike_cookie.h — stateless cookies against IKE_SA_INIT floods (RFC 7296 2.6): the responder
 * answers with a COOKIE notify it can check later without keeping state, once the number of
 * half-open SAs passes a threshold. */
#ifndef BT_IKE_COOKIE_H
#define BT_IKE_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

#define IKE_COOKIE_SECRET_LEN 32
#define IKE_COOKIE_LEN (4 + 32) /* <VersionIDofSecret> | SHA-256(...) */

/* The current secret and the one before it: a cookie handed out just before a rotation still
 * verifies, one from two rotations ago does not. Secrets are zeroed by ike_cookie_clear. */
struct ike_cookie_gen {
	uint32_t version, prev_version; /* version identifiers on the wire */
	bool have_prev;
	uint8_t secret[IKE_COOKIE_SECRET_LEN], prev[IKE_COOKIE_SECRET_LEN];
	uint64_t rotated_ms, period_ms;
};

/* A fresh random secret, rotated every period_ms by ike_cookie_tick. Returns 0 or -1. */
int ike_cookie_init(struct ike_cookie_gen *g, uint64_t now_ms, uint64_t period_ms);
void ike_cookie_clear(struct ike_cookie_gen *g);
/* Keep the current secret as the previous one and draw a new one with the next version. 0 or -1. */
int ike_cookie_rotate(struct ike_cookie_gen *g, uint64_t now_ms);
/* Rotate if the period has passed (call from the owner's timer or per IKE_SA_INIT). 0 or -1. */
int ike_cookie_tick(struct ike_cookie_gen *g, uint64_t now_ms);

/* out = <version> | SHA-256(Ni | IPi | SPIi | secret), IPi the initiator's address (4 or 16
 * bytes), SPIi in network order. Returns 0 or -1. */
int ike_cookie_make(const struct ike_cookie_gen *g, const uint8_t *ni, size_t ni_len, const struct bt_addr *ip_i,
		    uint64_t spi_i, uint8_t out[IKE_COOKIE_LEN]);
/* True if cookie (as received in the COOKIE notify) was made by us from these values with the
 * current or the previous secret. Constant-time comparison. */
bool ike_cookie_verify(const struct ike_cookie_gen *g, const uint8_t *ni, size_t ni_len, const struct bt_addr *ip_i,
		       uint64_t spi_i, const uint8_t *cookie, size_t cookie_len);

/* Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet done): cookies are required while
 * their number is at or above the threshold (0: always). */
struct ike_half_open {
	uint32_t n, threshold;
};
static inline void ike_half_open_inc(struct ike_half_open *h) { h->n++; }
static inline void ike_half_open_dec(struct ike_half_open *h) { h->n -= h->n > 0; }
static inline bool ike_cookie_required(const struct ike_half_open *h) { return h->n >= h->threshold; }

#endif
