/*
 * This file contains the unit tests of src/metrics.c and of the configuration keys of issue 19:
 * operation counters by method and result (unknown methods and implausible results as "other"),
 * the histogram's buckets, the key-provider wrapper (failures counted, "no key store" answers
 * not), label escaping, [metrics] listen / [daemon] user / [audit] syslog_socket parsing, and the
 * loading of libmicrohttpd (src/metrics_mhd.c): a file that is not there, a library without its
 * functions, the real one. Expected texts are written by hand.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "metrics.h"
#include "sscard/error.h"
#ifdef SSC_HAVE_MHD
#include "metrics_mhd.h"
#endif

static char *text_now(struct reader_info *ri, size_t n)
{
	struct metrics_gauges g = { .clients = 2, .journal_up = 1, .audit_dropped = 7,
				    .readers = ri, .n_readers = n };
	char *t = metrics_text(&g);

	assert_non_null(t);
	return t;
}

static void test_operations(void **state)
{
	char *t;

	(void)state;
	metrics_operation("card.read_basic", "SSC_OK", 3);       /* bucket 0.005 */
	metrics_operation("card.read_basic", "SSC_OK", 120);     /* bucket 0.25 */
	metrics_operation("card.read_basic", "SSC_ENOCARD", 40000); /* +Inf only */
	metrics_operation("330102199003071230", "RPC_METHOD_NOT_FOUND", 0);
	metrics_operation("card.read_basic", "张三", 1);          /* not a result name; 0.005 */
	t = text_now(NULL, 0);
	assert_non_null(strstr(t, "sscard_operations_total{method=\"card.read_basic\","
				  "result=\"SSC_OK\"} 2\n"));
	assert_non_null(strstr(t, "sscard_operations_total{method=\"card.read_basic\","
				  "result=\"SSC_ENOCARD\"} 1\n"));
	assert_non_null(strstr(t, "sscard_operations_total{method=\"card.read_basic\","
				  "result=\"other\"} 1\n"));
	assert_non_null(strstr(t, "sscard_operations_total{method=\"other\","
				  "result=\"RPC_METHOD_NOT_FOUND\"} 1\n"));
	assert_null(strstr(t, "330102199003071230"));
	assert_null(strstr(t, "张三"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_bucket{method="
				  "\"card.read_basic\",le=\"0.005\"} 2\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_bucket{method="
				  "\"card.read_basic\",le=\"0.1\"} 2\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_bucket{method="
				  "\"card.read_basic\",le=\"0.25\"} 3\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_bucket{method="
				  "\"card.read_basic\",le=\"30\"} 3\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_bucket{method="
				  "\"card.read_basic\",le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_count{method="
				  "\"card.read_basic\"} 4\n"));
	assert_non_null(strstr(t, "sscard_operation_duration_seconds_sum{method="
				  "\"card.read_basic\"} 40.124\n"));
	assert_non_null(strstr(t, "sscard_clients_connected 2\n"));
	assert_non_null(strstr(t, "sscard_journal_up 1\n"));
	assert_non_null(strstr(t, "sscard_audit_rows_dropped_total 7\n"));
	free(t);
}

static void test_gauges_and_escaping(void **state)
{
	struct reader_info ri[3];
	char *t;

	(void)state;
	memset(ri, 0, sizeof(ri));
	snprintf(ri[0].id, sizeof(ri[0].id), "pcsc-a\"b\\c");
	snprintf(ri[0].driver, sizeof(ri[0].driver), "pcsc");
	ri[0].card_present = 1;
	ri[0].role = READER_ROLE_USER;
	ri[0].queued = 3;
	snprintf(ri[1].id, sizeof(ri[1].id), "usb-1-2");
	snprintf(ri[1].driver, sizeof(ri[1].driver), "usb-ccid");
	ri[1].card_present = 1;
	ri[1].role = READER_ROLE_PSAM;
	snprintf(ri[2].id, sizeof(ri[2].id), "pcsc-c");
	snprintf(ri[2].driver, sizeof(ri[2].driver), "pcsc");
	t = text_now(ri, 3);
	assert_non_null(strstr(t, "sscard_reader_queue_depth{reader=\"pcsc-a\\\"b\\\\c\"} 3\n"));
	assert_non_null(strstr(t, "sscard_readers_present{driver=\"pcsc\"} 2\n"));
	assert_non_null(strstr(t, "sscard_readers_present{driver=\"usb-ccid\"} 1\n"));
	assert_non_null(strstr(t, "sscard_cards_present{role=\"user\"} 1\n"));
	assert_non_null(strstr(t, "sscard_cards_present{role=\"psam\"} 1\n"));
	assert_non_null(strstr(t, "sscard_cards_present{role=\"unknown\"} 0\n"));
	free(t);
}

