/*
 * This file contains the daemon's wiring, shared by sscardd's main() and the tests that run a
 * daemon in-process: the JSON-RPC layer, the reader core, the PSAM key provider, the socket
 * server, the journal's supervisor and the audit sink on one libuv loop; dropping root; the
 * resolution of pending write intents when a card is inserted; readiness for the service
 * manager; and the orderly stop. Options, signals and the process itself are main()'s.
 */
#ifndef SSC_DAEMON_H
#define SSC_DAEMON_H

#include <uv.h>

#include "config.h"

struct daemon;

/*
 * Builds the daemon on loop from cfg (borrowed: both must outlive it; config_file, the file cfg
 * was read from or NULL, names it in messages): the RPC layer with the browser bridge's pairings,
 * the reader core (not started), the key providers (the PSAM's, and [hsm]'s when set) and the
 * socket server (listening at cfg->socket_path when this returns, so that it may need root).
 * Returns 0 and *out, or SSC_ENOMEM / SSC_ECONFIG / SSC_EREADER / SSC_EIO / ... (logged), with
 * nothing left behind; then *refused (when not NULL) is 1 if the configuration itself was refused
 * (an [hsm] key file others may read: main() exits as for a bad configuration), else 0. Loop
 * thread (the loop is not running yet).
 */
int daemon_new(uv_loop_t *loop, const struct config *cfg, const char *config_file,
	       struct daemon **out, int *refused);

/*
 * Starts it: drops root ([daemon] user), starts the journal's supervisor and the audit writer,
 * starts the readers and the metrics endpoint, and tells the service manager it is ready. Returns
 * 0, or an SSC_E* (logged) after daemon_stop() has run: then, as after any stop, run the loop to
 * its end and call daemon_free(). Loop thread.
 */
int daemon_start(struct daemon *d);

/*
 * The orderly stop (why goes to the log): the reader core first (every job in flight completes,
 * SSC_ESHUTDOWN), then the server drains and closes its clients, and every handle of the daemon
 * on the loop is closed, so that the loop ends once the caller has closed its own. Idempotent.
 * Loop thread.
 */
void daemon_stop(struct daemon *d, const char *why);

/* 1 once daemon_stop() has run. */
int daemon_stopping(const struct daemon *d);

/*
 * After the loop has ended: writes the audit rows still queued, logs the final chain head,
 * closes the journal (unless a stuck worker may still use it: then it is kept), and frees the
 * server, the RPC layer, the pairings and d. The key providers are kept to the end of the process
 * (a worker left in a driver call may reach them). NULL is a no-op.
 */
void daemon_free(struct daemon *d);

#endif
