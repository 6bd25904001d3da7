/*
 * This file contains libsscard's connection: the socket, the deadline of every wait, the framing
 * of newline-delimited JSON-RPC, requests matched to replies by id, the event queue and its
 * pollable descriptor, and the translation of error answers into SSC_E* values. The typed helpers
 * are in client_ops.c. Contracts: include/sscard/client.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

struct pending {
	uint64_t id;             /* 0 = free slot */
	json_t *reply;           /* the whole answer once it arrived, else NULL */
};

struct sscard_client {
	pthread_mutex_t lock;
	int fd;                  /* the socket; -1 once broken */
	int efd;                 /* eventfd: readable while events are queued */
	int epfd;                /* epoll of fd and efd: what sscard_event_fd() gives */
	int timeout_ms;
	uint64_t next_id;
	char *buf;               /* received bytes not yet framed */
	size_t len, cap;
	struct pending pending[SSCARD_MAX_PENDING];
	json_t *events[SSCARD_MAX_EVENTS];   /* a ring */
	size_t ev_head, ev_count;
	int ev_lost;             /* events were dropped since the last one returned */
	json_t *conn_error;      /* an "id": null error answer (too many clients …), kept */
	int broken;              /* SSC_E* why the connection is unusable, 0 while it works */
	char broken_msg[256];
};

/* ---- errors ------------------------------------------------------------------------------ */

void client_error_init(struct sscard_error *e)
{
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	e->retries_left = -1;
}

int client_fail(struct sscard_error *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return err;
	client_error_init(e);
	e->err = err;
	snprintf(e->name, sizeof(e->name), "%s", ssc_strerror_name(err));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return err;
}

int sscard_error_value(const char *name)
{
	if (!name)
		return 0;
	for (int v = -1; v >= -1000; v--) {
		const char *n = ssc_strerror_name(v);

		if (strcmp(n, "SSC_EUNKNOWN") == 0)
			break;   /* the values are dense from -1: the first gap is the end */
		if (strcmp(n, name) == 0)
			return v;
	}
	return 0;
}

/* Copies a JSON string member of obj into out (cap bytes); leaves out alone when absent. */
static void copy_member(json_t *obj, const char *key, char *out, size_t cap)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s)
		snprintf(out, cap, "%s", s);
}

/*
 * The SSC_E* value of a JSON-RPC error object, with e filled. Application codes are 1000 - value
 * (docs/api.md), which also covers names newer than this library; -32602 is SSC_EINVAL; other
 * protocol errors are their data.name where known, -32601 SSC_ENOTFOUND, else SSC_EPROTO.
 */
int client_error_from_json(json_t *error, struct sscard_error *e)
{
	struct sscard_error local;
	json_t *data = json_object_get(error, "data");
	json_t *code = json_object_get(error, "code");
	json_t *v;
	int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;
	int err;

	if (!e)
		e = &local;
	client_error_init(e);
	e->code = c;
	copy_member(error, "message", e->message, sizeof(e->message));
	copy_member(data, "name", e->name, sizeof(e->name));
	copy_member(data, "sw", e->sw, sizeof(e->sw));
	copy_member(data, "reader", e->reader, sizeof(e->reader));
	v = json_object_get(data, "std_code");
	if (json_is_integer(v))
		e->std_code = (int)json_integer_value(v);
	v = json_object_get(data, "retries_left");
	if (json_is_integer(v))
		e->retries_left = (int)json_integer_value(v);
	if (c > 1000 && c < 2000)
		err = 1000 - c;
	else if (c == -32602)
		err = SSC_EINVAL;
	else if (e->name[0] && sscard_error_value(e->name) != 0)
		err = sscard_error_value(e->name);
	else if (c == -32601)
		err = SSC_ENOTFOUND;
	else
		err = SSC_EPROTO;
	if (!e->name[0])
		snprintf(e->name, sizeof(e->name), "%s", ssc_strerror_name(err));
	if (!e->message[0])
		snprintf(e->message, sizeof(e->message), "%s", ssc_strerror(err));
	e->err = err;
	return err;
}

