/*
 * This file contains the allocation-failure injection of the *_oom tests: every allocation of the
 * daemon's code (malloc, calloc, realloc, strdup, strndup, through the linker's --wrap, which
 * tests/CMakeLists.txt gives every test named test_*_oom), of SQLite (SQLITE_CONFIG_MALLOC), of
 * jansson (json_set_alloc_funcs) and of OpenSSL (CRYPTO_set_mem_functions) is counted, and the
 * Nth one can be made to fail (jansson's parser excepted: see __wrap_json_loads). A test runs an
 * operation with N = 1, 2, ... until a run in which no allocation failed: each allocation point of
 * the operation has then failed once. Header-only: one test includes it, and calls af_install()
 * first thing in main().
 */
#ifndef TEST_ALLOC_FAIL_H
#define TEST_ALLOC_FAIL_H

#include <openssl/crypto.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

json_t *__real_json_loads(const char *input, size_t flags, json_error_t *error);
json_t *__real_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);
json_t *__wrap_json_loads(const char *input, size_t flags, json_error_t *error);
json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);

static atomic_long af_seen;       /* allocations counted since af_arm() */
static atomic_int af_paused;      /* > 0: inside jansson's parser, nothing fails */
static atomic_long af_fail_at;    /* the one to fail (1-based); 0 = none */
static atomic_int af_failed;      /* it did fail */
static atomic_long af_fail_at_last;   /* the last one armed, for messages */

/* Whether this allocation is the one to fail. */
static int af_take(void)
{
	long at = atomic_load(&af_fail_at);
	long n;

	if (at == 0 || atomic_load(&af_paused) > 0)
		return 0;
	n = atomic_fetch_add(&af_seen, 1) + 1;
	if (n != at)
		return 0;
	atomic_store(&af_failed, 1);
	return 1;
}

/* From now on, the nth allocation fails (once). n = 0: none. */
static inline void af_arm(long n)
{
	atomic_store(&af_seen, 0);
	atomic_store(&af_failed, 0);
	atomic_store(&af_fail_at_last, n);
	atomic_store(&af_fail_at, n);
}

/* Stops failing; returns 1 when the armed allocation was reached (and failed). */
static inline int af_disarm(void)
{
	atomic_store(&af_fail_at, 0);
	return atomic_load(&af_failed);
}

void *__wrap_malloc(size_t n)
{
	return af_take() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return af_take() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return af_take() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return af_take() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return af_take() ? NULL : __real_strndup(s, n);
}

/*
 * jansson's parser is left out: it does not survive a failed allocation (its lexer drops the
 * character it could not save, and then asserts in load.c, or returns a string one character
 * short), so no caller can make that failure clean. What the daemon does about it is
 * rpc.c's parse_request(): a failure it sees drops the parse.
 */
json_t *__wrap_json_loads(const char *input, size_t flags, json_error_t *error)
{
	json_t *j;

	atomic_fetch_add(&af_paused, 1);
	j = __real_json_loads(input, flags, error);
	atomic_fetch_sub(&af_paused, 1);
	return j;
}

json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error)
{
	json_t *j;

	atomic_fetch_add(&af_paused, 1);
	j = __real_json_loadb(buffer, buflen, flags, error);
	atomic_fetch_sub(&af_paused, 1);
	return j;
}

static void *af_json_malloc(size_t n)
{
	return af_take() ? NULL : __real_malloc(n);
}

static void *af_ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return af_take() ? NULL : __real_malloc(n);
}

static void *af_ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return af_take() ? NULL : __real_realloc(p, n);
}

static void af_ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

static sqlite3_mem_methods af_sqlite_orig;

static void *af_sqlite_malloc(int n)
{
	return af_take() ? NULL : af_sqlite_orig.xMalloc(n);
}

static void *af_sqlite_realloc(void *p, int n)
{
	return af_take() ? NULL : af_sqlite_orig.xRealloc(p, n);
}

/*
 * Routes SQLite's, jansson's and OpenSSL's allocations through the counter. First thing in
 * main(), before any of them allocates. Returns 0, or -1 when one of them refuses.
 */
static inline int af_install(void)
{
	sqlite3_mem_methods m;

	if (CRYPTO_set_mem_functions(af_ossl_malloc, af_ossl_realloc, af_ossl_free) != 1)
		return -1;
	json_set_alloc_funcs(af_json_malloc, free);
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &af_sqlite_orig) != SQLITE_OK)
		return -1;
	m = af_sqlite_orig;
	m.xMalloc = af_sqlite_malloc;
	m.xRealloc = af_sqlite_realloc;
	/* Lookaside would serve small allocations without asking: every one should be asked. */
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK)
		return -1;
	return 0;
}

#endif
