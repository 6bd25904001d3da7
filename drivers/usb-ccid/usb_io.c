/*
 * This file contains the USB CCID driver's transfers on one device: a command and its reply on
 * the bulk pipes (time extensions, late replies skipped, every buffer wiped), the abort sequence
 * that ends a command the reader still works on, and the interrupt endpoint's standing transfer.
 * LIBUSB_* and CCID failures become sscard errors here (usb_io_map, ccid_check_reply).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "invariant.h"
#include "log.h"
#include "sscard/error.h"
#include "usb_io.h"
#include "usb_state.h"

/* "Earlier" replies are within half of bSeq's 256 values, so that no later one passes for one. */
_Static_assert(USB_STALE_WINDOW < 128, "USB_STALE_WINDOW must stay below half of bSeq's range");

/* Maps a libusb result (the one place that knows LIBUSB_*). */
int usb_io_map(int r)
{
	switch (r) {
	case LIBUSB_SUCCESS:
		return 0;
	case LIBUSB_ERROR_TIMEOUT:
		return SSC_ETIMEDOUT;
	case LIBUSB_ERROR_NO_MEM:
		return SSC_ENOMEM;
	case LIBUSB_ERROR_OVERFLOW:
		return SSC_EPROTO;      /* the reader sent more than its message size */
	case LIBUSB_ERROR_BUSY:
		return SSC_EREADERBUSY;
	default:
		return SSC_EREADER;     /* NO_DEVICE, PIPE, IO, ACCESS, ... */
	}
}

/*
 * Ends a command that timed out in the reader (io held), as CCID Rev 1.1 §5.3.1 has it: the class
 * request ABORT, then PC_to_RDR_Abort with the same bSlot and bSeq; the reader finishes the old
 * command (CMD_ABORTED, or its late answer) and answers the Abort with RDR_to_PC_SlotStatus.
 * Everything up to that SlotStatus is read off. A reader that supports neither still answers the
 * bulk message (command not supported), which flushes the pipe as well. Returns 1 when the
 * SlotStatus came (no earlier reply can follow), else 0.
 */
static int usb_abort(struct usb_dev *d, int64_t deadline)
{
	int64_t until = usb_now_ms() + USB_ABORT_MS;
	uint8_t aseq = d->seq++;
	int n, r, done = 0, flushed = 0;

	if (until > deadline)
		until = deadline;
	r = usbl->control_transfer(d->h, LIBUSB_ENDPOINT_OUT | LIBUSB_REQUEST_TYPE_CLASS |
					      LIBUSB_RECIPIENT_INTERFACE,
				    USB_CCID_ABORT_REQUEST, (uint16_t)(aseq << 8 | d->abort_slot),
				    (uint16_t)d->iface, NULL, 0, USB_CTRL_TIMEOUT_MS);
	if (r < 0)
		log_debug("usb-ccid: %s: ABORT request: %s", d->base_id, usbl->error_name(r));
	n = ccid_enc_abort(d->tx, d->tx_cap, d->abort_slot, aseq);
	if (n < 0 || usb_now_ms() >= until)
		return 0;
	r = usbl->bulk_transfer(d->h, d->ep_out, d->tx, n, &done,
				 (unsigned)(until - usb_now_ms() > 0 ? until - usb_now_ms() : 1));
	if (r != 0 || done != n)
		return 0;
	while (!flushed) {
		struct ccid_reply rep;
		int64_t left = until - usb_now_ms();
		int got = 0;

		if (left <= 0)
			break;
		r = usbl->bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got, (unsigned)left);
		if (r != 0)
			break;
		if (ccid_decode(d->rx, (size_t)got, d->desc.max_msg_len - CCID_HDR_LEN, &rep) == 0 &&
		    rep.type == CCID_RDR_SLOT_STATUS && rep.seq == aseq)
			flushed = 1;
		else
			log_debug("usb-ccid: %s: discarded a late %d-byte reply", d->base_id, got);
		explicit_bzero(d->rx, (size_t)(got > 0 ? got : 0));
	}
	log_debug("usb-ccid: %s slot %u: command abort %s", d->base_id, d->abort_slot,
		  flushed ? "done" : "not confirmed");
	return flushed;
}

