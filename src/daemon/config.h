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
};

/* An explicit BYPASS / DISCARD / PROTECT policy from the policies { } section. */
struct cfg_policy {
	struct spd_policy pol;
	int line;
	char child[BT_NAME_MAX]; /* PROTECT: name of the child SA (conn/child or child) */
};

struct bt_config {
	char path[256];
	struct dp_config dp;           /* the baton { } section */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum bt_log_level log_level;
	char log_file[256];
	struct cfg_conn *conns;
	size_t n_conns;
	struct cfg_policy *policies;
	size_t n_policies;
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
/* Build the SPD: each child's outbound PROTECT policy plus the explicit policies, ordered by
 * priority. hits counters are left NULL (the daemon attaches its own). */
struct spd *config_build_spd(const struct bt_config *cfg, char *err, size_t errlen);

#endif
