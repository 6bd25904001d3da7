/*
 * This file contains the card as every card operation opens it (src/ops_int.h): SELECT SSSE with
 * the resolution of this card's pending intents on the first operation of an insertion, and the
 * card's identity for the journal with the lost-card check. Worker thread.
 */
#include "hex.h"
#include "log.h"
#include "ops_int.h"

int ops_card_identify(const struct op_env *env, struct op_call *call, struct ssc_card *c,
		      int writing, struct ssc_diag *diag)
{
	struct ssc_diag why;
	char id_hex[33];
	int rc;

	ssc_diag_init(&why);
	call->lost = -1;
	if (!env->journal)
		return writing ? ssc_diag_set(diag, SSC_EJOURNAL, "the journal is not open: "
					      "writes are refused") : 0;
	rc = ssc_card_number(c, diag);
	if (!rc)
		rc = ssc_ensure_card_id(c, diag);
	if (rc)
		return rc;
	journal_card_ref(env->journal, c->card_number, call->card_ref);
	hex_encode(c->card_id, 16, id_hex, sizeof(id_hex), HEX_UPPER);
	rc = journal_blacklisted(env->journal, c->card_number, id_hex, &why);
	if (rc >= 0)
		call->lost = rc;
	if (rc == 1 && !(call->allow_lost && !writing))
		return ssc_diag_set(diag, SSC_EBLACKLISTED, "the card is on the lost-card list "
				    "(挂失): do not accept it");
	if (rc < 0) {
		if (writing)
			return ssc_diag_set(diag, SSC_EJOURNAL, "the lost-card list cannot be read "
					    "(%.160s): writes are refused", why.msg);
		log_warn("journal: the lost-card list cannot be read (%s); the read goes on unchecked",
			 why.msg);
	}
	return 0;
}

int ops_card_open(const struct op_env *env, struct card_io *io, unsigned *flags,
		  struct ssc_card *c, struct ssc_diag *diag)
{
	int rc, n;

	rc = ssc_open(c, io, env->cfg, env->kp, flags, diag);
	if (rc || !env->journal || (*flags & CARD_FLAG_RESOLVED))
		return rc;
	n = journal_pending_count(env->journal, NULL);
	if (n < 0) {
		log_warn("journal: cannot count pending intents; this card is not checked for them");
		return 0;
	}
	if (n > 0) {
		rc = ops_recover_card(env, c, NULL, diag);
		if (rc < 0 && ops_transport(rc))
			return rc;
		if (rc < 0) {
			log_warn("journal: pending intents of the card on %s not resolved: %s (%s)",
				 io->reader_id, ssc_strerror_name(rc), diag->msg);
			ssc_diag_init(diag);
		}
	}
	*flags |= CARD_FLAG_RESOLVED;
	return 0;
}
