/*
 * This file contains what the files of the JSON-RPC layer share among themselves (src/rpc.h is the
 * module's one public header): the dispatcher and client structs, the method table's entry, and the
 * functions each file offers the others. Calls run down only: rpc.c (the method table, dispatch,
 * request lines) -> rpc_builtin.c (reader.list, events.*, event fan-out), rpc_job.c (card.* as
 * reader-core jobs) -> rpc_client.c (clients, references, subscribers) and rpc_reply.c (replies,
 * error objects, audit rows), neither calling the other -> rpc_web.c (the browser bridge's
 * methods and checks). Loop thread, except where a function says otherwise.
 */
#ifndef SSC_RPC_INT_H
#define SSC_RPC_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "rpc.h"

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
	int audited;                    /* its handler wrote the audit row itself (bridge.refused) */
	const char *limit;              /* its SSC_ELIMIT refusal's limit (a constant), NULL = none */
	char audit_detail[512];         /* its audit row's detail (a JSON object; "" = none), set
					 * by a handler (medical.acknowledge: the ids) */
	struct rpc_web_conn web;        /* bound to a page's origin by the browser bridge */
};

/* ---- the method table (rpc.c) ------------------------------------------------------------ */

/* Who may call a method. */
enum rpc_access {
	/* Anyone; on a connection the browser bridge bound to a page, only once the page is paired
	 * (rpc_web_gate: refused before the method is even looked at). */
	RPC_ACCESS_ANY,
	/* Before the gate: rpc_web_call checks the caller by the kernel's word (web.*: root or
	 * [web] admin_group; bridge.*: [web] bridge_user). */
	RPC_ACCESS_WEB,
};

#define RPC_M_NO_PARAMS 0x1u  /* takes no params: any is refused (-32602) before the handler */
#define RPC_M_UNLISTED  0x2u  /* not in system.info's "methods" (nor the metrics' labels) */

struct rpc_method;

/*
 * Serves one request of method m. id is the request's id (NULL: a notification, no reply);
 * params an object or NULL (absent or {}). Replies through rpc_reply_*. Returns what the reply
 * returned: 0, or SSC_ENOMEM (the server then closes the client).
 */
typedef int (*rpc_method_fn)(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			     json_t *params);

/* One entry of rpc.c's method table; the card.* methods are ops_table's (served by rpc_job.c). */
struct rpc_method {
	const char *name;
	rpc_method_fn fn;
	enum rpc_access access;
	unsigned flags;                 /* RPC_M_* */
	int variant;                    /* what fn tells its methods apart by (events.*: on) */
};

/* ---- the built-in methods (rpc_builtin.c) ------------------------------------------------- */

/* reader.list: the backend's snapshot. */
int rpc_builtin_reader_list(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			    json_t *params);

/* events.subscribe (m->variant 1) and events.unsubscribe (0). */
int rpc_builtin_events(struct rpc_client *c, json_t *id, const struct rpc_method *m,
		       json_t *params);

/* ---- the settlement queue (rpc_medical.c) ---------------------------------------------- */

/* medical.pending {since?}: the settlements waiting for upload, the cards to clear. */
int rpc_medical_pending(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			json_t *params);

/* medical.acknowledge {ids}: marks them uploaded, all or none; the audit row names them. */
int rpc_medical_acknowledge(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			    json_t *params);

/* ---- card.* jobs (rpc_job.c) -------------------------------------------------------------- */

/*
 * Serves the card operation op: checks the reader param, the client's requests in flight and
 * the op's params, then submits a job to the backend; its done() replies and audits it later
 * (c->queued is set then). Returns 0, or SSC_ENOMEM.
 */
int rpc_job_submit(struct rpc_client *c, json_t *id, const struct op_desc *op, json_t *params);

/* ---- clients (rpc_client.c) --------------------------------------------------------------- */

void rpc_client_ref(struct rpc_client *c);

/* Drops one reference; the last frees c. */
void rpc_client_unref(struct rpc_client *c);

/* Adds c to (on) or takes it out of (!on) the event subscribers; idempotent. */
void rpc_client_subscribe(struct rpc_client *c, int on);

/* ---- replies, errors, audit rows (rpc_reply.c) -------------------------------------------- */

/*
 * The error object of an application error: code (RPC_APP_BASE - err, or another), message =
 * d->msg or the stable message, data = name, std_code, sw, retries_left, reader (d and reader
 * may be NULL). NULL when out of memory.
 */
json_t *rpc_app_error(int code, int err, const struct ssc_diag *d, const char *reader);

/*
 * Whether s is UTF-8 as JSON takes it (RFC 3629: shortest forms, no surrogates, up to U+10FFFF),
 * asked before json_string() so that its failing means no memory, never a fallback text. Pure.
 */
int rpc_utf8_ok(const char *s);

/* Sends {"jsonrpc":"2.0","id":id,"error":e} (e stolen; NULL: out of memory) and notes its
 * result name for the audit row; id NULL (a notification): nothing is sent. */
int rpc_reply_error(struct rpc_client *c, json_t *id, json_t *e);

/* A protocol error: code a JSON-RPC code; err != 0 adds data.name (and the standard code). */
int rpc_reply_proto(struct rpc_client *c, json_t *id, int code, int err, const char *message);

/* Sends the application error err (code RPC_APP_BASE - err) with its diag d (NULL: the stable
 * message) and reader (NULL or "": none), as rpc_reply_error. */
int rpc_reply_app(struct rpc_client *c, json_t *id, int err, const struct ssc_diag *d,
		  const char *reader);

/* Sends a result (stolen; NULL: out of memory) and notes "SSC_OK" for the audit row. */
int rpc_reply_result(struct rpc_client *c, json_t *id, json_t *result);

/*
 * Sends the error SSC_ENOMEM for id, made without allocating (but for the server's copy), for a
 * reply that could not be made: the client is never left waiting. Notes "SSC_ENOMEM" for the
 * audit row; id NULL: nothing is sent. Returns what ops->send returned, or SSC_ENOMEM.
 */
int rpc_reply_nomem(struct rpc_client *c, json_t *id);

/*
 * Passes one finished call to the audit sink (never params or results); a call through the
 * browser bridge names the page's origin in the row's detail. limit: NULL, or the name of the
 * limit the call was refused for (journal_audit.limit: such refusals are summed up per second).
 */
void rpc_audit_call(struct rpc *r, const struct journal_peer *peer, const char *origin,
		    const char *method, const char *reader, const char *card_ref,
		    const char *result, const char *detail, int64_t started_ms, const char *limit);

/*
 * Copies a client's string into out (cap bytes) for a log line, control characters as '?', and
 * returns out.
 */
const char *rpc_log_safe(const char *in, char *out, size_t cap);

#endif
