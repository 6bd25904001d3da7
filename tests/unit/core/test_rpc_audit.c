/*
 * This file contains the tests of the audit trail of the API (src/rpc.c's audit rows, src/audit.c's
 * writer) and of the journal's availability as the API sees it: one row per call with the right
 * fields, protocol faults included where the method is known, never a param; the writer keeps
 * order and drops rather than blocks; and without a journal, card writes are refused while reads
 * are served. Card operations run for real against the simulated card OS in process (gen2
 * profile); expected values are copied by hand from firmware-stubs/profiles/gen2.json and
 * docs/api.md.
 */
#include "test_card_util.h"

#include <jansson.h>
#include <sqlite3.h>

#include "audit.h"
#include "rpc.h"
#include "sscard/error.h"

#define MAX_ROWS 32
#define MAX_LINES 16
#define MAX_JOBS 4

/* gen2.json: the card number, the holder's data and the PIN, none of which may reach a row. */
#define GEN2_CARD_NUMBER "X00000019"
#define GEN2_SSN "330102199003071230"
#define GEN2_NAME "张三"
#define GEN2_PIN "123456"
#define WRONG_PIN "908172"

struct row_copy {
	char method[72], reader[72], card_ref[40], result[48], exe[256], limit[40];
	long long uid, pid, duration_ms;
	int has_peer;
};

/* An audit sink that copies rows; or passes them to an audit writer when w is set. */
struct sink {
	struct row_copy rows[MAX_ROWS];
	int n;
	struct audit *w;
};

static void sink_fn(void *arg, const struct journal_audit *a)
{
	struct sink *s = arg;
	struct row_copy *r;

	if (s->w) {
		assert_int_equal(audit_submit(s->w, a), 0);
		return;
	}
	assert_true(s->n < MAX_ROWS);
	r = &s->rows[s->n++];
	snprintf(r->method, sizeof(r->method), "%s", a->method ? a->method : "");
	snprintf(r->reader, sizeof(r->reader), "%s", a->reader ? a->reader : "");
	snprintf(r->card_ref, sizeof(r->card_ref), "%s", a->card_ref ? a->card_ref : "");
	snprintf(r->result, sizeof(r->result), "%s", a->result ? a->result : "");
	snprintf(r->limit, sizeof(r->limit), "%s", a->limit ? a->limit : "");
	r->has_peer = a->peer != NULL;
	if (a->peer) {
		r->uid = a->peer->uid;
		r->pid = a->peer->pid;
		snprintf(r->exe, sizeof(r->exe), "%s", a->peer->exe);
	}
	r->duration_ms = a->duration_ms;
}

struct capture {
	char *lines[MAX_LINES];
	int n;
	struct rpc_client *rc;
};

static int cap_send(void *owner, const char *msg, size_t len)
{
	struct capture *cap = owner;

	assert_true(cap->n < MAX_LINES);
	cap->lines[cap->n++] = strndup(msg, len);
	return 0;
}

static const struct rpc_client_ops cap_ops = { .send = cap_send };

static void cap_clear(struct capture *cap)
{
	for (int i = 0; i < cap->n; i++)
		free(cap->lines[i]);
	cap->n = 0;
}

struct backend {
	struct job *jobs[MAX_JOBS];
	int n;
	int submit_err;
};

static int be_list(void *ctx, struct reader_info **out, size_t *n)
{
	*out = calloc(1, sizeof(**out));
	*n = 0;
	return 0;
}

static int be_submit(void *ctx, struct job *job)
{
	struct backend *be = ctx;

	if (be->submit_err)
		return be->submit_err;
	assert_true(be->n < MAX_JOBS);
	be->jobs[be->n++] = job;
	return 0;
}

struct fx {
	struct config cfg;
	struct rpc *rpc;
	struct backend be;
	struct op_env env;
	struct capture cap;
	struct sink sink;
	char dir[64], db[128];
	struct journal *j;
	struct sim_profile *prof;
	struct sim_token *card;
	struct tu_sim_io sim;
};

