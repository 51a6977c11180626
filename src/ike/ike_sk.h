/* ike_sk.h — the Encrypted payload (SK, RFC 7296 3.14): integrity check and decryption of a
 * received message, encryption and integrity of one we send; AES-CBC / 3DES with HMAC, and AEAD
 * (AES-GCM per RFC 5282, ChaCha20-Poly1305 per RFC 7634) with the IKE header and SK payload header
 * as additional data. */
#ifndef BT_IKE_SK_H
#define BT_IKE_SK_H

#include <stddef.h>
#include <stdint.h>

#include "ike/ike_msg.h"

struct ike_sk_suite {
	uint16_t encr;      /* ike_encr */
	uint16_t encr_bits; /* AES key size */
	uint16_t integ;     /* ike_integ; IKE_INTEG_NONE with AEAD */
};

/* Key lengths the suite takes (encryption key includes the 4-byte salt of AEAD). -1 if unknown. */
int ike_sk_key_lens(const struct ike_sk_suite *s, size_t *encr_len, size_t *integ_len);

/* Check and decrypt the SK payload `sk` (parsed from msg, which is modified in place). On success
 * *inner points at the decrypted payload chain, whose first type is sk->... (the SK payload's
 * next-payload field, in *first). Returns 0, or -1 if the ICV fails or the layout is wrong. */
int ike_sk_open(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, uint8_t *msg, size_t msg_len,
		const struct ike_payload *sk, uint8_t *first, const uint8_t **inner, size_t *inner_len);

/* Build a whole message: header h, then SK holding the payload chain `inner` (first type `first`).
 * Returns the message length, or 0 if it does not fit. */
size_t ike_sk_seal(const struct ike_sk_suite *s, const uint8_t *ke, const uint8_t *ka, const struct ike_hdr *h,
		   uint8_t first, const uint8_t *inner, size_t inner_len, uint8_t *out, size_t cap);

#endif
