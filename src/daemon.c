/*
 * This file contains the daemon's wiring (src/daemon.h): the modules built and started in order on
 * one loop, root dropped once the socket is open, the journal's state published to the operations,
 * system.info and the service manager, the resolution of pending intents on a card's insertion,
 * and the orderly stop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"
#include "dirs.h"
#include "hsm_keyprov.h"
#include "invariant.h"
#include "journal_supervisor.h"
#include "keyprov.h"
#include "keysel.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "psam.h"
#include "psam_pool.h"
#include "readers.h"
#include "rpc.h"
#include "server.h"
#include "service.h"
#include "sscard/error.h"
#include "syslog_audit.h"
#include "webpair.h"

struct daemon {
	uv_loop_t *loop;
	const struct config *cfg;
	const char *config_file;     /* the file cfg was read from, NULL = built-in defaults */
	struct rpc *rpc;
	struct webpair *pairs;       /* the browser bridge's pairings (src/webpair.h) */
	struct readers *rd;
	struct server *srv;
	struct op_env env;
	int stopping;
	struct journal_supervisor *jsup;   /* NULL until daemon_start() */
	atomic_int resolve_jobs;     /* insertion resolve jobs not yet released by the core */
	/* The service manager (issue 19, src/service.h). */
	struct service_watchdog wd;
	struct metrics *metrics;     /* [metrics] listen, NULL when off */
	struct syslog_audit *syslog; /* [audit] syslog = yes; set before the journal opens */
	struct kept *kept;           /* what outlives the daemon: the key provider, its PSAMs */
};

/* A job that resolves the pending write intents of a card just inserted (on its worker). */
struct resolve_job {
	struct job job;              /* first: the core hands us &job */
	struct daemon *d;
	int resolved;                /* written by run(); read by done() unless it overran */
};

/*
 * What a daemon keeps to the end of the process (daemon_free()): readers_free() may leave a worker
 * that is stuck in a driver call detached, and that worker may still reach the key provider and
 * its PSAM pool, or append to the journal kept open and so send to syslog, when the call returns.
 * The process is ending; a file-scope reference keeps the allocations reachable (not a leak).
 */
struct kept {
	struct psam_pool psams;        /* the PSAMs of the reader core, for the key provider */
	struct keyprov *kp;            /* the PSAM key provider */
	/* The network PSAM (issue 14) and the choice between the two (env.kp when there is one). */
	struct keyprov *hsm_kp, *keysel;
	/* Their metrics wrappers (also when the start stops half-way). */
	struct keyprov *kp_counted, *hsm_counted;
	struct syslog_audit *syslog;   /* NULL: freed, or never made */
	struct kept *next;
};

static struct kept *kept_list;

/* Keeps k (NULL: a no-op) reachable to the end of the process. */
static void daemon_keep(struct kept *k)
{
	if (!k)
		return;
	k->next = kept_list;
	kept_list = k;
}

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	return readers_list(ctx, out, n);
}

static int be_submit(void *ctx, struct job *job)
{
	return readers_submit(ctx, job);
}

static int be_cancel(void *ctx, const void *owner)
{
	return readers_cancel(ctx, owner);
}

/* ---- the service manager (issue 19) ------------------------------------------------------ */

/* What `systemctl status sscardd` shows: the socket and the journal's state. */
static void daemon_service_status(struct daemon *d, const char *journal)
{
	service_status("serving on %s; journal %s", d->cfg->socket_path, journal);
}

/*
 * The watchdog's question (service_alive_fn), asked on the loop thread, so the loop is alive when
 * it is asked at all. The journal writer is alive unless one append has been running for longer
 * than the whole watchdog period (the service manager restarts the daemon then).
 */
static int daemon_alive(void *arg)
{
	struct daemon *d = arg;
	int64_t busy;

	if (!d->jsup)
		return 1;
	busy = journal_supervisor_busy_ms(d->jsup);
	if (busy > (int64_t)(2 * d->wd.interval_ms)) {
		log_error("watchdog: the journal writer has been in one append for %lld ms",
			  (long long)busy);
		return 0;
	}
	return 1;
}

/*
 * Started as root: with [daemon] user, prepares the journal's directory for that user and drops
 * to it for good; without, says that the daemon runs as root. Started as another user: nothing
 * to drop (under the unit, systemd made us User=sscard). After the socket is open (it may need
 * root), before the journal is opened and before any reader is used. Returns 0 or SSC_ECONFIG /
 * SSC_EPERM (logged): the daemon must stop then.
 */
