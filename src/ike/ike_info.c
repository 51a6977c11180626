/* ike_info.c — INFORMATIONAL exchanges of an established IKE SA, both roles: deletes of Child and
 * IKE SAs, liveness checks, and the MOBIKE requests built on them. */
#include "ike/ike_exchange_internal.h"

/* Our inbound SPI of a Child SA (what the peer sends to, and names in its deletes and rekeys of
 * it: RFC 7296 3.10, 3.11), and the peer's. */
uint32_t ike_x_our_spi(const struct ike_sa *sa, const struct ike_child *c) { return sa->initiator ? c->spi_i : c->spi_r; }
uint32_t ike_x_peer_spi(const struct ike_sa *sa, const struct ike_child *c) { return sa->initiator ? c->spi_r : c->spi_i; }

struct ike_child *ike_child_by_spi(struct ike_sa *sa, uint32_t spi)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (sa->child[i] && !sa->child[i]->gone && ike_x_our_spi(sa, sa->child[i]) == spi)
			return sa->child[i];
	return NULL;
}

void ike_child_reap(struct ike_sa *sa)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (sa->child[i] && sa->child[i]->gone && !(sa->ccs_pending && sa->ccs_child == sa->child[i]))
			ike_x_drop_child(&sa->child[i]);
}

/* One DELETE payload for n ESP SPIs. */
static void put_child_delete(struct ike_builder *b, const uint32_t *spi, unsigned n)
{
	ike_build_payload(b, IKE_PL_DELETE, false);
	wbuf_u8(&b->w, IKE_PROTO_ESP);
	wbuf_u8(&b->w, 4);
	wbuf_u16(&b->w, (uint16_t)n);
	for (unsigned i = 0; i < n; i++)
		wbuf_u32(&b->w, spi[i]);
}

static size_t info_request(struct ike_sa *sa, enum ike_info what, struct ike_builder *b, uint8_t *out, size_t cap)
{
	struct ike_hdr h = ike_x_hdr(sa, IKE_INFORMATIONAL, false, sa->next_send_id);
	size_t len = ike_x_seal(sa, &h, b, out, cap);
	if (!len)
		return 0;
	free(sa->info_req);
	sa->info_req = ike_x_dup_bytes(out, len);
	sa->info_req_len = sa->info_req ? len : 0;
	sa->info_pending = true, sa->info_what = what, sa->info_id = sa->next_send_id;
	return len;
}

size_t ike_informational(struct ike_sa *sa, enum ike_info what, uint8_t *out, size_t cap)
{
	uint8_t chain[512];
	struct ike_builder b;
	bool update = what == IKE_INFO_UPDATE || what == IKE_INFO_GW_UPDATE;
	/* the kinds after IKE_INFO_DELETE_IKE are MOBIKE's; an update is the original initiator's, a
	 * gateway update the other side's */
	if (sa->state != IKE_ST_ESTABLISHED || sa->info_pending || sa->ccs_pending || what == IKE_INFO_DELETE_CHILD ||
	    (what > IKE_INFO_DELETE_IKE && !sa->mobike) || (what == IKE_INFO_UPDATE && !sa->mobike_initiator) ||
	    (what == IKE_INFO_GW_UPDATE && sa->mobike_initiator))
		return 0;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	if (update || what == IKE_INFO_PROBE) {
		/* RFC 4555 3.5: UPDATE_SA_ADDRESSES and NAT detection for the new pair; a COOKIE2 that the
		 * answer must echo ties it to this request (3.6 for a path test) */
		if (ike_x_rnd(sa, sa->cookie2, sizeof(sa->cookie2)))
			return 0;
		if (update) {
			ike_put_notify(&b, 0, NULL, 0, IKE_N_UPDATE_SA_ADDRESSES, NULL, 0);
			ike_x_put_natd(sa, &b);
		}
		ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE2, sa->cookie2, sizeof(sa->cookie2));
		sa->update_error = 0;
	}
	if (what == IKE_INFO_ADDRS || what == IKE_INFO_GW_UPDATE)
		ike_x_put_my_addrs(sa, &b, true); /* a new gateway: the old one's addresses are void */
	if (what == IKE_INFO_DELETE_IKE) {
		ike_build_payload(&b, IKE_PL_DELETE, false);
		wbuf_u8(&b.w, IKE_PROTO_IKE);
		wbuf_u8(&b.w, 0);
		wbuf_u16(&b.w, 0);
	}
	return info_request(sa, what, &b, out, cap);
}

