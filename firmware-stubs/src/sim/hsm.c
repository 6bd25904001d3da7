/*
 * This file contains `sscard-sim hsm`, the simulated province key server of spec §13.2: HTTPS
 * with mutual TLS on libmicrohttpd (GnuTLS), the desk's certificate checked in the handshake
 * against --client-ca, POST /v1/exchange run on the simulator's PSAM of each algorithm (a fresh
 * PSAM context per request, 61xx followed here), GET /v1/terminal, and the fault switches that the
 * tests flip on the command line or through the control socket. Request bodies are never logged.
 */
#include "hsm.h"
#include "ctl.h"
#include "simcos.h"
#include "simlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>

#define HSM_BODY_MAX 65536        /* a request body larger than this is answered 413 */
#define HSM_MAX_APDUS 16          /* per exchange (spec §13.2) */
#define HSM_POOL 4                /* PSAM contexts per algorithm: requests served at once */
#define HSM_POOL_WAIT_MS 5000     /* all busy this long: 503 */
#define HSM_DELAY_MAX_MS 600000
#define HSM_FILE_MAX (1024 * 1024)

enum { HSM_EXIT_OK = 0, HSM_EXIT_FAILURE = 1, HSM_EXIT_USAGE = 2 };
enum hsm_refuse { HSM_REFUSE_NONE = 0, HSM_REFUSE_TLS, HSM_REFUSE_403 };

static const uint8_t hsm_select_psam[] = { 0x00, 0xA4, 0x04, 0x00, 0x06,
					   0xD1, 0x56, 0x00, 0x00, 0x05, 0x90 };
static const uint8_t hsm_read_terminal[] = { 0x00, 0xB0, 0x96, 0x00, 0x06 };

/* The PSAM contexts of one algorithm: each request takes one for itself alone. */
struct hsm_pool {
	const char *name;              /* "des" or "sm4" */
	int present;
	struct sim_token *tok[HSM_POOL];
	int busy[HSM_POOL];
	pthread_mutex_t lock;
	pthread_cond_t freed;
};

/* The fault switches (guarded by lock; changed by the control socket at any time). */
struct hsm_faults {
	pthread_mutex_t lock;
	int delay_ms;                  /* before every answer */
	enum hsm_refuse refuse;
	int fail_status;               /* 0, or the 5xx status to answer */
	unsigned long drop_left;       /* the next N requests: connection closed, no answer */
	unsigned long die_after;       /* 0 off; else exit when exchange N+1 arrives */
	int garble;                    /* answer 200 with a malformed body */
};

struct hsm_server {
	struct sockaddr_in addr;
	const char *cert_path, *key_path, *ca_path, *control_path;
	char *cert, *key, *ca;         /* PEM in memory, as libmicrohttpd takes them */
	struct hsm_pool pool[2];       /* [0] DES, [1] SM4 */
	struct hsm_faults f;
	atomic_ulong connections, requests, exchanges, terminals, refused_tls, commands;
	int sigfd;
	int quit;
	struct ctl ctl;
	struct MHD_Daemon *mhd;
};

static struct hsm_server hsm_g;

/* One request's state inside libmicrohttpd (its con_cls). */
struct hsm_req {
	char *body;
	size_t len;
	int too_large;
};

/* ---- the PSAM contexts ------------------------------------------------------------------ */

static long long hsm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes a free PSAM context of pool p (waiting a bounded time), reset: no state of another. */
static int hsm_pool_take(struct hsm_pool *p)
{
	struct timespec until;
	int idx = -1;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HSM_POOL_WAIT_MS / 1000;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		for (int i = 0; i < HSM_POOL && idx < 0; i++)
			if (!p->busy[i])
				idx = i;
		if (idx >= 0 || pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT)
			break;
	}
	if (idx >= 0)
		p->busy[idx] = 1;
	pthread_mutex_unlock(&p->lock);
	if (idx >= 0)
		sim_token_reset(p->tok[idx]);
	return idx;
}

