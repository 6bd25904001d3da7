/*
 * This file contains the tests of src/server.c with src/rpc.c behind it, over a real Unix socket:
 * the daemon's loop runs in a thread with sscardd's own wiring (src/daemon.h: the real reader core
 * and pcsc driver, pointed at a pcscd that does not exist, so: no readers; a journal in the test's
 * directory), and the test talks to it as a client would (blocking sockets with deadlines). Socket mode, stale-socket
 * handling, framing, limits (size, clients, per uid, idle), half-close and shutdown.
 */
#include <errno.h>
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
#include <grp.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "readers.h"
#include "rpc.h"
#include "server.h"
#include "sscard/error.h"
#include "test_daemon_util.h"

#define WAIT_MS 3000   /* every client wait in these tests is bounded */

static char tmpdir[64];
static char sockpath[96];
static char journalpath[96];

/* Test defaults: the temp socket, no group change, small limits. */
static void test_cfg(struct config *cfg)
{
	config_defaults(cfg);
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", sockpath);
	cfg->socket_group[0] = '\0';
	/* The real pcsc driver, pointed at a pcscd that is not there (main() sets that up). */
	cfg->driver_pcsc = 1;
	cfg->driver_usb = 0;
	cfg->max_request_bytes = 4096;
	cfg->max_json_depth = 8;
	snprintf(cfg->journal_path, sizeof(cfg->journal_path), "%s", journalpath);
}

/* sscardd's own wiring on a loop thread (test_daemon_util.h), started as the test asks. */
static struct daemon_thread *run_daemon(const struct config *cfg)
{
	struct daemon_thread *d = daemon_thread_start(cfg);

	assert_int_equal(d->start_rc, 0);
	return d;
}

static void stop_daemon(struct daemon_thread *d)
{
	assert_int_equal(daemon_thread_stop(d), 0);   /* nothing left behind */
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ssc-test-server-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	chmod(tmpdir, 0755);   /* so that the uid-65534 clients can reach the socket */
	snprintf(sockpath, sizeof(sockpath), "%s/run/sscardd.sock", tmpdir);
	snprintf(journalpath, sizeof(journalpath), "%s/journal.db", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char p[160];

	unlink(sockpath);
	snprintf(p, sizeof(p), "%s/run", tmpdir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/file", tmpdir);
	unlink(p);
	daemon_thread_rm_journal(journalpath);
	rmdir(tmpdir);
	return 0;
}

/* ---- a minimal client ------------------------------------------------------------------- */

/* Per-connection read buffers of the test client, indexed by fd (reset by cl_connect()). */
#define RBUF_FDS 1024
#define RBUF_CAP 65536
static struct {
	char data[RBUF_CAP];
	size_t len;
} rbufs[RBUF_FDS];

static int cl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(fd < RBUF_FDS);
	rbufs[fd].len = 0;
	return fd;
}

static void cl_send(int fd, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * One line (without newline), or NULL at EOF / connection reset. Fails the test when nothing
 * comes within ms.
 */
static char *cl_recv_line(int fd, int ms)
{
	char *nl;

	assert_true(fd >= 0 && fd < RBUF_FDS);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		nl = memchr(rbufs[fd].data, '\n', rbufs[fd].len);
		if (nl) {
			size_t ll = (size_t)(nl - rbufs[fd].data);
			char *line = strndup(rbufs[fd].data, ll);

			rbufs[fd].len -= ll + 1;
			memmove(rbufs[fd].data, nl + 1, rbufs[fd].len);
			return line;
		}
		assert_true(rbufs[fd].len < RBUF_CAP);
		assert_int_equal(poll(&p, 1, ms), 1);
		n = recv(fd, rbufs[fd].data + rbufs[fd].len, RBUF_CAP - rbufs[fd].len, 0);
		if (n <= 0) {
			assert_true(n == 0 || errno == ECONNRESET);
			assert_int_equal(rbufs[fd].len, 0);
			return NULL;
		}
		rbufs[fd].len += (size_t)n;
	}
}

/* The next line as JSON. */
static json_t *cl_recv(int fd)
{
	char *line = cl_recv_line(fd, WAIT_MS);
	json_error_t e;
	json_t *j;

	assert_non_null(line);
	j = json_loads(line, 0, &e);
	assert_non_null(j);
	free(line);
	return j;
}

/* The error code of a reply (0 when it is a result), checking the id when want_id >= 0. */
static int reply_code(json_t *r, json_int_t want_id)
{
	json_t *e = json_object_get(r, "error");

	if (want_id >= 0)
		assert_int_equal(json_integer_value(json_object_get(r, "id")), want_id);
	else
		assert_true(json_is_null(json_object_get(r, "id")));
	return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static const char *reply_name(json_t *r)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(r, "error"),
								 "data"), "name"));
}

