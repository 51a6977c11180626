/* ike.c — batond's IKE: sockets (UDP 500 here, 4500 shared with the data plane), receiving (from a
 * message to its session), the index of connections by name, and start, reconfiguration and stop.
 * Sessions around the pure engine of src/ike and their timers are in ike_sess.c, sending and
 * retransmission in ike_send.c, Child SAs in the data plane in ike_child.c, MOBIKE in mobike.c.
 *
 * Everything runs on the control thread. Workers hand IKE packets seen on the NAT-T port, and
 * acquires (traffic for a trap policy), through a queue and an ev_async.
 */
#include "daemon/ike_internal.h"

double ikm_now_s(struct ike_mgr *m) { return ev_now(m->d->loop); }

static int rng_fill(void *arg, uint8_t *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}
const struct ike_rng ikm_rng = {rng_fill, NULL};

size_t ikm_bucket(uint64_t k) { return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 50) % SESS_BUCKETS; }

uint64_t ikm_name_hash(const char *s)
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
		size_t k = ikm_name_hash(cfg->conns[i].name) & conn_index.mask;
		while (conn_index.slot[k])
			k = (k + 1) & conn_index.mask;
		conn_index.slot[k] = (uint32_t)i + 1;
	}
	conn_index.cfg = cfg;
}

