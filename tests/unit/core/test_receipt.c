/*
 * Unit tests of the receipts of claim.verify_holder (src/receipt.c): the text for fixed inputs (a
 * fixed time and fixed "random" factor and answer) against a string written by hand; the
 * plaintext against SM3 computed with `openssl dgst -sm3` (hand-copied); SM2-SM3 and Ed25519
 * signatures that verify, and fail on one altered byte, another key, a wrong algorithm name or a
 * signature that is no base64; the key file's permission check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "receipt.h"

static void fill(struct receipt_in *in)
{
	static const uint8_t factor[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	static const uint8_t answer[8] = { 0xD2, 0xFF, 0xA2, 0xE9, 0x69, 0xF2, 0x41, 0xC5 };

	memset(in, 0, sizeof(*in));
	in->time = "2026-03-01T08:00:00Z";
	in->request_id = "claim-7";
	in->terminal_number = "330100000001";
	in->reader = "pcsc-virtual-pcd-00-00";
	in->card_number = "X00000019";
	in->card_id = "330100D15600000500BF7C7AC9FC0FEC";
	in->ssn = "330102199003071230";
	in->region_code = "330100";
	in->atr_historical = "0081544C92868433010000BF7C7A";
	in->algorithm = "des";
	memcpy(in->factor, factor, 8);
	memcpy(in->answer, answer, 8);
	in->pin_verified = 1;
}

static void test_text(void **state)
{
	/* SM3("claim-7|2026-03-01T08:00:00Z|330100000001|330100D15600000500BF7C7AC9FC0FEC"),
	 * its first 8 bytes, from the openssl command line. */
	static const uint8_t want_x[8] = { 0xA6, 0xEC, 0x05, 0x85, 0x25, 0x48, 0xAF, 0x29 };
	static const char want[] =
		"{\"version\":1,\"time\":\"2026-03-01T08:00:00Z\",\"request_id\":\"claim-7\","
		"\"terminal_number\":\"330100000001\",\"reader\":\"pcsc-virtual-pcd-00-00\","
		"\"card_number\":\"X00000019\",\"card_id\":\"330100D15600000500BF7C7AC9FC0FEC\","
		"\"ssn\":\"330102199003071230\",\"region_code\":\"330100\","
		"\"atr_historical\":\"0081544C92868433010000BF7C7A\",\"algorithm\":\"des\","
		"\"internal_auth\":{\"factor\":\"0102030405060708\",\"plaintext\":\"A6EC05852548AF29\","
		"\"answer\":\"D2FFA2E969F241C5\"},\"pin_verified\":true}";
	struct receipt_in in;
	char *text;

	(void)state;
	fill(&in);
	assert_int_equal(receipt_plaintext(&in, in.plaintext), 0);
	assert_memory_equal(in.plaintext, want_x, 8);
	text = receipt_text(&in);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
	/* Strings are JSON-escaped, UTF-8 kept as it is. */
	in.request_id = "a\"b\\c 申领";
	in.pin_verified = 0;
	text = receipt_text(&in);
	assert_non_null(strstr(text, "\"request_id\":\"a\\\"b\\\\c 申领\""));
	assert_non_null(strstr(text, "\"pin_verified\":false}"));
	free(text);
}

static void sign_and_check(const char *type, const char *alg)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, type), *other = EVP_PKEY_Q_keygen(NULL, NULL,
										     type);
	static const char msg[] = "{\"version\":1}";
	struct ssc_diag d;
	char *sig = NULL;

	assert_non_null(key);
	assert_non_null(other);
	assert_string_equal(receipt_key_algorithm(key), alg);
	ssc_diag_init(&d);
	assert_int_equal(receipt_sign(key, (const uint8_t *)msg, strlen(msg), &sig, &d), 0);
	assert_non_null(sig);
	if (strcmp(alg, RECEIPT_ALG_ED25519) == 0)
		assert_int_equal(strlen(sig), 88);   /* 64 bytes */
	assert_int_equal(receipt_verify(key, alg, (const uint8_t *)msg, strlen(msg), sig, &d), 0);
	assert_int_equal(receipt_verify(key, alg, (const uint8_t *)"{\"version\":2}", strlen(msg),
					sig, &d), SSC_EBADCARDDATA);
	assert_int_equal(receipt_verify(other, alg, (const uint8_t *)msg, strlen(msg), sig, &d),
			 SSC_EBADCARDDATA);
	assert_int_equal(receipt_verify(key, "RSA", (const uint8_t *)msg, strlen(msg), sig, &d),
			 SSC_EINVAL);
	assert_int_equal(receipt_verify(key, alg, (const uint8_t *)msg, strlen(msg), "not base64!",
					&d), SSC_EINVAL);
	free(sig);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void test_sign_sm2(void **state)
{
	(void)state;
	sign_and_check("SM2", RECEIPT_ALG_SM2);
}

static void test_sign_ed25519(void **state)
{
	(void)state;
	sign_and_check("ED25519", RECEIPT_ALG_ED25519);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/ssc-receipt-XXXXXX", path[64];
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *got = NULL;
	struct ssc_diag d;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k.pem", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	ssc_diag_init(&d);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(receipt_key_load(path, &got, &d), SSC_ECONFIG);
	assert_null(got);
	assert_non_null(strstr(d.msg, "others may read it"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(receipt_key_load(path, &got, &d), 0);
	assert_int_equal(EVP_PKEY_eq(got, key), 1);
	EVP_PKEY_free(got);
	unlink(path);
	assert_int_equal(receipt_key_load(path, &got, &d), SSC_ECONFIG);
	rmdir(dir);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_sign_sm2),
		cmocka_unit_test(test_sign_ed25519),
		cmocka_unit_test(test_key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
