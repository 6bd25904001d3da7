/*
 * This file contains the card.* operations of the API (src/ops.h): strict parameter checks on the
 * loop thread, and the runs on a reader's worker thread that drive the card application (ssc.c),
 * consult the journal (lost-card list, write intents and their outcomes, resolution of intents
 * left pending by reading the card back) and build the JSON results.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "crypto.h"
#include "hex.h"
#include "items.h"
#include "keysel.h"
#include "log.h"
#include "ops.h"
#include "readers.h"
#include "ssc.h"

#define OPS_MAX_ITEMS 64          /* items in one card.read_items / card.write_items request */
#define OPS_MAX_CYCLIC 255        /* records read from a cyclic file (READ RECORD P1 limit) */
#define OPS_MAX_RESOLVE 32        /* pending intents of one card resolved in one pass */

/* The result name of an intent found "not applied" on read-back: its effect is not on the card. */
#define OPS_NOT_APPLIED "SSC_ENOTFOUND"

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
		if (!ok && strcmp(key, "allow_lost") == 0)
			return ssc_diag_set(diag, SSC_EINVAL, "\"allow_lost\" is for card.read_basic "
					    "and card.read_items only: a card on the lost-card list is "
					    "never written, authenticated or given a PIN operation");
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

/* ---- steps shared by every card operation ------------------------------------------------ */

/*
 * The environment as one operation sees it from start to end. The daemon publishes the journal
 * with an atomic store (NULL while it is out of service); an operation reads it once, so that it
 * cannot vanish between an intent and its outcome. The handle stays valid meanwhile: the daemon
 * suspends a failed journal, it never frees it while workers run.
 */
static void ops_env_snapshot(const struct op_env *env, struct op_env *out)
{
	out->cfg = env->cfg;
	out->kp = env->kp;
	out->journal = __atomic_load_n(&env->journal, __ATOMIC_ACQUIRE);
}

/* Failures after which nobody knows what the card did with the last command. */
static int ops_transport(int rc)
{
	return rc == SSC_ETIMEDOUT || rc == SSC_ECARDREMOVED || rc == SSC_ENOCARD ||
	       rc == SSC_EREADER || rc == SSC_EIO || rc == SSC_EPROTO || rc == SSC_ESHUTDOWN;
}

static int ops_resolve_card(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			    struct ssc_diag *diag);

/*
 * The card's identity for the journal: its card number and 卡识别码 (read once, two READ RECORDs
 * unless the op read them already), call->card_ref, and the lost-card list (call->lost). Without a
 * journal there is nothing to check (reads go on) or a write is refused. A listed card is refused
 * unless call->allow_lost (a read that asked to see a lost card).
 * writing: a journal error refuses the op (SSC_EJOURNAL) instead of being logged and passed over.
 */
static int ops_identify(const struct op_env *env, struct op_call *call, struct ssc_card *c,
			int writing, struct ssc_diag *diag)
{
	struct ssc_diag why;
	char id_hex[33];
	int rc;

	ssc_diag_init(&why);
	call->lost = -1;
	if (!env->journal)
		return writing ? ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: "
					      "writes are refused") : 0;
	rc = ssc_card_number(c, diag);
	if (!rc)
		rc = ssc_ensure_card_id(c, diag);
	if (rc)
		return rc;
	journal_card_ref(env->journal, c->card_number, call->card_ref);
	hex_encode(c->card_id, 16, id_hex, sizeof(id_hex), HEX_UPPER);
	rc = journal_blacklisted(env->journal, c->card_number, id_hex, &why);
	if (rc >= 0)
		call->lost = rc;
	if (rc == 1 && !(call->allow_lost && !writing))
		return ssc_diag_set(diag, SSC_EBLACKLISTED, "the card is on the lost-card list "
				    "(挂失): do not accept it");
	if (rc < 0) {
		if (writing)
			return ssc_diag_set(diag, SSC_EJOURNAL, "the lost-card list cannot be read "
					    "(%.160s): writes are refused", why.msg);
		log_warn("journal: the lost-card list cannot be read (%s); the read goes on unchecked",
			 why.msg);
	}
	return 0;
}

/*
 * A read that asked for "allow_lost": its answer says what the lost-card check found (lost:
 * true, false, or null when the list could not be checked), and so does its audit row.
 */
static int ops_lost_result(struct op_call *call, json_t *result)
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

/*
 * SELECT SSSE, then, on the first operation of an insertion while the journal holds pending
 * intents (of any card: which card this is costs APDUs to learn), resolves this card's intents.
 * A clean journal costs no APDU. A failure to resolve that is not the card leaving is logged and
 * the operation goes on; the next insertion tries again.
 */
static int ops_open(const struct op_env *env, struct card_io *io, unsigned *flags,
		    struct ssc_card *c, struct ssc_diag *diag)
{
	int rc, n;

