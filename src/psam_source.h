/*
 * This file contains how the PSAM key provider reaches PSAM cards without knowing readers: the
 * PSAM pool (src/psam_pool.c) implements this table over the PSAMs the reader core lends out, and
 * hands out one PSAM at a time, locked, to the calling worker thread.
 */
#ifndef SSC_PSAM_SOURCE_H
#define SSC_PSAM_SOURCE_H

#include <stdint.h>

#include "cardio.h"
#include "keyprov.h"

struct psam_source {
	/*
	 * Finds a PSAM whose algorithm is alg, locks it for the caller and returns its connection in
	 * *io (the SSC key application already selected). Waits for the lock at most until
	 * deadline_ms. Returns 0, SSC_ENOPSAM (no PSAM at all), SSC_EPSAMALGO (PSAMs, none for alg),
	 * SSC_ETIMEDOUT (all matching PSAMs busy until the deadline). Any worker thread.
	 */
	int (*acquire)(void *ctx, enum ssc_alg alg, int64_t deadline_ms, struct card_io **io);

	/*
	 * Unlocks a PSAM from acquire(). broken != 0 says the PSAM failed at transport level (removed,
	 * timed out): the core re-probes it before handing it out again.
	 */
	void (*release)(void *ctx, struct card_io *io, int broken);

	/* Which algorithms are present now: bit (1 << alg) set per algorithm; 0 = no PSAM. */
	unsigned (*algorithms)(void *ctx);

	/*
	 * The terminal number (12 hex digits + NUL) that the probe read from a present PSAM of
	 * algorithm alg, without talking to it. Returns 0, or SSC_ENOTFOUND when none is known
	 * (the caller then reads it through acquire()), SSC_ENOPSAM / SSC_EPSAMALGO as acquire().
	 * Optional (NULL). Any thread; never blocks on a card.
	 */
	int (*terminal_number)(void *ctx, enum ssc_alg alg, char out[13]);

	void *ctx;
};

#endif
