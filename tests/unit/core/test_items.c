/*
 * Unit tests of src/items.c and src/gb18030.c: file and tag names, decoding of hand-written record
 * values per spec §12.9 (cn, dates, an with GB 18030, binary, the §12.7 transaction record), the
 * card number check character of §2.6, and encoding for writes. The GB 18030 bytes below were
 * written from the standard's mapping and checked with `iconv -f UTF-8 -t GB18030` (glibc 2.36,
 * Debian 12) outside the code under test.
 */
#include "test_card_util.h"

#include "gb18030.h"
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

/* Encodes text; want_hex, or the error want_rc whose message holds msg (when msg is given). */
/* A §12.7 record from its fields: a real time, text without control characters. */
static void test_txn_encode(void **state)
{
	struct item_txn t;
	struct ssc_diag d;
	uint8_t rec[ITEM_TXN_LEN];

	(void)state;
	memset(&t, 0, sizeof(t));
	memcpy(t.time, "20240229120000", 15);        /* 2024 is a leap year */
	memcpy(t.institution, "H0001", 6);
	memcpy(t.settlement, "S123", 5);
	t.total = 12345;
	ssc_diag_init(&d);
	assert_int_equal(items_encode_txn(&t, rec, sizeof(rec), &d), ITEM_TXN_LEN);
	memcpy(t.time, "20230229120000", 15);
	assert_int_equal(items_encode_txn(&t, rec, sizeof(rec), &d), SSC_EVALUE);
	memcpy(t.time, "20240229120000", 15);
	memcpy(t.settlement, "S1\x02", 4);
	assert_int_equal(items_encode_txn(&t, rec, sizeof(rec), &d), SSC_EVALUE);
	assert_non_null(strstr(d.msg, "control character"));
}

static void check_encode_msg(const char *fname, uint8_t tag, const char *text, int want_rc,
			     const char *want_hex, const char *msg)
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
		if (msg && strstr(d.msg, msg) == NULL)
			fail_msg("message \"%s\" does not contain \"%s\"", d.msg, msg);
		return;
	}
	assert_int_equal(rc, (int)tu_unhex(want_hex, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)rc);
}

static void check_encode(const char *fname, uint8_t tag, const char *text, int want_rc,
			 const char *want_hex)
{
	check_encode_msg(fname, tag, text, want_rc, want_hex, NULL);
}

/* A value that fits its item but not the caller's buffer is refused, never reported as written. */
static void test_encode_small_buffer(void **state)
{
	struct item_file f = file("SSSE/EF06");
	struct item_def it = item(&f, 0x08);
	struct ssc_diag d;
	uint8_t out[5];

	(void)state;
	ssc_diag_init(&d);
	/* 18 characters with a valid check character (ISO 7064 MOD 11-2), found by the fuzzer. */
	assert_int_equal(items_encode(&f, &it, "012404000199664227", out, sizeof(out), &d),
			 SSC_EINVAL);
	assert_non_null(strstr(d.msg, "the buffer holds 5"));
	it = item(&f, 0x0A);
	ssc_diag_init(&d);
	assert_int_equal(items_encode(&f, &it, "1", out, 0, &d), SSC_EINVAL);
}

