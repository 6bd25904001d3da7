/*
 * This file contains sscardd's main(): options, configuration, logging, signals, and the wiring
 * of the reader core, the PSAM key provider, the journal and its audit writer, the JSON-RPC layer
 * and the socket server on one libuv loop; the journal's availability (reopened while it is
 * down), chain-head log lines and retention; and the orderly shutdown on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "audit.h"
#include "config.h"
#include "dirs.h"
#include "journal.h"
#include "hsm_keyprov.h"
#include "keyprov.h"
#include "keysel.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "psam.h"
#include "psam_pool.h"
#include "readers.h"
#include "rpc.h"
#include "webpair.h"
#include "server.h"
#include "service.h"
#include "sscard/error.h"
#include "syslog_audit.h"

/* Exit codes (docs/operations.md). */
#define EXIT_OK 0
#define EXIT_RUNTIME 1   /* could not start (socket, readers) or failed while running */
#define EXIT_USAGE 2     /* bad options or a bad configuration file */

#define AUDIT_QUEUE_MAX 4096         /* audit rows waiting for the writer thread */
#define AUDIT_DRAIN_MS 2000          /* at exit, rows still queued after this are dropped */
#define PRUNE_INTERVAL_MS (24LL * 3600 * 1000)

struct daemon {
	uv_loop_t loop;
	struct config cfg;
	const char *config_file;     /* the file cfg was read from, NULL = built-in defaults */
	struct rpc *rpc;
	struct webpair *pairs;       /* the browser bridge's pairings (src/webpair.h) */
	struct readers *rd;
	struct server *srv;
	struct op_env env;
	uv_signal_t sigint, sigterm;
	int stopping;

	/*
	 * The journal. Once opened, the handle is never freed while the daemon runs: when it fails
	 * it is suspended (env.journal = NULL, so that ops refuse writes) and resumed later, so a
	 * worker that read env.journal a moment before still holds a valid handle (whose calls
	 * then fail with SSC_EJOURNAL).
	 */
	struct audit *audit;
	int journal_ok;              /* env.journal == daemon_journal (loop thread) */
	int journal_handles;         /* the uv handles below are initialised */
	uv_async_t jnote;            /* an append failed, on some thread */
	uv_timer_t jreopen, jhead, jprune;
	uv_work_t prune_req;
	int prune_running, prune_result;
	struct ssc_diag prune_diag;
	pthread_mutex_t jlock;       /* jwhy, jnote_open */
	char jwhy[256];              /* the first failure the observer heard */
	int jnote_open;              /* jnote may be sent to */
	atomic_int jdirty;           /* audit rows added since the last head line */
	uint64_t audit_dropped_seen; /* audit rows dropped, as last logged */
	atomic_int resolve_jobs;     /* insertion resolve jobs not yet released by the core */

	/* The service manager (issue 19, src/service.h). */
	struct service_watchdog wd;
	struct metrics *metrics;     /* [metrics] listen, NULL when off */
	struct syslog_audit *syslog; /* [audit] syslog = yes; set before the journal opens */
#ifdef SSC_TEST_HOOKS
	uv_signal_t sigfreeze;       /* the watchdog test's hook (daemon_test_hooks) */
	int freeze_open;
#endif
};

/* A job that resolves the pending write intents of a card just inserted (on its worker). */
struct resolve_job {
	struct job job;              /* first: the core hands us &job */
	struct daemon *d;
	int resolved;                /* written by run(); read by done() unless it overran */
};

/*
 * The key provider is not freed at exit: readers_free() may leave a worker that is stuck in a
 * driver call detached, and that worker may still reach the provider when the call returns. The
 * process is ending; a file-scope reference keeps the allocation reachable (not a leak).
 */
static struct keyprov *daemon_kp;
static struct psam_pool daemon_psams;   /* the PSAMs of the reader core, for daemon_kp */
/* The network PSAM (issue 14) and the choice between the two, kept likewise. */
static struct keyprov *daemon_hsm_kp, *daemon_keysel;
/* Their metrics wrappers, kept likewise (also when the start stops half-way). */
static struct keyprov *daemon_kp_counted, *daemon_hsm_counted;
/*
 * The journal, for the same reason: a detached worker may still be using it. It is closed (keys
 * wiped) at exit only when no job and no worker can still hold it.
 */
static struct journal *daemon_journal;

/*
 * The daemon holds PINs and PIN blocks (while a request is handled), the journal key and the
 * 卡识别码 key: no core dump may write them to a disk, and no other process of the daemon's uid may
 * read them (/proc/PID/mem, /proc/PID/environ, ptrace). PR_SET_DUMPABLE 0 does both (root keeps
 * CAP_SYS_PTRACE); RLIMIT_CORE 0 also stops a core where the kernel would dump anyway
 * (fs.suid_dumpable = 2) and tells systemd-coredump not to store one. Called first in main(),
 * before the configuration (and its key) is read. Returns 0, or -1 with errno (nothing is logged
 * yet: main() says it once the logger is set up).
 */