	rc = ssc_open(c, io, env->cfg, env->kp, flags, diag);
	if (rc || !env->journal || (*flags & CARD_FLAG_RESOLVED))
		return rc;
	n = journal_pending_count(env->journal, NULL);
	if (n < 0) {
		log_warn("journal: cannot count pending intents; this card is not checked for them");
		return 0;
	}
	if (n > 0) {
		rc = ops_resolve_card(env, c, NULL, diag);
		if (rc < 0 && ops_transport(rc))
			return rc;
		if (rc < 0) {
			log_warn("journal: pending intents of the card on %s not resolved: %s (%s)",
				 io->reader_id, ssc_strerror_name(rc), diag->msg);
			ssc_diag_init(diag);
		}
	}
	*flags |= CARD_FLAG_RESOLVED;
	return 0;
}

/* ---- resolution of pending intents by reading the card back ------------------------------ */

struct ops_pending {
	int64_t id;
	char file[32];
	char *detail;
};

struct ops_pending_list {
	struct ops_pending v[OPS_MAX_RESOLVE];
	size_t n;
};

static int ops_collect(void *arg, const struct journal_intent_row *row)
{
	struct ops_pending_list *l = arg;

	if (l->n == OPS_MAX_RESOLVE)
		return 1;   /* the rest on a later pass */
	l->v[l->n].detail = strdup(row->detail);
	if (!l->v[l->n].detail)
		return SSC_ENOMEM;
	l->v[l->n].id = row->id;
	snprintf(l->v[l->n].file, sizeof(l->v[l->n].file), "%s", row->file);
	l->n++;
	return 0;
}

/* The keyed ref of one record's value as the card holds it now. */
static int ops_read_ref(const struct op_env *env, struct ssc_card *c, const struct item_file *f,
			const struct item_def *it, int recno, char ref[JOURNAL_REF_HEX + 1],
			struct ssc_diag *diag)
{
	uint8_t v[APDU_MAX_DATA];
	int n = ssc_read_item(c, f, it, recno, v, sizeof(v), diag);

	if (n >= 0)
		journal_value_ref(env->journal, v, (size_t)n, ref);
	OPENSSL_cleanse(v, sizeof(v));
	return n < 0 ? n : 0;
}

/* What reading an intent back found. */
struct ops_readback {
	const char *outcome;      /* JOURNAL_APPLIED, JOURNAL_FAILED or JOURNAL_PARTIAL */
	const char *result;       /* the result name */
	char written[OPS_MAX_ITEMS * 3 + 1];       /* partial: the tags whose new value is there */
	char not_written[OPS_MAX_ITEMS * 3 + 1];   /* partial: the tags that still hold the old */
};

/* Appends a tag ("30") to a blank-separated list that has room for OPS_MAX_ITEMS of them. */
static void ops_tag_list_add(char *list, size_t cap, const char *tag)
{
	size_t n = strlen(list);

	snprintf(list + n, cap - n, "%s%s", n ? " " : "", tag);
}

/*
 * An update intent: every record new (applied), every record old (failed: not applied), some
 * new and the others old (partial: a write cut off between its records, rb->written and
 * rb->not_written name them), or a record that is neither (failed, SSC_EBADCARDDATA: the card
 * was changed elsewhere). cause: the error that cut the write when known, the result of a
 * partial outcome (else SSC_ENOTFOUND: not all the new values are there).
 */
static int ops_readback_update(const struct op_env *env, struct ssc_card *c,
			       const struct item_file *f, json_t *records, const char *cause,
			       struct ops_readback *rb, struct ssc_diag *diag)
{
	int all_new = 1, all_old = 1, neither = 0;
	size_t i;
	json_t *r;

	if (!json_is_array(records) || json_array_size(records) == 0 ||
	    json_array_size(records) > OPS_MAX_ITEMS)
		return SSC_EINVAL;
	json_array_foreach(records, i, r) {
		const char *tag_s = json_string_value(json_object_get(r, "tag"));
		const char *old_ref = json_string_value(json_object_get(r, "old"));
		const char *new_ref = json_string_value(json_object_get(r, "new"));
		char ref[JOURNAL_REF_HEX + 1];
		struct item_def it;
		uint8_t tag;
		int rc;

		if (!tag_s || !old_ref || !new_ref || items_parse_tag(tag_s, &tag) ||
		    items_find(f, tag, &it))
			return SSC_EINVAL;
		rc = ops_read_ref(env, c, f, &it, 0, ref, diag);
		if (rc)
			return rc;
		/* A record written with its old value matches both: it decides nothing. */
		all_new &= strcmp(ref, new_ref) == 0;
		all_old &= strcmp(ref, old_ref) == 0;
		if (strcmp(ref, new_ref) == 0)
			ops_tag_list_add(rb->written, sizeof(rb->written), tag_s);
		else if (strcmp(ref, old_ref) == 0)
			ops_tag_list_add(rb->not_written, sizeof(rb->not_written), tag_s);
		else
			neither = 1;
	}
	if (all_new) {
		rb->outcome = JOURNAL_APPLIED;
		rb->result = "SSC_OK";
	} else if (all_old) {
		rb->outcome = JOURNAL_FAILED;
		rb->result = OPS_NOT_APPLIED;
	} else if (!neither) {
		rb->outcome = JOURNAL_PARTIAL;
		rb->result = cause ? cause : OPS_NOT_APPLIED;
	} else {
		rb->outcome = JOURNAL_FAILED;
		rb->result = "SSC_EBADCARDDATA";
	}
	return 0;
}

