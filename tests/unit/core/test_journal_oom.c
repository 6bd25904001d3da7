/*
 * This file contains the allocation-failure tests of the journal (src/journal*.c): each operation
 * runs with its 1st, 2nd, ... allocation failing (ours, SQLite's, jansson's, OpenSSL's:
 * test_alloc_fail.h) until a run in which none failed. Every failure must become a clean error:
 * no crash, a named error (SSC_E*) with a reason, the observer told of a failed append, and the
 * journal as it was before the call or after it, never in between: its chain intact, a failed
 * append writing nothing, and the handle still usable. (No leak: the ASan build checks.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "test_alloc_fail.h"

#define MAX_RUNS 20000   /* a bound on the allocations one operation may make */

static const char *const lost_cards = "X00000019\nA12345678\n";

/* One case's files: the template it starts from, and the copy each run works on. */
struct fx {
	char dir[64];
	char tmpl[128], tmpl_key[136];
	char db[128], key[136];
	struct journal *j;
	int failures_heard;       /* the observer's notes of a failed append */
	int rows_heard;           /* and of rows appended */
	int64_t rows_before;      /* rows in the copy before the operation */
};

static void on_note(void *arg, const struct journal_note *n)
{
	struct fx *f = arg;

	if (n->err) {
		assert_true(n->err == SSC_EJOURNAL || n->err == SSC_ENOMEM);
		assert_true(n->why[0] != '\0');
		f->failures_heard++;
	} else {
		f->rows_heard++;
	}
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

static void rm_journal(const char *db)
{
	static const char *const ext[] = { "", "-wal", "-shm", ".key", ".probe", "-journal" };
	char p[200];

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", db, ext[i]);
		unlink(p);
	}
}

static int count_row(void *arg, const struct journal_row *r)
{
	(void)r;
	(*(int64_t *)arg)++;
	return 0;
}

static int64_t rows_of(struct journal *j)
{
	int64_t n = 0;
	int rc = journal_rows(j, 0, 0, count_row, &n);

	if (rc != 0)
		fail_msg("after allocation %ld failed: the rows cannot be read (%s)",
			 atomic_load(&af_fail_at_last), ssc_strerror_name(rc));
	return n;
}

static void add_audit(struct journal *j, const char *method)
{
	struct journal_peer peer = { .uid = 1000, .pid = 42, .exe = "/usr/bin/counter" };
	struct journal_audit a = { .peer = &peer, .method = method, .reader = "r0",
				   .card_ref = "", .result = "SSC_OK", .duration_ms = 3 };
	struct ssc_diag d;

	ssc_diag_init(&d);
	if (journal_audit(j, &a, &d) != 0)
		fail_msg("after allocation %ld failed: the journal takes no audit row: %s",
			 atomic_load(&af_fail_at_last), d.msg);
}

/* The template: a journal with rows of every kind, one intent pending, two lost cards. */
static void make_template(struct fx *f)
{
	struct journal_peer peer = { .uid = 1000, .pid = 42, .exe = "/usr/bin/counter" };
	char ref[JOURNAL_REF_HEX + 1];
	struct ssc_diag d;
	struct journal *j;
	int64_t id;
	FILE *lost;

	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->tmpl, NULL, 0, &j, &d), 0);
	add_audit(j, "system.info");
	journal_card_ref(j, "X00000019", ref);
	assert_int_equal(journal_intent(j, &peer, ref, "r0", "DF04/EF08", "{\"op\":\"update\"}",
					&id, &d), 0);
	assert_int_equal(journal_outcome(j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_intent(j, &peer, ref, "r0", "DF04/EF05",
					"{\"op\":\"append\",\"settlement_no\":\"7\"}", &id, &d), 0);
	lost = fmemopen((void *)lost_cards, strlen(lost_cards), "r");
	assert_non_null(lost);
	assert_int_equal(journal_blacklist_import(j, lost, &d), 2);
	fclose(lost);
	add_audit(j, "card.read_basic");
	journal_close(j);   /* checkpoints the WAL into the file */
}

/* A fresh copy of the template, opened (no failure injected), with the observer. */
static void open_copy(struct fx *f)
{
	struct ssc_diag d;

	rm_journal(f->db);
	copy_file(f->tmpl, f->db);
	copy_file(f->tmpl_key, f->key);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	f->failures_heard = f->rows_heard = 0;
	journal_set_observer(f->j, on_note, f);
	f->rows_before = rows_of(f->j);
}

/* After a run: the chain intact, and the handle still takes an append. */
static void check_usable(struct fx *f)
{
	struct ssc_diag d;

	ssc_diag_init(&d);
	if (journal_verify(f->j, 0, NULL, NULL, &d) != 0)
		fail_msg("after allocation %ld failed: the journal does not verify: %s",
			 atomic_load(&af_fail_at_last), d.msg);
	add_audit(f->j, "after");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
}

