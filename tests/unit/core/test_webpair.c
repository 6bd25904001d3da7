/*
 * Unit tests of the browser pairings (src/webpair.c) and the daemon's checks of the bridge's
 * methods (src/rpc_web.c): codes single-use, bound to their origin, expiring; the rate limit on
 * wrong codes; tokens stored only as hashes, checked per origin, revoked; who may call what
 * (the operator by uid 0 or the admin group, the bridge by its uid); the gate before a token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "rpc_web.h"
#include "webpair.h"

#define T0 1700000000000LL
#define TTL 300000

static char db_path[64];

static int setup(void **state)
{
	int fd;
	sqlite3 *db;

	(void)state;
	snprintf(db_path, sizeof(db_path), "%s", "/tmp/test_webpair_XXXXXX");
	fd = mkstemp(db_path);
	assert_true(fd >= 0);
	close(fd);
	/* The journal creates the database; here an empty one stands for it. */
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE rows (seq INTEGER)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(db_path);
	return 0;
}

/* Whether text appears anywhere in the database file (a token must never be stored). */
static int file_has(const char *text)
{
	FILE *f = fopen(db_path, "rb");
	static char buf[1 << 20];
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, text, strlen(text)) != NULL;
}

static void test_codes_and_tokens(void **state)
{
	struct webpair *wp;
	struct ssc_diag d;
	char code[WEBPAIR_CODE_TEXT], code2[WEBPAIR_CODE_TEXT], token[WEBPAIR_TOKEN_HEX + 1];
	char lower[WEBPAIR_CODE_TEXT];
	uint8_t h[32], h2[32];
	json_t *list;

	(void)state;
	assert_int_equal(webpair_new(db_path, TTL, &wp), 0);
	ssc_diag_init(&d);
	assert_int_equal(webpair_code(wp, "https://his.test/", T0, code, &d), SSC_EINVAL);
	assert_int_equal(webpair_code(wp, "https://his.test", T0, code, &d), 0);
	assert_int_equal(strlen(code), 11);
	assert_int_equal(code[5], '-');
	/* Typed in lower case without the dash: the same code. */
	{
		int j = 0;

		for (int i = 0; code[i]; i++)
			if (code[i] != '-')
				lower[j++] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] + 32 :
						    code[i]);
		lower[j] = '\0';
	}
	/* Another origin's page cannot use it. */
	assert_int_equal(webpair_redeem(wp, "https://evil.test", lower, T0 + 1, token, h, &d),
			 SSC_EBADCODE);
	assert_non_null(strstr(d.msg, "another origin"));
	assert_int_equal(webpair_redeem(wp, "https://his.test", lower, T0 + 1, token, h, &d), 0);
	assert_int_equal(strlen(token), 64);
	/* Single use. */
	assert_int_equal(webpair_redeem(wp, "https://his.test", code, T0 + 2, token + 0,
					h2, &d), SSC_EBADCODE);
	/* The token, not its hash, is what the page holds; only the hash is stored. */
	assert_int_equal(webpair_check(wp, "https://his.test", token, T0 + 3, h2, &d), 0);
	assert_memory_equal(h, h2, 32);
	assert_int_equal(file_has(token), 0);
	assert_int_equal(webpair_check(wp, "https://other.test", token, T0 + 3, h2, &d),
			 SSC_EBADTOKEN);
	token[0] = token[0] == 'a' ? 'b' : 'a';
	assert_int_equal(webpair_check(wp, "https://his.test", token, T0 + 3, h2, &d),
			 SSC_EBADTOKEN);
	assert_int_equal(webpair_check(wp, "https://his.test", "short", T0 + 3, h2, &d),
			 SSC_EBADTOKEN);
	assert_int_equal(webpair_valid(wp, "https://his.test", h), 1);
	/* Expiry: valid until TTL, not at it. */
	assert_int_equal(webpair_code(wp, "https://his.test", T0, code2, &d), 0);
	assert_int_equal(webpair_redeem(wp, "https://his.test", code2, T0 + TTL, token, h2, &d),
			 SSC_EBADCODE);
	assert_non_null(strstr(d.msg, "expired"));
	/* The list: one origin, one token; no code waiting once they expired. */
	assert_int_equal(webpair_list(wp, T0 + TTL, &list, &d), 0);
	assert_int_equal(json_array_size(json_object_get(list, "pairings")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(list, "pairings"), 0), "origin")), "https://his.test");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
		json_object_get(list, "pairings"), 0), "tokens")), 1);
	assert_int_equal(json_array_size(json_object_get(list, "codes")), 0);
	json_decref(list);
	/* Revocation: the token is gone, the generation moves. */
	{
		unsigned g = webpair_generation(wp);

		assert_int_equal(webpair_revoke(wp, "https://his.test", &d), 1);
		assert_int_not_equal(webpair_generation(wp), g);
		assert_int_equal(webpair_valid(wp, "https://his.test", h), 0);
		assert_int_equal(webpair_revoke(wp, "https://his.test", &d), 0);
	}
	webpair_free(wp);
}

