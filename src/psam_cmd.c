/*
 * This file contains the PSAM's commands of spec §12.6 as bytes (DELIVER KEY, CIPHER, MAC,
 * ENCRYPT) and the fold of an SM4 cryptogram, shared by the key providers so that a PSAM in a
 * reader and the network PSAM get exactly the same commands.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "psam_cmd.h"

static int psam_cmd_alg_ok(enum ssc_alg alg)
{
	return alg == SSC_ALG_DES || alg == SSC_ALG_SM4;
}

int psam_cmd_deliver_key(uint8_t *cmd, size_t cap, enum ssc_alg alg, const struct config_key *key,
			 const struct keyprov_div *div, const uint8_t *r)
{
	uint8_t data[32] = { 0 };
	size_t lc = 16;
	int n;

	if (!psam_cmd_alg_ok(alg))
		return SSC_EINVAL;
	memcpy(data, div->card_div, 8);
	memcpy(data + 8, div->city_div, 8);
	if (r) {
		memcpy(data + 16, r, 8);
		lc = alg == SSC_ALG_SM4 ? 32 : 24;
	}
	n = apdu_build(cmd, cap, 0xBF, 0xDE, key->usage, key->index, data, lc, APDU_LE_NONE);
	OPENSSL_cleanse(data, sizeof(data));
	return n;
}

int psam_cmd_cipher(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t x[8])
{
	uint8_t data[16] = { 0 };

	if (!psam_cmd_alg_ok(alg))
		return SSC_EINVAL;
	memcpy(data, x, 8);
	return apdu_build(cmd, cap, 0x80, 0xFA, 0x00, 0x00, data, alg == SSC_ALG_SM4 ? 16 : 8,
			  APDU_LE_NONE);
}

int psam_cmd_mac(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t *iv,
		 const uint8_t *data, size_t len)
{
	size_t ivlen = alg == SSC_ALG_SM4 ? 16 : 8;
	uint8_t body[255];
	int n;

	if (!psam_cmd_alg_ok(alg) || len > sizeof(body) - ivlen)
		return SSC_EINVAL;
	memcpy(body, iv, ivlen);
	memcpy(body + ivlen, data, len);
	n = apdu_build(cmd, cap, 0x80, 0xFA, 0x05, 0x00, body, ivlen + len, APDU_LE_NONE);
	OPENSSL_cleanse(body, sizeof(body));
	return n;
}

int psam_cmd_encrypt(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t *in, size_t len)
{
	size_t block = alg == SSC_ALG_SM4 ? 16 : 8;

	if (!psam_cmd_alg_ok(alg) || len == 0 || len > 32 || len % block)
		return SSC_EINVAL;
	return apdu_build(cmd, cap, 0x80, 0xFA, 0x01, 0x00, in, len, APDU_LE_NONE);
}

int psam_cmd_cryptogram(enum ssc_alg alg, const uint8_t *data, size_t len, uint8_t c[8])
{
	if (alg == SSC_ALG_DES && len == 8) {
		memcpy(c, data, 8);
		return 0;
	}
	if (alg == SSC_ALG_SM4 && len == 16) {
		for (int i = 0; i < 8; i++)
			c[i] = (uint8_t)(data[i] ^ data[8 + i]);
		return 0;
	}
	return SSC_EPROTO;
}
