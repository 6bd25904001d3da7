/*
 * This file contains the benchmark's JSON-RPC clients of sscardd's socket: a sequential latency
 * client (one request at a time, each timed from send to reply) and a load generator (N
 * connections over one poll loop, each keeping one request in flight for a fixed time). Replies
 * are classified as results or errors by their data.name.
 */
#ifndef BENCH_RPC_H
#define BENCH_RPC_H

#define BENCH_RPC_PARAMS_MAX 16

struct bench_rpc_opts {
	const char *socket_path;
	const char *method;
	const char *params[BENCH_RPC_PARAMS_MAX];   /* JSON objects; clients take them round-robin */
	int n_params;
	int runs, warmup;                     /* latency client */
	int clients;                          /* load generator */
	double seconds;
	int retry_ms;                         /* pause after an error answer before the next request */
	int allow_errors;                     /* latency client: count errors instead of failing */
	int timeout_ms;                       /* one reply, default 30000 */
	const char *samples;                  /* latency client: every call's duration goes here */
};

/*
 * Latency: runs + warmup sequential calls on one connection; prints "rpc <stats>" (bench_stats.h)
 * and "rpc_errors n=.." when errors are allowed. Returns 0, or 1 after printing why it failed.
 */
int bench_rpc_latency(const struct bench_rpc_opts *o);

/*
 * Load: clients connections for seconds; prints "load clients=.. seconds=.. ok=.. errors=..
 * ok_per_s=..", one "load_error name=.. n=.." per error name, and "load_latency <stats>" of the
 * results. Returns 0, or 1 when it could not connect or a reply did not come in time.
 */
int bench_rpc_load(const struct bench_rpc_opts *o);

#endif
