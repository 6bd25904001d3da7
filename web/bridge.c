/*
 * This file contains the browser bridge's server (web/bridge.h) on libwebsockets' own event loop:
 * the handshake checks, one page's state (its calls in flight, its answers not yet sent), the
 * page's link to the daemon (a Unix socket adopted by libwebsockets as a raw socket, newline-
 * delimited JSON-RPC as on the socket), and a one-second tick for deadlines. One thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "bridge.h"
#include "log.h"
#include "sscard/error.h"

#define MAX_PEND 64                   /* webcfg's max_pending is at most this */
#define MAX_DAEMON_LINE (1024 * 1024) /* the longest answer line taken from the daemon */
#define MAX_DAEMON_OUT (2 * 1024 * 1024) /* requests not yet taken by the daemon's socket */
#define MAX_FAILURES 3                /* refused calls before pairing, then the page is closed */
#define CLOSE_GRACE_S 3               /* a closing page that does not take its close frame */
#define STALL_MS 10000                /* answers waiting this long with none taken: closed */
#define DEFAULT_SOCKET "/run/sscard/sscardd.sock"

/* A call of the page's on its way to the daemon and back. */
struct pend {
	uint64_t id;                  /* ours, on the daemon's connection; 0 = free slot */
	json_t *page_id;              /* the page's id (owned); NULL = a notification */
	int64_t deadline_ms;
	int kind;                     /* PEND_CALL, PEND_PAIR (bridge.pair / bridge.hello), PEND_BIND */
};

enum { PEND_CALL = 0, PEND_PAIR, PEND_BIND };

/* A message queued for the page, with libwebsockets' headroom before it. */
struct outmsg {
	struct outmsg *next;
	size_t len;
	unsigned char buf[];          /* LWS_PRE bytes, then len bytes */
};

/* One WebSocket connection (libwebsockets' per-session data, zeroed at the handshake). */
struct page {
	struct bridge *b;
	struct lws *wsi;
	struct page *prev, *next;     /* the bridge's list of established pages */
	int origin_idx;               /* into cfg->origins */
	unsigned id;                  /* for logs */
	int established, paired, failures, closing;
	int close_code;
	char close_reason[100];
	int64_t hello_deadline_ms;
	/* The frame being received. */
	char *rx;
	size_t rx_len;
	/* Answers for the page. */
	struct outmsg *out_head, *out_tail;
	size_t out_bytes;
	int64_t out_progress_ms;      /* when the queue last became non-empty or a message left */
	/* The daemon's side. */
	struct lws *dwsi;
	char *dq;                     /* requests for the daemon */
	size_t dq_len, dq_off;
	char *drx;                    /* a partial line from the daemon */
	size_t drx_len;
	struct pend pend[MAX_PEND];
	int n_pend;
	uint64_t next_id;
};

struct bridge {
	const struct webcfg *cfg;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct lws_http_mount mount;
	struct lws_protocol_vhost_options hdr[4];
	char csp[256];
	struct page *pages;
	int n_pages;
	int per_origin[WEBCFG_MAX_ORIGINS];
	unsigned next_page_id;
	lws_sorted_usec_list_t tick;
	atomic_int stop;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *origin_name(const struct page *p)
{
	return p->b->cfg->origins[p->origin_idx].origin;
}

/* ---- sending to the page ------------------------------------------------------------------ */

static void page_close(struct page *p, int code, const char *reason);

/* Queues text for the page; closes the page when it has left too much unread. */
static void page_send_text(struct page *p, const char *text, size_t len)
{
	struct outmsg *m;

	if (p->closing || !p->wsi)
		return;
	if (p->out_bytes + len > p->b->cfg->max_queued_bytes) {
		log_warn("page %u (%s): %zu bytes of answers unread: closed (a page must read what "
			 "it asked for)", p->id, origin_name(p), p->out_bytes + len);
		page_close(p, LWS_CLOSE_STATUS_POLICY_VIOLATION, "answers not read");
		return;
	}
	m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m) {
		page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->buf + LWS_PRE, text, len);
	if (p->out_tail) {
		p->out_tail->next = m;
	} else {
		p->out_head = m;
		p->out_progress_ms = now_ms();
	}
	p->out_tail = m;
	p->out_bytes += len;
	lws_callback_on_writable(p->wsi);
}

