/*
 * This file contains the journal: one SQLite file (WAL) holding the audit trail of every API call,
 * the write intents and their outcomes, and the lost-card list. Every row is chained to the one
 * before by an HMAC-SHA-256 under a key kept outside the database, so that an edited, inserted or
 * deleted row is detected by journal_verify(), and a cut-off tail by comparing with the chain head
 * the daemon writes to its log. No PIN, name or ID number is stored in clear: cards are named by a
 * keyed hash of their card number, and written values by keyed hashes.
 */
#ifndef SSC_JOURNAL_H
#define SSC_JOURNAL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sscard/error.h"

#define JOURNAL_REF_HEX 32       /* hex digits of a keyed hash (128 bits) */
#define JOURNAL_HASH_HEX 64      /* hex digits of a chain hash (256 bits) */
#define JOURNAL_KEY_ID_HEX 16    /* hex digits of a key's id (a keyed hash of nothing secret) */

struct journal;

/* Who called: from the socket's peer credentials. */
struct journal_peer {
	uid_t uid;
	pid_t pid;
	char exe[256];           /* "" when unknown */
};

/* One audit row: an API call and how it ended. Strings may be NULL (stored as ""). */
struct journal_audit {
	const struct journal_peer *peer;
	const char *method;
	const char *reader;
	const char *card_ref;    /* journal_card_ref() of the card number, or NULL */
	const char *result;      /* "SSC_OK" or the error name */
	const char *detail;      /* a note of the operation's (a JSON object; NULL = none), e.g. that
				  * a read asked to see a card on the lost-card list */
	int64_t duration_ms;
	int64_t when_ms;         /* the row's time (CLOCK_REALTIME, milliseconds); 0 = when written */
	const char *limit;       /* NULL, or the call was refused for this limit (a short name, e.g.
				  * "max_inflight_per_client"): the audit writer (src/audit.h) sums
				  * such refusals up; the journal itself does not look at it */
};

/*
 * What the observer (journal_set_observer) hears after each append by this handle: the new row
 * (err == 0), or a failed append (err = SSC_EJOURNAL or SSC_ENOMEM, why = the reason). Strings
 * are valid during the call only.
 */
struct journal_row;

struct journal_note {
	const char *kind;        /* "audit", "intent", "outcome", "prune", "blacklist" (also a
				  * lookup that found the list not matching the chain) */
	int64_t seq;             /* the new row's sequence number; 0 when err != 0 */
	const char *hash;        /* its chain hash (JOURNAL_HASH_HEX hex digits); "" when err != 0 */
	int err;
	const char *why;         /* "" when err == 0 */
	const struct journal_row *row; /* the new row whole (seq and hash included), for audit
				  * shipping (issue 19); NULL when err != 0 */
};

typedef void (*journal_observer_fn)(void *arg, const struct journal_note *note);

/* One row as journal_rows() hands it out. Strings are valid during the callback only. */
struct journal_row {
	int64_t seq;
	const char *time;        /* UTC, 2026-01-31T08:00:00.123Z */
	const char *kind;        /* "audit", "intent", "outcome", "blacklist", "prune", "key" */
	int64_t uid, pid;
	const char *exe, *method, *reader, *card, *result;
	int64_t duration_ms;     /* audit: the call's duration; prune: rows removed */
	int64_t intent;          /* outcome: the intent's seq; 0 otherwise */
	const char *file, *detail, *hash;
};

/* Opening modes. */
#define JOURNAL_RDONLY 0x1       /* operator tools: verify, show, export */

/*
 * Opens (creating if needed, unless read-only) the journal at path and its key file key_path
 * (NULL = path + ".key"; created 0600 with 32 random bytes when the database is new). A database
 * that exists without its key, or a key file that is not 32 bytes, is refused. The key file
 * stays open with a shared flock() until journal_close() (journal_rotate_key() needs it alone).
 * A writable open also checks that the key proves itself against the stored chain (the key id
 * recorded in the database, the last row's hash) and that the lost-card list matches the digest
 * the chain carries last, and refuses otherwise, naming why; it migrates a journal of an
 * earlier schema in place (appending a chained row). A read-only open checks neither (journal_
 * verify_report() does) and migrates nothing.
 * Returns 0 and *out, or SSC_EJOURNAL with the reason in diag (corrupt file, not a database,
 * unwritable directory, wrong schema version, a key or a list that does not match the chain).
 * Blocks on file I/O only.
 */
