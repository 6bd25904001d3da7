/*
 * This file contains the unit tests of the service manager's protocol (src/svc.c): LISTEN_PID and
 * LISTEN_FDS (ours, another's, garbage, the variables removed), the socket check, NOTIFY_SOCKET's
 * two address forms and their lengths, one notice received on an abstract socket, and
 * WATCHDOG_USEC/WATCHDOG_PID. The expected values are worked out by hand from src/svc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "svc.h"

static void set_pid(const char *name, pid_t pid)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", (long)pid);
	setenv(name, buf, 1);
}

static int clear_env(void **state)
{
	(void)state;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 0;
}

static void test_listen_none(void **state)
{
	(void)state;
	assert_int_equal(svc_listen_fds(1), 0);
	setenv("LISTEN_FDS", "1", 1);          /* no LISTEN_PID: not for us */
	assert_int_equal(svc_listen_fds(0), 0);
}

static void test_listen_other_pid(void **state)
{
	(void)state;
	set_pid("LISTEN_PID", getpid() + 1);
	setenv("LISTEN_FDS", "1", 1);
	assert_int_equal(svc_listen_fds(1), 0);
	/* Removed whatever the outcome. */
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
}

static void test_listen_bad_pid(void **state)
{
	static const char *bad[] = { "", "abc", "-1", "0", " 12", "12x", "99999999999" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("LISTEN_PID", bad[i], 1);
		setenv("LISTEN_FDS", "1", 1);
		assert_int_equal(svc_listen_fds(1), -EINVAL);
	}
}

static void test_listen_fds_garbage(void **state)
{
	static const char *bad[] = { "", "x", "-1", "+1", "1 ", "1x", "2147483645", "99999999999999999999" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_pid("LISTEN_PID", getpid());
		setenv("LISTEN_FDS", bad[i], 1);
		assert_int_equal(svc_listen_fds(1), -EINVAL);
		assert_null(getenv("LISTEN_FDS"));
	}
}

static void test_listen_one_cloexec(void **state)
{
	int sv[2], fd;

	(void)state;
	/* Descriptor 3 is ours for the test: a socket without close-on-exec. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fd = dup2(sv[0], SVC_LISTEN_FDS_START);
	assert_int_equal(fd, SVC_LISTEN_FDS_START);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	set_pid("LISTEN_PID", getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "sscardd.socket", 1);
	assert_int_equal(svc_listen_fds(0), 1);
	assert_non_null(getenv("LISTEN_FDS"));          /* kept when asked to */
	assert_int_equal(svc_listen_fds(1), 1);
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
	assert_int_not_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	/* A connected stream socket is a Unix stream socket, but not a listening one. */
	assert_int_equal(svc_is_unix_stream(fd, 0), 1);
	assert_int_equal(svc_is_unix_stream(fd, 1), 0);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

static void test_is_unix_stream(void **state)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0), d = socket(AF_UNIX, SOCK_DGRAM, 0);
	int in = socket(AF_INET, SOCK_STREAM, 0), p[2];
	struct sockaddr_un sa;
	sa_family_t fam = AF_UNIX;

	(void)state;
	assert_true(l >= 0 && d >= 0 && in >= 0);
	/* An address of only the family: the kernel picks an abstract name. */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = fam;
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa_family_t)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(svc_is_unix_stream(l, 1), 1);
	assert_int_equal(svc_is_unix_stream(d, 0), 0);
	assert_int_equal(svc_is_unix_stream(in, 0), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(svc_is_unix_stream(p[0], 0), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	close(l);
	close(d);
	close(in);
}

static void test_notify_addr(void **state)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	char longp[sizeof(sa.sun_path) + 2];
	size_t base = offsetof(struct sockaddr_un, sun_path);

	(void)state;
	/* A path: its bytes and the terminating zero. */
	assert_int_equal(svc_notify_addr("/run/systemd/notify", &sa, &len), 0);
	assert_int_equal(sa.sun_family, AF_UNIX);
	assert_string_equal(sa.sun_path, "/run/systemd/notify");
	assert_int_equal(len, base + 20);
	/* An abstract name: a zero byte for the '@', no terminator. */
	assert_int_equal(svc_notify_addr("@sscard/n", &sa, &len), 0);
	assert_int_equal(sa.sun_path[0], '\0');
	assert_memory_equal(sa.sun_path + 1, "sscard/n", 8);
	assert_int_equal(len, base + 9);
	/* The longest path that fits: 107 bytes and its zero. */
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[107] = '\0';
	assert_int_equal(svc_notify_addr(longp, &sa, &len), 0);
	assert_int_equal(len, base + 108);
	/* One byte more does not fit. */
	longp[107] = 'a';
	longp[108] = '\0';
	assert_int_equal(svc_notify_addr(longp, &sa, &len), -EINVAL);
	/* An abstract name may use all 108 bytes (zero byte + 107); 109 do not fit. */
	longp[0] = '@';
	assert_int_equal(svc_notify_addr(longp, &sa, &len), 0);
	assert_int_equal(len, base + 108);
	longp[108] = 'a';
	longp[109] = '\0';
	assert_int_equal(svc_notify_addr(longp, &sa, &len), -EINVAL);
	assert_int_equal(svc_notify_addr("", &sa, &len), -EINVAL);
	assert_int_equal(svc_notify_addr("@", &sa, &len), -EINVAL);
	assert_int_equal(svc_notify_addr("run/notify", &sa, &len), -EAFNOSUPPORT);
	assert_int_equal(svc_notify_addr("vsock:2:1234", &sa, &len), -EAFNOSUPPORT);
}

