/*
 * This file contains the reader core (src/readers.h): the reader table, one monitor thread per
 * driver that turns snapshots into events, one worker thread per reader that runs jobs one at a
 * time, the APDU choke point (deadline, lengths, masked trace), job deadlines on the loop, and the
 * loans of PSAMs to other workers (the PSAM pool, src/psam_pool.c, is built on them).
 *
 * Locks: rd->lock guards the table, each reader's card state, role, queue and busy flags, and the
 * event and completion lists; nobody waits for a card or a driver while holding it. A reader's
 * card_lock is held by whoever talks to its card (the worker running a probe or a job, or a PSAM
 * acquirer on another worker thread); it guards the reader's connection and insertion memory.
 * Order: card_lock, then rd->lock; never the reverse.
 *
 * PC/SC threading: a connection (struct ssc_slot) has its own pcsc-lite context. A user card's
 * connection lives for one job on its worker. A PSAM's connection stays open between uses and is
 * used by one thread at a time under card_lock: its worker (probe, PSAM jobs) or the user-card
 * worker that acquired it. pcsc-lite allows a context to move between threads as long as two
 * threads never use it at once, which card_lock guarantees.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "hex.h"
#include "jobq.h"
#include "log.h"
#include "readers.h"

#define READERS_PER_DRIVER_MAX 32    /* readers one driver snapshot may report */
#define READERS_QUEUE_MAX 16         /* jobs one owner may have waiting on a reader ... */
#define READERS_QUEUE_TOTAL_MAX 1024 /* ... and all owners together; one more gets SSC_ELIMIT */
#define READERS_WAIT_MS 1000         /* one wait_change round: the monitor re-lists at least this often */
#define READERS_BACKOFF_MIN_MS 100   /* monitor pause after the subsystem failed once ... */
#define READERS_BACKOFF_MAX_MS 2000  /* ... doubling up to this while it stays down */
#define READERS_STOP_WAIT_MS 2000    /* readers_free() waits this long for stuck threads */
#define READERS_PSAM_MAX 16          /* PSAM readers one acquire() considers */
#define READERS_PSAM_POLL_MS 20      /* acquire(): how long to wait on one busy PSAM before the next */
#define READERS_PROBE_RETRIES 6      /* probes of one card that could not tell its kind, retried ... */
#define READERS_PROBE_BACKOFF_MS 200 /* ... after this, doubling (200 ms .. 6.4 s) */

enum job_state { JOB_QUEUED = 0, JOB_RUNNING, JOB_FINISHED };

/*
 * The core's side of a job. Two references keep it: the deadline timer (dropped when the handle is
 * closed, on the loop) and the worker side (dropped when the worker is done with the job, or when
 * the job leaves the queue unrun). The last one calls job->release() and frees it.
 */
struct job_core {
	struct job *job;
	struct reader *r;              /* valid while QUEUED or RUNNING */
	uv_timer_t timer;
	int64_t deadline_ms;
	int timeout_ms;
	atomic_int refs;

	/* rd->lock */
	enum job_state state;
	int run_err;                   /* the worker's result, valid once FINISHED */
	struct jobq_item qitem;        /* in the reader's queue while QUEUED */
	struct job_core *qnext;        /* rd's completion list; lists of jobs taken out together */

	/* loop thread */
	struct readers *rd;            /* NULL once readers_free() let go of the job */
	int done_called;
	int timer_closing;
	struct job_core *prev, *next;  /* rd->jobs */
};

struct rd_event {
	struct rd_event *next;
	const char *type;
	struct reader_info ri;
};

struct rd_monitor {
	struct readers *rd;
	const struct ssc_driver_ops *ops;
	struct ssc_driver *drv;
};

struct reader {
	struct readers *rd;
	struct rd_monitor *mon;
	char id[SSC_READER_ID_MAX];
	char name[SSC_READER_NAME_MAX];
	enum reader_role fixed_role;   /* from the configuration; UNKNOWN: probe every card */

	/* rd->lock */
	struct reader *next;           /* the table */
	int refs;                      /* the table, the worker, PSAM acquirers */
	char serial[SSC_READER_SERIAL_MAX];
	int card_present;
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len;
	unsigned card_gen;             /* moves on every insertion and removal the monitor sees */
	enum reader_role role;
	enum ssc_alg psam_alg;
	char psam_term[13];            /* a PSAM's terminal number as its probe read it, "" unknown */
	unsigned probed_gen;           /* the card_gen that role belongs to */
	int reprobe;                   /* probe the same card again (a PSAM came back broken) */
	int probe_failures;            /* probes of this card that could not tell its kind */
	unsigned ready_gen;            /* the card_gen whose card.ready is posted */
	int ready_err;                 /* the error that card.ready carried (0: none) */
	int64_t probe_retry_ms;        /* when to try again (CLOCK_MONOTONIC ms), 0 = no retry */
	int stop;                      /* the worker must exit */
	struct job_core *running;
	int overrun;                   /* the running job's deadline passed: refuse new jobs */
	struct jobq q;                 /* the jobs waiting, in turns across their owners */
	pthread_cond_t cond;           /* the worker waits here, with rd->lock */

