/*
 * This file contains the simulated social security card's commands (spec §2, §3, §12.5): SELECT,
 * READ/UPDATE/APPEND RECORD, GET CHALLENGE, EXTERNAL and INTERNAL AUTHENTICATE, VERIFY, CHANGE,
 * RELOAD and UNBLOCK PIN, with the v1 access rules and the profile's behaviour switches.
 */
#include "sim_token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CLA_PLAIN 0x00
#define CLA_SM    0x04   /* secure messaging (MAC) */
#define CLA_PROP  0x80
#define CLA_PROP_SM 0x84

static bool auth_has(const struct sim_card_state *c, uint8_t kid)
{
	return (c->auth[kid / 8] >> (kid % 8)) & 1;
}

static void auth_set(struct sim_card_state *c, uint8_t kid)
{
	c->auth[kid / 8] |= (uint8_t)(1u << (kid % 8));
}

/* Security state lasts until a different DF is selected (§12.5). */
static void security_clear(struct sim_card_state *c)
{
	memset(c->auth, 0, sizeof(c->auth));
	c->pin_ok = false;
}

/* Takes the challenge: a secure command or EXTERNAL AUTH uses it up, whatever its outcome. */
static bool challenge_take(struct sim_card_state *c, uint8_t r[8])
{
	bool had = c->has_chal;

	memcpy(r, c->chal, 8);
	memset(c->chal, 0, sizeof(c->chal));
	c->has_chal = false;
	return had;
}

static void bump(struct sim_token *t)
{
	t->generation++;
}

int sim_card_init(struct sim_token *t)
{
	const struct sim_card_profile *cp = &t->prof.card;
	struct sim_card_state *c = &t->card;
	uint8_t master[SIM_KEY_LEN];
	int i, j, rc = 0;

	for (i = 0; i < SIM_KEY_COUNT && rc == 0; i++) {
		/* The "wrong keys" switch personalises from ~master: the PSAM's keys no longer fit. */
		for (j = 0; j < SIM_KEY_LEN; j++)
			master[j] = cp->q.wrong_keys ? (uint8_t)~cp->master[i][j] : cp->master[i][j];
		c->key[i].id = cp->key_id[i];
		c->key[i].tries_left = cp->key_tries;
		if (sim_crypto_card_key(cp->alg, master, cp->city_div, cp->chip_serial, c->key[i].k) != 0)
			rc = -EIO;
	}
	sim_crypto_wipe(master, sizeof(master));
	if (rc != 0)
		return rc;
	memcpy(c->pin, cp->pin, sizeof(c->pin));
	c->pin_tries_left = cp->pin_tries_left;
	return sim_fs_init(&c->fs, cp);
}

void sim_card_done(struct sim_token *t)
{
	sim_fs_done(&t->card.fs);
}

void sim_card_reset(struct sim_token *t)
{
	struct sim_card_state *c = &t->card;

	c->cur_df = SIM_DF_MF;
	c->cur_ef = NULL;
	security_clear(c);
	c->has_chal = false;
	memset(c->chal, 0, sizeof(c->chal));
}

static void select_df(struct sim_card_state *c, int df)
{
	if (df != c->cur_df)
		security_clear(c);
	c->cur_df = df;
	c->cur_ef = NULL;
}

/* FCI of a DF: 6F L 84 L name A5 L [9F0C 03 86 01 alg] (§12.1). */
static size_t build_fci(const struct sim_token *t, const struct sim_df *df, bool with_alg,
			uint8_t *out)
{
	size_t n = 0, prop = with_alg ? 6 : 0;

	out[n++] = 0x6F;
	out[n++] = (uint8_t)(2 + df->aid_len + 2 + prop);
	out[n++] = 0x84;
	out[n++] = (uint8_t)df->aid_len;
	memcpy(out + n, df->aid, df->aid_len);
	n += df->aid_len;
	out[n++] = 0xA5;
	out[n++] = (uint8_t)prop;
	if (with_alg) {
		out[n++] = 0x9F;
		out[n++] = 0x0C;
		out[n++] = 0x03;
		out[n++] = 0x86;
		out[n++] = 0x01;
		out[n++] = (uint8_t)t->prof.card.alg;
	}
	return n;
}

