/*
 * This file contains the USB CCID reader driver (ssc_driver_usb_ccid, include/sscard/driver.h) on
 * libusb: it finds CCID interfaces (class 0x0B, plus a VID:PID allow-list), claims them, follows
 * slot changes (interrupt endpoint, libusb hotplug, and polling as the fallback that always
 * works), and carries APDUs at the reader's exchange level: short/extended APDU, or TPDU with T=0
 * (t0.c) or T=1 (t1.c). CCID bytes are made and checked by ccid.c; LIBUSB_* and CCID errors
 * become sscard errors here and nowhere else.
 *
 * Threads and locks. One libusb context, made by the monitor thread on its first list() (and made
 * again while no device is open, so that a machine without USB at start, or a libusb whose hotplug
 * does not work, still finds readers later). drv->lock guards the device set, every slot's card
 * state, reference counts and the monitor's flags; nobody calls libusb while holding it. Each
 * device has an io mutex held for one command/response pair, so that two slots' workers and the
 * monitor's status polls never interleave bulk transfers. Transfers are synchronous with a
 * timeout each; the interrupt endpoint has one standing asynchronous transfer, completed by
 * whichever thread handles libusb events (the monitor in wait_change, or a worker inside a
 * synchronous transfer). Order: device io, then drv->lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libusb.h>

#include "atr.h"
#include "ccid.h"
#include "log.h"
#include "sscard/driver.h"
#include "sscard/error.h"
#include "t0.h"
#include "t1.h"

#define USB_MAX_DEVICES 16          /* CCID devices served at once */
#define USB_MAX_SEEN 128            /* libusb devices remembered between two looks */
#define USB_ALLOW_MAX 16            /* entries of usb_allow */
#define USB_PORTS_MAX 8             /* USB allows 7 tiers of hubs */
#define USB_CTRL_TIMEOUT_MS 300     /* one string descriptor */
#define USB_OUT_TIMEOUT_MS 1000     /* one bulk-OUT message */
#define USB_REPLY_MIN_MS 3000       /* the least we wait for a reply without a time extension */
#define USB_REPLY_MARGIN_MS 1000    /* on top of the card's own waiting time */
#define USB_STATUS_TIMEOUT_MS 500   /* GetSlotStatus, IccPowerOff */
#define USB_POWERON_TIMEOUT_MS 5000 /* one IccPowerOn (activation and ATR) */
#define USB_DRAIN_MS 20             /* reading off a late reply before the next command */
#define USB_DRAIN_MAX 8
#define USB_STALE_MAX 256           /* late replies (earlier bSeq) skipped while waiting for ours */
#define USB_STALE_WINDOW 64         /* ... "earlier": at most this many commands before ours */
#define USB_ABORT_MS 500            /* the ABORT sequence, at most */
#define USB_CCID_ABORT_REQUEST 0x01 /* class request ABORT (CCID §5.3.1) */
#define USB_DEAD_FAILS 2            /* GetSlotStatus unanswered in a row: the device is dropped */
#define USB_SILENT_MIN_MS 200       /* ... each after a wait of at least this long */
#define USB_HEALTH_POLLS 4          /* with a working interrupt endpoint, poll 1 in this many */
#define USB_RETRY_FIRST_MS 100      /* a device we could not open or claim is tried again after */
#define USB_RETRY_OPEN_MS 10000     /* ... doubling up to this; warned of on the try below */
#define USB_RETRY_WARN 4
#define USB_INIT_RETRY_MS 5000      /* libusb_init failed (no USB at all): try again after */
#define USB_RESCAN_MS 3000          /* no device open: make the context again this often */
#define USB_EVENTS_CHUNK_MS 100     /* one libusb_handle_events round in wait_change */
#define USB_QUICK_SPINS 5           /* event rounds back to back that found nothing ... */
#define USB_SPIN_NAP_MS 10          /* ... earn a nap (umockdev's dev node always polls ready) */
#define USB_CANCEL_WAIT_MS 1000     /* waiting for a cancelled interrupt transfer */
#define USB_BUSY_RETRY_MS 50        /* the reader is busy with an automatic sequence */
#define USB_MSG_MIN 271             /* the CCID minimum dwMaxCCIDMessageLength (short APDU + header) */
#define USB_MSG_TINY 32             /* below this, dwMaxCCIDMessageLength is taken for nonsense */
#define USB_MSG_MAX (65536 + CCID_HDR_LEN)
#define USB_INTR_MAX 64

enum { USB_PROTO_APDU = 2 };        /* slot protocol besides 0 (T=0) and 1 (T=1) */

struct ssc_driver;

/* What we know of the card in one slot. drv->lock unless said otherwise. */
struct usb_slot_state {
	int present;                    /* a card is in the slot */
	int powered;                    /* we activated it and hold its ATR and protocol */
	unsigned gen;                   /* moves on each removal, insertion or reset we learn of */
	int report_out;                 /* list() reports it empty once: it left and came back */
	int in_use;                     /* an ssc_slot is open on it */
	int expect_notify;              /* a poll saw the insertion first: its notification is old */
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len;                 /* the last ATR of the card now present; 0 unknown */
	/* The ssc_slot's owner only (one thread at a time, by the core's contract). */
	int proto;                      /* 0, 1 or USB_PROTO_APDU */
	struct atr_info ai;
	uint8_t fidi;
	unsigned wait_ms;               /* the card's longest waiting time, 0 unknown */
	struct t1 t1;
	uint8_t ifsd_want;
	int ifsd_tries;
};

struct usb_dev {
	struct ssc_driver *drv;
	libusb_device *dev;             /* referenced */
	libusb_device_handle *h;
	uint8_t bus;
	int iface;
	uint8_t ep_out, ep_in, ep_intr;
	struct ccid_class_desc desc;
	enum ccid_level level;
	unsigned n_slots;
	char base_id[SSC_READER_ID_MAX - 8];
	char name[SSC_READER_NAME_MAX - 16];
	char serial[SSC_READER_SERIAL_MAX];

	pthread_mutex_t io;             /* one command/response pair at a time */
	uint8_t seq;                    /* io */
	int dirty;                      /* io: a reply may still come: read it off first */
	int abort_pending;              /* io: a command timed out in the reader: ABORT it first */
	uint8_t abort_slot;             /* io: its slot */
	int has_abandoned;              /* io: replies with an earlier bSeq may still come */
	uint8_t *tx, *rx;               /* io */
	size_t tx_cap, rx_cap;

	/* drv->lock */
	int refs;                       /* the device set, and each open ssc_slot */
	int gone;                       /* unplugged or failed: no new I/O; list() drops it */
	int failed;                     /* gone because it misbehaved (quarantined until replug) */
	int fails;                      /* status polls that failed in a row */
	int closing;                    /* the interrupt transfer must not be submitted again */
	int intr_active;                /* the interrupt transfer is submitted (or about to be) */
	int intr_broken;                /* it stopped: slot changes are polled */
	int leaked;                     /* a transfer would not end: keep the handle open for ever */
	struct usb_slot_state slot[CCID_MAX_SLOTS];

	struct libusb_transfer *intr;
	uint8_t intr_buf[USB_INTR_MAX];
};

/* A libusb device we looked at and do not (yet) serve: not a reader, or it failed. */
struct usb_seen {
	libusb_device *dev;             /* referenced */
	int64_t retry_ms;               /* 0: never again while plugged */
	int reader;                     /* a CCID reader we could not open, or dropped */
	int tries;                      /* failed attempts to open it */
};


struct ssc_driver {
	struct { uint16_t vid, pid; } allow[USB_ALLOW_MAX];
	size_t n_allow;
	int poll_ms;

	pthread_mutex_t lock;
	pthread_cond_t cond;            /* naps of the monitor; signalled by wake() and changes */
	libusb_context *ctx;            /* set and cleared by the monitor, under lock */
	int ctx_users;                  /* wake() calls in flight on ctx */
	int woken;
	int changed;
	struct usb_dev *devs[USB_MAX_DEVICES];
	size_t n_devs;
	int n_alive;                    /* struct usb_dev not yet freed (also those left by the set) */

	/* Monitor thread only. */
	libusb_hotplug_callback_handle hotplug;
	int has_hotplug;
	int64_t next_init_ms;
	int init_logged;
	int64_t ctx_made_ms;
	int64_t last_poll_ms;
	unsigned poll_rounds;
	int quick_spins;
	struct usb_seen seen[USB_MAX_SEEN];
	size_t n_seen;
};

struct ssc_slot {
	struct usb_dev *d;
	unsigned idx;
	unsigned gen;                   /* the slot's gen when we activated the card */
};

/* One transfer context for the T=0 and T=1 callbacks. */
struct usb_xfer_ctx {
	struct usb_dev *d;
	unsigned idx;
	int64_t deadline;
};

/* One command/response pair. */
struct usb_cmd {
	uint8_t type, b7, b8, b9;
	const uint8_t *data;
	size_t len;
	uint8_t expect;                 /* the RDR_to_PC type that answers it */
	int64_t deadline;
	int guard_ms;                   /* the longest wait for one reply without a time extension */
	int try_lock;                   /* the monitor: do not wait for a busy device */
	uint8_t *out;                   /* the reply's data, out_cap bytes (NULL: not wanted) */
	size_t out_cap;
	size_t out_len;
	uint8_t status, error, param;   /* of the reply */
	int failed;                     /* the reader said the command failed */
	int silent_ms;                  /* no reply at all after waiting this long (else 0) */
};

static int64_t usb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When to try a device again after its tries-th failure. */
static int64_t usb_retry_at(int tries)
{
	int64_t ms = (int64_t)USB_RETRY_FIRST_MS << (tries < 8 ? tries : 8);

	return usb_now_ms() + (ms < USB_RETRY_OPEN_MS ? ms : USB_RETRY_OPEN_MS);
}

static void usb_abs_time(struct timespec *ts, int64_t ms)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* Maps a libusb result (the one place that knows LIBUSB_*). */
static int usb_map(int r)
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

