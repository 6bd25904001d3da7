/*
 * This file contains the choice between two key providers (src/keysel.h): the first that can
 * serve the card's algorithm serves, and the other takes over an operation the key server could
 * not serve.
 */
#include <stdlib.h>
#include <string.h>

#include "keysel.h"
#include "log.h"

struct keysel {
	struct keyprov kp;
	struct keyprov *p[2];
};

int keysel_failover(int err)
{
	switch (err) {
	case SSC_EHSMDOWN:
	case SSC_EHSMTIMEOUT:
	case SSC_EHSMTLS:
	case SSC_EHSMCERT:
	case SSC_EHSMDENIED:
	case SSC_EHSMNOPSAM:
	case SSC_EHSMURL:
	case SSC_EHSMSERVER:
	case SSC_EHSMPROTO:
	case SSC_EHSMDROPPED:
		return 1;
	default:
		return 0;
	}
}

/* Index of the first provider available for alg from index from on, or -1 with *why set. */
static int keysel_pick(const struct keysel *s, enum ssc_alg alg, int from, int *why)
{
	*why = SSC_ENOPSAM;
	for (int i = from; i < 2; i++) {
		int rc;

		if (!s->p[i])
			continue;
		rc = s->p[i]->ops->available(s->p[i], alg);
		if (rc == 0)
			return i;
		if (rc == SSC_EPSAMALGO)
			*why = rc;
	}
	return -1;
}

static int keysel_available(struct keyprov *kp, enum ssc_alg alg)
{
	int why;

	return keysel_pick(kp->ctx, alg, 0, &why) >= 0 ? 0 : why;
}

/* A provider as the log names it for an operator. */
static const char *keysel_label(const struct keyprov *p)
{
	if (strcmp(p->ops->name, "hsm") == 0)
		return "the key server";
	if (strcmp(p->ops->name, "psam") == 0)
		return "a PSAM in a reader";
	return p->ops->name;
}

/*
 * The provider to try after provider i failed with rc, or -1. Logged, since the desk runs on its
 * second choice until the first comes back.
 */
static int keysel_next(const struct keysel *s, enum ssc_alg alg, int i, int rc)
{
	int why, j;

	if (!keysel_failover(rc) || i != 0)
		return -1;
	j = keysel_pick(s, alg, 1, &why);
	if (j >= 0)
		log_warn("keys: %s failed (%s); %s serves this operation",
			 keysel_label(s->p[i]), ssc_strerror_name(rc), keysel_label(s->p[j]));
	return j;
}

/* One key operation and its arguments, so that one function tries the providers in turn. */
enum keysel_op { KEYSEL_CRYPTOGRAM, KEYSEL_MAC, KEYSEL_ENCRYPT, KEYSEL_TERMINAL };

struct keysel_args {
	enum keysel_op op;
	enum ssc_alg alg;
	const struct config_key *key;
	const struct keyprov_div *div;
	const uint8_t *r, *x, *iv, *in;
	size_t len;
	uint8_t *out;
	char *term;
	int64_t deadline_ms;
};

static int keysel_call(struct keyprov *p, const struct keysel_args *a, struct ssc_diag *diag)
{
	switch (a->op) {
	case KEYSEL_CRYPTOGRAM:
		return p->ops->cryptogram(p, a->alg, a->key, a->div, a->r, a->x, a->out,
					  a->deadline_ms, diag);
	case KEYSEL_MAC:
		return p->ops->mac(p, a->alg, a->key, a->div, a->iv, a->in, a->len, a->out,
				   a->deadline_ms, diag);
	case KEYSEL_ENCRYPT:
		return p->ops->encrypt(p, a->alg, a->key, a->div, a->in, a->len, a->out,
				       a->deadline_ms, diag);
	case KEYSEL_TERMINAL:
		return p->ops->terminal_number(p, a->alg, a->term, a->deadline_ms, diag);
	}
	return SSC_EINTERNAL;
}

/* The first available provider serves; the other one takes over a key server's failure. */
static int keysel_run(const struct keysel *s, const struct keysel_args *a, struct ssc_diag *diag)
{
	int rc, i = keysel_pick(s, a->alg, 0, &rc);

	if (i < 0)
		return ssc_diag_set(diag, rc, "%s", rc == SSC_EPSAMALGO ?
				    "no PSAM for the card's algorithm" :
				    "no PSAM is inserted and no key server is set up");
	rc = keysel_call(s->p[i], a, diag);
	i = rc ? keysel_next(s, a->alg, i, rc) : -1;
	if (i >= 0) {
		/* The first failure's detail goes: the second provider's answer stands alone. */
		ssc_diag_init(diag);
		rc = keysel_call(s->p[i], a, diag);
	}
	return rc;
}

static int keysel_cryptogram(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			     const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			     uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keysel_args a = { .op = KEYSEL_CRYPTOGRAM, .alg = alg, .key = key, .div = div,
				 .r = r, .x = x, .out = c, .deadline_ms = deadline_ms };

	return keysel_run(kp->ctx, &a, diag);
}

static int keysel_mac(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		      const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data,
		      size_t len, uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keysel_args a = { .op = KEYSEL_MAC, .alg = alg, .key = key, .div = div, .iv = iv,
				 .in = data, .len = len, .out = mac, .deadline_ms = deadline_ms };

	return keysel_run(kp->ctx, &a, diag);
}

static int keysel_encrypt(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			  const struct keyprov_div *div, const uint8_t *in, size_t len,
			  uint8_t *out, int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keysel_args a = { .op = KEYSEL_ENCRYPT, .alg = alg, .key = key, .div = div,
				 .in = in, .len = len, .out = out, .deadline_ms = deadline_ms };

	return keysel_run(kp->ctx, &a, diag);
}

static int keysel_terminal_number(struct keyprov *kp, enum ssc_alg alg, char out[13],
				  int64_t deadline_ms, struct ssc_diag *diag)
{
	struct keysel_args a = { .op = KEYSEL_TERMINAL, .alg = alg, .term = out,
				 .deadline_ms = deadline_ms };

	return keysel_run(kp->ctx, &a, diag);
}

static void keysel_free(struct keyprov *kp)
{
	free(kp->ctx);
}

static const struct keyprov_ops keysel_ops = {
	.name = "keysel",
	.available = keysel_available,
	.cryptogram = keysel_cryptogram,
	.mac = keysel_mac,
	.encrypt = keysel_encrypt,
	.terminal_number = keysel_terminal_number,
	.free = keysel_free,
};

int keysel_new(struct keyprov *first, struct keyprov *second, struct keyprov **out)
{
	struct keysel *s = calloc(1, sizeof(*s));

	if (!s)
		return SSC_ENOMEM;
	s->p[0] = first;
	s->p[1] = second;
	s->kp.ops = &keysel_ops;
	s->kp.ctx = s;
	*out = &s->kp;
	return 0;
}
