/*
 * This file contains card.write_items (src/ops_int.h): the values encoded and checked against the
 * item table before anything is queued; on the worker, the card's current values read, a durable
 * write intent committed to the journal, the records written after external authentication, and
 * the outcome recorded (or the intent left pending for ops_recover.c when nobody knows). With a
 * request_id (ops_request.c) a repeat gets the first call's result, rebuilt from its params.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "log.h"
#include "jsontext.h"
#include "ops_int.h"

struct write_item {
	struct item_def it;
	uint8_t val[APDU_MAX_DATA];   /* encoded, then padded to the card's record length */
	size_t len;
	char old_ref[JOURNAL_REF_HEX + 1];
	char new_ref[JOURNAL_REF_HEX + 1];
};

/* One write request. Holds personal data: wiped before it is freed. */
struct write_req {
	struct item_file f;
	int append;                   /* DF04/EF08: one APPEND RECORD instead of UPDATEs */
	char settlement[64];          /* the appended record's 结算流水号 */
	struct ops_request rq;        /* the request_id ("" = none) and the params' fingerprint */
	size_t n;
	struct write_item w[OPS_MAX_ITEMS];
};

static void write_req_free(struct write_req *r)
{
	if (!r)
		return;
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

/* The value of tag in a write's items (keys are hex in either case), NULL when absent. */
static json_t *write_item_value(json_t *items, uint8_t tag)
{
	const char *key;
	json_t *v;
	uint8_t t;

	json_object_foreach(items, key, v)
		if (items_parse_tag(key, &t) == 0 && t == tag)
			return v;
	return NULL;
}

/*
 * 姓名 (09) takes the whole name, or its first part with the rest in 姓名扩展 (4E) as read_items
 * shows them: the two are joined and cut again between whole characters. w gets 09's part and a
 * second item 4E the rest (possibly empty), so that a name write never leaves an old extension
 * behind.
 */
static int write_name(struct write_req *r, struct write_item *w, json_t *items, json_t *v,
		      struct ssc_diag *diag)
{
	struct write_item *ext = w + 1;
	json_t *v4e = write_item_value(items, 0x4E);
	const char *rest = "";
	char joined[256];
	int rc;

	if (r->n + 2 > OPS_MAX_ITEMS)
		return ssc_diag_set(diag, SSC_EINVAL, "at most %d items per request", OPS_MAX_ITEMS);
	if (v4e && !json_is_string(v4e))
		return ssc_diag_set(diag, SSC_EINVAL, "the value of item 4E must be a string");
	if (v4e)
		rest = json_string_value(v4e);
	if (strlen(json_string_value(v)) != json_string_length(v) ||
	    (v4e && strlen(rest) != json_string_length(v4e)))
		return ssc_diag_set(diag, SSC_EVALUE, "the name holds a NUL");
	if ((size_t)snprintf(joined, sizeof(joined), "%s%s", json_string_value(v), rest) >=
	    sizeof(joined)) {
		OPENSSL_cleanse(joined, sizeof(joined));
		return ssc_diag_set(diag, SSC_EVALUE, "%s item 09 (%s): too long: a name holds at "
				    "most 50 bytes in GB 18030 (30 in 09, 20 in 4E)", r->f.name,
				    w->it.label);
	}
	rc = items_encode_name(&r->f, joined, w->val, &w->len, ext->val, &ext->len, &ext->it,
			       diag);
	OPENSSL_cleanse(joined, sizeof(joined));
	if (rc)
		return rc;
	r->n += 2;
	return 0;
}

/*
 * The params of a write, every value encoded and length-checked against the item table before
 * any APDU (spec §12.5: the card pads shorter values, refuses longer ones).
 */
static int write_parse(const struct op_env *env, json_t *params, struct write_req *r,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "file", "items", "request_id", NULL };
	json_t *jf, *ji, *v;
	const char *key;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = ops_request_params(params, allowed, &r->rq, diag);
	if (rc)
		return rc;
	jf = params ? json_object_get(params, "file") : NULL;
	ji = params ? json_object_get(params, "items") : NULL;
	if (!jf || !json_is_string(jf))
		return ssc_diag_set(diag, SSC_EINVAL, "\"file\" must be a file name like DF04/EF05");
	if (items_file_parse(json_string_value(jf), &r->f))
		return ssc_diag_set(diag, SSC_EBADITEM, "unknown file \"%.32s\"",
				    json_string_value(jf));
	if (r->f.wkey == ITEM_WKEY_NONE)
		return ssc_diag_set(diag, SSC_EBADITEM, "%s is not writable", r->f.name);
	if (!ji || !json_is_object(ji) || json_object_size(ji) == 0)
		return ssc_diag_set(diag, SSC_EINVAL, "\"items\" must be a non-empty object "
				    "{tag: value}");
	if (json_object_size(ji) > OPS_MAX_ITEMS)
		return ssc_diag_set(diag, SSC_EINVAL, "at most %d items per request", OPS_MAX_ITEMS);
	r->append = r->f.cyclic;
	if (r->append && json_object_size(ji) != 1)
		return ssc_diag_set(diag, SSC_EINVAL, "%s takes one record per call", r->f.name);
	json_object_foreach(ji, key, v) {
		struct write_item *w = &r->w[r->n];
		uint8_t tag;
		int n;

		if (items_parse_tag(key, &tag) || items_find(&r->f, tag, &w->it))
			return ssc_diag_set(diag, SSC_EBADITEM, "%s has no item \"%.8s\"", r->f.name,
					    key);
		/* 姓名扩展 is the rest of the name: written with 09 (joined to its value there),
		 * never alone (an extension of another name would make read_basic join a new tail
		 * to the old name). */
		if (w->it.checks & ITEM_NAME_EXT) {
			if (!write_item_value(ji, 0x09))
				return ssc_diag_set(diag, SSC_EBADITEM, "%s item %02X (%s) is written "
						    "with item 09: give the whole name in 09",
						    r->f.name, tag, w->it.label);
			continue;
		}
		for (size_t k = 0; k < r->n; k++)
			if (r->w[k].it.tag == tag)
				return ssc_diag_set(diag, SSC_EINVAL, "item %02X is listed twice",
						    tag);
		/* The card number and id name the card (and its journal rows): issuer data. */
		if (w->it.checks & ITEM_READONLY)
			return ssc_diag_set(diag, SSC_EBADITEM, "%s item %02X (%s) is not writable",
					    r->f.name, tag, w->it.label);
		if ((w->it.checks & ITEM_NAME) && json_is_string(v)) {
			rc = write_name(r, w, ji, v, diag);
			if (rc)
				return rc;
			continue;
		}
		if (w->it.fmt == ITEM_FMT_TXN) {
			struct item_txn t;

			rc = ops_txn_parse(v, &t, diag);
			n = rc ? rc : items_encode_txn(&t, w->val, sizeof(w->val), diag);
			memcpy(r->settlement, t.settlement, sizeof(r->settlement));
			OPENSSL_cleanse(&t, sizeof(t));
		} else if (json_is_string(v)) {
			n = items_encode(&r->f, &w->it, json_string_value(v), w->val, sizeof(w->val),
					 diag);
			if (n >= 0 && strlen(json_string_value(v)) != json_string_length(v))
				n = ssc_diag_set(diag, SSC_EVALUE, "item %02X holds a NUL", tag);
		} else {
			n = ssc_diag_set(diag, SSC_EINVAL, "the value of item %02X must be a string",
					 tag);
		}
		if (n < 0)
			return n;
		w->len = (size_t)n;
		r->n++;
	}
	/* Never a write without a durable intent: refused before it is even queued. */
	if (!env->journal)
		return ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: writes are refused");
	if (r->rq.id[0])
		return ops_request_fingerprint(env->journal, "card.write_items", params, &r->rq,
					       diag);
	return 0;
}

