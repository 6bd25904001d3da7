/*
 * This file contains the service manager's protocol (src/svc.h): socket activation's variables,
 * the notify datagram and the watchdog's period, read from the environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc.h"

/* The longest state svc_notify() sends (the manager reads far more; our notices are short). */
#define SVC_STATE_MAX 4096

/*
 * Parses s as an unsigned decimal number, digits only, at most max. Returns 0 with *out set, or
 * -EINVAL (empty, a sign, a space, anything after the digits, or above max).
 */
static int svc_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Whether the variable name (a pid) names this process: 1 yes, 0 unset or another, -EINVAL bad. */
static int svc_pid_is_ours(const char *name)
{
	const char *s = getenv(name);
	uint64_t pid;

	if (!s)
		return 0;
	if (svc_parse_u64(s, (uint64_t)INT32_MAX, &pid) != 0 || pid == 0)
		return -EINVAL;
	return (pid_t)pid == getpid();
}

static int svc_listen_count(void)
{
	int ours = svc_pid_is_ours("LISTEN_PID");
	uint64_t n;

	if (ours <= 0)
		return ours;
	if (!getenv("LISTEN_FDS"))
		return 0;
	/* No process is given more descriptors than INT_MAX - 3; a number above is garbage. */
	if (svc_parse_u64(getenv("LISTEN_FDS"), (uint64_t)INT32_MAX - SVC_LISTEN_FDS_START, &n) != 0)
		return -EINVAL;
	for (int fd = SVC_LISTEN_FDS_START; fd < SVC_LISTEN_FDS_START + (int)n; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl < 0)
			return -errno;
		if (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
			return -errno;
	}
	return (int)n;
}

int svc_listen_fds(int unset_env)
{
	int n = svc_listen_count();

	if (unset_env) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	return n;
}

int svc_is_unix_stream(int fd, int listening)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int), slen = sizeof(ss);
	int type = 0, acc = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
		return -errno;
	if (slen < (socklen_t)sizeof(sa_family_t) || ss.ss_family != AF_UNIX)
		return 0;
	if (listening) {
		len = sizeof(acc);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
			return -errno;
		if (!acc)
			return 0;
	}
	return 1;
}

int svc_notify_addr(const char *s, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = s ? strlen(s) : 0;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n < 2)
		return -EINVAL;
	if (s[0] == '/') {
		/* A path: it and its terminating zero must fit. */
		if (n >= sizeof(sa->sun_path))
			return -EINVAL;
		memcpy(sa->sun_path, s, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (s[0] == '@') {
		/* An abstract name: a zero byte, then the name's bytes, no terminator counted. */
		if (n > sizeof(sa->sun_path))
			return -EINVAL;
		memcpy(sa->sun_path + 1, s + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int svc_notify(const char *state)
{
	const char *s = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len = 0;
	size_t n = state ? strnlen(state, SVC_STATE_MAX + 1) : 0;
	ssize_t sent;
	int fd, r;

	if (!s)
		return 0;
	if (n == 0 || n > SVC_STATE_MAX)
		return -EINVAL;
	r = svc_notify_addr(s, &sa, &len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, state, n, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, len);
	r = sent < 0 ? -errno : (size_t)sent == n ? 1 : -EIO;
	close(fd);
	return r;
}

int svc_watchdog_usec(uint64_t *usec)
{
	const char *s = getenv("WATCHDOG_USEC");
	uint64_t v;
	int ours;

	if (!s)
		return 0;
	if (svc_parse_u64(s, UINT64_MAX - 1, &v) != 0 || v == 0)
		return -EINVAL;
	if (getenv("WATCHDOG_PID")) {
		ours = svc_pid_is_ours("WATCHDOG_PID");
		if (ours <= 0)
			return ours;
	}
	*usec = v;
	return 1;
}
