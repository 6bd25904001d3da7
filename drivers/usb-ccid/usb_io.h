/*
 * This file contains the interface of usb_io.c: the USB CCID driver's transfers on one device.
 * Each command takes the device's io mutex for itself; callers must not hold drv->lock.
 */
#ifndef SSC_USB_IO_H
#define SSC_USB_IO_H

#include "usb.h"

/* One command/response pair. */
struct usb_io_cmd {
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

/* Maps a libusb result to the error vocabulary (the one place that knows LIBUSB_*). */
int usb_io_map(int r);

/*
 * Sends one command to slot idx and waits for its reply, honouring time extensions until
 * c->deadline; first reads off late replies of commands given up on (aborting one the reader
 * still runs). May block until c->deadline. Returns 0 (c->out filled), the mapped CCID failure
 * (c->failed set), or SSC_ETIMEDOUT, SSC_EREADER (device gone or failing), SSC_EREADERBUSY
 * (try_lock and busy), SSC_EPROTO (malformed, oversized or out-of-sequence reply), SSC_EINVAL
 * (the message does not fit the reader).
 */
int usb_io_cmd(struct usb_dev *d, unsigned idx, struct usb_io_cmd *c);

/*
 * Sets *c up for a command of type, answered by a message of type expect, within deadline: no
 * data, no answer wanted, the reader's own wait for a reply (USB_REPLY_MIN_MS). The caller adds
 * what its command needs.
 */
void usb_io_cmd_init(struct usb_io_cmd *c, uint8_t type, uint8_t expect, int64_t deadline);

/*
 * GetSlotStatus; its bmICCStatus goes to the slot's state (and to *icc when icc is not NULL).
 * Two left unanswered in a row take the device out of service until it is plugged in again.
 * Returns 0 or as usb_io_cmd().
 */
int usb_io_slot_status(struct usb_dev *d, unsigned idx, int64_t deadline, int try_lock,
		       uint8_t *icc);

/* IccPowerOff: the card's security state goes with its power. The slot is no longer powered. */
void usb_io_power_off(struct usb_dev *d, unsigned idx, int64_t deadline);

/* One XfrBlock and its answer (PC_to_RDR_XfrBlock, RDR_to_PC_DataBlock). */
struct usb_io_block {
	const uint8_t *data;            /* to the card: len bytes (NULL when len is 0) */
	size_t len;
	uint8_t bwi;                    /* bBWI: extends the reader's block waiting time (T=1 WTX) */
	uint16_t level;                 /* wLevelParameter (chaining at the extended APDU level) */
	uint8_t *out;                   /* the answer's data, out_cap bytes at most */
	size_t out_cap;
	uint8_t chain;                  /* set: the reply's bChainParameter */
	int ccid_error;                 /* set: its bError when the reader failed it, else -1 */
};

/*
 * Sends the XfrBlock b to slot idx and receives its answer into b->out, within deadline.
 * Returns the answer's length, SSC_ECARDREMOVED (the card is no longer active: reset or
 * replaced under us), or as usb_io_cmd(); b->chain and b->ccid_error are set in every case.
 */
int usb_io_xfr(struct usb_dev *d, unsigned idx, struct usb_io_block *b, int64_t deadline);

/*
 * Starts the standing transfer on d's interrupt endpoint, if it has one, while d is being opened
 * (not yet in the device set). Its callback, run by whichever thread handles libusb events,
 * applies NotifySlotChange and HardwareError to the slots' state and submits the transfer again
 * until the device is closing or gone. Without it (none, or it stops) slot changes are polled:
 * d->intr_broken.
 */
void usb_io_intr_start(struct usb_dev *d);

#endif
