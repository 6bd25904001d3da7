/*
 * This file contains the JSON-RPC 2.0 layer of the API: it parses one request line, checks the
 * envelope and the limits, dispatches system.*, reader.*, events.* and card.* methods (the last
 * as jobs for the reader core), maps SSC_E* codes to JSON-RPC errors and fans reader events out to
 * subscribers. It knows nothing of sockets: src/server.c feeds it lines and sends what it returns.
 * Everything here runs on the event-loop thread, except a job's run(), on a reader worker.
 */
#ifndef SSC_RPC_H
#define SSC_RPC_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "journal.h"
#include "ops.h"
#include "readers.h"
#include "rpc_web.h"

/* JSON-RPC 2.0's own error codes (protocol faults). */
#define RPC_PARSE_ERROR      -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602

/* Application errors: code = RPC_APP_BASE - ssc_err (SSC_ENOCARD, -5, is 1005). */
#define RPC_APP_BASE 1000

/* The API level system.info reports; raised when a method or a field changes incompatibly. */
#define RPC_API_LEVEL 1

struct rpc;
struct rpc_client;

/*
 * What the server tells rpc about a peer (from SO_PEERCRED and /proc/PID/exe); used in logs,
 * system.info, the audit trail and the ops' journal rows.
 */
struct rpc_peer {
	unsigned id;     /* the server's connection number, for logs */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char exe[256];   /* the peer's executable at connect time; "" when unknown */
	gid_t groups[RPC_PEER_GROUPS]; /* its supplementary groups (SO_PEERGROUPS), for [web] */
	int n_groups;
};

/*
 * Where rpc sends one audit row per API call, once the call has ended and its reply (if any) is
 * queued: every method, success or failure, and protocol faults whose method name is known (a
 * request with a string "method"). row->result is "SSC_OK", the SSC_E* name of the error (the
 * reply's data.name), or for a protocol fault without one the rpc.h name of its code
 * ("RPC_METHOD_NOT_FOUND", "RPC_INVALID_REQUEST", "RPC_INVALID_PARAMS"). row->method is the method
 * when the daemon knows it; an unknown one as sent when it is a plausible name (a lower-case
 * letter, then lower-case letters, digits, '.' and '_', at most 64), else "(invalid)", so that a
 * number (a PIN, an ID) sent as a method never reaches a row. row->card_ref is what the card operation reported (journal_card_ref of
 * the card number), "" when none. Params and results are never passed on. Loop thread; the row and
 * its strings are valid during the call only. Must not block (queue the row and return).
 */
typedef void (*rpc_audit_fn)(void *arg, const struct journal_audit *row);

/* How rpc talks back to the server for one client. Both called on the loop thread. */
struct rpc_client_ops {
	/*
	 * Queues one message (len bytes, no newline; the server adds it). Returns 0, or a negative
	 * SSC_E* when the client cannot take it (its write queue is over the hard cap, or it is
	 * going away): the server then closes it, possibly before send() returns.
	 */
	int (*send)(void *owner, const char *msg, size_t len);
	/* Optional: the last request in flight has completed (lets a half-closed client go). */
	void (*idle)(void *owner);
};

/*
 * How rpc reaches the reader core. The daemon passes readers_list/readers_submit/readers_cancel
 * over its struct readers; tests may pass another implementation with the same contract
 * (readers.h). A job's owner is its struct rpc_client. cancel is optional (NULL: a closed
 * client's queued jobs still run, their results dropped).
 */
struct rpc_backend {
	int (*list)(void *ctx, struct reader_info **out, size_t *n);
	int (*submit)(void *ctx, struct job *job);
	int (*cancel)(void *ctx, const void *owner);
	void *ctx;
};

/*
 * Creates the dispatcher. cfg is borrowed and must outlive it (limits, op_timeout_ms). Until
 * rpc_set_backend() is called, reader.list is empty and card.* answers SSC_ENOREADER.
 * Returns 0 and *out, or SSC_ENOMEM.
 */
int rpc_new(const struct config *cfg, struct rpc **out);

/*
 * Sets the reader core and the operations' environment (both borrowed: they must outlive every
 * job, i.e. be freed only after the reader core has completed all jobs). be is copied; NULL
 * detaches the core again (at shutdown, after readers_free()).
 */
