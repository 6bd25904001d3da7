/*
 * This file contains the messages of the network PSAM (spec §13.2) as bytes on the wire: the JSON
 * body of POST /v1/exchange, and the checks and meaning of what the key server answers (the
 * responses of an exchange, the terminal number, an HTTP error with its error body). No I/O: the
 * HTTP client (src/hsm_keyprov.c) hands the bodies in and out.
 */
#ifndef SSC_HSM_WIRE_H
#define SSC_HSM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "keyprov.h"
#include "sscard/error.h"

#define HSM_WIRE_MAX_APDUS 16        /* per request (spec §13.2) */
#define HSM_WIRE_CMD_MAX 261         /* one command APDU: header, Lc, 255 data bytes, Le */
#define HSM_WIRE_RESP_MAX 258        /* one answer: 256 data bytes ‖ SW1 SW2 */
#define HSM_WIRE_BODY_MAX 16384      /* the largest answer body read from the server */

/* One command APDU to run on the remote PSAM (borrowed bytes). */
struct hsm_wire_cmd {
	const uint8_t *p;
	size_t len;
};

/* One answer of the remote PSAM: data ‖ SW1 SW2, len >= 2. */
struct hsm_wire_resp {
	uint8_t b[HSM_WIRE_RESP_MAX];
	size_t len;
};

/*
 * The body of POST <base>/v1/exchange: {"algorithm":"des"|"sm4","apdus":["BFDE…","80FA…"]},
 * upper-case hex, compact. n is 1..HSM_WIRE_MAX_APDUS, each command 4..HSM_WIRE_CMD_MAX bytes.
 * The body carries what the commands carry (diversification data, a MAC input that may hold a new
 * PIN, a PIN block): the caller wipes it (OPENSSL_cleanse over *len bytes) before free().
 * Returns a new string (malloc) and its length in *len, or NULL (SSC_EINVAL for bad arguments or
 * SSC_ENOMEM in *err).
 */
char *hsm_wire_exchange_body(enum ssc_alg alg, const struct hsm_wire_cmd *cmds, size_t n,
			     size_t *len, int *err);

/*
 * Checks a 200 answer of /v1/exchange to n_sent commands: {"responses": ["…9000", …]}, one per
 * command run, 1..n_sent of them; each hex of 2..HSM_WIRE_RESP_MAX bytes; every one but the last
 * ends 9000 (the server stops after the first final answer that is not 9000), and fewer than
 * n_sent only when the last does not. Other members are ignored. Fills out[0..count) (room for
 * n_sent). Returns the count (>= 1) or SSC_EHSMPROTO with the reason in diag (never the body).
 */
int hsm_wire_exchange_answer(const char *body, size_t len, size_t n_sent,
			     struct hsm_wire_resp *out, struct ssc_diag *diag);

/*
 * Checks a 200 answer of GET /v1/terminal: {"terminal_number": "12 hex digits"}, into term (upper
 * case, NUL-terminated). Returns 0 or SSC_EHSMPROTO with the reason in diag.
 */
int hsm_wire_terminal_answer(const char *body, size_t len, char term[13], struct ssc_diag *diag);

/*
 * What an HTTP status other than 200 means (spec §13.2), with the error body {"error": {"name":
 * …, "message": …}} when it has one (len 0 or a body that is not that: no name). Returns
 * SSC_EHSMPROTO (400: the server found the request malformed; any status the spec does not name),
 * SSC_EHSMDENIED (401, 403), SSC_EHSMNOPSAM (404 with the name "no_psam"), SSC_EHSMURL (any other
 * 404), SSC_EHSMSERVER (5xx, 503 busy included). diag->msg names the status and the server's
 * error name and message (printable ASCII only, cut short), never the request.
 */
int hsm_wire_http_error(long status, const char *body, size_t len, struct ssc_diag *diag);

/* "des" or "sm4" (NULL for any other algorithm). */
const char *hsm_wire_alg_name(enum ssc_alg alg);

#endif
