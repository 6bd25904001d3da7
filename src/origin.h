/*
 * This file contains the one definition of a web origin as sscard compares them: the exact,
 * canonical text a browser sends in its Origin header (scheme://host[:port], RFC 6454), checked
 * for form only. The browser bridge (web/) and the daemon's pairing store (src/webpair.c) both
 * use it, so that an origin the operator pairs is spelled as the bridge's allowlist spells it.
 */
#ifndef SSC_ORIGIN_H
#define SSC_ORIGIN_H

#include <stddef.h>

#define ORIGIN_MAX 256           /* an origin's text with its NUL */

/*
 * Whether s is an origin in the canonical form a browser sends: "http" or "https", "://", a host
 * of lower-case letters, digits, '-' and '.' (or an IPv6 literal in brackets: hex digits, ':'
 * and '.'), then optionally ':' and a port 1-65535 without leading zeros, and nothing else (no
 * path, no trailing '/', no user, no upper case). The scheme's default port (http:80,
 * https:443) is refused: a browser never sends it, so such an entry would never match.
 * Returns 0, or -1 with a reason (a constant string) in *why when why is not NULL. Pure.
 */
int origin_check(const char *s, const char **why);

#endif
