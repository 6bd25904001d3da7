/*
 * Unit tests of what the journal's chain now covers beyond its rows (src/journal_key.c,
 * src/journal_list.c, src/journal_verify.c), on real SQLite files: a key file that is not the
 * journal's is refused at open and named by verify; the lost-card list is in the chain (changes
 * outside sscard are caught by verify, by a writable open and by the lookup after another
 * process wrote; removal; a prune carries the digest on); a journal of schema 1 (made by the
 * version before, tests/e2e/data/journal-v1) is migrated in place; key rotation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

/* The fixture's cards (tests/e2e/data/journal-v1/README.md). */
#define V1_NUMBER "X00000019"
#define V1_ID "330200D156000005013C5A7E0A29D26E"
#define V1_NUMBER2 "B00000001"

struct fx {
	char dir[64];
	char db[128], key[140], list[128];
	struct journal *j;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ssc_diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-jchain-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/journal.db.key", f->dir);
	snprintf(f->list, sizeof(f->list), "%s/lost.txt", f->dir);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	char path[400];
	DIR *dir;

	journal_close(f->j);
	dir = opendir(f->dir);
	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
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

/* Runs SQL on the file behind the journal's back, as an attacker would. */
static void tamper(const char *db, const char *sql)
{
	sqlite3 *h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* journal_blacklist_import/remove() of text; returns its result. */
static int list_change(struct fx *f, struct journal *j, const char *text, int remove,
		       int *not_listed, struct ssc_diag *d)
{
	FILE *fp;
	int r;

	write_file(f->list, text);
	fp = fopen(f->list, "r");
	assert_non_null(fp);
	ssc_diag_init(d);
	r = remove ? journal_blacklist_remove(j, fp, not_listed, d)
		   : journal_blacklist_import(j, fp, d);
	fclose(fp);
	return r;
}

static void replace_key(const char *path)
{
	uint8_t k[32];
	int fd;

	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(0xA5 ^ i);
	assert_int_equal(unlink(path), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, k, sizeof(k)), sizeof(k));
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* ---- the key must prove itself against the chain ----------------------------------------- */

/* Issue 12, defect 1: 32 random bytes over the key file, and the journal was taken as it was. */
static void test_replaced_key_refused(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct ssc_diag d;

	add_audits(f->j, 3);
	journal_close(f->j);
	f->j = NULL;
	replace_key(f->key);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "is not this journal's key"));
	/* Read-only (an operator's verify) opens, and verify names the cause first. */
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &f->j, &d), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "is not this journal's key"));
}

/* A journal whose key id was not kept (or was removed): the last row's hash decides. */
static void test_replaced_key_refused_by_the_last_row(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct ssc_diag d;

	add_audits(f->j, 2);
	journal_close(f->j);
	f->j = NULL;
	tamper(f->db, "DELETE FROM meta WHERE key = 'key_id'");
	replace_key(f->key);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "does not verify the journal's last row (2)"));
}

static void test_missing_key_refused(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct ssc_diag d;

	add_audits(f->j, 1);
	journal_close(f->j);
	f->j = NULL;
	assert_int_equal(unlink(f->key), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "is missing but the journal exists"));
	/* No key was made in its place. */
	assert_int_equal(access(f->key, F_OK), -1);
}

/* The right key and an untouched file open as before; an edited last row does not. */
static void test_key_checked_against_the_last_row(void **state)
{
	struct fx *f = *state;
	struct journal *j;
	struct ssc_diag d;

	add_audits(f->j, 2);
	journal_close(f->j);
	f->j = NULL;
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	journal_close(f->j);
	f->j = NULL;
	tamper(f->db, "UPDATE rows SET result = 'SSC_EPINWRONG' WHERE seq = 2");
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "the last row (2) does not match its chain hash"));
}

/* ---- the lost-card list in the chain ------------------------------------------------------ */

/* Issue 12, defect 2: "delete from blacklist" and verify said "journal intact". */
static void test_list_edit_detected_by_verify_and_open(void **state)
{
	struct fx *f = *state;
	struct journal_report rep;
	struct journal *j;
	struct ssc_diag d;

	assert_int_equal(list_change(f, f->j, "X00000019\n" V1_ID "\n", 0, NULL, &d), 2);
	add_audits(f->j, 2);
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.list_entries, 2);
	assert_int_equal(rep.list_seq, 1);   /* the import row */
	tamper(f->db, "DELETE FROM blacklist");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "the lost-card list (0 entries) does not match the digest "
				      "chained in row 1 (2 entries)"));
	journal_close(f->j);
	f->j = NULL;
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "lost-card list"));
}

