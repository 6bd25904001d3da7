/*
 * Unit tests of src/apdu.c: command building, the exchange helper against scripted cards (61xx
 * chains, 6Cxx, truncated and garbage answers), the status-word mapping, and the BER-TLV reader.
 */
#include "test_card_util.h"

#include "apdu.h"

static void test_build(void **state)
{
	uint8_t out[300], data[255] = { 0xAB };
	TU_HEX(case1, "00A40000");
	TU_HEX(case2, "00B2010C00");
	TU_HEX(case3, "00A4040002AB00");
	TU_HEX(case4, "00880000" "02" "AB00" "08");

	(void)state;
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xA4, 0, 0, NULL, 0, APDU_LE_NONE), 4);
	assert_memory_equal(out, case1, 4);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xB2, 1, 0x0C, NULL, 0, 256), 5);
	assert_memory_equal(out, case2, 5);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xA4, 4, 0, data, 2, APDU_LE_NONE), 7);
	assert_memory_equal(out, case3, 7);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0x88, 0, 0, data, 2, 8), 8);
	assert_memory_equal(out, case4, 8);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xD6, 0, 0, data, 255, 256), 261);
	assert_int_equal(apdu_build(out, 7, 0, 0x88, 0, 0, data, 2, 8), SSC_EINVAL);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xD6, 0, 0, data, 256, APDU_LE_NONE),
			 SSC_EINVAL);
	assert_int_equal(apdu_build(out, sizeof(out), 0, 0xB0, 0, 0, NULL, 0, 257), SSC_EINVAL);
}

static int run(const struct tu_step *steps, const char *cmdhex, uint8_t *data, size_t cap,
	       uint16_t *sw, struct ssc_diag *d)
{
	struct tu_script s;
	uint8_t cmd[300];
	size_t n = tu_unhex(cmdhex, cmd, sizeof(cmd));
	int rc;

	tu_script_init(&s, steps);
	ssc_diag_init(d);
	rc = apdu_exchange(&s.io, cmd, n, data, cap, sw, CARDIO_PERSONAL, d);
	tu_script_done(&s);
	return rc;
}

