/*
 * This file contains the HTTPS library of the network PSAM: the few libcurl functions that
 * src/hsm_keyprov.c calls, loaded with dlopen("libcurl.so.4") when the key provider is created
 * ([hsm] url set), not linked. A daemon without [hsm] never maps libcurl nor the libraries it
 * brings (docs/performance.md, "libcurl only with [hsm]"). Only the types and constants come from
 * <curl/curl.h> at build time.
 */
#ifndef SSC_HSM_CURL_H
#define SSC_HSM_CURL_H

#include <stddef.h>

#include <curl/curl.h>

/* The file dlopen() is asked for: libcurl's ABI 4, as the package libcurl4 installs it. */
#define HSM_CURL_SONAME "libcurl.so.4"

/* The libcurl functions used, resolved by dlsym() under their own names (curl_easy_init, ...). */
struct hsm_curl {
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *curl);
	CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
	CURLcode (*easy_perform)(CURL *curl);
	CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode e);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
};

/*
 * Loads libcurl once per process (the later calls, from any thread, return the same table) and
 * runs curl_global_init. Returns the table, or NULL with the reason in err (dlerror()'s text: the
 * file missing, or a function it lacks; or the failed initialisation), in which case a later call
 * tries again. The library stays loaded to the end of the process.
 */
const struct hsm_curl *hsm_curl_load(char *err, size_t errlen);

#endif
