/*
 * Unit tests of src/crypto.c and of the tests' reference key chain on it (test_crypto_ref.h):
 * every synthetic vector of spec §12.8, with the expected bytes copied by hand from the spec
 * (never produced by the code under test), plus the padding edge cases of the MACs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "test_crypto_ref.h"
#include "sscard/error.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (s[0] && s[1] && n < cap) {
		unsigned v;
		char b[3] = { s[0], s[1], 0 };

		if (s[0] == ' ') {
			s++;
			continue;
		}
		v = (unsigned)strtoul(b, NULL, 16);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

#define HEX(name, str) \
	uint8_t name[64]; \
	size_t name##_len = unhex(str, name, sizeof(name)); \
	(void)name##_len

static const char *MASTER = "00112233445566778899AABBCCDDEEFF";

static void vector_div(struct keyprov_div *d)
{
	/* region 330100 -> "330100" "sx"; cardDiv 0011223344556677 (spec §12.8). */
	unhex("3333303130307378", d->city_div, 8);
	unhex("0011223344556677", d->card_div, 8);
}

static void test_des_chain(void **state)
{
	HEX(master, MASTER);
	HEX(r, "1122334455667788");
	HEX(exp_city, "BB4EB3154D6ACD6591D32A3B0CAB50C8");
	HEX(exp_card, "6338AE1CE827A076114743A2BB2FB55E");
	HEX(exp_ks, "053A88D92EFC1FB3");
	HEX(exp_c, "4BA5C1F9D6C57F0F");
	struct keyprov_div d;
	uint8_t k_city[16], k_card[16], ks[16], c[8];

	(void)state;
	vector_div(&d);
	assert_int_equal(ref_div(SSC_ALG_DES, master, d.city_div, k_city), 0);
	assert_memory_equal(k_city, exp_city, 16);
	assert_int_equal(ref_card_key(SSC_ALG_DES, master, &d, k_card), 0);
	assert_memory_equal(k_card, exp_card, 16);
	assert_int_equal(ref_session_key(SSC_ALG_DES, k_card, r, ks), 0);
	assert_memory_equal(ks, exp_ks, 8);
	assert_int_equal(ref_cryptogram(SSC_ALG_DES, ks, r, c), 0);
	assert_memory_equal(c, exp_c, 8);
	memset(c, 0, sizeof(c));
	assert_int_equal(ref_cryptogram_master(SSC_ALG_DES, master, &d, r, r, c), 0);
	assert_memory_equal(c, exp_c, 8);
}

static void test_sm4_chain(void **state)
{
	HEX(master, MASTER);
	HEX(r, "1122334455667788");
	HEX(exp_card, "3D41F42177A78BF3C435D48F6F53C7C0");
	HEX(exp_ks, "1990312FF7E77C833091F2BCFD0509E1");
	HEX(exp_c, "5E581E4BB536B207");
	struct keyprov_div d;
	uint8_t k_card[16], ks[16], c[8];

	(void)state;
	vector_div(&d);
	assert_int_equal(ref_card_key(SSC_ALG_SM4, master, &d, k_card), 0);
	assert_memory_equal(k_card, exp_card, 16);
	assert_int_equal(ref_session_key(SSC_ALG_SM4, k_card, r, ks), 0);
	assert_memory_equal(ks, exp_ks, 16);
	assert_int_equal(ref_cryptogram(SSC_ALG_SM4, ks, r, c), 0);
	assert_memory_equal(c, exp_c, 8);
	memset(c, 0, sizeof(c));
	assert_int_equal(ref_cryptogram_master(SSC_ALG_SM4, master, &d, r, r, c), 0);
	assert_memory_equal(c, exp_c, 8);
}

static void test_card_id_mac(void **state)
{
	HEX(key, "0123456789ABCDEFFEDCBA9876543210");
	HEX(id, "330100D15600000500BF7C7AC9FC0FEC");
	HEX(iv0, "0000000000000000");
	uint8_t mac[4];

	(void)state;
	assert_int_equal(crypto_retail_mac(key, iv0, id, 12, mac), 0);
	assert_memory_equal(mac, id + 12, 4);
	assert_int_equal(crypto_card_id_check(key, id), 0);
	id[15] ^= 0x01;
	assert_int_equal(crypto_card_id_check(key, id), SSC_EBADCARDDATA);
	id[15] ^= 0x01;
	id[3] ^= 0x10;   /* a changed body must fail too */
	assert_int_equal(crypto_card_id_check(key, id), SSC_EBADCARDDATA);
}

