/* cluster.c — the transfer channel (wire format in cluster.h): the target's listener, one
 * non-blocking connection per transfer in the daemon's loop, each bounded in size and time; and the
 * source's side of `migrate`, a bounded synchronous exchange that restores the session here when the
 * transfer fails. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "daemon/xfer.h"
#include "util/log.h"

/* --- target: one connection per transfer ------------------------------------------------------- */

enum xc_state { XC_HELLO, XC_READ, XC_PEER, XC_REPLY, XC_FINAL };
static const char *const xc_state_name[] = {"sending the challenge", "reading the context",
					    "waiting for the peer to follow", "sending the reply",
					    "waiting for the final window"};

struct xconn {
	ev_io w;
	struct xconn *next, **prev;
	ev_timer t;
	struct daemon *d;
	enum xc_state state;
	uint8_t chal[CLUSTER_CHALLENGE];
	uint8_t out[4 + CLUSTER_REPLY_MAX];
	size_t out_len, out_off;
	struct cluster_rx rx;
	bool put_ok;                /* the session is installed: the source's last word follows */
	char conn[BT_NAME_MAX];
	struct cluster_reply r;     /* our answer, once the peer follows (Multi-LAN) */
	uint64_t spi_i, spi_r;
	ev_timer follow;            /* Multi-LAN: polls until the peer answered our address update */
	double peer_since;
	char peer[BT_ADDRSTRLEN + 8];
};

static void xc_close(struct xconn *c)
{
	ev_io_stop(c->d->loop, &c->w);
	ev_timer_stop(c->d->loop, &c->t);
	ev_timer_stop(c->d->loop, &c->follow);
	close(c->w.fd);
	cluster_rx_free(&c->rx);
	if (c->next)
		c->next->prev = c->prev;
	*c->prev = c->next;
	c->d->cluster->n_conns--;
	free(c);
}

__attribute__((format(printf, 2, 3))) static void xc_drop(struct xconn *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bt_warn("cluster: transfer from %s dropped: %s", c->peer, msg);
	c->d->cluster->channel_drops++;
	xc_close(c);
}

/* After a failed recv or send: true to try again at once (EINTR); otherwise the connection waits
 * for the loop (EAGAIN) or has been dropped. */
static bool xc_retry(struct xconn *c, const char *op)
{
	if (errno == EINTR)
		return true;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		xc_drop(c, "%s: %s", op, strerror(errno));
	return false;
}

static void xc_want(struct xconn *c, int events)
{
	ev_io_stop(c->d->loop, &c->w);
	ev_io_set(&c->w, c->w.fd, events);
	ev_io_start(c->d->loop, &c->w);
}

static uint32_t us_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint32_t)((t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000);
}

/* Seal and send our reply (c->r). */
static void xc_reply(struct xconn *c)
{
	size_t n;
	if (cluster_reply_seal(c->d->cfg->cluster.key, c->chal, &c->r, c->out + 4, &n) != 0) {
		xc_drop(c, "cannot seal the reply");
		return;
	}
	c->out[0] = (uint8_t)(n >> 24), c->out[1] = (uint8_t)(n >> 16), c->out[2] = (uint8_t)(n >> 8), c->out[3] = (uint8_t)n;
	c->out_len = n + 4, c->out_off = 0;
	c->state = XC_REPLY;
	xc_want(c, EV_WRITE);
}

#define XC_PEER_WAIT_S 1.0 /* at most this long for the peer's answer to our address update */

/* Multi-LAN: the reply (which lets the source stop the session) waits until the peer has
 * answered our address update, so that it sends here before the old gateway goes quiet. */
static void xc_peer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct xconn *c = (struct xconn *)((char *)t - offsetof(struct xconn, follow));
	bool told = xfer_peer_told(c->d, c->spi_i, c->spi_r);
	if (!told && ev_now(loop) - c->peer_since < XC_PEER_WAIT_S)
		return;
	ev_timer_stop(loop, t);
	if (!told)
		bt_warn("cluster: %s: the peer has not answered our address update within %.0f ms; the old gateway "
			"stops now anyway", c->conn, XC_PEER_WAIT_S * 1000);
	xc_reply(c);
}

