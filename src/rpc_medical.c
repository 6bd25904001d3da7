/*
 * This file contains the methods of the offline settlement queue that need no card
 * (src/rpc_int.h): medical.pending, the settlements waiting for upload and the cards whose
 * DF04/EF06 flag needs clearing, and medical.acknowledge, the settlements the hospital system
 * uploaded (journaled: the audit row names the ids). The queue is the journal's
 * (src/journal_medq.c); medical.settle_offline and medical.clear_flag are card operations
 * (src/ops_settle.c). Loop thread: short journal queries, as a request_id's replay makes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "log.h"
#include "rpc_int.h"
#include "sscard/error.h"

#define RPC_MEDICAL_ACK_MAX 1000  /* ids in one medical.acknowledge */

/* The journal as an operation sees it (NULL: out of service). */
static struct journal *medical_journal(struct rpc *r)
{
	return r->env ? __atomic_load_n(&r->env->journal, __ATOMIC_ACQUIRE) : NULL;
}

static int medical_bad_params(struct rpc_client *c, json_t *id, struct ssc_diag *d)
{
	return rpc_reply_error(c, id, rpc_app_error(RPC_INVALID_PARAMS, SSC_EINVAL, d, NULL));
}

/* No member of params outside allowed (NULL-terminated): 0, or SSC_EINVAL naming it. */
static int medical_known(json_t *params, const char *const *allowed, struct ssc_diag *d)
{
	const char *key;
	json_t *v;

	json_object_foreach(params, key, v) {
		size_t i = 0;

		while (allowed[i] && strcmp(allowed[i], key) != 0)
			i++;
		if (!allowed[i])
			return ssc_diag_set(d, SSC_EINVAL, "unknown param \"%.64s\"", key);
	}
	return 0;
}

static int pending_row(void *arg, const struct journal_medq_row *row)
{
	json_t *list = arg, *txn = json_loads(row->txn, 0, NULL), *o;

	o = txn ? json_pack("{s:I, s:s, s:s, s:s, s:o, s:s}", "id", (json_int_t)row->id,
			    "request_id", row->request_id, "card_number", row->card_number,
			    "card_id", row->card_id, "transaction", txn, "queued", row->queued)
		: NULL;
	if (!o) {
		/* A row whose transaction is not JSON would be a bug: never a list without it. */
		log_error("medical.pending: queue id %" PRId64 " cannot be shown", row->id);
		return SSC_ENOMEM;
	}
	return json_array_append_new(list, o) ? SSC_ENOMEM : 0;
}

static int pending_flag(void *arg, const struct journal_medq_flag *f)
{
	json_t *list = arg;

	return json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:b}", "card_number",
						     f->card_number, "card_id", f->card_id,
						     "since", f->since, "pending",
						     (json_int_t)f->pending,
						     "clearable", f->pending == 0))
		       ? SSC_ENOMEM : 0;
}

int rpc_medical_pending(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			json_t *params)
{
	static const char *const allowed[] = { "since", NULL };
	struct journal *j = medical_journal(c->rpc);
	json_t *since = params ? json_object_get(params, "since") : NULL;
	json_t *list = NULL, *flags = NULL;
	struct ssc_diag d;
	int rc;

	(void)m;
	ssc_diag_init(&d);
	if (params && medical_known(params, allowed, &d))
		return medical_bad_params(c, id, &d);
	if (since && (!json_is_integer(since) || json_integer_value(since) < 0)) {
		ssc_diag_set(&d, SSC_EINVAL, "\"since\" must be a queue id (an integer >= 0): the "
			     "settlements after it are listed");
		return medical_bad_params(c, id, &d);
	}
	if (!j) {
		ssc_diag_set(&d, SSC_EJOURNAL, "the journal is not open: the queue cannot be read");
		return rpc_reply_app(c, id, SSC_EJOURNAL, &d, NULL);
	}
	list = json_array();
	flags = json_array();
	rc = list && flags ? 0 : SSC_ENOMEM;
	if (!rc)
		rc = journal_medq_list(j, since ? json_integer_value(since) : 0, pending_row, list);
	if (!rc)
		rc = journal_medq_flags(j, pending_flag, flags);
	if (rc) {
		json_decref(list);
		json_decref(flags);
		if (rc == SSC_ENOMEM)
			return rpc_reply_app(c, id, SSC_ENOMEM, NULL, NULL);
		ssc_diag_set(&d, SSC_EJOURNAL, "journal: cannot read the settlement queue");
		return rpc_reply_app(c, id, SSC_EJOURNAL, &d, NULL);
	}
	return rpc_reply_result(c, id, json_pack("{s:o, s:o}", "settlements", list, "flags",
						 flags));
}

