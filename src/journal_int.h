/*
 * This file contains what the journal's own files share and nobody else may use: the handle's
 * layout, the chained row and its columns, and the helpers its files call in one another:
 * journal.c (the database's lifecycle), journal_chain.c (the HMAC chain), journal_ref.c (keyed
 * names), journal_append.c (appends), journal_key.c (the key file), journal_list.c (the
 * lost-card list). The API is src/journal.h.
 */
#ifndef SSC_JOURNAL_INT_H
#define SSC_JOURNAL_INT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "journal.h"

#define JOURNAL_SCHEMA 2         /* 2: the lost-card list in the chain, the key's id in meta */
#define JOURNAL_KEY_LEN 32
#define JOURNAL_BUSY_MS 5000
#define JOURNAL_OLD_KEYS 8       /* earlier keys journal_add_old_key() holds */

/* Statements on every call's path, prepared once per open database (lock held to use them). */
enum jstmt_id {
	JSTMT_TAIL, JSTMT_INSERT, JSTMT_BLACKLIST, JSTMT_DATA_VERSION,
	/* journal_intent.c: an intent's card and whether it is resolved; its settlement's queue. */
	JSTMT_INTENT_CARD, JSTMT_INTENT_RESOLVED,
	JSTMT_MEDQ_QUEUED, JSTMT_MEDFLAG_ADD, JSTMT_MEDFLAG_CLEARED, JSTMT_MEDQ_VOID,
	JSTMT_COUNT
};

#define JOURNAL_MEMO 4           /* refs remembered (ref_memo) */
#define JOURNAL_MEMO_VALUE 64    /* longest value remembered (card numbers and ids are shorter) */

/* The keys one master key (a key file's 32 bytes) gives. */
struct journal_keys {
	uint8_t chain_key[32];
	uint8_t ref_key[32];
	char id[JOURNAL_KEY_ID_HEX + 1];
};

struct journal {
	sqlite3 *db;             /* NULL while suspended (journal_suspend) */
	sqlite3_stmt *stmt[JSTMT_COUNT];
	pthread_mutex_t lock;
	unsigned flags;
	int schema;              /* the database's schema version (1 only read-only: not migrated) */
	uint8_t chain_key[32];
	uint8_t ref_key[32];
	char key_id[JOURNAL_KEY_ID_HEX + 1];
	char key_path[1024];
	int key_fd;              /* the key file, held with a shared flock() while open; -1 none */
	/*
	 * Read-only opens only: why the key does not prove itself against the chain ("" = it does,
	 * or cannot tell); journal_verify_report() names it. A writable open refuses instead.
	 */
	char key_problem[256];
	struct journal_keys old[JOURNAL_OLD_KEYS];   /* journal_add_old_key(), for verify */
	int n_old;
	/*
	 * The lost-card list as last found matching the chain (lock held): the database's
	 * data_version then. Another connection's commit changes it, and the next lookup checks the
	 * list again. list_bad: the last check failed (lookups fail until a reopen).
	 */
	int64_t list_data_version;
	int list_bad;
	EVP_MAC_CTX *chain_mac;  /* HMAC-SHA-256 keyed with chain_key / ref_key, used through copies */
	EVP_MAC_CTX *ref_mac;    /* (NULL: the one-shot HMAC() is used instead) */
	pthread_mutex_t mac_lock;
	/*
	 * The last keyed refs computed (mac_lock): a read names one card three times (lost-card
	 * check by number and by card id, the audit row's card), and so does every later call on
	 * the same card. Card names only (memo_fits). Wiped at close like the keys.
	 */
	struct ref_memo {
		const char *label;           /* a string literal of this file; NULL = empty */
		size_t len;
		uint8_t value[JOURNAL_MEMO_VALUE];
		char ref[JOURNAL_REF_HEX + 1];
	} memo[JOURNAL_MEMO];
	unsigned memo_next;              /* the entry the next miss replaces */
	char path[1024];         /* for journal_resume */
	char why[200];           /* why it was suspended (journal_suspend), for later errors */
	journal_observer_fn observer;
	void *observer_arg;
};

/* One row as it is chained: the field order here is the hash's field order; never change it. */
struct jrow {
	int64_t seq;
	char ts[32];
	int64_t ts_unix;
	const char *kind;
	int64_t uid, pid;
	const char *exe, *method, *reader, *card, *result;
	int64_t duration_ms;
	int64_t intent;          /* 0 = none */
	const char *file, *detail;
};

