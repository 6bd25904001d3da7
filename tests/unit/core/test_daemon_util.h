/*
 * This file contains the in-process daemon shared by the tests that talk to a real server over a
 * socket (test_server, test_server_cli): sscardd's own wiring (src/daemon.h: daemon_new(),
 * daemon_start(), daemon_stop(), daemon_free()) on a loop that runs in a thread of the test. The
 * test chooses the configuration (socket, journal path, drivers). Header-only, static inline.
 */
#ifndef TEST_DAEMON_UTIL_H
#define TEST_DAEMON_UTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"

/* A daemon on a loop thread of the test. */
struct daemon_thread {
	pthread_t th;
	uv_loop_t loop;
	uv_async_t stop;
	struct config cfg;
	struct daemon *d;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready;
	int start_rc;          /* daemon_new()'s or daemon_start()'s */
	int loop_close_rc;     /* uv_loop_close() at the end: 0 = nothing left behind */
};

static inline void dt_on_stop(uv_async_t *a)
{
	struct daemon_thread *t = a->data;

	daemon_stop(t->d, "the test");
	uv_close((uv_handle_t *)&t->stop, NULL);
}

static inline void *dt_main(void *arg)
{
	struct daemon_thread *t = arg;
	int rc;

	uv_loop_init(&t->loop);
	uv_async_init(&t->loop, &t->stop, dt_on_stop);
	t->stop.data = t;
	rc = daemon_new(&t->loop, &t->cfg, NULL, &t->d, NULL);
	if (rc == 0)
		rc = daemon_start(t->d);   /* on failure the daemon has stopped: run the loop out */
	pthread_mutex_lock(&t->mu);
	t->ready = 1;
	t->start_rc = rc;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (rc != 0)
		uv_close((uv_handle_t *)&t->stop, NULL);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	daemon_free(t->d);
	t->loop_close_rc = uv_loop_close(&t->loop);
	return NULL;
}

/*
 * Starts a daemon with cfg (copied) on a thread of its own and waits until it serves (or failed:
 * t->start_rc). Stop it with daemon_thread_stop().
 */
static inline struct daemon_thread *daemon_thread_start(const struct config *cfg)
{
	struct daemon_thread *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->cfg = *cfg;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	assert_int_equal(pthread_create(&t->th, NULL, dt_main, t), 0);
	pthread_mutex_lock(&t->mu);
	while (!t->ready)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	return t;
}

/*
 * The daemon's orderly stop (as at SIGTERM), then joins its thread and frees t. Returns what
 * uv_loop_close() said once the daemon was freed: 0 when no handle was left behind.
 */
static inline int daemon_thread_stop(struct daemon_thread *t)
{
	int rc;

	if (t->start_rc == 0)
		uv_async_send(&t->stop);
	assert_int_equal(pthread_join(t->th, NULL), 0);
	rc = t->loop_close_rc;
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
	return rc;
}

/* Removes the journal (and its -wal, -shm, key and probe files) at path, as a test's cleanup. */
static inline void daemon_thread_rm_journal(const char *path)
{
	static const char *const ext[] = { "", "-wal", "-shm", ".key", ".probe" };
	char p[4200];

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, ext[i]);
		unlink(p);
	}
}

#endif
