/*
 * This file contains the reader core's read-ahead (src/reader_ahead.h): the read on insertion, and
 * the data handed to the jobs of that insertion once the driver confirmed the card untouched.
 */
#include <pthread.h>
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "reader_ahead.h"
#include "reader_io.h"
#include "reader_job.h"

int reader_ahead_enabled(const struct reader *r)
{
	const struct readers *rd = r->rd;

	return rd->ahead.read && rd->cfg->prefetch && rd->cfg->card_hold_ms > 0 &&
	       r->mon->ops->status != NULL;
}

void reader_ahead_read(struct reader *r, unsigned gen)
{
	struct readers *rd = r->rd;
	const struct ssc_driver_ops *ops = r->mon->ops;
	int64_t t0 = cardio_now_ms();
	struct card_io io;
	void *kept = NULL;
	uint32_t insertions = 0;
	unsigned flags;
	int reset = 0, leased, rc;

	pthread_mutex_lock(&rd->lock);
	leased = reader_lease_locked(r) != 0 || r->card_gen != gen;
	pthread_mutex_unlock(&rd->lock);
	if (leased || !r->slot || r->slot_broken || r->slot_gen != gen) {
		reader_io_drop(r, 0);
		return;
	}
	if (r->flags_gen != gen) {
		r->flags_gen = gen;
		r->insertion_flags = 0;
	}
	flags = r->insertion_flags;
	reader_io_init(r, &io, t0 + rd->cfg->op_timeout_ms);
	rc = rd->ahead.read(rd->ahead.arg, &io, &flags, &reset, &kept);
	if (!r->slot_broken && r->flags_gen == gen)
		r->insertion_flags = flags;
	if (rc == 0 && !kept)
		rc = SSC_ENOTFOUND;   /* nothing worth keeping */
	if (rc == 0 && reset && !r->slot_broken) {
		/*
		 * The read left a security state (read authorisation): reset the card over the same
		 * connection, which stays exclusive, so that nobody else can have touched it since.
		 */
		r->slot_atr_len = 0;
		if (ops->reconnect(r->slot, r->slot_atr, &r->slot_atr_len) != 0)
			rc = SSC_ECARDREMOVED;
		else
			reset = 0;
	}
	if (rc == 0 && (r->slot_broken || ops->status(r->slot, &insertions) != 0))
		rc = SSC_ECARDREMOVED;

	pthread_mutex_lock(&rd->lock);
	if (rc == 0 && r->card_gen == gen && reader_lease_locked(r) == 0) {
		reader_io_forget_locked(r);
		r->ahead = kept;
		r->ahead_gen = gen;
		kept = NULL;
	} else if (rc == 0) {
		rc = SSC_ECARDREMOVED;   /* the card left meanwhile */
	}
	r->ahead_err = rc;
	r->ahead_err_gen = gen;
	pthread_mutex_unlock(&rd->lock);

	if (rc == 0) {
		/* Held, as after a job: the data lives as long as this connection. */
		r->ahead_insertions = insertions;
		r->hold_until_ms = cardio_now_ms() + rd->cfg->card_hold_ms;
		log_debug("reader %s: card read ahead (%lld ms)", r->id,
			  (long long)(cardio_now_ms() - t0));
		return;
	}
	if (kept)
		rd->ahead.drop(kept);
	log_debug("reader %s: nothing kept from the read-ahead: %s", r->id, ssc_strerror_name(rc));
	r->hold_until_ms = 0;
	reader_io_drop(r, reset);
}

void reader_ahead_again_locked(struct readers *rd)
{
	for (struct reader *r = rd->table; r; r = r->next) {
		if (r->card_present && !r->ahead && r->ahead_err == SSC_ENOPSAM &&
		    r->ahead_err_gen == r->card_gen) {
			r->ahead_again = 1;
			pthread_cond_signal(&r->cond);
		}
	}
}

int reader_ahead_watch(struct reader *r)
{
	struct readers *rd = r->rd;
	const struct ssc_driver_ops *ops = r->mon->ops;
	uint32_t insertions = 0;
	int keep;

	if (!rd->cfg->prefetch_shared || !ops->share || !ops->claim || !r->slot || r->slot_broken ||
	    r->slot_shared)
		return 0;
	pthread_mutex_lock(&rd->lock);
	keep = r->ahead != NULL && r->ahead_gen == r->card_gen && r->slot_gen == r->card_gen &&
	       reader_lease_locked(r) == 0;
	pthread_mutex_unlock(&rd->lock);
	if (!keep || ops->status(r->slot, &insertions) != 0 || insertions != r->ahead_insertions ||
	    ops->share(r->slot) != 0)
		return 0;
	/* The same insertion after share() too (PC/SC opens a new handle for it). */
	if (ops->status(r->slot, &insertions) != 0 || insertions != r->ahead_insertions)
		return 0;
	r->slot_shared = 1;
	log_debug("reader %s: card let go to other programs, watched for the data read ahead", r->id);
	return 1;
}

void *reader_ahead_take(struct reader *r, unsigned gen, int64_t deadline, int *err)
{
	struct readers *rd = r->rd;
	void *kept;
	uint32_t insertions = 0;
	int rc;

	*err = 0;
	pthread_mutex_lock(&rd->lock);
	kept = r->ahead_gen == gen ? r->ahead : NULL;
	if (kept)
		r->ahead = NULL;
	else
		reader_io_forget_locked(r);   /* of another insertion */
	pthread_mutex_unlock(&rd->lock);
	if (!kept)
		return NULL;
	INVARIANT(r->slot != NULL);
	rc = r->slot && !r->slot_broken && r->slot_gen == gen
		     ? r->mon->ops->status(r->slot, &insertions) : SSC_ECARDREMOVED;
	if (rc == 0 && insertions == r->ahead_insertions)
		return kept;

	/* Removed or reset since the read (or the counter moved): never answer from it. */
	rd->ahead.drop(kept);
	log_info("reader %s: the card was removed or reset since it was read ahead: reading it "
		 "again", r->id);
	r->slot_broken = 1;
	r->insertion_flags = 0;
	*err = reader_io_connect(r, deadline);
	return NULL;
}

void reader_ahead_put(struct reader *r, void *kept, unsigned gen, int keep)
{
	struct readers *rd = r->rd;

	if (!kept)
		return;
	if (keep && r->slot && !r->slot_broken && r->slot_gen == gen && r->hold_until_ms) {
		pthread_mutex_lock(&rd->lock);
		if (r->card_gen == gen && !r->ahead) {
			r->ahead = kept;
			r->ahead_gen = gen;
			kept = NULL;
		}
		pthread_mutex_unlock(&rd->lock);
	}
	if (kept)
		rd->ahead.drop(kept);
}
