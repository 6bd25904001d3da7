/*
 * This file contains the API's socket server: a libuv Unix stream socket with the configured mode
 * and group, peer credentials for every client, the client limits (count, per uid, request size,
 * idle time, file descriptors), the rate-limited connection log, newline framing into src/rpc.c,
 * and write back-pressure. One loop thread.
 */
#ifndef SSC_SERVER_H
#define SSC_SERVER_H

#include <uv.h>

#include "config.h"
#include "rpc.h"

/*
 * Above this many queued reply bytes the server stops reading from a client until the queue
 * drains below SERVER_WQ_LOW; above SERVER_WQ_MAX (a subscriber that never reads its events)
 * the client is closed.
 */
#define SERVER_WQ_HIGH (1024 * 1024)
#define SERVER_WQ_LOW (256 * 1024)
#define SERVER_WQ_MAX (16 * 1024 * 1024)

/* How long a closing server waits for replies to flush before it cuts the clients off. */
#define SERVER_DRAIN_MS 1000

struct server;

/*
 * Creates the listening socket (src/listener.h: the directory check, the stale file, the mode and
 * group) and starts accepting on loop. Connections are accepted in batches, so that a flood of
 * them cannot starve the clients; each is counted against max_clients and max_clients_per_uid (a
 * client whose peer has closed is not counted: reaped before a refusal), and refused with one
 * SSC_ELIMIT error line, also when the daemon is out of file descriptors (a reserve descriptor
 * accepts, answers and closes it). Connections are logged one by one up to CONNLOG_MAX per
 * CONNLOG_WINDOW_MS (src/connlog.h), then summed up. cfg and rpc are borrowed and must outlive
 * the server.
 * Returns 0 and *out; listener_open()'s errors (SSC_EEXIST, SSC_ECONFIG, SSC_EPERM, SSC_EIO);
 * SSC_ENOMEM. Errors are logged with the path and the reason.
 */
int server_new(uv_loop_t *loop, const struct config *cfg, struct rpc *rpc, struct server **out);

/*
 * Begins an orderly close: stops listening and removes the socket file (only if it is still the
 * one this server created), stops reading from clients, and closes each client once its queued
 * replies are written, or after SERVER_DRAIN_MS at the latest. Call it after the reader core has
 * delivered its last completions (readers_free()), then run the loop until it has no more
 * handles, then call server_free(). Idempotent.
 */
void server_stop(struct server *srv);

/*
 * Frees the server after server_stop() and after the loop has run the close callbacks (the loop
 * has no more handles of the server). NULL is a no-op.
 */
void server_free(struct server *srv);

/* Number of connected clients (for tests and logs). */
int server_client_count(const struct server *srv);

#endif
