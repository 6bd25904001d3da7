/*
 * This file contains the unit tests of the reader core (src/readers.h) with a fake driver handed to
 * it through struct readers_setup: a driver whose readers and cards the test sets, and which can
 * misbehave on purpose (answers longer than the buffer or shorter than a status word, a transmit
 * that blocks, a reader that reports a card it cannot open, a card that vanishes mid-APDU). No
 * pcscd, no device, no root: run as root, the test drops to nobody (uid and gid 65534) before it
 * starts, so that a need for privilege shows as a failure. Expected values are written by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "cardio.h"
#include "config.h"
#include "log.h"
#include "readers.h"

#define FAKE_READERS 4
#define NOBODY 65534

/* ---- the fake driver ---------------------------------------------------------------------- */

enum fake_mode {
	FAKE_ECHO = 0,   /* INS 01: the command's body, then 90 00; INS B2: "Zhang" 90 00; else 90 00 */
	FAKE_LONG,       /* claims one byte more than resp_cap (writes no more than resp_cap) */
	FAKE_ONE,        /* claims a one-byte answer */
	FAKE_EMPTY,      /* claims an empty answer */
	FAKE_ERROR,      /* returns fake_reader.error */
	FAKE_BLOCK,      /* blocks until fake.unblock (30 s at most), then 90 00 */
};

struct fake_reader {
	char id[SSC_READER_ID_MAX];
	int present;                 /* what list() says */
	int psam;                    /* what the fake probe says of its card */
	int connect_err;             /* connect() fails with this (0: it works) */
	enum fake_mode mode;
	int error;                   /* FAKE_ERROR's answer */
	int transmits;               /* transmit() calls that reached the driver */
	size_t last_cmd_len;
	int status_err;              /* status() answers this (0: the card untouched) */
	uint32_t insertions;         /* ... with this count */
};

struct fake_slot {
	int idx;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fake_reader r[FAKE_READERS];
	struct fake_slot slots[FAKE_READERS];
	int n;
	int changed, woken, unblock, blocked;
	int opens, closes, connects, reconnects, disconnects, resets, probes;
	int shares, claims;          /* the sharing driver's (fake_share_ops) */
	int dup_id;                  /* list() reports reader 0 twice */
} F = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static const uint8_t ATR[] = { 0x3B, 0x88, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00,
			       0x00, 0x00, 0x00, 0x00, 0x09 };

static int fake_open(const struct ssc_driver_config *cfg, struct ssc_driver **out)
{
	(void)cfg;
	pthread_mutex_lock(&F.mu);
	F.opens++;
	pthread_mutex_unlock(&F.mu);
	*out = (struct ssc_driver *)(void *)&F;
	return 0;
}

static void fake_close(struct ssc_driver *drv)
{
	(void)drv;
	pthread_mutex_lock(&F.mu);
	F.closes++;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static int fake_list(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max)
{
	size_t n = 0;

	(void)drv;
	pthread_mutex_lock(&F.mu);
	for (int i = 0; i < F.n && n < max; i++, n++) {
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].id, sizeof(out[n].id), "%s", F.r[i].id);
		snprintf(out[n].name, sizeof(out[n].name), "Fake %s", F.r[i].id);
		out[n].card_present = F.r[i].present;
		if (F.r[i].present) {
			memcpy(out[n].atr, ATR, sizeof(ATR));
			out[n].atr_len = sizeof(ATR);
		}
	}
	if (F.dup_id && n > 0 && n < max) {
		out[n] = out[0];
		snprintf(out[n].name, sizeof(out[n].name), "Another fake with the same id");
		n++;
	}
	pthread_mutex_unlock(&F.mu);
	return (int)n;
}

static int fake_wait_change(struct ssc_driver *drv, int timeout_ms)
{
	struct timespec ts;
	int changed;

	(void)drv;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&F.mu);
	while (!F.changed && !F.woken)
		if (pthread_cond_timedwait(&F.cv, &F.mu, &ts) == ETIMEDOUT)
			break;
	changed = F.changed;
	F.changed = 0;
	F.woken = 0;
	pthread_mutex_unlock(&F.mu);
	return changed ? 1 : 0;
}

static void fake_wake(struct ssc_driver *drv)
{
	(void)drv;
	pthread_mutex_lock(&F.mu);
	F.woken = 1;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static int fake_find(const char *id)
{
	for (int i = 0; i < F.n; i++)
		if (strcmp(F.r[i].id, id) == 0)
			return i;
	return -1;
}

static int fake_connect(struct ssc_driver *drv, const char *reader_id, int timeout_ms,
			struct ssc_slot **out, uint8_t *atr, size_t *atr_len)
{
	int i, rc = 0;

	(void)drv;
	(void)timeout_ms;
	pthread_mutex_lock(&F.mu);
	F.connects++;
	i = fake_find(reader_id);
	if (i < 0)
		rc = SSC_ENOREADER;
	else if (F.r[i].connect_err)
		rc = F.r[i].connect_err;
	else if (!F.r[i].present)
		rc = SSC_ENOCARD;
	if (rc == 0) {
		F.slots[i].idx = i;
		*out = (struct ssc_slot *)(void *)&F.slots[i];
		memcpy(atr, ATR, sizeof(ATR));
		*atr_len = sizeof(ATR);
	}
	pthread_mutex_unlock(&F.mu);
	return rc;
}

static int fake_transmit(struct ssc_slot *slot, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			 size_t resp_cap, int timeout_ms)
{
	struct fake_reader *r;
	int64_t safety = cardio_now_ms() + 30000;
	int n;

	(void)timeout_ms;
	pthread_mutex_lock(&F.mu);
	r = &F.r[((struct fake_slot *)(void *)slot)->idx];
	r->transmits++;
	r->last_cmd_len = cmd_len;
	switch (r->mode) {
	case FAKE_ECHO: {
		size_t body = cmd_len > 5 && cmd[1] == 0x01 ? cmd_len - 5 : 0;
		const uint8_t *from = cmd + 5;

		if (cmd[1] == 0xB2) {
			from = (const uint8_t *)"Zhang";
			body = 5;
		}
		if (body + 2 > resp_cap)
			body = resp_cap - 2;
		memcpy(resp, from, body);
		resp[body] = 0x90;
		resp[body + 1] = 0x00;
		n = (int)body + 2;
		break;
	}
	case FAKE_LONG:
		memset(resp, 0x90, resp_cap);   /* fills the buffer, and claims one byte more */
		n = (int)resp_cap + 1;
		break;
	case FAKE_ONE:
		resp[0] = 0x90;
		n = 1;
		break;
	case FAKE_EMPTY:
		n = 0;
		break;
	case FAKE_ERROR:
		n = r->error;
		break;
	default:
		F.blocked++;
		pthread_cond_broadcast(&F.cv);
		while (!F.unblock && cardio_now_ms() < safety) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&F.cv, &F.mu, &ts);
		}
		F.blocked--;
		resp[0] = 0x90;
		resp[1] = 0x00;
		n = 2;
		break;
	}
	pthread_mutex_unlock(&F.mu);
	return n;
}

