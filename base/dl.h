/*
 * This file contains the loading of an optional library's functions into a table: dlopen() of
 * one file and dlsym() of each function named. The daemon loads libcurl (src/hsm_curl.c),
 * libmicrohttpd (src/metrics_mhd.c) and libusb (drivers/usb-ccid/usb_lib.c) this way, only when
 * their part is configured, so that a daemon without them neither maps them nor the libraries
 * they bring (docs/performance.md, idle memory).
 */
#ifndef SSC_DL_H
#define SSC_DL_H

#include <stddef.h>

/* One function of a table: the offset of its pointer in the table, and its name in the file. */
struct dl_fn {
	size_t off;
	const char *name;
};
#define DL_FN(type, field, sym) { offsetof(type, field), sym }

/*
 * Opens the file soname (dlopen(), RTLD_NOW | RTLD_LOCAL) and stores each of the n functions of
 * fns into table, a struct of table_size bytes made of function pointers. Returns the library's
 * handle (for dlsym() of more, or dlclose()), or NULL with the reason in err: dlerror()'s text
 * (the file missing or not a library) or "SONAME has no NAME"; then table is zeroed and nothing
 * stays loaded. Not thread-safe as to table: callers load once under a lock of their own. Logs
 * nothing.
 */
void *dl_table_open(const char *soname, const struct dl_fn *fns, size_t n, void *table,
		    size_t table_size, char *err, size_t errlen);

#endif
