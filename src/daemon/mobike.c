/* mobike.c — MOBIKE and rebind in batond: moving an IKE SA and its Child SAs to other addresses,
 * choosing a path on address and route changes, and acting on what the engine reports. */
#include "daemon/ike_internal.h"

/* --- rebind: the one way an IKE SA and its Child SAs change outer addresses ------------------- */

/* Move the session to a new path: the IKE SA's addresses (engine and session) and every ESP SA of
 * its Child SAs, each changed atomically in the data plane. SPIs, keys, sequence numbers, replay
 * windows and lifetimes stay. Also the float to port 4500 and a NAT's new mapping during setup,
 * before any Child SA exists (logged at debug, not counted as a rebind). */
void sess_rebind(struct ike_sess *s, const struct bt_addr *local, uint16_t lport, const struct bt_addr *remote,
		 uint16_t rport, bool natt)
{
	struct ike_mgr *m = s->m;
	char a[64], b[64], c[64], e[64];
	bool sas = ikm_any_installed(s);
	if (sas || bt_log_get_level() >= BT_LOG_DEBUG) /* setup floats: no formatting per tunnel */
		bt_log(sas ? BT_LOG_INFO : BT_LOG_DEBUG, "IKE %s: rebind %s:%u -> %s:%u  to  %s:%u -> %s:%u%s", s->conn,
		       bt_addr_str(&s->local, a, sizeof(a)), s->lport, bt_addr_str(&s->remote, b, sizeof(b)), s->rport,
		       bt_addr_str(local, c, sizeof(c)), lport, bt_addr_str(remote, e, sizeof(e)), rport,
		       natt ? " (UDP-encap)" : "");
	s->local = *local, s->remote = *remote, s->lport = lport, s->rport = rport, s->natt = natt;
	ike_sa_set_endpoints(&s->sa, local, lport, remote, rport);
	if (!sas)
		return;
	m->st.rebinds++;
	struct esp_path p = {.local = *local, .remote = *remote, .local_port = dp_udp_port(m->d->dp),
			     .remote_port = natt ? rport : ESP_UDP_PORT, .encap = natt ? ESP_ENCAP_UDP : ESP_ENCAP_RAW};
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct sess_child *sc = s->ch[k];
		if (!sc || !sc->installed)
			continue;
		dp_sa_rebind(m->d->dp, ESP_DIR_OUT, sc->reqid, &p);
		dp_sa_rebind(m->d->dp, ESP_DIR_IN, sc->spi_in, &p);
		if (sc->old_spi_in)
			dp_sa_rebind(m->d->dp, ESP_DIR_IN, sc->old_spi_in, &p);
		if (sc->next_out)
			esp_sa_set_path(sc->next_out, &p); /* not in the data plane yet */
	}
}

bool ikm_any_installed(const struct ike_sess *s)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (s->ch[k] && s->ch[k]->installed)
			return true;
	return false;
}

/* MOBIKE: our UPDATE_SA_ADDRESSES for the current path, as soon as no other request is in flight;
 * the original initiator's, or a gateway's that took the session over (mobike_gateway_move). */
static void mobike_update(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	s->mob_update = true;
	if (s->req)
		return; /* sent when the request in flight is answered */
	if (!s->sa.mobike_initiator)
		ikm_my_addrs_refresh(s); /* a new gateway's update carries its own list: the old one's is void */
	size_t l = s->sa.mobike_initiator ? ike_mobike_update(&s->sa, m->out, sizeof(m->out))
					  : ike_mobike_gw_update(&s->sa, m->out, sizeof(m->out));
	if (!l)
		return;
	s->mob_update = false;
	m->st.mobike_updates_sent++;
	ikm_send_request(s, m->out, l);
}

/* Our side moves to (local, remote): rebind, counted; the update is owed to the peer. */
static void move_to(struct ike_sess *s, const struct bt_addr *local, const struct bt_addr *remote)
{
	sess_rebind(s, local, s->lport, remote, s->rport, s->natt);
	s->moves++;
	s->moved_at = ikm_now_s(s->m);
	s->m->st.mobike_moves++;
	s->mob_update = true;
}

/* After a move: a request of ours in flight goes again at once on the new path (RFC 4555 3.5); if
 * it is a path test, its answer says nothing about the tested path any more and moves nothing. */
static void resend_moved(struct ike_sess *s)
{
	if (s->tx_override)
		s->probe_abandoned = true;
	s->tx_override = false;
	ikm_resend(s);
}

