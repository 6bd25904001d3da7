/*
 * This file contains a reader's wait queue (src/jobq.h): lanes of items per owner, kept oldest
 * first, and the turn-taking between them (start-time fair queuing with one unit per job). Lanes
 * exist only while they hold items; a queue holds at most total_max items, so every walk here is
 * short.
 */
#include <stdlib.h>

#include "invariant.h"
#include "jobq.h"
#include "sscard/error.h"

struct jobq_lane {
	const void *owner;
	struct jobq_item *head, *tail;
	int n;
	uint64_t vtime;             /* the virtual time of its next item */
	struct jobq_lane *prev, *next;
};

void jobq_init(struct jobq *q, int owner_max, int total_max)
{
	q->lanes = NULL;
	q->vtime = 0;
	q->len = 0;
	q->owner_max = owner_max > 0 ? owner_max : 1;
	q->total_max = total_max > 0 ? total_max : 1;
}

static void lane_unlink(struct jobq *q, struct jobq_lane *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		q->lanes = l->next;
	if (l->next)
		l->next->prev = l->prev;
	free(l);
}

void jobq_done(struct jobq *q)
{
	if (!q)
		return;
	while (q->lanes) {
		for (struct jobq_item *it = q->lanes->head; it; it = it->next)
			it->lane = NULL;
		lane_unlink(q, q->lanes);
	}
	q->len = 0;
}

static struct jobq_lane *lane_find(const struct jobq *q, const void *owner)
{
	for (struct jobq_lane *l = q->lanes; l; l = l->next)
		if (l->owner == owner)
			return l;
	return NULL;
}

int jobq_push(struct jobq *q, struct jobq_item *it, const void *owner)
{
	struct jobq_lane *l = lane_find(q, owner);

	INVARIANT(it->lane == NULL);   /* not queued already */
	if (q->len >= q->total_max || (l && l->n >= q->owner_max))
		return SSC_ELIMIT;
	if (!l) {
		struct jobq_lane **pp = &q->lanes, *prev = NULL;

		l = calloc(1, sizeof(*l));
		if (!l)
			return SSC_ENOMEM;
		l->owner = owner;
		/* It joins now: it takes its turn from the job served last, with no credit. */
		l->vtime = q->vtime;
		while (*pp) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		l->prev = prev;
		*pp = l;
	}
	it->owner = owner;
	it->lane = l;
	it->next = NULL;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->n++;
	q->len++;
	return 0;
}

/* Takes it out of its lane l (it is queued there); frees the lane when it runs dry. */
static void lane_take(struct jobq *q, struct jobq_lane *l, struct jobq_item *it)
{
	struct jobq_item **pp = &l->head, *prev = NULL;

	while (*pp != it) {
		INVARIANT(*pp != NULL);   /* it is in this lane */
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = it->next;
	if (l->tail == it)
		l->tail = prev;
	it->next = NULL;
	it->lane = NULL;
	l->n--;
	q->len--;
	/* A lane holds items exactly while it counts them; it leaves the queue with its last one. */
	INVARIANT(l->n >= 0 && q->len >= 0 && (l->n == 0) == (l->head == NULL));
	if (l->n == 0)
		lane_unlink(q, l);
}

struct jobq_item *jobq_pop(struct jobq *q)
{
	struct jobq_lane *best = NULL;
	struct jobq_item *it;

	/* Lanes are kept oldest first, so the first of the smallest virtual time is the one. */
	for (struct jobq_lane *l = q->lanes; l; l = l->next)
		if (!best || l->vtime < best->vtime)
			best = l;
	if (!best)
		return NULL;
	q->vtime = best->vtime;
	best->vtime++;
	it = best->head;
	lane_take(q, best, it);
	return it;
}

int jobq_remove(struct jobq *q, struct jobq_item *it)
{
	struct jobq_lane *l = it->lane;
	int found = 0;

	/* Only a lane of this queue: an item queued elsewhere is not ours to touch. */
	for (struct jobq_lane *x = q->lanes; x && !found; x = x->next)
		found = x == l;
	if (!l || !found)
		return SSC_ENOTFOUND;
	lane_take(q, l, it);
	return 0;
}

int jobq_len(const struct jobq *q)
{
	return q->len;
}

int jobq_owner_len(const struct jobq *q, const void *owner)
{
	const struct jobq_lane *l = lane_find(q, owner);

	return l ? l->n : 0;
}
