/*
 * This file contains the daemon's configuration loader (src/config.h): the defaults, and the INI
 * file read through inih with one table of keys, so that every key is parsed, range-checked and
 * documented in one place. Errors name the file, the line and the key; secrets are wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ini.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "hex.h"
#include "sscard/error.h"

/* A config file is small; refusing a large one keeps a wrong --config path from eating memory. */
#define CONFIG_FILE_MAX (1024 * 1024)
/*
 * inih reads lines of at most INI_MAX_LINE - 2 characters (200 in Debian's build) and would
 * silently split a longer one; we refuse such lines with their number instead.
 */
#define CONFIG_LINE_MAX 198

enum key_kind {
	KIND_STRING,    /* char[size] */
	KIND_INT,       /* int in [min, max] */
	KIND_SIZE,      /* size_t in [min, max] */
	KIND_MODE,      /* unsigned, octal, at most 0777 */
	KIND_BOOL,      /* int 0/1 from yes/no/true/false/on/off/1/0 */
	KIND_LOGLEVEL,  /* char[size], one of the log levels */
	KIND_READAUTH,  /* enum config_read_auth */
	KIND_KEY,       /* struct config_key from "kid/usage/index" (hex) */
	KIND_SECRET16,  /* the 16-byte 卡识别码 MAC key, 32 hex digits */
	KIND_AID,       /* psam_aid: 5..16 bytes of hex */
	KIND_PINS,      /* initial_pins: 0..CONFIG_MAX_INITIAL_PINS PINs of 4..12 digits */
	KIND_PIN_OLD,   /* initial_pin (deprecated): one PIN, which becomes the whole list */
	KIND_PREFER,    /* enum config_hsm_prefer from psam|hsm */
};

struct key_desc {
	const char *section;
	const char *name;
	enum key_kind kind;
	size_t offset;
	size_t size;        /* KIND_STRING / KIND_LOGLEVEL: buffer size */
	long long min, max; /* KIND_INT / KIND_SIZE */
};

#define OFF(field) offsetof(struct config, field)
#define FSIZE(field) sizeof(((struct config *)0)->field)

