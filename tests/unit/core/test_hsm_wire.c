/*
 * Unit tests of src/hsm_wire.c, the network PSAM's messages (spec §13.2), against JSON written by
 * hand: the exchange request body, the exchange and terminal answers the key server may send
 * (good, stopped early, and every malformed shape the checks refuse), and what each HTTP error
 * status with its error body means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hsm_wire.h"

static int answer(const char *body, size_t n_sent, struct hsm_wire_resp *out, struct ssc_diag *d)
{
	ssc_diag_init(d);
	return hsm_wire_exchange_answer(body, strlen(body), n_sent, out, d);
}

static void test_exchange_body(void **state)
{
	/* DELIVER KEY 48/12 with cardDiv ‖ cityDiv ‖ R (DES, Lc 18), then CIPHER of X. */
	static const uint8_t dk[] = { 0xBF, 0xDE, 0x48, 0x12, 0x18, 0x00, 0x11, 0x22, 0x33, 0x44,
				      0x55, 0x66, 0x77, 0x33, 0x33, 0x30, 0x31, 0x30, 0x30, 0x73,
				      0x78, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
	static const uint8_t ci[] = { 0x80, 0xFA, 0x00, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44, 0x55,
				      0x66, 0x77, 0x88 };
	struct hsm_wire_cmd cmds[2] = { { dk, sizeof(dk) }, { ci, sizeof(ci) } };
	struct hsm_wire_cmd many[HSM_WIRE_MAX_APDUS + 1];
	size_t len = 0;
	int err = 0;
	char *s;

	(void)state;
	s = hsm_wire_exchange_body(SSC_ALG_DES, cmds, 2, &len, &err);
	assert_non_null(s);
	assert_string_equal(s, "{\"algorithm\":\"des\",\"apdus\":["
			    "\"BFDE4812180011223344556677333330313030737811223344556677"
			    "88\",\"80FA0000081122334455667788\"]}");
	assert_int_equal(len, strlen(s));
	free(s);
	s = hsm_wire_exchange_body(SSC_ALG_SM4, cmds + 1, 1, &len, &err);
	assert_non_null(s);
	assert_string_equal(s, "{\"algorithm\":\"sm4\",\"apdus\":[\"80FA0000081122334455667788\"]}");
	free(s);

	/* No algorithm, no command, too many, a command shorter than a header. */
	assert_null(hsm_wire_exchange_body(SSC_ALG_NONE, cmds, 2, &len, &err));
	assert_int_equal(err, SSC_EINVAL);
	err = 0;
	assert_null(hsm_wire_exchange_body(SSC_ALG_DES, cmds, 0, &len, &err));
	assert_int_equal(err, SSC_EINVAL);
	for (size_t i = 0; i < HSM_WIRE_MAX_APDUS + 1; i++)
		many[i] = cmds[1];
	err = 0;
	assert_null(hsm_wire_exchange_body(SSC_ALG_DES, many, HSM_WIRE_MAX_APDUS + 1, &len, &err));
	assert_int_equal(err, SSC_EINVAL);
	s = hsm_wire_exchange_body(SSC_ALG_DES, many, HSM_WIRE_MAX_APDUS, &len, &err);
	assert_non_null(s);
	free(s);
	cmds[0].len = 3;
	err = 0;
	assert_null(hsm_wire_exchange_body(SSC_ALG_DES, cmds, 2, &len, &err));
	assert_int_equal(err, SSC_EINVAL);
}

