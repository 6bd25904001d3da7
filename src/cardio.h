/*
 * This file contains the card-side transport the card application layer runs on: one open
 * connection to one card, as a reader worker hands it to an operation. transmit() goes through the
 * core's choke point (deadline, masked APDU log, length checks); the layer above never sees a
 * driver.
 */
#ifndef SSC_CARDIO_H
#define SSC_CARDIO_H

#include <stddef.h>
#include <stdint.h>

#include "sscard/driver.h"

/*
 * A card's algorithm, as its FCI announces it (spec §12.1): the card application's, and the reader
 * core's word for what a PSAM speaks.
 */
enum ssc_alg { SSC_ALG_NONE = 0, SSC_ALG_DES = 1, SSC_ALG_SM4 = 3 };

/* Flags for card_io.transmit. */
#define CARDIO_SECRET 0x1   /* the command body is secret (PIN, PIN block): never log it */
#define CARDIO_PERSONAL 0x2 /* the answer may hold personal data: log only its length and SW */

struct card_io {
	/*
	 * Sends one command APDU, returns the answer length (>= 2, data then SW1 SW2) or an SSC_E*
	 * code (SSC_ETIMEDOUT once the operation's deadline has passed, SSC_ECARDREMOVED, ...).
	 * Called from the reader's worker thread only.
	 */
	int (*transmit)(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			size_t resp_cap, unsigned flags);
	void *ctx;                         /* the core's connection state; opaque here */
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len;
	char reader_id[SSC_READER_ID_MAX];
	char reader_serial[SSC_READER_SERIAL_MAX];
	int64_t deadline_ms;               /* CLOCK_MONOTONIC milliseconds; the op ends there */
	unsigned le_retries;               /* apdu_exchange(): commands re-sent after a 6Cxx */
	/*
	 * The read-ahead's data of this insertion (src/readers.h, struct readers_ahead), confirmed by
	 * the core to belong to the card connected now; NULL: none. The card application's own
	 * (opaque to the core); borrowed for the job.
	 */
	const void *ahead;
};

/* CLOCK_MONOTONIC now, in milliseconds. */
int64_t cardio_now_ms(void);

#endif
