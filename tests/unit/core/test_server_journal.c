/*
 * This file contains the tests of the journal as operators meet it (docs/operations.md): the
 * sscardctl journal verify / show / export and blacklist import commands on real temporary
 * journals, and the sscardd binary with its journal: directory and file modes, one audit row per
 * call, chain-head lines in its log that `verify --log` uses to catch a cut-off tail, pending
 * intents counted at start, and a corrupt journal that leaves the daemon serving with writes
 * refused until the file is usable again. The binaries are the ones built beside this test.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "journal.h"
#include "sscard/error.h"

static char bindir[PATH_MAX - 64];
static char ctl[PATH_MAX], ctl_built[PATH_MAX], daemon_bin[PATH_MAX];

struct fx {
	char dir[64];
	char db[128], log[128], conf[128], sock[128], list[128];
	pid_t daemon;
};

/* Output of one program run. */
struct run {
	int status;
	char out[32768];
	char err[8192];
};

static int group_setup(void **state)
{
	ssize_t n = readlink("/proc/self/exe", bindir, sizeof(bindir) - 1);
	char *slash;

	if (n < 0)
		return -1;
	bindir[n] = '\0';
	slash = strrchr(bindir, '/');
	*slash = '\0';
	snprintf(ctl_built, sizeof(ctl_built), "%s/../src/sscardctl", bindir);
	snprintf(ctl, sizeof(ctl), "%s", ctl_built);
	snprintf(daemon_bin, sizeof(daemon_bin), "%s/../src/sscardd", bindir);
	/* No pcscd for this daemon: no readers, which is all these tests need. */
	setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/ssc-test-journal/pcscd.comm", 1);
	unsetenv("SSCARD_SOCKET");
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-test-journal-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/j/journal.db", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/sscardd.log", f->dir);
	snprintf(f->conf, sizeof(f->conf), "%s/sscardd.conf", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/sscardd.sock", f->dir);
	snprintf(f->list, sizeof(f->list), "%s/lost.txt", f->dir);
	*state = f;
	return 0;
}

static void rm_rf(const char *path)
{
	char cmd[PATH_MAX];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "%s", path);
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->daemon > 0) {
		kill(f->daemon, SIGKILL);
		waitpid(f->daemon, NULL, 0);
	}
	rm_rf(f->dir);
	free(f);
	snprintf(ctl, sizeof(ctl), "%s", ctl_built);   /* a test may have run a copy (in f->dir) */
	return 0;
}

/* Reads fd to EOF into buf (NUL-terminated), with a 20 s bound. */
static void slurp(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 20000), 1);
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		assert_true(len < cap - 1);
	}
	buf[len] = '\0';
}

/*
 * Runs sscardctl with the args (NULL-terminated) as uid/gid (0 = as we are, with no
 * supplementary groups otherwise); stdin from in_path when not NULL.
 */
