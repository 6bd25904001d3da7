/*
 * Unit tests of libSSCardDriver's codecs (lib/legacy/legacy_codec.c): pFileAddr (every accepted
 * form, and −14 for the rest), pCardInfo, value lists, the HSM key string, GB18030 both ways,
 * the standard return codes and the error text. Expected strings are written by hand; the GB18030
 * bytes were written by hand and checked with the iconv command line
 * (printf '张三' | iconv -f UTF-8 -t GB18030 | xxd -p -u → D5C5C8FD; 无卡 CEDEBFA8; · A1A4;
 * U+20000 95328236; € A2E3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "legacy_codec.h"

static void check_group(const struct legacy_addr *a, size_t g, const char *file,
			const char *tags)
{
	char got[256] = "";

	assert_true(g < a->ngroups);
	assert_string_equal(a->groups[g].file, file);
	for (size_t i = a->groups[g].first; i < a->groups[g].first + a->groups[g].count; i++) {
		strcat(got, a->items[i].tag);
		if (a->items[i].record) {
			char r[8];

			r[0] = ':';
			r[1] = (char)('0' + a->items[i].record / 10);
			r[2] = (char)('0' + a->items[i].record % 10);
			r[3] = 0;
			strcat(got, r);
		}
		strcat(got, " ");
	}
	assert_string_equal(got, tags);
}

static void test_addr_forms(void **state)
{
	struct legacy_addr a;

	(void)state;
	assert_int_equal(legacy_parse_addr("3F00EF06|08|09|4E|0A|0B|0C|0D|$", &a), 0);
	assert_int_equal(a.ngroups, 1);
	check_group(&a, 0, "SSSE/EF06", "08 09 4E 0A 0B 0C 0D ");
	assert_int_equal(legacy_parse_addr("EF05|01|07|$", &a), 0);
	check_group(&a, 0, "SSSE/EF05", "01 07 ");
	assert_int_equal(legacy_parse_addr("MFEF0D|ea|EB|$", &a), 0);
	check_group(&a, 0, "SSSE/EF0D", "EA EB ");
	assert_int_equal(legacy_parse_addr("mfef05|03|$", &a), 0);
	check_group(&a, 0, "SSSE/EF05", "03 ");
	assert_int_equal(legacy_parse_addr("3F00DF04EF05|30|31|$3F00EF06|09|$DF04EF08|40:01|40:10|$",
					   &a), 0);
	assert_int_equal(a.ngroups, 3);
	check_group(&a, 0, "DF04/EF05", "30 31 ");
	check_group(&a, 1, "SSSE/EF06", "09 ");
	check_group(&a, 2, "DF04/EF08", "40:01 40:10 ");
	assert_int_equal(legacy_parse_addr("df01ef0a|01|$", &a), 0);
	check_group(&a, 0, "DF01/EF0A", "01 ");
	assert_int_equal(legacy_parse_addr("DF04EF08|40|$", &a), 0);
	check_group(&a, 0, "DF04/EF08", "40 ");
}

static void test_addr_refused(void **state)
{
	static const char *const bad[] = {
		"", "3F00EF06|08|09|", "3F00EF06|08|09", "3F00EF06|$", "EF06|$",
		"3F00EF07|08|$",          /* not an SSSE file of the API */
		"3F00EF6|08|$", "3F00EF06|8|$", "3F00EF06|080|$", "3F00EF06||$",
		"3F00EF06|08|$$", "3F00EF06|08|$x", "SSSE/EF06|08|$", "3F00DF04|30|$",
		"DF04EF08|40:00|$", "DF04EF08|40:1|$", "DF04EF08|41:01|$", "EF06|09:01|$",
		"DF04EF05|30:01|$", "3F00EF06 |08|$", "3F00EF06|08 |$", "3F00EF06|0G|$",
		"3F003F00EF06|08|$", "DFGGEF05|01|$",
		"EF05|01|$EF05|01|$EF05|01|$EF05|01|$EF05|01|$EF05|01|$EF05|01|$EF05|01|$EF05|01|$",
		NULL };
	struct legacy_addr a;
	char many[512] = "EF06";

	(void)state;
	for (size_t i = 0; bad[i]; i++) {
		if (legacy_parse_addr(bad[i], &a) != LEGACY_EPARAM)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(legacy_parse_addr(NULL, &a), -14);
	for (int i = 0; i < 65; i++)
		strcat(many, "|08");
	strcat(many, "|$");
	assert_int_equal(legacy_parse_addr(many, &a), -14);   /* 65 items */
}

