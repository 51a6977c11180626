/* ike_send.c — sending IKE messages: fragments, NAT-T framing, the destination of a request, and
 * retransmission with backoff. */
#include "daemon/ike_internal.h"

/* --- sending ----------------------------------------------------------------------------------- */

static void send_one(struct ike_sess *s, const uint8_t *msg, size_t len);

static void send_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len);

/* Send what the engine produced: one message, or fragments back to back (each a whole IKE
 * message with its own length). */
void ikm_send_raw_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len)
{
	size_t off = 0;
	while (off + 28 <= len) {
		size_t l = (size_t)msg[off + 24] << 24 | (size_t)msg[off + 25] << 16 | (size_t)msg[off + 26] << 8 |
			   msg[off + 27];
		if (l < 28 || l > len - off)
			break;
		if (t)
			send_to(s, t, msg + off, l);
		else
			send_one(s, msg + off, l);
		off += l;
	}
}

void ikm_send_raw(struct ike_sess *s, const uint8_t *msg, size_t len) { ikm_send_raw_to(s, NULL, msg, len); }

static void send_one(struct ike_sess *s, const uint8_t *msg, size_t len)
{
	struct ike_dest t = {s->tx_override ? &s->tx_local : &s->local, s->tx_override ? &s->tx_remote : &s->remote,
			     s->tx_override ? s->tx_rport : s->rport, s->natt};
	send_to(s, &t, msg, len);
}

static void send_to(struct ike_sess *s, const struct ike_dest *t, const uint8_t *msg, size_t len)
{
	struct ike_mgr *m = s->m;
	int rc;
	if (len > 18 && msg[18] >= IKE_SA_INIT && msg[18] <= IKE_INFORMATIONAL)
		m->st.tx_exchange[msg[18] - IKE_SA_INIT]++;
	if (t->natt) {
		rc = dp_send_ike(m->d->dp, msg, len, t->local, t->remote, t->rport);
	} else {
		int fd = t->remote->family == AF_INET6 ? m->fd6 : m->fd4;
		struct sockaddr_storage ss;
		socklen_t sl = bt_addr_to_sockaddr(t->remote, t->rport, &ss);
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
		struct msghdr mh = {.msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1};
		memset(&ctl, 0, sizeof(ctl));
		if (t->local->family == t->remote->family) {
			struct cmsghdr *cm;
			mh.msg_control = ctl.buf;
			if (t->local->family == AF_INET) {
				struct in_pktinfo pi = {0};
				memcpy(&pi.ipi_spec_dst, t->local->b, 4);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = IPPROTO_IP, cm->cmsg_type = IP_PKTINFO, cm->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
			} else {
				struct in6_pktinfo pi = {0};
				memcpy(&pi.ipi6_addr, t->local->b, 16);
				mh.msg_controllen = CMSG_SPACE(sizeof(pi));
				cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = IPPROTO_IPV6, cm->cmsg_type = IPV6_PKTINFO, cm->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
			}
		}
		rc = fd < 0 ? -EAFNOSUPPORT : sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
	}
	if (rc) {
		m->st.tx_errors++;
		bt_debug("IKE %s: send to port %u failed: %s", s->conn, t->rport, strerror(-rc));
	} else {
		m->st.tx++;
	}
}

double ikm_rtx_timeout(const struct ike_mgr *m, unsigned tries)
{
	const struct bt_config *c = m->d->cfg;
	return c->retransmit_timeout_ms / 1000.0 * pow(c->retransmit_base_milli / 1000.0, tries);
}

/* Send a request of ours and keep it for retransmission. */
/* A request of ours goes out now: first try, backoff from the start. */
static void send_first(struct ike_sess *s, const uint8_t *msg, size_t len)
{
	s->tries = 0;
	ikm_send_raw(s, msg, len);
	ev_timer_stop(s->m->d->loop, &s->rtx);
	ev_timer_set(&s->rtx, ikm_rtx_timeout(s->m, 0), 0);
	ev_timer_start(s->m->d->loop, &s->rtx);
}

void ikm_send_request(struct ike_sess *s, const uint8_t *msg, size_t len)
{
	free(s->req);
	s->req = malloc(len);
	s->req_len = s->req ? len : 0;
	if (s->req)
		memcpy(s->req, msg, len);
	send_first(s, msg, len);
}

void ikm_resend(struct ike_sess *s)
{
	if (s->req)
		send_first(s, s->req, s->req_len);
}

void ikm_request_done(struct ike_sess *s)
{
	s->tx_override = false;
	ev_timer_stop(s->m->d->loop, &s->rtx);
	free(s->req);
	s->req = NULL;
	s->req_len = 0;
}
