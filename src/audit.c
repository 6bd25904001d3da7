/*
 * This file contains the audit writer (src/audit.h): a FIFO of copied rows under a mutex, and a
 * thread that takes the rows queued so far (after letting them gather for batch_ms) and appends
 * them with journal_audit_batch(), one transaction for the lot. The journal pointer is changed
 * only under the same mutex, and the thread holds it (busy) while it writes, so that
 * audit_set_journal() returns only when the old journal is no longer in use here.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cardio.h"

/* A row's detail (a JSON object) at most, with the sum's "limit" and "refused" added. */
#define AUDIT_DETAIL_MAX 256

struct arow {
	struct arow *next;
	struct journal_peer peer;
	int has_peer;
	char method[72];
	char reader[SSC_READER_ID_MAX];
	char card_ref[JOURNAL_REF_HEX + 1];
	char result[40];
	char detail[AUDIT_DETAIL_MAX]; /* the op's note (journal_audit.detail), "" = none */
	int64_t duration_ms;
	int64_t when_ms;               /* CLOCK_REALTIME when submitted */
	/* A sum of refusals (journal_audit.limit), while it waits in the list of sums: */
	char limit[40];
	uint64_t count;                /* refusals in it */
	int64_t due_ms;                /* cardio_now_ms() when its second is over */
};