static void page_send_json(struct page *p, json_t *msg)
{
	char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

	json_decref(msg);
	if (!s) {
		page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	page_send_text(p, s, strlen(s));
	free(s);
}

/* An error answered by the bridge itself, in the daemon's form (docs/api.md, Errors). */
static void page_error(struct page *p, json_t *id, int code, int err, const char *message)
{
	json_t *data = NULL, *e;

	if (!id)
		return;   /* a notification gets no answer */
	if (err) {
		int std = ssc_std_code(err, 0);

		data = json_pack("{s:s}", "name", ssc_strerror_name(err));
		if (data && std)
			json_object_set_new(data, "std_code", json_integer(std));
	}
	e = json_pack("{s:i, s:s}", "code", code, "message", message ? message : ssc_strerror(err));
	if (e && data)
		json_object_set_new(e, "data", data);
	else
		json_decref(data);
	page_send_json(p, json_pack("{s:s, s:O, s:o*}", "jsonrpc", "2.0", "id", id, "error", e));
}

static void out_free(struct page *p)
{
	struct outmsg *m = p->out_head, *n;

	for (; m; m = n) {
		n = m->next;
		free(m);
	}
	p->out_head = p->out_tail = NULL;
	p->out_bytes = 0;
}

/* ---- the daemon's side -------------------------------------------------------------------- */

/*
 * Closes the page's daemon connection. What is still queued for the daemon is dropped, wiped (a
 * request may hold a PIN, an answer personal data).
 */
static void daemon_drop(struct page *p)
{
	if (p->dwsi) {
		lws_set_opaque_user_data(p->dwsi, NULL);
		lws_set_timeout(p->dwsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		p->dwsi = NULL;
	}
	if (p->dq)
		explicit_bzero(p->dq, p->dq_len);
	free(p->dq);
	p->dq = NULL;
	p->dq_len = p->dq_off = 0;
	if (p->drx)
		explicit_bzero(p->drx, p->drx_len);
	free(p->drx);
	p->drx = NULL;
	p->drx_len = 0;
}

/* Queues one request line for the daemon. Returns 0 or -1 (the page is then being closed). */
static int daemon_send(struct page *p, json_t *req)
{
	char *s = json_dumps(req, JSON_COMPACT);
	size_t n;
	char *nq;

	if (!s) {
		page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return -1;
	}
	n = strlen(s);
	if (p->dq_len - p->dq_off + n + 1 > MAX_DAEMON_OUT) {
		free(s);
		page_close(p, (enum lws_close_status)1013, "the card service is not reading");
		return -1;
	}
	if (p->dq_off > 0) {
		memmove(p->dq, p->dq + p->dq_off, p->dq_len - p->dq_off);
		p->dq_len -= p->dq_off;
		p->dq_off = 0;
	}
	nq = realloc(p->dq, p->dq_len + n + 1);
	if (!nq) {
		free(s);
		page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return -1;
	}
	p->dq = nq;
	memcpy(p->dq + p->dq_len, s, n);
	p->dq[p->dq_len + n] = '\n';
	p->dq_len += n + 1;
	/* The request text may hold a PIN (card.verify_pin): wipe our copy. */
	explicit_bzero(s, n);
	free(s);
	if (p->dwsi)
		lws_callback_on_writable(p->dwsi);
	return 0;
}

static struct pend *pend_add(struct page *p, json_t *page_id, int kind)
{
	for (int i = 0; i < MAX_PEND; i++) {
		struct pend *q = &p->pend[i];

		if (q->id)
			continue;
		q->id = ++p->next_id;
		q->page_id = page_id ? json_incref(page_id) : NULL;
		q->deadline_ms = now_ms() + p->b->cfg->request_timeout_ms;
		q->kind = kind;
		p->n_pend++;
		return q;
	}
	return NULL;
}

static void pend_clear(struct page *p, struct pend *q)
{
	json_decref(q->page_id);
	memset(q, 0, sizeof(*q));
	p->n_pend--;
}

/* A refusal before pairing: the page is closed at the third. */
static void count_failure(struct page *p)
{
	if (p->paired)
		return;
	if (++p->failures >= MAX_FAILURES) {
		log_info("page %u (%s): %d calls refused before pairing: closed", p->id,
			 origin_name(p), p->failures);
		/* An unpaired page's queue holds only the bridge's own calls: the last refusal,
		 * for the daemon's audit, gets one try that does not wait. */
		if (p->dwsi && p->dq_off < p->dq_len)
			(void)!send(lws_get_socket_fd(p->dwsi), p->dq + p->dq_off,
				    p->dq_len - p->dq_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		page_close(p, LWS_CLOSE_STATUS_POLICY_VIOLATION, "not paired");
	}
}

/* One line from the daemon: an answer to one of ours, or a notification. */
static void daemon_line(struct page *p, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *msg = json_loadb(line, len, 0, &jerr), *jid;
	struct pend *q = NULL;

	if (!json_is_object(msg)) {
		json_decref(msg);
		log_warn("page %u: the daemon sent a line that is not a JSON object", p->id);
		return;
	}
	jid = json_object_get(msg, "id");
	if (!jid) {
		/* A notification (an event): only a paired page subscribes. */
		if (p->paired)
			page_send_json(p, msg);
		else
			json_decref(msg);
		return;
	}
	if (json_is_integer(jid))
		for (int i = 0; i < MAX_PEND; i++)
			if (p->pend[i].id && p->pend[i].id == (uint64_t)json_integer_value(jid))
				q = &p->pend[i];
	if (!q) {
		json_decref(msg);   /* an answer after its deadline, already answered */
		return;
	}
	if (q->kind == PEND_BIND) {
		if (json_object_get(msg, "error")) {
			const char *m = json_string_value(json_object_get(
				json_object_get(msg, "error"), "message"));

			log_error("the daemon refused the bridge for %s: %s (is [web] bridge_user "
				  "of sscardd this program's user?)", origin_name(p), m ? m : "?");
			page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				   "the card service refused the bridge");
		}
		pend_clear(p, q);
		json_decref(msg);
		return;
	}
	if (q->kind == PEND_PAIR) {
		if (json_object_get(msg, "result")) {
			p->paired = 1;
			p->failures = 0;
		} else {
			count_failure(p);
		}
	}
	if (q->page_id) {
		json_object_set(msg, "id", q->page_id);
		page_send_json(p, msg);
	} else {
		json_decref(msg);
	}
	pend_clear(p, q);
}

static int daemon_rx(struct page *p, const char *in, size_t len)
{
	size_t start = 0;
	char *nb;

	nb = realloc(p->drx, p->drx_len + len + 1);
	if (!nb)
		return -1;
	p->drx = nb;
	memcpy(p->drx + p->drx_len, in, len);
	p->drx_len += len;
	for (size_t i = 0; i < p->drx_len && !p->closing; i++) {
		if (p->drx[i] != '\n')
			continue;
		if (i > start)
			daemon_line(p, p->drx + start, i - start);
		start = i + 1;
	}
	if (p->closing || !p->drx)
		return 0;
	memmove(p->drx, p->drx + start, p->drx_len - start);
	p->drx_len -= start;
	if (p->drx_len > MAX_DAEMON_LINE)
		return -1;
	return 0;
}

static int daemon_writeable(struct page *p, struct lws *wsi)
{
	int fd = lws_get_socket_fd(wsi);
	ssize_t n;

	while (p->dq_off < p->dq_len) {
		n = send(fd, p->dq + p->dq_off, p->dq_len - p->dq_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		/* Sent text may hold a PIN: wipe it as it goes. */
		memset(p->dq + p->dq_off, 0, (size_t)n);
		p->dq_off += (size_t)n;
	}
	p->dq_off = p->dq_len = 0;
	return 0;
}

static int cb_daemon(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct page *p = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX:
		if (p && daemon_rx(p, in, len) < 0) {
			page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				   "bad answer from the card service");
			return 0;
		}
		return 0;
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (p && daemon_writeable(p, wsi) < 0) {
			page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				   "the card service closed the connection");
			return 0;
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE:
		if (p) {
			p->dwsi = NULL;
			log_info("page %u (%s): the daemon closed its connection", p->id,
				 origin_name(p));
			page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				   "the card service closed the connection");
		}
		return 0;
	default:
		return 0;
	}
}