/* An entry added outside sscard, and one whose time was changed, are changes too. */
static void test_list_insert_and_edit_detected(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;

	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
	tamper(f->db, "INSERT INTO blacklist(ref, added, kind, uid) VALUES"
		      " ('00112233445566778899aabbccddeeff', '2026-01-01T00:00:00.000Z', 'number', 0)");
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "holds 1 entries that no chained row accounts for"));
	tamper(f->db, "DELETE FROM blacklist");
	assert_int_equal(list_change(f, f->j, "X00000019\n", 0, NULL, &d), 1);
	tamper(f->db, "UPDATE blacklist SET added = '2020-01-01T00:00:00.000Z'");
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "does not match the digest"));
	/* And an import refuses to chain a list it did not find as the chain says. */
	assert_int_equal(list_change(f, f->j, "Y00000017\n", 0, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "lost-card list"));
}

/* One field as docs/security.md gives the list's digest: 8-byte big-endian length, bytes. */
static void digest_field(EVP_MD_CTX *md, const char *s)
{
	uint8_t hdr[8] = { 0 };
	size_t n = strlen(s);

	hdr[6] = (uint8_t)(n >> 8);
	hdr[7] = (uint8_t)n;
	assert_int_equal(EVP_DigestUpdate(md, hdr, 8), 1);
	assert_int_equal(EVP_DigestUpdate(md, s, n), 1);
}

/*
 * The digest of the list in db computed here, from the documented format (SHA-256 over the
 * entries in ref order, each as ref, kind, added, uid in decimal), not by the journal's code.
 */
static void digest_by_hand(const char *db, char *hex)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t out[32];
	unsigned int olen;
	sqlite3_stmt *st;
	sqlite3 *h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT ref, kind, added, uid FROM blacklist"
					    " ORDER BY ref", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	while (sqlite3_step(st) == SQLITE_ROW)
		for (int i = 0; i < 4; i++)
			digest_field(md, (const char *)sqlite3_column_text(st, i));
	sqlite3_finalize(st);
	sqlite3_close(h);
	assert_int_equal(EVP_DigestFinal_ex(md, out, &olen), 1);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

/* The digest chained is the documented one; and a forged digest row is not the chain's. */
static void test_list_digest_row_forged(void **state)
{
	struct fx *f = *state;
	char digest[65], want[100], sql[400];
	struct journal *j;
	struct ssc_diag d;

	assert_int_equal(list_change(f, f->j, "X00000019\nY00000017\n", 0, NULL, &d), 2);
	add_audits(f->j, 1);
	journal_close(f->j);
	f->j = NULL;
	digest_by_hand(f->db, digest);
	snprintf(want, sizeof(want), "\"entries\":2,\"list_digest\":\"%s\"}", digest);
	{
		sqlite3 *h;
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(h, "SELECT detail FROM rows WHERE seq = 1", -1,
						    &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_non_null(strstr((const char *)sqlite3_column_text(st, 0), want));
		sqlite3_finalize(st);
		sqlite3_close(h);
	}
	/* Delete one entry and rewrite the import row's digest to the one-entry list's. */
	tamper(f->db, "DELETE FROM blacklist WHERE rowid = 1");
	digest_by_hand(f->db, digest);
	snprintf(sql, sizeof(sql), "UPDATE rows SET detail = '{\"added\":1,\"entries\":1,"
		 "\"list_digest\":\"%s\"}' WHERE seq = 1", digest);
	tamper(f->db, sql);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 1, which carries the lost-card list's digest, does "
				      "not match its chain hash"));
}

/* What the daemon's lookup does when another process has written to the database. */
struct heard {
	int n, err;
	char why[256];
};

static void observer(void *arg, const struct journal_note *note)
{
	struct heard *h = arg;

	h->n++;
	if (note->err) {
		h->err = note->err;
		snprintf(h->why, sizeof(h->why), "%s", note->why);
	}
}

