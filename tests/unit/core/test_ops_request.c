/*
 * Unit tests of idempotent requests (src/ops_request.c) on a real journal file: which request_ids
 * are taken, what the fingerprint ignores (reader, request_id, PINs) and what it does not, the
 * journal's word on an earlier request (new, applied, pending, failed = new, partial = its error,
 * other params = SSC_EREQCONFLICT, the newest intent wins), PIN intents left out of the pending
 * counts, and the running set (conflict at once, a repeat waits until the first ends).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardio.h"
#include "ops_int.h"

struct fx {
	char dir[64];
	char db[128];
	struct journal *j;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ssc_diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ssc-opsreq-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/journal.db", f->dir);
	ssc_diag_init(&d);
	assert_int_equal(journal_open(f->db, NULL, 0, &f->j, &d), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	static const char *const ext[] = { "", ".key", "-wal", "-shm" };
	char p[160];

	journal_close(f->j);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, ext[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static int param_rc(const char *json)
{
	struct ops_request rq;
	struct ssc_diag d;
	json_t *p = json_loads(json, 0, NULL);
	int rc;

	assert_non_null(p);
	ssc_diag_init(&d);
	rc = ops_request_param(p, &rq, &d);
	json_decref(p);
	return rc;
}

static void test_request_id_forms(void **state)
{
	(void)state;
	assert_int_equal(param_rc("{}"), 0);
	assert_int_equal(param_rc("{\"request_id\":\"a\"}"), 0);
	assert_int_equal(param_rc("{\"request_id\":\"desk 7/2026-03-01#1\"}"), 0);
	assert_int_equal(param_rc("{\"request_id\":\"0123456789012345678901234567890123456789"
				  "012345678901234567890123\"}"), 0);            /* 64 */
	assert_int_equal(param_rc("{\"request_id\":\"0123456789012345678901234567890123456789"
				  "0123456789012345678901234\"}"), SSC_EINVAL);  /* 65 */
	assert_int_equal(param_rc("{\"request_id\":\"\"}"), SSC_EINVAL);
	assert_int_equal(param_rc("{\"request_id\":\"a\\tb\"}"), SSC_EINVAL);
	assert_int_equal(param_rc("{\"request_id\":\"a\\u007fb\"}"), SSC_EINVAL);
	assert_int_equal(param_rc("{\"request_id\":\"\\u00e9\"}"), SSC_EINVAL);
	assert_int_equal(param_rc("{\"request_id\":7}"), SSC_EINVAL);
}

/* The fingerprint of method and params (a JSON text). */
static void fp_of(struct journal *j, const char *method, const char *json, char *out)
{
	struct ops_request rq;
	struct ssc_diag d;
	json_t *p = json_loads(json, 0, NULL);

	assert_non_null(p);
	memset(&rq, 0, sizeof(rq));
	ssc_diag_init(&d);
	assert_int_equal(ops_request_fingerprint(j, method, p, &rq, &d), 0);
	json_decref(p);
	assert_int_equal(strlen(rq.fp), JOURNAL_REF_HEX);
	assert_int_equal(strspn(rq.fp, "0123456789abcdef"), JOURNAL_REF_HEX);
	memcpy(out, rq.fp, JOURNAL_REF_HEX + 1);
}

static void test_fingerprint(void **state)
{
	struct fx *f = *state;
	char a[JOURNAL_REF_HEX + 1], b[JOURNAL_REF_HEX + 1];

	fp_of(f->j, "card.write_items", "{\"file\":\"DF04/EF05\",\"items\":{\"31\":\"21\",\"34\":\"1\"}}",
	      a);
	/* Where it runs, its name and the PINs do not make it another request; key order neither. */
	fp_of(f->j, "card.write_items", "{\"items\":{\"34\":\"1\",\"31\":\"21\"},\"reader\":\"x\","
	      "\"request_id\":\"r9\",\"file\":\"DF04/EF05\"}", b);
	assert_string_equal(a, b);
	fp_of(f->j, "card.write_items", "{\"file\":\"DF04/EF05\",\"items\":{\"31\":\"22\",\"34\":\"1\"}}",
	      b);
	assert_string_not_equal(a, b);
	fp_of(f->j, "card.change_pin", "{\"old_pin\":\"123456\",\"new_pin\":\"246810\"}", a);
	fp_of(f->j, "card.change_pin", "{\"old_pin\":\"111111\",\"new_pin\":\"222222\","
	      "\"reader\":\"y\"}", b);
	assert_string_equal(a, b);
	fp_of(f->j, "card.reload_pin", "{\"new_pin\":\"246810\"}", b);
	assert_string_not_equal(a, b);
}

/* An intent carrying request_id rid and fingerprint fp; returns its id. */
static int64_t add_intent(struct journal *j, const char *file, const char *rid, const char *fp)
{
	char detail[256], ref[JOURNAL_REF_HEX + 1];
	struct ssc_diag d;
	int64_t id = 0;

	journal_card_ref(j, "X00000019", ref);
	snprintf(detail, sizeof(detail), "{\"op\":\"update\",\"records\":[],\"request_id\":\"%s\","
		 "\"fp\":\"%s\"}", rid, fp);
	ssc_diag_init(&d);
	assert_int_equal(journal_intent(j, NULL, ref, "r", file, detail, &id, &d), 0);
	return id;
}

