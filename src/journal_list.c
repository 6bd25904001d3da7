/*
 * This file contains the journal's lost-card list (src/journal.h): entries stored as keyed hashes
 * of card numbers and card ids, each change (import, removal, the migration from schema 1) one
 * transaction with a chained row that names the refs changed and carries a digest of the whole
 * list, the check of the list against the digest the chain carries last, and the lookup every
 * card operation makes.
 */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"
#include "journal_int.h"
#include "jsontext.h"

/* The rows that carry the list's digest (the partial index rows_list covers them). */
#define LIST_ROWS "kind IN ('blacklist', 'prune', 'key')"

int journal_list_entry(char *s, const char **label)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			s[i] = (char)(s[i] - 'a' + 'A');
	if (n == 9) {
		for (size_t i = 0; i < n; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
				return -1;
		*label = "bl-number";
		return 0;
	}
	if (n == 32) {
		for (size_t i = 0; i < n; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
				return -1;
		*label = "bl-id";
		return 0;
	}
	return -1;
}

int journal_list_read(FILE *f, int (*cb)(void *arg, const char *label, const char *value),
		      void *arg, int *lines, struct ssc_diag *diag)
{
	char line[256];
	int lineno = 0, r;

	while (fgets(line, sizeof(line), f)) {
		const char *label;
		char *s = line, *e;

		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			return ssc_diag_set(diag, SSC_EINVAL, "line %d: too long", lineno);
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		if (journal_list_entry(s, &label) < 0)
			return ssc_diag_set(diag, SSC_EINVAL,
					    "line %d: expected a 9-character card number or a "
					    "32-hex-digit card id",
					    lineno);
		r = cb(arg, label, s);
		if (r == SSC_EJOURNAL)
			return ssc_diag_set(diag, r, "line %d: the journal refused it", lineno);
		if (r == SSC_ENOMEM)
			return ssc_diag_set(diag, r, "line %d: out of memory", lineno);
		if (r < 0)
			return r;
	}
	if (ferror(f))
		return ssc_diag_set(diag, SSC_EIO, "read error");
	if (lines)
		*lines = lineno;
	return 0;
}

/* One field into the digest: 8-byte big-endian length, then the bytes (as the chain does). */
static int digest_field(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint8_t hdr[8];

	journal_field_len(hdr, n);
	return EVP_DigestUpdate(md, hdr, 8) == 1 && EVP_DigestUpdate(md, p, n) == 1 ? 0 : -1;
}

int journal_list_digest(struct journal *j, char *digest, int64_t *entries)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t out[32];
	unsigned int olen = 0;
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	*entries = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    sqlite3_prepare_v2(j->db, "SELECT ref, kind, added, uid FROM blacklist ORDER BY ref",
			       -1, &st, NULL) != SQLITE_OK) {
		ret = SSC_EJOURNAL;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char uid[24];

		snprintf(uid, sizeof(uid), "%" PRId64, (int64_t)sqlite3_column_int64(st, 3));
		for (int i = 0; i < 3 && ret == 0; i++) {
			const char *t = journal_col_text(st, i);

			ret = digest_field(md, t, strlen(t));
		}
		if (ret == 0)
			ret = digest_field(md, uid, strlen(uid));
		if (ret < 0) {
			ret = SSC_EJOURNAL;
			break;
		}
		(*entries)++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = SSC_EJOURNAL;
	if (ret == 0 && (EVP_DigestFinal_ex(md, out, &olen) != 1 || olen != 32))
		ret = SSC_EJOURNAL;
	if (ret == 0)
		hex_encode(out, 32, digest, JOURNAL_HASH_HEX + 1, HEX_LOWER);
out:
	sqlite3_finalize(st);
	EVP_MD_CTX_free(md);
	return ret;
}

int journal_list_detail(struct journal *j, char *out, size_t cap)
{
	char digest[JOURNAL_HASH_HEX + 1];
	int64_t n;

	if (journal_list_digest(j, digest, &n) < 0)
		return SSC_EJOURNAL;
	snprintf(out, cap, ",\"entries\":%" PRId64 ",\"list_digest\":\"%s\"", n, digest);
	return 0;
}

/*
 * The check itself, inside a read (or the caller's) transaction. *mismatch = 1 when the list was
 * found not to match the chain (changed outside sscard); a check that could not be made (a
 * failing database, no memory) fails without it.
 */
