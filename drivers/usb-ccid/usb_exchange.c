/*
 * This file contains the USB CCID driver's exchange of one APDU with an active card, at the
 * reader's level: T=0 (t0.c) or T=1 (t1.c) over XfrBlock TPDUs, or whole APDUs (chained at the
 * extended level); and what a failed exchange means for the card (reset before its next use).
 */
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "sscard/error.h"
#include "t0.h"
#include "usb_exchange.h"
#include "usb_io.h"
#include "usb_state.h"

/* One transfer context for the T=0 and T=1 callbacks. */
struct usb_xfer_ctx {
	struct usb_dev *d;
	unsigned idx;
	int64_t deadline;
};

/* T=1: one block to the card and one back (t1_xfer_fn). */
static int usb_t1_xfer(void *arg, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
		       unsigned wtx)
{
	struct usb_xfer_ctx *x = arg;
	struct usb_io_block b = { .data = blk, .len = len, .out = rblk, .out_cap = rcap };
	int n;

	b.bwi = (uint8_t)(wtx > 1 && wtx < 256 ? wtx : 0);
	n = usb_io_xfr(x->d, x->idx, &b, x->deadline);
	if (n >= 0 || n == SSC_ECARDREMOVED)
		return n;   /* a card gone (bmICCStatus 2, whatever bError says) ends the exchange */
	if (n == SSC_EPROTO && b.ccid_error < 0)
		return SSC_EIO;   /* a block longer than a block: garbled, the protocol recovers */
	if (b.ccid_error == CCID_ERR_ICC_MUTE || b.ccid_error == CCID_ERR_XFR_PARITY ||
	    b.ccid_error == CCID_ERR_XFR_OVERRUN)
		return SSC_EIO;   /* no block within BWT, or a damaged one: R-block recovery */
	return n;
}

/* T=0: one TPDU to the card and its answer back (t0_xfer_fn). */
static int usb_t0_xfer(void *arg, const uint8_t *tpdu, size_t len, uint8_t *resp, size_t rcap)
{
	struct usb_xfer_ctx *x = arg;
	struct usb_io_block b = { .data = tpdu, .len = len, .out = resp, .out_cap = rcap };
	int n = usb_io_xfr(x->d, x->idx, &b, x->deadline);

	if (n >= 0 || n == SSC_ECARDREMOVED)
		return n;
	if (n == SSC_ETIMEDOUT && b.ccid_error == CCID_ERR_ICC_MUTE)
		return SSC_EPROTO;   /* the card fell silent: not our deadline */
	if (n == SSC_EIO)
		return SSC_EPROTO;
	return n;
}

/*
 * APDU level, the command: in one XfrBlock, or chained at the extended level (CCID §6.1.4:
 * begin, middle..., end). Returns the length of the answer's first part (in b->out), or < 0.
 */
static int usb_apdu_send(struct usb_xfer_ctx *x, const uint8_t *cmd, size_t len,
			 struct usb_io_block *b)
{
	size_t room = x->d->desc.max_msg_len - CCID_HDR_LEN, pos = 0;
	int n;

	if (len <= room) {
		b->data = cmd;
		b->len = len;
		b->level = CCID_CHAIN_BEGIN_END;
		return usb_io_xfr(x->d, x->idx, b, x->deadline);
	}
	if (x->d->level != CCID_LEVEL_EXT_APDU)
		return SSC_EINVAL;
	for (;;) {
		size_t part = len - pos < room ? len - pos : room;

		b->data = cmd + pos;
		b->len = part;
		b->level = pos == 0 ? CCID_CHAIN_BEGIN
				    : (pos + part < len ? CCID_CHAIN_MIDDLE : CCID_CHAIN_END);
		n = usb_io_xfr(x->d, x->idx, b, x->deadline);
		pos += part;
		if (n < 0 || pos == len)
			return n;
	}
}

/*
 * APDU level: sends cmd and gathers the answer into resp (cap bytes), part by part at the
 * extended level; b->out is the buffer for one part. Returns the answer's length, or < 0.
 */