static int lookup(struct journal *j, const char *rid, const char *fp, struct journal_request *jr)
{
	struct ops_request rq;
	struct ssc_diag d;

	memset(&rq, 0, sizeof(rq));
	snprintf(rq.id, sizeof(rq.id), "%s", rid);
	snprintf(rq.fp, sizeof(rq.fp), "%s", fp);
	ssc_diag_init(&d);
	return ops_request_lookup(j, &rq, jr, &d);
}

static void test_lookup(void **state)
{
	struct fx *f = *state;
	const char *fp = "0123456789abcdef0123456789abcdef";
	const char *other = "fedcba9876543210fedcba9876543210";
	struct journal_request jr;
	struct ssc_diag d;
	int64_t i1, i2, i3;

	ssc_diag_init(&d);
	assert_int_equal(lookup(f->j, "r1", fp, &jr), OPS_REQ_NEW);
	i1 = add_intent(f->j, "DF04/EF05", "r1", fp);
	assert_int_equal(lookup(f->j, "r1", fp, &jr), OPS_REQ_PENDING);
	assert_int_equal(jr.intent, i1);
	assert_string_equal(jr.file, "DF04/EF05");
	assert_int_equal(lookup(f->j, "r1", other, &jr), SSC_EREQCONFLICT);
	assert_int_equal(lookup(f->j, "r2", fp, &jr), OPS_REQ_NEW);
	/* Failed with nothing applied: runs again; its repeat's intent is the one asked then. */
	assert_int_equal(journal_outcome(f->j, i1, JOURNAL_FAILED, "SSC_ENOTFOUND", "readback", &d),
			 0);
	assert_int_equal(lookup(f->j, "r1", fp, &jr), OPS_REQ_NEW);
	i2 = add_intent(f->j, "DF04/EF05", "r1", fp);
	assert_int_equal(journal_outcome(f->j, i2, JOURNAL_APPLIED, "SSC_OK", "card", &d), 0);
	assert_int_equal(lookup(f->j, "r1", fp, &jr), OPS_REQ_APPLIED);
	assert_int_equal(jr.intent, i2);
	/* Applied in part: the first call's error, never run again. */
	i3 = add_intent(f->j, "SSSE/EF06", "r3", fp);
	assert_int_equal(journal_outcome(f->j, i3, JOURNAL_PARTIAL, "SSC_ECARDREMOVED",
					 "readback; written 0B; not written 09", &d), 0);
	assert_int_equal(lookup(f->j, "r3", fp, &jr), SSC_ECARDREMOVED);
	/* A pending PIN intent is left out of the counts that hold up writes and insertions. */
	assert_int_equal(journal_pending_count(f->j, NULL), 0);
	add_intent(f->j, JOURNAL_PIN_FILE, "p1", fp);
	assert_int_equal(journal_pending_count(f->j, NULL), 0);
	assert_int_equal(lookup(f->j, "p1", fp, &jr), OPS_REQ_PENDING);
	assert_string_equal(jr.file, "PIN");
	add_intent(f->j, "DF04/EF05", "r4", fp);
	assert_int_equal(journal_pending_count(f->j, NULL), 1);
}

static struct ops_request waiter;
static int waiter_rc;

static void *claim_waiting(void *arg)
{
	struct ssc_diag d;

	(void)arg;
	ssc_diag_init(&d);
	waiter_rc = ops_request_claim(&waiter, cardio_now_ms() + 10000, &d);
	return NULL;
}

static void test_running(void **state)
{
	struct ops_request first, other, same;
	struct ssc_diag d;
	pthread_t t;

	(void)state;
	memset(&first, 0, sizeof(first));
	snprintf(first.id, sizeof(first.id), "run-1");
	snprintf(first.fp, sizeof(first.fp), "0123456789abcdef0123456789abcdef");
	other = first;
	other.fp[0] = 'f';
	same = first;
	ssc_diag_init(&d);
	assert_int_equal(ops_request_claim(&first, cardio_now_ms() + 1000, &d), 0);
	assert_int_equal(first.claimed, 1);
	assert_int_equal(ops_request_claim(&other, cardio_now_ms() + 1000, &d), SSC_EREQCONFLICT);
	/* The same request while the first runs: waits, here until a deadline already past. */
	assert_int_equal(ops_request_claim(&same, cardio_now_ms(), &d), SSC_EOUTCOME);
	assert_int_equal(same.claimed, 0);
	/* A waiter on another thread gets it once the first ends. */
	waiter = first;
	waiter.claimed = 0;
	waiter_rc = 99;
	assert_int_equal(pthread_create(&t, NULL, claim_waiting, NULL), 0);
	usleep(100 * 1000);
	assert_int_equal(__atomic_load_n(&waiter_rc, __ATOMIC_SEQ_CST), 99);
	ops_request_release(&first);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(waiter_rc, 0);
	assert_int_equal(waiter.claimed, 1);
	ops_request_release(&waiter);
	ops_request_release(&waiter);   /* a no-op */
	assert_int_equal(ops_request_claim(&other, cardio_now_ms() + 1000, &d), 0);
	ops_request_release(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_id_forms),
		cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test(test_running),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
