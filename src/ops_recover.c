/*
 * This file contains the resolution of write intents left pending (src/ops.h ops_resolve_pending,
 * src/ops_int.h): the card is read back, each intent's records compared with the keyed refs of
 * their old and new values (or the appended record looked for), and the outcome recorded in the
 * journal as applied, failed or partial. Worker thread.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "log.h"
#include "ops_int.h"

#define OPS_MAX_RESOLVE 32        /* pending intents of one card resolved in one pass */

/* The result name of an intent found "not applied" on read-back: its effect is not on the card. */
#define OPS_NOT_APPLIED "SSC_ENOTFOUND"

struct pending_list {
	struct ops_pending v[OPS_MAX_RESOLVE];
	size_t n;
};

static int pending_collect(void *arg, const struct journal_intent_row *row)
{
	struct pending_list *l = arg;

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
static int readback_ref(const struct op_env *env, struct ssc_card *c, const struct item_file *f,
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
struct readback {
	const char *outcome;      /* JOURNAL_APPLIED, JOURNAL_FAILED or JOURNAL_PARTIAL */
	const char *result;       /* the result name */
	char written[OPS_MAX_ITEMS * 3 + 1];       /* partial: the tags whose new value is there */
	char not_written[OPS_MAX_ITEMS * 3 + 1];   /* partial: the tags that still hold the old */
};

/* Appends a tag ("30") to a blank-separated list that has room for OPS_MAX_ITEMS of them. */
static void tag_list_add(char *list, size_t cap, const char *tag)
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
static int readback_update(const struct op_env *env, struct ssc_card *c,
			   const struct item_file *f, json_t *records, const char *cause,
			   struct readback *rb, struct ssc_diag *diag)
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
		rc = readback_ref(env, c, f, &it, 0, ref, diag);
		if (rc)
			return rc;
		/* A record written with its old value matches both: it decides nothing. */
		all_new &= strcmp(ref, new_ref) == 0;
		all_old &= strcmp(ref, old_ref) == 0;
		if (strcmp(ref, new_ref) == 0)
			tag_list_add(rb->written, sizeof(rb->written), tag_s);
		else if (strcmp(ref, old_ref) == 0)
			tag_list_add(rb->not_written, sizeof(rb->not_written), tag_s);
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

/* What an append intent's read-back looks for. */
struct append_find {
	const struct op_env *env;
	const char *settlement;
	const char *record_ref;
};

/* Whether this record is the one appended: its ref and its settlement number. */
static int append_match(void *arg, int recno, const uint8_t *v, size_t n, struct ssc_diag *diag)
{
	const struct append_find *a = arg;
	char ref[JOURNAL_REF_HEX + 1];
	struct item_txn t;
	int found = 0;

	(void)recno;
	journal_value_ref(a->env->journal, v, n, ref);
	if (strcmp(ref, a->record_ref) == 0 && items_decode_txn(v, n, &t, diag) == 0 &&
	    strcmp(t.settlement, a->settlement) == 0)
		found = OPS_TXN_STOPPED;
	OPENSSL_cleanse(&t, sizeof(t));
	ssc_diag_init(diag);
	return found;
}

/* An append intent: is a record with its settlement number and ref on the card? */
static int readback_append(const struct op_env *env, struct ssc_card *c,
			   const struct item_file *f, const char *settlement,
			   const char *record_ref, struct readback *rb,
			   struct ssc_diag *diag)
{
	struct append_find a = { env, settlement, record_ref };
	struct item_def it;
	int rc;

	if (!f->cyclic || f->n_items != 1)
		return SSC_EINVAL;
	it = f->items[0];
	rc = ops_txn_each(c, f, &it, append_match, &a, diag);
	if (rc < 0)
		return rc;
	rb->outcome = rc == OPS_TXN_STOPPED ? JOURNAL_APPLIED : JOURNAL_FAILED;
	rb->result = rc == OPS_TXN_STOPPED ? "SSC_OK" : OPS_NOT_APPLIED;
	return 0;
}

int ops_recover_flag_is(struct ssc_card *c, uint8_t value, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	uint8_t v[8];
	int n;

	if (items_file_parse("DF04/EF06", &f) || items_find(&f, 0x41, &it))
		return SSC_EINTERNAL;
	n = ssc_read_item(c, &f, &it, 0, v, sizeof(v), diag);
	if (n < 0)
		return n;
	return n == 1 && v[0] == value;
}

int ops_recover_flag(struct ssc_card *c, uint8_t value, int check_first, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	int n;

	if (check_first) {
		n = ops_recover_flag_is(c, value, diag);
		if (n != 0)
			return n < 0 ? n : 0;
	}
	if (items_file_parse("DF04/EF06", &f) || items_find(&f, 0x41, &it))
		return SSC_EINTERNAL;
	return ssc_write_record(c, &f, &it, 0, 1, &value, 1, diag);
}

/*
 * A settlement found on the card (medical.settle_offline): its DF04/EF06 flag set where it is
 * not, so that the settlement completes. A transport error leaves the intent pending (returned);
 * a refusal of the card is logged and the settlement recorded applied all the same (queued: it
 * is on the card, and the queue must not lose it).
 */
static int readback_settle_flag(struct ssc_card *c, const struct ops_pending *p,
				struct ssc_diag *diag)
{
	struct ssc_diag fd;
	int rc;

	ssc_diag_init(&fd);
	rc = ops_recover_flag(c, 0x01, 1, &fd);
	if (rc == 0)
		return 0;
	if (ops_transport(rc)) {
		*diag = fd;
		return rc;
	}
	log_warn("journal: intent %" PRId64 " (%s): the settlement is on the card but its DF04/EF06 "
		 "flag could not be set (%s: %s); queued all the same", p->id, p->file,
		 ssc_strerror_name(rc), fd.msg);
	return 0;
}

int ops_recover_one(const struct op_env *env, struct ssc_card *c, const struct ops_pending *p,
		    const char *cause, struct ssc_diag *diag)
{
	struct readback rb;
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
		rc = readback_update(env, c, &f, json_object_get(d, "records"), cause, &rb,
				     diag);
	} else if (strcmp(op, "append") == 0 || strcmp(op, "settle") == 0) {
		const char *ser = json_string_value(json_object_get(d, "settlement_no"));
		const char *ref = json_string_value(json_object_get(d, "record"));

		rc = ser && ref ? readback_append(env, c, &f, ser, ref, &rb, diag)
				: SSC_EINVAL;
		/* A settlement's outcome also queues it (journal_outcome): its flag first. */
		if (rc == 0 && strcmp(op, "settle") == 0 &&
		    strcmp(rb.outcome, JOURNAL_APPLIED) == 0)
			rc = readback_settle_flag(c, p, diag);
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

int ops_recover_card(const struct op_env *env, struct ssc_card *c, const char *card_ref,
		     struct ssc_diag *diag)
{
	struct pending_list *l;
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
	rc = journal_pending(env->journal, card_ref, pending_collect, l);
	if (rc == 1)
		rc = 0;
	if (rc < 0)
		rc = ssc_diag_set(diag, rc, "journal: cannot list the pending intents");
	for (size_t i = 0; i < l->n && rc >= 0; i++) {
		int r = ops_recover_one(env, c, &l->v[i], NULL, diag);

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
		rc = ops_recover_card(env, &c, NULL, diag);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
