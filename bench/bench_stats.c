/*
 * This file contains the benchmark's latency samples and their summary (bench_stats.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_stats.h"

double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int bench_stats_add(struct bench_stats *s, double us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		double *v = realloc(s->us, cap * sizeof(*v));

		if (!v)
			return -1;
		s->us = v;
		s->cap = cap;
	}
	s->us[s->n++] = us;
	return 0;
}

static int bench_stats_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of sorted samples. */
static double bench_stats_rank(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

void bench_stats_summarise(struct bench_stats *s, struct bench_stats_summary *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	if (s->n == 0)
		return;
	qsort(s->us, s->n, sizeof(s->us[0]), bench_stats_cmp);
	for (size_t i = 0; i < s->n; i++)
		sum += s->us[i];
	out->n = s->n;
	out->min = s->us[0];
	out->max = s->us[s->n - 1];
	out->median = bench_stats_rank(s->us, s->n, 50);
	out->p90 = bench_stats_rank(s->us, s->n, 90);
	out->p99 = bench_stats_rank(s->us, s->n, 99);
	out->mean = sum / (double)s->n;
}

void bench_stats_print(FILE *f, const char *label, struct bench_stats *s)
{
	struct bench_stats_summary m;

	bench_stats_summarise(s, &m);
	fprintf(f, "%s n=%zu min_us=%.1f median_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
		"mean_us=%.1f\n", label, m.n, m.min, m.median, m.p90, m.p99, m.max, m.mean);
	fflush(f);
}

int bench_stats_write(const struct bench_stats *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "sscard-bench: cannot write %s\n", path);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%.1f\n", s->us[i]);
	if (fclose(f) != 0) {
		fprintf(stderr, "sscard-bench: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

void bench_stats_free(struct bench_stats *s)
{
	free(s->us);
	memset(s, 0, sizeof(*s));
}
