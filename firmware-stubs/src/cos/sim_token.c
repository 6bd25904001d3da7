/*
 * This file contains the simulated token's public life cycle (simcos.h): creation from a profile,
 * ATR, reset, the APDU entry point that parses every command, routes it to the card or the PSAM
 * and frames the answer (including T=0-style 61xx / GET RESPONSE), and the test hook.
 */
#include "sim_token.h"
#include "sim_testhook.h"

#include <stdlib.h>
#include <string.h>

struct sim_token *sim_token_new(const struct sim_profile *p, enum sim_role role)
{
	struct sim_token *t;

	if (p == NULL || (role != SIM_ROLE_CARD && role != SIM_ROLE_PSAM))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->role = role;
	memcpy(&t->prof, p, sizeof(*p));
	if (role == SIM_ROLE_CARD && sim_card_init(t) != 0) {
		sim_token_free(t);
		return NULL;
	}
	sim_token_reset(t);
	return t;
}

void sim_token_free(struct sim_token *t)
{
	if (t == NULL)
		return;
	if (t->role == SIM_ROLE_CARD)
		sim_card_done(t);
	sim_crypto_wipe(t, sizeof(*t));
	free(t);
}

size_t sim_token_atr(const struct sim_token *t, uint8_t *atr)
{
	const uint8_t *src;
	size_t n;

	if (t == NULL || atr == NULL)
		return 0;
	src = t->role == SIM_ROLE_CARD ? t->prof.card.atr : t->prof.psam.atr;
	n = t->role == SIM_ROLE_CARD ? t->prof.card.atr_len : t->prof.psam.atr_len;
	memcpy(atr, src, n);
	return n;
}

void sim_token_reset(struct sim_token *t)
{
	if (t == NULL)
		return;
	sim_pending_clear(&t->pending);
	if (t->role == SIM_ROLE_CARD)
		sim_card_reset(t);
	else
		sim_psam_reset(t);
}

static size_t put_sw(uint8_t *resp, size_t n, uint16_t sw)
{
	resp[n] = (uint8_t)(sw >> 8);
	resp[n + 1] = (uint8_t)sw;
	return n + 2;
}

size_t sim_token_apdu(struct sim_token *t, const uint8_t *cmd, size_t len, uint8_t *resp)
{
	uint8_t out[SIM_DATA_MAX];
	struct sim_apdu a;
	size_t outlen = 0;
	bool t0 = false;
	uint16_t sw;

	if (resp == NULL)
		return 0;
	if (t == NULL)
		return put_sw(resp, 0, SW_TECHNICAL);
	sw = sim_apdu_parse(cmd, len, &a);
	if (sw == SW_OK && !(a.ins == 0xC0 && a.cla == 0x00)) {
		/* Pending data survives only until the next command that is not GET RESPONSE. */
		sim_pending_clear(&t->pending);
	}
	if (sw != SW_OK) {
		sim_pending_clear(&t->pending);
		return put_sw(resp, 0, sw);
	}
	if (t->role == SIM_ROLE_CARD)
		sw = sim_card_apdu(t, &a, out, &outlen, &t0);
	else
		sw = sim_psam_apdu(t, &a, out, &outlen);
	if (outlen > SIM_DATA_MAX)
		outlen = SIM_DATA_MAX;
	if (sw == SW_OK && t0 && outlen > 0 && t->role == SIM_ROLE_CARD &&
	    t->prof.card.q.t0_get_response) {
		/* A T=0-style card keeps the answer for GET RESPONSE and says how long it is. */
		sim_pending_set(&t->pending, out, outlen);
		sw = (uint16_t)(SW_BYTES_LEFT | (outlen & 0xFF));
		outlen = 0;
	}
	if (sw != SW_OK && (sw & 0xFF00) != SW_BYTES_LEFT && (sw & 0xFFF0) != 0x6280)
		outlen = 0;                             /* error answers carry no data */
	memcpy(resp, out, outlen);
	sim_crypto_wipe(out, sizeof(out));
	return put_sw(resp, outlen, sw);
}

uint64_t sim_token_generation(const struct sim_token *t)
{
	return t != NULL ? t->generation : 0;
}

void sim_token_test_set_challenge(struct sim_token *t, const uint8_t r[8])
{
	if (t == NULL || t->role != SIM_ROLE_CARD)
		return;
	memcpy(t->card.forced, r, 8);
	t->card.has_forced = true;
}
