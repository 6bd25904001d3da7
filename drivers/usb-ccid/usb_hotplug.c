/*
 * This file contains how the USB CCID driver follows devices coming and going: the libusb
 * context (made again while nothing is open), libusb hotplug where it works, a compare of
 * libusb's device list, the devices remembered between two looks (not readers, or waiting for
 * a retry), and the status polls of slots whose interrupt endpoint does not tell. Monitor thread.
 */
#include <pthread.h>
#include <string.h>
#include <sys/time.h>

#include "invariant.h"
#include "log.h"
#include "sscard/error.h"
#include "usb_dev.h"
#include "usb_hotplug.h"
#include "usb_io.h"

/* When to try a device again after its tries-th failure. */
static int64_t usb_retry_at(int tries)
{
	int64_t ms = (int64_t)USB_RETRY_FIRST_MS << (tries < 8 ? tries : 8);

	return usb_now_ms() + (ms < USB_RETRY_OPEN_MS ? ms : USB_RETRY_OPEN_MS);
}

/* Handles libusb events for at most ms (monitor thread). */
void usb_hotplug_events(struct ssc_driver *drv, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	(void)usbl->handle_events_timeout_completed(drv->ctx, &tv, NULL);
}

void usb_hotplug_remove(struct ssc_driver *drv, size_t i)
{
	struct usb_dev *d = drv->devs[i];
	int64_t until = usb_now_ms() + USB_CANCEL_WAIT_MS;
	int active;

	pthread_mutex_lock(&drv->lock);
	d->closing = 1;
	d->gone = 1;
	active = d->intr_active;
	pthread_mutex_unlock(&drv->lock);
	while (active) {
		(void)usbl->cancel_transfer(d->intr);
		usb_hotplug_events(drv, 50);
		pthread_mutex_lock(&drv->lock);
		active = d->intr_active;
		if (active && usb_now_ms() > until) {
			d->leaked = 1;   /* never free what libusb may still write to */
			active = 0;
			log_warn("usb-ccid: %s: interrupt transfer would not stop; leaving it",
				 d->base_id);
		}
		pthread_mutex_unlock(&drv->lock);
	}
	pthread_mutex_lock(&drv->lock);
	INVARIANT(d->gone && d->closing && (!d->intr_active || d->leaked));
	drv->devs[i] = drv->devs[--drv->n_devs];
	drv->devs[drv->n_devs] = NULL;
	pthread_mutex_unlock(&drv->lock);
	usb_dev_unref(d);
}

static int LIBUSB_CALL usb_hotplug_cb(libusb_context *ctx, libusb_device *dev,
				      libusb_hotplug_event ev, void *arg)
{
	struct ssc_driver *drv = arg;

	(void)ctx;
	(void)dev;
	(void)ev;
	pthread_mutex_lock(&drv->lock);
	drv->changed = 1;
	pthread_cond_broadcast(&drv->cond);
	pthread_mutex_unlock(&drv->lock);
	return 0;
}

void usb_hotplug_seen_clear(struct ssc_driver *drv)
{
	for (size_t i = 0; i < drv->n_seen; i++)
		usbl->unref_device(drv->seen[i].dev);
	drv->n_seen = 0;
}

/* Drops the context (monitor thread; no device may be alive). */
void usb_hotplug_ctx_drop(struct ssc_driver *drv)
{
	libusb_context *ctx = drv->ctx;

	if (!ctx)
		return;
	if (drv->has_hotplug)
		usbl->hotplug_deregister_callback(ctx, drv->hotplug);
	drv->has_hotplug = 0;
	usb_hotplug_seen_clear(drv);
	pthread_mutex_lock(&drv->lock);
	/* libusb_exit() with a device still open would free what its transfers use. */
	INVARIANT(drv->n_alive == 0);
	drv->ctx = NULL;
	while (drv->ctx_users > 0)
		pthread_cond_wait(&drv->cond, &drv->lock);
	pthread_mutex_unlock(&drv->lock);
	usbl->exit(ctx);
}

