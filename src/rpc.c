/*
 * This file contains the JSON-RPC 2.0 layer (src/rpc.h): request parsing and envelope checks with
 * the depth limit, the built-in methods (system.info, reader.list, events.*), card.* methods as
 * reader-core jobs, the mapping of SSC_E* codes to error objects, and event fan-out. Loop thread.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cardio.h"
#include "hex.h"
#include "log.h"
#include "rpc.h"
#include "sscard/error.h"

#ifndef SSC_VERSION
#define SSC_VERSION "0.0.0"
#endif

struct rpc {
	const struct config *cfg;
	struct rpc_backend be;
	int have_backend;
	const struct op_env *env;
	struct rpc_client *subs;        /* subscribed clients (doubly linked through sub_*) */
	rpc_audit_fn audit;
	void *audit_arg;
	char journal_status[256];       /* system.info's "journal" */
	struct rpc_web_cfg web;         /* the browser bridge's checks (src/rpc_web.h) */
	atomic_int jobs_unreleased;     /* job_release() may run on a worker thread */
};

struct rpc_client {
	struct rpc *rpc;
	const struct rpc_client_ops *ops;
	void *owner;                    /* NULL once the server has closed the client */
	struct rpc_peer peer;
	int refs;                       /* the server's (until close) + one per job in flight */
	int inflight;
	int subscribed;
	struct rpc_client *sub_prev, *sub_next;
	struct journal_peer jpeer;      /* the peer as journal rows name it */
	/* The request being handled (rpc_handle_line), for its audit row: */
	char result[40];                /* the last reply's result name ("" = none yet) */
	int queued;                     /* it became a job: the job's done() audits it */
	struct rpc_web_conn web;        /* bound to a page's origin by the browser bridge */
};

/* A card.* request on its way through the reader core. */
struct rpc_job {
	struct job job;                 /* first: the core hands us &job */
	const struct op_desc *op;
	const struct op_env *env;
	json_t *params;                 /* private deep copy, used on the worker thread */
	/* Loop-thread only, released in done(): */
	struct rpc_client *client;
	json_t *id;                     /* NULL for a notification */
	int64_t started_ms;
	/* For the op_call and the audit row (the client may be gone when the job ends): */
	struct rpc *rpc;
	struct journal_peer peer;       /* a copy of the client's */
	char card_ref[JOURNAL_REF_HEX + 1]; /* set from the op_call after run(); "" = unknown */
	char audit_detail[64];          /* likewise: the op's note for the audit row ("" = none) */
	char origin[ORIGIN_MAX];        /* the page's origin when the bridge sent it; "" = none */
};

/* Methods served here rather than by the card operations (ops_table). */
static const char *const builtin_methods[] = {
	"system.info", "reader.list", "events.subscribe", "events.unsubscribe",
};

int rpc_error_code(int err)
{
	return RPC_APP_BASE - err;
}

int rpc_new(const struct config *cfg, struct rpc **out)
{
	struct rpc *r = calloc(1, sizeof(*r));

	if (!r)
		return SSC_ENOMEM;
	r->cfg = cfg;
	snprintf(r->journal_status, sizeof(r->journal_status), "%s", "unavailable: not opened");
	atomic_init(&r->jobs_unreleased, 0);
	*out = r;
	return 0;
}

void rpc_set_audit(struct rpc *r, rpc_audit_fn fn, void *arg)
{
	r->audit = fn;
	r->audit_arg = arg;
}

void rpc_set_web(struct rpc *r, const struct rpc_web_cfg *web)
{
	r->web = *web;
}

void rpc_set_journal_status(struct rpc *r, const char *status)
{
	snprintf(r->journal_status, sizeof(r->journal_status), "%s", status);
}

int rpc_jobs_unreleased(const struct rpc *r)
{
	return atomic_load(&((struct rpc *)r)->jobs_unreleased);
}

void rpc_set_backend(struct rpc *r, const struct rpc_backend *be, const struct op_env *env)
{
	if (be) {
		r->be = *be;
		r->have_backend = 1;
	} else {
		memset(&r->be, 0, sizeof(r->be));
		r->have_backend = 0;
	}
	r->env = env;
}

void rpc_free(struct rpc *r)
{
	int n;

	if (!r)
		return;
	if (r->subs)
		log_warn("rpc: freed with subscribed clients still open");
	n = atomic_load(&r->jobs_unreleased);
	if (n > 0) {
		/* A worker stuck in a driver call still holds a job that points here. */
		log_warn("rpc: %d job(s) still held by a stuck reader worker: not freeing", n);
		return;
	}
	free(r);
}

/* ---- audit ------------------------------------------------------------------------------ */

