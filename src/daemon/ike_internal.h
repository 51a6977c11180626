/* ike_internal.h — what the pieces of batond's IKE share: the manager, its sessions and their Child
 * SAs, and the helpers of ike.c, ike_sess.c, ike_send.c, ike_child.c, mobike.c and ike_list.c. Not for other users. */
#ifndef BT_DAEMON_IKE_INTERNAL_H
#define BT_DAEMON_IKE_INTERNAL_H

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "esp/esp_wire.h"
#include "ike/ike_cookie.h"
#include "ike/ike_sa.h"
#include "util/log.h"
#include "util/tlv.h"

#define SESS_BUCKETS 16384
#define RXQ_MAX 4096
#define ACQ_MAX 65536
#define IKE_REQID_BASE DAEMON_IKE_REQID_BASE
#define MSG_BUF 65536

struct rx_item {
	struct rx_item *next;
	struct bt_addr src, dst;
	uint16_t sport, dport;
	size_t len;
	uint8_t data[];
};

struct ike_sess {
	struct ike_sess *next_local, *next_peer, *next_old, *next_red, *next_all, **prev_all, *next_conn, **prev_conn;
	struct ike_mgr *m;
	char conn[BT_NAME_MAX], child[BT_NAME_MAX];
	uint8_t conf_fp[32];         /* what the configuration said, to notice changes on reload */
	struct ike_sa sa;
	struct conf_ref *cref;       /* the configuration the engine borrows (sa.conf), shared */
	struct bt_addr contact;      /* counted in the manager's contacts (initiator), family 0 = not */
	uint64_t local_key;          /* our SPI, once known (0: not in the local table) */
	uint64_t old_key;            /* our SPI of the rekeyed IKE SA until its delete completes */
	uint64_t red_key;            /* our SPI of the redundant IKE SA of a rekey collision, until deleted */
	bool in_peer_table;
	struct bt_addr local, remote;
	uint16_t lport, rport;
	bool natt;                   /* IKE and ESP on the NAT-T port */
	uint8_t *req;                /* our request in flight, for retransmission */
	size_t req_len;
	unsigned tries;
	ev_timer rtx, dpd, ka, irekey, want_w;
	struct sess_child *ch[IKE_CHILD_MAX]; /* the data plane's side of the engine's sa.child[k] */
	const struct ike_conf **alt; /* responder, connection with several children: each child's
				      * configuration (held references), for sa.child_confs */
	uint8_t n_alt;
	uint32_t want;               /* children (bit j: the connection's children[j]) to bring up with
				      * CREATE_CHILD_SA once the IKE SA is up and idle */
	struct conf_ref *creating;   /* the configuration of the new Child SA we asked for (held) */
	uint64_t rekeys;
	double started, established;
	uint64_t last_in_packets;
	bool half_open, closing;
	/* MOBIKE, original initiator: where our requests go while a path is tested (tx_override), the
	 * path under test, and what waits for the request slot */
	bool tx_override, mob_update, mob_recheck, mob_addrs, probe_abandoned;
	struct bt_addr tx_local, tx_remote, probe_local, probe_remote;
	uint16_t tx_rport, probe_lport, probe_rport;
	uint64_t moves;
	double moved_at;
	bool gw_update_wait;         /* Multi-LAN transfer: our address update is not answered yet */
};

/* A Child SA of a session as the data plane has it: its SAs, its outbound policy, its rekey timer. */
struct sess_child {
	struct ike_sess *s;
	char name[BT_NAME_MAX];
	struct conf_ref *cref;       /* the engine configuration it was made for (held) */
	bool installed, closing;     /* closing: our delete of it is owed or in flight */
	bool owe_old_delete;         /* our rekey made the new one: we delete the old one */
	uint32_t spi_in, spi_out, reqid;
	uint32_t old_spi_in;         /* the rekeyed child's inbound SA, until its delete completes */
	struct esp_sa *next_out;     /* rekey responder: the new outbound SA, used once the old child is gone */
	uint64_t rekeys;
	struct bt_ts *pol_ts;        /* the Child SA's outbound policy: pol_nl local then pol_nr remote */
	uint8_t pol_nl, pol_nr;
	uint32_t pol_prio;
	_Atomic uint64_t pol_hits;   /* its hit counter (the SPD's copy points here) */
	bool spi_collision;          /* transferred in, its inbound SPI held by another SA here: no
				      * inbound SA (spi_in 0) until the rekey that fixes it */
	ev_timer rekey;
};

/* One engine configuration, shared by every session of a connection/child with the same
 * fingerprint; it holds its own references to the certificates, so a reload can free the old
 * configuration while sessions go on. */
struct conf_ref {
	struct conf_ref *next;
	unsigned refs;
	uint8_t fp[32];
	char child[BT_NAME_MAX];     /* the child's name (in the fingerprint) */
	struct ike_cred cred;
	struct ike_conf conf;      /* its lists in lists[] */
	_Alignas(max_align_t) unsigned char lists[];
};

#define CONF_BUCKETS 4096

/* IKE SAs we initiated per peer address, for INITIAL_CONTACT. */
struct contact {
	struct bt_addr a;
	uint32_t n;
};
#define CONTACTS 16384

struct ike_mgr {
	struct contact contacts[CONTACTS];
	struct conf_ref *confs[CONF_BUCKETS];
	struct daemon *d;
	struct ike_sess *by_local[SESS_BUCKETS], *by_peer[SESS_BUCKETS], *by_old[SESS_BUCKETS], *by_red[SESS_BUCKETS],
		*by_conn[SESS_BUCKETS], *all;
	size_t n_sess, n_half_open;
	int fd4, fd6;
	ev_io io4, io6;
	ev_async async;
	pthread_mutex_t qlock;
	struct rx_item *qhead, **qtail;
	size_t qlen;
	_Atomic uint8_t acq[ACQ_MAX];
	_Atomic bool any_acq;
	uint32_t next_reqid;
	struct ike_cookie_gen cookie;
	struct ike_stats st;
	struct netmon *nm;           /* address/link/route changes, when a connection has MOBIKE */
	uint8_t out[MSG_BUF];
};