static int list_check_txn(struct journal *j, struct ssc_diag *diag, int *mismatch)
{
	char now[JOURNAL_HASH_HEX + 1];
	const char *want = NULL;
	sqlite3_stmt *st;
	json_error_t jerr;
	json_t *d = NULL;
	int64_t seq = 0, n, then = 0;
	int rc, ret = 0;

	*mismatch = 0;
	if (journal_list_digest(j, now, &n) < 0)
		return journal_err(j, diag, "read the lost-card list");
	if (sqlite3_prepare_v2(j->db, "SELECT seq, detail FROM rows WHERE " LIST_ROWS
			       " ORDER BY seq DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read the list's rows");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		d = json_loads(journal_col_text(st, 1), 0, &jerr);
		want = json_string_value(json_object_get(d, "list_digest"));
		then = json_integer_value(json_object_get(d, "entries"));
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = journal_err(j, diag, "read the list's rows");
	sqlite3_finalize(st);
	if (ret < 0) {
		/* failed above */
	} else if (rc == SQLITE_ROW && !d && json_error_code(&jerr) == json_error_out_of_memory) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory reading row %" PRId64,
				   seq);
	} else if (seq == 0 || !want) {
		if (n > 0) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the lost-card list holds %"
					   PRId64 " entries that no chained row accounts for: it was "
					   "changed outside sscard", n);
			*mismatch = 1;
		}
	} else if (strcmp(want, now) != 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the lost-card list (%" PRId64
				   " entries) does not match the digest chained in row %" PRId64
				   " (%" PRId64 " entries): it was changed outside sscard", n, seq,
				   then);
		*mismatch = 1;
	} else if ((rc = journal_row_check(j, seq, diag)) < 0) {
		ret = rc;   /* not checked: no verdict */
	} else if (rc == JOURNAL_ROW_BAD) {
		/* The digest itself must be the chain's, not a forged row's. */
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 ", which carries the "
				   "lost-card list's digest, does not match its chain hash: the "
				   "journal was changed outside sscard", seq);
		*mismatch = 1;
	}
	json_decref(d);
	return ret;
}

/* journal_list_check() with the verdict: *mismatch = 1 when the list does not match the chain. */
static int list_check(struct journal *j, struct ssc_diag *diag, int *mismatch)
{
	int own = sqlite3_get_autocommit(j->db), ret;

	*mismatch = 0;
	if (j->schema == 1)
		return 0;   /* read-only, not migrated: nothing chained to check against */
	/* One snapshot: an import committing meanwhile changes list and digest together. */
	if (own && sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "begin");
	ret = list_check_txn(j, diag, mismatch);
	if (own)
		journal_rollback(j);
	return ret;
}

int journal_list_check(struct journal *j, struct ssc_diag *diag)
{
	int mismatch;

	return list_check(j, diag, &mismatch);
}

int journal_list_migrate(struct journal *j, struct ssc_diag *diag)
{
	static const char sql[] =
		"ALTER TABLE blacklist ADD COLUMN kind TEXT NOT NULL DEFAULT '';"
		"ALTER TABLE blacklist ADD COLUMN uid INTEGER NOT NULL DEFAULT -1;"
		/*
		 * Who added an entry: the importer's uid, from the import row stamped with the
		 * entry's time (schema 1 gave both the same time). Whether it was a card number
		 * or a card id cannot be told from its hash: kind stays "".
		 */
		"UPDATE blacklist SET uid = coalesce((SELECT r.uid FROM rows r WHERE " LIST_ROWS
		" AND r.kind = 'blacklist' AND r.ts = blacklist.added ORDER BY r.seq DESC LIMIT 1),"
		" -1);"
		"INSERT OR REPLACE INTO meta(key, value) VALUES('schema', '2');";
	char detail[200], list[160];
	struct jrow r = { 0 };

	if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "migrate the lost-card list");
	if (journal_meta_set(j, "key_id", j->key_id) < 0 ||
	    journal_list_detail(j, list, sizeof(list)) < 0)
		return journal_err(j, diag, "migrate the lost-card list");
	snprintf(detail, sizeof(detail), "{\"schema\":2%s}", list);
	journal_now_ts(&r);
	journal_own_row(&r, "blacklist", "blacklist.migrate", detail);
	if (journal_row_insert(j, &r, NULL, NULL) < 0)
		return journal_err(j, diag, "append the migration row");
	return 0;
}

/* ---- import and removal ------------------------------------------------------------------ */

struct list_change {
	struct journal *j;
	int remove;
	sqlite3_stmt *st;
	const char *ts;
	json_t *refs;            /* the refs added or removed */
	int changed, unchanged;
};

