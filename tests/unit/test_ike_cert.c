/* test_ike_cert.c — certificate authentication: credentials, RFC 7427 AUTH round trips for every key
 * type, signatures made by the openssl CLI (tests/unit/data/certs/make.sh), the classic methods,
 * SIGNATURE_HASH_ALGORITHMS, CERT/CERTREQ bodies, chain verification and identity matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ike/ike_cert.h"
#include "ike/ike_wire.h"
#include "testdata.h"

#define T2030 ((time_t)1893456000) /* 2030-01-01, inside every test certificate's validity */
#define T2050 ((time_t)2524608000) /* 2050-01-01, after all of them */

static const uint8_t octets[] = "InitiatorSignedOctets: RealMessage1 | NonceR | prf(SK_pi, IDi)";
#define OCTETS_LEN (sizeof(octets) - 1) /* the same string make.sh signed, without the NUL */

static const char *path(const char *name)
{
	static char buf[4][512];
	static unsigned i;
	const char *src = getenv("BATON_SRC");
	char *p = buf[i++ % 4];
	snprintf(p, 512, "%s/tests/unit/data/certs/%s", src ? src : ".", name);
	return p;
}

/* A credential named by its file stem, trusting the RSA and EC test CAs. */
static void load(struct ike_cred *c, const char *stem)
{
	char cert[64], key[64], err[256];
	snprintf(cert, sizeof(cert), "%s.pem", stem);
	snprintf(key, sizeof(key), "%s.key", !strcmp(stem, "sub-chain") ? "sub" : stem);
	const char *cas[] = {path("ca-rsa.pem"), path("ca-ec.pem")};
	if (ike_cred_load(c, path(cert), path(key), cas, 2, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static X509 *cert_of(const char *stem)
{
	char name[64];
	snprintf(name, sizeof(name), "%s.pem", stem);
	FILE *f = fopen(path(name), "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void test_load_errors(void **state)
{
	struct ike_cred c;
	char err[256];
	const char *cas[] = {path("ca-rsa.pem")};
	assert_int_equal(ike_cred_load(&c, path("nonexistent.pem"), path("rsa.key"), cas, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nonexistent.pem: cannot open"));
	assert_null(c.cert);
	assert_int_equal(ike_cred_load(&c, path("rsa.pem"), path("p256.key"), cas, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "p256.key: key does not match"));
	assert_int_equal(ike_cred_load(&c, path("rsa.key"), path("rsa.key"), cas, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rsa.key: no certificate"));
	assert_int_equal(ike_cred_load(&c, path("rsa.pem"), path("rsa.pem"), cas, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rsa.pem: no unencrypted private key"));
	const char *bad_ca[] = {path("ca-rsa.pem"), path("octets.bin")};
	assert_int_equal(ike_cred_load(&c, path("rsa.pem"), path("rsa.key"), bad_ca, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "octets.bin: no certificate"));
	ike_cred_free(&c);
	ike_cred_free(&c); /* safe twice */

	load(&c, "sub-chain");
	assert_int_equal(sk_X509_num(c.chain), 1);
	assert_int_equal(sk_X509_num(c.cas), 2);
	ike_cred_free(&c);
}

/* Sign with each hash the key takes; verify; tampered octets, signature or a foreign key fail. */
static void round_trip(const char *stem, bool pss, const uint16_t *hashes, unsigned n)
{
	struct ike_cred c, other;
	load(&c, stem);
	load(&other, strcmp(stem, "p256") ? "p256" : "p384");
	c.rsa_pss = pss;
	for (unsigned i = 0; i < n; i++) {
		uint8_t auth[IKE_SIG_MAX], bad[sizeof(octets)];
		size_t len = sizeof(auth);
		assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, hashes[i], auth, &len), 0);
		assert_true(len > 1u + auth[0]);
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), 0);
		assert_int_equal(ike_cert_verify_method(c.cert, IKE_AUTH_DIGITAL_SIG, octets, OCTETS_LEN, auth, len), 0);
		memcpy(bad, octets, sizeof(bad));
		bad[5] ^= 1;
		assert_int_equal(ike_cert_verify(c.cert, bad, OCTETS_LEN, auth, len), -1);
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN - 1, auth, len), -1);
		assert_int_equal(ike_cert_verify(other.cert, octets, OCTETS_LEN, auth, len), -1);
		auth[len - 1] ^= 0x40;
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), -1);
		auth[len - 1] ^= 0x40;
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len - 1), -1);
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, 1u + auth[0]), -1); /* no signature */
		assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, auth[0]), -1);
		size_t small = 1u + auth[0] + 8;
		assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, hashes[i], auth, &small), -1);
	}
	ike_cred_free(&c);
	ike_cred_free(&other);
}