static void test_exchange_answer_good(void **state)
{
	struct hsm_wire_resp r[3];
	struct ssc_diag d;

	(void)state;
	/* DELIVER KEY's 9000, then the DES cryptogram of spec §12.8 with 9000 (the server followed
	 * 61 08 itself). */
	assert_int_equal(answer("{\"responses\": [\"9000\", \"4ba5c1f9d6c57f0f9000\"]}", 2, r, &d),
			 2);
	assert_int_equal(r[0].len, 2);
	assert_memory_equal(r[0].b, "\x90\x00", 2);
	assert_int_equal(r[1].len, 10);
	assert_memory_equal(r[1].b, "\x4B\xA5\xC1\xF9\xD6\xC5\x7F\x0F\x90\x00", 10);
	/* Stopped after a refusal: DELIVER KEY of a key the PSAM lacks. */
	assert_int_equal(answer("{\"responses\":[\"6A88\"]}", 2, r, &d), 1);
	assert_int_equal(r[0].len, 2);
	assert_memory_equal(r[0].b, "\x6A\x88", 2);
	/* The second command refused. */
	assert_int_equal(answer("{\"responses\":[\"9000\",\"6700\"]}", 2, r, &d), 2);
	/* Members the spec does not name are ignored. */
	assert_int_equal(answer("{\"server\":\"x\",\"responses\":[\"9000\"],\"took_ms\":3}", 1, r,
				&d), 1);
}

static void test_exchange_answer_malformed(void **state)
{
	static const char *const bad[] = {
		"",                                                  /* empty */
		"[\"9000\"]",                                        /* not an object */
		"{\"responses\":[\"9000\"]} x",                      /* trailing text */
		"{\"responses\":\"9000\"}",                          /* not an array */
		"{\"response\":[\"9000\"]}",                         /* no responses */
		"{\"responses\":[]}",                                /* none */
		"{\"responses\":[\"9000\",\"9000\",\"9000\"]}",      /* more than sent */
		"{\"responses\":[9000]}",                            /* a number */
		"{\"responses\":[\"900\"]}",                         /* odd hex */
		"{\"responses\":[\"90\"]}",                          /* one byte, no SW */
		"{\"responses\":[\"9G00\"]}",                        /* not hex */
		"{\"responses\":[\"90 00\"]}",                       /* a blank */
		"{\"responses\":[\"6A88\",\"9000\"]}",               /* ran on after a refusal */
		"{\"responses\":[\"6108\"]}",                        /* an unfollowed 61xx */
		"{\"responses\":[\"9000\"],\"responses\":[\"9000\"]}", /* a duplicate member */
		"{\"responses\":[\"9000\"]",                         /* cut short */
	};
	struct hsm_wire_resp r[2];
	struct ssc_diag d;
	char big[600];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad %zu: %s\n", i, bad[i]);
		assert_int_equal(answer(bad[i], 2, r, &d), SSC_EHSMPROTO);
		assert_true(d.msg[0] != '\0');
	}
	/* Fewer answers than commands, the last 9000: a command went missing. */
	assert_int_equal(answer("{\"responses\":[\"9000\"]}", 2, r, &d), SSC_EHSMPROTO);
	assert_string_equal(d.msg, "the key server answered 1 of 2 commands, the last with 9000");
	/* 259 bytes: one more than data ‖ SW may hold. */
	memcpy(big, "{\"responses\":[\"", 15);
	memset(big + 15, 'A', 518);
	memcpy(big + 15 + 518, "\"]}", 4);
	assert_int_equal(answer(big, 1, r, &d), SSC_EHSMPROTO);
	/* 258 bytes fit. */
	memcpy(big + 15 + 512, "9000\"]}", 8);
	assert_int_equal(answer(big, 1, r, &d), 1);
	assert_int_equal(r[0].len, 258);
	/* A NUL inside the body is not JSON. */
	assert_int_equal(hsm_wire_exchange_answer("{\"responses\":[\"9000\"]}\0", 23, 1, r, &d),
			 SSC_EHSMPROTO);
}

static void test_terminal_answer(void **state)
{
	static const char *const bad[] = {
		"{}", "{\"terminal_number\":330200000001}", "{\"terminal_number\":\"33020000000\"}",
		"{\"terminal_number\":\"3302000000011\"}", "{\"terminal_number\":\"33020000000X\"}",
		"{\"terminal_number\":null}", "\"330200000001\"", "not json",
	};
	struct ssc_diag d;
	char term[13];

	(void)state;
	ssc_diag_init(&d);
	assert_int_equal(hsm_wire_terminal_answer("{\"terminal_number\": \"330200000001\"}", 35,
						  term, &d), 0);
	assert_string_equal(term, "330200000001");
	assert_int_equal(hsm_wire_terminal_answer("{\"terminal_number\":\"0a0b0c0d0e0f\"}", 34, term,
						  &d), 0);
	assert_string_equal(term, "0A0B0C0D0E0F");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hsm_wire_terminal_answer(bad[i], strlen(bad[i]), term, &d),
				 SSC_EHSMPROTO);
}

