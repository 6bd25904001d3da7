/*
 * Unit tests of libsscard (lib/client/) against a scripted server thread on a Unix socket: error
 * answers into struct sscard_error (the daemon's names, a name newer than the library, protocol
 * errors), replies matched by id out of order, events queued beside replies and signalled on
 * sscard_event_fd(), the deadline of a call to a server that never answers, garbage and
 * over-long lines, the default socket rule ($SSCARD_SOCKET). Expected values written by hand
 * from docs/api.md.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sscard/client.h"

struct server {
	char path[108];
	int lfd;
	const char *const *script;   /* per request line read: the text to answer (may be "") */
	int requests;                /* how many request lines to read before answering all */
	int linger_ms;               /* keep the connection open this long after the answers */
	pthread_t thread;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	char buf[4096];
	size_t len = 0;
	int fd = accept(s->lfd, NULL, NULL), lines = 0;

	if (fd < 0)
		return NULL;
	while (lines < s->requests) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[len + (size_t)i] == '\n')
				lines++;
		len += (size_t)n;
		if (len == sizeof(buf))
			len = 0;
	}
	for (const char *const *p = s->script; *p; p++)
		if (write(fd, *p, strlen(*p)) < 0)
			break;
	if (s->linger_ms)
		poll(NULL, 0, s->linger_ms);   /* silence, but no end of file yet */
	close(fd);
	return NULL;
}

static void server_start(struct server *s, const char *const *script, int requests)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(s->path, sizeof(s->path), "/tmp/sscard-ut-%d-%p.sock", getpid(), (void *)s);
	unlink(s->path);
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	s->script = script;
	s->requests = requests;
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->lfd);
	unlink(s->path);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_error_answer(void **state)
{
	static const char *const script[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1019,\"message\":\"wrong PIN\","
		"\"data\":{\"name\":\"SSC_EPINWRONG\",\"std_code\":-51,\"sw\":\"63C2\","
		"\"retries_left\":2,\"reader\":\"pcsc-a\"}}}\n", NULL };
	struct server s = { 0 };
	struct sscard_client *c;
	struct sscard_error e;

	(void)state;
	server_start(&s, script, 1);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	assert_int_equal(sscard_verify_pin(c, NULL, "000000", &e), SSC_EPINWRONG);
	assert_int_equal(e.err, SSC_EPINWRONG);
	assert_int_equal(e.code, 1019);
	assert_string_equal(e.name, "SSC_EPINWRONG");
	assert_int_equal(e.std_code, -51);
	assert_string_equal(e.sw, "63C2");
	assert_int_equal(e.retries_left, 2);
	assert_string_equal(e.reader, "pcsc-a");
	assert_string_equal(e.message, "wrong PIN");
	sscard_close(c);
	server_stop(&s);
}

static void test_error_kinds(void **state)
{
	/* A name newer than this library (code 1050 -> -50), -32602, -32601, and -32600 with a
	 * known data.name; each a reply to one of four pipelined requests. */
	static const char *const script[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32600,\"message\":\"too deep\","
		"\"data\":{\"name\":\"SSC_ELIMIT\"}}}\n",
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"bad\","
		"\"data\":{\"name\":\"SSC_EINVAL\",\"std_code\":-14}}}\n",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1050,\"message\":\"new\","
		"\"data\":{\"name\":\"SSC_EFUTURE\",\"std_code\":-23}}}\n",
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601,\"message\":\"method not "
		"found\"}}\n", NULL };
	struct server s = { 0 };
	struct sscard_client *c;
	struct sscard_error e;
	uint64_t id[4];

	(void)state;
	server_start(&s, script, 4);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sscard_send(c, "x.y", NULL, &id[i], &e), 0);
		assert_int_equal(id[i], (uint64_t)i + 1);
	}
	assert_int_equal(sscard_wait(c, 1, 2000, NULL, &e), -50);
	assert_string_equal(e.name, "SSC_EFUTURE");
	assert_int_equal(e.std_code, -23);
	assert_int_equal(sscard_wait(c, 2, 2000, NULL, &e), SSC_EINVAL);
	assert_int_equal(e.code, -32602);
	assert_int_equal(sscard_wait(c, 3, 2000, NULL, &e), SSC_ENOTFOUND);
	assert_string_equal(e.name, "SSC_ENOTFOUND");
	assert_int_equal(e.std_code, 0);
	assert_int_equal(sscard_wait(c, 4, 2000, NULL, &e), SSC_ELIMIT);
	assert_int_equal(sscard_wait(c, 4, 2000, NULL, &e), SSC_ENOTFOUND);   /* collected */
	sscard_close(c);
	server_stop(&s);
}

