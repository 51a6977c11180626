/* xfer.c — the transfer primitive: GET writes a live session's context (the daemon's part, the
 * engine's IKE SA and Child SAs from ike_ctx.c, each ESP SA's runtime state from sa_ctx.c) as
 * attributes and seals it; PUT opens one and installs the session without IKE_SA_INIT or
 * IKE_AUTH. The one serialisation of the context: migration, HA and key distribution use these. */
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>

#include "daemon/ike_internal.h"
#include "daemon/vip.h"
#include "daemon/xfer.h"
#include "ike/ike_ctx.h"

/* The sealed context: "BTCX", version, flags (0), then AES-256-GCM of the attributes with a
 * random nonce (nonce | ciphertext | tag), authenticated together with the header and the bind. */
#define CTX_VERSION 1
#define CTX_HDR 8
#define CTX_MAX (1u << 20)

/* Session attributes (top level) */
enum {
	XS_CONN = 1, XS_CHILD, XS_LOCAL, XS_REMOTE, XS_LPORT, XS_RPORT, XS_NATT, XS_IKE, XS_CHILD_SA, XS_AGE,
	XS_REKEYS, XS_MOVES, XS_NODE, XS_EXPORTED, XS_SETUP_US, XS_N_CHILD, XS_SEQ_JUMP,
};
/* Child SA attributes (inside XS_CHILD_SA) */
enum { XC_NAME = 1, XC_SLOT, XC_IKE, XC_ESP_IN, XC_ESP_OUT, XC_REKEYS };

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* --- AEAD -------------------------------------------------------------------------------------- */

int xfer_aead_seal(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		   const uint8_t *pt, size_t n, uint8_t *out)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	int l, ok = x && n <= INT_MAX && RAND_bytes(out, XFER_NONCE) == 1 &&
		    EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
		    (!aad_len || EVP_EncryptUpdate(x, NULL, &l, aad, (int)aad_len) == 1) &&
		    (!aad2_len || EVP_EncryptUpdate(x, NULL, &l, aad2, (int)aad2_len) == 1) &&
		    EVP_EncryptUpdate(x, out + XFER_NONCE, &l, pt, (int)n) == 1 &&
		    EVP_EncryptFinal_ex(x, out + XFER_NONCE + l, &l) == 1 &&
		    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, XFER_TAG, out + XFER_NONCE + n) == 1;
	EVP_CIPHER_CTX_free(x);
	return ok ? 0 : -1;
}

int xfer_aead_open(const uint8_t key[32], const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		   const uint8_t *in, size_t n, uint8_t *out)
{
	if (n < XFER_AEAD_OVERHEAD || n - XFER_AEAD_OVERHEAD > INT_MAX)
		return -1;
	size_t ct = n - XFER_AEAD_OVERHEAD;
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	int l, ok = x && EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
		    (!aad_len || EVP_DecryptUpdate(x, NULL, &l, aad, (int)aad_len) == 1) &&
		    (!aad2_len || EVP_DecryptUpdate(x, NULL, &l, aad2, (int)aad2_len) == 1) &&
		    EVP_DecryptUpdate(x, out, &l, in + XFER_NONCE, (int)ct) == 1 &&
		    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, XFER_TAG, (void *)(in + XFER_NONCE + ct)) == 1 &&
		    EVP_DecryptFinal_ex(x, out + l, &l) == 1;
	EVP_CIPHER_CTX_free(x);
	if (!ok)
		OPENSSL_cleanse(out, ct);
	return ok ? 0 : -1;
}

/* --- finding a session ------------------------------------------------------------------------- */

static bool parse_spi(const char *name, uint64_t *spi)
{
	if (!strncmp(name, "0x", 2))
		name += 2;
	if (strlen(name) != 16 || strspn(name, "0123456789abcdefABCDEF") != 16)
		return false;
	*spi = strtoull(name, NULL, 16);
	return true;
}

