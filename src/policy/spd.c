/* spd.c — the ordered policy list, immutable once published: a sorted array, and (built by
 * spd_sort) an index for the first match. Policies whose remote selector is one address — one per
 * IKE Child SA with host selectors, thousands of them — are chained in a hash table by direction
 * and that address, in SPD order; the rest are scanned in order, but only up to the first match
 * the table gave: the result is the first matching policy, as with a plain scan. */
#include "policy/spd.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT_MAX

struct spd {
	struct spd_policy *pol;
	unsigned n, cap;
	/* the index, valid while indexed: head[hash & mask] -> next[] chains (policy indices, NONE ends),
	 * rest[0..n_rest) the unindexed policies' indices, ascending */
	bool indexed;
	unsigned *head, *next, *rest, mask, n_rest;
};

struct spd *spd_new(void) { return calloc(1, sizeof(struct spd)); }

static void drop_index(struct spd *spd)
{
	free(spd->head), free(spd->next), free(spd->rest);
	spd->head = spd->next = spd->rest = NULL;
	spd->indexed = false;
}

void spd_free(struct spd *spd)
{
	if (!spd)
		return;
	drop_index(spd);
	free(spd->pol);
	free(spd);
}

int spd_reserve(struct spd *spd, size_t n)
{
	if (n <= spd->cap)
		return 0;
	if (n > UINT_MAX / 2)
		return -1;
	struct spd_policy *p = realloc(spd->pol, n * sizeof(*p));
	if (!p)
		return -1;
	spd->pol = p, spd->cap = (unsigned)n;
	return 0;
}

void spd_adopt(struct spd *spd, struct spd_policy *pol, size_t n)
{
	drop_index(spd);
	free(spd->pol);
	spd->pol = pol, spd->n = spd->cap = (unsigned)n;
}

static int grow(struct spd *spd)
{
	return spd->n < spd->cap ? 0 : spd_reserve(spd, spd->cap ? (size_t)spd->cap * 2 : 8);
}

int spd_append(struct spd *spd, const struct spd_policy *pol)
{
	drop_index(spd);
	if (grow(spd))
		return -1;
	spd->pol[spd->n++] = *pol;
	return 0;
}

static const struct spd_policy *sort_base;

static int cmp_prio(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	uint32_t px = sort_base[x].priority, py = sort_base[y].priority;
	if (px != py)
		return px < py ? -1 : 1;
	return (x > y) - (x < y); /* stable */
}

