/*
 * This file contains the journal's database lifecycle (src/journal.h): the schema, opening (with
 * the checks and the migration a writable open makes), suspending and resuming the database
 * under a handle that stays valid, the room probe, and closing. The chain, the appends and the
 * queries are in the other journal_*.c files (src/journal_int.h); what they all use on the
 * database (errors, statements, the meta table, the observer's notes) in src/journal_db.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "invariant.h"
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
	"CREATE INDEX IF NOT EXISTS rows_request ON rows(" JOURNAL_REQUEST_EXPR ")"
	" WHERE kind = 'intent';"
	"CREATE INDEX IF NOT EXISTS rows_list ON rows(seq)"
	" WHERE kind IN ('blacklist', 'prune', 'key');"
	/* Schema 1 had (ref, added) only: journal_list_migrate() adds the other two. */
	"CREATE TABLE IF NOT EXISTS blacklist(ref TEXT PRIMARY KEY, added TEXT NOT NULL,"
	" kind TEXT NOT NULL DEFAULT '', uid INTEGER NOT NULL DEFAULT -1);"
	/*
	 * The offline settlements queued for upload (journal_medq.c), and the cards whose DF04/EF06
	 * flag this desk set and has not cleared: outside the chain, and the one place that holds
	 * personal data in clear (card number, 卡识别码, the transaction) until acknowledged
	 * (docs/security.md). AUTOINCREMENT: an id is never given twice, even after retention.
	 */
	"CREATE TABLE IF NOT EXISTS medq(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" intent INTEGER NOT NULL UNIQUE, request_id TEXT NOT NULL, card TEXT NOT NULL,"
	" card_number TEXT NOT NULL, card_id TEXT NOT NULL, settlement_no TEXT NOT NULL,"
	" txn TEXT NOT NULL, state TEXT NOT NULL, created TEXT NOT NULL,"
	" created_unix INTEGER NOT NULL, queued TEXT NOT NULL DEFAULT '',"
	" acked TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS medq_settlement ON medq(settlement_no);"
	"CREATE INDEX IF NOT EXISTS medq_card ON medq(card);"
	"CREATE TABLE IF NOT EXISTS medflag(card TEXT PRIMARY KEY, card_number TEXT NOT NULL,"
	" card_id TEXT NOT NULL, since TEXT NOT NULL);";

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
		return ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory");
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
		journal_rollback(j);
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
		r = journal_exec(j, "PRAGMA journal_mode=WAL", diag);
		if (r < 0)
			goto out_close;
		r = journal_exec(j, "PRAGMA synchronous=NORMAL", diag);
		if (r < 0)
			goto out_close;
		r = journal_exec(j, schema_sql, diag);
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
	INVARIANT(j->db == NULL);   /* suspended: every call that needs the database fails */
	snprintf(j->why, sizeof(j->why), "%s", why ? why : "");
	pthread_mutex_unlock(&j->lock);
}

int journal_resume(struct journal *j, struct ssc_diag *diag)
{
	int r = 0;

	pthread_mutex_lock(&j->lock);
	if (!j->db)
		r = db_open(j, diag);
	INVARIANT((r == 0) == (j->db != NULL));   /* resumed, or still suspended */
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
	journal_memo_clear(j);
	EVP_MAC_CTX_free(j->chain_mac);   /* frees the keyed state with it */
	EVP_MAC_CTX_free(j->ref_mac);
	pthread_mutex_destroy(&j->mac_lock);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