/* Connects the page to the daemon and binds the connection to the page's origin. */
static int daemon_open(struct page *p)
{
	const char *path = p->b->cfg->socket_path[0] ? p->b->cfg->socket_path : DEFAULT_SOCKET;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	lws_adopt_desc_t ad;
	json_t *req;
	struct pend *q;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A Unix socket connects at once or fails at once (EAGAIN: the daemon's queue is full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		log_warn("page %u (%s): cannot connect to the daemon at %s: %s", p->id,
			 origin_name(p), path, strerror(errno));
		close(fd);
		return -1;
	}
	memset(&ad, 0, sizeof(ad));
	ad.vh = p->b->vh;
	ad.type = LWS_ADOPT_SOCKET;
	ad.fd.sockfd = fd;
	ad.vh_prot_name = "sscard-daemon";
	ad.opaque = p;
	p->dwsi = lws_adopt_descriptor_vhost_via_info(&ad);   /* closes fd on failure */
	if (!p->dwsi)
		return -1;
	q = pend_add(p, NULL, PEND_BIND);
	req = json_pack("{s:s, s:I, s:s, s:{s:s}}", "jsonrpc", "2.0", "id", (json_int_t)q->id,
			"method", "bridge.bind", "params", "origin", origin_name(p));
	if (!req || daemon_send(p, req) < 0) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	return 0;
}

