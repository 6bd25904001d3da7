/*
 * This file contains the §12.7 transaction records of DF04/EF08 as the card operations handle
 * them (src/ops_int.h): as JSON both ways, and read from the card one by one, newest first.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "ops_int.h"

#define OPS_MAX_CYCLIC 255        /* records read from a cyclic file (READ RECORD P1 limit) */

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

int ops_txn_parse(json_t *o, struct item_txn *t, struct ssc_diag *diag)
{
	static const char *const fields[] = { "time", "institution", "settlement_no", "total",
					      "personal_account", "pooled", NULL };
	int rc;

	memset(t, 0, sizeof(*t));
	if (!json_is_object(o))
		return ssc_diag_set(diag, SSC_EINVAL, "a transaction record must be an object");
	if ((rc = ops_params_known(o, fields, diag)) ||
	    (rc = txn_string(o, "time", t->time, sizeof(t->time), diag)) ||
	    (rc = txn_string(o, "institution", t->institution, sizeof(t->institution), diag)) ||
	    (rc = txn_string(o, "settlement_no", t->settlement, sizeof(t->settlement), diag)) ||
	    (rc = txn_amount(o, "total", &t->total, diag)) ||
	    (rc = txn_amount(o, "personal_account", &t->personal_account, diag)) ||
	    (rc = txn_amount(o, "pooled", &t->pooled, diag)))
		return rc;
	return 0;
}

json_t *ops_txn_json(const struct item_txn *t)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "time", t->time,
			 "institution", t->institution, "settlement_no", t->settlement,
			 "total", (json_int_t)t->total,
			 "personal_account", (json_int_t)t->personal_account,
			 "pooled", (json_int_t)t->pooled);
}

int ops_txn_each(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		 ops_txn_fn fn, void *arg, struct ssc_diag *diag)
{
	uint8_t v[APDU_MAX_DATA];
	int rc = 0;

	for (int recno = 1; recno <= OPS_MAX_CYCLIC && rc == 0; recno++) {
		int n = ssc_read_item(c, f, it, recno, v, sizeof(v), diag);

		if (n == SSC_ENORECORD) {
			/* 6A86: older records exist, but this card cannot address them. */
			rc = diag->sw == 0x6A86 ? OPS_TXN_HIDDEN : 0;
			ssc_diag_init(diag);
			break;
		}
		rc = n < 0 ? n : fn(arg, recno, v, (size_t)n, diag);
	}
	OPENSSL_cleanse(v, sizeof(v));
	return rc;
}

int ops_txn_same_settlement(const uint8_t *v, size_t n, const char *settlement,
			    struct ssc_diag *diag)
{
	struct item_txn t;
	int rc = items_decode_txn(v, n, &t, diag);

	if (rc == 0)
		rc = strcmp(t.settlement, settlement) == 0;
	OPENSSL_cleanse(&t, sizeof(t));
	return rc;
}
