/*
 * This file contains the journal's key (src/journal.h): the key file (32 random bytes, created
 * with a new journal, held open with a shared lock while the journal is open), the proof that a
 * key file belongs to the chain it is asked to extend (the key's id in meta and the last row's
 * hash), earlier keys for verifying rows written before a rotation, and the operator's key
 * rotation, which re-keys the lost-card list and links the new chain to the old head.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hex.h"
#include "journal_int.h"

/*
 * The keys of one master key: labels fixed for ever (they name the derivation). Returns 0, or
 * SSC_ENOMEM (k wiped) when OpenSSL cannot compute them.
 */
static int keys_derive(const uint8_t master[JOURNAL_KEY_LEN], struct journal_keys *k)
{
	static const char chain[] = "sscard journal chain v1", ref[] = "sscard journal ref v1",
			  id[] = "sscard journal key id v1";
	uint8_t mac[32];
	int r;

	r = journal_hmac(master, (const uint8_t *)chain, strlen(chain), k->chain_key);
	if (r == 0)
		r = journal_hmac(master, (const uint8_t *)ref, strlen(ref), k->ref_key);
	if (r == 0)
		r = journal_hmac(master, (const uint8_t *)id, strlen(id), mac);
	if (r == 0)
		hex_encode(mac, JOURNAL_KEY_ID_HEX / 2, k->id, JOURNAL_KEY_ID_HEX + 1, HEX_LOWER);
	else
		OPENSSL_cleanse(k, sizeof(*k));
	OPENSSL_cleanse(mac, sizeof(mac));
	return r < 0 ? SSC_ENOMEM : 0;
}

void journal_keys_wipe(struct journal_keys *keys)
{
	OPENSSL_cleanse(keys, sizeof(*keys));
}

/* Reads exactly JOURNAL_KEY_LEN bytes from fd (at offset 0) and nothing more. */
static int key_read(int fd, const char *path, uint8_t key[JOURNAL_KEY_LEN], struct ssc_diag *diag)
{
	uint8_t extra;
	ssize_t n = pread(fd, key, JOURNAL_KEY_LEN, 0);

	if (n != JOURNAL_KEY_LEN || pread(fd, &extra, 1, JOURNAL_KEY_LEN) != 0) {
		OPENSSL_cleanse(key, JOURNAL_KEY_LEN);
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: key file %s is not %d bytes", path,
				    JOURNAL_KEY_LEN);
	}
	return 0;
}

/* Creates path exclusively (0600, never through a link) holding key, fsynced. */
static int key_write_new(const char *path, const uint8_t key[JOURNAL_KEY_LEN], int *fd_out,
			 struct ssc_diag *diag)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot create key file %s: %s", path,
				    strerror(errno));
	if (write(fd, key, JOURNAL_KEY_LEN) != JOURNAL_KEY_LEN || fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot write key file %s", path);
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return 0;
}

int journal_key_load(const char *path, int create, struct journal_keys *keys, int *fd_out,
		     int *created, struct ssc_diag *diag)
{
	uint8_t master[JOURNAL_KEY_LEN];
	int fd, r;

	*created = 0;
	*fd_out = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		if (RAND_bytes(master, JOURNAL_KEY_LEN) != 1)
			return ssc_diag_set(diag, SSC_EJOURNAL, "journal: no random bytes for a key");
		r = key_write_new(path, master, &fd, diag);
		if (r < 0) {
			OPENSSL_cleanse(master, sizeof(master));
			return r;
		}
		*created = 1;
	} else if (fd < 0 && errno == ENOENT) {
		/*
		 * The journal exists (or is only to be read): a new key here would start a new
		 * chain that nothing links to the old one.
		 */
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file %s is missing but the "
				    "journal exists: restore the key file (a new key would start a "
				    "new chain)", path);
	} else if (fd < 0) {
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot open key file %s: %s", path,
				    strerror(errno));
	} else if ((r = key_read(fd, path, master, diag)) < 0) {
		close(fd);
		return r;
	}
	/* Shared: any number of users; journal_rotate_key() needs it alone. */
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		r = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file %s is locked: a key "
				 "rotation (sscardctl journal rotate-key) is under way", path);
		close(fd);
		OPENSSL_cleanse(master, sizeof(master));
		return r;
	}
	r = keys_derive(master, keys);
	OPENSSL_cleanse(master, sizeof(master));
	if (r < 0) {
		close(fd);
		return ssc_diag_set(diag, r, "journal: out of memory deriving the keys of %s", path);
	}
	*fd_out = fd;
	return 0;
}

