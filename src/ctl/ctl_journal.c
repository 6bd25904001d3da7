/*
 * This file contains sscardctl's operator commands (src/ctl/ctl_journal.h): they open the journal
 * the daemon's configuration names (or --journal), read-only except for blacklist import/remove and
 * rotate-key, and print rows, the chain's verdict or the lost-card list.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl/ctl.h"
#include "ctl/ctl_journal.h"
#include "journal.h"

/* Exit codes of the journal commands (they do not talk to the daemon). */
#define EXIT_J_BAD 1       /* verify: the chain is broken; import: a malformed line; rotate-key:
			    * refused */
#define EXIT_J_OPEN 3      /* cannot open the journal (missing, no key, not a database) */
#define EXIT_J_IO 4        /* cannot read the log or the list, cannot write the output */

/*
 * Opens the journal named by --journal / --config (read-only unless rw), printing why not.
 * Returns 0 or an exit code.
 */
static int journal_open_for(const struct ctl_opts *o, int rw, struct journal **out)
{
	struct config cfg;
	struct ssc_diag d;
	struct stat st;
	const char *path, *file;
	int rc;

	rc = ctl_load_config(o, &cfg, &file);
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

static int cmd_journal_verify(const struct ctl_opts *o)
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

static int cmd_journal_show(const struct ctl_opts *o)
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

static int cmd_journal_export(const struct ctl_opts *o)
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

/*
 * Opens the list file (NULL: none; *f NULL then) and the journal for writing, in that order.
 * Returns 0, or an exit code after saying why (nothing left open).
 */
static int list_and_journal_open(const struct ctl_opts *o, const char *file, FILE **f,
				 struct journal **j)
{
	int rc;

	*f = NULL;
	if (file && !(*f = list_open(file)))
		return EXIT_J_IO;
	rc = journal_open_for(o, 1, j);
	if (rc != 0) {
		list_close(*f);
		*f = NULL;
	}
	return rc;
}

/* blacklist import FILE, blacklist remove FILE. */
static int cmd_blacklist_change(const struct ctl_opts *o, const char *file, int remove)
{
	struct journal *j;
	struct ssc_diag d;
	int rc, not_listed = 0;
	FILE *f;

	rc = list_and_journal_open(o, file, &f, &j);
	if (rc != 0)
		return rc;
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
static int cmd_blacklist_list(const struct ctl_opts *o)
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
static int cmd_journal_rotate(const struct ctl_opts *o)
{
	struct journal_rotation rot;
	struct journal *j;
	struct ssc_diag d;
	FILE *f;
	int rc;

	rc = list_and_journal_open(o, o->lost_cards, &f, &j);
	if (rc != 0)
		return rc;
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
int ctl_journal_run(const struct ctl_opts *o)
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
