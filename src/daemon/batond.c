/* batond.c — the baton daemon: loads the configuration, runs the data plane, answers batonctl. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "daemon/daemon.h"
#include "esp/esp.h"
#include "util/log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: batond -c FILE [-s SOCKET] [-f] [-d] [--pidfile FILE]\n"
		   "  -c, --config FILE   configuration (docs/config.md)\n"
		   "  -s, --socket PATH   control socket (overrides baton.socket)\n"
		   "  -f, --foreground    stay in the foreground (the default; accepted for habit)\n"
		   "  -d, --debug         log at debug level\n"
		   "      --pidfile FILE  write the process id there\n"
		   "  -V, --version       print the version\n");
}

static void life_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	daemon_check_lifetimes(w->data);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	if (w->signum == SIGHUP) {
		json_t *req = json_pack("{s:s}", "cmd", "load");
		char *s = json_dumps(req, JSON_COMPACT);
		json_t *resp = control_handle(d, s, strlen(s));
		if (!json_is_true(json_object_get(resp, "ok")))
			bt_err("SIGHUP reload failed: %s", json_string_value(json_object_get(resp, "error")));
		json_decref(resp);
		json_decref(req);
		free(s);
		return;
	}
	bt_info("signal %d: shutting down", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* The inner MTU that keeps the outer packet within outer_mtu for every configured child. */
static unsigned auto_mtu(const struct bt_config *cfg)
{
	unsigned outer = cfg->dp.outer_mtu, worst = 20 + 8 + 8 + 8 + 3 + 2 + 16; /* IPv4, UDP, GCM */
	for (size_t i = 0; i < cfg->n_conns; i++)
		for (size_t j = 0; j < cfg->conns[i].n_children; j++) {
			const struct cfg_child *ch = &cfg->conns[i].children[j];
			struct esp_sa probe = {.enc = ch->enc, .integ = ch->integ};
			unsigned ip = cfg->conns[i].local_addrs[0].addr.family == AF_INET6 ? 40 : 20;
			unsigned udp = cfg->conns[i].encap ? 8 : 0;
			/* the worst padding: one block minus one */
			unsigned ov = (unsigned)esp_overhead(&probe, 0) + 15;
			if (ip + udp + ov > worst)
				worst = ip + udp + ov;
		}
	return (outer - worst) & ~3u;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},   {"debug", no_argument, NULL, 'd'},
		{"pidfile", required_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *sock = NULL, *pidfile = NULL;
	bool debug = false;
	int c;
	/* The SPD is rebuilt when IKE Child SAs come or go, from arrays of ~1.6 KB per policy that
	 * grow by one policy at a time: glibc would mmap each (just above its adaptive threshold) and
	 * fault in zeroed pages on every rebuild (half of a responder's CPU at 10,000 SAs). A fixed
	 * threshold keeps blocks below 32 MiB in the heap, and the heap top is not trimmed for them. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
	while ((c = getopt_long(argc, argv, "c:s:fdVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'f': break;
		case 'd': debug = true; break;
		case 'p': pidfile = optarg; break;
		case 'V': printf("batond %s\n", BATON_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "batond: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!config) {
		fprintf(stderr, "batond: a configuration file is required (-c FILE)\n");
		usage(stderr);
		return 2;
	}

	struct daemon d = {.listen_fd = -1, .started = daemon_now()};
	char err[512];
	struct bt_config *cfg;
	if (config_load(config, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "batond: %s\n", err);
		return 1;
	}
	snprintf(d.config_path, sizeof(d.config_path), "%s", config);
	bt_log_set_level(debug ? BT_LOG_DEBUG : cfg->log_level);
	if (cfg->log_file[0])
		bt_log_set_file(cfg->log_file);

	signal(SIGPIPE, SIG_IGN);
	int rc = 1;
	d.loop = ev_default_loop(EVFLAG_AUTO);
	/* the configuration keeps "auto" (0), so that a reload of the same file compares equal */
	struct dp_config dpc = cfg->dp;
	if (!dpc.mtu)
		dpc.mtu = auto_mtu(cfg);
	d.dp = dp_new(&dpc, err, sizeof(err));
	if (!d.dp) {
		fprintf(stderr, "batond: %s\n", err);
		config_free(cfg);
		return 1;
	}
	/* the first load is a reload from nothing */
	d.cfg = calloc(1, sizeof(*d.cfg));
	if (!d.cfg || daemon_apply(&d, cfg, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "batond: %s\n", err);
		config_free(cfg);
		goto out;
	}
	if (control_listen(&d, sock ? sock : d.cfg->socket_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "batond: %s\n", err);
		goto out;
	}
	if (dp_start(d.dp) != 0) {
		fprintf(stderr, "batond: cannot start the data-plane threads\n");
		goto out;
	}
	if (ike_mgr_start(&d, err, sizeof(err)) != 0) {
		fprintf(stderr, "batond: %s\n", err);
		goto out;
	}
	if (cluster_start(&d, err, sizeof(err)) != 0) {
		fprintf(stderr, "batond: %s\n", err);
		goto out;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	ev_timer_init(&d.life_w, life_cb, 1.0, 1.0);
	d.life_w.data = &d;
	ev_timer_start(d.loop, &d.life_w);
	int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
	for (int i = 0; i < 3; i++) {
		ev_signal_init(&d.sig_w[i], signal_cb, sigs[i]);
		d.sig_w[i].data = &d;
		ev_signal_start(d.loop, &d.sig_w[i]);
	}
	struct dp_stats st;
	dp_get_stats(d.dp, &st);
	bt_info("batond %s: %s mtu %u, %u lanes, UDP %u%s, offloads: tso %s, udp gso %s, udp gro %s; %zu SAs; "
		"control %s",
		BATON_VERSION, d.cfg->dp.tun_name, dp_mtu(d.dp), st.lanes, d.cfg->dp.udp_port,
		d.cfg->dp.raw_esp ? " + raw ESP" : "", st.tso ? "on" : "off", st.udp_gso ? "on" : "off",
		st.udp_gro ? "on" : "off", sad_count(dp_sad(d.dp)), d.socket_path);
	ike_mgr_reconfigured(&d); /* start_action = start */
	ev_run(d.loop, 0);
	rc = 0;
out:
	cluster_stop(&d);
	ike_mgr_stop(&d);
	control_close(&d);
	dp_free(d.dp);
	free(d.hits);
	config_free(d.cfg);
	if (pidfile)
		unlink(pidfile);
	ev_loop_destroy(d.loop);
	return rc;
}
