/*
 * This file contains the reader core's API (src/readers.h), on top of its other files
 * (src/readers_int.h lists them): creating the core over the drivers it is given, starting and
 * stopping its threads, taking jobs (the reader resolved, the queue's limits) and cancelling them,
 * delivering events and finished jobs on the loop, the snapshot for reader.list, and the loans of
 * PSAMs to other workers (the PSAM pool, src/psam_pool.c, is built on them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "invariant.h"
#include "log.h"
#include "reader_event.h"
#include "reader_io.h"
#include "reader_job.h"
#include "reader_monitor.h"
#include "reader_table.h"
#include "readers_int.h"

#define READERS_STOP_WAIT_MS 2000    /* readers_free() waits this long for stuck threads */
#define READERS_PSAM_MAX 16          /* PSAM readers one loan considers */
#define READERS_PSAM_POLL_MS 20      /* a loan: how long to wait on one busy PSAM before the next */

const char *reader_role_name(enum reader_role role)
{
	switch (role) {
	case READER_ROLE_USER:
		return "user";
	case READER_ROLE_PSAM:
		return "psam";
	default:
		return "unknown";
	}
}

/* The loop's side of the wake-up (src/reader_event.h): takes the events and finished jobs. */
static void rd_on_wakeup(uv_poll_t *h, int status, int events)
{
	struct readers *rd = h->data;
	struct rd_event *ev;
	struct job_core *done;
	uint64_t v;

	(void)status;
	(void)events;
	(void)!read(rd->wakeup->fd, &v, sizeof(v));   /* EAGAIN: already taken */
	pthread_mutex_lock(&rd->lock);
	rd->wakeup_pending = 0;
	ev = rd->ev_head;
	rd->ev_head = rd->ev_tail = NULL;
	done = rd->done_head;
	rd->done_head = rd->done_tail = NULL;
	pthread_mutex_unlock(&rd->lock);

	while (ev) {
		struct rd_event *next = ev->next;

		if (rd->ev)
			rd->ev(rd->ev_arg, ev->type, &ev->ri);
		free(ev);
		ev = next;
	}
	while (done) {
		struct job_core *next = done->qnext;

		done->qnext = NULL;
		reader_job_complete(done);
		done = next;
	}
}

/* Closes the wake-up handle, then its eventfd (rd->wakeup is the handle's first member). */
static void rd_wakeup_closed(uv_handle_t *h)
{
	struct rd_wakeup *w = (struct rd_wakeup *)h;

	close(w->fd);
	free(w);
}

static void rd_wakeup_close(struct readers *rd)
{
	uv_poll_stop(&rd->wakeup->poll);
	uv_close((uv_handle_t *)&rd->wakeup->poll, rd_wakeup_closed);
	rd->wakeup = NULL;
}

int readers_new(uv_loop_t *loop, const struct config *cfg, const struct readers_setup *setup,
		readers_event_fn ev, void *ev_arg, struct readers **out)
{
	struct readers *rd;
	pthread_condattr_t ca;
	int rc;

	if (!loop || !cfg || !setup || !setup->probe || !out ||
	    setup->n_drivers > READERS_DRIVERS_MAX || (setup->n_drivers && !setup->drivers))
		return SSC_EINVAL;
	if (setup->n_drivers == 0) {
		log_error("readers: no reader driver is enabled ([drivers] pcsc, usb)");
		return SSC_ECONFIG;
	}
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return SSC_ENOMEM;
	rd->loop = loop;
	rd->cfg = cfg;
	rd->probe = setup->probe;
	rd->apdu_sent = setup->apdu_sent;
	if (setup->ahead && setup->ahead->read && setup->ahead->drop)
		rd->ahead = *setup->ahead;
	rd->ev = ev;
	rd->ev_arg = ev_arg;
	if (pthread_mutex_init(&rd->lock, NULL) != 0)
		goto out_free;
	if (pthread_condattr_init(&ca) != 0)
		goto out_mutex;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&rd->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		goto out_mutex;
	rd->wakeup = calloc(1, sizeof(*rd->wakeup));
	if (!rd->wakeup)
		goto out_cond;
	rd->wakeup->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rd->wakeup->fd < 0) {
		free(rd->wakeup);
		goto out_cond;
	}
	if (uv_poll_init(loop, &rd->wakeup->poll, rd->wakeup->fd) != 0) {
		close(rd->wakeup->fd);
		free(rd->wakeup);
		goto out_cond;
	}
	rd->wakeup->poll.data = rd;
	if (uv_poll_start(&rd->wakeup->poll, UV_READABLE, rd_on_wakeup) != 0) {
		rc = SSC_EINTERNAL;
		goto out_async;
	}

	for (size_t i = 0; i < setup->n_drivers; i++) {
		const struct ssc_driver_ops *ops = setup->drivers[i];
		struct ssc_driver_config dcfg = {
			.usb_allow = cfg->usb_allow[0] ? cfg->usb_allow : NULL,
			.poll_interval_ms = cfg->poll_interval_ms,
			.connect_retry_ms = cfg->connect_timeout_ms,
		};
		struct rd_monitor *m = &rd->mons[rd->n_mons];

		rc = ops->open(&dcfg, &m->drv);
		if (rc != 0) {
			log_error("readers: cannot open the %s driver: %s", ops->name,
				  ssc_strerror(rc));
			for (size_t j = 0; j < rd->n_mons; j++)
				rd->mons[j].ops->close(rd->mons[j].drv);
			goto out_async;
		}
		m->rd = rd;
		m->ops = ops;
		rd->n_mons++;
	}
	*out = rd;
	return 0;