static uint64_t addr_hash(enum spd_dir dir, const struct bt_addr *a)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)dir ^ ((uint64_t)a->family << 8);
	unsigned len = a->family == AF_INET6 ? 16 : 4;
	for (unsigned i = 0; i < len; i++)
		h = (h ^ a->b[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static bool one_addr(const struct spd_policy *p)
{
	return p->n_remote == 1 && bt_addr_eq(&p->remote[0].lo, &p->remote[0].hi);
}

/* Build the index (the SPD in its final order). Without memory the SPD stays a plain list. */
static void build_index(struct spd *spd)
{
	unsigned n = spd->n, cap = 16;
	drop_index(spd);
	while (cap < 2 * n && cap < (1u << 30))
		cap *= 2;
	spd->head = malloc(cap * sizeof(unsigned));
	spd->next = malloc((n ? n : 1) * sizeof(unsigned));
	spd->rest = malloc((n ? n : 1) * sizeof(unsigned));
	if (!spd->head || !spd->next || !spd->rest) {
		drop_index(spd);
		return;
	}
	spd->mask = cap - 1;
	memset(spd->head, 0xff, cap * sizeof(unsigned)); /* NONE */
	spd->n_rest = 0;
	/* one pass, backwards: each indexed policy pushed on the front of its chain (chains end up in
	 * SPD order), the others collected in reverse, then put in order */
	for (unsigned i = n; i-- > 0;) {
		const struct spd_policy *p = &spd->pol[i];
		spd->next[i] = NONE;
		if (!one_addr(p)) {
			spd->rest[spd->n_rest++] = i;
			continue;
		}
		unsigned *h = &spd->head[addr_hash(p->dir, &p->remote[0].lo) & spd->mask];
		spd->next[i] = *h;
		*h = i;
	}
	for (unsigned a = 0, b = spd->n_rest; a + 1 < b; a++, b--) {
		unsigned t = spd->rest[a];
		spd->rest[a] = spd->rest[b - 1], spd->rest[b - 1] = t;
	}
	spd->indexed = true;
}

int spd_sort(struct spd *spd)
{
	unsigned n = spd->n, i;
	for (i = 1; i < n && spd->pol[i - 1].priority <= spd->pol[i].priority; i++)
		;
	if (i >= n) {
		build_index(spd); /* already in order: the usual case, one priority for all */
		return 0;
	}
	unsigned *idx = malloc(n * sizeof(*idx));
	struct spd_policy *v = malloc(n * sizeof(*v));
	if (!idx || !v) {
		free(idx);
		free(v);
		return -1;
	}
	for (i = 0; i < n; i++)
		idx[i] = i;
	sort_base = spd->pol; /* built on one thread, before it is published */
	qsort(idx, n, sizeof(*idx), cmp_prio);
	for (i = 0; i < n; i++)
		v[i] = spd->pol[idx[i]];
	free(idx);
	free(spd->pol);
	spd->pol = v, spd->cap = n;
	build_index(spd);
	return 0;
}

int spd_add(struct spd *spd, const struct spd_policy *pol)
{
	drop_index(spd);
	if (grow(spd))
		return -1;
	unsigned i = spd->n;
	while (i > 0 && spd->pol[i - 1].priority > pol->priority) /* stable: after equal priorities */
		i--;
	memmove(&spd->pol[i + 1], &spd->pol[i], (spd->n - i) * sizeof(*spd->pol));
	spd->pol[i] = *pol;
	spd->n++;
	return 0;
}

static bool matches(const struct spd_policy *p, enum spd_dir dir, const struct bt_flow *f)
{
	if (p->dir != dir)
		return false;
	const struct bt_addr *l = dir == SPD_DIR_OUT ? &f->src : &f->dst;
	const struct bt_addr *r = dir == SPD_DIR_OUT ? &f->dst : &f->src;
	uint16_t lp = dir == SPD_DIR_OUT ? f->sport : f->dport;
	uint16_t rp = dir == SPD_DIR_OUT ? f->dport : f->sport;
	return bt_ts_list_match(p->local, p->n_local, l, f->proto, lp) &&
	       bt_ts_list_match(p->remote, p->n_remote, r, f->proto, rp);
}

const struct spd_policy *spd_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f)
{
	if (!spd->indexed) {
		for (unsigned i = 0; i < spd->n; i++)
			if (matches(&spd->pol[i], dir, f))
				return &spd->pol[i];
		return NULL;
	}
	/* the first match among the one-address policies for the flow's remote address... */
	const struct bt_addr *r = dir == SPD_DIR_OUT ? &f->dst : &f->src;
	unsigned best = NONE;
	for (unsigned i = spd->head[addr_hash(dir, r) & spd->mask]; i != NONE; i = spd->next[i])
		if (matches(&spd->pol[i], dir, f)) {
			best = i;
			break;
		}
	/* ...unless one of the others, before it, matches */
	for (unsigned k = 0; k < spd->n_rest && spd->rest[k] < best; k++)
		if (matches(&spd->pol[spd->rest[k]], dir, f))
			return &spd->pol[spd->rest[k]];
	return best == NONE ? NULL : &spd->pol[best];
}

unsigned spd_count(const struct spd *spd) { return spd->n; }

const struct spd_policy *spd_get(const struct spd *spd, unsigned i)
{
	return i < spd->n ? &spd->pol[i] : NULL;
}
