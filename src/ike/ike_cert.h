/* ike_cert.h — certificate authentication for IKEv2: credentials from PEM files, AUTH signatures
 * (RFC 7427 Digital Signature, and the classic RFC 7296 / RFC 4754 methods), the
 * SIGNATURE_HASH_ALGORITHMS notify, CERT and CERTREQ payload bodies, and peer chain and identity
 * checks. All crypto goes through OpenSSL 3 (EVP, X509); nothing here does I/O except the loader. */
#ifndef BT_IKE_CERT_H
#define BT_IKE_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* AUTH methods (RFC 7296 3.8, RFC 4754, RFC 7427). */
enum ike_auth_method {
	IKE_AUTH_RSA_SIG = 1,        /* PKCS#1 v1.5 with SHA-1 */
	IKE_AUTH_SHARED_KEY = 2,
	IKE_AUTH_ECDSA_SHA256_P256 = 9,
	IKE_AUTH_ECDSA_SHA384_P384 = 10,
	IKE_AUTH_ECDSA_SHA512_P521 = 11,
	IKE_AUTH_DIGITAL_SIG = 14,   /* RFC 7427 */
};

/* Hash algorithm IDs of SIGNATURE_HASH_ALGORITHMS (RFC 7427 4, IANA "Hash Algorithms"). */
enum ike_hash_alg {
	IKE_HASH_SHA1 = 1,
	IKE_HASH_SHA2_256 = 2,
	IKE_HASH_SHA2_384 = 3,
	IKE_HASH_SHA2_512 = 4,
	IKE_HASH_IDENTITY = 5, /* no pre-hash: Ed25519 */
};

#define IKE_CERT_ENC_X509_SIG 4  /* CERT/CERTREQ encoding: X.509 Certificate - Signature */
#define IKE_CERTREQ_HASH_LEN 20  /* SHA-1 of a CA's SubjectPublicKeyInfo */
#define IKE_SIG_MAX 1024         /* AUTH data of method 14: up to RSA-4096 plus AlgorithmIdentifier */

/* Our side: end-entity certificate, the intermediates we send with it, our private key, and the
 * CAs we trust for peers. All owned; ike_cred_free releases them. */
struct ike_cred {
	X509 *cert;
	STACK_OF(X509) *chain; /* intermediates, leaf first order as in the PEM file; may be empty */
	EVP_PKEY *key;
	STACK_OF(X509) *cas;   /* trusted CAs (CERTREQ hashes) */
	X509_STORE *trust;     /* the same CAs, for chain verification */
	bool rsa_pss;          /* sign with RSASSA-PSS rather than PKCS#1 v1.5 (RSA keys only) */
};

/* Load cert_file (our certificate, optionally followed by intermediates), key_file (RSA, EC P-256/
 * P-384/P-521 or Ed25519, unencrypted PEM) and each of ca_files (one or more CA certificates each).
 * The key must match the certificate. On failure returns -1, leaves *c empty and writes which file
 * and what failed into err. */
int ike_cred_load(struct ike_cred *c, const char *cert_file, const char *key_file, const char *const *ca_files,
		  size_t n_ca, char *err, size_t err_len);
/* Without cert_file (and key_file NULL) only the CAs are loaded: for a side that authenticates
 * with a shared key but verifies the peer's certificate. */
/* Make dst share src's certificates, key and trust store (reference counts raised), so that dst
 * outlives src: a session keeps its credentials across a reload that frees the configuration.
 * Returns 0 or -1 (out of memory, dst left empty). ike_cred_free releases dst's references. */
int ike_cred_ref(struct ike_cred *dst, const struct ike_cred *src);
/* Free everything; OpenSSL clears private key material as it frees it. Safe on a zeroed struct. */
void ike_cred_free(struct ike_cred *c);

/* Our default identity: the subject DN of our certificate as DER (ID_DER_ASN1_DN). Returns the
 * length, or 0 if it does not fit in cap. */
size_t ike_cred_own_id(const struct ike_cred *c, uint8_t *out, size_t cap);

/* --- SIGNATURE_HASH_ALGORITHMS (RFC 7427 4) -------------------------------------------------- */

/* Our list (notify data: 16-bit IDs). Returns the length, or 0 if cap is too small. */
size_t ike_sighash_build(uint8_t *out, size_t cap);
/* The peer's list as a bit mask (bit n = hash ID n, IDs above 31 ignored). Returns -1 if the
 * data is not a non-empty sequence of 16-bit IDs. */
int ike_sighash_parse(const uint8_t *data, size_t len, uint32_t *mask);
/* The hash we sign with for our key, given the peer's mask: IDENTITY for Ed25519, otherwise the
 * SHA-2 that matches the key's strength first. 0 if the peer offers none that fits. */
uint16_t ike_sighash_choose(const struct ike_cred *c, uint32_t peer_mask);

/* --- AUTH ------------------------------------------------------------------------------------ */

