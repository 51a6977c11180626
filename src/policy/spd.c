/* spd.c — the ordered policy list in two levels. The static one, immutable once published: a sorted
 * array, and (built by spd_sort) an index for the first match: policies whose remote selector is
 * one address are chained in a hash table by direction and that address, in SPD order; the rest
 * are scanned in order, but only up to the first match the table gave: the result is the first
 * matching policy, as with a plain scan. The dynamic one (one policy per IKE Child SA) is a hash
 * table of the same key changed in place under lock-free readers, RCU style: a node is fully
 * written before one release store links it, an unlinked node keeps its next pointer for readers
 * still on it and is freed after a grace period. */
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
	struct spd_dyn *dyn; /* borrowed */
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
	for (unsigned i = 0; i < spd->n; i++)
		free((void *)spd->pol[i].local);
	free(spd->pol);
	free(spd);
}

void spd_set_dyn(struct spd *spd, struct spd_dyn *dyn) { spd->dyn = dyn; }
struct spd_dyn *spd_get_dyn(const struct spd *spd) { return spd->dyn; }

/* *pol with its selectors copied into one exact-size allocation (local then remote). */
static int copy_ts(struct spd_policy *dst, const struct spd_policy *pol, struct bt_ts *v)
{
	unsigned nl = pol->n_local, nr = pol->n_remote;
	*dst = *pol;
	if (!v && !(v = malloc((nl + nr ? nl + nr : 1) * sizeof(*v))))
		return -1;
	if (nl)
		memcpy(v, pol->local, nl * sizeof(*v));
	if (nr)
		memcpy(v + nl, pol->remote, nr * sizeof(*v));
	dst->local = v, dst->remote = v + nl;
	return 0;
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

static int grow(struct spd *spd)
{
	return spd->n < spd->cap ? 0 : spd_reserve(spd, spd->cap ? (size_t)spd->cap * 2 : 8);
}

int spd_append(struct spd *spd, const struct spd_policy *pol)
{
	drop_index(spd);
	if (grow(spd) || copy_ts(&spd->pol[spd->n], pol, NULL))
		return -1;
	spd->n++;
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
	struct spd_policy c;
	drop_index(spd);
	if (grow(spd) || copy_ts(&c, pol, NULL))
		return -1;
	unsigned i = spd->n;
	while (i > 0 && spd->pol[i - 1].priority > pol->priority) /* stable: after equal priorities */
		i--;
	memmove(&spd->pol[i + 1], &spd->pol[i], (spd->n - i) * sizeof(*spd->pol));
	spd->pol[i] = c;
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

static const struct spd_policy *dyn_lookup(const struct spd_dyn *dyn, enum spd_dir dir, const struct bt_flow *f);

static const struct spd_policy *static_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f)
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

const struct spd_policy *spd_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f)
{
	const struct spd_policy *s = static_lookup(spd, dir, f);
	const struct spd_policy *d = spd->dyn ? dyn_lookup(spd->dyn, dir, f) : NULL;
	return d && (!s || d->priority <= s->priority) ? d : s;
}

unsigned spd_count(const struct spd *spd) { return spd->n; }

const struct spd_policy *spd_get(const struct spd *spd, unsigned i)
{
	return i < spd->n ? &spd->pol[i] : NULL;
}

/* --- the dynamic level ------------------------------------------------------------------------- */

struct dyn_node {
	_Atomic(struct dyn_node *) next;
	struct dyn_node *next_garbage;
	uint64_t seq;          /* order of addition: later first at equal priority */
	struct spd_policy pol; /* its selectors in ts[] */
	struct bt_ts ts[];
};

struct dyn_tab {
	unsigned mask;
	struct dyn_tab *next_garbage;
	_Atomic(struct dyn_node *) rest; /* policies without a one-address remote selector */
	_Atomic(struct dyn_node *) head[];
};

struct spd_dyn {
	_Atomic(struct dyn_tab *) tab;
	_Atomic unsigned n;
	uint64_t seq;
	struct dyn_tab *garbage_tabs;
	struct dyn_node *garbage_nodes;
};

#define DYN_MIN 64

static struct dyn_tab *tab_new(unsigned cap)
{
	struct dyn_tab *t = calloc(1, sizeof(*t) + cap * sizeof(t->head[0])); /* NULL heads */
	if (t)
		t->mask = cap - 1;
	return t;
}

struct spd_dyn *spd_dyn_new(void)
{
	struct spd_dyn *d = calloc(1, sizeof(*d));
	struct dyn_tab *t = d ? tab_new(DYN_MIN) : NULL;
	if (!t) {
		free(d);
		return NULL;
	}
	atomic_init(&d->tab, t);
	return d;
}

static void free_chain(struct dyn_node *n)
{
	for (struct dyn_node *next; n; n = next) {
		next = atomic_load_explicit(&n->next, memory_order_relaxed);
		free(n);
	}
}

