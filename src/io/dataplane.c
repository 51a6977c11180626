/* dataplane.c — the data plane's life cycle and its tables: creating the TUN queues and sockets,
 * starting lanes, publishing SAD/SPD changes and retiring old objects after a grace period. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "esp/esp_wire.h"
#include "io/dp_internal.h"
#include "util/log.h"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	return fd < 0 ? 0 : epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* The per-lane buffers: everything a worker touches per packet is preallocated here. */
static int lane_alloc(struct lane *l, char *err, size_t errlen)
{
	l->frame = malloc(DP_VNET_HDR + DP_FRAME_MAX);
	l->seg = malloc(DP_FRAME_MAX);
	l->arena_cap = (size_t)(TUN_ARENA_FRAMES) * (DP_FRAME_MAX + 8192);
	l->arena = malloc(l->arena_cap);
	l->gro = malloc(DP_VNET_HDR + DP_FRAME_MAX);
	if (!l->frame || !l->seg || !l->arena || !l->gro) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < DP_RX_BATCH; i++)
		if (!(l->rx[i] = malloc(ESP_HEADROOM + DP_FRAME_MAX + ESP_TAILROOM))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	return 0;
}

static int lane_open(struct dataplane *dp, struct lane *l, char *err, size_t errlen)
{
	bool tso = false, gro4 = false, gro6 = false;
	l->tun_fd = tun_open_queue(dp->cfg.tun_name, dp->cfg.offload, &tso);
	if (l->tun_fd < 0) {
		snprintf(err, errlen, "cannot open TUN %s queue %u: %s", dp->cfg.tun_name, l->id,
			 strerror(-l->tun_fd));
		return -1;
	}
	if (l->id == 0)
		dp->tso = tso;
	const struct bt_addr *b = &dp->cfg.bind_addr;
	l->udp4 = b->family == AF_INET6 ? -1 : sock_udp(AF_INET, b, dp->cfg.udp_port, dp->cfg.offload, &gro4);
	l->udp6 = b->family == AF_INET ? -1 : sock_udp(AF_INET6, b, dp->cfg.udp_port, dp->cfg.offload, &gro6);
	if (l->udp4 < -1 || (l->udp4 < 0 && b->family == AF_INET)) {
		snprintf(err, errlen, "cannot open UDP port %u: %s", dp->cfg.udp_port, strerror(-l->udp4));
		return -1;
	}
	if (l->udp6 < 0 && b->family != AF_INET) {
		if (b->family == AF_INET6) {
			snprintf(err, errlen, "cannot open UDP port %u (IPv6): %s", dp->cfg.udp_port,
				 strerror(-l->udp6));
			return -1;
		}
		l->udp6 = -1; /* IPv6 disabled on this host: carry on with IPv4 */
	}
	if (l->id == 0) {
		dp->udp_gro = gro4 || gro6;
		dp->udp_gso = dp->cfg.offload && l->udp4 >= 0 && sock_udp_gso_supported(l->udp4);
	}
	l->raw4 = l->raw6 = -1;
	if (dp->cfg.raw_esp) {
		l->raw4 = sock_raw_esp(AF_INET);
		l->raw6 = sock_raw_esp(AF_INET6);
		if (l->raw4 < 0) {
			snprintf(err, errlen, "cannot open a raw ESP socket: %s", strerror(-l->raw4));
			return -1;
		}
		if (l->raw6 < 0)
			l->raw6 = -1;
	}
	l->bypass4 = sock_bypass(AF_INET);
	l->bypass6 = sock_bypass(AF_INET6);
	if (l->bypass4 < 0)
		l->bypass4 = -1;
	if (l->bypass6 < 0)
		l->bypass6 = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	/* raw sockets hand every lane a copy of every packet: only lane 0 reads them */
	if (l->epfd < 0 || watch(l->epfd, l->tun_fd) || watch(l->epfd, l->udp4) || watch(l->epfd, l->udp6) ||
	    (l->id == 0 && (watch(l->epfd, l->raw4) || watch(l->epfd, l->raw6))) || watch(l->epfd, dp->stop_fd)) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return -1;
	}
	return lane_alloc(l, err, errlen);
}

