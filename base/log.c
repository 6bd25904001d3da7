/*
 * This file contains the line logger of base/log.h: stderr, one write per line so that
 * lines from worker threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sscard/error.h"

static volatile int log_threshold = LOG_LVL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

void log_set_level(enum log_level lvl)
{
	__atomic_store_n(&log_threshold, (int)lvl, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
	return (enum log_level)__atomic_load_n(&log_threshold, __ATOMIC_RELAXED);
}

int log_enabled(enum log_level lvl)
{
	return (int)lvl <= __atomic_load_n(&log_threshold, __ATOMIC_RELAXED);
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return SSC_EINVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;
	va_list ap;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000L,
		     level_names[lvl]);
	if (r > 0)
		n += (size_t)r;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

int log_budget_take(struct log_budget *b, int64_t now_ms)
{
	if (!b->open || now_ms - b->start_ms >= b->window_ms || now_ms < b->start_ms) {
		b->open = 1;
		b->start_ms = now_ms;
		b->used = 0;
	}
	if (b->used >= b->max)
		return 0;
	b->used++;
	return 1;
}

int64_t log_budget_window_end(const struct log_budget *b)
{
	return b->start_ms + b->window_ms;
}