/* An append intent: is a record with its settlement number and ref on the card? */
static int ops_readback_append(const struct op_env *env, struct ssc_card *c,
			       const struct item_file *f, const char *settlement,
			       const char *record_ref, struct ops_readback *rb,
			       struct ssc_diag *diag)
{
	uint8_t v[APDU_MAX_DATA];
	struct item_def it;
	int found = 0, rc = 0;

	if (!f->cyclic || f->n_items != 1)
		return SSC_EINVAL;
	it = f->items[0];
	for (int recno = 1; recno <= OPS_MAX_CYCLIC && !found; recno++) {
		char ref[JOURNAL_REF_HEX + 1];
		struct item_txn t;
		int n = ssc_read_item(c, f, &it, recno, v, sizeof(v), diag);

		if (n == SSC_ENORECORD) {
			ssc_diag_init(diag);
			break;
		}
		if (n < 0) {
			rc = n;
			break;
		}
		journal_value_ref(env->journal, v, (size_t)n, ref);
		if (strcmp(ref, record_ref) == 0 && items_decode_txn(v, (size_t)n, &t, diag) == 0 &&
		    strcmp(t.settlement, settlement) == 0)
			found = 1;
		OPENSSL_cleanse(&t, sizeof(t));
		ssc_diag_init(diag);
	}
	OPENSSL_cleanse(v, sizeof(v));
	if (rc)
		return rc;
	rb->outcome = found ? JOURNAL_APPLIED : JOURNAL_FAILED;
	rb->result = found ? "SSC_OK" : OPS_NOT_APPLIED;
	return 0;
}

/*
 * Reads back what one intent would have changed and records its outcome (cause: the error that
 * cut the write, when this daemon saw it; NULL after an interruption). Returns 1 (resolved), 0
 * (left pending: a detail this code cannot read, or resolved meanwhile by someone else), or the
 * card's error (the intent stays pending).
 */
static int ops_resolve_one(const struct op_env *env, struct ssc_card *c,
			   const struct ops_pending *p, const char *cause, struct ssc_diag *diag)
{
	struct ops_readback rb;
	char how[sizeof(rb.written) + sizeof(rb.not_written) + 40];
	struct item_file f;
	const char *op;
	json_t *d;
	int rc;

	memset(&rb, 0, sizeof(rb));

	d = json_loads(p->detail, 0, NULL);
	op = d ? json_string_value(json_object_get(d, "op")) : NULL;
	if (!op || items_file_parse(p->file, &f)) {
		rc = SSC_EINVAL;
	} else if (strcmp(op, "update") == 0) {
		rc = ops_readback_update(env, c, &f, json_object_get(d, "records"), cause, &rb,
					 diag);
	} else if (strcmp(op, "append") == 0) {
		const char *ser = json_string_value(json_object_get(d, "settlement_no"));
		const char *ref = json_string_value(json_object_get(d, "record"));

		rc = ser && ref ? ops_readback_append(env, c, &f, ser, ref, &rb, diag)
				: SSC_EINVAL;
	} else {
		rc = SSC_EINVAL;
	}
	json_decref(d);
	if (rc == SSC_EINVAL) {
		log_warn("journal: intent %" PRId64 " (%s) has a detail this daemon cannot read "
			 "back; it stays pending", p->id, p->file);
		return 0;
	}
	if (rc)
		return rc;
	snprintf(how, sizeof(how), "readback");
	if (strcmp(rb.outcome, JOURNAL_PARTIAL) == 0) {
		/* Which items are on the card: tags only, never a value. */
		snprintf(how, sizeof(how), "readback; written %s; not written %s", rb.written,
			 rb.not_written);
		log_warn("journal: intent %" PRId64 " (%s) was written in part: the new values of %s "
			 "are on the card, %s keep their old ones; recorded as partial", p->id,
			 p->file, rb.written, rb.not_written);
	} else if (strcmp(rb.result, "SSC_EBADCARDDATA") == 0) {
		log_warn("journal: intent %" PRId64 " (%s): the card holds values this write did not "
			 "put there (changed elsewhere); marked failed", p->id, p->file);
	}
	rc = journal_outcome(env->journal, p->id, rb.outcome, rb.result, how, diag);
	if (rc == SSC_EEXIST) {
		ssc_diag_init(diag);
		return 0;
	}
	if (rc)
		return rc;
	log_info("journal: intent %" PRId64 " (%s) resolved by reading the card back: %s (%s)",
		 p->id, p->file, rb.outcome, rb.result);
	return 1;
}

