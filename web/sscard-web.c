/*
 * This file contains main() of sscard-web, the browser bridge (docs/web.md): options, the
 * configuration, signals, and the bridge's loop. It runs in the foreground as the user [web]
 * bridge_user of sscardd names (under systemd, or by hand); it opens no reader and no journal.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"
#include "webcfg.h"

#ifndef SSC_VERSION
#define SSC_VERSION "0.0.0"
#endif

static struct bridge *the_bridge;

static void on_signal(int sig)
{
	(void)sig;
	if (the_bridge)
		bridge_stop(the_bridge);
}

/*
 * The demo page must be readable by this program's user (it runs unprivileged): a directory it
 * cannot reach would be served as 404 to every page, which looks like a broken page rather than a
 * permission. Says so at the start instead. Returns 0 when DIR/index.html can be read.
 */
static int demo_readable(const char *dir)
{
	char path[WEBCFG_PATH_MAX + 16];
	int n = snprintf(path, sizeof(path), "%s/index.html", dir);

	if (n < 0 || (size_t)n >= sizeof(path) || access(path, R_OK) == 0)
		return 0;
	fprintf(stderr, "sscard-web: cannot read the demo page %s as user id %u: %s. Give this "
		"user read access to it and search (x) access to every directory above it, point "
		"[web] static_dir (or --static-dir) at a copy it can read, or set [web] demo = no\n",
		path, (unsigned)geteuid(), strerror(errno));
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sscard-web [--foreground] [--config FILE] [--socket PATH] [--listen ADDR:PORT]\n"
		"                  [--static-dir DIR] [--log-level LEVEL]\n"
		"The browser bridge of sscard: a WebSocket endpoint ws://127.0.0.1:%d/v1 for the\n"
		"pages of the origins allowed in FILE, once the operator has paired them\n"
		"(sscardctl web pair ORIGIN), and the demo page at http://127.0.0.1:%d/.\n"
		"\n"
		"  --config FILE      the bridge's configuration (default %s when it exists)\n"
		"  --socket PATH      the daemon's socket (default [web] socket, else\n"
		"                     $SSCARD_SOCKET, else /run/sscard/sscardd.sock)\n"
		"  --listen ADDR:PORT a loopback address only (default %s)\n"
		"  --static-dir DIR   the demo page's files (default %s)\n"
		"  --log-level LEVEL  error, warn, info, debug\n"
		"  --foreground       run in the foreground (the only mode; for systemd and scripts)\n"
		"  --version, -h/--help\n"
		"Exit status: 0 stopped by a signal, 1 cannot start, 2 usage or configuration.\n",
		WEBCFG_DEFAULT_PORT, WEBCFG_DEFAULT_PORT, WEBCFG_DEFAULT_PATH, WEBCFG_DEFAULT_LISTEN,
		SSC_WEB_STATIC_DIR);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "static-dir", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct webcfg cfg;
	const char *config = NULL, *sock = NULL, *listen = NULL, *dir = NULL, *level = NULL;
	const char *why, *env;
	char err[600];
	enum log_level lvl;
	struct sigaction sa;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'l': listen = optarg; break;
		case 'd': dir = optarg; break;
		case 'L': level = optarg; break;
		case 'f': break;
		case 'V': printf("sscard-web %s\n", SSC_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	webcfg_defaults(&cfg);
	if (!config && access(WEBCFG_DEFAULT_PATH, F_OK) == 0)
		config = WEBCFG_DEFAULT_PATH;
	if (config && webcfg_load(&cfg, config, err, sizeof(err)) != 0) {
		fprintf(stderr, "sscard-web: %s\n", err);
		return 2;
	}
	if (listen) {
		if (webcfg_parse_listen(listen, cfg.host, sizeof(cfg.host), &cfg.port, &why) != 0) {
			fprintf(stderr, "sscard-web: --listen %s: %s\n", listen, why);
			return 2;
		}
		snprintf(cfg.listen, sizeof(cfg.listen), "%s", listen);
	}
	env = getenv("SSCARD_SOCKET");
	if (sock)
		snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", sock);
	else if (!cfg.socket_path[0] && env && env[0])
		snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", env);
	if (dir)
		snprintf(cfg.static_dir, sizeof(cfg.static_dir), "%s", dir);
	if (level)
		snprintf(cfg.log_level, sizeof(cfg.log_level), "%s", level);
	if (log_parse_level(cfg.log_level, &lvl) != 0) {
		fprintf(stderr, "sscard-web: log level %s: error, warn, info or debug\n",
			cfg.log_level);
		return 2;
	}
	log_set_level(lvl);
	if (webcfg_finish(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "sscard-web: %s\n", err);
		return 2;
	}

	if (cfg.demo && demo_readable(cfg.static_dir) != 0)
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (bridge_new(&cfg, &the_bridge) != 0)
		return 1;
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	log_info("sscard-web %s listening on ws://%s/v1 (daemon socket %s); %d origin(s) allowed%s",
		 SSC_VERSION, cfg.listen, cfg.socket_path[0] ? cfg.socket_path :
		 "/run/sscard/sscardd.sock", cfg.n_origins, cfg.demo ? ", demo page at /" : "");
	for (int i = 0; i < cfg.n_origins; i++)
		log_info("origin %s: %d method(s)", cfg.origins[i].origin, cfg.origins[i].n_methods);
	bridge_run(the_bridge);
	log_info("stopped");
	bridge_free(the_bridge);
	return 0;
}
