/* replay.h — RFC 4303 anti-replay window with ESN inference (Appendix A2). Private to esp/. */
#ifndef BT_REPLAY_H
#define BT_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "esp/sa.h"

/* The full 64-bit sequence number a received low half stands for (ESN), from the window. */
uint64_t replay_infer(const struct esp_replay *r, uint32_t seq_lo, bool esn);
/* May seq still be accepted? (no lock: a hint before decryption) */
bool replay_check(const struct esp_replay *r, uint64_t seq);
/* After authentication: check again and mark seen, under the lock. False if it was a replay. */
bool replay_update(struct esp_replay *r, uint64_t seq);

#endif