/* The session `name` names: a connection with exactly one IKE SA, or an IKE SPI (either side's). */
static struct ike_sess *find_sess(struct ike_mgr *m, const char *name, char *err, size_t errlen)
{
	uint64_t spi;
	struct ike_sess *found = NULL;
	unsigned n = 0;
	if (parse_spi(name, &spi)) {
		/* our SPI through the table IKE input uses; the peer's (rarer) by a walk */
		struct ike_sess *s = ikm_find_local(m, spi, true);
		if (!s)
			s = ikm_find_local(m, spi, false);
		for (struct ike_sess *t = m->all; !s && t; t = t->next_all)
			if (t->sa.spi_i == spi || t->sa.spi_r == spi)
				s = t;
		if (s && !s->closing)
			return s;
		fail(err, errlen, -1, "no IKE SA with SPI %016llx", (unsigned long long)spi);
		return NULL;
	}
	for (struct ike_sess *s = m->by_conn[ikm_name_hash(name) % SESS_BUCKETS]; s; s = s->next_conn)
		if (!strcmp(s->conn, name) && !s->closing && s->sa.state == IKE_ST_ESTABLISHED)
			found = s, n++;
	if (n == 1)
		return found;
	if (n == 0)
		fail(err, errlen, -1, "no established IKE SA of connection '%.64s'", name);
	else
		fail(err, errlen, -1, "connection '%.64s' has %u IKE SAs: name one by its SPI", name, n);
	return NULL;
}

/* Why s cannot be exported now, or NULL. */
static const char *sess_busy(const struct ike_sess *s)
{
	const char *why = ike_ctx_busy(&s->sa);
	if (why)
		return why;
	if (s->req)
		return "a request of ours is in flight";
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		const struct sess_child *sc = s->ch[k];
		if (sc && (sc->old_spi_in || sc->next_out || sc->closing))
			return "a Child SA rekey or delete is not finished";
		if (sc && sc->spi_collision)
			return "a Child SA waits for the rekey that gives it an SPI of its own";
		if (!sc != !s->sa.child[k] || (sc && !sc->installed))
			return "a Child SA is not installed";
	}
	return NULL;
}

static void info_of(const struct ike_sess *s, struct xfer_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->conn, sizeof(info->conn), "%s", s->conn);
	info->spi_i = s->sa.spi_i, info->spi_r = s->sa.spi_r;
	info->local = s->local, info->remote = s->remote, info->lport = s->lport, info->rport = s->rport;
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		info->children += s->ch[k] != NULL;
}

int xfer_locate(struct daemon *d, const char *name, struct xfer_info *info, char *err, size_t errlen)
{
	struct ike_sess *s = d->ike ? find_sess(d->ike, name, err, errlen) : NULL;
	if (!s)
		return -1;
	info_of(s, info);
	const char *busy = sess_busy(s);
	if (busy)
		return fail(err, errlen, -EBUSY, "IKE SA %016llx_i cannot be exported now: %s", (unsigned long long)s->sa.spi_i,
			    busy);
	return 0;
}

/* --- GET --------------------------------------------------------------------------------------- */

/* How far the receiver of our contexts jumps (at least 1: a migration's copy keeps its sender
 * below the first number the receiver sends). */
static uint64_t seq_jump(const struct daemon *d) { return d->cfg->cluster.seq_jump ? d->cfg->cluster.seq_jump : 1; }

static void write_ctx(struct ike_sess *s, struct esp_sa *sas[IKE_CHILD_MAX][2], struct wbuf *w)
{
	struct ike_mgr *m = s->m;
	uint64_t now = daemon_now();
	tlv_u64(w, XS_SEQ_JUMP, seq_jump(m->d)); /* the receiver jumps at least this far */
	tlv_bytes(w, XS_CONN, s->conn, strlen(s->conn));
	tlv_bytes(w, XS_CHILD, s->child, strlen(s->child));
	tlv_bytes(w, XS_NODE, m->d->cfg->cluster.name, strlen(m->d->cfg->cluster.name));
	tlv_u64(w, XS_EXPORTED, (uint64_t)time(NULL));
	tlv_addr(w, XS_LOCAL, &s->local), tlv_addr(w, XS_REMOTE, &s->remote);
	tlv_u16(w, XS_LPORT, s->lport), tlv_u16(w, XS_RPORT, s->rport), tlv_u8(w, XS_NATT, s->natt);
	tlv_u64(w, XS_AGE, (uint64_t)((ikm_now_s(m) - s->established) * 1e6)); /* microseconds */
	tlv_u64(w, XS_SETUP_US, (uint64_t)((s->established - s->started) * 1e6));
	tlv_u64(w, XS_REKEYS, s->rekeys), tlv_u64(w, XS_MOVES, s->moves);
	size_t at = tlv_open(w, XS_IKE);
	ike_ctx_write_sa(&s->sa, w);
	tlv_close(w, at);
	uint8_t n = 0;
	for (int k = 0; k < IKE_CHILD_MAX; k++)
		n += s->ch[k] != NULL;
	tlv_u8(w, XS_N_CHILD, n); /* so that a context cut before a child is not a shorter valid one */
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct sess_child *sc = s->ch[k];
		if (!sc)
			continue;
		size_t c = tlv_open(w, XS_CHILD_SA), x;
		tlv_bytes(w, XC_NAME, sc->name, strlen(sc->name));
		tlv_u8(w, XC_SLOT, (uint8_t)k), tlv_u64(w, XC_REKEYS, sc->rekeys);
		x = tlv_open(w, XC_IKE), ike_ctx_write_child(s->sa.child[k], w), tlv_close(w, x);
		x = tlv_open(w, XC_ESP_IN), esp_ctx_write(sas[k][0], w, now), tlv_close(w, x);
		x = tlv_open(w, XC_ESP_OUT), esp_ctx_write(sas[k][1], w, now), tlv_close(w, x);
		tlv_close(w, c);
	}
}