static int fake_reconnect(struct ssc_slot *slot, uint8_t *atr, size_t *atr_len)
{
	(void)slot;
	pthread_mutex_lock(&F.mu);
	F.reconnects++;
	pthread_mutex_unlock(&F.mu);
	memcpy(atr, ATR, sizeof(ATR));
	*atr_len = sizeof(ATR);
	return 0;
}

static void fake_disconnect(struct ssc_slot *slot, int reset)
{
	(void)slot;
	pthread_mutex_lock(&F.mu);
	F.disconnects++;
	F.resets += reset != 0;
	pthread_mutex_unlock(&F.mu);
}

static int fake_status(struct ssc_slot *slot, uint32_t *insertions)
{
	int i = ((struct fake_slot *)(void *)slot)->idx, rc;

	pthread_mutex_lock(&F.mu);
	rc = F.r[i].status_err;
	*insertions = F.r[i].insertions;
	pthread_mutex_unlock(&F.mu);
	return rc;
}

static const struct ssc_driver_ops fake_ops = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.list = fake_list,
	.wait_change = fake_wait_change,
	.wake = fake_wake,
	.connect = fake_connect,
	.transmit = fake_transmit,
	.reconnect = fake_reconnect,
	.disconnect = fake_disconnect,
	.status = fake_status,
};

/* share() and claim() of a driver that can keep watching a card it let other programs use. */
static int fake_share(struct ssc_slot *slot)
{
	(void)slot;
	pthread_mutex_lock(&F.mu);
	F.shares++;
	pthread_mutex_unlock(&F.mu);
	return 0;
}

static int fake_claim(struct ssc_slot *slot, int timeout_ms)
{
	(void)slot;
	(void)timeout_ms;
	pthread_mutex_lock(&F.mu);
	F.claims++;
	pthread_mutex_unlock(&F.mu);
	return 0;
}

static const struct ssc_driver_ops fake_share_ops = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.list = fake_list,
	.wait_change = fake_wait_change,
	.wake = fake_wake,
	.connect = fake_connect,
	.transmit = fake_transmit,
	.reconnect = fake_reconnect,
	.disconnect = fake_disconnect,
	.status = fake_status,
	.share = fake_share,
	.claim = fake_claim,
};

/*
 * The fake probe: one APDU through the core's choke point (so that the driver's faults reach it),
 * then the fake reader's word: a DES PSAM with terminal 123456789012, or a user card.
 */
static int fake_probe(struct card_io *io, enum ssc_alg *alg, char term[13])
{
	static const uint8_t cmd[] = { 0x00, 0xA4, 0x04, 0x00, 0x01, 0xAA };
	uint8_t resp[SSC_RESP_APDU_MAX];
	int n, i, psam;

	pthread_mutex_lock(&F.mu);
	F.probes++;
	pthread_mutex_unlock(&F.mu);
	n = io->transmit(io, cmd, sizeof(cmd), resp, sizeof(resp), 0);
	if (n < 0)
		return n;
	pthread_mutex_lock(&F.mu);
	i = fake_find(io->reader_id);
	psam = i >= 0 && F.r[i].psam;
	pthread_mutex_unlock(&F.mu);
	if (!psam)
		return SSC_ENOTFOUND;
	*alg = SSC_ALG_DES;
	memcpy(term, "123456789012", 13);
	return 0;
}

static atomic_int apdus_counted;

static void count_apdu(const char *driver)
{
	if (strcmp(driver, "fake") == 0)
		atomic_fetch_add(&apdus_counted, 1);
}

static const struct ssc_driver_ops *const fake_drivers[] = { &fake_ops };
static const struct readers_setup fake_setup = { fake_drivers, 1, fake_probe, count_apdu, NULL };

/* The fake read-ahead: one APDU through the choke point, then 16 bytes kept. */
static atomic_int ahead_reads, ahead_drops;

static int fake_ahead_read(void *arg, struct card_io *io, unsigned *flags, int *reset,
			   void **kept)
{
	static const uint8_t cmd[] = { 0x00, 0xB2, 0x01, 0x2C, 0x00 };
	uint8_t resp[SSC_RESP_APDU_MAX];
	int n;

	(void)arg;
	(void)flags;
	(void)reset;
	atomic_fetch_add(&ahead_reads, 1);
	n = io->transmit(io, cmd, sizeof(cmd), resp, sizeof(resp), CARDIO_PERSONAL);
	if (n < 0)
		return n;
	*kept = calloc(1, 16);
	return *kept ? 0 : SSC_ENOMEM;
}

static void fake_ahead_drop(void *kept)
{
	atomic_fetch_add(&ahead_drops, 1);
	free(kept);
}

static const struct readers_ahead fake_ahead = { fake_ahead_read, fake_ahead_drop, NULL };
static const struct readers_setup ahead_setup = { fake_drivers, 1, fake_probe, count_apdu,
						  &fake_ahead };
static const struct ssc_driver_ops *const fake_share_drivers[] = { &fake_share_ops };
static const struct readers_setup ahead_share_setup = { fake_share_drivers, 1, fake_probe,
							count_apdu, &fake_ahead };

