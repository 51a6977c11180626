/* ike_keys.h — IKEv2 key derivation (RFC 7296 2.13, 2.14, 2.17): the PRF, prf+, SKEYSEED and the
 * seven SK_* keys of an IKE SA, and KEYMAT for Child SAs. Secrets are zeroed by ike_keys_clear. */
#ifndef BT_IKE_KEYS_H
#define BT_IKE_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>

#define IKE_KEY_MAX 64

/* An HMAC context with its digest (OpenSSL's name: "SHA1", "SHA2-256", ...) set but no key:
 * EVP_MAC_init it with the key and NULL parameters. Copied from one made once per digest, so that
 * no use fetches HMAC and the digest by name again. Returns new (EVP_MAC_CTX_free), NULL on error. */
EVP_MAC_CTX *ike_hmac_new(const char *digest);
/* A PRF by its IKEv2 transform ID (ike_prf). Returns the output length, or 0 if unknown. */
size_t ike_prf_len(uint16_t prf);
/* out = prf(key, a || b); out holds ike_prf_len(prf) bytes. Returns 0 or -1. */
int ike_prf(uint16_t prf, const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
	    const uint8_t *b, size_t b_len, uint8_t *out);
/* prf+ (RFC 7296 2.13): out_len bytes of T1 | T2 | ..., Tn = prf(K, Tn-1 | S | n). */
int ike_prf_plus(uint16_t prf, const uint8_t *key, size_t key_len, const uint8_t *seed, size_t seed_len,
		 uint8_t *out, size_t out_len);

struct ike_keys {
	uint8_t skeyseed[IKE_KEY_MAX];
	uint8_t sk_d[IKE_KEY_MAX], sk_ai[IKE_KEY_MAX], sk_ar[IKE_KEY_MAX], sk_ei[IKE_KEY_MAX + 4],
		sk_er[IKE_KEY_MAX + 4], sk_pi[IKE_KEY_MAX], sk_pr[IKE_KEY_MAX];
	size_t prf_len, integ_len, encr_len; /* encr_len includes any salt */
};

/* SKEYSEED = prf(Ni | Nr, g^ir); {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
 * = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), SPIs in network order. Returns 0 or -1. */
int ike_derive(uint16_t prf, size_t integ_len, size_t encr_len, const uint8_t *ni, size_t ni_len,
	       const uint8_t *nr, size_t nr_len, uint64_t spi_i, uint64_t spi_r, const uint8_t *g_ir,
	       size_t g_ir_len, struct ike_keys *k);
/* IKE SA rekey (RFC 7296 2.18): SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr), then the
 * SK_* keys as above with the new SA's PRF, nonces and SPIs. */
int ike_derive_rekey(uint16_t old_prf, const uint8_t *old_sk_d, uint16_t prf, size_t integ_len, size_t encr_len,
		     const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len, uint64_t spi_i, uint64_t spi_r,
		     const uint8_t *g_ir, size_t g_ir_len, struct ike_keys *k);
void ike_keys_clear(struct ike_keys *k);

/* Child SA keys (RFC 7296 2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken as the
 * initiator-to-responder encryption and integrity keys, then the responder-to-initiator ones.
 * g_ir may be NULL (no PFS). Returns 0 or -1. */
int ike_child_keymat(uint16_t prf, const uint8_t *sk_d, const uint8_t *g_ir, size_t g_ir_len, const uint8_t *ni,
		     size_t ni_len, const uint8_t *nr, size_t nr_len, size_t encr_len, size_t integ_len,
		     uint8_t *ei, uint8_t *ai, uint8_t *er, uint8_t *ar);

/* The AUTH value for a shared key (RFC 7296 2.15): prf(prf(PSK, "Key Pad for IKEv2"),
 * <message> | <peer's nonce> | prf(SK_p, <ID payload body>)). out holds ike_prf_len(prf) bytes. */
/* The octets an AUTH payload covers (RFC 7296 2.15), for shared keys and signatures alike:
 * <message> | <peer's nonce> | prf(SK_p, <ID payload body>). Returns a new buffer of *len bytes
 * (the caller frees it with OPENSSL_clear_free) or NULL. */
uint8_t *ike_auth_octets(uint16_t prf, const uint8_t *msg, size_t msg_len, const uint8_t *nonce, size_t nonce_len,
			 const uint8_t *sk_p, const uint8_t *id, size_t id_len, size_t *len);
/* prf(prf(PSK, "Key Pad for IKEv2"), octets): the shared-key AUTH value over ike_auth_octets. */
int ike_auth_psk_octets(uint16_t prf, const uint8_t *psk, size_t psk_len, const uint8_t *octets, size_t len,
			uint8_t *out);
int ike_auth_psk(uint16_t prf, const uint8_t *psk, size_t psk_len, const uint8_t *msg, size_t msg_len,
		 const uint8_t *nonce, size_t nonce_len, const uint8_t *sk_p, const uint8_t *id, size_t id_len,
		 uint8_t *out);

#endif
