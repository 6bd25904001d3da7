/*
 * This file contains what the USB CCID driver's files share (drivers/usb-ccid/usb*.c): its limits,
 * the driver instance, the devices it serves and what it knows of each slot's card. Nothing here
 * is seen outside the driver; the core knows it only as include/sscard/driver.h's ops table.
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
#ifndef SSC_USB_H
#define SSC_USB_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "usb_lib.h"

#include "atr.h"
#include "ccid.h"
#include "sscard/driver.h"
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

/* One CCID interface we serve: a reader of one or more slots. */
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
	int leaked;                     /* a transfer would not end: the device is never freed */
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

/* The driver instance (opaque to the core). */
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

/* A connection to the card in one slot (opaque to the core). */
struct ssc_slot {
	struct usb_dev *d;
	unsigned idx;
	unsigned gen;                   /* the slot's gen when we activated the card */
};

/* The monotonic clock in milliseconds: every deadline of the driver is on it. */
static inline int64_t usb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms on the monotonic clock as a timespec, for the timed waits. */
static inline void usb_abs_time(struct timespec *ts, int64_t ms)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

#endif