struct audit {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* rows queued, stop, or the busy row done */
	struct arow *head, *tail;
	struct arow *sums;             /* sums of refusals whose second is not over, oldest first */
	size_t queued, max_queued;     /* queued counts the sums too */
	uint64_t summed;
	struct journal *journal;
	int busy;                      /* the thread is appending with journal */
	int64_t busy_since_ms;         /* cardio_now_ms() when that append began */
	int batch_ms;                  /* how long the first queued row waits for others */
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

/* Rows per transaction at most: a full batch is written without waiting out batch_ms. */
#define AUDIT_BATCH_MAX 64

static int64_t audit_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (lock held) until batch_ms after now, a full batch, or stop. */
static void audit_gather(struct audit *a)
{
	struct timespec until;

	if (a->batch_ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += a->batch_ms / 1000;
	until.tv_nsec += (long)(a->batch_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!a->stop && a->queued < AUDIT_BATCH_MAX &&
	       pthread_cond_timedwait(&a->cond, &a->lock, &until) == 0)
		;
}

/* Moves the sums whose second is over (all of them when stopping) to the rows to write (lock). */
static void audit_sums_due(struct audit *a)
{
	int64_t now = cardio_now_ms();

	while (a->sums && (a->stop || a->sums->due_ms <= now)) {
		struct arow *r = a->sums;
		char add[80];
		size_t dl = strlen(r->detail);

		a->sums = r->next;
		r->next = NULL;
		/* The sum in the detail: merged into the rows' own object, or an object of its own. */
		snprintf(add, sizeof(add), "\"limit\":\"%s\",\"refused\":%llu}", r->limit,
			 (unsigned long long)r->count);
		if (dl >= 2 && r->detail[0] == '{' && r->detail[dl - 1] == '}' &&
		    dl + strlen(add) < sizeof(r->detail))
			snprintf(r->detail + dl - 1, sizeof(r->detail) - dl + 1, "%s%s",
				 dl > 2 ? "," : "", add);
		else
			snprintf(r->detail, sizeof(r->detail), "{%s", add);
		if (a->tail)
			a->tail->next = r;
		else
			a->head = r;
		a->tail = r;
	}
}

/* Waits (lock held) until rows are there to write, or stop; sums become rows when due. */
static void audit_wait_rows(struct audit *a)
{
	for (;;) {
		audit_sums_due(a);
		if (a->head || a->stop)
			return;
		if (a->sums) {
			struct timespec until;
			int64_t left = a->sums->due_ms - cardio_now_ms();

			clock_gettime(CLOCK_MONOTONIC, &until);
			if (left < 1)
				left = 1;
			until.tv_sec += left / 1000;
			until.tv_nsec += (long)(left % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_timedwait(&a->cond, &a->lock, &until);
		} else {
			pthread_cond_wait(&a->cond, &a->lock);
		}
	}
}

static void *audit_main(void *arg)
{
	struct audit *a = arg;
	struct journal_audit rows[AUDIT_BATCH_MAX];
	struct arow *taken[AUDIT_BATCH_MAX];

	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), AUDIT_NICE);

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct journal *j;
		size_t n = 0;
		int rc;

		audit_wait_rows(a);
		if (!a->head)
			break;   /* stopping, and nothing left */
		audit_gather(a);
		while (a->head && n < AUDIT_BATCH_MAX) {
			taken[n++] = a->head;
			a->head = a->head->next;
			a->queued--;
		}
		if (!a->head)
			a->tail = NULL;
		j = a->journal;
		if (!j || (a->stop && cardio_now_ms() > a->stop_deadline_ms)) {
			a->dropped += n;
			for (size_t i = 0; i < n; i++)
				free(taken[i]);
			continue;
		}
		a->busy = 1;
		a->busy_since_ms = cardio_now_ms();
		pthread_mutex_unlock(&a->lock);
		for (size_t i = 0; i < n; i++) {
			struct arow *r = taken[i];

			rows[i].peer = r->has_peer ? &r->peer : NULL;
			rows[i].method = r->method;
			rows[i].reader = r->reader;
			rows[i].card_ref = r->card_ref;
			rows[i].result = r->result;
			rows[i].detail = r->detail;
			rows[i].duration_ms = r->duration_ms;
			rows[i].when_ms = r->when_ms;
		}
		/* A failure is the journal's observer's business (it tells the daemon). */
		rc = journal_audit_batch(j, rows, n, NULL);
		for (size_t i = 0; i < n; i++)
			free(taken[i]);
		pthread_mutex_lock(&a->lock);
		a->busy = 0;
		if (rc == 0)
			a->written += n;
		else
			a->dropped += n;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int audit_new(size_t max_queued, int batch_ms, struct audit **out)
{
	struct audit *a = calloc(1, sizeof(*a));
	pthread_condattr_t ca;

	if (!a)
		return SSC_ENOMEM;
	a->max_queued = max_queued ? max_queued : 1;
	a->batch_ms = batch_ms > 0 ? batch_ms : 0;
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* audit_gather's deadline */
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
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

static int same_str(const char *stored, size_t cap, const char *s)
{
	return strncmp(stored, s ? s : "", cap - 1) == 0;
}

/* The sum (lock held) that a refusal of row, made at when_ms, belongs to; NULL when none yet. */
static struct arow *sum_find(struct audit *a, const struct journal_audit *row, int64_t when_ms)
{
	for (struct arow *r = a->sums; r; r = r->next) {
		if (r->when_ms / 1000 != when_ms / 1000 || r->has_peer != (row->peer != NULL) ||
		    !same_str(r->limit, sizeof(r->limit), row->limit) ||
		    !same_str(r->result, sizeof(r->result), row->result))
			continue;
		if (row->peer && (r->peer.uid != row->peer->uid || r->peer.pid != row->peer->pid ||
				  !same_str(r->peer.exe, sizeof(r->peer.exe), row->peer->exe)))
			continue;
		/* The detail before the sum was added: the sum is added only when it is due. */
		if (!same_str(r->detail, sizeof(r->detail), row->detail))
			continue;
		return r;
	}
	return NULL;
}

/* Adds a refusal to its sum if there is one (lock held): 1, or 0 when there is none. */
static int sum_add(struct audit *a, const struct journal_audit *row, int64_t when_ms)
{
	struct arow *r = sum_find(a, row, when_ms);

	if (!r)
		return 0;
	r->count++;
	a->summed++;
	if (!same_str(r->method, sizeof(r->method), row->method))
		snprintf(r->method, sizeof(r->method), "%s", "(several)");
	if (!same_str(r->reader, sizeof(r->reader), row->reader))
		r->reader[0] = '\0';
	if (row->card_ref && !same_str(r->card_ref, sizeof(r->card_ref), row->card_ref))
		r->card_ref[0] = '\0';
	return 1;
}

int audit_submit(struct audit *a, const struct journal_audit *row)
{
	struct arow *r;
	int rc = 0;
	int64_t when_ms = row->when_ms > 0 ? row->when_ms : audit_realtime_ms();

	pthread_mutex_lock(&a->lock);
	if (a->journal && !a->stop && row->limit && sum_add(a, row, when_ms)) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
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
	copy_str(r->detail, sizeof(r->detail), row->detail);
	r->duration_ms = row->duration_ms;
	r->when_ms = when_ms;

	pthread_mutex_lock(&a->lock);
	if (row->limit && !a->stop && sum_add(a, row, when_ms)) {
		/* Another thread began this sum while we copied. */
		pthread_mutex_unlock(&a->lock);
		free(r);
		return 0;
	}
	if (a->queued >= a->max_queued || a->stop) {
		/* Filled up (or began stopping) while we copied. */
		a->dropped++;
		pthread_mutex_unlock(&a->lock);
		free(r);
		return SSC_ELIMIT;
	}
	if (row->limit) {
		struct arow **pp = &a->sums;

		/* A new sum, written when its second is over; sums are due in the order they began. */
		copy_str(r->limit, sizeof(r->limit), row->limit);
		r->count = 1;
		r->due_ms = cardio_now_ms() + (1000 - when_ms % 1000);
		while (*pp)
			pp = &(*pp)->next;
		*pp = r;
		a->queued++;
		if (a->sums == r)
			pthread_cond_broadcast(&a->cond);   /* the writer's wait now has a deadline */
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	if (a->tail)
		a->tail->next = r;
	else
		a->head = r;
	a->tail = r;
	a->queued++;
	/* The thread waits for a first row, then for a full batch (or its time): nothing between. */
	if (a->queued == 1 || a->queued == AUDIT_BATCH_MAX)
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
	out->summed = a->summed;
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

int64_t audit_busy_ms(struct audit *a)
{
	int64_t ms = 0;

	pthread_mutex_lock(&a->lock);
	if (a->busy)
		ms = cardio_now_ms() - a->busy_since_ms;
	pthread_mutex_unlock(&a->lock);
	return ms > 0 ? ms : 0;
}
