/* spd.h — the Security Policy Database: an ordered list of PROTECT / BYPASS / DISCARD policies.
 *
 * An SPD is immutable once published: the control thread builds a new one and swaps the pointer
 * (dp_set_spd), and frees the old one after a grace period.
 */
#ifndef BT_SPD_H
#define BT_SPD_H

#include <stdatomic.h>
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
	struct bt_ts local[BT_TS_MAX], remote[BT_TS_MAX]; /* out: src in local, dst in remote */
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
/* Take over a malloc'd array of n policies as the whole content (any earlier content is freed);
 * spd_sort before the SPD is used unless the array is in order. n < 2^31. */
void spd_adopt(struct spd *spd, struct spd_policy *pol, size_t n);
/* Copy the policy in at the end, unordered; spd_sort before the SPD is used. 0 or -1 (ENOMEM). */
int spd_append(struct spd *spd, const struct spd_policy *pol);
/* Order by priority, stable (ties keep the order they were added in): O(n log n), nothing to move
 * if already in order; then index the SPD for spd_lookup (policies whose remote selector is one
 * address are found by hash). Adding a policy afterwards drops the index (lookups scan again).
 * 0 or -1 (ENOMEM; the SPD is unchanged). */
int spd_sort(struct spd *spd);
/* First matching policy for a flow in a direction (a scan, or after spd_sort the index: O(1) for
 * one-address remote selectors plus the other policies ahead of the match). For SPD_DIR_OUT, src is matched against local
 * and dst against remote; for SPD_DIR_IN the other way round. NULL if none matches. */
const struct spd_policy *spd_lookup(const struct spd *spd, enum spd_dir dir, const struct bt_flow *f);
unsigned spd_count(const struct spd *spd);
const struct spd_policy *spd_get(const struct spd *spd, unsigned i);

#endif
