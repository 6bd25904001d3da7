/*
 * This file contains the journal's verification (src/journal.h, journal_verify_report()): the walk
 * of the chain from the retention anchor to its end, each row under the key of its time (key
 * rotations split the chain into segments, each linked to the head before it), the comparison
 * with a head taken from the daemon's log, and the lost-card list against the digest that the
 * chain carries last. The earlier keys it checks rows with are added by journal_add_old_key()
 * (src/journal_key.c) and looked up here.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "invariant.h"
#include "journal_int.h"

#define VERIFY_MAX_ROTATIONS 256   /* key rows kept in one journal that verify follows */

/* A key rotation row: from its seq on, rows are under key_id; before it, under old_key_id. */
struct rotation {
	int64_t seq;
	char old_key_id[JOURNAL_KEY_ID_HEX + 1], key_id[JOURNAL_KEY_ID_HEX + 1];
};

/* Checks that the retention anchor in meta is the one the last chained "prune" row names. */
static int verify_anchor(struct journal *j, int64_t *seq, uint8_t hash[32], struct ssc_diag *diag)
{
	char aseq[32], ahash[80];
	sqlite3_stmt *st;
	json_t *d = NULL;
	int ok = 0;

	memset(hash, 0, 32);
	*seq = 0;
	if (journal_meta_get(j, "anchor_seq", aseq, sizeof(aseq)) != 0)
		return 0;
	if (journal_meta_get(j, "anchor_hash", ahash, sizeof(ahash)) != 0 ||
	    hex_decode(ahash, strlen(ahash), hash, 32) != 32)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: retention anchor is malformed");
	*seq = strtoll(aseq, NULL, 10);
	if (sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE kind='prune' ORDER"
			       " BY seq DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read prune rows");
	if (sqlite3_step(st) == SQLITE_ROW)
		d = json_loads(journal_col_text(st, JCOL_DETAIL), 0, NULL);
	sqlite3_finalize(st);
	if (json_is_integer(json_object_get(d, "anchor_seq")) &&
	    json_integer_value(json_object_get(d, "anchor_seq")) == *seq &&
	    json_is_string(json_object_get(d, "anchor_hash")) &&
	    strcmp(json_string_value(json_object_get(d, "anchor_hash")), ahash) == 0)
		ok = 1;
	json_decref(d);
	if (!ok)
		return ssc_diag_set(diag, SSC_EJOURNAL,
				    "journal: retention anchor (seq %s) is not the one the last prune "
				    "row recorded: rows before it were removed outside sscard",
				    aseq);
	return 0;
}

/* A hex string member of d into out (cap bytes), or -1. */
static int json_hex_member(json_t *d, const char *name, size_t len, char *out)
{
	const char *v = json_string_value(json_object_get(d, name));

	if (!v || strlen(v) != len || strspn(v, "0123456789abcdef") != len)
		return -1;
	memcpy(out, v, len + 1);
	return 0;
}

/* The key rotation rows kept, oldest first. */
static int load_rotations(struct journal *j, struct rotation *rot, int *n, struct ssc_diag *diag)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	*n = 0;
	if (sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE kind = 'key' ORDER BY"
			       " seq", -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read key rows");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d = json_loads(journal_col_text(st, JCOL_DETAIL), 0, NULL);
		struct rotation *r = &rot[*n];

		if (*n == VERIFY_MAX_ROTATIONS) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: more than %d key rotations",
					   VERIFY_MAX_ROTATIONS);
		} else {
			r->seq = sqlite3_column_int64(st, JCOL_SEQ);
			if (json_hex_member(d, "old_key_id", JOURNAL_KEY_ID_HEX, r->old_key_id) ||
			    json_hex_member(d, "key_id", JOURNAL_KEY_ID_HEX, r->key_id))
				ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " (a key "
						   "rotation) is malformed", r->seq);
			else
				(*n)++;
		}
		json_decref(d);
		if (ret < 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = journal_err(j, diag, "read key rows");
	sqlite3_finalize(st);
	return ret;
}

/* The id of the key a row at seq was written under (see struct rotation). */
static const char *key_of(struct journal *j, const struct rotation *rot, int n, int64_t seq)
{
	const char *id = n > 0 ? rot[0].old_key_id : j->key_id;

	for (int i = 0; i < n && rot[i].seq <= seq; i++)
		id = rot[i].key_id;
	return id;
}

const struct journal_keys *journal_old_keys(struct journal *j, const char *id)
{
	for (int i = 0; i < j->n_old; i++)
		if (strcmp(j->old[i].id, id) == 0)
			return &j->old[i];
	return NULL;
}

