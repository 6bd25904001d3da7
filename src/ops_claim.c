/*
 * This file contains claim.verify_holder (issue 15; src/ops_int.h): one exclusive operation on the
 * card that proves the holder present and the card genuine for a benefit claim: the basic data,
 * INTERNAL AUTH with a plaintext bound to the receipt (src/receipt.c), then VERIFY; the answer
 * carries the receipt, signed by the desk's key ([receipts] key_file), for a back office to check
 * offline. A card that is not genuine gets no PIN try; a wrong PIN gets no receipt.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hex.h"
#include "ops_int.h"
#include "receipt.h"

/* One claim: the PIN and the receipt's label. Wiped before it ends. */
struct claim_req {
	struct ssc_pin pin;
	struct ops_request rq;        /* only its id: the receipt's request_id */
};

static int claim_parse(const struct op_env *env, json_t *params, struct claim_req *r,
		       struct ssc_diag *diag)
{
	static const char *const allowed[] = { "reader", "pin", "request_id", NULL };
	json_t *v = params ? json_object_get(params, "pin") : NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = ops_request_params(params, allowed, &r->rq, diag);
	if (rc)
		return rc;
	if (!v || !json_is_string(v))
		return ssc_diag_set(diag, SSC_EINVAL, "\"pin\" must be a string of digits");
	rc = ssc_pin_parse(&r->pin, json_string_value(v), json_string_length(v),
			   env->cfg->pin_min_len, env->cfg->pin_max_len, diag);
	if (rc)
		return ssc_diag_set(diag, rc, "\"pin\": a PIN is %d to %d digits",
				    env->cfg->pin_min_len, env->cfg->pin_max_len);
	if (!env->cfg->receipts_key_file[0])
		return ssc_diag_set(diag, SSC_ECONFIG, "claim.verify_holder signs a receipt: set "
				    "[receipts] key_file in the configuration");
	return 0;
}

int ops_claim_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		    struct ssc_diag *diag)
{
	struct claim_req r;
	int rc = claim_parse(env, params, &r, diag);

	(void)op;
	OPENSSL_cleanse(&r, sizeof(r));
	return rc;
}

/*
 * The holder as card.read_basic shows the card: its result without what describes the desk
 * (terminal number and device), the card's algorithm (in the receipt) and the iReadCardBas string.
 */
static json_t *claim_holder(const struct ssc_basic *b, const char term[13], const char *serial,
			    enum ssc_alg alg)
{
	static const char *const drop[] = { "terminal_number", "terminal_device", "algorithm",
					    "standard" };
	json_t *h = ops_basic_result(b, term, serial, alg);

	for (size_t i = 0; h && i < sizeof(drop) / sizeof(drop[0]); i++)
		json_object_del(h, drop[i]);
	return h;
}

/* Now, UTC, RFC 3339 to the second. */
static void claim_now(char out[21])
{
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm) || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
		memcpy(out, "1970-01-01T00:00:00Z", 21);
}

/* Signs the receipt text and builds the result. */
static int claim_result(EVP_PKEY *key, json_t *holder, const char *text, json_t **result,
			struct ssc_diag *diag)
{
	char *sig = NULL;
	int rc = receipt_sign(key, (const uint8_t *)text, strlen(text), &sig, diag);

	if (rc) {
		json_decref(holder);
		return rc;
	}
	*result = holder ? json_pack("{s:o, s:b, s:b, s:s, s:s, s:s}", "holder", holder,
				     "genuine", 1, "pin_verified", 1, "receipt", text,
				     "signature", sig, "algorithm", receipt_key_algorithm(key))
			 : NULL;
	free(sig);
	return *result ? 0 : ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
}

int ops_claim_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		  struct op_call *call, unsigned *insertion_flags, int *reset_card,
		  json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct claim_req r;
	struct receipt_in in;
	struct ssc_basic b;
	struct ssc_card c;
	EVP_PKEY *key = NULL;
	char term[13], now[21], rid[OPS_REQUEST_ID_MAX + 1];
	uint8_t px[16], rnd[8];
	char *text = NULL;
	int rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	memset(&in, 0, sizeof(in));
	rc = claim_parse(env, call->params, &r, diag);
	ops_wipe_pins(call->params);
	/* The key first: a desk that cannot sign spends none of the holder's tries. */
	if (!rc)
		rc = receipt_key_load(env->cfg->receipts_key_file, &key, diag);
	if (!rc)
		rc = ops_basic_open(env, io, call, insertion_flags, &c, &b, term, diag);
	if (!rc && RAND_bytes(rnd, sizeof(rnd)) != 1)
		rc = ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes");
	if (rc)
		goto out;
	/* Without a request_id of the client's, the receipt is named by 16 random hex digits. */
	if (r.rq.id[0])
		snprintf(rid, sizeof(rid), "%s", r.rq.id);
	else
		hex_encode(rnd, sizeof(rnd), rid, sizeof(rid), HEX_LOWER);
	claim_now(now);
	in.time = now;
	in.request_id = rid;
	in.terminal_number = term;
	in.reader = io->reader_id;
	in.card_number = b.card_number;
	in.card_id = b.card_id;
	in.ssn = b.ssn;
	in.region_code = b.region_code;
	in.atr_historical = b.atr_historical;
	in.algorithm = c.alg == SSC_ALG_SM4 ? "sm4" : "des";
	if (RAND_bytes(in.factor, sizeof(in.factor)) != 1) {
		rc = ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes");
		goto out;
	}
	rc = receipt_plaintext(&in, in.plaintext);
	if (rc)
		goto out;
	memcpy(px, in.factor, 8);
	memcpy(px + 8, in.plaintext, 8);
	/* A card that is not genuine is never asked for the PIN: no try is spent on it. */
	rc = ssc_internal_auth_px(&c, px, in.answer, diag);
	if (rc)
		goto out;
	*reset_card = 1;   /* no verified state outlives the call */
	rc = ssc_verify_pin(&c, &r.pin, diag);
	if (rc)
		goto out;
	in.pin_verified = 1;
	text = receipt_text(&in);
	rc = text ? claim_result(key, claim_holder(&b, term, io->reader_serial, c.alg), text,
				 result, diag)
		  : ssc_diag_set(diag, SSC_ENOMEM, "cannot build the receipt");
out:
	if (c.authenticated)
		*reset_card = 1;
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	EVP_PKEY_free(key);
	OPENSSL_cleanse(&r, sizeof(r));
	OPENSSL_cleanse(&b, sizeof(b));
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
