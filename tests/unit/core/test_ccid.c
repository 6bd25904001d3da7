/*
 * Unit tests of drivers/usb-ccid/ccid.c, the CCID message codec: the class descriptor, every
 * PC_to_RDR message this driver sends, every RDR_to_PC reply type, the interrupt notifications,
 * and every error path (truncated, oversized, trailing bytes, wrong type, wrong slot, wrong
 * sequence number, failed status, time extension). Expected bytes are written from CCID Rev 1.1.
 */
#include "test_ccid_enc.h"
#include "test_ccid_util.h"

#include "../../../drivers/usb-ccid/ccid.h"

/* A dual-slot TPDU reader's class descriptor, field by field. */
#define DESC_HEX \
	"36 21 1001 01 07 03000000 A00F0000 401F0000 00 80250000 16400500 00 FE000000" \
	" 00000000 00000000 BA040100 0F010000 FF FF 0000 00 01"

static void test_class_desc(void **state)
{
	struct ccid_class_desc d;
	CU_HEX(desc, DESC_HEX);

	(void)state;
	assert_int_equal(desc_len, 54);
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), 0);
	assert_int_equal(d.bcd_ccid, 0x0110);
	assert_int_equal(d.max_slot_index, 1);
	assert_int_equal(d.voltage_support, 7);
	assert_int_equal(d.protocols, 3);
	assert_int_equal(d.default_clock_khz, 4000);
	assert_int_equal(d.max_clock_khz, 8000);
	assert_int_equal(d.data_rate_bps, 9600);
	assert_int_equal(d.max_data_rate_bps, 344086);
	assert_int_equal(d.max_ifsd, 254);
	assert_int_equal(d.features, 0x000104BA);
	assert_int_equal(d.max_msg_len, 271);
	assert_int_equal(d.class_get_response, 0xFF);
	assert_int_equal(d.class_envelope, 0xFF);
	assert_int_equal(d.max_busy_slots, 1);
	assert_int_equal(ccid_exchange_level(d.features), CCID_LEVEL_TPDU);

	/* Truncated, a wrong bLength, a wrong type, too many slots. */
	assert_int_equal(ccid_parse_class_desc(desc, 53, &d), SSC_EPROTO);
	desc[0] = 0x35;
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), SSC_EPROTO);
	desc[0] = 0x36;
	desc[1] = 0x22;
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), SSC_EPROTO);
	desc[1] = 0xFF;   /* pre-1.0 readers: accepted */
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), 0);
	desc[1] = 0x21;
	desc[4] = 16;
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), SSC_EPROTO);
	desc[4] = 15;
	assert_int_equal(ccid_parse_class_desc(desc, desc_len, &d), 0);
	assert_int_equal(ccid_parse_class_desc(NULL, desc_len, &d), SSC_EINVAL);
}

static void test_find_class_desc(void **state)
{
	/* A 7-byte endpoint-like record, then the CCID descriptor. */
	CU_HEX(extra, "07 05 81 03 08 00 10 " DESC_HEX);
	CU_HEX(broken, "00 05 " DESC_HEX);
	CU_HEX(overrun, "09 04 00 00");
	CU_HEX(none, "07 05 81 03 08 00 10");

	(void)state;
	assert_int_equal(ccid_find_class_desc(extra, extra_len), 7);
	assert_int_equal(ccid_find_class_desc(extra + 7, 54), 0);
	assert_int_equal(ccid_find_class_desc(broken, broken_len), SSC_ENOTFOUND);
	assert_int_equal(ccid_find_class_desc(overrun, overrun_len), SSC_ENOTFOUND);
	assert_int_equal(ccid_find_class_desc(none, none_len), SSC_ENOTFOUND);
	assert_int_equal(ccid_find_class_desc(extra, 20), SSC_ENOTFOUND);   /* cut inside it */
	assert_int_equal(ccid_find_class_desc(NULL, 0), SSC_ENOTFOUND);
}

