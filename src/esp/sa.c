/* sa.c — life cycle of an ESP SA: validation, per-lane crypto state, lifetimes, names. */
#include "esp/sa.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "esp/xform.h"

const char *esp_drop_name(enum esp_drop d)
{
	static const char *const names[ESP_DROP_MAX] = {
		[ESP_DROP_NONE] = "none",       [ESP_DROP_MALFORMED] = "malformed",
		[ESP_DROP_NO_SA] = "no_sa",     [ESP_DROP_REPLAY] = "replay",
		[ESP_DROP_AUTH] = "auth",       [ESP_DROP_PAD] = "pad",
		[ESP_DROP_NEXT_HDR] = "next_hdr", [ESP_DROP_POLICY] = "policy",
		[ESP_DROP_PEER] = "peer",       [ESP_DROP_SEQ_EXHAUSTED] = "seq_exhausted",
		[ESP_DROP_EXPIRED] = "expired", [ESP_DROP_DISCARD] = "discard",
		[ESP_DROP_NOBUF] = "nobuf",     [ESP_DROP_IO] = "io",
		[ESP_DROP_NOMEM] = "nomem",
	};
	return (unsigned)d < ESP_DROP_MAX ? names[d] : "?";
}

static unsigned enc_bits(const struct esp_sa *sa)
{
	switch (sa->enc) {
	case ESP_ENC_AES_GCM_16:
	case ESP_ENC_AES_CTR: return (sa->enc_key_len - 4u) * 8;
	case ESP_ENC_CHACHA20_POLY1305: return 256;
	default: return sa->enc_key_len * 8u;
	}
}

