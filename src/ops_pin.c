/*
 * This file contains the PIN operations (src/ops_int.h): card.verify_pin, card.change_pin,
 * card.reload_pin and card.unblock_pin, one check and one run told apart by their table entry,
 * with the middleware's PIN policies (initial PINs, the same PIN again). PINs live in struct
 * ssc_pin, wiped on every path, and are overwritten in the operation's copy of the params. A
 * change with a request_id (ops_request.c) is journaled as an intent of JOURNAL_PIN_FILE; a repeat
 * of one cut off reads the card back with the new PIN (VERIFY), since a PIN cannot be read.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "jsontext.h"
#include "ops_int.h"

/*
 * The four PIN commands, indexed by the table entry's variant (enum ops_pin_cmd): the params
 * each takes, and the one member of its result.
 */
static const struct pin_cmd {
	const char *const allowed[5];
	const char *done_key;
	const char *name;        /* the intent's "cmd" */
	const char *method;      /* as ops.c's table names it (a request's fingerprint) */
} pin_cmds[] = {
	[OPS_PIN_VERIFY] = { { "reader", "pin", NULL, NULL, NULL }, "verified", "verify",
			     "card.verify_pin" },
	[OPS_PIN_CHANGE] = { { "reader", "old_pin", "new_pin", "request_id", NULL }, "changed",
			     "change", "card.change_pin" },
	[OPS_PIN_RELOAD] = { { "reader", "new_pin", "request_id", NULL, NULL }, "reloaded",
			     "reload", "card.reload_pin" },
	[OPS_PIN_UNBLOCK] = { { "reader", "new_pin", "request_id", NULL, NULL }, "unblocked",
			      "unblock", "card.unblock_pin" },
};

/*
 * The PINs of one request: pin (VERIFY) or old_pin (CHANGE) in pin; the new one in new_pin; the
 * request_id of a change (VERIFY takes none: it changes nothing).
 */
struct pin_req {
	struct ssc_pin pin;
	struct ssc_pin new_pin;
	struct ops_request rq;
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
static int pin_parse(const struct op_env *env, enum ops_pin_cmd cmd, json_t *params,
		     struct pin_req *r, struct ssc_diag *diag)
{
	int rc, initial;

	memset(r, 0, sizeof(*r));
	rc = ops_request_params(params, pin_cmds[cmd].allowed, &r->rq, diag);
	if (rc)
		return rc;
	if (cmd == OPS_PIN_VERIFY)
		rc = pin_param(env, params, "pin", &r->pin, diag);
	else if (cmd == OPS_PIN_CHANGE)
		rc = pin_param(env, params, "old_pin", &r->pin, diag);
	if (!rc && cmd != OPS_PIN_VERIFY)
		rc = pin_param(env, params, "new_pin", &r->new_pin, diag);
	if (rc)
		goto out;
	initial = pin_is_initial(env, cmd == OPS_PIN_VERIFY ? &r->pin : &r->new_pin, diag);
	if (initial < 0)
		rc = initial;
	else if (cmd == OPS_PIN_VERIFY && env->cfg->refuse_initial_pin && initial)
		rc = ssc_diag_set(diag, SSC_EPINNOTCHANGED, "this is still an initial PIN: change it "
				  "first (card.change_pin)");
	else if (cmd != OPS_PIN_VERIFY && initial)
		rc = ssc_diag_set(diag, SSC_EPININITIAL, "the new PIN must not be an initial PIN");
	else if (cmd == OPS_PIN_CHANGE && ssc_pin_equal(&r->new_pin, &r->pin))
		rc = ssc_diag_set(diag, SSC_EPINSAME, "the new PIN must differ from the old one");
	/* A request_id is kept in the journal: none, no idempotent change. */
	else if (r->rq.id[0] && !env->journal)
		rc = ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: PIN changes with a "
				  "request_id are refused");
	else if (r->rq.id[0])
		rc = ops_request_fingerprint(env->journal, pin_cmds[cmd].method, params, &r->rq,
					     diag);
out:
	if (rc)
		pin_req_wipe(r);
	return rc;
}

