/*
 * This file contains the fuzz target of the network PSAM's answer parsers (src/hsm_wire.c, spec
 * §13.2): what a key server sends back to an exchange, to a terminal-number request, and with an
 * HTTP error status. Every accepted answer must keep the promises of hsm_wire.h (counts, lengths,
 * status words, hex digits), and every message must be printable ASCII.
 *
 * Input: byte 0 = mode (modulo 3: exchange, terminal, HTTP error), byte 1 = the number of commands
 * sent (1..16, modulo) for an exchange, bytes 1..2 = the HTTP status (big-endian, modulo 1000) for
 * an error; from byte 3 on, the answer body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_msg(const struct ssc_diag *d)
{
	size_t n = strnlen(d->msg, sizeof(d->msg));

	if (n == sizeof(d->msg))
		abort();   /* not NUL-terminated */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d->msg[i] < 0x20 || (unsigned char)d->msg[i] > 0x7E)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hsm_wire_resp r[HSM_WIRE_MAX_APDUS];
	struct ssc_diag d;
	const char *body;
	size_t len, n_sent;
	char term[13];
	long status;
	int rc;

	if (size < 3)
		return 0;
	body = (const char *)data + 3;
	len = size - 3;
	ssc_diag_init(&d);
	switch (data[0] % 3) {
	case 0:
		n_sent = (size_t)(data[1] % HSM_WIRE_MAX_APDUS) + 1;
		rc = hsm_wire_exchange_answer(body, len, n_sent, r, &d);
		if (rc != SSC_EHSMPROTO && (rc < 1 || (size_t)rc > n_sent))
			abort();
		for (int i = 0; i < rc; i++) {
			uint16_t sw;

			if (r[i].len < 2 || r[i].len > HSM_WIRE_RESP_MAX)
				abort();
			sw = (uint16_t)(r[i].b[r[i].len - 2] << 8 | r[i].b[r[i].len - 1]);
			if ((i + 1 < rc && sw != 0x9000) || (sw >> 8) == 0x61)
				abort();
			if (i + 1 == rc && (size_t)rc < n_sent && sw == 0x9000)
				abort();
		}
		break;
	case 1:
		rc = hsm_wire_terminal_answer(body, len, term, &d);
		if (rc != 0 && rc != SSC_EHSMPROTO)
			abort();
		if (rc == 0) {
			if (strlen(term) != 12)
				abort();
			for (int i = 0; i < 12; i++)
				if (!((term[i] >= '0' && term[i] <= '9') ||
				      (term[i] >= 'A' && term[i] <= 'F')))
					abort();
		}
		break;
	default:
		status = (long)((data[1] << 8 | data[2]) % 1000);
		if (status == 200)
			return 0;
		rc = hsm_wire_http_error(status, body, len, &d);
		if (rc != SSC_EHSMPROTO && rc != SSC_EHSMDENIED && rc != SSC_EHSMNOPSAM &&
		    rc != SSC_EHSMURL && rc != SSC_EHSMSERVER)
			abort();
		if ((rc == SSC_EHSMNOPSAM || rc == SSC_EHSMURL) != (status == 404))
			abort();
		break;
	}
	check_msg(&d);
	return 0;
}
