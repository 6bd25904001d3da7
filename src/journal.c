/*
 * This file contains the SQLite journal (src/journal.h): schema, the HMAC chain over every row,
 * audit rows, write intents and outcomes, retention, export and the lost-card list. One connection,
 * serialised by a mutex; every append runs in a BEGIN IMMEDIATE transaction that reads the current
 * head, so that another process appending (an operator's import) cannot fork the chain.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hex.h"
#include "journal_int.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS rows("
	" seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, ts_unix INTEGER NOT NULL, kind TEXT NOT NULL,"
	" uid INTEGER NOT NULL, pid INTEGER NOT NULL, exe TEXT NOT NULL, method TEXT NOT NULL,"
	" reader TEXT NOT NULL, card TEXT NOT NULL, result TEXT NOT NULL,"
	" duration_ms INTEGER NOT NULL, intent INTEGER NOT NULL, file TEXT NOT NULL,"
	" detail TEXT NOT NULL, hash TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS rows_intent ON rows(intent) WHERE intent <> 0;"
	"CREATE INDEX IF NOT EXISTS rows_ts ON rows(ts_unix);"
	"CREATE INDEX IF NOT EXISTS rows_intents ON rows(card) WHERE kind = 'intent';"
	"CREATE INDEX IF NOT EXISTS rows_list ON rows(seq)"
	" WHERE kind IN ('blacklist', 'prune', 'key');"
	/* Schema 1 had (ref, added) only: journal_list_migrate() adds the other two. */
	"CREATE TABLE IF NOT EXISTS blacklist(ref TEXT PRIMARY KEY, added TEXT NOT NULL,"
	" kind TEXT NOT NULL DEFAULT '', uid INTEGER NOT NULL DEFAULT -1);";

int journal_err(struct journal *j, struct ssc_diag *diag, const char *what)
{
	if (j && !j->db)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s: out of service (%s)", what,
				    j->why[0] ? j->why : "suspended");
	return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s: %s", what,
			    j ? sqlite3_errmsg(j->db) : "no journal");
}

void journal_hmac(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int olen = 32;

	HMAC(EVP_sha256(), key, 32, data, len, out, &olen);
}

/*
 * HMAC-SHA-256 with a key set up once: fetching the MAC and the digest and scheduling the key cost
 * more than hashing a row or a card number, and the journal hashes on every call's path. Users
 * copy the keyed context (EVP_MAC_CTX_dup) and hash on the copy; NULL when OpenSSL cannot.
 */
