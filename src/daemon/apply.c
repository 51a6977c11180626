/* apply.c — turning a configuration into running state, and reloading it: SAs whose parameters are
 * unchanged are kept with their counters and sequence numbers, the rest are replaced, and the SPD
 * is rebuilt. Nothing changes unless the whole new configuration could be built. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/daemon.h"
#include "util/log.h"

uint64_t daemon_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Same parameters: everything except the live state (sequence numbers, window, counters). */
static bool sa_same(const struct esp_sa *a, const struct esp_sa *b)
{
	return !strcmp(a->name, b->name) && a->spi == b->spi && a->reqid == b->reqid && a->dir == b->dir &&
	       a->mode == b->mode && a->encap == b->encap && bt_addr_eq(&a->local, &b->local) &&
	       bt_addr_eq(&a->remote, &b->remote) && a->local_port == b->local_port &&
	       a->remote_port == b->remote_port && a->n_peers == b->n_peers &&
	       (!a->n_peers || !memcmp(a->peers, b->peers, a->n_peers * sizeof(a->peers[0]))) &&
	       a->n_local_ts == b->n_local_ts && a->n_remote_ts == b->n_remote_ts &&
	       !memcmp(a->local_ts, b->local_ts, a->n_local_ts * sizeof(a->local_ts[0])) &&
	       !memcmp(a->remote_ts, b->remote_ts, a->n_remote_ts * sizeof(a->remote_ts[0])) && a->enc == b->enc &&
	       a->integ == b->integ && a->enc_key_len == b->enc_key_len &&
	       !memcmp(a->enc_key, b->enc_key, a->enc_key_len) && a->integ_key_len == b->integ_key_len &&
	       !memcmp(a->integ_key, b->integ_key, a->integ_key_len) && a->esn == b->esn &&
	       !memcmp(&a->soft, &b->soft, sizeof(a->soft)) && !memcmp(&a->hard, &b->hard, sizeof(a->hard)) &&
	       a->replay.size == b->replay.size;
}

struct sa_vec {
	struct esp_sa **v;
	size_t n, cap;
};

static int vec_push(struct sa_vec *v, struct esp_sa *sa)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct esp_sa **n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -1;
		v->v = n, v->cap = cap;
	}
	v->v[v->n++] = sa;
	return 0;
}

static int collect(struct esp_sa *sa, void *arg) { return vec_push(arg, sa); }

static void free_new(struct sa_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i]) {
			esp_sa_clear(v->v[i]);
			free(v->v[i]);
		}
	free(v->v);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* Hit counters for a new SPD, carried over by policy name (from the last old entry of that name).
 * O(n) with a hash table of the old names: the SPD is rebuilt whenever IKE Child SAs come or go. */
