/*
 * This file contains the lifetimes in the reader core (as pcsc-lite's readerfactory.c keeps its
 * reader table): a reader's creation, references (the table, its worker, PSAM borrowers) and end;
 * the core's threads, counted so that readers_free() can wait for them; and the end of the core
 * itself, by readers_free() or by the last thread it had to leave behind. Private to the core
 * (src/readers_int.h).
 */
#ifndef SSC_READER_TABLE_H
#define SSC_READER_TABLE_H

#include "readers_int.h"

/*
 * A new reader for driver m's desc d, with role (from the configuration), not yet in the table,
 * holding two references (the table's and its worker's). Returns NULL when out of memory (logged).
 */
struct reader *reader_table_reader_new(struct rd_monitor *m, const struct ssc_reader_desc *d,
				       enum reader_role role);

/* Frees r, closing its connection with a reset (its last reference is gone). */
void reader_table_reader_free(struct reader *r);

/* Drops a reference to r (rd->lock not held); the last one frees it. */
void reader_table_unref(struct reader *r);

/* The reader with id in the table, or NULL (rd->lock held). */
struct reader *reader_table_find_locked(struct readers *rd, const char *id);

/* Starts a detached core thread (rd->lock held) and counts it. Returns 0 or SSC_ENOMEM. */
int reader_table_spawn_locked(struct readers *rd, void *(*fn)(void *), void *arg);

/* A core thread ends. The last one after readers_free() gave up on it frees rd. */
void reader_table_thread_exit(struct readers *rd);

/* Frees the core: the readers left, the drivers, the events not taken, the locks. */
void reader_table_destroy(struct readers *rd);

#endif
