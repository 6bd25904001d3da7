/*
 * This file contains the symmetric cryptography the daemon does itself, over OpenSSL 3 EVP. The
 * daemon holds no card key (the PSAM does): this module serves the optional 卡识别码 MAC check
 * with the configured issuer key (spec §2.5, §12.4). The key chain of §12.2–§12.5 that a PSAM
 * computes is rebuilt for the tests in tests/unit/core/test_crypto_ref.h. Every intermediate wiped.
 */
#ifndef SSC_CRYPTO_H
#define SSC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define CRYPTO_DES_BLOCK 8
#define CRYPTO_SM4_BLOCK 16

/*
 * One ECB pass of cipher (an EVP block cipher of the default provider) over len bytes, a multiple
 * of its block size and at most 1024, with no padding. out may equal in. Returns 0, SSC_EINVAL
 * (len not a multiple of the block, or too long), SSC_ENOMEM or SSC_ECRYPTO. Never blocks.
 */
int crypto_ecb_cipher(const EVP_CIPHER *cipher, const uint8_t *key, const uint8_t *in, size_t len,
		      uint8_t *out);

/*
 * ECB encryption as crypto_ecb_cipher: ENC3 is 2-key 3DES-EDE (key 16 bytes), ENC1 single DES
 * (key 8 bytes, computed as ENC3(K‖K) so that the default provider suffices).
 */
int crypto_enc3(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out);
int crypto_enc1(const uint8_t key[8], const uint8_t *in, size_t len, uint8_t *out);

/* A block function for crypto_cbc_mac: encrypts len bytes (one block) of in under key. */
typedef int crypto_block_fn(const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out);

/*
 * A CBC-MAC over data padded 80 00.. (always) to block bytes (8 or 16): CBC from iv (block
 * bytes) with mid() on every block but the last and last() on the last one; writes the first 4
 * bytes of the final value. Returns 0, SSC_EINVAL (block size) or what the block functions return.
 */
int crypto_cbc_mac(size_t block, crypto_block_fn *mid, crypto_block_fn *last, const uint8_t *key,
		   const uint8_t *iv, const uint8_t *data, size_t len, uint8_t mac[4]);

/*
 * ISO 9797-1 MAC algorithm 3 ("retail MAC", §4.4): data padded 80 00.. (always) to 8 bytes, CBC
 * single DES under the key's left half from iv, the last block 3DES under the whole key; writes
 * the first 4 bytes. Returns 0 or SSC_ECRYPTO.
 */
int crypto_retail_mac(const uint8_t key[16], const uint8_t iv[8], const uint8_t *data, size_t len,
		      uint8_t mac[4]);

/*
 * Checks the MAC of a 16-byte 卡识别码 (§2.5, §12.4): retail MAC, IV 0, of bytes 0..11 under the
 * issuer key must equal bytes 12..15 (constant-time compare). Returns 0, SSC_EBADCARDDATA
 * (mismatch) or SSC_ECRYPTO.
 */
int crypto_card_id_check(const uint8_t issuer_key[16], const uint8_t card_id[16]);

#endif
