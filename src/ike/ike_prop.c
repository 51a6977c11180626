/* ike_prop.c — proposal strings and proposal selection. */
#include "ike/ike_prop.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct tok {
	const char *name;
	uint8_t type;
	uint16_t id, bits;
};

static const struct tok toks[] = {
	{"aes128", IKE_TR_ENCR, IKE_ENCR_AES_CBC, 128},
	{"aes192", IKE_TR_ENCR, IKE_ENCR_AES_CBC, 192},
	{"aes256", IKE_TR_ENCR, IKE_ENCR_AES_CBC, 256},
	{"aes128ctr", IKE_TR_ENCR, IKE_ENCR_AES_CTR, 128},
	{"aes192ctr", IKE_TR_ENCR, IKE_ENCR_AES_CTR, 192},
	{"aes256ctr", IKE_TR_ENCR, IKE_ENCR_AES_CTR, 256},
	{"aes128gcm16", IKE_TR_ENCR, IKE_ENCR_AES_GCM_16, 128},
	{"aes192gcm16", IKE_TR_ENCR, IKE_ENCR_AES_GCM_16, 192},
	{"aes256gcm16", IKE_TR_ENCR, IKE_ENCR_AES_GCM_16, 256},
	{"aes128gcm128", IKE_TR_ENCR, IKE_ENCR_AES_GCM_16, 128},
	{"aes256gcm128", IKE_TR_ENCR, IKE_ENCR_AES_GCM_16, 256},
	{"chacha20poly1305", IKE_TR_ENCR, IKE_ENCR_CHACHA20_POLY1305, 0},
	{"3des", IKE_TR_ENCR, IKE_ENCR_3DES, 0},
	{"null", IKE_TR_ENCR, IKE_ENCR_NULL, 0},
	{"md5", IKE_TR_INTEG, IKE_INTEG_HMAC_MD5_96, 0},
	{"sha1", IKE_TR_INTEG, IKE_INTEG_HMAC_SHA1_96, 0},
	{"sha256", IKE_TR_INTEG, IKE_INTEG_HMAC_SHA2_256_128, 0},
	{"sha384", IKE_TR_INTEG, IKE_INTEG_HMAC_SHA2_384_192, 0},
	{"sha512", IKE_TR_INTEG, IKE_INTEG_HMAC_SHA2_512_256, 0},
	{"prfsha1", IKE_TR_PRF, IKE_PRF_HMAC_SHA1, 0},
	{"prfsha256", IKE_TR_PRF, IKE_PRF_HMAC_SHA2_256, 0},
	{"prfsha384", IKE_TR_PRF, IKE_PRF_HMAC_SHA2_384, 0},
	{"prfsha512", IKE_TR_PRF, IKE_PRF_HMAC_SHA2_512, 0},
	{"modp2048", IKE_TR_DH, IKE_DH_MODP2048, 0},
	{"modp3072", IKE_TR_DH, IKE_DH_MODP3072, 0},
	{"modp4096", IKE_TR_DH, IKE_DH_MODP4096, 0},
	{"ecp256", IKE_TR_DH, IKE_DH_ECP256, 0},
	{"ecp384", IKE_TR_DH, IKE_DH_ECP384, 0},
	{"curve25519", IKE_TR_DH, IKE_DH_X25519, 0},
	{"x25519", IKE_TR_DH, IKE_DH_X25519, 0},
	{"esn", IKE_TR_ESN, 1, 0},
	{"noesn", IKE_TR_ESN, 0, 0},
};

bool ike_encr_is_aead(uint16_t encr)
{
	return encr == IKE_ENCR_AES_GCM_16 || encr == IKE_ENCR_CHACHA20_POLY1305;
}

const struct ike_transform *ike_prop_get(const struct ike_proposal *p, uint8_t type)
{
	for (unsigned i = 0; i < p->n_tr; i++)
		if (p->tr[i].type == type)
			return &p->tr[i];
	return NULL;
}

static bool has_tr(const struct ike_proposal *p, const struct ike_transform *t)
{
	for (unsigned i = 0; i < p->n_tr; i++)
		if (p->tr[i].type == t->type && p->tr[i].id == t->id && p->tr[i].key_bits == t->key_bits)
			return true;
	return false;
}

static int add(struct ike_proposal *p, uint8_t type, uint16_t id, uint16_t bits)
{
	struct ike_transform t = {type, id, bits};
	if (has_tr(p, &t))
		return 0;
	if (p->n_tr >= IKE_MAX_TRANSFORMS)
		return -1;
	/* field by field: a struct copy may carry t's padding byte, and batond fingerprints the parsed
	 * proposals byte for byte to tell whether a reload changed a connection */
	struct ike_transform *d = &p->tr[p->n_tr++];
	d->type = type, d->id = id, d->key_bits = bits;
	return 0;
}