/* ---- time and the lock ------------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long l = deadline - now_ms();

	return l <= 0 ? 0 : l > 0x7fffffff ? 0x7fffffff : (int)l;
}

static long long deadline_of(const struct sscard_client *c, int timeout_ms)
{
	return now_ms() + (timeout_ms < 0 ? c->timeout_ms : timeout_ms);
}

/* Takes c's lock before deadline (CLOCK_MONOTONIC ms). 0 or SSC_ETIMEDOUT. */
static int lock_until(struct sscard_client *c, long long deadline, struct sscard_error *e)
{
	struct timespec ts = { .tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000 };

	if (pthread_mutex_clocklock(&c->lock, CLOCK_MONOTONIC, &ts) != 0)
		return client_fail(e, SSC_ETIMEDOUT, "another call on this connection held it past "
				   "this call's deadline");
	return 0;
}

/* ---- connecting -------------------------------------------------------------------------- */

const char *client_socket_path(const char *path)
{
	if (path && path[0])
		return path;
	path = getenv("SSCARD_SOCKET");
	return path && path[0] ? path : SSCARD_DEFAULT_SOCKET;
}

static int connect_fd(const char *path, long long deadline, int *out, struct sscard_error *e)
{
	struct sockaddr_un sa;
	size_t n = strlen(path);
	int fd, r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (n >= sizeof(sa.sun_path))
		return client_fail(e, SSC_EINVAL, "socket path too long: %s", path);
	memcpy(sa.sun_path, path, n + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return client_fail(e, SSC_EIO, "socket: %s", strerror(errno));
	for (;;) {
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		/* A Unix socket answers EAGAIN while the daemon's accept queue is full: retry. */
		if (r == 0 || errno != EAGAIN || left_ms(deadline) == 0)
			break;
		poll(NULL, 0, left_ms(deadline) < 20 ? left_ms(deadline) : 20);
	}
	if (r != 0) {
		int en = errno;

		close(fd);
		if (en == EACCES || en == EPERM)
			return client_fail(e, SSC_EPERM, "cannot connect to %s: %s (the socket is for "
					   "the daemon's group, usually sscard)", path, strerror(en));
		if (en == EAGAIN)
			return client_fail(e, SSC_ETIMEDOUT, "cannot connect to %s: the daemon "
					   "accepted no connection before the deadline", path);
		return client_fail(e, SSC_EIO, "cannot connect to %s: %s (is sscardd running? "
				   "SSCARD_SOCKET names another socket)", path, strerror(en));
	}
	*out = fd;
	return 0;
}

int sscard_connect(const char *path, int timeout_ms, struct sscard_client **out,
		   struct sscard_error *e)
{
	struct sscard_client *c;
	struct epoll_event ev;
	long long deadline = now_ms() + (timeout_ms < 0 ? SSCARD_DEFAULT_TIMEOUT_MS : timeout_ms);
	int rc;

	if (!out)
		return client_fail(e, SSC_EINVAL, "out is NULL");
	*out = NULL;
	path = client_socket_path(path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return client_fail(e, SSC_ENOMEM, "out of memory");
	c->fd = c->efd = c->epfd = -1;
	c->timeout_ms = SSCARD_DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	pthread_mutex_init(&c->lock, NULL);
	rc = connect_fd(path, deadline, &c->fd, e);
	if (rc < 0)
		goto out_free;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->efd < 0 || c->epfd < 0) {
		rc = client_fail(e, SSC_EIO, "eventfd/epoll: %s", strerror(errno));
		goto out_free;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0 ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->efd, &ev) != 0) {
		rc = client_fail(e, SSC_EIO, "epoll_ctl: %s", strerror(errno));
		goto out_free;
	}
	*out = c;
	return 0;
out_free:
	sscard_close(c);
	return rc;
}

