/*
 * This file contains the network PSAM's messages (spec §13.2): the exchange request's JSON body,
 * and the strict checks of what the key server answers. Everything the server sends is hostile
 * input: lengths, counts, hex and status words are checked before anything is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "hex.h"
#include "hsm_wire.h"

const char *hsm_wire_alg_name(enum ssc_alg alg)
{
	if (alg == SSC_ALG_DES)
		return "des";
	if (alg == SSC_ALG_SM4)
		return "sm4";
	return NULL;
}

char *hsm_wire_exchange_body(enum ssc_alg alg, const struct hsm_wire_cmd *cmds, size_t n,
			     size_t *len, int *err)
{
	static const char head[] = "{\"algorithm\":\"";
	static const char mid[] = "\",\"apdus\":[";
	const char *name = hsm_wire_alg_name(alg);
	size_t cap, off = 0;
	char *s;

	/* Built by hand, not with json_dumps: jansson's buffers would keep copies of the secret
	 * bodies that nobody wipes. */
	if (!name || n == 0 || n > HSM_WIRE_MAX_APDUS) {
		*err = SSC_EINVAL;
		return NULL;
	}
	cap = sizeof(head) + 3 + sizeof(mid) + 3;
	for (size_t i = 0; i < n; i++) {
		if (!cmds[i].p || cmds[i].len < 4 || cmds[i].len > HSM_WIRE_CMD_MAX) {
			*err = SSC_EINVAL;
			return NULL;
		}
		cap += 2 * cmds[i].len + 3;
	}
	s = malloc(cap);
	if (!s) {
		*err = SSC_ENOMEM;
		return NULL;
	}
	memcpy(s + off, head, sizeof(head) - 1);
	off += sizeof(head) - 1;
	memcpy(s + off, name, 3);
	off += 3;
	memcpy(s + off, mid, sizeof(mid) - 1);
	off += sizeof(mid) - 1;
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[off++] = ',';
		s[off++] = '"';
		off += (size_t)hex_encode(cmds[i].p, cmds[i].len, s + off, cap - off, HEX_UPPER);
		s[off++] = '"';
	}
	s[off++] = ']';
	s[off++] = '}';
	s[off] = '\0';
	*len = off;
	return s;
}

/* Parses body as one JSON object; NULL with SSC_EHSMPROTO in diag when it is not. */
static json_t *hsm_load_object(const char *body, size_t len, const char *what,
			       struct ssc_diag *diag)
{
	json_error_t jerr;
	json_t *j;

	if (!body || len == 0) {
		ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's %s answer is empty", what);
		return NULL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's %s answer is not JSON "
			     "(line %d column %d)", what, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		ssc_diag_set(diag, SSC_EHSMPROTO, "the key server's %s answer is not a JSON object",
			     what);
		return NULL;
	}
	return j;
}

static uint16_t hsm_sw(const struct hsm_wire_resp *r)
{
	return (uint16_t)(r->b[r->len - 2] << 8 | r->b[r->len - 1]);
}

int hsm_wire_exchange_answer(const char *body, size_t len, size_t n_sent,
			     struct hsm_wire_resp *out, struct ssc_diag *diag)
{
	json_t *j, *arr, *v;
	size_t i, count;
	int rc = SSC_EHSMPROTO;

	j = hsm_load_object(body, len, "exchange", diag);
	if (!j)
		return SSC_EHSMPROTO;
	arr = json_object_get(j, "responses");
	if (!arr || !json_is_array(arr)) {
		ssc_diag_set(diag, rc, "the key server's exchange answer has no \"responses\" array");
		goto out;
	}
	count = json_array_size(arr);
	if (count == 0 || count > n_sent) {
		ssc_diag_set(diag, rc, "the key server answered %zu responses to %zu commands",
			     count, n_sent);
		goto out;
	}
	json_array_foreach(arr, i, v) {
		int n;

		if (!json_is_string(v)) {
			ssc_diag_set(diag, rc, "response %zu of the key server is not a string", i + 1);
			goto out;
		}
		n = hex_decode(json_string_value(v), json_string_length(v), out[i].b,
			       sizeof(out[i].b));
		if (n < 2) {
			ssc_diag_set(diag, rc, "response %zu of the key server is not 2 to %d bytes "
				     "of hex", i + 1, HSM_WIRE_RESP_MAX);
			goto out;
		}
		out[i].len = (size_t)n;
		/* The server stops at the first final answer that is not 9000 (spec §13.2). */
		if (i + 1 < count && hsm_sw(&out[i]) != 0x9000) {
			ssc_diag_set(diag, rc, "the key server ran command %zu after command %zu "
				     "failed with %04X", i + 2, i + 1, hsm_sw(&out[i]));
			goto out;
		}
		/* 61xx is the server's to follow with GET RESPONSE, never ours. */
		if ((hsm_sw(&out[i]) >> 8) == 0x61) {
			ssc_diag_set(diag, rc, "response %zu of the key server is an unfollowed "
				     "%04X", i + 1, hsm_sw(&out[i]));
			goto out;
		}
	}
	if (count < n_sent && hsm_sw(&out[count - 1]) == 0x9000) {
		ssc_diag_set(diag, rc, "the key server answered %zu of %zu commands, the last with "
			     "9000", count, n_sent);
		goto out;
	}
	rc = (int)count;
out:
	json_decref(j);
	if (rc < 0)
		for (i = 0; i < n_sent; i++)
			OPENSSL_cleanse(&out[i], sizeof(out[i]));
	return rc;
}