static int change_line(void *arg, const char *label, const char *value)
{
	struct list_change *c = arg;
	char ref[JOURNAL_REF_HEX + 1];

	journal_keyed_ref(c->j, label, (const uint8_t *)value, strlen(value), ref);
	/* Never list (or unlist) the name of nothing in place of the card. */
	if (strcmp(ref, JOURNAL_REF_NONE) == 0)
		return SSC_ENOMEM;
	sqlite3_reset(c->st);
	/*
	 * The copy of the ref (SQLITE_TRANSIENT) may fail: never step with a NULL in its place (a
	 * card "listed" under no name at all).
	 */
	if (sqlite3_bind_text(c->st, 1, ref, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return SSC_ENOMEM;
	if (!c->remove &&
	    (sqlite3_bind_text(c->st, 2, c->ts, -1, SQLITE_STATIC) != SQLITE_OK ||
	     sqlite3_bind_text(c->st, 3, strcmp(label, "bl-id") == 0 ? "id" : "number", -1,
			       SQLITE_STATIC) != SQLITE_OK ||
	     sqlite3_bind_int64(c->st, 4, (sqlite3_int64)getuid()) != SQLITE_OK))
		return SSC_ENOMEM;
	if (sqlite3_step(c->st) != SQLITE_DONE)
		return SSC_EJOURNAL;
	if (sqlite3_changes(c->j->db) == 0) {
		c->unchanged++;
		return 0;
	}
	c->changed++;
	return json_array_append_new(c->refs, json_string(ref)) == 0 ? 0 : SSC_ENOMEM;
}

/* An import (remove = 0) or a removal of the entries of f, with its chained row. */
static int list_change(struct journal *j, FILE *f, int remove, int *unchanged,
		       struct ssc_diag *diag)
{
	struct list_change c = { .j = j, .remove = remove };
	char digest[JOURNAL_HASH_HEX + 1], hash[JOURNAL_HASH_HEX + 1] = "";
	struct jrow r = { 0 };
	json_t *d = NULL;
	char *detail = NULL;
	int64_t entries, seq = 0;
	int lines = 0, ret;

	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	journal_now_ts(&r);
	c.ts = r.ts;
	c.refs = json_array();
	if (!c.refs) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
		journal_notify(j, "blacklist", 0, "", ret, diag);
		return ret;
	}
	pthread_mutex_lock(&j->lock);
	if (!j->db) {
		ret = journal_err(j, diag, remove ? "remove" : "import");
		goto out_unlock;
	}
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_unlock;
	}
	/* The list as the chain knows it, before it changes: never chain a forged entry in. */
	ret = journal_list_check(j, diag);
	if (ret < 0)
		goto out_rollback;
	if (sqlite3_prepare_v2(j->db, remove ? "DELETE FROM blacklist WHERE ref = ?1" :
			       "INSERT OR IGNORE INTO blacklist(ref, added, kind, uid)"
			       " VALUES(?1, ?2, ?3, ?4)", -1, &c.st, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "prepare");
		goto out_rollback;
	}
	ret = journal_list_read(f, change_line, &c, &lines, diag);
	if (ret < 0)
		goto out_rollback;
	sqlite3_finalize(c.st);
	c.st = NULL;
	if (journal_list_digest(j, digest, &entries) < 0) {
		ret = journal_err(j, diag, "digest the lost-card list");
		goto out_rollback;
	}
	d = remove ? json_pack("{s:i, s:i, s:i, s:O, s:I, s:s}", "removed", c.changed,
			       "not_listed", c.unchanged, "lines", lines, "refs", c.refs,
			       "entries", (json_int_t)entries, "list_digest", digest)
		   : json_pack("{s:i, s:i, s:O, s:I, s:s}", "added", c.changed, "lines", lines,
			       "refs", c.refs, "entries", (json_int_t)entries, "list_digest",
			       digest);
	detail = d ? jsontext_dump(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!detail) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
		goto out_rollback;
	}
	journal_own_row(&r, "blacklist", remove ? "blacklist.remove" : "blacklist.import", detail);
	ret = journal_row_commit(j, &r, "append row", &seq, hash, diag);
	if (ret < 0)
		goto out_rollback;
	pthread_mutex_unlock(&j->lock);
	journal_notify_row(j, &r, seq, hash);
	if (unchanged)
		*unchanged = c.unchanged;
	ret = c.changed;
	goto out_free;

out_rollback:
	sqlite3_finalize(c.st);
	journal_rollback(j);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	/* A failed append, as any other (journal_notify() leaves out a malformed list file). */
	if (ret < 0)
		journal_notify(j, "blacklist", 0, "", ret, diag);
out_free:
	free(detail);
	json_decref(d);
	json_decref(c.refs);
	return ret;
}

int journal_blacklist_import(struct journal *j, FILE *f, struct ssc_diag *diag)
{
	return list_change(j, f, 0, NULL, diag);
}

int journal_blacklist_remove(struct journal *j, FILE *f, int *not_listed, struct ssc_diag *diag)
{
	return list_change(j, f, 1, not_listed, diag);
}

