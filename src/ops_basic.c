/*
 * This file contains card.read_basic's answer (src/ops_int.h), shared by card.read_basic and the
 * two-step read's step 2 (which answers exactly as card.read_basic does): the terminal number a
 * read reports at this desk, and the result object with its iReadCardBas string.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "keysel.h"
#include "log.h"
#include "ops_int.h"

/* The iReadCardBas string (spec §5): 11 fields, each followed by '|'. */
static json_t *basic_standard(const struct ssc_basic *b, const char *term, const char *dev)
{
	const char *f[11] = { b->region_code, b->ssn, b->card_number, b->card_id, b->name,
			      b->atr_historical, b->spec_version, b->issue_date, b->expiry_date,
			      term, dev };
	char s[1024];
	size_t n = 0;
	json_t *j;

	for (int i = 0; i < 11; i++) {
		size_t l = strlen(f[i]);

		if (n + l + 2 > sizeof(s))
			return NULL;
		memcpy(s + n, f[i], l);
		n += l;
		s[n++] = '|';
	}
	j = json_stringn(s, n);
	OPENSSL_cleanse(s, sizeof(s));
	return j;
}

json_t *ops_basic_result(const struct ssc_basic *b, const char term[13], const char *serial,
			 enum ssc_alg alg)
{
	json_t *std = basic_standard(b, term, serial);

	/* json_pack's "o" takes std, even on failure. */
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, "
			 "s:s, s:s, s:s, s:o}",
			 "region_code", b->region_code, "ssn", b->ssn,
			 "card_number", b->card_number, "card_id", b->card_id, "name", b->name,
			 "sex", b->sex, "nation", b->nation, "birth_place", b->birth_place,
			 "birth_date", b->birth_date, "spec_version", b->spec_version,
			 "issue_date", b->issue_date, "expiry_date", b->expiry_date,
			 "expired", b->expired, "atr_historical", b->atr_historical,
			 "terminal_number", term, "terminal_device", serial,
			 "algorithm", alg == SSC_ALG_SM4 ? "sm4" : "des", "standard", std);
}

int ops_basic_terminal(const struct op_env *env, const struct ssc_card *c, char term[13],
		       struct ssc_diag *diag)
{
	int rc;

	memcpy(term, "000000000000", 13);
	if (!env->kp || env->kp->ops->available(env->kp, c->alg) != 0)
		return 0;
	rc = env->kp->ops->terminal_number(env->kp, c->alg, term, c->io->deadline_ms, diag);
	if (keysel_failover(rc))
		log_warn("keys: no terminal number from the key server for the card on %s (%s: %s); "
			 "reported as 000000000000", c->io->reader_id, ssc_strerror_name(rc),
			 diag->msg);
	if (rc == SSC_ENOPSAM || rc == SSC_EPSAMALGO || keysel_failover(rc)) {
		/* The PSAM left between the two calls: as if there had been none. */
		memcpy(term, "000000000000", 13);
		ssc_diag_init(diag);
		return 0;
	}
	return rc;
}

int ops_basic_open(const struct op_env *env, struct card_io *io, struct op_call *call,
		   unsigned *insertion_flags, struct ssc_card *c, struct ssc_basic *b,
		   char term[13], struct ssc_diag *diag)
{
	int rc = ops_card_open(env, io, insertion_flags, c, diag);

	if (!rc)
		rc = ssc_read_basic(c, b, diag);
	if (!rc)
		rc = ops_card_identify(env, call, c, 0, diag);
	if (!rc)
		rc = ops_basic_terminal(env, c, term, diag);
	return rc;
}
