/*
 * This file contains sscardctl's connection to sscardd (src/ctl/ctl_conn.h): a non-blocking Unix
 * socket, requests framed as JSON lines, answers read with the caller's deadline, and the daemon's
 * errors printed with the tries left in words.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ctl/ctl.h"
#include "ctl/ctl_conn.h"

#define ANSWER_MAX (16 * 1024 * 1024)

int ctl_conn_open(struct ctl_conn *c, const char *path, const char *from, long long deadline)
{
	struct sockaddr_un sa;
	int r, e, pause_ms = 5;

	memset(c, 0, sizeof(*c));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sscardctl: socket path too long: %s\n", path);
		return EXIT_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		fprintf(stderr, "sscardctl: socket: %s\n", strerror(errno));
		return EXIT_CONNECT;
	}
	/*
	 * A non-blocking connect on a Unix socket never is "in progress": it connects at once, or
	 * answers EAGAIN when the daemon's accept backlog is full (the socket stays unconnected, so
	 * polling it for POLLOUT would say nothing). So it is tried again, with short pauses, until
	 * the deadline.
	 */
	for (;;) {
		r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
		e = errno;
		if (r == 0 || (e != EAGAIN && e != EINTR))
			break;
		if (ctl_remaining(deadline) == 0)
			break;
		poll(NULL, 0, ctl_remaining(deadline) < pause_ms ? ctl_remaining(deadline) : pause_ms);
		if (pause_ms < 100)
			pause_ms *= 2;
	}
	if (r != 0) {
		if (e == EAGAIN)
			fprintf(stderr, "sscardctl: cannot connect to %s: the daemon accepts no new "
				"connection (its backlog stayed full until --timeout)\n", path);
		else
			fprintf(stderr, "sscardctl: cannot connect to %s: %s\n", path, strerror(e));
		if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, "sscardctl: is sscardd running? (that socket is %s; "
				"--socket, $SSCARD_SOCKET or --config name another)\n", from);
		else if (e == EACCES)
			fprintf(stderr, "sscardctl: permission denied: the socket is for the "
				"daemon's group (usually sscard); ask for membership\n");
		close(c->fd);
		c->fd = -1;
		return EXIT_CONNECT;
	}
	return 0;
}

void ctl_conn_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static int ctl_conn_send(struct ctl_conn *c, const char *data, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			int r = poll(&pfd, 1, ctl_remaining(deadline));

			if (r == 0) {
				fprintf(stderr, "sscardctl: the daemon did not take the request in "
					"time\n");
				return EXIT_ANSWER;
			}
			continue;
		}
		fprintf(stderr, "sscardctl: sending the request: %s\n", strerror(errno));
		return EXIT_ANSWER;
	}
	return 0;
}

/*
 * Reads one line (without the newline) into a new JSON value in *out. Returns 0, CTL_CONN_TIMEOUT
 * when the deadline passes (the caller says what it was waiting for), or an exit code after
 * printing why (connection closed, too long, not JSON).
 */
int ctl_conn_recv(struct ctl_conn *c, json_t **out, long long deadline)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (nl) {
			size_t ll = (size_t)(nl - c->buf);
			json_error_t e;

			*out = json_loadb(c->buf, ll, 0, &e);
			memmove(c->buf, nl + 1, c->len - ll - 1);
			c->len -= ll + 1;
			if (!*out) {
				fprintf(stderr, "sscardctl: malformed answer from the daemon: %s\n",
					e.text);
				return EXIT_ANSWER;
			}
			return 0;
		}
		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *nb;

			if (cap > ANSWER_MAX) {
				fprintf(stderr, "sscardctl: answer longer than %d bytes\n",
					ANSWER_MAX);
				return EXIT_ANSWER;
			}
			nb = realloc(c->buf, cap);
			if (!nb) {
				fprintf(stderr, "sscardctl: out of memory\n");
				return EXIT_ANSWER;
			}
			c->buf = nb;
			c->cap = cap;
		}
		r = poll(&pfd, 1, ctl_remaining(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return CTL_CONN_TIMEOUT;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			fprintf(stderr, "sscardctl: the daemon closed the connection%s%s\n",
				n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return EXIT_ANSWER;
		}
		c->len += (size_t)n;
	}
}

