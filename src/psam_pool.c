/*
 * This file contains the PSAM pool (src/psam_pool.h): the PSAM key provider's access to the PSAMs
 * that the reader core lends out, with the SELECT of the key application (spec §12.6) done once
 * per connection and its status word checked here, beside the rest of the PSAM's commands.
 */
#include <string.h>

#include "apdu.h"
#include "log.h"
#include "psam_pool.h"

#define PSAM_POOL_SELECTED 0x1   /* the key application is selected on this connection */

/* SELECT of the key application on a PSAM just lent. Returns 0, SSC_EPSAM, or the transport's. */
static int psam_pool_select(struct psam_pool *pool, struct card_io *io)
{
	uint8_t cmd[5 + sizeof(pool->cfg->psam_aid)], resp[SSC_RESP_APDU_MAX];
	size_t aid_len = pool->cfg->psam_aid_len <= sizeof(pool->cfg->psam_aid)
				 ? pool->cfg->psam_aid_len
				 : sizeof(pool->cfg->psam_aid);
	int n;

	n = apdu_build(cmd, sizeof(cmd), 0x00, 0xA4, 0x04, 0x00, pool->cfg->psam_aid, aid_len,
		       APDU_LE_NONE);
	if (n < 0)
		return n;
	n = io->transmit(io, cmd, (size_t)n, resp, sizeof(resp), 0);
	if (n < 0)
		return n;
	if (!(resp[n - 2] == 0x90 && resp[n - 1] == 0x00) && resp[n - 2] != 0x61) {
		log_warn("reader %s: PSAM refused the SELECT of its key application (%02X%02X)",
			 io->reader_id, resp[n - 2], resp[n - 1]);
		return SSC_EPSAM;
	}
	return 0;
}

static int psam_pool_acquire(void *ctx, enum ssc_alg alg, int64_t deadline_ms, struct card_io **io)
{
	struct psam_pool *pool = ctx;
	struct card_io *lent = NULL;
	unsigned *memory;
	int rc;

	rc = readers_psam_lend(pool->rd, alg, deadline_ms, &lent);
	if (rc == SSC_ENOPSAM || rc == SSC_EPSAMALGO || rc == SSC_ETIMEDOUT)
		return rc;
	if (rc != 0)
		return SSC_ENOPSAM;   /* its reader could not open it: it is probed again */
	memory = readers_lent_memory(lent);
	/* Selected on this very connection before: every provider call starts with its own DELIVER
	 * KEY, so nothing of the last user's work is used. */
	if (!(*memory & PSAM_POOL_SELECTED)) {
		rc = psam_pool_select(pool, lent);
		if (rc != 0) {
			readers_psam_return(pool->rd, lent, rc != SSC_ETIMEDOUT);
			return rc == SSC_ETIMEDOUT || rc == SSC_EPSAM ? rc : SSC_ENOPSAM;
		}
		*memory |= PSAM_POOL_SELECTED;
	}
	*io = lent;
	return 0;
}

static void psam_pool_release(void *ctx, struct card_io *io, int broken)
{
	struct psam_pool *pool = ctx;

	if (!io)
		return;
	if (!broken && io->deadline_ms && io->deadline_ms - cardio_now_ms() <= 0)
		*readers_lent_memory(io) &= ~(unsigned)PSAM_POOL_SELECTED;   /* select afresh */
	readers_psam_return(pool->rd, io, broken);
}

static unsigned psam_pool_algorithms(void *ctx)
{
	struct psam_pool *pool = ctx;

	return readers_psam_algorithms(pool->rd);
}

static int psam_pool_terminal(void *ctx, enum ssc_alg alg, char out[13])
{
	struct psam_pool *pool = ctx;

	return readers_psam_terminal(pool->rd, alg, out);
}

void psam_pool_init(struct psam_pool *pool, struct readers *rd, const struct config *cfg)
{
	memset(pool, 0, sizeof(*pool));
	pool->rd = rd;
	pool->cfg = cfg;
	pool->src.acquire = psam_pool_acquire;
	pool->src.release = psam_pool_release;
	pool->src.algorithms = psam_pool_algorithms;
	pool->src.terminal_number = psam_pool_terminal;
	pool->src.ctx = pool;
}