/* The context is complete: install it, answer with a sealed reply (Multi-LAN: once the peer follows). */
static void xc_put(struct xconn *c)
{
	struct daemon *d = c->d;
	uint8_t bind[CLUSTER_BIND_PUT];
	struct cluster_reply *r = &c->r;
	struct xfer_info info = {0};
	struct timespec t0;
	memcpy(bind, c->chal, CLUSTER_CHALLENGE);
	memcpy(bind + CLUSTER_CHALLENGE, "put", 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r->ok = xfer_put(d, c->rx.buf, c->rx.len, bind, sizeof(bind), &info, r->error, sizeof(r->error)) == 0;
	r->import_us = us_since(&t0);
	r->multi_lan = r->ok && info.multi_lan;
	cluster_rx_free(&c->rx);
	c->put_ok = r->ok;
	snprintf(c->conn, sizeof(c->conn), "%s", info.conn);
	if (!r->ok) {
		bt_warn("cluster: context from %s refused: %s", c->peer, r->error);
		xc_reply(c);
		return;
	}
	d->cluster->migrations_in++;
	bt_info("cluster: session %s (IKE SA %016llx) taken over from %s in %.3f ms%s", info.conn,
		(unsigned long long)info.spi_i, c->peer, r->import_us / 1000.0, r->multi_lan ? ", Multi-LAN" : "");
	if (!r->multi_lan) {
		xc_reply(c);
		return;
	}
	c->spi_i = info.spi_i, c->spi_r = info.spi_r;
	c->peer_since = ev_now(d->loop);
	c->state = XC_PEER;
	ev_io_stop(d->loop, &c->w);
	ev_timer_start(d->loop, &c->follow);
}

/* The source stopped the session after our reply: what it saw since the copy joins our replay
 * windows, and the transfer is done. */
static void xc_final(struct xconn *c)
{
	uint8_t bind[CLUSTER_BIND_PUT];
	char err[256];
	memcpy(bind, c->chal, CLUSTER_CHALLENGE);
	memcpy(bind + CLUSTER_CHALLENGE, "fin", 3);
	if (xfer_merge(c->d, c->rx.buf, c->rx.len, bind, sizeof(bind), err, sizeof(err)) != 0)
		xc_drop(c, "final window of %s: %s", c->conn, err);
	else
		xc_close(c);
}

static void xc_read(struct xconn *c)
{
	uint8_t tmp[16384];
	for (;;) {
		ssize_t r = recv(c->w.fd, tmp, sizeof(tmp), 0);
		if (r == 0) {
			if (c->state == XC_FINAL && c->rx.hdr_got == 0)
				xc_drop(c, "closed without the final window of %s (packets it took after the copy are "
					   "not in our replay windows)", c->conn);
			else if (c->rx.hdr_got < 4)
				xc_drop(c, "closed before sending a context");
			else
				xc_drop(c, "closed after %u of %u bytes", c->rx.got, c->rx.len);
			return;
		}
		if (r < 0) {
			if (xc_retry(c, "recv"))
				continue;
			return;
		}
		size_t used;
		int rc = cluster_rx_feed(&c->rx, tmp, (size_t)r, &used);
		OPENSSL_cleanse(tmp, (size_t)r);
		if (rc == -1) {
			xc_drop(c, "frame length %u (1 to %u bytes)", c->rx.len, c->rx.max);
			return;
		}
		if (rc < 0) {
			xc_drop(c, "out of memory for %u bytes", c->rx.len);
			return;
		}
		if (rc == 1) { /* one context, then one final window, per connection */
			if (c->state == XC_READ)
				xc_put(c);
			else
				xc_final(c);
			return;
		}
	}
}

static void xc_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct xconn *c = (struct xconn *)w;
	if (c->state == XC_READ || c->state == XC_FINAL) {
		xc_read(c);
		return;
	}
	while (c->out_off < c->out_len) {
		ssize_t r = send(w->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (r < 0) {
			if (xc_retry(c, "send"))
				continue;
			return;
		}
		c->out_off += (size_t)r;
	}
	if (c->state == XC_REPLY && !c->put_ok) {
		xc_close(c); /* refused: done */
		return;
	}
	if (c->state == XC_REPLY) { /* the source's final window comes next */
		c->state = XC_FINAL;
		c->rx = (struct cluster_rx){.max = CLUSTER_FRAME_MAX};
		ev_timer_stop(loop, &c->t);
		ev_timer_set(&c->t, CLUSTER_TIMEOUT_S, 0);
		ev_timer_start(loop, &c->t);
		xc_want(c, EV_READ);
		return;
	}
	c->state = XC_READ;
	xc_want(c, EV_READ);
}

static void xc_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct xconn *c = (struct xconn *)((char *)t - offsetof(struct xconn, t));
	xc_drop(c, "not done within %.0f s (stuck %s)", CLUSTER_TIMEOUT_S, xc_state_name[c->state]);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	struct cluster *cl = d->cluster;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				bt_warn("cluster: accept: %s", strerror(errno));
			return;
		}
		struct bt_addr a;
		uint16_t port;
		char as[BT_ADDRSTRLEN];
		bt_addr_from_sockaddr((struct sockaddr *)&ss, &a, &port);
		struct xconn *c = cl->n_conns < CLUSTER_CONNS_MAX ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			bt_warn("cluster: transfer from %s refused: %u in progress", bt_addr_str(&a, as, sizeof(as)), cl->n_conns);
			cl->channel_drops++;
			close(fd);
			continue;
		}
		cl->n_conns++;
		c->next = cl->conns, c->prev = &cl->conns;
		if (cl->conns)
			cl->conns->prev = &c->next;
		cl->conns = c;
		c->d = d;
		snprintf(c->peer, sizeof(c->peer), "%s:%u", bt_addr_str(&a, as, sizeof(as)), port);
		c->rx.max = CLUSTER_FRAME_MAX;
		memcpy(c->out, CLUSTER_MAGIC, 4);
		ev_io_init(&c->w, xc_cb, fd, EV_WRITE);
		ev_timer_init(&c->t, xc_timeout, CLUSTER_TIMEOUT_S, 0);
		ev_timer_init(&c->follow, xc_peer_cb, 0.0005, 0.0005);
		ev_timer_start(loop, &c->t);
		if (RAND_bytes(c->chal, CLUSTER_CHALLENGE) != 1) {
			xc_drop(c, "no random bytes for the challenge");
			continue;
		}
		memcpy(c->out + 4, c->chal, CLUSTER_CHALLENGE);
		c->out_len = CLUSTER_HELLO;
		ev_io_start(loop, &c->w);
	}
}

