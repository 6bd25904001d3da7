/*
 * This file contains a job's life in the reader core (src/reader_job.h): states, references,
 * deadline, hand-over to the loop.
 */
#include <pthread.h>
#include <stdlib.h>

#include "invariant.h"
#include "log.h"
#include "reader_event.h"
#include "reader_job.h"

void reader_job_unref(struct job_core *core)
{
	int had = atomic_fetch_sub(&core->refs, 1);

	INVARIANT(had >= 1);
	if (had == 1) {
		struct job *job = core->job;

		job->core = NULL;
		free(core);
		job->release(job);
	}
}

static void rd_jobs_unlink(struct readers *rd, struct job_core *core)
{
	if (core->prev)
		core->prev->next = core->next;
	else
		rd->jobs = core->next;
	if (core->next)
		core->next->prev = core->prev;
	core->prev = core->next = NULL;
}

static void job_on_timer_close(uv_handle_t *h)
{
	struct job_core *core = h->data;

	if (core->rd)
		rd_jobs_unlink(core->rd, core);
	core->rd = NULL;
	reader_job_unref(core);
}

void reader_job_close_timer(struct job_core *core)
{
	if (!core->timer_closing) {
		core->timer_closing = 1;
		uv_timer_stop(&core->timer);
		uv_close((uv_handle_t *)&core->timer, job_on_timer_close);
	}
}

void reader_job_complete(struct job_core *core)
{
	INVARIANT(core->state == JOB_FINISHED);
	if (!core->done_called) {
		core->done_called = 1;
		core->job->err = core->run_err;
		core->job->done(core->job);
	}
	reader_job_close_timer(core);
}

/* The answer of a job that never started on the card: its whole deadline went by in the queue. */
static void job_never_started(struct job_core *core, uint64_t started_since)
{
	struct job *job = core->job;

	job->never_started = 1;
	ssc_diag_set(&job->diag, SSC_ETIMEDOUT,
		     "reader %s stayed busy with other operations: this one waited its whole "
		     "deadline, %d ms, without starting (%d were ahead of it when it came, %llu "
		     "started since); try again, or raise [timeouts] op_timeout_ms",
		     job->used_reader, core->timeout_ms, core->ahead,
		     (unsigned long long)started_since);
}

int reader_job_decline_locked(struct reader *r, struct job_core *core)
{
	INVARIANT(core->state == JOB_QUEUED && core->r == r && core->qitem.lane == NULL);
	if (rd_ms_until(core->deadline_ms) >= READERS_START_MIN_MS)
		return 0;
	job_never_started(core, r->started - core->started_before);
	reader_job_end_locked(core, SSC_ETIMEDOUT);
	return 1;
}

/* The job's deadline passed (loop thread). */
static void job_on_timer(uv_timer_t *t)
{
	struct job_core *core = t->data;
	struct job *job = core->job;
	struct reader *r = core->r;
	struct readers *rd = core->rd;
	enum job_state state;
	uint64_t started_since = 0;

	pthread_mutex_lock(&rd->lock);
	state = core->state;
	if (state == JOB_QUEUED) {
		started_since = r->started - core->started_before;
		reader_job_end_locked(core, SSC_ETIMEDOUT);
	} else if (state == JOB_RUNNING) {
		INVARIANT(r->running == core && !r->overrun);
		r->overrun = 1;
	}
	pthread_mutex_unlock(&rd->lock);

	switch (state) {
	case JOB_QUEUED:
		/* The worker never saw this job: its diag is ours to write. */
		job_never_started(core, started_since);
		reader_job_unref(core);   /* the worker side: it never runs (the timer's ref remains) */
		reader_job_complete(core);
		break;
	case JOB_RUNNING:
		/*
		 * The card or the driver did not answer in time. The client gets its answer now; the
		 * worker keeps the job (and writes its diag and result) until the driver call returns,
		 * and the reader refuses new jobs (SSC_EREADERBUSY) until then.
		 */
		log_warn("reader %s: operation overran its %d ms deadline; the reader stays busy "
			 "until the card or driver answers", job->used_reader, core->timeout_ms);
		core->done_called = 1;
		job->err = SSC_ETIMEDOUT;
		job->done(job);
		break;
	case JOB_FINISHED:
		/* Its completion is queued and is delivered by the loop's wake-up in this turn. */
		break;
	}
}

