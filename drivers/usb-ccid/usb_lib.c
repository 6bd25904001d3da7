/*
 * This file contains the loading of libusb for the usb-ccid driver (usb_lib.h).
 */
#include <pthread.h>

#include "dl.h"
#include "log.h"
#include "sscard/error.h"
#include "usb_lib.h"

static pthread_mutex_t usb_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static struct usb_lib usb_lib_fns;    /* set once, under usb_lib_lock */
const struct usb_lib *usbl;

#define USB_LIB_NAME(fn) DL_FN(struct usb_lib, fn, "libusb_" #fn),
static const struct dl_fn usb_lib_syms[] = { USB_LIB_FNS(USB_LIB_NAME) };
#undef USB_LIB_NAME

int usb_lib_load(void)
{
	char err[256];
	int rc = 0;

	pthread_mutex_lock(&usb_lib_lock);
	if (!usbl) {
		if (dl_table_open(USB_LIB_SONAME, usb_lib_syms,
				  sizeof(usb_lib_syms) / sizeof(usb_lib_syms[0]), &usb_lib_fns,
				  sizeof(usb_lib_fns), err, sizeof(err))) {
			/* Loaded for good: the driver's devices use it to the end of the process. */
			usbl = &usb_lib_fns;
		} else {
			log_error("usb-ccid: [drivers] usb is on, but libusb cannot be loaded "
				  "(SSC_EUSBLIB: %s): install the package libusb-1.0-0 (apt-get "
				  "install libusb-1.0-0), or set [drivers] usb = no",
				  err);
			rc = SSC_EUSBLIB;
		}
	}
	pthread_mutex_unlock(&usb_lib_lock);
	return rc;
}
