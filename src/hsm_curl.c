/*
 * This file contains the loading of libcurl for the network PSAM (src/hsm_curl.h): dlopen() of
 * libcurl.so.4 on first use, its functions resolved into one table, curl_global_init run once.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "dl.h"
#include "hsm_curl.h"

static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hsm_curl curl_fns;      /* set once, under curl_lock */
static const struct hsm_curl *curl_loaded;

/* The functions of the table: their slots and their names in libcurl. */
#define HSM_CURL_FN(field, name) DL_FN(struct hsm_curl, field, name)
static const struct dl_fn curl_syms[] = {
	HSM_CURL_FN(easy_init, "curl_easy_init"),
	HSM_CURL_FN(easy_cleanup, "curl_easy_cleanup"),
	HSM_CURL_FN(easy_setopt, "curl_easy_setopt"),
	HSM_CURL_FN(easy_perform, "curl_easy_perform"),
	HSM_CURL_FN(easy_getinfo, "curl_easy_getinfo"),
	HSM_CURL_FN(easy_strerror, "curl_easy_strerror"),
	HSM_CURL_FN(slist_append, "curl_slist_append"),
	HSM_CURL_FN(slist_free_all, "curl_slist_free_all"),
};
#undef HSM_CURL_FN

const struct hsm_curl *hsm_curl_load(char *err, size_t errlen)
{
	CURLcode (*global_init)(long flags) = NULL;
	const struct hsm_curl *out;
	void *lib, *sym;

	pthread_mutex_lock(&curl_lock);
	out = curl_loaded;
	if (out)
		goto done;
	lib = dl_table_open(HSM_CURL_SONAME, curl_syms, sizeof(curl_syms) / sizeof(curl_syms[0]),
			    &curl_fns, sizeof(curl_fns), err, errlen);
	if (!lib)
		goto done;
	sym = dlsym(lib, "curl_global_init");
	if (sym)
		memcpy(&global_init, &sym, sizeof(global_init));
	if (!global_init) {
		snprintf(err, errlen, "%s has no curl_global_init", HSM_CURL_SONAME);
		goto fail;
	}
	if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "%s cannot be initialised", HSM_CURL_SONAME);
		goto fail;
	}
	/* Loaded for good: the handles of every key provider use it to the end of the process. */
	curl_loaded = out = &curl_fns;
	goto done;
fail:
	memset(&curl_fns, 0, sizeof(curl_fns));
	dlclose(lib);
done:
	pthread_mutex_unlock(&curl_lock);
	return out;
}
