/*
 * This file contains the reader core: it runs the drivers it is given (one monitor each), keeps
 * the table of readers and their roles (user card or PSAM, as the probe it is given tells), owns
 * one worker thread per reader that serialises card access, and is the one choke point through
 * which every APDU passes (deadline, masked log, length checks). The event loop submits jobs here
 * and gets exactly one completion per job, at the job's deadline at the latest, even when the card
 * or the driver hangs. Its files are listed in src/readers_int.h.
 */
#ifndef SSC_READERS_H
#define SSC_READERS_H

#include <stdint.h>
#include <uv.h>

#include "cardio.h"
#include "config.h"
#include "sscard/driver.h"
#include "sscard/error.h"

enum reader_role { READER_ROLE_UNKNOWN = 0, READER_ROLE_USER, READER_ROLE_PSAM };

/* A snapshot of one reader, as reader.list reports it. */
struct reader_info {
	char id[SSC_READER_ID_MAX];
	char name[SSC_READER_NAME_MAX];
	char driver[16];
	char serial[SSC_READER_SERIAL_MAX];
	int card_present;
	enum reader_role role;     /* UNKNOWN while no card or not yet probed */
	enum ssc_alg psam_alg;     /* for a PSAM: its algorithm */
	char psam_term[13];        /* for a PSAM: its terminal number as the probe read it, "" unknown */
	int busy;                  /* a job (or an overrun one) holds the reader */
	uint8_t atr[SSC_ATR_MAX];
	size_t atr_len;
	int ready_err;             /* card.ready only: why the role could not be found (SSC_E*), else 0 */
	int queued;                /* jobs waiting for the reader (not the one running): metrics */
};

struct job;

/*
 * Runs on the reader's worker thread with the card connected (exclusive). io->deadline_ms is the
 * job's deadline. *insertion_flags is the card's per-insertion memory: a word the core keeps for
 * each insertion, zero on a new one, and never looks into (its bits are the card application's:
 * CARD_FLAG_* in ssc.h and ops.h). Sets
 * job->result (owned by the job) and returns 0, or returns SSC_E* with job->diag filled (and
 * job->result, if the submitter wants more about a failure: the core does not look at it). Setting
 * *reset_card = 1 makes the core reset the card when it disconnects (clears security state).
 */
typedef int (*job_run_fn)(struct job *job, struct card_io *io, unsigned *insertion_flags,
			  int *reset_card);

/*
 * Loop thread, exactly once per submitted job: job->err says how it ended. With SSC_ETIMEDOUT or
 * SSC_ESHUTDOWN the job may still be running on its worker (a card that does not answer): run()
 * may then still write job->diag and job->result, so done() must read neither for those two
 * errors (ssc_strerror(err) says what happened), unless job->never_started is set (the job
 * never reached the card: the core wrote diag); release() follows once the worker let go.
 */
typedef void (*job_done_fn)(struct job *job);

/*
 * Frees the job and what it owns, once both done() has run and the worker has let go of it. On
 * the loop thread, except for a job still stuck in a driver call when readers_free() returned:
 * that one is released on its worker thread if the call ever returns.
 */
typedef void (*job_release_fn)(struct job *job);

struct job {
	/* Set by the submitter. */
	job_run_fn run;
	job_done_fn done;
	job_release_fn release;
	void *arg;                           /* the submitter's context */
	char reader_id[SSC_READER_ID_MAX];   /* "" = the one reader holding a user card */
	const void *owner;                   /* whose job it is (the client's connection; NULL = the
					      * daemon's own): a reader's queue takes turns across
					      * owners, and readers_cancel() acts on one owner */
	enum reader_role need_role;          /* USER for card.*, PSAM for a PSAM job */
	int timeout_ms;                      /* from submission to completion */
	/*
	 * A reader's lease (the two-step read of spec §13.1): the card stays connected, unreset,
	 * for the jobs of one lease only, until a job of the lease ends it, the card leaves, or
	 * the time runs out (then the card is reset). lease is set by the submitter to run a job
	 * of a lease (0 = none), or by run() to ask for one: after a run() that succeeded with
	 * lease != 0 and lease_ms > 0 on a reader not leased, the reader is leased to lease for
	 * lease_ms. A job of the lease ends it whatever its result (lease_ms is not looked at).
	 */
	uint64_t lease;
	int lease_ms;
	/*
	 * 1: the job only reads the card, so that the read-ahead's data of this insertion
	 * (struct readers_ahead) outlives it when it succeeds; 0: it may change the card (a write, a
	 * PIN command), and the data is dropped before it runs.
	 */
	int ahead_keep;
	/* Set by the core before done(). */
	int err;                             /* 0 or SSC_E* (SSC_ETIMEDOUT at the deadline) */
	struct ssc_diag diag;
	void *result;                        /* set by run(); released by release() */
	char used_reader[SSC_READER_ID_MAX]; /* the reader the job ran on */
	int lease_left_ms;                   /* SSC_EREADERLEASED: the lease's time left */
	int never_started;                   /* SSC_ETIMEDOUT before it started on the card (it
					      * waited for its reader): diag, written by the core,
					      * says how long and behind how many, and done() may
					      * read it */
	/* Private to the core. */
	void *core;
};

