/*
 * This file contains client_probe, a test program that drives libsscard (the shared library, as
 * an application links it) for the end-to-end tests (tests/e2e/test_client_c.py): each command
 * makes one or a few calls and prints one JSON line per outcome, {"rc": 0, "result": …} or
 * {"rc": N, "error": {name, code, std_code, sw, retries_left, reader, message}}, with "ms", the
 * time the call took.
 *   client_probe [--socket P] [--timeout MS] basic [READER] [auth]
 *   client_probe … call METHOD [PARAMS_JSON]
 *   client_probe … items FILE TAG…
 *   client_probe … verify PIN | readers | pipeline N | events N WAIT_MS | connect
 * and the workflow helpers (READER and REQUEST_ID "-" for NULL):
 *   client_probe … claim PIN [REQUEST_ID] | credentials | pending [SINCE] | ack ID…
 *   client_probe … settle REQUEST_ID TIME INSTITUTION SETTLEMENT_NO TOTAL PERSONAL POOLED
 *   client_probe … clearflag [REQUEST_ID] | hsm1 | hsm2 SESSION KEY | nulls
 * (nulls: each helper called with a required argument NULL, one line each).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sscard/client.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints one outcome line; takes result (owned). */
static void report(int rc, json_t *result, const struct sscard_error *e, long long t0)
{
	json_t *o = json_pack("{s:i, s:I}", "rc", rc, "ms", (json_int_t)(now_ms() - t0));
	char *s;

	if (rc == 0) {
		json_object_set_new(o, "result", result ? result : json_null());
	} else {
		json_object_set_new(o, "error", json_pack("{s:s, s:i, s:i, s:s, s:i, s:s, s:s, s:i}",
			"name", e->name, "code", e->code, "std_code", e->std_code, "sw", e->sw,
			"retries_left", e->retries_left, "reader", e->reader, "message", e->message,
			"err", e->err));
		json_decref(result);
	}
	s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static json_t *basic_json(const struct sscard_basic *b)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
			 "s:b,s:b,s:b}",
		"region_code", b->region_code, "ssn", b->ssn, "card_number", b->card_number,
		"card_id", b->card_id, "name", b->name, "sex", b->sex, "nation", b->nation,
		"birth_place", b->birth_place, "birth_date", b->birth_date,
		"spec_version", b->spec_version, "issue_date", b->issue_date,
		"expiry_date", b->expiry_date, "atr_historical", b->atr_historical,
		"terminal_number", b->terminal_number, "terminal_device", b->terminal_device,
		"algorithm", b->algorithm, "standard", b->standard, "expired", b->expired,
		"genuine", b->genuine, "card_id_verified", b->card_id_verified);
}

/* argv[i] when present and not "-", else NULL. */
static const char *opt_arg(int argc, char **argv, int i)
{
	return i < argc && strcmp(argv[i], "-") != 0 ? argv[i] : NULL;
}