/*
 * Resolves the pending intents of the card c (card_ref, or learned from the card when NULL).
 * Returns the number resolved, or an error (transport errors stop the pass at once).
 */
static int ops_resolve_card(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			    struct ssc_diag *diag)
{
	struct ops_pending_list *l;
	char ref[JOURNAL_REF_HEX + 1];
	int rc, done = 0;

	if (!card_ref) {
		rc = ssc_card_number(c, diag);
		if (rc)
			return rc;
		journal_card_ref(env->journal, c->card_number, ref);
		card_ref = ref;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return SSC_ENOMEM;
	rc = journal_pending(env->journal, card_ref, ops_collect, l);
	if (rc == 1)
		rc = 0;
	if (rc < 0)
		rc = ssc_diag_set(diag, rc, "journal: cannot list the pending intents");
	for (size_t i = 0; i < l->n && rc >= 0; i++) {
		int r = ops_resolve_one(env, c, &l->v[i], NULL, diag);

		if (r > 0)
			done++;
		else if (r < 0)
			rc = r;
	}
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].detail);
	free(l);
	return rc < 0 ? rc : done;
}

int ops_resolve_pending(const struct op_env *shared, struct card_io *io, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ssc_card c;
	unsigned flags = 0;
	int n, rc;

	ops_env_snapshot(shared, &snap);
	if (!env->journal)
		return 0;
	n = journal_pending_count(env->journal, NULL);
	if (n < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot count pending intents");
	if (n == 0)
		return 0;
	rc = ssc_open(&c, io, env->cfg, env->kp, &flags, diag);
	if (rc == 0)
		rc = ops_resolve_card(env, &c, NULL, diag);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/* ---- card.read_basic ---------------------------------------------------------------------- */

struct basic_opts {
	int internal_auth;
	int verify_card_id;
	int allow_lost;
};

/* internal_auth: the param asks for it, [card] require_internal_auth imposes it. */
static int ops_internal_auth_param(const struct op_env *env, json_t *params, int *out,
				   struct ssc_diag *diag)
{
	int asked = 0, rc = ops_bool_param(params, "internal_auth", &asked, diag);

	*out = asked || env->cfg->require_internal_auth;
	return rc;
}

static int basic_parse(const struct op_env *env, json_t *params, struct basic_opts *o,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "internal_auth", "verify_card_id",
						"allow_lost", NULL };
	int rc;

	o->internal_auth = 0;
	o->verify_card_id = env->cfg->verify_card_id_mac;
	o->allow_lost = 0;
	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)) ||
	    (rc = ops_reader_param(params, diag)) ||
	    (rc = ops_internal_auth_param(env, params, &o->internal_auth, diag)) ||
	    (rc = ops_bool_param(params, "verify_card_id", &o->verify_card_id, diag)) ||
	    (rc = ops_bool_param(params, "allow_lost", &o->allow_lost, diag)))
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

/*
 * The PSAM's terminal number, or all zeros when no PSAM serves the card's algorithm. A key
 * server that cannot give one (down, refused, no PSAM of the algorithm) does not stop a read that
 * needed no key: all zeros too, as without a PSAM, and a log line that says why.
 */
static int basic_terminal(const struct op_env *env, const struct ssc_card *c, char term[13],
			  struct ssc_diag *diag)
{
	int rc;

	memcpy(term, "000000000000", 13);
	if (!env->kp || env->kp->ops->available(env->kp, c->alg) != 0)
		return 0;
	rc = env->kp->ops->terminal_number(env->kp, c->alg, term, c->io->deadline_ms, diag);
	if (keysel_failover(rc))
		log_warn("keys: no terminal number from the key server for the card on %s (%s: %s); "
			 "reported as 000000000000", c->io->reader_id, ssc_strerror_name(rc),
			 diag->msg);
	if (rc == SSC_ENOPSAM || rc == SSC_EPSAMALGO || keysel_failover(rc)) {
		/* The PSAM left between the two calls: as if there had been none. */
		memcpy(term, "000000000000", 13);
		ssc_diag_init(diag);
		return 0;
	}
	return rc;
}

