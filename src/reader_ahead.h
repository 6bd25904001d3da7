/*
 * This file contains the reader core's read-ahead (src/readers.h, struct readers_ahead): a user
 * card read as soon as it is known to be one, before its card.ready, and the data kept for the
 * jobs of that insertion while the worker holds the card's connection, and past the hold over the
 * same connection shared with other programs (reader_ahead_watch(), [card] prefetch_shared).
 * Before a job gets the data the driver confirms, without an APDU, that the card was neither
 * removed nor reset since (ssc_driver_ops.status: pcscd's mark on the connection's own handle and
 * its event counter). A connection closed, broken or reset by another program, a removal, a job
 * that failed or may have changed the card: the data is wiped (reader_io_drop() and reader_io_forget_locked() do it
 * where the connection or the card goes). Private to the core (src/readers_int.h).
 */
#ifndef SSC_READER_AHEAD_H
#define SSC_READER_AHEAD_H

#include "readers_int.h"

/*
 * Whether r reads its user cards ahead: a read-ahead was given, [card] prefetch is on, cards are
 * held between operations (card_hold_ms > 0) and r's driver can confirm a card untouched
 * (status()). Any thread; reads the configuration only.
 */
int reader_ahead_enabled(const struct reader *r);

/*
 * Reads ahead the user card of generation gen over r's open connection (card_lock held), unless a
 * lease holds r. Keeps the data and the connection (held for card_hold_ms, as after a job) when
 * the read succeeded and the card is still generation gen; otherwise wipes what was read and
 * closes the connection (with a reset if the read left a security state). A read that left a
 * security state (read authorisation) resets the card over the same connection, which stays
 * exclusive.
 */
void reader_ahead_read(struct reader *r, unsigned gen);

/*
 * A PSAM became ready (rd->lock held): every user card whose read-ahead kept nothing for want of
 * one (SSC_ENOPSAM: read authorisation with no PSAM yet, as when the daemon starts with both cards
 * in their readers and the user card's probe ends first) is read ahead again by its worker
 * (r->ahead_again), without another card.ready.
 */
void reader_ahead_again_locked(struct readers *rd);

/*
 * When the hold of r's user card ends (card_lock held, no job running): keeps the connection open
 * but shared with other programs (the driver's share()), so that the read-ahead's data outlives
 * the hold for the whole insertion, while the handle still sees a removal or a reset by anyone
 * (reader_io_connect() checks it with status() before it claims the card back). Returns 1 when
 * it did; 0 when there is no data of this card to keep, the driver cannot share, or the card is
 * not confirmed untouched (then the caller closes the connection, and the data goes with it).
 */
int reader_ahead_watch(struct reader *r);

/*
 * For a job about to run on the card of generation gen (card_lock held, connected): takes the
 * read-ahead's data if there is one and the driver confirms the card untouched since; returns it
 * (the caller gives it back with reader_ahead_put()) or NULL. Data that cannot be confirmed is
 * wiped; a card found removed or reset marks the connection broken and opens it again (as the
 * job would), so that the job reads whatever card is there now. Returns SSC_E* through *err only
 * when that new connection fails (then the job cannot run).
 */
void *reader_ahead_take(struct reader *r, unsigned gen, int64_t deadline, int *err);

/*
 * After the job (card_lock held): gives the data back for the jobs that follow when keep != 0
 * (the job succeeded and only read) and the connection it was read over is still open, sound and
 * held for card gen; wipes it otherwise. kept NULL is a no-op.
 */
void reader_ahead_put(struct reader *r, void *kept, unsigned gen, int keep);

#endif
