/*
 * This file contains sscardd's side of the service manager (src/service.h): socket activation and
 * the notices to the service manager (through src/svc.c: the protocol itself, no libsystemd), the
 * watchdog timer on the event loop, and dropping root to [daemon] user.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "svc.h"
#include "sscard/error.h"

int service_listen_fd(void)
{
	int n = svc_listen_fds(1), fd = SVC_LISTEN_FDS_START, fl;

	if (n < 0) {
		log_error("socket activation: %s", strerror(-n));
		return SSC_ECONFIG;
	}
	if (n == 0)
		return -1;
	if (n != 1) {
		log_error("socket activation: %d sockets passed, expected one (ListenStream= once in "
			  "sscardd.socket)", n);
		return SSC_ECONFIG;
	}
	if (svc_is_unix_stream(fd, 1) <= 0) {
		log_error("socket activation: the socket passed is not a listening Unix stream socket "
			  "(ListenStream=/run/sscard/sscardd.sock in sscardd.socket)");
		return SSC_ECONFIG;
	}
	/* Ours now: no program the daemon starts may inherit it, and libuv needs it non-blocking. */
	fl = fcntl(fd, F_GETFD);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fd;
}

void service_notify(const char *state)
{
	(void)svc_notify(state);
}

void service_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One line: a newline would start another assignment. */
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	service_notify(buf);
}

static void on_watchdog(uv_timer_t *t)
{
	struct service_watchdog *wd = t->data;

	if (wd->alive && !wd->alive(wd->arg)) {
		if (wd->skipped++ == 0)
			log_error("watchdog: the daemon is not healthy (see above): no WATCHDOG=1 until "
				  "it is, and the service manager restarts it after WatchdogSec=");
		return;
	}
	if (wd->skipped) {
		log_info("watchdog: healthy again after %d skipped ping(s)", wd->skipped);
		wd->skipped = 0;
	}
	service_notify("WATCHDOG=1");
}

int service_watchdog_start(struct service_watchdog *wd, uv_loop_t *loop, service_alive_fn alive,
			   void *arg)
{
	uint64_t usec = 0;

	memset(wd, 0, sizeof(*wd));
	if (svc_watchdog_usec(&usec) <= 0 || usec == 0)
		return 0;
	wd->alive = alive;
	wd->arg = arg;
	wd->interval_ms = usec / 2000 ? usec / 2000 : 1;
	uv_timer_init(loop, &wd->timer);
	wd->timer.data = wd;
	wd->started = 1;
	uv_timer_start(&wd->timer, on_watchdog, 0, wd->interval_ms);
	log_info("watchdog: WATCHDOG=1 every %llu ms while the event loop and the journal writer "
		 "are alive", (unsigned long long)wd->interval_ms);
	return 1;
}

void service_watchdog_stop(struct service_watchdog *wd)
{
	if (!wd->started)
		return;
	wd->started = 0;
	uv_close((uv_handle_t *)&wd->timer, NULL);
}

int service_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r = getpwnam_r(user, &pw, buf, sizeof(buf), &res);

	if (r != 0 || !res) {
		log_error("[daemon] user \"%s\": %s", user, r ? strerror(r) :
			  "no such user (the package creates sscard; or useradd --system)");
		return SSC_ECONFIG;
	}
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

int service_drop(const char *user, uid_t uid, gid_t gid)
{
	if (uid == 0) {
		log_error("[daemon] user \"%s\" is root: set an unprivileged user (sscard)", user);
		return SSC_EPERM;
	}
	if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		log_error("cannot become user %s (uid %ld gid %ld): %s", user, (long)uid, (long)gid,
			  strerror(errno));
		return SSC_EPERM;
	}
	/* setuid() from root drops every id (real, effective, saved): check that it did. */
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
		log_error("still able to become root after dropping to %s: refusing to run", user);
		return SSC_EPERM;
	}
	/* A change of credentials resets "dumpable" from fs.suid_dumpable: set it again. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	log_info("running as user %s (uid %ld gid %ld)", user, (long)uid, (long)gid);
	return 0;
}