/* Completes the oldest job as the core would, without running it. */
static void be_complete(struct fx *f, int err)
{
	struct job *job = f->be.jobs[0];

	memmove(f->be.jobs, f->be.jobs + 1, (size_t)(f->be.n - 1) * sizeof(f->be.jobs[0]));
	f->be.n--;
	job->err = err;
	snprintf(job->used_reader, sizeof(job->used_reader), "%s", "pcsc-virtual-pcd-00-00");
	job->done(job);
	job->release(job);
}

/* Runs the oldest job on the simulated card (the worker's part), then completes it. */
static void be_run(struct fx *f)
{
	struct job *job = f->be.jobs[0];
	unsigned flags = 0;
	int reset = 0;

	memmove(f->be.jobs, f->be.jobs + 1, (size_t)(f->be.n - 1) * sizeof(f->be.jobs[0]));
	f->be.n--;
	ssc_diag_init(&job->diag);
	job->err = job->run(job, &f->sim.io, &flags, &reset);
	snprintf(job->used_reader, sizeof(job->used_reader), "%s", f->sim.io.reader_id);
	job->done(job);
	job->release(job);
}

static void send_line(struct fx *f, const char *line)
{
	assert_int_equal(rpc_handle_line(f->cap.rc, line, strlen(line)), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rpc_backend be = { be_list, be_submit, NULL, NULL };
	struct rpc_peer peer = { .id = 1, .uid = 1000, .gid = 1000, .pid = 4242,
				 .exe = "/usr/bin/counter-app" };
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[512], err[256];
	struct ssc_diag d;

	config_defaults(&f->cfg);
	f->cfg.max_inflight_per_client = 2;
	assert_int_equal(rpc_new(&f->cfg, &f->rpc), 0);
	be.ctx = &f->be;
	f->env.cfg = &f->cfg;
	rpc_set_backend(f->rpc, &be, &f->env);
	rpc_set_audit(f->rpc, sink_fn, &f->sink);
	f->cap.rc = rpc_client_new(f->rpc, &cap_ops, &f->cap, &peer);
	assert_non_null(f->cap.rc);

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-rpc-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);

	snprintf(path, sizeof(path), "%s/firmware-stubs/profiles/gen2.json", src ? src : ".");
	f->prof = sim_profile_load(path, err, sizeof(err));
	assert_non_null(f->prof);
	f->card = sim_token_new(f->prof, SIM_ROLE_CARD);
	assert_non_null(f->card);
	tu_sim_io_init(&f->sim, f->card, "SER-1");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	const char *suffix[] = { "", "-wal", "-shm", ".key" };
	char p[160];

	rpc_client_close(f->cap.rc);
	while (f->be.n > 0)
		be_complete(f, SSC_ESHUTDOWN);
	cap_clear(&f->cap);
	rpc_free(f->rpc);
	journal_close(f->j);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	sim_token_free(f->card);
	sim_profile_free(f->prof);
	free(f);
	return 0;
}

static const struct row_copy *row(struct fx *f, int i)
{
	assert_true(i < f->sink.n);
	return &f->sink.rows[i];
}

static void assert_row(const struct row_copy *r, const char *method, const char *reader,
		       const char *result)
{
	assert_string_equal(r->method, method);
	assert_string_equal(r->reader, reader);
	assert_string_equal(r->result, result);
	assert_true(r->has_peer);
	assert_int_equal(r->uid, 1000);
	assert_int_equal(r->pid, 4242);
	assert_string_equal(r->exe, "/usr/bin/counter-app");
	assert_true(r->duration_ms >= 0 && r->duration_ms < 10000);
}