int reader_job_post_locked(struct readers *rd, struct job_core *core)
{
	INVARIANT(core->state == JOB_FINISHED && core->qnext == NULL);
	if (rd->loop_gone)
		return 1;
	atomic_fetch_sub(&core->refs, 1);   /* never the last: the timer is still open */
	if (rd->done_tail)
		rd->done_tail->qnext = core;
	else
		rd->done_head = core;
	rd->done_tail = core;
	reader_event_notify_locked(rd);
	return 0;
}

struct job_core *reader_job_new(struct readers *rd, struct job *job, int timeout_ms)
{
	struct job_core *core = calloc(1, sizeof(*core));

	if (!core)
		return NULL;
	core->job = job;
	core->rd = rd;
	core->timeout_ms = timeout_ms;
	core->deadline_ms = cardio_now_ms() + timeout_ms;
	atomic_init(&core->refs, 2);
	return core;
}

void reader_job_arm(struct job_core *core)
{
	struct readers *rd = core->rd;

	/*
	 * The worker may run the job already, but it never touches the timer, and its completion
	 * is only handled on this (the loop) thread, after we return.
	 */
	uv_timer_init(rd->loop, &core->timer);   /* cannot fail for a valid loop */
	core->timer.data = core;
	core->job->core = core;
	/* The loop's clock may lag (it is read once per turn): never answer before the deadline. */
	uv_update_time(rd->loop);
	core->next = rd->jobs;
	if (rd->jobs)
		rd->jobs->prev = core;
	rd->jobs = core;
	uv_timer_start(&core->timer, job_on_timer, (uint64_t)core->timeout_ms, 0);
}

struct job_core *reader_job_pop_locked(struct reader *r)
{
	struct jobq_item *it = jobq_pop(&r->q);

	return it ? JOB_CORE_OF(it) : NULL;
}

void reader_job_run_locked(struct reader *r, struct job_core *core)
{
	/* One job at a time on a reader, taken out of its queue; an idle reader is not overrun. */
	INVARIANT(core->state == JOB_QUEUED && core->r == r && core->qitem.lane == NULL);
	INVARIANT(r->running == NULL && !r->overrun);
	core->state = JOB_RUNNING;
	r->running = core;
	r->started++;
}

void reader_job_end_locked(struct job_core *core, int err)
{
	struct reader *r = core->r;

	INVARIANT(core->state != JOB_FINISHED);   /* a job ends once */
	if (core->state == JOB_QUEUED) {
		(void)jobq_remove(&r->q, &core->qitem);   /* SSC_ENOTFOUND: popped already */
	} else if (core->state == JOB_RUNNING) {
		INVARIANT(r->running == core);
		r->running = NULL;
		if (r->overrun) {
			r->overrun = 0;
			log_info("reader %s: the overrun operation returned (%s); reader free again",
				 r->id, ssc_strerror_name(err));
		}
	}
	core->state = JOB_FINISHED;
	core->run_err = err;
	INVARIANT(core->qitem.lane == NULL && r->running != core);
}

int reader_job_wrong_role(const char *id, enum reader_role need, struct ssc_diag *diag)
{
	if (need == READER_ROLE_PSAM)
		return ssc_diag_set(diag, SSC_ENOPSAM, "the card in reader %s is not a PSAM", id);
	return ssc_diag_set(diag, SSC_ENOTSSC,
			    "the card in reader %s is a PSAM, not a social security card", id);
}

uint64_t reader_lease_locked(const struct reader *r)
{
	if (!r->lease || r->lease_gen != r->card_gen || !r->card_present ||
	    rd_ms_until(r->lease_until_ms) <= 0)
		return 0;
	return r->lease;
}

int reader_job_lease_check_locked(const struct reader *r, struct job *job)
{
	uint64_t lease = reader_lease_locked(r);

	if (lease && job->lease != lease) {
		int64_t left = rd_ms_until(r->lease_until_ms);

		job->lease_left_ms = left > 0 ? (int)left : 0;
		return ssc_diag_set(&job->diag, SSC_EREADERLEASED, "reader %s is held by a two-step "
				    "read for %d s more at most (until its step 2, the card's removal "
				    "or the end of its session)", r->id,
				    (int)((job->lease_left_ms + 999) / 1000));
	}
	if (job->lease && job->lease != lease)
		return ssc_diag_set(&job->diag, SSC_ECARDREMOVED, "the two-step read's card is no "
				    "longer held in reader %s: it was removed after step 1, and the "
				    "session ended", r->id);
	return 0;
}
