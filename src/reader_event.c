/*
 * This file contains what the reader core posts to the event loop (src/reader_event.h): events in
 * order, card.ready once per insertion, and the wake-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "invariant.h"
#include "log.h"
#include "reader_event.h"

void reader_event_notify_locked(struct readers *rd)
{
	uint64_t one = 1;

	if (rd->loop_gone || rd->wakeup_pending)
		return;
	rd->wakeup_pending = 1;
	/* Only EAGAIN (the counter full: a wake-up is pending anyway) can fail here. */
	if (write(rd->wakeup->fd, &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
		log_error("readers: cannot wake the event loop: %s", strerror(errno));
}

void reader_event_info(const struct reader *r, struct reader_info *ri)
{
	/* Busy is a running job, or one that overran and runs still. */
	INVARIANT(!r->overrun || r->running != NULL);
	memset(ri, 0, sizeof(*ri));
	memcpy(ri->id, r->id, sizeof(ri->id));
	memcpy(ri->name, r->name, sizeof(ri->name));
	snprintf(ri->driver, sizeof(ri->driver), "%s", r->mon->ops->name);
	memcpy(ri->serial, r->serial, sizeof(ri->serial));
	ri->card_present = r->card_present;
	ri->role = r->card_present ? r->role : READER_ROLE_UNKNOWN;
	ri->psam_alg = ri->role == READER_ROLE_PSAM ? r->psam_alg : SSC_ALG_NONE;
	if (ri->role == READER_ROLE_PSAM)
		memcpy(ri->psam_term, r->psam_term, sizeof(ri->psam_term));
	ri->busy = r->running != NULL || r->overrun;
	memcpy(ri->atr, r->atr, sizeof(ri->atr));
	ri->atr_len = r->atr_len;
	ri->queued = jobq_len(&r->q);
}

void reader_event_post_err(struct readers *rd, const struct reader *r, const char *type, int err)
{
	struct rd_event *e;

	if (rd->stopping || rd->loop_gone)
		return;
	e = malloc(sizeof(*e));
	if (!e) {
		log_error("readers: out of memory: event %s of %s lost", type, r->id);
		return;
	}
	e->next = NULL;
	e->type = type;
	reader_event_info(r, &e->ri);
	e->ri.ready_err = err;
	if (rd->ev_tail)
		rd->ev_tail->next = e;
	else
		rd->ev_head = e;
	rd->ev_tail = e;
	reader_event_notify_locked(rd);
}

void reader_event_post(struct readers *rd, const struct reader *r, const char *type)
{
	reader_event_post_err(rd, r, type, 0);
}

void reader_event_ready_locked(struct reader *r, int err)
{
	if (!r->card_present)
		return;
	if (r->ready_gen == r->card_gen && (r->ready_err == 0 || err != 0))
		return;
	r->ready_gen = r->card_gen;
	r->ready_err = err;
	reader_event_post_err(r->rd, r, "card.ready", err);
}

void reader_event_free_all(struct readers *rd)
{
	while (rd->ev_head) {
		struct rd_event *e = rd->ev_head;

		rd->ev_head = e->next;
		free(e);
	}
	rd->ev_tail = NULL;
}
