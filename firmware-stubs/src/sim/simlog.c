/*
 * This file contains sscard-sim's logging to stderr: a timestamped, tagged line per event, and the
 * --verbose APDU trace with the bodies of PIN-carrying commands masked (a PIN must never reach a log,
 * not even a simulated one: logs of test runs get pasted into issues).
 */
#include "simlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static char simlog_tag[64] = "sim";
static int simlog_is_verbose;

void simlog_init(const char *tag, int verbose)
{
	snprintf(simlog_tag, sizeof(simlog_tag), "%s", tag ? tag : "sim");
	simlog_is_verbose = verbose != 0;
}

int simlog_verbose(void)
{
	return simlog_is_verbose;
}

/* Formats the wall-clock time of day with milliseconds into buf (at least 16 bytes). */
static void simlog_stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000L);
}

void simlog(const char *fmt, ...)
{
	char stamp[32];
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	simlog_stamp(stamp, sizeof(stamp));
	/* One fprintf per line: stderr is unbuffered, and one call keeps lines whole in shared logs. */
	fprintf(stderr, "%s sscard-sim[%s]: %s\n", stamp, simlog_tag, msg);
}

/* True for a command whose body carries a PIN or a PIN block. */
static int simlog_must_mask(const uint8_t *p, size_t len)
{
	if (len < 4)
		return 0;
	if (p[1] == 0x20 || p[1] == 0x5E || p[1] == 0x24)
		return 1;
	return p[0] == 0x80 && p[1] == 0xFA && p[2] == 0x01;
}

void simlog_apdu(int is_command, const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[2 * 64 + 64];
	size_t shown = len;
	size_t pos = 0;
	int masked = 0;

	if (!simlog_is_verbose)
		return;
	if (is_command && simlog_must_mask(p, len)) {
		shown = len < 5 ? len : 5;
		masked = len > shown;
	}
	if (shown > 64)
		shown = 64;
	for (size_t i = 0; i < shown; i++) {
		line[pos++] = hex[p[i] >> 4];
		line[pos++] = hex[p[i] & 0x0F];
	}
	line[pos] = '\0';
	if (masked)
		simlog("%s %s <%zu bytes masked>", is_command ? ">" : "<", line, len - shown);
	else
		simlog("%s %s%s", is_command ? ">" : "<", line, shown < len ? "..." : "");
}
