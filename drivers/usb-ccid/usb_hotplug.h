/*
 * This file contains the interface of usb_hotplug.c: the USB CCID driver's libusb context and the
 * device set kept in line with the devices plugged in. Monitor thread only, unless said otherwise.
 */
#ifndef SSC_USB_HOTPLUG_H
#define SSC_USB_HOTPLUG_H

#include "usb.h"

/* Handles libusb events (interrupt transfers, hotplug) for at most ms. */
void usb_hotplug_events(struct ssc_driver *drv, int ms);

/*
 * Takes drv->devs[i] out of the set and drops the set's reference: stops the interrupt transfer
 * first, waiting for its callback (at most USB_CANCEL_WAIT_MS; then the transfer is left, and the
 * device with it: never freed), since the device is freed once the last slot lets go of it.
 */
void usb_hotplug_remove(struct ssc_driver *drv, size_t i);

/* Forgets the devices remembered between two looks. */
void usb_hotplug_seen_clear(struct ssc_driver *drv);

/* Drops the libusb context (no device may be alive); waits for wake() calls still on it. */
void usb_hotplug_ctx_drop(struct ssc_driver *drv);

/*
 * Makes the libusb context if there is none and it is time to try (after a failure, every
 * USB_INIT_RETRY_MS). Returns 1 when one exists, else 0.
 */
int usb_hotplug_ctx_ensure(struct ssc_driver *drv);

/*
 * Whether making the context afresh is worth it: no device of ours is open, and no reader waits
 * for a retry or a replug (a fresh context would forget it, and try and warn again at once).
 */
int usb_hotplug_ctx_stale(struct ssc_driver *drv);

/*
 * Brings the device set in line with libusb's device list: devices that left or failed are taken
 * out, new ones (and those due for a retry) opened.
 */
void usb_hotplug_rescan(struct ssc_driver *drv);

/* Whether libusb's device list differs from what the last rescan saw. */
int usb_hotplug_list_changed(struct ssc_driver *drv);

/*
 * Asks the devices for their slots' status: every round those whose interrupt endpoint is
 * missing or stopped, the others one round in USB_HEALTH_POLLS. A device busy with a command is
 * skipped. Returns 1 when something changed.
 */
int usb_hotplug_poll_slots(struct ssc_driver *drv);

#endif
