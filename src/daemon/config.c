/* config.c — gives the parsed tree (cfgtree.c) its meaning: the baton, connections and policies
 * sections of docs/config.md, checked completely before anything is used. */
#include "daemon/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "daemon/cfgtree.h"
#include "esp/esp_wire.h"

/* 10,000 IKE connections take about 2.5 MB (bench/setup.sh) */
#define CONFIG_MAX_SIZE (64 << 20)

struct ctx {
	int line_hint; /* the section being read, for errors about defaults */
	const char *file;
	char dir[CFG_PATH_MAX]; /* relative paths in the file are relative to its directory */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, int line, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s:%d: %s", c->file, line, msg);
	return -1;
}

static struct cnode *get(struct cnode *sec, const char *key)
{
	for (struct cnode *n = sec->child; n; n = n->next)
		if (strcmp(n->name, key) == 0) {
			n->used = true;
			return n;
		}
	return NULL;
}

/* Like get(), without consuming the key. */
static struct cnode *peek(struct cnode *sec, const char *key)
{
	for (struct cnode *n = sec->child; n; n = n->next)
		if (strcmp(n->name, key) == 0)
			return n;
	return NULL;
}

/* Every child of sec must have been consumed: anything else is an unknown key or section. */
static int check_unknown(struct ctx *c, struct cnode *sec, const char *where)
{
	for (struct cnode *n = sec->child; n; n = n->next)
		if (!n->used)
			return fail(c, n->line, "unknown %s '%s' in %s", n->value ? "setting" : "section", n->name,
				    where);
	return 0;
}

static int want_value(struct ctx *c, struct cnode *n)
{
	if (!n->value)
		return fail(c, n->line, "'%s' is a setting, not a section", n->name);
	return 0;
}

static int want_section(struct ctx *c, struct cnode *n)
{
	if (n->value)
		return fail(c, n->line, "'%s' must be a section ('%s { ... }')", n->name, n->name);
	return 0;
}

static int parse_bool(struct ctx *c, struct cnode *n, bool *out)
{
	if (want_value(c, n))
		return -1;
	if (!strcasecmp(n->value, "yes") || !strcasecmp(n->value, "true") || !strcmp(n->value, "1"))
		*out = true;
	else if (!strcasecmp(n->value, "no") || !strcasecmp(n->value, "false") || !strcmp(n->value, "0"))
		*out = false;
	else
		return fail(c, n->line, "%s: expected yes or no, got '%s'", n->name, n->value);
	return 0;
}

/* A number with an optional suffix from a table of (suffix, multiplier). */
static int parse_num(struct ctx *c, struct cnode *n, uint64_t max, const char *const *suffixes,
		     const uint64_t *mult, uint64_t *out)
{
	if (want_value(c, n))
		return -1;
	const char *s = n->value;
	if (!isdigit((unsigned char)*s))
		return fail(c, n->line, "%s: expected a number, got '%s'", n->name, s);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	uint64_t m = 1;
	if (*end && suffixes) {
		bool ok = false;
		for (int i = 0; suffixes[i]; i++)
			if (strcasecmp(end, suffixes[i]) == 0)
				m = mult[i], ok = true;
		if (!ok)
			return fail(c, n->line, "%s: bad unit in '%s'", n->name, s);
	} else if (*end) {
		return fail(c, n->line, "%s: expected a number, got '%s'", n->name, s);
	}
	if (errno || (m > 1 && v > UINT64_MAX / m) || v * m > max)
		return fail(c, n->line, "%s: '%s' is out of range (max %llu)", n->name, s,
			    (unsigned long long)max);
	*out = v * m;
	return 0;
}

static int parse_uint(struct ctx *c, struct cnode *n, uint64_t max, uint64_t *out)
{
	return parse_num(c, n, max, NULL, NULL, out);
}

static int parse_time(struct ctx *c, struct cnode *n, uint64_t *out)
{
	static const char *const suf[] = {"s", "m", "h", "d", NULL};
	static const uint64_t mult[] = {1, 60, 3600, 86400};
	return parse_num(c, n, UINT32_MAX, suf, mult, out);
}

static int parse_volume(struct ctx *c, struct cnode *n, uint64_t *out)
{
	static const char *const suf[] = {"k", "m", "g", "t", NULL};
	static const uint64_t mult[] = {1000ull, 1000000ull, 1000000000ull, 1000000000000ull};
	return parse_num(c, n, UINT64_MAX, suf, mult, out);
}

static int parse_hex(struct ctx *c, struct cnode *n, uint8_t *out, size_t cap, uint8_t *len)
{
	if (want_value(c, n))
		return -1;
	const char *s = n->value;
	if (strncasecmp(s, "0x", 2) == 0)
		s += 2;
	size_t l = strlen(s);
	if (l == 0 || l % 2)
		return fail(c, n->line, "%s: expected an even number of hex digits", n->name);
	if (l / 2 > cap)
		return fail(c, n->line, "%s: key longer than %zu bytes", n->name, cap);
	for (size_t i = 0; i < l; i += 2) {
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]))
			return fail(c, n->line, "%s: '%c%c' is not hex", n->name, s[i], s[i + 1]);
		char b[3] = {s[i], s[i + 1], 0};
		out[i / 2] = (uint8_t)strtoul(b, NULL, 16);
	}
	*len = (uint8_t)(l / 2);
	return 0;
}

static int parse_str(struct ctx *c, struct cnode *n, char *out, size_t cap)
{
	if (want_value(c, n))
		return -1;
	if (strlen(n->value) >= cap)
		return fail(c, n->line, "%s: value too long (max %zu)", n->name, cap - 1);
	strcpy(out, n->value);
	return 0;
}