static void test_one_row_per_builtin_call(void **state)
{
	struct fx *f = *state;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}");
	/* A notification is carried out and audited, though it gets no reply. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"method\":\"reader.list\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"events.subscribe\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"events.unsubscribe\"}");
	assert_int_equal(f->cap.n, 3);
	assert_int_equal(f->sink.n, 4);
	assert_row(row(f, 0), "system.info", "", "SSC_OK");
	assert_row(row(f, 1), "reader.list", "", "SSC_OK");
	assert_row(row(f, 2), "events.subscribe", "", "SSC_OK");
	assert_row(row(f, 3), "events.unsubscribe", "", "SSC_OK");
	for (int i = 0; i < 4; i++)
		assert_string_equal(row(f, i)->card_ref, "");
}

static void test_protocol_faults(void **state)
{
	struct fx *f = *state;

	/* No method known: no row (and nothing to name). */
	send_line(f, "this is not JSON");
	send_line(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}]");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":42}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\",\"params\":"
		     "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":"
		     "{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":{\"q\":1}}}}}}}}}}}}}}}}}}");
	assert_int_equal(f->cap.n, 5);
	assert_int_equal(f->sink.n, 0);
	cap_clear(&f->cap);

	/* A method is named: one row each, with the fault's name. */
	send_line(f, "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"system.info\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.info\",\"param\":{}}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"no.such_method\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.info\",\"params\":[1]}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"system.info\",\"params\":"
		     "{\"x\":1}}");
	/* An unknown "method" that is a number or holds a newline is not repeated. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"" WRONG_PIN "\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"a\\nb\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"Card.Read_Basic\"}");
	assert_int_equal(f->sink.n, 8);
	assert_row(row(f, 0), "system.info", "", "RPC_INVALID_REQUEST");
	assert_row(row(f, 1), "system.info", "", "RPC_INVALID_REQUEST");
	assert_row(row(f, 2), "no.such_method", "", "RPC_METHOD_NOT_FOUND");
	assert_row(row(f, 3), "system.info", "", "SSC_EINVAL");     /* -32602, data.name */
	assert_row(row(f, 4), "system.info", "", "SSC_EINVAL");
	assert_row(row(f, 5), "(invalid)", "", "RPC_METHOD_NOT_FOUND");
	assert_row(row(f, 6), "(invalid)", "", "RPC_METHOD_NOT_FOUND");
	assert_row(row(f, 7), "(invalid)", "", "RPC_METHOD_NOT_FOUND");
}

static void test_card_calls(void **state)
{
	struct fx *f = *state;

	/* Queued: the row comes when the job ends, with the reader it ran on. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}");
	assert_int_equal(f->sink.n, 0);
	be_complete(f, SSC_ECARDREMOVED);
	assert_int_equal(f->sink.n, 1);
	assert_row(row(f, 0), "card.read_basic", "pcsc-virtual-pcd-00-00", "SSC_ECARDREMOVED");

	/* Bad params, answered before queuing: the reader asked for is what the row shows. */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"card.read_items\",\"params\":"
		     "{\"reader\":\"pcsc-x\",\"file\":\"SSSE/EF99\",\"items\":[\"01\"]}}");
	assert_row(row(f, 1), "card.read_items", "pcsc-x", "SSC_EBADITEM");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.verify_pin\",\"params\":"
		     "{\"pin\":\"12\"}}");
	assert_row(row(f, 2), "card.verify_pin", "", "SSC_EPINFORMAT");

	/* Refused by the core: audited at once. */
	f->be.submit_err = SSC_EREADERSELECT;
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"card.read_basic\"}");
	assert_row(row(f, 3), "card.read_basic", "", "SSC_EREADERSELECT");
	f->be.submit_err = 0;

	/* Over the in-flight limit (2). */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"card.read_basic\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"card.read_basic\"}");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"card.read_basic\"}");
	assert_int_equal(f->sink.n, 5);
	assert_row(row(f, 4), "card.read_basic", "", "SSC_ELIMIT");
	/* Named as a refusal for that limit: the writer sums such rows up. */
	assert_string_equal(row(f, 4)->limit, "max_inflight_per_client");
	assert_string_equal(row(f, 3)->limit, "");

	/* The client hangs up: its jobs are still audited when they end. */
	rpc_client_close(f->cap.rc);
	f->cap.rc = NULL;
	be_complete(f, 0);
	be_complete(f, SSC_ETIMEDOUT);
	assert_int_equal(f->sink.n, 7);
	assert_row(row(f, 5), "card.read_basic", "pcsc-virtual-pcd-00-00", "SSC_OK");
	assert_row(row(f, 6), "card.read_basic", "pcsc-virtual-pcd-00-00", "SSC_ETIMEDOUT");
}

