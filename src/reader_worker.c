/*
 * This file contains the worker thread of one reader (src/reader_worker.h): probes, jobs, the held
 * card.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "invariant.h"
#include "log.h"
#include "reader_ahead.h"
#include "reader_event.h"
#include "reader_io.h"
#include "reader_job.h"
#include "reader_table.h"
#include "reader_worker.h"

#define READERS_PROBE_RETRIES 6      /* probes of one card that could not tell its kind, retried ... */
#define READERS_PROBE_BACKOFF_MS 200 /* ... after this, doubling (200 ms .. 6.4 s) */

/* rd->lock held. */
static int reader_needs_probe(const struct reader *r)
{
	return r->card_present && r->fixed_role != READER_ROLE_USER &&
	       (r->probed_gen != r->card_gen || r->reprobe);
}

/* Finds out whether the card inserted as generation gen is a PSAM (worker thread). */
static void reader_probe(struct reader *r, unsigned gen)
{
	struct readers *rd = r->rd;
	int64_t deadline = cardio_now_ms() + rd->cfg->op_timeout_ms;
	enum reader_role role = READER_ROLE_UNKNOWN;
	enum ssc_alg alg = SSC_ALG_NONE;
	char term[13] = "";
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len = 0;
	struct card_io io;
	int rc, ready_err = 0;

	rc = reader_io_lock(r, deadline);
	if (rc == 0) {
		rc = reader_io_connect(r, deadline);
		if (rc == 0) {
			/* The connection's ATR, for a card whose ATR the monitor has not seen yet. */
			if (r->slot_atr_len <= SSC_ATR_MAX) {
				atr_len = r->slot_atr_len;
				memcpy(atr, r->slot_atr, atr_len);
			}
			reader_io_init(r, &io, deadline);
			rc = rd->probe(&io, &alg, term);
			if (rc == 0) {
				role = READER_ROLE_PSAM;
			} else if (rc == SSC_EPSAMALGO) {
				role = READER_ROLE_PSAM;   /* a PSAM we cannot use: matches no card */
				alg = SSC_ALG_NONE;
			} else if (rc == SSC_ENOTFOUND) {
				role = READER_ROLE_USER;
			}
		}
		if (role == READER_ROLE_USER && reader_ahead_enabled(r))
			reader_ahead_read(r, gen);   /* before card.ready; keeps what it read */
		else if (role != READER_ROLE_PSAM)
			reader_io_drop(r, 0);   /* PSAMs stay connected between uses */
		pthread_mutex_unlock(&r->card_lock);
	}
	if (r->fixed_role == READER_ROLE_PSAM)
		role = READER_ROLE_PSAM;

	/*
	 * What card.ready says of a probe that could not tell: why. A PSAM with an algorithm we do
	 * not know (SSC_EPSAMALGO) and a card that is no PSAM (SSC_ENOTFOUND) are answers.
	 */
	if (rc < 0 && rc != SSC_EPSAMALGO && rc != SSC_ENOTFOUND)
		ready_err = rc;
	else if (NEVER(role == READER_ROLE_UNKNOWN))
		ready_err = SSC_EINTERNAL;   /* every other answer names a role */
	pthread_mutex_lock(&rd->lock);
	if (r->card_gen == gen) {
		if (r->atr_len == 0 && atr_len > 0) {
			memcpy(r->atr, atr, atr_len);
			r->atr_len = atr_len;
		}
		r->role = role;
		r->psam_alg = role == READER_ROLE_PSAM ? alg : SSC_ALG_NONE;
		snprintf(r->psam_term, sizeof(r->psam_term), "%s",
			 role == READER_ROLE_PSAM ? term : "");
		r->probed_gen = gen;
		/*
		 * A probe that could not tell (the card was still settling after a quick
		 * reinsertion, say) is tried again with a back-off: to the subsystem the card may
		 * never have left, so no insertion would ever trigger another probe.
		 */
		if (role == READER_ROLE_UNKNOWN && r->probe_failures < READERS_PROBE_RETRIES) {
			int64_t wait = (int64_t)READERS_PROBE_BACKOFF_MS << r->probe_failures;

			r->probe_failures++;
			r->probe_retry_ms = cardio_now_ms() + wait;
		} else {
			r->probe_retry_ms = 0;
			if (role != READER_ROLE_UNKNOWN)
				r->probe_failures = 0;
		}
		reader_event_ready_locked(r, ready_err);
		INVARIANT(r->ready_gen == r->card_gen);
		if (role == READER_ROLE_PSAM && alg != SSC_ALG_NONE)
			reader_ahead_again_locked(rd);
	}
	pthread_mutex_unlock(&rd->lock);

	if (role == READER_ROLE_UNKNOWN)
		log_warn("reader %s: could not tell the card's kind: %s", r->id, ssc_strerror(rc));
	else if (role == READER_ROLE_PSAM)
		log_info("reader %s: PSAM (%s), terminal %s", r->id,
			 alg == SSC_ALG_SM4 ? "sm4" : alg == SSC_ALG_DES ? "des" : "unsupported",
			 term[0] ? term : "?");
	else
		log_info("reader %s: user card", r->id);
}

