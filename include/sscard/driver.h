/*
 * This file contains the reader-driver contract: a driver (pcsc, usb-ccid) is a const table of
 * function pointers, each with its contract below. Several drivers are registered at once: the
 * daemon hands the reader core the table of those it runs (struct readers_setup). The core's
 * src/reader_io.c is the one choke point that calls them for a card: it applies deadlines, the
 * per-reader lock, the masked APDU log and the length checks, so a driver does none of that itself.
 *
 * Threads: one monitor thread per driver calls list/wait_change; one worker thread per reader calls
 * connect/transmit/reconnect/disconnect for that reader; wake may be called from any thread.
 */
#ifndef SSCARD_DRIVER_H
#define SSCARD_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#define SSC_ATR_MAX 33           /* ISO 7816-3 maximum ATR length */
#define SSC_CMD_APDU_MAX 261     /* short APDU: 4 header + 1 Lc + 255 data + 1 Le */
#define SSC_RESP_APDU_MAX 258    /* short APDU: 256 data + SW1 SW2 */
#define SSC_READER_ID_MAX 64
#define SSC_READER_NAME_MAX 128
#define SSC_READER_SERIAL_MAX 64

struct ssc_driver;               /* a driver instance; opaque to the core */
struct ssc_slot;                 /* an open connection to the card in one reader; opaque */

/* What a driver reports about one reader (one slot of a multi-slot device is one reader). */
struct ssc_reader_desc {
	/* Stable id: "<driver>-<slug>", [a-z0-9._-] only, derived from the reader name (PC/SC) or
	 * the USB port path and slot (usb-ccid), so it survives pcscd restarts and replugs. */
	char id[SSC_READER_ID_MAX];
	char name[SSC_READER_NAME_MAX];       /* human name, as the subsystem names it */
	char serial[SSC_READER_SERIAL_MAX];   /* reader serial where known, else "" */
	int card_present;                     /* 1 when a card is in the slot */
	uint8_t atr[SSC_ATR_MAX];             /* ATR when present and known */
	size_t atr_len;                       /* 0 when unknown */
};

/* Settings a driver may read; unset strings are NULL. Borrowed for the call to open(). */
struct ssc_driver_config {
	const char *usb_allow;       /* usb-ccid: extra "VID:PID,VID:PID" to claim besides class 0x0B */
	int poll_interval_ms;        /* reader/card polling where no event source exists (default 500) */
	int connect_retry_ms;        /* how long connect() retries a sharing violation (default 2000) */
};

struct ssc_driver_ops {
	/* Driver name, also the reader-id prefix ("pcsc", "usb-ccid"). */
	const char *name;

	/*
	 * Creates a driver instance. Called once, from the main thread, before any other op.
	 * Must succeed when the subsystem is absent (pcscd not running, no USB bus): the driver then
	 * reports no readers and keeps looking. May block for at most one second.
	 * Returns 0 and sets *out, or SSC_ENOMEM / SSC_EREADER / SSC_ECONFIG.
	 */
	int (*open)(const struct ssc_driver_config *cfg, struct ssc_driver **out);

	/* Frees the instance. Every slot must have been disconnected. Main thread. NULL is a no-op. */
	void (*close)(struct ssc_driver *drv);

	/*
	 * Writes a snapshot of the readers (at most max) into out. Monitor thread only. Does not block
	 * for more than about one second. Returns the number written, or SSC_EREADER when the
	 * subsystem is unreachable (the core then treats every reader of this driver as gone and
	 * retries later).
	 */
	int (*list)(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max);

	/*
	 * Blocks until a reader or card may have come or gone, until timeout_ms passes, or until
	 * wake() is called. Monitor thread only. Returns 1 (something may have changed: call list),
	 * 0 (timeout or woken), or SSC_EREADER (subsystem gone; the core sleeps and retries).
	 */
	int (*wait_change)(struct ssc_driver *drv, int timeout_ms);

	/* Makes a blocked or the next wait_change return at once. Any thread; never blocks. */
	void (*wake)(struct ssc_driver *drv);

