/* fuzz_ike_cert.c — arbitrary bytes into the certificate-authentication parsers: AUTH data of every
 * signature method against fixed certificates, CERT bodies (and what a parsed certificate goes
 * through next: identity matching, chain verification, its key verifying a signature), CERTREQ
 * bodies, SIGNATURE_HASH_ALGORITHMS data and IKE identities against a certificate. Never crash.
 *
 * Input: byte 0 picks the parser, byte 1 is its parameter (certificate, method or ID type), the
 * rest is the payload data. The test PKI is read from tests/unit/data/certs next to this file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ike/ike_cert.h"
#include "ike/ike_wire.h"

#define T2030 ((time_t)1893456000)

static const uint8_t octets[] = "InitiatorSignedOctets: RealMessage1 | NonceR | prf(SK_pi, IDi)";
static struct ike_cred creds[4]; /* rsa, p256, ed25519, sub-chain: each trusting both test CAs */

static void setup(void)
{
	static const char *const stems[4][2] = {
		{"rsa.pem", "rsa.key"}, {"p256.pem", "p256.key"}, {"ed25519.pem", "ed25519.key"}, {"sub-chain.pem", "sub.key"}};
	char dir[512], cert[600], key[600], ca1[600], ca2[600], err[256];
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	snprintf(ca1, sizeof(ca1), "%s/../unit/data/certs/ca-rsa.pem", dir);
	snprintf(ca2, sizeof(ca2), "%s/../unit/data/certs/ca-ec.pem", dir);
	const char *cas[] = {ca1, ca2};
	for (unsigned i = 0; i < 4; i++) {
		snprintf(cert, sizeof(cert), "%s/../unit/data/certs/%s", dir, stems[i][0]);
		snprintf(key, sizeof(key), "%s/../unit/data/certs/%s", dir, stems[i][1]);
		if (ike_cred_load(&creds[i], cert, key, cas, 2, err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_ike_cert: %s\n", err);
			abort();
		}
	}
}

static void try_cert(X509 *x, const uint8_t *data, size_t size)
{
	static uint8_t out[IKE_MSG_MAX + 1];
	char err[256];
	uint8_t dn[1024];
	/* what parsed must build back */
	size_t n = ike_cert_build(x, out, sizeof(out));
	X509 *y = n ? ike_cert_parse(out, n) : NULL;
	if (!y || X509_cmp(x, y) != 0)
		abort();
	X509_free(y);
	(void)ike_cert_verify_chain(&creds[0], x, creds[3].chain, T2030, err, sizeof(err));
	(void)ike_cert_match_id(x, IKE_ID_FQDN, "gw.baton.test", 13);
	(void)ike_cert_match_id(x, IKE_ID_RFC822, "rsa@baton.test", 14);
	static const uint8_t v4[] = {172, 16, 0, 1};
	(void)ike_cert_match_id(x, IKE_ID_IPV4, v4, 4);
	size_t dn_len = ike_cred_own_id(&creds[0], dn, sizeof(dn));
	(void)ike_cert_match_id(x, IKE_ID_DER_ASN1_DN, dn, dn_len);
	/* its key against the AUTH data of a real signature, under every method */
	uint8_t auth[IKE_SIG_MAX];
	size_t len = sizeof(auth);
	if (ike_cert_sign(&creds[1], octets, sizeof(octets) - 1, 0, auth, &len) == 0)
		for (uint8_t m = 0; m < 16; m++)
			(void)ike_cert_verify_method(x, m, octets, sizeof(octets) - 1, auth, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 2)
		return 0;
	uint8_t sel = data[0], arg = data[1];
	size_t len = size - 2;
	uint8_t *body = malloc(len ? len : 1); /* exact size, so ASan sees any over-read */
	if (!body)
		return 0;
	memcpy(body, data + 2, len);
	switch (sel % 5) {
	case 0: /* AUTH data: arg picks the certificate and the method */
		(void)ike_cert_verify_method(creds[arg % 4].cert, arg >> 2, octets, sizeof(octets) - 1, body, len);
		(void)ike_cert_verify(creds[arg % 4].cert, body, len, body, len);
		break;
	case 1: { /* CERT body */
		X509 *x = ike_cert_parse(body, len);
		if (x) {
			try_cert(x, body, len);
			X509_free(x);
		}
		break;
	}
	case 2: { /* CERTREQ body */
		const uint8_t *h;
		size_t n;
		int enc = ike_certreq_parse(body, len, &h, &n);
		if (enc == IKE_CERT_ENC_X509_SIG && (h != body + 1 || 1 + n * IKE_CERTREQ_HASH_LEN != len))
			abort();
		for (unsigned i = 0; i < 4; i++)
			(void)ike_certreq_wants(&creds[i], body, len);
		break;
	}
	case 3: { /* SIGNATURE_HASH_ALGORITHMS */
		uint32_t mask;
		if (ike_sighash_parse(body, len, &mask) == 0)
			for (unsigned i = 0; i < 4; i++) {
				uint16_t h = ike_sighash_choose(&creds[i], mask);
				if (h && !(mask & 1u << h))
					abort();
			}
		break;
	}
	case 4: /* an IKE identity of type arg against each certificate */
		for (unsigned i = 0; i < 4; i++)
			(void)ike_cert_match_id(creds[i].cert, arg, body, len);
		break;
	}
	free(body);
	return 0;
}