/* The attributes sealed into a new blob: header | nonce | ciphertext | tag. */
static int seal_ctx(const uint8_t key[32], const uint8_t *pt, size_t n, const uint8_t *bind, size_t bind_len,
		    uint8_t **out, size_t *out_len)
{
	uint8_t *b = malloc(CTX_HDR + n + XFER_AEAD_OVERHEAD);
	if (!b)
		return -1;
	memcpy(b, "BTCX", 4);
	b[4] = 0, b[5] = CTX_VERSION, b[6] = b[7] = 0;
	if (xfer_aead_seal(key, b, CTX_HDR, bind, bind_len, pt, n, b + CTX_HDR) != 0) {
		free(b);
		return -1;
	}
	*out = b, *out_len = CTX_HDR + n + XFER_AEAD_OVERHEAD;
	return 0;
}

/* The SAs of every child: borrowed from the data plane, or (detach) taken out of it. */
static int collect_sas(struct ike_sess *s, bool detach, struct esp_sa *sas[IKE_CHILD_MAX][2])
{
	const struct sad *sad = dp_sad(s->m->d->dp);
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		struct sess_child *sc = s->ch[k];
		if (!sc)
			continue;
		if (detach ? ikm_child_take(s, sc, sas[k]) != 0
			   : !(sas[k][0] = sad_lookup_in(sad, sc->spi_in)) || !(sas[k][1] = sad_lookup_out(sad, sc->reqid))) {
			while (detach && --k >= 0)
				if (s->ch[k])
					ikm_child_give_back(s, s->ch[k], sas[k]);
			return -1;
		}
	}
	return 0;
}

