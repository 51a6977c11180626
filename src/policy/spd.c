/* spd.c — the ordered policy list. Small and immutable once published: a sorted array. */
#include "policy/spd.h"

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

int spd_add(struct spd *spd, const struct spd_policy *pol)
{
	if (spd->n == spd->cap) {
		unsigned cap = spd->cap ? spd->cap * 2 : 8;
		struct spd_policy *p = realloc(spd->pol, cap * sizeof(*p));
		if (!p)
			return -1;
		spd->pol = p, spd->cap = cap;
	}
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
