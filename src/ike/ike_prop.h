/* ike_prop.h — proposals as a strongSwan user writes them ("aes128gcm16-prfsha256-x25519",
 * "aes256-sha256-modp2048", "aes128gcm16-esn") and their negotiation (RFC 7296 2.7, 3.3.6): the
 * responder picks, from the first of the peer's proposals it can accept, one transform of each type
 * that both sides list. */
#ifndef BT_IKE_PROP_H
#define BT_IKE_PROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ike/ike_msg.h"

#define IKE_CONF_PROPS 8

/* Parse one proposal string for protocol IKE_PROTO_IKE or IKE_PROTO_ESP. A token may list
 * several algorithms of one type ("aes128-aes256-sha256-x25519-ecp256"). Returns 0, or -1 with a
 * message in err. */
int ike_prop_parse(const char *s, uint8_t protocol, struct ike_proposal *p, char *err, size_t errlen);
/* The transform of a type in a proposal (the first one), or NULL. */
const struct ike_transform *ike_prop_get(const struct ike_proposal *p, uint8_t type);
/* One transform per type that both `theirs` and `ours` list, in the peer's order of preference.
 * A DH transform the peer offers and we do not list is ignored when ignore_dh (IKE_AUTH's first
 * Child SA); a missing ESN transform counts as "no ESN". Returns true with *out set. */
bool ike_prop_select(const struct ike_proposal *theirs, const struct ike_proposal *ours, bool ignore_dh,
		     struct ike_proposal *out);
/* Does `chosen` (one transform per type, from the peer) pick only from `ours`? */
bool ike_prop_within(const struct ike_proposal *chosen, const struct ike_proposal *ours, bool ignore_dh);
/* The name of a proposal with one transform per type, e.g. "aes128gcm16-prfsha256-x25519". */
void ike_prop_name(const struct ike_proposal *p, char *buf, size_t len);
/* Key lengths an ESP proposal needs (encryption incl. the 4-byte salt of GCM/ChaCha/CTR). */
int ike_prop_esp_key_lens(const struct ike_proposal *p, size_t *encr_len, size_t *integ_len);
bool ike_encr_is_aead(uint16_t encr);

#endif