int cluster_start(struct daemon *d, char *err, size_t errlen)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	struct cluster *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cl->fd = cl->pkt_fd = -1;
	d->cluster = cl;
	if (!cc->listen.family)
		return 0;
	struct sockaddr_storage ss;
	socklen_t sl = bt_addr_to_sockaddr(&cc->listen, cc->port, &ss);
	char as[BT_ADDRSTRLEN];
	bt_addr_str(&cc->listen, as, sizeof(as));
	int one = 1, fd = socket(cc->listen.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "cluster: cannot listen on %s port %u: %s", as, cc->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	cl->fd = fd;
	ev_io_init(&cl->w, accept_cb, fd, EV_READ);
	cl->w.data = d;
	ev_io_start(d->loop, &cl->w);
	bt_info("cluster: node %s, transfer channel on %s port %u", cc->name[0] ? cc->name : "(unnamed)", as, cc->port);
	return 0;
}

void cluster_stop(struct daemon *d)
{
	struct cluster *cl = d->cluster;
	if (!cl)
		return;
	if (cl->fd >= 0) {
		ev_io_stop(d->loop, &cl->w);
		close(cl->fd);
	}
	while (cl->conns)
		xc_close(cl->conns);
	if (cl->pkt_fd >= 0)
		close(cl->pkt_fd);
	free(cl);
	d->cluster = NULL;
}

