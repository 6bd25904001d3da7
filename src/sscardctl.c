/*
 * This file contains sscardctl, the command-line client of sscardd: it sends one JSON-RPC request
 * over the Unix socket (or subscribes to events) and prints the answer for people (labels in
 * Chinese and English) or as raw JSON; and the operator's journal commands (verify, show, export,
 * blacklist import), which open the journal file directly. Every wait has a deadline; exit codes
 * say what went wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include "config.h"
#include "journal.h"
#include "pinentry.h"

/* Exit codes (docs/operations.md, sscardctl --help). */
#define EXIT_OK 0
#define EXIT_API 1       /* the daemon answered with an error */
#define EXIT_USAGE 2
#define EXIT_CONNECT 3   /* cannot connect to the socket */
#define EXIT_ANSWER 4    /* no answer before the deadline, connection lost, malformed answer */
#define EXIT_PIN_WRONG 5   /* the PIN commands: a wrong PIN (the message names the tries left) */
#define EXIT_PIN_BLOCKED 6 /* the PIN commands: the PIN is blocked */

#define DEFAULT_SOCKET "/run/sscard/sscardd.sock"
#define DEFAULT_TIMEOUT_MS 15000   /* above the daemon's default op_timeout_ms (10 s) */
#define ANSWER_MAX (16 * 1024 * 1024)
#define PARAMS_MAX (16 * 1024 * 1024)   /* `call METHOD -`: params read from stdin */
#define MAX_ITEMS 64
#define RECV_TIMEOUT (-1)          /* conn_recv(): the deadline passed (nothing printed) */
#define SHOW_DEFAULT_LIMIT 50
#define OLD_KEYS_MAX 8             /* --old-key given at most this often */

/* Exit codes of the journal commands (they do not talk to the daemon). */
#define EXIT_J_BAD 1       /* verify: the chain is broken; import: a malformed line; rotate-key:
			    * refused */
#define EXIT_J_OPEN 3      /* cannot open the journal (missing, no key, not a database) */
#define EXIT_J_IO 4        /* cannot read the log or the list, cannot write the output */

struct opts {
	const char *socket;
	int json;
	int timeout_ms;
	const char *reader;
	int internal_auth;
	int verify_card_id;
	int allow_lost;          /* --allow-lost: read a card on the lost-card list */
	long count;        /* events: stop after this many (0 = no limit) */
	long for_ms;       /* events: stop after this long (0 = until Ctrl-C) */
	/* The journal commands: */
	const char *journal;     /* --journal PATH */
	const char *config;      /* --config FILE */
	const char *head;        /* --head SEQ:HASH */
	const char *log;         /* --log FILE */
	long long since;         /* --since SEQ (-1 = not given) */
	long long limit;         /* --limit N (0 = not given) */
	const char *old_keys[OLD_KEYS_MAX];   /* --old-key FILE (verify; repeatable) */
	int n_old_keys;
	const char *lost_cards;  /* --lost-cards FILE (rotate-key) */
	const char *args[MAX_ITEMS + 2];
	int n_args;
};

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sscardctl [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  info                               the daemon's version, API level and limits\n"
		"  readers                            the readers, their cards and roles\n"
		"  read-basic [--reader ID] [--internal-auth] [--verify-card-id] [--allow-lost]\n"
		"                                     the cardholder's basic data (card.read_basic);\n"
		"                                     --internal-auth proves the card genuine,\n"
		"                                     --verify-card-id checks the 卡识别码 MAC,\n"
		"                                     --allow-lost reads a card on the lost-card list\n"
		"                                     too (and says whether it is)\n"
		"  read-items FILE TAG... [--reader ID] [--allow-lost]\n"
		"                                     items of one file, e.g. read-items SSSE/EF06 08 09\n"
		"  internal-auth [--reader ID]        prove the card genuine (card.internal_auth)\n"
		"  verify-pin [--reader ID]           check the holder's PIN\n"
		"  change-pin [--reader ID]           the holder changes the PIN (old, then new)\n"
		"  reload-pin [--reader ID]           set a new PIN at the counter (PSAM)\n"
		"  unblock-pin [--reader ID]          set a new PIN and lift a block (PSAM)\n"
		"                                     PINs are typed at the terminal (not shown; a new\n"
		"                                     one twice) or read one a line from stdin when it\n"
		"                                     is not a terminal; never give them as arguments\n"
		"  write-items FILE TAG=VALUE... [--reader ID]\n"
		"                                     write items (card.write_items), e.g.\n"
		"                                     write-items DF04/EF05 31=21 34=1; a VALUE that\n"
		"                                     starts with '{' is JSON (a DF04/EF08 transaction)\n"
		"  events [--count N] [--for MS]      print reader and card events as they happen\n"
		"  call METHOD [PARAMS-JSON | -]      any API method, e.g. call reader.list '{}';\n"
		"                                     '-' reads the params from stdin (for PINs)\n"
		"\n"
		"Operator commands (they open the journal file, not the socket):\n"
		"  journal verify [--head SEQ:HASH | --log FILE] [--old-key FILE]...\n"
		"                                     check the journal's hash chain and lost-card\n"
		"                                     list; with the chain head the daemon logged\n"
		"                                     (--log takes the last 'journal head' line of its\n"
		"                                     log), a cut-off tail too; --old-key: a key kept\n"
		"                                     at a rotation, to check the rows before it\n"
		"  journal show [--since SEQ] [--limit N]\n"
		"                                     rows as a table (default: the last %d)\n"
		"  journal export [--since SEQ]       rows as JSON lines\n"
		"  journal rotate-key [--lost-cards FILE]\n"
		"                                     give the journal a new key (sscardd stopped, no\n"
		"                                     write intent pending); FILE names every listed\n"
		"                                     card again (the import format), to re-key the list\n"
		"  blacklist import FILE              add card numbers / card ids (one a line, '-' for\n"
		"                                     stdin) to the lost-card list\n"
		"  blacklist remove FILE              take them off it (same format)\n"
		"  blacklist list [--json]            what the list holds (keyed names, when, by whom)\n"
		"    --journal PATH   the journal database (default: [journal] path of the daemon's\n"
		"                     configuration); its key file is [journal] key_path, else\n"
		"                     PATH.key. The journal used is named on stderr\n"
		"\n"
		"Options:\n"
		"  --config FILE    the daemon's configuration, for its socket and journal (default\n"
		"                   $" CONFIG_ENV ", else " CONFIG_DEFAULT_PATH " when it exists,\n"
		"                   else the built-in defaults; sscardd reads the same)\n"
		"  --socket PATH    the daemon's socket (default $SSCARD_SOCKET, else socket_path of\n"
		"                   the configuration, else " DEFAULT_SOCKET ")\n"
		"  --json           print the raw JSON result instead of text\n"
		"  --timeout MS     give up waiting for connect and answer after MS (default %d)\n"
		"  --reader ID      the reader to use (needed when several hold a card)\n"
		"  -h, --help       this text\n"
		"\n"
		"Exit status: 0 ok, 1 the daemon answered with an error, 2 usage, 3 cannot connect,\n"
		"4 no answer in time or connection lost; the PIN commands: 5 wrong PIN (the message\n"
		"says how many tries are left), 6 the PIN is blocked. Journal commands: 0 ok (verify: intact),\n"
		"1 verify found a bad row / a bad line in a list / rotate-key refused, 2 usage,\n"
		"3 cannot open the journal, 4 cannot read the log or list file or write the output.\n",
		SHOW_DEFAULT_LIMIT, DEFAULT_TIMEOUT_MS);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
	long long r;

	if (deadline < 0)
		return -1;   /* no deadline: only `events` without --for */
	r = deadline - now_ms();
	return r < 0 ? 0 : (int)(r > 1000000000 ? 1000000000 : r);
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Options may come before or after the command; everything else is a positional argument. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->since = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		char name[32];
		long v;

		if (strcmp(a, "--") == 0) {
			while (++i < argc) {
				if (o->n_args >= MAX_ITEMS + 2)
					goto too_many;
				o->args[o->n_args++] = argv[i];
			}
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (o->n_args >= MAX_ITEMS + 2)
				goto too_many;
			o->args[o->n_args++] = a;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(EXIT_OK);
		}
		eq = strchr(a, '=');
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
		if (strcmp(name, "--json") == 0 && !eq) {
			o->json = 1;
			continue;
		}
		if (strcmp(name, "--internal-auth") == 0 && !eq) {
			o->internal_auth = 1;
			continue;
		}
		if (strcmp(name, "--verify-card-id") == 0 && !eq) {
			o->verify_card_id = 1;
			continue;
		}
		if (strcmp(name, "--allow-lost") == 0 && !eq) {
			o->allow_lost = 1;
			continue;
		}
		if (strcmp(name, "--socket") != 0 && strcmp(name, "--timeout") != 0 &&
		    strcmp(name, "--reader") != 0 && strcmp(name, "--count") != 0 &&
		    strcmp(name, "--for") != 0 && strcmp(name, "--journal") != 0 &&
		    strcmp(name, "--config") != 0 && strcmp(name, "--head") != 0 &&
		    strcmp(name, "--log") != 0 && strcmp(name, "--since") != 0 &&
		    strcmp(name, "--limit") != 0 && strcmp(name, "--old-key") != 0 &&
		    strcmp(name, "--lost-cards") != 0) {
			fprintf(stderr, "sscardctl: unknown option %s (try --help)\n", a);
			return -1;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (!val || !val[0]) {
			fprintf(stderr, "sscardctl: %s needs a value\n", name);
			return -1;
		}
		if (strcmp(name, "--socket") == 0) {
			o->socket = val;
		} else if (strcmp(name, "--journal") == 0) {
			o->journal = val;
		} else if (strcmp(name, "--config") == 0) {
			o->config = val;
		} else if (strcmp(name, "--head") == 0) {
			o->head = val;
		} else if (strcmp(name, "--log") == 0) {
			o->log = val;
		} else if (strcmp(name, "--old-key") == 0) {
			if (o->n_old_keys == OLD_KEYS_MAX) {
				fprintf(stderr, "sscardctl: --old-key: at most %d\n", OLD_KEYS_MAX);
				return -1;
			}
			o->old_keys[o->n_old_keys++] = val;
		} else if (strcmp(name, "--lost-cards") == 0) {
			o->lost_cards = val;
		} else if (strcmp(name, "--since") == 0 || strcmp(name, "--limit") == 0) {
			char *end;
			long long n;

			errno = 0;
			n = strtoll(val, &end, 10);
			if (*end != '\0' || errno != 0 || n < (name[2] == 's' ? 0 : 1)) {
				fprintf(stderr, "sscardctl: %s: %s\n", name,
					name[2] == 's' ? "a sequence number (0 or more)"
						       : "a positive number of rows");
				return -1;
			}
			if (name[2] == 's')
				o->since = n;
			else
				o->limit = n;
		} else if (strcmp(name, "--reader") == 0) {
			o->reader = val;
		} else if (strcmp(name, "--timeout") == 0) {
			if (parse_long(val, 1, 3600000, &v) != 0) {
				fprintf(stderr, "sscardctl: --timeout: 1..3600000 ms\n");
				return -1;
			}
			o->timeout_ms = (int)v;
		} else if (strcmp(name, "--count") == 0) {
			if (parse_long(val, 1, 1000000, &o->count) != 0) {
				fprintf(stderr, "sscardctl: --count: a positive number\n");
				return -1;
			}
		} else if (parse_long(val, 1, 86400000L * 365, &o->for_ms) != 0) {
			fprintf(stderr, "sscardctl: --for: a positive number of ms\n");
			return -1;
		}
	}
	return 0;
