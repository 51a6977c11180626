/* config.h — batond's configuration: a swanctl.conf-like file, parsed into plain structs.
 *
 * The parser checks everything a user can get wrong and reports "file:line: message"; nothing is
 * applied by the parser itself. The format is described in docs/config.md.
 */
#ifndef BT_CONFIG_H
#define BT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "esp/sa.h"
#include "ike/ike_cert.h"
#include "ike/ike_prop.h"
#include "ike/ike_sa.h"
#include "io/dataplane.h"
#include "policy/spd.h"
#include "policy/ts.h"
#include "util/log.h"

#define CFG_ADDRS_MAX BT_PEERS_MAX

/* One direction's static keys. */
struct cfg_sa_keys {
	uint32_t spi;
	uint8_t enc_key[ESP_KEY_MAX + 4];
	uint8_t enc_key_len;
	uint8_t integ_key[ESP_KEY_MAX];
	uint8_t integ_key_len;
};

enum cfg_auth { CFG_AUTH_PSK = 0, CFG_AUTH_PUBKEY };
enum cfg_start { CFG_START_NONE = 0, CFG_START_TRAP, CFG_START_START };
enum cfg_dpd_action { CFG_DPD_CLEAR = 0, CFG_DPD_TRAP, CFG_DPD_RESTART };

#define CFG_CACERTS_MAX 4
#define CFG_PATH_MAX 256

/* The local { } or remote { } section of an IKE connection. */
struct cfg_end {
	enum cfg_auth auth;
	char id_str[128];     /* as written; "%any" for any peer; with pubkey and no id: our subject */
	bool id_any;
	uint8_t id_type;      /* ike_id_type */
	uint8_t id[IKE_ID_MAX]; /* the ID payload's data */
	size_t id_len;
	int id_line;          /* 0: not written (the default) */
	/* files, as paths relative to the working directory (the config file's directory applied) */
	char certs[CFG_PATH_MAX];   /* local: our certificate, then its intermediates */
	char key[CFG_PATH_MAX];     /* local: its private key ("" = from secrets { private-* }) */
	char cacerts[CFG_CACERTS_MAX][CFG_PATH_MAX]; /* remote: the CAs its certificate must chain to */
	unsigned n_cacerts;
	int certs_line, key_line, cacerts_line;
};

/* A secret from the secrets { } section: ike-NAME { id = ..., id-x = ..., secret = ... } (a shared
 * key), or private-NAME { file = ... } (a private key, used by the connection whose certificate it
 * matches). */
struct cfg_secret {
	char ids[4][128];
	unsigned n_ids;       /* 0: for any identity */
	uint8_t key[128];
	size_t key_len;
	char file[CFG_PATH_MAX]; /* private-NAME: the key file ("" for ike-NAME) */
	EVP_PKEY *pkey;       /* private-NAME: the key, loaded to find the certificate it belongs to */
	int line;
};

struct cfg_child {
	char name[BT_NAME_MAX];
	int line;                      /* where the child section starts */
	enum esp_mode mode;
	struct bt_ts local_ts[BT_TS_MAX], remote_ts[BT_TS_MAX];
	uint8_t n_local_ts, n_remote_ts; /* 0 = the connection's addresses (transport) / any */
	char esp_proposal[64];         /* as written */
	enum esp_enc_alg enc;
	enum esp_integ_alg integ;
	bool esn;
	uint32_t replay_window;        /* packets; default ESP_REPLAY_DEFAULT */
	struct esp_lifetime soft, hard; /* rekey_* and life_* */
	struct cfg_sa_keys in, out;    /* static SAs: spi_in/enc_key_in/..., spi_out/... */
	bool has_static_keys;
	/* IKE children: the ESP proposals to negotiate, and what to do without an SA */
	struct ike_proposal esp_props[IKE_CONF_PROPS];
	uint8_t n_esp_props;
	enum cfg_start start_action;
	enum cfg_dpd_action dpd_action;
	uint32_t reqid;                /* assigned by the parser, unique, from 1 */
	uint32_t priority;             /* policy priority; default 1000 + order in the file */
};

struct cfg_conn {
	char name[BT_NAME_MAX];
	int line;
	struct bt_prefix local_addrs[CFG_ADDRS_MAX], remote_addrs[CFG_ADDRS_MAX];
	uint8_t n_local_addrs, n_remote_addrs; /* first host address of each is the current one */
	bool encap;                    /* true: ESP in UDP (default), false: raw ESP (IP proto 50) */
	uint16_t local_port, remote_port; /* default 4500 */
	struct cfg_child *children;
	size_t n_children;
	/* IKE (children without static keys): proposals, authentication, liveness */
	bool ike;
	struct ike_proposal ike_props[IKE_CONF_PROPS];
	uint8_t n_ike_props;
	struct cfg_end local, remote;
	uint8_t psk[128];             /* from secrets, when either end authenticates with psk */
	size_t psk_len;
	struct ike_cred *cred;        /* owned: our certificate and key (local pubkey) and the peer's CAs
				       * (remote pubkey), loaded with the file; NULL with psk on both ends */
	uint64_t dpd_delay;           /* seconds, 0 = no liveness checks */
	uint64_t ike_rekey_time;      /* seconds; rekey_time of the connection */
	bool fragmentation;           /* RFC 7383, default yes */
	bool mobike;                  /* RFC 4555, default yes (as strongSwan) */
	bool mobike_prefer_order;     /* mobike_prefer = local_addrs: the first listed local address
				       * with a route wins; default (route): the kernel's choice */
};

