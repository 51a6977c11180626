/* ike_sess.c — IKE sessions around the engine: their tables, the engine configuration of a connection,
 * their life (new, established, gone), their Child SAs and timers, and initiate/rekey/terminate. */
#include "daemon/ike_internal.h"

/* --- the session tables ------------------------------------------------------------------------ */

void ikm_link_local(struct ike_sess *s, uint64_t key)
{
	if (s->local_key || !key)
		return;
	s->local_key = key;
	struct ike_sess **b = &s->m->by_local[ikm_bucket(key)];
	s->next_local = *b, *b = s;
}

void ikm_link_peer(struct ike_sess *s)
{
	struct ike_sess **b = &s->m->by_peer[ikm_bucket(s->sa.spi_i)];
	s->next_peer = *b, *b = s;
	s->in_peer_table = true;
}

void ikm_unlink_from(struct ike_sess **b, struct ike_sess *s, bool local)
{
	for (; *b; b = local ? &(*b)->next_local : &(*b)->next_peer)
		if (*b == s) {
			*b = local ? s->next_local : s->next_peer;
			return;
		}
}

void ikm_link_old(struct ike_sess *s, uint64_t key)
{
	struct ike_sess **b = &s->m->by_old[ikm_bucket(key)];
	s->old_key = key;
	s->next_old = *b, *b = s;
}

void ikm_unlink_old(struct ike_sess *s)
{
	if (!s->old_key)
		return;
	for (struct ike_sess **b = &s->m->by_old[ikm_bucket(s->old_key)]; *b; b = &(*b)->next_old)
		if (*b == s) {
			*b = s->next_old;
			break;
		}
	s->old_key = 0;
}

void ikm_link_red(struct ike_sess *s, uint64_t key)
{
	struct ike_sess **b = &s->m->by_red[ikm_bucket(key)];
	s->red_key = key;
	s->next_red = *b, *b = s;
}

void ikm_unlink_red(struct ike_sess *s)
{
	if (!s->red_key)
		return;
	for (struct ike_sess **b = &s->m->by_red[ikm_bucket(s->red_key)]; *b; b = &(*b)->next_red)
		if (*b == s) {
			*b = s->next_red;
			break;
		}
	s->red_key = 0;
}

struct ike_sess *ikm_find_red(struct ike_mgr *m, uint64_t spi)
{
	for (struct ike_sess *s = m->by_red[ikm_bucket(spi)]; s; s = s->next_red)
		if (s->red_key == spi)
			return s;
	return NULL;
}

struct ike_sess *ikm_find_old(struct ike_mgr *m, uint64_t spi)
{
	for (struct ike_sess *s = m->by_old[ikm_bucket(spi)]; s; s = s->next_old)
		if (s->old_key == spi)
			return s;
	return NULL;
}

struct ike_sess *ikm_find_local(struct ike_mgr *m, uint64_t spi, bool initiator)
{
	for (struct ike_sess *s = m->by_local[ikm_bucket(spi)]; s; s = s->next_local)
		if (s->local_key == spi && s->sa.initiator == initiator)
			return s;
	return NULL;
}

/* A responder's SA by the initiator's SPI and address (IKE_SA_INIT retransmissions). */
struct ike_sess *ikm_find_peer(struct ike_mgr *m, uint64_t spi_i, const struct bt_addr *src)
{
	for (struct ike_sess *s = m->by_peer[ikm_bucket(spi_i)]; s; s = s->next_peer)
		if (s->sa.spi_i == spi_i && bt_addr_eq(&s->remote, src))
			return s;
	return NULL;
}

const struct cfg_child *ikm_child_by_name(const struct cfg_conn *c, const char *name)
{
	for (size_t j = 0; c && j < c->n_children; j++)
		if (!strcmp(c->children[j].name, name))
			return &c->children[j];
	return NULL;
}

/* --- from configuration to engine -------------------------------------------------------------- */

