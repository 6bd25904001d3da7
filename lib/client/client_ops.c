/*
 * This file contains libsscard's typed helpers: one function per common method of docs/api.md,
 * built on sscard_call(), turning C arguments into params and results into C structs. The PIN
 * helpers wipe the PINs they copied into the request once it is sent. The workflow methods'
 * helpers are in client_workflow.c, on the shared pieces declared in client_int.h.
 */
#include <stddef.h>
#include <string.h>

#include "client_int.h"

json_t *client_params_new(const char *reader)
{
	json_t *p = json_object();

	if (p && reader && json_object_set_new(p, "reader", json_string(reader)) != 0) {
		json_decref(p);
		return NULL;
	}
	return p;
}

/* Copies the string member key of obj into out (cap bytes). A missing member gives "" when
 * optional, else SSC_EPROTO; a longer value than fits gives SSC_EPROTO. */
static int take(json_t *obj, const char *key, char *out, size_t cap, int optional,
		struct sscard_error *e)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	out[0] = '\0';
	if (!v && optional)
		return 0;
	if (!json_is_string(v))
		return client_fail(e, SSC_EPROTO, "the answer has no string \"%s\"", key);
	n = json_string_length(v);
	if (n >= cap)
		return client_fail(e, SSC_EPROTO, "the answer's \"%s\" is longer (%zu bytes) than "
				   "this library's field", key, n);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

