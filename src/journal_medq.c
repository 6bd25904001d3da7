/*
 * This file contains the queue of offline medical settlements (src/journal.h journal_medq_*): the
 * settlement recorded with its write intent in one transaction, looked up by settlement number
 * and by intent, listed while it waits for upload, acknowledged (its personal data wiped then),
 * and the cards whose DF04/EF06 flag this desk set and has not cleared. The tables (medq,
 * medflag) sit beside the chained rows, not in the chain: they are the one place of the journal
 * that holds personal data in clear (docs/security.md). A queued settlement leaves its state only
 * with its intent's outcome (journal_intent.c), so that the two cannot disagree.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"

/* What medq_insert() writes after the intent row, in the intent's transaction. */
struct medq_ins {
	const char *card_ref;
	struct journal_medq_new *q;
};

static int medq_insert(struct journal *j, void *arg, int64_t intent, struct ssc_diag *diag)
{
	static const char sql[] =
		"INSERT INTO medq(intent, request_id, card, card_number, card_id, settlement_no, txn,"
		" state, created, created_unix) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 'intent',"
		" strftime('%Y-%m-%dT%H:%M:%SZ','now'), CAST(strftime('%s','now') AS INTEGER))";
	const struct medq_ins *in = arg;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "queue the settlement");
	sqlite3_bind_int64(st, 1, intent);
	sqlite3_bind_text(st, 2, in->q->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, in->card_ref, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, in->q->card_number, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, in->q->card_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, in->q->settlement_no, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, in->q->txn, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return journal_err(j, diag, "queue the settlement");
	in->q->id = sqlite3_last_insert_rowid(j->db);
	return 0;
}

int journal_medq_intent(struct journal *j, const struct journal_peer *peer, const char *card_ref,
			const char *reader, const char *file, const char *detail,
			struct journal_medq_new *q, int64_t *intent_id, struct ssc_diag *diag)
{
	struct medq_ins in = { card_ref, q };
	struct jrow r = { 0 };
	int rc = journal_intent_row(&r, peer, card_ref, reader, file, detail, diag);

	if (rc)
		return rc;
	journal_now_ts(&r);
	return journal_append_rows_then(j, &r, 1, 1, medq_insert, &in, intent_id, diag);
}

/* Prepares sql under the lock: NULL (lock released) when the journal cannot. */
static sqlite3_stmt *medq_prepare(struct journal *j, const char *sql)
{
	sqlite3_stmt *st = NULL;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return NULL;
	}
	return st;
}

/* Steps a one-integer query: 1 and *out for a row, 0 for none, SSC_EJOURNAL. Unlocks. */
static int medq_one(struct journal *j, sqlite3_stmt *st, int64_t *out)
{
	int rc = sqlite3_step(st), ret = SSC_EJOURNAL;

	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int journal_medq_known(struct journal *j, const char *settlement_no, int64_t *id)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT id FROM medq WHERE settlement_no=?1 AND"
				       " state<>'void' ORDER BY id LIMIT 1");

	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_text(st, 1, settlement_no, -1, SQLITE_STATIC);
	return medq_one(j, st, id);
}

int journal_medq_of_intent(struct journal *j, int64_t intent, int64_t *id)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT id FROM medq WHERE intent=?1");

	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, intent);
	return medq_one(j, st, id);
}

int journal_medq_card_pending(struct journal *j, const char *card_ref)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT count(*) FROM medq WHERE card=?1 AND"
				       " state IN ('intent', 'queued')");
	int64_t n = 0;
	int rc;

	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_text(st, 1, card_ref, -1, SQLITE_STATIC);
	rc = medq_one(j, st, &n);
	if (rc < 0)
		return rc;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int journal_medq_list(struct journal *j, int64_t since,
		      int (*cb)(void *arg, const struct journal_medq_row *row), void *arg)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT id, intent, request_id, card_number, card_id,"
				       " settlement_no, txn, queued FROM medq WHERE"
				       " state='queued' AND id>?1 ORDER BY id");
	struct journal_medq_row row;
	int rc, ret = 0;

	if (!st)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row.id = sqlite3_column_int64(st, 0);
		row.intent = sqlite3_column_int64(st, 1);
		row.request_id = journal_col_text(st, 2);
		row.card_number = journal_col_text(st, 3);
		row.card_id = journal_col_text(st, 4);
		row.settlement_no = journal_col_text(st, 5);
		row.txn = journal_col_text(st, 6);
		row.queued = journal_col_text(st, 7);
		ret = cb(arg, &row);
		if (ret != 0)
			break;
	}
	return journal_read_end(j, st, rc, ret);
}