static void test_counters(void **state)
{
	char *t;

	(void)state;
	metrics_apdu("pcsc");
	metrics_apdu("pcsc");
	metrics_apdu("usb-ccid");
	metrics_journal_row("audit");
	metrics_journal_row("intent");
	metrics_journal_failure();
	metrics_refusal(CONN_REFUSED_UID);
	t = text_now(NULL, 0);
	assert_non_null(strstr(t, "sscard_apdus_total{driver=\"pcsc\"} 2\n"));
	assert_non_null(strstr(t, "sscard_apdus_total{driver=\"usb-ccid\"} 1\n"));
	assert_non_null(strstr(t, "sscard_journal_rows_total{kind=\"audit\"} 1\n"));
	assert_non_null(strstr(t, "sscard_journal_rows_total{kind=\"intent\"} 1\n"));
	assert_non_null(strstr(t, "sscard_journal_append_failures_total 1\n"));
	assert_non_null(strstr(t, "sscard_connections_refused_total{limit=\"max_clients_per_uid\"} "
				  "1\n"));
	assert_non_null(strstr(t, "sscard_connections_refused_total{limit=\"max_clients\"} 0\n"));
	free(t);
}

/* A provider whose every call answers what fake_rc says. */
static int fake_rc;

static int fake_available(struct keyprov *kp, enum ssc_alg alg)
{
	return 0;
}

static int fake_cryptogram(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			   const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			   uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag)
{
	return fake_rc;
}

static int fake_terminal(struct keyprov *kp, enum ssc_alg alg, char out[13], int64_t deadline_ms,
			 struct ssc_diag *diag)
{
	return fake_rc;
}

static const struct keyprov_ops fake_ops = {
	.name = "psam",
	.available = fake_available,
	.cryptogram = fake_cryptogram,
	.terminal_number = fake_terminal,
};

static void test_keyprov_wrap(void **state)
{
	struct keyprov inner = { .ops = &fake_ops };
	struct keyprov *kp = metrics_keyprov_wrap(&inner);
	uint8_t r[8] = { 0 }, c[8];
	char term[13];
	char *t;

	(void)state;
	assert_ptr_not_equal(kp, &inner);
	fake_rc = 0;
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, NULL, NULL, r, r, c, 0, NULL), 0);
	fake_rc = SSC_EPSAM;
	assert_int_equal(kp->ops->cryptogram(kp, SSC_ALG_DES, NULL, NULL, r, r, c, 0, NULL),
			 SSC_EPSAM);
	fake_rc = SSC_ETIMEDOUT;
	assert_int_equal(kp->ops->terminal_number(kp, SSC_ALG_DES, term, 0, NULL), SSC_ETIMEDOUT);
	fake_rc = SSC_ENOPSAM;      /* no key store: not a failure of the provider */
	assert_int_equal(kp->ops->terminal_number(kp, SSC_ALG_DES, term, 0, NULL), SSC_ENOPSAM);
	assert_int_equal(kp->ops->available(kp, SSC_ALG_DES), 0);
	t = text_now(NULL, 0);
	assert_non_null(strstr(t, "sscard_key_provider_failures_total{provider=\"psam\"} 2\n"));
	free(t);
	keyprov_free(kp);
}