const struct cfg_conn *ikm_conn_by_name(const struct bt_config *cfg, const char *name)
{
	if (conn_index.cfg == cfg) {
		for (size_t k = ikm_name_hash(name) & conn_index.mask; conn_index.slot[k]; k = (k + 1) & conn_index.mask)
			if (!strcmp(cfg->conns[conn_index.slot[k] - 1].name, name))
				return &cfg->conns[conn_index.slot[k] - 1];
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_conns; i++)
		if (!strcmp(cfg->conns[i].name, name))
			return &cfg->conns[i];
	return NULL;
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
	ike_cookie_tick(&m->cookie, (uint64_t)(ikm_now_s(m) * 1000));
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
	ikm_send_raw(&tmp, m->out, olen);
	return false;
}


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
		s = ikm_find_peer(m, h.spi_i, src);
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
		s = ikm_find_local(m, from_initiator ? h.spi_r : h.spi_i, !from_initiator);
		if (!s)
			s = ikm_find_old(m, h.spi_i) ? ikm_find_old(m, h.spi_i) : ikm_find_old(m, h.spi_r);
		if (!s)
			s = ikm_find_red(m, h.spi_i) ? ikm_find_red(m, h.spi_i) : ikm_find_red(m, h.spi_r);
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
	if (s->sa.state != IKE_ST_ESTABLISHED && ikm_multi_addr(ikm_conn_by_name(m->d->cfg, s->conn)))
		ikm_my_addrs_refresh(s); /* announced in IKE_AUTH */
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
		sess_rebind(s, dst, dport, src, sport, natt);
	}
	if (s->sa.initiator) {
		if (before == IKE_ST_INIT_SENT && after == IKE_ST_AUTH_SENT) {
			ikm_link_local(s, s->sa.spi_i);
			/* NAT traversal: IKE_AUTH and ESP go to port 4500 (RFC 7296 2.23) */
			if (!s->natt && (s->sa.nat_local || s->sa.nat_remote || s->sa.conf->force_encap))
				sess_rebind(s, &s->local, dp_udp_port(m->d->dp), &s->remote, ESP_UDP_PORT, true);
			ikm_send_request(s, m->out, out);
			return;
		}
		if (before == IKE_ST_INIT_SENT && after == IKE_ST_INIT_SENT && out) {
			if (s->sa.group != group_before)
				bt_info("IKE %s: IKE_SA_INIT again (INVALID_KE_PAYLOAD: group %u)", s->conn, s->sa.group);
			else
				bt_info("IKE %s: IKE_SA_INIT again (COOKIE)", s->conn);
			ikm_send_request(s, m->out, out);
			return;
		}
	}
	if (out) {
		struct ike_dest back = {dst, src, sport, natt}; /* a response goes where the request came from */
		ikm_send_raw_to(s, &back, m->out, out);
		if (!s->sa.initiator && before == IKE_ST_IDLE && after == IKE_ST_INIT_DONE) {
			ikm_link_local(s, s->sa.spi_r);
			ikm_link_peer(s);
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
		ikm_request_done(s);
		ikm_established(s);
		ikm_sync_children(s);
		return;
	}
	if (info_pending && !s->sa.info_pending)
		ikm_request_done(s); /* our INFORMATIONAL was answered */
	if (ccs_pending && !s->sa.ccs_pending) {
		ikm_request_done(s); /* our CREATE_CHILD_SA was answered */
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
				int j = ikm_child_index(ikm_conn_by_name(m->d->cfg, s->conn), made->child);
				if (j >= 0)
					s->want &= ~(1u << j);
			}
			if (again && t) {
				ev_timer_stop(m->d->loop, t);
				ev_timer_set(t, 0.2 + (double)(rand() % 800) / 1000.0, 0);
				ev_timer_start(m->d->loop, t);
			}
		}
		ikm_conf_put(m, made);
	}
	if (s->sa.ike_rekeyed) {
		/* new SPIs: index them; the old ones stay reachable until the old SA's delete is done */
		s->sa.ike_rekeyed = false;
		uint64_t old = s->local_key;
		ikm_unlink_from(&m->by_local[ikm_bucket(old)], s, true);
		s->local_key = 0;
		ikm_link_old(s, old);
		ikm_link_local(s, s->sa.initiator ? s->sa.spi_i : s->sa.spi_r);
		m->st.ike_rekeys++;
		bt_info("IKE %s: IKE SA rekeyed: now %016llx_i %016llx_r", s->conn, (unsigned long long)s->sa.spi_i,
			(unsigned long long)s->sa.spi_r);
		ikm_arm_ike_rekey(s);
		if (s->sa.red_ike) {
			/* both ends rekeyed at once (RFC 7296 2.8.2): the redundant SA is deleted by its maker */
			const struct ike_old_sa *r = s->sa.red_ike;
			ikm_link_red(s, r->initiator ? r->spi_i : r->spi_r);
			bt_info("IKE %s: both ends rekeyed the IKE SA at once (RFC 7296 2.8.2): %s, %s deletes the "
				"redundant %016llx_i", s->conn, s->sa.initiator ? "ours stays" : "the peer's stays",
				s->sa.red_ike_ours ? "we" : "the peer", (unsigned long long)r->spi_i);
		}
		/* the initiator of the surviving SA deletes the old one; the maker of a redundant one that */
		size_t dl = s->sa.initiator ? ike_delete_old_ike(&s->sa, m->out, sizeof(m->out))
					    : ike_delete_red_ike(&s->sa, m->out, sizeof(m->out));
		if (dl)
			ikm_send_request(s, m->out, dl);
	}
	if (s->sa.red_ike_gone) {
		s->sa.red_ike_gone = false;
		ikm_unlink_red(s);
		if (red_deleting)
			ikm_request_done(s);
		bt_debug("IKE %s: the redundant IKE SA is gone", s->conn);
	}
	if (s->sa.old_ike_gone) {
		s->sa.old_ike_gone = false;
		ikm_unlink_old(s);
		if (old_deleting)
			ikm_request_done(s);
		bt_debug("IKE %s: the old IKE SA is gone", s->conn);
	}
	if (after == IKE_ST_DELETED) {
		bt_info("IKE %s: IKE SA deleted%s", s->conn, response ? "" : " by the peer");
		sess_gone(s, false);
		return;
	}
	ikm_sync_children(s);
	mobike_events(s);
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
	m->nm = netmon_new(d->loop, ikm_path_changed, m, nerr, sizeof(nerr));
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
		const struct cfg_conn *c = ikm_conn_by_name(d->cfg, s->conn);
		const struct cfg_child *ch = ikm_child_by_name(c, s->child);
		struct ike_conf k;
		uint8_t fp[32];
		bool same = c && c->ike && ch && ikm_conf_from(d->cfg, c, ch, &k, err, sizeof(err)) == 0;
		if (same) {
			ikm_fingerprint(c, ch, &k, fp);
			same = !memcmp(fp, s->conf_fp, sizeof(fp));
			OPENSSL_cleanse(&k, sizeof(k));
		}
		/* each of its Child SAs as configured still */
		for (int j = 0; j < IKE_CHILD_MAX && same; j++) {
			const struct cfg_child *cj = s->ch[j] ? ikm_child_by_name(c, s->ch[j]->name) : NULL;
			if (!s->ch[j])
				continue;
			same = cj && ikm_conf_from(d->cfg, c, cj, &k, err, sizeof(err)) == 0;
			if (same) {
				ikm_fingerprint(c, cj, &k, fp);
				same = !memcmp(fp, s->ch[j]->cref->fp, sizeof(fp));
				OPENSSL_cleanse(&k, sizeof(k));
			}
		}
		if (same && !s->closing) {
			ikm_set_alt(s, c); /* children added to or dropped from the connection */
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
				ikm_send_raw(s, m->out, len);
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