int journal_open(const char *path, const char *key_path, unsigned flags, struct journal **out,
		 struct ssc_diag *diag);

/* Closes the journal, wipes its keys and lets go of the key file's lock. NULL is a no-op. */
void journal_close(struct journal *j);

/*
 * Closes the database connection but keeps the handle, its keys and its observer: every later call
 * that needs the database fails with SSC_EJOURNAL (and tells no observer) until journal_resume().
 * For an owner that found the journal failing and wants to stop using it while other threads may
 * still hold the pointer; why (may be NULL) is kept and named by those failures. Idempotent. Thread-safe; blocks while another call is in progress.
 */
void journal_suspend(struct journal *j, const char *why);

/*
 * Reopens the database of a suspended handle (same path, same keys; the schema, the key against
 * the chain and the lost-card list are checked again, as journal_open() does).
 * Returns 0 (also when it was not suspended) or SSC_EJOURNAL with the reason in diag. Thread-safe.
 */
int journal_resume(struct journal *j, struct ssc_diag *diag);

/* 1 while suspended, else 0. Thread-safe. */
int journal_suspended(struct journal *j);

#define JOURNAL_ROOM_PROBE (64 * 1024)   /* bytes journal_room() reserves and gives back */

/*
 * Whether the file system holding the journal at path can take appends: reserves
 * JOURNAL_ROOM_PROBE bytes in a probe file beside it (path + ".probe", created exclusively, never
 * through a link) and removes it. Opening a database on a full disk succeeds and its next append
 * fails: an owner that reopens a journal after a failure asks this first. Returns SSC_EJOURNAL
 * with the reason in diag when the file system says it is full (ENOSPC, EDQUOT), else 0 (also
 * when the probe cannot be made for another reason: then it does not tell). Touches no journal
 * state; blocks for one small file's creation, allocation and removal (no fsync).
 */
int journal_room(const char *path, struct ssc_diag *diag);

/*
 * Sets the function told about every append made through this handle (audit, intent, outcome,
 * prune), successful or failed, e.g. to log the chain head or to notice a failing disk. It is
 * called on the appending thread after the append, outside the journal's lock (it may call
 * journal_head(), but must not append). NULL removes it. Thread-safe.
 */
void journal_set_observer(struct journal *j, journal_observer_fn fn, void *arg);

/* What journal_card_ref() and journal_value_ref() write when the hash cannot be made. */
#define JOURNAL_REF_NONE "--------------------------------"

/*
 * Writes the keyed hash naming a card (of its card number) into out (JOURNAL_REF_HEX + 1 bytes).
 * Out of memory (OpenSSL's, for the hash) it writes JOURNAL_REF_NONE, which names no card: a
 * lookup refuses it (journal_blacklisted() fails), and so does journal_intent(). Thread-safe.
 */
void journal_card_ref(struct journal *j, const char *card_number, char *out);

/* Keyed hash of an item value (for write intents); same output format as journal_card_ref. */
void journal_value_ref(struct journal *j, const uint8_t *value, size_t len, char *out);

/*
 * Appends an audit row. Durable against a crash of the daemon (WAL, synchronous=NORMAL): a power
 * loss may lose the last rows but never corrupts the chain. Thread-safe.
 * Returns 0 or SSC_EJOURNAL (diag says why; the caller must then refuse writes).
 */
int journal_audit(struct journal *j, const struct journal_audit *row, struct ssc_diag *diag);

/*
 * Appends n audit rows, in order, in one transaction (one commit for all: what the audit writer
 * uses for rows that queued up together). All are written or none: on SSC_EJOURNAL or
 * SSC_ENOMEM none of them is in the journal. The observer hears of each row written, or of the
 * failure once. Durability and thread-safety as journal_audit().
 */
int journal_audit_batch(struct journal *j, const struct journal_audit *rows, size_t n,
			struct ssc_diag *diag);

