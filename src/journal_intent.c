/*
 * This file contains the journal's write intents (src/journal.h): an intent recorded before a card
 * is written, its outcome afterwards (once: an intent goes from pending to resolved and never
 * back), the pending intents a card operation resolves by reading its card back, and the
 * double-booking guard of appended records, and the intents that carry a client's request_id
 * (idempotent writes, src/ops_request.c).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "journal_int.h"

int journal_intent_row(struct jrow *r, const struct journal_peer *peer, const char *card_ref,
		       const char *reader, const char *file, const char *detail,
		       struct ssc_diag *diag)
{
	/* A ref that could not be made names nothing: the write could not be resolved later. */
	if ((card_ref && strstr(card_ref, JOURNAL_REF_NONE)) ||
	    (detail && strstr(detail, JOURNAL_REF_NONE)))
		return ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory naming what the write "
				    "changes: the write does not go ahead");
	r->kind = "intent";
	if (peer) {
		r->uid = peer->uid;
		r->pid = peer->pid;
		r->exe = peer->exe;
	}
	r->card = card_ref;
	r->reader = reader;
	r->file = file;
	r->detail = detail;
	return 0;
}

int journal_intent(struct journal *j, const struct journal_peer *peer, const char *card_ref,
		   const char *reader, const char *file, const char *detail, int64_t *intent_id,
		   struct ssc_diag *diag)
{
	struct jrow r = { 0 };
	int rc = journal_intent_row(&r, peer, card_ref, reader, file, detail, diag);

	return rc ? rc : journal_append(j, &r, 1, intent_id, diag);
}

/*
 * 1 when the intent row exists, and *resolved = 1 when it already has an outcome; 0 when there
 * is no such intent; SSC_EJOURNAL when it could not be told (a query failed: never "no intent").
 */
static int intent_state(struct journal *j, int64_t id, int *resolved, char *card, size_t cap)
{
	sqlite3_stmt *st;
	int rc;

	*resolved = 0;
	st = journal_stmt(j, JSTMT_INTENT_CARD, "SELECT card FROM rows WHERE seq=? AND kind='intent'");
	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(card, cap, "%s", journal_col_text(st, 0));
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return SSC_EJOURNAL;
	st = journal_stmt(j, JSTMT_INTENT_RESOLVED, "SELECT 1 FROM rows WHERE intent=?1 AND "
			  "intent<>0 AND kind='outcome'");
	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*resolved = 1;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : SSC_EJOURNAL;
}

/*
 * An invariant's question, inside the caller's transaction: 0 when intent id is found pending,
 * else 1 (resolved, or the query could not say: an invariant must not fail for want of memory).
 */
static int intent_not_pending(struct journal *j, int64_t id)
{
	char card[JOURNAL_REF_HEX + 8];
	int resolved;

	return intent_state(j, id, &resolved, card, sizeof(card)) != 1 || resolved;
}

/*
 * The queued settlement of an intent (journal_medq.c), if it has one, follows its outcome in the
 * same transaction: applied -> queued for upload, and its card among those whose DF04/EF06 flag
 * needs clearing; otherwise void, its personal data wiped (nothing of it is on the card). An
 * applied medical.clear_flag ("clear_flag": 1 in its detail) takes its card off that list. Lock
 * held. 0 or SSC_EJOURNAL.
 */
