/* ike.c — batond's IKE: sockets (UDP 500 here, 4500 shared with the data plane), sessions around
 * the pure engine of src/ike, their timers (retransmission with backoff, liveness, NAT keepalives),
 * and what a finished exchange changes: Child SAs and their policies in the data plane.
 *
 * Everything runs on the control thread. Workers hand IKE packets seen on the NAT-T port, and
 * acquires (traffic for a trap policy), through a queue and an ev_async.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "esp/esp_wire.h"
#include "ike/ike_cookie.h"
#include "ike/ike_sa.h"
#include "util/log.h"

#define SESS_BUCKETS 16384
#define RXQ_MAX 4096
#define ACQ_MAX 65536
#define IKE_REQID_BASE DAEMON_IKE_REQID_BASE
#define MSG_BUF 65536

struct rx_item {
	struct rx_item *next;
	struct bt_addr src, dst;
	uint16_t sport, dport;
	size_t len;
	uint8_t data[];
};

struct ike_sess {
	struct ike_sess *next_local, *next_peer, *next_old, *next_red, *next_all, **prev_all, *next_conn, **prev_conn;
	struct ike_mgr *m;
	char conn[BT_NAME_MAX], child[BT_NAME_MAX];
	uint8_t conf_fp[32];         /* what the configuration said, to notice changes on reload */
	struct ike_sa sa;
	struct conf_ref *cref;       /* the configuration the engine borrows (sa.conf), shared */
	struct bt_addr contact;      /* counted in the manager's contacts (initiator), family 0 = not */
	uint64_t local_key;          /* our SPI, once known (0: not in the local table) */
	uint64_t old_key;            /* our SPI of the rekeyed IKE SA until its delete completes */
	uint64_t red_key;            /* our SPI of the redundant IKE SA of a rekey collision, until deleted */
	bool in_peer_table;
	struct bt_addr local, remote;
	uint16_t lport, rport;
	bool natt;                   /* IKE and ESP on the NAT-T port */
	uint8_t *req;                /* our request in flight, for retransmission */
	size_t req_len;
	unsigned tries;
	ev_timer rtx, dpd, ka, irekey, want_w;
	struct sess_child *ch[IKE_CHILD_MAX]; /* the data plane's side of the engine's sa.child[k] */
	const struct ike_conf **alt; /* responder, connection with several children: each child's
				      * configuration (held references), for sa.child_confs */
	uint8_t n_alt;
	uint32_t want;               /* children (bit j: the connection's children[j]) to bring up with
				      * CREATE_CHILD_SA once the IKE SA is up and idle */
	struct conf_ref *creating;   /* the configuration of the new Child SA we asked for (held) */
	uint64_t rekeys;
	double started, established;
	uint64_t last_in_packets;
	bool half_open, closing;
	/* MOBIKE, original initiator: where our requests go while a path is tested (tx_override), the
	 * path under test, and what waits for the request slot */
	bool tx_override, mob_update, mob_recheck, mob_addrs, probe_abandoned;
	struct bt_addr tx_local, tx_remote, probe_local, probe_remote;
	uint16_t tx_rport, probe_lport, probe_rport;
	uint64_t moves;
	double moved_at;
};

/* A Child SA of a session as the data plane has it: its SAs, its outbound policy, its rekey timer. */
struct sess_child {
	struct ike_sess *s;
	char name[BT_NAME_MAX];
	struct conf_ref *cref;       /* the engine configuration it was made for (held) */
	bool installed, closing;     /* closing: our delete of it is owed or in flight */
	bool owe_old_delete;         /* our rekey made the new one: we delete the old one */
	uint32_t spi_in, spi_out, reqid;
	uint32_t old_spi_in;         /* the rekeyed child's inbound SA, until its delete completes */
	struct esp_sa *next_out;     /* rekey responder: the new outbound SA, used once the old child is gone */
	uint64_t rekeys;
	struct bt_ts *pol_ts;        /* the Child SA's outbound policy: pol_nl local then pol_nr remote */
	uint8_t pol_nl, pol_nr;
	uint32_t pol_prio;
	_Atomic uint64_t pol_hits;   /* its hit counter (the SPD's copy points here) */
	ev_timer rekey;
};

/* One engine configuration, shared by every session of a connection/child with the same
 * fingerprint; it holds its own references to the certificates, so a reload can free the old
 * configuration while sessions go on. */
struct conf_ref {
	struct conf_ref *next;
	unsigned refs;
	uint8_t fp[32];
	char child[BT_NAME_MAX];     /* the child's name (in the fingerprint) */
	struct ike_cred cred;
	struct ike_conf conf;      /* its lists in lists[] */
	_Alignas(max_align_t) unsigned char lists[];
};

#define CONF_BUCKETS 4096

/* IKE SAs we initiated per peer address, for INITIAL_CONTACT. */
struct contact {
	struct bt_addr a;
	uint32_t n;
};
#define CONTACTS 16384

struct ike_mgr {
	struct contact contacts[CONTACTS];
	struct conf_ref *confs[CONF_BUCKETS];
	struct daemon *d;
	struct ike_sess *by_local[SESS_BUCKETS], *by_peer[SESS_BUCKETS], *by_old[SESS_BUCKETS], *by_red[SESS_BUCKETS],
		*by_conn[SESS_BUCKETS], *all;
	size_t n_sess, n_half_open;
	int fd4, fd6;
	ev_io io4, io6;
	ev_async async;
	pthread_mutex_t qlock;
	struct rx_item *qhead, **qtail;
	size_t qlen;
	_Atomic uint8_t acq[ACQ_MAX];
	_Atomic bool any_acq;
	uint32_t next_reqid;
	struct ike_cookie_gen cookie;
	struct ike_stats st;
	struct netmon *nm;           /* address/link/route changes, when a connection has MOBIKE */
	uint8_t out[MSG_BUF];
};

static double now_s(struct ike_mgr *m) { return ev_now(m->d->loop); }

static int rng_fill(void *arg, uint8_t *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}
static const struct ike_rng rng = {rng_fill, NULL};

static size_t bucket(uint64_t k) { return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 50) % SESS_BUCKETS; }

/* --- the session tables ------------------------------------------------------------------------ */

static void link_local(struct ike_sess *s, uint64_t key)
{
	if (s->local_key || !key)
		return;
	s->local_key = key;
	struct ike_sess **b = &s->m->by_local[bucket(key)];
	s->next_local = *b, *b = s;
}

static void link_peer(struct ike_sess *s)
{
	struct ike_sess **b = &s->m->by_peer[bucket(s->sa.spi_i)];
	s->next_peer = *b, *b = s;
	s->in_peer_table = true;
}

static void unlink_from(struct ike_sess **b, struct ike_sess *s, bool local)
{
	for (; *b; b = local ? &(*b)->next_local : &(*b)->next_peer)
		if (*b == s) {
			*b = local ? s->next_local : s->next_peer;
			return;
		}
}

static void link_old(struct ike_sess *s, uint64_t key)
{
	struct ike_sess **b = &s->m->by_old[bucket(key)];
	s->old_key = key;
	s->next_old = *b, *b = s;
}

static void unlink_old(struct ike_sess *s)
{
	if (!s->old_key)
		return;
	for (struct ike_sess **b = &s->m->by_old[bucket(s->old_key)]; *b; b = &(*b)->next_old)
		if (*b == s) {
			*b = s->next_old;
			break;
		}
	s->old_key = 0;
}

static void link_red(struct ike_sess *s, uint64_t key)
{
	struct ike_sess **b = &s->m->by_red[bucket(key)];
	s->red_key = key;
	s->next_red = *b, *b = s;
}

static void unlink_red(struct ike_sess *s)
{
	if (!s->red_key)
		return;
	for (struct ike_sess **b = &s->m->by_red[bucket(s->red_key)]; *b; b = &(*b)->next_red)
		if (*b == s) {
			*b = s->next_red;
			break;
		}
	s->red_key = 0;
}

static struct ike_sess *find_red(struct ike_mgr *m, uint64_t spi)
{
	for (struct ike_sess *s = m->by_red[bucket(spi)]; s; s = s->next_red)
		if (s->red_key == spi)
			return s;
	return NULL;
}

static struct ike_sess *find_old(struct ike_mgr *m, uint64_t spi)
{
	for (struct ike_sess *s = m->by_old[bucket(spi)]; s; s = s->next_old)
		if (s->old_key == spi)
			return s;
	return NULL;
}