/* Passes one finished call to the audit sink (never params or results). */
static void audit_call(struct rpc *r, const struct journal_peer *peer, const char *origin,
		       const char *method, const char *reader, const char *card_ref,
		       const char *result, const char *detail, int64_t started_ms)
{
	struct journal_audit a = { 0 };   /* when_ms 0: the writer stamps the submit time */
	char *with_origin = NULL;

	if (!r->audit)
		return;
	if (origin && origin[0]) {
		/* A call through the browser bridge names the page's origin in the row's detail. */
		json_t *d = detail && detail[0] ? json_loads(detail, 0, NULL) : NULL;

		if (!json_is_object(d)) {
			json_decref(d);
			d = json_object();
		}
		json_object_set_new(d, "origin", json_string(origin));
		with_origin = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(d);
		if (with_origin)
			detail = with_origin;
	}
	a.peer = peer;
	a.method = method;
	a.reader = reader;
	a.card_ref = card_ref;
	a.result = result;
	a.detail = detail;
	a.duration_ms = cardio_now_ms() - started_ms;
	if (a.duration_ms < 0)
		a.duration_ms = 0;
	r->audit(r->audit_arg, &a);
	free(with_origin);
}

/* Whether method is a name rpc serves. */
static int method_known(const char *method);

/*
 * Copies a client's string for a log line with control characters as '?': a newline in a reader
 * id must not start a forged line (such as a "journal head" line an operator verifies against).
 */
