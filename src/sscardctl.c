/*
 * This file contains sscardctl, the command-line client of sscardd: its options and commands, the
 * params of each card command (PINs read without echo or from stdin, never from the command line),
 * and the answers printed for people (labels in Chinese and English) or as raw JSON. The connection
 * is src/ctl/ctl_conn.c, the daemon's configuration src/ctl/ctl_config.c, the operator's journal
 * and blacklist commands src/ctl/ctl_journal.c.
 * Every wait has a deadline; exit codes say what went wrong.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include "config.h"
#include "ctl/ctl.h"
#include "ctl/ctl_conn.h"
#include "ctl/ctl_journal.h"
#include "ctl/ctl_medical.h"
#include "ctl/ctl_receipt.h"
#include "ctl/ctl_web.h"
#include "pinentry.h"
#include "sscard/error.h"

#define DEFAULT_SOCKET "/run/sscard/sscardd.sock"
#define DEFAULT_TIMEOUT_MS 15000   /* above the daemon's default op_timeout_ms (10 s) */
#define PARAMS_MAX (16 * 1024 * 1024)   /* `call METHOD -`: params read from stdin */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sscardctl [--config FILE] [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
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
		"  read-basic --hsm-step1 [--reader ID] | --hsm-step2 SESSION KEY\n"
		"                                     the two-step read with the key server: step 1\n"
		"                                     prints the session and the string for the key\n"
		"                                     server; step 2 takes its answer 'C|DATA|'\n"
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
		"  claim [--reader ID] [--request-id ID]  verify the holder (PIN) and the card for a\n"
		"                                     claim: a receipt signed by the desk's key\n"
		"  receipt pubkey | receipt verify --pubkey PEM FILE|-\n"
		"                                     the receipt key's public half; check a claim\n"
		"  medical credentials [--reader ID]  the insured's identification for the NHSA platform\n"
		"  medical settle TRANSACTION-JSON|- --request-id ID [--reader ID]\n"
		"                                     an offline settlement: the DF04/EF08 record, the\n"
		"                                     DF04/EF06 flag, queued for upload\n"
		"  medical pending [SINCE] | medical ack ID... | medical clear-flag [--reader ID]\n"
		"                                     the queue (after id SINCE); mark settlements\n"
		"                                     uploaded; clear the card's offline flag\n"
		"  write-items FILE TAG=VALUE... [--reader ID]\n"
		"                                     write items (card.write_items), e.g.\n"
		"                                     write-items DF04/EF05 31=21 34=1; a VALUE that\n"
		"                                     starts with '{' is JSON (a DF04/EF08 transaction)\n"
		"                                     (this and the PIN changes take --request-id ID:\n"
		"                                     a repeat answers the first result, writes once)\n"
		"  events [--count N] [--for MS]      print reader and card events as they happen\n"
		"  call METHOD [PARAMS-JSON | -]      any API method, e.g. call reader.list '{}';\n"
		"                                     '-' reads the params from stdin (for PINs)\n"
		"\n"
		"  web pair ORIGIN                    let a browser page of ORIGIN in through\n"
		"                                     sscard-web: prints a single-use code (5 minutes)\n"
		"                                     on its last line (root or [web] admin_group)\n"
		"  web revoke ORIGIN                  revoke every page of ORIGIN paired so far\n"
		"  web list                           the paired origins and the codes waiting\n"
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
static int parse_opts(int argc, char **argv, struct ctl_opts *o)
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
		if (strcmp(name, "--hsm-step1") == 0 && !eq) {
			o->hsm_step1 = 1;
			continue;
		}
		if (strcmp(name, "--socket") != 0 && strcmp(name, "--timeout") != 0 &&
		    strcmp(name, "--reader") != 0 && strcmp(name, "--count") != 0 &&
		    strcmp(name, "--for") != 0 && strcmp(name, "--journal") != 0 &&
		    strcmp(name, "--config") != 0 && strcmp(name, "--head") != 0 &&
		    strcmp(name, "--log") != 0 && strcmp(name, "--since") != 0 &&
		    strcmp(name, "--limit") != 0 && strcmp(name, "--old-key") != 0 &&
		    strcmp(name, "--lost-cards") != 0 && strcmp(name, "--hsm-step2") != 0 &&
		    strcmp(name, "--request-id") != 0 && strcmp(name, "--pubkey") != 0) {
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
		} else if (strcmp(name, "--hsm-step2") == 0) {
			o->hsm_step2 = val;
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
		} else if (strcmp(name, "--request-id") == 0) {
			o->request_id = val;
		} else if (strcmp(name, "--pubkey") == 0) {
			o->pubkey = val;
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
	printf("%-28s %-8s %-5s %-8s %-5s %-12s %-5s %s\n", "ID", "DRIVER", "CARD", "ROLE",
	       "ALGO", "TERMINAL", "BUSY", "NAME");
	json_array_foreach(arr, i, e) {
		const char *algo = json_string_value(json_object_get(e, "algorithm"));
		const char *term = json_string_value(json_object_get(e, "terminal_number"));

		printf("%-28s %-8s %-5s %-8s %-5s %-12s %-5s %s\n",
		       json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "driver")),
		       json_is_true(json_object_get(e, "card")) ? "yes" : "no",
		       json_string_value(json_object_get(e, "role")), algo ? algo : "-",
		       term ? term : "-", json_is_true(json_object_get(e, "busy")) ? "yes" : "no",
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
	/* card.ready says what the card turned out to be, or why it could not be told. */
	const char *type = json_string_value(json_object_get(params, "type"));
	const char *role = type && strcmp(type, "card.ready") == 0
				   ? json_string_value(json_object_get(params, "role"))
				   : NULL;
	const char *error = json_string_value(json_object_get(params, "error"));

	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s %-14s %s%s%s%s%s%s%s%s\n", stamp, type ? type : "?",
	       json_string_value(json_object_get(params, "reader")), name ? " (" : "",
	       name ? name : "", name ? ")" : "", role ? " role " : "", role ? role : "",
	       error ? " error " : "", error ? error : "");
	fflush(stdout);
}

