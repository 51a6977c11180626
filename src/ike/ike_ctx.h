/* ike_ctx.h — the engine's part of the session context: an established IKE SA and its Child SAs as
 * attributes (util/tlv.h), and back. The daemon wraps them with its own state and the ESP SAs'
 * counters into the one serialised context (daemon/xfer.c). */
#ifndef BT_IKE_CTX_H
#define BT_IKE_CTX_H

#include "ike/ike_sa.h"
#include "util/tlv.h"

/* Why the SA cannot be exported now (NULL: it can): it must be established, with no exchange in
 * flight and no rekey or collision half done, so that the context is complete and exact. */
const char *ike_ctx_busy(const struct ike_sa *sa);

/* The IKE SA's negotiated state: SPIs, role, transforms, keys, message IDs and the cached
 * response, the peer's identity and certificate, addresses and NAT state, MOBIKE and counters.
 * Not its children: ike_ctx_write_child writes each. */
void ike_ctx_write_sa(const struct ike_sa *sa, struct wbuf *w);
/* Fill sa (fresh from ike_sa_init with the connection's configuration) from attributes written
 * by ike_ctx_write_sa; the SA is then established. Returns 0, or -1 with err (sa holds what was
 * read so far: ike_sa_free it). */
int ike_ctx_read_sa(struct ike_sa *sa, struct cur v, char *err, size_t errlen);

void ike_ctx_write_child(const struct ike_child *c, struct wbuf *w);
/* A new child (conf: the configured child it belongs to, borrowed) from attributes written by
 * ike_ctx_write_child, or NULL with err. */
struct ike_child *ike_ctx_read_child(const struct ike_conf *conf, struct cur v, char *err, size_t errlen);
/* Free a child not (yet) in an SA's table. */
void ike_ctx_child_free(struct ike_child *c);

#endif