/* An EF of the current DF by file id; an EF answers no data (§12.1). */
static uint16_t select_ef(struct sim_card_state *c, uint16_t fid)
{
	struct sim_ef *ef = sim_fs_ef_by_fid(&c->fs, c->cur_df, fid);

	if (ef == NULL)
		return SW_NOT_FOUND;
	c->cur_ef = ef;
	return SW_OK;
}

static uint16_t card_select(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
			    size_t *outlen, bool *t0)
{
	struct sim_card_state *c = &t->card;
	uint16_t fid;
	int df;

	if (a->p2 != 0x00 && a->p2 != 0x0C)
		return SW_BAD_P1P2;
	switch (a->p1) {
	case 0x04:                                      /* by DF name / AID */
		if (a->lc == 0)
			return SW_WRONG_LENGTH;
		df = sim_fs_df_by_name(&c->fs, a->data, a->lc);
		if (df < 0)
			return SW_NOT_FOUND;
		select_df(c, df);
		if (a->p2 == 0x00) {
			bool ssse = df == SIM_DF_SSSE;

			*outlen = build_fci(t, &c->fs.df[df], ssse && !t->prof.card.q.omit_9f0c, out);
			*t0 = ssse;
		}
		return SW_OK;
	case 0x00:                                      /* MF, DF or EF by file id */
		if (a->lc == 0) {
			select_df(c, SIM_DF_MF);
			return SW_OK;
		}
		if (a->lc != 2)
			return SW_WRONG_LENGTH;
		fid = (uint16_t)(a->data[0] << 8 | a->data[1]);
		if (fid == 0x3F00) {
			select_df(c, SIM_DF_MF);
			return SW_OK;
		}
		df = sim_fs_df_by_fid(&c->fs, fid);
		/* DF01..DF05 sit under SSSE: reachable from SSSE or from a sibling DF. */
		if (df > SIM_DF_SSSE && c->cur_df != SIM_DF_MF) {
			select_df(c, df);
			return SW_OK;
		}
		return select_ef(c, fid);
	case 0x02:                                      /* EF under the current DF */
		if (a->lc != 2)
			return SW_WRONG_LENGTH;
		return select_ef(c, (uint16_t)(a->data[0] << 8 | a->data[1]));
	default:
		return SW_BAD_P1P2;
	}
}

/* The EF a record command addresses: SFI in P2 (it becomes current) or the current EF. */
static uint16_t record_ef(struct sim_card_state *c, uint8_t p2, struct sim_ef **ef)
{
	uint8_t sfi = p2 >> 3;

	if (sfi == 0x1F)
		return SW_BAD_P1P2;
	if (sfi == 0) {
		if (c->cur_ef == NULL)
			return SW_NO_CURRENT_EF;
		*ef = c->cur_ef;
		return SW_OK;
	}
	*ef = sim_fs_ef_by_sfi(&c->fs, c->cur_df, sfi);
	if (*ef == NULL)
		return SW_NOT_FOUND;
	c->cur_ef = *ef;
	return SW_OK;
}

static uint16_t card_read_record(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
				 size_t *outlen, bool *t0)
{
	struct sim_card_state *c = &t->card;
	const struct sim_quirks *q = &t->prof.card.q;
	uint8_t mode = a->p2 & 0x07;
	struct sim_ef *ef;
	struct sim_rec *rec;
	size_t total, le;
	uint16_t sw;

	if (mode != 0x04 && mode != 0x00)
		return SW_BAD_P1P2;
	if ((mode == 0x04 && q->read_modes == SIM_RMODES_TAG) ||
	    (mode == 0x00 && q->read_modes == SIM_RMODES_NUMBER))
		return SW_BAD_P1P2;                     /* the mode this card lacks */
	if (mode == 0x04 && a->p1 == 0)
		return SW_BAD_P1P2;
	if (a->lc != 0)
		return SW_WRONG_LENGTH;
	sw = record_ef(c, a->p2, &ef);
	if (sw != SW_OK)
		return sw;
	if (ef->read_slot >= 0 && !auth_has(c, c->key[ef->read_slot].id))
		return SW_SECURITY;
	rec = sim_fs_record(ef, mode == 0x00, a->p1);
	if (rec == NULL)
		return SW_NO_RECORD;
	total = 2 + (size_t)rec->len;
	if (q->exact_le && (!a->has_le || a->le != total))
		return (uint16_t)(SW_EXACT_LE | total);
	le = a->has_le ? a->le : 256;                   /* Le 00 (or none): the whole record */
	*outlen = le < total ? le : total;
	out[0] = rec->tag;
	out[1] = rec->len;
	memcpy(out + 2, rec->val, rec->len);
	*t0 = true;
	return SW_OK;
}

