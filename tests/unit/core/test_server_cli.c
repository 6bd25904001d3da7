/*
 * This file contains the tests of sscardctl's contract (docs/operations.md): its outputs and exit
 * codes against sscardd's own wiring (src/daemon.h) on a temporary socket (reader core with the pcsc
 * driver and no pcscd, so no readers; a journal in the test's directory), against a socket that accepts and never answers, and with no socket.
 * The sscardctl binary is the one built beside this test (../src/sscardctl).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;
#include <uv.h>

#include "config.h"
#include "sscard/error.h"
#include "test_daemon_util.h"

static char tmpdir[64];
static char sockpath[96];
static char journalpath[96];
static char ctl[PATH_MAX];
static struct daemon_thread *dmn;

static int setup(void **state)
{
	char self[PATH_MAX - 32], *slash;
	ssize_t n;
	struct daemon_thread *d;
	struct config cfg;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(ctl, sizeof(ctl), "%s/../src/sscardctl", self);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ssc-test-cli-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sockpath, sizeof(sockpath), "%s/sscardd.sock", tmpdir);
	setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/ssc-test-cli/pcscd.comm", 1);
	unsetenv("SSCARD_SOCKET");

	snprintf(journalpath, sizeof(journalpath), "%s/journal.db", tmpdir);
	config_defaults(&cfg);
	snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", sockpath);
	cfg.socket_group[0] = '\0';
	cfg.driver_pcsc = 1;   /* the pcsc driver alone, pointed at no pcscd: no readers */
	cfg.driver_usb = 0;
	snprintf(cfg.journal_path, sizeof(cfg.journal_path), "%s", journalpath);
	d = daemon_thread_start(&cfg);
	if (d->start_rc != 0) {
		daemon_thread_stop(d);
		return -1;
	}
	dmn = d;
	return 0;
}

static int teardown(void **state)
{
	char p[128];

	if (dmn) {
		daemon_thread_stop(dmn);
		dmn = NULL;
	}
	daemon_thread_rm_journal(journalpath);
	snprintf(p, sizeof(p), "%s/mute.sock", tmpdir);
	unlink(p);
	rmdir(tmpdir);
	return 0;
}

/* Output of one sscardctl run. */
struct run {
	int status;          /* exit code */
	char out[16384];
	char err[16384];
	long ms;             /* wall time */
};

/* Reads fd to EOF into buf (NUL-terminated), with a 10 s bound. */
static void slurp(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 10000), 1);
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		assert_true(len < cap - 1);
	}
	buf[len] = '\0';
}

/* Runs sscardctl with the NULL-terminated args (after argv[0]); SSCARD_SOCKET = env_socket. */
static void run_ctl(struct run *r, const char *env_socket, ...)
{
	const char *argv[32];
	static char *envp[256];
	static char sockvar[PATH_MAX + 16];
	int n = 0, ne = 0, o[2], e[2], status;
	struct timespec t0, t1;
	va_list ap;
	pid_t pid;

	if (access(ctl, X_OK) != 0) {
		print_message("no %s: build the sscardctl target\n", ctl);
		skip();
	}
	argv[n++] = ctl;
	va_start(ap, env_socket);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	/*
	 * The child's environment is made here, before fork(): the daemon's threads run in this
	 * process, and a child of a threaded process that allocates (setenv) may wait forever on a
	 * lock one of them held at the fork (the ASan suite once saw sscardctl never start).
	 */
	for (char **ev = environ; *ev && ne < 254; ev++)
		if (strncmp(*ev, "SSCARD_SOCKET=", 14) != 0)
			envp[ne++] = *ev;
	if (env_socket) {
		snprintf(sockvar, sizeof(sockvar), "SSCARD_SOCKET=%s", env_socket);
		envp[ne++] = sockvar;
	}
	envp[ne] = NULL;
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		execve(ctl, (char *const *)argv, envp);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	slurp(o[0], r->out, sizeof(r->out));
	slurp(e[0], r->err, sizeof(r->err));
	close(o[0]);
	close(e[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(WIFEXITED(status));
	r->status = WEXITSTATUS(status);
	print_message("exit %d, %ld ms\nstdout: %s\nstderr: %s\n", r->status, r->ms, r->out, r->err);
}

static void test_info_and_readers(void **state)
{
	static struct run r;

	run_ctl(&r, sockpath, "info", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "API level 1"));
	assert_non_null(strstr(r.out, "card.read_basic"));
	/* The socket from --socket wins over SSCARD_SOCKET. */
	run_ctl(&r, "/nonexistent.sock", "--socket", sockpath, "readers", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "no readers"));
	run_ctl(&r, sockpath, "--json", "readers", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"readers\": []"));
	run_ctl(&r, NULL, "call", "reader.list", "{}", "--socket", sockpath, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"readers\""));
}

static void test_api_errors_exit_1(void **state)
{
	static struct run r;

	/* No readers: no card. The name and the message go to stderr; stdout stays empty. */
	run_ctl(&r, sockpath, "read-basic", NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_true(strstr(r.err, "SSC_ENOCARD") || strstr(r.err, "SSC_ENOREADER"));
	run_ctl(&r, sockpath, "--json", "read-items", "SSSE/EF06", "08", "--reader", "pcsc-x",
		NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "SSC_ENOREADER"));
	assert_non_null(strstr(r.err, "code 1007"));
	assert_non_null(strstr(r.err, "standard code -11"));
	run_ctl(&r, sockpath, "read-items", "SSSE/EF99", "01", NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "SSC_EBADITEM"));
	run_ctl(&r, sockpath, "call", "no.such.method", NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "code -32601"));
}

