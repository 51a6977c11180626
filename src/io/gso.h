/* gso.h — checksums, and TCP segmentation of the super-packets a TUN device with TSO hands us. */
#ifndef BT_GSO_H
#define BT_GSO_H

#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>

/* One's-complement sum of data, folded to 16 bits but not inverted; start with sum = 0. */
uint32_t csum_add(uint32_t sum, const uint8_t *data, size_t len);
uint16_t csum_fold(uint32_t sum);
/* The pseudo-header sum for an IPv4/IPv6 packet's L4 checksum. */
uint32_t csum_pseudo(const uint8_t *ip, uint8_t proto, size_t l4_len);
/* Recompute the IPv4 header checksum in place. */
void ip4_set_csum(uint8_t *ip);

/* Finish a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): sum from csum_start to the end and
 * store it at csum_start + csum_offset. Returns -1 if the offsets don't fit the packet. */
int gso_complete_csum(uint8_t *pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

/* Called for each segment produced; seg points into the caller's scratch space. Return non-zero
 * to stop. */
typedef int (*gso_emit_fn)(void *arg, uint8_t *seg, size_t len);

/* Split a TCP super-packet (IPv4 or IPv6, gso_size = MSS) into full packets with correct lengths,
 * IPv4 ids and checksums, TCP sequence numbers, flags and checksums. Each segment is built in
 * scratch (at least headers + MSS bytes) and passed to emit. Returns the number of segments, or -1
 * if the packet is malformed. */
int gso_segment_tcp(const uint8_t *pkt, size_t len, uint16_t mss, uint8_t *scratch, size_t scratch_len,
		    gso_emit_fn emit, void *arg);

#endif
