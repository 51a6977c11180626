/* ike_exchange.c — IKE_SA_INIT, IKE_AUTH (pre-shared key or certificates), CREATE_CHILD_SA and
 * INFORMATIONAL for both roles, as a pure function of the SA and the received message. Facts come
 * from ike_msg.c; this file decides. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_sa.h"

#define NONCE_LEN 32
#define AUTH_SHARED_KEY 2

const char *ike_state_name(enum ike_state s)
{
	static const char *const n[] = {"idle", "init-sent", "auth-sent", "init-done", "established", "failed", "deleted"};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* The decrypted chain of a message reassembled from fragments, while ike_process handles it. */
static __thread struct ike_chain pre_in;

static void child_free(struct ike_child *c)
{
	if (!c)
		return;
	child_free(c->next), child_free(c->old), child_free(c->coll), child_free(c->red);
	free(c->ts_i), free(c->ts_r), free(c->coll_nonce);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

static void drop_child(struct ike_child **c)
{
	child_free(*c);
	*c = NULL;
}

static struct ike_child *child_new(const struct ike_conf *cc)
{
	struct ike_child *c = calloc(1, sizeof(*c));
	if (c)
		c->conf = cc;
	return c;
}

/* A child's selectors, each list allocated to its exact size. */
static int child_set_ts(struct ike_child *c, const struct bt_ts *ti, unsigned ni, const struct bt_ts *tr, unsigned nr)
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

static int free_slot(const struct ike_sa *sa)
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
static void use_ike_choice(struct ike_sa *sa, const struct ike_proposal *p)
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
		drop_child(&sa->child[i]);
	if (sa->reasm) {
		ike_frag_reasm_clear(sa->reasm);
		free(sa->reasm);
	}
	X509_free(sa->peer_cert);
	OPENSSL_cleanse(sa, sizeof(*sa));
}

static int rnd(struct ike_sa *sa, void *buf, size_t len) { return sa->rng.fill(sa->rng.arg, buf, len); }


static uint8_t *dup_bytes(const uint8_t *p, size_t n)
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

struct proposal_list {
	const struct ike_proposal *p;
	unsigned n;
};
#define IKE_PROPS(sa) ((struct proposal_list){(sa)->conf->ike_props, (sa)->conf->n_ike_props})
#define ESP_PROPS(cc) ((struct proposal_list){(cc)->esp_props, (cc)->n_esp_props})

static void put_spi(struct ike_proposal *p, uint32_t spi)
{
	p->spi_len = 4;
	p->spi[0] = (uint8_t)(spi >> 24), p->spi[1] = (uint8_t)(spi >> 16), p->spi[2] = (uint8_t)(spi >> 8),
	p->spi[3] = (uint8_t)spi;
}

/* Our offer: every configured proposal, numbered from 1 (ESP ones carry our inbound SPI). */
static void offer(const struct proposal_list *l, uint32_t spi, struct ike_sa_payload *out)
{
	out->n = 0;
	for (unsigned i = 0; i < l->n && i < IKE_MAX_PROPOSALS; i++) {
		out->prop[out->n] = l->p[i];
		out->prop[out->n].num = (uint8_t)(i + 1);
		if (l->p[i].protocol == IKE_PROTO_ESP)
			put_spi(&out->prop[out->n], spi);
		out->n++;
	}
}

/* Responder: the first of the peer's proposals we accept, reduced to one transform per type. */
static bool choose(const struct ike_sa_payload *theirs, const struct proposal_list *ours, bool ignore_dh,
		   struct ike_proposal *out)
{
	for (unsigned i = 0; i < theirs->n; i++)
		for (unsigned j = 0; j < ours->n; j++)
			if (ike_prop_select(&theirs->prop[i], &ours->p[j], ignore_dh, out))
				return true;
	return false;
}

/* Initiator: is the responder's single choice within one of our proposals? */
static bool accepted(const struct ike_sa_payload *reply, const struct proposal_list *ours, bool ignore_dh)
{
	if (reply->n != 1)
		return false;
	for (unsigned j = 0; j < ours->n; j++)
		if (ike_prop_within(&reply->prop[0], &ours->p[j], ignore_dh))
			return true;
	return false;
}

static uint32_t spi32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

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
static bool subset(const struct bt_ts *sub, unsigned ns, const struct bt_ts *sup, unsigned nu)
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
static uint16_t pick_child(const struct ike_sa *sa, const struct ike_conf *only, const struct ike_sa_payload *sp,
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
		if (!choose(sp, &l, ignore_dh, chosen) || chosen->spi_len != 4) {
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

/* MOBIKE notifies of an IKE_AUTH or INFORMATIONAL message: MOBIKE_SUPPORTED (IKE_AUTH only), the
 * peer's additional addresses (a new list replaces the old one), and a COOKIE2 to echo. */
static void note_mobike(struct ike_sa *sa, const struct ike_chain *c, bool auth, struct ike_notify_payload *cookie2,
			bool *update)
{
	struct ike_notify_payload n;
	bool list = false;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++) {
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK)
			continue;
		if (n.type == IKE_N_MOBIKE_SUPPORTED && auth) {
			sa->mobike = sa->conf->mobike;
		} else if ((n.type == IKE_N_ADDITIONAL_IP4_ADDRESS && n.data_len == 4) ||
			   (n.type == IKE_N_ADDITIONAL_IP6_ADDRESS && n.data_len == 16)) {
			if (!list)
				sa->n_peer_addrs = 0, list = true;
			if (sa->n_peer_addrs < IKE_PEER_ADDRS) {
				struct bt_addr *a = &sa->peer_addrs[sa->n_peer_addrs++];
				memset(a, 0, sizeof(*a));
				a->family = n.data_len == 4 ? AF_INET : AF_INET6;
				memcpy(a->b, n.data, n.data_len);
			}
		} else if (n.type == IKE_N_NO_ADDITIONAL_ADDRESSES) {
			sa->n_peer_addrs = 0, list = true;
		} else if (n.type == IKE_N_COOKIE2 && cookie2 && n.data_len >= 8 && n.data_len <= 64) {
			*cookie2 = n;
		} else if (n.type == IKE_N_UPDATE_SA_ADDRESSES && update) {
			*update = true;
		}
	}
	if (list)
		sa->peer_addrs_changed = true;
}

