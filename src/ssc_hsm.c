/*
 * This file contains the card side of the two-step read (spec §13.1): step 1's commands and
 * string, the check of the key server's key string, and step 2's read authorisation with the
 * server's cryptogram followed by the basic read. It uses no key provider.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"
#include "hex.h"
#include "items.h"
#include "ssc_hsm.h"

/* Does the card demand read authorisation of EF06 (spec §12.4)? 1 yes, 0 no, or an error. */
static int ssc_hsm_needs_read_auth(struct ssc_card *c, struct ssc_diag *diag)
{
	uint8_t val[APDU_MAX_DATA];
	struct item_file f;
	struct item_def it;
	int n;

	if (c->cfg->read_auth == READ_AUTH_ALWAYS)
		return 1;
	if (c->cfg->read_auth == READ_AUTH_NEVER)
		return 0;
	if (c->insertion_flags && (*c->insertion_flags & CARD_FLAG_READ_AUTH))
		return 1;
	if (items_file_parse("SSSE/EF06", &f) || items_find(&f, 0x08, &it))
		return SSC_EINTERNAL;
	/*
	 * Without a key provider (c->kp is NULL here), a READ answered 6982 makes ssc_read_item
	 * try the read authorisation and stop at once with SSC_ENOPSAM, before any further command:
	 * that is the card saying that it demands it.
	 */
	n = ssc_read_item(c, &f, &it, 0, val, sizeof(val), diag);
	OPENSSL_cleanse(val, sizeof(val));
	if (n == SSC_ENOPSAM) {
		ssc_diag_init(diag);
		if (c->insertion_flags)
			*c->insertion_flags |= CARD_FLAG_READ_AUTH;
		return 1;
	}
	return n < 0 ? n : 0;
}

int ssc_hsm_step1(struct ssc_card *c, const uint8_t px[16], struct ssc_hsm_step1 *st,
		  struct ssc_diag *diag)
{
	int rc;

	memset(st, 0, sizeof(*st));
	rc = ssc_ensure_card_id(c, diag);
	if (!rc)
		rc = ssc_ensure_gen(c, diag);
	if (rc)
		return rc;
	if (c->gen == 1)
		return ssc_diag_set(diag, SSC_EUNSUPPORTED, "unsupported card: spec 1.00 cards have "
				    "no internal authentication for the two-step read");
	if (c->alg != SSC_ALG_DES && c->alg != SSC_ALG_SM4)
		return ssc_diag_set(diag, SSC_EUNSUPPORTED, "unsupported card algorithm");
	rc = ssc_internal_auth_command(c, px, st->c, diag);
	if (rc)
		return rc;
	memcpy(st->p, px, 8);
	memcpy(st->x, px + 8, 8);
	rc = ssc_hsm_needs_read_auth(c, diag);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		/* The last command: nothing after it may consume the challenge before step 2. */
		rc = ssc_get_challenge(c, st->r, diag);
		if (rc)
			return rc;
		st->has_r = 1;
	}
	st->alg = c->alg;
	memcpy(st->hist, c->hist, c->hist_len);
	st->hist_len = c->hist_len;
	memcpy(st->card_id, c->card_id, 16);
	return 0;
}

/* Appends the hex of p[0..n) and a '|' at *off; -1 when it does not fit. */
static int ssc_hsm_field(char *out, size_t cap, size_t *off, const uint8_t *p, size_t n)
{
	if (*off + 2 * n + 2 > cap || hex_encode(p, n, out + *off, cap - *off, HEX_UPPER) < 0)
		return -1;
	*off += 2 * n;
	out[(*off)++] = '|';
	out[*off] = '\0';
	return 0;
}

int ssc_hsm_step1_string(const struct ssc_hsm_step1 *st, const char term[13], char *out,
			 size_t cap)
{
	uint8_t alg = (uint8_t)st->alg;
	size_t off = 0, rn = st->has_r ? 8 : 0;

	if (cap < 1)
		return SSC_ELIMIT;
	out[0] = '\0';
	/* The region: the first 6 hex digits of the 卡识别码 (its first 3 bytes, BCD). */
	if (ssc_hsm_field(out, cap, &off, st->card_id, 3) ||
	    ssc_hsm_field(out, cap, &off, st->hist, st->hist_len) ||
	    ssc_hsm_field(out, cap, &off, &alg, 1) ||
	    ssc_hsm_field(out, cap, &off, st->card_id, 16) ||
	    ssc_hsm_field(out, cap, &off, st->p, 8) || ssc_hsm_field(out, cap, &off, st->x, 8) ||
	    ssc_hsm_field(out, cap, &off, st->r, rn) || ssc_hsm_field(out, cap, &off, st->r, rn) ||
	    off + 14 > cap)
		return SSC_ELIMIT;
	memcpy(out + off, term, 12);
	off += 12;
	out[off++] = '|';
	out[off] = '\0';
	return (int)off;
}

