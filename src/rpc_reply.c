/*
 * This file contains what the JSON-RPC layer sends back (src/rpc_int.h): results and error objects
 * (SSC_E* codes mapped to JSON-RPC errors), the errors the server sends outside any request, the
 * result name each reply leaves for the request's audit row, and the audit row itself. Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardio.h"
#include "rpc_int.h"
#include "sscard/error.h"

int rpc_error_code(int err)
{
	return RPC_APP_BASE - err;
}

void rpc_audit_call(struct rpc *r, const struct journal_peer *peer, const char *origin,
		    const char *method, const char *reader, const char *card_ref,
		    const char *result, const char *detail, int64_t started_ms, const char *limit)
{
	struct journal_audit a = { 0 };   /* when_ms 0: the writer stamps the submit time */
	char *with_origin = NULL;

	if (!r->audit)
		return;
	/* A call through the browser bridge names the page's origin in the row's detail. */
	with_origin = rpc_web_detail(detail, origin);
	if (with_origin)
		detail = with_origin;
	a.peer = peer;
	a.method = method;
	a.reader = reader;
	a.card_ref = card_ref;
	a.result = result;
	a.detail = detail;
	a.limit = limit;
	a.duration_ms = cardio_now_ms() - started_ms;
	if (a.duration_ms < 0)
		a.duration_ms = 0;
	r->audit(r->audit_arg, &a);
	free(with_origin);
}

/*
 * A newline in a reader id must not start a forged log line (such as a "journal head" line an
 * operator verifies against): control characters become '?'.
 */
const char *rpc_log_safe(const char *in, char *out, size_t cap)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < cap; i++)
		out[i] = ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/* Remembers the result name of an error object for the request's audit row. */
static void note_error(struct rpc_client *c, const json_t *e)
{
	const char *name = json_string_value(json_object_get(json_object_get(e, "data"), "name"));

	if (!name) {
		switch (json_integer_value(json_object_get(e, "code"))) {
		case RPC_PARSE_ERROR:
			name = "RPC_PARSE_ERROR";
			break;
		case RPC_INVALID_REQUEST:
			name = "RPC_INVALID_REQUEST";
			break;
		case RPC_METHOD_NOT_FOUND:
			name = "RPC_METHOD_NOT_FOUND";
			break;
		case RPC_INVALID_PARAMS:
			name = "RPC_INVALID_PARAMS";
			break;
		default:
			name = "RPC_ERROR";
			break;
		}
	}
	snprintf(c->result, sizeof(c->result), "%s", name);
}

/* Serialises msg (stolen) and queues it to c, if c is still connected. */
static int send_json(struct rpc_client *c, json_t *msg)
{
	char *text;
	size_t len;
	int rc;

	if (!msg)
		return SSC_ENOMEM;
	if (!c->owner) {
		json_decref(msg);
		return SSC_ESHUTDOWN;
	}
	/*
	 * Compact output has no newline: the line framing stays intact. Measured, then written
	 * into a buffer of that size: json_dumps() can return a truncated text when an allocation
	 * of its own fails (it ignores a failed write of an object's key), writing into a buffer
	 * cannot fail half-way.
	 */
	len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	text = len ? malloc(len) : NULL;
	if (text && json_dumpb(msg, text, len, JSON_COMPACT) != len) {
		free(text);
		text = NULL;
	}
	json_decref(msg);
	if (!text)
		return SSC_ENOMEM;
	rc = c->ops->send(c->owner, text, len);
	free(text);
	return rc;
}

int rpc_utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, n, cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return 0;
		p += n + 1;
	}
	return 1;
}

json_t *rpc_app_error(int code, int err, const struct ssc_diag *d, const char *reader)
{
	json_t *data, *e, *msg;
	int std = ssc_std_code(err, d ? d->sw : 0), bad = 0;

	data = json_object();
	if (!data)
		return NULL;
	bad |= json_object_set_new(data, "name", json_string(ssc_strerror_name(err)));
	if (std != 0)
		bad |= json_object_set_new(data, "std_code", json_integer(std));
	if (d && d->sw != 0) {
		char sw[5];

		snprintf(sw, sizeof(sw), "%04X", (unsigned)d->sw);
		bad |= json_object_set_new(data, "sw", json_string(sw));
	}
	if (d && d->retries_left >= 0)
		bad |= json_object_set_new(data, "retries_left", json_integer(d->retries_left));
	if (reader && reader[0])
		bad |= json_object_set_new(data, "reader", json_string(reader));
	e = json_object();
	if (!e) {
		json_decref(data);
		return NULL;
	}
	bad |= json_object_set_new(e, "code", json_integer(code));
	/*
	 * diag.msg is UTF-8 by contract; json_string() refuses anything else, so fall back (told
	 * apart first: json_string() failing is then no memory, never a generic message).
	 */
	msg = json_string(d && d->msg[0] && rpc_utf8_ok(d->msg) ? d->msg : ssc_strerror(err));
	bad |= json_object_set_new(e, "message", msg);
	bad |= json_object_set_new(e, "data", data);
	if (bad) {
		json_decref(e);   /* no memory: never an error without its message or name */
		return NULL;
	}
	return e;
}