static void test_cardinfo(void **state)
{
	char id[33], num[10];

	(void)state;
	assert_int_equal(legacy_parse_cardinfo("330100d15600000500bf7c7ac9fc0fec|X00000019|", id,
					       num), 0);
	assert_string_equal(id, "330100D15600000500BF7C7AC9FC0FEC");
	assert_string_equal(num, "X00000019");
	assert_int_equal(legacy_parse_cardinfo(NULL, id, num), -14);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FEC|X00000019", id,
					       num), -14);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FEC|X00000019|x|",
					       id, num), -14);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FE|X00000019|", id,
					       num), -20);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FEZ|X00000019|", id,
					       num), -20);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FEC|X0000001|", id,
					       num), -23);
	assert_int_equal(legacy_parse_cardinfo("330100D15600000500BF7C7AC9FC0FEC|x00000019|", id,
					       num), -23);
}

static void test_values(void **state)
{
	char s1[] = "张三|1||20240101|", s2[] = "a|b", s3[] = "", s4[] = "a|b|c|";
	char *v[4];

	(void)state;
	assert_int_equal(legacy_split_values(s1, v, 4), 4);
	assert_string_equal(v[0], "张三");
	assert_string_equal(v[1], "1");
	assert_string_equal(v[2], "");
	assert_string_equal(v[3], "20240101");
	assert_int_equal(legacy_split_values(s2, v, 4), -14);
	assert_int_equal(legacy_split_values(s3, v, 4), 0);
	assert_int_equal(legacy_split_values(s4, v, 2), -14);
}

static void test_hsm_key(void **state)
{
	(void)state;
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|"),
			 0);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5|"), -23);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5||"), 0);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5D2FFA2E969F241C5||"), 0);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C|"), -23);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5|4BA5C1F9D6C57F0F11223344556677|"),
			 -23);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5|4BA5C1F9D6C57F0F112233445566778X|"),
			 -23);
	assert_int_equal(legacy_check_hsm_key("D2FFA2E969F241C5|||"), -23);
	assert_int_equal(legacy_check_hsm_key(NULL), -23);
}

static void test_gb18030(void **state)
{
	char out[64];

	(void)state;
	/* UTF-8 → GB18030: GBK's bytes where GBK has the character, four bytes beyond. */
	assert_int_equal(legacy_to_gb("张三", out, sizeof(out)), 4);
	assert_memory_equal(out, "\xD5\xC5\xC8\xFD", 5);
	assert_int_equal(legacy_to_gb("·€\xF0\xA0\x80\x80", out, sizeof(out)), 8);
	assert_memory_equal(out, "\xA1\xA4\xA2\xE3\x95\x32\x82\x36", 9);
	assert_int_equal(legacy_to_gb("330100|张三|", out, sizeof(out)), 12);
	assert_memory_equal(out, "330100|\xD5\xC5\xC8\xFD|", 13);
	assert_int_equal(legacy_to_gb("张三", out, 4), SSC_ELIMIT);   /* 4 bytes + NUL > 4 */
	assert_int_equal(legacy_to_gb("张三", out, 5), 4);
	assert_int_equal(legacy_to_gb("\xE5\xBC", out, sizeof(out)), SSC_EVALUE);
	/* GB18030 → UTF-8. */
	assert_int_equal(legacy_from_gb("\xD5\xC5\xC8\xFD\x95\x32\x82\x36|", out, sizeof(out)), 11);
	assert_string_equal(out, "张三\xF0\xA0\x80\x80|");
	assert_int_equal(legacy_from_gb("\x81\x20", out, sizeof(out)), SSC_EVALUE);
}

