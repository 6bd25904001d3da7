/*
 * This file contains the T=0 transport of short APDUs over TPDUs (t0.h, ISO/IEC 7816-3 §12.2):
 * the case analysis, 6Cxx resends and GET RESPONSE rounds. Pure: no I/O, allocation or logging.
 */
#include <string.h>

#include "sscard/error.h"
#include "t0.h"

enum t0_case { T0_CASE1 = 1, T0_CASE2, T0_CASE3, T0_CASE4 };

/* The short-APDU case of apdu, or SSC_EINVAL. */
static int t0_case_of(const uint8_t *apdu, size_t len)
{
	size_t lc;

	if (len == 4)
		return T0_CASE1;
	if (len == 5)
		return T0_CASE2;
	if (len < 6)
		return SSC_EINVAL;
	lc = apdu[4];
	if (lc == 0)
		return SSC_EINVAL;   /* 00 then more bytes: an extended length */
	if (len == 5 + lc)
		return T0_CASE3;
	if (len == 6 + lc)
		return T0_CASE4;
	return SSC_EINVAL;
}

/* The class byte of GET RESPONSE for a command of class cla: interindustry, same channel. */
static uint8_t t0_get_response_cla(uint8_t cla)
{
	if (cla & 0x80)
		return 0x00;                      /* proprietary class: plain 00 */
	if (cla & 0x40)
		return (uint8_t)(0x40 | (cla & 0x0F));   /* further interindustry: channels 4-19 */
	return (uint8_t)(cla & 0x03);
}

/* One TPDU whose answer may carry up to want data bytes. Returns the answer length or < 0. */
static int t0_exchange(const uint8_t *tpdu, size_t len, size_t want, uint8_t *r, t0_xfer_fn xfer,
		       void *ctx, int *exchanges)
{
	int n;

	if (++*exchanges > T0_MAX_EXCHANGES)
		return SSC_EPROTO;
	n = xfer(ctx, tpdu, len, r, T0_RESP_MAX);
	if (n < 0)
		return n;
	if (n < 2 || (size_t)n > want + 2 || n > T0_RESP_MAX)
		return SSC_EPROTO;
	return n;
}

/* The TPDU and one answer; they may hold a PIN or personal data, so they are wiped. */
struct t0_bufs {
	uint8_t tpdu[5 + 255];
	uint8_t r[T0_RESP_MAX];
};

static int t0_run(struct t0_bufs *b, int c, const uint8_t *apdu, size_t len, uint8_t *resp,
		  size_t cap, t0_xfer_fn xfer, void *ctx)
{
	uint8_t *tpdu = b->tpdu, *r = b->r;
	size_t tlen, want, out = 0;
	int n, exchanges = 0;

	memcpy(tpdu, apdu, 4);
	switch (c) {
	case T0_CASE1:
		tpdu[4] = 0x00;
		tlen = 5;
		want = 0;
		break;
	case T0_CASE2:
		tpdu[4] = apdu[4];
		tlen = 5;
		want = apdu[4] ? apdu[4] : 256;
		break;
	case T0_CASE3:
		memcpy(tpdu + 4, apdu + 4, len - 4);
		tlen = len;
		want = 0;
		break;
	default:   /* case 4: Le is not sent; the data comes through GET RESPONSE */
		memcpy(tpdu + 4, apdu + 4, len - 5);
		tlen = len - 1;
		want = 0;
		break;
	}

	n = t0_exchange(tpdu, tlen, want, r, xfer, ctx, &exchanges);
	if (n < 0)
		return n;
	if (c == T0_CASE2 && n == 2 && r[0] == 0x6C) {
		/* Wrong length: the card says how many bytes it has. */
		tpdu[4] = r[1];
		want = r[1] ? r[1] : 256;
		n = t0_exchange(tpdu, tlen, want, r, xfer, ctx, &exchanges);
		if (n < 0)
			return n;
	}
	if (c == T0_CASE1 || c == T0_CASE3) {
		if ((size_t)n > cap)
			return SSC_EPROTO;
		memcpy(resp, r, (size_t)n);
		return n;
	}

	/* Cases 2 and 4: collect data while the card answers 61xx. */
	for (;;) {
		size_t data = (size_t)n - 2;
		uint8_t sw1 = r[n - 2], sw2 = r[n - 1];

		if (data > cap - 2 - out)
			return SSC_EPROTO;   /* out <= cap - 2 holds throughout */
		memcpy(resp + out, r, data);
		out += data;
		if (sw1 != 0x61) {
			resp[out++] = sw1;
			resp[out++] = sw2;
			return (int)out;
		}
		tpdu[0] = t0_get_response_cla(apdu[0]);
		tpdu[1] = 0xC0;
		tpdu[2] = 0x00;
		tpdu[3] = 0x00;
		tpdu[4] = sw2;
		tlen = 5;
		want = sw2 ? sw2 : 256;
		n = t0_exchange(tpdu, tlen, want, r, xfer, ctx, &exchanges);
		if (n < 0)
			return n;
		if (n == 2 && r[0] == 0x6C) {
			tpdu[4] = r[1];
			want = r[1] ? r[1] : 256;
			n = t0_exchange(tpdu, tlen, want, r, xfer, ctx, &exchanges);
			if (n < 0)
				return n;
		}
	}
}

int t0_transceive(const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap, t0_xfer_fn xfer,
		  void *ctx)
{
	struct t0_bufs b;
	int c, rc;

	if (!apdu || !resp || !xfer || cap < 2 || len < 4 || len > 261)
		return SSC_EINVAL;
	c = t0_case_of(apdu, len);
	if (c < 0)
		return c;
	rc = t0_run(&b, c, apdu, len, resp, cap, xfer, ctx);
	explicit_bzero(&b, sizeof(b));
	return rc;
}
