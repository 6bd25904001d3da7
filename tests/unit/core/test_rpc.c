/*
 * This file contains the unit tests of src/rpc.c without a socket or a card: request lines go in
 * through rpc_handle_line(), replies are captured from the client's send(). Card jobs go to a test
 * backend that holds them, so that a test decides when and how each completes (after its client
 * has gone, for instance). Expected replies are written by hand from docs/api.md.
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

#define MAX_LINES 16
#define MAX_JOBS 8

/* A client as the server would be: it records what rpc sends. */
struct capture {
	char *lines[MAX_LINES];
	int n;
	int fail_send;        /* send() refuses (and closes the client, as the server does) */
	int idle_calls;
	struct rpc_client *rc;
};

/* The test's reader core: submitted jobs wait here until the test completes them. */
struct backend {
	struct job *jobs[MAX_JOBS];
	int n;
	int submit_err;       /* != 0: refuse with this code */
	const char *submit_msg;
	struct reader_info readers[2];
	size_t n_readers;
	int cancel_calls;
	const void *cancel_owner;   /* the owner of the last cancel */
	int cancel_completes;       /* cancel ends the owner's held jobs (else it finds none) */
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

	assert_null(memchr(msg, '\n', len));   /* one message, one line */
	if (cap->fail_send) {
		rpc_client_close(cap->rc);
		return SSC_ELIMIT;
	}
	assert_true(cap->n < MAX_LINES);
	cap->lines[cap->n] = strndup(msg, len);
	cap->n++;
	return 0;
}

static void cap_idle(void *owner)
{
	struct capture *cap = owner;

	cap->idle_calls++;
}

static const struct rpc_client_ops cap_ops = { .send = cap_send, .idle = cap_idle };

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	struct backend *be = ctx;

	*out = calloc(be->n_readers ? be->n_readers : 1, sizeof(**out));
	memcpy(*out, be->readers, be->n_readers * sizeof(**out));
	*n = be->n_readers;
	return 0;
}

static int be_submit(void *ctx, struct job *job)
{
	struct backend *be = ctx;

	if (be->submit_err) {
		if (be->submit_msg)
			ssc_diag_set(&job->diag, be->submit_err, "%s", be->submit_msg);
		return be->submit_err;
	}
	assert_true(be->n < MAX_JOBS);
	be->jobs[be->n++] = job;
	return 0;
}

/* As readers_cancel(): ends the owner's held jobs, oldest first, with SSC_ECANCELED. */
static int be_cancel(void *ctx, const void *owner)
{
	struct backend *be = ctx;
	int n = 0;

	be->cancel_calls++;
	be->cancel_owner = owner;
	for (int i = 0; be->cancel_completes && i < be->n;) {
		struct job *job = be->jobs[i];

		if (job->owner != owner) {
			i++;
			continue;
		}
		memmove(be->jobs + i, be->jobs + i + 1, (size_t)(be->n - i - 1) * sizeof(be->jobs[0]));
		be->n--;
		job->err = SSC_ECANCELED;
		job->done(job);
		job->release(job);
		n++;
	}
	return n;
}

/* Completes the oldest held job as the reader core would: done() then release(). */
static void be_complete(struct backend *be, int err, json_t *result, uint16_t sw, int retries,
			const char *msg)
{
	struct job *job = be->jobs[0];

	memmove(be->jobs, be->jobs + 1, (size_t)(be->n - 1) * sizeof(be->jobs[0]));
	be->n--;
	job->err = err;
	job->result = result;
	job->diag.sw = sw;
	job->diag.retries_left = retries;
	snprintf(job->diag.msg, sizeof(job->diag.msg), "%s", msg ? msg : "");
	snprintf(job->used_reader, sizeof(job->used_reader), "%s", "pcsc-virtual-pcd-00-00");
	job->done(job);
	job->release(job);
}

static void cap_clear(struct capture *cap)
{
	for (int i = 0; i < cap->n; i++)
		free(cap->lines[i]);
	cap->n = 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rpc_backend be;
	struct rpc_peer peer = { .id = 1, .uid = 1000, .gid = 1000, .pid = 4242 };

	config_defaults(&f->cfg);
	f->cfg.max_json_depth = 4;
	f->cfg.max_inflight_per_client = 2;
	assert_int_equal(rpc_new(&f->cfg, &f->rpc), 0);
	be.list = be_list;
	be.submit = be_submit;
	be.cancel = be_cancel;
	be.ctx = &f->be;
	f->env.cfg = &f->cfg;
	rpc_set_backend(f->rpc, &be, &f->env);
	f->cap.rc = rpc_client_new(f->rpc, &cap_ops, &f->cap, &peer);
	assert_non_null(f->cap.rc);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rpc_client_close(f->cap.rc);
	while (f->be.n > 0)
		be_complete(&f->be, SSC_ESHUTDOWN, NULL, 0, -1, NULL);
	cap_clear(&f->cap);
	rpc_free(f->rpc);
	free(f);
	return 0;
}

