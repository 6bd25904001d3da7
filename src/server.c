/*
 * This file contains the API's Unix-socket server (src/server.h): socket creation with mode,
 * group and safe replacement of a stale file; accepting clients with their peer credentials and
 * the connection limits; newline framing with the request-size cap; the idle timer; write
 * back-pressure; and the orderly close. It hands complete lines to src/rpc.c.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "sscard/error.h"

#define READ_CHUNK (64 * 1024)
#define LINE_KEEP (16 * 1024)   /* a line buffer larger than this is freed when empty */
#define LISTEN_BACKLOG 128

struct client {
	uv_pipe_t pipe;
	uv_timer_t timer;           /* idle timeout, or the drain deadline */
	struct server *srv;
	struct rpc_client *rc;
	struct client *prev, *next;
	unsigned id;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char *line;                 /* the partial line read so far */
	size_t line_len, line_cap;
	size_t wq_bytes;            /* reply bytes queued and not yet written */
	int reading;                /* uv_read_start() is active */
	int eof;                    /* the peer shut down its sending side */
	int draining;               /* close once the write queue is empty */
	const char *drain_reason;   /* why, for the log */
	int closing;                /* uv_close() called */
	int open_handles;
};

struct server {
	uv_loop_t *loop;
	const struct config *cfg;
	struct rpc *rpc;
	uv_pipe_t listener;
	uv_timer_t drain_timer;
	int listener_open, timer_open;
	int stopping;
	char path[CONFIG_PATH_MAX];
	dev_t dev;
	ino_t ino;
	struct client *clients;
	int n_clients;
	unsigned next_id;
	/*
	 * One read at a time on one thread: shared by all clients. Every request, and so every PIN,
	 * passes through it: its own pages, locked (never swapped) where RLIMIT_MEMLOCK allows.
	 */
	char *readbuf;
};

struct wreq {
	uv_write_t req;
	struct client *cl;
	size_t len;
	char data[];
};

static void client_close(struct client *cl, const char *reason);
static void start_drain(struct client *cl, const char *reason);
static void on_drain_timer_closed(uv_handle_t *h);

/* ---- client lifetime -------------------------------------------------------------------- */

static void maybe_finish_stop(struct server *srv)
{
	if (srv->stopping && srv->n_clients == 0 && srv->timer_open &&
	    !uv_is_closing((uv_handle_t *)&srv->drain_timer)) {
		uv_timer_stop(&srv->drain_timer);
		uv_close((uv_handle_t *)&srv->drain_timer, on_drain_timer_closed);
	}
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct client *cl = h->data;

	if (--cl->open_handles > 0)
		return;
	if (cl->line)
		OPENSSL_cleanse(cl->line, cl->line_cap);
	free(cl->line);
	free(cl);
}

static void client_close(struct client *cl, const char *reason)
{
	struct server *srv = cl->srv;

	if (cl->closing)
		return;
	cl->closing = 1;
	log_info("client %u closed: %s", cl->id, reason);
	rpc_client_close(cl->rc);
	cl->rc = NULL;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		srv->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	srv->n_clients--;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	cl->reading = 0;
	uv_timer_stop(&cl->timer);
	/* Pending writes complete with UV_ECANCELED before the close callback: cl outlives them. */
	uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
	uv_close((uv_handle_t *)&cl->timer, on_client_handle_closed);
	maybe_finish_stop(srv);
}

static void on_timer(uv_timer_t *t)
{
	struct client *cl = t->data;
	char reason[64];

	if (cl->closing)
		return;
	if (cl->draining) {
		client_close(cl, "replies not taken before the drain deadline");
		return;
	}
	/* Idle means nothing in flight: a client waiting for a card, or for events, is not idle. */
	if (rpc_client_inflight(cl->rc) > 0 || rpc_client_subscribed(cl->rc)) {
		uv_timer_start(&cl->timer, on_timer, (uint64_t)cl->srv->cfg->idle_timeout_ms, 0);
		return;
	}
	snprintf(reason, sizeof(reason), "idle for %d ms", cl->srv->cfg->idle_timeout_ms);
	client_close(cl, reason);
}

/*
 * Stops reading and closes (for reason, a static string) as soon as the replies already queued
 * are written, or at SERVER_DRAIN_MS.
 */
