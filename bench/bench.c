/*
 * This file contains sscard-bench's command line: the measuring clients of the benchmark, one per
 * subcommand (bare PC/SC script, JSON-RPC latency, JSON-RPC load, journal). bench/run.py starts
 * pcscd, the simulators and sscardd and drives these; each prints key=value lines.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_journal.h"
#include "bench_pcsc.h"
#include "bench_rpc.h"

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: sscard-bench pcsc --script FILE... --reader NAME [--psam-reader NAME] [-n RUNS]\n"
		"                         [--warmup N] [--connect-per-run] [--context-per-run]\n"
		"                         [--reset] [--handoff] [--verbose] [--samples FILE]\n"
		"       sscard-bench rpc --socket PATH --method M [--params JSON]... [-n RUNS]\n"
		"                        [--warmup N] [--allow-errors] [--timeout-ms MS]\n"
		"                        [--samples FILE]\n"
		"       sscard-bench load --socket PATH --method M [--params JSON]... --clients N\n"
		"                         --seconds S [--retry-ms MS] [--timeout-ms MS]\n"
		"       sscard-bench journal --dir DIR [--audit-rows N] [--intents N]\n"
		"\n"
		"pcsc     times an APDU script (bench/seq/NAME.seq) sent straight to pcscd\n"
		"rpc      times sequential JSON-RPC calls to sscardd (one connection)\n"
		"load     N connections, one request in flight each, for S seconds\n"
		"journal  audit rows and write intents per second on DIR's disk\n"
		"Output: key=value lines (latencies in microseconds); --samples FILE also writes\n"
		"every timed run's duration, one per line. Exit 0, 1 failure, 2 usage.\n");
}

enum {
	OPT_SCRIPT = 256, OPT_READER, OPT_PSAM, OPT_WARMUP, OPT_CONNECT, OPT_CONTEXT, OPT_RESET,
	OPT_VERBOSE, OPT_SOCKET, OPT_METHOD, OPT_PARAMS, OPT_ALLOW, OPT_TIMEOUT, OPT_CLIENTS,
	OPT_SECONDS, OPT_RETRY, OPT_DIR, OPT_AUDIT, OPT_INTENTS, OPT_SAMPLES, OPT_HANDOFF,
};

static const struct option bench_options[] = {
	{ "script", required_argument, NULL, OPT_SCRIPT },
	{ "reader", required_argument, NULL, OPT_READER },
	{ "psam-reader", required_argument, NULL, OPT_PSAM },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "connect-per-run", no_argument, NULL, OPT_CONNECT },
	{ "context-per-run", no_argument, NULL, OPT_CONTEXT },
	{ "reset", no_argument, NULL, OPT_RESET },
	{ "handoff", no_argument, NULL, OPT_HANDOFF },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "method", required_argument, NULL, OPT_METHOD },
	{ "params", required_argument, NULL, OPT_PARAMS },
	{ "allow-errors", no_argument, NULL, OPT_ALLOW },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "clients", required_argument, NULL, OPT_CLIENTS },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "retry-ms", required_argument, NULL, OPT_RETRY },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "audit-rows", required_argument, NULL, OPT_AUDIT },
	{ "intents", required_argument, NULL, OPT_INTENTS },
	{ "samples", required_argument, NULL, OPT_SAMPLES },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A decimal integer in [min, max]; -1 (and a message) otherwise. */
static long bench_int(const char *s, long min, long max, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < min || v > max) {
		fprintf(stderr, "sscard-bench: %s must be %ld..%ld\n", what, min, max);
		return -1;
	}
	return v;
}

