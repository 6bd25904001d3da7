/*
 * This file contains the check of an origin's form (src/origin.h): one grammar, shared by the
 * browser bridge's allowlist and the daemon's pairing store.
 */
#include <string.h>

#include "origin.h"

static int is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static int is_v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

static int fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

int origin_check(const char *s, const char **why)
{
	const char *p, *host;
	size_t n;
	int https;
	long port = 0;

	if (!s)
		return fail(why, "no origin");
	n = strlen(s);
	if (n == 0)
		return fail(why, "empty");
	if (n >= ORIGIN_MAX)
		return fail(why, "longer than 255 characters");
	if (strncmp(s, "http://", 7) == 0) {
		https = 0;
		p = s + 7;
	} else if (strncmp(s, "https://", 8) == 0) {
		https = 1;
		p = s + 8;
	} else {
		return fail(why, "must start with http:// or https:// (lower case)");
	}
	host = p;
	if (*p == '[') {
		p++;
		while (*p && is_v6_char(*p))
			p++;
		if (*p != ']' || p == host + 1)
			return fail(why, "a bracketed IPv6 host must be hex digits and ':' in lower "
				    "case, closed by ']'");
		p++;
	} else {
		while (*p && is_host_char(*p))
			p++;
		if (p == host)
			return fail(why, "no host");
		if (host[0] == '.' || host[0] == '-' || p[-1] == '.' || p[-1] == '-')
			return fail(why, "the host must not start or end with '.' or '-'");
	}
	if (*p == ':') {
		const char *d = ++p;

		while (*p >= '0' && *p <= '9' && port <= 65535)
			port = port * 10 + (*p++ - '0');
		if (p == d || *p != '\0' || port < 1 || port > 65535 || *d == '0')
			return fail(why, "the port must be a number from 1 to 65535 without leading "
				    "zeros");
		if ((!https && port == 80) || (https && port == 443))
			return fail(why, "leave out the scheme's default port: a browser never "
				    "sends it");
	}
	if (*p != '\0') {
		if (*p == '/')
			return fail(why, "an origin has no path (not even a trailing '/')");
		if (*p >= 'A' && *p <= 'Z')
			return fail(why, "the host must be in lower case, as a browser sends it");
		return fail(why, "a host may hold only letters, digits, '-' and '.'");
	}
	return 0;
}
