/*
 * This file contains the fuzz target of the JSON-RPC layer (src/rpc.c) without a socket: request
 * lines go in through rpc_handle_line() as the server would feed them; every message rpc sends
 * back must be one line of valid JSON. Card jobs go to a test backend that runs them, after the
 * line that queued them, on a simulated gen2 card with a simulated PSAM (the real operations of
 * src/ops*.c), or lets them complete after their client has gone.
 *
 * Input: byte 0 = switches (bit 0 jobs complete after every line rather than at the end, bit 1 the
 * client closes before its jobs complete, bit 2 the backend refuses every job, bit 3 no backend
 * at all, bit 4 low limits: JSON depth 4, 2 requests in flight, bit 5 an event is sent to
 * subscribers after every line, bit 6 the client refuses messages (its queue is full)); the rest
 * is request lines separated by '\n'.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "fuzzcard.h"
#include "fuzzlib.h"
#include "ops.h"
#include "psam.h"
#include "readers.h"
#include "rpc.h"
#include "sscard/error.h"

#define MAX_JOBS 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sim_profile *gen2;   /* profiles/gen2.json */

struct client {
	struct rpc_client *rc;
	int refuse;                        /* send() fails: the client is over its queue cap */
	int closed;
	int idle_calls;
};

struct backend {
	struct job *jobs[MAX_JOBS];
	int n;
	int refuse;
	struct reader_info readers[2];
};

static int client_send(void *owner, const char *msg, size_t len)
{
	struct client *c = owner;
	json_error_t e;
	json_t *j;

	if (c->closed)
		abort();   /* rpc must not write to a client the server closed */
	if (memchr(msg, '\n', len) || memchr(msg, '\0', len))
		abort();   /* one message, one line */
	j = json_loadb(msg, len, 0, &e);
	if (!j || !json_is_string(json_object_get(j, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(j, "jsonrpc")), "2.0") != 0)
		abort();
	json_decref(j);
	if (c->refuse) {
		rpc_client_close(c->rc);
		c->closed = 1;
		return SSC_ELIMIT;
	}
	return 0;
}

static void client_idle(void *owner)
{
	struct client *c = owner;

	c->idle_calls++;
}

static const struct rpc_client_ops client_ops = { .send = client_send, .idle = client_idle };

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	struct backend *be = ctx;

	*out = calloc(2, sizeof(**out));
	if (!*out)
		return SSC_ENOMEM;
	memcpy(*out, be->readers, sizeof(be->readers));
	*n = 2;
	return 0;
}

static int be_submit(void *ctx, struct job *job)
{
	struct backend *be = ctx;

	if (be->refuse || be->n == MAX_JOBS)
		return ssc_diag_set(&job->diag, SSC_ELIMIT, "fuzz: queue full");
	be->jobs[be->n++] = job;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs every queued job on the card, as a reader worker would, then completes it. */
static void be_run_all(struct backend *be, struct fuzzcard_token *card)
{
	while (be->n > 0) {
		struct job *job = be->jobs[0];
		unsigned flags = 0;
		int reset = 0;

		memmove(be->jobs, be->jobs + 1, (size_t)(be->n - 1) * sizeof(be->jobs[0]));
		be->n--;
		card->io.deadline_ms = now_ms() + 60000;
		job->err = job->run(job, &card->io, &flags, &reset);
		snprintf(job->used_reader, sizeof(job->used_reader), "%s", be->readers[0].id);
		if (reset)
			sim_token_reset(card->t);
		job->done(job);
		job->release(job);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[512], err[256];

	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "%s/gen2.json", FUZZ_PROFILE_DIR);
	gen2 = sim_profile_load(path, err, sizeof(err));
	if (!gen2) {
		fprintf(stderr, "fuzz_rpc: %s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct rpc_peer peer = { .id = 1, .uid = 1000, .gid = 1000, .pid = 4242 };
	struct config cfg;
	struct rpc *r = NULL;
	struct rpc_backend rb;
	struct backend be;
	struct client cl;
	struct op_env env;
	struct fuzzcard_token card;
	struct fuzzcard_psam ps;
	struct psam_source src;
	struct keyprov *kp = NULL;
	uint8_t sw;
	const char *p, *end;
	int64_t deadline = now_ms() + 60000;

	if (size < 1)
		return 0;
	sw = data[0];
	p = (const char *)data + 1;
	end = (const char *)data + size;

	config_defaults(&cfg);
	if (sw & 0x10) {
		cfg.max_json_depth = 4;
		cfg.max_inflight_per_client = 2;
	}
	if (rpc_new(&cfg, &r) != 0)
		abort();
	memset(&be, 0, sizeof(be));
	be.refuse = (sw & 4) != 0;
	snprintf(be.readers[0].id, sizeof(be.readers[0].id), "pcsc-virtual-pcd-a-00-00");
	snprintf(be.readers[0].name, sizeof(be.readers[0].name), "Virtual PCD A 00 00");
	snprintf(be.readers[0].driver, sizeof(be.readers[0].driver), "pcsc");
	be.readers[0].card_present = 1;
	be.readers[0].role = READER_ROLE_USER;
	snprintf(be.readers[1].id, sizeof(be.readers[1].id), "pcsc-virtual-pcd-a-00-01");
	snprintf(be.readers[1].name, sizeof(be.readers[1].name), "Virtual PCD A 00 01");
	snprintf(be.readers[1].driver, sizeof(be.readers[1].driver), "pcsc");
	be.readers[1].card_present = 1;
	be.readers[1].role = READER_ROLE_PSAM;
	be.readers[1].psam_alg = SSC_ALG_DES;

	fuzzcard_token_init(&card, gen2, SIM_ROLE_CARD, NULL, deadline);
	memset(&ps, 0, sizeof(ps));
	fuzzcard_token_init(&ps.tok, gen2, SIM_ROLE_PSAM, NULL, deadline);
	ps.present = 1;
	ps.term_known = 1;
	ps.alg = fuzzcard_psam_alg(ps.tok.t);
	fuzzcard_psam_source(&src, &ps);
	if (psam_keyprov_new(&src, &cfg, &kp) != 0)
		abort();
	env.cfg = &cfg;
	env.kp = kp;
	env.journal = NULL;
	if (!(sw & 8)) {
		rb.list = be_list;
		rb.submit = be_submit;
		rb.cancel = NULL;   /* closed clients' jobs complete as the backend runs them */
		rb.ctx = &be;
		rpc_set_backend(r, &rb, &env);
	}
	rpc_set_journal_status(r, "ok");

	memset(&cl, 0, sizeof(cl));
	cl.refuse = (sw & 0x40) != 0;
	cl.rc = rpc_client_new(r, &client_ops, &cl, &peer);
	if (!cl.rc)
		abort();
	while (p < end && !cl.closed) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (rpc_handle_line(cl.rc, p, len) != 0)
			break;   /* out of memory: the server would close the client */
		if (sw & 0x20)
			rpc_event(r, "card.inserted", &be.readers[0]);
		if ((sw & 1) && !(sw & 2))
			be_run_all(&be, &card);
		p += len + 1;
	}
	if (!cl.closed) {
		if (sw & 2) {
			rpc_client_close(cl.rc);   /* gone with its jobs in flight */
			cl.closed = 1;
		}
	}
	be_run_all(&be, &card);
	if (!cl.closed)
		rpc_client_close(cl.rc);
	rpc_set_backend(r, NULL, NULL);
	if (rpc_jobs_unreleased(r) != 0)
		abort();
	rpc_free(r);
	keyprov_free(kp);
	sim_token_free(card.t);
	sim_token_free(ps.tok.t);
	return 0;
}
