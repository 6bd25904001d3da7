/*
 * This file contains the browser bridge's configuration and its checks (web/webcfg.h). The checks
 * are exact on purpose: an Origin is compared byte for byte with the allowlist (a browser always
 * sends the canonical form), a Host must name the bridge itself, and a method is allowed only by
 * its full name.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "webcfg.h"

const char *const webcfg_default_methods[] = {
	"system.info", "reader.list", "events.subscribe", "events.unsubscribe",
	"card.read_basic", "card.read_items", "card.internal_auth", "medical.credentials",
	NULL,
};

void webcfg_defaults(struct webcfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen, sizeof(cfg->listen), "%s", WEBCFG_DEFAULT_LISTEN);
	snprintf(cfg->host, sizeof(cfg->host), "%s", "127.0.0.1");
	cfg->port = WEBCFG_DEFAULT_PORT;
	cfg->demo = 1;
	snprintf(cfg->static_dir, sizeof(cfg->static_dir), "%s", SSC_WEB_STATIC_DIR);
	snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", "info");
	cfg->max_message_bytes = 65536;
	cfg->max_connections = 64;
	cfg->max_connections_per_origin = 8;
	cfg->max_pending = 16;
	cfg->max_queued_bytes = 1024 * 1024;
	cfg->request_timeout_ms = 30000;
	cfg->hello_timeout_ms = 30000;
}

int webcfg_parse_listen(const char *s, char *host, size_t hostcap, int *port, const char **why)
{
	const char *colon, *h = s;
	size_t hl;
	char buf[64], *end;
	long p;
	struct in_addr a4;
	struct in6_addr a6;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			*why = "an IPv6 address goes in brackets: [::1]:PORT";
			return -1;
		}
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "expected ADDRESS:PORT, e.g. 127.0.0.1:8732";
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(buf) || hl >= hostcap) {
		*why = "expected ADDRESS:PORT, e.g. 127.0.0.1:8732";
		return -1;
	}
	memcpy(buf, h, hl);
	buf[hl] = '\0';
	if (h == s && strchr(buf, ':')) {
		*why = "an IPv6 address goes in brackets: [::1]:PORT";
		return -1;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		if ((ntohl(a4.s_addr) >> 24) != 127) {
			*why = "only a loopback address (127.0.0.1) may be listened on: the bridge "
			       "serves this computer's own browser, never the network";
			return -1;
		}
	} else if (inet_pton(AF_INET6, buf, &a6) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6)) {
			*why = "only a loopback address ([::1]) may be listened on: the bridge serves "
			       "this computer's own browser, never the network";
			return -1;
		}
	} else {
		*why = "the address must be numeric (127.0.0.1 or [::1]), not a name";
		return -1;
	}
	memcpy(host, buf, hl + 1);
	*port = (int)p;
	return 0;
}

const struct webcfg_origin *webcfg_find_origin(const struct webcfg *cfg, const char *origin)
{
	if (!origin || !origin[0])
		return NULL;
	for (int i = 0; i < cfg->n_origins; i++)
		if (strcmp(cfg->origins[i].origin, origin) == 0)
			return &cfg->origins[i];
	return NULL;
}

int webcfg_host_ok(const struct webcfg *cfg, const char *host)
{
	char want[96];
	const char *colon;
	size_t hl;

	if (!host || !host[0])
		return 0;
	colon = strrchr(host, ':');
	if (!colon || colon == host || (host[0] == '[' && colon[-1] != ']'))
		return 0;
	snprintf(want, sizeof(want), "%d", cfg->port);
	if (strcmp(colon + 1, want) != 0)
		return 0;
	hl = (size_t)(colon - host);
	if (hl == 9 && strncasecmp(host, "localhost", 9) == 0)
		return 1;
	if (strchr(cfg->host, ':'))
		snprintf(want, sizeof(want), "[%s]", cfg->host);
	else
		snprintf(want, sizeof(want), "%s", cfg->host);
	return strlen(want) == hl && strncmp(host, want, hl) == 0;
}

int webcfg_method_allowed(const struct webcfg_origin *o, const char *method)
{
	if (!o || !method || strcmp(method, "bridge.bind") == 0)
		return 0;
	for (int i = 0; i < o->n_methods; i++)
		if (strcmp(o->methods[i], method) == 0)
			return 1;
	return 0;
}

const char *webcfg_log_text(const char *in, char *out, size_t cap)
{
	size_t i;

	if (cap == 0)
		return out;
	for (i = 0; in && in[i] && i + 1 < cap; i++)
		out[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/* ---- the file ------------------------------------------------------------------------------ */

