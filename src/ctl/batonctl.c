/* batonctl.c — the command-line tool: asks batond over its control socket and prints the answer
 * for people (default) or as JSON (--json). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/b64.h"

#define DEFAULT_SOCKET "/run/baton/baton.sock"
#define TIMEOUT_MS 5000

static void usage(FILE *f)
{
	fprintf(f, "usage: batonctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
		   "commands:\n"
		   "  list-sas        SAs with algorithms, addresses, counters and lifetimes\n"
		   "  list-pols       the security policy database, in order, with hits\n"
		   "  stats           data-plane counters and drops by reason\n"
		   "  load [FILE]     reload the configuration (or load FILE); invalid files change nothing\n"
		   "  initiate NAME   negotiate connection NAME (or CONN/CHILD) with IKE\n"
		   "  terminate NAME  delete the IKE SAs (and their Child SAs) of connection NAME,\n"
		   "                  or with CONN/CHILD that Child SA only\n"
		   "  rekey NAME      rekey the Child SAs of connection NAME (or CONN/CHILD) now\n"
		   "  rekey-ike NAME  rekey the IKE SAs of connection NAME now\n"
		   "  get NAME [--detach] [-o FILE]\n"
		   "                  the sealed context of a session (a connection with one IKE SA, or\n"
		   "                  an IKE SPI) to FILE; --detach also stops the session here\n"
		   "  put FILE        install a session from a context written by get\n"
		   "  migrate NAME --to NODE [--all]\n"
		   "                  hand a session to another gateway of the cluster (cluster.nodes)\n"
		   "  version         batond's version\n"
		   "options:\n"
		   "  -s, --socket PATH  control socket (default $BATON_SOCKET or " DEFAULT_SOCKET ")\n"
		   "  -j, --json         print the daemon's JSON\n");
}

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Send one request and read one response line. Returns the parsed response or NULL (message printed). */
static json_t *request(const char *path, json_t *req)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "batonctl: socket path too long\n");
		return NULL;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "batonctl: cannot reach batond at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *s = json_dumps(req, JSON_COMPACT);
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		close(fd);
		return NULL;
	}
	line[n] = '\n', line[n + 1] = '\0';
	ssize_t w = send(fd, line, n + 1, MSG_NOSIGNAL);
	free(line);
	if (w != (ssize_t)(n + 1)) {
		fprintf(stderr, "batonctl: cannot send to batond: %s\n", strerror(errno));
		close(fd);
		return NULL;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += TIMEOUT_MS / 1000;
	char *buf = NULL;
	size_t len = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = ms_left(&deadline);
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			fprintf(stderr, "batonctl: no answer from batond within %d s\n", TIMEOUT_MS / 1000);
			break;
		}
		char tmp[65536];
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r <= 0) {
			fprintf(stderr, "batonctl: batond closed the connection\n");
			break;
		}
		char *nb = realloc(buf, len + (size_t)r);
		if (!nb)
			break;
		buf = nb;
		memcpy(buf + len, tmp, (size_t)r);
		len += (size_t)r;
		char *nl = memchr(buf, '\n', len);
		if (nl) {
			json_error_t je;
			json_t *resp = json_loadb(buf, (size_t)(nl - buf), 0, &je);
			if (!resp)
				fprintf(stderr, "batonctl: bad answer from batond: %s\n", je.text);
			free(buf);
			close(fd);
			return resp;
		}
	}
	free(buf);
	close(fd);
	return NULL;
}

