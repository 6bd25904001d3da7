/*
 * This file contains the card.* methods of the JSON-RPC layer (src/rpc_int.h): each request a job
 * for the reader core, its params checked on the loop thread first and copied for the worker; the
 * operation run on the worker; the reply, the log line and the audit row when it is done; the job
 * freed when the worker lets go. Loop thread, except job_run (a reader worker) and job_release
 * (any thread).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardio.h"
#include "log.h"
#include "rpc_int.h"
#include "sscard/error.h"

/* A card.* request on its way through the reader core. */
struct rpc_job {
	struct job job;                 /* first: the core hands us &job */
	const struct op_desc *op;
	const struct op_env *env;
	json_t *params;                 /* private deep copy, used on the worker thread */
	/* Loop-thread only, released in done(): */
	struct rpc_client *client;
	json_t *id;                     /* NULL for a notification */
	int64_t started_ms;
	/* For the op_call and the audit row (the client may be gone when the job ends): */
	struct rpc *rpc;
	struct journal_peer peer;       /* a copy of the client's */
	char card_ref[JOURNAL_REF_HEX + 1]; /* set from the op_call after run(); "" = unknown */
	char audit_detail[64];          /* likewise: the op's note for the audit row ("" = none) */
	char origin[ORIGIN_MAX];        /* the page's origin when the bridge sent it; "" = none */
};

/* A job's error with what the core adds: the time a leased reader is held for (two-step read). */
static json_t *job_error(const struct job *job, int err, const char *reader)
{
	json_t *e = rpc_app_error(rpc_error_code(err), err, &job->diag, reader);

	if (e && err == SSC_EREADERLEASED &&
	    json_object_set_new(json_object_get(e, "data"), "lease_left_ms",
				json_integer(job->lease_left_ms)) != 0) {
		json_decref(e);   /* no memory: never the error without it */
		e = NULL;
	}
	return e;
}

/* Worker thread: the operation itself. Touches only the job's own params and the env. */
static int job_run(struct job *job, struct card_io *io, unsigned *insertion_flags, int *reset_card)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct op_call call;
	json_t *result = NULL;
	int err;

	memset(&call, 0, sizeof(call));
	call.params = rj->params;
	call.peer = &rj->peer;
	call.lease = job->lease;
	err = rj->op->run(rj->op, rj->env, io, &call, insertion_flags, reset_card, &result,
			  &job->diag);
	/* A lease asked for (card.hsm_step1) or ended (card.hsm_step2): the core applies it. */
	job->lease = call.lease;
	job->lease_ms = call.lease_ms;
	memcpy(rj->card_ref, call.card_ref, sizeof(rj->card_ref));
	memcpy(rj->audit_detail, call.audit_detail, sizeof(rj->audit_detail));
	if (err == 0 && !result)
		err = ssc_diag_set(&job->diag, SSC_EINTERNAL, "%s returned no result",
				   rj->op->method);
	if (err != 0) {
		json_decref(result);
		/* A failure's extra data travels in job->result; job_done adds it to the error. */
		job->result = call.error_data;
		return err;
	}
	json_decref(call.error_data);
	job->result = result;
	return 0;
}