int journal_key_check(struct journal *j, struct ssc_diag *diag)
{
	char id[64], buf[32];
	struct ssc_diag why;
	sqlite3_stmt *st;
	int64_t last = 0;
	int have_id, rc;

	rc = journal_meta_get(j, "key_id", id, sizeof(id));
	if (rc != 0 && rc != SSC_ENOTFOUND)
		return journal_err(j, diag, "read the key id");
	have_id = rc == 0;
	if (have_id && strcmp(id, j->key_id) != 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file %.120s is not this "
				    "journal's key (it holds key %s, the journal is under key %.16s): "
				    "restore the journal's key file",
				    j->key_path, j->key_id, id);
	if (sqlite3_prepare_v2(j->db, "SELECT max(seq) FROM rows", -1, &st, NULL) != SQLITE_OK)
		return journal_err(j, diag, "read the last row");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		last = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return journal_err(j, diag, "read the last row");
	if (last == 0) {
		/* No row: a new journal, or every row deleted (a prune always leaves its own). */
		if (journal_meta_get(j, "anchor_seq", buf, sizeof(buf)) == 0)
			return ssc_diag_set(diag, SSC_EJOURNAL, "journal: no row after the retention "
					    "anchor (row %s): the rows were deleted", buf);
		return 0;
	}
	ssc_diag_init(&why);
	rc = journal_row_check(j, last, &why);
	if (rc == 0)
		return 0;
	if (rc < 0)   /* not checked (a failing database, no memory): no verdict on the key */
		return ssc_diag_set(diag, rc, "%s", why.msg[0] ? why.msg : ssc_strerror(rc));
	if (have_id)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the last row (%" PRId64 ") does not "
				    "match its chain hash: the journal was changed outside sscard "
				    "(sscardctl journal verify)", last);
	return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file %.120s does not verify the "
			    "journal's last row (%" PRId64 "): the key file was replaced (or the row "
			    "edited); restore the journal's key file", j->key_path, last);
}

int journal_add_old_key(struct journal *j, const char *path, struct ssc_diag *diag)
{
	uint8_t master[JOURNAL_KEY_LEN];
	struct journal_keys k;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot open key file %s: %s", path,
				    strerror(errno));
	r = key_read(fd, path, master, diag);
	close(fd);
	if (r < 0)
		return r;
	r = keys_derive(master, &k);
	OPENSSL_cleanse(master, sizeof(master));
	if (r < 0)
		return ssc_diag_set(diag, r, "journal: out of memory deriving the keys of %s", path);
	pthread_mutex_lock(&j->lock);
	if (strcmp(k.id, j->key_id) == 0 || journal_old_keys(j, k.id)) {
		r = 0;   /* known already */
	} else if (j->n_old == JOURNAL_OLD_KEYS) {
		r = ssc_diag_set(diag, SSC_EINVAL, "journal: at most %d earlier keys",
				 JOURNAL_OLD_KEYS);
	} else {
		j->old[j->n_old++] = k;
		r = 0;
	}
	pthread_mutex_unlock(&j->lock);
	journal_keys_wipe(&k);
	return r;
}

void journal_key_id(struct journal *j, char *out)
{
	pthread_mutex_lock(&j->lock);
	memcpy(out, j->key_id, JOURNAL_KEY_ID_HEX + 1);
	pthread_mutex_unlock(&j->lock);
}

/* ---- rotation ---------------------------------------------------------------------------- */

struct rekey_ctx {
	struct journal *j;
	const uint8_t *new_ref_key;
	sqlite3_stmt *ins;
	int rc;
};

