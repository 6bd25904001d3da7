/*
 * This file contains the PSAM pool: the struct psam_source that the PSAM key provider draws on,
 * over the PSAMs of the reader core. It borrows a PSAM from the core for each use and selects the
 * PSAM's key application (cfg->psam_aid) once per connection, checking its status word.
 */
#ifndef SSC_PSAM_POOL_H
#define SSC_PSAM_POOL_H

#include "config.h"
#include "psam_source.h"
#include "readers.h"

/* Embedded by its user; set up with psam_pool_init(); nothing to free. */
struct psam_pool {
	struct psam_source src;        /* what psam_keyprov_new() takes; ctx is the pool */
	struct readers *rd;            /* borrowed */
	const struct config *cfg;      /* borrowed */
};

/*
 * Sets pool up over rd and cfg (both borrowed; they must outlive the pool). pool->src then
 * behaves as psam_source.h says: acquire() lends a PSAM of the algorithm from rd, with its key
 * application selected (SELECT 00 A4 04 00 Lc cfg->psam_aid, sent on a new connection only;
 * 9000 or 61xx accepted); a PSAM that refuses it gives SSC_EPSAM (logged, the PSAM reset and
 * probed again), a PSAM whose reader cannot open it SSC_ENOPSAM. release() forgets the selection
 * when the deadline of the use passed (the PSAM may have stopped mid-exchange).
 */
void psam_pool_init(struct psam_pool *pool, struct readers *rd, const struct config *cfg);

#endif
