/* ike_exchange.c — IKE_SA_INIT and IKE_AUTH (pre-shared key or certificates) for both roles, and
 * ike_process, which hands established-SA exchanges to ike_ccs.c, ike_rekey.c and ike_info.c; all a
 * pure function of the SA and the received message. Facts come from ike_msg.c; this file decides. */
#include "ike/ike_exchange_internal.h"

#define NONCE_LEN 32
#define AUTH_SHARED_KEY 2

const char *ike_state_name(enum ike_state s)
{
	static const char *const n[] = {"idle", "init-sent", "auth-sent", "init-done", "established", "failed", "deleted"};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* The decrypted chain of a message reassembled from fragments, while ike_process handles it. */
static __thread struct ike_chain pre_in;

void ike_x_child_free(struct ike_child *c)
{
	if (!c)
		return;
	ike_x_child_free(c->next), ike_x_child_free(c->old), ike_x_child_free(c->coll), ike_x_child_free(c->red);
	free(c->ts_i), free(c->ts_r), free(c->coll_nonce);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

void ike_x_drop_child(struct ike_child **c)
{
	ike_x_child_free(*c);
	*c = NULL;
}

struct ike_child *ike_x_child_new(const struct ike_conf *cc)
{
	struct ike_child *c = calloc(1, sizeof(*c));
	if (c)
		c->conf = cc;
	return c;
}

/* A child's selectors, each list allocated to its exact size. */
int ike_x_child_set_ts(struct ike_child *c, const struct bt_ts *ti, unsigned ni, const struct bt_ts *tr, unsigned nr)
{
	free(c->ts_i), free(c->ts_r);
	c->n_ts_i = c->n_ts_r = 0;
	c->ts_i = malloc((ni ? ni : 1) * sizeof(*ti)), c->ts_r = malloc((nr ? nr : 1) * sizeof(*tr));
	if (!c->ts_i || !c->ts_r)
		return -1;
	memcpy(c->ts_i, ti, ni * sizeof(*ti)), memcpy(c->ts_r, tr, nr * sizeof(*tr));
	c->n_ts_i = (uint8_t)ni, c->n_ts_r = (uint8_t)nr;
	return 0;
}

int ike_x_free_slot(const struct ike_sa *sa)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (!sa->child[i])
			return i;
	return -1;
}

void ike_conf_use_room(struct ike_conf *c, struct ike_conf_room *r)
{
	c->ike_props = r->ike, c->esp_props = r->esp;
	c->local_ts = r->local, c->remote_ts = r->remote;
}

void ike_conf_finish(struct ike_conf *c)
{
	if (!c->n_ike_props) {
		struct ike_proposal *p = &c->ike_props[c->n_ike_props++];
		memset(p, 0, sizeof(*p)); /* the caller's room may hold anything */
		p->protocol = IKE_PROTO_IKE;
		p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_ENCR, c->ike.encr, c->ike.encr_bits};
		p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_PRF, c->prf, 0};
		if (c->ike.integ)
			p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_INTEG, c->ike.integ, 0};
		p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_DH, c->dh, 0};
	}
	if (!c->n_esp_props) {
		struct ike_proposal *p = &c->esp_props[c->n_esp_props++];
		memset(p, 0, sizeof(*p));
		p->protocol = IKE_PROTO_ESP, p->spi_len = 4;
		p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_ENCR, c->esp.encr, c->esp.encr_bits};
		if (c->esp.integ)
			p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_INTEG, c->esp.integ, 0};
		p->tr[p->n_tr++] = (struct ike_transform){IKE_TR_ESN, 0, 0};
	}
	/* with certificates and no configured identity, we are our certificate's subject */
	if (c->auth == IKE_AUTHBY_PUBKEY && !c->id_len && c->cred && c->cred->cert) {
		c->id_type = IKE_ID_DER_ASN1_DN;
		c->id_len = ike_cred_own_id(c->cred, c->id, sizeof(c->id));
	}
}

void ike_sa_init(struct ike_sa *sa, struct ike_conf *conf, bool initiator, const struct ike_rng *rng)
{
	memset(sa, 0, sizeof(*sa));
	ike_conf_finish(conf);
	sa->conf = conf;
	sa->initiator = initiator;
	sa->rng = *rng;
	sa->suite = conf->ike, sa->prf = conf->prf;
	/* the first key exchange uses the first group of the first proposal */
	const struct ike_transform *g = ike_prop_get(&conf->ike_props[0], IKE_TR_DH);
	sa->group = g ? g->id : 0;
}

/* Take the IKE SA's transforms from a chosen proposal. */
void ike_x_use_ike_choice(struct ike_sa *sa, const struct ike_proposal *p)
{
	const struct ike_transform *e = ike_prop_get(p, IKE_TR_ENCR), *i = ike_prop_get(p, IKE_TR_INTEG),
				   *f = ike_prop_get(p, IKE_TR_PRF);
	sa->ike_chosen = *p;
	sa->suite = (struct ike_sk_suite){e ? e->id : 0, e ? e->key_bits : 0, i ? i->id : IKE_INTEG_NONE};
	sa->prf = f ? f->id : 0;
}

void ike_sa_set_endpoints(struct ike_sa *sa, const struct bt_addr *local, uint16_t local_port,
			  const struct bt_addr *remote, uint16_t remote_port)
{
	sa->local = *local, sa->remote = *remote;
	sa->local_port = local_port, sa->remote_port = remote_port;
}

void ike_sa_free(struct ike_sa *sa)
{
	ike_dh_free(sa->dh);
	free(sa->init_i);
	free(sa->init_r);
	free(sa->last_resp);
	free(sa->info_req);
	ike_dh_free(sa->ccs_dh);
	free(sa->old_ike.last_resp);
	if (sa->red_ike) {
		free(sa->red_ike->last_resp);
		OPENSSL_clear_free(sa->red_ike, sizeof(*sa->red_ike));
	}
	if (sa->coll_ike) {
		free(sa->coll_ike->nonce);
		OPENSSL_clear_free(sa->coll_ike, sizeof(*sa->coll_ike));
	}
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		ike_x_drop_child(&sa->child[i]);
	if (sa->reasm) {
		ike_frag_reasm_clear(sa->reasm);
		free(sa->reasm);
	}
	X509_free(sa->peer_cert);
	OPENSSL_cleanse(sa, sizeof(*sa));
}

int ike_x_rnd(struct ike_sa *sa, void *buf, size_t len) { return sa->rng.fill(sa->rng.arg, buf, len); }


uint8_t *ike_x_dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	if (d)
		memcpy(d, p, n);
	return d;
}

static size_t fail(struct ike_sa *sa, uint16_t why)
{
	sa->state = IKE_ST_FAILED;
	sa->error = why;
	return 0;
}

/* --- proposals --------------------------------------------------------------------------------- */