static const char *log_safe(const char *in, char *out, size_t cap)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < cap; i++)
		out[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/* The method as an audit row may show it (see rpc_audit_fn). */
static const char *audit_method(const char *m)
{
	size_t n = strlen(m);

	if (method_known(m))
		return m;
	if (n == 0 || n > 64 || m[0] < 'a' || m[0] > 'z')
		return "(invalid)";
	for (size_t i = 0; i < n; i++)
		if (!((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= '0' && m[i] <= '9') || m[i] == '.' ||
		      m[i] == '_'))
			return "(invalid)";
	return m;
}

/* Remembers the result name of an error object for the request's audit row. */
static void note_error(struct rpc_client *c, const json_t *e)
{
	const char *name = json_string_value(json_object_get(json_object_get(e, "data"), "name"));

	if (!name) {
		switch (json_integer_value(json_object_get(e, "code"))) {
		case RPC_PARSE_ERROR:
			name = "RPC_PARSE_ERROR";
			break;
		case RPC_INVALID_REQUEST:
			name = "RPC_INVALID_REQUEST";
			break;
		case RPC_METHOD_NOT_FOUND:
			name = "RPC_METHOD_NOT_FOUND";
			break;
		case RPC_INVALID_PARAMS:
			name = "RPC_INVALID_PARAMS";
			break;
		default:
			name = "RPC_ERROR";
			break;
		}
	}
	snprintf(c->result, sizeof(c->result), "%s", name);
}

/* ---- clients ---------------------------------------------------------------------------- */

struct rpc_client *rpc_client_new(struct rpc *r, const struct rpc_client_ops *ops, void *owner,
				  const struct rpc_peer *peer)
{
	struct rpc_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rpc = r;
	c->ops = ops;
	c->owner = owner;
	c->peer = *peer;
	c->peer.exe[sizeof(c->peer.exe) - 1] = '\0';
	c->refs = 1;
	c->jpeer.uid = peer->uid;
	c->jpeer.pid = peer->pid;
	snprintf(c->jpeer.exe, sizeof(c->jpeer.exe), "%s", c->peer.exe);
	return c;
}

static void client_ref(struct rpc_client *c)
{
	c->refs++;
}

static void client_unref(struct rpc_client *c)
{
	if (--c->refs == 0)
		free(c);
}

static void unsubscribe(struct rpc_client *c)
{
	struct rpc *r = c->rpc;

	if (!c->subscribed)
		return;
	if (c->sub_prev)
		c->sub_prev->sub_next = c->sub_next;
	else
		r->subs = c->sub_next;
	if (c->sub_next)
		c->sub_next->sub_prev = c->sub_prev;
	c->sub_prev = c->sub_next = NULL;
	c->subscribed = 0;
}

static void subscribe(struct rpc_client *c)
{
	struct rpc *r = c->rpc;

	if (c->subscribed)
		return;
	c->sub_prev = NULL;
	c->sub_next = r->subs;
	if (r->subs)
		r->subs->sub_prev = c;
	r->subs = c;
	c->subscribed = 1;
}

void rpc_client_close(struct rpc_client *c)
{
	struct rpc *r;
	int n;

	if (!c || !c->owner)
		return;
	r = c->rpc;
	unsubscribe(c);
	c->owner = NULL;
	/*
	 * Its jobs still waiting for a reader would run for nobody, and hold that reader for the
	 * clients who are there: cancel them (their done() runs now: audited SSC_ECANCELED). The
	 * one on a card finishes; its result is dropped.
	 */
	if (c->inflight > 0 && r->have_backend && r->be.cancel) {
		n = r->be.cancel(r->be.ctx, c);
		if (n > 0)
			log_info("client %u: %d queued operation(s) cancelled: the client is gone",
				 c->peer.id, n);
	}
	client_unref(c);
}

int rpc_client_inflight(const struct rpc_client *c)
{
	return c->inflight;
}

int rpc_client_subscribed(const struct rpc_client *c)
{
	return c->subscribed;
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Serialises msg (stolen) and queues it to c, if c is still connected. */
static int send_json(struct rpc_client *c, json_t *msg)
{
	char *text;
	int rc;

	if (!msg)
		return SSC_ENOMEM;
	if (!c->owner) {
		json_decref(msg);
		return SSC_ESHUTDOWN;
	}
	/* Compact output has no newline: the line framing stays intact. */
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return SSC_ENOMEM;
	rc = c->ops->send(c->owner, text, strlen(text));
	free(text);
	return rc;
}

/*
 * The error object of an application error: code RPC_APP_BASE - err (or code_override),
 * message = the operation's detail or the stable message, data = name, std_code, sw,
 * retries_left, reader.
 */
static json_t *app_error(int code, int err, const struct ssc_diag *d, const char *reader)
{
	json_t *data, *e, *msg;
	int std = ssc_std_code(err, d ? d->sw : 0);

	data = json_object();
	if (!data)
		return NULL;
	json_object_set_new(data, "name", json_string(ssc_strerror_name(err)));
	if (std != 0)
		json_object_set_new(data, "std_code", json_integer(std));
	if (d && d->sw != 0) {
		char sw[5];

		snprintf(sw, sizeof(sw), "%04X", (unsigned)d->sw);
		json_object_set_new(data, "sw", json_string(sw));
	}
	if (d && d->retries_left >= 0)
		json_object_set_new(data, "retries_left", json_integer(d->retries_left));
	if (reader && reader[0])
		json_object_set_new(data, "reader", json_string(reader));
	e = json_object();
	if (!e) {
		json_decref(data);
		return NULL;
	}
	json_object_set_new(e, "code", json_integer(code));
	/* diag.msg is UTF-8 by contract; json_string() refuses anything else, so fall back. */
	msg = (d && d->msg[0]) ? json_string(d->msg) : NULL;
	if (!msg)
		msg = json_string(ssc_strerror(err));
	json_object_set_new(e, "message", msg);
	json_object_set_new(e, "data", data);
	return e;
}

/* A protocol error object; err != 0 adds data.name (and the standard code). */
static json_t *proto_error(int code, int err, const char *message)
{
	json_t *e = json_object();

	if (!e)
		return NULL;
	json_object_set_new(e, "code", json_integer(code));
	json_object_set_new(e, "message", json_string(message));
	if (err != 0) {
		json_t *data = json_object();
		int std = ssc_std_code(err, 0);

		json_object_set_new(data, "name", json_string(ssc_strerror_name(err)));
		if (std != 0)
			json_object_set_new(data, "std_code", json_integer(std));
		json_object_set_new(e, "data", data);
	}
	return e;
}

/* Sends {"jsonrpc":"2.0","id":id,"error":e}; id NULL = a notification: nothing is sent. */
static int reply_error_obj(struct rpc_client *c, json_t *id, json_t *e)
{
	json_t *msg;

	if (e)
		note_error(c, e);
	if (!id) {
		json_decref(e);
		return 0;
	}
	if (!e)
		return SSC_ENOMEM;
	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "error", e);
	return send_json(c, msg);
}

static int reply_proto(struct rpc_client *c, json_t *id, int code, int err, const char *message)
{
	return reply_error_obj(c, id, proto_error(code, err, message));
}

/* Sends a result (stolen). */
static int reply_result(struct rpc_client *c, json_t *id, json_t *result)
{
	json_t *msg;

	snprintf(c->result, sizeof(c->result), "%s", "SSC_OK");
	if (!id) {
		json_decref(result);
		return 0;
	}
	if (!result)
		return SSC_ENOMEM;
	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
	return send_json(c, msg);
}

int rpc_send_error(struct rpc_client *c, int code, int err, const char *message)
{
	json_t *id = json_null();
	int rc = reply_proto(c, id, code, err, message);

	json_decref(id);
	return rc;
}

int rpc_format_error(char *buf, size_t cap, int code, int err, const char *message)
{
	json_t *msg = json_pack("{s:s, s:n, s:o}", "jsonrpc", "2.0", "id", "error",
				proto_error(code, err, message));
	size_t n;

	if (!msg)
		return SSC_ENOMEM;
	n = json_dumpb(msg, buf, cap > 0 ? cap - 1 : 0, JSON_COMPACT);
	json_decref(msg);
	if (n == 0 || n >= cap)
		return SSC_ELIMIT;
	buf[n] = '\0';
	return (int)n;
}

/* ---- request parsing -------------------------------------------------------------------- */

/*
 * Whether the text nests objects/arrays deeper than max. jansson has no depth option (its own
 * limit is 2048), so this scan runs before the parser; it only tracks strings and brackets.
 */
static int depth_exceeds(const char *s, size_t len, int max)
{
	int depth = 0, in_str = 0, esc = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (in_str) {
			if (esc)
				esc = 0;
			else if (ch == '\\')
				esc = 1;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"') {
			in_str = 1;
		} else if (ch == '{' || ch == '[') {
			if (++depth > max)
				return 1;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	return 0;
}

static json_t *reader_json(const struct reader_info *ri)
{
	json_t *o = json_object(), *name;

	if (!o)
		return NULL;
	json_object_set_new(o, "id", json_string(ri->id));
	name = json_string(ri->name);
	if (!name)    /* a name that is not UTF-8: keep the entry, show the id instead */
		name = json_string(ri->id);
	json_object_set_new(o, "name", name);
	json_object_set_new(o, "driver", json_string(ri->driver));
	json_object_set_new(o, "card", json_boolean(ri->card_present));
	json_object_set_new(o, "role", json_string(reader_role_name(ri->role)));
	json_object_set_new(o, "busy", json_boolean(ri->busy));
	if (ri->serial[0])
		json_object_set_new(o, "serial", json_string(ri->serial));
	if (ri->card_present && ri->atr_len > 0 && ri->atr_len <= SSC_ATR_MAX) {
		char atr[2 * SSC_ATR_MAX + 1];

		hex_encode(ri->atr, ri->atr_len, atr, sizeof(atr), HEX_UPPER);
		json_object_set_new(o, "atr", json_string(atr));
	}
	if (ri->role == READER_ROLE_PSAM && ri->psam_alg != SSC_ALG_NONE)
		json_object_set_new(o, "algorithm",
				    json_string(ri->psam_alg == SSC_ALG_SM4 ? "sm4" : "des"));
	return o;
}

/* Params of a method that takes none: absent or {}. */
static int check_no_params(struct rpc_client *c, json_t *id, json_t *params)
{
	const char *key;
	json_t *v;
	char msg[128];

	if (!params)
		return 0;
	json_object_foreach(params, key, v) {
		snprintf(msg, sizeof(msg), "unknown param \"%.64s\"", key);
		reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL, msg);
		return -1;
	}
	return 0;
}

static json_t *limits_json(const struct config *cfg)
{
	return json_pack("{s:I, s:i, s:i, s:i, s:i, s:i}",
			 "max_request_bytes", (json_int_t)cfg->max_request_bytes,
			 "max_json_depth", cfg->max_json_depth,
			 "max_inflight_per_client", cfg->max_inflight_per_client,
			 "idle_timeout_ms", cfg->idle_timeout_ms,
			 "op_timeout_ms", cfg->op_timeout_ms,
			 "max_clients_per_uid", cfg->max_clients_per_uid);
}

static int m_system_info(struct rpc_client *c, json_t *id, json_t *params)
{
	json_t *res, *methods;

	if (check_no_params(c, id, params))
		return 0;
	methods = json_array();
	for (size_t i = 0; i < sizeof(builtin_methods) / sizeof(builtin_methods[0]); i++)
		json_array_append_new(methods, json_string(builtin_methods[i]));
	for (const struct op_desc *op = ops_table; op->method; op++)
		json_array_append_new(methods, json_string(op->method));
	res = json_pack("{s:s, s:i, s:o, s:o, s:{s:I, s:I, s:I}, s:s}",
			"version", SSC_VERSION, "api_level", RPC_API_LEVEL,
			"methods", methods, "limits", limits_json(c->rpc->cfg),
			"peer", "uid", (json_int_t)c->peer.uid, "gid", (json_int_t)c->peer.gid,
			"pid", (json_int_t)c->peer.pid, "journal", c->rpc->journal_status);
	return reply_result(c, id, res);
}

static int m_reader_list(struct rpc_client *c, json_t *id, json_t *params)
{
	struct rpc *r = c->rpc;
	struct reader_info *list = NULL;
	size_t n = 0;
	json_t *arr;
	int rc;

	if (check_no_params(c, id, params))
		return 0;
	if (r->have_backend) {
		rc = r->be.list(r->be.ctx, &list, &n);
		if (rc < 0)
			return reply_error_obj(c, id, app_error(rpc_error_code(rc), rc, NULL, NULL));
	}
	arr = json_array();
	for (size_t i = 0; i < n && arr; i++)
		json_array_append_new(arr, reader_json(&list[i]));
	free(list);
	return reply_result(c, id, json_pack("{s:o}", "readers", arr));
}

static int m_events(struct rpc_client *c, json_t *id, json_t *params, int on)
{
	if (check_no_params(c, id, params))
		return 0;
	if (on)
		subscribe(c);
	else
		unsubscribe(c);
	return reply_result(c, id, json_pack("{s:b}", "subscribed", on));
}

/* ---- card.* jobs ------------------------------------------------------------------------ */

/* Worker thread: the operation itself. Touches only the job's own params and the env. */
static int job_run(struct job *job, struct card_io *io, unsigned *insertion_flags, int *reset_card)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct op_call call;
	json_t *result = NULL;
	int err;

	memset(&call, 0, sizeof(call));
	call.params = rj->params;
	call.peer = &rj->peer;
	err = rj->op->run(rj->op, rj->env, io, &call, insertion_flags, reset_card, &result,
			  &job->diag);
	memcpy(rj->card_ref, call.card_ref, sizeof(rj->card_ref));
	memcpy(rj->audit_detail, call.audit_detail, sizeof(rj->audit_detail));
	if (err == 0 && !result)
		err = ssc_diag_set(&job->diag, SSC_EINTERNAL, "%s returned no result",
				   rj->op->method);
	if (err != 0) {
		json_decref(result);
		/* A failure's extra data travels in job->result; job_done adds it to the error. */
		job->result = call.error_data;
		return err;
	}
	json_decref(call.error_data);
	job->result = result;
	return 0;
}

