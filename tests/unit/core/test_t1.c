/*
 * Unit tests of drivers/usb-ccid/t1.c, the T=1 block protocol, against scripted card-side peers:
 * plain exchanges and sequence numbers, chaining both ways, S(WTX) and S(IFS) from the card, IFSD
 * negotiation, recovery from a bad LRC, a lost block and invalid blocks, resynchronisation, abort,
 * a card that never stops asking for time, and fatal transport errors. Every block is written by
 * hand from ISO/IEC 7816-3 §11 (NAD PCB LEN INF; the peer adds and checks the LRC itself).
 */
#include "test_ccid_util.h"

#include "../../../drivers/usb-ccid/t1.h"

static int peer_xfer(void *ctx, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
		     unsigned wtx)
{
	return cu_peer_xfer(ctx, blk, len, rblk, rcap, wtx);
}

/* Runs one APDU through t against the script; returns the result and leaves resp filled. */
static int run(struct t1 *t, const struct cu_step *steps, const char *apdu_hex, uint8_t *resp,
	       size_t cap)
{
	struct cu_peer pe = { steps, 0, 1 };
	uint8_t apdu[300];
	size_t n = cu_unhex(apdu_hex, apdu, sizeof(apdu));
	int rc = t1_transceive(t, apdu, n, resp, cap, peer_xfer, &pe);

	cu_peer_done(&pe);
	return rc;
}

static void test_blocks(void **state)
{
	uint8_t out[T1_BLOCK_MAX], pcb = 0;
	const uint8_t *inf = NULL;
	size_t inf_len = 0;
	CU_HEX(sw, "9000");
	CU_HEX(i0, "00 00 02 9000 92");     /* LRC = 00^00^02^90^00 */
	CU_HEX(r1, "00 90 00 90");
	CU_HEX(bad_lrc, "00 00 02 9000 93");
	CU_HEX(bad_len, "00 00 03 9000 93");
	CU_HEX(len_ff, "00 00 FF 9000 6D");

	(void)state;
	assert_int_equal(t1_lrc(i0, 5), 0x92);
	assert_int_equal(t1_block_build(0x00, sw, 2, out), 6);
	assert_memory_equal(out, i0, 6);
	assert_int_equal(t1_block_build(0x90, NULL, 0, out), 4);
	assert_memory_equal(out, r1, 4);
	assert_int_equal(t1_block_build(0x00, NULL, 255, out), SSC_EINVAL);
	assert_int_equal(t1_block_build(0x00, NULL, 2, out), SSC_EINVAL);

	assert_int_equal(t1_block_check(i0, i0_len, 254, &pcb, &inf, &inf_len), 0);
	assert_int_equal(pcb, 0x00);
	assert_int_equal(inf_len, 2);
	assert_ptr_equal(inf, i0 + 3);
	assert_int_equal(t1_block_check(i0, i0_len, 1, &pcb, &inf, &inf_len), SSC_EPROTO);
	assert_int_equal(t1_block_check(bad_lrc, bad_lrc_len, 254, &pcb, &inf, &inf_len),
			 SSC_EPROTO);
	assert_int_equal(t1_block_check(bad_len, bad_len_len, 254, &pcb, &inf, &inf_len),
			 SSC_EPROTO);
	assert_int_equal(t1_block_check(len_ff, len_ff_len, 254, &pcb, &inf, &inf_len), SSC_EPROTO);
	assert_int_equal(t1_block_check(i0, 3, 254, &pcb, &inf, &inf_len), SSC_EPROTO);
}

static void test_init(void **state)
{
	struct t1 t;

	(void)state;
	t1_init(&t, 254, 200);
	assert_int_equal(t.ns, 0);
	assert_int_equal(t.nr, 0);
	assert_int_equal(t.ifsc, 254);
	assert_int_equal(t.ifsd, 32);
	assert_int_equal(t.max_inf, 200);
	t1_init(&t, 0, 0);
	assert_int_equal(t.ifsc, 32);
	assert_int_equal(t.max_inf, 254);
	t1_init(&t, 255, 255);
	assert_int_equal(t.ifsc, 32);
	assert_int_equal(t.max_inf, 254);
}

