/*
 * This file contains the worker thread of one reader (as pcsc-lite serialises a reader's card
 * access): it probes each new card for its kind (with the probe the core was given) and posts
 * card.ready, runs the reader's jobs one at a time in turns across their owners, keeps a user
 * card connected between jobs for a while, and ends the jobs left when the reader goes or the
 * core stops. Private to the core (src/readers_int.h).
 */
#ifndef SSC_READER_WORKER_H
#define SSC_READER_WORKER_H

#include "readers_int.h"

/*
 * The worker of reader arg (a struct reader holding the worker's reference), started with
 * reader_table_spawn_locked(). Returns when the reader leaves the table or the core stops, after
 * ending the jobs still queued (SSC_ENOREADER, SSC_ESHUTDOWN) and closing the connection.
 */
void *reader_worker_main(void *arg);

#endif