static int http(long status, const char *body, struct ssc_diag *d)
{
	ssc_diag_init(d);
	return hsm_wire_http_error(status, body, body ? strlen(body) : 0, d);
}

static void test_http_errors(void **state)
{
	struct ssc_diag d;

	(void)state;
	assert_int_equal(http(404, "{\"error\":{\"name\":\"no_psam\",\"message\":\"no SM4 PSAM\"}}",
			      &d), SSC_EHSMNOPSAM);
	assert_string_equal(d.msg, "the key server has no PSAM for the card's algorithm "
			    "(404 no_psam: no SM4 PSAM)");
	assert_int_equal(ssc_std_code(SSC_EHSMNOPSAM, 0), -2202);
	/* A 404 without that body is a wrong URL, a provider failure (−2201). */
	assert_int_equal(http(404, NULL, &d), SSC_EHSMURL);
	assert_int_equal(http(404, "<html>Not Found</html>", &d), SSC_EHSMURL);
	assert_int_equal(http(404, "{\"error\":{\"name\":\"not_found\"}}", &d), SSC_EHSMURL);
	assert_int_equal(http(404, "{\"error\":\"no_psam\"}", &d), SSC_EHSMURL);
	assert_int_equal(ssc_std_code(SSC_EHSMURL, 0), -2201);
	assert_int_equal(http(401, NULL, &d), SSC_EHSMDENIED);
	assert_int_equal(http(403, "{\"error\":{\"name\":\"forbidden\",\"message\":\"desk 7 is "
			      "suspended\"}}", &d), SSC_EHSMDENIED);
	assert_string_equal(d.msg, "the key server refused this desk's certificate (HTTP 403 "
			    "forbidden: desk 7 is suspended)");
	assert_int_equal(http(500, NULL, &d), SSC_EHSMSERVER);
	assert_string_equal(d.msg, "the key server failed (HTTP 500)");
	assert_int_equal(http(503, "{\"error\":{\"name\":\"busy\",\"message\":\"all PSAMs busy\"}}",
			      &d), SSC_EHSMSERVER);
	assert_string_equal(d.msg, "the key server is busy (HTTP 503 busy: all PSAMs busy)");
	assert_int_equal(http(502, "Bad Gateway", &d), SSC_EHSMSERVER);
	assert_int_equal(http(400, "{\"error\":{\"name\":\"bad_request\",\"message\":\"apdus\"}}",
			      &d), SSC_EHSMPROTO);
	assert_int_equal(http(302, NULL, &d), SSC_EHSMPROTO);
	assert_int_equal(http(204, NULL, &d), SSC_EHSMPROTO);
	/* The server's text is shown as printable ASCII only, cut short. */
	assert_int_equal(http(403, "{\"error\":{\"name\":\"x\\ny\",\"message\":\"\\u001b[31m"
			      "red\\u4e2d\"}}", &d), SSC_EHSMDENIED);
	assert_string_equal(d.msg, "the key server refused this desk's certificate (HTTP 403 "
			    "x?y: ?[31mred?" "?" "?)");
	{
		char body[400];

		snprintf(body, sizeof(body), "{\"error\":{\"name\":\"busy\",\"message\":\"%0300d\"}}",
			 0);
		assert_int_equal(http(503, body, &d), SSC_EHSMSERVER);
		assert_true(strlen(d.msg) < 160);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_body),
		cmocka_unit_test(test_exchange_answer_good),
		cmocka_unit_test(test_exchange_answer_malformed),
		cmocka_unit_test(test_terminal_answer),
		cmocka_unit_test(test_http_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