static void test_sign_verify(void **state)
{
	static const uint16_t sha2[] = {0, IKE_HASH_SHA2_256, IKE_HASH_SHA2_384, IKE_HASH_SHA2_512};
	static const uint16_t ident[] = {0, IKE_HASH_IDENTITY};
	round_trip("rsa", false, sha2, 4);
	round_trip("rsa", true, sha2, 4);
	round_trip("p256", false, sha2, 4);
	round_trip("p384", false, sha2, 4);
	round_trip("p521", false, sha2, 4);
	round_trip("ed25519", false, ident, 2);
}

static void test_wrong_algorithm(void **state)
{
	struct ike_cred c;
	uint8_t auth[IKE_SIG_MAX];
	size_t len = sizeof(auth);
	/* a key and hash that do not go together */
	load(&c, "ed25519");
	assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, IKE_HASH_SHA2_256, auth, &len), -1);
	ike_cred_free(&c);
	len = sizeof(auth);
	load(&c, "rsa");
	assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, IKE_HASH_IDENTITY, auth, &len), -1);
	len = sizeof(auth);
	assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, IKE_HASH_SHA1, auth, &len), -1);
	len = sizeof(auth);
	assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, IKE_HASH_SHA2_256, auth, &len), 0);
	assert_int_equal(auth[0], 15); /* sha256WithRSAEncryption with NULL parameters */
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), 0);

	/* the same signature labelled sha384WithRSAEncryption, ecdsa-with-SHA256, or sha1WithRSA */
	auth[1 + 14 - 2] = 0x0c;
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), -1);
	auth[1 + 14 - 2] = 0x05; /* sha1WithRSAEncryption: known to the world, not accepted here */
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), -1);
	auth[1 + 14 - 2] = 0x0b;
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), 0);

	static const uint8_t ecdsa256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
	uint8_t relabel[IKE_SIG_MAX];
	size_t sig_len = len - 16;
	relabel[0] = sizeof(ecdsa256);
	memcpy(relabel + 1, ecdsa256, sizeof(ecdsa256));
	memcpy(relabel + 1 + sizeof(ecdsa256), auth + 16, sig_len);
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, relabel, 1 + sizeof(ecdsa256) + sig_len), -1);

	/* an AlgorithmIdentifier length past the end, and zero */
	auth[0] = 0xff;
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, 200), -1);
	auth[0] = 0;
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), -1);
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, 0), -1);
	/* an ECDSA key's signature labelled for ECDSA but checked against the RSA certificate */
	struct ike_cred ec;
	load(&ec, "p256");
	len = sizeof(auth);
	assert_int_equal(ike_cert_sign(&ec, octets, OCTETS_LEN, IKE_HASH_SHA2_256, auth, &len), 0);
	assert_int_equal(ike_cert_verify(c.cert, octets, OCTETS_LEN, auth, len), -1);
	assert_int_equal(ike_cert_verify_method(ec.cert, 13, octets, OCTETS_LEN, auth, len), -1);
	ike_cred_free(&ec);
	ike_cred_free(&c);
}

static size_t slurp(const char *name, uint8_t *buf, size_t cap)
{
	char rel[128];
	snprintf(rel, sizeof(rel), "certs/%s", name);
	return testdata_load(rel, buf, cap);
}

