/* control.c — the control socket: line-delimited JSON requests on a UNIX socket, answered from the
 * running state (SAs, policies, statistics) or acted on (reload). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "daemon/xfer.h"
#include "esp/sa.h"
#include "util/b64.h"
#include "util/log.h"

#define LINE_MAX_BYTES (2 * 1024 * 1024) /* a put carries a sealed context in base64 */

struct client {
	ev_io w;
	struct daemon *d;
	char *buf;
	size_t len;
};

json_t *control_ts_json(const struct bt_ts *ts, unsigned n)
{
	json_t *a = json_array();
	char buf[160];
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(a, json_string(bt_ts_str(&ts[i], buf, sizeof(buf))));
	return a;
}

static json_t *drops_json(_Atomic uint64_t *drops)
{
	json_t *o = json_object();
	for (int i = 1; i < ESP_DROP_MAX; i++)
		json_object_set_new(o, esp_drop_name(i), json_integer((json_int_t)atomic_load(&drops[i])));
	return o;
}

static json_t *life_json(const struct esp_lifetime *l)
{
	return json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)l->bytes, "packets", (json_int_t)l->packets,
			 "seconds", (json_int_t)l->seconds);
}

static unsigned enc_bits(const struct esp_sa *sa)
{
	if (sa->enc == ESP_ENC_AES_GCM_16 || sa->enc == ESP_ENC_AES_CTR)
		return (sa->enc_key_len - 4u) * 8;
	return sa->enc_key_len * 8u;
}

json_t *control_sa_json(const struct esp_sa *sa, uint64_t now)
{
	char a[BT_ADDRSTRLEN], b[BT_ADDRSTRLEN], spi[16];
	json_t *o = json_object();
	snprintf(spi, sizeof(spi), "0x%08x", sa->spi);
	json_object_set_new(o, "name", json_string(sa->name));
	json_object_set_new(o, "dir", json_string(sa->dir == ESP_DIR_IN ? "in" : "out"));
	json_object_set_new(o, "spi", json_string(spi));
	json_object_set_new(o, "reqid", json_integer(sa->reqid));
	json_object_set_new(o, "mode", json_string(sa->mode == ESP_MODE_TUNNEL ? "tunnel" : "transport"));
	json_object_set_new(o, "encap", json_string(sa->encap == ESP_ENCAP_UDP ? "udp" : "raw"));
	json_object_set_new(o, "local", json_string(bt_addr_str(&sa->local, a, sizeof(a))));
	json_object_set_new(o, "remote", json_string(bt_addr_str(&sa->remote, b, sizeof(b))));
	json_object_set_new(o, "local_port", json_integer(sa->local_port));
	json_object_set_new(o, "remote_port", json_integer(sa->remote_port));
	json_t *peers = json_array();
	for (unsigned i = 0; i < sa->n_peers; i++)
		json_array_append_new(peers, json_string(bt_prefix_str(&sa->peers[i], a, sizeof(a))));
	json_object_set_new(o, "peers", peers);
	json_object_set_new(o, "enc", json_string(esp_enc_name(sa->enc, enc_bits(sa))));
	json_object_set_new(o, "integ", json_string(esp_integ_name(sa->integ)));
	json_object_set_new(o, "esn", json_boolean(sa->esn));
	json_object_set_new(o, "local_ts", control_ts_json(sa->local_ts, sa->n_local_ts));
	json_object_set_new(o, "remote_ts", control_ts_json(sa->remote_ts, sa->n_remote_ts));
	if (sa->dir == ESP_DIR_OUT)
		json_object_set_new(o, "seq_out", json_integer((json_int_t)(atomic_load(&sa->seq_out) - 1)));
	else
		json_object_set_new(o, "replay", json_pack("{s:i,s:I}", "window", (int)sa->replay.size, "top",
							   (json_int_t)__atomic_load_n(&sa->replay.top, __ATOMIC_RELAXED)));
	json_object_set_new(o, "packets", json_integer((json_int_t)atomic_load(&sa->ctr.packets)));
	json_object_set_new(o, "bytes", json_integer((json_int_t)atomic_load(&sa->ctr.bytes)));
	json_object_set_new(o, "drops", drops_json((_Atomic uint64_t *)sa->ctr.drops));
	json_object_set_new(o, "lifetime", json_pack("{s:o,s:o}", "soft", life_json(&sa->soft), "hard",
						    life_json(&sa->hard)));
	json_object_set_new(o, "age", json_integer((json_int_t)(now > sa->add_time ? now - sa->add_time : 0)));
	json_t *ev = json_array();
	uint32_t e = atomic_load(&((struct esp_sa *)sa)->events);
	if (e & ESP_EV_SOFT)
		json_array_append_new(ev, json_string("soft"));
	if (e & ESP_EV_HARD)
		json_array_append_new(ev, json_string("hard"));
	if (e & ESP_EV_SEQ_SOFT)
		json_array_append_new(ev, json_string("seq_soft"));
	json_object_set_new(o, "events", ev);
	return o;
}

