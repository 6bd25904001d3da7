/*
 * This file contains the journal's supervision in the daemon (src/journal_supervisor.h): opening
 * and reopening the journal, taking it out of service when an append fails, the chain-head log
 * lines, the daily retention off the loop, and the audit writer that is given the journal while
 * it is up.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dirs.h"
#include "invariant.h"
#include "journal_supervisor.h"
#include "log.h"
#include "sscard/error.h"

#define AUDIT_QUEUE_MAX 4096         /* audit rows waiting for the writer thread */
#define AUDIT_DRAIN_MS 2000          /* at exit, rows still queued after this are dropped */
#define PRUNE_INTERVAL_MS (24LL * 3600 * 1000)

struct journal_supervisor {
	uv_loop_t *loop;
	const struct config *cfg;
	struct journal_supervisor_hooks hooks;
	enum journal_state state;    /* loop thread */
	/*
	 * The journal. Once opened, the handle is never freed while the daemon runs: when it fails
	 * it is suspended and resumed later (the header says why).
	 */
	struct journal *journal;
	struct audit *audit;
	uv_async_t jnote;            /* an append failed, on some thread */
	uv_timer_t jreopen, jhead, jprune;
	int handles;                 /* the uv handles above are initialised and not closed */
	uv_work_t prune_req;
	int prune_running, prune_result;
	struct ssc_diag prune_diag;
	pthread_mutex_t jlock;       /* jwhy, jnote_open */
	char jwhy[256];              /* the first failure the observer heard */
	int jnote_open;              /* jnote may be sent to */
	atomic_int jdirty;           /* audit rows added since the last head line */
	uint64_t audit_dropped_seen; /* audit rows dropped, as last logged */
	int up_at_stop;              /* the state was UP when STOPPED came (the last head line) */
};

/* A journal kept at the end because something may still use it (journal_supervisor_free). */
struct kept_journal {
	struct journal *j;
	struct kept_journal *next;
};

/*
 * Journals kept to the end of the process: a detached worker may still be using one. A
 * file-scope reference keeps them reachable (not a leak).
 */
static struct kept_journal *kept_journals;

static void log_head(struct journal_supervisor *s, const char *remark)
{
	char hash[JOURNAL_HASH_HEX + 1];
	int64_t seq;

	if (s->journal && journal_head(s->journal, &seq, hash) == 0)
		log_info("journal head seq=%" PRId64 " hash=%s%s", seq, hash, remark);
}

/*
 * The journal's observer: any thread, after each append. Intents and outcomes put the chain
 * head in the log at once (an operator compares it with the file later: a cut-off tail shows);
 * audit rows only mark it for the periodic head line. A failed append wakes the loop, which
 * takes the journal out of service.
 */
static void on_journal_note(void *arg, const struct journal_note *n)
{
	struct journal_supervisor *s = arg;

	if (s->hooks.note)
		s->hooks.note(s->hooks.arg, n);
	if (n->err) {
		pthread_mutex_lock(&s->jlock);
		if (!s->jwhy[0])
			snprintf(s->jwhy, sizeof(s->jwhy), "%s", n->why);
		if (s->jnote_open)
			uv_async_send(&s->jnote);
		pthread_mutex_unlock(&s->jlock);
		return;
	}
	if (strcmp(n->kind, "audit") == 0)
		atomic_store(&s->jdirty, 1);
	else
		log_info("journal head seq=%" PRId64 " hash=%s", n->seq, n->hash);
}

/* Logs audit rows dropped since the last time (journal down, queue full); st NULL = ask. */
static void log_dropped(struct journal_supervisor *s, const struct audit_stats *last)
{
	struct audit_stats now;
	const struct audit_stats *st = last;

	if (!st) {
		audit_stats(s->audit, &now);
		st = &now;
	}
	if (st->dropped > s->audit_dropped_seen)
		log_warn("journal: %" PRIu64 " audit row(s) could not be written", st->dropped -
			 s->audit_dropped_seen);
	s->audit_dropped_seen = st->dropped;
}

