/*
 * This file contains the interface of usb_exchange.c: one APDU exchanged with the active card of
 * a slot of the USB CCID driver, at the reader's exchange level.
 */
#ifndef SSC_USB_EXCHANGE_H
#define SSC_USB_EXCHANGE_H

#include "usb.h"

/*
 * Sends the command APDU cmd (cmd_len bytes) to the card in slot idx, activated at the protocol
 * the slot holds, and receives its whole answer into resp (resp_cap bytes), within deadline.
 * The slot's owner only (its protocol state is the caller's). A failure at TPDU level that leaves
 * the card in an unknown state marks the slot unpowered, so that its next user resets it.
 * Returns the answer's length (>= 2), or SSC_EINVAL (too long for this reader: nothing sent),
 * SSC_ECARDREMOVED, SSC_ETIMEDOUT, SSC_EPROTO, SSC_EREADERBUSY, SSC_EREADER.
 */
int usb_exchange_transmit(struct usb_dev *d, unsigned idx, const uint8_t *cmd, size_t cmd_len,
			  uint8_t *resp, size_t resp_cap, int64_t deadline);

#endif
