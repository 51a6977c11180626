/* daemon.h — batond's running state: the configuration in force, the data plane, the control
 * socket, and the policy hit counters that outlive SPD rebuilds. */
#ifndef BT_DAEMON_H
#define BT_DAEMON_H

#include <ev.h>
#include <jansson.h>
#include <stdatomic.h>

#include "daemon/config.h"
#include "io/dataplane.h"

struct policy_hits {
	char name[BT_NAME_MAX];
	_Atomic uint64_t hits;
};

/* IKE counters (ike.c), shown by batonctl stats. */
struct ike_stats {
	uint64_t rx, tx, tx_errors, retransmits, timeouts, initiated, established, failed, acquires, cookies_sent,
		dpd_sent, drop_malformed, drop_unknown_spi, drop_no_conn, drop_ignored, drop_queue, child_rekeys,
		rekey_failed, ike_rekeys, half_open_expired, initial_contact_drops;
	uint64_t tx_exchange[4];  /* messages sent by exchange: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL */
	uint64_t mobike_moves, mobike_updates_sent, mobike_updates_received, mobike_probes, mobike_probe_failures,
		mobike_failovers,
		mobike_gateway_moves, /* Multi-LAN: the session moved to this gateway, or our peer gateway moved */
		rebinds, path_events;
	uint64_t xfer_gets, xfer_detached, xfer_puts, xfer_refused, xfer_spi_rekeys; /* context transfer (xfer.c) */
};
struct ike_mgr;
struct cluster;

struct daemon {
	struct ev_loop *loop;
	char config_path[256];
	struct bt_config *cfg;     /* in force */
	struct dataplane *dp;
	struct policy_hits *hits;  /* one per static SPD entry, in SPD order (a negotiated Child SA's
				    * policy counts in its IKE session) */
	size_t n_hits;
	int listen_fd;
	ev_io listen_w;
	ev_timer life_w;
	ev_signal sig_w[3];
	char socket_path[108];
	uint64_t started;          /* monotonic seconds */
	struct ike_mgr *ike;
	struct cluster *cluster;   /* the transfer channel and its counters (cluster.c) */
};

/* apply.c: install a configuration (first load or reload). On error nothing changes and err says
 * why. counts (may be NULL) receives added/removed/kept SAs. */
int daemon_apply(struct daemon *d, struct bt_config *cfg, unsigned counts[3], char *err, size_t errlen);
/* The 1-second lifetime check: raise events, remove hard-expired SAs. */
void daemon_check_lifetimes(struct daemon *d);

/* control.c: handle one request line; returns a new JSON object to send back. */
json_t *control_handle(struct daemon *d, const char *line, size_t len);
int control_listen(struct daemon *d, const char *path, char *err, size_t errlen);
void control_close(struct daemon *d);
json_t *control_sa_json(const struct esp_sa *sa, uint64_t now);
/* A selector list as JSON strings in strongSwan's syntax. */
json_t *control_ts_json(const struct bt_ts *ts, unsigned n);

uint64_t daemon_now(void);

/* ike.c: the IKE sessions. */
int ike_mgr_start(struct daemon *d, char *err, size_t errlen);
void ike_mgr_stop(struct daemon *d);
void ike_mgr_reconfigured(struct daemon *d);
/* Start a negotiation of conn (and child, NULL = its first): on an IKE SA of conn if there is one
 * (CREATE_CHILD_SA), else a new one. -EALREADY if it is up or under way. */
int ike_mgr_initiate(struct daemon *d, const char *conn, const char *child, char *err, size_t errlen);
/* Rekey the Child SAs (all, or those named child) or with ike the IKE SAs of conn now; returns how
 * many, or -1. */
int ike_mgr_rekey(struct daemon *d, const char *conn, const char *child, bool ike, char *err, size_t errlen);
/* Delete the IKE SAs of conn, or with child only those Child SAs; returns how many, or -1 if there
 * were none. */
int ike_mgr_terminate(struct daemon *d, const char *conn, const char *child, char *err, size_t errlen);
json_t *ike_mgr_list(struct daemon *d);
json_t *ike_mgr_stats(struct daemon *d);
/* How many IKE SAs here (not being deleted) have a as their local address. */
size_t ike_mgr_addr_users(struct daemon *d, const struct bt_addr *a);
/* Their IKE SPIs (ours, 16 hex digits), at most max of them; returns how many. */
size_t ike_mgr_addr_spis(struct daemon *d, const struct bt_addr *a, char (*spis)[20], size_t max);
/* netmon.c: address, link and route changes (netlink), for MOBIKE. */
typedef void (*netmon_cb)(void *arg);
struct netmon;
struct netmon *netmon_new(struct ev_loop *loop, netmon_cb cb, void *arg, char *err, size_t errlen);
void netmon_free(struct netmon *nm);
uint64_t netmon_events(const struct netmon *nm);
/* The source address the kernel picks toward dst (from: bound to that address first, NULL = any).
 * Returns 0, or -1 without a route (or without the address). Sends nothing. */
int netmon_route_src(const struct bt_addr *from, const struct bt_addr *dst, struct bt_addr *src);
/* a is assigned to an interface that is up and has carrier. */
bool netmon_addr_usable(const struct bt_addr *a);

/* SAs with reqids from here on belong to IKE, not to the configuration. */
#define DAEMON_IKE_REQID_BASE 0x10000000u

#endif