/* Loop thread, once: reply (if the client is still there), then let go of the client. */
static void job_done(struct job *job)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct rpc_client *c = rj->client;
	int64_t ms = cardio_now_ms() - rj->started_ms;
	const char *reader = job->used_reader[0] ? job->used_reader : job->reader_id;
	char lr[SSC_READER_ID_MAX];

	if (c->owner && rj->id) {
		int rc;

		if (job->err == 0) {
			json_t *res = job->result;

			job->result = NULL;   /* the reply takes it */
			rc = rpc_reply_result(c, rj->id, res);
		} else if ((job->err == SSC_ETIMEDOUT && !job->never_started) ||
			   job->err == SSC_ESHUTDOWN) {
			/*
			 * At an overrun or a shutdown the worker may still be writing job->diag
			 * (readers.c keeps the job until the driver call returns): do not read it;
			 * say it ourselves.
			 */
			struct ssc_diag d;

			ssc_diag_init(&d);
			if (job->err == SSC_ETIMEDOUT)
				ssc_diag_set(&d, SSC_ETIMEDOUT,
					     "the operation did not finish within %d ms",
					     job->timeout_ms);
			rc = rpc_reply_app(c, rj->id, job->err, &d, reader);
		} else {
			json_t *e = job_error(job, job->err, reader);
			json_t *more = job->result;

			/* What the op added (e.g. the items a cut-off write put on the card). */
			if (e && json_is_object(more))
				json_object_update_missing(json_object_get(e, "data"), more);
			rc = rpc_reply_error(c, rj->id, e);
		}
		/* A reply that could not be made: the short one, so the client does not wait. */
		if (rc == SSC_ENOMEM)
			(void)rpc_reply_nomem(c, rj->id);
	}
	/*
	 * An audit line: who, what, where, how it ended; never params or results (PINs, names).
	 * After the reply, which is written at once when the socket takes it: the client does not
	 * wait for the log.
	 */
	log_info("client %u uid %ld: %s on %s: %s (%lld ms)%s", c->peer.id, (long)c->peer.uid,
		 rj->op->method, reader[0] ? rpc_log_safe(reader, lr, sizeof(lr)) : "-",
		 job->err ? ssc_strerror_name(job->err) : "ok", (long long)ms,
		 job->err == SSC_ECANCELED ? " (client gone before it started)"
		 : c->owner ? "" : " (client gone, result dropped)");
	/*
	 * The audit row, after the reply is queued. At an overrun the worker may still write
	 * card_ref (as it may diag): leave it out then.
	 */
	rpc_audit_call(c->rpc, &rj->peer, rj->origin, rj->op->method, reader,
		       (job->err == SSC_ETIMEDOUT || job->err == SSC_ESHUTDOWN) ? "" : rj->card_ref,
		       job->err ? ssc_strerror_name(job->err) : "SSC_OK",
		       (job->err == SSC_ETIMEDOUT || job->err == SSC_ESHUTDOWN) ? "" :
		       rj->audit_detail, rj->started_ms, NULL);
	json_decref(rj->id);
	rj->id = NULL;
	c->inflight--;
	rj->client = NULL;
	if (c->owner && c->inflight == 0 && c->ops->idle)
		c->ops->idle(c->owner);
	rpc_client_unref(c);
}

/* Any thread, once, after done() and after the worker let go: free what the job owns. */
static void job_release(struct job *job)
{
	struct rpc_job *rj = (struct rpc_job *)job;
	struct rpc *r = rj->rpc;

	json_decref(job->result);
	json_decref(rj->params);
	free(rj);
	atomic_fetch_sub(&r->jobs_unreleased, 1);
}