/* ---------------------------------------------------------------------------------------------
 * Configuration.
 */

/* Parses "VID:PID,VID:PID" (hex) into drv->allow. Returns 0 or SSC_ECONFIG. */
static int usb_parse_allow(struct ssc_driver *drv, const char *s)
{
	const char *p = s;

	while (p && *p) {
		unsigned long vid, pid;
		char *end;

		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		if (drv->n_allow == USB_ALLOW_MAX)
			goto bad;
		errno = 0;
		vid = strtoul(p, &end, 16);
		if (end == p || *end != ':' || vid > 0xFFFF || errno)
			goto bad;
		p = end + 1;
		pid = strtoul(p, &end, 16);
		if (end == p || pid > 0xFFFF || errno || (*end && *end != ',' && *end != ' '))
			goto bad;
		drv->allow[drv->n_allow].vid = (uint16_t)vid;
		drv->allow[drv->n_allow].pid = (uint16_t)pid;
		drv->n_allow++;
		p = end;
	}
	return 0;
bad:
	log_error("usb-ccid: [drivers] usb_allow: expected \"VID:PID,VID:PID\" in hex (at most %d), "
		  "got \"%s\"", USB_ALLOW_MAX, s);
	return SSC_ECONFIG;
}

static int usb_allowed(const struct ssc_driver *drv, uint16_t vid, uint16_t pid)
{
	for (size_t i = 0; i < drv->n_allow; i++)
		if (drv->allow[i].vid == vid && drv->allow[i].pid == pid)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Card state changes (drv->lock held).
 */

/* The card left, or was replaced or reset under us: what we knew of it no longer holds. */
static void usb_slot_lost_locked(struct usb_dev *d, unsigned idx, int present_now)
{
	struct usb_slot_state *st = &d->slot[idx];

	if (present_now && st->present)
		st->report_out = 1;     /* it went and came back between two looks */
	st->present = present_now;
	st->powered = 0;
	st->atr_len = 0;
	st->gen++;
	d->drv->changed = 1;
	pthread_cond_broadcast(&d->drv->cond);
}

/* A status (GetSlotStatus, or any reply's bmICCStatus) says icc for slot idx. */
static void usb_slot_status_locked(struct usb_dev *d, unsigned idx, uint8_t icc)
{
	struct usb_slot_state *st = &d->slot[idx];

	switch (icc) {
	case CCID_ICC_ABSENT:
		if (st->present)
			usb_slot_lost_locked(d, idx, 0);
		break;
	case CCID_ICC_INACTIVE:
		if (!st->present) {
			usb_slot_lost_locked(d, idx, 1);
			st->report_out = 0;
			st->expect_notify = d->ep_intr && !d->intr_broken;
		} else if (st->powered) {
			usb_slot_lost_locked(d, idx, 1);   /* we powered it: it was pulled or reset */
		}
		break;
	case CCID_ICC_ACTIVE:
		if (!st->present) {
			usb_slot_lost_locked(d, idx, 1);   /* activated by the reader on insertion */
			st->report_out = 0;
			st->expect_notify = d->ep_intr && !d->intr_broken;
		}
		break;
	default:
		break;
	}
}

/* The device is gone (unplugged) or failed (quarantined until replugged). */
static void usb_dev_gone_locked(struct usb_dev *d, int failed)
{
	if (!d->gone)
		log_info("usb-ccid: %s %s", d->base_id, failed ? "stopped answering; closed until "
							       "it is plugged in again"
							     : "is gone");
	d->gone = 1;
	d->failed |= failed;
	d->drv->changed = 1;
	pthread_cond_broadcast(&d->drv->cond);
}

/* ---------------------------------------------------------------------------------------------
 * Commands.
 */

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
	r = libusb_control_transfer(d->h, LIBUSB_ENDPOINT_OUT | LIBUSB_REQUEST_TYPE_CLASS |
					      LIBUSB_RECIPIENT_INTERFACE,
				    USB_CCID_ABORT_REQUEST, (uint16_t)(aseq << 8 | d->abort_slot),
				    (uint16_t)d->iface, NULL, 0, USB_CTRL_TIMEOUT_MS);
	if (r < 0)
		log_debug("usb-ccid: %s: ABORT request: %s", d->base_id, libusb_error_name(r));
	n = ccid_enc_abort(d->tx, d->tx_cap, d->abort_slot, aseq);
	if (n < 0 || usb_now_ms() >= until)
		return 0;
	r = libusb_bulk_transfer(d->h, d->ep_out, d->tx, n, &done,
				 (unsigned)(until - usb_now_ms() > 0 ? until - usb_now_ms() : 1));
	if (r != 0 || done != n)
		return 0;
	while (!flushed) {
		struct ccid_reply rep;
		int64_t left = until - usb_now_ms();
		int got = 0;

		if (left <= 0)
			break;
		r = libusb_bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got, (unsigned)left);
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

		r = libusb_bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got, USB_DRAIN_MS);
		if (r == LIBUSB_ERROR_TIMEOUT)
			break;
		if (r != 0) {
			if (r == LIBUSB_ERROR_PIPE)
				(void)libusb_clear_halt(d->h, d->ep_in);
			break;
		}
		log_debug("usb-ccid: %s: discarded a late %d-byte reply", d->base_id, got);
		if (got > 0)
			explicit_bzero(d->rx, (size_t)got);
	}
	d->dirty = 0;
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
		usb_dev_gone_locked(d, 0);
		pthread_mutex_unlock(&d->drv->lock);
		return SSC_EREADER;
	}
	if (r == LIBUSB_ERROR_PIPE)
		(void)libusb_clear_halt(d->h, ep);
	log_debug("usb-ccid: %s: transfer on endpoint %02X: %s", d->base_id, ep,
		  libusb_error_name(r));
	return usb_map(r);
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
 * Sends one command to slot idx and waits for its reply, honouring time extensions until
 * c->deadline. Returns 0 (c->out filled), the mapped CCID failure (c->failed set), or
 * SSC_ETIMEDOUT, SSC_EREADER (device gone or failing), SSC_EREADERBUSY (try_lock and busy),
 * SSC_EPROTO (malformed, oversized or out-of-sequence reply).
 */