int journal_medq_flags(struct journal *j,
		       int (*cb)(void *arg, const struct journal_medq_flag *f), void *arg)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT f.card_number, f.card_id, f.since,"
				       " (SELECT count(*) FROM medq q WHERE q.card=f.card AND"
				       " q.state IN ('intent', 'queued')) FROM medflag f"
				       " ORDER BY f.since, f.card_number");
	struct journal_medq_flag f;
	int rc, ret = 0;

	if (!st)
		return SSC_EJOURNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f.card_number = journal_col_text(st, 0);
		f.card_id = journal_col_text(st, 1);
		f.since = journal_col_text(st, 2);
		f.pending = sqlite3_column_int64(st, 3);
		ret = cb(arg, &f);
		if (ret != 0)
			break;
	}
	return journal_read_end(j, st, rc, ret);
}

/* Runs sql with id bound as ?1 (no rows). Lock held. 0, or -1. */
static int medq_exec_id(struct journal *j, const char *sql, int64_t id, int64_t *state_out)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (state_out)
		*state_out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

int journal_medq_ack(struct journal *j, const int64_t *ids, size_t n, int64_t *unknown,
		     size_t *n_unknown, struct ssc_diag *diag)
{
	/* 1 = queued, 2 = acknowledged already, no row = neither (unknown, not applied, void). */
	static const char state_sql[] =
		"SELECT CASE state WHEN 'queued' THEN 1 WHEN 'acknowledged' THEN 2 END FROM medq"
		" WHERE id=?1 AND state IN ('queued', 'acknowledged')";
	static const char ack_sql[] =
		"UPDATE medq SET state='acknowledged', acked=strftime('%Y-%m-%dT%H:%M:%SZ','now'),"
		" card_number='', card_id='', txn='' WHERE id=?1 AND state='queued'";
	int ret = 0, acked = 0;

	*n_unknown = 0;
	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	ret = journal_lock_open(j, "acknowledge", diag);
	if (ret < 0)
		return ret;
	ret = journal_begin_full(j, diag);
	if (ret < 0)
		goto out;
	/* All or none: every id is checked before any is marked. */
	for (size_t i = 0; i < n && ret == 0; i++) {
		int64_t state;

		if (medq_exec_id(j, state_sql, ids[i], &state) < 0)
			ret = journal_err(j, diag, "look up the settlement");
		else if (state < 0)
			unknown[(*n_unknown)++] = ids[i];
	}
	if (ret == 0 && *n_unknown)
		ret = SSC_ENOTFOUND;
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (medq_exec_id(j, ack_sql, ids[i], NULL) < 0)
			ret = journal_err(j, diag, "acknowledge");
		else
			acked += sqlite3_changes(j->db);
	}
	if (ret == 0 && sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ret = journal_err(j, diag, "commit");
	if (ret < 0)
		journal_rollback(j);
out:
	journal_exec(j, "PRAGMA synchronous=NORMAL", NULL);
	pthread_mutex_unlock(&j->lock);
	return ret < 0 ? ret : acked;
}

int journal_medq_flag_cleared(struct journal *j, const char *card_ref, struct ssc_diag *diag)
{
	sqlite3_stmt *st = medq_prepare(j, "DELETE FROM medflag WHERE card=?1");
	int rc;

	if (!st)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot note the cleared flag");
	sqlite3_bind_text(st, 1, card_ref, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return rc == SQLITE_DONE ? 0 : ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot note "
						      "the cleared flag");
}

int journal_medq_open_count(struct journal *j)
{
	sqlite3_stmt *st = medq_prepare(j, "SELECT (SELECT count(*) FROM medq WHERE state IN"
				       " ('intent', 'queued')) + (SELECT count(*) FROM medflag)");
	int64_t n = 0;
	int rc;

	if (!st)
		return SSC_EJOURNAL;
	rc = medq_one(j, st, &n);
	if (rc < 0)
		return rc;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}