static void test_usage_exit_2(void **state)
{
	static struct run r;

	run_ctl(&r, sockpath, NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "frobnicate", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "read-items", "SSSE/EF06", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "readers", "--reader", "x", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "--timeout", "soon", "info", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "call", "system.info", "[1]", NULL);
	assert_int_equal(r.status, 2);
	run_ctl(&r, sockpath, "--help", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "Exit status"));
}

static void test_cannot_connect_exit_3(void **state)
{
	static struct run r;
	char path[128];

	snprintf(path, sizeof(path), "%s/nobody-here.sock", tmpdir);
	run_ctl(&r, path, "info", NULL);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "is sscardd running"));
}

static void test_no_answer_exit_4(void **state)
{
	static struct run r;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	/* A socket that accepts (the kernel does, from the backlog) and never answers. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mute.sock", tmpdir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	run_ctl(&r, sa.sun_path, "--timeout", "400", "info", NULL);
	assert_int_equal(r.status, 4);
	assert_true(r.ms >= 350 && r.ms < 3000);   /* the deadline, not a hang */
	assert_non_null(strstr(r.err, "in time"));
	close(fd);
}

/* A listening socket whose backlog (0: one pending connection) is already full. */
static int full_listener(const char *name, struct sockaddr_un *sa, int *filler)
{
	int fd;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", tmpdir, name);
	unlink(sa->sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(listen(fd, 0), 0);
	*filler = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(connect(*filler, (struct sockaddr *)sa, sizeof(*sa)), 0);
	/* Full now: a second non-blocking connect is refused with EAGAIN. */
	{
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

		assert_int_equal(connect(probe, (struct sockaddr *)sa, sizeof(*sa)), -1);
		assert_int_equal(errno, EAGAIN);
		close(probe);
	}
	return fd;
}

/* Issue 12, defect 7: a full backlog until the deadline is a connect error (3), not a lost answer. */
static void test_backlog_full_exit_3(void **state)
{
	static struct run r;
	struct sockaddr_un sa;
	int filler, fd = full_listener("full.sock", &sa, &filler);

	run_ctl(&r, sa.sun_path, "--timeout", "400", "info", NULL);
	assert_int_equal(r.status, 3);
	assert_true(r.ms >= 350 && r.ms < 5000);   /* it kept trying until the deadline */
	assert_non_null(strstr(r.err, "backlog"));
	assert_null(strstr(r.err, "not connected"));
	close(filler);
	close(fd);
	unlink(sa.sun_path);
}

/* The other side of test_backlog_retried: frees the backlog after a while, then answers. */
static void *late_acceptor(void *arg)
{
	int *fds = arg, c;
	char buf[512];
	const char *ans = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"late\":true}}\n";
	struct pollfd p = { .fd = fds[0], .events = POLLIN };

	poll(NULL, 0, 300);
	close(accept(fds[0], NULL, NULL));   /* the filler: now there is room */
	close(fds[1]);
	if (poll(&p, 1, 5000) != 1)
		return NULL;
	c = accept(fds[0], NULL, NULL);
	if (c < 0)
		return NULL;
	p.fd = c;
	if (poll(&p, 1, 5000) == 1 && read(c, buf, sizeof(buf)) > 0 &&
	    write(c, ans, strlen(ans)) < 0)
		print_message("late_acceptor: write: %s\n", strerror(errno));
	poll(NULL, 0, 200);
	close(c);
	return NULL;
}

/* ... and a backlog that frees up before the deadline is waited for. */
static void test_backlog_retried(void **state)
{
	static struct run r;
	struct sockaddr_un sa;
	int fds[2];
	pthread_t th;

	fds[0] = full_listener("late.sock", &sa, &fds[1]);
	assert_int_equal(pthread_create(&th, NULL, late_acceptor, fds), 0);
	run_ctl(&r, sa.sun_path, "--timeout", "5000", "call", "system.info", NULL);
	pthread_join(th, NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"late\": true"));
	close(fds[0]);
	unlink(sa.sun_path);
}

static void test_events_watch(void **state)
{
	static struct run r;

	/* No readers, so no events: --for ends the watch normally ... */
	run_ctl(&r, sockpath, "events", "--for", "300", NULL);
	assert_int_equal(r.status, 0);
	assert_true(r.ms >= 250);
	/* ... but a --count that is not reached within --for is a failure. */
	run_ctl(&r, sockpath, "events", "--count", "1", "--for", "300", NULL);
	assert_int_equal(r.status, 4);
	assert_non_null(strstr(r.err, "0 of 1 events"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info_and_readers),
		cmocka_unit_test(test_api_errors_exit_1),
		cmocka_unit_test(test_usage_exit_2),
		cmocka_unit_test(test_cannot_connect_exit_3),
		cmocka_unit_test(test_no_answer_exit_4),
		cmocka_unit_test(test_backlog_full_exit_3),
		cmocka_unit_test(test_backlog_retried),
		cmocka_unit_test(test_events_watch),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
