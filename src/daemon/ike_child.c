/* ike_child.c — Child SAs in the data plane: ESP SAs from the engine's keys, their policies,
 * installing, rekeying (make before break) and retiring them, and the rekey timers. */
#include "daemon/ike_internal.h"

/* --- Child SAs in the data plane --------------------------------------------------------------- */

static int esp_algs(const struct ike_proposal *p, struct esp_sa *sa)
{
	const struct ike_transform *e = ike_prop_get(p, IKE_TR_ENCR), *i = ike_prop_get(p, IKE_TR_INTEG),
				   *n = ike_prop_get(p, IKE_TR_ESN);
	if (!e)
		return -1;
	switch (e->id) {
	case IKE_ENCR_AES_GCM_16: sa->enc = ESP_ENC_AES_GCM_16; break;
	case IKE_ENCR_CHACHA20_POLY1305: sa->enc = ESP_ENC_CHACHA20_POLY1305; break;
	case IKE_ENCR_AES_CBC: sa->enc = ESP_ENC_AES_CBC; break;
	case IKE_ENCR_AES_CTR: sa->enc = ESP_ENC_AES_CTR; break;
	case IKE_ENCR_3DES: sa->enc = ESP_ENC_3DES_CBC; break;
	case IKE_ENCR_NULL: sa->enc = ESP_ENC_NULL; break;
	default: return -1;
	}
	switch (i ? i->id : IKE_INTEG_NONE) {
	case IKE_INTEG_NONE: sa->integ = ESP_INTEG_NONE; break;
	case IKE_INTEG_HMAC_MD5_96: sa->integ = ESP_INTEG_HMAC_MD5_96; break;
	case IKE_INTEG_HMAC_SHA1_96: sa->integ = ESP_INTEG_HMAC_SHA1_96; break;
	case IKE_INTEG_HMAC_SHA2_256_128: sa->integ = ESP_INTEG_HMAC_SHA2_256_128; break;
	case IKE_INTEG_HMAC_SHA2_384_192: sa->integ = ESP_INTEG_HMAC_SHA2_384_192; break;
	case IKE_INTEG_HMAC_SHA2_512_256: sa->integ = ESP_INTEG_HMAC_SHA2_512_256; break;
	default: return -1;
	}
	sa->esn = n && n->id == 1;
	return 0;
}

static void free_sa(struct esp_sa *sa)
{
	if (sa) {
		esp_sa_clear(sa);
		free(sa);
	}
}

/* A Child SA's outbound policy as the SPD's dynamic level takes it (borrowing sc's selectors). */
static void child_policy(struct ike_sess *s, struct sess_child *sc, struct spd_policy *p)
{
	memset(p, 0, sizeof(*p));
	/* "conn/child", each cut at 15 (as the SA names) */
	size_t a = strnlen(s->conn, 15), b = strnlen(sc->name, 15);
	memcpy(p->name, s->conn, a);
	p->name[a] = '/';
	memcpy(p->name + a + 1, sc->name, b);
	p->priority = sc->pol_prio, p->dir = SPD_DIR_OUT, p->action = SPD_PROTECT, p->reqid = sc->reqid;
	p->local = sc->pol_ts, p->n_local = sc->pol_nl;
	p->remote = sc->pol_ts + sc->pol_nl, p->n_remote = sc->pol_nr;
	p->hits = &sc->pol_hits;
}

void ikm_uninstall(struct ike_sess *s, struct sess_child *sc)
{
	if (!sc || !sc->installed)
		return;
	struct dataplane *dp = s->m->d->dp;
	struct spd_policy p;
	child_policy(s, sc, &p);
	dp_pol_del(dp, &p); /* first: no packet finds the policy without its SA */
	if (sc->spi_in)
		dp_sa_del(dp, sc->spi_in, ESP_DIR_IN);
	dp_sa_del(dp, sc->spi_out, ESP_DIR_OUT);
	if (sc->old_spi_in)
		dp_sa_del(dp, sc->old_spi_in, ESP_DIR_IN);
	sc->old_spi_in = 0;
	free_sa(sc->next_out);
	sc->next_out = NULL;
	ev_timer_stop(s->m->d->loop, &sc->rekey);
	sc->installed = false;
	bt_info("IKE %s/%s: Child SA removed (in 0x%08x, out 0x%08x)", s->conn, sc->name, sc->spi_in, sc->spi_out);
}

