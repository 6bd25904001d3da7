/*
 * This file contains the USB CCID driver's exchange of one APDU with an active card, at the
 * reader's level: T=0 (t0.c) or T=1 (t1.c) over XfrBlock TPDUs, or whole APDUs (chained at the
 * extended level); and what a failed exchange means for the card (reset before its next use).
 */
#include <pthread.h>
#include <string.h>

#include "log.h"
#include "sscard/error.h"
#include "t0.h"
#include "usb_exchange.h"
#include "usb_io.h"

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
	int err = -1, n;

	n = usb_io_xfr(x->d, x->idx, blk, len, (uint8_t)(wtx > 1 && wtx < 256 ? wtx : 0), 0, rblk, rcap,
		    x->deadline, NULL, &err);
	if (n >= 0 || n == SSC_ECARDREMOVED)
		return n;   /* a card gone (bmICCStatus 2, whatever bError says) ends the exchange */
	if (n == SSC_EPROTO && err < 0)
		return SSC_EIO;   /* a block longer than a block: garbled, the protocol recovers */
	if (err == CCID_ERR_ICC_MUTE || err == CCID_ERR_XFR_PARITY || err == CCID_ERR_XFR_OVERRUN)
		return SSC_EIO;   /* no block within BWT, or a damaged one: R-block recovery */
	return n;
}

/* T=0: one TPDU to the card and its answer back (t0_xfer_fn). */
static int usb_t0_xfer(void *arg, const uint8_t *tpdu, size_t len, uint8_t *resp, size_t rcap)
{
	struct usb_xfer_ctx *x = arg;
	int err = -1, n;

	n = usb_io_xfr(x->d, x->idx, tpdu, len, 0, 0, resp, rcap, x->deadline, NULL, &err);
	if (n >= 0 || n == SSC_ECARDREMOVED)
		return n;
	if (n == SSC_ETIMEDOUT && err == CCID_ERR_ICC_MUTE)
		return SSC_EPROTO;   /* the card fell silent: not our deadline */
	if (n == SSC_EIO)
		return SSC_EPROTO;
	return n;
}

/* APDU level: the APDU in one XfrBlock, or chained at the extended level. */
static int usb_apdu_run(struct usb_dev *d, unsigned idx, const uint8_t *cmd, size_t len,
			uint8_t *resp, size_t cap, int64_t deadline, uint8_t *buf, size_t buf_cap)
{
	size_t room = d->desc.max_msg_len - CCID_HDR_LEN, pos = 0, got = 0;
	uint8_t param = 0;
	int err = -1, n;

	if (len <= room) {
		n = usb_io_xfr(d, idx, cmd, len, 0, CCID_CHAIN_BEGIN_END, buf, buf_cap, deadline, &param,
			    &err);
	} else {
		if (d->level != CCID_LEVEL_EXT_APDU)
			return SSC_EINVAL;
		/* Command chaining (CCID §6.1.4): begin, middle..., end. */
		for (;;) {
			size_t part = len - pos < room ? len - pos : room;
			uint16_t lv = pos == 0 ? CCID_CHAIN_BEGIN
					       : (pos + part < len ? CCID_CHAIN_MIDDLE : CCID_CHAIN_END);

			n = usb_io_xfr(d, idx, cmd + pos, part, 0, lv, buf, buf_cap, deadline, &param,
				    &err);
			pos += part;
			if (n < 0 || pos == len)
				break;
		}
	}
	if (n < 0)
		return n == SSC_EIO ? SSC_EPROTO : n;
	for (;;) {
		if ((size_t)n > cap - got)
			return SSC_EPROTO;
		memcpy(resp + got, buf, (size_t)n);
		got += (size_t)n;
		if (d->level != CCID_LEVEL_EXT_APDU ||
		    (param != CCID_CHAIN_BEGIN && param != CCID_CHAIN_MIDDLE))
			break;
		/* The answer continues: ask for the next part with an empty XfrBlock. */
		n = usb_io_xfr(d, idx, NULL, 0, 0, CCID_CHAIN_CONTINUE, buf, buf_cap, deadline, &param,
			    &err);
		if (n < 0)
			return n == SSC_EIO ? SSC_EPROTO : n;
	}
	return (int)got;
}

static int usb_apdu_xfer(struct usb_dev *d, unsigned idx, const uint8_t *cmd, size_t len,
			 uint8_t *resp, size_t cap, int64_t deadline)
{
	uint8_t buf[USB_MSG_MAX - CCID_HDR_LEN];
	int n = usb_apdu_run(d, idx, cmd, len, resp, cap, deadline, buf, sizeof(buf));

	explicit_bzero(buf, sizeof(buf));   /* the answer may hold personal data */
	return n;
}

int usb_exchange_transmit(struct usb_dev *d, unsigned idx, const uint8_t *cmd, size_t cmd_len,
			  uint8_t *resp, size_t resp_cap, int64_t deadline)
{
	struct usb_slot_state *st = &d->slot[idx];
	struct usb_xfer_ctx x = { d, idx, deadline };
	int n;

	switch (st->proto) {
	case 0:
		n = t0_transceive(cmd, cmd_len, resp, resp_cap, usb_t0_xfer, &x);
		break;
	case 1:
		if (!st->t1.broken && st->ifsd_want > st->t1.ifsd && st->ifsd_tries < 1) {
			st->ifsd_tries++;
			n = t1_negotiate_ifsd(&st->t1, st->ifsd_want, usb_t1_xfer, &x);
			if (n != 0 && n != SSC_EPROTO)
				break;
		}
		n = t1_transceive(&st->t1, cmd, cmd_len, resp, resp_cap, usb_t1_xfer, &x);
		if (st->t1.broken) {
			/* Resynchronisation failed: only a reset brings the card back. */
			log_warn("usb-ccid: %s slot %u: T=1 lost step with the card; it will be reset",
				 d->base_id, idx);
			pthread_mutex_lock(&d->drv->lock);
			st->powered = 0;
			pthread_mutex_unlock(&d->drv->lock);
			if (n == SSC_EPROTO)
				n = SSC_ECARDREMOVED;
		}
		break;
	default:
		n = usb_apdu_xfer(d, idx, cmd, cmd_len, resp, resp_cap, deadline);
		break;
	}
	if (n == SSC_EIO)
		n = SSC_EPROTO;
	if (n == SSC_EINVAL)
		return n;   /* not a short APDU, or too long for this reader: nothing was sent */
	if (n >= 0 && n < 2)
		n = SSC_EPROTO;
	if (n == SSC_ETIMEDOUT || n == SSC_EPROTO || n == SSC_EREADERBUSY) {
		/*
		 * At TPDU level the card may be mid-command and T=1's sequence numbers out of
		 * step: the next user starts from a reset. (At APDU level the reader keeps step.)
		 */
		if (st->proto != USB_PROTO_APDU) {
			pthread_mutex_lock(&d->drv->lock);
			st->powered = 0;
			pthread_mutex_unlock(&d->drv->lock);
		}
	}
	if (n == SSC_ENOCARD)
		n = SSC_ECARDREMOVED;
	return n;
}