/* Makes the context if there is none and it is time to try. Returns 1 when one exists. */
int usb_hotplug_ctx_ensure(struct ssc_driver *drv)
{
	libusb_context *ctx = NULL;
	int r;

	if (drv->ctx)
		return 1;
	if (usb_now_ms() < drv->next_init_ms)
		return 0;
	r = usbl->init(&ctx);
	if (r != 0) {
		if (!drv->init_logged)
			log_info("usb-ccid: no USB here (%s); looking again every %d s",
				 usbl->error_name(r), USB_INIT_RETRY_MS / 1000);
		drv->init_logged = 1;
		drv->next_init_ms = usb_now_ms() + USB_INIT_RETRY_MS;
		return 0;
	}
	if (drv->init_logged)
		log_info("usb-ccid: USB is available now");
	drv->init_logged = 0;
	if (usbl->has_capability(LIBUSB_CAP_HAS_HOTPLUG) &&
	    usbl->hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
						      LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
					     0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
					     LIBUSB_HOTPLUG_MATCH_ANY, usb_hotplug_cb, drv,
					     &drv->hotplug) == 0)
		drv->has_hotplug = 1;
	pthread_mutex_lock(&drv->lock);
	drv->ctx = ctx;
	pthread_mutex_unlock(&drv->lock);
	drv->ctx_made_ms = usb_now_ms();
	return 1;
}

/*
 * Whether making the context afresh is worth it (monitor thread): no device of ours is open, and
 * no reader waits for a retry or a replug (a fresh context would forget it, and try and warn
 * again at once).
 */
int usb_hotplug_ctx_stale(struct ssc_driver *drv)
{
	int alive;

	pthread_mutex_lock(&drv->lock);
	alive = drv->n_alive;
	pthread_mutex_unlock(&drv->lock);
	if (alive > 0 || usb_now_ms() - drv->ctx_made_ms < USB_RESCAN_MS)
		return 0;
	for (size_t i = 0; i < drv->n_seen; i++)
		if (drv->seen[i].reader)
			return 0;
	return 1;
}

static struct usb_seen *usb_seen_find(struct ssc_driver *drv, libusb_device *dev)
{
	for (size_t i = 0; i < drv->n_seen; i++)
		if (drv->seen[i].dev == dev)
			return &drv->seen[i];
	return NULL;
}

static struct usb_dev *usb_set_find(struct ssc_driver *drv, libusb_device *dev)
{
	for (size_t i = 0; i < drv->n_devs; i++)
		if (drv->devs[i]->dev == dev)
			return drv->devs[i];
	return NULL;
}

/* The devices to remember after a look, gathered while drv->seen still holds the last one's. */
struct usb_keep {
	struct usb_seen s[USB_MAX_SEEN];
	size_t n;
};

/* Remembers dev (taking a reference); when full, forgets it: it is looked at again next time. */
static void usb_keep_add(struct usb_keep *k, libusb_device *dev, int64_t retry_ms, int reader,
			 int tries)
{
	if (k->n == USB_MAX_SEEN)
		return;
	k->s[k->n].dev = usbl->ref_device(dev);
	k->s[k->n].retry_ms = retry_ms;
	k->s[k->n].reader = reader;
	k->s[k->n].tries = tries;
	k->n++;
}

static int usb_keep_has(const struct usb_keep *k, libusb_device *dev)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->s[i].dev == dev)
			return 1;
	return 0;
}

/* Takes out of the set the devices that left, or that failed (they stay away until replugged). */
static void usb_rescan_left(struct ssc_driver *drv, libusb_device **list, ssize_t n,
			    struct usb_keep *k)
{
	for (size_t i = 0; i < drv->n_devs;) {
		struct usb_dev *d = drv->devs[i];
		int present = 0, gone, failed;

		for (ssize_t j = 0; j < n && !present; j++)
			present = list[j] == d->dev;
		pthread_mutex_lock(&drv->lock);
		gone = d->gone;
		failed = d->failed;
		pthread_mutex_unlock(&drv->lock);
		if (present && !gone) {
			i++;
			continue;
		}
		/* Failed: not before a replug. Gone but still listed: an unplug not yet processed. */
		if (present)
			usb_keep_add(k, d->dev, failed ? 0 : usb_retry_at(0), 1, 0);
		usb_hotplug_remove(drv, i);
	}
}

