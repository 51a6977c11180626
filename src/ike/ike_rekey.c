/* ike_rekey.c — rekeying the IKE SA (RFC 7296 2.18) and what follows it: the old and the redundant
 * IKE SA of a collision (2.8.2), kept until deleted. */
#include "ike/ike_exchange_internal.h"

/* --- IKE SA rekey ------------------------------------------------------------------------------ */

/* Swap the current context with o (the old or the redundant IKE SA), to handle a message on it. */
static void swap_with(struct ike_sa *sa, struct ike_old_sa *o)
{
	struct ike_old_sa t;
	t.initiator = sa->initiator, sa->initiator = o->initiator, o->initiator = t.initiator;
	t.spi_i = sa->spi_i, sa->spi_i = o->spi_i, o->spi_i = t.spi_i;
	t.spi_r = sa->spi_r, sa->spi_r = o->spi_r, o->spi_r = t.spi_r;
	t.keys = sa->keys, sa->keys = o->keys, o->keys = t.keys;
	t.ike = sa->suite, sa->suite = o->ike, o->ike = t.ike;
	t.prf = sa->prf, sa->prf = o->prf, o->prf = t.prf;
	t.next_send_id = sa->next_send_id, sa->next_send_id = o->next_send_id, o->next_send_id = t.next_send_id;
	t.next_recv_id = sa->next_recv_id, sa->next_recv_id = o->next_recv_id, o->next_recv_id = t.next_recv_id;
	t.last_resp = sa->last_resp, sa->last_resp = o->last_resp, o->last_resp = t.last_resp;
	t.last_resp_len = sa->last_resp_len, sa->last_resp_len = o->last_resp_len, o->last_resp_len = t.last_resp_len;
	t.last_resp_id = sa->last_resp_id, sa->last_resp_id = o->last_resp_id, o->last_resp_id = t.last_resp_id;
	OPENSSL_cleanse(&t.keys, sizeof(t.keys));
}

static void swap_ctx(struct ike_sa *sa) { swap_with(sa, &sa->old_ike); }

static void flip_child(struct ike_child *c)
{
	if (!c)
		return;
	uint32_t spi = c->spi_i;
	c->spi_i = c->spi_r, c->spi_r = spi;
	uint8_t e[sizeof(c->ei)], a[sizeof(c->ai)];
	memcpy(e, c->ei, sizeof(e)), memcpy(c->ei, c->er, sizeof(e)), memcpy(c->er, e, sizeof(e));
	memcpy(a, c->ai, sizeof(a)), memcpy(c->ai, c->ar, sizeof(a)), memcpy(c->ar, a, sizeof(a));
	OPENSSL_cleanse(e, sizeof(e)), OPENSSL_cleanse(a, sizeof(a));
	struct bt_ts *t = c->ts_i;
	c->ts_i = c->ts_r, c->ts_r = t;
	uint8_t n = c->n_ts_i;
	c->n_ts_i = c->n_ts_r, c->n_ts_r = n;
	flip_child(c->next), flip_child(c->old), flip_child(c->coll), flip_child(c->red);
}

/* The rekey is done: the current SA becomes old_ike, the new one (keys k, chosen p) takes over. */
static void switch_ike(struct ike_sa *sa, bool new_initiator, uint64_t spi_i, uint64_t spi_r, struct ike_keys *k,
		       const struct ike_proposal *p)
{
	struct ike_old_sa *o = &sa->old_ike;
	free(o->last_resp);
	memset(o, 0, sizeof(*o));
	o->present = true;
	o->last_resp = NULL;
	swap_ctx(sa); /* the old context moves out; sa now holds o's zeroes */
	sa->initiator = new_initiator, sa->spi_i = spi_i, sa->spi_r = spi_r;
	sa->keys = *k;
	OPENSSL_cleanse(k, sizeof(*k));
	ike_x_use_ike_choice(sa, p);
	sa->group = ike_prop_get(p, IKE_TR_DH)->id;
	sa->next_send_id = sa->next_recv_id = 0;
	sa->update_id = 0; /* message IDs start again: so does the order of MOBIKE updates */
	if (new_initiator != o->initiator) {
		/* struct ike_child names sides after the IKE SA's initiator */
		for (int i = 0; i < IKE_CHILD_MAX; i++)
			flip_child(sa->child[i]);
	}
	sa->ike_rekeyed = true;
	sa->ike_rekeys++;
}

static void put_spi64(struct ike_proposal *p, uint64_t spi)
{
	p->spi_len = 8;
	for (int i = 0; i < 8; i++)
		p->spi[i] = (uint8_t)(spi >> (56 - 8 * i));
}