/* Sets a fake reader's state (a new one when id is new) and tells the monitor. */
static void fake_set(const char *id, int present, int psam)
{
	int i;

	pthread_mutex_lock(&F.mu);
	i = fake_find(id);
	if (i < 0) {
		i = F.n++;
		memset(&F.r[i], 0, sizeof(F.r[i]));
		snprintf(F.r[i].id, sizeof(F.r[i].id), "%s", id);
	}
	F.r[i].present = present;
	F.r[i].psam = psam;
	F.changed = 1;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static void fake_mode(const char *id, enum fake_mode mode, int error)
{
	int i;

	pthread_mutex_lock(&F.mu);
	i = fake_find(id);
	assert_true(i >= 0);
	F.r[i].mode = mode;
	F.r[i].error = error;
	pthread_mutex_unlock(&F.mu);
}

static int fake_get(int *field)
{
	int v;

	pthread_mutex_lock(&F.mu);
	v = *field;
	pthread_mutex_unlock(&F.mu);
	return v;
}

static void fake_unblock(void)
{
	pthread_mutex_lock(&F.mu);
	F.unblock = 1;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

/* ---- the fixture: one core per test, on a loop in this thread ------------------------------ */

struct evrec {
	char type[16];
	char id[SSC_READER_ID_MAX];
	enum reader_role role;
	int ready_err;
};

struct tjob;

static struct {
	uv_loop_t loop;
	struct config cfg;
	struct readers *rd;
	struct evrec ev[256];
	int n_ev, ev_seen;
	struct tjob *jobs;
	int saved_stderr;
	enum log_level saved_level;
	char log_path[64];
} T;

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void on_event(void *arg, const char *type, const struct reader_info *ri)
{
	(void)arg;
	if (T.n_ev < (int)(sizeof(T.ev) / sizeof(T.ev[0]))) {
		snprintf(T.ev[T.n_ev].type, sizeof(T.ev[0].type), "%s", type);
		snprintf(T.ev[T.n_ev].id, sizeof(T.ev[0].id), "%s", ri->id);
		T.ev[T.n_ev].role = ri->role;
		T.ev[T.n_ev].ready_err = ri->ready_err;
		T.n_ev++;
	}
}

/* Runs the loop until pred(arg) holds or timeout_ms passes. Returns pred's last value. */
static int run_until(int (*pred)(void *), void *arg, int timeout_ms)
{
	int64_t end = cardio_now_ms() + timeout_ms;

	for (;;) {
		uv_run(&T.loop, UV_RUN_NOWAIT);
		if (pred && pred(arg))
			return 1;
		if (cardio_now_ms() >= end)
			return pred ? pred(arg) : 0;
		nap_ms(2);
	}
}

struct ev_want {
	const char *type;
	const char *id;
	int found;
};

static int ev_pred(void *arg)
{
	struct ev_want *w = arg;

	for (int i = T.ev_seen; i < T.n_ev; i++) {
		if (strcmp(T.ev[i].type, w->type) == 0 && strcmp(T.ev[i].id, w->id) == 0) {
			w->found = i;
			T.ev_seen = i + 1;
			return 1;
		}
	}
	return 0;
}

/* Waits for the next event of type on reader id (after those already seen); its index or -1. */
static int wait_event(const char *type, const char *id, int timeout_ms)
{
	struct ev_want w = { type, id, -1 };

	run_until(ev_pred, &w, timeout_ms);
	return w.found;
}

static int reader_get(const char *id, struct reader_info *out)
{
	struct reader_info *ri;
	size_t n;
	int found = 0;

	if (readers_list(T.rd, &ri, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ri[i].id, id) == 0) {
			*out = ri[i];
			found = 1;
		}
	}
	free(ri);
	return found;
}

/* A fresh fake driver and a reader core over it (setup: rs, cards held hold_ms between jobs). */
static int setup_with(const struct readers_setup *rs, int hold_ms)
{
	pthread_mutex_lock(&F.mu);
	memset(F.r, 0, sizeof(F.r));
	F.n = 0;
	F.changed = F.woken = F.unblock = F.blocked = F.dup_id = 0;
	F.opens = F.closes = F.connects = F.reconnects = F.disconnects = F.resets = F.probes = 0;
	F.shares = F.claims = 0;
	pthread_mutex_unlock(&F.mu);
	atomic_store(&apdus_counted, 0);
	memset(&T, 0, sizeof(T));
	T.saved_stderr = -1;
	assert_int_equal(uv_loop_init(&T.loop), 0);
	config_defaults(&T.cfg);
	T.cfg.op_timeout_ms = 3000;
	T.cfg.card_hold_ms = hold_ms;
	atomic_store(&ahead_reads, 0);
	atomic_store(&ahead_drops, 0);
	assert_int_equal(readers_new(&T.loop, &T.cfg, rs, on_event, NULL, &T.rd), 0);
	assert_int_equal(readers_start(T.rd), 0);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	/* card_hold_ms 0: the connection ends with each job, and each test counts them. */
	return setup_with(&fake_setup, 0);
}

/* With the read-ahead, and cards held between jobs (card_hold_ms 30 s) as it needs. */
static int setup_ahead(void **state)
{
	(void)state;
	return setup_with(&ahead_setup, 30000);
}

/* With the read-ahead over a driver that can share, and a short hold (100 ms). */
static int setup_ahead_share(void **state)
{
	(void)state;
	return setup_with(&ahead_share_setup, 100);
}

static void tjobs_free(void);

static void log_restore(void)
{
	if (T.saved_stderr >= 0) {
		log_set_level(T.saved_level);
		dup2(T.saved_stderr, 2);
		close(T.saved_stderr);
		T.saved_stderr = -1;
	}
}

static int teardown(void **state)
{
	(void)state;
	log_restore();
	fake_unblock();
	readers_free(T.rd);
	T.rd = NULL;
	for (int i = 0; i < 5; i++)
		uv_run(&T.loop, UV_RUN_NOWAIT);
	tjobs_free();
	assert_int_equal(uv_loop_close(&T.loop), 0);
	if (T.log_path[0])
		unlink(T.log_path);
	return 0;
}

/* ---- test jobs ---------------------------------------------------------------------------- */

#define TSTEPS 8

struct tstep {
	uint8_t cmd[300];
	size_t len;
	size_t cap;
	unsigned flags;
	int past_deadline;           /* move io->deadline_ms into the past before the step */
	int rc;
	uint8_t resp[300];
};

struct tjob {
	struct job job;              /* first: the core hands us &job */
	struct tjob *next_alloc;
	struct tstep steps[TSTEPS];
	int n_steps;
	unsigned set_flags;
	uint64_t ask_lease;          /* run() asks for a lease (struct job's lease, lease_ms) */
	int ask_lease_ms;
	atomic_int runs, dones, releases;
	unsigned seen_flags;
	const void *seen_ahead;      /* io->ahead, as run() got it */
	int64_t submitted_at, done_at;
};

static void tjobs_free(void)
{
	while (T.jobs) {
		struct tjob *next = T.jobs->next_alloc;

		/* Released, or refused at submission; one still held by a stuck worker stays. */
		if (atomic_load(&T.jobs->releases) > 0 ||
		    (atomic_load(&T.jobs->dones) == 0 && atomic_load(&T.jobs->runs) == 0))
			free(T.jobs);
		T.jobs = next;
	}
}

static int tjob_run(struct job *job, struct card_io *io, unsigned *flags, int *reset)
{
	struct tjob *t = (struct tjob *)job;
	int rc = 0;

	(void)reset;
	atomic_fetch_add(&t->runs, 1);
	t->seen_flags = *flags;
	t->seen_ahead = io->ahead;
	*flags |= t->set_flags;
	if (t->ask_lease) {
		job->lease = t->ask_lease;
		job->lease_ms = t->ask_lease_ms;
	}
	for (int i = 0; i < t->n_steps; i++) {
		struct tstep *s = &t->steps[i];

		if (s->past_deadline)
			io->deadline_ms = cardio_now_ms() - 1;
		s->rc = io->transmit(io, s->cmd, s->len, s->resp, s->cap, s->flags);
		if (s->rc < 0 && rc == 0)
			rc = s->rc;
	}
	return rc;
}

static void tjob_done(struct job *job)
{
	struct tjob *t = (struct tjob *)job;

	t->done_at = cardio_now_ms();
	atomic_fetch_add(&t->dones, 1);
}

static void tjob_release(struct job *job)
{
	atomic_fetch_add(&((struct tjob *)job)->releases, 1);
}

static struct tjob *tjob_new(const char *reader, int timeout_ms)
{
	struct tjob *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->next_alloc = T.jobs;
	T.jobs = t;
	t->job.run = tjob_run;
	t->job.done = tjob_done;
	t->job.release = tjob_release;
	t->job.need_role = READER_ROLE_USER;
	t->job.timeout_ms = timeout_ms;
	if (reader)
		snprintf(t->job.reader_id, sizeof(t->job.reader_id), "%s", reader);
	return t;
}

static struct tstep *tjob_step(struct tjob *t, const uint8_t *cmd, size_t len, size_t cap)
{
	struct tstep *s = &t->steps[t->n_steps++];

	memcpy(s->cmd, cmd, len);
	s->len = len;
	s->cap = cap;
	return s;
}

static int tjob_submit(struct tjob *t)
{
	t->submitted_at = cardio_now_ms();
	return readers_submit(T.rd, &t->job);
}

static int done_pred(void *arg)
{
	return atomic_load(&((struct tjob *)arg)->dones) > 0;
}

static int released_pred(void *arg)
{
	return atomic_load(&((struct tjob *)arg)->releases) > 0;
}

static int runs_pred(void *arg)
{
	return atomic_load(&((struct tjob *)arg)->runs) > 0;
}

static void tjob_run_sync(struct tjob *t)
{
	assert_int_equal(tjob_submit(t), 0);
	assert_true(run_until(done_pred, t, 10000));
	assert_true(run_until(released_pred, t, 5000));
	assert_int_equal(atomic_load(&t->dones), 1);
	assert_int_equal(atomic_load(&t->releases), 1);
}

struct role_want {
	const char *id;
	enum reader_role role;
};

static int role_pred(void *arg)
{
	struct role_want *w = arg;
	struct reader_info ri;

	return reader_get(w->id, &ri) && ri.card_present && ri.role == w->role;
}

/* A reader id with a card whose probe has named its role. */
static void card_ready(const char *id, int psam)
{
	struct role_want w = { id, psam ? READER_ROLE_PSAM : READER_ROLE_USER };

	fake_set(id, 1, psam);
	assert_true(run_until(role_pred, &w, 5000));
}

static const uint8_t SEL_MF[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
static const uint8_t ECHO10[] = { 0x80, 0x01, 0x00, 0x00, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

/* ---- tests -------------------------------------------------------------------------------- */

/*
 * The choke point checks what a driver answers: a length beyond the buffer, or one that cannot
 * hold a status word, never reaches the layer above (it would read past the answer, or take data
 * for a status word). The driver here claims resp_cap + 1, 1 and 0 bytes.
 */
static void test_driver_lengths_checked(void **state)
{
	struct tjob *t;

	(void)state;
	card_ready("fake-a", 0);
	fake_mode("fake-a", FAKE_LONG, 0);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 10);
	tjob_step(t, SEL_MF, sizeof(SEL_MF), SSC_RESP_APDU_MAX);
	tjob_run_sync(t);
	assert_int_equal(t->steps[0].rc, SSC_EPROTO);
	assert_int_equal(t->steps[1].rc, SSC_EPROTO);
	assert_int_equal(t->job.err, SSC_EPROTO);

	fake_mode("fake-a", FAKE_ONE, 0);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 10);
	tjob_run_sync(t);
	assert_int_equal(t->steps[0].rc, SSC_EPROTO);

	fake_mode("fake-a", FAKE_EMPTY, 0);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 10);
	tjob_run_sync(t);
	assert_int_equal(t->steps[0].rc, SSC_EPROTO);

	/* A well-behaved answer of exactly resp_cap bytes passes. */
	fake_mode("fake-a", FAKE_ECHO, 0);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, ECHO10, sizeof(ECHO10), 12);
	tjob_run_sync(t);
	assert_int_equal(t->steps[0].rc, 12);
	assert_memory_equal(t->steps[0].resp, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x90\x00",
			    12);
	assert_int_equal(t->job.err, 0);
}

