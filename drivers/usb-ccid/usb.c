/*
 * This file contains the USB CCID reader driver's ops table (ssc_driver_usb_ccid,
 * include/sscard/driver.h) on libusb: open and close, the monitor's list() and wait_change(),
 * and the worker's connect, transmit, reconnect and disconnect. The work is done by the other
 * usb_*.c files: usb_hotplug.c follows devices, usb_dev.c finds and opens them, usb_card.c
 * activates a card, usb_exchange.c carries an APDU, usb_io.c moves the bytes and usb_state.c
 * keeps what the driver knows; usb.h says how they share their state and locks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "sscard/error.h"
#include "usb_card.h"
#include "usb_dev.h"
#include "usb_exchange.h"
#include "usb_hotplug.h"
#include "usb_io.h"

static int usb_open(const struct ssc_driver_config *cfg, struct ssc_driver **out)
{
	struct ssc_driver *drv;
	pthread_condattr_t ca;
	int rc;

	rc = usb_lib_load();
	if (rc != 0)
		return rc;
	drv = calloc(1, sizeof(*drv));
	if (!drv)
		return SSC_ENOMEM;
	drv->poll_ms = cfg && cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 500;
	if (cfg && cfg->usb_allow && usb_dev_parse_allow(drv, cfg->usb_allow) != 0) {
		free(drv);
		return SSC_ECONFIG;
	}
	if (pthread_mutex_init(&drv->lock, NULL) != 0) {
		free(drv);
		return SSC_ENOMEM;
	}
	if (pthread_condattr_init(&ca) != 0) {
		pthread_mutex_destroy(&drv->lock);
		free(drv);
		return SSC_ENOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&drv->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		pthread_mutex_destroy(&drv->lock);
		free(drv);
		return SSC_ENOMEM;
	}
	/* libusb is started by the monitor thread, on its first list(). */
	*out = drv;
	return 0;
}

static void usb_close(struct ssc_driver *drv)
{
	if (!drv)
		return;
	while (drv->n_devs > 0)
		usb_hotplug_remove(drv, drv->n_devs - 1);
	/* Every slot is disconnected (the contract), so every device is freed now. */
	if (drv->n_alive == 0)
		usb_hotplug_ctx_drop(drv);
	else
		log_warn("usb-ccid: %d device(s) still in use at close; leaving libusb open",
			 drv->n_alive);
	usb_hotplug_seen_clear(drv);
	pthread_cond_destroy(&drv->cond);
	pthread_mutex_destroy(&drv->lock);
	free(drv);
}

static int usb_list(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max)
{
	size_t n = 0;

	if (!usb_hotplug_ctx_ensure(drv))
		return 0;
	if (usb_hotplug_ctx_stale(drv)) {
		/*
		 * Nothing open: a fresh context enumerates afresh, whether or not libusb's hotplug
		 * works where we run (under umockdev it may not).
		 */
		usb_hotplug_ctx_drop(drv);
		drv->next_init_ms = 0;
		if (!usb_hotplug_ctx_ensure(drv))
			return 0;
	}
	usb_hotplug_rescan(drv);

	pthread_mutex_lock(&drv->lock);
	drv->changed = 0;
	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];

		if (d->gone)
			continue;
		for (unsigned s = 0; s < d->n_slots && n < max; s++) {
			struct usb_slot_state *st = &d->slot[s];
			struct ssc_reader_desc *r = &out[n++];

			memset(r, 0, sizeof(*r));
			snprintf(r->id, sizeof(r->id), "%s-s%u", d->base_id, (unsigned)(uint8_t)s);
			if (d->n_slots > 1)
				snprintf(r->name, sizeof(r->name), "%s slot %u", d->name, (unsigned)(uint8_t)s);
			else
				snprintf(r->name, sizeof(r->name), "%s", d->name);
			snprintf(r->serial, sizeof(r->serial), "%s", d->serial);
			if (st->report_out) {
				/* Report it gone once, so that the core sees it leave and come back. */
				st->report_out = 0;
				drv->changed = 1;
				continue;
			}
			r->card_present = st->present;
			if (st->present && st->atr_len > 0) {
				memcpy(r->atr, st->atr, st->atr_len);
				r->atr_len = st->atr_len;
			}
		}
	}
	pthread_mutex_unlock(&drv->lock);
	drv->last_poll_ms = usb_now_ms();
	return (int)n;
}

