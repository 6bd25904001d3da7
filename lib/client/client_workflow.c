/*
 * This file contains libsscard's typed helpers for the workflow methods of docs/api.md
 * (claim.verify_holder, medical.*, card.hsm_step1/2): each checks its arguments, builds the
 * params and hands back the whole result object. The helpers whose params carry a secret (the PIN
 * of claim.verify_holder, the session and key of card.hsm_step2) wipe their copies of it once
 * the request is sent.
 */
#include <stddef.h>
#include <string.h>

#include "client_int.h"

/* Sets the string member key of p to val when both are not NULL. When it cannot (val not UTF-8,
 * out of memory) frees p, its strings wiped first, and returns NULL; else returns p. */
static json_t *with_string(json_t *p, const char *key, const char *val)
{
	if (!p || !val || json_object_set_new(p, key, json_string(val)) == 0)
		return p;
	client_wipe_strings(p);
	json_decref(p);
	return NULL;
}

/* Calls method with params (owned; NULL when they could not be built), wipes their strings after
 * the call when wipe is set, and hands the whole result to *result (owned) when result is not
 * NULL. Returns as sscard_call(). */
static int workflow_call(struct sscard_client *c, const char *method, json_t *params, int wipe,
			 json_t **result, struct sscard_error *e)
{
	json_t *r = NULL;
	int rc;

	if (!params)
		return client_fail(e, SSC_EINVAL, "the params of %s could not be built (a string "
				   "that is not UTF-8, or out of memory)", method);
	rc = sscard_call(c, method, params, -1, &r, e);
	if (wipe)
		client_wipe_strings(params);
	json_decref(params);
	if (rc == 0 && result)
		*result = r;
	else
		json_decref(r);
	return rc;
}

int sscard_claim_verify_holder(struct sscard_client *c, const char *reader, const char *pin,
			       const char *request_id, json_t **result, struct sscard_error *e)
{
	json_t *params;

	if (result)
		*result = NULL;
	if (!pin)
		return client_fail(e, SSC_EINVAL, "the PIN is NULL");
	params = with_string(with_string(client_params_new(reader), "pin", pin), "request_id",
			     request_id);
	return workflow_call(c, "claim.verify_holder", params, 1, result, e);
}

int sscard_medical_credentials(struct sscard_client *c, const char *reader, json_t **result,
			       struct sscard_error *e)
{
	if (!result)
		return client_fail(e, SSC_EINVAL, "result is NULL");
	*result = NULL;
	return workflow_call(c, "medical.credentials", client_params_new(reader), 0, result, e);
}

int sscard_medical_settle_offline(struct sscard_client *c, const char *reader,
				  const char *request_id, const struct sscard_settlement *t,
				  json_t **result, struct sscard_error *e)
{
	json_t *params, *tx;

	if (result)
		*result = NULL;
	if (!request_id)
		return client_fail(e, SSC_EINVAL, "request_id is NULL: an offline settlement needs "
				   "one, so that a timeout can be retried safely");
	if (!t || !t->time || !t->institution || !t->settlement_no)
		return client_fail(e, SSC_EINVAL, "the transaction, or its time, institution or "
				   "settlement_no, is NULL");
	tx = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "time", t->time,
		       "institution", t->institution, "settlement_no", t->settlement_no,
		       "total", (json_int_t)t->total, "personal_account",
		       (json_int_t)t->personal_account, "pooled", (json_int_t)t->pooled);
	params = with_string(client_params_new(reader), "request_id", request_id);
	/* json_object_set_new() frees tx when it fails, params NULL included. */
	if (json_object_set_new(params, "transaction", tx) != 0) {
		json_decref(params);
		params = NULL;
	}
	return workflow_call(c, "medical.settle_offline", params, 0, result, e);
}

int sscard_medical_pending(struct sscard_client *c, int64_t since, json_t **result,
			   struct sscard_error *e)
{
	json_t *params;

	if (!result)
		return client_fail(e, SSC_EINVAL, "result is NULL");
	*result = NULL;
	params = json_object();
	if (params && since >= 0 &&
	    json_object_set_new(params, "since", json_integer((json_int_t)since)) != 0) {
		json_decref(params);
		params = NULL;
	}
	return workflow_call(c, "medical.pending", params, 0, result, e);
}

int sscard_medical_acknowledge(struct sscard_client *c, const int64_t *ids, size_t n,
			       json_t **result, struct sscard_error *e)
{
	json_t *params, *arr;

	if (result)
		*result = NULL;
	if (!ids || n == 0)
		return client_fail(e, SSC_EINVAL, "no ids to acknowledge (ids is NULL or n is 0)");
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_integer((json_int_t)ids[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	params = json_object();
	if (json_object_set_new(params, "ids", arr) != 0) {   /* frees arr when it fails */
		json_decref(params);
		params = NULL;
	}
	return workflow_call(c, "medical.acknowledge", params, 0, result, e);
}

int sscard_medical_clear_flag(struct sscard_client *c, const char *reader,
			      const char *request_id, json_t **result, struct sscard_error *e)
{
	if (result)
		*result = NULL;
	return workflow_call(c, "medical.clear_flag",
			     with_string(client_params_new(reader), "request_id", request_id), 0,
			     result, e);
}

int sscard_hsm_step1(struct sscard_client *c, const char *reader, json_t **result,
		     struct sscard_error *e)
{
	if (!result)
		return client_fail(e, SSC_EINVAL, "result is NULL");
	*result = NULL;
	return workflow_call(c, "card.hsm_step1", client_params_new(reader), 0, result, e);
}

int sscard_hsm_step2(struct sscard_client *c, const char *session, const char *key,
		     struct sscard_basic *out, struct sscard_error *e)
{
	json_t *r = NULL;
	int rc;

	if (!out)
		return client_fail(e, SSC_EINVAL, "out is NULL");
	memset(out, 0, sizeof(*out));
	if (!session || !key)
		return client_fail(e, SSC_EINVAL, "the session or the key server's answer is NULL");
	rc = workflow_call(c, "card.hsm_step2",
			   with_string(with_string(json_object(), "session", session), "key", key),
			   1, &r, e);
	if (rc == 0)
		rc = client_basic_from(r, out, e);
	json_decref(r);
	return rc;
}
