/* ike_sa.h — the IKE SA as the exchange engine keeps it, and the engine's interface.
 *
 * The engine is pure: it takes a received message (the time through sa->now, randomness through a
 * callback) and returns the message to send and what changed; it opens no socket and arms no timer.
 * It does IKE_SA_INIT and IKE_AUTH with a pre-shared key or certificates (RFC 7427 signatures),
 * CREATE_CHILD_SA (new Child SAs, Child and IKE SA rekeys) and INFORMATIONAL, both roles, for a
 * small table of Child SAs per IKE SA. The record is the
 * start of the session context that transfer and HA will serialise.
 */
#ifndef BT_IKE_SA_H
#define BT_IKE_SA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ike/ike_cert.h"
#include "ike/ike_dh.h"
#include "ike/ike_frag.h"
#include "ike/ike_keys.h"
#include "ike/ike_msg.h"
#include "ike/ike_nat.h"
#include "ike/ike_prop.h"
#include "ike/ike_sk.h"

enum ike_state {
	IKE_ST_IDLE = 0,
	IKE_ST_INIT_SENT,     /* initiator: IKE_SA_INIT request out */
	IKE_ST_AUTH_SENT,     /* initiator: IKE_AUTH request out */
	IKE_ST_INIT_DONE,     /* responder: IKE_SA_INIT answered, waiting for IKE_AUTH */
	IKE_ST_ESTABLISHED,
	IKE_ST_FAILED,
	IKE_ST_DELETED,       /* an IKE SA delete was sent and answered, or received */
};

/* What an INFORMATIONAL request of ours carries (Child SA deletes: ike_delete_child); MOBIKE's
 * kinds come after IKE_INFO_DELETE_IKE. */
enum ike_info {
	IKE_INFO_DPD = 0, IKE_INFO_DELETE_CHILD, IKE_INFO_DELETE_IKE,
	IKE_INFO_UPDATE,  /* MOBIKE: UPDATE_SA_ADDRESSES with NAT detection and COOKIE2 (ike_mobike_update) */
	IKE_INFO_PROBE,   /* MOBIKE: a path test, COOKIE2 only (ike_mobike_probe) */
	IKE_INFO_ADDRS,   /* MOBIKE: our additional addresses changed (ike_mobike_addresses) */
	IKE_INFO_GW_UPDATE, /* MOBIKE, not the original initiator: UPDATE_SA_ADDRESSES after a move of
			     * the session to another gateway, with our address list (ike_mobike_gw_update) */
};
const char *ike_state_name(enum ike_state s);

/* How a side authenticates (conf.auth: ours; conf.peer_auth: what we require of the peer). */
enum ike_authby { IKE_AUTHBY_PSK = 0, IKE_AUTHBY_PUBKEY, IKE_AUTHBY_ANY };

#define IKE_ID_MAX 256 /* an identity's bytes: long enough for a certificate's subject DN */

/* What one side asks for (a connection and one of its children, reduced to what the engine needs).
 * The IKE SA takes its IKE settings from one; each Child SA keeps the one of its child (ESP
 * proposals and selectors). */
struct ike_conf {
	/* What we offer or accept, in order of preference: n_ike_props / n_esp_props proposals in the
	 * caller's storage (borrowed like the configuration, sized to what it holds). Left empty, one
	 * proposal is made of the single suite below, in ike_props[0] / esp_props[0]: then there must
	 * be room for one. After negotiation ike/prf/dh hold the IKE SA's chosen transforms. */
	struct ike_proposal *ike_props, *esp_props;
	uint8_t n_ike_props, n_esp_props;
	struct ike_sk_suite ike;   /* IKE SA encryption/integrity */
	uint16_t prf, dh;
	struct ike_sk_suite esp;   /* a single ESP suite (when esp_props is empty) */
	bool force_encap;          /* send a NAT_DETECTION_SOURCE_IP that cannot match (as strongSwan's
				    * encap = yes), so both sides use ESP in UDP */
	uint8_t psk[128];
	size_t psk_len;
	uint8_t auth;              /* ike_authby: PSK or PUBKEY */
	uint8_t peer_auth;         /* ike_authby: PSK, PUBKEY or ANY */
	const struct ike_cred *cred; /* borrowed (outlives the SA): our certificate and key, and the CAs
				      * that peers' certificates must chain to */
	uint8_t id_type;           /* ike_id_type; with PUBKEY and id_len 0: our certificate's subject DN */
	uint8_t id[IKE_ID_MAX];
	size_t id_len;
	uint8_t peer_id_type;
	uint8_t peer_id[IKE_ID_MAX];
	size_t peer_id_len;
	bool peer_id_any;          /* accept any peer ID its (verified) certificate holds; PUBKEY only */
	bool initial_contact;      /* initiator: send INITIAL_CONTACT in IKE_AUTH */
	bool fragmentation;        /* RFC 7383: offer it, and fragment messages above frag_mtu */
	uint16_t frag_mtu;         /* IP datagram size fragments must fit, 0 = 1280 */
	bool mobike;               /* RFC 4555: offer (initiator) or accept (responder) MOBIKE */
	struct bt_ts *local_ts, *remote_ts; /* n_local_ts / n_remote_ts selectors, the caller's storage */
	uint8_t n_local_ts, n_remote_ts;
};

