/* ike_list.c — the IKE SAs and their Child SAs, and the IKE counters, as JSON for the control socket. */
#include "daemon/ike_internal.h"

/* --- listing ----------------------------------------------------------------------------------- */

json_t *ike_mgr_list(struct daemon *d)
{
	struct ike_mgr *m = d->ike;
	json_t *a = json_array();
	if (!m)
		return a;
	for (struct ike_sess *s = m->all; s; s = s->next_all) {
		char l[64], r[64], spi[40], prop[96], eprop[96];
		ike_prop_name(&s->sa.ike_chosen, prop, sizeof(prop));
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:b,s:b,s:b}", "name", s->conn, "child", s->child,
				      "state", ike_state_name(s->sa.state), "role", s->sa.initiator ? "initiator" : "responder",
				      "local", bt_addr_str(&s->local, l, sizeof(l)), "local_port", (json_int_t)s->lport,
				      "remote", bt_addr_str(&s->remote, r, sizeof(r)), "remote_port", (json_int_t)s->rport,
				      "nat_local", s->sa.nat_local, "nat_remote", s->sa.nat_remote, "udp_encap", s->natt);
		snprintf(spi, sizeof(spi), "%016llx", (unsigned long long)s->sa.spi_i);
		json_object_set_new(o, "spi_i", json_string(spi));
		snprintf(spi, sizeof(spi), "%016llx", (unsigned long long)s->sa.spi_r);
		json_object_set_new(o, "spi_r", json_string(spi));
		json_object_set_new(o, "proposal", json_string(prop));
		json_object_set_new(o, "message_id_out", json_integer(s->sa.next_send_id));
		json_object_set_new(o, "message_id_in", json_integer(s->sa.next_recv_id));
		json_object_set_new(o, "child_rekeys", json_integer((json_int_t)s->rekeys));
		json_object_set_new(o, "ike_rekeys", json_integer((json_int_t)s->sa.ike_rekeys));
		json_object_set_new(o, "fragmentation", json_boolean(s->sa.frag_peer));
		json_object_set_new(o, "encap_forced", json_boolean(s->sa.conf->force_encap));
		json_object_set_new(o, "mobike", json_boolean(s->sa.mobike));
		if (s->sa.mobike) {
			json_object_set_new(o, "mobike_moves", json_integer((json_int_t)s->moves));
			json_object_set_new(o, "mobike_updates_sent", json_integer((json_int_t)s->sa.updates_sent));
			json_object_set_new(o, "mobike_updates_received", json_integer((json_int_t)s->sa.updates_received));
			json_t *pa = json_array();
			for (unsigned k = 0; k < s->sa.n_peer_addrs; k++) {
				char x[64];
				json_array_append_new(pa, json_string(bt_addr_str(&s->sa.peer_addrs[k], x, sizeof(x))));
			}
			json_object_set_new(o, "peer_additional_addrs", pa);
		}
		if (ev_is_active(&s->irekey))
			json_object_set_new(o, "ike_rekey_in_s", json_real(ev_timer_remaining(m->d->loop, &s->irekey)));
		struct sess_child *first = NULL;
		for (int k = 0; k < IKE_CHILD_MAX && !first; k++)
			if (s->ch[k] && s->ch[k]->installed)
				first = s->ch[k];
		if (first && ev_is_active(&first->rekey))
			json_object_set_new(o, "child_rekey_in_s", json_real(ev_timer_remaining(m->d->loop, &first->rekey)));
		json_object_set_new(o, "fragments_sent", json_integer((json_int_t)s->sa.frags_sent));
		json_object_set_new(o, "fragments_received", json_integer((json_int_t)s->sa.frags_received));
		if (s->established)
			json_object_set_new(o, "established_s", json_real(ikm_now_s(m) - s->established));
		if (s->established)
			json_object_set_new(o, "setup_ms", json_real((s->established - s->started) * 1000));
		if (s->sa.state == IKE_ST_ESTABLISHED && s->sa.peer_id_len) { /* as the peer authenticated */
			char id[512];
			json_object_set_new(o, "peer_id", json_string(ike_id_str(s->sa.peer_id_type, s->sa.peer_id,
										  s->sa.peer_id_len, id, sizeof(id))));
			json_object_set_new(o, "peer_auth", json_string(s->sa.peer_cert ? "pubkey" : "psk"));
			if (s->sa.peer_cert)
				json_object_set_new(o, "peer_cert", json_string(ike_dn_str(X509_get_subject_name(s->sa.peer_cert),
											   id, sizeof(id))));
		}
		/* every Child SA in "children"; the first also as "child_sa" */
		json_t *kids = json_array();
		for (int k = 0; k < IKE_CHILD_MAX; k++) {
			struct sess_child *sc = s->ch[k];
			if (!sc || !sc->installed || !s->sa.child[k])
				continue;
			ike_prop_name(&s->sa.child[k]->esp, eprop, sizeof(eprop));
			char in[16], out[16];
			snprintf(in, sizeof(in), "%08x", sc->spi_in);
			snprintf(out, sizeof(out), "%08x", sc->spi_out);
			json_t *x = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:I}", "name", sc->name, "spi_in", in, "spi_out", out,
					      "proposal", eprop, "local_ts", control_ts_json(sc->pol_ts, sc->pol_nl), "remote_ts",
					      control_ts_json(sc->pol_ts + sc->pol_nl, sc->pol_nr), "rekeys", (json_int_t)sc->rekeys);
			if (ev_is_active(&sc->rekey))
				json_object_set_new(x, "rekey_in_s", json_real(ev_timer_remaining(m->d->loop, &sc->rekey)));
			if (sc == first)
				json_object_set_new(o, "child_sa", json_deep_copy(x));
			json_array_append_new(kids, x);
		}
		json_object_set_new(o, "children", kids);
		json_array_append_new(a, o);
	}
	return a;
}

