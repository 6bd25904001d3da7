/*
 * Unit tests of drivers/usb-ccid/t0.c, short APDUs over T=0 TPDUs, against scripted cards: the
 * four cases, 6Cxx resends, 61xx GET RESPONSE chains (also after 6Cxx to a GET RESPONSE), the
 * class byte of GET RESPONSE, answers of cases 1 and 3 passed through, and every error: extended
 * or inconsistent APDUs, short, long and endless answers, a full buffer, a failing transport.
 * The TPDUs are written by hand from ISO/IEC 7816-3 §12.2.
 */
#include "test_ccid_util.h"

#include "../../../drivers/usb-ccid/t0.h"

static int peer_xfer(void *ctx, const uint8_t *tpdu, size_t len, uint8_t *resp, size_t rcap)
{
	assert_true(rcap >= T0_RESP_MAX);
	return cu_peer_xfer(ctx, tpdu, len, resp, rcap, 0);
}

static int run(const struct cu_step *steps, const char *apdu_hex, uint8_t *resp, size_t cap)
{
	struct cu_peer pe = { steps, 0, 0 };
	uint8_t apdu[300];
	size_t n = cu_unhex(apdu_hex, apdu, sizeof(apdu));
	int rc = t0_transceive(apdu, n, resp, cap, peer_xfer, &pe);

	cu_peer_done(&pe);
	return rc;
}

#define END { NULL, NULL, 0, 0, 0 }

/* 30 bytes of record data. */
#define REC30 "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D"

static void test_cases(void **state)
{
	static const struct cu_step case1[] = {
		{ "00A4000000", "9000", 0, 0, 0 }, END,
	};
	static const struct cu_step case2[] = {
		{ "0084000008", "1122334455667788 9000", 0, 0, 0 }, END,
	};
	static const struct cu_step case3[] = {
		{ "00A4040002 3F00", "9000", 0, 0, 0 }, END,
	};
	/* Case 4: Le is not sent; the card says 61 1E; GET RESPONSE fetches 30 bytes. */
	static const struct cu_step case4[] = {
		{ "00A4040002 3F00", "611E", 0, 0, 0 },
		{ "00C000001E", REC30 "9000", 0, 0, 0 },
		END,
	};
	/* Case 4 answered 9000 at once: no data. */
	static const struct cu_step case4_nodata[] = {
		{ "00A4040002 3F00", "9000", 0, 0, 0 }, END,
	};
	uint8_t resp[300];
	CU_HEX(rec, REC30 "9000");

	(void)state;
	assert_int_equal(run(case1, "00A40000", resp, sizeof(resp)), 2);
	assert_int_equal(run(case2, "0084000008", resp, sizeof(resp)), 10);
	assert_int_equal(resp[8], 0x90);
	assert_int_equal(run(case3, "00A40400023F00", resp, sizeof(resp)), 2);
	assert_int_equal(run(case4, "00A40400023F00 00", resp, sizeof(resp)), 32);
	assert_memory_equal(resp, rec, 32);
	assert_int_equal(run(case4_nodata, "00A40400023F00 00", resp, sizeof(resp)), 2);
}

static void test_6c_and_61(void **state)
{
	/* READ RECORD with Le 00: 6C 1E, then again with P3 1E. */
	static const struct cu_step wrong_le[] = {
		{ "00B2010C00", "6C1E", 0, 0, 0 },
		{ "00B2010C1E", REC30 "9000", 0, 0, 0 },
		END,
	};
	/* Case 2 answered 61 10: GET RESPONSE 10 gives 16 bytes and 61 02; then 2 more. */
	static const struct cu_step chain[] = {
		{ "00B2010C00", "6110", 0, 0, 0 },
		{ "00C0000010", "000102030405060708090A0B0C0D0E0F 6102", 0, 0, 0 },
		{ "00C0000002", "1011 9000", 0, 0, 0 },
		END,
	};
	/* 6C to a GET RESPONSE: asked again with its length. */
	static const struct cu_step gr_6c[] = {
		{ "80FA000008 0102030405060708", "6108", 0, 0, 0 },
		{ "00C0000008", "6C04", 0, 0, 0 },
		{ "00C0000004", "AABBCCDD 9000", 0, 0, 0 },
		END,
	};
	/* GET RESPONSE ends with an error status word: data so far, then that SW. */
	static const struct cu_step gr_error[] = {
		{ "00B2010C00", "6104", 0, 0, 0 },
		{ "00C0000004", "6985", 0, 0, 0 },
		END,
	};
	uint8_t resp[300];
	CU_HEX(rec, REC30 "9000");
	CU_HEX(joined, "000102030405060708090A0B0C0D0E0F1011 9000");
	CU_HEX(cipher, "AABBCCDD 9000");

	(void)state;
	assert_int_equal(run(wrong_le, "00B2010C00", resp, sizeof(resp)), 32);
	assert_memory_equal(resp, rec, 32);
	assert_int_equal(run(chain, "00B2010C00", resp, sizeof(resp)), 20);
	assert_memory_equal(resp, joined, 20);
	assert_int_equal(run(gr_6c, "80FA000008 0102030405060708 00", resp, sizeof(resp)), 6);
	assert_memory_equal(resp, cipher, 6);
	assert_int_equal(run(gr_error, "00B2010C00", resp, sizeof(resp)), 2);
	assert_int_equal(resp[0], 0x69);
	assert_int_equal(resp[1], 0x85);
}