/* Our additional addresses (RFC 4555 3.4); with none, NO_ADDITIONAL_ADDRESSES if asked (3.6). */
static void put_my_addrs(struct ike_sa *sa, struct ike_builder *b, bool say_none)
{
	for (unsigned k = 0; k < sa->n_my_addrs && k < IKE_PEER_ADDRS; k++) {
		const struct bt_addr *a = &sa->my_addrs[k];
		if (a->family == AF_INET || a->family == AF_INET6)
			ike_put_notify(b, 0, NULL, 0, a->family == AF_INET ? IKE_N_ADDITIONAL_IP4_ADDRESS : IKE_N_ADDITIONAL_IP6_ADDRESS,
				       a->b, a->family == AF_INET ? 4 : 16);
	}
	if (!sa->n_my_addrs && say_none)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NO_ADDITIONAL_ADDRESSES, NULL, 0);
}

static void put_natd(struct ike_sa *sa, struct ike_builder *b)
{
	uint8_t h[IKE_NATD_LEN];
	if (!sa->local.family || !sa->remote.family)
		return;
	/* forcing ESP in UDP: a source hash no address can have makes the peer see a NAT in front of us */
	if (sa->conf->force_encap ? rnd(sa, h, sizeof(h)) == 0
				 : ike_natd_hash(sa->spi_i, sa->spi_r, &sa->local, sa->local_port, h) == 0)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NAT_DETECTION_SOURCE_IP, h, sizeof(h));
	if (ike_natd_hash(sa->spi_i, sa->spi_r, &sa->remote, sa->remote_port, h) == 0)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NAT_DETECTION_DESTINATION_IP, h, sizeof(h));
}

/* Compare the peer's NAT_DETECTION notifies with the addresses the message really had (RFC 7296
 * 2.23): a destination hash that is not ours means we are behind a NAT; no source hash matching
 * the sender means the peer is. Without the notifies the peer does not do NAT traversal. */
static void check_natd(struct ike_sa *sa, const struct ike_chain *c, uint64_t spi_r)
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
static int open_sk(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in);
static bool retransmit_same_path(struct ike_sa *sa, const uint8_t *msg, size_t len)
{
	if (bt_addr_eq(&sa->rx_remote, &sa->remote) && bt_addr_eq(&sa->rx_local, &sa->local) &&
	    sa->rx_remote_port == sa->remote_port && sa->rx_local_port == sa->local_port)
		return true;
	uint8_t *copy = dup_bytes(msg, len);
	struct ike_hdr h;
	static __thread struct ike_chain c, in;
	bool ok = copy && ike_parse(copy, len, &h, &c) == IKE_PERR_OK && ike_find(&c, IKE_PL_SK, 0) &&
		  open_sk(sa, copy, len, &c, &in) == 0;
	free(copy);
	if (!ok)
		return false;
	sa->rr_local = sa->rx_local, sa->rr_remote = sa->rx_remote;
	sa->rr_local_port = sa->rx_local_port, sa->rr_remote_port = sa->rx_remote_port;
	sa->addr_check = true;
	return true;
}

/* --- messages ---------------------------------------------------------------------------------- */

static struct ike_hdr hdr(const struct ike_sa *sa, uint8_t exchange, bool response, uint32_t id)
{
	return (struct ike_hdr){.spi_i = sa->spi_i, .spi_r = sa->spi_r, .exchange = exchange, .msg_id = id,
				.flags = (uint8_t)((sa->initiator ? IKE_FLAG_INITIATOR : 0) | (response ? IKE_FLAG_RESPONSE : 0))};
}

