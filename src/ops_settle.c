/*
 * This file contains the offline medical settlement (issue 15; src/ops_int.h):
 * medical.settle_offline, the DF04/EF08 record appended with its MAC, the DF04/EF06 flag set and
 * the settlement queued for upload, with its write intent and its queue row committed together
 * (journal_medq_intent) and the queue row's state following the intent's outcome
 * (journal_outcome), so that a crash at any step is either completed or found not applied by
 * reading the card back (ops_recover.c); and medical.clear_flag, the flag cleared when none of
 * the card's settlements waits in this desk's queue. Both take a request_id (ops_request.c).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hex.h"
#include "jsontext.h"
#include "log.h"
#include "ops_int.h"

/* One settlement. Holds personal data: wiped before it is freed. */
struct settle_req {
	struct item_file f;           /* DF04/EF08 */
	struct item_def it;           /* its record (tag 40) */
	struct item_txn t;
	uint8_t rec[ITEM_TXN_LEN];
	char ref[JOURNAL_REF_HEX + 1];
	struct ops_request rq;
};

static void settle_free(struct settle_req *r)
{
	if (!r)
		return;
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

#ifdef SSC_TEST_HOOKS
/*
 * Test builds only: with $SSCARDD_TEST_SETTLE_KILL naming a step ("intent", "append", "flag",
 * "outcome"; "clear": medical.clear_flag's write, before its outcome), the daemon kills itself (SIGKILL) right after that step of a settlement, so that
 * the crash tests (tests/e2e/test_medical_crash.py) place the crash exactly.
 */
static void settle_crash_point(const char *step)
{
	const char *at = getenv("SSCARDD_TEST_SETTLE_KILL");

	if (at && strcmp(at, step) == 0) {
		log_warn("test hook: killed after the settlement's %s", step);
		raise(SIGKILL);
	}
}
#else
#define settle_crash_point(step) ((void)0)
#endif

/*
 * The params of a settlement: request_id (required), transaction (a §12.7 record: amounts in
 * fen, personal_account + pooled <= total, the lengths of the record), checked and encoded
 * before anything is queued.
 */
static int settle_parse(const struct op_env *env, json_t *params, struct settle_req *r,
			struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "request_id", "transaction", NULL };
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = ops_params_check(params, allowed, diag)) ||
	    (rc = ops_request_param(params, &r->rq, diag)))
		return rc;
	if (!r->rq.id[0])
		return ssc_diag_set(diag, SSC_EINVAL, "\"request_id\" is required: a settlement is "
				    "retried by it, never by guess");
	if (!json_object_get(params, "transaction"))
		return ssc_diag_set(diag, SSC_EINVAL, "\"transaction\" is required: {time, "
				    "institution, settlement_no, total, personal_account, pooled}");
	rc = ops_txn_parse(json_object_get(params, "transaction"), &r->t, diag);
	if (rc)
		return rc;
	if ((uint64_t)r->t.personal_account + r->t.pooled > r->t.total)
		return ssc_diag_set(diag, SSC_EVALUE, "personal_account + pooled (%" PRIu64 " fen) "
				    "exceed the total (%" PRIu32 " fen)",
				    (uint64_t)r->t.personal_account + r->t.pooled, r->t.total);
	rc = items_encode_txn(&r->t, r->rec, sizeof(r->rec), diag);
	if (rc < 0)
		return rc;
	if (items_file_parse("DF04/EF08", &r->f) || items_find(&r->f, 0x40, &r->it))
		return SSC_EINTERNAL;
	if (!env->journal)
		return ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: settlements are "
				    "refused");
	return ops_request_fingerprint(env->journal, "medical.settle_offline", params, &r->rq,
				       diag);
}


