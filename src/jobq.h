/*
 * This file contains the wait queue of one reader: the jobs waiting for its worker, in one lane
 * per owner (the client connection that submitted them), served in turn across the owners so that
 * no owner can hold the reader for the others by queueing. A data structure only: the caller
 * locks, allocates the items (embedded in its jobs) and does the waiting.
 */
#ifndef SSC_JOBQ_H
#define SSC_JOBQ_H

#include <stdint.h>

/*
 * One queued entry, embedded in the caller's job. The owner is set by jobq_push(); the other
 * members are the queue's.
 */
struct jobq_item {
	const void *owner;          /* whose it is (compared, never dereferenced); NULL is an owner too */
	struct jobq_item *next;     /* the lane's order */
	struct jobq_lane *lane;     /* the lane holding it; NULL when not queued */
};

struct jobq_lane;

/*
 * The queue. Order: each lane has a virtual time, the number of its jobs served so far counted
 * from the moment it (last) joined; jobq_pop() serves the lane with the smallest one, the oldest
 * lane first among equals, and a lane that joins starts at the virtual time of the job served
 * last. So owners take turns, one job each; a newcomer waits for at most the job on the card (and
 * for newcomers before it), never for another owner's backlog; and an owner whose lane ran dry
 * earns no credit for later.
 */
struct jobq {
	struct jobq_lane *lanes;    /* lanes with at least one item, oldest first */
	uint64_t vtime;             /* the virtual time of the job served last */
	int len;                    /* items queued in all */
	int owner_max;              /* items one owner may have queued */
	int total_max;              /* items queued in all */
};

/* An empty queue with its limits (each at least 1). */
void jobq_init(struct jobq *q, int owner_max, int total_max);

/*
 * Frees the lanes of the items still queued; the items themselves are the caller's (they are
 * left as they were). NULL is a no-op.
 */
void jobq_done(struct jobq *q);

/*
 * Queues it for owner, behind that owner's earlier items. Returns 0, SSC_ELIMIT (the owner has
 * owner_max items queued, or the queue total_max), or SSC_ENOMEM (a new lane); it is not queued
 * then. it must not be queued already.
 */
int jobq_push(struct jobq *q, struct jobq_item *it, const void *owner);

/* Takes the next item to serve (see struct jobq), or NULL when the queue is empty. */
struct jobq_item *jobq_pop(struct jobq *q);

/*
 * Takes it out of the queue wherever it is (a deadline passed, its owner left). Returns 0, or
 * SSC_ENOTFOUND when it is not queued here.
 */
int jobq_remove(struct jobq *q, struct jobq_item *it);

/* Items queued in all. */
int jobq_len(const struct jobq *q);

/* Items queued for owner. */
int jobq_owner_len(const struct jobq *q, const void *owner);

#endif