/* Reads off replies left over from commands we stopped waiting for (io held). */
static void usb_drain(struct usb_dev *d, int64_t deadline)
{
	if (d->abort_pending) {
		d->abort_pending = 0;
		if (usb_abort(d, deadline))
			d->has_abandoned = 0;   /* the reader is through with every earlier command */
	}
	for (int i = 0; i < USB_DRAIN_MAX; i++) {
		int got = 0, r;

		r = usbl->bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got, USB_DRAIN_MS);
		if (r == LIBUSB_ERROR_TIMEOUT)
			break;
		if (r != 0) {
			if (r == LIBUSB_ERROR_PIPE)
				(void)usbl->clear_halt(d->h, d->ep_in);
			break;
		}
		log_debug("usb-ccid: %s: discarded a late %d-byte reply", d->base_id, got);
		if (got > 0)
			explicit_bzero(d->rx, (size_t)got);
	}
	d->dirty = 0;
	INVARIANT(!d->abort_pending);
}

/*
 * We stop waiting for the reply to a command (io held): replies may still be on their way. When
 * the command timed out in the reader (still running, or its reply late), it is aborted before the
 * next command, and replies with an earlier bSeq are skipped until the abort is confirmed.
 */
static void usb_abandon(struct usb_dev *d, unsigned slot, int timed_out)
{
	d->dirty = 1;
	if (timed_out) {
		d->abort_pending = 1;
		d->abort_slot = (uint8_t)slot;
		d->has_abandoned = 1;
	}
}

/* A transfer failed with libusb result r (io held). Returns the sscard error. */
static int usb_transfer_failed(struct usb_dev *d, int r, uint8_t ep)
{
	if (r == LIBUSB_ERROR_NO_DEVICE) {
		pthread_mutex_lock(&d->drv->lock);
		usb_state_gone_locked(d, 0);
		pthread_mutex_unlock(&d->drv->lock);
		return SSC_EREADER;
	}
	if (r == LIBUSB_ERROR_PIPE)
		(void)usbl->clear_halt(d->h, ep);
	log_debug("usb-ccid: %s: transfer on endpoint %02X: %s", d->base_id, ep,
		  usbl->error_name(r));
	return usb_io_map(r);
}