/*
 * The read-ahead of a card in a reader configured "user" (not probed), then its card.ready
 * (worker thread). A card that cannot be opened is ready all the same, as it would have been
 * without the read-ahead: its jobs will say what is wrong.
 */
/* Connects to the card of generation gen and reads it ahead (worker thread). */
static void reader_ahead_connect_read(struct reader *r, unsigned gen)
{
	int64_t deadline = cardio_now_ms() + r->rd->cfg->op_timeout_ms;

	if (reader_io_lock(r, deadline) == 0) {
		if (reader_io_connect(r, deadline) == 0)
			reader_ahead_read(r, gen);
		pthread_mutex_unlock(&r->card_lock);
	}
}

static void reader_ahead_user(struct reader *r, unsigned gen)
{
	struct readers *rd = r->rd;

	reader_ahead_connect_read(r, gen);
	pthread_mutex_lock(&rd->lock);
	if (r->card_gen == gen)
		reader_event_ready_locked(r, 0);
	pthread_mutex_unlock(&rd->lock);
}

/*
 * After a job (card_lock held): a job of the reader's lease (leased) ends it; a job that succeeded
 * asking for one (job->lease, job->lease_ms) on a reader that was not leased, whose connection is
 * sound and whose card did not change, leases it: the card is held until the lease's end. Returns
 * 1 when the reader is leased now.
 */
static int reader_run_lease(struct reader *r, struct job *job, int leased, int rc, unsigned gen,
			    int reset)
{
	struct readers *rd = r->rd;
	int now_leased = 0;

	pthread_mutex_lock(&rd->lock);
	if (leased || (r->lease && !reader_lease_locked(r))) {
		r->lease = 0;   /* ended by its own job, or of a card that left, or past its time */
	}
	if (leased) {
		/* The lease ended with its job: nothing more. */
	} else if (rc == 0 && job->lease && job->lease_ms > 0 && !reset && !r->slot_broken &&
		   r->slot && r->card_gen == gen && r->card_present && !reader_lease_locked(r)) {
		r->lease = job->lease;
		r->lease_gen = gen;
		r->lease_until_ms = cardio_now_ms() + job->lease_ms;
		r->hold_until_ms = r->lease_until_ms;
		now_leased = 1;
	}
	pthread_mutex_unlock(&rd->lock);
	return now_leased;
}