/* The inbound and outbound ESP SAs of a negotiated child (sa[0] in, sa[1] out), for sc->reqid;
 * with r, their sequence numbers, replay windows and counters as a transfer carried them. */
static int build_sas(struct ike_sess *s, struct sess_child *sc, const struct ike_child *k, const struct esp_restore *r,
		     struct esp_sa *sa[2])
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, s->conn);
	const struct cfg_child *ch = ikm_child_by_name(c, sc->name);
	char err[160];
	bool ini = s->sa.initiator;
	sa[0] = calloc(1, sizeof(struct esp_sa)), sa[1] = calloc(1, sizeof(struct esp_sa));
	if (!ch || !sa[0] || !sa[1])
		goto fail;
	for (int d = 0; d < 2; d++) {
		struct esp_sa *x = sa[d];
		bool in = d == 0;
		/* the initiator's keys protect initiator -> responder */
		bool i2r = in != ini;
		snprintf(x->name, sizeof(x->name), "%.15s/%.15s", s->conn, sc->name);
		x->spi = in ? (ini ? k->spi_i : k->spi_r) : (ini ? k->spi_r : k->spi_i);
		x->reqid = sc->reqid;
		x->dir = in ? ESP_DIR_IN : ESP_DIR_OUT;
		x->mode = ch->mode;
		x->encap = s->natt ? ESP_ENCAP_UDP : ESP_ENCAP_RAW;
		x->local = s->local, x->remote = s->remote;
		x->local_port = dp_udp_port(m->d->dp);
		x->remote_port = s->natt ? s->rport : ESP_UDP_PORT;
		x->any_peer = in && s->sa.mobike; /* the peer may move before its update reaches us */
		const struct bt_ts *lts = ini ? k->ts_i : k->ts_r, *rts = ini ? k->ts_r : k->ts_i;
		if (esp_sa_set_ts(x, lts, ini ? k->n_ts_i : k->n_ts_r, rts, ini ? k->n_ts_r : k->n_ts_i))
			goto fail;
		if (esp_algs(&k->esp, x))
			goto fail;
		x->enc_key_len = (uint8_t)k->encr_len;
		memcpy(x->enc_key, i2r ? k->ei : k->er, k->encr_len);
		x->integ_key_len = (uint8_t)k->integ_len;
		memcpy(x->integ_key, i2r ? k->ai : k->ar, k->integ_len);
		x->soft = ch->soft, x->hard = ch->hard;
		x->add_time = daemon_now();
		esp_sa_set_replay_window(x, in ? ch->replay_window : 0);
		if (bt_log_get_level() >= BT_LOG_PRIVATE) {
			/* for tshark's esp_sa UAT (log_level = private only): family,src,dst,spi,enc key,integ key */
			char src[64], dst[64], ek[2 * sizeof(x->enc_key) + 1] = "", ik[2 * sizeof(x->integ_key) + 1] = "";
			for (size_t i = 0; i < x->enc_key_len; i++)
				sprintf(ek + 2 * i, "%02x", x->enc_key[i]);
			for (size_t i = 0; i < x->integ_key_len; i++)
				sprintf(ik + 2 * i, "%02x", x->integ_key[i]);
			bt_log(BT_LOG_PRIVATE, "esp_sa: %s,%s,%s,0x%08x,0x%s,0x%s", x->local.family == AF_INET6 ? "IPv6" : "IPv4",
			       bt_addr_str(in ? &x->remote : &x->local, src, sizeof(src)),
			       bt_addr_str(in ? &x->local : &x->remote, dst, sizeof(dst)), x->spi, ek, ik);
		}
		if (esp_sa_init(x, dp_lanes(m->d->dp), err, sizeof(err)) != 0) {
			bt_err("IKE %s: cannot build the Child SA: %s", s->conn, err);
			goto fail;
		}
		if (r && esp_ctx_read(x, in ? r->in : r->out, x->add_time, in ? 0 : r->seq_jump) != 0) {
			bt_err("IKE %s: the context's ESP state of 0x%08x is invalid", s->conn, x->spi);
			goto fail;
		}
	}
	return 0;