static EVP_MAC_CTX *mac_keyed(const uint8_t key[32])
{
	OSSL_PARAM params[2];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

	EVP_MAC_free(mac);   /* the context keeps its own reference */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx && EVP_MAC_init(ctx, key, 32, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* HMAC(key, data) through the keyed context base (set up from key), or the one-shot call. */
static void mac_data(struct journal *j, EVP_MAC_CTX *base, const uint8_t key[32],
		     const uint8_t *data, size_t len, uint8_t out[32])
{
	EVP_MAC_CTX *c = NULL;
	size_t olen = 0;

	if (base) {
		pthread_mutex_lock(&j->mac_lock);
		c = EVP_MAC_CTX_dup(base);
		pthread_mutex_unlock(&j->mac_lock);
	}
	if (c && EVP_MAC_update(c, data, len) == 1 && EVP_MAC_final(c, out, &olen, 32) == 1 &&
	    olen == 32) {
		EVP_MAC_CTX_free(c);
		return;
	}
	EVP_MAC_CTX_free(c);
	journal_hmac(key, data, len, out);
}

static int exec_sql(struct journal *j, const char *sql, struct ssc_diag *diag)
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

/* Finalizes the cached statements and closes the database (j->lock held or not yet shared). */
static void db_close(struct journal *j)
{
	for (int i = 0; i < JSTMT_COUNT; i++) {
		sqlite3_finalize(j->stmt[i]);
		j->stmt[i] = NULL;
	}
	if (j->db)
		sqlite3_close_v2(j->db);
	j->db = NULL;
}

int journal_meta_get(struct journal *j, const char *key, char *out, size_t cap)
{
	sqlite3_stmt *st;
	int r = SSC_ENOTFOUND;

	if (sqlite3_prepare_v2(j->db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL) !=
	    SQLITE_OK)
		return SSC_EJOURNAL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
		r = 0;
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

int journal_use_keys(struct journal *j, const struct journal_keys *keys)
{
	EVP_MAC_CTX *c = mac_keyed(keys->chain_key), *r = mac_keyed(keys->ref_key);

	pthread_mutex_lock(&j->mac_lock);
	memcpy(j->chain_key, keys->chain_key, sizeof(j->chain_key));
	memcpy(j->ref_key, keys->ref_key, sizeof(j->ref_key));
	memcpy(j->key_id, keys->id, sizeof(j->key_id));
	EVP_MAC_CTX_free(j->chain_mac);
	EVP_MAC_CTX_free(j->ref_mac);
	j->chain_mac = c;
	j->ref_mac = r;
	/* Refs remembered under the other key are not this key's. */
	OPENSSL_cleanse(j->memo, sizeof(j->memo));
	memset(j->memo, 0, sizeof(j->memo));
	j->memo_next = 0;
	pthread_mutex_unlock(&j->mac_lock);
	return 0;
}

static int db_open(struct journal *j, struct ssc_diag *diag);

int journal_open(const char *path, const char *key_path, unsigned flags, struct journal **out,
		 struct ssc_diag *diag)
{
	struct journal_keys keys;
	struct journal *j;
	struct stat stt;
	int exists, created, r;

	*out = NULL;
	exists = stat(path, &stt) == 0;
	if (!exists && (flags & JOURNAL_RDONLY))
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s does not exist", path);
	j = calloc(1, sizeof(*j));
	if (!j)
		return SSC_ENOMEM;
	j->flags = flags;
	j->key_fd = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->mac_lock, NULL);
	/* Best effort: the keys' page is never written to swap (RLIMIT_MEMLOCK may forbid it). */
	(void)mlock(j->chain_key, sizeof(j->chain_key));
	(void)mlock(j->ref_key, sizeof(j->ref_key));
	(void)mlock(j->old, sizeof(j->old));
	if (strlen(path) >= sizeof(j->path) ||
	    snprintf(j->key_path, sizeof(j->key_path), key_path ? "%s" : "%s.key",
		     key_path ? key_path : path) >= (int)sizeof(j->key_path)) {
		r = ssc_diag_set(diag, SSC_EJOURNAL, "journal: path too long");
		goto out_free;
	}
	memcpy(j->path, path, strlen(path) + 1);
	r = journal_key_load(j->key_path, !exists && !(flags & JOURNAL_RDONLY), &keys, &j->key_fd,
			     &created, diag);
	if (r < 0)
		goto out_free;
	journal_use_keys(j, &keys);
	journal_keys_wipe(&keys);
	r = db_open(j, diag);
	if (r < 0)
		goto out_free;
	*out = j;
	return 0;

out_free:
	journal_close(j);
	return r;
}

/*
 * The checks and the migration of a writable open, in one write transaction (an operator's
 * sscardctl may append meanwhile): the key against the chain, schema 1 -> 2, the key id of a
 * new journal, the lost-card list against the chain's digest.
 */
static int db_check(struct journal *j, int schema, struct ssc_diag *diag)
{
	char buf[64];
	int r;

	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "begin");
	r = journal_key_check(j, diag);
	if (r == 0 && schema == 1)
		r = journal_list_migrate(j, diag);
	if (r == 0 && schema == 0) {
		snprintf(buf, sizeof(buf), "%d", JOURNAL_SCHEMA);
		if (journal_meta_set(j, "schema", buf) < 0)
			r = journal_err(j, diag, "write schema version");
	}
	/* A journal made before the key's id was kept, or a new one: it proved itself above. */
	if (r == 0 && journal_meta_get(j, "key_id", buf, sizeof(buf)) == SSC_ENOTFOUND &&
	    journal_meta_set(j, "key_id", j->key_id) < 0)
		r = journal_err(j, diag, "write the key id");
	if (r == 0)
		r = journal_list_check(j, diag);
	if (r == 0 && sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = journal_err(j, diag, "commit");
	if (r < 0)
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* Opens j->path as the database of j (keys already set), with the schema checks. */
static int db_open(struct journal *j, struct ssc_diag *diag)
{
	const char *path = j->path;
	unsigned flags = j->flags;
	struct ssc_diag kd;
	char buf[64];
	int rc, r, schema = 0;

	rc = sqlite3_open_v2(path, &j->db,
			     (flags & JOURNAL_RDONLY) ? SQLITE_OPEN_READONLY
						      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     NULL);
	if (rc != SQLITE_OK) {
		r = journal_err(j, diag, "open");
		goto out_close;
	}
	sqlite3_busy_timeout(j->db, JOURNAL_BUSY_MS);
	sqlite3_extended_result_codes(j->db, 1);
	if (!(flags & JOURNAL_RDONLY)) {
		r = exec_sql(j, "PRAGMA journal_mode=WAL", diag);
		if (r < 0)
			goto out_close;
		r = exec_sql(j, "PRAGMA synchronous=NORMAL", diag);
		if (r < 0)
			goto out_close;
		r = exec_sql(j, schema_sql, diag);
		if (r < 0)
			goto out_close;
	}
	r = journal_meta_get(j, "schema", buf, sizeof(buf));
	if (r == SSC_ENOTFOUND && !(flags & JOURNAL_RDONLY)) {
		schema = 0;   /* new */
	} else if (r < 0) {
		r = journal_err(j, diag, "read schema version");
		goto out_close;
	} else if (strcmp(buf, "1") == 0 || strcmp(buf, "2") == 0) {
		schema = buf[0] - '0';
	} else {
		r = ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s has schema %s, this build reads %d",
				 path, buf, JOURNAL_SCHEMA);
		goto out_close;
	}
	j->list_bad = 0;
	j->list_data_version = -1;
	j->key_problem[0] = '\0';
	if (flags & JOURNAL_RDONLY) {
		/* Only verify needs to know; show and export read on. */
		j->schema = schema;
		if (journal_meta_get(j, "key_id", buf, sizeof(buf)) == 0 &&
		    strcmp(buf, j->key_id) != 0) {
			ssc_diag_init(&kd);
			journal_key_check(j, &kd);
			snprintf(j->key_problem, sizeof(j->key_problem), "%s", kd.msg);
		}
		return 0;
	}
	r = db_check(j, schema, diag);
	if (r < 0)
		goto out_close;
	j->schema = JOURNAL_SCHEMA;
	return 0;

out_close:
	db_close(j);
	return r;
}

void journal_suspend(struct journal *j, const char *why)
{
	pthread_mutex_lock(&j->lock);
	db_close(j);
	snprintf(j->why, sizeof(j->why), "%s", why ? why : "");
	pthread_mutex_unlock(&j->lock);
}

int journal_resume(struct journal *j, struct ssc_diag *diag)
{
	int r = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db)
		r = db_open(j, diag);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_room(const char *path, struct ssc_diag *diag)
{
	char probe[1100];
	int fd, e;

	if (snprintf(probe, sizeof(probe), "%s.probe", path) >= (int)sizeof(probe))
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: path too long");
	(void)unlink(probe);   /* left by a crash between create and unlink */
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	e = posix_fallocate(fd, 0, JOURNAL_ROOM_PROBE);   /* returns the error, sets no errno */
	close(fd);
	(void)unlink(probe);
	if (e == 0)
		return 0;
fail:
	if (e == ENOSPC || e == EDQUOT)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the disk is full (no room for %d "
				    "KiB beside %s)", JOURNAL_ROOM_PROBE / 1024, path);
	/*
	 * Anything else (a directory the daemon may not create files in while it may write the
	 * database, a file system without allocation) does not tell about room: let the
	 * database's own open and appends decide.
	 */
	return 0;
}

int journal_suspended(struct journal *j)
{
	int s;

	pthread_mutex_lock(&j->lock);
	s = j->db == NULL;
	pthread_mutex_unlock(&j->lock);
	return s;
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

	pthread_mutex_lock(&j->lock);
	fn = j->observer;
	arg = j->observer_arg;
	pthread_mutex_unlock(&j->lock);
	if (fn)
		fn(arg, &n);
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	db_close(j);
	if (j->key_fd >= 0)
		close(j->key_fd);   /* and its lock */
	OPENSSL_cleanse(j->old, sizeof(j->old));
	OPENSSL_cleanse(j->chain_key, sizeof(j->chain_key));
	OPENSSL_cleanse(j->ref_key, sizeof(j->ref_key));
	OPENSSL_cleanse(j->memo, sizeof(j->memo));
	EVP_MAC_CTX_free(j->chain_mac);   /* frees the keyed state with it */
	EVP_MAC_CTX_free(j->ref_mac);
	pthread_mutex_destroy(&j->mac_lock);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/*
 * Whether (label, v) may be remembered: card names only, not the refs of record values, which
 * may be personal data; and short enough for an entry.
 */
static int memo_fits(const char *label, size_t len)
{
	return len <= JOURNAL_MEMO_VALUE &&
	       (strcmp(label, "card") == 0 || strcmp(label, "bl-number") == 0 ||
		strcmp(label, "bl-id") == 0);
}

/* A remembered ref for (label, v), copied to out: 1; or 0 (mac_lock not held). */
static int memo_get(struct journal *j, const char *label, const uint8_t *v, size_t len, char *out)
{
	int hit = 0;

	pthread_mutex_lock(&j->mac_lock);
	for (size_t i = 0; i < JOURNAL_MEMO && !hit; i++) {
		const struct ref_memo *m = &j->memo[i];

		if (m->label && m->len == len && strcmp(m->label, label) == 0 &&
		    memcmp(m->value, v, len) == 0) {
			memcpy(out, m->ref, JOURNAL_REF_HEX + 1);
			hit = 1;
		}
	}
	pthread_mutex_unlock(&j->mac_lock);
	return hit;
}

static void memo_put(struct journal *j, const char *label, const uint8_t *v, size_t len,
		     const char *ref)
{
	struct ref_memo *m;

	pthread_mutex_lock(&j->mac_lock);
	m = &j->memo[j->memo_next];
	j->memo_next = (j->memo_next + 1) % JOURNAL_MEMO;
	m->label = label;
	m->len = len;
	memcpy(m->value, v, len);
	memcpy(m->ref, ref, JOURNAL_REF_HEX + 1);
	pthread_mutex_unlock(&j->mac_lock);
}

/*
 * HMAC(ref_key, label ‖ 00 ‖ value), truncated to JOURNAL_REF_HEX hex digits. label must be a
 * string literal (the memo keeps the pointer).
 */
void journal_keyed_ref(struct journal *j, const char *label, const uint8_t *v, size_t len,
		      char *out)
{
	uint8_t stackbuf[512], mac[32];
	uint8_t *buf = stackbuf;
	size_t ll = strlen(label), total = ll + 1 + len;
	int memo = memo_fits(label, len);

	if (memo && memo_get(j, label, v, len, out))
		return;

	if (total > sizeof(stackbuf))
		buf = malloc(total);
	if (!buf) {
		/* Never a valid ref: a lookup with it finds nothing, a write refuses it. */
		memset(out, '-', JOURNAL_REF_HEX);
		out[JOURNAL_REF_HEX] = '\0';
		return;
	}
	memcpy(buf, label, ll);
	buf[ll] = 0;
	if (len)
		memcpy(buf + ll + 1, v, len);
	mac_data(j, j->ref_mac, j->ref_key, buf, total, mac);
	OPENSSL_cleanse(buf, total);
	if (buf != stackbuf)
		free(buf);
	hex_encode(mac, JOURNAL_REF_HEX / 2, out, JOURNAL_REF_HEX + 1, HEX_LOWER);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (memo)
		memo_put(j, label, v, len, out);
}

void journal_card_ref(struct journal *j, const char *card_number, char *out)
{
	journal_keyed_ref(j, "card", (const uint8_t *)card_number, strlen(card_number), out);
}

void journal_value_ref(struct journal *j, const uint8_t *value, size_t len, char *out)
{
	journal_keyed_ref(j, "value", value, len, out);
}

/* Serialises one field for the chain: 8-byte big-endian length, then the bytes. */
static int ser_put(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	uint8_t hdr[8];

	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	if (*len + 8 + n > *cap) {
		size_t ncap = (*cap ? *cap * 2 : 512);
		uint8_t *nb;

		while (ncap < *len + 8 + n)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (!nb)
			return SSC_ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, hdr, 8);
	memcpy(*buf + *len + 8, p, n);
	*len += 8 + n;
	return 0;
}

static int ser_str(uint8_t **b, size_t *l, size_t *c, const char *s)
{
	if (!s)
		s = "";
	return ser_put(b, l, c, s, strlen(s));
}

static int ser_int(uint8_t **b, size_t *l, size_t *c, int64_t v)
{
	char t[24];
	int n = snprintf(t, sizeof(t), "%" PRId64, v);

	return ser_put(b, l, c, t, (size_t)n);
}

/* hash = HMAC(chain_key, prev ‖ fields), as hex; chain_key NULL = the handle's. */
int journal_row_hash(struct journal *j, const uint8_t *chain_key, const uint8_t prev[32],
		     const struct jrow *r, char *hex)
{
	uint8_t *b = NULL, mac[32];
	size_t l = 0, c = 0;
	int e = 0;

	e |= ser_put(&b, &l, &c, prev, 32);
	e |= ser_int(&b, &l, &c, r->seq);
	e |= ser_str(&b, &l, &c, r->ts);
	e |= ser_int(&b, &l, &c, r->ts_unix);
	e |= ser_str(&b, &l, &c, r->kind);
	e |= ser_int(&b, &l, &c, r->uid);
	e |= ser_int(&b, &l, &c, r->pid);
	e |= ser_str(&b, &l, &c, r->exe);
	e |= ser_str(&b, &l, &c, r->method);
	e |= ser_str(&b, &l, &c, r->reader);
	e |= ser_str(&b, &l, &c, r->card);
	e |= ser_str(&b, &l, &c, r->result);
	e |= ser_int(&b, &l, &c, r->duration_ms);
	e |= ser_int(&b, &l, &c, r->intent);
	e |= ser_str(&b, &l, &c, r->file);
	e |= ser_str(&b, &l, &c, r->detail);
	if (e) {
		free(b);
		return SSC_ENOMEM;
	}
	if (chain_key)
		journal_hmac(chain_key, b, l, mac);
	else
		mac_data(j, j->chain_mac, j->chain_key, b, l, mac);
	free(b);
	hex_encode(mac, 32, hex, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	return 0;
}

int journal_row_check(struct journal *j, int64_t seq, struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	char hash[JOURNAL_HASH_HEX + 1], stored[JOURNAL_HASH_HEX + 1], buf[80];
	uint8_t prev[32];
	struct jrow r;
	int found = 0, ret = 0;

	memset(prev, 0, sizeof(prev));
	if (seq > 1) {
		/* The predecessor: the row before, or the retention anchor, which names its hash. */
		if (sqlite3_prepare_v2(j->db, "SELECT hash FROM rows WHERE seq = ?", -1, &st,
				       NULL) != SQLITE_OK)
			return journal_err(j, diag, "read a row");
		sqlite3_bind_int64(st, 1, seq - 1);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *h = journal_col_text(st, 0);

			found = hex_decode(h, strlen(h), prev, 32) == 32;
		} else if (journal_meta_get(j, "anchor_seq", buf, sizeof(buf)) == 0 &&
			   strtoll(buf, NULL, 10) == seq - 1 &&
			   journal_meta_get(j, "anchor_hash", buf, sizeof(buf)) == 0) {
			found = hex_decode(buf, strlen(buf), prev, 32) == 32;
		}
		sqlite3_finalize(st);
		if (!found)
			return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the row before row %" PRId64
					    " is missing", seq);
	}
	if (sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE seq = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return journal_err(j, diag, "read a row");
	sqlite3_bind_int64(st, 1, seq);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " is missing", seq);
	}
	journal_row_from_stmt(st, &r);
	snprintf(stored, sizeof(stored), "%s", journal_col_text(st, JCOL_HASH));
	if (journal_row_hash(j, NULL, prev, &r, hash) < 0)
		ret = SSC_ENOMEM;
	else if (strcmp(hash, stored) != 0)
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " does not match its "
				   "chain hash", seq);
	sqlite3_finalize(st);
	return ret;
}

