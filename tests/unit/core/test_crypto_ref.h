/*
 * This file contains the key chain of profile sscard-v1 (spec §12.2–§12.5) for the tests: what a
 * PSAM computes (diversification, session keys, cryptograms, MACs, the PIN block's ECB), rebuilt
 * on src/crypto.c's block ciphers so that the tests' software key provider (test_card_util.h) can
 * stand in for a PSAM. The daemon holds no card key and never runs this. test_crypto checks it
 * against the spec's vectors. Header-only, static inline, so each test links alone.
 */
#ifndef TEST_CRYPTO_REF_H
#define TEST_CRYPTO_REF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "keyprov.h"
#include "sscard/error.h"

/* SM4 ECB (16-byte key), as crypto_enc3. */
static inline int ref_sm4(const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out)
{
	return crypto_ecb_cipher(EVP_sm4_ecb(), key, in, len, out);
}

/* ECB encryption with the algorithm's block cipher under a 16-byte key (ENC3 or SM4). */
static inline int ref_ecb(enum ssc_alg alg, const uint8_t key[16], const uint8_t *in, size_t len,
			  uint8_t *out)
{
	switch (alg) {
	case SSC_ALG_DES:
		return crypto_enc3(key, in, len, out);
	case SSC_ALG_SM4:
		return ref_sm4(key, in, len, out);
	default:
		return SSC_EINVAL;
	}
}

/*
 * Div(K, f) of §12.2: DES ENC3(K,f) ‖ ENC3(K,~f); SM4 SM4(K, f ‖ ~f). Writes 16 bytes.
 * Returns 0, SSC_EINVAL (unknown alg) or SSC_ECRYPTO.
 */
static inline int ref_div(enum ssc_alg alg, const uint8_t key[16], const uint8_t f[8],
			  uint8_t out[16])
{
	uint8_t buf[16];
	int rc;

	for (int i = 0; i < 8; i++) {
		buf[i] = f[i];
		buf[8 + i] = (uint8_t)~f[i];
	}
	/* DES: ENC3(K,f) ‖ ENC3(K,~f) is one two-block ECB pass; SM4: one block of f ‖ ~f. */
	rc = ref_ecb(alg, key, buf, sizeof(buf), out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

/* K_card = Div(Div(K_master, cityDiv), cardDiv) (§12.2). Same returns as ref_div. */
static inline int ref_card_key(enum ssc_alg alg, const uint8_t master[16],
			       const struct keyprov_div *div, uint8_t k_card[16])
{
	uint8_t k_city[16];
	int rc;

	rc = ref_div(alg, master, div->city_div, k_city);
	if (rc == 0)
		rc = ref_div(alg, k_city, div->card_div, k_card);
	OPENSSL_cleanse(k_city, sizeof(k_city));
	return rc;
}

/*
 * Session key of §12.3 from an 8-byte challenge r: DES ENC3(K_card, r) (8 bytes, the rest of ks
 * is zeroed), SM4 SM4(K_card, r ‖ 00⁸) (16 bytes). Same returns as ref_div.
 */
static inline int ref_session_key(enum ssc_alg alg, const uint8_t k_card[16], const uint8_t r[8],
				  uint8_t ks[16])
{
	uint8_t buf[16] = { 0 };

	memcpy(buf, r, 8);
	memset(ks, 0, 16);
	if (alg == SSC_ALG_DES)
		return crypto_enc3(k_card, buf, 8, ks);
	if (alg == SSC_ALG_SM4)
		return ref_sm4(k_card, buf, 16, ks);
	return SSC_EINVAL;
}

/* Cryptogram C of §12.3 of x under the session key ks (SM4 folded to 8 bytes). */
static inline int ref_cryptogram(enum ssc_alg alg, const uint8_t ks[16], const uint8_t x[8],
				 uint8_t c[8])
{
	uint8_t buf[16] = { 0 };
	uint8_t c16[16];
	int rc;

	if (alg == SSC_ALG_DES)
		return crypto_enc1(ks, x, 8, c);
	if (alg != SSC_ALG_SM4)
		return SSC_EINVAL;
	memcpy(buf, x, 8);
	rc = ref_sm4(ks, buf, 16, c16);
	if (rc == 0)
		for (int i = 0; i < 8; i++)
			c[i] = c16[i] ^ c16[8 + i];
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(c16, sizeof(c16));
	return rc;
}

/*
 * The whole chain from a master key: K_card, then Ks from r, then C of x. What a PSAM answers to
 * DELIVER KEY + CIPHER, and what the card answers to INTERNAL AUTH (r = the process factor).
 */
static inline int ref_cryptogram_master(enum ssc_alg alg, const uint8_t master[16],
					const struct keyprov_div *div, const uint8_t r[8],
					const uint8_t x[8], uint8_t c[8])
{
	uint8_t k_card[16], ks[16];
	int rc;

	rc = ref_card_key(alg, master, div, k_card);
	if (rc == 0)
		rc = ref_session_key(alg, k_card, r, ks);
	if (rc == 0)
		rc = ref_cryptogram(alg, ks, x, c);
	OPENSSL_cleanse(k_card, sizeof(k_card));
	OPENSSL_cleanse(ks, sizeof(ks));
	return rc;
}

/* SM4 CBC-MAC (§12.5): padded 80 00.. to 16 bytes, CBC from iv (16 bytes); first 4 bytes. */
static inline int ref_sm4_mac(const uint8_t key[16], const uint8_t iv[16], const uint8_t *data,
			      size_t len, uint8_t mac[4])
{
	return crypto_cbc_mac(CRYPTO_SM4_BLOCK, ref_sm4, ref_sm4, key, iv, data, len, mac);
}

/* The secure-messaging MAC4 of §12.5 for alg (iv 8 bytes DES, 16 bytes SM4). */
static inline int ref_mac(enum ssc_alg alg, const uint8_t key[16], const uint8_t *iv,
			  const uint8_t *data, size_t len, uint8_t mac[4])
{
	if (alg == SSC_ALG_DES)
		return crypto_retail_mac(key, iv, data, len, mac);
	if (alg == SSC_ALG_SM4)
		return ref_sm4_mac(key, iv, data, len, mac);
	return SSC_EINVAL;
}

#endif