struct list_ctx {
	json_t *arr;
	uint64_t now;
};

static int sa_to_json(struct esp_sa *sa, void *arg)
{
	struct list_ctx *c = arg;
	json_array_append_new(c->arr, control_sa_json(sa, c->now));
	return 0;
}

static int cmp_sa(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int r = strcmp(json_string_value(json_object_get(x, "name")), json_string_value(json_object_get(y, "name")));
	return r ? r : strcmp(json_string_value(json_object_get(x, "dir")), json_string_value(json_object_get(y, "dir")));
}

static json_t *list_sas(struct daemon *d)
{
	struct list_ctx c = {json_array(), daemon_now()};
	sad_foreach(dp_sad(d->dp), sa_to_json, &c);
	/* stable order for people and scripts: by name, then in before out */
	size_t n = json_array_size(c.arr);
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(c.arr, i));
	qsort(v, n, sizeof(*v), cmp_sa);
	json_t *sorted = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(sorted, v[i]);
	free(v);
	json_decref(c.arr);
	return json_pack("{s:b,s:o,s:o}", "ok", 1, "sas", sorted, "ike_sas", ike_mgr_list(d));
}

static json_t *list_pols(struct daemon *d)
{
	static const char *const act[] = {"protect", "bypass", "discard"};
	size_t n;
	const struct spd_policy **v = spd_list(dp_spd(d->dp), &n); /* both levels, in lookup order */
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct spd_policy *p = v[i];
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:o,s:o,s:I,s:I}", "name", p->name, "dir",
						   p->dir == SPD_DIR_OUT ? "out" : "in", "action", act[p->action],
						   "priority", (json_int_t)p->priority, "local_ts",
						   control_ts_json(p->local, p->n_local), "remote_ts",
						   control_ts_json(p->remote, p->n_remote), "reqid", (json_int_t)p->reqid, "hits",
						   (json_int_t)(p->hits ? atomic_load(p->hits) : 0)));
	}
	free(v);
	return json_pack("{s:b,s:o}", "ok", 1, "policies", a);
}