static void test_no_reader_core(void **state)
{
	struct fx *f = *state;

	rpc_set_backend(f->rpc, NULL, NULL);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}");
	assert_int_equal(f->sink.n, 1);
	assert_row(row(f, 0), "card.read_basic", "", "SSC_ENOREADER");
}

/* Fails when s (a row field or an exported line) holds any of the card's secrets or data. */
static void assert_clean(const char *s)
{
	static const char *const never[] = { GEN2_PIN, WRONG_PIN, GEN2_CARD_NUMBER, GEN2_SSN,
					     GEN2_NAME, "330100D15600000500BF7C7AC9FC0FEC" };

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (strstr(s, never[i]))
			fail_msg("\"%s\" found in \"%s\"", never[i], s);
}

struct dump {
	int n;
	char kind[MAX_ROWS][16], method[MAX_ROWS][32], result[MAX_ROWS][32], card[MAX_ROWS][40];
	char reader[MAX_ROWS][64], exe[MAX_ROWS][64], detail[MAX_ROWS][160];
	long long uid[MAX_ROWS], pid[MAX_ROWS];
};

static int dump_row(void *arg, const struct journal_row *r)
{
	struct dump *d = arg;

	assert_true(d->n < MAX_ROWS);
	assert_clean(r->exe);
	assert_clean(r->method);
	assert_clean(r->reader);
	assert_clean(r->card);
	assert_clean(r->result);
	assert_clean(r->file);
	assert_clean(r->detail);
	snprintf(d->kind[d->n], sizeof(d->kind[0]), "%s", r->kind);
	snprintf(d->method[d->n], sizeof(d->method[0]), "%s", r->method);
	snprintf(d->result[d->n], sizeof(d->result[0]), "%s", r->result);
	snprintf(d->card[d->n], sizeof(d->card[0]), "%s", r->card);
	snprintf(d->reader[d->n], sizeof(d->reader[0]), "%s", r->reader);
	snprintf(d->exe[d->n], sizeof(d->exe[0]), "%s", r->exe);
	snprintf(d->detail[d->n], sizeof(d->detail[0]), "%s", r->detail ? r->detail : "");
	d->uid[d->n] = r->uid;
	d->pid[d->n] = r->pid;
	d->n++;
	return 0;
}

/*
 * The whole path with a real card and a real journal: rpc -> audit writer -> journal. The PIN
 * travels in params and never reaches a row; the card is named by its keyed ref.
 */