	/* card_lock */
	pthread_mutex_t card_lock;
	struct ssc_slot *slot;
	unsigned slot_gen;             /* card_gen when slot was opened */
	int slot_broken;               /* the connection failed at transport level */
	uint8_t slot_atr[SSC_ATR_MAX];
	size_t slot_atr_len;
	unsigned flags_gen;            /* the card_gen insertion_flags belong to */
	int64_t hold_until_ms;         /* a user card's connection is kept until then (0 = none) */
	unsigned lent_memory;          /* the borrower's word for this connection (0 when new) */
	unsigned insertion_flags;
	struct card_io psam_io;        /* what readers_psam_lend() hands out */
};

struct readers {
	uv_loop_t *loop;
	const struct config *cfg;
	readers_event_fn ev;
	void *ev_arg;
	struct rd_wakeup *wakeup;      /* how other threads wake the loop (rd_notify_locked) */
	int wakeup_pending;            /* a wake-up is written and not yet taken (lock held) */
	readers_probe_fn probe;
	void (*apdu_sent)(const char *driver);
	struct rd_monitor mons[READERS_DRIVERS_MAX];
	size_t n_mons;
	struct job_core *jobs;         /* loop thread: every job whose timer is not closed */

	pthread_mutex_t lock;
	pthread_cond_t cond;           /* live_threads changed; stopping (monitor naps) */
	int live_threads;
	int started;
	int stopping;
	int loop_gone;                 /* the wake-up handle is closed: post nothing more */
	int abandoned;                 /* readers_free() left stuck threads: the last one frees rd */
	struct reader *table;
	struct rd_event *ev_head, *ev_tail;
	struct job_core *done_head, *done_tail;
};

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

static int64_t rd_ms_until(int64_t deadline)
{
	return deadline - cardio_now_ms();
}