static uint64_t spi64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int ike_keys_for(const struct ike_proposal *p, size_t *el, size_t *il)
{
	const struct ike_transform *e = ike_prop_get(p, IKE_TR_ENCR), *i = ike_prop_get(p, IKE_TR_INTEG);
	struct ike_sk_suite s = {e ? e->id : 0, e ? e->key_bits : 0, i ? i->id : IKE_INTEG_NONE};
	return ike_sk_key_lens(&s, el, il);
}

size_t ike_rekey_ike(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	if (sa->state != IKE_ST_ESTABLISHED || sa->ccs_pending || sa->info_pending || sa->old_ike.present ||
	    sa->red_ike)
		return 0;
	uint8_t pub[512], chain[2048];
	size_t pl = sizeof(pub);
	do {
		if (ike_x_rnd(sa, &sa->ccs_ike_spi, sizeof(sa->ccs_ike_spi)))
			return 0;
	} while (!sa->ccs_ike_spi);
	if (ike_x_rnd(sa, sa->ccs_nonce, sizeof(sa->ccs_nonce)))
		return 0;
	ike_dh_free(sa->ccs_dh);
	if (!(sa->ccs_dh = ike_dh_new(sa->group)) || ike_dh_public(sa->ccs_dh, pub, &pl))
		return 0;
	struct ike_sa_payload sp;
	struct proposal_list ours = IKE_PROPS(sa);
	ike_x_offer(&ours, 0, &sp);
	for (unsigned i = 0; i < sp.n; i++)
		put_spi64(&sp.prop[i], sa->ccs_ike_spi);
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_sa(&b, &sp);
	ike_put_raw(&b, IKE_PL_NONCE, sa->ccs_nonce, sizeof(sa->ccs_nonce));
	ike_put_ke(&b, sa->group, pub, pl);
	struct ike_hdr h = ike_x_hdr(sa, IKE_CREATE_CHILD_SA, false, sa->next_send_id);
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	if (!len)
		return 0;
	sa->ccs_pending = true, sa->ccs_ike = true, sa->ccs_id = sa->next_send_id, sa->ccs_error = 0;
	return len;
}

/* The peer rekeys the IKE SA: answer on the old SA, then switch to the new one. */
size_t ike_x_on_ike_rekey_request(struct ike_sa *sa, const struct ike_hdr *rh, const struct ike_chain *in,
				  const struct ike_sa_payload *sp, uint8_t *out, size_t cap)
{
	/* our own IKE SA rekey in flight: both complete, the nonces decide later (RFC 7296 2.8.2); our
	 * Child SA exchange in flight, or a rekey unfinished: TEMPORARY_FAILURE (2.25) */
	bool collision = sa->ccs_pending && sa->ccs_ike && !sa->coll_ike;
	if ((sa->ccs_pending && !collision) || sa->old_ike.present || sa->red_ike)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	struct proposal_list ours = IKE_PROPS(sa);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_payload *np = ike_find(in, IKE_PL_NONCE, 0), *kep = ike_find(in, IKE_PL_KE, 0);
	struct ike_ke_payload ke;
	if (!np || np->len < 16 || np->len > 256)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_INVALID_SYNTAX, out, cap);
	if (!ike_x_choose(sp, &ours, false, chosen) || chosen->spi_len != 8 || !spi64(chosen->spi))
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_NO_PROPOSAL_CHOSEN, out, cap);
	uint16_t group = ike_prop_get(chosen, IKE_TR_DH)->id;
	if (!kep || ike_parse_ke(kep, &ke) || ke.group != group)
		return ike_x_ccs_invalid_ke(sa, rh->msg_id, group, out, cap);
	uint64_t peer_spi = spi64(chosen->spi), spi = 0;
	uint8_t nr[32], pub[512], gir[512];
	size_t pl = sizeof(pub), gl = sizeof(gir), el, il;
	struct ike_keys k;
	struct ike_dh *dh = ike_dh_new(group);
	int bad = !dh || ike_dh_public(dh, pub, &pl) || ike_dh_shared(dh, ke.data, ke.len, gir, &gl) ||
		  ike_x_rnd(sa, nr, sizeof(nr)) || ike_keys_for(chosen, &el, &il);
	while (!bad && !spi)
		bad = ike_x_rnd(sa, &spi, sizeof(spi));
	const struct ike_transform *f = ike_prop_get(chosen, IKE_TR_PRF);
	bad = bad || !f ||
	      ike_derive_rekey(sa->prf, sa->keys.sk_d, f->id, il, el, np->body, np->len, nr, sizeof(nr), peer_spi, spi,
			       gir, gl, &k);
	ike_dh_free(dh);
	OPENSSL_cleanse(gir, sizeof(gir));
	if (bad)
		return ike_x_ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	put_spi64(chosen, spi);
	uint8_t chain[2048];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_sa(&b, &reply);
	ike_put_raw(&b, IKE_PL_NONCE, nr, sizeof(nr));
	ike_put_ke(&b, group, pub, pl);
	struct ike_hdr h = ike_x_hdr(sa, IKE_CREATE_CHILD_SA, true, rh->msg_id);
	size_t olen = ike_x_seal(sa, &h, &b, out, cap);
	if (!olen) {
		ike_keys_clear(&k);
		return 0;
	}
	sa->next_recv_id = rh->msg_id + 1;
	ike_x_cache(sa, out, olen, rh->msg_id);
	if (collision) {
		struct ike_coll_ike *x = calloc(1, sizeof(*x));
		const uint8_t *lo;
		size_t ll;
		ike_x_lower_nonce(np->body, np->len, nr, sizeof(nr), &lo, &ll);
		if (x && (x->nonce = ike_x_dup_bytes(lo, ll))) {
			x->spi_i = peer_spi, x->spi_r = spi, x->keys = k, x->prop = *chosen;
			x->nonce_len = ll;
			sa->coll_ike = x;
		} else {
			free(x);
		}
		ike_keys_clear(&k);
		return olen;
	}
	switch_ike(sa, false, peer_spi, spi, &k, chosen);
	return olen;
}