/* Writes are refused on an expired card (the daemon's UTC date after its expiry date). */
int ops_write_expiry(struct ssc_card *c, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	char exp[ITEM_TEXT_MAX], today[9];
	int n;

	if (items_file_parse("SSSE/EF05", &f) || items_find(&f, 0x06, &it))
		return SSC_EINTERNAL;
	n = ssc_read_text(c, &f, &it, exp, sizeof(exp), diag);
	if (n < 0)
		return n;
	ssc_today(today);
	if (n == 8 && strcmp(today, exp) > 0)
		return ssc_diag_set(diag, SSC_EEXPIRED, "the card expired on %s: writes are refused",
				    exp);
	return 0;
}

/*
 * Before the intent: this card's earlier intents must all be resolved (an intent read back
 * against values a later write changed could no longer tell applied from not applied).
 */
int ops_write_resolve_first(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			    struct ssc_diag *diag)
{
	int n = journal_pending_count(env->journal, card_ref), rc;

	if (n == 0)
		return 0;
	if (n > 0) {
		rc = ops_recover_card(env, c, card_ref, diag);
		if (rc < 0)
			return rc;
		n = journal_pending_count(env->journal, card_ref);
	}
	if (n < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot count pending intents");
	if (n > 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "the card has %d write intent(s) that cannot "
				    "be resolved yet (see the log): writes are refused", n);
	return 0;
}

/* A record already on the card with the settlement number arg: SSC_EEXIST. */
static int append_seen(void *arg, int recno, const uint8_t *v, size_t n, struct ssc_diag *diag)
{
	int rc = ops_txn_same_settlement(v, n, arg, diag);

	if (rc == 1)
		rc = ssc_diag_set(diag, SSC_EEXIST, "a record with this settlement number is "
				  "already on the card (record %d)", recno);
	return rc;
}

/*
 * An append: its settlement number must not be on the card yet (read-back would be ambiguous;
 * it is also a double booking), and the new record's ref.
 */
static int write_prepare_append(const struct op_env *env, struct ssc_card *c,
				const char *card_ref, struct write_req *r, struct ssc_diag *diag)
{
	struct write_item *w = &r->w[0];
	int rc = ops_txn_each(c, &r->f, &w->it, append_seen, r->settlement, diag);

	if (rc == OPS_TXN_HIDDEN) {
		/*
		 * The card holds older records it cannot address (tag-only reads): what it cannot
		 * show, the journal may remember. An append made through another journal stays out
		 * of sight.
		 */
		int k = journal_append_applied(env->journal, card_ref, r->settlement);

		rc = 0;
		if (k < 0)
			rc = ssc_diag_set(diag, SSC_EJOURNAL, "cannot check the journal for this "
					  "settlement number");
		else if (k > 0)
			rc = ssc_diag_set(diag, SSC_EEXIST, "this settlement number was already "
					  "appended to this card");
	}
	journal_value_ref(env->journal, w->val, w->len, w->new_ref);
	return rc;
}

/*
 * The card's current values (update) or records (append), the new values padded as the card
 * will hold them, and the refs of both: what read-back needs to tell applied from not applied.
 */
static int write_prepare(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			 struct write_req *r, struct ssc_diag *diag)
{
	uint8_t v[APDU_MAX_DATA];
	int rc = 0;

	if (r->append)
		return write_prepare_append(env, c, card_ref, r, diag);
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		struct write_item *w = &r->w[i];
		int n = ssc_read_item(c, &r->f, &w->it, 0, v, sizeof(v), diag);

		if (n == SSC_ENORECORD)
			n = ssc_diag_set(diag, SSC_ENORECORD, "%s item %02X (%s): the card has no "
					 "such record to update", r->f.name, w->it.tag, w->it.label);
		if (n < 0) {
			rc = n;
			break;
		}
		journal_value_ref(env->journal, v, (size_t)n, w->old_ref);
		rc = items_pad(&r->f, &w->it, w->val, w->len, (size_t)n, diag);
		if (rc < 0)
			break;
		w->len = (size_t)rc;
		rc = 0;
		journal_value_ref(env->journal, w->val, w->len, w->new_ref);
	}
	OPENSSL_cleanse(v, sizeof(v));
	return rc;
}

