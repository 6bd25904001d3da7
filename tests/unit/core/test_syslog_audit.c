/*
 * This file contains the unit tests of src/syslog_audit.c's message: the RFC 5424 header (PRI of
 * facility authpriv with severity info / notice, version 1, the row's time, host, app, pid, kind
 * as MSGID), the structured data with the escaping of section 6.3.3, a header field that is not
 * printable ASCII as "-", the MSG with its BOM, and the cut at the buffer's end. Expected texts
 * are written by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "syslog_audit.h"

static struct journal_row row(void)
{
	struct journal_row r = {
		.seq = 42, .time = "2026-12-06T08:00:00.123Z", .kind = "audit", .uid = 1000,
		.pid = 77, .exe = "/usr/bin/app", .method = "card.read_basic", .reader = "pcsc-r0",
		.card = "00112233445566778899aabbccddeeff", .result = "SSC_OK", .duration_ms = 12,
		.intent = 0, .file = "", .detail = "", .hash = "ab12",
	};
	return r;
}

static void test_plain(void **state)
{
	struct journal_row r = row();
	char buf[SYSLOG_AUDIT_MAX];
	size_t n = syslog_audit_format(&r, "desk1", 4321, buf, sizeof(buf));
	const char *want =
		"<86>1 2026-12-06T08:00:00.123Z desk1 sscardd 4321 audit [sscard@32473 seq=\"42\" "
		"hash=\"ab12\" kind=\"audit\" uid=\"1000\" pid=\"77\" exe=\"/usr/bin/app\" "
		"method=\"card.read_basic\" reader=\"pcsc-r0\" "
		"card=\"00112233445566778899aabbccddeeff\" result=\"SSC_OK\" duration_ms=\"12\"] "
		"\xEF\xBB\xBFjournal row 42: audit card.read_basic SSC_OK";

	(void)state;
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static void test_escaping_and_notice(void **state)
{
	struct journal_row r = row();
	char buf[SYSLOG_AUDIT_MAX];

	(void)state;
	r.kind = "outcome";
	r.method = "applied";
	r.result = "SSC_EPINWRONG";
	r.intent = 41;
	r.file = "SSSE/EF05";
	r.detail = "a\"b\\c]d\ne";
	r.exe = "";
	syslog_audit_format(&r, "bad host", 1, buf, sizeof(buf));
	assert_non_null(strstr(buf, "<85>1 2026-12-06T08:00:00.123Z - sscardd 1 outcome "));
	assert_non_null(strstr(buf, " exe=\"\" "));
	assert_non_null(strstr(buf, " intent=\"41\" file=\"SSSE/EF05\" "
				    "detail=\"a\\\"b\\\\c\\]d?e\"] "));
	assert_non_null(strstr(buf, "journal row 42: outcome applied SSC_EPINWRONG"));
}

static void test_cut(void **state)
{
	struct journal_row r = row();
	char big[4000], buf[600];
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r.detail = big;
	n = syslog_audit_format(&r, "desk1", 1, buf, sizeof(buf));
	assert_true(n < sizeof(buf));
	assert_int_equal(strlen(buf), n);
	/* The structured data is closed and the MSG is there: the cut falls in the long value. */
	assert_non_null(strstr(buf, "xxx\"] \xEF\xBB\xBFjournal row 42"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_escaping_and_notice),
		cmocka_unit_test(test_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
