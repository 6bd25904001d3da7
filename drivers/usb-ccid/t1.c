/*
 * This file contains the T=1 block protocol (t1.h, ISO/IEC 7816-3 §11) as a state machine over a
 * transceive callback: it builds and checks blocks, chains both ways, answers S-requests, and
 * recovers from bad or lost blocks with R-blocks, retransmission and resynchronisation.
 * Pure: no I/O of its own, no allocation, no logging.
 */
#include <string.h>

#include "invariant.h"
#include "sscard/error.h"
#include "t1.h"

#define T1_IFS_DEFAULT 32
#define T1_MAX_STEPS 4096    /* blocks one transceive may exchange, whatever the card says */

#define T1_PCB_I(ns, more) ((uint8_t)(((ns) & 1) << 6 | ((more) ? 0x20 : 0x00)))
#define T1_PCB_R(nr, err) ((uint8_t)(T1_R_BLOCK | ((nr) & 1) << 4 | (err)))

void t1_init(struct t1 *t, uint8_t ifsc, uint8_t max_inf)
{
	memset(t, 0, sizeof(*t));
	t->ifsc = ifsc >= 1 && ifsc <= T1_INF_MAX ? ifsc : T1_IFS_DEFAULT;
	t->ifsd = T1_IFS_DEFAULT;
	t->max_inf = max_inf >= 1 && max_inf <= T1_INF_MAX ? max_inf : T1_INF_MAX;
}

uint8_t t1_lrc(const uint8_t *p, size_t len)
{
	uint8_t x = 0;

	for (size_t i = 0; i < len; i++)
		x ^= p[i];
	return x;
}

int t1_block_build(uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out)
{
	if (!out || len > T1_INF_MAX || (len > 0 && !inf))
		return SSC_EINVAL;
	out[0] = 0x00;   /* NAD: no node addressing */
	out[1] = pcb;
	out[2] = (uint8_t)len;
	if (len > 0)
		memcpy(out + T1_PROLOGUE, inf, len);
	out[T1_PROLOGUE + len] = t1_lrc(out, T1_PROLOGUE + len);
	return (int)(T1_PROLOGUE + len + 1);
}

int t1_block_check(const uint8_t *blk, size_t len, size_t max_inf, uint8_t *pcb,
		   const uint8_t **inf, size_t *inf_len)
{
	if (!blk || len < T1_PROLOGUE + 1)
		return SSC_EPROTO;
	if (blk[2] == 0xFF || (size_t)blk[2] + T1_PROLOGUE + 1 != len || blk[2] > max_inf)
		return SSC_EPROTO;
	if (t1_lrc(blk, len) != 0)
		return SSC_EPROTO;
	*pcb = blk[1];
	*inf = blk + T1_PROLOGUE;
	*inf_len = blk[2];
	return 0;
}

/* Whether pcb is a well-formed PCB (RFU bits clear, known S-block type, known R error code). */
static int t1_pcb_valid(uint8_t pcb)
{
	if (!(pcb & 0x80))
		return (pcb & 0x1F) == 0;                       /* I: b5-b1 RFU */
	if ((pcb & 0xC0) == T1_R_BLOCK)
		return (pcb & 0x20) == 0 && (pcb & 0x0F) <= 2;  /* R: b6 0, error 0/1/2 */
	return (pcb & 0x1F) <= 4;                               /* S: RESYNCH IFS ABORT WTX VPP */
}

/*
 * One exchange of a block the protocol sends itself: builds it into tx and calls xfer. Returns
 * what xfer returns.
 */
static int t1_send(uint8_t pcb, const uint8_t *inf, size_t inf_len, t1_xfer_fn xfer, void *ctx,
		   uint8_t *rx, size_t rcap, unsigned wtx)
{
	uint8_t tx[T1_BLOCK_MAX];
	int n = t1_block_build(pcb, inf, inf_len, tx);

	if (n < 0)
		return n;
	return xfer(ctx, tx, (size_t)n, rx, rcap, wtx);
}

