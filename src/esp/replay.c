/* replay.c — the anti-replay window: a ring bitmap indexed by sequence number, top = highest seen. */
#include "esp/replay.h"

#include <string.h>

uint64_t replay_infer(const struct esp_replay *r, uint32_t seq_lo, bool esn)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_RELAXED);
	if (!esn)
		return seq_lo;
	uint32_t th = (uint32_t)(top >> 32), tl = (uint32_t)top;
	uint32_t w = r->size ? r->size : 64;
	uint32_t bottom = tl - w + 1; /* wraps in case B */
	uint32_t sh;
	if (tl >= w - 1)              /* case A: the window lies within one subspace */
		sh = seq_lo >= bottom ? th : th + 1;
	else                          /* case B: the window spans two subspaces */
		sh = seq_lo >= bottom ? (th ? th - 1 : 0) : th;
	return (uint64_t)sh << 32 | seq_lo;
}

static bool seen(const struct esp_replay *r, uint64_t seq)
{
	uint64_t bit = seq % r->size;
	return r->bitmap[bit / 64] >> (bit % 64) & 1;
}

bool replay_check(const struct esp_replay *r, uint64_t seq)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_RELAXED);
	if (seq == 0)
		return false; /* never sent: the first packet carries 1 */
	if (r->size == 0 || seq > top)
		return true;
	if (top - seq >= r->size)
		return false;
	return !seen(r, seq);
}

bool replay_update(struct esp_replay *r, uint64_t seq)
{
	bool ok = true;
	pthread_spin_lock(&r->lock);
	if (r->size == 0) {
		if (seq > r->top)
			__atomic_store_n(&r->top, seq, __ATOMIC_RELAXED);
		goto out;
	}
	if (!replay_check(r, seq)) {
		ok = false;
		goto out;
	}
	if (seq > r->top) {
		uint64_t diff = seq - r->top;
		if (diff >= r->size) {
			memset(r->bitmap, 0, r->size / 8);
		} else {
			/* clear the slots the window slides over, word-wise where possible */
			/* count the distance down: s itself may reach 2^64 - 1 with ESN and must not wrap */
			uint64_t s = r->top + 1;
			for (uint64_t left = diff; left;) {
				uint64_t bit = s % r->size;
				if (bit % 64 == 0 && left >= 64) {
					r->bitmap[bit / 64] = 0;
					s += 64, left -= 64;
				} else {
					r->bitmap[bit / 64] &= ~(1ull << (bit % 64));
					s++, left--;
				}
			}
		}
		__atomic_store_n(&r->top, seq, __ATOMIC_RELAXED);
	}
	uint64_t bit = seq % r->size;
	r->bitmap[bit / 64] |= 1ull << (bit % 64);
out:
	pthread_spin_unlock(&r->lock);
	return ok;
}