/* AUTH method 14 data (after the method byte and reserved octets): the AlgorithmIdentifier's
 * length byte, its DER, and the signature over octets. hash is an ike_hash_alg (IDENTITY for
 * Ed25519; 0 = the default for the key). *out_len: capacity in, length out. Returns 0 or -1. */
int ike_cert_sign(const struct ike_cred *c, const uint8_t *octets, size_t len, uint16_t hash, uint8_t *out,
		  size_t *out_len);
/* AUTH data for any signature method, for peers that sent no SIGNATURE_HASH_ALGORITHMS: 1 (RSA
 * keys, PKCS#1 v1.5 with SHA-1), 9/10/11 (EC keys on the curve the method names, r | s), or 14 with
 * the key's default hash. *out_len: capacity in, length out. Returns 0 or -1. */
int ike_cert_sign_method(const struct ike_cred *c, uint8_t method, const uint8_t *octets, size_t len, uint8_t *out,
			 size_t *out_len);
/* The method to sign with for a peer that sent no SIGNATURE_HASH_ALGORITHMS: 1 for RSA keys, 9/10/11
 * for EC keys by curve, 14 for Ed25519 (which has no classic method). */
uint8_t ike_cert_classic_method(const struct ike_cred *c);
/* Verify AUTH method 14 data with the peer's (already verified) certificate. Only the
 * AlgorithmIdentifiers we know are accepted, and only with a key of the matching type. */
int ike_cert_verify(X509 *peer, const uint8_t *octets, size_t len, const uint8_t *auth, size_t auth_len);
/* Verify AUTH data of any signature method: 1 (RSA, SHA-1), 9/10/11 (RFC 4754 ECDSA, r|s with the
 * curve the method names) or 14. Returns 0 or -1. */
int ike_cert_verify_method(X509 *peer, uint8_t method, const uint8_t *octets, size_t len, const uint8_t *auth,
			   size_t auth_len);

/* --- CERT and CERTREQ payload bodies --------------------------------------------------------- */

/* CERT body: encoding 4 then the certificate's DER. Returns the length, or 0 if cap is too small. */
size_t ike_cert_build(X509 *x, uint8_t *out, size_t cap);
/* Parse a CERT body of encoding 4 whose DER is exactly one certificate. Returns a new X509 (the
 * caller frees it) or NULL. */
X509 *ike_cert_parse(const uint8_t *body, size_t len);

/* CERTREQ body: encoding 4 then the SHA-1 of each trusted CA's SubjectPublicKeyInfo. Returns the
 * length, or 0 if cap is too small or we trust no CA. */
size_t ike_certreq_build(const struct ike_cred *c, uint8_t *out, size_t cap);
/* Borrow the hashes of a CERTREQ body: *n hashes of IKE_CERTREQ_HASH_LEN bytes at *hashes. Returns
 * the encoding (>= 0), or -1 if malformed. Encodings other than 4 come back with *n = 0. */
int ike_certreq_parse(const uint8_t *body, size_t len, const uint8_t **hashes, size_t *n);
/* Does this CERTREQ ask for a CA our certificate chains to (an intermediate we send, or a CA we
 * hold)? An empty encoding-4 request asks for any. */
bool ike_certreq_wants(const struct ike_cred *c, const uint8_t *body, size_t len);

/* --- the peer -------------------------------------------------------------------------------- */

/* Verify the peer's certificate up to one of our trusted CAs, with intermediates from its CERT
 * payloads (may be NULL), as of time now. Returns 0, or -1 with the reason in err. */
int ike_cert_verify_chain(const struct ike_cred *c, X509 *peer, STACK_OF(X509) *intermediates, time_t now,
			  char *err, size_t err_len);
/* Does the peer's IKE identity match its certificate? ID_DER_ASN1_DN against the subject
 * (canonical comparison), ID_FQDN / ID_RFC822_ADDR / ID_IPV4_ADDR / ID_IPV6_ADDR against a
 * subjectAltName entry of that kind (exact, no wildcards, never the subject CN). */
bool ike_cert_match_id(X509 *cert, uint8_t id_type, const void *id, size_t id_len);

/* Do two DER DNs name the same entity (X.520 comparison as OpenSSL canonicalises it: string types,
 * letter case and repeated spaces aside)? False if either does not parse. */
bool ike_dn_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

/* --- showing identities ---------------------------------------------------------------------- */

/* A DN as strongSwan prints it: "C=CH, O=baton, CN=gw". Returns out ("" if it does not fit). */
char *ike_dn_str(const X509_NAME *name, char *out, size_t cap);
/* An ID payload's data as strongSwan writes identities: an address, a name, user@domain, a DN,
 * or @#hex for key IDs and unknown types. Returns out. */
char *ike_id_str(uint8_t id_type, const uint8_t *id, size_t id_len, char *out, size_t cap);

#endif
