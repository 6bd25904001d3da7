/*
 * This file contains the benchmark's JSON-RPC clients (bench_rpc.h): newline-delimited JSON-RPC
 * 2.0 over sscardd's Unix socket, requests pre-built as text, replies parsed with jansson.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_rpc.h"
#include "bench_stats.h"

#define BENCH_RPC_BUF_MAX (1 << 20)
#define BENCH_RPC_ERRNAMES_MAX 32

struct bench_rpc_conn {
	int fd;
	char *buf;                 /* received bytes not yet consumed */
	size_t have;
	unsigned long next_id;
	int inflight;
	double sent_us;            /* when the request in flight left */
	double next_send_us;       /* idle: when to send the next one */
	const char *params;
};

struct bench_rpc_errcount {
	char name[48];
	unsigned long n;
};

static int bench_rpc_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sscard-bench: socket path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "sscard-bench: connect %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes the whole request line (blocking socket or not: waits for room). */
static int bench_rpc_send(struct bench_rpc_conn *c, const char *method, const char *params)
{
	char line[8192];
	size_t off = 0;
	int n;

	n = params ? snprintf(line, sizeof(line),
			      "{\"jsonrpc\":\"2.0\",\"id\":%lu,\"method\":\"%s\",\"params\":%s}\n",
			      c->next_id, method, params)
		   : snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%lu,\"method\":\"%s\"}\n",
			      c->next_id, method);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	c->next_id++;
	/* Before the send: a preemption between send() and the clock would hide the daemon's time. */
	c->sent_us = bench_now_us();
	while (off < (size_t)n) {
		ssize_t w = send(c->fd, line + off, (size_t)n - off, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };

			(void)poll(&p, 1, 1000);
			continue;
		}
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	c->inflight = 1;
	return 0;
}

/*
 * Takes one complete line out of c->buf if there is one: 1 = the reply to the request in flight
 * (*is_error, name of the error in errname), 0 = no complete line yet, -1 = garbage or a reply
 * to another id. Notifications are skipped.
 */
static int bench_rpc_take_reply(struct bench_rpc_conn *c, int *is_error, char *errname,
				size_t cap)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->have);
		json_error_t je;
		json_t *msg, *err;
		size_t len;

		if (!nl)
			return 0;
		len = (size_t)(nl - c->buf);
		msg = json_loadb(c->buf, len, 0, &je);
		memmove(c->buf, nl + 1, c->have - len - 1);
		c->have -= len + 1;
		if (!msg)
			return -1;
		if (json_object_get(msg, "method")) {
			json_decref(msg);    /* a notification */
			continue;
		}
		if (json_integer_value(json_object_get(msg, "id")) != (json_int_t)(c->next_id - 1)) {
			fprintf(stderr, "sscard-bench: a reply to id %lld, expected %lu\n",
				(long long)json_integer_value(json_object_get(msg, "id")),
				c->next_id - 1);
			json_decref(msg);
			return -1;
		}
		err = json_object_get(msg, "error");
		*is_error = err != NULL;
		errname[0] = '\0';
		if (err) {
			json_t *name = json_object_get(json_object_get(err, "data"), "name");

			snprintf(errname, cap, "%s", json_is_string(name) ? json_string_value(name)
								     : "code");
			if (!json_is_string(name))
				snprintf(errname, cap, "code%lld",
					 (long long)json_integer_value(json_object_get(err, "code")));
		}
		json_decref(msg);
		return 1;
	}
}

