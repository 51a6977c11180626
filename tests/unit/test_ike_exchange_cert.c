/* test_ike_exchange_cert.c — IKE_AUTH with certificates between an initiator and a responder engine
 * in one process, over the test PKI in tests/unit/data/certs: RSA, ECDSA and Ed25519 keys; DN, FQDN
 * and RFC822 identities; a peer ID taken from the certificate; intermediates in CERT payloads; RFC
 * 7427 and classic AUTH methods; and the ways it must fail (untrusted CA, an ID the certificate does
 * not hold, not yet valid, a shared key where a signature is required). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ike/ike_sa.h"
#include "testdata.h"

#define NOW 1893456000 /* 2030-01-01: inside every test certificate's validity */

static int xorshift(void *arg, uint8_t *buf, size_t len)
{
	uint64_t *s = arg;
	for (size_t i = 0; i < len; i++) {
		*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
		buf[i] = (uint8_t)*s;
	}
	return 0;
}

static const char *path(const char *name)
{
	static char buf[4][512];
	static int k;
	const char *src = getenv("BATON_SRC");
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/tests/unit/data/certs/%s", src ? src : ".", name);
	return buf[k];
}

/* A credential: certificate file (may hold intermediates), key, and the CAs it trusts. */
static void load(struct ike_cred *c, const char *cert, const char *key, const char *ca1, const char *ca2)
{
	char err[256];
	const char *cas[2] = {path(ca1), ca2 ? path(ca2) : NULL};
	if (ike_cred_load(c, path(cert), path(key), cas, ca2 ? 2 : 1, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static struct ike_cred rsa, p256, ed, sub, foreign;

static int setup(void **state)
{
	load(&rsa, "rsa.pem", "rsa.key", "ca-rsa.pem", "ca-ec.pem");
	load(&p256, "p256.pem", "p256.key", "ca-rsa.pem", "ca-ec.pem");
	load(&ed, "ed25519.pem", "ed25519.key", "ca-ec.pem", NULL);
	load(&sub, "sub-chain.pem", "sub.key", "ca-rsa.pem", NULL);
	load(&foreign, "foreign.pem", "foreign.key", "ca-foreign.pem", NULL);
	return 0;
}

static int teardown(void **state)
{
	ike_cred_free(&rsa), ike_cred_free(&p256), ike_cred_free(&ed), ike_cred_free(&sub), ike_cred_free(&foreign);
	return 0;
}

/* Certificates both ways, our DN as ID, any peer ID its certificate holds. */
static void conf(struct ike_conf *c, bool initiator, const struct ike_cred *cred)
{
	char err[64];
	static struct ike_conf_room room[2]; /* one configuration per role at a time */
	memset(c, 0, sizeof(*c));
	ike_conf_use_room(c, &room[initiator]);
	c->ike = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 256, IKE_INTEG_NONE};
	c->prf = IKE_PRF_HMAC_SHA2_256;
	c->dh = IKE_DH_X25519;
	c->esp = (struct ike_sk_suite){IKE_ENCR_AES_GCM_16, 128, IKE_INTEG_NONE};
	c->auth = IKE_AUTHBY_PUBKEY;
	c->peer_auth = IKE_AUTHBY_PUBKEY;
	c->cred = cred;
	c->peer_id_any = true;
	bt_ts_parse(initiator ? "10.1.0.0/16" : "10.2.0.0/24", &c->local_ts[0], err, sizeof(err));
	bt_ts_parse(initiator ? "10.2.0.0/16" : "10.1.0.0/24", &c->remote_ts[0], err, sizeof(err));
	c->n_local_ts = c->n_remote_ts = 1;
}

static void set_id(uint8_t *type, uint8_t *id, size_t *len, uint8_t t, const char *s)
{
	*type = t;
	*len = strlen(s);
	memcpy(id, s, *len);
}

static void psk(struct ike_conf *c, uint8_t id_type, const char *id)
{
	memcpy(c->psk, "a shared secret", 15);
	c->psk_len = 15;
	c->auth = IKE_AUTHBY_PSK;
	set_id(&c->id_type, c->id, &c->id_len, id_type, id);
}

struct pair {
	struct ike_sa i, r;
	uint64_t si, sr;
	uint8_t m1[IKE_MSG_MAX], m2[IKE_MSG_MAX], m3[IKE_MSG_MAX], m4[IKE_MSG_MAX];
	size_t l1, l2, l3, l4;
};

static void begin(struct pair *p, struct ike_conf *ci, struct ike_conf *cr, uint64_t now)
{
	p->si = 0x1234567, p->sr = 0x7654321;
	struct ike_rng ri = {xorshift, &p->si}, rr = {xorshift, &p->sr};
	ike_sa_init(&p->i, ci, true, &ri);
	ike_sa_init(&p->r, cr, false, &rr);
	p->i.now = p->r.now = now;
	p->l1 = ike_start(&p->i, p->m1, sizeof(p->m1));
	assert_true(p->l1 > 0);
	p->l2 = ike_process(&p->r, p->m1, p->l1, p->m2, sizeof(p->m2));
	assert_true(p->l2 > 0);
}

static void finish(struct pair *p)
{
	p->l3 = ike_process(&p->i, p->m2, p->l2, p->m3, sizeof(p->m3));
	p->l4 = p->l3 ? ike_process(&p->r, p->m3, p->l3, p->m4, sizeof(p->m4)) : 0;
	if (p->l4)
		assert_int_equal(ike_process(&p->i, p->m4, p->l4, p->m1, sizeof(p->m1)), 0);
}

static void run(struct pair *p, struct ike_conf *ci, struct ike_conf *cr, uint64_t now)
{
	begin(p, ci, cr, now);
	finish(p);
}

static void done(struct pair *p)
{
	ike_sa_free(&p->i);
	ike_sa_free(&p->r);
}

static void established(struct pair *p)
{
	assert_int_equal(p->i.state, IKE_ST_ESTABLISHED);
	assert_int_equal(p->r.state, IKE_ST_ESTABLISHED);
	assert_true((p->i.child[0] && !p->i.child[0]->gone) && (p->r.child[0] && !p->r.child[0]->gone));
	assert_int_equal(p->i.child[0]->spi_r, p->r.child[0]->spi_r);
	assert_memory_equal(p->i.child[0]->ei, p->r.child[0]->ei, p->i.child[0]->encr_len);
	assert_memory_equal(p->i.child[0]->er, p->r.child[0]->er, p->i.child[0]->encr_len);
}

static void failed(struct pair *p, uint16_t why)
{
	assert_int_equal(p->r.state, IKE_ST_FAILED);
	assert_int_equal(p->r.error, why);
	assert_int_equal(p->i.state, IKE_ST_FAILED);
	assert_int_equal(p->i.error, why); /* from the responder's encrypted notify */
	assert_false((p->i.child[0] && !p->i.child[0]->gone) || (p->r.child[0] && !p->r.child[0]->gone));
}

/* Is there a notify of this type (or a payload of this type, notify 0) in the clear part? */
static bool has(const uint8_t *msg, size_t len, uint8_t pl, uint16_t notify)
{
	struct ike_hdr h;
	static struct ike_chain c;
	struct ike_notify_payload n;
	assert_int_equal(ike_parse(msg, len, &h, &c), IKE_PERR_OK);
	for (unsigned i = 0; ike_find(&c, pl, i); i++)
		if (!notify || (ike_parse_notify(ike_find(&c, pl, i), &n) == IKE_PERR_OK && n.type == notify))
			return true;
	return false;
}

static void subject_is(X509 *x, const char *cn)
{
	char buf[256], want[256];
	assert_non_null(x);
	X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
	snprintf(want, sizeof(want), "/C=XX/O=Baton Test/CN=%s", cn);
	assert_string_equal(buf, want);
}

/* RSA both ways, DN identities from the certificates, peer IDs "any": RFC 7427 signatures, each
 * side's identity and certificate recorded; INITIAL_CONTACT reaches the responder; a retransmitted
 * IKE_AUTH request gets the cached response byte for byte. */
static void test_rsa_dn(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	uint8_t dn[IKE_ID_MAX];
	size_t dl = ike_cred_own_id(&rsa, dn, sizeof(dn));
	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	ci.initial_contact = true;
	begin(&p, &ci, &cr, NOW);
	assert_int_equal(p.i.conf->id_type, IKE_ID_DER_ASN1_DN);
	assert_int_equal(p.i.conf->id_len, dl);
	assert_true(has(p.m1, p.l1, IKE_PL_NOTIFY, IKE_N_SIGNATURE_HASH_ALGORITHMS));
	assert_false(has(p.m1, p.l1, IKE_PL_CERTREQ, 0));
	assert_true(has(p.m2, p.l2, IKE_PL_NOTIFY, IKE_N_SIGNATURE_HASH_ALGORITHMS));
	assert_true(has(p.m2, p.l2, IKE_PL_CERTREQ, 0));
	assert_int_equal(p.r.peer_sighash, 1u << IKE_HASH_SHA2_256 | 1u << IKE_HASH_SHA2_384 |
						   1u << IKE_HASH_SHA2_512 | 1u << IKE_HASH_IDENTITY);
	finish(&p);
	established(&p);
	assert_true(p.l3 > 1000); /* a certificate inside */
	assert_int_equal(p.i.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	assert_int_equal(p.r.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	assert_true(p.i.peer_certreq && p.r.peer_certreq);
	assert_true(p.r.peer_initial_contact);
	assert_false(p.i.peer_initial_contact);
	assert_int_equal(p.r.peer_id_type, IKE_ID_DER_ASN1_DN);
	assert_int_equal(p.r.peer_id_len, dl);
	assert_memory_equal(p.r.peer_id, dn, dl);
	subject_is(p.r.peer_cert, "rsa");
	subject_is(p.i.peer_cert, "rsa");
	uint8_t again[IKE_MSG_MAX];
	size_t la = ike_process(&p.r, p.m3, p.l3, again, sizeof(again));
	assert_int_equal(la, p.l4);
	assert_memory_equal(again, p.m4, la);
	assert_int_equal(p.r.state, IKE_ST_ESTABLISHED);
	done(&p);
	/* no INITIAL_CONTACT unless configured */
	ci.initial_contact = false;
	run(&p, &ci, &cr, NOW);
	established(&p);
	assert_false(p.r.peer_initial_contact);
	done(&p);
}

/* ECDSA P-256 initiator, RSA responder, FQDN identities; the responder requires the initiator's
 * FQDN, the initiator takes any; a configured DN the certificate has works too. */
static void test_ecdsa_rsa_fqdn(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true, &p256), conf(&cr, false, &rsa);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "p256.baton.test");
	set_id(&cr.id_type, cr.id, &cr.id_len, IKE_ID_FQDN, "gw.baton.test");
	set_id(&cr.peer_id_type, cr.peer_id, &cr.peer_id_len, IKE_ID_FQDN, "p256.baton.test");
	cr.peer_id_any = false;
	run(&p, &ci, &cr, NOW);
	established(&p);
	assert_int_equal(p.i.peer_id_type, IKE_ID_FQDN);
	assert_memory_equal(p.i.peer_id, "gw.baton.test", 13);
	subject_is(p.i.peer_cert, "rsa");
	subject_is(p.r.peer_cert, "p256");
	assert_int_equal(p.r.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	done(&p);
	/* the initiator requires the responder's DN */
	conf(&ci, true, &p256);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "p256.baton.test");
	ci.peer_id_any = false;
	ci.peer_id_type = IKE_ID_DER_ASN1_DN;
	ci.peer_id_len = ike_cred_own_id(&rsa, ci.peer_id, sizeof(ci.peer_id));
	conf(&cr, false, &rsa);
	run(&p, &ci, &cr, NOW);
	established(&p);
	done(&p);
	/* ... also written with other string types and letter case (PrintableString, as strongSwan's
	 * pki encodes DNs, where openssl wrote UTF8String) */
	X509_NAME *nm = X509_NAME_new();
	X509_NAME_add_entry_by_txt(nm, "C", V_ASN1_PRINTABLESTRING, (const unsigned char *)"XX", -1, -1, 0);
	X509_NAME_add_entry_by_txt(nm, "O", V_ASN1_PRINTABLESTRING, (const unsigned char *)"baton  TEST", -1, -1, 0);
	X509_NAME_add_entry_by_txt(nm, "CN", V_ASN1_PRINTABLESTRING, (const unsigned char *)"RSA", -1, -1, 0);
	uint8_t *q = ci.peer_id;
	ci.peer_id_len = (size_t)i2d_X509_NAME(nm, &q);
	X509_NAME_free(nm);
	run(&p, &ci, &cr, NOW);
	established(&p);
	done(&p);
	/* ... and the wrong DN fails the initiator (the responder had already established) */
	ci.peer_id_len = ike_cred_own_id(&p256, ci.peer_id, sizeof(ci.peer_id));
	run(&p, &ci, &cr, NOW);
	assert_int_equal(p.i.state, IKE_ST_FAILED);
	assert_int_equal(p.i.error, IKE_N_AUTHENTICATION_FAILED);
	assert_null(p.i.peer_cert);
	done(&p);
}

/* Ed25519 both ways with RFC822 identities. */
static void test_ed25519_rfc822(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true, &ed), conf(&cr, false, &ed);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_RFC822, "ed@baton.test");
	set_id(&cr.id_type, cr.id, &cr.id_len, IKE_ID_RFC822, "ed@baton.test");
	run(&p, &ci, &cr, NOW);
	established(&p);
	assert_int_equal(p.r.peer_id_type, IKE_ID_RFC822);
	assert_int_equal(p.r.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	assert_int_equal(p.i.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	done(&p);
}

/* An end entity under an intermediate: the intermediate travels as a second CERT payload and the
 * responder, which trusts only the root, builds the chain with it. */
static void test_intermediate(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true, &sub), conf(&cr, false, &rsa);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "sub.baton.test");
	run(&p, &ci, &cr, NOW);
	established(&p);
	subject_is(p.r.peer_cert, "sub");
	done(&p);
}

