/*
 * This file contains the daemon's logging: one line per event to stderr (foreground) with a level
 * and a timestamp. Who logs (docs/architecture.md, "Logging"): the daemon (src/) and its drivers
 * (drivers/, compiled into sscardd), the drivers only about what only they see (the subsystem,
 * the device, the transport), never about card data; the client libraries (lib/) and the
 * simulator's card OS never. Never pass a PIN, a key, a session key or personal data.
 */
#ifndef SSC_LOG_H
#define SSC_LOG_H

#include <stdint.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_TRACE };

/* Sets the threshold; messages above it are dropped. Thread-safe. */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Parses "error|warn|info|debug|trace"; returns 0 or SSC_EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_LVL_TRACE, __VA_ARGS__)

/* True when lvl would be printed (to skip building expensive messages such as APDU traces). */
int log_enabled(enum log_level lvl);

/*
 * A budget of log lines for one kind of event that a client can repeat at will (a connection):
 * at most max lines per window of window_ms, on the caller's clock. The caller does not print a
 * line the budget refuses, counts it instead, and logs a summary of what it counted when the
 * window ends. Set max and window_ms; zero the rest. Not thread-safe: one thread per budget.
 */
struct log_budget {
	int max;
	int64_t window_ms;
	int64_t start_ms;        /* the current window's start */
	int used;                /* lines printed in it */
	int open;                /* a window has started */
};

/*
 * Takes one line from b at now_ms: 1 when it may be printed, 0 when the window's lines are used
 * up. A window starts at the first line after the last one ended.
 */
int log_budget_take(struct log_budget *b, int64_t now_ms);

/* The end of the current window (meaningful after a take). */
int64_t log_budget_window_end(const struct log_budget *b);

#endif