static int usb_cmd(struct usb_dev *d, unsigned idx, struct usb_cmd *c)
{
	uint8_t seq;
	int n = 0, r, done = 0, stale = 0, rc;
	size_t rx_used = 0;

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
	r = d->gone;
	pthread_mutex_unlock(&d->drv->lock);
	if (r) {
		rc = SSC_EREADER;
		goto out;
	}
	if (d->dirty)
		usb_drain(d, c->deadline);

	seq = d->seq++;
	n = ccid_encode(d->tx, d->tx_cap, c->type, (uint8_t)idx, seq, c->b7, c->b8, c->b9, c->data,
			c->len);
	if (n < 0 || (uint32_t)n > d->desc.max_msg_len) {
		rc = SSC_EINVAL;
		goto out;
	}
	{
		int64_t left = c->deadline - usb_now_ms();

		if (left <= 0) {
			rc = SSC_ETIMEDOUT;
			goto out;
		}
		r = libusb_bulk_transfer(d->h, d->ep_out, d->tx, n, &done,
					 (unsigned)(left < USB_OUT_TIMEOUT_MS ? left : USB_OUT_TIMEOUT_MS));
	}
	if (r != 0 || done != n) {
		usb_abandon(d, idx, 0);
		rc = r != 0 ? usb_transfer_failed(d, r, d->ep_out) : SSC_EREADER;
		goto out;
	}

	for (;;) {
		struct ccid_reply rep;
		int64_t left = c->deadline - usb_now_ms();
		int got = 0, wait;

		if (left <= 0) {
			usb_abandon(d, idx, 1);   /* deadline reached in the reader's time extensions */
			rc = SSC_ETIMEDOUT;
			goto out;
		}
		wait = left < c->guard_ms ? (int)left : c->guard_ms;
		r = libusb_bulk_transfer(d->h, d->ep_in, d->rx, (int)d->rx_cap, &got,
					 (unsigned)(wait > 0 ? wait : 1));
		if (got > 0 && (size_t)got > rx_used)
			rx_used = (size_t)got;
		if (r != 0) {
			usb_abandon(d, idx, r == LIBUSB_ERROR_TIMEOUT);
			if (r == LIBUSB_ERROR_TIMEOUT) {
				log_debug("usb-ccid: %s: no reply to %02X within %d ms", d->base_id,
					  c->type, wait);
				c->silent_ms = wait;
			}
			rc = usb_transfer_failed(d, r, d->ep_in);
			goto out;
		}
		if (ccid_decode(d->rx, (size_t)got, d->desc.max_msg_len - CCID_HDR_LEN, &rep) != 0) {
			log_warn("usb-ccid: %s: malformed reply (%d bytes) to %02X", d->base_id, got,
				 c->type);
			usb_abandon(d, idx, 0);
			rc = SSC_EPROTO;
			goto out;
		}
		if (rep.seq != seq) {
			/* Late replies (an earlier bSeq) of a command we gave up on: skip them. */
			uint8_t behind = (uint8_t)(seq - rep.seq);

			if (d->has_abandoned && behind >= 1 && behind <= USB_STALE_WINDOW &&
			    ++stale <= USB_STALE_MAX) {
				explicit_bzero(d->rx, (size_t)got);
				continue;
			}
			log_warn("usb-ccid: %s: reply with sequence number %u, expected %u", d->base_id,
				 rep.seq, seq);
			usb_abandon(d, idx, 0);
			rc = SSC_EPROTO;
			goto out;
		}
		rc = ccid_check_reply(&rep, c->expect, (uint8_t)idx, seq, 1);
		if (rc == 1)
			continue;   /* time extension: the reply follows; wait again, within the deadline */
		c->status = rep.status;
		c->error = rep.error;
		c->param = rep.param;
		if (rc == SSC_EPROTO && rep.slot != idx) {
			log_warn("usb-ccid: %s: reply for slot %u to a command for slot %u", d->base_id,
				 rep.slot, idx);
			usb_abandon(d, idx, 0);
			goto out;
		}
		if ((rep.status & CCID_ICC_MASK) == CCID_ICC_ABSENT) {
			pthread_mutex_lock(&d->drv->lock);
			usb_slot_status_locked(d, idx, CCID_ICC_ABSENT);
			pthread_mutex_unlock(&d->drv->lock);
		}
		if (rc < 0) {
			c->failed = rc != SSC_EPROTO || (rep.status & CCID_CMD_MASK) == CCID_CMD_FAILED;
			if (c->failed)
				log_debug("usb-ccid: %s slot %u: command %02X failed: %s (%02X), status %02X",
					  d->base_id, idx, c->type, ccid_error_name(rep.error), rep.error,
					  rep.status);
			goto out;
		}
		if (rep.len > 0) {
			if (!c->out || rep.len > c->out_cap) {
				rc = SSC_EPROTO;
				goto out;
			}
			memcpy(c->out, rep.data, rep.len);
		}
		c->out_len = rep.len;
		rc = 0;
		goto out;
	}
out:
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

/* A simple command without data (GetSlotStatus, IccPowerOff, GetParameters). */
static int usb_simple(struct usb_dev *d, unsigned idx, uint8_t type, uint8_t expect,
		      int64_t deadline, int try_lock, struct usb_cmd *c)
{
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->expect = expect;
	c->deadline = deadline;
	c->guard_ms = USB_REPLY_MIN_MS;
	c->try_lock = try_lock;
	return usb_cmd(d, idx, c);
}

/*
 * GetSlotStatus; on success applies its bmICCStatus. Any reader answers it at once, card or no
 * card: one left unanswered USB_DEAD_FAILS times in a row means the reader stopped working, and
 * the device is dropped until it is plugged in again. Returns 0 or as usb_cmd().
 */
static int usb_slot_status(struct usb_dev *d, unsigned idx, int64_t deadline, int try_lock,
			   uint8_t *icc)
{
	struct usb_cmd c;
	int rc = usb_simple(d, idx, CCID_PC_GET_SLOT_STATUS, CCID_RDR_SLOT_STATUS, deadline,
			    try_lock, &c);

	pthread_mutex_lock(&d->drv->lock);
	if (rc == 0 || c.failed) {
		/* A failed GetSlotStatus still says where the card is. */
		d->fails = 0;
		usb_slot_status_locked(d, idx, c.status & CCID_ICC_MASK);
		if (icc)
			*icc = c.status & CCID_ICC_MASK;
		rc = 0;
	} else if (c.silent_ms >= USB_SILENT_MIN_MS && !d->gone) {
		if (++d->fails >= USB_DEAD_FAILS)
			usb_dev_gone_locked(d, 1);
	}
	pthread_mutex_unlock(&d->drv->lock);
	return rc;
}

/* Switches the card off (its security state goes with it). */
static void usb_power_off(struct usb_dev *d, unsigned idx, int64_t deadline)
{
	struct usb_cmd c;

	/* First, so that a status poll meanwhile does not take the inactive card for a new one. */
	pthread_mutex_lock(&d->drv->lock);
	d->slot[idx].powered = 0;
	pthread_mutex_unlock(&d->drv->lock);
	(void)usb_simple(d, idx, CCID_PC_ICC_POWER_OFF, CCID_RDR_SLOT_STATUS, deadline, 0, &c);
}

/*
 * One XfrBlock: data out, the reply's data into out (out_cap). bwi extends the reader's block
 * waiting time (T=1 WTX); level is wLevelParameter. Returns the reply length, or as usb_cmd()
 * with *param the reply's bChainParameter and *ccid_error its bError when the reader failed it
 * (else -1).
 */
static int usb_xfr(struct usb_dev *d, unsigned idx, const uint8_t *data, size_t len, uint8_t bwi,
		   uint16_t level, uint8_t *out, size_t out_cap, int64_t deadline, uint8_t *param,
		   int *ccid_error)
{
	struct usb_slot_state *st = &d->slot[idx];
	struct usb_cmd c;
	unsigned guard;
	int rc;

	memset(&c, 0, sizeof(c));
	c.type = CCID_PC_XFR_BLOCK;
	c.b7 = bwi;
	c.b8 = (uint8_t)level;
	c.b9 = (uint8_t)(level >> 8);
	c.data = data;
	c.len = len;
	c.expect = CCID_RDR_DATA_BLOCK;
	c.deadline = deadline;
	guard = st->wait_ms * (bwi > 1 ? bwi : 1) + USB_REPLY_MARGIN_MS;
	c.guard_ms = guard < USB_REPLY_MIN_MS ? USB_REPLY_MIN_MS : (int)(guard > 600000 ? 600000 : guard);
	c.out = out;
	c.out_cap = out_cap;
	rc = usb_cmd(d, idx, &c);
	*ccid_error = c.failed ? c.error : -1;
	if (param)
		*param = c.param;
	if (rc == 0)
		return (int)c.out_len;
	if (c.failed && (c.status & CCID_ICC_MASK) == CCID_ICC_INACTIVE) {
		/* The card is no longer active: reset or replaced under us. */
		pthread_mutex_lock(&d->drv->lock);
		usb_slot_status_locked(d, idx, CCID_ICC_INACTIVE);
		pthread_mutex_unlock(&d->drv->lock);
		return SSC_ECARDREMOVED;
	}
	return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Exchange levels.
 */

/* T=1: one block to the card and one back (t1_xfer_fn). */
static int usb_t1_xfer(void *arg, const uint8_t *blk, size_t len, uint8_t *rblk, size_t rcap,
		       unsigned wtx)
{
	struct usb_xfer_ctx *x = arg;
	int err = -1, n;

	n = usb_xfr(x->d, x->idx, blk, len, (uint8_t)(wtx > 1 && wtx < 256 ? wtx : 0), 0, rblk, rcap,
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

	n = usb_xfr(x->d, x->idx, tpdu, len, 0, 0, resp, rcap, x->deadline, NULL, &err);
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
		n = usb_xfr(d, idx, cmd, len, 0, CCID_CHAIN_BEGIN_END, buf, buf_cap, deadline, &param,
			    &err);
	} else {
		if (d->level != CCID_LEVEL_EXT_APDU)
			return SSC_EINVAL;
		/* Command chaining (CCID §6.1.4): begin, middle..., end. */
		for (;;) {
			size_t part = len - pos < room ? len - pos : room;
			uint16_t lv = pos == 0 ? CCID_CHAIN_BEGIN
					       : (pos + part < len ? CCID_CHAIN_MIDDLE : CCID_CHAIN_END);

			n = usb_xfr(d, idx, cmd + pos, part, 0, lv, buf, buf_cap, deadline, &param,
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
		n = usb_xfr(d, idx, NULL, 0, 0, CCID_CHAIN_CONTINUE, buf, buf_cap, deadline, &param,
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

/* ---------------------------------------------------------------------------------------------
 * Activation: power, ATR, protocol and parameters.
 */

/*
 * IccPowerOn with the voltages the reader offers (automatic first when it selects by itself).
 * Returns the ATR length, or SSC_ENOCARD, SSC_EPROTO (the card does not answer), SSC_ETIMEDOUT,
 * SSC_EREADER.
 */
static int usb_power_on(struct usb_dev *d, unsigned idx, uint8_t *atr, int64_t deadline)
{
	uint8_t volts[4];
	size_t nv = 0;
	int rc = SSC_EPROTO;

	if (d->desc.features & CCID_FEAT_AUTO_VOLTAGE)
		volts[nv++] = 0;
	if (d->desc.voltage_support & 0x01)
		volts[nv++] = 1;
	if (d->desc.voltage_support & 0x02)
		volts[nv++] = 2;
	if (d->desc.voltage_support & 0x04)
		volts[nv++] = 3;
	if (nv == 0)
		volts[nv++] = 0;

	for (size_t i = 0; i < nv;) {
		struct usb_cmd c;
		int64_t left = deadline - usb_now_ms();

		if (left <= 0)
			return SSC_ETIMEDOUT;
		memset(&c, 0, sizeof(c));
		c.type = CCID_PC_ICC_POWER_ON;
		c.b7 = volts[i];
		c.expect = CCID_RDR_DATA_BLOCK;
		c.deadline = usb_now_ms() + (left < USB_POWERON_TIMEOUT_MS ? left
									   : USB_POWERON_TIMEOUT_MS);
		c.guard_ms = USB_POWERON_TIMEOUT_MS;
		c.out = atr;
		c.out_cap = SSC_ATR_MAX;
		rc = usb_cmd(d, idx, &c);
		if (rc == 0) {
			if (c.out_len < 2)
				return SSC_EPROTO;
			return (int)c.out_len;
		}
		if (!c.failed)
			return rc;
		if ((c.status & CCID_ICC_MASK) == CCID_ICC_ABSENT)
			return SSC_ENOCARD;
		if (c.error == CCID_ERR_BUSY_AUTO_SEQUENCE || c.error == CCID_ERR_CMD_SLOT_BUSY) {
			/* The reader is activating the card by itself: ask again shortly. */
			struct timespec ts = { 0, USB_BUSY_RETRY_MS * 1000000L };

			nanosleep(&ts, NULL);
			continue;
		}
		rc = c.error == CCID_ERR_HW_ERROR ? SSC_EREADER : SSC_EPROTO;
		i++;   /* mute, class not supported, bad bPowerSelect...: try the next voltage */
	}
	return rc;
}

/* Sends a PPS through XfrBlock (TPDU level). Returns 0 with *fidi, or < 0 (reset the card). */
static int usb_pps(struct usb_dev *d, unsigned idx, uint8_t proto, uint8_t want_fidi,
		   uint8_t *fidi, int64_t deadline)
{
	uint8_t req[ATR_PPS_MAX], resp[16];
	int n, err = -1;
	int len = atr_pps_build(proto, want_fidi, req);

	if (len < 0)
		return len;
	n = usb_xfr(d, idx, req, (size_t)len, 0, 0, resp, sizeof(resp), deadline, NULL, &err);
	if (n < 0)
		return n == SSC_EIO ? SSC_EPROTO : n;
	return atr_pps_check(req, (size_t)len, resp, (size_t)n, fidi);
}

/* GetParameters: the protocol the reader runs now (0 or 1), or < 0. */
static int usb_get_protocol(struct usb_dev *d, unsigned idx, int64_t deadline)
{
	uint8_t p[16];
	struct usb_cmd c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.type = CCID_PC_GET_PARAMETERS;
	c.expect = CCID_RDR_PARAMETERS;
	c.deadline = deadline;
	c.guard_ms = USB_REPLY_MIN_MS;
	c.out = p;
	c.out_cap = sizeof(p);
	rc = usb_cmd(d, idx, &c);
	if (rc != 0)
		return rc;
	return c.param <= 1 ? c.param : SSC_EPROTO;
}

/* SetParameters for protocol proto at Fi/Di fidi. Returns 0 or < 0. */
static int usb_set_parameters(struct usb_dev *d, unsigned idx, const struct atr_info *ai,
			      uint8_t proto, uint8_t fidi, int64_t deadline)
{
	uint8_t p[7], back[16];
	struct usb_cmd c;
	int n = atr_ccid_params(ai, proto, fidi, p);

	if (n < 0)
		return n;
	memset(&c, 0, sizeof(c));
	c.type = CCID_PC_SET_PARAMETERS;
	c.b7 = proto;
	c.data = p;
	c.len = (size_t)n;
	c.expect = CCID_RDR_PARAMETERS;
	c.deadline = deadline;
	c.guard_ms = USB_REPLY_MIN_MS;
	c.out = back;
	c.out_cap = sizeof(back);
	return usb_cmd(d, idx, &c);
}

/*
 * Activates the card in slot idx: power, ATR, the protocol and its parameters (PPS when the
 * reader leaves it to us), and for T=1 the IFSD. On success the slot is powered with its ATR
 * (copied to atr/atr_len) and the caller's gen is set. Returns 0, SSC_ENOCARD, SSC_EPROTO,
 * SSC_ETIMEDOUT, SSC_EREADER.
 */
static int usb_activate(struct usb_dev *d, unsigned idx, int64_t deadline, uint8_t *atr,
			size_t *atr_len, unsigned *gen)
{
	struct usb_slot_state *st = &d->slot[idx];
	uint8_t buf[SSC_ATR_MAX];
	struct atr_choice ch;
	int n, rc, parsed, tried_pps = 0;

again:
	n = usb_power_on(d, idx, buf, deadline);
	if (n < 0)
		return n;
	parsed = atr_parse(buf, (size_t)n, &st->ai) == 0;
	st->fidi = ATR_FIDI_DEFAULT;
	st->wait_ms = 0;
	if (d->level == CCID_LEVEL_TPDU) {
		if (!parsed) {
			log_warn("usb-ccid: %s slot %u: malformed ATR", d->base_id, idx);
			return SSC_EPROTO;
		}
		/* t1.c does the LRC only: a card that wants T=1 with CRC gets T=0 or nothing. */
		rc = atr_choose(&st->ai, st->ai.crc ? d->desc.protocols & ~CCID_PROTO_T1
						    : d->desc.protocols,
				d->desc.max_data_rate_bps, d->desc.default_clock_khz, &ch);
		if (rc != 0) {
			log_warn("usb-ccid: %s slot %u: no protocol both the card (%04X%s) and the "
				 "reader (%X) speak", d->base_id, idx, st->ai.protocols,
				 st->ai.crc ? ", T=1 with CRC" : "", d->desc.protocols);
			return rc;
		}
		if (tried_pps) {
			/*
			 * The PPS failed and the card was reset: it runs its first protocol at the
			 * default speed. Should the reader not speak that one, go on with our
			 * choice unnegotiated: some readers switch on SetParameters alone.
			 */
			if (st->ai.default_proto <= 1 &&
			    (d->desc.protocols & (1u << st->ai.default_proto)))
				ch.proto = st->ai.default_proto;
			ch.fidi = ATR_FIDI_DEFAULT;
			ch.need_pps = 0;
		}
		if (ch.need_pps &&
		    !(d->desc.features & (CCID_FEAT_AUTO_NEGOTIATION | CCID_FEAT_AUTO_PPS))) {
			uint8_t fidi = ATR_FIDI_DEFAULT;

			rc = usb_pps(d, idx, ch.proto, ch.fidi, &fidi, deadline);
			if (rc != 0) {
				if (rc != SSC_EPROTO && rc != SSC_ETIMEDOUT)
					return rc;
				log_info("usb-ccid: %s slot %u: PPS refused; resetting the card",
					 d->base_id, idx);
				tried_pps = 1;
				usb_power_off(d, idx, deadline);
				goto again;
			}
			ch.fidi = fidi;
		}
		/* With CCID_FEAT_AUTO_PPS, the SetParameters below makes the reader send the PPS. */
		if (d->desc.features & CCID_FEAT_AUTO_NEGOTIATION) {
			rc = usb_get_protocol(d, idx, deadline);
			if (rc >= 0)
				ch.proto = (uint8_t)rc;
		} else {
			rc = usb_set_parameters(d, idx, &st->ai, ch.proto, ch.fidi, deadline);
			if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
				return SSC_ENOCARD;
			if (rc == SSC_ETIMEDOUT)
				return rc;
			if (rc != 0) {
				/* Refused: keep what the reader runs, if it says. */
				rc = usb_get_protocol(d, idx, deadline);
				if (rc >= 0)
					ch.proto = (uint8_t)rc;
				log_info("usb-ccid: %s slot %u: SetParameters refused; using T=%u",
					 d->base_id, idx, ch.proto);
			}
		}
		st->proto = ch.proto;
		st->fidi = ch.fidi;
		st->wait_ms = atr_wait_ms(&st->ai, ch.proto, ch.fidi, d->desc.default_clock_khz);
		if (st->proto == 1) {
			size_t cap = d->desc.max_msg_len - CCID_HDR_LEN - T1_PROLOGUE - 1;
			uint32_t ifsd = d->desc.max_ifsd ? d->desc.max_ifsd : T1_INF_MAX;

			if (cap > T1_INF_MAX)
				cap = T1_INF_MAX;
			if (ifsd > cap)
				ifsd = (uint32_t)cap;
			t1_init(&st->t1, st->ai.ifsc, (uint8_t)cap);
			st->ifsd_want = (d->desc.features & CCID_FEAT_AUTO_IFSD) ? 0 : (uint8_t)ifsd;
			st->ifsd_tries = 0;
			if (d->desc.features & CCID_FEAT_AUTO_IFSD)
				st->t1.ifsd = (uint8_t)ifsd;   /* the reader announced its own */
		}
	} else {
		st->proto = USB_PROTO_APDU;
		if (parsed && !(d->desc.features &
				(CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_NEGOTIATION)) &&
		    atr_choose(&st->ai, d->desc.protocols, d->desc.max_data_rate_bps,
			       d->desc.default_clock_khz, &ch) == 0) {
			rc = usb_set_parameters(d, idx, &st->ai, ch.proto, ATR_FIDI_DEFAULT, deadline);
			if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
				return SSC_ENOCARD;
		}
		if (parsed)
			st->wait_ms = atr_wait_ms(&st->ai, st->ai.default_proto > 1 ? 0
								       : st->ai.default_proto,
						  ATR_FIDI_DEFAULT, d->desc.default_clock_khz);
	}
	if (!parsed)
		log_debug("usb-ccid: %s slot %u: ATR not understood; the reader handles it",
			  d->base_id, idx);

	pthread_mutex_lock(&d->drv->lock);
	if (!st->present || st->atr_len == 0) {
		/* A card we thought absent (no notification yet), or an ATR list() can now report. */
		st->present = 1;
		d->drv->changed = 1;
		pthread_cond_broadcast(&d->drv->cond);
	}
	st->powered = 1;
	memcpy(st->atr, buf, (size_t)n);
	st->atr_len = (size_t)n;
	*gen = st->gen;
	pthread_mutex_unlock(&d->drv->lock);
	memcpy(atr, buf, (size_t)n);
	*atr_len = (size_t)n;
	log_debug("usb-ccid: %s slot %u: card active, %s", d->base_id, idx,
		  st->proto == USB_PROTO_APDU ? "APDU level" : st->proto == 1 ? "T=1" : "T=0");
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Devices.
 */

static void usb_dev_free(struct usb_dev *d)
{
	struct ssc_driver *drv = d->drv;

	if (!d->leaked) {
		if (d->intr)
			libusb_free_transfer(d->intr);
		if (d->h) {
			(void)libusb_release_interface(d->h, d->iface);
			libusb_close(d->h);
		}
	}
	if (d->dev)
		libusb_unref_device(d->dev);
	pthread_mutex_destroy(&d->io);
	free(d->tx);
	free(d->rx);
	free(d);
	pthread_mutex_lock(&drv->lock);
	drv->n_alive--;
	pthread_mutex_unlock(&drv->lock);
}

static void usb_dev_unref(struct usb_dev *d)
{
	int last;

	pthread_mutex_lock(&d->drv->lock);
	last = --d->refs == 0;
	pthread_mutex_unlock(&d->drv->lock);
	if (last)
		usb_dev_free(d);
}

/* The interrupt endpoint's callback: runs in whichever thread handles libusb events. */
static void LIBUSB_CALL usb_intr_cb(struct libusb_transfer *x)
{
	struct usb_dev *d = x->user_data;
	struct ssc_driver *drv = d->drv;
	int resubmit = 0;

	pthread_mutex_lock(&drv->lock);
	switch (x->status) {
	case LIBUSB_TRANSFER_COMPLETED: {
		uint32_t present = 0, changed = 0;
		uint8_t hw_slot = 0, hw_code = 0;
		int t = ccid_parse_interrupt(x->buffer, (size_t)x->actual_length, d->n_slots,
					     &present, &changed, &hw_slot, &hw_code);

		if (t == CCID_RDR_NOTIFY_SLOT_CHANGE) {
			for (unsigned s = 0; s < d->n_slots; s++) {
				struct usb_slot_state *st = &d->slot[s];
				int now = (present >> s) & 1;

				if (((changed >> s) & 1) && now && st->present && st->expect_notify) {
					/* The insertion a status poll has already seen. */
					st->expect_notify = 0;
					continue;
				}
				st->expect_notify = 0;
				if ((changed >> s) & 1) {
					usb_slot_lost_locked(d, s, now);
					if (!now)
						st->report_out = 0;
				} else if (now != st->present) {
					usb_slot_lost_locked(d, s, now);
					st->report_out = 0;
				}
			}
		} else if (t == CCID_RDR_HARDWARE_ERROR) {
			log_warn("usb-ccid: %s slot %u: hardware error %02X", d->base_id, hw_slot,
				 hw_code);
			if (hw_slot < d->n_slots && d->slot[hw_slot].present)
				usb_slot_lost_locked(d, hw_slot, 1);
		} else if (x->actual_length > 0) {
			log_debug("usb-ccid: %s: unknown interrupt message %02X", d->base_id,
				  x->buffer[0]);
		}
		resubmit = 1;
		break;
	}
	case LIBUSB_TRANSFER_TIMED_OUT:
		resubmit = 1;
		break;
	case LIBUSB_TRANSFER_NO_DEVICE:
		usb_dev_gone_locked(d, 0);
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
		int r = libusb_submit_transfer(x);

		if (r != 0) {
			pthread_mutex_lock(&drv->lock);
			d->intr_active = 0;
			d->intr_broken = 1;
			if (r == LIBUSB_ERROR_NO_DEVICE)
				usb_dev_gone_locked(d, 0);
			pthread_mutex_unlock(&drv->lock);
		}
	}
}

/* Copies a USB string descriptor (UTF-16LE) as printable ASCII. Returns 0 or < 0. */
static int usb_string(libusb_device_handle *h, uint8_t idx, uint16_t langid, char *out, size_t cap)
{
	unsigned char buf[256];
	size_t n = 0;
	int r;

	out[0] = '\0';
	if (idx == 0 || cap == 0)
		return SSC_ENOTFOUND;
	r = libusb_control_transfer(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
				    (uint16_t)(LIBUSB_DT_STRING << 8 | idx), langid, buf, sizeof(buf),
				    USB_CTRL_TIMEOUT_MS);
	if (r < 2 || buf[1] != LIBUSB_DT_STRING || buf[0] > r)
		return SSC_EREADER;
	for (int i = 2; i + 1 < buf[0] && n + 1 < cap; i += 2) {
		unsigned c = buf[i] | buf[i + 1] << 8;

		out[n++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return 0;
}

/*
 * Finds a CCID interface in the active configuration: class 0x0B, or any class for an allowed
 * VID:PID, with a CCID class descriptor (in the interface's extra bytes, or after the last
 * endpoint as some early readers put it), bulk IN and OUT endpoints and an optional interrupt IN.
 * Returns 0 with the fields of d set, or SSC_ENOTFOUND.
 */
static int usb_find_interface(struct usb_dev *d, int allowed, int *alt)
{
	struct libusb_config_descriptor *cfg = NULL;
	int rc = SSC_ENOTFOUND;

	if (libusb_get_active_config_descriptor(d->dev, &cfg) != 0 &&
	    libusb_get_config_descriptor(d->dev, 0, &cfg) != 0)
		return SSC_ENOTFOUND;
	for (int i = 0; i < cfg->bNumInterfaces && rc != 0; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];

		for (int a = 0; a < itf->num_altsetting && rc != 0; a++) {
			const struct libusb_interface_descriptor *id = &itf->altsetting[a];
			const unsigned char *extra = id->extra;
			int extra_len = id->extra_length, off;
			uint8_t out = 0, in = 0, intr = 0;

			if (id->bInterfaceClass != LIBUSB_CLASS_SMART_CARD && !allowed)
				continue;
			off = ccid_find_class_desc(extra, extra_len > 0 ? (size_t)extra_len : 0);
			if (off < 0 && id->bNumEndpoints > 0) {
				const struct libusb_endpoint_descriptor *ep =
					&id->endpoint[id->bNumEndpoints - 1];

				extra = ep->extra;
				extra_len = ep->extra_length;
				off = ccid_find_class_desc(extra, extra_len > 0 ? (size_t)extra_len : 0);
			}
			if (off < 0 ||
			    ccid_parse_class_desc(extra + off, (size_t)extra_len - (size_t)off, &d->desc))
				continue;
			for (int e = 0; e < id->bNumEndpoints; e++) {
				const struct libusb_endpoint_descriptor *ep = &id->endpoint[e];
				uint8_t type = ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK;

				if (type == LIBUSB_TRANSFER_TYPE_BULK &&
				    (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !in)
					in = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_BULK &&
					 !(ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !out)
					out = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT &&
					 (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN) && !intr)
					intr = ep->bEndpointAddress;
			}
			if (!in || !out)
				continue;
			d->iface = id->bInterfaceNumber;
			*alt = id->bAlternateSetting;
			d->ep_in = in;
			d->ep_out = out;
			d->ep_intr = intr;
			rc = 0;
		}
	}
	libusb_free_config_descriptor(cfg);
	return rc;
}

/* Sets the stable ids and names of d: "usb-ccid-<bus>-<port path>[-i<iface>]". */
static void usb_dev_names(struct usb_dev *d, const struct libusb_device_descriptor *dd,
			  const char *mfr, const char *prod)
{
	uint8_t ports[USB_PORTS_MAX];
	char path[3 * USB_PORTS_MAX + 8];
	int np = libusb_get_port_numbers(d->dev, ports, USB_PORTS_MAX);
	size_t o = 0;

	if (np > 0) {
		for (int i = 0; i < np && o + 5 < sizeof(path); i++)
			o += (size_t)snprintf(path + o, sizeof(path) - o, "%s%u", i ? "." : "",
					      ports[i]);
	} else {
		/* No port path (a root hub?): the address, which a replug changes. */
		snprintf(path, sizeof(path), "d%u", libusb_get_device_address(d->dev));
	}
	if (d->iface)
		snprintf(d->base_id, sizeof(d->base_id), "usb-ccid-%u-%s-i%d", d->bus, path, d->iface);
	else
		snprintf(d->base_id, sizeof(d->base_id), "usb-ccid-%u-%s", d->bus, path);
	if (mfr[0] && prod[0] && strncmp(prod, mfr, strlen(mfr)) != 0)
		snprintf(d->name, sizeof(d->name), "%.30s %.48s [%u-%.24s]", mfr, prod, d->bus, path);
	else if (prod[0])
		snprintf(d->name, sizeof(d->name), "%.80s [%u-%.24s]", prod, d->bus, path);
	else
		snprintf(d->name, sizeof(d->name), "USB CCID reader %04x:%04x [%u-%.24s]",
			 dd->idVendor, dd->idProduct, d->bus, path);
}

/*
 * Opens, claims and describes one device if it is a CCID reader we serve. Monitor thread.
 * Returns 0 and *out (one reference, for the set), SSC_ENOTFOUND (not a reader of ours), or
 * another error (try again later).
 */
static int usb_dev_open(struct ssc_driver *drv, libusb_device *dev, int quiet,
			struct usb_dev **out)
{
	struct libusb_device_descriptor dd;
	struct usb_dev *d;
	char mfr[64], prod[64];
	uint16_t langid = 0x0409;
	int alt = 0, r, rc;
	size_t msg;

	if (libusb_get_device_descriptor(dev, &dd) != 0)
		return SSC_ENOTFOUND;
	if (dd.bDeviceClass == LIBUSB_CLASS_HUB)
		return SSC_ENOTFOUND;
	d = calloc(1, sizeof(*d));
	if (!d)
		return SSC_ENOMEM;
	d->drv = drv;
	d->dev = libusb_ref_device(dev);
	d->bus = libusb_get_bus_number(dev);
	d->refs = 1;
	if (pthread_mutex_init(&d->io, NULL) != 0) {
		libusb_unref_device(d->dev);
		free(d);
		return SSC_ENOMEM;
	}
	pthread_mutex_lock(&drv->lock);
	drv->n_alive++;
	pthread_mutex_unlock(&drv->lock);

	rc = usb_find_interface(d, usb_allowed(drv, dd.idVendor, dd.idProduct), &alt);
	if (rc != 0)
		goto fail;
	d->level = ccid_exchange_level(d->desc.features);
	d->n_slots = (unsigned)d->desc.max_slot_index + 1;
	if (d->level == CCID_LEVEL_CHAR) {
		log_warn("usb-ccid: reader %04x:%04x exchanges characters only (dwFeatures %08X); "
			 "not supported", dd.idVendor, dd.idProduct, d->desc.features);
		rc = SSC_ENOTFOUND;
		goto fail;
	}
	if (!(d->desc.protocols & (CCID_PROTO_T0 | CCID_PROTO_T1)) && d->level == CCID_LEVEL_TPDU) {
		rc = SSC_ENOTFOUND;
		goto fail;
	}
	if (d->desc.max_msg_len < USB_MSG_TINY) {
		/* Nonsense (some readers say 0 here): assume the CCID minimum for short APDUs. */
		d->desc.max_msg_len = USB_MSG_MIN;
	}
	/*
	 * A value below the minimum but usable is kept: extended-APDU readers then get chained
	 * commands and answers, T=1 blocks get a smaller INF, and what cannot fit is refused.
	 */
	if (d->desc.max_msg_len > USB_MSG_MAX)
		d->desc.max_msg_len = USB_MSG_MAX;

	r = libusb_open(dev, &d->h);
	if (r != 0) {
		log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN,
			"usb-ccid: cannot open reader %04x:%04x on bus %u: %s", dd.idVendor,
			 dd.idProduct, d->bus, libusb_error_name(r));
		rc = usb_map(r);
		goto fail;
	}
	(void)libusb_set_auto_detach_kernel_driver(d->h, 1);
	r = libusb_claim_interface(d->h, d->iface);
	if (r != 0) {
		log_msg(quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN,
			"usb-ccid: cannot claim reader %04x:%04x on bus %u: %s%s", dd.idVendor,
			 dd.idProduct, d->bus, libusb_error_name(r),
			 r == LIBUSB_ERROR_BUSY ? " (another program, pcscd?, holds it)" : "");
		rc = usb_map(r);
		goto fail;
	}
	if (alt != 0 && (r = libusb_set_interface_alt_setting(d->h, d->iface, alt)) != 0) {
		rc = usb_map(r);
		goto fail;
	}

	/* Names: the language list first, then the strings, each with a short timeout. */
	{
		unsigned char lb[8];

		r = libusb_control_transfer(d->h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
					    LIBUSB_DT_STRING << 8, 0, lb, sizeof(lb),
					    USB_CTRL_TIMEOUT_MS);
		mfr[0] = prod[0] = '\0';
		if (r >= 4 && lb[1] == LIBUSB_DT_STRING) {
			langid = (uint16_t)(lb[2] | lb[3] << 8);
			(void)usb_string(d->h, dd.iManufacturer, langid, mfr, sizeof(mfr));
			(void)usb_string(d->h, dd.iProduct, langid, prod, sizeof(prod));
			(void)usb_string(d->h, dd.iSerialNumber, langid, d->serial, sizeof(d->serial));
		}
	}
	usb_dev_names(d, &dd, mfr, prod);

	msg = d->desc.max_msg_len;
	{
		const struct libusb_endpoint_descriptor *ep = NULL;
		struct libusb_config_descriptor *cfg = NULL;
		size_t pkt = 64;

		if (libusb_get_active_config_descriptor(dev, &cfg) == 0) {
			for (int i = 0; i < cfg->bNumInterfaces && !ep; i++)
				for (int a = 0; a < cfg->interface[i].num_altsetting && !ep; a++) {
					const struct libusb_interface_descriptor *id =
						&cfg->interface[i].altsetting[a];

					if (id->bInterfaceNumber != d->iface)
						continue;
					for (int e = 0; e < id->bNumEndpoints; e++)
						if (id->endpoint[e].bEndpointAddress == d->ep_in)
							ep = &id->endpoint[e];
				}
			if (ep && ep->wMaxPacketSize > 0)
				pkt = ep->wMaxPacketSize & 0x7FF;
			libusb_free_config_descriptor(cfg);
		}
		/* A multiple of the packet size, so that a whole message never overflows. */
		d->rx_cap = (msg + pkt - 1) / pkt * pkt;
		d->tx_cap = msg;
	}
	d->tx = malloc(d->tx_cap);
	d->rx = malloc(d->rx_cap);
	if (!d->tx || !d->rx) {
		rc = SSC_ENOMEM;
		goto fail;
	}

	/* Where the cards are now. */
	for (unsigned s = 0; s < d->n_slots; s++) {
		rc = usb_slot_status(d, s, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 0, NULL);
		if (rc != 0) {
			log_warn("usb-ccid: %s: no answer to GetSlotStatus for slot %u: %s", d->base_id,
				 s, ssc_strerror(rc));
			goto fail;
		}
	}
	pthread_mutex_lock(&drv->lock);
	for (unsigned s = 0; s < d->n_slots; s++)
		d->slot[s].report_out = 0;   /* expect_notify stays: a first notification is old news */
	pthread_mutex_unlock(&drv->lock);

	if (d->ep_intr) {
		d->intr = libusb_alloc_transfer(0);
		if (d->intr) {
			/* No timeout: a standing request that close cancels. */
			libusb_fill_interrupt_transfer(d->intr, d->h, d->ep_intr, d->intr_buf,
						       (int)sizeof(d->intr_buf), usb_intr_cb, d, 0);
			d->intr_active = 1;
			r = libusb_submit_transfer(d->intr);
			if (r != 0) {
				d->intr_active = 0;
				d->intr_broken = 1;
			}
		} else {
			d->intr_broken = 1;
		}
	}
	log_info("usb-ccid: %s: %s, %u slot%s, %s level, dwFeatures %08X%s%s", d->base_id, d->name,
		 d->n_slots, d->n_slots > 1 ? "s" : "",
		 d->level == CCID_LEVEL_TPDU ? "TPDU"
		 : d->level == CCID_LEVEL_SHORT_APDU ? "short APDU" : "extended APDU",
		 d->desc.features, d->serial[0] ? ", serial " : "", d->serial);
	*out = d;
	return 0;

fail:
	d->refs = 0;
	usb_dev_free(d);
	return rc;
}

/* Handles libusb events for at most ms (monitor thread). */
static void usb_events(struct ssc_driver *drv, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)libusb_handle_events_timeout_completed(drv->ctx, &tv, NULL);
}

/*
 * Takes d out of the set and drops the set's reference (monitor thread): stops the interrupt
 * transfer first, waiting for its callback, since the handle may close once the last slot lets
 * go of d.
 */
static void usb_dev_remove(struct ssc_driver *drv, size_t i)
{
	struct usb_dev *d = drv->devs[i];
	int64_t until = usb_now_ms() + USB_CANCEL_WAIT_MS;
	int active;

	pthread_mutex_lock(&drv->lock);
	d->closing = 1;
	d->gone = 1;
	active = d->intr_active;
	pthread_mutex_unlock(&drv->lock);
	while (active) {
		(void)libusb_cancel_transfer(d->intr);
		usb_events(drv, 50);
		pthread_mutex_lock(&drv->lock);
		active = d->intr_active;
		if (active && usb_now_ms() > until) {
			d->leaked = 1;   /* never free what libusb may still write to */
			active = 0;
			log_warn("usb-ccid: %s: interrupt transfer would not stop; leaving it",
				 d->base_id);
		}
		pthread_mutex_unlock(&drv->lock);
	}
	pthread_mutex_lock(&drv->lock);
	drv->devs[i] = drv->devs[--drv->n_devs];
	drv->devs[drv->n_devs] = NULL;
	pthread_mutex_unlock(&drv->lock);
	usb_dev_unref(d);
}

/* ---------------------------------------------------------------------------------------------
 * The libusb context and the device list.
 */

static int LIBUSB_CALL usb_hotplug_cb(libusb_context *ctx, libusb_device *dev,
				      libusb_hotplug_event ev, void *arg)
{
	struct ssc_driver *drv = arg;

	(void)ctx;
	(void)dev;
	(void)ev;
	pthread_mutex_lock(&drv->lock);
	drv->changed = 1;
	pthread_cond_broadcast(&drv->cond);
	pthread_mutex_unlock(&drv->lock);
	return 0;
}

static void usb_seen_clear(struct ssc_driver *drv)
{
	for (size_t i = 0; i < drv->n_seen; i++)
		libusb_unref_device(drv->seen[i].dev);
	drv->n_seen = 0;
}

/* Drops the context (monitor thread; no device may be alive). */
static void usb_ctx_drop(struct ssc_driver *drv)
{
	libusb_context *ctx = drv->ctx;

	if (!ctx)
		return;
	if (drv->has_hotplug)
		libusb_hotplug_deregister_callback(ctx, drv->hotplug);
	drv->has_hotplug = 0;
	usb_seen_clear(drv);
	pthread_mutex_lock(&drv->lock);
	drv->ctx = NULL;
	while (drv->ctx_users > 0)
		pthread_cond_wait(&drv->cond, &drv->lock);
	pthread_mutex_unlock(&drv->lock);
	libusb_exit(ctx);
}

/* Makes the context if there is none and it is time to try. Returns 1 when one exists. */
static int usb_ctx_ensure(struct ssc_driver *drv)
{
	libusb_context *ctx = NULL;
	int r;

	if (drv->ctx)
		return 1;
	if (usb_now_ms() < drv->next_init_ms)
		return 0;
	r = libusb_init(&ctx);
	if (r != 0) {
		if (!drv->init_logged)
			log_info("usb-ccid: no USB here (%s); looking again every %d s",
				 libusb_error_name(r), USB_INIT_RETRY_MS / 1000);
		drv->init_logged = 1;
		drv->next_init_ms = usb_now_ms() + USB_INIT_RETRY_MS;
		return 0;
	}
	if (drv->init_logged)
		log_info("usb-ccid: USB is available now");
	drv->init_logged = 0;
	if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) &&
	    libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
						      LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
					     0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
					     LIBUSB_HOTPLUG_MATCH_ANY, usb_hotplug_cb, drv,
					     &drv->hotplug) == 0)
		drv->has_hotplug = 1;
	pthread_mutex_lock(&drv->lock);
	drv->ctx = ctx;
	pthread_mutex_unlock(&drv->lock);
	drv->ctx_made_ms = usb_now_ms();
	return 1;
}

/*
 * Whether making the context afresh is worth it (monitor thread): no device of ours is open, and
 * no reader waits for a retry or a replug (a fresh context would forget it, and try and warn
 * again at once).
 */
static int usb_ctx_stale(struct ssc_driver *drv)
{
	int alive;

	pthread_mutex_lock(&drv->lock);
	alive = drv->n_alive;
	pthread_mutex_unlock(&drv->lock);
	if (alive > 0 || usb_now_ms() - drv->ctx_made_ms < USB_RESCAN_MS)
		return 0;
	for (size_t i = 0; i < drv->n_seen; i++)
		if (drv->seen[i].reader)
			return 0;
	return 1;
}

static struct usb_seen *usb_seen_find(struct ssc_driver *drv, libusb_device *dev)
{
	for (size_t i = 0; i < drv->n_seen; i++)
		if (drv->seen[i].dev == dev)
			return &drv->seen[i];
	return NULL;
}

static struct usb_dev *usb_set_find(struct ssc_driver *drv, libusb_device *dev)
{
	for (size_t i = 0; i < drv->n_devs; i++)
		if (drv->devs[i]->dev == dev)
			return drv->devs[i];
	return NULL;
}

/* Brings the device set in line with libusb's device list (monitor thread). */
static void usb_rescan(struct ssc_driver *drv)
{
	libusb_device **list = NULL;
	struct usb_seen keep[USB_MAX_SEEN];
	size_t n_keep = 0;
	ssize_t n;

	n = libusb_get_device_list(drv->ctx, &list);
	if (n < 0) {
		log_warn("usb-ccid: cannot list USB devices: %s", libusb_error_name((int)n));
		return;
	}
	/* Devices that left, or that failed (they stay away until replugged). */
	for (size_t i = 0; i < drv->n_devs;) {
		struct usb_dev *d = drv->devs[i];
		int present = 0, gone, failed;

		for (ssize_t j = 0; j < n && !present; j++)
			present = list[j] == d->dev;
		pthread_mutex_lock(&drv->lock);
		gone = d->gone;
		failed = d->failed;
		pthread_mutex_unlock(&drv->lock);
		if (present && !gone) {
			i++;
			continue;
		}
		if (present && failed && n_keep < USB_MAX_SEEN) {
			keep[n_keep].dev = libusb_ref_device(d->dev);
			keep[n_keep].retry_ms = 0;
			keep[n_keep].reader = 1;
			keep[n_keep].tries = 0;
			n_keep++;
		} else if (present && n_keep < USB_MAX_SEEN) {
			/* Gone but still listed: an unplug libusb has not processed yet. */
			keep[n_keep].dev = libusb_ref_device(d->dev);
			keep[n_keep].retry_ms = usb_retry_at(0);
			keep[n_keep].reader = 1;
			keep[n_keep].tries = 0;
			n_keep++;
		}
		usb_dev_remove(drv, i);
	}
	/* Devices new to us. */
	for (ssize_t j = 0; j < n; j++) {
		libusb_device *dev = list[j];
		struct usb_seen *s = usb_seen_find(drv, dev);
		struct usb_dev *d = NULL;
		int rc;

		if (usb_set_find(drv, dev))
			continue;
		if (s && (s->retry_ms == 0 || usb_now_ms() < s->retry_ms)) {
			if (n_keep < USB_MAX_SEEN) {
				keep[n_keep].dev = libusb_ref_device(dev);
				keep[n_keep].retry_ms = s->retry_ms;
				keep[n_keep].reader = s->reader;
				keep[n_keep].tries = s->tries;
				n_keep++;
			}
			continue;
		}
		for (size_t k = 0; k < n_keep; k++)
			if (keep[k].dev == dev)
				goto next;
		if (drv->n_devs == USB_MAX_DEVICES) {
			rc = SSC_ELIMIT;
		} else {
			/* Just plugged in, a device may not be ready: quiet retries, then one warning. */
			rc = usb_dev_open(drv, dev, (s ? s->tries + 1 : 0) != USB_RETRY_WARN, &d);
		}
		if (rc == 0) {
			pthread_mutex_lock(&drv->lock);
			drv->devs[drv->n_devs++] = d;
			pthread_mutex_unlock(&drv->lock);
		} else if (n_keep < USB_MAX_SEEN) {
			int tries = s ? s->tries + 1 : 0;

			keep[n_keep].dev = libusb_ref_device(dev);
			keep[n_keep].retry_ms = rc == SSC_ENOTFOUND ? 0 : usb_retry_at(tries);
			keep[n_keep].reader = rc != SSC_ENOTFOUND;
			keep[n_keep].tries = tries;
			n_keep++;
		}
next:;
	}
	usb_seen_clear(drv);
	memcpy(drv->seen, keep, n_keep * sizeof(keep[0]));
	drv->n_seen = n_keep;
	libusb_free_device_list(list, 1);
}

/*
 * Whether libusb's device list differs from what the last rescan saw (monitor thread): a device
 * that is neither served nor remembered, or a served one that left.
 */
static int usb_list_changed(struct ssc_driver *drv)
{
	libusb_device **list = NULL;
	ssize_t n = libusb_get_device_list(drv->ctx, &list);
	size_t served = 0;
	int changed = 0;

	if (n < 0)
		return 0;
	for (ssize_t j = 0; j < n && !changed; j++) {
		struct usb_seen *s = usb_seen_find(drv, list[j]);

		if (usb_set_find(drv, list[j]))
			served++;
		else if (!s || (s->retry_ms != 0 && usb_now_ms() >= s->retry_ms))
			changed = 1;
	}
	if (served != drv->n_devs)
		changed = 1;
	libusb_free_device_list(list, 1);
	return changed;
}

/*
 * Asks the devices for their slots' status (monitor thread): every round those whose interrupt
 * endpoint is missing or stopped, the others one round in USB_HEALTH_POLLS (a safety net, and
 * the check that the reader still answers). A device busy with a command is skipped. Returns 1
 * when something changed.
 */
static int usb_poll_slots(struct ssc_driver *drv)
{
	int changed, health = ++drv->poll_rounds % USB_HEALTH_POLLS == 0;

	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];
		int notified;

		pthread_mutex_lock(&drv->lock);
		notified = d->ep_intr && !d->intr_broken && !d->gone;
		pthread_mutex_unlock(&drv->lock);
		if (notified && !health)
			continue;
		for (unsigned s = 0; s < d->n_slots; s++) {
			int rc = usb_slot_status(d, s, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 1, NULL);

			if (rc != 0 && rc != SSC_EREADERBUSY)
				break;
		}
	}
	pthread_mutex_lock(&drv->lock);
	changed = drv->changed;
	pthread_mutex_unlock(&drv->lock);
	return changed;
}

/* ---------------------------------------------------------------------------------------------
 * The ops.
 */

static int usb_open(const struct ssc_driver_config *cfg, struct ssc_driver **out)
{
	struct ssc_driver *drv;
	pthread_condattr_t ca;
	int rc;

	drv = calloc(1, sizeof(*drv));
	if (!drv)
		return SSC_ENOMEM;
	drv->poll_ms = cfg && cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 500;
	if (cfg && cfg->usb_allow && usb_parse_allow(drv, cfg->usb_allow) != 0) {
		free(drv);
		return SSC_ECONFIG;
	}
	if (pthread_mutex_init(&drv->lock, NULL) != 0) {
		free(drv);
		return SSC_ENOMEM;
	}
	if (pthread_condattr_init(&ca) != 0) {
		pthread_mutex_destroy(&drv->lock);
		free(drv);
		return SSC_ENOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&drv->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		pthread_mutex_destroy(&drv->lock);
		free(drv);
		return SSC_ENOMEM;
	}
	/* libusb is started by the monitor thread, on its first list(). */
	*out = drv;
	return 0;
}

static void usb_close(struct ssc_driver *drv)
{
	if (!drv)
		return;
	while (drv->n_devs > 0)
		usb_dev_remove(drv, drv->n_devs - 1);
	/* Every slot is disconnected (the contract), so every device is freed now. */
	if (drv->n_alive == 0)
		usb_ctx_drop(drv);
	else
		log_warn("usb-ccid: %d device(s) still in use at close; leaving libusb open",
			 drv->n_alive);
	usb_seen_clear(drv);
	pthread_cond_destroy(&drv->cond);
	pthread_mutex_destroy(&drv->lock);
	free(drv);
}

static int usb_list(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max)
{
	size_t n = 0;

	if (!usb_ctx_ensure(drv))
		return 0;
	if (usb_ctx_stale(drv)) {
		/*
		 * Nothing open: a fresh context enumerates afresh, whether or not libusb's hotplug
		 * works where we run (under umockdev it may not).
		 */
		usb_ctx_drop(drv);
		drv->next_init_ms = 0;
		if (!usb_ctx_ensure(drv))
			return 0;
	}
	usb_rescan(drv);

	pthread_mutex_lock(&drv->lock);
	drv->changed = 0;
	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];

		if (d->gone)
			continue;
		for (unsigned s = 0; s < d->n_slots && n < max; s++) {
			struct usb_slot_state *st = &d->slot[s];
			struct ssc_reader_desc *r = &out[n++];

			memset(r, 0, sizeof(*r));
			snprintf(r->id, sizeof(r->id), "%s-s%u", d->base_id, (unsigned)(uint8_t)s);
			if (d->n_slots > 1)
				snprintf(r->name, sizeof(r->name), "%s slot %u", d->name, (unsigned)(uint8_t)s);
			else
				snprintf(r->name, sizeof(r->name), "%s", d->name);
			snprintf(r->serial, sizeof(r->serial), "%s", d->serial);
			if (st->report_out) {
				/* Report it gone once, so that the core sees it leave and come back. */
				st->report_out = 0;
				drv->changed = 1;
				continue;
			}
			r->card_present = st->present;
			if (st->present && st->atr_len > 0) {
				memcpy(r->atr, st->atr, st->atr_len);
				r->atr_len = st->atr_len;
			}
		}
	}
	pthread_mutex_unlock(&drv->lock);
	drv->last_poll_ms = usb_now_ms();
	return (int)n;
}

