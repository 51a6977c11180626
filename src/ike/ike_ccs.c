/* ike_ccs.c — CREATE_CHILD_SA for new Child SAs and Child SA rekeys, both roles, with the
 * collisions of RFC 7296 2.8.1; IKE SA rekeys arriving here are handed to ike_rekey.c. */
#include "ike/ike_exchange_internal.h"

/* --- CREATE_CHILD_SA: new Child SAs and their rekeys --------------------------------------------- */

/* Fill a child (ch->esp set) from KEYMAT of an exchange we (we_started) or the peer started, keeping
 * the convention of struct ike_child: "i" is the IKE SA's initiator. */
static int child_keys(struct ike_sa *sa, struct ike_child *ch, bool we_started, const uint8_t *g, size_t gl,
		      const uint8_t *n_req, size_t n_req_len, const uint8_t *n_resp, size_t n_resp_len)
{
	uint8_t e1[IKE_KEY_MAX + 4], a1[IKE_KEY_MAX], e2[IKE_KEY_MAX + 4], a2[IKE_KEY_MAX];
	if (ike_prop_esp_key_lens(&ch->esp, &ch->encr_len, &ch->integ_len) != 0 ||
	    ike_child_keymat(sa->prf, sa->keys.sk_d, g, gl, n_req, n_req_len, n_resp, n_resp_len, ch->encr_len,
			     ch->integ_len, e1, a1, e2, a2) != 0)
		return -1;
	/* e1/a1 protect exchange-initiator -> responder traffic */
	bool orig_started = we_started == sa->initiator;
	memcpy(orig_started ? ch->ei : ch->er, e1, ch->encr_len);
	memcpy(orig_started ? ch->ai : ch->ar, a1, ch->integ_len);
	memcpy(orig_started ? ch->er : ch->ei, e2, ch->encr_len);
	memcpy(orig_started ? ch->ar : ch->ai, a2, ch->integ_len);
	OPENSSL_cleanse(e1, sizeof(e1)), OPENSSL_cleanse(a1, sizeof(a1));
	OPENSSL_cleanse(e2, sizeof(e2)), OPENSSL_cleanse(a2, sizeof(a2));
	return 0;
}

/* SPIs and selectors of a child made by a CREATE_CHILD_SA exchange, given as that exchange names
 * them (its TSi is the requester's side), into the child's "i = IKE SA initiator" convention. */
static int child_fill(struct ike_sa *sa, struct ike_child *nc, bool we_started, uint32_t ours, uint32_t theirs,
		      const struct bt_ts *req, unsigned nreq, const struct bt_ts *resp, unsigned nresp)
{
	nc->spi_i = sa->initiator ? ours : theirs;
	nc->spi_r = sa->initiator ? theirs : ours;
	const struct bt_ts *mine = we_started ? req : resp, *peer = we_started ? resp : req;
	unsigned nm = we_started ? nreq : nresp, np = we_started ? nresp : nreq;
	return sa->initiator ? ike_x_child_set_ts(nc, mine, nm, peer, np) : ike_x_child_set_ts(nc, peer, np, mine, nm);
}

