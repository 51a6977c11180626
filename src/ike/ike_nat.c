/* ike_nat.c — NAT detection hashes over OpenSSL SHA-1. */
#include "ike/ike_nat.h"

#include <openssl/evp.h>

int ike_natd_hash(uint64_t spi_i, uint64_t spi_r, const struct bt_addr *a, uint16_t port, uint8_t out[IKE_NATD_LEN])
{
	uint8_t buf[8 + 8 + 16 + 2];
	size_t n = 0, al = bt_addr_len(a);
	unsigned int ol = 0;
	for (int i = 0; i < 8; i++)
		buf[n++] = (uint8_t)(spi_i >> (56 - 8 * i));
	for (int i = 0; i < 8; i++)
		buf[n++] = (uint8_t)(spi_r >> (56 - 8 * i));
	for (size_t i = 0; i < al; i++)
		buf[n++] = a->b[i];
	buf[n++] = (uint8_t)(port >> 8);
	buf[n++] = (uint8_t)port;
	return EVP_Digest(buf, n, out, &ol, EVP_sha1(), NULL) == 1 && ol == IKE_NATD_LEN ? 0 : -1;
}