void sscard_close(struct sscard_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->efd >= 0)
		close(c->efd);
	if (c->epfd >= 0)
		close(c->epfd);
	for (size_t i = 0; i < SSCARD_MAX_PENDING; i++)
		json_decref(c->pending[i].reply);
	for (size_t i = 0; i < c->ev_count; i++)
		json_decref(c->events[(c->ev_head + i) % SSCARD_MAX_EVENTS]);
	json_decref(c->conn_error);
	free(c->buf);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void sscard_set_timeout(struct sscard_client *c, int timeout_ms)
{
	if (!c || timeout_ms <= 0)
		return;
	pthread_mutex_lock(&c->lock);   /* held only for short non-blocking work or a bounded wait */
	c->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the wire ---------------------------------------------------------------------------- */

/* Marks the connection unusable (the socket is closed) and returns err with e filled. */
static int conn_break(struct sscard_client *c, int err, struct sscard_error *e, const char *msg)
{
	if (!c->broken) {
		c->broken = err;
		snprintf(c->broken_msg, sizeof(c->broken_msg), "%s", msg);
		if (c->fd >= 0) {
			epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
		}
	}
	return client_fail(e, err, "%s", msg);
}

/* The error of a connection that no longer works: an "id": null answer the daemon sent before
 * closing (e.g. too many clients), else the cause recorded when it broke. */
static int conn_broken_error(struct sscard_client *c, struct sscard_error *e)
{
	if (c->conn_error)
		return client_error_from_json(json_object_get(c->conn_error, "error"), e);
	return client_fail(e, SSC_EIO, "the connection to the daemon is closed (%s)",
			   c->broken_msg);
}

static void events_signal(struct sscard_client *c)
{
	uint64_t one = 1, junk;

	if (c->ev_count > 0) {
		if (write(c->efd, &one, sizeof(one)) < 0) {
			/* The counter is already non-zero (EAGAIN cannot happen below 2^64 - 1). */
		}
	} else if (read(c->efd, &junk, sizeof(junk)) < 0) {
		/* Already zero: nothing to reset. */
	}
}

static void event_push(struct sscard_client *c, json_t *params)
{
	if (c->ev_count == SSCARD_MAX_EVENTS) {
		json_decref(c->events[c->ev_head]);
		c->ev_head = (c->ev_head + 1) % SSCARD_MAX_EVENTS;
		c->ev_count--;
		c->ev_lost = 1;
	}
	c->events[(c->ev_head + c->ev_count) % SSCARD_MAX_EVENTS] = json_incref(params);
	c->ev_count++;
	events_signal(c);
}

static struct pending *pending_find(struct sscard_client *c, uint64_t id)
{
	for (size_t i = 0; i < SSCARD_MAX_PENDING; i++)
		if (c->pending[i].id == id && id != 0)
			return &c->pending[i];
	return NULL;
}

/* One complete line from the daemon: a reply (kept for its waiter, or dropped when nobody waits
 * for it), an event (queued), or an "id": null error (kept as the connection's error). */
static int dispatch(struct sscard_client *c, const char *line, size_t len, struct sscard_error *e)
{
	json_error_t jerr;
	json_t *m, *id, *method;
	struct pending *p;

	if (len == 0)
		return 0;
	m = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(m)) {
		json_decref(m);
		return conn_break(c, SSC_EPROTO, e, "the daemon sent a line that is not a JSON object");
	}
	method = json_object_get(m, "method");
	id = json_object_get(m, "id");
	if (json_is_string(method)) {
		if (strcmp(json_string_value(method), "event") == 0 &&
		    json_is_object(json_object_get(m, "params")))
			event_push(c, json_object_get(m, "params"));
	} else if (json_is_integer(id)) {
		p = pending_find(c, (uint64_t)json_integer_value(id));
		if (p && !p->reply) {
			p->reply = m;
			return 0;
		}
	} else if (json_is_null(id) && json_is_object(json_object_get(m, "error"))) {
		json_decref(c->conn_error);
		c->conn_error = json_incref(m);
	}
	json_decref(m);
	return 0;
}

/* Frames and dispatches every complete line in c->buf. */
static int frame(struct sscard_client *c, struct sscard_error *e)
{
	size_t start = 0;
	int rc = 0;

	for (;;) {
		char *nl = memchr(c->buf + start, '\n', c->len - start);
		size_t n;

		if (!nl)
			break;
		n = (size_t)(nl - (c->buf + start));
		rc = dispatch(c, c->buf + start, n > 0 && c->buf[start + n - 1] == '\r' ? n - 1 : n, e);
		start += n + 1;
		if (rc < 0)
			return rc;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (c->len > SSCARD_MAX_LINE)
		return conn_break(c, SSC_EPROTO, e, "the daemon sent a line longer than "
				  "SSCARD_MAX_LINE");
	return 0;
}

/*
 * Waits until the socket is readable (at most until deadline; wait = 0: do not wait), reads what
 * is there and dispatches complete lines. Returns 1 when something was read, 0 when nothing came
 * in time, or an error (SSC_EIO when the daemon closed the connection).
 */
static int pump(struct sscard_client *c, long long deadline, int wait, struct sscard_error *e)
{
	struct pollfd pfd;
	ssize_t n;
	int r;

	if (c->broken)
		return conn_broken_error(c, e);
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	r = poll(&pfd, 1, wait ? left_ms(deadline) : 0);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0)
		return 0;
	if (c->cap - c->len < 65536) {
		size_t ncap = c->cap ? c->cap * 2 : 65536 * 2;
		char *nb = realloc(c->buf, ncap);

		if (!nb)
			return client_fail(e, SSC_ENOMEM, "out of memory");
		c->buf = nb;
		c->cap = ncap;
	}
	n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		char msg[160];

		snprintf(msg, sizeof(msg), "the daemon closed the connection%s%s",
			 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		conn_break(c, SSC_EIO, NULL, msg);
		return conn_broken_error(c, e);
	}
	c->len += (size_t)n;
	r = frame(c, e);
	return r < 0 ? r : 1;
}

