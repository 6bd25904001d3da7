/*
 * This file contains the unit test of the invariants stated at the journal's and its supervisor's
 * transitions (base/invariant.h): in a build that checks them (SSC_INVARIANTS, the test builds), a
 * step the code never takes aborts, naming the condition (in a child process here): a row added
 * through a suspended handle, a supervisor freed before its orderly stop. The supervisor's
 * ordinary life (closed -> up, stopped, freed) and a suspend/resume go through unharmed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"
#include "journal.h"
#include "journal_int.h"
#include "journal_supervisor.h"

struct fx {
	char dir[64];
	char db[128];
	struct config cfg;
	int ups, downs;            /* the supervisor's state hook: up, down */
};

static void on_state(void *arg, struct journal *j, const char *status)
{
	struct fx *f = arg;

	if (j) {
		assert_string_equal(status, "ok");
		f->ups++;
	} else {
		f->downs++;
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-jinv-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	config_defaults(&f->cfg);
	snprintf(f->cfg.journal_path, sizeof(f->cfg.journal_path), "%s", f->db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	static const char *const ext[] = { "", "-wal", "-shm", ".key", ".probe" };
	struct fx *f = *state;
	char p[200];

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, ext[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A supervisor on loop, up on the fixture's journal. */
static struct journal_supervisor *sup_new(struct fx *f, uv_loop_t *loop)
{
	struct journal_supervisor_hooks hooks = { .state = on_state, .arg = f };
	struct journal_supervisor *s = NULL;

	assert_int_equal(uv_loop_init(loop), 0);
	assert_int_equal(journal_supervisor_new(loop, &f->cfg, &hooks, &s), 0);
	assert_int_equal(journal_supervisor_state(s), JOURNAL_STATE_UP);
	return s;
}

/* The supervisor's ordinary life: closed -> up, stopped, freed; no invariant breaks. */
static void test_supervisor_life(void **state)
{
	struct fx *f = *state;
	struct journal_supervisor *s;
	uv_loop_t loop;

	s = sup_new(f, &loop);
	assert_int_equal(f->ups, 1);
	assert_int_equal(f->downs, 0);
	assert_non_null(journal_supervisor_journal(s));
	journal_supervisor_stop(s);
	assert_int_equal(journal_supervisor_state(s), JOURNAL_STATE_STOPPED);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(journal_supervisor_free(s, 0), 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A suspended handle resumed: both transitions keep their invariants. */
static void test_suspend_resume(void **state)
{
	struct fx *f = *state;
	struct ssc_diag d;
	struct journal *j;

	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &j, &d), 0);
	journal_suspend(j, "a test");
	assert_int_equal(journal_suspended(j), 1);
	assert_int_equal(journal_resume(j, &d), 0);
	assert_int_equal(journal_suspended(j), 0);
	journal_close(j);
}

#ifdef SSC_INVARIANTS

/* Runs fn(f) in a child; returns its stderr (cap bytes) after checking that it aborted. */
static void aborts_in_child(struct fx *f, void (*fn)(struct fx *f), char *out, size_t cap)
{
	int pfd[2], status = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 2);
		fn(f);
		_exit(0);   /* not reached when the invariant is checked */
	}
	close(pfd[1]);
	while (got < cap - 1 && (n = read(pfd[0], out + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	out[got] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("the child did not abort (status %d); it said: %s", status, out);
}

/* A row through a suspended handle: the chain is extended only through an open database. */
static void insert_suspended(struct fx *f)
{
	struct jrow r = { 0 };
	struct ssc_diag d;
	struct journal *j;
	int64_t seq = 0;
	char hash[JOURNAL_HASH_HEX + 1];

	ssc_diag_init(&d);
	if (journal_open(f->db, NULL, 0, &j, &d) != 0)
		_exit(3);
	journal_suspend(j, "a test");
	journal_now_ts(&r);
	r.kind = "audit";
	r.result = "SSC_OK";
	(void)journal_row_insert(j, &r, &seq, hash);
}

/* A supervisor freed without its orderly stop (its loop handles still open). */
static void free_unstopped(struct fx *f)
{
	uv_loop_t loop;

	(void)journal_supervisor_free(sup_new(f, &loop), 0);
}

static void test_insert_suspended_aborts(void **state)
{
	char msg[4096];

	aborts_in_child(*state, insert_suspended, msg, sizeof(msg));
	assert_non_null(strstr(msg, "journal_chain.c:"));
	assert_non_null(strstr(msg, "invariant broken: j->db == NULL"));
}

static void test_free_before_stop_aborts(void **state)
{
	char msg[4096];

	aborts_in_child(*state, free_unstopped, msg, sizeof(msg));
	assert_non_null(strstr(msg, "journal_supervisor.c:"));
	assert_non_null(strstr(msg, "invariant broken: s->state == JOURNAL_STATE_STOPPED"));
}

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_supervisor_life, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suspend_resume, setup, teardown),
#ifdef SSC_INVARIANTS
		cmocka_unit_test_setup_teardown(test_insert_suspended_aborts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_before_stop_aborts, setup, teardown),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