/* Naps until ms passes or something is signalled (drv->lock held). */
static void usb_nap_locked(struct ssc_driver *drv, int64_t until)
{
	struct timespec ts;

	usb_abs_time(&ts, until);
	while (!drv->woken && !drv->changed)
		if (pthread_cond_timedwait(&drv->cond, &drv->lock, &ts) == ETIMEDOUT)
			break;
}

static int usb_wait_change(struct ssc_driver *drv, int timeout_ms)
{
	int64_t deadline = usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		int64_t now = usb_now_ms(), left = deadline - now, next_poll;

		pthread_mutex_lock(&drv->lock);
		if (drv->woken) {
			drv->woken = 0;
			pthread_mutex_unlock(&drv->lock);
			return 0;
		}
		if (drv->changed) {
			drv->changed = 0;
			pthread_mutex_unlock(&drv->lock);
			return 1;
		}
		pthread_mutex_unlock(&drv->lock);
		if (left <= 0)
			return 0;

		if (!drv->ctx) {
			int64_t until = drv->next_init_ms < deadline ? drv->next_init_ms : deadline;

			if (until <= now) {
				if (usb_ctx_ensure(drv))
					return 1;
				until = drv->next_init_ms < deadline ? drv->next_init_ms : deadline;
			}
			pthread_mutex_lock(&drv->lock);
			usb_nap_locked(drv, until);
			pthread_mutex_unlock(&drv->lock);
			continue;
		}

		next_poll = drv->last_poll_ms + drv->poll_ms;
		for (size_t i = 0; i < drv->n_seen; i++)
			if (drv->seen[i].retry_ms != 0 && drv->seen[i].retry_ms < next_poll)
				next_poll = drv->seen[i].retry_ms;
		if (now >= next_poll) {
			drv->last_poll_ms = now;
			if (usb_list_changed(drv) || usb_poll_slots(drv))
				return 1;
			if (usb_ctx_stale(drv))
				return 1;   /* list() makes a fresh context to look again */
			continue;
		}
		{
			int64_t chunk = next_poll - now;
			int64_t t0;

			if (chunk > left)
				chunk = left;
			if (chunk > USB_EVENTS_CHUNK_MS)
				chunk = USB_EVENTS_CHUNK_MS;
			t0 = usb_now_ms();
			usb_events(drv, (int)chunk);
			if (usb_now_ms() - t0 < 1 && chunk > 1) {
				/*
				 * Back at once: under umockdev the device node always polls
				 * ready. A short nap now and then keeps that from spinning a
				 * core; wake() and changes still end it at once.
				 */
				if (++drv->quick_spins >= USB_QUICK_SPINS) {
					drv->quick_spins = 0;
					pthread_mutex_lock(&drv->lock);
					usb_nap_locked(drv, usb_now_ms() + USB_SPIN_NAP_MS);
					pthread_mutex_unlock(&drv->lock);
				}
			} else {
				drv->quick_spins = 0;
			}
		}
	}
}