static void run_ctl_v(struct run *r, uid_t uid, gid_t gid, const char *in_path, va_list ap)
{
	const char *argv[32];
	int n = 0, o[2], e[2], status;
	pid_t pid;

	if (access(ctl, X_OK) != 0) {
		print_message("no %s: build the sscardctl target\n", ctl);
		skip();
	}
	argv[n++] = ctl;
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		if (in_path) {
			int fd = open(in_path, O_RDONLY);

			dup2(fd, 0);
		}
		if (uid != 0 && (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
				 setresuid(uid, uid, uid) != 0))
			_exit(126);
		execv(ctl, (char *const *)argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	slurp(o[0], r->out, sizeof(r->out));
	slurp(e[0], r->err, sizeof(r->err));
	close(o[0]);
	close(e[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	r->status = WEXITSTATUS(status);
	print_message("exit %d\nstdout: %s\nstderr: %s\n", r->status, r->out, r->err);
}

/*
 * Copies sscardctl into dir (mode 0755) and makes the runs use the copy until teardown: the build
 * tree may sit in a directory other uids cannot enter (a clone in mktemp -d, mode 0700).
 */
static void ctl_copy_for_others(const char *dir)
{
	char copy[PATH_MAX], buf[65536];
	int in, out;
	ssize_t n;

	snprintf(copy, sizeof(copy), "%s/sscardctl", dir);
	in = open(ctl, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		print_message("no %s: build the sscardctl target\n", ctl);
		skip();
	}
	out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(fchmod(out, 0755), 0);
	assert_int_equal(close(out), 0);
	snprintf(ctl, sizeof(ctl), "%s", copy);
}

static void run_ctl(struct run *r, const char *in_path, ...)
{
	va_list ap;

	va_start(ap, in_path);
	run_ctl_v(r, 0, 0, in_path, ap);
	va_end(ap);
}

static void run_ctl_as(struct run *r, uid_t uid, gid_t gid, ...)
{
	va_list ap;

	va_start(ap, gid);
	run_ctl_v(r, uid, gid, NULL, ap);
	va_end(ap);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void tamper(const char *db, const char *sql)
{
	sqlite3 *h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

/*
 * A journal with 5 audit rows, an intent and its outcome (7 rows), and a daemon-style log whose
 * last head line names row 7.
 */
static void make_journal(struct fx *f)
{
	struct journal_peer peer = { .uid = 1000, .pid = 42, .exe = "/usr/bin/counter" };
	char ref[JOURNAL_REF_HEX + 1], hash[JOURNAL_HASH_HEX + 1], line[256];
	struct journal *j;
	struct ssc_diag d;
	int64_t id, seq;
	FILE *log;
	char sub[160];

	snprintf(sub, sizeof(sub), "%s/j", f->dir);
	assert_int_equal(mkdir(sub, 0750), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), 0);
	journal_card_ref(j, "X00000019", ref);
	for (int i = 0; i < 5; i++) {
		struct journal_audit a = { .peer = &peer, .method = "card.read_basic",
					   .reader = "pcsc-virtual-pcd-00-00", .card_ref = ref,
					   .result = "SSC_OK", .duration_ms = 10 + i };

		assert_int_equal(journal_audit(j, &a, &d), 0);
	}
	assert_int_equal(journal_intent(j, &peer, ref, "pcsc-virtual-pcd-00-00", "DF04/EF08",
					"{\"op\":\"append\"}", &id, &d), 0);
	assert_int_equal(journal_outcome(j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_head(j, &seq, hash), 0);
	assert_int_equal(seq, 7);
	journal_close(j);
	log = fopen(f->log, "w");
	assert_non_null(log);
	fputs("2026-11-23T08:00:00.000Z info  sscardd 0.1.0 starting (API level 1, pid 1)\n", log);
	/* A client's text quoted in a debug line is not a head line. */
	fputs("2026-11-23T08:00:00.001Z debug client 3: journal head seq=1 hash=00\n", log);
	snprintf(line, sizeof(line), "2026-11-23T08:00:01.000Z info  journal head seq=7 hash=%s\n",
		 hash);
	fputs(line, log);
	fputs("2026-11-23T08:00:02.000Z info  client 4 closed: the peer finished\n", log);
	fclose(log);
}

static void head_of(const char *db, int64_t *seq, char *hash)
{
	struct journal *j;
	struct ssc_diag d;

	ssc_diag_init(&d);
	assert_int_equal(journal_open(db, NULL, JOURNAL_RDONLY, &j, &d), 0);
	assert_int_equal(journal_head(j, seq, hash), 0);
	journal_close(j);
}

static void test_verify(void **state)
{
	struct fx *f = *state;
	static struct run r;
	char hash[JOURNAL_HASH_HEX + 1], want[256], head[128];
	int64_t seq;

	make_journal(f);
	head_of(f->db, &seq, hash);
	snprintf(want, sizeof(want), "journal intact: 7 rows, head seq=7 hash=%s\n", hash);
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, want);

	snprintf(head, sizeof(head), "7:%s", hash);
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--head", head, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "it reaches the logged head seq=7"));
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", f->log, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "it reaches the logged head seq=7"));

	/* The last row is cut off: without the head it looks intact; with it, it does not. */
	tamper(f->db, "DELETE FROM rows WHERE seq = 7");
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "journal intact: 6 rows"));
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", f->log, NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, "journal NOT intact"));
	assert_non_null(strstr(r.out, "the chain ends at row 6 but the daemon logged head 7"));

	/* An edited row. */
	tamper(f->db, "UPDATE rows SET result = 'SSC_EPINWRONG' WHERE seq = 3");
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, "row 3 does not match its chain hash"));
}

/*
 * The head the log names (row 7) was pruned since: verify says the chain is intact and why the head
 * cannot be compared, with status 0, instead of a false "tail cut off".
 */
