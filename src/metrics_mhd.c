/*
 * This file contains the loading of libmicrohttpd for the metrics endpoint (src/metrics_mhd.h):
 * dlopen() of libmicrohttpd.so.12 when the daemon starts with [metrics] listen, its functions
 * resolved into one table.
 */
#include <pthread.h>

#include "dl.h"
#include "metrics_mhd.h"

static pthread_mutex_t mhd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_mhd mhd_fns;    /* set once, under mhd_lock */
static const struct metrics_mhd *mhd_loaded;

/* The functions of the table: their slots and their names in libmicrohttpd. */
#define METRICS_MHD_FN(field, name) DL_FN(struct metrics_mhd, field, name)
static const struct dl_fn mhd_syms[] = {
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

const struct metrics_mhd *metrics_mhd_load(const char *soname, char *err, size_t errlen)
{
	const struct metrics_mhd *out;

	pthread_mutex_lock(&mhd_lock);
	out = mhd_loaded;
	if (out)
		goto done;
	if (!dl_table_open(soname, mhd_syms, sizeof(mhd_syms) / sizeof(mhd_syms[0]), &mhd_fns,
			   sizeof(mhd_fns), err, errlen))
		goto done;
	/* Loaded for good: the endpoint uses it to the end of the process. */
	mhd_loaded = out = &mhd_fns;
done:
	pthread_mutex_unlock(&mhd_lock);
	return out;
}