static size_t seal(struct ike_sa *sa, const struct ike_hdr *h, struct ike_builder *chain, uint8_t *out, size_t cap)
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
		put_my_addrs(sa, &b, false);
	}
	ike_put_auth(&b, method, auth, al);
	ike_put_sa(&b, esp);
	ike_put_ts(&b, IKE_PL_TSI, tsi, ni);
	ike_put_ts(&b, IKE_PL_TSR, tsr, nr);
	struct ike_hdr h = hdr(sa, IKE_AUTH, !sa->initiator, 1);
	size_t len = seal(sa, &h, &b, out, cap);
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
		if (rnd(sa, &sa->spi_i, sizeof(sa->spi_i)))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	/* a restart keeps the nonce (RFC 7296 2.6: "all other payloads unchanged", and the cookie is
	 * bound to it) and, unless the group changed, the key share */
	if (!sa->ni_len) {
		sa->ni_len = NONCE_LEN;
		if (rnd(sa, sa->ni, sa->ni_len))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	}
	if ((!sa->dh && !(sa->dh = ike_dh_new(sa->group))) || ike_dh_public(sa->dh, pub, &pl))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	struct proposal_list ours = IKE_PROPS(sa);
	offer(&ours, 0, &sp);
	struct ike_builder b;
	struct ike_hdr h = hdr(sa, IKE_SA_INIT, false, 0);
	ike_build_begin(&b, out, cap, &h);
	if (sa->cookie_len) /* RFC 7296 2.6: the cookie comes first */
		ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE, sa->cookie, sa->cookie_len);
	ike_put_sa(&b, &sp);
	ike_put_ke(&b, sa->group, pub, pl);
	ike_put_raw(&b, IKE_PL_NONCE, sa->ni, sa->ni_len);
	put_natd(sa, &b);
	if (sa->conf->fragmentation && (sa->initiator || sa->frag_peer))
		ike_put_notify(&b, 0, NULL, 0, IKE_N_IKEV2_FRAGMENTATION_SUPPORTED, NULL, 0);
	put_sighash(sa, &b);
	size_t len = ike_build_end(&b);
	if (!len || !(sa->init_i = dup_bytes(out, len)))
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
	if (!choose(&sp, &ours, false, &chosen))
		return init_error(sa, rh, IKE_N_NO_PROPOSAL_CHOSEN, NULL, 0, out, cap);
	use_ike_choice(sa, &chosen);
	sa->group = ike_prop_get(&chosen, IKE_TR_DH)->id;
	if (ke.group != sa->group) {
		uint8_t g[2] = {(uint8_t)(sa->group >> 8), (uint8_t)sa->group};
		return init_error(sa, rh, IKE_N_INVALID_KE_PAYLOAD, g, 2, out, cap);
	}
	sa->spi_i = rh->spi_i;
	check_natd(sa, c, 0);
	note_cert_notifies(sa, c);
	note_frag(sa, c);
	memcpy(sa->ni, np->body, np->len);
	sa->ni_len = np->len;
	sa->nr_len = NONCE_LEN;
	uint8_t pub[512];
	size_t pl = sizeof(pub);
	do {
		if (rnd(sa, &sa->spi_r, sizeof(sa->spi_r)))
			return fail(sa, IKE_N_TEMPORARY_FAILURE);
	} while (!sa->spi_r);
	if (rnd(sa, sa->nr, sa->nr_len) || !(sa->dh = ike_dh_new(sa->group)) || ike_dh_public(sa->dh, pub, &pl) ||
	    derive_ike(sa, ke.data, ke.len) != 0)
		return init_error(sa, rh, IKE_N_INVALID_KE_PAYLOAD, NULL, 0, out, cap);
	struct ike_sa_payload reply = {.n = 1};
	reply.prop[0] = chosen;
	struct ike_builder b;
	struct ike_hdr h = hdr(sa, IKE_SA_INIT, true, 0);
	ike_build_begin(&b, out, cap, &h);
	ike_put_sa(&b, &reply);
	ike_put_ke(&b, sa->group, pub, pl);
	ike_put_raw(&b, IKE_PL_NONCE, sa->nr, sa->nr_len);
	put_certreq(sa, &b);
	put_natd(sa, &b);
	if (sa->conf->fragmentation && (sa->initiator || sa->frag_peer))
		ike_put_notify(&b, 0, NULL, 0, IKE_N_IKEV2_FRAGMENTATION_SUPPORTED, NULL, 0);
	put_sighash(sa, &b);
	size_t olen = ike_build_end(&b);
	if (!olen || !(sa->init_i = dup_bytes(msg, len)) || !(sa->init_r = dup_bytes(out, olen)))
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
	if (!sap || !kep || !np || ike_parse_sa(sap, &sp) || !accepted(&sp, &ours, false) ||
	    !ike_prop_get(&sp.prop[0], IKE_TR_DH) || ike_prop_get(&sp.prop[0], IKE_TR_DH)->id != sa->group ||
	    ike_parse_ke(kep, &ke) || ke.group != sa->group || np->len < 16 || np->len > sizeof(sa->nr) || !rh->spi_r)
		return fail(sa, IKE_N_INVALID_SYNTAX);
	use_ike_choice(sa, &sp.prop[0]);
	sa->spi_r = rh->spi_r;
	check_natd(sa, c, sa->spi_r);
	note_cert_notifies(sa, c);
	note_frag(sa, c);
	memcpy(sa->nr, np->body, np->len);
	sa->nr_len = np->len;
	if (!(sa->init_r = dup_bytes(msg, len)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->init_r_len = len;
	if (derive_ike(sa, ke.data, ke.len) != 0)
		return fail(sa, IKE_N_INVALID_KE_PAYLOAD);

	/* IKE_AUTH request: IDi, AUTH, SA (ESP), TSi, TSr */
	uint32_t spi;
	if (rnd(sa, &spi, sizeof(spi)))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	spi |= 0xc0000000u; /* stay clear of the reserved 1..255 */
	sa->ccs_spi = spi;   /* kept for the child IKE_AUTH makes */
	struct ike_sa_payload esp;
	struct proposal_list eo = ESP_PROPS(sa->conf);
	offer(&eo, spi, &esp);
	size_t olen = auth_message(sa, &esp, sa->conf->local_ts, sa->conf->n_local_ts, sa->conf->remote_ts,
				   sa->conf->n_remote_ts, out, cap);
	if (!olen)
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->next_send_id = 1;
	sa->state = IKE_ST_AUTH_SENT;
	return olen;
}

/* Decrypt the SK payload of a message for this SA (from the peer's direction). */
static int open_sk(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in)
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
	struct ike_hdr h = hdr(sa, IKE_AUTH, true, 1);
	size_t len = seal(sa, &h, &b, out, cap);
	sa->state = IKE_ST_FAILED;
	sa->error = type;
	return len;
}

static size_t cache(struct ike_sa *sa, const uint8_t *out, size_t len, uint32_t id)
{
	sa->last_req_update = false;
	free(sa->last_resp);
	sa->last_resp = dup_bytes(out, len);
	sa->last_resp_len = sa->last_resp ? len : 0;
	sa->last_resp_id = id;
	return len;
}