int ssc_hsm_check_key(const struct ssc_hsm_step1 *st, const char *key, size_t len,
		      uint8_t ext[16], int *has_ext, struct ssc_diag *diag)
{
	const char *bar1 = key ? memchr(key, '|', len) : NULL;
	const char *bar2 = bar1 ? memchr(bar1 + 1, '|', len - (size_t)(bar1 + 1 - key)) : NULL;
	uint8_t c1[16];
	size_t n1, n2;
	int rc = 0;

	*has_ext = 0;
	if (!bar1 || !bar2 || (size_t)(bar2 + 1 - key) != len)
		return ssc_diag_set(diag, SSC_EHSMKEY, "the key must be 内部认证结果|外部认证数据| "
				    "(two fields, each followed by '|')");
	n1 = (size_t)(bar1 - key);
	n2 = (size_t)(bar2 - bar1 - 1);
	if ((n1 != 16 && n1 != 32) || hex_decode(key, n1, c1, sizeof(c1)) < 0)
		return ssc_diag_set(diag, SSC_EHSMKEY, "内部认证结果 must be 16 or 32 hex digits");
	if ((n2 != 0 && n2 != 32) || (n2 && hex_decode(bar1 + 1, n2, ext, 16) < 0)) {
		rc = ssc_diag_set(diag, SSC_EHSMKEY, "外部认证数据 must be empty or 32 hex digits");
	} else if (n2 == 0 && st->has_r) {
		rc = ssc_diag_set(diag, SSC_EHSMKEY, "外部认证数据 is missing: this card demands read "
				  "authorisation (step 1 sent a challenge)");
	} else if (n2 != 0 && !st->has_r) {
		rc = ssc_diag_set(diag, SSC_EHSMKEY, "外部认证数据 is present, but step 1 sent no "
				  "challenge");
	} else if (n2 != 0 && CRYPTO_memcmp(ext + 8, st->r, 8) != 0) {
		rc = ssc_diag_set(diag, SSC_EHSMKEY, "外部认证数据 does not end with step 1's challenge");
	} else if (CRYPTO_memcmp(c1, st->c, 8) != 0) {
		/* Only the first 8 bytes: a server may send the whole 16-byte SM4 C16 (spec §13.1). */
		rc = ssc_diag_set(diag, SSC_EHSMMISMATCH, "the card's internal authentication does "
				  "not match the key server's (内部认证与加密机不一致): nothing was read");
	}
	*has_ext = rc == 0 && n2 != 0;
	OPENSSL_cleanse(c1, sizeof(c1));
	return rc;
}

int ssc_hsm_step2(struct ssc_card *c, const struct ssc_hsm_step1 *st, const uint8_t ext[16],
		  int has_ext, struct ssc_basic *b, struct ssc_diag *diag)
{
	const struct config_key *key = &c->cfg->key_read_auth;
	uint8_t data[17], cmd[32], resp[APDU_MAX_DATA];
	size_t dlen = 16;
	uint16_t sw = 0;
	char what[32];
	int n, rc = 0;

	if (has_ext) {
		memcpy(data, ext, 16);
		if (st->alg == SSC_ALG_SM4)
			data[dlen++] = 0x01;   /* key version (spec §12.5) */
		n = apdu_build(cmd, sizeof(cmd), 0x00, 0x82, 0x00, key->card_kid, data, dlen,
			       APDU_LE_NONE);
		if (n >= 0)
			n = apdu_exchange(c->io, cmd, (size_t)n, resp, sizeof(resp), &sw, 0, diag);
		if (n < 0)
			return n;
		snprintf(what, sizeof(what), "EXTERNAL AUTH key %02X", key->card_kid);
		rc = apdu_sw_error(sw, APDU_CTX_GENERIC, what, diag);
		if (rc)
			return rc;
		c->authenticated = 1;
		c->read_authed = 1;
	}
	return ssc_read_basic(c, b, diag);
}
