/* sad.c — the SAD: two open-addressing hash tables (inbound by SPI, outbound by reqid) with one
 * writer and lock-free readers. Slots hold SA pointers published with release stores; a removed SA
 * leaves a tombstone; growing publishes a rebuilt table and retires the old one as garbage. */
#include "policy/sad.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TOMB ((struct esp_sa *)1)
#define MIN_SLOTS 64

struct sad_table {
	size_t mask;
	struct sad_table *next_garbage;
	_Atomic(struct esp_sa *) slots[];
};

struct sad_index {
	_Atomic(struct sad_table *) t;
	size_t used, tombs; /* writer-side bookkeeping */
	bool by_reqid;
};

struct sad {
	struct sad_index in, out;
	struct sad_table *garbage;
};

static inline uint32_t key_of(const struct sad_index *ix, const struct esp_sa *sa)
{
	return ix->by_reqid ? sa->reqid : sa->spi;
}

static inline size_t hash32(uint32_t k)
{
	/* SPIs may be sequential or chosen by peers: mix all bits (murmur3 finaliser) */
	k ^= k >> 16;
	k *= 0x85ebca6bu;
	k ^= k >> 13;
	k *= 0xc2b2ae35u;
	k ^= k >> 16;
	return k;
}

static struct sad_table *table_new(size_t slots)
{
	struct sad_table *t = calloc(1, sizeof(*t) + slots * sizeof(t->slots[0]));
	if (t)
		t->mask = slots - 1;
	return t;
}

struct sad *sad_new(void)
{
	struct sad *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->out.by_reqid = true;
	struct sad_table *a = table_new(MIN_SLOTS), *b = table_new(MIN_SLOTS);
	if (!a || !b) {
		free(a), free(b), free(s);
		return NULL;
	}
	atomic_store(&s->in.t, a);
	atomic_store(&s->out.t, b);
	return s;
}

static void free_index(struct sad_index *ix)
{
	struct sad_table *t = atomic_load(&ix->t);
	for (size_t i = 0; i <= t->mask; i++) {
		struct esp_sa *sa = atomic_load(&t->slots[i]);
		if (sa && sa != TOMB) {
			esp_sa_clear(sa);
			free(sa);
		}
	}
	free(t);
}

void sad_free(struct sad *s)
{
	if (!s)
		return;
	free_index(&s->in);
	free_index(&s->out);
	sad_garbage_free(sad_take_garbage(s));
	free(s);
}

static struct esp_sa *lookup(const struct sad_index *ix, uint32_t key, size_t *slot)
{
	struct sad_table *t = atomic_load_explicit(&ix->t, memory_order_acquire);
	size_t i = hash32(key) & t->mask;
	for (size_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
		struct esp_sa *sa = atomic_load_explicit(&t->slots[i], memory_order_acquire);
		if (!sa)
			return NULL;
		if (sa != TOMB && key_of(ix, sa) == key) {
			if (slot)
				*slot = i;
			return sa;
		}
	}
	return NULL;
}

struct esp_sa *sad_lookup_in(const struct sad *s, uint32_t spi) { return lookup(&s->in, spi, NULL); }
struct esp_sa *sad_lookup_out(const struct sad *s, uint32_t reqid) { return lookup(&s->out, reqid, NULL); }

static void place(struct sad_table *t, const struct sad_index *ix, struct esp_sa *sa)
{
	size_t i = hash32(key_of(ix, sa)) & t->mask;
	for (;;) {
		struct esp_sa *cur = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
		if (!cur || cur == TOMB) {
			atomic_store_explicit(&t->slots[i], sa, memory_order_release);
			return;
		}
		i = (i + 1) & t->mask;
	}
}

/* Keep the load (live + tombstones) under 3/4: rebuild into a fresh table when it would pass. */
static int make_room(struct sad *s, struct sad_index *ix)
{
	struct sad_table *t = atomic_load(&ix->t);
	size_t cap = t->mask + 1;
	if ((ix->used + ix->tombs + 1) * 4 <= cap * 3)
		return 0;
	size_t ncap = cap;
	while ((ix->used + 1) * 2 > ncap)
		ncap *= 2;
	struct sad_table *n = table_new(ncap);
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++) {
		struct esp_sa *sa = atomic_load(&t->slots[i]);
		if (sa && sa != TOMB)
			place(n, ix, sa);
	}
	atomic_store_explicit(&ix->t, n, memory_order_release);
	ix->tombs = 0;
	t->next_garbage = s->garbage; /* readers may still walk it until a grace period */
	s->garbage = t;
	return 0;
}