json_t *ike_mgr_stats(struct daemon *d)
{
	struct ike_mgr *m = d->ike;
	if (!m)
		return json_object();
	const struct ike_stats *t = &m->st;
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "ike_sas",
			 (json_int_t)m->n_sess, "half_open", (json_int_t)m->n_half_open, "rx", (json_int_t)t->rx, "tx",
			 (json_int_t)t->tx, "tx_errors", (json_int_t)t->tx_errors, "retransmits", (json_int_t)t->retransmits,
			 "timeouts", (json_int_t)t->timeouts, "initiated", (json_int_t)t->initiated, "established",
			 (json_int_t)t->established, "failed", (json_int_t)t->failed, "acquires", (json_int_t)t->acquires,
			 "cookies_sent", (json_int_t)t->cookies_sent, "dpd_sent", (json_int_t)t->dpd_sent, "drop_malformed",
			 (json_int_t)t->drop_malformed, "drop_unknown_spi", (json_int_t)t->drop_unknown_spi, "drop_no_conn",
			 (json_int_t)t->drop_no_conn, "drop_ignored", (json_int_t)t->drop_ignored, "drop_queue",
			 (json_int_t)t->drop_queue);
	json_object_set_new(o, "child_rekeys", json_integer((json_int_t)t->child_rekeys));
	json_object_set_new(o, "rekey_failed", json_integer((json_int_t)t->rekey_failed));
	json_object_set_new(o, "ike_rekeys", json_integer((json_int_t)t->ike_rekeys));
	json_object_set_new(o, "half_open_expired", json_integer((json_int_t)t->half_open_expired));
	json_object_set_new(o, "initial_contact_drops", json_integer((json_int_t)t->initial_contact_drops));
	static const char *const xn[4] = {"tx_ike_sa_init", "tx_ike_auth", "tx_create_child_sa", "tx_informational"};
	for (int k = 0; k < 4; k++)
		json_object_set_new(o, xn[k], json_integer((json_int_t)t->tx_exchange[k]));
	json_object_set_new(o, "mobike_moves", json_integer((json_int_t)t->mobike_moves));
	json_object_set_new(o, "mobike_updates_sent", json_integer((json_int_t)t->mobike_updates_sent));
	json_object_set_new(o, "mobike_updates_received", json_integer((json_int_t)t->mobike_updates_received));
	json_object_set_new(o, "mobike_probes", json_integer((json_int_t)t->mobike_probes));
	json_object_set_new(o, "mobike_probe_failures", json_integer((json_int_t)t->mobike_probe_failures));
	json_object_set_new(o, "mobike_failovers", json_integer((json_int_t)t->mobike_failovers));
	json_object_set_new(o, "mobike_gateway_moves", json_integer((json_int_t)t->mobike_gateway_moves));
	json_object_set_new(o, "rebinds", json_integer((json_int_t)t->rebinds));
	json_object_set_new(o, "path_events", json_integer((json_int_t)t->path_events));
	const struct { const char *name; uint64_t v; } xf[] = {
		{"context_gets", t->xfer_gets}, {"context_detached", t->xfer_detached}, {"context_puts", t->xfer_puts},
		{"context_refused", t->xfer_refused}, {"context_spi_rekeys", t->xfer_spi_rekeys}};
	for (size_t k = 0; k < sizeof(xf) / sizeof(xf[0]); k++)
		json_object_set_new(o, xf[k].name, json_integer((json_int_t)xf[k].v));
	return o;
}