/*
 * Records a write intent before the card is touched: card_ref, reader, file ("DF04/EF08") and
 * detail (a JSON object, written by the caller, saying what identifies the write's effect: old
 * and new value refs, or the appended record's ref and its settlement serial). Durable against
 * power loss (synchronous=FULL: the WAL is fsynced before this returns). Sets *intent_id.
 * Returns 0 or SSC_EJOURNAL; SSC_ENOMEM (nothing written) when card_ref or detail holds
 * JOURNAL_REF_NONE: a write whose effect could not be named must not go ahead.
 */
int journal_intent(struct journal *j, const struct journal_peer *peer, const char *card_ref,
		   const char *reader, const char *file, const char *detail, int64_t *intent_id,
		   struct ssc_diag *diag);

/* Outcomes of an intent. */
#define JOURNAL_APPLIED "applied"
#define JOURNAL_FAILED "failed"
#define JOURNAL_PARTIAL "partial"   /* some records of an update were written, the others not */

/*
 * Records the outcome of an intent ("applied", "failed" or "partial", and the result name, e.g.
 * "SSC_EAUTHFAILED" or "SSC_OK"; how = "card" when the card answered, "readback" when resolved
 * by reading the card back after a crash or removal, and for "partial" what is on the card:
 * "readback; written 30; not written 31 34"). Durable like journal_intent.
 * Returns 0, SSC_ENOTFOUND (no such intent), SSC_EEXIST (already resolved), SSC_EJOURNAL.
 */
int journal_outcome(struct journal *j, int64_t intent_id, const char *outcome, const char *result,
		    const char *how, struct ssc_diag *diag);

/* A pending intent, as journal_pending() reports it. */
struct journal_intent_row {
	int64_t id;
	char card_ref[JOURNAL_REF_HEX + 1];
	char reader[64];
	char file[32];
	char *detail;            /* owned by the callback's caller; valid during the callback only */
};

/*
 * Calls cb for every intent without an outcome, oldest first, for card_ref (NULL = all cards).
 * cb returns 0 to go on, non-zero to stop (that value is returned). Returns 0, cb's value or
 * SSC_EJOURNAL. Do not call other journal functions from cb.
 */
int journal_pending(struct journal *j, const char *card_ref,
		    int (*cb)(void *arg, const struct journal_intent_row *row), void *arg);

/*
 * The number of intents without an outcome, for card_ref (NULL = all cards): what a card operation
 * asks before deciding whether the card needs resolving. One query (a scan of the intent rows,
 * no card I/O). Returns the count (>= 0) or SSC_EJOURNAL. Thread-safe.
 */
int journal_pending_count(struct journal *j, const char *card_ref);

/*
 * Whether an append of settlement_no to card_ref's cyclic file was recorded as applied: the
 * double-booking guard for cards that cannot show all their records (tag-only addressing).
 * Returns 1 found, 0 not, or SSC_EJOURNAL. Thread-safe.
 */
int journal_append_applied(struct journal *j, const char *card_ref, const char *settlement_no);

/*
 * The file name of the intents of PIN changes (card.change_pin, reload_pin, unblock_pin with a
 * request_id): a PIN cannot be read back without the PINs, so journal_pending() and
 * journal_pending_count() leave these out; only a repeat of their request, which brings the
 * PINs, resolves them (src/ops_request.c).
 */
#define JOURNAL_PIN_FILE "PIN"

/* The newest intent that carries a request_id, and its outcome, as journal_request_find() saw it. */
struct journal_request {
	int64_t intent;                          /* the intent's seq */
	char card_ref[JOURNAL_REF_HEX + 1];      /* the card it was for */
	char file[32];                           /* its file ("DF04/EF05", JOURNAL_PIN_FILE) */
	char fp[JOURNAL_REF_HEX + 1];            /* the fingerprint of its params ("fp" of its
						  * detail) */
	char outcome[16];                        /* "" while pending, else JOURNAL_APPLIED, ... */
	char result[40];                         /* the outcome's result name ("" while pending) */
};

/*
 * The newest intent whose detail (a JSON object) has "request_id" equal to request_id, with its
 * outcome, into *out. One indexed lookup. Returns 1 found, 0 none, or SSC_EJOURNAL. Thread-safe.
 */
int journal_request_find(struct journal *j, const char *request_id, struct journal_request *out);