too_many:
	fprintf(stderr, "sscardctl: too many arguments (at most %d items)\n", MAX_ITEMS);
	return -1;
}

/* ---- the connection --------------------------------------------------------------------- */

/*
 * Connects to the daemon's socket at path (from: where that path came from, for the hint when
 * nothing answers there). Returns 0, or an exit code after saying why.
 */
static int conn_open(struct conn *c, const char *path, const char *from, long long deadline)
{
	struct sockaddr_un sa;
	int r, e, pause_ms = 5;

	memset(c, 0, sizeof(*c));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sscardctl: socket path too long: %s\n", path);
		return EXIT_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		fprintf(stderr, "sscardctl: socket: %s\n", strerror(errno));
		return EXIT_CONNECT;
	}
	/*
	 * A non-blocking connect on a Unix socket never is "in progress": it connects at once, or
	 * answers EAGAIN when the daemon's accept backlog is full (the socket stays unconnected, so
	 * polling it for POLLOUT would say nothing). So it is tried again, with short pauses, until
	 * the deadline.
	 */
	for (;;) {
		r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
		e = errno;
		if (r == 0 || (e != EAGAIN && e != EINTR))
			break;
		if (remaining(deadline) == 0)
			break;
		poll(NULL, 0, remaining(deadline) < pause_ms ? remaining(deadline) : pause_ms);
		if (pause_ms < 100)
			pause_ms *= 2;
	}
	if (r != 0) {
		if (e == EAGAIN)
			fprintf(stderr, "sscardctl: cannot connect to %s: the daemon accepts no new "
				"connection (its backlog stayed full until --timeout)\n", path);
		else
			fprintf(stderr, "sscardctl: cannot connect to %s: %s\n", path, strerror(e));
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, "sscardctl: is sscardd running? (that socket is %s; "
				"--socket, $SSCARD_SOCKET or --config name another)\n", from);
		else if (e == EACCES)
			fprintf(stderr, "sscardctl: permission denied: the socket is for the "
				"daemon's group (usually sscard); ask for membership\n");
		close(c->fd);
		c->fd = -1;
		return EXIT_CONNECT;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static int conn_send(struct conn *c, const char *data, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			int r = poll(&pfd, 1, remaining(deadline));

			if (r == 0) {
				fprintf(stderr, "sscardctl: the daemon did not take the request in "
					"time\n");
				return EXIT_ANSWER;
			}
			continue;
		}
		fprintf(stderr, "sscardctl: sending the request: %s\n", strerror(errno));
		return EXIT_ANSWER;
	}
	return 0;
}

/*
 * Reads one line (without the newline) into a new JSON value in *out. Returns 0, RECV_TIMEOUT
 * when the deadline passes (the caller says what it was waiting for), or an exit code after
 * printing why (connection closed, too long, not JSON).
 */
static int conn_recv(struct conn *c, json_t **out, long long deadline)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (nl) {
			size_t ll = (size_t)(nl - c->buf);
			json_error_t e;

			*out = json_loadb(c->buf, ll, 0, &e);
			memmove(c->buf, nl + 1, c->len - ll - 1);
			c->len -= ll + 1;
			if (!*out) {
				fprintf(stderr, "sscardctl: malformed answer from the daemon: %s\n",
					e.text);
				return EXIT_ANSWER;
			}
			return 0;
		}
		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *nb;

			if (cap > ANSWER_MAX) {
				fprintf(stderr, "sscardctl: answer longer than %d bytes\n",
					ANSWER_MAX);
				return EXIT_ANSWER;
			}
			nb = realloc(c->buf, cap);
			if (!nb) {
				fprintf(stderr, "sscardctl: out of memory\n");
				return EXIT_ANSWER;
			}
			c->buf = nb;
			c->cap = cap;
		}
		r = poll(&pfd, 1, remaining(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return RECV_TIMEOUT;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			fprintf(stderr, "sscardctl: the daemon closed the connection%s%s\n",
				n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return EXIT_ANSWER;
		}
		c->len += (size_t)n;
	}
}

/*
 * The tries a PIN (or a card key) has left, in words for the person at the desk: "no tries
 * left", "1 try left", "2 tries left". Writes into out (cap bytes) and returns out. Every output
 * of sscardctl that names data.retries_left uses this one.
 */
static const char *tries_left_text(long long left, char *out, size_t cap)
{
	if (left <= 0)
		snprintf(out, cap, "no tries left");
	else
		snprintf(out, cap, "%lld %s left", left, left == 1 ? "try" : "tries");
	return out;
}