static size_t on_auth_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, uint8_t *out,
			      size_t cap)
{
	struct ike_chain in;
	if (open_sk(sa, msg, len, c, &in) != 0)
		return 0; /* not authentic: dropped, the SA is unchanged */
	uint16_t err = verify_peer(sa, &in);
	if (err)
		return cache(sa, out, auth_error(sa, err, out, cap), 1);
	struct ike_notify_payload n;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type == IKE_N_INITIAL_CONTACT)
			sa->peer_initial_contact = true;
	sa->peer_certreq |= ike_find(&in, IKE_PL_CERTREQ, 0) != NULL;
	note_mobike(sa, &in, true, NULL, NULL);
	struct ike_sa_payload sp;
	struct ike_ts_payload tsi, tsr;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0), *ip = ike_find(&in, IKE_PL_TSI, 0),
				 *rp = ike_find(&in, IKE_PL_TSR, 0);
	if (!sap || !ip || !rp || ike_parse_sa(sap, &sp) || ike_parse_ts(ip, &tsi) || ike_parse_ts(rp, &tsr))
		return cache(sa, out, auth_error(sa, IKE_N_INVALID_SYNTAX, out, cap), 1);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_conf *cc = NULL;
	struct bt_ts ti[BT_TS_MAX], tr[BT_TS_MAX];
	unsigned ni, nr;
	/* the initiator's TSi is its side, our remote side; TSr ours */
	if ((err = pick_child(sa, NULL, &sp, true, &tsi, &tsr, chosen, &cc, ti, &ni, tr, &nr)))
		return cache(sa, out, auth_error(sa, err, out, cap), 1);
	struct ike_child *ch = sa->child[0] = child_new(cc);
	uint32_t spi;
	if (!ch || child_set_ts(ch, ti, ni, tr, nr))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->esp = *chosen;
	ch->spi_i = spi32(chosen->spi);
	if (rnd(sa, &spi, sizeof(spi)) || derive_child(sa, ch))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->spi_r = spi | 0xc0000000u;
	put_spi(chosen, ch->spi_r);
	size_t olen = auth_message(sa, &reply, ch->ts_i, ch->n_ts_i, ch->ts_r, ch->n_ts_r, out, cap);
	if (!olen)
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	sa->next_recv_id = 2;
	ch->up = true;
	sa->mobike_initiator = false;
	sa->state = IKE_ST_ESTABLISHED;
	return cache(sa, out, olen, 1);
}

static size_t on_auth_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	if (open_sk(sa, msg, len, c, &in) != 0)
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
	if (!sap || !ip || !rp || ike_parse_sa(sap, &sp) || !accepted(&sp, &ours, true) ||
	    sp.prop[0].spi_len != 4 || ike_parse_ts(ip, &tsi) || ike_parse_ts(rp, &tsr))
		return fail(sa, IKE_N_INVALID_SYNTAX);
	/* the responder may only narrow what we proposed */
	if (!subset(tsi.ts, tsi.n, sa->conf->local_ts, sa->conf->n_local_ts) ||
	    !subset(tsr.ts, tsr.n, sa->conf->remote_ts, sa->conf->n_remote_ts))
		return fail(sa, IKE_N_TS_UNACCEPTABLE);
	struct ike_child *ch = sa->child[0] = child_new(sa->conf);
	if (!ch || child_set_ts(ch, tsi.ts, tsi.n, tsr.ts, tsr.n))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	ch->spi_i = sa->ccs_spi;
	ch->spi_r = spi32(sp.prop[0].spi);
	ch->esp = sp.prop[0];
	if (derive_child(sa, ch))
		return fail(sa, IKE_N_TEMPORARY_FAILURE);
	note_mobike(sa, &in, true, NULL, NULL);
	sa->next_send_id = 2;
	ch->up = true;
	sa->mobike_initiator = true;
	sa->state = IKE_ST_ESTABLISHED;
	return 0;
}

/* Our inbound SPI of a Child SA (what the peer sends to, and names in its deletes and rekeys of
 * it: RFC 7296 3.10, 3.11), and the peer's. */
static uint32_t our_spi(const struct ike_sa *sa, const struct ike_child *c) { return sa->initiator ? c->spi_i : c->spi_r; }
static uint32_t peer_spi(const struct ike_sa *sa, const struct ike_child *c) { return sa->initiator ? c->spi_r : c->spi_i; }

struct ike_child *ike_child_by_spi(struct ike_sa *sa, uint32_t spi)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (sa->child[i] && !sa->child[i]->gone && our_spi(sa, sa->child[i]) == spi)
			return sa->child[i];
	return NULL;
}

void ike_child_reap(struct ike_sa *sa)
{
	for (int i = 0; i < IKE_CHILD_MAX; i++)
		if (sa->child[i] && sa->child[i]->gone && !(sa->ccs_pending && sa->ccs_child == sa->child[i]))
			drop_child(&sa->child[i]);
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
	struct ike_hdr h = hdr(sa, IKE_INFORMATIONAL, false, sa->next_send_id);
	size_t len = seal(sa, &h, b, out, cap);
	if (!len)
		return 0;
	free(sa->info_req);
	sa->info_req = dup_bytes(out, len);
	sa->info_req_len = sa->info_req ? len : 0;
	sa->info_pending = true, sa->info_what = what, sa->info_id = sa->next_send_id;
	return len;
}