void rpc_set_backend(struct rpc *r, const struct rpc_backend *be, const struct op_env *env);

/*
 * Sets the browser bridge's checks (src/rpc_web.h; copied, its pairing store borrowed: it must
 * outlive rpc). Until called, web.* and bridge.* answer SSC_EPERM to everyone but root, and
 * SSC_EJOURNAL to root. Loop thread.
 */
void rpc_set_web(struct rpc *r, const struct rpc_web_cfg *web);

/* Sets (fn non-NULL) or removes the audit sink. Loop thread. */
void rpc_set_audit(struct rpc *r, rpc_audit_fn fn, void *arg);

/*
 * Sets what system.info reports as "journal": "ok", or "unavailable: <reason>" (copied, truncated
 * to 255 bytes). The default, until the daemon says otherwise, is "unavailable: not opened". Loop
 * thread.
 */
void rpc_set_journal_status(struct rpc *r, const char *status);

/*
 * Jobs handed to the reader core and not yet released by it (a worker may still be running one,
 * even after its done() at an overrun or at shutdown). Loop thread; for an orderly exit.
 */
int rpc_jobs_unreleased(const struct rpc *r);

/*
 * Frees the dispatcher. Every client must have been closed and every job completed (after
 * readers_free()). NULL is a no-op.
 */
void rpc_free(struct rpc *r);

/*
 * A new client. ops is borrowed (static), owner is passed back to ops; peer is copied.
 * Returns NULL when out of memory. The server owns one reference until rpc_client_close().
 */
struct rpc_client *rpc_client_new(struct rpc *r, const struct rpc_client_ops *ops, void *owner,
				  const struct rpc_peer *peer);

/*
 * The server is done with the client (disconnected, or closed by a limit): nothing more is sent
 * to it, it leaves the event subscribers, its jobs still waiting for a reader are cancelled
 * (backend cancel: their done() runs now, audited SSC_ECANCELED), and a job already on a card
 * completes with its result dropped. Drops the server's reference. NULL is a no-op.
 */
void rpc_client_close(struct rpc_client *c);

/* Requests of this client still in flight in the reader core. */
int rpc_client_inflight(const struct rpc_client *c);

/* Whether the client is subscribed to events (subscribers are exempt from the idle timeout). */
int rpc_client_subscribed(const struct rpc_client *c);

/*
 * Handles one request line (len bytes, without the newline; a trailing CR is ignored; an empty
 * line is ignored). Replies, at once or when the job completes, go through ops->send. Bad input
 * is answered with a JSON-RPC error and the connection stays usable (framing is intact).
 * Returns 0; a negative SSC_E* only for SSC_ENOMEM, after which the server should close.
 */
int rpc_handle_line(struct rpc_client *c, const char *line, size_t len);

/*
 * Sends an error reply with id null, outside any request: code is a JSON-RPC code, err the
 * SSC_E* for error.data.name (0: no data). Used by the server for "request too large" and
 * "too many clients" before closing. Returns what ops->send returned.
 */
int rpc_send_error(struct rpc_client *c, int code, int err, const char *message);

/*
 * Formats such an error (id null) into buf (cap bytes, NUL-terminated, no newline), for a
 * client that rpc does not know yet (refused at accept). Returns the length, or SSC_ELIMIT when
 * it does not fit.
 */
int rpc_format_error(char *buf, size_t cap, int code, int err, const char *message);

/*
 * Sends the notification {"method":"event","params":{"type":type,"reader":ri->id,...}} to every
 * subscribed client: the reader's snapshot as reader.list shows it, and "error" (the SSC_E* name)
 * when ri->ready_err is set (card.ready). A readers_event_fn (arg = the struct rpc). Loop thread.
 */
void rpc_event(void *arg, const char *type, const struct reader_info *ri);

/*
 * The i-th method (from 0) that system.info lists: the daemon's own (system.info, reader.list,
 * events.*), then the card operations in ops_table's order; NULL past the last. The browser
 * bridge's and the pairing methods are served but not listed. Pure.
 */
const char *rpc_method_name(size_t i);

/*
 * The JSON-RPC code of an application error: RPC_APP_BASE - err (SSC_ENOCARD -> 1005). (Bad
 * params found before a job is queued are answered with RPC_INVALID_PARAMS instead.)
 */
int rpc_error_code(int err);

#endif