/* Signatures made by the openssl CLI, wrapped in the AlgorithmIdentifiers of RFC 7427 Appendix A. */
static void test_openssl_signatures(void **state)
{
	static const uint8_t rsa256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
					 0x05, 0x00};
	static const uint8_t ecdsa384[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
	static const uint8_t ed25519[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
	/* RFC 7427 A.4.3: RSASSA-PSS, SHA-256, MGF1 with SHA-256, salt 32 */
	static const uint8_t pss256[] = {
		0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f,
		0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c,
		0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09,
		0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20};
	static const struct {
		const char *sig, *cert;
		const uint8_t *alg;
		size_t alg_len;
	} v[] = {
		{"openssl-rsa-sha256.sig", "rsa", rsa256, sizeof(rsa256)},
		{"openssl-rsa-pss-sha256.sig", "rsa", pss256, sizeof(pss256)},
		{"openssl-p256-sha384.sig", "p256", ecdsa384, sizeof(ecdsa384)},
		{"openssl-ed25519.sig", "ed25519", ed25519, sizeof(ed25519)},
	};
	uint8_t msg[256];
	assert_int_equal(slurp("octets.bin", msg, sizeof(msg)), OCTETS_LEN);
	assert_memory_equal(msg, octets, OCTETS_LEN);
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t auth[IKE_SIG_MAX];
		auth[0] = (uint8_t)v[i].alg_len;
		memcpy(auth + 1, v[i].alg, v[i].alg_len);
		size_t n = slurp(v[i].sig, auth + 1 + v[i].alg_len, sizeof(auth) - 1 - v[i].alg_len);
		assert_true(n > 0);
		X509 *x = cert_of(v[i].cert);
		assert_int_equal(ike_cert_verify(x, octets, OCTETS_LEN, auth, 1 + v[i].alg_len + n), 0);
		auth[1 + v[i].alg_len + n / 2] ^= 1;
		assert_int_equal(ike_cert_verify(x, octets, OCTETS_LEN, auth, 1 + v[i].alg_len + n), -1);
		X509_free(x);
	}
	/* AUTH method 1: the bare PKCS#1 v1.5 SHA-1 signature */
	uint8_t sig[512];
	size_t n = slurp("openssl-rsa-sha1.sig", sig, sizeof(sig));
	X509 *x = cert_of("rsa"), *ec = cert_of("p256");
	assert_int_equal(ike_cert_verify_method(x, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN, sig, n), 0);
	assert_int_equal(ike_cert_verify_method(x, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN - 1, sig, n), -1);
	assert_int_equal(ike_cert_verify_method(ec, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN, sig, n), -1);
	n = slurp("openssl-rsa-sha256.sig", sig, sizeof(sig)); /* SHA-256 is not method 1 */
	assert_int_equal(ike_cert_verify_method(x, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN, sig, n), -1);

	/* PKCS#1 v1.5 is deterministic: our signatures must be openssl's, byte for byte */
	struct ike_cred c;
	uint8_t ours[IKE_SIG_MAX];
	size_t ours_len = sizeof(ours);
	load(&c, "rsa");
	assert_int_equal(ike_cert_sign_method(&c, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN, ours, &ours_len), 0);
	n = slurp("openssl-rsa-sha1.sig", sig, sizeof(sig));
	assert_int_equal(ours_len, n);
	assert_memory_equal(ours, sig, n);
	ours_len = sizeof(ours);
	assert_int_equal(ike_cert_sign(&c, octets, OCTETS_LEN, IKE_HASH_SHA2_256, ours, &ours_len), 0);
	n = slurp("openssl-rsa-sha256.sig", sig, sizeof(sig));
	assert_int_equal(ours_len, 1 + sizeof(rsa256) + n);
	assert_memory_equal(ours + 1, rsa256, sizeof(rsa256));
	assert_memory_equal(ours + 1 + sizeof(rsa256), sig, n);
	ours_len = sizeof(ours); /* method 14 through sign_method: the key's default hash, SHA-256 */
	assert_int_equal(ike_cert_sign_method(&c, IKE_AUTH_DIGITAL_SIG, octets, OCTETS_LEN, ours, &ours_len), 0);
	assert_memory_equal(ours + 1 + sizeof(rsa256), sig, n);
	ours_len = sizeof(ours);
	assert_int_equal(ike_cert_sign_method(&c, IKE_AUTH_ECDSA_SHA256_P256, octets, OCTETS_LEN, ours, &ours_len), -1);
	ike_cred_free(&c);
	X509_free(x);
	X509_free(ec);
}