/* The workflow helpers; 1 when cmd was one of them. */
static int workflow(struct sscard_client *c, const char *cmd, int argc, char **argv, int i)
{
	struct sscard_error e;
	json_t *res = NULL;
	long long t0 = now_ms();
	int rc;

	if (strcmp(cmd, "claim") == 0 && i < argc) {
		rc = sscard_claim_verify_holder(c, NULL, argv[i], opt_arg(argc, argv, i + 1), &res,
						&e);
	} else if (strcmp(cmd, "credentials") == 0) {
		rc = sscard_medical_credentials(c, NULL, &res, &e);
	} else if (strcmp(cmd, "settle") == 0 && i + 6 < argc) {
		struct sscard_settlement t = {
			.time = argv[i + 1], .institution = argv[i + 2], .settlement_no = argv[i + 3],
			.total = (uint32_t)strtoul(argv[i + 4], NULL, 10),
			.personal_account = (uint32_t)strtoul(argv[i + 5], NULL, 10),
			.pooled = (uint32_t)strtoul(argv[i + 6], NULL, 10),
		};

		rc = sscard_medical_settle_offline(c, NULL, argv[i], &t, &res, &e);
	} else if (strcmp(cmd, "pending") == 0) {
		rc = sscard_medical_pending(c, i < argc ? strtoll(argv[i], NULL, 10) : -1, &res, &e);
	} else if (strcmp(cmd, "ack") == 0) {
		int64_t ids[16];
		size_t n = 0;

		for (; i < argc && n < 16; i++)
			ids[n++] = strtoll(argv[i], NULL, 10);
		rc = sscard_medical_acknowledge(c, ids, n, &res, &e);
	} else if (strcmp(cmd, "clearflag") == 0) {
		rc = sscard_medical_clear_flag(c, NULL, opt_arg(argc, argv, i), &res, &e);
	} else if (strcmp(cmd, "hsm1") == 0) {
		rc = sscard_hsm_step1(c, NULL, &res, &e);
	} else if (strcmp(cmd, "hsm2") == 0 && i + 1 < argc) {
		struct sscard_basic b;

		rc = sscard_hsm_step2(c, argv[i], argv[i + 1], &b, &e);
		res = rc == 0 ? basic_json(&b) : NULL;
	} else if (strcmp(cmd, "nulls") == 0) {
		struct sscard_settlement t = { "20260301101500", "H33010000001", NULL, 1, 0, 1 };
		struct sscard_basic b;
		int64_t id = 1;

		report(sscard_claim_verify_holder(c, NULL, NULL, NULL, &res, &e), res, &e, t0);
		report(sscard_medical_credentials(c, NULL, NULL, &e), NULL, &e, t0);
		report(sscard_medical_settle_offline(c, NULL, NULL, &t, &res, &e), res, &e, t0);
		report(sscard_medical_settle_offline(c, NULL, "r-1", &t, &res, &e), res, &e, t0);
		report(sscard_medical_settle_offline(c, NULL, "r-1", NULL, &res, &e), res, &e, t0);
		report(sscard_medical_pending(c, -1, NULL, &e), NULL, &e, t0);
		report(sscard_medical_acknowledge(c, NULL, 1, &res, &e), res, &e, t0);
		report(sscard_medical_acknowledge(c, &id, 0, &res, &e), res, &e, t0);
		report(sscard_hsm_step1(c, NULL, NULL, &e), NULL, &e, t0);
		report(sscard_hsm_step2(c, NULL, "00||", &b, &e), NULL, &e, t0);
		report(sscard_hsm_step2(c, "00", NULL, &b, &e), NULL, &e, t0);
		report(sscard_hsm_step2(c, "00", "00||", NULL, &e), NULL, &e, t0);
		return 1;
	} else {
		return 0;
	}
	report(rc, res, &e, t0);
	return 1;
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *cmd;
	struct sscard_client *c = NULL;
	struct sscard_error e;
	int timeout = -1, rc, i = 1;
	long long t0;

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--socket") == 0)
			sock = argv[i + 1];
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout = (int)strtol(argv[i + 1], NULL, 10);
	}
	if (i >= argc) {
		fprintf(stderr, "usage: client_probe [--socket P] [--timeout MS] COMMAND …\n");
		return 2;
	}
	cmd = argv[i++];
	t0 = now_ms();
	rc = sscard_connect(sock, timeout, &c, &e);
	if (rc != 0 || strcmp(cmd, "connect") == 0) {
		report(rc, NULL, &e, t0);
		sscard_close(c);
		return 0;
	}
	if (timeout > 0)
		sscard_set_timeout(c, timeout);
	t0 = now_ms();
	if (strcmp(cmd, "basic") == 0) {
		struct sscard_basic b;
		const char *reader = i < argc && strcmp(argv[i], "-") != 0 ? argv[i] : NULL;
		unsigned opt = i + 1 < argc && strcmp(argv[i + 1], "auth") == 0 ?
			SSCARD_INTERNAL_AUTH : 0;

		rc = sscard_read_basic(c, reader, opt, &b, &e);
		report(rc, rc == 0 ? basic_json(&b) : NULL, &e, t0);
	} else if (strcmp(cmd, "call") == 0 && i < argc) {
		char *out = NULL;

		rc = sscard_call_json(c, argv[i], i + 1 < argc ? argv[i + 1] : NULL, timeout, &out,
				      &e);
		report(rc, rc == 0 ? json_loads(out, 0, NULL) : NULL, &e, t0);
		free(out);
	} else if (strcmp(cmd, "items") == 0 && i < argc) {
		json_t *items = NULL;

		rc = sscard_read_items(c, NULL, argv[i], (const char *const *)&argv[i + 1],
				       (size_t)(argc - i - 1), 0, &items, &e);
		report(rc, items, &e, t0);
	} else if (strcmp(cmd, "verify") == 0 && i < argc) {
		rc = sscard_verify_pin(c, NULL, argv[i], &e);
		report(rc, NULL, &e, t0);
	} else if (strcmp(cmd, "readers") == 0) {
		struct sscard_reader r[8];
		json_t *arr = json_array();

		rc = sscard_readers(c, r, 8, &e);
		for (int k = 0; k < rc && k < 8; k++)
			json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:s}", "id", r[k].id,
				"role", r[k].role, "card", r[k].card, "algorithm", r[k].algorithm));
		report(rc < 0 ? rc : 0, arr, &e, t0);
	} else if (strcmp(cmd, "pipeline") == 0 && i < argc) {
		/* N requests sent at once (alternately card.read_basic and system.info), their
		 * answers collected in the reverse order; one line per answer, in that order. */
		int n = atoi(argv[i]);
		uint64_t ids[SSCARD_MAX_PENDING];

		for (int k = 0; k < n && k < SSCARD_MAX_PENDING; k++) {
			rc = sscard_send(c, k % 2 ? "system.info" : "card.read_basic", NULL, &ids[k],
					 &e);
			if (rc != 0) {
				report(rc, NULL, &e, t0);
				n = k;
			}
		}
		for (int k = n - 1; k >= 0; k--) {
			json_t *res = NULL;

			rc = sscard_wait(c, ids[k], -1, &res, &e);
			report(rc, rc == 0 ? json_pack("{s:I, s:o}", "id", (json_int_t)ids[k],
						       "value", res) : NULL, &e, t0);
		}
	} else if (strcmp(cmd, "events") == 0 && i + 1 < argc) {
		/* Subscribes, prints {"rc":0,"result":"subscribed"}, then N events, each found by
		 * polling sscard_event_fd() (at most WAIT_MS per event) and taken with a zero wait. */
		int n = atoi(argv[i]), wait_ms = atoi(argv[i + 1]);

		rc = sscard_subscribe(c, &e);
		report(rc, json_string("subscribed"), &e, t0);
		for (int k = 0; rc == 0 && k < n;) {
			struct pollfd pfd = { .fd = sscard_event_fd(c), .events = POLLIN };
			json_t *ev = NULL;

			t0 = now_ms();
			if (poll(&pfd, 1, wait_ms) <= 0) {
				printf("{\"rc\":-4,\"poll\":\"timeout\"}\n");
				break;
			}
			while (k < n && (rc = sscard_next_event(c, 0, &ev, &e)) == 0) {
				report(0, ev, &e, t0);
				k++;
			}
			if (rc == SSC_ETIMEDOUT)
				rc = 0;   /* a wake-up without an event: poll again */
			else if (rc != 0)
				report(rc, NULL, &e, t0);
		}
	} else if (!workflow(c, cmd, argc, argv, i)) {
		fprintf(stderr, "client_probe: unknown command %s\n", cmd);
		sscard_close(c);
		return 2;
	}
	sscard_close(c);
	return 0;
}