static void test_rows_in_the_journal_name_the_card_and_hold_no_params(void **state)
{
	struct fx *f = *state;
	char ref[JOURNAL_REF_HEX + 1], *text = NULL;
	struct audit_stats st;
	struct dump d = { 0 };
	struct ssc_diag diag;
	size_t len = 0;
	FILE *mem;
	json_t *r;

	f->env.journal = f->j;
	assert_int_equal(audit_new(64, 0, &f->sink.w), 0);
	audit_set_journal(f->sink.w, f->j);

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.verify_pin\",\"params\":"
		     "{\"pin\":\"" WRONG_PIN "\"}}");
	be_run(f);
	assert_int_equal(f->cap.n, 1);
	r = json_loads(f->cap.lines[0], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(
				    r, "error"), "data"), "name")), "SSC_EPINWRONG");
	json_decref(r);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"card.verify_pin\",\"params\":"
		     "{\"pin\":\"" GEN2_PIN "\"}}");
	be_run(f);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.read_basic\"}");
	be_run(f);
	assert_int_equal(f->cap.n, 3);
	assert_non_null(strstr(f->cap.lines[2], GEN2_NAME));   /* the reply has it; rows must not */
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"no.such\",\"params\":"
		     "{\"pin\":\"" GEN2_PIN "\"}}");

	audit_free(f->sink.w, 5000, &st);
	f->sink.w = NULL;
	assert_int_equal(st.written, 4);
	assert_int_equal(st.dropped, 0);

	assert_int_equal(journal_rows(f->j, 0, 0, dump_row, &d), 0);
	assert_int_equal(d.n, 4);
	journal_card_ref(f->j, GEN2_CARD_NUMBER, ref);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(d.kind[i], "audit");
		assert_int_equal(d.uid[i], 1000);
		assert_int_equal(d.pid[i], 4242);
		assert_string_equal(d.exe[i], "/usr/bin/counter-app");
	}
	assert_string_equal(d.method[0], "card.verify_pin");
	assert_string_equal(d.result[0], "SSC_EPINWRONG");
	assert_string_equal(d.card[0], ref);
	assert_string_equal(d.reader[0], "sim-SER-1");
	assert_string_equal(d.method[1], "card.verify_pin");
	assert_string_equal(d.result[1], "SSC_OK");
	assert_string_equal(d.card[1], ref);
	assert_string_equal(d.method[2], "card.read_basic");
	assert_string_equal(d.result[2], "SSC_OK");
	assert_string_equal(d.card[2], ref);
	assert_string_equal(d.method[3], "no.such");
	assert_string_equal(d.result[3], "RPC_METHOD_NOT_FOUND");
	assert_string_equal(d.card[3], "");

	/* The operator's export says no more. */
	mem = open_memstream(&text, &len);
	assert_int_equal(journal_export(f->j, 0, mem), 4);
	fclose(mem);
	assert_clean(text);
	free(text);
	ssc_diag_init(&diag);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &diag), 0);
}

/* docs/api.md: system.info's "journal" says whether writes can be recorded. */
static void test_system_info_journal_status(void **state)
{
	struct fx *f = *state;
	json_t *r;

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}");
	rpc_set_journal_status(f->rpc, "ok");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.info\"}");
	rpc_set_journal_status(f->rpc, "unavailable: journal: file is not a database");
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.info\"}");
	assert_int_equal(f->cap.n, 3);
	r = json_loads(f->cap.lines[0], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
							      "journal")),
			    "unavailable: not opened");
	json_decref(r);
	r = json_loads(f->cap.lines[1], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
							      "journal")), "ok");
	json_decref(r);
	r = json_loads(f->cap.lines[2], 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
							      "journal")),
			    "unavailable: journal: file is not a database");
	json_decref(r);
}

/* The error name of reply i. */
static const char *reply_error_name(struct fx *f, int i, char *buf, size_t cap)
{
	json_t *r = json_loads(f->cap.lines[i], 0, NULL);
	const char *n;

	assert_non_null(r);
	n = json_string_value(json_object_get(json_object_get(json_object_get(r, "error"), "data"),
					      "name"));
	snprintf(buf, cap, "%s", n ? n : "(none)");
	json_decref(r);
	return buf;
}

/*
 * No journal (it could not be opened, or it failed): a write is refused before any write APDU
 * reaches the card, and reads are served as ever.
 */