struct load_ctx {
	struct webcfg *cfg;
	char *err;
	size_t errlen;
	int failed;
	const char *path;
	FILE *f;
	int line;                /* the line inih was handed last */
};

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int add_method(struct webcfg_origin *o, const char *m)
{
	for (int i = 0; i < o->n_methods; i++)
		if (strcmp(o->methods[i], m) == 0)
			return 0;
	if (o->n_methods >= WEBCFG_MAX_METHODS || strlen(m) >= WEBCFG_METHOD_MAX)
		return -1;
	snprintf(o->methods[o->n_methods++], WEBCFG_METHOD_MAX, "%s", m);
	return 0;
}

static void set_default_methods(struct webcfg_origin *o)
{
	for (int i = 0; webcfg_default_methods[i]; i++)
		(void)add_method(o, webcfg_default_methods[i]);
}

static struct webcfg_origin *origin_add(struct webcfg *cfg, const char *origin)
{
	struct webcfg_origin *o = (struct webcfg_origin *)webcfg_find_origin(cfg, origin);

	if (o)
		return o;
	if (cfg->n_origins >= WEBCFG_MAX_ORIGINS)
		return NULL;
	o = &cfg->origins[cfg->n_origins++];
	memset(o, 0, sizeof(*o));
	snprintf(o->origin, sizeof(o->origin), "%s", origin);
	set_default_methods(o);
	return o;
}