int xfer_get(struct daemon *d, const char *name, enum xfer_take take, const uint8_t *bind, size_t bind_len,
	     uint8_t **out, size_t *out_len, struct xfer_info *info, char *err, size_t errlen)
{
	struct ike_mgr *m = d->ike;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!d->cfg->cluster.has_key)
		return fail(err, errlen, -1, "no cluster key configured (cluster { key = ... }): a context never leaves unsealed");
	struct ike_sess *s = m ? find_sess(m, name, err, errlen) : NULL;
	if (!s)
		return -1;
	const char *busy = sess_busy(s);
	if (busy)
		return fail(err, errlen, -EBUSY, "IKE SA %016llx_i cannot be exported now: %s", (unsigned long long)s->sa.spi_i,
			    busy);
	bool detach = take == XFER_DETACH;
	struct esp_sa *sas[IKE_CHILD_MAX][2] = {{NULL}};
	if (collect_sas(s, detach, sas) != 0)
		return fail(err, errlen, -1, "the Child SAs of IKE SA %016llx_i are not all in the data plane",
			    (unsigned long long)s->sa.spi_i);
	uint64_t jump = seq_jump(d);
	for (int k = 0; take == XFER_HANDOVER && k < IKE_CHILD_MAX; k++)
		if (sas[k][1]) /* below what the context hands on: it holds at least this seq_out */
			atomic_store(&sas[k][1]->seq_limit, atomic_load(&sas[k][1]->seq_out) + jump - 1);
	struct wbuf w = {0};
	int rc = -1;
	for (size_t cap = 16384; cap <= CTX_MAX; cap *= 4) {
		OPENSSL_clear_free(w.p, w.cap);
		w = wbuf_init(malloc(cap), cap);
		if (!w.p)
			break;
		write_ctx(s, sas, &w);
		if (!w.overflow) {
			rc = seal_ctx(d->cfg->cluster.key, w.p, w.len, bind, bind_len, out, out_len);
			break;
		}
	}
	OPENSSL_clear_free(w.p, w.cap);
	if (rc != 0) {
		for (int k = 0; detach && k < IKE_CHILD_MAX; k++)
			if (s->ch[k])
				ikm_child_give_back(s, s->ch[k], sas[k]);
		return fail(err, errlen, -1, "the context of IKE SA %016llx_i could not be written",
			    (unsigned long long)s->sa.spi_i);
	}
	if (info)
		info_of(s, info);
	m->st.xfer_gets++;
	bt_info("IKE %s: context of IKE SA %016llx_i exported%s", s->conn, (unsigned long long)s->sa.spi_i,
		detach ? "; the session stops here" : "");
	if (detach) {
		for (int k = 0; k < IKE_CHILD_MAX; k++) {
			if (!s->ch[k])
				continue;
			for (int dir = 0; dir < 2; dir++)
				if (sas[k][dir]) {
					esp_sa_clear(sas[k][dir]);
					free(sas[k][dir]);
				}
			s->ch[k]->installed = false; /* its SAs and policy are gone already */
		}
		m->st.xfer_detached++;
		sess_free(s);
		cluster_release(d); /* Mono-LAN: the shared addresses go once no session here ends there */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (info)
		info->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	return 0;
}

/* --- PUT --------------------------------------------------------------------------------------- */

/* The context's top level, as read. */
struct ctx_top {
	char conn[BT_NAME_MAX], child[BT_NAME_MAX], node[BT_NAME_MAX];
	struct bt_addr local, remote;
	uint16_t lport, rport;
	bool natt;
	uint64_t age, setup, rekeys, moves, seq_jump;
	struct cur ike;
	struct cur child_sa[IKE_CHILD_MAX];
	unsigned n_child;
	uint8_t n_child_said;
	uint32_t seen;
};

static bool read_top_attr(struct ctx_top *t, uint16_t type, struct cur v)
{
	switch (type) {
	case XS_CONN: return tlv_get_str(v, t->conn, sizeof(t->conn)) && t->conn[0];
	case XS_CHILD: return tlv_get_str(v, t->child, sizeof(t->child)) && t->child[0];
	case XS_NODE: return tlv_get_str(v, t->node, sizeof(t->node));
	case XS_LOCAL: return tlv_get_addr(v, &t->local) && t->local.family;
	case XS_REMOTE: return tlv_get_addr(v, &t->remote) && t->remote.family == t->local.family;
	case XS_LPORT: return tlv_get_u16(v, &t->lport);
	case XS_RPORT: return tlv_get_u16(v, &t->rport);
	case XS_NATT: return tlv_get_bool(v, &t->natt);
	case XS_AGE: return tlv_get_u64(v, &t->age);
	case XS_SETUP_US: return tlv_get_u64(v, &t->setup);
	case XS_SEQ_JUMP: return tlv_get_u64(v, &t->seq_jump);
	case XS_REKEYS: return tlv_get_u64(v, &t->rekeys);
	case XS_MOVES: return tlv_get_u64(v, &t->moves);
	case XS_IKE: t->ike = v; return true;
	case XS_N_CHILD: return tlv_get_u8(v, &t->n_child_said) && t->n_child_said <= IKE_CHILD_MAX;
	case XS_CHILD_SA:
		if (t->n_child >= IKE_CHILD_MAX)
			return false;
		t->child_sa[t->n_child++] = v;
		return true;
	default: return true; /* a newer writer's attribute */
	}
}

#define XS_REQUIRED \
	((1u << XS_CONN) | (1u << XS_CHILD) | (1u << XS_LOCAL) | (1u << XS_REMOTE) | (1u << XS_IKE) | (1u << XS_N_CHILD))