static int intent_settle_queue(struct journal *j, int64_t id, const char *outcome)
{
	static const struct { enum jstmt_id id; const char *sql; } applied[] = {
		{ JSTMT_MEDQ_QUEUED,
		  "UPDATE medq SET state='queued', queued=strftime('%Y-%m-%dT%H:%M:%SZ','now')"
		  " WHERE intent=?1 AND state='intent'" },
		{ JSTMT_MEDFLAG_ADD,
		  "INSERT OR IGNORE INTO medflag(card, card_number, card_id, since)"
		  " SELECT card, card_number, card_id, queued FROM medq WHERE intent=?1"
		  " AND state='queued'" },
		/* medical.clear_flag's write, also when read back after a crash. */
		{ JSTMT_MEDFLAG_CLEARED,
		  "DELETE FROM medflag WHERE card IN (SELECT card FROM rows WHERE seq=?1 AND"
		  " kind='intent' AND json_valid(detail) AND"
		  " json_extract(detail, '$.clear_flag')=1)" },
	}, other[] = {
		{ JSTMT_MEDQ_VOID,
		  "UPDATE medq SET state='void', card_number='', card_id='', txn=''"
		  " WHERE intent=?1 AND state='intent'" },
	};
	int is_applied = strcmp(outcome, JOURNAL_APPLIED) == 0;
	size_t n = is_applied ? sizeof(applied) / sizeof(applied[0]) : 1;

	/* Prepared once per open journal (journal_stmt): an outcome is on every write's path. */
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = is_applied ? journal_stmt(j, applied[i].id, applied[i].sql)
					      : journal_stmt(j, other[i].id, other[i].sql);
		int rc;

		if (!st)
			return SSC_EJOURNAL;
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return SSC_EJOURNAL;
	}
	return 0;
}

int journal_outcome(struct journal *j, int64_t intent_id, const char *outcome, const char *result,
		    const char *how, struct ssc_diag *diag)
{
	struct jrow r = { 0 };
	char card[JOURNAL_REF_HEX + 8], hash[JOURNAL_HASH_HEX + 1] = "";
	struct ssc_diag local;
	int64_t seq = 0;
	int resolved, ret;

	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	diag = journal_diag(diag, &local);
	journal_now_ts(&r);
	r.kind = "outcome";
	r.intent = intent_id;
	r.result = result;
	r.method = outcome;     /* "applied" / "failed" / "partial" */
	r.detail = how;
	ret = journal_lock_open(j, "append outcome", diag);
	if (ret < 0)
		return ret;
	ret = journal_begin_full(j, diag);
	if (ret < 0)
		goto out;
	ret = intent_state(j, intent_id, &resolved, card, sizeof(card));
	if (ret < 0) {
		ret = journal_err(j, diag, "look up intent");
	} else if (ret == 0) {
		ret = ssc_diag_set(diag, SSC_ENOTFOUND, "journal: no intent %" PRId64, intent_id);
	} else if (resolved) {
		ret = ssc_diag_set(diag, SSC_EEXIST, "journal: intent %" PRId64 " already resolved",
				   intent_id);
	} else {
		r.card = card;
		ret = journal_row_insert(j, &r, &seq, hash);
		if (ret >= 0)
			ret = intent_settle_queue(j, intent_id, outcome);
		if (ret < 0)
			ret = journal_err(j, diag, "append outcome");
		/* Pending -> resolved, once: the outcome follows its intent and resolves it. */
		INVARIANT(ret < 0 || (seq > intent_id && intent_not_pending(j, intent_id)));
	}
	if (ret < 0 || sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		if (ret >= 0)
			ret = journal_err(j, diag, "commit");
		journal_rollback(j);
	}
out:
	journal_exec(j, "PRAGMA synchronous=NORMAL", NULL);
	pthread_mutex_unlock(&j->lock);
	if (ret < 0)
		journal_notify(j, "outcome", seq, hash, ret, diag);
	else
		journal_notify_row(j, &r, seq, hash);
	return ret < 0 ? ret : 0;
}

