/*
 * This file contains the journal benchmark: how many audit rows (WAL, synchronous=NORMAL) and how
 * many write intents with their outcomes (synchronous=FULL, fsync before each returns) the
 * journal of src/journal.h appends per second on the disk that holds the given directory, with
 * the durability the design promises. A fresh database in a temporary directory each run.
 */
#ifndef BENCH_JOURNAL_H
#define BENCH_JOURNAL_H

struct bench_journal_opts {
	const char *dir;        /* where the temporary database goes (its filesystem is measured) */
	int audit_rows;         /* audit rows to append */
	int intents;            /* intent + outcome pairs to append */
};

/*
 * Prints "journal_audit rows=.. seconds=.. rows_per_s=.." with the latency stats of one append,
 * and the same for "journal_intent" (an intent and its outcome, two durable appends).
 * Returns 0, or 1 after printing why it failed.
 */
int bench_journal_run(const struct bench_journal_opts *o);

#endif