static struct ike_sess *find_local(struct ike_mgr *m, uint64_t spi, bool initiator)
{
	for (struct ike_sess *s = m->by_local[bucket(spi)]; s; s = s->next_local)
		if (s->local_key == spi && s->sa.initiator == initiator)
			return s;
	return NULL;
}

/* A responder's SA by the initiator's SPI and address (IKE_SA_INIT retransmissions). */
static struct ike_sess *find_peer(struct ike_mgr *m, uint64_t spi_i, const struct bt_addr *src)
{
	for (struct ike_sess *s = m->by_peer[bucket(spi_i)]; s; s = s->next_peer)
		if (s->sa.spi_i == spi_i && bt_addr_eq(&s->remote, src))
			return s;
	return NULL;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

/* Connections by name: an open-addressing index of the configuration in force, rebuilt when it
 * changes (ike_mgr_reconfigured); 10,000 connections make a linear search the hot spot. */
static struct {
	const struct bt_config *cfg;
	uint32_t *slot; /* index + 1, 0 = empty */
	size_t mask;
} conn_index;

static void index_conns(const struct bt_config *cfg)
{
	size_t cap = 16;
	while (cap < 2 * cfg->n_conns)
		cap *= 2;
	free(conn_index.slot);
	conn_index.cfg = NULL;
	if (!(conn_index.slot = calloc(cap, sizeof(*conn_index.slot))))
		return; /* linear lookups then */
	conn_index.mask = cap - 1;
	for (size_t i = 0; i < cfg->n_conns; i++) {
		size_t k = name_hash(cfg->conns[i].name) & conn_index.mask;
		while (conn_index.slot[k])
			k = (k + 1) & conn_index.mask;
		conn_index.slot[k] = (uint32_t)i + 1;
	}
	conn_index.cfg = cfg;
}

static const struct cfg_conn *conn_by_name(const struct bt_config *cfg, const char *name)
{
	if (conn_index.cfg == cfg) {
		for (size_t k = name_hash(name) & conn_index.mask; conn_index.slot[k]; k = (k + 1) & conn_index.mask)
			if (!strcmp(cfg->conns[conn_index.slot[k] - 1].name, name))
				return &cfg->conns[conn_index.slot[k] - 1];
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_conns; i++)
		if (!strcmp(cfg->conns[i].name, name))
			return &cfg->conns[i];
	return NULL;
}

static const struct cfg_child *child_by_name(const struct cfg_conn *c, const char *name)
{
	for (size_t j = 0; c && j < c->n_children; j++)
		if (!strcmp(c->children[j].name, name))
			return &c->children[j];
	return NULL;
}

/* --- from configuration to engine -------------------------------------------------------------- */

static int conf_from(const struct bt_config *cfg, const struct cfg_conn *c, const struct cfg_child *ch,
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

static void fingerprint(const struct cfg_conn *c, const struct cfg_child *ch, const struct ike_conf *k, uint8_t out[32])
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

/* --- sending ----------------------------------------------------------------------------------- */

static void send_one(struct ike_sess *s, const uint8_t *msg, size_t len);

/* Send what the engine produced: one message, or fragments back to back (each a whole IKE
 * message with its own length). */
/* Where a message of s goes: its path, or the path under test. */
struct ike_dest {
	const struct bt_addr *local, *remote;
	uint16_t rport;
	bool natt;
};

static void send_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len);

static void send_raw_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len)
{
	size_t off = 0;
	while (off + 28 <= len) {
		size_t l = (size_t)msg[off + 24] << 24 | (size_t)msg[off + 25] << 16 | (size_t)msg[off + 26] << 8 |
			   msg[off + 27];
		if (l < 28 || l > len - off)
			break;
		if (t)
			send_to(s, t, msg + off, l);
		else
			send_one(s, msg + off, l);
		off += l;
	}
}

static void send_raw(struct ike_sess *s, const uint8_t *msg, size_t len) { send_raw_to(s, NULL, msg, len); }

static void send_one(struct ike_sess *s, const uint8_t *msg, size_t len)
{
	struct ike_dest t = {s->tx_override ? &s->tx_local : &s->local, s->tx_override ? &s->tx_remote : &s->remote,
			     s->tx_override ? s->tx_rport : s->rport, s->natt};
	send_to(s, &t, msg, len);
}

static void send_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len)
{
	struct ike_mgr *m = s->m;
	int rc;
	if (len > 18 && msg[18] >= IKE_SA_INIT && msg[18] <= IKE_INFORMATIONAL)
		m->st.tx_exchange[msg[18] - IKE_SA_INIT]++;
	if (t->natt) {
		rc = dp_send_ike(m->d->dp, msg, len, t->local, t->remote, t->rport);
	} else {
		int fd = t->remote->family == AF_INET6 ? m->fd6 : m->fd4;
		struct sockaddr_storage ss;
		socklen_t sl = bt_addr_to_sockaddr(t->remote, t->rport, &ss);
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
		struct msghdr mh = {.msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1};
		memset(&ctl, 0, sizeof(ctl));
		if (t->local->family == t->remote->family) {
			struct cmsghdr *cm;
			mh.msg_control = ctl.buf;
			if (t->local->family == AF_INET) {
				struct in_pktinfo pi = {0};
				memcpy(&pi.ipi_spec_dst, t->local->b, 4);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = IPPROTO_IP, cm->cmsg_type = IP_PKTINFO, cm->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
			} else {
				struct in6_pktinfo pi = {0};
				memcpy(&pi.ipi6_addr, t->local->b, 16);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = IPPROTO_IPV6, cm->cmsg_type = IPV6_PKTINFO, cm->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
			}
		}
		rc = fd < 0 ? -EAFNOSUPPORT : sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
	}
	if (rc) {
		m->st.tx_errors++;
		bt_debug("IKE %s: send to port %u failed: %s", s->conn, t->rport, strerror(-rc));
	} else {
		m->st.tx++;
	}
}

static double rtx_timeout(const struct ike_mgr *m, unsigned tries)
{
	const struct bt_config *c = m->d->cfg;
	return c->retransmit_timeout_ms / 1000.0 * pow(c->retransmit_base_milli / 1000.0, tries);
}

/* Send a request of ours and keep it for retransmission. */
static void send_request(struct ike_sess *s, const uint8_t *msg, size_t len)
{
	free(s->req);
	s->req = malloc(len);
	s->req_len = s->req ? len : 0;
	if (s->req)
		memcpy(s->req, msg, len);
	s->tries = 0;
	send_raw(s, msg, len);
	ev_timer_stop(s->m->d->loop, &s->rtx);
	ev_timer_set(&s->rtx, rtx_timeout(s->m, 0), 0);
	ev_timer_start(s->m->d->loop, &s->rtx);
}

static void request_done(struct ike_sess *s)
{
	s->tx_override = false;
	ev_timer_stop(s->m->d->loop, &s->rtx);
	free(s->req);
	s->req = NULL;
	s->req_len = 0;
}

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

static void uninstall(struct ike_sess *s, struct sess_child *sc)
{
	if (!sc || !sc->installed)
		return;
	struct dataplane *dp = s->m->d->dp;
	struct spd_policy p;
	child_policy(s, sc, &p);
	dp_pol_del(dp, &p); /* first: no packet finds the policy without its SA */
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

/* The inbound and outbound ESP SAs of a negotiated child (sa[0] in, sa[1] out), for sc->reqid. */
static int build_sas(struct ike_sess *s, struct sess_child *sc, const struct ike_child *k, struct esp_sa *sa[2])
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = conn_by_name(m->d->cfg, s->conn);
	const struct cfg_child *ch = child_by_name(c, sc->name);
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
	}
	return 0;
fail:
	free_sa(sa[0]), free_sa(sa[1]);
	sa[0] = sa[1] = NULL;
	return -1;
}

static void arm_rekey(struct ike_sess *s, struct sess_child *sc)
{
	const struct cfg_child *ch = child_by_name(conn_by_name(s->m->d->cfg, s->conn), sc->name);
	ev_timer_stop(s->m->d->loop, &sc->rekey);
	if (!ch || !ch->soft.seconds)
		return;
	/* a little jitter keeps two peers with the same rekey_time from colliding every time */
	double j = (double)(rand() % 1000) / 1000.0 * (ch->soft.seconds > 10 ? 2.0 : 0.2);
	ev_timer_set(&sc->rekey, (double)ch->soft.seconds - j, 0);
	ev_timer_start(s->m->d->loop, &sc->rekey);
}

