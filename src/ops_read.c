/*
 * This file contains the card operations that read (src/ops_int.h): card.read_basic (the basic
 * items, the iReadCardBas string, optional card-id MAC check and internal authentication),
 * card.read_items (items of a file, transaction records newest first) and card.internal_auth.
 * Params checked on the loop thread, runs on a reader's worker thread.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "ops_int.h"

/*
 * A read that asked for "allow_lost": its answer says what the lost-card check found (lost:
 * true, false, or null when the list could not be checked), and so does its audit row.
 */
static int lost_result(struct op_call *call, json_t *result)
{
	json_t *v;

	if (!call->allow_lost)
		return 0;
	snprintf(call->audit_detail, sizeof(call->audit_detail),
		 "{\"allow_lost\":true,\"lost\":%s}",
		 call->lost == 1 ? "true" : call->lost == 0 ? "false" : "null");
	v = call->lost == 1 ? json_true() : call->lost == 0 ? json_false() : json_null();
	return json_object_set_new(result, "lost", v) == 0 ? 0 : SSC_ENOMEM;
}

/* ---- card.read_basic ---------------------------------------------------------------------- */

struct basic_opts {
	int internal_auth;
	int verify_card_id;
	int allow_lost;
};

static int basic_parse(const struct op_env *env, json_t *params, struct basic_opts *o,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "internal_auth", "verify_card_id",
						"allow_lost", NULL };
	int rc;

	o->internal_auth = 0;
	o->verify_card_id = env->cfg->verify_card_id_mac;
	o->allow_lost = 0;
	if ((rc = ops_params_check(params, allowed, diag)) ||
	    (rc = ops_params_internal_auth(env, params, &o->internal_auth, diag)) ||
	    (rc = ops_params_bool(params, "verify_card_id", &o->verify_card_id, diag)) ||
	    (rc = ops_params_bool(params, "allow_lost", &o->allow_lost, diag)))
		return rc;
	if (o->verify_card_id && !env->cfg->card_id_mac_key_set)
		return ssc_diag_set(diag, SSC_ECONFIG, "verify_card_id needs the issuer key "
				    "([card] card_id_mac_key) in the configuration");
	return 0;
}

int ops_read_basic_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag)
{
	struct basic_opts o;

	(void)op;
	return basic_parse(env, params, &o, diag);
}

/* ---- the read-ahead (src/ops.h) ------------------------------------------------------------ */

/* What card.read_basic read from the card on its insertion, kept by the reader core for it. */
struct ops_ahead {
	struct ssc_card c;            /* the card as the read left it: identity, algorithm,
				       * generation, read mode; its borrowed pointers cleared */
	struct ssc_basic b;
};

void ops_ahead_drop(void *kept)
{
	if (!kept)
		return;
	explicit_bzero(kept, sizeof(struct ops_ahead));
	free(kept);
}

int ops_ahead_read(void *arg, struct card_io *io, unsigned *insertion_flags, int *reset_card,
		   void **kept)
{
	struct op_env env;
	struct ops_ahead *k;
	struct ssc_diag diag;
	int rc;

	*kept = NULL;
	ops_env_snapshot(arg, &env);
	ssc_diag_init(&diag);
	k = calloc(1, sizeof(*k));
	if (!k)
		return SSC_ENOMEM;
	/* The insertion's pending intents are its resolve job's (sscardd queues one on card.inserted). */
	rc = ssc_open(&k->c, io, env.cfg, env.kp, insertion_flags, &diag);
	if (!rc)
		rc = ssc_read_basic(&k->c, &k->b, &diag);
	if (k->c.authenticated)
		*reset_card = 1;   /* read authorisation: the core resets the card */
	if (rc) {
		ops_ahead_drop(k);
		return rc;
	}
	k->c.io = NULL;
	k->c.cfg = NULL;
	k->c.kp = NULL;
	k->c.insertion_flags = NULL;
	k->c.authenticated = 0;
	k->c.read_authed = 0;
	k->c.cur_df = -1;
	*kept = k;
	return 0;
}