static int process_harden(void)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) != 0)
		return -1;
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * Descriptors the daemon needs besides one per client: the loop and its wake-ups, the worker
 * threads' pipes, pcscd's sockets (a context per reader thread), USB devices, the journal's
 * database, -wal and -shm, the reserve descriptor of the server, stdio.
 */
#define FD_OVERHEAD 128

/*
 * Reconciles [limits] max_clients with RLIMIT_NOFILE: raises the soft limit to what the
 * configuration needs (up to the hard limit), and says so; when the hard limit is too low, lowers
 * max_clients (and max_clients_per_uid) to what fits, with a warning, so that a client beyond it
 * gets the "too many clients" answer rather than a descriptor the daemon cannot open. Before the
 * server starts.
 */
static void nofile_fit(struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->max_clients + FD_OVERHEAD, was, overhead;
	int fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("open files: cannot read the limit: %s", strerror(errno));
		return;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need :
			      rl.rlim_max;
		if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("open files: cannot raise the limit from %llu to %llu: %s",
				 (unsigned long long)was, (unsigned long long)rl.rlim_cur,
				 strerror(errno));
			rl.rlim_cur = was;
		} else if (rl.rlim_cur > was) {
			log_info("open files: limit raised from %llu to %llu (max_clients %d + %d "
				 "for the readers, the journal and the daemon itself)",
				 (unsigned long long)was, (unsigned long long)rl.rlim_cur,
				 cfg->max_clients, FD_OVERHEAD);
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) {
		log_debug("open files: limit %llu, enough for max_clients %d",
			  (unsigned long long)rl.rlim_cur, cfg->max_clients);
		return;
	}
	overhead = rl.rlim_cur / 2 < FD_OVERHEAD ? rl.rlim_cur / 2 : FD_OVERHEAD;
	fit = (int)(rl.rlim_cur - overhead);
	if (fit < 1)
		fit = 1;
	log_warn("open files: the limit is %llu (hard limit %llu), below the %llu that max_clients "
		 "%d needs: at most %d clients are served, the next get \"too many clients\" "
		 "(raise the hard limit: LimitNOFILE= in a systemd unit, ulimit -Hn in a shell)",
		 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		 (unsigned long long)need, cfg->max_clients, fit);
	cfg->max_clients = fit;
	if (cfg->max_clients_per_uid > fit)
		cfg->max_clients_per_uid = fit;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sscardd --foreground [--socket PATH] [--config FILE] [--log-level LEVEL]\n"
		"       sscardd --check-config [--config FILE]\n"
		"       sscardd --help | --version\n"
		"\n"
		"The social security card daemon: owns the card readers and serves JSON-RPC 2.0\n"
		"on a Unix socket (docs/api.md).\n"
		"\n"
		"  -f, --foreground     run in the foreground, logging to stderr (sscardd never\n"
		"                       forks; without the option it says so)\n"
		"  -s, --socket PATH    the API socket (default /run/sscard/sscardd.sock, or\n"
		"                       [daemon] socket_path)\n"
		"  -c, --config FILE    read this INI file (docs/operations.md, conf/sscardd.conf);\n"
		"                       default $" CONFIG_ENV ", else " CONFIG_DEFAULT_PATH "\n"
		"                       when it exists, else the built-in defaults\n"
		"  -l, --log-level L    error, warn, info (default), debug or trace\n"
		"      --check-config   load the configuration, print its summary and exit\n"
		"  -h, --help           this text\n"
		"  -V, --version        the version and API level\n"
		"\n"
		"Exit status: 0 stopped by SIGINT/SIGTERM (or --check-config passed), 1 could not\n"
		"start or failed, 2 bad options or configuration.\n");
}

static void key_text(const struct config_key *k, char out[12])
{
	snprintf(out, 12, "%02X/%02X/%02X", k->card_kid, k->usage, k->index);
}