static void test_notify_sent(void **state)
{
	struct sockaddr_un sa;
	char name[64], buf[64], longs[5000];
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t n;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(svc_notify("READY=1"), 0);     /* no NOTIFY_SOCKET: nothing to do */
	snprintf(name, sizeof(name), "@sscard-test-svc-%ld", (long)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))), 0);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(svc_notify("READY=1\nSTATUS=8 readers"), 1);
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 24);
	assert_memory_equal(buf, "READY=1\nSTATUS=8 readers", 24);
	/* An empty or over-long state is not sent. */
	assert_int_equal(svc_notify(""), -EINVAL);
	memset(longs, 'x', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	assert_int_equal(svc_notify(longs), -EINVAL);
	assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	/* No one listening there: an error, no block. */
	setenv("NOTIFY_SOCKET", "@sscard-test-svc-nobody", 1);
	assert_int_equal(svc_notify("READY=1"), -ECONNREFUSED);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(svc_notify("READY=1"), -EAFNOSUPPORT);
	close(fd);
}

static void test_watchdog(void **state)
{
	uint64_t usec = 7;

	(void)state;
	assert_int_equal(svc_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(svc_watchdog_usec(&usec), 1);   /* no WATCHDOG_PID: ours */
	assert_int_equal(usec, 30000000);
	set_pid("WATCHDOG_PID", getpid());
	usec = 7;
	assert_int_equal(svc_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);
	set_pid("WATCHDOG_PID", getpid() + 1);
	assert_int_equal(svc_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_PID", "x1", 1);
	assert_int_equal(svc_watchdog_usec(&usec), -EINVAL);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(svc_watchdog_usec(&usec), -EINVAL);
	setenv("WATCHDOG_USEC", "30s", 1);
	assert_int_equal(svc_watchdog_usec(&usec), -EINVAL);
	setenv("WATCHDOG_USEC", "18446744073709551616", 1);   /* 2^64 */
	assert_int_equal(svc_watchdog_usec(&usec), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_listen_none, clear_env),
		cmocka_unit_test_setup(test_listen_other_pid, clear_env),
		cmocka_unit_test_setup(test_listen_bad_pid, clear_env),
		cmocka_unit_test_setup(test_listen_fds_garbage, clear_env),
		cmocka_unit_test_setup(test_listen_one_cloexec, clear_env),
		cmocka_unit_test_setup(test_is_unix_stream, clear_env),
		cmocka_unit_test_setup(test_notify_addr, clear_env),
		cmocka_unit_test_setup(test_notify_sent, clear_env),
		cmocka_unit_test_setup(test_watchdog, clear_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
