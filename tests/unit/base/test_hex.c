/*
 * Unit tests of base/hex.c, the one hex codec: hand-written vectors both ways and in both cases,
 * every digit, bad input (odd lengths, non-digits, spaces, signs, "0x"), and the lengths: what
 * fits, what is cut short and what is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hex.h"
#include "sscard/error.h"

static void test_digit(void **state)
{
	(void)state;
	assert_int_equal(hex_digit('0'), 0);
	assert_int_equal(hex_digit('9'), 9);
	assert_int_equal(hex_digit('a'), 10);
	assert_int_equal(hex_digit('f'), 15);
	assert_int_equal(hex_digit('A'), 10);
	assert_int_equal(hex_digit('F'), 15);
	assert_int_equal(hex_digit('g'), -1);
	assert_int_equal(hex_digit('G'), -1);
	assert_int_equal(hex_digit('/'), -1);   /* the character before '0' */
	assert_int_equal(hex_digit(':'), -1);   /* the one after '9' */
	assert_int_equal(hex_digit('@'), -1);   /* before 'A' */
	assert_int_equal(hex_digit('`'), -1);   /* before 'a' */
	assert_int_equal(hex_digit(' '), -1);
	assert_int_equal(hex_digit('\0'), -1);
	assert_int_equal(hex_digit((char)0xC1), -1);
}

static void test_encode(void **state)
{
	static const uint8_t v[] = { 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFF };
	char out[21];

	(void)state;
	assert_int_equal(hex_encode(v, sizeof(v), out, sizeof(out), HEX_UPPER), 20);
	assert_string_equal(out, "000123456789ABCDEFFF");
	assert_int_equal(hex_encode(v, sizeof(v), out, sizeof(out), HEX_LOWER), 20);
	assert_string_equal(out, "000123456789abcdefff");
	/* Nothing to write: an empty string. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 0, out, 1, HEX_UPPER), 0);
	assert_string_equal(out, "");
	assert_int_equal(hex_encode(NULL, 0, out, sizeof(out), HEX_LOWER), 0);
	assert_string_equal(out, "");
}

static void test_encode_lengths(void **state)
{
	static const uint8_t v[] = { 0x3B, 0x6C, 0x00, 0x02 };
	char out[16];

	(void)state;
	/* Exactly enough: 8 digits and the NUL. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 4, out, 9, HEX_UPPER), 8);
	assert_string_equal(out, "3B6C0002");
	/* One byte short: the whole bytes that fit (3), a NUL, SSC_ELIMIT; nothing past cap. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 4, out, 8, HEX_UPPER), SSC_ELIMIT);
	assert_string_equal(out, "3B6C00");
	assert_int_equal(out[8], 'x');
	/* Room for half a byte's digits only: no half byte is written. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 4, out, 2, HEX_UPPER), SSC_ELIMIT);
	assert_string_equal(out, "");
	assert_int_equal(out[1], 'x');
	/* cap 1: the NUL only; cap 0: nothing at all. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 4, out, 1, HEX_UPPER), SSC_ELIMIT);
	assert_int_equal(out[0], '\0');
	assert_int_equal(out[1], 'x');
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(v, 4, out, 0, HEX_UPPER), SSC_ELIMIT);
	assert_int_equal(out[0], 'x');
}

static void test_decode(void **state)
{
	uint8_t out[8];

	(void)state;
	memset(out, 0xEE, sizeof(out));
	assert_int_equal(hex_decode("00ff7Fa0", 8, out, sizeof(out)), 4);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0xFF);
	assert_int_equal(out[2], 0x7F);
	assert_int_equal(out[3], 0xA0);
	assert_int_equal(out[4], 0xEE);   /* nothing past the decoded bytes */
	/* Every digit in both cases. */
	assert_int_equal(hex_decode("0123456789abcdef", 16, out, sizeof(out)), 8);
	assert_memory_equal(out, "\x01\x23\x45\x67\x89\xAB\xCD\xEF", 8);
	assert_int_equal(hex_decode("FEDCBA9876543210", 16, out, sizeof(out)), 8);
	assert_memory_equal(out, "\xFE\xDC\xBA\x98\x76\x54\x32\x10", 8);
	/* len, not the NUL, ends the text: a prefix of a longer string. */
	assert_int_equal(hex_decode("C1C2zz", 4, out, sizeof(out)), 2);
	assert_memory_equal(out, "\xC1\xC2", 2);
	/* Empty text: no bytes. */
	assert_int_equal(hex_decode("", 0, out, 0), 0);
}

static void test_decode_bad(void **state)
{
	uint8_t out[8];

	(void)state;
	/* Odd lengths. */
	assert_int_equal(hex_decode("0", 1, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("ABC", 3, out, sizeof(out)), SSC_EINVAL);
	/* Characters that are not hex digits, in either place of a pair. */
	assert_int_equal(hex_decode("0g", 2, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("g0", 2, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("0011GG", 6, out, sizeof(out)), SSC_EINVAL);
	/* What sscanf("%2x") would take and a strict decoder must not: spaces, signs, "0x". */
	assert_int_equal(hex_decode(" 1", 2, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("+1", 2, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("-1", 2, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("0x12", 4, out, sizeof(out)), SSC_EINVAL);
	/* A NUL inside the counted length is not a digit. */
	assert_int_equal(hex_decode("1\0" "2", 3, out, sizeof(out)), SSC_EINVAL);
	assert_int_equal(hex_decode("12\0\0", 4, out, sizeof(out)), SSC_EINVAL);
}

static void test_decode_lengths(void **state)
{
	uint8_t out[4];

	(void)state;
	/* Exactly cap bytes fit. */
	assert_int_equal(hex_decode("01020304", 8, out, 4), 4);
	assert_memory_equal(out, "\x01\x02\x03\x04", 4);
	/* One byte too many: refused before anything is written. */
	memset(out, 0xEE, sizeof(out));
	assert_int_equal(hex_decode("0102030405", 10, out, 4), SSC_ELIMIT);
	assert_memory_equal(out, "\xEE\xEE\xEE\xEE", 4);
	assert_int_equal(hex_decode("01", 2, out, 0), SSC_ELIMIT);
	/* An odd length is SSC_EINVAL even when it is also too long. */
	assert_int_equal(hex_decode("010203040", 9, out, 4), SSC_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digit),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_lengths),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_decode_bad),
		cmocka_unit_test(test_decode_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