static void rd_abs_monotonic(struct timespec *ts, int64_t deadline_ms)
{
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* ---------------------------------------------------------------------------------------------
 * Events and completions, posted from any thread, delivered on the loop.
 */

/*
 * The loop's wake-up: an eventfd watched by a uv_poll handle. (uv_async_send, in libuv 1.44,
 * makes the woken loop spin until the sender has finished; with the two on one CPU that spin is
 * paid on every completed job.) One write per batch of posts: wakeup_pending says a write is
 * waiting to be taken, and rd_on_wakeup() clears it when it takes the queues.
 */
struct rd_wakeup {
	uv_poll_t poll;
	int fd;
};

/* rd->lock held. */
static void rd_notify_locked(struct readers *rd)
{
	uint64_t one = 1;

	if (rd->loop_gone || rd->wakeup_pending)
		return;
	rd->wakeup_pending = 1;
	/* Only EAGAIN (the counter full: a wake-up is pending anyway) can fail here. */
	if (write(rd->wakeup->fd, &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
		log_error("readers: cannot wake the event loop: %s", strerror(errno));
}

/* rd->lock held. */
static void reader_fill_info(const struct reader *r, struct reader_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	memcpy(ri->id, r->id, sizeof(ri->id));
	memcpy(ri->name, r->name, sizeof(ri->name));
	snprintf(ri->driver, sizeof(ri->driver), "%s", r->mon->ops->name);
	memcpy(ri->serial, r->serial, sizeof(ri->serial));
	ri->card_present = r->card_present;
	ri->role = r->card_present ? r->role : READER_ROLE_UNKNOWN;
	ri->psam_alg = ri->role == READER_ROLE_PSAM ? r->psam_alg : SSC_ALG_NONE;
	ri->busy = r->running != NULL || r->overrun;
	memcpy(ri->atr, r->atr, sizeof(ri->atr));
	ri->atr_len = r->atr_len;
	ri->queued = jobq_len(&r->q);
}

/*
 * Queues an event (rd->lock held); err is card.ready's error (0: none). Events keep their order;
 * none is dropped but for ENOMEM.
 */
static void rd_post_event_err(struct readers *rd, const struct reader *r, const char *type,
			      int err)
{
	struct rd_event *e;

	if (rd->stopping || rd->loop_gone)
		return;
	e = malloc(sizeof(*e));
	if (!e) {
		log_error("readers: out of memory: event %s of %s lost", type, r->id);
		return;
	}
	e->next = NULL;
	e->type = type;
	reader_fill_info(r, &e->ri);
	e->ri.ready_err = err;
	if (rd->ev_tail)
		rd->ev_tail->next = e;
	else
		rd->ev_head = e;
	rd->ev_tail = e;
	rd_notify_locked(rd);
}

static void rd_post_event(struct readers *rd, const struct reader *r, const char *type)
{
	rd_post_event_err(rd, r, type, 0);
}

/*
 * Posts card.ready for the card r holds now, once per insertion (rd->lock held): when its role is
 * known (err 0), or when it could not be found (err: why; the role is then what reader.list
 * shows, "unknown" for a probed reader). One more follows only when a card.ready with an error is
 * followed by a probe of the same card that finds its role. Every path that makes an insertion
 * usable ends here (today the probe, or the insertion itself on a reader configured "user"; a
 * read-ahead of the card would come between them and this), so that the event always comes
 * after what it announces.
 */
static void reader_ready_locked(struct reader *r, int err)
{
	if (!r->card_present)
		return;
	if (r->ready_gen == r->card_gen && (r->ready_err == 0 || err != 0))
		return;
	r->ready_gen = r->card_gen;
	r->ready_err = err;
	rd_post_event_err(r->rd, r, "card.ready", err);
}

#define JOB_CORE_OF(it) ((struct job_core *)(void *)((char *)(it) - offsetof(struct job_core, qitem)))

static void job_core_unref(struct job_core *core)
{
	if (atomic_fetch_sub(&core->refs, 1) == 1) {
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
	job_core_unref(core);
}

/* Loop thread: the worker is done with the job. Calls done() if not yet, then lets it go. */
static void job_complete(struct job_core *core)
{
	if (!core->done_called) {
		core->done_called = 1;
		core->job->err = core->run_err;
		core->job->done(core->job);
	}
	if (!core->timer_closing) {
		core->timer_closing = 1;
		uv_timer_stop(&core->timer);
		uv_close((uv_handle_t *)&core->timer, job_on_timer_close);
	}
}

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
		job_complete(done);
		done = next;
	}
}

/* The job's deadline passed (loop thread). */
static void job_on_timer(uv_timer_t *t)
{
	struct job_core *core = t->data;
	struct job *job = core->job;
	struct reader *r = core->r;
	struct readers *rd = core->rd;
	enum job_state state;

	pthread_mutex_lock(&rd->lock);
	state = core->state;
	if (state == JOB_QUEUED) {
		(void)jobq_remove(&r->q, &core->qitem);
		core->state = JOB_FINISHED;
		core->run_err = SSC_ETIMEDOUT;
	} else if (state == JOB_RUNNING) {
		r->overrun = 1;
	}
	pthread_mutex_unlock(&rd->lock);

	switch (state) {
	case JOB_QUEUED:
		/* The worker never saw this job: its diag is ours to write. */
		ssc_diag_set(&job->diag, SSC_ETIMEDOUT,
			     "reader %s stayed busy: the operation waited %d ms without starting",
			     job->used_reader, core->timeout_ms);
		job_core_unref(core);   /* the worker side: it never runs (the timer's ref remains) */
		job_complete(core);
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
		/* Its completion is queued and is delivered by rd_on_wakeup() in this same turn. */
		break;
	}
}

/* ---------------------------------------------------------------------------------------------
 * Threads and readers' lifetimes.
 */

static void reader_destroy(struct reader *r)
{
	if (r->slot)
		r->mon->ops->disconnect(r->slot, 1);
	jobq_done(&r->q);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->card_lock);
	free(r);
}

static void rd_destroy(struct readers *rd)
{
	struct reader *r = rd->table;

	while (r) {
		struct reader *next = r->next;

		reader_destroy(r);
		r = next;
	}
	for (size_t i = 0; i < rd->n_mons; i++)
		rd->mons[i].ops->close(rd->mons[i].drv);
	while (rd->ev_head) {
		struct rd_event *e = rd->ev_head;

		rd->ev_head = e->next;
		free(e);
	}
	pthread_cond_destroy(&rd->cond);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
}

/* A core thread ends. The last one after readers_free() gave up on it frees rd. */
static void rd_thread_exit(struct readers *rd)
{
	int last;

	pthread_mutex_lock(&rd->lock);
	rd->live_threads--;
	pthread_cond_broadcast(&rd->cond);
	last = rd->abandoned && rd->live_threads == 0;
	pthread_mutex_unlock(&rd->lock);
	if (last) {
		log_info("readers: the last stuck thread returned; freeing the reader core");
		rd_destroy(rd);
	}
}

/* Starts a detached core thread (rd->lock held). Returns 0 or SSC_ENOMEM. */
static int rd_spawn_locked(struct readers *rd, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int e;

	if (pthread_attr_init(&attr) != 0)
		return SSC_ENOMEM;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		log_error("readers: cannot start a thread: %s", strerror(e));
		return SSC_ENOMEM;
	}
	rd->live_threads++;
	return 0;
}

/*
 * Hands a finished job to the loop (rd->lock held). The worker side's reference is dropped here,
 * before the loop can see the job, so that in normal operation release() always runs on the loop
 * (the timer's reference is the last). Returns 1 when the loop is gone: the caller must then call
 * job_core_unref() itself after unlocking (release() then runs on the worker thread).
 */
static int rd_complete_locked(struct readers *rd, struct job_core *core)
{
	if (rd->loop_gone)
		return 1;
	atomic_fetch_sub(&core->refs, 1);   /* never the last: the timer is still open */
	if (rd->done_tail)
		rd->done_tail->qnext = core;
	else
		rd->done_head = core;
	rd->done_tail = core;
	rd_notify_locked(rd);
	return 0;
}

/* Takes the card lock of r, waiting until deadline at most. Returns 0 or SSC_ETIMEDOUT. */
static int reader_lock_card(struct reader *r, int64_t deadline)
{
	struct timespec ts;

	if (pthread_mutex_trylock(&r->card_lock) == 0)
		return 0;
	rd_abs_monotonic(&ts, deadline);
	return pthread_mutex_clocklock(&r->card_lock, CLOCK_MONOTONIC, &ts) == 0 ? 0
										   : SSC_ETIMEDOUT;
}

/* Closes the connection of r (card_lock held). */
static void reader_drop_slot(struct reader *r, int reset)
{
	if (r->slot)
		r->mon->ops->disconnect(r->slot, reset);
	r->slot = NULL;
	r->slot_broken = 0;
	r->lent_memory = 0;
}