/* Looks at dev, listed and not in the set: opens it unless it is remembered and not yet due. */
static void usb_rescan_one(struct ssc_driver *drv, libusb_device *dev, struct usb_keep *k)
{
	struct usb_seen *s = usb_seen_find(drv, dev);
	struct usb_dev *d = NULL;
	int rc, tries;

	if (s && (s->retry_ms == 0 || usb_now_ms() < s->retry_ms)) {
		usb_keep_add(k, dev, s->retry_ms, s->reader, s->tries);
		return;
	}
	if (usb_keep_has(k, dev))
		return;
	if (drv->n_devs == USB_MAX_DEVICES) {
		rc = SSC_ELIMIT;
	} else {
		/* Just plugged in, a device may not be ready: quiet retries, then one warning. */
		rc = usb_dev_open(drv, dev, (s ? s->tries + 1 : 0) != USB_RETRY_WARN, &d);
	}
	if (rc == 0) {
		pthread_mutex_lock(&drv->lock);
		INVARIANT(drv->n_devs < USB_MAX_DEVICES && d->refs == 1 && !d->gone);
		drv->devs[drv->n_devs++] = d;
		pthread_mutex_unlock(&drv->lock);
		return;
	}
	tries = s ? s->tries + 1 : 0;
	usb_keep_add(k, dev, rc == SSC_ENOTFOUND ? 0 : usb_retry_at(tries), rc != SSC_ENOTFOUND,
		     tries);
}

void usb_hotplug_rescan(struct ssc_driver *drv)
{
	libusb_device **list = NULL;
	struct usb_keep keep;
	ssize_t n;

	n = usbl->get_device_list(drv->ctx, &list);
	if (n < 0) {
		log_warn("usb-ccid: cannot list USB devices: %s", usbl->error_name((int)n));
		return;
	}
	keep.n = 0;
	usb_rescan_left(drv, list, n, &keep);
	for (ssize_t j = 0; j < n; j++)
		if (!usb_set_find(drv, list[j]))
			usb_rescan_one(drv, list[j], &keep);
	usb_hotplug_seen_clear(drv);
	memcpy(drv->seen, keep.s, keep.n * sizeof(keep.s[0]));
	drv->n_seen = keep.n;
	usbl->free_device_list(list, 1);
}

/*
 * Whether libusb's device list differs from what the last rescan saw (monitor thread): a device
 * that is neither served nor remembered, or a served one that left.
 */
int usb_hotplug_list_changed(struct ssc_driver *drv)
{
	libusb_device **list = NULL;
	ssize_t n = usbl->get_device_list(drv->ctx, &list);
	size_t served = 0;
	int changed = 0;

	if (n < 0)
		return 0;
	for (ssize_t j = 0; j < n && !changed; j++) {
		struct usb_seen *s = usb_seen_find(drv, list[j]);

		if (usb_set_find(drv, list[j]))
			served++;
		else if (!s || (s->retry_ms != 0 && usb_now_ms() >= s->retry_ms))
			changed = 1;
	}
	if (served != drv->n_devs)
		changed = 1;
	usbl->free_device_list(list, 1);
	return changed;
}

/*
 * Asks the devices for their slots' status (monitor thread): every round those whose interrupt
 * endpoint is missing or stopped, the others one round in USB_HEALTH_POLLS (a safety net, and
 * the check that the reader still answers). A device busy with a command is skipped. Returns 1
 * when something changed.
 */
int usb_hotplug_poll_slots(struct ssc_driver *drv)
{
	int changed, health = ++drv->poll_rounds % USB_HEALTH_POLLS == 0;

	for (size_t i = 0; i < drv->n_devs; i++) {
		struct usb_dev *d = drv->devs[i];
		int notified;

		pthread_mutex_lock(&drv->lock);
		notified = d->ep_intr && !d->intr_broken && !d->gone;
		pthread_mutex_unlock(&drv->lock);
		if (notified && !health)
			continue;
		for (unsigned s = 0; s < d->n_slots; s++) {
			int rc = usb_io_slot_status(d, s, usb_now_ms() + USB_STATUS_TIMEOUT_MS, 1, NULL);

			if (rc != 0 && rc != SSC_EREADERBUSY)
				break;
		}
	}
	pthread_mutex_lock(&drv->lock);
	changed = drv->changed;
	pthread_mutex_unlock(&drv->lock);
	return changed;
}