/* Loop thread, once: reply (if the client is still there), then let go of the client. */
static void job_done(struct job *job)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct rpc_client *c = rj->client;
	int64_t ms = cardio_now_ms() - rj->started_ms;
	const char *reader = job->used_reader[0] ? job->used_reader : job->reader_id;
	char lr[SSC_READER_ID_MAX];

	if (c->owner && rj->id) {
		if (job->err == 0) {
			json_t *res = job->result;

			job->result = NULL;   /* the reply takes it */
			reply_result(c, rj->id, res);
		} else if (job->err == SSC_ETIMEDOUT || job->err == SSC_ESHUTDOWN) {
			/*
			 * At an overrun or a shutdown the worker may still be writing job->diag
			 * (readers.c keeps the job until the driver call returns): do not read it;
			 * say it ourselves.
			 */
			struct ssc_diag d;

			ssc_diag_init(&d);
			if (job->err == SSC_ETIMEDOUT)
				ssc_diag_set(&d, SSC_ETIMEDOUT,
					     "the operation did not finish within %d ms",
					     job->timeout_ms);
			reply_error_obj(c, rj->id, app_error(rpc_error_code(job->err), job->err, &d,
							     reader));
		} else {
			json_t *e = app_error(rpc_error_code(job->err), job->err, &job->diag,
					      reader);
			json_t *more = job->result;

			/* What the op added (e.g. the items a cut-off write put on the card). */
			if (e && json_is_object(more))
				json_object_update_missing(json_object_get(e, "data"), more);
			reply_error_obj(c, rj->id, e);
		}
	}
	/*
	 * An audit line: who, what, where, how it ended; never params or results (PINs, names).
	 * After the reply, which is written at once when the socket takes it: the client does not
	 * wait for the log.
	 */
	log_info("client %u uid %ld: %s on %s: %s (%lld ms)%s", c->peer.id, (long)c->peer.uid,
		 rj->op->method, reader[0] ? log_safe(reader, lr, sizeof(lr)) : "-",
		 job->err ? ssc_strerror_name(job->err) : "ok", (long long)ms,
		 job->err == SSC_ECANCELED ? " (client gone before it started)"
		 : c->owner ? "" : " (client gone, result dropped)");
	/*
	 * The audit row, after the reply is queued. At an overrun the worker may still write
	 * card_ref (as it may diag): leave it out then.
	 */
	audit_call(c->rpc, &rj->peer, rj->origin, rj->op->method, reader,
		   (job->err == SSC_ETIMEDOUT || job->err == SSC_ESHUTDOWN) ? "" : rj->card_ref,
		   job->err ? ssc_strerror_name(job->err) : "SSC_OK",
		   (job->err == SSC_ETIMEDOUT || job->err == SSC_ESHUTDOWN) ? "" : rj->audit_detail,
		   rj->started_ms);
	json_decref(rj->id);
	rj->id = NULL;
	c->inflight--;
	rj->client = NULL;
	if (c->owner && c->inflight == 0 && c->ops->idle)
		c->ops->idle(c->owner);
	client_unref(c);
}

