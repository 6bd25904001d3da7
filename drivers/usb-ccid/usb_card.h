/*
 * This file contains the interface of usb_card.c: the activation of the card in a slot of the
 * USB CCID driver.
 */
#ifndef SSC_USB_CARD_H
#define SSC_USB_CARD_H

#include "usb.h"

/*
 * Activates the card in slot idx: power, ATR, the protocol and its parameters (PPS when the
 * reader leaves it to us), and for T=1 the IFSD. The slot's owner only; may block until deadline.
 * On success the slot is powered with its ATR (copied to atr, SSC_ATR_MAX bytes, and *atr_len)
 * and *gen is the slot's gen. Returns 0, SSC_ENOCARD, SSC_EPROTO, SSC_ETIMEDOUT, SSC_EREADER.
 */
int usb_card_activate(struct usb_dev *d, unsigned idx, int64_t deadline, uint8_t *atr,
		      size_t *atr_len, unsigned *gen);

#endif