static json_t *stats(struct daemon *d)
{
	struct dp_stats st;
	dp_get_stats(d->dp, &st);
	json_t *drops = json_object();
	for (int i = 1; i < ESP_DROP_MAX; i++)
		json_object_set_new(drops, esp_drop_name(i), json_integer((json_int_t)st.drops[i]));
	json_t *s = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:{s:b,s:b,s:b},s:o,s:I,s:I}",
			      "tun_rx", (json_int_t)st.tun_rx, "tun_tx", (json_int_t)st.tun_tx, "net_rx",
			      (json_int_t)st.net_rx, "net_tx", (json_int_t)st.net_tx, "ike_rx",
			      (json_int_t)st.ike_rx, "keepalive_rx", (json_int_t)st.keepalive_rx, "bypass",
			      (json_int_t)st.bypass, "discard", (json_int_t)st.discard, "lanes", (int)st.lanes,
			      "mtu", (int)dp_mtu(d->dp), "offload", "tso", st.tso, "udp_gso", st.udp_gso,
			      "udp_gro", st.udp_gro, "drops", drops, "sas", (json_int_t)sad_count(dp_sad(d->dp)),
			      "uptime", (json_int_t)(daemon_now() - d->started));
	json_object_set_new(s, "ike", ike_mgr_stats(d));
	json_object_set_new(s, "cluster", cluster_stats_json(d));
	return json_pack("{s:b,s:o}", "ok", 1, "stats", s);
}

static json_t *error(const char *msg) { return json_pack("{s:b,s:s}", "ok", 0, "error", msg); }

static json_t *load(struct daemon *d, json_t *req)
{
	const char *file = json_string_value(json_object_get(req, "file"));
	char err[512];
	struct bt_config *cfg;
	unsigned counts[3];
	if (!file)
		file = d->config_path;
	if (config_load(file, &cfg, err, sizeof(err)) != 0) {
		bt_warn("reload refused: %s", err);
		return error(err);
	}
	json_t *warn = json_array();
	/* settings of the baton section only take effect on a restart */
	if (strcmp(cfg->dp.tun_name, d->cfg->dp.tun_name) || cfg->dp.udp_port != d->cfg->dp.udp_port ||
	    cfg->dp.lanes != d->cfg->dp.lanes || cfg->dp.mtu != d->cfg->dp.mtu ||
	    cfg->dp.raw_esp != d->cfg->dp.raw_esp || cfg->dp.offload != d->cfg->dp.offload ||
	    strcmp(cfg->socket_path, d->cfg->socket_path) || cfg->ike_port != d->cfg->ike_port) {
		json_array_append_new(warn, json_string("changes to the baton { } section (tun, port, workers, "
							"mtu, raw_esp, offload, socket, ike_port) apply after a restart"));
		cfg->dp = d->cfg->dp;
		cfg->ike_port = d->cfg->ike_port;
		memcpy(cfg->socket_path, d->cfg->socket_path, sizeof(cfg->socket_path));
	}
	if (daemon_apply(d, cfg, counts, err, sizeof(err)) != 0) {
		config_free(cfg);
		json_decref(warn);
		bt_warn("reload refused: %s", err);
		return error(err);
	}
	if (strcmp(file, d->config_path) != 0)
		snprintf(d->config_path, sizeof(d->config_path), "%s", file);
	bt_info("loaded %s: %u SAs added, %u removed, %u kept", file, counts[0], counts[1], counts[2]);
	return json_pack("{s:b,s:i,s:i,s:i,s:o}", "ok", 1, "added", counts[0], "removed", counts[1], "kept",
			 counts[2], "warnings", warn);
}

/* initiate, terminate, rekey {"name": "conn" or "conn/child"} (rekey {"ike": true}: the IKE SA) */
static json_t *ike_cmd(struct daemon *d, const char *cmd, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	char conn[2 * BT_NAME_MAX], err[256];
	if (!name || !*name || strlen(name) >= sizeof(conn))
		return error("a connection name is required");
	snprintf(conn, sizeof(conn), "%s", name);
	char *child = strchr(conn, '/');
	if (child)
		*child++ = 0;
	if (!strcmp(cmd, "initiate")) {
		int rc = ike_mgr_initiate(d, conn, child, err, sizeof(err));
		if (rc == -EALREADY)
			return json_pack("{s:b,s:s}", "ok", 1, "message", err);
		return rc ? error(err) : json_pack("{s:b,s:s}", "ok", 1, "message", "initiating");
	}
	bool ike = json_is_true(json_object_get(req, "ike"));
	if (child && ike)
		return error("rekey-ike takes a connection name");
	if (!strcmp(cmd, "rekey")) {
		int n = ike_mgr_rekey(d, conn, child, ike, err, sizeof(err));
		return n < 0 ? error(err) : json_pack("{s:b,s:i}", "ok", 1, "rekeying", n);
	}
	int n = ike_mgr_terminate(d, conn, child, err, sizeof(err));
	return n < 0 ? error(err) : json_pack("{s:b,s:i}", "ok", 1, "deleted", n);
}

