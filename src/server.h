/*
 * This file contains the API's socket server: a libuv Unix stream socket with the configured mode
 * and group, peer credentials for every client, the client limits (count, per uid, request size,
 * idle time), newline framing into src/rpc.c, and write back-pressure. One loop thread.
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
 * Creates the listening socket at cfg->socket_path and starts accepting on loop. The socket file
 * gets mode cfg->socket_mode and group cfg->socket_group (a missing group is a warning; "" leaves
 * the group alone). A missing parent directory is created (mode 0755). Every directory from / to
 * the socket's must belong to root or the daemon's uid and be writable by nobody else (an
 * ancestor may be sticky, like /tmp; the socket's own directory may not). An existing socket file
 * is replaced only when nothing answers on it (a stale file from a crash); any other file there
 * is left alone. cfg and rpc are borrowed and must outlive the server.
 * Returns 0 and *out; SSC_EEXIST (a daemon answers on that socket, or a non-socket file is
 * there), SSC_ECONFIG (the path is too long for a Unix socket), SSC_EPERM (a directory others
 * could write, or one we cannot create or read), SSC_EIO, SSC_ENOMEM.
 * Errors are logged with the path and the reason.
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