/* Room for the longest lists a configuration may have, for callers that fill them in place
 * (tests); ike_conf_use_room points the configuration's lists at it. */
struct ike_conf_room {
	struct ike_proposal ike[IKE_CONF_PROPS], esp[IKE_CONF_PROPS];
	struct bt_ts local[BT_TS_MAX], remote[BT_TS_MAX];
};
void ike_conf_use_room(struct ike_conf *conf, struct ike_conf_room *room);

/* The peer's new IKE SA while our own rekey of the IKE SA is in flight (RFC 7296 2.8.2). */
struct ike_coll_ike {
	uint64_t spi_i, spi_r;
	struct ike_keys keys;
	struct ike_proposal prop;
	uint8_t *nonce;              /* owned: the lower nonce of the peer's exchange */
	size_t nonce_len;
};

struct ike_rng {
	int (*fill)(void *arg, uint8_t *buf, size_t len); /* 0 on success */
	void *arg;
};

#define IKE_CHILD_MAX 8 /* Child SAs per IKE SA */

/* A Child SA: SPIs as each side chose them for its inbound SA; "i" is the IKE SA's (current)
 * initiator. While a rekey is under way (RFC 7296 1.3.3, 2.8) the new child waits in next
 * (next_ready): the caller installs it and calls ike_child_promote(), which keeps the old one in old
 * until its delete completes (old_deleted: the caller removes the old SAs). */
struct ike_child {
	uint32_t spi_i, spi_r;       /* initiator's inbound SPI, responder's inbound SPI */
	uint8_t ei[IKE_KEY_MAX + 4], ai[IKE_KEY_MAX], er[IKE_KEY_MAX + 4], ar[IKE_KEY_MAX];
	size_t encr_len, integ_len;
	struct ike_proposal esp;     /* as negotiated: one transform per type */
	const struct ike_conf *conf; /* borrowed: the configured child it was made for (proposals, selectors) */
	struct bt_ts *ts_i, *ts_r;   /* owned, exactly n_ts_i / n_ts_r long: as agreed, initiator's side,
				      * responder's side */
	uint8_t n_ts_i, n_ts_r;
	/* events for the caller, which clears up; gone children stay until ike_child_reap() */
	bool up;                     /* newly established (IKE_AUTH or CREATE_CHILD_SA): install it */
	bool gone;                   /* deleted by the peer or by our delete: remove its SAs */
	struct ike_child *next, *old;
	bool next_ready, next_ours, old_present, old_deleted; /* next_ours: our rekey made next */
	/* RFC 7296 2.8.1: both ends rekeyed this child at once. coll holds the peer's new child until our
	 * own exchange ends and the nonces decide: the winner becomes next, the loser red (redundant,
	 * never installed), deleted by the side that created it: red_delete asks the caller to send
	 * that delete (ike_delete_child), otherwise the peer's comes. */
	struct ike_child *coll, *red;
	uint8_t *coll_nonce;         /* owned: the lower nonce of the peer's exchange */
	size_t coll_nonce_len;
	bool red_delete;
	uint64_t rekeys;
};