static void test_verify_pruned_head(void **state)
{
	struct fx *f = *state;
	static struct run r;
	struct journal_peer peer = { .uid = 1000, .pid = 42, .exe = "/usr/bin/counter" };
	struct journal_audit a = { .peer = &peer, .method = "card.read_basic",
				   .reader = "pcsc-virtual-pcd-00-00", .card_ref = "",
				   .result = "SSC_OK", .duration_ms = 1 };
	struct journal *j;
	struct ssc_diag d;

	make_journal(f);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), 0);
	assert_int_equal(journal_audit(j, &a, &d), 0);                           /* row 8 */
	assert_int_equal(journal_prune_before(j, (int64_t)time(NULL) + 3600, &d), 8); /* anchor 8 */
	journal_close(j);

	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", f->log, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "journal intact: 1 rows"));   /* the prune row */
	assert_non_null(strstr(r.out, "note: journal: the head to compare (row 7) lies before the "
				      "retention anchor (row 8)"));
	assert_null(strstr(r.out, "cut off"));
	assert_null(strstr(r.out, "it reaches the logged head"));
}

static void test_verify_usage_and_open_errors(void **state)
{
	struct fx *f = *state;
	static struct run r;
	char missing[160], nohead[160];

	make_journal(f);
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--head", "7:abc", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--head", "x", "--log", f->log,
		NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--limit", "3", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, NULL, "journal", "frobnicate", "--journal", f->db, NULL);
	assert_int_equal(r.status, 2);
	/* --journal is for the journal commands only. */
	run_ctl(&r, NULL, "info", "--journal", f->db, NULL);
	assert_int_equal(r.status, 2);
	/* A journal that is not there is never created by a typo. */
	snprintf(missing, sizeof(missing), "%s/no/such.db", f->dir);
	run_ctl(&r, NULL, "journal", "verify", "--journal", missing, NULL);
	assert_int_equal(r.status, 3);
	assert_int_equal(access(missing, F_OK), -1);
	run_ctl(&r, NULL, "blacklist", "import", f->log, "--journal", missing, NULL);
	assert_int_equal(r.status, 3);
	assert_int_equal(access(missing, F_OK), -1);
	/* No key file: refused (whoever removed it cannot be told apart from an attacker). */
	{
		char key[160], moved[160];

		snprintf(key, sizeof(key), "%s.key", f->db);
		snprintf(moved, sizeof(moved), "%s.key.moved", f->db);
		assert_int_equal(rename(key, moved), 0);
		run_ctl(&r, NULL, "journal", "show", "--journal", f->db, NULL);
		assert_int_equal(r.status, 3);
		assert_non_null(strstr(r.err, "key file"));
		assert_int_equal(rename(moved, key), 0);
	}
	/* A log without a head line, or no log. */
	snprintf(nohead, sizeof(nohead), "%s/nohead.log", f->dir);
	write_file(nohead, "2026-11-23T08:00:00.000Z info  ready\n");
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", nohead, NULL);
	assert_int_equal(r.status, 4);
	assert_non_null(strstr(r.err, "no \"journal head seq=N hash=H\" line"));
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", missing, NULL);
	assert_int_equal(r.status, 4);
}

/* The number of lines in s. */
static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

