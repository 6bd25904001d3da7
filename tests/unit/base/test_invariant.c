/*
 * This file contains the unit test of the invariant assertions (base/invariant.h): in a build that
 * checks them (SSC_INVARIANTS, the test builds), a broken INVARIANT, ALWAYS or NEVER aborts (in a
 * child process here) naming the condition, and a kept one lets the code go on; in a build that
 * does not, ALWAYS(x) and NEVER(x) are x and INVARIANT(x) does not evaluate x.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "invariant.h"

static int evaluated;

static int touch(int v)
{
	evaluated++;
	return v;
}

static void test_kept(void **state)
{
	int taken = 0;

	(void)state;
	INVARIANT(1 + 1 == 2);
	if (ALWAYS(touch(1)))
		taken++;
	if (NEVER(touch(0)))
		taken += 10;
	assert_int_equal(taken, 1);
	assert_int_equal(evaluated, 2);   /* each condition once */
}

#ifdef SSC_INVARIANTS

/* Runs which (0 INVARIANT, 1 ALWAYS, 2 NEVER) broken in a child; returns its stderr's first line. */
static void broken_in_child(int which, char *out, size_t cap)
{
	int pfd[2], status = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		if (which == 0)
			INVARIANT(touch(0) == 1);
		else if (which == 1)
			(void)ALWAYS(touch(0));
		else
			(void)NEVER(touch(1));
		_exit(0);   /* not reached when the invariant is checked */
	}
	close(pfd[1]);
	n = read(pfd[0], out, cap - 1);
	close(pfd[0]);
	out[n > 0 ? n : 0] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_broken_aborts(void **state)
{
	char msg[256];

	(void)state;
	broken_in_child(0, msg, sizeof(msg));
	assert_non_null(strstr(msg, "test_invariant.c:"));
	assert_non_null(strstr(msg, "invariant broken: touch(0) == 1"));
	broken_in_child(1, msg, sizeof(msg));
	assert_non_null(strstr(msg, "invariant broken: touch(0)"));
	broken_in_child(2, msg, sizeof(msg));
	assert_non_null(strstr(msg, "invariant broken: touch(1)"));
}

#else

static void test_broken_unchecked(void **state)
{
	(void)state;
	evaluated = 0;
	INVARIANT(touch(0) == 1);          /* not evaluated, no abort */
	assert_int_equal(evaluated, 0);
	assert_int_equal(ALWAYS(touch(0)), 0);
	assert_int_equal(NEVER(touch(1)), 1);
	assert_int_equal(evaluated, 2);
}

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept),
#ifdef SSC_INVARIANTS
		cmocka_unit_test(test_broken_aborts),
#else
		cmocka_unit_test(test_broken_unchecked),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
