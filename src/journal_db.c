/*
 * This file contains what every part of the journal uses on its database (src/journal_int.h):
 * errors named, a transaction ended, statements run or cached, the meta table, the observer's
 * notes of an append, and reading a row back by its named columns. It calls no other journal_*.c
 * file: they all call down into it.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "invariant.h"
#include "journal_int.h"

int journal_err(struct journal *j, struct ssc_diag *diag, const char *what)
{
	if (j && !j->db)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s: out of service (%s)", what,
				    j->why[0] ? j->why : "suspended");
	return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s: %s", what,
			    j ? sqlite3_errmsg(j->db) : "no journal");
}

void journal_rollback(struct journal *j)
{
	/*
	 * ROLLBACK is a statement like any other: it needs memory to be prepared, and may fail for
	 * want of it. A connection left inside a transaction would refuse every later BEGIN (and a
	 * writer would hold the database's write lock): try again while one is open.
	 */
	for (int i = 0; i < 3 && j->db && !sqlite3_get_autocommit(j->db); i++)
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	INVARIANT(!j->db || sqlite3_get_autocommit(j->db));
}

struct ssc_diag *journal_diag(struct ssc_diag *diag, struct ssc_diag *local)
{
	if (diag)
		return diag;
	ssc_diag_init(local);
	return local;
}

int journal_begin_full(struct journal *j, struct ssc_diag *diag)
{
	journal_exec(j, "PRAGMA synchronous=FULL", NULL);
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "begin");
	return 0;
}

int journal_lock_open(struct journal *j, const char *what, struct ssc_diag *diag)
{
	int ret;

	pthread_mutex_lock(&j->lock);
	if (j->db)
		return 0;
	ret = journal_err(j, diag, what);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int journal_read_end(struct journal *j, sqlite3_stmt *st, int rc, int ret)
{
	if (ret == 0 && rc != SQLITE_DONE)
		ret = SSC_EJOURNAL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int journal_exec(struct journal *j, const char *sql, struct ssc_diag *diag)
{
	if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, sql);
	return 0;
}

/*
 * The cached statement id for sql (prepared on first use, reset and unbound for reuse), or NULL.
 * Saves parsing the SQL of an audit row or a lost-card lookup on every call. j->lock held.
 */
sqlite3_stmt *journal_stmt(struct journal *j, enum jstmt_id id, const char *sql)
{
	sqlite3_stmt *st = j->stmt[id];

	if (!j->db)
		return NULL;
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return NULL;
	j->stmt[id] = st;
	return st;
}

int journal_meta_get(struct journal *j, const char *key, char *out, size_t cap)
{
	sqlite3_stmt *st;
	int rc, r = SSC_ENOTFOUND;

	if (sqlite3_prepare_v2(j->db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return SSC_EJOURNAL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(out, cap, "%s", journal_col_text(st, 0));
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = SSC_EJOURNAL;   /* not "no such key": it could not be read */
	}
	sqlite3_finalize(st);
	return r;
}

int journal_meta_set(struct journal *j, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(j->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", -1,
			       &st, NULL) != SQLITE_OK)
		return SSC_EJOURNAL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : SSC_EJOURNAL;
}

const char *journal_col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

void journal_row_from_stmt(sqlite3_stmt *st, struct jrow *r)
{
	r->seq = sqlite3_column_int64(st, JCOL_SEQ);
	snprintf(r->ts, sizeof(r->ts), "%s", journal_col_text(st, JCOL_TS));
	r->ts_unix = sqlite3_column_int64(st, JCOL_TS_UNIX);
	r->kind = journal_col_text(st, JCOL_KIND);
	r->uid = sqlite3_column_int64(st, JCOL_UID);
	r->pid = sqlite3_column_int64(st, JCOL_PID);
	r->exe = journal_col_text(st, JCOL_EXE);
	r->method = journal_col_text(st, JCOL_METHOD);
	r->reader = journal_col_text(st, JCOL_READER);
	r->card = journal_col_text(st, JCOL_CARD);
	r->result = journal_col_text(st, JCOL_RESULT);
	r->duration_ms = sqlite3_column_int64(st, JCOL_DURATION_MS);
	r->intent = sqlite3_column_int64(st, JCOL_INTENT);
	r->file = journal_col_text(st, JCOL_FILE);
	r->detail = journal_col_text(st, JCOL_DETAIL);
}

void journal_set_observer(struct journal *j, journal_observer_fn fn, void *arg)
{
	pthread_mutex_lock(&j->lock);
	j->observer = fn;
	j->observer_arg = arg;
	pthread_mutex_unlock(&j->lock);
}

/*
 * Tells the observer (outside the lock) about an append: err == 0 with the new row's seq and
 * hash, or the failure (SSC_EJOURNAL, SSC_ENOMEM) with diag's message. Other results (an
 * outcome for an unknown intent, a read-only handle) are the caller's error, not the journal's.
 */
void journal_notify(struct journal *j, const char *kind, int64_t seq, const char *hash, int err,
		   const struct ssc_diag *diag)
{
	struct journal_note n;
	journal_observer_fn fn;
	void *arg;

	if (err != 0 && err != SSC_EJOURNAL && err != SSC_ENOMEM)
		return;
	/* A new row is on the chain: it has a place and a hash. */
	INVARIANT(err != 0 || (seq > 0 && hash && strlen(hash) == JOURNAL_HASH_HEX));
	pthread_mutex_lock(&j->lock);
	fn = j->observer;
	arg = j->observer_arg;
	pthread_mutex_unlock(&j->lock);
	if (!fn)
		return;
	n.kind = kind;
	n.seq = err ? 0 : seq;
	n.hash = err ? "" : hash;
	n.err = err;
	n.why = err ? (diag && diag->msg[0] ? diag->msg : ssc_strerror(err)) : "";
	n.row = NULL;
	fn(arg, &n);
}

void journal_notify_row(struct journal *j, const struct jrow *r, int64_t seq, const char *hash)
{
	struct journal_row row = {
		.seq = seq, .time = r->ts, .kind = r->kind ? r->kind : "", .uid = r->uid,
		.pid = r->pid, .exe = r->exe ? r->exe : "", .method = r->method ? r->method : "",
		.reader = r->reader ? r->reader : "", .card = r->card ? r->card : "",
		.result = r->result ? r->result : "", .duration_ms = r->duration_ms,
		.intent = r->intent, .file = r->file ? r->file : "",
		.detail = r->detail ? r->detail : "", .hash = hash,
	};
	struct journal_note n = { .kind = row.kind, .seq = seq, .hash = hash, .err = 0, .why = "",
				  .row = &row };
	journal_observer_fn fn;
	void *arg;

	INVARIANT(seq > 0 && strlen(hash) == JOURNAL_HASH_HEX);
	pthread_mutex_lock(&j->lock);
	fn = j->observer;
	arg = j->observer_arg;
	pthread_mutex_unlock(&j->lock);
	if (fn)
		fn(arg, &n);
}
