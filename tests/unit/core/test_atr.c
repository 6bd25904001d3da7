/*
 * Unit tests of drivers/usb-ccid/atr.c: ATR parsing (the simulator's card and PSAM ATRs, hand-made
 * T=1 ATRs with TA1/TA3/TB3/TC3, specific mode), malformed ATRs, the choice of protocol and speed,
 * PPS requests and answers, the CCID SetParameters bytes and the waiting times. Expected values
 * are worked out by hand from ISO/IEC 7816-3 and CCID Rev 1.1 (TCKs included).
 */
#include "test_ccid_util.h"

#include "../../../drivers/usb-ccid/atr.h"

/* firmware-stubs/profiles/gen1.json: TD1 = 80 (T=0, TD2 follows), TD2 = 01 (T=1), 14 bytes. */
#define CARD_ATR "3B8E80010081544C9286843301000010010025"
/* The simulator's PSAM: TB1 TC1, no TD1 (T=0 only), 12 historical bytes, no TCK. */
#define PSAM_ATR "3B6C00005053414D2D4445532D303031"
/*
 * T=1 only: T0 91 (TA1, TD1; K = 1), TA1 13 (Fi 372, Di 4), TD1 81 (TD2; T=1), TD2 31 (TA3, TB3;
 * T=1), TA3 FE (IFSC 254), TB3 45 (BWI 4, CWI 5), history 80, TCK = 91^13^81^31^FE^45^80 = 09.
 */
#define T1_ATR "3B911381 31FE4580 09"
/* T0 80 (TD1), TD1 81 (TD2; T=1), TD2 41 (TC3; T=1), TC3 01 (CRC), TCK = 80^81^41^01 = 41. */
#define CRC_ATR "3B808141 0141"
/* Specific mode: T0 90 (TA1, TD1), TA1 18 (Fi 372, Di 12), TD1 10 (TA2; T=0), TA2 80. */
#define SPECIFIC_ATR "3B901810 80"

static void test_parse_sim_atrs(void **state)
{
	struct atr_info a;
	CU_HEX(card, CARD_ATR);
	CU_HEX(psam, PSAM_ATR);

	(void)state;
	assert_int_equal(atr_parse(card, card_len, &a), 0);
	assert_int_equal(a.ts, 0x3B);
	assert_int_equal(a.protocols, 0x3);
	assert_int_equal(a.default_proto, 0);
	assert_false(a.has_ta1);
	assert_false(a.specific);
	assert_true(a.has_tck);
	assert_int_equal(a.hist_off, 4);
	assert_int_equal(a.hist_len, 14);
	assert_int_equal(card[a.hist_off], 0x00);
	assert_int_equal(card[a.hist_off + 1], 0x81);
	assert_int_equal(a.ifsc, 32);
	assert_int_equal(a.bwi, 4);
	assert_int_equal(a.cwi, 13);
	assert_int_equal(a.wi, 10);
	assert_false(a.crc);

	assert_int_equal(atr_parse(psam, psam_len, &a), 0);
	assert_int_equal(a.protocols, 0x1);
	assert_int_equal(a.default_proto, 0);
	assert_true(a.has_tc1);
	assert_int_equal(a.tc1, 0);
	assert_false(a.has_tck);
	assert_int_equal(a.hist_off, 4);
	assert_int_equal(a.hist_len, 12);
}

static void test_parse_t1_bytes(void **state)
{
	struct atr_info a;
	CU_HEX(t1, T1_ATR);
	CU_HEX(crc, CRC_ATR);
	CU_HEX(spec, SPECIFIC_ATR);
	CU_HEX(inverse, "3F 00");

	(void)state;
	assert_int_equal(atr_parse(t1, t1_len, &a), 0);
	assert_int_equal(a.protocols, 0x2);
	assert_int_equal(a.default_proto, 1);
	assert_true(a.has_ta1);
	assert_int_equal(a.ta1, 0x13);
	assert_int_equal(a.ifsc, 254);
	assert_int_equal(a.bwi, 4);
	assert_int_equal(a.cwi, 5);
	assert_int_equal(a.hist_off, 7);
	assert_int_equal(a.hist_len, 1);

	assert_int_equal(atr_parse(crc, crc_len, &a), 0);
	assert_true(a.crc);
	assert_int_equal(a.ifsc, 32);

	assert_int_equal(atr_parse(spec, spec_len, &a), 0);
	assert_true(a.specific);
	assert_int_equal(a.ta2, 0x80);
	assert_int_equal(a.protocols, 0x1);

	assert_int_equal(atr_parse(inverse, inverse_len, &a), 0);
	assert_int_equal(a.ts, 0x3F);
	assert_int_equal(a.protocols, 0x1);
	assert_int_equal(a.hist_len, 0);
}