int sad_add(struct sad *s, struct esp_sa *sa, struct esp_sa **replaced)
{
	struct sad_index *ix = sa->dir == ESP_DIR_IN ? &s->in : &s->out;
	size_t slot;
	if (replaced)
		*replaced = NULL;
	struct esp_sa *old = lookup(ix, key_of(ix, sa), &slot);
	if (old) {
		if (ix == &s->in)
			return -EEXIST;
		atomic_store_explicit(&atomic_load(&ix->t)->slots[slot], sa, memory_order_release);
		if (replaced)
			*replaced = old;
		return 0;
	}
	int rc = make_room(s, ix);
	if (rc)
		return rc;
	struct sad_table *t = atomic_load(&ix->t);
	size_t i = hash32(key_of(ix, sa)) & t->mask;
	while (atomic_load(&t->slots[i]) && atomic_load(&t->slots[i]) != TOMB)
		i = (i + 1) & t->mask;
	if (atomic_load(&t->slots[i]) == TOMB)
		ix->tombs--;
	atomic_store_explicit(&t->slots[i], sa, memory_order_release);
	ix->used++;
	return 0;
}

struct esp_sa *sad_remove(struct sad *s, uint32_t spi, enum esp_dir dir)
{
	struct sad_index *ix = dir == ESP_DIR_IN ? &s->in : &s->out;
	struct sad_table *t = atomic_load(&ix->t);
	if (dir == ESP_DIR_IN) {
		size_t slot;
		struct esp_sa *sa = lookup(ix, spi, &slot);
		if (!sa)
			return NULL;
		atomic_store_explicit(&t->slots[slot], TOMB, memory_order_release);
		ix->used--, ix->tombs++;
		return sa;
	}
	/* outbound SAs are keyed by reqid: find the one with this SPI (sad_remove_out: by reqid) */
	for (size_t i = 0; i <= t->mask; i++) {
		struct esp_sa *sa = atomic_load(&t->slots[i]);
		if (sa && sa != TOMB && sa->spi == spi) {
			atomic_store_explicit(&t->slots[i], TOMB, memory_order_release);
			ix->used--, ix->tombs++;
			return sa;
		}
	}
	return NULL;
}

struct esp_sa *sad_remove_out(struct sad *s, uint32_t reqid)
{
	struct sad_index *ix = &s->out;
	size_t slot;
	struct esp_sa *sa = lookup(ix, reqid, &slot);
	if (!sa)
		return NULL;
	atomic_store_explicit(&atomic_load(&ix->t)->slots[slot], TOMB, memory_order_release);
	ix->used--, ix->tombs++;
	return sa;
}

int sad_foreach(const struct sad *s, int (*fn)(struct esp_sa *sa, void *arg), void *arg)
{
	const struct sad_index *ixs[2] = {&s->in, &s->out};
	for (int k = 0; k < 2; k++) {
		struct sad_table *t = atomic_load(&ixs[k]->t);
		for (size_t i = 0; i <= t->mask; i++) {
			struct esp_sa *sa = atomic_load(&t->slots[i]);
			if (sa && sa != TOMB) {
				int rc = fn(sa, arg);
				if (rc)
					return rc;
			}
		}
	}
	return 0;
}

size_t sad_count(const struct sad *s) { return s->in.used + s->out.used; }

bool sad_has_garbage(const struct sad *s) { return s->garbage != NULL; }

void *sad_take_garbage(struct sad *s)
{
	void *g = s->garbage;
	s->garbage = NULL;
	return g;
}

void sad_garbage_free(void *g)
{
	struct sad_table *t = g;
	while (t) {
		struct sad_table *next = t->next_garbage;
		free(t);
		t = next;
	}
}