/* The chain's current end: the last row, or the retention anchor, or (0, zeros). */
int journal_chain_tail(struct journal *j, int64_t *seq, uint8_t hash[32])
{
	sqlite3_stmt *st;
	char buf[80];
	int rc;

	memset(hash, 0, 32);
	*seq = 0;
	st = journal_stmt(j, JSTMT_TAIL, "SELECT seq, hash FROM rows ORDER BY seq DESC LIMIT 1");
	if (!st)
		return SSC_EJOURNAL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *h = journal_col_text(st, 1);

		*seq = sqlite3_column_int64(st, 0);
		if (hex_decode(h, strlen(h), hash, 32) != 32)
			rc = SQLITE_CORRUPT;
		else
			rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
		if (journal_meta_get(j, "anchor_seq", buf, sizeof(buf)) == 0) {
			*seq = strtoll(buf, NULL, 10);
			if (journal_meta_get(j, "anchor_hash", buf, sizeof(buf)) != 0 ||
			    hex_decode(buf, strlen(buf), hash, 32) != 32)
				rc = SQLITE_CORRUPT;
		}
	}
	sqlite3_reset(st);   /* cached: reset ends its read */
	return rc == SQLITE_OK ? 0 : SSC_EJOURNAL;
}

/* r->ts and r->ts_unix from a CLOCK_REALTIME time in milliseconds (0: now). */
static void set_ts(struct jrow *r, int64_t when_ms)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (when_ms > 0) {
		ts.tv_sec = (time_t)(when_ms / 1000);
		ts.tv_nsec = (long)(when_ms % 1000) * 1000000L;
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
	}
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(r->ts, sizeof(r->ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(r->ts + n, sizeof(r->ts) - n, ".%03ldZ", ts.tv_nsec / 1000000L);
	r->ts_unix = ts.tv_sec;
}

void journal_now_ts(struct jrow *r)
{
	set_ts(r, 0);
}

/* Binds column col's parameter of an INSERT of ROW_COLUMNS to v (NULL: ""); borrowed. */
static void bind_text(sqlite3_stmt *st, enum jcol col, const char *v)
{
	sqlite3_bind_text(st, (int)col + 1, v ? v : "", -1, SQLITE_STATIC);
}

/*
 * Inserts r (seq and hash assigned here) inside the caller's transaction; hash_out (may be NULL,
 * JOURNAL_HASH_HEX + 1 bytes) receives the row's chain hash.
 */
int journal_row_insert(struct journal *j, struct jrow *r, int64_t *seq_out, char *hash_out)
{
	static const char sql[] =
		"INSERT INTO rows(" ROW_COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
	sqlite3_stmt *st;
	uint8_t prev[32];
	char hash[JOURNAL_HASH_HEX + 1];
	int64_t last;
	int rc;

	if (journal_chain_tail(j, &last, prev) < 0)
		return SSC_EJOURNAL;
	r->seq = last + 1;
	if (journal_row_hash(j, NULL, prev, r, hash) < 0)
		return SSC_ENOMEM;
	st = journal_stmt(j, JSTMT_INSERT, sql);
	if (!st)
		return SSC_EJOURNAL;
	/* Parameter i + 1 is column i (enum jcol). */
	sqlite3_bind_int64(st, JCOL_SEQ + 1, r->seq);
	bind_text(st, JCOL_TS, r->ts);
	sqlite3_bind_int64(st, JCOL_TS_UNIX + 1, r->ts_unix);
	bind_text(st, JCOL_KIND, r->kind);
	sqlite3_bind_int64(st, JCOL_UID + 1, r->uid);
	sqlite3_bind_int64(st, JCOL_PID + 1, r->pid);
	bind_text(st, JCOL_EXE, r->exe);
	bind_text(st, JCOL_METHOD, r->method);
	bind_text(st, JCOL_READER, r->reader);
	bind_text(st, JCOL_CARD, r->card);
	bind_text(st, JCOL_RESULT, r->result);
	sqlite3_bind_int64(st, JCOL_DURATION_MS + 1, r->duration_ms);
	sqlite3_bind_int64(st, JCOL_INTENT + 1, r->intent);
	bind_text(st, JCOL_FILE, r->file);
	bind_text(st, JCOL_DETAIL, r->detail);
	bind_text(st, JCOL_HASH, hash);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);   /* the bound strings are the caller's */
	if (rc != SQLITE_DONE)
		return SSC_EJOURNAL;
	if (seq_out)
		*seq_out = r->seq;
	if (hash_out)
		memcpy(hash_out, hash, sizeof(hash));
	return 0;
}