static void start_drain(struct client *cl, const char *reason)
{
	if (cl->closing || cl->draining)
		return;
	cl->draining = 1;
	cl->drain_reason = reason;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	cl->reading = 0;
	if (cl->wq_bytes == 0) {
		client_close(cl, reason);
		return;
	}
	uv_timer_start(&cl->timer, on_timer, SERVER_DRAIN_MS, 0);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void maybe_resume(struct client *cl)
{
	if (cl->reading || cl->closing || cl->draining || cl->eof || cl->wq_bytes > SERVER_WQ_LOW)
		return;
	if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) == 0)
		cl->reading = 1;
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *wr = (struct wreq *)req;
	struct client *cl = wr->cl;

	cl->wq_bytes -= wr->len;
	free(wr);
	if (cl->closing)
		return;
	if (status < 0) {
		char reason[96];

		snprintf(reason, sizeof(reason), "write failed: %s", uv_strerror(status));
		client_close(cl, reason);
		return;
	}
	if (cl->draining && cl->wq_bytes == 0) {
		client_close(cl, cl->drain_reason);
		return;
	}
	maybe_resume(cl);
}

/* rpc_client_ops.send: queue msg plus the newline. */
static int client_send(void *owner, const char *msg, size_t len)
{
	struct client *cl = owner;
	struct wreq *wr;
	uv_buf_t b;
	int r;

	if (cl->closing)
		return SSC_ESHUTDOWN;
	if (cl->wq_bytes + len + 1 > SERVER_WQ_MAX) {
		/* A subscriber that never reads would otherwise grow our memory without bound. */
		log_warn("client %u: more than %d bytes of replies not taken", cl->id, SERVER_WQ_MAX);
		client_close(cl, "write queue over its limit");
		return SSC_ELIMIT;
	}
	wr = malloc(sizeof(*wr) + len + 1);
	if (!wr) {
		client_close(cl, "out of memory");
		return SSC_ENOMEM;
	}
	wr->cl = cl;
	wr->len = len + 1;
	memcpy(wr->data, msg, len);
	wr->data[len] = '\n';
	b = uv_buf_init(wr->data, (unsigned)(len + 1));
	r = uv_write(&wr->req, (uv_stream_t *)&cl->pipe, &b, 1, on_write);
	if (r < 0) {
		free(wr);
		client_close(cl, uv_strerror(r));
		return SSC_EIO;
	}
	cl->wq_bytes += len + 1;
	if (cl->wq_bytes > SERVER_WQ_HIGH && cl->reading) {
		/* Back-pressure: read no more requests until the client takes its replies. */
		uv_read_stop((uv_stream_t *)&cl->pipe);
		cl->reading = 0;
	}
	return 0;
}

/* rpc_client_ops.idle: a half-closed client may go once its last reply is out. */
static void client_idle(void *owner)
{
	struct client *cl = owner;

	if (cl->eof)
		start_drain(cl, "the peer finished");
}

static const struct rpc_client_ops client_ops = {
	.send = client_send,
	.idle = client_idle,
};

/* ---- reading ---------------------------------------------------------------------------- */

/*
 * Whether the peer has closed its end in both directions (close(), or shutdown(SHUT_RDWR)), not
 * only its sending side (a half-close, after which it still reads the answers). On a Unix stream
 * socket the kernel reports POLLHUP only then. A look, never a wait.
 */
static int peer_gone(struct client *cl)
{
	struct pollfd p = { .events = POLLOUT };
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) != 0)
		return 0;
	p.fd = fd;
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *cl = h->data;

	*buf = uv_buf_init(cl->srv->readbuf, READ_CHUNK);
}

static int line_append(struct client *cl, const char *p, size_t n)
{
	size_t need = cl->line_len + n;

	if (need > cl->line_cap) {
		size_t cap = cl->line_cap ? cl->line_cap : 4096;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (cap > cl->srv->cfg->max_request_bytes)
			cap = cl->srv->cfg->max_request_bytes;
		/* Not realloc(): the old buffer may hold a PIN and must be wiped, not just freed. */
		nb = malloc(cap);
		if (!nb)
			return SSC_ENOMEM;
		if (cl->line) {
			memcpy(nb, cl->line, cl->line_len);
			OPENSSL_cleanse(cl->line, cl->line_cap);
			free(cl->line);
		}
		cl->line = nb;
		cl->line_cap = cap;
	}
	memcpy(cl->line + cl->line_len, p, n);
	cl->line_len += n;
	return 0;
}