/* Prints an error object to stderr: name, message, and what else the daemon said. */
static void print_error(const json_t *err)
{
	const json_t *data = json_object_get(err, "data");
	const char *name = json_string_value(json_object_get(data, "name"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const json_t *v;
	char tries[32];

	fprintf(stderr, "sscardctl: %s: %s (code %lld)", name ? name : "error",
		msg ? msg : "(no message)",
		(long long)json_integer_value(json_object_get(err, "code")));
	if ((v = json_object_get(data, "std_code")))
		fprintf(stderr, ", standard code %lld", (long long)json_integer_value(v));
	if ((v = json_object_get(data, "sw")))
		fprintf(stderr, ", SW %s", json_string_value(v));
	/* The daemon's message names the tries left already; other daemons' may not. */
	if ((v = json_object_get(data, "retries_left")) &&
	    (!msg || !strstr(msg, tries_left_text(json_integer_value(v), tries, sizeof(tries)))))
		fprintf(stderr, ", %s", tries_left_text(json_integer_value(v), tries,
							sizeof(tries)));
	if ((v = json_object_get(data, "reader")))
		fprintf(stderr, ", reader %s", json_string_value(v));
	fputc('\n', stderr);
}

/*
 * One request, one answer: sends method(params) (params stolen, may be NULL) and waits for the
 * answer with id 1, skipping notifications. On success *result is a new reference. When the
 * daemon answers with an error it is printed and EXIT_API returned, with the error's name in
 * errname (ERRNAME_MAX bytes; may be NULL). The request's text is wiped after sending: its
 * params may hold a PIN.
 */
#define ERRNAME_MAX 48
static int call(struct conn *c, const char *method, json_t *params, json_t **result,
		long long deadline, char *errname)
{
	json_t *req, *ans = NULL, *err;
	char *text;
	int rc;

	req = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 1, "method", method);
	if (params)
		json_object_set_new(req, "params", params);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return EXIT_ANSWER;
	rc = conn_send(c, text, strlen(text), deadline);
	if (rc == 0)
		rc = conn_send(c, "\n", 1, deadline);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rc != 0)
		return rc;
	for (;;) {
		rc = conn_recv(c, &ans, deadline);
		if (rc == RECV_TIMEOUT) {
			fprintf(stderr, "sscardctl: no answer from the daemon in time (--timeout)\n");
			return EXIT_ANSWER;
		}
		if (rc != 0)
			return rc;
		if (json_integer_value(json_object_get(ans, "id")) == 1 ||
		    json_is_null(json_object_get(ans, "id")))
			break;
		json_decref(ans);   /* a notification, or not ours */
	}
	err = json_object_get(ans, "error");
	if (err) {
		const char *name = json_string_value(json_object_get(json_object_get(err, "data"),
								     "name"));

		if (errname)
			snprintf(errname, ERRNAME_MAX, "%s", name ? name : "");
		print_error(err);
		json_decref(ans);
		return EXIT_API;
	}
	*result = json_incref(json_object_get(ans, "result"));
	json_decref(ans);
	if (!*result) {
		fprintf(stderr, "sscardctl: answer without result or error\n");
		return EXIT_ANSWER;
	}
	return 0;
}

/* ---- output ----------------------------------------------------------------------------- */

static void print_json(const json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);

	if (text) {
		puts(text);
		free(text);
	}
}

/* A value as text: strings as they are, booleans yes/no, others as compact JSON. */
static void print_value(FILE *f, const json_t *v)
{
	char *text;

	if (json_is_string(v)) {
		fputs(json_string_value(v), f);
	} else if (json_is_boolean(v)) {
		fputs(json_is_true(v) ? "yes" : "no", f);
	} else {
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text) {
			fputs(text, f);
			free(text);
		}
	}
}

/* The lost-card check of a read asked with --allow-lost (null: the list could not be read). */
static void print_lost(const json_t *v)
{
	if (json_is_null(v))
		fputs("not checked (the lost-card list could not be read)", stdout);
	else
		print_value(stdout, v);
}

static void out_info(const json_t *r)
{
	const json_t *m = json_object_get(r, "methods"), *lim = json_object_get(r, "limits");
	const char *key;
	json_t *v;
	size_t i;

	printf("sscardd %s, API level %lld\n", json_string_value(json_object_get(r, "version")),
	       (long long)json_integer_value(json_object_get(r, "api_level")));
	printf("methods:");
	json_array_foreach(m, i, v)
		printf(" %s", json_string_value(v));
	printf("\nlimits:");
	json_object_foreach((json_t *)lim, key, v) {
		printf(" %s=", key);
		print_value(stdout, v);
	}
	printf("\n");
	/* "ok", or "unavailable: why": then card writes are refused. */
	if ((v = json_object_get(r, "journal"))) {
		printf("journal: ");
		print_value(stdout, v);
		printf("\n");
	}
}

static void out_readers(const json_t *r)
{
	const json_t *arr = json_object_get(r, "readers");
	json_t *e;
	size_t i;

	if (json_array_size(arr) == 0) {
		printf("no readers (is pcscd running, and a reader attached?)\n");
		return;
	}
	printf("%-28s %-8s %-5s %-8s %-5s %-5s %s\n", "ID", "DRIVER", "CARD", "ROLE", "ALGO",
	       "BUSY", "NAME");
	json_array_foreach(arr, i, e) {
		const char *algo = json_string_value(json_object_get(e, "algorithm"));

		printf("%-28s %-8s %-5s %-8s %-5s %-5s %s\n",
		       json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "driver")),
		       json_is_true(json_object_get(e, "card")) ? "yes" : "no",
		       json_string_value(json_object_get(e, "role")), algo ? algo : "-",
		       json_is_true(json_object_get(e, "busy")) ? "yes" : "no",
		       json_string_value(json_object_get(e, "name")));
	}
}

static const struct {
	const char *key;
	const char *label;
} basic_labels[] = {
	{ "name", "姓名 name" },
	{ "sex", "性别 sex" },
	{ "nation", "民族 nation" },
	{ "birth_date", "出生日期 birth date" },
	{ "birth_place", "出生地 birth place" },
	{ "ssn", "社会保障号码 social security number" },
	{ "card_number", "卡号 card number" },
	{ "card_id", "卡识别码 card identifier" },
	{ "region_code", "发卡地区 issuing region" },
	{ "spec_version", "规范版本 specification version" },
	{ "issue_date", "发卡日期 issue date" },
	{ "expiry_date", "卡有效期 expiry date" },
	{ "expired", "已过期 expired" },
	{ "algorithm", "算法 algorithm" },
	{ "atr_historical", "复位信息 ATR historical bytes" },
	{ "terminal_number", "终端机编号 terminal number" },
	{ "terminal_device", "终端设备号 terminal device" },
	{ "genuine", "真卡 genuine (internal authentication)" },
	{ "card_id_verified", "卡识别码校验 card identifier MAC verified" },
	{ "lost", "挂失 on the lost-card list" },
	{ "standard", "iReadCardBas" },
};

static void out_basic(const json_t *r)
{
	const char *key;
	json_t *v;

	for (size_t i = 0; i < sizeof(basic_labels) / sizeof(basic_labels[0]); i++) {
		v = json_object_get(r, basic_labels[i].key);
		if (!v)
			continue;
		printf("%s: ", basic_labels[i].label);
		if (strcmp(basic_labels[i].key, "lost") == 0)
			print_lost(v);
		else
			print_value(stdout, v);
		if (strcmp(basic_labels[i].key, "sex") == 0 && json_is_string(v)) {
			/* GB/T 2261.1: the code stays; the words are a reading aid. */
			if (strcmp(json_string_value(v), "1") == 0)
				printf(" (男 male)");
			else if (strcmp(json_string_value(v), "2") == 0)
				printf(" (女 female)");
		}
		putchar('\n');
	}
	/* Whatever the daemon adds later is shown too, under its own name. */
	json_object_foreach((json_t *)r, key, v) {
		int known = 0;

		for (size_t i = 0; i < sizeof(basic_labels) / sizeof(basic_labels[0]); i++)
			if (strcmp(basic_labels[i].key, key) == 0)
				known = 1;
		if (known)
			continue;
		printf("%s: ", key);
		print_value(stdout, v);
		putchar('\n');
	}
}