static void free_tab(struct dyn_tab *t)
{
	for (unsigned i = 0; i <= t->mask; i++)
		free_chain(atomic_load_explicit(&t->head[i], memory_order_relaxed));
	free_chain(atomic_load_explicit(&t->rest, memory_order_relaxed));
	free(t);
}

void spd_dyn_reclaim(struct spd_dyn *d)
{
	for (struct dyn_tab *t = d->garbage_tabs, *next; t; t = next) {
		next = t->next_garbage;
		free(t); /* its nodes were copied into the new table, and are garbage too */
	}
	for (struct dyn_node *n = d->garbage_nodes, *next; n; n = next) {
		next = n->next_garbage;
		free(n);
	}
	d->garbage_tabs = NULL, d->garbage_nodes = NULL;
}

void spd_dyn_free(struct spd_dyn *d)
{
	if (!d)
		return;
	spd_dyn_reclaim(d);
	free_tab(atomic_load_explicit(&d->tab, memory_order_relaxed));
	free(d);
}

bool spd_dyn_has_garbage(const struct spd_dyn *d) { return d->garbage_tabs || d->garbage_nodes; }
unsigned spd_dyn_count(const struct spd_dyn *d) { return atomic_load_explicit(&d->n, memory_order_relaxed); }

/* a before b in lookup order */
static bool dyn_before(const struct dyn_node *a, const struct dyn_node *b)
{
	return a->pol.priority < b->pol.priority || (a->pol.priority == b->pol.priority && a->seq > b->seq);
}

static _Atomic(struct dyn_node *) *dyn_chain(struct dyn_tab *t, const struct spd_policy *p)
{
	return one_addr(p) ? &t->head[addr_hash(p->dir, &p->remote[0].lo) & t->mask] : &t->rest;
}

/* Link n into its chain in lookup order: fully written first, then published by one release store. */
static void dyn_link(struct dyn_tab *t, struct dyn_node *n)
{
	_Atomic(struct dyn_node *) *pp = dyn_chain(t, &n->pol);
	struct dyn_node *c;
	while ((c = atomic_load_explicit(pp, memory_order_relaxed)) && dyn_before(c, n))
		pp = &c->next;
	atomic_store_explicit(&n->next, c, memory_order_relaxed);
	atomic_store_explicit(pp, n, memory_order_release);
}

static struct dyn_node *node_copy(const struct spd_policy *pol, uint64_t seq)
{
	size_t nts = (size_t)pol->n_local + pol->n_remote;
	struct dyn_node *n = malloc(sizeof(*n) + nts * sizeof(n->ts[0]));
	if (!n)
		return NULL;
	copy_ts(&n->pol, pol, n->ts);
	n->seq = seq;
	n->next_garbage = NULL;
	atomic_init(&n->next, NULL);
	return n;
}

/* Twice the buckets: a new table with copies of every node, published whole; the old table and
 * nodes become garbage. Chains keep their order: old chain i splits into new chains i and i + cap,
 * each appended at its tail. */
static int dyn_grow(struct spd_dyn *d)
{
	struct dyn_tab *o = atomic_load_explicit(&d->tab, memory_order_relaxed);
	unsigned cap = o->mask + 1;
	struct dyn_tab *t = tab_new(2 * cap);
	if (!t)
		return -1;
	struct dyn_node *copies = NULL; /* to undo */
	for (unsigned i = 0; i <= cap; i++) {
		_Atomic(struct dyn_node *) *tail[2] = {i < cap ? &t->head[i] : &t->rest, i < cap ? &t->head[i + cap] : NULL};
		for (struct dyn_node *c = atomic_load_explicit(i < cap ? &o->head[i] : &o->rest, memory_order_relaxed); c;
		     c = atomic_load_explicit(&c->next, memory_order_relaxed)) {
			struct dyn_node *n = node_copy(&c->pol, c->seq);
			if (!n) {
				for (struct dyn_node *next; copies; copies = next)
					next = copies->next_garbage, free(copies);
				free(t);
				return -1;
			}
			n->next_garbage = copies, copies = n;
			unsigned k = i < cap && dyn_chain(t, &n->pol) == &t->head[i + cap];
			atomic_store_explicit(tail[k], n, memory_order_relaxed);
			tail[k] = &n->next;
		}
	}
	for (struct dyn_node *next; copies; copies = next)
		next = copies->next_garbage, copies->next_garbage = NULL;
	atomic_store_explicit(&d->tab, t, memory_order_release);
	for (unsigned i = 0; i <= cap; i++)
		for (struct dyn_node *c = atomic_load_explicit(i < cap ? &o->head[i] : &o->rest, memory_order_relaxed); c;
		     c = atomic_load_explicit(&c->next, memory_order_relaxed))
			c->next_garbage = d->garbage_nodes, d->garbage_nodes = c;
	o->next_garbage = d->garbage_tabs, d->garbage_tabs = o;
	return 0;
}