static void test_exchange_level(void **state)
{
	(void)state;
	assert_int_equal(ccid_exchange_level(0), CCID_LEVEL_CHAR);
	assert_int_equal(ccid_exchange_level(0x00010000), CCID_LEVEL_TPDU);
	assert_int_equal(ccid_exchange_level(0x000200BA), CCID_LEVEL_SHORT_APDU);
	assert_int_equal(ccid_exchange_level(0x00040000), CCID_LEVEL_EXT_APDU);
	assert_int_equal(ccid_exchange_level(0x00070000), CCID_LEVEL_EXT_APDU);
}

static void test_encode(void **state)
{
	uint8_t out[64], data[8] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	const struct ccid_msg no_data = { .type = 0x6F, .len = 3 }, empty = { .type = 0x6F };
	CU_HEX(on, "62 00000000 01 07 01 0000");
	CU_HEX(on_auto, "62 00000000 00 00 00 0000");
	CU_HEX(off, "63 00000000 00 05 000000");
	CU_HEX(status, "65 00000000 0F FF 000000");
	CU_HEX(getp, "6C 00000000 00 02 000000");
	CU_HEX(setp0, "61 05000000 00 09 00 0000 1100000A00");
	CU_HEX(setp1, "61 07000000 01 0A 01 0000 11100045 00FE00");
	CU_HEX(xfr, "6F 07000000 00 03 05 0100 00A40400023F00");
	CU_HEX(xfr_empty, "6F 00000000 01 04 00 1000");
	CU_HEX(abort_msg, "72 00000000 01 33 000000");
	CU_HEX(p0, "1100000A00");
	CU_HEX(p1, "11100045 00FE00");

	(void)state;
	assert_int_equal(cu_enc_power_on(out, sizeof(out), 1, 7, 1), 10);
	assert_memory_equal(out, on, 10);
	assert_int_equal(cu_enc_power_on(out, sizeof(out), 0, 0, 0), 10);
	assert_memory_equal(out, on_auto, 10);
	assert_int_equal(cu_enc_power_on(out, sizeof(out), 0, 0, 4), SSC_EINVAL);
	assert_int_equal(cu_enc_power_off(out, sizeof(out), 0, 5), 10);
	assert_memory_equal(out, off, 10);
	assert_int_equal(cu_enc_get_slot_status(out, sizeof(out), 15, 0xFF), 10);
	assert_memory_equal(out, status, 10);
	assert_int_equal(cu_enc_get_parameters(out, sizeof(out), 0, 2), 10);
	assert_memory_equal(out, getp, 10);
	assert_int_equal(cu_enc_set_parameters(out, sizeof(out), 0, 9, 0, p0, p0_len), 15);
	assert_memory_equal(out, setp0, 15);
	assert_int_equal(cu_enc_set_parameters(out, sizeof(out), 1, 10, 1, p1, p1_len), 17);
	assert_memory_equal(out, setp1, 17);
	assert_int_equal(cu_enc_xfr_block(out, sizeof(out), 0, 3, 5, 0x0001, data, 7), 17);
	assert_memory_equal(out, xfr, 17);
	assert_int_equal(cu_enc_xfr_block(out, sizeof(out), 1, 4, 0, CCID_CHAIN_CONTINUE, NULL, 0),
			 10);
	assert_memory_equal(out, xfr_empty, 10);
	assert_int_equal(ccid_enc_abort(out, sizeof(out), 1, 0x33), 10);
	assert_memory_equal(out, abort_msg, 10);

	/* Wrong parameter lengths and protocols; a buffer too small; data missing. */
	assert_int_equal(cu_enc_set_parameters(out, sizeof(out), 0, 9, 0, p1, p1_len), SSC_EINVAL);
	assert_int_equal(cu_enc_set_parameters(out, sizeof(out), 0, 9, 1, p0, p0_len), SSC_EINVAL);
	assert_int_equal(cu_enc_set_parameters(out, sizeof(out), 0, 9, 2, p0, p0_len), SSC_EINVAL);
	assert_int_equal(cu_enc_xfr_block(out, 16, 0, 3, 0, 0, data, 7), SSC_EINVAL);
	assert_int_equal(cu_enc_power_off(out, 9, 0, 5), SSC_EINVAL);
	assert_int_equal(ccid_encode(out, sizeof(out), &no_data), SSC_EINVAL);
	assert_int_equal(ccid_encode(NULL, 10, &empty), SSC_EINVAL);
	assert_int_equal(ccid_encode(out, sizeof(out), NULL), SSC_EINVAL);
}

