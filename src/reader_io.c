/*
 * This file contains the reader core's door to the drivers for a card (src/reader_io.h): the card
 * lock, the connection, and the choke point of every APDU.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "invariant.h"
#include "log.h"
#include "reader_io.h"

int reader_io_lock(struct reader *r, int64_t deadline)
{
	struct timespec ts;

	if (pthread_mutex_trylock(&r->card_lock) == 0)
		return 0;
	rd_abs_monotonic(&ts, deadline);
	return pthread_mutex_clocklock(&r->card_lock, CLOCK_MONOTONIC, &ts) == 0 ? 0
										   : SSC_ETIMEDOUT;
}

void reader_io_forget_locked(struct reader *r)
{
	void *kept = r->ahead;

	r->ahead = NULL;
	if (kept)
		r->rd->ahead.drop(kept);
}

/* The read-ahead's data lives no longer than the connection it was read over (card_lock held). */
static void reader_io_forget(struct reader *r)
{
	pthread_mutex_lock(&r->rd->lock);
	reader_io_forget_locked(r);
	pthread_mutex_unlock(&r->rd->lock);
}

void reader_io_drop(struct reader *r, int reset)
{
	reader_io_forget(r);
	if (r->slot)
		r->mon->ops->disconnect(r->slot, reset);
	r->slot = NULL;
	r->slot_broken = 0;
	r->slot_shared = 0;
	r->lent_memory = 0;
}

/*
 * A connection that was shared past its hold (reader_ahead_watch()) is made exclusive again, if
 * the card was neither removed nor reset since (the driver's status() on that very handle sees what
 * other programs did) and still counts the insertions the read-ahead saw. Otherwise it is closed,
 * the data with it, and the caller connects afresh. Returns 0 (slot open, or closed), or
 * SSC_EREADERBUSY when another program still holds the card at the deadline.
 */
static int reader_io_reclaim(struct reader *r, int64_t deadline)
{
	const struct ssc_driver_ops *ops = r->mon->ops;
	uint32_t insertions = 0;
	int64_t left;
	int rc;

	r->slot_shared = 0;
	if (ops->status(r->slot, &insertions) != 0 || insertions != r->ahead_insertions) {
		log_info("reader %s: the card was removed or reset since the daemon let other programs "
			 "use it: reading it again", r->id);
		reader_io_drop(r, 0);
		return 0;
	}
	left = rd_ms_until(deadline);
	if (left > r->rd->cfg->connect_timeout_ms)
		left = r->rd->cfg->connect_timeout_ms;
	rc = ops->claim(r->slot, left > 0 ? (int)left : 0);
	if (rc == 0)
		return 0;
	reader_io_drop(r, 0);
	return rc == SSC_EREADERBUSY ? rc : 0;
}

int reader_io_connect(struct reader *r, int64_t deadline)
{
	struct readers *rd = r->rd;
	const struct ssc_driver_ops *ops = r->mon->ops;
	struct ssc_slot *slot = NULL;
	unsigned gen;
	int present, rc;
	int64_t left;

	pthread_mutex_lock(&rd->lock);
	gen = r->card_gen;
	present = r->card_present;
	pthread_mutex_unlock(&rd->lock);

	if (r->slot && r->slot_gen != gen)
		reader_io_drop(r, 0);   /* another card since: that connection is stale */
	if (r->slot && r->slot_shared) {
		rc = reader_io_reclaim(r, deadline);
		if (rc != 0)
			return rc;
	}
	if (r->slot && r->slot_broken) {
		reader_io_forget(r);
		r->slot_atr_len = 0;
		r->lent_memory = 0;
		if (ops->reconnect(r->slot, r->slot_atr, &r->slot_atr_len) == 0) {
			r->slot_broken = 0;
			return 0;
		}
		reader_io_drop(r, 0);
	}
	if (r->slot)
		return 0;
	if (!present)
		return SSC_ENOCARD;
	left = rd_ms_until(deadline);
	if (left <= 0)
		return SSC_ETIMEDOUT;
	if (left > rd->cfg->connect_timeout_ms)
		left = rd->cfg->connect_timeout_ms;
	r->slot_atr_len = 0;
	rc = ops->connect(r->mon->drv, r->id, (int)left, &slot, r->slot_atr, &r->slot_atr_len);
	if (rc != 0)
		return rc;
	r->slot = slot;
	r->slot_gen = gen;
	r->slot_broken = 0;
	return 0;
}