static void test_codes(void **state)
{
	struct sscard_error e;

	(void)state;
#define ERR(err_, code_, std_, sw_) \
	(memset(&e, 0, sizeof(e)), e.err = (err_), e.code = (code_), e.std_code = (std_), \
	 strcpy(e.sw, (sw_)), e.retries_left = -1, &e)
	/* Daemon errors that carry std_code: it wins. */
	assert_int_equal(legacy_code_of(ERR(SSC_ENOCARD, 1005, -2, "")), -2);
	assert_int_equal(legacy_code_of(ERR(SSC_ECARDREMOVED, 1006, -2, "")), -2);
	assert_int_equal(legacy_code_of(ERR(SSC_ENOREADER, 1007, -11, "")), -11);
	assert_int_equal(legacy_code_of(ERR(SSC_EINVAL, -32602, -14, "")), -14);
	assert_int_equal(legacy_code_of(ERR(SSC_ENOTGENUINE, 1018, -21, "")), -21);
	assert_int_equal(legacy_code_of(ERR(SSC_EBLACKLISTED, 1028, -22, "")), -22);
	assert_int_equal(legacy_code_of(ERR(SSC_EPINWRONG, 1019, -51, "63C2")), -51);
	assert_int_equal(legacy_code_of(ERR(SSC_EPINBLOCKED, 1020, -52, "6983")), -52);
	assert_int_equal(legacy_code_of(ERR(SSC_ENOPSAM, 1011, -2201, "")), -2201);
	assert_int_equal(legacy_code_of(ERR(SSC_EPSAMALGO, 1012, -2202, "")), -2202);
	assert_int_equal(legacy_code_of(ERR(SSC_ECARDSW, 1014, -27266, "6A82")), -27266);
	/* No std_code: the status word, then the fallbacks. */
	assert_int_equal(legacy_code_of(ERR(SSC_ECARDSW, 1014, 0, "6982")), -27010);
	assert_int_equal(legacy_code_of(ERR(SSC_EAUTHFAILED, 1024, 0, "63C2")), -25538);
	assert_int_equal(legacy_code_of(ERR(SSC_EAUTHFAILED, 1024, 0, "")), -24);
	assert_int_equal(legacy_code_of(ERR(SSC_ENOFILE, 1030, 0, "")), -27266);
	assert_int_equal(legacy_code_of(ERR(SSC_ENORECORD, 1031, 0, "")), -27267);
	assert_int_equal(legacy_code_of(ERR(SSC_ESECURITY, 1026, 0, "")), -27010);
	assert_int_equal(legacy_code_of(ERR(SSC_EKEYBLOCKED, 1025, 0, "")), -27011);
	assert_int_equal(legacy_code_of(ERR(SSC_EEXIST, 1042, 0, "")), -23);
	assert_int_equal(legacy_code_of(ERR(SSC_ETIMEDOUT, 1004, 0, "")), -4);
	assert_int_equal(legacy_code_of(ERR(SSC_EJOURNAL, 1029, 0, "")), -11);
	assert_int_equal(legacy_code_of(ERR(SSC_EINTERNAL, 1039, 0, "")), -11);
	/* The library's own failures (code 0). */
	assert_int_equal(legacy_code_of(ERR(SSC_EIO, 0, 0, "")), -11);
	assert_int_equal(legacy_code_of(ERR(SSC_EPERM, 0, 0, "")), -11);
	assert_int_equal(legacy_code_of(ERR(SSC_EPROTO, 0, 0, "")), -11);
	assert_int_equal(legacy_code_of(ERR(SSC_ETIMEDOUT, 0, 0, "")), -4);
	/* A method this daemon does not have. */
	assert_int_equal(legacy_code_of(ERR(SSC_ENOTFOUND, -32601, 0, "")), -13);
	assert_int_equal(legacy_code_of(NULL), -11);
#undef ERR
	assert_string_equal(legacy_wording(-2), "无卡");
	assert_string_equal(legacy_wording(-14), "命令参数错");
	assert_string_equal(legacy_wording(-22), "传入数据与卡内不符");
	assert_string_equal(legacy_wording(-2201), "无PSAM");
	assert_string_equal(legacy_wording(-27266), "卡片返回错误：文件未找到");
	assert_string_equal(legacy_wording(-0x6581), "卡片返回错误");
	assert_string_equal(legacy_wording(-999), "未知错误");
}

static void test_error_text(void **state)
{
	char out[LEGACY_OUT_MAX + 16];
	char longmsg[3000];

	(void)state;
	assert_int_equal(legacy_error_text(-2, "SSC_ENOCARD", "no card in reader pcsc-a", out), -2);
	assert_string_equal(out, "\xCE\xDE\xBF\xA8 (SSC_ENOCARD: no card in reader pcsc-a)");
	legacy_error_text(-27266, "SSC_ECARDSW", "card status 6A82", out);
	assert_non_null(strstr(out, " SW=6A82 (SSC_ECARDSW: card status 6A82)"));
	legacy_error_text(-2, "SSC_ENOCARD", "reader \xE5\xBC\xA0\n", out);
	assert_string_equal(out, "\xCE\xDE\xBF\xA8 (SSC_ENOCARD: reader ???" "?)");
	/* Never past the 1024 bytes, NUL included, whatever the message's length. */
	memset(out, 'Z', sizeof(out));
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	legacy_error_text(-2, "SSC_ENOCARD", longmsg, out);
	assert_int_equal(strlen(out), LEGACY_OUT_MAX - 1);
	for (size_t i = LEGACY_OUT_MAX; i < sizeof(out); i++)
		assert_int_equal(out[i], 'Z');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_forms),
		cmocka_unit_test(test_addr_refused),
		cmocka_unit_test(test_cardinfo),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_hsm_key),
		cmocka_unit_test(test_gb18030),
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_error_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
