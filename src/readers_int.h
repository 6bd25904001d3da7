/*
 * This file contains the reader core's private state, shared by the core's files and by no one
 * else: the core (struct readers), its readers, its jobs, and the locks that guard them. The
 * core's files, from the bottom up (each calls only the ones before it):
 *   reader_io.c       the one door to the drivers for a card: connection, deadline, lengths,
 *                     masked trace, error mapping (the choke point of every APDU)
 *   reader_event.c    what is posted to the loop: events (card.ready among them) and wake-ups
 *   reader_table.c    readers' and the core's lifetimes: references, threads, the end
 *   reader_job.c      a job's life: its states, references, deadline, completion, cancelling
 *   reader_ahead.c    the read-ahead: a user card read on insertion, its data kept while held
 *   reader_worker.c   one worker thread per reader: probes, jobs, the held card
 *   reader_monitor.c  one monitor thread per driver: snapshots turned into the table and events
 *   readers.c         the API (src/readers.h): create, submit, list, cancel, lend a PSAM, free
 *
 * Locks: rd->lock guards the table, each reader's card state, role, queue and busy flags, and the
 * event and completion lists; nobody waits for a card or a driver while holding it. A reader's
 * card_lock is held by whoever talks to its card (the worker running a probe or a job, or a PSAM
 * borrower on another worker thread); it guards the reader's connection and insertion memory.
 * Order: card_lock, then rd->lock; never the reverse.
 *
 * PC/SC threading: a connection (struct ssc_slot) has its own pcsc-lite context. A user card's
 * connection lives for one job on its worker. A PSAM's connection stays open between uses and is
 * used by one thread at a time under card_lock: its worker (probe, PSAM jobs) or the user-card
 * worker that borrowed it. pcsc-lite allows a context to move between threads as long as two
 * threads never use it at once, which card_lock guarantees.
 */
#ifndef SSC_READERS_INT_H
#define SSC_READERS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "jobq.h"
#include "readers.h"

/*
 * A reader's queue holds at most [limits] max_inflight_per_client jobs of one owner (the RPC layer
 * refuses the one beyond before it gets here) and config_queued_per_reader() of all owners: a bound
 * for memory, as large as what the clients may have in flight. A job waits until its deadline.
 */

/*
 * The loop's wake-up: an eventfd watched by a uv_poll handle. (uv_async_send, in libuv 1.44,
 * makes the woken loop spin until the sender has finished; with the two on one CPU that spin is
 * paid on every completed job.) One write per batch of posts: wakeup_pending says a write is
 * waiting to be taken, and the loop clears it when it takes the lists (readers.c).
 */
struct rd_wakeup {
	uv_poll_t poll;
	int fd;
};

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
	int ahead;                     /* jobs waiting or running on r when it was queued */
	uint64_t started_before;       /* r->started when it was queued */
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
	int refs;                      /* the table, the worker, PSAM borrowers */
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
	uint64_t started;              /* jobs started on it so far */
	int overrun;                   /* the running job's deadline passed: refuse new jobs */
	uint64_t lease;                /* the reader's lease (struct job), 0 = none; valid while */
	int64_t lease_until_ms;        /* ... now is before this ... */
	unsigned lease_gen;            /* ... and the card is the one it was given for */
	void *ahead;                   /* the read-ahead's data of card ahead_gen (or NULL), kept
					* only while slot (its connection) stays open and sound:
					* held, or shared to watch the card (slot_shared) */
	unsigned ahead_gen;
	unsigned ahead_done_gen;       /* a reader configured "user": the card_gen read ahead */
	int ahead_err;                 /* the last read-ahead's error (0: kept) ... */
	unsigned ahead_err_gen;        /* ... of this card_gen */
	int ahead_again;               /* a PSAM came: read ahead again (reader_ahead_again_locked) */
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
	int slot_shared;               /* past the hold, slot stays open to other programs (the
					* driver's share()) to watch the card whose data is kept */
	unsigned lent_memory;          /* the borrower's word for this connection (0 when new) */
	unsigned insertion_flags;
	uint32_t ahead_insertions;     /* the driver's status() when the read-ahead ended */
	struct card_io psam_io;        /* what readers_psam_lend() hands out */
};

struct readers {
	uv_loop_t *loop;
	const struct config *cfg;
	readers_event_fn ev;
	void *ev_arg;
	struct rd_wakeup *wakeup;      /* how other threads wake the loop (reader_event.c) */
	int wakeup_pending;            /* a wake-up is written and not yet taken (lock held) */
	readers_probe_fn probe;
	void (*apdu_sent)(const char *driver);
	struct readers_ahead ahead;    /* read == NULL: no read-ahead */
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

/* The job_core whose queue item it is. */
#define JOB_CORE_OF(it) ((struct job_core *)(void *)((char *)(it) - offsetof(struct job_core, qitem)))

/* Milliseconds from now until deadline (CLOCK_MONOTONIC), <= 0 once it passed. */
static inline int64_t rd_ms_until(int64_t deadline)
{
	return deadline - cardio_now_ms();
}

/* deadline_ms as an absolute CLOCK_MONOTONIC time, for the clock-aware waits. */
static inline void rd_abs_monotonic(struct timespec *ts, int64_t deadline_ms)
{
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

#endif
