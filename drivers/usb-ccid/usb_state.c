/*
 * This file contains what the USB CCID driver learns of a slot's card and of a device's health,
 * and the transitions that follow: a status or a notification says where the card is, and a
 * device that is unplugged or stops answering is taken out of service. Callers hold drv->lock.
 */
#include <pthread.h>
#include <string.h>

#include "invariant.h"
#include "log.h"
#include "usb_state.h"

/*
 * What holds of slot idx's card and of the device after every transition (drv->lock held): a
 * slot is powered, and has an ATR, only while a card is present; a powered card has its ATR; a
 * device that failed is out of service.
 */
static void usb_state_check_locked(const struct usb_dev *d, unsigned idx)
{
	const struct usb_slot_state *st = &d->slot[idx];

	INVARIANT(idx < d->n_slots);
	INVARIANT(!st->powered || st->present);
	INVARIANT(!st->powered || st->atr_len > 0);
	INVARIANT(st->atr_len == 0 || st->present);
	INVARIANT(st->atr_len <= SSC_ATR_MAX);
	INVARIANT(!d->failed || d->gone);
}

/* The card left, or was replaced or reset under us: what we knew of it no longer holds. */
void usb_state_lost_locked(struct usb_dev *d, unsigned idx, int present_now)
{
	struct usb_slot_state *st = &d->slot[idx];

	if (present_now && st->present)
		st->report_out = 1;     /* it went and came back between two looks */
	st->present = present_now;
	st->powered = 0;
	st->atr_len = 0;
	st->gen++;
	d->drv->changed = 1;
	pthread_cond_broadcast(&d->drv->cond);
	usb_state_check_locked(d, idx);
}

/* A status (GetSlotStatus, or any reply's bmICCStatus) says icc for slot idx. */
void usb_state_icc_locked(struct usb_dev *d, unsigned idx, uint8_t icc)
{
	struct usb_slot_state *st = &d->slot[idx];

	switch (icc) {
	case CCID_ICC_ABSENT:
		if (st->present)
			usb_state_lost_locked(d, idx, 0);
		break;
	case CCID_ICC_INACTIVE:
		if (!st->present) {
			usb_state_lost_locked(d, idx, 1);
			st->report_out = 0;
			st->expect_notify = d->ep_intr && !d->intr_broken;
		} else if (st->powered) {
			usb_state_lost_locked(d, idx, 1);   /* we powered it: it was pulled or reset */
		}
		break;
	case CCID_ICC_ACTIVE:
		if (!st->present) {
			usb_state_lost_locked(d, idx, 1);   /* activated by the reader on insertion */
			st->report_out = 0;
			st->expect_notify = d->ep_intr && !d->intr_broken;
		}
		break;
	default:
		break;
	}
	usb_state_check_locked(d, idx);
}

/* The device is gone (unplugged) or failed (quarantined until replugged). */
void usb_state_gone_locked(struct usb_dev *d, int failed)
{
	if (!d->gone)
		log_info("usb-ccid: %s %s", d->base_id, failed ? "stopped answering; closed until "
							       "it is plugged in again"
							     : "is gone");
	d->gone = 1;
	d->failed |= failed;
	d->drv->changed = 1;
	pthread_cond_broadcast(&d->drv->cond);
	INVARIANT(!d->failed || d->gone);
}

void usb_state_notify_locked(struct usb_dev *d, uint32_t present, uint32_t changed)
{
	for (unsigned s = 0; s < d->n_slots; s++) {
		struct usb_slot_state *st = &d->slot[s];
		int now = (present >> s) & 1;

		if (((changed >> s) & 1) && now && st->present && st->expect_notify) {
			/* The insertion a status poll has already seen. */
			st->expect_notify = 0;
			continue;
		}
		st->expect_notify = 0;
		if ((changed >> s) & 1) {
			usb_state_lost_locked(d, s, now);
			if (!now)
				st->report_out = 0;
		} else if (now != st->present) {
			usb_state_lost_locked(d, s, now);
			st->report_out = 0;
		}
	}
}

void usb_state_hw_error_locked(struct usb_dev *d, uint8_t hw_slot, uint8_t hw_code)
{
	log_warn("usb-ccid: %s slot %u: hardware error %02X", d->base_id, hw_slot, hw_code);
	if (hw_slot < d->n_slots && d->slot[hw_slot].present)
		usb_state_lost_locked(d, hw_slot, 1);
}

unsigned usb_state_active_locked(struct usb_dev *d, unsigned idx, const uint8_t *atr, size_t len)
{
	struct usb_slot_state *st = &d->slot[idx];

	if (NEVER(len == 0 || len > SSC_ATR_MAX))
		len = 0;   /* release: no ATR to report, and the card is taken for reset */
	if (!st->present || st->atr_len == 0) {
		/* A card we thought absent (no notification yet), or an ATR list() can now report. */
		st->present = 1;
		d->drv->changed = 1;
		pthread_cond_broadcast(&d->drv->cond);
	}
	st->powered = len > 0;
	if (len > 0)
		memcpy(st->atr, atr, len);
	st->atr_len = len;
	usb_state_check_locked(d, idx);
	return st->gen;
}

void usb_state_unpowered(struct usb_dev *d, unsigned idx)
{
	pthread_mutex_lock(&d->drv->lock);
	d->slot[idx].powered = 0;
	usb_state_check_locked(d, idx);
	pthread_mutex_unlock(&d->drv->lock);
}