/* The ids param: 1 to RPC_MEDICAL_ACK_MAX positive integers into *out (n). */
static int ack_ids(json_t *params, int64_t **out, size_t *n, struct ssc_diag *d)
{
	static const char *const allowed[] = { "ids", NULL };
	json_t *ids = params ? json_object_get(params, "ids") : NULL, *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (params && medical_known(params, allowed, d))
		return SSC_EINVAL;
	if (!json_is_array(ids) || json_array_size(ids) == 0 ||
	    json_array_size(ids) > RPC_MEDICAL_ACK_MAX)
		return ssc_diag_set(d, SSC_EINVAL, "\"ids\" must be an array of 1 to %d queue ids",
				    RPC_MEDICAL_ACK_MAX);
	*out = calloc(json_array_size(ids), sizeof(**out));
	if (!*out)
		return SSC_ENOMEM;
	json_array_foreach(ids, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			free(*out);
			*out = NULL;
			return ssc_diag_set(d, SSC_EINVAL, "\"ids\" must hold queue ids (positive "
					    "integers); item %zu does not", i + 1);
		}
		(*out)[i] = json_integer_value(v);
	}
	*n = json_array_size(ids);
	return 0;
}

/* "1, 2, 3" of ids[0..n-1] into out (cap bytes); "..." ends it when it does not fit. */
static void ack_list(const int64_t *ids, size_t n, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(out + len, cap - len, "%s%" PRId64, i ? ", " : "", ids[i]);

		if (k < 0 || (size_t)k >= cap - len) {
			snprintf(out + (len < cap - 8 ? len : cap - 8), 8, "%s", ", ...");
			return;
		}
		len += (size_t)k;
	}
}

/* The audit row's detail: the ids as a JSON array when they fit, else their count and range. */
static void ack_detail(const int64_t *ids, size_t n, int newly, char *out, size_t cap)
{
	int64_t lo = ids[0], hi = ids[0];
	size_t len;

	len = (size_t)snprintf(out, cap, "{\"acknowledged\":[");
	for (size_t i = 0; i < n && len < cap; i++) {
		len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
		lo = ids[i] < lo ? ids[i] : lo;
		hi = ids[i] > hi ? ids[i] : hi;
	}
	if (len < cap)
		len += (size_t)snprintf(out + len, cap - len, "],\"newly\":%d}", newly);
	if (len >= cap) {
		for (size_t i = 0; i < n; i++) {
			lo = ids[i] < lo ? ids[i] : lo;
			hi = ids[i] > hi ? ids[i] : hi;
		}
		snprintf(out, cap, "{\"acknowledged_count\":%zu,\"min\":%" PRId64 ",\"max\":%"
			 PRId64 ",\"newly\":%d}", n, lo, hi, newly);
	}
}

int rpc_medical_acknowledge(struct rpc_client *c, json_t *id, const struct rpc_method *m,
			    json_t *params)
{
	struct journal *j = medical_journal(c->rpc);
	int64_t *ids = NULL, *unknown = NULL;
	size_t n = 0, n_unknown = 0;
	struct ssc_diag d;
	char list[160];
	int rc;

	(void)m;
	ssc_diag_init(&d);
	rc = ack_ids(params, &ids, &n, &d);
	if (rc == SSC_EINVAL)
		return medical_bad_params(c, id, &d);
	if (rc)
		return rpc_reply_app(c, id, rc, NULL, NULL);
	if (!j) {
		free(ids);
		ssc_diag_set(&d, SSC_EJOURNAL, "the journal is not open: nothing was acknowledged");
		return rpc_reply_app(c, id, SSC_EJOURNAL, &d, NULL);
	}
	unknown = calloc(n, sizeof(*unknown));
	if (!unknown) {
		free(ids);
		return rpc_reply_app(c, id, SSC_ENOMEM, NULL, NULL);
	}
	rc = journal_medq_ack(j, ids, n, unknown, &n_unknown, &d);
	if (rc == SSC_ENOTFOUND) {
		json_t *e, *arr = json_array();

		ack_list(unknown, n_unknown, list, sizeof(list));
		ssc_diag_set(&d, SSC_ENOTFOUND, "not in this desk's queue: %s (never queued, not "
			     "applied, or removed by retention); nothing was acknowledged", list);
		e = rpc_app_error(RPC_APP_BASE - SSC_ENOTFOUND, SSC_ENOTFOUND, &d, NULL);
		for (size_t i = 0; arr && i < n_unknown; i++)
			if (json_array_append_new(arr, json_integer(unknown[i]))) {
				json_decref(arr);
				arr = NULL;
			}
		if (e && (!arr || json_object_set_new(json_object_get(e, "data"), "unknown", arr))) {
			json_decref(e);   /* never the error without the ids it names */
			e = NULL;
		} else if (!e) {
			json_decref(arr);
		}
		free(ids);
		free(unknown);
		return rpc_reply_error(c, id, e);
	}
	if (rc < 0) {
		free(ids);
		free(unknown);
		return rpc_reply_app(c, id, rc, &d, NULL);
	}
	/* Journaled: the call's audit row names what was acknowledged. */
	ack_detail(ids, n, rc, c->audit_detail, sizeof(c->audit_detail));
	free(ids);
	free(unknown);
	return rpc_reply_result(c, id, json_pack("{s:O, s:i}", "acknowledged",
						 json_object_get(params, "ids"), "newly", rc));
}
