/*
 * This file contains the HTTP library of the metrics endpoint: the few libmicrohttpd functions
 * that src/metrics.c calls, loaded with dlopen("libmicrohttpd.so.12") when sscardd starts with
 * [metrics] listen set, not linked. A daemon with the metrics off never maps libmicrohttpd nor
 * GnuTLS and the libraries GnuTLS brings (docs/performance.md, "libmicrohttpd only with
 * [metrics]"). Only the types and constants come from <microhttpd.h> at build time.
 */
#ifndef SSC_METRICS_MHD_H
#define SSC_METRICS_MHD_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

/* The file dlopen() is asked for: libmicrohttpd's ABI 12, as the package libmicrohttpd12
 * installs it. */
#define METRICS_MHD_SONAME "libmicrohttpd.so.12"

/* The libmicrohttpd functions used, resolved by dlsym() under their own names (MHD_run, ...). */
struct metrics_mhd {
	struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
					   MHD_AcceptPolicyCallback apc, void *apc_cls,
					   MHD_AccessHandlerCallback dh, void *dh_cls, ...);
	void (*stop_daemon)(struct MHD_Daemon *daemon);
	enum MHD_Result (*run)(struct MHD_Daemon *daemon);
	enum MHD_Result (*get_timeout)(struct MHD_Daemon *daemon, MHD_UNSIGNED_LONG_LONG *timeout);
	const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *daemon,
						       enum MHD_DaemonInfoType info_type, ...);
	struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer,
							    enum MHD_ResponseMemoryMode mode);
	enum MHD_Result (*add_response_header)(struct MHD_Response *response, const char *header,
					       const char *content);
	enum MHD_Result (*queue_response)(struct MHD_Connection *connection,
					  unsigned int status_code, struct MHD_Response *response);
	void (*destroy_response)(struct MHD_Response *response);
};

/*
 * Loads libmicrohttpd from the file soname (METRICS_MHD_SONAME; a test passes another name) once
 * per process: after a success, every later call, from any thread and whatever its soname,
 * returns the same table. Returns the table, or NULL with the reason in err (dlerror()'s text:
 * the file missing or not a library; or "SONAME has no FUNCTION"), in which case a later call
 * tries again. The library stays loaded to the end of the process. Logs nothing.
 */
const struct metrics_mhd *metrics_mhd_load(const char *soname, char *err, size_t errlen);

#endif