static void test_rate_limit(void **state)
{
	struct webpair *wp;
	struct ssc_diag d;
	char code[WEBPAIR_CODE_TEXT], token[WEBPAIR_TOKEN_HEX + 1];
	uint8_t h[32];

	(void)state;
	assert_int_equal(webpair_new(db_path, TTL, &wp), 0);
	ssc_diag_init(&d);
	assert_int_equal(webpair_code(wp, "https://his.test", T0, code, &d), 0);
	for (int i = 0; i < WEBPAIR_FAIL_MAX; i++)
		assert_int_equal(webpair_redeem(wp, "https://his.test", "00000-00000", T0 + i, token,
						h, &d), SSC_EBADCODE);
	/* Ten wrong in a minute: even the right code waits. */
	assert_int_equal(webpair_redeem(wp, "https://his.test", code, T0 + 100, token, h, &d),
			 SSC_ELIMIT);
	/* A minute after the first wrong one, one try is free again. */
	assert_int_equal(webpair_redeem(wp, "https://his.test", code, T0 + WEBPAIR_FAIL_WINDOW_MS,
					token, h, &d), 0);
	webpair_free(wp);
}

static void test_no_journal(void **state)
{
	struct webpair *wp;
	struct ssc_diag d;
	char code[WEBPAIR_CODE_TEXT], token[WEBPAIR_TOKEN_HEX + 1];
	uint8_t h[32];

	(void)state;
	assert_int_equal(webpair_new("/nonexistent/journal.db", TTL, &wp), 0);
	ssc_diag_init(&d);
	assert_int_equal(webpair_code(wp, "https://his.test", T0, code, &d), 0);
	/* The store is unavailable: the code stays usable for when it is back. */
	assert_int_equal(webpair_redeem(wp, "https://his.test", code, T0 + 1, token, h, &d),
			 SSC_EJOURNAL);
	assert_int_equal(webpair_check(wp, "https://his.test", "0123456789abcdef0123456789abcdef"
				       "0123456789abcdef0123456789abcdef", T0, h, &d), SSC_EJOURNAL);
	webpair_free(wp);
}