void ike_x_on_ike_rekey_response(struct ike_sa *sa, const struct ike_chain *in, struct ike_dh *dh)
{
	struct ike_sa_payload sp;
	struct ike_ke_payload ke;
	const struct ike_payload *sap = ike_find(in, IKE_PL_SA, 0), *np = ike_find(in, IKE_PL_NONCE, 0),
				 *kep = ike_find(in, IKE_PL_KE, 0);
	struct proposal_list ours = IKE_PROPS(sa);
	uint8_t gir[512];
	size_t gl = sizeof(gir), el, il;
	struct ike_keys k;
	if (!sap || !np || !kep || ike_parse_sa(sap, &sp) || !ike_x_accepted(&sp, &ours, false) || sp.prop[0].spi_len != 8 ||
	    !spi64(sp.prop[0].spi) || np->len < 16 || np->len > 256 || ike_parse_ke(kep, &ke) ||
	    !ike_prop_get(&sp.prop[0], IKE_TR_DH) || ke.group != ike_prop_get(&sp.prop[0], IKE_TR_DH)->id ||
	    ke.group != sa->group || ike_keys_for(&sp.prop[0], &el, &il)) {
		sa->ccs_error = IKE_N_INVALID_SYNTAX;
		return;
	}
	const struct ike_transform *f = ike_prop_get(&sp.prop[0], IKE_TR_PRF);
	if (ike_dh_shared(dh, ke.data, ke.len, gir, &gl) ||
	    ike_derive_rekey(sa->prf, sa->keys.sk_d, f->id, il, el, sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body,
			     np->len, sa->ccs_ike_spi, spi64(sp.prop[0].spi), gir, gl, &k)) {
		OPENSSL_cleanse(gir, sizeof(gir));
		sa->ccs_error = IKE_N_INVALID_KE_PAYLOAD;
		return;
	}
	OPENSSL_cleanse(gir, sizeof(gir));
	struct ike_coll_ike *x = sa->coll_ike;
	if (!x) {
		switch_ike(sa, true, sa->ccs_ike_spi, spi64(sp.prop[0].spi), &k, &sp.prop[0]);
		return;
	}
	/* both rekeyed (RFC 7296 2.8.2): the exchange with the lowest nonce made the redundant SA */
	const uint8_t *lo;
	size_t ll;
	ike_x_lower_nonce(sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len, &lo, &ll);
	bool ours_lost = ike_x_nonce_cmp(lo, ll, x->nonce, x->nonce_len) < 0;
	struct ike_old_sa spare = {0}, *r = sa->red_ike = calloc(1, sizeof(*r));
	struct ike_proposal rp = ours_lost ? sp.prop[0] : x->prop;
	if (!r)
		r = &spare; /* (out of memory: the survivor still takes over; the redundant SA is left to time out) */
	r->present = true, r->initiator = ours_lost;
	r->spi_i = ours_lost ? sa->ccs_ike_spi : x->spi_i, r->spi_r = ours_lost ? spi64(sp.prop[0].spi) : x->spi_r;
	r->keys = ours_lost ? k : x->keys;
	const struct ike_transform *e = ike_prop_get(&rp, IKE_TR_ENCR), *i = ike_prop_get(&rp, IKE_TR_INTEG),
				   *rf = ike_prop_get(&rp, IKE_TR_PRF);
	r->ike = (struct ike_sk_suite){e ? e->id : 0, e ? e->key_bits : 0, i ? i->id : IKE_INTEG_NONE};
	r->prf = rf ? rf->id : 0;
	sa->red_ike_ours = ours_lost;
	sa->rekey_collisions++;
	if (ours_lost)
		switch_ike(sa, false, x->spi_i, x->spi_r, &x->keys, &x->prop);
	else
		switch_ike(sa, true, sa->ccs_ike_spi, spi64(sp.prop[0].spi), &k, &sp.prop[0]);
	ike_keys_clear(&k);
	if (!sa->red_ike)
		OPENSSL_cleanse(r, sizeof(*r));
	free(x->nonce);
	OPENSSL_clear_free(x, sizeof(*x));
	sa->coll_ike = NULL;
}