fail:
	free_sa(sa[0]), free_sa(sa[1]);
	sa[0] = sa[1] = NULL;
	return -1;
}

static void arm_rekey(struct ike_sess *s, struct sess_child *sc)
{
	const struct cfg_child *ch = ikm_child_by_name(ikm_conn_by_name(s->m->d->cfg, s->conn), sc->name);
	ev_timer_stop(s->m->d->loop, &sc->rekey);
	if (!ch || !ch->soft.seconds)
		return;
	/* a little jitter keeps two peers with the same rekey_time from colliding every time */
	double j = (double)(rand() % 1000) / 1000.0 * (ch->soft.seconds > 10 ? 2.0 : 0.2);
	ev_timer_set(&sc->rekey, (double)ch->soft.seconds - j, 0);
	ev_timer_start(s->m->d->loop, &sc->rekey);
}

int ikm_install(struct ike_sess *s, struct sess_child *sc, const struct ike_child *k, const struct esp_restore *r)
{
	struct ike_mgr *m = s->m;
	struct esp_sa *sa[2];
	const struct cfg_child *ch = ikm_child_by_name(ikm_conn_by_name(m->d->cfg, s->conn), sc->name);
	bool ini = s->sa.initiator;
	sc->reqid = m->next_reqid++;
	if (m->next_reqid < IKE_REQID_BASE)
		m->next_reqid = IKE_REQID_BASE;
	if (!ch || build_sas(s, sc, k, r, sa) != 0)
		return -1;
	sc->spi_in = sa[0]->spi, sc->spi_out = sa[1]->spi;
	if (dp_sa_add(m->d->dp, sa[0]) != 0) {
		bt_log(r ? BT_LOG_WARN : BT_LOG_ERR, "IKE %s: inbound SPI 0x%08x already in use%s", s->conn, sc->spi_in,
		       r ? ": the Child SA goes in without it and is rekeyed" : "");
		if (!r)
			goto fail;
		/* a transferred child whose SPI another SA holds here: never overwrite that one; the
		 * rekey its caller starts gives this child an SPI of its own */
		sc->spi_collision = true;
		sc->spi_in = 0;
		free_sa(sa[0]);
	}
	sa[0] = NULL;
	if (dp_sa_add(m->d->dp, sa[1]) != 0) {
		if (sc->spi_in)
			dp_sa_del(m->d->dp, sc->spi_in, ESP_DIR_IN);
		goto fail;
	}
	sa[1] = NULL;
	/* the policy: kept here for listings, and a copy in the SPD's dynamic level */
	sc->pol_nl = ini ? k->n_ts_i : k->n_ts_r, sc->pol_nr = ini ? k->n_ts_r : k->n_ts_i;
	sc->pol_prio = ch->priority;
	free(sc->pol_ts);
	sc->pol_ts = malloc(((size_t)sc->pol_nl + sc->pol_nr + 1) * sizeof(*sc->pol_ts));
	if (!sc->pol_ts) {
		if (sc->spi_in)
			dp_sa_del(m->d->dp, sc->spi_in, ESP_DIR_IN);
		dp_sa_del(m->d->dp, sc->spi_out, ESP_DIR_OUT);
		return -1;
	}
	memcpy(sc->pol_ts, ini ? k->ts_i : k->ts_r, sc->pol_nl * sizeof(*sc->pol_ts));
	memcpy(sc->pol_ts + sc->pol_nl, ini ? k->ts_r : k->ts_i, sc->pol_nr * sizeof(*sc->pol_ts));
	struct spd_policy p;
	child_policy(s, sc, &p);
	if (dp_pol_add(m->d->dp, &p) != 0) {
		if (sc->spi_in)
			dp_sa_del(m->d->dp, sc->spi_in, ESP_DIR_IN);
		dp_sa_del(m->d->dp, sc->spi_out, ESP_DIR_OUT);
		return -1;
	}
	sc->installed = true;
	char a[64], b[64], prop[96];
	ike_prop_name(&k->esp, prop, sizeof(prop));
	bt_info("IKE %s/%s: Child SA up, %s, in 0x%08x out 0x%08x, %s%s%s:%u", s->conn, sc->name, prop, sc->spi_in,
		sc->spi_out, bt_addr_str(&s->local, a, sizeof(a)), s->natt ? " UDP-encap -> " : " ESP -> ",
		bt_addr_str(&s->remote, b, sizeof(b)), s->natt ? s->rport : 0);
	arm_rekey(s, sc);
	return 0;
fail:
	free_sa(sa[0]), free_sa(sa[1]);
	return -1;
}