/* An explicit BYPASS / DISCARD / PROTECT policy from the policies { } section. */
struct cfg_policy {
	struct spd_policy pol; /* its selectors in local_ts / remote_ts below */
	struct bt_ts local_ts[BT_TS_MAX], remote_ts[BT_TS_MAX];
	int line;
	char child[BT_NAME_MAX]; /* PROTECT: name of the child SA (conn/child or child) */
};

/* Context transfer and the cluster of gateways (cluster { } section, docs/config.md). */
#define CFG_SHARED_MAX 8
struct cfg_shared {            /* a Mono-LAN address: held by one node at a time, it moves with the sessions */
	struct bt_addr addr;
	uint8_t plen;
	char dev[16];          /* interface it lives on */
};
struct cfg_node {              /* another gateway of the cluster: where its transfer channel listens */
	char name[BT_NAME_MAX];
	struct bt_addr addr;
	uint16_t port;
};
struct cfg_cluster {
	bool present;              /* the section was there */
	char name[BT_NAME_MAX];    /* this node's name */
	uint8_t key[32];           /* AES-256-GCM key of the cluster/site: seals contexts and the channel */
	bool has_key;
	struct bt_addr listen;     /* transfer channel (family 0: none) */
	uint16_t port;             /* default 4510 */
	uint64_t seq_jump;         /* outbound ESP sequence numbers jump by this on PUT, default 10000 */
	struct cfg_shared shared[CFG_SHARED_MAX];
	unsigned n_shared;
	struct cfg_node *nodes;    /* owned */
	size_t n_nodes;
};

struct bt_config {
	char path[256];
	struct cfg_cluster cluster;
	struct dp_config dp;           /* the baton { } section */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum bt_log_level log_level;
	char log_file[256];
	struct cfg_conn *conns;
	size_t n_conns;
	struct cfg_policy *policies;
	size_t n_policies;
	struct cfg_secret *secrets;
	size_t n_secrets;
	/* IKE in the baton { } section */
	uint16_t ike_port;             /* IKE_SA_INIT port, default 500; 0 = only the NAT-T port */
	uint32_t retransmit_timeout_ms; /* first retransmission, default 4000 (as charon) */
	uint32_t retransmit_tries;     /* default 5 */
	uint32_t retransmit_base_milli; /* backoff factor x1000, default 1800 */
	uint32_t cookie_threshold;     /* half-open IKE SAs before COOKIEs are demanded, default 10 */
	uint32_t fragment_size;        /* IKE fragments fit datagrams of this size, default 1280 */
	uint32_t half_open_timeout_s;  /* a responder's IKE SA without IKE_AUTH is dropped after this, default 30 */
	uint32_t keepalive_s;          /* NAT keepalive interval behind a NAT, default 20 */
	/* the SPD's configured policies (children with static keys or trap IKE children, then the
	 * policies section), built once at parse: an SPD rebuild need not walk every connection */
	struct spd_policy *spd_static;
	size_t n_spd_static;
};

/* Parse the file at path. Returns 0 and a new config in *out, or -1 with "file:line: message" in
 * err (nothing allocated). */
int config_load(const char *path, struct bt_config **out, char *err, size_t errlen);
/* Same, from a string; name is used in messages. */
int config_parse(const char *text, size_t len, const char *name, struct bt_config **out, char *err,
		 size_t errlen);
void config_free(struct bt_config *cfg);

/* Build the two SAs of a child with static keys: (*in, *out) freshly allocated and esp_sa_init'ed
 * with lanes lanes. Returns 0 or -1 with a message. */
int config_child_sas(const struct bt_config *cfg, const struct cfg_conn *conn,
		     const struct cfg_child *child, unsigned lanes, struct esp_sa **in,
		     struct esp_sa **out, char *err, size_t errlen);
/* Build the SPD's static level: each child's outbound PROTECT policy plus the explicit policies,
 * ordered by priority (the negotiated Child SAs' policies are the dynamic level: dp_pol_add).
 * hits counters are left NULL (the daemon attaches its own). */
struct spd *config_build_spd(const struct bt_config *cfg, char *err, size_t errlen);
/* Parse an IKE identity as strongSwan writes it: an IP address, "@fqdn" or a name with a dot,
 * "user@domain", "@#hex" (key id), a DN "C=CH, O=baton, CN=gw", or "%any". Returns 0 or -1. */
int config_parse_id(const char *s, struct cfg_end *end, char *err, size_t errlen);

#endif