void ike_x_put_spi(struct ike_proposal *p, uint32_t spi)
{
	p->spi_len = 4;
	p->spi[0] = (uint8_t)(spi >> 24), p->spi[1] = (uint8_t)(spi >> 16), p->spi[2] = (uint8_t)(spi >> 8),
	p->spi[3] = (uint8_t)spi;
}

/* Our offer: every configured proposal, numbered from 1 (ESP ones carry our inbound SPI). */
void ike_x_offer(const struct proposal_list *l, uint32_t spi, struct ike_sa_payload *out)
{
	out->n = 0;
	for (unsigned i = 0; i < l->n && i < IKE_MAX_PROPOSALS; i++) {
		out->prop[out->n] = l->p[i];
		out->prop[out->n].num = (uint8_t)(i + 1);
		if (l->p[i].protocol == IKE_PROTO_ESP)
			ike_x_put_spi(&out->prop[out->n], spi);
		out->n++;
	}
}

/* Responder: the first of the peer's proposals we accept, reduced to one transform per type. */
bool ike_x_choose(const struct ike_sa_payload *theirs, const struct proposal_list *ours, bool ignore_dh,
		  struct ike_proposal *out)
{
	for (unsigned i = 0; i < theirs->n; i++)
		for (unsigned j = 0; j < ours->n; j++)
			if (ike_prop_select(&theirs->prop[i], &ours->p[j], ignore_dh, out))
				return true;
	return false;
}

/* Initiator: is the responder's single choice within one of our proposals? */
bool ike_x_accepted(const struct ike_sa_payload *reply, const struct proposal_list *ours, bool ignore_dh)
{
	if (reply->n != 1)
		return false;
	for (unsigned j = 0; j < ours->n; j++)
		if (ike_prop_within(&reply->prop[0], &ours->p[j], ignore_dh))
			return true;
	return false;
}

uint32_t ike_x_spi32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* --- traffic selectors ------------------------------------------------------------------------- */

/* The intersection of two selector lists (RFC 7296 2.9 narrowing), into out. */
static unsigned narrow(const struct bt_ts *a, unsigned na, const struct bt_ts *b, unsigned nb, struct bt_ts *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < na; i++)
		for (unsigned j = 0; j < nb && n < BT_TS_MAX; j++) {
			const struct bt_ts *x = &a[i], *y = &b[j];
			if (x->lo.family != y->lo.family || (x->proto && y->proto && x->proto != y->proto))
				continue;
			struct bt_ts t = *x;
			t.proto = x->proto ? x->proto : y->proto;
			t.port_lo = x->port_lo > y->port_lo ? x->port_lo : y->port_lo;
			t.port_hi = x->port_hi < y->port_hi ? x->port_hi : y->port_hi;
			t.lo = bt_addr_cmp(&x->lo, &y->lo) > 0 ? x->lo : y->lo;
			t.hi = bt_addr_cmp(&x->hi, &y->hi) < 0 ? x->hi : y->hi;
			if (t.port_lo > t.port_hi || bt_addr_cmp(&t.lo, &t.hi) > 0)
				continue;
			out[n++] = t;
		}
	return n;
}

/* Is every selector of `sub` inside some selector of `sup`? */
bool ike_x_subset(const struct bt_ts *sub, unsigned ns, const struct bt_ts *sup, unsigned nu)
{
	for (unsigned i = 0; i < ns; i++) {
		bool in = false;
		for (unsigned j = 0; j < nu && !in; j++)
			in = sub[i].lo.family == sup[j].lo.family && (!sup[j].proto || sup[j].proto == sub[i].proto) &&
			     sub[i].port_lo >= sup[j].port_lo && sub[i].port_hi <= sup[j].port_hi &&
			     bt_addr_cmp(&sub[i].lo, &sup[j].lo) >= 0 && bt_addr_cmp(&sub[i].hi, &sup[j].hi) <= 0;
		if (!in)
			return false;
	}
	return ns > 0;
}

/* Responder: the first configured child (only, else sa->child_confs, else sa->conf) whose
 * selectors meet the peer's (tsi: the requester's side) and one of whose ESP proposals it offers;
 * with the narrowed selectors (theirs: the requester's side). Returns 0 or the notify refusing it. */
uint16_t ike_x_pick_child(const struct ike_sa *sa, const struct ike_conf *only, const struct ike_sa_payload *sp,
			  bool ignore_dh, const struct ike_ts_payload *tsi, const struct ike_ts_payload *tsr,
			  struct ike_proposal *chosen, const struct ike_conf **cc, struct bt_ts *theirs, unsigned *nt,
			  struct bt_ts *mine, unsigned *nm)
{
	unsigned n = only || !sa->n_child_confs ? 1 : sa->n_child_confs;
	uint16_t err = IKE_N_TS_UNACCEPTABLE;
	for (unsigned i = 0; i < n; i++) {
		const struct ike_conf *k = only ? only : sa->n_child_confs ? sa->child_confs[i] : sa->conf;
		*nt = narrow(tsi->ts, tsi->n, k->remote_ts, k->n_remote_ts, theirs);
		*nm = narrow(tsr->ts, tsr->n, k->local_ts, k->n_local_ts, mine);
		if (!*nt || !*nm)
			continue;
		struct proposal_list l = ESP_PROPS(k);
		if (!ike_x_choose(sp, &l, ignore_dh, chosen) || chosen->spi_len != 4) {
			err = IKE_N_NO_PROPOSAL_CHOSEN;
			continue;
		}
		*cc = k;
		return 0;
	}
	return err;
}

/* --- keys and AUTH ----------------------------------------------------------------------------- */

static int derive_ike(struct ike_sa *sa, const uint8_t *peer_ke, size_t peer_ke_len)
{
	uint8_t g_ir[512];
	size_t gl = sizeof(g_ir), el, il;
	int rc = -1;
	if (ike_sk_key_lens(&sa->suite, &el, &il) == 0 && ike_dh_shared(sa->dh, peer_ke, peer_ke_len, g_ir, &gl) == 0)
		rc = ike_derive(sa->prf, il, el, sa->ni, sa->ni_len, sa->nr, sa->nr_len, sa->spi_i, sa->spi_r, g_ir,
				gl, &sa->keys);
	OPENSSL_cleanse(g_ir, sizeof(g_ir));
	ike_dh_free(sa->dh); /* the exponent is not needed again */
	sa->dh = NULL;
	return rc;
}

static int derive_child(struct ike_sa *sa, struct ike_child *c)
{
	if (ike_prop_esp_key_lens(&c->esp, &c->encr_len, &c->integ_len) != 0)
		return -1;
	return ike_child_keymat(sa->prf, sa->keys.sk_d, NULL, 0, sa->ni, sa->ni_len, sa->nr, sa->nr_len,
				c->encr_len, c->integ_len, c->ei, c->ai, c->er, c->ar);
}