static void out_items(const json_t *r)
{
	const json_t *items = json_object_get(r, "items");
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)items, key, v) {
		printf("%s: ", key);
		print_value(stdout, v);
		putchar('\n');
	}
	/* Asked with --allow-lost: whether the card is on the lost-card list (null: not checked). */
	v = json_object_get(r, "lost");
	if (v) {
		printf("挂失 on the lost-card list: ");
		print_lost(v);
		putchar('\n');
	}
}

/* write-items: the items as they now are on the card, and the journal row of the write. */
static void out_written(const json_t *r)
{
	const json_t *id = json_object_get(r, "journal_id");

	out_items(r);
	if (id)
		printf("日志 journal row: %lld\n", (long long)json_integer_value(id));
}

/* The PIN commands: their line when the result's key is true, else the result as it is. */
static void out_done(const json_t *r, const char *key, const char *text)
{
	if (json_is_true(json_object_get(r, key)))
		puts(text);
	else
		print_json(r);
}

static void out_event(const json_t *params)
{
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;
	const char *name = json_string_value(json_object_get(params, "name"));

	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s %-14s %s%s%s%s\n", stamp, json_string_value(json_object_get(params, "type")),
	       json_string_value(json_object_get(params, "reader")), name ? " (" : "",
	       name ? name : "", name ? ")" : "");
	fflush(stdout);
}

/* ---- commands --------------------------------------------------------------------------- */

static int cmd_events(struct conn *c, const struct opts *o, long long deadline)
{
	json_t *res = NULL, *msg;
	long long watch_deadline;
	long seen = 0;
	int rc;

	rc = call(c, "events.subscribe", NULL, &res, deadline, NULL);
	if (rc != 0)
		return rc;
	json_decref(res);
	if (!o->json)
		fprintf(stderr, "sscardctl: waiting for events%s\n",
			o->for_ms ? "" : " (Ctrl-C ends)");
	/* The one wait without a deadline of ours: a watch that the user ends (or --for). */
	watch_deadline = o->for_ms ? now_ms() + o->for_ms : -1;
	while (o->count == 0 || seen < o->count) {
		const char *m;

		rc = conn_recv(c, &msg, watch_deadline);
		if (rc == RECV_TIMEOUT) {
			if (o->count == 0)
				return EXIT_OK;   /* --for elapsed: the watch is over */
			fprintf(stderr, "sscardctl: %ld of %ld events within --for\n", seen,
				o->count);
			return EXIT_ANSWER;
		}
		if (rc != 0)
			return rc;
		m = json_string_value(json_object_get(msg, "method"));
		if (m && strcmp(m, "event") == 0) {
			json_t *p = json_object_get(msg, "params");

			if (o->json) {
				char *text = json_dumps(p, JSON_COMPACT);

				if (text) {
					puts(text);
					free(text);
				}
				fflush(stdout);
			} else {
				out_event(p);
			}
			seen++;
		}
		json_decref(msg);
	}
	return EXIT_OK;
}

/* ---- the daemon's configuration -------------------------------------------------------- */

/*
 * Reads the daemon's configuration as sscardd does: --config, else config_default_path()
 * ($SSCARD_CONFIG, else /etc/sscard/sscardd.conf when it exists), else the built-in defaults
 * (*file = NULL). Returns 0, or EXIT_USAGE after saying why the file cannot be read.
 */
static int load_config(const struct opts *o, struct config *cfg, const char **file)
{
	char err[512];

	config_defaults(cfg);
	*file = o->config ? o->config : config_default_path();
	if (*file && config_load(cfg, *file, err, sizeof(err)) != 0) {
		fprintf(stderr, "sscardctl: %s\n", err);
		if (!o->config)
			fprintf(stderr, "sscardctl: (the daemon's configuration, from %s)\n",
				getenv(CONFIG_ENV) && getenv(CONFIG_ENV)[0] ? "$" CONFIG_ENV
									    : "its default path");
		config_wipe(cfg);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * The daemon's socket: --socket, else $SSCARD_SOCKET, else [daemon] socket_path of the daemon's
 * configuration (load_config), else the built-in default; into path (CONFIG_PATH_MAX bytes), with
 * where it came from in from. Returns 0 or an exit code.
 */
static int socket_path(const struct opts *o, char *path, char *from, size_t from_len)
{
	const char *env = getenv("SSCARD_SOCKET"), *file;
	struct config cfg;
	int rc;

	if (o->socket) {
		snprintf(path, CONFIG_PATH_MAX, "%s", o->socket);
		snprintf(from, from_len, "--socket");
		return 0;
	}
	if (env && env[0]) {
		snprintf(path, CONFIG_PATH_MAX, "%s", env);
		snprintf(from, from_len, "$SSCARD_SOCKET");
		return 0;
	}
	rc = load_config(o, &cfg, &file);
	if (rc != 0)
		return rc;
	snprintf(path, CONFIG_PATH_MAX, "%s", cfg.socket_path);
	if (file)
		snprintf(from, from_len, "the socket_path of %s", file);
	else
		snprintf(from, from_len, "the built-in default: no --config, $%s or %s", CONFIG_ENV,
			 CONFIG_DEFAULT_PATH);
	config_wipe(&cfg);
	return 0;
}

/* ---- the journal commands --------------------------------------------------------------- */

/*
 * Opens the journal named by --journal / --config (read-only unless rw), printing why not.
 * Returns 0 or an exit code.
 */
static int journal_open_for(const struct opts *o, int rw, struct journal **out)
{
	struct config cfg;
	struct ssc_diag d;
	struct stat st;
	const char *path, *file;
	int rc;

	rc = load_config(o, &cfg, &file);
	if (rc != 0)
		return rc;
	path = o->journal ? o->journal : cfg.journal_path;
	/* Which journal, always: an operator must never act on one that no daemon uses unawares. */
	if (o->journal)
		fprintf(stderr, "sscardctl: journal %s (--journal)\n", path);
	else if (file)
		fprintf(stderr, "sscardctl: journal %s (the [journal] path of %s)\n", path, file);
	else
		fprintf(stderr, "sscardctl: journal %s (the built-in default: no --config, $%s or "
			"%s)\n", path, CONFIG_ENV, CONFIG_DEFAULT_PATH);
	/* Never create a journal by accident (a typo in --journal): it must exist. */
	if (stat(path, &st) != 0) {
		fprintf(stderr, "sscardctl: journal %s: %s\n", path, strerror(errno));
		config_wipe(&cfg);
		return EXIT_J_OPEN;
	}
	ssc_diag_init(&d);
	if (journal_open(path, cfg.journal_key_path[0] ? cfg.journal_key_path : NULL,
			 rw ? 0 : JOURNAL_RDONLY, out, &d) != 0) {
		fprintf(stderr, "sscardctl: %s\n", d.msg[0] ? d.msg : "cannot open the journal");
		config_wipe(&cfg);
		return EXIT_J_OPEN;
	}
	config_wipe(&cfg);
	return 0;
}

/* "SEQ:HASH" with 64 lower-case hex digits. */
static int parse_head(const char *s, int64_t *seq, char *hash)
{
	const char *colon = strchr(s, ':');
	char *end;
	long long n;

	if (!colon)
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (end != colon || errno != 0 || n < 1 || strlen(colon + 1) != JOURNAL_HASH_HEX ||
	    strspn(colon + 1, "0123456789abcdef") != JOURNAL_HASH_HEX)
		return -1;
	*seq = n;
	memcpy(hash, colon + 1, JOURNAL_HASH_HEX + 1);
	return 0;
}

/*
 * Whether line (without its newline) is a head line as sscardd's logger writes it, exactly:
 * "YYYY-MM-DDThh:mm:ss.mmmZ info  journal head seq=N hash=H" with nothing after H but an optional
 * " (...)" remark. Anything else (a client's text quoted in a debug line, say) is not a head.
 */
static int head_line(const char *line, int64_t *seq, char *hash)
{
	static const char shape[] = "####-##-##T##:##:##.###Z info  journal head seq=";
	const char *p = line, *h;
	char *end;
	long long n;

	for (size_t i = 0; i < sizeof(shape) - 1; i++, p++) {
		if (shape[i] == '#' ? (*p < '0' || *p > '9') : *p != shape[i])
			return 0;
	}
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != ' '))
		return 0;   /* seq=0 (an empty journal) is a head too; no leading zeros */
	errno = 0;
	n = strtoll(p, &end, 10);
	if (errno != 0 || strncmp(end, " hash=", 6) != 0)
		return 0;
	h = end + 6;
	if (strspn(h, "0123456789abcdef") != JOURNAL_HASH_HEX)
		return 0;
	if (h[JOURNAL_HASH_HEX] != '\0' && strncmp(h + JOURNAL_HASH_HEX, " (", 2) != 0)
		return 0;
	*seq = n;
	memcpy(hash, h, JOURNAL_HASH_HEX);
	hash[JOURNAL_HASH_HEX] = '\0';
	return 1;
}