struct ike_sa {
	enum ike_state state;
	bool initiator;
	uint64_t spi_i, spi_r;
	struct ike_conf *conf;       /* borrowed: outlives the SA (shared by SAs of one connection) */
	struct ike_sk_suite suite;   /* the IKE SA's transforms as negotiated */
	uint16_t prf, group;
	struct ike_dh *dh;
	uint8_t ni[64], nr[64];
	size_t ni_len, nr_len;
	uint8_t *init_i, *init_r;    /* both IKE_SA_INIT messages, signed by AUTH */
	size_t init_i_len, init_r_len;
	struct ike_keys keys;
	uint32_t next_send_id, next_recv_id;
	uint8_t *last_resp;          /* cached response for retransmitted requests */
	size_t last_resp_len;
	uint32_t last_resp_id;
	struct ike_proposal ike_chosen; /* one transform per type */
	uint8_t restarts;            /* IKE_SA_INIT restarts after INVALID_KE_PAYLOAD or COOKIE */
	uint8_t cookie[64];          /* the responder's COOKIE, echoed in our IKE_SA_INIT */
	size_t cookie_len;
	struct ike_child *child[IKE_CHILD_MAX]; /* owned; NULL = free slot. The first comes with IKE_AUTH */
	/* responder: the children we are configured for (borrowed as conf, completed by ike_conf_finish);
	 * a Child SA the peer asks for is made for the first whose selectors and proposals fit. None:
	 * conf alone. */
	const struct ike_conf *const *child_confs;
	uint8_t n_child_confs;
	uint16_t error;              /* notify type that failed the SA, 0 = none */
	char error_detail[160];      /* why certificate authentication failed, for the log ("" = n/a) */
	uint64_t now;                /* the caller's clock (unix seconds), set before ike_process: the
				      * peer's certificate chain is checked as of this time */
	/* the peer as it authenticated, for the caller to show and act on */
	uint8_t peer_id_type;        /* its ID payload as received (kept also when AUTH failed) */
	uint8_t peer_id[IKE_ID_MAX];
	size_t peer_id_len;
	X509 *peer_cert;             /* owned: its verified certificate (NULL with PSK); ike_sa_free frees it */
	uint8_t peer_auth_method;    /* the AUTH method it used */
	uint32_t peer_sighash;       /* its SIGNATURE_HASH_ALGORITHMS as a mask (bit n = hash ID n), 0 = none */
	bool peer_certreq;           /* it sent a CERTREQ */
	bool peer_initial_contact;   /* responder: its IKE_AUTH carried INITIAL_CONTACT (drop old SAs with it) */
	bool initial_contact;        /* initiator: send INITIAL_CONTACT (or conf->initial_contact) */
	/* outer endpoints as this side sees them (set by the caller), and what NAT detection found */
	struct bt_addr local, remote;
	uint16_t local_port, remote_port;
	bool nat_local, nat_remote;  /* this side / the peer is behind a NAT */
	/* our INFORMATIONAL request in flight (window of one) */
	bool info_pending;
	enum ike_info info_what;
	uint32_t info_id;
	uint32_t info_spi[IKE_CHILD_MAX]; /* our inbound SPIs of the Child SAs it deletes */
	uint8_t info_n_spi;
	uint8_t *info_req;           /* kept for retransmission by the caller's timers */
	size_t info_req_len;
	uint64_t peer_answers;       /* INFORMATIONAL responses received: liveness */
	/* CREATE_CHILD_SA (RFC 7296 1.3) started by either side: a new Child SA (reported with up), a
	 * Child SA rekey (reported in the child's next) or an IKE SA rekey. */
	bool ccs_pending;            /* our CREATE_CHILD_SA request is in flight */
	bool ccs_ike;                /* ... and it rekeys the IKE SA */
	struct ike_child *ccs_child; /* ... the Child SA it rekeys (NULL: a new one, for ccs_conf) */
	const struct ike_conf *ccs_conf;
	uint64_t ccs_ike_spi;        /* our SPI for the new IKE SA */
	uint32_t ccs_id;
	uint8_t ccs_nonce[32];
	uint32_t ccs_spi;            /* our inbound SPI in it */
	struct ike_dh *ccs_dh;       /* PFS */
	uint16_t ccs_error;          /* the notify that refused our last request, 0 = none */
	uint16_t ccs_group;          /* PFS group the peer asked for with INVALID_KE_PAYLOAD, 0 = ours */
	uint64_t child_rekeys, rekey_collisions;
	/* IKE SA rekey (RFC 7296 2.18): the new SA takes over at once (SPIs, keys, message IDs from 0;
	 * its initiator is whoever started the rekey); the old one lives on here only to send or answer
	 * its delete. Events for the caller: ike_rekeyed (index the new SPIs), old_ike_gone. */
	struct ike_old_sa {
		bool present, initiator, delete_pending;
		uint64_t spi_i, spi_r;
		struct ike_keys keys;
		struct ike_sk_suite ike;
		uint16_t prf;
		uint32_t next_send_id, next_recv_id, delete_id;
		uint8_t *last_resp;
		size_t last_resp_len;
		uint32_t last_resp_id;
	} old_ike;
	bool ike_rekeyed, old_ike_gone;
	/* RFC 7296 2.8.2: both ends rekeyed the IKE SA at once. The peer's new SA waits in coll_ike
	 * until our exchange ends; the one made by the exchange with the lowest nonce is redundant:
	 * red_ike lives on only for its delete, which the side that made it sends (red_ike_ours: we do,
	 * with ike_delete_red_ike); red_ike_gone when it is done. The old SA is deleted by the
	 * initiator of the survivor (after the switch: us if sa->initiator). */
	struct ike_coll_ike *coll_ike; /* owned, only during a collision */
	struct ike_old_sa *red_ike;  /* owned, only until the redundant SA is deleted */
	bool red_ike_ours, red_ike_gone;
	/* IKE fragmentation (RFC 7383): negotiated when both sent IKEV2_FRAGMENTATION_SUPPORTED. A
	 * message we fragment is returned as its fragments back to back (each a whole IKE message:
	 * split by the length in each header); received fragments are reassembled here. */
	bool frag_peer;
	struct ike_frag_reasm *reasm;
	bool pre_in_valid;           /* the message being handled was reassembled (ike_exchange.c keeps it) */
	uint64_t frags_sent, frags_received, frag_drops;
	uint64_t ike_rekeys;
	/* MOBIKE (RFC 4555). The SA's original initiator decides which addresses are used: it calls
	 * ike_sa_set_endpoints with the new pair and sends ike_mobike_update (or first tests a path
	 * with ike_mobike_probe, sent from and to the addresses under test). The responder takes the
	 * new addresses only from an authentic UPDATE_SA_ADDRESSES newer than the last one applied:
	 * for that the caller sets rx_* to the addresses each received message came with. One
	 * exception to "the initiator decides": a gateway that took the session over at another
	 * address (Multi-LAN transfer) sends ike_mobike_gw_update, and the original initiator follows
	 * it under the same rule (gw_moved). */
	bool mobike;                 /* both sides sent MOBIKE_SUPPORTED */
	bool mobike_initiator;       /* we were the initiator of the first IKE SA (kept across rekeys) */
	struct bt_addr rx_local, rx_remote; /* the message being handled arrived to/from these (caller) */
	uint16_t rx_local_port, rx_remote_port;
	uint32_t update_id;          /* message ID of the last UPDATE_SA_ADDRESSES we applied, +1 (0 = none) */
	bool last_req_update;        /* the cached response answers an UPDATE_SA_ADDRESSES */
	uint8_t cookie2[16];         /* what our last update or path test carried, echoed back */
	uint16_t update_error;       /* notify refusing our update (UNACCEPTABLE_ADDRESSES, ...), 0 = none */
	bool addr_update;            /* event (responder): the peer moved; local/remote hold the new pair */
	bool addr_check;             /* event (responder): our last answered update came again from other
				      * addresses (rr_*): the peer moved again, or someone replays it. The
				      * caller tests that path (ike_mobike_probe) and moves only if it works */
	struct bt_addr rr_local, rr_remote;
	uint16_t rr_local_port, rr_remote_port;
	bool update_done;            /* event: our UPDATE_SA_ADDRESSES (ike_mobike_update or
				      * ike_mobike_gw_update) was answered */
	bool gw_moved;               /* event (original initiator): the gateway moved; local/remote hold
				      * the pair its update came with */
	bool probe_done;             /* event (initiator): our path test was answered */
	bool peer_addrs_changed;     /* event: the peer sent its additional addresses */
#define IKE_PEER_ADDRS 8
	struct bt_addr peer_addrs[IKE_PEER_ADDRS]; /* its ADDITIONAL_IP4/IP6_ADDRESS list */
	uint8_t n_peer_addrs;
	struct bt_addr my_addrs[IKE_PEER_ADDRS];   /* ours besides the one in use (set by the caller):
						    * announced in IKE_AUTH and by ike_mobike_addresses */
	uint8_t n_my_addrs;
	uint64_t updates_sent, updates_received;
	struct ike_rng rng;
};