static int install(struct ike_sess *s, struct sess_child *sc, const struct ike_child *k)
{
	struct ike_mgr *m = s->m;
	struct esp_sa *sa[2];
	const struct cfg_child *ch = child_by_name(conn_by_name(m->d->cfg, s->conn), sc->name);
	bool ini = s->sa.initiator;
	sc->reqid = m->next_reqid++;
	if (m->next_reqid < IKE_REQID_BASE)
		m->next_reqid = IKE_REQID_BASE;
	if (!ch || build_sas(s, sc, k, sa) != 0)
		return -1;
	sc->spi_in = sa[0]->spi, sc->spi_out = sa[1]->spi;
	if (dp_sa_add(m->d->dp, sa[0]) != 0) {
		bt_err("IKE %s: inbound SPI 0x%08x already in use", s->conn, sc->spi_in);
		goto fail;
	}
	sa[0] = NULL;
	if (dp_sa_add(m->d->dp, sa[1]) != 0) {
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
		dp_sa_del(m->d->dp, sc->spi_in, ESP_DIR_IN);
		dp_sa_del(m->d->dp, sc->spi_out, ESP_DIR_OUT);
		return -1;
	}
	memcpy(sc->pol_ts, ini ? k->ts_i : k->ts_r, sc->pol_nl * sizeof(*sc->pol_ts));
	memcpy(sc->pol_ts + sc->pol_nl, ini ? k->ts_r : k->ts_i, sc->pol_nr * sizeof(*sc->pol_ts));
	struct spd_policy p;
	child_policy(s, sc, &p);
	if (dp_pol_add(m->d->dp, &p) != 0) {
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

/* A rekey produced a new child: its inbound SA goes in at once. The side whose rekey made it
 * switches outbound now (the peer installed everything before answering) and deletes the old one;
 * the other side switches when the old child is deleted, so that nothing arrives before the peer
 * can take it. */
static void install_next(struct ike_sess *s, int k)
{
	struct ike_mgr *m = s->m;
	struct ike_child *c = s->sa.child[k];
	struct sess_child *sc = s->ch[k];
	bool we_started = c->next_ours;
	struct esp_sa *sa[2] = {NULL, NULL};
	if (c->red)
		bt_info("IKE %s/%s: both ends rekeyed at once (RFC 7296 2.8.1): %s new Child SA stays, %s the other",
			s->conn, sc ? sc->name : "?", we_started ? "ours" : "the peer's", c->red_delete ? "we delete" : "the peer deletes");
	if (!sc || !sc->installed || build_sas(s, sc, c->next, sa) != 0 || dp_sa_add(m->d->dp, sa[0]) != 0) {
		bt_err("IKE %s: cannot install the rekeyed Child SA", s->conn);
		free_sa(sa[0]); /* not taken by the SAD */
		free_sa(sa[1]);
		ike_child_promote(&s->sa, c); /* keep the engine consistent; the SA will be deleted */
		return;
	}
	uint32_t new_in = sa[0]->spi, new_out = sa[1]->spi;
	sc->old_spi_in = sc->spi_in;
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
static void retire_old(struct ike_sess *s, struct sess_child *sc)
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

/* --- rebind: the one way an IKE SA and its Child SAs change outer addresses ------------------- */

/* Move the session to a new path: the IKE SA's addresses (engine and session) and every ESP SA of
 * its Child SAs, each changed atomically in the data plane. SPIs, keys, sequence numbers, replay
 * windows and lifetimes stay. */
static void sess_rebind(struct ike_sess *s, const struct bt_addr *local, uint16_t lport, const struct bt_addr *remote,
			uint16_t rport, bool natt)
{
	struct ike_mgr *m = s->m;
	char a[64], b[64], c[64], e[64];
	bt_info("IKE %s: rebind %s:%u -> %s:%u  to  %s:%u -> %s:%u%s", s->conn, bt_addr_str(&s->local, a, sizeof(a)),
		s->lport, bt_addr_str(&s->remote, b, sizeof(b)), s->rport, bt_addr_str(local, c, sizeof(c)), lport,
		bt_addr_str(remote, e, sizeof(e)), rport, natt ? " (UDP-encap)" : "");
	s->local = *local, s->remote = *remote, s->lport = lport, s->rport = rport, s->natt = natt;
	ike_sa_set_endpoints(&s->sa, local, lport, remote, rport);
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

static bool any_installed(const struct ike_sess *s)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (s->ch[k] && s->ch[k]->installed)
			return true;
	return false;
}

/* MOBIKE: our UPDATE_SA_ADDRESSES for the current path, as soon as no other request is in flight. */
static void mobike_update(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	s->mob_update = true;
	if (s->req)
		return; /* sent when the request in flight is answered */
	size_t l = ike_mobike_update(&s->sa, m->out, sizeof(m->out));
	if (!l)
		return;
	s->mob_update = false;
	m->st.mobike_updates_sent++;
	send_request(s, m->out, l);
}

/* Move to a path known to work (or the only one left): rebind now, then tell the peer. A request
 * of ours in flight is retransmitted at once on the new path (RFC 4555 3.5); the update follows. */
static void mobike_move(struct ike_sess *s, const struct bt_addr *local, const struct bt_addr *remote)
{
	struct ike_mgr *m = s->m;
	sess_rebind(s, local, s->lport, remote, s->rport, s->natt);
	s->moves++;
	s->moved_at = now_s(m);
	m->st.mobike_moves++;
	if (s->req) {
		s->tx_override = false;
		s->tries = 0;
		send_raw(s, s->req, s->req_len);
		ev_timer_stop(m->d->loop, &s->rtx);
		ev_timer_set(&s->rtx, rtx_timeout(m, 0), 0);
		ev_timer_start(m->d->loop, &s->rtx);
	}
	mobike_update(s);
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
			if (p->addr.family != remote->family || p->len != (p->addr.family == AF_INET6 ? 128 : 32))
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
	const struct cfg_conn *c = conn_by_name(m->d->cfg, s->conn);
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
	size_t l = ike_mobike_probe(&s->sa, m->out, sizeof(m->out));
	if (!l)
		return;
	bt_info("IKE %s: testing the path %s -> %s", s->conn, bt_addr_str(&local, a, sizeof(a)),
		bt_addr_str(&remote, b, sizeof(b)));
	s->probe_local = local, s->probe_remote = remote;
	s->probe_abandoned = false;
	m->st.mobike_probes++;
	s->tx_override = true, s->tx_local = local, s->tx_remote = remote, s->tx_rport = s->rport; /* that path only */
	send_request(s, m->out, l);
}

/* Our other usable addresses of local_addrs (single addresses only), for ADDITIONAL_*_ADDRESS.
 * Returns true if the list changed. */
static bool my_addrs_refresh(struct ike_sess *s)
{
	const struct cfg_conn *c = conn_by_name(s->m->d->cfg, s->conn);
	struct bt_addr v[IKE_PEER_ADDRS];
	uint8_t n = 0;
	for (unsigned k = 0; c && c->mobike && k < c->n_local_addrs && n < IKE_PEER_ADDRS; k++) {
		const struct bt_prefix *p = &c->local_addrs[k];
		if (p->len == (p->addr.family == AF_INET6 ? 128 : 32) && !bt_addr_eq(&p->addr, &s->local) &&
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
		send_request(s, s->m->out, l);
	}
}

/* More than one local address in local_addrs: worth announcing. */
static bool multi_addr(const struct cfg_conn *c)
{
	unsigned n = 0;
	for (unsigned k = 0; c && k < c->n_local_addrs; k++)
		n += c->local_addrs[k].len == (c->local_addrs[k].addr.family == AF_INET6 ? 128 : 32);
	return c && c->mobike && n > 1;
}

/* MOBIKE, original initiator: the peer stopped answering on this path with no local change to
 * explain it (a failure further away). Move to another local address that is up and has a route,
 * the next one of local_addrs after the current one; the caller retransmits there (the count of
 * tries goes on: a dead peer is still found dead) and the update follows the answer. Returns true
 * if it moved. */
static bool mobike_failover(struct ike_sess *s)
{
	const struct cfg_conn *c = conn_by_name(s->m->d->cfg, s->conn);
	if (!c || !s->sa.mobike || !s->sa.mobike_initiator || s->sa.state != IKE_ST_ESTABLISHED)
		return false;
	unsigned n = c->n_local_addrs, cur = n;
	for (unsigned k = 0; k < n; k++)
		if (bt_addr_eq(&c->local_addrs[k].addr, &s->local))
			cur = k;
	for (unsigned j = 1; j <= n; j++) {
		const struct bt_prefix *p = &c->local_addrs[(cur == n ? j - 1 : cur + j) % n];
		struct bt_addr via;
		if (p->len != (p->addr.family == AF_INET6 ? 128 : 32) || p->addr.family != s->remote.family ||
		    bt_addr_eq(&p->addr, &s->local) || !netmon_addr_usable(&p->addr) ||
		    netmon_route_src(&p->addr, &s->remote, &via) != 0)
			continue;
		char a[64];
		bt_info("IKE %s: no answer on the current path; trying %s", s->conn, bt_addr_str(&p->addr, a, sizeof(a)));
		s->m->st.mobike_failovers++;
		struct bt_addr l = p->addr, r = s->remote;
		sess_rebind(s, &l, s->lport, &r, s->rport, s->natt);
		s->moves++;
		s->moved_at = now_s(s->m);
		s->m->st.mobike_moves++;
		s->mob_update = true;
		return true;
	}
	return false;
}

static void path_changed(void *arg)
{
	struct ike_mgr *m = arg;
	m->st.path_events++;
	for (struct ike_sess *s = m->all; s; s = s->next_all) {
		mobike_check(s);
		if (s->sa.mobike && s->sa.state == IKE_ST_ESTABLISHED && multi_addr(conn_by_name(m->d->cfg, s->conn)) &&
		    my_addrs_refresh(s))
			mobike_addresses(s);
	}
}

static void rekey_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void irekey_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void arm_ike_rekey(struct ike_sess *s)
{
	const struct cfg_conn *c = conn_by_name(s->m->d->cfg, s->conn);
	ev_timer_stop(s->m->d->loop, &s->irekey);
	if (!c || !c->ike_rekey_time)
		return;
	double j = (double)(rand() % 1000) / 1000.0 * (c->ike_rekey_time > 10 ? 2.0 : 0.2);
	ev_timer_set(&s->irekey, (double)c->ike_rekey_time - j, 0);
	ev_timer_start(s->m->d->loop, &s->irekey);
}

static int start_ike_rekey(struct ike_sess *s)
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
	send_request(s, m->out, len);
	return 0;
}

static void irekey_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	if (s->sa.state == IKE_ST_ESTABLISHED && !s->closing)
		start_ike_rekey(s);
}

/* Start a Child SA rekey now (or a little later if an exchange is in flight). */
static int start_rekey(struct ike_sess *s, int k)
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
	send_request(s, m->out, len);
	return 0;
}

static int slot_of(const struct ike_sess *s, const struct sess_child *sc)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		if (sc && s->ch[k] == sc)
			return k;
	return -1;
}