/* Any thread, once, after done() and after the worker let go: free what the job owns. */
static void job_release(struct job *job)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct rpc *r = rj->rpc;

	json_decref(job->result);
	json_decref(rj->params);
	free(rj);
	atomic_fetch_sub(&r->jobs_unreleased, 1);
}

static int m_card(struct rpc_client *c, json_t *id, const struct op_desc *op, json_t *params)
{
	struct rpc *r = c->rpc;
	struct rpc_job *rj;
	struct ssc_diag diag;
	const char *reader = "";
	json_t *jr;
	int err;

	jr = params ? json_object_get(params, "reader") : NULL;
	if (jr) {
		if (!json_is_string(jr) || json_string_length(jr) == 0 ||
		    json_string_length(jr) >= SSC_READER_ID_MAX)
			return reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL,
					   "\"reader\" must be a reader id (a non-empty string)");
		reader = json_string_value(jr);
	}
	if (c->inflight >= r->cfg->max_inflight_per_client) {
		ssc_diag_init(&diag);
		ssc_diag_set(&diag, SSC_ELIMIT, "too many requests in flight on this connection "
			     "(at most %d)", r->cfg->max_inflight_per_client);
		return reply_error_obj(c, id, app_error(rpc_error_code(SSC_ELIMIT), SSC_ELIMIT,
							&diag, NULL));
	}
	/* No reader core (not attached yet, or detached at shutdown): nothing to check against. */
	if (!r->have_backend || !r->env)
		return reply_error_obj(c, id, app_error(rpc_error_code(SSC_ENOREADER), SSC_ENOREADER,
							NULL, reader));
	ssc_diag_init(&diag);
	if (op->check) {
		err = op->check(op, r->env, params, &diag);
		if (err == SSC_EINVAL)
			return reply_error_obj(c, id, app_error(RPC_INVALID_PARAMS, err, &diag,
								NULL));
		if (err < 0)
			return reply_error_obj(c, id, app_error(rpc_error_code(err), err, &diag,
								NULL));
	}
	rj = calloc(1, sizeof(*rj));
	if (!rj)
		return SSC_ENOMEM;
	rj->op = op;
	rj->env = r->env;
	rj->rpc = r;
	rj->peer = c->jpeer;
	memcpy(rj->origin, c->web.origin, sizeof(rj->origin));
	if (params) {
		rj->params = json_deep_copy(params);
		if (!rj->params) {
			free(rj);
			return SSC_ENOMEM;
		}
	}
	rj->job.run = job_run;
	rj->job.done = job_done;
	rj->job.release = job_release;
	rj->job.arg = rj;
	snprintf(rj->job.reader_id, sizeof(rj->job.reader_id), "%s", reader);
	rj->job.owner = c;   /* the reader's queue takes turns across clients */
	rj->job.need_role = READER_ROLE_USER;
	rj->job.timeout_ms = r->cfg->op_timeout_ms;
	ssc_diag_init(&rj->job.diag);
	rj->client = c;
	rj->id = id ? json_incref(id) : NULL;
	rj->started_ms = cardio_now_ms();

	atomic_fetch_add(&r->jobs_unreleased, 1);
	err = r->be.submit(r->be.ctx, &rj->job);
	if (err < 0) {
		atomic_fetch_sub(&r->jobs_unreleased, 1);
		char lr[SSC_READER_ID_MAX];

		log_info("client %u uid %ld: %s on %s: %s (not queued)", c->peer.id,
			 (long)c->peer.uid, op->method,
			 reader[0] ? log_safe(reader, lr, sizeof(lr)) : "-", ssc_strerror_name(err));
		reply_error_obj(c, id, app_error(rpc_error_code(err), err, &rj->job.diag, reader));
		json_decref(rj->id);
		json_decref(rj->params);
		free(rj);
		return 0;
	}
	client_ref(c);
	c->inflight++;
	c->queued = 1;
	return 0;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int method_known(const char *method)
{
	for (size_t i = 0; i < sizeof(builtin_methods) / sizeof(builtin_methods[0]); i++)
		if (strcmp(method, builtin_methods[i]) == 0)
			return 1;
	return rpc_web_method(method) || ops_find(method) != NULL;
}