/* The last head line of a daemon log. Returns 0, or an exit code after saying why. */
static int head_from_log(const char *path, int64_t *seq, char *hash)
{
	char line[512];
	int found = 0, partial = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "sscardctl: %s: %s\n", path, strerror(errno));
		return EXIT_J_IO;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		int whole = n > 0 && line[n - 1] == '\n';

		/* A long line comes in pieces: only a line's first piece may be a head line. */
		if (!partial) {
			if (whole)
				line[n - 1] = '\0';
			if (whole && head_line(line, seq, hash))
				found = 1;
		}
		partial = !whole;
	}
	if (ferror(f)) {
		fprintf(stderr, "sscardctl: %s: read error\n", path);
		fclose(f);
		return EXIT_J_IO;
	}
	fclose(f);
	if (!found) {
		fprintf(stderr, "sscardctl: %s has no \"journal head seq=N hash=H\" line from sscardd\n",
			path);
		return EXIT_J_IO;
	}
	return 0;
}

static int cmd_journal_verify(const struct opts *o)
{
	char hash[JOURNAL_HASH_HEX + 1] = "", head[JOURNAL_HASH_HEX + 1];
	struct journal_report rep;
	int64_t seq = 0, last = 0;
	struct journal *j;
	struct ssc_diag d;
	int rc;

	if (o->head && o->log) {
		fprintf(stderr, "sscardctl: journal verify: --head or --log, not both\n");
		return EXIT_USAGE;
	}
	if (o->head && parse_head(o->head, &seq, hash) != 0) {
		fprintf(stderr, "sscardctl: --head: expected SEQ:HASH (64 lower-case hex digits), as "
			"sscardd logs it\n");
		return EXIT_USAGE;
	}
	if (o->log && (rc = head_from_log(o->log, &seq, hash)) != 0)
		return rc;
	rc = journal_open_for(o, 0, &j);
	if (rc != 0)
		return rc;
	ssc_diag_init(&d);
	for (int i = 0; i < o->n_old_keys; i++) {
		if (journal_add_old_key(j, o->old_keys[i], &d) != 0) {
			fprintf(stderr, "sscardctl: --old-key: %s\n", d.msg);
			journal_close(j);
			return EXIT_J_OPEN;
		}
	}
	rc = journal_verify_report(j, seq, seq > 0 ? hash : NULL, &rep, &d);
	if (rc == 0)
		rc = journal_head(j, &last, head);
	journal_close(j);
	if (rc != 0) {
		printf("journal NOT intact: %s\n", d.msg[0] ? d.msg : ssc_strerror(rc));
		return EXIT_J_BAD;
	}
	printf("journal intact: %" PRId64 " rows, head seq=%" PRId64 " hash=%s\n", rep.rows, last,
	       head);
	/* Intact, with what it could not compare: a head older than what is kept. */
	if (rep.head_pruned)
		printf("note: journal: the head to compare (row %" PRId64 ") lies before the retention "
		       "anchor (row %" PRId64 "): it was pruned and cannot be compared; the chain runs "
		       "past it. Compare with a head logged after the last prune\n", seq,
		       rep.anchor_seq);
	else if (seq > 0)
		printf("it reaches the logged head seq=%" PRId64 " hash=%s\n", seq, hash);
	if (rep.unchecked > 0)
		printf("note: rows %" PRId64 "..%" PRId64 " were written under an earlier key (%s), "
		       "before a key rotation: their order and their link to the rows after them were "
		       "checked, their hashes were not. Check them with --old-key FILE (the key file "
		       "kept at the rotation, KEY.old-%s)\n", rep.unchecked_first, rep.unchecked_last,
		       rep.unchecked_key, rep.unchecked_key);
	else if (rep.rotations > 0)
		printf("%d key rotation(s): every row was checked under the key of its time\n",
		       rep.rotations);
	if (rep.list_uncovered)
		printf("note: the lost-card list is not in the chain yet (a journal of an earlier "
		       "version): sscardd puts it there when it next opens the journal\n");
	else if (rep.list_entries > 0)
		printf("lost-card list: %" PRId64 " entries, as the chain records them (row %" PRId64
		       ")\n", rep.list_entries, rep.list_seq);
	return EXIT_OK;
}

/* A JSON detail's integer member, or -1. */
static long long detail_int(json_t *d, const char *name)
{
	json_t *v = json_object_get(d, name);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* journal show's note for a row of the lost-card list or a key rotation. */
static void list_note(const struct journal_row *r, char *note, size_t cap)
{
	json_t *d = json_loads(r->detail, 0, NULL);
	const char *key = json_string_value(json_object_get(d, "key_id"));
	const char *old = json_string_value(json_object_get(d, "old_key_id"));
	long long entries = detail_int(d, "entries");
	char list[48] = "";

	if (entries >= 0)
		snprintf(list, sizeof(list), "; list of %lld", entries);
	if (strcmp(r->kind, "key") == 0)
		snprintf(note, cap, "new key %s (old key %s, old head seq=%lld)%s", key ? key : "?",
			 old ? old : "?", detail_int(d, "old_head_seq"), list);
	else if (strcmp(r->method, "blacklist.remove") == 0)
		snprintf(note, cap, "%lld removed, %lld not listed, of %lld lines%s",
			 detail_int(d, "removed"), detail_int(d, "not_listed"),
			 detail_int(d, "lines"), list);
	else if (strcmp(r->method, "blacklist.migrate") == 0)
		snprintf(note, cap, "the list put in the chain (schema %lld)%s",
			 detail_int(d, "schema"), list);
	else if (d && detail_int(d, "added") >= 0)
		snprintf(note, cap, "%lld added, of %lld lines%s", detail_int(d, "added"),
			 detail_int(d, "lines"), list);
	else
		snprintf(note, cap, "%s", r->detail);
	json_decref(d);
}

/* journal show: one row of the table. */
static int show_row(void *arg, const struct journal_row *r)
{
	const char *prog = strrchr(r->exe, '/');
	char note[512] = "";

	(void)arg;
	prog = prog ? prog + 1 : r->exe;
	if (strcmp(r->kind, "intent") == 0)
		snprintf(note, sizeof(note), "file %s", r->file);
	else if (strcmp(r->kind, "outcome") == 0)
		snprintf(note, sizeof(note), "of intent %" PRId64 " (%s)", r->intent, r->detail);
	else if (strcmp(r->kind, "prune") == 0)
		snprintf(note, sizeof(note), "%" PRId64 " rows removed", r->duration_ms);
	else if (strcmp(r->kind, "blacklist") == 0 || strcmp(r->kind, "key") == 0)
		list_note(r, note, sizeof(note));
	else if (strstr(r->detail, "\"allow_lost\":true"))
		snprintf(note, sizeof(note), "%" PRId64 " ms, allow_lost (lost: %s)", r->duration_ms,
			 strstr(r->detail, "\"lost\":true") ? "yes, read anyway" :
			 strstr(r->detail, "\"lost\":false") ? "no" : "not checked");
	else
		snprintf(note, sizeof(note), "%" PRId64 " ms", r->duration_ms);
	printf("%7" PRId64 " %-24s %-9s %6" PRId64 " %7" PRId64 " %-14.14s %-18s %-24s %-12.12s "
	       "%-20s %s\n", r->seq, r->time, r->kind, r->uid, r->pid, prog[0] ? prog : "-",
	       r->method[0] ? r->method : "-", r->reader[0] ? r->reader : "-",
	       r->card[0] ? r->card : "-", r->result[0] ? r->result : "-", note);
	return 0;
}

static int cmd_journal_show(const struct opts *o)
{
	struct journal *j;
	int rc;

	rc = journal_open_for(o, 0, &j);
	if (rc != 0)
		return rc;
	printf("%7s %-24s %-9s %6s %7s %-14s %-18s %-24s %-12s %-20s %s\n", "SEQ", "TIME (UTC)",
	       "KIND", "UID", "PID", "PROGRAM", "METHOD/OUTCOME", "READER", "CARD", "RESULT",
	       "NOTE");
	rc = journal_rows(j, o->since, o->limit ? o->limit : SHOW_DEFAULT_LIMIT, show_row, NULL);
	journal_close(j);
	if (rc != 0) {
		fprintf(stderr, "sscardctl: reading the journal failed\n");
		return EXIT_J_OPEN;
	}
	return EXIT_OK;
}

/*
 * Whether a write to f failed (with errno e) because its reader has gone: a pipe or socket whose
 * other end is closed (`journal export | head`). That is a normal end, not an error.
 */
static int reader_gone(FILE *f, int e)
{
	struct pollfd p = { .fd = fileno(f), .events = POLLOUT };

	if (e == EPIPE)
		return 1;
	/* A pipe without readers polls POLLERR; a socket whose peer closed, POLLHUP. */
	return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) &&
	       !(p.revents & POLLNVAL);
}