/* What the layer above asks is checked before the driver sees it; nothing is sent after the
 * deadline. */
static void test_commands_checked(void **state)
{
	uint8_t big[SSC_CMD_APDU_MAX + 1];
	struct tjob *t;

	(void)state;
	memset(big, 0, sizeof(big));
	big[0] = 0x80;
	big[1] = 0x01;
	card_ready("fake-a", 0);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, ECHO10, 3, 258);                             /* shorter than a header */
	tjob_step(t, big, sizeof(big), 258);                      /* 262 bytes: too long */
	tjob_step(t, ECHO10, sizeof(ECHO10), 1);                  /* no room for SW1 SW2 */
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 258)->past_deadline = 1;
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 258);                /* still past it */
	tjob_run_sync(t);
	assert_int_equal(t->steps[0].rc, SSC_EINVAL);
	assert_int_equal(t->steps[1].rc, SSC_EINVAL);
	assert_int_equal(t->steps[2].rc, SSC_EINVAL);
	assert_int_equal(t->steps[3].rc, SSC_ETIMEDOUT);
	assert_int_equal(t->steps[4].rc, SSC_ETIMEDOUT);
	assert_int_equal(t->job.err, SSC_EINVAL);
	/* Only the probe's APDU ever reached the driver, and the counter saw it alone. */
	assert_int_equal(fake_get(&F.r[0].transmits), 1);
	assert_int_equal(atomic_load(&apdus_counted), 1);
}

/*
 * A driver call that does not return: the client is answered at the deadline, the reader is
 * busy (new jobs refused, waiting ones time out unrun) until the call returns, then serves again.
 */