int ikm_conf_from(const struct bt_config *cfg, const struct cfg_conn *c, const struct cfg_child *ch,
		  struct ike_conf *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	/* the lists are borrowed from the configuration, read only: conf_get copies them */
	k->ike_props = (struct ike_proposal *)c->ike_props;
	k->n_ike_props = c->n_ike_props;
	k->esp_props = (struct ike_proposal *)ch->esp_props;
	k->n_esp_props = ch->n_esp_props;
	k->force_encap = c->encap;
	k->fragmentation = c->fragmentation;
	k->mobike = c->mobike;
	k->frag_mtu = (uint16_t)cfg->fragment_size;
	if (c->psk_len > sizeof(k->psk) || c->local.id_len > sizeof(k->id) || c->remote.id_len > sizeof(k->peer_id)) {
		snprintf(err, errlen, "%s: identity or key too long for IKE", c->name);
		return -1;
	}
	memcpy(k->psk, c->psk, c->psk_len);
	k->psk_len = c->psk_len;
	k->id_type = c->local.id_type;
	memcpy(k->id, c->local.id, c->local.id_len);
	k->id_len = c->local.id_len;
	k->peer_id_type = c->remote.id_type;
	memcpy(k->peer_id, c->remote.id, c->remote.id_len);
	k->peer_id_len = c->remote.id_len;
	k->auth = c->local.auth == CFG_AUTH_PUBKEY ? IKE_AUTHBY_PUBKEY : IKE_AUTHBY_PSK;
	k->peer_auth = c->remote.auth == CFG_AUTH_PUBKEY ? IKE_AUTHBY_PUBKEY : IKE_AUTHBY_PSK;
	k->peer_id_any = c->remote.auth == CFG_AUTH_PUBKEY && c->remote.id_any; /* any ID its certificate holds */
	k->cred = c->cred;
	k->local_ts = (struct bt_ts *)ch->local_ts, k->remote_ts = (struct bt_ts *)ch->remote_ts;
	k->n_local_ts = ch->n_local_ts, k->n_remote_ts = ch->n_remote_ts;
	return 0;
}

void ikm_fingerprint(const struct cfg_conn *c, const struct cfg_child *ch, const struct ike_conf *k, uint8_t out[32])
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	unsigned l = 32;
	EVP_DigestInit_ex(x, EVP_sha256(), NULL);
	struct ike_conf t;
	memcpy(&t, k, sizeof(t)); /* with its padding: k was zeroed first, an assignment may not copy it */
	t.cred = NULL;            /* the certificates by content: a reload loads them anew */
	t.ike_props = t.esp_props = NULL, t.local_ts = t.remote_ts = NULL; /* the lists by content */
	EVP_DigestUpdate(x, &t, sizeof(t));
	OPENSSL_cleanse(&t, sizeof(t));
	EVP_DigestUpdate(x, k->ike_props, k->n_ike_props * sizeof(k->ike_props[0]));
	EVP_DigestUpdate(x, k->esp_props, k->n_esp_props * sizeof(k->esp_props[0]));
	EVP_DigestUpdate(x, k->local_ts, k->n_local_ts * sizeof(k->local_ts[0]));
	EVP_DigestUpdate(x, k->remote_ts, k->n_remote_ts * sizeof(k->remote_ts[0]));
	if (k->cred) {
		uint8_t md[EVP_MAX_MD_SIZE];
		unsigned ml;
		if (k->cred->cert && X509_digest(k->cred->cert, EVP_sha256(), md, &ml))
			EVP_DigestUpdate(x, md, ml);
		for (int i = 0; i < sk_X509_num(k->cred->cas); i++)
			if (X509_digest(sk_X509_value(k->cred->cas, i), EVP_sha256(), md, &ml))
				EVP_DigestUpdate(x, md, ml);
	}
	EVP_DigestUpdate(x, c->local_addrs, sizeof(c->local_addrs));
	EVP_DigestUpdate(x, c->remote_addrs, sizeof(c->remote_addrs));
	EVP_DigestUpdate(x, &c->encap, sizeof(c->encap));
	EVP_DigestUpdate(x, &ch->mode, sizeof(ch->mode));
	EVP_DigestUpdate(x, &ch->replay_window, sizeof(ch->replay_window));
	EVP_DigestUpdate(x, ch->name, strlen(ch->name));
	EVP_DigestFinal_ex(x, out, &l);
	EVP_MD_CTX_free(x);
}

/* --- sessions ---------------------------------------------------------------------------------- */

static void rtx_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void dpd_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void ka_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void want_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void child_down(struct ike_sess *s, int k);

/* The count of our IKE SAs with peer a, changed by delta. Open addressing; a slot is never freed
 * (its count drops to 0), and a full table answers 1 (no INITIAL_CONTACT: the safe side). */
uint32_t ikm_contacts(struct ike_mgr *m, const struct bt_addr *a, int delta)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < bt_addr_len(a); i++)
		h = (h ^ a->b[i]) * 1099511628211ull;
	for (size_t k = 0, i = h % CONTACTS; k < CONTACTS; k++, i = (i + 1) % CONTACTS) {
		struct contact *c = &m->contacts[i];
		if (!c->a.family) {
			if (delta <= 0)
				return 0;
			c->a = *a;
		}
		if (bt_addr_eq(&c->a, a)) {
			c->n = delta < 0 && !c->n ? 0 : c->n + (uint32_t)delta;
			return c->n;
		}
	}
	return 1;
}

static size_t conf_bucket(const uint8_t fp[32])
{
	return ((size_t)fp[0] << 8 | fp[1]) % CONF_BUCKETS;
}