/* Takes the device's io mutex, waiting until deadline at most. Returns 0 or SSC_ETIMEDOUT. */
static int usb_io_lock(struct usb_dev *d, int64_t deadline)
{
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer does not know pthread_mutex_clocklock: poll, so that it sees the lock. */
	while (pthread_mutex_trylock(&d->io) != 0) {
		struct timespec nap = { 0, 1000000L };

		if (usb_now_ms() >= deadline)
			return SSC_ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
	return 0;
#else
	struct timespec ts;

	usb_abs_time(&ts, deadline);
	return pthread_mutex_clocklock(&d->io, CLOCK_MONOTONIC, &ts) == 0 ? 0 : SSC_ETIMEDOUT;
#endif
}

/*
 * Encodes c for slot idx with sequence number seq into d->tx and sends it (io held). Returns 0
 * or < 0; *n is what ccid_encode() returned (the bytes to wipe when > 0).
 */
static int usb_io_send(struct usb_dev *d, unsigned idx, const struct usb_io_cmd *c, uint8_t seq,
		       int *n)
{
	const struct ccid_msg m = { c->type, (uint8_t)idx, seq, c->b7, c->b8, c->b9, c->data, c->len };
	int64_t left;
	int r, done = 0;

	*n = ccid_encode(d->tx, d->tx_cap, &m);
	if (*n < 0 || (uint32_t)*n > d->desc.max_msg_len)
		return SSC_EINVAL;
	INVARIANT((size_t)*n <= d->tx_cap);
	left = c->deadline - usb_now_ms();
	if (left <= 0)
		return SSC_ETIMEDOUT;
	r = usbl->bulk_transfer(d->h, d->ep_out, d->tx, *n, &done,
				 (unsigned)(left < USB_OUT_TIMEOUT_MS ? left : USB_OUT_TIMEOUT_MS));
	if (r != 0 || done != *n) {
		usb_abandon(d, idx, 0);
		return r != 0 ? usb_transfer_failed(d, r, d->ep_out) : SSC_EREADER;
	}
	return 0;
}

/*
 * Whether a reply with sequence number got, while we wait for seq, is a late reply of a command
 * we gave up on (an earlier bSeq, within USB_STALE_WINDOW, at most USB_STALE_MAX of them per
 * command: *stale counts them), to be skipped (io held).
 */
static int usb_io_late(const struct usb_dev *d, uint8_t seq, uint8_t got, int *stale)
{
	uint8_t behind = (uint8_t)(seq - got);

	return d->has_abandoned && behind >= 1 && behind <= USB_STALE_WINDOW &&
	       ++*stale <= USB_STALE_MAX;
}

/*
 * What the reply rep (decoded, with our sequence number seq) says about c (io held). Returns 0
 * (the answer: c filled), 1 (a time extension: the answer follows), or < 0 as usb_io_cmd().
 */
static int usb_io_reply(struct usb_dev *d, unsigned idx, struct usb_io_cmd *c, uint8_t seq,
			const struct ccid_reply *rep)
{
	int rc = ccid_check_reply(rep, c->expect, (uint8_t)idx, seq, 1);

	if (rc == 1)
		return 1;
	c->status = rep->status;
	c->error = rep->error;
	c->param = rep->param;
	if (rc == SSC_EPROTO && rep->slot != idx) {
		log_warn("usb-ccid: %s: reply for slot %u to a command for slot %u", d->base_id,
			 rep->slot, idx);
		usb_abandon(d, idx, 0);
		return rc;
	}
	if ((rep->status & CCID_ICC_MASK) == CCID_ICC_ABSENT) {
		pthread_mutex_lock(&d->drv->lock);
		usb_state_icc_locked(d, idx, CCID_ICC_ABSENT);
		pthread_mutex_unlock(&d->drv->lock);
	}
	if (rc < 0) {
		c->failed = rc != SSC_EPROTO || (rep->status & CCID_CMD_MASK) == CCID_CMD_FAILED;
		if (c->failed)
			log_debug("usb-ccid: %s slot %u: command %02X failed: %s (%02X), status %02X",
				  d->base_id, idx, c->type, ccid_error_name(rep->error), rep->error,
				  rep->status);
		return rc;
	}
	/* The answer to this command: ours by bSlot and bSeq, and of the type it wants. */
	INVARIANT(rep->seq == seq && rep->slot == idx);
	INVARIANT(rep->type == c->expect);
	if (rep->len > 0) {
		if (!c->out || rep->len > c->out_cap)
			return SSC_EPROTO;
		memcpy(c->out, rep->data, rep->len);
	}
	c->out_len = rep->len;
	return 0;
}

/*
 * Waits for the reply to c (sent with seq) on the bulk-IN pipe, through time extensions and
 * late replies, until c->deadline (io held). *rx_used grows to the bytes of d->rx to wipe.
 * Returns as usb_io_cmd().
 */
static int usb_io_recv(struct usb_dev *d, unsigned idx, struct usb_io_cmd *c, uint8_t seq,
		       size_t *rx_used)
{
	int stale = 0;

	for (;;) {
		struct ccid_reply rep;
		int64_t left = c->deadline - usb_now_ms();
		int got = 0, wait, r, rc;

		if (left <= 0) {
			usb_abandon(d, idx, 1);   /* deadline reached in the reader's time extensions */
			return SSC_ETIMEDOUT;
		}
		wait = left < c->guard_ms ? (int)left : c->guard_ms;
		r = usbl->bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got,
					 (unsigned)(wait > 0 ? wait : 1));
		if (got > 0 && (size_t)got > *rx_used)
			*rx_used = (size_t)got;
		if (r != 0) {
			usb_abandon(d, idx, r == LIBUSB_ERROR_TIMEOUT);
			if (r == LIBUSB_ERROR_TIMEOUT) {
				log_debug("usb-ccid: %s: no reply to %02X within %d ms", d->base_id,
					  c->type, wait);
				c->silent_ms = wait;
			}
			return usb_transfer_failed(d, r, d->ep_in);
		}
		if (ccid_decode(d->rx, (size_t)got, d->desc.max_msg_len - CCID_HDR_LEN, &rep) != 0) {
			log_warn("usb-ccid: %s: malformed reply (%d bytes) to %02X", d->base_id, got,
				 c->type);
			usb_abandon(d, idx, 0);
			return SSC_EPROTO;
		}
		if (rep.seq != seq) {
			if (usb_io_late(d, seq, rep.seq, &stale)) {
				explicit_bzero(d->rx, (size_t)got);
				continue;
			}
			log_warn("usb-ccid: %s: reply with sequence number %u, expected %u", d->base_id,
				 rep.seq, seq);
			usb_abandon(d, idx, 0);
			return SSC_EPROTO;
		}
		rc = usb_io_reply(d, idx, c, seq, &rep);
		if (rc != 1)
			return rc;
	}
}