static int daemon_user(struct daemon *d)
{
	const char *user = d->cfg->user;
	char dir[CONFIG_PATH_MAX];
	struct stat st;
	uid_t uid;
	gid_t gid;
	int rc;

	if (geteuid() != 0) {
		if (user[0] && service_user(user, &uid, &gid) == 0 && uid != geteuid())
			log_warn("[daemon] user %s: not started as root, so running as uid %ld as "
				 "started", user, (long)geteuid());
		return 0;
	}
	if (!user[0]) {
		log_warn("running as root: set [daemon] user (sscard) to drop root once the socket "
			 "is open; the systemd unit runs the daemon as sscard");
		return 0;
	}
	rc = service_user(user, &uid, &gid);
	if (rc != 0)
		return rc;
	/* The journal's directory: created for the user (it could not create it in /var/lib). */
	rc = dirs_make_parent(d->cfg->journal_path, 0750, uid, gid, dir, sizeof(dir));
	if (rc < 0)
		log_warn("journal: cannot create %s for user %s: %s", dir, user, strerror(errno));
	else if (rc == 1)
		log_info("journal: created the directory %s (mode 0750, owner %s)", dir, user);
	else if (dir[0] && stat(dir, &st) == 0 && st.st_uid != uid)
		log_warn("journal: the directory %s belongs to uid %ld, not to %s: the journal may "
			 "not open (chown -R %s: %s)", dir, (long)st.st_uid, user, user, dir);
	return service_drop(user, uid, gid);
}

/* The gauges of a scrape (metrics_gauges_fn). Loop thread. */
static void daemon_gauges(void *arg, struct metrics_gauges *g)
{
	struct daemon *d = arg;
	struct audit_stats st;

	g->clients = d->srv ? server_client_count(d->srv) : 0;
	g->journal_up = d->jsup && journal_supervisor_state(d->jsup) == JOURNAL_STATE_UP;
	if (d->jsup) {
		journal_supervisor_stats(d->jsup, &st);
		g->audit_dropped = st.dropped;
	}
	if (d->syslog) {
		g->syslog_on = 1;
		syslog_audit_counts(d->syslog, &g->syslog_sent, &g->syslog_dropped);
	}
	if (d->rd && readers_list(d->rd, &g->readers, &g->n_readers) != 0) {
		g->readers = NULL;
		g->n_readers = 0;
	}
}

/* ---- the journal ------------------------------------------------------------------------ */

/*
 * The journal came into service or went out of it (journal_supervisor_hooks.state): publish it
 * to the ops (or NULL: writes refused; workers read it concurrently), system.info and the
 * service manager. Loop thread.
 */
static void on_journal_state(void *arg, struct journal *j, const char *status)
{
	struct daemon *d = arg;

	/* Published exactly while it is in service. */
	INVARIANT((j != NULL) == (strcmp(status, "ok") == 0));
	__atomic_store_n(&d->env.journal, j, __ATOMIC_RELEASE);
	rpc_set_journal_status(d->rpc, status);
	daemon_service_status(d, status);
}

/* A reopen failed again (journal_supervisor_hooks.retry): system.info says why. Loop thread. */
static void on_journal_retry(void *arg, const char *status)
{
	struct daemon *d = arg;

	rpc_set_journal_status(d->rpc, status);
}

/*
 * Every append, or a failed one (journal_supervisor_hooks.note): the metrics, and the row to
 * syslog. Any thread.
 */
static void on_journal_note(void *arg, const struct journal_note *n)
{
	struct daemon *d = arg;

	if (n->err)
		metrics_journal_failure();
	else
		metrics_journal_row(n->kind);
	/* Every row to the collector, with its place in the chain (issue 19). */
	if (d->syslog && n->row)
		(void)syslog_audit_send(d->syslog, n->row);
}

/* The audit sink for rpc: queue the row for the writer thread. Loop thread, never blocks. */
static void on_audit(void *arg, const struct journal_audit *row)
{
	struct daemon *d = arg;

	metrics_operation(row->method, row->result, row->duration_ms);
	journal_supervisor_audit(d->jsup, row);
}

/* ---- pending intents, on card insertion ---- */

static int resolve_run(struct job *job, struct card_io *io, unsigned *insertion_flags,
		       int *reset_card)
{
	struct resolve_job *rj = (struct resolve_job *)job;
	int rc = ops_resolve_pending(&rj->d->env, io, &job->diag);

	if (rc >= 0)
		*insertion_flags |= CARD_FLAG_RESOLVED;   /* the ops need not do it again */
	if (rc != 0)
		*reset_card = 1;   /* a read-back may have left a read authorisation behind */
	rj->resolved = rc > 0 ? rc : 0;
	return rc < 0 ? rc : 0;
}