static void test_parse_malformed(void **state)
{
	struct atr_info a;
	CU_HEX(card, CARD_ATR);
	CU_HEX(psam, PSAM_ATR);
	CU_HEX(bad_ts, "3C 00");
	CU_HEX(cut, "3B8E80");
	CU_HEX(no_tck, "3B808141 01");
	CU_HEX(extra, PSAM_ATR "00");
	CU_HEX(zero_ifsc, "3B808111 00 10");   /* TA3 00 (RFU): IFSC stays 32; TCK 80^81^11^00 */

	(void)state;
	assert_int_equal(atr_parse(bad_ts, bad_ts_len, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(cut, cut_len, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(no_tck, no_tck_len, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(extra, extra_len, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(psam, psam_len - 1, &a), SSC_EPROTO);   /* history cut */
	card[card_len - 1] ^= 0x01;                                          /* TCK wrong */
	assert_int_equal(atr_parse(card, card_len, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(card, 1, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(card, 34, &a), SSC_EPROTO);
	assert_int_equal(atr_parse(NULL, 2, &a), SSC_EINVAL);
	assert_int_equal(atr_parse(zero_ifsc, zero_ifsc_len, &a), 0);
	assert_int_equal(a.ifsc, 32);
}

static void test_fi_di(void **state)
{
	(void)state;
	assert_int_equal(atr_fi(0x11), 372);
	assert_int_equal(atr_di(0x11), 1);
	assert_int_equal(atr_fi(0x96), 512);
	assert_int_equal(atr_di(0x96), 32);
	assert_int_equal(atr_di(0x18), 12);
	assert_int_equal(atr_fi(0x71), 0);   /* RFU */
	assert_int_equal(atr_di(0x10), 0);   /* RFU */
}

static void test_choose(void **state)
{
	struct atr_info a;
	struct atr_choice c;
	CU_HEX(card, CARD_ATR);
	CU_HEX(psam, PSAM_ATR);
	CU_HEX(t1, T1_ATR);
	CU_HEX(spec, SPECIFIC_ATR);

	(void)state;
	/* Both protocols both sides: T=1, which is not the card's first offer, so PPS. */
	assert_int_equal(atr_parse(card, card_len, &a), 0);
	assert_int_equal(atr_choose(&a, 0x3, 344086, 4000, &c), 0);
	assert_int_equal(c.proto, 1);
	assert_int_equal(c.fidi, 0x11);
	assert_true(c.need_pps);
	assert_int_equal(atr_choose(&a, 0x1, 344086, 4000, &c), 0);
	assert_int_equal(c.proto, 0);
	assert_false(c.need_pps);
	assert_int_equal(atr_choose(&a, 0x2, 0, 0, &c), 0);
	assert_int_equal(c.proto, 1);
	assert_true(c.need_pps);

	assert_int_equal(atr_parse(psam, psam_len, &a), 0);
	assert_int_equal(atr_choose(&a, 0x2, 344086, 4000, &c), SSC_EPROTO);

	/* TA1 13: 4 MHz * 4 / 372 = 43010 bit/s; only when the reader says it can. */
	assert_int_equal(atr_parse(t1, t1_len, &a), 0);
	assert_int_equal(atr_choose(&a, 0x3, 344086, 4000, &c), 0);
	assert_int_equal(c.proto, 1);
	assert_int_equal(c.fidi, 0x13);
	assert_true(c.need_pps);
	assert_int_equal(atr_choose(&a, 0x3, 40000, 4000, &c), 0);
	assert_int_equal(c.fidi, 0x11);
	assert_false(c.need_pps);
	assert_int_equal(atr_choose(&a, 0x3, 0, 0, &c), 0);
	assert_int_equal(c.fidi, 0x11);
	assert_false(c.need_pps);

	/* Specific mode: no PPS; TA1 18 = 129032 bit/s at 4 MHz must be within the reader's max. */
	assert_int_equal(atr_parse(spec, spec_len, &a), 0);
	assert_int_equal(atr_choose(&a, 0x3, 344086, 4000, &c), 0);
	assert_int_equal(c.proto, 0);
	assert_int_equal(c.fidi, 0x18);
	assert_false(c.need_pps);
	assert_int_equal(atr_choose(&a, 0x3, 115200, 4000, &c), SSC_EPROTO);
	assert_int_equal(atr_choose(&a, 0x2, 344086, 4000, &c), SSC_EPROTO);
}

static void test_pps(void **state)
{
	uint8_t req[ATR_PPS_MAX], fidi = 0;
	CU_HEX(req_t1, "FF 01 FE");
	CU_HEX(req_t1_fast, "FF 11 13 FD");
	CU_HEX(req_t0, "FF 00 FF");
	CU_HEX(no_pps1, "FF 01 FE");
	CU_HEX(other_proto, "FF 00 FF");
	CU_HEX(bad_pck, "FF 11 13 FC");
	CU_HEX(other_pps1, "FF 11 12 FC");
	CU_HEX(pps2, "FF 21 00 DE");
	CU_HEX(bad_ppss, "FE 01 FF");

	(void)state;
	assert_int_equal(atr_pps_build(1, 0x11, req), 3);
	assert_memory_equal(req, req_t1, 3);
	assert_int_equal(atr_pps_build(0, 0x11, req), 3);
	assert_memory_equal(req, req_t0, 3);
	assert_int_equal(atr_pps_build(1, 0x13, req), 4);
	assert_memory_equal(req, req_t1_fast, 4);
	assert_int_equal(atr_pps_build(2, 0x11, req), SSC_EINVAL);

	/* The echo: accepted. */
	assert_int_equal(atr_pps_check(req_t1_fast, 4, req_t1_fast, 4, &fidi), 0);
	assert_int_equal(fidi, 0x13);
	assert_int_equal(atr_pps_check(req_t1, 3, req_t1, 3, &fidi), 0);
	assert_int_equal(fidi, 0x11);
	/* PPS1 not echoed: the protocol holds, at the default speed. */
	assert_int_equal(atr_pps_check(req_t1_fast, 4, no_pps1, no_pps1_len, &fidi), 0);
	assert_int_equal(fidi, 0x11);
	/* Refusals and garbage. */
	assert_int_equal(atr_pps_check(req_t1, 3, other_proto, other_proto_len, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1_fast, 4, bad_pck, bad_pck_len, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1_fast, 4, other_pps1, other_pps1_len, &fidi),
			 SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1, 3, req_t1_fast, 4, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1, 3, pps2, pps2_len, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1, 3, bad_ppss, bad_ppss_len, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1_fast, 4, req_t1_fast, 3, &fidi), SSC_EPROTO);
	assert_int_equal(atr_pps_check(req_t1, 3, req_t1, 2, &fidi), SSC_EPROTO);
}

static void test_ccid_params(void **state)
{
	struct atr_info a;
	uint8_t p[7];
	CU_HEX(psam, PSAM_ATR);
	CU_HEX(t1, T1_ATR);
	CU_HEX(crc, CRC_ATR);
	CU_HEX(inverse, "3F 00");
	CU_HEX(want_t0, "11 00 00 0A 00");
	CU_HEX(want_t1, "13 10 00 45 00 FE 00");
	CU_HEX(want_crc, "11 11 00 4D 00 20 00");
	CU_HEX(want_inv, "11 02 00 0A 00");

	(void)state;
	assert_int_equal(atr_parse(psam, psam_len, &a), 0);
	assert_int_equal(atr_ccid_params(&a, 0, 0x11, p), 5);
	assert_memory_equal(p, want_t0, 5);
	assert_int_equal(atr_parse(t1, t1_len, &a), 0);
	assert_int_equal(atr_ccid_params(&a, 1, 0x13, p), 7);
	assert_memory_equal(p, want_t1, 7);
	assert_int_equal(atr_parse(crc, crc_len, &a), 0);
	assert_int_equal(atr_ccid_params(&a, 1, 0x11, p), 7);
	assert_memory_equal(p, want_crc, 7);
	assert_int_equal(atr_parse(inverse, inverse_len, &a), 0);
	assert_int_equal(atr_ccid_params(&a, 0, 0x11, p), 5);
	assert_memory_equal(p, want_inv, 5);
	assert_int_equal(atr_ccid_params(&a, 2, 0x11, p), SSC_EINVAL);
}

static void test_wait_ms(void **state)
{
	struct atr_info a;
	CU_HEX(card, CARD_ATR);

	(void)state;
	assert_int_equal(atr_parse(card, card_len, &a), 0);
	/* T=0: 960 * 10 * 372 / 4 MHz = 892.8 ms. */
	assert_int_equal(atr_wait_ms(&a, 0, 0x11, 4000), 893);
	assert_int_equal(atr_wait_ms(&a, 0, 0x11, 0), 893);
	/* T=1: 11 * 372 / 4 MHz = 1.023 ms, plus 16 * 960 * 372 / 4 MHz = 1428.48 ms. */
	assert_int_equal(atr_wait_ms(&a, 1, 0x11, 4000), 1430);
	/* Twice the clock: half the time (446.4 -> 447; 0.5115 + 714.24 -> 715). */
	assert_int_equal(atr_wait_ms(&a, 0, 0x11, 8000), 447);
	assert_int_equal(atr_wait_ms(&a, 1, 0x11, 8000), 715);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_sim_atrs),
		cmocka_unit_test(test_parse_t1_bytes),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_fi_di),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_pps),
		cmocka_unit_test(test_ccid_params),
		cmocka_unit_test(test_wait_ms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
