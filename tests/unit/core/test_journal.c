/*
 * Unit tests of the journal (src/journal.c) on real SQLite files: the HMAC chain catches edited,
 * inserted, deleted and cut-off rows; intents and outcomes; retention; the lost-card list; a
 * corrupt file or a missing key is refused with a clear error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

struct fx {
	char dir[64];
	char db[128];
	struct journal *j;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ssc_diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-journal-XXXXXX");
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
	char cmd[256];

	journal_close(f->j);
	snprintf(cmd, sizeof(cmd), "%s/journal.db", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/journal.db.key", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/journal.db-wal", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/journal.db-shm", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/bl.txt", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/bad.db", f->dir);
	unlink(cmd);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void add_audits(struct journal *j, int n)
{
	struct journal_peer peer = { .uid = 1000, .pid = 42, .exe = "/usr/bin/counter" };
	char ref[JOURNAL_REF_HEX + 1];
	struct ssc_diag d;

	journal_card_ref(j, "X00000019", ref);
	for (int i = 0; i < n; i++) {
		struct journal_audit a = { .peer = &peer, .method = "card.read_basic",
					   .reader = "pcsc-virtual-pcd-00-00", .card_ref = ref,
					   .result = "SSC_OK", .duration_ms = i };

		assert_int_equal(journal_audit(j, &a, &d), 0);
	}
}

/* Runs one SQL statement on the file behind the journal's back, as an attacker would. */
static void tamper(const char *db, const char *sql)
{
	sqlite3 *h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

static void test_chain_intact(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t rows = 0, seq = 0;
	char head[JOURNAL_HASH_HEX + 1];

	add_audits(f->j, 5);
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, &rows, &d), 0);
	assert_int_equal(rows, 5);
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(strlen(head), 64);
	assert_int_equal(journal_verify(f->j, seq, head, &rows, &d), 0);
}

/*
 * The keyed hash against a value computed outside the project, with the OpenSSL command line:
 * key file bytes 00..1F; ref key = HMAC-SHA-256(key, "sscard journal ref v1"); the card's name =
 * the first 16 bytes of HMAC-SHA-256(ref key, "card" 00 "X00000019"), in lower-case hex:
 *   K=000102...1f; RK=$(printf 'sscard journal ref v1' | openssl dgst -sha256 -mac HMAC \
 *     -macopt hexkey:$K -hex); printf 'card\0X00000019' | openssl dgst -sha256 -mac HMAC \
 *     -macopt hexkey:$RK -hex
 * and the same for "card" 00 "X00000020" (d9d37142…), which the loop interleaves so that the
 * remembered refs (journal.c, ref_memo) are checked as well as the computed ones.
 */
static void test_card_ref_vector(void **state)
{
	struct fx *f = *state;
	char db[160], key[170], ref[JOURNAL_REF_HEX + 1];
	uint8_t k[32];
	struct journal *j;
	struct ssc_diag d;
	FILE *kf;

	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	snprintf(db, sizeof(db), "%s/vector.db", f->dir);
	snprintf(key, sizeof(key), "%s.key", db);
	kf = fopen(key, "wb");
	assert_non_null(kf);
	assert_int_equal(fwrite(k, 1, sizeof(k), kf), sizeof(k));
	assert_int_equal(fclose(kf), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(db, NULL, 0, &j, &d), 0);
	for (int i = 0; i < 3; i++) {   /* the keyed context is reused: every use is the same */
		journal_card_ref(j, "X00000019", ref);
		assert_string_equal(ref, "67a9f4fb64576d711ecef29524a6f163");
		journal_card_ref(j, "X00000020", ref);
		assert_string_equal(ref, "d9d37142fac091e4e2d1984ffbafe58f");
		journal_card_ref(j, "X0000001", ref);   /* a prefix is another card */
		assert_string_not_equal(ref, "67a9f4fb64576d711ecef29524a6f163");
	}
	for (int i = 0; i < 6; i++) {   /* more cards than the memo holds: evicted, computed again */
		char num[16];

		snprintf(num, sizeof(num), "Y%08d", i);
		journal_card_ref(j, num, ref);
	}
	journal_card_ref(j, "X00000019", ref);
	assert_string_equal(ref, "67a9f4fb64576d711ecef29524a6f163");
	journal_close(j);
	unlink(db);
	unlink(key);
	snprintf(key, sizeof(key), "%s-wal", db);
	unlink(key);
	snprintf(key, sizeof(key), "%s-shm", db);
	unlink(key);
}