/* Creates the journal's directory (one level, 0750) when it is missing. */
static int journal_dir(const char *path, struct ssc_diag *diag)
{
	char dir[CONFIG_PATH_MAX];
	int rc = dirs_make_parent(path, 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir));

	if (rc < 0 && errno == ENOTDIR)
		return ssc_diag_set(diag, SSC_EJOURNAL, "%s is not a directory", dir);
	if (rc < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "cannot create the directory %s: %s", dir,
				    strerror(errno));
	if (rc == 1)
		log_info("journal: created the directory %s (mode 0750)", dir);
	return 0;
}

static void prune_work(uv_work_t *req)
{
	struct journal_supervisor *s = req->data;

	ssc_diag_init(&s->prune_diag);
	s->prune_result = journal_prune(s->journal, s->cfg->journal_retention_days, &s->prune_diag);
}

static void prune_done(uv_work_t *req, int status)
{
	struct journal_supervisor *s = req->data;

	s->prune_running = 0;
	if (status != 0)
		return;   /* cancelled at shutdown */
	if (s->prune_result > 0)
		log_info("journal: retention: removed %d row(s) older than %d days", s->prune_result,
			 s->cfg->journal_retention_days);
	else if (s->prune_result == 0)
		log_info("journal: retention: no rows older than %d days",
			 s->cfg->journal_retention_days);
	else
		log_warn("journal: retention: pruning failed: %s", s->prune_diag.msg[0] ?
			 s->prune_diag.msg : ssc_strerror(s->prune_result));
}

/* Runs journal_prune() off the loop thread (at start, daily, after a reopen). */
static void prune_soon(struct journal_supervisor *s)
{
	if (s->cfg->journal_retention_days <= 0 || s->state != JOURNAL_STATE_UP ||
	    s->prune_running)
		return;
	s->prune_req.data = s;
	if (uv_queue_work(s->loop, &s->prune_req, prune_work, prune_done) == 0)
		s->prune_running = 1;
}

static void on_jprune(uv_timer_t *t)
{
	prune_soon(t->data);
}

/* The journal works (again: at a reopen): publish it and say so. Loop thread. */
static void journal_up(struct journal_supervisor *s, int again)
{
	int pending;

	/* Up from not tried yet (at start) or from down (a reopen), with a working database. */
	INVARIANT(s->state == JOURNAL_STATE_CLOSED || s->state == JOURNAL_STATE_DOWN);
	INVARIANT(s->journal && !journal_suspended(s->journal));
	s->state = JOURNAL_STATE_UP;
	pthread_mutex_lock(&s->jlock);
	s->jwhy[0] = '\0';
	pthread_mutex_unlock(&s->jlock);
	audit_set_journal(s->audit, s->journal);
	s->hooks.state(s->hooks.arg, s->journal, "ok");
	if (again) {
		log_info("journal %s is available again: card writes are accepted",
			 s->cfg->journal_path);
		log_dropped(s, NULL);
	} else {
		log_info("journal %s opened", s->cfg->journal_path);
	}
	log_head(s, "");
	pending = journal_pending_count(s->journal, NULL);
	if (pending > 0)
		log_info("journal: %d write intent(s) pending: each is resolved by reading its card "
			 "back when that card is next used", pending);
	else if (pending == 0)
		log_info("journal: no write intent pending");
	prune_soon(s);
}

/* Tries to open (or resume) the journal. Returns 0, or SSC_EJOURNAL with diag set. */
static int journal_try(struct journal_supervisor *s, struct ssc_diag *diag)
{
	const struct config *cfg = s->cfg;
	char hash[JOURNAL_HASH_HEX + 1];
	int64_t seq;
	mode_t old;
	int rc;

	if (s->journal) {
		/*
		 * A database opens on a full disk, and its next append fails: without room the
		 * journal would come back and go down again on every retry.
		 */
		rc = journal_room(cfg->journal_path, diag);
		if (rc == 0)
			rc = journal_resume(s->journal, diag);
		/* Opening is not enough: the chain's end must be readable (a dropped table). */
		if (rc == 0 && journal_head(s->journal, &seq, hash) != 0) {
			journal_suspend(s->journal, "the chain head cannot be read");
			rc = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the chain head cannot be "
					  "read");
		}
		return rc;
	}
	rc = journal_dir(cfg->journal_path, diag);
	if (rc != 0)
		return rc;
	/* The database and its -wal/-shm files: owner and group only (0640). */
	old = umask(027);
	rc = journal_open(cfg->journal_path, cfg->journal_key_path[0] ? cfg->journal_key_path : NULL,
			  0, &s->journal, diag);
	umask(old);
	if (rc == 0)
		journal_set_observer(s->journal, on_journal_note, s);
	return rc;
}