int hsm_wire_terminal_answer(const char *body, size_t len, char term[13], struct ssc_diag *diag)
{
	json_t *j, *v;
	uint8_t bin[6];
	int rc = SSC_EHSMPROTO;

	j = hsm_load_object(body, len, "terminal", diag);
	if (!j)
		return SSC_EHSMPROTO;
	v = json_object_get(j, "terminal_number");
	if (!v || !json_is_string(v) || json_string_length(v) != 12) {
		ssc_diag_set(diag, rc, "the key server's terminal number is not 12 hex digits");
		goto out;
	}
	/* Shown as the PSAM's READ BINARY would be: upper-case hex of the 6 bytes. */
	if (hex_decode(json_string_value(v), 12, bin, sizeof(bin)) != 6 ||
	    hex_encode(bin, 6, term, 13, HEX_UPPER) != 12) {
		ssc_diag_set(diag, rc, "the key server's terminal number is not 12 hex digits");
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* A string of the server's, made safe to show: printable ASCII, at most cap - 1 characters. */
static void hsm_safe_text(const char *s, size_t slen, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < slen && n + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		out[n++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
	}
	out[n] = '\0';
}

int hsm_wire_http_error(long status, const char *body, size_t len, struct ssc_diag *diag)
{
	char name[40] = "", msg[96] = "";
	json_t *j = NULL, *e, *v;
	json_error_t jerr;
	int rc;

	if (body && len > 0)
		j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	e = j && json_is_object(j) ? json_object_get(j, "error") : NULL;
	if (e && json_is_object(e)) {
		v = json_object_get(e, "name");
		if (v && json_is_string(v))
			hsm_safe_text(json_string_value(v), json_string_length(v), name,
				      sizeof(name));
		v = json_object_get(e, "message");
		if (v && json_is_string(v))
			hsm_safe_text(json_string_value(v), json_string_length(v), msg, sizeof(msg));
	}
	json_decref(j);
	if (status == 404 && strcmp(name, "no_psam") == 0) {
		rc = ssc_diag_set(diag, SSC_EHSMNOPSAM, "the key server has no PSAM for the card's "
				  "algorithm (404 no_psam%s%s)", msg[0] ? ": " : "", msg);
	} else if (status == 404) {
		rc = ssc_diag_set(diag, SSC_EHSMURL, "the key server answered 404 Not Found: check "
				  "[hsm] url (the base URL, without /v1)");
	} else if (status == 401 || status == 403) {
		rc = ssc_diag_set(diag, SSC_EHSMDENIED, "the key server refused this desk's "
				  "certificate (HTTP %ld%s%s%s%s)", status, name[0] ? " " : "", name,
				  msg[0] ? ": " : "", msg);
	} else if (status >= 500 && status <= 599) {
		rc = ssc_diag_set(diag, SSC_EHSMSERVER, "the key server %s (HTTP %ld%s%s%s%s)",
				  status == 503 ? "is busy" : "failed", status, name[0] ? " " : "",
				  name, msg[0] ? ": " : "", msg);
	} else if (status == 400) {
		rc = ssc_diag_set(diag, SSC_EHSMPROTO, "the key server found the request malformed "
				  "(HTTP 400%s%s%s%s)", name[0] ? " " : "", name, msg[0] ? ": " : "",
				  msg);
	} else {
		rc = ssc_diag_set(diag, SSC_EHSMPROTO, "the key server answered HTTP %ld, which "
				  "the network PSAM protocol does not use", status);
	}
	return rc;
}
