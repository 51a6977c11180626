/* esp.h — the ESP engine: RFC 4303 encapsulation and decapsulation, in place, with no I/O.
 *
 * The engine sees only the ESP part (SPI .. ICV). Outer IP and UDP headers belong to the I/O layer;
 * so does rebuilding the IP header in transport mode.
 */
#ifndef BT_ESP_H
#define BT_ESP_H

#include <stddef.h>
#include <stdint.h>

#include "esp/sa.h"
#include "util/pkt.h"

/* Encapsulate p (the inner IP packet in tunnel mode, the transport payload in transport mode) with
 * next header nh. Needs ESP_HEADROOM before and ESP_TAILROOM after the data. On success p describes
 * the ESP packet and 0 is returned; otherwise a drop reason (>0), counted on the SA. lane selects
 * the per-worker crypto state (0 .. sa->n_lanes-1). */
enum esp_drop esp_encap(struct esp_sa *sa, unsigned lane, struct pkt *p, uint8_t nh);

/* Decapsulate the ESP packet p in place: replay check before decryption, ICV check in constant
 * time, window update only after authentication, padding verified. On success p describes the
 * payload, *nh its next header, and 0 is returned; otherwise a drop reason, counted on the SA. */
enum esp_drop esp_decap(struct esp_sa *sa, unsigned lane, struct pkt *p, uint8_t *nh);

/* SPI of an ESP packet (host order), or 0 if it is too short to be one. */
uint32_t esp_peek_spi(const uint8_t *data, size_t len);

/* Bytes before the payload: ESP header and IV. */
size_t esp_header_len(const struct esp_sa *sa);

/* Bytes ESP adds to a payload of payload_len for this SA (header, IV, padding, trailer, ICV). */
size_t esp_overhead(const struct esp_sa *sa, size_t payload_len);

#endif