/* Move to a path known to work (or the only one left): rebind now, then tell the peer. A request
 * of ours in flight is retransmitted at once on the new path (RFC 4555 3.5); the update follows. */
static void mobike_move(struct ike_sess *s, const struct bt_addr *local, const struct bt_addr *remote)
{
	move_to(s, local, remote);
	resend_moved(s);
	mobike_update(s);
}

/* Multi-LAN transfer: this gateway holds the session now, at another address. Traffic to the peer
 * leaves from there at once (the rebind); the peer learns it from our update, retransmitted by the
 * request timers until answered. As the original initiator (a gateway that started the tunnel)
 * this is an ordinary MOBIKE move. */
int mobike_gateway_move(struct ike_sess *s, const struct bt_addr *local, char *err, size_t errlen)
{
	char a[64], b[64];
	if (!s->sa.mobike || s->sa.state != IKE_ST_ESTABLISHED) {
		snprintf(err, errlen, "IKE %s: %s: the peer cannot follow a move to %s", s->conn,
			 s->sa.state != IKE_ST_ESTABLISHED ? "not established" : "MOBIKE was not negotiated",
			 bt_addr_str(local, a, sizeof(a)));
		return -1;
	}
	bt_info("IKE %s: the session moved to this gateway: %s -> %s; telling the peer", s->conn,
		bt_addr_str(local, a, sizeof(a)), bt_addr_str(&s->remote, b, sizeof(b)));
	s->m->st.mobike_gateway_moves++;
	s->gw_update_wait = true;
	struct bt_addr l = *local, r = s->remote;
	mobike_move(s, &l, &r);
	return 0;
}

/* A path test (RFC 4555 3.6 / 5.2): an INFORMATIONAL with a COOKIE2 sent over that path only;
 * probe_done when it is answered there. */
static void start_probe(struct ike_sess *s, const struct bt_addr *local, uint16_t lport, const struct bt_addr *remote,
			uint16_t rport)
{
	struct ike_mgr *m = s->m;
	size_t l = s->req ? 0 : ike_mobike_probe(&s->sa, m->out, sizeof(m->out));
	if (!l)
		return;
	s->probe_local = *local, s->probe_remote = *remote, s->probe_lport = lport, s->probe_rport = rport;
	s->probe_abandoned = false;
	m->st.mobike_probes++;
	s->tx_override = true, s->tx_local = *local, s->tx_remote = *remote, s->tx_rport = rport;
	ikm_send_request(s, m->out, l);
}

/* The local address to use toward remote: the kernel's choice (mobike_prefer = route), or the
 * first local_addrs entry that is up and has a route (mobike_prefer = local_addrs). Only
 * addresses local_addrs allows. Returns 0 or -1 (no path). */
static int pick_local(const struct cfg_conn *c, const struct bt_addr *remote, struct bt_addr *out)
{
	struct bt_addr src;
	if (c->mobike_prefer_order) {
		for (unsigned k = 0; k < c->n_local_addrs; k++) {
			const struct bt_prefix *p = &c->local_addrs[k];
			if (p->addr.family != remote->family || !bt_prefix_is_host(p))
				continue;
			if (netmon_addr_usable(&p->addr) && netmon_route_src(&p->addr, remote, &src) == 0) {
				*out = p->addr;
				return 0;
			}
		}
	}
	if (netmon_route_src(NULL, remote, &src) != 0 || !netmon_addr_usable(&src))
		return -1;
	for (unsigned k = 0; k < c->n_local_addrs; k++)
		if (bt_prefix_contains(&c->local_addrs[k], &src)) {
			*out = src;
			return 0;
		}
	return c->n_local_addrs ? -1 : 0;
}

/* MOBIKE, original initiator: after an address, link or route change, follow the best path. The
 * current one gone: move at once. A better one while the current one works: test it first. */
