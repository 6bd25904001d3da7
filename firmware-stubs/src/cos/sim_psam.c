/*
 * This file contains the simulated PSAM (spec §12.6): SELECT of its SSC key application, the
 * terminal number, DELIVER KEY (diversify a master key to K_card, and Ks from a challenge), CIPHER,
 * MAC and ENCRYPT. It holds the master keys of its profile and never reveals a key.
 */
#include "sim_token.h"

#include <string.h>

static const uint8_t psam_aid[6] = { 0xD1, 0x56, 0x00, 0x00, 0x05, 0x90 };

static void keys_clear(struct sim_psam_state *s)
{
	sim_crypto_wipe(s->k, sizeof(s->k));
	sim_crypto_wipe(s->ks, sizeof(s->ks));
	s->has_k = false;
	s->has_ks = false;
}

void sim_psam_reset(struct sim_token *t)
{
	keys_clear(&t->psam);
	t->psam.app = false;
	t->psam.ef16 = false;
}

static uint16_t psam_select(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
			    size_t *outlen)
{
	struct sim_psam_state *s = &t->psam;
	size_t n = 0;

	if (a->p2 != 0x00 && a->p2 != 0x0C)
		return SW_BAD_P1P2;
	if (a->p1 == 0x04) {
		if (a->lc == 0)
			return SW_WRONG_LENGTH;
		if (a->lc != sizeof(psam_aid) || memcmp(a->data, psam_aid, sizeof(psam_aid)) != 0)
			return SW_NOT_FOUND;
		keys_clear(s);
		s->app = true;
		s->ef16 = false;
		if (a->p2 == 0x0C)
			return SW_OK;
		/* 6F L 84 06 AID A5 06 9F0C 03 86 01 alg: one algorithm per PSAM (§12.4) */
		out[n++] = 0x6F;
		out[n++] = 0x10;
		out[n++] = 0x84;
		out[n++] = sizeof(psam_aid);
		memcpy(out + n, psam_aid, sizeof(psam_aid));
		n += sizeof(psam_aid);
		out[n++] = 0xA5;
		out[n++] = 0x06;
		out[n++] = 0x9F;
		out[n++] = 0x0C;
		out[n++] = 0x03;
		out[n++] = 0x86;
		out[n++] = 0x01;
		out[n++] = (uint8_t)t->prof.psam.alg;
		*outlen = n;
		return SW_OK;
	}
	if (a->p1 == 0x00) {
		if (a->lc != 0 && a->lc != 2)
			return SW_WRONG_LENGTH;
		if (a->lc == 2 && !(a->data[0] == 0x3F && a->data[1] == 0x00))
			return SW_NOT_FOUND;
		keys_clear(s);
		s->app = false;
		s->ef16 = false;
		return SW_OK;
	}
	return SW_BAD_P1P2;
}

/* READ BINARY of the terminal-number file EF16 (SFI 16, 6 bytes BCD), by SFI or as current EF. */
static uint16_t psam_read_binary(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
				 size_t *outlen)
{
	struct sim_psam_state *s = &t->psam;
	const size_t size = sizeof(t->prof.psam.terminal);
	size_t off, n;

	if (a->lc != 0 || !a->has_le)
		return SW_WRONG_LENGTH;
	if (a->p1 & 0x80) {
		if (a->p1 & 0x60)
			return SW_BAD_P1P2;
		if ((a->p1 & 0x1F) != 0x16)
			return SW_NOT_FOUND;
		s->ef16 = true;
		off = a->p2;
	} else {
		if (!s->ef16)
			return SW_NO_CURRENT_EF;
		off = (size_t)(a->p1 << 8 | a->p2);
	}
	if (off > size)
		return SW_BAD_OFFSET;
	n = size - off < a->le ? size - off : a->le;
	memcpy(out, t->prof.psam.terminal + off, n);
	*outlen = n;
	return SW_OK;
}

static int key_slot(const struct sim_token *t, uint8_t usage, uint8_t index)
{
	int i;

	for (i = 0; i < SIM_KEY_COUNT; i++)
		if (t->prof.psam.usage[i] == usage && t->prof.psam.index[i] == index)
			return i;
	return -1;
}

