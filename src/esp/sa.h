/* sa.h — the ESP security association (one direction of a Child SA).
 *
 * This record is shaped for the whole roadmap: everything a Child SA needs to be exported and
 * installed on another node (context transfer, HA) is here — keys, algorithms, SPI, selectors,
 * outbound sequence number, replay window, lifetimes, counters, and the set of peer addresses it may
 * use. The data path reads and updates it from several worker threads: counters and sequence numbers
 * are atomics, the replay window has its own small lock (as Linux xfrm's x->lock).
 */
#ifndef BT_SA_H
#define BT_SA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/addr.h"
#include "policy/ts.h"

enum esp_dir { ESP_DIR_IN = 0, ESP_DIR_OUT = 1 };
enum esp_mode { ESP_MODE_TUNNEL = 0, ESP_MODE_TRANSPORT = 1 };
enum esp_encap { ESP_ENCAP_UDP = 0, ESP_ENCAP_RAW = 1 };

/* Encryption transforms; IKEv2 transform IDs (RFC 7296 / IANA) in comments. */
enum esp_enc_alg {
	ESP_ENC_NULL = 0,      /* 11, RFC 2410: integrity only */
	ESP_ENC_AES_GCM_16,    /* 20, RFC 4106: key 16/32 + 4 salt */
	ESP_ENC_CHACHA20_POLY1305, /* 28, RFC 7634: key 32 + 4 salt */
	ESP_ENC_AES_CBC,       /* 12, RFC 3602: key 16/24/32 */
	ESP_ENC_AES_CTR,       /* 13, RFC 3686: key 16/24/32 + 4 nonce */
	ESP_ENC_3DES_CBC,      /* 3: key 24 — kept for the seeds' experiments */
	ESP_ENC_MAX
};

enum esp_integ_alg {
	ESP_INTEG_NONE = 0,         /* only with AEAD */
	ESP_INTEG_HMAC_MD5_96,      /* 1 */
	ESP_INTEG_HMAC_SHA1_96,     /* 2 */
	ESP_INTEG_HMAC_SHA2_256_128, /* 12 */
	ESP_INTEG_HMAC_SHA2_384_192, /* 13 */
	ESP_INTEG_HMAC_SHA2_512_256, /* 14 */
	ESP_INTEG_MAX
};

/* Why the data path dropped a packet; counted per SA and globally. Keep names in esp_drop_name(). */
enum esp_drop {
	ESP_DROP_NONE = 0,
	ESP_DROP_MALFORMED,     /* too short, bad length, not a whole number of blocks */
	ESP_DROP_NO_SA,         /* unknown SPI inbound, or PROTECT policy without an SA outbound */
	ESP_DROP_REPLAY,        /* outside or already seen in the window */
	ESP_DROP_AUTH,          /* ICV did not verify */
	ESP_DROP_PAD,           /* padding bytes not 1, 2, 3, ... */
	ESP_DROP_NEXT_HDR,      /* next header does not fit the mode */
	ESP_DROP_POLICY,        /* inner packet outside the SA's traffic selectors */
	ESP_DROP_PEER,          /* outer source outside the SA's peer address set */
	ESP_DROP_SEQ_EXHAUSTED, /* outbound sequence number would wrap */
	ESP_DROP_EXPIRED,       /* hard lifetime reached */
	ESP_DROP_DISCARD,       /* a DISCARD policy matched */
	ESP_DROP_NOBUF,         /* no room in the buffer (MTU) */
	ESP_DROP_IO,            /* send failed */
	ESP_DROP_NOMEM,         /* a lane's crypto state could not be built on its first packet */
	ESP_DROP_MAX
};
const char *esp_drop_name(enum esp_drop d);

#define ESP_KEY_MAX 64        /* 512-bit HMAC key */
#define ESP_REPLAY_MAX 8192   /* largest configurable window, in packets */
#define ESP_REPLAY_DEFAULT 128
#define BT_PEERS_MAX 16
#define BT_NAME_MAX 64

