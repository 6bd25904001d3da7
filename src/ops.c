/*
 * This file contains the card.* operations of the API (src/ops.h): strict parameter checks on the
 * loop thread, and the runs on a reader's worker thread that drive the card application (ssc.c)
 * and build the JSON results. Issue 3: card.read_basic and card.read_items.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "crypto.h"
#include "items.h"
#include "ops.h"
#include "ssc.h"

#define OPS_MAX_ITEMS 64          /* items in one card.read_items request */
#define OPS_MAX_CYCLIC 255        /* records read from a cyclic file (READ RECORD P1 limit) */

static int ops_params_object(json_t *params, struct ssc_diag *diag)
{
	if (params && !json_is_object(params))
		return ssc_diag_set(diag, SSC_EINVAL, "params must be an object");
	return 0;
}

/* Refuses any param not in allowed (NULL-terminated), naming it. */
static int ops_known_params(json_t *params, const char *const *allowed, struct ssc_diag *diag)
{
	const char *key;
	json_t *v;

	if (!params)
		return 0;
	json_object_foreach(params, key, v) {
		int ok = 0;

		(void)v;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(key, *a) == 0)
				ok = 1;
		if (!ok)
			return ssc_diag_set(diag, SSC_EINVAL, "unknown param \"%.64s\"", key);
	}
	return 0;
}

/* An optional boolean param: *out keeps its default when absent. */
static int ops_bool_param(json_t *params, const char *name, int *out, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, name) : NULL;

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"%s\" must be true or false", name);
	*out = json_is_true(v);
	return 0;
}

static int ops_reader_param(json_t *params, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, "reader") : NULL;

	/* The core resolves the reader; here only its type matters. */
	if (v && !json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"reader\" must be a string");
	return 0;
}

/* ---- card.read_basic ---------------------------------------------------------------------- */

struct basic_opts {
	int internal_auth;
	int verify_card_id;
};

static int basic_parse(const struct op_env *env, json_t *params, struct basic_opts *o,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "internal_auth", "verify_card_id", NULL };
	int rc;

	o->internal_auth = 0;
	o->verify_card_id = env->cfg->verify_card_id_mac;
	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)) ||
	    (rc = ops_reader_param(params, diag)) ||
	    (rc = ops_bool_param(params, "internal_auth", &o->internal_auth, diag)) ||
	    (rc = ops_bool_param(params, "verify_card_id", &o->verify_card_id, diag)))
		return rc;
	if (o->verify_card_id && !env->cfg->card_id_mac_key_set)
		return ssc_diag_set(diag, SSC_ECONFIG, "verify_card_id needs the issuer key "
				    "([card] card_id_mac_key) in the configuration");
	return 0;
}

static int basic_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	struct basic_opts o;

	return basic_parse(env, params, &o, diag);
}

/* The iReadCardBas string (spec §5): 11 fields, each followed by '|'. */
static json_t *basic_standard(const struct ssc_basic *b, const char *term, const char *dev)
{
	const char *f[11] = { b->region_code, b->ssn, b->card_number, b->card_id, b->name,
			      b->atr_historical, b->spec_version, b->issue_date, b->expiry_date,
			      term, dev };
	char s[1024];
	size_t n = 0;
	json_t *j;

	for (int i = 0; i < 11; i++) {
		size_t l = strlen(f[i]);

		if (n + l + 2 > sizeof(s))
			return NULL;
		memcpy(s + n, f[i], l);
		n += l;
		s[n++] = '|';
	}
	j = json_stringn(s, n);
	OPENSSL_cleanse(s, sizeof(s));
	return j;
}

/* The PSAM's terminal number, or all zeros when no PSAM serves the card's algorithm. */
static int basic_terminal(const struct op_env *env, const struct ssc_card *c, char term[13],
			  struct ssc_diag *diag)
{
	int rc;

	memcpy(term, "000000000000", 13);
	if (!env->kp || env->kp->ops->available(env->kp, c->alg) != 0)
		return 0;
	rc = env->kp->ops->terminal_number(env->kp, c->alg, term, c->io->deadline_ms, diag);
	if (rc == SSC_ENOPSAM || rc == SSC_EPSAMALGO) {
		/* The PSAM left between the two calls: as if there had been none. */
		memcpy(term, "000000000000", 13);
		ssc_diag_init(diag);
		return 0;
	}
	return rc;
}