/*
 * The queue of offline medical settlements (medical.settle_offline, src/journal_medq.c): its own
 * tables beside the chained rows, holding the card number, 卡识别码 and transaction in clear until
 * acknowledged (docs/security.md). A settlement's state follows its intent: "intent" (recorded,
 * not yet known on the card), then with the intent's outcome (journal_outcome) "queued" (applied:
 * it waits for upload, and its card joins those whose DF04/EF06 flag needs clearing) or "void"
 * (not applied: its personal data wiped), and "acknowledged" (uploaded: personal data wiped; the
 * rows then fall under retention).
 */
struct journal_medq_new {
	const char *request_id, *card_number, *card_id, *settlement_no;
	const char *txn;         /* the transaction as the API shows it (a JSON object's text) */
	int64_t id;              /* set by journal_medq_intent(): the settlement's queue id */
};

/*
 * journal_intent() and the settlement q in state "intent", in one transaction (fsynced): the
 * queue row can always be completed from it. Returns as journal_intent(); q->id set.
 */
int journal_medq_intent(struct journal *j, const struct journal_peer *peer, const char *card_ref,
			const char *reader, const char *file, const char *detail,
			struct journal_medq_new *q, int64_t *intent_id, struct ssc_diag *diag);

/* A settlement number in the queue in any state but "void": 1 and *id, 0 none, SSC_EJOURNAL. */
int journal_medq_known(struct journal *j, const char *settlement_no, int64_t *id);

/* The queue id of intent's settlement: 1 and *id, 0 none, SSC_EJOURNAL. */
int journal_medq_of_intent(struct journal *j, int64_t intent, int64_t *id);

/* The settlements of card_ref in state "intent" or "queued": a count >= 0 or SSC_EJOURNAL. */
int journal_medq_card_pending(struct journal *j, const char *card_ref);

/* One queued settlement as journal_medq_list() hands it out (valid during the call). */
struct journal_medq_row {
	int64_t id, intent;
	const char *request_id, *card_number, *card_id, *settlement_no, *txn, *queued;
};

/*
 * Calls cb for each settlement in state "queued" with an id above since, by id. cb returns 0 to
 * go on, non-zero to stop (that value is returned). Do not call other journal functions from cb.
 * Returns 0, cb's value or SSC_EJOURNAL.
 */
int journal_medq_list(struct journal *j, int64_t since,
		      int (*cb)(void *arg, const struct journal_medq_row *row), void *arg);

/* A card whose DF04/EF06 flag this desk set and has not cleared (valid during the call). */
struct journal_medq_flag {
	const char *card_number, *card_id, *since;
	int64_t pending;         /* its settlements still in state "intent" or "queued" */
};

/* Calls cb for each such card, as journal_medq_list(). */
int journal_medq_flags(struct journal *j,
		       int (*cb)(void *arg, const struct journal_medq_flag *f), void *arg);

/*
 * Marks the settlements ids[0..n-1] acknowledged (uploaded) and wipes their personal data, all or
 * none, fsynced. An id acknowledged already counts as known. Returns the number newly
 * acknowledged; SSC_ENOTFOUND with unknown[0..*n_unknown-1] (room for n) the ids that are not in
 * the queue (never queued, not applied, or removed by retention), nothing changed; SSC_EJOURNAL.
 */
int journal_medq_ack(struct journal *j, const int64_t *ids, size_t n, int64_t *unknown,
		     size_t *n_unknown, struct ssc_diag *diag);

/*
 * The settlements not yet acknowledged (state "intent" or "queued") plus the flagged cards: what
 * names cards by the journal's key and so must be gone before a key rotation. >= 0 or
 * SSC_EJOURNAL.
 */
int journal_medq_open_count(struct journal *j);

/* Forgets card_ref among the cards whose flag needs clearing: 0 or SSC_EJOURNAL. */
int journal_medq_flag_cleared(struct journal *j, const char *card_ref, struct ssc_diag *diag);

/* The chain head: the last row's sequence number and hash (hex, JOURNAL_HASH_HEX + 1 bytes). */
int journal_head(struct journal *j, int64_t *seq, char *hash_hex);