int main(int argc, char **argv)
{
	struct bench_pcsc_opts po = { .runs = 200, .warmup = 20 };
	struct bench_rpc_opts ro = { .runs = 200, .warmup = 20, .clients = 1, .seconds = 5,
				     .retry_ms = 2, .timeout_ms = 30000 };
	struct bench_journal_opts jo = { .dir = "/var/tmp", .audit_rows = 2000, .intents = 200 };
	const char *cmd, *scripts[8];
	int n_scripts = 0;
	long v;
	int opt;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		bench_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "n:h", bench_options, NULL)) != -1) {
		v = 0;
		switch (opt) {
		case 'n':
			v = po.runs = ro.runs = (int)bench_int(optarg, 1, 10000000, "-n");
			break;
		case OPT_SCRIPT:
			if (n_scripts == 8) {
				fprintf(stderr, "sscard-bench: at most 8 --script\n");
				return 2;
			}
			scripts[n_scripts++] = optarg;
			break;
		case OPT_READER: po.card_reader = optarg; break;
		case OPT_PSAM: po.psam_reader = optarg; break;
		case OPT_WARMUP:
			v = po.warmup = ro.warmup = (int)bench_int(optarg, 0, 100000, "--warmup");
			break;
		case OPT_CONNECT: po.connect_per_run = 1; break;
		case OPT_CONTEXT: po.context_per_run = 1; break;
		case OPT_RESET: po.reset_per_run = 1; break;
		case OPT_HANDOFF: po.handoff = 1; break;
		case OPT_VERBOSE: po.verbose = 1; break;
		case OPT_SOCKET: ro.socket_path = optarg; break;
		case OPT_METHOD: ro.method = optarg; break;
		case OPT_PARAMS:
			if (ro.n_params == BENCH_RPC_PARAMS_MAX) {
				fprintf(stderr, "sscard-bench: at most %d --params\n",
					BENCH_RPC_PARAMS_MAX);
				return 2;
			}
			ro.params[ro.n_params++] = optarg;
			break;
		case OPT_ALLOW: ro.allow_errors = 1; break;
		case OPT_TIMEOUT:
			v = ro.timeout_ms = (int)bench_int(optarg, 1, 3600000, "--timeout-ms");
			break;
		case OPT_CLIENTS:
			v = ro.clients = (int)bench_int(optarg, 1, 10000, "--clients");
			break;
		case OPT_SECONDS:
			v = bench_int(optarg, 1, 3600, "--seconds");
			ro.seconds = (double)v;
			break;
		case OPT_RETRY:
			v = ro.retry_ms = (int)bench_int(optarg, 0, 60000, "--retry-ms");
			break;
		case OPT_SAMPLES: po.samples = ro.samples = optarg; break;
		case OPT_DIR: jo.dir = optarg; break;
		case OPT_AUDIT:
			v = jo.audit_rows = (int)bench_int(optarg, 1, 10000000, "--audit-rows");
			break;
		case OPT_INTENTS:
			v = jo.intents = (int)bench_int(optarg, 1, 10000000, "--intents");
			break;
		case 'h':
			bench_usage(stdout);
			return 0;
		default:
			bench_usage(stderr);
			return 2;
		}
		if (v < 0)
			return 2;
	}
	if (optind != argc) {
		fprintf(stderr, "sscard-bench: unexpected argument %s\n", argv[optind]);
		return 2;
	}

	if (strcmp(cmd, "pcsc") == 0) {
		struct bench_seq s;
		char err[256];
		int rc;

		if (!n_scripts || !po.card_reader) {
			fprintf(stderr, "sscard-bench pcsc: --script and --reader are required\n");
			return 2;
		}
		memset(&s, 0, sizeof(s));
		for (int i = 0; i < n_scripts; i++) {
			if (bench_seq_load(scripts[i], &s, err, sizeof(err)) != 0) {
				fprintf(stderr, "sscard-bench: %s\n", err);
				return 2;
			}
		}
		rc = bench_pcsc_run_all(&s, &po);
		bench_seq_free(&s);
		return rc;
	}
	if (strcmp(cmd, "rpc") == 0 || strcmp(cmd, "load") == 0) {
		if (!ro.socket_path || !ro.method) {
			fprintf(stderr, "sscard-bench %s: --socket and --method are required\n", cmd);
			return 2;
		}
		return cmd[0] == 'r' ? bench_rpc_latency(&ro) : bench_rpc_load(&ro);
	}
	if (strcmp(cmd, "journal") == 0)
		return bench_journal_run(&jo);
	fprintf(stderr, "sscard-bench: unknown command %s\n", cmd);
	bench_usage(stderr);
	return 2;
}
