/*
 * This file contains the simulator's cryptography (spec §12.1-12.5): 2-key 3DES and SM4 in ECB,
 * the two-level key diversification, session keys, cryptograms and the DES retail MAC / SM4
 * CBC-MAC. It is the card's and the PSAM's own copy: it shares nothing with src/crypto.c.
 */
#ifndef SIM_CRYPTO_H
#define SIM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* The algorithm ids are the ones the FCI announces in 9F0C (§12.1). */
enum sim_alg { SIM_ALG_DES = 0x01, SIM_ALG_SM4 = 0x03 };

#define SIM_KEY_LEN 16   /* every key of v1 is 16 bytes: 2-key 3DES or SM4 */

/* The cipher block size of alg: 8 (DES) or 16 (SM4). */
size_t sim_crypto_block(enum sim_alg alg);

/*
 * ECB encryption (encrypt != 0) or decryption of len bytes (a multiple of the block size, may be 0)
 * under the 16-byte key: ENC3 (DES-EDE, 2-key) or SM4. in and out may be the same buffer.
 * Returns 0, or -1 when OpenSSL fails or len is not a multiple of the block. Does not block.
 */
int sim_crypto_ecb(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], int encrypt, const uint8_t *in,
		   size_t len, uint8_t *out);

/* ENC1(K, x): single DES of one block with an 8-byte key, as ENC3(K||K, x). Returns 0 or -1. */
int sim_crypto_des1(const uint8_t key[8], const uint8_t in[8], uint8_t out[8]);

/* Div(K, f) of §12.2 with an 8-byte factor; out gets 16 bytes. Returns 0 or -1. */
int sim_crypto_div(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], const uint8_t f[8],
		   uint8_t out[SIM_KEY_LEN]);

/* K_card = Div(Div(master, city_div), card_div) (§12.2). Returns 0 or -1. */
int sim_crypto_card_key(enum sim_alg alg, const uint8_t master[SIM_KEY_LEN], const uint8_t city_div[8],
			const uint8_t card_div[8], uint8_t out[SIM_KEY_LEN]);

/*
 * Session key from one block (DES: R, 8 bytes; SM4: R || 00^8, 16 bytes) under K_card (§12.3):
 * ks gets 8 (DES) or 16 (SM4) bytes. Returns 0 or -1.
 */
int sim_crypto_session(enum sim_alg alg, const uint8_t kcard[SIM_KEY_LEN], const uint8_t *block,
		       uint8_t ks[SIM_KEY_LEN]);

/*
 * Encrypts one block under a session key: DES ENC1(Ks[0..7], block8); SM4 SM4(Ks, block16).
 * out gets one block. Returns 0 or -1.
 */
int sim_crypto_session_cipher(enum sim_alg alg, const uint8_t ks[SIM_KEY_LEN], const uint8_t *block,
			      uint8_t *out);

/* The 8-byte cryptogram C of §12.3 from Ks and an 8-byte X (SM4: folded). Returns 0 or -1. */
int sim_crypto_cryptogram(enum sim_alg alg, const uint8_t ks[SIM_KEY_LEN], const uint8_t x[8],
			  uint8_t c[8]);

/*
 * MAC4 of §12.5 over data (any length, padded here with 80 00.., always): DES ISO 9797-1 algorithm
 * 3 (retail MAC, CBC single DES with the left half, last block 3DES) with an 8-byte IV; SM4 CBC-MAC
 * with a 16-byte IV. Returns 0 or -1.
 */
int sim_crypto_mac(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], const uint8_t *iv,
		   const uint8_t *data, size_t len, uint8_t mac[4]);

/* Constant-time comparison of n bytes: 0 when equal. */
int sim_crypto_memcmp(const void *a, const void *b, size_t n);

/* Wipes n bytes (OPENSSL_cleanse). */
void sim_crypto_wipe(void *p, size_t n);

/* Fills n bytes with random bytes (RAND_bytes). Returns 0 or -1. */
int sim_crypto_random(uint8_t *p, size_t n);

/* SHA-256 of data into out (32 bytes). Returns 0 or -1. */
int sim_crypto_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