static void test_blocking_driver(void **state)
{
	struct tjob *j0, *q, *busy, *after;
	struct reader_info ri;
	int64_t elapsed;

	(void)state;
	card_ready("fake-a", 0);
	fake_mode("fake-a", FAKE_BLOCK, 0);
	j0 = tjob_new("fake-a", 500);
	tjob_step(j0, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(j0), 0);
	q = tjob_new("fake-a", 400);
	assert_int_equal(tjob_submit(q), 0);
	assert_true(run_until(done_pred, j0, 5000));
	elapsed = j0->done_at - j0->submitted_at;
	assert_int_equal(j0->job.err, SSC_ETIMEDOUT);
	assert_true(elapsed >= 490);
	assert_int_equal(atomic_load(&j0->releases), 0);   /* the worker still holds it */
	assert_true(run_until(released_pred, q, 5000));
	assert_int_equal(q->job.err, SSC_ETIMEDOUT);
	assert_int_equal(atomic_load(&q->runs), 0);
	assert_true(reader_get("fake-a", &ri));
	assert_int_equal(ri.busy, 1);
	busy = tjob_new("fake-a", 3000);
	assert_int_equal(tjob_submit(busy), SSC_EREADERBUSY);

	fake_mode("fake-a", FAKE_ECHO, 0);
	fake_unblock();
	assert_true(run_until(released_pred, j0, 5000));
	assert_int_equal(atomic_load(&j0->dones), 1);        /* the late result: never delivered */
	assert_int_equal(j0->job.err, SSC_ETIMEDOUT);
	assert_true(reader_get("fake-a", &ri));
	assert_int_equal(ri.busy, 0);
	after = tjob_new("fake-a", 3000);
	tjob_step(after, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(after);
	assert_int_equal(after->job.err, 0);
	assert_int_equal(after->steps[0].rc, 2);
}

/*
 * A reader that reports a card it cannot open: card.ready says why, the job's error says so, and
 * once the reader tells the truth the card is probed again and becomes ready.
 */
static void test_presence_lie(void **state)
{
	struct tjob *t;
	int i;

	(void)state;
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("reader.added", "fake-a", 5000) >= 0);
	pthread_mutex_lock(&F.mu);
	F.r[0].connect_err = SSC_ENOCARD;
	pthread_mutex_unlock(&F.mu);
	fake_set("fake-a", 1, 0);
	assert_true(wait_event("card.inserted", "fake-a", 5000) >= 0);
	i = wait_event("card.ready", "fake-a", 5000);
	assert_true(i >= 0);
	assert_int_equal(T.ev[i].ready_err, SSC_ENOCARD);
	assert_int_equal(T.ev[i].role, READER_ROLE_UNKNOWN);

	t = tjob_new(NULL, 3000);   /* "": the one reader with a card not yet known */
	tjob_run_sync(t);
	assert_int_equal(t->job.err, SSC_ENOCARD);
	assert_int_equal(atomic_load(&t->runs), 0);
	assert_non_null(strstr(t->job.diag.msg, "cannot open the card in reader fake-a"));

	pthread_mutex_lock(&F.mu);
	F.r[0].connect_err = 0;
	pthread_mutex_unlock(&F.mu);
	i = wait_event("card.ready", "fake-a", 5000);        /* the probe's retry, after 200 ms */
	assert_true(i >= 0);
	assert_int_equal(T.ev[i].ready_err, 0);
	assert_int_equal(T.ev[i].role, READER_ROLE_USER);
}

/*
 * A card that vanishes under an APDU (the driver says SSC_ECARDREMOVED while the reader still
 * lists it): the operation gets SSC_ECARDREMOVED, the insertion's memory is forgotten, and the
 * next operation re-establishes the connection rather than trusting the old one.
 */