static void test_show_and_export(void **state)
{
	struct fx *f = *state;
	static struct run r;
	json_t *row;

	make_journal(f);
	run_ctl(&r, NULL, "journal", "show", "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(lines(r.out), 8);   /* the header and 7 rows */
	assert_non_null(strstr(r.out, "SEQ"));
	assert_non_null(strstr(r.out, "card.read_basic"));
	assert_non_null(strstr(r.out, "counter"));
	assert_non_null(strstr(r.out, "file DF04/EF08"));
	assert_non_null(strstr(r.out, "of intent 6 (card)"));
	assert_null(strstr(r.out, "X00000019"));
	run_ctl(&r, NULL, "journal", "show", "--journal", f->db, "--limit", "2", NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(lines(r.out), 3);
	assert_non_null(strstr(r.out, "      6 "));   /* the last two: 6 and 7 */
	assert_non_null(strstr(r.out, "      7 "));
	run_ctl(&r, NULL, "journal", "show", "--journal", f->db, "--since", "1", "--limit", "1",
		NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(lines(r.out), 2);
	assert_non_null(strstr(r.out, "      2 "));

	run_ctl(&r, NULL, "journal", "export", "--journal", f->db, "--since", "5", NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(lines(r.out), 2);
	row = json_loadb(r.out, (size_t)(strchr(r.out, '\n') - r.out), 0, NULL);
	assert_non_null(row);
	assert_int_equal(json_integer_value(json_object_get(row, "seq")), 6);
	assert_string_equal(json_string_value(json_object_get(row, "kind")), "intent");
	assert_string_equal(json_string_value(json_object_get(row, "file")), "DF04/EF08");
	assert_string_equal(json_string_value(json_object_get(row, "exe")), "/usr/bin/counter");
	assert_string_equal(json_string_value(json_object_get(json_object_get(row, "detail"), "op")),
			    "append");
	json_decref(row);
	run_ctl(&r, NULL, "journal", "export", "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(lines(r.out), 7);
}

static void test_blacklist_import(void **state)
{
	struct fx *f = *state;
	static struct run r;
	struct journal *j;
	struct ssc_diag d;
	char conf_text[256], bad[160];

	make_journal(f);
	write_file(f->list, "# lost cards, 2026-11-23\nX00000019\n\n"
			    "330100d15600000500bf7c7ac9fc0fec\nX00000027\n");
	run_ctl(&r, NULL, "blacklist", "import", f->list, "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "blacklist import: 3 added\n");
	/* Again: nothing new. From stdin, with the journal named by a config file. */
	snprintf(conf_text, sizeof(conf_text), "[journal]\npath = %s\n", f->db);
	write_file(f->conf, conf_text);
	run_ctl(&r, f->list, "blacklist", "import", "-", "--config", f->conf, NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "blacklist import: 0 added\n");
	/* A malformed line: named, and nothing of the file is taken. */
	snprintf(bad, sizeof(bad), "%s/bad.txt", f->dir);
	write_file(bad, "X00000035\nnot-a-card\n");
	run_ctl(&r, NULL, "blacklist", "import", bad, "--journal", f->db, NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "line 2"));
	assert_non_null(strstr(r.err, "nothing was imported"));

	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &j, &d), 0);
	assert_int_equal(journal_blacklisted(j, "X00000019", NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(j, NULL, "330100D15600000500BF7C7AC9FC0FEC", NULL), 1);
	assert_int_equal(journal_blacklisted(j, "X00000027", NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(j, "X00000035", NULL, NULL), 0);
	journal_close(j);
	/* The imports are rows of the chain, and the chain still holds. */
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "journal intact: 9 rows"));
}

/* ---- the daemon ------------------------------------------------------------------------- */

static void write_conf_group(struct fx *f, const char *group)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "[daemon]\nsocket_path = %s\nsocket_group = %s\n[journal]\npath = %s\n"
		 "reopen_interval_ms = 1000\nhead_interval_ms = 1000\n", f->sock, group, f->db);
	write_file(f->conf, text);
}



static void start_daemon(struct fx *f)
{
	pid_t pid;

	if (access(daemon_bin, X_OK) != 0) {
		print_message("no %s: build the sscardd target\n", daemon_bin);
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(fd, 2);
		execl(daemon_bin, daemon_bin, "--foreground", "--config", f->conf, (char *)NULL);
		_exit(127);
	}
	f->daemon = pid;
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat(f->sock, &st) == 0)
			return;
		usleep(10000);
	}
	fail_msg("sscardd did not create its socket within 5 s");
}

static int stop_daemon(struct fx *f)
{
	int status;

	assert_int_equal(kill(f->daemon, SIGTERM), 0);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(f->daemon, &status, WNOHANG) == f->daemon) {
			f->daemon = 0;
			assert_true(WIFEXITED(status));
			return WEXITSTATUS(status);
		}
		usleep(10000);
	}
	fail_msg("sscardd did not stop within 10 s of SIGTERM");
	return -1;
}

/* system.info's "journal", through sscardctl. */
static void journal_status(struct fx *f, char *out, size_t cap)
{
	static struct run r;
	json_t *info;

	run_ctl(&r, NULL, "--socket", f->sock, "call", "system.info", NULL);
	assert_int_equal(r.status, 0);
	info = json_loads(r.out, 0, NULL);
	assert_non_null(info);
	snprintf(out, cap, "%s", json_string_value(json_object_get(info, "journal")));
	json_decref(info);
}

