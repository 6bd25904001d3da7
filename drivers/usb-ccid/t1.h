/*
 * This file contains the ISO/IEC 7816-3 §11 T=1 block protocol as a pure state machine over a
 * transceive callback: I-blocks with chaining both ways, R-block acknowledgement and error
 * recovery, S-blocks (IFS both ways, WTX, ABORT, RESYNCH), and the LRC. It does no I/O itself:
 * the USB driver's callback carries one block to the card and brings one back (XfrBlock at the
 * CCID TPDU level), and the unit tests script a card on the other side.
 */
#ifndef SSC_T1_H
#define SSC_T1_H

#include <stddef.h>
#include <stdint.h>

#define T1_PROLOGUE 3                 /* NAD PCB LEN */
#define T1_INF_MAX 254
#define T1_BLOCK_MAX (T1_PROLOGUE + T1_INF_MAX + 1)   /* with the one-byte LRC */
#define T1_RETRIES 3                  /* retransmissions before a resynchronisation (§11.6.3) */

/* PCB */
#define T1_R_BLOCK 0x80
#define T1_S_BLOCK 0xC0
#define T1_S_RESPONSE 0x20
#define T1_S_RESYNCH 0x00
#define T1_S_IFS 0x01
#define T1_S_ABORT 0x02
#define T1_S_WTX 0x03

/*
 * Carries one block (len bytes) to the card and writes the card's answer block into rblk (rcap
 * bytes, at least T1_BLOCK_MAX). wtx is the waiting-time multiplier the card asked for in an
 * S(WTX) that the block being sent answers (1 when none). Returns the answer's length (>= 0);
 * SSC_EIO for a transmission error the protocol recovers from (no answer within the block waiting
 * time, a parity error, a garbled block); any other negative SSC_E* ends the exchange at once
 * (deadline passed, card removed, reader gone) and is returned as is.
 */
typedef int (*t1_xfer_fn)(void *ctx, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
			  unsigned wtx);

/* The protocol state of one card; belongs to whoever holds the card. */
struct t1 {
	uint8_t ns;           /* N(S) of our next I-block */
	uint8_t nr;           /* N(S) we expect on the card's next I-block */
	uint8_t ifsc;         /* the card's largest INF (from TA3, then S(IFS) from the card) */
	uint8_t ifsd;         /* our largest INF, as last announced (32 until an S(IFS) succeeds) */
	uint8_t max_inf;      /* transport cap on one INF we send (CCID message size), <= 254 */
	int broken;           /* resynchronisation failed: the card must be reset */
};

/*
 * Sets up the state after an ATR: N(S) = N(R) = 0, IFSC ifsc (1..254, else 32), IFSD 32, and a
 * cap of max_inf bytes (1..254, else 254) on each INF we send, whatever the card's IFSC.
 */
void t1_init(struct t1 *t, uint8_t ifsc, uint8_t max_inf);

/* The LRC (XOR) of len bytes. */
uint8_t t1_lrc(const uint8_t *p, size_t len);

/*
 * Builds a block NAD=0, pcb, LEN=len, inf, LRC into out (at least len + 4 bytes). Returns the
 * block's length, or SSC_EINVAL (len > 254, inf NULL with len > 0).
 */
int t1_block_build(uint8_t pcb, const uint8_t *inf, size_t len, uint8_t *out);

/*
 * Checks a received block: at least 4 bytes, LEN not 255 and equal to what follows the prologue
 * before the LRC, INF no longer than max_inf, and a good LRC. Sets *pcb, *inf (into blk) and
 * *inf_len. Returns 0 or SSC_EPROTO.
 */
int t1_block_check(const uint8_t *blk, size_t len, size_t max_inf, uint8_t *pcb,
		   const uint8_t **inf, size_t *inf_len);

/*
 * Announces our IFSD (1..254) with S(IFS request), retrying an unanswered or wrong answer up to
 * T1_RETRIES times; on success t->ifsd = ifsd. Returns 0, SSC_EPROTO (the card never confirmed:
 * t->ifsd stays), or the callback's fatal error.
 */
int t1_negotiate_ifsd(struct t1 *t, uint8_t ifsd, t1_xfer_fn xfer, void *ctx);

/*
 * Sends S(RESYNCH request) up to T1_RETRIES times. On S(RESYNCH response) the state starts over
 * (N(S) = N(R) = 0, IFSD 32) and 0 is returned; otherwise t->broken is set and SSC_EPROTO (or
 * the callback's fatal error) returned.
 */
int t1_resync(struct t1 *t, t1_xfer_fn xfer, void *ctx);

/*
 * Sends one APDU (len 1..65535 bytes, chained in I-blocks of at most min(IFSC, max_inf)) and
 * receives the card's whole answer (chained I-blocks joined) into resp (cap bytes). Answers the
 * card's S(WTX) and S(IFS) requests; recovers from invalid or missing blocks with R-blocks and
 * retransmissions (§11.6.3 rules), and after T1_RETRIES failures in a row resynchronises.
 * Returns the answer's length; or SSC_EPROTO (resynchronised or aborted: the command's effect is
 * unknown; an answer longer than cap; t->broken already set), SSC_EINVAL, or the callback's fatal
 * error (the state is then unknown and the caller should reset the card).
 */
int t1_transceive(struct t1 *t, const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
		  t1_xfer_fn xfer, void *ctx);

#endif
