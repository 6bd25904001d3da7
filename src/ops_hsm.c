/*
 * This file contains the two-step read of the API (spec §13.1): card.hsm_step1 and card.hsm_step2,
 * and the table of their sessions. A session lives from its step 1 to its step 2 (any step 2,
 * right or wrong, ends it), its expiry, or its card's removal (which the reader core sees: the
 * step 2 of such a session finds no lease). The reader core holds the card for the session
 * meanwhile (struct job's lease); the table only remembers what step 1 learnt.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hex.h"
#include "log.h"
#include "ops_int.h"
#include "ssc_hsm.h"

#define HSM_SESSIONS_MAX 64           /* sessions open at once */
#define HSM_KEY_MAX 256               /* a key string longer than this is malformed */

struct hsm_session {
	int used;
	int taken;                        /* its step 2 came: no other may */
	char id[33];                      /* what the client names it by (hex of 16 random bytes) */
	uint64_t lease;                   /* the reader core's lease */
	char reader[SSC_READER_ID_MAX];
	int64_t expires_ms;               /* CLOCK_MONOTONIC */
	struct ssc_hsm_step1 st;
	char term[13];
};

/* The sessions of this process: two steps are two requests, often on two connections. */
static struct {
	pthread_mutex_t lock;
	struct hsm_session s[HSM_SESSIONS_MAX];
} hsm_tab = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Forgets sessions past their time (lock held): the core has let go of their readers. */
static void hsm_tab_expire_locked(int64_t now)
{
	for (size_t i = 0; i < HSM_SESSIONS_MAX; i++)
		if (hsm_tab.s[i].used && now >= hsm_tab.s[i].expires_ms)
			OPENSSL_cleanse(&hsm_tab.s[i], sizeof(hsm_tab.s[i]));
}

static int hsm_param_strings(json_t *params, const char *const *names, size_t n,
			     struct ssc_diag *diag)
{
	const char *key;
	json_t *v;

	if (params && !json_is_object(params))
		return ssc_diag_set(diag, SSC_EINVAL, "params must be an object");
	if (params) {
		json_object_foreach(params, key, v) {
			size_t i;

			for (i = 0; i < n && strcmp(key, names[i]) != 0; i++)
				;
			if (i == n)
				return ssc_diag_set(diag, SSC_EINVAL, "unknown param \"%.64s\"", key);
			if (!json_is_string(v))
				return ssc_diag_set(diag, SSC_EINVAL, "\"%s\" must be a string",
						    names[i]);
		}
	}
	return 0;
}

int ops_hsm_step1_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			struct ssc_diag *diag)
{
	static const char *const names[] = { "reader" };

	(void)op;
	(void)env;
	return hsm_param_strings(params, names, 1, diag);
}

/* A new session for st in the table: its id and lease. Returns 0 or SSC_ELIMIT / SSC_ECRYPTO. */
static int hsm_session_new(const struct ssc_hsm_step1 *st, const char term[13], const char *reader,
			   int ttl_ms, char id[33], uint64_t *lease, struct ssc_diag *diag)
{
	uint8_t rnd[24];
	struct hsm_session *s = NULL;
	int64_t now = cardio_now_ms();

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes for the session");
	pthread_mutex_lock(&hsm_tab.lock);
	hsm_tab_expire_locked(now);
	for (size_t i = 0; i < HSM_SESSIONS_MAX && !s; i++)
		if (!hsm_tab.s[i].used)
			s = &hsm_tab.s[i];
	if (s) {
		s->used = 1;
		hex_encode(rnd, 16, s->id, sizeof(s->id), HEX_LOWER);
		memcpy(&s->lease, rnd + 16, 8);
		s->lease |= 1;   /* never 0: 0 means no lease */
		snprintf(s->reader, sizeof(s->reader), "%s", reader);
		s->expires_ms = now + ttl_ms;
		s->st = *st;
		memcpy(s->term, term, 13);
		memcpy(id, s->id, 33);
		*lease = s->lease;
	}
	pthread_mutex_unlock(&hsm_tab.lock);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return s ? 0 : ssc_diag_set(diag, SSC_ELIMIT, "%d two-step reads are open already: finish "
				    "one (its step 2), or wait for it to expire", HSM_SESSIONS_MAX);
}