/* Naps until ms passes or something is signalled (drv->lock held). */
static void usb_nap_locked(struct ssc_driver *drv, int64_t until)
{
	struct timespec ts;

	usb_abs_time(&ts, until);
	while (!drv->woken && !drv->changed)
		if (pthread_cond_timedwait(&drv->cond, &drv->lock, &ts) == ETIMEDOUT)
			break;
}

/* Naps until ms passes or something is signalled. */
static void usb_nap(struct ssc_driver *drv, int64_t until)
{
	pthread_mutex_lock(&drv->lock);
	usb_nap_locked(drv, until);
	pthread_mutex_unlock(&drv->lock);
}

/*
 * Takes what wake() or a change left: returns 0 (woken), 1 (changed), or -1 when there is
 * nothing, and the wait goes on.
 */
static int usb_wait_flags(struct ssc_driver *drv)
{
	int rc = -1;

	pthread_mutex_lock(&drv->lock);
	if (drv->woken) {
		drv->woken = 0;
		rc = 0;
	} else if (drv->changed) {
		drv->changed = 0;
		rc = 1;
	}
	pthread_mutex_unlock(&drv->lock);
	return rc;
}

/* No libusb context: naps until it is time to try again. Returns 1 when the context is made. */
static int usb_wait_ctx(struct ssc_driver *drv, int64_t now, int64_t deadline)
{
	int64_t until = drv->next_init_ms < deadline ? drv->next_init_ms : deadline;

	if (until <= now) {
		if (usb_hotplug_ctx_ensure(drv))
			return 1;
		until = drv->next_init_ms < deadline ? drv->next_init_ms : deadline;
	}
	usb_nap(drv, until);
	return 0;
}

/* When the next look at the devices and slots is due: the poll interval, or a device's retry. */
static int64_t usb_next_look(const struct ssc_driver *drv)
{
	int64_t next = drv->last_poll_ms + drv->poll_ms;

	for (size_t i = 0; i < drv->n_seen; i++)
		if (drv->seen[i].retry_ms != 0 && drv->seen[i].retry_ms < next)
			next = drv->seen[i].retry_ms;
	return next;
}

/* Handles libusb events for chunk ms (interrupt transfers, hotplug); never spins a core. */
static void usb_wait_events(struct ssc_driver *drv, int64_t chunk)
{
	int64_t t0 = usb_now_ms();

	usb_hotplug_events(drv, (int)chunk);
	if (usb_now_ms() - t0 >= 1 || chunk <= 1) {
		drv->quick_spins = 0;
		return;
	}
	/*
	 * Back at once: under umockdev the device node always polls ready. A short nap now and
	 * then keeps that from spinning a core; wake() and changes still end it at once.
	 */
	if (++drv->quick_spins >= USB_QUICK_SPINS) {
		drv->quick_spins = 0;
		usb_nap(drv, usb_now_ms() + USB_SPIN_NAP_MS);
	}
}

static int usb_wait_change(struct ssc_driver *drv, int timeout_ms)
{
	int64_t deadline = usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		int64_t now = usb_now_ms(), left = deadline - now, next, chunk;
		int rc = usb_wait_flags(drv);

		if (rc >= 0)
			return rc;
		if (left <= 0)
			return 0;
		if (!drv->ctx) {
			if (usb_wait_ctx(drv, now, deadline))
				return 1;
			continue;
		}
		next = usb_next_look(drv);
		if (now >= next) {
			drv->last_poll_ms = now;
			if (usb_hotplug_list_changed(drv) || usb_hotplug_poll_slots(drv))
				return 1;
			if (usb_hotplug_ctx_stale(drv))
				return 1;   /* list() makes a fresh context to look again */
			continue;
		}
		chunk = next - now;
		if (chunk > left)
			chunk = left;
		if (chunk > USB_EVENTS_CHUNK_MS)
			chunk = USB_EVENTS_CHUNK_MS;
		usb_wait_events(drv, chunk);
	}
}

static void usb_wake(struct ssc_driver *drv)
{
	libusb_context *ctx;

	pthread_mutex_lock(&drv->lock);
	drv->woken = 1;
	pthread_cond_broadcast(&drv->cond);
	ctx = drv->ctx;
	if (ctx)
		drv->ctx_users++;
	pthread_mutex_unlock(&drv->lock);
	if (ctx) {
		usbl->interrupt_event_handler(ctx);
		pthread_mutex_lock(&drv->lock);
		drv->ctx_users--;
		pthread_cond_broadcast(&drv->cond);
		pthread_mutex_unlock(&drv->lock);
	}
}