/* The wall clock in ms: pairings are stored with their dates. */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The browser bridge's methods and the operator's pairing methods (src/rpc_web.c). */
static int m_web(struct rpc_client *c, json_t *id, const char *method, json_t *params)
{
	struct rpc_web_peer wp = { .uid = c->peer.uid, .gid = c->peer.gid, .groups = c->peer.groups,
				   .n_groups = c->peer.n_groups };
	struct ssc_diag diag;
	json_t *res = NULL;
	int err;

	ssc_diag_init(&diag);
	err = rpc_web_call(&c->rpc->web, &c->web, &wp, method, params, wall_ms(), &res,
			   &diag);
	if (err == SSC_EINVAL)
		return reply_error_obj(c, id, app_error(RPC_INVALID_PARAMS, err, &diag, NULL));
	if (err < 0)
		return reply_error_obj(c, id, app_error(rpc_error_code(err), err, &diag, NULL));
	return reply_result(c, id, res);
}

static int dispatch(struct rpc_client *c, json_t *id, const char *method, json_t *params)
{
	const struct op_desc *op;
	struct ssc_diag diag;
	int err;

	ssc_diag_init(&diag);
	if (rpc_web_method(method))
		return m_web(c, id, method, params);
	/* A bridged connection calls nothing else before its page has shown a token. */
	err = rpc_web_gate(&c->rpc->web, &c->web, &diag);
	if (err < 0)
		return reply_error_obj(c, id, app_error(rpc_error_code(err), err, &diag, NULL));
	if (strcmp(method, "system.info") == 0)
		return m_system_info(c, id, params);
	if (strcmp(method, "reader.list") == 0)
		return m_reader_list(c, id, params);
	if (strcmp(method, "events.subscribe") == 0)
		return m_events(c, id, params, 1);
	if (strcmp(method, "events.unsubscribe") == 0)
		return m_events(c, id, params, 0);
	op = ops_find(method);
	if (op)
		return m_card(c, id, op, params);
	{
		char msg[128];

		snprintf(msg, sizeof(msg), "method not found: \"%.64s\"", method);
		return reply_proto(c, id, RPC_METHOD_NOT_FOUND, 0, msg);
	}
}