static void hsm_pool_give(struct hsm_pool *p, int idx)
{
	sim_token_reset(p->tok[idx]);   /* no derived key outlives the request */
	pthread_mutex_lock(&p->lock);
	p->busy[idx] = 0;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Runs one command on tok and follows 61xx with GET RESPONSE as a terminal would, so that the
 * client gets data ‖ 9000 in one answer. Returns the answer length (>= 2) in out (cap bytes).
 */
static size_t hsm_run(struct sim_token *tok, const uint8_t *cmd, size_t len, uint8_t *out,
		      size_t cap)
{
	uint8_t resp[SIM_RESP_MAX];
	size_t n = sim_token_apdu(tok, cmd, len, resp), have = 0;

	/* The header only: a MAC's body may hold a new PIN or a record, ENCRYPT's a PIN block. */
	if (simlog_verbose())
		simlog("  > %02X %02X %02X %02X, %zu bytes (body not logged)", cmd[0], cmd[1],
		       cmd[2], cmd[3], len);

	for (int round = 0; round < 8 && n == 2 && resp[0] == 0x61; round++) {
		uint8_t gr[5] = { 0x00, 0xC0, 0x00, 0x00, resp[1] };

		n = sim_token_apdu(tok, gr, sizeof(gr), resp);
		if (n >= 2 && n - 2 <= cap - 2 - have) {
			memcpy(out + have, resp, n - 2);
			have += n - 2;
			memmove(resp, resp + n - 2, 2);
			n = 2;
		}
	}
	if (n > cap - have)
		n = cap - have;
	memcpy(out + have, resp, n);
	memset(resp, 0, sizeof(resp));
	if (simlog_verbose())
		simlog("  < %zu bytes, SW %02X%02X", have + n, out[have + n - 2], out[have + n - 1]);
	return have + n;
}

/* ---- answers ------------------------------------------------------------------------------ */

static enum MHD_Result hsm_reply(struct MHD_Connection *conn, unsigned status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(j);
	if (!text)
		text = strdup("{}");
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result hsm_error(struct MHD_Connection *conn, unsigned status, const char *name,
				 const char *message)
{
	simlog("  -> %u %s", status, name);
	return hsm_reply(conn, status, json_pack("{s:{s:s, s:s}}", "error", "name", name,
						 "message", message));
}

static int hsm_alg_index(const char *name)
{
	if (name && strcmp(name, "des") == 0)
		return 0;
	if (name && strcmp(name, "sm4") == 0)
		return 1;
	return -1;
}

static void hsm_hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hsm_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Hex of 4..261 bytes (a command APDU) into out; the length or -1. */
static int hsm_unhex_cmd(const char *s, size_t slen, uint8_t *out)
{
	if (slen % 2 || slen < 8 || slen > 2 * 261)
		return -1;
	for (size_t i = 0; i < slen; i += 2) {
		int hi = hsm_hexval(s[i]), lo = hsm_hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(slen / 2);
}

/* POST /v1/exchange (spec §13.2). */
static enum MHD_Result hsm_exchange(struct MHD_Connection *conn, const struct hsm_req *rq)
{
	uint8_t cmds[HSM_MAX_APDUS][261], out[SIM_RESP_MAX + 256];
	size_t lens[HSM_MAX_APDUS], n;
	json_t *j, *arr, *v, *resps;
	json_error_t jerr;
	struct hsm_pool *p;
	int alg, idx;
	size_t i;

	j = json_loadb(rq->body ? rq->body : "", rq->len, JSON_REJECT_DUPLICATES, &jerr);
	alg = j ? hsm_alg_index(json_string_value(json_object_get(j, "algorithm"))) : -1;
	arr = j ? json_object_get(j, "apdus") : NULL;
	if (!j || !json_is_object(j) || alg < 0 || !json_is_array(arr) ||
	    json_array_size(arr) == 0 || json_array_size(arr) > HSM_MAX_APDUS) {
		json_decref(j);
		return hsm_error(conn, 400, "bad_request", "expected {\"algorithm\": \"des\"|\"sm4\", "
				 "\"apdus\": [1 to 16 hex strings]}");
	}
	n = json_array_size(arr);
	json_array_foreach(arr, i, v) {
		int l = json_is_string(v) ? hsm_unhex_cmd(json_string_value(v), json_string_length(v),
							  cmds[i]) : -1;

		if (l < 0) {
			json_decref(j);
			return hsm_error(conn, 400, "bad_request", "an APDU is not 4 to 261 bytes of "
					 "hex");
		}
		lens[i] = (size_t)l;
	}
	json_decref(j);
	p = &hsm_g.pool[alg];
	if (!p->present)
		return hsm_error(conn, 404, "no_psam", alg ? "no SM4 PSAM here" : "no DES PSAM here");
	idx = hsm_pool_take(p);
	if (idx < 0)
		return hsm_error(conn, 503, "busy", "every PSAM stayed busy");
	atomic_fetch_add(&hsm_g.exchanges, 1);
	resps = json_array();
	/* The key application of this algorithm, selected by the server itself (spec §13.2). */
	hsm_run(p->tok[idx], hsm_select_psam, sizeof(hsm_select_psam), out, sizeof(out));
	for (i = 0; i < n && resps; i++) {
		char hex[2 * sizeof(out) + 1];
		size_t r = hsm_run(p->tok[idx], cmds[i], lens[i], out, sizeof(out));

		atomic_fetch_add(&hsm_g.commands, 1);
		hsm_hex(out, r, hex);
		if (json_array_append_new(resps, json_string(hex))) {
			json_decref(resps);
			resps = NULL;
		}
		/* Stop after the first final answer that is not 9000. */
		if (r < 2 || out[r - 2] != 0x90 || out[r - 1] != 0x00)
			break;
	}
	hsm_pool_give(p, idx);
	memset(cmds, 0, sizeof(cmds));
	memset(out, 0, sizeof(out));
	if (!resps)
		return hsm_error(conn, 500, "internal", "out of memory");
	simlog("  -> 200 (%s, %zu of %zu commands run)", p->name, json_array_size(resps), n);
	return hsm_reply(conn, 200, json_pack("{s:o}", "responses", resps));
}

/* GET /v1/terminal?algorithm=des|sm4 */
static enum MHD_Result hsm_terminal(struct MHD_Connection *conn)
{
	const char *a = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "algorithm");
	uint8_t out[SIM_RESP_MAX];
	char term[13] = "000000000000";
	struct hsm_pool *p;
	int alg = hsm_alg_index(a), idx;
	size_t r;

	if (alg < 0)
		return hsm_error(conn, 400, "bad_request", "algorithm must be des or sm4");
	p = &hsm_g.pool[alg];
	if (!p->present)
		return hsm_error(conn, 404, "no_psam", alg ? "no SM4 PSAM here" : "no DES PSAM here");
	idx = hsm_pool_take(p);
	if (idx < 0)
		return hsm_error(conn, 503, "busy", "every PSAM stayed busy");
	atomic_fetch_add(&hsm_g.terminals, 1);
	hsm_run(p->tok[idx], hsm_select_psam, sizeof(hsm_select_psam), out, sizeof(out));
	r = hsm_run(p->tok[idx], hsm_read_terminal, sizeof(hsm_read_terminal), out, sizeof(out));
	hsm_pool_give(p, idx);
	if (r == 8 && out[6] == 0x90 && out[7] == 0x00)
		hsm_hex(out, 6, term);
	simlog("  -> 200 (%s terminal %s)", p->name, term);
	return hsm_reply(conn, 200, json_pack("{s:s}", "terminal_number", term));
}

/* ---- libmicrohttpd's callbacks ------------------------------------------------------------ */

/*
 * The switch "refuse tls": the client is refused as soon as its ClientHello arrives, with an
 * access_denied alert that it reads within its own handshake (whatever the TLS version).
 */
static int hsm_after_client_hello(gnutls_session_t s)
{
	int refuse;

	pthread_mutex_lock(&hsm_g.f.lock);
	refuse = hsm_g.f.refuse == HSM_REFUSE_TLS;
	pthread_mutex_unlock(&hsm_g.f.lock);
	if (!refuse)
		return 0;
	atomic_fetch_add(&hsm_g.refused_tls, 1);
	simlog("handshake: client refused (switch \"refuse tls\")");
	gnutls_alert_send(s, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
	return GNUTLS_E_CERTIFICATE_ERROR;
}

/*
 * The handshake's check of the desk's certificate (GnuTLS calls it once the client sent its
 * certificate, or none): present, signed by --client-ca and valid now, or the handshake fails
 * with an alert (certificate required, bad certificate). In TLS 1.3 the client has finished its
 * side of the handshake by then and sends its request at once: the alert is left 300 ms to reach
 * it before the connection closes, as a server that reads what the client sent before closing
 * does (closing on unread data would reset the connection, and the alert would be lost).
 */
static int hsm_verify_peer(gnutls_session_t s)
{
	unsigned status = 0, n = 0;
	const char *why = NULL;

	if (!gnutls_certificate_get_peers(s, &n) || n == 0)
		why = "no client certificate";
	else if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
		why = "not signed by --client-ca, or not valid now";
	if (!why)
		return 0;
	atomic_fetch_add(&hsm_g.refused_tls, 1);
	simlog("handshake: client certificate refused (%s)", why);
	gnutls_alert_send(s, GNUTLS_AL_FATAL, n == 0 ? GNUTLS_A_CERTIFICATE_REQUIRED :
			  GNUTLS_A_BAD_CERTIFICATE);
	(void)poll(NULL, 0, 300);
	return GNUTLS_E_CERTIFICATE_ERROR;
}

/* libmicrohttpd's own messages (a handshake that failed, ...), in the simulator's log. */
static void hsm_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	simlog("libmicrohttpd: %s", line);
}

/* Each new connection: the client must present a certificate, checked in the handshake. */
static void hsm_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *ci;

	(void)cls;
	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	atomic_fetch_add(&hsm_g.connections, 1);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci && ci->tls_session) {
		gnutls_session_t s = (gnutls_session_t)ci->tls_session;

		/* Asked, and checked by hsm_verify_peer (which refuses none with an alert). */
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
		gnutls_session_set_verify_function(s, hsm_verify_peer);
		gnutls_handshake_set_post_client_hello_function(s, hsm_after_client_hello);
	}
}

