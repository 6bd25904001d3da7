/*
 * This file contains the PIN operations (src/ops_int.h): card.verify_pin, card.change_pin,
 * card.reload_pin and card.unblock_pin, one check and one run told apart by their table entry,
 * with the middleware's PIN policies (initial PINs, the same PIN again). PINs live in struct
 * ssc_pin, wiped on every path, and are overwritten in the operation's copy of the params.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ops_int.h"

/*
 * The four PIN commands, indexed by the table entry's variant (enum ops_pin_cmd): the params
 * each takes, and the one member of its result.
 */
static const struct pin_cmd {
	const char *const allowed[4];
	const char *done_key;
} pin_cmds[] = {
	[OPS_PIN_VERIFY] = { { "reader", "pin", NULL, NULL }, "verified" },
	[OPS_PIN_CHANGE] = { { "reader", "old_pin", "new_pin", NULL }, "changed" },
	[OPS_PIN_RELOAD] = { { "reader", "new_pin", NULL, NULL }, "reloaded" },
	[OPS_PIN_UNBLOCK] = { { "reader", "new_pin", NULL, NULL }, "unblocked" },
};

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
static int pin_parse(const struct op_env *env, enum ops_pin_cmd cmd, json_t *params,
		     struct pin_req *r, struct ssc_diag *diag)
{
	int rc, initial;

	memset(r, 0, sizeof(*r));
	if ((rc = ops_params_check(params, pin_cmds[cmd].allowed, diag)))
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

int ops_pin_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	enum ops_pin_cmd cmd = (enum ops_pin_cmd)op->variant;
	struct ssc_card c;
	struct pin_req r;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	rc = pin_parse(env, cmd, call->params, &r, diag);
	ops_wipe_pins(call->params);
	if (rc)
		return rc;
	rc = ops_card_open(env, io, insertion_flags, &c, diag);
	if (!rc)
		rc = ops_card_identify(env, call, &c, 0, diag);
	if (rc)
		goto out;
	/* Whatever happens from here, no verified state may outlive this call. */
	*reset_card = 1;
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
	if (!rc) {
		*result = json_pack("{s:b}", pin_cmds[cmd].done_key, 1);
		if (!*result)
			rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	}
out:
	pin_req_wipe(&r);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