/* The intent's detail: what identifies the write's effect, never a personal value in clear. */
static char *write_detail(const struct write_req *r)
{
	json_t *d, *recs;
	char *s;

	if (r->append) {
		d = json_pack("{s:s, s:s, s:s}", "op", "append", "settlement_no", r->settlement,
			      "record", r->w[0].new_ref);
	} else {
		recs = json_array();
		for (size_t i = 0; recs && i < r->n; i++) {
			char tag[3];

			snprintf(tag, sizeof(tag), "%02X", r->w[i].it.tag);
			if (json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "tag", tag,
								  "old", r->w[i].old_ref,
								  "new", r->w[i].new_ref))) {
				json_decref(recs);
				recs = NULL;
			}
		}
		d = recs ? json_pack("{s:s, s:o}", "op", "update", "records", recs) : NULL;
	}
	/* The client's request_id and the params' keyed fingerprint: what a repeat is matched by. */
	if (d && r->rq.id[0] &&
	    (json_object_set_new(d, "request_id", json_string(r->rq.id)) ||
	     json_object_set_new(d, "fp", json_string(r->rq.fp)))) {
		json_decref(d);
		d = NULL;
	}
	s = jsontext_dump(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(d);
	return s;
}

/* The result's items: the values as the card now holds them (the bytes it acknowledged). */
static json_t *write_values(const struct write_req *r, struct ssc_diag *diag)
{
	json_t *values = json_object();
	char text[ITEM_TEXT_MAX];

	for (size_t i = 0; values && i < r->n; i++) {
		const struct write_item *w = &r->w[i];
		json_t *v = NULL;
		char key[3];

		snprintf(key, sizeof(key), "%02X", w->it.tag);
		if (w->it.fmt == ITEM_FMT_TXN) {
			struct item_txn t;

			if (items_decode_txn(w->val, w->len, &t, diag) == 0)
				v = ops_txn_json(&t);
			OPENSSL_cleanse(&t, sizeof(t));
		} else {
			int n = items_decode(&r->f, &w->it, w->val, w->len, text, sizeof(text), diag);

			if (n >= 0)
				v = json_stringn(text, (size_t)n);
		}
		if (!v || json_object_set_new(values, key, v)) {
			json_decref(values);
			values = NULL;
		}
	}
	OPENSSL_cleanse(text, sizeof(text));
	return values;
}