/* Our CREATE_CHILD_SA request for configured child cc: rekeying c, or a new Child SA (c NULL). */
static size_t ccs_child_request(struct ike_sa *sa, struct ike_child *c, const struct ike_conf *cc, uint8_t *out,
				size_t cap)
{
	uint32_t spi;
	uint8_t pub[512], chain[2048];
	size_t pl = 0;
	if (ike_x_rnd(sa, &spi, sizeof(spi)) || ike_x_rnd(sa, sa->ccs_nonce, sizeof(sa->ccs_nonce)))
		return 0;
	sa->ccs_spi = spi | 0xc0000000u;
	/* PFS when our first ESP proposal names a group (or the one the peer asked for) */
	const struct ike_transform *g = ike_prop_get(&cc->esp_props[0], IKE_TR_DH);
	uint16_t group = sa->ccs_group ? sa->ccs_group : g ? g->id : 0;
	ike_dh_free(sa->ccs_dh);
	sa->ccs_dh = NULL;
	if (group) {
		pl = sizeof(pub);
		if (!(sa->ccs_dh = ike_dh_new(group)) || ike_dh_public(sa->ccs_dh, pub, &pl))
			return 0;
	}
	struct ike_sa_payload esp;
	struct proposal_list eo = ESP_PROPS(cc);
	ike_x_offer(&eo, sa->ccs_spi, &esp);
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	if (c) {
		uint8_t old[4];
		uint32_t o = ike_x_our_spi(sa, c);
		old[0] = (uint8_t)(o >> 24), old[1] = (uint8_t)(o >> 16), old[2] = (uint8_t)(o >> 8), old[3] = (uint8_t)o;
		ike_put_notify(&b, IKE_PROTO_ESP, old, 4, IKE_N_REKEY_SA, NULL, 0);
	}
	ike_put_sa(&b, &esp);
	ike_put_raw(&b, IKE_PL_NONCE, sa->ccs_nonce, sizeof(sa->ccs_nonce));
	if (sa->ccs_dh)
		ike_put_ke(&b, group, pub, pl);
	/* a rekey proposes the selectors the child has (RFC 7296 2.9.2), a new child the configured ones */
	if (c) {
		ike_put_ts(&b, IKE_PL_TSI, sa->initiator ? c->ts_i : c->ts_r, sa->initiator ? c->n_ts_i : c->n_ts_r);
		ike_put_ts(&b, IKE_PL_TSR, sa->initiator ? c->ts_r : c->ts_i, sa->initiator ? c->n_ts_r : c->n_ts_i);
	} else {
		ike_put_ts(&b, IKE_PL_TSI, cc->local_ts, cc->n_local_ts);
		ike_put_ts(&b, IKE_PL_TSR, cc->remote_ts, cc->n_remote_ts);
	}
	struct ike_hdr h = ike_x_hdr(sa, IKE_CREATE_CHILD_SA, false, sa->next_send_id);
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	if (!len)
		return 0;
	sa->ccs_pending = true, sa->ccs_ike = false, sa->ccs_id = sa->next_send_id, sa->ccs_error = 0;
	sa->ccs_child = c, sa->ccs_conf = cc;
	return len;
}

static bool ccs_busy(const struct ike_sa *sa)
{
	return sa->state != IKE_ST_ESTABLISHED || sa->ccs_pending || sa->info_pending || sa->old_ike.present;
}

size_t ike_rekey_child(struct ike_sa *sa, struct ike_child *c, uint8_t *out, size_t cap)
{
	if (ccs_busy(sa) || !c || c->gone || c->next_ready || c->old_present || c->coll || c->red || !c->conf)
		return 0;
	return ccs_child_request(sa, c, c->conf, out, cap);
}

size_t ike_create_child(struct ike_sa *sa, const struct ike_conf *cc, uint8_t *out, size_t cap)
{
	if (ccs_busy(sa) || !cc || !cc->n_esp_props || !cc->n_local_ts || !cc->n_remote_ts || ike_x_free_slot(sa) < 0)
		return 0;
	return ccs_child_request(sa, NULL, cc, out, cap);
}

/* A CREATE_CHILD_SA error response (with the notify's data: the group of INVALID_KE_PAYLOAD). */
static size_t ccs_error_data(struct ike_sa *sa, uint32_t id, uint16_t type, const void *data, size_t dlen, uint8_t *out,
			     size_t cap)
{
	uint8_t chain[64];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_notify(&b, 0, NULL, 0, type, data, dlen);
	struct ike_hdr h = ike_x_hdr(sa, IKE_CREATE_CHILD_SA, true, id);
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	sa->next_recv_id = id + 1;
	return len ? ike_x_cache(sa, out, len, id) : 0;
}