static void test_decode_types(void **state)
{
	struct ccid_reply r;
	CU_HEX(data_block, "80 04000000 00 05 00 00 00 3B009000");
	CU_HEX(slot_status, "81 00000000 01 06 01 00 00");
	CU_HEX(params, "82 07000000 00 07 00 00 01 11100045 00FE00");
	CU_HEX(escape, "83 01000000 00 08 00 00 00 AA");
	CU_HEX(rate, "84 08000000 00 09 00 00 00 A00F0000 80250000");

	(void)state;
	assert_int_equal(ccid_decode(data_block, data_block_len, 300, &r), 0);
	assert_int_equal(r.type, CCID_RDR_DATA_BLOCK);
	assert_int_equal(r.len, 4);
	assert_int_equal(r.slot, 0);
	assert_int_equal(r.seq, 5);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.param, 0);
	assert_ptr_equal(r.data, data_block + 10);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 0, 5, 1), 0);

	assert_int_equal(ccid_decode(slot_status, slot_status_len, 300, &r), 0);
	assert_int_equal(r.type, CCID_RDR_SLOT_STATUS);
	assert_int_equal(r.slot, 1);
	assert_int_equal(r.status & CCID_ICC_MASK, CCID_ICC_INACTIVE);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_SLOT_STATUS, 1, 6, 1), 0);

	assert_int_equal(ccid_decode(params, params_len, 300, &r), 0);
	assert_int_equal(r.type, CCID_RDR_PARAMETERS);
	assert_int_equal(r.param, 1);   /* bProtocolNum */
	assert_int_equal(r.len, 7);
	assert_int_equal(r.data[5], 0xFE);

	assert_int_equal(ccid_decode(escape, escape_len, 300, &r), 0);
	assert_int_equal(r.type, CCID_RDR_ESCAPE);
	assert_int_equal(ccid_decode(rate, rate_len, 300, &r), 0);
	assert_int_equal(r.type, CCID_RDR_DATA_RATE_CLOCK);
}

static void test_decode_errors(void **state)
{
	struct ccid_reply r;
	CU_HEX(ok, "80 02000000 00 05 00 00 00 9000");
	CU_HEX(short_body, "80 03000000 00 05 00 00 00 9000");
	CU_HEX(trailing, "80 01000000 00 05 00 00 00 9000");
	CU_HEX(huge, "80 FFFFFFFF 00 05 00 00 00 9000");
	CU_HEX(command, "6F 02000000 00 05 00 00 00 9000");
	CU_HEX(interrupt, "50 02000000 00 05 00 00 00 9000");

	(void)state;
	/* Truncated header: 9 bytes, or nothing. */
	assert_int_equal(ccid_decode(ok, 9, 300, &r), SSC_EPROTO);
	assert_int_equal(ccid_decode(ok, 0, 300, &r), SSC_EPROTO);
	/* dwLength says 3, two came. */
	assert_int_equal(ccid_decode(short_body, short_body_len, 300, &r), SSC_EPROTO);
	/* dwLength says 1, two came. */
	assert_int_equal(ccid_decode(trailing, trailing_len, 300, &r), SSC_EPROTO);
	/* Oversized: dwLength past the limit (whatever arrived). */
	assert_int_equal(ccid_decode(huge, huge_len, 300, &r), SSC_EPROTO);
	assert_int_equal(ccid_decode(ok, ok_len, 1, &r), SSC_EPROTO);
	assert_int_equal(ccid_decode(ok, ok_len, 2, &r), 0);
	/* Not a bulk-IN message type. */
	assert_int_equal(ccid_decode(command, command_len, 300, &r), SSC_EPROTO);
	assert_int_equal(ccid_decode(interrupt, interrupt_len, 300, &r), SSC_EPROTO);
	assert_int_equal(ccid_decode(NULL, 12, 300, &r), SSC_EINVAL);
}