/* The octets the AUTH of one side covers, shared key or signature: `initiator` says whose, id is
 * the ID payload body. A new buffer (OPENSSL_clear_free) or NULL. */
static uint8_t *auth_octets(struct ike_sa *sa, bool initiator, const uint8_t *id, size_t id_len, size_t *len)
{
	return ike_auth_octets(sa->prf, initiator ? sa->init_i : sa->init_r,
			       initiator ? sa->init_i_len : sa->init_r_len, initiator ? sa->nr : sa->ni,
			       initiator ? sa->nr_len : sa->ni_len, initiator ? sa->keys.sk_pi : sa->keys.sk_pr, id,
			       id_len, len);
}

/* The shared-key AUTH value of one side. */
static int auth_value(struct ike_sa *sa, bool initiator, const uint8_t *id, size_t id_len, uint8_t *out)
{
	size_t len;
	uint8_t *octets = auth_octets(sa, initiator, id, id_len, &len);
	int rc = octets ? ike_auth_psk_octets(sa->prf, sa->conf->psk, sa->conf->psk_len, octets, len, out) : -1;
	if (octets)
		OPENSSL_clear_free(octets, len);
	return rc;
}

/* Our AUTH payload: the method and its data (out holds IKE_SIG_MAX bytes). With a certificate, RFC
 * 7427 method 14 if the peer said which hashes it verifies, else the classic method of our key. */
static int own_auth(struct ike_sa *sa, const uint8_t *id, size_t id_len, uint8_t *method, uint8_t *out,
		    size_t *out_len)
{
	const struct ike_cred *cred = sa->conf->cred;
	if (sa->conf->auth != IKE_AUTHBY_PUBKEY) {
		*method = AUTH_SHARED_KEY;
		*out_len = ike_prf_len(sa->prf);
		return auth_value(sa, sa->initiator, id, id_len, out);
	}
	size_t len;
	uint8_t *octets = cred && cred->key ? auth_octets(sa, sa->initiator, id, id_len, &len) : NULL;
	if (!octets)
		return -1;
	uint16_t hash = sa->peer_sighash ? ike_sighash_choose(cred, sa->peer_sighash) : 0;
	*method = hash ? IKE_AUTH_DIGITAL_SIG : ike_cert_classic_method(cred);
	*out_len = IKE_SIG_MAX;
	int rc = hash ? ike_cert_sign(cred, octets, len, hash, out, out_len)
		      : ike_cert_sign_method(cred, *method, octets, len, out, out_len);
	OPENSSL_clear_free(octets, len);
	return rc;
}

static size_t id_body(const struct ike_sa *sa, uint8_t *out)
{
	out[0] = sa->conf->id_type, out[1] = out[2] = out[3] = 0;
	memcpy(out + 4, sa->conf->id, sa->conf->id_len);
	return 4 + sa->conf->id_len;
}

static bool peer_id_ok(const struct ike_sa *sa, const struct ike_id_payload *id)
{
	/* a DN as configured may use other string types than the peer's certificate (as charon, compare
	 * names, not bytes) */
	if (id->type == IKE_ID_DER_ASN1_DN && sa->conf->peer_id_type == IKE_ID_DER_ASN1_DN)
		return ike_dn_eq(id->data, id->len, sa->conf->peer_id, sa->conf->peer_id_len);
	return id->type == sa->conf->peer_id_type && id->len == sa->conf->peer_id_len &&
	       !memcmp(id->data, sa->conf->peer_id, id->len);
}

/* The peer signed: its first CERT must chain (with the others as intermediates) to a CA we trust as
 * of sa->now, hold the ID it claims (which must be the configured one unless any will do), and carry
 * the key that made the AUTH signature. On success the SA keeps the certificate. */
static uint16_t verify_peer_cert(struct ike_sa *sa, const struct ike_chain *in, const struct ike_payload *idp,
				 const struct ike_id_payload *id, const struct ike_auth_payload *au)
{
	const struct ike_cred *cred = sa->conf->cred;
	const struct ike_payload *cp = ike_find(in, IKE_PL_CERT, 0);
	STACK_OF(X509) *inter = sk_X509_new_null();
	X509 *cert = NULL;
	uint8_t *octets = NULL;
	size_t len = 0;
	char *why = sa->error_detail;
	const size_t wl = sizeof(sa->error_detail);
	uint16_t rc = IKE_N_AUTHENTICATION_FAILED;
	if (sa->conf->peer_auth == IKE_AUTHBY_PSK || !cred) {
		snprintf(why, wl, "peer signed (AUTH method %u), a shared key is required", au->method);
		goto out;
	}
	if (!cp || !inter || !(cert = ike_cert_parse(cp->body, cp->len))) {
		snprintf(why, wl, "peer signed but sent no X.509 certificate");
		goto out;
	}
	for (unsigned i = 1; (cp = ike_find(in, IKE_PL_CERT, i)); i++) {
		X509 *x = ike_cert_parse(cp->body, cp->len); /* other encodings are not ours to use: skipped */
		if (x && !sk_X509_push(inter, x))
			X509_free(x);
	}
	if (ike_cert_verify_chain(cred, cert, inter, (time_t)sa->now, why, wl) != 0)
		goto out;
	if (!sa->conf->peer_id_any && !peer_id_ok(sa, id)) {
		snprintf(why, wl, "peer ID is not the configured one");
		goto out;
	}
	if (!ike_cert_match_id(cert, id->type, id->data, id->len)) {
		snprintf(why, wl, "peer ID (type %u) is not in its certificate", id->type);
		goto out;
	}
	if (!(octets = auth_octets(sa, !sa->initiator, idp->body, idp->len, &len)) ||
	    ike_cert_verify_method(cert, au->method, octets, len, au->data, au->len) != 0) {
		snprintf(why, wl, "AUTH signature (method %u) does not verify with the peer's certificate", au->method);
		goto out;
	}
	why[0] = 0;
	X509_free(sa->peer_cert);
	sa->peer_cert = cert;
	cert = NULL;
	rc = 0;
out:
	X509_free(cert);
	sk_X509_pop_free(inter, X509_free);
	if (octets)
		OPENSSL_clear_free(octets, len);
	return rc;
}