static void test_passthrough_and_class(void **state)
{
	/* Case 3 and case 1 answers come back as they are, 61xx included (as at APDU level). */
	static const struct cu_step case3_61[] = {
		{ "80FA000008 0102030405060708", "6108", 0, 0, 0 }, END,
	};
	static const struct cu_step case1_6c[] = {
		{ "0044000000", "6C00", 0, 0, 0 }, END,
	};
	/* Logical channel 1 is kept; a proprietary class gets GET RESPONSE in class 00; secure
	 * messaging bits are dropped; further interindustry channel 5 (CLA 41) is kept. */
	static const struct cu_step channel[] = {
		{ "01A4040002 3F00", "6102", 0, 0, 0 },
		{ "01C0000002", "AABB 9000", 0, 0, 0 },
		END,
	};
	static const struct cu_step prop[] = {
		{ "80CA9F7F00", "6102", 0, 0, 0 },
		{ "00C0000002", "AABB 9000", 0, 0, 0 },
		END,
	};
	static const struct cu_step sm[] = {
		{ "0CB2010C00", "6102", 0, 0, 0 },
		{ "00C0000002", "AABB 9000", 0, 0, 0 },
		END,
	};
	static const struct cu_step further[] = {
		{ "41B2010C00", "6102", 0, 0, 0 },
		{ "41C0000002", "AABB 9000", 0, 0, 0 },
		END,
	};
	uint8_t resp[300];

	(void)state;
	assert_int_equal(run(case3_61, "80FA000008 0102030405060708", resp, sizeof(resp)), 2);
	assert_int_equal(resp[0], 0x61);
	assert_int_equal(run(case1_6c, "00440000", resp, sizeof(resp)), 2);
	assert_int_equal(resp[0], 0x6C);
	assert_int_equal(run(channel, "01A40400023F00 00", resp, sizeof(resp)), 4);
	assert_int_equal(run(prop, "80CA9F7F00", resp, sizeof(resp)), 4);
	assert_int_equal(run(sm, "0CB2010C00", resp, sizeof(resp)), 4);
	assert_int_equal(run(further, "41B2010C00", resp, sizeof(resp)), 4);
}

/* A card that answers every TPDU with 61 01 and one byte of data. */
static int endless_61(void *ctx, const uint8_t *tpdu, size_t len, uint8_t *resp, size_t rcap)
{
	int *calls = ctx;

	(void)tpdu;
	(void)len;
	(void)rcap;
	if (++*calls == 1) {
		resp[0] = 0x61;   /* the case-4 TPDU: a status word only */
		resp[1] = 0x01;
		return 2;
	}
	resp[0] = 0xAA;
	resp[1] = 0x61;
	resp[2] = 0x01;
	return 3;
}

static void test_errors(void **state)
{
	static const struct cu_step none[] = { END };
	static const struct cu_step short_answer[] = {
		{ "0084000008", "90", 0, 0, 0 }, END,
	};
	static const struct cu_step too_long[] = {
		{ "0084000002", "112233 9000", 0, 0, 0 }, END,
	};
	static const struct cu_step data_to_case3[] = {
		{ "00A4040002 3F00", "11 9000", 0, 0, 0 }, END,
	};
	static const struct cu_step removed[] = {
		{ "00A4040002 3F00", "6102", 0, 0, 0 },
		{ "00C0000002", "", CU_FAIL, SSC_ECARDREMOVED, 0 },
		END,
	};
	static const struct cu_step full[] = {
		{ "00B2010C00", "6C1E", 0, 0, 0 },
		{ "00B2010C1E", REC30 "9000", 0, 0, 0 },
		END,
	};
	uint8_t resp[300];
	int calls = 0;
	uint8_t apdu[7] = { 0x00, 0xA4, 0x04, 0x00, 0x01, 0x3F, 0x00 };

	(void)state;
	/* Not short APDUs: extended length, an Lc that disagrees with the length, too short. */
	assert_int_equal(run(none, "00B0000000 0100", resp, sizeof(resp)), SSC_EINVAL);
	assert_int_equal(run(none, "00A4040003 3F00", resp, sizeof(resp)), SSC_EINVAL);
	assert_int_equal(run(none, "00A4040001 3F0000 00", resp, sizeof(resp)), SSC_EINVAL);
	assert_int_equal(run(none, "00A404", resp, sizeof(resp)), SSC_EINVAL);
	assert_int_equal(run(none, "00B0000000", resp, 1), SSC_EINVAL);
	/* Answers shorter than a status word, longer than asked, data to a case-3 TPDU. */
	assert_int_equal(run(short_answer, "0084000008", resp, sizeof(resp)), SSC_EPROTO);
	assert_int_equal(run(too_long, "0084000002", resp, sizeof(resp)), SSC_EPROTO);
	assert_int_equal(run(data_to_case3, "00A40400023F00", resp, sizeof(resp)), SSC_EPROTO);
	/* The transport's error comes back as it is. */
	assert_int_equal(run(removed, "00A40400023F00 00", resp, sizeof(resp)), SSC_ECARDREMOVED);
	/* More than the caller's buffer. */
	assert_int_equal(run(full, "00B2010C00", resp, 31), SSC_EPROTO);
	assert_int_equal(run(full, "00B2010C00", resp, 32), 32);
	/* A card that never stops saying 61xx. */
	assert_int_equal(t0_transceive(apdu, sizeof(apdu), resp, sizeof(resp), endless_61, &calls),
			 SSC_EPROTO);
	assert_int_equal(calls, T0_MAX_EXCHANGES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_6c_and_61),
		cmocka_unit_test(test_passthrough_and_class),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