/* The peer does not announce SIGNATURE_HASH_ALGORITHMS (as if it had sent none): we sign with the
 * classic method of our key, 9 for P-256 and 1 for RSA, and the peer verifies it. */
static void test_classic_methods(void **state)
{
	static const struct {
		const struct ike_cred *cred;
		uint8_t method;
	} v[] = {{&p256, IKE_AUTH_ECDSA_SHA256_P256}, {&rsa, IKE_AUTH_RSA_SIG}, {&ed, IKE_AUTH_DIGITAL_SIG}};
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		static struct pair p;
		struct ike_conf ci, cr;
		conf(&ci, true, &p256), conf(&cr, false, v[k].cred);
		begin(&p, &ci, &cr, NOW);
		p.r.peer_sighash = 0;
		finish(&p);
		established(&p);
		assert_int_equal(p.i.peer_auth_method, v[k].method);
		assert_int_equal(p.r.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
		done(&p);
	}
}

/* A certificate from a CA the responder does not trust, an ID the certificate does not hold, a
 * certificate not valid yet: AUTHENTICATION_FAILED in the encrypted IKE_AUTH response. */
static void test_rejected(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	conf(&ci, true, &foreign), conf(&cr, false, &rsa);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "gw.baton.test");
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	assert_null(p.r.peer_cert);
	assert_non_null(strstr(p.r.error_detail, "CN=foreign"));
	assert_memory_equal(p.r.peer_id, "gw.baton.test", 13); /* who it claimed to be, for the log */
	/* the failure response is cached too */
	uint8_t again[IKE_MSG_MAX];
	assert_int_equal(ike_process(&p.r, p.m3, p.l3, again, sizeof(again)), p.l4);
	done(&p);

	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "other.baton.test");
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	assert_string_equal(p.r.error_detail, "peer ID (type 2) is not in its certificate");
	done(&p);
	/* a subject CN is no FQDN */
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "rsa");
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	done(&p);
	/* the responder wants a specific peer the certificate is not */
	conf(&ci, true, &rsa);
	cr.peer_id_any = false;
	set_id(&cr.peer_id_type, cr.peer_id, &cr.peer_id_len, IKE_ID_FQDN, "p256.baton.test");
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	done(&p);

	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	run(&p, &ci, &cr, 1000000000); /* 2001 */
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	assert_non_null(strstr(p.r.error_detail, "not yet valid"));
	done(&p);
	run(&p, &ci, &cr, 0); /* the caller forgot the clock: fail closed */
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	done(&p);
}

