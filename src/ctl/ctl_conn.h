/*
 * This file contains sscardctl's connection to sscardd (src/ctl/ctl_conn.c): connecting within a
 * deadline, one JSON-RPC request and its answer, reading the lines that follow (events), and the
 * daemon's errors printed for people. Every wait has the caller's deadline.
 */
#ifndef SSC_CTL_CONN_H
#define SSC_CTL_CONN_H

#include <stddef.h>

#include <jansson.h>

#define CTL_CONN_TIMEOUT (-1)   /* ctl_conn_recv(): the deadline passed (nothing printed) */
#define CTL_ERRNAME_MAX 48      /* the size of ctl_conn_call()'s errname */

/* One connection; fd -1 when closed. buf holds what was received and not yet taken. */
struct ctl_conn {
	int fd;
	char *buf;
	size_t len, cap;
};

/*
 * Connects to the daemon's socket at path (from: where that path came from, for the hint when
 * nothing answers there). A full accept backlog is tried again until deadline (monotonic ms).
 * Returns 0, or an exit code (EXIT_USAGE, EXIT_CONNECT) after saying why on stderr.
 */
int ctl_conn_open(struct ctl_conn *c, const char *path, const char *from, long long deadline);

/* Closes the connection and frees its buffer; a no-op on a closed one. */
void ctl_conn_close(struct ctl_conn *c);

/*
 * Reads one line into a new JSON value in *out (owned by the caller). Returns 0, CTL_CONN_TIMEOUT
 * when deadline passes (the caller says what it waited for; deadline < 0: none), or an exit code
 * (EXIT_ANSWER) after saying why (connection closed, too long, not JSON).
 */
int ctl_conn_recv(struct ctl_conn *c, json_t **out, long long deadline);

/*
 * One request, one answer: sends method(params) (params stolen, may be NULL) and waits until
 * deadline for the answer with id 1, skipping notifications. On success *result is a new
 * reference. When the daemon answers with an error it is printed (the tries left in words) and
 * EXIT_API returned, with the error's name in errname (CTL_ERRNAME_MAX bytes; may be NULL). The
 * request's text is wiped after sending: its params may hold a PIN. Other failures: EXIT_ANSWER.
 */
int ctl_conn_call(struct ctl_conn *c, const char *method, json_t *params, json_t **result,
		  long long deadline, char *errname);

#endif
