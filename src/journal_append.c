/*
 * This file contains the journal's appends (src/journal.h): one transaction that extends the chain
 * by one or more rows with the durability asked (an intent's is fsynced), tells the observer of
 * each row or of the failure, and the audit rows of API calls that go through it. One connection,
 * serialised by the handle's mutex; every append runs in a BEGIN IMMEDIATE transaction that reads
 * the current head, so that another process appending (an operator's import) cannot fork the
 * chain.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "journal_int.h"

/*
 * Appends rows[0..n-1] (their times set), in order, in one transaction with the given durability
 * (full != 0: the commit is fsynced before this returns): all or none. seq_out (may be NULL)
 * receives the first row's sequence number. The observer hears of each row, or of the failure once.
 */
int journal_append_rows(struct journal *j, struct jrow *rows, size_t n, int full,
			int64_t *seq_out, struct ssc_diag *diag)
{
	return journal_append_rows_then(j, rows, n, full, NULL, NULL, seq_out, diag);
}

int journal_append_rows_then(struct journal *j, struct jrow *rows, size_t n, int full,
			     journal_then_fn then, void *arg, int64_t *seq_out,
			     struct ssc_diag *diag)
{
	struct done { int64_t seq; char hash[JOURNAL_HASH_HEX + 1]; } one, *done = &one;
	struct ssc_diag local;
	size_t i;
	int ret = 0;

	if (n == 0)
		return 0;
	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	diag = journal_diag(diag, &local);
	if (n > 1 && !(done = calloc(n, sizeof(*done)))) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory for %zu rows", n);
		journal_notify(j, rows[0].kind, 0, "", ret, diag);
		return ret;
	}
	pthread_mutex_lock(&j->lock);
	if (!j->db) {
		/* Suspended: the owner knows already; no note. */
		ret = journal_err(j, diag, "append");
		pthread_mutex_unlock(&j->lock);
		if (done != &one)
			free(done);
		return ret;
	}
	if (full && journal_exec(j, "PRAGMA synchronous=FULL", NULL) < 0) {
		ret = journal_err(j, diag, "set durability");
		goto out_unlock;
	}
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_sync;
	}
	for (i = 0; i < n && ret == 0; i++)
		if (journal_row_insert(j, &rows[i], &done[i].seq, done[i].hash) < 0)
			ret = journal_err(j, diag, "append row");
	/* The rows of one transaction follow each other in the chain. */
	INVARIANT(ret < 0 || done[n - 1].seq == done[0].seq + (int64_t)(n - 1));
	if (ret == 0 && then)
		ret = then(j, arg, done[0].seq, diag);
	if (ret == 0 && sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ret = journal_err(j, diag, "commit");
	if (ret < 0)
		journal_rollback(j);
out_sync:
	if (full)
		journal_exec(j, "PRAGMA synchronous=NORMAL", NULL);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	if (ret < 0) {
		journal_notify(j, rows[0].kind, 0, "", ret, diag);
	} else {
		if (seq_out)
			*seq_out = done[0].seq;
		for (i = 0; i < n; i++)
			journal_notify_row(j, &rows[i], done[i].seq, done[i].hash);
	}
	if (done != &one)
		free(done);
	return ret;
}

/* Appends one row, stamped now, in its own transaction (see append_rows). */
int journal_append(struct journal *j, struct jrow *r, int full, int64_t *seq_out,
		   struct ssc_diag *diag)
{
	journal_now_ts(r);
	return journal_append_rows(j, r, 1, full, seq_out, diag);
}

/* The audit row's fields, borrowed from a (its time: a->when_ms, or now). */
static void audit_row(struct jrow *r, const struct journal_audit *a)
{
	memset(r, 0, sizeof(*r));
	r->kind = "audit";
	if (a->peer) {
		r->uid = a->peer->uid;
		r->pid = a->peer->pid;
		r->exe = a->peer->exe;
	}
	r->method = a->method;
	r->reader = a->reader;
	r->card = a->card_ref;
	r->result = a->result;
	r->detail = a->detail;
	r->duration_ms = a->duration_ms;
	journal_set_ts(r, a->when_ms);
}

int journal_audit(struct journal *j, const struct journal_audit *a, struct ssc_diag *diag)
{
	return journal_audit_batch(j, a, 1, diag);
}

int journal_audit_batch(struct journal *j, const struct journal_audit *rows, size_t n,
			struct ssc_diag *diag)
{
	struct jrow one, *r = &one;
	int ret;

	if (n == 0)
		return 0;
	if (n > 1 && !(r = calloc(n, sizeof(*r)))) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory for %zu audit rows", n);
		journal_notify(j, "audit", 0, "", ret, diag);
		return ret;
	}
	for (size_t i = 0; i < n; i++)
		audit_row(&r[i], &rows[i]);
	ret = journal_append_rows(j, r, n, 0, NULL, diag);
	if (r != &one)
		free(r);
	return ret;
}