static int cmd_journal_export(const struct opts *o)
{
	struct journal *j;
	int rc, e;

	rc = journal_open_for(o, 0, &j);
	if (rc != 0)
		return rc;
	rc = journal_export(j, o->since > 0 ? o->since : 0, stdout);
	if (rc >= 0 && fflush(stdout) != 0)
		rc = SSC_EIO;
	e = errno;   /* the failed write's, before closing the journal can change it */
	journal_close(j);
	if (rc == SSC_EIO && reader_gone(stdout, e))
		return EXIT_OK;   /* `journal export | head`: the reader has what it wanted */
	if (rc == SSC_EIO) {
		fprintf(stderr, "sscardctl: writing the rows failed: %s\n", strerror(e));
		return EXIT_J_IO;
	}
	if (rc < 0) {
		fprintf(stderr, "sscardctl: reading the journal failed\n");
		return EXIT_J_OPEN;
	}
	return EXIT_OK;
}

/* Opens a list file ('-' = stdin), saying why not. NULL after an error message. */
static FILE *list_open(const char *file)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");

	if (!f)
		fprintf(stderr, "sscardctl: %s: %s\n", file, strerror(errno));
	return f;
}

static void list_close(FILE *f)
{
	if (f && f != stdin)
		fclose(f);
}

/* blacklist import FILE, blacklist remove FILE. */
static int cmd_blacklist_change(const struct opts *o, const char *file, int remove)
{
	struct journal *j;
	struct ssc_diag d;
	int rc, not_listed = 0;
	FILE *f = list_open(file);

	if (!f)
		return EXIT_J_IO;
	rc = journal_open_for(o, 1, &j);
	if (rc != 0) {
		list_close(f);
		return rc;
	}
	ssc_diag_init(&d);
	rc = remove ? journal_blacklist_remove(j, f, &not_listed, &d)
		    : journal_blacklist_import(j, f, &d);
	journal_close(j);
	list_close(f);
	if (rc < 0) {
		fprintf(stderr, "sscardctl: %s: %s (nothing was %s)\n",
			strcmp(file, "-") == 0 ? "stdin" : file, d.msg[0] ? d.msg : ssc_strerror(rc),
			remove ? "removed" : "imported");
		return rc == SSC_EINVAL ? EXIT_J_BAD : rc == SSC_EIO ? EXIT_J_IO : EXIT_J_OPEN;
	}
	if (remove)
		printf("blacklist remove: %d removed (%d not on the list)\n", rc, not_listed);
	else
		printf("blacklist import: %d added\n", rc);
	return EXIT_OK;
}

struct list_print {
	int json;
	long n;
};

static int list_row(void *arg, const struct journal_list_entry *e)
{
	struct list_print *p = arg;
	struct passwd *pw = e->uid >= 0 ? getpwuid((uid_t)e->uid) : NULL;

	p->n++;
	if (p->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "kind", e->kind[0] ? e->kind : "unknown",
				      "ref", e->ref, "added", e->added, "uid", (json_int_t)e->uid);
		char *t = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

		json_decref(o);
		if (!t)
			return SSC_ENOMEM;
		puts(t);
		free(t);
		return 0;
	}
	if (p->n == 1)
		printf("%-7s %-32s %-24s %s\n", "KIND", "REF (keyed name)", "ADDED (UTC)", "BY");
	if (e->uid >= 0)
		printf("%-7s %-32s %-24s %lld%s%s%s\n", e->kind[0] ? e->kind : "unknown", e->ref,
		       e->added, (long long)e->uid, pw ? " (" : "", pw ? pw->pw_name : "",
		       pw ? ")" : "");
	else
		printf("%-7s %-32s %-24s %s\n", e->kind[0] ? e->kind : "unknown", e->ref, e->added,
		       "unknown");
	return 0;
}

/* blacklist list: the entries, with no card number (the list holds none). */
static int cmd_blacklist_list(const struct opts *o)
{
	struct list_print p = { .json = o->json };
	struct journal *j;
	int rc = journal_open_for(o, 0, &j);

	if (rc != 0)
		return rc;
	rc = journal_blacklist_entries(j, list_row, &p);
	journal_close(j);
	if (rc != 0) {
		fprintf(stderr, "sscardctl: reading the lost-card list failed\n");
		return EXIT_J_OPEN;
	}
	if (!o->json)
		printf(p.n ? "%ld entries\n" : "the lost-card list is empty\n", p.n);
	if (fflush(stdout) != 0)
		return EXIT_J_IO;
	return EXIT_OK;
}

/* journal rotate-key [--lost-cards FILE]. */
static int cmd_journal_rotate(const struct opts *o)
{
	struct journal_rotation rot;
	struct journal *j;
	struct ssc_diag d;
	FILE *f = NULL;
	int rc;

	if (o->lost_cards && !(f = list_open(o->lost_cards)))
		return EXIT_J_IO;
	rc = journal_open_for(o, 1, &j);
	if (rc != 0) {
		list_close(f);
		return rc;
	}
	ssc_diag_init(&d);
	rc = journal_rotate_key(j, f, &rot, &d);
	journal_close(j);
	list_close(f);
	if (rc != 0) {
		fprintf(stderr, "sscardctl: journal rotate-key: %s\n",
			d.msg[0] ? d.msg : ssc_strerror(rc));
		return rc == SSC_EIO ? EXIT_J_IO : EXIT_J_BAD;
	}
	printf("journal rotate-key: the journal is under a new key (%s; it was %s)\n",
	       rot.new_key_id, rot.old_key_id);
	printf("the first row under it is %" PRId64 "; it records the old head seq=%" PRId64
	       " hash=%s\n", rot.key_row_seq, rot.old_head_seq, rot.old_head_hash);
	printf("lost-card list: %" PRId64 " entries re-keyed", rot.entries);
	if (o->lost_cards)
		printf(" (%d other card(s) of %s are not on the list: ignored)", rot.ignored,
		       o->lost_cards);
	printf("\nthe old key is kept in %s: rows up to %" PRId64 " verify with "
	       "'sscardctl journal verify --old-key %s'; keep it away from this machine\n",
	       rot.old_key_path, rot.old_head_seq, rot.old_key_path);
	return EXIT_OK;
}