int journal_pending(struct journal *j, const char *card_ref,
		    int (*cb)(void *arg, const struct journal_intent_row *row), void *arg)
{
	static const char sql[] =
		"SELECT i.seq, i.card, i.reader, i.file, i.detail FROM rows i"
		" WHERE i.kind='intent' AND (?1 IS NULL OR i.card=?1) AND i.file<>'" JOURNAL_PIN_FILE "'"
		" AND NOT EXISTS (SELECT 1 FROM rows o WHERE o.intent=i.seq AND o.intent<>0"
		" AND o.kind='outcome')"
		" ORDER BY i.seq";
	struct journal_intent_row row;
	sqlite3_stmt *st;
	int rc, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	if (card_ref)
		sqlite3_bind_text(st, 1, card_ref, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&row, 0, sizeof(row));
		row.id = sqlite3_column_int64(st, 0);
		snprintf(row.card_ref, sizeof(row.card_ref), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		snprintf(row.reader, sizeof(row.reader), "%s",
			 (const char *)sqlite3_column_text(st, 2));
		snprintf(row.file, sizeof(row.file), "%s", (const char *)sqlite3_column_text(st, 3));
		row.detail = strdup((const char *)sqlite3_column_text(st, 4));
		if (!row.detail) {
			ret = SSC_ENOMEM;
			break;
		}
		ret = cb(arg, &row);
		free(row.detail);
		if (ret != 0)
			break;
	}
	return journal_read_end(j, st, rc, ret);
}

int journal_append_applied(struct journal *j, const char *card_ref, const char *settlement_no)
{
	static const char sql[] =
		"SELECT 1 FROM rows i WHERE i.kind='intent' AND i.card=?1"
		" AND json_valid(i.detail) AND json_extract(i.detail, '$.op') IN ('append', 'settle')"
		" AND json_extract(i.detail, '$.settlement_no')=?2"
		" AND EXISTS (SELECT 1 FROM rows o WHERE o.intent=i.seq AND o.intent<>0"
		" AND o.kind='outcome' AND o.method='applied') LIMIT 1";
	sqlite3_stmt *st;
	int rc, ret = SSC_EJOURNAL;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	sqlite3_bind_text(st, 1, card_ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, settlement_no, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int journal_pending_count(struct journal *j, const char *card_ref)
{
	/*
	 * "o.intent <> 0" lets SQLite use the partial index rows_intent (intent <> 0) for the
	 * outcome lookup; without it every intent costs a scan of the whole table (15 s for 1000
	 * intents among 100000 rows, 40 ms with it).
	 */
	static const char sql[] =
		"SELECT count(*) FROM rows i"
		" WHERE i.kind='intent' AND (?1 IS NULL OR i.card=?1) AND i.file<>'" JOURNAL_PIN_FILE "'"
		" AND NOT EXISTS (SELECT 1 FROM rows o"
		" WHERE o.intent=i.seq AND o.intent<>0 AND o.kind='outcome')";
	sqlite3_stmt *st;
	int ret = SSC_EJOURNAL;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	if (card_ref)
		sqlite3_bind_text(st, 1, card_ref, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	if (sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_int64 n = sqlite3_column_int64(st, 0);

		ret = n > INT32_MAX ? INT32_MAX : (int)n;
	}
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return ret;
}

/* Copies column col of st (NULL: "") into out. */
static void request_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	snprintf(out, cap, "%s", v ? (const char *)v : "");
}

int journal_request_find(struct journal *j, const char *request_id, struct journal_request *out)
{
	/*
	 * The expression is the one of the partial index rows_request (journal.c), word for word,
	 * so that SQLite looks the request up instead of scanning every row.
	 */
	static const char sql[] =
		"SELECT seq, card, file, json_extract(detail, '$.fp'),"
		" (SELECT o.method FROM rows o WHERE o.intent=rows.seq AND o.intent<>0"
		" AND o.kind='outcome'),"
		" (SELECT o.result FROM rows o WHERE o.intent=rows.seq AND o.intent<>0"
		" AND o.kind='outcome')"
		" FROM rows WHERE kind='intent' AND " JOURNAL_REQUEST_EXPR "=?1"
		" ORDER BY seq DESC LIMIT 1";
	sqlite3_stmt *st;
	int rc, ret = SSC_EJOURNAL;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->intent = sqlite3_column_int64(st, 0);
		request_col(st, 1, out->card_ref, sizeof(out->card_ref));
		request_col(st, 2, out->file, sizeof(out->file));
		request_col(st, 3, out->fp, sizeof(out->fp));
		request_col(st, 4, out->outcome, sizeof(out->outcome));
		request_col(st, 5, out->result, sizeof(out->result));
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	}
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return ret;
}