/*
 * The error data of a write cut off after some of its records (docs/api.md): "written", the tags
 * of the done records the card acknowledged, in the order written, and "journal_id", the intent.
 * NULL when it cannot be built (the error goes out without it).
 */
static json_t *write_error_data(const struct write_req *r, size_t done, int64_t id)
{
	json_t *tags = json_array();

	for (size_t i = 0; tags && i < done && i < r->n; i++) {
		char tag[3];

		snprintf(tag, sizeof(tag), "%02X", r->w[i].it.tag);
		if (json_array_append_new(tags, json_string(tag))) {
			json_decref(tags);
			tags = NULL;
		}
	}
	return tags ? json_pack("{s:o, s:I}", "written", tags, "journal_id", (json_int_t)id) : NULL;
}

/* The card APDUs of the write. *done counts the records the card acknowledged. */
static int write_apply(struct ssc_card *c, const struct write_req *r, size_t *done,
		       struct ssc_diag *diag)
{
	const struct config_key *key = items_write_key(c->cfg, &r->f);
	int rc = 0;

	*done = 0;
	if (r->f.wkey == ITEM_WKEY_SSSE || r->f.wkey == ITEM_WKEY_EF0D) {
		rc = ssc_select_df(c, r->f.df, diag);
		if (!rc)
			rc = ssc_external_auth(c, key, diag);
	}
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		const struct write_item *w = &r->w[i];