int spd_dyn_add(struct spd_dyn *d, const struct spd_policy *pol)
{
	struct dyn_tab *t = atomic_load_explicit(&d->tab, memory_order_relaxed);
	unsigned n = atomic_load_explicit(&d->n, memory_order_relaxed);
	if (n >= t->mask + 1 && dyn_grow(d) == 0) /* without memory: longer chains */
		t = atomic_load_explicit(&d->tab, memory_order_relaxed);
	struct dyn_node *x = node_copy(pol, ++d->seq);
	if (!x)
		return -1;
	dyn_link(t, x);
	atomic_store_explicit(&d->n, n + 1, memory_order_relaxed);
	return 0;
}

static bool same_remote(const struct spd_policy *a, const struct spd_policy *b)
{
	return a->n_remote == b->n_remote && !memcmp(a->remote, b->remote, a->n_remote * sizeof(a->remote[0]));
}

int spd_dyn_remove(struct spd_dyn *d, const struct spd_policy *pol)
{
	struct dyn_tab *t = atomic_load_explicit(&d->tab, memory_order_relaxed);
	_Atomic(struct dyn_node *) *pp = dyn_chain(t, pol);
	for (struct dyn_node *c; (c = atomic_load_explicit(pp, memory_order_relaxed)); pp = &c->next) {
		if (c->pol.reqid != pol->reqid || c->pol.dir != pol->dir || !same_remote(&c->pol, pol))
			continue;
		/* readers on c still find their way on through c->next, kept until c is freed */
		atomic_store_explicit(pp, atomic_load_explicit(&c->next, memory_order_relaxed), memory_order_release);
		c->next_garbage = d->garbage_nodes, d->garbage_nodes = c;
		atomic_store_explicit(&d->n, atomic_load_explicit(&d->n, memory_order_relaxed) - 1, memory_order_relaxed);
		return 0;
	}
	return -1;
}

static const struct spd_policy *dyn_lookup(const struct spd_dyn *d, enum spd_dir dir, const struct bt_flow *f)
{
	if (!atomic_load_explicit(&d->n, memory_order_relaxed))
		return NULL;
	const struct dyn_tab *t = atomic_load_explicit(&d->tab, memory_order_acquire);
	const struct bt_addr *r = dir == SPD_DIR_OUT ? &f->dst : &f->src;
	const struct dyn_node *best = NULL, *c;
	for (c = atomic_load_explicit(&t->head[addr_hash(dir, r) & t->mask], memory_order_acquire); c;
	     c = atomic_load_explicit(&c->next, memory_order_acquire))
		if (matches(&c->pol, dir, f)) {
			best = c;
			break;
		}
	for (c = atomic_load_explicit(&t->rest, memory_order_acquire); c && (!best || dyn_before(c, best));
	     c = atomic_load_explicit(&c->next, memory_order_acquire))
		if (matches(&c->pol, dir, f))
			return &c->pol;
	return best ? &best->pol : NULL;
}

static int cmp_dyn(const void *a, const void *b)
{
	const struct dyn_node *x = *(const struct dyn_node *const *)a, *y = *(const struct dyn_node *const *)b;
	return dyn_before(x, y) ? -1 : dyn_before(y, x) ? 1 : 0;
}

const struct spd_policy **spd_list(const struct spd *spd, size_t *n)
{
	const struct spd_dyn *d = spd->dyn;
	size_t nd = d ? spd_dyn_count(d) : 0, k = 0;
	*n = 0;
	if (nd + spd->n == 0)
		return NULL;
	const struct spd_policy **out = malloc((nd + spd->n) * sizeof(*out));
	const struct dyn_node **v = malloc((nd ? nd : 1) * sizeof(*v));
	if (!out || !v) {
		free(out), free(v);
		return NULL;
	}
	if (d) {
		const struct dyn_tab *t = atomic_load_explicit(&d->tab, memory_order_relaxed);
		for (unsigned i = 0; i <= t->mask + 1; i++)
			for (const struct dyn_node *c = atomic_load_explicit(i <= t->mask ? &t->head[i] : &t->rest,
									    memory_order_relaxed);
			     c && k < nd; c = atomic_load_explicit(&c->next, memory_order_relaxed))
				v[k++] = c;
		qsort(v, k, sizeof(*v), cmp_dyn);
	}
	/* merged: at equal priority the dynamic ones first, as spd_lookup has it */
	size_t i = 0, j = 0;
	while (i < k || j < spd->n)
		if (i < k && (j >= spd->n || v[i]->pol.priority <= spd->pol[j].priority))
			out[(*n)++] = &v[i++]->pol;
		else
			out[(*n)++] = &spd->pol[j++];
	free(v);
	return out;
}
