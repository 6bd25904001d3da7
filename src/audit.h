/*
 * This file contains the audit writer: a bounded queue and one thread that appends the daemon's
 * audit rows (one per API call, from src/rpc.c) to the journal, so that the event loop never
 * waits for SQLite. Rows keep their order. A row that cannot be written (no journal, a full
 * queue, a failing append) is dropped and counted, never retried and never allowed to block a
 * reply.
 *
 * Refusals for a limit (row->limit set) are summed up so that a flood cannot flood the journal:
 * one row per client (the peer's uid, pid and executable, and the row's own detail, which names
 * a browser page's origin), limit and second of the wall clock, written when that second is
 * over, with the time of the first refusal and in its detail the limit and the count:
 * {"limit":"max_inflight_per_client","refused":N} (merged into the rows' own detail object). Its
 * method and reader are those of the refusals, or "(several)" and "" when they differed. Such a
 * row follows rows of calls made after its first refusal (by at most about a second).
 */
#ifndef SSC_AUDIT_H
#define SSC_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "sscard/error.h"

struct audit;

/* What happened to the rows so far (audit_stats). */
struct audit_stats {
	uint64_t written;        /* appended to the journal */
	uint64_t dropped;        /* not written: no journal, queue full, or the append failed */
	size_t queued;           /* waiting now (sums of refusals included) */
	uint64_t summed;         /* refusals added to a sum written (or to be written) as one row */
};

/*
 * Creates the writer and starts its thread. max_queued (>= 1) bounds the rows waiting; beyond it
 * audit_submit() drops. batch_ms (>= 0): a row waits up to this long for others to join it, and
 * the rows that gathered are written in one transaction (at most 64; a full batch goes at once;
 * 0: every row is written as soon as the thread takes it). Each row keeps the time it was
 * submitted. The journal starts unset (rows are dropped until audit_set_journal()).
 * Returns 0 and *out, or SSC_ENOMEM / SSC_EINTERNAL (no thread).
 */
int audit_new(size_t max_queued, int batch_ms, struct audit **out);

/*
 * Sets the journal the thread appends to (borrowed: it must stay valid until audit_free() or the
 * next audit_set_journal() has returned), or NULL while there is none: rows still queued and
 * rows submitted meanwhile are dropped. Any thread; waits for a row being written to finish.
 */
void audit_set_journal(struct audit *a, struct journal *j);

/*
 * Queues a copy of row (strings are copied, truncated to their column sizes; the peer is copied),
 * or with row->limit adds it to the sum of its client, limit and second (see above). Never blocks
 * beyond a mutex. Returns 0, or SSC_ELIMIT (queue full: rows and sums waiting count alike) /
 * SSC_EJOURNAL (no journal) / SSC_ENOMEM, and the row is dropped (and counted). Any thread.
 */
int audit_submit(struct audit *a, const struct journal_audit *row);

/*
 * How long the writer has been in its current append (ms), 0 when it is not appending: the
 * watchdog's sign of a writer stuck in the journal (issue 19). Any thread.
 */
int64_t audit_busy_ms(struct audit *a);

/* The counters. Any thread. */
void audit_stats(struct audit *a, struct audit_stats *out);

/*
 * Stops the writer after it has written the rows already queued (while a journal is set, without
 * waiting out batch_ms), waiting
 * at most wait_ms for them; rows left after that are dropped. Joins the thread, stores the final
 * counters in *last (may be NULL) and frees a. NULL is a no-op. Blocks up to about wait_ms plus
 * one append.
 */
void audit_free(struct audit *a, int wait_ms, struct audit_stats *last);

#endif