static void mobike_check(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, s->conn);
	if (!c || !s->sa.mobike || !s->sa.mobike_initiator || s->sa.state != IKE_ST_ESTABLISHED || s->closing)
		return;
	struct bt_addr local, remote = s->remote;
	char a[64], b[64], x[64], y[64];
	int found = pick_local(c, &remote, &local);
	for (unsigned k = 0; found != 0 && k < s->sa.n_peer_addrs; k++) /* the peer's other addresses */
		if (s->sa.peer_addrs[k].family && (found = pick_local(c, &s->sa.peer_addrs[k], &local)) == 0)
			remote = s->sa.peer_addrs[k];
	if (found != 0) {
		bt_info("IKE %s: no path to the peer now; waiting for one", s->conn);
		return;
	}
	if (bt_addr_eq(&local, &s->local) && bt_addr_eq(&remote, &s->remote))
		return;
	struct bt_addr via;
	bool current_ok = netmon_addr_usable(&s->local) && bt_addr_eq(&remote, &s->remote) &&
			  netmon_route_src(&s->local, &s->remote, &via) == 0;
	if (!current_ok) {
		bt_info("IKE %s: path %s -> %s gone; moving to %s -> %s", s->conn, bt_addr_str(&s->local, a, sizeof(a)),
			bt_addr_str(&s->remote, b, sizeof(b)), bt_addr_str(&local, x, sizeof(x)), bt_addr_str(&remote, y, sizeof(y)));
		mobike_move(s, &local, &remote);
		return;
	}
	if (s->req) {
		s->mob_recheck = true; /* test the better path once the slot is free */
		return;
	}
	bt_info("IKE %s: testing the path %s -> %s", s->conn, bt_addr_str(&local, a, sizeof(a)),
		bt_addr_str(&remote, b, sizeof(b)));
	start_probe(s, &local, s->lport, &remote, s->rport);
}

/* Our other usable addresses of local_addrs (single addresses only), for ADDITIONAL_*_ADDRESS.
 * Returns true if the list changed. */
bool ikm_my_addrs_refresh(struct ike_sess *s)
{
	const struct cfg_conn *c = ikm_conn_by_name(s->m->d->cfg, s->conn);
	struct bt_addr v[IKE_PEER_ADDRS];
	uint8_t n = 0;
	for (unsigned k = 0; c && c->mobike && k < c->n_local_addrs && n < IKE_PEER_ADDRS; k++) {
		const struct bt_prefix *p = &c->local_addrs[k];
		if (bt_prefix_is_host(p) && !bt_addr_eq(&p->addr, &s->local) &&
		    netmon_addr_usable(&p->addr))
			v[n++] = p->addr;
	}
	if (n == s->sa.n_my_addrs && !memcmp(v, s->sa.my_addrs, n * sizeof(v[0])))
		return false;
	memcpy(s->sa.my_addrs, v, n * sizeof(v[0]));
	s->sa.n_my_addrs = n;
	return true;
}

/* Tell the peer our addresses changed (RFC 4555 3.6), when the request slot is free. */
static void mobike_addresses(struct ike_sess *s)
{
	s->mob_addrs = true;
	if (s->req)
		return;
	size_t l = ike_mobike_addresses(&s->sa, s->m->out, sizeof(s->m->out));
	if (l) {
		s->mob_addrs = false;
		ikm_send_request(s, s->m->out, l);
	}
}

/* More than one local address in local_addrs: worth announcing. */
bool ikm_multi_addr(const struct cfg_conn *c)
{
	unsigned n = 0;
	for (unsigned k = 0; c && k < c->n_local_addrs; k++)
		n += bt_prefix_is_host(&c->local_addrs[k]);
	return c && c->mobike && n > 1;
}

/* MOBIKE, original initiator: the peer stopped answering on this path with no local change to
 * explain it (a failure further away). Move to another local address that is up and has a route,
 * the next one of local_addrs after the current one; the caller retransmits there (the count of
 * tries goes on: a dead peer is still found dead) and the update follows the answer. Returns true
 * if it moved. */
bool mobike_failover(struct ike_sess *s)
{
	const struct cfg_conn *c = ikm_conn_by_name(s->m->d->cfg, s->conn);
	if (!c || !s->sa.mobike || !s->sa.mobike_initiator || s->sa.state != IKE_ST_ESTABLISHED)
		return false;
	unsigned n = c->n_local_addrs, cur = n;
	for (unsigned k = 0; k < n; k++)
		if (bt_addr_eq(&c->local_addrs[k].addr, &s->local))
			cur = k;
	for (unsigned j = 1; j <= n; j++) {
		const struct bt_prefix *p = &c->local_addrs[(cur == n ? j - 1 : cur + j) % n];
		struct bt_addr via;
		if (!bt_prefix_is_host(p) || p->addr.family != s->remote.family ||
		    bt_addr_eq(&p->addr, &s->local) || !netmon_addr_usable(&p->addr) ||
		    netmon_route_src(&p->addr, &s->remote, &via) != 0)
			continue;
		char a[64];
		bt_info("IKE %s: no answer on the current path; trying %s", s->conn, bt_addr_str(&p->addr, a, sizeof(a)));
		s->m->st.mobike_failovers++;
		struct bt_addr l = p->addr, r = s->remote;
		move_to(s, &l, &r);
		return true;
	}
	return false;
}