static int read_top(struct cur c, struct ctx_top *t, char *err, size_t errlen)
{
	uint16_t type;
	struct cur v;
	int r;
	memset(t, 0, sizeof(*t));
	while ((r = tlv_next(&c, &type, &v)) > 0) {
		if (!read_top_attr(t, type, v))
			return fail(err, errlen, -1, "context attribute %u has a bad value", type);
		if (type < 32 && type != XS_CHILD_SA && (t->seen & (1u << type)))
			return fail(err, errlen, -1, "context attribute %u is repeated", type);
		if (type < 32)
			t->seen |= 1u << type;
	}
	if (r < 0)
		return fail(err, errlen, -1, "context attributes truncated");
	if ((t->seen & XS_REQUIRED) != XS_REQUIRED)
		return fail(err, errlen, -1, "context incomplete (no connection, addresses or IKE SA)");
	if (t->n_child != t->n_child_said)
		return fail(err, errlen, -1, "context incomplete (%u of its %u Child SAs)", t->n_child, t->n_child_said);
	return 0;
}

/* A Child SA of the context: its name, slot, engine part and both ESP SAs' state. */
struct ctx_child {
	char name[BT_NAME_MAX];
	uint8_t slot;
	uint64_t rekeys;
	struct cur ike, esp_in, esp_out;
	uint32_t seen;
};

static int read_child(struct cur c, struct ctx_child *t, char *err, size_t errlen)
{
	uint16_t type;
	struct cur v;
	int r;
	bool ok;
	memset(t, 0, sizeof(*t));
	while ((r = tlv_next(&c, &type, &v)) > 0) {
		switch (type) {
		case XC_NAME: ok = tlv_get_str(v, t->name, sizeof(t->name)) && t->name[0]; break;
		case XC_SLOT: ok = tlv_get_u8(v, &t->slot) && t->slot < IKE_CHILD_MAX; break;
		case XC_REKEYS: ok = tlv_get_u64(v, &t->rekeys); break;
		case XC_IKE: t->ike = v, ok = true; break;
		case XC_ESP_IN: t->esp_in = v, ok = true; break;
		case XC_ESP_OUT: t->esp_out = v, ok = true; break;
		default: ok = true;
		}
		if (!ok)
			return fail(err, errlen, -1, "Child SA attribute %u has a bad value", type);
		if (type < 32)
			t->seen |= 1u << type;
	}
	uint32_t need = (1u << XC_NAME) | (1u << XC_SLOT) | (1u << XC_IKE) | (1u << XC_ESP_IN) | (1u << XC_ESP_OUT);
	if (r < 0 || (t->seen & need) != need)
		return fail(err, errlen, -1, "Child SA attributes %s", r < 0 ? "truncated" : "incomplete");
	return 0;
}

/* A configuration with nothing behind it, for reading a context's engine part (the IKE SA and
 * its children) to check it or to learn its SPIs. */
static struct ike_conf *scratch_conf(void)
{
	static struct ike_conf conf;
	static struct ike_conf_room room;
	memset(&conf, 0, sizeof(conf));
	ike_conf_use_room(&conf, &room);
	return &conf;
}

int xfer_ctx_validate(const uint8_t *pt, size_t n, char *err, size_t errlen)
{
	struct ike_conf *conf = scratch_conf();
	struct ctx_top t;
	struct ctx_child cc;
	struct ike_sa sa;
	if (read_top(cur_init(pt, n), &t, err, errlen) != 0)
		return -1;
	ike_sa_init(&sa, conf, false, &ikm_rng);
	int rc = ike_ctx_read_sa(&sa, t.ike, err, errlen);
	ike_sa_free(&sa);
	for (unsigned i = 0; rc == 0 && i < t.n_child; i++) {
		if ((rc = read_child(t.child_sa[i], &cc, err, errlen)) != 0)
			break;
		struct ike_child *k = ike_ctx_read_child(conf, cc.ike, err, errlen);
		rc = k ? 0 : -1;
		ike_ctx_child_free(k);
		for (int dir = 0; rc == 0 && dir < 2; dir++) {
			struct esp_sa x;
			memset(&x, 0, sizeof(x));
			x.dir = dir ? ESP_DIR_OUT : ESP_DIR_IN;
			if (esp_ctx_read(&x, dir ? cc.esp_out : cc.esp_in, 0, 0) != 0)
				rc = fail(err, errlen, -1, "Child SA '%s': bad %s ESP state", cc.name, dir ? "outbound" : "inbound");
			esp_sa_clear(&x);
		}
	}
	return rc;
}