/* Checks MAC4 = data[dlen..dlen+4) over CLA INS P1 P2 Lc || data[0..dlen) (§12.5). */
static bool mac_ok(const struct sim_token *t, const struct sim_apdu *a, enum sim_key_slot slot,
		   const uint8_t r[8], size_t dlen)
{
	enum sim_alg alg = t->prof.card.alg;
	uint8_t buf[5 + 255], iv[16] = { 0 }, mac[4];
	bool ok;

	buf[0] = a->cla;
	buf[1] = a->ins;
	buf[2] = a->p1;
	buf[3] = a->p2;
	buf[4] = (uint8_t)a->lc;
	memcpy(buf + 5, a->data, dlen);
	if (alg == SIM_ALG_SM4)
		memcpy(iv, r, 8);                       /* R || 00^8 */
	else
		memcpy(iv, r, 4);                       /* R[0..3] || 00^4 */
	if (sim_crypto_mac(alg, t->card.key[slot].k, iv, buf, 5 + dlen, mac) != 0)
		return false;
	ok = sim_crypto_memcmp(mac, a->data + dlen, 4) == 0;
	sim_crypto_wipe(buf, sizeof(buf));
	return ok;
}

/* UPDATE RECORD (plain or MAC) and APPEND RECORD (MAC; plain only where a write key allows). */
static uint16_t card_write_record(struct sim_token *t, const struct sim_apdu *a, bool append)
{
	struct sim_card_state *c = &t->card;
	bool secure = a->cla == CLA_SM, had = false;
	uint8_t mode = a->p2 & 0x07, r[8] = { 0 }, tag, maxlen;
	struct sim_ef *ef;
	struct sim_rec *rec = NULL;
	size_t dlen = a->lc, n;
	uint16_t sw;

	if (secure)
		had = challenge_take(c, r);
	if (append ? (a->p1 != 0 || mode != 0) : (mode != 0x04 && mode != 0x00))
		return SW_BAD_P1P2;
	if (!append && mode == 0x04 && a->p1 == 0)
		return SW_BAD_P1P2;
	if (secure) {
		if (dlen < 4)
			return SW_WRONG_LENGTH;
		dlen -= 4;
	}
	if (dlen < 2)
		return SW_WRONG_LENGTH;
	sw = record_ef(c, a->p2, &ef);
	if (sw != SW_OK)
		return sw;
	/* v1 access rules (§12.4): DF files take MAC'd writes only; SSSE files need their key's
	 * EXTERNAL AUTH, with or without a MAC. */
	if (ef->write_slot < 0 ? !secure : !auth_has(c, c->key[ef->write_slot].id))
		return SW_SECURITY;
	if (append && !ef->cyclic)
		return SW_INCOMPATIBLE;
	if (secure) {
		if (!had)
			return SW_NO_CHALLENGE;
		if (!mac_ok(t, a, SIM_KEY_STK, r, dlen))
			return SW_BAD_MAC;
	}
	if (append) {
		tag = ef->cyc_tag;
		maxlen = ef->cyc_len;
	} else {
		rec = sim_fs_record(ef, mode == 0x00, a->p1);
		if (rec == NULL)
			return SW_NO_RECORD;
		tag = rec->tag;
		maxlen = rec->len;
	}
	if (a->data[0] != tag)
		return SW_BAD_DATA;
	/* The length byte may exceed the bytes sent (the rest is padding), never the record. */
	n = dlen - 2;
	if (a->data[1] > maxlen || n > a->data[1])
		return SW_WRONG_LENGTH;
	if (append)
		sim_fs_append(ef, a->data + 2, n);
	else
		sim_fs_set_value(rec, a->data + 2, n);
	bump(t);
	return SW_OK;
}

static uint16_t card_get_challenge(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
				   size_t *outlen)
{
	struct sim_card_state *c = &t->card;

	if (a->p1 != 0 || a->p2 != 0)
		return SW_BAD_P1P2;
	if (a->lc != 0 || !a->has_le || a->le != 8)
		return SW_WRONG_LENGTH;
	if (c->has_forced) {
		memcpy(c->chal, c->forced, 8);
		c->has_forced = false;
	} else if (sim_crypto_random(c->chal, 8) != 0) {
		return SW_TECHNICAL;
	}
	c->has_chal = true;
	memcpy(out, c->chal, 8);
	*outlen = 8;
	return SW_OK;
}