static void test_lookup_checks_the_list_after_another_writer(void **state)
{
	struct fx *f = *state;
	struct heard h = { 0 };
	struct journal *op;
	struct ssc_diag d;

	journal_set_observer(f->j, observer, &h);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 0);
	/* An operator's import through another handle (another connection): seen at once. */
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &op, &d), 0);
	assert_int_equal(list_change(f, op, V1_NUMBER "\n", 0, NULL, &d), 1);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	assert_int_equal(h.err, 0);
	/* A removal through sscard: seen, and still matching. */
	assert_int_equal(list_change(f, op, V1_NUMBER "\n", 1, NULL, &d), 1);
	journal_close(op);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 0);
	assert_int_equal(h.err, 0);
	/* An entry put back behind sscard's back: the lookup fails and the owner hears why. */
	tamper(f->db, "INSERT INTO blacklist(ref, added, kind, uid) VALUES"
		      " ('00112233445566778899aabbccddeeff', '2026-01-01T00:00:00.000Z', 'number', 0)");
	ssc_diag_init(&d);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "lost-card list"));
	assert_int_equal(h.err, SSC_EJOURNAL);
	assert_non_null(strstr(h.why, "changed outside sscard"));
	/* And it stays failed (the daemon then takes the journal out of service). */
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), SSC_EJOURNAL);
}

/* Retention removes the rows that changed the list: the prune row carries the digest on. */
static void test_list_covered_after_prune(void **state)
{
	struct fx *f = *state;
	struct journal_report rep;
	struct ssc_diag d;
	int64_t seq;
	char head[JOURNAL_HASH_HEX + 1];

	assert_int_equal(list_change(f, f->j, V1_NUMBER "\n", 0, NULL, &d), 1);
	add_audits(f->j, 3);
	ssc_diag_init(&d);
	assert_int_equal(journal_prune_before(f->j, (int64_t)time(NULL) + 3600, &d), 4);
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 5);   /* the prune row */
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.list_seq, 5);
	assert_int_equal(rep.list_entries, 1);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	tamper(f->db, "DELETE FROM blacklist");
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "chained in row 5 (1 entries)"));
	/* Nor does a prune put a changed list's digest in the chain. */
	add_audits(f->j, 1);
	ssc_diag_init(&d);
	assert_int_equal(journal_prune_before(f->j, (int64_t)time(NULL) + 3600, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "lost-card list"));
}

struct seen {
	int n;
	char kind[4][8];
	char ref[4][JOURNAL_REF_HEX + 1];
	int64_t uid[4];
};

static int collect(void *arg, const struct journal_list_entry *e)
{
	struct seen *s = arg;

	assert_true(s->n < 4);
	snprintf(s->kind[s->n], sizeof(s->kind[0]), "%s", e->kind);
	snprintf(s->ref[s->n], sizeof(s->ref[0]), "%s", e->ref);
	assert_int_equal(strlen(e->added), 24);
	s->uid[s->n++] = e->uid;
	return 0;
}

/* Issue 11: taking a card off the list (by its number or its id), and what the list holds. */
static void test_list_remove_and_entries(void **state)
{
	struct fx *f = *state;
	struct seen s = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;
	struct ssc_diag d;
	int not_listed = -1;

	assert_int_equal(list_change(f, f->j, V1_NUMBER "\n" V1_ID "\n", 0, NULL, &d), 2);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	assert_int_equal(journal_blacklist_entries(f->j, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_true((strcmp(s.kind[0], "number") == 0 && strcmp(s.kind[1], "id") == 0) ||
		    (strcmp(s.kind[0], "id") == 0 && strcmp(s.kind[1], "number") == 0));
	assert_int_equal(s.uid[0], (int64_t)getuid());
	assert_null(strstr(s.ref[0], "X0000"));
	/* The number's entry goes; the id's stays, and still refuses the card by its id. */
	assert_int_equal(list_change(f, f->j, "# found again\nx00000019\nY00000017\n", 1,
				     &not_listed, &d), 1);
	assert_int_equal(not_listed, 1);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 0);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, V1_ID, NULL), 1);
	assert_int_equal(list_change(f, f->j, V1_ID "\n", 1, &not_listed, &d), 1);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, V1_ID, NULL), 0);
	/* A malformed line removes nothing. */
	assert_int_equal(list_change(f, f->j, V1_NUMBER "\n", 0, NULL, &d), 1);
	assert_int_equal(list_change(f, f->j, V1_NUMBER "\nnot-a-card\n", 1, NULL, &d),
			 SSC_EINVAL);
	assert_non_null(strstr(d.msg, "line 2"));
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	/* Every change is a chained row naming the refs, and the chain holds. */
	mem = open_memstream(&buf, &len);
	assert_int_equal(journal_export(f->j, 0, mem), 4);
	fclose(mem);
	assert_non_null(strstr(buf, "\"method\":\"blacklist.remove\""));
	assert_non_null(strstr(buf, "\"removed\":1,\"not_listed\":1,\"lines\":3,\"refs\":[\""));
	assert_null(strstr(buf, "X00000019"));
	free(buf);
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
}