/* What journal_verify_report() found besides a verdict. */
struct journal_report {
	int64_t rows;            /* rows whose chain hash was checked */
	int64_t anchor_seq;      /* the retention anchor (0 = none) */
	int head_pruned;         /* the head given lies before the anchor: it cannot be compared */
	int rotations;           /* key rotations among the rows kept */
	/*
	 * Rows written under an earlier key that was not given (journal_add_old_key()): their
	 * order and their link to the rows after them are checked, their hashes are not.
	 */
	int64_t unchecked, unchecked_first, unchecked_last;
	char unchecked_key[JOURNAL_KEY_ID_HEX + 1];   /* the newest such key's id */
	int list_uncovered;      /* a journal of schema 1 (read-only): its list is not chained yet */
	int64_t list_entries;    /* the lost-card list's size */
	int64_t list_seq;        /* the row whose digest the list matches (0: an empty list) */
};

/*
 * Checks the whole chain: every row's HMAC from its predecessor (under the key of its time: the
 * journal's, or an earlier key given with journal_add_old_key()), contiguous sequence numbers
 * from the retention anchor, that each key rotation row records the head before it, that the
 * lost-card list matches the digest the chain carries last, and, when head_seq > 0, that the
 * chain still reaches head_seq with hash head_hex (a head taken earlier from the daemon's log:
 * this catches a cut-off tail). A read-only handle whose key file is not the journal's is
 * reported first. Returns 0 when intact, with the notes in *rep (a head that was pruned, rows
 * under an earlier key not given), or SSC_EJOURNAL with the first fault named in diag (SSC_ENOMEM).
 */
int journal_verify_report(struct journal *j, int64_t head_seq, const char *head_hex,
			  struct journal_report *rep, struct ssc_diag *diag);

/*
 * journal_verify_report() with the answer of earlier versions: 0 when intact, SSC_EJOURNAL with
 * the first bad row named in diag; or JOURNAL_HEAD_PRUNED when the chain is intact but head_seq
 * lies before the retention anchor: that row was pruned, so the head cannot be compared (the
 * chain does run past it), and diag says so. *rows (may be NULL) receives the number of rows
 * checked.
 */
#define JOURNAL_HEAD_PRUNED 1
int journal_verify(struct journal *j, int64_t head_seq, const char *head_hex, int64_t *rows,
		   struct ssc_diag *diag);

/*
 * Adds an earlier key (a key file kept at a rotation) for journal_verify_report() to check the
 * rows written under it. Returns 0 (also for a key already known), SSC_EJOURNAL (unreadable,
 * not 32 bytes) or SSC_EINVAL (too many). Thread-safe.
 */
int journal_add_old_key(struct journal *j, const char *path, struct ssc_diag *diag);

/* The id of the journal's key (JOURNAL_KEY_ID_HEX + 1 bytes). Thread-safe. */
void journal_key_id(struct journal *j, char *out);

/* What journal_rotate_key() did. */
struct journal_rotation {
	char old_key_id[JOURNAL_KEY_ID_HEX + 1], new_key_id[JOURNAL_KEY_ID_HEX + 1];
	int64_t old_head_seq;                    /* the last row under the old key */
	char old_head_hash[JOURNAL_HASH_HEX + 1];
	int64_t key_row_seq;                     /* the first row under the new key */
	int64_t entries;                         /* lost-card entries re-keyed */
	int ignored;                             /* entries of the file given that are not listed */
	char old_key_path[1100];                 /* where the old key was kept */
};

/*
 * Replaces the journal's key with a new random one: for an operator, with the daemon stopped.
 * Refused (SSC_EJOURNAL) while another process holds the key file (a running sscardd), while
 * write intents are pending (their refs are under the old key), and when the journal does not
 * verify. The lost-card list holds keyed names only: lost (may be NULL for an empty list) must
 * name every listed card again (the import format), and the rotation is refused (SSC_EINVAL,
 * nothing changed) when it does not. Then, in one transaction: the list is re-keyed, the new
 * key's id recorded, and the first row under the new key (kind "key") records the old head and
 * both key ids. The old key file is kept beside it as KEY.old-<id> (to verify the rows before the
 * rotation, journal_add_old_key()); the new key replaces the key file. The handle goes on
 * under the new key. Blocks on file I/O (fsync).
 */