/* Check the peer's ID and AUTH in a decrypted IKE_AUTH chain. Returns 0 or a notify type. */
static uint16_t verify_peer(struct ike_sa *sa, const struct ike_chain *in)
{
	const struct ike_payload *idp = ike_find(in, sa->initiator ? IKE_PL_IDR : IKE_PL_IDI, 0);
	const struct ike_payload *ap = ike_find(in, IKE_PL_AUTH, 0);
	struct ike_id_payload id;
	struct ike_auth_payload au;
	uint8_t want[64];
	if (!idp || !ap || ike_parse_id(idp, &id) || ike_parse_auth(ap, &au))
		return IKE_N_INVALID_SYNTAX;
	if (id.len > sizeof(sa->peer_id))
		return IKE_N_AUTHENTICATION_FAILED;
	sa->peer_id_type = id.type;
	memcpy(sa->peer_id, id.data, id.len);
	sa->peer_id_len = id.len;
	sa->peer_auth_method = au.method;
	if (au.method != AUTH_SHARED_KEY)
		return verify_peer_cert(sa, in, idp, &id, &au);
	size_t pl = ike_prf_len(sa->prf);
	if (sa->conf->peer_auth == IKE_AUTHBY_PUBKEY || sa->conf->peer_id_any) {
		snprintf(sa->error_detail, sizeof(sa->error_detail), "peer used a shared key, a signature is required");
		return IKE_N_AUTHENTICATION_FAILED;
	}
	if (!peer_id_ok(sa, &id) || au.len != pl ||
	    auth_value(sa, !sa->initiator, idp->body, idp->len, want) != 0 || CRYPTO_memcmp(want, au.data, pl) != 0)
		return IKE_N_AUTHENTICATION_FAILED;
	return 0;
}

/* --- certificate notifies in IKE_SA_INIT ------------------------------------------------------ */

/* Do we sign or verify signatures on this SA? Then both IKE_SA_INIT messages say which hashes we
 * verify (RFC 7427 4). */
static bool uses_certs(const struct ike_sa *sa)
{
	return sa->conf->auth == IKE_AUTHBY_PUBKEY || sa->conf->peer_auth != IKE_AUTHBY_PSK;
}

static void put_sighash(struct ike_sa *sa, struct ike_builder *b)
{
	uint8_t h[16];
	size_t hl = ike_sighash_build(h, sizeof(h));
	if (uses_certs(sa) && hl)
		ike_put_notify(b, 0, NULL, 0, IKE_N_SIGNATURE_HASH_ALGORITHMS, h, hl);
}

/* Our CERTREQ (the hashes of the CAs we trust) when the peer may authenticate by certificate. */
static void put_certreq(struct ike_sa *sa, struct ike_builder *b)
{
	uint8_t req[1 + 64 * IKE_CERTREQ_HASH_LEN];
	size_t rl;
	if (sa->conf->peer_auth != IKE_AUTHBY_PSK && sa->conf->cred &&
	    (rl = ike_certreq_build(sa->conf->cred, req, sizeof(req))))
		ike_put_raw(b, IKE_PL_CERTREQ, req, rl);
}

/* What the peer's IKE_SA_INIT message says about certificates: the hashes it verifies, and whether
 * it asks for our certificate (the initiator's CERTREQ comes in IKE_AUTH: see on_auth_request). */
static void note_cert_notifies(struct ike_sa *sa, const struct ike_chain *c)
{
	struct ike_notify_payload n;
	uint32_t mask;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK &&
		    n.type == IKE_N_SIGNATURE_HASH_ALGORITHMS && ike_sighash_parse(n.data, n.data_len, &mask) == 0)
			sa->peer_sighash = mask;
	sa->peer_certreq |= ike_find(c, IKE_PL_CERTREQ, 0) != NULL;
}

/* --- NAT detection ---------------------------------------------------------------------------- */

/* Our two NAT_DETECTION notifies for an IKE_SA_INIT message (no-op without endpoints). */
static void note_frag(struct ike_sa *sa, const struct ike_chain *c)
{
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK &&
		    n.type == IKE_N_IKEV2_FRAGMENTATION_SUPPORTED)
			sa->frag_peer = sa->conf->fragmentation;
}

void ike_x_put_natd(struct ike_sa *sa, struct ike_builder *b)
{
	uint8_t h[IKE_NATD_LEN];
	if (!sa->local.family || !sa->remote.family)
		return;
	/* forcing ESP in UDP: a source hash no address can have makes the peer see a NAT in front of us */
	if (sa->conf->force_encap ? ike_x_rnd(sa, h, sizeof(h)) == 0
				 : ike_natd_hash(sa->spi_i, sa->spi_r, &sa->local, sa->local_port, h) == 0)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NAT_DETECTION_SOURCE_IP, h, sizeof(h));
	if (ike_natd_hash(sa->spi_i, sa->spi_r, &sa->remote, sa->remote_port, h) == 0)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NAT_DETECTION_DESTINATION_IP, h, sizeof(h));
}

/* Compare the peer's NAT_DETECTION notifies with the addresses the message really had (RFC 7296
 * 2.23): a destination hash that is not ours means we are behind a NAT; no source hash matching
 * the sender means the peer is. Without the notifies the peer does not do NAT traversal. */
void ike_x_check_natd(struct ike_sa *sa, const struct ike_chain *c, uint64_t spi_r)
{
	uint8_t src[IKE_NATD_LEN], dst[IKE_NATD_LEN];
	bool any_src = false, src_ok = false, any_dst = false, dst_ok = false;
	if (!sa->local.family || !sa->remote.family ||
	    ike_natd_hash(sa->spi_i, spi_r, &sa->remote, sa->remote_port, src) ||
	    ike_natd_hash(sa->spi_i, spi_r, &sa->local, sa->local_port, dst))
		return;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++) {
		struct ike_notify_payload n;
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK || n.data_len != IKE_NATD_LEN)
			continue;
		if (n.type == IKE_N_NAT_DETECTION_SOURCE_IP) {
			any_src = true;
			src_ok |= CRYPTO_memcmp(n.data, src, IKE_NATD_LEN) == 0;
		} else if (n.type == IKE_N_NAT_DETECTION_DESTINATION_IP) {
			any_dst = true;
			dst_ok |= CRYPTO_memcmp(n.data, dst, IKE_NATD_LEN) == 0;
		}
	}
	sa->nat_remote = any_src && !src_ok;
	sa->nat_local = any_dst && !dst_ok;
}

/* A retransmitted UPDATE_SA_ADDRESSES: the initiator moved again before our answer reached it
 * (RFC 4555 3.5), or someone replays the request it sent. If it comes from other addresses and
 * is authentic, the caller checks return routability there before moving (addr_check). Returns
 * false if it is not authentic. */

/* --- messages ---------------------------------------------------------------------------------- */

struct ike_hdr ike_x_hdr(const struct ike_sa *sa, uint8_t exchange, bool response, uint32_t id)
{
	return (struct ike_hdr){.spi_i = sa->spi_i, .spi_r = sa->spi_r, .exchange = exchange, .msg_id = id,
				.flags = (uint8_t)((sa->initiator ? IKE_FLAG_INITIATOR : 0) | (response ? IKE_FLAG_RESPONSE : 0))};
}