/* ---- a page ------------------------------------------------------------------------------- */

/* Tells the daemon of a call the bridge refused itself, for its audit row (a notification). */
static void daemon_refused(struct page *p, json_t *method, int err)
{
	json_t *n;

	if (p->closing || !p->dwsi || json_string_length(method) > 64)
		return;
	n = json_pack("{s:s, s:s, s:{s:O, s:s}}", "jsonrpc", "2.0", "method", "bridge.refused",
		      "params", "method", method, "error", ssc_strerror_name(err));
	if (n)
		(void)daemon_send(p, n);
	json_decref(n);
}

static void page_close(struct page *p, int code, const char *reason)
{
	if (p->closing || !p->wsi)
		return;
	p->closing = 1;
	p->close_code = code;
	snprintf(p->close_reason, sizeof(p->close_reason), "%s", reason);
	daemon_drop(p);
	if (code == LWS_CLOSE_STATUS_POLICY_VIOLATION && strcmp(reason, "answers not read") == 0) {
		/* It does not read: it would not read a close frame either. */
		out_free(p);
		lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
		return;
	}
	lws_callback_on_writable(p->wsi);
	lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_REASON_BASE, CLOSE_GRACE_S);
}

/* One text message of the page's: check, then forward or refuse. */
static void page_message(struct page *p, const char *text, size_t len)
{
	const struct webcfg_origin *o = &p->b->cfg->origins[p->origin_idx];
	json_error_t jerr;
	json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *jid, *jm;
	const char *method;
	struct pend *q;
	int pairing;
	char msg[320], safe[49];

	if (!req) {
		json_t *null_id = json_null();

		page_error(p, null_id, -32700, 0, "parse error: one JSON-RPC object per message");
		json_decref(null_id);
		count_failure(p);
		return;
	}
	jid = json_object_get(req, "id");
	jm = json_object_get(req, "method");
	if (!json_is_object(req) || !json_is_string(jm) ||
	    (jid && !json_is_string(jid) && !json_is_integer(jid) && !json_is_null(jid))) {
		json_t *null_id = json_null();

		page_error(p, null_id, -32600, 0, "a message must be one JSON-RPC 2.0 request "
			   "object with a \"method\" (batches are not supported)");
		json_decref(null_id);
		json_decref(req);
		count_failure(p);
		return;
	}
	method = json_string_value(jm);
	pairing = strcmp(method, "bridge.pair") == 0 || strcmp(method, "bridge.hello") == 0;
	if (!pairing && !p->paired) {
		page_error(p, jid, 1000 - SSC_ENOTPAIRED, SSC_ENOTPAIRED,
			   "this page is not paired: its first call must be bridge.hello with its "
			   "token, or bridge.pair with a code from the operator");
		daemon_refused(p, jm, SSC_ENOTPAIRED);
		json_decref(req);
		count_failure(p);
		return;
	}
	if (!pairing && !webcfg_method_allowed(o, method)) {
		snprintf(msg, sizeof(msg), "%.60s may not call %.48s through the bridge "
			 "(its policy in the bridge's configuration)", o->origin, method);
		page_error(p, jid, 1000 - SSC_EPOLICY, SSC_EPOLICY, msg);
		log_info("page %u (%s): %s refused by the origin's policy", p->id, o->origin,
			 webcfg_log_text(method, safe, 49));
		daemon_refused(p, jm, SSC_EPOLICY);
		json_decref(req);
		return;
	}
	if (p->n_pend >= p->b->cfg->max_pending) {
		snprintf(msg, sizeof(msg), "too many requests in flight on this page (at most %d)",
			 p->b->cfg->max_pending);
		page_error(p, jid, 1000 - SSC_ELIMIT, SSC_ELIMIT, msg);
		json_decref(req);
		return;
	}
	q = pend_add(p, jid, pairing ? PEND_PAIR : PEND_CALL);
	/* Our own id on the daemon's connection: the page's ids may be anything, even repeated. */
	json_object_set_new(req, "id", json_integer((json_int_t)q->id));
	(void)daemon_send(p, req);
	json_decref(req);
}