/*
 * The columns of the rows table, in its order: the chained fields of struct jrow, then the hash.
 * One list gives both the column names a query selects (ROW_COLUMNS) and their indices in the
 * result (enum jcol), so that a query selecting ROW_COLUMNS reads column JCOL_HASH by name and
 * the two cannot drift apart. X(ID, name) for each column, SEP between two.
 */
#define JOURNAL_COLUMNS(X, SEP)                                                              \
	X(SEQ, seq) SEP X(TS, ts) SEP X(TS_UNIX, ts_unix) SEP X(KIND, kind) SEP X(UID, uid) SEP \
	X(PID, pid) SEP X(EXE, exe) SEP X(METHOD, method) SEP X(READER, reader) SEP          \
	X(CARD, card) SEP X(RESULT, result) SEP X(DURATION_MS, duration_ms) SEP               \
	X(INTENT, intent) SEP X(FILE, file) SEP X(DETAIL, detail) SEP X(HASH, hash)
#define JCOL_ID_(id, name) JCOL_##id
#define JCOL_NAME_(id, name) #name
#define JCOL_COMMA_ ,

/* A column's index in a result of SELECT ROW_COLUMNS (and, + 1, its parameter in an INSERT). */
enum jcol { JOURNAL_COLUMNS(JCOL_ID_, JCOL_COMMA_), JCOL_COUNT };

/* "seq, ts, ..., hash": every column, in the order of enum jcol. */
#define ROW_COLUMNS JOURNAL_COLUMNS(JCOL_NAME_, ", ")

/*
 * The request_id an intent's detail carries (NULL: none), as the index rows_request and
 * journal_request_find() both spell it: the same expression, or SQLite does not use the index.
 * The json_valid() guard keeps a detail that is no JSON from failing the index.
 */
#define JOURNAL_REQUEST_EXPR \
	"(CASE WHEN json_valid(detail) THEN json_extract(detail, '$.request_id') END)"

/* ---- journal_db.c: what every part uses on the database -------------------------------- */

/* SSC_EJOURNAL with "journal: what: <SQLite's message or why it is suspended>". */
int journal_err(struct journal *j, struct ssc_diag *diag, const char *what);
/*
 * Ends the transaction open on the connection, if any (a write's ROLLBACK, or the end of a read),
 * tried again when ROLLBACK itself fails: never leaves the connection inside a transaction. Lock
 * held.
 */
void journal_rollback(struct journal *j);
/*
 * diag, or local (reset) when the caller gave none: a write's failure always has a message, since
 * the observer hears of it.
 */
struct ssc_diag *journal_diag(struct ssc_diag *diag, struct ssc_diag *local);
/*
 * Ends a read of rows under the lock, stepped until rc (ret: the caller's own result so far, 0 or
 * an error that cut the walk short): finalizes st, releases the lock, and returns ret, or
 * SSC_EJOURNAL when the walk ended on anything but SQLITE_DONE.
 */
int journal_read_end(struct journal *j, sqlite3_stmt *st, int rc, int ret);
/*
 * Takes the lock when the database is open: 0 with the lock held, or SSC_EJOURNAL naming what
 * ("journal: what: out of service (...)") with the lock released.
 */
int journal_lock_open(struct journal *j, const char *what, struct ssc_diag *diag);
/*
 * Begins a write whose commit is fsynced before it returns: synchronous=FULL (the caller sets it
 * back to NORMAL whatever happens), then BEGIN IMMEDIATE. 0, or SSC_EJOURNAL ("begin"). Lock held.
 */
int journal_begin_full(struct journal *j, struct ssc_diag *diag);
/* Runs sql (no rows); SSC_EJOURNAL naming it (diag may be NULL). Lock held. */
int journal_exec(struct journal *j, const char *sql, struct ssc_diag *diag);
/* The cached statement id for sql (prepared on first use, reset for reuse), or NULL. Lock held. */
sqlite3_stmt *journal_stmt(struct journal *j, enum jstmt_id id, const char *sql);
int journal_meta_get(struct journal *j, const char *key, char *out, size_t cap);
int journal_meta_set(struct journal *j, const char *key, const char *value);
/* Tells the observer about an append (or a failure: err, diag's message). Lock not held. */
void journal_notify(struct journal *j, const char *kind, int64_t seq, const char *hash, int err,
		    const struct ssc_diag *diag);