static void expect_eof(int fd, int ms)
{
	assert_null(cl_recv_line(fd, ms));
}

/* ---- a client with another uid (root only) ---------------------------------------------- */

/* In the child: one line within WAIT_MS into buf, 0 or -1. No cmocka here. */
static int child_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1 || recv(fd, buf + len, 1, 0) != 1)
			return -1;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return 0;
}

static int child_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	return fd;
}

/* Uid 65534 is turned away by the socket's mode 0660 (owner root, no group change). */
static int nobody_is_kept_out(void)
{
	return child_connect() < 0 && errno == EACCES ? 0 : 1;
}

/* Uid 65534 gets the last place (its own per-uid count), then "too many clients". */
static int nobody_fills_last_place(void)
{
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n";
	char line[4096];
	int a, b;

	a = child_connect();
	if (a < 0 || send(a, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    child_line(a, line, sizeof(line)) != 0 || !strstr(line, "\"result\""))
		return 2;
	b = child_connect();
	if (b < 0 || child_line(b, line, sizeof(line)) != 0 || !strstr(line, "too many clients"))
		return 3;
	return 0;
}

/* Runs fn in a child as uid/gid 65534; returns its exit status (0 = as expected). */
static int as_nobody(int (*fn)(void))
{
	int status = -1;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(9);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_socket_file_and_round_trip(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	struct stat st;
	json_t *r, *res;
	int fd;

	test_cfg(&cfg);
	cfg.socket_mode = 0620;
	d = run_daemon(&cfg);
	/* The parent directory was created; the socket has the configured mode. */
	assert_int_equal(lstat(sockpath, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);

	fd = cl_connect();
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 1), 0);
	res = json_object_get(r, "result");
	assert_int_equal(json_integer_value(json_object_get(res, "api_level")), 1);
	/* The peer as the kernel saw it. */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "peer"), "uid")),
			 (json_int_t)getuid());
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "peer"), "pid")),
			 (json_int_t)getpid());
	json_decref(r);

	/* No pcscd: no readers, and a card request has nowhere to go. */
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"reader.list\"}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 2), 0);
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "readers")),
			 0);
	json_decref(r);
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"card.read_basic\","
		    "\"params\":{\"reader\":\"pcsc-nope\"}}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 3), 1007);
	assert_string_equal(reply_name(r), "SSC_ENOREADER");
	json_decref(r);
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"card.read_basic\"}\n");
	r = cl_recv(fd);
	{
		int code = reply_code(r, 4);

		/* readers.h: no reader holding a card is SSC_ENOCARD (or no reader at all). */
		assert_true(code == 1005 || code == 1007);
		assert_string_equal(reply_name(r), code == 1005 ? "SSC_ENOCARD" : "SSC_ENOREADER");
	}
	json_decref(r);
	close(fd);

	if (getuid() == 0) {
		/* Back to mode 0660 (no group change here): another user is kept out. */
		struct config cfg2;
		struct daemon_thread *d2;

		stop_daemon(d);
		test_cfg(&cfg2);
		d2 = run_daemon(&cfg2);
		assert_int_equal(as_nobody(nobody_is_kept_out), 0);
		d = d2;
	}
	stop_daemon(d);
	/* The socket file goes with the daemon. */
	assert_int_equal(lstat(sockpath, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_framing_and_bad_input(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	json_t *r;
	int fd;

	test_cfg(&cfg);
	d = run_daemon(&cfg);
	fd = cl_connect();

	/* Garbage: a parse error, and the connection stays. */
	cl_send(fd, "this is not json\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, -1), -32700);
	json_decref(r);
	/* Three requests in one write, one of them a notification: two replies, in order. */
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}\n"
		    "{\"jsonrpc\":\"2.0\",\"method\":\"system.info\"}\n"
		    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"card.read_items\",\"params\":{}}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 1), -32601);
	json_decref(r);
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 2), -32602);
	assert_string_equal(reply_name(r), "SSC_EINVAL");
	json_decref(r);
	/* A request split over several writes. */
	cl_send(fd, "{\"jsonrpc\":\"2.0\",");
	usleep(20000);
	cl_send(fd, "\"id\":3,\"method\":\"system.info\"}");
	usleep(20000);
	cl_send(fd, "\r\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 3), 0);
	json_decref(r);
	/* Too deep (max 8). */
	cl_send(fd, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, -1), -32600);
	assert_string_equal(reply_name(r), "SSC_ELIMIT");
	json_decref(r);
	/* A line of exactly max_request_bytes is fine. */
	{
		char line[4096 + 2];
		const char *req = "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.info\"}";

		memset(line, ' ', 4096);
		memcpy(line, req, strlen(req));
		line[4096] = '\n';
		line[4097] = '\0';
		cl_send(fd, line);
		r = cl_recv(fd);
		assert_int_equal(reply_code(r, 4), 0);
		json_decref(r);
	}
	/* Events: subscribed (no readers, so no events follow). */
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"events.subscribe\"}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 5), 0);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "subscribed")));
	json_decref(r);
	close(fd);
	stop_daemon(d);
}

