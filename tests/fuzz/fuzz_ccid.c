/*
 * This file contains the fuzz target of the USB CCID driver's pure codecs (drivers/usb-ccid/):
 * bulk-IN replies and their check against a command, the class descriptor and its search among
 * extra descriptors, interrupt-IN notifications, ATR parsing with the protocol choice, the PPS and
 * SetParameters bytes, and the T=1 and T=0 transports over a reader whose answers come from the
 * fuzz input. Buffers are allocated at the exact size the calls are given.
 *
 * Input: byte 0 = mode (modulo 6: reply, descriptor, interrupt, ATR, T=1, T=0), byte 1 and 2 =
 * parameters of the mode (expected type / slot count / reader abilities / IFSC); the rest is the
 * message, or for T=1 and T=0 chunks (fuzzlib.h): the command APDU, then one answer per exchange.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "sscard/error.h"
#include "usb-ccid/atr.h"
#include "usb-ccid/ccid.h"
#include "usb-ccid/t0.h"
#include "usb-ccid/t1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The card side of a transport: every exchange takes the next chunk as the card's answer. */
static int card_answer(struct fuzz_in *in, uint8_t *resp, size_t rcap)
{
	const uint8_t *p;
	size_t n;

	if (fuzz_chunk(in, &p, &n) != 0)
		return SSC_ECARDREMOVED;   /* input used up: the card left */
	if (n == 1 && p[0] == 0xEE)
		return SSC_EIO;            /* a lost block (BWT passed) */
	if (n > rcap)
		n = rcap;
	memcpy(resp, p, n);
	return (int)n;
}

static int t1_card(void *ctx, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
		   unsigned wtx)
{
	if (!blk || len < 4 || len > T1_BLOCK_MAX || rcap < T1_BLOCK_MAX || wtx == 0)
		abort();   /* the protocol must only send well-sized blocks */
	return card_answer(ctx, rblk, rcap);
}

static int t0_card(void *ctx, const uint8_t *tpdu, size_t len, uint8_t *resp, size_t rcap)
{
	if (!tpdu || len < 5 || len > 5 + 255 || rcap < T0_RESP_MAX)
		abort();
	return card_answer(ctx, resp, rcap);
}

static void fuzz_reply(const uint8_t *msg, size_t n, uint8_t expect, uint8_t slot)
{
	struct ccid_reply r;

	if (ccid_decode(msg, n, 65536, &r) != 0)
		return;
	if (r.len != n - CCID_HDR_LEN || (r.len && r.data != msg + CCID_HDR_LEN))
		abort();
	(void)ccid_check_reply(&r, (uint8_t)(CCID_RDR_DATA_BLOCK + expect % 5), slot & 0x0F,
			       r.seq, expect & 0x80);
	(void)ccid_error_name(r.error);
	(void)ccid_error_map(r.status, r.error);
}

static void fuzz_desc(const uint8_t *p, size_t n)
{
	struct ccid_class_desc d;
	int off = ccid_find_class_desc(p, n);

	if (off >= 0) {
		if ((size_t)off >= n)
			abort();
		if (ccid_parse_class_desc(p + off, n - (size_t)off, &d) == 0)
			(void)ccid_exchange_level(d.features);
	}
	if (ccid_parse_class_desc(p, n, &d) == 0 && d.max_slot_index >= CCID_MAX_SLOTS)
		abort();
}

static void fuzz_atr(const uint8_t *p, size_t n, uint8_t abilities, uint8_t clock)
{
	struct atr_info a;
	struct atr_choice ch;
	uint8_t pps[ATR_PPS_MAX], params[7], fidi;
	int len;

	if (atr_parse(p, n, &a) != 0)
		return;
	if (a.hist_off > n || a.hist_len > n - a.hist_off)
		abort();
	if (atr_choose(&a, abilities & 3, abilities & 4 ? 0 : 344086u, clock ? clock * 100u : 0,
		       &ch) != 0)
		return;
	(void)atr_wait_ms(&a, ch.proto, ch.fidi, clock * 100u);
	if (atr_ccid_params(&a, ch.proto, ch.fidi, params) < 0)
		abort();
	len = atr_pps_build(ch.proto, ch.fidi, pps);
	if (len < 3 || len > ATR_PPS_MAX)
		abort();
	/* The card's answer to the PPS: the ATR's own bytes stand in for it. */
	(void)atr_pps_check(pps, (size_t)len, p, n < 6 ? n : 6, &fidi);
	(void)atr_pps_check(pps, (size_t)len, pps, (size_t)len, &fidi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in;
	const uint8_t *apdu;
	uint8_t mode, a, b, *resp;
	size_t alen;
	int n;

	if (size < 3)
		return 0;
	mode = data[0] % 6;
	a = data[1];
	b = data[2];
	in.p = data + 3;
	in.n = size - 3;

	switch (mode) {
	case 0:
		fuzz_reply(in.p, in.n, a, b);
		break;
	case 1:
		fuzz_desc(in.p, in.n);
		break;
	case 2: {
		uint32_t present = 0, changed = 0;
		uint8_t hw_slot, hw_code;
		unsigned slots = a % 40;

		n = ccid_parse_interrupt(in.p, in.n, slots, &present, &changed, &hw_slot, &hw_code);
		if (n == CCID_RDR_NOTIFY_SLOT_CHANGE && in.n < ccid_notify_len(slots))
			abort();
		break;
	}
	case 3:
		fuzz_atr(in.p, in.n, a, b);
		break;
	case 4: {
		struct t1 t;
		size_t cap = b ? b : 258;

		if (fuzz_chunk(&in, &apdu, &alen) != 0)
			return 0;
		t1_init(&t, a, (uint8_t)(b | 1));
		resp = malloc(cap);
		if (!resp)
			abort();
		if (a & 1)
			(void)t1_negotiate_ifsd(&t, 254, t1_card, &in);
		n = t1_transceive(&t, apdu, alen, resp, cap, t1_card, &in);
		if (n > (int)cap)
			abort();
		if (n == SSC_EPROTO && (a & 2))
			(void)t1_resync(&t, t1_card, &in);
		free(resp);
		break;
	}
	default: {
		size_t cap = b ? b : 258;

		if (fuzz_chunk(&in, &apdu, &alen) != 0)
			return 0;
		resp = malloc(cap);
		if (!resp)
			abort();
		n = t0_transceive(apdu, alen, resp, cap, t0_card, &in);
		if (n > (int)cap || (n >= 0 && n < 2))
			abort();
		free(resp);
		break;
	}
	}
	return 0;
}