/* Complete a configuration: one proposal from the single suites when none are listed, our
 * certificate's subject as our ID when none is set. Idempotent; ike_sa_init calls it. */
void ike_conf_finish(struct ike_conf *conf);
/* conf is borrowed, not copied: it must outlive the SA and not change while the SA uses it. */
void ike_sa_init(struct ike_sa *sa, struct ike_conf *conf, bool initiator, const struct ike_rng *rng);
void ike_sa_free(struct ike_sa *sa); /* zeroes keys, frees buffers and peer_cert (not sa itself) */
/* The outer addresses and ports the exchange runs between (for NAT detection). */
void ike_sa_set_endpoints(struct ike_sa *sa, const struct bt_addr *local, uint16_t local_port,
			  const struct bt_addr *remote, uint16_t remote_port);

/* Initiator: the IKE_SA_INIT request. Returns its length in out, 0 on failure. */
size_t ike_start(struct ike_sa *sa, uint8_t *out, size_t cap);
/* An INFORMATIONAL request (liveness check, delete of the IKE SA) from an established SA, either
 * role. Returns its length, 0 if one is already in flight or on error. */
size_t ike_informational(struct ike_sa *sa, enum ike_info what, uint8_t *out, size_t cap);
/* An INFORMATIONAL request deleting Child SAs, named by our inbound SPIs (of a child, of its old SA
 * after a rekey, or of a redundant one after a collision), in one DELETE payload. Returns its
 * length, 0 if an exchange is in flight, an SPI is not ours, or on error. */