/* Is a an address of this host (one a socket can be bound to)? */
static bool addr_is_ours(const struct bt_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t sl = bt_addr_to_sockaddr(a, 0, &ss);
	int fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ours = fd >= 0 && bind(fd, (struct sockaddr *)&ss, sl) == 0;
	if (fd >= 0)
		close(fd);
	return ours;
}

static bool addr_is_shared(const struct cfg_cluster *cl, const struct bt_addr *a)
{
	for (unsigned i = 0; i < cl->n_shared; i++)
		if (bt_addr_eq(&cl->shared[i].addr, a))
			return true;
	return false;
}

/* Multi-LAN: our address for connection c in the family of the context's (first host entry of
 * local_addrs that this host has). */
static int our_local(const struct cfg_conn *c, const struct bt_addr *theirs, struct bt_addr *out)
{
	for (unsigned k = 0; k < c->n_local_addrs; k++) {
		const struct bt_prefix *p = &c->local_addrs[k];
		if (p->addr.family == theirs->family && bt_prefix_is_host(p) && addr_is_ours(&p->addr)) {
			*out = p->addr;
			return 0;
		}
	}
	return -1;
}

/* The children of the context into s and the data plane. */
static int put_children(struct ike_sess *s, const struct cfg_conn *c, const struct ctx_top *t, uint64_t jump,
			char *err, size_t errlen)
{
	struct ike_mgr *m = s->m;
	for (unsigned i = 0; i < t->n_child; i++) {
		struct ctx_child cc;
		if (read_child(t->child_sa[i], &cc, err, errlen) != 0)
			return -1;
		const struct cfg_child *ch = ikm_child_by_name(c, cc.name);
		if (!ch)
			return fail(err, errlen, -1, "child '%s' of connection '%s' is not configured here", cc.name, c->name);
		if (s->sa.child[cc.slot])
			return fail(err, errlen, -1, "two Child SAs of the context share slot %u", cc.slot);
		struct conf_ref *r = ikm_child_ref(m, c, ch, err, errlen);
		if (!r)
			return -1;
		struct ike_child *k = ike_ctx_read_child(&r->conf, cc.ike, err, errlen);
		struct esp_restore er = {cc.esp_in, cc.esp_out, jump};
		s->sa.child[cc.slot] = k;
		int rc = k ? ikm_child_up(s, cc.slot, &er) : -1;
		ikm_conf_put(m, r);
		if (rc != 0)
			return k ? fail(err, errlen, -1, "Child SA '%s' could not be installed (bad ESP state?)", cc.name) : -1;
		s->ch[cc.slot]->rekeys = cc.rekeys;
	}
	return 0;
}

/* Open the blob into *pt (malloc'ed, *n bytes). */
static int open_ctx(const struct bt_config *cfg, const uint8_t *in, size_t len, const uint8_t *bind, size_t bind_len,
		    uint8_t **pt, size_t *n, char *err, size_t errlen)
{
	if (len < CTX_HDR || memcmp(in, "BTCX", 4))
		return fail(err, errlen, -1, "not a baton session context");
	if (in[4] != 0 || in[5] != CTX_VERSION)
		return fail(err, errlen, -1, "context envelope version %u, this baton reads %u", in[4] << 8 | in[5],
			    CTX_VERSION);
	if (len > CTX_MAX || len < CTX_HDR + XFER_AEAD_OVERHEAD)
		return fail(err, errlen, -1, "context truncated or too long (%zu bytes)", len);
	*n = len - CTX_HDR - XFER_AEAD_OVERHEAD;
	*pt = malloc(*n ? *n : 1);
	if (!*pt)
		return fail(err, errlen, -1, "out of memory");
	if (xfer_aead_open(cfg->cluster.key, in, CTX_HDR, bind, bind_len, in + CTX_HDR, len - CTX_HDR, *pt) != 0) {
		free(*pt);
		*pt = NULL;
		return fail(err, errlen, -1,
			    "the context does not authenticate (tampered or truncated, another cluster's key, or sealed "
			    "for another transfer)");
	}
	return 0;
}

/* Check the session read from the context against what is here; the local address to move to
 * when it is not ours (Multi-LAN, family 0 otherwise). */