static uint16_t psam_deliver_key(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_psam_state *s = &t->psam;
	enum sim_alg alg = t->prof.psam.alg;
	size_t bs = sim_crypto_block(alg);
	int slot;

	keys_clear(s);
	if (!s->app)
		return SW_NO_KEY;
	slot = key_slot(t, a->p1, a->p2);
	if (slot < 0)
		return SW_NO_KEY;
	if (a->lc != 16 && a->lc != 16 + bs)
		return SW_WRONG_LENGTH;
	/* data = cardDiv || cityDiv [|| R (DES) / R || 00^8 (SM4)]; city level first (§12.2). */
	if (sim_crypto_card_key(alg, t->prof.card.master[slot], a->data + 8, a->data, s->k) != 0)
		return SW_TECHNICAL;
	s->has_k = true;
	if (a->lc == 16)
		return SW_OK;
	if (sim_crypto_session(alg, s->k, a->data + 16, s->ks) != 0) {
		keys_clear(s);
		return SW_TECHNICAL;
	}
	s->has_ks = true;
	return SW_OK;
}

static uint16_t psam_crypt(struct sim_token *t, const struct sim_apdu *a, uint8_t *out, size_t *outlen)
{
	struct sim_psam_state *s = &t->psam;
	enum sim_alg alg = t->prof.psam.alg;
	size_t bs = sim_crypto_block(alg);
	uint8_t c[16];

	if (a->p2 != 0)
		return SW_BAD_P1P2;
	switch (a->p1) {
	case 0x00:                                      /* CIPHER with Ks */
		if (a->lc != bs)
			return SW_WRONG_LENGTH;
		if (!s->has_ks)
			return SW_CONDITIONS;
		if (sim_crypto_session_cipher(alg, s->ks, a->data, c) != 0)
			return SW_TECHNICAL;
		if (alg == SIM_ALG_DES) {
			/* The DES PSAM answers 61 08: the cryptogram comes with GET RESPONSE. */
			sim_pending_set(&t->pending, c, 8);
			sim_crypto_wipe(c, sizeof(c));
			return SW_BYTES_LEFT | 0x08;
		}
		memcpy(out, c, 16);
		*outlen = 16;
		return SW_OK;
	case 0x05:                                      /* MAC with K_card: IV || data */
		if (a->lc < bs)
			return SW_WRONG_LENGTH;
		if (!s->has_k)
			return SW_CONDITIONS;
		if (sim_crypto_mac(alg, s->k, a->data, a->data + bs, a->lc - bs, out) != 0)
			return SW_TECHNICAL;
		*outlen = 4;
		return SW_OK;
	case 0x01:                                      /* ENCRYPT with K_card, ECB */
		if (a->lc == 0 || a->lc % bs != 0)
			return SW_WRONG_LENGTH;
		if (!s->has_k)
			return SW_CONDITIONS;
		if (sim_crypto_ecb(alg, s->k, 1, a->data, a->lc, out) != 0)
			return SW_TECHNICAL;
		*outlen = a->lc;
		return SW_OK;
	default:
		return SW_BAD_P1P2;
	}
}

uint16_t sim_psam_apdu(struct sim_token *t, const struct sim_apdu *a, uint8_t *out, size_t *outlen)
{
	if (a->cla != 0x00 && a->cla != 0x80 && a->cla != 0xBF)
		return SW_BAD_CLA;
	switch (a->ins) {
	case 0xA4:
		return a->cla == 0x00 ? psam_select(t, a, out, outlen) : SW_BAD_CLA;
	case 0xB0:
		return a->cla == 0x00 ? psam_read_binary(t, a, out, outlen) : SW_BAD_CLA;
	case 0xDE:
		return a->cla == 0xBF ? psam_deliver_key(t, a) : SW_BAD_CLA;
	case 0xFA:
		return a->cla == 0x80 ? psam_crypt(t, a, out, outlen) : SW_BAD_CLA;
	case 0xC0:
		return a->cla == 0x00 ? sim_pending_get_response(&t->pending, a, out, outlen) : SW_BAD_CLA;
	default:
		return SW_BAD_INS;
	}
}
