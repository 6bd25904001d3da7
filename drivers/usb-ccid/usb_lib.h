/*
 * This file contains the USB library of the usb-ccid driver: the libusb functions it calls,
 * loaded with dlopen("libusb-1.0.so.0") when the driver is opened ([drivers] usb = yes), not
 * linked. A daemon with the driver off (the default) maps neither libusb nor libudev, which
 * libusb brings (docs/performance.md, idle memory). Only the types, constants and inline helpers
 * (libusb_fill_interrupt_transfer) come from <libusb.h> at build time. The driver calls
 * usbl->NAME(...) where it would call libusb_NAME(...).
 */
#ifndef SSC_USB_LIB_H
#define SSC_USB_LIB_H

#include <stddef.h>

#include <libusb.h>

/* The file dlopen() is asked for: libusb-1.0's ABI 0, as the package libusb-1.0-0 installs it. */
#define USB_LIB_SONAME "libusb-1.0.so.0"

/* The functions used, by their names without "libusb_". */
#define USB_LIB_FNS(X)                                                                        \
	X(init) X(exit) X(has_capability) X(error_name)                                       \
	X(hotplug_register_callback) X(hotplug_deregister_callback)                           \
	X(handle_events_timeout_completed) X(interrupt_event_handler)                         \
	X(get_device_list) X(free_device_list) X(ref_device) X(unref_device)                  \
	X(get_device_descriptor) X(get_active_config_descriptor) X(get_config_descriptor)     \
	X(free_config_descriptor) X(get_bus_number) X(get_device_address)                     \
	X(get_port_numbers) X(open) X(close) X(set_auto_detach_kernel_driver)                 \
	X(claim_interface) X(release_interface) X(set_interface_alt_setting)                  \
	X(control_transfer) X(bulk_transfer) X(clear_halt) X(alloc_transfer)                  \
	X(free_transfer) X(submit_transfer) X(cancel_transfer)

/* One pointer per function, of the type <libusb.h> declares it with. */
struct usb_lib {
#define USB_LIB_SLOT(fn) __typeof__(libusb_##fn) *fn;
	USB_LIB_FNS(USB_LIB_SLOT)
#undef USB_LIB_SLOT
};

/* The table, once usb_lib_load() succeeded (the driver's open() comes first); NULL before. */
extern const struct usb_lib *usbl;

/*
 * Loads libusb once per process (the driver's open(); later calls, from any thread, return at
 * once). Returns 0, or SSC_EUSBLIB with the reason logged (the file missing or not a library,
 * or a function it lacks), in which case a later call tries again. The library stays loaded to
 * the end of the process.
 */
int usb_lib_load(void);

#endif