static int usb_apdu_run(struct usb_xfer_ctx *x, const uint8_t *cmd, size_t len, uint8_t *resp,
			size_t cap, struct usb_io_block *b)
{
	size_t got = 0;
	int n = usb_apdu_send(x, cmd, len, b);

	if (n < 0)
		return n == SSC_EIO ? SSC_EPROTO : n;
	for (;;) {
		if ((size_t)n > cap - got)
			return SSC_EPROTO;
		memcpy(resp + got, b->out, (size_t)n);
		got += (size_t)n;
		if (x->d->level != CCID_LEVEL_EXT_APDU ||
		    (b->chain != CCID_CHAIN_BEGIN && b->chain != CCID_CHAIN_MIDDLE))
			break;
		/* The answer continues: ask for the next part with an empty XfrBlock. */
		b->data = NULL;
		b->len = 0;
		b->level = CCID_CHAIN_CONTINUE;
		n = usb_io_xfr(x->d, x->idx, b, x->deadline);
		if (n < 0)
			return n == SSC_EIO ? SSC_EPROTO : n;
	}
	return (int)got;
}

static int usb_apdu_xfer(struct usb_xfer_ctx *x, const uint8_t *cmd, size_t len, uint8_t *resp,
			 size_t cap)
{
	uint8_t buf[USB_MSG_MAX - CCID_HDR_LEN];
	struct usb_io_block b = { .out = buf, .out_cap = sizeof(buf) };
	int n = usb_apdu_run(x, cmd, len, resp, cap, &b);

	explicit_bzero(buf, sizeof(buf));   /* the answer may hold personal data */
	return n;
}

/*
 * T=1: the IFSD asked for once, then the APDU in I-blocks. A card that lost step for good (the
 * resynchronisation failed) is reset before its next use.
 */
static int usb_t1_transmit(struct usb_xfer_ctx *x, const uint8_t *cmd, size_t len, uint8_t *resp,
			   size_t cap)
{
	struct usb_slot_state *st = &x->d->slot[x->idx];
	int n;

	if (!st->t1.broken && st->ifsd_want > st->t1.ifsd && st->ifsd_tries < 1) {
		st->ifsd_tries++;
		n = t1_negotiate_ifsd(&st->t1, st->ifsd_want, usb_t1_xfer, x);
		if (n != 0 && n != SSC_EPROTO)
			return n;
	}
	n = t1_transceive(&st->t1, cmd, len, resp, cap, usb_t1_xfer, x);
	if (st->t1.broken) {
		log_warn("usb-ccid: %s slot %u: T=1 lost step with the card; it will be reset",
			 x->d->base_id, x->idx);
		usb_state_unpowered(x->d, x->idx);
		if (n == SSC_EPROTO)
			n = SSC_ECARDREMOVED;
	}
	return n;
}

int usb_exchange_transmit(struct usb_dev *d, unsigned idx, const uint8_t *cmd, size_t cmd_len,
			  uint8_t *resp, size_t resp_cap, int64_t deadline)
{
	struct usb_xfer_ctx x = { d, idx, deadline };
	int proto = d->slot[idx].proto, n;

	/* Activation chose the protocol (usb_card.c): T=0, T=1, or the reader's APDU level. */
	INVARIANT(proto == 0 || proto == 1 || proto == USB_PROTO_APDU);
	if (proto == 0)
		n = t0_transceive(cmd, cmd_len, resp, resp_cap, usb_t0_xfer, &x);
	else if (proto == 1)
		n = usb_t1_transmit(&x, cmd, cmd_len, resp, resp_cap);
	else
		n = usb_apdu_xfer(&x, cmd, cmd_len, resp, resp_cap);
	if (n == SSC_EIO)
		n = SSC_EPROTO;
	if (n == SSC_EINVAL)
		return n;   /* not a short APDU, or too long for this reader: nothing was sent */
	if (n >= 0 && n < 2)
		n = SSC_EPROTO;
	/*
	 * At TPDU level the card may be mid-command and T=1's sequence numbers out of step: the
	 * next user starts from a reset. (At APDU level the reader keeps step.)
	 */
	if ((n == SSC_ETIMEDOUT || n == SSC_EPROTO || n == SSC_EREADERBUSY) && proto != USB_PROTO_APDU)
		usb_state_unpowered(d, idx);
	if (n == SSC_ENOCARD)
		n = SSC_ECARDREMOVED;
	return n;
}
