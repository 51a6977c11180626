/* ike_nat.h — NAT detection (RFC 7296 2.23): the NAT_DETECTION_*_IP hashes. */
#ifndef BT_IKE_NAT_H
#define BT_IKE_NAT_H

#include <stdint.h>

#include "util/addr.h"

#define IKE_NATD_LEN 20

/* SHA-1(SPIi | SPIr | IP address | port), SPIs and port in network order. Returns 0 or -1. */
int ike_natd_hash(uint64_t spi_i, uint64_t spi_r, const struct bt_addr *a, uint16_t port, uint8_t out[IKE_NATD_LEN]);

#endif
