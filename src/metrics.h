/*
 * This file contains the daemon's Prometheus metrics (issue 19): the counters that the rest of the
 * daemon moves (operations, APDUs, key-provider failures, journal rows, refused connections), and
 * the endpoint that serves them with the gauges of the moment as text exposition at /metrics
 * through libmicrohttpd (loaded only for it), on the event loop's thread ([metrics] listen; off
 * by default). No label
 * ever holds personal data: methods, result names, drivers, roles, reader ids and kinds of row.
 */
#ifndef SSC_METRICS_H
#define SSC_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "connlog.h"
#include "keyprov.h"
#include "readers.h"

/*
 * The gauges of the moment, filled by the daemon when a scrape comes (loop thread). readers is
 * owned by metrics after the call (freed with free()), as readers_list() returns it.
 */
struct metrics_gauges {
	int clients;                  /* connected API clients */
	int journal_up;               /* 1 the journal works, 0 it is down */
	uint64_t audit_dropped;       /* audit rows not written since start */
	int syslog_on;                /* [audit] syslog = yes: the two counts below are shown */
	uint64_t syslog_sent, syslog_dropped;
	struct reader_info *readers;  /* may be NULL */
	size_t n_readers;
};

typedef void (*metrics_gauges_fn)(void *arg, struct metrics_gauges *g);

struct metrics;

/*
 * Loads libmicrohttpd (src/metrics_mhd.h), which the endpoint needs and a daemon with the metrics
 * off never maps: sscardd's main() calls this at start when [metrics] listen is set, and stops
 * there when it fails. Returns 0, or SSC_EMETRICSLIB (the library cannot be loaded) or
 * SSC_ECONFIG (built without libmicrohttpd's headers) with the message to log or print in err
 * (the reason, and what to install). Logs nothing. Any thread; may block while the library loads.
 */
int metrics_load(char *err, size_t errlen);

/*
 * Starts the endpoint on cfg->metrics_listen (config_parse_listen() form) on loop's thread: GET
 * /metrics answers the exposition text; anything else 404 or 405. At most 8 connections at once,
 * each closed after 10 s idle. gauges(arg) is called for each scrape. Returns 0 and *out, or
 * SSC_ECONFIG (a bad address, or built without libmicrohttpd), SSC_EMETRICSLIB (libmicrohttpd
 * cannot be loaded: metrics_load() was not called first, or failed), SSC_EIO (cannot listen: the
 * address is in use or not on this machine), SSC_ENOMEM. Errors are logged.
 */
int metrics_start(uv_loop_t *loop, const struct config *cfg, metrics_gauges_fn gauges, void *arg,
		  struct metrics **out);

/*
 * Stops the endpoint and closes its handles (the loop runs their close callbacks, then frees the
 * rest). NULL is a no-op. Loop thread.
 */
void metrics_stop(struct metrics *m);

/*
 * The counters. They are process-wide and count from the start whether or not the endpoint is
 * on (a few atomic increments). Each may be called from any thread and never blocks beyond a
 * short mutex.
 */

/* One API call ended: method (a known method, else counted as "other"), result ("SSC_OK" or an
 * error name), its duration. */
void metrics_operation(const char *method, const char *result, int64_t duration_ms);

/* One APDU was sent to a card or a PSAM through driver ("pcsc", "usb-ccid"). */
void metrics_apdu(const char *driver);

/* One row was appended to the journal (kind: "audit", "intent", ...), or an append failed. */
void metrics_journal_row(const char *kind);
void metrics_journal_failure(void);

/* A connection was refused for this reason (src/connlog.h). */
void metrics_refusal(enum conn_refusal why);

/*
 * Wraps a key provider so that its failures (cryptogram, MAC, encryption, terminal number ending
 * in an error other than "no key store for this") are counted by provider name. The wrapper
 * borrows inner (which must outlive it) and is freed with keyprov_free() (inner is not). Returns
 * the wrapper, or inner itself when out of memory (then nothing is counted).
 */
struct keyprov *metrics_keyprov_wrap(struct keyprov *inner);

/* The exposition text of the counters and of g (for tests): a new string (free()), or NULL. */
char *metrics_text(const struct metrics_gauges *g);

#endif