static void test_card_vanishes(void **state)
{
	struct tjob *a, *b, *c;

	(void)state;
	T.cfg.card_hold_ms = 5000;   /* a connection kept between jobs: the one that breaks */
	card_ready("fake-a", 0);
	a = tjob_new("fake-a", 3000);
	a->set_flags = 0x1;
	tjob_step(a, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(a);
	assert_int_equal(a->job.err, 0);

	fake_mode("fake-a", FAKE_ERROR, SSC_ECARDREMOVED);
	b = tjob_new("fake-a", 3000);
	tjob_step(b, SEL_MF, sizeof(SEL_MF), 258);
	tjob_step(b, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(b);
	assert_int_equal(b->seen_flags, 0x1);                /* same insertion: remembered */
	assert_int_equal(b->steps[0].rc, SSC_ECARDREMOVED);
	assert_int_equal(b->steps[1].rc, SSC_ECARDREMOVED);  /* the connection is dead: not sent */
	assert_int_equal(fake_get(&F.r[0].transmits), 3);    /* the probe, a's, b's first */
	assert_int_equal(b->job.err, SSC_ECARDREMOVED);

	assert_int_equal(fake_get(&F.disconnects), 2);       /* the probe's, and b's dead one */

	fake_mode("fake-a", FAKE_ECHO, 0);
	c = tjob_new("fake-a", 3000);
	tjob_step(c, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(c);
	assert_int_equal(c->job.err, 0);
	assert_int_equal(c->steps[0].rc, 2);
	assert_int_equal(c->seen_flags, 0);                  /* forgotten with the connection */
	assert_int_equal(fake_get(&F.connects), 3);          /* the probe's, a's (kept), c's */
}

/* The events of one reader's life, in order, and a second reader under the same id ignored. */
static void test_events_in_order(void **state)
{
	int added, inserted, ready, removed, gone;
	struct reader_info *ri;
	size_t n;

	(void)state;
	pthread_mutex_lock(&F.mu);
	F.dup_id = 1;
	pthread_mutex_unlock(&F.mu);
	fake_set("fake-a", 1, 0);
	added = wait_event("reader.added", "fake-a", 5000);
	inserted = wait_event("card.inserted", "fake-a", 5000);
	ready = wait_event("card.ready", "fake-a", 5000);
	assert_true(added >= 0 && inserted > added && ready > inserted);
	assert_int_equal(T.ev[ready].ready_err, 0);
	assert_int_equal(T.ev[ready].role, READER_ROLE_USER);
	assert_int_equal(readers_list(T.rd, &ri, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ri[0].driver, "fake");
	assert_string_equal(ri[0].name, "Fake fake-a");
	free(ri);

	pthread_mutex_lock(&F.mu);
	F.n = 0;                                             /* the reader is unplugged */
	F.dup_id = 0;
	F.changed = 1;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
	removed = wait_event("card.removed", "fake-a", 5000);
	gone = wait_event("reader.removed", "fake-a", 5000);
	assert_true(removed > ready && gone > removed);
	for (int i = 0; i < T.n_ev; i++)
		assert_string_equal(T.ev[i].id, "fake-a");
	assert_int_equal(readers_list(T.rd, &ri, &n), 0);
	free(ri);
	assert_int_equal(n, 0);
}

struct lend_arg {
	struct readers *rd;
	int rc;
	int64_t elapsed;
};

static void *lend_thread(void *p)
{
	struct lend_arg *a = p;
	struct card_io *io = NULL;
	int64_t t0 = cardio_now_ms();

	a->rc = readers_psam_lend(a->rd, SSC_ALG_DES, t0 + 300, &io);
	a->elapsed = cardio_now_ms() - t0;
	if (a->rc == 0)
		readers_psam_return(a->rd, io, 0);
	return NULL;
}

/* PSAMs lent to another thread: one borrower at a time, the connection's word, a broken return. */
static void test_psam_lend(void **state)
{
	struct card_io *io = NULL;
	struct lend_arg la = { 0 };
	uint8_t resp[SSC_RESP_APDU_MAX];
	char term[13];
	pthread_t th;
	int probes, resets;

	(void)state;
	assert_int_equal(readers_psam_algorithms(T.rd), 0);
	assert_int_equal(readers_psam_lend(T.rd, SSC_ALG_DES, cardio_now_ms() + 100, &io),
			 SSC_ENOPSAM);
	card_ready("fake-p", 1);
	assert_int_equal(readers_psam_algorithms(T.rd), 1u << SSC_ALG_DES);
	assert_int_equal(readers_psam_terminal(T.rd, SSC_ALG_DES, term), 0);
	assert_string_equal(term, "123456789012");
	assert_int_equal(readers_psam_terminal(T.rd, SSC_ALG_SM4, term), SSC_EPSAMALGO);
	assert_int_equal(readers_psam_lend(T.rd, SSC_ALG_SM4, cardio_now_ms() + 100, &io),
			 SSC_EPSAMALGO);

	assert_int_equal(readers_psam_lend(T.rd, SSC_ALG_DES, cardio_now_ms() + 2000, &io), 0);
	assert_string_equal(io->reader_id, "fake-p");
	assert_int_equal(*readers_lent_memory(io), 0);       /* a new connection */
	*readers_lent_memory(io) = 0x5;
	assert_int_equal(io->transmit(io, ECHO10, sizeof(ECHO10), resp, sizeof(resp), 0), 12);
	la.rd = T.rd;
	assert_int_equal(pthread_create(&th, NULL, lend_thread, &la), 0);
	pthread_join(th, NULL);
	assert_int_equal(la.rc, SSC_ETIMEDOUT);              /* held: waited until its deadline */
	assert_true(la.elapsed >= 290);
	readers_psam_return(T.rd, io, 0);

	assert_int_equal(readers_psam_lend(T.rd, SSC_ALG_DES, cardio_now_ms() + 2000, &io), 0);
	assert_int_equal(*readers_lent_memory(io), 0x5);     /* the same connection, kept */
	probes = fake_get(&F.probes);
	resets = fake_get(&F.resets);
	readers_psam_return(T.rd, io, 1);                    /* broken: reset, probed again */
	assert_int_equal(fake_get(&F.resets), resets + 1);
	for (int i = 0; i < 300 && fake_get(&F.probes) == probes; i++)
		nap_ms(10);
	assert_true(fake_get(&F.probes) > probes);
	assert_int_equal(readers_psam_lend(T.rd, SSC_ALG_DES, cardio_now_ms() + 2000, &io), 0);
	assert_int_equal(*readers_lent_memory(io), 0);       /* a new connection again */
	readers_psam_return(T.rd, io, 0);
}

/* Queued jobs of a closed client are cancelled at once; the one on the card and others' go on. */
static void test_cancel_owner(void **state)
{
	int gone, live;
	struct tjob *run, *a[3], *b;

	(void)state;
	card_ready("fake-a", 0);
	fake_mode("fake-a", FAKE_BLOCK, 0);
	run = tjob_new("fake-a", 5000);
	run->job.owner = &gone;
	tjob_step(run, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(run), 0);
	assert_true(run_until(runs_pred, run, 3000));
	for (int i = 0; i < 3; i++) {
		a[i] = tjob_new("fake-a", 5000);
		a[i]->job.owner = &gone;
		assert_int_equal(tjob_submit(a[i]), 0);
	}
	b = tjob_new("fake-a", 5000);
	b->job.owner = &live;
	assert_int_equal(tjob_submit(b), 0);
	assert_int_equal(readers_cancel(T.rd, &gone), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&a[i]->dones), 1);  /* here and now */
		assert_int_equal(a[i]->job.err, SSC_ECANCELED);
	}
	assert_int_equal(atomic_load(&b->dones), 0);
	fake_mode("fake-a", FAKE_ECHO, 0);
	fake_unblock();
	assert_true(run_until(released_pred, run, 5000));
	assert_int_equal(run->job.err, 0);
	assert_true(run_until(released_pred, b, 5000));
	assert_int_equal(b->job.err, 0);
	assert_int_equal(atomic_load(&b->runs), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&a[i]->runs), 0);
}

/*
 * A job whose deadline went by while it waited, and whose timer the loop did not get to run (a
 * loop late under load): the worker does not start it on the card past its deadline, it answers it
 * as the timer would have, "waited its whole deadline ... without starting".
 */
static void test_late_timer_declined(void **state)
{
	struct tjob *run, *late;

	(void)state;
	card_ready("fake-a", 0);
	fake_mode("fake-a", FAKE_BLOCK, 0);
	run = tjob_new("fake-a", 5000);
	tjob_step(run, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(run), 0);
	assert_true(run_until(runs_pred, run, 3000));
	late = tjob_new("fake-a", 100);
	tjob_step(late, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(late), 0);
	nap_ms(300);   /* the loop does not run: late's timer cannot fire */
	fake_mode("fake-a", FAKE_ECHO, 0);
	fake_unblock();
	nap_ms(200);   /* the worker ends run and takes late, the loop still idle */
	assert_true(run_until(released_pred, run, 5000));
	assert_int_equal(run->job.err, 0);
	assert_true(run_until(released_pred, late, 5000));
	assert_int_equal(late->job.err, SSC_ETIMEDOUT);
	assert_int_equal(atomic_load(&late->runs), 0);
	assert_int_equal(late->job.never_started, 1);
	assert_non_null(strstr(late->job.diag.msg, "without starting"));
}

static int shares_pred(void *arg)
{
	return fake_get(&F.shares) >= *(int *)arg;
}

/*
 * Past the hold, a driver that can share keeps the connection open to watch the card: the data
 * read ahead answers a later job without an APDU and without a new connection (claim() takes the
 * card back). A removal and return the driver's count shows (status()) drops the data and the
 * connection; so does a removal the monitor sees.
 */
static void test_read_ahead_watched(void **state)
{
	struct tjob *t;
	int want = 1, disconnects;

	(void)state;
	card_ready("fake-a", 0);
	assert_true(wait_event("card.ready", "fake-a", 5000) >= 0);
	assert_int_equal(atomic_load(&ahead_reads), 1);
	assert_true(run_until(shares_pred, &want, 5000));   /* the hold ended: shared */
	assert_int_equal(fake_get(&F.disconnects), 0);      /* the probe's connection, kept */

	t = tjob_new("fake-a", 3000);
	t->job.ahead_keep = 1;
	tjob_run_sync(t);
	assert_int_equal(t->job.err, 0);
	assert_non_null(t->seen_ahead);                     /* the data, past the hold */
	assert_int_equal(fake_get(&F.claims), 1);
	assert_int_equal(fake_get(&F.r[0].transmits), 2);   /* the probe's, the read-ahead's */
	assert_int_equal(fake_get(&F.connects), 1);

	/* Out and in while watched (the count moved): the data and the connection go. */
	want = 2;
	assert_true(run_until(shares_pred, &want, 5000));
	pthread_mutex_lock(&F.mu);
	F.r[0].insertions += 2;
	pthread_mutex_unlock(&F.mu);
	disconnects = fake_get(&F.disconnects);
	t = tjob_new("fake-a", 3000);
	t->job.ahead_keep = 1;
	tjob_run_sync(t);
	assert_int_equal(t->job.err, 0);
	assert_null(t->seen_ahead);
	assert_int_equal(fake_get(&F.claims), 1);           /* not taken back: closed */
	assert_int_equal(fake_get(&F.disconnects), disconnects + 1);
	assert_int_equal(fake_get(&F.connects), 2);
	assert_int_equal(atomic_load(&ahead_drops), 1);

	/* A new insertion, watched again; the monitor's removal closes the watched connection. */
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	card_ready("fake-a", 0);
	want = fake_get(&F.shares) + 1;
	assert_true(run_until(shares_pred, &want, 5000));
	disconnects = fake_get(&F.disconnects);
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	for (int k = 0; k < 100 && fake_get(&F.disconnects) == disconnects; k++)
		nap_ms(10);
	assert_int_equal(fake_get(&F.disconnects), disconnects + 1);
	assert_int_equal(atomic_load(&ahead_drops), 2);
}

static int file_contains(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* The choke point's trace: a PIN body and personal data never reach the log. */
static void test_masked_trace(void **state)
{
	static const uint8_t verify[] = { 0x00, 0x20, 0x00, 0x00, 0x03, 0x12, 0x34, 0x56 };
	static const uint8_t read_rec[] = { 0x00, 0xB2, 0x01, 0x04, 0x00 };
	struct tjob *t;
	int fd;

	(void)state;
	card_ready("fake-a", 0);
	snprintf(T.log_path, sizeof(T.log_path), "/tmp/sscard-core-trace.XXXXXX");
	fd = mkstemp(T.log_path);
	assert_true(fd >= 0);
	T.saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
	T.saved_level = log_get_level();
	log_set_level(LOG_LVL_TRACE);
	t = tjob_new("fake-a", 3000);
	tjob_step(t, verify, sizeof(verify), 258)->flags = CARDIO_SECRET;
	tjob_step(t, read_rec, sizeof(read_rec), 258)->flags = CARDIO_PERSONAL;
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(t);
	log_restore();
	assert_int_equal(t->job.err, 0);
	assert_int_equal(t->steps[1].rc, 7);
	assert_memory_equal(t->steps[1].resp, "Zhang\x90\x00", 7);
	assert_int_equal(file_contains(T.log_path, "apdu fake-a > 0020000003 [3 secret bytes]"), 1);
	assert_int_equal(file_contains(T.log_path, "123456"), 0);
	assert_int_equal(file_contains(T.log_path, "apdu fake-a < [5 bytes] 9000"), 1);
	assert_int_equal(file_contains(T.log_path, "5A68616E67"), 0);
	assert_int_equal(file_contains(T.log_path, "apdu fake-a > 00A40400023F00"), 1);
	assert_int_equal(file_contains(T.log_path, "apdu fake-a < 9000"), 1);
}

/*
 * readers_free() with a worker stuck in the driver: it returns after about two seconds, the job is
 * answered SSC_ESHUTDOWN, and when the call returns the detached worker releases the job and
 * frees what is left (the driver is closed then).
 */
static void test_free_with_stuck_worker(void **state)
{
	struct tjob *t;
	int64_t t0, spent;

	(void)state;
	card_ready("fake-a", 0);
	fake_mode("fake-a", FAKE_BLOCK, 0);
	t = tjob_new("fake-a", 20000);
	tjob_step(t, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(t), 0);
	for (int i = 0; i < 300 && fake_get(&F.blocked) == 0; i++)
		nap_ms(10);
	assert_int_equal(fake_get(&F.blocked), 1);
	t0 = cardio_now_ms();
	readers_free(T.rd);
	T.rd = NULL;
	spent = cardio_now_ms() - t0;
	assert_true(spent >= 1900 && spent < 5000);
	assert_int_equal(atomic_load(&t->dones), 1);
	assert_int_equal(t->job.err, SSC_ESHUTDOWN);
	uv_run(&T.loop, UV_RUN_NOWAIT);
	assert_int_equal(atomic_load(&t->releases), 0);
	assert_int_equal(fake_get(&F.closes), 0);

	fake_unblock();
	for (int i = 0; i < 500 && fake_get(&F.closes) == 0; i++)
		nap_ms(10);
	assert_int_equal(atomic_load(&t->releases), 1);
	assert_int_equal(fake_get(&F.closes), 1);
}

/* Runs as nobody when started as root: nothing here may need privilege. */
static void drop_to_nobody(void)
{
	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) != 0) {
		fprintf(stderr, "test_readers_core: cannot drop to uid %d: %s\n", NOBODY,
			strerror(errno));
		exit(1);
	}
}