int usb_io_cmd(struct usb_dev *d, unsigned idx, struct usb_io_cmd *c)
{
	size_t rx_used = 0;
	uint8_t seq;
	int n = 0, gone, rc;

	c->out_len = 0;
	c->failed = 0;
	c->silent_ms = 0;
	if (c->try_lock) {
		if (pthread_mutex_trylock(&d->io) != 0)
			return SSC_EREADERBUSY;
	} else if (usb_io_lock(d, c->deadline) != 0) {
		return SSC_ETIMEDOUT;
	}
	pthread_mutex_lock(&d->drv->lock);
	gone = d->gone;
	pthread_mutex_unlock(&d->drv->lock);
	if (gone) {
		rc = SSC_EREADER;
		goto out_unlock;
	}
	if (NEVER(idx >= d->n_slots)) {
		rc = SSC_EINVAL;
		goto out_unlock;
	}
	/* A command the reader may still run is aborted only with its late replies read off. */
	INVARIANT(!d->abort_pending || d->dirty);
	if (d->dirty)
		usb_drain(d, c->deadline);
	seq = d->seq++;
	rc = usb_io_send(d, idx, c, seq, &n);
	if (rc == 0)
		rc = usb_io_recv(d, idx, c, seq, &rx_used);
out_unlock:
	/* Commands carry PINs, replies personal data: nothing stays in the buffers. */
	if (n > 0)
		explicit_bzero(d->tx, (size_t)n);
	if (rx_used > 0)
		explicit_bzero(d->rx, rx_used);
	if (rc != 0 && rc != SSC_EREADER && rc != SSC_EREADERBUSY && !c->failed)
		log_debug("usb-ccid: %s slot %u: command %02X: %s", d->base_id, idx, c->type,
			  ssc_strerror_name(rc));
	pthread_mutex_unlock(&d->io);
	return rc;
}

void usb_io_cmd_init(struct usb_io_cmd *c, uint8_t type, uint8_t expect, int64_t deadline)
{
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->expect = expect;
	c->deadline = deadline;
	c->guard_ms = USB_REPLY_MIN_MS;
}

/*
 * GetSlotStatus; on success applies its bmICCStatus. Any reader answers it at once, card or no
 * card: one left unanswered USB_DEAD_FAILS times in a row means the reader stopped working, and
 * the device is dropped until it is plugged in again. Returns 0 or as usb_io_cmd().
 */
int usb_io_slot_status(struct usb_dev *d, unsigned idx, int64_t deadline, int try_lock,
		       uint8_t *icc)
{
	struct usb_io_cmd c;
	int rc;

	usb_io_cmd_init(&c, CCID_PC_GET_SLOT_STATUS, CCID_RDR_SLOT_STATUS, deadline);
	c.try_lock = try_lock;
	rc = usb_io_cmd(d, idx, &c);
	pthread_mutex_lock(&d->drv->lock);
	if (rc == 0 || c.failed) {
		/* A failed GetSlotStatus still says where the card is. */
		d->fails = 0;
		usb_state_icc_locked(d, idx, c.status & CCID_ICC_MASK);
		if (icc)
			*icc = c.status & CCID_ICC_MASK;
		rc = 0;
	} else if (c.silent_ms >= USB_SILENT_MIN_MS && !d->gone) {
		if (++d->fails >= USB_DEAD_FAILS)
			usb_state_gone_locked(d, 1);
	}
	pthread_mutex_unlock(&d->drv->lock);
	return rc;
}

/* Switches the card off (its security state goes with it). */
void usb_io_power_off(struct usb_dev *d, unsigned idx, int64_t deadline)
{
	struct usb_io_cmd c;

	/* First, so that a status poll meanwhile does not take the inactive card for a new one. */
	usb_state_unpowered(d, idx);
	usb_io_cmd_init(&c, CCID_PC_ICC_POWER_OFF, CCID_RDR_SLOT_STATUS, deadline);
	(void)usb_io_cmd(d, idx, &c);
}

/*
 * One XfrBlock: b->data out, the reply's data into b->out. The wait for one reply is the card's
 * waiting time (times the WTX in bBWI) plus a margin, at least USB_REPLY_MIN_MS.
 */
