/* ike_mobike.c — MOBIKE (RFC 4555) in the engine: the notifies it reads and writes, the requests
 * that move or probe a path (also a gateway's after a Multi-LAN transfer), and a retransmitted
 * UPDATE_SA_ADDRESSES from another path. */
#include "ike/ike_exchange_internal.h"

/* MOBIKE notifies of an IKE_AUTH or INFORMATIONAL message: MOBIKE_SUPPORTED (IKE_AUTH only), the
 * peer's additional addresses (a new list replaces the old one), and a COOKIE2 to echo. */
void ike_x_note_mobike(struct ike_sa *sa, const struct ike_chain *c, bool auth, struct ike_notify_payload *cookie2,
		       bool *update)
{
	struct ike_notify_payload n;
	bool list = false;
	for (unsigned i = 0; ike_find(c, IKE_PL_NOTIFY, i); i++) {
		if (ike_parse_notify(ike_find(c, IKE_PL_NOTIFY, i), &n) != IKE_PERR_OK)
			continue;
		if (n.type == IKE_N_MOBIKE_SUPPORTED && auth) {
			sa->mobike = sa->conf->mobike;
		} else if ((n.type == IKE_N_ADDITIONAL_IP4_ADDRESS && n.data_len == 4) ||
			   (n.type == IKE_N_ADDITIONAL_IP6_ADDRESS && n.data_len == 16)) {
			if (!list)
				sa->n_peer_addrs = 0, list = true;
			if (sa->n_peer_addrs < IKE_PEER_ADDRS) {
				struct bt_addr *a = &sa->peer_addrs[sa->n_peer_addrs++];
				memset(a, 0, sizeof(*a));
				a->family = n.data_len == 4 ? AF_INET : AF_INET6;
				memcpy(a->b, n.data, n.data_len);
			}
		} else if (n.type == IKE_N_NO_ADDITIONAL_ADDRESSES) {
			sa->n_peer_addrs = 0, list = true;
		} else if (n.type == IKE_N_COOKIE2 && cookie2 && n.data_len >= 8 && n.data_len <= 64) {
			*cookie2 = n;
		} else if (n.type == IKE_N_UPDATE_SA_ADDRESSES && update) {
			*update = true;
		}
	}
	if (list)
		sa->peer_addrs_changed = true;
}

/* Our additional addresses (RFC 4555 3.4); with none, NO_ADDITIONAL_ADDRESSES if asked (3.6). */
void ike_x_put_my_addrs(struct ike_sa *sa, struct ike_builder *b, bool say_none)
{
	for (unsigned k = 0; k < sa->n_my_addrs && k < IKE_PEER_ADDRS; k++) {
		const struct bt_addr *a = &sa->my_addrs[k];
		if (a->family == AF_INET || a->family == AF_INET6)
			ike_put_notify(b, 0, NULL, 0, a->family == AF_INET ? IKE_N_ADDITIONAL_IP4_ADDRESS : IKE_N_ADDITIONAL_IP6_ADDRESS,
				       a->b, a->family == AF_INET ? 4 : 16);
	}
	if (!sa->n_my_addrs && say_none)
		ike_put_notify(b, 0, NULL, 0, IKE_N_NO_ADDITIONAL_ADDRESSES, NULL, 0);
}
bool ike_x_retransmit_same_path(struct ike_sa *sa, const uint8_t *msg, size_t len)
{
	if (bt_addr_eq(&sa->rx_remote, &sa->remote) && bt_addr_eq(&sa->rx_local, &sa->local) &&
	    sa->rx_remote_port == sa->remote_port && sa->rx_local_port == sa->local_port)
		return true;
	uint8_t *copy = ike_x_dup_bytes(msg, len);
	struct ike_hdr h;
	static __thread struct ike_chain c, in;
	bool ok = copy && ike_parse(copy, len, &h, &c) == IKE_PERR_OK && ike_find(&c, IKE_PL_SK, 0) &&
		  ike_x_open_sk(sa, copy, len, &c, &in) == 0;
	free(copy);
	if (!ok)
		return false;
	sa->rr_local = sa->rx_local, sa->rr_remote = sa->rx_remote;
	sa->rr_local_port = sa->rx_local_port, sa->rr_remote_port = sa->rx_remote_port;
	sa->addr_check = true;
	return true;
}

static size_t send_update(struct ike_sa *sa, enum ike_info what, uint8_t *out, size_t cap)
{
	size_t len = ike_informational(sa, what, out, cap);
	if (len)
		sa->updates_sent++;
	return len;
}

size_t ike_mobike_update(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return send_update(sa, IKE_INFO_UPDATE, out, cap);
}

size_t ike_mobike_gw_update(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return send_update(sa, IKE_INFO_GW_UPDATE, out, cap);
}

size_t ike_mobike_probe(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return ike_informational(sa, IKE_INFO_PROBE, out, cap);
}

size_t ike_mobike_addresses(struct ike_sa *sa, uint8_t *out, size_t cap)
{
	return ike_informational(sa, IKE_INFO_ADDRS, out, cap);
}
