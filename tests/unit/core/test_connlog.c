/*
 * Unit tests of src/connlog.c and the log budget of base/log.c: connections logged one by one up
 * to the budget of a window, the rest counted per uid and per reason of refusal, the summary line
 * (written out by hand here) and when it is due.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connlog.h"

static void test_budget(void **state)
{
	struct log_budget b = { .max = 2, .window_ms = 1000 };

	(void)state;
	assert_int_equal(log_budget_take(&b, 5000), 1);
	assert_int_equal(log_budget_window_end(&b), 6000);
	assert_int_equal(log_budget_take(&b, 5100), 1);
	assert_int_equal(log_budget_take(&b, 5999), 0);
	/* A new window at the first line after the last one ended, not on a fixed grid. */
	assert_int_equal(log_budget_take(&b, 6500), 1);
	assert_int_equal(log_budget_window_end(&b), 7500);
	assert_int_equal(log_budget_take(&b, 7000), 1);
	assert_int_equal(log_budget_take(&b, 7499), 0);
	/* A clock that went back starts a window too (never a window that never ends). */
	assert_int_equal(log_budget_take(&b, 100), 1);
}

static void test_counts_and_summary(void **state)
{
	struct connlog l;
	char line[512];

	(void)state;
	connlog_init(&l, 3, 10000);
	assert_int_equal(connlog_due(&l), -1);
	assert_int_equal(connlog_take(&l, 1000, 0, CONN_SERVED), 1);
	assert_int_equal(connlog_take(&l, 1001, 0, CONN_REFUSED_UID), 1);
	assert_int_equal(connlog_take(&l, 1002, 1000, CONN_SERVED), 1);
	/* Nothing counted yet: no summary. */
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), -1);
	assert_string_equal(line, "");

	for (int i = 0; i < 5; i++)
		assert_int_equal(connlog_take(&l, 2000, 0, CONN_SERVED), 0);
	assert_int_equal(connlog_due(&l), 11000);
	assert_int_equal(connlog_take(&l, 2001, 0, CONN_REFUSED_UID), 0);
	assert_int_equal(connlog_take(&l, 2002, 0, CONN_REFUSED_UID), 0);
	assert_int_equal(connlog_take(&l, 2003, 65534, CONN_REFUSED_FDS), 0);
	assert_int_equal(connlog_take(&l, 2004, 1, CONN_SERVED), 0);
	assert_int_equal(connlog_take(&l, 2005, 2, CONN_SERVED), 0);
	assert_int_equal(connlog_take(&l, 2006, 3, CONN_REFUSED_TOTAL), 0);   /* a fifth uid */
	assert_int_equal(connlog_take(&l, 2007, 4, CONN_SERVED), 0);          /* a sixth */
	assert_int_equal(connlog_due(&l), 11000);
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), 1);
	assert_string_equal(line, "connections: 12 not logged one by one (at most 3 per 10 s): "
			    "uid 0: 7, uid 65534: 1, uid 1: 1, uid 2: 1, other uids: 2; 4 refused "
			    "(too many clients: 1, too many for their uid: 2, no file descriptor "
			    "left: 1)");
	/* Cleared. */
	assert_int_equal(connlog_due(&l), -1);
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), -1);

	/* A window that only served: information, not a warning. */
	assert_int_equal(connlog_take(&l, 12000, 7, CONN_SERVED), 1);
	assert_int_equal(connlog_take(&l, 12001, 7, CONN_SERVED), 1);
	assert_int_equal(connlog_take(&l, 12002, 7, CONN_SERVED), 1);
	assert_int_equal(connlog_take(&l, 12003, 7, CONN_SERVED), 0);
	assert_int_equal(connlog_due(&l), 22000);
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), 0);
	assert_string_equal(line, "connections: 1 not logged one by one (at most 3 per 10 s): "
			    "uid 7: 1");

	/* A failed accept has no peer. */
	assert_int_equal(connlog_take(&l, 12004, (uid_t)-1, CONN_REFUSED_FDS), 0);
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), 1);
	assert_string_equal(line, "connections: 1 not logged one by one (at most 3 per 10 s): "
			    "no peer: 1; 1 refused (no file descriptor left: 1)");
}

static void test_summary_cut_short(void **state)
{
	struct connlog l;
	char line[40];

	(void)state;
	connlog_init(&l, 0, 10000);
	assert_int_equal(connlog_take(&l, 0, 0, CONN_REFUSED_OTHER), 0);
	assert_int_equal(connlog_summary(&l, line, sizeof(line)), 1);
	assert_string_equal(line, "connections: 1 not logged one by one (a");   /* 39 + NUL */
	assert_int_equal(connlog_summary(&l, line, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_counts_and_summary),
		cmocka_unit_test(test_summary_cut_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