out_async:
	rd_wakeup_close(rd);
	pthread_cond_destroy(&rd->cond);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
	return rc;
out_cond:
	pthread_cond_destroy(&rd->cond);
out_mutex:
	pthread_mutex_destroy(&rd->lock);
out_free:
	free(rd);
	return SSC_ENOMEM;
}

int readers_start(struct readers *rd)
{
	int rc = 0;

	pthread_mutex_lock(&rd->lock);
	if (!rd->started && !rd->stopping) {
		rd->started = 1;
		for (size_t i = 0; i < rd->n_mons && rc == 0; i++)
			rc = reader_table_spawn_locked(rd, reader_monitor_main, &rd->mons[i]);
	}
	pthread_mutex_unlock(&rd->lock);
	return rc;
}

void readers_free(struct readers *rd)
{
	struct job_core *done;
	struct timespec ts;
	int stuck;

	if (!rd)
		return;
	pthread_mutex_lock(&rd->lock);
	rd->stopping = 1;
	for (struct reader *r = rd->table; r; r = r->next) {
		r->stop = 1;
		pthread_cond_signal(&r->cond);
	}
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	for (size_t i = 0; i < rd->n_mons; i++)
		rd->mons[i].ops->wake(rd->mons[i].drv);

	rd_abs_monotonic(&ts, cardio_now_ms() + READERS_STOP_WAIT_MS);
	pthread_mutex_lock(&rd->lock);
	while (rd->live_threads > 0) {
		if (pthread_cond_timedwait(&rd->cond, &rd->lock, &ts) == ETIMEDOUT)
			break;
	}
	stuck = rd->live_threads;
	rd->loop_gone = 1;
	rd->abandoned = stuck > 0;
	done = rd->done_head;
	rd->done_head = rd->done_tail = NULL;
	/* Jobs still queued behind a stuck job will never run. */
	for (struct job_core *c = rd->jobs; c; c = c->next) {
		if (c->state != JOB_QUEUED)
			continue;
		reader_job_end_locked(c, SSC_ESHUTDOWN);
		atomic_fetch_sub(&c->refs, 1);   /* the worker side; the timer's ref remains */
	}
	pthread_mutex_unlock(&rd->lock);

	while (done) {
		struct job_core *next = done->qnext;

		done->qnext = NULL;
		reader_job_complete(done);
		done = next;
	}
	for (struct job_core *c = rd->jobs, *next; c; c = next) {
		next = c->next;
		if (!c->done_called) {
			c->done_called = 1;
			c->job->err = SSC_ESHUTDOWN;
			c->job->done(c->job);
		}
		c->rd = NULL;
		c->prev = c->next = NULL;
		reader_job_close_timer(c);
	}
	rd->jobs = NULL;
	rd_wakeup_close(rd);

	if (stuck > 0) {
		log_warn("readers: %d thread(s) still blocked in a driver call after %d ms; leaving "
			 "them detached", stuck, READERS_STOP_WAIT_MS);
		return;   /* the last of them frees rd (reader_table_thread_exit) */
	}
	reader_table_destroy(rd);
}

int readers_list(struct readers *rd, struct reader_info **out, size_t *n)
{
	struct reader_info *ri;
	size_t count = 0, i = 0;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next)
		count++;
	ri = calloc(count ? count : 1, sizeof(*ri));
	if (!ri) {
		pthread_mutex_unlock(&rd->lock);
		return SSC_ENOMEM;
	}
	for (struct reader *r = rd->table; r; r = r->next)
		reader_event_info(r, &ri[i++]);
	pthread_mutex_unlock(&rd->lock);
	*out = ri;
	*n = count;
	return 0;
}

/* Resolves the job's reader (rd->lock held). Returns the reader, or NULL with *err and diag set. */
static struct reader *rd_resolve_locked(struct readers *rd, struct job *job, int *err)
{
	enum reader_role need = job->need_role == READER_ROLE_PSAM ? READER_ROLE_PSAM
								 : READER_ROLE_USER;
	const char *what = need == READER_ROLE_PSAM ? "a PSAM" : "a social security card";
	struct reader *r, *found = NULL;
	char list[sizeof(job->diag.msg)];
	size_t used = 0;
	int count = 0;

