/* esp_wire.h — ESP (RFC 4303) and ESP-in-UDP (RFC 3948) on the wire: constants and fixed layouts. */
#ifndef BT_ESP_WIRE_H
#define BT_ESP_WIRE_H

#include <stdint.h>

#define ESP_IPPROTO 50
#define ESP_UDP_PORT 4500 /* RFC 3948; shared with IKE (non-ESP marker) */
#define IKE_UDP_PORT 500

/* ESP header; both fields big-endian on the wire. */
struct esp_hdr {
	uint32_t spi_be;
	uint32_t seq_be;
} __attribute__((packed));

/* ESP trailer before the ICV. */
struct esp_trailer {
	uint8_t pad_len;
	uint8_t next_hdr;
} __attribute__((packed));

/* RFC 3948: on UDP 4500 a packet starting with four zero bytes is IKE (the non-ESP marker);
 * a single 0xff byte is a NAT-keepalive. SPI 0 is never a valid ESP SPI. */
#define ESP_NON_ESP_MARKER_LEN 4
#define ESP_NATT_KEEPALIVE 0xff

/* Next-header values used in tunnel mode. */
#define ESP_NH_IPV4 4
#define ESP_NH_IPV6 41
#define ESP_NH_NONE 59 /* dummy packet (RFC 4303 2.6): dropped silently after ICV check */

/* Largest added by any transform we support: header 8 + IV 16 + pad 15 + trailer 2 + ICV 32. */
#define ESP_MAX_OVERHEAD (8 + 16 + 15 + 2 + 32)
/* Room a buffer must have before the payload for in-place encapsulation (ESP header + IV),
 * plus room for the outer IPv6 header and UDP header used by the raw/UDP senders. */
#define ESP_HEADROOM 128
#define ESP_TAILROOM 64

#endif