static void test_oversized_line(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	struct timeval tv = { .tv_sec = 3 };
	size_t sent = 0, total = 10 * 1024 * 1024;
	char *chunk = malloc(65536);
	json_t *r;
	int fd, fd2;

	test_cfg(&cfg);
	d = run_daemon(&cfg);
	fd = cl_connect();
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(chunk, 'a', 65536);
	/* 10 MB without a newline: the daemon answers after 4 KB and hangs up; our sends fail. */
	while (sent < total) {
		ssize_t n = send(fd, chunk, 65536, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	free(chunk);
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, -1), -32600);
	assert_string_equal(reply_name(r), "SSC_ELIMIT");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
								 "message")), "too large"));
	json_decref(r);
	expect_eof(fd, WAIT_MS);
	close(fd);
	/* The daemon is fine. */
	fd2 = cl_connect();
	cl_send(fd2, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n");
	r = cl_recv(fd2);
	assert_int_equal(reply_code(r, 1), 0);
	json_decref(r);
	close(fd2);
	stop_daemon(d);
}

static void test_client_limits(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	int fds[3], fd;
	json_t *r;

	test_cfg(&cfg);
	cfg.max_clients = 4;
	cfg.max_clients_per_uid = 3;
	cfg.socket_mode = 0666;   /* let uid 65534 in for the per-uid part */
	d = run_daemon(&cfg);
	for (int i = 0; i < 3; i++) {
		fds[i] = cl_connect();
		/* A round trip each, so that the daemon has accepted them all. */
		cl_send(fds[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n");
		json_decref(cl_recv(fds[i]));
	}
	/* The fourth from the same uid: one error line, then the door closes. */
	fd = cl_connect();
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, -1), 1036);
	assert_string_equal(reply_name(r), "SSC_ELIMIT");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
								 "message")), "uid"));
	json_decref(r);
	expect_eof(fd, WAIT_MS);
	close(fd);

	if (getuid() == 0) {
		/* Another uid still gets in (client 4 of 4), and then nobody does. */
		assert_int_equal(as_nobody(nobody_fills_last_place), 0);
	}
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	stop_daemon(d);
}

static void test_max_clients(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	int fds[2], fd;
	json_t *r;

	test_cfg(&cfg);
	cfg.max_clients = 2;
	d = run_daemon(&cfg);
	for (int i = 0; i < 2; i++) {
		fds[i] = cl_connect();
		cl_send(fds[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n");
		json_decref(cl_recv(fds[i]));
	}
	fd = cl_connect();
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, -1), 1036);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
								 "message")), "too many clients"));
	json_decref(r);
	expect_eof(fd, WAIT_MS);
	close(fd);
	/* A place frees up when a client leaves. */
	close(fds[0]);
	usleep(100000);
	fd = cl_connect();
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"system.info\"}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 9), 0);
	json_decref(r);
	close(fd);
	close(fds[1]);
	stop_daemon(d);
}

static void test_idle_timeout_and_subscribers(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	struct timespec t0, t1;
	int idle, sub;
	long ms;

	test_cfg(&cfg);
	cfg.idle_timeout_ms = 300;   /* below the INI minimum, which is for humans */
	d = run_daemon(&cfg);
	sub = cl_connect();
	cl_send(sub, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n");
	json_decref(cl_recv(sub));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	idle = cl_connect();
	expect_eof(idle, WAIT_MS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 2000);
	close(idle);
	/* The subscriber, waiting for events, is not idle: still served after 3 timeouts. */
	usleep(600000);
	cl_send(sub, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.info\"}\n");
	{
		json_t *r = cl_recv(sub);

		assert_int_equal(reply_code(r, 2), 0);
		json_decref(r);
	}
	close(sub);
	stop_daemon(d);
}

static void test_half_close_and_hang_up(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	json_t *r;
	int fd;

	test_cfg(&cfg);
	d = run_daemon(&cfg);
	/* Send, shut down our side: the answer still comes, then the daemon closes. */
	fd = cl_connect();
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}\n");
	shutdown(fd, SHUT_WR);
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 1), 0);
	json_decref(r);
	expect_eof(fd, WAIT_MS);
	close(fd);
	/* Hang up right after sending, many times: the daemon must not mind. */
	for (int i = 0; i < 50; i++) {
		fd = cl_connect();
		cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"card.read_basic\"}\n"
			    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"reader.list\"}\n");
		close(fd);
	}
	fd = cl_connect();
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"system.info\"}\n");
	r = cl_recv(fd);
	assert_int_equal(reply_code(r, 7), 0);
	json_decref(r);
	close(fd);
	stop_daemon(d);
}