static int send_all(struct sscard_client *c, const char *data, size_t len, long long deadline,
		    struct sscard_error *e)
{
	size_t off = 0;

	while (off < len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		ssize_t n;

		n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			char msg[160];

			snprintf(msg, sizeof(msg), "sending to the daemon: %s", strerror(errno));
			/*
			 * The daemon may have answered before it closed ("id": null: too many
			 * clients): read what it sent, so that the caller gets its error, not EIO.
			 */
			while (!c->broken && pump(c, deadline, 0, NULL) > 0)
				;
			conn_break(c, SSC_EIO, NULL, msg);
			return conn_broken_error(c, e);
		}
		if (left_ms(deadline) == 0 || poll(&pfd, 1, left_ms(deadline)) == 0) {
			if (off == 0)
				return client_fail(e, SSC_ETIMEDOUT, "the daemon did not read the "
						   "request before the deadline");
			/* Half a line went out: the framing can no longer be trusted. */
			return conn_break(c, SSC_ETIMEDOUT, e, "the daemon did not read the request "
					  "before the deadline");
		}
	}
	return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

static int send_locked(struct sscard_client *c, const char *method, json_t *params,
		       long long deadline, uint64_t *id, struct sscard_error *e)
{
	struct pending *p;
	json_t *req;
	char *line;
	size_t len;
	int rc;

	if (c->broken)
		return conn_broken_error(c, e);
	if (!method || (params && !json_is_object(params)))
		return client_fail(e, SSC_EINVAL, "method is NULL or params is not an object");
	p = NULL;
	for (size_t i = 0; i < SSCARD_MAX_PENDING && !p; i++)
		if (c->pending[i].id == 0)
			p = &c->pending[i];
	if (!p)
		return client_fail(e, SSC_ELIMIT, "%d requests are outstanding on this connection",
				   SSCARD_MAX_PENDING);
	req = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)c->next_id,
			"method", method);
	if (!req || (params && json_object_set(req, "params", params) != 0)) {
		json_decref(req);
		return client_fail(e, SSC_ENOMEM, "out of memory");
	}
	line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!line)
		return client_fail(e, SSC_ENOMEM, "out of memory");
	len = strlen(line);
	line[len] = '\n';   /* json_dumps's NUL becomes the line's end; the length says where */
	rc = send_all(c, line, len + 1, deadline, e);
	explicit_bzero(line, len + 1);   /* it may hold a PIN */
	free(line);
	if (rc < 0)
		return rc;
	p->id = c->next_id++;
	p->reply = NULL;
	*id = p->id;
	return 0;
}

static void pending_drop(struct pending *p)
{
	json_decref(p->reply);
	p->reply = NULL;
	p->id = 0;
}

/* Waits for id's reply until deadline. On success or a daemon error the slot is freed; on a
 * library failure (timeout, broken connection) it stays, for the caller to decide. */
static int wait_locked(struct sscard_client *c, uint64_t id, long long deadline, json_t **result,
		       struct sscard_error *e)
{
	struct pending *p = pending_find(c, id);
	json_t *error;
	int rc;

	if (!p)
		return client_fail(e, SSC_ENOTFOUND, "request %llu is not outstanding",
				   (unsigned long long)id);
	while (!p->reply) {
		rc = pump(c, deadline, 1, e);
		if (rc < 0)
			return rc;
		if (rc == 0 && !p->reply && left_ms(deadline) == 0)
			return client_fail(e, SSC_ETIMEDOUT, "no answer from the daemon before the "
					   "deadline");
	}
	error = json_object_get(p->reply, "error");
	if (error) {
		rc = client_error_from_json(error, e);
	} else if (!json_object_get(p->reply, "result")) {
		rc = client_fail(e, SSC_EPROTO, "the daemon's answer has neither result nor error");
	} else {
		rc = 0;
		if (result)
			*result = json_incref(json_object_get(p->reply, "result"));
	}
	pending_drop(p);
	return rc;
}