/* RFC 4754, independently of ike_cert_sign_method: sign through EVP, re-encode the DER signature as r | s of the curve's size. */
static size_t raw_ecdsa(EVP_PKEY *k, const EVP_MD *md, size_t half, uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[256];
	size_t der_len = sizeof(der);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(ctx, der, &der_len, octets, OCTETS_LEN), 1);
	EVP_MD_CTX_free(ctx);
	const uint8_t *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	assert_non_null(s);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(s), out, (int)half), (int)half);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(s), out + half, (int)half), (int)half);
	ECDSA_SIG_free(s);
	return 2 * half;
}

static void test_rfc4754(void **state)
{
	static const struct {
		const char *stem;
		uint8_t method;
		size_t half;
	} v[] = {{"p256", IKE_AUTH_ECDSA_SHA256_P256, 32},
		 {"p384", IKE_AUTH_ECDSA_SHA384_P384, 48},
		 {"p521", IKE_AUTH_ECDSA_SHA512_P521, 66}};
	const EVP_MD *md[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
	for (unsigned i = 0; i < 3; i++) {
		struct ike_cred c;
		uint8_t sig[160];
		load(&c, v[i].stem);
		size_t n = raw_ecdsa(c.key, md[i], v[i].half, sig);
		assert_int_equal(ike_cert_verify_method(c.cert, v[i].method, octets, OCTETS_LEN, sig, n), 0);
		assert_int_equal(ike_cert_verify_method(c.cert, v[i].method, octets, OCTETS_LEN - 1, sig, n), -1);
		assert_int_equal(ike_cert_verify_method(c.cert, v[i].method, octets, OCTETS_LEN, sig, n - 1), -1);
		/* the method names the curve: another method on this key fails */
		assert_int_equal(ike_cert_verify_method(c.cert, v[(i + 1) % 3].method, octets, OCTETS_LEN, sig, n), -1);
		sig[3] ^= 1;
		assert_int_equal(ike_cert_verify_method(c.cert, v[i].method, octets, OCTETS_LEN, sig, n), -1);
		/* our own r | s */
		size_t len = sizeof(sig);
		assert_int_equal(ike_cert_sign_method(&c, v[i].method, octets, OCTETS_LEN, sig, &len), 0);
		assert_int_equal(len, 2 * v[i].half);
		assert_int_equal(ike_cert_verify_method(c.cert, v[i].method, octets, OCTETS_LEN, sig, len), 0);
		len = sizeof(sig);
		assert_int_equal(ike_cert_sign_method(&c, v[(i + 1) % 3].method, octets, OCTETS_LEN, sig, &len), -1);
		assert_int_equal(ike_cert_sign_method(&c, IKE_AUTH_RSA_SIG, octets, OCTETS_LEN, sig, &len), -1);
		len = 2 * v[i].half - 1;
		assert_int_equal(ike_cert_sign_method(&c, v[i].method, octets, OCTETS_LEN, sig, &len), -1);
		ike_cred_free(&c);
	}
}

static void test_sighash(void **state)
{
	uint8_t buf[16];
	size_t n = ike_sighash_build(buf, sizeof(buf));
	static const uint8_t want[] = {0, 2, 0, 3, 0, 4, 0, 5};
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, n);
	assert_int_equal(ike_sighash_build(buf, 7), 0);

	uint32_t mask;
	assert_int_equal(ike_sighash_parse(want, sizeof(want), &mask), 0);
	assert_int_equal(mask, 1u << 2 | 1u << 3 | 1u << 4 | 1u << 5);
	static const uint8_t odd[] = {0, 2, 0};
	assert_int_equal(ike_sighash_parse(odd, 3, &mask), -1);
	assert_int_equal(ike_sighash_parse(odd, 0, &mask), -1);
	static const uint8_t unknown[] = {0xff, 0xff, 0, 40, 0, 1};
	assert_int_equal(ike_sighash_parse(unknown, sizeof(unknown), &mask), 0);
	assert_int_equal(mask, 1u << 1);

	static const struct {
		const char *stem;
		uint32_t peer;
		uint16_t want;
	} v[] = {
		{"rsa", 1u << 2 | 1u << 3 | 1u << 4, IKE_HASH_SHA2_256},
		{"rsa", 1u << 4, IKE_HASH_SHA2_512},
		{"rsa", 1u << 1 | 1u << 5, 0},
		{"p256", 1u << 2 | 1u << 3, IKE_HASH_SHA2_256},
		{"p384", 1u << 2 | 1u << 3 | 1u << 4, IKE_HASH_SHA2_384},
		{"p384", 1u << 2, IKE_HASH_SHA2_256},
		{"p521", 1u << 2 | 1u << 3 | 1u << 4, IKE_HASH_SHA2_512},
		{"ed25519", 1u << 2 | 1u << 5, IKE_HASH_IDENTITY},
		{"ed25519", 1u << 2 | 1u << 3, 0},
	};
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ike_cred c;
		load(&c, v[i].stem);
		assert_int_equal(ike_sighash_choose(&c, v[i].peer), v[i].want);
		ike_cred_free(&c);
	}
}

