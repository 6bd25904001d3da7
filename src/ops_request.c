/*
 * This file contains idempotent card writes (src/ops_int.h): a client's optional request_id, the
 * fingerprint of the params it came with (keyed by the journal, PINs and reader left out), what
 * the journal says of an earlier request with it (the newest intent carrying it, and its outcome),
 * and the requests running in this daemon now, so that a repeat waits for the first instead of
 * racing it. The journal is the memory that outlives the daemon; the running set is only this
 * process's.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "ops_int.h"

#define OPS_REQUEST_RUNNING 64    /* requests with a request_id running at once (one per reader) */

/* The requests running in this process (their ids and fingerprints); req_lock guards them. */
static struct req_running {
	char id[OPS_REQUEST_ID_MAX + 1];
	char fp[JOURNAL_REF_HEX + 1];
	int used;
} req_running[OPS_REQUEST_RUNNING];

static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t req_cond;
static pthread_once_t req_once = PTHREAD_ONCE_INIT;

/* The condition variable on the monotonic clock, as the deadlines are (cardio_now_ms). */
static void req_init(void)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&req_cond, &a);
	pthread_condattr_destroy(&a);
}

int ops_request_param(json_t *params, struct ops_request *rq, struct ssc_diag *diag)
{
	json_t *v = params ? json_object_get(params, "request_id") : NULL;
	const char *s;
	size_t n;

	memset(rq, 0, sizeof(*rq));
	if (!v)
		return 0;
	if (!json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"request_id\" must be a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > OPS_REQUEST_ID_MAX)
		return ssc_diag_set(diag, SSC_EINVAL, "\"request_id\" must be 1 to %d characters",
				    OPS_REQUEST_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7E)
			return ssc_diag_set(diag, SSC_EINVAL, "\"request_id\" must be printable "
					    "ASCII (character %zu is not)", i + 1);
	memcpy(rq->id, s, n);
	return 0;
}

int ops_request_params(json_t *params, const char *const *allowed, struct ops_request *rq,
		       struct ssc_diag *diag)
{
	int rc = ops_params_check(params, allowed, diag);

	return rc ? rc : ops_request_param(params, rq, diag);
}

/* Members of the params that do not make a request another one: where it runs, and secrets. */
static int fp_skipped(const char *key)
{
	static const char *const skip[] = { "reader", "request_id", "pin", "old_pin", "new_pin" };

	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (strcmp(key, skip[i]) == 0)
			return 1;
	return 0;
}

int ops_request_fingerprint(struct journal *j, const char *method, json_t *params,
			    struct ops_request *rq, struct ssc_diag *diag)
{
	json_t *kept = json_object(), *o = NULL, *v;
	const char *key;
	char *text = NULL;
	size_t n;
	int rc = SSC_ENOMEM;

	if (!kept)
		goto out;
	if (params)
		json_object_foreach(params, key, v)
			if (!fp_skipped(key) && json_object_set(kept, key, v))
				goto out;
	o = json_pack("{s:s, s:O}", "method", method, "params", kept);
	n = o ? json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS) : 0;
	text = n ? malloc(n) : NULL;
	if (!text || json_dumpb(o, text, n, JSON_COMPACT | JSON_SORT_KEYS) != n)
		goto out;
	/* Keyed: the params hold personal values, which a plain hash would let be guessed. */
	journal_value_ref(j, (const uint8_t *)text, n, rq->fp);
	rc = 0;
out:
	if (text) {
		OPENSSL_cleanse(text, n);
		free(text);
	}
	json_decref(o);
	json_decref(kept);
	return rc ? ssc_diag_set(diag, rc, "cannot fingerprint the params") : 0;
}

/* The running entry of id, or NULL. req_lock held. */
static struct req_running *req_find(const char *id)
{
	for (size_t i = 0; i < OPS_REQUEST_RUNNING; i++)
		if (req_running[i].used && strcmp(req_running[i].id, id) == 0)
			return &req_running[i];
	return NULL;
}

static int req_conflict(const char *id, struct ssc_diag *diag)
{
	return ssc_diag_set(diag, SSC_EREQCONFLICT, "request_id \"%.64s\" was used before with "
			    "other params: a new request needs a new request_id", id);
}

int ops_request_claim(struct ops_request *rq, int64_t deadline_ms, struct ssc_diag *diag)
{
	struct req_running *e;
	int rc = 0;

	pthread_once(&req_once, req_init);
	pthread_mutex_lock(&req_lock);
	while ((e = req_find(rq->id)) != NULL) {
		struct timespec ts;

		if (strcmp(e->fp, rq->fp) != 0) {
			rc = req_conflict(rq->id, diag);
			goto out;
		}
		/* The same request is running on another reader's worker: its result is ours. */
		if (cardio_now_ms() >= deadline_ms) {
			rc = ssc_diag_set(diag, SSC_EOUTCOME, "the first request with this "
					  "request_id is still running: ask again later");
			goto out;
		}
		ts.tv_sec = (time_t)(deadline_ms / 1000);
		ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
		pthread_cond_timedwait(&req_cond, &req_lock, &ts);
	}
	for (size_t i = 0; i < OPS_REQUEST_RUNNING && !rq->claimed; i++) {
		if (req_running[i].used)
			continue;
		memcpy(req_running[i].id, rq->id, sizeof(req_running[i].id));
		memcpy(req_running[i].fp, rq->fp, sizeof(req_running[i].fp));
		req_running[i].used = 1;
		rq->claimed = 1;
	}
	if (!rq->claimed)
		rc = ssc_diag_set(diag, SSC_ELIMIT, "too many requests with a request_id at once");
out:
	pthread_mutex_unlock(&req_lock);
	return rc;
}