static void usb_wake(struct ssc_driver *drv)
{
	libusb_context *ctx;

	pthread_mutex_lock(&drv->lock);
	drv->woken = 1;
	pthread_cond_broadcast(&drv->cond);
	ctx = drv->ctx;
	if (ctx)
		drv->ctx_users++;
	pthread_mutex_unlock(&drv->lock);
	if (ctx) {
		libusb_interrupt_event_handler(ctx);
		pthread_mutex_lock(&drv->lock);
		drv->ctx_users--;
		pthread_cond_broadcast(&drv->cond);
		pthread_mutex_unlock(&drv->lock);
	}
}

/* Finds the device and slot of reader_id and takes a reference (drv->lock held). */
static struct usb_dev *usb_find_reader_locked(struct ssc_driver *drv, const char *reader_id,
					      unsigned *idx)
{
	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];
		size_t bl = strlen(d->base_id);
		char *end;
		unsigned long s;

		if (d->gone || strncmp(reader_id, d->base_id, bl) != 0 || reader_id[bl] != '-' ||
		    reader_id[bl + 1] != 's')
			continue;
		s = strtoul(reader_id + bl + 2, &end, 10);
		if (*end != '\0' || end == reader_id + bl + 2 || s >= d->n_slots)
			continue;
		*idx = (unsigned)s;
		d->refs++;
		return d;
	}
	return NULL;
}