struct esp_lifetime {
	uint64_t bytes;   /* 0 = unlimited */
	uint64_t packets;
	uint64_t seconds;
};

/* Event bits in esp_sa.events, set by the data path (bytes/packets) or esp_sa_check_time(). */
enum esp_event {
	ESP_EV_SOFT = 1u << 0,
	ESP_EV_HARD = 1u << 1,
	ESP_EV_SEQ_SOFT = 1u << 2, /* sequence number close to exhaustion: rekey */
};

struct esp_counters {
	_Atomic uint64_t packets;
	_Atomic uint64_t bytes; /* inner payload bytes */
	_Atomic uint64_t drops[ESP_DROP_MAX];
};

struct esp_replay {
	pthread_spinlock_t lock;
	uint32_t size;   /* window in packets, multiple of 64, 0 = replay check off */
	uint64_t top;    /* highest authenticated sequence number (64-bit, ESN-aware) */
	uint64_t *bitmap; /* size / 64 words, bit (seq % size) set = seen; owned (esp_sa_set_replay_window,
			   * freed by esp_sa_clear); NULL when size is 0 */
};

struct esp_xform; /* per-lane OpenSSL state, crypto.c */

struct esp_sa {
	/* identity */
	char name[BT_NAME_MAX]; /* the child's name in the config, for listings */
	uint32_t spi;           /* host order */
	uint32_t reqid;         /* ties the SA to its policies */
	enum esp_dir dir;
	enum esp_mode mode;
	enum esp_encap encap;

	/* outer endpoints: the current pair, and the set of peer addresses the SA may use. Once the SA
	 * is in the data plane they change only through esp_sa_set_path (rebind), and workers read
	 * them through esp_sa_get_path: path_seq is a sequence lock, odd while a change is under way. */
	struct bt_addr local, remote;
	uint16_t local_port, remote_port; /* UDP encapsulation, host order */
	_Atomic uint32_t path_seq;
	struct bt_prefix *peers; /* n_peers entries, owned (esp_sa_set_peers) */
	uint8_t n_peers; /* 0 = only `remote` */
	bool any_peer;   /* inbound: take authentic packets from any outer source (MOBIKE: the peer
			  * may move before we hear of it) */

	/* traffic selectors, from this node's point of view */
	struct bt_ts *local_ts, *remote_ts; /* n_local_ts + n_remote_ts entries, owned (esp_sa_set_ts) */
	uint8_t n_local_ts, n_remote_ts;

	/* transforms and keys (AEAD/CTR keys include the 4-byte salt/nonce at the end) */
	enum esp_enc_alg enc;
	enum esp_integ_alg integ;
	uint8_t enc_key[ESP_KEY_MAX + 4];
	uint8_t enc_key_len;
	uint8_t integ_key[ESP_KEY_MAX];
	uint8_t integ_key_len;
	bool esn;
	/* GCM, ChaCha20-Poly1305 and CTR send IV = sequence number XOR iv_salt: unique within the SA,
	 * and random per SA instance, so that static keys reused after a restart (sequence numbers
	 * back at 1) never repeat a nonce. Drawn by esp_sa_init unless already set (transfer). */
	uint64_t iv_salt;

	/* sequence numbers: next to send (outbound), and the replay state (inbound) */
	_Atomic uint64_t seq_out;
	_Atomic uint64_t seq_limit; /* outbound: the highest it may still send, 0 = no limit (a transfer
				     * handed the numbers above to another node: sending them here would
				     * repeat a nonce under the same key) */
	struct esp_replay replay;

	/* lifetimes, counted from add_time (CLOCK_MONOTONIC seconds) */
	struct esp_lifetime soft, hard;
	uint64_t add_time;
	_Atomic uint32_t events;
	struct esp_counters ctr;

	/* runtime crypto state, one slot per data-path lane (worker), built by that lane on its first
	 * packet for the SA (an idle SA costs no OpenSSL contexts; a slot is only touched by its lane) */
	struct esp_xform **xf;
	unsigned n_lanes;
};

