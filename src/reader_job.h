/*
 * This file contains a job's life in the reader core: its states (queued on a reader, running on
 * its worker, finished), the two references that keep it (the deadline timer on the loop and the
 * worker side), its deadline, its hand-over to the loop and the one done() call, and what the
 * reader's busy flags say while it runs or overruns. Private to the core (src/readers_int.h).
 *
 * States: QUEUED -> RUNNING -> FINISHED on the worker; QUEUED -> FINISHED without running when
 * its deadline passes, its owner leaves, its reader goes or the core stops. A RUNNING job whose
 * deadline passes is answered SSC_ETIMEDOUT at once and marks its reader overrun (busy) until the
 * worker finishes it.
 */
#ifndef SSC_READER_JOB_H
#define SSC_READER_JOB_H

#include "readers_int.h"

/*
 * The core's side of job, to run within timeout_ms from now on rd, with both references; not yet
 * queued (QUEUED once the caller pushed it on a reader's queue and set core->r). Loop thread.
 * Returns NULL when out of memory.
 */
struct job_core *reader_job_new(struct readers *rd, struct job *job, int timeout_ms);

/*
 * Arms the deadline timer of a job just queued and keeps it in rd->jobs (the loop's list of jobs
 * whose timer is open). Loop thread, after rd->lock was let go.
 */
void reader_job_arm(struct job_core *core);

/* Drops a reference; the last one frees the core and calls job->release(). Any thread. */
void reader_job_unref(struct job_core *core);

/* Takes the next job in turn out of r's queue (rd->lock held); still QUEUED. NULL: none waits. */
struct job_core *reader_job_pop_locked(struct reader *r);

/*
 * A job that the worker took out of r's queue (rd->lock held) with less than READERS_START_MIN_MS
 * of its deadline left (the loop's timer, which ends a job that waits too long, can be late under
 * load) is not started: it ends as SSC_ETIMEDOUT with job->never_started and the "waited its whole
 * deadline without starting" message, as the timer would have ended it, instead of running on the
 * card past its deadline. Returns 1 when it did (post the job), 0 when the job may run.
 */
#define READERS_START_MIN_MS 5
int reader_job_decline_locked(struct reader *r, struct job_core *core);

/* QUEUED -> RUNNING on r's worker, which is idle (rd->lock held): r is busy. */
void reader_job_run_locked(struct reader *r, struct job_core *core);

/*
 * -> FINISHED with err (rd->lock held): a RUNNING job's reader is idle again (an overrun logged as
 * over); a QUEUED one leaves its queue (if it is still in it) without running.
 */
void reader_job_end_locked(struct job_core *core, int err);

/*
 * Hands a FINISHED job to the loop (rd->lock held). The worker side's reference is dropped here,
 * before the loop can see the job, so that in normal operation release() always runs on the loop
 * (the timer's reference is the last). Returns 1 when the loop is gone: the caller must then call
 * reader_job_unref() itself after unlocking (release() then runs on the worker thread).
 */
int reader_job_post_locked(struct readers *rd, struct job_core *core);

/* Loop thread: the job is FINISHED and handed over. Calls done() if not yet, closes the timer. */
void reader_job_complete(struct job_core *core);

/* Loop thread: closes the job's timer once (its reference goes when the handle is closed). */
void reader_job_close_timer(struct job_core *core);

/*
 * The error of a job that needs a card of the kind need in a reader whose card is of the other
 * kind: a user-card job on a PSAM's reader is SSC_ENOTSSC (a card is there, and it is not a social
 * security card: "no card" would send the clerk looking for one), a PSAM job on another card's
 * reader SSC_ENOPSAM. Sets diag; returns the error.
 */
int reader_job_wrong_role(const char *id, enum reader_role need, struct ssc_diag *diag);

/*
 * Whether job may run on r as far as r's lease goes (rd->lock held): 0 when r is not leased and
 * the job belongs to no lease, or it belongs to r's lease. SSC_EREADERLEASED when r is leased to
 * another (job->lease_left_ms the time left); SSC_ECARDREMOVED when the job's lease is not r's
 * (any more): its card left, or it ended. Sets job->diag. A lease past its time or of a card that
 * left counts as none.
 */
int reader_job_lease_check_locked(const struct reader *r, struct job *job);

/* The lease of r, when one is valid now (rd->lock held); else 0. */
uint64_t reader_lease_locked(const struct reader *r);

#endif