static void usb_slot_release(struct ssc_slot *s)
{
	pthread_mutex_lock(&s->d->drv->lock);
	s->d->slot[s->idx].in_use = 0;
	pthread_mutex_unlock(&s->d->drv->lock);
	usb_dev_unref(s->d);
	free(s);
}

static int usb_connect(struct ssc_driver *drv, const char *reader_id, int timeout_ms,
		       struct ssc_slot **out, uint8_t *atr, size_t *atr_len)
{
	int64_t deadline = usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct ssc_slot *s;
	struct usb_dev *d;
	struct usb_slot_state *st;
	unsigned idx = 0;
	uint8_t icc = CCID_ICC_ABSENT;
	int rc, reuse = 0;

	s = calloc(1, sizeof(*s));
	if (!s)
		return SSC_ENOMEM;
	pthread_mutex_lock(&drv->lock);
	d = usb_find_reader_locked(drv, reader_id, &idx);
	if (d && d->slot[idx].in_use) {
		d->refs--;   /* never the last: the set holds one */
		pthread_mutex_unlock(&drv->lock);
		free(s);
		return SSC_EREADERBUSY;
	}
	if (d)
		d->slot[idx].in_use = 1;
	pthread_mutex_unlock(&drv->lock);
	if (!d) {
		free(s);
		return SSC_ENOREADER;
	}
	s->d = d;
	s->idx = idx;
	st = &d->slot[idx];

