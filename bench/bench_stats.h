/*
 * This file contains the latency samples of the benchmark: a growing array of durations in
 * microseconds, their summary (min, median, p90, p99, max, mean) and the one-line key=value form
 * in which sscard-bench reports them to bench/run.py.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct bench_stats {
	double *us;          /* samples in microseconds; owned */
	size_t n, cap;
};

struct bench_stats_summary {
	size_t n;
	double min, median, p90, p99, max, mean;
};

/* CLOCK_MONOTONIC now, in microseconds. */
double bench_now_us(void);

/* Adds one sample. Returns 0, or -1 when out of memory. */
int bench_stats_add(struct bench_stats *s, double us);

/* Sorts the samples and summarises them (nearest-rank percentiles). All zero when n = 0. */
void bench_stats_summarise(struct bench_stats *s, struct bench_stats_summary *out);

/* Prints "<label> n=.. min_us=.. median_us=.. p90_us=.. p99_us=.. max_us=.. mean_us=..\n". */
void bench_stats_print(FILE *f, const char *label, struct bench_stats *s);

/*
 * Writes the samples, one per line in microseconds, in the order they were taken (call before
 * bench_stats_summarise, which sorts them) to path. Returns 0, or -1 with a message on stderr.
 */
int bench_stats_write(const struct bench_stats *s, const char *path);

/* Frees the samples; the struct may be reused. */
void bench_stats_free(struct bench_stats *s);

#endif
