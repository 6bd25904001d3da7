/*
 * This file contains what the fuzz targets share: a reader of length-prefixed chunks from the
 * fuzzer's input, and the loading of the simulator's shipped profiles (sorted by file name, so that
 * a selector byte means the same profile in every run). Header-only: each target is one program.
 */
#ifndef FUZZLIB_H
#define FUZZLIB_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simcos.h"

#define FUZZ_MAX_PROFILES 32

/* The unread rest of the input. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* One byte, or def when the input is used up. */
static inline uint8_t fuzz_byte(struct fuzz_in *in, uint8_t def)
{
	uint8_t b;

	if (in->n == 0)
		return def;
	b = in->p[0];
	in->p++;
	in->n--;
	return b;
}

/*
 * The next chunk: a length byte L then L bytes; L = 0xFF means a 16-bit big-endian length
 * follows (for APDUs longer than 254 bytes). A short tail gives what is left. Returns 0 and the
 * chunk (borrowed from the input), or -1 at the end of the input.
 */
static inline int fuzz_chunk(struct fuzz_in *in, const uint8_t **p, size_t *len)
{
	size_t l;

	if (in->n == 0)
		return -1;
	l = fuzz_byte(in, 0);
	if (l == 0xFF) {
		l = (size_t)fuzz_byte(in, 0) << 8;
		l |= fuzz_byte(in, 0);
	}
	if (l > in->n)
		l = in->n;
	*p = in->p;
	*len = l;
	in->p += l;
	in->n -= l;
	return 0;
}

static inline int fuzz_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Loads every *.json of FUZZ_PROFILE_DIR into out (at most FUZZ_MAX_PROFILES), sorted by name.
 * Aborts when none loads: a fuzz run without profiles would test nothing.
 */
static inline size_t fuzz_load_profiles(struct sim_profile **out)
{
	char *names[FUZZ_MAX_PROFILES];
	size_t n = 0, loaded = 0;
	struct dirent *e;
	DIR *d = opendir(FUZZ_PROFILE_DIR);

	if (!d) {
		fprintf(stderr, "fuzz: cannot open %s\n", FUZZ_PROFILE_DIR);
		abort();
	}
	while ((e = readdir(d)) != NULL && n < FUZZ_MAX_PROFILES) {
		size_t l = strlen(e->d_name);

		if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), fuzz_name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[512], err[256];

		snprintf(path, sizeof(path), "%s/%s", FUZZ_PROFILE_DIR, names[i]);
		out[loaded] = sim_profile_load(path, err, sizeof(err));
		if (out[loaded])
			loaded++;
		else
			fprintf(stderr, "fuzz: %s\n", err);
		free(names[i]);
	}
	if (loaded == 0)
		abort();
	return loaded;
}

#endif