static void rekey_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sess_child *sc = w->data;
	struct ike_sess *s = sc->s;
	int k = slot_of(s, sc);
	if (s->sa.state == IKE_ST_ESTABLISHED && sc->installed && !sc->closing && k >= 0 && s->sa.child[k])
		start_rekey(s, k);
}

/* --- sessions ---------------------------------------------------------------------------------- */

static void rtx_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void dpd_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void ka_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void want_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void child_down(struct ike_sess *s, int k);

/* The count of our IKE SAs with peer a, changed by delta. Open addressing; a slot is never freed
 * (its count drops to 0), and a full table answers 1 (no INITIAL_CONTACT: the safe side). */
static uint32_t contacts(struct ike_mgr *m, const struct bt_addr *a, int delta)
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

static void conf_put(struct ike_mgr *m, struct conf_ref *r)
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
static struct conf_ref *child_ref(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch, char *err,
				  size_t errlen)
{
	struct ike_conf k;
	uint8_t fp[32];
	if (conf_from(m->d->cfg, c, ch, &k, err, errlen))
		return NULL;
	fingerprint(c, ch, &k, fp);
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
		conf_put(s->m, ref_of(s->alt[i]));
	free(s->alt);
	s->alt = NULL, s->n_alt = 0;
	s->sa.child_confs = NULL, s->sa.n_child_confs = 0;
}

/* The children of its connection a Child SA the peer asks for may be made for (the first whose
 * selectors fit, as in IKE_AUTH), when there is more than one. */
static void set_alt(struct ike_sess *s, const struct cfg_conn *c)
{
	char err[160];
	drop_alt(s);
	if (c->n_children < 2)
		return;
	size_t n = c->n_children < 255 ? c->n_children : 255;
	if (!(s->alt = calloc(n, sizeof(*s->alt))))
		return;
	for (size_t j = 0; j < n; j++) {
		struct conf_ref *r = child_ref(s->m, c, &c->children[j], err, sizeof(err));
		if (r)
			s->alt[s->n_alt++] = &r->conf;
	}
	s->sa.child_confs = s->alt, s->sa.n_child_confs = s->n_alt;
}

static struct ike_sess *sess_new(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch,
				 bool initiator, char *err, size_t errlen)
{
	struct ike_sess *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->m = m;
	s->cref = child_ref(m, c, ch, err, errlen);
	if (!s->cref) {
		free(s);
		return NULL;
	}
	memcpy(s->conf_fp, s->cref->fp, sizeof(s->conf_fp));
	snprintf(s->conn, sizeof(s->conn), "%s", c->name);
	snprintf(s->child, sizeof(s->child), "%s", ch->name);
	ike_sa_init(&s->sa, &s->cref->conf, initiator, &rng);
	set_alt(s, c);
	ev_timer_init(&s->rtx, rtx_cb, 1, 0);
	ev_timer_init(&s->dpd, dpd_cb, 1, 0);
	ev_timer_init(&s->ka, ka_cb, m->d->cfg->keepalive_s, m->d->cfg->keepalive_s);
	ev_timer_init(&s->irekey, irekey_cb, 1, 0);
	ev_timer_init(&s->want_w, want_cb, 1, 0);
	s->rtx.data = s->dpd.data = s->ka.data = s->irekey.data = s->want_w.data = s;
	s->started = now_s(m);
	struct ike_sess **cb = &m->by_conn[name_hash(s->conn) % SESS_BUCKETS];
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

static void sess_free(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		child_down(s, k);
	drop_alt(s);
	conf_put(m, s->creating);
	ev_timer_stop(m->d->loop, &s->rtx);
	ev_timer_stop(m->d->loop, &s->dpd);
	ev_timer_stop(m->d->loop, &s->ka);
	ev_timer_stop(m->d->loop, &s->want_w);
	if (s->local_key)
		unlink_from(&m->by_local[bucket(s->local_key)], s, true);
	if (s->in_peer_table)
		unlink_from(&m->by_peer[bucket(s->sa.spi_i)], s, false);
	unlink_old(s);
	unlink_red(s);
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
		contacts(m, &s->contact, -1);
	m->n_sess--;
	free(s->req);
	ike_sa_free(&s->sa);
	conf_put(m, s->cref);
	free(s);
}

static void established(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = conn_by_name(m->d->cfg, s->conn);
	char a[64], prop[96];
	s->established = now_s(m);
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
		for (struct ike_sess *t = m->by_conn[name_hash(s->conn) % SESS_BUCKETS], *next; t; t = next) {
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
	if (c && c->dpd_delay) {
		ev_timer_set(&s->dpd, (double)c->dpd_delay, 0);
		ev_timer_start(m->d->loop, &s->dpd);
	}
	if (s->sa.nat_local && s->natt)
		ev_timer_start(m->d->loop, &s->ka);
	arm_ike_rekey(s);
}

/* --- Child SAs of a session ------------------------------------------------------------------- */

static uint32_t our_spi(const struct ike_sess *s, const struct ike_child *c)
{
	return s->sa.initiator ? c->spi_i : c->spi_r;
}

static int child_index(const struct cfg_conn *c, const char *name)
{
	for (size_t j = 0; c && j < c->n_children && j < 32; j++)
		if (!strcmp(c->children[j].name, name))
			return (int)j;
	return -1;
}

/* The engine made child k (IKE_AUTH or CREATE_CHILD_SA): into the data plane with it. */
static void child_up(struct ike_sess *s, int k)
{
	struct ike_child *c = s->sa.child[k];
	struct conf_ref *r = ref_of(c->conf);
	struct sess_child *sc = calloc(1, sizeof(*sc));
	int j = child_index(conn_by_name(s->m->d->cfg, s->conn), r->child);
	if (j >= 0)
		s->want &= ~(1u << j);
	if (!sc) {
		bt_err("IKE %s/%s: out of memory for the Child SA", s->conn, r->child);
		return;
	}
	sc->s = s;
	snprintf(sc->name, sizeof(sc->name), "%s", r->child);
	sc->cref = r;
	r->refs++;
	ev_timer_init(&sc->rekey, rekey_cb, 1, 0);
	sc->rekey.data = sc;
	s->ch[k] = sc;
	if (install(s, sc, c) != 0)
		bt_err("IKE %s/%s: the Child SA could not be installed", s->conn, sc->name);
}

static void child_down(struct ike_sess *s, int k)
{
	struct sess_child *sc = s->ch[k];
	if (!sc)
		return;
	uninstall(s, sc);
	ev_timer_stop(s->m->d->loop, &sc->rekey);
	free(sc->pol_ts);
	conf_put(s->m, sc->cref);
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
			send_request(s, m->out, len);
			return;
		}
	}
	const struct cfg_conn *c = conn_by_name(m->d->cfg, s->conn);
	if (!s->want || !c || ev_is_active(&s->want_w))
		return;
	for (size_t j = 0; j < c->n_children && j < 32; j++) {
		if (!(s->want & (1u << j)))
			continue;
		struct conf_ref *r = child_ref(m, c, &c->children[j], err, sizeof(err));
		size_t len = r ? ike_create_child(&s->sa, &r->conf, m->out, sizeof(m->out)) : 0;
		if (!len) {
			bt_warn("IKE %s/%s: cannot ask for the Child SA%s", s->conn, c->children[j].name,
				r ? " (the IKE SA holds all it can)" : "");
			conf_put(m, r);
			s->want &= ~(1u << j);
			continue;
		}
		s->creating = r;
		bt_info("IKE %s/%s: asking for the Child SA on IKE SA %016llx_i (CREATE_CHILD_SA)", s->conn,
			c->children[j].name, (unsigned long long)s->sa.spi_i);
		send_request(s, m->out, len);
		return;
	}
}