/* The configuration in a few log lines; never the 卡识别码 MAC key itself. */
static void log_config(const struct config *cfg, const char *file)
{
	char k[7][12], aid[33];

	if (file)
		log_info("config: file %s", file);
	else
		log_info("config: no file (no --config, no $%s, no %s): the built-in defaults",
			 CONFIG_ENV, CONFIG_DEFAULT_PATH);

	log_info("config: socket %s (mode %04o, group %s), log level %s, user %s", cfg->socket_path,
		 cfg->socket_mode, cfg->socket_group[0] ? cfg->socket_group : "(unchanged)",
		 cfg->log_level, cfg->user[0] ? cfg->user : "(as started)");
	log_info("config: limits: %d clients (%d per uid), %zu bytes per request, JSON depth %d, "
		 "%d in flight per client, idle %d ms", cfg->max_clients, cfg->max_clients_per_uid,
		 cfg->max_request_bytes, cfg->max_json_depth, cfg->max_inflight_per_client,
		 cfg->idle_timeout_ms);
	log_info("config: timeouts: operation %d ms, APDU %d ms, connect %d ms, PSAM %d ms, "
		 "two-step read session %d ms", cfg->op_timeout_ms, cfg->apdu_timeout_ms,
		 cfg->connect_timeout_ms, cfg->psam_timeout_ms, cfg->hsm_session_ms);
	log_info("config: drivers: pcsc %s, usb %s%s%s, poll %d ms; %d reader role(s) fixed",
		 cfg->driver_pcsc ? "on" : "off", cfg->driver_usb ? "on" : "off",
		 cfg->usb_allow[0] ? " allow " : "", cfg->usb_allow, cfg->poll_interval_ms,
		 cfg->n_roles);
	for (int i = 0; i < cfg->n_roles; i++)
		log_info("config: reader \"%s\" is %s", cfg->roles[i].reader, cfg->roles[i].role);
	if (cfg->notice[0])
		log_warn("config: %s", cfg->notice);
	/* The initial PINs are counted, not shown: no PIN reaches the log. */
	log_info("config: card: read_auth %s, 卡识别码 MAC check %s (key %s), PIN %d..%d digits, "
		 "%d initial PIN(s)%s", cfg->read_auth == READ_AUTH_ALWAYS ? "always" :
		 cfg->read_auth == READ_AUTH_NEVER ? "never" : "auto",
		 cfg->verify_card_id_mac ? "on" : "off", cfg->card_id_mac_key_set ? "set" : "not set",
		 cfg->pin_min_len, cfg->pin_max_len, cfg->n_initial_pins,
		 cfg->refuse_initial_pin ? ", refused for VERIFY" : "");
	key_text(&cfg->key_write_ssse, k[0]);
	key_text(&cfg->key_write_ef0d, k[1]);
	key_text(&cfg->key_read_auth, k[2]);
	key_text(&cfg->key_internal, k[3]);
	key_text(&cfg->key_stk, k[4]);
	key_text(&cfg->key_pin_reload, k[5]);
	key_text(&cfg->key_pin_unblock, k[6]);
	for (size_t i = 0; i < cfg->psam_aid_len && i < 16; i++)
		snprintf(aid + 2 * i, 3, "%02X", cfg->psam_aid[i]);
	aid[2 * (cfg->psam_aid_len < 16 ? cfg->psam_aid_len : 16)] = '\0';
	log_info("config: keys (card/usage/index): write_ssse %s, write_ef0d %s, read_auth %s, "
		 "internal %s, stk %s, pin_reload %s, pin_unblock %s; PSAM AID %s", k[0], k[1],
		 k[2], k[3], k[4], k[5], k[6], aid);
	log_info("config: journal %s (key %s%s), retention %d days%s, reopen every %d ms, head "
		 "logged at least every %d ms, audit rows gathered %d ms", cfg->journal_path,
		 cfg->journal_key_path[0] ? cfg->journal_key_path : cfg->journal_path,
		 cfg->journal_key_path[0] ? "" : ".key", cfg->journal_retention_days,
		 cfg->journal_retention_days ? "" : " (keep forever)", cfg->journal_reopen_ms,
		 cfg->journal_head_ms, cfg->journal_audit_batch_ms);
	log_info("config: metrics %s; audit to syslog %s%s", cfg->metrics_listen[0] ?
		 cfg->metrics_listen : "off", cfg->audit_syslog ? "on, " : "off",
		 cfg->audit_syslog ? cfg->audit_syslog_socket : "");
	if (cfg->hsm_url[0])
		log_info("config: key server %s (CA %s, certificate %s, key %s), %d ms per request, "
			 "prefer %s", cfg->hsm_url, cfg->hsm_ca_file, cfg->hsm_cert_file,
			 cfg->hsm_key_file, cfg->hsm_timeout_ms,
			 cfg->hsm_prefer == HSM_PREFER_HSM ? "hsm" : "psam");
	else
		log_info("config: no key server ([hsm] url not set)");
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
	service_status("serving on %s; journal %s", d->cfg.socket_path, journal);
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

	if (!d->audit)
		return 1;
	busy = audit_busy_ms(d->audit);
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
	const char *user = d->cfg.user;
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
	rc = dirs_make_parent(d->cfg.journal_path, 0750, uid, gid, dir, sizeof(dir));
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
	g->journal_up = d->journal_ok;
	if (d->audit) {
		audit_stats(d->audit, &st);
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

#ifdef SSC_TEST_HOOKS
/*
 * Test builds only (cmake -DSSC_TEST_HOOKS=ON, the default for a development tree; the package
 * is built without): with $SSCARDD_TEST_FREEZE_MS set at start, SIGUSR2 blocks the event loop
 * for that long while every other thread runs on, as a hung loop would. The watchdog test
 * (tests/e2e/test_service.py) checks that no WATCHDOG=1 is sent meanwhile. (A SIGSTOP cannot do
 * this: it stops every thread of the process.) The two notices bracket the freeze in the order
 * the test's notify socket receives them.
 */
static void on_sigfreeze(uv_signal_t *s, int signum)
{
	const char *ms = getenv("SSCARDD_TEST_FREEZE_MS");
	long v = ms ? strtol(ms, NULL, 10) : 0;
	struct timespec ts = { v / 1000, (v % 1000) * 1000000L };

	(void)s;
	(void)signum;
	log_warn("test hook: the event loop is frozen for %ld ms", v);
	service_notify("STATUS=test hook: loop frozen");
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	service_notify("STATUS=test hook: loop thawed");
	log_warn("test hook: the event loop runs again");
}

static void daemon_test_hooks(struct daemon *d)
{
	if (!getenv("SSCARDD_TEST_FREEZE_MS"))
		return;
	uv_signal_init(&d->loop, &d->sigfreeze);
	uv_signal_start(&d->sigfreeze, on_sigfreeze, SIGUSR2);
	d->freeze_open = 1;
	log_warn("test hook: SIGUSR2 freezes the event loop (a test build)");
}
#endif

/* ---- the journal ------------------------------------------------------------------------ */

/* Publishes the journal to the ops (or NULL: writes refused). Workers read it concurrently. */
static void journal_publish(struct daemon *d, struct journal *j)
{
	__atomic_store_n(&d->env.journal, j, __ATOMIC_RELEASE);
}

static void journal_log_head(const char *remark)
{
	char hash[JOURNAL_HASH_HEX + 1];
	int64_t seq;

	if (daemon_journal && journal_head(daemon_journal, &seq, hash) == 0)
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
	struct daemon *d = arg;

	if (n->err)
		metrics_journal_failure();
	else
		metrics_journal_row(n->kind);
	/* Every row to the collector, with its place in the chain (issue 19). */
	if (d->syslog && n->row)
		(void)syslog_audit_send(d->syslog, n->row);
	if (n->err) {
		pthread_mutex_lock(&d->jlock);
		if (!d->jwhy[0])
			snprintf(d->jwhy, sizeof(d->jwhy), "%s", n->why);
		if (d->jnote_open)
			uv_async_send(&d->jnote);
		pthread_mutex_unlock(&d->jlock);
		return;
	}
	if (strcmp(n->kind, "audit") == 0)
		atomic_store(&d->jdirty, 1);
	else
		log_info("journal head seq=%" PRId64 " hash=%s", n->seq, n->hash);
}

/* The audit sink for rpc: queue the row for the writer thread. Loop thread, never blocks. */
static void on_audit(void *arg, const struct journal_audit *row)
{
	struct daemon *d = arg;

	metrics_operation(row->method, row->result, row->duration_ms);
	(void)audit_submit(d->audit, row);   /* dropped rows are counted and logged later */
}

/* Logs audit rows dropped since the last time (journal down, queue full); st NULL = ask. */
static void journal_log_dropped(struct daemon *d, const struct audit_stats *last)
{
	struct audit_stats now;
	const struct audit_stats *st = last;

	if (!st) {
		audit_stats(d->audit, &now);
		st = &now;
	}
	if (st->dropped > d->audit_dropped_seen)
		log_warn("journal: %" PRIu64 " audit row(s) could not be written", st->dropped -
			 d->audit_dropped_seen);
	d->audit_dropped_seen = st->dropped;
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
	struct daemon *d = req->data;

	ssc_diag_init(&d->prune_diag);
	d->prune_result = journal_prune(daemon_journal, d->cfg.journal_retention_days,
					&d->prune_diag);
}

static void prune_done(uv_work_t *req, int status)
{
	struct daemon *d = req->data;

	d->prune_running = 0;
	if (status != 0)
		return;   /* cancelled at shutdown */
	if (d->prune_result > 0)
		log_info("journal: retention: removed %d row(s) older than %d days", d->prune_result,
			 d->cfg.journal_retention_days);
	else if (d->prune_result == 0)
		log_info("journal: retention: no rows older than %d days",
			 d->cfg.journal_retention_days);
	else
		log_warn("journal: retention: pruning failed: %s", d->prune_diag.msg[0] ?
			 d->prune_diag.msg : ssc_strerror(d->prune_result));
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
	struct resolve_job *rj;
	int n, rc;

	if (!d->journal_ok || d->stopping || !d->rd)
		return;
	n = journal_pending_count(daemon_journal, NULL);
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
	rj->job.timeout_ms = d->cfg.op_timeout_ms;
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

/* Runs journal_prune() off the loop thread (at start, daily, after a reopen). */
static void journal_prune_soon(struct daemon *d)
{
	if (d->cfg.journal_retention_days <= 0 || !d->journal_ok || d->prune_running ||
	    d->stopping)
		return;
	d->prune_req.data = d;
	if (uv_queue_work(&d->loop, &d->prune_req, prune_work, prune_done) == 0)
		d->prune_running = 1;
}

static void on_jprune(uv_timer_t *t)
{
	journal_prune_soon(t->data);
}

/* The journal works (again): publish it and say so. Loop thread. */
static void journal_up(struct daemon *d, int again)
{
	int pending;

	d->journal_ok = 1;
	pthread_mutex_lock(&d->jlock);
	d->jwhy[0] = '\0';
	pthread_mutex_unlock(&d->jlock);
	audit_set_journal(d->audit, daemon_journal);
	journal_publish(d, daemon_journal);
	rpc_set_journal_status(d->rpc, "ok");
	daemon_service_status(d, "ok");
	if (again) {
		log_info("journal %s is available again: card writes are accepted",
			 d->cfg.journal_path);
		journal_log_dropped(d, NULL);
	} else {
		log_info("journal %s opened", d->cfg.journal_path);
	}
	journal_log_head("");
	pending = journal_pending_count(daemon_journal, NULL);
	if (pending > 0)
		log_info("journal: %d write intent(s) pending: each is resolved by reading its card "
			 "back when that card is next used", pending);
	else if (pending == 0)
		log_info("journal: no write intent pending");
	journal_prune_soon(d);
}

/* Tries to open (or resume) the journal. Returns 0, or SSC_EJOURNAL with diag set. */
static int journal_try(struct daemon *d, struct ssc_diag *diag)
{
	const struct config *cfg = &d->cfg;
	char hash[JOURNAL_HASH_HEX + 1];
	int64_t seq;
	mode_t old;
	int rc;

	if (daemon_journal) {
		/*
		 * A database opens on a full disk, and its next append fails: without room the
		 * journal would come back and go down again on every retry.
		 */
		rc = journal_room(cfg->journal_path, diag);
		if (rc == 0)
			rc = journal_resume(daemon_journal, diag);
		/* Opening is not enough: the chain's end must be readable (a dropped table). */
		if (rc == 0 && journal_head(daemon_journal, &seq, hash) != 0) {
			journal_suspend(daemon_journal, "the chain head cannot be read");
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
			  0, &daemon_journal, diag);
	umask(old);
	if (rc == 0)
		journal_set_observer(daemon_journal, on_journal_note, d);
	return rc;
}

static void on_jreopen(uv_timer_t *t);

/* The journal is not usable: refuse writes, say why, retry later. Loop thread. */
static void journal_down(struct daemon *d, const char *why)
{
	char status[300];

	snprintf(status, sizeof(status), "unavailable: %s", why);
	rpc_set_journal_status(d->rpc, status);
	daemon_service_status(d, status);
	if (d->journal_ok) {
		d->journal_ok = 0;
		journal_publish(d, NULL);
		/*
		 * Close its database: later calls (a worker mid-write, the audit writer) fail at
		 * once. Waits for an append in progress (bounded by SQLite's busy timeout).
		 */
		journal_suspend(daemon_journal, why);
	}
	log_error("journal %s is unavailable: %s. Card writes are refused (SSC_EJOURNAL) until it "
		  "is back; reads go on. Retrying every %d ms", d->cfg.journal_path, why,
		  d->cfg.journal_reopen_ms);
	if (!d->stopping)
		uv_timer_start(&d->jreopen, on_jreopen, (uint64_t)d->cfg.journal_reopen_ms,
			       (uint64_t)d->cfg.journal_reopen_ms);
}

static void on_jreopen(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct ssc_diag diag;
	char status[300];

	if (d->journal_ok || d->stopping) {
		uv_timer_stop(t);
		return;
	}
	ssc_diag_init(&diag);
	if (journal_try(d, &diag) == 0) {
		uv_timer_stop(t);
		journal_up(d, 1);
		return;
	}
	/* Still down: say so at debug only (the error was logged when it went down). */
	log_debug("journal: still unavailable: %s", diag.msg);
	snprintf(status, sizeof(status), "unavailable: %s", diag.msg[0] ? diag.msg : "unknown");
	rpc_set_journal_status(d->rpc, status);
}

/* A failed append was heard (any thread woke us). Loop thread. */
static void on_jnote(uv_async_t *a)
{
	struct daemon *d = a->data;
	char why[256];

	pthread_mutex_lock(&d->jlock);
	snprintf(why, sizeof(why), "%s", d->jwhy[0] ? d->jwhy : "an append failed");
	d->jwhy[0] = '\0';
	pthread_mutex_unlock(&d->jlock);
	if (!d->journal_ok)
		return;   /* already down (a late note) */
	journal_down(d, why);
}

static void on_jhead(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (d->journal_ok && atomic_exchange(&d->jdirty, 0))
		journal_log_head("");
	if (d->journal_ok)
		journal_log_dropped(d, NULL);
}

/*
 * Opens the journal at start and sets up its handles on the loop. A journal that cannot be opened
 * is logged and retried; the daemon serves reads meanwhile. Returns 0 or SSC_ENOMEM /
 * SSC_EINTERNAL (no audit writer).
 */
static int journal_start(struct daemon *d)
{
	struct ssc_diag diag;
	int rc;

	atomic_init(&d->jdirty, 0);
	atomic_init(&d->resolve_jobs, 0);
	pthread_mutex_init(&d->jlock, NULL);
	rc = audit_new(AUDIT_QUEUE_MAX, d->cfg.journal_audit_batch_ms, &d->audit);
	if (rc != 0)
		return rc;
	rpc_set_audit(d->rpc, on_audit, d);
	uv_async_init(&d->loop, &d->jnote, on_jnote);
	uv_timer_init(&d->loop, &d->jreopen);
	uv_timer_init(&d->loop, &d->jhead);
	uv_timer_init(&d->loop, &d->jprune);
	d->jnote.data = d->jreopen.data = d->jhead.data = d->jprune.data = d;
	d->jnote_open = 1;
	d->journal_handles = 1;
	uv_timer_start(&d->jhead, on_jhead, (uint64_t)d->cfg.journal_head_ms,
		       (uint64_t)d->cfg.journal_head_ms);
	uv_timer_start(&d->jprune, on_jprune, PRUNE_INTERVAL_MS, PRUNE_INTERVAL_MS);
	ssc_diag_init(&diag);
	if (journal_try(d, &diag) == 0)
		journal_up(d, 0);
	else
		journal_down(d, diag.msg[0] ? diag.msg : ssc_strerror(SSC_EJOURNAL));
	return 0;
}

/* Closes the journal's loop handles (at the orderly stop). Loop thread. */
static void journal_stop_handles(struct daemon *d)
{
	if (!d->journal_handles)
		return;
	d->journal_handles = 0;
	pthread_mutex_lock(&d->jlock);
	d->jnote_open = 0;
	pthread_mutex_unlock(&d->jlock);
	uv_close((uv_handle_t *)&d->jnote, NULL);
	uv_close((uv_handle_t *)&d->jreopen, NULL);
	uv_close((uv_handle_t *)&d->jhead, NULL);
	uv_close((uv_handle_t *)&d->jprune, NULL);
	if (d->prune_running)
		uv_cancel((uv_req_t *)&d->prune_req);
}

/*
 * After the loop has ended: writes the audit rows still queued, logs the final chain head, and
 * closes the journal when nothing can use it any more.
 */
static void journal_finish(struct daemon *d)
{
	struct audit_stats last;

	if (!d->audit)
		return;
	audit_free(d->audit, AUDIT_DRAIN_MS, &last);
	d->audit = NULL;
	journal_log_dropped(d, &last);
	if (!daemon_journal)
		return;
	if (d->journal_ok)
		journal_log_head(" (at shutdown)");
	journal_publish(d, NULL);
	journal_set_observer(daemon_journal, NULL, NULL);
	if (rpc_jobs_unreleased(d->rpc) == 0 && atomic_load(&d->resolve_jobs) == 0) {
		journal_close(daemon_journal);
		daemon_journal = NULL;
	} else {
		/* A stuck worker may still append: keep the handle, without its database. */
		journal_suspend(daemon_journal, "the daemon is stopping");
	}
}

/* The orderly stop, for a signal or a failed start. Loop thread. */
static void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("%s: shutting down", why);
	service_notify("STOPPING=1");
	service_watchdog_stop(&d->wd);
	metrics_stop(d->metrics);
	d->metrics = NULL;
#ifdef SSC_TEST_HOOKS
	if (d->freeze_open) {
		d->freeze_open = 0;
		uv_close((uv_handle_t *)&d->sigfreeze, NULL);
	}
#endif
	/*
	 * The reader core first: it completes every job still in flight (SSC_ESHUTDOWN), and
	 * those replies are queued before the server starts draining and closing its clients.
	 */
	readers_free(d->rd);
	d->rd = NULL;
	rpc_set_backend(d->rpc, NULL, NULL);
	server_stop(d->srv);
	journal_stop_handles(d);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	daemon_stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static int parse_args(int argc, char **argv, struct daemon *d, int *check_only)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *config_path = NULL, *level = NULL;
	int foreground = 0, c, rc;
	enum log_level lvl;
	char err[512];
	struct stat st;

	*check_only = 0;
	while ((c = getopt_long(argc, argv, "fs:c:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			foreground = 1;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'C':
			*check_only = 1;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("sscardd %s (API level %d)\n", SSC_VERSION, RPC_API_LEVEL);
			exit(EXIT_OK);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sscardd: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	config_defaults(&d->cfg);
	if (!config_path)
		config_path = config_default_path();   /* the same as sscardctl's */
	d->config_file = config_path;
	if (config_path) {
		rc = config_load(&d->cfg, config_path, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "sscardd: %s\n", err);
			return EXIT_USAGE;
		}
		/* A readable key file is a leaked key: say so (it still works). */
		if (d->cfg.card_id_mac_key_set && stat(config_path, &st) == 0 &&
		    (st.st_mode & S_IROTH))
			fprintf(stderr, "sscardd: warning: %s holds card_id_mac_key and is readable "
				"by everyone (chmod o-r)\n", config_path);
	}
	if (socket_path) {
		if (socket_path[0] != '/' || strlen(socket_path) >= sizeof(d->cfg.socket_path)) {
			fprintf(stderr, "sscardd: --socket needs an absolute path\n");
			return EXIT_USAGE;
		}
		snprintf(d->cfg.socket_path, sizeof(d->cfg.socket_path), "%s", socket_path);
	}
	if (level) {
		if (log_parse_level(level, &lvl) != 0) {
			fprintf(stderr, "sscardd: --log-level: expected error, warn, info, debug or "
				"trace\n");
			return EXIT_USAGE;
		}
		snprintf(d->cfg.log_level, sizeof(d->cfg.log_level), "%s", level);
	}
	if (log_parse_level(d->cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (!foreground && !*check_only)
		fprintf(stderr, "sscardd: sscardd does not fork: it runs in the foreground (under "
			"systemd, sscardd.service runs it so)\n");
	return EXIT_OK;
}

/*
 * The reader core over the drivers [drivers] enables, probing each new card for a PSAM, and
 * counting every APDU for the metrics.
 */
static int daemon_readers_new(struct daemon *d)
{
	const struct ssc_driver_ops *drivers[2];
	struct readers_setup rs = { drivers, 0, psam_probe, metrics_apdu };

	if (d->cfg.driver_pcsc)
		drivers[rs.n_drivers++] = &ssc_driver_pcsc;
	if (d->cfg.driver_usb)
		drivers[rs.n_drivers++] = &ssc_driver_usb_ccid;
	return readers_new(&d->loop, &d->cfg, &rs, on_reader_event, d, &d->rd);
}

/*
 * The key providers: the PSAM in a reader, and the network PSAM of [hsm] when a url is set (its
 * files checked now: a key file others can read stops the start), each counted for the metrics,
 * in the order [hsm] prefer gives. Sets d->env.kp. Returns 0 or an error (logged).
 */
static int daemon_keys(struct daemon *d)
{
	char err[512] = "";
	int rc;

	psam_pool_init(&daemon_psams, d->rd, &d->cfg);
	rc = psam_keyprov_new(&daemon_psams.src, &d->cfg, &daemon_kp);
	if (rc != 0) {
		log_error("cannot create the PSAM key provider: %s", ssc_strerror(rc));
		return rc;
	}
	/* Counted for the metrics (the wrappers are kept, like the providers, to the end). */
	daemon_kp_counted = metrics_keyprov_wrap(daemon_kp);
	if (!d->cfg.hsm_url[0]) {
		d->env.kp = daemon_kp_counted;
		return 0;
	}
	rc = hsm_keyprov_new(&d->cfg, &daemon_hsm_kp, err, sizeof(err));
	if (rc != 0) {
		log_error("%s: %s", d->config_file ? d->config_file : "configuration",
			  err[0] ? err : ssc_strerror(rc));
		return rc;
	}
	daemon_hsm_counted = metrics_keyprov_wrap(daemon_hsm_kp);
	rc = d->cfg.hsm_prefer == HSM_PREFER_HSM
		     ? keysel_new(daemon_hsm_counted, daemon_kp_counted, &daemon_keysel)
		     : keysel_new(daemon_kp_counted, daemon_hsm_counted, &daemon_keysel);
	if (rc != 0) {
		log_error("cannot set up the key providers: %s", ssc_strerror(rc));
		return rc;
	}
	log_info("keys: %s first, then %s ([hsm] prefer)",
		 d->cfg.hsm_prefer == HSM_PREFER_HSM ? "the key server" : "a PSAM in a reader",
		 d->cfg.hsm_prefer == HSM_PREFER_HSM ? "a PSAM in a reader" : "the key server");
	d->env.kp = daemon_keysel;
	return 0;
}

/* --check-config: the [hsm] files too (readable, the key private), as the daemon would. */
static int check_hsm_files(const struct daemon *d)
{
	struct keyprov *kp = NULL;
	char err[512] = "";
	int rc;

	if (!d->cfg.hsm_url[0])
		return 0;
	rc = hsm_keyprov_new(&d->cfg, &kp, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "sscardd: %s: %s\n", d->config_file ? d->config_file : "configuration",
			err[0] ? err : ssc_strerror(rc));
	keyprov_free(kp);
	return rc;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	struct rpc_backend be;
	int check_only, rc, status = EXIT_RUNTIME, harden_errno = 0;

	if (process_harden() != 0)
		harden_errno = errno;
	rc = parse_args(argc, argv, &d, &check_only);
	if (rc != EXIT_OK)
		return rc;
	if (check_only) {
		log_config(&d.cfg, d.config_file);
		if (check_hsm_files(&d) != 0) {
			config_wipe(&d.cfg);
			return EXIT_USAGE;
		}
		config_wipe(&d.cfg);
		printf("configuration OK\n");
		return EXIT_OK;
	}
	/* A client that hangs up must cost us an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	log_info("sscardd %s starting (API level %d, pid %ld)", SSC_VERSION, RPC_API_LEVEL,
		 (long)getpid());
	log_config(&d.cfg, d.config_file);
	if (harden_errno)
		log_warn("cannot disable core dumps: %s: a crash may write PINs and keys to a core "
			 "file", strerror(harden_errno));
	else
		log_info("core dumps disabled, and the daemon's memory closed to other processes of "
			 "its uid");
	/* Best effort: a locked page is never written to swap (RLIMIT_MEMLOCK may forbid it). */
	(void)mlock(d.cfg.card_id_mac_key, sizeof(d.cfg.card_id_mac_key));
	nofile_fit(&d.cfg);

	if (uv_loop_init(&d.loop) != 0) {
		log_error("cannot create the event loop");
		goto out_wipe;
	}
	rc = rpc_new(&d.cfg, &d.rpc);
	if (rc != 0)
		goto out_loop;
	{
		/* The browser bridge's pairings and who may use them (docs/web.md). */
		struct rpc_web_cfg web;
		struct ssc_diag wd;

		ssc_diag_init(&wd);
		rc = webpair_new(d.cfg.journal_path, d.cfg.web_code_ttl_s * 1000, &d.pairs);
		if (rc == 0)
			rc = rpc_web_setup(&d.cfg, d.pairs, &web, &wd);
		if (rc != 0) {
			log_error("%s", wd.msg[0] ? wd.msg : ssc_strerror(rc));
			goto out_rpc;
		}
		rpc_set_web(d.rpc, &web);
	}
	rc = daemon_readers_new(&d);
	if (rc != 0) {
		log_error("cannot start the reader core: %s", ssc_strerror(rc));
		goto out_rpc;
	}
	rc = daemon_keys(&d);
	if (rc != 0) {
		/* A key file that others may read is a bad configuration: refused like one. */
		if (rc == SSC_ECONFIG)
			status = EXIT_USAGE;
		goto out_readers;
	}
	d.env.cfg = &d.cfg;
	/*
	 * The journal is published in env by journal_start() below once it opens; until then, and
	 * whenever it is down, reads go on and writes are refused (SSC_EJOURNAL).
	 */
	d.env.journal = NULL;
	be.list = be_list;
	be.submit = be_submit;
	be.cancel = be_cancel;
	be.ctx = d.rd;
	rpc_set_backend(d.rpc, &be, &d.env);
	rc = server_new(&d.loop, &d.cfg, d.rpc, &d.srv);
	if (rc != 0) {
		log_error("cannot serve on %s: %s", d.cfg.socket_path, ssc_strerror(rc));
		goto out_readers;
	}
	uv_signal_init(&d.loop, &d.sigint);
	uv_signal_init(&d.loop, &d.sigterm);
	d.sigint.data = d.sigterm.data = &d;
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	/* Root is needed for nothing after the socket: drop it (issue 19). */
	if (daemon_user(&d) != 0) {
		daemon_stop(&d, "the daemon could not drop root");
	} else {
		/* Before the journal's first row: audit shipping (issue 19). */
		if (d.cfg.audit_syslog && syslog_audit_new(d.cfg.audit_syslog_socket, &d.syslog) == 0)
			log_info("audit: every journal row goes to syslog at %s (RFC 5424, "
				 SYSLOG_AUDIT_SDID ")", d.cfg.audit_syslog_socket);
		/* Before the first client and the first card: the audit trail and write intents. */
		rc = journal_start(&d);
		if (rc != 0) {
			log_error("cannot start the audit writer: %s", ssc_strerror(rc));
			daemon_stop(&d, "the audit writer did not start");
		}
	}
	rc = d.stopping ? SSC_ESHUTDOWN : readers_start(d.rd);
	if (rc == SSC_ESHUTDOWN) {
		/* journal_start() failed: daemon_stop() has run. */
	} else if (rc != 0) {
		log_error("cannot start the readers: %s", ssc_strerror(rc));
		daemon_stop(&d, "the readers did not start");
	} else {
		status = EXIT_OK;
		/* Without its metrics the daemon still serves the desk: an error, not a stop. */
		if (d.cfg.metrics_listen[0] &&
		    metrics_start(&d.loop, &d.cfg, daemon_gauges, &d, &d.metrics) != 0)
			d.metrics = NULL;
		log_info("ready");
		/* The service manager starts clients after this (Type=notify). */
		service_notify("READY=1");
		daemon_service_status(&d, d.journal_ok ? "ok" : "unavailable");
		service_watchdog_start(&d.wd, &d.loop, daemon_alive, &d);
#ifdef SSC_TEST_HOOKS
		daemon_test_hooks(&d);
#endif
	}

	uv_run(&d.loop, UV_RUN_DEFAULT);
	log_info("stopped");
	journal_finish(&d);
	/*
	 * Once the journal is closed nothing sends any more; while a stuck worker may still append
	 * (the journal kept open), the sender is kept too (reachable: not a leak).
	 */
	if (!daemon_journal) {
		syslog_audit_free(d.syslog);
		d.syslog = NULL;
	}
	server_free(d.srv);
	rpc_free(d.rpc);
	webpair_free(d.pairs);
	if (uv_loop_close(&d.loop) != 0)
		log_warn("the event loop still had handles at exit");
	config_wipe(&d.cfg);
	return status;

out_readers:
	readers_free(d.rd);
	uv_run(&d.loop, UV_RUN_NOWAIT);
out_rpc:
	rpc_free(d.rpc);
	webpair_free(d.pairs);
out_loop:
	uv_loop_close(&d.loop);
out_wipe:
	config_wipe(&d.cfg);
	return status;
}