int journal_rotate_key(struct journal *j, FILE *lost, struct journal_rotation *out,
		       struct ssc_diag *diag);

/*
 * Writes rows as JSON lines to out: since_seq (0 = all); kinds "audit", "intent", "outcome",
 * "blacklist", "prune", "key". Returns the number of rows written or SSC_EJOURNAL / SSC_EIO.
 */
int journal_export(struct journal *j, int64_t since_seq, FILE *out);

/*
 * Calls cb for rows in sequence order: those after since_seq (at most limit; limit <= 0 = no
 * limit), or, when since_seq < 0, the last limit rows. cb returns 0 to go on, non-zero to stop
 * (that value is returned). Do not call other journal functions from cb. Returns 0, cb's value or
 * SSC_EJOURNAL. For the operator's `sscardctl journal show`.
 */
int journal_rows(struct journal *j, int64_t since_seq, int64_t limit,
		 int (*cb)(void *arg, const struct journal_row *row), void *arg);

/*
 * Deletes rows older than days (by their time), never an intent that has no outcome yet, and
 * records the new anchor (the last deleted row's hash) and the lost-card list's digest as a
 * "prune" row so that verify starts there. Returns the number of rows deleted or SSC_EJOURNAL.
 */
int journal_prune(struct journal *j, int days, struct ssc_diag *diag);

/* Same, for rows whose time (Unix seconds) is before cutoff. */
int journal_prune_before(struct journal *j, int64_t cutoff, struct ssc_diag *diag);

/*
 * The lost-card list. Every change is one transaction that appends a chained "blacklist" row
 * naming the refs added or removed and carrying a digest of the whole list after it (prune and
 * key rows carry the digest too), so that a change made outside sscard is detected: by
 * journal_verify_report(), by a writable open, and by journal_blacklisted() after another
 * process has written to the database.
 *
 * Adds the card numbers or card ids (卡识别码, 32 hex) read one per line from f to the list
 * (blank lines and lines starting with '#' are skipped; other malformed lines are errors naming
 * the line, and nothing is added). Stored as keyed hashes with the time and the caller's uid.
 * Returns the number added (a card already listed is not counted) or SSC_EINVAL / SSC_EIO /
 * SSC_EJOURNAL.
 */
int journal_blacklist_import(struct journal *j, FILE *f, struct ssc_diag *diag);

/*
 * Removes from the list the entries named in f (the import format: a card number removes the
 * number's entry, a card id the id's). Returns the number removed, with *not_listed (may be
 * NULL) the entries of f that were not on the list; or SSC_EINVAL / SSC_EIO / SSC_EJOURNAL
 * (nothing removed).
 */
int journal_blacklist_remove(struct journal *j, FILE *f, int *not_listed, struct ssc_diag *diag);

/* One entry of the list, as journal_blacklist_entries() hands it out (valid during the call). */
struct journal_list_entry {
	const char *kind;        /* "number", "id", or "" (added before the kind was kept) */
	const char *ref;         /* the keyed hash (JOURNAL_REF_HEX hex digits) */
	const char *added;       /* UTC, 2026-01-31T08:00:00.123Z */
	int64_t uid;             /* who added it; -1 = not known (added before it was kept) */
};

/*
 * Calls cb for every entry, oldest first. cb returns 0 to go on, non-zero to stop (that value is
 * returned). Do not call other journal functions from cb. Returns 0, cb's value or SSC_EJOURNAL.
 */
int journal_blacklist_entries(struct journal *j,
			      int (*cb)(void *arg, const struct journal_list_entry *e), void *arg);

/*
 * Whether a card (its card number and/or card id, either may be NULL) is on the lost-card list.
 * After another process has committed to the database, the list is first checked against the
 * chain's digest; when it does not match, the handle's observer hears of it as of a failed
 * append (the daemon then takes the journal out of service) and this fails.
 * Returns 1 listed, 0 not, or SSC_EJOURNAL (SSC_ENOMEM) with the reason in diag (may be NULL):
 * never 0 for a card it could not look up.
 */
int journal_blacklisted(struct journal *j, const char *card_number, const char *card_id,
			struct ssc_diag *diag);

#endif