static void lane_close(struct lane *l)
{
	close_fd(&l->tun_fd);
	close_fd(&l->udp4);
	close_fd(&l->udp6);
	close_fd(&l->raw4);
	close_fd(&l->raw6);
	close_fd(&l->bypass4);
	close_fd(&l->bypass6);
	close_fd(&l->epfd);
	free(l->frame);
	free(l->seg);
	free(l->arena);
	free(l->gro);
	for (int i = 0; i < DP_RX_BATCH; i++)
		free(l->rx[i]);
}

/* Can a plain (non-reuseport) socket bind the port? If not, someone holds it. */
static bool port_in_use(const struct bt_addr *bind_addr, uint16_t port)
{
	int fams[2] = {AF_INET, AF_INET6};
	for (int i = 0; i < 2; i++) {
		if (bind_addr->family && bind_addr->family != fams[i])
			continue;
		int fd = socket(fams[i], SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
		if (fd < 0)
			continue; /* family not available here */
		if (fams[i] == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		struct sockaddr_storage ss;
		struct bt_addr any = {.family = (uint8_t)fams[i]};
		socklen_t sl = bt_addr_to_sockaddr(bind_addr->family ? bind_addr : &any, port, &ss);
		bool busy = bind(fd, (struct sockaddr *)&ss, sl) < 0 && errno == EADDRINUSE;
		close(fd);
		if (busy)
			return true;
	}
	return false;
}

struct dataplane *dp_new(const struct dp_config *cfg, char *err, size_t errlen)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));
	if (!dp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dp->cfg = *cfg;
	if (!dp->cfg.udp_port)
		dp->cfg.udp_port = ESP_UDP_PORT;
	if (!dp->cfg.outer_mtu)
		dp->cfg.outer_mtu = 1500;
	if (!dp->cfg.tun_name[0])
		strcpy(dp->cfg.tun_name, "bt0");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	dp->lanes = cfg->lanes ? cfg->lanes : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (dp->lanes > DP_MAX_LANES)
		dp->lanes = DP_MAX_LANES;
	/* the outer packet must fit: IPv6 header, UDP, and the largest ESP overhead */
	dp->mtu = cfg->mtu ? cfg->mtu : (dp->cfg.outer_mtu - 40 - 8 - ESP_MAX_OVERHEAD) & ~3u;
	dp->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	dp->sad = sad_new();
	dp->lane = calloc(dp->lanes, sizeof(*dp->lane));
	if (dp->stop_fd < 0 || !dp->sad || !dp->lane) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < dp->lanes; i++) {
		struct lane *l = &dp->lane[i];
		l->dp = dp, l->id = i;
		l->tun_fd = l->udp4 = l->udp6 = l->raw4 = l->raw6 = l->bypass4 = l->bypass6 = l->epfd = -1;
	}
	/* SO_REUSEPORT would let a second daemon on the same port quietly take part of the traffic:
	 * make sure the port is free before the lanes share it */
	if (port_in_use(&dp->cfg.bind_addr, dp->cfg.udp_port)) {
		snprintf(err, errlen, "UDP port %u is already in use (another batond?)", dp->cfg.udp_port);
		goto fail;
	}
	for (unsigned i = 0; i < dp->lanes; i++)
		if (lane_open(dp, &dp->lane[i], err, errlen) != 0)
			goto fail;
	int rc = tun_configure(dp->cfg.tun_name, dp->mtu, &dp->tun_ifindex);
	if (rc < 0) {
		snprintf(err, errlen, "cannot configure %s (mtu %u): %s", dp->cfg.tun_name, dp->mtu, strerror(-rc));
		goto fail;
	}
	dp->dyn = spd_dyn_new();
	atomic_store(&dp->spd, spd_new());
	if (!dp->dyn || !atomic_load(&dp->spd))
		goto fail;
	spd_set_dyn(atomic_load(&dp->spd), dp->dyn);
	return dp;
fail:
	dp_free(dp);
	return NULL;
}