size_t ike_x_ccs_error(struct ike_sa *sa, uint32_t id, uint16_t type, uint8_t *out, size_t cap)
{
	return ccs_error_data(sa, id, type, NULL, 0, out, cap);
}

/* INVALID_KE_PAYLOAD naming the group we want. */
size_t ike_x_ccs_invalid_ke(struct ike_sa *sa, uint32_t id, uint16_t group, uint8_t *out, size_t cap)
{
	uint8_t gb[2] = {(uint8_t)(group >> 8), (uint8_t)group};
	return ccs_error_data(sa, id, IKE_N_INVALID_KE_PAYLOAD, gb, sizeof(gb), out, cap);
}

/* RFC 7296 2.8.1: "lowest" compares octet by octet; a nonce that is a prefix of the other is lower. */
int ike_x_nonce_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r ? r : (al > bl) - (al < bl);
}

void ike_x_lower_nonce(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, const uint8_t **lo, size_t *ll)
{
	bool first = ike_x_nonce_cmp(a, al, b, bl) <= 0;
	*lo = first ? a : b, *ll = first ? al : bl;
}

static int slot_of(const struct ike_sa *sa, const struct ike_child *c)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (c && sa->child[i] == c)
			return i;
	return -1;
}

void ike_child_promote(struct ike_sa *sa, struct ike_child *c)
{
	int i = slot_of(sa, c);
	if (i < 0 || !c->next_ready || !c->next)
		return;
	/* the new child takes the slot; the old one waits in it for its delete */
	struct ike_child *n = c->next;
	c->next = NULL, c->next_ready = false;
	n->old = c, n->old_present = true;
	n->red = c->red, n->red_delete = c->red_delete, n->coll = c->coll;
	n->coll_nonce = c->coll_nonce, n->coll_nonce_len = c->coll_nonce_len;
	c->red = c->coll = NULL, c->coll_nonce = NULL, c->red_delete = false;
	ike_x_drop_child(&c->old);
	c->old_present = false;
	n->rekeys = c->rekeys + 1;
	n->conf = c->conf;
	sa->child[i] = n;
	if (sa->ccs_child == c)
		sa->ccs_child = n;
	sa->child_rekeys++;
}

/* The peer's CREATE_CHILD_SA: a new Child SA for one of our configured children, a rekey of one
 * (by its SPI in REKEY_SA), or a rekey of the IKE SA. A refusal is an error notify that leaves the
 * IKE SA and the other children as they were. */