static void test_plain_and_sequence(void **state)
{
	static const struct cu_step first[] = {
		{ "00 00 07 00A40400023F00", "00 00 02 9000", 0, 0, 1 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step second[] = {
		{ "00 40 05 0084000008", "00 40 0A 1122334455667788 9000", 0, 0, 1 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[300];
	CU_HEX(want, "1122334455667788 9000");

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, first, "00A40400023F00", resp, sizeof(resp)), 2);
	assert_int_equal(resp[0], 0x90);
	assert_int_equal(t.ns, 1);
	assert_int_equal(t.nr, 1);
	assert_int_equal(run(&t, second, "0084000008", resp, sizeof(resp)), 10);
	assert_memory_equal(resp, want, 10);
	assert_int_equal(t.ns, 0);
	assert_int_equal(t.nr, 0);
}

static void test_chain_send(void **state)
{
	/* IFSC 4: ten bytes go as 4 + 4 + 2, each chained block acknowledged by an R-block. */
	static const struct cu_step steps[] = {
		{ "00 20 04 00D60000", "00 90 00", 0, 0, 0 },
		{ "00 60 04 05010203", "00 80 00", 0, 0, 0 },
		{ "00 00 02 0405", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16];

	(void)state;
	t1_init(&t, 4, 254);
	assert_int_equal(run(&t, steps, "00D6000005 0102030405", resp, sizeof(resp)), 2);
	assert_int_equal(t.ns, 1);
	assert_int_equal(t.nr, 1);

	/* The transport cap (max_inf) limits chunks even when the IFSC is larger. */
	static const struct cu_step capped[] = {
		{ "00 20 03 00D600", "00 90 00", 0, 0, 0 },
		{ "00 60 03 000501", "00 80 00", 0, 0, 0 },
		{ "00 20 03 020304", "00 90 00", 0, 0, 0 },
		{ "00 40 01 05", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	t1_init(&t, 254, 3);
	assert_int_equal(run(&t, capped, "00D6000005 0102030405", resp, sizeof(resp)), 2);
}

static void test_chain_receive(void **state)
{
	static const struct cu_step steps[] = {
		{ "00 00 05 00B2010C00", "00 20 02 0102", 0, 0, 0 },
		{ "00 90 00", "00 40 03 039000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	/* The card missed our acknowledgement (it sends an R-block): we send it again. */
	static const struct cu_step resend_ack[] = {
		{ "00 00 05 00B2010C00", "00 20 02 0102", 0, 0, 0 },
		{ "00 90 00", "00 80 00", 0, 0, 0 },
		{ "00 90 00", "00 40 03 039000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16];
	CU_HEX(want, "0102039000");

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, steps, "00B2010C00", resp, sizeof(resp)), 5);
	assert_memory_equal(resp, want, 5);
	assert_int_equal(t.ns, 1);
	assert_int_equal(t.nr, 0);

	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, resend_ack, "00B2010C00", resp, sizeof(resp)), 5);
	assert_memory_equal(resp, want, 5);

	/* An answer longer than the buffer: the chain is still taken in full, then EPROTO. */
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, steps, "00B2010C00", resp, 3), SSC_EPROTO);
	assert_int_equal(t.ns, 1);
	assert_int_equal(t.nr, 0);
}

static void test_wtx(void **state)
{
	static const struct cu_step steps[] = {
		{ "00 00 05 0084000008", "00 C3 01 05", 0, 0, 1 },
		{ "00 E3 01 05", "00 C3 01 02", 0, 0, 5 },
		{ "00 E3 01 02", "00 00 0A 1122334455667788 9000", 0, 0, 2 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step bad_wtx[] = {
		{ "00 00 05 0084000008", "00 C3 00", 0, 0, 0 },
		{ "00 82 00", "00 00 02 9000", 0, 0, 1 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16];

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, steps, "0084000008", resp, sizeof(resp)), 10);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, bad_wtx, "0084000008", resp, sizeof(resp)), 2);
}

static void test_ifs_from_card(void **state)
{
	static const struct cu_step first[] = {
		{ "00 00 05 0084000008", "00 C1 01 02", 0, 0, 0 },
		{ "00 E1 01 02", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step next[] = {
		{ "00 60 02 0084", "00 80 00", 0, 0, 0 },
		{ "00 20 02 0000", "00 90 00", 0, 0, 0 },
		{ "00 40 01 08", "00 40 0A 1122334455667788 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step bad_ifs[] = {
		{ "00 00 05 0084000008", "00 C1 01 00", 0, 0, 0 },
		{ "00 82 00", "00 C1 01 FF", 0, 0, 0 },
		{ "00 82 00", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16];

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, first, "0084000008", resp, sizeof(resp)), 2);
	assert_int_equal(t.ifsc, 2);
	assert_int_equal(run(&t, next, "0084000008", resp, sizeof(resp)), 10);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, bad_ifs, "0084000008", resp, sizeof(resp)), 2);
	assert_int_equal(t.ifsc, 32);
}

static void test_ifsd_negotiation(void **state)
{
	static const struct cu_step ok[] = {
		{ "00 C1 01 FE", "00 E1 01 20", 0, 0, 0 },   /* not our value: ask again */
		{ "00 C1 01 FE", "", CU_FAIL, SSC_EIO, 0 },  /* nothing: ask again */
		{ "00 C1 01 FE", "00 E1 01 FE", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step never[] = {
		{ "00 C1 01 FE", "00 00 02 9000", 0, 0, 0 },
		{ "00 C1 01 FE", "00 E1 01 FE", CU_BAD_LRC, 0, 0 },
		{ "00 C1 01 FE", "00 E2 00", 0, 0, 0 },
		{ "00 C1 01 FE", "", CU_FAIL, SSC_EIO, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step fatal[] = {
		{ "00 C1 01 FE", "", CU_FAIL, SSC_ECARDREMOVED, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct cu_peer pe = { ok, 0, 1 };
	struct t1 t;

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(t1_negotiate_ifsd(&t, 254, peer_xfer, &pe), 0);
	cu_peer_done(&pe);
	assert_int_equal(t.ifsd, 254);

	t1_init(&t, 32, 254);
	pe = (struct cu_peer){ never, 0, 1 };
	assert_int_equal(t1_negotiate_ifsd(&t, 254, peer_xfer, &pe), SSC_EPROTO);
	cu_peer_done(&pe);
	assert_int_equal(t.ifsd, 32);

	pe = (struct cu_peer){ fatal, 0, 1 };
	assert_int_equal(t1_negotiate_ifsd(&t, 254, peer_xfer, &pe), SSC_ECARDREMOVED);
	cu_peer_done(&pe);
	assert_int_equal(t1_negotiate_ifsd(&t, 0, peer_xfer, &pe), SSC_EINVAL);
	assert_int_equal(t1_negotiate_ifsd(&t, 255, peer_xfer, &pe), SSC_EINVAL);
}

static void test_bad_lrc_and_lost_block(void **state)
{
	/* The card's answer arrives with a bad LRC: R(N(R) 0, EDC error) makes it send it again. */
	static const struct cu_step bad_lrc[] = {
		{ "00 00 05 0084000008", "00 00 02 9000", CU_BAD_LRC, 0, 0 },
		{ "00 81 00", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	/* Our block is lost (no answer): R(N(R) 0, other error); the card asks for our block. */
	static const struct cu_step lost[] = {
		{ "00 00 05 0084000008", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 82 00", "00 80 00", 0, 0, 0 },
		{ "00 00 05 0084000008", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	/* The card answers our unchained block with an acknowledgement, an S-response, a PCB with
	 * RFU bits and an I-block longer than our IFSD (32): each is an invalid block. */
	static const struct cu_step invalid[] = {
		{ "00 00 05 0084000008", "00 90 00", 0, 0, 0 },
		{ "00 82 00", "00 E3 01 01", 0, 0, 0 },
		{ "00 82 00", "00 01 02 9000", 0, 0, 0 },
		{ "00 82 00", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step too_long[] = {
		{ "00 00 05 0084000008",
		  "00 00 21 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20",
		  0, 0, 0 },
		{ "00 82 00", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	/* The card asks for our block again straight away. */
	static const struct cu_step retransmit[] = {
		{ "00 00 05 0084000008", "00 80 00", 0, 0, 0 },
		{ "00 00 05 0084000008", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[64];

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, bad_lrc, "0084000008", resp, sizeof(resp)), 2);
	assert_int_equal(t.ns, 1);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, lost, "0084000008", resp, sizeof(resp)), 2);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, invalid, "0084000008", resp, sizeof(resp)), 2);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, too_long, "0084000008", resp, sizeof(resp)), 2);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, retransmit, "0084000008", resp, sizeof(resp)), 2);
}

static void test_resync(void **state)
{
	/* Four bad answers in a row: resynchronise; the command's fate is unknown (EPROTO). */
	static const struct cu_step resync_ok[] = {
		{ "00 40 05 0084000008", "00 40 02 9000", CU_BAD_LRC, 0, 0 },
		{ "00 91 00", "00 40 02 9000", CU_BAD_LRC, 0, 0 },
		{ "00 91 00", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 92 00", "00 40 02 9000", CU_BAD_LRC, 0, 0 },
		{ "00 C0 00", "00 E0 00", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step after[] = {
		{ "00 00 05 0084000008", "00 00 02 9000", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step resync_fails[] = {
		{ "00 00 05 0084000008", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 82 00", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 82 00", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 82 00", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 C0 00", "", CU_FAIL, SSC_EIO, 0 },
		{ "00 C0 00", "00 E0 00", CU_BAD_LRC, 0, 0 },
		{ "00 C0 00", "00 C0 00", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step none[] = {
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16];

	(void)state;
	t1_init(&t, 32, 254);
	t.ns = 1;
	t.nr = 1;
	t.ifsd = 254;
	assert_int_equal(run(&t, resync_ok, "0084000008", resp, sizeof(resp)), SSC_EPROTO);
	assert_int_equal(t.ns, 0);
	assert_int_equal(t.nr, 0);
	assert_int_equal(t.ifsd, 32);
	assert_false(t.broken);
	assert_int_equal(run(&t, after, "0084000008", resp, sizeof(resp)), 2);

	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, resync_fails, "0084000008", resp, sizeof(resp)), SSC_EPROTO);
	assert_true(t.broken);
	/* A broken state sends nothing more. */
	assert_int_equal(run(&t, none, "0084000008", resp, sizeof(resp)), SSC_EPROTO);
}

static void test_abort_and_fatal(void **state)
{
	static const struct cu_step abort_steps[] = {
		{ "00 00 05 0084000008", "00 C2 00", 0, 0, 0 },
		{ "00 E2 00", "00 80 00", 0, 0, 0 },
		{ "00 C0 00", "00 E0 00", 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step removed[] = {
		{ "00 00 05 0084000008", "00 20 02 0102", 0, 0, 0 },
		{ "00 90 00", "", CU_FAIL, SSC_ECARDREMOVED, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	static const struct cu_step deadline[] = {
		{ "00 00 05 0084000008", "", CU_FAIL, SSC_ETIMEDOUT, 0 },
		{ NULL, NULL, 0, 0, 0 },
	};
	struct t1 t;
	uint8_t resp[16], big[70000] = { 0 };

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, abort_steps, "0084000008", resp, sizeof(resp)), SSC_EPROTO);
	assert_false(t.broken);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, removed, "0084000008", resp, sizeof(resp)), SSC_ECARDREMOVED);
	t1_init(&t, 32, 254);
	assert_int_equal(run(&t, deadline, "0084000008", resp, sizeof(resp)), SSC_ETIMEDOUT);

	assert_int_equal(t1_transceive(&t, big, 0, resp, sizeof(resp), peer_xfer, NULL), SSC_EINVAL);
	assert_int_equal(t1_transceive(&t, big, sizeof(big), resp, sizeof(resp), peer_xfer, NULL),
			 SSC_EINVAL);
	assert_int_equal(t1_transceive(&t, big, 5, resp, sizeof(resp), NULL, NULL), SSC_EINVAL);
}

/* A card that answers everything with S(WTX request). */
static int endless_wtx(void *ctx, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
		       unsigned wtx)
{
	unsigned *calls = ctx;

	(void)blk;
	(void)len;
	(void)wtx;
	assert_true(rcap >= 5);
	(*calls)++;
	rblk[0] = 0x00;
	rblk[1] = 0xC3;
	rblk[2] = 0x01;
	rblk[3] = 0x01;
	rblk[4] = 0x00 ^ 0xC3 ^ 0x01 ^ 0x01;
	return 5;
}

static void test_endless_wtx(void **state)
{
	struct t1 t;
	uint8_t apdu[5] = { 0x00, 0x84, 0x00, 0x00, 0x08 }, resp[16];
	unsigned calls = 0;

	(void)state;
	t1_init(&t, 32, 254);
	assert_int_equal(t1_transceive(&t, apdu, sizeof(apdu), resp, sizeof(resp), endless_wtx,
				       &calls), SSC_EPROTO);
	/* 4096 blocks, then three resynchronisation attempts, answered with WTX too. */
	assert_int_equal(calls, 4096 + 3);
	assert_true(t.broken);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_plain_and_sequence),
		cmocka_unit_test(test_chain_send),
		cmocka_unit_test(test_chain_receive),
		cmocka_unit_test(test_wtx),
		cmocka_unit_test(test_ifs_from_card),
		cmocka_unit_test(test_ifsd_negotiation),
		cmocka_unit_test(test_bad_lrc_and_lost_block),
		cmocka_unit_test(test_resync),
		cmocka_unit_test(test_abort_and_fatal),
		cmocka_unit_test(test_endless_wtx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
