/*
 * This file contains the lifetimes in the reader core (src/reader_table.h): readers, the core's
 * threads, and the core itself.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "reader_event.h"
#include "reader_io.h"
#include "reader_table.h"

struct reader *reader_table_reader_new(struct rd_monitor *m, const struct ssc_reader_desc *d,
				       enum reader_role role)
{
	struct reader *r;

	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("readers: out of memory for reader %s", d->id);
		return NULL;
	}
	if (pthread_mutex_init(&r->card_lock, NULL) != 0) {
		free(r);
		return NULL;
	}
	if (pthread_cond_init(&r->cond, NULL) != 0) {
		pthread_mutex_destroy(&r->card_lock);
		free(r);
		return NULL;
	}
	r->rd = m->rd;
	r->mon = m;
	jobq_init(&r->q, m->rd->cfg->max_inflight_per_client, config_queued_per_reader(m->rd->cfg));
	memcpy(r->id, d->id, sizeof(r->id));
	r->id[sizeof(r->id) - 1] = '\0';
	memcpy(r->name, d->name, sizeof(r->name));
	r->name[sizeof(r->name) - 1] = '\0';
	memcpy(r->serial, d->serial, sizeof(r->serial));
	r->serial[sizeof(r->serial) - 1] = '\0';
	r->fixed_role = role;
	r->refs = 2;   /* the table and the worker */
	return r;
}

void reader_table_reader_free(struct reader *r)
{
	/* Its worker is gone (or never ran): nothing runs on it and nothing waits for it. */
	INVARIANT(r->running == NULL && jobq_len(&r->q) == 0);
	if (r->slot)
		reader_io_drop(r, 1);
	reader_io_forget_locked(r);   /* unshared now: no lock needed */
	jobq_done(&r->q);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->card_lock);
	free(r);
}

void reader_table_unref(struct reader *r)
{
	struct readers *rd = r->rd;
	int last;

	pthread_mutex_lock(&rd->lock);
	INVARIANT(r->refs > 0);
	last = --r->refs == 0;
	pthread_mutex_unlock(&rd->lock);
	if (last)
		reader_table_reader_free(r);
}

struct reader *reader_table_find_locked(struct readers *rd, const char *id)
{
	for (struct reader *r = rd->table; r; r = r->next)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

int reader_table_spawn_locked(struct readers *rd, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int e;

	if (pthread_attr_init(&attr) != 0)
		return SSC_ENOMEM;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		log_error("readers: cannot start a thread: %s", strerror(e));
		return SSC_ENOMEM;
	}
	rd->live_threads++;
	return 0;
}

void reader_table_thread_exit(struct readers *rd)
{
	int last;

	pthread_mutex_lock(&rd->lock);
	INVARIANT(rd->live_threads > 0);
	rd->live_threads--;
	pthread_cond_broadcast(&rd->cond);
	last = rd->abandoned && rd->live_threads == 0;
	pthread_mutex_unlock(&rd->lock);
	if (last) {
		log_info("readers: the last stuck thread returned; freeing the reader core");
		reader_table_destroy(rd);
	}
}

void reader_table_destroy(struct readers *rd)
{
	struct reader *r = rd->table;

	INVARIANT(rd->live_threads == 0 && rd->jobs == NULL && rd->done_head == NULL);
	while (r) {
		struct reader *next = r->next;

		reader_table_reader_free(r);
		r = next;
	}
	for (size_t i = 0; i < rd->n_mons; i++)
		rd->mons[i].ops->close(rd->mons[i].drv);
	reader_event_free_all(rd);
	pthread_cond_destroy(&rd->cond);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
}