static void hsm_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			     enum MHD_RequestTerminationCode toe)
{
	struct hsm_req *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!rq)
		return;
	if (rq->body) {
		/* It carried PIN material and records in clear: wiped, as a PSAM would. */
		memset(rq->body, 0, rq->len);
		free(rq->body);
	}
	free(rq);
	*con_cls = NULL;
}

/* The faults that apply before a request is served; returns 1 when the request was answered. */
static int hsm_faults(struct MHD_Connection *conn, int is_exchange, enum MHD_Result *ret)
{
	unsigned long n = 0, drop, die_after;
	int delay_ms, fail_status, garble;
	enum hsm_refuse refuse;

	pthread_mutex_lock(&hsm_g.f.lock);
	drop = hsm_g.f.drop_left;
	if (hsm_g.f.drop_left > 0)
		hsm_g.f.drop_left--;
	die_after = hsm_g.f.die_after;
	delay_ms = hsm_g.f.delay_ms;
	fail_status = hsm_g.f.fail_status;
	refuse = hsm_g.f.refuse;
	garble = hsm_g.f.garble;
	pthread_mutex_unlock(&hsm_g.f.lock);
	if (is_exchange)
		n = atomic_load(&hsm_g.exchanges);
	if (is_exchange && die_after && n >= die_after) {
		simlog("die-after %lu: exchange %lu arrived: the key server dies without answering",
		       die_after, n + 1);
		_exit(3);
	}
	if (drop > 0) {
		simlog("  -> connection dropped (switch \"drop\")");
		*ret = MHD_NO;
		return 1;
	}
	if (delay_ms > 0)
		(void)poll(NULL, 0, delay_ms);
	if (refuse == HSM_REFUSE_403) {
		*ret = hsm_error(conn, 403, "forbidden", "this desk's certificate is not allowed "
				 "(switch \"refuse 403\")");
		return 1;
	}
	if (fail_status) {
		*ret = hsm_error(conn, (unsigned)fail_status, fail_status == 503 ? "busy" :
				 "internal", "the simulated key server fails (switch \"fail\")");
		return 1;
	}
	if (garble) {
		/* One hex digit where an answer needs at least a status word. */
		simlog("  -> 200, malformed (switch \"garble\")");
		*ret = hsm_reply(conn, 200, json_pack("{s:[s], s:s}", "responses", "9",
						      "terminal_number", "33"));
		return 1;
	}
	return 0;
}

