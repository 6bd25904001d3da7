/*
 * This file contains the browser bridge's server (web/bridge.c): the WebSocket endpoint /v1 and
 * the demo page's files on libwebsockets, on loopback only, each page with a connection of its
 * own to the daemon's socket. It refuses a handshake whose Origin is not allowed or whose Host is
 * not this bridge (HTTP 403, before any message), forwards a page's JSON-RPC calls that its
 * origin's policy allows once the page has shown its token, and brings the answers and events
 * back. A slow or vanished page costs only itself: its answers are queued up to a limit, then the
 * page is closed; the daemon's connection is always read.
 */
#ifndef SSC_BRIDGE_H
#define SSC_BRIDGE_H

#include "webcfg.h"

struct bridge;

/*
 * Creates the server on cfg->host:cfg->port (cfg borrowed: it must outlive the bridge). Returns
 * 0 and *out, or -1 after logging why (the port is taken, no memory).
 */
int bridge_new(const struct webcfg *cfg, struct bridge **out);

/* Serves until bridge_stop(); returns 0. Blocks (this is the program's loop). */
int bridge_run(struct bridge *b);

/* Asks bridge_run() to return. Async-signal-safe. */
void bridge_stop(struct bridge *b);

/* Closes every connection and frees the bridge. NULL is a no-op. */
void bridge_free(struct bridge *b);

#endif