int ike_prop_parse(const char *s, uint8_t protocol, struct ike_proposal *p, char *err, size_t errlen)
{
	char buf[256], *save = NULL;
	bool esp = protocol == IKE_PROTO_ESP, aead = false, classic = false;
	memset(p, 0, sizeof(*p));
	p->protocol = protocol;
	p->spi_len = esp ? 4 : 0;
	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "proposal too long");
		return -1;
	}
	strcpy(buf, s);
	for (char *t = strtok_r(buf, "-", &save); t; t = strtok_r(NULL, "-", &save)) {
		const struct tok *k = NULL;
		for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]) && !k; i++)
			if (!strcasecmp(t, toks[i].name))
				k = &toks[i];
		if (!k) {
			snprintf(err, errlen, "unknown algorithm '%s' in '%s'", t, s);
			return -1;
		}
		if ((!esp && (k->type == IKE_TR_ESN ||
			      (k->type == IKE_TR_ENCR && (k->id == IKE_ENCR_NULL || k->id == IKE_ENCR_AES_CTR)) ||
			      (k->type == IKE_TR_INTEG && k->id == IKE_INTEG_HMAC_MD5_96))) ||
		    (esp && k->type == IKE_TR_PRF)) {
			snprintf(err, errlen, "'%s' is not an %s algorithm here", t, esp ? "ESP" : "IKE");
			return -1;
		}
		if (k->type == IKE_TR_ENCR)
			ike_encr_is_aead(k->id) ? (aead = true) : (classic = true);
		if (add(p, k->type, k->id, k->bits)) {
			snprintf(err, errlen, "too many algorithms in '%s'", s);
			return -1;
		}
	}
	const struct ike_transform *integ = ike_prop_get(p, IKE_TR_INTEG);
	if (!ike_prop_get(p, IKE_TR_ENCR)) {
		snprintf(err, errlen, "'%s' names no encryption algorithm", s);
		return -1;
	}
	if (aead && classic) {
		snprintf(err, errlen, "'%s' mixes AEAD and non-AEAD encryption", s);
		return -1;
	}
	if (aead && integ) {
		snprintf(err, errlen, "'%s': an AEAD algorithm takes no integrity algorithm", s);
		return -1;
	}
	if (classic && !integ) {
		snprintf(err, errlen, "'%s' needs an integrity algorithm (e.g. sha256)", s);
		return -1;
	}
	if (!esp) {
		/* as strongSwan: without an explicit PRF, each integrity algorithm brings its own */
		if (!ike_prop_get(p, IKE_TR_PRF)) {
			static const uint16_t map[][2] = {{IKE_INTEG_HMAC_SHA1_96, IKE_PRF_HMAC_SHA1},
							  {IKE_INTEG_HMAC_SHA2_256_128, IKE_PRF_HMAC_SHA2_256},
							  {IKE_INTEG_HMAC_SHA2_384_192, IKE_PRF_HMAC_SHA2_384},
							  {IKE_INTEG_HMAC_SHA2_512_256, IKE_PRF_HMAC_SHA2_512}};
			for (unsigned i = 0; i < p->n_tr; i++)
				for (unsigned j = 0; j < 4; j++)
					if (p->tr[i].type == IKE_TR_INTEG && p->tr[i].id == map[j][0])
						add(p, IKE_TR_PRF, map[j][1], 0);
			if (!ike_prop_get(p, IKE_TR_PRF)) {
				snprintf(err, errlen, "'%s' needs a PRF (e.g. prfsha256)", s);
				return -1;
			}
		}
		if (!ike_prop_get(p, IKE_TR_DH)) {
			snprintf(err, errlen, "'%s' needs a key exchange group (e.g. x25519)", s);
			return -1;
		}
	} else if (!ike_prop_get(p, IKE_TR_ESN)) {
		add(p, IKE_TR_ESN, 0, 0);
	}
	return 0;
}

/* The transforms of `type` in p; a missing ESN list means "no ESN", a missing DH list "none". */
static unsigned list_of(const struct ike_proposal *p, uint8_t type, struct ike_transform *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->n_tr; i++)
		if (p->tr[i].type == type)
			out[n++] = p->tr[i];
	if (!n && (type == IKE_TR_ESN || (type == IKE_TR_DH && p->protocol != IKE_PROTO_IKE)))
		out[n++] = (struct ike_transform){type, 0, 0};
	return n;
}