static enum MHD_Result hsm_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload, size_t *upload_size, void **con_cls)
{
	struct hsm_req *rq = *con_cls;
	int is_exchange = strcmp(url, "/v1/exchange") == 0;
	int is_terminal = strcmp(url, "/v1/terminal") == 0;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_large && *upload_size <= HSM_BODY_MAX - rq->len) {
			char *b = realloc(rq->body, rq->len + *upload_size + 1);

			if (!b)
				return MHD_NO;
			rq->body = b;
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
		} else {
			rq->too_large = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	atomic_fetch_add(&hsm_g.requests, 1);
	simlog("%s %s", method, url);   /* never the body: it holds PIN material and records */
	if (hsm_faults(conn, is_exchange, &ret))
		return ret;
	if (rq->too_large)
		return hsm_error(conn, 413, "too_large", "the request body exceeds 64 KiB");
	if (is_exchange && strcmp(method, "POST") == 0)
		return hsm_exchange(conn, rq);
	if (is_terminal && strcmp(method, "GET") == 0)
		return hsm_terminal(conn);
	if (is_exchange || is_terminal)
		return hsm_error(conn, 405, "method_not_allowed", "wrong method for this path");
	return hsm_error(conn, 404, "not_found", "no such path");
}

/* ---- the control socket and the command line ---------------------------------------------- */

