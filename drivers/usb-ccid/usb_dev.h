/*
 * This file contains the interface of usb_dev.c: the devices the USB CCID driver serves, found,
 * opened and claimed, and released with their last reference.
 */
#ifndef SSC_USB_DEV_H
#define SSC_USB_DEV_H

#include "usb.h"

/*
 * Parses the allow-list "VID:PID,VID:PID" (hex, at most USB_ALLOW_MAX) into drv->allow.
 * Returns 0 or SSC_ECONFIG (logged).
 */
int usb_dev_parse_allow(struct ssc_driver *drv, const char *s);

/*
 * Opens, claims and describes dev if it is a CCID reader we serve, learns where its cards are
 * and starts its interrupt transfer. Monitor thread; blocks for a few short control and status
 * transfers. quiet logs a failure to open or claim at debug level only. Returns 0 and *out (one
 * reference, for the device set), SSC_ENOTFOUND (not a reader of ours), or another error (try
 * again later: SSC_EREADERBUSY, SSC_EREADER, SSC_ENOMEM, SSC_ETIMEDOUT).
 */
int usb_dev_open(struct ssc_driver *drv, libusb_device *dev, int quiet, struct usb_dev **out);

/* Drops one reference to d; the last frees it (drv->lock must not be held). */
void usb_dev_unref(struct usb_dev *d);

#endif