void ikm_path_changed(void *arg)
{
	struct ike_mgr *m = arg;
	m->st.path_events++;
	for (struct ike_sess *s = m->all; s; s = s->next_all) {
		mobike_check(s);
		if (s->sa.mobike && s->sa.state == IKE_ST_ESTABLISHED && ikm_multi_addr(ikm_conn_by_name(m->d->cfg, s->conn)) &&
		    ikm_my_addrs_refresh(s))
			mobike_addresses(s);
	}
}

/* MOBIKE: what an answer to our update or path test means, a gateway's move (original
 * initiator), a retransmitted update from elsewhere (responder), and what waited for the request
 * slot. */
void mobike_events(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	if (s->sa.update_done) {
		s->sa.update_done = false;
		s->gw_update_wait = false;
		if (s->sa.update_error) {
			bt_warn("IKE %s: the peer refused our address update (notify %u)", s->conn, s->sa.update_error);
		} else {
			bt_info("IKE %s: address update done in %.1f ms%s", s->conn, (ikm_now_s(m) - s->moved_at) * 1000,
				s->sa.nat_local ? ", behind a NAT" : "");
			if ((s->sa.nat_local || s->sa.nat_remote) && !s->natt) {
				/* a NAT on the new path: IKE and ESP float to the NAT-T port, and the peer hears it there */
				sess_rebind(s, &s->local, dp_udp_port(m->d->dp), &s->remote, ESP_UDP_PORT, true);
				s->mob_update = true;
			}
			if (s->sa.nat_local && s->natt && !ev_is_active(&s->ka))
				ev_timer_start(m->d->loop, &s->ka);
			else if (!s->sa.nat_local && ev_is_active(&s->ka))
				ev_timer_stop(m->d->loop, &s->ka); /* the NAT is gone */
		}
	}
	if (s->sa.gw_moved) {
		/* original initiator: the gateway took our session over at another address and told us so
		 * inside the IKE SA (an authentic, newer update); the engine answered for this pair */
		s->sa.gw_moved = false;
		char a[64], b[64];
		bt_info("IKE %s: the gateway moved: now %s -> %s", s->conn, bt_addr_str(&s->sa.rx_local, a, sizeof(a)),
			bt_addr_str(&s->sa.rx_remote, b, sizeof(b)));
		m->st.mobike_gateway_moves++;
		s->moves++;
		struct bt_addr l = s->sa.rx_local, r = s->sa.rx_remote;
		sess_rebind(s, &l, s->sa.rx_local_port, &r, s->sa.rx_remote_port, s->natt);
		resend_moved(s); /* a request of ours in flight goes to the new gateway */
	}
	if (s->sa.addr_check) {
		/* responder: an update of the peer's came again from elsewhere. Move only once the peer
		 * answers there (return routability, RFC 4555 3.5 and 5.2): a replayed update goes nowhere */
		s->sa.addr_check = false;
		char a[64];
		bt_info("IKE %s: the peer's update came again from %s: checking that it answers there%s", s->conn,
			bt_addr_str(&s->sa.rr_remote, a, sizeof(a)), s->req ? " (not now: a request is in flight)" : "");
		start_probe(s, &s->sa.rr_local, s->sa.rr_local_port, &s->sa.rr_remote, s->sa.rr_remote_port);
	}
	if (s->sa.probe_done && !s->sa.mobike_initiator) {
		s->sa.probe_done = false;
		if (!s->probe_abandoned) {
			m->st.mobike_updates_received++;
			sess_rebind(s, &s->probe_local, s->probe_lport, &s->probe_remote, s->probe_rport, s->natt);
		}
	}
	if (s->sa.probe_done) {
		s->sa.probe_done = false;
		if (!s->probe_abandoned) {
			char a[64];
			bt_info("IKE %s: the path from %s works: moving", s->conn, bt_addr_str(&s->probe_local, a, sizeof(a)));
			struct bt_addr l = s->probe_local, r = s->probe_remote;
			mobike_move(s, &l, &r);
		} else {
			s->mob_recheck = true;
		}
	}
	if (s->sa.peer_addrs_changed) {
		s->sa.peer_addrs_changed = false;
		s->mob_recheck = true; /* the peer's addresses changed: is there a better path now? */
	}
	if (s->req || s->sa.state != IKE_ST_ESTABLISHED)
		return;
	if (s->mob_update) {
		mobike_update(s);
	} else if (s->mob_addrs) {
		mobike_addresses(s);
	} else if (s->mob_recheck) {
		s->mob_recheck = false;
		mobike_check(s);
	}
}
