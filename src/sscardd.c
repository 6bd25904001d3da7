/*
 * This file contains sscardd's main(): options, configuration, logging, the process's own limits
 * (no core dumps, open files), signals, and the daemon built, started and stopped through
 * src/daemon.h, which holds the wiring.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <openssl/crypto.h>

#include "config.h"
#include "daemon.h"
#include "hsm_keyprov.h"
#include "keyprov.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "service.h"
#include "sscard/error.h"

/* Exit codes (docs/operations.md). */
#define EXIT_OK 0
#define EXIT_RUNTIME 1   /* could not start (socket, readers) or failed while running */
#define EXIT_USAGE 2     /* bad options or a bad configuration file */

/* What main() holds: the configuration, the loop, the daemon and the signals that stop it. */
struct sscardd {
	uv_loop_t loop;
	struct config cfg;
	const char *config_file;     /* the file cfg was read from, NULL = built-in defaults */
	struct daemon *d;
	uv_signal_t sigint, sigterm;
	int signals_open;
#ifdef SSC_TEST_HOOKS
	uv_signal_t sigfreeze;       /* the watchdog test's hook (sscardd_test_hooks) */
	int freeze_open;
#endif
};

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
 * The process's allocators, set before any thread or database exists (issue 18: idle memory,
 * docs/performance.md). glibc gives each thread that allocates an arena of its own, which keeps
 * the pages it once used; the daemon's threads wait on cards and allocate little, so one arena
 * (each thread's small-allocation cache still spares it the lock) holds what eleven did. SQLite
 * sets aside, at each connection's open, twenty pages of cache at once; with none set aside it
 * allocates a page when the connection uses one, as it does beyond the twenty anyway.
 */
static void process_memory_setup(void)
{
	(void)mallopt(M_ARENA_MAX, 1);
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

/*
 * OpenSSL's error strings, before its first use: without [hsm] url they are not loaded. Loading
 * them calls a function in each part of libcrypto (ASN.1, EVP, X.509, ...), so that pages from
 * all over its code, about 450 KiB, stay resident for the daemon's life (docs/performance.md),
 * and the daemon itself logs its own error names, never OpenSSL's strings. Only libcurl, for the
 * key server, puts OpenSSL's text into a message (SSC_EHSMTLS: "… PEM routines::no start
 * line"): with [hsm] url they are loaded as before (the configuration is read once, at start).
 */
static void process_crypto_setup(const struct config *cfg)
{
	if (!cfg->hsm_url[0])
		(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
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
		 "%d initial PIN(s)%s, read-ahead %s", cfg->read_auth == READ_AUTH_ALWAYS ? "always" :
		 cfg->read_auth == READ_AUTH_NEVER ? "never" : "auto",
		 cfg->verify_card_id_mac ? "on" : "off", cfg->card_id_mac_key_set ? "set" : "not set",
		 cfg->pin_min_len, cfg->pin_max_len, cfg->n_initial_pins,
		 cfg->refuse_initial_pin ? ", refused for VERIFY" : "",
		 !cfg->prefetch ? "off" : cfg->prefetch_shared ? "on (kept for the insertion)"
							      : "on (kept while held)");
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

static void sscardd_test_hooks(struct sscardd *m)
{
	if (!getenv("SSCARDD_TEST_FREEZE_MS"))
		return;
	uv_signal_init(&m->loop, &m->sigfreeze);
	uv_signal_start(&m->sigfreeze, on_sigfreeze, SIGUSR2);
	m->freeze_open = 1;
	log_warn("test hook: SIGUSR2 freezes the event loop (a test build)");
}
#endif

/* Closes main()'s signal handles, so that the loop ends once the daemon's are closed too. */
static void sscardd_signals_close(struct sscardd *m)
{
#ifdef SSC_TEST_HOOKS
	if (m->freeze_open) {
		m->freeze_open = 0;
		uv_close((uv_handle_t *)&m->sigfreeze, NULL);
	}
#endif
	if (!m->signals_open)
		return;
	m->signals_open = 0;
	uv_close((uv_handle_t *)&m->sigint, NULL);
	uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct sscardd *m = s->data;

	daemon_stop(m->d, signum == SIGINT ? "SIGINT" : "SIGTERM");
	sscardd_signals_close(m);
}

static int parse_args(int argc, char **argv, struct sscardd *d, int *check_only)
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

/* --check-config: the [hsm] files too (readable, the key private), as the daemon would. */
static int check_hsm_files(const struct sscardd *m)
{
	struct keyprov *kp = NULL;
	char err[512] = "";
	int rc;

	if (!m->cfg.hsm_url[0])
		return 0;
	rc = hsm_keyprov_new(&m->cfg, &kp, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "sscardd: %s: %s\n", m->config_file ? m->config_file : "configuration",
			err[0] ? err : ssc_strerror(rc));
	keyprov_free(kp);
	return rc;
}

/*
 * [metrics] listen: libmicrohttpd loaded now (src/metrics_mhd.h), at start, so that a desk whose
 * package lost it learns so when the daemon starts, not at the first scrape. Without [metrics]
 * nothing is loaded. Returns 0, or the error with its message in err.
 */
static int metrics_lib_check(const struct sscardd *m, char *err, size_t errlen)
{
	if (!m->cfg.metrics_listen[0])
		return 0;
	return metrics_load(err, errlen);
}

int main(int argc, char **argv)
{
	static struct sscardd m;
	int check_only, rc, status = EXIT_RUNTIME, harden_errno = 0, refused = 0;
	char err[512] = "";

	if (process_harden() != 0)
		harden_errno = errno;
	process_memory_setup();
	rc = parse_args(argc, argv, &m, &check_only);
	if (rc != EXIT_OK)
		return rc;
	process_crypto_setup(&m.cfg);
	if (check_only) {
		log_config(&m.cfg, m.config_file);
		if (metrics_lib_check(&m, err, sizeof(err)) != 0) {
			fprintf(stderr, "sscardd: %s: %s\n", m.config_file ? m.config_file :
				"configuration", err);
			config_wipe(&m.cfg);
			return EXIT_USAGE;
		}
		if (check_hsm_files(&m) != 0) {
			config_wipe(&m.cfg);
			return EXIT_USAGE;
		}
		config_wipe(&m.cfg);
		printf("configuration OK\n");
		return EXIT_OK;
	}
	/* A client that hangs up must cost us an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	log_info("sscardd %s starting (API level %d, pid %ld)", SSC_VERSION, RPC_API_LEVEL,
		 (long)getpid());
	log_config(&m.cfg, m.config_file);
	if (harden_errno)
		log_warn("cannot disable core dumps: %s: a crash may write PINs and keys to a core "
			 "file", strerror(harden_errno));
	else
		log_info("core dumps disabled, and the daemon's memory closed to other processes of "
			 "its uid");
	/* Best effort: a locked page is never written to swap (RLIMIT_MEMLOCK may forbid it). */
	(void)mlock(m.cfg.card_id_mac_key, sizeof(m.cfg.card_id_mac_key));
	nofile_fit(&m.cfg);
	if (metrics_lib_check(&m, err, sizeof(err)) != 0) {
		log_error("%s: %s", m.config_file ? m.config_file : "configuration", err);
		goto out_wipe;
	}

	if (uv_loop_init(&m.loop) != 0) {
		log_error("cannot create the event loop");
		goto out_wipe;
	}
	if (daemon_new(&m.loop, &m.cfg, m.config_file, &m.d, &refused) != 0) {
		if (refused)
			status = EXIT_USAGE;
		goto out_loop;
	}
	/* Before the first possible daemon_stop(). */
	uv_signal_init(&m.loop, &m.sigint);
	uv_signal_init(&m.loop, &m.sigterm);
	m.sigint.data = m.sigterm.data = &m;
	uv_signal_start(&m.sigint, on_signal, SIGINT);
	uv_signal_start(&m.sigterm, on_signal, SIGTERM);
	m.signals_open = 1;
	if (daemon_start(m.d) != 0) {
		/* Stopped already (logged): let the loop close what is left. */
		sscardd_signals_close(&m);
	} else {
		status = EXIT_OK;
#ifdef SSC_TEST_HOOKS
		sscardd_test_hooks(&m);
#endif
	}

	uv_run(&m.loop, UV_RUN_DEFAULT);
	log_info("stopped");
	daemon_free(m.d);
	if (uv_loop_close(&m.loop) != 0)
		log_warn("the event loop still had handles at exit");
	config_wipe(&m.cfg);
	return status;

out_loop:
	uv_loop_close(&m.loop);
out_wipe:
	config_wipe(&m.cfg);
	return status;
}