/* The shared engine configuration with this fingerprint, made from k if there is none yet. */
static struct conf_ref *conf_get(struct ike_mgr *m, const struct ike_conf *k, const uint8_t fp[32])
{
	struct conf_ref **b = &m->confs[conf_bucket(fp)];
	for (struct conf_ref *r = *b; r; r = r->next)
		if (!memcmp(r->fp, fp, 32)) {
			r->refs++;
			return r;
		}
	/* the lists copied right after it, each sized to what it holds (room for the one proposal
	 * ike_conf_finish makes of an empty list) */
	size_t ni = k->n_ike_props ? k->n_ike_props : 1, ne = k->n_esp_props ? k->n_esp_props : 1;
	struct conf_ref *r = calloc(1, sizeof(*r) + (ni + ne) * sizeof(struct ike_proposal) +
					       ((size_t)k->n_local_ts + k->n_remote_ts) * sizeof(struct bt_ts));
	if (!r)
		return NULL;
	r->conf = *k;
	r->conf.ike_props = (struct ike_proposal *)r->lists;
	r->conf.esp_props = r->conf.ike_props + ni;
	r->conf.local_ts = (struct bt_ts *)(r->conf.esp_props + ne);
	r->conf.remote_ts = r->conf.local_ts + k->n_local_ts;
	memcpy(r->conf.ike_props, k->ike_props, k->n_ike_props * sizeof(*k->ike_props));
	memcpy(r->conf.esp_props, k->esp_props, k->n_esp_props * sizeof(*k->esp_props));
	memcpy(r->conf.local_ts, k->local_ts, k->n_local_ts * sizeof(*k->local_ts));
	memcpy(r->conf.remote_ts, k->remote_ts, k->n_remote_ts * sizeof(*k->remote_ts));
	if (k->cred) {
		if (ike_cred_ref(&r->cred, k->cred) != 0) {
			OPENSSL_cleanse(r, sizeof(*r));
			free(r);
			return NULL;
		}
		r->conf.cred = &r->cred;
	}
	ike_conf_finish(&r->conf);
	memcpy(r->fp, fp, 32);
	r->refs = 1;
	r->next = *b, *b = r;
	return r;
}

void ikm_conf_put(struct ike_mgr *m, struct conf_ref *r)
{
	if (!r || --r->refs)
		return;
	for (struct conf_ref **b = &m->confs[conf_bucket(r->fp)]; *b; b = &(*b)->next)
		if (*b == r) {
			*b = r->next;
			break;
		}
	ike_cred_free(&r->cred);
	OPENSSL_cleanse(r, sizeof(*r)); /* the PSK; the lists hold nothing secret */
	free(r);
}

/* The held shared engine configuration of a child of connection c. */
struct conf_ref *ikm_child_ref(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch, char *err,
			      size_t errlen)
{
	struct ike_conf k;
	uint8_t fp[32];
	if (ikm_conf_from(m->d->cfg, c, ch, &k, err, errlen))
		return NULL;
	ikm_fingerprint(c, ch, &k, fp);
	struct conf_ref *r = conf_get(m, &k, fp);
	OPENSSL_cleanse(&k, sizeof(k));
	if (!r)
		snprintf(err, errlen, "out of memory");
	else
		snprintf(r->child, sizeof(r->child), "%s", ch->name);
	return r;
}

/* The engine's configurations are all inside a conf_ref. */
static struct conf_ref *ref_of(const struct ike_conf *k)
{
	return (struct conf_ref *)(void *)((char *)k - offsetof(struct conf_ref, conf));
}

static void drop_alt(struct ike_sess *s)
{
	for (unsigned i = 0; i < s->n_alt; i++)
		ikm_conf_put(s->m, ref_of(s->alt[i]));
	free(s->alt);
	s->alt = NULL, s->n_alt = 0;
	s->sa.child_confs = NULL, s->sa.n_child_confs = 0;
}

/* The children of its connection a Child SA the peer asks for may be made for (the first whose
 * selectors fit, as in IKE_AUTH), when there is more than one. */
void ikm_set_alt(struct ike_sess *s, const struct cfg_conn *c)
{
	char err[160];
	drop_alt(s);
	if (c->n_children < 2)
		return;
	size_t n = c->n_children < 255 ? c->n_children : 255;
	if (!(s->alt = calloc(n, sizeof(*s->alt))))
		return;
	for (size_t j = 0; j < n; j++) {
		struct conf_ref *r = ikm_child_ref(s->m, c, &c->children[j], err, sizeof(err));
		if (r)
			s->alt[s->n_alt++] = &r->conf;
	}
	s->sa.child_confs = s->alt, s->sa.n_child_confs = s->n_alt;
}