/*
 * The tries a PIN (or a card key) has left, in words for the person at the desk: "no tries
 * left", "1 try left", "2 tries left". Writes into out (cap bytes) and returns out. Every output
 * of sscardctl that names data.retries_left uses this one.
 */
static const char *tries_left_text(long long left, char *out, size_t cap)
{
	if (left <= 0)
		snprintf(out, cap, "no tries left");
	else
		snprintf(out, cap, "%lld %s left", left, left == 1 ? "try" : "tries");
	return out;
}

/* Prints an error object to stderr: name, message, and what else the daemon said. */
static void print_error(const json_t *err)
{
	const json_t *data = json_object_get(err, "data");
	const char *name = json_string_value(json_object_get(data, "name"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const json_t *v;
	char tries[32];

	fprintf(stderr, "sscardctl: %s: %s (code %lld)", name ? name : "error",
		msg ? msg : "(no message)",
		(long long)json_integer_value(json_object_get(err, "code")));
	if ((v = json_object_get(data, "std_code")))
		fprintf(stderr, ", standard code %lld", (long long)json_integer_value(v));
	if ((v = json_object_get(data, "sw")))
		fprintf(stderr, ", SW %s", json_string_value(v));
	/* The daemon's message names the tries left already; other daemons' may not. */
	if ((v = json_object_get(data, "retries_left")) &&
	    (!msg || !strstr(msg, tries_left_text(json_integer_value(v), tries, sizeof(tries)))))
		fprintf(stderr, ", %s", tries_left_text(json_integer_value(v), tries,
							sizeof(tries)));
	if ((v = json_object_get(data, "reader")))
		fprintf(stderr, ", reader %s", json_string_value(v));
	fputc('\n', stderr);
}

/*
 * One request, one answer: sends method(params) (params stolen, may be NULL) and waits for the
 * answer with id 1, skipping notifications. On success *result is a new reference. When the
 * daemon answers with an error it is printed and EXIT_API returned, with the error's name in
 * errname (CTL_ERRNAME_MAX bytes; may be NULL). The request's text is wiped after sending: its
 * params may hold a PIN.
 */
int ctl_conn_call(struct ctl_conn *c, const char *method, json_t *params, json_t **result,
		  long long deadline, char *errname)
{
	json_t *req, *ans = NULL, *err;
	char *text;
	int rc;

	req = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 1, "method", method);
	if (params)
		json_object_set_new(req, "params", params);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return EXIT_ANSWER;
	rc = ctl_conn_send(c, text, strlen(text), deadline);
	if (rc == 0)
		rc = ctl_conn_send(c, "\n", 1, deadline);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rc != 0)
		return rc;
	for (;;) {
		rc = ctl_conn_recv(c, &ans, deadline);
		if (rc == CTL_CONN_TIMEOUT) {
			fprintf(stderr, "sscardctl: no answer from the daemon in time (--timeout)\n");
			return EXIT_ANSWER;
		}
		if (rc != 0)
			return rc;
		if (json_integer_value(json_object_get(ans, "id")) == 1 ||
		    json_is_null(json_object_get(ans, "id")))
			break;
		json_decref(ans);   /* a notification, or not ours */
	}
	err = json_object_get(ans, "error");
	if (err) {
		const char *name = json_string_value(json_object_get(json_object_get(err, "data"),
								     "name"));

		if (errname)
			snprintf(errname, CTL_ERRNAME_MAX, "%s", name ? name : "");
		print_error(err);
		json_decref(ans);
		return EXIT_API;
	}
	*result = json_incref(json_object_get(ans, "result"));
	json_decref(ans);
	if (!*result) {
		fprintf(stderr, "sscardctl: answer without result or error\n");
		return EXIT_ANSWER;
	}
	return 0;
}