static int basic_run(const struct op_env *shared, struct card_io *io, struct op_call *call,
		     unsigned *insertion_flags, int *reset_card, json_t **result,
		     struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct basic_opts o;
	struct ssc_card c;
	struct ssc_basic b;
	char term[13];
	json_t *r = NULL, *std = NULL;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	rc = basic_parse(env, call->params, &o, diag);
	if (rc)
		return rc;
	rc = ops_open(env, io, insertion_flags, &c, diag);
	if (rc)
		goto out;
	rc = ssc_read_basic(&c, &b, diag);
	if (rc)
		goto out;
	/* The read knows the card number and id already: the lost-card check costs no APDU. */
	call->allow_lost = o.allow_lost;
	rc = ops_identify(env, call, &c, 0, diag);
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
	if (!rc)
		rc = ops_lost_result(call, r);
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
	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)) ||
	    (rc = ops_reader_param(params, diag)) ||
	    (rc = ops_internal_auth_param(env, params, internal_auth, diag)) ||
	    (rc = ops_bool_param(params, "allow_lost", allow_lost, diag)))
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
	int ia, al;

	return items_parse_params(env, params, &f, tags, &n, &ia, &al, diag);
}

/* A §12.7 transaction record as the API shows it. */
static json_t *items_txn_json(const struct item_txn *t)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "time", t->time,
			 "institution", t->institution, "settlement_no", t->settlement,
			 "total", (json_int_t)t->total,
			 "personal_account", (json_int_t)t->personal_account,
			 "pooled", (json_int_t)t->pooled);
}

/*
 * Every record of a cyclic transaction file, newest first, as an array of objects. *truncated is
 * set when the card holds records it cannot address (a card that reads records by tag only shows
 * the newest one): the list is then what the card could show, not all it holds.
 */
static int items_read_txns(struct ssc_card *c, const struct item_file *f,
			   const struct item_def *it, json_t **out, int *truncated,
			   struct ssc_diag *diag)
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
			if (diag->sw == 0x6A86)
				*truncated = 1;   /* older records exist but cannot be addressed */
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
		o = items_txn_json(&t);
		OPENSSL_cleanse(&t, sizeof(t));
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

static int items_run(const struct op_env *shared, struct card_io *io, struct op_call *call,
		     unsigned *insertion_flags, int *reset_card, json_t **result,
		     struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct item_file f;
	struct ssc_card c;
	uint8_t tags[OPS_MAX_ITEMS];
	char text[ITEM_TEXT_MAX];
	json_t *values = NULL;
	size_t n;
	int rc, internal_auth, truncated = 0;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	rc = items_parse_params(env, call->params, &f, tags, &n, &internal_auth, &call->allow_lost,
				diag);
	if (rc)
		return rc;
	rc = ops_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_identify(env, call, &c, 0, diag);
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
		rc = ops_lost_result(call, *result);
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

static int auth_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", NULL };
	int rc;

	(void)env;
	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)))
		return rc;
	return ops_reader_param(params, diag);
}

static int auth_run(const struct op_env *shared, struct card_io *io, struct op_call *call,
		    unsigned *insertion_flags, int *reset_card, json_t **result,
		    struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ssc_card c;
	int rc;

	ops_env_snapshot(shared, &snap);
	(void)reset_card;   /* INTERNAL AUTH leaves no security state */
	memset(&c, 0, sizeof(c));
	rc = auth_check(env, call->params, diag);
	if (!rc)
		rc = ops_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_identify(env, call, &c, 0, diag);
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

/* ---- card.verify_pin, card.change_pin, card.reload_pin, card.unblock_pin ----------------- */

enum pin_op { PIN_VERIFY, PIN_CHANGE, PIN_RELOAD, PIN_UNBLOCK };

/* The PINs of one request: pin (VERIFY) or old_pin (CHANGE) in pin; the new one in new_pin. */
struct pin_req {
	struct ssc_pin pin;
	struct ssc_pin new_pin;
};

static void pin_req_wipe(struct pin_req *r)
{
	ssc_pin_wipe(&r->pin);
	ssc_pin_wipe(&r->new_pin);
}

/* A PIN param: a string of digits within the configured lengths; the message names the param. */
static int pin_param(const struct op_env *env, json_t *params, const char *name,
		     struct ssc_pin *p, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, name) : NULL;
	int rc;

	if (!v || !json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"%s\" must be a string of digits", name);
	rc = ssc_pin_parse(p, json_string_value(v), json_string_length(v), env->cfg->pin_min_len,
			   env->cfg->pin_max_len, diag);
	if (rc)
		return ssc_diag_set(diag, rc, "\"%s\": a PIN is %d to %d digits", name,
				    env->cfg->pin_min_len, env->cfg->pin_max_len);
	return 0;
}

/*
 * 1 when p is one of the issuers' initial PINs ([card] initial_pins), else 0; SSC_ECONFIG for an
 * entry that is no PIN (the configuration checked them: 4..12 digits). Needs no card: the policy
 * holds for every card, whichever of the initial PINs its issuer used.
 */