static void too_large(struct client *cl)
{
	char msg[96];
	size_t max = cl->srv->cfg->max_request_bytes;

	log_warn("client %u: request longer than %zu bytes: answering and closing", cl->id, max);
	snprintf(msg, sizeof(msg), "request too large (at most %zu bytes per line)", max);
	cl->line_len = 0;
	rpc_send_error(cl->rc, RPC_INVALID_REQUEST, SSC_ELIMIT, msg);
	if (!cl->closing)
		start_drain(cl, "request too large");
}

/*
 * Splits data into lines and hands each to rpc. A line is never buffered beyond
 * max_request_bytes: a longer one is answered with "request too large" as soon as it passes the
 * limit, and the connection is closed (its framing can no longer be trusted).
 */
static void feed(struct client *cl, const char *data, size_t n)
{
	size_t max = cl->srv->cfg->max_request_bytes;

	while (n > 0 && !cl->closing && !cl->draining) {
		const char *nl = memchr(data, '\n', n);
		size_t seg = nl ? (size_t)(nl - data) : n;
		int r = 0;

		if (cl->line_len + seg > max) {
			too_large(cl);
			return;
		}
		if (!nl) {
			if (line_append(cl, data, seg) != 0)
				client_close(cl, "out of memory");
			return;
		}
		if (cl->line_len == 0) {
			r = rpc_handle_line(cl->rc, data, seg);
		} else if (line_append(cl, data, seg) == 0) {
			r = rpc_handle_line(cl->rc, cl->line, cl->line_len);
			OPENSSL_cleanse(cl->line, cl->line_len);   /* requests carry PINs */
			cl->line_len = 0;
			if (cl->line_cap > LINE_KEEP && !cl->closing) {
				free(cl->line);
				cl->line = NULL;
				cl->line_cap = 0;
			}
		} else {
			r = SSC_ENOMEM;
		}
		if (r == SSC_ENOMEM) {
			client_close(cl, "out of memory");
			return;
		}
		data += seg + 1;
		n -= seg + 1;
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *cl = s->data;

	if (nread == 0 || cl->closing)
		return;
	if (nread == UV_EOF) {
		/* Half-close is allowed: replies to what was sent still go out, then we close. */
		cl->eof = 1;
		uv_read_stop(s);
		cl->reading = 0;
		if (cl->line_len > 0)
			log_debug("client %u: %zu bytes without a final newline ignored", cl->id,
				  cl->line_len);
		if (rpc_client_inflight(cl->rc) == 0)
			start_drain(cl, "the peer finished");
		else if (peer_gone(cl))
			/* Nobody will read the answers: the queued requests are cancelled. */
			client_close(cl, "the peer closed the connection");
		return;
	}
	if (nread < 0) {
		char reason[96];

		snprintf(reason, sizeof(reason), "read failed: %s", uv_strerror((int)nread));
		client_close(cl, reason);
		return;
	}
	if (!cl->draining)
		uv_timer_start(&cl->timer, on_timer, (uint64_t)cl->srv->cfg->idle_timeout_ms, 0);
	feed(cl, buf->base, (size_t)nread);
	/* Everything read is handled or copied into the line buffer: wipe it (PINs). */
	OPENSSL_cleanse(buf->base, (size_t)nread);
}

/* ---- accepting -------------------------------------------------------------------------- */

/* Answers a connection we will not serve with one error line, then closes it. */
static void refuse(struct client *cl, const char *why)
{
	char buf[320];
	int n;

	log_warn("client %u refused: %s", cl->id, why);
	n = rpc_format_error(buf, sizeof(buf) - 1, rpc_error_code(SSC_ELIMIT), SSC_ELIMIT, why);
	if (n > 0) {
		uv_buf_t b;

		buf[n++] = '\n';
		b = uv_buf_init(buf, (unsigned)n);
		(void)uv_try_write((uv_stream_t *)&cl->pipe, &b, 1);   /* best effort, never blocks */
	}
	cl->closing = 1;
	uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
}

static int count_uid(const struct server *srv, uid_t uid)
{
	int n = 0;

	for (const struct client *c = srv->clients; c; c = c->next)
		if (c->uid == uid)
			n++;
	return n;
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct server *srv = ls->data;
	struct client *cl;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct rpc_peer peer;
	uv_os_fd_t fd;
	char exe_link[64], exe[PATH_MAX], why[128];
	ssize_t el;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		log_error("accept: out of memory");
		return;
	}
	cl->srv = srv;
	cl->id = ++srv->next_id;
	uv_pipe_init(srv->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	cl->open_handles = 1;
	if (uv_accept(ls, (uv_stream_t *)&cl->pipe) != 0 ||
	    uv_fileno((uv_handle_t *)&cl->pipe, &fd) != 0) {
		cl->closing = 1;
		uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
		return;
	}
	/* Who is at the other end: the kernel's word, not the client's. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		log_warn("client %u: SO_PEERCRED: %s", cl->id, strerror(errno));
		cl->closing = 1;
		uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
		return;
	}
	cl->uid = cred.uid;
	cl->gid = cred.gid;
	cl->pid = cred.pid;
	snprintf(exe_link, sizeof(exe_link), "/proc/%ld/exe", (long)cred.pid);
	el = readlink(exe_link, exe, sizeof(exe) - 1);
	if (el < 0)
		el = snprintf(exe, sizeof(exe), "?");
	exe[el] = '\0';
	/* A file name may hold a newline: it must not forge a log line or a journal field. */
	for (ssize_t i = 0; i < el; i++)
		if ((unsigned char)exe[i] < 0x20 || exe[i] == 0x7f)
			exe[i] = '?';
	log_info("client %u connected: uid %ld gid %ld pid %ld exe %s", cl->id, (long)cred.uid,
		 (long)cred.gid, (long)cred.pid, exe);

	if (srv->stopping) {
		refuse(cl, "the daemon is shutting down");
		return;
	}
	if (srv->n_clients >= srv->cfg->max_clients) {
		snprintf(why, sizeof(why), "too many clients (at most %d)", srv->cfg->max_clients);
		refuse(cl, why);
		return;
	}
	if (count_uid(srv, cred.uid) >= srv->cfg->max_clients_per_uid) {
		snprintf(why, sizeof(why), "too many connections for uid %ld (at most %d)",
			 (long)cred.uid, srv->cfg->max_clients_per_uid);
		refuse(cl, why);
		return;
	}
	peer = (struct rpc_peer){ .id = cl->id, .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
	/* For the audit trail: the executable at connect time ("" when /proc could not say). */
	if ((exe[0] != '?' || exe[1] != '\0') && (size_t)el < sizeof(peer.exe))
		memcpy(peer.exe, exe, (size_t)el + 1);
	cl->rc = rpc_client_new(srv->rpc, &client_ops, cl, &peer);
	if (!cl->rc) {
		refuse(cl, "out of memory");
		return;
	}
	uv_timer_init(srv->loop, &cl->timer);
	cl->timer.data = cl;
	cl->open_handles = 2;
	cl->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = cl;
	srv->clients = cl;
	srv->n_clients++;
	uv_timer_start(&cl->timer, on_timer, (uint64_t)srv->cfg->idle_timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0) {
		client_close(cl, "cannot read");
		return;
	}
	cl->reading = 1;
}

/* ---- the listening socket --------------------------------------------------------------- */

/* Creates the parent directory when it is missing (one level; /run/sscard on a fresh boot). */
static int ensure_parent(const char *path)
{
	char dir[CONFIG_PATH_MAX];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : SSC_EIO;
	if (errno != ENOENT || mkdir(dir, 0755) != 0) {
		log_error("socket directory %s: %s", dir, strerror(errno));
		return errno == EACCES ? SSC_EPERM : SSC_EIO;
	}
	log_info("created the socket directory %s", dir);
	return 0;
}

/*
 * Checks one directory on the way to the socket (dir, as the path names it; resolved by stat).
 * last: it is the socket's own directory. Returns 0 or SSC_EPERM (logged with the fix).
 */
static int dir_safe(const char *dir, int last)
{
	struct stat st;
	uid_t me = geteuid();

	if (stat(dir, &st) != 0) {
		log_error("socket directory %s: %s", dir, strerror(errno));
		return SSC_EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != me) {
		log_error("socket directory %s belongs to uid %ld: that user could replace the socket "
			  "and read what clients send (PINs). Use a directory that only root or the "
			  "daemon's uid %ld can write, such as /run/sscard", dir, (long)st.st_uid,
			  (long)me);
		return SSC_EPERM;
	}
	/*
	 * A sticky directory (/tmp) keeps others from renaming what we own in it: an ancestor may be
	 * one. The socket's own directory may not: once the daemon stops and removes its socket,
	 * anyone could put theirs at the same path.
	 */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(st.st_mode & S_ISVTX))) {
		log_error("socket directory %s is writable by %s (mode %04o): %s. Use a directory "
			  "that only root or the daemon's uid %ld can write, such as /run/sscard",
			  dir, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
			  (unsigned)(st.st_mode & 07777), last && (st.st_mode & S_ISVTX) ?
			  "another user could put a socket of their own at this path once the daemon "
			  "stops, and read what clients send (PINs)" : "another user could replace "
			  "the socket and read what clients send (PINs)", (long)me);
		return SSC_EPERM;
	}
	return 0;
}