	/*
	 * Opens the card in reader reader_id for exclusive use, retrying a sharing violation (another
	 * program holds the card) for at most timeout_ms. Fills atr/atr_len (atr has SSC_ATR_MAX
	 * bytes). That reader's worker thread only.
	 * Returns 0 and *out, or SSC_ENOCARD, SSC_ENOREADER, SSC_EREADERBUSY (still shared at the
	 * deadline), SSC_ETIMEDOUT, SSC_EREADER.
	 */
	int (*connect)(struct ssc_driver *drv, const char *reader_id, int timeout_ms,
		       struct ssc_slot **out, uint8_t *atr, size_t *atr_len);

	/*
	 * Sends one command APDU and receives the whole answer (data and SW1 SW2) into resp
	 * (resp_cap bytes). The driver honours timeout_ms where its transport allows (USB); where it
	 * cannot (PC/SC has no transmit timeout), the core bounds the caller's wait from outside and
	 * this call may block until the transport returns. Worker thread of that reader only.
	 * Returns the response length (>= 2), or SSC_ECARDREMOVED (card gone or reset underneath),
	 * SSC_ENOCARD, SSC_ETIMEDOUT, SSC_EREADER, SSC_EPROTO (an answer shorter than two bytes or
	 * longer than resp_cap).
	 */
	int (*transmit)(struct ssc_slot *slot, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			size_t resp_cap, int timeout_ms);

	/*
	 * Re-establishes a connection whose card was removed and reinserted or reset (the handle
	 * answered SSC_ECARDREMOVED), resetting the card. Fills the new ATR. Worker thread only.
	 * Returns 0, SSC_ENOCARD, or SSC_EREADER.
	 */
	int (*reconnect)(struct ssc_slot *slot, uint8_t *atr, size_t *atr_len);

	/*
	 * Closes the connection; reset != 0 resets the card so that no security state (PIN verified,
	 * external authentication) outlives the operation. Never blocks for more than about one
	 * second. Worker thread only. NULL is a no-op.
	 */
	void (*disconnect)(struct ssc_slot *slot, int reset);

	/*
	 * Optional (NULL: the driver cannot tell). Whether the card of this open connection is still
	 * the one it was opened to, untouched by anyone else: no removal and no reset since connect()
	 * (or the last reconnect()), as the subsystem's presence detection knows it, without an APDU.
	 * Returns 0 and *insertions, the subsystem's count of insertions and removals in that reader
	 * (it moves with each; pcscd's event counter; compared by the caller between two calls on
	 * the same connection only; usb-ccid: the slot's count of changes, which its slot-change
	 * notifications move); SSC_ECARDREMOVED (removed or reset since); SSC_EREADER (the
	 * subsystem or the connection is gone). Fast (one round trip to the subsystem at most).
	 * Worker thread of that reader only.
	 */
	int (*status)(struct ssc_slot *slot, uint32_t *insertions);

	/*
	 * Optional, with claim() (NULL: the core closes the connection when it lets the card go).
	 * Lets other programs use the card while this connection stays open to watch it, without a
	 * reset: a removal, and a reset by anyone, show on status() from then on. PC/SC: the handle
	 * becomes shared (another program can connect shared, not exclusive); usb-ccid: nothing to
	 * do (the reader is this process's alone). Returns 0, or an error (the caller disconnects).
	 * Worker thread of that reader only.
	 */
	int (*share)(struct ssc_slot *slot);

	/*
	 * Makes a connection that share() opened to others exclusive again, without a reset,
	 * retrying a sharing violation for at most timeout_ms. Returns 0, SSC_EREADERBUSY (still
	 * shared at the deadline), SSC_ECARDREMOVED, SSC_EREADER. Worker thread of that reader only.
	 */
	int (*claim)(struct ssc_slot *slot, int timeout_ms);
};

/* The built-in drivers. */
extern const struct ssc_driver_ops ssc_driver_pcsc;
extern const struct ssc_driver_ops ssc_driver_usb_ccid;

#endif