void ops_wipe_pins(json_t *params)
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

int ops_pin_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		  struct ssc_diag *diag)
{
	struct pin_req r;
	int rc = pin_parse(env, (enum ops_pin_cmd)op->variant, params, &r, diag);

	pin_req_wipe(&r);
	return rc;
}

/* The result of a PIN command that was done: {"changed": true} and the like. */
static int pin_result(enum ops_pin_cmd cmd, json_t **result, struct ssc_diag *diag)
{
	*result = json_pack("{s:b}", pin_cmds[cmd].done_key, 1);
	return *result ? 0 : ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
}

static int pin_replayed(const struct op_desc *op, const struct op_env *env, json_t *params,
			int64_t intent, json_t **result, struct ssc_diag *diag)
{
	(void)env;
	(void)params;
	(void)intent;
	return pin_result((enum ops_pin_cmd)op->variant, result, diag);
}

int ops_pin_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		   int no_card, json_t **result, struct ssc_diag *diag)
{
	return ops_request_replay(op, env, params, no_card, pin_replayed, result, diag);
}

/*
 * A PIN change cut off (its intent jr has no outcome), repeated with the card present: VERIFY
 * with the new PIN tells whether the card took it (a PIN cannot be read back). Accepted ->
 * applied; refused (wrong or blocked) -> failed, nothing applied: the change runs again, and a
 * change or reload resets the try counter that VERIFY cost. Another card, or no answer ->
 * SSC_EOUTCOME or the transport's error: the intent stays pending. Returns 1 (applied), 0 (run
 * again) or the error.
 */
static int pin_read_back(const struct op_env *env, struct op_call *call, struct ssc_card *c,
			 struct pin_req *r, const struct journal_request *jr,
			 struct ssc_diag *diag)
{
	struct ssc_diag vd;
	const char *outcome;
	int rc;

	if (strcmp(jr->card_ref, call->card_ref) != 0)
		return ops_request_unknown(jr, call->card_ref, diag);
	ssc_diag_init(&vd);
	rc = ssc_verify_pin(c, &r->new_pin, &vd);
	if (rc != 0 && rc != SSC_EPINWRONG && rc != SSC_EPINBLOCKED)
		return ssc_diag_set(diag, rc, "the first request with this request_id (journal "
				    "intent %" PRId64 ") was cut off, and the card could not be read "
				    "back: %.120s", jr->intent, vd.msg[0] ? vd.msg : ssc_strerror(rc));
	outcome = rc == 0 ? JOURNAL_APPLIED : JOURNAL_FAILED;
	rc = journal_outcome(env->journal, jr->intent, outcome, rc == 0 ? "SSC_OK" : "SSC_ENOTFOUND",
			     "readback", diag);
	if (rc && rc != SSC_EEXIST)
		return rc;
	log_info("journal: intent %" PRId64 " (PIN) resolved by verifying the new PIN: %s",
		 jr->intent, outcome);
	ssc_diag_init(diag);
	return strcmp(outcome, JOURNAL_APPLIED) == 0;
}

/*
 * A PIN change with a request_id: the earlier request's outcome, then the intent of this one.
 * Returns 0 (go on, *id the intent), 1 with *result (answered), or an error.
 */