static void on_jreopen(uv_timer_t *t);

/* The journal is not usable: refuse writes, say why, retry later. Loop thread. */
static void journal_down(struct journal_supervisor *s, const char *why)
{
	char status[300];
	int was_up = s->state == JOURNAL_STATE_UP;

	/* Down from not tried yet (it did not open) or from up (an append failed); never twice. */
	INVARIANT(s->state == JOURNAL_STATE_CLOSED || s->state == JOURNAL_STATE_UP);
	snprintf(status, sizeof(status), "unavailable: %s", why);
	s->state = JOURNAL_STATE_DOWN;
	s->hooks.state(s->hooks.arg, NULL, status);
	if (was_up) {
		/*
		 * Close its database: later calls (a worker mid-write, the audit writer) fail at
		 * once. Waits for an append in progress (bounded by SQLite's busy timeout).
		 */
		journal_suspend(s->journal, why);
	}
	/* Out of service: no handle, or one whose calls fail at once. */
	INVARIANT(!s->journal || journal_suspended(s->journal));
	log_error("journal %s is unavailable: %s. Card writes are refused (SSC_EJOURNAL) until it "
		  "is back; reads go on. Retrying every %d ms", s->cfg->journal_path, why,
		  s->cfg->journal_reopen_ms);
	uv_timer_start(&s->jreopen, on_jreopen, (uint64_t)s->cfg->journal_reopen_ms,
		       (uint64_t)s->cfg->journal_reopen_ms);
}

static void on_jreopen(uv_timer_t *t)
{
	struct journal_supervisor *s = t->data;
	struct ssc_diag diag;
	char status[300];

	if (s->state != JOURNAL_STATE_DOWN) {
		uv_timer_stop(t);
		return;
	}
	ssc_diag_init(&diag);
	if (journal_try(s, &diag) == 0) {
		uv_timer_stop(t);
		journal_up(s, 1);
		return;
	}
	/* Still down: say so at debug only (the error was logged when it went down). */
	log_debug("journal: still unavailable: %s", diag.msg);
	snprintf(status, sizeof(status), "unavailable: %s", diag.msg[0] ? diag.msg : "unknown");
	if (s->hooks.retry)
		s->hooks.retry(s->hooks.arg, status);
}

/* A failed append was heard (any thread woke us). Loop thread. */
static void on_jnote(uv_async_t *a)
{
	struct journal_supervisor *s = a->data;
	char why[256];

	pthread_mutex_lock(&s->jlock);
	snprintf(why, sizeof(why), "%s", s->jwhy[0] ? s->jwhy : "an append failed");
	s->jwhy[0] = '\0';
	pthread_mutex_unlock(&s->jlock);
	if (s->state != JOURNAL_STATE_UP)
		return;   /* already down (a late note) */
	journal_down(s, why);
}

static void on_jhead(uv_timer_t *t)
{
	struct journal_supervisor *s = t->data;

	if (s->state == JOURNAL_STATE_UP && atomic_exchange(&s->jdirty, 0))
		log_head(s, "");
	if (s->state == JOURNAL_STATE_UP)
		log_dropped(s, NULL);
}