/* The chain key for key id, or NULL when it was not given. */
static const uint8_t *chain_key_for(struct journal *j, const char *id)
{
	const struct journal_keys *k;

	if (strcmp(id, j->key_id) == 0)
		return j->chain_key;
	k = journal_old_keys(j, id);
	return k ? k->chain_key : NULL;
}

/* A key row must name the head before it: that is what links the new chain to the old one. */
static int check_rotation(const struct jrow *r, int64_t prev_seq, const char *prev_hex,
			  struct ssc_diag *diag)
{
	json_t *d = json_loads(r->detail, 0, NULL);
	json_t *s = json_object_get(d, "old_head_seq");
	const char *h = json_string_value(json_object_get(d, "old_head_hash"));
	int ok = json_is_integer(s) && json_integer_value(s) == prev_seq && h &&
		 strcmp(h, prev_hex) == 0;

	json_decref(d);
	if (!ok)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " (a key rotation) "
				    "does not record the head before it (row %" PRId64 ")",
				    r->seq, prev_seq);
	return 0;
}

/* A row that carries the list's digest: remember it (the last one counts). */
static void note_list_row(const struct jrow *r, int64_t *seq, char *digest, int64_t *entries)
{
	json_t *d;

	if (strcmp(r->kind, "blacklist") != 0 && strcmp(r->kind, "prune") != 0 &&
	    strcmp(r->kind, "key") != 0)
		return;
	d = json_loads(r->detail, 0, NULL);
	if (json_hex_member(d, "list_digest", JOURNAL_HASH_HEX, digest) == 0) {
		*seq = r->seq;
		*entries = json_integer_value(json_object_get(d, "entries"));
	}
	json_decref(d);
}

/* The list now against the digest of row seq (0 = none was found in the rows walked). */
static int verify_list(struct journal *j, int64_t seq, const char *digest, int64_t entries,
		       struct journal_report *rep, struct ssc_diag *diag)
{
	char now[JOURNAL_HASH_HEX + 1];
	int64_t n;

	if (j->schema < 2) {
		rep->list_uncovered = 1;
		return 0;
	}
	if (journal_list_digest(j, now, &n) < 0)
		return journal_err(j, diag, "read the lost-card list");
	rep->list_entries = n;
	if (seq == 0) {
		if (n == 0)
			return 0;
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the lost-card list holds %" PRId64
				    " entries that no chained row accounts for: they were added "
				    "outside sscard", n);
	}
	if (strcmp(now, digest) != 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the lost-card list (%" PRId64
				    " entries) does not match the digest chained in row %" PRId64
				    " (%" PRId64 " entries): entries were added, removed or changed "
				    "outside sscard", n, seq, entries);
	rep->list_seq = seq;
	return 0;
}

/*
 * The steps of a verification, in the order they run. Each step checks one thing and names the
 * next, or VERIFY_FAILED with the fault in v->diag; the walk ends at VERIFY_DONE or VERIFY_FAILED.
 */
enum verify_step {
	VERIFY_KEY,          /* a read-only handle's key file is the journal's */
	VERIFY_BEGIN,        /* one read transaction for all that follows */
	VERIFY_ANCHOR,       /* the retention anchor is the one the last prune row recorded */
	VERIFY_ROTATIONS,    /* the key rotations kept; the last one is to the key given */
	VERIFY_ROWS,         /* every row: in sequence, hashed from its predecessor */
	VERIFY_HEAD,         /* the head taken from the daemon's log is on the chain */
	VERIFY_LIST,         /* the lost-card list matches the digest chained last */
	VERIFY_DONE,
	VERIFY_FAILED,
};

/* Where the head given to compare stands, as the walk goes on. */
enum verify_head {
	HEAD_NONE,           /* no head given (head_seq <= 0) */
	HEAD_AHEAD,          /* given and not reached yet (at the end: the tail was cut off) */
	HEAD_MATCHED,        /* reached, with the hash given */
	HEAD_DIFFERS,        /* reached, with another hash */
	HEAD_PRUNED,         /* before the retention anchor: it cannot be compared */
};

/* One verification: what it was asked, where it is, what it found. */
struct verify {
	struct journal *j;
	int64_t head_seq;
	const char *head_hex;
	struct journal_report *rep;
	struct ssc_diag *diag;
	int err;                             /* VERIFY_FAILED: SSC_EJOURNAL / SSC_ENOMEM */
	int in_txn;                          /* VERIFY_BEGIN's transaction is open */
	struct rotation *rot;                /* VERIFY_MAX_ROTATIONS */
	int n_rot;
	enum verify_head head;
	int64_t expect;                      /* the seq the next row must have */
	uint8_t prev[32];                    /* the hash the next row chains from */
	char prev_hex[JOURNAL_HASH_HEX + 1];
	int64_t list_seq, list_entries;      /* the last row carrying the list's digest */
	char list_digest[JOURNAL_HASH_HEX + 1];
};