	if (job->reader_id[0]) {
		r = reader_table_find_locked(rd, job->reader_id);
		if (!r) {
			*err = ssc_diag_set(&job->diag, SSC_ENOREADER, "no reader with the id \"%.64s\"",
					    job->reader_id);
			return NULL;
		}
		if (!r->card_present) {
			*err = ssc_diag_set(&job->diag, SSC_ENOCARD, "no card in reader %s", r->id);
			return NULL;
		}
		if (r->role != READER_ROLE_UNKNOWN && r->role != need) {
			/* A card is there, of the other kind: say what it is, not "no card". */
			*err = reader_job_wrong_role(r->id, need, &job->diag);
			return NULL;
		}
		return r;
	}
	/* "" = the one reader that holds a card of the needed kind (or one not yet probed). */
	list[0] = '\0';
	for (r = rd->table; r; r = r->next) {
		int w;

		if (!r->card_present || (r->role != need && r->role != READER_ROLE_UNKNOWN))
			continue;
		count++;
		found = r;
		w = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", r->id);
		if (w > 0 && (size_t)w < sizeof(list) - used)
			used += (size_t)w;
	}
	if (count == 0) {
		*err = ssc_diag_set(&job->diag, SSC_ENOCARD, "no reader holds %s", what);
		return NULL;
	}
	if (count > 1) {
		*err = ssc_diag_set(&job->diag, SSC_EREADERSELECT,
				    "several readers hold a card; name one of: %s", list);
		return NULL;
	}
	return found;
}

int readers_submit(struct readers *rd, struct job *job)
{
	struct job_core *core;
	struct reader *r;
	int err = 0, timeout;

	if (!rd || !job || !job->run || !job->done || !job->release)
		return SSC_EINVAL;
	job->err = 0;
	job->result = NULL;
	job->used_reader[0] = '\0';
	job->lease_left_ms = 0;
	job->never_started = 0;
	ssc_diag_init(&job->diag);
	if (rd->stopping)
		return SSC_ESHUTDOWN;
	timeout = job->timeout_ms > 0 ? job->timeout_ms : rd->cfg->op_timeout_ms;
	core = reader_job_new(rd, job, timeout);
	if (!core)
		return SSC_ENOMEM;

	pthread_mutex_lock(&rd->lock);
	r = rd_resolve_locked(rd, job, &err);
	if (r && r->overrun)
		err = ssc_diag_set(&job->diag, SSC_EREADERBUSY,
				   "reader %s is still busy with an operation that overran its "
				   "deadline", r->id);
	else if (r && (err = reader_job_lease_check_locked(r, job)) != 0)
		/* Leased to another, or the job's lease is gone: answered at once. */
		memcpy(job->used_reader, r->id, sizeof(job->used_reader));
	else if (r) {
		/* What it finds before it: the ones waiting and the one on the card. */
		core->ahead = jobq_len(&r->q) + (r->running ? 1 : 0);
		core->started_before = r->started;
		err = jobq_push(&r->q, &core->qitem, job->owner);
		if (err == SSC_ELIMIT && jobq_owner_len(&r->q, job->owner) >=
					 rd->cfg->max_inflight_per_client)
			ssc_diag_set(&job->diag, err, "%d operations of this connection wait on reader "
				     "%s already (at most %d, [limits] max_inflight_per_client)",
				     jobq_owner_len(&r->q, job->owner), r->id,
				     rd->cfg->max_inflight_per_client);
		else if (err == SSC_ELIMIT)
			ssc_diag_set(&job->diag, err, "reader %s has %d operations waiting already, as "
				     "many as the daemon keeps for one reader ([limits] "
				     "max_queued_per_reader)", r->id, jobq_len(&r->q));
	}
	if (err == 0) {
		INVARIANT(!r->overrun && !r->stop);
		memcpy(job->used_reader, r->id, sizeof(job->used_reader));
		core->r = r;
		core->state = JOB_QUEUED;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&rd->lock);

	if (err != 0) {
		free(core);
		return err;
	}
	reader_job_arm(core);
	return 0;
}