static void resolve_done(struct job *job)
{
	struct resolve_job *rj = (struct resolve_job *)job;
	const char *reader = job->used_reader[0] ? job->used_reader : job->reader_id;

	if (job->err == 0) {
		if (rj->resolved > 0)
			log_info("journal: %d pending write intent(s) of the card in %s resolved by "
				 "reading it back", rj->resolved, reader);
	} else if (job->err == SSC_ENOCARD || job->err == SSC_ECARDREMOVED ||
		   job->err == SSC_ENOTSSC || job->err == SSC_ESHUTDOWN) {
		/* Not a user card (a PSAM), or it left: nothing to resolve here. */
		log_debug("journal: no intent resolution on %s: %s", reader,
			  ssc_strerror_name(job->err));
	} else {
		/* At an overrun the worker may still write diag: do not read it then. */
		log_warn("journal: resolving the pending intents of the card in %s failed: %s%s%s; "
			 "they are resolved when the card is next used", reader,
			 ssc_strerror_name(job->err), job->err == SSC_ETIMEDOUT ? "" : ": ",
			 job->err == SSC_ETIMEDOUT ? "" : job->diag.msg);
	}
}

static void resolve_release(struct job *job)
{
	struct resolve_job *rj = (struct resolve_job *)job;
	struct daemon *d = rj->d;

	free(rj);
	atomic_fetch_sub(&d->resolve_jobs, 1);
}

/*
 * On a card's insertion, while the journal holds pending intents (of any card: which card this
 * is takes APDUs to learn), queue a job that resolves this card's by reading it back. A clean
 * journal costs one query and no APDU. Loop thread.
 */
static void resolve_on_insert(struct daemon *d, const struct reader_info *ri)
{
	struct journal *j = d->jsup ? journal_supervisor_journal(d->jsup) : NULL;
	struct resolve_job *rj;
	int n, rc;

	if (!j || d->stopping || !d->rd)
		return;
	n = journal_pending_count(j, NULL);
	if (n <= 0)
		return;
	rj = calloc(1, sizeof(*rj));
	if (!rj)
		return;
	rj->d = d;
	rj->job.run = resolve_run;
	rj->job.done = resolve_done;
	rj->job.release = resolve_release;
	rj->job.arg = rj;
	snprintf(rj->job.reader_id, sizeof(rj->job.reader_id), "%s", ri->id);
	rj->job.need_role = READER_ROLE_USER;
	rj->job.timeout_ms = d->cfg->op_timeout_ms;
	rj->job.ahead_keep = 1;   /* it reads the card back and writes to the journal only */
	atomic_fetch_add(&d->resolve_jobs, 1);
	rc = readers_submit(d->rd, &rj->job);
	if (rc != 0) {
		atomic_fetch_sub(&d->resolve_jobs, 1);
		log_debug("journal: no intent resolution on %s: %s", ri->id, ssc_strerror_name(rc));
		free(rj);
		return;
	}
	log_debug("journal: %d intent(s) pending: reading back the card in %s", n, ri->id);
}

/* The reader core's events: to the API's subscribers, and card insertions to the journal. */
static void on_reader_event(void *arg, const char *type, const struct reader_info *ri)
{
	struct daemon *d = arg;

	rpc_event(d->rpc, type, ri);
	if (strcmp(type, "card.inserted") == 0)
		resolve_on_insert(d, ri);
}

/* ---- start and stop --------------------------------------------------------------------- */

/*
 * The reader core over the drivers [drivers] enables, probing each new card for a PSAM, counting
 * every APDU for the metrics, and reading each user card ahead ([card] prefetch).
 */
static int daemon_readers_new(struct daemon *d)
{
	const struct ssc_driver_ops *drivers[2];
	const struct readers_ahead ahead = { ops_ahead_read, ops_ahead_drop, &d->env };
	struct readers_setup rs = { drivers, 0, psam_probe, metrics_apdu, &ahead };

	if (d->cfg->driver_pcsc)
		drivers[rs.n_drivers++] = &ssc_driver_pcsc;
	if (d->cfg->driver_usb)
		drivers[rs.n_drivers++] = &ssc_driver_usb_ccid;
	return readers_new(d->loop, d->cfg, &rs, on_reader_event, d, &d->rd);
}