static int page_receive(struct page *p, const void *in, size_t len)
{
	struct lws *wsi = p->wsi;
	char *nb;

	if (p->closing)
		return 0;
	if (lws_frame_is_binary(wsi)) {
		page_close(p, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text frames only");
		return 0;
	}
	if (p->rx_len + len > p->b->cfg->max_message_bytes ||
	    (lws_is_first_fragment(wsi) &&
	     lws_remaining_packet_payload(wsi) + len > p->b->cfg->max_message_bytes)) {
		log_info("page %u (%s): a message over %zu bytes: closed", p->id, origin_name(p),
			 p->b->cfg->max_message_bytes);
		if (p->rx)
			explicit_bzero(p->rx, p->rx_len);
		free(p->rx);
		p->rx = NULL;
		p->rx_len = 0;
		page_close(p, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
		return 0;
	}
	nb = realloc(p->rx, p->rx_len + len + 1);
	if (!nb)
		return -1;
	p->rx = nb;
	memcpy(p->rx + p->rx_len, in, len);
	p->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
		return 0;
	page_message(p, p->rx, p->rx_len);
	/* The message may hold a PIN. */
	if (p->rx)
		explicit_bzero(p->rx, p->rx_len);
	free(p->rx);
	p->rx = NULL;
	p->rx_len = 0;
	return 0;
}

static int page_writeable(struct page *p)
{
	struct outmsg *m = p->out_head;

	if (p->closing && !m) {
		lws_close_reason(p->wsi, (enum lws_close_status)p->close_code,
				 (unsigned char *)p->close_reason, strlen(p->close_reason));
		return -1;
	}
	if (!m)
		return 0;
	if (lws_write(p->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
		return -1;
	p->out_head = m->next;
	if (!p->out_head)
		p->out_tail = NULL;
	p->out_bytes -= m->len;
	p->out_progress_ms = now_ms();
	free(m);
	if (p->out_head || p->closing)
		lws_callback_on_writable(p->wsi);
	return 0;
}

static void page_gone(struct page *p)
{
	struct bridge *b = p->b;

	if (!p->established)
		return;
	daemon_drop(p);
	out_free(p);
	for (int i = 0; i < MAX_PEND; i++)
		if (p->pend[i].id)
			pend_clear(p, &p->pend[i]);
	if (p->rx)
		explicit_bzero(p->rx, p->rx_len);
	free(p->rx);
	p->rx = NULL;
	if (p->prev)
		p->prev->next = p->next;
	else
		b->pages = p->next;
	if (p->next)
		p->next->prev = p->prev;
	b->n_pages--;
	b->per_origin[p->origin_idx]--;
	p->established = 0;
	p->wsi = NULL;
	log_debug("page %u (%s) gone", p->id, origin_name(p));
}

/* ---- the handshake ------------------------------------------------------------------------ */

/* A header's value, "" when absent or too long. */
static void header(struct lws *wsi, enum lws_token_indexes t, char *buf, int cap)
{
	buf[0] = '\0';
	if (lws_hdr_total_length(wsi, t) >= cap || lws_hdr_copy(wsi, buf, cap, t) < 0)
		buf[0] = '\0';
}

/* Refuses a request with an HTTP status before anything else is said (libwebsockets 4.1 does
 * not send one itself when the filter refuses). Returns what the callback returns. */
static int refuse(struct lws *wsi, unsigned status, const char *what)
{
	lws_return_http_status(wsi, status, what);
	return -1;
}

static int handshake(struct bridge *b, struct lws *wsi, struct page *p)
{
	const struct webcfg *cfg = b->cfg;
	const struct webcfg_origin *o;
	char origin[ORIGIN_MAX + 1], host[128], uri[64], safe[101];

	header(wsi, WSI_TOKEN_HOST, host, sizeof(host));
	header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
	header(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri));
	if (!webcfg_host_ok(cfg, host)) {
		log_info("handshake refused: Host \"%s\" is not this bridge (DNS rebinding?)",
			 webcfg_log_text(host, safe, 65));
		return refuse(wsi, HTTP_STATUS_FORBIDDEN, "Host not allowed");
	}
	o = webcfg_find_origin(cfg, origin);
	if (!o) {
		log_info("handshake refused: Origin \"%s\" is not allowed",
			 origin[0] ? webcfg_log_text(origin, safe, sizeof(safe)) : "(none)");
		return refuse(wsi, HTTP_STATUS_FORBIDDEN, "Origin not allowed");
	}
	if (strcmp(uri, "/v1") != 0)
		return refuse(wsi, HTTP_STATUS_NOT_FOUND, "the endpoint is /v1");
	if (b->n_pages >= cfg->max_connections ||
	    b->per_origin[o - cfg->origins] >= cfg->max_connections_per_origin) {
		log_info("handshake refused: %s has %d connections (at most %d; %d in all)",
			 o->origin, b->per_origin[o - cfg->origins],
			 cfg->max_connections_per_origin, b->n_pages);
		return refuse(wsi, 429, "too many connections");
	}
	memset(p, 0, sizeof(*p));
	p->origin_idx = (int)(o - cfg->origins);
	return 0;
}

static int page_established(struct bridge *b, struct lws *wsi, struct page *p)
{
	p->b = b;
	p->wsi = wsi;
	p->id = ++b->next_page_id;
	p->established = 1;
	p->hello_deadline_ms = now_ms() + b->cfg->hello_timeout_ms;
	p->next = b->pages;
	if (b->pages)
		b->pages->prev = p;
	b->pages = p;
	b->n_pages++;
	b->per_origin[p->origin_idx]++;
	log_debug("page %u (%s) connected", p->id, origin_name(p));
	if (daemon_open(p) != 0)
		page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			   "the card service is not running");
	return 0;
}

static int cb_page(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct bridge *b = lws_context_user(lws_get_context(wsi));
	struct page *p = user;
	char host[128];

	switch (reason) {
	case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
		/* The demo's files: the same Host check (a rebound name gets nothing here). */
		header(wsi, WSI_TOKEN_HOST, host, sizeof(host));
		if (!webcfg_host_ok(b->cfg, host))
			return refuse(wsi, HTTP_STATUS_FORBIDDEN, "Host not allowed");
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return handshake(b, wsi, p);
	case LWS_CALLBACK_ESTABLISHED:
		return page_established(b, wsi, p);
	case LWS_CALLBACK_RECEIVE:
		return page_receive(p, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (p && p->established)
			return page_writeable(p);
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (p)
			page_gone(p);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (p && p->established)
			page_gone(p);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static void on_tick(lws_sorted_usec_list_t *sul)
{
	struct bridge *b = lws_container_of(sul, struct bridge, tick);
	int64_t now = now_ms();
	char msg[96];

	for (struct page *p = b->pages, *next; p; p = next) {
		next = p->next;
		if (p->closing)
			continue;
		if (p->out_head && now - p->out_progress_ms >= STALL_MS) {
			/* The socket takes nothing (libwebsockets then stops reading it too). */
			log_warn("page %u (%s): %zu bytes of answers unread for %d ms: closed", p->id,
				 origin_name(p), p->out_bytes, STALL_MS);
			page_close(p, LWS_CLOSE_STATUS_POLICY_VIOLATION, "answers not read");
			continue;
		}
		if (!p->paired && now >= p->hello_deadline_ms) {
			log_info("page %u (%s): no token shown within %d ms: closed", p->id,
				 origin_name(p), b->cfg->hello_timeout_ms);
			page_close(p, LWS_CLOSE_STATUS_POLICY_VIOLATION, "not paired in time");
			continue;
		}
		for (int i = 0; i < MAX_PEND && !p->closing; i++) {
			struct pend *q = &p->pend[i];

			if (!q->id || now < q->deadline_ms)
				continue;
			snprintf(msg, sizeof(msg), "the card service did not answer within %d ms",
				 b->cfg->request_timeout_ms);
			if (q->kind == PEND_BIND)
				page_close(p, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, msg);
			else if (q->page_id)
				page_error(p, q->page_id, 1000 - SSC_ETIMEDOUT, SSC_ETIMEDOUT, msg);
			if (q->id)
				pend_clear(p, q);
		}
	}
	lws_sul_schedule(b->ctx, 0, &b->tick, on_tick, LWS_US_PER_SEC);
}

/* ---- the bridge --------------------------------------------------------------------------- */

static const struct lws_protocols protocols[] = {
	{ "sscard", cb_page, sizeof(struct page), 4096, 0, NULL, 0 },
	{ "sscard-daemon", cb_daemon, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

int bridge_new(const struct webcfg *cfg, struct bridge **out)
{
	struct lws_context_creation_info info;
	struct bridge *b = calloc(1, sizeof(*b));

	if (!b)
		return -1;
	b->cfg = cfg;
	atomic_init(&b->stop, 0);
	lws_set_log_level(LLL_ERR, NULL);

	/* The demo's files, with headers that keep them out of frames and other origins. */
	b->mount.mountpoint = "/";
	b->mount.mountpoint_len = 1;
	b->mount.origin = cfg->static_dir;
	b->mount.def = "index.html";
	b->mount.origin_protocol = LWSMPRO_FILE;
	snprintf(b->csp, sizeof(b->csp), "default-src 'self'; connect-src ws://%s:%d; "
		 "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
		 strchr(cfg->host, ':') ? "[::1]" : cfg->host, cfg->port);
	b->hdr[0] = (struct lws_protocol_vhost_options){ &b->hdr[1], NULL,
		"content-security-policy:", b->csp };
	b->hdr[1] = (struct lws_protocol_vhost_options){ &b->hdr[2], NULL,
		"x-frame-options:", "DENY" };
	b->hdr[2] = (struct lws_protocol_vhost_options){ &b->hdr[3], NULL,
		"x-content-type-options:", "nosniff" };
	b->hdr[3] = (struct lws_protocol_vhost_options){ NULL, NULL,
		"referrer-policy:", "no-referrer" };

	memset(&info, 0, sizeof(info));
	info.port = cfg->port;
	info.iface = cfg->host;
	info.protocols = protocols;
	info.mounts = cfg->demo ? &b->mount : NULL;
	info.headers = &b->hdr[0];
	info.user = b;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       (strchr(cfg->host, ':') ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
	info.max_http_header_data = 4096;
	info.timeout_secs = 10;
	info.vhost_name = "sscard-web";
	info.server_string = "sscard-web";
	b->ctx = lws_create_context(&info);
	if (!b->ctx) {
		log_error("cannot listen on %s:%d (is the port taken?)", cfg->host, cfg->port);
		free(b);
		return -1;
	}
	b->vh = lws_get_vhost_by_name(b->ctx, "sscard-web");
	if (!b->vh) {
		log_error("libwebsockets made no vhost");
		lws_context_destroy(b->ctx);
		free(b);
		return -1;
	}
	lws_sul_schedule(b->ctx, 0, &b->tick, on_tick, LWS_US_PER_SEC);
	*out = b;
	return 0;
}

int bridge_run(struct bridge *b)
{
	while (!atomic_load(&b->stop))
		if (lws_service(b->ctx, 0) < 0)
			break;
	return 0;
}

void bridge_stop(struct bridge *b)
{
	atomic_store(&b->stop, 1);
	lws_cancel_service(b->ctx);
}

void bridge_free(struct bridge *b)
{
	if (!b)
		return;
	lws_sul_cancel(&b->tick);
	lws_context_destroy(b->ctx);
	free(b);
}