/* The slot of card key id kid among the external-authentication keys, or -1. */
static int ext_auth_slot(const struct sim_card_state *c, uint8_t kid)
{
	static const enum sim_key_slot ext[3] = { SIM_KEY_EXT_AUTH, SIM_KEY_EF0D, SIM_KEY_READ_AUTH };
	int i;

	for (i = 0; i < 3; i++)
		if (c->key[ext[i]].id == kid)
			return (int)ext[i];
	return -1;
}

/* C = cryptogram of X under the session key from R (§12.3), with the key of slot. */
static int card_cryptogram(const struct sim_token *t, int slot, const uint8_t r[8], const uint8_t x[8],
			   uint8_t cgram[8])
{
	enum sim_alg alg = t->prof.card.alg;
	uint8_t blk[16] = { 0 }, ks[SIM_KEY_LEN];
	int rc;

	memcpy(blk, r, 8);                              /* DES: R; SM4: R || 00^8 */
	rc = sim_crypto_session(alg, t->card.key[slot].k, blk, ks);
	if (rc == 0)
		rc = sim_crypto_cryptogram(alg, ks, x, cgram);
	sim_crypto_wipe(ks, sizeof(ks));
	return rc;
}

static uint16_t card_external_auth(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_card_state *c = &t->card;
	bool sm4 = t->prof.card.alg == SIM_ALG_SM4, had;
	uint8_t r[8], cgram[8];
	struct sim_card_key *k;
	int slot;

	had = challenge_take(c, r);                     /* consumed whatever the outcome */
	if (a->p1 != 0)
		return SW_BAD_P1P2;
	if (a->lc != (sm4 ? 17u : 16u))
		return SW_WRONG_LENGTH;
	slot = ext_auth_slot(c, a->p2);
	if (slot < 0)
		return SW_NO_KEY;
	k = &c->key[slot];
	if (k->tries_left == 0)
		return SW_BLOCKED;
	if (!had)
		return SW_NO_CHALLENGE;
	if (sm4 && a->data[16] != 0x01)
		return SW_NO_KEY;                       /* unknown key version */
	if (memcmp(a->data + 8, r, 8) != 0)
		return SW_BAD_DATA;                     /* X must be our R; no try counted */
	if (card_cryptogram(t, slot, r, a->data + 8, cgram) != 0)
		return SW_TECHNICAL;
	if (sim_crypto_memcmp(cgram, a->data, 8) != 0) {
		k->tries_left--;
		bump(t);
		return (uint16_t)(SW_TRIES_LEFT | k->tries_left);
	}
	if (k->tries_left != t->prof.card.key_tries) {
		k->tries_left = t->prof.card.key_tries;
		bump(t);
	}
	auth_set(c, a->p2);
	return SW_OK;
}

static uint16_t card_internal_auth(struct sim_token *t, const struct sim_apdu *a, uint8_t *out,
				   size_t *outlen)
{
	if (a->p1 != 0)
		return SW_BAD_P1P2;
	if (a->p2 != t->card.key[SIM_KEY_INTERNAL].id)
		return SW_NO_KEY;
	if (a->lc != 16)
		return SW_WRONG_LENGTH;
	if (card_cryptogram(t, SIM_KEY_INTERNAL, a->data, a->data + 8, out) != 0)
		return SW_TECHNICAL;
	*outlen = 8;
	return SW_OK;
}

/*
 * Decodes a BCD PIN of n bytes (odd digit counts end with an F nibble) into digits. Returns the
 * digit count, or -1 when the encoding is wrong.
 */
static int pin_decode(const uint8_t *p, size_t n, char out[13])
{
	size_t i, d = 0;

	if (n == 0 || n > 6)
		return -1;
	for (i = 0; i < n; i++) {
		uint8_t hi = p[i] >> 4, lo = p[i] & 0x0F;

		if (hi > 9)
			return -1;
		out[d++] = (char)('0' + hi);
		if (lo == 0x0F && i == n - 1)
			break;
		if (lo > 9)
			return -1;
		out[d++] = (char)('0' + lo);
	}
	out[d] = 0;
	return (int)d;
}

