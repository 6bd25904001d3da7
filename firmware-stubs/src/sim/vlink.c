/*
 * This file contains the vpcd link: a non-blocking TCP client socket to one vpcd slot, the length-
 * prefixed framing in both directions, and the two latency rules of test-harness.md §1 (quick ACK
 * after every recv, header and payload in one send).
 */
#include "vlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int vlink_init(struct vlink *l, const char *host, uint16_t port)
{
	memset(&l->addr, 0, sizeof(l->addr));
	l->fd = -1;
	l->state = VLINK_CLOSED;
	l->hdr_have = l->need = l->have = 0;
	l->addr.sin_family = AF_INET;
	l->addr.sin_port = htons(port);
	if (port == 0 || inet_pton(AF_INET, host, &l->addr.sin_addr) != 1)
		return -EINVAL;
	return 0;
}

void vlink_close(struct vlink *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->state = VLINK_CLOSED;
	l->hdr_have = l->need = l->have = 0;
}

int vlink_connect(struct vlink *l)
{
	int one = 1;
	int r;

	vlink_close(l);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -errno;
	/* Answers are small and latency-bound: never let Nagle hold one back. */
	(void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = connect(l->fd, (const struct sockaddr *)&l->addr, sizeof(l->addr));
	if (r == 0) {
		l->state = VLINK_UP;
		return 0;
	}
	if (errno == EINPROGRESS) {
		l->state = VLINK_CONNECTING;
		return 0;
	}
	r = -errno;
	vlink_close(l);
	return r;
}

int vlink_finish_connect(struct vlink *l)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (l->state != VLINK_CONNECTING)
		return l->state == VLINK_UP ? 0 : -ENOTCONN;
	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		vlink_close(l);
		return -err;
	}
	l->state = VLINK_UP;
	return 0;
}

/* One recv() followed by the quick ACK. Returns the byte count, 0 on EOF, or -errno. */
static ssize_t vlink_recv(struct vlink *l, uint8_t *p, size_t len)
{
	int one = 1;
	ssize_t n;

	do
		n = recv(l->fd, p, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* TCP_QUICKACK is not sticky: the kernel clears it again, so it is set after every recv. */
	(void)setsockopt(l->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	return n;
}

int vlink_partial(const struct vlink *l)
{
	return l->hdr_have > 0;
}

int vlink_read(struct vlink *l)
{
	ssize_t n;

	if (l->state != VLINK_UP)
		return -ENOTCONN;
	/* A complete frame was handed out by the previous call: start the next one. */
	if (l->hdr_have == 2 && l->have == l->need)
		l->hdr_have = l->need = l->have = 0;
	for (;;) {
		if (l->hdr_have < 2) {
			n = vlink_recv(l, l->hdr + l->hdr_have, 2 - l->hdr_have);
			if (n <= 0)
				goto out_error;
			l->hdr_have += (size_t)n;
			if (l->hdr_have < 2)
				continue;
			l->need = (size_t)l->hdr[0] << 8 | l->hdr[1];
			l->have = 0;
		}
		if (l->have == l->need)
			return 1;
		n = vlink_recv(l, l->buf + l->have, l->need - l->have);
		if (n <= 0)
			goto out_error;
		l->have += (size_t)n;
		if (l->have == l->need)
			return 1;
	}

out_error:
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return 0;
	vlink_close(l);
	return n == 0 ? -ECONNRESET : (int)n;
}

/* Milliseconds on the monotonic clock. */
static long long vlink_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vlink_send(struct vlink *l, const uint8_t *p, size_t len, int timeout_ms)
{
	uint8_t frame[2 + 512];
	const uint8_t *out = frame;
	long long deadline = vlink_now_ms() + timeout_ms;
	size_t left;

	if (l->state != VLINK_UP)
		return -ENOTCONN;
	if (len > sizeof(frame) - 2)
		return -EMSGSIZE;
	frame[0] = (uint8_t)(len >> 8);
	frame[1] = (uint8_t)len;
	if (len > 0)
		memcpy(frame + 2, p, len);
	left = len + 2;
	while (left > 0) {
		struct pollfd pfd = { .fd = l->fd, .events = POLLOUT };
		long long wait_ms;
		ssize_t n = send(l->fd, out, left, MSG_NOSIGNAL);

		if (n > 0) {
			out += n;
			left -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		wait_ms = deadline - vlink_now_ms();
		if (wait_ms <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)wait_ms) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}