static int hsm_parse_num(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A fault switch as the command line and the control socket both take it: 0 or -1. */
static int hsm_switch(const char *name, const char *value)
{
	unsigned long v = 0;
	int rc = 0;

	pthread_mutex_lock(&hsm_g.f.lock);
	if (strcmp(name, "delay") == 0 && hsm_parse_num(value, 0, HSM_DELAY_MAX_MS, &v) == 0)
		hsm_g.f.delay_ms = (int)v;
	else if (strcmp(name, "refuse") == 0 && strcmp(value, "none") == 0)
		hsm_g.f.refuse = HSM_REFUSE_NONE;
	else if (strcmp(name, "refuse") == 0 && strcmp(value, "tls") == 0)
		hsm_g.f.refuse = HSM_REFUSE_TLS;
	else if (strcmp(name, "refuse") == 0 && strcmp(value, "403") == 0)
		hsm_g.f.refuse = HSM_REFUSE_403;
	else if (strcmp(name, "fail") == 0 && strcmp(value, "none") == 0)
		hsm_g.f.fail_status = 0;
	else if (strcmp(name, "fail") == 0 && hsm_parse_num(value, 500, 599, &v) == 0)
		hsm_g.f.fail_status = (int)v;
	else if (strcmp(name, "drop") == 0 && hsm_parse_num(value, 0, 1000000000UL, &v) == 0)
		hsm_g.f.drop_left = v;
	else if (strcmp(name, "die-after") == 0 && hsm_parse_num(value, 0, 1000000000UL, &v) == 0)
		hsm_g.f.die_after = v;
	else if (strcmp(name, "garble") == 0 && (strcmp(value, "on") == 0 ||
						  strcmp(value, "off") == 0))
		hsm_g.f.garble = strcmp(value, "on") == 0;
	else
		rc = -1;
	pthread_mutex_unlock(&hsm_g.f.lock);
	return rc;
}

static void hsm_on_command(void *arg, const char *line, char *reply, size_t replylen)
{
	char name[16];
	const char *sp = strchr(line, ' ');

	(void)arg;
	if (strcmp(line, "status") == 0) {
		pthread_mutex_lock(&hsm_g.f.lock);
		snprintf(reply, replylen, "connections=%lu requests=%lu exchanges=%lu terminals=%lu "
			 "commands=%lu refused_tls=%lu delay=%d refuse=%s fail=%d drop=%lu "
			 "die_after=%lu garble=%s", atomic_load(&hsm_g.connections),
			 atomic_load(&hsm_g.requests), atomic_load(&hsm_g.exchanges),
			 atomic_load(&hsm_g.terminals), atomic_load(&hsm_g.commands),
			 atomic_load(&hsm_g.refused_tls), hsm_g.f.delay_ms,
			 hsm_g.f.refuse == HSM_REFUSE_TLS ? "tls" :
			 hsm_g.f.refuse == HSM_REFUSE_403 ? "403" : "none",
			 hsm_g.f.fail_status, hsm_g.f.drop_left, hsm_g.f.die_after,
			 hsm_g.f.garble ? "on" : "off");
		pthread_mutex_unlock(&hsm_g.f.lock);
		return;
	}
	if (sp && (size_t)(sp - line) < sizeof(name)) {
		memcpy(name, line, (size_t)(sp - line));
		name[sp - line] = '\0';
		if (hsm_switch(name, sp + 1) == 0) {
			simlog("switch: %s", line);
			snprintf(reply, replylen, "ok");
			return;
		}
	}
	snprintf(reply, replylen, "error unknown command (status, delay MS, refuse none|tls|403, "
		 "fail none|5xx, drop N, die-after N, garble on|off)");
}

static void hsm_usage(FILE *out)
{
	fputs("usage: sscard-sim hsm --listen ADDR:PORT --cert FILE --key FILE --client-ca FILE\n"
	      "                      --psam PROFILE [--psam PROFILE] [options]\n"
	      "  A simulated province key server (spec §13.2): HTTPS with mutual TLS; POST\n"
	      "  /v1/exchange and GET /v1/terminal served by the PSAM of each profile (one per\n"
	      "  algorithm: a gen2 profile gives the DES PSAM, a gen3 one the SM4 PSAM).\n"
	      "options:\n"
	      "  --listen ADDR:PORT    IPv4 address and port to serve on (e.g. 127.0.0.1:8443)\n"
	      "  --cert FILE           the server's certificate (PEM)\n"
	      "  --key FILE            its private key (PEM)\n"
	      "  --client-ca FILE      the CA that signs desks' certificates (PEM): a client\n"
	      "                        without a certificate it signed is refused in the handshake\n"
	      "  --psam PROFILE        a simulator profile whose PSAM to serve (repeatable)\n"
	      "  --control PATH        control socket: status, and the switches below as lines\n"
	      "  --verbose             log every PSAM command (PIN-carrying bodies masked)\n"
	      "fault switches (options, or lines on the control socket: \"delay 4000\"):\n"
	      "  --delay MS            wait MS milliseconds before every answer\n"
	      "  --refuse none|tls|403 refuse every client in the TLS handshake (at its\n"
	      "                        ClientHello, alert access_denied), or answer 403\n"
	      "  --fail none|5xx       answer every request with that status (503: busy)\n"
	      "  --drop N              close the connection of the next N requests unanswered\n"
	      "  --die-after N         exit (status 3, without answering) when exchange N+1 arrives\n"
	      "  --garble on|off       answer 200 with a malformed body\n"
	      "signals: SIGTERM/SIGINT stop.\n", out);
}

static int hsm_bad_arg(const char *what, const char *value)
{
	fprintf(stderr, "sscard-sim hsm: invalid %s: '%s'\nTry 'sscard-sim hsm --help'.\n", what,
		value ? value : "");
	return -1;
}

/* A PEM file into memory, NUL-terminated (libmicrohttpd takes strings). */
static char *hsm_read_pem(const char *what, const char *path)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	char *buf = NULL;

	if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > HSM_FILE_MAX) {
		fprintf(stderr, "sscard-sim hsm: %s %s: %s\n", what, path,
			f ? "not a PEM file of a sensible size" : strerror(errno));
		goto out;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		fprintf(stderr, "sscard-sim hsm: %s %s: read error\n", what, path);
		free(buf);
		buf = NULL;
	}