/*
 * Makes sure r has a connection to the card it holds now (card_lock held): reuses an open one,
 * re-establishes a broken one, opens a new one with the configured exclusive-access retry.
 * Returns 0, or the driver's error (SSC_ENOCARD, SSC_EREADERBUSY, SSC_ETIMEDOUT, SSC_EREADER...).
 */
static int reader_connect(struct reader *r, int64_t deadline)
{
	struct readers *rd = r->rd;
	const struct ssc_driver_ops *ops = r->mon->ops;
	struct ssc_slot *slot = NULL;
	unsigned gen;
	int present, rc;
	int64_t left;

	pthread_mutex_lock(&rd->lock);
	gen = r->card_gen;
	present = r->card_present;
	pthread_mutex_unlock(&rd->lock);

	if (r->slot && r->slot_gen != gen)
		reader_drop_slot(r, 0);   /* another card since: that connection is stale */
	if (r->slot && r->slot_broken) {
		r->slot_atr_len = 0;
		r->lent_memory = 0;
		if (ops->reconnect(r->slot, r->slot_atr, &r->slot_atr_len) == 0) {
			r->slot_broken = 0;
			return 0;
		}
		reader_drop_slot(r, 0);
	}
	if (r->slot)
		return 0;
	if (!present)
		return SSC_ENOCARD;
	left = rd_ms_until(deadline);
	if (left <= 0)
		return SSC_ETIMEDOUT;
	if (left > rd->cfg->connect_timeout_ms)
		left = rd->cfg->connect_timeout_ms;
	r->slot_atr_len = 0;
	rc = ops->connect(r->mon->drv, r->id, (int)left, &slot, r->slot_atr, &r->slot_atr_len);
	if (rc != 0)
		return rc;
	r->slot = slot;
	r->slot_gen = gen;
	r->slot_broken = 0;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The choke point: every APDU of every card and PSAM passes here.
 */

static int reader_io_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len,
			      uint8_t *resp, size_t resp_cap, unsigned flags)
{
	struct reader *r = io->ctx;
	int64_t left;
	int n;

	if (!r || !cmd || !resp || cmd_len < 4 || cmd_len > SSC_CMD_APDU_MAX || resp_cap < 2)
		return SSC_EINVAL;
	if (!r->slot || r->slot_broken)
		return SSC_ECARDREMOVED;
	/* Never start an APDU after the deadline: PC/SC could not stop it once sent. */
	left = rd_ms_until(io->deadline_ms);
	if (left <= 0) {
		log_debug("reader %s: deadline passed, APDU %02X %02X not sent", r->id, cmd[0],
			  cmd[1]);
		return SSC_ETIMEDOUT;
	}
	if (left > r->rd->cfg->apdu_timeout_ms)
		left = r->rd->cfg->apdu_timeout_ms;

	if (log_enabled(LOG_LVL_TRACE)) {
		char hex[2 * SSC_CMD_APDU_MAX + 1];

		if (flags & CARDIO_SECRET) {
			/* The body is a PIN or a PIN block: the header and Lc only, never the body. */
			hex_encode(cmd, cmd_len < 5 ? cmd_len : 5, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s > %s [%zu secret bytes]", r->id, hex,
				  cmd_len > 5 ? cmd_len - 5 : 0);
		} else {
			hex_encode(cmd, cmd_len, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s > %s", r->id, hex);
		}
	}

	if (r->rd->apdu_sent)
		r->rd->apdu_sent(r->mon->ops->name);
	n = r->mon->ops->transmit(r->slot, cmd, cmd_len, resp, resp_cap, (int)left);
	if (n >= 0 && (n < 2 || (size_t)n > resp_cap))
		n = SSC_EPROTO;   /* a driver must not do this; the layer above must never see it */

	if (n < 0) {
		log_trace("apdu %s < %s", r->id, ssc_strerror_name(n));
		if (n == SSC_ECARDREMOVED || n == SSC_ENOCARD || n == SSC_EREADER) {
			/*
			 * The card is gone (or reset under us): its connection is dead and what we
			 * remembered about this insertion no longer holds. The monitor reports the
			 * removal itself once the subsystem has noticed it.
			 */
			r->slot_broken = 1;
			r->insertion_flags = 0;
		}
	} else if (log_enabled(LOG_LVL_TRACE)) {
		char hex[2 * SSC_RESP_APDU_MAX + 1];

		if (flags & CARDIO_PERSONAL) {
			log_trace("apdu %s < [%d bytes] %02X%02X", r->id, n - 2, resp[n - 2],
				  resp[n - 1]);
		} else {
			hex_encode(resp, (size_t)n, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s < %s", r->id, hex);
		}
	}
	return n;
}

/* Sets io up over r's connection (card_lock held). */
static void reader_io_init(struct reader *r, struct card_io *io, int64_t deadline)
{
	memset(io, 0, sizeof(*io));
	io->transmit = reader_io_transmit;
	io->ctx = r;
	memcpy(io->atr, r->slot_atr, sizeof(io->atr));
	io->atr_len = r->slot_atr_len;
	memcpy(io->reader_id, r->id, sizeof(io->reader_id));
	pthread_mutex_lock(&r->rd->lock);
	memcpy(io->reader_serial, r->serial, sizeof(io->reader_serial));
	pthread_mutex_unlock(&r->rd->lock);
	io->deadline_ms = deadline;
}

/* ---------------------------------------------------------------------------------------------
 * Workers.
 */

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

	rc = reader_lock_card(r, deadline);
	if (rc == 0) {
		rc = reader_connect(r, deadline);
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
		if (role != READER_ROLE_PSAM)
			reader_drop_slot(r, 0);   /* PSAMs stay connected between uses */
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
	else if (role == READER_ROLE_UNKNOWN)
		ready_err = SSC_EINTERNAL;   /* never: every other answer names a role */
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
		reader_ready_locked(r, ready_err);
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
 * The error of a job that needs a card of the kind need in a reader whose card is of the other
 * kind: a user-card job on a PSAM's reader is SSC_ENOTSSC (a card is there, and it is not a social
 * security card: "no card" would send the clerk looking for one), a PSAM job on another card's
 * reader SSC_ENOPSAM.
 */
static int rd_wrong_role(const char *id, enum reader_role need, struct ssc_diag *diag)
{
	if (need == READER_ROLE_PSAM)
		return ssc_diag_set(diag, SSC_ENOPSAM, "the card in reader %s is not a PSAM", id);
	return ssc_diag_set(diag, SSC_ENOTSSC,
			    "the card in reader %s is a PSAM, not a social security card", id);
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
	int present, reset = 0, rc;

	if (rd_ms_until(core->deadline_ms) <= 0)
		return SSC_ETIMEDOUT;
	if (reader_lock_card(r, core->deadline_ms) != 0)
		return ssc_diag_set(&job->diag, SSC_ETIMEDOUT,
				    "the card in reader %s stayed in use until the deadline", r->id);

	pthread_mutex_lock(&rd->lock);
	present = r->card_present;
	role = r->role;
	gen = r->card_gen;
	pthread_mutex_unlock(&rd->lock);

	if (!present) {
		rc = ssc_diag_set(&job->diag, SSC_ENOCARD, "no card in reader %s", r->id);
		goto out_unlock;
	}
	if ((need == READER_ROLE_USER && role == READER_ROLE_PSAM) ||
	    (need == READER_ROLE_PSAM && role != READER_ROLE_PSAM)) {
		rc = rd_wrong_role(r->id, need, &job->diag);
		goto out_unlock;
	}
	rc = reader_connect(r, core->deadline_ms);
	if (rc != 0) {
		ssc_diag_set(&job->diag, rc, "cannot open the card in reader %s: %s", r->id,
			     ssc_strerror(rc));
		goto out_unlock;
	}
	if (r->flags_gen != gen) {
		r->flags_gen = gen;
		r->insertion_flags = 0;
	}
	flags = r->insertion_flags;
	reader_io_init(r, &io, core->deadline_ms);
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
	if (reset || r->slot_broken)
		reader_drop_slot(r, reset);
	else if (role != READER_ROLE_PSAM && r->slot && rc == 0 && rd->cfg->card_hold_ms > 0)
		r->hold_until_ms = cardio_now_ms() + rd->cfg->card_hold_ms;
	else if (role != READER_ROLE_PSAM)
		reader_drop_slot(r, 0);
out_unlock:
	pthread_mutex_unlock(&r->card_lock);
	return rc;
}

static void *reader_worker(void *arg)
{
	struct reader *r = arg;
	struct readers *rd = r->rd;
	struct job_core *drained = NULL;
	int free_r;

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
		if (r->probe_retry_ms && r->card_present && cardio_now_ms() >= r->probe_retry_ms) {
			r->probe_retry_ms = 0;
			r->reprobe = 1;
			continue;
		}
		if (jobq_len(&r->q) == 0 && r->hold_until_ms && cardio_now_ms() >= r->hold_until_ms) {
			/* The held card's time is up: let other programs have it. */
			pthread_mutex_unlock(&rd->lock);
			pthread_mutex_lock(&r->card_lock);
			if (r->hold_until_ms && cardio_now_ms() >= r->hold_until_ms) {
				r->hold_until_ms = 0;
				reader_drop_slot(r, 0);
			}
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
		core = JOB_CORE_OF(jobq_pop(&r->q));
		core->state = JOB_RUNNING;
		r->running = core;
		pthread_mutex_unlock(&rd->lock);

		rc = reader_run_job(r, core);

		pthread_mutex_lock(&rd->lock);
		core->state = JOB_FINISHED;
		core->run_err = rc;
		r->running = NULL;
		if (r->overrun) {
			r->overrun = 0;
			log_info("reader %s: the overrun operation returned (%s); reader free again",
				 r->id, ssc_strerror_name(rc));
		}
		if (rd_complete_locked(rd, core)) {
			pthread_mutex_unlock(&rd->lock);
			job_core_unref(core);   /* the worker side, after readers_free() */
			pthread_mutex_lock(&rd->lock);
		}
	}

	/* Jobs still queued end here: the reader left, or the core stops. */
	while (jobq_len(&r->q) > 0) {
		struct job_core *core = JOB_CORE_OF(jobq_pop(&r->q));

		core->qnext = NULL;
		core->state = JOB_FINISHED;
		core->run_err = rd->stopping ? SSC_ESHUTDOWN : SSC_ENOREADER;
		if (core->run_err == SSC_ENOREADER)
			ssc_diag_set(&core->job->diag, SSC_ENOREADER,
				     "reader %s went away before the operation started", r->id);
		if (rd_complete_locked(rd, core)) {
			core->qnext = drained;
			drained = core;
		}
	}
	pthread_mutex_unlock(&rd->lock);
	for (struct job_core *c = drained, *next; c; c = next) {
		next = c->qnext;
		job_core_unref(c);
	}

	pthread_mutex_lock(&r->card_lock);
	/* A held user card has no security state left (else it was reset at once): leave it. */
	reader_drop_slot(r, r->hold_until_ms ? 0 : 1);
	r->hold_until_ms = 0;
	pthread_mutex_unlock(&r->card_lock);

	pthread_mutex_lock(&rd->lock);
	free_r = --r->refs == 0;
	pthread_mutex_unlock(&rd->lock);
	if (free_r)
		reader_destroy(r);
	rd_thread_exit(rd);
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Monitors.
 */

/* The role the configuration gives a reader: USER, PSAM, UNKNOWN (probe), or -1 (ignore it). */
static int rd_config_role(const struct readers *rd, const char *id, const char *name)
{
	for (int i = 0; i < rd->cfg->n_roles && i < CONFIG_MAX_ROLES; i++) {
		const struct config_role *cr = &rd->cfg->roles[i];

		if (strcmp(cr->reader, id) != 0 && strcmp(cr->reader, name) != 0)
			continue;
		if (strcmp(cr->role, "user") == 0)
			return READER_ROLE_USER;
		if (strcmp(cr->role, "psam") == 0)
			return READER_ROLE_PSAM;
		if (strcmp(cr->role, "ignore") == 0)
			return -1;
	}
	return READER_ROLE_UNKNOWN;
}

/* rd->lock held. */
static void monitor_card_in(struct reader *r, const struct ssc_reader_desc *d)
{
	r->card_present = 1;
	r->atr_len = d->atr_len <= SSC_ATR_MAX ? d->atr_len : 0;
	memcpy(r->atr, d->atr, r->atr_len);
	r->card_gen++;
	r->psam_alg = SSC_ALG_NONE;
	r->psam_term[0] = '\0';
	r->reprobe = 0;
	r->probe_failures = 0;
	r->probe_retry_ms = 0;
	r->role = r->fixed_role;
	if (r->fixed_role == READER_ROLE_USER)
		r->probed_gen = r->card_gen;
	log_info("reader %s: card inserted", r->id);
	rd_post_event(r->rd, r, "card.inserted");
	/*
	 * A reader configured "user" is not probed: its card is ready now, or as soon as the
	 * subsystem reports its ATR (monitor_apply()). Others after the probe.
	 */
	if (r->fixed_role == READER_ROLE_USER && r->atr_len > 0)
		reader_ready_locked(r, 0);
	pthread_cond_signal(&r->cond);
}

/* rd->lock held. */
static void monitor_card_out(struct reader *r)
{
	/* Every card.inserted has its card.ready before its card.removed. */
	reader_ready_locked(r, SSC_ECARDREMOVED);
	r->card_present = 0;
	r->atr_len = 0;
	r->card_gen++;
	r->role = READER_ROLE_UNKNOWN;
	r->psam_alg = SSC_ALG_NONE;
	log_info("reader %s: card removed", r->id);
	rd_post_event(r->rd, r, "card.removed");
}

static const struct ssc_reader_desc *monitor_find_desc(const struct ssc_reader_desc *d, size_t n,
						       const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].id, id) == 0)
			return &d[i];
	return NULL;
}

