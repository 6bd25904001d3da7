/*
 * This file contains the API's Unix-socket server (src/server.h): accepting clients in bounded
 * batches with their peer credentials and the connection limits (refusals answered, even when out
 * of file descriptors), the connection lines of the log within their budget (src/connlog.h);
 * newline framing with the request-size cap; the idle timer; write back-pressure; and the orderly
 * close. It hands complete lines to src/rpc.c. The socket file is src/listener.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connlog.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "sscard/error.h"

/*
 * The loop's one read buffer, shared by every client and locked in memory (a PIN passes through
 * it). A request longer than one chunk is put together across reads (line_append), so 16 KiB
 * serve every request of the API in one or a few reads, and hold 48 KiB less than 64 did.
 */
#define READ_CHUNK (16 * 1024)
#define LINE_KEEP (16 * 1024)   /* a line buffer larger than this is freed when empty */
/*
 * Connections accepted per turn of the loop: then the clients' reads and replies have their turn
 * before the next batch, so that a flood of connections cannot starve them, and the clients a
 * flood has closed are seen closed (and uncounted) before many more are taken in.
 */
#define ACCEPT_BATCH 32
#define ACCEPT_PAUSE_MS 100     /* after an accept() failure that would repeat at once */
#define REAP_CHUNK 256          /* clients polled at once by reap_closed() */

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
	int logged;                 /* its "connected" line was logged: its "closed" line is too */
	int open_handles;
};

struct server {
	uv_loop_t *loop;
	const struct config *cfg;
	struct rpc *rpc;
	struct listener_file lf;
	int listen_fd;               /* -1 once closed */
	uv_poll_t lpoll;             /* the listening socket: readable = connections to accept */
	uv_timer_t pause_timer;      /* accepting paused after a failure (ACCEPT_PAUSE_MS) */
	uv_timer_t clog_timer;       /* the connection summary line is due */
	uv_timer_t drain_timer;
	int own_handles;             /* lpoll, pause_timer, clog_timer not yet closed */
	int timer_open;              /* drain_timer not yet closed */
	int accepting;               /* lpoll is started */
	/*
	 * Given up when out of file descriptors, to accept one connection, answer it "too many
	 * clients" and close it, then taken back: without it the connection would stay in the
	 * backlog (and the loop would spin on it), or be closed unanswered. -1 = not held.
	 */
	int reserve_fd;
	struct connlog clog;
	int stopping;
	struct client *clients;
	int n_clients;
	unsigned long admitted;          /* clients taken in so far */
	unsigned long admitted_at_reap;  /* that count at the last reap_closed() */
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
	if (cl->logged)
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

	if (cl->logged)
		log_warn("client %u: request longer than %zu bytes: answering and closing", cl->id,
			 max);
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

static int64_t now_ms(const struct server *srv)
{
	return (int64_t)uv_now(srv->loop);
}

static void on_clog_timer(uv_timer_t *t)
{
	connlog_flush(&((struct server *)t->data)->clog);
}

/* Whether a new connection is logged one by one (1), or counted for the summary line (0). */
static int conn_log_take(struct server *srv, uid_t uid, enum conn_refusal refusal)
{
	int64_t due;

	if (connlog_take(&srv->clog, now_ms(srv), uid, refusal))
		return 1;
	due = connlog_due(&srv->clog);
	if (due >= 0 && !uv_is_active((uv_handle_t *)&srv->clog_timer) && !srv->stopping)
		uv_timer_start(&srv->clog_timer, on_clog_timer,
			       (uint64_t)(due > now_ms(srv) ? due - now_ms(srv) : 0), 0);
	return 0;
}

/* The executable of pid as the log and the audit rows show it ("?" when /proc cannot say). */
static size_t peer_exe(pid_t pid, char *exe, size_t cap)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
	n = readlink(link, exe, cap - 1);
	if (n < 0)
		n = snprintf(exe, cap, "?");
	exe[n] = '\0';
	/* A file name may hold a newline: it must not forge a log line or a journal field. */
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)exe[i] < 0x20 || exe[i] == 0x7f)
			exe[i] = '?';
	return (size_t)n;
}