/*
 * Checks the envelope of a parsed request and dispatches it. Unless it became a job (whose done()
 * audits it), the call is audited here once it is answered, when its method name is known.
 */
static int handle_request(struct rpc_client *c, json_t *req, int64_t started_ms)
{
	json_t *jid, *jver, *jmethod, *params, *null_id = json_null();
	json_t *id;   /* what replies carry: the request's id, null, or NULL (notification) */
	const char *key, *amethod = NULL, *areader = "";
	json_t *v;
	char msg[160];
	int rc = 0;

	c->result[0] = '\0';
	c->queued = 0;
	if (json_is_object(req)) {
		json_t *jm = json_object_get(req, "method");
		json_t *jp = json_object_get(req, "params");
		json_t *jr = json_object_get(jp, "reader");

		if (json_is_string(jm))
			amethod = audit_method(json_string_value(jm));
		/* The reader asked for, for a card call refused before it reached the core. */
		if (json_is_string(jr) && json_string_length(jr) < SSC_READER_ID_MAX)
			areader = json_string_value(jr);
	}

	if (json_is_array(req)) {
		rc = reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "batch requests are not supported: send one request per line");
		goto out;
	}
	if (!json_is_object(req)) {
		rc = reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "the request must be a JSON object");
		goto out;
	}
	jid = json_object_get(req, "id");
	if (jid && !json_is_string(jid) && !json_is_integer(jid) && !json_is_null(jid)) {
		rc = reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "\"id\" must be a string, an integer or null");
		goto out;
	}
	/* An invalid request is answered even without an id (JSON-RPC 2.0 §5). */
	id = jid ? jid : null_id;
	jver = json_object_get(req, "jsonrpc");
	if (!json_is_string(jver) || strcmp(json_string_value(jver), "2.0") != 0) {
		rc = reply_proto(c, id, RPC_INVALID_REQUEST, 0, "\"jsonrpc\" must be \"2.0\"");
		goto out;
	}
	jmethod = json_object_get(req, "method");
	if (!json_is_string(jmethod)) {
		rc = reply_proto(c, id, RPC_INVALID_REQUEST, 0, "\"method\" must be a string");
		goto out;
	}
	params = json_object_get(req, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		rc = reply_proto(c, id, RPC_INVALID_REQUEST, 0,
				 "\"params\" must be an object when present");
		goto out;
	}
	json_object_foreach(req, key, v) {
		if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "id") != 0 &&
		    strcmp(key, "method") != 0 && strcmp(key, "params") != 0) {
			snprintf(msg, sizeof(msg), "unknown member \"%.64s\" in the request", key);
			rc = reply_proto(c, id, RPC_INVALID_REQUEST, 0, msg);
			goto out;
		}
	}
	/* From here on a request without an id is a notification: it gets no reply at all. */
	id = jid;
	if (log_enabled(LOG_LVL_DEBUG)) {
		char lm[65];

		log_debug("client %u: %s%s", c->peer.id,
			  log_safe(json_string_value(jmethod), lm, sizeof(lm)),
			  id ? "" : " (notification)");
	}
	if (params && json_is_array(params)) {
		if (!method_known(json_string_value(jmethod))) {
			snprintf(msg, sizeof(msg), "method not found: \"%.64s\"",
				 json_string_value(jmethod));
			rc = reply_proto(c, id, RPC_METHOD_NOT_FOUND, 0, msg);
			goto out;
		}
		rc = reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL,
				 "params must be an object (named params), not an array");
		goto out;
	}
	if (params && json_object_size(params) == 0)
		params = NULL;
	rc = dispatch(c, id, json_string_value(jmethod), params);
