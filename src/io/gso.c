/* gso.c — checksums and TCP segmentation in user space (what the NIC would do with TSO). */
#include "io/gso.h"

#include <stdbool.h>
#include <string.h>

uint32_t csum_add(uint32_t sum, const uint8_t *data, size_t len)
{
	uint64_t acc = sum;
	while (len >= 8) {
		uint32_t a, b;
		memcpy(&a, data, 4);
		memcpy(&b, data + 4, 4);
		acc += (uint64_t)a + b;
		data += 8, len -= 8;
	}
	while (len >= 2) {
		uint16_t w;
		memcpy(&w, data, 2);
		acc += w;
		data += 2, len -= 2;
	}
	if (len) {
		uint16_t w = 0;
		memcpy(&w, data, 1);
		acc += w;
	}
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint32_t csum_pseudo(const uint8_t *ip, uint8_t proto, size_t l4_len)
{
	uint8_t tail[8] = {0};
	uint32_t sum;
	if ((ip[0] >> 4) == 4)
		sum = csum_add(0, ip + 12, 8);
	else
		sum = csum_add(0, ip + 8, 32);
	/* length and protocol in network order; for IPv6 as 32-bit fields */
	tail[0] = (uint8_t)(l4_len >> 24), tail[1] = (uint8_t)(l4_len >> 16);
	tail[2] = (uint8_t)(l4_len >> 8), tail[3] = (uint8_t)l4_len;
	tail[7] = proto;
	return csum_add(sum, tail, 8);
}

void ip4_set_csum(uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	ip[10] = ip[11] = 0;
	uint16_t c = (uint16_t)~csum_fold(csum_add(0, ip, ihl));
	memcpy(ip + 10, &c, 2);
}

int gso_complete_csum(uint8_t *pkt, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	if ((size_t)csum_start + csum_offset + 2 > len)
		return -1;
	/* the field holds the pseudo-header sum already (that is what "partial" means) */
	uint16_t c = (uint16_t)~csum_fold(csum_add(0, pkt + csum_start, len - csum_start));
	memcpy(pkt + csum_start + csum_offset, &c, 2);
	return 0;
}

int gso_segment_tcp(const uint8_t *pkt, size_t len, uint16_t mss, uint8_t *scratch, size_t scratch_len,
		    gso_emit_fn emit, void *arg)
{
	size_t iph;
	int v4;
	if (len < 20 || mss == 0)
		return -1;
	if ((pkt[0] >> 4) == 4) {
		v4 = 1;
		iph = (size_t)(pkt[0] & 0x0f) * 4;
		if (iph < 20 || pkt[9] != 6)
			return -1;
	} else if ((pkt[0] >> 4) == 6) {
		v4 = 0;
		iph = 40;
		if (pkt[6] != 6) /* extension headers before TCP: not produced by Linux TSO */
			return -1;
	} else {
		return -1;
	}
	if (len < iph + 20)
		return -1;
	size_t tcph = (size_t)(pkt[iph + 12] >> 4) * 4;
	if (tcph < 20 || len < iph + tcph)
		return -1;
	size_t hdrs = iph + tcph, payload = len - hdrs;
	if (scratch_len < hdrs + mss)
		return -1;
	uint32_t seq0 = (uint32_t)pkt[iph + 4] << 24 | (uint32_t)pkt[iph + 5] << 16 |
			(uint32_t)pkt[iph + 6] << 8 | pkt[iph + 7];
	uint16_t id0 = v4 ? (uint16_t)(pkt[4] << 8 | pkt[5]) : 0;
	uint8_t flags = pkt[iph + 13];
	int n = 0;
	for (size_t off = 0; off < payload || (payload == 0 && n == 0); off += mss, n++) {
		size_t chunk = payload - off < mss ? payload - off : mss;
		bool last = off + chunk >= payload;
		uint8_t *s = scratch;
		memcpy(s, pkt, hdrs);
		memcpy(s + hdrs, pkt + hdrs + off, chunk);
		size_t slen = hdrs + chunk;
		if (v4) {
			s[2] = (uint8_t)(slen >> 8), s[3] = (uint8_t)slen;
			uint16_t id = (uint16_t)(id0 + n);
			s[4] = (uint8_t)(id >> 8), s[5] = (uint8_t)id;
			ip4_set_csum(s);
		} else {
			size_t pl = slen - 40;
			s[4] = (uint8_t)(pl >> 8), s[5] = (uint8_t)pl;
		}
		uint8_t *t = s + iph;
		uint32_t seq = seq0 + (uint32_t)off;
		t[4] = (uint8_t)(seq >> 24), t[5] = (uint8_t)(seq >> 16), t[6] = (uint8_t)(seq >> 8), t[7] = (uint8_t)seq;
		uint8_t f = flags;
		if (!last)
			f &= (uint8_t)~(0x01 | 0x08); /* FIN, PSH only on the last */
		if (n > 0)
			f &= (uint8_t)~0x80;          /* CWR only on the first */
		t[13] = f;
		t[16] = t[17] = 0;
		uint32_t sum = csum_pseudo(s, 6, tcph + chunk);
		uint16_t c = (uint16_t)~csum_fold(csum_add(sum, t, tcph + chunk));
		memcpy(t + 16, &c, 2);
		if (emit(arg, s, slen))
			return n + 1;
		if (payload == 0)
			return 1;
	}
	return n;
}
