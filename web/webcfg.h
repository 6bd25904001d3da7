/*
 * This file contains the browser bridge's configuration and the checks it makes before any
 * message of a page reaches the daemon (docs/web.md): the listen address (loopback only), the
 * exact Origin allowlist, the Host header (against DNS rebinding) and the method policy of each
 * origin. Everything here is pure (no I/O but webcfg_load's file), so unit tests drive it.
 */
#ifndef SSC_WEBCFG_H
#define SSC_WEBCFG_H

#include <stddef.h>

#include "origin.h"

#define WEBCFG_DEFAULT_PORT 8732
#define WEBCFG_DEFAULT_LISTEN "127.0.0.1:8732"
#define WEBCFG_DEFAULT_PATH "/etc/sscard/sscard-web.conf"
#define WEBCFG_MAX_ORIGINS 32
#define WEBCFG_MAX_METHODS 32
#define WEBCFG_METHOD_MAX 48     /* a method name with its NUL */
#define WEBCFG_PATH_MAX 512

/* One allowed origin and the methods its pages may call once paired. */
struct webcfg_origin {
	char origin[ORIGIN_MAX];
	char methods[WEBCFG_MAX_METHODS][WEBCFG_METHOD_MAX];
	int n_methods;
	int has_policy;          /* a [origin ...] section set its methods */
};

struct webcfg {
	/* [web] */
	char listen[80];                 /* as configured, "127.0.0.1:8732" */
	char host[64];                   /* its address, "127.0.0.1" or "::1" */
	int port;
	int demo;                        /* serve the demo page at / and allow its origin, yes */
	char static_dir[WEBCFG_PATH_MAX];/* the demo page's files */
	char socket_path[WEBCFG_PATH_MAX]; /* the daemon's socket; "" = its default */
	char log_level[16];
	size_t max_message_bytes;        /* one text frame, default 65536 */
	int max_connections;             /* pages in all, default 64 */
	int max_connections_per_origin;  /* default 8 */
	int max_pending;                 /* requests in flight per page, default 16 */
	size_t max_queued_bytes;         /* answers a page has not read, default 1 MiB */
	int request_timeout_ms;          /* a request's answer, default 30000 */
	int hello_timeout_ms;            /* a page that shows no token is closed, default 30000 */
	/* The allowlist, exact, and the policy of each. */
	struct webcfg_origin origins[WEBCFG_MAX_ORIGINS];
	int n_origins;
};

/* The methods every allowed origin may call unless its section says otherwise. */
extern const char *const webcfg_default_methods[];

/* The defaults: listen 127.0.0.1:8732, the demo on, no other origin. */
void webcfg_defaults(struct webcfg *cfg);

/*
 * Reads an INI file over the current values (section [web]: listen, origins, demo, static_dir,
 * socket, log_level and the limits; sections [origin ORIGIN]: methods). Unknown sections and
 * keys, malformed values, a listen address that is not loopback, an origin that is not in a
 * browser's canonical form and a policy for an origin not in origins are errors naming the line.
 * Returns 0, or -1 with the reason in err.
 */
int webcfg_load(struct webcfg *cfg, const char *path, char *err, size_t errlen);

/*
 * Ends the configuration once file and command line are read: adds the demo page's own origin
 * (http://127.0.0.1:PORT, or http://[::1]:PORT) with the default methods and card.verify_pin
 * when the demo is on and no section gave it a policy. Returns 0 or -1 (err: too many origins).
 */
int webcfg_finish(struct webcfg *cfg, char *err, size_t errlen);

/*
 * Parses a listen address "ADDR:PORT" ("[::1]:PORT" for IPv6) into host and port. Only the
 * loopback addresses are accepted (127.0.0.0/8 and ::1; not "localhost", not 0.0.0.0): the
 * bridge serves the desk's own browser only. Returns 0, or -1 with a reason in *why.
 */
int webcfg_parse_listen(const char *s, char *host, size_t hostcap, int *port, const char **why);

/* The allowed origin equal to origin (byte for byte), or NULL. NULL or "" gives NULL. */
const struct webcfg_origin *webcfg_find_origin(const struct webcfg *cfg, const char *origin);

/*
 * Whether a Host header names this bridge: "127.0.0.1:PORT" (any 127.x address the bridge
 * listens on, given as cfg->host), "localhost:PORT" or "[::1]:PORT" with the bridge's own port,
 * case-insensitive for "localhost". Anything else, a missing port included, is refused: a page of
 * another name that resolves to 127.0.0.1 (DNS rebinding) sends its own name. Returns 1 or 0.
 */
int webcfg_host_ok(const struct webcfg *cfg, const char *host);

/*
 * Copies text a page or a local program sent (a header, a method name) for a log line: control
 * characters (C0 and DEL) become '?', so that no client can start a forged line or colour the
 * terminal; at most cap - 1 bytes, always terminated. Returns out.
 */
const char *webcfg_log_text(const char *in, char *out, size_t cap);

/* Whether a paired page of o may call method (exact names; "bridge.bind" never). 1 or 0. */
int webcfg_method_allowed(const struct webcfg_origin *o, const char *method);

#endif