static const struct key_desc key_table[] = {
	{ "daemon", "socket_path", KIND_STRING, OFF(socket_path), FSIZE(socket_path), 0, 0 },
	{ "daemon", "socket_group", KIND_STRING, OFF(socket_group), FSIZE(socket_group), 0, 0 },
	{ "daemon", "socket_mode", KIND_MODE, OFF(socket_mode), 0, 0, 0 },
	{ "daemon", "log_level", KIND_LOGLEVEL, OFF(log_level), FSIZE(log_level), 0, 0 },
	{ "daemon", "user", KIND_STRING, OFF(user), FSIZE(user), 0, 0 },

	{ "limits", "max_clients", KIND_INT, OFF(max_clients), 0, 1, 65536 },
	{ "limits", "max_clients_per_uid", KIND_INT, OFF(max_clients_per_uid), 0, 1, 65536 },
	{ "limits", "max_request_bytes", KIND_SIZE, OFF(max_request_bytes), 0, 1024, 16 * 1024 * 1024 },
	{ "limits", "max_json_depth", KIND_INT, OFF(max_json_depth), 0, 2, 512 },
	{ "limits", "max_inflight_per_client", KIND_INT, OFF(max_inflight_per_client), 0, 1, 4096 },
	{ "limits", "max_queued_per_reader", KIND_INT, OFF(max_queued_per_reader), 0, 0, 1048576 },
	{ "limits", "idle_timeout_ms", KIND_INT, OFF(idle_timeout_ms), 0, 1000, 86400000 },

	{ "timeouts", "op_timeout_ms", KIND_INT, OFF(op_timeout_ms), 0, 100, 600000 },
	{ "timeouts", "apdu_timeout_ms", KIND_INT, OFF(apdu_timeout_ms), 0, 50, 600000 },
	{ "timeouts", "connect_timeout_ms", KIND_INT, OFF(connect_timeout_ms), 0, 0, 600000 },
	{ "timeouts", "psam_timeout_ms", KIND_INT, OFF(psam_timeout_ms), 0, 50, 600000 },
	{ "timeouts", "card_hold_ms", KIND_INT, OFF(card_hold_ms), 0, 0, 60000 },
	{ "timeouts", "hsm_session_ms", KIND_INT, OFF(hsm_session_ms), 0, 1000, 600000 },

	{ "drivers", "pcsc", KIND_BOOL, OFF(driver_pcsc), 0, 0, 0 },
	{ "drivers", "usb", KIND_BOOL, OFF(driver_usb), 0, 0, 0 },
	{ "drivers", "usb_allow", KIND_STRING, OFF(usb_allow), FSIZE(usb_allow), 0, 0 },
	{ "drivers", "poll_interval_ms", KIND_INT, OFF(poll_interval_ms), 0, 50, 60000 },

	{ "card", "read_auth", KIND_READAUTH, OFF(read_auth), 0, 0, 0 },
	{ "card", "verify_card_id_mac", KIND_BOOL, OFF(verify_card_id_mac), 0, 0, 0 },
	{ "card", "card_id_mac_key", KIND_SECRET16, OFF(card_id_mac_key), 0, 0, 0 },
	{ "card", "pin_min_len", KIND_INT, OFF(pin_min_len), 0, 4, 12 },
	{ "card", "pin_max_len", KIND_INT, OFF(pin_max_len), 0, 4, 12 },
	{ "card", "require_internal_auth", KIND_BOOL, OFF(require_internal_auth), 0, 0, 0 },
	{ "card", "prefetch", KIND_BOOL, OFF(prefetch), 0, 0, 0 },
	{ "card", "prefetch_shared", KIND_BOOL, OFF(prefetch_shared), 0, 0, 0 },
	{ "card", "initial_pins", KIND_PINS, OFF(initial_pins), 0, 0, 0 },
	{ "card", "initial_pin", KIND_PIN_OLD, OFF(initial_pins), 0, 0, 0 },
	{ "card", "refuse_initial_pin", KIND_BOOL, OFF(refuse_initial_pin), 0, 0, 0 },

	{ "keys", "write_ssse", KIND_KEY, OFF(key_write_ssse), 0, 0, 0 },
	{ "keys", "write_ef0d", KIND_KEY, OFF(key_write_ef0d), 0, 0, 0 },
	{ "keys", "read_auth", KIND_KEY, OFF(key_read_auth), 0, 0, 0 },
	{ "keys", "internal", KIND_KEY, OFF(key_internal), 0, 0, 0 },
	{ "keys", "stk", KIND_KEY, OFF(key_stk), 0, 0, 0 },
	{ "keys", "pin_reload", KIND_KEY, OFF(key_pin_reload), 0, 0, 0 },
	{ "keys", "pin_unblock", KIND_KEY, OFF(key_pin_unblock), 0, 0, 0 },
	{ "keys", "psam_aid", KIND_AID, OFF(psam_aid), 0, 0, 0 },

	{ "journal", "path", KIND_STRING, OFF(journal_path), FSIZE(journal_path), 0, 0 },
	{ "journal", "key_path", KIND_STRING, OFF(journal_key_path), FSIZE(journal_key_path), 0, 0 },
	{ "journal", "retention_days", KIND_INT, OFF(journal_retention_days), 0, 0, 36500 },
	{ "journal", "reopen_interval_ms", KIND_INT, OFF(journal_reopen_ms), 0, 1000, 3600000 },
	{ "journal", "head_interval_ms", KIND_INT, OFF(journal_head_ms), 0, 1000, 3600000 },
	{ "journal", "audit_batch_ms", KIND_INT, OFF(journal_audit_batch_ms), 0, 0, 1000 },

	{ "metrics", "listen", KIND_STRING, OFF(metrics_listen), FSIZE(metrics_listen), 0, 0 },

	{ "audit", "syslog", KIND_BOOL, OFF(audit_syslog), 0, 0, 0 },
	{ "audit", "syslog_socket", KIND_STRING, OFF(audit_syslog_socket),
	  FSIZE(audit_syslog_socket), 0, 0 },

	{ "hsm", "url", KIND_STRING, OFF(hsm_url), FSIZE(hsm_url), 0, 0 },
	{ "hsm", "ca_file", KIND_STRING, OFF(hsm_ca_file), FSIZE(hsm_ca_file), 0, 0 },
	{ "hsm", "cert_file", KIND_STRING, OFF(hsm_cert_file), FSIZE(hsm_cert_file), 0, 0 },
	{ "hsm", "key_file", KIND_STRING, OFF(hsm_key_file), FSIZE(hsm_key_file), 0, 0 },
	{ "hsm", "timeout_ms", KIND_INT, OFF(hsm_timeout_ms), 0, 100, 600000 },
	{ "hsm", "prefer", KIND_PREFER, OFF(hsm_prefer), 0, 0, 0 },
	{ "receipts", "key_file", KIND_STRING, OFF(receipts_key_file), FSIZE(receipts_key_file),
	  0, 0 },
	{ "web", "bridge_user", KIND_STRING, OFF(web_bridge_user), FSIZE(web_bridge_user), 0, 0 },
	{ "web", "admin_group", KIND_STRING, OFF(web_admin_group), FSIZE(web_admin_group), 0, 0 },
	{ "web", "pairing_code_ttl_s", KIND_INT, OFF(web_code_ttl_s), 0, 5, 3600 },
};