static int pin_is_initial(const struct op_env *env, const struct ssc_pin *p, struct ssc_diag *diag)
{
	struct ssc_pin initial;
	int found = 0;

	for (int i = 0; i < env->cfg->n_initial_pins && i < CONFIG_MAX_INITIAL_PINS; i++) {
		const char *text = env->cfg->initial_pins[i];

		/* The card's lengths do not apply to the list. */
		if (ssc_pin_parse(&initial, text, strnlen(text, CONFIG_PIN_TEXT), 1, SSC_PIN_MAX,
				  diag))
			return ssc_diag_set(diag, SSC_ECONFIG, "[card] initial_pins: PIN %d is not 4 "
					    "to 12 digits", i + 1);
		found |= ssc_pin_equal(p, &initial);
		ssc_pin_wipe(&initial);
	}
	return found;
}

/*
 * The params of a PIN operation, with the middleware's PIN policies (spec §12.4: the card has
 * none): a new PIN may not be an initial PIN ([card] initial_pins; SSC_EPININITIAL, standard
 * −36) nor, for CHANGE, the old one (SSC_EPINSAME); with [card] refuse_initial_pin, VERIFY with
 * an initial PIN is refused (SSC_EPINNOTCHANGED, standard −35) so that the holder must change it.
 */
static int pin_parse(const struct op_env *env, enum pin_op op, json_t *params, struct pin_req *r,
		     struct ssc_diag *diag)
{
	static const char *const allowed[4][4] = {
		{ "reader", "pin", NULL, NULL },
		{ "reader", "old_pin", "new_pin", NULL },
		{ "reader", "new_pin", NULL, NULL },
		{ "reader", "new_pin", NULL, NULL },
	};
	int rc, initial;

	memset(r, 0, sizeof(*r));
	if ((rc = ops_params_object(params, diag)) ||
	    (rc = ops_known_params(params, allowed[op], diag)) ||
	    (rc = ops_reader_param(params, diag)))
		return rc;
	if (op == PIN_VERIFY)
		rc = pin_param(env, params, "pin", &r->pin, diag);
	else if (op == PIN_CHANGE)
		rc = pin_param(env, params, "old_pin", &r->pin, diag);
	if (!rc && op != PIN_VERIFY)
		rc = pin_param(env, params, "new_pin", &r->new_pin, diag);
	if (rc)
		goto out;
	initial = pin_is_initial(env, op == PIN_VERIFY ? &r->pin : &r->new_pin, diag);
	if (initial < 0)
		rc = initial;
	else if (op == PIN_VERIFY && env->cfg->refuse_initial_pin && initial)
		rc = ssc_diag_set(diag, SSC_EPINNOTCHANGED, "this is still an initial PIN: change it "
				  "first (card.change_pin)");
	else if (op != PIN_VERIFY && initial)
		rc = ssc_diag_set(diag, SSC_EPININITIAL, "the new PIN must not be an initial PIN");
	else if (op == PIN_CHANGE && ssc_pin_equal(&r->new_pin, &r->pin))
		rc = ssc_diag_set(diag, SSC_EPINSAME, "the new PIN must differ from the old one");
out:
	if (rc)
		pin_req_wipe(r);
	return rc;
}

/*
 * Overwrites the PIN strings in the operation's private copy of the params. Best effort:
 * jansson keeps a string in a heap buffer of its own, which json_string_value() hands out as
 * const only to prevent accidents; the other copies of the request (the socket's line buffer,
 * the params rpc.c parsed and checked) are not within this function's reach.
 */
static void pin_wipe_params(json_t *params)
{
	static const char *const names[] = { "pin", "old_pin", "new_pin" };

	if (!params || !json_is_object(params))
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		json_t *v = json_object_get(params, names[i]);

		if (v && json_is_string(v))
			OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v),
					json_string_length(v));
	}
}

static int pin_check(const struct op_env *env, enum pin_op op, json_t *params,
		     struct ssc_diag *diag)
{
	struct pin_req r;
	int rc = pin_parse(env, op, params, &r, diag);

	pin_req_wipe(&r);
	return rc;
}

static int pin_run(const struct op_env *shared, enum pin_op op, struct card_io *io,
		   struct op_call *call, unsigned *insertion_flags, int *reset_card,
		   json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	static const char *const done_key[] = { "verified", "changed", "reloaded", "unblocked" };
	struct ssc_card c;
	struct pin_req r;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	rc = pin_parse(env, op, call->params, &r, diag);
	pin_wipe_params(call->params);
	if (rc)
		return rc;
	rc = ops_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_identify(env, call, &c, 0, diag);
	if (rc)
		goto out;
	/* Whatever happens from here, no verified state may outlive this call. */
	*reset_card = 1;
	switch (op) {
	case PIN_VERIFY:
		rc = ssc_verify_pin(&c, &r.pin, diag);
		break;
	case PIN_CHANGE:
		rc = ssc_change_pin(&c, &r.pin, &r.new_pin, diag);
		break;
	case PIN_RELOAD:
		rc = ssc_reload_pin(&c, &r.new_pin, diag);
		break;
	case PIN_UNBLOCK:
		rc = ssc_unblock_pin(&c, &r.new_pin, diag);
		break;
	}
	if (!rc) {
		*result = json_pack("{s:b}", done_key[op], 1);
		if (!*result)
			rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	}
out:
	pin_req_wipe(&r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

static int verify_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	return pin_check(env, PIN_VERIFY, params, diag);
}

static int verify_run(const struct op_env *env, struct card_io *io, struct op_call *call,
		      unsigned *insertion_flags, int *reset_card, json_t **result,
		      struct ssc_diag *diag)
{
	return pin_run(env, PIN_VERIFY, io, call, insertion_flags, reset_card, result, diag);
}

static int change_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	return pin_check(env, PIN_CHANGE, params, diag);
}