static struct policy_hits *prepare_hits(struct daemon *d, struct spd *spd)
{
	unsigned n = spd_count(spd);
	size_t cap = 16;
	while (cap < 2 * d->n_hits)
		cap *= 2;
	struct policy_hits *hits = calloc(n ? n : 1, sizeof(*hits));
	size_t *tab = d->n_hits ? malloc(cap * sizeof(*tab)) : NULL; /* index + 1, 0 = empty */
	if (!hits || (d->n_hits && !tab)) {
		free(hits);
		free(tab);
		return NULL;
	}
	if (tab) {
		memset(tab, 0, cap * sizeof(*tab));
		for (size_t k = 0; k < d->n_hits; k++) {
			size_t h = name_hash(d->hits[k].name) & (cap - 1);
			while (tab[h] && strcmp(d->hits[tab[h] - 1].name, d->hits[k].name))
				h = (h + 1) & (cap - 1);
			tab[h] = k + 1; /* a later entry of the same name replaces an earlier one */
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct spd_policy *p = (struct spd_policy *)spd_get(spd, i);
		size_t l = strnlen(p->name, sizeof(hits[i].name) - 1);
		memcpy(hits[i].name, p->name, l); /* calloc'd: NUL-terminated */
		if (tab) {
			size_t h = name_hash(hits[i].name) & (cap - 1);
			while (tab[h] && strcmp(d->hits[tab[h] - 1].name, hits[i].name))
				h = (h + 1) & (cap - 1);
			if (tab[h])
				atomic_store(&hits[i].hits, atomic_load(&d->hits[tab[h] - 1].hits));
		}
		p->hits = &hits[i].hits;
	}
	free(tab);
	return hits;
}

static void install_spd(struct daemon *d, struct spd *spd, struct policy_hits *hits)
{
	struct policy_hits *old_hits = d->hits;
	d->hits = hits, d->n_hits = spd_count(spd);
	dp_set_spd(d->dp, spd); /* waits for a grace period: the old counters are unused after it */
	free(old_hits);
}

int daemon_apply(struct daemon *d, struct bt_config *cfg, unsigned counts[3], char *err, size_t errlen)
{
	struct sa_vec fresh = {0}, old = {0};
	unsigned lanes = dp_lanes(d->dp), added = 0, removed = 0, kept = 0;
	int rc = -1;

	/* 1. build everything new; any failure leaves the running state alone */
	for (size_t i = 0; i < cfg->n_conns; i++)
		for (size_t j = 0; j < cfg->conns[i].n_children && !cfg->conns[i].ike; j++) {
			struct esp_sa *in, *out;
			if (config_child_sas(cfg, &cfg->conns[i], &cfg->conns[i].children[j], lanes, &in, &out,
					     err, errlen) != 0)
				goto out;
			if (vec_push(&fresh, in) || vec_push(&fresh, out)) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
	struct spd *spd = config_build_spd(cfg, err, errlen); /* the negotiated policies stay (dp_pol_add) */
	if (!spd)
		goto out;
	struct policy_hits *hits = prepare_hits(d, spd);
	if (!hits || sad_foreach(dp_sad(d->dp), collect, &old) != 0) {
		free(hits);
		spd_free(spd);
		snprintf(err, errlen, "out of memory");
		goto out;
	}

	/* 2. keep what is unchanged, remove what is gone or changed, add the rest; SAs that IKE
	 * negotiated are IKE's to keep or close (ike_mgr_reconfigured) */
	for (size_t k = 0; k < old.n; k++) {
		struct esp_sa *o = old.v[k];
		bool keep = o->reqid >= DAEMON_IKE_REQID_BASE;
		for (size_t i = 0; i < fresh.n; i++)
			if (fresh.v[i] && fresh.v[i]->dir == o->dir && fresh.v[i]->spi == o->spi &&
			    sa_same(fresh.v[i], o)) {
				esp_sa_clear(fresh.v[i]);
				free(fresh.v[i]);
				fresh.v[i] = NULL;
				keep = true;
				break;
			}
		if (keep) {
			kept++;
		} else {
			dp_sa_del(d->dp, o->spi, o->dir);
			removed++;
		}
	}
	for (size_t i = 0; i < fresh.n; i++) {
		if (!fresh.v[i])
			continue;
		int e = dp_sa_add(d->dp, fresh.v[i]);
		if (e) { /* cannot happen after validation; say so loudly rather than lose state */
			bt_err("cannot install SA %s spi 0x%08x: %s", fresh.v[i]->name, fresh.v[i]->spi, strerror(-e));
			continue;
		}
		fresh.v[i] = NULL;
		added++;
	}
	install_spd(d, spd, hits);
	config_free(d->cfg);
	d->cfg = cfg;
	ike_mgr_reconfigured(d);
	if (counts)
		counts[0] = added, counts[1] = removed, counts[2] = kept;
	rc = 0;
out:
	free_new(&fresh);
	free(old.v);
	return rc;
}

struct life_ctx {
	uint64_t now;
	struct sa_vec hard;
};

static int check_one(struct esp_sa *sa, void *arg)
{
	struct life_ctx *c = arg;
	esp_sa_check_time(sa, c->now);
	uint32_t now_ev = atomic_load(&sa->events);
	/* data-path events (bytes, packets, sequence numbers) are logged here too, once */
	uint32_t logged = now_ev >> 16;
	uint32_t fresh = (now_ev & 0xffff) & ~logged;
	if ((fresh & ESP_EV_SOFT) && sa->reqid < DAEMON_IKE_REQID_BASE) /* IKE rekeys its own on time */
		bt_warn("SA %s %s spi 0x%08x: soft lifetime reached; rekey needed (no IKE yet)", sa->name,
			sa->dir == ESP_DIR_IN ? "in" : "out", sa->spi);
	if (fresh & ESP_EV_SEQ_SOFT)
		bt_warn("SA %s spi 0x%08x: sequence numbers nearly exhausted", sa->name, sa->spi);
	if (fresh & ESP_EV_HARD) {
		bt_warn("SA %s %s spi 0x%08x: hard lifetime reached; removing it", sa->name,
			sa->dir == ESP_DIR_IN ? "in" : "out", sa->spi);
		vec_push(&c->hard, sa);
	}
	if (fresh)
		atomic_fetch_or(&sa->events, fresh << 16);
	return 0;
}

void daemon_check_lifetimes(struct daemon *d)
{
	struct life_ctx c = {.now = daemon_now()};
	sad_foreach(dp_sad(d->dp), check_one, &c);
	for (size_t i = 0; i < c.hard.n; i++)
		dp_sa_del(d->dp, c.hard.v[i]->spi, c.hard.v[i]->dir);
	free(c.hard.v);
}