size_t ike_x_on_ccs_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			    const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_chain in;
	if (ike_x_open_sk(sa, msg, len, c, &in) != 0)
		return 0;
	struct ike_sa_payload sp;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0);
	if (sap && ike_parse_sa(sap, &sp) == IKE_PERR_OK && sp.n && sp.prop[0].protocol == IKE_PROTO_IKE)
		return ike_x_on_ike_rekey_request(sa, rh, &in, &sp, out, cap);
	bool rekey = false;
	struct ike_child *old = NULL;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++) {
		struct ike_notify_payload n;
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK || n.type != IKE_N_REKEY_SA)
			continue;
		rekey = true;
		for (int k = 0; k < IKE_CHILD_MAX && n.protocol == IKE_PROTO_ESP && n.spi_len == 4 && !old; k++)
			if (sa->child[k] && !sa->child[k]->gone && ike_x_peer_spi(sa, sa->child[k]) == ike_x_spi32(n.spi))
				old = sa->child[k];
	}
	if (rekey && !old)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_CHILD_SA_NOT_FOUND, out, cap);
	/* RFC 7296 2.25: a child whose rekey is unfinished, or while the IKE SA is being rekeyed. Our own
	 * rekey of the same child in flight is a collision that both complete (2.8.1). */
	bool collision = old && sa->ccs_pending && !sa->ccs_ike && sa->ccs_child == old;
	if (old && (old->next_ready || old->old_present || old->coll || old->red || (sa->ccs_pending && sa->ccs_ike) ||
		    sa->old_ike.present))
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	int slot = old ? -1 : ike_x_free_slot(sa);
	if (!old && slot < 0)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_NO_ADDITIONAL_SAS, out, cap);
	struct ike_ts_payload tsi, tsr;
	const struct ike_payload *np = ike_find(&in, IKE_PL_NONCE, 0), *kep = ike_find(&in, IKE_PL_KE, 0),
				 *ip = ike_find(&in, IKE_PL_TSI, 0), *tp = ike_find(&in, IKE_PL_TSR, 0);
	if (!sap || !np || !ip || !tp || ike_parse_sa(sap, &sp) || ike_parse_ts(ip, &tsi) || ike_parse_ts(tp, &tsr) ||
	    np->len < 16 || np->len > 256)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_INVALID_SYNTAX, out, cap);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_conf *cc = NULL;
	struct bt_ts pi[BT_TS_MAX], mi[BT_TS_MAX]; /* the peer's side, ours */
	unsigned npi, nmi;
	uint16_t err = ike_x_pick_child(sa, old ? old->conf : NULL, &sp, false, &tsi, &tsr, chosen, &cc, pi, &npi, mi, &nmi);
	if (err)
		return ike_x_ccs_error(sa, rh->msg_id, err, out, cap);
	const struct ike_transform *g = ike_prop_get(chosen, IKE_TR_DH);
	struct ike_ke_payload ke;
	uint8_t pub[512], gir[512], nr[32];
	size_t pl = sizeof(pub), gl = 0;
	struct ike_dh *dh = NULL;
	if (g && g->id) {
		if (!kep || ike_parse_ke(kep, &ke) || ke.group != g->id)
			return ike_x_ccs_invalid_ke(sa, rh->msg_id, g->id, out, cap);
		gl = sizeof(gir);
		if (!(dh = ike_dh_new(g->id)) || ike_dh_public(dh, pub, &pl) || ike_dh_shared(dh, ke.data, ke.len, gir, &gl)) {
			ike_dh_free(dh);
			return ike_x_ccs_error(sa, rh->msg_id, IKE_N_INVALID_KE_PAYLOAD, out, cap);
		}
	}
	struct ike_child *nc = ike_x_child_new(cc);
	uint32_t spi = 0;
	const uint8_t *lo;
	size_t ll = 0;
	int bad = !nc || ike_x_rnd(sa, &spi, sizeof(spi)) || ike_x_rnd(sa, nr, sizeof(nr));
	if (!bad) {
		spi |= 0xc0000000u;
		nc->esp = *chosen;
		bad = child_keys(sa, nc, false, gl ? gir : NULL, gl, np->body, np->len, nr, sizeof(nr)) ||
		      child_fill(sa, nc, false, spi, ike_x_spi32(chosen->spi), pi, npi, mi, nmi);
	}
	OPENSSL_cleanse(gir, sizeof(gir));
	if (!bad && collision) {
		ike_x_lower_nonce(np->body, np->len, nr, sizeof(nr), &lo, &ll);
		bad = !(old->coll_nonce = ike_x_dup_bytes(lo, ll));
		old->coll_nonce_len = ll;
	}
	if (bad) {
		ike_x_child_free(nc);
		ike_dh_free(dh);
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	}
	ike_x_put_spi(chosen, spi);
	uint8_t chain[2048];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_sa(&b, &reply);
	ike_put_raw(&b, IKE_PL_NONCE, nr, sizeof(nr));
	if (dh)
		ike_put_ke(&b, g->id, pub, pl);
	ike_put_ts(&b, IKE_PL_TSI, pi, npi);
	ike_put_ts(&b, IKE_PL_TSR, mi, nmi);
	ike_dh_free(dh);
	struct ike_hdr h = ike_x_hdr(sa, IKE_CREATE_CHILD_SA, true, rh->msg_id);
	size_t olen = ike_x_seal(sa, &h, &b, out, cap);
	if (!olen) {
		ike_x_child_free(nc);
		if (collision)
			free(old->coll_nonce), old->coll_nonce = NULL;
		return 0;
	}
	sa->next_recv_id = rh->msg_id + 1;
	if (collision) {
		old->coll = nc; /* decided when our own exchange ends */
	} else if (old) {
		old->next = nc, old->next_ready = true, old->next_ours = false;
	} else {
		nc->up = true;
		sa->child[slot] = nc;
	}
	return ike_x_cache(sa, out, olen, rh->msg_id);
}