struct ike_sess *sess_new(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch,
			  bool initiator, char *err, size_t errlen)
{
	struct ike_sess *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->m = m;
	s->cref = ikm_child_ref(m, c, ch, err, errlen);
	if (!s->cref) {
		free(s);
		return NULL;
	}
	memcpy(s->conf_fp, s->cref->fp, sizeof(s->conf_fp));
	snprintf(s->conn, sizeof(s->conn), "%s", c->name);
	snprintf(s->child, sizeof(s->child), "%s", ch->name);
	ike_sa_init(&s->sa, &s->cref->conf, initiator, &ikm_rng);
	ikm_set_alt(s, c);
	ev_timer_init(&s->rtx, rtx_cb, 1, 0);
	ev_timer_init(&s->dpd, dpd_cb, 1, 0);
	ev_timer_init(&s->ka, ka_cb, m->d->cfg->keepalive_s, m->d->cfg->keepalive_s);
	ev_timer_init(&s->irekey, ikm_irekey_cb, 1, 0);
	ev_timer_init(&s->want_w, want_cb, 1, 0);
	s->rtx.data = s->dpd.data = s->ka.data = s->irekey.data = s->want_w.data = s;
	s->started = ikm_now_s(m);
	struct ike_sess **cb = &m->by_conn[ikm_name_hash(s->conn) % SESS_BUCKETS];
	s->next_conn = *cb, s->prev_conn = cb;
	if (*cb)
		(*cb)->prev_conn = &s->next_conn;
	*cb = s;
	s->next_all = m->all, s->prev_all = &m->all;
	if (m->all)
		m->all->prev_all = &s->next_all;
	m->all = s;
	m->n_sess++;
	return s;
}

void sess_free(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		child_down(s, k);
	drop_alt(s);
	ikm_conf_put(m, s->creating);
	ev_timer_stop(m->d->loop, &s->rtx);
	ev_timer_stop(m->d->loop, &s->dpd);
	ev_timer_stop(m->d->loop, &s->ka);
	ev_timer_stop(m->d->loop, &s->want_w);
	if (s->local_key)
		ikm_unlink_from(&m->by_local[ikm_bucket(s->local_key)], s, true);
	if (s->in_peer_table)
		ikm_unlink_from(&m->by_peer[ikm_bucket(s->sa.spi_i)], s, false);
	ikm_unlink_old(s);
	ikm_unlink_red(s);
	ev_timer_stop(m->d->loop, &s->irekey);
	*s->prev_all = s->next_all;
	if (s->next_all)
		s->next_all->prev_all = s->prev_all;
	*s->prev_conn = s->next_conn;
	if (s->next_conn)
		s->next_conn->prev_conn = s->prev_conn;
	if (s->half_open)
		m->n_half_open--;
	if (s->contact.family)
		ikm_contacts(m, &s->contact, -1);
	m->n_sess--;
	free(s->req);
	ike_sa_free(&s->sa);
	ikm_conf_put(m, s->cref);
	free(s);
}

void ikm_established(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	char a[64], prop[96];
	s->established = ikm_now_s(m);
	if (s->half_open) {
		s->half_open = false;
		m->n_half_open--;
	}
	m->st.established++;
	ike_prop_name(&s->sa.ike_chosen, prop, sizeof(prop));
	bt_info("IKE %s: IKE SA %016llx_i %016llx_r established with %s (%s, %s) in %.1f ms%s", s->conn,
		(unsigned long long)s->sa.spi_i, (unsigned long long)s->sa.spi_r,
		bt_addr_str(&s->remote, a, sizeof(a)), s->sa.initiator ? "initiator" : "responder", prop,
		(s->established - s->started) * 1000,
		s->sa.nat_local ? ", behind a NAT" : s->sa.nat_remote ? ", peer behind a NAT (or forcing UDP encapsulation)" : "");
	if (bt_log_get_level() >= BT_LOG_PRIVATE) {
		/* for tshark's ikev2_decryption_table (log_level = private only) */
		char ei[2 * (IKE_KEY_MAX + 4) + 1], er[sizeof(ei)], ai[2 * IKE_KEY_MAX + 1], ar[sizeof(ai)];
		size_t el = s->sa.keys.encr_len, il = s->sa.keys.integ_len;
		for (size_t i = 0; i < el; i++)
			sprintf(ei + 2 * i, "%02x", s->sa.keys.sk_ei[i]), sprintf(er + 2 * i, "%02x", s->sa.keys.sk_er[i]);
		for (size_t i = 0; i < il; i++)
			sprintf(ai + 2 * i, "%02x", s->sa.keys.sk_ai[i]), sprintf(ar + 2 * i, "%02x", s->sa.keys.sk_ar[i]);
		ei[2 * el] = er[2 * el] = ai[2 * il] = ar[2 * il] = 0;
		bt_log(BT_LOG_PRIVATE, "ikev2_decryption_table: %016llx,%016llx,%s,%s,%s,%s", (unsigned long long)s->sa.spi_i,
			   (unsigned long long)s->sa.spi_r, ei, er, ai, ar);
	}
	if (!s->sa.initiator && s->sa.peer_initial_contact) {
		/* the peer starts afresh (RFC 7296 2.4): what we kept of its earlier IKE SAs is stale */
		for (struct ike_sess *t = m->by_conn[ikm_name_hash(s->conn) % SESS_BUCKETS], *next; t; t = next) {
			next = t->next_conn;
			if (t == s || strcmp(t->conn, s->conn) || t->sa.initiator || t->sa.peer_id_len != s->sa.peer_id_len ||
			    t->sa.peer_id_type != s->sa.peer_id_type ||
			    memcmp(t->sa.peer_id, s->sa.peer_id, s->sa.peer_id_len))
				continue;
			bt_info("IKE %s: INITIAL_CONTACT from the peer: dropping its earlier IKE SA %016llx_i", s->conn,
				(unsigned long long)t->sa.spi_i);
			m->st.initial_contact_drops++;
			sess_free(t);
		}
	}
	ikm_arm_timers(s);
}