int rpc_job_submit(struct rpc_client *c, json_t *id, const struct op_desc *op, json_t *params)
{
	struct rpc *r = c->rpc;
	struct rpc_job *rj;
	struct ssc_diag diag;
	const char *reader = "";
	char leased_reader[SSC_READER_ID_MAX];
	uint64_t lease = 0;
	json_t *jr;
	int err;

	jr = params ? json_object_get(params, "reader") : NULL;
	if (jr) {
		if (!json_is_string(jr) || json_string_length(jr) == 0 ||
		    json_string_length(jr) >= SSC_READER_ID_MAX)
			return rpc_reply_proto(c, id, RPC_INVALID_PARAMS, SSC_EINVAL,
					       "\"reader\" must be a reader id (a non-empty string)");
		reader = json_string_value(jr);
	}
	if (c->inflight >= r->cfg->max_inflight_per_client) {
		c->limit = "max_inflight_per_client";
		ssc_diag_init(&diag);
		ssc_diag_set(&diag, SSC_ELIMIT, "too many requests in flight on this connection "
			     "(at most %d)", r->cfg->max_inflight_per_client);
		return rpc_reply_app(c, id, SSC_ELIMIT, &diag, NULL);
	}
	/* No reader core (not attached yet, or detached at shutdown): nothing to check against. */
	if (!r->have_backend || !r->env)
		return rpc_reply_app(c, id, SSC_ENOREADER, NULL, reader);
	ssc_diag_init(&diag);
	if (op->check) {
		err = op->check(op, r->env, params, &diag);
		if (err == SSC_EINVAL)
			return rpc_reply_error(c, id, rpc_app_error(RPC_INVALID_PARAMS, err, &diag,
								    NULL));
		if (err < 0)
			return rpc_reply_app(c, id, err, &diag, NULL);
	}
	/* card.hsm_step2: its reader and lease are its session's, not a param. */
	if (op->lease) {
		err = op->lease(r->env, params, leased_reader, sizeof(leased_reader), &lease,
				&diag);
		if (err < 0)
			return rpc_reply_app(c, id, err, &diag, NULL);
		reader = leased_reader;
	}
	/* A repeated request_id: answered from the journal without the card, or refused. */
	if (op->replay) {
		json_t *res = NULL;
		int64_t t0 = cardio_now_ms();

		err = op->replay(op, r->env, params, 0, &res, &diag);
		if (err == SSC_ELIMIT)
			c->limit = "request_id";
		if (err == 1) {
			rpc_audit_call(r, &c->jpeer, c->web.origin, op->method, reader, "", "SSC_OK",
				       "{\"replayed\":true}", t0, NULL);
			return rpc_reply_result(c, id, res);
		}
		if (err < 0)
			return rpc_reply_app(c, id, err, &diag, NULL);
	}
	rj = calloc(1, sizeof(*rj));
	if (!rj)
		return SSC_ENOMEM;
	rj->op = op;
	rj->env = r->env;
	rj->rpc = r;
	rj->peer = c->jpeer;
	memcpy(rj->origin, c->web.origin, sizeof(rj->origin));
	if (params) {
		rj->params = json_deep_copy(params);
		if (!rj->params) {
			free(rj);
			return SSC_ENOMEM;
		}
	}
	rj->job.run = job_run;
	rj->job.done = job_done;
	rj->job.release = job_release;
	rj->job.arg = rj;
	snprintf(rj->job.reader_id, sizeof(rj->job.reader_id), "%s", reader);
	rj->job.owner = c;   /* the reader's queue takes turns across clients */
	rj->job.need_role = READER_ROLE_USER;
	rj->job.timeout_ms = r->cfg->op_timeout_ms;
	rj->job.lease = lease;
	rj->job.ahead_keep = ops_reads_only(op);
	ssc_diag_init(&rj->job.diag);
	rj->client = c;
	rj->id = id ? json_incref(id) : NULL;
	rj->started_ms = cardio_now_ms();

	atomic_fetch_add(&r->jobs_unreleased, 1);
	err = r->be.submit(r->be.ctx, &rj->job);
	if (err < 0) {
		atomic_fetch_sub(&r->jobs_unreleased, 1);
		char lr[SSC_READER_ID_MAX];
		json_t *none = NULL;

		/* No card: a request whose outcome only the card can tell is not known. */
		if (err == SSC_ENOCARD && op->replay &&
		    op->replay(op, r->env, params, 1, &none, &rj->job.diag) == SSC_EOUTCOME)
			err = SSC_EOUTCOME;
		json_decref(none);
		if (err == SSC_ELIMIT)
			c->limit = "max_queued_per_reader";
		log_info("client %u uid %ld: %s on %s: %s (not queued)", c->peer.id,
			 (long)c->peer.uid, op->method,
			 reader[0] ? rpc_log_safe(reader, lr, sizeof(lr)) : "-",
			 ssc_strerror_name(err));
		rpc_reply_error(c, id, job_error(&rj->job, err, reader));
		json_decref(rj->id);
		json_decref(rj->params);
		free(rj);
		return 0;
	}
	rpc_client_ref(c);
	c->inflight++;
	c->queued = 1;
	return 0;
}