static void test_without_journal_writes_refused_reads_served(void **state)
{
	struct fx *f = *state;
	char name[48];

	f->env.journal = NULL;
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.write_items\",\"params\":"
		     "{\"file\":\"DF04/EF05\",\"items\":{\"31\":\"21\"}}}");
	/* Refused at once (before queuing) or by the job on the worker: either way, refused. */
	if (f->be.n == 1)
		be_run(f);
	assert_int_equal(f->be.n, 0);
	assert_int_equal(f->cap.n, 1);
	assert_string_equal(reply_error_name(f, 0, name, sizeof(name)), "SSC_EJOURNAL");
	/* No UPDATE RECORD (plain or with MAC) and no APPEND RECORD went out. */
	assert_false(tu_sim_sent(&f->sim, "00DC"));
	assert_false(tu_sim_sent(&f->sim, "04DC"));
	assert_false(tu_sim_sent(&f->sim, "00E2"));
	assert_false(tu_sim_sent(&f->sim, "04E2"));
	cap_clear(&f->cap);

	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"card.read_items\",\"params\":"
		     "{\"file\":\"DF04/EF05\",\"items\":[\"31\"]}}");
	be_run(f);
	send_line(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.read_basic\"}");
	be_run(f);
	assert_int_equal(f->cap.n, 2);
	/* gen2.json: medical category "11"; the holder 张三. */
	assert_non_null(strstr(f->cap.lines[0], "\"result\":{\"file\":\"DF04/EF05\","
						"\"items\":{\"31\":\"11\"}}"));
	assert_non_null(strstr(f->cap.lines[1], "\"name\":\"" GEN2_NAME "\""));
	/* Both audited as usual; without a journal the card has no ref. */
	assert_int_equal(f->sink.n, 3);
	assert_string_equal(row(f, 0)->method, "card.write_items");
	assert_string_equal(row(f, 0)->result, "SSC_EJOURNAL");
	assert_row(row(f, 1), "card.read_items", "sim-SER-1", "SSC_OK");
	assert_row(row(f, 2), "card.read_basic", "sim-SER-1", "SSC_OK");
}

/* ---- the audit writer ------------------------------------------------------------------- */

static void test_writer_keeps_order_and_drops_without_journal(void **state)
{
	struct fx *f = *state;
	struct journal_peer peer = { .uid = 7, .pid = 8, .exe = "/bin/x" };
	struct journal_audit a = { .peer = &peer, .reader = "r", .card_ref = "",
				   .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	struct dump d = { 0 };
	char m[16];

	assert_int_equal(audit_new(100, 0, &w), 0);
	/* No journal yet: dropped and counted, never blocking. */
	a.method = "dropped";
	assert_int_equal(audit_submit(w, &a), SSC_EJOURNAL);
	audit_set_journal(w, f->j);
	for (int i = 0; i < 20; i++) {
		snprintf(m, sizeof(m), "m%02d", i);
		a.method = m;
		a.duration_ms = i;
		assert_int_equal(audit_submit(w, &a), 0);
	}
	audit_free(w, 5000, &st);
	assert_int_equal(st.written, 20);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.queued, 0);
	assert_int_equal(journal_rows(f->j, 0, 0, dump_row, &d), 0);
	assert_int_equal(d.n, 20);
	for (int i = 0; i < 20; i++) {
		snprintf(m, sizeof(m), "m%02d", i);
		assert_string_equal(d.method[i], m);
		assert_int_equal(d.uid[i], 7);
	}
}

static void test_writer_queue_is_bounded(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .method = "system.info", .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	int ok = 0, full = 0;

	assert_int_equal(audit_new(3, 0, &w), 0);
	/* Hold the journal's write lock from another connection: the writer waits on it. */
	{
		sqlite3 *h;

		assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
		assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
		audit_set_journal(w, f->j);
		for (int i = 0; i < 10; i++) {
			int rc = audit_submit(w, &a);

			if (rc == 0)
				ok++;
			else if (rc == SSC_ELIMIT)
				full++;
			else
				fail_msg("audit_submit: %d", rc);
		}
		/*
		 * The writer took what was queued when it woke (one row to three: it takes the
		 * queue's content as one batch) and waits on the lock; three more wait; the rest
		 * were refused.
		 */
		assert_true(ok >= 3 && ok <= 6);
		assert_int_equal(ok + full, 10);
		sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(h);
	}
	audit_free(w, 10000, &st);
	assert_int_equal(st.written, (uint64_t)ok);
	assert_int_equal(st.dropped, (uint64_t)full);
}