/* The result: the queue id, the journal's intent, the transaction as the card holds it. */
static int settle_result(const struct settle_req *r, int64_t queue_id, int64_t intent,
			 json_t **result, struct ssc_diag *diag)
{
	struct item_txn t;
	json_t *tj = NULL;

	if (items_decode_txn(r->rec, sizeof(r->rec), &t, diag) == 0)
		tj = ops_txn_json(&t);
	OPENSSL_cleanse(&t, sizeof(t));
	*result = tj ? json_pack("{s:I, s:s, s:I, s:o}", "id", (json_int_t)queue_id,
				 "request_id", r->rq.id, "journal_id", (json_int_t)intent,
				 "transaction", tj)
		     : NULL;
	if (!*result)
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	return 0;
}

/* The result of an applied settlement from its queue row (rebuilt from the repeated params). */
static int settle_result_of(const struct op_env *env, const struct settle_req *r, int64_t intent,
			    json_t **result, struct ssc_diag *diag)
{
	int64_t qid = 0;
	int rc = journal_medq_of_intent(env->journal, intent, &qid);

	if (rc < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot look up the settlement");
	if (rc == 0)
		return ssc_diag_set(diag, SSC_EREQCONFLICT, "request_id \"%.64s\" was used by "
				    "another method (journal intent %lld)", r->rq.id,
				    (long long)intent);
	return settle_result(r, qid, intent, result, diag);
}

/*
 * Parses params into a request of its own (freed here): the check on the loop thread (result
 * NULL), or, with result, the result of an applied request rebuilt from its repeated params.
 */
static int settle_parse_alone(const struct op_env *env, json_t *params, int64_t intent,
			      json_t **result, struct ssc_diag *diag)
{
	struct settle_req *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return SSC_ENOMEM;
	rc = settle_parse(env, params, r, diag);
	if (!rc && result)
		rc = settle_result_of(env, r, intent, result, diag);
	settle_free(r);
	return rc;
}

int ops_settle_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		     struct ssc_diag *diag)
{
	(void)op;
	return settle_parse_alone(env, params, 0, NULL, diag);
}

static int settle_replayed(const struct op_desc *op, const struct op_env *env, json_t *params,
			   int64_t intent, json_t **result, struct ssc_diag *diag)
{
	(void)op;
	return settle_parse_alone(env, params, intent, result, diag);
}

int ops_settle_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		      int no_card, json_t **result, struct ssc_diag *diag)
{
	return ops_request_replay(op, env, params, no_card, settle_replayed, result, diag);
}

/* settle_result_of as ops_request_repeat() rebuilds it (req: the settle_req). */
static int settle_rebuilt(const struct op_env *env, const void *req, int64_t intent,
			  json_t **result, struct ssc_diag *diag)
{
	return settle_result_of(env, req, intent, result, diag);
}

/* A record already on the card with the settlement number arg: SSC_ESETTLED. */
static int settle_seen(void *arg, int recno, const uint8_t *v, size_t n, struct ssc_diag *diag)
{
	const char *settlement = arg;
	int rc = ops_txn_same_settlement(v, n, settlement, diag);

	if (rc == 1)
		rc = ssc_diag_set(diag, SSC_ESETTLED, "settlement number %.20s is already on the "
				  "card (DF04/EF08 record %d)", settlement, recno);
	return rc;
}

/* The settlement number neither in this desk's queue nor on the card (nor, hidden, journaled). */
static int settle_unique(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			 struct settle_req *r, struct ssc_diag *diag)
{
	int64_t qid = 0;
	int rc = journal_medq_known(env->journal, r->t.settlement, &qid);

	if (rc < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot look the settlement "
				    "number up in the queue");
	if (rc > 0)
		return ssc_diag_set(diag, SSC_ESETTLED, "settlement number %.20s is already in "
				    "this desk's queue (id %lld)", r->t.settlement, (long long)qid);
	rc = ops_txn_each(c, &r->f, &r->it, settle_seen, r->t.settlement, diag);
	if (rc == OPS_TXN_HIDDEN) {
		int k = journal_append_applied(env->journal, card_ref, r->t.settlement);

		rc = 0;
		if (k < 0)
			rc = ssc_diag_set(diag, SSC_EJOURNAL, "cannot check the journal for this "
					  "settlement number");
		else if (k > 0)
			rc = ssc_diag_set(diag, SSC_ESETTLED, "settlement number %.20s was already "
					  "appended to this card", r->t.settlement);
	}
	return rc;
}