static void send_line(struct fixture *f, const char *line)
{
	assert_int_equal(rpc_handle_line(f->cap.rc, line, strlen(line)), 0);
}

/* The only reply so far, parsed. */
static json_t *only_reply(struct fixture *f)
{
	json_error_t e;
	json_t *j;

	assert_int_equal(f->cap.n, 1);
	j = json_loads(f->cap.lines[0], 0, &e);
	assert_non_null(j);
	cap_clear(&f->cap);
	return j;
}

/* Checks an error reply: id (NULL = null), code, and data.name (NULL = no data). */
static json_t *expect_error(struct fixture *f, json_int_t id, int id_null, int code,
			    const char *name)
{
	json_t *r = only_reply(f), *e, *data;

	assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
	if (id_null)
		assert_true(json_is_null(json_object_get(r, "id")));
	else
		assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
	assert_null(json_object_get(r, "result"));
	e = json_object_get(r, "error");
	assert_non_null(e);
	assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
	assert_true(json_is_string(json_object_get(e, "message")));
	data = json_object_get(e, "data");
	if (name)
		assert_string_equal(json_string_value(json_object_get(data, "name")), name);
	else
		assert_null(data);
	return r;
}

static void test_error_code_range(void **state)
{
	/* docs/api.md: application code = 1000 - SSC_E* value. */
	assert_int_equal(rpc_error_code(SSC_EINVAL), 1001);
	assert_int_equal(rpc_error_code(SSC_ENOCARD), 1005);
	assert_int_equal(rpc_error_code(SSC_EPINWRONG), 1019);
	assert_int_equal(rpc_error_code(SSC_EEXIST), 1042);
}