size_t ike_informational(struct ike_sa *sa, enum ike_info what, uint8_t *out, size_t cap)
{
	uint8_t chain[256];
	struct ike_builder b;
	if (sa->state != IKE_ST_ESTABLISHED || sa->info_pending || sa->ccs_pending || what == IKE_INFO_DELETE_CHILD ||
	    (what == IKE_INFO_UPDATE && (!sa->mobike || !sa->mobike_initiator)) || (what == IKE_INFO_PROBE && !sa->mobike) ||
	    (what == IKE_INFO_ADDRS && !sa->mobike))
		return 0;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	if (what == IKE_INFO_UPDATE || what == IKE_INFO_PROBE) {
		/* RFC 4555 3.5: UPDATE_SA_ADDRESSES and NAT detection for the new pair; a COOKIE2 that the
		 * answer must echo ties it to this request (3.6 for a path test) */
		if (rnd(sa, sa->cookie2, sizeof(sa->cookie2)))
			return 0;
		if (what == IKE_INFO_UPDATE) {
			ike_put_notify(&b, 0, NULL, 0, IKE_N_UPDATE_SA_ADDRESSES, NULL, 0);
			put_natd(sa, &b);
		}
		ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE2, sa->cookie2, sizeof(sa->cookie2));
		sa->update_error = 0;
	} else if (what == IKE_INFO_ADDRS) {
		put_my_addrs(sa, &b, true);
	}
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
		if ((ours ? our_spi(sa, c) : peer_spi(sa, c)) == spi)
			return SPI_CHILD;
		if (c->old_present && c->old && (ours ? our_spi(sa, c->old) : peer_spi(sa, c->old)) == spi)
			return SPI_OLD;
		if (c->red && (ours ? our_spi(sa, c->red) : peer_spi(sa, c->red)) == spi)
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
		drop_child(&c->old);
	} else if (k == SPI_RED) {
		drop_child(&c->red);
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

size_t ike_mobike_update(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	size_t len = ike_informational(sa, IKE_INFO_UPDATE, out, cap);
	if (len)
		sa->updates_sent++;
	return len;
}

size_t ike_mobike_probe(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return ike_informational(sa, IKE_INFO_PROBE, out, cap);
}

size_t ike_mobike_addresses(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return ike_informational(sa, IKE_INFO_ADDRS, out, cap);
}

/* A request of the peer's on an established SA: deletes, liveness checks, MOBIKE updates. */
static size_t on_info_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			      const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_chain in;
	if (open_sk(sa, msg, len, c, &in) != 0)
		return 0;
	uint8_t chain[512 + 4 * 3 * IKE_CHILD_MAX];
	uint32_t ours[3 * IKE_CHILD_MAX];
	unsigned n = 0;
	struct ike_builder b;
	bool delete_ike = false, update = false;
	struct ike_notify_payload cookie2 = {0};
	ike_build_chain_begin(&b, chain, sizeof(chain));
	note_mobike(sa, &in, false, &cookie2, &update);
	/* RFC 4555 3.5: only the original initiator moves the SA, only with MOBIKE, and only forward
	 * in message IDs (a replayed or reordered older update changes nothing) */
	update = update && sa->mobike && !sa->mobike_initiator && sa->rx_remote.family && rh->msg_id + 1 > sa->update_id;
	if (update) {
		sa->local = sa->rx_local, sa->remote = sa->rx_remote;
		sa->local_port = sa->rx_local_port, sa->remote_port = sa->rx_remote_port;
		check_natd(sa, &in, sa->spi_r);
		put_natd(sa, &b);
		sa->update_id = rh->msg_id + 1;
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
				enum spi_kind kind = find_spi(sa, spi32(d.spis + 4 * k), false, &ch);
				if (kind == SPI_NONE || n >= sizeof(ours) / sizeof(ours[0]))
					continue;
				ours[n++] = our_spi(sa, kind == SPI_CHILD ? ch : kind == SPI_OLD ? ch->old : ch->red);
				child_deleted(ch, kind);
			}
		}
	}
	if (n)
		put_child_delete(&b, ours, n);
	struct ike_hdr h = hdr(sa, IKE_INFORMATIONAL, true, rh->msg_id);
	size_t olen = seal(sa, &h, &b, out, cap);
	if (!olen)
		return 0;
	sa->next_recv_id = rh->msg_id + 1;
	if (delete_ike) {
		for (int i = 0; i < IKE_CHILD_MAX; i++)
			if (sa->child[i])
				sa->child[i]->gone = true;
		sa->state = IKE_ST_DELETED;
	}
	olen = cache(sa, out, olen, rh->msg_id);
	sa->last_req_update = update;
	return olen;
}

/* A response to our request (window of one): authentic, it completes the exchange. */
static int open_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c, struct ike_chain *in)
{
	if (open_sk(sa, msg, len, c, in) != 0)
		return -1;
	sa->next_send_id++;
	sa->peer_answers++;
	return 0;
}

static size_t on_info_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	if (sa->info_what == IKE_INFO_UPDATE || sa->info_what == IKE_INFO_PROBE) {
		/* the answer must echo our COOKIE2 (RFC 4555 3.6); one that does not is not ours */
		struct ike_notify_payload c2 = {0};
		if (open_sk(sa, msg, len, c, &in) != 0)
			return 0;
		note_mobike(sa, &in, false, &c2, NULL);
		if (!c2.data || c2.data_len != sizeof(sa->cookie2) || CRYPTO_memcmp(c2.data, sa->cookie2, sizeof(sa->cookie2)))
			return 0;
		sa->next_send_id++;
		sa->peer_answers++;
		sa->info_pending = false;
		struct ike_notify_payload n;
		for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++)
			if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) == IKE_PERR_OK && n.type < 16384)
				sa->update_error = n.type;
		if (sa->info_what == IKE_INFO_UPDATE) {
			if (!sa->update_error)
				check_natd(sa, &in, sa->spi_r);
			sa->update_done = true;
		} else {
			sa->probe_done = true;
		}
		return 0;
	}
	if (open_response(sa, msg, len, c, &in) != 0)
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
	return sa->initiator ? child_set_ts(nc, mine, nm, peer, np) : child_set_ts(nc, peer, np, mine, nm);
}