/* An established session's timers: liveness checks, NAT keepalives, the IKE SA rekey. */
void ikm_arm_timers(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, s->conn);
	if (c && c->dpd_delay) {
		ev_timer_set(&s->dpd, (double)c->dpd_delay, 0);
		ev_timer_start(m->d->loop, &s->dpd);
	}
	if (s->sa.nat_local && s->natt)
		ev_timer_start(m->d->loop, &s->ka);
	ikm_arm_ike_rekey(s);
}

/* --- Child SAs of a session ------------------------------------------------------------------- */

static uint32_t our_spi(const struct ike_sess *s, const struct ike_child *c)
{
	return s->sa.initiator ? c->spi_i : c->spi_r;
}

int ikm_child_index(const struct cfg_conn *c, const char *name)
{
	for (size_t j = 0; c && j < c->n_children && j < 32; j++)
		if (!strcmp(c->children[j].name, name))
			return (int)j;
	return -1;
}

/* The engine made child k (IKE_AUTH or CREATE_CHILD_SA, or a transfer brought it with r): into
 * the data plane with it. */
int ikm_child_up(struct ike_sess *s, int k, const struct esp_restore *r_esp)
{
	struct ike_child *c = s->sa.child[k];
	struct conf_ref *r = ref_of(c->conf);
	struct sess_child *sc = calloc(1, sizeof(*sc));
	int j = ikm_child_index(ikm_conn_by_name(s->m->d->cfg, s->conn), r->child);
	if (j >= 0)
		s->want &= ~(1u << j);
	if (!sc) {
		bt_err("IKE %s/%s: out of memory for the Child SA", s->conn, r->child);
		return -1;
	}
	sc->s = s;
	snprintf(sc->name, sizeof(sc->name), "%s", r->child);
	sc->cref = r;
	r->refs++;
	ev_timer_init(&sc->rekey, ikm_rekey_cb, 1, 0);
	sc->rekey.data = sc;
	s->ch[k] = sc;
	if (ikm_install(s, sc, c, r_esp) != 0) {
		bt_err("IKE %s/%s: the Child SA could not be installed", s->conn, sc->name);
		return -1;
	}
	return 0;
}

static void child_down(struct ike_sess *s, int k)
{
	struct sess_child *sc = s->ch[k];
	if (!sc)
		return;
	ikm_uninstall(s, sc);
	ev_timer_stop(s->m->d->loop, &sc->rekey);
	free(sc->pol_ts);
	ikm_conf_put(s->m, sc->cref);
	free(sc);
	s->ch[k] = NULL;
}

/* Send what the session owes when no request of ours is in flight: the delete of an old child our
 * rekey replaced, of a redundant one a rekey collision left to us (RFC 7296 2.8.1), of a child
 * being terminated; then the children still to bring up (CREATE_CHILD_SA, one at a time). */