static void test_encode(void **state)
{
	(void)state;
	check_encode("SSSE/EF06", 0x0C, "330100", 0, "330100");
	check_encode("SSSE/EF0D", 0xEB, "330200", 0, "330200");
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

/*
 * Each item against its format and length (issue 12, defect 9; docs/api.md "Items: format and
 * length"): region codes, 民族 and dates need their exact length, text a maximum that the message
 * says; no control characters anywhere.
 */
static void test_encode_checks(void **state)
{
	(void)state;
	/* Region codes: exactly 6 digits (cn 3). */
	check_encode_msg("DF04/EF05", 0x30, "12345", SSC_EVALUE, NULL,
			 "DF04/EF05 item 30 (参保地区划 insured region): expected exactly 6 digits, "
			 "this value has 5");
	check_encode_msg("DF04/EF05", 0x30, "3301001", SSC_EVALUE, NULL, "exactly 6 digits");
	check_encode("DF04/EF05", 0x30, "330100", 0, "330100");
	check_encode("SSSE/EF0D", 0xEB, "33010", SSC_EVALUE, NULL);
	check_encode("SSSE/EF06", 0x0C, "3301", SSC_EVALUE, NULL);
	check_encode("SSSE/EF06", 0x0C, "", SSC_EVALUE, NULL);
	/* 民族: exactly 2 digits (cn 1). */
	check_encode("SSSE/EF06", 0x0B, "01", 0, "01");
	check_encode_msg("SSSE/EF06", 0x0B, "1", SSC_EVALUE, NULL, "expected exactly 2 digits");
	/* Dates: real days from 1900 on. */
	check_encode("SSSE/EF06", 0x0D, "20000229", 0, "20000229");     /* 2000 is a leap year */
	check_encode("SSSE/EF06", 0x0D, "19920229", 0, "19920229");
	check_encode_msg("SSSE/EF06", 0x0D, "19000229", SSC_EVALUE, NULL, "not a calendar date");
	check_encode("SSSE/EF06", 0x0D, "20230229", SSC_EVALUE, NULL);
	check_encode("SSSE/EF05", 0x06, "20340431", SSC_EVALUE, NULL);  /* April has 30 days */
	check_encode("SSSE/EF05", 0x06, "20341231", 0, "20341231");
	check_encode("SSSE/EF05", 0x06, "18991231", SSC_EVALUE, NULL);
	check_encode("SSSE/EF05", 0x06, "20340100", SSC_EVALUE, NULL);
	check_encode_msg("SSSE/EF05", 0x05, "2034-1-1", SSC_EVALUE, NULL, "expected a date YYYYMMDD");
	check_encode("SSSE/EF05", 0x05, "203401011", SSC_EVALUE, NULL);
	/* an: control characters are refused, and so is a value too long, saying the maximum. */
	check_encode_msg("DF04/EF05", 0x31, "\x01", SSC_EVALUE, NULL,
			 "DF04/EF05 item 31 (人员类别 person category): contains a control character "
			 "(U+0001)");
	check_encode_msg("DF04/EF05", 0x32, "A\tB", SSC_EVALUE, NULL, "(U+0009)");
	check_encode_msg("DF04/EF05", 0x32, "A\x7F", SSC_EVALUE, NULL, "(U+007F)");
	check_encode_msg("DF04/EF05", 0x32, "A\xC2\x85", SSC_EVALUE, NULL, "(U+0085)");   /* C1 NEL */
	check_encode("DF04/EF05", 0x32, "A\xC2\xB7", 0, "41A1A4");                       /* · is text */
	check_encode("DF04/EF05", 0x31, "21", 0, "3231");
	check_encode("DF04/EF05", 0x31, "", 0, "");                    /* a maximum: empty clears */
	check_encode_msg("DF04/EF05", 0x33, "H330100000012", SSC_EVALUE, NULL,
			 "DF04/EF05 item 33 (定点医疗机构编号 designated institution): too long: at most "
			 "12 bytes in GB 18030, this value takes 13");
	check_encode_msg("DF04/EF05", 0x31, "医保", SSC_EVALUE, NULL,
			 "at most 2 bytes in GB 18030, this value takes 4");
	/* an 1 flags and codes: exactly one byte. */
	check_encode("DF04/EF05", 0x34, "1", 0, "31");
	check_encode_msg("DF04/EF05", 0x34, "", SSC_EVALUE, NULL,
			 "expected exactly 1 byte in GB 18030, this value takes 0");
	check_encode_msg("DF04/EF05", 0x34, "10", SSC_EVALUE, NULL, "this value takes 2");
	check_encode_msg("SSSE/EF05", 0x02, "\xE5\xBC\xA0", SSC_EVALUE, NULL,   /* 张: 2 bytes */
			 "expected exactly 1 byte in GB 18030, this value takes 2");
	/* 性别: GB/T 2261.1 codes. */
	check_encode("SSSE/EF06", 0x0A, "2", 0, "32");
	check_encode("SSSE/EF06", 0x0A, "9", 0, "39");
	check_encode_msg("SSSE/EF06", 0x0A, "3", SSC_EVALUE, NULL, "GB/T 2261.1");
	check_encode("SSSE/EF06", 0x0A, "M", SSC_EVALUE, NULL);
	/* 社会保障号码: 17 digits and the GB 11643 check character. By hand for 33010219900307123?:
	 * 3·7+3·9+0·10+1·5+0·8+2·4+1·2+9·1+9·6+0·3+0·7+3·9+0·10+7·5+1·8+2·4+3·2 = 210,
	 * 210 mod 11 = 1 -> "10X98765432"[1] = '0'. */
	check_encode("SSSE/EF06", 0x08, "330102199003071230", 0,
		     "333330313032313939303033303731323330");
	check_encode_msg("SSSE/EF06", 0x08, "330102199003071231", SSC_EVALUE, NULL,
			 "the check character is wrong (GB 11643)");
	check_encode_msg("SSSE/EF06", 0x08, "33010219900307123", SSC_EVALUE, NULL,
			 "expected 18 characters: 17 digits and a check character");
	check_encode("SSSE/EF06", 0x08, "33010219700101011X", 0,
		     "333330313032313937303031303130313158");
	check_encode("SSSE/EF06", 0x08, "33010219700101011x", SSC_EVALUE, NULL);
	/* Binary: exactly 2 hex digits for the 1-byte flag (was: "expected an even number of hex
	 * digits" for "0102"). */
	check_encode_msg("DF04/EF06", 0x41, "0102", SSC_EVALUE, NULL,
			 "DF04/EF06 item 41 (临时脱网结算 offline settlement pending): expected exactly "
			 "2 hex digits (1 byte)");
	check_encode_msg("DF04/EF06", 0x41, "1", SSC_EVALUE, NULL, "hex digits in pairs");
	check_encode("DF01/EF05", 0x30, "0102AABB", 0, "0102AABB");
	check_encode("DF01/EF05", 0x30, "", 0, "");
}

static void test_gb18030_limits(void **state)
{
	char small[4];
	uint8_t g[4];
	size_t need = 0, at = 99;

	(void)state;
	assert_int_equal(gb18030_to_utf8((const uint8_t *)"\xD5\xC5\xC8\xFD", 4, small,
					 sizeof(small), NULL), SSC_ELIMIT);
	/* 张三 takes 4 bytes: 3 is too few, and need says how many it takes. */
	assert_int_equal(gb18030_from_utf8("张三", g, 3, &need), SSC_ELIMIT);
	assert_int_equal(need, 4);
	assert_int_equal(gb18030_from_utf8("张三张三张三张三张三张三张三张三张三张三", g, 4, &need),
			 SSC_ELIMIT);
	assert_int_equal(need, 40);
	assert_int_equal(gb18030_from_utf8("\xE5\xBC", g, 4, NULL), SSC_EVALUE);   /* cut UTF-8 */
	/* An embedded NUL is no text; its offset is reported. */
	assert_int_equal(gb18030_to_utf8((const uint8_t *)"\xD5\xC5\x00\x41", 4, small,
					 sizeof(small), &at), SSC_EBADCARDDATA);
	assert_int_equal(at, 2);
}

/* Decodes hex as GB 18030 and expects UTF-8 want, or SSC_EBADCARDDATA at offset bad_at. */
static void check_gb18030_decode(const char *hex, const char *want, size_t bad_at)
{
	uint8_t v[64];
	size_t n = tu_unhex(hex, v, sizeof(v)), at = 999;
	char text[256];
	int rc = gb18030_to_utf8(v, n, text, sizeof(text), &at);

	if (!want) {
		assert_int_equal(rc, SSC_EBADCARDDATA);
		assert_int_equal(at, bad_at);
		assert_string_equal(text, "");
		return;
	}
	assert_int_equal(rc, (int)strlen(want));
	assert_string_equal(text, want);
}

/* Encodes UTF-8 text and expects the GB 18030 bytes want_hex. */
static void check_gb18030_encode(const char *text, const char *want_hex)
{
	uint8_t out[64], want[64];
	size_t need = 0, n = tu_unhex(want_hex, want, sizeof(want));

	assert_int_equal(gb18030_from_utf8(text, out, sizeof(out), &need), (int)n);
	assert_int_equal(need, n);
	assert_memory_equal(out, want, n);
}

static void test_gb18030(void **state)
{
	(void)state;
	/* GBK characters keep GBK's two bytes (丗 81 46: its second byte is an ASCII 'F'). */
	check_gb18030_encode("张三", "D5C5C8FD");
	check_gb18030_encode("丗·ㄅ", "8146A1A4A8C5");
	check_gb18030_encode("Li Si", "4C69205369");
	/* Beyond GBK: 䶮 U+4DAE has a two-byte code (FE 9F) that GBK lacks; 㐀 U+3400 (CJK Ext A)
	 * takes four bytes; so do 𠀀 U+20000, 𫖯 U+2B5AF and 𬌗 U+2C317 (beyond the BMP). */
	check_gb18030_encode("䶮", "FE9F");
	check_gb18030_encode("㐀", "8139EE39");
	check_gb18030_encode("𠀀", "95328236");
	check_gb18030_encode("𫖯", "9838F537");
	check_gb18030_encode("𬌗", "9931D239");
	check_gb18030_encode("张䶮𫖯", "D5C5FE9F9838F537");
	/* The euro sign: A2 E3 (GB 18030), not the single byte 80 of Windows code page 936. */
	check_gb18030_encode("€", "A2E3");
	/* The ends of the four-byte ranges: U+0080, U+FFFF, U+10FFFF. */
	check_gb18030_encode("\xC2\x80", "81308130");
	check_gb18030_encode("\xEF\xBF\xBF", "8431A439");
	check_gb18030_encode("\xF4\x8F\xBF\xBF", "E3329A35");

	check_gb18030_decode("D5C5C8FD", "张三", 0);
	check_gb18030_decode("D5C5FE9F9838F537", "张䶮𫖯", 0);
	check_gb18030_decode("8139EE3995328236", "㐀𠀀", 0);
	check_gb18030_decode("9931D239A2E3", "𬌗€", 0);
	/* Not GB 18030: the offset of the first byte that starts no character. */
	check_gb18030_decode("D5C580", NULL, 2);            /* 80 is no lead byte */
	check_gb18030_decode("D5C5B47F", NULL, 2);          /* 7F is no second byte */
	check_gb18030_decode("FF41", NULL, 0);
	check_gb18030_decode("D5C581", NULL, 2);            /* cut after its first byte */
	check_gb18030_decode("D5C58130", NULL, 2);          /* a four-byte character cut short */
	check_gb18030_decode("8431A530", NULL, 0);          /* between the BMP and U+10000 */
	check_gb18030_decode("D5C5E3329A36", NULL, 2);      /* past U+10FFFF */
	check_gb18030_decode("813081", NULL, 0);
}

static void test_gb18030_prefix(void **state)
{
	/* 张 D5C5, A 41, 𫖯 9838F537, 䶮 FE9F */
	TU_HEX(p, "D5C5" "41" "9838F537" "FE9F");

	(void)state;
	assert_int_equal(gb18030_prefix(p, p_len, 9), 9);
	assert_int_equal(gb18030_prefix(p, p_len, 8), 7);
	assert_int_equal(gb18030_prefix(p, p_len, 6), 3);   /* not inside 𫖯 */
	assert_int_equal(gb18030_prefix(p, p_len, 3), 3);
	assert_int_equal(gb18030_prefix(p, p_len, 2), 2);
	assert_int_equal(gb18030_prefix(p, p_len, 1), 0);   /* not inside 张 */
	assert_int_equal(gb18030_prefix(p, p_len, 0), 0);
	assert_int_equal(gb18030_prefix(p, p_len, 100), 9);
}

/* The name split: 09 and 4E as hex, or an error whose message holds msg. */
static void check_name(const char *text, int want_rc, const char *name_hex, const char *ext_hex,
		       const char *msg)
{
	struct item_file f = file("SSSE/EF06");
	struct item_def ext_def;
	struct ssc_diag d;
	uint8_t name[30], ext[20], want[64];
	size_t name_len = 99, ext_len = 99, n;
	int rc;

	ssc_diag_init(&d);
	rc = items_encode_name(&f, text, name, &name_len, ext, &ext_len, &ext_def, &d);
	assert_int_equal(rc, want_rc);
	if (rc) {
		if (strstr(d.msg, msg) == NULL)
			fail_msg("message \"%s\" does not contain \"%s\"", d.msg, msg);
		return;
	}
	assert_int_equal(ext_def.tag, 0x4E);
	n = tu_unhex(name_hex, want, sizeof(want));
	assert_int_equal(name_len, n);
	assert_memory_equal(name, want, n);
	n = tu_unhex(ext_hex, want, sizeof(want));
	assert_int_equal(ext_len, n);
	assert_memory_equal(ext, want, n);
}

static void test_name_split(void **state)
{
	(void)state;
	/* A short name: all of it in 09, 4E empty (a write clears an old extension). */
	check_name("张䶮𫖯", 0, "D5C5FE9F9838F537", "", NULL);
	/* 28 bytes of two-byte characters, then 𫖯 (4 bytes): 09 stops before it, at 28. */
	check_name("阿卜杜热合曼·买买提艾力·吐𫖯䶮", 0,
		   "B0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6A1A4CDC2", "9838F537FE9F", NULL);
	/* 15 + 10 two-byte characters: exactly 30 + 20. */
	check_name("张张张张张张张张张张张张张张张三三三三三三三三三三", 0,
		   "D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5D5C5",
		   "C8FDC8FDC8FDC8FDC8FDC8FDC8FDC8FDC8FDC8FD", NULL);
	check_name("张张张张张张张张张张张张张张张三三三三三三三三三三三", SSC_EVALUE, NULL, NULL,
		   "at most 50 bytes in GB 18030 (30 in 09, 20 in 4E), this one takes 52");
	/* 50 bytes, but cut between whole characters 09 holds 29 and 21 are left. */
	check_name("A张张张张张张张张张张张张张张𫖯张张张张张张张张B", SSC_EVALUE, NULL, NULL,
		   "09 takes 29 of its 30 and the 21 left exceed 4E's 20");
	check_name("", SSC_EVALUE, NULL, NULL, "must not be empty");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_card_number),
		cmocka_unit_test(test_txn),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_small_buffer),
		cmocka_unit_test(test_encode_checks),
		cmocka_unit_test(test_txn_encode),
		cmocka_unit_test(test_gb18030_limits),
		cmocka_unit_test(test_gb18030),
		cmocka_unit_test(test_gb18030_prefix),
		cmocka_unit_test(test_name_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