void ops_request_release(struct ops_request *rq)
{
	struct req_running *e;

	if (!rq->claimed)
		return;
	pthread_once(&req_once, req_init);
	pthread_mutex_lock(&req_lock);
	e = req_find(rq->id);
	if (e)
		memset(e, 0, sizeof(*e));
	rq->claimed = 0;
	pthread_cond_broadcast(&req_cond);
	pthread_mutex_unlock(&req_lock);
}

/* 1 when the request runs here now (SSC_EREQCONFLICT when with other params), else 0. */
static int req_running_now(const struct ops_request *rq, struct ssc_diag *diag)
{
	struct req_running *e;
	int rc = 0;

	pthread_mutex_lock(&req_lock);
	e = req_find(rq->id);
	if (e)
		rc = strcmp(e->fp, rq->fp) != 0 ? req_conflict(rq->id, diag) : 1;
	pthread_mutex_unlock(&req_lock);
	return rc;
}

/* The error code named name (a journal's result column), SSC_EINTERNAL when none is. */
static int req_error_named(const char *name)
{
	for (int e = -1; e >= -200; e--)
		if (strcmp(ssc_strerror_name(e), name) == 0)
			return e;
	return SSC_EINTERNAL;
}

int ops_request_lookup(struct journal *j, const struct ops_request *rq,
		       struct journal_request *jr, struct ssc_diag *diag)
{
	int rc = journal_request_find(j, rq->id, jr);

	if (rc < 0)
		return ssc_diag_set(diag, SSC_EJOURNAL, "journal: cannot look up the request_id");
	if (rc == 0)
		return OPS_REQ_NEW;
	if (strcmp(jr->fp, rq->fp) != 0)
		return req_conflict(rq->id, diag);
	if (jr->outcome[0] == '\0')
		return OPS_REQ_PENDING;
	if (strcmp(jr->outcome, JOURNAL_APPLIED) == 0)
		return OPS_REQ_APPLIED;
	if (strcmp(jr->outcome, JOURNAL_PARTIAL) == 0)
		return ssc_diag_set(diag, req_error_named(jr->result), "the first request with this "
				    "request_id was applied in part (journal intent %lld): read the "
				    "card to see what it holds, then write again with a new "
				    "request_id", (long long)jr->intent);
	/* Failed: nothing of it is on the card, so it may run again. */
	return OPS_REQ_NEW;
}

int ops_request_replay(const struct op_desc *op, const struct op_env *shared, json_t *params,
		       int no_card, ops_request_result_fn build, json_t **result,
		       struct ssc_diag *diag)
{
	struct op_env snap;
	struct ops_request rq;
	struct journal_request jr;
	int rc;

	ops_env_snapshot(shared, &snap);
	rc = ops_request_param(params, &rq, diag);
	if (rc || !rq.id[0] || !snap.journal)
		return rc;
	rc = ops_request_fingerprint(snap.journal, op->method, params, &rq, diag);
	if (!rc)
		rc = req_running_now(&rq, diag);
	if (rc == 1)
		return no_card ? ssc_diag_set(diag, SSC_EOUTCOME, "the first request with this "
					      "request_id is still running: ask again later")
			       : 0;
	if (rc)
		return rc;
	rc = ops_request_lookup(snap.journal, &rq, &jr, diag);
	if (rc == OPS_REQ_APPLIED) {
		rc = build(op, &snap, params, jr.intent, result, diag);
		return rc ? rc : 1;
	}
	if (rc == OPS_REQ_PENDING)
		return no_card ? ops_request_unknown(&jr, NULL, diag) : 0;
	return rc;
}

int ops_request_unknown(const struct journal_request *jr, const char *card_ref,
			struct ssc_diag *diag)
{
	if (card_ref && strcmp(card_ref, jr->card_ref) != 0)
		return ssc_diag_set(diag, SSC_EOUTCOME, "the first request with this request_id "
				    "(journal intent %lld) was cut off on another card: insert that "
				    "card and ask again", (long long)jr->intent);
	if (card_ref)
		return ssc_diag_set(diag, SSC_EOUTCOME, "the first request with this request_id "
				    "(journal intent %lld) was cut off and the card could not be "
				    "read back yet: ask again", (long long)jr->intent);
	return ssc_diag_set(diag, SSC_EOUTCOME, "the first request with this request_id (journal "
			    "intent %lld) was cut off and its card is not here: insert the card and "
			    "ask again; it is never sent twice", (long long)jr->intent);
}

int ops_request_repeat(const struct op_env *env, struct op_call *call, const struct ops_request *rq,
		       int when, ops_rebuild_fn rebuild, const void *req, json_t **result,
		       struct ssc_diag *diag)
{
	struct journal_request jr;
	int rc = ops_request_lookup(env->journal, rq, &jr, diag);

	if (rc == OPS_REQ_APPLIED) {
		rc = rebuild(env, req, jr.intent, result, diag);
		snprintf(call->audit_detail, sizeof(call->audit_detail), "{\"replayed\":%lld}",
			 (long long)jr.intent);
		return rc ? rc : 1;
	}
	if (rc == OPS_REQ_PENDING && when == 1)
		return ops_request_unknown(&jr, call->card_ref, diag);
	return rc == OPS_REQ_PENDING ? 0 : rc;
}