static int put_checks(struct ike_mgr *m, struct ike_sess *s, const struct cfg_conn *c, const struct ctx_top *t,
		      struct bt_addr *move_to, char *err, size_t errlen)
{
	uint64_t ours = s->sa.initiator ? s->sa.spi_i : s->sa.spi_r;
	memset(move_to, 0, sizeof(*move_to));
	if (ikm_find_local(m, ours, s->sa.initiator) || ikm_find_old(m, ours) || ikm_find_red(m, ours))
		return fail(err, errlen, -1, "IKE SA %016llx_i is already here", (unsigned long long)s->sa.spi_i);
	if (addr_is_shared(&m->d->cfg->cluster, &t->local) || addr_is_ours(&t->local))
		return 0; /* Mono-LAN, or back where it was */
	if (!s->sa.mobike)
		return fail(err, errlen, -1,
			    "the session ends at %s, not an address of this node, and did not negotiate MOBIKE: the peer "
			    "could not be told to follow it",
			    bt_addr_str(&t->local, (char[BT_ADDRSTRLEN]){0}, BT_ADDRSTRLEN));
	if (our_local(c, &t->local, move_to) != 0)
		return fail(err, errlen, -1, "connection '%s' has no local address of this node to move the session to",
			    c->name);
	return 0;
}

int xfer_put(struct daemon *d, const uint8_t *in, size_t len, const uint8_t *bind, size_t bind_len,
	     struct xfer_info *info, char *err, size_t errlen)
{
	struct ike_mgr *m = d->ike;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!m)
		return fail(err, errlen, -1, "IKE is not running");
	if (!d->cfg->cluster.has_key) {
		m->st.xfer_refused++;
		return fail(err, errlen, -1, "no cluster key configured (cluster { key = ... })");
	}
	uint8_t *pt;
	size_t n;
	if (open_ctx(d->cfg, in, len, bind, bind_len, &pt, &n, err, errlen) != 0) {
		m->st.xfer_refused++;
		return -1;
	}
	struct ctx_top t;
	struct ike_sess *s = NULL;
	struct bt_addr move_to;
	const struct cfg_conn *c = NULL;
	const struct cfg_child *ch = NULL;
	uint64_t jump = d->cfg->cluster.seq_jump;
	int rc = xfer_ctx_validate(pt, n, err, errlen);
	if (rc == 0)
		rc = read_top(cur_init(pt, n), &t, err, errlen);
	if (rc == 0 && t.seq_jump > jump)
		jump = t.seq_jump; /* the sender capped its copy below that */
	if (rc == 0 && (!(c = ikm_conn_by_name(d->cfg, t.conn)) || !c->ike || !(ch = ikm_child_by_name(c, t.child))))
		rc = fail(err, errlen, -1, "connection '%s' (child '%s') is not configured here for IKE", t.conn, t.child);
	if (rc == 0 && !(s = sess_new(m, c, ch, false, err, errlen)))
		rc = -1;
	if (rc == 0)
		rc = ike_ctx_read_sa(&s->sa, t.ike, err, errlen);
	if (rc == 0)
		rc = put_checks(m, s, c, &t, &move_to, err, errlen);
	if (rc == 0) {
		s->local = t.local, s->remote = t.remote, s->lport = t.lport, s->rport = t.rport, s->natt = t.natt;
		s->established = ikm_now_s(m) - (double)t.age / 1e6;
		s->started = s->established - (double)t.setup / 1e6;
		s->rekeys = t.rekeys, s->moves = t.moves;
		ikm_link_local(s, s->sa.initiator ? s->sa.spi_i : s->sa.spi_r);
		if (!s->sa.initiator)
			ikm_link_peer(s);
		else if (ikm_contacts(m, &s->remote, +1))
			s->contact = s->remote;
		rc = put_children(s, c, &t, jump, err, errlen);
	}
	OPENSSL_clear_free(pt, n);
	if (rc != 0) {
		if (s)
			sess_free(s); /* takes out what was installed */
		m->st.xfer_refused++;
		return -1;
	}
	char a[BT_ADDRSTRLEN];
	if (move_to.family) {
		bt_info("IKE %s: the session ended at %s: moving it to our address and telling the peer", s->conn,
			bt_addr_str(&t.local, a, sizeof(a)));
		if (mobike_gateway_move(s, &move_to, err, errlen) != 0) {
			sess_free(s); /* the peer could not be told: the session stays where it was */
			m->st.xfer_refused++;
			return -1;
		}
	}
	ikm_arm_timers(s);
	unsigned children = 0, rekeys = 0;
	for (int k = 0; k < IKE_CHILD_MAX; k++) {
		if (!s->ch[k])
			continue;
		children++;
		if (s->ch[k]->spi_collision) {
			bt_warn("IKE %s/%s: inbound SPI collided with an SA of this node: rekeying the Child SA", s->conn,
				s->ch[k]->name);
			ikm_start_rekey(s, k); /* one now; the others retry while it is in flight */
			rekeys++;
		}
	}
	m->st.xfer_puts++, m->st.xfer_spi_rekeys += rekeys;
	cluster_claim(d); /* Mono-LAN: the shared addresses come here with the session */
	bt_info("IKE %s: IKE SA %016llx_i put here from %s (%u Child SAs, outbound sequence numbers +%llu)", s->conn,
		(unsigned long long)s->sa.spi_i, t.node[0] ? t.node : "a context file", children, (unsigned long long)jump);
	if (info) {
		info_of(s, info);
		info->multi_lan = move_to.family != 0;
		info->spi_rekeys = rekeys, info->seq_jump = jump;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		info->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	}
	return 0;
}