#define N_KEYS (sizeof(key_table) / sizeof(key_table[0]))

static const char *const known_sections[] = {
	"daemon", "limits", "timeouts", "drivers", "readers", "card", "keys", "journal", "metrics",
	"audit", "hsm", "web", "receipts",
};

/* State shared by the line reader and the inih handler during one config_load(). */
struct parse_ctx {
	struct config *cfg;
	const char *path;
	/* The file in memory and the reader's position in it. */
	const char *buf;
	size_t len, pos;
	int line;                   /* number of the line last handed to inih */
	/* First error found (inih keeps parsing after an error; we keep the first). */
	int err_line;
	char err[256];
	int key_line[N_KEYS];       /* where each key was set, 0 = not in this file */
	int role_line[CONFIG_MAX_ROLES];
	int n_roles_before;         /* roles that came from an earlier load */
};

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", "/run/sscard/sscardd.sock");
	snprintf(cfg->socket_group, sizeof(cfg->socket_group), "%s", "sscard");
	cfg->socket_mode = 0660;
	snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", "info");

	cfg->max_clients = 1024;
	cfg->max_clients_per_uid = 256;
	cfg->max_request_bytes = 65536;
	cfg->max_json_depth = 16;
	cfg->max_inflight_per_client = 16;
	cfg->idle_timeout_ms = 600000;

	cfg->op_timeout_ms = 10000;
	cfg->apdu_timeout_ms = 5000;
	cfg->connect_timeout_ms = 2000;
	cfg->psam_timeout_ms = 5000;
	cfg->card_hold_ms = 1000;
	cfg->hsm_session_ms = 60000;

	cfg->driver_pcsc = 1;
	cfg->driver_usb = 0;
	cfg->usb_allow[0] = '\0';
	cfg->poll_interval_ms = 500;

	cfg->n_roles = 0;

	cfg->read_auth = READ_AUTH_AUTO;
	cfg->verify_card_id_mac = 0;
	cfg->card_id_mac_key_set = 0;
	cfg->pin_min_len = 4;
	cfg->pin_max_len = 12;
	cfg->require_internal_auth = 0;
	cfg->prefetch = 1;
	cfg->prefetch_shared = 1;
	snprintf(cfg->initial_pins[0], sizeof(cfg->initial_pins[0]), "%s", "123456");
	snprintf(cfg->initial_pins[1], sizeof(cfg->initial_pins[1]), "%s", "888888");
	cfg->n_initial_pins = 2;
	cfg->refuse_initial_pin = 0;

	cfg->key_write_ssse = (struct config_key){ 0x04, 0x48, 0x12 };
	cfg->key_write_ef0d = (struct config_key){ 0x0D, 0x48, 0x13 };
	cfg->key_read_auth = (struct config_key){ 0x0A, 0x48, 0x1A };
	cfg->key_internal = (struct config_key){ 0x00, 0x47, 0x11 };
	cfg->key_stk = (struct config_key){ 0x05, 0x46, 0x15 };
	cfg->key_pin_reload = (struct config_key){ 0x06, 0x44, 0x16 };
	cfg->key_pin_unblock = (struct config_key){ 0x07, 0x43, 0x17 };
	memcpy(cfg->psam_aid, "\xD1\x56\x00\x00\x05\x90", 6);
	cfg->psam_aid_len = 6;

	snprintf(cfg->journal_path, sizeof(cfg->journal_path), "%s", "/var/lib/sscard/journal.db");
	cfg->journal_key_path[0] = '\0';
	cfg->journal_retention_days = 365;
	cfg->journal_reopen_ms = 30000;
	cfg->journal_head_ms = 60000;
	cfg->journal_audit_batch_ms = 20;

	cfg->metrics_listen[0] = '\0';
	cfg->audit_syslog = 0;
	cfg->web_code_ttl_s = 300;
	snprintf(cfg->audit_syslog_socket, sizeof(cfg->audit_syslog_socket), "%s", "/dev/log");

	cfg->hsm_url[0] = '\0';
	cfg->hsm_ca_file[0] = '\0';
	cfg->hsm_cert_file[0] = '\0';
	cfg->hsm_key_file[0] = '\0';
	cfg->hsm_timeout_ms = 3000;
	cfg->hsm_prefer = HSM_PREFER_PSAM;
}

