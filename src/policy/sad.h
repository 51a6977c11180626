/* sad.h — the Security Association Database: inbound SAs by SPI, outbound SAs by reqid.
 *
 * Hash tables with open addressing. One writer (the control thread) and many lock-free readers
 * (the data-path workers): slots are published with release stores and read with acquire loads.
 * A removed SA is returned to the caller, who frees it only after a grace period (dp_synchronize),
 * when no worker can still hold it. Growing builds a new table and publishes it the same way; the
 * old table array is handed back for deferred freeing through sad_take_garbage().
 */
#ifndef BT_SAD_H
#define BT_SAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp/sa.h"

struct sad;

struct sad *sad_new(void);
/* Frees the tables and every SA still in them (esp_sa_clear + free). Only when no reader runs. */
void sad_free(struct sad *s);

/* Add an SA (the SAD takes it). Inbound: keyed by SPI, which must be unique among inbound SAs;
 * outbound: keyed by reqid, one outbound SA per reqid — adding a second one for a reqid replaces
 * the first (rekey), which is returned in *replaced (or NULL). Returns 0, or -EEXIST on a duplicate
 * inbound SPI (nothing changed). */
int sad_add(struct sad *s, struct esp_sa *sa, struct esp_sa **replaced);
/* Unlink the SA with this SPI and direction; returns it (caller frees after a grace period) or NULL. */
struct esp_sa *sad_remove(struct sad *s, uint32_t spi, enum esp_dir dir);
/* The outbound SA of reqid, without a walk. */
struct esp_sa *sad_remove_out(struct sad *s, uint32_t reqid);

/* Readers (data path): lock-free. */
struct esp_sa *sad_lookup_in(const struct sad *s, uint32_t spi);
struct esp_sa *sad_lookup_out(const struct sad *s, uint32_t reqid);

/* Control thread: visit every SA (inbound then outbound). Stop early when fn returns non-zero. */
int sad_foreach(const struct sad *s, int (*fn)(struct esp_sa *sa, void *arg), void *arg);
size_t sad_count(const struct sad *s);
/* Memory retired by growing the tables; free it after a grace period. Returns NULL if none. */
void *sad_take_garbage(struct sad *s);
bool sad_has_garbage(const struct sad *s);
void sad_garbage_free(void *g);

#endif