size_t ike_x_seal(struct ike_sa *sa, const struct ike_hdr *h, struct ike_builder *chain, uint8_t *out, size_t cap)
{
	size_t cl = ike_build_end(chain);
	if (chain->w.overflow)
		return 0; /* an empty chain is fine: a liveness check has no payloads */
	const uint8_t *ke = sa->initiator ? sa->keys.sk_ei : sa->keys.sk_er;
	const uint8_t *ka = sa->initiator ? sa->keys.sk_ai : sa->keys.sk_ar;
	size_t len = ike_sk_seal(&sa->suite, ke, ka, h, chain->first, chain->w.p, cl, out, cap);
	if (!len || !sa->frag_peer || !sa->conf->fragmentation)
		return len;
	/* too big for one datagram: RFC 7383 fragments, each sealed on its own */
	size_t max = ike_frag_max_len(sa->conf->frag_mtu ? sa->conf->frag_mtu : 1280, sa->remote.family == AF_INET6, true);
	if (len <= max)
		return len;
	size_t fl[IKE_FRAG_MAX], total = 0;
	unsigned n = ike_frag_seal(&sa->suite, ke, ka, h, chain->first, chain->w.p, cl, max, out, cap, fl, IKE_FRAG_MAX);
	for (unsigned i = 0; i < n; i++)
		total += fl[i];
	sa->frags_sent += n;
	return total;
}

/* Our CERT payloads: the end-entity certificate, then the intermediates we hold. */
static void put_certs(struct ike_sa *sa, struct ike_builder *b)
{
	const struct ike_cred *cred = sa->conf->cred;
	uint8_t *body = malloc(IKE_MSG_MAX);
	size_t bl;
	if (!body) {
		b->w.overflow = true;
		return;
	}
	if ((bl = ike_cert_build(cred->cert, body, IKE_MSG_MAX)))
		ike_put_raw(b, IKE_PL_CERT, body, bl);
	else
		b->w.overflow = true;
	for (int i = 0; cred->chain && i < sk_X509_num(cred->chain); i++)
		if ((bl = ike_cert_build(sk_X509_value(cred->chain, i), body, IKE_MSG_MAX)))
			ike_put_raw(b, IKE_PL_CERT, body, bl);
	free(body);
}

/* The IKE_AUTH message of our side: our ID, [CERTs, INITIAL_CONTACT, CERTREQ,] AUTH, the ESP
 * proposal with our inbound SPI, TSi and TSr; a request from the initiator, the response from the
 * responder. Returns its length or 0. */
static size_t auth_message(struct ike_sa *sa, const struct ike_sa_payload *esp, const struct bt_ts *tsi, unsigned ni,
			   const struct bt_ts *tsr, unsigned nr, uint8_t *out, size_t cap)
{
	uint8_t idb[4 + IKE_ID_MAX], auth[IKE_SIG_MAX], method;
	size_t il = id_body(sa, idb), al;
	if (own_auth(sa, idb, il, &method, auth, &al) != 0)
		return 0;
	uint8_t *chain = malloc(IKE_MSG_MAX); /* certificate chains make this message large */
	if (!chain)
		return 0;
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, IKE_MSG_MAX);
	ike_put_id(&b, sa->initiator ? IKE_PL_IDI : IKE_PL_IDR, sa->conf->id_type, sa->conf->id, sa->conf->id_len);
	if (sa->conf->auth == IKE_AUTHBY_PUBKEY)
		put_certs(sa, &b);
	if (sa->initiator && (sa->conf->initial_contact || sa->initial_contact))
		ike_put_notify(&b, 0, NULL, 0, IKE_N_INITIAL_CONTACT, NULL, 0);
	if (sa->initiator)
		put_certreq(sa, &b);
	if (sa->conf->mobike && (sa->initiator || sa->mobike)) {
		ike_put_notify(&b, 0, NULL, 0, IKE_N_MOBIKE_SUPPORTED, NULL, 0);
		ike_x_put_my_addrs(sa, &b, false);
	}
	ike_put_auth(&b, method, auth, al);
	ike_put_sa(&b, esp);
	ike_put_ts(&b, IKE_PL_TSI, tsi, ni);
	ike_put_ts(&b, IKE_PL_TSR, tsr, nr);
	struct ike_hdr h = ike_x_hdr(sa, IKE_AUTH, !sa->initiator, 1);
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	OPENSSL_cleanse(auth, sizeof(auth));
	free(chain);
	return len;
}

/* An unencrypted IKE_SA_INIT error response (no IKE SA exists yet). */
static size_t init_error(struct ike_sa *sa, const struct ike_hdr *req, uint16_t type, const void *data, size_t dlen,
			 uint8_t *out, size_t cap)
{
	struct ike_builder b;
	struct ike_hdr h = {.spi_i = req->spi_i, .exchange = IKE_SA_INIT, .flags = IKE_FLAG_RESPONSE};
	ike_build_begin(&b, out, cap, &h);
	ike_put_notify(&b, 0, NULL, 0, type, data, dlen);
	sa->state = IKE_ST_FAILED;
	sa->error = type;
	return ike_build_end(&b);
}