int config_key_at(size_t i, const char **section, const char **name)
{
	if (i < N_KEYS) {
		*section = key_table[i].section;
		*name = key_table[i].name;
		return 1;
	}
	if (i == N_KEYS) {
		*section = "readers";
		*name = "role.<reader>";
		return 1;
	}
	return 0;
}

int config_queued_per_reader(const struct config *cfg)
{
	long long n = cfg->max_queued_per_reader;

	if (n <= 0)
		n = (long long)cfg->max_clients * cfg->max_inflight_per_client;
	if (n < 1)
		n = 1;
	return n > 1048576 ? 1048576 : (int)n;
}

void config_wipe(struct config *cfg)
{
	if (!cfg)
		return;
	OPENSSL_cleanse(cfg->card_id_mac_key, sizeof(cfg->card_id_mac_key));
	cfg->card_id_mac_key_set = 0;
}

/* Records the first error, at the current line. Returns 0 (inih's "error"). */
static int parse_fail(struct parse_ctx *pc, const char *section, const char *name,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int parse_fail(struct parse_ctx *pc, const char *section, const char *name,
		      const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (pc->err_line)
		return 0;
	pc->err_line = pc->line;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (name)
		snprintf(pc->err, sizeof(pc->err), "%s:%d: [%s] %s: %s", pc->path, pc->line,
			 section, name, msg);
	else
		snprintf(pc->err, sizeof(pc->err), "%s:%d: %s", pc->path, pc->line, msg);
	return 0;
}

/* Decodes an even-length hex string of min..max bytes. Returns the byte count or -1. */
static int parse_hex(const char *s, uint8_t *out, size_t min, size_t max)
{
	int n = hex_decode(s, strlen(s), out, max);

	return n < 0 || (size_t)n < min ? -1 : n;
}

/* "04/48/12": three bytes, each one or two hex digits. */
static int parse_key(const char *s, struct config_key *k)
{
	uint8_t b[3];
	const char *p = s;

	for (int i = 0; i < 3; i++) {
		int v = 0, digits = 0, d;

		while ((d = hex_digit(*p)) >= 0 && digits < 3) {
			v = v * 16 + d;
			digits++;
			p++;
		}
		if (digits == 0 || digits > 2)
			return -1;
		b[i] = (uint8_t)v;
		if (i < 2) {
			if (*p != '/')
				return -1;
			p++;
		}
	}
	if (*p != '\0')
		return -1;
	k->card_kid = b[0];
	k->usage = b[1];
	k->index = b[2];
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* A decimal integer, the whole string, within [min, max]. */
static int parse_llong(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (*s == '\0' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A list of PINs, separated by blanks or commas: each 4 to 12 digits, at most
 * CONFIG_MAX_INITIAL_PINS, no repeats; an empty list is allowed. Replaces cfg's list only when the
 * whole value is good. Never echoes a value (they are PINs).
 */
static int parse_pins(struct parse_ctx *pc, const char *section, const char *name,
		      const char *value)
{
	char pins[CONFIG_MAX_INITIAL_PINS][CONFIG_PIN_TEXT];
	const char *p = value;
	int n = 0, rc = 1;

	memset(pins, 0, sizeof(pins));   /* the list is compared whole, padding included */
	while (*p && rc) {
		size_t len;

		if (*p == ' ' || *p == '\t' || *p == ',') {
			p++;
			continue;
		}
		len = strspn(p, "0123456789");
		if (len == 0 || (p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != ','))
			rc = parse_fail(pc, section, name, "expected PINs of digits, separated by "
					"blanks or commas");
		else if (len < 4 || len >= CONFIG_PIN_TEXT)
			rc = parse_fail(pc, section, name, "PIN %d is not 4 to 12 digits", n + 1);
		else if (n == CONFIG_MAX_INITIAL_PINS)
			rc = parse_fail(pc, section, name, "more than %d PINs",
					CONFIG_MAX_INITIAL_PINS);
		if (!rc)
			break;
		memcpy(pins[n], p, len);
		pins[n][len] = '\0';
		for (int i = 0; i < n && rc; i++)
			if (strcmp(pins[i], pins[n]) == 0)
				rc = parse_fail(pc, section, name, "PIN %d repeats PIN %d", n + 1,
						i + 1);
		n++;
		p += len;
	}
	if (rc) {
		memcpy(pc->cfg->initial_pins, pins, sizeof(pins));
		pc->cfg->n_initial_pins = n;
	}
	OPENSSL_cleanse(pins, sizeof(pins));
	return rc;
}

static int set_value(struct parse_ctx *pc, const struct key_desc *kd, const char *section,
		     const char *value)
{
	char *base = (char *)pc->cfg;
	long long v;

	switch (kd->kind) {
	case KIND_STRING:
		if (strlen(value) >= kd->size)
			return parse_fail(pc, section, kd->name, "value longer than %zu characters",
					  kd->size - 1);
		memcpy(base + kd->offset, value, strlen(value) + 1);
		return 1;
	case KIND_INT:
	case KIND_SIZE:
		if (parse_llong(value, kd->min, kd->max, &v) != 0)
			return parse_fail(pc, section, kd->name, "expected an integer in %lld..%lld",
					  kd->min, kd->max);
		if (kd->kind == KIND_INT)
			*(int *)(void *)(base + kd->offset) = (int)v;
		else
			*(size_t *)(void *)(base + kd->offset) = (size_t)v;
		return 1;
	case KIND_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(value, &end, 8);
		if (*value < '0' || *value > '7' || errno != 0 || *end != '\0' || m > 0777)
			return parse_fail(pc, section, kd->name,
					  "expected an octal mode such as 0660");
		*(unsigned *)(void *)(base + kd->offset) = (unsigned)m;
		return 1;
	}
	case KIND_BOOL: {
		int b;

		if (parse_bool(value, &b) != 0)
			return parse_fail(pc, section, kd->name, "expected yes or no");
		*(int *)(void *)(base + kd->offset) = b;
		return 1;
	}
	case KIND_LOGLEVEL:
		if (strcmp(value, "error") != 0 && strcmp(value, "warn") != 0 &&
		    strcmp(value, "info") != 0 && strcmp(value, "debug") != 0 &&
		    strcmp(value, "trace") != 0)
			return parse_fail(pc, section, kd->name,
					  "expected error, warn, info, debug or trace");
		memcpy(base + kd->offset, value, strlen(value) + 1);
		return 1;
	case KIND_READAUTH:
		if (strcmp(value, "auto") == 0)
			pc->cfg->read_auth = READ_AUTH_AUTO;
		else if (strcmp(value, "always") == 0)
			pc->cfg->read_auth = READ_AUTH_ALWAYS;
		else if (strcmp(value, "never") == 0)
			pc->cfg->read_auth = READ_AUTH_NEVER;
		else
			return parse_fail(pc, section, kd->name,
					  "expected auto, always or never");
		return 1;
	case KIND_KEY:
		if (parse_key(value, (struct config_key *)(void *)(base + kd->offset)) != 0)
			return parse_fail(pc, section, kd->name,
					  "expected card-key/usage/index in hex, e.g. 04/48/12");
		return 1;
	case KIND_SECRET16: {
		uint8_t key[16];
		int r = parse_hex(value, key, 16, 16);

		if (r != 16) {
			OPENSSL_cleanse(key, sizeof(key));
			/* Never echo the value: it is a secret. */
			return parse_fail(pc, section, kd->name, "expected 32 hex digits");
		}
		memcpy(pc->cfg->card_id_mac_key, key, 16);
		pc->cfg->card_id_mac_key_set = 1;
		OPENSSL_cleanse(key, sizeof(key));
		return 1;
	}
	case KIND_PINS:
		return parse_pins(pc, section, kd->name, value);
	case KIND_PIN_OLD:
		/* One PIN, the whole list, as before initial_pins (kept so that old files load). */
		if (strlen(value) < 4 || strlen(value) >= CONFIG_PIN_TEXT ||
		    strspn(value, "0123456789") != strlen(value))
			return parse_fail(pc, section, kd->name, "must be 4 to 12 digits");
		if (!parse_pins(pc, section, kd->name, value))
			return 0;
		snprintf(pc->cfg->notice, sizeof(pc->cfg->notice), "%s:%d: [card] initial_pin is "
			 "deprecated: it is read as initial_pins with that one PIN, in place of the "
			 "default list of two; write initial_pins instead", pc->path, pc->line);
		return 1;
	case KIND_PREFER:
		if (strcmp(value, "psam") == 0)
			pc->cfg->hsm_prefer = HSM_PREFER_PSAM;
		else if (strcmp(value, "hsm") == 0)
			pc->cfg->hsm_prefer = HSM_PREFER_HSM;
		else
			return parse_fail(pc, section, kd->name, "expected psam or hsm");
		return 1;
	case KIND_AID: {
		uint8_t aid[16];
		int r = parse_hex(value, aid, 5, 16);

		if (r < 0)
			return parse_fail(pc, section, kd->name,
					  "expected 5 to 16 bytes of hex, e.g. D15600000590");
		memcpy(pc->cfg->psam_aid, aid, (size_t)r);
		pc->cfg->psam_aid_len = (size_t)r;
		return 1;
	}
	}
	return parse_fail(pc, section, kd->name, "internal error");
}

/* [readers] role.<reader> = user|psam|ignore */
static int set_role(struct parse_ctx *pc, const char *name, const char *value)
{
	struct config *cfg = pc->cfg;
	const char *reader = name + 5;
	int slot = -1;

	if (*reader == '\0')
		return parse_fail(pc, "readers", name, "the key needs a reader id or name after "
				  "\"role.\"");
	if (strlen(reader) >= sizeof(cfg->roles[0].reader))
		return parse_fail(pc, "readers", name, "reader name too long");
	if (strcmp(value, "user") != 0 && strcmp(value, "psam") != 0 &&
	    strcmp(value, "ignore") != 0)
		return parse_fail(pc, "readers", name, "expected user, psam or ignore");
	for (int i = 0; i < cfg->n_roles; i++) {
		if (strcmp(cfg->roles[i].reader, reader) != 0)
			continue;
		if (i >= pc->n_roles_before)
			return parse_fail(pc, "readers", name, "set twice (first at line %d)",
					  pc->role_line[i]);
		slot = i;   /* an earlier file set it: this one overrides */
	}
	if (slot < 0) {
		if (cfg->n_roles >= CONFIG_MAX_ROLES)
			return parse_fail(pc, "readers", name, "more than %d reader roles",
					  CONFIG_MAX_ROLES);
		slot = cfg->n_roles++;
	}
	memcpy(cfg->roles[slot].reader, reader, strlen(reader) + 1);
	memcpy(cfg->roles[slot].role, value, strlen(value) + 1);
	pc->role_line[slot] = pc->line;
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *pc = user;

	if (pc->err_line)
		return 1;   /* keep the first error only */
	if (*section == '\0')
		return parse_fail(pc, NULL, NULL, "key \"%s\" outside any [section]", name);
	if (strcmp(section, "readers") == 0) {
		if (strncmp(name, "role.", 5) == 0)
			return set_role(pc, name, value);
		return parse_fail(pc, section, name, "unknown key (expected role.<reader>)");
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_desc *kd = &key_table[i];

		if (strcmp(kd->section, section) != 0 || strcmp(kd->name, name) != 0)
			continue;
		if (pc->key_line[i])
			return parse_fail(pc, section, name, "set twice (first at line %d)",
					  pc->key_line[i]);
		pc->key_line[i] = pc->line;
		return set_value(pc, kd, section, value);
	}
	for (size_t i = 0; i < sizeof(known_sections) / sizeof(known_sections[0]); i++)
		if (strcmp(section, known_sections[i]) == 0)
			return parse_fail(pc, section, name, "unknown key");
	return parse_fail(pc, section, name, "unknown section");
}

/*
 * inih's line source (fgets contract). Besides counting lines, so that errors name the right one,
 * it refuses over-long lines, checks section names (inih would not call us for an empty unknown
 * section) and strips leading blanks so that an indented key is a key, not a continuation line.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *pc = stream;
	const char *p, *nl, *end;
	size_t n;

	if (pc->pos >= pc->len || pc->err_line)
		return NULL;
	p = pc->buf + pc->pos;
	nl = memchr(p, '\n', pc->len - pc->pos);
	end = nl ? nl : pc->buf + pc->len;
	pc->pos = (size_t)(end - pc->buf) + (nl ? 1 : 0);
	pc->line++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	n = (size_t)(end - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (memchr(p, '\0', n)) {
		parse_fail(pc, NULL, NULL, "NUL byte in the line");
		return NULL;
	}
	if (n > CONFIG_LINE_MAX || n + 2 > (size_t)num) {
		parse_fail(pc, NULL, NULL, "line longer than 198 characters");
		return NULL;
	}
	if (n > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', n);
		size_t sl;
		int known = 0;

		if (close) {
			sl = (size_t)(close - p - 1);
			for (size_t i = 0; i < sizeof(known_sections) / sizeof(known_sections[0]); i++)
				if (strlen(known_sections[i]) == sl &&
				    memcmp(known_sections[i], p + 1, sl) == 0)
					known = 1;
			if (!known) {
				char name[64];

				snprintf(name, sizeof(name), "%.*s", (int)(sl < 40 ? sl : 40), p + 1);
				parse_fail(pc, NULL, NULL, "unknown section [%s]", name);
				return NULL;
			}
		}
	}
	memcpy(str, p, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

/* Reads the whole file (at most CONFIG_FILE_MAX bytes) into a new buffer. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = SSC_EIO;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return SSC_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out_close;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		rc = SSC_ECONFIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = SSC_ENOMEM;
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
			goto out_free;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	rc = 0;
	goto out_close;
out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

/* The index of a [card] key in key_table (for the checks that look at where keys were set). */
static size_t key_index(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(key_table[i].section, "card") == 0 && strcmp(key_table[i].name, name) == 0)
			return i;
	return 0;
}

int config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	long long port;

	memset(ss, 0, sizeof(*ss));
	colon = strrchr(s, ':');
	if (!colon)
		return SSC_ECONFIG;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h = s + 1;
		hl -= 2;
	} else if (memchr(s, ':', hl)) {
		return SSC_ECONFIG;   /* an IPv6 address needs its brackets */
	}
	if (hl == 0 || hl >= sizeof(host) || parse_llong(colon + 1, 1, 65535, &port) != 0)
		return SSC_ECONFIG;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (h == s + 1) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return SSC_ECONFIG;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return SSC_ECONFIG;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof(*a4);
	}
	return 0;
}

