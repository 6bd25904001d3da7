/*
 * This file contains the JSON-RPC 2.0 layer's dispatcher (src/rpc.h): its lifetime and settings,
 * the one table of the methods it serves itself (name, handler, who may call, flags), from which
 * both dispatch and the method list come, request lines parsed with the depth limit and their
 * envelope checked, and system.info. The files it calls are listed in src/rpc_int.h. Loop thread.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cardio.h"
#include "log.h"
#include "rpc_int.h"
#include "sscard/error.h"

#ifndef SSC_VERSION
#define SSC_VERSION "0.0.0"
#endif

static int m_system_info(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			 json_t *params);
static int m_web(struct rpc_client *c, json_t *id, const struct rpc_method *m, json_t *params);

/*
 * The methods served here rather than by the card operations (ops_table, rpc_job.c), in the order
 * system.info lists them (before ops_table's).
 */
static const struct rpc_method methods[] = {
	{ "system.info", m_system_info, RPC_ACCESS_ANY, RPC_M_NO_PARAMS, 0 },
	{ "reader.list", rpc_builtin_reader_list, RPC_ACCESS_ANY, RPC_M_NO_PARAMS, 0 },
	{ "events.subscribe", rpc_builtin_events, RPC_ACCESS_ANY, RPC_M_NO_PARAMS, 1 },
	{ "events.unsubscribe", rpc_builtin_events, RPC_ACCESS_ANY, RPC_M_NO_PARAMS, 0 },
	/* The offline settlement queue (src/rpc_medical.c): the journal's, no card. */
	{ "medical.pending", rpc_medical_pending, RPC_ACCESS_ANY, 0, 0 },
	{ "medical.acknowledge", rpc_medical_acknowledge, RPC_ACCESS_ANY, 0, 0 },
	/* The operator's pairing methods and the browser bridge's (src/rpc_web.c, docs/web.md). */
	{ "web.pair", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "web.revoke", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "web.list", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "bridge.bind", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "bridge.pair", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "bridge.hello", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
	{ "bridge.refused", m_web, RPC_ACCESS_WEB, RPC_M_UNLISTED, 0 },
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* The entry of the table for name, or NULL (a card.* method, or none). */
static const struct rpc_method *method_find(const char *name)
{
	for (size_t i = 0; i < N_METHODS; i++)
		if (strcmp(name, methods[i].name) == 0)
			return &methods[i];
	return NULL;
}

/* Whether method is a name rpc serves. */
static int method_known(const char *method)
{
	return method_find(method) != NULL || ops_find(method) != NULL;
}

const char *rpc_method_name(size_t i)
{
	for (size_t k = 0; k < N_METHODS; k++) {
		if (methods[k].flags & RPC_M_UNLISTED)
			continue;
		if (i-- == 0)
			return methods[k].name;
	}
	for (const struct op_desc *op = ops_table; op->method; op++)
		if (i-- == 0)
			return op->method;
	return NULL;
}

static void *json_malloc_seen(size_t n);
static void json_free_wiped(void *p);

int rpc_new(const struct config *cfg, struct rpc **out)
{
	struct rpc *r = calloc(1, sizeof(*r));

	if (!r)
		return SSC_ENOMEM;
	/*
	 * jansson's allocations as malloc's, with their failures seen (parse_request()); every block
	 * wiped when freed, so that the parser's buffers and strings of a request (a PIN among
	 * them) do not outlive it in freed memory.
	 */
	json_set_alloc_funcs(json_malloc_seen, json_free_wiped);
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

/* ---- request parsing -------------------------------------------------------------------- */

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

#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/*
 * Set when one of jansson's allocations failed on this thread. jansson's lexer does not always
 * say so: a string whose buffer could not grow may come out short ("events.subscrie"), or the
 * failure may be reported as bad syntax. The parse looks here instead.
 */
static _Thread_local int json_nomem;

static void *json_malloc_seen(size_t n)
{
	void *p = malloc(n);

	if (!p)
		json_nomem = 1;
	return p;
}

static void json_free_wiped(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

/*
 * Parses a request line. NULL with *oom = 0 is the client's parse error (in *jerr); NULL with
 * *oom = 1 is an allocation failure (whatever jansson made of the text is dropped).
 */
static json_t *parse_request(const char *line, size_t len, json_error_t *jerr, int *oom)
{
	json_t *req;

	json_nomem = 0;
	req = json_loadb(line, len, PARSE_FLAGS, jerr);
	*oom = json_nomem || (!req && json_error_code(jerr) == json_error_out_of_memory);
	if (*oom) {
		ops_wipe_pins(json_object_get(req, "params"));
		json_decref(req);
		req = NULL;
	}
	return req;
}

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

/*
 * Params of a method that takes none: absent or {} (dispatch has made {} NULL). Returns 0, or -1
 * when refused, with the refusal sent and *rc what sending it returned.
 */
static int check_no_params(struct rpc_client *c, json_t *id, json_t *params, int *rc)
{
	const char *key;
	json_t *v;
	char msg[128];

	if (!params)
		return 0;
	json_object_foreach(params, key, v) {
		snprintf(msg, sizeof(msg), "unknown param \"%.64s\"", key);
		*rc = rpc_reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL, msg);
		return -1;
	}
	return 0;
}

/* ---- the methods served here ---------------------------------------------------------------- */

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

static int m_system_info(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			 json_t *params)
{
	json_t *res, *list;
	const char *name;

	list = json_array();
	for (size_t i = 0; list && (name = rpc_method_name(i)) != NULL; i++) {
		if (json_array_append_new(list, json_string(name)) != 0) {
			json_decref(list);   /* never a list with a method missing */
			list = NULL;
		}
	}
	if (!list)
		return rpc_reply_app(c, id, SSC_ENOMEM, NULL, NULL);
	res = json_pack("{s:s, s:i, s:o, s:o, s:{s:I, s:I, s:I}, s:s}",
			"version", SSC_VERSION, "api_level", RPC_API_LEVEL,
			"methods", list, "limits", limits_json(c->rpc->cfg),
			"peer", "uid", (json_int_t)c->peer.uid, "gid", (json_int_t)c->peer.gid,
			"pid", (json_int_t)c->peer.pid, "journal", c->rpc->journal_status);
	return rpc_reply_result(c, id, res);
}

/* The wall clock in ms: pairings are stored with their dates. */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The browser bridge's methods and the operator's pairing methods (src/rpc_web.c). */
static int m_web(struct rpc_client *c, json_t *id, const struct rpc_method *m, json_t *params)
{
	struct rpc_web_peer wp = { .uid = c->peer.uid, .gid = c->peer.gid, .groups = c->peer.groups,
				   .n_groups = c->peer.n_groups };
	struct ssc_diag diag;
	json_t *res = NULL;
	int err;

	ssc_diag_init(&diag);
	err = rpc_web_call(&c->rpc->web, &c->web, &wp, m->name, params, wall_ms(), &res, &diag);
	if (err == 0 && strcmp(m->name, "bridge.refused") == 0) {
		/* The audit row is the refused call's, as if the daemon had refused it. */
		rpc_audit_call(c->rpc, &c->jpeer, c->web.origin,
			       audit_method(json_string_value(json_object_get(res, "method"))), "",
			       "", json_string_value(json_object_get(res, "error")), "",
			       cardio_now_ms(), NULL);
		c->audited = 1;
	}
	if (err == SSC_EINVAL)
		return rpc_reply_error(c, id, rpc_app_error(RPC_INVALID_PARAMS, err, &diag, NULL));
	if (err == SSC_ELIMIT)
		c->limit = "pairing";
	if (err < 0)
		return rpc_reply_app(c, id, err, &diag, NULL);
	return rpc_reply_result(c, id, res);
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int dispatch(struct rpc_client *c, json_t *id, const char *method, json_t *params)
{
	const struct rpc_method *m = method_find(method);
	const struct op_desc *op;
	struct ssc_diag diag;
	char msg[128];
	int err;

	/* The web methods check their caller themselves, before any gate. */
	if (m && m->access == RPC_ACCESS_WEB)
		return m->fn(c, id, m, params);
	/* A bridged connection calls nothing else before its page has shown a token. */
	ssc_diag_init(&diag);
	err = rpc_web_gate(&c->rpc->web, &c->web, &diag);
	if (err < 0)
		return rpc_reply_app(c, id, err, &diag, NULL);
	if (m) {
		if ((m->flags & RPC_M_NO_PARAMS) && check_no_params(c, id, params, &err))
			return err;   /* refused: the reply's result (SSC_ENOMEM when none went) */
		return m->fn(c, id, m, params);
	}
	op = ops_find(method);
	if (op)
		return rpc_job_submit(c, id, op, params);
	snprintf(msg, sizeof(msg), "method not found: \"%.64s\"", method);
	return rpc_reply_proto(c, id, RPC_METHOD_NOT_FOUND, 0, msg);
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
	c->audited = 0;
	c->limit = NULL;
	c->audit_detail[0] = '\0';
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
		rc = rpc_reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "batch requests are not supported: send one request per line");
		goto out;
	}
	if (!json_is_object(req)) {
		rc = rpc_reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "the request must be a JSON object");
		goto out;
	}
	jid = json_object_get(req, "id");
	if (jid && !json_is_string(jid) && !json_is_integer(jid) && !json_is_null(jid)) {
		rc = rpc_reply_proto(c, null_id, RPC_INVALID_REQUEST, 0,
				 "\"id\" must be a string, an integer or null");
		goto out;
	}
	/* An invalid request is answered even without an id (JSON-RPC 2.0 §5). */
	id = jid ? jid : null_id;
	jver = json_object_get(req, "jsonrpc");
	if (!json_is_string(jver) || strcmp(json_string_value(jver), "2.0") != 0) {
		rc = rpc_reply_proto(c, id, RPC_INVALID_REQUEST, 0, "\"jsonrpc\" must be \"2.0\"");
		goto out;
	}
	jmethod = json_object_get(req, "method");
	if (!json_is_string(jmethod)) {
		rc = rpc_reply_proto(c, id, RPC_INVALID_REQUEST, 0, "\"method\" must be a string");
		goto out;
	}
	params = json_object_get(req, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		rc = rpc_reply_proto(c, id, RPC_INVALID_REQUEST, 0,
				 "\"params\" must be an object when present");
		goto out;
	}
	json_object_foreach(req, key, v) {
		if (strcmp(key, "jsonrpc") != 0 && strcmp(key, "id") != 0 &&
		    strcmp(key, "method") != 0 && strcmp(key, "params") != 0) {
			snprintf(msg, sizeof(msg), "unknown member \"%.64s\" in the request", key);
			rc = rpc_reply_proto(c, id, RPC_INVALID_REQUEST, 0, msg);
			goto out;
		}
	}
	/* From here on a request without an id is a notification: it gets no reply at all. */
	id = jid;
	if (log_enabled(LOG_LVL_DEBUG)) {
		char lm[65];

		log_debug("client %u: %s%s", c->peer.id,
			  rpc_log_safe(json_string_value(jmethod), lm, sizeof(lm)),
			  id ? "" : " (notification)");
	}
	if (params && json_is_array(params)) {
		if (!method_known(json_string_value(jmethod))) {
			snprintf(msg, sizeof(msg), "method not found: \"%.64s\"",
				 json_string_value(jmethod));
			rc = rpc_reply_proto(c, id, RPC_METHOD_NOT_FOUND, 0, msg);
			goto out;
		}
		rc = rpc_reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL,
				 "params must be an object (named params), not an array");
		goto out;
	}
	if (params && json_object_size(params) == 0)
		params = NULL;
	rc = dispatch(c, id, json_string_value(jmethod), params);
out:
	if (amethod && !c->queued && !c->audited) {
		const char *res = c->result[0] ? c->result : rc == SSC_ENOMEM ? "SSC_ENOMEM" : "SSC_OK";

		/* A refusal for a limit, answered at once: summed up with its like (audit.h). */
		rpc_audit_call(c->rpc, &c->jpeer, c->web.origin, amethod, areader, "", res,
			       c->audit_detail, started_ms, strcmp(res, "SSC_ELIMIT") != 0 ? NULL :
			       c->limit ? c->limit : "other");
	}
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
	int rc = 0, oom;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	/* Hold the client: a reply may make the server close it under us. */
	rpc_client_ref(c);
	null_id = json_null();
	if (depth_exceeds(line, len, r->cfg->max_json_depth)) {
		snprintf(msg, sizeof(msg), "request nested deeper than %d levels",
			 r->cfg->max_json_depth);
		rc = rpc_reply_proto(c, null_id, RPC_INVALID_REQUEST, SSC_ELIMIT, msg);
		goto out;
	}
	req = parse_request(line, len, &jerr, &oom);
	if (oom) {
		/*
		 * Not the client's mistake: never a parse error. Its id is unknown: the error goes
		 * with id null, and the server closes the connection (as for any SSC_ENOMEM).
		 */
		log_warn("client %u: out of memory reading a request (%zu bytes)", c->peer.id, len);
		(void)rpc_reply_app(c, null_id, SSC_ENOMEM, NULL, NULL);
		rc = SSC_ENOMEM;
		goto out;
	}
	if (!req) {
		snprintf(msg, sizeof(msg), "parse error at column %d: %s", jerr.column, jerr.text);
		/*
		 * jansson's text quotes the offending token, which may be a PIN (a malformed
		 * card.verify_pin): the reply goes back to its sender only, the log gets the place.
		 */
		log_debug("client %u: parse error at line %d column %d (%zu bytes)", c->peer.id,
			  jerr.line, jerr.column, len);
		rc = rpc_reply_proto(c, null_id, RPC_PARSE_ERROR, 0, msg);
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
	rpc_client_unref(c);
	/* A client that cannot take a reply is closed by the server; that is not our failure. */
	return rc == SSC_ENOMEM ? rc : 0;
}