/* Which SA of ours an SPI names: a current child, the old SA of one after a rekey, or a redundant
 * one of a collision; `ours` says whether spi is our inbound SPI or the peer's. */
enum spi_kind { SPI_NONE = 0, SPI_CHILD, SPI_OLD, SPI_RED };

static enum spi_kind find_spi(struct ike_sa *sa, uint32_t spi, bool ours, struct ike_child **owner)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++) {
		struct ike_child *c = sa->child[i];
		if (!c || c->gone)
			continue;
		*owner = c;
		if ((ours ? ike_x_our_spi(sa, c) : ike_x_peer_spi(sa, c)) == spi)
			return SPI_CHILD;
		if (c->old_present && c->old && (ours ? ike_x_our_spi(sa, c->old) : ike_x_peer_spi(sa, c->old)) == spi)
			return SPI_OLD;
		if (c->red && (ours ? ike_x_our_spi(sa, c->red) : ike_x_peer_spi(sa, c->red)) == spi)
			return SPI_RED;
	}
	return SPI_NONE;
}

/* A child SA's delete completed (ours answered, or the peer's received). */
static void child_deleted(struct ike_child *c, enum spi_kind k)
{
	if (k == SPI_CHILD) {
		c->gone = true;
	} else if (k == SPI_OLD) {
		c->old_present = false, c->old_deleted = true;
		ike_x_drop_child(&c->old);
	} else if (k == SPI_RED) {
		ike_x_drop_child(&c->red);
		c->red_delete = false;
	}
}

size_t ike_delete_child(struct ike_sa *sa, const uint32_t *spis, unsigned n, uint8_t *out, size_t cap)
{
	uint8_t chain[64 + 4 * IKE_CHILD_MAX];
	struct ike_builder b;
	struct ike_child *c;
	if (sa->state != IKE_ST_ESTABLISHED || sa->info_pending || sa->ccs_pending || !n || n > IKE_CHILD_MAX)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (find_spi(sa, spis[i], true, &c) == SPI_NONE)
			return 0;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	put_child_delete(&b, spis, n); /* RFC 7296 3.11: the SPIs the sender expects inbound */
	size_t len = info_request(sa, IKE_INFO_DELETE_CHILD, &b, out, cap);
	if (len) {
		memcpy(sa->info_spi, spis, n * sizeof(*spis));
		sa->info_n_spi = (uint8_t)n;
	}
	return len;
}