/* Transfer with detach: the child's policy and SAs leave the data plane; sa[0] in (NULL after an
 * SPI collision), sa[1] out come back with their counters final. ikm_child_give_back undoes it. */
int ikm_child_take(struct ike_sess *s, struct sess_child *sc, struct esp_sa *sa[2])
{
	struct dataplane *dp = s->m->d->dp;
	struct spd_policy p;
	child_policy(s, sc, &p);
	dp_pol_del(dp, &p);
	dp_sa_take(dp, sc->spi_in, sc->reqid, sa);
	if ((sc->spi_in && !sa[0]) || !sa[1] || sa[1]->spi != sc->spi_out) {
		ikm_child_give_back(s, sc, sa);
		return -1;
	}
	return 0;
}

void ikm_child_give_back(struct ike_sess *s, struct sess_child *sc, struct esp_sa *sa[2])
{
	struct dataplane *dp = s->m->d->dp;
	struct spd_policy p;
	for (int d = 0; d < 2; d++)
		if (sa[d] && dp_sa_add(dp, sa[d]) != 0)
			free_sa(sa[d]);
	child_policy(s, sc, &p);
	dp_pol_add(dp, &p);
}

/* A rekey produced a new child: its inbound SA goes in at once. The side whose rekey made it
 * switches outbound now (the peer installed everything before answering) and deletes the old one;
 * the other side switches when the old child is deleted, so that nothing arrives before the peer
 * can take it. */
void ikm_install_next(struct ike_sess *s, int k)
{
	struct ike_mgr *m = s->m;
	struct ike_child *c = s->sa.child[k];
	struct sess_child *sc = s->ch[k];
	bool we_started = c->next_ours;
	struct esp_sa *sa[2] = {NULL, NULL};
	if (c->red)
		bt_info("IKE %s/%s: both ends rekeyed at once (RFC 7296 2.8.1): %s new Child SA stays, %s the other",
			s->conn, sc ? sc->name : "?", we_started ? "ours" : "the peer's", c->red_delete ? "we delete" : "the peer deletes");
	if (!sc || !sc->installed || build_sas(s, sc, c->next, NULL, sa) != 0 || dp_sa_add(m->d->dp, sa[0]) != 0) {
		bt_err("IKE %s: cannot install the rekeyed Child SA", s->conn);
		free_sa(sa[0]); /* not taken by the SAD */
		free_sa(sa[1]);
		ike_child_promote(&s->sa, c); /* keep the engine consistent; the SA will be deleted */
		return;
	}
	uint32_t new_in = sa[0]->spi, new_out = sa[1]->spi;
	sc->old_spi_in = sc->spi_in; /* 0 after an SPI collision: there is no old inbound SA of ours */
	sc->spi_collision = false;
	sc->spi_in = new_in;
	if (we_started) {
		dp_sa_add(m->d->dp, sa[1]); /* replaces the old outbound SA of this reqid atomically */
		sc->spi_out = new_out;
		sc->owe_old_delete = true;
	} else {
		free_sa(sc->next_out);
		sc->next_out = sa[1];
	}
	ike_child_promote(&s->sa, c);
	sc->rekeys++;
	s->rekeys++;
	m->st.child_rekeys++;
	bt_info("IKE %s/%s: Child SA rekeyed: in 0x%08x -> 0x%08x, out -> 0x%08x%s", s->conn, sc->name, sc->old_spi_in,
		new_in, new_out, we_started ? "" : " (after the old one is deleted)");
	arm_rekey(s, sc);
}