/* request, again while batond says the session is busy (an exchange in flight: a round trip) */
static json_t *request_patient(const char *path, json_t *req)
{
	for (int tries = 0;; tries++) {
		json_t *resp = request(path, req);
		if (!resp || !json_is_true(json_object_get(resp, "busy")) || tries == 20)
			return resp;
		json_decref(resp);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int print_json(json_t *resp)
{
	char *s = json_dumps(resp, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	return json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
}

/* The context of `get` into path ("-": standard output, never a terminal). */
static int write_context(json_t *resp, const char *path)
{
	size_t n;
	const char *b = json_string_value(json_object_get(resp, "context"));
	uint8_t *blob = b ? b64_decode(b, &n) : NULL;
	FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
	int rc = 1;
	if (!blob)
		fprintf(stderr, "batonctl: batond sent no context\n");
	else if (!f)
		fprintf(stderr, "batonctl: cannot write %s: %s\n", path, strerror(errno));
	else if (f == stdout && isatty(STDOUT_FILENO))
		fprintf(stderr, "batonctl: not writing a binary context to a terminal: use -o FILE\n");
	else if (fwrite(blob, 1, n, f) != n || fflush(f) != 0)
		fprintf(stderr, "batonctl: cannot write %s: %s\n", path, strerror(errno));
	else
		rc = 0;
	if (f && f != stdout)
		fclose(f);
	free(blob);
	return rc;
}

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 2u << 20;
	uint8_t *p = f ? malloc(cap) : NULL;
	*n = p ? fread(p, 1, cap, f) : 0;
	if (!f || !p || ferror(f) || *n == cap) {
		fprintf(stderr, "batonctl: cannot read %s: %s\n", path, !f || !p || ferror(f) ? strerror(errno) : "too long");
		free(p);
		p = NULL;
	}
	if (f && f != stdin)
		fclose(f);
	return p;
}

/* get NAME [--detach] [-o FILE] / put FILE */
static int ctx_main(const char *sock, bool as_json, const char *cmd, int argc, char **argv)
{
	const char *name = NULL, *out = "-";
	bool detach = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			as_json = true;
		else if (!strcmp(argv[i], "--detach") && !strcmp(cmd, "get"))
			detach = true;
		else if (!strcmp(argv[i], "-o") && !strcmp(cmd, "get") && i + 1 < argc)
			out = argv[++i];
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else {
			fprintf(stderr, "batonctl: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!name) {
		fprintf(stderr, "batonctl: %s needs %s\n", cmd, strcmp(cmd, "get") ? "a context file" : "a session name");
		return 2;
	}
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	if (!strcmp(cmd, "get")) {
		json_object_set_new(req, "name", json_string(name));
		json_object_set_new(req, "detach", json_boolean(detach));
	} else {
		size_t n;
		uint8_t *blob = read_file(name, &n);
		char *b = blob ? b64_encode(blob, n) : NULL;
		free(blob);
		if (!b) {
			json_decref(req);
			return 2;
		}
		json_object_set_new(req, "context", json_string(b));
		free(b);
	}
	json_t *resp = !strcmp(cmd, "get") ? request_patient(sock, req) : request(sock, req);
	json_decref(req);
	if (!resp)
		return 2;
	int rc = json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
	if (rc)
		fprintf(stderr, "batonctl: %s\n", json_string_value(json_object_get(resp, "error")));
	else if (!strcmp(cmd, "get"))
		rc = write_context(resp, out);
	if (as_json && !rc) {
		json_object_del(resp, "context");
		rc = print_json(resp);
	} else if (!rc) {
		FILE *f = !strcmp(cmd, "get") && !strcmp(out, "-") ? stderr : stdout;
		fprintf(f, "%s: IKE SA %s_i of %s, %lld Child SA(s), %s -> %s, in %.3f ms\n",
			!strcmp(cmd, "get") ? (detach ? "exported and stopped" : "exported") : "installed",
			json_string_value(json_object_get(resp, "spi_i")), json_string_value(json_object_get(resp, "conn")),
			(long long)json_integer_value(json_object_get(resp, "children")),
			json_string_value(json_object_get(resp, "local")), json_string_value(json_object_get(resp, "remote")),
			json_real_value(json_object_get(resp, "ms")));
		if (json_is_true(json_object_get(resp, "multi_lan")))
			fprintf(f, "the session now ends at this gateway's address; the peer is being told (MOBIKE)\n");
		if (json_integer_value(json_object_get(resp, "spi_rekeys")))
			fprintf(f, "%lld Child SA(s) rekeyed: their inbound SPI was taken here\n",
				(long long)json_integer_value(json_object_get(resp, "spi_rekeys")));
	}
	json_decref(resp);
	return rc;
}

/* migrate NAME --to NODE [--all] */
static int migrate_main(const char *sock, bool as_json, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'}, {"all", no_argument, NULL, 'a'},
		{NULL, 0, NULL, 0}};
	const char *name = NULL, *to = NULL;
	bool all = false;
	int c;
	optind = 0, opterr = 0; /* argv[0] is "migrate"; options may come before or after NAME */
	while ((c = getopt_long(argc, argv, "t:ja", opts, NULL)) != -1) {
		if (c == 't') {
			to = optarg;
		} else if (c == 'a') {
			all = true;
		} else if (c == 'j') {
			as_json = true;
		} else {
			fprintf(stderr, "batonctl: migrate: bad option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc)
		name = argv[optind++];
	if (!name || !to || optind < argc) {
		fprintf(stderr, "batonctl: usage: migrate NAME --to NODE [--all]\n");
		return 2;
	}
	json_t *req = json_pack("{s:s,s:s,s:s,s:b}", "cmd", "migrate", "name", name, "to", to, "all", all);
	json_t *resp = request_patient(sock, req);
	json_decref(req);
	if (!resp)
		return 2;
	int rc = json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
	if (as_json) {
		print_json(resp);
	} else if (all) {
		size_t i;
		json_t *f;
		printf("%lld of %lld sessions handed to %s in %.3f ms\n", (long long)json_integer_value(json_object_get(resp, "migrated")),
		       (long long)json_integer_value(json_object_get(resp, "sessions")), to,
		       json_real_value(json_object_get(resp, "total_ms")));
		json_array_foreach(json_object_get(resp, "failed"), i, f)
			fprintf(stderr, "batonctl: migrate %s: %s (it goes on here)\n", json_string_value(json_object_get(f, "name")),
				json_string_value(json_object_get(f, "error")));
		if (json_object_get(resp, "error"))
			fprintf(stderr, "batonctl: migrate %s: %s\n", name, json_string_value(json_object_get(resp, "error")));
	} else if (rc)
		fprintf(stderr, "batonctl: migrate %s: %s%s\n", name, json_string_value(json_object_get(resp, "error")),
			json_is_true(json_object_get(resp, "kept")) ? " (the session goes on here)" : "");
	else
		printf("%s handed to %s%s in %.3f ms (export %.3f ms, ship %.3f ms, import %.3f ms)\n",
		       json_string_value(json_object_get(resp, "conn")), to,
		       json_is_true(json_object_get(resp, "multi_lan")) ? " (Multi-LAN: the peer is being told)" : "",
		       json_real_value(json_object_get(resp, "total_ms")), json_real_value(json_object_get(resp, "export_ms")),
		       json_real_value(json_object_get(resp, "ship_ms")), json_real_value(json_object_get(resp, "import_ms")));
	json_decref(resp);
	return rc;
}

static const char *human_bytes(json_int_t b, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;
	while (v >= 1024 && u < 4)
		v /= 1024, u++;
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
	return buf;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "?";
}

static long long num(json_t *o, const char *k) { return (long long)json_integer_value(json_object_get(o, k)); }

static void print_list(const char *label, json_t *arr)
{
	printf("    %-7s", label);
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) printf("%s%s", i ? ", " : "", json_string_value(v));
	printf("\n");
}

static void print_drops(json_t *drops)
{
	const char *k;
	json_t *v;
	bool any = false;
	json_object_foreach(drops, k, v) if (json_integer_value(v)) {
		printf("%s%s=%lld", any ? " " : "  drops: ", k, (long long)json_integer_value(v));
		any = true;
	}
}

static void print_sas(json_t *sas)
{
	size_t i;
	json_t *sa;
	const char *last = "";
	if (json_array_size(sas) == 0)
		printf("no SAs\n");
	json_array_foreach(sas, i, sa) {
		const char *name = str(sa, "name");
		if (strcmp(name, last) != 0) {
			const char *integ = str(sa, "integ");
			bool aead = !strcmp(integ, "none");
			printf("%s: %s, %s %s[%lld] <-> %s[%lld], %s%s%s%s\n", name, str(sa, "mode"),
			       strcmp(str(sa, "encap"), "udp") ? "ESP" : "ESP-in-UDP", str(sa, "local"),
			       num(sa, "local_port"), str(sa, "remote"), num(sa, "remote_port"), str(sa, "enc"),
			       aead ? "" : "/", aead ? "" : integ, json_is_true(json_object_get(sa, "esn")) ? "/esn" : "");
			print_list("local", json_object_get(sa, "local_ts"));
			print_list("remote", json_object_get(sa, "remote_ts"));
			last = name;
		}
		char b[32];
		bool in = !strcmp(str(sa, "dir"), "in");
		printf("  %-3s %s  %lld packets, %s", in ? "in" : "out", str(sa, "spi"), num(sa, "packets"),
		       human_bytes(num(sa, "bytes"), b, sizeof(b)));
		if (in) {
			json_t *r = json_object_get(sa, "replay");
			printf(", replay window %lld, highest seq %lld", num(r, "window"), num(r, "top"));
		} else {
			printf(", last seq %lld", num(sa, "seq_out"));
		}
		printf(", age %llds", num(sa, "age"));
		json_t *hard = json_object_get(json_object_get(sa, "lifetime"), "hard");
		if (num(hard, "seconds"))
			printf(" of %llds", num(hard, "seconds"));
		print_drops(json_object_get(sa, "drops"));
		json_t *ev = json_object_get(sa, "events");
		size_t j;
		json_t *e;
		json_array_foreach(ev, j, e) printf(" [%s]", json_string_value(e));
		printf("\n");
	}
}

static void print_pols(json_t *pols)
{
	size_t i;
	json_t *p;
	printf("%-6s %-24s %-4s %-8s %-10s %s\n", "prio", "name", "dir", "action", "hits", "selectors");
	json_array_foreach(pols, i, p) {
		printf("%-6lld %-24s %-4s %-8s %-10lld ", num(p, "priority"), str(p, "name"), str(p, "dir"),
		       str(p, "action"), num(p, "hits"));
		size_t j;
		json_t *t;
		json_array_foreach(json_object_get(p, "local_ts"), j, t) printf("%s%s", j ? "," : "", json_string_value(t));
		printf(" -> ");
		json_array_foreach(json_object_get(p, "remote_ts"), j, t) printf("%s%s", j ? "," : "", json_string_value(t));
		printf("\n");
	}
}

static void print_stats(json_t *s)
{
	static const char *const keys[] = {"tun_rx", "tun_tx", "net_rx", "net_tx", "ike_rx", "keepalive_rx",
					   "bypass", "discard", "sas", "lanes", "mtu", "uptime"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("%-14s %lld\n", keys[i], num(s, keys[i]));
	json_t *o = json_object_get(s, "offload");
	printf("%-14s tso %s, udp gso %s, udp gro %s\n", "offload",
	       json_is_true(json_object_get(o, "tso")) ? "on" : "off",
	       json_is_true(json_object_get(o, "udp_gso")) ? "on" : "off",
	       json_is_true(json_object_get(o, "udp_gro")) ? "on" : "off");
	const char *k;
	json_t *v;
	printf("drops:\n");
	json_object_foreach(json_object_get(s, "drops"), k, v)
		printf("  %-14s %lld\n", k, (long long)json_integer_value(v));
	json_t *cl = json_object_get(s, "cluster");
	if (json_object_size(cl))
		printf("cluster:\n");
	json_object_foreach(cl, k, v)
		printf("  %-18s %lld\n", k, (long long)json_integer_value(v));
}

static void print_ike_sas(json_t *a)
{
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o) {
		printf("%s/%s: IKE %s, %s, %s[%lld] -> %s[%lld]%s%s, %s_i %s_r, %s\n", str(o, "name"), str(o, "child"),
		       str(o, "state"), str(o, "role"), str(o, "local"), num(o, "local_port"), str(o, "remote"),
		       num(o, "remote_port"), json_is_true(json_object_get(o, "nat_local")) ? ", behind NAT" : "",
		       json_is_true(json_object_get(o, "nat_remote"))
			       ? (json_is_true(json_object_get(o, "encap_forced")) ? ", peer behind NAT or forcing UDP encapsulation"
										: ", peer behind NAT")
			       : "",
		       str(o, "spi_i"),
		       str(o, "spi_r"), str(o, "proposal"));
		if (json_object_get(o, "peer_id")) {
			printf("  peer: %s (%s", str(o, "peer_id"), str(o, "peer_auth"));
			if (json_object_get(o, "peer_cert"))
				printf(", certificate %s", str(o, "peer_cert"));
			printf(")\n");
		}
		if (json_object_get(o, "ike_rekey_in_s") || json_object_get(o, "child_rekey_in_s")) {
			printf("  rekeys: %lld IKE, %lld Child", num(o, "ike_rekeys"), num(o, "child_rekeys"));
			if (json_object_get(o, "ike_rekey_in_s"))
				printf("; IKE rekey in %.0fs", json_real_value(json_object_get(o, "ike_rekey_in_s")));
			if (json_object_get(o, "child_rekey_in_s"))
				printf("; Child rekey in %.0fs", json_real_value(json_object_get(o, "child_rekey_in_s")));
			printf("\n");
		}
		json_t *kids = json_object_get(o, "children"), *ch;
		size_t c;
		json_array_foreach(kids, c, ch) {
			printf("  child %s: %s, in %s, out %s, ", str(ch, "name"), str(ch, "proposal"), str(ch, "spi_in"),
			       str(ch, "spi_out"));
			size_t k;
			json_t *t;
			json_array_foreach(json_object_get(ch, "local_ts"), k, t) printf("%s%s", k ? "," : "", json_string_value(t));
			printf(" === ");
			json_array_foreach(json_object_get(ch, "remote_ts"), k, t) printf("%s%s", k ? "," : "", json_string_value(t));
			printf("\n");
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *path = getenv("BATON_SOCKET");
	bool as_json = false;
	int c;
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': as_json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind++];
	const char *file = NULL;
	if (!strcmp(cmd, "get") || !strcmp(cmd, "put"))
		return ctx_main(path, as_json, cmd, argc - optind, argv + optind);
	if (!strcmp(cmd, "migrate"))
		return migrate_main(path, as_json, argc - optind + 1, argv + optind - 1);
	/* options may also follow the command, as people type them */
	for (; optind < argc; optind++) {
		if (!strcmp(argv[optind], "--json") || !strcmp(argv[optind], "-j")) {
			as_json = true;
		} else if (argv[optind][0] == '-') {
			fprintf(stderr, "batonctl: unknown option '%s'\n", argv[optind]);
			usage(stderr);
			return 2;
		} else if ((!strcmp(cmd, "load") || !strcmp(cmd, "initiate") || !strcmp(cmd, "terminate") ||
		            !strcmp(cmd, "rekey") || !strcmp(cmd, "rekey-ike")) && !file) {
			file = argv[optind];
		} else {
			fprintf(stderr, "batonctl: unexpected argument '%s'\n", argv[optind]);
			usage(stderr);
			return 2;
		}
	}
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "list-sas") && strcmp(cmd, "list-pols") && strcmp(cmd, "stats") &&
	    strcmp(cmd, "version") && strcmp(cmd, "load") && strcmp(cmd, "initiate") && strcmp(cmd, "terminate") &&
	    strcmp(cmd, "rekey") && strcmp(cmd, "rekey-ike")) {
		fprintf(stderr, "batonctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	bool rekey_ike = !strcmp(cmd, "rekey-ike");
	if (rekey_ike)
		cmd = "rekey";
	bool ike_cmd = !strcmp(cmd, "initiate") || !strcmp(cmd, "terminate") || !strcmp(cmd, "rekey");
	if (ike_cmd && !file) {
		fprintf(stderr, "batonctl: %s needs a connection name\n", cmd);
		usage(stderr);
		return 2;
	}
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	if (ike_cmd) {
		json_object_set_new(req, "name", json_string(file));
		if (rekey_ike)
			json_object_set_new(req, "ike", json_true());
	} else if (file) {
		char abs[PATH_MAX];
		/* batond may run elsewhere: give it an absolute path */
		json_object_set_new(req, "file", json_string(realpath(file, abs) ? abs : file));
	}
	json_t *resp = request(path, req);
	json_decref(req);
	if (!resp)
		return 2;
	int rc = json_is_true(json_object_get(resp, "ok")) ? 0 : 1;
	if (as_json) {
		print_json(resp);
	} else if (rc) {
		fprintf(stderr, "batonctl: %s\n", str(resp, "error"));
	} else if (!strcmp(cmd, "list-sas")) {
		print_ike_sas(json_object_get(resp, "ike_sas"));
		print_sas(json_object_get(resp, "sas"));
	} else if (!strcmp(cmd, "list-pols")) {
		print_pols(json_object_get(resp, "policies"));
	} else if (!strcmp(cmd, "stats")) {
		print_stats(json_object_get(resp, "stats"));
	} else if (!strcmp(cmd, "initiate")) {
		printf("%s: %s\n", file, str(resp, "message"));
	} else if (!strcmp(cmd, "rekey")) {
		printf("%s: rekeying %lld %s SA(s)\n", file, num(resp, "rekeying"), rekey_ike ? "IKE" : "Child");
	} else if (!strcmp(cmd, "terminate")) {
		printf("%s: %lld IKE SA(s) deleted\n", file, num(resp, "deleted"));
	} else if (!strcmp(cmd, "load")) {
		printf("loaded: %lld SAs added, %lld removed, %lld kept\n", num(resp, "added"), num(resp, "removed"),
		       num(resp, "kept"));
		size_t i;
		json_t *w;
		json_array_foreach(json_object_get(resp, "warnings"), i, w) printf("warning: %s\n", json_string_value(w));
	} else {
		printf("batond %s\n", str(resp, "version"));
	}
	json_decref(resp);
	return rc;
}