static int pin_request(const struct op_env *env, enum ops_pin_cmd cmd, struct card_io *io,
		       struct op_call *call, struct ssc_card *c, struct pin_req *r, int64_t *id,
		       json_t **result, struct ssc_diag *diag)
{
	struct journal_request jr;
	char *detail = NULL;
	json_t *d;
	int rc = ops_request_lookup(env->journal, &r->rq, &jr, diag);

	if (rc == OPS_REQ_PENDING)
		rc = pin_read_back(env, call, c, r, &jr, diag);
	if (rc == OPS_REQ_APPLIED) {
		snprintf(call->audit_detail, sizeof(call->audit_detail), "{\"replayed\":%lld}",
			 (long long)jr.intent);
		rc = pin_result(cmd, result, diag);
		return rc ? rc : 1;
	}
	if (rc)
		return rc;
	/* What the journal keeps of a PIN change: which command, never a PIN. */
	d = json_pack("{s:s, s:s, s:s, s:s}", "op", "pin", "cmd", pin_cmds[cmd].name,
		      "request_id", r->rq.id, "fp", r->rq.fp);
	if (d)
		detail = jsontext_dump(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(d);
	if (!detail)
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot build the intent");
	rc = journal_intent(env->journal, call->peer, call->card_ref, io->reader_id,
			    JOURNAL_PIN_FILE, detail, id, diag);
	free(detail);
	if (rc)
		return ssc_diag_set(diag, SSC_EJOURNAL, "the intent could not be recorded: nothing "
				    "was sent to the card");
	return 0;
}

/* The outcome of a PIN change with a request_id; a transport failure leaves it pending. */
static void pin_outcome(const struct op_env *env, int64_t id, int rc)
{
	struct ssc_diag jd;

	if (ops_transport(rc)) {
		log_warn("journal: intent %" PRId64 " (PIN) left pending: %s during the command; a "
			 "repeat of its request_id verifies the new PIN", id, ssc_strerror_name(rc));
		return;
	}
	ssc_diag_init(&jd);
	if (journal_outcome(env->journal, id, rc == 0 ? JOURNAL_APPLIED : JOURNAL_FAILED,
			    ssc_strerror_name(rc), "card", &jd))
		log_error("journal: intent %" PRId64 " (PIN): the outcome could not be recorded "
			  "(%s); it stays pending", id, jd.msg);
}

int ops_pin_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	enum ops_pin_cmd cmd = (enum ops_pin_cmd)op->variant;
	struct ssc_card c;
	struct pin_req r;
	int64_t id = 0;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	rc = pin_parse(env, cmd, call->params, &r, diag);
	ops_wipe_pins(call->params);
	if (rc)
		return rc;
	/* A repeat waits for the first while it runs, then takes its result without the card. */
	if (r.rq.id[0]) {
		struct journal_request jr;

		rc = ops_request_claim(&r.rq, io->deadline_ms, diag);
		if (!rc)
			rc = ops_request_lookup(env->journal, &r.rq, &jr, diag);
		if (rc == OPS_REQ_APPLIED) {
			snprintf(call->audit_detail, sizeof(call->audit_detail),
				 "{\"replayed\":%lld}", (long long)jr.intent);
			rc = pin_result(cmd, result, diag);
			goto out;
		}
		if (rc == OPS_REQ_PENDING)
			rc = 0;
		if (rc)
			goto out;
	}
	rc = ops_card_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_card_identify(env, call, &c, r.rq.id[0] != 0, diag);
	if (rc)
		goto out;
	/* Whatever happens from here, no verified state may outlive this call. */
	*reset_card = 1;
	if (r.rq.id[0]) {
		rc = pin_request(env, cmd, io, call, &c, &r, &id, result, diag);
		if (rc == 1)
			rc = 0;
		if (rc || *result)
			goto out;
	}
	switch (cmd) {
	case OPS_PIN_VERIFY:
		rc = ssc_verify_pin(&c, &r.pin, diag);
		break;
	case OPS_PIN_CHANGE:
		rc = ssc_change_pin(&c, &r.pin, &r.new_pin, diag);
		break;
	case OPS_PIN_RELOAD:
		rc = ssc_reload_pin(&c, &r.new_pin, diag);
		break;
	case OPS_PIN_UNBLOCK:
		rc = ssc_unblock_pin(&c, &r.new_pin, diag);
		break;
	}
	if (id)
		pin_outcome(env, id, rc);
	if (!rc)
		rc = pin_result(cmd, result, diag);
out:
	ops_request_release(&r.rq);
	pin_req_wipe(&r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