static void test_card_ref_is_keyed_and_not_clear(void **state)
{
	struct fx *f = *state;
	char a[JOURNAL_REF_HEX + 1], b[JOURNAL_REF_HEX + 1];
	struct journal *j2;
	struct ssc_diag d;
	char db2[160];

	journal_card_ref(f->j, "X00000019", a);
	journal_card_ref(f->j, "X00000019", b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), JOURNAL_REF_HEX);
	assert_null(strstr(a, "X0000"));
	/* Another journal (another key) names the same card differently. */
	snprintf(db2, sizeof(db2), "%s/other.db", f->dir);
	assert_int_equal(journal_open(db2, NULL, 0, &j2, &d), 0);
	journal_card_ref(j2, "X00000019", b);
	assert_string_not_equal(a, b);
	journal_close(j2);
	unlink(db2);
	snprintf(db2, sizeof(db2), "%s/other.db.key", f->dir);
	unlink(db2);
	snprintf(db2, sizeof(db2), "%s/other.db-wal", f->dir);
	unlink(db2);
	snprintf(db2, sizeof(db2), "%s/other.db-shm", f->dir);
	unlink(db2);
}

static void test_edited_row_detected(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;

	add_audits(f->j, 5);
	tamper(f->db, "UPDATE rows SET result='SSC_EPINWRONG' WHERE seq=3");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 3"));
}

static void test_deleted_row_detected(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;

	add_audits(f->j, 5);
	tamper(f->db, "DELETE FROM rows WHERE seq=2");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "missing"));
}

static void test_renumbered_rows_detected(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;

	/* Delete a row and renumber the rest to close the gap: the chain still breaks. */
	add_audits(f->j, 4);
	tamper(f->db, "DELETE FROM rows WHERE seq=2; UPDATE rows SET seq=seq-1 WHERE seq>2");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 2"));
}

static void test_inserted_row_detected(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;

	add_audits(f->j, 3);
	/* A forged row at the end, with a plausible but unkeyed hash. */
	tamper(f->db,
	       "INSERT INTO rows SELECT 4, ts, ts_unix, kind, uid, pid, exe, method, reader, card,"
	       " 'SSC_OK', 0, 0, file, detail,"
	       " '0000000000000000000000000000000000000000000000000000000000000000'"
	       " FROM rows WHERE seq=3");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 4"));
}

static void test_cut_tail_detected_with_logged_head(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t seq;
	char head[JOURNAL_HASH_HEX + 1];

	add_audits(f->j, 5);
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	tamper(f->db, "DELETE FROM rows WHERE seq>=4");
	/* Without the logged head, a clean cut cannot be seen; with it, it is. */
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
	assert_int_equal(journal_verify(f->j, seq, head, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "cut off"));
}

static int collect(void *arg, const struct journal_intent_row *row)
{
	int64_t *ids = arg;

	ids[ids[0] + 1] = row->id;
	ids[0]++;
	assert_non_null(strstr(row->detail, "\"op\""));
	return 0;
}

