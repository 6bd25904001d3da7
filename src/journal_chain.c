/*
 * This file contains the journal's HMAC chain (src/journal_int.h): the keyed MAC contexts, the
 * serialisation of a row for its hash, a row's hash from its predecessor's, the chain's end (the
 * last row or the retention anchor), and the insertion of a row at that end. A change of keys
 * wipes the memo of keyed names (src/journal_ref.c), made under the keys before.
 */
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hex.h"
#include "invariant.h"
#include "journal_int.h"

int journal_hmac(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int olen = 32;

	/* HMAC() allocates: it fails when OpenSSL has no memory, and out is then not written. */
	if (!HMAC(EVP_sha256(), key, 32, data, len, out, &olen) || olen != 32)
		return -1;
	return 0;
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
int journal_mac(struct journal *j, EVP_MAC_CTX *base, const uint8_t key[32],
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
		return 0;
	}
	EVP_MAC_CTX_free(c);
	return journal_hmac(key, data, len, out);
}

void journal_memo_clear(struct journal *j)
{
	OPENSSL_cleanse(j->memo, sizeof(j->memo));
	memset(j->memo, 0, sizeof(j->memo));
	j->memo_next = 0;
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
	journal_memo_clear(j);
	pthread_mutex_unlock(&j->mac_lock);
	return 0;
}

void journal_field_len(uint8_t hdr[8], size_t n)
{
	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
}

/* Serialises one field for the chain: 8-byte big-endian length, then the bytes. */
static int ser_put(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	uint8_t hdr[8];

	journal_field_len(hdr, n);
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
		e = journal_hmac(chain_key, b, l, mac);
	else
		e = journal_mac(j, j->chain_mac, j->chain_key, b, l, mac);
	free(b);
	if (e < 0)
		return SSC_ENOMEM;   /* never a row under a hash that was not computed */
	hex_encode(mac, 32, hex, JOURNAL_HASH_HEX + 1, HEX_LOWER);
	return 0;
}

int journal_row_check(struct journal *j, int64_t seq, struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	char hash[JOURNAL_HASH_HEX + 1], stored[JOURNAL_HASH_HEX + 1], buf[80];
	uint8_t prev[32];
	struct jrow r;
	int found = 0, rc, ret = 0;

	memset(prev, 0, sizeof(prev));
	if (seq > 1) {
		/* The predecessor: the row before, or the retention anchor, which names its hash. */
		if (sqlite3_prepare_v2(j->db, "SELECT hash FROM rows WHERE seq = ?", -1, &st,
				       NULL) != SQLITE_OK)
			return journal_err(j, diag, "read a row");
		sqlite3_bind_int64(st, 1, seq - 1);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *h = journal_col_text(st, 0);

			found = hex_decode(h, strlen(h), prev, 32) == 32;
		} else if (rc != SQLITE_DONE) {
			ret = journal_err(j, diag, "read a row");
		} else if ((ret = journal_meta_get(j, "anchor_seq", buf, sizeof(buf))) == 0 &&
			   strtoll(buf, NULL, 10) == seq - 1 &&
			   (ret = journal_meta_get(j, "anchor_hash", buf, sizeof(buf))) == 0) {
			found = hex_decode(buf, strlen(buf), prev, 32) == 32;
		}
		sqlite3_finalize(st);
		if (ret == SSC_EJOURNAL)
			return journal_err(j, diag, "read a row");
		if (ret < 0 && ret != SSC_ENOTFOUND)
			return ret;
		if (!found) {
			ssc_diag_set(diag, SSC_EJOURNAL, "journal: the row before row %" PRId64
				     " is missing", seq);
			return JOURNAL_ROW_BAD;
		}
	}
	if (sqlite3_prepare_v2(j->db, "SELECT " ROW_COLUMNS " FROM rows WHERE seq = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return journal_err(j, diag, "read a row");
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? JOURNAL_ROW_BAD : journal_err(j, diag, "read a row");
		sqlite3_finalize(st);
		if (ret == JOURNAL_ROW_BAD)
			ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " is missing", seq);
		return ret;
	}
	journal_row_from_stmt(st, &r);
	snprintf(stored, sizeof(stored), "%s", journal_col_text(st, JCOL_HASH));
	if (journal_row_hash(j, NULL, prev, &r, hash) < 0) {
		ret = ssc_diag_set(diag, SSC_ENOMEM, "journal: out of memory checking row %" PRId64,
				   seq);
	} else if (strcmp(hash, stored) != 0) {
		ssc_diag_set(diag, SSC_EJOURNAL, "journal: row %" PRId64 " does not match its chain "
			     "hash", seq);
		ret = JOURNAL_ROW_BAD;
	}
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
void journal_set_ts(struct jrow *r, int64_t when_ms)
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
	journal_set_ts(r, 0);
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

	/* Only a writable handle with its database open extends the chain (its callers check). */
	if (NEVER(j->db == NULL) || NEVER(j->flags & JOURNAL_RDONLY))
		return SSC_EJOURNAL;
	if (journal_chain_tail(j, &last, prev) < 0)
		return SSC_EJOURNAL;
	/* The head advances one row at a time, from where the chain ends now. */
	INVARIANT(last >= 0);
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

void journal_own_row(struct jrow *r, const char *kind, const char *method, const char *detail)
{
	r->kind = kind;
	r->method = method;
	r->uid = getuid();
	r->pid = getpid();
	r->result = "SSC_OK";
	r->detail = detail;
}

int journal_row_commit(struct journal *j, struct jrow *r, const char *what, int64_t *seq_out,
		       char *hash_out, struct ssc_diag *diag)
{
	if (journal_row_insert(j, r, seq_out, hash_out) < 0)
		return journal_err(j, diag, what);
	if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return journal_err(j, diag, "commit");
	return 0;
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
