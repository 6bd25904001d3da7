/*
 * This file contains the card side of the emulated reader's line to its card: simcos seen through
 * the APDU levels, through ISO/IEC 7816-3 T=0 at TPDU level (61xx / 6Cxx as a T=0 card answers, no
 * procedure bytes: the reader handles those) and through T=1 blocks (I/R/S, LRC, chaining both
 * ways, IFS, WTX, resynch, error recovery), with the faults a test arms.
 */
#include "icc.h"

#include <string.h>

#define PCB_R 0x80
#define PCB_S 0xC0
#define PCB_I_NS 0x40
#define PCB_I_M 0x20
#define PCB_R_NR 0x10
#define R_ERR_EDC 0x01
#define R_ERR_OTHER 0x02
#define S_RESP 0x20
#define S_RESYNCH 0x00
#define S_IFS 0x01
#define S_ABORT 0x02
#define S_WTX 0x03

uint8_t icc_lrc(const uint8_t *p, size_t n)
{
	uint8_t x = 0;
	size_t i;

	for (i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

int icc_atr_historical(const uint8_t *atr, size_t len, size_t *off, size_t *n)
{
	size_t i, k;
	uint8_t y;

	if (len < 2)
		return -1;
	k = atr[1] & 0x0F;
	y = atr[1] & 0xF0;
	i = 2;
	for (;;) {
		uint8_t td;

		if (y & 0x10)
			i++;
		if (y & 0x20)
			i++;
		if (y & 0x40)
			i++;
		if (!(y & 0x80))
			break;
		if (i >= len)
			return -1;
		td = atr[i++];
		y = td & 0xF0;
	}
	if (i + k > len)
		return -1;
	*off = i;
	*n = k;
	return 0;
}

void icc_init(struct icc *c, struct sim_token *tok, const struct icc_params *p)
{
	memset(c, 0, sizeof(*c));
	c->tok = tok;
	c->p = *p;
	if (c->p.ifsc == 0 || c->p.ifsc > ICC_T1_INF_MAX)
		c->p.ifsc = ICC_T1_INF_MAX;
	if (c->p.wtx_multiplier == 0)
		c->p.wtx_multiplier = 2;
	c->ifsd = ICC_T1_IFSD_DEFAULT;
}

static void t1_reset(struct icc *c)
{
	c->ifsd = ICC_T1_IFSD_DEFAULT;
	c->ns_card = 0;
	c->nr_expect = 0;
	c->rx_len = 0;
	c->tx_len = c->tx_off = c->tx_chunk = 0;
	c->tx_active = false;
	c->last_len = 0;
	c->last_kind = ICC_LAST_NONE;
	c->wtx_pending = false;
	c->held_len = 0;
	c->wtx_more = 0;
}

void icc_done(struct icc *c)
{
	/* Answers may hold card data (names, numbers): leave nothing behind. */
	memset(c->t0_pending, 0, sizeof(c->t0_pending));
	memset(c->rx, 0, sizeof(c->rx));
	memset(c->tx, 0, sizeof(c->tx));
	memset(c->last, 0, sizeof(c->last));
	memset(c->held, 0, sizeof(c->held));
}

void icc_power_on(struct icc *c)
{
	sim_token_reset(c->tok);
	c->t0_has_pending = false;
	c->t0_pending_len = 0;
	t1_reset(c);
}

void icc_fault(struct icc *c, enum icc_fault f, int count)
{
	if ((int)f < 0 || f >= ICC_FAULT_COUNT)
		return;
	c->fault[f] = count > 0 ? count : 0;
}

static bool take_fault(struct icc *c, enum icc_fault f)
{
	if (c->fault[f] <= 0)
		return false;
	c->fault[f]--;
	c->stats.faults_fired[f]++;
	return true;
}

size_t icc_atr(const struct icc *c, uint8_t *atr)
{
	uint8_t own[SIM_ATR_MAX];
	size_t len = sim_token_atr(c->tok, own), off, n, i = 0;

	if (c->p.level != ICC_LEVEL_T0 && c->p.level != ICC_LEVEL_T1) {
		memcpy(atr, own, len);
		return len;
	}
	if (icc_atr_historical(own, len, &off, &n) != 0) {
		memcpy(atr, own, len);
		return len;
	}
	atr[i++] = 0x3B;
	if (c->p.level == ICC_LEVEL_T0) {
		atr[i++] = (uint8_t)n;              /* no interface bytes: T=0, default Fi/Di */
		memcpy(atr + i, own + off, n);
		return i + n;
	}
	atr[i++] = (uint8_t)(0x80 | n);             /* TD1 follows */
	atr[i++] = 0x81;                            /* TD1: T=1, TD2 follows */
	atr[i++] = 0x31;                            /* TD2: TA3, TB3 follow; T=1 */
	atr[i++] = c->p.ifsc;                       /* TA3: IFSC */
	atr[i++] = 0x45;                            /* TB3: BWI 4, CWI 5 */
	memcpy(atr + i, own + off, n);
	i += n;
	atr[i] = icc_lrc(atr + 1, i - 1);           /* TCK over T0 .. last historical byte */
	return i + 1;
}

/* ---- APDU levels ---------------------------------------------------------------------------- */

static size_t card_apdu(struct icc *c, const uint8_t *cmd, size_t len, uint8_t *resp)
{
	c->stats.apdus++;
	return sim_token_apdu(c->tok, cmd, len, resp);
}

/* The reader's own 61xx / 6Cxx handling at APDU level (bClassGetResponse = echo). */
static size_t apdu_auto(struct icc *c, const uint8_t *cmd, size_t len, uint8_t *out, size_t cap)
{
	uint8_t r[SIM_RESP_MAX], again[5 + 255 + 1];
	size_t n = card_apdu(c, cmd, len, r), total = 0;
	int rounds;

	if (n == 2 && r[0] == 0x6C && len >= 5 && len <= sizeof(again)) {
		/* Re-issue with the exact Le the card asked for. */
		memcpy(again, cmd, len);
		again[len - 1] = r[1];
		n = card_apdu(c, again, len, r);
	}
	for (rounds = 0; rounds < 16; rounds++) {
		uint8_t gr[5];

		if (n < 2 || r[n - 2] != 0x61)
			break;
		if (total + n - 2 > cap - 2)
			break;
		memcpy(out + total, r, n - 2);
		total += n - 2;
		gr[0] = 0x00;
		gr[1] = 0xC0;
		gr[2] = gr[3] = 0;
		gr[4] = r[n - 1];
		n = card_apdu(c, gr, sizeof(gr), r);
	}
	if (total + n > cap)
		n = cap - total;
	memcpy(out + total, r, n);
	return total + n;
}

/* ---- T=0 TPDU level ------------------------------------------------------------------------- */

static size_t put_sw(uint8_t *out, size_t n, uint8_t sw1, uint8_t sw2)
{
	out[n] = sw1;
	out[n + 1] = sw2;
	return n + 2;
}

/* GET RESPONSE answered from the data this layer holds after its own 61xx. */
static size_t t0_get_response(struct icc *c, uint8_t p3, uint8_t *out)
{
	size_t le = p3 ? p3 : 256, avail = c->t0_pending_len;

	if (le > avail) {
		c->stats.t0_6cxx++;
		return put_sw(out, 0, 0x6C, (uint8_t)avail);  /* keeps the data */
	}
	memcpy(out, c->t0_pending, le);
	if (le < avail) {
		memmove(c->t0_pending, c->t0_pending + le, avail - le);
		c->t0_pending_len = avail - le;
		c->stats.t0_61xx++;
		return put_sw(out, le, 0x61, (uint8_t)(avail - le));
	}
	c->t0_has_pending = false;
	c->t0_pending_len = 0;
	return put_sw(out, le, 0x90, 0x00);
}

static bool sw_carries_data(uint8_t sw1, uint8_t sw2)
{
	(void)sw2;
	return sw1 == 0x90 || sw1 == 0x62 || sw1 == 0x63;
}

static enum icc_outcome t0_xfr(struct icc *c, const uint8_t *in, size_t len, uint8_t *out,
			       size_t *out_len)
{
	uint8_t r[SIM_RESP_MAX];
	size_t n, p3;

	if (len < 5) {
		/* A T=0 card waits for P3 that never comes: the reader times out. */
		c->stats.refused++;
		return ICC_MUTE;
	}
	p3 = in[4];
	if (in[1] == 0xC0 && len == 5 && c->t0_has_pending) {
		*out_len = t0_get_response(c, in[4], out);
		return ICC_OK;
	}
	c->t0_has_pending = false;
	c->t0_pending_len = 0;

	if (len == 5) {
		/* Case 1 or 2: the card sends P3 bytes (00 = 256) or tells the right length. */
		size_t le = p3 ? p3 : 256, data;

		n = card_apdu(c, in, len, r);
		data = n - 2;
		if (in[1] != 0xC0 && data > 0 && data != le && sw_carries_data(r[n - 2], r[n - 1])) {
			c->stats.t0_6cxx++;
			*out_len = put_sw(out, 0, 0x6C, (uint8_t)data);
			return ICC_OK;
		}
		memcpy(out, r, n);
		*out_len = n;
		return ICC_OK;
	}
	if (p3 == 0 || len < 5 + p3) {
		/* The card waits for P3 data bytes that never all come. */
		c->stats.refused++;
		return ICC_MUTE;
	}
	if (len == 5 + p3 + 1) {
		/* A case-4 APDU: only header and P3 bytes reach a T=0 card; the Le byte does not. */
		c->stats.refused++;
		c->stats.case4_as_case3++;
	} else if (len != 5 + p3) {
		c->stats.refused++;
		return ICC_MUTE;
	}
	/* Case 3: data in; an answer with data is held and announced with 61xx. */
	n = card_apdu(c, in, 5 + p3, r);
	if (n > 2 && r[n - 2] == 0x90 && r[n - 1] == 0x00) {
		memcpy(c->t0_pending, r, n - 2);
		c->t0_pending_len = n - 2;
		c->t0_has_pending = true;
		c->stats.t0_61xx++;
		*out_len = put_sw(out, 0, 0x61, (uint8_t)(n - 2));
		return ICC_OK;
	}
	if (n > 2) {
		/* Data with a warning status: a T=0 card cannot send data on a case-3 exchange. */
		*out_len = put_sw(out, 0, r[n - 2], r[n - 1]);
		return ICC_OK;
	}
	memcpy(out, r, n);
	*out_len = n;
	return ICC_OK;
}

/* ---- T=1 TPDU level ------------------------------------------------------------------------- */

static size_t t1_block(uint8_t *b, uint8_t pcb, const uint8_t *inf, size_t n)
{
	b[0] = 0x00;
	b[1] = pcb;
	b[2] = (uint8_t)n;
	if (n)
		memcpy(b + 3, inf, n);
	b[3 + n] = icc_lrc(b, 3 + n);
	return 4 + n;
}

/* Emits block b as the card's next block, applying the faults that hit a block on the way out. */
static enum icc_outcome t1_emit(struct icc *c, const uint8_t *b, size_t n, enum icc_last kind,
				uint8_t *out, size_t *out_len)
{
	if (b != c->last)
		memcpy(c->last, b, n);
	c->last_len = n;
	c->last_kind = kind;
	if (take_fault(c, ICC_FAULT_LOST))
		return ICC_MUTE;
	memcpy(out, b, n);
	*out_len = n;
	if (take_fault(c, ICC_FAULT_LRC))
		out[n - 1] ^= 0x5A;
	return ICC_OK;
}

static enum icc_outcome t1_resend(struct icc *c, uint8_t *out, size_t *out_len)
{
	c->stats.t1_resent++;
	if (c->wtx_pending) {
		c->stats.t1_wtx_out++;
		return t1_emit(c, c->last, c->last_len, ICC_LAST_S, out, out_len);
	}
	return t1_emit(c, c->last, c->last_len, c->last_kind, out, out_len);
}

static enum icc_outcome t1_send_r(struct icc *c, uint8_t err, uint8_t *out, size_t *out_len)
{
	uint8_t b[4];

	c->stats.t1_r_out++;
	t1_block(b, (uint8_t)(PCB_R | (c->nr_expect ? PCB_R_NR : 0) | err), NULL, 0);
	return t1_emit(c, b, 4, ICC_LAST_R, out, out_len);
}

/* Sends an S(WTX request) now and holds block b (the real answer) for after the response. */
static enum icc_outcome t1_send_wtx(struct icc *c, uint8_t *out, size_t *out_len)
{
	uint8_t b[5], m = c->p.wtx_multiplier;

	c->wtx_pending = true;
	c->wtx_sent_value = m;
	c->stats.t1_wtx_out++;
	t1_block(b, PCB_S | S_WTX, &m, 1);
	return t1_emit(c, b, 5, ICC_LAST_S, out, out_len);
}

/* Sends the next I-block of the answer in tx (a new block: N(S) advances). */
static enum icc_outcome t1_send_chunk(struct icc *c, uint8_t *out, size_t *out_len)
{
	uint8_t b[ICC_T1_BLOCK_MAX], pcb;
	size_t left = c->tx_len - c->tx_off, chunk = left > c->ifsd ? c->ifsd : left, n;
	bool more = chunk < left;

	pcb = (uint8_t)((c->ns_card ? PCB_I_NS : 0) | (more ? PCB_I_M : 0));
	c->ns_card ^= 1;
	c->tx_chunk = chunk;
	c->tx_active = more;
	if (more)
		c->stats.t1_chain_out++;
	n = t1_block(b, pcb, c->tx + c->tx_off, chunk);
	if (take_fault(c, ICC_FAULT_NS)) {
		/* Send the wrong N(S) once; what is kept for resending is the right block. */
		uint8_t bad[ICC_T1_BLOCK_MAX];

		memcpy(c->last, b, n);
		c->last_len = n;
		c->last_kind = ICC_LAST_I;
		memcpy(bad, b, n);
		bad[1] ^= PCB_I_NS;
		bad[n - 1] = icc_lrc(bad, n - 1);
		memcpy(out, bad, n);
		*out_len = n;
		return ICC_OK;
	}
	if (take_fault(c, ICC_FAULT_WTX)) {
		memcpy(c->held, b, n);
		c->held_len = n;
		c->wtx_more = c->fault[ICC_FAULT_WTX];
		c->fault[ICC_FAULT_WTX] = 0;
		return t1_send_wtx(c, out, out_len);
	}
	return t1_emit(c, b, n, ICC_LAST_I, out, out_len);
}

static enum icc_outcome t1_invalid(struct icc *c, uint8_t err, uint8_t *out, size_t *out_len)
{
	c->stats.t1_bad_in++;
	if (c->wtx_pending)
		return t1_resend(c, out, out_len);      /* rule 7.3: repeat the S(... request) */
	if (c->last_kind == ICC_LAST_R) {
		c->stats.t1_r_out++;
		return t1_resend(c, out, out_len);      /* rule 7.2: repeat the R-block */
	}
	return t1_send_r(c, err, out, out_len);
}

static enum icc_outcome t1_i_block(struct icc *c, const uint8_t *b, uint8_t *out, size_t *out_len)
{
	uint8_t pcb = b[1], ns = (pcb & PCB_I_NS) ? 1 : 0, r[SIM_RESP_MAX];
	size_t n = b[2];

	c->stats.t1_i_in++;
	if (c->wtx_pending || c->tx_active || ns != c->nr_expect || (pcb & 0x1F) != 0 ||
	    n > c->p.ifsc)
		return t1_invalid(c, R_ERR_OTHER, out, out_len);
	if (c->rx_len + n > sizeof(c->rx)) {
		/* Longer than any APDU the card takes: the chain is dropped, the block refused (not
		 * a repeated acknowledgement, which would ask for more). */
		c->rx_len = 0;
		c->stats.t1_bad_in++;
		return t1_send_r(c, R_ERR_OTHER, out, out_len);
	}
	c->nr_expect ^= 1;
	memcpy(c->rx + c->rx_len, b + 3, n);
	c->rx_len += n;
	if (pcb & PCB_I_M) {
		c->stats.t1_chain_in++;
		c->stats.t1_r_out++;
		{
			uint8_t ack[4];

			t1_block(ack, (uint8_t)(PCB_R | (c->nr_expect ? PCB_R_NR : 0)), NULL, 0);
			return t1_emit(c, ack, 4, ICC_LAST_R, out, out_len);
		}
	}
	n = card_apdu(c, c->rx, c->rx_len, r);
	c->rx_len = 0;
	memcpy(c->tx, r, n);
	c->tx_len = n;
	c->tx_off = 0;
	return t1_send_chunk(c, out, out_len);
}

static enum icc_outcome t1_r_block(struct icc *c, const uint8_t *b, uint8_t *out, size_t *out_len)
{
	uint8_t pcb = b[1], nr = (pcb & PCB_R_NR) ? 1 : 0, last_ns;

	c->stats.t1_r_in++;
	if ((pcb & 0x2C) != 0 || b[2] != 0)
		return t1_invalid(c, R_ERR_OTHER, out, out_len);
	if (c->wtx_pending)
		return t1_resend(c, out, out_len);
	if (c->last_kind == ICC_LAST_I) {
		last_ns = (c->last[1] & PCB_I_NS) ? 1 : 0;
		if (nr == last_ns)
			return t1_resend(c, out, out_len);  /* the host did not get it */
		if (c->tx_active) {
			/* Acknowledged: the next link of the chain. */
			c->tx_off += c->tx_chunk;
			return t1_send_chunk(c, out, out_len);
		}
		/* The host wants an I-block the card has not got to send: its own was lost. */
		return t1_send_r(c, 0, out, out_len);
	}
	if (c->last_kind == ICC_LAST_R) {
		c->stats.t1_r_out++;
		return t1_resend(c, out, out_len);
	}
	return t1_send_r(c, 0, out, out_len);
}

static enum icc_outcome t1_s_block(struct icc *c, const uint8_t *b, uint8_t *out, size_t *out_len)
{
	uint8_t pcb = b[1], kind = pcb & 0x1F, resp[5];
	size_t n = b[2];

	if (pcb & S_RESP) {
		if (kind == S_WTX && c->wtx_pending && n == 1 && b[3] == c->wtx_sent_value) {
			c->stats.t1_wtx_in++;
			if (c->wtx_more > 0) {
				c->wtx_more--;
				c->stats.faults_fired[ICC_FAULT_WTX]++;
				return t1_send_wtx(c, out, out_len);
			}
			c->wtx_pending = false;
			return t1_emit(c, c->held, c->held_len, ICC_LAST_I, out, out_len);
		}
		return t1_invalid(c, R_ERR_OTHER, out, out_len);
	}
	if (c->wtx_pending)
		return t1_invalid(c, R_ERR_OTHER, out, out_len);
	switch (kind) {
	case S_RESYNCH:
		if (n != 0)
			break;
		c->stats.t1_resynch++;
		t1_reset(c);
		t1_block(resp, PCB_S | S_RESP | S_RESYNCH, NULL, 0);
		return t1_emit(c, resp, 4, ICC_LAST_S, out, out_len);
	case S_IFS:
		if (n != 1 || b[3] == 0 || b[3] == 0xFF)
			break;
		c->stats.t1_ifs++;
		c->ifsd = b[3];
		t1_block(resp, PCB_S | S_RESP | S_IFS, b + 3, 1);
		return t1_emit(c, resp, 5, ICC_LAST_S, out, out_len);
	case S_ABORT:
		if (n != 0)
			break;
		c->stats.t1_abort++;
		c->rx_len = 0;
		c->tx_active = false;
		c->tx_len = c->tx_off = 0;
		t1_block(resp, PCB_S | S_RESP | S_ABORT, NULL, 0);
		return t1_emit(c, resp, 4, ICC_LAST_S, out, out_len);
	default:
		break;
	}
	return t1_invalid(c, R_ERR_OTHER, out, out_len);
}

static enum icc_outcome t1_xfr(struct icc *c, const uint8_t *in, size_t len, uint8_t *out,
			       size_t *out_len)
{
	if (take_fault(c, ICC_FAULT_LOSTCMD))
		return ICC_MUTE;                        /* the card never saw it */
	if (len < 4 || in[2] == 0xFF || len != 4 + (size_t)in[2] || in[0] != 0x00)
		return t1_invalid(c, R_ERR_OTHER, out, out_len);
	if (icc_lrc(in, len) != 0)
		return t1_invalid(c, R_ERR_EDC, out, out_len);
	if ((in[1] & 0x80) == 0)
		return t1_i_block(c, in, out, out_len);
	if ((in[1] & 0xC0) == PCB_R)
		return t1_r_block(c, in, out, out_len);
	return t1_s_block(c, in, out, out_len);
}

enum icc_outcome icc_xfr(struct icc *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			 size_t *out_len)
{
	*out_len = 0;
	c->stats.xfrs++;
	if (cap < ICC_RESP_MAX)
		return ICC_MUTE;
	switch (c->p.level) {
	case ICC_LEVEL_T0:
		return t0_xfr(c, in, len, out, out_len);
	case ICC_LEVEL_T1:
		return t1_xfr(c, in, len, out, out_len);
	case ICC_LEVEL_APDU:
	case ICC_LEVEL_XAPDU:
	default:
		if (c->p.auto_get_response)
			*out_len = apdu_auto(c, in, len, out, cap);
		else
			*out_len = card_apdu(c, in, len, out);
		return ICC_OK;
	}
}
