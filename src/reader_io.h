/*
 * This file contains the reader core's one door to the drivers for a card (the way pcsc-lite's
 * ifdwrapper.c is): the card lock, the connection (opened with the configured exclusive-access
 * retry, re-established after a failure, closed with or without a reset), and the choke point
 * through which every APDU of every card and PSAM passes: the deadline, the length checks both
 * ways, the masked trace, the APDU counter, and the mapping of a vanished card. Private to the
 * core (src/readers_int.h).
 */
#ifndef SSC_READER_IO_H
#define SSC_READER_IO_H

#include "readers_int.h"

/* Takes the card lock of r, waiting until deadline at most. Returns 0 or SSC_ETIMEDOUT. */
int reader_io_lock(struct reader *r, int64_t deadline);

/*
 * Makes sure r has a connection to the card it holds now (card_lock held): reuses an open one,
 * re-establishes a broken one, opens a new one with the configured exclusive-access retry.
 * Returns 0, or the driver's error (SSC_ENOCARD, SSC_EREADERBUSY, SSC_ETIMEDOUT, SSC_EREADER...).
 */
int reader_io_connect(struct reader *r, int64_t deadline);

/*
 * Closes the connection of r, resetting the card when reset != 0 (card_lock held, or r unshared;
 * never rd->lock). The read-ahead's data goes with it (it was good for that connection only).
 */
void reader_io_drop(struct reader *r, int reset);

/* Wipes and frees the read-ahead's data of r, if any (rd->lock held). */
void reader_io_forget_locked(struct reader *r);

/*
 * Sets io up over r's connection (card_lock held): its transmit() is the choke point, its deadline
 * deadline. Every APDU sent through it: SSC_EINVAL for a command shorter than a header or longer
 * than SSC_CMD_APDU_MAX, or an answer buffer without room for SW1 SW2 (the driver is not called);
 * SSC_ECARDREMOVED on a connection already broken; SSC_ETIMEDOUT once the deadline passed (never
 * started late: PC/SC could not stop it); SSC_EPROTO when the driver claims an answer shorter than
 * two bytes or longer than the buffer; the driver's error otherwise, a vanished card marking the
 * connection broken and forgetting the insertion's memory.
 */
void reader_io_init(struct reader *r, struct card_io *io, int64_t deadline);

#endif
