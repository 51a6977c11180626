/* ike_sk_internal.h — the cipher layer shared by the SK payload (ike_sk.c) and the Encrypted
 * Fragment payload (ike_frag.c): a suite's sizes, and sealing/opening of a body laid out as
 * IV | ciphertext (padded) | ICV behind a header that is the associated data. Not for other users. */
#ifndef BT_IKE_SK_INTERNAL_H
#define BT_IKE_SK_INTERNAL_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ike/ike_sk.h"
#include "util/cursor.h"

struct ike_sk_layout {
	const EVP_CIPHER *cipher;
	const char *digest; /* HMAC digest; NULL with AEAD */
	size_t key_len, salt_len, iv_len, block, icv_len, integ_key_len;
	bool aead;
};

/* The sizes of suite s. -1 if the suite is unknown or inconsistent (AEAD with an integrity alg). */
int ike_sk_layout_of(const struct ike_sk_suite *s, struct ike_sk_layout *l);

/* Ciphertext length for inner_len bytes of plaintext: padded to the block with the pad-length byte. */
size_t ike_sk_clen(const struct ike_sk_layout *l, size_t inner_len);

/* Write the IKE header of h with the given first payload type and message length, then that
 * payload's generic header (next payload `next`, length total - IKE_HDR_LEN). */
void ike_sk_put_hdrs(struct wbuf *w, const struct ike_hdr *h, uint8_t type, size_t total, uint8_t next);

/* msg holds hdr_len bytes of header (the associated data for AEAD; the start of what the HMAC
 * covers otherwise), then room for IV | ike_sk_clen(inner_len) | ICV. Writes a random IV, the
 * padded plaintext `inner`, encrypts it and writes the ICV. Returns 0 or -1. */
int ike_sk_body_seal(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *ka, uint8_t *msg,
		     size_t hdr_len, const uint8_t *inner, size_t inner_len);

/* msg holds hdr_len bytes of header, then IV | clen bytes of ciphertext | ICV. `plain` holds a copy
 * of the ciphertext (or is the ciphertext in msg itself: it is decrypted in place). Checks the ICV
 * first, decrypts, checks the padding; *inner_len is the plaintext length without it. 0 or -1. */
int ike_sk_body_open(const struct ike_sk_layout *l, const uint8_t *ke, const uint8_t *ka, const uint8_t *msg,
		     size_t hdr_len, uint8_t *plain, size_t clen, size_t *inner_len);

#endif