static void test_format_error(void **state)
{
	char buf[256];
	const char *want = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":1036,"
			   "\"message\":\"too many clients\",\"data\":{\"name\":\"SSC_ELIMIT\"}}}";

	assert_int_equal(rpc_format_error(buf, sizeof(buf), 1036, SSC_ELIMIT, "too many clients"),
			 (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(rpc_format_error(buf, 20, 1036, SSC_ELIMIT, "too many clients"),
			 SSC_ELIMIT);
}

static void test_garbage_is_parse_error_and_connection_stays(void **state)
{
	struct fixture *f = *state;

	send_line(f, "hello, daemon");
	json_decref(expect_error(f, 0, 1, RPC_PARSE_ERROR, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"} trailing");
	json_decref(expect_error(f, 0, 1, RPC_PARSE_ERROR, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"system.info\"}");
	json_decref(expect_error(f, 0, 1, RPC_PARSE_ERROR, NULL));
	send_line(f, "\xff\xfe{}");
	json_decref(expect_error(f, 0, 1, RPC_PARSE_ERROR, NULL));
	/* Blank lines are not requests. */
	send_line(f, "");
	send_line(f, "\r");
	assert_int_equal(f->cap.n, 0);
	/* Still usable. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"system.info\"}\r");
	{
		json_t *r = only_reply(f), *res = json_object_get(r, "result");

		assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
		assert_int_equal(json_integer_value(json_object_get(res, "api_level")), 1);
		assert_true(json_is_string(json_object_get(res, "version")));
		json_decref(r);
	}
}

static void test_depth_limit(void **state)
{
	struct fixture *f = *state;

	/* max_json_depth = 4: the request object, params and two more levels pass the scan. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\","
		     "\"params\":{\"a\":[{}]}}");
	json_decref(expect_error(f, 1, 0, RPC_INVALID_PARAMS, "SSC_EINVAL"));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\","
		     "\"params\":{\"a\":[{\"b\":[]}]}}");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, "SSC_ELIMIT"));
	/* Brackets inside strings (and escaped quotes) do not count. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x[[[[[[\\\"{{{{{{\"}");
	json_decref(expect_error(f, 2, 0, RPC_METHOD_NOT_FOUND, NULL));
	/* 10,000 open brackets: refused by the scan, long before jansson's own limit. */
	{
		char *deep = malloc(10001);

		memset(deep, '[', 10000);
		deep[10000] = '\0';
		send_line(f, deep);
		free(deep);
		json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, "SSC_ELIMIT"));
	}
}

static void test_invalid_requests(void **state)
{
	struct fixture *f = *state;

	send_line(f, "[]");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	send_line(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}]");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	send_line(f, "42");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"id\":3,\"method\":\"system.info\"}");
	json_decref(expect_error(f, 3, 0, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"1.0\",\"id\":4,\"method\":\"system.info\"}");
	json_decref(expect_error(f, 4, 0, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":5}");
	json_decref(expect_error(f, 5, 0, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"system.info\"}");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"system.info\"}");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"system.info\",\"param\":{}}");
	json_decref(expect_error(f, 6, 0, RPC_INVALID_REQUEST, NULL));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"system.info\",\"params\":\"x\"}");
	json_decref(expect_error(f, 7, 0, RPC_INVALID_REQUEST, NULL));
	/* Invalid without an id is still answered, with id null. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"method\":7}");
	json_decref(expect_error(f, 0, 1, RPC_INVALID_REQUEST, NULL));
	/* A string id is echoed as it came. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":5}");
	{
		json_t *r = only_reply(f);

		assert_string_equal(json_string_value(json_object_get(r, "id")), "abc");
		json_decref(r);
	}
}

static void test_method_not_found_and_notifications(void **state)
{
	struct fixture *f = *state;
	json_t *r;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"card.format_disk\"}");
	r = expect_error(f, 9, 0, RPC_METHOD_NOT_FOUND, NULL);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
								 "message")), "card.format_disk"));
	json_decref(r);
	/* Notifications get no reply, whatever happens to them. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"method\":\"card.format_disk\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"method\":\"system.info\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"method\":\"system.info\",\"params\":{\"x\":1}}");
	assert_int_equal(f->cap.n, 0);
	/* A null id is a request, answered with id null. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"system.info\"}");
	r = only_reply(f);
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
}

static void test_bad_params(void **state)
{
	struct fixture *f = *state;
	json_t *r, *data;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\",\"params\":{\"v\":1}}");
	r = expect_error(f, 1, 0, RPC_INVALID_PARAMS, "SSC_EINVAL");
	data = json_object_get(json_object_get(r, "error"), "data");
	assert_int_equal(json_integer_value(json_object_get(data, "std_code")), -14);
	json_decref(r);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"reader.list\",\"params\":[1]}");
	json_decref(expect_error(f, 2, 0, RPC_INVALID_PARAMS, "SSC_EINVAL"));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.read_basic\","
		     "\"params\":{\"reader\":5}}");
	json_decref(expect_error(f, 3, 0, RPC_INVALID_PARAMS, "SSC_EINVAL"));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"card.read_basic\","
		     "\"params\":{\"reader\":\"\"}}");
	json_decref(expect_error(f, 4, 0, RPC_INVALID_PARAMS, "SSC_EINVAL"));
	assert_int_equal(f->be.n, 0);   /* nothing reached the reader core */
}

static void test_reader_list(void **state)
{
	struct fixture *f = *state;
	struct reader_info *ri = &f->be.readers[0];
	json_t *r, *arr, *e;

	snprintf(ri->id, sizeof(ri->id), "pcsc-virtual-pcd-00-00");
	snprintf(ri->name, sizeof(ri->name), "Virtual PCD 00 00");
	snprintf(ri->driver, sizeof(ri->driver), "pcsc");
	ri->card_present = 1;
	ri->role = READER_ROLE_USER;
	memcpy(ri->atr, "\x3B\x8E\x80\x01", 4);
	ri->atr_len = 4;
	f->be.n_readers = 1;
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"reader.list\"}");
	r = only_reply(f);
	arr = json_object_get(json_object_get(r, "result"), "readers");
	assert_int_equal(json_array_size(arr), 1);
	e = json_array_get(arr, 0);
	assert_string_equal(json_string_value(json_object_get(e, "id")), "pcsc-virtual-pcd-00-00");
	assert_string_equal(json_string_value(json_object_get(e, "name")), "Virtual PCD 00 00");
	assert_string_equal(json_string_value(json_object_get(e, "driver")), "pcsc");
	assert_true(json_is_true(json_object_get(e, "card")));
	assert_string_equal(json_string_value(json_object_get(e, "role")), "user");
	assert_true(json_is_false(json_object_get(e, "busy")));
	assert_string_equal(json_string_value(json_object_get(e, "atr")), "3B8E8001");
	assert_null(json_object_get(e, "serial"));
	json_decref(r);
}

