/*
 * This file contains the interface of usb_state.c: the transitions of a slot's card state and of
 * a device's health in the USB CCID driver. Every function wants drv->lock held, calls no libusb
 * and wakes the monitor (drv->cond) when list() would see something new.
 */
#ifndef SSC_USB_STATE_H
#define SSC_USB_STATE_H

#include "usb.h"

/*
 * The card in slot idx left (present_now 0), or was replaced or reset under us (1): what we knew
 * of it no longer holds (not powered, no ATR, a new gen).
 */
void usb_state_lost_locked(struct usb_dev *d, unsigned idx, int present_now);

/* A status (GetSlotStatus, or any reply's bmICCStatus) says icc (CCID_ICC_*) for slot idx. */
void usb_state_icc_locked(struct usb_dev *d, unsigned idx, uint8_t icc);

/* The device is gone (unplugged; failed 0) or failed (quarantined until replugged; failed 1). */
void usb_state_gone_locked(struct usb_dev *d, int failed);

#endif