/* INVALID_KE_PAYLOAD to our CREATE_CHILD_SA: take the group it names, if we offer it, for the
 * next try (ike_rekey_child / ike_rekey_ike). */
static void note_wanted_group(struct ike_sa *sa, uint16_t g)
{
	const struct proposal_list l = sa->ccs_ike ? IKE_PROPS(sa) : ESP_PROPS(sa->ccs_conf);
	for (unsigned i = 0; i < l.n; i++)
		for (unsigned t = 0; t < l.p[i].n_tr; t++)
			if (l.p[i].tr[t].type == IKE_TR_DH && l.p[i].tr[t].id == g) {
				if (sa->ccs_ike)
					sa->group = g;
				else
					sa->ccs_group = g;
				return;
			}
}

/* Our rekey of c and the peer's of the same child both completed (RFC 7296 2.8.1): the exchange
 * holding the lowest of the four nonces made the redundant SA, which its creator deletes; the
 * other becomes c's next. ours is the child our exchange made, lo its lower nonce. */
static void settle_collision(struct ike_sa *sa, struct ike_child *c, struct ike_child *ours, const uint8_t *lo, size_t ll)
{
	bool ours_lost = ike_x_nonce_cmp(lo, ll, c->coll_nonce, c->coll_nonce_len) < 0;
	struct ike_child *theirs = c->coll;
	c->coll = NULL;
	free(c->coll_nonce);
	c->coll_nonce = NULL, c->coll_nonce_len = 0;
	c->next = ours_lost ? theirs : ours;
	c->red = ours_lost ? ours : theirs;
	c->next_ready = true, c->next_ours = !ours_lost, c->red_delete = ours_lost;
	sa->rekey_collisions++;
}

/* Our CREATE_CHILD_SA was refused or failed: a peer's rekey that collided with it is the rekey. */
static void ccs_failed(struct ike_sa *sa, uint16_t why)
{
	struct ike_child *c = sa->ccs_child;
	sa->ccs_error = why;
	if (c && c->coll) {
		c->next = c->coll, c->next_ready = true, c->next_ours = false;
		c->coll = NULL;
		free(c->coll_nonce);
		c->coll_nonce = NULL, c->coll_nonce_len = 0;
	}
}