static void test_events(void **state)
{
	struct fixture *f = *state;
	struct capture other = { 0 };
	struct rpc_peer peer = { .id = 2, .uid = 1001, .gid = 1001, .pid = 1 };
	struct reader_info ri = { 0 };
	json_t *r, *p;

	snprintf(ri.id, sizeof(ri.id), "pcsc-virtual-pcd-00-00");
	snprintf(ri.name, sizeof(ri.name), "Virtual PCD 00 00");
	snprintf(ri.driver, sizeof(ri.driver), "pcsc");
	ri.card_present = 1;

	/* Nobody subscribed: nothing sent. */
	rpc_event(f->rpc, "card.inserted", &ri);
	assert_int_equal(f->cap.n, 0);

	other.rc = rpc_client_new(f->rpc, &cap_ops, &other, &peer);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
	r = only_reply(f);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "subscribed")));
	json_decref(r);
	assert_int_equal(rpc_client_subscribed(f->cap.rc), 1);
	{
		const char *sub = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}";

		assert_int_equal(rpc_handle_line(other.rc, sub, strlen(sub)), 0);
	}
	assert_int_equal(other.n, 1);
	cap_clear(&other);

	rpc_event(f->rpc, "card.inserted", &ri);
	/* docs/api.md: the notification's shape, type and reader first. */
	assert_int_equal(f->cap.n, 1);
	{
		const char *want = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{"
				   "\"type\":\"card.inserted\",\"reader\":\"pcsc-virtual-pcd-00-00\","
				   "\"name\":\"Virtual PCD 00 00\",\"driver\":\"pcsc\",\"card\":true,";

		assert_int_equal(strncmp(f->cap.lines[0], want, strlen(want)), 0);
	}
	r = only_reply(f);
	assert_null(json_object_get(r, "id"));
	assert_string_equal(json_string_value(json_object_get(r, "method")), "event");
	p = json_object_get(r, "params");
	assert_string_equal(json_string_value(json_object_get(p, "type")), "card.inserted");
	assert_string_equal(json_string_value(json_object_get(p, "reader")),
			    "pcsc-virtual-pcd-00-00");
	assert_true(json_is_true(json_object_get(p, "card")));
	json_decref(r);
	assert_int_equal(other.n, 1);
	cap_clear(&other);

	/* card.ready: the role as reader.list has it; "error" only when the role was not found. */
	ri.role = READER_ROLE_UNKNOWN;
	ri.ready_err = SSC_EREADERBUSY;
	rpc_event(f->rpc, "card.ready", &ri);
	r = only_reply(f);
	p = json_object_get(r, "params");
	assert_string_equal(json_string_value(json_object_get(p, "type")), "card.ready");
	assert_string_equal(json_string_value(json_object_get(p, "role")), "unknown");
	assert_string_equal(json_string_value(json_object_get(p, "error")), "SSC_EREADERBUSY");
	json_decref(r);
	ri.role = READER_ROLE_USER;
	ri.ready_err = 0;
	rpc_event(f->rpc, "card.ready", &ri);
	r = only_reply(f);
	p = json_object_get(r, "params");
	assert_string_equal(json_string_value(json_object_get(p, "role")), "user");
	assert_null(json_object_get(p, "error"));
	json_decref(r);
	assert_int_equal(other.n, 2);
	cap_clear(&other);

	/* A subscriber that cannot take the event is closed; the others still get it. */
	other.fail_send = 1;
	rpc_event(f->rpc, "card.removed", &ri);
	json_decref(only_reply(f));
	other.fail_send = 0;
	rpc_event(f->rpc, "card.removed", &ri);
	json_decref(only_reply(f));
	assert_int_equal(other.n, 0);

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"events.unsubscribe\"}");
	r = only_reply(f);
	assert_true(json_is_false(json_object_get(json_object_get(r, "result"), "subscribed")));
	json_decref(r);
	rpc_event(f->rpc, "reader.removed", &ri);
	assert_int_equal(f->cap.n, 0);
}

