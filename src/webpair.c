/*
 * This file contains the browser pairings (src/webpair.h): codes in memory (only their SHA-256),
 * tokens as SHA-256 hashes in the table web_pairing of the journal's database, reached through a
 * SQLite connection of our own so that the journal's chain and its files are left as they are.
 * A token is 256 random bits, so its plain hash is as good as a keyed one; a code is 50 bits and
 * lives 5 minutes with at most WEBPAIR_FAIL_MAX wrong tries a minute.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "webpair.h"

/* Crockford's base 32: no I, L, O, U, so that a code read aloud or typed is not mistaken. */
static const char code_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

struct webpair_code {
	int used;                    /* 0 = free slot */
	char origin[ORIGIN_MAX];
	uint8_t hash[32];            /* SHA-256 of the code's 10 symbols */
	int64_t expires_ms;
};

struct webpair {
	char *db_path;
	sqlite3 *db;                 /* NULL until first use, or after a failure */
	struct webpair_code codes[WEBPAIR_MAX_CODES];
	int64_t fail_ms[WEBPAIR_FAIL_MAX]; /* times of the last wrong codes (a ring) */
	unsigned fail_next;
	unsigned generation;
	int code_ttl_ms;
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS web_pairing ("
	" token_hash TEXT PRIMARY KEY, origin TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS web_pairing_origin ON web_pairing(origin);";

int webpair_new(const char *db_path, int code_ttl_ms, struct webpair **out)
{
	struct webpair *wp = calloc(1, sizeof(*wp));

	if (!wp)
		return SSC_ENOMEM;
	wp->db_path = strdup(db_path ? db_path : "");
	if (!wp->db_path) {
		free(wp);
		return SSC_ENOMEM;
	}
	wp->code_ttl_ms = code_ttl_ms;
	*out = wp;
	return 0;
}

int webpair_code_ttl_ms(const struct webpair *wp)
{
	return wp->code_ttl_ms;
}

void webpair_free(struct webpair *wp)
{
	if (!wp)
		return;
	sqlite3_close(wp->db);
	OPENSSL_cleanse(wp->codes, sizeof(wp->codes));
	free(wp->db_path);
	free(wp);
}

unsigned webpair_generation(const struct webpair *wp)
{
	return wp->generation;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;

	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void hash_hex(const uint8_t h[32], char out[65])
{
	hex_encode(h, 32, out, 65, HEX_LOWER);
}

/* Forgets a database connection that failed, so that the next call opens it again. */
static int db_fail(struct webpair *wp, struct ssc_diag *diag, const char *what)
{
	ssc_diag_set(diag, SSC_EJOURNAL, "the pairing store in the journal database is unavailable "
		     "(%s: %s)", what, wp->db ? sqlite3_errmsg(wp->db) : "not opened");
	sqlite3_close(wp->db);
	wp->db = NULL;
	return SSC_EJOURNAL;
}

/* Opens the journal's database (it must exist: the journal creates it) and our table. */
static int db_open(struct webpair *wp, struct ssc_diag *diag)
{
	if (wp->db)
		return 0;
	if (!wp->db_path[0])
		return ssc_diag_set(diag, SSC_EJOURNAL, "no journal is configured: pairings are "
				    "kept in the journal's database");
	if (sqlite3_open_v2(wp->db_path, &wp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
			    NULL) != SQLITE_OK)
		return db_fail(wp, diag, "open");
	sqlite3_busy_timeout(wp->db, WEBPAIR_BUSY_MS);
	if (sqlite3_exec(wp->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(wp, diag, "create the table web_pairing");
	return 0;
}

int webpair_code(struct webpair *wp, const char *origin, int64_t now_ms, char *code,
		 struct ssc_diag *diag)
{
	uint8_t rnd[10];
	char sym[10];
	const char *why;
	struct webpair_code *slot = NULL;

	if (origin_check(origin, &why) != 0)
		return ssc_diag_set(diag, SSC_EINVAL, "\"origin\": not an origin as a browser sends "
				    "it (%s)", why);
	for (int i = 0; i < WEBPAIR_MAX_CODES; i++) {
		struct webpair_code *c = &wp->codes[i];

		if (c->used && c->expires_ms <= now_ms)
			OPENSSL_cleanse(c, sizeof(*c));
		if (!c->used && !slot)
			slot = c;
	}
	if (!slot)
		return ssc_diag_set(diag, SSC_ELIMIT, "%d pairing codes are waiting already: use them "
				    "or let them expire", WEBPAIR_MAX_CODES);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes for a pairing code");
	for (int i = 0; i < 10; i++)
		sym[i] = code_alphabet[rnd[i] & 31];
	slot->used = 1;
	snprintf(slot->origin, sizeof(slot->origin), "%s", origin);
	sha256(sym, sizeof(sym), slot->hash);
	slot->expires_ms = now_ms + wp->code_ttl_ms;
	memcpy(code, sym, 5);
	code[5] = '-';
	memcpy(code + 6, sym + 5, 5);
	code[11] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(sym, sizeof(sym));
	return 0;
}

/* Counts a wrong code; whether the window is full already (then nothing is even looked at). */
static int fail_limited(const struct webpair *wp, int64_t now_ms)
{
	int n = 0;

	for (int i = 0; i < WEBPAIR_FAIL_MAX; i++)
		if (wp->fail_ms[i] && now_ms - wp->fail_ms[i] < WEBPAIR_FAIL_WINDOW_MS)
			n++;
	return n >= WEBPAIR_FAIL_MAX;
}

static void fail_note(struct webpair *wp, int64_t now_ms)
{
	wp->fail_ms[wp->fail_next] = now_ms ? now_ms : 1;
	wp->fail_next = (wp->fail_next + 1) % WEBPAIR_FAIL_MAX;
}

/* The code's 10 symbols from what a person typed (case, '-' and spaces ignored); -1 if not. */
static int code_normalise(const char *in, char out[10])
{
	int n = 0;

	for (const char *p = in; *p; p++) {
		char c = *p;

		if (c == '-' || c == ' ')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (!strchr(code_alphabet, c) || c == '\0' || n == 10)
			return -1;
		out[n++] = c;
	}
	return n == 10 ? 0 : -1;
}

static int store_token(struct webpair *wp, const char *origin, const uint8_t hash[32],
		       int64_t now_ms, struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	char hx[65];
	int rc, count = 0;

	if (db_open(wp, diag) < 0)
		return SSC_EJOURNAL;
	if (sqlite3_prepare_v2(wp->db, "SELECT count(*) FROM web_pairing WHERE origin = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return db_fail(wp, diag, "count");
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		count = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (count >= WEBPAIR_MAX_TOKENS)
		return ssc_diag_set(diag, SSC_ELIMIT, "%s has %d paired pages already: revoke them "
				    "first (sscardctl web revoke)", origin, count);
	hash_hex(hash, hx);
	if (sqlite3_prepare_v2(wp->db, "INSERT INTO web_pairing (token_hash, origin, created_ms)"
			       " VALUES (?1, ?2, ?3)", -1, &st, NULL) != SQLITE_OK)
		return db_fail(wp, diag, "insert");
	sqlite3_bind_text(st, 1, hx, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(wp, diag, "insert");
	return 0;
}

int webpair_redeem(struct webpair *wp, const char *origin, const char *code, int64_t now_ms,
		   char *token, uint8_t hash[32], struct ssc_diag *diag)
{
	char sym[10];
	uint8_t h[32], raw[32];
	struct webpair_code *found = NULL;
	int expired = 0, other = 0, rc;

	if (fail_limited(wp, now_ms))
		return ssc_diag_set(diag, SSC_ELIMIT, "too many wrong pairing codes in the last "
				    "minute (at most %d): wait a minute and try again",
				    WEBPAIR_FAIL_MAX);
	if (code_normalise(code, sym) != 0) {
		fail_note(wp, now_ms);
		return ssc_diag_set(diag, SSC_EBADCODE, "not a pairing code (10 letters and digits, "
				    "as sscardctl web pair printed it)");
	}
	sha256(sym, sizeof(sym), h);
	OPENSSL_cleanse(sym, sizeof(sym));
	for (int i = 0; i < WEBPAIR_MAX_CODES; i++) {
		struct webpair_code *c = &wp->codes[i];

		if (!c->used || CRYPTO_memcmp(c->hash, h, 32) != 0)
			continue;
		if (strcmp(c->origin, origin) != 0)
			other = 1;
		else if (c->expires_ms <= now_ms)
			expired = 1;
		else
			found = c;
	}
	if (!found) {
		fail_note(wp, now_ms);
		return ssc_diag_set(diag, SSC_EBADCODE, "%s", expired ?
				    "the pairing code has expired: ask the operator for a new one" :
				    other ? "the pairing code was made for another origin" :
				    "no such pairing code (wrong, or used already): ask for a new one");
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes for a token");
	hex_encode(raw, sizeof(raw), token, WEBPAIR_TOKEN_HEX + 1, HEX_LOWER);
	sha256(token, WEBPAIR_TOKEN_HEX, hash);
	OPENSSL_cleanse(raw, sizeof(raw));
	rc = store_token(wp, origin, hash, now_ms, diag);
	if (rc < 0) {
		OPENSSL_cleanse(token, WEBPAIR_TOKEN_HEX + 1);
		return rc;
	}
	OPENSSL_cleanse(found, sizeof(*found));  /* single use */
	return 0;
}

/* Looks a token hash up for origin: 1 found, 0 not, SSC_EJOURNAL. */
static int lookup(struct webpair *wp, const char *origin, const uint8_t hash[32], int64_t now_ms,
		  struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	char hx[65];
	int rc, found;

	if (db_open(wp, diag) < 0)
		return SSC_EJOURNAL;
	hash_hex(hash, hx);
	if (sqlite3_prepare_v2(wp->db, "SELECT 1 FROM web_pairing WHERE token_hash = ?1 AND "
			       "origin = ?2", -1, &st, NULL) != SQLITE_OK)
		return db_fail(wp, diag, "look up");
	sqlite3_bind_text(st, 1, hx, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(wp, diag, "look up");
	found = rc == SQLITE_ROW;
	if (found && now_ms &&
	    sqlite3_prepare_v2(wp->db, "UPDATE web_pairing SET last_used_ms = ?2 WHERE "
			       "token_hash = ?1", -1, &st, NULL) == SQLITE_OK) {
		/* Best effort: a busy database must not refuse a valid page. */
		sqlite3_bind_text(st, 1, hx, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, now_ms);
		(void)sqlite3_step(st);
		sqlite3_finalize(st);
	}
	return found;
}

int webpair_check(struct webpair *wp, const char *origin, const char *token, int64_t now_ms,
		  uint8_t hash[32], struct ssc_diag *diag)
{
	int rc;

	if (strlen(token) != WEBPAIR_TOKEN_HEX)
		return ssc_diag_set(diag, SSC_EBADTOKEN, "not a pairing token (64 hex digits)");
	sha256(token, WEBPAIR_TOKEN_HEX, hash);
	rc = lookup(wp, origin, hash, now_ms, diag);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return ssc_diag_set(diag, SSC_EBADTOKEN, "this page's token is not paired with %s "
				    "(wrong, or revoked): pair again with a code from the operator",
				    origin);
	return 0;
}

int webpair_valid(struct webpair *wp, const char *origin, const uint8_t hash[32])
{
	struct ssc_diag d;

	ssc_diag_init(&d);
	return lookup(wp, origin, hash, 0, &d);
}

int webpair_revoke(struct webpair *wp, const char *origin, struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	const char *why;
	int rc;

	if (origin_check(origin, &why) != 0)
		return ssc_diag_set(diag, SSC_EINVAL, "\"origin\": not an origin as a browser sends "
				    "it (%s)", why);
	for (int i = 0; i < WEBPAIR_MAX_CODES; i++)
		if (wp->codes[i].used && strcmp(wp->codes[i].origin, origin) == 0)
			OPENSSL_cleanse(&wp->codes[i], sizeof(wp->codes[i]));
	wp->generation++;
	if (db_open(wp, diag) < 0)
		return SSC_EJOURNAL;
	if (sqlite3_prepare_v2(wp->db, "DELETE FROM web_pairing WHERE origin = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(wp, diag, "delete");
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(wp, diag, "delete");
	return sqlite3_changes(wp->db);
}

static json_t *utc_text(int64_t ms)
{
	char buf[40];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&t, &tm))
		return json_string("");
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

int webpair_list(struct webpair *wp, int64_t now_ms, json_t **out, struct ssc_diag *diag)
{
	sqlite3_stmt *st = NULL;
	json_t *pairings, *codes, *res;
	int rc;

	if (db_open(wp, diag) < 0)
		return SSC_EJOURNAL;
	if (sqlite3_prepare_v2(wp->db, "SELECT origin, count(*), min(created_ms), "
			       "max(last_used_ms) FROM web_pairing GROUP BY origin ORDER BY origin",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(wp, diag, "list");
	pairings = json_array();
	codes = json_array();
	res = json_pack("{s:o, s:o}", "pairings", pairings, "codes", codes);
	if (!res) {
		sqlite3_finalize(st);
		return SSC_ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(pairings, json_pack(
			"{s:s, s:i, s:o, s:o}", "origin", (const char *)sqlite3_column_text(st, 0),
			"tokens", sqlite3_column_int(st, 1),
			"created", utc_text(sqlite3_column_int64(st, 2)),
			"last_used", utc_text(sqlite3_column_int64(st, 3))));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(res);
		return db_fail(wp, diag, "list");
	}
	for (int i = 0; i < WEBPAIR_MAX_CODES; i++)
		if (wp->codes[i].used && wp->codes[i].expires_ms > now_ms)
			json_array_append_new(codes, json_pack(
				"{s:s, s:I}", "origin", wp->codes[i].origin,
				"expires_in_ms", (json_int_t)(wp->codes[i].expires_ms - now_ms)));
	*out = res;
	return 0;
}
