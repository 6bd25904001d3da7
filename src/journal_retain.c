/*
 * This file contains the journal's retention (src/journal.h): rows older than the configured days
 * are deleted (never an intent still pending), and a chained "prune" row records the new anchor
 * and the lost-card list's digest, so that verify starts at the anchor and still sees the list.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <time.h>

#include "journal_int.h"

int journal_prune(struct journal *j, int days, struct ssc_diag *diag)
{
	if (days < 1)
		return ssc_diag_set(diag, SSC_EINVAL, "journal: retention must be at least one day");
	return journal_prune_before(j, (int64_t)time(NULL) - (int64_t)days * 86400, diag);
}

int journal_prune_before(struct journal *j, int64_t cutoff, struct ssc_diag *diag)
{
	static const char last_sql[] =
		"SELECT seq, hash FROM rows WHERE ts_unix < ?1 AND seq < (SELECT min(i.seq) FROM"
		" (SELECT seq FROM rows i WHERE i.kind='intent' AND NOT EXISTS (SELECT 1 FROM rows"
		" o WHERE o.intent=i.seq AND o.intent<>0 AND o.kind='outcome') UNION ALL SELECT"
		" max(seq) + 1 FROM"
		" rows) i) ORDER BY seq DESC LIMIT 1";
	struct jrow r = { 0 };
	sqlite3_stmt *st;
	int64_t cut = 0, deleted = 0, seq = 0;
	char cut_hash[JOURNAL_HASH_HEX + 1] = "", seqbuf[32], detail[320], list[160];
	char hash[JOURNAL_HASH_HEX + 1] = "";
	struct ssc_diag local;
	int rc, ret = 0;

	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	diag = journal_diag(diag, &local);
	journal_now_ts(&r);
	ret = journal_lock_open(j, "prune", diag);
	if (ret < 0)
		return ret;
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_unlock;
	}
	if (sqlite3_prepare_v2(j->db, last_sql, -1, &st, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "find rows to prune");
		goto out_rollback;
	}
	sqlite3_bind_int64(st, 1, cutoff);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		cut = sqlite3_column_int64(st, 0);
		snprintf(cut_hash, sizeof(cut_hash), "%s", journal_col_text(st, 1));
	} else if (rc != SQLITE_DONE) {
		/* Not "nothing to prune": it could not be told. */
		ret = journal_err(j, diag, "find rows to prune");
	}
	sqlite3_finalize(st);
	if (ret < 0 || cut == 0)
		goto out_rollback; /* failed, or nothing to do */
	/*
	 * The prune row carries the list's digest on (its last change may be among the rows
	 * removed): never the digest of a list changed outside sscard.
	 */
	ret = journal_list_check(j, diag);
	if (ret < 0)
		goto out_rollback;
	if (sqlite3_prepare_v2(j->db, "DELETE FROM rows WHERE seq <= ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		ret = journal_err(j, diag, "prune");
		goto out_rollback;
	}
	sqlite3_bind_int64(st, 1, cut);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		ret = journal_err(j, diag, "prune");
		goto out_rollback;
	}
	sqlite3_finalize(st);
	deleted = sqlite3_changes(j->db);
	/*
	 * The offline settlements fall under retention once acknowledged or void (nothing of them
	 * on the card), never while they wait for upload (docs/security.md).
	 */
	if (sqlite3_prepare_v2(j->db, "DELETE FROM medq WHERE state IN ('acknowledged', 'void')"
			       " AND created_unix < ?", -1, &st, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "prune the settlement queue");
		goto out_rollback;
	}
	sqlite3_bind_int64(st, 1, cutoff);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		ret = journal_err(j, diag, "prune the settlement queue");
		goto out_rollback;
	}
	sqlite3_finalize(st);
	snprintf(seqbuf, sizeof(seqbuf), "%" PRId64, cut);
	if (journal_meta_set(j, "anchor_seq", seqbuf) < 0 || journal_meta_set(j, "anchor_hash", cut_hash) < 0) {
		ret = journal_err(j, diag, "record anchor");
		goto out_rollback;
	}
	if (journal_list_detail(j, list, sizeof(list)) < 0) {
		ret = journal_err(j, diag, "digest the lost-card list");
		goto out_rollback;
	}
	snprintf(detail, sizeof(detail), "{\"anchor_seq\":%" PRId64 ",\"anchor_hash\":\"%s\"%s}",
		 cut, cut_hash, list);
	r.kind = "prune";
	r.detail = detail;
	r.duration_ms = deleted;
	ret = journal_row_commit(j, &r, "append prune row", &seq, hash, diag);
	if (ret < 0)
		goto out_rollback;
	pthread_mutex_unlock(&j->lock);
	journal_notify_row(j, &r, seq, hash);
	return (int)deleted;

out_rollback:
	journal_rollback(j);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	if (ret < 0)
		journal_notify(j, "prune", 0, "", ret, diag);
	return ret;
}