/* Shared key against certificates: each side's requirement holds; mixed methods work where both
 * sides agree (the initiator signs, the responder uses the key). */
static void test_psk_and_pubkey(void **state)
{
	static struct pair p;
	struct ike_conf ci, cr;
	/* the initiator uses a shared key, the responder requires a signature */
	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	psk(&ci, IKE_ID_FQDN, "gw.baton.test");
	memcpy(cr.psk, "a shared secret", 15), cr.psk_len = 15;
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	assert_string_equal(p.r.error_detail, "peer used a shared key, a signature is required");
	done(&p);
	/* the initiator signs, the responder requires a shared key */
	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	psk(&cr, IKE_ID_FQDN, "gw.baton.test");
	cr.peer_auth = IKE_AUTHBY_PSK;
	cr.peer_id_any = false;
	set_id(&cr.peer_id_type, cr.peer_id, &cr.peer_id_len, IKE_ID_FQDN, "gw.baton.test");
	set_id(&ci.id_type, ci.id, &ci.id_len, IKE_ID_FQDN, "gw.baton.test");
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	done(&p);
	/* a shared key with peer ID "any" is refused: any would mean anyone who knows the key */
	conf(&ci, true, &rsa), conf(&cr, false, &rsa);
	psk(&ci, IKE_ID_FQDN, "gw.baton.test");
	psk(&cr, IKE_ID_FQDN, "gw.baton.test");
	cr.peer_auth = IKE_AUTHBY_ANY;
	run(&p, &ci, &cr, NOW);
	failed(&p, IKE_N_AUTHENTICATION_FAILED);
	done(&p);
	/* mixed, as configured on both sides: the initiator signs, the responder proves the key */
	conf(&ci, true, &p256), conf(&cr, false, &rsa);
	psk(&cr, IKE_ID_FQDN, "gw.baton.test");
	memcpy(ci.psk, "a shared secret", 15), ci.psk_len = 15;
	ci.peer_auth = IKE_AUTHBY_PSK;
	ci.peer_id_any = false;
	set_id(&ci.peer_id_type, ci.peer_id, &ci.peer_id_len, IKE_ID_FQDN, "gw.baton.test");
	cr.peer_auth = IKE_AUTHBY_ANY;
	run(&p, &ci, &cr, NOW);
	established(&p);
	assert_int_equal(p.i.peer_auth_method, IKE_AUTH_SHARED_KEY);
	assert_null(p.i.peer_cert);
	assert_int_equal(p.r.peer_auth_method, IKE_AUTH_DIGITAL_SIG);
	subject_is(p.r.peer_cert, "p256");
	done(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_dn),
		cmocka_unit_test(test_ecdsa_rsa_fqdn),
		cmocka_unit_test(test_ed25519_rfc822),
		cmocka_unit_test(test_intermediate),
		cmocka_unit_test(test_classic_methods),
		cmocka_unit_test(test_rejected),
		cmocka_unit_test(test_psk_and_pubkey),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
