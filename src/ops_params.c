/*
 * This file contains the checks every card operation's params start with (src/ops_int.h): an
 * object, no unknown member, the reader's type, the optional booleans. Pure functions: no card,
 * no journal, no log.
 */
#include <string.h>

#include "ops_int.h"

static int params_object(json_t *params, struct ssc_diag *diag)
{
	if (params && !json_is_object(params))
		return ssc_diag_set(diag, SSC_EINVAL, "params must be an object");
	return 0;
}

int ops_params_known(json_t *o, const char *const *allowed, struct ssc_diag *diag)
{
	const char *key;
	json_t *v;

	if (!o)
		return 0;
	json_object_foreach(o, key, v) {
		int ok = 0;

		(void)v;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(key, *a) == 0)
				ok = 1;
		if (!ok && strcmp(key, "allow_lost") == 0)
			return ssc_diag_set(diag, SSC_EINVAL, "\"allow_lost\" is for card.read_basic "
					    "and card.read_items only: a card on the lost-card list is "
					    "never written, authenticated or given a PIN operation");
		if (!ok)
			return ssc_diag_set(diag, SSC_EINVAL, "unknown param \"%.64s\"", key);
	}
	return 0;
}

int ops_params_bool(json_t *params, const char *name, int *out, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, name) : NULL;

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"%s\" must be true or false", name);
	*out = json_is_true(v);
	return 0;
}

static int params_reader(json_t *params, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, "reader") : NULL;

	/* The core resolves the reader; here only its type matters. */
	if (v && !json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"reader\" must be a string");
	return 0;
}

int ops_params_check(json_t *params, const char *const *allowed, struct ssc_diag *diag)
{
	int rc;

	if ((rc = params_object(params, diag)) || (rc = ops_params_known(params, allowed, diag)))
		return rc;
	return params_reader(params, diag);
}

int ops_params_reader_only(const struct op_desc *op, const struct op_env *env, json_t *params,
			   struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", NULL };

	(void)op;
	(void)env;
	return ops_params_check(params, allowed, diag);
}

int ops_params_internal_auth(const struct op_env *env, json_t *params, int *out,
			     struct ssc_diag *diag)
{
	int asked = 0, rc = ops_params_bool(params, "internal_auth", &asked, diag);

	*out = asked || env->cfg->require_internal_auth;
	return rc;
}