int esp_sa_init(struct esp_sa *sa, unsigned n_lanes, char *err, size_t errlen)
{
	struct xform_info xi;
	unsigned want_enc, want_integ;
	char name[32];

	if (n_lanes == 0 || n_lanes > 64) {
		snprintf(err, errlen, "bad number of lanes %u", n_lanes);
		return -1;
	}
	if (xform_info(sa->enc, sa->integ, &xi) != 0) {
		snprintf(err, errlen, "%s cannot be combined with %s", esp_enc_name(sa->enc, enc_bits(sa)),
			 esp_integ_name(sa->integ));
		return -1;
	}
	snprintf(name, sizeof(name), "%s", esp_enc_name(sa->enc, enc_bits(sa)));
	if (xform_key_lens(sa->enc, enc_bits(sa), sa->integ, &want_enc, &want_integ) != 0 ||
	    sa->enc_key_len != want_enc) {
		if (sa->enc == ESP_ENC_AES_GCM_16 || sa->enc == ESP_ENC_AES_CTR || sa->enc == ESP_ENC_AES_CBC)
			snprintf(err, errlen, "enc key for %s must be 16, 24 or 32 bytes%s, got %u", name,
				 sa->enc == ESP_ENC_AES_CBC ? "" : " plus 4 salt", sa->enc_key_len);
		else
			snprintf(err, errlen, "enc key for %s must be %u bytes, got %u", name, want_enc,
				 sa->enc_key_len);
		return -1;
	}
	if (sa->integ_key_len != want_integ) {
		snprintf(err, errlen, "integ key for %s must be %u bytes, got %u", esp_integ_name(sa->integ),
			 want_integ, sa->integ_key_len);
		return -1;
	}
	if (sa->replay.size > ESP_REPLAY_MAX || sa->replay.size % 64) {
		snprintf(err, errlen, "replay window %u out of range", sa->replay.size);
		return -1;
	}
	pthread_spin_init(&sa->replay.lock, PTHREAD_PROCESS_PRIVATE);
	if (atomic_load(&sa->seq_out) == 0)
		atomic_store(&sa->seq_out, 1);
	if (!sa->iv_salt && RAND_bytes((unsigned char *)&sa->iv_salt, sizeof(sa->iv_salt)) != 1) {
		snprintf(err, errlen, "no randomness for the IV salt");
		return -1;
	}
	sa->xf = calloc(n_lanes, sizeof(*sa->xf));
	if (!sa->xf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sa->n_lanes = n_lanes;
	if (xform_check(sa, err, errlen) != 0) {
		esp_sa_clear(sa);
		return -1;
	}
	return 0;
}

void esp_sa_clear(struct esp_sa *sa)
{
	if (sa->xf) {
		for (unsigned i = 0; i < sa->n_lanes; i++)
			xform_free(sa->xf[i]);
		free(sa->xf);
		pthread_spin_destroy(&sa->replay.lock);
	}
	sa->xf = NULL;
	sa->n_lanes = 0;
	free(sa->replay.bitmap);
	sa->replay.bitmap = NULL;
	sa->replay.size = 0;
	free(sa->peers);
	sa->peers = NULL;
	sa->n_peers = 0;
	free(sa->local_ts); /* remote_ts lies in the same allocation */
	sa->local_ts = sa->remote_ts = NULL;
	sa->n_local_ts = sa->n_remote_ts = 0;
	OPENSSL_cleanse(sa->enc_key, sizeof(sa->enc_key));
	OPENSSL_cleanse(sa->integ_key, sizeof(sa->integ_key));
}

int esp_sa_set_ts(struct esp_sa *sa, const struct bt_ts *local, unsigned n_local, const struct bt_ts *remote,
		  unsigned n_remote)
{
	if (n_local > BT_TS_MAX || n_remote > BT_TS_MAX)
		return -1;
	struct bt_ts *v = malloc((n_local + n_remote ? n_local + n_remote : 1) * sizeof(*v));
	if (!v)
		return -1;
	memcpy(v, local, n_local * sizeof(*v));
	memcpy(v + n_local, remote, n_remote * sizeof(*v));
	free(sa->local_ts);
	sa->local_ts = v, sa->remote_ts = v + n_local;
	sa->n_local_ts = (uint8_t)n_local, sa->n_remote_ts = (uint8_t)n_remote;
	return 0;
}

int esp_sa_set_peers(struct esp_sa *sa, const struct bt_prefix *peers, unsigned n)
{
	struct bt_prefix *v = NULL;
	if (n > BT_PEERS_MAX || (n && !(v = malloc(n * sizeof(*v)))))
		return -1;
	if (n)
		memcpy(v, peers, n * sizeof(*v));
	free(sa->peers);
	sa->peers = v, sa->n_peers = (uint8_t)n;
	return 0;
}

int esp_sa_set_replay_window(struct esp_sa *sa, uint32_t size)
{
	size = (size + 63) / 64 * 64;
	if (size > ESP_REPLAY_MAX)
		return -1;
	/* as large as the window: an outbound SA or a window of 128 costs nothing or 16 bytes */
	uint64_t *b = size ? calloc(size / 64, sizeof(*b)) : NULL;
	if (size && !b)
		return -1;
	free(sa->replay.bitmap);
	sa->replay.bitmap = b;
	sa->replay.size = size;
	sa->replay.top = 0;
	return 0;
}

void esp_sa_set_seq_out(struct esp_sa *sa, uint64_t next_seq)
{
	atomic_store(&sa->seq_out, next_seq ? next_seq : 1);
}

void esp_sa_set_replay_state(struct esp_sa *sa, uint64_t top, const uint64_t *bitmap, uint32_t words)
{
	if (sa->xf)
		pthread_spin_lock(&sa->replay.lock);
	sa->replay.top = top;
	if (sa->replay.bitmap) {
		memset(sa->replay.bitmap, 0, sa->replay.size / 8);
		if (words > sa->replay.size / 64)
			words = sa->replay.size / 64;
		memcpy(sa->replay.bitmap, bitmap, words * 8u);
	}
	if (sa->xf)
		pthread_spin_unlock(&sa->replay.lock);
}

uint32_t esp_sa_check_time(struct esp_sa *sa, uint64_t now_sec)
{
	uint64_t age = now_sec > sa->add_time ? now_sec - sa->add_time : 0;
	uint32_t ev = 0;
	if (sa->soft.seconds && age >= sa->soft.seconds)
		ev |= ESP_EV_SOFT;
	if (sa->hard.seconds && age >= sa->hard.seconds)
		ev |= ESP_EV_HARD;
	return ev & ~atomic_fetch_or(&sa->events, ev);
}

void esp_sa_get_path(const struct esp_sa *sa, struct esp_path *p)
{
	struct esp_sa *w = (struct esp_sa *)sa; /* the sequence counter is read, never written, here */
	for (;;) {
		uint32_t s1 = atomic_load_explicit(&w->path_seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		p->local = sa->local, p->remote = sa->remote;
		p->local_port = sa->local_port, p->remote_port = sa->remote_port;
		p->encap = sa->encap;
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&w->path_seq, memory_order_relaxed) == s1)
			return;
	}
}