/* Tells the observer about the row r appended as seq with hash (note.row set). Lock not held. */
void journal_notify_row(struct journal *j, const struct jrow *r, int64_t seq, const char *hash);

/* Column i's text ("" for NULL). */
const char *journal_col_text(sqlite3_stmt *st, int i);
/* The chained fields of a row selected as ROW_COLUMNS (borrowed from st until its next step). */
void journal_row_from_stmt(sqlite3_stmt *st, struct jrow *r);

/* ---- journal_chain.c: the HMAC chain ---------------------------------------------------- */

/* HMAC-SHA-256(key, data) into out: 0, or -1 when OpenSSL cannot (no memory; out not written). */
int journal_hmac(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32]);
/*
 * HMAC(key, data) through the keyed context base (set up from key), or the one-shot call: 0, or
 * -1 when neither works (no memory; out not written).
 */
int journal_mac(struct journal *j, EVP_MAC_CTX *base, const uint8_t key[32],
		const uint8_t *data, size_t len, uint8_t out[32]);
/*
 * Sets the handle's chain and ref keys (and their keyed contexts) from keys; wipes the memo of
 * refs (journal_ref.c) made under the keys before.
 */
int journal_use_keys(struct journal *j, const struct journal_keys *keys);
/* Wipes the memo of refs (mac_lock held, or the handle not shared: at a key change, at close). */
void journal_memo_clear(struct journal *j);
/* The 8-byte big-endian length n before each field the chain (and the list's digest) hashes. */
void journal_field_len(uint8_t hdr[8], size_t n);
/* The row's chain hash under chain_key (the handle's when NULL), as hex. */
int journal_row_hash(struct journal *j, const uint8_t *chain_key, const uint8_t prev[32],
		     const struct jrow *r, char *hex);
/* The chain's current end: the last row, or the retention anchor, or (0, zeros). Lock held. */
int journal_chain_tail(struct journal *j, int64_t *seq, uint8_t hash[32]);
/* Inserts r (seq and hash assigned) inside the caller's transaction; lock held. */
int journal_row_insert(struct journal *j, struct jrow *r, int64_t *seq_out, char *hash_out);
/*
 * A row the journal writes about itself (a change of the lost-card list, a migration, a key
 * rotation): kind, method and detail as given, this process's uid and pid, result SSC_OK. Its
 * time is the caller's to set.
 */
void journal_own_row(struct jrow *r, const char *kind, const char *method, const char *detail);
/*
 * Inserts r as the last row of the caller's transaction and commits it (lock held): 0, or
 * SSC_EJOURNAL with what (or "commit") in diag, the transaction left to the caller to roll back.
 */
int journal_row_commit(struct journal *j, struct jrow *r, const char *what, int64_t *seq_out,
		       char *hash_out, struct ssc_diag *diag);
/* r->ts and r->ts_unix from a CLOCK_REALTIME time in milliseconds (0: now). */
void journal_set_ts(struct jrow *r, int64_t when_ms);
void journal_now_ts(struct jrow *r);
/*
 * Checks row seq's hash against its predecessor (or the anchor) under the handle's key. Returns
 * 0 when it matches, JOURNAL_ROW_BAD when the row or its predecessor is missing or the hash does
 * not match (diag says which), or SSC_EJOURNAL / SSC_ENOMEM when it could not be checked (a
 * failing database, no memory): callers must not take that for a changed journal.
 */
#define JOURNAL_ROW_BAD 1
int journal_row_check(struct journal *j, int64_t seq, struct ssc_diag *diag);

/* ---- journal_ref.c: keyed names and their memo ------------------------------------------ */

/* HMAC(ref_key, label ‖ 00 ‖ value) as JOURNAL_REF_HEX hex digits; label a string literal. */
void journal_keyed_ref(struct journal *j, const char *label, const uint8_t *v, size_t len,
		       char *out);

/* ---- journal_append.c: appends ---------------------------------------------------------- */