static void want_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	kick(w->data);
}

/* What the engine did to the Child SAs: install new and rekeyed ones, remove old and deleted ones,
 * then send what that leaves us to send. */
static void sync_children(struct ike_sess *s)
{
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct ike_child *c = s->sa.child[k];
		if (!c)
			continue;
		if (c->up) {
			c->up = false;
			child_up(s, k);
		}
		if (c->next_ready)
			install_next(s, k);
		c = s->sa.child[k];
		if (c->old_deleted) {
			c->old_deleted = false;
			retire_old(s, s->ch[k]);
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
static void sess_gone(struct ike_sess *s, bool peer_dead)
{
	struct ike_mgr *m = s->m;
	const struct cfg_conn *c = conn_by_name(m->d->cfg, s->conn);
	const struct cfg_child *ch = child_by_name(c, s->child);
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
	send_raw(s, s->req, s->req_len);
	ev_timer_set(w, rtx_timeout(m, s->tries), 0);
	ev_timer_start(loop, w);
}

/* Liveness: an empty INFORMATIONAL when nothing came from the peer for dpd_delay. */
static void dpd_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ike_sess *s = w->data;
	const struct cfg_conn *c = conn_by_name(s->m->d->cfg, s->conn);
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
			send_request(s, s->m->out, len);
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
	const struct cfg_conn *c = conn_by_name(d->cfg, conn);
	const struct cfg_child *ch = child ? child_by_name(c, child) : c && c->n_children ? &c->children[0] : NULL;
	if (!c || !c->ike || !ch) {
		snprintf(err, errlen, "no IKE connection%s '%s%s%s'", child ? "/child" : "", conn, child ? "/" : "",
			 child ? child : "");
		return -1;
	}
	/* an IKE SA of this connection carries the child already, or will (RFC 7296 1.3.1: a new Child
	 * SA goes on an existing IKE SA) */
	struct ike_sess *host = NULL;
	int j = child_index(c, ch->name);
	for (struct ike_sess *s = m->by_conn[name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
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
		if (c->remote_addrs[i].len == (c->remote_addrs[i].addr.family == AF_INET ? 32 : 128))
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
	s->sa.initial_contact = contacts(m, &rh->addr, 0) == 0;
	contacts(m, &rh->addr, +1);
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
	link_local(s, s->sa.spi_i);
	m->st.initiated++;
	bt_info("IKE %s/%s: initiating to %s", conn, ch->name, bt_addr_str(&s->remote, err, errlen));
	send_request(s, m->out, len);
	return 0;
}

int ike_mgr_rekey(struct daemon *d, const char *conn, const char *child, bool ike, char *err, size_t errlen)
{
	int n = 0;
	for (struct ike_sess *s = d->ike->by_conn[name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
		if (strcmp(s->conn, conn) || s->sa.state != IKE_ST_ESTABLISHED || s->closing)
			continue;
		if (ike) {
			start_ike_rekey(s);
			n++;
			continue;
		}
		/* one request at a time: the children after the first retry shortly (start_rekey) */
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			if (s->ch[k] && s->ch[k]->installed && !s->ch[k]->closing && (!child || !strcmp(child, s->ch[k]->name))) {
				start_rekey(s, k);
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
	const struct cfg_conn *c = conn_by_name(m->d->cfg, conn);
	int j = child_index(c, child);
	for (struct ike_sess *s = m->by_conn[name_hash(conn) % SESS_BUCKETS]; s; s = s->next_conn) {
		if (strcmp(s->conn, conn) || s->closing)
			continue;
		if (j >= 0 && (s->want & (1u << j)))
			s->want &= ~(1u << j), n++;
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			if (s->ch[k] && !s->ch[k]->closing && !strcmp(s->ch[k]->name, child)) {
				s->ch[k]->closing = true;
				uninstall(s, s->ch[k]);
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
	for (struct ike_sess *s = m->by_conn[name_hash(conn) % SESS_BUCKETS], *next; s; s = next) {
		next = s->next_conn;
		if (strcmp(s->conn, conn) || s->closing)
			continue;
		n++;
		s->closing = true;
		for (int k = 0; k < IKE_CHILD_MAX; k++)
			uninstall(s, s->ch[k]);
		size_t len = s->sa.state == IKE_ST_ESTABLISHED && !s->req
				     ? ike_informational(&s->sa, IKE_INFO_DELETE_IKE, m->out, sizeof(m->out))
				     : 0;
		if (len) {
			bt_info("IKE %s: deleting the IKE SA", conn);
			send_request(s, m->out, len); /* freed when answered or given up */
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

/* --- receiving --------------------------------------------------------------------------------- */

static const struct cfg_conn *match_conn(const struct bt_config *cfg, const struct bt_addr *src,
					 const struct bt_addr *dst)
{
	for (size_t i = 0; i < cfg->n_conns; i++) {
		const struct cfg_conn *c = &cfg->conns[i];
		bool r = false, l = false;
		if (!c->ike)
			continue;
		for (unsigned k = 0; k < c->n_remote_addrs && !r; k++)
			r = bt_prefix_contains(&c->remote_addrs[k], src);
		for (unsigned k = 0; k < c->n_local_addrs && !l; k++)
			l = bt_prefix_contains(&c->local_addrs[k], dst);
		if (r && l)
			return c;
	}
	return NULL;
}

/* RFC 7296 2.6: under load, answer IKE_SA_INIT without state until it echoes our cookie. Returns
 * true if the request may go on. */
static bool cookie_ok(struct ike_mgr *m, const uint8_t *msg, size_t len, const struct ike_hdr *h,
		      const struct ike_chain *c, const struct bt_addr *src, uint16_t sport, const struct bt_addr *dst,
		      uint16_t dport)
{
	const struct bt_config *cfg = m->d->cfg;
	if (m->n_half_open < cfg->cookie_threshold)
		return true;
	ike_cookie_tick(&m->cookie, (uint64_t)(now_s(m) * 1000));
	const struct ike_payload *np = ike_find(c, IKE_PL_NONCE, 0);
	if (!np)
		return false;
	struct ike_notify_payload n;
	if (c->n && c->pl[0].type == IKE_PL_NOTIFY && ike_parse_notify(&c->pl[0], &n) == IKE_PERR_OK &&
	    n.type == IKE_N_COOKIE &&
	    ike_cookie_verify(&m->cookie, np->body, np->len, src, h->spi_i, n.data, n.data_len))
		return true;
	uint8_t ck[IKE_COOKIE_LEN];
	if (ike_cookie_make(&m->cookie, np->body, np->len, src, h->spi_i, ck) != 0)
		return false;
	struct ike_builder b;
	struct ike_hdr rh = {.spi_i = h->spi_i, .exchange = IKE_SA_INIT, .flags = IKE_FLAG_RESPONSE};
	ike_build_begin(&b, m->out, sizeof(m->out), &rh);
	ike_put_notify(&b, 0, NULL, 0, IKE_N_COOKIE, ck, sizeof(ck));
	size_t olen = ike_build_end(&b);
	struct ike_sess tmp = {.m = m, .local = *dst, .remote = *src, .rport = sport,
			       .natt = dport == dp_udp_port(m->d->dp)};
	m->st.cookies_sent++;
	send_raw(&tmp, m->out, olen);
	return false;
}

static void mobike_events(struct ike_sess *s);

static void input(struct ike_mgr *m, const uint8_t *msg, size_t len, const struct bt_addr *src, uint16_t sport,
		  const struct bt_addr *dst, uint16_t dport)
{
	static struct ike_chain c;
	struct ike_hdr h;
	struct ike_sess *s = NULL;
	m->st.rx++;
	if (ike_parse(msg, len, &h, &c) != IKE_PERR_OK) {
		m->st.drop_malformed++;
		return;
	}
	bool from_initiator = h.flags & IKE_FLAG_INITIATOR, response = h.flags & IKE_FLAG_RESPONSE;
	bool natt = dport == dp_udp_port(m->d->dp);
	if (from_initiator && h.exchange == IKE_SA_INIT && !response && !h.spi_r) {
		s = find_peer(m, h.spi_i, src);
		if (!s) {
			const struct cfg_conn *cc = match_conn(m->d->cfg, src, dst);
			char err[160];
			if (!cc) {
				char a[64];
				m->st.drop_no_conn++;
				bt_info("IKE: IKE_SA_INIT from %s matches no connection", bt_addr_str(src, a, sizeof(a)));
				return;
			}
			if (!cookie_ok(m, msg, len, &h, &c, src, sport, dst, dport))
				return;
			s = sess_new(m, cc, &cc->children[0], false, err, sizeof(err));
			if (!s) {
				bt_warn("IKE %s: %s", cc->name, err);
				return;
			}
			s->local = *dst, s->remote = *src, s->lport = dport, s->rport = sport, s->natt = natt;
			ike_sa_set_endpoints(&s->sa, dst, dport, src, sport);
			s->half_open = true;
			m->n_half_open++;
		}
	} else {
		s = find_local(m, from_initiator ? h.spi_r : h.spi_i, !from_initiator);
		if (!s)
			s = find_old(m, h.spi_i) ? find_old(m, h.spi_i) : find_old(m, h.spi_r);
		if (!s)
			s = find_red(m, h.spi_i) ? find_red(m, h.spi_i) : find_red(m, h.spi_r);
		if (!s) {
			m->st.drop_unknown_spi++;
			return;
		}
	}
	enum ike_state before = s->sa.state;
	uint16_t group_before = s->sa.group;
	bool info_pending = s->sa.info_pending, ccs_pending = s->sa.ccs_pending;
	bool old_deleting = s->sa.old_ike.delete_pending, red_deleting = s->sa.red_ike && s->sa.red_ike->delete_pending;
	s->sa.now = (uint64_t)time(NULL); /* certificates are checked as of now */
	s->sa.rx_local = *dst, s->sa.rx_remote = *src, s->sa.rx_local_port = dport, s->sa.rx_remote_port = sport;
	if (s->sa.state != IKE_ST_ESTABLISHED && multi_addr(conn_by_name(m->d->cfg, s->conn)))
		my_addrs_refresh(s); /* announced in IKE_AUTH */
	size_t out = ike_process(&s->sa, msg, len, m->out, sizeof(m->out));
	enum ike_state after = s->sa.state;
	bool progressed = out || after != before || info_pending != s->sa.info_pending || ccs_pending != s->sa.ccs_pending ||
			  s->sa.old_ike_gone || s->sa.red_ike_gone;
	if (!progressed) {
		m->st.drop_ignored++;
		bt_debug("IKE %s: message ignored (exchange %u, id %u, state %s)", s->conn, h.exchange, h.msg_id,
			 ike_state_name(before));
		if (before == IKE_ST_IDLE)
			sess_free(s);
		return;
	}
	/* an authentic message: a NAT may have changed the peer's address or port (RFC 7296 2.23).
	 * With MOBIKE the addresses change only by UPDATE_SA_ADDRESSES (below); a NAT in front of the
	 * peer may still give it a new port. */
	bool moved = !bt_addr_eq(src, &s->remote) || sport != s->rport || !bt_addr_eq(dst, &s->local) || dport != s->lport;
	if (s->sa.addr_update) {
		s->sa.addr_update = false;
		m->st.mobike_updates_received++;
		sess_rebind(s, dst, dport, src, sport, natt);
	} else if (moved && after != IKE_ST_FAILED && (natt || !s->natt) &&
		   (!s->sa.mobike || (!s->sa.mobike_initiator && s->sa.nat_remote && bt_addr_eq(src, &s->remote)))) {
		if (any_installed(s))
			sess_rebind(s, dst, dport, src, sport, natt);
		else
			s->remote = *src, s->rport = sport, s->local = *dst, s->lport = dport, s->natt = natt;
	}
	if (s->sa.initiator) {
		if (before == IKE_ST_INIT_SENT && after == IKE_ST_AUTH_SENT) {
			link_local(s, s->sa.spi_i);
			/* NAT traversal: IKE_AUTH and ESP go to port 4500 (RFC 7296 2.23) */
			if (!s->natt && (s->sa.nat_local || s->sa.nat_remote || s->sa.conf->force_encap)) {
				s->natt = true;
				s->lport = dp_udp_port(m->d->dp);
				s->rport = ESP_UDP_PORT;
			}
			send_request(s, m->out, out);
			return;
		}
		if (before == IKE_ST_INIT_SENT && after == IKE_ST_INIT_SENT && out) {
			if (s->sa.group != group_before)
				bt_info("IKE %s: IKE_SA_INIT again (INVALID_KE_PAYLOAD: group %u)", s->conn, s->sa.group);
			else
				bt_info("IKE %s: IKE_SA_INIT again (COOKIE)", s->conn);
			send_request(s, m->out, out);
			return;
		}
	}
	if (out) {
		struct ike_dest back = {dst, src, sport, natt}; /* a response goes where the request came from */
		send_raw_to(s, &back, m->out, out);
		if (!s->sa.initiator && before == IKE_ST_IDLE && after == IKE_ST_INIT_DONE) {
			link_local(s, s->sa.spi_r);
			link_peer(s);
			ev_timer_set(&s->rtx, (double)m->d->cfg->half_open_timeout_s, 0);
			ev_timer_start(m->d->loop, &s->rtx);
		}
	}
	if (after == IKE_ST_FAILED) {
		bt_warn("IKE %s: negotiation failed: notify %u%s", s->conn, s->sa.error,
			s->sa.error == IKE_N_AUTHENTICATION_FAILED ? " (AUTHENTICATION_FAILED)"
			: s->sa.error == IKE_N_NO_PROPOSAL_CHOSEN ? " (NO_PROPOSAL_CHOSEN)"
			: s->sa.error == IKE_N_TS_UNACCEPTABLE ? " (TS_UNACCEPTABLE)"
			: s->sa.error == IKE_N_INVALID_KE_PAYLOAD ? " (INVALID_KE_PAYLOAD)" : "");
		m->st.failed++;
		sess_free(s);
		return;
	}
	if (after == IKE_ST_ESTABLISHED && before != IKE_ST_ESTABLISHED) {
		request_done(s);
		established(s);
		sync_children(s);
		return;
	}
	if (info_pending && !s->sa.info_pending)
		request_done(s); /* our INFORMATIONAL was answered */
	if (ccs_pending && !s->sa.ccs_pending) {
		request_done(s); /* our CREATE_CHILD_SA was answered */
		struct conf_ref *made = s->creating;
		s->creating = NULL;
		if (s->sa.ccs_error) {
			bool again = s->sa.ccs_error == IKE_N_TEMPORARY_FAILURE || s->sa.ccs_error == IKE_N_INVALID_KE_PAYLOAD;
			int k = 0;
			while (k < IKE_CHILD_MAX && (!s->sa.ccs_child || s->sa.child[k] != s->sa.ccs_child))
				k++;
			bt_warn("IKE %s/%s: the peer refused the %s (notify %u)%s", s->conn,
				made ? made->child : k < IKE_CHILD_MAX && s->ch[k] ? s->ch[k]->name : s->child,
				s->sa.ccs_ike ? "IKE SA rekey" : made ? "new Child SA" : "Child SA rekey", s->sa.ccs_error,
				again ? ": trying again shortly" : "");
			if (!made)
				m->st.rekey_failed++;
			ev_timer *t = s->sa.ccs_ike ? &s->irekey : made ? &s->want_w : k < IKE_CHILD_MAX && s->ch[k] ? &s->ch[k]->rekey : NULL;
			if (made && !again) {
				int j = child_index(conn_by_name(m->d->cfg, s->conn), made->child);
				if (j >= 0)
					s->want &= ~(1u << j);
			}
			if (again && t) {
				ev_timer_stop(m->d->loop, t);
				ev_timer_set(t, 0.2 + (double)(rand() % 800) / 1000.0, 0);
				ev_timer_start(m->d->loop, t);
			}
		}
		conf_put(m, made);
	}
	if (s->sa.ike_rekeyed) {
		/* new SPIs: index them; the old ones stay reachable until the old SA's delete is done */
		s->sa.ike_rekeyed = false;
		uint64_t old = s->local_key;
		unlink_from(&m->by_local[bucket(old)], s, true);
		s->local_key = 0;
		link_old(s, old);
		link_local(s, s->sa.initiator ? s->sa.spi_i : s->sa.spi_r);
		m->st.ike_rekeys++;
		bt_info("IKE %s: IKE SA rekeyed: now %016llx_i %016llx_r", s->conn, (unsigned long long)s->sa.spi_i,
			(unsigned long long)s->sa.spi_r);
		arm_ike_rekey(s);
		if (s->sa.red_ike) {
			/* both ends rekeyed at once (RFC 7296 2.8.2): the redundant SA is deleted by its maker */
			const struct ike_old_sa *r = s->sa.red_ike;
			link_red(s, r->initiator ? r->spi_i : r->spi_r);
			bt_info("IKE %s: both ends rekeyed the IKE SA at once (RFC 7296 2.8.2): %s, %s deletes the "
				"redundant %016llx_i", s->conn, s->sa.initiator ? "ours stays" : "the peer's stays",
				s->sa.red_ike_ours ? "we" : "the peer", (unsigned long long)r->spi_i);
		}
		/* the initiator of the surviving SA deletes the old one; the maker of a redundant one that */
		size_t dl = s->sa.initiator ? ike_delete_old_ike(&s->sa, m->out, sizeof(m->out))
					    : ike_delete_red_ike(&s->sa, m->out, sizeof(m->out));
		if (dl)
			send_request(s, m->out, dl);
	}
	if (s->sa.red_ike_gone) {
		s->sa.red_ike_gone = false;
		unlink_red(s);
		if (red_deleting)
			request_done(s);
		bt_debug("IKE %s: the redundant IKE SA is gone", s->conn);
	}
	if (s->sa.old_ike_gone) {
		s->sa.old_ike_gone = false;
		unlink_old(s);
		if (old_deleting)
			request_done(s);
		bt_debug("IKE %s: the old IKE SA is gone", s->conn);
	}
	if (after == IKE_ST_DELETED) {
		bt_info("IKE %s: IKE SA deleted%s", s->conn, response ? "" : " by the peer");
		sess_gone(s, false);
		return;
	}
	sync_children(s);
	mobike_events(s);
}

/* MOBIKE, original initiator: what an answer to our update or path test means, and what waited
 * for the request slot. */
static void mobike_events(struct ike_sess *s)
{
	struct ike_mgr *m = s->m;
	if (s->sa.update_done) {
		s->sa.update_done = false;
		if (s->sa.update_error) {
			bt_warn("IKE %s: the peer refused our address update (notify %u)", s->conn, s->sa.update_error);
		} else {
			bt_info("IKE %s: address update done in %.1f ms%s", s->conn, (now_s(m) - s->moved_at) * 1000,
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
	if (s->sa.addr_check) {
		/* responder: an update of the peer's came again from elsewhere. Move only once the peer
		 * answers there (return routability, RFC 4555 3.5 and 5.2): a replayed update goes nowhere */
		s->sa.addr_check = false;
		char a[64];
		size_t l = s->req ? 0 : ike_mobike_probe(&s->sa, m->out, sizeof(m->out));
		if (l) {
			bt_info("IKE %s: the peer's update came again from %s: checking that it answers there", s->conn,
				bt_addr_str(&s->sa.rr_remote, a, sizeof(a)));
			s->probe_local = s->sa.rr_local, s->probe_remote = s->sa.rr_remote;
			s->probe_lport = s->sa.rr_local_port, s->probe_rport = s->sa.rr_remote_port;
			s->probe_abandoned = false;
			m->st.mobike_probes++;
			s->tx_override = true, s->tx_local = s->probe_local, s->tx_remote = s->probe_remote;
			s->tx_rport = s->probe_rport;
			send_request(s, m->out, l);
		}
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

/* --- sockets and the worker queue -------------------------------------------------------------- */

static void worker_ike(void *arg, const uint8_t *msg, size_t len, const struct bt_addr *src, uint16_t sport,
		       const struct bt_addr *dst, uint16_t dport)
{
	struct ike_mgr *m = arg;
	if (len > IKE_MSG_MAX)
		return;
	struct rx_item *it = malloc(sizeof(*it) + len);
	if (!it)
		return;
	it->next = NULL, it->src = *src, it->dst = *dst, it->sport = sport, it->dport = dport, it->len = len;
	memcpy(it->data, msg, len);
	pthread_mutex_lock(&m->qlock);
	if (m->qlen >= RXQ_MAX) {
		m->st.drop_queue++;
		pthread_mutex_unlock(&m->qlock);
		free(it);
		return;
	}
	*m->qtail = it, m->qtail = &it->next;
	m->qlen++;
	pthread_mutex_unlock(&m->qlock);
	ev_async_send(m->d->loop, &m->async);
}

static void worker_acquire(void *arg, uint32_t reqid)
{
	struct ike_mgr *m = arg;
	if (reqid >= ACQ_MAX || atomic_exchange_explicit(&m->acq[reqid], 1, memory_order_relaxed))
		return;
	atomic_store(&m->any_acq, true);
	ev_async_send(m->d->loop, &m->async);
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct ike_mgr *m = w->data;
	pthread_mutex_lock(&m->qlock);
	struct rx_item *it = m->qhead;
	m->qhead = NULL, m->qtail = &m->qhead, m->qlen = 0;
	pthread_mutex_unlock(&m->qlock);
	while (it) {
		struct rx_item *next = it->next;
		input(m, it->data, it->len, &it->src, it->sport, &it->dst, it->dport);
		free(it);
		it = next;
	}
	if (atomic_exchange(&m->any_acq, false)) {
		const struct bt_config *cfg = m->d->cfg;
		for (size_t i = 0; i < cfg->n_conns; i++)
			for (size_t j = 0; j < cfg->conns[i].n_children; j++) {
				const struct cfg_child *ch = &cfg->conns[i].children[j];
				char err[160];
				if (ch->reqid >= ACQ_MAX || !atomic_exchange(&m->acq[ch->reqid], 0))
					continue;
				if (!cfg->conns[i].ike || ch->start_action != CFG_START_TRAP)
					continue;
				if (ike_mgr_initiate(m->d, cfg->conns[i].name, ch->name, err, sizeof(err)) == 0) {
					m->st.acquires++;
					bt_info("IKE %s/%s: traffic for the trap policy started the negotiation",
						cfg->conns[i].name, ch->name);
				}
			}
	}
}

static void sock_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ike_mgr *m = w->data;
	static uint8_t buf[IKE_MSG_MAX];
	for (int n = 0; n < 64; n++) {
		struct sockaddr_storage ss;
		union {
			char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_name = &ss, .msg_namelen = sizeof(ss), .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
		ssize_t r = recvmsg(w->fd, &mh, MSG_DONTWAIT);
		if (r < 0)
			return;
		struct bt_addr src, dst = {0};
		uint16_t sport;
		bt_addr_from_sockaddr((struct sockaddr *)&ss, &src, &sport);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;
				memcpy(&pi, CMSG_DATA(c), sizeof(pi));
				dst.family = AF_INET;
				memcpy(dst.b, &pi.ipi_addr, 4);
			} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
				struct in6_pktinfo pi;
				memcpy(&pi, CMSG_DATA(c), sizeof(pi));
				dst.family = AF_INET6;
				memcpy(dst.b, &pi.ipi6_addr, 16);
			}
		}
		if (mh.msg_flags & MSG_TRUNC) {
			m->st.drop_malformed++;
			continue;
		}
		input(m, buf, (size_t)r, &src, sport, &dst, m->d->cfg->ike_port);
	}
}

static int open_sock(int family, const struct bt_addr *bind_addr, uint16_t port, char *err, size_t errlen)
{
	int one = 1, fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	} else {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	}
	struct sockaddr_storage ss;
	struct bt_addr any = {.family = (uint8_t)family};
	socklen_t sl = bt_addr_to_sockaddr(bind_addr->family == family ? bind_addr : &any, port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		snprintf(err, errlen, "IKE port %u (%s): %s", port, family == AF_INET ? "IPv4" : "IPv6", strerror(errno));
		close(fd);
		return -2;
	}
	return fd;
}

/* OpenSSL loads its algorithms and seeds its random generator on first use: milliseconds, where a
 * key exchange takes 50 us. Pay that when the daemon starts, not in the first negotiation. */
static void warm_crypto(void)
{
	struct ike_dh *a = ike_dh_new(IKE_DH_X25519), *b = ike_dh_new(IKE_DH_X25519);
	uint8_t pub[32], sec[32], mac[32];
	size_t pl = sizeof(pub), sl = sizeof(sec);
	if (a && b && ike_dh_public(b, pub, &pl) == 0)
		ike_dh_shared(a, pub, pl, sec, &sl);
	ike_dh_free(a), ike_dh_free(b);
	ike_prf(IKE_PRF_HMAC_SHA2_256, pub, sizeof(pub), pub, sizeof(pub), NULL, 0, mac);
	OPENSSL_cleanse(sec, sizeof(sec));
}

int ike_mgr_start(struct daemon *d, char *err, size_t errlen)
{
	struct ike_mgr *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->d = d;
	m->fd4 = m->fd6 = -1;
	warm_crypto();
	m->next_reqid = IKE_REQID_BASE;
	pthread_mutex_init(&m->qlock, NULL);
	m->qtail = &m->qhead;
	if (ike_cookie_init(&m->cookie, (uint64_t)(ev_now(d->loop) * 1000), 120000) != 0) {
		snprintf(err, errlen, "cannot draw the cookie secret");
		free(m);
		return -1;
	}
	d->ike = m;
	if (d->cfg->ike_port) {
		m->fd4 = open_sock(AF_INET, &d->cfg->dp.bind_addr, d->cfg->ike_port, err, errlen);
		m->fd6 = open_sock(AF_INET6, &d->cfg->dp.bind_addr, d->cfg->ike_port, err, errlen);
		if (m->fd4 == -2 || m->fd6 == -2 || (m->fd4 < 0 && m->fd6 < 0)) {
			if (m->fd4 >= 0)
				close(m->fd4);
			if (m->fd6 >= 0)
				close(m->fd6);
			free(m);
			d->ike = NULL;
			return -1;
		}
		if (m->fd4 >= 0) {
			ev_io_init(&m->io4, sock_cb, m->fd4, EV_READ);
			m->io4.data = m;
			ev_io_start(d->loop, &m->io4);
		}
		if (m->fd6 >= 0) {
			ev_io_init(&m->io6, sock_cb, m->fd6, EV_READ);
			m->io6.data = m;
			ev_io_start(d->loop, &m->io6);
		}
	}
	ev_async_init(&m->async, async_cb);
	m->async.data = m;
	ev_async_start(d->loop, &m->async);
	dp_set_ike_cb(d->dp, worker_ike, m);
	dp_set_acquire_cb(d->dp, worker_acquire, m);
	char nerr[160];
	m->nm = netmon_new(d->loop, path_changed, m, nerr, sizeof(nerr));
	if (!m->nm)
		bt_warn("IKE: no address monitoring (MOBIKE will not follow address changes): %s", nerr);
	return 0;
}

/* After a (re)load: sessions whose connection is gone or changed are closed; children with
 * start_action = start are brought up. */
void ike_mgr_reconfigured(struct daemon *d)
{
	struct ike_mgr *m = d->ike;
	char err[160];
	index_conns(d->cfg);
	if (!m)
		return;
	for (struct ike_sess *s = m->all, *next; s; s = next) {
		next = s->next_all;
		const struct cfg_conn *c = conn_by_name(d->cfg, s->conn);
		const struct cfg_child *ch = child_by_name(c, s->child);
		struct ike_conf k;
		uint8_t fp[32];
		bool same = c && c->ike && ch && conf_from(d->cfg, c, ch, &k, err, sizeof(err)) == 0;
		if (same) {
			fingerprint(c, ch, &k, fp);
			same = !memcmp(fp, s->conf_fp, sizeof(fp));
			OPENSSL_cleanse(&k, sizeof(k));
		}
		/* each of its Child SAs as configured still */
		for (int j = 0; j < IKE_CHILD_MAX && same; j++) {
			const struct cfg_child *cj = s->ch[j] ? child_by_name(c, s->ch[j]->name) : NULL;
			if (!s->ch[j])
				continue;
			same = cj && conf_from(d->cfg, c, cj, &k, err, sizeof(err)) == 0;
			if (same) {
				fingerprint(c, cj, &k, fp);
				same = !memcmp(fp, s->ch[j]->cref->fp, sizeof(fp));
				OPENSSL_cleanse(&k, sizeof(k));
			}
		}
		if (same && !s->closing) {
			set_alt(s, c); /* children added to or dropped from the connection */
			s->want = 0;
		}
		if (!same && !s->closing) {
			bt_info("IKE %s: the connection changed or is gone: closing its IKE SA", s->conn);
			ike_mgr_terminate(d, s->conn, NULL, err, sizeof(err));
			/* terminate may have freed several, next among them: start over (the closed ones are
			 * skipped as closing, the freed ones are gone) */
			next = m->all;
		}
	}
	for (size_t i = 0; i < d->cfg->n_conns; i++)
		for (size_t j = 0; j < d->cfg->conns[i].n_children; j++)
			if (d->cfg->conns[i].ike && d->cfg->conns[i].children[j].start_action == CFG_START_START) {
				int rc = ike_mgr_initiate(d, d->cfg->conns[i].name, d->cfg->conns[i].children[j].name, err,
							  sizeof(err));
				if (rc != 0 && rc != -EALREADY)
					bt_warn("IKE: %s", err);
			}
}

void ike_mgr_stop(struct daemon *d)
{
	struct ike_mgr *m = d->ike;
	if (!m)
		return;
	/* tell peers, best effort: a delete each, not waited for */
	for (struct ike_sess *s = m->all; s; s = s->next_all)
		if (s->sa.state == IKE_ST_ESTABLISHED && !s->sa.info_pending) {
			size_t len = ike_informational(&s->sa, IKE_INFO_DELETE_IKE, m->out, sizeof(m->out));
			if (len)
				send_raw(s, m->out, len);
		}
	while (m->all)
		sess_free(m->all);
	netmon_free(m->nm);
	dp_set_ike_cb(d->dp, NULL, NULL);
	dp_set_acquire_cb(d->dp, NULL, NULL);
	dp_synchronize(d->dp);
	ev_async_stop(d->loop, &m->async);
	free(conn_index.slot);
	conn_index.slot = NULL, conn_index.cfg = NULL;
	if (m->fd4 >= 0) {
		ev_io_stop(d->loop, &m->io4);
		close(m->fd4);
	}
	if (m->fd6 >= 0) {
		ev_io_stop(d->loop, &m->io6);
		close(m->fd6);
	}
	for (struct rx_item *it = m->qhead, *n; it; it = n) {
		n = it->next;
		free(it);
	}
	ike_cookie_clear(&m->cookie);
	pthread_mutex_destroy(&m->qlock);
	free(m);
	d->ike = NULL;
}

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
			json_object_set_new(o, "established_s", json_real(now_s(m) - s->established));
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
	json_object_set_new(o, "rebinds", json_integer((json_int_t)t->rebinds));
	json_object_set_new(o, "path_events", json_integer((json_int_t)t->path_events));
	return o;
}