static void test_cert_payload(void **state)
{
	struct ike_cred c;
	load(&c, "rsa");
	static uint8_t body[4096];
	size_t n = ike_cert_build(c.cert, body, sizeof(body));
	assert_true(n > 100);
	assert_int_equal(body[0], IKE_CERT_ENC_X509_SIG);
	assert_int_equal(ike_cert_build(c.cert, body, n - 1), 0);
	X509 *x = ike_cert_parse(body, n);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, c.cert), 0);
	X509_free(x);
	assert_null(ike_cert_parse(body, n - 1));     /* truncated */
	body[n] = 0;
	assert_null(ike_cert_parse(body, n + 1));     /* trailing byte */
	assert_null(ike_cert_parse(body, 1));
	assert_null(ike_cert_parse(body, 0));
	body[0] = 12;                                 /* Hash and URL: not ours */
	assert_null(ike_cert_parse(body, n));
	ike_cred_free(&c);
}

static void test_certreq(void **state)
{
	/* SHA-1 of each CA's SubjectPublicKeyInfo, by `openssl x509 -pubkey | openssl pkey -pubin
	 * -outform DER | sha1sum` */
	static const uint8_t ca_rsa[] = {0x1f, 0xec, 0x77, 0x82, 0xc7, 0xbc, 0xd8, 0xd3, 0x70, 0x68,
					 0x9d, 0xa9, 0x51, 0xb6, 0xd6, 0x97, 0xec, 0x89, 0x9a, 0x98};
	static const uint8_t ca_ec[] = {0xa2, 0x2b, 0x7e, 0x95, 0xc8, 0xe9, 0xab, 0xf4, 0xa8, 0x85,
					0x40, 0x1c, 0x21, 0xe7, 0x56, 0xc4, 0x25, 0x38, 0x19, 0x59};
	static const uint8_t ca_sub[] = {0x86, 0x99, 0xb4, 0x2d, 0xae, 0x89, 0xcb, 0x0b, 0x78, 0x91,
					 0x69, 0x45, 0xa0, 0x4d, 0x96, 0xbb, 0xd8, 0x8c, 0xce, 0xc5};
	struct ike_cred c, sub;
	load(&c, "p256");
	uint8_t body[64], req[1 + 20];
	size_t n = ike_certreq_build(&c, body, sizeof(body));
	assert_int_equal(n, 41);
	assert_int_equal(body[0], IKE_CERT_ENC_X509_SIG);
	assert_memory_equal(body + 1, ca_rsa, 20);
	assert_memory_equal(body + 21, ca_ec, 20);
	assert_int_equal(ike_certreq_build(&c, body, 40), 0);

	const uint8_t *h;
	size_t nh;
	assert_int_equal(ike_certreq_parse(body, n, &h, &nh), IKE_CERT_ENC_X509_SIG);
	assert_int_equal(nh, 2);
	assert_ptr_equal(h, body + 1);
	assert_int_equal(ike_certreq_parse(body, n - 1, &h, &nh), -1);
	assert_int_equal(ike_certreq_parse(body, 0, &h, &nh), -1);

	/* p256 is issued by the EC CA: a request for it is for us, one for the RSA CA is not */
	assert_true(ike_certreq_wants(&c, body, n));
	req[0] = IKE_CERT_ENC_X509_SIG;
	memcpy(req + 1, ca_rsa, 20);
	assert_false(ike_certreq_wants(&c, req, sizeof(req)));
	memcpy(req + 1, ca_ec, 20);
	assert_true(ike_certreq_wants(&c, req, sizeof(req)));
	assert_true(ike_certreq_wants(&c, req, 1));        /* empty: any */
	assert_false(ike_certreq_wants(&c, req, 20));      /* 19 bytes of hash */
	req[0] = 12;
	assert_false(ike_certreq_wants(&c, req, sizeof(req)));
	assert_int_equal(ike_certreq_parse(req, sizeof(req), &h, &nh), 12);
	assert_int_equal(nh, 0);

	/* sub sends the intermediate ca-sub, which the RSA CA issued: both requests are for it */
	load(&sub, "sub-chain");
	req[0] = IKE_CERT_ENC_X509_SIG;
	memcpy(req + 1, ca_sub, 20);
	assert_true(ike_certreq_wants(&sub, req, sizeof(req)));
	memcpy(req + 1, ca_rsa, 20);
	assert_true(ike_certreq_wants(&sub, req, sizeof(req)));
	memcpy(req + 1, ca_ec, 20);
	assert_false(ike_certreq_wants(&sub, req, sizeof(req)));
	ike_cred_free(&sub);
	ike_cred_free(&c);
}

