/*
 * Unit tests of the offline settlement queue (src/journal_medq.c) on a real journal file: a
 * settlement written with its intent is in state "intent" (known as a settlement number, counted
 * for its card, not listed); its intent's outcome moves it (applied: listed and its card flagged;
 * failed: void, its personal data wiped, its number free again); acknowledgement is all or none
 * with the unknown ids named, wipes the personal data and repeats harmlessly; retention removes
 * acknowledged rows but never one waiting for upload; a cleared flag leaves the list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

#define CARD_REF "0123456789abcdef0123456789abcdef"
#define TXN "{\"time\":\"20261124083000\",\"institution\":\"H33010000007\"}"

struct fx {
	char dir[64];
	char db[128];
	struct journal *j;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ssc_diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-medq-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	char p[400];
	DIR *dir;

	journal_close(f->j);
	/* The journal's files, and the old key a rotation keeps beside them. */
	dir = opendir(f->dir);
	while (dir && (e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (dir)
		closedir(dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A settlement's intent and queue row; returns the intent, *qid the queue id. */
static int64_t settle(struct fx *f, const char *rid, const char *ser, int64_t *qid)
{
	struct journal_medq_new q = { rid, "X00000019", "330100D15600000500BF7C7AC9FC0FEC", ser,
				      TXN, 0 };
	char detail[200];
	struct ssc_diag d;
	int64_t id = 0;

	snprintf(detail, sizeof(detail), "{\"op\":\"settle\",\"settlement_no\":\"%s\","
		 "\"request_id\":\"%s\"}", ser, rid);
	ssc_diag_init(&d);
	assert_int_equal(journal_medq_intent(f->j, NULL, CARD_REF, "r0", "DF04/EF08", detail, &q,
					     &id, &d), 0);
	assert_true(id > 0);
	*qid = q.id;
	return id;
}

struct seen {
	int n;
	int64_t ids[16];
	char card_number[16][16];
	char txn[16][128];
};

static int collect(void *arg, const struct journal_medq_row *r)
{
	struct seen *s = arg;

	s->ids[s->n] = r->id;
	snprintf(s->card_number[s->n], sizeof(s->card_number[0]), "%s", r->card_number);
	snprintf(s->txn[s->n], sizeof(s->txn[0]), "%s", r->txn);
	s->n++;
	return 0;
}

static struct seen listed(struct fx *f, int64_t since)
{
	struct seen s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(journal_medq_list(f->j, since, collect, &s), 0);
	return s;
}

static int flag_cb(void *arg, const struct journal_medq_flag *fl)
{
	int64_t *pending = arg;

	assert_string_equal(fl->card_number, "X00000019");
	assert_string_equal(fl->card_id, "330100D15600000500BF7C7AC9FC0FEC");
	*pending = fl->pending;
	return 0;
}

/* The pending count of the one flagged card, -1 when none is flagged. */
static int64_t flagged(struct fx *f)
{
	int64_t pending = -1;

	assert_int_equal(journal_medq_flags(f->j, flag_cb, &pending), 0);
	return pending;
}

/* One text column of the queue row id, read with SQLite directly. */
static void row_text(struct fx *f, int64_t id, const char *col, char *out, size_t cap)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT %s FROM medq WHERE id=%lld", col, (long long)id);
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	else
		snprintf(out, cap, "(no row)");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_state_follows_the_outcome(void **state)
{
	struct fx *f = *state;
	int64_t q1, q2, known = 0;
	int64_t i1 = settle(f, "r1", "S1", &q1), i2 = settle(f, "r2", "S2", &q2);
	char v[128];

	assert_int_equal(q1, 1);
	assert_int_equal(q2, 2);
	/* Written with the intent: known, counted for the card, not listed, not flagged. */
	assert_int_equal(journal_medq_known(f->j, "S1", &known), 1);
	assert_int_equal(known, 1);
	assert_int_equal(journal_medq_card_pending(f->j, CARD_REF), 2);
	assert_int_equal(journal_medq_card_pending(f->j, "ffffffffffffffffffffffffffffffff"), 0);
	assert_int_equal(listed(f, 0).n, 0);
	assert_int_equal(flagged(f), -1);
	assert_int_equal(journal_medq_of_intent(f->j, i2, &known), 1);
	assert_int_equal(known, 2);

	/* Applied: listed with its data, the card flagged. */
	assert_int_equal(journal_outcome(f->j, i1, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	struct seen s = listed(f, 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 1);
	assert_string_equal(s.card_number[0], "X00000019");
	assert_string_equal(s.txn[0], TXN);
	assert_int_equal(flagged(f), 2);   /* S1 queued, S2 not known yet */

	/* Failed: void, wiped, its number free again, no longer counted. */
	assert_int_equal(journal_outcome(f->j, i2, JOURNAL_FAILED, "SSC_ENOTFOUND", "readback",
					 NULL), 0);
	row_text(f, q2, "state", v, sizeof(v));
	assert_string_equal(v, "void");
	row_text(f, q2, "card_number || card_id || txn", v, sizeof(v));
	assert_string_equal(v, "");
	assert_int_equal(journal_medq_known(f->j, "S2", &known), 0);
	assert_int_equal(journal_medq_card_pending(f->j, CARD_REF), 1);
	assert_int_equal(listed(f, 0).n, 1);
	assert_int_equal(listed(f, 1).n, 0);   /* since: after id 1 */
}

static void test_acknowledge(void **state)
{
	struct fx *f = *state;
	int64_t q1, q2, q3, unknown[4], known = 0;
	int64_t i1 = settle(f, "r1", "S1", &q1), i2 = settle(f, "r2", "S2", &q2);
	int64_t ids[] = { 1, 3, 99 }, one[] = { 1 }, both[] = { 1, 2 };
	size_t n_unknown = 0;
	struct ssc_diag d;
	char v[128];

	(void)settle(f, "r3", "S3", &q3);   /* left in state "intent" */
	assert_int_equal(journal_outcome(f->j, i1, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	assert_int_equal(journal_outcome(f->j, i2, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	ssc_diag_init(&d);
	/* 3 is not queued (its outcome unknown), 99 never was: named, nothing marked. */
	assert_int_equal(journal_medq_ack(f->j, ids, 3, unknown, &n_unknown, &d), SSC_ENOTFOUND);
	assert_int_equal(n_unknown, 2);
	assert_int_equal(unknown[0], 3);
	assert_int_equal(unknown[1], 99);
	assert_int_equal(listed(f, 0).n, 2);
	assert_int_equal(journal_medq_ack(f->j, one, 1, unknown, &n_unknown, &d), 1);
	assert_int_equal(journal_medq_ack(f->j, both, 2, unknown, &n_unknown, &d), 1);
	assert_int_equal(journal_medq_ack(f->j, both, 2, unknown, &n_unknown, &d), 0);
	assert_int_equal(listed(f, 0).n, 0);
	row_text(f, 1, "state || '/' || card_number || card_id || txn", v, sizeof(v));
	assert_string_equal(v, "acknowledged/");
	/* Acknowledged numbers stay known (a double booking); S3 waits, so the flag stays. */
	assert_int_equal(journal_medq_known(f->j, "S1", &known), 1);
	assert_int_equal(flagged(f), 1);
	assert_int_equal(journal_medq_flag_cleared(f->j, CARD_REF, &d), 0);
	assert_int_equal(flagged(f), -1);
}

static void test_retention(void **state)
{
	struct fx *f = *state;
	int64_t q1, q2, unknown[1], known = 0, ack[] = { 1 };
	int64_t i1 = settle(f, "r1", "S1", &q1), i2 = settle(f, "r2", "S2", &q2);
	size_t n_unknown = 0;
	struct ssc_diag d;
	char v[128];

	assert_int_equal(journal_outcome(f->j, i1, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	assert_int_equal(journal_outcome(f->j, i2, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_medq_ack(f->j, ack, 1, unknown, &n_unknown, &d), 1);
	/* Everything older than tomorrow goes, but the settlement waiting for upload. */
	assert_true(journal_prune_before(f->j, (int64_t)time(NULL) + 86400, &d) > 0);
	row_text(f, 1, "state", v, sizeof(v));
	assert_string_equal(v, "(no row)");
	struct seen s = listed(f, 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 2);
	assert_string_equal(s.card_number[0], "X00000019");
	assert_int_equal(journal_medq_known(f->j, "S2", &known), 1);
}

/* A key rotation would leave the queue's card refs under the old key: refused while it is open. */
static void test_rotation_waits_for_the_queue(void **state)
{
	struct fx *f = *state;
	struct journal_rotation rot;
	struct ssc_diag d;
	int64_t q1, unknown[1], ack[] = { 1 };
	size_t n_unknown = 0;
	int64_t i1 = settle(f, "r1", "S1", &q1);

	ssc_diag_init(&d);
	assert_int_equal(journal_medq_open_count(f->j), 1);
	assert_int_equal(journal_outcome(f->j, i1, JOURNAL_APPLIED, "SSC_OK", "card", NULL), 0);
	assert_int_equal(journal_medq_open_count(f->j), 2);   /* queued + its card's flag */
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "2 offline settlement(s) or card flag(s)"));
	assert_int_equal(journal_medq_ack(f->j, ack, 1, unknown, &n_unknown, &d), 1);
	assert_int_equal(journal_medq_flag_cleared(f->j, CARD_REF, &d), 0);
	assert_int_equal(journal_medq_open_count(f->j), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_state_follows_the_outcome, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acknowledge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_waits_for_the_queue, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