struct dataplane *dp_new_detached(const struct dp_config *cfg, unsigned lanes)
{
	char err[64];
	struct dataplane *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return NULL;
	dp->cfg = *cfg;
	dp->lanes = lanes ? lanes : 1;
	dp->mtu = 1400;
	dp->udp_gso = cfg->offload;
	dp->stop_fd = -1;
	dp->sad = sad_new();
	dp->lane = calloc(dp->lanes, sizeof(*dp->lane));
	if (!dp->sad || !dp->lane)
		goto fail;
	for (unsigned i = 0; i < dp->lanes; i++) {
		struct lane *l = &dp->lane[i];
		l->dp = dp, l->id = i;
		l->tun_fd = l->udp4 = l->udp6 = l->raw4 = l->raw6 = l->bypass4 = l->bypass6 = l->epfd = -1;
		if (lane_alloc(l, err, sizeof(err)) != 0)
			goto fail;
	}
	dp->dyn = spd_dyn_new();
	atomic_store(&dp->spd, spd_new());
	if (!dp->dyn || !atomic_load(&dp->spd))
		goto fail;
	spd_set_dyn(atomic_load(&dp->spd), dp->dyn);
	return dp;
fail:
	dp_free(dp);
	return NULL;
}

void dp_set_acquire_cb(struct dataplane *dp, dp_acquire_cb cb, void *arg)
{
	dp->acq_cb = cb;
	dp->acq_arg = arg;
}

uint16_t dp_udp_port(const struct dataplane *dp) { return dp->cfg.udp_port; }

void dp_set_ike_cb(struct dataplane *dp, dp_ike_cb cb, void *arg)
{
	dp->ike_cb = cb;
	dp->ike_arg = arg;
}

int dp_start(struct dataplane *dp)
{
	for (unsigned i = 0; i < dp->lanes; i++) {
		int rc = pthread_create(&dp->lane[i].thread, NULL, worker_main, &dp->lane[i]);
		if (rc) {
			atomic_store(&dp->stopping, true);
			uint64_t one = 1;
			if (write(dp->stop_fd, &one, sizeof(one)) < 0) { /* the workers also poll stopping */ }
			for (unsigned j = 0; j < i; j++)
				pthread_join(dp->lane[j].thread, NULL);
			return -rc;
		}
		char name[16];
		snprintf(name, sizeof(name), "baton-lane%u", i % 100);
		pthread_setname_np(dp->lane[i].thread, name);
	}
	dp->started = true;
	return 0;
}

void dp_free(struct dataplane *dp)
{
	if (!dp)
		return;
	if (dp->started) {
		atomic_store(&dp->stopping, true);
		uint64_t one = 1;
		if (write(dp->stop_fd, &one, sizeof(one)) < 0) { /* workers also wake on their timeout */ }
		for (unsigned i = 0; i < dp->lanes; i++)
			pthread_join(dp->lane[i].thread, NULL);
	}
	if (dp->lane)
		for (unsigned i = 0; i < dp->lanes; i++)
			lane_close(&dp->lane[i]);
	free(dp->lane);
	if (dp->stop_fd >= 0)
		close(dp->stop_fd);
	sad_free(dp->sad);
	spd_free(atomic_load(&dp->spd));
	spd_dyn_free(dp->dyn);
	free(dp);
}