out:
	if (f)
		fclose(f);
	return buf;
}

/* --psam PROFILE: its PSAM, in the pool of its algorithm (announced by SELECT, spec §12.4). */
static int hsm_add_psam(const char *path)
{
	char err[512] = "";
	struct sim_profile *prof = sim_profile_load(path, err, sizeof(err));
	uint8_t out[SIM_RESP_MAX];
	struct sim_token *probe;
	struct hsm_pool *p;
	size_t n;
	int alg;

	if (!prof) {
		fprintf(stderr, "sscard-sim hsm: %s\n", err[0] ? err : "cannot load the profile");
		return -1;
	}
	probe = sim_token_new(prof, SIM_ROLE_PSAM);
	n = probe ? sim_token_apdu(probe, hsm_select_psam, sizeof(hsm_select_psam), out) : 0;
	sim_token_free(probe);
	/* The FCI ends 9F0C 03 86 01 alg, then 9000. */
	alg = n >= 3 && out[n - 2] == 0x90 ? (out[n - 3] == 0x03 ? 1 : 0) : -1;
	if (alg < 0 || hsm_g.pool[alg].present) {
		fprintf(stderr, "sscard-sim hsm: %s: %s\n", path, alg < 0 ? "its PSAM does not "
			"answer SELECT" : "a PSAM of this algorithm was given already");
		sim_profile_free(prof);
		return -1;
	}
	p = &hsm_g.pool[alg];
	for (int i = 0; i < HSM_POOL; i++) {
		p->tok[i] = sim_token_new(prof, SIM_ROLE_PSAM);
		if (!p->tok[i]) {
			sim_profile_free(prof);
			return -1;
		}
	}
	p->present = 1;
	sim_profile_free(prof);
	return 0;
}

