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

/* An SA's state as read from its attributes. */
struct esp_state {
	uint64_t seq, iv_salt, top, age, packets, bytes;
	uint32_t size, words, seen; /* seen: bit n = attribute n was there */
	uint64_t *bitmap;           /* malloc'ed, words long */
};

/* The attributes of esp_ctx_write into st (its bitmap to free); -1 if one is malformed. The replay
 * window, if there, is consistent: size is words * 64. */
static int parse_state(struct cur v, struct esp_state *st)
{
	uint16_t type;
	struct cur val;
	int r;
	memset(st, 0, sizeof(*st));
	while ((r = tlv_next(&v, &type, &val)) > 0) {
		bool ok = true;
		switch (type) {
		case ES_SEQ_OUT: ok = tlv_get_u64(val, &st->seq); break;
		case ES_IV_SALT: ok = tlv_get_u64(val, &st->iv_salt) && st->iv_salt; break;
		case ES_REPLAY_SIZE: ok = tlv_get_u32(val, &st->size) && st->size % 64 == 0 && st->size <= ESP_REPLAY_MAX; break;
		case ES_REPLAY_TOP: ok = tlv_get_u64(val, &st->top); break;
		case ES_REPLAY_BITMAP:
			if (!(ok = !st->bitmap && val.left % 8 == 0 && val.left <= ESP_REPLAY_MAX / 8))
				break;
			st->words = (uint32_t)(val.left / 8);
			ok = (st->bitmap = calloc(st->words ? st->words : 1, sizeof(*st->bitmap))) != NULL;
			for (uint32_t i = 0; ok && i < st->words; i++)
				ok = cur_u64(&val, &st->bitmap[i]);
			break;
		case ES_PACKETS: ok = tlv_get_u64(val, &st->packets); break;
		case ES_BYTES: ok = tlv_get_u64(val, &st->bytes); break;
		case ES_AGE: ok = tlv_get_u64(val, &st->age); break;
		default: break; /* a newer writer's attribute */
		}
		if (!ok)
			return -1;
		st->seen |= type < 32 ? 1u << type : 0;
	}
	return r < 0 || st->size != st->words * 64u ? -1 : 0;
}

#define ES_WINDOW ((1u << ES_REPLAY_SIZE) | (1u << ES_REPLAY_TOP) | (1u << ES_REPLAY_BITMAP))

int esp_ctx_read(struct esp_sa *sa, struct cur v, uint64_t now, uint64_t seq_jump)
{
	struct esp_state st;
	int rc = -1;
	/* everything of its direction must be there: a lost replay window would turn the check off */
	uint32_t need = (1u << ES_SEQ_OUT) | (1u << ES_IV_SALT) | (1u << ES_AGE) | (sa->dir == ESP_DIR_IN ? ES_WINDOW : 0);
	if (parse_state(v, &st) != 0 || (st.seen & need) != need || seq_jump > UINT64_MAX - 1 - st.seq)
		goto out;
	if (sa->dir == ESP_DIR_OUT)
		esp_sa_set_seq_out(sa, st.seq + seq_jump);
	else if (esp_sa_set_replay_window(sa, st.size) == 0)
		esp_sa_set_replay_state(sa, st.top, st.bitmap, st.words);
	else
		goto out;
	sa->iv_salt = st.iv_salt;
	atomic_store(&sa->ctr.packets, st.packets);
	atomic_store(&sa->ctr.bytes, st.bytes);
	sa->add_time = now > st.age ? now - st.age : 0;
	rc = 0;
out:
	free(st.bitmap);
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
	struct esp_state st;
	int rc = -1;
	if (sa->dir == ESP_DIR_IN && parse_state(v, &st) == 0 && (st.seen & ES_WINDOW) == ES_WINDOW && st.size) {
		merge_window(sa, st.top, st.bitmap, st.size);
		rc = 0;
	}
	if (sa->dir == ESP_DIR_IN)
		free(st.bitmap);
	return rc;
}
