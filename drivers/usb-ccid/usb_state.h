/*
 * This file contains the interface of usb_state.c: the transitions of a slot's card state and of
 * a device's health in the USB CCID driver. Functions named _locked want drv->lock held; none
 * calls libusb; each wakes the monitor (drv->cond) when list() would see something new.
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

/*
 * A NotifySlotChange: bit s of present says a card is in slot s, bit s of changed that the slot
 * changed since the last notification. An insertion a status poll has already seen is not
 * reported twice.
 */
void usb_state_notify_locked(struct usb_dev *d, uint32_t present, uint32_t changed);

/* A HardwareError in slot hw_slot (logged): the card there, if any, is taken for reset. */
void usb_state_hw_error_locked(struct usb_dev *d, uint8_t hw_slot, uint8_t hw_code);

/*
 * We activated the card in slot idx: it is present and powered, with the ATR atr (len bytes, at
 * most SSC_ATR_MAX). Returns the slot's gen, which a connection keeps to know its card.
 */
unsigned usb_state_active_locked(struct usb_dev *d, unsigned idx, const uint8_t *atr, size_t len);

/*
 * The card in slot idx is no longer in a state we know (switched off, or a failed exchange left
 * it mid-command): it is activated afresh before its next use. Takes drv->lock itself.
 */
void usb_state_unpowered(struct usb_dev *d, unsigned idx);

/* The device is gone (unplugged; failed 0) or failed (quarantined until replugged; failed 1). */
void usb_state_gone_locked(struct usb_dev *d, int failed);

#endif