static struct reader *rd_find_locked(struct readers *rd, const char *id)
{
	for (struct reader *r = rd->table; r; r = r->next)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

/* rd->lock held. A new reader from driver m: table entry, worker, events. */
static void monitor_reader_new(struct rd_monitor *m, const struct ssc_reader_desc *d)
{
	struct readers *rd = m->rd;
	struct reader *r, **pp;
	int role;

	role = rd_config_role(rd, d->id, d->name);
	if (role < 0) {
		log_debug("reader %s: ignored by configuration", d->id);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("readers: out of memory for reader %s", d->id);
		return;
	}
	if (pthread_mutex_init(&r->card_lock, NULL) != 0) {
		free(r);
		return;
	}
	if (pthread_cond_init(&r->cond, NULL) != 0) {
		pthread_mutex_destroy(&r->card_lock);
		free(r);
		return;
	}
	r->rd = rd;
	r->mon = m;
	jobq_init(&r->q, READERS_QUEUE_MAX, READERS_QUEUE_TOTAL_MAX);
	memcpy(r->id, d->id, sizeof(r->id));
	r->id[sizeof(r->id) - 1] = '\0';
	memcpy(r->name, d->name, sizeof(r->name));
	r->name[sizeof(r->name) - 1] = '\0';
	memcpy(r->serial, d->serial, sizeof(r->serial));
	r->serial[sizeof(r->serial) - 1] = '\0';
	r->fixed_role = (enum reader_role)role;
	r->refs = 2;   /* the table and the worker */
	if (rd_spawn_locked(rd, reader_worker, r) != 0) {
		reader_destroy(r);
		return;
	}
	for (pp = &rd->table; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	log_info("reader %s added (%s)", r->id, r->name);
	rd_post_event(rd, r, "reader.added");
	if (d->card_present)
		monitor_card_in(r, d);
}

/* Brings the table in line with driver m's snapshot d[0..n) and posts the differences. */
static void monitor_apply(struct rd_monitor *m, const struct ssc_reader_desc *d, size_t n)
{
	struct readers *rd = m->rd;
	struct reader *gone = NULL;

	pthread_mutex_lock(&rd->lock);
	if (rd->stopping) {
		pthread_mutex_unlock(&rd->lock);
		return;
	}
	for (struct reader **pp = &rd->table; *pp;) {
		struct reader *r = *pp;
		const struct ssc_reader_desc *desc;

		if (r->mon != m) {
			pp = &r->next;
			continue;
		}
		desc = monitor_find_desc(d, n, r->id);
		if (!desc) {
			if (r->card_present)
				monitor_card_out(r);
			log_info("reader %s removed", r->id);
			rd_post_event(rd, r, "reader.removed");
			r->stop = 1;
			pthread_cond_signal(&r->cond);
			*pp = r->next;
			if (--r->refs == 0) {
				r->next = gone;
				gone = r;
			}
			continue;
		}
		if (desc->serial[0] && strcmp(r->serial, desc->serial) != 0)
			snprintf(r->serial, sizeof(r->serial), "%s", desc->serial);
		if (r->card_present &&
		    (!desc->card_present ||
		     (r->atr_len && desc->atr_len &&
		      (r->atr_len != desc->atr_len || memcmp(r->atr, desc->atr, r->atr_len) != 0))))
			monitor_card_out(r);
		if (!r->card_present && desc->card_present) {
			monitor_card_in(r, desc);
		} else if (r->card_present && r->atr_len == 0 && desc->atr_len <= SSC_ATR_MAX) {
			memcpy(r->atr, desc->atr, desc->atr_len);
			r->atr_len = desc->atr_len;
			if (r->fixed_role == READER_ROLE_USER && r->atr_len > 0)
				reader_ready_locked(r, 0);
		}
		pp = &r->next;
	}
	for (size_t i = 0; i < n; i++) {
		if (rd_find_locked(rd, d[i].id))
			continue;
		if (monitor_find_desc(d, i, d[i].id) != NULL) {
			log_warn("readers: two readers map to the id %s; ignoring \"%s\"", d[i].id,
				 d[i].name);
			continue;
		}
		monitor_reader_new(m, &d[i]);
	}
	pthread_mutex_unlock(&rd->lock);
	while (gone) {
		struct reader *next = gone->next;

		reader_destroy(gone);
		gone = next;
	}
}

/* Sleeps up to ms unless the core stops. */
static void monitor_nap(struct readers *rd, int64_t ms)
{
	struct timespec ts;

	rd_abs_monotonic(&ts, cardio_now_ms() + ms);
	pthread_mutex_lock(&rd->lock);
	while (!rd->stopping) {
		if (pthread_cond_timedwait(&rd->cond, &rd->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&rd->lock);
}

static void *monitor_main(void *arg)
{
	struct rd_monitor *m = arg;
	struct readers *rd = m->rd;
	struct ssc_reader_desc *d;
	int fails = 0;

	d = calloc(READERS_PER_DRIVER_MAX, sizeof(*d));
	if (!d) {
		log_error("readers: out of memory: monitor of %s not running", m->ops->name);
		rd_thread_exit(rd);
		return NULL;
	}
	for (;;) {
		int n, w, stopping;
		int64_t t0;

		pthread_mutex_lock(&rd->lock);
		stopping = rd->stopping;
		pthread_mutex_unlock(&rd->lock);
		if (stopping)
			break;

		n = m->ops->list(m->drv, d, READERS_PER_DRIVER_MAX);
		if (n > READERS_PER_DRIVER_MAX)
			n = READERS_PER_DRIVER_MAX;
		monitor_apply(m, d, n < 0 ? 0 : (size_t)n);

		t0 = cardio_now_ms();
		w = m->ops->wait_change(m->drv, READERS_WAIT_MS);
		if (w == SSC_EREADER)
			monitor_apply(m, d, 0);   /* the subsystem is gone, and its readers with it */
		if (w == SSC_EREADER || (n < 0 && w != 1) || (w < 0 && w != SSC_EREADER)) {
			/* Whatever the driver does, never spin while the subsystem is down. */
			int64_t backoff = READERS_BACKOFF_MIN_MS << (fails < 5 ? fails : 5);
			int64_t spent = cardio_now_ms() - t0;

			if (backoff > READERS_BACKOFF_MAX_MS)
				backoff = READERS_BACKOFF_MAX_MS;
			fails++;
			if (spent < backoff)
				monitor_nap(rd, backoff - spent);
		} else {
			fails = 0;
		}
	}
	free(d);
	rd_thread_exit(rd);
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * PSAMs lent to other workers (the PSAM pool, src/psam_pool.c, is built on these).
 */

int readers_psam_lend(struct readers *rd, enum ssc_alg alg, int64_t deadline_ms,
		      struct card_io **io)
{
	struct reader *cand[READERS_PSAM_MAX], *got = NULL;
	size_t n = 0, turn = 0;
	int any = 0, rc;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next) {
		if (!r->card_present || r->role != READER_ROLE_PSAM)
			continue;
		any = 1;
		if (r->psam_alg != alg || alg == SSC_ALG_NONE || n == READERS_PSAM_MAX)
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
			reader_destroy(cand[i]);   /* it left the table while we looked at it */
	if (!got)
		return SSC_ETIMEDOUT;

	rc = reader_connect(got, deadline_ms);
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
	int free_r;

	if (!io)
		return;
	r = io->ctx;
	if (broken || r->slot_broken) {
		/* The PSAM failed at transport level: start over, and probe it before its next use. */
		reader_drop_slot(r, 1);
		pthread_mutex_lock(&rd->lock);
		r->reprobe = 1;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&rd->lock);
	}
	pthread_mutex_unlock(&r->card_lock);
	pthread_mutex_lock(&rd->lock);
	free_r = --r->refs == 0;
	pthread_mutex_unlock(&rd->lock);
	if (free_r)
		reader_destroy(r);
}

int readers_psam_terminal(struct readers *rd, enum ssc_alg alg, char out[13])
{
	int any = 0, match = 0, rc = SSC_ENOTFOUND;

	pthread_mutex_lock(&rd->lock);
	for (struct reader *r = rd->table; r; r = r->next) {
		if (!r->card_present || r->role != READER_ROLE_PSAM)
			continue;
		any = 1;
		if (r->psam_alg != alg || alg == SSC_ALG_NONE)
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

/* ---------------------------------------------------------------------------------------------
 * The API.
 */

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
			rc = rd_spawn_locked(rd, monitor_main, &rd->mons[i]);
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
		struct reader *r = c->r;

		if (c->state != JOB_QUEUED)
			continue;
		(void)jobq_remove(&r->q, &c->qitem);
		c->state = JOB_FINISHED;
		c->run_err = SSC_ESHUTDOWN;
		atomic_fetch_sub(&c->refs, 1);   /* the worker side; the timer's ref remains */
	}
	pthread_mutex_unlock(&rd->lock);

	while (done) {
		struct job_core *next = done->qnext;

		done->qnext = NULL;
		job_complete(done);
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
		if (!c->timer_closing) {
			c->timer_closing = 1;
			uv_timer_stop(&c->timer);
			uv_close((uv_handle_t *)&c->timer, job_on_timer_close);
		}
	}
	rd->jobs = NULL;
	rd_wakeup_close(rd);

	if (stuck > 0) {
		log_warn("readers: %d thread(s) still blocked in a driver call after %d ms; leaving "
			 "them detached", stuck, READERS_STOP_WAIT_MS);
		return;   /* the last of them frees rd (rd_thread_exit) */
	}
	rd_destroy(rd);
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
		reader_fill_info(r, &ri[i++]);
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
		r = rd_find_locked(rd, job->reader_id);
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
			*err = rd_wrong_role(r->id, need, &job->diag);
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
	ssc_diag_init(&job->diag);
	if (rd->stopping)
		return SSC_ESHUTDOWN;
	timeout = job->timeout_ms > 0 ? job->timeout_ms : rd->cfg->op_timeout_ms;
	core = calloc(1, sizeof(*core));
	if (!core)
		return SSC_ENOMEM;
	core->job = job;
	core->rd = rd;
	core->timeout_ms = timeout;
	core->deadline_ms = cardio_now_ms() + timeout;
	atomic_init(&core->refs, 2);

	pthread_mutex_lock(&rd->lock);
	r = rd_resolve_locked(rd, job, &err);
	if (r && r->overrun)
		err = ssc_diag_set(&job->diag, SSC_EREADERBUSY,
				   "reader %s is still busy with an operation that overran its "
				   "deadline", r->id);
	else if (r) {
		err = jobq_push(&r->q, &core->qitem, job->owner);
		if (err == SSC_ELIMIT && jobq_owner_len(&r->q, job->owner) >= READERS_QUEUE_MAX)
			ssc_diag_set(&job->diag, err, "%d operations of this connection wait on reader "
				     "%s already (at most %d)", jobq_owner_len(&r->q, job->owner),
				     r->id, READERS_QUEUE_MAX);
		else if (err == SSC_ELIMIT)
			ssc_diag_set(&job->diag, err, "reader %s has %d operations waiting already",
				     r->id, jobq_len(&r->q));
	}
	if (err == 0) {
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
	/*
	 * The worker may run the job already, but it never touches the timer, and its completion
	 * is only handled on this (the loop) thread, after we return.
	 */
	uv_timer_init(rd->loop, &core->timer);   /* cannot fail for a valid loop */
	core->timer.data = core;
	job->core = core;
	/* The loop's clock may lag (it is read once per turn): never answer before the deadline. */
	uv_update_time(rd->loop);
	core->next = rd->jobs;
	if (rd->jobs)
		rd->jobs->prev = core;
	rd->jobs = core;
	uv_timer_start(&core->timer, job_on_timer, (uint64_t)timeout, 0);
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
		(void)jobq_remove(&c->r->q, &c->qitem);
		c->state = JOB_FINISHED;
		c->run_err = SSC_ECANCELED;
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
		job_core_unref(c);   /* the worker side: it never runs (the timer's ref remains) */
		job_complete(c);
	}
	return n;
}