/* The choke point: every APDU of every card and PSAM passes here. */
static int reader_io_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len,
			      uint8_t *resp, size_t resp_cap, unsigned flags)
{
	struct reader *r = io->ctx;
	int64_t left;
	int n;

	if (!r || !cmd || !resp || cmd_len < 4 || cmd_len > SSC_CMD_APDU_MAX || resp_cap < 2)
		return SSC_EINVAL;
	if (!r->slot || r->slot_broken)
		return SSC_ECARDREMOVED;
	/* Never start an APDU after the deadline: PC/SC could not stop it once sent. */
	left = rd_ms_until(io->deadline_ms);
	if (left <= 0) {
		log_debug("reader %s: deadline passed, APDU %02X %02X not sent", r->id, cmd[0],
			  cmd[1]);
		return SSC_ETIMEDOUT;
	}
	if (left > r->rd->cfg->apdu_timeout_ms)
		left = r->rd->cfg->apdu_timeout_ms;

	if (log_enabled(LOG_LVL_TRACE)) {
		char hex[2 * SSC_CMD_APDU_MAX + 1];

		if (flags & CARDIO_SECRET) {
			/* The body is a PIN or a PIN block: the header and Lc only, never the body. */
			hex_encode(cmd, cmd_len < 5 ? cmd_len : 5, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s > %s [%zu secret bytes]", r->id, hex,
				  cmd_len > 5 ? cmd_len - 5 : 0);
		} else {
			hex_encode(cmd, cmd_len, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s > %s", r->id, hex);
		}
	}

	if (r->rd->apdu_sent)
		r->rd->apdu_sent(r->mon->ops->name);
	n = r->mon->ops->transmit(r->slot, cmd, cmd_len, resp, resp_cap, (int)left);
	if (n >= 0 && (n < 2 || (size_t)n > resp_cap))
		n = SSC_EPROTO;   /* a driver must not do this; the layer above must never see it */

	if (n < 0) {
		log_trace("apdu %s < %s", r->id, ssc_strerror_name(n));
		if (n == SSC_ECARDREMOVED || n == SSC_ENOCARD || n == SSC_EREADER) {
			/*
			 * The card is gone (or reset under us): its connection is dead and what we
			 * remembered about this insertion no longer holds. The monitor reports the
			 * removal itself once the subsystem has noticed it.
			 */
			r->slot_broken = 1;
			r->insertion_flags = 0;
		}
	} else if (log_enabled(LOG_LVL_TRACE)) {
		char hex[2 * SSC_RESP_APDU_MAX + 1];

		if (flags & CARDIO_PERSONAL) {
			log_trace("apdu %s < [%d bytes] %02X%02X", r->id, n - 2, resp[n - 2],
				  resp[n - 1]);
		} else {
			hex_encode(resp, (size_t)n, hex, sizeof(hex), HEX_UPPER);
			log_trace("apdu %s < %s", r->id, hex);
		}
	}
	return n;
}

void reader_io_init(struct reader *r, struct card_io *io, int64_t deadline)
{
	INVARIANT(r->slot != NULL && !r->slot_broken);   /* over an open connection only */
	memset(io, 0, sizeof(*io));
	io->transmit = reader_io_transmit;
	io->ctx = r;
	memcpy(io->atr, r->slot_atr, sizeof(io->atr));
	io->atr_len = r->slot_atr_len;
	memcpy(io->reader_id, r->id, sizeof(io->reader_id));
	pthread_mutex_lock(&r->rd->lock);
	memcpy(io->reader_serial, r->serial, sizeof(io->reader_serial));
	pthread_mutex_unlock(&r->rd->lock);
	io->deadline_ms = deadline;
}
