/*
 * Unit tests of src/items.c and src/gbk.c: file and tag names, decoding of hand-written record
 * values per spec §12.9 (cn, dates, an with GBK, binary, the §12.7 transaction record), the card
 * number check character of §2.6, and encoding for writes.
 */
#include "test_card_util.h"

#include "gbk.h"
#include "items.h"

static struct item_file file(const char *name)
{
	struct item_file f;

	assert_int_equal(items_file_parse(name, &f), 0);
	return f;
}

static struct item_def item(const struct item_file *f, uint8_t tag)
{
	struct item_def it;

	assert_int_equal(items_find(f, tag, &it), 0);
	return it;
}

static void test_names(void **state)
{
	struct item_file f;
	uint8_t tag;
	struct item_def it;

	(void)state;
	assert_int_equal(items_file_parse("ssse/ef06", &f), 0);
	assert_string_equal(f.name, "SSSE/EF06");
	assert_int_equal(f.sfi, 6);
	assert_int_equal(f.df, 0);
	assert_int_equal(items_file_parse("DF04/EF08", &f), 0);
	assert_int_equal(f.df, 4);
	assert_int_equal(f.sfi, 8);
	assert_true(f.cyclic);
	assert_int_equal(items_file_parse("SSSE/EF0D", &f), 0);
	assert_int_equal(f.min_gen, 3);
	assert_int_equal(items_file_parse("DF01/EF05", &f), 0);
	assert_true(f.generic);
	assert_int_equal(items_file_parse("df03/ef15", &f), 0);
	assert_string_equal(f.name, "DF03/EF15");
	assert_int_equal(f.sfi, 0x15);
	assert_int_equal(items_find(&f, 0x20, &it), 0);
	assert_int_equal(items_find(&f, 0xFF, &it), SSC_EBADITEM);

	assert_int_equal(items_file_parse("SSSE/EF07", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("DF04/EF07", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("DF06/EF05", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("DF01/EF1F", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("DF01/EF00", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("3F00EF06", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("SSSE/EF06 ", &f), SSC_EBADITEM);
	assert_int_equal(items_file_parse("", &f), SSC_EBADITEM);

	assert_int_equal(items_parse_tag("4e", &tag), 0);
	assert_int_equal(tag, 0x4E);
	assert_int_equal(items_parse_tag("08", &tag), 0);
	assert_int_equal(tag, 0x08);
	assert_int_equal(items_parse_tag("8", &tag), SSC_EBADITEM);
	assert_int_equal(items_parse_tag("0x08", &tag), SSC_EBADITEM);
	assert_int_equal(items_parse_tag("G1", &tag), SSC_EBADITEM);

	f = file("SSSE/EF06");
	assert_int_equal(items_find(&f, 0x01, &it), SSC_EBADITEM);
	it = item(&f, 0x4E);
	assert_int_equal(it.rec, 3);
	assert_int_equal(it.rec_v1, 0);
	it = item(&f, 0x0A);
	assert_int_equal(it.rec, 4);
	assert_int_equal(it.rec_v1, 3);
}

static void check_decode(const char *fname, uint8_t tag, const char *hex, int want_rc,
			 const char *want)
{
	struct item_file f = file(fname);
	struct item_def it = item(&f, tag);
	struct ssc_diag d;
	uint8_t v[64];
	size_t n = tu_unhex(hex, v, sizeof(v));
	char text[ITEM_TEXT_MAX];
	int rc;

	ssc_diag_init(&d);
	rc = items_decode(&f, &it, v, n, text, sizeof(text), &d);
	if (want_rc < 0) {
		assert_int_equal(rc, want_rc);
		/* The message names the file and the item, never the value. */
		assert_non_null(strstr(d.msg, fname));
		return;
	}
	assert_int_equal(rc, (int)strlen(want));
	assert_string_equal(text, want);
}

static void test_decode(void **state)
{
	(void)state;
	/* cn */
	check_decode("SSSE/EF06", 0x0B, "01", 0, "01");
	check_decode("SSSE/EF06", 0x0C, "330100", 0, "330100");
	check_decode("SSSE/EF0D", 0xEB, "33010F", 0, "33010");
	check_decode("SSSE/EF0D", 0xEB, "3301FF", 0, "3301");
	check_decode("SSSE/EF0D", 0xEB, "FFFFFF", 0, "");
	check_decode("SSSE/EF06", 0x0C, "3A0100", SSC_EBADCARDDATA, NULL);
	check_decode("SSSE/EF06", 0x0C, "3F0100", SSC_EBADCARDDATA, NULL);   /* F inside */
	/* dates */
	check_decode("SSSE/EF05", 0x05, "20240101", 0, "20240101");
	check_decode("SSSE/EF05", 0x06, "FFFFFFFF", 0, "");
	check_decode("SSSE/EF05", 0x06, "20241301", SSC_EBADCARDDATA, NULL);
	check_decode("SSSE/EF05", 0x06, "20240100", SSC_EBADCARDDATA, NULL);
	check_decode("SSSE/EF05", 0x06, "202401FF", SSC_EBADCARDDATA, NULL);
	/* an: 00 and FF padding only */
	check_decode("SSSE/EF05", 0x03, "322E3030", 0, "2.00");
	check_decode("SSSE/EF06", 0x0A, "31", 0, "1");
	check_decode("SSSE/EF06", 0x09, "D5C5C8FD0000000000", 0, "\xE5\xBC\xA0\xE4\xB8\x89");
	check_decode("SSSE/EF06", 0x09, "D5C5C8FDFFFF", 0, "\xE5\xBC\xA0\xE4\xB8\x89");
	/* 丗 is GBK 81 46: its second byte is an ASCII 'F' and must stay. */
	check_decode("SSSE/EF06", 0x09, "D5C58146000000", 0, "\xE5\xBC\xA0\xE4\xB8\x97");
	check_decode("SSSE/EF06", 0x08, "313130313031313939303031303131323337", 0,
		     "110101199001011237");
	check_decode("SSSE/EF06", 0x09, "D5C5", 0, "\xE5\xBC\xA0");
	check_decode("SSSE/EF06", 0x09, "D5", SSC_EBADCARDDATA, NULL);       /* half a character */
	check_decode("SSSE/EF06", 0x09, "41004200", SSC_EBADCARDDATA, NULL); /* embedded NUL */
	/* b */
	check_decode("SSSE/EF05", 0x01, "330100D15600000500BF7C7AC9FC0FEC", 0,
		     "330100D15600000500BF7C7AC9FC0FEC");
	check_decode("DF04/EF06", 0x41, "01", 0, "01");
	/* longer than the item */
	check_decode("SSSE/EF06", 0x0A, "3131", SSC_EBADCARDDATA, NULL);
	/* card number with its check character (§2.6) */
	check_decode("SSSE/EF05", 0x07, "583030303030303139", 0, "X00000019");
	check_decode("SSSE/EF05", 0x07, "583030303030303138", SSC_EBADCARDDATA, NULL);
	check_decode("SSSE/EF05", 0x07, "5830303030303031", SSC_EBADCARDDATA, NULL);
}

static void test_card_number(void **state)
{
	(void)state;
	/* By hand: X=33: 33*3 + 1*2 = 101, 101 mod 11 = 2, 11-2 = 9. */
	assert_int_equal(items_check_card_number("X00000019", 9), 0);
	/* A12345674: 30+7+18+30+20+40+24+14 = 183, mod 11 = 7, 11-7 = 4. */
	assert_int_equal(items_check_card_number("A12345674", 9), 0);
	assert_int_equal(items_check_card_number("A12345675", 9), SSC_EVALUE);
	/* 00000006: 12 mod 11 = 1 -> r = 10 -> 'X'. */
	assert_int_equal(items_check_card_number("00000006X", 9), 0);
	/* 00000000: 0 -> r = 11 -> '0'. */
	assert_int_equal(items_check_card_number("000000000", 9), 0);
	assert_int_equal(items_check_card_number("x00000019", 9), SSC_EVALUE);
	assert_int_equal(items_check_card_number("X0000001", 8), SSC_EVALUE);
}

static void test_txn(void **state)
{
	TU_HEX(rec, "20240101123045"                              /* time cn7 */
		    "483030303100000000000000"                    /* "H0001" an12 */
		    "5331323300000000000000000000000000000000"    /* "S123" an20 */
		    "00003039" "000003E8" "00002B51");
	struct item_txn t;
	struct ssc_diag d;

	(void)state;
	ssc_diag_init(&d);
	assert_int_equal(rec_len, 51);
	assert_int_equal(items_decode_txn(rec, rec_len, &t, &d), 0);
	assert_string_equal(t.time, "20240101123045");
	assert_string_equal(t.institution, "H0001");
	assert_string_equal(t.settlement, "S123");
	assert_int_equal(t.total, 12345);
	assert_int_equal(t.personal_account, 1000);
	assert_int_equal(t.pooled, 11089);
	assert_int_equal(items_decode_txn(rec, 50, &t, &d), SSC_EBADCARDDATA);
	rec[2] = 0x13;   /* month 13 */
	assert_int_equal(items_decode_txn(rec, rec_len, &t, &d), SSC_EBADCARDDATA);
}

static void check_encode(const char *fname, uint8_t tag, const char *text, int want_rc,
			 const char *want_hex)
{
	struct item_file f = file(fname);
	struct item_def it = item(&f, tag);
	struct ssc_diag d;
	uint8_t out[64], want[64];
	int rc;

	ssc_diag_init(&d);
	rc = items_encode(&f, &it, text, out, sizeof(out), &d);
	if (want_rc < 0) {
		assert_int_equal(rc, want_rc);
		return;
	}
	assert_int_equal(rc, (int)tu_unhex(want_hex, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)rc);
}

static void test_encode(void **state)
{
	(void)state;
	check_encode("SSSE/EF06", 0x0C, "330100", 0, "330100");
	check_encode("SSSE/EF0D", 0xEB, "33010", 0, "33010F");
	check_encode("SSSE/EF06", 0x0C, "3301001", SSC_EVALUE, NULL);
	check_encode("SSSE/EF06", 0x0C, "33O100", SSC_EVALUE, NULL);
	check_encode("SSSE/EF05", 0x06, "20340101", 0, "20340101");
	check_encode("SSSE/EF05", 0x06, "20341301", SSC_EVALUE, NULL);
	check_encode("SSSE/EF05", 0x06, "2034011", SSC_EVALUE, NULL);
	check_encode("SSSE/EF06", 0x09, "\xE5\xBC\xA0\xE4\xB8\x89", 0, "D5C5C8FD");
	check_encode("SSSE/EF06", 0x0A, "12", SSC_EVALUE, NULL);
	check_encode("SSSE/EF06", 0x0A, "\xF0\x9F\x98\x80", SSC_EVALUE, NULL);   /* emoji */
	check_encode("SSSE/EF05", 0x07, "X00000019", 0, "583030303030303139");
	check_encode("SSSE/EF05", 0x07, "X00000018", SSC_EVALUE, NULL);
	check_encode("DF04/EF06", 0x41, "01", 0, "01");
	check_encode("DF04/EF06", 0x41, "0102", SSC_EVALUE, NULL);
	check_encode("DF04/EF06", 0x41, "0G", SSC_EVALUE, NULL);
	check_encode("DF04/EF08", 0x40, "x", SSC_EUNSUPPORTED, NULL);
}

static void test_gbk(void **state)
{
	char small[4];
	uint8_t g[4];

	(void)state;
	assert_int_equal(gbk_to_utf8((const uint8_t *)"\xD5\xC5\xC8\xFD", 4, small, sizeof(small)),
			 SSC_ELIMIT);
	assert_int_equal(gbk_from_utf8("\xE5\xBC\xA0\xE4\xB8\x89", g, 3), SSC_ELIMIT);
	assert_int_equal(gbk_from_utf8("\xE5\xBC", g, 4), SSC_EVALUE);   /* truncated UTF-8 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_card_number),
		cmocka_unit_test(test_txn),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_gbk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