/* One line of the operator's list: its ref under the old key and under the new one. */
static int rekey_line(void *arg, const char *label, const char *value)
{
	struct rekey_ctx *c = arg;
	char old_ref[JOURNAL_REF_HEX + 1], new_ref[JOURNAL_REF_HEX + 1];
	uint8_t buf[64], mac[32];
	size_t ll = strlen(label), vl = strlen(value);
	int r;

	if (ll + 1 + vl > sizeof(buf))
		return SSC_EINVAL;
	journal_keyed_ref(c->j, label, (const uint8_t *)value, vl, old_ref);
	/* The same construction as journal_keyed_ref(), under the new ref key. */
	memcpy(buf, label, ll);
	buf[ll] = 0;
	memcpy(buf + ll + 1, value, vl);
	r = journal_hmac(c->new_ref_key, buf, ll + 1 + vl, mac);
	if (r == 0)
		hex_encode(mac, JOURNAL_REF_HEX / 2, new_ref, JOURNAL_REF_HEX + 1, HEX_LOWER);
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(mac, sizeof(mac));
	if (r < 0 || strcmp(old_ref, JOURNAL_REF_NONE) == 0)
		return SSC_ENOMEM;
	sqlite3_reset(c->ins);
	/* A copy of each ref (SQLITE_TRANSIENT) may fail: never step with a NULL in its place. */
	if (sqlite3_bind_text(c->ins, 1, old_ref, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(c->ins, 2, new_ref, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(c->ins, 3, strcmp(label, "bl-id") == 0 ? "id" : "number", -1,
			      SQLITE_STATIC) != SQLITE_OK)
		return SSC_ENOMEM;
	if (sqlite3_step(c->ins) != SQLITE_DONE)
		return SSC_EJOURNAL;
	return 0;
}

static int64_t count_sql(struct journal *j, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/*
 * Gives the file open in fd (at path) the owner and group of the journal's key file: a rotation
 * run as root must leave a key that the daemon's user can still read.
 */
static int key_owner(struct journal *j, int fd, const char *path, struct ssc_diag *diag)
{
	struct stat st;

	if (fstat(j->key_fd, &st) != 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: %s: %s", j->key_path,
				    strerror(errno));
	if ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid))
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot give %.200s the key file's "
				    "owner (uid %ld, gid %ld): %s. Run it as root or as that user",
				    path, (long)st.st_uid, (long)st.st_gid, strerror(errno));
	return 0;
}

/* Keeps a copy of the current key file (its bytes, from the open fd; its owner) at path. */
static int key_keep_old(struct journal *j, const char *path, struct ssc_diag *diag)
{
	uint8_t key[JOURNAL_KEY_LEN];
	int fd = -1, r = key_read(j->key_fd, j->key_path, key, diag);

	if (r == 0)
		r = key_write_new(path, key, &fd, diag);
	OPENSSL_cleanse(key, sizeof(key));
	if (r == 0 && (r = key_owner(j, fd, path, diag)) < 0)
		unlink(path);
	if (fd >= 0)
		close(fd);
	return r;
}