	/* Where is the card, and is it still the one we activated? */
	rc = usb_slot_status(d, idx, deadline, 0, &icc);
	if (rc != 0)
		goto fail;
	pthread_mutex_lock(&drv->lock);
	if (icc == CCID_ICC_ABSENT || !st->present) {
		rc = SSC_ENOCARD;
	} else if (icc == CCID_ICC_ACTIVE && st->powered && st->atr_len > 0) {
		/* Still active since we activated it: no reset (PC/SC "leave card" semantics). */
		reuse = 1;
		memcpy(atr, st->atr, st->atr_len);
		*atr_len = st->atr_len;
		s->gen = st->gen;
	}
	pthread_mutex_unlock(&drv->lock);
	if (rc != 0)
		goto fail;
	if (!reuse) {
		/* Active but not as we left it: switch it off first, so that this is a real reset. */
		if (icc == CCID_ICC_ACTIVE)
			usb_power_off(d, idx, deadline);
		rc = usb_activate(d, idx, deadline, atr, atr_len, &s->gen);
		if (rc != 0)
			goto fail;
	}
	*out = s;
	return 0;

fail:
	usb_slot_release(s);
	if (rc == SSC_ECARDREMOVED)
		rc = SSC_ENOCARD;
	if (rc == SSC_EPROTO || rc == SSC_EIO || rc == SSC_EINVAL)
		rc = SSC_EREADER;
	return rc;
}