static void test_chain(void **state)
{
	struct ike_cred c;
	char err[256];
	load(&c, "rsa");
	X509 *p256 = cert_of("p256"), *ed = cert_of("ed25519"), *foreign = cert_of("foreign"), *sub = cert_of("sub"),
	     *ca_sub = cert_of("ca-sub");
	assert_int_equal(ike_cert_verify_chain(&c, p256, NULL, T2030, err, sizeof(err)), 0);
	assert_int_equal(ike_cert_verify_chain(&c, ed, NULL, T2030, err, sizeof(err)), 0);
	assert_int_equal(ike_cert_verify_chain(&c, c.cert, NULL, T2030, err, sizeof(err)), 0);
	assert_int_equal(ike_cert_verify_chain(&c, p256, NULL, T2050, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expired"));
	assert_int_equal(ike_cert_verify_chain(&c, p256, NULL, (time_t)1577836800 /* 2020 */, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not yet valid"));
	assert_int_equal(ike_cert_verify_chain(&c, foreign, NULL, T2030, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "CN=foreign"));

	/* the intermediate has to come from the peer's CERT payloads */
	assert_int_equal(ike_cert_verify_chain(&c, sub, NULL, T2030, err, sizeof(err)), -1);
	STACK_OF(X509) *inter = sk_X509_new_null();
	sk_X509_push(inter, ca_sub);
	assert_int_equal(ike_cert_verify_chain(&c, sub, inter, T2030, err, sizeof(err)), 0);
	sk_X509_free(inter);

	/* trusting only the foreign CA: none of ours verify */
	struct ike_cred f;
	const char *cas[] = {path("ca-foreign.pem")};
	assert_int_equal(ike_cred_load(&f, path("foreign.pem"), path("foreign.key"), cas, 1, err, sizeof(err)), 0);
	assert_int_equal(ike_cert_verify_chain(&f, foreign, NULL, T2030, err, sizeof(err)), 0);
	assert_int_equal(ike_cert_verify_chain(&f, p256, NULL, T2030, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unable to get local issuer certificate"));
	ike_cred_free(&f);

	X509_free(p256);
	X509_free(ed);
	X509_free(foreign);
	X509_free(sub);
	X509_free(ca_sub);
	ike_cred_free(&c);
}

static void test_identity(void **state)
{
	struct ike_cred c;
	load(&c, "rsa");
	X509 *x = c.cert;

	uint8_t dn[256];
	size_t dn_len = ike_cred_own_id(&c, dn, sizeof(dn));
	assert_true(dn_len > 0);
	assert_int_equal(ike_cred_own_id(&c, dn, dn_len - 1), 0);
	assert_true(ike_cert_match_id(x, IKE_ID_DER_ASN1_DN, dn, dn_len));
	assert_false(ike_cert_match_id(x, IKE_ID_DER_ASN1_DN, dn, dn_len - 1));
	/* the same name in other string types and case compares equal canonically */
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "C", MBSTRING_UTF8, (const uint8_t *)"xx", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const uint8_t *)"baton  TEST", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const uint8_t *)"RSA", -1, -1, 0);
	uint8_t other[256], *p = other;
	int ol = i2d_X509_NAME(n, &p);
	assert_true(ol > 0);
	assert_true(ol != (int)dn_len || memcmp(other, dn, dn_len));
	assert_true(ike_cert_match_id(x, IKE_ID_DER_ASN1_DN, other, (size_t)ol));
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const uint8_t *)"extra", -1, -1, 0);
	p = other;
	ol = i2d_X509_NAME(n, &p);
	assert_false(ike_cert_match_id(x, IKE_ID_DER_ASN1_DN, other, (size_t)ol));
	X509_NAME_free(n);

	static const uint8_t v4[] = {172, 16, 0, 1}, v4b[] = {172, 16, 0, 2};
	static const uint8_t v6[] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const struct {
		uint8_t type;
		const void *id;
		size_t len;
		bool ok;
	} v[] = {
		{IKE_ID_FQDN, "gw.baton.test", 13, true},
		{IKE_ID_FQDN, "GW.Baton.Test", 13, true},
		{IKE_ID_FQDN, "gw.baton.tes", 12, false},
		{IKE_ID_FQDN, "gw.baton.test.", 14, false},
		{IKE_ID_FQDN, "rsa", 3, false},          /* the subject CN does not count */
		{IKE_ID_FQDN, "gw.baton.test\0x", 15, false},
		{IKE_ID_FQDN, "", 0, false},
		{IKE_ID_RFC822, "rsa@baton.test", 14, true},
		{IKE_ID_RFC822, "rsa@baton.tes", 13, false},
		{IKE_ID_RFC822, "gw.baton.test", 13, false},
		{IKE_ID_IPV4, v4, 4, true},
		{IKE_ID_IPV4, v4b, 4, false},
		{IKE_ID_IPV4, v4, 3, false},
		{IKE_ID_IPV6, v6, 16, true},
		{IKE_ID_IPV6, v6, 4, false},
		{IKE_ID_IPV4, v6, 16, false},
		{IKE_ID_KEY_ID, "gw.baton.test", 13, false},
	};
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (ike_cert_match_id(x, v[i].type, v[i].id, v[i].len) != v[i].ok)
			fail_msg("identity case %u", i);

	/* another certificate's SANs and name */
	X509 *p256 = cert_of("p256");
	assert_false(ike_cert_match_id(p256, IKE_ID_FQDN, "gw.baton.test", 13));
	assert_true(ike_cert_match_id(p256, IKE_ID_FQDN, "p256.baton.test", 15));
	assert_true(ike_cert_match_id(p256, IKE_ID_RFC822, "p256@baton.test", 15));
	assert_false(ike_cert_match_id(p256, IKE_ID_DER_ASN1_DN, dn, dn_len));
	X509_free(p256);
	ike_cred_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_errors),  cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_wrong_algorithm), cmocka_unit_test(test_openssl_signatures),
		cmocka_unit_test(test_rfc4754),      cmocka_unit_test(test_sighash),
		cmocka_unit_test(test_cert_payload), cmocka_unit_test(test_certreq),
		cmocka_unit_test(test_chain),        cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