int t1_negotiate_ifsd(struct t1 *t, uint8_t ifsd, t1_xfer_fn xfer, void *ctx)
{
	uint8_t rx[T1_BLOCK_MAX];

	if (!t || !xfer || ifsd < 1 || ifsd > T1_INF_MAX)
		return SSC_EINVAL;
	if (t->broken)
		return SSC_EPROTO;
	for (int attempt = 0; attempt <= T1_RETRIES; attempt++) {
		const uint8_t *inf;
		size_t inf_len;
		uint8_t pcb;
		int n = t1_send(T1_S_BLOCK | T1_S_IFS, &ifsd, 1, xfer, ctx, rx, sizeof(rx), 1);

		if (n < 0 && n != SSC_EIO)
			return n;
		if (n >= 0 && t1_block_check(rx, (size_t)n, T1_INF_MAX, &pcb, &inf, &inf_len) == 0 &&
		    pcb == (T1_S_BLOCK | T1_S_RESPONSE | T1_S_IFS) && inf_len == 1 && inf[0] == ifsd) {
			t->ifsd = ifsd;
			return 0;
		}
		/* No answer, or not the answer: the S-request is sent again (§11.6.3.2 rule 7.3). */
	}
	return SSC_EPROTO;
}

int t1_resync(struct t1 *t, t1_xfer_fn xfer, void *ctx)
{
	uint8_t rx[T1_BLOCK_MAX];

	if (!t || !xfer)
		return SSC_EINVAL;
	for (int attempt = 0; attempt < T1_RETRIES; attempt++) {
		const uint8_t *inf;
		size_t inf_len;
		uint8_t pcb;
		int n = t1_send(T1_S_BLOCK | T1_S_RESYNCH, NULL, 0, xfer, ctx, rx, sizeof(rx), 1);

		if (n < 0 && n != SSC_EIO) {
			t->broken = 1;
			return n;
		}
		if (n >= 0 && t1_block_check(rx, (size_t)n, T1_INF_MAX, &pcb, &inf, &inf_len) == 0 &&
		    pcb == (T1_S_BLOCK | T1_S_RESPONSE | T1_S_RESYNCH) && inf_len == 0) {
			t->ns = 0;
			t->nr = 0;
			t->ifsd = T1_IFS_DEFAULT;
			return 0;
		}
	}
	t->broken = 1;
	return SSC_EPROTO;
}

/* The largest INF we put in one I-block now. */
static size_t t1_chunk_max(const struct t1 *t)
{
	return t->ifsc < t->max_inf ? t->ifsc : t->max_inf;
}

/* The blocks one exchange handles; they may hold a PIN or personal data, so they are wiped. */
struct t1_bufs {
	uint8_t last_i[T1_BLOCK_MAX];
	uint8_t tx[T1_BLOCK_MAX];
	uint8_t rx[T1_BLOCK_MAX];
};