/* Our CREATE_CHILD_SA request for configured child cc: rekeying c, or a new Child SA (c NULL). */
static size_t ccs_child_request(struct ike_sa *sa, struct ike_child *c, const struct ike_conf *cc, uint8_t *out,
				size_t cap)
{
	uint32_t spi;
	uint8_t pub[512], chain[2048];
	size_t pl = 0;
	if (rnd(sa, &spi, sizeof(spi)) || rnd(sa, sa->ccs_nonce, sizeof(sa->ccs_nonce)))
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
	offer(&eo, sa->ccs_spi, &esp);
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	if (c) {
		uint8_t old[4];
		uint32_t o = our_spi(sa, c);
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
	struct ike_hdr h = hdr(sa, IKE_CREATE_CHILD_SA, false, sa->next_send_id);
	size_t len = seal(sa, &h, &b, out, cap);
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
	if (ccs_busy(sa) || !cc || !cc->n_esp_props || !cc->n_local_ts || !cc->n_remote_ts || free_slot(sa) < 0)
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
	struct ike_hdr h = hdr(sa, IKE_CREATE_CHILD_SA, true, id);
	size_t len = seal(sa, &h, &b, out, cap);
	sa->next_recv_id = id + 1;
	return len ? cache(sa, out, len, id) : 0;
}

static size_t ccs_error(struct ike_sa *sa, uint32_t id, uint16_t type, uint8_t *out, size_t cap)
{
	return ccs_error_data(sa, id, type, NULL, 0, out, cap);
}

/* INVALID_KE_PAYLOAD naming the group we want. */
static size_t ccs_invalid_ke(struct ike_sa *sa, uint32_t id, uint16_t group, uint8_t *out, size_t cap)
{
	uint8_t gb[2] = {(uint8_t)(group >> 8), (uint8_t)group};
	return ccs_error_data(sa, id, IKE_N_INVALID_KE_PAYLOAD, gb, sizeof(gb), out, cap);
}

/* RFC 7296 2.8.1: "lowest" compares octet by octet; a nonce that is a prefix of the other is lower. */
static int nonce_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r ? r : (al > bl) - (al < bl);
}

static void lower_nonce(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, const uint8_t **lo, size_t *ll)
{
	bool first = nonce_cmp(a, al, b, bl) <= 0;
	*lo = first ? a : b, *ll = first ? al : bl;
}

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
	use_ike_choice(sa, p);
	sa->group = ike_prop_get(p, IKE_TR_DH)->id;
	sa->next_send_id = sa->next_recv_id = 0;
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
		if (rnd(sa, &sa->ccs_ike_spi, sizeof(sa->ccs_ike_spi)))
			return 0;
	} while (!sa->ccs_ike_spi);
	if (rnd(sa, sa->ccs_nonce, sizeof(sa->ccs_nonce)))
		return 0;
	ike_dh_free(sa->ccs_dh);
	if (!(sa->ccs_dh = ike_dh_new(sa->group)) || ike_dh_public(sa->ccs_dh, pub, &pl))
		return 0;
	struct ike_sa_payload sp;
	struct proposal_list ours = IKE_PROPS(sa);
	offer(&ours, 0, &sp);
	for (unsigned i = 0; i < sp.n; i++)
		put_spi64(&sp.prop[i], sa->ccs_ike_spi);
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_sa(&b, &sp);
	ike_put_raw(&b, IKE_PL_NONCE, sa->ccs_nonce, sizeof(sa->ccs_nonce));
	ike_put_ke(&b, sa->group, pub, pl);
	struct ike_hdr h = hdr(sa, IKE_CREATE_CHILD_SA, false, sa->next_send_id);
	size_t len = seal(sa, &h, &b, out, cap);
	if (!len)
		return 0;
	sa->ccs_pending = true, sa->ccs_ike = true, sa->ccs_id = sa->next_send_id, sa->ccs_error = 0;
	return len;
}