/* ---- a journal of the version before (schema 1), migrated in place ------------------------ */

static void fixture(struct fx *f)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char from[512];

	journal_close(f->j);
	f->j = NULL;
	unlink(f->db);
	unlink(f->key);
	assert_non_null(src);
	snprintf(from, sizeof(from), "%s/tests/e2e/data/journal-v1/journal.db", src);
	copy_file(from, f->db);
	snprintf(from, sizeof(from), "%s/tests/e2e/data/journal-v1/journal.db.key", src);
	copy_file(from, f->key);
}

static void test_migrate_schema_1(void **state)
{
	struct fx *f = *state;
	struct journal_report rep;
	struct seen s = { 0 };
	struct ssc_diag d;
	int64_t seq;
	char head[JOURNAL_HASH_HEX + 1];

	fixture(f);
	/* Read-only, as it is: intact, its list not chained yet. */
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &f->j, &d), 0);
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.rows, 10);
	assert_int_equal(rep.list_uncovered, 1);
	assert_int_equal(journal_blacklist_entries(f->j, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.kind[0], "");
	assert_int_equal(s.uid[0], -1);
	journal_close(f->j);
	/* Writable: migrated, with a chained row carrying the list's digest. */
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 15);
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.rows, 11);
	assert_int_equal(rep.list_uncovered, 0);
	assert_int_equal(rep.list_entries, 3);
	assert_int_equal(rep.list_seq, 15);
	/* The importer (root, in the fixture's rows 13 and 14) is known again. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(journal_blacklist_entries(f->j, collect, &s), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s.uid[i], 0);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(f->j, NULL, V1_ID, NULL), 1);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER2, NULL, NULL), 1);
	/* Once only. */
	journal_close(f->j);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 15);
	/* And from now on a change to the list is caught. */
	tamper(f->db, "DELETE FROM blacklist");
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "chained in row 15 (3 entries)"));
}

/* ---- key rotation ------------------------------------------------------------------------ */

