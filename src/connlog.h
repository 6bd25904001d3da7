/*
 * This file contains the connection lines of the daemon's log, rate-limited: a client can open
 * and close connections as fast as it likes, and each would cost a "connected" and a "closed" (or
 * "refused") line. Up to a budget per window the server logs them one by one; beyond it they are
 * counted here (per uid, and per reason of refusal) and summed up in one line when the window
 * ends.
 */
#ifndef SSC_CONNLOG_H
#define SSC_CONNLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

/* Connections logged one by one per window, and the window (docs/operations.md). */
#define CONNLOG_MAX 100
#define CONNLOG_WINDOW_MS 10000
#define CONNLOG_UIDS 4           /* uids named in a summary; the others are summed */

/* Why a connection was refused (CONN_SERVED: it was not). */
enum conn_refusal {
	CONN_SERVED = -1,
	CONN_REFUSED_SHUTDOWN = 0,   /* the daemon is shutting down */
	CONN_REFUSED_TOTAL,          /* max_clients */
	CONN_REFUSED_UID,            /* max_clients_per_uid */
	CONN_REFUSED_FDS,            /* no file descriptor left */
	CONN_REFUSED_OTHER,          /* out of memory, no peer credentials, a failed accept */
	CONN_REFUSED_KINDS
};

struct connlog {
	struct log_budget budget;
	long quiet;                          /* connections not logged one by one */
	long refused[CONN_REFUSED_KINDS];    /* of them, refused, per reason */
	struct {
		uid_t uid;
		long n;
	} uids[CONNLOG_UIDS];                /* of them, per uid (the first CONNLOG_UIDS uids) */
	int n_uids;
	long other_uids;                     /* of them, from further uids */
	int64_t due_ms;                      /* when to log the summary; -1 = nothing to sum up */
};

/* Sets l up with a budget of max connections per window_ms. */
void connlog_init(struct connlog *l, int max, int64_t window_ms);

/*
 * Takes a new connection from uid at now_ms ((uid_t)-1 when its peer is unknown: a failed accept;
 * refusal: why it is refused, or CONN_SERVED). Returns
 * 1 when its lines are to be logged one by one (all of them: connected, closed or refused), 0
 * when the window's budget is used up: it is counted for the summary instead.
 */
int connlog_take(struct connlog *l, int64_t now_ms, uid_t uid, enum conn_refusal refusal);

/* When the summary is due (the end of the window that counted something), or -1. */
int64_t connlog_due(const struct connlog *l);

/*
 * Formats the summary of what was counted into buf ("" when nothing was) and clears the counts.
 * Returns 1 when something was refused (a warning), 0 when not (information), -1 when there was
 * nothing to sum up.
 */
int connlog_summary(struct connlog *l, char *buf, size_t cap);

/* connlog_summary() into the log (warn or info). */
void connlog_flush(struct connlog *l);

#endif