struct flood {
	int fd;
	int n;
	int sent;
};

static void *flood_main(void *arg)
{
	struct flood *fl = arg;
	char req[96];

	for (int i = 1; i <= fl->n; i++) {
		int len = snprintf(req, sizeof(req),
				   "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"system.info\"}\n", i);

		if (send(fl->fd, req, (size_t)len, MSG_NOSIGNAL) != len)
			break;
		fl->sent = i;
	}
	return NULL;
}

/*
 * A client that sends and does not read: the replies (about 21 MB) would pass the 16 MB hard cap
 * if the daemon kept reading; with back-pressure it stops reading at 1 MB of unread replies, our
 * sends block, and once we read, everything arrives, in order.
 */
static void test_back_pressure(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	struct flood fl = { .n = 50000 };
	pthread_t th;
	size_t total = 0;

	test_cfg(&cfg);
	d = run_daemon(&cfg);
	fl.fd = cl_connect();
	assert_int_equal(pthread_create(&th, NULL, flood_main, &fl), 0);
	usleep(500000);
	/* Blocked by now: the daemon stopped reading long before 50000 requests. */
	assert_true(fl.sent < fl.n);
	for (int i = 1; i <= fl.n; i++) {
		char *line = cl_recv_line(fl.fd, 5000);
		char want[32];

		assert_non_null(line);
		snprintf(want, sizeof(want), "\"id\":%d,", i);
		assert_non_null(strstr(line, want));
		total += strlen(line) + 1;
		free(line);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(fl.sent, fl.n);
	assert_true(total > SERVER_WQ_MAX);
	close(fl.fd);
	stop_daemon(d);
}

static void test_shutdown_closes_clients(void **state)
{
	struct config cfg;
	struct daemon_thread *d;
	int fd;

	test_cfg(&cfg);
	d = run_daemon(&cfg);
	fd = cl_connect();
	cl_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}\n");
	json_decref(cl_recv(fd));
	stop_daemon(d);   /* joins the loop thread: every handle is closed by now */
	expect_eof(fd, WAIT_MS);
	close(fd);
}

/* server_new() on a loop of our own, for the cases that must fail to start. */
static int try_server(const char *path, struct server **out)
{
	static struct config cfg;
	static struct rpc *rpc;
	static uv_loop_t loop;
	int rc;

	test_cfg(&cfg);
	snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", path);
	uv_loop_init(&loop);
	assert_int_equal(rpc_new(&cfg, &rpc), 0);
	rc = server_new(&loop, &cfg, rpc, out);
	if (rc == 0) {
		server_stop(*out);
		uv_run(&loop, UV_RUN_DEFAULT);
		server_free(*out);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	rpc_free(rpc);
	return rc;
}

static void test_stale_and_foreign_socket_files(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct server *srv;
	struct config cfg;
	struct daemon_thread *d;
	char file[160];
	struct stat st;
	FILE *f;
	int fd;

	/* A stale socket (its owner died without removing it) is replaced. */
	snprintf(file, sizeof(file), "%s/run", tmpdir);
	mkdir(file, 0755);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sockpath);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(lstat(sockpath, &st), 0);
	assert_int_equal(try_server(sockpath, &srv), 0);
	assert_int_equal(lstat(sockpath, &st), -1);   /* and removed again at stop */

	/* A socket a live daemon answers on is not touched. */
	test_cfg(&cfg);
	d = run_daemon(&cfg);
	assert_int_equal(try_server(sockpath, &srv), SSC_EEXIST);
	assert_int_equal(lstat(sockpath, &st), 0);
	stop_daemon(d);

	/* A file that is not a socket is not ours to delete. */
	snprintf(file, sizeof(file), "%s/file", tmpdir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(try_server(file, &srv), SSC_EEXIST);
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* A path longer than a socket address can hold. */
	{
		char longp[200];

		memset(longp, 'x', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = '\0';
		assert_int_equal(try_server(longp, &srv), SSC_ECONFIG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_file_and_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_framing_and_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout_and_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_and_hang_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_closes_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_socket_files, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	/* No pcscd there: the driver must start anyway and report no readers. */
	setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/ssc-test-server/pcscd.comm", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
