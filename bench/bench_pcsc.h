/*
 * This file contains the bare PC/SC client of the benchmark: it sends an APDU script (bench_seq.h)
 * straight to pcscd, as many times as asked, and times each run. It is the physical limit the
 * daemon is compared with: the same APDUs with nothing around them. Options add, one by one, the
 * PC/SC calls the daemon's driver makes around each operation, or the hand-off of each run to
 * another thread and back, so that the daemon's overhead can be attributed.
 */
#ifndef BENCH_PCSC_H
#define BENCH_PCSC_H

#include "bench_seq.h"

struct bench_pcsc_opts {
	const char *card_reader;    /* pcscd's reader name */
	const char *psam_reader;    /* needed when the script has psam steps */
	int runs;                   /* timed runs */
	int warmup;                 /* untimed runs first */
	int connect_per_run;        /* SCardConnect (exclusive) + SCardStatus + SCardDisconnect each run */
	int context_per_run;        /* and SCardEstablishContext + SCardListReaders + release */
	int reset_per_run;          /* disconnect with SCARD_RESET_CARD (as after an authentication) */
	int verbose;                /* print every exchange of the first run */
	int handoff;                /* each run is handed to a second thread through a pipe and its
				       end handed back the same way (what a daemon's worker does) */
	const char *samples;        /* write every timed run's duration here (NULL: don't) */
};

/*
 * Runs the script (runs + warmup) times and prints one stats line ("pcsc ...", bench_stats.h).
 * Every answer's status word is checked against the script. Returns 0, or 1 after printing why it
 * failed (PC/SC error, wrong status word). Blocks on pcscd (no deadline: SCardTransmit has none;
 * run.py bounds the whole program with a timeout).
 */
int bench_pcsc_run_all(const struct bench_seq *s, const struct bench_pcsc_opts *o);

#endif
