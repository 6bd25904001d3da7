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

/* One APDU's run: its TPDU and answer buffers (wiped after), the transport and its count. */
struct t0_run {
	uint8_t tpdu[5 + 255];
	uint8_t r[T0_RESP_MAX];
	t0_xfer_fn xfer;
	void *ctx;
	int exchanges;
};

/* One TPDU (tlen bytes) whose answer may carry up to want data bytes. Returns its length or < 0. */
static int t0_exchange(struct t0_run *t, size_t tlen, size_t want)
{
	int n;

	if (++t->exchanges > T0_MAX_EXCHANGES)
		return SSC_EPROTO;
	n = t->xfer(t->ctx, t->tpdu, tlen, t->r, T0_RESP_MAX);
	if (n < 0)
		return n;
	if (n < 2 || (size_t)n > want + 2 || n > T0_RESP_MAX)
		return SSC_EPROTO;
	return n;
}

/*
 * One TPDU whose P3 is Le (case 2, GET RESPONSE; 00 for 256), sent again with P3 = xx when the
 * card answers 6Cxx (wrong length: it says how many bytes it has). As t0_exchange().
 */
static int t0_exchange_le(struct t0_run *t, size_t tlen)
{
	int n = t0_exchange(t, tlen, t->tpdu[4] ? t->tpdu[4] : 256);

	if (n == 2 && t->r[0] == 0x6C) {
		t->tpdu[4] = t->r[1];
		n = t0_exchange(t, tlen, t->r[1] ? t->r[1] : 256);
	}
	return n;
}

/*
 * Cases 2 and 4, after the command's answer (n bytes in t->r): collects the data while the card
 * answers 61xx, through GET RESPONSE. Returns the whole answer's length in resp, or < 0.
 */
static int t0_collect(struct t0_run *t, uint8_t cla, int n, uint8_t *resp, size_t cap)
{
	size_t out = 0;

	for (;;) {
		size_t data = (size_t)n - 2;
		uint8_t sw1 = t->r[n - 2], sw2 = t->r[n - 1];

		if (data > cap - 2 - out)
			return SSC_EPROTO;   /* out <= cap - 2 holds throughout */
		memcpy(resp + out, t->r, data);
		out += data;
		if (sw1 != 0x61) {
			resp[out++] = sw1;
			resp[out++] = sw2;
			return (int)out;
		}
		t->tpdu[0] = t0_get_response_cla(cla);
		t->tpdu[1] = 0xC0;
		t->tpdu[2] = 0x00;
		t->tpdu[3] = 0x00;
		t->tpdu[4] = sw2;
		n = t0_exchange_le(t, 5);
		if (n < 0)
			return n;
	}
}

static int t0_run(struct t0_run *t, int c, const uint8_t *apdu, size_t len, uint8_t *resp,
		  size_t cap)
{
	int n;

	memcpy(t->tpdu, apdu, 4);
	switch (c) {
	case T0_CASE1:
		t->tpdu[4] = 0x00;
		n = t0_exchange(t, 5, 0);
		break;
	case T0_CASE2:
		t->tpdu[4] = apdu[4];
		n = t0_exchange_le(t, 5);
		break;
	case T0_CASE3:
		memcpy(t->tpdu + 4, apdu + 4, len - 4);
		n = t0_exchange(t, len, 0);
		break;
	default:   /* case 4: Le is not sent; the data comes through GET RESPONSE */
		memcpy(t->tpdu + 4, apdu + 4, len - 5);
		n = t0_exchange(t, len - 1, 0);
		break;
	}
	if (n < 0)
		return n;
	if (c == T0_CASE1 || c == T0_CASE3) {
		if ((size_t)n > cap)
			return SSC_EPROTO;
		memcpy(resp, t->r, (size_t)n);
		return n;
	}
	return t0_collect(t, apdu[0], n, resp, cap);
}

int t0_transceive(const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap, t0_xfer_fn xfer,
		  void *ctx)
{
	struct t0_run t;
	int c, rc;

	if (!apdu || !resp || !xfer || cap < 2 || len < 4 || len > 261)
		return SSC_EINVAL;
	c = t0_case_of(apdu, len);
	if (c < 0)
		return c;
	t.xfer = xfer;
	t.ctx = ctx;
	t.exchanges = 0;
	rc = t0_run(&t, c, apdu, len, resp, cap);
	explicit_bzero(&t, sizeof(t));
	return rc;
}