struct audit_seen {
	int n;
	char method[16][32], result[16][32], exe[16][PATH_MAX];
	long long uid[16];
};

static int collect_audit(void *arg, const struct journal_row *row)
{
	struct audit_seen *a = arg;

	if (strcmp(row->kind, "audit") != 0 || a->n >= 16)
		return 0;
	snprintf(a->method[a->n], sizeof(a->method[0]), "%s", row->method);
	snprintf(a->result[a->n], sizeof(a->result[0]), "%s", row->result);
	snprintf(a->exe[a->n], sizeof(a->exe[0]), "%s", row->exe);
	a->uid[a->n] = row->uid;
	a->n++;
	return 0;
}

static void test_daemon_audits_and_logs_its_head(void **state)
{
	struct fx *f = *state;
	static struct run r;
	struct audit_seen seen = { 0 };
	char status[256], dir[160], key[160], real_ctl[PATH_MAX];
	struct journal *j;
	struct ssc_diag d;
	struct stat st;
	char *log;

	write_conf_group(f, "");
	start_daemon(f);
	journal_status(f, status, sizeof(status));
	assert_string_equal(status, "ok");
	run_ctl(&r, NULL, "--socket", f->sock, "call", "no.such_method", NULL);
	assert_int_equal(r.status, 1);
	run_ctl(&r, NULL, "--socket", f->sock, "read-basic", NULL);
	assert_int_equal(r.status, 1);
	assert_int_equal(stop_daemon(f), 0);

	/* The directory was created 0750; the database 0640; its key 0600. */
	snprintf(dir, sizeof(dir), "%s/j", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	snprintf(key, sizeof(key), "%s.key", f->db);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	log = read_file(f->log);
	assert_non_null(strstr(log, "info  journal head seq=0 hash=0000"));   /* at start */
	assert_non_null(strstr(log, "info  journal head seq=3 hash="));
	assert_non_null(strstr(log, " (at shutdown)\n"));
	assert_non_null(strstr(log, "journal: no write intent pending"));
	free(log);

	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &j, &d), 0);
	assert_int_equal(journal_rows(j, 0, 0, collect_audit, &seen), 0);
	journal_close(j);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.method[0], "system.info");
	assert_string_equal(seen.result[0], "SSC_OK");
	assert_string_equal(seen.method[1], "no.such_method");
	assert_string_equal(seen.result[1], "RPC_METHOD_NOT_FOUND");
	assert_string_equal(seen.method[2], "card.read_basic");
	assert_string_equal(seen.result[2], "SSC_ENOCARD");
	assert_non_null(realpath(ctl, real_ctl));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(seen.uid[i], (long long)getuid());
		assert_string_equal(seen.exe[i], real_ctl);
	}

	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", f->log, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "journal intact: 3 rows"));
	tamper(f->db, "DELETE FROM rows WHERE seq = 3");
	run_ctl(&r, NULL, "journal", "verify", "--journal", f->db, "--log", f->log, NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, "the tail was cut off"));
}

static void test_daemon_counts_pending_intents(void **state)
{
	struct fx *f = *state;
	char ref[JOURNAL_REF_HEX + 1], sub[160];
	struct journal *j;
	struct ssc_diag d;
	int64_t id;
	char *log = NULL;

	snprintf(sub, sizeof(sub), "%s/j", f->dir);
	assert_int_equal(mkdir(sub, 0750), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), 0);
	journal_card_ref(j, "X00000019", ref);
	/* Two intents; the daemon died before either outcome. */
	assert_int_equal(journal_intent(j, NULL, ref, "r", "DF04/EF05", "{}", &id, &d), 0);
	assert_int_equal(journal_intent(j, NULL, ref, "r", "DF04/EF08", "{}", &id, &d), 0);
	journal_close(j);
	write_conf_group(f, "");
	start_daemon(f);
	/* Retention runs off the loop thread just after the start: wait for its line. */
	for (int i = 0; i < 200; i++) {
		log = read_file(f->log);
		if (strstr(log, "journal: retention:"))
			break;
		free(log);
		log = NULL;
		usleep(10000);
	}
	assert_non_null(log);
	assert_non_null(strstr(log, "journal: 2 write intent(s) pending"));
	assert_non_null(strstr(log, "journal: retention: no rows older than 365 days"));
	free(log);
	assert_int_equal(stop_daemon(f), 0);
}

