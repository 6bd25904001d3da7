/*
 * This file contains the rate limit of the log's connection lines (src/connlog.h): the budget per
 * window, the counts of the connections beyond it, and their summary line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connlog.h"

static const char *const refusal_names[CONN_REFUSED_KINDS] = {
	"the daemon shutting down", "too many clients", "too many for their uid",
	"no file descriptor left", "other",
};

void connlog_init(struct connlog *l, int max, int64_t window_ms)
{
	memset(l, 0, sizeof(*l));
	l->budget.max = max;
	l->budget.window_ms = window_ms;
	l->due_ms = -1;
}

int connlog_take(struct connlog *l, int64_t now_ms, uid_t uid, enum conn_refusal refusal)
{
	int i;

	if (log_budget_take(&l->budget, now_ms))
		return 1;
	l->quiet++;
	if (refusal >= 0 && refusal < CONN_REFUSED_KINDS)
		l->refused[refusal]++;
	for (i = 0; i < l->n_uids && l->uids[i].uid != uid; i++)
		;
	if (i < l->n_uids) {
		l->uids[i].n++;
	} else if (l->n_uids < CONNLOG_UIDS) {
		l->uids[l->n_uids].uid = uid;
		l->uids[l->n_uids++].n = 1;
	} else {
		l->other_uids++;
	}
	if (l->due_ms < 0)
		l->due_ms = log_budget_window_end(&l->budget);
	return 0;
}

int64_t connlog_due(const struct connlog *l)
{
	return l->due_ms;
}

/* Appends to buf at *len, never past cap (a line cut short stays terminated). */
__attribute__((format(printf, 4, 5)))
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len + 1 >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

int connlog_summary(struct connlog *l, char *buf, size_t cap)
{
	size_t len = 0;
	long refused = 0;
	const char *sep = "";

	if (cap == 0)
		return -1;
	buf[0] = '\0';
	if (l->quiet == 0) {
		l->due_ms = -1;
		return -1;
	}
	appendf(buf, cap, &len, "connections: %ld not logged one by one (at most %d per %ld s): ",
		l->quiet, l->budget.max, (long)(l->budget.window_ms / 1000));
	for (int i = 0; i < l->n_uids; i++) {
		/* (uid_t)-1: a connection whose peer is unknown (a failed accept). */
		if (l->uids[i].uid == (uid_t)-1)
			appendf(buf, cap, &len, "%sno peer: %ld", i ? ", " : "", l->uids[i].n);
		else
			appendf(buf, cap, &len, "%suid %ld: %ld", i ? ", " : "",
				(long)l->uids[i].uid, l->uids[i].n);
	}
	if (l->other_uids)
		appendf(buf, cap, &len, ", other uids: %ld", l->other_uids);
	for (int k = 0; k < CONN_REFUSED_KINDS; k++)
		refused += l->refused[k];
	if (refused) {
		appendf(buf, cap, &len, "; %ld refused (", refused);
		for (int k = 0; k < CONN_REFUSED_KINDS; k++) {
			if (!l->refused[k])
				continue;
			appendf(buf, cap, &len, "%s%s: %ld", sep, refusal_names[k], l->refused[k]);
			sep = ", ";
		}
		appendf(buf, cap, &len, ")");
	}
	l->quiet = 0;
	memset(l->refused, 0, sizeof(l->refused));
	l->n_uids = 0;
	l->other_uids = 0;
	l->due_ms = -1;
	return refused ? 1 : 0;
}

void connlog_flush(struct connlog *l)
{
	char line[512];
	int r = connlog_summary(l, line, sizeof(line));

	if (r > 0)
		log_warn("%s", line);
	else if (r == 0)
		log_info("%s", line);
}