/* The slot's card is still the one this connection activated (drv->lock taken). */
static int usb_slot_current(struct ssc_slot *s)
{
	struct usb_dev *d = s->d;
	int rc = 0;

	pthread_mutex_lock(&d->drv->lock);
	if (d->gone)
		rc = SSC_EREADER;
	else if (!d->slot[s->idx].present)
		rc = SSC_ECARDREMOVED;
	else if (d->slot[s->idx].gen != s->gen || !d->slot[s->idx].powered)
		rc = SSC_ECARDREMOVED;
	pthread_mutex_unlock(&d->drv->lock);
	return rc;
}

static int usb_transmit(struct ssc_slot *s, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			size_t resp_cap, int timeout_ms)
{
	struct usb_dev *d = s->d;
	struct usb_slot_state *st = &d->slot[s->idx];
	struct usb_xfer_ctx x = { d, s->idx, usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0) };
	int n;

	if (!cmd || !resp || cmd_len < 4 || cmd_len > SSC_CMD_APDU_MAX || resp_cap < 2)
		return SSC_EINVAL;
	n = usb_slot_current(s);
	if (n != 0)
		return n;
	if (timeout_ms <= 0)
		return SSC_ETIMEDOUT;

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
				 d->base_id, s->idx);
			pthread_mutex_lock(&d->drv->lock);
			st->powered = 0;
			pthread_mutex_unlock(&d->drv->lock);
			if (n == SSC_EPROTO)
				n = SSC_ECARDREMOVED;
		}
		break;
	default:
		n = usb_apdu_xfer(d, s->idx, cmd, cmd_len, resp, resp_cap, x.deadline);
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

static int usb_reconnect(struct ssc_slot *s, uint8_t *atr, size_t *atr_len)
{
	struct usb_dev *d = s->d;
	int64_t deadline = usb_now_ms() + USB_POWERON_TIMEOUT_MS + USB_STATUS_TIMEOUT_MS * 2;
	uint8_t icc = CCID_ICC_ABSENT;
	int rc;

	pthread_mutex_lock(&d->drv->lock);
	rc = d->gone ? SSC_EREADER : 0;
	pthread_mutex_unlock(&d->drv->lock);
	if (rc != 0)
		return rc;
	usb_power_off(d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS);
	rc = usb_slot_status(d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 0, &icc);
	if (rc == 0 && icc == CCID_ICC_ABSENT)
		return SSC_ENOCARD;
	if (rc != 0)
		return SSC_EREADER;
	rc = usb_activate(d, s->idx, deadline, atr, atr_len, &s->gen);
	if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
		return SSC_ENOCARD;
	return rc == 0 ? 0 : SSC_EREADER;
}

static void usb_disconnect(struct ssc_slot *s, int reset)
{
	if (!s)
		return;
	if (reset) {
		int gone;

		pthread_mutex_lock(&s->d->drv->lock);
		gone = s->d->gone;
		pthread_mutex_unlock(&s->d->drv->lock);
		if (!gone)
			usb_power_off(s->d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS);
	}
	usb_slot_release(s);
}

const struct ssc_driver_ops ssc_driver_usb_ccid = {
	.name = "usb-ccid",
	.open = usb_open,
	.close = usb_close,
	.list = usb_list,
	.wait_change = usb_wait_change,
	.wake = usb_wake,
	.connect = usb_connect,
	.transmit = usb_transmit,
	.reconnect = usb_reconnect,
	.disconnect = usb_disconnect,
};