/* Records why the walk fails (r < 0, from a check that set v->diag) and says so. */
static enum verify_step verify_fail(struct verify *v, int r)
{
	v->err = r;
	return VERIFY_FAILED;
}

static enum verify_step step_key(struct verify *v)
{
	if (v->j->key_problem[0])
		return verify_fail(v, ssc_diag_set(v->diag, SSC_EJOURNAL, "%s", v->j->key_problem));
	return VERIFY_BEGIN;
}

static enum verify_step step_begin(struct verify *v)
{
	if (!v->j->db || sqlite3_exec(v->j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return verify_fail(v, journal_err(v->j, v->diag, "begin"));
	v->in_txn = 1;
	return VERIFY_ANCHOR;
}

/*
 * The anchor is where the walk starts: the first row kept must follow it. A head given at or
 * before it is settled here (pruned, or compared with the anchor's own hash).
 */
static enum verify_step step_anchor(struct verify *v)
{
	int64_t anchor;
	int r = verify_anchor(v->j, &anchor, v->prev, v->diag);

	if (r < 0)
		return verify_fail(v, r);
	v->rep->anchor_seq = anchor;
	hex_encode(v->prev, 32, v->prev_hex, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	if (v->head_seq <= 0)
		v->head = HEAD_NONE;
	else if (v->head_seq < anchor)
		v->head = HEAD_PRUNED;   /* nothing to compare it with (said by the caller) */
	else if (v->head_seq == anchor && v->head_hex)
		v->head = strcmp(v->prev_hex, v->head_hex) == 0 ? HEAD_MATCHED : HEAD_DIFFERS;
	else
		v->head = HEAD_AHEAD;
	v->expect = anchor + 1;
	return VERIFY_ROTATIONS;
}

static enum verify_step step_rotations(struct verify *v)
{
	const struct rotation *last;
	int r = load_rotations(v->j, v->rot, &v->n_rot, v->diag);

	if (r < 0)
		return verify_fail(v, r);
	v->rep->rotations = v->n_rot;
	last = v->n_rot > 0 ? &v->rot[v->n_rot - 1] : NULL;
	if (last && strcmp(last->key_id, v->j->key_id) != 0)
		return verify_fail(v, ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: the key file "
						   "holds key %s, but the journal's last rotation "
						   "(row %" PRId64 ") was to key %s", v->j->key_id,
						   last->seq, last->key_id));
	return VERIFY_ROWS;
}

/*
 * One row of the walk (stored: its hash column): its place in the sequence, a key rotation's
 * link to the head before it, its hash under the key of its time (or only its place, under an
 * earlier key not given), the head given when this is its row, the list's digest it carries.
 * Returns 0, or SSC_EJOURNAL / SSC_ENOMEM with v->diag set.
 */
static int verify_row(struct verify *v, const struct jrow *r, const char *stored)
{
	struct journal_report *rep = v->rep;
	char hash[JOURNAL_HASH_HEX + 1];
	const uint8_t *key;
	const char *kid;
	int ret;

	if (r->seq != v->expect)
		return ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: row %" PRId64 " follows row %"
				    PRId64 ": rows are missing (deleted)", r->seq, v->expect - 1);
	if (strcmp(r->kind, "key") == 0 &&
	    (ret = check_rotation(r, r->seq - 1, v->prev_hex, v->diag)) < 0)
		return ret;
	kid = key_of(v->j, v->rot, v->n_rot, r->seq);
	key = chain_key_for(v->j, kid);
	if (!key) {
		/* Under an earlier key not given: its place in the chain only. */
		if (rep->unchecked++ == 0)
			rep->unchecked_first = r->seq;
		rep->unchecked_last = r->seq;
		memcpy(rep->unchecked_key, kid, sizeof(rep->unchecked_key));
	} else if (journal_row_hash(v->j, key, v->prev, r, hash) < 0) {
		return ssc_diag_set(v->diag, SSC_ENOMEM, "journal: out of memory");
	} else if (strcmp(hash, stored) != 0) {
		return ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: row %" PRId64 " does not match "
				    "its chain hash: it was edited, inserted, or a row before it was",
				    r->seq);
	} else {
		rep->rows++;
	}
	if (v->head == HEAD_AHEAD && r->seq == v->head_seq)
		v->head = strcmp(stored, v->head_hex ? v->head_hex : "") == 0 ? HEAD_MATCHED :
										  HEAD_DIFFERS;
	note_list_row(r, &v->list_seq, v->list_digest, &v->list_entries);
	if (hex_decode(stored, strlen(stored), v->prev, 32) != 32)
		return ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: row %" PRId64 " has a malformed "
				    "hash", r->seq);
	memcpy(v->prev_hex, stored, JOURNAL_HASH_HEX + 1);
	v->expect++;
	return 0;
}