/* ---- commands --------------------------------------------------------------------------- */

static int cmd_events(struct ctl_conn *c, const struct ctl_opts *o, long long deadline)
{
	json_t *res = NULL, *msg;
	long long watch_deadline;
	long seen = 0;
	int rc;

	rc = ctl_conn_call(c, "events.subscribe", NULL, &res, deadline, NULL);
	if (rc != 0)
		return rc;
	json_decref(res);
	if (!o->json)
		fprintf(stderr, "sscardctl: waiting for events%s\n",
			o->for_ms ? "" : " (Ctrl-C ends)");
	/* The one wait without a deadline of ours: a watch that the user ends (or --for). */
	watch_deadline = o->for_ms ? ctl_now_ms() + o->for_ms : -1;
	while (o->count == 0 || seen < o->count) {
		const char *m;

		rc = ctl_conn_recv(c, &msg, watch_deadline);
		if (rc == CTL_CONN_TIMEOUT) {
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
	{ "claim", "claim.verify_holder", { "pin", NULL }, { "PIN: ", NULL }, NULL, NULL },
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
static int write_items_params(const struct ctl_opts *o, json_t **out)
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

static int run(const struct ctl_opts *o)
{
	const char *cmd = o->args[0];
	const struct pin_cmd *pc = o->n_args ? pin_cmd_find(cmd) : NULL;
	long long deadline;
	json_t *params = NULL, *res = NULL;
	const char *method;
	char sock[CONFIG_PATH_MAX], sock_from[CONFIG_PATH_MAX + 64], errname[CTL_ERRNAME_MAX] = "";
	struct ctl_conn c;
	int rc;

	if (o->n_args == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "journal") == 0 || strcmp(cmd, "blacklist") == 0)
		return ctl_journal_run(o);
	if (strcmp(cmd, "receipt") == 0)
		return ctl_receipt_run(o, ctl_load_config);
	if (o->journal || o->head || o->log || o->since >= 0 || o->limit || o->n_old_keys ||
	    o->lost_cards) {
		fprintf(stderr, "sscardctl: --journal, --head, --log, --old-key, --since, --limit and "
			"--lost-cards only go with the journal and blacklist commands\n");
		return EXIT_USAGE;
	}
	if (o->reader && strcmp(cmd, "read-basic") != 0 && strcmp(cmd, "read-items") != 0 &&
	    strcmp(cmd, "internal-auth") != 0 && strcmp(cmd, "write-items") != 0 && !pc &&
	    strcmp(cmd, "medical") != 0) {
		fprintf(stderr, "sscardctl: --reader only goes with the card commands (read-basic, "
			"read-items, internal-auth, write-items, claim, medical and the PIN "
			"commands)\n");
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
	if ((o->hsm_step1 || o->hsm_step2) &&
	    (strcmp(cmd, "read-basic") != 0 || (o->hsm_step1 && o->hsm_step2) ||
	     o->internal_auth || o->verify_card_id || o->allow_lost ||
	     (o->hsm_step2 && o->reader))) {
		fprintf(stderr, "sscardctl: --hsm-step1 [--reader ID] and --hsm-step2 SESSION KEY go "
			"with read-basic alone (step 2's reader is its session's)\n");
		return EXIT_USAGE;
	}
	if (o->request_id && strcmp(cmd, "write-items") != 0 && strcmp(cmd, "medical") != 0 &&
	    (!pc || strcmp(pc->method, "card.verify_pin") == 0)) {
		fprintf(stderr, "sscardctl: --request-id only goes with write-items, claim, change-pin, "
			"reload-pin, unblock-pin, medical settle and medical clear-flag\n");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "info") == 0 && o->n_args == 1) {
		method = "system.info";
	} else if (o->hsm_step1 && o->n_args == 1) {
		method = "card.hsm_step1";
		params = json_object();
	} else if (o->hsm_step2 && o->n_args == 2) {
		method = "card.hsm_step2";
		params = json_pack("{s:s, s:s}", "session", o->hsm_step2, "key", o->args[1]);
	} else if (strcmp(cmd, "readers") == 0 && o->n_args == 1) {
		method = "reader.list";
	} else if (strcmp(cmd, "read-basic") == 0 && o->n_args == 1 && !o->hsm_step2) {
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
	} else if (strcmp(cmd, "medical") == 0) {
		/* Printed as JSON: a hospital system takes it. */
		rc = ctl_medical_request((const char *const *)o->args, o->n_args, !!o->request_id,
					 !!o->reader, &method, &params);
		if (rc != 0)
			return rc;
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
	} else if (strcmp(cmd, "web") == 0 &&
		   ctl_web_request(o->args, o->n_args, &method, &params) == 0) {
		/* The browser bridge's pairings (the operator's: root or [web] admin_group). */
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
	if (o->request_id)
		json_object_set_new(params, "request_id", json_string(o->request_id));

	/* From here, not from the start: typing the PINs takes the time it takes. */
	deadline = ctl_now_ms() + o->timeout_ms;
	rc = ctl_socket_path(o, sock, sock_from, sizeof(sock_from));
	if (rc == 0)
		rc = ctl_conn_open(&c, sock, sock_from, deadline);
	if (rc != 0) {
		json_decref(params);
		return rc;
	}
	if (!method) {
		rc = cmd_events(&c, o, deadline);
		ctl_conn_close(&c);
		return rc;
	}
	rc = ctl_conn_call(&c, method, params, &res, deadline, errname);
	ctl_conn_close(&c);
	if (rc == EXIT_API && pc && strcmp(errname, "SSC_EPINWRONG") == 0)
		return EXIT_PIN_WRONG;
	if (rc == EXIT_API && pc && strcmp(errname, "SSC_EPINBLOCKED") == 0)
		return EXIT_PIN_BLOCKED;
	if (rc != 0)
		return rc;
	if (o->json || strcmp(cmd, "call") == 0 || strcmp(cmd, "medical") == 0)
		print_json(res);
	else if (strcmp(cmd, "info") == 0)
		out_info(res);
	else if (strcmp(cmd, "readers") == 0)
		out_readers(res);
	else if (o->hsm_step1)
		printf("session: %s\nstep1: %s\nexpires in: %lld ms\n",
		       json_string_value(json_object_get(res, "session")),
		       json_string_value(json_object_get(res, "step1")),
		       (long long)json_integer_value(json_object_get(res, "expires_in_ms")));
	else if (strcmp(cmd, "read-basic") == 0 || strcmp(cmd, "internal-auth") == 0)
		out_basic(res);
	else if (pc && !pc->done_key)
		ctl_receipt_print(res);
	else if (pc)
		out_done(res, pc->done_key, pc->done_text);
	else if (strcmp(cmd, "write-items") == 0)
		out_written(res);
	else if (strcmp(cmd, "web") == 0)
		ctl_web_print(o->args[1], res);
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
	static struct ctl_opts o;

	json_set_alloc_funcs(malloc, wiping_free);
	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &o) != 0)
		return EXIT_USAGE;
	return run(&o);
}