/*
 * Appends rows[0..n-1] (their times set), in order, in one transaction with the given durability
 * (full != 0: the commit is fsynced before this returns): all or none. seq_out (may be NULL)
 * receives the first row's sequence number. The observer hears of each row, or of the failure once.
 */
static int append_rows(struct journal *j, struct jrow *rows, size_t n, int full,
		       int64_t *seq_out, struct ssc_diag *diag)
{
	struct done { int64_t seq; char hash[JOURNAL_HASH_HEX + 1]; } one, *done = &one;
	struct ssc_diag local;
	size_t i;
	int ret = 0;

	if (n == 0)
		return 0;
	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	if (!diag) {
		ssc_diag_init(&local);
		diag = &local;
	}
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
	if (full && exec_sql(j, "PRAGMA synchronous=FULL", NULL) < 0) {
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
	if (ret == 0 && sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ret = journal_err(j, diag, "commit");
	if (ret < 0)
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
out_sync:
	if (full)
		exec_sql(j, "PRAGMA synchronous=NORMAL", NULL);
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
static int append(struct journal *j, struct jrow *r, int full, int64_t *seq_out,
		  struct ssc_diag *diag)
{
	journal_now_ts(r);
	return append_rows(j, r, 1, full, seq_out, diag);
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
	set_ts(r, a->when_ms);
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
	ret = append_rows(j, r, n, 0, NULL, diag);
	if (r != &one)
		free(r);
	return ret;
}

int journal_intent(struct journal *j, const struct journal_peer *peer, const char *card_ref,
		   const char *reader, const char *file, const char *detail, int64_t *intent_id,
		   struct ssc_diag *diag)
{
	struct jrow r = { 0 };

	r.kind = "intent";
	if (peer) {
		r.uid = peer->uid;
		r.pid = peer->pid;
		r.exe = peer->exe;
	}
	r.card = card_ref;
	r.reader = reader;
	r.file = file;
	r.detail = detail;
	return append(j, &r, 1, intent_id, diag);
}

/* 1 when the intent row exists, and *resolved = 1 when it already has an outcome. */
static int intent_state(struct journal *j, int64_t id, int *resolved, char *card, size_t cap)
{
	sqlite3_stmt *st;
	int found = 0;

	*resolved = 0;
	if (sqlite3_prepare_v2(j->db, "SELECT card FROM rows WHERE seq=? AND kind='intent'", -1,
			       &st, NULL) != SQLITE_OK)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		found = 1;
		snprintf(card, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (!found)
		return 0;
	if (sqlite3_prepare_v2(j->db, "SELECT 1 FROM rows WHERE intent=?1 AND intent<>0 AND kind='outcome'", -1,
			       &st, NULL) != SQLITE_OK)
		return SSC_EJOURNAL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		*resolved = 1;
	sqlite3_finalize(st);
	return 1;
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
	if (!diag) {
		ssc_diag_init(&local);
		diag = &local;
	}
	journal_now_ts(&r);
	r.kind = "outcome";
	r.intent = intent_id;
	r.result = result;
	r.method = outcome;     /* "applied" / "failed" / "partial" */
	r.detail = how;
	pthread_mutex_lock(&j->lock);
	if (!j->db) {
		ret = journal_err(j, diag, "append outcome");
		pthread_mutex_unlock(&j->lock);
		return ret;
	}
	exec_sql(j, "PRAGMA synchronous=FULL", NULL);
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out;
	}
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
		if (ret < 0)
			ret = journal_err(j, diag, "append outcome");
	}
	if (ret < 0 || sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		if (ret >= 0)
			ret = journal_err(j, diag, "commit");
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	}
out:
	exec_sql(j, "PRAGMA synchronous=NORMAL", NULL);
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
		" WHERE i.kind='intent' AND (?1 IS NULL OR i.card=?1)"
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
	if (ret == 0 && rc != SQLITE_DONE)
		ret = SSC_EJOURNAL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

int journal_append_applied(struct journal *j, const char *card_ref, const char *settlement_no)
{
	static const char sql[] =
		"SELECT 1 FROM rows i WHERE i.kind='intent' AND i.card=?1"
		" AND json_valid(i.detail) AND json_extract(i.detail, '$.op')='append'"
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
		" WHERE i.kind='intent' AND (?1 IS NULL OR i.card=?1)"
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

int journal_head(struct journal *j, int64_t *seq, char *hash_hex)
{
	uint8_t h[32];
	int r;

	pthread_mutex_lock(&j->lock);
	r = j->db ? journal_chain_tail(j, seq, h) : SSC_EJOURNAL;
	pthread_mutex_unlock(&j->lock);
	if (r == 0)
		hex_encode(h, 32, hash_hex, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	return r;
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

int journal_export(struct journal *j, int64_t since_seq, FILE *out)
{
	sqlite3_stmt *st;
	struct jrow r;
	int rc, n = 0, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db ||
	    sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE seq > ? ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	sqlite3_bind_int64(st, 1, since_seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o;
		char *line;

		journal_row_from_stmt(st, &r);
		o = json_pack("{sI ss ss sI sI ss ss ss ss ss sI ss ss}", "seq", (json_int_t)r.seq,
			      "time", r.ts, "kind", r.kind, "uid", (json_int_t)r.uid, "pid",
			      (json_int_t)r.pid, "exe", r.exe, "method", r.method, "reader", r.reader,
			      "card", r.card, "result", r.result, "duration_ms",
			      (json_int_t)r.duration_ms, "file", r.file, "hash", journal_col_text(st, JCOL_HASH));
		if (!o) {
			ret = SSC_ENOMEM;
			break;
		}
		if (r.intent)
			json_object_set_new(o, "intent", json_integer(r.intent));
		if (r.detail[0]) {
			json_t *d = json_loads(r.detail, 0, NULL);

			json_object_set_new(o, "detail", d ? d : json_string(r.detail));
		}
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (!line) {
			ret = SSC_ENOMEM;
			break;
		}
		if (fprintf(out, "%s\n", line) < 0)
			ret = SSC_EIO;
		free(line);
		if (ret < 0)
			break;
		n++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = SSC_EJOURNAL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return ret < 0 ? ret : n;
}

int journal_rows(struct journal *j, int64_t since_seq, int64_t limit,
		 int (*cb)(void *arg, const struct journal_row *row), void *arg)
{
	/* since_seq < 0: the last `limit` rows, oldest first. */
	static const char sql_since[] =
		"SELECT " ROW_COLUMNS " FROM rows WHERE seq > ?1 ORDER BY seq LIMIT ?2";
	static const char sql_last[] =
		"SELECT * FROM (SELECT " ROW_COLUMNS " FROM rows ORDER BY seq DESC LIMIT ?2)"
		" ORDER BY seq";
	struct journal_row out;
	sqlite3_stmt *st;
	struct jrow r;
	int rc, ret = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db || sqlite3_prepare_v2(j->db, since_seq < 0 ? sql_last : sql_since, -1, &st,
					 NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&j->lock);
		return SSC_EJOURNAL;
	}
	if (since_seq >= 0)
		sqlite3_bind_int64(st, 1, since_seq);
	sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		journal_row_from_stmt(st, &r);
		out.seq = r.seq;
		out.time = r.ts;
		out.kind = r.kind;
		out.uid = r.uid;
		out.pid = r.pid;
		out.exe = r.exe;
		out.method = r.method;
		out.reader = r.reader;
		out.card = r.card;
		out.result = r.result;
		out.duration_ms = r.duration_ms;
		out.intent = r.intent;
		out.file = r.file;
		out.detail = r.detail;
		out.hash = journal_col_text(st, JCOL_HASH);
		ret = cb(arg, &out);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = SSC_EJOURNAL;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

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
	int ret = 0;

	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	if (!diag) {
		ssc_diag_init(&local);
		diag = &local;
	}
	journal_now_ts(&r);
	pthread_mutex_lock(&j->lock);
	if (!j->db) {
		ret = journal_err(j, diag, "prune");
		pthread_mutex_unlock(&j->lock);
		return ret;
	}
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_unlock;
	}
	if (sqlite3_prepare_v2(j->db, last_sql, -1, &st, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "find rows to prune");
		goto out_rollback;
	}
	sqlite3_bind_int64(st, 1, cutoff);
	if (sqlite3_step(st) == SQLITE_ROW) {
		cut = sqlite3_column_int64(st, 0);
		snprintf(cut_hash, sizeof(cut_hash), "%s", journal_col_text(st, 1));
	}
	sqlite3_finalize(st);
	if (cut == 0)
		goto out_rollback; /* nothing to do */
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
	if (journal_row_insert(j, &r, &seq, hash) < 0) {
		ret = journal_err(j, diag, "append prune row");
		goto out_rollback;
	}
	if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "commit");
		goto out_rollback;
	}
	pthread_mutex_unlock(&j->lock);
	journal_notify_row(j, &r, seq, hash);
	return (int)deleted;

out_rollback:
	sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
out_unlock:
	pthread_mutex_unlock(&j->lock);
	if (ret < 0)
		journal_notify(j, "prune", 0, "", ret, diag);
	return ret;
}