static void hsm_session_drop(uint64_t lease)
{
	pthread_mutex_lock(&hsm_tab.lock);
	for (size_t i = 0; i < HSM_SESSIONS_MAX; i++)
		if (hsm_tab.s[i].used && hsm_tab.s[i].lease == lease)
			OPENSSL_cleanse(&hsm_tab.s[i], sizeof(hsm_tab.s[i]));
	pthread_mutex_unlock(&hsm_tab.lock);
}

int ops_hsm_step1_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	struct ssc_hsm_step1 st;
	struct ssc_card c;
	char term[13], line[SSC_HSM_STEP1_MAX], id[33];
	uint8_t px[16];
	uint64_t lease = 0;
	int rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&st, 0, sizeof(st));
	/* The keys are the key server's, asked by the client: no key provider touches the card. */
	rc = ssc_open(&c, io, env->cfg, NULL, insertion_flags, diag);
	if (rc)
		goto out;
	if (RAND_bytes(px, sizeof(px)) != 1) {
		rc = ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes for INTERNAL AUTH");
		goto out;
	}
	rc = ssc_hsm_step1(&c, px, &st, diag);
	if (!rc)
		rc = ops_basic_terminal(env, &c, term, diag);
	if (!rc && ssc_hsm_step1_string(&st, term, line, sizeof(line)) < 0)
		rc = ssc_diag_set(diag, SSC_EINTERNAL, "the step-1 string does not fit");
	if (!rc)
		rc = hsm_session_new(&st, term, io->reader_id, env->cfg->hsm_session_ms, id, &lease,
				     diag);
	if (rc)
		goto out;
	*result = json_pack("{s:s, s:s, s:i}", "session", id, "step1", line, "expires_in_ms",
			    env->cfg->hsm_session_ms);
	if (!*result) {
		hsm_session_drop(lease);
		rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
		goto out;
	}
	/* The core keeps the card, unreset, for this session's step 2 alone. */
	call->lease = lease;
	call->lease_ms = env->cfg->hsm_session_ms;
	/* Not the session's id: with the key server's answer, it is what reads the card. */
	log_info("two-step read: reader %s held for its step 2, at most %d ms%s", io->reader_id,
		 env->cfg->hsm_session_ms, st.has_r ? " (the card demands read authorisation)" : "");
out:
	/* INTERNAL AUTH and GET CHALLENGE leave no security state: no reset (it would lose R). */
	(void)reset_card;
	OPENSSL_cleanse(px, sizeof(px));
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

int ops_hsm_step2_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			struct ssc_diag *diag)
{
	static const char *const names[] = { "session", "key" };
	int rc;

	(void)op;
	(void)env;
	rc = hsm_param_strings(params, names, 2, diag);
	if (rc)
		return rc;
	if (!params || !json_object_get(params, "session") || !json_object_get(params, "key"))
		return ssc_diag_set(diag, SSC_EINVAL, "\"session\" (from card.hsm_step1) and \"key\" "
				    "(the key server's answer) are required");
	return 0;
}