/* A PIN field: SW_OK and the digits, SW_WRONG_LENGTH (length) or SW_BAD_DATA (encoding). */
static uint16_t pin_field(const struct sim_token *t, const uint8_t *p, size_t n, char out[13])
{
	const struct sim_card_profile *cp = &t->prof.card;
	int d;

	if (n < (size_t)(cp->pin_min + 1) / 2 || n > (size_t)(cp->pin_max + 1) / 2)
		return SW_WRONG_LENGTH;
	d = pin_decode(p, n, out);
	if (d < 0)
		return SW_BAD_DATA;
	if (d < cp->pin_min || d > cp->pin_max)
		return SW_WRONG_LENGTH;
	return SW_OK;
}

static bool pin_equal(const struct sim_card_state *c, const char *pin)
{
	size_t n = strlen(pin);

	return n == strlen(c->pin) && sim_crypto_memcmp(pin, c->pin, n) == 0;
}

/* Counts a failed PIN presentation. */
static uint16_t pin_fail(struct sim_token *t)
{
	struct sim_card_state *c = &t->card;

	c->pin_ok = false;
	c->pin_tries_left--;
	bump(t);
	return (uint16_t)(SW_TRIES_LEFT | c->pin_tries_left);
}

/* Sets a new PIN (or confirms the old) and resets the counter. */
static void pin_set(struct sim_token *t, const char *pin)
{
	struct sim_card_state *c = &t->card;

	if (pin != c->pin && strcmp(c->pin, pin) != 0) {
		snprintf(c->pin, sizeof(c->pin), "%s", pin);
		bump(t);
	}
	if (c->pin_tries_left != t->prof.card.pin_tries) {
		c->pin_tries_left = t->prof.card.pin_tries;
		bump(t);
	}
}

static uint16_t card_verify(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_card_state *c = &t->card;
	char pin[13];
	uint16_t sw;

	if (a->p1 != 0 || a->p2 != 0)
		return SW_BAD_P1P2;
	if (c->cur_df == SIM_DF_MF)
		return SW_CONDITIONS;                   /* the PIN lives in SSSE */
	if (a->lc == 0)                                 /* no data: how many tries are left */
		return c->pin_tries_left == 0 ? SW_BLOCKED
					      : (uint16_t)(SW_TRIES_LEFT | c->pin_tries_left);
	sw = pin_field(t, a->data, a->lc, pin);
	if (sw != SW_OK)
		return sw;
	if (c->pin_tries_left == 0)
		return SW_BLOCKED;
	if (!pin_equal(c, pin)) {
		sim_crypto_wipe(pin, sizeof(pin));
		return pin_fail(t);
	}
	pin_set(t, c->pin);
	c->pin_ok = true;
	sim_crypto_wipe(pin, sizeof(pin));
	return SW_OK;
}

static uint16_t card_change_pin(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_card_state *c = &t->card;
	const uint8_t *sep;
	char old[13], neu[13];
	uint16_t sw;
	size_t olen;

	if (a->p2 != 0)
		return SW_BAD_P1P2;
	if (c->cur_df == SIM_DF_MF)
		return SW_CONDITIONS;
	if (a->lc < 3)
		return SW_WRONG_LENGTH;
	sep = memchr(a->data, 0xFF, a->lc);
	if (sep == NULL)
		return SW_BAD_DATA;
	olen = (size_t)(sep - a->data);
	sw = pin_field(t, a->data, olen, old);
	if (sw == SW_OK)
		sw = pin_field(t, sep + 1, a->lc - olen - 1, neu);
	if (sw == SW_OK && c->pin_tries_left == 0)
		sw = SW_BLOCKED;
	if (sw == SW_OK && !pin_equal(c, old))
		sw = pin_fail(t);
	if (sw == SW_OK) {
		pin_set(t, neu);
		c->pin_ok = true;
	}
	sim_crypto_wipe(old, sizeof(old));
	sim_crypto_wipe(neu, sizeof(neu));
	return sw;
}