json_t *cluster_stats_json(struct daemon *d)
{
	const struct cluster *cl = d->cluster;
	if (!cl)
		return json_object();
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "migrations_out", (json_int_t)cl->migrations_out, "migrations_in",
			 (json_int_t)cl->migrations_in, "migration_failures", (json_int_t)cl->migration_failures,
			 "channel_drops", (json_int_t)cl->channel_drops, "vip_claims", (json_int_t)cl->vip_claims,
			 "vip_releases", (json_int_t)cl->vip_releases);
}

/* --- source: migrate --------------------------------------------------------------------------- */

static double ms_since(const struct timespec *t0)
{
	return us_since(t0) / 1000.0;
}

/* Wait until fd is ready for events or the deadline passes. 0, or -1 with errno (ETIMEDOUT). */
static int wait_fd(int fd, short events, const struct timespec *deadline)
{
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
		struct pollfd p = {.fd = fd, .events = events};
		int r = ms > 0 ? poll(&p, 1, (int)ms) : 0;
		if (r > 0)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = ETIMEDOUT;
		return -1;
	}
}

static int send_full(int fd, const uint8_t *p, size_t n, const struct timespec *deadline)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(fd, POLLOUT, deadline))
				return -1;
			continue;
		}
		p += r, n -= (size_t)r;
	}
	return 0;
}

/* Some bytes: > 0, 0 when the peer closed, -1 with errno. */
static ssize_t recv_some(int fd, uint8_t *buf, size_t cap, const struct timespec *deadline)
{
	for (;;) {
		ssize_t r = recv(fd, buf, cap, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(fd, POLLIN, deadline))
			return -1;
	}
}