int ops_hsm_step2_lease(const struct op_env *env, json_t *params, char *reader, size_t reader_cap,
			uint64_t *lease, struct ssc_diag *diag)
{
	const char *id = json_string_value(json_object_get(params, "session"));
	int64_t now = cardio_now_ms();
	int rc = SSC_EHSMSESSION;

	(void)env;
	pthread_mutex_lock(&hsm_tab.lock);
	for (size_t i = 0; id && i < HSM_SESSIONS_MAX; i++) {
		struct hsm_session *s = &hsm_tab.s[i];

		if (!s->used || strcmp(s->id, id) != 0)
			continue;
		if (now >= s->expires_ms) {
			OPENSSL_cleanse(s, sizeof(*s));
			rc = SSC_EHSMEXPIRED;
		} else if (!s->taken) {
			/* Any step 2 ends the session: a second one finds it taken. */
			s->taken = 1;
			snprintf(reader, reader_cap, "%s", s->reader);
			*lease = s->lease;
			rc = 0;
		}
		break;
	}
	hsm_tab_expire_locked(now);
	pthread_mutex_unlock(&hsm_tab.lock);
	if (rc == SSC_EHSMEXPIRED)
		return ssc_diag_set(diag, rc, "the two-step read session expired (%d s after step "
				    "1): start again with card.hsm_step1",
				    env->cfg->hsm_session_ms / 1000);
	if (rc)
		return ssc_diag_set(diag, rc, "no such two-step read session: it was never given, "
				    "or it ended (a step 2 was sent for it already)");
	return 0;
}

/* The session of lease, taken out of the table into *out. Returns 0 or SSC_EHSMSESSION. */
static int hsm_session_take(uint64_t lease, struct hsm_session *out)
{
	int rc = SSC_EHSMSESSION;

	pthread_mutex_lock(&hsm_tab.lock);
	for (size_t i = 0; lease && i < HSM_SESSIONS_MAX; i++) {
		if (hsm_tab.s[i].used && hsm_tab.s[i].lease == lease) {
			*out = hsm_tab.s[i];
			OPENSSL_cleanse(&hsm_tab.s[i], sizeof(hsm_tab.s[i]));
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&hsm_tab.lock);
	return rc;
}

int ops_hsm_step2_run(const struct op_desc *op, const struct op_env *shared, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag)
{
	struct op_env snap, *env = &snap;
	json_t *jk = json_object_get(call->params, "key");
	struct hsm_session s;
	struct ssc_basic b;
	struct ssc_card c;
	uint8_t ext[16];
	int has_ext = 0, rc;

	(void)op;
	ops_env_snapshot(shared, &snap);
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	/* Whatever happens now, the reader's lease ends with this job (lease_ms stays 0). */
	call->lease_ms = 0;
	rc = hsm_session_take(call->lease, &s);
	if (rc)
		return ssc_diag_set(diag, rc, "no such two-step read session");
	/* The key first, against step 1: a bad one sends nothing to the card. */
	if (json_string_length(jk) > HSM_KEY_MAX)
		rc = ssc_diag_set(diag, SSC_EHSMKEY, "the key is longer than %d characters",
				  HSM_KEY_MAX);
	else
		rc = ssc_hsm_check_key(&s.st, json_string_value(jk), json_string_length(jk), ext,
				       &has_ext, diag);
	if (!rc)
		rc = ssc_open(&c, io, env->cfg, NULL, insertion_flags, diag);
	if (!rc && (c.hist_len != s.st.hist_len || memcmp(c.hist, s.st.hist, c.hist_len) != 0))
		rc = ssc_diag_set(diag, SSC_ECARDREMOVED, "another card is in reader %s than at "
				  "step 1", io->reader_id);
	if (!rc)
		rc = ssc_hsm_step2(&c, &s.st, ext, has_ext, &b, diag);
	/* The same card as at step 1: its 卡识别码 (the session's word on it) again. */
	if (!rc && memcmp(c.card_id, s.st.card_id, 16) != 0)
		rc = ssc_diag_set(diag, SSC_ECARDREMOVED, "another card is in reader %s than at "
				  "step 1", io->reader_id);
	if (!rc)
		rc = ops_card_identify(env, call, &c, 0, diag);
	if (!rc) {
		*result = ops_basic_result(&b, s.term, io->reader_serial, s.st.alg);
		if (!*result)
			rc = ssc_diag_set(diag, SSC_ENOMEM, "cannot build the result");
	}
	if (c.authenticated)
		*reset_card = 1;
	OPENSSL_cleanse(&s, sizeof(s));
	OPENSSL_cleanse(&b, sizeof(b));
	OPENSSL_cleanse(&c, sizeof(c));
	OPENSSL_cleanse(ext, sizeof(ext));
	return rc;
}
