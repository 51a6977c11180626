/* vip.h — Mono-LAN shared addresses (cluster.shared_addrs): held by one gateway at a time, they
 * follow the sessions. The node that takes sessions over adds them and announces them to the LAN
 * (gratuitous ARP, unsolicited neighbour advertisement); the node that gave its sessions away
 * removes them once none of its IKE SAs still uses one. Errors are logged and counted, never fatal. */
#ifndef BT_DAEMON_VIP_H
#define BT_DAEMON_VIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

struct daemon;

/* Add every shared address this node lacks (RTM_NEWADDR), then announce every shared address from
 * this node. Returns how many were added. */
int cluster_claim(struct daemon *d);
/* Remove the shared addresses (RTM_DELADDR) unless an IKE SA here still has one as its local address.
 * Returns how many were removed. */
int cluster_release(struct daemon *d);

/* The ARP packet (28 bytes, without the Ethernet header) announcing a from mac: a request (tha zero)
 * or a reply (tha = sha, as Linux wants of an unsolicited reply); sender and target IP are a. */
void vip_garp_build(uint8_t out[28], const uint8_t mac[6], const struct bt_addr *a, bool reply);

#endif