static void test_listen_and_keys(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *sec, *name;
	int found = 0;

	(void)state;
	assert_int_equal(config_parse_listen("127.0.0.1:9477", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9477);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(config_parse_listen("[::1]:1", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(config_parse_listen("::1:9477", &ss, &len), SSC_ECONFIG);
	assert_int_equal(config_parse_listen("localhost:9477", &ss, &len), SSC_ECONFIG);
	assert_int_equal(config_parse_listen("127.0.0.1:0", &ss, &len), SSC_ECONFIG);
	assert_int_equal(config_parse_listen("127.0.0.1:65536", &ss, &len), SSC_ECONFIG);
	assert_int_equal(config_parse_listen("127.0.0.1", &ss, &len), SSC_ECONFIG);
	assert_int_equal(config_parse_listen("127.0.0.1:+80", &ss, &len), SSC_ECONFIG);
	for (size_t i = 0; config_key_at(i, &sec, &name); i++)
		found += (strcmp(sec, "metrics") == 0 && strcmp(name, "listen") == 0) +
			 (strcmp(sec, "daemon") == 0 && strcmp(name, "user") == 0) +
			 (strcmp(sec, "audit") == 0 && strcmp(name, "syslog_socket") == 0) +
			 (strcmp(sec, "readers") == 0 && strcmp(name, "role.<reader>") == 0);
	assert_int_equal(found, 4);
}

/* Loads text as a configuration file; returns config_load()'s result, err filled. */
static int load(const char *text, struct config *cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/ssc-test-metrics-XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	config_defaults(cfg);
	rc = config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void test_config_keys(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	config_defaults(&cfg);
	assert_string_equal(cfg.user, "");
	assert_string_equal(cfg.metrics_listen, "");
	assert_int_equal(cfg.audit_syslog, 0);
	assert_string_equal(cfg.audit_syslog_socket, "/dev/log");
	assert_int_equal(load("[daemon]\nuser = sscard\n[metrics]\nlisten = [::1]:9477\n"
			      "[audit]\nsyslog = yes\nsyslog_socket = /run/x.sock\n", &cfg, err,
			      sizeof(err)), 0);
	assert_string_equal(cfg.user, "sscard");
	assert_string_equal(cfg.metrics_listen, "[::1]:9477");
	assert_int_equal(cfg.audit_syslog, 1);
	assert_string_equal(cfg.audit_syslog_socket, "/run/x.sock");
	assert_int_equal(load("[metrics]\nlisten = localhost:9477\n", &cfg, err, sizeof(err)),
			 SSC_ECONFIG);
	assert_non_null(strstr(err, "[metrics] listen: expected ADDRESS:PORT"));
	assert_int_equal(load("[daemon]\nuser = -x\n", &cfg, err, sizeof(err)), SSC_ECONFIG);
	assert_non_null(strstr(err, "[daemon] user: not a user name"));
	assert_int_equal(load("[audit]\nsyslog_socket = dev/log\n", &cfg, err, sizeof(err)),
			 SSC_ECONFIG);
	assert_non_null(strstr(err, "[audit] syslog_socket must be an absolute path"));
}

#ifdef SSC_HAVE_MHD
/*
 * The loader says why it failed, in words that name the file: a missing file with dlopen()'s
 * reason, a library that is not libmicrohttpd with the first function it lacks; then the real
 * library gives a whole table, which every later call returns, and metrics_load() succeeds. One
 * test, in this order: after a success the loader keeps its table.
 */
static void test_library_loader(void **state)
{
	const struct metrics_mhd *t;
	char err[512] = "";

	(void)state;
	t = metrics_mhd_load("libsscard-test-no-such-mhd.so.12", err, sizeof(err));
	assert_null(t);
	assert_non_null(strstr(err, "libsscard-test-no-such-mhd.so.12: cannot open shared object "
				    "file"));
	err[0] = '\0';
	t = metrics_mhd_load("libc.so.6", err, sizeof(err));
	assert_null(t);
	assert_string_equal(err, "libc.so.6 has no MHD_start_daemon");
	err[0] = '\0';
	t = metrics_mhd_load(METRICS_MHD_SONAME, err, sizeof(err));
	assert_non_null(t);
	assert_string_equal(err, "");
	assert_non_null(t->start_daemon);
	assert_non_null(t->stop_daemon);
	assert_non_null(t->run);
	assert_non_null(t->get_timeout);
	assert_non_null(t->get_daemon_info);
	assert_non_null(t->create_response_from_buffer);
	assert_non_null(t->add_response_header);
	assert_non_null(t->queue_response);
	assert_non_null(t->destroy_response);
	assert_ptr_equal(metrics_mhd_load("libsscard-test-no-such-mhd.so.12", err, sizeof(err)), t);
	assert_int_equal(metrics_load(err, sizeof(err)), 0);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_operations),
		cmocka_unit_test(test_gauges_and_escaping),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_keyprov_wrap),
		cmocka_unit_test(test_listen_and_keys),
		cmocka_unit_test(test_config_keys),
#ifdef SSC_HAVE_MHD
		cmocka_unit_test(test_library_loader),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