/* A request of the peer's on an established SA: deletes, liveness checks, MOBIKE updates. */
size_t ike_x_on_info_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			     const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_chain in;
	if (ike_x_open_sk(sa, msg, len, c, &in) != 0)
		return 0;
	uint8_t chain[512 + 4 * 3 * IKE_CHILD_MAX];
	uint32_t ours[3 * IKE_CHILD_MAX];
	unsigned n = 0;
	struct ike_builder b;
	bool delete_ike = false, update = false;
	struct ike_notify_payload cookie2 = {0};
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_x_note_mobike(sa, &in, false, &cookie2, &update);
	/* RFC 4555 3.5: an update moves the SA only with MOBIKE, and only forward in message IDs (a
	 * replayed or reordered older update changes nothing). The original initiator sends them; so
	 * does a gateway that took the session over at another address, and the original initiator
	 * follows it (gw_moved) by the same rule. */
	update = update && sa->mobike && sa->rx_remote.family && rh->msg_id + 1 > sa->update_id;
	if (update) {
		sa->local = sa->rx_local, sa->remote = sa->rx_remote;
		sa->local_port = sa->rx_local_port, sa->remote_port = sa->rx_remote_port;
		ike_x_check_natd(sa, &in, sa->spi_r);
		ike_x_put_natd(sa, &b);
		sa->update_id = rh->msg_id + 1;
		if (sa->mobike_initiator)
			sa->gw_moved = true;
		else
			sa->addr_update = true;
		sa->updates_received++;
	}
	if (cookie2.data)
		ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE2, cookie2.data, cookie2.data_len);
	for (unsigned i = 0; ike_find(&in, IKE_PL_DELETE, i); i++) {
		struct ike_delete_payload d;
		if (ike_parse_delete(ike_find(&in, IKE_PL_DELETE, i), &d) != IKE_PERR_OK)
			continue;
		if (d.protocol == IKE_PROTO_IKE) {
			delete_ike = true;
		} else if (d.protocol == IKE_PROTO_ESP && d.spi_len == 4) {
			/* each SA the peer closes: answer with our half (RFC 7296 1.4.1); unknown SPIs are ignored */
			for (unsigned k = 0; k < d.n_spi; k++) {
				struct ike_child *ch;
				enum spi_kind kind = find_spi(sa, ike_x_spi32(d.spis + 4 * k), false, &ch);
				if (kind == SPI_NONE || n >= sizeof(ours) / sizeof(ours[0]))
					continue;
				ours[n++] = ike_x_our_spi(sa, kind == SPI_CHILD ? ch : kind == SPI_OLD ? ch->old : ch->red);
				child_deleted(ch, kind);
			}
		}
	}
	if (n)
		put_child_delete(&b, ours, n);
	struct ike_hdr h = ike_x_hdr(sa, IKE_INFORMATIONAL, true, rh->msg_id);
	size_t olen = ike_x_seal(sa, &h, &b, out, cap);
	if (!olen)
		return 0;
	sa->next_recv_id = rh->msg_id + 1;
	if (delete_ike) {
		for (int i = 0; i < IKE_CHILD_MAX; i++)
			if (sa->child[i])
				sa->child[i]->gone = true;
		sa->state = IKE_ST_DELETED;
	}
	olen = ike_x_cache(sa, out, olen, rh->msg_id);
	sa->last_req_update = update;
	return olen;
}

/* A response to our request (window of one): authentic, it completes the exchange. */
int ike_x_open_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in)
{
	if (ike_x_open_sk(sa, msg, len, c, in) != 0)
		return -1;
	sa->next_send_id++;
	sa->peer_answers++;
	return 0;
}

size_t ike_x_on_info_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	bool update = sa->info_what == IKE_INFO_UPDATE || sa->info_what == IKE_INFO_GW_UPDATE;
	if (update || sa->info_what == IKE_INFO_PROBE) {
		/* the answer must echo our COOKIE2 (RFC 4555 3.6); one that does not is not ours */
		struct ike_notify_payload c2 = {0};
		if (ike_x_open_sk(sa, msg, len, c, &in) != 0)
			return 0;
		ike_x_note_mobike(sa, &in, false, &c2, NULL);
		if (!c2.data || c2.data_len != sizeof(sa->cookie2) || CRYPTO_memcmp(c2.data, sa->cookie2, sizeof(sa->cookie2)))
			return 0;
		sa->next_send_id++;
		sa->peer_answers++;
		sa->info_pending = false;
		struct ike_notify_payload n;
		for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
			if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type < 16384)
				sa->update_error = n.type;
		if (update) {
			if (!sa->update_error)
				ike_x_check_natd(sa, &in, sa->spi_r);
			sa->update_done = true;
		} else {
			sa->probe_done = true;
		}
		return 0;
	}
	if (ike_x_open_response(sa, msg, len, c, &in) != 0)
		return 0;
	sa->info_pending = false;
	if (sa->info_what == IKE_INFO_DELETE_CHILD) {
		for (unsigned i = 0; i < sa->info_n_spi; i++) {
			struct ike_child *ch;
			enum spi_kind kind = find_spi(sa, sa->info_spi[i], true, &ch);
			if (kind != SPI_NONE)
				child_deleted(ch, kind);
		}
		sa->info_n_spi = 0;
	} else if (sa->info_what == IKE_INFO_DELETE_IKE) {
		for (int i = 0; i < IKE_CHILD_MAX; i++)
			if (sa->child[i])
				sa->child[i]->gone = true;
		sa->state = IKE_ST_DELETED;
	}
	return 0;
}
