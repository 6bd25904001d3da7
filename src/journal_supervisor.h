/*
 * This file contains the journal's supervision in the daemon: it opens the journal and keeps it in
 * service on the event loop. A failed append (on any thread) takes it out of service, a timer
 * reopens it (not on a full disk), the chain head goes to the log, retention runs daily off the
 * loop, and the audit writer (src/audit.h) appends the API's audit rows while the journal is up.
 * The handle, once opened, is never freed while the daemon runs: out of service it is suspended,
 * so a worker that took it a moment before still holds a valid handle (whose calls then fail
 * with SSC_EJOURNAL).
 */
#ifndef SSC_JOURNAL_SUPERVISOR_H
#define SSC_JOURNAL_SUPERVISOR_H

#include <stdint.h>
#include <uv.h>

#include "audit.h"
#include "config.h"
#include "journal.h"

/*
 * The journal's states as the supervisor keeps them. CLOSED (not tried yet) goes to UP or DOWN at
 * start; UP and DOWN alternate (a failure, a reopen); any of them goes to STOPPED at the orderly
 * stop, which is final.
 */
enum journal_state {
	JOURNAL_STATE_CLOSED,
	JOURNAL_STATE_UP,        /* in service: published to the operations, audit rows written */
	JOURNAL_STATE_DOWN,      /* out of service (suspended or never opened), retried by a timer */
	JOURNAL_STATE_STOPPED,   /* the daemon is stopping: no reopen, no retention */
};

/* What the daemon around the supervisor hears. Every hook is called on the loop thread but note. */
struct journal_supervisor_hooks {
	/*
	 * The journal came into service (j, status "ok") or went out of it (j NULL, status
	 * "unavailable: <why>"): publish it to the operations (writes refused while NULL), and show
	 * the status (system.info, the service manager). Required.
	 */
	void (*state)(void *arg, struct journal *j, const char *status);
	/* A reopen failed again: status ("unavailable: <why>") may have changed. Optional. */
	void (*retry)(void *arg, const char *status);
	/*
	 * Every note of the journal's observer (journal_set_observer), on the appending thread,
	 * before the supervisor acts on it: for counters, or to ship the row. Must not append.
	 * Optional.
	 */
	void (*note)(void *arg, const struct journal_note *n);
	void *arg;
};

struct journal_supervisor;

/*
 * Creates the supervisor on loop (cfg and hooks borrowed; both must outlive it): starts the audit
 * writer and the timers, and opens the journal at cfg->journal_path (creating its directory, one
 * level, 0750). A journal that cannot be opened is logged and retried every
 * cfg->journal_reopen_ms; hooks->state hears of it either way before this returns. Returns 0 and
 * *out, or SSC_ENOMEM / SSC_EINTERNAL (no audit writer: nothing is left behind). Loop thread.
 */
int journal_supervisor_new(uv_loop_t *loop, const struct config *cfg,
			   const struct journal_supervisor_hooks *hooks,
			   struct journal_supervisor **out);

/* The state now. Loop thread. */
enum journal_state journal_supervisor_state(const struct journal_supervisor *s);

/*
 * The journal while it is up, else NULL (borrowed: valid until journal_supervisor_free()). Loop
 * thread.
 */
struct journal *journal_supervisor_journal(const struct journal_supervisor *s);

/*
 * Queues an audit row for the writer (copied). Never blocks; a row that cannot be queued is
 * dropped and counted (logged later). Loop thread (an rpc_audit_fn's work).
 */
void journal_supervisor_audit(struct journal_supervisor *s, const struct journal_audit *row);

/* How long the audit writer has been in its current append (ms; 0 idle): the watchdog's question. */
int64_t journal_supervisor_busy_ms(struct journal_supervisor *s);

/* The audit writer's counters. Any thread. */
void journal_supervisor_stats(struct journal_supervisor *s, struct audit_stats *out);

/*
 * The orderly stop: no reopen, no retention any more; closes the supervisor's loop handles (the
 * loop must run their close callbacks before journal_supervisor_free()). Idempotent. Loop thread.
 */
void journal_supervisor_stop(struct journal_supervisor *s);

/*
 * After the loop has ended: writes the audit rows still queued (at most AUDIT_DRAIN_MS), logs the
 * final chain head, and closes the journal, unless in_use (a job or a worker may still hold the
 * handle: a worker stuck in a driver call): then it is kept, suspended, for the rest of the
 * process. Returns 1 when the journal was closed (or never opened), 0 when it was kept. Frees s.
 * NULL is a no-op (returns 1).
 */
int journal_supervisor_free(struct journal_supervisor *s, int in_use);

#endif