int usb_io_xfr(struct usb_dev *d, unsigned idx, struct usb_io_block *b, int64_t deadline)
{
	struct usb_slot_state *st = &d->slot[idx];
	struct usb_io_cmd c;
	unsigned guard;
	int rc;

	usb_io_cmd_init(&c, CCID_PC_XFR_BLOCK, CCID_RDR_DATA_BLOCK, deadline);
	c.b7 = b->bwi;
	c.b8 = (uint8_t)b->level;
	c.b9 = (uint8_t)(b->level >> 8);
	c.data = b->data;
	c.len = b->len;
	guard = st->wait_ms * (b->bwi > 1 ? b->bwi : 1) + USB_REPLY_MARGIN_MS;
	c.guard_ms = guard < USB_REPLY_MIN_MS ? USB_REPLY_MIN_MS : (int)(guard > 600000 ? 600000 : guard);
	c.out = b->out;
	c.out_cap = b->out_cap;
	rc = usb_io_cmd(d, idx, &c);
	b->ccid_error = c.failed ? c.error : -1;
	b->chain = c.param;
	if (rc == 0)
		return (int)c.out_len;
	if (c.failed && (c.status & CCID_ICC_MASK) == CCID_ICC_INACTIVE) {
		/* The card is no longer active: reset or replaced under us. */
		pthread_mutex_lock(&d->drv->lock);
		usb_state_icc_locked(d, idx, CCID_ICC_INACTIVE);
		pthread_mutex_unlock(&d->drv->lock);
		return SSC_ECARDREMOVED;
	}
	return rc;
}

/* What a completed interrupt transfer says (drv->lock held). */
static void usb_io_intr_msg_locked(struct usb_dev *d, const struct libusb_transfer *x)
{
	uint32_t present = 0, changed = 0;
	uint8_t hw_slot = 0, hw_code = 0;
	int t = ccid_parse_interrupt(x->buffer, (size_t)x->actual_length, d->n_slots, &present,
				     &changed, &hw_slot, &hw_code);

	if (t == CCID_RDR_NOTIFY_SLOT_CHANGE)
		usb_state_notify_locked(d, present, changed);
	else if (t == CCID_RDR_HARDWARE_ERROR)
		usb_state_hw_error_locked(d, hw_slot, hw_code);
	else if (x->actual_length > 0)
		log_debug("usb-ccid: %s: unknown interrupt message %02X", d->base_id, x->buffer[0]);
}

/* The interrupt endpoint's callback: runs in whichever thread handles libusb events. */
static void LIBUSB_CALL usb_io_intr_cb(struct libusb_transfer *x)
{
	struct usb_dev *d = x->user_data;
	struct ssc_driver *drv = d->drv;
	int resubmit = 0;

	pthread_mutex_lock(&drv->lock);
	INVARIANT(d->intr_active);   /* the transfer was submitted: it is ours until this returns */
	switch (x->status) {
	case LIBUSB_TRANSFER_COMPLETED:
		usb_io_intr_msg_locked(d, x);
		resubmit = 1;
		break;
	case LIBUSB_TRANSFER_TIMED_OUT:
		resubmit = 1;
		break;
	case LIBUSB_TRANSFER_NO_DEVICE:
		usb_state_gone_locked(d, 0);
		break;
	case LIBUSB_TRANSFER_CANCELLED:
		break;
	default:
		/* Stalled or failed: follow the slots by polling instead. */
		if (!d->closing)
			log_debug("usb-ccid: %s: interrupt endpoint stopped (%d); polling", d->base_id,
				  x->status);
		d->intr_broken = 1;
		break;
	}
	if (d->closing || d->gone)
		resubmit = 0;
	d->intr_active = resubmit;
	pthread_mutex_unlock(&drv->lock);
	if (resubmit) {
		int r = usbl->submit_transfer(x);

		if (r != 0) {
			pthread_mutex_lock(&drv->lock);
			d->intr_active = 0;
			d->intr_broken = 1;
			if (r == LIBUSB_ERROR_NO_DEVICE)
				usb_state_gone_locked(d, 0);
			pthread_mutex_unlock(&drv->lock);
		}
	}
}


void usb_io_intr_start(struct usb_dev *d)
{
	if (!d->ep_intr)
		return;
	d->intr = usbl->alloc_transfer(0);
	if (!d->intr) {
		d->intr_broken = 1;
		return;
	}
	/* No timeout: a standing request that close cancels. */
	libusb_fill_interrupt_transfer(d->intr, d->h, d->ep_intr, d->intr_buf,
				       (int)sizeof(d->intr_buf), usb_io_intr_cb, d, 0);
	d->intr_active = 1;
	if (usbl->submit_transfer(d->intr) != 0) {
		d->intr_active = 0;
		d->intr_broken = 1;
	}
}