void dp_synchronize(struct dataplane *dp)
{
	if (!dp->started)
		return;
	uint64_t snap[DP_MAX_LANES];
	for (unsigned i = 0; i < dp->lanes; i++)
		snap[i] = atomic_load(&dp->lane[i].epoch);
	for (unsigned i = 0; i < dp->lanes; i++) {
		/* quiescent if it was idle (odd) at the snapshot, or has moved on since */
		if (snap[i] & 1)
			continue;
		for (int spins = 0; atomic_load(&dp->lane[i].epoch) == snap[i] && spins < 200000; spins++) {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
}

static void retire(struct dataplane *dp, struct esp_sa *sa)
{
	dp_synchronize(dp);
	sad_garbage_free(sad_take_garbage(dp->sad));
	if (sa) {
		esp_sa_clear(sa);
		free(sa);
	}
}

int dp_sa_add(struct dataplane *dp, struct esp_sa *sa)
{
	struct esp_sa *replaced = NULL;
	int rc = sad_add(dp->sad, sa, &replaced);
	if (rc)
		return rc;
	if (replaced || sad_has_garbage(dp->sad))
		retire(dp, replaced);
	return 0;
}

void dp_sa_take(struct dataplane *dp, uint32_t spi_in, uint32_t reqid_out, struct esp_sa *sa[2])
{
	sa[0] = spi_in ? sad_remove(dp->sad, spi_in, ESP_DIR_IN) : NULL;
	sa[1] = sad_remove_out(dp->sad, reqid_out);
	if (sa[0] || sa[1])
		retire(dp, NULL); /* one grace period for both */
}

int dp_sa_del(struct dataplane *dp, uint32_t spi, enum esp_dir dir)
{
	struct esp_sa *sa = sad_remove(dp->sad, spi, dir);
	if (!sa)
		return -ENOENT;
	retire(dp, sa);
	return 0;
}

int dp_sa_rebind(struct dataplane *dp, enum esp_dir dir, uint32_t spi_or_reqid, const struct esp_path *p)
{
	struct esp_sa *sa = dir == ESP_DIR_IN ? sad_lookup_in(dp->sad, spi_or_reqid) : sad_lookup_out(dp->sad, spi_or_reqid);
	if (!sa)
		return -ENOENT;
	esp_sa_set_path(sa, p);
	return 0;
}

void dp_set_spd(struct dataplane *dp, struct spd *spd)
{
	spd_set_dyn(spd, dp->dyn);
	struct spd *old = atomic_exchange(&dp->spd, spd);
	dp_synchronize(dp);
	spd_free(old);
}

int dp_pol_add(struct dataplane *dp, const struct spd_policy *pol)
{
	if (spd_dyn_add(dp->dyn, pol) != 0)
		return -ENOMEM;
	if (spd_dyn_has_garbage(dp->dyn)) { /* the table grew */
		dp_synchronize(dp);
		spd_dyn_reclaim(dp->dyn);
	}
	return 0;
}

int dp_pol_del(struct dataplane *dp, const struct spd_policy *pol)
{
	if (spd_dyn_remove(dp->dyn, pol) != 0)
		return -ENOENT;
	dp_synchronize(dp);
	spd_dyn_reclaim(dp->dyn);
	return 0;
}

const struct sad *dp_sad(const struct dataplane *dp) { return dp->sad; }
const struct spd *dp_spd(const struct dataplane *dp) { return atomic_load(&((struct dataplane *)dp)->spd); }
unsigned dp_lanes(const struct dataplane *dp) { return dp->lanes; }
unsigned dp_mtu(const struct dataplane *dp) { return dp->mtu; }

void dp_get_stats(const struct dataplane *dp, struct dp_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < dp->lanes; i++) {
		const struct lane_stats *s = &dp->lane[i].st;
		st->tun_rx += s->tun_rx, st->tun_tx += s->tun_tx;
		st->net_rx += s->net_rx, st->net_tx += s->net_tx;
		st->ike_rx += s->ike_rx, st->keepalive_rx += s->keepalive_rx;
		st->bypass += s->bypass, st->discard += s->discard;
		for (int d = 0; d < ESP_DROP_MAX; d++)
			st->drops[d] += s->drops[d];
	}
	st->lanes = dp->lanes;
	st->tso = dp->tso, st->udp_gso = dp->udp_gso, st->udp_gro = dp->udp_gro;
}

int dp_send_udp(struct dataplane *dp, const uint8_t *data, size_t len, const struct bt_addr *src,
		const struct bt_addr *dst, uint16_t dport)
{
	struct tx_entry e = {.data = (uint8_t *)data, .len = len,
			     .fd = dst->family == AF_INET6 ? dp->lane[0].udp6 : dp->lane[0].udp4};
	if (src && src->family == dst->family)
		e.src = *src;
	e.dst_len = bt_addr_to_sockaddr(dst, dport, &e.dst);
	return e.fd < 0 ? -EAFNOSUPPORT : sock_send(&e);
}

int dp_send_ike(struct dataplane *dp, const uint8_t *msg, size_t len, const struct bt_addr *src,
		const struct bt_addr *dst, uint16_t dport)
{
	uint8_t buf[ESP_NON_ESP_MARKER_LEN + 65535];
	if (len > 65535 - 8 - ESP_NON_ESP_MARKER_LEN)
		return -EMSGSIZE;
	memset(buf, 0, ESP_NON_ESP_MARKER_LEN);
	memcpy(buf + ESP_NON_ESP_MARKER_LEN, msg, len);
	return dp_send_udp(dp, buf, len + ESP_NON_ESP_MARKER_LEN, src, dst, dport);
}