/* Runs one job on the card in r (worker thread). Returns the job's result. */
static int reader_run_job(struct reader *r, struct job_core *core)
{
	struct readers *rd = r->rd;
	struct job *job = core->job;
	enum reader_role need = job->need_role == READER_ROLE_PSAM ? READER_ROLE_PSAM
								 : READER_ROLE_USER;
	enum reader_role role;
	struct card_io io;
	unsigned gen, flags;
	void *kept;
	int present, reset = 0, leased, rc;

	if (rd_ms_until(core->deadline_ms) <= 0)
		return SSC_ETIMEDOUT;
	if (reader_io_lock(r, core->deadline_ms) != 0)
		return ssc_diag_set(&job->diag, SSC_ETIMEDOUT,
				    "the card in reader %s stayed in use until the deadline", r->id);

	pthread_mutex_lock(&rd->lock);
	present = r->card_present;
	role = r->role;
	gen = r->card_gen;
	/* Leased since the job was queued (or the job's lease gone): not this job's turn. */
	rc = present ? reader_job_lease_check_locked(r, job) : 0;
	leased = rc == 0 && job->lease != 0;
	pthread_mutex_unlock(&rd->lock);

	if (rc != 0)
		goto out_unlock;
	if (!present) {
		rc = ssc_diag_set(&job->diag, SSC_ENOCARD, "no card in reader %s", r->id);
		goto out_unlock;
	}
	if ((need == READER_ROLE_USER && role == READER_ROLE_PSAM) ||
	    (need == READER_ROLE_PSAM && role != READER_ROLE_PSAM)) {
		rc = reader_job_wrong_role(r->id, need, &job->diag);
		goto out_unlock;
	}
	rc = reader_io_connect(r, core->deadline_ms);
	if (rc != 0) {
		ssc_diag_set(&job->diag, rc, "cannot open the card in reader %s: %s", r->id,
			     ssc_strerror(rc));
		goto out_unlock;
	}
	/* The read-ahead's data, if the card is confirmed untouched since; gone before a write. */
	kept = reader_ahead_take(r, gen, core->deadline_ms, &rc);
	if (rc != 0) {
		ssc_diag_set(&job->diag, rc, "cannot open the card in reader %s: %s", r->id,
			     ssc_strerror(rc));
		goto out_unlock;
	}
	if (kept && !job->ahead_keep) {
		reader_ahead_put(r, kept, gen, 0);
		kept = NULL;
	}
	if (r->flags_gen != gen) {
		r->flags_gen = gen;
		r->insertion_flags = 0;
	}
	flags = r->insertion_flags;
	reader_io_init(r, &io, core->deadline_ms);
	io.ahead = kept;
	rc = job->run(job, &io, &flags, &reset);
	if (!r->slot_broken && r->flags_gen == gen)
		r->insertion_flags = flags;
	/*
	 * A PSAM stays connected. A user card is released with a reset when the job left a security
	 * state, at once when its connection broke, and otherwise, after a job that succeeded,
	 * kept (still exclusive) for card_hold_ms, so that the next operation on it needs no new
	 * connection; the worker releases it when that time passes with nothing to do. After a
	 * failure the connection is not trusted: a driver may have given up on it.
	 */
	r->hold_until_ms = 0;
	if (reader_run_lease(r, job, leased, rc, gen, reset)) {
		/* Leased now: held, unreset, until the lease's end (the worker drops it then). */
	} else if (reset || r->slot_broken || leased) {
		/* A lease that ended: its card is reset, so that nothing of the session is left. */
		reader_io_drop(r, reset || leased);
	} else if (role != READER_ROLE_PSAM && r->slot && rc == 0 && rd->cfg->card_hold_ms > 0) {
		r->hold_until_ms = cardio_now_ms() + rd->cfg->card_hold_ms;
	} else if (role != READER_ROLE_PSAM) {
		reader_io_drop(r, 0);
	}
	/* Kept for the next job only after a job that succeeded and only read. */
	reader_ahead_put(r, kept, gen, rc == 0 && job->ahead_keep);
	leased = 0;   /* disposed of above */
out_unlock:
	if (leased) {
		/* A job of the lease that could not run (no connection) ends it all the same. */
		r->hold_until_ms = 0;
		reader_run_lease(r, job, 1, rc, gen, 1);
		reader_io_drop(r, 1);
	}
	pthread_mutex_unlock(&r->card_lock);
	return rc;
}