static json_t *xfer_info_json(const struct xfer_info *in)
{
	char l[BT_ADDRSTRLEN], r[BT_ADDRSTRLEN], spi[2][24];
	snprintf(spi[0], sizeof(spi[0]), "%016llx", (unsigned long long)in->spi_i);
	snprintf(spi[1], sizeof(spi[1]), "%016llx", (unsigned long long)in->spi_r);
	return json_pack("{s:b,s:s,s:s,s:s,s:s,s:s,s:i,s:f}", "ok", 1, "conn", in->conn, "spi_i", spi[0], "spi_r", spi[1],
			 "local", bt_addr_str(&in->local, l, sizeof(l)), "remote", bt_addr_str(&in->remote, r, sizeof(r)),
			 "children", (int)in->children, "ms", in->ms);
}

/* get: a session's sealed context (base64); put: install one. */
static json_t *xfer_cmd(struct daemon *d, const char *cmd, json_t *req)
{
	char err[256];
	struct xfer_info info;
	if (!strcmp(cmd, "get")) {
		const char *name = json_string_value(json_object_get(req, "name"));
		uint8_t *blob;
		size_t n;
		if (!name || !*name)
			return error("get needs a session name (connection or IKE SPI)");
		bool detach = json_is_true(json_object_get(req, "detach"));
		int rc = xfer_get(d, name, detach ? XFER_DETACH : XFER_COPY, NULL, 0, &blob, &n, &info, err, sizeof(err));
		if (rc != 0) /* busy: an exchange of the session is in flight for a round trip: retry */
			return json_pack("{s:b,s:s,s:b}", "ok", 0, "error", err, "busy", rc == -EBUSY);
		char *b = b64_encode(blob, n);
		free(blob);
		json_t *o = xfer_info_json(&info);
		json_object_set_new(o, "context", b ? json_string(b) : json_null());
		free(b);
		return o;
	}
	const char *b = json_string_value(json_object_get(req, "context"));
	size_t n;
	uint8_t *blob = b ? b64_decode(b, &n) : NULL;
	if (!blob)
		return error("put needs a context (base64)");
	int rc = xfer_put(d, blob, n, NULL, 0, &info, err, sizeof(err));
	free(blob);
	if (rc != 0)
		return error(err);
	json_t *o = xfer_info_json(&info);
	json_object_set_new(o, "multi_lan", json_boolean(info.multi_lan));
	json_object_set_new(o, "spi_rekeys", json_integer(info.spi_rekeys));
	json_object_set_new(o, "seq_jump", json_integer((json_int_t)info.seq_jump));
	return o;
}

/* migrate {"name": session, "to": node, "all": bool}: hand a session (with all: every session that
 * ends at its address) to another gateway of the cluster */
static json_t *migrate_cmd(struct daemon *d, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	const char *to = json_string_value(json_object_get(req, "to"));
	if (!name || !*name)
		return error("migrate needs a session name (connection or IKE SPI)");
	if (!to || !*to)
		return error("migrate needs a node (\"to\")");
	return cluster_migrate(d, name, to, json_is_true(json_object_get(req, "all")));
}