/* Split a comma-separated list in place; calls fn for each trimmed, non-empty item. */
static int for_each_item(struct ctx *c, struct cnode *n, int (*fn)(struct ctx *, struct cnode *,
								 const char *, void *),
			 void *arg)
{
	if (want_value(c, n))
		return -1;
	char *dup = strdup(n->value), *save = NULL;
	if (!dup)
		return fail(c, n->line, "out of memory");
	int rc = 0, count = 0;
	for (char *t = strtok_r(dup, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		char *e = t + strlen(t);
		while (e > t && e[-1] == ' ')
			*--e = '\0';
		if (*t) {
			rc = fn(c, n, t, arg);
			count++;
		}
	}
	free(dup);
	if (rc == 0 && count == 0)
		return fail(c, n->line, "%s: empty list", n->name);
	return rc;
}

struct ts_list {
	struct bt_ts *ts;
	uint8_t *n;
};

static int add_ts(struct ctx *c, struct cnode *n, const char *item, void *arg)
{
	struct ts_list *l = arg;
	char err[160];
	if (*l->n >= BT_TS_MAX)
		return fail(c, n->line, "%s: more than %d selectors", n->name, BT_TS_MAX);
	if (bt_ts_parse(item, &l->ts[*l->n], err, sizeof(err)) != 0)
		return fail(c, n->line, "%s: %s", n->name, err);
	(*l->n)++;
	return 0;
}

struct pfx_list {
	struct bt_prefix *p;
	uint8_t *n;
};

static int add_prefix(struct ctx *c, struct cnode *n, const char *item, void *arg)
{
	struct pfx_list *l = arg;
	if (*l->n >= CFG_ADDRS_MAX)
		return fail(c, n->line, "%s: more than %d addresses", n->name, CFG_ADDRS_MAX);
	if (bt_prefix_parse(item, &l->p[*l->n]) != 0)
		return fail(c, n->line, "%s: '%s' is not an address or subnet", n->name, item);
	(*l->n)++;
	return 0;
}


/* A Linux interface name: 1 to 15 characters, no spaces or slashes. */
static bool ifname_ok(const char *s)
{
	size_t l = strlen(s);
	if (l == 0 || l >= 16)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static int section_baton(struct ctx *c, struct cnode *sec, struct bt_config *cfg)
{
	struct cnode *n;
	uint64_t v;
	if ((n = get(sec, "tun"))) {
		if (parse_str(c, n, cfg->dp.tun_name, sizeof(cfg->dp.tun_name)))
			return -1;
		if (!ifname_ok(cfg->dp.tun_name))
			return fail(c, n->line, "tun: bad interface name '%s'", cfg->dp.tun_name);
	}
	if ((n = get(sec, "mtu"))) {
		if (want_value(c, n))
			return -1;
		if (strcmp(n->value, "auto") == 0)
			cfg->dp.mtu = 0;
		else if (parse_uint(c, n, 65535, &v))
			return -1;
		else if (v < 576)
			return fail(c, n->line, "mtu: %llu is below 576", (unsigned long long)v);
		else
			cfg->dp.mtu = (unsigned)v;
	}
	if ((n = get(sec, "outer_mtu"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		if (v < 576 + 100)
			return fail(c, n->line, "outer_mtu: %llu is too small", (unsigned long long)v);
		cfg->dp.outer_mtu = (unsigned)v;
	}
	if ((n = get(sec, "workers"))) {
		if (want_value(c, n))
			return -1;
		if (strcmp(n->value, "auto") == 0)
			cfg->dp.lanes = 0;
		else if (parse_uint(c, n, DP_MAX_LANES, &v))
			return -1;
		else if (v == 0)
			return fail(c, n->line, "workers: at least 1 (or auto)");
		else
			cfg->dp.lanes = (unsigned)v;
	}
	if ((n = get(sec, "port"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		if (v == 0)
			return fail(c, n->line, "port: must not be 0");
		cfg->dp.udp_port = (uint16_t)v;
	}
	if ((n = get(sec, "bind"))) {
		if (want_value(c, n))
			return -1;
		if (bt_addr_parse(n->value, &cfg->dp.bind_addr) != 0)
			return fail(c, n->line, "bind: '%s' is not an address", n->value);
	}
	if ((n = get(sec, "raw_esp")) && parse_bool(c, n, &cfg->dp.raw_esp))
		return -1;
	if ((n = get(sec, "offload")) && parse_bool(c, n, &cfg->dp.offload))
		return -1;
	if ((n = get(sec, "ike_port"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		cfg->ike_port = (uint16_t)v;
	}
	if ((n = get(sec, "retransmit_timeout"))) {
		double t;
		char *end;
		if (want_value(c, n))
			return -1;
		t = strtod(n->value, &end);
		if (end == n->value || (*end && strcmp(end, "s")) || t < 0.01 || t > 600)
			return fail(c, n->line, "retransmit_timeout: expected seconds between 0.01 and 600, got '%s'",
				    n->value);
		cfg->retransmit_timeout_ms = (uint32_t)(t * 1000 + 0.5);
	}
	if ((n = get(sec, "keepalive"))) {
		uint64_t t;
		if (parse_time(c, n, &t))
			return -1;
		if (t < 1 || t > 3600)
			return fail(c, n->line, "keepalive: expected between 1s and 1h, got '%s'", n->value);
		cfg->keepalive_s = (uint32_t)t;
	}
	if ((n = get(sec, "retransmit_tries"))) {
		if (parse_uint(c, n, 100, &v))
			return -1;
		cfg->retransmit_tries = (uint32_t)v;
	}
	if ((n = get(sec, "retransmit_base"))) {
		double b;
		char *end;
		if (want_value(c, n))
			return -1;
		b = strtod(n->value, &end);
		if (end == n->value || *end || b < 1 || b > 10)
			return fail(c, n->line, "retransmit_base: expected a factor between 1 and 10, got '%s'", n->value);
		cfg->retransmit_base_milli = (uint32_t)(b * 1000 + 0.5);
	}
	if ((n = get(sec, "half_open_timeout"))) {
		uint64_t t;
		if (parse_time(c, n, &t))
			return -1;
		if (t < 1 || t > 3600)
			return fail(c, n->line, "half_open_timeout: expected 1s to 1h");
		cfg->half_open_timeout_s = (uint32_t)t;
	}
	if ((n = get(sec, "fragment_size"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		if (v < 128) /* small values only make sense in tests */
			return fail(c, n->line, "fragment_size: %llu is below 128", (unsigned long long)v);
		cfg->fragment_size = (uint32_t)v;
	}
	if ((n = get(sec, "cookie_threshold"))) {
		if (parse_uint(c, n, UINT32_MAX, &v))
			return -1;
		cfg->cookie_threshold = (uint32_t)v;
	}
	if ((n = get(sec, "socket"))) {
		if (parse_str(c, n, cfg->socket_path, sizeof(cfg->socket_path)))
			return -1;
		if (cfg->socket_path[0] != '/')
			return fail(c, n->line, "socket: must be an absolute path");
	}
	if ((n = get(sec, "log_level"))) {
		static const char *const lv[] = {"err", "warn", "info", "debug", "private"};
		bool ok = false;
		if (want_value(c, n))
			return -1;
		for (int i = 0; i < 5; i++)
			if (strcasecmp(n->value, lv[i]) == 0)
				cfg->log_level = (enum bt_log_level)i, ok = true;
		if (!ok)
			return fail(c, n->line, "log_level: expected err, warn, info, debug or private");
	}
	if ((n = get(sec, "log_file")) && parse_str(c, n, cfg->log_file, sizeof(cfg->log_file)))
		return -1;
	return check_unknown(c, sec, "baton");
}

static int child_keys(struct ctx *c, struct cnode *sec, const char *where, const char *dir,
		      struct cfg_child *ch, struct cfg_sa_keys *k)
{
	char key[32];
	struct cnode *n;
	uint64_t v;
	snprintf(key, sizeof(key), "spi_%s", dir);
	if (!(n = get(sec, key)))
		return fail(c, sec->line, "%s: %s is required for a static SA (or leave out spi_in and spi_out and let "
			    "IKE negotiate)", where, key);
	if (parse_uint(c, n, UINT32_MAX, &v))
		return -1;
	if (v < 256) /* RFC 4303 2.1: 1..255 are reserved */
		return fail(c, n->line, "%s: SPI 0x%llx is reserved (use 256 or above)", key,
			    (unsigned long long)v);
	k->spi = (uint32_t)v;

	bool need_enc = ch->enc != ESP_ENC_NULL, need_integ = ch->integ != ESP_INTEG_NONE;
	snprintf(key, sizeof(key), "enc_key_%s", dir);
	n = get(sec, key);
	if (need_enc && !n)
		return fail(c, sec->line, "%s: %s is required for %s", where, key, ch->esp_proposal);
	if (!need_enc && n)
		return fail(c, n->line, "%s: %s makes no sense with null encryption", where, key);
	if (n && parse_hex(c, n, k->enc_key, sizeof(k->enc_key), &k->enc_key_len))
		return -1;
	snprintf(key, sizeof(key), "integ_key_%s", dir);
	n = get(sec, key);
	if (need_integ && !n)
		return fail(c, sec->line, "%s: %s is required for %s", where, key, ch->esp_proposal);
	if (!need_integ && n)
		return fail(c, n->line, "%s: %s is not used by the AEAD proposal %s", where, key,
			    ch->esp_proposal);
	if (n && parse_hex(c, n, k->integ_key, sizeof(k->integ_key), &k->integ_key_len))
		return -1;
	return 0;
}

static int check_key_lens(struct ctx *c, struct cnode *sec, const char *dir, const struct cfg_child *ch,
			  const struct cfg_sa_keys *k, unsigned ekl, unsigned ikl)
{
	char key[32];
	snprintf(key, sizeof(key), "enc_key_%s", dir);
	struct cnode *n = get(sec, key);
	if (n && k->enc_key_len != ekl)
		return fail(c, n->line, "%s: %s needs %u bytes%s, got %u", key, ch->esp_proposal, ekl,
			    ch->enc == ESP_ENC_AES_GCM_16 || ch->enc == ESP_ENC_CHACHA20_POLY1305 ||
					    ch->enc == ESP_ENC_AES_CTR
				    ? " (key + 4 bytes salt)"
				    : "",
			    k->enc_key_len);
	snprintf(key, sizeof(key), "integ_key_%s", dir);
	n = get(sec, key);
	if (n && k->integ_key_len != ikl)
		return fail(c, n->line, "%s: %s needs %u bytes, got %u", key, ch->esp_proposal, ikl,
			    k->integ_key_len);
	return 0;
}

struct prop_list {
	struct ike_proposal *p;
	uint8_t *n;
	uint8_t protocol;
};

static int add_prop(struct ctx *c, struct cnode *n, const char *item, void *arg)
{
	struct prop_list *l = arg;
	char err[200];
	if (*l->n >= IKE_CONF_PROPS)
		return fail(c, n->line, "%s: more than %d proposals", n->name, IKE_CONF_PROPS);
	struct ike_proposal *p = &l->p[*l->n];
	if (ike_prop_parse(item, l->protocol, p, err, sizeof(err)) != 0)
		return fail(c, n->line, "%s: %s", n->name, err);
	/* zero the transforms' padding (assigned from compound literals): the daemon fingerprints
	 * connections byte for byte to tell on reload whether one changed */
	for (unsigned i = 0; i < p->n_tr && i < IKE_MAX_TRANSFORMS; i++) {
		struct ike_transform t = p->tr[i];
		memset(&p->tr[i], 0, sizeof(p->tr[i]));
		p->tr[i].type = t.type, p->tr[i].id = t.id, p->tr[i].key_bits = t.key_bits;
	}
	(*l->n)++;
	return 0;
}

/* One of a NULL-terminated list of words; returns its index or -1. */
static int parse_enum(struct ctx *c, struct cnode *n, const char *const *words)
{
	char list[128] = "";
	if (want_value(c, n))
		return -1;
	for (int i = 0; words[i]; i++) {
		if (!strcasecmp(n->value, words[i]))
			return i;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", words[i]);
	}
	fail(c, n->line, "%s: expected one of %s, got '%s'", n->name, list, n->value);
	return -1;
}

static int section_child(struct ctx *c, struct cnode *sec, struct cfg_conn *conn, struct cfg_child *ch,
			 unsigned index)
{
	char where[160];
	struct cnode *n;
	uint64_t v;
	unsigned ekl, ikl;
	snprintf(where, sizeof(where), "connections.%s.children.%s", conn->name, sec->name);
	if (strlen(sec->name) > 31)
		return fail(c, sec->line, "child name longer than 31 characters");
	strcpy(ch->name, sec->name);
	ch->line = sec->line;
	ch->replay_window = ESP_REPLAY_DEFAULT;
	ch->priority = 1000 + index;
	if ((n = get(sec, "mode"))) {
		if (want_value(c, n))
			return -1;
		if (!strcasecmp(n->value, "tunnel"))
			ch->mode = ESP_MODE_TUNNEL;
		else if (!strcasecmp(n->value, "transport"))
			ch->mode = ESP_MODE_TRANSPORT;
		else
			return fail(c, n->line, "mode: expected tunnel or transport, got '%s'", n->value);
	}
	if ((n = get(sec, "local_ts"))) {
		struct ts_list l = {ch->local_ts, &ch->n_local_ts};
		if (for_each_item(c, n, add_ts, &l))
			return -1;
	}
	if ((n = get(sec, "remote_ts"))) {
		struct ts_list l = {ch->remote_ts, &ch->n_remote_ts};
		if (for_each_item(c, n, add_ts, &l))
			return -1;
	}
	if (ch->mode == ESP_MODE_TUNNEL && (!ch->n_local_ts || !ch->n_remote_ts))
		return fail(c, sec->line, "%s: tunnel mode needs local_ts and remote_ts", where);
	if (ch->mode == ESP_MODE_TRANSPORT) {
		/* transport mode protects traffic between the SA's own endpoints */
		if (!ch->n_local_ts) {
			bt_prefix_range(&conn->local_addrs[0], &ch->local_ts[0].lo, &ch->local_ts[0].hi);
			ch->local_ts[0].port_hi = 65535;
			ch->n_local_ts = 1;
		}
		if (!ch->n_remote_ts) {
			struct bt_prefix host = conn->remote_addrs[0];
			for (unsigned i = 0; i < conn->n_remote_addrs; i++)
				if (bt_prefix_is_host(&conn->remote_addrs[i])) {
					host = conn->remote_addrs[i];
					break;
				}
			bt_prefix_range(&host, &ch->remote_ts[0].lo, &ch->remote_ts[0].hi);
			ch->remote_ts[0].port_hi = 65535;
			ch->n_remote_ts = 1;
		}
	}
	/* static keys make a static SA; without them, IKE negotiates the Child SA */
	bool is_static = peek(sec, "spi_in") || peek(sec, "spi_out");
	if (!(n = get(sec, "esp_proposals")))
		return fail(c, sec->line, "%s: esp_proposals is required", where);
	if (parse_str(c, n, ch->esp_proposal, sizeof(ch->esp_proposal)))
		return -1;
	if (strchr(ch->esp_proposal, ',') && is_static)
		return fail(c, n->line, "esp_proposals: static SAs take exactly one proposal");
	if (!is_static) {
		struct prop_list pl = {ch->esp_props, &ch->n_esp_props, IKE_PROTO_ESP};
		if (for_each_item(c, n, add_prop, &pl))
			return -1;
		*strchrnul(ch->esp_proposal, ',') = 0; /* the first one sizes the MTU */
	}
	if (esp_proposal_parse(ch->esp_proposal, &ch->enc, &ekl, &ch->integ, &ikl, &ch->esn) != 0)
		return fail(c, n->line, "esp_proposals: unknown or incomplete proposal '%s' (e.g. aes128gcm16, "
			    "aes128-sha256, chacha20poly1305, null-sha256, 3des-sha1)", ch->esp_proposal);
	if ((n = get(sec, "replay_window"))) {
		if (parse_uint(c, n, ESP_REPLAY_MAX, &v))
			return -1;
		ch->replay_window = (uint32_t)v;
	}
	struct {
		const char *key;
		uint64_t *dst;
		int kind; /* 0 time, 1 volume */
	} lt[] = {
		{"rekey_time", &ch->soft.seconds, 0},   {"life_time", &ch->hard.seconds, 0},
		{"rekey_bytes", &ch->soft.bytes, 1},    {"life_bytes", &ch->hard.bytes, 1},
		{"rekey_packets", &ch->soft.packets, 1}, {"life_packets", &ch->hard.packets, 1},
	};
	for (size_t i = 0; i < sizeof(lt) / sizeof(lt[0]); i++)
		if ((n = get(sec, lt[i].key)) &&
		    (lt[i].kind ? parse_volume(c, n, lt[i].dst) : parse_time(c, n, lt[i].dst)))
			return -1;
	if (ch->hard.seconds && ch->soft.seconds >= ch->hard.seconds)
		return fail(c, sec->line, "%s: rekey_time must be below life_time", where);
	if ((n = get(sec, "priority"))) {
		if (parse_uint(c, n, UINT32_MAX, &v))
			return -1;
		ch->priority = (uint32_t)v;
	}
	if ((n = get(sec, "start_action"))) {
		static const char *const v_[] = {"none", "trap", "start", NULL};
		int k = parse_enum(c, n, v_);
		if (k < 0)
			return -1;
		if (is_static && k)
			return fail(c, n->line, "start_action: only for Child SAs that IKE negotiates");
		ch->start_action = (enum cfg_start)k;
	}
	if ((n = get(sec, "dpd_action"))) {
		static const char *const v_[] = {"clear", "trap", "restart", NULL};
		int k = parse_enum(c, n, v_);
		if (k < 0)
			return -1;
		ch->dpd_action = (enum cfg_dpd_action)k;
	}
	if (!is_static)
		return check_unknown(c, sec, where);
	if (child_keys(c, sec, where, "in", ch, &ch->in) || child_keys(c, sec, where, "out", ch, &ch->out) ||
	    check_key_lens(c, sec, "in", ch, &ch->in, ekl, ikl) ||
	    check_key_lens(c, sec, "out", ch, &ch->out, ekl, ikl))
		return -1;
	ch->has_static_keys = true;
	return check_unknown(c, sec, where);
}

static int section_end(struct ctx *c, struct cnode *sec, struct cfg_end *end, const char *conn_where,
		       const char *which, const char *default_id);

static int section_conn(struct ctx *c, struct cnode *sec, struct cfg_conn *conn)
{
	char where[128];
	struct cnode *n;
	uint64_t v;
	snprintf(where, sizeof(where), "connections.%s", sec->name);
	if (want_section(c, sec))
		return -1;
	if (strlen(sec->name) > 31)
		return fail(c, sec->line, "connection name longer than 31 characters");
	strcpy(conn->name, sec->name);
	conn->line = sec->line;
	c->line_hint = sec->line;
	conn->encap = true;
	conn->local_port = 0; /* the data plane's port */
	conn->remote_port = ESP_UDP_PORT;
	if (!(n = get(sec, "local_addrs")))
		return fail(c, sec->line, "%s: local_addrs is required", where);
	struct pfx_list l = {conn->local_addrs, &conn->n_local_addrs};
	if (for_each_item(c, n, add_prefix, &l))
		return -1;
	if (!bt_prefix_is_host(&conn->local_addrs[0]))
		return fail(c, n->line, "local_addrs: the first entry must be an address, not a subnet");
	if (!(n = get(sec, "remote_addrs")))
		return fail(c, sec->line, "%s: remote_addrs is required", where);
	struct cnode *remote_n = n;
	if (want_value(c, n))
		return -1;
	if (!strcmp(n->value, "%any")) {
		/* a responder for any peer (IKE only) */
		conn->remote_addrs[0] = (struct bt_prefix){.addr.family = conn->local_addrs[0].addr.family};
		conn->n_remote_addrs = 1;
	} else {
		struct pfx_list r = {conn->remote_addrs, &conn->n_remote_addrs};
		if (for_each_item(c, n, add_prefix, &r))
			return -1;
	}
	bool host = false;
	for (unsigned i = 0; i < conn->n_remote_addrs; i++)
		host |= bt_prefix_is_host(&conn->remote_addrs[i]);
	for (unsigned i = 0; i < conn->n_remote_addrs; i++)
		if (conn->remote_addrs[i].addr.family != conn->local_addrs[0].addr.family)
			return fail(c, n->line, "remote_addrs: address family differs from local_addrs");
	if ((n = get(sec, "encap")) && parse_bool(c, n, &conn->encap))
		return -1;
	if ((n = get(sec, "local_port"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		conn->local_port = (uint16_t)v;
	}
	if ((n = get(sec, "remote_port"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		if (v == 0)
			return fail(c, n->line, "remote_port: must not be 0");
		conn->remote_port = (uint16_t)v;
	}
	struct cnode *children = get(sec, "children");
	if (!children)
		return fail(c, sec->line, "%s: a children { } section is required", where);
	if (want_section(c, children))
		return -1;
	for (struct cnode *ch = children->child; ch; ch = ch->next)
		conn->n_children++;
	if (!conn->n_children)
		return fail(c, children->line, "%s: no children", where);
	conn->children = calloc(conn->n_children, sizeof(*conn->children));
	if (!conn->children)
		return fail(c, sec->line, "out of memory");
	unsigned i = 0, n_static = 0;
	for (struct cnode *ch = children->child; ch; ch = ch->next, i++) {
		ch->used = true;
		if (want_section(c, ch) || section_child(c, ch, conn, &conn->children[i], i))
			return -1;
		n_static += conn->children[i].has_static_keys;
	}
	if (n_static && n_static != conn->n_children)
		return fail(c, children->line, "%s: children with static keys and children for IKE cannot share a "
			    "connection", where);
	conn->ike = !n_static;
	if (!conn->ike) {
		if (!host)
			return fail(c, remote_n->line,
				    "remote_addrs: at least one entry must be a single address to send to");
		static const char *const ike_only[] = {"proposals", "local", "remote", "dpd_delay", "rekey_time", "version",
						       "fragmentation", "mobike", "mobike_prefer", NULL};
		for (int k = 0; ike_only[k]; k++)
			if ((n = get(sec, ike_only[k])))
				return fail(c, n->line, "%s: only for IKE connections (these children have static keys)",
					    ike_only[k]);
		return check_unknown(c, sec, where);
	}
	for (size_t k = 0; k < conn->n_children; k++)
		if (!host && conn->children[k].start_action != CFG_START_NONE)
			return fail(c, conn->children[k].line, "start_action = %s needs a remote address to send to",
				    conn->children[k].start_action == CFG_START_TRAP ? "trap" : "start");
	if ((n = get(sec, "version"))) {
		if (parse_uint(c, n, 2, &v))
			return -1;
		if (v == 1)
			return fail(c, n->line, "version: IKEv1 is not supported");
	}
	if (!(n = get(sec, "proposals")))
		return fail(c, sec->line, "%s: proposals is required (e.g. aes128gcm16-prfsha256-x25519)", where);
	struct prop_list pl = {conn->ike_props, &conn->n_ike_props, IKE_PROTO_IKE};
	if (for_each_item(c, n, add_prop, &pl))
		return -1;
	char dflt[64];
	bt_addr_str(&conn->local_addrs[0].addr, dflt, sizeof(dflt));
	if (section_end(c, get(sec, "local"), &conn->local, where, "local", dflt))
		return -1;
	const struct bt_prefix *rh = NULL;
	for (unsigned k = 0; k < conn->n_remote_addrs && !rh; k++)
		if (bt_prefix_is_host(&conn->remote_addrs[k]))
			rh = &conn->remote_addrs[k];
	if (rh)
		bt_addr_str(&rh->addr, dflt, sizeof(dflt));
	if (section_end(c, get(sec, "remote"), &conn->remote, where, "remote", rh ? dflt : "%any"))
		return -1;
	if (conn->local.id_any)
		return fail(c, sec->line, "%s: local id cannot be %%any", where);
	if ((n = get(sec, "dpd_delay")) && parse_time(c, n, &conn->dpd_delay))
		return -1;
	conn->fragmentation = true;
	if ((n = get(sec, "fragmentation"))) {
		/* strongSwan's values: yes, accept (we answer fragments either way), force, no */
		if (want_value(c, n))
			return -1;
		if (!strcasecmp(n->value, "accept") || !strcasecmp(n->value, "force"))
			conn->fragmentation = true;
		else if (parse_bool(c, n, &conn->fragmentation))
			return -1;
	}
	if ((n = get(sec, "rekey_time")) && parse_time(c, n, &conn->ike_rekey_time))
		return -1;
	conn->mobike = true;
	if ((n = get(sec, "mobike")) && parse_bool(c, n, &conn->mobike))
		return -1;
	if ((n = get(sec, "mobike_prefer"))) {
		if (want_value(c, n))
			return -1;
		if (!strcasecmp(n->value, "local_addrs"))
			conn->mobike_prefer_order = true;
		else if (strcasecmp(n->value, "route"))
			return fail(c, n->line, "mobike_prefer: '%s' is not route or local_addrs", n->value);
	}
	return check_unknown(c, sec, where);
}

/* A file named in the configuration: relative to the configuration file's directory. */
static int parse_path(struct ctx *c, struct cnode *n, const char *item, char *out)
{
	int l = item[0] == '/' ? snprintf(out, CFG_PATH_MAX, "%s", item)
				: snprintf(out, CFG_PATH_MAX, "%s/%s", c->dir, item);
	if (l < 0 || l >= CFG_PATH_MAX)
		return fail(c, n->line, "%s: path too long (max %d)", n->name, CFG_PATH_MAX - 1);
	/* only regular files of sane size: a FIFO or /dev/zero would stall the parser */
	struct stat st;
	if (stat(out, &st) != 0)
		return fail(c, n->line, "%s: %s: %s", n->name, out, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_SIZE)
		return fail(c, n->line, "%s: %s: not a regular file of at most %d bytes", n->name, out, CONFIG_MAX_SIZE);
	return 0;
}

static int add_cacert(struct ctx *c, struct cnode *n, const char *item, void *arg)
{
	struct cfg_end *end = arg;
	if (end->n_cacerts >= CFG_CACERTS_MAX)
		return fail(c, n->line, "%s: at most %d files", n->name, CFG_CACERTS_MAX);
	return parse_path(c, n, item, end->cacerts[end->n_cacerts++]);
}

/* local { auth = psk | pubkey; id = ...; certs = FILE; key = FILE } or
 * remote { auth = psk | pubkey; id = ... | %any; cacerts = FILE[, FILE] } */
static int section_end(struct ctx *c, struct cnode *sec, struct cfg_end *end, const char *conn_where,
		       const char *which, const char *default_id)
{
	char where[160], err[200];
	struct cnode *n;
	bool local = !strcmp(which, "local");
	snprintf(where, sizeof(where), "%s.%s", conn_where, which);
	const char *id = default_id;
	end->auth = CFG_AUTH_PSK;
	if (sec) {
		if (want_section(c, sec))
			return -1;
		if ((n = get(sec, "auth"))) {
			static const char *const v_[] = {"psk", "pubkey", NULL};
			int k = parse_enum(c, n, v_);
			if (k < 0)
				return -1;
			end->auth = (enum cfg_auth)k;
		}
		if ((n = get(sec, "id"))) {
			if (want_value(c, n))
				return -1;
			id = n->value;
			end->id_line = n->line;
		}
		const char *files[] = {local ? "certs" : "cacerts", local ? "key" : NULL};
		for (int k = 0; k < 2 && files[k]; k++)
			if ((n = get(sec, files[k])) && end->auth != CFG_AUTH_PUBKEY)
				return fail(c, n->line, "%s: only with auth = pubkey", files[k]);
		if ((n = get(sec, local ? "cacerts" : "certs")))
			return fail(c, n->line, local ? "cacerts: the CAs we trust for the peer go in remote { }"
						      : "certs: the peer's certificate comes in IKE_AUTH; trust its CA "
							"with cacerts = FILE");
		if (local && (n = get(sec, "certs"))) {
			if (want_value(c, n))
				return -1;
			if (strchr(n->value, ','))
				return fail(c, n->line, "certs: one file (the certificate, then its intermediates)");
			if (parse_path(c, n, n->value, end->certs))
				return -1;
			end->certs_line = n->line;
		}
		if (local && (n = get(sec, "key"))) {
			if (want_value(c, n) || parse_path(c, n, n->value, end->key))
				return -1;
			end->key_line = n->line;
		}
		if (!local && (n = get(sec, "cacerts"))) {
			if (for_each_item(c, n, add_cacert, end))
				return -1;
			end->cacerts_line = n->line;
		}
		if (check_unknown(c, sec, where))
			return -1;
	}
	int line = sec ? sec->line : c->line_hint;
	if (end->auth == CFG_AUTH_PUBKEY && local && !end->certs[0])
		return fail(c, line, "%s: auth = pubkey needs certs = FILE (our certificate)", where);
	if (end->auth == CFG_AUTH_PUBKEY && !local && !end->n_cacerts)
		return fail(c, line, "%s: auth = pubkey needs cacerts = FILE (the CAs the peer's certificate must "
			    "chain to)", where);
	if (config_parse_id(id, end, err, sizeof(err)) != 0)
		return fail(c, end->id_line ? end->id_line : c->line_hint, "%s.id: %s", where, err);
	return 0;
}

static int section_policy(struct ctx *c, struct cnode *sec, struct cfg_policy *cp, unsigned index)
{
	char where[128];
	struct cnode *n;
	uint64_t v;
	struct spd_policy *p = &cp->pol;
	snprintf(where, sizeof(where), "policies.%s", sec->name);
	if (want_section(c, sec))
		return -1;
	if (strlen(sec->name) >= sizeof(p->name))
		return fail(c, sec->line, "policy name too long");
	strcpy(p->name, sec->name);
	cp->line = sec->line;
	p->dir = SPD_DIR_OUT;
	p->priority = 100 + index;
	if (!(n = get(sec, "action")))
		return fail(c, sec->line, "%s: action is required (bypass, discard or protect)", where);
	if (want_value(c, n))
		return -1;
	if (!strcasecmp(n->value, "bypass") || !strcasecmp(n->value, "pass"))
		p->action = SPD_BYPASS;
	else if (!strcasecmp(n->value, "discard") || !strcasecmp(n->value, "drop"))
		p->action = SPD_DISCARD;
	else if (!strcasecmp(n->value, "protect"))
		p->action = SPD_PROTECT;
	else
		return fail(c, n->line, "action: expected bypass, discard or protect, got '%s'", n->value);
	if (!(n = get(sec, "local_ts")))
		return fail(c, sec->line, "%s: local_ts is required", where);
	p->local = cp->local_ts, p->remote = cp->remote_ts;
	struct ts_list l = {cp->local_ts, &p->n_local};
	if (for_each_item(c, n, add_ts, &l))
		return -1;
	if (!(n = get(sec, "remote_ts")))
		return fail(c, sec->line, "%s: remote_ts is required", where);
	struct ts_list r = {cp->remote_ts, &p->n_remote};
	if (for_each_item(c, n, add_ts, &r))
		return -1;
	if ((n = get(sec, "priority"))) {
		if (parse_uint(c, n, UINT32_MAX, &v))
			return -1;
		p->priority = (uint32_t)v;
	}
	n = get(sec, "child");
	if (p->action == SPD_PROTECT && !n)
		return fail(c, sec->line, "%s: action = protect needs child = CONNECTION/CHILD", where);
	if (p->action != SPD_PROTECT && n)
		return fail(c, n->line, "child: only for action = protect");
	if (n && parse_str(c, n, cp->child, sizeof(cp->child)))
		return -1;
	return check_unknown(c, sec, where);
}

static struct cfg_child *find_child(struct bt_config *cfg, const char *ref)
{
	const char *slash = strchr(ref, '/');
	struct cfg_child *found = NULL;
	for (size_t i = 0; i < cfg->n_conns; i++) {
		struct cfg_conn *cn = &cfg->conns[i];
		if (slash && (strlen(cn->name) != (size_t)(slash - ref) || strncmp(cn->name, ref, (size_t)(slash - ref))))
			continue;
		for (size_t j = 0; j < cn->n_children; j++)
			if (strcmp(cn->children[j].name, slash ? slash + 1 : ref) == 0) {
				if (found)
					return NULL; /* ambiguous without the connection name */
				found = &cn->children[j];
			}
	}
	return found;
}

/* secret = "text" | 0xHEX | 0sBASE64 */
static int parse_secret(struct ctx *c, struct cnode *n, uint8_t *out, size_t cap, size_t *len)
{
	if (want_value(c, n))
		return -1;
	const char *v = n->value;
	if (!strncasecmp(v, "0x", 2)) {
		uint8_t l;
		if (parse_hex(c, n, out, cap > 255 ? 255 : cap, &l))
			return -1;
		*len = l;
	} else if (!strncmp(v, "0s", 2)) {
		size_t in = strlen(v + 2);
		uint8_t tmp[256];
		if (in > 4 * (sizeof(tmp) / 3) || in % 4)
			return fail(c, n->line, "%s: bad base64 value", n->name);
		int l = EVP_DecodeBlock(tmp, (const unsigned char *)v + 2, (int)in);
		if (l < 0)
			return fail(c, n->line, "%s: bad base64 value", n->name);
		for (const char *e = v + 2 + in; e > v + 2 && e[-1] == '='; e--)
			l--;
		if ((size_t)l > cap)
			return fail(c, n->line, "%s: longer than %zu bytes", n->name, cap);
		memcpy(out, tmp, (size_t)l);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		*len = (size_t)l;
	} else {
		if (strlen(v) > cap)
			return fail(c, n->line, "%s: longer than %zu bytes", n->name, cap);
		memcpy(out, v, strlen(v));
		*len = strlen(v);
	}
	if (!*len)
		return fail(c, n->line, "%s: empty secret", n->name);
	return 0;
}

static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return -1;
}

/* private-NAME { file = key.pem }: a private key, for the connection whose certificate it matches. */
static int section_private(struct ctx *c, struct cnode *x, struct cfg_secret *k, const char *where)
{
	struct cnode *n = get(x, "file");
	if (!n)
		return fail(c, x->line, "%s: file = KEY.pem is required", where);
	if (want_value(c, n) || parse_path(c, n, n->value, k->file))
		return -1;
	BIO *b = BIO_new_file(k->file, "r");
	if (b)
		k->pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (!k->pkey)
		return fail(c, n->line, "file: %s: %s", k->file, b ? "no unencrypted private key (PEM)" : strerror(errno));
	return check_unknown(c, x, where);
}

static int section_secrets(struct ctx *c, struct cnode *sec, struct bt_config *cfg)
{
	if (want_section(c, sec))
		return -1;
	for (struct cnode *x = sec->child; x; x = x->next)
		cfg->n_secrets++;
	cfg->secrets = calloc(cfg->n_secrets ? cfg->n_secrets : 1, sizeof(*cfg->secrets));
	if (!cfg->secrets)
		return fail(c, sec->line, "out of memory");
	size_t i = 0;
	for (struct cnode *x = sec->child; x; x = x->next, i++) {
		struct cfg_secret *k = &cfg->secrets[i];
		char where[96];
		x->used = true;
		snprintf(where, sizeof(where), "secrets.%s", x->name);
		if (want_section(c, x))
			return -1;
		k->line = x->line;
		if (!strncmp(x->name, "private", 7)) {
			if (section_private(c, x, k, where))
				return -1;
			continue;
		}
		if (strncmp(x->name, "ike", 3))
			return fail(c, x->line, "%s: only ike-NAME { id = ..., secret = ... } and private-NAME { file = "
				    "... } are known", where);
		for (struct cnode *n = x->child; n; n = n->next) {
			if (!strcmp(n->name, "secret")) {
				n->used = true;
				if (parse_secret(c, n, k->key, sizeof(k->key), &k->key_len))
					return -1;
			} else if (!strcmp(n->name, "id") || !strncmp(n->name, "id-", 3)) {
				n->used = true;
				if (k->n_ids >= 4)
					return fail(c, n->line, "%s: at most 4 ids", where);
				if (parse_str(c, n, k->ids[k->n_ids], sizeof(k->ids[0])))
					return -1;
				k->n_ids++;
			}
		}
		if (!k->key_len)
			return fail(c, x->line, "%s: secret is required", where);
		if (check_unknown(c, x, where))
			return -1;
	}
	return 0;
}

/* The shared key of an IKE connection with psk on either end: as charon, the secret whose ids
 * name both identities is best, then one naming either, then one without ids. */
static int resolve_psk(struct ctx *c, struct bt_config *cfg, struct cfg_conn *conn)
{
	if (!conn->ike || (conn->local.auth != CFG_AUTH_PSK && conn->remote.auth != CFG_AUTH_PSK))
		return 0;
	const struct cfg_secret *best = NULL;
	int best_score = -1;
	for (size_t i = 0; i < cfg->n_secrets; i++) {
		const struct cfg_secret *k = &cfg->secrets[i];
		int score = 0;
		bool l = false, r = false;
		for (unsigned j = 0; j < k->n_ids; j++) {
			l |= !strcmp(k->ids[j], conn->local.id_str);
			r |= !strcmp(k->ids[j], conn->remote.id_str) || !strcmp(k->ids[j], "%any");
		}
		if (!k->n_ids)
			score = 1;
		else if (l && r)
			score = 3;
		else if (l || r)
			score = 2;
		if (score > best_score && score > 0)
			best = k, best_score = score;
	}
	if (!best)
		return fail(c, conn->line, "connections.%s: no secret in secrets { } for id %s or %s", conn->name,
			    conn->local.id_str, conn->remote.id_str);
	memcpy(conn->psk, best->key, best->key_len);
	conn->psk_len = best->key_len;
	return 0;
}

/* The line and name of the key that named the file an ike_cred_load error is about. */
static int cred_err_line(const struct cfg_conn *conn, const char *err, const char **key)
{
	const struct cfg_end *l = &conn->local, *r = &conn->remote;
	size_t n;
	*key = "remote.cacerts";
	for (unsigned i = 0; i < r->n_cacerts; i++)
		if (!strncmp(err, r->cacerts[i], n = strlen(r->cacerts[i])) && err[n] == ':')
			return r->cacerts_line;
	*key = l->key_line ? "local.key" : "secrets: the private key";
	if (l->key[0] && !strncmp(err, l->key, n = strlen(l->key)) && err[n] == ':')
		return l->key_line ? l->key_line : l->certs_line;
	*key = "local.certs";
	return l->certs_line ? l->certs_line : conn->line;
}

/* Certificates of a connection with pubkey on either end: ours with its key (local.key, or the
 * private-* secret whose public key is the certificate's), and the CAs for the peer. */
static int resolve_cred(struct ctx *c, struct bt_config *cfg, struct cfg_conn *conn)
{
	struct cfg_end *l = &conn->local;
	char err[400];
	bool ours = l->auth == CFG_AUTH_PUBKEY;
	if (!conn->ike || (!ours && conn->remote.auth != CFG_AUTH_PUBKEY))
		return 0;
	if (ours && !l->key[0]) {
		BIO *b = BIO_new_file(l->certs, "r");
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		ERR_clear_error();
		if (!x)
			return fail(c, l->certs_line, "certs: %s: %s", l->certs, b ? "no certificate (PEM)" : strerror(errno));
		for (size_t i = 0; i < cfg->n_secrets && !l->key[0]; i++)
			if (cfg->secrets[i].pkey && EVP_PKEY_eq(X509_get0_pubkey(x), cfg->secrets[i].pkey) == 1)
				strcpy(l->key, cfg->secrets[i].file);
		X509_free(x);
		if (!l->key[0])
			return fail(c, l->certs_line, "certs: no private key for %s: add key = FILE, or secrets { "
				    "private-NAME { file = FILE } } with the key of this certificate", l->certs);
	}
	const char *cas[CFG_CACERTS_MAX];
	for (unsigned i = 0; i < conn->remote.n_cacerts; i++)
		cas[i] = conn->remote.cacerts[i];
	if (!(conn->cred = calloc(1, sizeof(*conn->cred))))
		return fail(c, conn->line, "out of memory");
	if (ike_cred_load(conn->cred, ours ? l->certs : NULL, ours ? l->key : NULL, cas, conn->remote.n_cacerts, err,
			  sizeof(err)) != 0) {
		free(conn->cred);
		conn->cred = NULL;
		const char *key;
		int line = cred_err_line(conn, err, &key);
		return fail(c, line, "connections.%s.%s: %s", conn->name, key, err);
	}
	if (!ours)
		return 0;
	if (!l->id_line) {
		/* as charon: without an id, we are our certificate's subject */
		l->id_type = IKE_ID_DER_ASN1_DN;
		l->id_len = ike_cred_own_id(conn->cred, l->id, sizeof(l->id));
		ike_dn_str(X509_get_subject_name(conn->cred->cert), l->id_str, sizeof(l->id_str));
		if (!l->id_len)
			return fail(c, l->certs_line, "certs: %s: subject too long for an identity", l->certs);
	} else if (!ike_cert_match_id(conn->cred->cert, l->id_type, l->id, l->id_len)) {
		return fail(c, l->id_line, "id: '%s' is neither the subject nor a subjectAltName of %s", l->id_str,
			    l->certs);
	}
	return 0;
}

/* One element of size bytes per entry of section n (zeroed), their number in *count; NULL (message
 * set) without memory. */
static void *alloc_entries(struct ctx *c, struct cnode *n, size_t size, size_t *count)
{
	*count = 0;
	for (struct cnode *x = n->child; x; x = x->next)
		(*count)++;
	void *v = calloc(*count ? *count : 1, size);
	if (!v)
		fail(c, n->line, "out of memory");
	return v;
}

/* cluster.shared_addrs item: ADDR[/PLEN]%DEV (the address itself, not its network: it is added to DEV). */
static int add_shared(struct ctx *c, struct cnode *n, const char *item, void *arg)
{
	struct cfg_cluster *cl = arg;
	char buf[BT_ADDRSTRLEN + 24];
	if (cl->n_shared >= CFG_SHARED_MAX)
		return fail(c, n->line, "%s: more than %d addresses", n->name, CFG_SHARED_MAX);
	if (strlen(item) >= sizeof(buf))
		return fail(c, n->line, "%s: '%s' is too long", n->name, item);
	strcpy(buf, item);
	char *dev = strchr(buf, '%'), *slash = strchr(buf, '/');
	if (!dev || !ifname_ok(dev + 1))
		return fail(c, n->line, "%s: '%s': expected ADDR/PLEN%%DEV (the interface it lives on)", n->name, item);
	*dev++ = 0;
	struct cfg_shared *sh = &cl->shared[cl->n_shared];
	if (slash)
		*slash++ = 0;
	if (bt_addr_parse(buf, &sh->addr) != 0)
		return fail(c, n->line, "%s: '%s' is not an address", n->name, buf);
	unsigned max = sh->addr.family == AF_INET ? 32 : 128;
	char *end = NULL;
	unsigned long plen = slash ? strtoul(slash, &end, 10) : max;
	if (slash && (!isdigit((unsigned char)*slash) || *end || plen > max || plen == 0))
		return fail(c, n->line, "%s: '/%s' is not a prefix length for %s", n->name, slash, buf);
	sh->plen = (uint8_t)plen;
	strcpy(sh->dev, dev);
	for (unsigned i = 0; i < cl->n_shared; i++)
		if (bt_addr_eq(&cl->shared[i].addr, &sh->addr))
			return fail(c, n->line, "%s: %s is listed twice", n->name, buf);
	cl->n_shared++;
	return 0;
}

/* cluster.nodes entry: ADDR, V4ADDR:PORT or [ADDR]:PORT. */
static int parse_node(struct ctx *c, struct cnode *n, uint16_t dflt, struct cfg_node *node)
{
	char buf[BT_ADDRSTRLEN];
	const char *v = n->value, *port = NULL;
	size_t alen = strlen(v);
	if (v[0] == '[') {
		const char *rb = strchr(v, ']');
		if (!rb || (rb[1] && rb[1] != ':'))
			return fail(c, n->line, "nodes.%s: expected [ADDR]:PORT, got '%s'", n->name, v);
		v++, alen = (size_t)(rb - v), port = rb[1] ? rb + 2 : NULL;
	} else {
		const char *colon = strchr(v, ':');
		if (colon && !strchr(colon + 1, ':')) /* one colon: IPv4:PORT; more: a bare IPv6 address */
			alen = (size_t)(colon - v), port = colon + 1;
	}
	if (alen == 0 || alen >= sizeof(buf))
		return fail(c, n->line, "nodes.%s: '%s' is not an address", n->name, n->value);
	memcpy(buf, v, alen);
	buf[alen] = 0;
	if (bt_addr_parse(buf, &node->addr) != 0)
		return fail(c, n->line, "nodes.%s: '%s' is not an address", n->name, buf);
	node->port = dflt;
	if (port) {
		char *end;
		unsigned long p = isdigit((unsigned char)*port) ? strtoul(port, &end, 10) : 0;
		if (!p || *end || p > 65535)
			return fail(c, n->line, "nodes.%s: bad port '%s'", n->name, port);
		node->port = (uint16_t)p;
	}
	if (strlen(n->name) >= sizeof(node->name))
		return fail(c, n->line, "nodes.%s: name longer than %zu characters", n->name, sizeof(node->name) - 1);
	strcpy(node->name, n->name);
	return 0;
}

static int section_cluster(struct ctx *c, struct cnode *sec, struct cfg_cluster *cl)
{
	struct cnode *n;
	uint64_t v;
	uint8_t klen = 0;
	cl->present = true;
	if ((n = get(sec, "name")) && parse_str(c, n, cl->name, sizeof(cl->name)))
		return -1;
	if (!(n = get(sec, "key")))
		return fail(c, sec->line, "cluster: key is required (32 bytes: key = 0x followed by 64 hex digits)");
	if (parse_hex(c, n, cl->key, sizeof(cl->key), &klen))
		return -1;
	if (klen != sizeof(cl->key))
		return fail(c, n->line, "key: expected 32 bytes (64 hex digits), got %u", klen);
	cl->has_key = true;
	if ((n = get(sec, "port"))) {
		if (parse_uint(c, n, 65535, &v))
			return -1;
		if (v == 0)
			return fail(c, n->line, "port: must not be 0");
		cl->port = (uint16_t)v;
	}
	if ((n = get(sec, "listen"))) {
		if (want_value(c, n))
			return -1;
		if (bt_addr_parse(n->value, &cl->listen) != 0)
			return fail(c, n->line, "listen: '%s' is not an address", n->value);
	}
	if ((n = get(sec, "seq_jump")) && parse_uint(c, n, UINT32_MAX, &cl->seq_jump))
		return -1;
	if ((n = get(sec, "shared_addrs")) && for_each_item(c, n, add_shared, cl))
		return -1;
	if ((n = get(sec, "nodes"))) {
		if (want_section(c, n))
			return -1;
		if (!(cl->nodes = alloc_entries(c, n, sizeof(*cl->nodes), &cl->n_nodes)))
			return -1;
		size_t i = 0;
		for (struct cnode *x = n->child; x; x = x->next, i++) {
			x->used = true;
			if (want_value(c, x) || parse_node(c, x, cl->port, &cl->nodes[i]))
				return -1;
			if (cl->name[0] && !strcmp(x->name, cl->name))
				return fail(c, x->line, "nodes.%s: that is this node's name", x->name);
		}
	}
	return check_unknown(c, sec, "cluster");
}

static int interpret(struct ctx *c, struct cnode *root, struct bt_config *cfg)
{
	struct cnode *n;
	if ((n = get(root, "baton")) && (want_section(c, n) || section_baton(c, n, cfg)))
		return -1;
	if ((n = get(root, "connections"))) {
		if (want_section(c, n))
			return -1;
		if (!(cfg->conns = alloc_entries(c, n, sizeof(*cfg->conns), &cfg->n_conns)))
			return -1;
		size_t i = 0;
		for (struct cnode *x = n->child; x; x = x->next, i++) {
			x->used = true;
			if (section_conn(c, x, &cfg->conns[i]))
				return -1;
		}
	}
	if ((n = get(root, "policies"))) {
		if (want_section(c, n))
			return -1;
		if (!(cfg->policies = alloc_entries(c, n, sizeof(*cfg->policies), &cfg->n_policies)))
			return -1;
		unsigned i = 0;
		for (struct cnode *x = n->child; x; x = x->next, i++) {
			x->used = true;
			if (section_policy(c, x, &cfg->policies[i], i))
				return -1;
		}
	}
	if ((n = get(root, "secrets")) && section_secrets(c, n, cfg))
		return -1;
	if ((n = get(root, "cluster")) && (want_section(c, n) || section_cluster(c, n, &cfg->cluster)))
		return -1;
	if (check_unknown(c, root, "the top level (expected baton, connections, policies, secrets, cluster)"))
		return -1;
	for (size_t i = 0; i < cfg->n_conns; i++)
		if (resolve_cred(c, cfg, &cfg->conns[i]) || resolve_psk(c, cfg, &cfg->conns[i]))
			return -1;

	/* cross-checks: unique SPIs per direction, reqids, policy references */
	uint32_t reqid = 1;
	for (size_t i = 0; i < cfg->n_conns; i++)
		for (size_t j = 0; j < cfg->conns[i].n_children; j++) {
			struct cfg_child *a = &cfg->conns[i].children[j];
			a->reqid = reqid++;
			for (size_t k = 0; k <= i; k++)
				for (size_t m = 0; m < cfg->conns[k].n_children; m++) {
					struct cfg_child *b = &cfg->conns[k].children[m];
					if (b == a)
						break;
					if (!a->has_static_keys || !b->has_static_keys)
						continue;
					if (b->in.spi == a->in.spi)
						return fail(c, a->line, "spi_in 0x%x is already used by %s/%s (line %d)",
							    a->in.spi, cfg->conns[k].name, b->name, b->line);
					if (b->out.spi == a->out.spi && bt_addr_eq(&cfg->conns[k].remote_addrs[0].addr,
										  &cfg->conns[i].remote_addrs[0].addr))
						return fail(c, a->line, "spi_out 0x%x is already used by %s/%s (line %d)",
							    a->out.spi, cfg->conns[k].name, b->name, b->line);
				}
		}
	for (size_t i = 0; i < cfg->n_policies; i++) {
		struct cfg_policy *cp = &cfg->policies[i];
		if (cp->pol.action != SPD_PROTECT)
			continue;
		struct cfg_child *ch = find_child(cfg, cp->child);
		if (!ch)
			return fail(c, cp->line, "policies.%s: child '%s' not found (or ambiguous: use CONN/CHILD)",
				    cp->pol.name, cp->child);
		cp->pol.reqid = ch->reqid;
	}
	return 0;
}

static void defaults(struct bt_config *cfg, const char *name)
{
	snprintf(cfg->path, sizeof(cfg->path), "%s", name);
	strcpy(cfg->dp.tun_name, "bt0");
	cfg->dp.outer_mtu = 1500;
	cfg->dp.udp_port = ESP_UDP_PORT;
	cfg->dp.raw_esp = true;
	cfg->dp.offload = true;
	strcpy(cfg->socket_path, "/run/baton/baton.sock");
	cfg->log_level = BT_LOG_INFO;
	cfg->ike_port = 500;
	cfg->retransmit_timeout_ms = 4000;
	cfg->retransmit_tries = 5;
	cfg->retransmit_base_milli = 1800;
	cfg->cookie_threshold = 10;
	cfg->fragment_size = 1280;
	cfg->half_open_timeout_s = 30;
	cfg->keepalive_s = 20;
	cfg->cluster.port = 4510;
	cfg->cluster.seq_jump = 10000;
}

/* cfg->spd_static (selectors borrowed from cfg): each child's outbound PROTECT policy (an IKE child's only if it traps: the
 * others' exist per negotiated SA), then the explicit policies. 0 or -1 (ENOMEM). */
static int build_spd_static(struct bt_config *cfg)
{
	size_t total = cfg->n_policies;
	for (size_t i = 0; i < cfg->n_conns; i++)
		for (size_t j = 0; j < cfg->conns[i].n_children; j++)
			total += !cfg->conns[i].ike || cfg->conns[i].children[j].start_action == CFG_START_TRAP;
	struct spd_policy *v = calloc(total ? total : 1, sizeof(*v));
	if (!v)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_conns; i++)
		for (size_t j = 0; j < cfg->conns[i].n_children; j++) {
			const struct cfg_child *ch = &cfg->conns[i].children[j];
			if (cfg->conns[i].ike && ch->start_action != CFG_START_TRAP)
				continue;
			struct spd_policy *p = &v[n++];
			p->dir = SPD_DIR_OUT, p->action = SPD_PROTECT, p->reqid = ch->reqid, p->priority = ch->priority;
			snprintf(p->name, sizeof(p->name), "%.31s/%.31s", cfg->conns[i].name, ch->name);
			p->local = ch->local_ts, p->remote = ch->remote_ts; /* copied by the SPD */
			p->n_local = ch->n_local_ts, p->n_remote = ch->n_remote_ts;
		}
	for (size_t i = 0; i < cfg->n_policies; i++)
		v[n++] = cfg->policies[i].pol;
	cfg->spd_static = v, cfg->n_spd_static = n;
	return 0;
}

int config_parse(const char *text, size_t len, const char *name, struct bt_config **out, char *err,
		 size_t errlen)
{
	struct ctx c = {.file = name, .err = err, .errlen = errlen};
	const char *slash = strrchr(name, '/');
	*out = NULL;
	if (!slash)
		strcpy(c.dir, ".");
	else
		snprintf(c.dir, sizeof(c.dir), "%.*s", (int)(slash == name ? 1 : slash - name), name);
	if (len > CONFIG_MAX_SIZE) {
		snprintf(err, errlen, "%s:1: file larger than %d bytes", name, CONFIG_MAX_SIZE);
		return -1;
	}
	struct cnode *root = cfgtree_parse(text, len, name, err, errlen);
	if (!root)
		return -1;
	struct bt_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		cfgtree_free(root);
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	defaults(cfg, name);
	int rc = interpret(&c, root, cfg);
	cfgtree_free(root);
	if (!rc && build_spd_static(cfg) != 0) {
		snprintf(err, errlen, "%s: out of memory", name);
		rc = -1;
	}
	if (rc) {
		config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

int config_load(const char *path, struct bt_config **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	/* the buffer grows with the file, up to one byte past the limit (config_parse refuses that) */
	size_t cap = 0, n = 0;
	char *buf = NULL;
	bool bad = false;
	do {
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 65536;
			if (nc > CONFIG_MAX_SIZE + 1)
				nc = CONFIG_MAX_SIZE + 1;
			char *nb = malloc(nc);
			if (!nb) {
				if (buf)
					OPENSSL_cleanse(buf, n);
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return -1;
			}
			if (buf) {
				memcpy(nb, buf, n);
				OPENSSL_cleanse(buf, n);
			}
			free(buf);
			buf = nb, cap = nc;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (!r)
			break;
	} while (n < CONFIG_MAX_SIZE + 1);
	bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		snprintf(err, errlen, "%s: read error", path);
		return -1;
	}
	int rc = config_parse(buf, n, path, out, err, errlen);
	OPENSSL_cleanse(buf, n);
	free(buf);
	return rc;
}

void config_free(struct bt_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_conns; i++) {
		if (cfg->conns[i].cred) {
			ike_cred_free(cfg->conns[i].cred);
			free(cfg->conns[i].cred);
		}
		if (cfg->conns[i].children)
			OPENSSL_cleanse(cfg->conns[i].children,
					       cfg->conns[i].n_children * sizeof(*cfg->conns[i].children));
		free(cfg->conns[i].children);
	}
	if (cfg->conns)
		OPENSSL_cleanse(cfg->conns, cfg->n_conns * sizeof(*cfg->conns));
	free(cfg->conns);
	free(cfg->policies);
	free(cfg->cluster.nodes);
	OPENSSL_cleanse(cfg->cluster.key, sizeof(cfg->cluster.key));
	for (size_t i = 0; cfg->secrets && i < cfg->n_secrets; i++)
		EVP_PKEY_free(cfg->secrets[i].pkey);
	free(cfg->spd_static);
	if (cfg->secrets)
		OPENSSL_cleanse(cfg->secrets, cfg->n_secrets * sizeof(*cfg->secrets));
	free(cfg->secrets);
	free(cfg);
}

static uint64_t now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

int config_child_sas(const struct bt_config *cfg, const struct cfg_conn *conn,
		     const struct cfg_child *child, unsigned lanes, struct esp_sa **in,
		     struct esp_sa **out, char *err, size_t errlen)
{
	struct esp_sa *sas[2] = {calloc(1, sizeof(struct esp_sa)), calloc(1, sizeof(struct esp_sa))};
	char e[160];
	*in = *out = NULL;
	if (!sas[0] || !sas[1]) {
		free(sas[0]), free(sas[1]);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const struct bt_prefix *remote = &conn->remote_addrs[0];
	for (unsigned i = 0; i < conn->n_remote_addrs; i++)
		if (bt_prefix_is_host(&conn->remote_addrs[i])) {
			remote = &conn->remote_addrs[i];
			break;
		}
	for (int d = 0; d < 2; d++) {
		struct esp_sa *sa = sas[d];
		const struct cfg_sa_keys *k = d == 0 ? &child->in : &child->out;
		snprintf(sa->name, sizeof(sa->name), "%.31s/%.31s", conn->name, child->name);
		sa->spi = k->spi;
		sa->reqid = child->reqid;
		sa->dir = d == 0 ? ESP_DIR_IN : ESP_DIR_OUT;
		sa->mode = child->mode;
		sa->encap = conn->encap ? ESP_ENCAP_UDP : ESP_ENCAP_RAW;
		sa->local = conn->local_addrs[0].addr;
		sa->remote = remote->addr;
		sa->local_port = conn->local_port ? conn->local_port : cfg->dp.udp_port;
		sa->remote_port = conn->remote_port;
		if (esp_sa_set_peers(sa, conn->remote_addrs, conn->n_remote_addrs) ||
		    esp_sa_set_ts(sa, child->local_ts, child->n_local_ts, child->remote_ts, child->n_remote_ts)) {
			snprintf(err, errlen, "out of memory");
			esp_sa_clear(sas[0]), esp_sa_clear(sas[1]);
			free(sas[0]), free(sas[1]);
			return -1;
		}
		sa->enc = child->enc, sa->integ = child->integ, sa->esn = child->esn;
		memcpy(sa->enc_key, k->enc_key, k->enc_key_len);
		sa->enc_key_len = k->enc_key_len;
		memcpy(sa->integ_key, k->integ_key, k->integ_key_len);
		sa->integ_key_len = k->integ_key_len;
		sa->soft = child->soft, sa->hard = child->hard;
		sa->add_time = now_sec();
		esp_sa_set_replay_window(sa, sa->dir == ESP_DIR_IN ? child->replay_window : 0);
		if (esp_sa_init(sa, lanes, e, sizeof(e)) != 0) {
			snprintf(err, errlen, "%s:%d: %s: %s", cfg->path, child->line, sa->name, e);
			esp_sa_clear(sas[0]), esp_sa_clear(sas[1]);
			free(sas[0]), free(sas[1]);
			return -1;
		}
	}
	*in = sas[0], *out = sas[1];
	return 0;
}

struct spd *config_build_spd(const struct bt_config *cfg, char *err, size_t errlen)
{
	struct spd *spd = spd_new();
	if (!spd || spd_reserve(spd, cfg->n_spd_static) != 0)
		goto nomem;
	for (size_t i = 0; i < cfg->n_spd_static; i++)
		if (spd_append(spd, &cfg->spd_static[i]) != 0)
			goto nomem;
	if (spd_sort(spd) != 0)
		goto nomem;
	return spd;
nomem:
	spd_free(spd);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/* A DN as OpenSSL reads "C=CH, O=baton, CN=gw" (',' or '/' separated), DER-encoded. */
static int parse_dn(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	X509_NAME *name = X509_NAME_new();
	char buf[256], *save = NULL;
	int rc = -1;
	if (!name || strlen(s) >= sizeof(buf))
		goto out;
	strcpy(buf, s);
	for (char *t = strtok_r(buf, ",/", &save); t; t = strtok_r(NULL, ",/", &save)) {
		while (*t == ' ')
			t++;
		char *eq = strchr(t, '=');
		if (!eq || eq == t)
			goto out;
		*eq = 0;
		char *e = eq - 1;
		while (e > t && *e == ' ')
			*e-- = 0;
		if (!X509_NAME_add_entry_by_txt(name, t, MBSTRING_UTF8, (const unsigned char *)eq + 1, -1, -1, 0))
			goto out;
	}
	int l = i2d_X509_NAME(name, NULL);
	if (l <= 0 || (size_t)l > cap || X509_NAME_entry_count(name) == 0)
		goto out;
	unsigned char *p = out;
	i2d_X509_NAME(name, &p);
	*len = (size_t)l;
	rc = 0;
out:
	X509_NAME_free(name);
	return rc;
}

int config_parse_id(const char *s, struct cfg_end *end, char *err, size_t errlen)
{
	struct bt_addr a;
	if (strlen(s) >= sizeof(end->id_str)) {
		snprintf(err, errlen, "identity too long");
		return -1;
	}
	strcpy(end->id_str, s);
	end->id_any = false;
	if (!strcmp(s, "%any")) {
		end->id_any = true, end->id_len = 0, end->id_type = 0;
		return 0;
	}
	if (bt_addr_parse(s, &a) == 0) {
		end->id_type = a.family == AF_INET ? IKE_ID_IPV4 : IKE_ID_IPV6;
		end->id_len = a.family == AF_INET ? 4 : 16;
		memcpy(end->id, a.b, end->id_len);
		return 0;
	}
	if (!strncmp(s, "@#", 2)) {
		size_t l = strlen(s + 2);
		if (!l || l % 2 || l / 2 > sizeof(end->id))
			goto bad;
		for (size_t i = 0; i < l; i += 2) {
			char b[3] = {s[2 + i], s[3 + i], 0};
			if (!isxdigit((unsigned char)b[0]) || !isxdigit((unsigned char)b[1]))
				goto bad;
			end->id[i / 2] = (uint8_t)strtoul(b, NULL, 16);
		}
		end->id_type = IKE_ID_KEY_ID, end->id_len = l / 2;
		return 0;
	}
	if (s[0] == '@') {
		if (!s[1])
			goto bad;
		end->id_type = IKE_ID_FQDN, end->id_len = strlen(s + 1);
		memcpy(end->id, s + 1, end->id_len);
		return 0;
	}
	if (strchr(s, '=')) {
		if (parse_dn(s, end->id, sizeof(end->id), &end->id_len))
			goto bad;
		end->id_type = IKE_ID_DER_ASN1_DN;
		return 0;
	}
	if (!*s)
		goto bad;
	end->id_type = strchr(s, '@') ? IKE_ID_RFC822 : IKE_ID_FQDN;
	end->id_len = strlen(s);
	memcpy(end->id, s, end->id_len);
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not an identity (an address, @fqdn, user@domain, @#hex or a DN)", s);
	return -1;
}