typedef void (*readers_event_fn)(void *arg, const char *type, const struct reader_info *ri);

/*
 * Tells the kind of a new card, on its reader's worker with the card connected (io; the core's
 * choke point and the probe's deadline). Returns 0 (a PSAM: *alg its algorithm, term its terminal
 * number in 12 hex digits), SSC_EPSAMALGO (a PSAM of an algorithm sscard does not speak),
 * SSC_ENOTFOUND (not a PSAM: a user card), or the transport's error (the kind stays unknown and
 * the card is probed again later, with a back-off).
 */
typedef int (*readers_probe_fn)(struct card_io *io, enum ssc_alg *alg, char term[13]);

/*
 * The read-ahead of a user card ([card] prefetch; sscardd: ops_ahead_read). read() runs on the
 * card's worker as soon as a new card turns out to be a user card (after the probe; on a reader
 * configured "user", at the insertion), before its card.ready, with the card connected (io, as a
 * job's run(), with a deadline op_timeout_ms away). It returns 0 and *kept (the data, opaque to
 * the core; NULL = nothing worth keeping), or an error (nothing kept). The core keeps the data for
 * that insertion only while the connection it was read over stays open (held exclusively, then
 * shared past card_hold_ms where the driver can share: ssc_driver_ops.share) and hands it to the
 * next job in io->ahead once the driver confirmed that the card was neither removed nor reset
 * since (ssc_driver_ops.status, no APDU). drop() wipes and frees it: at the removal, when the
 * connection is closed (a reset, a broken connection, card_hold_ms passed with prefetch_shared
 * off), after a job that failed or may have changed the card (job->ahead_keep 0).
 * Never runs while a lease holds the reader, on a driver without status(), or with card_hold_ms 0.
 */
struct readers_ahead {
	int (*read)(void *arg, struct card_io *io, unsigned *insertion_flags, int *reset_card,
		    void **kept);
	void (*drop)(void *kept);
	void *arg;
};

/*
 * What the core is given besides its configuration: the collaborators it calls, so that a test can
 * hand it fakes (a driver that misbehaves, a probe of its own). readers_new() copies the struct;
 * what it points to is borrowed and must outlive the core.
 */
struct readers_setup {
	const struct ssc_driver_ops *const *drivers;   /* the drivers to run, one monitor each */
	size_t n_drivers;                              /* 1 .. READERS_DRIVERS_MAX */
	readers_probe_fn probe;                        /* required (sscardd: psam_probe) */
	/* Optional: told of every APDU sent, with the driver's name. Worker threads; never blocks. */
	void (*apdu_sent)(const char *driver);
	/* Optional: the read-ahead (NULL: none), copied by readers_new(). */
	const struct readers_ahead *ahead;
};

#define READERS_DRIVERS_MAX 4

struct readers;

/*
 * Creates the reader core over the drivers of setup, with cfg (borrowed; must outlive the core).
 * Events ("reader.added", "reader.removed", "card.inserted", "card.ready", "card.removed") are
 * delivered on the loop thread through ev, in the order they happened. Per insertion:
 * card.inserted, then card.ready once the card's role is known (after the probe; at once on a
 * reader configured "user"), or could not be found (ri->ready_err says why; SSC_ECARDREMOVED
 * when the card left first), then card.removed. A card.ready with an error is followed by another
 * card.ready if a later probe of the same card finds its role. reader.removed follows the
 * card.removed of a card still inside. Returns 0 and *out, or SSC_ENOMEM, SSC_ECONFIG (no driver:
 * none is enabled), SSC_EINVAL (no probe, too many drivers), or a driver's error from open()
 * (SSC_EREADER, ...).
 */
int readers_new(uv_loop_t *loop, const struct config *cfg, const struct readers_setup *setup,
		readers_event_fn ev, void *ev_arg, struct readers **out);

/* Starts the monitors and workers. Loop thread. */
int readers_start(struct readers *rd);