int client_flag(json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

int client_basic_from(json_t *r, struct sscard_basic *out, struct sscard_error *e)
{
	static const struct {
		const char *key;
		size_t off, cap;
		int optional;
	} fields[] = {
#define F(k, opt) { #k, offsetof(struct sscard_basic, k), sizeof(((struct sscard_basic *)0)->k), opt }
		F(region_code, 0), F(ssn, 0), F(card_number, 0), F(card_id, 0), F(name, 0),
		F(sex, 0), F(nation, 0), F(birth_place, 0), F(birth_date, 0), F(spec_version, 0),
		F(issue_date, 0), F(expiry_date, 0), F(atr_historical, 0), F(terminal_number, 0),
		F(terminal_device, 1), F(algorithm, 0), F(standard, 0),
#undef F
	};
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; rc == 0 && i < sizeof(fields) / sizeof(fields[0]); i++)
		rc = take(r, fields[i].key, (char *)out + fields[i].off, fields[i].cap,
			  fields[i].optional, e);
	if (rc == 0) {
		out->expired = client_flag(r, "expired");
		out->genuine = client_flag(r, "genuine");
		out->card_id_verified = client_flag(r, "card_id_verified");
	} else {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

int sscard_read_basic(struct sscard_client *c, const char *reader, unsigned options,
		      struct sscard_basic *out, struct sscard_error *e)
{
	json_t *params, *r = NULL;
	int rc;

	if (!out)
		return client_fail(e, SSC_EINVAL, "out is NULL");
	memset(out, 0, sizeof(*out));
	params = client_params_new(reader);
	if (!params)
		return client_fail(e, SSC_ENOMEM, "out of memory");
	if (options & SSCARD_INTERNAL_AUTH)
		json_object_set_new(params, "internal_auth", json_true());
	if (options & SSCARD_VERIFY_CARD_ID)
		json_object_set_new(params, "verify_card_id", json_true());
	rc = sscard_call(c, "card.read_basic", params, -1, &r, e);
	json_decref(params);
	if (rc == 0)
		rc = client_basic_from(r, out, e);
	json_decref(r);
	return rc;
}

int sscard_read_items(struct sscard_client *c, const char *reader, const char *file,
		      const char *const *tags, size_t n, unsigned options, json_t **items,
		      struct sscard_error *e)
{
	json_t *params, *arr, *r = NULL;
	int rc;

	if (!file || !items || (n > 0 && !tags))
		return client_fail(e, SSC_EINVAL, "file, tags or items is NULL");
	*items = NULL;
	params = client_params_new(reader);
	arr = json_array();
	if (!params || !arr || json_object_set_new(params, "file", json_string(file)) != 0) {
		json_decref(arr);
		json_decref(params);
		return client_fail(e, SSC_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(tags[i] ? tags[i] : ""));
	json_object_set_new(params, "items", arr);
	if (options & SSCARD_INTERNAL_AUTH)
		json_object_set_new(params, "internal_auth", json_true());
	rc = sscard_call(c, "card.read_items", params, -1, &r, e);
	json_decref(params);
	if (rc == 0) {
		if (json_is_object(json_object_get(r, "items")))
			*items = json_incref(json_object_get(r, "items"));
		else
			rc = client_fail(e, SSC_EPROTO, "the answer has no \"items\" object");
	}
	json_decref(r);
	return rc;
}

int sscard_write_items(struct sscard_client *c, const char *reader, const char *file,
		       json_t *items, json_t **result, struct sscard_error *e)
{
	json_t *params, *r = NULL;
	int rc;

	if (result)
		*result = NULL;
	if (!file || !json_is_object(items))
		return client_fail(e, SSC_EINVAL, "file is NULL or items is not an object");
	params = client_params_new(reader);
	if (!params || json_object_set_new(params, "file", json_string(file)) != 0 ||
	    json_object_set(params, "items", items) != 0) {
		json_decref(params);
		return client_fail(e, SSC_ENOMEM, "out of memory");
	}
	rc = sscard_call(c, "card.write_items", params, -1, &r, e);
	json_decref(params);
	if (rc == 0 && result)
		*result = json_incref(r);
	json_decref(r);
	return rc;
}

int sscard_internal_auth(struct sscard_client *c, const char *reader, struct sscard_error *e)
{
	json_t *params = client_params_new(reader), *r = NULL;
	int rc;

	if (!params)
		return client_fail(e, SSC_ENOMEM, "out of memory");
	rc = sscard_call(c, "card.internal_auth", params, -1, &r, e);
	json_decref(params);
	if (rc == 0 && !client_flag(r, "genuine"))
		rc = client_fail(e, SSC_EPROTO, "the answer does not say genuine");
	json_decref(r);
	return rc;
}

void client_wipe_strings(json_t *params)
{
	const char *key;
	json_t *v;

	json_object_foreach(params, key, v)
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
}

/* A PIN method: params {reader?, k1: v1, k2: v2?}; the PIN copies are wiped after the call. */
static int pin_call(struct sscard_client *c, const char *method, const char *reader,
		    const char *k1, const char *v1, const char *k2, const char *v2,
		    struct sscard_error *e)
{
	json_t *params;
	int rc;

	if (!v1 || (k2 && !v2))
		return client_fail(e, SSC_EINVAL, "a PIN is NULL");
	params = client_params_new(reader);
	if (!params || json_object_set_new(params, k1, json_string(v1)) != 0 ||
	    (k2 && json_object_set_new(params, k2, json_string(v2)) != 0)) {
		if (params)
			client_wipe_strings(params);
		json_decref(params);
		return client_fail(e, SSC_EINVAL, "a PIN is not a UTF-8 string (or out of memory)");
	}
	rc = sscard_call(c, method, params, -1, NULL, e);
	client_wipe_strings(params);
	json_decref(params);
	return rc;
}

int sscard_verify_pin(struct sscard_client *c, const char *reader, const char *pin,
		      struct sscard_error *e)
{
	return pin_call(c, "card.verify_pin", reader, "pin", pin, NULL, NULL, e);
}

int sscard_change_pin(struct sscard_client *c, const char *reader, const char *old_pin,
		      const char *new_pin, struct sscard_error *e)
{
	return pin_call(c, "card.change_pin", reader, "old_pin", old_pin, "new_pin", new_pin, e);
}

int sscard_reload_pin(struct sscard_client *c, const char *reader, const char *new_pin,
		      struct sscard_error *e)
{
	return pin_call(c, "card.reload_pin", reader, "new_pin", new_pin, NULL, NULL, e);
}

int sscard_unblock_pin(struct sscard_client *c, const char *reader, const char *new_pin,
		       struct sscard_error *e)
{
	return pin_call(c, "card.unblock_pin", reader, "new_pin", new_pin, NULL, NULL, e);
}

int sscard_readers(struct sscard_client *c, struct sscard_reader *out, size_t max,
		   struct sscard_error *e)
{
	json_t *r = NULL, *list, *v;
	size_t i;
	int rc;

	if (max > 0 && !out)
		return client_fail(e, SSC_EINVAL, "out is NULL");
	rc = sscard_call(c, "reader.list", NULL, -1, &r, e);
	if (rc < 0)
		return rc;
	list = json_object_get(r, "readers");
	if (!json_is_array(list)) {
		json_decref(r);
		return client_fail(e, SSC_EPROTO, "the answer has no \"readers\" array");
	}
	json_array_foreach(list, i, v) {
		struct sscard_reader *o;

		if (i >= max)
			break;
		o = &out[i];
		memset(o, 0, sizeof(*o));
		rc = take(v, "id", o->id, sizeof(o->id), 0, e);
		if (rc == 0)
			rc = take(v, "name", o->name, sizeof(o->name), 1, e);
		if (rc == 0)
			rc = take(v, "driver", o->driver, sizeof(o->driver), 1, e);
		if (rc == 0)
			rc = take(v, "role", o->role, sizeof(o->role), 1, e);
		if (rc == 0)
			rc = take(v, "serial", o->serial, sizeof(o->serial), 1, e);
		if (rc == 0)
			rc = take(v, "atr", o->atr, sizeof(o->atr), 1, e);
		if (rc == 0)
			rc = take(v, "algorithm", o->algorithm, sizeof(o->algorithm), 1, e);
		if (rc < 0)
			break;
		o->card = client_flag(v, "card");
		o->busy = client_flag(v, "busy");
	}
	if (rc == 0)
		rc = (int)json_array_size(list);
	json_decref(r);
	return rc;
}