/* A user name as useradd accepts it: [A-Za-z0-9_.-], not starting with '-', at most 32. */
static int config_user_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || s[0] == '-')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/*
 * [hsm]: a URL needs its three files (absolute paths), and only HTTPS is spoken: the desk's
 * certificate is its identity (spec §13.2), never sent in clear. The files themselves are checked
 * when sscardd starts (hsm_keyprov_new), not here: sscardctl reads this file too.
 */
static int check_hsm(struct parse_ctx *pc)
{
	const struct config *cfg = pc->cfg;
	const char *const files[] = { cfg->hsm_ca_file, cfg->hsm_cert_file, cfg->hsm_key_file };
	const char *const names[] = { "ca_file", "cert_file", "key_file" };

	if (!cfg->hsm_url[0])
		return 0;
	if (strncasecmp(cfg->hsm_url, "https://", 8) != 0 || !cfg->hsm_url[8] ||
	    strpbrk(cfg->hsm_url, " \t\"<>\\^`{|}") || strchr(cfg->hsm_url, '?') ||
	    strchr(cfg->hsm_url, '#')) {
		snprintf(pc->err, sizeof(pc->err), "%s: [hsm] url: expected the key server's base "
			 "URL, https://HOST[:PORT][/PATH], without query or fragment", pc->path);
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		if (files[i][0] != '/') {
			snprintf(pc->err, sizeof(pc->err), "%s: [hsm] url needs %s, an absolute path",
				 pc->path, names[i]);
			return -1;
		}
	}
	return 0;
}