/* A method name as the daemon's: lower-case letters, digits, '.' and '_'. */
static int method_name_ok(const char *m)
{
	if (!*m || strlen(m) >= WEBCFG_METHOD_MAX)
		return 0;
	for (const char *p = m; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'))
			return 0;
	return strcmp(m, "bridge.bind") != 0;
}

static int fail(struct load_ctx *lc, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct load_ctx *lc, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (lc->failed)
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(lc->err, lc->errlen, "%s:%d: %s", lc->path, line, msg);
	lc->failed = 1;
	return 0;
}

static int parse_int(const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int on_web_key(struct load_ctx *lc, int line, const char *key, char *v)
{
	struct webcfg *cfg = lc->cfg;
	const char *why;
	long n;

	if (strcmp(key, "listen") == 0) {
		if (webcfg_parse_listen(v, cfg->host, sizeof(cfg->host), &cfg->port, &why) != 0)
			return fail(lc, line, "[web] listen = %s: %s", v, why);
		snprintf(cfg->listen, sizeof(cfg->listen), "%s", v);
	} else if (strcmp(key, "origins") == 0) {
		for (char *save = NULL, *t = strtok_r(v, ",", &save); t;
		     t = strtok_r(NULL, ",", &save)) {
			t = trim(t);
			if (!*t)
				continue;
			if (origin_check(t, &why) != 0)
				return fail(lc, line, "[web] origins: \"%s\": %s", t, why);
			if (!origin_add(cfg, t))
				return fail(lc, line, "[web] origins: more than %s origins%s", "32", "");
		}
	} else if (strcmp(key, "demo") == 0) {
		if (strcmp(v, "yes") == 0)
			cfg->demo = 1;
		else if (strcmp(v, "no") == 0)
			cfg->demo = 0;
		else
			return fail(lc, line, "[web] demo = %s: yes or no%s", v, "");
	} else if (strcmp(key, "static_dir") == 0 || strcmp(key, "socket") == 0) {
		char *dst = key[1] == 't' ? cfg->static_dir : cfg->socket_path;

		if (v[0] != '/' || strlen(v) >= WEBCFG_PATH_MAX)
			return fail(lc, line, "[web] %s = %s: an absolute path", key, v);
		snprintf(dst, WEBCFG_PATH_MAX, "%s", v);
	} else if (strcmp(key, "log_level") == 0) {
		if (strcmp(v, "error") && strcmp(v, "warn") && strcmp(v, "info") &&
		    strcmp(v, "debug") && strcmp(v, "trace"))
			return fail(lc, line, "[web] log_level = %s: error, warn, info, debug or "
				    "trace%s", v, "");
		snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", v);
	} else if (strcmp(key, "max_message_bytes") == 0) {
		if (parse_int(v, 1024, 1024 * 1024, &n))
			return fail(lc, line, "[web] %s = %s: 1024 to 1048576", key, v);
		cfg->max_message_bytes = (size_t)n;
	} else if (strcmp(key, "max_connections") == 0) {
		if (parse_int(v, 1, 1024, &n))
			return fail(lc, line, "[web] %s = %s: 1 to 1024", key, v);
		cfg->max_connections = (int)n;
	} else if (strcmp(key, "max_connections_per_origin") == 0) {
		if (parse_int(v, 1, 1024, &n))
			return fail(lc, line, "[web] %s = %s: 1 to 1024", key, v);
		cfg->max_connections_per_origin = (int)n;
	} else if (strcmp(key, "max_pending") == 0) {
		if (parse_int(v, 1, 64, &n))
			return fail(lc, line, "[web] %s = %s: 1 to 64", key, v);
		cfg->max_pending = (int)n;
	} else if (strcmp(key, "max_queued_bytes") == 0) {
		if (parse_int(v, 65536, 64L * 1024 * 1024, &n))
			return fail(lc, line, "[web] %s = %s: 65536 to 67108864", key, v);
		cfg->max_queued_bytes = (size_t)n;
	} else if (strcmp(key, "request_timeout_ms") == 0 || strcmp(key, "hello_timeout_ms") == 0) {
		if (parse_int(v, 100, 600000, &n))
			return fail(lc, line, "[web] %s = %s: 100 to 600000", key, v);
		*(key[0] == 'r' ? &cfg->request_timeout_ms : &cfg->hello_timeout_ms) = (int)n;
	} else {
		return fail(lc, line, "[web]: unknown key \"%s\"%s", key, "");
	}
	return 1;
}

static int on_origin_key(struct load_ctx *lc, int line, const char *section, const char *key,
			 char *v)
{
	const char *origin = section + 7;   /* after "origin " */
	struct webcfg_origin *o;

	if (strcmp(key, "methods") != 0)
		return fail(lc, line, "[%s]: unknown key \"%s\" (only methods)", section, key);
	o = (struct webcfg_origin *)webcfg_find_origin(lc->cfg, origin);
	if (!o && lc->cfg->demo && strncmp(origin, "http://127.0.0.1:", 17) == 0)
		o = origin_add(lc->cfg, origin);   /* the demo page's own: allowed by default */
	if (!o)
		return fail(lc, line, "[%s]: %s is not in [web] origins (list it there first)",
			    section, origin);
	o->n_methods = 0;
	o->has_policy = 1;
	for (char *save = NULL, *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		t = trim(t);
		if (!*t)
			continue;
		if (strcmp(t, "default") == 0) {
			set_default_methods(o);
			continue;
		}
		if (!method_name_ok(t))
			return fail(lc, line, "[%s] methods: \"%s\" is not a method name", section, t);
		if (add_method(o, t) != 0)
			return fail(lc, line, "[%s] methods: more than %s methods", section, "32");
	}
	return 1;
}

static int on_line(void *user, const char *section, const char *key, const char *value)
{
	struct load_ctx *lc = user;
	int line = lc->line;
	char v[4096];

	if (lc->failed)
		return 1;
	if (!key)
		return 1;   /* a section header alone */
	if (strlen(value) >= sizeof(v))
		return fail(lc, line, "%s: value too long%s", key, "");
	snprintf(v, sizeof(v), "%s", value);
	if (strcmp(section, "web") == 0)
		return on_web_key(lc, line, key, trim(v));
	if (strncmp(section, "origin ", 7) == 0)
		return on_origin_key(lc, line, section, key, trim(v));
	return fail(lc, line, "unknown section [%s]%s", section, "");
}

/* inih's line reader, counting lines for the messages. */
static char *read_line(char *buf, int cap, void *arg)
{
	struct load_ctx *lc = arg;
	char *r = fgets(buf, cap, lc->f);

	if (r)
		lc->line++;
	return r;
}

int webcfg_load(struct webcfg *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx lc = { .cfg = cfg, .err = err, .errlen = errlen, .path = path };
	FILE *f = fopen(path, "re");
	int r;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	lc.f = f;
	r = ini_parse_stream(read_line, &lc, on_line, &lc);
	fclose(f);
	if (lc.failed)
		return -1;
	if (r != 0) {
		snprintf(err, errlen, "%s:%d: not a key = value line or a [section]", path, r);
		return -1;
	}
	return 0;
}

int webcfg_finish(struct webcfg *cfg, char *err, size_t errlen)
{
	char own[ORIGIN_MAX];
	struct webcfg_origin *o;

	if (!cfg->demo)
		return 0;
	if (strchr(cfg->host, ':'))
		snprintf(own, sizeof(own), "http://[%s]:%d", cfg->host, cfg->port);
	else
		snprintf(own, sizeof(own), "http://%s:%d", cfg->host, cfg->port);
	o = (struct webcfg_origin *)webcfg_find_origin(cfg, own);
	if (o && o->has_policy)
		return 0;
	o = origin_add(cfg, own);
	if (!o) {
		snprintf(err, errlen, "[web] origins: no room for the demo page's origin %s", own);
		return -1;
	}
	/* The demo verifies the holder (docs/web.md); it writes nothing. */
	(void)add_method(o, "card.verify_pin");
	return 0;
}