size_t ike_start(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	uint8_t pub[512];
	size_t pl = sizeof(pub);
	struct ike_sa_payload sp;
	if (sa->state != IKE_ST_IDLE || !sa->initiator)
		return 0;
	while (!sa->spi_i) /* kept when IKE_SA_INIT restarts */
		if (ike_x_rnd(sa, &sa->spi_i, sizeof(sa->spi_i)))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	/* a restart keeps the nonce (RFC 7296 2.6: "all other payloads unchanged", and the cookie is
	 * bound to it) and, unless the group changed, the key share */
	if (!sa->ni_len) {
		sa->ni_len = NONCE_LEN;
		if (ike_x_rnd(sa, sa->ni, sa->ni_len))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	}
	if ((!sa->dh && !(sa->dh = ike_dh_new(sa->group))) || ike_dh_public(sa->dh, pub, &pl))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	struct proposal_list ours = IKE_PROPS(sa);
	ike_x_offer(&ours, 0, &sp);
	struct ike_builder b;
	struct ike_hdr h = ike_x_hdr(sa, IKE_SA_INIT, false, 0);
	ike_build_begin(&b, out, cap, &h);
	if (sa->cookie_len) /* RFC 7296 2.6: the cookie comes first */
		ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE, sa->cookie, sa->cookie_len);
	ike_put_sa(&b, &sp);
	ike_put_ke(&b, sa->group, pub, pl);
	ike_put_raw(&b, IKE_PL_NONCE, sa->ni, sa->ni_len);
	ike_x_put_natd(sa, &b);
	if (sa->conf->fragmentation && (sa->initiator || sa->frag_peer))
		ike_put_notify(&b, 0, NULL, 0, IKE_N_IKEV2_FRAGMENTATION_SUPPORTED, NULL, 0);
	put_sighash(sa, &b);
	size_t len = ike_build_end(&b);
	if (!len || !(sa->init_i = ike_x_dup_bytes(out, len)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->init_i_len = len;
	sa->state = IKE_ST_INIT_SENT;
	return len;
}

static size_t on_init_request(struct ike_sa *sa, const uint8_t *msg, size_t len, const struct ike_hdr *rh,
			      const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_sa_payload sp;
	struct ike_ke_payload ke;
	const struct ike_payload *sap = ike_find(c, IKE_PL_SA, 0), *kep = ike_find(c, IKE_PL_KE, 0),
				 *np = ike_find(c, IKE_PL_NONCE, 0);
	if (!sap || !kep || !np || ike_parse_sa(sap, &sp) || ike_parse_ke(kep, &ke) || np->len < 16 ||
	    np->len > sizeof(sa->ni))
		return init_error(sa, rh, IKE_N_INVALID_SYNTAX, NULL, 0, out, cap);
	struct proposal_list ours = IKE_PROPS(sa);
	struct ike_proposal chosen;
	if (!ike_x_choose(&sp, &ours, false, &chosen))
		return init_error(sa, rh, IKE_N_NO_PROPOSAL_CHOSEN, NULL, 0, out, cap);
	ike_x_use_ike_choice(sa, &chosen);
	sa->group = ike_prop_get(&chosen, IKE_TR_DH)->id;
	if (ke.group != sa->group) {
		uint8_t g[2] = {(uint8_t)(sa->group >> 8), (uint8_t)sa->group};
		return init_error(sa, rh, IKE_N_INVALID_KE_PAYLOAD, g, 2, out, cap);
	}
	sa->spi_i = rh->spi_i;
	ike_x_check_natd(sa, c, 0);
	note_cert_notifies(sa, c);
	note_frag(sa, c);
	memcpy(sa->ni, np->body, np->len);
	sa->ni_len = np->len;
	sa->nr_len = NONCE_LEN;
	uint8_t pub[512];
	size_t pl = sizeof(pub);
	do {
		if (ike_x_rnd(sa, &sa->spi_r, sizeof(sa->spi_r)))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	} while (!sa->spi_r);
	if (ike_x_rnd(sa, sa->nr, sa->nr_len) || !(sa->dh = ike_dh_new(sa->group)) || ike_dh_public(sa->dh, pub, &pl) ||
	    derive_ike(sa, ke.data, ke.len) != 0)
		return init_error(sa, rh, IKE_N_INVALID_KE_PAYLOAD, NULL, 0, out, cap);
	struct ike_sa_payload reply = {.n = 1};
	reply.prop[0] = chosen;
	struct ike_builder b;
	struct ike_hdr h = ike_x_hdr(sa, IKE_SA_INIT, true, 0);
	ike_build_begin(&b, out, cap, &h);
	ike_put_sa(&b, &reply);
	ike_put_ke(&b, sa->group, pub, pl);
	ike_put_raw(&b, IKE_PL_NONCE, sa->nr, sa->nr_len);
	put_certreq(sa, &b);
	ike_x_put_natd(sa, &b);
	if (sa->conf->fragmentation && (sa->initiator || sa->frag_peer))
		ike_put_notify(&b, 0, NULL, 0, IKE_N_IKEV2_FRAGMENTATION_SUPPORTED, NULL, 0);
	put_sighash(sa, &b);
	size_t olen = ike_build_end(&b);
	if (!olen || !(sa->init_i = ike_x_dup_bytes(msg, len)) || !(sa->init_r = ike_x_dup_bytes(out, olen)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->init_i_len = len, sa->init_r_len = olen;
	sa->next_recv_id = 1;
	sa->state = IKE_ST_INIT_DONE;
	return olen;
}

/* The responder asked for a cookie or another key exchange group: send IKE_SA_INIT again (RFC 7296
 * 2.6, 1.2), a bounded number of times. Returns the new request's length, or 0 if this notify does
 * not call for a restart. */
static size_t restart(struct ike_sa *sa, const struct ike_notify_payload *n, uint8_t *out, size_t cap)
{
	if (sa->restarts >= 4)
		return fail(sa, n->type);
	if (n->type == IKE_N_COOKIE) {
		if (!n->data_len || n->data_len > sizeof(sa->cookie))
			return 0;
		memcpy(sa->cookie, n->data, n->data_len);
		sa->cookie_len = n->data_len;
	} else {
		if (n->data_len != 2)
			return 0;
		uint16_t g = (uint16_t)(n->data[0] << 8 | n->data[1]);
		bool ours = false;
		for (unsigned i = 0; i < sa->conf->n_ike_props; i++)
			for (unsigned t = 0; t < sa->conf->ike_props[i].n_tr; t++)
				ours |= sa->conf->ike_props[i].tr[t].type == IKE_TR_DH && sa->conf->ike_props[i].tr[t].id == g;
		if (!ours || g == sa->group)
			return 0;
		sa->group = g;
	}
	sa->restarts++;
	free(sa->init_i);
	sa->init_i = NULL;
	if (n->type == IKE_N_INVALID_KE_PAYLOAD) {
		ike_dh_free(sa->dh);
		sa->dh = NULL;
	}
	sa->state = IKE_ST_IDLE;
	return ike_start(sa, out, cap);
}

static size_t on_init_response(struct ike_sa *sa, const uint8_t *msg, size_t len, const struct ike_hdr *rh,
			       const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++) {
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK)
			continue;
		if (n.type == IKE_N_COOKIE || n.type == IKE_N_INVALID_KE_PAYLOAD) {
			size_t r = restart(sa, &n, out, cap);
			if (r || sa->state == IKE_ST_FAILED)
				return r;
		}
		if (n.type < 16384)
			return fail(sa, n.type); /* NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD we cannot do, ... */
	}
	struct ike_sa_payload sp;
	struct ike_ke_payload ke;
	const struct ike_payload *sap = ike_find(c, IKE_PL_SA, 0), *kep = ike_find(c, IKE_PL_KE, 0),
				 *np = ike_find(c, IKE_PL_NONCE, 0);
	struct proposal_list ours = IKE_PROPS(sa);
	if (!sap || !kep || !np || ike_parse_sa(sap, &sp) || !ike_x_accepted(&sp, &ours, false) ||
	    !ike_prop_get(&sp.prop[0], IKE_TR_DH) || ike_prop_get(&sp.prop[0], IKE_TR_DH)->id != sa->group ||
	    ike_parse_ke(kep, &ke) || ke.group != sa->group || np->len < 16 || np->len > sizeof(sa->nr) || !rh->spi_r)
		return fail(sa, IKE_N_INVALID_SYNTAX);
	ike_x_use_ike_choice(sa, &sp.prop[0]);
	sa->spi_r = rh->spi_r;
	ike_x_check_natd(sa, c, sa->spi_r);
	note_cert_notifies(sa, c);
	note_frag(sa, c);
	memcpy(sa->nr, np->body, np->len);
	sa->nr_len = np->len;
	if (!(sa->init_r = ike_x_dup_bytes(msg, len)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->init_r_len = len;
	if (derive_ike(sa, ke.data, ke.len) != 0)
		return fail(sa, IKE_N_INVALID_KE_PAYLOAD);

	/* IKE_AUTH request: IDi, AUTH, SA (ESP), TSi, TSr */
	uint32_t spi;
	if (ike_x_rnd(sa, &spi, sizeof(spi)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	spi |= 0xc0000000u; /* stay clear of the reserved 1..255 */
	sa->ccs_spi = spi;   /* kept for the child IKE_AUTH makes */
	struct ike_sa_payload esp;
	struct proposal_list eo = ESP_PROPS(sa->conf);
	ike_x_offer(&eo, spi, &esp);
	size_t olen = auth_message(sa, &esp, sa->conf->local_ts, sa->conf->n_local_ts, sa->conf->remote_ts,
				   sa->conf->n_remote_ts, out, cap);
	if (!olen)
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->next_send_id = 1;
	sa->state = IKE_ST_AUTH_SENT;
	return olen;
}

/* Decrypt the SK payload of a message for this SA (from the peer's direction). */
int ike_x_open_sk(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in)
{
	if (sa->pre_in_valid) { /* reassembled from fragments, already checked and decrypted */
		*in = pre_in;
		return 0;
	}
	const struct ike_payload *sk = ike_find(c, IKE_PL_SK, 0);
	uint8_t first;
	const uint8_t *inner;
	size_t inner_len;
	const uint8_t *ke = sa->initiator ? sa->keys.sk_er : sa->keys.sk_ei;
	const uint8_t *ka = sa->initiator ? sa->keys.sk_ar : sa->keys.sk_ai;
	if (!sk || ike_sk_open(&sa->suite, ke, ka, msg, len, sk, &first, &inner, &inner_len) != 0)
		return -1;
	return ike_parse_chain(first, inner, inner_len, in) == IKE_PERR_OK ? 0 : -1;
}

static size_t auth_error(struct ike_sa *sa, uint16_t type, uint8_t *out, size_t cap)
{
	uint8_t chain[64];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_notify(&b, 0, NULL, 0, type, NULL, 0);
	struct ike_hdr h = ike_x_hdr(sa, IKE_AUTH, true, 1);
	size_t len = ike_x_seal(sa, &h, &b, out, cap);
	sa->state = IKE_ST_FAILED;
	sa->error = type;
	return len;
}

size_t ike_x_cache(struct ike_sa *sa, const uint8_t *out, size_t len, uint32_t id)
{
	sa->last_req_update = false;
	free(sa->last_resp);
	sa->last_resp = ike_x_dup_bytes(out, len);
	sa->last_resp_len = sa->last_resp ? len : 0;
	sa->last_resp_id = id;
	return len;
}

static size_t on_auth_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, uint8_t *out,
			      size_t cap)
{
	struct ike_chain in;
	if (ike_x_open_sk(sa, msg, len, c, &in) != 0)
		return 0; /* not authentic: dropped, the SA is unchanged */
	uint16_t err = verify_peer(sa, &in);
	if (err)
		return ike_x_cache(sa, out, auth_error(sa, err, out, cap), 1);
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type == IKE_N_INITIAL_CONTACT)
			sa->peer_initial_contact = true;
	sa->peer_certreq |= ike_find(&in, IKE_PL_CERTREQ, 0) != NULL;
	ike_x_note_mobike(sa, &in, true, NULL, NULL);
	struct ike_sa_payload sp;
	struct ike_ts_payload tsi, tsr;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0), *ip = ike_find(&in, IKE_PL_TSI, 0),
				 *rp = ike_find(&in, IKE_PL_TSR, 0);
	if (!sap || !ip || !rp || ike_parse_sa(sap, &sp) || ike_parse_ts(ip, &tsi) || ike_parse_ts(rp, &tsr))
		return ike_x_cache(sa, out, auth_error(sa, IKE_N_INVALID_SYNTAX, out, cap), 1);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_conf *cc = NULL;
	struct bt_ts ti[BT_TS_MAX], tr[BT_TS_MAX];
	unsigned ni, nr;
	/* the initiator's TSi is its side, our remote side; TSr ours */
	if ((err = ike_x_pick_child(sa, NULL, &sp, true, &tsi, &tsr, chosen, &cc, ti, &ni, tr, &nr)))
		return ike_x_cache(sa, out, auth_error(sa, err, out, cap), 1);
	struct ike_child *ch = sa->child[0] = ike_x_child_new(cc);
	uint32_t spi;
	if (!ch || ike_x_child_set_ts(ch, ti, ni, tr, nr))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->esp = *chosen;
	ch->spi_i = ike_x_spi32(chosen->spi);
	if (ike_x_rnd(sa, &spi, sizeof(spi)) || derive_child(sa, ch))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->spi_r = spi | 0xc0000000u;
	ike_x_put_spi(chosen, ch->spi_r);
	size_t olen = auth_message(sa, &reply, ch->ts_i, ch->n_ts_i, ch->ts_r, ch->n_ts_r, out, cap);
	if (!olen)
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->next_recv_id = 2;
	ch->up = true;
	sa->mobike_initiator = false;
	sa->state = IKE_ST_ESTABLISHED;
	return ike_x_cache(sa, out, olen, 1);
}

static size_t on_auth_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	if (ike_x_open_sk(sa, msg, len, c, &in) != 0)
		return 0;
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type < 16384)
			return fail(sa, n.type);
	uint16_t err = verify_peer(sa, &in);
	if (err)
		return fail(sa, err);
	struct ike_sa_payload sp;
	struct ike_ts_payload tsi, tsr;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0), *ip = ike_find(&in, IKE_PL_TSI, 0),
				 *rp = ike_find(&in, IKE_PL_TSR, 0);
	struct proposal_list ours = ESP_PROPS(sa->conf);
	if (!sap || !ip || !rp || ike_parse_sa(sap, &sp) || !ike_x_accepted(&sp, &ours, true) ||
	    sp.prop[0].spi_len != 4 || ike_parse_ts(ip, &tsi) || ike_parse_ts(rp, &tsr))
		return fail(sa, IKE_N_INVALID_SYNTAX);
	/* the responder may only narrow what we proposed */
	if (!ike_x_subset(tsi.ts, tsi.n, sa->conf->local_ts, sa->conf->n_local_ts) ||
	    !ike_x_subset(tsr.ts, tsr.n, sa->conf->remote_ts, sa->conf->n_remote_ts))
		return fail(sa, IKE_N_TS_UNACCEPTABLE);
	struct ike_child *ch = sa->child[0] = ike_x_child_new(sa->conf);
	if (!ch || ike_x_child_set_ts(ch, tsi.ts, tsi.n, tsr.ts, tsr.n))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->spi_i = sa->ccs_spi;
	ch->spi_r = ike_x_spi32(sp.prop[0].spi);
	ch->esp = sp.prop[0];
	if (derive_child(sa, ch))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ike_x_note_mobike(sa, &in, true, NULL, NULL);
	sa->next_send_id = 2;
	ch->up = true;
	sa->mobike_initiator = true;
	sa->state = IKE_ST_ESTABLISHED;
	return 0;
}

