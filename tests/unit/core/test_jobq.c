/*
 * This file contains the unit tests of a reader's wait queue (src/jobq.c): turns across owners,
 * the limits per owner and in all, removal from anywhere, and a newcomer's place. The expected
 * orders are worked out by hand from the rule in src/jobq.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jobq.h"
#include "sscard/error.h"

/* A job as a test sees it: a name such as "A3" (owner A, its third). */
struct tjob {
	struct jobq_item it;
	char name[8];
};

#define OWNER(c) ((const void *)(uintptr_t)(c))   /* owners are compared, never read */

static struct tjob jobs[64];
static int n_jobs;

static struct tjob *push(struct jobq *q, char owner, int expect)
{
	struct tjob *j = &jobs[n_jobs++];
	int per = 1;

	for (int i = 0; i < n_jobs - 1; i++)
		per += jobs[i].name[0] == owner;
	memset(&j->it, 0, sizeof(j->it));
	j->name[0] = owner;
	j->name[1] = (char)('0' + per % 10);
	j->name[2] = '\0';
	assert_int_equal(jobq_push(q, &j->it, OWNER(owner)), expect);
	return j;
}

/* Pops n items and returns their names joined ("A1 B1 A2"); "" when nothing was there. */
static const char *pop_names(struct jobq *q, int n)
{
	static char out[256];
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		struct jobq_item *it = jobq_pop(q);
		struct tjob *j;

		if (!it)
			break;
		j = (struct tjob *)((char *)it - offsetof(struct tjob, it));
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", j->name);
	}
	return out;
}

static int setup(void **state)
{
	(void)state;
	memset(jobs, 0, sizeof(jobs));
	n_jobs = 0;
	return 0;
}

static void test_one_owner_fifo(void **state)
{
	struct jobq q;

	(void)state;
	jobq_init(&q, 16, 64);
	assert_null(jobq_pop(&q));
	for (int i = 0; i < 4; i++)
		push(&q, 'A', 0);
	assert_int_equal(jobq_len(&q), 4);
	assert_int_equal(jobq_owner_len(&q, OWNER('A')), 4);
	assert_string_equal(pop_names(&q, 10), "A1 A2 A3 A4");
	assert_int_equal(jobq_len(&q), 0);
	assert_int_equal(jobq_owner_len(&q, OWNER('A')), 0);
	jobq_done(&q);
}

static void test_turns(void **state)
{
	struct jobq q;

	(void)state;
	jobq_init(&q, 16, 64);
	/* A queues five; A1 goes to the card; then B queues two and C one. */
	for (int i = 0; i < 5; i++)
		push(&q, 'A', 0);
	assert_string_equal(pop_names(&q, 1), "A1");
	push(&q, 'B', 0);
	push(&q, 'B', 0);
	push(&q, 'C', 0);
	/*
	 * After A1: time 0, A at 1. B and C join at 0 (B first: older). Then B1 (B to 1), C1 (C
	 * done), A2 (time 1, A to 2), B2 (B done), then A's rest.
	 */
	assert_string_equal(pop_names(&q, 10), "B1 C1 A2 B2 A3 A4 A5");
	jobq_done(&q);
}

static void test_newcomer_waits_for_no_backlog(void **state)
{
	struct jobq q;

	(void)state;
	jobq_init(&q, 16, 64);
	/* Two owners with a backlog take turns; a newcomer waits for no backlog, only for turns. */
	for (int i = 0; i < 4; i++) {
		push(&q, 'A', 0);
		push(&q, 'B', 0);
	}
	assert_string_equal(pop_names(&q, 3), "A1 B1 A2");
	/*
	 * A newcomer joins at the time of the job served last (A2's, 1): after B, whose turn at 1
	 * is still to come, and before A's next (at 2).
	 */
	push(&q, 'N', 0);
	assert_string_equal(pop_names(&q, 2), "B2 N1");
	assert_string_equal(pop_names(&q, 1), "A3");
	/*
	 * N's lane ran dry. It joins again at the time of A3 (2), with no credit for the turns it
	 * missed: B (at 2, older) first, then N, then everyone at 3.
	 */
	push(&q, 'N', 0);
	push(&q, 'N', 0);
	assert_string_equal(pop_names(&q, 10), "B3 N2 A4 B4 N3");
	jobq_done(&q);
}

static void test_limits(void **state)
{
	struct jobq q;

	(void)state;
	jobq_init(&q, 3, 5);
	push(&q, 'A', 0);
	push(&q, 'A', 0);
	push(&q, 'A', 0);
	push(&q, 'A', SSC_ELIMIT);   /* A's fourth: over its own limit */
	n_jobs--;
	push(&q, 'B', 0);            /* another owner is not refused for A's sake */
	push(&q, 'B', 0);
	push(&q, 'C', SSC_ELIMIT);   /* five in all */
	n_jobs--;
	assert_int_equal(jobq_len(&q), 5);
	assert_string_equal(pop_names(&q, 1), "A1");
	push(&q, 'C', 0);
	assert_string_equal(pop_names(&q, 10), "B1 C1 A2 B2 A3");
	jobq_done(&q);
}

static void test_remove(void **state)
{
	struct jobq q, other;
	struct tjob *a2, *b1, *c1;

	(void)state;
	jobq_init(&q, 16, 64);
	jobq_init(&other, 16, 64);
	push(&q, 'A', 0);
	a2 = push(&q, 'A', 0);
	push(&q, 'A', 0);
	b1 = push(&q, 'B', 0);
	c1 = push(&q, 'C', 0);
	assert_int_equal(jobq_remove(&other, &a2->it), SSC_ENOTFOUND);   /* not that queue's */
	assert_int_equal(jobq_remove(&q, &a2->it), 0);                    /* from the middle */
	assert_int_equal(jobq_remove(&q, &a2->it), SSC_ENOTFOUND);        /* not queued any more */
	assert_int_equal(jobq_remove(&q, &b1->it), 0);                    /* B's lane runs dry */
	assert_int_equal(jobq_owner_len(&q, OWNER('B')), 0);
	assert_int_equal(jobq_len(&q), 3);
	/* A pushed again after a removal: still behind A's remaining ones. */
	push(&q, 'A', 0);
	assert_string_equal(pop_names(&q, 10), "A1 C1 A3 A4");
	assert_int_equal(jobq_remove(&q, &c1->it), SSC_ENOTFOUND);        /* served already */
	jobq_done(&q);
	jobq_done(&other);
}

static void test_done_with_items(void **state)
{
	struct jobq q;
	struct tjob *a1;

	(void)state;
	jobq_init(&q, 16, 64);
	a1 = push(&q, 'A', 0);
	push(&q, 'B', 0);
	jobq_done(&q);   /* frees the lanes; the items are the caller's */
	assert_int_equal(jobq_len(&q), 0);
	assert_null(a1->it.lane);
	jobq_done(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_one_owner_fifo, setup),
		cmocka_unit_test_setup(test_turns, setup),
		cmocka_unit_test_setup(test_newcomer_waits_for_no_backlog, setup),
		cmocka_unit_test_setup(test_limits, setup),
		cmocka_unit_test_setup(test_remove, setup),
		cmocka_unit_test_setup(test_done_with_items, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