/*
 * Stops every thread, abandoning jobs (their done() gets SSC_ESHUTDOWN). Waits at most about
 * two seconds for a worker stuck in a driver call, then leaves it detached (the last such thread
 * frees what is left when its call returns). Loop thread; run the loop once more afterwards so that
 * it closes the core's handles (and releases the jobs). NULL is a no-op.
 */
void readers_free(struct readers *rd);

/* Snapshot of all readers into a new array (*out, free() it) of *n entries. Loop thread. */
int readers_list(struct readers *rd, struct reader_info **out, size_t *n);

/*
 * Queues a job (ownership passes to the core). Loop thread. Resolves job->reader_id ("" = the one
 * reader holding a user card). Returns 0: done() will be called once. Or returns, without calling
 * done(), SSC_ENOREADER, SSC_ENOCARD (no card in the named reader, or no reader holds a card of
 * the needed role), SSC_ENOTSSC (the named reader holds a PSAM and a user card is needed),
 * SSC_ENOPSAM (the named reader holds a card that is not a PSAM and a PSAM is needed),
 * SSC_EREADERSELECT (several do: the candidates are listed in job->diag.msg), SSC_EREADERBUSY (the
 * reader is still held by an overrun job), SSC_EREADERLEASED (the reader is leased, and not to
 * job->lease: job->lease_left_ms says for how long at most), SSC_ECARDREMOVED (job->lease is not
 * the reader's lease, or no more: its card left, or the lease ended), SSC_ELIMIT (job->owner has [limits]
 * max_inflight_per_client jobs waiting on that reader already, or all owners together
 * config_queued_per_reader()); the caller still owns the job then. A job waits for its reader until
 * its deadline (timeout_ms from submission); one that has not started by then ends with
 * SSC_ETIMEDOUT and job->never_started set. Jobs wait in turns
 * across their owners: one job of each owner with jobs waiting, then the next of each (src/jobq.h). A job whose reader turns out to hold the other kind of card once it runs ends the same way
 * (SSC_ENOTSSC, SSC_ENOPSAM), and so does one whose reader was leased meanwhile
 * (SSC_EREADERLEASED, SSC_ECARDREMOVED).
 */
int readers_submit(struct readers *rd, struct job *job);

/*
 * Ends every job of owner that is still waiting in a queue, as if it had never been submitted to
 * a card: done() is called for each, here and now, with SSC_ECANCELED (job->diag says so), oldest
 * first. A job of owner already running on a card goes on (a card operation is not cut short).
 * Loop thread. Returns the number of jobs cancelled.
 */
int readers_cancel(struct readers *rd, const void *owner);

/*
 * Lends the card of a reader whose probe found a PSAM of algorithm alg to the calling thread (a
 * worker of another reader, for the PSAM key provider), locked and connected, until
 * readers_psam_return(). Takes the first such card that is free, waiting on each busy one in
 * turn until deadline_ms at most. *io is the connection, through the choke point, with deadline_ms
 * as its deadline. Returns 0; SSC_ENOPSAM (no PSAM at all), SSC_EPSAMALGO (PSAMs, none of alg),
 * SSC_ETIMEDOUT (all busy until the deadline), or the driver's error opening the card (that PSAM
 * is then reset and probed again, unless the error was SSC_ETIMEDOUT). Any worker thread; blocks.
 */
int readers_psam_lend(struct readers *rd, enum ssc_alg alg, int64_t deadline_ms,
		      struct card_io **io);

/*
 * The borrower's word for the connection of a lent card (io from readers_psam_lend()): kept while
 * the connection stays open between loans, 0 whenever it is new (the card was reset, reinserted
 * or its connection failed). The PSAM pool notes there that the key application is selected.
 * Valid while io is lent.
 */
unsigned *readers_lent_memory(struct card_io *io);

/*
 * Gives back a card from readers_psam_lend(). broken != 0 says it failed at transport level or
 * its state is unknown: it is reset and probed again before it is lent again. NULL is a no-op.
 */
void readers_psam_return(struct readers *rd, struct card_io *io, int broken);

/* The algorithms of the PSAMs present now: bit (1 << alg) per algorithm; 0 = no PSAM. Any thread. */
unsigned readers_psam_algorithms(struct readers *rd);

/*
 * The terminal number (12 hex digits + NUL) that the probe read from a present PSAM of alg,
 * without talking to it. Returns 0, SSC_ENOTFOUND (none known), SSC_ENOPSAM, SSC_EPSAMALGO. Any
 * thread; never blocks on a card.
 */
int readers_psam_terminal(struct readers *rd, enum ssc_alg alg, char out[13]);

/* Stable text of a role: "user", "psam", "unknown". */
const char *reader_role_name(enum reader_role role);

#endif