static void test_check_reply(void **state)
{
	struct ccid_reply r;
	CU_HEX(ok, "80 02000000 01 05 00 00 00 9000");
	CU_HEX(time_ext, "80 00000000 01 05 80 02 00");
	CU_HEX(mute, "80 00000000 01 05 40 FE 00");
	CU_HEX(absent, "80 00000000 01 05 42 FE 00");
	CU_HEX(inactive, "80 00000000 01 05 41 05 00");
	CU_HEX(parity, "80 00000000 01 05 40 FD 00");
	CU_HEX(overrun, "80 00000000 01 05 40 FC 00");
	CU_HEX(hw, "80 00000000 01 05 40 FB 00");
	CU_HEX(busy, "80 00000000 01 05 40 E0 00");
	CU_HEX(auto_seq, "80 00000000 01 05 40 F2 00");
	CU_HEX(bad_tck, "80 00000000 01 05 40 F7 00");
	CU_HEX(not_supported, "80 00000000 01 05 40 00 00");
	CU_HEX(rfu_status, "80 00000000 01 05 C0 00 00");
	CU_HEX(status_failed, "81 00000000 01 05 40 00 00");
	CU_HEX(status_ok, "81 00000000 01 05 00 00 00");

	(void)state;
	assert_int_equal(ccid_decode(ok, ok_len, 300, &r), 0);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 1, 5, 1), 0);
	/* Wrong sequence number: an error only when it matters. */
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 1, 6, 1), SSC_EPROTO);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 1, 6, 0), 0);
	/* Wrong slot, wrong type. */
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 0, 5, 1), SSC_EPROTO);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_PARAMETERS, 1, 5, 1), SSC_EPROTO);

	assert_int_equal(ccid_decode(time_ext, time_ext_len, 300, &r), 0);
	assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 1, 5, 1), 1);

#define FAILS(msg, want)                                                                  \
	do {                                                                              \
		assert_int_equal(ccid_decode(msg, msg##_len, 300, &r), 0);                \
		assert_int_equal(ccid_check_reply(&r, CCID_RDR_DATA_BLOCK, 1, 5, 1), want); \
	} while (0)
	FAILS(mute, SSC_ETIMEDOUT);
	FAILS(absent, SSC_ECARDREMOVED);
	FAILS(inactive, SSC_ECARDREMOVED);
	FAILS(parity, SSC_EIO);
	FAILS(overrun, SSC_EIO);
	FAILS(hw, SSC_EREADER);
	FAILS(busy, SSC_EREADERBUSY);
	FAILS(auto_seq, SSC_EREADERBUSY);
	FAILS(bad_tck, SSC_EPROTO);
	FAILS(not_supported, SSC_EREADER);
	FAILS(rfu_status, SSC_EPROTO);
	/* A failed SlotStatus answers any command; a successful one answers only GetSlotStatus. */
	FAILS(status_failed, SSC_EREADER);
	FAILS(status_ok, SSC_EPROTO);
#undef FAILS
	assert_int_equal(ccid_check_reply(NULL, CCID_RDR_DATA_BLOCK, 1, 5, 1), SSC_EINVAL);
}

static void test_error_map_and_names(void **state)
{
	(void)state;
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_CMD_ABORTED), SSC_EREADER);
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_BAD_ATR_TS), SSC_EPROTO);
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_PROTOCOL_NOT_SUPPORTED), SSC_EPROTO);
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_CLASS_NOT_SUPPORTED), SSC_EPROTO);
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_PROCEDURE_BYTE_CONFLICT), SSC_EPROTO);
	assert_int_equal(ccid_error_map(0x40, CCID_ERR_DEACTIVATED_PROTOCOL), SSC_EPROTO);
	assert_int_equal(ccid_error_map(0x42, CCID_ERR_HW_ERROR), SSC_ECARDREMOVED);
	assert_int_equal(ccid_error_map(0x40, 7), SSC_EREADER);   /* bad parameter at offset 7 */
	assert_string_equal(ccid_error_name(0xFE), "ICC_MUTE");
	assert_string_equal(ccid_error_name(0xE0), "CMD_SLOT_BUSY");
	assert_string_equal(ccid_error_name(0x07), "bad parameter");
	assert_string_equal(ccid_error_name(0x00), "command not supported");
	assert_string_equal(ccid_error_name(0xC0), "unknown error");
}