/* Finds the device and slot of reader_id and takes a reference (drv->lock held). */
static struct usb_dev *usb_find_reader_locked(struct ssc_driver *drv, const char *reader_id,
					      unsigned *idx)
{
	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];
		size_t bl = strlen(d->base_id);
		char *end;
		unsigned long s;

		if (d->gone || strncmp(reader_id, d->base_id, bl) != 0 || reader_id[bl] != '-' ||
		    reader_id[bl + 1] != 's')
			continue;
		s = strtoul(reader_id + bl + 2, &end, 10);
		if (*end != '\0' || end == reader_id + bl + 2 || s >= d->n_slots)
			continue;
		*idx = (unsigned)s;
		d->refs++;
		return d;
	}
	return NULL;
}

/*
 * Opens s on the slot of reader_id: a reference to its device, and the slot marked in use.
 * Returns 0, SSC_ENOREADER or SSC_EREADERBUSY (another connection holds the slot).
 */
static int usb_slot_open(struct ssc_driver *drv, const char *reader_id, struct ssc_slot *s)
{
	struct usb_dev *d;
	unsigned idx = 0;
	int rc = 0;

	pthread_mutex_lock(&drv->lock);
	d = usb_find_reader_locked(drv, reader_id, &idx);
	if (!d) {
		rc = SSC_ENOREADER;
	} else if (d->slot[idx].in_use) {
		d->refs--;   /* never the last: the set holds one */
		rc = SSC_EREADERBUSY;
	} else {
		INVARIANT(d->refs >= 2);   /* the set's and this connection's */
		d->slot[idx].in_use = 1;
		s->d = d;
		s->idx = idx;
	}
	pthread_mutex_unlock(&drv->lock);
	return rc;
}

/* Closes s: the slot is free again, the device's reference dropped, s freed. */
static void usb_slot_release(struct ssc_slot *s)
{
	pthread_mutex_lock(&s->d->drv->lock);
	INVARIANT(s->d->slot[s->idx].in_use);   /* one connection per slot, released once */
	s->d->slot[s->idx].in_use = 0;
	pthread_mutex_unlock(&s->d->drv->lock);
	usb_dev_unref(s->d);
	free(s);
}

/*
 * The card of s's slot for this connection: still active since we activated it, it is used as
 * it is (PC/SC's "leave card"); else it is activated afresh (switched off first if active, so
 * that this is a real reset). Returns 0 with its ATR, or < 0.
 */
static int usb_slot_card(struct ssc_slot *s, int64_t deadline, uint8_t *atr, size_t *atr_len)
{
	struct usb_dev *d = s->d;
	struct usb_slot_state *st = &d->slot[s->idx];
	uint8_t icc = CCID_ICC_ABSENT;
	int rc = usb_io_slot_status(d, s->idx, deadline, 0, &icc), reuse = 0;

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&d->drv->lock);
	if (icc == CCID_ICC_ABSENT || !st->present) {
		rc = SSC_ENOCARD;
	} else if (icc == CCID_ICC_ACTIVE && st->powered && st->atr_len > 0) {
		reuse = 1;
		memcpy(atr, st->atr, st->atr_len);
		*atr_len = st->atr_len;
		s->gen = st->gen;
	}
	pthread_mutex_unlock(&d->drv->lock);
	if (rc != 0 || reuse)
		return rc;
	if (icc == CCID_ICC_ACTIVE)
		usb_io_power_off(d, s->idx, deadline);
	return usb_card_activate(d, s->idx, deadline, atr, atr_len, &s->gen);
}

static int usb_connect(struct ssc_driver *drv, const char *reader_id, int timeout_ms,
		       struct ssc_slot **out, uint8_t *atr, size_t *atr_len)
{
	int64_t deadline = usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct ssc_slot *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return SSC_ENOMEM;
	rc = usb_slot_open(drv, reader_id, s);
	if (rc != 0) {
		free(s);
		return rc;
	}
	rc = usb_slot_card(s, deadline, atr, atr_len);
	if (rc != 0) {
		usb_slot_release(s);
		if (rc == SSC_ECARDREMOVED)
			rc = SSC_ENOCARD;
		if (rc == SSC_EPROTO || rc == SSC_EIO || rc == SSC_EINVAL)
			rc = SSC_EREADER;
		return rc;
	}
	*out = s;
	return 0;
}