static void test_intents_and_outcomes(void **state)
{
	struct fx *f = *state;
	struct journal_peer peer = { .uid = 0, .pid = 1, .exe = "" };
	struct ssc_diag d;
	int64_t a = 0, b = 0, ids[8] = { 0 };
	char ref[JOURNAL_REF_HEX + 1], other[JOURNAL_REF_HEX + 1];

	journal_card_ref(f->j, "X00000019", ref);
	journal_card_ref(f->j, "Y00000017", other);
	assert_int_equal(journal_intent(f->j, &peer, ref, "r1", "DF04/EF08",
					"{\"op\":\"append\",\"serial\":\"S1\"}", &a, &d),
			 0);
	assert_int_equal(journal_intent(f->j, &peer, other, "r1", "SSSE/EF06",
					"{\"op\":\"update\"}", &b, &d),
			 0);
	assert_true(a > 0 && b == a + 1);

	assert_int_equal(journal_pending(f->j, ref, collect, ids), 0);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], a);
	memset(ids, 0, sizeof(ids));
	assert_int_equal(journal_pending(f->j, NULL, collect, ids), 0);
	assert_int_equal(ids[0], 2);

	assert_int_equal(journal_outcome(f->j, a, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_outcome(f->j, a, JOURNAL_FAILED, "SSC_EIO", "card", &d),
			 SSC_EEXIST);
	assert_int_equal(journal_outcome(f->j, 999, JOURNAL_APPLIED, "SSC_OK", "card", &d),
			 SSC_ENOTFOUND);
	/* An audit row's seq is not an intent. */
	add_audits(f->j, 1);
	assert_int_equal(journal_outcome(f->j, b + 1, JOURNAL_APPLIED, "SSC_OK", "card", &d),
			 SSC_ENOTFOUND);
	memset(ids, 0, sizeof(ids));
	assert_int_equal(journal_pending(f->j, NULL, collect, ids), 0);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], b);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
}

/* journal_pending_count: per card and in all, and it falls as outcomes come. */
static void test_pending_count(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t a, b, c;

	ssc_diag_init(&d);
	assert_int_equal(journal_pending_count(f->j, NULL), 0);
	assert_int_equal(journal_intent(f->j, NULL, "card1", "r", "DF04/EF05", "{}", &a, &d), 0);
	assert_int_equal(journal_intent(f->j, NULL, "card1", "r", "DF04/EF08", "{}", &b, &d), 0);
	assert_int_equal(journal_intent(f->j, NULL, "card2", "r", "SSSE/EF06", "{}", &c, &d), 0);
	assert_int_equal(journal_pending_count(f->j, NULL), 3);
	assert_int_equal(journal_pending_count(f->j, "card1"), 2);
	assert_int_equal(journal_pending_count(f->j, "card2"), 1);
	assert_int_equal(journal_pending_count(f->j, "card3"), 0);
	assert_int_equal(journal_outcome(f->j, a, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_pending_count(f->j, "card1"), 1);
	assert_int_equal(journal_outcome(f->j, b, JOURNAL_FAILED, "SSC_EAUTHFAILED", "card", &d),
			 0);
	assert_int_equal(journal_pending_count(f->j, "card1"), 0);
	assert_int_equal(journal_pending_count(f->j, NULL), 1);
}

static void test_intent_survives_reopen(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t a, ids[4] = { 0 };

	assert_int_equal(journal_intent(f->j, NULL, "c", "r", "DF04/EF05", "{\"op\":\"update\"}",
					&a, &d),
			 0);
	journal_close(f->j);
	f->j = NULL;
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	assert_int_equal(journal_pending(f->j, NULL, collect, ids), 0);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], a);
}

static void test_prune_keeps_chain_and_pending(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t pend, rows, ids[4] = { 0 };
	int n;

	add_audits(f->j, 3);
	assert_int_equal(journal_intent(f->j, NULL, "c", "r", "DF04/EF05", "{\"op\":\"update\"}",
					&pend, &d),
			 0);
	add_audits(f->j, 2);
	/* Everything is "old" for a cutoff in the future, but the pending intent (row 4) stays,
	 * and so does everything after it. */
	n = journal_prune_before(f->j, (int64_t)time(NULL) + 3600, &d);
	assert_int_equal(n, 3);
	assert_int_equal(journal_verify(f->j, 0, NULL, &rows, &d), 0);
	assert_int_equal(rows, 4); /* intent, 2 audits, prune row */
	assert_int_equal(journal_pending(f->j, NULL, collect, ids), 0);
	assert_int_equal(ids[1], pend);
	/* Moving the anchor by hand (hiding more rows) is caught. */
	tamper(f->db, "DELETE FROM rows WHERE seq=4;"
		      "UPDATE meta SET value='4' WHERE key='anchor_seq'");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
}

