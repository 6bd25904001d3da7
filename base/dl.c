/*
 * This file contains the loading of an optional library's functions into a table (dl.h).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "dl.h"

void *dl_table_open(const char *soname, const struct dl_fn *fns, size_t n, void *table,
		    size_t table_size, char *err, size_t errlen)
{
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		const char *why = dlerror();

		if (why)
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "%s: cannot be loaded", soname);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		void *sym = dlsym(lib, fns[i].name);
		void (*fn)(void);

		if (!sym) {
			snprintf(err, errlen, "%s has no %s", soname, fns[i].name);
			memset(table, 0, table_size);
			dlclose(lib);
			return NULL;
		}
		/* A function pointer is copied from dlsym()'s void * by its bytes, as POSIX allows:
		 * C itself does not convert between the two. */
		memcpy(&fn, &sym, sizeof(fn));
		memcpy((char *)table + fns[i].off, &fn, sizeof(fn));
	}
	return lib;
}
