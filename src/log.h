/*
 * This file contains the daemon's logging: one line per event to stderr (foreground) with a level,
 * a timestamp and the thread's role. Libraries do not log; programs log once. Never pass a PIN, a
 * key, a session key or personal data to these functions.
 */
#ifndef SSC_LOG_H
#define SSC_LOG_H

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

#endif