		rc = ssc_write_record(c, &r->f, &w->it, r->append, (uint8_t)w->len, w->val, w->len,
				      diag);
		if (rc == 0)
			(*done)++;
	}
	return rc;
}

/*
 * After the card answered (or did not): the outcome. Success -> applied. A transport failure ->
 * pending (nobody knows whether the last command reached the card: resolution decides, and
 * records "partial" when the card holds some of the new values and the old ones of the rest). A
 * card or PSAM refusal before any record was written -> failed with the error's name. A refusal
 * after some records were written -> resolved at once by reading back ("partial", the result
 * the refusal's name). Returns 1 when the intent is left pending.
 */
static int write_outcome(const struct op_env *env, struct ssc_card *c, int64_t id,
			 const struct write_req *r, const char *detail, int rc, size_t done)
{
	struct ssc_diag jd;
	int jr;

	ssc_diag_init(&jd);
	if (rc == 0) {
		jr = journal_outcome(env->journal, id, JOURNAL_APPLIED, "SSC_OK", "card", &jd);
	} else if (ops_transport(rc)) {
		log_warn("journal: intent %" PRId64 " (%s) left pending: %s during the write; the "
			 "card will be read back", id, r->f.name, ssc_strerror_name(rc));
		return 1;
	} else if (done == 0) {
		jr = journal_outcome(env->journal, id, JOURNAL_FAILED, ssc_strerror_name(rc), "card",
				     &jd);
	} else {
		struct ops_pending p;

		p.id = id;
		snprintf(p.file, sizeof(p.file), "%s", r->f.name);
		p.detail = (char *)(uintptr_t)detail;
		jr = ops_recover_one(env, c, &p, ssc_strerror_name(rc), &jd);
		if (jr == 1)
			return 0;
		if (jr == 0)
			jr = SSC_EJOURNAL;
	}
	if (jr == 0)
		return 0;
	log_error("journal: intent %" PRId64 " (%s): the outcome could not be recorded (%s: %s); "
		  "it stays pending and will be resolved by reading the card back", id, r->f.name,
		  ssc_strerror_name(jr), jd.msg);
	return 1;
}

/* The result of a write: the file, the items as the card holds them, the intent's id. */
static int write_result(const struct write_req *r, int64_t id, json_t **result,
			struct ssc_diag *diag)
{
	json_t *values = write_values(r, diag);

	*result = values ? json_pack("{s:s, s:o, s:I}", "file", r->f.name, "items", values,
				     "journal_id", (json_int_t)id)
			 : NULL;
	if (!*result)
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	return 0;
}

/*
 * Parses params into a request of its own (freed here): the check of a write's params on the
 * loop thread (result NULL), or, with result, the result of an applied request rebuilt from its
 * repeated params (the journal keeps no value): the values as encoded, which decode as the padded
 * ones the card holds.
 */
static int write_parse_alone(const struct op_env *env, json_t *params, int64_t intent,
			     json_t **result, struct ssc_diag *diag)
{
	struct write_req *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return SSC_ENOMEM;
	rc = write_parse(env, params, r, diag);
	if (!rc && result)
		rc = write_result(r, intent, result, diag);
	write_req_free(r);
	return rc;
}

int ops_write_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		    struct ssc_diag *diag)
{
	(void)op;
	return write_parse_alone(env, params, 0, NULL, diag);
}

static int write_replayed(const struct op_desc *op, const struct op_env *env, json_t *params,
			  int64_t intent, json_t **result, struct ssc_diag *diag)
{
	(void)op;
	return write_parse_alone(env, params, intent, result, diag);
}

int ops_write_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		     int no_card, json_t **result, struct ssc_diag *diag)
{
	return ops_request_replay(op, env, params, no_card, write_replayed, result, diag);
}

