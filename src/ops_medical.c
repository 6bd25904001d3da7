/*
 * This file contains medical.credentials (issue 15; src/ops_int.h): what a hospital information
 * system sends to the national medical insurance platform to identify the insured (spec §6, the
 * NHSA names of 1101 人员信息获取), read from the card in one operation with an internal-authentication
 * proof of the card, as claim.verify_holder's receipt carries one (src/receipt.c's plaintext).
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hex.h"
#include "ops_int.h"
#include "receipt.h"

/*
 * DF04/EF05 参保地区划 (6 digits) into out (7 bytes): "" when the card has no such record or no
 * DF04 (a note says so), else the card's errors.
 */
static int medical_region(struct ssc_card *c, char out[7], const char **note,
			  struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	char text[ITEM_TEXT_MAX];
	int n;

	out[0] = '\0';
	*note = NULL;
	if (items_file_parse("DF04/EF05", &f) || items_find(&f, 0x30, &it))
		return SSC_EINTERNAL;
	n = ssc_read_text(c, &f, &it, text, sizeof(text), diag);
	if (n == SSC_ENORECORD || n == SSC_ENOFILE) {
		ssc_diag_init(diag);
		*note = "the card holds no 参保地区划 (DF04/EF05 30): insuplc_admdvs is empty; the "
			"platform takes the insured's region from its own records";
		return 0;
	}
	if (n < 0)
		return n;
	if (n == 6)
		memcpy(out, text, 7);
	return 0;
}

/* The proof: INTERNAL AUTH with P random and X bound to time, terminal and 卡识别码. */
static json_t *medical_proof(struct ssc_card *c, const struct ssc_basic *b, const char *term,
			     struct ssc_diag *diag, int *rc)
{
	struct receipt_in in;
	char now[21], f[17], x[17], a[17];
	uint8_t px[16];
	time_t t = time(NULL);
	struct tm tm;

	memset(&in, 0, sizeof(in));
	if (!gmtime_r(&t, &tm) || strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
		memcpy(now, "1970-01-01T00:00:00Z", 21);
	in.time = now;
	in.request_id = "";
	in.terminal_number = term;
	in.card_id = b->card_id;
	if (RAND_bytes(in.factor, 8) != 1) {
		*rc = ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes");
		return NULL;
	}
	*rc = receipt_plaintext(&in, in.plaintext);
	if (*rc)
		return NULL;
	memcpy(px, in.factor, 8);
	memcpy(px + 8, in.plaintext, 8);
	*rc = ssc_internal_auth_px(c, px, in.answer, diag);
	if (*rc)
		return NULL;
	hex_encode(in.factor, 8, f, sizeof(f), HEX_UPPER);
	hex_encode(in.plaintext, 8, x, sizeof(x), HEX_UPPER);
	hex_encode(in.answer, 8, a, sizeof(a), HEX_UPPER);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "time", now, "terminal_number", term,
			 "algorithm", c->alg == SSC_ALG_SM4 ? "sm4" : "des", "factor", f,
			 "plaintext", x, "answer", a);
}

int ops_medical_cred_run(const struct op_desc *op, const struct op_env *shared,
			 struct card_io *io, struct op_call *call, unsigned *insertion_flags,
			 int *reset_card, json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ssc_basic b;
	struct ssc_card c;
	const char *note = NULL;
	char term[13], region[7];
	json_t *basic = NULL, *proof = NULL, *r = NULL;
	int rc;

	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	rc = ops_params_reader_only(op, env, call->params, diag);
	if (!rc)
		rc = ops_basic_open(env, io, call, insertion_flags, &c, &b, term, diag);
	if (!rc)
		rc = medical_region(&c, region, &note, diag);
	if (!rc)
		proof = medical_proof(&c, &b, term, diag, &rc);
	if (rc)
		goto out;
	basic = ops_basic_result(&b, term, io->reader_serial, c.alg);
	r = basic && proof ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:O}",
				       "mdtrt_cert_type", "03", "mdtrt_cert_no", b.card_number,
				       "card_sn", b.card_id, "psn_cert_type", "01", "certno", b.ssn,
				       "psn_name", b.name, "insuplc_admdvs", region, "standard",
				       json_object_get(basic, "standard"), "internal_auth", proof)
			   : NULL;
	if (r && note && json_object_set_new(r, "note", json_string(note))) {
		json_decref(r);
		r = NULL;
	}
	if (!r)
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	*result = r;
out:
	if (c.authenticated)
		*reset_card = 1;
	json_decref(basic);
	json_decref(proof);
	OPENSSL_cleanse(&b, sizeof(b));
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}