/* journal verify|show|export|rotate-key, blacklist import|remove FILE, blacklist list. */
static int run_journal(const struct opts *o)
{
	const char *cmd = o->args[0], *sub = o->n_args > 1 ? o->args[1] : "";
	int journal = strcmp(cmd, "journal") == 0;
	int verify = journal && strcmp(sub, "verify") == 0;
	int show = journal && strcmp(sub, "show") == 0;
	int export = journal && strcmp(sub, "export") == 0;
	int rotate = journal && strcmp(sub, "rotate-key") == 0;
	int import = !journal && strcmp(sub, "import") == 0;
	int remove = !journal && strcmp(sub, "remove") == 0;
	int list = !journal && strcmp(sub, "list") == 0;

	if (!(verify || show || export || rotate || import || remove || list)) {
		fprintf(stderr, "sscardctl: %s: expected %s (try --help)\n", cmd,
			journal ? "verify, show, export or rotate-key"
				: "import FILE, remove FILE or list");
		return EXIT_USAGE;
	}
	if (o->n_args != (import || remove ? 3 : 2) || (o->json && !list) || o->reader ||
	    o->count || o->for_ms || o->internal_auth || o->verify_card_id || o->allow_lost ||
	    ((o->head || o->log || o->n_old_keys) && !verify) ||
	    (o->since >= 0 && !show && !export) || (o->limit && !show) ||
	    (o->lost_cards && !rotate)) {
		fprintf(stderr, "sscardctl: %s %s: wrong arguments or options (try --help)\n", cmd,
			sub);
		return EXIT_USAGE;
	}
	if (verify)
		return cmd_journal_verify(o);
	if (show)
		return cmd_journal_show(o);
	if (export)
		return cmd_journal_export(o);
	if (rotate)
		return cmd_journal_rotate(o);
	if (list)
		return cmd_blacklist_list(o);
	return cmd_blacklist_change(o, o->args[2], remove);
}

/* ---- the card commands that take PINs or values ---------------------------------------- */

/*
 * The PIN commands: their method, the params read as PINs (one a line, in this order) with their
 * prompts on a terminal, and the result member that says it worked. A new PIN is typed twice on a
 * terminal (a typing error would lock the holder out); on a pipe it comes once.
 */
static const struct pin_cmd {
	const char *cmd, *method;
	const char *pins[2];
	const char *prompts[2];
	const char *done_key, *done_text;
} pin_cmds[] = {
	{ "verify-pin", "card.verify_pin", { "pin", NULL }, { "PIN: ", NULL }, "verified",
	  "密码正确 PIN verified" },
	{ "change-pin", "card.change_pin", { "old_pin", "new_pin" }, { "Old PIN: ", "New PIN: " },
	  "changed", "密码已修改 PIN changed" },
	{ "reload-pin", "card.reload_pin", { "new_pin", NULL }, { "New PIN: ", NULL }, "reloaded",
	  "密码已重置 PIN reloaded" },
	{ "unblock-pin", "card.unblock_pin", { "new_pin", NULL }, { "New PIN: ", NULL },
	  "unblocked", "密码已解锁 PIN unblocked" },
};

static const struct pin_cmd *pin_cmd_find(const char *cmd)
{
	for (size_t i = 0; i < sizeof(pin_cmds) / sizeof(pin_cmds[0]); i++)
		if (strcmp(pin_cmds[i].cmd, cmd) == 0)
			return &pin_cmds[i];
	return NULL;
}

/* Says why pinentry_read() failed (rc), for the PIN called what. Returns EXIT_USAGE. */
static int pin_failed(int rc, const char *what)
{
	if (rc == SSC_ENOTFOUND)
		fprintf(stderr, "sscardctl: no %s: the input ended first (give the PINs one a line "
			"on stdin, or type them at the terminal)\n", what);
	else if (rc == SSC_EINVAL)
		fprintf(stderr, "sscardctl: the %s line is longer than %d characters or not text\n",
			what, PINENTRY_MAX);
	else
		fprintf(stderr, "sscardctl: cannot read the %s: %s\n", what, strerror(errno));
	return EXIT_USAGE;
}

/*
 * Reads the PINs of pc from stdin (the terminal without echo, or one a line) into params. Never
 * from the command line: other users see it in the process list. Returns 0 or EXIT_USAGE after
 * saying why; the buffers are wiped either way (the copies in params are wiped when freed:
 * main() gives jansson wiping allocators).
 */
static int read_pins(const struct pin_cmd *pc, json_t *params)
{
	char pin[PINENTRY_MAX + 1], again[PINENTRY_MAX + 1];
	int tty = isatty(STDIN_FILENO), rc = 0;

	for (int i = 0; i < 2 && pc->pins[i] && rc == 0; i++) {
		const char *what = strcmp(pc->pins[i], "pin") == 0 ? "PIN" :
				   strcmp(pc->pins[i], "old_pin") == 0 ? "old PIN" : "new PIN";

		rc = pinentry_read(STDIN_FILENO, pc->prompts[i], pin, sizeof(pin));
		if (rc != 0) {
			rc = pin_failed(rc, what);
			break;
		}
		if (tty && strcmp(pc->pins[i], "new_pin") == 0) {
			rc = pinentry_read(STDIN_FILENO, "New PIN again: ", again, sizeof(again));
			if (rc != 0) {
				rc = pin_failed(rc, "new PIN");
			} else if (strcmp(pin, again) != 0) {
				fprintf(stderr, "sscardctl: the two new PINs differ: nothing was sent\n");
				rc = EXIT_USAGE;
			}
			pinentry_wipe(again, sizeof(again));
		}
		if (rc == 0 && json_object_set_new(params, pc->pins[i], json_string(pin)) != 0) {
			fprintf(stderr, "sscardctl: the %s is not text\n", what);
			rc = EXIT_USAGE;
		}
		pinentry_wipe(pin, sizeof(pin));
	}
	return rc;
}

/* `call METHOD -`: the params object, read from stdin to its end (it may hold a PIN). */
static int stdin_params(json_t **out)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	json_error_t e;
	int rc = 0;

	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;

			if (cap >= PARAMS_MAX) {
				fprintf(stderr, "sscardctl: params on stdin longer than %d bytes\n",
					PARAMS_MAX);
				rc = EXIT_USAGE;
				break;
			}
			nb = malloc(ncap);
			if (!nb) {
				fprintf(stderr, "sscardctl: out of memory\n");
				rc = EXIT_USAGE;
				break;
			}
			if (buf) {
				memcpy(nb, buf, len);
				OPENSSL_cleanse(buf, cap);
				free(buf);
			}
			buf = nb;
			cap = ncap;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "sscardctl: reading the params from stdin: %s\n",
				strerror(errno));
			rc = EXIT_USAGE;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (rc == 0) {
		*out = json_loadb(buf ? buf : "", len, 0, &e);
		if (!json_is_object(*out)) {
			fprintf(stderr, "sscardctl: the params on stdin must be a JSON object%s%s\n",
				*out ? "" : ": ", *out ? "" : e.text);
			json_decref(*out);
			*out = NULL;
			rc = EXIT_USAGE;
		}
	}
	if (buf) {
		OPENSSL_cleanse(buf, cap);
		free(buf);
	}
	return rc;
}

/*
 * write-items FILE TAG=VALUE...: {"file", "items": {TAG: VALUE}}. A VALUE that starts with '{' is
 * a JSON object (a DF04/EF08 transaction); any other is a string, as card.read_items shows it.
 * Returns 0 or EXIT_USAGE after saying why.
 */