void esp_sa_set_path(struct esp_sa *sa, const struct esp_path *p)
{
	uint32_t s = atomic_load_explicit(&sa->path_seq, memory_order_relaxed);
	atomic_store_explicit(&sa->path_seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	sa->local = p->local, sa->remote = p->remote;
	sa->local_port = p->local_port, sa->remote_port = p->remote_port;
	sa->encap = p->encap;
	atomic_store_explicit(&sa->path_seq, s + 2, memory_order_release);
}

bool esp_sa_peer_allowed(const struct esp_sa *sa, const struct bt_addr *a)
{
	if (sa->any_peer)
		return true;
	struct esp_path p;
	esp_sa_get_path(sa, &p);
	if (bt_addr_eq(&p.remote, a))
		return true;
	for (unsigned i = 0; i < sa->n_peers; i++)
		if (bt_prefix_contains(&sa->peers[i], a))
			return true;
	return false;
}

const char *esp_enc_name(enum esp_enc_alg a, unsigned key_bits)
{
	switch (a) {
	case ESP_ENC_NULL: return "null";
	case ESP_ENC_AES_GCM_16:
		return key_bits == 256 ? "aes256gcm16" : key_bits == 192 ? "aes192gcm16" : "aes128gcm16";
	case ESP_ENC_CHACHA20_POLY1305: return "chacha20poly1305";
	case ESP_ENC_AES_CBC: return key_bits == 256 ? "aes256" : key_bits == 192 ? "aes192" : "aes128";
	case ESP_ENC_AES_CTR:
		return key_bits == 256 ? "aes256ctr" : key_bits == 192 ? "aes192ctr" : "aes128ctr";
	case ESP_ENC_3DES_CBC: return "3des";
	default: return "?";
	}
}

const char *esp_integ_name(enum esp_integ_alg a)
{
	switch (a) {
	case ESP_INTEG_NONE: return "none";
	case ESP_INTEG_HMAC_MD5_96: return "md5";
	case ESP_INTEG_HMAC_SHA1_96: return "sha1";
	case ESP_INTEG_HMAC_SHA2_256_128: return "sha256";
	case ESP_INTEG_HMAC_SHA2_384_192: return "sha384";
	case ESP_INTEG_HMAC_SHA2_512_256: return "sha512";
	default: return "?";
	}
}

int esp_proposal_parse(const char *s, enum esp_enc_alg *enc, unsigned *enc_key_len,
		       enum esp_integ_alg *integ, unsigned *integ_key_len, bool *esn)
{
	static const struct {
		const char *name;
		enum esp_enc_alg alg;
		unsigned bits;
	} encs[] = {
		{"aes128gcm16", ESP_ENC_AES_GCM_16, 128}, {"aes192gcm16", ESP_ENC_AES_GCM_16, 192},
		{"aes256gcm16", ESP_ENC_AES_GCM_16, 256}, {"chacha20poly1305", ESP_ENC_CHACHA20_POLY1305, 256},
		{"aes128", ESP_ENC_AES_CBC, 128},         {"aes192", ESP_ENC_AES_CBC, 192},
		{"aes256", ESP_ENC_AES_CBC, 256},         {"aes128ctr", ESP_ENC_AES_CTR, 128},
		{"aes192ctr", ESP_ENC_AES_CTR, 192},      {"aes256ctr", ESP_ENC_AES_CTR, 256},
		{"3des", ESP_ENC_3DES_CBC, 192},          {"null", ESP_ENC_NULL, 0},
	};
	static const struct {
		const char *name;
		enum esp_integ_alg alg;
	} integs[] = {
		{"md5", ESP_INTEG_HMAC_MD5_96},         {"sha1", ESP_INTEG_HMAC_SHA1_96},
		{"sha256", ESP_INTEG_HMAC_SHA2_256_128}, {"sha384", ESP_INTEG_HMAC_SHA2_384_192},
		{"sha512", ESP_INTEG_HMAC_SHA2_512_256},
	};
	char buf[64], *save = NULL;
	int found_enc = -1, found_integ = -1, n = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*esn = false;
	for (char *tok = strtok_r(buf, "-", &save); tok; tok = strtok_r(NULL, "-", &save), n++) {
		bool matched = false;
		if (n == 0) {
			for (size_t i = 0; i < sizeof(encs) / sizeof(encs[0]); i++)
				if (strcasecmp(tok, encs[i].name) == 0)
					found_enc = (int)i, matched = true;
		} else if (strcasecmp(tok, "esn") == 0 || strcasecmp(tok, "noesn") == 0) {
			*esn = strcasecmp(tok, "esn") == 0;
			matched = true;
		} else if (found_integ < 0) {
			for (size_t i = 0; i < sizeof(integs) / sizeof(integs[0]); i++)
				if (strcasecmp(tok, integs[i].name) == 0)
					found_integ = (int)i, matched = true;
		}
		if (!matched)
			return -1;
	}
	if (found_enc < 0)
		return -1;
	*enc = encs[found_enc].alg;
	*integ = found_integ >= 0 ? integs[found_integ].alg : ESP_INTEG_NONE;
	return xform_key_lens(*enc, encs[found_enc].bits, *integ, enc_key_len, integ_key_len);
}