static int basic_run(const struct op_env *env, struct card_io *io, json_t *params,
		     unsigned *insertion_flags, int *reset_card, json_t **result,
		     struct ssc_diag *diag)
{
	struct basic_opts o;
	struct ssc_card c;
	struct ssc_basic b;
	char term[13];
	json_t *r = NULL, *std = NULL;
	int rc;

	rc = basic_parse(env, params, &o, diag);
	if (rc)
		return rc;
	rc = ssc_open(&c, io, env->cfg, env->kp, insertion_flags, diag);
	if (rc)
		goto out;
	rc = ssc_read_basic(&c, &b, diag);
	if (rc)
		goto out;
	if (o.verify_card_id) {
		rc = crypto_card_id_check(env->cfg->card_id_mac_key, c.card_id);
		if (rc == SSC_EBADCARDDATA)
			rc = ssc_diag_set(diag, rc, "card id MAC mismatch");
		if (rc)
			goto out;
	}
	if (o.internal_auth) {
		rc = ssc_internal_auth(&c, diag);
		if (rc)
			goto out;
	}
	rc = basic_terminal(env, &c, term, diag);
	if (rc)
		goto out;
	std = basic_standard(&b, term, io->reader_serial);
	r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s,"
		      " s:s, s:s, s:o}",
		      "region_code", b.region_code, "ssn", b.ssn, "card_number", b.card_number,
		      "card_id", b.card_id, "name", b.name, "sex", b.sex, "nation", b.nation,
		      "birth_place", b.birth_place, "birth_date", b.birth_date,
		      "spec_version", b.spec_version, "issue_date", b.issue_date,
		      "expiry_date", b.expiry_date, "expired", b.expired,
		      "atr_historical", b.atr_historical, "terminal_number", term,
		      "terminal_device", io->reader_serial,
		      "algorithm", c.alg == SSC_ALG_SM4 ? "sm4" : "des", "standard", std);
	std = NULL;   /* json_pack's "o" took it, even on failure */
	if (!r) {
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
		goto out;
	}
	if (o.internal_auth && json_object_set_new(r, "genuine", json_true()))
		rc = SSC_ENOMEM;
	if (o.verify_card_id && json_object_set_new(r, "card_id_verified", json_true()))
		rc = SSC_ENOMEM;
	if (rc) {
		json_decref(r);
		r = NULL;
		goto out;
	}
	*result = r;
out:
	/* External authentication leaves a security state: the core resets the card. */
	if (c.authenticated)
		*reset_card = 1;
	OPENSSL_cleanse(&b, sizeof(b));
	return rc;
}

/* ---- card.read_items ---------------------------------------------------------------------- */

static int items_parse_params(json_t *params, struct item_file *f, uint8_t *tags, size_t *n,
			      struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "file", "items", NULL };
	json_t *jf, *ji, *v;
	size_t i;
	int rc;

	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)) ||
	    (rc = ops_reader_param(params, diag)))
		return rc;
	jf = params ? json_object_get(params, "file") : NULL;
	ji = params ? json_object_get(params, "items") : NULL;
	if (!jf || !json_is_string(jf))
		return ssc_diag_set(diag, SSC_EINVAL, "\"file\" must be a file name like SSSE/EF06");
	if (items_file_parse(json_string_value(jf), f))
		return ssc_diag_set(diag, SSC_EBADITEM, "unknown file \"%.32s\"",
				    json_string_value(jf));
	if (!ji || !json_is_array(ji) || json_array_size(ji) == 0)
		return ssc_diag_set(diag, SSC_EINVAL, "\"items\" must be a non-empty array of tags");
	if (json_array_size(ji) > OPS_MAX_ITEMS)
		return ssc_diag_set(diag, SSC_EINVAL, "at most %d items per request", OPS_MAX_ITEMS);
	*n = 0;
	json_array_foreach(ji, i, v) {
		struct item_def it;
		uint8_t tag;

		if (!json_is_string(v))
			return ssc_diag_set(diag, SSC_EINVAL, "\"items\" must hold tags as strings");
		if (items_parse_tag(json_string_value(v), &tag) || items_find(f, tag, &it))
			return ssc_diag_set(diag, SSC_EBADITEM, "%s has no item \"%.8s\"", f->name,
					    json_string_value(v));
		for (size_t k = 0; k < *n; k++)
			if (tags[k] == tag)
				return ssc_diag_set(diag, SSC_EINVAL, "item %02X is listed twice",
						    tag);
		tags[(*n)++] = tag;
	}
	return 0;
}