/* A failure is a named error with a reason. */
static void check_named(int rc, const struct ssc_diag *d, int allowed1, int allowed2)
{
	if ((rc == allowed1 || rc == allowed2 || rc == SSC_ENOMEM) &&
	    strcmp(ssc_strerror_name(rc), "SSC_EUNKNOWN") != 0 && (!d || d->msg[0] != '\0'))
		return;
	fail_msg("allocation %ld failed: %s (%d), \"%s\"", atomic_load(&af_fail_at_last),
		 ssc_strerror_name(rc), rc, d ? d->msg : "");
}

/*
 * An append that failed wrote nothing and the observer heard of it once; one that succeeded
 * wrote its rows.
 */
static void check_append(struct fx *f, int rc, int64_t rows)
{
	int64_t now = rows_of(f->j);

	if (rc < 0) {
		assert_int_equal(now, f->rows_before);
		assert_int_equal(f->failures_heard, 1);
		assert_int_equal(f->rows_heard, 0);
	} else {
		assert_int_equal(now, f->rows_before + rows);
		assert_int_equal(f->failures_heard, 0);
		assert_int_equal(f->rows_heard, rows);
	}
}

/*
 * Runs one operation with each of its allocations failing in turn; returns how many runs. run()
 * prepares, arms the failure of allocation n (af_arm) just before the operation, disarms just
 * after it, checks, and returns whether the failure happened (af_disarm()'s answer).
 */
static long each_failure(struct fx *f, int (*run)(struct fx *f, long n))
{
	long n;

	for (n = 1; n <= MAX_RUNS; n++) {
		int failed;

		open_copy(f);
		failed = run(f, n);
		check_usable(f);
		journal_close(f->j);
		f->j = NULL;
		if (!failed)
			return n;
	}
	fail_msg("more than %d allocations", MAX_RUNS);
	return 0;
}

/* ---- the operations --------------------------------------------------------------------- */

static int run_audit(struct fx *f, long n)
{
	struct journal_peer peer = { .uid = 7, .pid = 8, .exe = "/x" };
	struct journal_audit a = { .peer = &peer, .method = "card.read_basic", .reader = "r0",
				   .card_ref = "", .result = "SSC_OK", .duration_ms = 1 };
	struct ssc_diag d;
	int rc, failed;

	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_audit(f->j, &a, &d);
	failed = af_disarm();
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	check_append(f, rc, 1);
	return failed;
}

static int run_audit_batch(struct fx *f, long n)
{
	struct journal_audit a[5];
	struct ssc_diag d;
	int rc, failed;

	memset(a, 0, sizeof(a));
	for (int i = 0; i < 5; i++) {
		a[i].method = "system.info";
		a[i].result = "SSC_OK";
		a[i].duration_ms = i;
	}
	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_audit_batch(f->j, a, 5, &d);
	failed = af_disarm();
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	check_append(f, rc, 5);
	return failed;
}

static int run_intent(struct fx *f, long n)
{
	struct journal_peer peer = { .uid = 7, .pid = 8, .exe = "/x" };
	struct ssc_diag d;
	int64_t id = 0;
	int rc, failed, pending_before = journal_pending_count(f->j, NULL);

	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_intent(f->j, &peer, "0123456789abcdef0123456789abcdef", "r0", "DF04/EF08",
			    "{\"op\":\"update\"}", &id, &d);
	failed = af_disarm();
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	check_append(f, rc, 1);
	/* A failed intent is not pending: the write it announced must not go ahead. */
	assert_int_equal(journal_pending_count(f->j, NULL), pending_before + (rc == 0));
	return failed;
}

/* The template's pending intent. */
static int last_pending(void *arg, const struct journal_intent_row *row)
{
	*(int64_t *)arg = row->id;
	return 0;
}

static int run_outcome(struct fx *f, long n)
{
	struct ssc_diag d;
	int64_t id = 0;
	int rc, failed;

	assert_int_equal(journal_pending(f->j, NULL, last_pending, &id), 0);
	assert_true(id > 0);
	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_outcome(f->j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d);
	failed = af_disarm();
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	check_append(f, rc, 1);
	/* Pending until the outcome is written, resolved once it is. */
	assert_int_equal(journal_pending_count(f->j, NULL), rc == 0 ? 0 : 1);
	return failed;
}