/*
 * A head noted before a prune: the row it names is gone. Verifying against it must not report a
 * cut-off tail (the chain runs past it) nor pass as compared: JOURNAL_HEAD_PRUNED, with why.
 * The anchor's own row (the last pruned) keeps its hash and still compares.
 */
static void test_verify_head_after_prune(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	char h2[JOURNAL_HASH_HEX + 1], h3[JOURNAL_HASH_HEX + 1], h5[JOURNAL_HASH_HEX + 1];
	int64_t seq, rows;

	add_audits(f->j, 2);
	assert_int_equal(journal_head(f->j, &seq, h2), 0);
	assert_int_equal(seq, 2);
	add_audits(f->j, 1);
	assert_int_equal(journal_head(f->j, &seq, h3), 0);
	assert_int_equal(seq, 3);
	assert_int_equal(journal_prune_before(f->j, (int64_t)time(NULL) + 3600, &d), 3);
	add_audits(f->j, 1);
	assert_int_equal(journal_head(f->j, &seq, h5), 0);
	assert_int_equal(seq, 5);   /* row 4 is the prune row */

	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 2, h2, &rows, &d), JOURNAL_HEAD_PRUNED);
	assert_int_equal(rows, 2);
	assert_non_null(strstr(d.msg, "row 2) lies before the retention anchor (row 3)"));
	assert_null(strstr(d.msg, "cut off"));
	/* Any hash: there is nothing left to compare it with. */
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 1, h5, NULL, &d), JOURNAL_HEAD_PRUNED);
	/* The anchor row itself and a later row compare as before. */
	assert_int_equal(journal_verify(f->j, 3, h3, NULL, &d), 0);
	assert_int_equal(journal_verify(f->j, 5, h5, NULL, &d), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 3, h2, NULL, &d), SSC_EJOURNAL);
	/* A head beyond the end is still a cut-off tail. */
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 9, h5, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "cut off"));
}

/* journal_room: room on a normal directory, leaves no probe; a probe it cannot make says nothing. */
static void test_room(void **state)
{
	struct fx *f = *state;
	char path[200], probe[220];
	struct ssc_diag d;

	snprintf(path, sizeof(path), "%s/room.db", f->dir);
	snprintf(probe, sizeof(probe), "%s.probe", path);
	ssc_diag_init(&d);
	assert_int_equal(journal_room(path, &d), 0);
	assert_int_equal(access(probe, F_OK), -1);
	/* A probe left by a crash is replaced, and removed. */
	fclose(fopen(probe, "w"));
	assert_int_equal(journal_room(path, &d), 0);
	assert_int_equal(access(probe, F_OK), -1);
	snprintf(path, sizeof(path), "%s/no-such-dir/room.db", f->dir);
	assert_int_equal(journal_room(path, &d), 0);
}

