/* ike_exchange_internal.h — what the pieces of the IKE exchange engine share: ike_exchange.c
 * (IKE_SA_INIT, IKE_AUTH, ike_process), ike_info.c, ike_ccs.c, ike_rekey.c and ike_mobike.c. Not for other users. */
#ifndef BT_IKE_EXCHANGE_INTERNAL_H
#define BT_IKE_EXCHANGE_INTERNAL_H

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_sa.h"

struct proposal_list {
	const struct ike_proposal *p;
	unsigned n;
};
#define IKE_PROPS(sa) ((struct proposal_list){(sa)->conf->ike_props, (sa)->conf->n_ike_props})
#define ESP_PROPS(cc) ((struct proposal_list){(cc)->esp_props, (cc)->n_esp_props})

/* ike_exchange.c */
void ike_x_child_free(struct ike_child *c);
void ike_x_drop_child(struct ike_child **c);
struct ike_child *ike_x_child_new(const struct ike_conf *cc);
int ike_x_child_set_ts(struct ike_child *c, const struct bt_ts *ti, unsigned ni, const struct bt_ts *tr, unsigned nr);
int ike_x_free_slot(const struct ike_sa *sa);
void ike_x_use_ike_choice(struct ike_sa *sa, const struct ike_proposal *p);
int ike_x_rnd(struct ike_sa *sa, void *buf, size_t len);
uint8_t *ike_x_dup_bytes(const uint8_t *p, size_t n);
void ike_x_put_spi(struct ike_proposal *p, uint32_t spi);
void ike_x_offer(const struct proposal_list *l, uint32_t spi, struct ike_sa_payload *out);
bool ike_x_choose(const struct ike_sa_payload *theirs, const struct proposal_list *ours, bool ignore_dh,
		  struct ike_proposal *out);
bool ike_x_accepted(const struct ike_sa_payload *reply, const struct proposal_list *ours, bool ignore_dh);
uint32_t ike_x_spi32(const uint8_t *p);
bool ike_x_subset(const struct bt_ts *sub, unsigned ns, const struct bt_ts *sup, unsigned nu);
uint16_t ike_x_pick_child(const struct ike_sa *sa, const struct ike_conf *only, const struct ike_sa_payload *sp,
			  bool ignore_dh, const struct ike_ts_payload *tsi, const struct ike_ts_payload *tsr,
			  struct ike_proposal *chosen, const struct ike_conf **cc, struct bt_ts *theirs, unsigned *nt,
			  struct bt_ts *mine, unsigned *nm);
void ike_x_put_natd(struct ike_sa *sa, struct ike_builder *b);
void ike_x_check_natd(struct ike_sa *sa, const struct ike_chain *c, uint64_t spi_r);
struct ike_hdr ike_x_hdr(const struct ike_sa *sa, uint8_t exchange, bool response, uint32_t id);
size_t ike_x_seal(struct ike_sa *sa, const struct ike_hdr *h, struct ike_builder *chain, uint8_t *out, size_t cap);
int ike_x_open_sk(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in);
size_t ike_x_cache(struct ike_sa *sa, const uint8_t *out, size_t len, uint32_t id);

/* ike_info.c */
uint32_t ike_x_our_spi(const struct ike_sa *sa, const struct ike_child *c);
uint32_t ike_x_peer_spi(const struct ike_sa *sa, const struct ike_child *c);
size_t ike_x_on_info_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			     const struct ike_chain *c, uint8_t *out, size_t cap);
int ike_x_open_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in);
size_t ike_x_on_info_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c);

/* ike_ccs.c */
size_t ike_x_ccs_error(struct ike_sa *sa, uint32_t id, uint16_t type, uint8_t *out, size_t cap);
size_t ike_x_ccs_invalid_ke(struct ike_sa *sa, uint32_t id, uint16_t group, uint8_t *out, size_t cap);
int ike_x_nonce_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
void ike_x_lower_nonce(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, const uint8_t **lo, size_t *ll);
size_t ike_x_on_ccs_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			    const struct ike_chain *c, uint8_t *out, size_t cap);
size_t ike_x_on_ccs_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c);

/* ike_rekey.c */
size_t ike_x_on_ike_rekey_request(struct ike_sa *sa, const struct ike_hdr *rh, const struct ike_chain *in,
				  const struct ike_sa_payload *sp, uint8_t *out, size_t cap);
void ike_x_on_ike_rekey_response(struct ike_sa *sa, const struct ike_chain *in, struct ike_dh *dh);
void ike_rekey_failed(struct ike_sa *sa);
size_t ike_x_on_old_ike(struct ike_sa *sa, struct ike_old_sa *o, const uint8_t *msg, size_t len, uint8_t *out,
			size_t cap);

/* ike_mobike.c */
void ike_x_note_mobike(struct ike_sa *sa, const struct ike_chain *c, bool auth, struct ike_notify_payload *cookie2,
		       bool *update);
void ike_x_put_my_addrs(struct ike_sa *sa, struct ike_builder *b, bool say_none);
bool ike_x_retransmit_same_path(struct ike_sa *sa, const uint8_t *msg, size_t len);

#endif
