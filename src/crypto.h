/*
 * This file contains the symmetric cryptography of profile sscard-v1 (spec §12.2–§12.5) over
 * OpenSSL 3 EVP: key diversification, session keys, cryptograms and MACs. In normal operation the
 * daemon holds no card key (the PSAM does); this module serves the optional 卡识别码 MAC check
 * with the configured issuer key, and the tests. Every intermediate key is wiped.
 */
#ifndef SSC_CRYPTO_H
#define SSC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "keyprov.h"

#define CRYPTO_DES_BLOCK 8
#define CRYPTO_SM4_BLOCK 16

/*
 * ECB encryption of len bytes (a multiple of the block size) with no padding: ENC3 is 2-key
 * 3DES-EDE (key 16 bytes), ENC1 single DES (key 8 bytes, computed as ENC3(K‖K) so that the
 * default provider suffices), SM4 with a 16-byte key. out may equal in. Returns 0, SSC_EINVAL (len
 * not a multiple of the block) or SSC_ECRYPTO. Never blocks.
 */
int crypto_enc3(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out);
int crypto_enc1(const uint8_t key[8], const uint8_t *in, size_t len, uint8_t *out);
int crypto_sm4(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out);

/* ECB encryption with the algorithm's block cipher under a 16-byte key (ENC3 or SM4). */
int crypto_ecb(enum ssc_alg alg, const uint8_t key[16], const uint8_t *in, size_t len,
	       uint8_t *out);

/*
 * Div(K, f) of §12.2: DES ENC3(K,f) ‖ ENC3(K,~f); SM4 SM4(K, f ‖ ~f). Writes 16 bytes.
 * Returns 0, SSC_EINVAL (unknown alg) or SSC_ECRYPTO.
 */
int crypto_div(enum ssc_alg alg, const uint8_t key[16], const uint8_t f[8], uint8_t out[16]);

/* K_card = Div(Div(K_master, cityDiv), cardDiv) (§12.2). Same returns as crypto_div. */
int crypto_card_key(enum ssc_alg alg, const uint8_t master[16], const struct keyprov_div *div,
		    uint8_t k_card[16]);

/*
 * Session key of §12.3 from an 8-byte challenge r: DES ENC3(K_card, r) (8 bytes, the rest of ks
 * is zeroed), SM4 SM4(K_card, r ‖ 00⁸) (16 bytes). Same returns as crypto_div.
 */
int crypto_session_key(enum ssc_alg alg, const uint8_t k_card[16], const uint8_t r[8],
		       uint8_t ks[16]);

/* Cryptogram C of §12.3 of x under the session key ks (SM4 folded to 8 bytes). */
int crypto_cryptogram(enum ssc_alg alg, const uint8_t ks[16], const uint8_t x[8], uint8_t c[8]);

/*
 * The whole chain from a master key: K_card, then Ks from r, then C of x. What a PSAM answers to
 * DELIVER KEY + CIPHER, and what the card answers to INTERNAL AUTH (r = the process factor).
 */
int crypto_cryptogram_master(enum ssc_alg alg, const uint8_t master[16],
			     const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			     uint8_t c[8]);

/*
 * ISO 9797-1 MAC algorithm 3 ("retail MAC", §4.4): data padded 80 00.. (always) to 8 bytes, CBC
 * single DES under the key's left half from iv, the last block 3DES under the whole key; writes
 * the first 4 bytes. Returns 0 or SSC_ECRYPTO.
 */
int crypto_retail_mac(const uint8_t key[16], const uint8_t iv[8], const uint8_t *data, size_t len,
		      uint8_t mac[4]);

/* SM4 CBC-MAC (§12.5): padded 80 00.. to 16 bytes, CBC from iv (16 bytes); first 4 bytes. */
int crypto_sm4_mac(const uint8_t key[16], const uint8_t iv[16], const uint8_t *data, size_t len,
		   uint8_t mac[4]);

/* The secure-messaging MAC4 of §12.5 for alg (iv 8 bytes DES, 16 bytes SM4). */
int crypto_mac(enum ssc_alg alg, const uint8_t key[16], const uint8_t *iv, const uint8_t *data,
	       size_t len, uint8_t mac[4]);

/*
 * Checks the MAC of a 16-byte 卡识别码 (§2.5, §12.4): retail MAC, IV 0, of bytes 0..11 under the
 * issuer key must equal bytes 12..15 (constant-time compare). Returns 0, SSC_EBADCARDDATA
 * (mismatch) or SSC_ECRYPTO.
 */
int crypto_card_id_check(const uint8_t issuer_key[16], const uint8_t card_id[16]);

#endif