static int change_run(const struct op_env *env, struct card_io *io, struct op_call *call,
		      unsigned *insertion_flags, int *reset_card, json_t **result,
		      struct ssc_diag *diag)
{
	return pin_run(env, PIN_CHANGE, io, call, insertion_flags, reset_card, result, diag);
}

static int reload_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	return pin_check(env, PIN_RELOAD, params, diag);
}

static int reload_run(const struct op_env *env, struct card_io *io, struct op_call *call,
		      unsigned *insertion_flags, int *reset_card, json_t **result,
		      struct ssc_diag *diag)
{
	return pin_run(env, PIN_RELOAD, io, call, insertion_flags, reset_card, result, diag);
}

static int unblock_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	return pin_check(env, PIN_UNBLOCK, params, diag);
}

static int unblock_run(const struct op_env *env, struct card_io *io, struct op_call *call,
		       unsigned *insertion_flags, int *reset_card, json_t **result,
		       struct ssc_diag *diag)
{
	return pin_run(env, PIN_UNBLOCK, io, call, insertion_flags, reset_card, result, diag);
}

/* ---- card.write_items --------------------------------------------------------------------- */

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

/* A string field of a transaction object into out (cap bytes, with the NUL). */
static int txn_string(json_t *o, const char *name, char *out, size_t cap, struct ssc_diag *diag)
{
	json_t *v = json_object_get(o, name);

	if (!v || !json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "transaction field \"%s\" must be a string",
				    name);
	if (json_string_length(v) >= cap)
		return ssc_diag_set(diag, SSC_EVALUE, "transaction field \"%s\" is too long", name);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	if (strlen(out) != json_string_length(v))
		return ssc_diag_set(diag, SSC_EVALUE, "transaction field \"%s\" holds a NUL", name);
	return 0;
}

/* An amount in fen: an integer 0..4294967295 (4 bytes on the card). */
static int txn_amount(json_t *o, const char *name, uint32_t *out, struct ssc_diag *diag)
{
	json_t *v = json_object_get(o, name);

	if (!v || !json_is_integer(v))
		return ssc_diag_set(diag, SSC_EINVAL, "transaction field \"%s\" must be an integer "
				    "(fen)", name);
	if (json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)UINT32_MAX)
		return ssc_diag_set(diag, SSC_EVALUE, "transaction field \"%s\" is out of range "
				    "(0..4294967295 fen)", name);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

/* A DF04/EF08 record as read_items shows it: {time, institution, settlement_no, total, ...}. */
static int txn_parse(json_t *o, struct item_txn *t, struct ssc_diag *diag)
{
	static const char *const fields[] = { "time", "institution", "settlement_no", "total",
					      "personal_account", "pooled", NULL };
	int rc;

	memset(t, 0, sizeof(*t));
	if (!json_is_object(o))
		return ssc_diag_set(diag, SSC_EINVAL, "a transaction record must be an object");
	if ((rc = ops_known_params(o, fields, diag)) ||
	    (rc = txn_string(o, "time", t->time, sizeof(t->time), diag)) ||
	    (rc = txn_string(o, "institution", t->institution, sizeof(t->institution), diag)) ||
	    (rc = txn_string(o, "settlement_no", t->settlement, sizeof(t->settlement), diag)) ||
	    (rc = txn_amount(o, "total", &t->total, diag)) ||
	    (rc = txn_amount(o, "personal_account", &t->personal_account, diag)) ||
	    (rc = txn_amount(o, "pooled", &t->pooled, diag)))
		return rc;
	return 0;
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
	static const char *const allowed[] = { "reader", "file", "items", NULL };
	json_t *jf, *ji, *v;
	const char *key;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = ops_params_object(params, diag)) || (rc = ops_known_params(params, allowed, diag)) ||
	    (rc = ops_reader_param(params, diag)))
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

			rc = txn_parse(v, &t, diag);
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
	return 0;
}

static int write_check(const struct op_env *env, json_t *params, struct ssc_diag *diag)
{
	struct write_req *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return SSC_ENOMEM;
	rc = write_parse(env, params, r, diag);
	write_req_free(r);
	return rc;
}

