/*
 * This file contains the allocation-failure tests of the JSON-RPC layer (src/rpc*.c): a request
 * line is parsed, checked and dispatched (a card method as a job, completed by the test's reader
 * core) with its 1st, 2nd, ... allocation failing (the daemon's own, jansson's, OpenSSL's:
 * test_alloc_fail.h) until a run in which none failed. Every failure must become a clean error:
 * no crash; either the one reply the request is owed (the same as without the failure, or an
 * error reply naming SSC_ENOMEM), or SSC_ENOMEM from rpc_handle_line() (the server then closes
 * the connection), never a wrong or partial answer, never silence; the client still served
 * afterwards. (No leak: the ASan build checks.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "rpc.h"
#include "sscard/error.h"
#include "test_alloc_fail.h"

#define MAX_RUNS 20000   /* a bound on the allocations one request may make */
#define MAX_LINES 8

/* A client as the server would be: it records what rpc sends (outside the counted allocations). */
struct capture {
	char *lines[MAX_LINES];
	int n;
	struct rpc_client *rc;
};

/* The test's reader core: a submitted job waits here until the test completes it. */
struct backend {
	struct job *job;
};

struct fixture {
	struct config cfg;
	struct rpc *rpc;
	struct backend be;
	struct op_env env;
	struct capture cap;
};

static int cap_send(void *owner, const char *msg, size_t len)
{
	struct capture *cap = owner;
	char *copy;

	assert_null(memchr(msg, '\n', len));   /* one message, one line */
	assert_true(cap->n < MAX_LINES);
	copy = __real_malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, msg, len);
	copy[len] = '\0';
	cap->lines[cap->n++] = copy;
	return 0;
}

static const struct rpc_client_ops cap_ops = { .send = cap_send };

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	struct reader_info *ri = __real_calloc(1, sizeof(*ri));

	(void)ctx;
	assert_non_null(ri);
	snprintf(ri->id, sizeof(ri->id), "%s", "pcsc-virtual-pcd-00-00");
	snprintf(ri->name, sizeof(ri->name), "%s", "Virtual PCD 00 00");
	snprintf(ri->driver, sizeof(ri->driver), "%s", "pcsc");
	ri->card_present = 1;
	*out = ri;
	*n = 1;
	return 0;
}

static int be_submit(void *ctx, struct job *job)
{
	struct backend *be = ctx;

	assert_null(be->job);
	be->job = job;
	return 0;
}

static void cap_clear(struct capture *cap)
{
	for (int i = 0; i < cap->n; i++)
		free(cap->lines[i]);
	cap->n = 0;
}

/* A dispatcher and one client (no failure injected). */
static void fx_open(struct fixture *f)
{
	struct rpc_backend be = { be_list, be_submit, NULL, &f->be };
	struct rpc_peer peer = { .id = 1, .uid = 1000, .gid = 1000, .pid = 4242 };

	memset(f, 0, sizeof(*f));
	config_defaults(&f->cfg);
	assert_int_equal(rpc_new(&f->cfg, &f->rpc), 0);
	f->env.cfg = &f->cfg;
	rpc_set_backend(f->rpc, &be, &f->env);
	rpc_set_journal_status(f->rpc, "ok");
	f->cap.rc = rpc_client_new(f->rpc, &cap_ops, &f->cap, &peer);
	assert_non_null(f->cap.rc);
}

static void fx_close(struct fixture *f)
{
	rpc_client_close(f->cap.rc);
	assert_null(f->be.job);
	cap_clear(&f->cap);
	rpc_free(f->rpc);
}

/*
 * Completes the held job as the reader core would (done(), then release()): err, or the result
 * built by the caller before any failure was armed.
 */
static void be_complete(struct fixture *f, int err, json_t *result)
{
	struct job *job = f->be.job;

	f->be.job = NULL;
	job->err = err;
	job->result = result;
	if (err)
		snprintf(job->diag.msg, sizeof(job->diag.msg), "%s", "no card in the reader");
	snprintf(job->used_reader, sizeof(job->used_reader), "%s", "pcsc-virtual-pcd-00-00");
	job->done(job);
	job->release(job);
}

/* One request of a case, and how its job (if it becomes one) completes. */
struct req {
	const char *line;
	int job_err;               /* a card method: 0 = a result, else this error */
};

/*
 * Sends r (the failure of allocation n armed, 0 = none) and completes its job; returns
 * rpc_handle_line()'s result, and in *failed whether the armed allocation failed.
 */
static int send_req(struct fixture *f, const struct req *r, long n, int *failed)
{
	json_t *result = NULL;
	int rc;

	if (r->job_err == 0)
		result = json_pack("{s:s, s:s}", "name", "张三", "card_number", "A12345678");
	af_arm(n);
	rc = rpc_handle_line(f->cap.rc, r->line, strlen(r->line));
	if (f->be.job) {
		be_complete(f, r->job_err, result);
		result = NULL;
	}
	*failed = af_disarm();
	json_decref(result);
	return rc;
}

/*
 * A reply under a failure: an error reply naming SSC_ENOMEM, for the same id (or for id null when
 * the request could not even be read: any_id).
 */