/* The intent's detail: what read-back looks for, never a personal value in clear. */
static char *settle_detail(const struct settle_req *r)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "settle", "settlement_no",
			      r->t.settlement, "record", r->ref, "request_id", r->rq.id, "fp",
			      r->rq.fp);
	char *s = jsontext_dump(d, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(d);
	return s;
}

/* The intent and its queue row, in one transaction. */
static int settle_intent(const struct op_env *env, struct op_call *call, struct card_io *io,
			 const struct ssc_card *c, const struct settle_req *r, int64_t *id,
			 int64_t *qid, struct ssc_diag *diag)
{
	struct journal_medq_new q;
	char card_id[33], *detail = settle_detail(r), *txn = NULL;
	json_t *tj = ops_txn_json(&r->t);
	int rc;

	txn = tj ? jsontext_dump(tj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(tj);
	if (!detail || !txn) {
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the intent");
		goto out;
	}
	hex_encode(c->card_id, 16, card_id, sizeof(card_id), HEX_UPPER);
	memset(&q, 0, sizeof(q));
	q.request_id = r->rq.id;
	q.card_number = c->card_number;
	q.card_id = card_id;
	q.settlement_no = r->t.settlement;
	q.txn = txn;
	rc = journal_medq_intent(env->journal, call->peer, call->card_ref, io->reader_id,
				 r->f.name, detail, &q, id, diag);
	*qid = q.id;
	if (rc) {
		char why[sizeof(diag->msg)];

		snprintf(why, sizeof(why), "%s", diag->msg);
		rc = ssc_diag_set(diag, SSC_EJOURNAL, "the settlement's intent could not be "
				  "recorded (%.160s): nothing was written", why);
	}
out:
	free(detail);
	if (txn) {
		OPENSSL_cleanse(txn, strlen(txn));
		free(txn);
	}
	return rc;
}

/*
 * The card's part: APPEND RECORD, then the flag. Returns 0, or the error with *pending = 1 when
 * nobody knows what the card did (a transport error, or the flag failing after the record was
 * appended: read-back completes it), 0 when the card refused the record (nothing applied).
 */
static int settle_apply(struct ssc_card *c, const struct settle_req *r, int *appended,
			int *pending, struct ssc_diag *diag)
{
	int rc = ssc_write_record(c, &r->f, &r->it, 1, (uint8_t)sizeof(r->rec), r->rec,
				  sizeof(r->rec), diag);

	*appended = rc == 0;
	*pending = rc != 0 && ops_transport(rc);
	if (rc)
		return rc;
	settle_crash_point("append");
	rc = ops_recover_flag(c, 0x01, 0, diag);
	if (rc)
		*pending = 1;
	return rc;
}

int ops_settle_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		   struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		   struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct settle_req *r = calloc(1, sizeof(*r));
	struct keyprov_div div;
	struct ssc_card c;
	int64_t id = 0, qid = 0;
	int rc, appended = 0, pending = 0;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	if (!r)
		return SSC_ENOMEM;
	rc = settle_parse(env, call->params, r, diag);
	if (!rc)
		rc = ops_request_claim(&r->rq, io->deadline_ms, diag);
	if (!rc)
		rc = ops_request_repeat(env, call, &r->rq, 0, settle_rebuilt, r, result, diag);
	if (rc)
		goto out;
	rc = ops_write_card_open(env, io, call, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_write_expiry(&c, diag);
	if (!rc)
		rc = ops_write_resolve_first(env, &c, call->card_ref, diag);
	if (!rc)
		rc = ops_request_repeat(env, call, &r->rq, 1, settle_rebuilt, r, result, diag);
	if (!rc)
		rc = ssc_auth_prepare(&c, &div, diag);
	if (!rc)
		rc = settle_unique(env, &c, call->card_ref, r, diag);
	if (rc)
		goto out;
	journal_value_ref(env->journal, r->rec, sizeof(r->rec), r->ref);
	rc = settle_intent(env, call, io, &c, r, &id, &qid, diag);
	if (rc)
		goto out;
	settle_crash_point("intent");
	rc = settle_apply(&c, r, &appended, &pending, diag);
	if (pending) {
		log_warn("journal: intent %" PRId64 " (settlement, queue id %" PRId64 ") left "
			 "pending: %s %s; the card will be read back", id, qid,
			 ssc_strerror_name(rc), appended ? "after the record was appended"
							 : "during the append");
		*insertion_flags &= ~(unsigned)CARD_FLAG_RESOLVED;
		call->error_data = json_pack("{s:I, s:I, s:b}", "journal_id", (json_int_t)id,
					     "id", (json_int_t)qid, "appended", appended);
		goto out;
	}
	settle_crash_point("flag");
	{
		struct ssc_diag jd;
		int jr;

		ssc_diag_init(&jd);
		jr = journal_outcome(env->journal, id, rc ? JOURNAL_FAILED : JOURNAL_APPLIED,
				     ssc_strerror_name(rc), "card", &jd);
		if (jr) {
			log_error("journal: intent %" PRId64 " (settlement): the outcome could not be "
				  "recorded (%s: %s); it stays pending and will be resolved by "
				  "reading the card back", id, ssc_strerror_name(jr), jd.msg);
			*insertion_flags &= ~(unsigned)CARD_FLAG_RESOLVED;
			if (!rc)
				rc = ssc_diag_set(diag, SSC_EOUTCOME, "the settlement is on the card "
						  "but the journal could not queue it yet (%s): "
						  "repeat the request_id", jd.msg);
		}
	}
	if (rc)
		goto out;
	settle_crash_point("outcome");
	rc = settle_result(r, qid, id, result, diag);
out:
	if (rc == 1)
		rc = 0;   /* answered from the journal */
	if (c.authenticated)
		*reset_card = 1;
	ops_request_release(&r->rq);
	settle_free(r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/* ---- medical.clear_flag -------------------------------------------------------------------- */

static int clear_parse(const struct op_env *env, json_t *params, struct ops_request *rq,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "request_id", NULL };
	int rc;

	if ((rc = ops_params_check(params, allowed, diag)) ||
	    (rc = ops_request_param(params, rq, diag)))
		return rc;
	if (!env->journal)
		return ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: writes are refused");
	return rq->id[0] ? ops_request_fingerprint(env->journal, "medical.clear_flag", params, rq,
						   diag)
			 : 0;
}

int ops_clear_flag_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag)
{
	struct ops_request rq;

	(void)op;
	return clear_parse(env, params, &rq, diag);
}

static int clear_result(int64_t intent, int was_set, json_t **result, struct ssc_diag *diag)
{
	*result = intent ? json_pack("{s:b, s:b, s:I}", "cleared", 1, "was_set", was_set,
				     "journal_id", (json_int_t)intent)
			 : json_pack("{s:b, s:b}", "cleared", 1, "was_set", was_set);
	if (!*result)
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	return 0;
}

/* An applied clear_flag: its card is no longer among those whose flag needs clearing. */
static int clear_replayed(const struct op_desc *op, const struct op_env *env, json_t *params,
			  int64_t intent, json_t **result, struct ssc_diag *diag)
{
	(void)op;
	(void)params;
	return clear_result(intent, 1, result, diag);
}

int ops_clear_flag_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
			  int no_card, json_t **result, struct ssc_diag *diag)
{
	return ops_request_replay(op, env, params, no_card, clear_replayed, result, diag);
}

