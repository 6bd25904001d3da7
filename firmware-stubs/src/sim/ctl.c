/*
 * This file contains the control socket of sscard-sim: a small line protocol over a Unix stream
 * socket, a few clients at once, bounded lines, idle deadlines and non-blocking I/O, so that a test
 * that misbehaves on it can never stall the simulated card.
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* True when a socket at path accepts connections (a live simulator owns it). */
static int ctl_path_is_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live;

	if (fd < 0)
		return 0;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

int ctl_open(struct ctl *c, const char *path, ctl_handler handler, void *arg)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t old_mask;
	int r;

	memset(c, 0, sizeof(*c));
	c->listen_fd = -1;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	c->handler = handler;
	c->arg = arg;
	if (!path)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		/* Replace only a dead socket: never a regular file, never another live simulator's. */
		if (!S_ISSOCK(st.st_mode) || ctl_path_is_live(&sa))
			return -EEXIST;
		if (unlink(path) < 0)
			return -errno;
	}
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		return -errno;
	old_mask = umask(077);
	r = bind(c->listen_fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (r < 0 || listen(c->listen_fd, CTL_MAX_CLIENTS) < 0) {
		r = -errno;
		close(c->listen_fd);
		c->listen_fd = -1;
		return r;
	}
	memcpy(c->path, path, strlen(path) + 1);
	return 0;
}

size_t ctl_pollfds(const struct ctl *c, struct pollfd *fds)
{
	size_t n = 0;

	if (c->listen_fd < 0)
		return 0;
	fds[n++] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			fds[n++] = (struct pollfd){ .fd = c->clients[i].fd, .events = POLLIN };
	return n;
}

static void ctl_drop(struct ctl_client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	cl->fd = -1;
	cl->have = 0;
	cl->overflow = 0;
}

/* Sends one answer line; a client whose socket buffer is full is dropped rather than waited for. */
static void ctl_answer(struct ctl_client *cl, const char *reply)
{
	char out[CTL_LINE_MAX * 2 + 2];
	int n = snprintf(out, sizeof(out), "%s\n", reply);
	ssize_t sent;

	if (n < 0 || (size_t)n >= sizeof(out))
		n = snprintf(out, sizeof(out), "error answer too long\n");
	sent = send(cl->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent != n)
		ctl_drop(cl);
}

/* Handles the bytes in p: splits lines, answers each. */
static void ctl_consume(struct ctl *c, struct ctl_client *cl, const char *p, size_t len)
{
	char reply[CTL_LINE_MAX * 2];

	for (size_t i = 0; i < len && cl->fd >= 0; i++) {
		if (p[i] != '\n') {
			if (cl->have < CTL_LINE_MAX)
				cl->line[cl->have++] = p[i];
			else
				cl->overflow = 1;
			continue;
		}
		if (cl->overflow) {
			ctl_answer(cl, "error line too long");
		} else {
			if (cl->have > 0 && cl->line[cl->have - 1] == '\r')
				cl->have--;
			cl->line[cl->have] = '\0';
			reply[0] = '\0';
			c->handler(c->arg, cl->line, reply, sizeof(reply));
			ctl_answer(cl, reply);
		}
		cl->have = 0;
		cl->overflow = 0;
	}
}

static void ctl_accept(struct ctl *c, long long now_ms)
{
	for (;;) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		size_t i;

		if (fd < 0)
			return;
		for (i = 0; i < CTL_MAX_CLIENTS && c->clients[i].fd >= 0; i++)
			;
		if (i == CTL_MAX_CLIENTS) {
			static const char busy[] = "error too many control clients\n";

			(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c->clients[i] = (struct ctl_client){ .fd = fd, .last_ms = now_ms };
	}
}

void ctl_dispatch(struct ctl *c, const struct pollfd *fds, size_t nfds, long long now_ms)
{
	char buf[512];

	for (size_t k = 0; k < nfds; k++) {
		struct ctl_client *cl = NULL;

		if (fds[k].fd == c->listen_fd) {
			if (fds[k].revents & POLLIN)
				ctl_accept(c, now_ms);
			continue;
		}
		for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
			if (c->clients[i].fd == fds[k].fd)
				cl = &c->clients[i];
		if (!cl || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			ctl_drop(cl);
			continue;
		}
		cl->last_ms = now_ms;
		ctl_consume(c, cl, buf, (size_t)n);
	}
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0 && now_ms - c->clients[i].last_ms >= CTL_IDLE_MS)
			ctl_drop(&c->clients[i]);
}

int ctl_timeout_ms(const struct ctl *c, long long now_ms)
{
	long long best = -1;

	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		long long left;

		if (c->clients[i].fd < 0)
			continue;
		left = c->clients[i].last_ms + CTL_IDLE_MS - now_ms;
		if (left < 0)
			left = 0;
		if (best < 0 || left < best)
			best = left;
	}
	return (int)best;
}

void ctl_close(struct ctl *c)
{
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++)
		ctl_drop(&c->clients[i]);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		c->listen_fd = -1;
		if (c->path[0])
			unlink(c->path);
	}
}

static long long ctl_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline (monotonic ms): 0 ready, -ETIMEDOUT, -errno. */
static int ctl_wait(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		long long left = deadline - ctl_clock_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int ctl_request(const char *path, const char *line, char *reply, size_t replylen,
		int timeout_ms)
{
	long long deadline = ctl_clock_ms() + timeout_ms;
	struct sockaddr_un sa;
	char out[CTL_LINE_MAX + 2];
	size_t len = strlen(line), sent = 0, have = 0;
	int fd, r = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path) || len > CTL_LINE_MAX || replylen == 0)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	memcpy(out, line, len);
	out[len++] = '\n';
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A simulator's backlog is never full for long: EAGAIN is tried again until the deadline. */
	while (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno != EAGAIN && errno != EINTR) {
			r = -errno;
			goto out_close;
		}
		if (ctl_clock_ms() >= deadline) {
			r = -ETIMEDOUT;
			goto out_close;
		}
		poll(NULL, 0, 10);
	}
	while (sent < len) {
		ssize_t n = send(fd, out + sent, len - sent, MSG_NOSIGNAL);

		if (n > 0) {
			sent += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			r = ctl_wait(fd, POLLOUT, deadline);
			if (r < 0)
				goto out_close;
		} else {
			r = -errno;
			goto out_close;
		}
	}
	for (;;) {
		char *nl = memchr(reply, '\n', have);
		ssize_t n;

		if (nl) {
			*nl = '\0';
			break;
		}
		if (have + 1 >= replylen) {
			r = -EMSGSIZE;
			break;
		}
		n = recv(fd, reply + have, replylen - 1 - have, 0);
		if (n > 0) {
			have += (size_t)n;
		} else if (n == 0) {
			r = -ECONNRESET;
			break;
		} else if (errno == EAGAIN || errno == EINTR) {
			r = ctl_wait(fd, POLLIN, deadline);
			if (r < 0)
				break;
		} else {
			r = -errno;
			break;
		}
	}
out_close:
	close(fd);
	if (r < 0)
		reply[0] = '\0';
	return r;
}