static void test_internal_auth(void **state)
{
	HEX(master, MASTER);
	HEX(p, "0102030405060708");
	HEX(x, "A1A2A3A4A5A6A7A8");
	HEX(exp_des, "D2FFA2E969F241C5");
	HEX(exp_sm4, "D9B357F70108DCD8");
	struct keyprov_div d;
	uint8_t c[8];

	(void)state;
	vector_div(&d);
	assert_int_equal(ref_cryptogram_master(SSC_ALG_DES, master, &d, p, x, c), 0);
	assert_memory_equal(c, exp_des, 8);
	assert_int_equal(ref_cryptogram_master(SSC_ALG_SM4, master, &d, p, x, c), 0);
	assert_memory_equal(c, exp_sm4, 8);
}

static void test_append_mac(void **state)
{
	HEX(k_des, "6338AE1CE827A076114743A2BB2FB55E");
	HEX(k_sm4, "3D41F42177A78BF3C435D48F6F53C7C0");
	HEX(data, "04E200400E40330102030405060708");
	HEX(iv_des, "1122334400000000");
	HEX(iv_sm4, "11223344556677880000000000000000");
	HEX(exp_des, "F45CDC9E");
	HEX(exp_sm4, "F0BBB681");
	uint8_t mac[4];

	(void)state;
	assert_int_equal(data_len, 15);
	assert_int_equal(ref_mac(SSC_ALG_DES, k_des, iv_des, data, data_len, mac), 0);
	assert_memory_equal(mac, exp_des, 4);
	assert_int_equal(ref_mac(SSC_ALG_SM4, k_sm4, iv_sm4, data, data_len, mac), 0);
	assert_memory_equal(mac, exp_sm4, 4);
	/* One byte less must change the MAC (the padding is part of the input). */
	assert_int_equal(ref_mac(SSC_ALG_DES, k_des, iv_des, data, data_len - 1, mac), 0);
	assert_memory_not_equal(mac, exp_des, 4);
}

static void test_pin_block(void **state)
{
	HEX(k_des, "6338AE1CE827A076114743A2BB2FB55E");
	HEX(k_sm4, "3D41F42177A78BF3C435D48F6F53C7C0");
	HEX(blk_des, "0312345680000000");
	HEX(blk_sm4, "03123456800000000000000000000000");
	HEX(exp_des, "DA44BA6FAA847AB5");
	HEX(exp_sm4, "83C3ED41A77006B703C3722B4878B665");
	uint8_t out[16];

	(void)state;
	assert_int_equal(ref_ecb(SSC_ALG_DES, k_des, blk_des, 8, out), 0);
	assert_memory_equal(out, exp_des, 8);
	assert_int_equal(ref_ecb(SSC_ALG_SM4, k_sm4, blk_sm4, 16, out), 0);
	assert_memory_equal(out, exp_sm4, 16);
}

static void test_errors(void **state)
{
	uint8_t k[16] = { 0 }, in[16] = { 0 }, out[16];

	(void)state;
	assert_int_equal(crypto_enc3(k, in, 7, out), SSC_EINVAL);
	assert_int_equal(ref_sm4(k, in, 8, out), SSC_EINVAL);
	assert_int_equal(ref_ecb(SSC_ALG_NONE, k, in, 16, out), SSC_EINVAL);
	assert_int_equal(ref_div((enum ssc_alg)2, k, in, out), SSC_EINVAL);
	/* crypto_cbc_mac's state holds one block of at most 16 bytes. */
	assert_int_equal(crypto_cbc_mac(32, crypto_enc1, crypto_enc3, k, in, in, 16, out), SSC_EINVAL);
	assert_int_equal(crypto_cbc_mac(0, crypto_enc1, crypto_enc3, k, in, in, 16, out), SSC_EINVAL);
}

static void test_enc1_is_des(void **state)
{
	/* FIPS 81 / classic DES vector: K 0123456789ABCDEF, P "Now is t" -> 3FA40E8A984D4815. */
	HEX(k, "0123456789ABCDEF");
	HEX(p, "4E6F772069732074");
	HEX(exp, "3FA40E8A984D4815");
	uint8_t c[8];

	(void)state;
	assert_int_equal(crypto_enc1(k, p, 8, c), 0);
	assert_memory_equal(c, exp, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_des_chain),
		cmocka_unit_test(test_sm4_chain),
		cmocka_unit_test(test_card_id_mac),
		cmocka_unit_test(test_internal_auth),
		cmocka_unit_test(test_append_mac),
		cmocka_unit_test(test_pin_block),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_enc1_is_des),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
