/*
 * This file contains what sscardd needs of a service manager (systemd; the protocol is spoken by
 * src/svc.c, without libsystemd): the listening socket it passes (socket activation), the
 * readiness, status and stopping notices, the watchdog, and dropping root for [daemon] user.
 * Without a service manager at run time, each call is a no-op and the daemon runs as in a shell.
 */
#ifndef SSC_SERVICE_H
#define SSC_SERVICE_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/*
 * The listening socket the service manager passed (LISTEN_FDS/LISTEN_PID, svc_listen_fds): its
 * descriptor, once; the variables are removed from the environment so that no child inherits
 * them. Returns the descriptor (>= 3, owned by the caller, made close-on-exec and non-blocking),
 * -1 when none was passed (the daemon creates its own), or SSC_ECONFIG when what was passed is
 * not exactly one listening Unix stream socket (logged). Call it once, before any other socket is
 * opened. Never blocks.
 */
int service_listen_fd(void);

/*
 * Tells the service manager (NOTIFY_SOCKET) a state: "READY=1", "STOPPING=1", "STATUS=...",
 * several separated by newlines. A no-op without a manager. Any thread; never blocks (a datagram).
 */
void service_notify(const char *state);

/* service_notify("STATUS=<text>"), formatted. */
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Whether this process is alive as the watchdog sees it, asked before each WATCHDOG=1: 1 alive, 0
 * not (the ping is skipped, and the manager restarts the daemon once WatchdogSec= passes without
 * one). Loop thread.
 */
typedef int (*service_alive_fn)(void *arg);

struct service_watchdog {
	uv_timer_t timer;
	service_alive_fn alive;
	void *arg;
	uint64_t interval_ms;       /* half the manager's WATCHDOG_USEC */
	int started;
	int skipped;                /* pings skipped in a row (logged once) */
};

/*
 * Starts sending WATCHDOG=1 from loop's thread every half of WATCHDOG_USEC while alive(arg)
 * says so (svc_watchdog_usec: only when the manager asked for it, for this pid). The pings come
 * from a timer of the loop: a loop that is stuck sends none. Returns 1 started, 0 no watchdog
 * asked for. wd must stay valid until service_watchdog_stop() and the loop's close callbacks.
 */
int service_watchdog_start(struct service_watchdog *wd, uv_loop_t *loop, service_alive_fn alive,
			   void *arg);

/* Stops and closes the watchdog's timer (idempotent; a no-op when it never started). */
void service_watchdog_stop(struct service_watchdog *wd);

/*
 * Looks up [daemon] user: its uid and primary gid. Returns 0, or SSC_ECONFIG (no such user,
 * logged). Never blocks beyond NSS.
 */
int service_user(const char *user, uid_t *uid, gid_t *gid);

/*
 * Drops root for good: the user's supplementary groups (initgroups), then its gid, then its uid,
 * and checks that root cannot be regained. The process stays undumpable. Call it before any
 * thread is started that must not keep root (glibc applies setuid to every thread anyway).
 * Returns 0, or SSC_EPERM (logged): the daemon must not go on as root then.
 */
int service_drop(const char *user, uid_t uid, gid_t gid);

#endif