static void test_rotate_key(void **state)
{
	struct fx *f = *state;
	struct journal_rotation rot;
	struct journal_report rep;
	struct journal *j;
	char before[JOURNAL_REF_HEX + 1], after[JOURNAL_REF_HEX + 1], kid[JOURNAL_KEY_ID_HEX + 1];
	char head[JOURNAL_HASH_HEX + 1], old_head[JOURNAL_HASH_HEX + 1], oldkey[200];
	struct ssc_diag d;
	int64_t seq;
	FILE *fp;

	assert_int_equal(list_change(f, f->j, V1_NUMBER "\n" V1_ID "\n", 0, NULL, &d), 2);
	add_audits(f->j, 3);
	journal_card_ref(f->j, V1_NUMBER, before);
	journal_key_id(f->j, kid);
	assert_int_equal(journal_head(f->j, &seq, old_head), 0);
	assert_int_equal(seq, 4);
	/* Without the cards' numbers the list cannot be re-keyed: refused, nothing changed. */
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), SSC_EINVAL);
	assert_non_null(strstr(d.msg, "holds 2 entries, and no list was given"));
	write_file(f->list, V1_NUMBER "\n");
	fp = fopen(f->list, "r");
	assert_int_equal(journal_rotate_key(f->j, fp, &rot, &d), SSC_EINVAL);
	fclose(fp);
	assert_non_null(strstr(d.msg, "1 of the 2"));
	assert_int_equal(journal_head(f->j, &seq, head), 0);
	assert_int_equal(seq, 4);
	journal_key_id(f->j, after);
	assert_string_equal(after, kid);

	/* The daemon's user owns the key; the operator rotates as root. */
	if (geteuid() == 0)
		assert_int_equal(chown(f->key, 65534, 65534), 0);
	write_file(f->list, "# every list imported\n" V1_ID "\n" V1_NUMBER "\nY00000017\n");
	fp = fopen(f->list, "r");
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, fp, &rot, &d), 0);
	fclose(fp);
	if (geteuid() == 0) {
		struct stat st;

		/* Both keys stay the daemon's user's, mode 0600. */
		assert_int_equal(stat(f->key, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_gid, 65534);
		assert_int_equal(st.st_mode & 0777, 0600);
		snprintf(oldkey, sizeof(oldkey), "%s.old-%s", f->key, kid);
		assert_int_equal(stat(oldkey, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_string_equal(rot.old_key_id, kid);
	assert_string_not_equal(rot.new_key_id, kid);
	assert_int_equal(rot.old_head_seq, 4);
	assert_string_equal(rot.old_head_hash, old_head);
	assert_int_equal(rot.key_row_seq, 5);
	assert_int_equal(rot.entries, 2);
	assert_int_equal(rot.ignored, 1);
	snprintf(oldkey, sizeof(oldkey), "%s.old-%s", f->key, kid);
	assert_string_equal(rot.old_key_path, oldkey);
	assert_int_equal(access(oldkey, R_OK), 0);
	/* Cards get new names; the list names them under the new key. */
	journal_card_ref(f->j, V1_NUMBER, after);
	assert_string_not_equal(after, before);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	assert_int_equal(journal_blacklisted(f->j, NULL, V1_ID, NULL), 1);
	add_audits(f->j, 1);
	/* Verify: the rows before the rotation need the old key. */
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.rotations, 1);
	assert_int_equal(rep.rows, 2);
	assert_int_equal(rep.unchecked, 4);
	assert_int_equal(rep.unchecked_first, 1);
	assert_int_equal(rep.unchecked_last, 4);
	assert_string_equal(rep.unchecked_key, kid);
	assert_int_equal(journal_add_old_key(f->j, oldkey, &d), 0);
	assert_int_equal(journal_verify_report(f->j, 0, NULL, &rep, &d), 0);
	assert_int_equal(rep.rows, 6);
	assert_int_equal(rep.unchecked, 0);
	/* A head logged before the rotation is still reached. */
	assert_int_equal(journal_verify(f->j, 4, old_head, NULL, &d), 0);
	journal_close(f->j);
	f->j = NULL;
	/* The key file is the new key: it opens; the old one does not any more. */
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	assert_int_equal(journal_blacklisted(f->j, V1_NUMBER, NULL, NULL), 1);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, oldkey, 0, &j, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "is not this journal's key"));
}

static void test_rotate_refused_while_in_use_or_pending(void **state)
{
	struct fx *f = *state;
	struct journal_rotation rot;
	struct journal *other;
	struct ssc_diag d;
	int64_t id;

	add_audits(f->j, 1);
	/* Another user of the key file (the daemon holds it as long as it runs). */
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, JOURNAL_RDONLY, &other, &d), 0);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "is in use: stop sscardd first"));
	journal_close(other);
	/* A pending intent: its refs are under the key of its time. */
	assert_int_equal(journal_intent(f->j, NULL, "c", "r", "DF04/EF05", "{}", &id, &d), 0);
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "1 write intent(s) are pending"));
	assert_int_equal(journal_outcome(f->j, id, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	/* A broken chain is not carried under a new key. */
	tamper(f->db, "UPDATE rows SET result = 'SSC_EPINWRONG' WHERE seq = 1");
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 1 does not match"));
	/* While the key file is locked for a rotation, nobody opens the journal. */
}

/* The rotation row binds the rows before it: its record of the old head is checked. */
static void test_rotation_row_links_the_old_head(void **state)
{
	struct fx *f = *state;
	struct journal_rotation rot;
	struct ssc_diag d;

	add_audits(f->j, 2);
	ssc_diag_init(&d);
	assert_int_equal(journal_rotate_key(f->j, NULL, &rot, &d), 0);
	add_audits(f->j, 1);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), 0);
	/* Without the old key, an edited old row still shows where it meets the new chain. */
	tamper(f->db, "UPDATE rows SET hash = '0000000000000000000000000000000000000000000000000000"
		      "000000000000' WHERE seq = 2");
	ssc_diag_init(&d);
	assert_int_equal(journal_verify(f->j, 0, NULL, NULL, &d), SSC_EJOURNAL);
	assert_non_null(strstr(d.msg, "row 3 (a key rotation) does not record the head before it"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replaced_key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_key_refused_by_the_last_row, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_missing_key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_checked_against_the_last_row, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list_edit_detected_by_verify_and_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list_insert_and_edit_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_digest_row_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_checks_the_list_after_another_writer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_covered_after_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_remove_and_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_schema_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_refused_while_in_use_or_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotation_row_links_the_old_head, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
