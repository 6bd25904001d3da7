/*
 * This file contains the monitor thread of one driver (src/reader_monitor.h): snapshots turned into
 * the reader table and its events.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "invariant.h"
#include "log.h"
#include "reader_ahead.h"
#include "reader_event.h"
#include "reader_io.h"
#include "reader_monitor.h"
#include "reader_table.h"
#include "reader_worker.h"

#define READERS_PER_DRIVER_MAX 32    /* readers one driver snapshot may report */
#define READERS_WAIT_MS 1000         /* one wait_change round: the monitor re-lists at least this often */
#define READERS_BACKOFF_MIN_MS 100   /* monitor pause after the subsystem failed once ... */
#define READERS_BACKOFF_MAX_MS 2000  /* ... doubling up to this while it stays down */

/* The role the configuration gives a reader: USER, PSAM, UNKNOWN (probe), or -1 (ignore it). */
static int rd_config_role(const struct readers *rd, const char *id, const char *name)
{
	for (int i = 0; i < rd->cfg->n_roles && i < CONFIG_MAX_ROLES; i++) {
		const struct config_role *cr = &rd->cfg->roles[i];

		if (strcmp(cr->reader, id) != 0 && strcmp(cr->reader, name) != 0)
			continue;
		if (strcmp(cr->role, "user") == 0)
			return READER_ROLE_USER;
		if (strcmp(cr->role, "psam") == 0)
			return READER_ROLE_PSAM;
		if (strcmp(cr->role, "ignore") == 0)
			return -1;
	}
	return READER_ROLE_UNKNOWN;
}

/* rd->lock held. */
static void monitor_card_in(struct reader *r, const struct ssc_reader_desc *d)
{
	INVARIANT(!r->card_present);
	r->card_present = 1;
	r->atr_len = d->atr_len <= SSC_ATR_MAX ? d->atr_len : 0;
	memcpy(r->atr, d->atr, r->atr_len);
	r->card_gen++;
	r->psam_alg = SSC_ALG_NONE;
	r->psam_term[0] = '\0';
	r->reprobe = 0;
	r->probe_failures = 0;
	r->probe_retry_ms = 0;
	r->role = r->fixed_role;
	if (r->fixed_role == READER_ROLE_USER)
		r->probed_gen = r->card_gen;
	log_info("reader %s: card inserted", r->id);
	reader_event_post(r->rd, r, "card.inserted");
	/*
	 * A reader configured "user" is not probed: its card is ready now, or as soon as the
	 * subsystem reports its ATR (monitor_apply()). Others after the probe.
	 */
	if (r->fixed_role == READER_ROLE_USER && r->atr_len > 0 && !reader_ahead_enabled(r))
		reader_event_ready_locked(r, 0);
	pthread_cond_signal(&r->cond);   /* the probe, or the read-ahead and card.ready */
}

/* rd->lock held. */
static void monitor_card_out(struct reader *r)
{
	/* Every card.inserted has its card.ready before its card.removed. */
	INVARIANT(r->card_present);
	reader_io_forget_locked(r);   /* the data read ahead is wiped at the removal */
	pthread_cond_signal(&r->cond);   /* and its connection closed soon */
	reader_event_ready_locked(r, SSC_ECARDREMOVED);
	INVARIANT(r->ready_gen == r->card_gen);
	r->card_present = 0;
	r->atr_len = 0;
	r->card_gen++;
	r->role = READER_ROLE_UNKNOWN;
	r->psam_alg = SSC_ALG_NONE;
	log_info("reader %s: card removed", r->id);
	reader_event_post(r->rd, r, "card.removed");
}

static const struct ssc_reader_desc *monitor_find_desc(const struct ssc_reader_desc *d, size_t n,
						       const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].id, id) == 0)
			return &d[i];
	return NULL;
}