static int items_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	struct item_file f;
	uint8_t tags[OPS_MAX_ITEMS];
	size_t n;

	return items_parse_params(params, &f, tags, &n, diag);
}

/* Every record of a cyclic transaction file, newest first, as an array of objects. */
static int items_read_txns(struct ssc_card *c, const struct item_file *f,
			   const struct item_def *it, json_t **out, struct ssc_diag *diag)
{
	json_t *arr = json_array();
	uint8_t v[APDU_MAX_DATA];
	int rc = 0;

	if (!arr)
		return SSC_ENOMEM;
	for (int recno = 1; recno <= OPS_MAX_CYCLIC; recno++) {
		struct item_txn t;
		json_t *o;
		int n = ssc_read_item(c, f, it, recno, v, sizeof(v), diag);

		if (n == SSC_ENORECORD) {
			ssc_diag_init(diag);
			break;
		}
		if (n < 0) {
			rc = n;
			break;
		}
		rc = items_decode_txn(v, (size_t)n, &t, diag);
		if (rc)
			break;
		o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "time", t.time,
			      "institution", t.institution, "settlement_no", t.settlement,
			      "total", (json_int_t)t.total,
			      "personal_account", (json_int_t)t.personal_account,
			      "pooled", (json_int_t)t.pooled);
		if (!o || json_array_append_new(arr, o)) {
			rc = SSC_ENOMEM;
			break;
		}
	}
	OPENSSL_cleanse(v, sizeof(v));
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

static int items_run(const struct op_env *env, struct card_io *io, json_t *params,
		     unsigned *insertion_flags, int *reset_card, json_t **result,
		     struct ssc_diag *diag)
{
	struct item_file f;
	struct ssc_card c;
	uint8_t tags[OPS_MAX_ITEMS];
	char text[ITEM_TEXT_MAX];
	json_t *values = NULL;
	size_t n;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = items_parse_params(params, &f, tags, &n, diag);
	if (rc)
		return rc;
	rc = ssc_open(&c, io, env->cfg, env->kp, insertion_flags, diag);
	if (rc)
		goto out;
	values = json_object();
	if (!values) {
		rc = SSC_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct item_def it;
		char key[3];
		json_t *v = NULL;

		items_find(&f, tags[i], &it);
		snprintf(key, sizeof(key), "%02X", tags[i]);
		if (it.fmt == ITEM_FMT_TXN) {
			rc = items_read_txns(&c, &f, &it, &v, diag);
		} else {
			int len = ssc_read_text(&c, &f, &it, text, sizeof(text), diag);

			if (len == SSC_ENORECORD) {
				/* An absent record is an absent item: null, not an error. */
				ssc_diag_init(diag);
				v = json_null();
			} else if (len < 0) {
				rc = len;
			} else {
				v = json_stringn(text, (size_t)len);
			}
		}
		if (rc == 0 && (!v || json_object_set_new(values, key, v)))
			rc = SSC_ENOMEM;
	}
	if (rc)
		goto out;
	*result = json_pack("{s:s, s:o}", "file", f.name, "items", values);
	values = NULL;
	if (!*result)
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
out:
	json_decref(values);
	if (c.authenticated)
		*reset_card = 1;
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}

const struct op_desc ops_table[] = {
	{ "card.read_basic", basic_check, basic_run },
	{ "card.read_items", items_check, items_run },
	{ NULL, NULL, NULL },
};

const struct op_desc *ops_find(const char *method)
{
	for (const struct op_desc *op = ops_table; op->method; op++)
		if (strcmp(op->method, method) == 0)
			return op;
	return NULL;
}
