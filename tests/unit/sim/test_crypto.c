/*
 * Unit tests of the simulator's cryptography (sim_crypto.c) against every §12.8 vector of the
 * spec, written here by hand from the spec text, and a cross-check with the openssl command line.
 */
#include "sim_test.h"
#include "sim_crypto.h"

#include <unistd.h>

static void hexeq(const uint8_t *got, size_t n, const char *exp)
{
	uint8_t e[64];
	char g[129];

	assert_int_equal(th_hex(exp, e, sizeof(e)), n);
	th_tohex(got, n, g);
	if (memcmp(got, e, n) != 0)
		fail_msg("got %s, expected %s", g, exp);
}

static const char *const master = "00112233445566778899AABBCCDDEEFF";
static const char *const city = "3333303130307378";   /* "330100" || "sx" */
static const char *const serial = "0011223344556677";
static const char *const rx = "1122334455667788";

static void test_des_vectors(void **state)
{
	uint8_t k[16], f[8], c8[8], kc[16], kcard[16], ks[16], r[8], c[8];

	(void)state;
	th_hex(master, k, 16);
	th_hex(city, f, 8);
	th_hex(serial, c8, 8);
	th_hex(rx, r, 8);
	assert_int_equal(sim_crypto_div(SIM_ALG_DES, k, f, kc), 0);
	hexeq(kc, 16, "BB4EB3154D6ACD6591D32A3B0CAB50C8");
	assert_int_equal(sim_crypto_card_key(SIM_ALG_DES, k, f, c8, kcard), 0);
	hexeq(kcard, 16, "6338AE1CE827A076114743A2BB2FB55E");
	assert_int_equal(sim_crypto_session(SIM_ALG_DES, kcard, r, ks), 0);
	hexeq(ks, 8, "053A88D92EFC1FB3");
	assert_int_equal(sim_crypto_cryptogram(SIM_ALG_DES, ks, r, c), 0);
	hexeq(c, 8, "4BA5C1F9D6C57F0F");
}

static void test_sm4_vectors(void **state)
{
	uint8_t k[16], f[8], c8[8], kcard[16], ks[16], blk[16] = { 0 }, c[8];

	(void)state;
	th_hex(master, k, 16);
	th_hex(city, f, 8);
	th_hex(serial, c8, 8);
	th_hex(rx, blk, 8);
	assert_int_equal(sim_crypto_card_key(SIM_ALG_SM4, k, f, c8, kcard), 0);
	hexeq(kcard, 16, "3D41F42177A78BF3C435D48F6F53C7C0");
	assert_int_equal(sim_crypto_session(SIM_ALG_SM4, kcard, blk, ks), 0);
	hexeq(ks, 16, "1990312FF7E77C833091F2BCFD0509E1");
	assert_int_equal(sim_crypto_cryptogram(SIM_ALG_SM4, ks, blk, c), 0);
	hexeq(c, 8, "5E581E4BB536B207");
}

static void test_internal_auth_vectors(void **state)
{
	uint8_t kd[16], ksm[16], p[16] = { 0 }, x[8], ks[16], c[8];

	(void)state;
	th_hex("6338AE1CE827A076114743A2BB2FB55E", kd, 16);
	th_hex("3D41F42177A78BF3C435D48F6F53C7C0", ksm, 16);
	th_hex("0102030405060708", p, 8);
	th_hex("A1A2A3A4A5A6A7A8", x, 8);
	assert_int_equal(sim_crypto_session(SIM_ALG_DES, kd, p, ks), 0);
	assert_int_equal(sim_crypto_cryptogram(SIM_ALG_DES, ks, x, c), 0);
	hexeq(c, 8, "D2FFA2E969F241C5");
	assert_int_equal(sim_crypto_session(SIM_ALG_SM4, ksm, p, ks), 0);
	assert_int_equal(sim_crypto_cryptogram(SIM_ALG_SM4, ks, x, c), 0);
	hexeq(c, 8, "D9B357F70108DCD8");
}