/*
 * The lease of the two-step read (struct job's lease, readers.h): a job that succeeds asking for
 * one keeps the card connected and unreset for the jobs of that lease alone; any other job is
 * refused at once with SSC_EREADERLEASED and the time left; the lease's next job runs on the same
 * connection and ends it, the card reset; a lease past its time counts as none, and its card is
 * reset too.
 */
static void test_lease(void **state)
{
	/* A job asks for a lease from its run(), as card.hsm_step1 does (tjob's ask_lease). */
	struct tjob *step1, *other, *step2, *after, *again, *late;
	int connects, resets;

	(void)state;
	card_ready("fake-a", 0);
	connects = fake_get(&F.connects);
	resets = fake_get(&F.resets);
	step1 = tjob_new("fake-a", 3000);
	tjob_step(step1, SEL_MF, sizeof(SEL_MF), 258);
	step1->ask_lease = 0x1234567;
	step1->ask_lease_ms = 5000;
	tjob_run_sync(step1);
	assert_int_equal(step1->job.err, 0);
	assert_int_equal(fake_get(&F.connects), connects + 1);
	/* Held for the lease: another job is refused at once, saying for how long at most. */
	other = tjob_new("fake-a", 3000);
	tjob_step(other, SEL_MF, sizeof(SEL_MF), 258);
	assert_int_equal(tjob_submit(other), SSC_EREADERLEASED);
	assert_true(other->job.lease_left_ms > 0 && other->job.lease_left_ms <= 5000);
	assert_int_equal(atomic_load(&other->runs), 0);
	/* So is a job of another lease. */
	other = tjob_new("fake-a", 3000);
	other->job.lease = 0x7654321;
	assert_int_equal(tjob_submit(other), SSC_EREADERLEASED);
	/* The lease's own job runs on the same connection (no new connect) and ends the lease. */
	step2 = tjob_new("fake-a", 3000);
	tjob_step(step2, SEL_MF, sizeof(SEL_MF), 258);
	step2->job.lease = 0x1234567;
	tjob_run_sync(step2);
	assert_int_equal(step2->job.err, 0);
	assert_int_equal(fake_get(&F.connects), connects + 1);
	assert_int_equal(fake_get(&F.resets), resets + 1);
	/* Free again; the ended lease's job is refused as gone (its card no longer held). */
	after = tjob_new("fake-a", 3000);
	tjob_step(after, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(after);
	assert_int_equal(after->job.err, 0);
	again = tjob_new("fake-a", 3000);
	again->job.lease = 0x1234567;
	assert_int_equal(tjob_submit(again), SSC_ECARDREMOVED);

	/* A lease past its time: the reader serves others, the card was reset. */
	resets = fake_get(&F.resets);
	step1 = tjob_new("fake-a", 3000);
	tjob_step(step1, SEL_MF, sizeof(SEL_MF), 258);
	step1->ask_lease = 0x55;
	step1->ask_lease_ms = 200;
	tjob_run_sync(step1);
	for (int i = 0; i < 1000 && fake_get(&F.resets) == resets; i++)
		usleep(10000);
	assert_int_equal(fake_get(&F.resets), resets + 1);
	late = tjob_new("fake-a", 3000);
	tjob_step(late, SEL_MF, sizeof(SEL_MF), 258);
	tjob_run_sync(late);
	assert_int_equal(late->job.err, 0);
}

/*
 * The read-ahead: a user card is read before its card.ready; a reading job gets the data with no
 * APDU while the driver's status() confirms the card; status() saying removed (or the count
 * moved) wipes it and opens the card afresh; a job that may write gets none and wipes it; the
 * removal wipes it.
 */
static void test_read_ahead(void **state)
{
	struct tjob *t;
	int i, transmits, reconnects;

	(void)state;
	card_ready("fake-a", 0);
	i = wait_event("card.ready", "fake-a", 5000);
	assert_true(i >= 0);
	assert_int_equal(T.ev[i].ready_err, 0);
	assert_int_equal(atomic_load(&ahead_reads), 1);
	assert_int_equal(fake_get(&F.r[0].transmits), 2);   /* the probe's, the read-ahead's */

	/* A reading job: the data, no APDU, no new connection; kept for the next one. */
	for (int k = 0; k < 2; k++) {
		t = tjob_new("fake-a", 3000);
		t->job.ahead_keep = 1;
		tjob_run_sync(t);
		assert_int_equal(t->job.err, 0);
		assert_non_null(t->seen_ahead);
	}
	assert_int_equal(fake_get(&F.r[0].transmits), 2);
	assert_int_equal(fake_get(&F.connects), 1);
	assert_int_equal(atomic_load(&ahead_drops), 0);

	/* The driver's count moved (removed and put back unseen by the monitor): wiped, read afresh
	 * over a new connection. */
	pthread_mutex_lock(&F.mu);
	F.r[0].insertions += 2;
	pthread_mutex_unlock(&F.mu);
	reconnects = fake_get(&F.reconnects);
	t = tjob_new("fake-a", 3000);
	t->job.ahead_keep = 1;
	tjob_run_sync(t);
	assert_int_equal(t->job.err, 0);
	assert_null(t->seen_ahead);
	assert_int_equal(atomic_load(&ahead_drops), 1);
	assert_int_equal(fake_get(&F.reconnects), reconnects + 1);

	/* A new insertion is read ahead again; status() saying removed or reset wipes it too. */
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	card_ready("fake-a", 0);
	assert_int_equal(atomic_load(&ahead_reads), 2);
	pthread_mutex_lock(&F.mu);
	F.r[0].status_err = SSC_ECARDREMOVED;
	pthread_mutex_unlock(&F.mu);
	t = tjob_new("fake-a", 3000);
	t->job.ahead_keep = 1;
	tjob_run_sync(t);
	assert_null(t->seen_ahead);
	assert_int_equal(atomic_load(&ahead_drops), 2);
	pthread_mutex_lock(&F.mu);
	F.r[0].status_err = 0;
	pthread_mutex_unlock(&F.mu);

	/* A job that may write gets nothing and wipes it. */
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	card_ready("fake-a", 0);
	assert_int_equal(atomic_load(&ahead_reads), 3);
	t = tjob_new("fake-a", 3000);
	tjob_run_sync(t);
	assert_null(t->seen_ahead);
	assert_int_equal(atomic_load(&ahead_drops), 3);

	/* And the removal wipes what was read. */
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	card_ready("fake-a", 0);
	assert_int_equal(atomic_load(&ahead_reads), 4);
	transmits = fake_get(&F.r[0].transmits);
	fake_set("fake-a", 0, 0);
	assert_true(wait_event("card.removed", "fake-a", 5000) >= 0);
	assert_int_equal(atomic_load(&ahead_drops), 4);
	assert_int_equal(fake_get(&F.r[0].transmits), transmits);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_driver_lengths_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_lie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_vanishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psam_lend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_timer_declined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_masked_trace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_stuck_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_ahead, setup_ahead, teardown),
		cmocka_unit_test_setup_teardown(test_read_ahead_watched, setup_ahead_share, teardown),
	};

	drop_to_nobody();
	if (getenv("SSC_TEST_LOG")) {
		enum log_level lvl;

		if (log_parse_level(getenv("SSC_TEST_LOG"), &lvl) == 0)
			log_set_level(lvl);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
