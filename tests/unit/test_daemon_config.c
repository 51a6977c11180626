/* test_daemon_config.c — the configuration parser: a complete file read field by field, and a table
 * of wrong files, each refused with the right file:line and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/config.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#define KEY16 "0x00112233445566778899aabbccddeeff"
#define KEY20 "0x00112233445566778899aabbccddeeff01020304"
#define KEY32 KEY16 "00112233445566778899aabbccddeeff"

static const char *good =
	"# a gateway\n"
	"baton {\n"
	"    tun = bt7\n"
	"    mtu = 1400\n"
	"    workers = 2\n"
	"    port = 4501\n"
	"    raw_esp = no\n"
	"    socket = \"/tmp/x y.sock\"\n"
	"    log_level = debug\n"
	"}\n"
	"connections {\n"
	"    gw {\n"
	"        local_addrs = 172.16.0.1\n"
	"        remote_addrs = 192.168.3.0/24, 172.16.0.2\n"
	"        encap = no\n"
	"        children {\n"
	"            net {\n"
	"                local_ts = 10.1.0.0/24\n"
	"                remote_ts = 10.2.0.0/24, 10.3.0.1[sctp/5000]\n"
	"                esp_proposals = aes128-sha256-esn\n"
	"                replay_window = 4096\n"
	"                rekey_time = 50m\n"
	"                life_time = 1h\n"
	"                life_bytes = 2g\n"
	"                rekey_packets = 1k\n"
	"                spi_in = 0xc0000001\n"
	"                spi_out = 0xc0000002\n"
	"                enc_key_in = " KEY16 "\n"
	"                enc_key_out = " KEY16 "\n"
	"                integ_key_in = " KEY32 "\n"
	"                integ_key_out = " KEY32 "\n"
	"            }\n"
	"            host {\n"
	"                mode = transport\n"
	"                esp_proposals = aes128gcm16\n"
	"                spi_in = 0x1001\n"
	"                spi_out = 0x1002\n"
	"                enc_key_in = " KEY20 "\n"
	"                enc_key_out = " KEY20 "\n"
	"            }\n"
	"        }\n"
	"    }\n"
	"}\n"
	"policies {\n"
	"    lan {\n"
	"        action = bypass\n"
	"        local_ts = 10.1.0.0/24\n"
	"        remote_ts = 10.1.0.0/24\n"
	"        priority = 5\n"
	"    }\n"
	"    again {\n"
	"        action = protect\n"
	"        local_ts = 10.9.0.0/24\n"
	"        remote_ts = 10.8.0.0/24\n"
	"        child = gw/net\n"
	"    }\n"
	"}\n";

static void test_good(void **state)
{
	struct bt_config *cfg;
	char err[256];
	if (config_parse(good, strlen(good), "good.conf", &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(cfg->dp.tun_name, "bt7");
	assert_int_equal(cfg->dp.mtu, 1400);
	assert_int_equal(cfg->dp.lanes, 2);
	assert_int_equal(cfg->dp.udp_port, 4501);
	assert_false(cfg->dp.raw_esp);
	assert_string_equal(cfg->socket_path, "/tmp/x y.sock");
	assert_int_equal(cfg->log_level, BT_LOG_DEBUG);
	assert_int_equal(cfg->keepalive_s, 20); /* the default */
	assert_int_equal(cfg->n_conns, 1);
	struct cfg_conn *c = &cfg->conns[0];
	assert_false(c->encap);
	assert_int_equal(c->n_remote_addrs, 2);
	assert_int_equal(c->n_children, 2);
	struct cfg_child *n = &c->children[0], *h = &c->children[1];
	assert_int_equal(n->n_remote_ts, 2);
	assert_int_equal(n->remote_ts[1].proto, 132);
	assert_int_equal(n->remote_ts[1].port_lo, 5000);
	assert_int_equal(n->enc, ESP_ENC_AES_CBC);
	assert_int_equal(n->integ, ESP_INTEG_HMAC_SHA2_256_128);
	assert_true(n->esn);
	assert_int_equal(n->replay_window, 4096);
	assert_int_equal(n->soft.seconds, 3000);
	assert_int_equal(n->hard.seconds, 3600);
	assert_int_equal(n->hard.bytes, 2000000000ull);
	assert_int_equal(n->soft.packets, 1000);
	assert_int_equal(n->in.spi, 0xc0000001);
	assert_int_equal(n->in.integ_key_len, 32);
	assert_int_equal(n->reqid, 1);
	assert_int_equal(h->reqid, 2);
	assert_int_equal(h->mode, ESP_MODE_TRANSPORT);
	assert_int_equal(h->n_local_ts, 1); /* defaults to the connection's addresses */
	char buf[128];
	assert_string_equal(bt_ts_str(&h->remote_ts[0], buf, sizeof(buf)), "172.16.0.2/32");
	assert_int_equal(cfg->n_policies, 2);
	assert_int_equal(cfg->policies[1].pol.reqid, 1);

	/* the SAs a child becomes */
	struct esp_sa *in, *out;
	assert_int_equal(config_child_sas(cfg, c, n, 2, &in, &out, err, sizeof(err)), 0);
	assert_string_equal(in->name, "gw/net");
	assert_int_equal(in->dir, ESP_DIR_IN);
	assert_int_equal(out->spi, 0xc0000002);
	assert_int_equal(out->encap, ESP_ENCAP_RAW);
	assert_string_equal(bt_addr_str(&out->remote, buf, sizeof(buf)), "172.16.0.2");
	assert_int_equal(in->n_peers, 2);
	assert_int_equal(in->replay.size, 4096);
	esp_sa_clear(in), esp_sa_clear(out);
	free(in), free(out);

	struct spd *spd = config_build_spd(cfg, err, sizeof(err));
	assert_non_null(spd);
	assert_int_equal(spd_count(spd), 4);
	assert_string_equal(spd_get(spd, 0)->name, "lan");     /* priority 5 */
	assert_string_equal(spd_get(spd, 1)->name, "again");   /* 100 + index */
	assert_string_equal(spd_get(spd, 2)->name, "gw/net");  /* 1000 */
	spd_free(spd);
	config_free(cfg);
}