static enum verify_step step_rows(struct verify *v)
{
	sqlite3_stmt *st;
	struct jrow r;
	int rc, ret = 0;

	if (sqlite3_prepare_v2(v->j->db, "SELECT " ROW_COLUMNS " FROM rows ORDER BY seq", -1, &st,
			       NULL) != SQLITE_OK)
		return verify_fail(v, journal_err(v->j, v->diag, "read rows"));
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		journal_row_from_stmt(st, &r);
		ret = verify_row(v, &r, journal_col_text(st, JCOL_HASH));
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = journal_err(v->j, v->diag, "read rows");
	sqlite3_finalize(st);
	return ret < 0 ? verify_fail(v, ret) : VERIFY_HEAD;
}

static enum verify_step step_head(struct verify *v)
{
	switch (v->head) {
	case HEAD_NONE:
	case HEAD_MATCHED:
		break;
	case HEAD_PRUNED:
		v->rep->head_pruned = 1;
		break;
	case HEAD_AHEAD:
		return verify_fail(v, ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: the chain ends "
						   "at row %" PRId64 " but the daemon logged head %"
						   PRId64 ": the tail was cut off", v->expect - 1,
						   v->head_seq));
	case HEAD_DIFFERS:
		return verify_fail(v, ssc_diag_set(v->diag, SSC_EJOURNAL, "journal: row %" PRId64
						   " differs from the head the daemon logged",
						   v->head_seq));
	}
	return VERIFY_LIST;
}

static enum verify_step step_list(struct verify *v)
{
	int r = verify_list(v->j, v->list_seq, v->list_digest, v->list_entries, v->rep, v->diag);

	return r < 0 ? verify_fail(v, r) : VERIFY_DONE;
}

/* The step functions, by step: each checks its part and returns the next step. */
static enum verify_step (*const verify_steps[])(struct verify *v) = {
	[VERIFY_KEY] = step_key,
	[VERIFY_BEGIN] = step_begin,
	[VERIFY_ANCHOR] = step_anchor,
	[VERIFY_ROTATIONS] = step_rotations,
	[VERIFY_ROWS] = step_rows,
	[VERIFY_HEAD] = step_head,
	[VERIFY_LIST] = step_list,
};

int journal_verify_report(struct journal *j, int64_t head_seq, const char *head_hex,
			  struct journal_report *rep, struct ssc_diag *diag)
{
	struct verify v = { .j = j, .head_seq = head_seq, .head_hex = head_hex, .rep = rep,
			    .diag = diag, .head = HEAD_NONE };
	enum verify_step step = VERIFY_KEY;

	memset(rep, 0, sizeof(*rep));
	v.rot = calloc(VERIFY_MAX_ROTATIONS, sizeof(*v.rot));
	if (!v.rot)
		return ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
	pthread_mutex_lock(&j->lock);
	while (step != VERIFY_DONE && step != VERIFY_FAILED) {
		enum verify_step next = verify_steps[step](&v);

		INVARIANT(next > step);   /* the steps only go forward: the walk ends */
		INVARIANT(next != VERIFY_FAILED || v.err < 0);
		step = next;
	}
	if (v.in_txn)
		journal_rollback(j);
	pthread_mutex_unlock(&j->lock);
	free(v.rot);
	return step == VERIFY_DONE ? 0 : v.err;
}

int journal_verify(struct journal *j, int64_t head_seq, const char *head_hex, int64_t *rows,
		   struct ssc_diag *diag)
{
	struct journal_report rep;
	int ret = journal_verify_report(j, head_seq, head_hex, &rep, diag);

	if (rows)
		*rows = rep.rows;
	if (ret == 0 && rep.head_pruned) {
		ssc_diag_set(diag, 0,
			     "journal: the head to compare (row %" PRId64 ") lies before the retention "
			     "anchor (row %" PRId64 "): it was pruned and cannot be compared; the chain "
			     "runs past it. Compare with a head logged after the last prune",
			     head_seq, rep.anchor_seq);
		return JOURNAL_HEAD_PRUNED;
	}
	return ret;
}
