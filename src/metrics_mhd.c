/*
 * This file contains the loading of libmicrohttpd for the metrics endpoint (src/metrics_mhd.h):
 * dlopen() of libmicrohttpd.so.12 when the daemon starts with [metrics] listen, its functions
 * resolved into one table.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics_mhd.h"

static pthread_mutex_t mhd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_mhd mhd_fns;    /* set once, under mhd_lock */
static const struct metrics_mhd *mhd_loaded;

/* One function of the table: its slot and its name in libmicrohttpd. */
#define METRICS_MHD_FN(field, name) { offsetof(struct metrics_mhd, field), name }
static const struct {
	size_t off;
	const char *name;
} mhd_syms[] = {
	METRICS_MHD_FN(start_daemon, "MHD_start_daemon"),
	METRICS_MHD_FN(stop_daemon, "MHD_stop_daemon"),
	METRICS_MHD_FN(run, "MHD_run"),
	METRICS_MHD_FN(get_timeout, "MHD_get_timeout"),
	METRICS_MHD_FN(get_daemon_info, "MHD_get_daemon_info"),
	METRICS_MHD_FN(create_response_from_buffer, "MHD_create_response_from_buffer"),
	METRICS_MHD_FN(add_response_header, "MHD_add_response_header"),
	METRICS_MHD_FN(queue_response, "MHD_queue_response"),
	METRICS_MHD_FN(destroy_response, "MHD_destroy_response"),
};
#undef METRICS_MHD_FN

/*
 * Resolves every function of the table into t from the library lib (loaded from soname). Returns
 * 0, or -1 with the missing one named in err. (A function pointer is copied from dlsym's void *
 * by its bytes, as POSIX allows: C itself does not convert between the two.)
 */
static int mhd_resolve(void *lib, const char *soname, struct metrics_mhd *t, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i < sizeof(mhd_syms) / sizeof(mhd_syms[0]); i++) {
		void *sym = dlsym(lib, mhd_syms[i].name);
		void (*fn)(void);

		if (!sym) {
			snprintf(err, errlen, "%s has no %s", soname, mhd_syms[i].name);
			return -1;
		}
		memcpy(&fn, &sym, sizeof(fn));
		memcpy((char *)t + mhd_syms[i].off, &fn, sizeof(fn));
	}
	return 0;
}

const struct metrics_mhd *metrics_mhd_load(const char *soname, char *err, size_t errlen)
{
	const struct metrics_mhd *out;
	void *lib;

	pthread_mutex_lock(&mhd_lock);
	out = mhd_loaded;
	if (out)
		goto done;
	lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *why = dlerror();

		if (why)
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "%s: cannot be loaded", soname);
		goto done;
	}
	if (mhd_resolve(lib, soname, &mhd_fns, err, errlen) != 0) {
		memset(&mhd_fns, 0, sizeof(mhd_fns));
		dlclose(lib);
		goto done;
	}
	/* Loaded for good: the endpoint uses it to the end of the process. */
	mhd_loaded = out = &mhd_fns;
done:
	pthread_mutex_unlock(&mhd_lock);
	return out;
}