/* The slot's card is still the one this connection activated (drv->lock taken). */
static int usb_slot_current(struct ssc_slot *s)
{
	struct usb_dev *d = s->d;
	int rc = 0;

	pthread_mutex_lock(&d->drv->lock);
	if (d->gone)
		rc = SSC_EREADER;
	else if (!d->slot[s->idx].present)
		rc = SSC_ECARDREMOVED;
	else if (d->slot[s->idx].gen != s->gen || !d->slot[s->idx].powered)
		rc = SSC_ECARDREMOVED;
	pthread_mutex_unlock(&d->drv->lock);
	return rc;
}

/*
 * Confirms, with no APDU, that the card of this connection is still the one powered on: the
 * reader is asked (GetSlotStatus) rather than trusting the slot-change notifications, which may
 * not have arrived yet. A card pulled and put back is present but not powered; it, or one gone,
 * is SSC_ECARDREMOVED. *insertions is the slot's count after the answer.
 */
static int usb_status(struct ssc_slot *s, uint32_t *insertions)
{
	uint8_t icc = CCID_ICC_ABSENT;
	int rc = usb_slot_current(s);

	if (rc == 0 && usb_io_slot_status(s->d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 0,
					  &icc) != 0)
		rc = SSC_EREADER;
	if (rc == 0 && icc != CCID_ICC_ACTIVE)
		rc = SSC_ECARDREMOVED;
	if (rc == 0)
		rc = usb_slot_current(s);
	*insertions = s->gen;
	return rc;
}

/*
 * Nothing to open to others: this process has claimed the reader's interface, no other program can
 * reach its cards. The card stays powered; the slot's count and status() still tell a removal.
 */
static int usb_share(struct ssc_slot *s)
{
	return usb_slot_current(s);
}

static int usb_claim(struct ssc_slot *s, int timeout_ms)
{
	(void)timeout_ms;
	return usb_slot_current(s);
}

static int usb_transmit(struct ssc_slot *s, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			size_t resp_cap, int timeout_ms)
{
	int64_t deadline = usb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int n;

	if (!cmd || !resp || cmd_len < 4 || cmd_len > SSC_CMD_APDU_MAX || resp_cap < 2)
		return SSC_EINVAL;
	n = usb_slot_current(s);
	if (n != 0)
		return n;
	if (timeout_ms <= 0)
		return SSC_ETIMEDOUT;
	return usb_exchange_transmit(s->d, s->idx, cmd, cmd_len, resp, resp_cap, deadline);
}

static int usb_reconnect(struct ssc_slot *s, uint8_t *atr, size_t *atr_len)
{
	struct usb_dev *d = s->d;
	int64_t deadline = usb_now_ms() + USB_POWERON_TIMEOUT_MS + USB_STATUS_TIMEOUT_MS * 2;
	uint8_t icc = CCID_ICC_ABSENT;
	int rc;

	pthread_mutex_lock(&d->drv->lock);
	rc = d->gone ? SSC_EREADER : 0;
	pthread_mutex_unlock(&d->drv->lock);
	if (rc != 0)
		return rc;
	usb_io_power_off(d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS);
	rc = usb_io_slot_status(d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 0, &icc);
	if (rc == 0 && icc == CCID_ICC_ABSENT)
		return SSC_ENOCARD;
	if (rc != 0)
		return SSC_EREADER;
	rc = usb_card_activate(d, s->idx, deadline, atr, atr_len, &s->gen);
	if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
		return SSC_ENOCARD;
	return rc == 0 ? 0 : SSC_EREADER;
}

static void usb_disconnect(struct ssc_slot *s, int reset)
{
	if (!s)
		return;
	if (reset) {
		int gone;

		pthread_mutex_lock(&s->d->drv->lock);
		gone = s->d->gone;
		pthread_mutex_unlock(&s->d->drv->lock);
		if (!gone)
			usb_io_power_off(s->d, s->idx, usb_now_ms() + USB_STATUS_TIMEOUT_MS);
	}
	usb_slot_release(s);
}

const struct ssc_driver_ops ssc_driver_usb_ccid = {
	.name = "usb-ccid",
	.open = usb_open,
	.close = usb_close,
	.list = usb_list,
	.wait_change = usb_wait_change,
	.wake = usb_wake,
	.connect = usb_connect,
	.transmit = usb_transmit,
	.reconnect = usb_reconnect,
	.disconnect = usb_disconnect,
	.status = usb_status,
	.share = usb_share,
	.claim = usb_claim,
};