static int t1_run(struct t1 *t, struct t1_bufs *b, const uint8_t *apdu, size_t len,
		  uint8_t *resp, size_t cap, t1_xfer_fn xfer, void *ctx)
{
	uint8_t *last_i = b->last_i, *tx = b->tx, *rx = b->rx;
	size_t last_i_len, tx_len, pos = 0, chunk, rlen = 0;
	int sending = 1;          /* our chain is not yet wholly acknowledged */
	int more, errors = 0, overflow = 0, n, rc;
	unsigned wtx = 1;

	chunk = len < t1_chunk_max(t) ? len : t1_chunk_max(t);
	more = chunk < len;
	n = t1_block_build(T1_PCB_I(t->ns, more), apdu, chunk, last_i);
	if (n < 0)
		return n;
	last_i_len = (size_t)n;
	memcpy(tx, last_i, last_i_len);
	tx_len = last_i_len;

	for (int step = 0; step < T1_MAX_STEPS; step++) {
		const uint8_t *inf = NULL;
		size_t inf_len = 0;
		uint8_t pcb = 0, err_code = 2;
		unsigned use_wtx = wtx;

		wtx = 1;
		n = xfer(ctx, tx, tx_len, rx, T1_BLOCK_MAX, use_wtx);
		if (n < 0 && n != SSC_EIO)
			return n;
		rc = n < 0 ? SSC_EIO : t1_block_check(rx, (size_t)n, T1_INF_MAX, &pcb, &inf, &inf_len);
		if (rc == 0 && !t1_pcb_valid(pcb))
			rc = SSC_EPROTO;
		if (rc != 0) {
			/* A bad EDC is error 1; a bad length, PCB or no block at all, error 2. */
			if (n >= T1_PROLOGUE + 1 && t1_lrc(rx, (size_t)n) != 0)
				err_code = 1;
			goto bad_block;
		}

		if (!(pcb & 0x80)) {
			/* An I-block from the card. */
			uint8_t ns_card = (pcb >> 6) & 1;

			if (sending) {
				if (more)
					goto bad_block;   /* the card must acknowledge our chain first */
				t->ns ^= 1;           /* its I-block acknowledges our last one */
				sending = 0;
			}
			if (ns_card != t->nr || inf_len > t->ifsd)
				goto bad_block;
			if (!overflow && inf_len > cap - rlen)
				overflow = 1;     /* keep the protocol in step; fail at the end */
			if (!overflow && inf_len > 0) {
				memcpy(resp + rlen, inf, inf_len);
				rlen += inf_len;
			}
			t->nr ^= 1;
			errors = 0;
			if (pcb & 0x20) {
				/* More to come: acknowledge with R(N(R) = the next N(S) we expect). */
				n = t1_block_build(T1_PCB_R(t->nr, 0), NULL, 0, tx);
				tx_len = (size_t)n;
				continue;
			}
			return overflow ? SSC_EPROTO : (int)rlen;
		}

		if ((pcb & 0xC0) == T1_R_BLOCK) {
			uint8_t nr_card = (pcb >> 4) & 1;

			if (sending && nr_card != t->ns && more) {
				/* Our chained block is acknowledged: send the next part. */
				t->ns ^= 1;
				pos += chunk;
				chunk = len - pos < t1_chunk_max(t) ? len - pos : t1_chunk_max(t);
				more = pos + chunk < len;
				n = t1_block_build(T1_PCB_I(t->ns, more), apdu + pos, chunk, last_i);
				if (n < 0)
					return n;
				last_i_len = (size_t)n;
				memcpy(tx, last_i, last_i_len);
				tx_len = last_i_len;
				errors = 0;
				continue;
			}
			if (sending && nr_card == t->ns) {
				/* The card asks for our I-block again. */
				if (++errors > T1_RETRIES)
					goto resync;
				memcpy(tx, last_i, last_i_len);
				tx_len = last_i_len;
				continue;
			}
			if (!sending) {
				/* It did not get our acknowledgement: send it again. */
				if (++errors > T1_RETRIES)
					goto resync;
				n = t1_block_build(T1_PCB_R(t->nr, 0), NULL, 0, tx);
				tx_len = (size_t)n;
				continue;
			}
			goto bad_block;   /* an acknowledgement of a block we did not chain */
		}

		/* An S-block. */
		if (pcb & T1_S_RESPONSE)
			goto bad_block;   /* we asked for nothing */
		switch (pcb & 0x1F) {
		case T1_S_WTX:
			if (inf_len != 1 || inf[0] == 0)
				goto bad_block;
			wtx = inf[0];
			n = t1_block_build(T1_S_BLOCK | T1_S_RESPONSE | T1_S_WTX, inf, 1, tx);
			tx_len = (size_t)n;
			errors = 0;
			continue;
		case T1_S_IFS:
			if (inf_len != 1 || inf[0] == 0 || inf[0] == 0xFF)
				goto bad_block;
			t->ifsc = inf[0];
			n = t1_block_build(T1_S_BLOCK | T1_S_RESPONSE | T1_S_IFS, inf, 1, tx);
			tx_len = (size_t)n;
			errors = 0;
			continue;
		case T1_S_ABORT:
			/* The card gives up the chain: confirm, then start over clean. */
			n = t1_send(T1_S_BLOCK | T1_S_RESPONSE | T1_S_ABORT, NULL, 0, xfer, ctx, rx,
				    T1_BLOCK_MAX, 1);
			if (n < 0 && n != SSC_EIO)
				return n;
			goto resync;
		default:
			goto bad_block;   /* RESYNCH and VPP errors are not the card's to request */
		}

bad_block:
		/* §11.6.3.2: an invalid block is answered with R(N(R) = the N(S) we expect). */
		if (++errors > T1_RETRIES)
			goto resync;
		n = t1_block_build(T1_PCB_R(t->nr, err_code), NULL, 0, tx);
		tx_len = (size_t)n;
	}

resync:
	rc = t1_resync(t, xfer, ctx);
	return rc < 0 && rc != SSC_EPROTO ? rc : SSC_EPROTO;
}

int t1_transceive(struct t1 *t, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
		  t1_xfer_fn xfer, void *ctx)
{
	struct t1_bufs b;
	int rc;

	if (!t || !xfer || !apdu || len == 0 || len > 65535 || (!resp && cap > 0))
		return SSC_EINVAL;
	if (t->broken)
		return SSC_EPROTO;
	/* The send-sequence numbers are bits (§11.3.2.2): only t1_init() and toggles set them. */
	INVARIANT(t->ns <= 1 && t->nr <= 1);
	rc = t1_run(t, &b, apdu, len, resp, cap, xfer, ctx);
	explicit_bzero(&b, sizeof(b));
	return rc;
}