out:
	if (amethod && !c->queued)
		audit_call(c->rpc, &c->jpeer, c->web.origin, amethod, areader, "",
			   c->result[0] ? c->result : rc == SSC_ENOMEM ? "SSC_ENOMEM" : "SSC_OK", "",
			   started_ms);
	json_decref(null_id);
	return rc;
}

int rpc_handle_line(struct rpc_client *c, const char *line, size_t len)
{
	struct rpc *r = c->rpc;
	json_error_t jerr;
	json_t *req, *null_id;
	char msg[200];
	int64_t started_ms = cardio_now_ms();
	int rc = 0;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	/* Hold the client: a reply may make the server close it under us. */
	client_ref(c);
	null_id = json_null();
	if (depth_exceeds(line, len, r->cfg->max_json_depth)) {
		snprintf(msg, sizeof(msg), "request nested deeper than %d levels",
			 r->cfg->max_json_depth);
		rc = reply_proto(c, null_id, RPC_INVALID_REQUEST, SSC_ELIMIT, msg);
		goto out;
	}
	req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req) {
		snprintf(msg, sizeof(msg), "parse error at column %d: %s", jerr.column, jerr.text);
		/*
		 * jansson's text quotes the offending token, which may be a PIN (a malformed
		 * card.verify_pin): the reply goes back to its sender only, the log gets the place.
		 */
		log_debug("client %u: parse error at line %d column %d (%zu bytes)", c->peer.id,
			  jerr.line, jerr.column, len);
		rc = reply_proto(c, null_id, RPC_PARSE_ERROR, 0, msg);
		OPENSSL_cleanse(msg, sizeof(msg));
		OPENSSL_cleanse(&jerr, sizeof(jerr));
		goto out;
	}
	rc = handle_request(c, req, started_ms);
	/* Best effort: the job has its own copy (wiped by the op), see docs/security.md. */
	ops_wipe_pins(json_object_get(req, "params"));
	json_decref(req);
out:
	json_decref(null_id);
	client_unref(c);
	/* A client that cannot take a reply is closed by the server; that is not our failure. */
	return rc == SSC_ENOMEM ? rc : 0;
}

/* ---- events ----------------------------------------------------------------------------- */

void rpc_event(void *arg, const char *type, const struct reader_info *ri)
{
	struct rpc *r = arg;
	json_t *params, *snap, *msg;
	char *text;
	size_t len;

	if (strcmp(type, "card.ready") == 0)
		log_info("event %s: %s (role %s%s%s)", type, ri->id, reader_role_name(ri->role),
			 ri->ready_err < 0 ? ", " : "",
			 ri->ready_err < 0 ? ssc_strerror_name(ri->ready_err) : "");
	else
		log_info("event %s: %s", type, ri->id);
	if (!r->subs)
		return;
	/* type and reader (the id) first; the rest of the reader's snapshot rides along. */
	params = json_pack("{s:s, s:s}", "type", type, "reader", ri->id);
	snap = reader_json(ri);
	if (!params || !snap) {
		json_decref(params);
		json_decref(snap);
		return;
	}
	json_object_del(snap, "id");
	json_object_update_missing(params, snap);
	json_decref(snap);
	/* card.ready of a card whose role could not be found: why, as a stable name. */
	if (ri->ready_err < 0)
		json_object_set_new(params, "error", json_string(ssc_strerror_name(ri->ready_err)));
	msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "event", "params", params);
	if (!msg)
		return;
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return;
	len = strlen(text);
	for (struct rpc_client *c = r->subs, *next; c; c = next) {
		/* send() may close c (only c): hold it, and look ahead before sending. */
		next = c->sub_next;
		client_ref(c);
		if (c->owner)
			c->ops->send(c->owner, text, len);
		client_unref(c);
	}
	free(text);
}