static void test_card_job_result_and_errors(void **state)
{
	struct fixture *f = *state;
	json_t *r, *e, *data;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"card.read_basic\","
		     "\"params\":{\"reader\":\"pcsc-virtual-pcd-00-00\"}}");
	assert_int_equal(f->be.n, 1);
	assert_int_equal(f->cap.n, 0);
	assert_string_equal(f->be.jobs[0]->reader_id, "pcsc-virtual-pcd-00-00");
	assert_int_equal(f->be.jobs[0]->timeout_ms, f->cfg.op_timeout_ms);
	assert_int_equal(f->be.jobs[0]->need_role, READER_ROLE_USER);
	assert_int_equal(rpc_client_inflight(f->cap.rc), 1);
	be_complete(&f->be, 0, json_pack("{s:s}", "name", "张三"), 0, -1, NULL);
	r = only_reply(f);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 11);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
							      "name")), "张三");
	json_decref(r);
	assert_int_equal(rpc_client_inflight(f->cap.rc), 0);
	assert_int_equal(f->cap.idle_calls, 1);

	/* A wrong PIN: code 1019, the standard code -51, the SW and the tries left. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"card.read_basic\"}");
	be_complete(&f->be, SSC_EPINWRONG, NULL, 0x63C2, 2, NULL);
	r = expect_error(f, 12, 0, 1019, "SSC_EPINWRONG");
	e = json_object_get(r, "error");
	assert_string_equal(json_string_value(json_object_get(e, "message")), "wrong PIN");
	data = json_object_get(e, "data");
	assert_int_equal(json_integer_value(json_object_get(data, "std_code")), -51);
	assert_string_equal(json_string_value(json_object_get(data, "sw")), "63C2");
	assert_int_equal(json_integer_value(json_object_get(data, "retries_left")), 2);
	assert_string_equal(json_string_value(json_object_get(data, "reader")),
			    "pcsc-virtual-pcd-00-00");
	json_decref(r);

	/* A card status word with no standard code of its own: std_code = -(SW). */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"card.read_basic\"}");
	be_complete(&f->be, SSC_ECARDSW, NULL, 0x6A82, -1, "SELECT EF05 answered 6A82");
	r = expect_error(f, 13, 0, 1014, "SSC_ECARDSW");
	e = json_object_get(r, "error");
	assert_string_equal(json_string_value(json_object_get(e, "message")),
			    "SELECT EF05 answered 6A82");
	data = json_object_get(e, "data");
	assert_int_equal(json_integer_value(json_object_get(data, "std_code")), -27266);
	assert_null(json_object_get(data, "retries_left"));
	json_decref(r);

	/* Refused by the core before queuing: the candidates travel in the message. */
	f->be.submit_err = SSC_EREADERSELECT;
	f->be.submit_msg = "several readers hold a card: pcsc-a, pcsc-b";
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"card.read_basic\"}");
	r = expect_error(f, 14, 0, 1009, "SSC_EREADERSELECT");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"),
							      "message")),
			    "several readers hold a card: pcsc-a, pcsc-b");
	json_decref(r);
	assert_int_equal(rpc_client_inflight(f->cap.rc), 0);
}

static void test_inflight_limit(void **state)
{
	struct fixture *f = *state;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"card.read_basic\"}");
	assert_int_equal(f->cap.n, 0);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.read_basic\"}");
	json_decref(expect_error(f, 3, 0, 1036, "SSC_ELIMIT"));
	assert_int_equal(f->be.n, 2);
	be_complete(&f->be, SSC_ETIMEDOUT, NULL, 0, -1, NULL);
	json_decref(expect_error(f, 1, 0, 1004, "SSC_ETIMEDOUT"));
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"card.read_basic\"}");
	assert_int_equal(f->be.n, 2);
	assert_int_equal(f->cap.n, 0);
}

static void test_client_gone_mid_request(void **state)
{
	struct fixture *f = *state;
	struct capture gone = { 0 };
	struct rpc_peer peer = { .id = 3, .uid = 1002, .gid = 1002, .pid = 2 };
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}";

	gone.rc = rpc_client_new(f->rpc, &cap_ops, &gone, &peer);
	assert_int_equal(rpc_handle_line(gone.rc, req, strlen(req)), 0);
	assert_int_equal(rpc_handle_line(gone.rc, req, strlen(req)), 0);
	assert_int_equal(f->be.n, 2);
	assert_ptr_equal(f->be.jobs[0]->owner, gone.rc);   /* the core's turns are per client */
	rpc_client_close(gone.rc);   /* the peer hung up with two requests in flight */
	/* Its queued jobs are cancelled in the core (here: both were on a card already). */
	assert_int_equal(f->be.cancel_calls, 1);
	assert_ptr_equal(f->be.cancel_owner, gone.rc);
	/* The jobs still complete in the core; their results go nowhere (ASan checks the rest). */
	be_complete(&f->be, 0, json_pack("{s:s}", "name", "x"), 0, -1, NULL);
	be_complete(&f->be, SSC_ECARDREMOVED, NULL, 0, -1, NULL);
	assert_int_equal(gone.n, 0);
	assert_int_equal(gone.idle_calls, 0);
	assert_int_equal(f->cap.n, 0);
}