/*
 * The intent's detail: an update of record 41 from 01 to 00 (ops_recover.c reads it back), marked
 * "clear_flag" so that its applied outcome takes the card off the flags to clear (journal_outcome).
 */
static char *clear_detail(const struct op_env *env, const struct ops_request *rq)
{
	const uint8_t one = 0x01, zero = 0x00;
	char old_ref[JOURNAL_REF_HEX + 1], new_ref[JOURNAL_REF_HEX + 1], *s;
	json_t *d;

	journal_value_ref(env->journal, &one, 1, old_ref);
	journal_value_ref(env->journal, &zero, 1, new_ref);
	d = json_pack("{s:s, s:[{s:s, s:s, s:s}], s:i}", "op", "update", "records", "tag", "41",
		      "old", old_ref, "new", new_ref, "clear_flag", 1);
	if (d && rq->id[0] && (json_object_set_new(d, "request_id", json_string(rq->id)) ||
			       json_object_set_new(d, "fp", json_string(rq->fp)))) {
		json_decref(d);
		d = NULL;
	}
	s = jsontext_dump(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(d);
	return s;
}

/* The card's and the journal's part, once the card is identified and resolved. */
static int clear_apply(const struct op_env *env, struct card_io *io, struct op_call *call,
		       struct ssc_card *c, const struct ops_request *rq, unsigned *insertion_flags,
		       json_t **result, struct ssc_diag *diag)
{
	struct keyprov_div div;
	struct ssc_diag jd;
	char *detail = NULL;
	int64_t id = 0;
	int n = journal_medq_card_pending(env->journal, call->card_ref), set, rc;

	if (n < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot look up the card's queued "
				    "settlements");
	if (n > 0)
		return ssc_diag_set(diag, SSC_EMEDPENDING, "%d settlement(s) of this card still wait "
				    "for upload in this desk's queue: upload and acknowledge them "
				    "(medical.acknowledge) first", n);
	set = ops_recover_flag_is(c, 0x01, diag);
	if (set < 0)
		return set;
	if (set) {
		rc = ssc_auth_prepare(c, &div, diag);
		if (rc)
			return rc;
		detail = clear_detail(env, rq);
		if (!detail)
			return ssc_diag_set(diag, SSC_ENOMEM, "cannot build the intent");
		rc = journal_intent(env->journal, call->peer, call->card_ref, io->reader_id,
				    "DF04/EF06", detail, &id, diag);
		free(detail);
		if (rc)
			return ssc_diag_set(diag, SSC_EJOURNAL, "the write intent could not be "
					    "recorded: nothing was written");
		rc = ops_recover_flag(c, 0x00, 0, diag);
		if (rc == 0)
			settle_crash_point("clear");
		ssc_diag_init(&jd);
		if (rc && ops_transport(rc)) {
			*insertion_flags &= ~(unsigned)CARD_FLAG_RESOLVED;
			return rc;
		}
		if (journal_outcome(env->journal, id, rc ? JOURNAL_FAILED : JOURNAL_APPLIED,
				    ssc_strerror_name(rc), "card", &jd))
			*insertion_flags &= ~(unsigned)CARD_FLAG_RESOLVED;
		if (rc)
			return rc;
	}
	rc = journal_medq_flag_cleared(env->journal, call->card_ref, diag);
	if (!rc)
		rc = clear_result(id, set, result, diag);
	return rc;
}

int ops_clear_flag_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ops_request rq;
	struct journal_request jr;
	struct ssc_card c;
	int rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&rq, 0, sizeof(rq));
	rc = clear_parse(env, call->params, &rq, diag);
	if (!rc && rq.id[0])
		rc = ops_request_claim(&rq, io->deadline_ms, diag);
	if (!rc)
		rc = ops_write_card_open(env, io, call, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_write_resolve_first(env, &c, call->card_ref, diag);
	if (!rc && rq.id[0]) {
		rc = ops_request_lookup(env->journal, &rq, &jr, diag);
		if (rc == OPS_REQ_APPLIED) {
			rc = clear_result(jr.intent, 1, result, diag);
			snprintf(call->audit_detail, sizeof(call->audit_detail),
				 "{\"replayed\":%lld}", (long long)jr.intent);
			goto out;
		}
		if (rc == OPS_REQ_PENDING)
			rc = ops_request_unknown(&jr, call->card_ref, diag);
	}
	if (!rc)
		rc = clear_apply(env, io, call, &c, &rq, insertion_flags, result, diag);
out:
	if (c.authenticated)
		*reset_card = 1;
	ops_request_release(&rq);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