static int is_enomem_reply(const char *line, const char *want, int any_id)
{
	json_t *r = json_loads(line, 0, NULL), *w = json_loads(want, 0, NULL), *e;
	int ok;

	if (!r || !w)
		fail_msg("not JSON: %s (or %s)", line, want);
	e = json_object_get(r, "error");
	ok = (json_equal(json_object_get(r, "id"), json_object_get(w, "id")) ||
	      (any_id && json_is_null(json_object_get(r, "id")))) &&
	     json_is_string(json_object_get(e, "message")) &&
	     json_integer_value(json_object_get(e, "code")) == rpc_error_code(SSC_ENOMEM) &&
	     json_is_string(json_object_get(json_object_get(e, "data"), "name")) &&
	     strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "name")),
		    "SSC_ENOMEM") == 0;
	json_decref(r);
	json_decref(w);
	return ok;
}

/* The client is still served: system.info answers (no failure). */
static void check_served(struct fixture *f)
{
	static const struct req info = { "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"system.info\"}",
					  -1 };
	json_t *r;
	int failed;

	cap_clear(&f->cap);
	assert_int_equal(send_req(f, &info, 0, &failed), 0);
	assert_int_equal(f->cap.n, 1);
	r = json_loads(f->cap.lines[0], 0, NULL);
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 99);
	assert_true(json_is_object(json_object_get(r, "result")));
	json_decref(r);
	cap_clear(&f->cap);
}

/*
 * Runs r with each of its allocations failing in turn, after a run without failure that gives
 * the reply it is owed (want, when owed: a request with an id). Returns how many allocations.
 */
static long each_failure(const struct req *r)
{
	struct fixture f;
	char want[4096] = "";
	long n;
	int failed, rc;

	fx_open(&f);
	assert_int_equal(send_req(&f, r, 0, &failed), 0);
	assert_true(f.cap.n <= 1);
	if (f.cap.n == 1) {
		assert_true(strlen(f.cap.lines[0]) < sizeof(want));
		snprintf(want, sizeof(want), "%s", f.cap.lines[0]);
	}
	fx_close(&f);
	for (n = 1; n <= MAX_RUNS; n++) {
		fx_open(&f);
		rc = send_req(&f, r, n, &failed);
		if (rc == SSC_ENOMEM) {
			/* The server closes the connection: what was sent must still be whole. */
			assert_true(f.cap.n <= 1);
			if (f.cap.n == 1 && strcmp(f.cap.lines[0], want) != 0 &&
			    !is_enomem_reply(f.cap.lines[0], want[0] ? want : "{}", 1))
				fail_msg("allocation %ld failed: %s answered %s", n, r->line,
					 f.cap.lines[0]);
		} else {
			if (rc != 0)
				fail_msg("allocation %ld failed: %s: rpc_handle_line() returned %s", n,
					 r->line, ssc_strerror_name(rc));
			if (f.cap.n != (want[0] ? 1 : 0))
				fail_msg("allocation %ld failed: %s got %d replies (want %d)", n,
					 r->line, f.cap.n, want[0] ? 1 : 0);
			if (f.cap.n == 1 && strcmp(f.cap.lines[0], want) != 0 &&
			    !is_enomem_reply(f.cap.lines[0], want, 0))
				fail_msg("allocation %ld failed: %s answered\n  %s\nnot\n  %s", n,
					 r->line, f.cap.lines[0], want);
			check_served(&f);
		}
		fx_close(&f);
		if (!failed)
			return n - 1;
	}
	fail_msg("more than %d allocations", MAX_RUNS);
	return 0;
}

static const struct req requests[] = {
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"reader.list\"}", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"events.subscribe\"}", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"system.info\"}", -1 },    /* a notification */
	{ "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"no.such_method\"}", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"system.info\",\"params\":[1]}", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"system.info\",\"params\":{\"x\":1}}", -1 },
	{ "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"system.info\"}", -1 },
	{ "[{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"system.info\"}]", -1 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"system.info\"", -1 },   /* cut short */
	{ "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"card.read_basic\","
	  "\"params\":{\"reader\":\"pcsc-virtual-pcd-00-00\"}}", 0 },
	{ "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"card.read_basic\"}", SSC_ENOCARD },
	{ "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"card.verify_pin\","
	  "\"params\":{\"pin\":\"123456\"}}", SSC_ENOCARD },
	{ "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"card.verify_pin\","
	  "\"params\":{\"pin\":12}}", -1 },
};

static void test_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		long runs = each_failure(&requests[i]);

		print_message("%s: %ld allocation(s), each failed once\n", requests[i].line, runs);
		assert_true(runs > 0);   /* it does allocate: something was tested */
	}
}

/* rpc_new() and rpc_client_new(): SSC_ENOMEM or NULL, nothing half made. */
static void test_new(void **state)
{
	struct rpc_peer peer = { .id = 1, .uid = 1000 };
	struct config cfg;
	struct capture cap = { 0 };
	long n;

	(void)state;
	config_defaults(&cfg);
	for (n = 1; n <= MAX_RUNS; n++) {
		struct rpc *r = NULL;
		int rc, failed;

		af_arm(n);
		rc = rpc_new(&cfg, &r);
		if (rc == 0)
			cap.rc = rpc_client_new(r, &cap_ops, &cap, &peer);
		failed = af_disarm();
		if (rc != 0) {
			assert_int_equal(rc, SSC_ENOMEM);
			assert_null(r);
		}
		rpc_client_close(cap.rc);
		cap.rc = NULL;
		rpc_free(r);
		if (!failed)
			break;
	}
	print_message("rpc_new + rpc_client_new: %ld allocation(s), each failed once\n", n - 1);
	assert_true(n > 1 && n <= MAX_RUNS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new),
		cmocka_unit_test(test_requests),
	};

	if (af_install() != 0) {
		fprintf(stderr, "cannot route the allocations of SQLite, jansson and OpenSSL\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