json_t *control_handle(struct daemon *d, const char *line, size_t len)
{
	json_error_t je;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!req || !json_is_object(req)) {
		json_decref(req);
		return error("request is not a JSON object");
	}
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *resp;
	if (!cmd)
		resp = error("request has no \"cmd\"");
	else if (!strcmp(cmd, "version"))
		resp = json_pack("{s:b,s:s}", "ok", 1, "version", BATON_VERSION);
	else if (!strcmp(cmd, "list-sas"))
		resp = list_sas(d);
	else if (!strcmp(cmd, "list-pols"))
		resp = list_pols(d);
	else if (!strcmp(cmd, "stats"))
		resp = stats(d);
	else if (!strcmp(cmd, "load"))
		resp = load(d, req);
	else if (!strcmp(cmd, "initiate") || !strcmp(cmd, "terminate") || !strcmp(cmd, "rekey"))
		resp = ike_cmd(d, cmd, req);
	else if (!strcmp(cmd, "get") || !strcmp(cmd, "put"))
		resp = xfer_cmd(d, cmd, req);
	else if (!strcmp(cmd, "migrate"))
		resp = migrate_cmd(d, req);
	else {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", cmd);
		resp = error(msg);
	}
	json_decref(req);
	return resp;
}

static void client_free(struct client *c)
{
	ev_io_stop(c->d->loop, &c->w);
	close(c->w.fd);
	free(c->buf);
	free(c);
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* a slow reader: wait a little for room, never forever */
				fd_set ws;
				struct timeval tv = {1, 0};
				FD_ZERO(&ws);
				FD_SET(fd, &ws);
				if (select(fd + 1, NULL, &ws, NULL, &tv) <= 0)
					return -1;
				continue;
			}
			return -1;
		}
		s += w, n -= (size_t)w;
	}
	return 0;
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = (struct client *)w;
	char tmp[4096];
	ssize_t n = recv(w->fd, tmp, sizeof(tmp), 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_free(c);
		return;
	}
	if (c->len + (size_t)n > LINE_MAX_BYTES) {
		json_t *e = error("request line too long");
		char *s = json_dumps(e, JSON_COMPACT);
		if (s) {
			send_all(w->fd, s, strlen(s));
			send_all(w->fd, "\n", 1);
		}
		free(s);
		json_decref(e);
		client_free(c);
		return;
	}
	char *nb = realloc(c->buf, c->len + (size_t)n);
	if (!nb) {
		client_free(c);
		return;
	}
	c->buf = nb;
	memcpy(c->buf + c->len, tmp, (size_t)n);
	c->len += (size_t)n;
	char *nl;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		size_t l = (size_t)(nl - c->buf);
		json_t *resp = control_handle(c->d, c->buf, l);
		char *s = json_dumps(resp, JSON_COMPACT);
		json_decref(resp);
		int rc = s ? send_all(w->fd, s, strlen(s)) : -1;
		if (rc == 0)
			rc = send_all(w->fd, "\n", 1);
		free(s);
		memmove(c->buf, nl + 1, c->len - l - 1);
		c->len -= l + 1;
		if (rc) {
			client_free(c);
			return;
		}
	}
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->d = d;
	ev_io_init(&c->w, client_cb, fd, EV_READ);
	ev_io_start(loop, &c->w);
}

int control_listen(struct daemon *d, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	/* create the parent directory if needed */
	char dir[sizeof(sun.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* a socket file nobody listens on is left over from a crash: replace it; a live one is not ours */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		snprintf(err, errlen, "another batond is listening on %s", path);
		return -1;
	}
	unlink(path);
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	d->listen_fd = fd;
	snprintf(d->socket_path, sizeof(d->socket_path), "%s", path);
	ev_io_init(&d->listen_w, accept_cb, fd, EV_READ);
	d->listen_w.data = d;
	ev_io_start(d->loop, &d->listen_w);
	return 0;
}

void control_close(struct daemon *d)
{
	if (d->listen_fd >= 0) {
		ev_io_stop(d->loop, &d->listen_w);
		close(d->listen_fd);
		unlink(d->socket_path);
		d->listen_fd = -1;
	}
}