/* Replace the first occurrence of `from` in the good file with `to`. */
/* base with its first `from` replaced by `to` (in a static buffer) */
static char *variant_of(const char *base, const char *from, const char *to)
{
	static char buf[8192];
	const char *p = strstr(base, from);
	assert_non_null(p);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - base), base, to, p + strlen(from));
	return buf;
}

static char *variant(const char *from, const char *to) { return variant_of(good, from, to); }

/* Case i of a table of wrong files: text must be refused with a message starting with want. */
static void expect_refused(size_t i, const char *text, const char *want)
{
	struct bt_config *cfg = NULL;
	char err[512];
	if (config_parse(text, strlen(text), "bad.conf", &cfg, err, sizeof(err)) == 0)
		fail_msg("case %zu: accepted", i);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("case %zu: got '%s', want '%s...'", i, err, want);
	assert_null(cfg);
}

static void test_bad(void **state)
{
	static const struct {
		const char *from, *to, *want;
	} v[] = {
		{"tun = bt7", "tun = bt 7", "bad.conf:3: tun: bad interface name"},
		{"mtu = 1400", "mtu = 100", "bad.conf:4: mtu: 100 is below 576"},
		{"workers = 2", "workers = many", "bad.conf:5: workers: expected a number"},
		{"port = 4501", "port = 70000", "bad.conf:6: port: '70000' is out of range"},
		{"raw_esp = no", "raw_esp = perhaps", "bad.conf:7: raw_esp: expected yes or no"},
		{"mtu = 1400", "mtu = 1400\n    keepalive = 0s", "bad.conf:5: keepalive: expected between 1s and 1h"},
		{"mtu = 1400", "mtu = 1400\n    keepalive = soon", "bad.conf:5: keepalive: expected a number"},
		{"log_level = debug", "log_level = loud", "bad.conf:9: log_level: expected"},
		{"    tun = bt7\n", "    tunnel = bt7\n", "bad.conf:3: unknown setting 'tunnel' in baton"},
		{"remote_addrs = 192.168.3.0/24, 172.16.0.2", "remote_addrs = 192.168.3.0/24",
		 "bad.conf:14: remote_addrs: at least one entry must be a single address"},
		{"remote_addrs = 192.168.3.0/24, 172.16.0.2", "remote_addrs = 192.168.3.0/24, 2001:db8::1",
		 "bad.conf:14: remote_addrs: address family differs"},
		{"local_addrs = 172.16.0.1", "local_addrs = 172.16.0.300", "bad.conf:13: local_addrs: '172.16.0.300' is not"},
		{"remote_ts = 10.2.0.0/24, 10.3.0.1[sctp/5000]", "remote_ts = 10.2.0.0/24, 10.3.0.1[sctp/5000",
		 "bad.conf:19: remote_ts: unterminated '['"},
		{"esp_proposals = aes128-sha256-esn", "esp_proposals = aes128", "bad.conf:20: esp_proposals: unknown or incomplete"},
		{"esp_proposals = aes128-sha256-esn", "esp_proposals = aes128-sha256,aes128gcm16",
		 "bad.conf:20: esp_proposals: static SAs take exactly one"},
		{"replay_window = 4096", "replay_window = 10000", "bad.conf:21: replay_window: '10000' is out of range"},
		{"rekey_time = 50m", "rekey_time = 2h", "bad.conf:17: connections.gw.children.net: rekey_time must be below"},
		{"life_bytes = 2g", "life_bytes = 2x", "bad.conf:24: life_bytes: bad unit"},
		{"spi_in = 0xc0000001", "spi_in = 0x10", "bad.conf:26: spi_in: SPI 0x10 is reserved"},
		{"spi_in = 0xc0000001", "spi_in = 0x1001", "bad.conf:33: spi_in 0x1001 is already used by gw/net"},
		{"                spi_out = 0xc0000002\n", "", "bad.conf:17: connections.gw.children.net: spi_out is required"},
		{"enc_key_in = " KEY16, "enc_key_in = 0x0011", "bad.conf:28: enc_key_in: aes128-sha256-esn needs 16 bytes"},
		{"enc_key_in = " KEY16, "enc_key_in = 0x00112233445566778899aabbccddeefg",
		 "bad.conf:28: enc_key_in: 'fg' is not hex"},
		{"integ_key_in = " KEY32, "integ_key_in = " KEY16, "bad.conf:30: integ_key_in: aes128-sha256-esn needs 32 bytes"},
		{"                enc_key_in = " KEY20 "\n", "                enc_key_in = " KEY20 "\n                integ_key_in = " KEY16 "\n",
		 "bad.conf:39: connections.gw.children.host: integ_key_in is not used by the AEAD proposal"},
		{"                local_ts = 10.1.0.0/24\n", "",
		 "bad.conf:17: connections.gw.children.net: tunnel mode needs local_ts and remote_ts"},
		{"mode = transport", "mode = sideways", "bad.conf:34: mode: expected tunnel or transport"},
		{"child = gw/net", "child = gw/nope", "bad.conf:51: policies.again: child 'gw/nope' not found"},
		{"action = bypass", "action = maybe", "bad.conf:46: action: expected bypass, discard or protect"},
		{"policies {\n", "policies {\n    lan {\n    }\n", "bad.conf:47: duplicate section 'lan' (first at line 45)"},
		{"baton {\n", "baton {\n    mtu = 1500\n", "bad.conf:5: duplicate setting 'mtu' (first at line 3)"},
		{"}\npolicies", "policies", "bad.conf:56: section 'connections' (line 11) is not closed"},
		{"# a gateway\n", "}\n", "bad.conf:1: '}' without an open section"},
		{"# a gateway\n", "x = 1\n", "bad.conf:1: setting 'x' outside of any section"},
		{"# a gateway\n", "foo {\n}\n", "bad.conf:1: unknown section 'foo' in the top level"},
		{"    socket = \"/tmp/x y.sock\"\n", "    socket = \"/tmp/x y.sock\n", "bad.conf:8: unterminated quote"},
		{"    socket = \"/tmp/x y.sock\"\n", "    socket = relative.sock\n", "bad.conf:8: socket: must be an absolute path"},
		{"            host {\n", "            host {\n            deeper {\n", "bad.conf:"},
		{"}\npolicies {", "}\npolicies {\n  a {\n  b {\n  c {\n  d {\n  e {\n  f {\n  g {", "bad.conf:52: sections nested too deep"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		expect_refused(i, variant(v[i].from, v[i].to), v[i].want);
	/* a NUL byte, an empty file, a huge line */
	struct bt_config *cfg;
	char err[256];
	const char *ka = variant("mtu = 1400", "mtu = 1400\n    keepalive = 2m");
	assert_int_equal(config_parse(ka, strlen(ka), "ka.conf", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->keepalive_s, 120);
	config_free(cfg);
	assert_int_equal(config_parse("baton {\n\0}\n", 11, "n.conf", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "n.conf:2: NUL byte in the file");
	assert_int_equal(config_parse("", 0, "e.conf", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->n_conns, 0);
	config_free(cfg);
	static char big[10000];
	memset(big, 'a', sizeof(big) - 1);
	assert_int_equal(config_parse(big, sizeof(big) - 1, "b.conf", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "b.conf:1: line too long (max 4096)");
	assert_int_equal(config_load("/nonexistent/x.conf", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
}

static const char *cluster_conf =
	"cluster {\n"                                                  /* 1 */
	"    name = g1\n"                                              /* 2 */
	"    key = " KEY32 "\n"                                        /* 3 */
	"    listen = 10.9.0.1\n"                                      /* 4 */
	"    port = 4511\n"                                            /* 5 */
	"    seq_jump = 20000\n"                                       /* 6 */
	"    shared_addrs = 192.0.2.1/24%eth0, 10.1.0.1%eth1, 2001:db8::1/64%eth0\n" /* 7 */
	"    nodes {\n"                                                /* 8 */
	"        g2 = 10.9.0.2\n"                                      /* 9 */
	"        g3 = 10.9.0.3:4600\n"                                 /* 10 */
	"        g4 = [2001:db8:9::4]:4601\n"                          /* 11 */
	"        g5 = 2001:db8:9::5\n"                                 /* 12 */
	"    }\n"                                                      /* 13 */
	"}\n";                                                         /* 14 */

static void test_cluster(void **state)
{
	struct bt_config *cfg;
	char err[512], a[BT_ADDRSTRLEN];
	assert_int_equal(config_parse("", 0, "e.conf", &cfg, err, sizeof(err)), 0);
	assert_false(cfg->cluster.present);
	assert_int_equal(cfg->cluster.port, 4510);
	assert_int_equal(cfg->cluster.seq_jump, 10000);
	config_free(cfg);

	if (config_parse(cluster_conf, strlen(cluster_conf), "c.conf", &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	const struct cfg_cluster *cl = &cfg->cluster;
	assert_true(cl->present && cl->has_key);
	assert_string_equal(cl->name, "g1");
	assert_int_equal(cl->key[0], 0x00);
	assert_int_equal(cl->key[31], 0xff);
	assert_string_equal(bt_addr_str(&cl->listen, a, sizeof(a)), "10.9.0.1");
	assert_int_equal(cl->port, 4511);
	assert_int_equal(cl->seq_jump, 20000);
	assert_int_equal(cl->n_shared, 3);
	assert_string_equal(bt_addr_str(&cl->shared[0].addr, a, sizeof(a)), "192.0.2.1"); /* not the network */
	assert_int_equal(cl->shared[0].plen, 24);
	assert_string_equal(cl->shared[0].dev, "eth0");
	assert_int_equal(cl->shared[1].plen, 32);
	assert_string_equal(cl->shared[1].dev, "eth1");
	assert_int_equal(cl->shared[2].plen, 64);
	assert_int_equal(cl->n_nodes, 4);
	assert_string_equal(cl->nodes[0].name, "g2");
	assert_string_equal(bt_addr_str(&cl->nodes[0].addr, a, sizeof(a)), "10.9.0.2");
	assert_int_equal(cl->nodes[0].port, 4511); /* the cluster's port */
	assert_int_equal(cl->nodes[1].port, 4600);
	assert_string_equal(bt_addr_str(&cl->nodes[2].addr, a, sizeof(a)), "2001:db8:9::4");
	assert_int_equal(cl->nodes[2].port, 4601);
	assert_string_equal(bt_addr_str(&cl->nodes[3].addr, a, sizeof(a)), "2001:db8:9::5");
	assert_int_equal(cl->nodes[3].port, 4511);
	config_free(cfg);

	static const struct {
		const char *from, *to, *want;
	} v[] = {
		{"    key = " KEY32 "\n", "", "bad.conf:1: cluster: key is required"},
		{"key = " KEY32, "key = " KEY16, "bad.conf:3: key: expected 32 bytes (64 hex digits), got 16"},
		{"key = " KEY32, "key = " KEY32 "00", "bad.conf:3: key: key longer than 32 bytes"},
		{"key = " KEY32, "key = 0x123", "bad.conf:3: key: expected an even number of hex digits"},
		{"key = " KEY32, "key = " KEY16 "00112233445566778899aabbccddeefx", "bad.conf:3: key: 'fx' is not hex"},
		{"listen = 10.9.0.1", "listen = 10.9.0", "bad.conf:4: listen: '10.9.0' is not an address"},
		{"port = 4511", "port = 0", "bad.conf:5: port: must not be 0"},
		{"port = 4511", "port = 65536", "bad.conf:5: port: '65536' is out of range"},
		{"seq_jump = 20000", "seq_jump = lots", "bad.conf:6: seq_jump: expected a number"},
		{"192.0.2.1/24%eth0", "192.0.2.1/24", "bad.conf:7: shared_addrs: '192.0.2.1/24': expected ADDR/PLEN%DEV"},
		{"192.0.2.1/24%eth0", "192.0.2.1/33%eth0", "bad.conf:7: shared_addrs: '/33' is not a prefix length"},
		{"192.0.2.1/24%eth0", "192.0.2.x/24%eth0", "bad.conf:7: shared_addrs: '192.0.2.x' is not an address"},
		{"192.0.2.1/24%eth0", "192.0.2.1/24%bad dev", "bad.conf:7: shared_addrs: '192.0.2.1/24%bad dev'"},
		{"10.1.0.1%eth1", "192.0.2.1%eth1", "bad.conf:7: shared_addrs: 192.0.2.1 is listed twice"},
		{"g2 = 10.9.0.2", "g2 = 10.9.0.2:0", "bad.conf:9: nodes.g2: bad port '0'"},
		{"g2 = 10.9.0.2", "g2 = host.example", "bad.conf:9: nodes.g2: 'host.example' is not an address"},
		{"g3 = 10.9.0.3:4600", "g3 = 10.9.0.3:http", "bad.conf:10: nodes.g3: bad port 'http'"},
		{"g4 = [2001:db8:9::4]:4601", "g4 = [2001:db8:9::4", "bad.conf:11: nodes.g4: expected [ADDR]:PORT"},
		{"g4 = [2001:db8:9::4]:4601", "g4 = [2001:db8:9::4]:99999", "bad.conf:11: nodes.g4: bad port '99999'"},
		{"g2 = 10.9.0.2", "g1 = 10.9.0.2", "bad.conf:9: nodes.g1: that is this node's name"},
		{"g2 = 10.9.0.2", "g2 {\n        }", "bad.conf:9: 'g2' is a setting, not a section"},
		{"    nodes {\n", "    nodes = g2\n    nodex {\n", "bad.conf:8: 'nodes' must be a section"},
		{"    name = g1\n", "    name = g1\n    colour = red\n", "bad.conf:3: unknown setting 'colour' in cluster"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		expect_refused(i, variant_of(cluster_conf, v[i].from, v[i].to), v[i].want);
}

/* Certificates: files relative to the configuration file, which we place in the test PKI's folder. */
static const char *cert_conf =
	"connections {\n"                                   /* 1 */
	"    gw {\n"                                        /* 2 */
	"        local_addrs = 172.16.0.1\n"                /* 3 */
	"        remote_addrs = 172.16.0.2\n"               /* 4 */
	"        proposals = aes128gcm16-prfsha256-x25519\n" /* 5 */
	"        local {\n"                                 /* 6 */
	"            auth = pubkey\n"                       /* 7 */
	"            certs = rsa.pem\n"                     /* 8 */
	"            key = rsa.key\n"                       /* 9 */
	"        }\n"                                       /* 10 */
	"        remote {\n"                                /* 11 */
	"            auth = pubkey\n"                       /* 12 */
	"            id = %any\n"                           /* 13 */
	"            cacerts = ca-rsa.pem, ca-ec.pem\n"     /* 14 */
	"        }\n"                                       /* 15 */
	"        children {\n"                              /* 16 */
	"            net {\n"                               /* 17 */
	"                local_ts = 10.1.0.0/24\n"          /* 18 */
	"                remote_ts = 10.2.0.0/24\n"         /* 19 */
	"                esp_proposals = aes128gcm16\n"     /* 20 */
	"            }\n"                                   /* 21 */
	"        }\n"                                       /* 22 */
	"    }\n"                                           /* 23 */
	"}\n"                                              /* 24 */
	"secrets {\n"                                      /* 25 */
	"    private-other {\n"                            /* 26 */
	"        file = p384.key\n"                        /* 27 */
	"    }\n"                                          /* 28 */
	"}\n";                                             /* 29 */

static const char *certs_dir(void)
{
	static char dir[512];
	const char *src = getenv("BATON_SRC");
	snprintf(dir, sizeof(dir), "%s/tests/unit/data/certs", src ? src : ".");
	return dir;
}

static char *cert_variant(const char *from, const char *to) { return variant_of(cert_conf, from, to); }

static int parse_in_certs(const char *text, struct bt_config **cfg, char *err, size_t errlen)
{
	char name[600];
	snprintf(name, sizeof(name), "%s/c.conf", certs_dir());
	int rc = config_parse(text, strlen(text), name, cfg, err, errlen);
	if (rc) { /* messages name the file as given: keep only the part after the folder */
		size_t l = strlen(certs_dir()) + 1;
		memmove(err, err + l, strlen(err + l) + 1);
	}
	return rc;
}

static void test_certs(void **state)
{
	struct bt_config *cfg;
	char err[512];
	if (parse_in_certs(cert_conf, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	struct cfg_conn *c = &cfg->conns[0];
	assert_int_equal(c->local.auth, CFG_AUTH_PUBKEY);
	assert_non_null(c->cred);
	assert_non_null(c->cred->cert);
	assert_non_null(c->cred->key);
	assert_int_equal(sk_X509_num(c->cred->cas), 2);
	/* no id: the certificate's subject */
	assert_int_equal(c->local.id_type, IKE_ID_DER_ASN1_DN);
	assert_string_equal(c->local.id_str, "C=XX, O=Baton Test, CN=rsa");
	assert_true(c->remote.id_any);
	assert_int_equal(c->psk_len, 0);
	config_free(cfg);

	/* the key from secrets { private-* } that matches the certificate; an FQDN id from its SANs */
	const char *t = cert_variant("            key = rsa.key\n", "            id = @gw.baton.test\n");
	char both[8192];
	snprintf(both, sizeof(both), "%s", t);
	char *sec = strstr(both, "secrets {\n");
	snprintf(sec, sizeof(both) - (size_t)(sec - both),
		 "secrets {\n    private-other {\n        file = p384.key\n    }\n    private-gw {\n        file = rsa.key\n"
		 "    }\n}\n");
	if (parse_in_certs(both, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	c = &cfg->conns[0];
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c->cred->cert), c->cred->key), 1);
	assert_int_equal(c->local.id_type, IKE_ID_FQDN);
	assert_int_equal(c->local.id_len, strlen("gw.baton.test"));
	config_free(cfg);

	/* psk here, a certificate from the peer: only the CAs are loaded */
	t = cert_variant("            auth = pubkey\n            certs = rsa.pem\n            key = rsa.key\n",
			 "            auth = psk\n");
	snprintf(both, sizeof(both), "%s", t);
	sec = strstr(both, "secrets {\n");
	snprintf(sec, sizeof(both) - (size_t)(sec - both), "secrets {\n    ike-x {\n        secret = abc\n    }\n}\n");
	if (parse_in_certs(both, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	c = &cfg->conns[0];
	assert_non_null(c->cred);
	assert_null(c->cred->cert);
	assert_int_equal(sk_X509_num(c->cred->cas), 2);
	assert_int_equal(c->psk_len, 3);
	config_free(cfg);
}

static void test_certs_bad(void **state)
{
	static const struct {
		const char *from, *to, *want, *why;
	} v[] = {
		{"certs = rsa.pem", "certs = missing.pem", "c.conf:8: certs: ", "missing.pem: No such file"},
		{"certs = rsa.pem", "certs = octets.bin", "c.conf:8: connections.gw.local.certs: ", "octets.bin: no certificate"},
		{"key = rsa.key", "key = p256.key", "c.conf:9: connections.gw.local.key: ", "p256.key: key does not match the certificate"},
		{"key = rsa.key", "key = missing.key", "c.conf:9: key: ", "missing.key: No such file"},
		{"key = rsa.key", "key = rsa.pem", "c.conf:9: connections.gw.local.key: ", "rsa.pem: no unencrypted private key"},
		{"cacerts = ca-rsa.pem, ca-ec.pem", "cacerts = ca-rsa.pem, nope.pem", "c.conf:14: cacerts: ", "nope.pem: No such file"},
		{"cacerts = ca-rsa.pem, ca-ec.pem", "cacerts = ca-rsa.pem, rsa.key", "c.conf:14: connections.gw.remote.cacerts: ", "rsa.key: no certificate"},
		{"certs = rsa.pem", "certs = /dev/zero", "c.conf:8: certs: ", "not a regular file"},
		{"certs = rsa.pem", "certs = .", "c.conf:8: certs: ", "not a regular file"},
		{"            key = rsa.key\n", "", "c.conf:8: certs: no private key for ", "rsa.pem: add key = FILE"},
		{"file = p384.key", "file = nope.key", "c.conf:27: file: ", "nope.key: No such file"},
		{"file = p384.key", "file = p384.pem", "c.conf:27: file: ", "p384.pem: no unencrypted private key"},
		{"            certs = rsa.pem\n", "", "c.conf:6: connections.gw.local: auth = pubkey needs certs", ""},
		{"            cacerts = ca-rsa.pem, ca-ec.pem\n", "", "c.conf:11: connections.gw.remote: auth = pubkey needs cacerts", ""},
		{"            id = %any\n", "            id = %any\n            certs = rsa.pem\n", "c.conf:14: certs: the peer's certificate", ""},
		{"            key = rsa.key\n", "            key = rsa.key\n            id = @p256.baton.test\n",
		 "c.conf:10: id: '@p256.baton.test' is neither the subject nor a subjectAltName", "rsa.pem"},
		{"            auth = pubkey\n            id = %any", "            auth = psk\n            id = %any",
		 "c.conf:14: cacerts: only with auth = pubkey", ""},
		{"certs = rsa.pem", "certs = rsa.pem, p256.pem", "c.conf:8: certs: one file", ""},
		{"private-other", "public-other", "c.conf:26: secrets.public-other: only ike-NAME", ""},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct bt_config *cfg = NULL;
		char err[512];
		if (parse_in_certs(cert_variant(v[i].from, v[i].to), &cfg, err, sizeof(err)) == 0)
			fail_msg("case %zu (%s): accepted", i, v[i].to);
		if (strncmp(err, v[i].want, strlen(v[i].want)) != 0 || !strstr(err, v[i].why))
			fail_msg("case %zu: got '%s', want '%s...%s'", i, err, v[i].want, v[i].why);
		assert_null(cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_cluster),
		cmocka_unit_test(test_certs),
		cmocka_unit_test(test_certs_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