static int hsm_parse_listen(const char *s)
{
	char host[32];
	const char *colon = strrchr(s, ':');
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host) ||
	    hsm_parse_num(colon + 1, 1, 65535, &port) != 0)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	hsm_g.addr.sin_family = AF_INET;
	hsm_g.addr.sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &hsm_g.addr.sin_addr) == 1 ? 0 : -1;
}

/* Returns 0, 1 after --help, or -1 (message printed). */
static int hsm_parse_args(int argc, char **argv)
{
	enum { OPT_LISTEN = 256, OPT_CERT, OPT_KEY, OPT_CA, OPT_PSAM, OPT_CONTROL, OPT_VERBOSE,
	       OPT_DELAY, OPT_REFUSE, OPT_FAIL, OPT_DROP, OPT_DIE, OPT_GARBLE };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "client-ca", required_argument, NULL, OPT_CA },
		{ "psam", required_argument, NULL, OPT_PSAM },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "delay", required_argument, NULL, OPT_DELAY },
		{ "refuse", required_argument, NULL, OPT_REFUSE },
		{ "fail", required_argument, NULL, OPT_FAIL },
		{ "drop", required_argument, NULL, OPT_DROP },
		{ "die-after", required_argument, NULL, OPT_DIE },
		{ "garble", required_argument, NULL, OPT_GARBLE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const switch_names[] = { "delay", "refuse", "fail", "drop", "die-after",
						    "garble" };
	int c, verbose = 0, have_listen = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hv", opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			if (hsm_parse_listen(optarg) != 0)
				return hsm_bad_arg("--listen (IPv4:PORT)", optarg);
			have_listen = 1;
			break;
		case OPT_CERT:
			hsm_g.cert_path = optarg;
			break;
		case OPT_KEY:
			hsm_g.key_path = optarg;
			break;
		case OPT_CA:
			hsm_g.ca_path = optarg;
			break;
		case OPT_PSAM:
			if (hsm_add_psam(optarg) != 0)
				return -1;
			break;
		case OPT_CONTROL:
			hsm_g.control_path = optarg;
			break;
		case 'v':
		case OPT_VERBOSE:
			verbose = 1;
			break;
		case OPT_DELAY:
		case OPT_REFUSE:
		case OPT_FAIL:
		case OPT_DROP:
		case OPT_DIE:
		case OPT_GARBLE:
			if (hsm_switch(switch_names[c - OPT_DELAY], optarg) != 0)
				return hsm_bad_arg(opts[c - OPT_LISTEN].name, optarg);
			break;
		case 'h':
			hsm_usage(stdout);
			return 1;
		case ':':
			return hsm_bad_arg("option (missing value)", argv[optind - 1]);
		default:
			return hsm_bad_arg("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return hsm_bad_arg("argument", argv[optind]);
	if (!have_listen || !hsm_g.cert_path || !hsm_g.key_path || !hsm_g.ca_path ||
	    (!hsm_g.pool[0].present && !hsm_g.pool[1].present)) {
		fputs("sscard-sim hsm: --listen, --cert, --key, --client-ca and at least one --psam "
		      "are required\nTry 'sscard-sim hsm --help'.\n", stderr);
		return -1;
	}
	{
		char tag[48];

		snprintf(tag, sizeof(tag), "hsm:%u", (unsigned)ntohs(hsm_g.addr.sin_port));
		simlog_init(tag, verbose);
	}
	hsm_g.cert = hsm_read_pem("--cert", hsm_g.cert_path);
	hsm_g.key = hsm_g.cert ? hsm_read_pem("--key", hsm_g.key_path) : NULL;
	hsm_g.ca = hsm_g.key ? hsm_read_pem("--client-ca", hsm_g.ca_path) : NULL;
	return hsm_g.ca ? 0 : -1;
}

static void hsm_free_all(void)
{
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < HSM_POOL; i++)
			sim_token_free(hsm_g.pool[a].tok[i]);
	if (hsm_g.key)
		memset(hsm_g.key, 0, strlen(hsm_g.key));
	free(hsm_g.key);
	free(hsm_g.cert);
	free(hsm_g.ca);
}

