/* ike_cert.c — certificate authentication over OpenSSL 3: credentials, AUTH signatures (RFC 7427,
 * RFC 7296 method 1, RFC 4754), SIGNATURE_HASH_ALGORITHMS, CERT/CERTREQ bodies, peer checks. */
#include "ike/ike_cert.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "ike/ike_wire.h"
#include "util/cursor.h"

/* --- the AlgorithmIdentifiers of RFC 7427 Appendix A ------------------------------------------- */

enum key_kind { KEY_RSA, KEY_EC, KEY_ED25519 };

struct sig_alg {
	const uint8_t *der;
	uint8_t der_len;
	enum key_kind kind;
	uint16_t hash; /* ike_hash_alg */
	bool pss;
	bool sign;     /* the form we send; the others are accepted only */
};

#define OID_PKCS1 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01
#define OID_SHA2 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02
static const uint8_t rsa256[] = {0x30, 0x0d, OID_PKCS1, 0x0b, 0x05, 0x00};
static const uint8_t rsa384[] = {0x30, 0x0d, OID_PKCS1, 0x0c, 0x05, 0x00};
static const uint8_t rsa512[] = {0x30, 0x0d, OID_PKCS1, 0x0d, 0x05, 0x00};
/* the same without the NULL parameters, which some encoders leave out */
static const uint8_t rsa256n[] = {0x30, 0x0b, OID_PKCS1, 0x0b};
static const uint8_t rsa384n[] = {0x30, 0x0b, OID_PKCS1, 0x0c};
static const uint8_t rsa512n[] = {0x30, 0x0b, OID_PKCS1, 0x0d};
#define OID_ECDSA_SHA2 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03
static const uint8_t ecdsa256[] = {0x30, 0x0a, OID_ECDSA_SHA2, 0x02};
static const uint8_t ecdsa384[] = {0x30, 0x0a, OID_ECDSA_SHA2, 0x03};
static const uint8_t ecdsa512[] = {0x30, 0x0a, OID_ECDSA_SHA2, 0x04};
static const uint8_t ed25519[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
/* RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash, trailer field default */
#define PSS(h, salt)                                                                                           \
	{0x30, 0x41, OID_PKCS1, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, OID_SHA2, h, 0x05, 0x00, 0xa1, 0x1c, 0x30,  \
	 0x1a, OID_PKCS1, 0x08, 0x30, 0x0d, OID_SHA2, h, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, salt}
static const uint8_t pss256[] = PSS(0x01, 0x20);
static const uint8_t pss384[] = PSS(0x02, 0x30);
static const uint8_t pss512[] = PSS(0x03, 0x40);

#define ALG(a, k, h, p, s) {a, sizeof(a), k, h, p, s}
static const struct sig_alg sig_algs[] = {
	ALG(rsa256, KEY_RSA, IKE_HASH_SHA2_256, false, true),
	ALG(rsa384, KEY_RSA, IKE_HASH_SHA2_384, false, true),
	ALG(rsa512, KEY_RSA, IKE_HASH_SHA2_512, false, true),
	ALG(rsa256n, KEY_RSA, IKE_HASH_SHA2_256, false, false),
	ALG(rsa384n, KEY_RSA, IKE_HASH_SHA2_384, false, false),
	ALG(rsa512n, KEY_RSA, IKE_HASH_SHA2_512, false, false),
	ALG(pss256, KEY_RSA, IKE_HASH_SHA2_256, true, true),
	ALG(pss384, KEY_RSA, IKE_HASH_SHA2_384, true, true),
	ALG(pss512, KEY_RSA, IKE_HASH_SHA2_512, true, true),
	ALG(ecdsa256, KEY_EC, IKE_HASH_SHA2_256, false, true),
	ALG(ecdsa384, KEY_EC, IKE_HASH_SHA2_384, false, true),
	ALG(ecdsa512, KEY_EC, IKE_HASH_SHA2_512, false, true),
	ALG(ed25519, KEY_ED25519, IKE_HASH_IDENTITY, false, true),
};

static const EVP_MD *hash_md(uint16_t hash)
{
	switch (hash) {
	case IKE_HASH_SHA1: return EVP_sha1();
	case IKE_HASH_SHA2_256: return EVP_sha256();
	case IKE_HASH_SHA2_384: return EVP_sha384();
	case IKE_HASH_SHA2_512: return EVP_sha512();
	default: return NULL;
	}
}

/* The key's kind, or -1 for one we do not use (including RSA-PSS-restricted and DSA keys). */
static int key_kind(const EVP_PKEY *k)
{
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA: return KEY_RSA;
	case EVP_PKEY_EC: return KEY_EC;
	case EVP_PKEY_ED25519: return KEY_ED25519;
	default: return -1;
	}
}