static void test_blacklist(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/bl.txt", f->dir);
	fp = fopen(path, "w");
	fprintf(fp, "# lost cards\nX00000019\n\n  330100d15600000500bf7c7ac9fc0fec  \n");
	fclose(fp);
	fp = fopen(path, "r");
	assert_int_equal(journal_blacklist_import(f->j, fp, &d), 2);
	fclose(fp);
	assert_int_equal(journal_blacklisted(f->j, "X00000019", NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(f->j, "x00000019", NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(f->j, "Y00000017", NULL, NULL), 0);
	assert_int_equal(journal_blacklisted(f->j, NULL, "330100D15600000500BF7C7AC9FC0FEC", NULL),
			 1);
	assert_int_equal(journal_blacklisted(f->j, "Y00000017", "330100D15600000500BF7C7AC9FC0FED",
					     NULL), 0);

	/* A malformed line rejects the whole file and names the line. */
	fp = fopen(path, "w");
	fprintf(fp, "Y00000017\nnot-a-card\n");
	fclose(fp);
	fp = fopen(path, "r");
	ssc_diag_init(&d);
	assert_int_equal(journal_blacklist_import(f->j, fp, &d), SSC_EINVAL);
	fclose(fp);
	assert_non_null(strstr(d.msg, "line 2"));
	assert_int_equal(journal_blacklisted(f->j, "Y00000017", NULL, NULL), 0);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
}

static void test_corrupt_file_refused(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct ssc_diag d;
	char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/bad.db", f->dir);
	fp = fopen(path, "w");
	for (int i = 0; i < 512; i++)
		fputs("garbage!", fp);
	fclose(fp);
	/* The key belongs to the good journal; the file is not a database. */
	snprintf(path, sizeof(path), "%s/journal.db.key", f->dir);
	{
		char bad[160];

		snprintf(bad, sizeof(bad), "%s/bad.db", f->dir);
		ssc_diag_init(&d);
		assert_int_equal(journal_open(bad, path, 0, &j, &d), SSC_EJOURNAL);
		assert_non_null(strstr(d.msg, "not a database"));
		/* Without a key file, an existing database is refused too. */
		ssc_diag_init(&d);
		assert_int_equal(journal_open(bad, "/nonexistent/key", 0, &j, &d), SSC_EJOURNAL);
		assert_non_null(strstr(d.msg, "key file"));
	}
}

static void test_export_json_lines(void **state)
{
	struct fx *f = *state;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	add_audits(f->j, 2);
	assert_int_equal(journal_export(f->j, 0, mem), 2);
	fclose(mem);
	assert_non_null(strstr(buf, "\"method\":\"card.read_basic\""));
	assert_null(strstr(buf, "X00000019"));
	assert_non_null(strchr(buf, '\n'));
	free(buf);
}

/* What the observer heard (test_observer_*). */
struct heard {
	int n;
	char kind[8][16];
	int64_t seq[8];
	char hash[8][JOURNAL_HASH_HEX + 1];
	int err[8];
	char why[8][256];
};

static void observer(void *arg, const struct journal_note *note)
{
	struct heard *h = arg;

	assert_true(h->n < 8);
	snprintf(h->kind[h->n], sizeof(h->kind[0]), "%s", note->kind);
	h->seq[h->n] = note->seq;
	snprintf(h->hash[h->n], sizeof(h->hash[0]), "%s", note->hash);
	h->err[h->n] = note->err;
	snprintf(h->why[h->n], sizeof(h->why[0]), "%s", note->why);
	h->n++;
}

static void test_observer_hears_each_append_with_the_head(void **state)
{
	struct fx *f = *state;
	struct journal_peer peer = { .uid = 0, .pid = 1, .exe = "" };
	struct heard h = { 0 };
	char head[JOURNAL_HASH_HEX + 1];
	struct ssc_diag d;
	int64_t id = 0, seq = 0;

	journal_set_observer(f->j, observer, &h);
	add_audits(f->j, 1);
	ssc_diag_init(&d);
	assert_int_equal(journal_intent(f->j, &peer, "c", "r", "DF04/EF08", "{}", &id, &d), 0);
	assert_int_equal(journal_outcome(f->j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	/* An outcome refused for a reason of the caller's is not a journal failure: no note. */
	assert_int_equal(journal_outcome(f->j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d),
			 SSC_EEXIST);
	assert_int_equal(h.n, 3);
	assert_string_equal(h.kind[0], "audit");
	assert_string_equal(h.kind[1], "intent");
	assert_string_equal(h.kind[2], "outcome");
	assert_int_equal(h.seq[0], 1);
	assert_int_equal(h.seq[1], 2);
	assert_int_equal(id, 2);
	assert_int_equal(h.seq[2], 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(h.err[i], 0);
		assert_string_equal(h.why[i], "");
	}
	/* The note's hash is the chain head at that row: what the daemon logs. */
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 3);
	assert_string_equal(h.hash[2], head);
	assert_int_equal(journal_verify(f->j, 2, h.hash[1], NULL, &d), 0);
	journal_set_observer(f->j, NULL, NULL);
	add_audits(f->j, 1);
	assert_int_equal(h.n, 3);
}

static void test_observer_hears_a_failed_append(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .method = "system.info", .result = "SSC_OK" };
	struct heard h = { 0 };
	struct ssc_diag d;

	add_audits(f->j, 1);
	journal_set_observer(f->j, observer, &h);
	/* The table vanishes behind the daemon's back: the next append fails at once. */
	tamper(f->db, "DROP TABLE rows");
	ssc_diag_init(&d);
	assert_int_equal(journal_audit(f->j, &a, &d), SSC_EJOURNAL);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.kind[0], "audit");
	assert_int_equal(h.err[0], SSC_EJOURNAL);
	assert_int_equal(h.seq[0], 0);
	assert_string_equal(h.hash[0], "");
	assert_string_equal(h.why[0], d.msg);
	assert_non_null(strstr(h.why[0], "rows"));
	/* Without a diag from the caller, the note still says why. */
	assert_int_equal(journal_audit(f->j, &a, NULL), SSC_EJOURNAL);
	assert_int_equal(h.n, 2);
	assert_true(strlen(h.why[1]) > 0);
}

static void test_suspend_and_resume(void **state)
{
	struct fx *f = *state;
	struct journal_audit a = { .method = "system.info", .result = "SSC_OK" };
	struct heard h = { 0 };
	char head[JOURNAL_HASH_HEX + 1];
	struct ssc_diag d;
	int64_t seq = 0, rows = 0, id = 0;

	add_audits(f->j, 2);
	journal_set_observer(f->j, observer, &h);
	assert_int_equal(journal_suspended(f->j), 0);
	journal_suspend(f->j, "database or disk is full");
	journal_suspend(f->j, "database or disk is full");   /* idempotent */
	assert_int_equal(journal_suspended(f->j), 1);
	ssc_diag_init(&d);
	assert_int_equal(journal_audit(f->j, &a, &d), SSC_EJOURNAL);
	/* Every later failure names the reason it was taken out of service. */
	assert_non_null(strstr(d.msg, "out of service (database or disk is full)"));
	assert_int_equal(journal_intent(f->j, NULL, "c", "r", "SSSE/EF06", "{}", &id, &d),
			 SSC_EJOURNAL);
	assert_int_equal(journal_outcome(f->j, 1, JOURNAL_FAILED, "SSC_EIO", "card", &d),
			 SSC_EJOURNAL);
	assert_int_equal(journal_head(f->j, &seq, head), SSC_EJOURNAL);
	ssc_diag_init(&d);
	assert_int_equal(journal_blacklisted(f->j, "X00000019", NULL, &d), SSC_EJOURNAL);
	assert_string_equal(d.msg, "journal: lost-card list: out of service (database or disk is "
			    "full)");
	assert_int_equal(journal_pending_count(f->j, NULL), SSC_EJOURNAL);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_int_equal(journal_prune_before(f->j, 1, &d), SSC_EJOURNAL);
	/* The owner suspended it: nobody needs telling. */
	assert_int_equal(h.n, 0);
	/* Card refs need no database: they go on, with the same key. */
	{
		char r1[JOURNAL_REF_HEX + 1], r2[JOURNAL_REF_HEX + 1];

		journal_card_ref(f->j, "X00000019", r1);
		assert_int_equal(journal_resume(f->j, &d), 0);
		journal_card_ref(f->j, "X00000019", r2);
		assert_string_equal(r1, r2);
	}
	assert_int_equal(journal_suspended(f->j), 0);
	assert_int_equal(journal_resume(f->j, &d), 0);   /* not suspended: nothing to do */
	assert_int_equal(journal_audit(f->j, &a, &d), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.seq[0], 3);
	assert_int_equal(journal_verify(f->j, 0, NULL, &rows, &d), 0);
	assert_int_equal(rows, 3);
}

static void test_resume_refuses_a_corrupted_file(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	FILE *fp;

	add_audits(f->j, 1);
	journal_suspend(f->j, "test");
	/* The file is overwritten while suspended (the WAL goes with it). */
	{
		char p[160];

		snprintf(p, sizeof(p), "%s-wal", f->db);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", f->db);
		unlink(p);
	}
	fp = fopen(f->db, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, not even close. ", fp);
	for (int i = 0; i < 100; i++)
		fputs("garbage garbage garbage ", fp);
	fclose(fp);
	ssc_diag_init(&d);
	assert_int_equal(journal_resume(f->j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "journal:"));
	assert_int_equal(journal_suspended(f->j), 1);
}

struct collected {
	int n;
	int64_t seq[16];
	char kind[16][16];
	char method[16][32];
	int stop_at;
};

static int collect_rows(void *arg, const struct journal_row *row)
{
	struct collected *c = arg;

	assert_true(c->n < 16);
	c->seq[c->n] = row->seq;
	snprintf(c->kind[c->n], sizeof(c->kind[0]), "%s", row->kind);
	snprintf(c->method[c->n], sizeof(c->method[0]), "%s", row->method);
	assert_int_equal(strlen(row->hash), JOURNAL_HASH_HEX);
	assert_int_equal(strlen(row->time), 24);   /* 2026-11-23T19:40:00.123Z */
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void test_rows_since_limit_and_last(void **state)
{
	struct fx *f = *state;
	struct collected c;

	add_audits(f->j, 6);
	memset(&c, 0, sizeof(c));
	assert_int_equal(journal_rows(f->j, 0, 0, collect_rows, &c), 0);
	assert_int_equal(c.n, 6);
	assert_int_equal(c.seq[0], 1);
	assert_int_equal(c.seq[5], 6);
	assert_string_equal(c.kind[0], "audit");
	assert_string_equal(c.method[0], "card.read_basic");
	memset(&c, 0, sizeof(c));
	assert_int_equal(journal_rows(f->j, 2, 3, collect_rows, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.seq[0], 3);
	assert_int_equal(c.seq[2], 5);
	/* The last two, oldest first. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(journal_rows(f->j, -1, 2, collect_rows, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seq[0], 5);
	assert_int_equal(c.seq[1], 6);
	/* The callback stops the walk. */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(journal_rows(f->j, 0, 0, collect_rows, &c), 7);
	assert_int_equal(c.n, 2);
	memset(&c, 0, sizeof(c));
	assert_int_equal(journal_rows(f->j, 6, 10, collect_rows, &c), 0);
	assert_int_equal(c.n, 0);
}

static void test_append_applied(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	int64_t a, b, c;
	char ref[JOURNAL_REF_HEX + 1], other[JOURNAL_REF_HEX + 1];

	journal_card_ref(f->j, "X00000019", ref);
	journal_card_ref(f->j, "Y00000017", other);
	assert_int_equal(journal_intent(f->j, NULL, ref, "r", "DF04/EF08",
					"{\"op\":\"append\",\"settlement_no\":\"S1\",\"record\":\"x\"}",
					&a, &d),
			 0);
	assert_int_equal(journal_intent(f->j, NULL, ref, "r", "DF04/EF08",
					"{\"op\":\"append\",\"settlement_no\":\"S2\",\"record\":\"y\"}",
					&b, &d),
			 0);
	assert_int_equal(journal_intent(f->j, NULL, ref, "r", "DF04/EF05",
					"{\"op\":\"update\",\"settlement_no\":\"S3\"}", &c, &d),
			 0);
	/* Pending: not (yet) applied. */
	assert_int_equal(journal_append_applied(f->j, ref, "S1"), 0);
	assert_int_equal(journal_outcome(f->j, a, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_outcome(f->j, b, JOURNAL_FAILED, "SSC_ENOTFOUND", "readback", &d),
			 0);
	assert_int_equal(journal_outcome(f->j, c, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(journal_append_applied(f->j, ref, "S1"), 1);
	assert_int_equal(journal_append_applied(f->j, ref, "S2"), 0);     /* failed */
	assert_int_equal(journal_append_applied(f->j, ref, "S3"), 0);     /* not an append */
	assert_int_equal(journal_append_applied(f->j, other, "S1"), 0);   /* another card */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_ref_vector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_ref_is_keyed_and_not_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edited_row_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_row_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renumbered_rows_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inserted_row_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_tail_detected_with_logged_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_intents_and_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_keeps_chain_and_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_head_after_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blacklist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_json_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_observer_hears_each_append_with_the_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_observer_hears_a_failed_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suspend_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_refuses_a_corrupted_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_since_limit_and_last, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