/* A client that leaves with jobs waiting for a reader: they end at once, and only its own. */
static void test_client_gone_cancels_queued(void **state)
{
	struct fixture *f = *state;
	struct capture gone = { 0 };
	struct rpc_peer peer = { .id = 3, .uid = 1002, .gid = 1002, .pid = 2 };
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}";

	gone.rc = rpc_client_new(f->rpc, &cap_ops, &gone, &peer);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"card.read_basic\"}");
	assert_int_equal(rpc_handle_line(gone.rc, req, strlen(req)), 0);
	assert_int_equal(rpc_handle_line(gone.rc, req, strlen(req)), 0);
	assert_int_equal(f->be.n, 3);
	assert_int_equal(rpc_client_inflight(gone.rc), 2);
	f->be.cancel_completes = 1;
	rpc_client_close(gone.rc);
	assert_int_equal(f->be.cancel_calls, 1);
	assert_int_equal(f->be.n, 1);               /* the other client's job is left alone */
	assert_ptr_equal(f->be.jobs[0]->owner, f->cap.rc);
	assert_int_equal(gone.n, 0);                /* nothing sent to a closed client */
	assert_int_equal(gone.idle_calls, 0);
	be_complete(&f->be, 0, json_pack("{s:s}", "name", "x"), 0, -1, NULL);
	json_decref(only_reply(f));
	/* A client with nothing in flight leaves without a cancel. */
	gone.rc = rpc_client_new(f->rpc, &cap_ops, &gone, &peer);
	rpc_client_close(gone.rc);
	assert_int_equal(f->be.cancel_calls, 1);
}

/*
 * docs/errors.md has a row for every SSC_E* name with its API code (1000 - value): a code added to
 * include/sscard/error.h without its documentation fails here.
 */
static void test_errors_doc_lists_every_code(void **state)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[512], row[96];
	FILE *f;
	char *doc;
	size_t n;
	int count = 0;

	snprintf(path, sizeof(path), "%s/docs/errors.md", src ? src : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	doc = calloc(1, 256 * 1024);
	n = fread(doc, 1, 256 * 1024 - 1, f);
	fclose(f);
	assert_true(n > 0);
	for (int err = -1; strcmp(ssc_strerror_name(err), "SSC_EUNKNOWN") != 0; err--) {
		snprintf(row, sizeof(row), "| `%s` | %d", ssc_strerror_name(err),
			 rpc_error_code(err));
		print_message("%s\n", row);
		assert_non_null(strstr(doc, row));
		count++;
	}
	assert_true(count >= 42);
	free(doc);
}

/* Before the reader core is attached (and after it is detached at shutdown): no reader. */
static void test_no_backend(void **state)
{
	struct config cfg;
	struct rpc *rpc;
	struct capture cap = { 0 };
	struct rpc_peer peer = { .id = 1 };
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}";
	json_t *r;

	config_defaults(&cfg);
	assert_int_equal(rpc_new(&cfg, &rpc), 0);
	cap.rc = rpc_client_new(rpc, &cap_ops, &cap, &peer);
	assert_int_equal(rpc_handle_line(cap.rc, req, strlen(req)), 0);
	assert_int_equal(cap.n, 1);
	r = json_loads(cap.lines[0], 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
			 1007);
	json_decref(r);
	cap_clear(&cap);
	req = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"reader.list\"}";
	assert_int_equal(rpc_handle_line(cap.rc, req, strlen(req)), 0);
	assert_non_null(strstr(cap.lines[0], "\"result\":{\"readers\":[]}"));
	cap_clear(&cap);
	rpc_client_close(cap.rc);
	rpc_free(rpc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_code_range),
		cmocka_unit_test(test_format_error),
		cmocka_unit_test(test_errors_doc_lists_every_code),
		cmocka_unit_test(test_no_backend),
		cmocka_unit_test_setup_teardown(test_garbage_is_parse_error_and_connection_stays,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_method_not_found_and_notifications, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_job_result_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflight_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_mid_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_cancels_queued, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