bool xfer_peer_told(struct daemon *d, uint64_t spi_i, uint64_t spi_r)
{
	struct ike_mgr *m = d->ike;
	struct ike_sess *s = m ? ikm_find_local(m, spi_r, false) : NULL;
	if (m && !s)
		s = ikm_find_local(m, spi_i, true);
	return !s || !s->gw_update_wait;
}

/* --- the last word of a migration: what the old node saw after the copy ------------------------ */

int xfer_merge(struct daemon *d, const uint8_t *in, size_t len, const uint8_t *bind, size_t bind_len, char *err,
	       size_t errlen)
{
	struct ike_mgr *m = d->ike;
	struct ike_conf *conf = scratch_conf();
	uint8_t *pt;
	size_t n;
	struct ctx_top t;
	struct ike_sa sa;
	if (!m || !d->cfg->cluster.has_key)
		return fail(err, errlen, -1, "IKE or the cluster key missing");
	if (open_ctx(d->cfg, in, len, bind, bind_len, &pt, &n, err, errlen) != 0)
		return -1;
	ike_sa_init(&sa, conf, false, &ikm_rng);
	int rc = xfer_ctx_validate(pt, n, err, errlen);
	if (rc == 0)
		rc = read_top(cur_init(pt, n), &t, err, errlen);
	if (rc == 0)
		rc = ike_ctx_read_sa(&sa, t.ike, err, errlen);
	struct ike_sess *s = rc ? NULL : ikm_find_local(m, sa.initiator ? sa.spi_i : sa.spi_r, sa.initiator);
	if (rc == 0 && !s)
		rc = fail(err, errlen, -1, "IKE SA %016llx_i is not here", (unsigned long long)sa.spi_i);
	for (unsigned i = 0; rc == 0 && i < t.n_child; i++) {
		struct ctx_child cc;
		if ((rc = read_child(t.child_sa[i], &cc, err, errlen)) != 0)
			break;
		struct ike_child *k = ike_ctx_read_child(conf, cc.ike, err, errlen);
		uint32_t spi = k ? (sa.initiator ? k->spi_i : k->spi_r) : 0;
		ike_ctx_child_free(k);
		/* the session's own inbound SA with that SPI; none if an SPI collision or a rekey here
		 * gave the child another one since (then there is nothing to merge into) */
		for (int j = 0; spi && j < IKE_CHILD_MAX; j++) {
			const struct sess_child *sc = s->ch[j];
			struct esp_sa *x = sc && sc->installed && sc->spi_in == spi ? sad_lookup_in(dp_sad(d->dp), spi) : NULL;
			if (x && x->reqid == sc->reqid && esp_ctx_merge(x, cc.esp_in) != 0)
				rc = fail(err, errlen, -1, "Child SA '%s': bad inbound ESP state", cc.name);
		}
	}
	ike_sa_free(&sa);
	OPENSSL_clear_free(pt, n);
	return rc;
}
