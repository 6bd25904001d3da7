/*
 * This file contains sscard-sim's control socket: a Unix stream socket on which tests send line
 * commands ("remove", "insert", "status", "drop-after N") and read one answer line each. It only
 * parses and frames; what a command does is decided by the caller through a callback.
 */
#ifndef CTL_H
#define CTL_H

#include <poll.h>
#include <stddef.h>

#define CTL_MAX_CLIENTS 8
#define CTL_LINE_MAX 128      /* a longer line is answered "error line too long" and dropped */
#define CTL_IDLE_MS 60000     /* a client silent this long is disconnected */

/*
 * Called once per complete command line (without the newline, NUL-terminated, borrowed). Writes the
 * answer (without newline) into reply (replylen bytes).
 */
typedef void (*ctl_handler)(void *arg, const char *line, char *reply, size_t replylen);

struct ctl_client {
	int fd;                   /* -1 when the slot is free */
	long long last_ms;        /* monotonic time of the last activity */
	size_t have;
	char line[CTL_LINE_MAX + 1];
	int overflow;             /* the current line is too long: skip to its newline */
};

struct ctl {
	int listen_fd;            /* -1 when there is no control socket */
	char path[108];
	struct ctl_client clients[CTL_MAX_CLIENTS];
	ctl_handler handler;
	void *arg;
};

/*
 * Opens the control socket at path (mode 0600; a stale socket left by a killed simulator is
 * replaced, any other existing file is refused with -EEXIST). path NULL: no control socket (0).
 * Returns 0 or -errno (-ENAMETOOLONG when path does not fit a sockaddr_un). Never blocks.
 */
int ctl_open(struct ctl *c, const char *path, ctl_handler handler, void *arg);

/* Appends the pollfds to watch to fds (room for 1 + CTL_MAX_CLIENTS); returns how many. */
size_t ctl_pollfds(const struct ctl *c, struct pollfd *fds);

/*
 * Handles the poll results for the fds ctl_pollfds returned (same order): accepts clients, reads
 * lines, calls the handler and writes answers (non-blocking; a client that does not read its
 * answers is disconnected). Also drops idle clients. Never blocks.
 */
void ctl_dispatch(struct ctl *c, const struct pollfd *fds, size_t nfds, long long now_ms);

/* Milliseconds until the next idle deadline (-1: none). */
int ctl_timeout_ms(const struct ctl *c, long long now_ms);

/* Closes every client and the listening socket and unlinks the socket file. No-op when closed. */
void ctl_close(struct ctl *c);

/*
 * The other end, for `sscard-sim ctl SOCKET COMMAND`: connects to the control socket at path,
 * sends line (a command without its newline, at most CTL_LINE_MAX bytes) and reads the one answer
 * line into reply (replylen bytes, NUL-terminated, without its newline). Everything within
 * timeout_ms. Returns 0, or -errno: -ENAMETOOLONG (path or line too long), a connect error,
 * -ETIMEDOUT (no whole answer in time), -ECONNRESET (closed before the answer), -EMSGSIZE (an
 * answer longer than replylen).
 */
int ctl_request(const char *path, const char *line, char *reply, size_t replylen,
		int timeout_ms);

#endif