static void test_interrupt(void **state)
{
	uint32_t present = 0xFFFF, changed = 0xFFFF;
	uint8_t hw_slot = 0, hw_code = 0;
	CU_HEX(one_in, "50 03");
	CU_HEX(two, "50 0E");          /* slot 0: changed, absent; slot 1: changed, present */
	CU_HEX(five, "50 00 03");      /* slot 4 (third byte's bits 0-1): present, changed */
	CU_HEX(hw, "51 01 22 01");
	CU_HEX(hw_short, "51 01 22");
	CU_HEX(other, "80 00");

	(void)state;
	assert_int_equal(ccid_notify_len(1), 2);
	assert_int_equal(ccid_notify_len(4), 2);
	assert_int_equal(ccid_notify_len(5), 3);
	assert_int_equal(ccid_notify_len(16), 5);

	assert_int_equal(ccid_parse_interrupt(one_in, one_in_len, 1, &present, &changed, &hw_slot,
					      &hw_code), CCID_RDR_NOTIFY_SLOT_CHANGE);
	assert_int_equal(present, 1);
	assert_int_equal(changed, 1);
	assert_int_equal(ccid_parse_interrupt(two, two_len, 2, &present, &changed, &hw_slot,
					      &hw_code), CCID_RDR_NOTIFY_SLOT_CHANGE);
	assert_int_equal(present, 2);
	assert_int_equal(changed, 3);
	assert_int_equal(ccid_parse_interrupt(five, five_len, 5, &present, &changed, &hw_slot,
					      &hw_code), CCID_RDR_NOTIFY_SLOT_CHANGE);
	assert_int_equal(present, 0x10);
	assert_int_equal(changed, 0x10);
	/* Truncated: five slots need three bytes. */
	assert_int_equal(ccid_parse_interrupt(five, 2, 5, &present, &changed, &hw_slot, &hw_code),
			 SSC_EPROTO);
	assert_int_equal(ccid_parse_interrupt(one_in, 1, 1, &present, &changed, &hw_slot, &hw_code),
			 SSC_EPROTO);
	assert_int_equal(ccid_parse_interrupt(one_in, one_in_len, 33, &present, &changed, &hw_slot,
					      &hw_code), SSC_EPROTO);

	assert_int_equal(ccid_parse_interrupt(hw, hw_len, 2, &present, &changed, &hw_slot, &hw_code),
			 CCID_RDR_HARDWARE_ERROR);
	assert_int_equal(hw_slot, 1);
	assert_int_equal(hw_code, 1);
	assert_int_equal(ccid_parse_interrupt(hw_short, hw_short_len, 2, &present, &changed,
					      &hw_slot, &hw_code), SSC_EPROTO);
	assert_int_equal(ccid_parse_interrupt(other, other_len, 2, &present, &changed, &hw_slot,
					      &hw_code), SSC_EPROTO);
	assert_int_equal(ccid_parse_interrupt(other, 0, 2, &present, &changed, &hw_slot, &hw_code),
			 SSC_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_desc),
		cmocka_unit_test(test_find_class_desc),
		cmocka_unit_test(test_exchange_level),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode_types),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_check_reply),
		cmocka_unit_test(test_error_map_and_names),
		cmocka_unit_test(test_interrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