/* Our IKE SA rekey failed: a peer's rekey that collided with it is the rekey. */
void ike_rekey_failed(struct ike_sa *sa)
{
	struct ike_coll_ike *x = sa->coll_ike;
	if (!x)
		return;
	switch_ike(sa, false, x->spi_i, x->spi_r, &x->keys, &x->prop);
	free(x->nonce);
	OPENSSL_clear_free(x, sizeof(*x));
	sa->coll_ike = NULL;
}

/* The delete of an old or redundant IKE SA o, sent with its keys and SPIs. */
static size_t delete_ctx(struct ike_sa *sa, struct ike_old_sa *o, uint8_t *out, size_t cap)
{
	uint8_t chain[64];
	struct ike_builder b;
	if (!o->present || o->delete_pending)
		return 0;
	swap_with(sa, o);
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_build_payload(&b, IKE_PL_DELETE, false);
	wbuf_u8(&b.w, IKE_PROTO_IKE);
	wbuf_u8(&b.w, 0);
	wbuf_u16(&b.w, 0);
	struct ike_hdr h = ike_x_hdr(sa, IKE_INFORMATIONAL, false, sa->next_send_id);
	struct ike_sk_suite cur = sa->suite;
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	sa->suite = cur;
	if (len)
		o->delete_pending = true, o->delete_id = sa->next_send_id;
	swap_with(sa, o);
	return len;
}

size_t ike_delete_old_ike(struct ike_sa *sa, uint8_t *out, size_t cap) { return delete_ctx(sa, &sa->old_ike, out, cap); }

size_t ike_delete_red_ike(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return sa->red_ike_ours && sa->red_ike ? delete_ctx(sa, sa->red_ike, out, cap) : 0;
}

static void old_ike_done(struct ike_sa *sa, struct ike_old_sa *o)
{
	free(o->last_resp);
	OPENSSL_cleanse(o, sizeof(*o));
	if (o == &sa->old_ike) {
		sa->old_ike_gone = true;
	} else {
		free(o);
		sa->red_ike = NULL;
		sa->red_ike_gone = true;
	}
}

/* A message on the old (or the redundant) IKE SA o after a rekey: its delete (request or
 * response), or anything else answered with an empty response so the peer's exchange completes. */
size_t ike_x_on_old_ike(struct ike_sa *sa, struct ike_old_sa *o, const uint8_t *msg, size_t len, uint8_t *out,
			size_t cap)
{
	struct ike_hdr h;
	static __thread struct ike_chain c;
	struct ike_chain in;
	size_t r = 0;
	uint8_t *copy = ike_x_dup_bytes(msg, len);
	if (!copy || ike_parse(copy, len, &h, &c) != IKE_PERR_OK) {
		free(copy);
		return 0;
	}
	bool response = h.flags & IKE_FLAG_RESPONSE, gone = false;
	swap_with(sa, o);
	if (!!(h.flags & IKE_FLAG_INITIATOR) == sa->initiator)
		goto out;
	if (!response && sa->last_resp && h.msg_id == sa->last_resp_id) {
		if (sa->last_resp_len <= cap) {
			memcpy(out, sa->last_resp, sa->last_resp_len);
			r = sa->last_resp_len;
		}
		goto out;
	}
	if (ike_x_open_sk(sa, copy, len, &c, &in) != 0)
		goto out;
	if (response) {
		gone = o->delete_pending && h.msg_id == o->delete_id;
		goto out;
	}
	if (h.msg_id != sa->next_recv_id)
		goto out;
	for (unsigned i = 0; ike_find(&in, IKE_PL_DELETE, i); i++) {
		struct ike_delete_payload d;
		gone |= ike_parse_delete(ike_find(&in, IKE_PL_DELETE, i), &d) == IKE_PERR_OK && d.protocol == IKE_PROTO_IKE;
	}
	uint8_t chain[16];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	struct ike_hdr rh = ike_x_hdr(sa, h.exchange, true, h.msg_id);
	r = ike_x_seal(sa, &rh, &b, out, cap);
	sa->next_recv_id = h.msg_id + 1;
	if (r)
		ike_x_cache(sa, out, r, h.msg_id);
out:
	swap_with(sa, o);
	free(copy);
	if (gone)
		old_ike_done(sa, o);
	return r;
}
