/*
 * This file contains the sscard-v1 symmetric cryptography (spec §12.2–§12.5): block ciphers through
 * OpenSSL 3 EVP (default provider only), diversification, session keys, cryptograms and MACs.
 * Intermediate keys live on the stack and are wiped with OPENSSL_cleanse before returning.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "sscard/error.h"

/* One ECB pass of cipher over len bytes (a multiple of the block size), no padding. */
static int crypto_ecb_raw(const EVP_CIPHER *cipher, const uint8_t *key, const uint8_t *in,
			  size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx;
	int n1 = 0, n2 = 0;
	int rc = SSC_ECRYPTO;
	int block = EVP_CIPHER_get_block_size(cipher);

	if (block <= 0 || len % (size_t)block != 0 || len > 1024)
		return SSC_EINVAL;
	if (len == 0)
		return 0;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return SSC_ENOMEM;
	if (EVP_EncryptInit_ex2(ctx, cipher, key, NULL, NULL) != 1)
		goto out_free;
	if (EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)
		goto out_free;
	if (EVP_EncryptUpdate(ctx, out, &n1, in, (int)len) != 1)
		goto out_free;
	if (EVP_EncryptFinal_ex(ctx, out + n1, &n2) != 1)
		goto out_free;
	if ((size_t)n1 + (size_t)n2 != len)
		goto out_free;
	rc = 0;
out_free:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int crypto_enc3(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out)
{
	return crypto_ecb_raw(EVP_des_ede_ecb(), key, in, len, out);
}

int crypto_enc1(const uint8_t key[8], const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t kk[16];
	int rc;

	/* Single DES = 3DES-EDE with K1 = K2: plain DES lives in OpenSSL 3's legacy provider. */
	memcpy(kk, key, 8);
	memcpy(kk + 8, key, 8);
	rc = crypto_enc3(kk, in, len, out);
	OPENSSL_cleanse(kk, sizeof(kk));
	return rc;
}

int crypto_sm4(const uint8_t key[16], const uint8_t *in, size_t len, uint8_t *out)
{
	return crypto_ecb_raw(EVP_sm4_ecb(), key, in, len, out);
}

int crypto_ecb(enum ssc_alg alg, const uint8_t key[16], const uint8_t *in, size_t len,
	       uint8_t *out)
{
	switch (alg) {
	case SSC_ALG_DES:
		return crypto_enc3(key, in, len, out);
	case SSC_ALG_SM4:
		return crypto_sm4(key, in, len, out);
	default:
		return SSC_EINVAL;
	}
}

int crypto_div(enum ssc_alg alg, const uint8_t key[16], const uint8_t f[8], uint8_t out[16])
{
	uint8_t buf[16];
	int rc;

	for (int i = 0; i < 8; i++) {
		buf[i] = f[i];
		buf[8 + i] = (uint8_t)~f[i];
	}
	/* DES: ENC3(K,f) ‖ ENC3(K,~f) is one two-block ECB pass; SM4: one block of f ‖ ~f. */
	rc = crypto_ecb(alg, key, buf, sizeof(buf), out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int crypto_card_key(enum ssc_alg alg, const uint8_t master[16], const struct keyprov_div *div,
		    uint8_t k_card[16])
{
	uint8_t k_city[16];
	int rc;

	rc = crypto_div(alg, master, div->city_div, k_city);
	if (rc == 0)
		rc = crypto_div(alg, k_city, div->card_div, k_card);
	OPENSSL_cleanse(k_city, sizeof(k_city));
	return rc;
}

int crypto_session_key(enum ssc_alg alg, const uint8_t k_card[16], const uint8_t r[8],
		       uint8_t ks[16])
{
	uint8_t buf[16] = { 0 };

	memcpy(buf, r, 8);
	memset(ks, 0, 16);
	if (alg == SSC_ALG_DES)
		return crypto_enc3(k_card, buf, 8, ks);
	if (alg == SSC_ALG_SM4)
		return crypto_sm4(k_card, buf, 16, ks);
	return SSC_EINVAL;
}

int crypto_cryptogram(enum ssc_alg alg, const uint8_t ks[16], const uint8_t x[8], uint8_t c[8])
{
	uint8_t buf[16] = { 0 };
	uint8_t c16[16];
	int rc;

	if (alg == SSC_ALG_DES)
		return crypto_enc1(ks, x, 8, c);
	if (alg != SSC_ALG_SM4)
		return SSC_EINVAL;
	memcpy(buf, x, 8);
	rc = crypto_sm4(ks, buf, 16, c16);
	if (rc == 0)
		for (int i = 0; i < 8; i++)
			c[i] = c16[i] ^ c16[8 + i];
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(c16, sizeof(c16));
	return rc;
}

int crypto_cryptogram_master(enum ssc_alg alg, const uint8_t master[16],
			     const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			     uint8_t c[8])
{
	uint8_t k_card[16], ks[16];
	int rc;

	rc = crypto_card_key(alg, master, div, k_card);
	if (rc == 0)
		rc = crypto_session_key(alg, k_card, r, ks);
	if (rc == 0)
		rc = crypto_cryptogram(alg, ks, x, c);
	OPENSSL_cleanse(k_card, sizeof(k_card));
	OPENSSL_cleanse(ks, sizeof(ks));
	return rc;
}

/*
 * CBC over data padded 80 00.. to block bytes, with encrypt_block() applied to every block but
 * the last, and last_block() to the last one. Leaves the final chaining value in state.
 */
static int crypto_cbc_mac(size_t block, int (*mid)(const uint8_t *key, const uint8_t *in,
						   size_t len, uint8_t *out),
			  int (*last)(const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out),
			  const uint8_t *key, const uint8_t *iv, const uint8_t *data, size_t len,
			  uint8_t mac[4])
{
	uint8_t state[16], blk[16];
	size_t padded = (len / block + 1) * block;   /* always pad: 80 then 00s */
	int rc = 0;

	memcpy(state, iv, block);
	for (size_t off = 0; off < padded; off += block) {
		for (size_t i = 0; i < block; i++) {
			size_t k = off + i;
			uint8_t b = k < len ? data[k] : (k == len ? 0x80 : 0x00);

			blk[i] = state[i] ^ b;
		}
		rc = (off + block == padded ? last : mid)(key, blk, block, state);
		if (rc)
			break;
	}
	if (rc == 0)
		memcpy(mac, state, 4);
	OPENSSL_cleanse(state, sizeof(state));
	OPENSSL_cleanse(blk, sizeof(blk));
	return rc;
}

int crypto_retail_mac(const uint8_t key[16], const uint8_t iv[8], const uint8_t *data, size_t len,
		      uint8_t mac[4])
{
	/* CBC single DES with K_L (crypto_enc1 reads the first 8 key bytes), last block 3DES. */
	return crypto_cbc_mac(CRYPTO_DES_BLOCK, crypto_enc1, crypto_enc3, key, iv, data, len, mac);
}

int crypto_sm4_mac(const uint8_t key[16], const uint8_t iv[16], const uint8_t *data, size_t len,
		   uint8_t mac[4])
{
	return crypto_cbc_mac(CRYPTO_SM4_BLOCK, crypto_sm4, crypto_sm4, key, iv, data, len, mac);
}

int crypto_mac(enum ssc_alg alg, const uint8_t key[16], const uint8_t *iv, const uint8_t *data,
	       size_t len, uint8_t mac[4])
{
	if (alg == SSC_ALG_DES)
		return crypto_retail_mac(key, iv, data, len, mac);
	if (alg == SSC_ALG_SM4)
		return crypto_sm4_mac(key, iv, data, len, mac);
	return SSC_EINVAL;
}

int crypto_card_id_check(const uint8_t issuer_key[16], const uint8_t card_id[16])
{
	static const uint8_t iv0[8];
	uint8_t mac[4];
	int rc;

	rc = crypto_retail_mac(issuer_key, iv0, card_id, 12, mac);
	if (rc)
		return rc;
	return CRYPTO_memcmp(mac, card_id + 12, 4) == 0 ? 0 : SSC_EBADCARDDATA;
}