/* Reads what is there into c->buf. Returns 0, or -1 at EOF / error / overflow. */
static int bench_rpc_read(struct bench_rpc_conn *c)
{
	ssize_t n;

	if (c->have == BENCH_RPC_BUF_MAX)
		return -1;
	n = recv(c->fd, c->buf + c->have, BENCH_RPC_BUF_MAX - c->have, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	c->have += (size_t)n;
	return 0;
}

static int bench_rpc_open(struct bench_rpc_conn *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->next_id = 1;
	c->buf = malloc(BENCH_RPC_BUF_MAX);
	if (!c->buf)
		return -1;
	c->fd = bench_rpc_connect(path);
	return c->fd < 0 ? -1 : 0;
}

static void bench_rpc_close(struct bench_rpc_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

int bench_rpc_latency(const struct bench_rpc_opts *o)
{
	struct bench_rpc_conn c;
	struct bench_stats st;
	unsigned long errors = 0;
	char errname[48], first_err[48] = "";
	int rc = 1;

	memset(&st, 0, sizeof(st));
	if (bench_rpc_open(&c, o->socket_path) != 0)
		goto out;
	for (int i = 0; i < o->warmup + o->runs; i++) {
		double t0, deadline;
		int is_error = 0, got = 0;

		if (bench_rpc_send(&c, o->method, o->n_params ? o->params[i % o->n_params]
							     : NULL) != 0) {
			fprintf(stderr, "sscard-bench: send failed: %s\n", strerror(errno));
			goto out;
		}
		t0 = c.sent_us;
		deadline = t0 + o->timeout_ms * 1000.0;
		while (!got) {
			struct pollfd p = { .fd = c.fd, .events = POLLIN };
			int left = (int)((deadline - bench_now_us()) / 1000.0);

			got = bench_rpc_take_reply(&c, &is_error, errname, sizeof(errname));
			if (got < 0) {
				fprintf(stderr, "sscard-bench: a reply that is not JSON\n");
				goto out;
			}
			if (got)
				break;
			if (left <= 0) {
				fprintf(stderr, "sscard-bench: no reply within %d ms\n", o->timeout_ms);
				goto out;
			}
			if (poll(&p, 1, left) > 0 && bench_rpc_read(&c) != 0) {
				fprintf(stderr, "sscard-bench: the daemon closed the connection\n");
				goto out;
			}
		}
		if (is_error) {
			errors++;
			if (!first_err[0])
				snprintf(first_err, sizeof(first_err), "%s", errname);
			if (!o->allow_errors) {
				fprintf(stderr, "sscard-bench: %s answered %s\n", o->method, errname);
				goto out;
			}
			continue;
		}
		if (i >= o->warmup && bench_stats_add(&st, bench_now_us() - t0) != 0)
			goto out;
	}
	if (o->samples && bench_stats_write(&st, o->samples) != 0)
		goto out;
	bench_stats_print(stdout, "rpc", &st);
	if (o->allow_errors)
		printf("rpc_errors n=%lu first=%s\n", errors, first_err[0] ? first_err : "-");
	rc = 0;
out:
	bench_rpc_close(&c);
	bench_stats_free(&st);
	return rc;
}

static void bench_rpc_count_error(struct bench_rpc_errcount *e, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(e[i].name, name) == 0) {
			e[i].n++;
			return;
		}
	if (*n == BENCH_RPC_ERRNAMES_MAX)
		return;
	snprintf(e[*n].name, sizeof(e[*n].name), "%s", name);
	e[(*n)++].n = 1;
}

int bench_rpc_load(const struct bench_rpc_opts *o)
{
	struct bench_rpc_conn *c = calloc((size_t)o->clients, sizeof(*c));
	struct pollfd *pf = calloc((size_t)o->clients, sizeof(*pf));
	struct bench_rpc_errcount errs[BENCH_RPC_ERRNAMES_MAX];
	struct bench_stats st;
	size_t n_errs = 0;
	unsigned long ok = 0, errors = 0;
	double start, end, now;
	int rc = 1, opened = 0;

	memset(&st, 0, sizeof(st));
	if (!c || !pf)
		goto out;
	for (int i = 0; i < o->clients; i++, opened++) {
		if (bench_rpc_open(&c[i], o->socket_path) != 0)
			goto out;
		c[i].params = o->n_params ? o->params[i % o->n_params] : NULL;
	}
	start = bench_now_us();
	end = start + o->seconds * 1e6;
	for (int i = 0; i < o->clients; i++)
		c[i].next_send_us = start;
	for (;;) {
		int wait_ms = 100, busy = 0;

		now = bench_now_us();
		for (int i = 0; i < o->clients; i++) {
			if (c[i].inflight) {
				busy++;
				if (now - c[i].sent_us > o->timeout_ms * 1000.0) {
					fprintf(stderr, "sscard-bench: no reply within %d ms\n",
						o->timeout_ms);
					goto out;
				}
			} else if (now < end && now >= c[i].next_send_us) {
				if (bench_rpc_send(&c[i], o->method, c[i].params) != 0) {
					fprintf(stderr, "sscard-bench: send on connection %d failed: "
						"%s\n", i, strerror(errno));
					goto out;
				}
				busy++;
			} else if (now < end) {
				int ms = (int)((c[i].next_send_us - now) / 1000.0) + 1;

				if (ms < wait_ms)
					wait_ms = ms;
			}
		}
		if (busy == 0 && now >= end)
			break;
		for (int i = 0; i < o->clients; i++) {
			pf[i].fd = c[i].fd;
			pf[i].events = POLLIN;
			pf[i].revents = 0;
		}
		if (poll(pf, (nfds_t)o->clients, wait_ms) < 0 && errno != EINTR)
			goto out;
		for (int i = 0; i < o->clients; i++) {
			char errname[48];
			int is_error = 0, got;

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (bench_rpc_read(&c[i]) != 0) {
				fprintf(stderr, "sscard-bench: the daemon closed connection %d\n", i);
				goto out;
			}
			while ((got = bench_rpc_take_reply(&c[i], &is_error, errname, sizeof(errname))) == 1) {
				double t = bench_now_us();

				c[i].inflight = 0;
				if (is_error) {
					errors++;
					bench_rpc_count_error(errs, &n_errs, errname);
					c[i].next_send_us = t + o->retry_ms * 1000.0;
				} else {
					ok++;
					if (bench_stats_add(&st, t - c[i].sent_us) != 0)
						goto out;
					c[i].next_send_us = t;
				}
			}
			if (got < 0)
				goto out;
		}
	}
	now = bench_now_us();
	printf("load clients=%d seconds=%.2f ok=%lu errors=%lu ok_per_s=%.1f\n", o->clients,
	       (now - start) / 1e6, ok, errors, ok / ((now - start) / 1e6));
	for (size_t i = 0; i < n_errs; i++)
		printf("load_error name=%s n=%lu\n", errs[i].name, errs[i].n);
	bench_stats_print(stdout, "load_latency", &st);
	rc = 0;
out:
	for (int i = 0; i < opened; i++)
		bench_rpc_close(&c[i]);
	free(c);
	free(pf);
	bench_stats_free(&st);
	return rc;
}