static int hsm_setup_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_IGN };
	sigset_t set;

	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before libmicrohttpd's threads start, so that only the signalfd sees them. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	hsm_g.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return hsm_g.sigfd < 0 ? -1 : 0;
}

/* The main thread: signals and the control socket; libmicrohttpd serves in its own threads. */
static void hsm_loop(void)
{
	struct pollfd fds[1 + 1 + CTL_MAX_CLIENTS];

	while (!hsm_g.quit) {
		struct signalfd_siginfo si;
		long long now = hsm_now_ms();
		int t = ctl_timeout_ms(&hsm_g.ctl, now);
		size_t nfds = 0;

		fds[nfds++] = (struct pollfd){ .fd = hsm_g.sigfd, .events = POLLIN };
		nfds += ctl_pollfds(&hsm_g.ctl, fds + nfds);
		if (poll(fds, nfds, t < 0 || t > 60000 ? 60000 : t) < 0 && errno != EINTR)
			break;
		if ((fds[0].revents & POLLIN) &&
		    read(hsm_g.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			hsm_g.quit = 1;
		ctl_dispatch(&hsm_g.ctl, fds + 1, nfds - 1, hsm_now_ms());
	}
}

int hsm_main(int argc, char **argv)
{
	int r, status = HSM_EXIT_USAGE;

	hsm_g.sigfd = -1;
	hsm_g.ctl.listen_fd = -1;
	pthread_mutex_init(&hsm_g.f.lock, NULL);
	for (int a = 0; a < 2; a++) {
		hsm_g.pool[a].name = a ? "sm4" : "des";
		pthread_mutex_init(&hsm_g.pool[a].lock, NULL);
		pthread_cond_init(&hsm_g.pool[a].freed, NULL);
	}
	r = hsm_parse_args(argc, argv);
	if (r != 0) {
		status = r > 0 ? HSM_EXIT_OK : HSM_EXIT_USAGE;
		goto out_free;
	}
	r = ctl_open(&hsm_g.ctl, hsm_g.control_path, hsm_on_command, NULL);
	if (r < 0) {
		fprintf(stderr, "sscard-sim hsm: control socket %s: %s\n", hsm_g.control_path,
			strerror(-r));
		goto out_free;
	}
	status = HSM_EXIT_FAILURE;
	if (hsm_setup_signals() != 0) {
		fprintf(stderr, "sscard-sim hsm: signals: %s\n", strerror(errno));
		goto out_ctl;
	}
	hsm_g.mhd = MHD_start_daemon(
		MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_ERROR_LOG,
		0, NULL, NULL, hsm_on_request, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&hsm_g.addr,
		MHD_OPTION_HTTPS_MEM_CERT, hsm_g.cert,
		MHD_OPTION_HTTPS_MEM_KEY, hsm_g.key,
		MHD_OPTION_HTTPS_MEM_TRUST, hsm_g.ca,
		MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
		MHD_OPTION_NOTIFY_CONNECTION, hsm_on_connection, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, hsm_on_completed, NULL,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
		MHD_OPTION_EXTERNAL_LOGGER, hsm_mhd_log, NULL,
		MHD_OPTION_END);
	if (!hsm_g.mhd) {
		fprintf(stderr, "sscard-sim hsm: cannot serve HTTPS on %s:%u (address in use, or "
			"the certificate and key do not match)\n", inet_ntoa(hsm_g.addr.sin_addr),
			(unsigned)ntohs(hsm_g.addr.sin_port));
		goto out_sig;
	}
	simlog("serving https://%s:%u (DES PSAM: %s, SM4 PSAM: %s)", inet_ntoa(hsm_g.addr.sin_addr),
	       (unsigned)ntohs(hsm_g.addr.sin_port), hsm_g.pool[0].present ? "yes" : "no",
	       hsm_g.pool[1].present ? "yes" : "no");
	hsm_loop();
	simlog("stopping (%lu requests served)", atomic_load(&hsm_g.requests));
	MHD_stop_daemon(hsm_g.mhd);
	status = HSM_EXIT_OK;
out_sig:
	close(hsm_g.sigfd);
out_ctl:
	ctl_close(&hsm_g.ctl);
out_free:
	hsm_free_all();
	return status;
}
