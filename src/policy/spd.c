/* spd.c — the ordered policy list. Small and immutable once published: a sorted array. */
#include "policy/spd.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct spd {
	struct spd_policy *pol;
	unsigned n, cap;
};

struct spd *spd_new(void) { return calloc(1, sizeof(struct spd)); }

void spd_free(struct spd *spd)
{
	if (!spd)
		return;
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
	free(spd->pol);
	spd->pol = pol, spd->n = spd->cap = (unsigned)n;
}

static int grow(struct spd *spd)
{
	return spd->n < spd->cap ? 0 : spd_reserve(spd, spd->cap ? (size_t)spd->cap * 2 : 8);
}

int spd_append(struct spd *spd, const struct spd_policy *pol)
{
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

int spd_sort(struct spd *spd)
{
	unsigned n = spd->n, i;
	for (i = 1; i < n && spd->pol[i - 1].priority <= spd->pol[i].priority; i++)
		;
	if (i >= n)
		return 0; /* already in order: the usual case, one priority for all */
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
	return 0;
}

int spd_add(struct spd *spd, const struct spd_policy *pol)
{
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

const struct spd_policy *spd_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f)
{
	for (unsigned i = 0; i < spd->n; i++) {
		const struct spd_policy *p = &spd->pol[i];
		if (p->dir != dir)
			continue;
		const struct bt_addr *l = dir == SPD_DIR_OUT ? &f->src : &f->dst;
		const struct bt_addr *r = dir == SPD_DIR_OUT ? &f->dst : &f->src;
		uint16_t lp = dir == SPD_DIR_OUT ? f->sport : f->dport;
		uint16_t rp = dir == SPD_DIR_OUT ? f->dport : f->sport;
		if (bt_ts_list_match(p->local, p->n_local, l, f->proto, lp) &&
		    bt_ts_list_match(p->remote, p->n_remote, r, f->proto, rp))
			return p;
	}
	return NULL;
}

unsigned spd_count(const struct spd *spd) { return spd->n; }

const struct spd_policy *spd_get(const struct spd *spd, unsigned i)
{
	return i < spd->n ? &spd->pol[i] : NULL;
}