/*
 * The key providers: the PSAM in a reader, and the network PSAM of [hsm] when a url is set (its
 * files checked now: a key file others can read stops the start), each counted for the metrics,
 * in the order [hsm] prefer gives; all kept in d->kept (struct kept). Sets d->env.kp. Returns 0
 * or an error (logged).
 */
static int daemon_keys(struct daemon *d)
{
	struct kept *k = d->kept;
	char err[512] = "";
	int rc;

	psam_pool_init(&k->psams, d->rd, d->cfg);
	rc = psam_keyprov_new(&k->psams.src, d->cfg, &k->kp);
	if (rc != 0) {
		log_error("cannot create the PSAM key provider: %s", ssc_strerror(rc));
		return rc;
	}
	/* Counted for the metrics (the wrappers are kept, like the providers, to the end). */
	k->kp_counted = metrics_keyprov_wrap(k->kp);
	if (!d->cfg->hsm_url[0]) {
		d->env.kp = k->kp_counted;
		return 0;
	}
	rc = hsm_keyprov_new(d->cfg, &k->hsm_kp, err, sizeof(err));
	if (rc != 0) {
		log_error("%s: %s", d->config_file ? d->config_file : "configuration",
			  err[0] ? err : ssc_strerror(rc));
		return rc;
	}
	k->hsm_counted = metrics_keyprov_wrap(k->hsm_kp);
	rc = d->cfg->hsm_prefer == HSM_PREFER_HSM
		     ? keysel_new(k->hsm_counted, k->kp_counted, &k->keysel)
		     : keysel_new(k->kp_counted, k->hsm_counted, &k->keysel);
	if (rc != 0) {
		log_error("cannot set up the key providers: %s", ssc_strerror(rc));
		return rc;
	}
	log_info("keys: %s first, then %s ([hsm] prefer)",
		 d->cfg->hsm_prefer == HSM_PREFER_HSM ? "the key server" : "a PSAM in a reader",
		 d->cfg->hsm_prefer == HSM_PREFER_HSM ? "a PSAM in a reader" : "the key server");
	d->env.kp = k->keysel;
	return 0;
}

/* The browser bridge's pairings and who may use them (docs/web.md). Returns 0 or an error (logged). */
static int daemon_web(struct daemon *d)
{
	struct rpc_web_cfg web;
	struct ssc_diag wd;
	int rc;

	ssc_diag_init(&wd);
	rc = webpair_new(d->cfg->journal_path, d->cfg->web_code_ttl_s * 1000, &d->pairs);
	if (rc == 0)
		rc = rpc_web_setup(d->cfg, d->pairs, &web, &wd);
	if (rc != 0) {
		log_error("%s", wd.msg[0] ? wd.msg : ssc_strerror(rc));
		return rc;
	}
	rpc_set_web(d->rpc, &web);
	return 0;
}

int daemon_new(uv_loop_t *loop, const struct config *cfg, const char *config_file,
	       struct daemon **out, int *refused)
{
	struct rpc_backend be;
	struct daemon *d;
	int rc;

	*out = NULL;
	if (refused)
		*refused = 0;
	d = calloc(1, sizeof(*d));
	if (d)
		d->kept = calloc(1, sizeof(*d->kept));
	if (!d || !d->kept) {
		free(d);
		return SSC_ENOMEM;
	}
	d->loop = loop;
	d->cfg = cfg;
	d->config_file = config_file;
	atomic_init(&d->resolve_jobs, 0);
	rc = rpc_new(cfg, &d->rpc);
	if (rc != 0)
		goto out_free;
	rc = daemon_web(d);
	if (rc != 0)
		goto out_rpc;
	rc = daemon_readers_new(d);
	if (rc != 0) {
		log_error("cannot start the reader core: %s", ssc_strerror(rc));
		goto out_rpc;
	}
	rc = daemon_keys(d);
	if (rc != 0) {
		/* A key file that others may read is a bad configuration: refused like one. */
		if (rc == SSC_ECONFIG && refused)
			*refused = 1;
		goto out_readers;
	}
	d->env.cfg = cfg;
	/*
	 * The journal is published in env once it opens (daemon_start()); until then, and whenever
	 * it is down, reads go on and writes are refused (SSC_EJOURNAL).
	 */
	d->env.journal = NULL;
	be.list = be_list;
	be.submit = be_submit;
	be.cancel = be_cancel;
	be.ctx = d->rd;
	rpc_set_backend(d->rpc, &be, &d->env);
	rc = server_new(loop, cfg, d->rpc, &d->srv);
	if (rc != 0) {
		log_error("cannot serve on %s: %s", cfg->socket_path, ssc_strerror(rc));
		goto out_readers;
	}
	*out = d;
	return 0;

out_readers:
	readers_free(d->rd);
	uv_run(loop, UV_RUN_NOWAIT);
out_rpc:
	rpc_free(d->rpc);
	webpair_free(d->pairs);
out_free:
	/* As at the end (struct kept): a key provider made is kept, even when the start stopped. */
	if (d->kept->kp)
		daemon_keep(d->kept);
	else
		free(d->kept);
	free(d);
	return rc;
}

