/*
 * Unit tests of the browser bridge's checks (web/webcfg.c, src/origin.c): the listen address
 * (loopback only), an origin's canonical form and its exact match, the Host header against DNS
 * rebinding, the method policy of an origin, and the configuration file. Expected values are
 * written by hand from docs/web.md.
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

#include "origin.h"
#include "webcfg.h"

static void test_origin_form(void **state)
{
	static const char *const good[] = {
		"http://127.0.0.1:8732", "https://his.example-hospital.cn", "http://counter.test:8080",
		"http://[::1]:8080", "http://localhost:3000", "https://a.b.c:1",
	};
	static const char *const bad[] = {
		"", "127.0.0.1:8732", "ftp://x.cn", "HTTP://x.cn", "http://X.cn", "http://x.cn/",
		"http://x.cn/path", "http://x.cn:80", "https://x.cn:443", "http://x.cn:0",
		"http://x.cn:65536", "http://x.cn:08080", "http://x.cn:", "http://", "http://.x.cn",
		"http://x.cn.", "http://user@x.cn", "http://x_y.cn", "http://*.x.cn", "null",
		"http://[::1", "http://x.cn:80a",
	};
	const char *why = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(origin_check(good[i], &why), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (origin_check(bad[i], &why) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(why);
	}
}

static void test_listen(void **state)
{
	static const char *const bad[] = {
		"0.0.0.0:8732", "192.168.1.10:8732", "10.0.0.1:80", "localhost:8732", "[::]:8732",
		"[::ffff:127.0.0.1]:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:8732",
		"[fe80::1]:8732", "",
	};
	char host[64];
	int port = 0;
	const char *why;

	(void)state;
	assert_int_equal(webcfg_parse_listen("127.0.0.1:8732", host, sizeof(host), &port, &why), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8732);
	assert_int_equal(webcfg_parse_listen("127.0.0.9:1", host, sizeof(host), &port, &why), 0);
	assert_int_equal(webcfg_parse_listen("[::1]:9000", host, sizeof(host), &port, &why), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (webcfg_parse_listen(bad[i], host, sizeof(host), &port, &why) != -1)
			fail_msg("accepted %s", bad[i]);
}

static void test_host(void **state)
{
	struct webcfg cfg;

	(void)state;
	webcfg_defaults(&cfg);    /* 127.0.0.1:8732 */
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.1:8732"), 1);
	assert_int_equal(webcfg_host_ok(&cfg, "localhost:8732"), 1);
	assert_int_equal(webcfg_host_ok(&cfg, "LocalHost:8732"), 1);
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.1"), 0);         /* no port */
	assert_int_equal(webcfg_host_ok(&cfg, "localhost"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.1:8733"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.2:8732"), 0);    /* not the one we listen on */
	assert_int_equal(webcfg_host_ok(&cfg, "evil.example:8732"), 0); /* DNS rebinding */
	assert_int_equal(webcfg_host_ok(&cfg, "localhost.evil.example:8732"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.1.nip.io:8732"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, "[::1]:8732"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, ""), 0);
	assert_int_equal(webcfg_host_ok(&cfg, NULL), 0);
	assert_int_equal(webcfg_host_ok(&cfg, ":8732"), 0);
	snprintf(cfg.host, sizeof(cfg.host), "%s", "::1");
	assert_int_equal(webcfg_host_ok(&cfg, "[::1]:8732"), 1);
	assert_int_equal(webcfg_host_ok(&cfg, "::1:8732"), 0);
	assert_int_equal(webcfg_host_ok(&cfg, "127.0.0.1:8732"), 0);
}

/* Writes text to a temporary file; returns its path (static buffer). */
static const char *conf_file(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s", "/tmp/test_webcfg_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load(struct webcfg *cfg, const char *text, char *err, size_t cap)
{
	const char *p = conf_file(text);
	int r;

	webcfg_defaults(cfg);
	r = webcfg_load(cfg, p, err, cap);
	if (r == 0)
		r = webcfg_finish(cfg, err, cap);
	unlink(p);
	return r;
}

static void test_policy_and_file(void **state)
{
	struct webcfg cfg;
	const struct webcfg_origin *o;
	char err[600];

	(void)state;
	assert_int_equal(load(&cfg, "[web]\nlisten = 127.0.0.1:9100\n"
			      "origins = https://his.test, http://counter.test:8080\n"
			      "[origin http://counter.test:8080]\n"
			      "methods = default, card.verify_pin\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.port, 9100);
	assert_int_equal(cfg.n_origins, 3);   /* the two and the demo's own */
	/* Exact match only. */
	assert_null(webcfg_find_origin(&cfg, "https://his.test/"));
	assert_null(webcfg_find_origin(&cfg, "https://HIS.test"));
	assert_null(webcfg_find_origin(&cfg, "http://his.test"));
	assert_null(webcfg_find_origin(&cfg, "https://his.test:443"));
	assert_null(webcfg_find_origin(&cfg, "https://evil.his.test"));
	assert_null(webcfg_find_origin(&cfg, ""));
	assert_null(webcfg_find_origin(&cfg, NULL));
	assert_null(webcfg_find_origin(&cfg, "null"));
	/* The default policy: reads, no PIN, no write. */
	o = webcfg_find_origin(&cfg, "https://his.test");
	assert_non_null(o);
	assert_int_equal(webcfg_method_allowed(o, "card.read_basic"), 1);
	assert_int_equal(webcfg_method_allowed(o, "events.subscribe"), 1);
	assert_int_equal(webcfg_method_allowed(o, "card.verify_pin"), 0);
	assert_int_equal(webcfg_method_allowed(o, "card.write_items"), 0);
	assert_int_equal(webcfg_method_allowed(o, "card.unblock_pin"), 0);
	assert_int_equal(webcfg_method_allowed(o, "web.pair"), 0);
	assert_int_equal(webcfg_method_allowed(o, "bridge.bind"), 0);
	assert_int_equal(webcfg_method_allowed(o, "card.read_basic "), 0);
	assert_int_equal(webcfg_method_allowed(o, "card.*"), 0);
	/* A section adds to the default when it names it. */
	o = webcfg_find_origin(&cfg, "http://counter.test:8080");
	assert_int_equal(webcfg_method_allowed(o, "card.verify_pin"), 1);
	assert_int_equal(webcfg_method_allowed(o, "card.read_items"), 1);
	assert_int_equal(webcfg_method_allowed(o, "card.write_items"), 0);
	/* The demo's own origin: the reads and verify_pin, no write. */
	o = webcfg_find_origin(&cfg, "http://127.0.0.1:9100");
	assert_non_null(o);
	assert_int_equal(webcfg_method_allowed(o, "card.verify_pin"), 1);
	assert_int_equal(webcfg_method_allowed(o, "card.write_items"), 0);

	/* A section without "default" has exactly its methods. */
	assert_int_equal(load(&cfg, "[web]\norigins = https://his.test\n[origin https://his.test]\n"
			      "methods = reader.list\n", err, sizeof(err)), 0);
	o = webcfg_find_origin(&cfg, "https://his.test");
	assert_int_equal(webcfg_method_allowed(o, "reader.list"), 1);
	assert_int_equal(webcfg_method_allowed(o, "card.read_basic"), 0);
	/* demo = no: no origin of its own. */
	assert_int_equal(load(&cfg, "[web]\ndemo = no\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_origins, 0);

	/* Refused, with the line named. */
	assert_int_equal(load(&cfg, "[web]\nlisten = 0.0.0.0:8732\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [web] listen = 0.0.0.0:8732: only a loopback"));
	assert_int_equal(load(&cfg, "[web]\norigins = https://*.his.test\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: [web] origins: \"https://*.his.test\""));
	assert_int_equal(load(&cfg, "[web]\norigins = http://his.test/\n", err, sizeof(err)), -1);
	assert_int_equal(load(&cfg, "[origin https://his.test]\nmethods = card.read_basic\n", err,
			      sizeof(err)), -1);
	assert_non_null(strstr(err, "not in [web] origins"));
	assert_int_equal(load(&cfg, "[web]\norigins = https://his.test\n[origin https://his.test]\n"
			      "methods = bridge.bind\n", err, sizeof(err)), -1);
	assert_int_equal(load(&cfg, "[web]\nwildcard = yes\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown key \"wildcard\""));
	assert_int_equal(load(&cfg, "[daemon]\nuser = x\n", err, sizeof(err)), -1);
	assert_int_equal(load(&cfg, "[web]\nmax_message_bytes = 100\n", err, sizeof(err)), -1);
}

static void test_log_text(void **state)
{
	char out[16];

	(void)state;
	assert_string_equal(webcfg_log_text("card.read_basic", out, sizeof(out)), "card.read_basic");
	assert_string_equal(webcfg_log_text("a\nb\rc\td\x1b[e\x7f", out, sizeof(out)),
			    "a?b?c?d?[e?");
	/* Cut to cap - 1 bytes, always terminated; UTF-8 bytes stay as they are. */
	assert_string_equal(webcfg_log_text("0123456789abcdefXYZ", out, sizeof(out)),
			    "0123456789abcde");
	assert_string_equal(webcfg_log_text("\xe5\xbc\xa0", out, sizeof(out)), "\xe5\xbc\xa0");
	assert_string_equal(webcfg_log_text("", out, sizeof(out)), "");
	assert_string_equal(webcfg_log_text(NULL, out, sizeof(out)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_form),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_policy_and_file),
		cmocka_unit_test(test_log_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
