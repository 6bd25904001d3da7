/*
 * This file contains sscardctl's medical commands (src/ctl/ctl_medical.h): the insured's
 * identification, the offline settlement and its queue.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_medical.h"

#define CTL_MEDICAL_USAGE 2
#define CTL_TXN_MAX 4096          /* bytes of a transaction read from stdin */

static int medical_usage(const char *why)
{
	fprintf(stderr, "sscardctl: medical: %s (try --help)\n", why);
	return CTL_MEDICAL_USAGE;
}

/* A transaction: the JSON object text, or '-' for one read from stdin. */
static int medical_txn(const char *arg, json_t **out)
{
	json_error_t e;
	json_t *t;

	if (strcmp(arg, "-") == 0) {
		char buf[CTL_TXN_MAX + 1];
		size_t n = fread(buf, 1, sizeof(buf), stdin);

		if (n > CTL_TXN_MAX)
			return medical_usage("the transaction on stdin is too long");
		buf[n] = '\0';
		t = json_loads(buf, 0, &e);
	} else {
		t = json_loads(arg, 0, &e);
	}
	if (!json_is_object(t)) {
		fprintf(stderr, "sscardctl: medical settle: the transaction must be a JSON object "
			"{time, institution, settlement_no, total, personal_account, pooled}%s%s\n",
			t ? "" : ": ", t ? "" : e.text);
		json_decref(t);
		return CTL_MEDICAL_USAGE;
	}
	*out = json_pack("{s:o}", "transaction", t);
	return *out ? 0 : medical_usage("out of memory");
}

/* A queue id: a positive decimal integer. */
static int medical_id(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || end == s || *end || *out <= 0 ? -1 : 0;
}

int ctl_medical_request(const char *const *args, int n, int request_id, int reader,
			const char **method, json_t **params)
{
	const char *sub = n >= 2 ? args[1] : "";
	long long v;

	*params = NULL;
	if (request_id && strcmp(sub, "settle") != 0 && strcmp(sub, "clear-flag") != 0)
		return medical_usage("--request-id only goes with settle and clear-flag");
	if (reader && (strcmp(sub, "pending") == 0 || strcmp(sub, "ack") == 0))
		return medical_usage("pending and ack take no --reader: the queue is the desk's");
	if (strcmp(sub, "credentials") == 0 && n == 2) {
		*method = "medical.credentials";
		*params = json_object();
	} else if (strcmp(sub, "settle") == 0 && n == 3) {
		if (!request_id)
			return medical_usage("settle needs --request-id ID: a settlement is retried "
					     "by it (the same ID answers the first result)");
		*method = "medical.settle_offline";
		return medical_txn(args[2], params);
	} else if (strcmp(sub, "pending") == 0 && (n == 2 || n == 3)) {
		*method = "medical.pending";
		*params = json_object();
		if (n == 3) {
			if (strcmp(args[2], "0") != 0 && medical_id(args[2], &v))
				return medical_usage("pending [SINCE]: SINCE is a queue id");
			json_object_set_new(*params, "since", json_integer(strtoll(args[2], NULL,
										  10)));
		}
	} else if (strcmp(sub, "ack") == 0 && n >= 3) {
		json_t *ids = json_array();

		*method = "medical.acknowledge";
		for (int i = 2; i < n && ids; i++) {
			if (medical_id(args[i], &v)) {
				json_decref(ids);
				return medical_usage("ack ID...: each ID is a queue id (medical "
						     "pending shows them)");
			}
			json_array_append_new(ids, json_integer(v));
		}
		*params = ids ? json_pack("{s:o}", "ids", ids) : NULL;
	} else if (strcmp(sub, "clear-flag") == 0 && n == 2) {
		*method = "medical.clear_flag";
		*params = json_object();
	} else {
		return medical_usage("expected credentials, settle TRANSACTION-JSON|-, pending "
				     "[SINCE], ack ID... or clear-flag");
	}
	return *params ? 0 : medical_usage("out of memory");
}
