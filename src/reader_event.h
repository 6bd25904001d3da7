/*
 * This file contains what the reader core's threads post to the event loop: the events of readers
 * and cards, in the order they happened (card.ready among them, through one function), and the
 * wake-up that makes the loop take them and the finished jobs. Private to the core
 * (src/readers_int.h); the loop's side is in readers.c.
 */
#ifndef SSC_READER_EVENT_H
#define SSC_READER_EVENT_H

#include "readers_int.h"

/* Wakes the loop to take the events and finished jobs, once per batch (rd->lock held). */
void reader_event_notify_locked(struct readers *rd);

/* A snapshot of r as reader.list reports it (rd->lock held). */
void reader_event_info(const struct reader *r, struct reader_info *ri);

/*
 * Queues an event of r (rd->lock held); err is card.ready's error (0: none). Events keep their
 * order; none is dropped but for ENOMEM (logged), and none is posted once the core stops.
 */
void reader_event_post_err(struct readers *rd, const struct reader *r, const char *type, int err);

/* reader_event_post_err() without an error. */
void reader_event_post(struct readers *rd, const struct reader *r, const char *type);

/*
 * Posts card.ready for the card r holds now, once per insertion (rd->lock held): when its role is
 * known (err 0), or when it could not be found (err: why; the role is then what reader.list
 * shows, "unknown" for a probed reader). One more follows only when a card.ready with an error is
 * followed by a probe of the same card that finds its role. Every path that makes an insertion
 * usable ends here (today the probe, or the insertion itself on a reader configured "user"; a
 * read-ahead of the card would come between them and this), so that the event always comes
 * after what it announces.
 */
void reader_event_ready_locked(struct reader *r, int err);

/* Frees the events not yet taken (the core's end; no other thread left). */
void reader_event_free_all(struct readers *rd);

#endif