int journal_blacklist_entries(struct journal *j,
			      int (*cb)(void *arg, const struct journal_list_entry *e), void *arg)
{
	/* Schema 1 (read-only, not migrated) kept neither the kind nor the uid. */
	static const char sql2[] =
		"SELECT kind, ref, added, uid FROM blacklist ORDER BY added, ref";
	static const char sql1[] =
		"SELECT '', ref, added, -1 FROM blacklist ORDER BY added, ref";
	struct journal_list_entry e;
	sqlite3_stmt *st;
	int rc, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, j->schema == 1 ? sql1 : sql2, -1, &st, NULL) !=
			      SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e.kind = journal_col_text(st, 0);
		e.ref = journal_col_text(st, 1);
		e.added = journal_col_text(st, 2);
		e.uid = sqlite3_column_int64(st, 3);
		ret = cb(arg, &e);
		if (ret != 0)
			break;
	}
	return journal_read_end(j, st, rc, ret);
}

/* ---- the lookup ---------------------------------------------------------------------------- */

/* The lost-list ref of value under label into ref, or -1 when value has not label's form. */
static int blacklist_ref(struct journal *j, const char *label, const char *value, char *ref)
{
	char v[64];
	const char *l2;

	snprintf(v, sizeof(v), "%s", value);
	if (journal_list_entry(v, &l2) < 0 || strcmp(l2, label) != 0)
		return -1;
	journal_keyed_ref(j, label, (const uint8_t *)v, strlen(v), ref);
	return 0;
}

/*
 * Whether another connection has committed since the list was last found matching, and if so
 * whether it still matches. Lock held; 0, or SSC_EJOURNAL (then lookups fail until a reopen).
 */
static int list_fresh(struct journal *j, struct ssc_diag *diag)
{
	sqlite3_stmt *st;
	int64_t dv = -1;
	int r, mismatch;

	if ((j->flags & JOURNAL_RDONLY) || j->schema == 1)
		return 0;
	if (j->list_bad)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the lost-card list does not match "
				    "the chain");
	st = journal_stmt(j, JSTMT_DATA_VERSION, "PRAGMA data_version");
	if (st && sqlite3_step(st) == SQLITE_ROW)
		dv = sqlite3_column_int64(st, 0);
	if (st)
		sqlite3_reset(st);
	if (dv < 0)
		return journal_err(j, diag, "lost-card list");
	if (dv == j->list_data_version)
		return 0;
	r = list_check(j, diag, &mismatch);
	if (r < 0) {
		/* Changed outside sscard: lookups fail until a reopen. Not checked: ask again. */
		if (mismatch)
			j->list_bad = 1;
		return r;
	}
	j->list_data_version = dv;
	return 0;
}

int journal_blacklisted(struct journal *j, const char *card_number, const char *card_id,
			struct ssc_diag *diag)
{
	char num[JOURNAL_REF_HEX + 1] = "", id[JOURNAL_REF_HEX + 1] = "";
	struct ssc_diag local;
	sqlite3_stmt *st;
	int rc, r;

	diag = journal_diag(diag, &local);
	/*
	 * Both names of the card in one statement: one read transaction per check. Two EXISTS
	 * lookups on the primary key rather than "ref IN (?1, ?2)", for which SQLite builds a
	 * temporary table on every run.
	 */
	if (card_number && card_number[0] && blacklist_ref(j, "bl-number", card_number, num) < 0)
		num[0] = '\0';
	if (card_id && card_id[0] && blacklist_ref(j, "bl-id", card_id, id) < 0)
		id[0] = '\0';
	/* A name that could not be hashed (no memory) names no entry: never "not listed" then. */
	if (num[0] == '-' || id[0] == '-')
		return ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory naming the card for the "
				    "lost-card list");
	if (!num[0] && !id[0])
		return 0;
	pthread_mutex_lock(&j->lock);
	if (j->db && (r = list_fresh(j, diag)) < 0) {
		int bad = j->list_bad;

		pthread_mutex_unlock(&j->lock);
		/* The owner must hear it: the list it relies on is not the one chained. */
		if (bad)
			journal_notify(j, "blacklist", 0, "", r, diag);
		return r;
	}
	st = j->db ? journal_stmt(j, JSTMT_BLACKLIST, "SELECT EXISTS(SELECT 1 FROM blacklist WHERE"
				  " ref = ?1) OR EXISTS(SELECT 1 FROM blacklist WHERE ref = ?2)")
		   : NULL;
	if (!st) {
		r = journal_err(j, diag, "lost-card list");
		pthread_mutex_unlock(&j->lock);
		return r;
	}
	sqlite3_bind_text(st, 1, num, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? (sqlite3_column_int(st, 0) != 0) : journal_err(j, diag,
									     "lost-card list");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&j->lock);
	return r;
}