static int run_queries(struct fx *f, long n)
{
	int64_t id = 0;
	int rc1, rc2, rc3, failed;

	af_arm(n);
	rc1 = journal_pending(f->j, NULL, last_pending, &id);
	rc2 = journal_pending_count(f->j, NULL);
	rc3 = journal_append_applied(f->j, "0123456789abcdef0123456789abcdef", "7");
	failed = af_disarm();
	assert_true(rc1 == 0 || rc1 == SSC_EJOURNAL || rc1 == SSC_ENOMEM);
	assert_true(rc2 == 1 || rc2 == SSC_EJOURNAL);
	assert_true(rc3 == 0 || rc3 == SSC_EJOURNAL);
	check_append(f, 0, 0);
	return failed;
}

static int run_import(struct fx *f, long n)
{
	static const char more[] = "B00000001\n0123456789ABCDEF0123456789ABCDEF\n";
	FILE *in = fmemopen((void *)more, strlen(more), "r");
	struct ssc_diag d;
	int rc, failed, listed;

	assert_non_null(in);
	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_blacklist_import(f->j, in, &d);
	failed = af_disarm();
	fclose(in);
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EIO);
	else
		assert_int_equal(rc, 2);
	check_append(f, rc < 0 ? rc : 0, 1);
	ssc_diag_init(&d);
	listed = journal_blacklisted(f->j, "B00000001", NULL, &d);
	if (listed != (rc < 0 ? 0 : 1))
		fail_msg("allocation %ld failed: import %d, then B00000001 listed %d (%s)", n, rc,
			 listed, d.msg);
	return failed;
}

static int run_remove(struct fx *f, long n)
{
	FILE *in = fmemopen((void *)"A12345678\n", 10, "r");
	struct ssc_diag d;
	int rc, failed, not_listed = -1;

	assert_non_null(in);
	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_blacklist_remove(f->j, in, &not_listed, &d);
	failed = af_disarm();
	fclose(in);
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EIO);
	else
		assert_int_equal(rc, 1);
	check_append(f, rc < 0 ? rc : 0, 1);
	ssc_diag_init(&d);
	assert_int_equal(journal_blacklisted(f->j, "A12345678", NULL, &d), rc < 0 ? 1 : 0);
	return failed;
}

static int run_lookup(struct fx *f, long n)
{
	struct ssc_diag d;
	int rc, failed;

	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_blacklisted(f->j, "X00000019", "0123456789ABCDEF0123456789ABCDEF", &d);
	failed = af_disarm();
	/* Listed, or a failure named: never "not listed" for a listed card. */
	if (rc != 1)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	return failed;
}

static int run_card_ref(struct fx *f, long n)
{
	char ref[JOURNAL_REF_HEX + 1], want[JOURNAL_REF_HEX + 1];
	int failed;

	af_arm(n);
	journal_card_ref(f->j, "A12345678", ref);
	failed = af_disarm();
	journal_card_ref(f->j, "A12345678", want);
	/* The right name, or one that never names a card (all '-'): never a wrong one. */
	if (strcmp(ref, want) != 0)
		assert_int_equal(strspn(ref, "-"), JOURNAL_REF_HEX);
	return failed;
}

static int run_verify(struct fx *f, long n)
{
	struct journal_report rep;
	struct ssc_diag d;
	int rc, failed;

	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_verify_report(f->j, 0, NULL, &rep, &d);
	failed = af_disarm();
	if (rc < 0)
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
	else
		assert_int_equal(rep.list_entries, 2);
	return failed;
}

static int run_export(struct fx *f, long n)
{
	FILE *out = fopen("/dev/null", "w");
	int64_t rows = 0;
	int rc1, rc2, failed;

	assert_non_null(out);
	af_arm(n);
	rc1 = journal_export(f->j, 0, out);
	rc2 = journal_rows(f->j, 0, 0, count_row, &rows);
	failed = af_disarm();
	fclose(out);
	assert_true(rc1 == f->rows_before || rc1 == SSC_EJOURNAL || rc1 == SSC_ENOMEM);
	assert_true(rc2 == 0 || rc2 == SSC_EJOURNAL);
	return failed;
}

static int run_prune(struct fx *f, long n)
{
	struct ssc_diag d;
	int rc, failed;

	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_prune_before(f->j, (int64_t)time(NULL) + 3600, &d);
	failed = af_disarm();
	if (rc < 0) {
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
		assert_int_equal(rows_of(f->j), f->rows_before);
	} else {
		/* Everything before the pending intent goes, and a prune row comes. */
		assert_true(rc > 0);
		assert_int_equal(rows_of(f->j), f->rows_before - rc + 1);
	}
	assert_int_equal(journal_pending_count(f->j, NULL), 1);
	return failed;
}