size_t ike_delete_child(struct ike_sa *sa, const uint32_t *spis, unsigned n, uint8_t *out, size_t cap);
/* A CREATE_CHILD_SA request rekeying child c (with PFS when its ESP proposal names a group).
 * Returns its length, 0 if a request is in flight, its rekey is unfinished, or on error. */
size_t ike_rekey_child(struct ike_sa *sa, struct ike_child *c, uint8_t *out, size_t cap);
/* A CREATE_CHILD_SA request for a new Child SA of configured child cc (borrowed: it must outlive
 * the SA; completed by ike_conf_finish), RFC 7296 1.3.1. Returns its length, 0 if a request is in flight, the table is full, or
 * on error. The new child comes with up set. */
size_t ike_create_child(struct ike_sa *sa, const struct ike_conf *cc, uint8_t *out, size_t cap);
/* Our Child SA with this inbound SPI (current SAs only), or NULL. */
struct ike_child *ike_child_by_spi(struct ike_sa *sa, uint32_t spi);
/* Free the children marked gone (after the caller removed their SAs). */
void ike_child_reap(struct ike_sa *sa);
/* A CREATE_CHILD_SA request rekeying the IKE SA itself. Returns its length or 0 (busy, error). */
size_t ike_rekey_ike(struct ike_sa *sa, uint8_t *out, size_t cap);
/* After ike_rekeyed, on the side that started the rekey: the delete of the old IKE SA, sent with
 * its keys and SPIs. Returns its length or 0. */
size_t ike_delete_old_ike(struct ike_sa *sa, uint8_t *out, size_t cap);
/* MOBIKE, original initiator: UPDATE_SA_ADDRESSES for the endpoints now set with
 * ike_sa_set_endpoints (with NAT detection for them and a COOKIE2). Returns 0 if MOBIKE was not
 * negotiated, we are not the original initiator, or another request is in flight. */
size_t ike_mobike_update(struct ike_sa *sa, uint8_t *out, size_t cap);
/* MOBIKE, not the original initiator (a gateway that took the session over at another address):
 * UPDATE_SA_ADDRESSES for the endpoints now set, with NAT detection, a COOKIE2 and our additional
 * addresses (or NO_ADDITIONAL_ADDRESSES: the old gateway's are not ours). RFC 4555 leaves this to
 * the initiator; strongSwan and baton as original initiators follow it. update_done when answered.
 * Returns 0 without MOBIKE, as the original initiator, or when another request is in flight. */
size_t ike_mobike_gw_update(struct ike_sa *sa, uint8_t *out, size_t cap);
/* MOBIKE path test (RFC 4555 3.6/3.4): an INFORMATIONAL with a COOKIE2; probe_done when answered.
 * The original initiator tests a path before moving to it; the responder tests the return
 * routability of addresses a retransmitted update came from (addr_check). */
size_t ike_mobike_probe(struct ike_sa *sa, uint8_t *out, size_t cap);
/* MOBIKE, either role: our additional addresses (my_addrs) changed; an INFORMATIONAL with the new
 * list, or NO_ADDITIONAL_ADDRESSES (RFC 4555 3.6). Returns 0 without MOBIKE or when busy. */
size_t ike_mobike_addresses(struct ike_sa *sa, uint8_t *out, size_t cap);
/* After an IKE SA rekey collision we lost (red_ike_ours): the delete of the redundant IKE SA, sent
 * with its keys and SPIs. Returns its length or 0. */
size_t ike_delete_red_ike(struct ike_sa *sa, uint8_t *out, size_t cap);
/* The caller installed c->next: make it the child; the old one waits in c->old. */
void ike_child_promote(struct ike_sa *sa, struct ike_child *c);
/* Process a received message for this SA. Returns the length of the message to send in out (0 if
 * none); the SA's state, children and error say what happened. */
size_t ike_process(struct ike_sa *sa, const uint8_t *msg, size_t len, uint8_t *out, size_t cap);

#endif