static void kick(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	char err[160];
	if (s->req || s->closing || s->sa.state != IKE_ST_ESTABLISHED || s->sa.ccs_pending || s->sa.info_pending)
		return;
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct ike_child *c = s->sa.child[k];
		struct sess_child *sc = s->ch[k];
		uint32_t spi = 0;
		const char *what = "";
		if (!c || c->gone)
			continue;
		if (sc && sc->owe_old_delete && c->old_present && c->old) {
			spi = our_spi(s, c->old), what = "the old Child SA";
			sc->owe_old_delete = false;
		} else if (c->red && c->red_delete) {
			spi = our_spi(s, c->red), what = "the redundant Child SA of a rekey collision";
		} else if (sc && sc->closing) {
			spi = our_spi(s, c), what = "the Child SA";
		}
		if (!spi)
			continue;
		size_t len = ike_delete_child(&s->sa, &spi, 1, m->out, sizeof(m->out));
		if (len) {
			bt_info("IKE %s/%s: deleting %s (0x%08x)", s->conn, sc ? sc->name : "?", what, spi);
			ikm_send_request(s, m->out, len);
			return;
		}
	}
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, s->conn);
	if (!s->want || !c || ev_is_active(&s->want_w))
		return;
	for (size_t j = 0; j < c->n_children && j < 32; j++) {
		if (!(s->want & (1u << j)))
			continue;
		struct conf_ref *r = ikm_child_ref(m, c, &c->children[j], err, sizeof(err));
		size_t len = r ? ike_create_child(&s->sa, &r->conf, m->out, sizeof(m->out)) : 0;
		if (!len) {
			bt_warn("IKE %s/%s: cannot ask for the Child SA%s", s->conn, c->children[j].name,
				r ? " (the IKE SA holds all it can)" : "");
			ikm_conf_put(m, r);
			s->want &= ~(1u << j);
			continue;
		}
		s->creating = r;
		bt_info("IKE %s/%s: asking for the Child SA on IKE SA %016llx_i (CREATE_CHILD_SA)", s->conn,
			c->children[j].name, (unsigned long long)s->sa.spi_i);
		ikm_send_request(s, m->out, len);
		return;
	}
}

static void want_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	kick(w->data);
}

/* What the engine did to the Child SAs: install new and rekeyed ones, remove old and deleted ones,
 * then send what that leaves us to send. */
void ikm_sync_children(struct ike_sess *s)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct ike_child *c = s->sa.child[k];
		if (!c)
			continue;
		if (c->up) {
			c->up = false;
			ikm_child_up(s, k, NULL);
		}
		if (c->next_ready)
			ikm_install_next(s, k);
		c = s->sa.child[k];
		if (c->old_deleted) {
			c->old_deleted = false;
			ikm_retire_old(s, s->ch[k]);
		}
		if (c->gone && s->ch[k]) {
			bt_info("IKE %s/%s: Child SA deleted%s", s->conn, s->ch[k]->name, s->ch[k]->closing ? "" : " by the peer");
			child_down(s, k);
		}
	}
	ike_child_reap(&s->sa);
	kick(s);
}

/* The SA is gone: remove it, and do what the child's dpd_action or start_action asks. */
void sess_gone(struct ike_sess *s, bool peer_dead)
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, s->conn);
	const struct cfg_child *ch = ikm_child_by_name(c, s->child);
	bool restart = peer_dead && ch && ch->dpd_action == CFG_DPD_RESTART && !s->closing;
	char conn[BT_NAME_MAX], child[1 + IKE_CHILD_MAX][BT_NAME_MAX];
	unsigned n = 0;
	snprintf(conn, sizeof(conn), "%s", s->conn);
	snprintf(child[n++], sizeof(child[0]), "%s", s->child);
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (s->ch[k] && strcmp(s->ch[k]->name, s->child))
			snprintf(child[n++], sizeof(child[0]), "%s", s->ch[k]->name);
	sess_free(s);
	for (unsigned i = 0; restart && i < n; i++) {
		char err[160];
		bt_info("IKE %s/%s: dpd_action = restart: initiating again", conn, child[i]);
		int rc = ike_mgr_initiate(m->d, conn, child[i], err, sizeof(err));
		if (rc != 0 && rc != -EALREADY)
			bt_warn("IKE %s: %s", conn, err);
	}
}

static void rtx_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	struct ike_mgr *m = s->m;
	if (!s->req && s->half_open && s->sa.state == IKE_ST_INIT_DONE) {
		/* IKE_SA_INIT answered, no IKE_AUTH: a half-open SA does not live on */
		char a[64];
		m->st.half_open_expired++;
		bt_info("IKE %s: half-open IKE SA from %s expired (no IKE_AUTH)", s->conn,
			bt_addr_str(&s->remote, a, sizeof(a)));
		sess_free(s);
		return;
	}
	if (!s->req)
		return;
	if (s->tx_override && s->tries >= 1) {
		/* a path test unanswered: the path does not work; the request goes on over the current one */
		char a[64], b[64];
		bt_info("IKE %s: no answer over %s -> %s; staying on the current path", s->conn,
			bt_addr_str(&s->tx_local, a, sizeof(a)), bt_addr_str(&s->tx_remote, b, sizeof(b)));
		s->tx_override = false;
		s->probe_abandoned = true;
		m->st.mobike_probe_failures++;
	}
	if (s->tries >= 1 && !s->tx_override)
		mobike_failover(s); /* the retransmission below goes out on another path */
	if (++s->tries > m->d->cfg->retransmit_tries) {
		char a[64];
		m->st.timeouts++;
		bt_warn("IKE %s: no answer from %s after %u retransmissions; giving up%s", s->conn,
			bt_addr_str(&s->remote, a, sizeof(a)), s->tries - 1,
			s->sa.state == IKE_ST_ESTABLISHED ? " on the IKE SA (peer dead)" : "");
		sess_gone(s, s->sa.state == IKE_ST_ESTABLISHED);
		return;
	}
	m->st.retransmits++;
	bt_debug("IKE %s: retransmission %u", s->conn, s->tries);
	ikm_send_raw(s, s->req, s->req_len);
	ev_timer_set(w, ikm_rtx_timeout(m, s->tries), 0);
	ev_timer_start(loop, w);
}