int sscard_send(struct sscard_client *c, const char *method, json_t *params, uint64_t *id,
		struct sscard_error *e)
{
	long long deadline;
	int rc;

	if (!c || !id)
		return client_fail(e, SSC_EINVAL, "client or id is NULL");
	deadline = deadline_of(c, -1);
	rc = lock_until(c, deadline, e);
	if (rc < 0)
		return rc;
	rc = send_locked(c, method, params, deadline, id, e);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int sscard_wait(struct sscard_client *c, uint64_t id, int timeout_ms, json_t **result,
		struct sscard_error *e)
{
	long long deadline;
	int rc;

	if (!c)
		return client_fail(e, SSC_EINVAL, "client is NULL");
	deadline = deadline_of(c, timeout_ms);
	rc = lock_until(c, deadline, e);
	if (rc < 0)
		return rc;
	rc = wait_locked(c, id, deadline, result, e);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void sscard_forget(struct sscard_client *c, uint64_t id)
{
	struct pending *p;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	p = pending_find(c, id);
	if (p)
		pending_drop(p);
	pthread_mutex_unlock(&c->lock);
}

int sscard_call(struct sscard_client *c, const char *method, json_t *params, int timeout_ms,
		json_t **result, struct sscard_error *e)
{
	long long deadline;
	uint64_t id;
	int rc;

	if (!c)
		return client_fail(e, SSC_EINVAL, "client is NULL");
	deadline = deadline_of(c, timeout_ms);
	rc = lock_until(c, deadline, e);
	if (rc < 0)
		return rc;
	rc = send_locked(c, method, params, deadline, &id, e);
	if (rc == 0) {
		rc = wait_locked(c, id, deadline, result, e);
		if (rc < 0 && pending_find(c, id))
			pending_drop(pending_find(c, id));   /* a late answer is dropped on arrival */
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int sscard_call_json(struct sscard_client *c, const char *method, const char *params_json,
		     int timeout_ms, char **result_json, struct sscard_error *e)
{
	json_error_t jerr;
	json_t *params = NULL, *result = NULL;
	int rc;

	if (result_json)
		*result_json = NULL;
	if (params_json) {
		params = json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(params)) {
			json_decref(params);
			return client_fail(e, SSC_EINVAL, "params is not a JSON object: %s",
					   jerr.text);
		}
	}
	rc = sscard_call(c, method, params, timeout_ms, &result, e);
	json_decref(params);
	if (rc == 0 && result_json) {
		*result_json = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!*result_json)
			rc = client_fail(e, SSC_ENOMEM, "out of memory");
	}
	json_decref(result);
	return rc;
}

/* ---- events ------------------------------------------------------------------------------ */

int sscard_subscribe(struct sscard_client *c, struct sscard_error *e)
{
	return sscard_call(c, "events.subscribe", NULL, -1, NULL, e);
}

int sscard_next_event(struct sscard_client *c, int timeout_ms, json_t **event,
		      struct sscard_error *e)
{
	long long deadline;
	int rc = 0;

	if (!c || !event)
		return client_fail(e, SSC_EINVAL, "client or event is NULL");
	*event = NULL;
	deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	rc = lock_until(c, deadline + 1000, e);   /* a short wait still waits out a call's send */
	if (rc < 0)
		return rc;
	/* Whatever is already on the socket first, then wait for more until the deadline. */
	while (c->ev_count == 0) {
		rc = pump(c, deadline, left_ms(deadline) > 0, e);
		if (rc < 0)
			break;
		if (rc == 0 && left_ms(deadline) == 0) {
			rc = client_fail(e, SSC_ETIMEDOUT, "no event");
			break;
		}
		rc = 0;
	}
	if (c->ev_count > 0) {
		*event = c->events[c->ev_head];
		c->ev_head = (c->ev_head + 1) % SSCARD_MAX_EVENTS;
		c->ev_count--;
		if (c->ev_lost) {
			json_object_set_new(*event, "lost", json_true());
			c->ev_lost = 0;
		}
		events_signal(c);
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int sscard_event_fd(struct sscard_client *c)
{
	return c ? c->epfd : SSC_EINVAL;
}