/* Where a message of s goes: its path, or the path under test. */
struct ike_dest {
	const struct bt_addr *local, *remote;
	uint16_t rport;
	bool natt;
};

/* ike.c */
double ikm_now_s(struct ike_mgr *m);
extern const struct ike_rng ikm_rng;
size_t ikm_bucket(uint64_t k);
uint64_t ikm_name_hash(const char *s);
const struct cfg_conn *ikm_conn_by_name(const struct bt_config *cfg, const char *name);

/* ike_sess.c */
void ikm_link_local(struct ike_sess *s, uint64_t key);
void ikm_link_peer(struct ike_sess *s);
void ikm_unlink_from(struct ike_sess **b, struct ike_sess *s, bool local);
void ikm_link_old(struct ike_sess *s, uint64_t key);
void ikm_unlink_old(struct ike_sess *s);
void ikm_link_red(struct ike_sess *s, uint64_t key);
void ikm_unlink_red(struct ike_sess *s);
struct ike_sess *ikm_find_red(struct ike_mgr *m, uint64_t spi);
struct ike_sess *ikm_find_old(struct ike_mgr *m, uint64_t spi);
struct ike_sess *ikm_find_local(struct ike_mgr *m, uint64_t spi, bool initiator);
struct ike_sess *ikm_find_peer(struct ike_mgr *m, uint64_t spi_i, const struct bt_addr *src);
const struct cfg_child *ikm_child_by_name(const struct cfg_conn *c, const char *name);
int ikm_conf_from(const struct bt_config *cfg, const struct cfg_conn *c, const struct cfg_child *ch,
		  struct ike_conf *k, char *err, size_t errlen);
void ikm_fingerprint(const struct cfg_conn *c, const struct cfg_child *ch, const struct ike_conf *k, uint8_t out[32]);
uint32_t ikm_contacts(struct ike_mgr *m, const struct bt_addr *a, int delta);
void ikm_conf_put(struct ike_mgr *m, struct conf_ref *r);
void ikm_set_alt(struct ike_sess *s, const struct cfg_conn *c);
struct ike_sess *sess_new(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch,
			  bool initiator, char *err, size_t errlen);
void sess_free(struct ike_sess *s);
void ikm_established(struct ike_sess *s);
void ikm_arm_timers(struct ike_sess *s);
struct conf_ref *ikm_child_ref(struct ike_mgr *m, const struct cfg_conn *c, const struct cfg_child *ch, char *err,
			       size_t errlen);
struct esp_restore;
int ikm_child_up(struct ike_sess *s, int k, const struct esp_restore *r);
int ikm_child_index(const struct cfg_conn *c, const char *name);
void ikm_sync_children(struct ike_sess *s);
void sess_gone(struct ike_sess *s, bool peer_dead);

/* ike_send.c */
void ikm_send_raw_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len);
void ikm_send_raw(struct ike_sess *s, const uint8_t *msg, size_t len);
double ikm_rtx_timeout(const struct ike_mgr *m, unsigned tries);
void ikm_send_request(struct ike_sess *s, const uint8_t *msg, size_t len);
/* Our request in flight, again now with a fresh backoff (its path changed). */
void ikm_resend(struct ike_sess *s);
void ikm_request_done(struct ike_sess *s);

/* ike_child.c */
/* A Child SA's ESP state as a transfer carries it (xfer.c): the inbound and outbound SA's
 * attributes (esp_ctx_read), and how far outbound sequence numbers jump. */
struct esp_restore {
	struct cur in, out;
	uint64_t seq_jump;
};
void ikm_uninstall(struct ike_sess *s, struct sess_child *sc);
int ikm_install(struct ike_sess *s, struct sess_child *sc, const struct ike_child *k, const struct esp_restore *r);
int ikm_child_take(struct ike_sess *s, struct sess_child *sc, struct esp_sa *sa[2]);
void ikm_child_give_back(struct ike_sess *s, struct sess_child *sc, struct esp_sa *sa[2]);
void ikm_install_next(struct ike_sess *s, int k);
void ikm_retire_old(struct ike_sess *s, struct sess_child *sc);
void ikm_arm_ike_rekey(struct ike_sess *s);
int ikm_start_ike_rekey(struct ike_sess *s);
void ikm_irekey_cb(struct ev_loop *loop, ev_timer *w, int revents);
int ikm_start_rekey(struct ike_sess *s, int k);
void ikm_rekey_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* mobike.c */
void sess_rebind(struct ike_sess *s, const struct bt_addr *local, uint16_t lport, const struct bt_addr *remote,
		 uint16_t rport, bool natt);
bool ikm_any_installed(const struct ike_sess *s);
bool ikm_my_addrs_refresh(struct ike_sess *s);
bool ikm_multi_addr(const struct cfg_conn *c);
bool mobike_failover(struct ike_sess *s);
void ikm_path_changed(void *arg);
void mobike_events(struct ike_sess *s);
/* Multi-LAN transfer: this gateway took the session over at another address. Rebind the session to
 * local (our own address) and tell the peer inside the IKE SA that the tunnel now ends here
 * (UPDATE_SA_ADDRESSES from the gateway side, retransmitted until answered). Returns 0, or -1 with
 * err when the session did not negotiate MOBIKE. */
int mobike_gateway_move(struct ike_sess *s, const struct bt_addr *local, char *err, size_t errlen);

#endif