/* write_result as ops_request_repeat() rebuilds it (req: the write_req). */
static int write_rebuilt(const struct op_env *env, const void *req, int64_t intent,
			 json_t **result, struct ssc_diag *diag)
{
	(void)env;
	return write_result(req, intent, result, diag);
}

int ops_write_card_open(const struct op_env *env, struct card_io *io, struct op_call *call,
			unsigned *insertion_flags, struct ssc_card *c, struct ssc_diag *diag)
{
	int rc = ops_card_open(env, io, insertion_flags, c, diag);

	if (!rc)
		rc = ops_card_identify(env, call, c, 1, diag);
	if (!rc)
		rc = ssc_ensure_gen(c, diag);
	if (!rc && c->gen == 1)
		rc = ssc_diag_set(diag, SSC_EUNSUPPORTED,
				  "unsupported card: spec 1.00 cards cannot be written");
	return rc;
}

int ops_write_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		  struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		  struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct write_req *r = calloc(1, sizeof(*r));
	struct keyprov_div div;
	struct ssc_card c;
	char *detail = NULL;
	int64_t id = 0;
	size_t done = 0;
	int rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	if (!r)
		return SSC_ENOMEM;
	rc = write_parse(env, call->params, r, diag);
	/* A repeat waits for the first while it runs, then takes its result without the card. */
	if (!rc && r->rq.id[0])
		rc = ops_request_claim(&r->rq, io->deadline_ms, diag);
	if (!rc && r->rq.id[0])
		rc = ops_request_repeat(env, call, &r->rq, 0, write_rebuilt, r, result, diag);
	if (rc)
		goto out;
	rc = ops_write_card_open(env, io, call, insertion_flags, &c, diag);
	if (!rc && r->f.min_gen && c.gen < r->f.min_gen)
		rc = ssc_diag_set(diag, SSC_EUNSUPPORTED, "%s exists on spec %d.00 cards only",
				  r->f.name, r->f.min_gen);
	if (!rc)
		rc = ops_write_expiry(&c, diag);
	if (!rc)
		rc = ops_write_resolve_first(env, &c, call->card_ref, diag);
	/* An earlier request with this request_id cut off: now read back, or still unknown. */
	if (!rc && r->rq.id[0])
		rc = ops_request_repeat(env, call, &r->rq, 1, write_rebuilt, r, result, diag);
	/* No PSAM, no write: found out before the intent, not after. */
	if (!rc)
		rc = ssc_auth_prepare(&c, &div, diag);
	if (!rc)
		rc = write_prepare(env, &c, call->card_ref, r, diag);
	if (rc)
		goto out;
	detail = write_detail(r);
	if (!detail) {
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the intent");
		goto out;
	}
	rc = journal_intent(env->journal, call->peer, call->card_ref, io->reader_id, r->f.name,
			    detail, &id, diag);
	if (rc) {
		/* The journal's reason is in diag->msg: copy it first, vsnprintf must not read
		 * the buffer it writes. */
		char why[sizeof(diag->msg)];

		snprintf(why, sizeof(why), "%s", diag->msg);
		rc = ssc_diag_set(diag, SSC_EJOURNAL, "the write intent could not be recorded "
				  "(%.160s): nothing was written", why);
		goto out;
	}
	rc = write_apply(&c, r, &done, diag);
	if (write_outcome(env, &c, id, r, detail, rc, done))
		*insertion_flags &= ~(unsigned)CARD_FLAG_RESOLVED;   /* resolve on the next op */
	if (rc && done > 0)
		call->error_data = write_error_data(r, done, id);
	if (rc)
		goto out;
	rc = write_result(r, id, result, diag);
out:
	if (rc == 1)
		rc = 0;   /* answered from the journal */
	if (c.authenticated)
		*reset_card = 1;
	free(detail);
	ops_request_release(&r->rq);
	write_req_free(r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