/* Writes are refused on an expired card (the daemon's UTC date after its expiry date). */
static int write_check_expiry(struct ssc_card *c, struct ssc_diag *diag)
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
static int write_resolve_first(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			       struct ssc_diag *diag)
{
	int n = journal_pending_count(env->journal, card_ref), rc;

	if (n == 0)
		return 0;
	if (n > 0) {
		rc = ops_resolve_card(env, c, card_ref, diag);
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

/*
 * The card's current values (update) or records (append), the new values padded as the card
 * will hold them, and the refs of both: what read-back needs to tell applied from not applied.
 */
static int write_prepare(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			 struct write_req *r, struct ssc_diag *diag)
{
	uint8_t v[APDU_MAX_DATA];
	int rc = 0;

	if (r->append) {
		struct write_item *w = &r->w[0];

		/* A settlement already on the card would make read-back ambiguous; it is also a
		 * double booking. */
		for (int recno = 1; recno <= OPS_MAX_CYCLIC && rc == 0; recno++) {
			struct item_txn t;
			int n = ssc_read_item(c, &r->f, &w->it, recno, v, sizeof(v), diag);

			if (n == SSC_ENORECORD && diag->sw == 0x6A86) {
				/*
				 * The card holds older records it cannot address (tag-only
				 * reads): what it cannot show, the journal may remember. An
				 * append made through another journal stays out of sight.
				 */
				int k = journal_append_applied(env->journal, card_ref,
							       r->settlement);

				ssc_diag_init(diag);
				if (k < 0)
					rc = ssc_diag_set(diag, SSC_EJOURNAL, "cannot check the "
							  "journal for this settlement number");
				else if (k > 0)
					rc = ssc_diag_set(diag, SSC_EEXIST, "this settlement number "
							  "was already appended to this card");
				break;
			}
			if (n == SSC_ENORECORD) {
				ssc_diag_init(diag);
				break;
			}
			if (n < 0) {
				rc = n;
				break;
			}
			rc = items_decode_txn(v, (size_t)n, &t, diag);
			if (rc == 0 && strcmp(t.settlement, r->settlement) == 0)
				rc = ssc_diag_set(diag, SSC_EEXIST, "a record with this settlement "
						  "number is already on the card (record %d)", recno);
			OPENSSL_cleanse(&t, sizeof(t));
		}
		journal_value_ref(env->journal, w->val, w->len, w->new_ref);
		OPENSSL_cleanse(v, sizeof(v));
		return rc;
	}
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
	s = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
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
				v = items_txn_json(&t);
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
		jr = ops_resolve_one(env, c, &p, ssc_strerror_name(rc), &jd);
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

static int write_run(const struct op_env *shared, struct card_io *io, struct op_call *call,
		     unsigned *insertion_flags, int *reset_card, json_t **result,
		     struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct write_req *r = calloc(1, sizeof(*r));
	struct keyprov_div div;
	struct ssc_card c;
	json_t *values;
	char *detail = NULL;
	int64_t id = 0;
	size_t done = 0;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	if (!r)
		return SSC_ENOMEM;
	rc = write_parse(env, call->params, r, diag);
	if (!rc)
		rc = ops_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_identify(env, call, &c, 1, diag);
	if (!rc)
		rc = ssc_ensure_gen(&c, diag);
	if (!rc && c.gen == 1)
		rc = ssc_diag_set(diag, SSC_EUNSUPPORTED,
				  "unsupported card: spec 1.00 cards cannot be written");
	if (!rc && r->f.min_gen && c.gen < r->f.min_gen)
		rc = ssc_diag_set(diag, SSC_EUNSUPPORTED, "%s exists on spec %d.00 cards only",
				  r->f.name, r->f.min_gen);
	if (!rc)
		rc = write_check_expiry(&c, diag);
	if (!rc)
		rc = write_resolve_first(env, &c, call->card_ref, diag);
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
	values = write_values(r, diag);
	*result = values ? json_pack("{s:s, s:o, s:I}", "file", r->f.name, "items", values,
				     "journal_id", (json_int_t)id)
			 : NULL;
	if (!*result)
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
out:
	if (c.authenticated)
		*reset_card = 1;
	free(detail);
	write_req_free(r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

const struct op_desc ops_table[] = {
	{ "card.read_basic", basic_check, basic_run },
	{ "card.read_items", items_check, items_run },
	{ "card.internal_auth", auth_check, auth_run },
	{ "card.verify_pin", verify_check, verify_run },
	{ "card.change_pin", change_check, change_run },
	{ "card.reload_pin", reload_check, reload_run },
	{ "card.unblock_pin", unblock_check, unblock_run },
	{ "card.write_items", write_check, write_run },
	{ NULL, NULL, NULL },
};

const struct op_desc *ops_find(const char *method)
{
	for (const struct op_desc *op = ops_table; op->method; op++)
		if (strcmp(op->method, method) == 0)
			return op;
	return NULL;
}