void *reader_worker_main(void *arg)
{
	struct reader *r = arg;
	struct readers *rd = r->rd;
	struct job_core *drained = NULL;

	pthread_mutex_lock(&rd->lock);
	for (;;) {
		struct job_core *core;
		int rc;

		if (r->stop || rd->stopping)
			break;
		if (reader_needs_probe(r)) {
			unsigned gen = r->card_gen;

			r->reprobe = 0;
			pthread_mutex_unlock(&rd->lock);
			reader_probe(r, gen);
			pthread_mutex_lock(&rd->lock);
			continue;
		}
		if (r->card_present && r->fixed_role == READER_ROLE_USER && r->atr_len > 0 &&
		    r->ahead_done_gen != r->card_gen && reader_ahead_enabled(r)) {
			unsigned gen = r->card_gen;

			r->ahead_done_gen = gen;
			pthread_mutex_unlock(&rd->lock);
			reader_ahead_user(r, gen);
			pthread_mutex_lock(&rd->lock);
			continue;
		}
		if (r->ahead_again) {
			unsigned gen = r->card_gen;

			r->ahead_again = 0;
			if (r->card_present && !r->ahead && r->ahead_err_gen == gen &&
			    reader_ahead_enabled(r)) {
				/* A PSAM came since the read-ahead found none: read it again. */
				pthread_mutex_unlock(&rd->lock);
				reader_ahead_connect_read(r, gen);
				pthread_mutex_lock(&rd->lock);
			}
			continue;
		}
		if (r->probe_retry_ms && r->card_present && cardio_now_ms() >= r->probe_retry_ms) {
			r->probe_retry_ms = 0;
			r->reprobe = 1;
			continue;
		}
		if (jobq_len(&r->q) == 0 && r->hold_until_ms && cardio_now_ms() >= r->hold_until_ms) {
			/*
			 * The held card's time is up: let other programs have it. A lease's card is
			 * reset: its session (the challenge of step 1) ends with it.
			 */
			int lease = r->lease != 0;

			r->lease = 0;
			pthread_mutex_unlock(&rd->lock);
			pthread_mutex_lock(&r->card_lock);
			if (r->hold_until_ms && cardio_now_ms() >= r->hold_until_ms) {
				r->hold_until_ms = 0;
				/* The read-ahead's card stays watched, shared, for its insertion. */
				if (lease || !reader_ahead_watch(r))
					reader_io_drop(r, lease);
			}
			pthread_mutex_unlock(&r->card_lock);
			pthread_mutex_lock(&rd->lock);
			continue;
		}
		if (jobq_len(&r->q) == 0 && r->slot_shared && !r->ahead) {
			/* The watched card's data is gone (a removal): nothing left to watch for. */
			pthread_mutex_unlock(&rd->lock);
			pthread_mutex_lock(&r->card_lock);
			if (r->slot_shared)
				reader_io_drop(r, 0);
			pthread_mutex_unlock(&r->card_lock);
			pthread_mutex_lock(&rd->lock);
			continue;
		}
		if (jobq_len(&r->q) == 0) {
			int64_t wake = r->hold_until_ms;

			if (r->probe_retry_ms && r->card_present &&
			    (!wake || r->probe_retry_ms < wake))
				wake = r->probe_retry_ms;
			if (wake) {
				struct timespec ts;

				rd_abs_monotonic(&ts, wake);
				pthread_cond_clockwait(&r->cond, &rd->lock, CLOCK_MONOTONIC, &ts);
			} else {
				pthread_cond_wait(&r->cond, &rd->lock);
			}
			continue;
		}
		/* The next in turn: one job per owner while several wait (src/jobq.h). */
		core = reader_job_pop_locked(r);
		if (reader_job_decline_locked(r, core)) {
			/* Its deadline (nearly) went by in the queue; the loop's timer was late. */
			if (reader_job_post_locked(rd, core)) {
				pthread_mutex_unlock(&rd->lock);
				reader_job_unref(core);
				pthread_mutex_lock(&rd->lock);
			}
			continue;
		}
		reader_job_run_locked(r, core);
		pthread_mutex_unlock(&rd->lock);

		rc = reader_run_job(r, core);

		pthread_mutex_lock(&rd->lock);
		reader_job_end_locked(core, rc);
		if (reader_job_post_locked(rd, core)) {
			pthread_mutex_unlock(&rd->lock);
			reader_job_unref(core);   /* the worker side, after readers_free() */
			pthread_mutex_lock(&rd->lock);
		}
	}

	/* Jobs still queued end here: the reader left, or the core stops. */
	for (struct job_core *core; (core = reader_job_pop_locked(r)) != NULL;) {
		core->qnext = NULL;
		reader_job_end_locked(core, rd->stopping ? SSC_ESHUTDOWN : SSC_ENOREADER);
		if (core->run_err == SSC_ENOREADER)
			ssc_diag_set(&core->job->diag, SSC_ENOREADER,
				     "reader %s went away before the operation started", r->id);
		if (reader_job_post_locked(rd, core)) {
			core->qnext = drained;
			drained = core;
		}
	}
	pthread_mutex_unlock(&rd->lock);
	for (struct job_core *c = drained, *next; c; c = next) {
		next = c->qnext;
		reader_job_unref(c);
	}

	pthread_mutex_lock(&r->card_lock);
	/* A held user card has no security state left (else it was reset at once): leave it. */
	reader_io_drop(r, r->hold_until_ms || r->slot_shared ? 0 : 1);
	r->hold_until_ms = 0;
	pthread_mutex_unlock(&r->card_lock);
	/* The worker's end: it leaves nothing running, nothing queued, no connection. */
	INVARIANT(r->running == NULL && r->slot == NULL);

	reader_table_unref(r);
	reader_table_thread_exit(rd);
	return NULL;
}
