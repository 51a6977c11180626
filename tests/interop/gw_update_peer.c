/* gw_update_peer.c — the engine as a gateway over UDP, for an interop check against a real IKEv2
 * client (strongSwan's charon): answer the client's IKE_SA_INIT and IKE_AUTH at OLD, then, with
 * the SA up, move to NEW and send ike_mobike_gw_update from there (retransmitted), and report
 * whether the client answered it (COOKIE2 echoed) and what NAT detection said.
 *   gw_update_peer OLD NEW CLIENT PSK      (IPv4; IDs are the addresses; port 500, then 4500)
 * Then it answers the client's requests at NEW for 3 s (a Child SA rekey, deletes). Exit 0: the
 * client answered the update. No ESP: the Child SA is only negotiated, never installed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ike/ike_sa.h"

static int rnd(void *arg, uint8_t *buf, size_t len)
{
	(void)arg;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static int udp(const struct bt_addr *a, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = a->v4};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		perror("bind");
		exit(2);
	}
	return fd;
}

/* On port 4500 an IKE message follows four zero bytes (RFC 3948 2.2). */
static void send_to(int fd, bool natt, const struct bt_addr *to, uint16_t port, const uint8_t *m, size_t len)
{
	uint8_t buf[IKE_MSG_MAX + 4] = {0};
	size_t off = natt ? 4 : 0;
	memcpy(buf + off, m, len);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = to->v4};
	if (sendto(fd, buf, len + off, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		perror("sendto");
}

/* The sockets: OLD:500, OLD:4500, NEW:4500. */
struct socks {
	int fd[3];
	uint16_t port[3];
	struct bt_addr local[3];
};

/* Answer what arrives on sockets [first, last] for up to ms, or until the SA is up (setup) or our
 * update is answered: the gateway's side of one IKE SA. */
static void serve(struct ike_sa *sa, const struct socks *s, int first, int last, int ms, bool setup)
{
	static uint8_t in[IKE_MSG_MAX + 4], out[IKE_MSG_MAX];
	struct pollfd p[3];
	for (int k = first; k <= last; k++)
		p[k - first] = (struct pollfd){.fd = s->fd[k], .events = POLLIN};
	for (time_t end = time(NULL) + ms / 1000; time(NULL) < end;) {
		if (setup ? sa->state == IKE_ST_ESTABLISHED && sa->child[0] : sa->update_done)
			return;
		if (poll(p, (nfds_t)(last - first + 1), 200) <= 0)
			continue;
		for (int k = first; k <= last; k++) {
			if (!(p[k - first].revents & POLLIN))
				continue;
			struct sockaddr_in sin;
			socklen_t sl = sizeof(sin);
			ssize_t l = recvfrom(s->fd[k], in, sizeof(in), 0, (struct sockaddr *)&sin, &sl);
			bool natt = s->port[k] == 4500;
			if (l <= (natt ? 4 : 0) || (natt && memcmp(in, "\0\0\0\0", 4)))
				continue;
			struct bt_addr from = {.family = AF_INET, .v4 = sin.sin_addr};
			uint16_t rport = ntohs(sin.sin_port);
			if (sa->state != IKE_ST_ESTABLISHED)
				ike_sa_set_endpoints(sa, &s->local[k], s->port[k], &from, rport);
			sa->rx_local = s->local[k], sa->rx_remote = from, sa->rx_local_port = s->port[k], sa->rx_remote_port = rport;
			size_t off = natt ? 4 : 0, ol = ike_process(sa, in + off, (size_t)l - off, out, sizeof(out));
			if (ol)
				send_to(s->fd[k], natt, &from, rport, out, ol);
		}
	}
}

static void conf_init(struct ike_conf *c, struct ike_conf_room *room, const struct bt_addr *me,
		      const struct bt_addr *peer, const char *psk)
{
	char err[64];
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, room);
	c->ike = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_X25519;
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->psk_len = strlen(psk);
	memcpy(c->psk, psk, c->psk_len);
	c->id_type = c->peer_id_type = IKE_ID_IPV4;
	memcpy(c->id, me->b, 4), c->id_len = 4;
	memcpy(c->peer_id, peer->b, 4), c->peer_id_len = 4;
	bt_ts_parse("10.2.0.0/24", &c->local_ts[0], err, sizeof(err));
	bt_ts_parse("10.1.0.1/32", &c->remote_ts[0], err, sizeof(err));
	c->n_local_ts = c->n_remote_ts = 1;
	c->mobike = true;
	c->force_encap = true;
}

int main(int argc, char **argv)
{
	static struct ike_conf_room room;
	static struct ike_conf conf;
	static struct ike_sa sa;
	static uint8_t req[IKE_MSG_MAX];
	struct bt_addr old, new, client;
	if (argc != 5 || bt_addr_parse(argv[1], &old) || bt_addr_parse(argv[2], &new) || bt_addr_parse(argv[3], &client)) {
		fprintf(stderr, "usage: gw_update_peer OLD NEW CLIENT PSK\n");
		return 2;
	}
	conf_init(&conf, &room, &old, &client, argv[4]);
	struct ike_rng rng = {rnd, NULL};
	ike_sa_init(&sa, &conf, false, &rng);
	struct socks s = {{udp(&old, 500), udp(&old, 4500), udp(&new, 4500)}, {500, 4500, 4500}, {old, old, new}};
	serve(&sa, &s, 0, 1, 30000, true); /* the client brings the SA up at OLD */
	if (sa.state != IKE_ST_ESTABLISHED || !sa.mobike || sa.remote_port != 4500) {
		fprintf(stderr, "gw_update_peer: no SA with MOBIKE on 4500 (state %s, mobike %d)\n", ike_state_name(sa.state),
			sa.mobike);
		return 1;
	}
	printf("established: child SPIs %08x/%08x, MOBIKE\n", sa.child[0]->spi_i, sa.child[0]->spi_r);
	fflush(stdout);
	serve(&sa, &s, 0, 1, 1000, false);
	/* the move: from NEW, retransmitted until the client answers there */
	ike_sa_set_endpoints(&sa, &new, 4500, &client, sa.remote_port);
	size_t ql = ike_mobike_gw_update(&sa, req, sizeof(req));
	for (int tries = 0; ql && tries < 5 && !sa.update_done; tries++) {
		send_to(s.fd[2], true, &client, sa.remote_port, req, ql);
		serve(&sa, &s, 2, 2, 1000, false);
	}
	printf("gw update: %s, notify %u, NAT here %d, NAT there %d\n", sa.update_done ? "answered" : "no answer",
	       sa.update_error, sa.nat_local, sa.nat_remote);
	fflush(stdout);
	bool answered = sa.update_done && !sa.update_error;
	sa.update_done = false;
	serve(&sa, &s, 2, 2, 3000, false); /* what the client does next (kernel-libipsec: a Child SA rekey) */
	printf("child rekeys answered: %llu\n", (unsigned long long)sa.child_rekeys);
	return answered ? 0 : 1;
}