bool ike_prop_select(const struct ike_proposal *theirs, const struct ike_proposal *ours, bool ignore_dh,
		     struct ike_proposal *out)
{
	static const uint8_t types[] = {IKE_TR_ENCR, IKE_TR_PRF, IKE_TR_INTEG, IKE_TR_DH, IKE_TR_ESN};
	if (theirs->protocol != ours->protocol)
		return false;
	memset(out, 0, sizeof(*out));
	out->num = theirs->num, out->protocol = theirs->protocol, out->spi_len = theirs->spi_len;
	memcpy(out->spi, theirs->spi, sizeof(out->spi));
	for (unsigned i = 0; i < theirs->n_tr; i++) {
		bool known = false;
		for (unsigned k = 0; k < sizeof(types); k++)
			known |= theirs->tr[i].type == types[k];
		if (!known)
			return false; /* a transform type we cannot honour */
	}
	for (unsigned k = 0; k < sizeof(types); k++) {
		struct ike_transform a[IKE_MAX_TRANSFORMS + 1], b[IKE_MAX_TRANSFORMS + 1];
		unsigned na = list_of(theirs, types[k], a), nb = list_of(ours, types[k], b);
		if (types[k] == IKE_TR_DH && ignore_dh)
			continue;
		if (types[k] == IKE_TR_INTEG) {
			const struct ike_transform *e = ike_prop_get(out, IKE_TR_ENCR);
			if (e && ike_encr_is_aead(e->id)) {
				/* AEAD: integrity absent, or "none" */
				for (unsigned i = 0; i < na; i++)
					if (a[i].id != IKE_INTEG_NONE)
						return false;
				continue;
			}
		}
		if (!na && !nb)
			continue;
		bool found = false;
		for (unsigned i = 0; i < na && !found; i++)
			for (unsigned j = 0; j < nb && !found; j++)
				if (a[i].id == b[j].id && a[i].key_bits == b[j].key_bits) {
					found = true;
					/* "none" and "no ESN" are sent only if the peer named them */
					if (ike_prop_get(theirs, types[k]))
						out->tr[out->n_tr++] = a[i];
				}
		if (!found)
			return false;
	}
	return true;
}

bool ike_prop_within(const struct ike_proposal *chosen, const struct ike_proposal *ours, bool ignore_dh)
{
	struct ike_proposal tmp;
	for (unsigned t = 1; t <= IKE_TR_ESN; t++) {
		unsigned n = 0;
		for (unsigned i = 0; i < chosen->n_tr; i++)
			n += chosen->tr[i].type == t;
		if (n > 1)
			return false; /* a choice has one transform per type */
	}
	return ike_prop_select(chosen, ours, ignore_dh, &tmp);
}

void ike_prop_name(const struct ike_proposal *p, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = 0;
	static const uint8_t order[] = {IKE_TR_ENCR, IKE_TR_INTEG, IKE_TR_PRF, IKE_TR_DH, IKE_TR_ESN};
	for (unsigned k = 0; k < sizeof(order); k++) {
		const struct ike_transform *t = ike_prop_get(p, order[k]);
		if (!t || (order[k] == IKE_TR_ESN && !t->id) || (order[k] == IKE_TR_DH && !t->id) ||
		    (order[k] == IKE_TR_INTEG && !t->id))
			continue;
		const char *name = "?";
		for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++)
			if (toks[i].type == t->type && toks[i].id == t->id && toks[i].bits == t->key_bits) {
				name = toks[i].name;
				break;
			}
		int w = snprintf(buf + o, len - o, "%s%s", o ? "-" : "", name);
		if (w < 0 || (size_t)w >= len - o)
			return;
		o += (size_t)w;
	}
}

int ike_prop_esp_key_lens(const struct ike_proposal *p, size_t *encr_len, size_t *integ_len)
{
	const struct ike_transform *e = ike_prop_get(p, IKE_TR_ENCR), *i = ike_prop_get(p, IKE_TR_INTEG);
	if (!e)
		return -1;
	switch (e->id) {
	case IKE_ENCR_AES_CBC: *encr_len = e->key_bits / 8u; break;
	case IKE_ENCR_AES_CTR:
	case IKE_ENCR_AES_GCM_16: *encr_len = e->key_bits / 8u + 4; break;
	case IKE_ENCR_CHACHA20_POLY1305: *encr_len = 36; break;
	case IKE_ENCR_3DES: *encr_len = 24; break;
	case IKE_ENCR_NULL: *encr_len = 0; break;
	default: return -1;
	}
	if (e->id != IKE_ENCR_CHACHA20_POLY1305 && e->id != IKE_ENCR_3DES && e->id != IKE_ENCR_NULL &&
	    e->key_bits != 128 && e->key_bits != 192 && e->key_bits != 256)
		return -1;
	switch (i ? i->id : IKE_INTEG_NONE) {
	case IKE_INTEG_NONE: *integ_len = 0; break;
	case IKE_INTEG_HMAC_MD5_96: *integ_len = 16; break;
	case IKE_INTEG_HMAC_SHA1_96: *integ_len = 20; break;
	case IKE_INTEG_HMAC_SHA2_256_128: *integ_len = 32; break;
	case IKE_INTEG_HMAC_SHA2_384_192: *integ_len = 48; break;
	case IKE_INTEG_HMAC_SHA2_512_256: *integ_len = 64; break;
	default: return -1;
	}
	return 0;
}