/* Fill algorithms/keys/etc. in *sa first, then call esp_sa_init() to validate key lengths and build
 * the per-lane crypto state. Returns 0, or -1 with a message in err. */
int esp_sa_init(struct esp_sa *sa, unsigned n_lanes, char *err, size_t errlen);
/* Free crypto state and zero every secret. Does not free sa itself. */
void esp_sa_clear(struct esp_sa *sa);
/* Set the SA's selectors (copied into one allocation of exactly their size). Returns 0 or -1. */
int esp_sa_set_ts(struct esp_sa *sa, const struct bt_ts *local, unsigned n_local, const struct bt_ts *remote,
		  unsigned n_remote);
/* Set the peer prefixes the SA accepts (copied, exactly n <= BT_PEERS_MAX). Returns 0 or -1. */
int esp_sa_set_peers(struct esp_sa *sa, const struct bt_prefix *peers, unsigned n);
/* Set the replay window size (rounded up to 64; 0 disables); resets the window. */
int esp_sa_set_replay_window(struct esp_sa *sa, uint32_t size);
/* Context transfer needs both: jump the outbound sequence number / restore the replay state. */
void esp_sa_set_seq_out(struct esp_sa *sa, uint64_t next_seq);
void esp_sa_set_replay_state(struct esp_sa *sa, uint64_t top, const uint64_t *bitmap, uint32_t words);
/* Context transfer: the SA's runtime state (sequence number, IV salt, replay window, counters,
 * age; not its keys) as attributes (util/tlv.h), and back into an SA built (esp_sa_init) from the
 * same Child SA but not yet in the data plane: outbound sequence numbers jump forward by seq_jump;
 * an inbound SA takes the window's size and state as they were. Returns 0 or -1 (bad attributes). */
struct wbuf;
struct cur;
void esp_ctx_write(struct esp_sa *sa, struct wbuf *w, uint64_t now);
int esp_ctx_read(struct esp_sa *sa, struct cur v, uint64_t now, uint64_t seq_jump);
/* A live inbound SA takes in what another copy of it saw (the replay window in attributes written
 * by esp_ctx_write): every sequence number seen there is seen here. Returns 0 or -1. */
int esp_ctx_merge(struct esp_sa *sa, struct cur v);
/* Check the time lifetimes; sets ESP_EV_SOFT / ESP_EV_HARD. Returns the events newly raised. */
uint32_t esp_sa_check_time(struct esp_sa *sa, uint64_t now_sec);
bool esp_sa_peer_allowed(const struct esp_sa *sa, const struct bt_addr *a);

/* The outer path of an SA: what rebind changes, all at once. */
struct esp_path {
	struct bt_addr local, remote;
	uint16_t local_port, remote_port;
	enum esp_encap encap;
};
/* A consistent snapshot, lock-free (data path). */
void esp_sa_get_path(const struct esp_sa *sa, struct esp_path *p);
/* Change the path (one writer: the control thread). A worker sees the old path or the new one,
 * never a mix; SPI, keys, sequence numbers, replay window and lifetimes are untouched. */
void esp_sa_set_path(struct esp_sa *sa, const struct esp_path *p);

/* Names as strongSwan writes them in proposals ("aes128gcm16", "aes256", "sha256", ...). */
const char *esp_enc_name(enum esp_enc_alg a, unsigned key_bits);
const char *esp_integ_name(enum esp_integ_alg a);
/* Parse one ESP proposal "aes128gcm16", "aes128-sha256", "null-sha1", "3des-md5", with optional
 * "-esn"/"-noesn". Sets enc, integ, expected key lengths (bytes, incl. salt) and esn. */
int esp_proposal_parse(const char *s, enum esp_enc_alg *enc, unsigned *enc_key_len,
		       enum esp_integ_alg *integ, unsigned *integ_key_len, bool *esn);

#endif