size_t ike_process(struct ike_sa *sa, const uint8_t *msg, size_t len, uint8_t *out, size_t cap)
{
	struct ike_hdr h;
	static __thread struct ike_chain c;
	uint8_t *copy;
	size_t r = 0;
	if (len > IKE_MSG_MAX || ike_parse(msg, len, &h, &c) != IKE_PERR_OK)
		return 0;
	if (sa->state == IKE_ST_ESTABLISHED && sa->old_ike.present && h.spi_i == sa->old_ike.spi_i &&
	    h.spi_r == sa->old_ike.spi_r)
		return ike_x_on_old_ike(sa, &sa->old_ike, msg, len, out, cap);
	if (sa->state == IKE_ST_ESTABLISHED && sa->red_ike && h.spi_i == sa->red_ike->spi_i &&
	    h.spi_r == sa->red_ike->spi_r)
		return ike_x_on_old_ike(sa, sa->red_ike, msg, len, out, cap);
	bool response = h.flags & IKE_FLAG_RESPONSE;
	/* the message must come from the other role, for this SA; until the SA is up, requests only
	 * flow from the initiator */
	if (!!(h.flags & IKE_FLAG_INITIATOR) == sa->initiator)
		return 0;
	if (sa->state != IKE_ST_ESTABLISHED && response != sa->initiator)
		return 0;
	if (sa->state != IKE_ST_IDLE && h.spi_i != sa->spi_i)
		return 0;
	/* a retransmitted IKE_SA_INIT request gets our response again */
	if (!response && h.exchange == IKE_SA_INIT && sa->state == IKE_ST_INIT_DONE && h.spi_i == sa->spi_i &&
	    sa->init_r && sa->init_r_len <= cap && len == sa->init_i_len && !memcmp(msg, sa->init_i, len)) {
		memcpy(out, sa->init_r, sa->init_r_len);
		return sa->init_r_len;
	}
	/* a retransmitted request gets the cached response, unchanged */
	if (!response && sa->last_resp && h.msg_id == sa->last_resp_id && h.spi_r == sa->spi_r) {
		if (sa->last_resp_len > cap)
			return 0;
		if (sa->last_req_update && sa->rx_remote.family && !ike_x_retransmit_same_path(sa, msg, len))
			return 0; /* not authentic */
		memcpy(out, sa->last_resp, sa->last_resp_len);
		return sa->last_resp_len;
	}
	if (c.n && c.pl[0].type == IKE_PL_SKF) {
		/* a fragment: store it; handle the message once every fragment is in */
		if (sa->state == IKE_ST_IDLE || sa->state == IKE_ST_INIT_SENT || !sa->frag_peer)
			return 0;
		if (!sa->reasm && !(sa->reasm = calloc(1, sizeof(*sa->reasm))))
			return 0;
		if (!sa->reasm->total || sa->reasm->msg_id != h.msg_id || sa->reasm->complete) {
			ike_frag_reasm_clear(sa->reasm);
			ike_frag_reasm_init(sa->reasm, h.msg_id, sa->now * 1000, 30000);
		}
		uint8_t first;
		const uint8_t *inner;
		size_t inner_len;
		enum ike_frag_drop why;
		const uint8_t *ke = sa->initiator ? sa->keys.sk_er : sa->keys.sk_ei;
		const uint8_t *ka = sa->initiator ? sa->keys.sk_ar : sa->keys.sk_ai;
		enum ike_frag_result fr = ike_frag_reasm_feed(sa->reasm, &sa->suite, ke, ka, msg, len, sa->now * 1000, &first,
							      &inner, &inner_len, &why);
		if (fr == IKE_FRAG_DROPPED)
			sa->frag_drops++;
		else
			sa->frags_received++;
		if (fr != IKE_FRAG_COMPLETE)
			return 0;
		if (ike_parse_chain(first, inner, inner_len, &pre_in) != IKE_PERR_OK)
			return 0;
		sa->pre_in_valid = true;
	}
	copy = ike_x_dup_bytes(msg, len); /* decryption works in place */
	if (!copy) {
		sa->pre_in_valid = false;
		return 0;
	}
	/* re-parse the copy so payload pointers point into it */
	if (ike_parse(copy, len, &h, &c) != IKE_PERR_OK)
		goto out;
	if (c.unsupported_critical) {
		r = 0; /* (an error notify comes with the full engine) */
		goto out;
	}
	switch (sa->state) {
	case IKE_ST_IDLE:
		if (h.exchange == IKE_SA_INIT && !response && h.msg_id == 0 && !h.spi_r)
			r = on_init_request(sa, copy, len, &h, &c, out, cap);
		break;
	case IKE_ST_INIT_SENT:
		if (h.exchange == IKE_SA_INIT && response && h.msg_id == 0)
			r = on_init_response(sa, copy, len, &h, &c, out, cap);
		break;
	case IKE_ST_INIT_DONE:
		if (h.exchange == IKE_AUTH && !response && h.msg_id == sa->next_recv_id && h.spi_r == sa->spi_r)
			r = on_auth_request(sa, copy, len, &c, out, cap);
		break;
	case IKE_ST_AUTH_SENT:
		if (h.exchange == IKE_AUTH && response && h.msg_id == 1 && h.spi_r == sa->spi_r)
			r = on_auth_response(sa, copy, len, &c);
		break;
	case IKE_ST_ESTABLISHED:
		if (h.spi_r != sa->spi_r)
			break;
		if (h.exchange == IKE_CREATE_CHILD_SA) {
			if (!response && h.msg_id == sa->next_recv_id)
				r = ike_x_on_ccs_request(sa, copy, len, &h, &c, out, cap);
			else if (response && sa->ccs_pending && h.msg_id == sa->ccs_id)
				r = ike_x_on_ccs_response(sa, copy, len, &c);
			break;
		}
		if (h.exchange != IKE_INFORMATIONAL)
			break;
		if (!response && h.msg_id == sa->next_recv_id)
			r = ike_x_on_info_request(sa, copy, len, &h, &c, out, cap);
		else if (response && sa->info_pending && h.msg_id == sa->info_id)
			r = ike_x_on_info_response(sa, copy, len, &c);
		break;
	default:
		break;
	}
out:
	free(copy);
	sa->pre_in_valid = false;
	if (sa->state == IKE_ST_ESTABLISHED && sa->init_i) {
		/* AUTH is done: the IKE_SA_INIT messages are not needed again */
		free(sa->init_i);
		free(sa->init_r);
		sa->init_i = sa->init_r = NULL;
		sa->init_i_len = sa->init_r_len = 0;
	}
	return r;
}
