/* xform.h — per-lane transform state (OpenSSL contexts pre-keyed once per SA and lane). Private to esp/. */
#ifndef BT_XFORM_H
#define BT_XFORM_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp/sa.h"

/* Static properties of a transform pair. */
struct xform_info {
	unsigned iv_len;    /* bytes on the wire */
	unsigned block;     /* the ciphertext must be a multiple of this (4 for stream/AEAD/NULL) */
	unsigned icv_len;
	bool aead;
};

struct esp_xform {
	EVP_CIPHER_CTX *cipher; /* keyed for the SA's direction; NULL for ESP_ENC_NULL */
	EVP_MAC_CTX *mac;       /* keyed HMAC; NULL for AEAD */
	uint8_t salt[4];
	uint8_t rnd[256];       /* random IVs for CBC, refilled in batches */
	unsigned rnd_pos;
};

int xform_info(enum esp_enc_alg enc, enum esp_integ_alg integ, struct xform_info *xi);
/* Expected key lengths in bytes (enc includes the salt/nonce). -1 for an invalid combination. */
int xform_key_lens(enum esp_enc_alg enc, unsigned enc_bits, enum esp_integ_alg integ,
		   unsigned *enc_len, unsigned *integ_len);
struct esp_xform *xform_new(const struct esp_sa *sa, char *err, size_t errlen);
void xform_free(struct esp_xform *xf);
/* Can xform_new build this SA's state (cipher and digest known to OpenSSL)? 0 or -1 with err. */
int xform_check(const struct esp_sa *sa, char *err, size_t errlen);

/* Fill the wire IV for a packet with sequence number seq. */
int xform_make_iv(struct esp_xform *xf, const struct esp_sa *sa, uint64_t seq, uint8_t *iv,
		  unsigned iv_len);
/* Encrypt data in place (len already padded). AEAD also writes the tag to icv. */
int xform_encrypt(struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *aad, size_t aad_len,
		  const uint8_t *iv, uint8_t *data, size_t len, uint8_t *icv);
/* Decrypt in place; AEAD verifies the tag (returns -1 on mismatch). */
int xform_decrypt(struct esp_xform *xf, const struct esp_sa *sa, const uint8_t *aad, size_t aad_len,
		  const uint8_t *iv, uint8_t *data, size_t len, const uint8_t *icv);
/* HMAC over two pieces (the packet and, with ESN, the high sequence bits), truncated to icv_len. */
int xform_mac(struct esp_xform *xf, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
	      uint8_t *out, unsigned icv_len);

#endif