/* Checks every directory from / down to dir (an absolute path). */
static int chain_safe(const char *dir)
{
	char p[CONFIG_PATH_MAX];
	size_t n = strlen(dir);
	int rc;

	if (n == 0 || n >= sizeof(p) || dir[0] != '/')
		return SSC_EPERM;
	rc = dir_safe("/", n == 1);
	for (size_t i = 1; rc == 0 && i <= n; i++) {
		if (i < n && dir[i] != '/')
			continue;
		if (dir[i - 1] == '/')
			continue;   /* "//" */
		memcpy(p, dir, i);
		p[i] = '\0';
		rc = dir_safe(p, i == n);
	}
	return rc;
}

/*
 * In the spirit of OpenSSH's StrictModes: whoever can write the socket's directory can replace
 * the socket with their own and read what clients send, PINs included. Every directory from / to
 * the socket's, both as the path names them and as they resolve (a symbolic link on the way), must
 * belong to root or to the daemon's uid and be writable by nobody else; an ancestor may be a
 * sticky directory such as /tmp, the socket's own directory may not.
 */
static int check_socket_dir(const char *path)
{
	char dir[CONFIG_PATH_MAX], real[PATH_MAX];
	char *slash;
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return SSC_EPERM;
	if (slash == dir)
		slash[1] = '\0';   /* a socket in / */
	else
		*slash = '\0';
	rc = chain_safe(dir);
	if (rc != 0)
		return rc;
	if (!realpath(dir, real)) {
		log_error("socket directory %s: %s", dir, strerror(errno));
		return SSC_EPERM;
	}
	return strcmp(real, dir) == 0 ? 0 : chain_safe(real);
}