int journal_supervisor_new(uv_loop_t *loop, const struct config *cfg,
			   const struct journal_supervisor_hooks *hooks,
			   struct journal_supervisor **out)
{
	struct journal_supervisor *s;
	struct ssc_diag diag;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return SSC_ENOMEM;
	s->loop = loop;
	s->cfg = cfg;
	s->hooks = *hooks;
	s->state = JOURNAL_STATE_CLOSED;
	atomic_init(&s->jdirty, 0);
	rc = audit_new(AUDIT_QUEUE_MAX, cfg->journal_audit_batch_ms, &s->audit);
	if (rc != 0) {
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->jlock, NULL);
	uv_async_init(loop, &s->jnote, on_jnote);
	uv_timer_init(loop, &s->jreopen);
	uv_timer_init(loop, &s->jhead);
	uv_timer_init(loop, &s->jprune);
	s->jnote.data = s->jreopen.data = s->jhead.data = s->jprune.data = s;
	s->jnote_open = 1;
	s->handles = 1;
	uv_timer_start(&s->jhead, on_jhead, (uint64_t)cfg->journal_head_ms,
		       (uint64_t)cfg->journal_head_ms);
	uv_timer_start(&s->jprune, on_jprune, PRUNE_INTERVAL_MS, PRUNE_INTERVAL_MS);
	*out = s;
	ssc_diag_init(&diag);
	if (journal_try(s, &diag) == 0)
		journal_up(s, 0);
	else
		journal_down(s, diag.msg[0] ? diag.msg : ssc_strerror(SSC_EJOURNAL));
	return 0;
}

enum journal_state journal_supervisor_state(const struct journal_supervisor *s)
{
	return s->state;
}

struct journal *journal_supervisor_journal(const struct journal_supervisor *s)
{
	return s->state == JOURNAL_STATE_UP ? s->journal : NULL;
}

void journal_supervisor_audit(struct journal_supervisor *s, const struct journal_audit *row)
{
	(void)audit_submit(s->audit, row);   /* dropped rows are counted and logged later */
}

int64_t journal_supervisor_busy_ms(struct journal_supervisor *s)
{
	return audit_busy_ms(s->audit);
}

void journal_supervisor_stats(struct journal_supervisor *s, struct audit_stats *out)
{
	audit_stats(s->audit, out);
}

void journal_supervisor_stop(struct journal_supervisor *s)
{
	if (!s->handles)
		return;
	s->handles = 0;
	s->up_at_stop = s->state == JOURNAL_STATE_UP;
	s->state = JOURNAL_STATE_STOPPED;
	pthread_mutex_lock(&s->jlock);
	s->jnote_open = 0;
	pthread_mutex_unlock(&s->jlock);
	uv_close((uv_handle_t *)&s->jnote, NULL);
	uv_close((uv_handle_t *)&s->jreopen, NULL);
	uv_close((uv_handle_t *)&s->jhead, NULL);
	uv_close((uv_handle_t *)&s->jprune, NULL);
	if (s->prune_running)
		uv_cancel((uv_req_t *)&s->prune_req);
}

int journal_supervisor_free(struct journal_supervisor *s, int in_use)
{
	struct kept_journal *k;
	struct audit_stats last;
	int closed = 1;

	if (!s)
		return 1;
	/* journal_supervisor_stop() came first: no handle of ours is left on the loop. */
	INVARIANT(s->state == JOURNAL_STATE_STOPPED && !s->handles);
	audit_free(s->audit, AUDIT_DRAIN_MS, &last);
	s->audit = NULL;
	log_dropped(s, &last);
	if (s->journal) {
		if (s->state == JOURNAL_STATE_UP || s->up_at_stop)
			log_head(s, " (at shutdown)");
		journal_set_observer(s->journal, NULL, NULL);
		if (!in_use) {
			journal_close(s->journal);
		} else {
			/* A stuck worker may still append: keep the handle, without its database. */
			journal_suspend(s->journal, "the daemon is stopping");
			k = malloc(sizeof(*k));
			if (k) {
				k->j = s->journal;
				k->next = kept_journals;
				kept_journals = k;
			}
			closed = 0;
		}
	}
	pthread_mutex_destroy(&s->jlock);
	free(s);
	return closed;
}
