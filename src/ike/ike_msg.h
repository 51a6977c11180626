/* ike_msg.h — IKEv2 message parsing and building. The parser records facts (header, payload chain,
 * payload contents as borrowed byte ranges); the exchange code decides what they mean. Nothing here
 * decrypts: the SK payload is handed over as its raw body. */
#ifndef BT_IKE_MSG_H
#define BT_IKE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ike/ike_wire.h"
#include "policy/ts.h"
#include "util/cursor.h"

#define IKE_MAX_PAYLOADS 48
#define IKE_MAX_PROPOSALS 16
#define IKE_MAX_TRANSFORMS 32

struct ike_hdr {
	uint64_t spi_i, spi_r;
	uint8_t next_payload;
	uint8_t version;
	uint8_t exchange;
	uint8_t flags;
	uint32_t msg_id;
	uint32_t length;
};

struct ike_payload {
	uint8_t type;
	bool critical;
	const uint8_t *body; /* borrowed from the message buffer */
	size_t len;
};

/* A chain of payloads (the clear part of a message, or the decrypted inside of SK). */
struct ike_chain {
	struct ike_payload pl[IKE_MAX_PAYLOADS];
	unsigned n;
	uint8_t unsupported_critical; /* first unknown payload type flagged critical, 0 = none */
};

/* Why a message or payload was refused; maps to a counted drop or an error notify. */
enum ike_perr {
	IKE_PERR_OK = 0,
	IKE_PERR_SHORT,          /* truncated */
	IKE_PERR_LENGTH,         /* a length field disagrees with what is there */
	IKE_PERR_VERSION,        /* major version not 2: INVALID_MAJOR_VERSION */
	IKE_PERR_TOO_MANY,       /* more payloads/proposals/transforms than we keep */
	IKE_PERR_SYNTAX,         /* anything else malformed: INVALID_SYNTAX */
};
const char *ike_perr_name(enum ike_perr e);

/* Parse the header and the payload chain that follows it. The SK payload, if any, must be last
 * (RFC 7296 3.14); its body is left raw. */
enum ike_perr ike_parse(const uint8_t *msg, size_t len, struct ike_hdr *h, struct ike_chain *c);
/* Parse a payload chain starting with type `first` (e.g. the decrypted contents of SK). */
enum ike_perr ike_parse_chain(uint8_t first, const uint8_t *p, size_t len, struct ike_chain *c);
const struct ike_payload *ike_find(const struct ike_chain *c, uint8_t type, unsigned nth);

/* --- payload bodies ---------------------------------------------------------------------------- */

struct ike_transform {
	uint8_t type;
	uint16_t id;
	uint16_t key_bits; /* 0 = no key-length attribute */
};

struct ike_proposal {
	uint8_t num, protocol;
	uint8_t spi_len;
	uint8_t spi[8];
	struct ike_transform tr[IKE_MAX_TRANSFORMS];
	unsigned n_tr;
};

struct ike_sa_payload {
	struct ike_proposal prop[IKE_MAX_PROPOSALS];
	unsigned n;
};

struct ike_notify_payload {
	uint8_t protocol, spi_len;
	uint16_t type;
	const uint8_t *spi, *data;
	size_t data_len;
};

struct ike_ke_payload {
	uint16_t group;
	const uint8_t *data;
	size_t len;
};

struct ike_id_payload {
	uint8_t type;
	const uint8_t *data;
	size_t len;
};

struct ike_auth_payload {
	uint8_t method;
	const uint8_t *data;
	size_t len;
};

struct ike_delete_payload {
	uint8_t protocol, spi_len;
	uint16_t n_spi;
	const uint8_t *spis;
};

struct ike_ts_payload {
	struct bt_ts ts[BT_TS_MAX];
	unsigned n;
};

enum ike_perr ike_parse_sa(const struct ike_payload *p, struct ike_sa_payload *sa);
enum ike_perr ike_parse_notify(const struct ike_payload *p, struct ike_notify_payload *n);
enum ike_perr ike_parse_ke(const struct ike_payload *p, struct ike_ke_payload *ke);
enum ike_perr ike_parse_id(const struct ike_payload *p, struct ike_id_payload *id);
enum ike_perr ike_parse_auth(const struct ike_payload *p, struct ike_auth_payload *a);
enum ike_perr ike_parse_delete(const struct ike_payload *p, struct ike_delete_payload *d);
enum ike_perr ike_parse_ts(const struct ike_payload *p, struct ike_ts_payload *ts);

/* --- building ---------------------------------------------------------------------------------- */

/* A message under construction: ike_build_begin writes the header, ike_build_payload opens a
 * payload (patching the previous one's next-payload field), ike_build_end closes the last payload
 * and the message length. Check w.overflow at the end. */
struct ike_builder {
	struct wbuf w;
	size_t last_hdr;  /* offset of the generic header of the open payload, or SIZE_MAX */
	size_t next_at;   /* offset of the byte that names the next payload */
	uint8_t first;    /* chain only: the type of the first payload */
	bool chain_only;
};

void ike_build_begin(struct ike_builder *b, uint8_t *buf, size_t cap, const struct ike_hdr *h);
void ike_build_payload(struct ike_builder *b, uint8_t type, bool critical);
size_t ike_build_end(struct ike_builder *b);

/* A bare payload chain (the plaintext of an SK payload): no IKE header; b->first names the first
 * payload type once one is added. ike_build_end returns the chain's length. */
void ike_build_chain_begin(struct ike_builder *b, uint8_t *buf, size_t cap);

void ike_put_sa(struct ike_builder *b, const struct ike_sa_payload *sa);
void ike_put_notify(struct ike_builder *b, uint8_t protocol, const uint8_t *spi, uint8_t spi_len, uint16_t type,
		    const void *data, size_t len);
void ike_put_ke(struct ike_builder *b, uint16_t group, const void *data, size_t len);
void ike_put_raw(struct ike_builder *b, uint8_t type, const void *data, size_t len); /* Nonce, Vendor, ... */
void ike_put_id(struct ike_builder *b, uint8_t type, uint8_t id_type, const void *data, size_t len);
void ike_put_auth(struct ike_builder *b, uint8_t method, const void *data, size_t len);
void ike_put_ts(struct ike_builder *b, uint8_t type, const struct bt_ts *ts, unsigned n);

#endif
