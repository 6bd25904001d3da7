/*
 * This file contains the journal benchmark (bench_journal.h), over the daemon's own journal code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_journal.h"
#include "bench_stats.h"
#include "journal.h"

#define BENCH_JOURNAL_BATCH 64   /* the audit writer's largest transaction (src/audit.c) */

static void bench_journal_rm(const char *dir)
{
	static const char *const files[] = { "bench.db", "bench.db-wal", "bench.db-shm",
					     "bench.db.key" };
	char path[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) < (int)sizeof(path))
			(void)unlink(path);
	}
	(void)rmdir(dir);
}

static void bench_journal_report(const char *label, int n, double t0, double t1,
				 struct bench_stats *st)
{
	char name[64];

	printf("%s rows=%d seconds=%.3f rows_per_s=%.1f\n", label, n, (t1 - t0) / 1e6,
	       n / ((t1 - t0) / 1e6));
	snprintf(name, sizeof(name), "%s_latency", label);
	bench_stats_print(stdout, name, st);
}

int bench_journal_run(const struct bench_journal_opts *o)
{
	struct journal_peer peer = { .uid = 1000, .pid = 4242, .exe = "/usr/bin/counter-app" };
	struct journal *j = NULL;
	struct ssc_diag diag;
	struct bench_stats st;
	char dir[4096], db[4200], ref[JOURNAL_REF_HEX + 1];
	double t0, t1;
	int rc = 1;

	memset(&st, 0, sizeof(st));
	ssc_diag_init(&diag);
	snprintf(dir, sizeof(dir), "%s/sscard-bench-journal.XXXXXX", o->dir);
	if (!mkdtemp(dir)) {
		perror("sscard-bench: mkdtemp");
		return 1;
	}
	snprintf(db, sizeof(db), "%s/bench.db", dir);
	if (journal_open(db, NULL, 0, &j, &diag) != 0) {
		fprintf(stderr, "sscard-bench: %s\n", diag.msg);
		goto out;
	}
	journal_card_ref(j, "X00000019", ref);

	t0 = bench_now_us();
	for (int i = 0; i < o->audit_rows; i++) {
		struct journal_audit row = { .peer = &peer, .method = "card.read_basic",
					     .reader = "pcsc-virtual-pcd-a-00-00", .card_ref = ref,
					     .result = "SSC_OK", .duration_ms = 3 };
		double s = bench_now_us();

		if (journal_audit(j, &row, &diag) != 0) {
			fprintf(stderr, "sscard-bench: audit: %s\n", diag.msg);
			goto out;
		}
		if (bench_stats_add(&st, bench_now_us() - s) != 0)
			goto out;
	}
	t1 = bench_now_us();
	bench_journal_report("journal_audit", o->audit_rows, t0, t1, &st);
	bench_stats_free(&st);

	/*
	 * What the daemon's audit writer does when rows gather ([journal] audit_batch_ms): up to
	 * 64 rows in one transaction. The latency figure is per transaction.
	 */
	t0 = bench_now_us();
	for (int i = 0; i < o->audit_rows; i += BENCH_JOURNAL_BATCH) {
		struct journal_audit rows[BENCH_JOURNAL_BATCH];
		int n = o->audit_rows - i < BENCH_JOURNAL_BATCH ? o->audit_rows - i :
			BENCH_JOURNAL_BATCH;
		double s;

		for (int k = 0; k < n; k++)
			rows[k] = (struct journal_audit){ .peer = &peer, .method = "card.read_basic",
							  .reader = "pcsc-virtual-pcd-a-00-00",
							  .card_ref = ref, .result = "SSC_OK",
							  .duration_ms = 3 };
		s = bench_now_us();
		if (journal_audit_batch(j, rows, (size_t)n, &diag) != 0) {
			fprintf(stderr, "sscard-bench: audit batch: %s\n", diag.msg);
			goto out;
		}
		if (bench_stats_add(&st, bench_now_us() - s) != 0)
			goto out;
	}
	t1 = bench_now_us();
	bench_journal_report("journal_audit_batch", o->audit_rows, t0, t1, &st);
	bench_stats_free(&st);

	t0 = bench_now_us();
	for (int i = 0; i < o->intents; i++) {
		int64_t id;
		double s = bench_now_us();

		if (journal_intent(j, &peer, ref, "pcsc-virtual-pcd-a-00-00", "DF04/EF08",
				   "{\"append\":\"0123456789abcdef0123456789abcdef\","
				   "\"serial\":\"S2024040100000000003\"}", &id, &diag) != 0 ||
		    journal_outcome(j, id, JOURNAL_APPLIED, "SSC_OK", "card", &diag) != 0) {
			fprintf(stderr, "sscard-bench: intent: %s\n", diag.msg);
			goto out;
		}
		if (bench_stats_add(&st, bench_now_us() - s) != 0)
			goto out;
	}
	t1 = bench_now_us();
	bench_journal_report("journal_intent", o->intents, t0, t1, &st);
	rc = 0;
out:
	journal_close(j);
	bench_journal_rm(dir);
	bench_stats_free(&st);
	return rc;
}
