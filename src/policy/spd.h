/* spd.h — the Security Policy Database: an ordered list of PROTECT / BYPASS / DISCARD policies, in
 * two levels.
 *
 * The static level (struct spd: the configuration's policies) is immutable once published: the
 * control thread builds a new one and swaps the pointer (dp_set_spd), and frees the old one after
 * a grace period. The dynamic level (struct spd_dyn: one policy per negotiated Child SA, thousands
 * of them) is changed in place, one policy at a time, by the one control thread while workers
 * read it lock-free; what it unlinks is freed after a grace period (spd_dyn_reclaim).
 */
#ifndef BT_SPD_H
#define BT_SPD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/ts.h"
#include "esp/sa.h"

enum spd_action { SPD_PROTECT = 0, SPD_BYPASS, SPD_DISCARD };
enum spd_dir { SPD_DIR_OUT = 0, SPD_DIR_IN = 1 };

struct spd_policy {
	char name[BT_NAME_MAX];
	uint32_t priority;  /* lower first; ties keep insertion order */
	enum spd_dir dir;
	enum spd_action action;
	/* out: src in local, dst in remote. Given to spd_add & co. they are the caller's (copied); in an
	 * SPD they point to its own exact-size copy. */
	const struct bt_ts *local, *remote;
	uint8_t n_local, n_remote;
	uint32_t reqid;     /* PROTECT: the outbound SA with this reqid */
	_Atomic uint64_t *hits; /* counter owned by the daemon, survives SPD rebuilds; may be NULL */
};

struct spd;

struct spd *spd_new(void);
void spd_free(struct spd *spd);
/* Copy the policy in; keeps the list sorted by priority (stable). Returns 0 or -1 (ENOMEM).
 * O(1) when priorities come in non-decreasing order, O(n) otherwise: for many policies use
 * spd_append and one spd_sort. */
int spd_add(struct spd *spd, const struct spd_policy *pol);
/* Room for n policies in all (one allocation instead of doubling). 0 or -1 (ENOMEM). */
int spd_reserve(struct spd *spd, size_t n);
/* Copy the policy in at the end, unordered; spd_sort before the SPD is used. 0 or -1 (ENOMEM). */
int spd_append(struct spd *spd, const struct spd_policy *pol);
/* Order by priority, stable (ties keep the order they were added in): O(n log n), nothing to move
 * if already in order; then index the SPD for spd_lookup (policies whose remote selector is one
 * address are found by hash). Adding a policy afterwards drops the index (lookups scan again).
 * 0 or -1 (ENOMEM; the SPD is unchanged). */
int spd_sort(struct spd *spd);
/* First matching policy for a flow in a direction, over both levels (the static one by a scan, or
 * after spd_sort by its index: O(1) for one-address remote selectors plus the other policies ahead
 * of the match; the dynamic one by its hash table). For SPD_DIR_OUT, src is matched against local
 * and dst against remote; for SPD_DIR_IN the other way round. NULL if none matches. Order: by
 * priority; at equal priority a dynamic policy comes before a static one, and of two dynamic ones
 * the one added later first. */
const struct spd_policy *spd_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f);
/* The static level's policies, in order. */
unsigned spd_count(const struct spd *spd);
const struct spd_policy *spd_get(const struct spd *spd, unsigned i);

/* --- the dynamic level ---------------------------------------------------------------------------
 * Policies chained in a hash table by direction and remote address when the remote selector is one
 * address (an IKE Child SA's host selectors), each chain in lookup order; the others in one more
 * chain. Adding or removing one is O(chain) (the table doubles, amortised O(1), by copying it:
 * the policies' addresses change then, so hold on to none). One writer; readers lock-free. */
struct spd_dyn;

struct spd_dyn *spd_dyn_new(void);
void spd_dyn_free(struct spd_dyn *dyn); /* no reader left: frees everything */
/* The SPD's lookups also search dyn (borrowed: it outlives the SPD; NULL = none). Before publishing. */
void spd_set_dyn(struct spd *spd, struct spd_dyn *dyn);
struct spd_dyn *spd_get_dyn(const struct spd *spd);
/* Copy the policy in (selectors included). 0 or -1 (ENOMEM: nothing changed). Afterwards, if
 * spd_dyn_has_garbage, a grace period and spd_dyn_reclaim. */
int spd_dyn_add(struct spd_dyn *dyn, const struct spd_policy *pol);
/* Unlink the policy added as pol (same direction, reqid and remote selectors). 0, or -1 if there is
 * none. Then a grace period and spd_dyn_reclaim. */
int spd_dyn_remove(struct spd_dyn *dyn, const struct spd_policy *pol);
bool spd_dyn_has_garbage(const struct spd_dyn *dyn);
/* Free what was unlinked or replaced so far: only after a grace period that began after it. */
void spd_dyn_reclaim(struct spd_dyn *dyn);
unsigned spd_dyn_count(const struct spd_dyn *dyn);
/* Both levels in lookup order, for listings (writer's thread): a malloc'd array of *n pointers,
 * valid until the next change; NULL with *n = 0 when empty or out of memory. */
const struct spd_policy **spd_list(const struct spd *spd, size_t *n);

#endif