static void test_mac_vectors(void **state)
{
	uint8_t kd[16], ksm[16], data[32], iv[16], mac[4], ik[16], zero[8] = { 0 };
	size_t n;

	(void)state;
	th_hex("6338AE1CE827A076114743A2BB2FB55E", kd, 16);
	th_hex("3D41F42177A78BF3C435D48F6F53C7C0", ksm, 16);
	n = th_hex("04E200400E" "40330102030405060708", data, sizeof(data));
	th_hex("1122334400000000", iv, 8);
	assert_int_equal(sim_crypto_mac(SIM_ALG_DES, kd, iv, data, n, mac), 0);
	hexeq(mac, 4, "F45CDC9E");
	th_hex("11223344556677880000000000000000", iv, 16);
	assert_int_equal(sim_crypto_mac(SIM_ALG_SM4, ksm, iv, data, n, mac), 0);
	hexeq(mac, 4, "F0BBB681");
	/* 卡识别码: DES retail MAC with the issuer key, IV 0, over the 12-byte body. */
	th_hex("0123456789ABCDEFFEDCBA9876543210", ik, 16);
	n = th_hex("330100D15600000500BF7C7A", data, sizeof(data));
	assert_int_equal(sim_crypto_mac(SIM_ALG_DES, ik, zero, data, n, mac), 0);
	hexeq(mac, 4, "C9FC0FEC");
}

static void test_pin_block_vectors(void **state)
{
	uint8_t kd[16], ksm[16], blk[16], out[16];

	(void)state;
	th_hex("6338AE1CE827A076114743A2BB2FB55E", kd, 16);
	th_hex("3D41F42177A78BF3C435D48F6F53C7C0", ksm, 16);
	th_hex("0312345680000000", blk, 8);
	assert_int_equal(sim_crypto_ecb(SIM_ALG_DES, kd, 1, blk, 8, out), 0);
	hexeq(out, 8, "DA44BA6FAA847AB5");
	assert_int_equal(sim_crypto_ecb(SIM_ALG_DES, kd, 0, out, 8, out), 0);
	hexeq(out, 8, "0312345680000000");
	th_hex("03123456800000000000000000000000", blk, 16);
	assert_int_equal(sim_crypto_ecb(SIM_ALG_SM4, ksm, 1, blk, 16, out), 0);
	hexeq(out, 16, "83C3ED41A77006B703C3722B4878B665");
	assert_int_equal(sim_crypto_ecb(SIM_ALG_SM4, ksm, 1, blk, 7, out), -1);   /* not a block */
}

/* Runs `openssl enc` on hex input; returns the output length or -1 when openssl is unavailable. */
static int openssl_enc(const char *cipher, const char *key, const char *in_hex, uint8_t *out, size_t cap)
{
	char cmd[512], inpath[] = "/tmp/simcos-openssl-XXXXXX";
	uint8_t in[64];
	size_t n = th_hex(in_hex, in, sizeof(in)), got;
	FILE *f;
	int fd = mkstemp(inpath);

	if (fd < 0)
		return -1;
	if (write(fd, in, n) != (ssize_t)n) {
		close(fd);
		unlink(inpath);
		return -1;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "openssl enc -%s -K %s -nopad -in %s 2>/dev/null", cipher, key, inpath);
	f = popen(cmd, "r");
	if (f == NULL) {
		unlink(inpath);
		return -1;
	}
	got = fread(out, 1, cap, f);
	if (pclose(f) != 0)
		got = 0;
	unlink(inpath);
	return got > 0 ? (int)got : -1;
}

/* The same bytes as the openssl command line for 2-key 3DES and SM4 ECB (spec §12.8's note). */
static void test_openssl_cli_cross_check(void **state)
{
	uint8_t key[16], in[32], mine[32], theirs[32];
	int n;

	(void)state;
	th_hex(master, key, 16);
	th_hex("3333303130307378CCCCCFCECFCF8C87", in, 16);   /* cityDiv || ~cityDiv */
	n = openssl_enc("des-ede-ecb", master, "3333303130307378CCCCCFCECFCF8C87", theirs, sizeof(theirs));
	if (n < 0)
		skip();
	assert_int_equal(n, 16);
	assert_int_equal(sim_crypto_ecb(SIM_ALG_DES, key, 1, in, 16, mine), 0);
	assert_memory_equal(mine, theirs, 16);
	hexeq(theirs, 16, "BB4EB3154D6ACD6591D32A3B0CAB50C8");   /* = K_city of §12.8 */
	n = openssl_enc("sm4-ecb", master, "3333303130307378CCCCCFCECFCF8C87", theirs, sizeof(theirs));
	assert_int_equal(n, 16);
	assert_int_equal(sim_crypto_ecb(SIM_ALG_SM4, key, 1, in, 16, mine), 0);
	assert_memory_equal(mine, theirs, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_des_vectors),
		cmocka_unit_test(test_sm4_vectors),
		cmocka_unit_test(test_internal_auth_vectors),
		cmocka_unit_test(test_mac_vectors),
		cmocka_unit_test(test_pin_block_vectors),
		cmocka_unit_test(test_openssl_cli_cross_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