static void test_events_beside_replies(void **state)
{
	static const char *const script[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"card.removed\","
		"\"reader\":\"r\"}}\n",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"subscribed\":true}}\r\n",
		"\n{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"type\":\"card.inserted\","
		"\"reader\":\"r\"}}\n", NULL };
	struct server s = { .linger_ms = 1500 };
	struct sscard_client *c;
	struct sscard_error e;
	struct pollfd pfd;
	json_t *ev;

	(void)state;
	server_start(&s, script, 1);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	assert_int_equal(sscard_subscribe(c, &e), 0);
	pfd.fd = sscard_event_fd(c);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 2000), 1);   /* the first event was read with the reply */
	assert_int_equal(sscard_next_event(c, 0, &ev, &e), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "card.removed");
	json_decref(ev);
	assert_int_equal(sscard_next_event(c, 2000, &ev, &e), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "card.inserted");
	json_decref(ev);
	assert_int_equal(poll(&pfd, 1, 0), 0);       /* nothing queued, nothing on the socket */
	assert_int_equal(sscard_next_event(c, 0, &ev, &e), SSC_ETIMEDOUT);
	assert_null(ev);
	sscard_close(c);
	server_stop(&s);
}

static void test_deadline(void **state)
{
	static const char *const script[] = { NULL };   /* reads the request, never answers */
	struct server s = { .linger_ms = 1500 };
	struct sscard_client *c;
	struct sscard_error e;
	long long t0;

	(void)state;
	server_start(&s, script, 1);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	t0 = now_ms();
	assert_int_equal(sscard_call(c, "system.info", NULL, 300, NULL, &e), SSC_ETIMEDOUT);
	assert_true(now_ms() - t0 >= 300);
	assert_true(now_ms() - t0 < 2500);   /* generous: a loaded machine */
	assert_int_equal(e.code, 0);
	assert_string_equal(e.name, "SSC_ETIMEDOUT");
	sscard_close(c);
	server_stop(&s);
}

/* The daemon's refusal of a connection beyond max_clients, sent before it closes. */
static const char *const too_many[] = {
	"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":1036,\"message\":\"too many "
	"clients\",\"data\":{\"name\":\"SSC_ELIMIT\"}}}\n", NULL };

static void test_garbage_and_close(void **state)
{
	static const char *const garbage[] = { "this is not json\n", NULL };
	struct server s = { 0 };
	struct sscard_client *c;
	struct sscard_error e;

	(void)state;
	server_start(&s, garbage, 1);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	assert_int_equal(sscard_call(c, "system.info", NULL, 2000, NULL, &e), SSC_EPROTO);
	assert_int_equal(sscard_call(c, "system.info", NULL, 2000, NULL, &e), SSC_EIO);
	sscard_close(c);
	server_stop(&s);

	memset(&s, 0, sizeof(s));
	server_start(&s, too_many, 0);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	assert_int_equal(sscard_call(c, "system.info", NULL, 2000, NULL, &e), SSC_ELIMIT);
	assert_string_equal(e.message, "too many clients");
	sscard_close(c);
	server_stop(&s);
}

/*
 * The refusal was sent and the connection closed before the client sent anything: its send
 * fails (EPIPE), and the refusal it has not read yet is still the answer.
 */
static void test_refused_before_the_request(void **state)
{
	struct server s = { 0 };
	struct sscard_client *c;
	struct sscard_error e;

	(void)state;
	server_start(&s, too_many, 0);
	assert_int_equal(sscard_connect(s.path, 2000, &c, &e), 0);
	server_stop(&s);                   /* the server answered and closed: it is gone */
	assert_int_equal(sscard_call(c, "system.info", NULL, 2000, NULL, &e), SSC_ELIMIT);
	assert_string_equal(e.message, "too many clients");
	sscard_close(c);
}

static void test_no_daemon(void **state)
{
	struct sscard_client *c = (struct sscard_client *)1;
	struct sscard_error e;

	(void)state;
	setenv("SSCARD_SOCKET", "/nonexistent/sscard-test.sock", 1);
	assert_int_equal(sscard_connect(NULL, 2000, &c, &e), SSC_EIO);
	assert_null(c);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.name, "SSC_EIO");
	assert_non_null(strstr(e.message, "/nonexistent/sscard-test.sock"));
	assert_non_null(strstr(e.message, "is sscardd running?"));
	unsetenv("SSCARD_SOCKET");
	assert_int_equal(sscard_error_value("SSC_ENOCARD"), SSC_ENOCARD);
	assert_int_equal(sscard_error_value("SSC_EPINNOTCHANGED"), -43);
	assert_int_equal(sscard_error_value("SSC_NOPE"), 0);
	assert_int_equal(sscard_error_value(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_answer),
		cmocka_unit_test(test_error_kinds),
		cmocka_unit_test(test_events_beside_replies),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_garbage_and_close),
		cmocka_unit_test(test_refused_before_the_request),
		cmocka_unit_test(test_no_daemon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