static void test_get_response_chain(void **state)
{
	/* A T=0 style card: 61 10 then 16 bytes; a second 61 02 then 2 more. */
	static const struct tu_step steps[] = {
		{ "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "6110", 0 },
		{ "00C0000010", "000102030405060708090A0B0C0D0E0F6102", 0 },
		{ "00C0000002", "10119000", 0 },
		{ NULL, NULL, 0 },
	};
	uint8_t data[64];
	uint16_t sw = 0;
	struct ssc_diag d;

	(void)state;
	assert_int_equal(run(steps, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", data,
			     sizeof(data), &sw, &d), 18);
	assert_int_equal(sw, 0x9000);
	assert_int_equal(data[0], 0x00);
	assert_int_equal(data[15], 0x0F);
	assert_int_equal(data[16], 0x10);
	assert_int_equal(data[17], 0x11);
}

static void test_wrong_le(void **state)
{
	static const struct tu_step steps[] = {
		{ "00B2012C00", "6C12", 0 },
		{ "00B2012C12", "01103301 00D15600000500BF7C7AC9FC0FEC9000", 0 },
		{ NULL, NULL, 0 },
	};
	static const struct tu_step twice[] = {
		{ "00B2012C00", "6C12", 0 },
		{ "00B2012C12", "6C10", 0 },
		{ NULL, NULL, 0 },
	};
	/* 6Cxx to a case-1 command: Le is appended. */
	static const struct tu_step case1[] = {
		{ "00B2012C", "6C02", 0 },
		{ "00B2012C02", "ABCD9000", 0 },
		{ NULL, NULL, 0 },
	};
	uint8_t data[64];
	uint16_t sw = 0;
	struct ssc_diag d;

	(void)state;
	assert_int_equal(run(steps, "00B2012C00", data, sizeof(data), &sw, &d), 18);
	assert_int_equal(sw, 0x9000);
	assert_int_equal(data[0], 0x01);
	assert_int_equal(data[1], 0x10);
	assert_int_equal(run(twice, "00B2012C00", data, sizeof(data), &sw, &d), SSC_EPROTO);
	assert_int_equal(run(case1, "00B2012C", data, sizeof(data), &sw, &d), 2);
}

static void test_endless_61(void **state)
{
	static const struct tu_step steps[] = {
		{ "00B2010C00", "6101", 0 },
		{ "00C0000001", "006101", 0 }, { "00C0000001", "006101", 0 },
		{ "00C0000001", "006101", 0 }, { "00C0000001", "006101", 0 },
		{ "00C0000001", "006101", 0 }, { "00C0000001", "006101", 0 },
		{ "00C0000001", "006101", 0 }, { "00C0000001", "006101", 0 },
		{ NULL, NULL, 0 },
	};
	uint8_t data[64];
	uint16_t sw = 0;
	struct ssc_diag d;

	(void)state;
	assert_int_equal(run(steps, "00B2010C00", data, sizeof(data), &sw, &d), SSC_EPROTO);
}

static void test_bad_answers(void **state)
{
	static const struct tu_step empty[] = { { "00B2010C00", "", 0 }, { NULL, NULL, 0 } };
	static const struct tu_step one[] = { { "00B2010C00", "90", 0 }, { NULL, NULL, 0 } };
	static const struct tu_step garbage[] = {
		{ "00B2010C00", "0812313233DEAD", 0 }, { NULL, NULL, 0 } };
	static const struct tu_step removed[] = {
		{ "00B2010C00", NULL, SSC_ECARDREMOVED }, { NULL, NULL, 0 } };
	static const struct tu_step too_long[] = {
		{ "00B2010C00", "0102030405060708099000", 0 }, { NULL, NULL, 0 } };
	uint8_t data[64];
	uint16_t sw = 0;
	struct ssc_diag d;

	(void)state;
	assert_int_equal(run(empty, "00B2010C00", data, sizeof(data), &sw, &d), SSC_EPROTO);
	assert_int_equal(run(one, "00B2010C00", data, sizeof(data), &sw, &d), SSC_EPROTO);
	assert_int_equal(run(garbage, "00B2010C00", data, sizeof(data), &sw, &d), SSC_EPROTO);
	assert_int_equal(d.sw, 0xDEAD);
	assert_int_equal(run(removed, "00B2010C00", data, sizeof(data), &sw, &d),
			 SSC_ECARDREMOVED);
	assert_int_equal(run(too_long, "00B2010C00", data, 8, &sw, &d), SSC_EPROTO);
	assert_int_equal(run(too_long, "00B2010C00", data, 9, &sw, &d), 9);
}

static void test_error_sw_passes_through(void **state)
{
	static const struct tu_step steps[] = { { "00B2010C00", "6A83", 0 }, { NULL, NULL, 0 } };
	uint8_t data[8];
	uint16_t sw = 0;
	struct ssc_diag d;

	(void)state;
	assert_int_equal(run(steps, "00B2010C00", data, sizeof(data), &sw, &d), 0);
	assert_int_equal(sw, 0x6A83);
}

static void test_secret_flag(void **state)
{
	/* The VERIFY goes out with CARDIO_SECRET; the GET RESPONSE after it without. */
	static const struct tu_step steps[] = {
		{ "0020000003123456", "6100", 0 },
		{ "00C0000000", "9000", 0 },
		{ NULL, NULL, 0 },
	};
	struct tu_script s;
	struct ssc_diag d;
	uint8_t cmd[8], data[8];
	uint16_t sw = 0;
	size_t n = tu_unhex("0020000003123456", cmd, sizeof(cmd));

	(void)state;
	tu_script_init(&s, steps);
	ssc_diag_init(&d);
	assert_int_equal(apdu_exchange(&s.io, cmd, n, data, sizeof(data), &sw, CARDIO_SECRET, &d),
			 0);
	assert_int_equal(s.last_flags & CARDIO_SECRET, 0);
	tu_script_done(&s);
}

static void test_sw_mapping(void **state)
{
	struct ssc_diag d;

	(void)state;
	ssc_diag_init(&d);
	assert_int_equal(apdu_sw_error(0x9000, APDU_CTX_GENERIC, "x", &d), 0);
	assert_int_equal(apdu_sw_error(0x6A82, APDU_CTX_GENERIC, "x", &d), SSC_ENOFILE);
	assert_int_equal(d.sw, 0x6A82);
	assert_int_equal(apdu_sw_error(0x6A83, APDU_CTX_GENERIC, "x", &d), SSC_ENORECORD);
	assert_int_equal(apdu_sw_error(0x6982, APDU_CTX_GENERIC, "x", &d), SSC_ESECURITY);
	assert_int_equal(ssc_std_code(SSC_ESECURITY, d.sw), -27010);
	assert_int_equal(apdu_sw_error(0x63C2, APDU_CTX_GENERIC, "x", &d), SSC_EAUTHFAILED);
	assert_int_equal(d.retries_left, 2);
	assert_int_equal(apdu_sw_error(0x63C0, APDU_CTX_GENERIC, "x", &d), SSC_EKEYBLOCKED);
	assert_int_equal(d.retries_left, 0);
	assert_int_equal(apdu_sw_error(0x63C1, APDU_CTX_PIN, "x", &d), SSC_EPINWRONG);
	assert_int_equal(d.retries_left, 1);
	assert_int_equal(ssc_std_code(SSC_EPINWRONG, d.sw), -51);
	assert_int_equal(apdu_sw_error(0x6983, APDU_CTX_PIN, "x", &d), SSC_EPINBLOCKED);
	assert_int_equal(apdu_sw_error(0x6983, APDU_CTX_GENERIC, "x", &d), SSC_EKEYBLOCKED);
	assert_int_equal(apdu_sw_error(0x6A88, APDU_CTX_GENERIC, "x", &d), SSC_ECARDSW);
	assert_int_equal(d.sw, 0x6A88);
	assert_int_equal(ssc_std_code(SSC_ECARDSW, d.sw), -27272);
	assert_non_null(strstr(d.msg, "6A88"));
	assert_int_equal(apdu_sw_error(0x6D00, APDU_CTX_GENERIC, "x", &d), SSC_EUNSUPPORTED);
	assert_int_equal(apdu_sw_error(0x6988, APDU_CTX_GENERIC, "x", &d), SSC_ECARDSW);
}

/*
 * The PIN's try counter (docs/errors.md): 63Cx with x > 0 is a wrong PIN (-51) with x tries left;
 * 63C0, the failure that used the last try, and 6983 are "blocked" (-52) with 0 left. The
 * messages speak to the desk, in the right number, and do not show the status word, which stays
 * in d.sw.
 */
static void test_sw_pin_messages(void **state)
{
	struct ssc_diag d;

	(void)state;
	ssc_diag_init(&d);
	assert_int_equal(apdu_sw_error(0x63C2, APDU_CTX_PIN, "VERIFY", &d), SSC_EPINWRONG);
	assert_int_equal(d.retries_left, 2);
	assert_int_equal(d.sw, 0x63C2);
	assert_string_equal(d.msg, "wrong PIN: 2 tries left");
	assert_int_equal(apdu_sw_error(0x63C1, APDU_CTX_PIN, "CHANGE PIN", &d), SSC_EPINWRONG);
	assert_string_equal(d.msg, "wrong PIN: 1 try left");
	assert_int_equal(ssc_std_code(SSC_EPINWRONG, d.sw), -51);

	assert_int_equal(apdu_sw_error(0x63C0, APDU_CTX_PIN, "VERIFY", &d), SSC_EPINBLOCKED);
	assert_int_equal(d.retries_left, 0);
	assert_int_equal(d.sw, 0x63C0);
	assert_int_equal(ssc_std_code(SSC_EPINBLOCKED, d.sw), -52);
	assert_string_equal(d.msg, "wrong PIN, and that was the last try: the PIN is now blocked");

	ssc_diag_init(&d);
	assert_int_equal(apdu_sw_error(0x6983, APDU_CTX_PIN, "VERIFY", &d), SSC_EPINBLOCKED);
	assert_int_equal(d.retries_left, 0);
	assert_int_equal(ssc_std_code(SSC_EPINBLOCKED, d.sw), -52);
	assert_string_equal(d.msg, "the PIN is blocked");

	/* A card key's counter: the command is named, the status word is not. */
	assert_int_equal(apdu_sw_error(0x63C1, APDU_CTX_GENERIC, "EXTERNAL AUTH key 04", &d),
			 SSC_EAUTHFAILED);
	assert_string_equal(d.msg, "EXTERNAL AUTH key 04: the card refused the terminal's key: "
			    "1 try left before the card blocks it");
	assert_null(strstr(d.msg, "63C1"));
	assert_int_equal(apdu_sw_error(0x63C0, APDU_CTX_GENERIC, "EXTERNAL AUTH key 04", &d),
			 SSC_EKEYBLOCKED);
	assert_null(strstr(d.msg, "63C0"));
	assert_int_equal(apdu_sw_error(0x6A83, APDU_CTX_GENERIC, "READ RECORD DF01/EF05 01", &d),
			 SSC_ENORECORD);
	assert_string_equal(d.msg, "READ RECORD DF01/EF05 01: the card has no such record");
	assert_int_equal(ssc_std_code(SSC_ENORECORD, d.sw), -27267);
}

static void test_tlv_fci(void **state)
{
	/* 6F L 84 0F <DF name> A5 06 9F0C 03 86 01 03 (spec §12.1 layout). */
	TU_HEX(fci, "6F19840F7378312E73682EC9E7BBE1B1A3D5CF" "A5069F0C03860103");
	struct apdu_tlv t6f, ta5, t9f, t86, t84;

	(void)state;
	assert_int_equal(apdu_tlv_find(fci, fci_len, 0x6F, &t6f), 1);
	assert_true(t6f.constructed);
	assert_int_equal(t6f.len, 0x19);
	assert_int_equal(apdu_tlv_find(t6f.val, t6f.len, 0x84, &t84), 1);
	assert_int_equal(t84.len, 15);
	assert_int_equal(apdu_tlv_find(t6f.val, t6f.len, 0xA5, &ta5), 1);
	assert_int_equal(apdu_tlv_find(ta5.val, ta5.len, 0x9F0C, &t9f), 1);
	assert_int_equal(t9f.len, 3);
	assert_int_equal(apdu_tlv_find(t9f.val, t9f.len, 0x86, &t86), 1);
	assert_int_equal(t86.len, 1);
	assert_int_equal(t86.val[0], 0x03);
	assert_int_equal(apdu_tlv_find(t6f.val, t6f.len, 0x88, &t86), 0);
}

static void test_fci(void **state)
{
	TU_HEX(des, "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860101");
	TU_HEX(sm4_top, "6F17840F7378312E73682EC9E7BBE1B1A3D5CF9F0C03860103");
	TU_HEX(none, "6F16840F7378312E73682EC9E7BBE1B1A3D5CFA503880101");
	TU_HEX(reordered, "6F1CA50988010A9F0C03860103" "840F7378312E73682EC9E7BBE1B1A3D5CF");
	TU_HEX(no6f, "840F7378312E73682EC9E7BBE1B1A3D5CF");
	TU_HEX(bad86, "6F0B9F0C088602010300000000");
	uint8_t id = 0;

	(void)state;
	assert_int_equal(apdu_fci_alg(des, des_len, &id), 1);
	assert_int_equal(id, 0x01);
	assert_int_equal(apdu_fci_alg(sm4_top, sm4_top_len, &id), 1);
	assert_int_equal(id, 0x03);
	assert_int_equal(apdu_fci_alg(none, none_len, &id), 0);
	assert_int_equal(apdu_fci_alg(reordered, reordered_len, &id), 1);
	assert_int_equal(id, 0x03);
	assert_int_equal(apdu_fci_alg(no6f, no6f_len, &id), SSC_EPROTO);
	assert_int_equal(apdu_fci_alg(bad86, bad86_len, &id), SSC_EPROTO);
}

static void test_tlv_forms(void **state)
{
	TU_HEX(longform, "0081039000AA" "5F2D02656E");   /* filler 00, 81-form, 2-byte tag */
	TU_HEX(truncated, "6F0584039F");
	TU_HEX(badlen, "6F830100000000");
	TU_HEX(longtag, "9FFFFF0101");
	TU_HEX(notag, "9F");
	struct apdu_tlv t;
	size_t off = 0;

	(void)state;
	assert_int_equal(apdu_tlv_next(longform, longform_len, &off, &t), 1);
	assert_int_equal(t.tag, 0x81);
	assert_int_equal(t.len, 3);
	assert_int_equal(t.val[0], 0x90);
	assert_int_equal(apdu_tlv_next(longform, longform_len, &off, &t), 1);
	assert_int_equal(t.tag, 0x5F2D);
	assert_int_equal(t.len, 2);
	assert_int_equal(apdu_tlv_next(longform, longform_len, &off, &t), 0);

	TU_HEX(l81, "DF8106" "81" "80");
	off = 0;
	/* 3-byte tag DF8106 with a long form length of 0x80 that runs past the end. */
	assert_int_equal(apdu_tlv_next(l81, l81_len, &off, &t), SSC_EPROTO);
	off = 0;
	assert_int_equal(apdu_tlv_next(truncated, truncated_len, &off, &t), SSC_EPROTO);
	off = 0;
	assert_int_equal(apdu_tlv_next(badlen, badlen_len, &off, &t), SSC_EPROTO);
	off = 0;
	assert_int_equal(apdu_tlv_next(longtag, longtag_len, &off, &t), SSC_EPROTO);
	off = 0;
	assert_int_equal(apdu_tlv_next(notag, notag_len, &off, &t), SSC_EPROTO);
	assert_int_equal(apdu_tlv_find(truncated, truncated_len, 0x84, &t), SSC_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_get_response_chain),
		cmocka_unit_test(test_wrong_le),
		cmocka_unit_test(test_endless_61),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_error_sw_passes_through),
		cmocka_unit_test(test_secret_flag),
		cmocka_unit_test(test_sw_mapping),
		cmocka_unit_test(test_sw_pin_messages),
		cmocka_unit_test(test_tlv_fci),
		cmocka_unit_test(test_fci),
		cmocka_unit_test(test_tlv_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