static void test_who_may(void **state)
{
	struct webpair *wp;
	struct rpc_web_cfg cfg = { 0 };
	struct rpc_web_conn conn = { 0 }, plain = { 0 };
	struct rpc_web_peer root = { .uid = 0 }, clerk = { .uid = 1000, .gid = 1000 },
		bridge = { .uid = 999, .gid = 999 };
	gid_t groups[] = { 50, 4242 };
	struct rpc_web_peer admin = { .uid = 1001, .gid = 1001, .groups = groups, .n_groups = 2 };
	struct ssc_diag d;
	json_t *res = NULL, *p;
	char code[WEBPAIR_CODE_TEXT];

	(void)state;
	assert_int_equal(webpair_new(db_path, TTL, &wp), 0);
	cfg.pairs = wp;
	cfg.have_bridge = 1;
	cfg.bridge_uid = 999;
	cfg.have_admin = 1;
	cfg.admin_gid = 4242;
	ssc_diag_init(&d);
	p = json_pack("{s:s}", "origin", "https://his.test");
	/* The operator: root, or a member of the admin group (a supplementary group too). */
	assert_int_equal(rpc_web_call(&cfg, &plain, &clerk, "web.pair", p, T0, &res, &d),
			 SSC_EPERM);
	assert_int_equal(rpc_web_call(&cfg, &plain, &bridge, "web.list", NULL, T0, &res, &d),
			 SSC_EPERM);
	assert_int_equal(rpc_web_call(&cfg, &plain, &admin, "web.list", NULL, T0, &res, &d), 0);
	json_decref(res);
	assert_int_equal(rpc_web_call(&cfg, &plain, &root, "web.pair", p, T0, &res, &d), 0);
	snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(res, "code")));
	json_decref(res);
	/* Only the bridge's uid binds an origin, once. */
	assert_int_equal(rpc_web_call(&cfg, &conn, &root, "bridge.bind", p, T0, &res, &d),
			 SSC_EPERM);
	assert_int_equal(rpc_web_call(&cfg, &conn, &clerk, "bridge.bind", p, T0, &res, &d),
			 SSC_EPERM);
	/* Not bound, not gated: an ordinary client. */
	assert_int_equal(rpc_web_gate(&cfg, &plain, &d), 0);
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.bind", p, T0, &res, &d), 0);
	json_decref(res);
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.bind", p, T0, &res, &d),
			 SSC_EPERM);
	/* Bound: nothing passes the gate before a token. */
	assert_int_equal(rpc_web_gate(&cfg, &conn, &d), SSC_ENOTPAIRED);
	json_decref(p);
	p = json_pack("{s:s}", "code", code);
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.pair", p, T0 + 1, &res, &d),
			 0);
	json_decref(res);
	assert_int_equal(rpc_web_gate(&cfg, &conn, &d), 0);
	/* A revocation reaches the connection at its next call. */
	assert_int_equal(webpair_revoke(wp, "https://his.test", &d), 1);
	assert_int_equal(rpc_web_gate(&cfg, &conn, &d), SSC_EBADTOKEN);
	assert_int_equal(rpc_web_gate(&cfg, &conn, &d), SSC_ENOTPAIRED);
	/* Params are checked. */
	json_decref(p);
	p = json_pack("{s:s, s:s}", "code", code, "extra", "x");
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.pair", p, T0, &res, &d),
			 SSC_EINVAL);
	json_decref(p);
	/* bridge.refused: the bridge's, on a bound connection, one of two errors. */
	p = json_pack("{s:s, s:s}", "method", "card.write_items", "error", "SSC_EPOLICY");
	assert_int_equal(rpc_web_call(&cfg, &conn, &root, "bridge.refused", p, T0, &res, &d),
			 SSC_EPERM);
	assert_int_equal(rpc_web_call(&cfg, &plain, &bridge, "bridge.refused", p, T0, &res, &d),
			 SSC_ENOTPAIRED);
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.refused", p, T0, &res, &d), 0);
	assert_string_equal(json_string_value(json_object_get(res, "method")), "card.write_items");
	assert_string_equal(json_string_value(json_object_get(res, "error")), "SSC_EPOLICY");
	json_decref(res);
	json_decref(p);
	p = json_pack("{s:s, s:s}", "method", "card.read_basic", "error", "SSC_OK");
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.refused", p, T0, &res, &d),
			 SSC_EINVAL);
	json_decref(p);
	p = json_pack("{s:s, s:s, s:i}", "method", "card.read_basic", "error", "SSC_ENOTPAIRED",
		      "x", 1);
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.refused", p, T0, &res, &d),
			 SSC_EINVAL);
	json_decref(p);
	p = json_pack("{s:s, s:s}", "method",
		      "card.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		      "error", "SSC_EPOLICY");
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.refused", p, T0, &res, &d),
			 SSC_EINVAL);
	json_decref(p);
	/* Without [web] bridge_user no one is the bridge. */
	cfg.have_bridge = 0;
	memset(&conn, 0, sizeof(conn));
	p = json_pack("{s:s}", "origin", "https://his.test");
	assert_int_equal(rpc_web_call(&cfg, &conn, &bridge, "bridge.bind", p, T0, &res, &d),
			 SSC_EPERM);
	json_decref(p);
	webpair_free(wp);
}

static void test_audit_detail(void **state)
{
	char *s;

	(void)state;
	assert_null(rpc_web_detail("{\"allow_lost\":true}", ""));
	assert_null(rpc_web_detail("", NULL));
	s = rpc_web_detail("", "https://his.test");
	assert_string_equal(s, "{\"origin\":\"https://his.test\"}");
	free(s);
	s = rpc_web_detail("{\"allow_lost\":true}", "https://his.test");
	assert_string_equal(s, "{\"allow_lost\":true,\"origin\":\"https://his.test\"}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_codes_and_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_who_may, setup, teardown),
		cmocka_unit_test(test_audit_detail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