/*
 * Answers a connection we will not serve (fd, not yet a client) with one error line, best
 * effort and without blocking, and closes it. It costs no memory, and its log line counts against
 * the connection budget like any connection's.
 */
static void refuse_fd(struct server *srv, int fd, const struct ucred *cred,
		      enum conn_refusal refusal, const char *why)
{
	char buf[320], exe[PATH_MAX];
	unsigned id = ++srv->next_id;
	int n;

	metrics_refusal(refusal);
	if (conn_log_take(srv, cred->uid, refusal)) {
		peer_exe(cred->pid, exe, sizeof(exe));
		log_warn("client %u refused: uid %ld gid %ld pid %ld exe %s: %s", id,
			 (long)cred->uid, (long)cred->gid, (long)cred->pid, exe, why);
	}
	n = rpc_format_error(buf, sizeof(buf) - 1, rpc_error_code(SSC_ELIMIT), SSC_ELIMIT, why);
	if (n > 0) {
		buf[n++] = '\n';
		(void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(fd);
}

/* Answers a client already set up (its pipe open, not yet on the list), then closes it. */
static void refuse_client(struct client *cl, const char *why)
{
	char buf[320];
	int n;

	if (cl->logged)
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

/*
 * Counts connections as they close. A client that has hung up stays on the list until the loop
 * reads its end; under a flood of connect/close that takes long enough for the dead ones to fill
 * the limits and lock out live clients of the same uid. So before a connection is refused for a
 * limit, every client whose peer has closed its socket entirely (POLLHUP; a half-closed one still
 * waits for its replies) and that has nothing in flight is closed now: one poll() per
 * REAP_CHUNK clients (all of them, or those of uid), without waiting. The caller runs it again
 * only after new clients came in (admitted_at_reap).
 */
static void reap_closed(struct server *srv, int all, uid_t uid)
{
	struct pollfd pf[REAP_CHUNK];
	struct client *who[REAP_CHUNK];
	struct client *c = srv->clients;

	srv->admitted_at_reap = srv->admitted;
	while (c) {
		int n = 0;

		for (; c && n < REAP_CHUNK; c = c->next) {
			uv_os_fd_t fd;

			if ((!all && c->uid != uid) || c->closing || rpc_client_inflight(c->rc) > 0 ||
			    uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
				continue;
			pf[n] = (struct pollfd){ .fd = fd, .events = 0 };
			who[n++] = c;
		}
		/* c is past the chunk and stays on the list: only clients of the chunk are closed. */
		if (n == 0 || poll(pf, (nfds_t)n, 0) <= 0)
			continue;
		for (int i = 0; i < n; i++)
			if (pf[i].revents & (POLLHUP | POLLERR | POLLNVAL))
				client_close(who[i], "the peer closed the connection");
	}
}

/*
 * Takes in one accepted connection (fd, non-blocking, close-on-exec): its peer's credentials,
 * the limits, then a client.
 */
static void admit(struct server *srv, int fd)
{
	const struct config *cfg = srv->cfg;
	struct client *cl;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct rpc_peer peer;
	char exe[PATH_MAX], why[128];
	size_t el;

	/* Who is at the other end: the kernel's word, not the client's. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		if (conn_log_take(srv, (uid_t)-1, CONN_REFUSED_OTHER))
			log_warn("a connection without peer credentials (SO_PEERCRED: %s): closed",
				 strerror(errno));
		close(fd);
		return;
	}
	if (srv->stopping) {
		refuse_fd(srv, fd, &cred, CONN_REFUSED_SHUTDOWN, "the daemon is shutting down");
		return;
	}
	if (srv->n_clients >= cfg->max_clients && srv->admitted != srv->admitted_at_reap)
		reap_closed(srv, 1, 0);
	else if (count_uid(srv, cred.uid) >= cfg->max_clients_per_uid &&
		 srv->admitted != srv->admitted_at_reap)
		reap_closed(srv, 0, cred.uid);
	if (srv->n_clients >= cfg->max_clients) {
		snprintf(why, sizeof(why), "too many clients (at most %d)", cfg->max_clients);
		refuse_fd(srv, fd, &cred, CONN_REFUSED_TOTAL, why);
		return;
	}
	if (count_uid(srv, cred.uid) >= cfg->max_clients_per_uid) {
		snprintf(why, sizeof(why), "too many connections for uid %ld (at most %d)",
			 (long)cred.uid, cfg->max_clients_per_uid);
		refuse_fd(srv, fd, &cred, CONN_REFUSED_UID, why);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		refuse_fd(srv, fd, &cred, CONN_REFUSED_OTHER, "out of memory");
		return;
	}
	cl->srv = srv;
	cl->id = ++srv->next_id;
	cl->uid = cred.uid;
	cl->gid = cred.gid;
	cl->pid = cred.pid;
	uv_pipe_init(srv->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	cl->open_handles = 1;
	if (uv_pipe_open(&cl->pipe, fd) != 0) {
		/* The handle did not take fd. */
		close(fd);
		cl->closing = 1;
		uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
		return;
	}
	el = peer_exe(cred.pid, exe, sizeof(exe));
	cl->logged = conn_log_take(srv, cred.uid, CONN_SERVED);
	if (cl->logged)
		log_info("client %u connected: uid %ld gid %ld pid %ld exe %s", cl->id,
			 (long)cred.uid, (long)cred.gid, (long)cred.pid, exe);
	peer = (struct rpc_peer){ .id = cl->id, .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
	{
		/* The supplementary groups, the kernel's word too: [web] admin_group (rpc_web.c). */
		socklen_t gl = sizeof(peer.groups);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer.groups, &gl) == 0)
			peer.n_groups = (int)(gl / sizeof(gid_t));
	}
	/* For the audit trail: the executable at connect time ("" when /proc could not say). */
	if ((exe[0] != '?' || exe[1] != '\0') && el < sizeof(peer.exe))
		memcpy(peer.exe, exe, el + 1);
	cl->rc = rpc_client_new(srv->rpc, &client_ops, cl, &peer);
	if (!cl->rc) {
		refuse_client(cl, "out of memory");
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
	srv->admitted++;
	uv_timer_start(&cl->timer, on_timer, (uint64_t)cfg->idle_timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0) {
		client_close(cl, "cannot read");
		return;
	}
	cl->reading = 1;
}

/*
 * Out of file descriptors (EMFILE, ENFILE): gives up the reserve descriptor to accept one
 * connection, answers it "too many clients" and closes it, then takes the reserve back. Returns
 * 0 when a connection was answered so; -1 when there was none to accept or no reserve to give
 * (errno set).
 */
static int refuse_out_of_fds(struct server *srv)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t clen = sizeof(cred);
	struct rlimit rl;
	char why[160];
	int fd, e;

	if (srv->reserve_fd < 0) {
		errno = EMFILE;
		return -1;
	}
	close(srv->reserve_fd);
	fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	e = errno;
	if (fd >= 0) {
		(void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			snprintf(why, sizeof(why), "too many clients (the daemon has no file "
				 "descriptor left: its limit is %llu)",
				 (unsigned long long)rl.rlim_cur);
		else
			snprintf(why, sizeof(why), "too many clients (the daemon has no file "
				 "descriptor left)");
		refuse_fd(srv, fd, &cred, CONN_REFUSED_FDS, why);
	}
	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static void on_listen(uv_poll_t *p, int status, int events);

static void on_pause_end(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (srv->stopping || srv->accepting || srv->listen_fd < 0)
		return;
	if (srv->reserve_fd < 0)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (uv_poll_start(&srv->lpoll, UV_READABLE, on_listen) == 0)
		srv->accepting = 1;
	else
		uv_timer_start(&srv->pause_timer, on_pause_end, ACCEPT_PAUSE_MS, 0);
}

/*
 * accept() failed in a way that the next call would repeat at once (no descriptor and no reserve,
 * no memory, an unexpected error): the connections wait in the backlog for ACCEPT_PAUSE_MS
 * instead of the loop spinning on them.
 */
static void accept_pause(struct server *srv, int err)
{
	if (conn_log_take(srv, (uid_t)-1, err == EMFILE || err == ENFILE ? CONN_REFUSED_FDS :
			  CONN_REFUSED_OTHER))
		log_warn("accept: %s: new connections wait %d ms", strerror(err), ACCEPT_PAUSE_MS);
	uv_poll_stop(&srv->lpoll);
	srv->accepting = 0;
	uv_timer_start(&srv->pause_timer, on_pause_end, ACCEPT_PAUSE_MS, 0);
}

/* The listening socket is readable: accept a batch (ACCEPT_BATCH), the rest on the next turn. */
static void on_listen(uv_poll_t *p, int status, int events)
{
	struct server *srv = p->data;

	(void)events;
	if (status < 0) {
		accept_pause(srv, -status);
		return;
	}
	for (int i = 0; i < ACCEPT_BATCH && srv->accepting && !srv->stopping; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd >= 0) {
			admit(srv, fd);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if ((errno == EMFILE || errno == ENFILE) && refuse_out_of_fds(srv) == 0)
			continue;
		/* refuse_out_of_fds() found the backlog empty: nothing more to do. */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		accept_pause(srv, errno);
		return;
	}
}

static void on_failed_poll_closed(uv_handle_t *h)
{
	free(h->data);
}

int server_new(uv_loop_t *loop, const struct config *cfg, struct rpc *rpc, struct server **out)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int fd, r;

	if (!srv)
		return SSC_ENOMEM;
	srv->loop = loop;
	srv->cfg = cfg;
	srv->rpc = rpc;
	srv->listen_fd = -1;
	srv->reserve_fd = -1;
	connlog_init(&srv->clog, CONNLOG_MAX, CONNLOG_WINDOW_MS);
	srv->readbuf = mmap(NULL, READ_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	if (srv->readbuf == MAP_FAILED) {
		free(srv);
		return SSC_ENOMEM;
	}
	if (mlock(srv->readbuf, READ_CHUNK) != 0)
		log_debug("the socket read buffer cannot be locked in memory: %s", strerror(errno));
	fd = listener_open(cfg, &srv->lf);
	if (fd < 0) {
		munmap(srv->readbuf, READ_CHUNK);
		free(srv);
		return fd;
	}
	r = uv_poll_init(loop, &srv->lpoll, fd);
	if (r == 0) {
		srv->lpoll.data = srv;
		srv->own_handles++;
		r = uv_poll_start(&srv->lpoll, UV_READABLE, on_listen);
	}
	if (r != 0) {
		log_error("listen %s: %s", srv->lf.path, uv_strerror(r));
		listener_remove(&srv->lf);
		close(fd);
		munmap(srv->readbuf, READ_CHUNK);
		if (srv->own_handles) {
			/* srv is freed when the loop has closed the handle. */
			uv_close((uv_handle_t *)&srv->lpoll, on_failed_poll_closed);
			return SSC_EIO;
		}
		free(srv);
		return SSC_EIO;
	}
	srv->listen_fd = fd;
	srv->accepting = 1;
	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	uv_timer_init(loop, &srv->pause_timer);
	uv_timer_init(loop, &srv->clog_timer);
	uv_timer_init(loop, &srv->drain_timer);
	srv->pause_timer.data = srv->clog_timer.data = srv->drain_timer.data = srv;
	srv->own_handles += 2;
	srv->timer_open = 1;
	*out = srv;
	return 0;
}

/* ---- stopping --------------------------------------------------------------------------- */

static void on_own_handle_closed(uv_handle_t *h)
{
	struct server *srv = h->data;

	srv->own_handles--;
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
	if (!srv || srv->stopping)
		return;
	srv->stopping = 1;
	if (srv->listen_fd >= 0) {
		/* uv_close() stops watching fd at once: then it may be closed. */
		uv_close((uv_handle_t *)&srv->lpoll, on_own_handle_closed);
		close(srv->listen_fd);
		srv->listen_fd = -1;
		srv->accepting = 0;
		/* Remove the path only if it is still the socket we made. */
		listener_remove(&srv->lf);
		uv_close((uv_handle_t *)&srv->pause_timer, on_own_handle_closed);
		uv_close((uv_handle_t *)&srv->clog_timer, on_own_handle_closed);
	}
	if (srv->reserve_fd >= 0) {
		close(srv->reserve_fd);
		srv->reserve_fd = -1;
	}
	/* The connections not logged one by one, up to now. */
	connlog_flush(&srv->clog);
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
	if (srv->own_handles || srv->timer_open || srv->clients) {
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