static int run_suspend_resume(struct fx *f, long n)
{
	struct ssc_diag d;
	int rc, failed;

	journal_suspend(f->j, "a test");
	ssc_diag_init(&d);
	af_arm(n);
	rc = journal_resume(f->j, &d);
	failed = af_disarm();
	if (rc < 0) {
		check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
		assert_int_equal(journal_suspended(f->j), 1);
		/* Still the same handle: a resume without the failure brings it back. */
		ssc_diag_init(&d);
		assert_int_equal(journal_resume(f->j, &d), 0);
	}
	assert_int_equal(journal_suspended(f->j), 0);
	return failed;
}

/* ---- the tests -------------------------------------------------------------------------- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	/* tmpfs where there is one: thousands of runs, each with its fsyncs. */
	snprintf(f->dir, sizeof(f->dir), "%s/ssc-journal-oom-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->tmpl, sizeof(f->tmpl), "%s/template.db", f->dir);
	snprintf(f->tmpl_key, sizeof(f->tmpl_key), "%s.key", f->tmpl);
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s.key", f->db);
	make_template(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	journal_close(f->j);
	rm_journal(f->db);
	rm_journal(f->tmpl);
	rmdir(f->dir);
	free(f);
	return 0;
}

#define OOM_TEST(name, fn)                                                           \
	static void name(void **state)                                               \
	{                                                                            \
		struct fx *f = *state;                                               \
		long runs = each_failure(f, fn);                                     \
                                                                                     \
		print_message("%s: %ld allocation(s), each failed once\n", #fn,     \
			      runs - 1);                                             \
		assert_true(runs > 1);   /* it does allocate: something was tested */ \
	}

OOM_TEST(test_audit, run_audit)
OOM_TEST(test_audit_batch, run_audit_batch)
OOM_TEST(test_intent, run_intent)
OOM_TEST(test_outcome, run_outcome)
OOM_TEST(test_queries, run_queries)
OOM_TEST(test_blacklist_import, run_import)
OOM_TEST(test_blacklist_remove, run_remove)
OOM_TEST(test_blacklist_lookup, run_lookup)
OOM_TEST(test_card_ref, run_card_ref)
OOM_TEST(test_verify, run_verify)
OOM_TEST(test_export, run_export)
OOM_TEST(test_prune, run_prune)
OOM_TEST(test_suspend_resume, run_suspend_resume)

/*
 * Opening: a failure at any point of a writable open of an existing journal is a named error,
 * leaves nothing open, and the next open (without the failure) finds the journal intact.
 */
static void test_open_existing(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	long n;

	for (n = 1; n <= MAX_RUNS; n++) {
		struct journal *j = NULL;
		int rc, failed;

		rm_journal(f->db);
		copy_file(f->tmpl, f->db);
		copy_file(f->tmpl_key, f->key);
		ssc_diag_init(&d);
		af_arm(n);
		rc = journal_open(f->db, NULL, 0, &j, &d);
		failed = af_disarm();
		if (rc < 0) {
			check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
			assert_null(j);
		}
		journal_close(j);
		f->j = NULL;
		ssc_diag_init(&d);
		assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
		check_usable(f);
		journal_close(f->j);
		f->j = NULL;
		if (!failed)
			break;
	}
	print_message("journal_open: %ld allocation(s), each failed once\n", n - 1);
	assert_true(n > 1 && n <= MAX_RUNS);
}

/*
 * Creating a journal: a failure is a named error, and the next open (without the failure)
 * creates or opens it: a half-made journal does not stay in the way.
 */
static void test_open_new(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	long n;

	for (n = 1; n <= MAX_RUNS; n++) {
		struct journal *j = NULL;
		int rc, failed;

		rm_journal(f->db);
		ssc_diag_init(&d);
		af_arm(n);
		rc = journal_open(f->db, NULL, 0, &j, &d);
		failed = af_disarm();
		if (rc < 0) {
			check_named(rc, &d, SSC_EJOURNAL, SSC_EJOURNAL);
			assert_null(j);
		}
		journal_close(j);
		ssc_diag_init(&d);
		rc = journal_open(f->db, NULL, 0, &f->j, &d);
		if (rc != 0)
			fail_msg("run %ld: after a failed creation, the journal does not open: %s", n,
				 d.msg);
		check_usable(f);
		journal_close(f->j);
		f->j = NULL;
		if (!failed)
			break;
	}
	print_message("journal_open (new): %ld allocation(s), each failed once\n", n - 1);
	assert_true(n > 1 && n <= MAX_RUNS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outcome, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blacklist_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blacklist_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blacklist_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_ref, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suspend_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_new, setup, teardown),
	};

	if (af_install() != 0) {
		fprintf(stderr, "cannot route the allocations of SQLite, jansson and OpenSSL\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