static int connect_node(const struct cfg_node *node, const struct timespec *deadline, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = bt_addr_to_sockaddr(&node->addr, node->port, &ss);
	int e = 0, fd = socket(node->addr.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	socklen_t el = sizeof(e);
	if (fd < 0 ||
	    (connect(fd, (struct sockaddr *)&ss, sl) < 0 &&
	     (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) ||
	      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || (e && (errno = e))))) {
		char as[BT_ADDRSTRLEN];
		snprintf(err, errlen, "cannot connect to %s (%s port %u): %s", node->name,
			 bt_addr_str(&node->addr, as, sizeof(as)), node->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The target's challenge: exactly CLUSTER_HELLO bytes starting with the magic. */
static int read_hello(int fd, uint8_t chal[CLUSTER_CHALLENGE], const struct timespec *deadline, char *err,
		      size_t errlen)
{
	uint8_t h[CLUSTER_HELLO];
	size_t got = 0;
	while (got < sizeof(h)) {
		ssize_t r = recv_some(fd, h + got, sizeof(h) - got, deadline);
		if (r <= 0) {
			snprintf(err, errlen, "no challenge from the target: %s", r ? strerror(errno) : "connection closed");
			return -1;
		}
		got += (size_t)r;
	}
	if (memcmp(h, CLUSTER_MAGIC, 4) != 0) {
		snprintf(err, errlen, "the target is not a baton transfer channel (bad magic)");
		return -1;
	}
	memcpy(chal, h + 4, CLUSTER_CHALLENGE);
	return 0;
}

/* Mono-LAN: a shared address moves as a whole (the LAN learns one owner for it), so a session that
 * ends at one leaves only with every other session here on it. -1 with err when others are. */
static int shared_in_use(struct daemon *d, const struct xfer_info *info, char *err, size_t errlen)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	size_t users = ike_mgr_addr_users(d, &info->local);
	char a[BT_ADDRSTRLEN];
	for (unsigned i = 0; i < cc->n_shared; i++)
		if (bt_addr_eq(&cc->shared[i].addr, &info->local) && users > 1) {
			snprintf(err, errlen,
				 "%zu other IKE SA(s) here end at the shared address %s, which would move with this one: "
				 "migrate them all (--all)",
				 users - 1, bt_addr_str(&info->local, a, sizeof(a)));
			return -1;
		}
	return 0;
}

/* One u32-length-prefixed frame. */
static int send_frame(int fd, const uint8_t *p, size_t n, const struct timespec *deadline)
{
	uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	if (n > CLUSTER_FRAME_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	return send_full(fd, hdr, 4, deadline) || send_full(fd, p, n, deadline) ? -1 : 0;
}

/* Send the sealed context, read and open the target's reply. */
static int ship(int fd, const uint8_t *key, const uint8_t chal[CLUSTER_CHALLENGE], const uint8_t *blob, size_t n,
		struct cluster_reply *r, const struct timespec *deadline, char *err, size_t errlen)
{
	if (send_frame(fd, blob, n, deadline)) { /* EMSGSIZE: larger than a frame */
		snprintf(err, errlen, "sending the context: %s", strerror(errno));
		return -1;
	}
	struct cluster_rx rx = {.max = CLUSTER_REPLY_MAX};
	uint8_t tmp[CLUSTER_REPLY_MAX + 4];
	int rc = 0;
	while (rc == 0) {
		ssize_t got = recv_some(fd, tmp, sizeof(tmp), deadline);
		size_t used;
		if (got <= 0) {
			snprintf(err, errlen, "no reply from the target: %s", got ? strerror(errno) : "connection closed");
			break;
		}
		if ((rc = cluster_rx_feed(&rx, tmp, (size_t)got, &used)) < 0)
			snprintf(err, errlen, "bad reply from the target (length %u)", rx.len);
	}
	if (rc == 1 && cluster_reply_open(key, chal, rx.buf, rx.len, r) != 0) {
		snprintf(err, errlen, "the target's reply does not authenticate (another cluster key?)");
		rc = -1;
	}
	cluster_rx_free(&rx);
	if (rc == 1 && !r->ok)
		snprintf(err, errlen, "the target refused the context: %s", r->error);
	return rc == 1 && r->ok ? 0 : -1;
}

/* What one session's migration took. */
struct mig {
	struct xfer_info info;
	bool multi_lan;
	double export_ms, ship_ms, import_ms, final_ms;
};

/* Move the session `name` to node (make before break, cluster.h). 0, or -1 with err: the session
 * goes on here. */
static int migrate_one(struct daemon *d, const struct cfg_node *node, const char *name, struct mig *mg, char *err,
		       size_t errlen)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	struct timespec deadline, t;
	uint8_t bind[CLUSTER_BIND_PUT], *blob = NULL;
	size_t n = 0;
	struct cluster_reply r = {0};
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)CLUSTER_TIMEOUT_S;
	int fd = connect_node(node, &deadline, err, errlen);
	if (fd < 0 || read_hello(fd, bind, &deadline, err, errlen))
		goto fail;
	/* make before break: a copy goes first while the session runs on here (this loop is busy until
	 * the end, so no IKE exchange of it moves on meanwhile; only its ESP traffic does) */
	memcpy(bind + CLUSTER_CHALLENGE, "put", 3);
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (xfer_get(d, name, XFER_HANDOVER, bind, sizeof(bind), &blob, &n, &mg->info, err, errlen) != 0)
		goto fail;
	mg->export_ms = ms_since(&t);
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (ship(fd, cc->key, bind, blob, n, &r, &deadline, err, errlen) != 0) {
		/* the session never stopped here; if the target did install it and only its reply was
		 * lost, both hold it until one of them is told: say so */
		bt_warn("cluster: migration of %s to %s failed (%s); the session goes on here (if %s installed it "
			"anyway, terminate it there)", name, node->name, err, node->name);
		goto fail;
	}
	mg->ship_ms = ms_since(&t);
	mg->import_ms = r.import_us / 1000.0, mg->multi_lan = r.multi_lan;
	/* the target runs the session now: stop it here and send what it saw since the copy */
	OPENSSL_clear_free(blob, n);
	blob = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t);
	memcpy(bind + CLUSTER_CHALLENGE, "fin", 3);
	char e2[256];
	if (xfer_get(d, name, XFER_DETACH, bind, sizeof(bind), &blob, &n, NULL, e2, sizeof(e2)) != 0)
		bt_err("cluster: session %s handed to %s but not stopped here: %s", name, node->name, e2);
	else if (send_frame(fd, blob, n, &deadline) != 0)
		bt_warn("cluster: the final window of %s did not reach %s: %s", name, node->name, strerror(errno));
	mg->final_ms = ms_since(&t);
	close(fd);
	OPENSSL_clear_free(blob, n);
	d->cluster->migrations_out++;
	bt_info("cluster: session %s (IKE SA %016llx) handed to %s: copy %.3f ms, ship %.3f ms (import %.3f ms), stop "
		"and final window %.3f ms", mg->info.conn, (unsigned long long)mg->info.spi_i, node->name, mg->export_ms,
		mg->ship_ms, mg->import_ms, mg->final_ms);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	OPENSSL_clear_free(blob, n);
	d->cluster->migration_failures++;
	return -1;
}