/* rd->lock held. A new reader from driver m: table entry, worker, events. */
static void monitor_reader_new(struct rd_monitor *m, const struct ssc_reader_desc *d)
{
	struct readers *rd = m->rd;
	struct reader *r, **pp;
	int role;

	role = rd_config_role(rd, d->id, d->name);
	if (role < 0) {
		log_debug("reader %s: ignored by configuration", d->id);
		return;
	}
	r = reader_table_reader_new(m, d, (enum reader_role)role);
	if (!r)
		return;
	if (reader_table_spawn_locked(rd, reader_worker_main, r) != 0) {
		reader_table_reader_free(r);
		return;
	}
	for (pp = &rd->table; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	log_info("reader %s added (%s)", r->id, r->name);
	reader_event_post(rd, r, "reader.added");
	if (d->card_present)
		monitor_card_in(r, d);
}

/* Brings the table in line with driver m's snapshot d[0..n) and posts the differences. */
static void monitor_apply(struct rd_monitor *m, const struct ssc_reader_desc *d, size_t n)
{
	struct readers *rd = m->rd;
	struct reader *gone = NULL;

	pthread_mutex_lock(&rd->lock);
	if (rd->stopping) {
		pthread_mutex_unlock(&rd->lock);
		return;
	}
	for (struct reader **pp = &rd->table; *pp;) {
		struct reader *r = *pp;
		const struct ssc_reader_desc *desc;

		if (r->mon != m) {
			pp = &r->next;
			continue;
		}
		desc = monitor_find_desc(d, n, r->id);
		if (!desc) {
			if (r->card_present)
				monitor_card_out(r);
			log_info("reader %s removed", r->id);
			reader_event_post(rd, r, "reader.removed");
			r->stop = 1;
			pthread_cond_signal(&r->cond);
			*pp = r->next;
			if (--r->refs == 0) {
				r->next = gone;
				gone = r;
			}
			continue;
		}
		if (desc->serial[0] && strcmp(r->serial, desc->serial) != 0)
			snprintf(r->serial, sizeof(r->serial), "%s", desc->serial);
		if (r->card_present &&
		    (!desc->card_present ||
		     (r->atr_len && desc->atr_len &&
		      (r->atr_len != desc->atr_len || memcmp(r->atr, desc->atr, r->atr_len) != 0))))
			monitor_card_out(r);
		if (!r->card_present && desc->card_present) {
			monitor_card_in(r, desc);
		} else if (r->card_present && r->atr_len == 0 && desc->atr_len <= SSC_ATR_MAX) {
			memcpy(r->atr, desc->atr, desc->atr_len);
			r->atr_len = desc->atr_len;
			if (r->fixed_role == READER_ROLE_USER && r->atr_len > 0 &&
			    !reader_ahead_enabled(r))
				reader_event_ready_locked(r, 0);
			else
				pthread_cond_signal(&r->cond);
		}
		pp = &r->next;
	}
	for (size_t i = 0; i < n; i++) {
		if (reader_table_find_locked(rd, d[i].id))
			continue;
		if (monitor_find_desc(d, i, d[i].id) != NULL) {
			log_warn("readers: two readers map to the id %s; ignoring \"%s\"", d[i].id,
				 d[i].name);
			continue;
		}
		monitor_reader_new(m, &d[i]);
	}
	pthread_mutex_unlock(&rd->lock);
	while (gone) {
		struct reader *next = gone->next;

		reader_table_reader_free(gone);
		gone = next;
	}
}

/* Sleeps up to ms unless the core stops. */
static void monitor_nap(struct readers *rd, int64_t ms)
{
	struct timespec ts;

	rd_abs_monotonic(&ts, cardio_now_ms() + ms);
	pthread_mutex_lock(&rd->lock);
	while (!rd->stopping) {
		if (pthread_cond_timedwait(&rd->cond, &rd->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&rd->lock);
}

void *reader_monitor_main(void *arg)
{
	struct rd_monitor *m = arg;
	struct readers *rd = m->rd;
	struct ssc_reader_desc *d;
	int fails = 0;

	d = calloc(READERS_PER_DRIVER_MAX, sizeof(*d));
	if (!d) {
		log_error("readers: out of memory: monitor of %s not running", m->ops->name);
		reader_table_thread_exit(rd);
		return NULL;
	}
	for (;;) {
		int n, w, stopping;
		int64_t t0;

		pthread_mutex_lock(&rd->lock);
		stopping = rd->stopping;
		pthread_mutex_unlock(&rd->lock);
		if (stopping)
			break;

		n = m->ops->list(m->drv, d, READERS_PER_DRIVER_MAX);
		if (n > READERS_PER_DRIVER_MAX)
			n = READERS_PER_DRIVER_MAX;
		monitor_apply(m, d, n < 0 ? 0 : (size_t)n);

		t0 = cardio_now_ms();
		w = m->ops->wait_change(m->drv, READERS_WAIT_MS);
		if (w == SSC_EREADER)
			monitor_apply(m, d, 0);   /* the subsystem is gone, and its readers with it */
		if (w == SSC_EREADER || (n < 0 && w != 1) || (w < 0 && w != SSC_EREADER)) {
			/* Whatever the driver does, never spin while the subsystem is down. */
			int64_t backoff = READERS_BACKOFF_MIN_MS << (fails < 5 ? fails : 5);
			int64_t spent = cardio_now_ms() - t0;

			if (backoff > READERS_BACKOFF_MAX_MS)
				backoff = READERS_BACKOFF_MAX_MS;
			fails++;
			if (spent < backoff)
				monitor_nap(rd, backoff - spent);
		} else {
			fails = 0;
		}
	}
	free(d);
	reader_table_thread_exit(rd);
	return NULL;
}