/*
 * Appends rows[0..n-1] (their times set), in order, in one transaction with the given durability
 * (full != 0: the commit is fsynced before this returns): all or none. seq_out (may be NULL)
 * receives the first row's sequence number. The observer hears of each row, or of the failure
 * once. Lock not held.
 */
int journal_append_rows(struct journal *j, struct jrow *rows, size_t n, int full,
			int64_t *seq_out, struct ssc_diag *diag);
/*
 * What journal_append_rows_then() runs inside the transaction once the rows are in (first_seq:
 * the first row's sequence number): 0, or SSC_E* with diag set, which rolls everything back.
 * Lock held; no append of its own.
 */
typedef int (*journal_then_fn)(struct journal *j, void *arg, int64_t first_seq,
			       struct ssc_diag *diag);
/* journal_append_rows() with then(arg) run in the same transaction after the rows. */
int journal_append_rows_then(struct journal *j, struct jrow *rows, size_t n, int full,
			     journal_then_fn then, void *arg, int64_t *seq_out,
			     struct ssc_diag *diag);
/* Appends one row, stamped now, in its own transaction (see journal_append_rows). */
int journal_append(struct journal *j, struct jrow *r, int full, int64_t *seq_out,
		   struct ssc_diag *diag);

/* ---- journal_key.c ---------------------------------------------------------------------- */

/*
 * Reads the 32-byte key file at path (creating it, 0600, O_EXCL, when create != 0 and it is
 * absent: *created = 1) and derives its keys. The file stays open in *fd with a shared flock()
 * (the lock journal_rotate_key() needs exclusively). SSC_EJOURNAL with the reason.
 */
int journal_key_load(const char *path, int create, struct journal_keys *keys, int *fd,
		     int *created, struct ssc_diag *diag);
void journal_keys_wipe(struct journal_keys *keys);
/*
 * Whether the handle's key proves itself against the stored chain: the key id in meta and the
 * last row's hash. Lock held (or not yet shared). 0, or SSC_EJOURNAL naming the reason.
 */
int journal_key_check(struct journal *j, struct ssc_diag *diag);

/* ---- journal_list.c --------------------------------------------------------------------- */

/* The lost-card list's digest (JOURNAL_HASH_HEX hex) and its size. Lock held. */
int journal_list_digest(struct journal *j, char *digest, int64_t *entries);
/*
 * Whether the list matches the digest the chain carries last (row of kind blacklist, prune or
 * key), that row's hash included. Lock held. 0, or SSC_EJOURNAL naming the reason (also when it
 * could not be checked: a failing database; SSC_ENOMEM).
 */
int journal_list_check(struct journal *j, struct ssc_diag *diag);
/* Schema 1 -> 2 in place: columns of the list, the key's id, a chained row. Lock held. */
int journal_list_migrate(struct journal *j, struct ssc_diag *diag);
/* Writes ,"entries":N,"list_digest":"…" of the list now into out. Lock held. */
int journal_list_detail(struct journal *j, char *out, size_t cap);

/*
 * One line of a list file: its card number (9 characters [0-9A-Z]) or card id (32 hex),
 * normalised to upper case in place; *label is "bl-number" or "bl-id". -1 when malformed.
 */
int journal_list_entry(char *s, const char **label);
/*
 * Reads a list file (one entry a line; blank lines and '#' comments skipped), calling cb for
 * each entry. SSC_EINVAL naming the line, SSC_EIO, or cb's error. *lines = lines read.
 */
int journal_list_read(FILE *f, int (*cb)(void *arg, const char *label, const char *value),
		      void *arg, int *lines, struct ssc_diag *diag);

/* ---- journal_intent.c ------------------------------------------------------------------- */

/*
 * A write intent's row in r (kind intent, the peer's uid, pid and program, card_ref, reader, file,
 * detail; its time not set), or SSC_ENOMEM when card_ref or detail holds JOURNAL_REF_NONE (a ref
 * that could not be made names nothing: the write could not be resolved later).
 */
int journal_intent_row(struct jrow *r, const struct journal_peer *peer, const char *card_ref,
		       const char *reader, const char *file, const char *detail,
		       struct ssc_diag *diag);

/* ---- journal_verify.c ------------------------------------------------------------------- */

/* The keys journal_add_old_key() gave for key id, or NULL. */
const struct journal_keys *journal_old_keys(struct journal *j, const char *id);

#endif