size_t ike_x_on_ccs_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	if (ike_x_open_response(sa, msg, len, c, &in) != 0)
		return 0;
	sa->ccs_pending = false;
	struct ike_dh *dh = sa->ccs_dh;
	sa->ccs_dh = NULL;
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type < 16384) {
			if (n.type == IKE_N_INVALID_KE_PAYLOAD && n.data_len == 2)
				note_wanted_group(sa, (uint16_t)(n.data[0] << 8 | n.data[1]));
			ike_dh_free(dh);
			if (!sa->ccs_ike) {
				ccs_failed(sa, n.type); /* the IKE SA and the children go on */
			} else {
				sa->ccs_error = n.type;
				ike_rekey_failed(sa);
			}
			return 0;
		}
	if (sa->ccs_ike) {
		ike_x_on_ike_rekey_response(sa, &in, dh);
		if (sa->ccs_error)
			ike_rekey_failed(sa);
		ike_dh_free(dh);
		return 0;
	}
	struct ike_child *old = sa->ccs_child;
	const struct ike_conf *cc = sa->ccs_conf;
	int slot = old ? -1 : ike_x_free_slot(sa);
	struct ike_sa_payload sp;
	struct ike_ts_payload tsi, tsr;
	struct ike_ke_payload ke;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0), *np = ike_find(&in, IKE_PL_NONCE, 0),
				 *kep = ike_find(&in, IKE_PL_KE, 0), *ip = ike_find(&in, IKE_PL_TSI, 0),
				 *tp = ike_find(&in, IKE_PL_TSR, 0);
	struct proposal_list ours = ESP_PROPS(cc);
	/* what we proposed: a rekey the child's selectors, a new child the configured ones */
	const struct bt_ts *mine = cc->local_ts, *theirs = cc->remote_ts;
	unsigned nm = cc->n_local_ts, nt = cc->n_remote_ts;
	if (old) {
		mine = sa->initiator ? old->ts_i : old->ts_r, nm = sa->initiator ? old->n_ts_i : old->n_ts_r;
		theirs = sa->initiator ? old->ts_r : old->ts_i, nt = sa->initiator ? old->n_ts_r : old->n_ts_i;
	}
	uint8_t gir[512];
	size_t gl = 0;
	if (!sap || !np || !ip || !tp || ike_parse_sa(sap, &sp) || !ike_x_accepted(&sp, &ours, false) || sp.prop[0].spi_len != 4 ||
	    ike_parse_ts(ip, &tsi) || ike_parse_ts(tp, &tsr) || np->len < 16 || np->len > 256 ||
	    !ike_x_subset(tsi.ts, tsi.n, mine, nm) || !ike_x_subset(tsr.ts, tsr.n, theirs, nt)) {
		ccs_failed(sa, IKE_N_INVALID_SYNTAX);
		ike_dh_free(dh);
		return 0;
	}
	const struct ike_transform *g = ike_prop_get(&sp.prop[0], IKE_TR_DH);
	if (g && g->id) {
		gl = sizeof(gir);
		if (!dh || !kep || ike_parse_ke(kep, &ke) || ke.group != g->id ||
		    ike_dh_shared(dh, ke.data, ke.len, gir, &gl)) {
			ccs_failed(sa, IKE_N_INVALID_KE_PAYLOAD);
			ike_dh_free(dh);
			return 0;
		}
	}
	ike_dh_free(dh);
	struct ike_child *nc = (old && old->gone) || (!old && slot < 0) ? NULL : ike_x_child_new(cc);
	if (nc)
		nc->esp = sp.prop[0];
	if (!nc || child_keys(sa, nc, true, gl ? gir : NULL, gl, sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len) ||
	    child_fill(sa, nc, true, sa->ccs_spi, ike_x_spi32(sp.prop[0].spi), tsi.ts, tsi.n, tsr.ts, tsr.n)) {
		OPENSSL_cleanse(gir, sizeof(gir));
		ike_x_child_free(nc);
		/* (a child deleted meanwhile, or no slot left for a new one: the peer's half is left to it) */
		ccs_failed(sa, old && old->gone ? IKE_N_CHILD_SA_NOT_FOUND : !old && slot < 0 ? IKE_N_NO_ADDITIONAL_SAS
									      : IKE_N_TEMPORARY_FAILURE);
		return 0;
	}
	OPENSSL_cleanse(gir, sizeof(gir));
	if (!old) {
		nc->up = true;
		sa->child[slot] = nc;
	} else if (old->coll) {
		const uint8_t *lo;
		size_t ll;
		ike_x_lower_nonce(sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len, &lo, &ll);
		settle_collision(sa, old, nc, lo, ll);
	} else {
		old->next = nc, old->next_ready = true, old->next_ours = true;
	}
	return 0;
}
