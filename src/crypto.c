/*
 * This file contains the symmetric cryptography the daemon itself does (spec §12): block ciphers
 * through OpenSSL 3 EVP (default provider only), the CBC-MAC and the retail MAC of the 卡识别码
 * check. Intermediate values live on the stack and are wiped with OPENSSL_cleanse before returning.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "sscard/error.h"

int crypto_ecb_cipher(const EVP_CIPHER *cipher, const uint8_t *key, const uint8_t *in, size_t len,
		      uint8_t *out)
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
	return crypto_ecb_cipher(EVP_des_ede_ecb(), key, in, len, out);
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

int crypto_cbc_mac(size_t block, crypto_block_fn *mid, crypto_block_fn *last, const uint8_t *key,
		   const uint8_t *iv, const uint8_t *data, size_t len, uint8_t mac[4])
{
	uint8_t state[16], blk[16];
	size_t padded;
	int rc = 0;

	if (block == 0 || block > sizeof(state))
		return SSC_EINVAL;
	padded = (len / block + 1) * block;   /* always pad: 80 then 00s */
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