/*
 * Makes room for the socket: nothing there is fine; a socket that nobody answers is a stale
 * one from a crash and is removed; a socket that answers belongs to a running daemon, and any
 * other kind of file is not ours to delete.
 */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, e;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : SSC_EIO;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket: not replacing it", path);
		return SSC_EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return SSC_EIO;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
		log_error("%s: another daemon answers on this socket", path);
		return SSC_EEXIST;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		log_error("%s: cannot tell whether the socket is in use: %s", path, strerror(e));
		return SSC_EIO;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		log_error("%s: cannot remove the stale socket: %s", path, strerror(errno));
		return errno == EACCES || errno == EPERM ? SSC_EPERM : SSC_EIO;
	}
	log_info("removed a stale socket file %s", path);
	return 0;
}

static void set_group(const char *path, const char *group)
{
	struct group gr, *res = NULL;
	char buf[4096];
	int r;

	if (!group[0])
		return;
	r = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
	if (r != 0 || !res) {
		log_warn("group \"%s\" does not exist: the socket keeps its group (create the group "
			 "and add the client users to it)", group);
		return;
	}
	if (chown(path, (uid_t)-1, res->gr_gid) != 0)
		log_warn("cannot give %s to group %s: %s", path, group, strerror(errno));
}

static void on_failed_listener_closed(uv_handle_t *h)
{
	free(h->data);
}

