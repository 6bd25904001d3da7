/*
 * This file contains the browser pairings (issue 17, docs/web.md): the single-use pairing codes the
 * operator asks for (kept in memory, hashed, 5 minutes), the tokens a paired page holds (kept as
 * SHA-256 hashes in a table of the journal's database, through a connection of our own), their
 * listing and revocation, and the rate limit on wrong codes. It knows nothing of sockets or
 * JSON-RPC: src/rpc_web.c calls it from the event loop.
 */
#ifndef SSC_WEBPAIR_H
#define SSC_WEBPAIR_H

#include <stdint.h>

#include <jansson.h>

#include "origin.h"
#include "sscard/error.h"

#define WEBPAIR_CODE_TEXT 12                 /* "ABCDE-FGHJK" and its NUL */
#define WEBPAIR_TOKEN_HEX 64                 /* a token: 32 random bytes in hex */
#define WEBPAIR_MAX_CODES 32                 /* codes waiting at once */
#define WEBPAIR_MAX_TOKENS 64                /* tokens per origin */
#define WEBPAIR_FAIL_WINDOW_MS 60000         /* wrong codes are counted over this window ... */
#define WEBPAIR_FAIL_MAX 10                  /* ... and refused beyond this many */
#define WEBPAIR_BUSY_MS 250                  /* SQLite's busy wait (the audit writer's commits) */

struct webpair;

/*
 * Creates the store over the journal database at db_path (borrowed: copied); a code lives
 * code_ttl_ms ([web] pairing_code_ttl_s). The database is
 * opened on first use (the journal creates it), so a missing or unavailable journal is reported
 * by the calls that need it, not here. Returns 0 and *out, or SSC_ENOMEM.
 */
int webpair_new(const char *db_path, int code_ttl_ms, struct webpair **out);

/* Closes the database and wipes the codes. NULL is a no-op. */
void webpair_free(struct webpair *wp);

/*
 * A new single-use code for origin (checked with origin_check(): SSC_EINVAL), valid for
 * the store's code life from now_ms, written to code (WEBPAIR_CODE_TEXT bytes). Returns 0,
 * SSC_EINVAL, SSC_ELIMIT (WEBPAIR_MAX_CODES codes wait already), SSC_ECRYPTO (no randomness).
 */
int webpair_code(struct webpair *wp, const char *origin, int64_t now_ms, char *code,
		 struct ssc_diag *diag);

/* A code's life in ms. */
int webpair_code_ttl_ms(const struct webpair *wp);

/*
 * Redeems a code for origin: when a waiting, unexpired code of that origin matches (case, spaces
 * and '-' ignored), it is used up, a new token is made, its hash stored and the token written
 * to token (WEBPAIR_TOKEN_HEX + 1 bytes), and its hash to hash (32 bytes) for the connection to
 * remember. Returns 0; SSC_EBADCODE (no such code for this origin, used, or expired: diag says
 * which); SSC_ELIMIT (more than WEBPAIR_FAIL_MAX wrong codes in the last minute, all origins
 * together: the code is not even looked at); SSC_EJOURNAL (the database is unavailable: the code
 * stays usable); SSC_ECRYPTO. Blocks for one SQLite insert (at most WEBPAIR_BUSY_MS waiting).
 */
int webpair_redeem(struct webpair *wp, const char *origin, const char *code, int64_t now_ms,
		   char *token, uint8_t hash[32], struct ssc_diag *diag);

/*
 * Whether token is a token of origin that has not been revoked; on success writes its hash to
 * hash (32 bytes) and notes the time of use. Returns 0, SSC_EBADTOKEN, SSC_EJOURNAL. Blocks for
 * one SQLite lookup and update.
 */
int webpair_check(struct webpair *wp, const char *origin, const char *token, int64_t now_ms,
		  uint8_t hash[32], struct ssc_diag *diag);

/* Whether the token whose hash is given is still stored for origin: 1, 0, or SSC_EJOURNAL. */
int webpair_valid(struct webpair *wp, const char *origin, const uint8_t hash[32]);

/*
 * Revokes every token of origin and drops its waiting codes. Returns the number of tokens
 * removed (>= 0), SSC_EINVAL (not an origin), SSC_EJOURNAL. Bumps webpair_generation().
 */
int webpair_revoke(struct webpair *wp, const char *origin, struct ssc_diag *diag);

/* A number that changes at every revocation: a connection paired under an older one checks its
 * token again (webpair_valid) before its next call. */
unsigned webpair_generation(const struct webpair *wp);

/*
 * The pairings: {"pairings": [{"origin", "tokens", "created", "last_used"}], "codes":
 * [{"origin", "expires_in_ms"}]} (times as UTC text, "" when never used). Returns 0 and *out
 * (owned), SSC_EJOURNAL, SSC_ENOMEM.
 */
int webpair_list(struct webpair *wp, int64_t now_ms, json_t **out, struct ssc_diag *diag);

#endif