static int64_t rt_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-01-31T08:00:00.123Z" -> milliseconds since the epoch (UTC). */
static int64_t row_time_ms(const char *t)
{
	struct tm tm = { 0 };
	int ms = 0;

	assert_non_null(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
	assert_int_equal(sscanf(t + 19, ".%3dZ", &ms), 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

struct times {
	int n;
	int64_t ms[MAX_ROWS];
	char method[MAX_ROWS][32];
};

static int time_row(void *arg, const struct journal_row *r)
{
	struct times *t = arg;

	assert_true(t->n < MAX_ROWS);
	t->ms[t->n] = row_time_ms(r->time);
	snprintf(t->method[t->n], sizeof(t->method[0]), "%s", r->method);
	t->n++;
	return 0;
}

/*
 * With audit_batch_ms the rows wait together and are written in one go, in order, each with the
 * time it was submitted (not the time it was written).
 */
static void test_writer_gathers_rows_and_keeps_their_time(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .reader = "r", .card_ref = "", .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	struct times t = { 0 };
	int64_t submitted[10], t0;
	char m[16];

	assert_int_equal(audit_new(100, 400, &w), 0);
	audit_set_journal(w, f->j);
	t0 = rt_ms();
	for (int i = 0; i < 10; i++) {
		snprintf(m, sizeof(m), "g%02d", i);
		a.method = m;
		submitted[i] = rt_ms();
		assert_int_equal(audit_submit(w, &a), 0);
	}
	/* Well inside the 400 ms: nothing written yet, all ten waiting. */
	usleep(50 * 1000);
	audit_stats(w, &st);
	if (rt_ms() - t0 < 300) {
		assert_int_equal(st.written, 0);
		assert_int_equal(st.queued, 10);
	}
	for (int k = 0; k < 500; k++) {
		audit_stats(w, &st);
		if (st.written == 10)
			break;
		usleep(10 * 1000);
	}
	assert_int_equal(st.written, 10);
	assert_true(rt_ms() - t0 >= 400);
	assert_int_equal(journal_rows(f->j, 0, 0, time_row, &t), 0);
	assert_int_equal(t.n, 10);
	for (int i = 0; i < 10; i++) {
		snprintf(m, sizeof(m), "g%02d", i);
		assert_string_equal(t.method[i], m);
		/* The submit time (to the millisecond), not the write time 400 ms later. */
		assert_true(t.ms[i] >= submitted[i] - 1 && t.ms[i] <= submitted[i] + 100);
	}
	audit_free(w, 5000, &st);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, NULL), 0);
}

/* Stopping writes what gathered at once: a long batch time does not hold up a shutdown. */
static void test_writer_stop_does_not_wait_out_the_batch(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .method = "system.info", .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	int64_t t0;

	assert_int_equal(audit_new(100, 1000, &w), 0);
	audit_set_journal(w, f->j);
	for (int i = 0; i < 3; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	t0 = rt_ms();
	audit_free(w, 5000, &st);
	assert_true(rt_ms() - t0 < 900);
	assert_int_equal(st.written, 3);
	assert_int_equal(st.dropped, 0);
}

/*
 * Refusals for a limit are summed up: one row per client (peer and detail), limit and second, with
 * the count in its detail; the counts add up to the refusals; other rows are written as they come.
 */
static void test_writer_sums_refusals(void **state)
{
	struct fx *f = *state;
	struct journal_peer p1 = { .uid = 7, .pid = 8, .exe = "/bin/x" };
	struct journal_peer p2 = { .uid = 7, .pid = 9, .exe = "/bin/x" };
	struct journal_audit a = { .peer = &p1, .method = "card.read_basic", .reader = "",
				   .card_ref = "", .result = "SSC_ELIMIT",
				   .limit = "max_inflight_per_client" };
	struct journal_audit ok = { .peer = &p1, .method = "system.info", .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	struct dump d = { 0 };
	/* Two seconds of the wall clock, far from now: the rows carry their own time. */
	int64_t s1 = 1700000000000, s2 = 1700000001000;

	assert_int_equal(audit_new(100, 0, &w), 0);
	audit_set_journal(w, f->j);
	for (int i = 0; i < 1000; i++) {
		a.when_ms = s1 + i % 1000;
		assert_int_equal(audit_submit(w, &a), 0);
	}
	a.method = "card.read_items";                  /* another method: the same sum */
	assert_int_equal(audit_submit(w, &a), 0);
	a.when_ms = s2 + 5;                            /* the next second: a sum of its own */
	for (int i = 0; i < 40; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	a.method = "card.read_basic";
	a.when_ms = s1 + 7;
	a.peer = &p2;                                  /* another client */
	for (int i = 0; i < 30; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	a.limit = "max_queued_per_reader";             /* another limit */
	a.reader = "r1";
	for (int i = 0; i < 20; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	a.detail = "{\"origin\":\"https://desk.example\"}";   /* a page of the bridge */
	for (int i = 0; i < 10; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	assert_int_equal(audit_submit(w, &ok), 0);     /* not a refusal: as it comes */
	audit_stats(w, &st);
	assert_true(st.queued >= 5 && st.queued <= 6);   /* the ordinary row may be written */
	audit_free(w, 5000, &st);
	assert_int_equal(st.written, 6);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.summed, 1000 + 1 + 40 + 30 + 20 + 10 - 5);
	assert_int_equal(journal_rows(f->j, 0, 0, dump_row, &d), 0);
	assert_int_equal(d.n, 6);
	/* The ordinary row first (the sums wait for their second, or the stop). */
	assert_string_equal(d.method[0], "system.info");
	assert_string_equal(d.method[1], "(several)");
	assert_string_equal(d.result[1], "SSC_ELIMIT");
	assert_int_equal(d.pid[1], 8);
	assert_string_equal(d.detail[1], "{\"limit\":\"max_inflight_per_client\",\"refused\":1001}");
	assert_string_equal(d.method[2], "card.read_items");
	assert_string_equal(d.detail[2], "{\"limit\":\"max_inflight_per_client\",\"refused\":40}");
	assert_string_equal(d.method[3], "card.read_basic");
	assert_int_equal(d.pid[3], 9);
	assert_string_equal(d.detail[3], "{\"limit\":\"max_inflight_per_client\",\"refused\":30}");
	assert_string_equal(d.reader[4], "r1");
	assert_string_equal(d.detail[4], "{\"limit\":\"max_queued_per_reader\",\"refused\":20}");
	assert_string_equal(d.detail[5], "{\"origin\":\"https://desk.example\",\"limit\":"
			    "\"max_queued_per_reader\",\"refused\":10}");
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, NULL), 0);
}

/* A full batch (64 rows) is written without waiting out the batch time. */
static void test_writer_full_batch_goes_at_once(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .method = "system.info", .result = "SSC_OK" };
	struct audit_stats st;
	struct audit *w;
	int64_t t0;

	assert_int_equal(audit_new(1000, 1000, &w), 0);
	audit_set_journal(w, f->j);
	t0 = rt_ms();
	for (int i = 0; i < 64; i++)
		assert_int_equal(audit_submit(w, &a), 0);
	for (int k = 0; k < 100; k++) {
		audit_stats(w, &st);
		if (st.written == 64)
			break;
		usleep(5 * 1000);
	}
	assert_int_equal(st.written, 64);
	assert_true(rt_ms() - t0 < 900);
	audit_free(w, 5000, &st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_row_per_builtin_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_reader_core, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_rows_in_the_journal_name_the_card_and_hold_no_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_system_info_journal_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_journal_writes_refused_reads_served,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_keeps_order_and_drops_without_journal,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_queue_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_gathers_rows_and_keeps_their_time, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_writer_stop_does_not_wait_out_the_batch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_writer_full_batch_goes_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_sums_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