/* The peer rekeys the IKE SA: answer on the old SA, then switch to the new one. */
static size_t on_ike_rekey_request(struct ike_sa *sa, const struct ike_hdr *rh, const struct ike_chain *in,
				   const struct ike_sa_payload *sp, uint8_t *out, size_t cap)
{
	/* our own IKE SA rekey in flight: both complete, the nonces decide later (RFC 7296 2.8.2); our
	 * Child SA exchange in flight, or a rekey unfinished: TEMPORARY_FAILURE (2.25) */
	bool collision = sa->ccs_pending && sa->ccs_ike && !sa->coll_ike;
	if ((sa->ccs_pending && !collision) || sa->old_ike.present || sa->red_ike)
		return ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	struct proposal_list ours = IKE_PROPS(sa);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_payload *np = ike_find(in, IKE_PL_NONCE, 0), *kep = ike_find(in, IKE_PL_KE, 0);
	struct ike_ke_payload ke;
	if (!np || np->len < 16 || np->len > 256)
		return ccs_error(sa, rh->msg_id, IKE_N_INVALID_SYNTAX, out, cap);
	if (!choose(sp, &ours, false, chosen) || chosen->spi_len != 8 || !spi64(chosen->spi))
		return ccs_error(sa, rh->msg_id, IKE_N_NO_PROPOSAL_CHOSEN, out, cap);
	uint16_t group = ike_prop_get(chosen, IKE_TR_DH)->id;
	if (!kep || ike_parse_ke(kep, &ke) || ke.group != group)
		return ccs_invalid_ke(sa, rh->msg_id, group, out, cap);
	uint64_t peer_spi = spi64(chosen->spi), spi = 0;
	uint8_t nr[32], pub[512], gir[512];
	size_t pl = sizeof(pub), gl = sizeof(gir), el, il;
	struct ike_keys k;
	struct ike_dh *dh = ike_dh_new(group);
	int bad = !dh || ike_dh_public(dh, pub, &pl) || ike_dh_shared(dh, ke.data, ke.len, gir, &gl) ||
		  rnd(sa, nr, sizeof(nr)) || ike_keys_for(chosen, &el, &il);
	while (!bad && !spi)
		bad = rnd(sa, &spi, sizeof(spi));
	const struct ike_transform *f = ike_prop_get(chosen, IKE_TR_PRF);
	bad = bad || !f ||
	      ike_derive_rekey(sa->prf, sa->keys.sk_d, f->id, il, el, np->body, np->len, nr, sizeof(nr), peer_spi, spi,
			       gir, gl, &k);
	ike_dh_free(dh);
	OPENSSL_cleanse(gir, sizeof(gir));
	if (bad)
		return ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	put_spi64(chosen, spi);
	uint8_t chain[2048];
	struct ike_builder b;
	ike_build_chain_begin(&b, chain, sizeof(chain));
	ike_put_sa(&b, &reply);
	ike_put_raw(&b, IKE_PL_NONCE, nr, sizeof(nr));
	ike_put_ke(&b, group, pub, pl);
	struct ike_hdr h = hdr(sa, IKE_CREATE_CHILD_SA, true, rh->msg_id);
	size_t olen = seal(sa, &h, &b, out, cap);
	if (!olen) {
		ike_keys_clear(&k);
		return 0;
	}
	sa->next_recv_id = rh->msg_id + 1;
	cache(sa, out, olen, rh->msg_id);
	if (collision) {
		struct ike_coll_ike *x = calloc(1, sizeof(*x));
		const uint8_t *lo;
		size_t ll;
		lower_nonce(np->body, np->len, nr, sizeof(nr), &lo, &ll);
		if (x && (x->nonce = dup_bytes(lo, ll))) {
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

static void on_ike_rekey_response(struct ike_sa *sa, const struct ike_chain *in, struct ike_dh *dh)
{
	struct ike_sa_payload sp;
	struct ike_ke_payload ke;
	const struct ike_payload *sap = ike_find(in, IKE_PL_SA, 0), *np = ike_find(in, IKE_PL_NONCE, 0),
				 *kep = ike_find(in, IKE_PL_KE, 0);
	struct proposal_list ours = IKE_PROPS(sa);
	uint8_t gir[512];
	size_t gl = sizeof(gir), el, il;
	struct ike_keys k;
	if (!sap || !np || !kep || ike_parse_sa(sap, &sp) || !accepted(&sp, &ours, false) || sp.prop[0].spi_len != 8 ||
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
	lower_nonce(sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len, &lo, &ll);
	bool ours_lost = nonce_cmp(lo, ll, x->nonce, x->nonce_len) < 0;
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
static void ike_rekey_failed(struct ike_sa *sa)
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
	struct ike_hdr h = hdr(sa, IKE_INFORMATIONAL, false, sa->next_send_id);
	struct ike_sk_suite cur = sa->suite;
	size_t len = seal(sa, &h, &b, out, cap);
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
static size_t on_old_ike(struct ike_sa *sa, struct ike_old_sa *o, const uint8_t *msg, size_t len, uint8_t *out,
			 size_t cap)
{
	struct ike_hdr h;
	static __thread struct ike_chain c;
	struct ike_chain in;
	size_t r = 0;
	uint8_t *copy = dup_bytes(msg, len);
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
	if (open_sk(sa, copy, len, &c, &in) != 0)
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
	struct ike_hdr rh = hdr(sa, h.exchange, true, h.msg_id);
	r = seal(sa, &rh, &b, out, cap);
	sa->next_recv_id = h.msg_id + 1;
	if (r)
		cache(sa, out, r, h.msg_id);
out:
	swap_with(sa, o);
	free(copy);
	if (gone)
		old_ike_done(sa, o);
	return r;
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
	drop_child(&c->old);
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
static size_t on_ccs_request(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_hdr *rh,
			     const struct ike_chain *c, uint8_t *out, size_t cap)
{
	struct ike_chain in;
	if (open_sk(sa, msg, len, c, &in) != 0)
		return 0;
	struct ike_sa_payload sp;
	const struct ike_payload *sap = ike_find(&in, IKE_PL_SA, 0);
	if (sap && ike_parse_sa(sap, &sp) == IKE_PERR_OK && sp.n && sp.prop[0].protocol == IKE_PROTO_IKE)
		return on_ike_rekey_request(sa, rh, &in, &sp, out, cap);
	bool rekey = false;
	struct ike_child *old = NULL;
	for (unsigned i = 0; ike_find(&in, IKE_PL_NOTIFY, i); i++) {
		struct ike_notify_payload n;
		if (ike_parse_notify(ike_find(&in, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK || n.type != IKE_N_REKEY_SA)
			continue;
		rekey = true;
		for (int k = 0; k < IKE_CHILD_MAX && n.protocol == IKE_PROTO_ESP && n.spi_len == 4 && !old; k++)
			if (sa->child[k] && !sa->child[k]->gone && peer_spi(sa, sa->child[k]) == spi32(n.spi))
				old = sa->child[k];
	}
	if (rekey && !old)
		return ccs_error(sa, rh->msg_id, IKE_N_CHILD_SA_NOT_FOUND, out, cap);
	/* RFC 7296 2.25: a child whose rekey is unfinished, or while the IKE SA is being rekeyed. Our own
	 * rekey of the same child in flight is a collision that both complete (2.8.1). */
	bool collision = old && sa->ccs_pending && !sa->ccs_ike && sa->ccs_child == old;
	if (old && (old->next_ready || old->old_present || old->coll || old->red || (sa->ccs_pending && sa->ccs_ike) ||
		    sa->old_ike.present))
		return ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	int slot = old ? -1 : free_slot(sa);
	if (!old && slot < 0)
		return ccs_error(sa, rh->msg_id, IKE_N_NO_ADDITIONAL_SAS, out, cap);
	struct ike_ts_payload tsi, tsr;
	const struct ike_payload *np = ike_find(&in, IKE_PL_NONCE, 0), *kep = ike_find(&in, IKE_PL_KE, 0),
				 *ip = ike_find(&in, IKE_PL_TSI, 0), *tp = ike_find(&in, IKE_PL_TSR, 0);
	if (!sap || !np || !ip || !tp || ike_parse_sa(sap, &sp) || ike_parse_ts(ip, &tsi) || ike_parse_ts(tp, &tsr) ||
	    np->len < 16 || np->len > 256)
		return ccs_error(sa, rh->msg_id, IKE_N_INVALID_SYNTAX, out, cap);
	struct ike_sa_payload reply = {.n = 1};
	struct ike_proposal *chosen = &reply.prop[0];
	const struct ike_conf *cc = NULL;
	struct bt_ts pi[BT_TS_MAX], mi[BT_TS_MAX]; /* the peer's side, ours */
	unsigned npi, nmi;
	uint16_t err = pick_child(sa, old ? old->conf : NULL, &sp, false, &tsi, &tsr, chosen, &cc, pi, &npi, mi, &nmi);
	if (err)
		return ccs_error(sa, rh->msg_id, err, out, cap);
	const struct ike_transform *g = ike_prop_get(chosen, IKE_TR_DH);
	struct ike_ke_payload ke;
	uint8_t pub[512], gir[512], nr[32];
	size_t pl = sizeof(pub), gl = 0;
	struct ike_dh *dh = NULL;
	if (g && g->id) {
		if (!kep || ike_parse_ke(kep, &ke) || ke.group != g->id)
			return ccs_invalid_ke(sa, rh->msg_id, g->id, out, cap);
		gl = sizeof(gir);
		if (!(dh = ike_dh_new(g->id)) || ike_dh_public(dh, pub, &pl) || ike_dh_shared(dh, ke.data, ke.len, gir, &gl)) {
			ike_dh_free(dh);
			return ccs_error(sa, rh->msg_id, IKE_N_INVALID_KE_PAYLOAD, out, cap);
		}
	}
	struct ike_child *nc = child_new(cc);
	uint32_t spi = 0;
	const uint8_t *lo;
	size_t ll = 0;
	int bad = !nc || rnd(sa, &spi, sizeof(spi)) || rnd(sa, nr, sizeof(nr));
	if (!bad) {
		spi |= 0xc0000000u;
		nc->esp = *chosen;
		bad = child_keys(sa, nc, false, gl ? gir : NULL, gl, np->body, np->len, nr, sizeof(nr)) ||
		      child_fill(sa, nc, false, spi, spi32(chosen->spi), pi, npi, mi, nmi);
	}
	OPENSSL_cleanse(gir, sizeof(gir));
	if (!bad && collision) {
		lower_nonce(np->body, np->len, nr, sizeof(nr), &lo, &ll);
		bad = !(old->coll_nonce = dup_bytes(lo, ll));
		old->coll_nonce_len = ll;
	}
	if (bad) {
		child_free(nc);
		ike_dh_free(dh);
		return ccs_error(sa, rh->msg_id, IKE_N_TEMPORARY_FAILURE, out, cap);
	}
	put_spi(chosen, spi);
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
	struct ike_hdr h = hdr(sa, IKE_CREATE_CHILD_SA, true, rh->msg_id);
	size_t olen = seal(sa, &h, &b, out, cap);
	if (!olen) {
		child_free(nc);
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
	return cache(sa, out, olen, rh->msg_id);
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
	bool ours_lost = nonce_cmp(lo, ll, c->coll_nonce, c->coll_nonce_len) < 0;
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

static size_t on_ccs_response(struct ike_sa *sa, uint8_t *msg, size_t len, const struct ike_chain *c)
{
	struct ike_chain in;
	if (open_response(sa, msg, len, c, &in) != 0)
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
		on_ike_rekey_response(sa, &in, dh);
		if (sa->ccs_error)
			ike_rekey_failed(sa);
		ike_dh_free(dh);
		return 0;
	}
	struct ike_child *old = sa->ccs_child;
	const struct ike_conf *cc = sa->ccs_conf;
	int slot = old ? -1 : free_slot(sa);
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
	if (!sap || !np || !ip || !tp || ike_parse_sa(sap, &sp) || !accepted(&sp, &ours, false) || sp.prop[0].spi_len != 4 ||
	    ike_parse_ts(ip, &tsi) || ike_parse_ts(tp, &tsr) || np->len < 16 || np->len > 256 ||
	    !subset(tsi.ts, tsi.n, mine, nm) || !subset(tsr.ts, tsr.n, theirs, nt)) {
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
	struct ike_child *nc = (old && old->gone) || (!old && slot < 0) ? NULL : child_new(cc);
	if (nc)
		nc->esp = sp.prop[0];
	if (!nc || child_keys(sa, nc, true, gl ? gir : NULL, gl, sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len) ||
	    child_fill(sa, nc, true, sa->ccs_spi, spi32(sp.prop[0].spi), tsi.ts, tsi.n, tsr.ts, tsr.n)) {
		OPENSSL_cleanse(gir, sizeof(gir));
		child_free(nc);
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
		lower_nonce(sa->ccs_nonce, sizeof(sa->ccs_nonce), np->body, np->len, &lo, &ll);
		settle_collision(sa, old, nc, lo, ll);
	} else {
		old->next = nc, old->next_ready = true, old->next_ours = true;
	}
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
		return on_old_ike(sa, &sa->old_ike, msg, len, out, cap);
	if (sa->state == IKE_ST_ESTABLISHED && sa->red_ike && h.spi_i == sa->red_ike->spi_i &&
	    h.spi_r == sa->red_ike->spi_r)
		return on_old_ike(sa, sa->red_ike, msg, len, out, cap);
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
		if (sa->last_req_update && sa->rx_remote.family && !retransmit_same_path(sa, msg, len))
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
	copy = dup_bytes(msg, len); /* decryption works in place */
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
				r = on_ccs_request(sa, copy, len, &h, &c, out, cap);
			else if (response && sa->ccs_pending && h.msg_id == sa->ccs_id)
				r = on_ccs_response(sa, copy, len, &c);
			break;
		}
		if (h.exchange != IKE_INFORMATIONAL)
			break;
		if (!response && h.msg_id == sa->next_recv_id)
			r = on_info_request(sa, copy, len, &h, &c, out, cap);
		else if (response && sa->info_pending && h.msg_id == sa->info_id)
			r = on_info_response(sa, copy, len, &c);
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