static int write_items_params(const struct opts *o, json_t **out)
{
	json_t *items = json_object();
	int rc = 0;

	for (int i = 2; i < o->n_args && rc == 0; i++) {
		const char *a = o->args[i], *eq = strchr(a, '=');
		char tag[16];
		json_t *v;
		json_error_t e;

		if (!eq || eq == a || (size_t)(eq - a) >= sizeof(tag)) {
			fprintf(stderr, "sscardctl: write-items: expected TAG=VALUE, e.g. 31=21, not "
				"\"%s\"\n", a);
			rc = EXIT_USAGE;
			break;
		}
		snprintf(tag, sizeof(tag), "%.*s", (int)(eq - a), a);
		if (json_object_get(items, tag)) {
			fprintf(stderr, "sscardctl: write-items: item %s given twice\n", tag);
			rc = EXIT_USAGE;
			break;
		}
		if (eq[1] == '{') {
			v = json_loads(eq + 1, 0, &e);
			if (!json_is_object(v)) {
				fprintf(stderr, "sscardctl: write-items: the value of %s starts with '{' "
					"but is not a JSON object%s%s\n", tag, v ? "" : ": ",
					v ? "" : e.text);
				json_decref(v);
				rc = EXIT_USAGE;
				break;
			}
		} else {
			v = json_string(eq + 1);
			if (!v) {
				fprintf(stderr, "sscardctl: write-items: the value of %s is not UTF-8 "
					"text\n", tag);
				rc = EXIT_USAGE;
				break;
			}
		}
		json_object_set_new(items, tag, v);
	}
	if (rc != 0) {
		json_decref(items);
		return rc;
	}
	*out = json_pack("{s:s, s:o}", "file", o->args[1], "items", items);
	return *out ? 0 : EXIT_USAGE;
}

static int run(const struct opts *o)
{
	const char *cmd = o->args[0];
	const struct pin_cmd *pc = o->n_args ? pin_cmd_find(cmd) : NULL;
	long long deadline;
	json_t *params = NULL, *res = NULL;
	const char *method;
	char sock[CONFIG_PATH_MAX], sock_from[CONFIG_PATH_MAX + 64], errname[ERRNAME_MAX] = "";
	struct conn c;
	int rc;

	if (o->n_args == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "journal") == 0 || strcmp(cmd, "blacklist") == 0)
		return run_journal(o);
	if (o->journal || o->head || o->log || o->since >= 0 || o->limit || o->n_old_keys ||
	    o->lost_cards) {
		fprintf(stderr, "sscardctl: --journal, --head, --log, --old-key, --since, --limit and "
			"--lost-cards only go with the journal and blacklist commands\n");
		return EXIT_USAGE;
	}
	if (o->reader && strcmp(cmd, "read-basic") != 0 && strcmp(cmd, "read-items") != 0 &&
	    strcmp(cmd, "internal-auth") != 0 && strcmp(cmd, "write-items") != 0 && !pc) {
		fprintf(stderr, "sscardctl: --reader only goes with the card commands (read-basic, "
			"read-items, internal-auth, write-items and the PIN commands)\n");
		return EXIT_USAGE;
	}
	if ((o->internal_auth || o->verify_card_id) && strcmp(cmd, "read-basic") != 0) {
		fprintf(stderr, "sscardctl: --internal-auth and --verify-card-id only go with "
			"read-basic\n");
		return EXIT_USAGE;
	}
	if (o->allow_lost && strcmp(cmd, "read-basic") != 0 && strcmp(cmd, "read-items") != 0) {
		fprintf(stderr, "sscardctl: --allow-lost only goes with read-basic and read-items (a "
			"lost card is never written or given a PIN operation)\n");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "info") == 0 && o->n_args == 1) {
		method = "system.info";
	} else if (strcmp(cmd, "readers") == 0 && o->n_args == 1) {
		method = "reader.list";
	} else if (strcmp(cmd, "read-basic") == 0 && o->n_args == 1) {
		method = "card.read_basic";
		params = json_object();
		if (o->internal_auth)
			json_object_set_new(params, "internal_auth", json_true());
		if (o->verify_card_id)
			json_object_set_new(params, "verify_card_id", json_true());
		if (o->allow_lost)
			json_object_set_new(params, "allow_lost", json_true());
	} else if (strcmp(cmd, "read-items") == 0 && o->n_args >= 3) {
		json_t *items = json_array();

		method = "card.read_items";
		for (int i = 2; i < o->n_args; i++)
			json_array_append_new(items, json_string(o->args[i]));
		params = json_pack("{s:s, s:o}", "file", o->args[1], "items", items);
		if (params && o->allow_lost)
			json_object_set_new(params, "allow_lost", json_true());
	} else if (strcmp(cmd, "internal-auth") == 0 && o->n_args == 1) {
		method = "card.internal_auth";
		params = json_object();
	} else if (pc && o->n_args == 1) {
		method = pc->method;
		params = json_object();
		rc = read_pins(pc, params);
		if (rc != 0) {
			json_decref(params);
			return rc;
		}
	} else if (strcmp(cmd, "write-items") == 0 && o->n_args >= 3) {
		method = "card.write_items";
		rc = write_items_params(o, &params);
		if (rc != 0)
			return rc;
	} else if (strcmp(cmd, "events") == 0 && o->n_args == 1) {
		method = NULL;
	} else if (strcmp(cmd, "call") == 0 && o->n_args == 3 && strcmp(o->args[2], "-") == 0) {
		method = o->args[1];
		rc = stdin_params(&params);
		if (rc != 0)
			return rc;
	} else if (strcmp(cmd, "call") == 0 && (o->n_args == 2 || o->n_args == 3)) {
		method = o->args[1];
		if (o->n_args == 3) {
			json_error_t e;

			params = json_loads(o->args[2], 0, &e);
			if (!json_is_object(params)) {
				fprintf(stderr, "sscardctl: PARAMS-JSON must be a JSON object%s%s\n",
					params ? "" : ": ", params ? "" : e.text);
				json_decref(params);
				return EXIT_USAGE;
			}
		}
	} else {
		fprintf(stderr, "sscardctl: unknown command or wrong arguments: %s (try --help)\n",
			cmd);
		return EXIT_USAGE;
	}
	if (o->count && strcmp(cmd, "events") != 0) {
		fprintf(stderr, "sscardctl: --count only goes with events\n");
		json_decref(params);
		return EXIT_USAGE;
	}
	if (o->reader)
		json_object_set_new(params, "reader", json_string(o->reader));

	/* From here, not from the start: typing the PINs takes the time it takes. */
	deadline = now_ms() + o->timeout_ms;
	rc = socket_path(o, sock, sock_from, sizeof(sock_from));
	if (rc == 0)
		rc = conn_open(&c, sock, sock_from, deadline);
	if (rc != 0) {
		json_decref(params);
		return rc;
	}
	if (!method) {
		rc = cmd_events(&c, o, deadline);
		conn_close(&c);
		return rc;
	}
	rc = call(&c, method, params, &res, deadline, errname);
	conn_close(&c);
	if (rc == EXIT_API && pc && strcmp(errname, "SSC_EPINWRONG") == 0)
		return EXIT_PIN_WRONG;
	if (rc == EXIT_API && pc && strcmp(errname, "SSC_EPINBLOCKED") == 0)
		return EXIT_PIN_BLOCKED;
	if (rc != 0)
		return rc;
	if (o->json || strcmp(cmd, "call") == 0)
		print_json(res);
	else if (strcmp(cmd, "info") == 0)
		out_info(res);
	else if (strcmp(cmd, "readers") == 0)
		out_readers(res);
	else if (strcmp(cmd, "read-basic") == 0 || strcmp(cmd, "internal-auth") == 0)
		out_basic(res);
	else if (pc)
		out_done(res, pc->done_key, pc->done_text);
	else if (strcmp(cmd, "write-items") == 0)
		out_written(res);
	else
		out_items(res);
	json_decref(res);
	return EXIT_OK;
}

/*
 * jansson's free: wipes the block first. Params may hold PINs, and jansson copies strings into
 * blocks of its own (the request object, its text); so every one of them is wiped when freed.
 */
static void wiping_free(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

int main(int argc, char **argv)
{
	static struct opts o;

	json_set_alloc_funcs(malloc, wiping_free);
	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &o) != 0)
		return EXIT_USAGE;
	return run(&o);
}