/* A protocol error object; err != 0 adds data.name (and the standard code). */
static json_t *proto_error(int code, int err, const char *message)
{
	json_t *e = json_object();
	int bad = 0;

	if (!e)
		return NULL;
	bad |= json_object_set_new(e, "code", json_integer(code));
	bad |= json_object_set_new(e, "message", json_string(message));
	if (err != 0) {
		json_t *data = json_object();
		int std = ssc_std_code(err, 0);

		bad |= json_object_set_new(data, "name", json_string(ssc_strerror_name(err)));
		if (std != 0)
			bad |= json_object_set_new(data, "std_code", json_integer(std));
		bad |= json_object_set_new(e, "data", data);
	}
	if (bad) {
		json_decref(e);   /* no memory: never an error without its message or name */
		return NULL;
	}
	return e;
}

int rpc_reply_error(struct rpc_client *c, json_t *id, json_t *e)
{
	json_t *msg;

	if (e)
		note_error(c, e);
	if (!id) {
		json_decref(e);
		return 0;
	}
	if (!e)
		return SSC_ENOMEM;
	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "error", e);
	return send_json(c, msg);
}

int rpc_reply_proto(struct rpc_client *c, json_t *id, int code, int err, const char *message)
{
	return rpc_reply_error(c, id, proto_error(code, err, message));
}

int rpc_reply_app(struct rpc_client *c, json_t *id, int err, const struct ssc_diag *d,
		  const char *reader)
{
	return rpc_reply_error(c, id, rpc_app_error(rpc_error_code(err), err, d, reader));
}

int rpc_reply_result(struct rpc_client *c, json_t *id, json_t *result)
{
	json_t *msg;

	snprintf(c->result, sizeof(c->result), "%s", "SSC_OK");
	if (!id) {
		json_decref(result);
		return 0;
	}
	if (!result)
		return SSC_ENOMEM;
	msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
	return send_json(c, msg);
}

int rpc_reply_nomem(struct rpc_client *c, json_t *id)
{
	char idtext[160], msg[400];
	size_t n;
	int len;

	snprintf(c->result, sizeof(c->result), "%s", "SSC_ENOMEM");
	if (!id || !c->owner)
		return 0;
	/* Into a buffer: no allocation (the id is a number, a string or null: no object). */
	n = json_dumpb(id, idtext, sizeof(idtext) - 1, JSON_ENCODE_ANY | JSON_COMPACT);
	if (n == 0 || n >= sizeof(idtext))
		return SSC_ENOMEM;
	idtext[n] = '\0';
	len = snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":%d,"
		       "\"message\":\"%s\",\"data\":{\"name\":\"%s\"}}}", idtext,
		       rpc_error_code(SSC_ENOMEM), ssc_strerror(SSC_ENOMEM),
		       ssc_strerror_name(SSC_ENOMEM));
	if (len < 0 || (size_t)len >= sizeof(msg))
		return SSC_ENOMEM;
	return c->ops->send(c->owner, msg, (size_t)len);
}

int rpc_send_error(struct rpc_client *c, int code, int err, const char *message)
{
	json_t *id = json_null();
	int rc = rpc_reply_proto(c, id, code, err, message);

	json_decref(id);
	return rc;
}

int rpc_format_error(char *buf, size_t cap, int code, int err, const char *message)
{
	json_t *msg = json_pack("{s:s, s:n, s:o}", "jsonrpc", "2.0", "id", "error",
				proto_error(code, err, message));
	size_t n;

	if (!msg)
		return SSC_ENOMEM;
	n = json_dumpb(msg, buf, cap > 0 ? cap - 1 : 0, JSON_COMPACT);
	json_decref(msg);
	if (n == 0 || n >= cap)
		return SSC_ELIMIT;
	buf[n] = '\0';
	return (int)n;
}