int readers_cancel(struct readers *rd, const void *owner)
{
	struct job_core *list = NULL;
	int n = 0;

	if (!rd)
		return 0;
	/* rd->jobs is newest first: putting each in front of the list makes it oldest first. */
	pthread_mutex_lock(&rd->lock);
	for (struct job_core *c = rd->jobs; c; c = c->next) {
		if (c->state != JOB_QUEUED || c->job->owner != owner)
			continue;
		reader_job_end_locked(c, SSC_ECANCELED);
		c->qnext = list;
		list = c;
		n++;
	}
	pthread_mutex_unlock(&rd->lock);

	while (list) {
		struct job_core *c = list;

		list = c->qnext;
		c->qnext = NULL;
		/* The worker never saw these jobs: their diag is ours to write. */
		ssc_diag_set(&c->job->diag, SSC_ECANCELED, "cancelled before it started on reader "
			     "%s: its client closed the connection", c->job->used_reader);
		reader_job_unref(c);   /* the worker side: it never runs (the timer's ref remains) */
		reader_job_complete(c);
	}
	return n;
}

/* ---------------------------------------------------------------------------------------------
 * PSAMs lent to other workers (the PSAM pool, src/psam_pool.c, is built on these).
 */

/* Whether r holds a PSAM of alg (rd->lock held); sets *any when it holds a PSAM at all. */
static int rd_psam_of(const struct reader *r, enum ssc_alg alg, int *any)
{
	if (!r->card_present || r->role != READER_ROLE_PSAM)
		return 0;
	*any = 1;
	return r->psam_alg == alg && alg != SSC_ALG_NONE;
}

int readers_psam_lend(struct readers *rd, enum ssc_alg alg, int64_t deadline_ms,
		      struct card_io **io)
{
	struct reader *cand[READERS_PSAM_MAX], *got = NULL;
	size_t n = 0, turn = 0;
	int any = 0, rc;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next) {
		if (!rd_psam_of(r, alg, &any) || n == READERS_PSAM_MAX)
			continue;
		r->refs++;
		cand[n++] = r;
	}
	pthread_mutex_unlock(&rd->lock);
	if (!any)
		return SSC_ENOPSAM;
	if (n == 0)
		return SSC_EPSAMALGO;

	/* Take the first free matching PSAM; wait a little on each busy one in turn. */
	while (!got) {
		int64_t left, slice;
		struct timespec ts;

		for (size_t i = 0; i < n && !got; i++)
			if (pthread_mutex_trylock(&cand[i]->card_lock) == 0)
				got = cand[i];
		if (got)
			break;
		left = rd_ms_until(deadline_ms);
		if (left <= 0)
			break;
		slice = left < READERS_PSAM_POLL_MS ? left : READERS_PSAM_POLL_MS;
		rd_abs_monotonic(&ts, cardio_now_ms() + slice);
		if (pthread_mutex_clocklock(&cand[turn % n]->card_lock, CLOCK_MONOTONIC, &ts) == 0)
			got = cand[turn % n];
		turn++;
	}
	pthread_mutex_lock(&rd->lock);
	for (size_t i = 0; i < n; i++) {
		if (cand[i] == got || --cand[i]->refs > 0)
			cand[i] = NULL;
	}
	pthread_mutex_unlock(&rd->lock);
	for (size_t i = 0; i < n; i++)
		if (cand[i])
			reader_table_reader_free(cand[i]);   /* it left the table while we looked */
	if (!got)
		return SSC_ETIMEDOUT;

	rc = reader_io_connect(got, deadline_ms);
	if (rc != 0) {
		readers_psam_return(rd, &got->psam_io, rc != SSC_ETIMEDOUT);
		return rc;
	}
	reader_io_init(got, &got->psam_io, deadline_ms);
	*io = &got->psam_io;
	return 0;
}

unsigned *readers_lent_memory(struct card_io *io)
{
	struct reader *r = io->ctx;

	return &r->lent_memory;
}

void readers_psam_return(struct readers *rd, struct card_io *io, int broken)
{
	struct reader *r;

	if (!io)
		return;
	r = io->ctx;
	if (broken || r->slot_broken) {
		/* The PSAM failed at transport level: start over, and probe it before its next use. */
		reader_io_drop(r, 1);
		pthread_mutex_lock(&rd->lock);
		r->reprobe = 1;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&rd->lock);
	}
	pthread_mutex_unlock(&r->card_lock);
	reader_table_unref(r);
}

int readers_psam_terminal(struct readers *rd, enum ssc_alg alg, char out[13])
{
	int any = 0, match = 0, rc = SSC_ENOTFOUND;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next) {
		if (!rd_psam_of(r, alg, &any))
			continue;
		match = 1;
		if (r->psam_term[0]) {
			snprintf(out, 13, "%s", r->psam_term);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&rd->lock);
	if (!any)
		return SSC_ENOPSAM;
	if (!match)
		return SSC_EPSAMALGO;
	return rc;
}

unsigned readers_psam_algorithms(struct readers *rd)
{
	unsigned bits = 0;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next)
		if (r->card_present && r->role == READER_ROLE_PSAM && r->psam_alg != SSC_ALG_NONE)
			bits |= 1u << r->psam_alg;
	pthread_mutex_unlock(&rd->lock);
	return bits;
}