/* Checks that need several keys; run on the merged result. */
static int check_cross(struct parse_ctx *pc)
{
	const struct config *cfg = pc->cfg;

	if (cfg->pin_min_len > cfg->pin_max_len) {
		snprintf(pc->err, sizeof(pc->err), "%s: [card] pin_min_len (%d) is greater than "
			 "pin_max_len (%d)", pc->path, cfg->pin_min_len, cfg->pin_max_len);
		return -1;
	}
	if (pc->key_line[key_index("initial_pin")] && pc->key_line[key_index("initial_pins")]) {
		snprintf(pc->err, sizeof(pc->err), "%s:%d: [card] initial_pin: set initial_pins "
			 "only (initial_pin is its deprecated one-PIN form; initial_pins is at line "
			 "%d)", pc->path, pc->key_line[key_index("initial_pin")],
			 pc->key_line[key_index("initial_pins")]);
		return -1;
	}
	if (cfg->verify_card_id_mac && !cfg->card_id_mac_key_set) {
		snprintf(pc->err, sizeof(pc->err), "%s: [card] verify_card_id_mac = yes needs "
			 "card_id_mac_key", pc->path);
		return -1;
	}
	if (cfg->receipts_key_file[0]) {
		struct stat st;

		/* The desk's signing key: whoever reads it signs receipts in the desk's name. */
		if (cfg->receipts_key_file[0] != '/' || stat(cfg->receipts_key_file, &st) != 0 ||
		    !S_ISREG(st.st_mode) || (st.st_mode & S_IRWXO)) {
			snprintf(pc->err, sizeof(pc->err), "%s: [receipts] key_file must be an "
				 "absolute path to a file that others cannot read (chmod 0600 or "
				 "0640)", pc->path);
			return -1;
		}
	}
	if (cfg->socket_path[0] != '/') {
		snprintf(pc->err, sizeof(pc->err), "%s: [daemon] socket_path must be an absolute "
			 "path", pc->path);
		return -1;
	}
	if (cfg->journal_path[0] != '/' ||
	    (cfg->journal_key_path[0] && cfg->journal_key_path[0] != '/')) {
		snprintf(pc->err, sizeof(pc->err), "%s: [journal] path and key_path must be "
			 "absolute paths", pc->path);
		return -1;
	}
	if (cfg->audit_syslog_socket[0] != '/') {
		snprintf(pc->err, sizeof(pc->err), "%s: [audit] syslog_socket must be an absolute "
			 "path", pc->path);
		return -1;
	}
	if (cfg->metrics_listen[0]) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (config_parse_listen(cfg->metrics_listen, &ss, &sl) != 0) {
			snprintf(pc->err, sizeof(pc->err), "%s: [metrics] listen: expected ADDRESS:PORT "
				 "with a numeric address, e.g. 127.0.0.1:9477 or [::1]:9477", pc->path);
			return -1;
		}
	}
	if (cfg->user[0] && !config_user_name_ok(cfg->user)) {
		snprintf(pc->err, sizeof(pc->err), "%s: [daemon] user: not a user name (letters, "
			 "digits, '_', '-', '.'; not starting with '-')", pc->path);
		return -1;
	}
	if (check_hsm(pc) != 0)
		return -1;
	if (!cfg->journal_key_path[0] && strlen(cfg->journal_path) + 4 >= CONFIG_PATH_MAX) {
		snprintf(pc->err, sizeof(pc->err), "%s: [journal] path too long for its key file "
			 "(path + \".key\")", pc->path);
		return -1;
	}
	return 0;
}