/* fsync() of the directory holding path, so that a rename in it is durable. */
static void dir_sync(const char *path)
{
	char d[1100];
	int fd;

	snprintf(d, sizeof(d), "%s", path);
	fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* The lost-card list re-keyed (from the temp table rekey) and the key row, in one transaction. */
static int rotate_commit(struct journal *j, const struct journal_keys *nk,
			 struct journal_rotation *out, struct ssc_diag *diag)
{
	struct journal_keys old;
	char detail[512], list[160], head[JOURNAL_HASH_HEX + 1];
	uint8_t prev[32];
	struct jrow r = { 0 };
	int64_t seq = 0;
	int ret = 0;

	memcpy(old.chain_key, j->chain_key, 32);
	memcpy(old.ref_key, j->ref_key, 32);
	memcpy(old.id, j->key_id, sizeof(old.id));
	if (sqlite3_exec(j->db,
			 "UPDATE blacklist SET kind = (SELECT kind FROM temp.rekey WHERE old = ref),"
			 " ref = (SELECT new FROM temp.rekey WHERE old = ref)",
			 NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "re-key the lost-card list");
	if (journal_chain_tail(j, &out->old_head_seq, prev) < 0)
		return journal_err(j, diag, "read the chain head");
	hex_encode(prev, 32, head, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	memcpy(out->old_head_hash, head, sizeof(head));
	if (journal_meta_set(j, "key_id", nk->id) < 0)
		return journal_err(j, diag, "record the key id");
	/* From here on the handle hashes under the new key (undone on failure). */
	ret = journal_use_keys(j, nk);
	if (ret < 0)
		return ssc_diag_set(diag, ret, "journal: cannot set up the new key");
	if (journal_list_detail(j, list, sizeof(list)) < 0) {
		ret = journal_err(j, diag, "digest the lost-card list");
		goto out_undo;
	}
	snprintf(detail, sizeof(detail),
		 "{\"old_key_id\":\"%s\",\"key_id\":\"%s\",\"old_head_seq\":%" PRId64
		 ",\"old_head_hash\":\"%s\"%s}",
		 old.id, nk->id, out->old_head_seq, head, list);
	journal_now_ts(&r);
	journal_own_row(&r, "key", "journal.rotate_key", detail);
	if (journal_row_insert(j, &r, &seq, NULL) < 0) {
		ret = journal_err(j, diag, "append the key row");
		goto out_undo;
	}
	out->key_row_seq = seq;
	journal_keys_wipe(&old);
	return 0;

out_undo:
	journal_use_keys(j, &old);
	journal_keys_wipe(&old);
	return ret;
}

int journal_rotate_key(struct journal *j, FILE *lost, struct journal_rotation *out,
		       struct ssc_diag *diag)
{
	struct journal_report rep;
	struct journal_keys nk = { 0 };
	struct rekey_ctx c = { 0 };
	uint8_t master[JOURNAL_KEY_LEN];
	char newpath[1100], oldpath[1100] = "";
	int64_t entries, missing;
	int ret, lines = 0, pending, new_fd = -1;

	memset(out, 0, sizeof(*out));
	if (j->flags & JOURNAL_RDONLY)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: opened read-only");
	/* Alone: no daemon, no other sscardctl may hold the key while it changes. */
	if (flock(j->key_fd, LOCK_EX | LOCK_NB) != 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: the key file %.200s is in use: "
				    "stop sscardd first (and any other sscardctl on this journal)",
				    j->key_path);
	/* Never launder a broken journal into a chain that verifies. */
	ret = journal_verify_report(j, 0, NULL, &rep, diag);
	if (ret < 0)
		goto out_shared;
	pending = journal_pending_count(j, NULL);
	if (pending != 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, pending < 0 ? "journal: cannot count the "
				   "pending write intents" : "journal: %d write intent(s) are pending: "
				   "start sscardd and let their cards be read back first", pending);
		goto out_shared;
	}
	/* The settlement queue names its cards by keyed refs too: empty it first. */
	pending = journal_medq_open_count(j);
	if (pending != 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, pending < 0 ? "journal: cannot count the "
				   "offline settlements" : "journal: %d offline settlement(s) or "
				   "card flag(s) are still open: upload and acknowledge them "
				   "(medical.acknowledge) and clear the flags (medical.clear_flag) "
				   "first", pending);
		goto out_shared;
	}
	snprintf(newpath, sizeof(newpath), "%s.new", j->key_path);
	if (access(newpath, F_OK) == 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: %.200s exists: an earlier rotation "
				   "was interrupted (docs/operations.md)", newpath);
		goto out_shared;
	}
	if (RAND_bytes(master, sizeof(master)) != 1) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: no random bytes for a key");
		goto out_shared;
	}
	if (keys_derive(master, &nk) < 0) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory deriving the new keys");
		goto out_shared;
	}
	snprintf(out->old_key_id, sizeof(out->old_key_id), "%s", j->key_id);
	snprintf(out->new_key_id, sizeof(out->new_key_id), "%s", nk.id);

	pthread_mutex_lock(&j->lock);
	if (sqlite3_exec(j->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "begin");
		goto out_unlock;
	}
	/* The operator's list, matched to the entries by their refs under the old key. */
	if (sqlite3_exec(j->db, "CREATE TEMP TABLE rekey(old TEXT PRIMARY KEY, new TEXT NOT NULL,"
			 " kind TEXT NOT NULL)", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, "INSERT OR IGNORE INTO temp.rekey(old, new, kind)"
			       " VALUES(?, ?, ?)", -1, &c.ins, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "prepare the re-keying");
		goto out_rollback;
	}
	c.j = j;
	c.new_ref_key = nk.ref_key;
	if (lost) {
		ret = journal_list_read(lost, rekey_line, &c, &lines, diag);
		if (ret < 0)
			goto out_rollback;
	}
	entries = count_sql(j, "SELECT count(*) FROM blacklist");
	missing = count_sql(j, "SELECT count(*) FROM blacklist WHERE ref NOT IN"
			       " (SELECT old FROM temp.rekey)");
	if (entries < 0 || missing < 0) {
		ret = journal_err(j, diag, "match the lost-card list");
		goto out_rollback;
	}
	if (missing > 0 && !lost) {
		ret = ssc_diag_set(diag, SSC_EINVAL, "journal: the lost-card list holds %" PRId64
				   " entries, and no list was given to re-key them: it holds keyed "
				   "names only. Give every list imported (nothing was changed)",
				   entries);
		goto out_rollback;
	}
	if (missing > 0) {
		ret = ssc_diag_set(diag, SSC_EINVAL, "journal: %" PRId64 " of the %" PRId64
				   " lost-card entries are not in the list given: the list holds "
				   "keyed names only, and a card it cannot name again would be "
				   "dropped. Give every list imported (nothing was changed)",
				   missing, entries);
		goto out_rollback;
	}
	out->entries = entries;
	out->ignored = (int)(count_sql(j, "SELECT count(*) FROM temp.rekey") - entries);
	snprintf(oldpath, sizeof(oldpath), "%s.old-%s", j->key_path, j->key_id);
	snprintf(out->old_key_path, sizeof(out->old_key_path), "%s", oldpath);
	ret = key_keep_old(j, oldpath, diag);
	if (ret < 0)
		goto out_rollback;
	ret = key_write_new(newpath, master, &new_fd, diag);
	if (ret == 0)
		ret = key_owner(j, new_fd, newpath, diag);
	if (ret < 0)
		goto out_unlink;
	ret = rotate_commit(j, &nk, out, diag);
	if (ret < 0)
		goto out_unlink;
	if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = journal_err(j, diag, "commit");
		journal_rollback(j);
		goto out_unlink_keys;
	}
	sqlite3_finalize(c.ins);
	sqlite3_exec(j->db, "DROP TABLE temp.rekey", NULL, NULL, NULL);
	sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	/* The journal is under the new key: put its file in place. */
	if (rename(newpath, j->key_path) != 0) {
		ret = ssc_diag_set(diag, SSC_EJOURNAL, "journal: the journal is under key %s, kept in "
				   "%.200s, but it cannot replace the key file: %s. Rename it "
				   "yourself", nk.id, newpath, strerror(errno));
		close(new_fd);
		pthread_mutex_unlock(&j->lock);
		journal_keys_wipe(&nk);
		OPENSSL_cleanse(master, sizeof(master));
		return ret;
	}
	dir_sync(j->key_path);
	close(j->key_fd);
	j->key_fd = new_fd;
	(void)flock(new_fd, LOCK_SH);
	pthread_mutex_unlock(&j->lock);
	journal_keys_wipe(&nk);
	OPENSSL_cleanse(master, sizeof(master));
	return 0;

out_unlink_keys:
	{
		struct journal_keys back;

		/* The commit failed: the handle goes back to the old key (the old key's file). */
		uint8_t okey[JOURNAL_KEY_LEN];

		if (key_read(j->key_fd, j->key_path, okey, NULL) == 0 &&
		    keys_derive(okey, &back) == 0) {
			journal_use_keys(j, &back);
			journal_keys_wipe(&back);
		}
		OPENSSL_cleanse(okey, sizeof(okey));
	}
out_unlink:
	if (new_fd >= 0) {
		close(new_fd);
		unlink(newpath);
	}
	unlink(oldpath);
out_rollback:
	sqlite3_finalize(c.ins);
	journal_rollback(j);
	sqlite3_exec(j->db, "DROP TABLE IF EXISTS temp.rekey", NULL, NULL, NULL);
out_unlock:
	sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	pthread_mutex_unlock(&j->lock);
out_shared:
	(void)flock(j->key_fd, LOCK_SH);   /* back to one user among others */
	journal_keys_wipe(&nk);
	OPENSSL_cleanse(master, sizeof(master));
	return ret;
}