static int open_listener(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	struct sockaddr_un sa;
	struct stat st;
	int fd, rc, r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long (at most %zu bytes): %s", sizeof(sa.sun_path) - 1,
			  cfg->socket_path);
		return SSC_ECONFIG;
	}
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
	snprintf(srv->path, sizeof(srv->path), "%s", cfg->socket_path);
	rc = ensure_parent(srv->path);
	if (rc == 0)
		rc = check_socket_dir(srv->path);
	if (rc == 0)
		rc = clear_stale(srv->path, &sa);
	if (rc != 0)
		return rc;
	/* Our own socket(), so that libuv does not own (and unlink) the path. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return SSC_EIO;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = errno == EACCES ? SSC_EPERM : errno == EADDRINUSE ? SSC_EEXIST : SSC_EIO;
		log_error("bind %s: %s", srv->path, strerror(errno));
		goto out_close;
	}
	/* Mode and group before listen(): until then every connect is refused. */
	if (chmod(srv->path, cfg->socket_mode) != 0) {
		rc = SSC_EIO;
		log_error("chmod %s: %s", srv->path, strerror(errno));
		goto out_unlink;
	}
	set_group(srv->path, cfg->socket_group);
	if (lstat(srv->path, &st) != 0) {
		rc = SSC_EIO;
		goto out_unlink;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		rc = SSC_EIO;
		log_error("listen %s: %s", srv->path, strerror(errno));
		goto out_unlink;
	}
	uv_pipe_init(srv->loop, &srv->listener, 0);
	srv->listener.data = srv;
	srv->listener_open = 1;
	r = uv_pipe_open(&srv->listener, fd);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
	if (r != 0) {
		log_error("listen %s: %s", srv->path, uv_strerror(r));
		unlink(srv->path);
		/* The handle owns fd now; srv is freed when the loop has closed it. */
		uv_close((uv_handle_t *)&srv->listener, on_failed_listener_closed);
		return SSC_EIO;
	}
	log_info("listening on %s (mode %04o, group %s)", srv->path, cfg->socket_mode,
		 cfg->socket_group[0] ? cfg->socket_group : "unchanged");
	return 0;
out_unlink:
	unlink(srv->path);
out_close:
	close(fd);
	return rc;
}

int server_new(uv_loop_t *loop, const struct config *cfg, struct rpc *rpc, struct server **out)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int rc;

	if (!srv)
		return SSC_ENOMEM;
	srv->loop = loop;
	srv->cfg = cfg;
	srv->rpc = rpc;
	srv->readbuf = mmap(NULL, READ_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	if (srv->readbuf == MAP_FAILED) {
		free(srv);
		return SSC_ENOMEM;
	}
	if (mlock(srv->readbuf, READ_CHUNK) != 0)
		log_debug("the socket read buffer cannot be locked in memory: %s", strerror(errno));
	rc = open_listener(srv);
	if (rc != 0) {
		/* open_listener() leaves no handle behind, except a listener being closed. */
		munmap(srv->readbuf, READ_CHUNK);
		srv->readbuf = NULL;
		if (!srv->listener_open)
			free(srv);
		return rc;
	}
	uv_timer_init(loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	srv->timer_open = 1;
	*out = srv;
	return 0;
}

/* ---- stopping --------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	srv->listener_open = 0;
}

static void on_drain_timer_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	srv->timer_open = 0;
}

static void on_drain_deadline(uv_timer_t *t)
{
	struct server *srv = t->data;

	while (srv->clients)
		client_close(srv->clients, "the daemon is shutting down");
	maybe_finish_stop(srv);
}

void server_stop(struct server *srv)
{
	struct stat st;

	if (!srv || srv->stopping)
		return;
	srv->stopping = 1;
	if (srv->listener_open && !uv_is_closing((uv_handle_t *)&srv->listener)) {
		uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
		/* Remove the path only if it is still the socket we made. */
		if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
			unlink(srv->path);
	}
	for (struct client *cl = srv->clients, *next; cl; cl = next) {
		next = cl->next;
		start_drain(cl, "the daemon is shutting down");
	}
	if (srv->timer_open) {
		if (srv->n_clients > 0)
			uv_timer_start(&srv->drain_timer, on_drain_deadline, SERVER_DRAIN_MS, 0);
		else
			maybe_finish_stop(srv);
	}
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	if (srv->listener_open || srv->timer_open || srv->clients) {
		/* Freeing now would leave libuv with dangling handles: leak instead, loudly. */
		log_error("server_free: handles still open (call server_stop and run the loop)");
		return;
	}
	munmap(srv->readbuf, READ_CHUNK);
	free(srv);
}

int server_client_count(const struct server *srv)
{
	return srv->n_clients;
}
