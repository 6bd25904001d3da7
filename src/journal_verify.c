/*
 * This file contains the journal's verification (src/journal.h, journal_verify_report()): the walk
 * of the chain from the retention anchor to its end, each row under the key of its time (key
 * rotations split the chain into segments, each linked to the head before it), the comparison
 * with a head taken from the daemon's log, and the lost-card list against the digest that the
 * chain carries last.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
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
	if (sqlite3_prepare_v2(j->db,
			       "SELECT detail FROM rows WHERE kind='prune' ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read prune rows");
	if (sqlite3_step(st) == SQLITE_ROW)
		d = json_loads(journal_col_text(st, 0), 0, NULL);
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
	if (sqlite3_prepare_v2(j->db, "SELECT seq, detail FROM rows WHERE kind = 'key' ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read key rows");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d = json_loads(journal_col_text(st, 1), 0, NULL);
		struct rotation *r = &rot[*n];

		if (*n == VERIFY_MAX_ROTATIONS) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: more than %d key rotations",
					   VERIFY_MAX_ROTATIONS);
		} else {
			r->seq = sqlite3_column_int64(st, 0);
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

int journal_verify_report(struct journal *j, int64_t head_seq, const char *head_hex,
			  struct journal_report *rep, struct ssc_diag *diag)
{
	struct rotation *rot;
	sqlite3_stmt *st;
	struct jrow r;
	uint8_t prev[32];
	char hash[JOURNAL_HASH_HEX + 1], prev_hex[JOURNAL_HASH_HEX + 1];
	char list_digest[JOURNAL_HASH_HEX + 1] = "";
	int64_t expect, list_seq = 0, list_entries = 0;
	int rc, ret = 0, head_seen = 0, n_rot = 0;

	memset(rep, 0, sizeof(*rep));
	rot = calloc(VERIFY_MAX_ROTATIONS, sizeof(*rot));
	if (!rot)
		return ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
	pthread_mutex_lock(&j->lock);
	if (j->key_problem[0]) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "%s", j->key_problem);
		goto out_unlock;
	}
	if (!j->db || sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_unlock;
	}
	ret = verify_anchor(j, &expect, prev, diag);
	if (ret == 0)
		ret = load_rotations(j, rot, &n_rot, diag);
	if (ret < 0)
		goto out_end;
	rep->rotations = n_rot;
	if (n_rot > 0 && strcmp(rot[n_rot - 1].key_id, j->key_id) != 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file holds key %s, but the "
				   "journal's last rotation (row %" PRId64 ") was to key %s",
				   j->key_id, rot[n_rot - 1].seq, rot[n_rot - 1].key_id);
		goto out_end;
	}
	rep->anchor_seq = expect;
	hex_encode(prev, 32, prev_hex, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	if (head_seq > 0 && head_seq < expect)
		head_seen = 2;   /* pruned: nothing to compare it with (said by the caller) */
	if (head_seq > 0 && head_seq == expect && head_hex)
		head_seen = strcmp(prev_hex, head_hex) == 0 ? 1 : -1;
	expect++;
	if (sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows ORDER BY seq", -1, &st,
			       NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "read rows");
		goto out_end;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *stored = journal_col_text(st, 15);
		const char *kid;
		const uint8_t *key;

		journal_row_from_stmt(st, &r);
		if (r.seq != expect) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL,
					   "journal: row %" PRId64 " follows row %" PRId64
					   ": rows are missing (deleted)",
					   r.seq, expect - 1);
			break;
		}
		if (strcmp(r.kind, "key") == 0 &&
		    (ret = check_rotation(&r, r.seq - 1, prev_hex, diag)) < 0)
			break;
		kid = key_of(j, rot, n_rot, r.seq);
		key = chain_key_for(j, kid);
		if (!key) {
			/* Under an earlier key not given: its place in the chain only. */
			if (rep->unchecked++ == 0)
				rep->unchecked_first = r.seq;
			rep->unchecked_last = r.seq;
			memcpy(rep->unchecked_key, kid, sizeof(rep->unchecked_key));
		} else if (journal_row_hash(j, key, prev, &r, hash) < 0) {
			ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
			break;
		} else if (strcmp(hash, stored) != 0) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL,
					   "journal: row %" PRId64
					   " does not match its chain hash: it was edited, inserted, or "
					   "a row before it was",
					   r.seq);
			break;
		} else {
			rep->rows++;
		}
		if (head_seq > 0 && r.seq == head_seq)
			head_seen = strcmp(stored, head_hex ? head_hex : "") == 0 ? 1 : -1;
		note_list_row(&r, &list_seq, list_digest, &list_entries);
		if (hex_decode(stored, strlen(stored), prev, 32) != 32) {
			ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " has a "
					   "malformed hash", r.seq);
			break;
		}
		memcpy(prev_hex, stored, JOURNAL_HASH_HEX + 1);
		expect++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = journal_err(j, diag, "read rows");
	sqlite3_finalize(st);
	if (ret == 0 && head_seen == 2) {
		rep->head_pruned = 1;
	} else if (ret == 0 && head_seq > 0 && head_seen != 1) {
		if (head_seen == 0)
			ret = ssc_diag_set(diag, SSC_EJOURNAL,
					   "journal: the chain ends at row %" PRId64
					   " but the daemon logged head %" PRId64
					   ": the tail was cut off",
					   expect - 1, head_seq);
		else
			ret = ssc_diag_set(diag, SSC_EJOURNAL,
					   "journal: row %" PRId64
					   " differs from the head the daemon logged",
					   head_seq);
	}
	if (ret == 0)
		ret = verify_list(j, list_seq, list_digest, list_entries, rep, diag);
out_end:
	sqlite3_exec(j->db, "END", NULL, NULL, NULL);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	free(rot);
	return ret;
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