static uint16_t card_reload_pin(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_card_state *c = &t->card;
	uint8_t r[8];
	char pin[13];
	bool had = challenge_take(c, r);
	uint16_t sw;

	if (a->p2 != 0)
		return SW_BAD_P1P2;
	if (a->lc < 5)
		return SW_WRONG_LENGTH;
	if (c->cur_df == SIM_DF_MF)
		return SW_CONDITIONS;
	if (!had)
		return SW_NO_CHALLENGE;
	if (!mac_ok(t, a, SIM_KEY_PIN_RELOAD, r, a->lc - 4))
		return SW_BAD_MAC;                      /* no PIN try counted */
	sw = pin_field(t, a->data, a->lc - 4, pin);
	if (sw == SW_OK)
		pin_set(t, pin);
	sim_crypto_wipe(pin, sizeof(pin));
	return sw;
}

static uint16_t card_unblock_pin(struct sim_token *t, const struct sim_apdu *a)
{
	struct sim_card_state *c = &t->card;
	enum sim_alg alg = t->prof.card.alg;
	size_t bs = sim_crypto_block(alg), i, l;
	uint8_t r[8], blk[16];
	char pin[13];
	bool had = challenge_take(c, r);
	uint16_t sw = SW_OK;

	if (a->p1 != 0 || a->p2 != 0)
		return SW_BAD_P1P2;
	if (a->lc != bs + 4)
		return SW_WRONG_LENGTH;
	if (c->cur_df == SIM_DF_MF)
		return SW_CONDITIONS;
	if (!had)
		return SW_NO_CHALLENGE;
	if (!mac_ok(t, a, SIM_KEY_PUK, r, bs))
		return SW_BAD_MAC;
	if (sim_crypto_ecb(alg, c->key[SIM_KEY_PUK].k, 0, a->data, bs, blk) != 0)
		return SW_TECHNICAL;
	/* PIN block: L || PIN (L bytes BCD) || 80 || 00.. (§12.5) */
	l = blk[0];
	if (l == 0 || 1 + l >= bs || blk[1 + l] != 0x80)
		sw = SW_BAD_DATA;
	for (i = 2 + l; sw == SW_OK && i < bs; i++)
		if (blk[i] != 0x00)
			sw = SW_BAD_DATA;
	if (sw == SW_OK && pin_field(t, blk + 1, l, pin) != SW_OK)
		sw = SW_BAD_DATA;
	if (sw == SW_OK)
		pin_set(t, pin);
	sim_crypto_wipe(blk, sizeof(blk));
	sim_crypto_wipe(pin, sizeof(pin));
	return sw;
}

uint16_t sim_card_apdu(struct sim_token *t, const struct sim_apdu *a, uint8_t *out, size_t *outlen,
		       bool *t0)
{
	if (a->cla != CLA_PLAIN && a->cla != CLA_SM && a->cla != CLA_PROP && a->cla != CLA_PROP_SM)
		return SW_BAD_CLA;
	switch (a->ins) {
	case 0xA4:
		return a->cla == CLA_PLAIN ? card_select(t, a, out, outlen, t0) : SW_BAD_CLA;
	case 0xB2:
		return a->cla == CLA_PLAIN ? card_read_record(t, a, out, outlen, t0) : SW_BAD_CLA;
	case 0xDC:
	case 0xE2:
		if (a->cla != CLA_PLAIN && a->cla != CLA_SM)
			return SW_BAD_CLA;
		return card_write_record(t, a, a->ins == 0xE2);
	case 0x84:
		return a->cla == CLA_PLAIN ? card_get_challenge(t, a, out, outlen) : SW_BAD_CLA;
	case 0x82:
		return a->cla == CLA_PLAIN ? card_external_auth(t, a) : SW_BAD_CLA;
	case 0x88:
		return a->cla == CLA_PLAIN ? card_internal_auth(t, a, out, outlen) : SW_BAD_CLA;
	case 0x20:
		return a->cla == CLA_PLAIN ? card_verify(t, a) : SW_BAD_CLA;
	case 0x5E:
		if (a->cla != CLA_PROP)
			return SW_BAD_CLA;
		if (a->p1 == 0x01)
			return card_change_pin(t, a);
		if (a->p1 == 0x00)
			return card_reload_pin(t, a);
		return SW_BAD_P1P2;
	case 0x24:
		return a->cla == CLA_PROP_SM ? card_unblock_pin(t, a) : SW_BAD_CLA;
	case 0xC0:
		return a->cla == CLA_PLAIN ? sim_pending_get_response(&t->pending, a, out, outlen) : SW_BAD_CLA;
	default:
		return SW_BAD_INS;
	}
}