/* The old child's delete completed: its inbound SA goes; a waiting new outbound SA takes over. */
void ikm_retire_old(struct ike_sess *s, struct sess_child *sc)
{
	struct ike_mgr *m = s->m;
	if (!sc)
		return;
	if (sc->next_out) {
		sc->spi_out = sc->next_out->spi;
		dp_sa_add(m->d->dp, sc->next_out);
		sc->next_out = NULL;
	}
	if (sc->old_spi_in) {
		dp_sa_del(m->d->dp, sc->old_spi_in, ESP_DIR_IN);
		bt_debug("IKE %s/%s: old inbound SA 0x%08x removed", s->conn, sc->name, sc->old_spi_in);
		sc->old_spi_in = 0;
	}
}


void ikm_arm_ike_rekey(struct ike_sess *s)
{
	const struct cfg_conn *c = ikm_conn_by_name(s->m->d->cfg, s->conn);
	ev_timer_stop(s->m->d->loop, &s->irekey);
	if (!c || !c->ike_rekey_time)
		return;
	double j = (double)(rand() % 1000) / 1000.0 * (c->ike_rekey_time > 10 ? 2.0 : 0.2);
	ev_timer_set(&s->irekey, (double)c->ike_rekey_time - j, 0);
	ev_timer_start(s->m->d->loop, &s->irekey);
}

int ikm_start_ike_rekey(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	size_t len = s->req ? 0 : ike_rekey_ike(&s->sa, m->out, sizeof(m->out));
	if (!len) {
		ev_timer_stop(m->d->loop, &s->irekey);
		ev_timer_set(&s->irekey, 0.5 + (double)(rand() % 1000) / 1000.0, 0);
		ev_timer_start(m->d->loop, &s->irekey);
		return -EBUSY;
	}
	bt_info("IKE %s: rekeying the IKE SA", s->conn);
	ikm_send_request(s, m->out, len);
	return 0;
}

void ikm_irekey_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	if (s->sa.state == IKE_ST_ESTABLISHED && !s->closing)
		ikm_start_ike_rekey(s);
}

/* Start a Child SA rekey now (or a little later if an exchange is in flight). */
int ikm_start_rekey(struct ike_sess *s, int k)
{
	struct ike_mgr *m = s->m;
	struct sess_child *sc = s->ch[k];
	size_t len = s->req ? 0 : ike_rekey_child(&s->sa, s->sa.child[k], m->out, sizeof(m->out));
	if (!len) {
		ev_timer_stop(m->d->loop, &sc->rekey);
		ev_timer_set(&sc->rekey, 0.5 + (double)(rand() % 1000) / 1000.0, 0);
		ev_timer_start(m->d->loop, &sc->rekey);
		return -EBUSY;
	}
	bt_info("IKE %s/%s: rekeying the Child SA", s->conn, sc->name);
	ikm_send_request(s, m->out, len);
	return 0;
}

static int slot_of(const struct ike_sess *s, const struct sess_child *sc)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (sc && s->ch[k] == sc)
			return k;
	return -1;
}

void ikm_rekey_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sess_child *sc = w->data;
	struct ike_sess *s = sc->s;
	int k = slot_of(s, sc);
	if (s->sa.state == IKE_ST_ESTABLISHED && sc->installed && !sc->closing && k >= 0 && s->sa.child[k])
		ikm_start_rekey(s, k);
}