/* An EC key's curve as its NID, or NID_undef. */
static int ec_curve(const EVP_PKEY *k)
{
	char name[64];
	size_t len;
	if (key_kind(k) != KEY_EC || !EVP_PKEY_get_group_name(k, name, sizeof(name), &len))
		return NID_undef;
	return OBJ_txt2nid(name);
}

/* One-shot sign or verify of msg with md (NULL for Ed25519), PKCS#1 v1.5 or PSS for RSA. */
static int sig_op(EVP_PKEY *k, bool sign, const EVP_MD *md, bool pss, const uint8_t *msg, size_t len,
		  uint8_t *sig, size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ret = -1;
	if (!ctx)
		return -1;
	if ((sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, k) : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k)) != 1)
		goto out;
	if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, EVP_MD_get_size(md)) != 1))
		goto out;
	if (sign) {
		size_t need;
		if (EVP_DigestSign(ctx, NULL, &need, msg, len) != 1 || need > *sig_len ||
		    EVP_DigestSign(ctx, sig, sig_len, msg, len) != 1)
			goto out;
	} else if (EVP_DigestVerify(ctx, sig, *sig_len, msg, len) != 1) {
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error(); /* a failed verification is an answer, not an error to keep around */
	return ret;
}

/* --- credentials ------------------------------------------------------------------------------- */

static void load_err(char *err, size_t err_len, const char *file, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e ? ERR_reason_error_string(e) : NULL;
	if (err && err_len)
		snprintf(err, err_len, "%s: %s%s%s", file, what, why ? ": " : "", why ? why : "");
	ERR_clear_error();
}

