/*
 * This file contains the audit writer (src/audit.h): a FIFO of copied rows under a mutex, and a
 * thread that takes one row at a time and appends it with journal_audit(). The journal pointer is
 * changed only under the same mutex, and the thread holds it (busy) while it writes, so that
 * audit_set_journal() returns only when the old journal is no longer in use here.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "audit.h"
#include "cardio.h"

struct arow {
	struct arow *next;
	struct journal_peer peer;
	int has_peer;
	char method[72];
	char reader[SSC_READER_ID_MAX];
	char card_ref[JOURNAL_REF_HEX + 1];
	char result[40];
	int64_t duration_ms;
};

struct audit {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* rows queued, stop, or the busy row done */
	struct arow *head, *tail;
	size_t queued, max_queued;
	struct journal *journal;
	int busy;                      /* the thread is appending with journal */
	int stop;
	int64_t stop_deadline_ms;      /* drop what is left after this */
	uint64_t written, dropped;
};

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/*
 * Audit rows are written after their reply is sent; on a small desk PC they compete for the CPU
 * with the next request, pcscd and the reader. A lower priority for this one thread (Linux nice
 * is per thread) lets card work go first; the bounded queue absorbs the delay.
 */
#define AUDIT_NICE 10

static void *audit_main(void *arg)
{
	struct audit *a = arg;

	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), AUDIT_NICE);

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct arow *r;
		struct journal *j;
		struct journal_audit row;
		int rc;

		while (!a->head && !a->stop)
			pthread_cond_wait(&a->cond, &a->lock);
		if (!a->head)
			break;   /* stopping, and nothing left */
		r = a->head;
		a->head = r->next;
		if (!a->head)
			a->tail = NULL;
		a->queued--;
		j = a->journal;
		if (!j || (a->stop && cardio_now_ms() > a->stop_deadline_ms)) {
			a->dropped++;
			free(r);
			continue;
		}
		a->busy = 1;
		pthread_mutex_unlock(&a->lock);
		row.peer = r->has_peer ? &r->peer : NULL;
		row.method = r->method;
		row.reader = r->reader;
		row.card_ref = r->card_ref;
		row.result = r->result;
		row.duration_ms = r->duration_ms;
		/* A failure is the journal's observer's business (it tells the daemon). */
		rc = journal_audit(j, &row, NULL);
		free(r);
		pthread_mutex_lock(&a->lock);
		a->busy = 0;
		if (rc == 0)
			a->written++;
		else
			a->dropped++;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int audit_new(size_t max_queued, struct audit **out)
{
	struct audit *a = calloc(1, sizeof(*a));

	if (!a)
		return SSC_ENOMEM;
	a->max_queued = max_queued ? max_queued : 1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->thread, NULL, audit_main, a) != 0) {
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		free(a);
		return SSC_EINTERNAL;
	}
	*out = a;
	return 0;
}

void audit_set_journal(struct audit *a, struct journal *j)
{
	pthread_mutex_lock(&a->lock);
	a->journal = j;
	/* The caller may close the old journal after this: wait out a row being written to it. */
	while (a->busy)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

int audit_submit(struct audit *a, const struct journal_audit *row)
{
	struct arow *r;
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	if (!a->journal)
		rc = SSC_EJOURNAL;
	else if (a->queued >= a->max_queued || a->stop)
		rc = SSC_ELIMIT;
	if (rc != 0) {
		a->dropped++;
		pthread_mutex_unlock(&a->lock);
		return rc;
	}
	pthread_mutex_unlock(&a->lock);

	r = calloc(1, sizeof(*r));
	if (!r) {
		pthread_mutex_lock(&a->lock);
		a->dropped++;
		pthread_mutex_unlock(&a->lock);
		return SSC_ENOMEM;
	}
	if (row->peer) {
		r->peer.uid = row->peer->uid;
		r->peer.pid = row->peer->pid;
		copy_str(r->peer.exe, sizeof(r->peer.exe), row->peer->exe);
		r->has_peer = 1;
	}
	copy_str(r->method, sizeof(r->method), row->method);
	copy_str(r->reader, sizeof(r->reader), row->reader);
	copy_str(r->card_ref, sizeof(r->card_ref), row->card_ref);
	copy_str(r->result, sizeof(r->result), row->result);
	r->duration_ms = row->duration_ms;

	pthread_mutex_lock(&a->lock);
	if (a->queued >= a->max_queued || a->stop) {
		/* Filled up (or began stopping) while we copied. */
		a->dropped++;
		pthread_mutex_unlock(&a->lock);
		free(r);
		return SSC_ELIMIT;
	}
	if (a->tail)
		a->tail->next = r;
	else
		a->head = r;
	a->tail = r;
	a->queued++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void audit_stats(struct audit *a, struct audit_stats *out)
{
	pthread_mutex_lock(&a->lock);
	out->written = a->written;
	out->dropped = a->dropped;
	out->queued = a->queued;
	pthread_mutex_unlock(&a->lock);
}

void audit_free(struct audit *a, int wait_ms, struct audit_stats *last)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	a->stop_deadline_ms = cardio_now_ms() + (wait_ms > 0 ? wait_ms : 0);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	if (last)
		audit_stats(a, last);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