/* The SPIs (as names) of every session here that ends at a. */
static size_t sessions_at(struct daemon *d, const struct bt_addr *a, char (**names)[20])
{
	size_t n = ike_mgr_addr_users(d, a);
	*names = calloc(n ? n : 1, sizeof(**names));
	return *names ? ike_mgr_addr_spis(d, a, *names, n) : 0;
}

json_t *cluster_migrate(struct daemon *d, const char *name, const char *to, bool all)
{
	const struct cfg_cluster *cc = &d->cfg->cluster;
	const struct cfg_node *node = NULL;
	struct timespec t0;
	char err[384] = "";
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < cc->n_nodes; i++)
		if (!strcmp(cc->nodes[i].name, to))
			node = &cc->nodes[i];
	if (!cc->has_key || !node) {
		snprintf(err, sizeof(err), cc->has_key ? "no node '%s' in cluster.nodes" : "no cluster { } section", to);
		return json_pack("{s:b,s:s}", "ok", 0, "error", err);
	}
	struct mig mg = {0};
	int rc = xfer_locate(d, name, &mg.info, err, sizeof(err));
	if (rc == 0 && !all)
		rc = shared_in_use(d, &mg.info, err, sizeof(err));
	if (rc != 0) {
		d->cluster->migration_failures++;
		/* busy: an exchange of the session is in flight for a round trip; the caller may retry */
		return json_pack("{s:b,s:s,s:b,s:b}", "ok", 0, "error", err, "kept", true, "busy", rc == -EBUSY);
	}
	if (!all) {
		if (migrate_one(d, node, name, &mg, err, sizeof(err)) != 0)
			return json_pack("{s:b,s:s,s:b}", "ok", 0, "error", err, "kept", true);
		return json_pack("{s:b,s:s,s:s,s:b,s:f,s:f,s:f,s:f,s:f}", "ok", 1, "conn", mg.info.conn, "node", to,
				 "multi_lan", mg.multi_lan, "export_ms", mg.export_ms, "ship_ms", mg.ship_ms, "import_ms",
				 mg.import_ms, "final_ms", mg.final_ms, "total_ms", ms_since(&t0));
	}
	/* every session that ends where this one does: one after another, each make before break */
	char(*names)[20];
	size_t n = sessions_at(d, &mg.info.local, &names), moved = 0;
	json_t *failed = json_array();
	for (size_t i = 0; i < n; i++) {
		struct mig one = {0};
		char e[384];
		if (migrate_one(d, node, names[i], &one, e, sizeof(e)) == 0)
			moved++;
		else
			json_array_append_new(failed, json_pack("{s:s,s:s}", "name", names[i], "error", e));
	}
	free(names);
	return json_pack("{s:b,s:s,s:I,s:I,s:o,s:f}", "ok", moved == n, "node", to, "migrated", (json_int_t)moved,
			 "sessions", (json_int_t)n, "failed", failed, "total_ms", ms_since(&t0));
}
