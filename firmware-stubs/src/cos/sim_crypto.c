/*
 * This file contains the simulator's cryptography on OpenSSL 3 EVP (default provider only):
 * DES-EDE-ECB (2-key 3DES; single DES as ENC3(K||K)), SM4-ECB, and on top of them the §12
 * diversification, session keys, cryptograms and MACs that the card and the PSAM share.
 */
#include "sim_crypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

size_t sim_crypto_block(enum sim_alg alg)
{
	return alg == SIM_ALG_SM4 ? 16 : 8;
}

int sim_crypto_ecb(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], int encrypt, const uint8_t *in,
		   size_t len, uint8_t *out)
{
	const EVP_CIPHER *cipher = alg == SIM_ALG_SM4 ? EVP_sm4_ecb() : EVP_des_ede_ecb();
	EVP_CIPHER_CTX *ctx;
	int outl = 0, finl = 0, rc = -1;

	if (len % sim_crypto_block(alg) != 0 || len > (size_t)INT32_MAX)
		return -1;
	if (len == 0)
		return 0;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -1;
	if (EVP_CipherInit_ex2(ctx, cipher, key, NULL, encrypt ? 1 : 0, NULL) != 1)
		goto out_free;
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	if (EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1)
		goto out_free;
	if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1)
		goto out_free;
	rc = (size_t)(outl + finl) == len ? 0 : -1;
out_free:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int sim_crypto_des1(const uint8_t key[8], const uint8_t in[8], uint8_t out[8])
{
	uint8_t kk[SIM_KEY_LEN];
	int rc;

	memcpy(kk, key, 8);
	memcpy(kk + 8, key, 8);
	rc = sim_crypto_ecb(SIM_ALG_DES, kk, 1, in, 8, out);
	OPENSSL_cleanse(kk, sizeof(kk));
	return rc;
}

int sim_crypto_div(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], const uint8_t f[8],
		   uint8_t out[SIM_KEY_LEN])
{
	uint8_t in[16];
	size_t i;
	int rc;

	/* DES: ENC3(K,f) || ENC3(K,~f) is ECB over f || ~f; SM4: one block f || ~f. Same input. */
	for (i = 0; i < 8; i++) {
		in[i] = f[i];
		in[8 + i] = (uint8_t)~f[i];
	}
	rc = sim_crypto_ecb(alg, key, 1, in, sizeof(in), out);
	OPENSSL_cleanse(in, sizeof(in));
	return rc;
}

int sim_crypto_card_key(enum sim_alg alg, const uint8_t master[SIM_KEY_LEN], const uint8_t city_div[8],
			const uint8_t card_div[8], uint8_t out[SIM_KEY_LEN])
{
	uint8_t city[SIM_KEY_LEN];
	int rc;

	rc = sim_crypto_div(alg, master, city_div, city);
	if (rc == 0)
		rc = sim_crypto_div(alg, city, card_div, out);
	OPENSSL_cleanse(city, sizeof(city));
	return rc;
}

int sim_crypto_session(enum sim_alg alg, const uint8_t kcard[SIM_KEY_LEN], const uint8_t *block,
		       uint8_t ks[SIM_KEY_LEN])
{
	memset(ks, 0, SIM_KEY_LEN);
	return sim_crypto_ecb(alg, kcard, 1, block, sim_crypto_block(alg), ks);
}

int sim_crypto_session_cipher(enum sim_alg alg, const uint8_t ks[SIM_KEY_LEN], const uint8_t *block,
			      uint8_t *out)
{
	if (alg == SIM_ALG_SM4)
		return sim_crypto_ecb(alg, ks, 1, block, 16, out);
	return sim_crypto_des1(ks, block, out);
}

int sim_crypto_cryptogram(enum sim_alg alg, const uint8_t ks[SIM_KEY_LEN], const uint8_t x[8],
			  uint8_t c[8])
{
	uint8_t in[16] = { 0 }, out[16];
	size_t i;

	memcpy(in, x, 8);
	if (sim_crypto_session_cipher(alg, ks, in, out) != 0)
		return -1;
	if (alg == SIM_ALG_SM4) {
		for (i = 0; i < 8; i++)
			c[i] = out[i] ^ out[8 + i];
	} else {
		memcpy(c, out, 8);
	}
	return 0;
}

int sim_crypto_mac(enum sim_alg alg, const uint8_t key[SIM_KEY_LEN], const uint8_t *iv,
		   const uint8_t *data, size_t len, uint8_t mac[4])
{
	size_t bs = sim_crypto_block(alg), nblocks = len / bs + 1, b, i, pos = 0;
	uint8_t h[16], blk[16];
	int rc = 0;

	memcpy(h, iv, bs);
	for (b = 0; b < nblocks && rc == 0; b++) {
		/* Take the next block of data; the last one carries the 80 00.. padding. */
		for (i = 0; i < bs; i++, pos++) {
			uint8_t v = pos < len ? data[pos] : (pos == len ? 0x80 : 0x00);
			blk[i] = h[i] ^ v;
		}
		if (alg == SIM_ALG_SM4)
			rc = sim_crypto_ecb(alg, key, 1, blk, 16, h);
		else if (b + 1 < nblocks)
			rc = sim_crypto_des1(key, blk, h);   /* CBC single DES with the left half */
		else
			rc = sim_crypto_ecb(alg, key, 1, blk, 8, h); /* last block: 3DES */
	}
	if (rc == 0)
		memcpy(mac, h, 4);
	OPENSSL_cleanse(h, sizeof(h));
	OPENSSL_cleanse(blk, sizeof(blk));
	return rc;
}

int sim_crypto_memcmp(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n);
}

void sim_crypto_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

int sim_crypto_random(uint8_t *p, size_t n)
{
	if (n > (size_t)INT32_MAX)
		return -1;
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

int sim_crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int outl = 0;

	if (EVP_Digest(data, len, out, &outl, EVP_sha256(), NULL) != 1 || outl != 32)
		return -1;
	return 0;
}
