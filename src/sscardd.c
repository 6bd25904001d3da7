/*
 * This file contains sscardd's main(): options, configuration, logging, signals, and the wiring
 * of the reader core, the PSAM key provider, the JSON-RPC layer and the socket server on one
 * libuv loop; and the orderly shutdown on SIGINT/SIGTERM.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "journal.h"
#include "keyprov.h"
#include "log.h"
#include "ops.h"
#include "psam.h"
#include "readers.h"
#include "rpc.h"
#include "server.h"
#include "sscard/error.h"

/* Exit codes (docs/operations.md). */
#define EXIT_OK 0
#define EXIT_RUNTIME 1   /* could not start (socket, readers) or failed while running */
#define EXIT_USAGE 2     /* bad options or a bad configuration file */

struct daemon {
	uv_loop_t loop;
	struct config cfg;
	struct rpc *rpc;
	struct readers *rd;
	struct server *srv;
	struct op_env env;
	uv_signal_t sigint, sigterm;
	int stopping;
};

/*
 * The key provider is not freed at exit: readers_free() may leave a worker that is stuck in a
 * driver call detached, and that worker may still reach the provider when the call returns. The
 * process is ending; a file-scope reference keeps the allocation reachable (not a leak).
 */
static struct keyprov *daemon_kp;
/* The journal, for the same reason: a detached worker may still be using it. */
static struct journal *daemon_journal;

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
		"  -f, --foreground     run in the foreground, logging to stderr (the only mode for\n"
		"                       now; without it sscardd says so and runs in the foreground)\n"
		"  -s, --socket PATH    the API socket (default /run/sscard/sscardd.sock, or\n"
		"                       [daemon] socket_path)\n"
		"  -c, --config FILE    read this INI file (docs/operations.md, conf/sscardd.conf)\n"
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
static void log_config(const struct config *cfg)
{
	char k[7][12], aid[33];

	log_info("config: socket %s (mode %04o, group %s), log level %s", cfg->socket_path,
		 cfg->socket_mode, cfg->socket_group[0] ? cfg->socket_group : "(unchanged)",
		 cfg->log_level);
	log_info("config: limits: %d clients (%d per uid), %zu bytes per request, JSON depth %d, "
		 "%d in flight per client, idle %d ms", cfg->max_clients, cfg->max_clients_per_uid,
		 cfg->max_request_bytes, cfg->max_json_depth, cfg->max_inflight_per_client,
		 cfg->idle_timeout_ms);
	log_info("config: timeouts: operation %d ms, APDU %d ms, connect %d ms, PSAM %d ms",
		 cfg->op_timeout_ms, cfg->apdu_timeout_ms, cfg->connect_timeout_ms,
		 cfg->psam_timeout_ms);
	log_info("config: drivers: pcsc %s, usb %s%s%s, poll %d ms; %d reader role(s) fixed",
		 cfg->driver_pcsc ? "on" : "off", cfg->driver_usb ? "on" : "off",
		 cfg->usb_allow[0] ? " allow " : "", cfg->usb_allow, cfg->poll_interval_ms,
		 cfg->n_roles);
	for (int i = 0; i < cfg->n_roles; i++)
		log_info("config: reader \"%s\" is %s", cfg->roles[i].reader, cfg->roles[i].role);
	log_info("config: card: read_auth %s, 卡识别码 MAC check %s (key %s), PIN %d..%d digits",
		 cfg->read_auth == READ_AUTH_ALWAYS ? "always" :
		 cfg->read_auth == READ_AUTH_NEVER ? "never" : "auto",
		 cfg->verify_card_id_mac ? "on" : "off", cfg->card_id_mac_key_set ? "set" : "not set",
		 cfg->pin_min_len, cfg->pin_max_len);
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
	log_info("config: journal %s", cfg->journal_path);
}

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	return readers_list(ctx, out, n);
}

static int be_submit(void *ctx, struct job *job)
{
	return readers_submit(ctx, job);
}

/* The orderly stop, for a signal or a failed start. Loop thread. */
static void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("%s: shutting down", why);
	/*
	 * The reader core first: it completes every job still in flight (SSC_ESHUTDOWN), and
	 * those replies are queued before the server starts draining and closing its clients.
	 */
	readers_free(d->rd);
	d->rd = NULL;
	rpc_set_backend(d->rpc, NULL, NULL);
	server_stop(d->srv);
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
		fprintf(stderr, "sscardd: there is no daemon mode yet (a systemd unit comes later); "
			"running in the foreground\n");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct daemon d;
	struct rpc_backend be;
	int check_only, rc, status = EXIT_RUNTIME;

	rc = parse_args(argc, argv, &d, &check_only);
	if (rc != EXIT_OK)
		return rc;
	if (check_only) {
		log_config(&d.cfg);
		config_wipe(&d.cfg);
		printf("configuration OK\n");
		return EXIT_OK;
	}
	/* A client that hangs up must cost us an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	log_info("sscardd %s starting (API level %d, pid %ld)", SSC_VERSION, RPC_API_LEVEL,
		 (long)getpid());
	log_config(&d.cfg);

	if (uv_loop_init(&d.loop) != 0) {
		log_error("cannot create the event loop");
		goto out_wipe;
	}
	rc = rpc_new(&d.cfg, &d.rpc);
	if (rc != 0)
		goto out_loop;
	rc = readers_new(&d.loop, &d.cfg, rpc_event, d.rpc, &d.rd);
	if (rc != 0) {
		log_error("cannot start the reader core: %s", ssc_strerror(rc));
		goto out_rpc;
	}
	rc = psam_keyprov_new(readers_psam_source(d.rd), &d.cfg, &daemon_kp);
	if (rc != 0) {
		log_error("cannot create the PSAM key provider: %s", ssc_strerror(rc));
		goto out_readers;
	}
	d.env.cfg = &d.cfg;
	d.env.kp = daemon_kp;
	/* Without the journal reads go on and writes are refused (SSC_EJOURNAL). */
	{
		struct ssc_diag jd;

		ssc_diag_init(&jd);
		if (journal_open(d.cfg.journal_path, d.cfg.journal_key_path[0] ?
				 d.cfg.journal_key_path : NULL, 0, &daemon_journal, &jd) != 0)
			log_error("journal %s: %s: card writes are refused", d.cfg.journal_path,
				  jd.msg[0] ? jd.msg : ssc_strerror(SSC_EJOURNAL));
	}
	d.env.journal = daemon_journal;
	be.list = be_list;
	be.submit = be_submit;
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
	rc = readers_start(d.rd);
	if (rc != 0) {
		log_error("cannot start the readers: %s", ssc_strerror(rc));
		daemon_stop(&d, "the readers did not start");
	} else {
		status = EXIT_OK;
		log_info("ready");
	}

	uv_run(&d.loop, UV_RUN_DEFAULT);
	log_info("stopped");
	server_free(d.srv);
	rpc_free(d.rpc);
	if (uv_loop_close(&d.loop) != 0)
		log_warn("the event loop still had handles at exit");
	config_wipe(&d.cfg);
	return status;

out_readers:
	readers_free(d.rd);
	uv_run(&d.loop, UV_RUN_NOWAIT);
out_rpc:
	rpc_free(d.rpc);
out_loop:
	uv_loop_close(&d.loop);
out_wipe:
	config_wipe(&d.cfg);
	return status;
}
