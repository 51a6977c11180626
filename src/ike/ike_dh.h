/* ike_dh.h — IKEv2 key exchange through OpenSSL: X25519 (RFC 8031), ECP-256/384 (RFC 5903: public
 * value x || y, shared secret x) and MODP-2048/3072/4096 (RFC 3526, values padded to the modulus). */
#ifndef BT_IKE_DH_H
#define BT_IKE_DH_H

#include <stddef.h>
#include <stdint.h>

struct ike_dh;

/* Length of the public value (and of the shared secret's upper bound) for a group; 0 if unknown. */
size_t ike_dh_public_len(uint16_t group);
/* A fresh key pair for a group (ike_dh enum), or NULL. */
struct ike_dh *ike_dh_new(uint16_t group);
uint16_t ike_dh_group(const struct ike_dh *dh);
/* Our public value in IKE encoding; *len in: capacity, out: length. Returns 0 or -1. */
int ike_dh_public(const struct ike_dh *dh, uint8_t *out, size_t *len);
/* The shared secret g^ir from the peer's public value (validated: length, point on the curve, not a
 * degenerate value). Returns 0 or -1. */
int ike_dh_shared(struct ike_dh *dh, const uint8_t *peer, size_t peer_len, uint8_t *out, size_t *out_len);
void ike_dh_free(struct ike_dh *dh);

#endif