int daemon_start(struct daemon *d)
{
	static const struct journal_supervisor_hooks hooks_template = {
		.state = on_journal_state, .retry = on_journal_retry, .note = on_journal_note,
	};
	struct journal_supervisor_hooks hooks = hooks_template;
	int rc;

	/* Root is needed for nothing after the socket: drop it (issue 19). */
	rc = daemon_user(d);
	if (rc != 0) {
		daemon_stop(d, "the daemon could not drop root");
		return rc;
	}
	/* Before the journal's first row: audit shipping (issue 19). */
	if (d->cfg->audit_syslog && syslog_audit_new(d->cfg->audit_syslog_socket, &d->syslog) == 0)
		log_info("audit: every journal row goes to syslog at %s (RFC 5424, "
			 SYSLOG_AUDIT_SDID ")", d->cfg->audit_syslog_socket);
	/* Before the first client and the first card: the audit trail and write intents. */
	hooks.arg = d;
	rc = journal_supervisor_new(d->loop, d->cfg, &hooks, &d->jsup);
	if (rc != 0) {
		log_error("cannot start the audit writer: %s", ssc_strerror(rc));
		daemon_stop(d, "the audit writer did not start");
		return rc;
	}
	rpc_set_audit(d->rpc, on_audit, d);
	rc = readers_start(d->rd);
	if (rc != 0) {
		log_error("cannot start the readers: %s", ssc_strerror(rc));
		daemon_stop(d, "the readers did not start");
		return rc;
	}
	/* Without its metrics the daemon still serves the desk: an error, not a stop. */
	if (d->cfg->metrics_listen[0] &&
	    metrics_start(d->loop, d->cfg, daemon_gauges, d, &d->metrics) != 0)
		d->metrics = NULL;
	log_info("ready");
	/* The service manager starts clients after this (Type=notify). */
	service_notify("READY=1");
	daemon_service_status(d, journal_supervisor_state(d->jsup) == JOURNAL_STATE_UP ? "ok" :
			      "unavailable");
	service_watchdog_start(&d->wd, d->loop, daemon_alive, d);
	return 0;
}

void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("%s: shutting down", why);
	service_notify("STOPPING=1");
	service_watchdog_stop(&d->wd);
	metrics_stop(d->metrics);
	d->metrics = NULL;
	/*
	 * The reader core first: it completes every job still in flight (SSC_ESHUTDOWN), and
	 * those replies are queued before the server starts draining and closing its clients.
	 */
	readers_free(d->rd);
	d->rd = NULL;
	rpc_set_backend(d->rpc, NULL, NULL);
	server_stop(d->srv);
	if (d->jsup)
		journal_supervisor_stop(d->jsup);
}

int daemon_stopping(const struct daemon *d)
{
	return d->stopping;
}

void daemon_free(struct daemon *d)
{
	int in_use;

	if (!d)
		return;
	INVARIANT(d->stopping);   /* daemon_stop() came first, and the loop ran out */
	if (d->jsup) {
		/* Nothing may reach the journal through the ops any more. */
		__atomic_store_n(&d->env.journal, NULL, __ATOMIC_RELEASE);
		in_use = rpc_jobs_unreleased(d->rpc) != 0 || atomic_load(&d->resolve_jobs) != 0;
		/*
		 * Once the journal is closed nothing sends any more; while a stuck worker may
		 * still append (the journal kept open), the sender is kept too (struct kept).
		 */
		if (!journal_supervisor_free(d->jsup, in_use))
			d->kept->syslog = d->syslog;
		else
			syslog_audit_free(d->syslog);
		d->jsup = NULL;
	} else {
		syslog_audit_free(d->syslog);
	}
	d->syslog = NULL;
	server_free(d->srv);
	rpc_free(d->rpc);
	webpair_free(d->pairs);
	daemon_keep(d->kept);
	free(d);
}