static void test_daemon_serves_without_its_journal_until_it_is_back(void **state)
{
	struct fx *f = *state;
	static struct run r;
	char status[256], sub[160], key[160];
	int i;
	char *log;

	/* A journal file that is not a database, with its key beside it. */
	snprintf(sub, sizeof(sub), "%s/j", f->dir);
	assert_int_equal(mkdir(sub, 0750), 0);
	{
		char junk[8192];

		memset(junk, 'x', sizeof(junk) - 1);
		junk[sizeof(junk) - 1] = '\0';
		write_file(f->db, junk);
	}
	snprintf(key, sizeof(key), "%s.key", f->db);
	write_file(key, "0123456789abcdef0123456789abcdef");
	write_conf_group(f, "");
	start_daemon(f);
	journal_status(f, status, sizeof(status));
	assert_int_equal(strncmp(status, "unavailable: ", 13), 0);
	assert_non_null(strstr(status, "not a database"));
	/* Reads go on. */
	run_ctl(&r, NULL, "--socket", f->sock, "readers", NULL);
	assert_int_equal(r.status, 0);
	run_ctl(&r, NULL, "--socket", f->sock, "info", NULL);
	assert_int_equal(r.status, 0);

	/* The operator moves the bad file away: within the retry interval the journal is back. */
	unlink(f->db);
	unlink(key);
	for (i = 0; i < 50; i++) {
		journal_status(f, status, sizeof(status));
		if (strcmp(status, "ok") == 0)
			break;
		usleep(100000);
	}
	assert_string_equal(status, "ok");
	assert_int_equal(stop_daemon(f), 0);
	log = read_file(f->log);
	assert_non_null(strstr(log, "error journal "));
	assert_non_null(strstr(log, "is unavailable: "));
	assert_non_null(strstr(log, "Card writes are refused (SSC_EJOURNAL)"));
	assert_non_null(strstr(log, "is available again: card writes are accepted"));
	/* The calls made while it was down could not be audited, and the log says so. */
	assert_non_null(strstr(log, "audit row(s) could not be written"));
	free(log);
}

/*
 * Access control with real uids: a member of the socket's group (uid 65534, group nogroup) gets
 * in and its calls are audited under its own uid; another unprivileged uid (1, daemon) is kept
 * out by the socket's mode before the daemon sees it.
 */
static void test_daemon_group_member_audited_under_its_uid(void **state)
{
	struct fx *f = *state;
	static struct run r;
	struct audit_seen seen = { 0 };
	char real_ctl[PATH_MAX];
	struct journal *j;
	struct ssc_diag d;

	if (getuid() != 0 || !getgrnam("nogroup")) {
		print_message("needs root and the group nogroup\n");
		skip();
	}
	assert_int_equal(chmod(f->dir, 0755), 0);   /* others may reach the socket's directory */
	ctl_copy_for_others(f->dir);
	write_conf_group(f, "nogroup");
	start_daemon(f);
	run_ctl_as(&r, 65534, 65534, "--socket", f->sock, "call", "system.info", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"uid\": 65534"));
	run_ctl_as(&r, 1, 1, "--socket", f->sock, "call", "system.info", NULL);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "Permission denied"));
	run_ctl_as(&r, 65534, 65534, "--socket", f->sock, "read-basic", NULL);
	assert_int_equal(r.status, 1);
	assert_int_equal(stop_daemon(f), 0);

	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &j, &d), 0);
	assert_int_equal(journal_rows(j, 0, 0, collect_audit, &seen), 0);
	journal_close(j);
	/* Two rows: the refused uid never reached the daemon. */
	assert_int_equal(seen.n, 2);
	assert_non_null(realpath(ctl, real_ctl));
	assert_string_equal(seen.method[0], "system.info");
	assert_string_equal(seen.method[1], "card.read_basic");
	assert_string_equal(seen.result[1], "SSC_ENOCARD");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(seen.uid[i], 65534);
		assert_string_equal(seen.exe[i], real_ctl);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_pruned_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_usage_and_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show_and_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blacklist_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_audits_and_logs_its_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_daemon_counts_pending_intents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_serves_without_its_journal_until_it_is_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_group_member_audited_under_its_uid, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