const char *config_default_path(void)
{
	const char *env = getenv(CONFIG_ENV);

	if (env && env[0])
		return env;
	return access(CONFIG_DEFAULT_PATH, F_OK) == 0 ? CONFIG_DEFAULT_PATH : NULL;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct parse_ctx *pc;
	char *buf = NULL;
	size_t len = 0;
	int rc, line;

	if (errlen > 0)
		err[0] = '\0';
	rc = read_file(path, &buf, &len, err, errlen);
	if (rc != 0)
		return rc == SSC_ENOMEM ? SSC_ENOMEM : rc;
	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = SSC_ENOMEM;
		goto out_wipe;
	}
	pc->cfg = cfg;
	pc->path = path;
	pc->buf = buf;
	pc->len = len;
	pc->n_roles_before = cfg->n_roles;
	line = ini_parse_stream(reader, pc, handler, pc);
	if (pc->err_line && (line <= 0 || pc->err_line <= line)) {
		snprintf(err, errlen, "%s", pc->err);
		rc = SSC_ECONFIG;
	} else if (line > 0) {
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 path, line);
		rc = SSC_ECONFIG;
	} else if (line < 0) {
		snprintf(err, errlen, "%s: the INI parser failed (%d)", path, line);
		rc = SSC_ENOMEM;
	} else if (check_cross(pc) != 0) {
		snprintf(err, errlen, "%s", pc->err);
		rc = SSC_ECONFIG;
	} else {
		rc = 0;
	}
	free(pc);
out_wipe:
	/* The buffer may hold the 卡识别码 MAC key. */
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}