int ops_read_basic_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct basic_opts o;
	struct ssc_card c;
	struct ssc_basic b;
	char term[13];
	json_t *r = NULL;
	int rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	rc = basic_parse(env, call->params, &o, diag);
	if (rc)
		return rc;
	if (io->ahead && !o.internal_auth) {
		/*
		 * Read ahead on this insertion, and confirmed by the core to be the card that is
		 * there now: no APDU. The lost-card check and the rest go on as after a read.
		 */
		const struct ops_ahead *k = io->ahead;

		c = k->c;
		c.io = io;
		c.cfg = env->cfg;
		c.kp = env->kp;
		c.insertion_flags = insertion_flags;
		b = k->b;
	} else {
		rc = ops_card_open(env, io, insertion_flags, &c, diag);
		if (rc)
			goto out;
		rc = ssc_read_basic(&c, &b, diag);
		if (rc)
			goto out;
	}
	/* The read knows the card number and id already: the lost-card check costs no APDU. */
	call->allow_lost = o.allow_lost;
	rc = ops_card_identify(env, call, &c, 0, diag);
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
	rc = ops_basic_terminal(env, &c, term, diag);
	if (rc)
		goto out;
	r = ops_basic_result(&b, term, io->reader_serial, c.alg);
	if (!r) {
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
		goto out;
	}
	if (o.internal_auth && json_object_set_new(r, "genuine", json_true()))
		rc = SSC_ENOMEM;
	if (o.verify_card_id && json_object_set_new(r, "card_id_verified", json_true()))
		rc = SSC_ENOMEM;
	if (!rc)
		rc = lost_result(call, r);
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
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/* ---- card.read_items ---------------------------------------------------------------------- */

static int items_parse_params(const struct op_env *env, json_t *params, struct item_file *f,
			      uint8_t *tags, size_t *n, int *internal_auth, int *allow_lost,
			      struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "file", "items", "internal_auth",
						"allow_lost", NULL };
	json_t *jf, *ji, *v;
	size_t i;
	int rc;

	*allow_lost = 0;
	if ((rc = ops_params_check(params, allowed, diag)) ||
	    (rc = ops_params_internal_auth(env, params, internal_auth, diag)) ||
	    (rc = ops_params_bool(params, "allow_lost", allow_lost, diag)))
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

int ops_read_items_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag)
{
	struct item_file f;
	uint8_t tags[OPS_MAX_ITEMS];
	size_t n;
	int ia, al;

	(void)op;
	return items_parse_params(env, params, &f, tags, &n, &ia, &al, diag);
}

/*
 * Every record of a cyclic transaction file, newest first, as an array of objects. *truncated is
 * set when the card holds records it cannot address (a card that reads records by tag only shows
 * the newest one): the list is then what the card could show, not all it holds.
 */
/* One record into the array arg. */
static int items_txn_add(void *arg, int recno, const uint8_t *v, size_t n, struct ssc_diag *diag)
{
	struct item_txn t;
	json_t *o;
	int rc;

	(void)recno;
	rc = items_decode_txn(v, n, &t, diag);
	if (rc)
		return rc;
	o = ops_txn_json(&t);
	OPENSSL_cleanse(&t, sizeof(t));
	if (!o || json_array_append_new(arg, o))
		return SSC_ENOMEM;
	return 0;
}

static int items_read_txns(struct ssc_card *c, const struct item_file *f,
			   const struct item_def *it, json_t **out, int *truncated,
			   struct ssc_diag *diag)
{
	json_t *arr = json_array();
	int rc;

	if (!arr)
		return SSC_ENOMEM;
	rc = ops_txn_each(c, f, it, items_txn_add, arr, diag);
	if (rc == OPS_TXN_HIDDEN) {
		*truncated = 1;
		rc = 0;
	}
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

int ops_read_items_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct item_file f;
	struct ssc_card c;
	uint8_t tags[OPS_MAX_ITEMS];
	char text[ITEM_TEXT_MAX];
	json_t *values = NULL;
	size_t n;
	int rc, internal_auth, truncated = 0;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	rc = items_parse_params(env, call->params, &f, tags, &n, &internal_auth, &call->allow_lost,
				diag);
	if (rc)
		return rc;
	rc = ops_card_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_card_identify(env, call, &c, 0, diag);
	if (!rc && internal_auth)
		rc = ssc_internal_auth(&c, diag);
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
			rc = items_read_txns(&c, &f, &it, &v, &truncated, diag);
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
	else if (internal_auth && json_object_set_new(*result, "genuine", json_true()))
		rc = SSC_ENOMEM;
	else if (truncated && json_object_set_new(*result, "truncated", json_true()))
		rc = SSC_ENOMEM;
	else
		rc = lost_result(call, *result);
	if (rc) {
		json_decref(*result);
		*result = NULL;
	}
out:
	json_decref(values);
	if (c.authenticated)
		*reset_card = 1;
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/* ---- card.internal_auth ------------------------------------------------------------------- */

int ops_read_auth_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ssc_card c;
	int rc;

	ops_env_snapshot(shared, &snap);
	(void)reset_card;   /* INTERNAL AUTH leaves no security state */
	memset(&c, 0, sizeof(c));
	rc = ops_params_reader_only(op, env, call->params, diag);
	if (!rc)
		rc = ops_card_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_card_identify(env, call, &c, 0, diag);
	if (!rc)
		rc = ssc_internal_auth(&c, diag);
	if (!rc) {
		*result = json_pack("{s:b, s:s}", "genuine", 1, "algorithm",
				    c.alg == SSC_ALG_SM4 ? "sm4" : "des");
		if (!*result)
			rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	}
	if (c.authenticated)
		*reset_card = 1;
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
