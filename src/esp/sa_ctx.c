/* sa_ctx.c — what a transfer carries of an ESP SA besides its keys (which come from the Child SA):
 * the outbound sequence number and IV salt, the replay window, the counters lifetimes run on, and
 * the SA's age. */
#include <stdlib.h>
#include <string.h>

#include "esp/replay.h"
#include "esp/sa.h"
#include "util/tlv.h"

enum { ES_SEQ_OUT = 1, ES_IV_SALT, ES_REPLAY_SIZE, ES_REPLAY_TOP, ES_REPLAY_BITMAP, ES_PACKETS, ES_BYTES, ES_AGE };

void esp_ctx_write(struct esp_sa *sa, struct wbuf *w, uint64_t now)
{
	tlv_u64(w, ES_SEQ_OUT, atomic_load(&sa->seq_out));
	tlv_u64(w, ES_IV_SALT, sa->iv_salt);
	tlv_u64(w, ES_PACKETS, atomic_load(&sa->ctr.packets));
	tlv_u64(w, ES_BYTES, atomic_load(&sa->ctr.bytes));
	tlv_u64(w, ES_AGE, now > sa->add_time ? now - sa->add_time : 0);
	if (sa->dir == ESP_DIR_OUT)
		return;
	if (sa->xf)
		pthread_spin_lock(&sa->replay.lock);
	tlv_u32(w, ES_REPLAY_SIZE, sa->replay.size);
	tlv_u64(w, ES_REPLAY_TOP, sa->replay.top);
	size_t at = tlv_open(w, ES_REPLAY_BITMAP);
	for (uint32_t i = 0; i < sa->replay.size / 64; i++)
		wbuf_u64(w, sa->replay.bitmap[i]);
	tlv_close(w, at);
	if (sa->xf)
		pthread_spin_unlock(&sa->replay.lock);
}

int esp_ctx_read(struct esp_sa *sa, struct cur v, uint64_t now, uint64_t seq_jump)
{
	uint64_t seq = 0, top = 0, age = 0, packets = 0, bytes = 0, *bitmap = NULL;
	uint32_t size = 0, words = 0, seen = 0;
	uint16_t type;
	struct cur val;
	int r, rc = -1;
	while ((r = tlv_next(&v, &type, &val)) > 0) {
		bool ok = true;
		switch (type) {
		case ES_SEQ_OUT: ok = tlv_get_u64(val, &seq); break;
		case ES_IV_SALT: ok = tlv_get_u64(val, &sa->iv_salt) && sa->iv_salt; break;
		case ES_REPLAY_SIZE: ok = tlv_get_u32(val, &size) && size % 64 == 0 && size <= ESP_REPLAY_MAX; break;
		case ES_REPLAY_TOP: ok = tlv_get_u64(val, &top); break;
		case ES_REPLAY_BITMAP:
			if (!(ok = !bitmap && val.left % 8 == 0 && val.left <= ESP_REPLAY_MAX / 8))
				break;
			words = (uint32_t)(val.left / 8);
			ok = (bitmap = calloc(words ? words : 1, sizeof(*bitmap))) != NULL;
			for (uint32_t i = 0; ok && i < words; i++)
				ok = cur_u64(&val, &bitmap[i]);
			break;
		case ES_PACKETS: ok = tlv_get_u64(val, &packets); break;
		case ES_BYTES: ok = tlv_get_u64(val, &bytes); break;
		case ES_AGE: ok = tlv_get_u64(val, &age); break;
		default: break; /* a newer writer's attribute */
		}
		if (!ok)
			goto out;
		seen |= type < 32 ? 1u << type : 0;
	}
	/* everything of its direction must be there: a lost replay window would turn the check off */
	uint32_t need = (1u << ES_SEQ_OUT) | (1u << ES_IV_SALT) | (1u << ES_AGE) |
			(sa->dir == ESP_DIR_IN ? (1u << ES_REPLAY_SIZE) | (1u << ES_REPLAY_TOP) | (1u << ES_REPLAY_BITMAP) : 0);
	if (r < 0 || (seen & need) != need || (sa->dir == ESP_DIR_IN && size != words * 64u) ||
	    seq_jump > UINT64_MAX - 1 - seq)
		goto out;
	if (sa->dir == ESP_DIR_OUT) {
		esp_sa_set_seq_out(sa, seq + seq_jump);
	} else if (esp_sa_set_replay_window(sa, size) == 0) {
		esp_sa_set_replay_state(sa, top, bitmap, words);
	} else {
		goto out;
	}
	atomic_store(&sa->ctr.packets, packets);
	atomic_store(&sa->ctr.bytes, bytes);
	sa->add_time = now > age ? now - age : 0;
	rc = 0;
out:
	free(bitmap);
	return rc;
}

/* Every sequence number the window (top, bitmap of size bits) has seen, marked seen in sa's. */
static void merge_window(struct esp_sa *sa, uint64_t top, const uint64_t *bitmap, uint32_t size)
{
	uint64_t lo = top >= size ? top - size + 1 : 1;
	for (uint64_t seq = lo; seq && seq <= top; seq++) {
		uint64_t bit = seq % size;
		if (seq == top || bitmap[bit / 64] >> (bit % 64) & 1) /* top: the highest seen, by definition */
			replay_update(&sa->replay, seq);
	}
}

int esp_ctx_merge(struct esp_sa *sa, struct cur v)
{
	uint64_t top = 0, *bitmap = NULL;
	uint32_t size = 0;
	uint16_t type;
	struct cur val;
	int r, rc = -1;
	if (sa->dir != ESP_DIR_IN)
		return -1;
	while ((r = tlv_next(&v, &type, &val)) > 0) {
		bool ok = true;
		if (type == ES_REPLAY_SIZE)
			ok = tlv_get_u32(val, &size) && size % 64 == 0 && size <= ESP_REPLAY_MAX;
		else if (type == ES_REPLAY_TOP)
			ok = tlv_get_u64(val, &top);
		else if (type == ES_REPLAY_BITMAP && !bitmap && val.left % 8 == 0 && val.left <= ESP_REPLAY_MAX / 8) {
			bitmap = calloc(val.left / 8 + 1, sizeof(*bitmap));
			for (size_t i = 0; bitmap && val.left; i++)
				cur_u64(&val, &bitmap[i]);
			ok = bitmap != NULL;
		} else if (type == ES_REPLAY_BITMAP)
			ok = false;
		if (!ok)
			goto out;
	}
	if (r < 0 || !bitmap || !size)
		goto out;
	merge_window(sa, top, bitmap, size);
	rc = 0;
out:
	free(bitmap);
	return rc;
}