/* Every certificate in a PEM file, in order. NULL (and err) if none or unreadable. */
static STACK_OF(X509) *read_certs(const char *file, char *err, size_t err_len)
{
	BIO *b = BIO_new_file(file, "r");
	if (!b) {
		load_err(err, err_len, file, "cannot open");
		return NULL;
	}
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;
	while (sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	unsigned long e = ERR_peek_last_error();
	bool eof = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
	BIO_free(b);
	if (!sk || sk_X509_num(sk) == 0 || (e && !eof)) {
		load_err(err, err_len, file, sk && sk_X509_num(sk) ? "bad certificate after the first" : "no certificate");
		sk_X509_pop_free(sk, X509_free);
		return NULL;
	}
	ERR_clear_error();
	return sk;
}

static int no_passphrase(char *buf, int size, int rw, void *u) { return -1; }

int ike_cred_load(struct ike_cred *c, const char *cert_file, const char *key_file, const char *const *ca_files,
		  size_t n_ca, char *err, size_t err_len)
{
	memset(c, 0, sizeof(*c));
	if (!cert_file)
		goto cas; /* only CAs: we authenticate otherwise but verify the peer's certificate */
	STACK_OF(X509) *sk = read_certs(cert_file, err, err_len);
	if (!sk)
		goto fail;
	c->cert = sk_X509_shift(sk);
	c->chain = sk;

	BIO *b = BIO_new_file(key_file, "r");
	if (!b) {
		load_err(err, err_len, key_file, "cannot open");
		goto fail;
	}
	c->key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (!c->key) {
		load_err(err, err_len, key_file, "no unencrypted private key");
		goto fail;
	}
	int kind = key_kind(c->key), nid = ec_curve(c->key);
	if (kind < 0 || (kind == KEY_RSA && EVP_PKEY_get_bits(c->key) < 2048) ||
	    (kind == KEY_EC && nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 && nid != NID_secp521r1)) {
		load_err(err, err_len, key_file, "key type not supported (RSA >= 2048, EC P-256/P-384/P-521, Ed25519)");
		goto fail;
	}
	if (X509_check_private_key(c->cert, c->key) != 1) {
		load_err(err, err_len, key_file, "key does not match the certificate");
		goto fail;
	}

cas:
	c->cas = sk_X509_new_null();
	c->trust = X509_STORE_new();
	if (!c->cas || !c->trust) {
		load_err(err, err_len, "ike_cred_load", "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_ca; i++) {
		STACK_OF(X509) *cas = read_certs(ca_files[i], err, err_len);
		if (!cas)
			goto fail;
		X509 *x;
		while ((x = sk_X509_shift(cas))) {
			if (X509_STORE_add_cert(c->trust, x) != 1 || !sk_X509_push(c->cas, x)) {
				X509_free(x);
				sk_X509_pop_free(cas, X509_free);
				load_err(err, err_len, ca_files[i], "cannot add CA");
				goto fail;
			}
		}
		sk_X509_free(cas);
	}
	return 0;
fail:
	ike_cred_free(c);
	return -1;
}

/* A copy of each stack with every certificate's reference count raised. */
static STACK_OF(X509) *stack_ref(STACK_OF(X509) *sk)
{
	STACK_OF(X509) *d = sk ? sk_X509_dup(sk) : NULL;
	for (int i = 0; d && i < sk_X509_num(d); i++)
		X509_up_ref(sk_X509_value(d, i));
	return d;
}

int ike_cred_ref(struct ike_cred *dst, const struct ike_cred *src)
{
	memset(dst, 0, sizeof(*dst));
	if ((src->cert && !X509_up_ref(src->cert)) || (src->key && !EVP_PKEY_up_ref(src->key)) ||
	    (src->trust && !X509_STORE_up_ref(src->trust)))
		return -1; /* cannot fail with OpenSSL 3's atomic counters */
	dst->cert = src->cert, dst->key = src->key, dst->trust = src->trust, dst->rsa_pss = src->rsa_pss;
	dst->chain = stack_ref(src->chain);
	dst->cas = stack_ref(src->cas);
	if ((src->chain && !dst->chain) || (src->cas && !dst->cas)) {
		ike_cred_free(dst);
		return -1;
	}
	return 0;
}

void ike_cred_free(struct ike_cred *c)
{
	X509_free(c->cert);
	sk_X509_pop_free(c->chain, X509_free);
	EVP_PKEY_free(c->key); /* the providers clear private components (BN_clear_free, OPENSSL_secure_clear_free) */
	sk_X509_pop_free(c->cas, X509_free);
	X509_STORE_free(c->trust);
	memset(c, 0, sizeof(*c));
}

size_t ike_cred_own_id(const struct ike_cred *c, uint8_t *out, size_t cap)
{
	X509_NAME *n = X509_get_subject_name(c->cert);
	int len = i2d_X509_NAME(n, NULL);
	if (len <= 0 || (size_t)len > cap)
		return 0;
	uint8_t *p = out;
	return i2d_X509_NAME(n, &p) == len ? (size_t)len : 0;
}

/* --- SIGNATURE_HASH_ALGORITHMS ----------------------------------------------------------------- */

size_t ike_sighash_build(uint8_t *out, size_t cap)
{
	static const uint16_t ours[] = {IKE_HASH_SHA2_256, IKE_HASH_SHA2_384, IKE_HASH_SHA2_512, IKE_HASH_IDENTITY};
	struct wbuf w = wbuf_init(out, cap);
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		wbuf_u16(&w, ours[i]);
	return w.overflow ? 0 : w.len;
}

int ike_sighash_parse(const uint8_t *data, size_t len, uint32_t *mask)
{
	struct cur c = cur_init(data, len);
	uint16_t id;
	*mask = 0;
	if (len == 0 || len % 2)
		return -1;
	while (cur_u16(&c, &id))
		if (id < 32)
			*mask |= 1u << id;
	return 0;
}

uint16_t ike_sighash_choose(const struct ike_cred *c, uint32_t peer_mask)
{
	static const uint16_t p256[] = {IKE_HASH_SHA2_256, IKE_HASH_SHA2_384, IKE_HASH_SHA2_512};
	static const uint16_t p384[] = {IKE_HASH_SHA2_384, IKE_HASH_SHA2_512, IKE_HASH_SHA2_256};
	static const uint16_t p521[] = {IKE_HASH_SHA2_512, IKE_HASH_SHA2_384, IKE_HASH_SHA2_256};
	const uint16_t *pref = p256;
	switch (key_kind(c->key)) {
	case KEY_ED25519: return peer_mask & 1u << IKE_HASH_IDENTITY ? IKE_HASH_IDENTITY : 0;
	case KEY_EC:
		if (ec_curve(c->key) == NID_secp384r1)
			pref = p384;
		else if (ec_curve(c->key) == NID_secp521r1)
			pref = p521;
		break;
	case KEY_RSA: break;
	default: return 0;
	}
	for (unsigned i = 0; i < 3; i++)
		if (peer_mask & 1u << pref[i])
			return pref[i];
	return 0;
}

/* --- AUTH -------------------------------------------------------------------------------------- */

static uint16_t default_hash(const EVP_PKEY *k)
{
	if (key_kind(k) == KEY_ED25519)
		return IKE_HASH_IDENTITY;
	int nid = ec_curve(k);
	return nid == NID_secp384r1 ? IKE_HASH_SHA2_384 : nid == NID_secp521r1 ? IKE_HASH_SHA2_512 : IKE_HASH_SHA2_256;
}

int ike_cert_sign(const struct ike_cred *c, const uint8_t *octets, size_t len, uint16_t hash, uint8_t *out,
		  size_t *out_len)
{
	int kind = key_kind(c->key);
	bool pss = kind == KEY_RSA && c->rsa_pss;
	const struct sig_alg *a = NULL;
	if (!hash)
		hash = default_hash(c->key);
	for (size_t i = 0; i < sizeof(sig_algs) / sizeof(sig_algs[0]) && !a; i++)
		if (sig_algs[i].sign && (int)sig_algs[i].kind == kind && sig_algs[i].hash == hash && sig_algs[i].pss == pss)
			a = &sig_algs[i];
	if (!a || *out_len < 1u + a->der_len)
		return -1;
	out[0] = a->der_len;
	memcpy(out + 1, a->der, a->der_len);
	size_t sig_len = *out_len - 1 - a->der_len;
	if (sig_op(c->key, true, hash_md(hash), pss, octets, len, out + 1 + a->der_len, &sig_len) < 0)
		return -1;
	*out_len = 1 + a->der_len + sig_len;
	return 0;
}

/* The curve and hash of an RFC 4754 method, and the size of r and s. */
static int ecdsa_method(uint8_t method, int *nid, uint16_t *hash, size_t *half)
{
	switch (method) {
	case IKE_AUTH_ECDSA_SHA256_P256: *nid = NID_X9_62_prime256v1, *hash = IKE_HASH_SHA2_256, *half = 32; return 0;
	case IKE_AUTH_ECDSA_SHA384_P384: *nid = NID_secp384r1, *hash = IKE_HASH_SHA2_384, *half = 48; return 0;
	case IKE_AUTH_ECDSA_SHA512_P521: *nid = NID_secp521r1, *hash = IKE_HASH_SHA2_512, *half = 66; return 0;
	default: return -1;
	}
}

int ike_cert_sign_method(const struct ike_cred *c, uint8_t method, const uint8_t *octets, size_t len, uint8_t *out,
			 size_t *out_len)
{
	int nid, kind = key_kind(c->key);
	uint16_t hash;
	size_t half;
	if (method == IKE_AUTH_DIGITAL_SIG)
		return ike_cert_sign(c, octets, len, 0, out, out_len);
	if (method == IKE_AUTH_RSA_SIG)
		return kind == KEY_RSA ? sig_op(c->key, true, EVP_sha1(), false, octets, len, out, out_len) : -1;
	if (ecdsa_method(method, &nid, &hash, &half) < 0 || ec_curve(c->key) != nid || *out_len < 2 * half)
		return -1;
	uint8_t der[160];
	size_t der_len = sizeof(der);
	if (sig_op(c->key, true, hash_md(hash), false, octets, len, der, &der_len) < 0)
		return -1;
	const uint8_t *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	int ret = s && BN_bn2binpad(ECDSA_SIG_get0_r(s), out, (int)half) == (int)half &&
			  BN_bn2binpad(ECDSA_SIG_get0_s(s), out + half, (int)half) == (int)half
		  ? 0
		  : -1;
	ECDSA_SIG_free(s);
	*out_len = 2 * half;
	return ret;
}

uint8_t ike_cert_classic_method(const struct ike_cred *c)
{
	switch (key_kind(c->key)) {
	case KEY_RSA: return IKE_AUTH_RSA_SIG;
	case KEY_EC: {
		int nid = ec_curve(c->key);
		return nid == NID_secp384r1	? IKE_AUTH_ECDSA_SHA384_P384
		       : nid == NID_secp521r1 ? IKE_AUTH_ECDSA_SHA512_P521
					      : IKE_AUTH_ECDSA_SHA256_P256;
	}
	default: return IKE_AUTH_DIGITAL_SIG;
	}
}

int ike_cert_verify(X509 *peer, const uint8_t *octets, size_t len, const uint8_t *auth, size_t auth_len)
{
	struct cur c = cur_init(auth, auth_len);
	uint8_t alg_len;
	const uint8_t *alg;
	if (!cur_u8(&c, &alg_len) || !cur_bytes(&c, alg_len, &alg) || c.left == 0)
		return -1;
	EVP_PKEY *k = X509_get0_pubkey(peer);
	if (!k)
		return -1;
	for (size_t i = 0; i < sizeof(sig_algs) / sizeof(sig_algs[0]); i++) {
		const struct sig_alg *a = &sig_algs[i];
		if (a->der_len != alg_len || memcmp(a->der, alg, alg_len))
			continue;
		if ((int)a->kind != key_kind(k))
			return -1;
		size_t sig_len = c.left;
		return sig_op(k, false, hash_md(a->hash), a->pss, octets, len, (uint8_t *)c.p, &sig_len);
	}
	return -1;
}

/* RFC 4754: r | s, each as long as the curve's order, re-encoded as the DER OpenSSL verifies. */
static int verify_ecdsa_raw(EVP_PKEY *k, uint8_t method, const uint8_t *octets, size_t len, const uint8_t *auth,
			    size_t auth_len)
{
	int nid;
	uint16_t hash;
	size_t half;
	if (ecdsa_method(method, &nid, &hash, &half) < 0 || ec_curve(k) != nid || auth_len != 2 * half)
		return -1;
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(auth, (int)half, NULL), *sv = BN_bin2bn(auth + half, (int)half, NULL);
	uint8_t *der = NULL;
	int ret = -1, der_len;
	if (!s || !r || !sv || !ECDSA_SIG_set0(s, r, sv)) {
		BN_free(r);
		BN_free(sv);
		goto out;
	}
	if ((der_len = i2d_ECDSA_SIG(s, &der)) <= 0)
		goto out;
	size_t sig_len = (size_t)der_len;
	ret = sig_op(k, false, hash_md(hash), false, octets, len, der, &sig_len);
out:
	ECDSA_SIG_free(s);
	OPENSSL_free(der);
	return ret;
}

int ike_cert_verify_method(X509 *peer, uint8_t method, const uint8_t *octets, size_t len, const uint8_t *auth,
			   size_t auth_len)
{
	EVP_PKEY *k = X509_get0_pubkey(peer);
	if (!k || auth_len == 0)
		return -1;
	switch (method) {
	case IKE_AUTH_DIGITAL_SIG: return ike_cert_verify(peer, octets, len, auth, auth_len);
	case IKE_AUTH_RSA_SIG: {
		if (key_kind(k) != KEY_RSA)
			return -1;
		size_t sig_len = auth_len;
		return sig_op(k, false, EVP_sha1(), false, octets, len, (uint8_t *)auth, &sig_len);
	}
	default: return verify_ecdsa_raw(k, method, octets, len, auth, auth_len);
	}
}

/* --- CERT and CERTREQ -------------------------------------------------------------------------- */

size_t ike_cert_build(X509 *x, uint8_t *out, size_t cap)
{
	int len = i2d_X509(x, NULL);
	if (len <= 0 || (size_t)len + 1 > cap)
		return 0;
	out[0] = IKE_CERT_ENC_X509_SIG;
	uint8_t *p = out + 1;
	return i2d_X509(x, &p) == len ? (size_t)len + 1 : 0;
}

X509 *ike_cert_parse(const uint8_t *body, size_t len)
{
	if (len < 2 || body[0] != IKE_CERT_ENC_X509_SIG || len - 1 > IKE_MSG_MAX)
		return NULL;
	const uint8_t *p = body + 1;
	X509 *x = d2i_X509(NULL, &p, (long)(len - 1));
	if (x && p != body + len) { /* trailing bytes: not exactly one certificate */
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

/* SHA-1 of the certificate's whole SubjectPublicKeyInfo DER (RFC 7296 3.7). */
static int spki_hash(X509 *x, uint8_t out[IKE_CERTREQ_HASH_LEN])
{
	uint8_t *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	int ok = len > 0 && EVP_Digest(der, (size_t)len, out, NULL, EVP_sha1(), NULL) == 1;
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

size_t ike_certreq_build(const struct ike_cred *c, uint8_t *out, size_t cap)
{
	int n = c->cas ? sk_X509_num(c->cas) : 0;
	if (n <= 0 || cap < 1 + (size_t)n * IKE_CERTREQ_HASH_LEN)
		return 0;
	out[0] = IKE_CERT_ENC_X509_SIG;
	for (int i = 0; i < n; i++)
		if (spki_hash(sk_X509_value(c->cas, i), out + 1 + (size_t)i * IKE_CERTREQ_HASH_LEN) < 0)
			return 0;
	return 1 + (size_t)n * IKE_CERTREQ_HASH_LEN;
}

int ike_certreq_parse(const uint8_t *body, size_t len, const uint8_t **hashes, size_t *n)
{
	*hashes = NULL, *n = 0;
	if (len < 1)
		return -1;
	if (body[0] != IKE_CERT_ENC_X509_SIG)
		return body[0];
	if ((len - 1) % IKE_CERTREQ_HASH_LEN)
		return -1;
	*hashes = body + 1, *n = (len - 1) / IKE_CERTREQ_HASH_LEN;
	return IKE_CERT_ENC_X509_SIG;
}

static bool hash_listed(X509 *x, const uint8_t *hashes, size_t n)
{
	uint8_t h[IKE_CERTREQ_HASH_LEN];
	if (spki_hash(x, h) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!memcmp(h, hashes + i * IKE_CERTREQ_HASH_LEN, IKE_CERTREQ_HASH_LEN))
			return true;
	return false;
}

bool ike_certreq_wants(const struct ike_cred *c, const uint8_t *body, size_t len)
{
	const uint8_t *hashes;
	size_t n;
	if (ike_certreq_parse(body, len, &hashes, &n) != IKE_CERT_ENC_X509_SIG)
		return false;
	if (n == 0)
		return true;
	/* our intermediates, and the trusted CAs that issued our certificate or one of them */
	for (int i = 0; c->chain && i < sk_X509_num(c->chain); i++)
		if (hash_listed(sk_X509_value(c->chain, i), hashes, n))
			return true;
	for (int i = 0; c->cas && i < sk_X509_num(c->cas); i++) {
		X509 *ca = sk_X509_value(c->cas, i);
		bool issuer = X509_check_issued(ca, c->cert) == X509_V_OK;
		for (int j = 0; !issuer && c->chain && j < sk_X509_num(c->chain); j++)
			issuer = X509_check_issued(ca, sk_X509_value(c->chain, j)) == X509_V_OK;
		if (issuer && hash_listed(ca, hashes, n))
			return true;
	}
	return false;
}

/* --- the peer ---------------------------------------------------------------------------------- */

int ike_cert_verify_chain(const struct ike_cred *c, X509 *peer, STACK_OF(X509) *intermediates, time_t now,
			  char *err, size_t err_len)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ret = -1;
	if (!ctx || !c->trust || X509_STORE_CTX_init(ctx, c->trust, peer, intermediates) != 1) {
		snprintf(err, err_len, "cannot set up certificate verification");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	if (X509_verify_cert(ctx) == 1) {
		ret = 0;
	} else {
		int e = X509_STORE_CTX_get_error(ctx);
		char subj[256];
		X509 *at = X509_STORE_CTX_get_current_cert(ctx);
		X509_NAME_oneline(X509_get_subject_name(at ? at : peer), subj, sizeof(subj));
		snprintf(err, err_len, "%s: %s (depth %d)", subj, X509_verify_cert_error_string(e),
			 X509_STORE_CTX_get_error_depth(ctx));
	}
out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

bool ike_cert_match_id(X509 *cert, uint8_t id_type, const void *id, size_t id_len)
{
	/* never fall back to the subject CN or emailAddress, never match wildcards */
	const unsigned flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS;
	bool ok = false;
	if (id_len == 0) /* X509_check_host/email would take a zero length as "use strlen" */
		return false;
	switch (id_type) {
	case IKE_ID_DER_ASN1_DN: {
		const uint8_t *p = id;
		X509_NAME *n = d2i_X509_NAME(NULL, &p, (long)id_len);
		ok = n && p == (const uint8_t *)id + id_len && X509_NAME_cmp(n, X509_get_subject_name(cert)) == 0;
		X509_NAME_free(n);
		break;
	}
	case IKE_ID_FQDN: ok = X509_check_host(cert, (const char *)id, id_len, flags, NULL) == 1; break;
	case IKE_ID_RFC822: ok = X509_check_email(cert, (const char *)id, id_len, flags) == 1; break;
	case IKE_ID_IPV4: ok = id_len == 4 && X509_check_ip(cert, id, id_len, 0) == 1; break;
	case IKE_ID_IPV6: ok = id_len == 16 && X509_check_ip(cert, id, id_len, 0) == 1; break;
	default: break;
	}
	ERR_clear_error();
	return ok;
}

bool ike_dn_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	const uint8_t *pa = a, *pb = b;
	X509_NAME *na = d2i_X509_NAME(NULL, &pa, (long)a_len), *nb = d2i_X509_NAME(NULL, &pb, (long)b_len);
	bool eq = na && nb && pa == a + a_len && pb == b + b_len && X509_NAME_cmp(na, nb) == 0;
	X509_NAME_free(na);
	X509_NAME_free(nb);
	ERR_clear_error();
	return eq;
}

/* --- showing identities ------------------------------------------------------------------------ */

char *ike_dn_str(const X509_NAME *name, char *out, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long l;
	out[0] = 0;
	if (!b)
		return out;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN | ASN1_STRFLGS_UTF8_CONVERT |
						  ASN1_STRFLGS_ESC_CTRL) >= 0 &&
	    (l = BIO_get_mem_data(b, &p)) >= 0 && (size_t)l < cap) {
		memcpy(out, p, (size_t)l);
		out[l] = 0;
	}
	BIO_free(b);
	return out;
}

char *ike_id_str(uint8_t id_type, const uint8_t *id, size_t id_len, char *out, size_t cap)
{
	out[0] = 0;
	switch (id_type) {
	case IKE_ID_IPV4:
	case IKE_ID_IPV6:
		if (id_len == (id_type == IKE_ID_IPV4 ? 4u : 16u) &&
		    inet_ntop(id_type == IKE_ID_IPV4 ? AF_INET : AF_INET6, id, out, (socklen_t)cap))
			return out;
		break;
	case IKE_ID_FQDN:
	case IKE_ID_RFC822: {
		bool printable = id_len < cap;
		for (size_t i = 0; printable && i < id_len; i++)
			printable = id[i] >= 0x20 && id[i] < 0x7f;
		if (printable) {
			memcpy(out, id, id_len);
			out[id_len] = 0;
			return out;
		}
		break;
	}
	case IKE_ID_DER_ASN1_DN: {
		const unsigned char *p = id;
		X509_NAME *n = d2i_X509_NAME(NULL, &p, (long)id_len);
		ERR_clear_error();
		if (n) {
			ike_dn_str(n, out, cap);
			X509_NAME_free(n);
			if (out[0])
				return out;
		}
		break;
	}
	}
	if (cap < 3)
		return out;
	strcpy(out, "@#");
	for (size_t i = 0; i < id_len && 2 + 2 * i + 2 < cap; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", id[i]);
	return out;
}