/* Liveness: an empty INFORMATIONAL when nothing came from the peer for dpd_delay. */
static void dpd_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	const struct cfg_conn *c = ikm_conn_by_name(s->m->d->cfg, s->conn);
	if (!c || !c->dpd_delay)
		return;
	uint64_t in = 0;
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (s->ch[k] && s->ch[k]->installed) {
			struct esp_sa *sa = sad_lookup_in(dp_sad(s->m->d->dp), s->ch[k]->spi_in);
			if (sa)
				in += atomic_load(&sa->ctr.packets);
		}
	if (in == s->last_in_packets && !s->req) {
		size_t len = ike_informational(&s->sa, IKE_INFO_DPD, s->m->out, sizeof(s->m->out));
		if (len) {
			s->m->st.dpd_sent++;
			ikm_send_request(s, s->m->out, len);
		}
	}
	s->last_in_packets = in;
	ev_timer_set(w, (double)c->dpd_delay, 0);
	ev_timer_start(loop, w);
}

static void ka_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	static const uint8_t ka = ESP_NATT_KEEPALIVE;
	dp_send_udp(s->m->d->dp, &ka, 1, &s->local, &s->remote, s->rport);
}

int ike_mgr_initiate(struct daemon *d, const char *conn, const char *child, char *err, size_t errlen)
{
	struct ike_mgr *m = d->ike;
	const struct cfg_conn *c = ikm_conn_by_name(d->cfg, conn);
	const struct cfg_child *ch = child ? ikm_child_by_name(c, child) : c && c->n_children ? &c->children[0] : NULL;
	if (!c || !c->ike || !ch) {
		snprintf(err, errlen, "no IKE connection%s '%s%s%s'", child ? "/child" : "", conn, child ? "/" : "",
			 child ? child : "");
		return -1;
	}
	/* an IKE SA of this connection carries the child already, or will (RFC 7296 1.3.1: a new Child
	 * SA goes on an existing IKE SA) */
	struct ike_sess *host = NULL;
	int j = ikm_child_index(c, ch->name);
	for (struct ike_sess *s = m->by_conn[ikm_name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
		if (strcmp(s->conn, conn) || s->closing || s->sa.state == IKE_ST_FAILED || s->sa.state == IKE_ST_DELETED)
			continue;
		bool has = (s->sa.state != IKE_ST_ESTABLISHED && !strcmp(s->child, ch->name)) ||
			   (j >= 0 && (s->want & (1u << j))) || (s->creating && !strcmp(s->creating->child, ch->name));
		for (int k = 0; k < IKE_CHILD_MAX && !has; k++)
			has = s->ch[k] && !s->ch[k]->closing && !strcmp(s->ch[k]->name, ch->name);
		if (has) {
			snprintf(err, errlen, "%s/%s is already %s", conn, ch->name,
				 s->sa.state == IKE_ST_ESTABLISHED && !(j >= 0 && (s->want & (1u << j))) && !s->creating
					 ? "up" : "being negotiated");
			return -EALREADY;
		}
		if (!host && s->sa.state != IKE_ST_IDLE && (s->sa.initiator || s->sa.state == IKE_ST_ESTABLISHED))
			host = s;
	}
	if (host && j >= 0) {
		host->want |= 1u << j;
		bt_info("IKE %s/%s: to come up on IKE SA %016llx_i", conn, ch->name, (unsigned long long)host->sa.spi_i);
		kick(host);
		return 0;
	}
	const struct bt_prefix *rh = NULL;
	for (unsigned i = 0; i < c->n_remote_addrs && !rh; i++)
		if (bt_prefix_is_host(&c->remote_addrs[i]))
			rh = &c->remote_addrs[i];
	if (!rh) {
		snprintf(err, errlen, "%s: remote_addrs names no address to send to", conn);
		return -1;
	}
	struct ike_sess *s = sess_new(m, c, ch, true, err, errlen);
	if (!s)
		return -1;
	s->local = c->local_addrs[0].addr;
	s->remote = rh->addr;
	/* INITIAL_CONTACT when we hold no other IKE SA with this peer, on any connection: the peer
	 * may then drop what it kept of us (as charon decides it) */
	s->sa.initial_contact = ikm_contacts(m, &rh->addr, 0) == 0;
	ikm_contacts(m, &rh->addr, +1);
	s->contact = rh->addr;
	s->lport = d->cfg->ike_port ? d->cfg->ike_port : dp_udp_port(d->dp);
	s->rport = d->cfg->ike_port ? 500 : ESP_UDP_PORT;
	s->natt = !d->cfg->ike_port;
	ike_sa_set_endpoints(&s->sa, &s->local, s->lport, &s->remote, s->rport);
	size_t len = ike_start(&s->sa, m->out, sizeof(m->out));
	if (!len) {
		snprintf(err, errlen, "%s: cannot build IKE_SA_INIT", conn);
		sess_free(s);
		return -1;
	}
	ikm_link_local(s, s->sa.spi_i);
	m->st.initiated++;
	bt_info("IKE %s/%s: initiating to %s", conn, ch->name, bt_addr_str(&s->remote, err, errlen));
	ikm_send_request(s, m->out, len);
	return 0;
}

int ike_mgr_rekey(struct daemon *d, const char *conn, const char *child, bool ike, char *err, size_t errlen)
{
	int n = 0;
	for (struct ike_sess *s = d->ike->by_conn[ikm_name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
		if (strcmp(s->conn, conn) || s->sa.state != IKE_ST_ESTABLISHED || s->closing)
			continue;
		if (ike) {
			ikm_start_ike_rekey(s);
			n++;
			continue;
		}
		/* one request at a time: the children after the first retry shortly (start_rekey) */
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			if (s->ch[k] && s->ch[k]->installed && !s->ch[k]->closing && (!child || !strcmp(child, s->ch[k]->name))) {
				ikm_start_rekey(s, k);
				n++;
			}
	}
	if (!n) {
		snprintf(err, errlen, "no established %s SA of connection '%s%s%s'", ike ? "IKE" : "Child", conn,
			 child ? "/" : "", child ? child : "");
		return -1;
	}
	return n;
}

/* One child of the connection's IKE SAs: its SAs go now, its delete is sent when the IKE SA is idle. */
static int terminate_child(struct ike_mgr *m, const char *conn, const char *child, char *err, size_t errlen)
{
	int n = 0;
	const struct cfg_conn *c = ikm_conn_by_name(m->d->cfg, conn);
	int j = ikm_child_index(c, child);
	for (struct ike_sess *s = m->by_conn[ikm_name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
		if (strcmp(s->conn, conn) || s->closing)
			continue;
		if (j >= 0 && (s->want & (1u << j)))
			s->want &= ~(1u << j), n++;
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			if (s->ch[k] && !s->ch[k]->closing && !strcmp(s->ch[k]->name, child)) {
				s->ch[k]->closing = true;
				ikm_uninstall(s, s->ch[k]);
				n++;
			}
		kick(s);
	}
	if (!n)
		snprintf(err, errlen, "no Child SA %s/%s", conn, child);
	return n ? n : -1;
}

int ike_mgr_terminate(struct daemon *d, const char *conn, const char *child, char *err, size_t errlen)
{
	struct ike_mgr *m = d->ike;
	unsigned n = 0;
	if (child)
		return terminate_child(m, conn, child, err, errlen);
	for (struct ike_sess *s = m->by_conn[ikm_name_hash(conn) % SESS_BUCKETS], *next; s; s = next) {
		next = s->next_conn;
		if (strcmp(s->conn, conn) || s->closing)
			continue;
		n++;
		s->closing = true;
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			ikm_uninstall(s, s->ch[k]);
		size_t len = s->sa.state == IKE_ST_ESTABLISHED && !s->req
				     ? ike_informational(&s->sa, IKE_INFO_DELETE_IKE, m->out, sizeof(m->out))
				     : 0;
		if (len) {
			bt_info("IKE %s: deleting the IKE SA", conn);
			ikm_send_request(s, m->out, len); /* freed when answered or given up */
		} else {
			sess_free(s);
		}
	}
	if (!n) {
		snprintf(err, errlen, "no IKE SA of connection '%s'", conn);
		return -1;
	}
	return (int)n;
}

size_t ike_mgr_addr_spis(struct daemon *d, const struct bt_addr *a, char (*spis)[20], size_t max)
{
	size_t n = 0;
	for (struct ike_sess *s = d->ike ? d->ike->all : NULL; s && n < max; s = s->next_all)
		if (!s->closing && bt_addr_eq(&s->local, a))
			snprintf(spis[n++], sizeof(spis[0]), "%016llx", (unsigned long long)(s->sa.initiator ? s->sa.spi_i : s->sa.spi_r));
	return n;
}

size_t ike_mgr_addr_users(struct daemon *d, const struct bt_addr *a)
{
	size_t n = 0;
	for (struct ike_sess *s = d->ike ? d->ike->all : NULL; s; s = s->next_all)
		n += !s->closing && bt_addr_eq(&s->local, a);
	return n;
}
