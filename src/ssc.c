/*
 * This file contains the social security card application (spec §2, §12): SSSE and DF selection,
 * algorithm and generation, READ RECORD in either addressing mode with SFI, EF06 read
 * authorisation, external and internal authentication through the key provider, and the basic
 * read. It sends the fewest APDUs the card allows: no SELECT of an EF, ever.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "apdu.h"
#include "hex.h"
#include "ssc.h"

/* "sx1.sh.社会保障" in GBK: the SSSE DF name (spec §2). */
static const uint8_t ssc_ssse_name[] = { 0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9,
					 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF };
/* The MOHRSS RID, in DF AIDs and in bytes 3..7 of the 卡识别码. */
static const uint8_t ssc_rid[] = { 0xD1, 0x56, 0x00, 0x00, 0x05 };

int ssc_atr_historical(const uint8_t *atr, size_t len, const uint8_t **hist, size_t *hist_len)
{
	size_t i = 2, k;
	uint8_t y;
	int tck = 0;

	if (len < 2 || (atr[0] != 0x3B && atr[0] != 0x3F))
		return SSC_EPROTO;
	y = atr[1] >> 4;
	k = atr[1] & 0x0F;
	for (;;) {
		uint8_t td;

		/* TAi, TBi, TCi present per bits 1..3 of Y; TDi per bit 4 chains to the next Y. */
		i += (size_t)((y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1));
		if (!(y & 8))
			break;
		if (i >= len)
			return SSC_EPROTO;
		td = atr[i++];
		if ((td & 0x0F) != 0)
			tck = 1;   /* any protocol but T=0 announced: TCK follows the history */
		y = td >> 4;
	}
	if (i + k + (size_t)tck != len)
		return SSC_EPROTO;
	*hist = atr + i;
	*hist_len = k;
	return 0;
}

static int ssc_set_alg(struct ssc_card *c, uint8_t id, struct ssc_diag *diag)
{
	if (id == SSC_ALG_DES || id == SSC_ALG_SM4) {
		c->alg = (enum ssc_alg)id;
		return 0;
	}
	return ssc_diag_set(diag, SSC_EUNSUPPORTED, "the card's algorithm %02X%s is not supported",
			    id, id == 0x02 ? " (SSF33)" : "");
}

int ssc_open(struct ssc_card *c, struct card_io *io, const struct config *cfg, struct keyprov *kp,
	     unsigned *insertion_flags, struct ssc_diag *diag)
{
	const uint8_t *hist;
	uint8_t cmd[32], fci[APDU_MAX_DATA], id;
	uint16_t sw = 0;
	int n, rc;

	memset(c, 0, sizeof(*c));
	c->io = io;
	c->cfg = cfg;
	c->kp = kp;
	c->insertion_flags = insertion_flags;
	c->cur_df = -1;
	/* What an earlier operation on this insertion learnt costs no APDU again. */
	if (insertion_flags && (*insertion_flags & CARD_FLAG_TAG_MODE))
		c->read_mode = SSC_READ_BY_TAG;
	if (ssc_atr_historical(io->atr, io->atr_len, &hist, &c->hist_len) != 0)
		return ssc_diag_set(diag, SSC_EPROTO, "malformed ATR (%zu bytes)", io->atr_len);
	memcpy(c->hist, hist, c->hist_len);

	n = apdu_build(cmd, sizeof(cmd), 0x00, 0xA4, 0x04, 0x00, ssc_ssse_name,
		       sizeof(ssc_ssse_name), APDU_LE_NONE);
	if (n < 0)
		return n;
	n = apdu_exchange(io, cmd, (size_t)n, fci, sizeof(fci), &sw, 0, diag);
	if (n < 0)
		return n;
	switch (sw) {
	case APDU_SW_OK:
		break;
	case 0x6A82: case 0x6A81: case 0x6A86: case 0x6D00: case 0x6E00:
		diag->sw = sw;
		return ssc_diag_set(diag, SSC_ENOTSSC, "the card has no social security "
				    "application (SSSE)");
	default:
		return apdu_sw_error(sw, APDU_CTX_GENERIC, "SELECT SSSE", diag);
	}
	c->cur_df = 0;
	if (n == 0)
		return 0;   /* no FCI at all: the spec version will decide the algorithm */
	rc = apdu_fci_alg(fci, (size_t)n, &id);
	if (rc < 0)
		return ssc_diag_set(diag, SSC_EPROTO, "malformed SSSE FCI");
	if (rc == 1)
		return ssc_set_alg(c, id, diag);
	return 0;
}

int ssc_select_df(struct ssc_card *c, int df, struct ssc_diag *diag)
{
	uint8_t cmd[32], resp[APDU_MAX_DATA], aid[6];
	char what[24];
	int n;

	if (df == c->cur_df)
		return 0;
	if (df < 0 || df > 5)
		return SSC_EINVAL;
	if (df == 0) {
		n = apdu_build(cmd, sizeof(cmd), 0x00, 0xA4, 0x04, 0x00, ssc_ssse_name,
			       sizeof(ssc_ssse_name), APDU_LE_NONE);
	} else {
		memcpy(aid, ssc_rid, sizeof(ssc_rid));
		aid[5] = (uint8_t)(df - 1);
		n = apdu_build(cmd, sizeof(cmd), 0x00, 0xA4, 0x04, 0x00, aid, sizeof(aid),
			       APDU_LE_NONE);
	}
	if (n < 0)
		return n;
	snprintf(what, sizeof(what), df ? "SELECT DF%02d" : "SELECT SSSE", df);
	/* A new DF ends every security state of the old one (spec §12.5). */
	c->cur_df = -1;
	c->read_authed = 0;
	n = apdu_exchange_ok(c->io, cmd, (size_t)n, resp, sizeof(resp), 0, what, diag);
	if (n < 0)
		return n;
	c->cur_df = df;
	return 0;
}

static int ssc_is_ef06(const struct item_file *f)
{
	return f->df == 0 && f->sfi == 0x06;
}

static int ssc_is_ef05(const struct item_file *f)
{
	return f->df == 0 && f->sfi == 0x05;
}

/*
 * The card refused the record addressing mode it was sent (6A86): the other one from now on, for
 * this operation and (remembered in the insertion's flags) the next ones.
 */
static enum ssc_read_mode ssc_mode_switch(struct ssc_card *c, enum ssc_read_mode mode)
{
	c->mode_switched = 1;
	c->read_mode = mode == SSC_READ_BY_NUMBER ? SSC_READ_BY_TAG : SSC_READ_BY_NUMBER;
	if (c->insertion_flags) {
		if (c->read_mode == SSC_READ_BY_TAG)
			*c->insertion_flags |= CARD_FLAG_TAG_MODE;
		else
			*c->insertion_flags &= ~(unsigned)CARD_FLAG_TAG_MODE;
	}
	return c->read_mode;
}

/*
 * The Le of a READ RECORD: 00 (the whole record, spec §12.5), or, on a card that answered that
 * with 6Cxx earlier in this insertion, the record's length from the item table (tag, length,
 * value), which saves the 6Cxx round on every record (a card whose record differs still says so).
 */
static uint8_t ssc_read_le(const struct ssc_card *c, const struct item_def *it)
{
	if (c->insertion_flags && (*c->insertion_flags & CARD_FLAG_EXACT_LE) && it->len > 0 &&
	    it->len <= 253)
		return (uint8_t)(it->len + 2);
	return 0x00;
}

/* The read authorisation of EF06 with the RKSSSE key (spec §12.4). */
static int ssc_read_auth(struct ssc_card *c, struct ssc_diag *diag)
{
	int rc = ssc_external_auth(c, &c->cfg->key_read_auth, diag);

	if (rc == 0) {
		c->read_authed = 1;
		if (c->insertion_flags)
			*c->insertion_flags |= CARD_FLAG_READ_AUTH;
	}
	return rc;
}

int ssc_read_item(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		  int recno, uint8_t *val, size_t cap, struct ssc_diag *diag)
{
	uint8_t cmd[8], rec[APDU_MAX_DATA];
	enum ssc_read_mode mode;
	int forced = 0, authed_now = 0;
	unsigned le_retries;
	uint16_t sw;
	char what[40];
	int n, rc;

	rc = ssc_select_df(c, f->df, diag);
	if (rc)
		return rc;
	if (recno == 0) {
		recno = it->rec;
		if (it->rec != it->rec_v1 && !f->generic) {
			/* EF06's layout differs on spec 1.00 cards (no 4E, 性别 is record 3). */
			rc = ssc_ensure_gen(c, diag);
			if (rc)
				return rc;
			if (c->gen == 1)
				recno = it->rec_v1;
			if (recno == 0)
				return ssc_diag_set(diag, SSC_ENORECORD,
						    "%s item %02X does not exist on spec %s cards",
						    f->name, it->tag, c->spec_version);
		}
	}
	if (ssc_is_ef06(f) && !c->read_authed && c->cfg->read_auth != READ_AUTH_NEVER &&
	    (c->cfg->read_auth == READ_AUTH_ALWAYS ||
	     (c->insertion_flags && (*c->insertion_flags & CARD_FLAG_READ_AUTH)))) {
		rc = ssc_read_auth(c, diag);
		if (rc)
			return rc;
	}
	mode = c->read_mode;
	if (f->generic) {
		mode = SSC_READ_BY_TAG;     /* record numbers unknown: only the tag addresses it */
		forced = 1;
	} else if (f->cyclic && recno > 1) {
		mode = SSC_READ_BY_NUMBER;  /* older records of a cyclic file share the tag */
		forced = 1;
	}
	snprintf(what, sizeof(what), "READ RECORD %s %02X", f->name, it->tag);
	for (;;) {
		cmd[0] = 0x00;
		cmd[1] = 0xB2;
		cmd[2] = mode == SSC_READ_BY_NUMBER ? (uint8_t)recno : it->tag;
		cmd[3] = (uint8_t)(f->sfi << 3 | (mode == SSC_READ_BY_NUMBER ? 0x04 : 0x00));
		cmd[4] = ssc_read_le(c, it);
		sw = 0;
		le_retries = c->io->le_retries;
		n = apdu_exchange(c->io, cmd, 5, rec, sizeof(rec), &sw, CARDIO_PERSONAL, diag);
		if (n < 0)
			goto out;
		if (c->io->le_retries != le_retries && cmd[4] == 0x00 && c->insertion_flags)
			*c->insertion_flags |= CARD_FLAG_EXACT_LE;
		if (sw == 0x6A86 && !forced && !c->mode_switched) {
			/* This card disabled the mode: use the other one from now on. */
			mode = ssc_mode_switch(c, mode);
			continue;
		}
		if (sw == 0x6A86 && forced) {
			n = f->cyclic ? ssc_diag_set(diag, SSC_ENORECORD,
						     "%s: the card cannot address older records",
						     f->name)
				      : ssc_diag_set(diag, SSC_EUNSUPPORTED,
						     "%s: the card does not read records by tag",
						     f->name);
			diag->sw = sw;
			goto out;
		}
		if (sw == 0x6982 && ssc_is_ef06(f) && !authed_now && !c->read_authed) {
			if (c->cfg->read_auth == READ_AUTH_NEVER) {
				diag->sw = sw;
				n = ssc_diag_set(diag, SSC_ESECURITY,
						 "the card requires read authorisation of SSSE/EF06 "
						 "and read_auth = never");
				goto out;
			}
			rc = ssc_read_auth(c, diag);
			if (rc) {
				n = rc;
				goto out;
			}
			authed_now = 1;
			continue;
		}
		break;
	}
	if (sw != APDU_SW_OK) {
		n = apdu_sw_error(sw, APDU_CTX_GENERIC, what, diag);
		goto out;
	}
	/* Every record is tag ‖ length ‖ value (spec §2.1); check all three against the answer. */
	if (n < 2 || rec[0] != it->tag || (size_t)rec[1] != (size_t)n - 2) {
		n = ssc_diag_set(diag, SSC_EPROTO, "%s: malformed record (%d bytes)", what, n);
		goto out;
	}
	n -= 2;
	if ((size_t)n > cap) {
		n = ssc_diag_set(diag, SSC_EBADCARDDATA, "%s item %02X (%s): longer than the item",
				 f->name, it->tag, it->label);
		goto out;
	}
	memcpy(val, rec + 2, (size_t)n);
	if (ssc_is_ef05(f) && it->tag == 0x01 && n == 16) {
		memcpy(c->card_id, val, 16);
		c->have_card_id = 1;
	}
out:
	OPENSSL_cleanse(rec, sizeof(rec));
	return n;
}

int ssc_read_text(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		  char *text, size_t cap, struct ssc_diag *diag)
{
	uint8_t val[APDU_MAX_DATA];
	int n;

	text[0] = '\0';
	n = ssc_read_item(c, f, it, 0, val, sizeof(val), diag);
	if (n >= 0)
		n = items_decode(f, it, val, (size_t)n, text, cap, diag);
	OPENSSL_cleanse(val, sizeof(val));
	return n;
}

static int ssc_lookup(const char *fname, uint8_t tag, struct item_file *f, struct item_def *it)
{
	if (items_file_parse(fname, f) || items_find(f, tag, it))
		return SSC_EINTERNAL;
	return 0;
}

int ssc_ensure_gen(struct ssc_card *c, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	char v[16];
	int n;

	if (c->gen)
		return 0;
	if (ssc_lookup("SSSE/EF05", 0x03, &f, &it))
		return SSC_EINTERNAL;
	n = ssc_read_text(c, &f, &it, v, sizeof(v), diag);
	if (n < 0)
		return n;
	/* "d.dd": the first digit is the generation; '3' means SM4 when the FCI said nothing. */
	if (n != 4 || v[0] < '1' || v[0] > '9' || v[1] != '.' || v[2] < '0' || v[2] > '9' ||
	    v[3] < '0' || v[3] > '9')
		return ssc_diag_set(diag, SSC_EBADCARDDATA,
				    "SSSE/EF05 item 03 (规范版本 spec version) is not d.dd");
	memcpy(c->spec_version, v, 5);
	c->gen = v[0] - '0';
	if (c->alg == SSC_ALG_NONE)
		c->alg = v[0] == '3' ? SSC_ALG_SM4 : SSC_ALG_DES;
	return 0;
}

/* Checks the 卡识别码's region (BCD) and RID (spec §2.5). */
static int ssc_check_card_id(const uint8_t id[16], struct ssc_diag *diag)
{
	for (int i = 0; i < 3; i++)
		if ((id[i] >> 4) > 9 || (id[i] & 0x0F) > 9)
			return ssc_diag_set(diag, SSC_EBADCARDDATA,
					    "SSSE/EF05 item 01 (卡识别码 card id): region is not BCD");
	if (memcmp(id + 3, ssc_rid, sizeof(ssc_rid)) != 0)
		return ssc_diag_set(diag, SSC_EBADCARDDATA,
				    "SSSE/EF05 item 01 (卡识别码 card id): no D156000005 RID");
	return 0;
}

int ssc_ensure_card_id(struct ssc_card *c, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	uint8_t v[APDU_MAX_DATA];
	int n;

	if (c->have_card_id)
		return 0;
	if (ssc_lookup("SSSE/EF05", 0x01, &f, &it))
		return SSC_EINTERNAL;
	n = ssc_read_item(c, &f, &it, 0, v, sizeof(v), diag);
	if (n < 0)
		return n;
	if (n != 16)
		return ssc_diag_set(diag, SSC_EBADCARDDATA,
				    "SSSE/EF05 item 01 (卡识别码 card id): not 16 bytes");
	return ssc_check_card_id(c->card_id, diag);
}

int ssc_div(struct ssc_card *c, struct keyprov_div *div, struct ssc_diag *diag)
{
	int rc;

	if (c->hist_len < 8)
		return ssc_diag_set(diag, SSC_EBADCARDDATA,
				    "the ATR has %zu historical bytes: no chip serial", c->hist_len);
	rc = ssc_ensure_card_id(c, diag);
	if (rc)
		return rc;
	memcpy(div->card_div, c->hist + c->hist_len - 8, 8);
	for (int i = 0; i < 3; i++) {
		div->city_div[2 * i] = (uint8_t)('0' + (c->card_id[i] >> 4));
		div->city_div[2 * i + 1] = (uint8_t)('0' + (c->card_id[i] & 0x0F));
	}
	div->city_div[6] = 's';
	div->city_div[7] = 'x';
	return 0;
}

/* Everything authentication needs: generation (not 1.00), algorithm, factors, a provider. */
int ssc_auth_prepare(struct ssc_card *c, struct keyprov_div *div, struct ssc_diag *diag)
{
	int rc;

	rc = ssc_ensure_gen(c, diag);
	if (rc)
		return rc;
	if (c->gen == 1)
		return ssc_diag_set(diag, SSC_EUNSUPPORTED,
				    "unsupported card: spec 1.00 cards cannot authenticate");
	rc = ssc_div(c, div, diag);
	if (rc)
		return rc;
	if (!c->kp)
		return ssc_diag_set(diag, SSC_ENOPSAM, "no key provider (PSAM) is configured");
	rc = c->kp->ops->available(c->kp, c->alg);
	if (rc == SSC_ENOPSAM)
		return ssc_diag_set(diag, rc, "no PSAM is inserted");
	if (rc == SSC_EPSAMALGO)
		return ssc_diag_set(diag, rc, "no PSAM for the card's algorithm (%s)",
				    c->alg == SSC_ALG_SM4 ? "SM4" : "DES");
	return rc;
}

int ssc_get_challenge(struct ssc_card *c, uint8_t r[8], struct ssc_diag *diag)
{
	static const uint8_t get_challenge[] = { 0x00, 0x84, 0x00, 0x00, 0x08 };
	uint8_t resp[APDU_MAX_DATA];
	int n;

	n = apdu_exchange_ok(c->io, get_challenge, sizeof(get_challenge), resp, sizeof(resp), 0,
			     "GET CHALLENGE", diag);
	if (n < 0)
		return n;
	if (n != 8)
		return ssc_diag_set(diag, SSC_EPROTO, "GET CHALLENGE answered %d bytes", n);
	memcpy(r, resp, 8);
	return 0;
}

int ssc_external_auth(struct ssc_card *c, const struct config_key *key, struct ssc_diag *diag)
{
	struct keyprov_div div;
	uint8_t r[8], data[17], cmd[32], resp[APDU_MAX_DATA];
	size_t dlen;
	uint16_t sw = 0;
	char what[32];
	int n, rc;

	rc = ssc_auth_prepare(c, &div, diag);
	if (rc)
		return rc;
	rc = ssc_get_challenge(c, r, diag);
	if (rc)
		return rc;
	rc = c->kp->ops->cryptogram(c->kp, c->alg, key, &div, r, r, data, c->io->deadline_ms,
				    diag);
	if (rc)
		goto out;
	memcpy(data + 8, r, 8);
	dlen = 16;
	if (c->alg == SSC_ALG_SM4)
		data[dlen++] = 0x01;   /* key version (spec §12.5) */
	n = apdu_build(cmd, sizeof(cmd), 0x00, 0x82, 0x00, key->card_kid, data, dlen,
		       APDU_LE_NONE);
	if (n < 0) {
		rc = n;
		goto out;
	}
	n = apdu_exchange(c->io, cmd, (size_t)n, resp, sizeof(resp), &sw, 0, diag);
	if (n < 0) {
		rc = n;
		goto out;
	}
	snprintf(what, sizeof(what), "EXTERNAL AUTH key %02X", key->card_kid);
	rc = apdu_sw_error(sw, APDU_CTX_GENERIC, what, diag);
	if (rc == 0)
		c->authenticated = 1;
out:
	OPENSSL_cleanse(data, sizeof(data));
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return rc;
}

int ssc_internal_auth(struct ssc_card *c, struct ssc_diag *diag)
{
	uint8_t px[16], answer[8];
	int rc;

	/* P (process factor) ‖ X (plaintext): fresh randoms, so no answer can be replayed. */
	if (RAND_bytes(px, sizeof(px)) != 1)
		return ssc_diag_set(diag, SSC_ECRYPTO, "no random bytes");
	rc = ssc_internal_auth_px(c, px, answer, diag);
	OPENSSL_cleanse(answer, sizeof(answer));
	return rc;
}

int ssc_internal_auth_command(struct ssc_card *c, const uint8_t px[16], uint8_t out[8],
			      struct ssc_diag *diag)
{
	uint8_t cmd[32], resp[APDU_MAX_DATA];
	uint16_t sw = 0;
	int n;

	n = apdu_build(cmd, sizeof(cmd), 0x00, 0x88, 0x00, c->cfg->key_internal.card_kid, px, 16,
		       APDU_LE_NONE);
	if (n < 0)
		return n;
	n = apdu_exchange(c->io, cmd, (size_t)n, resp, sizeof(resp), &sw, 0, diag);
	if (n < 0)
		return n;
	if (sw != APDU_SW_OK) {
		apdu_sw_error(sw, APDU_CTX_GENERIC, "INTERNAL AUTH", diag);
		return ssc_diag_set(diag, SSC_ENOTGENUINE, "the card refused INTERNAL AUTH: it did "
				    "not prove that it is genuine");
	}
	if (n < 8)
		return ssc_diag_set(diag, SSC_EPROTO, "INTERNAL AUTH answered %d bytes", n);
	memcpy(out, resp, 8);
	OPENSSL_cleanse(resp, sizeof(resp));
	return 0;
}

int ssc_internal_auth_px(struct ssc_card *c, const uint8_t px[16], uint8_t answer[8],
			 struct ssc_diag *diag)
{
	const struct config_key *key = &c->cfg->key_internal;
	struct keyprov_div div;
	uint8_t want[8];
	int rc;

	rc = ssc_select_df(c, 0, diag);
	if (rc)
		return rc;
	rc = ssc_auth_prepare(c, &div, diag);
	if (rc)
		return rc;
	rc = ssc_internal_auth_command(c, px, answer, diag);
	if (rc)
		return rc;
	rc = c->kp->ops->cryptogram(c->kp, c->alg, key, &div, px, px + 8, want,
				    c->io->deadline_ms, diag);
	if (rc == 0 && CRYPTO_memcmp(want, answer, 8) != 0)
		rc = ssc_diag_set(diag, SSC_ENOTGENUINE,
				  "internal authentication failed: the card is not genuine");
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}

void ssc_today(char out[9])
{
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm) || strftime(out, 9, "%Y%m%d", &tm) != 8)
		memcpy(out, "00000000", 9);   /* unreachable before year 10000 */
}

/* Reads one item of read_basic as text; an absent record is an error naming the item. */
static int ssc_basic_text(struct ssc_card *c, const char *fname, uint8_t tag, char *text,
			  size_t cap, struct ssc_diag *diag)
{
	struct item_file f;
	struct item_def it;
	int n;

	if (ssc_lookup(fname, tag, &f, &it))
		return SSC_EINTERNAL;
	n = ssc_read_text(c, &f, &it, text, cap, diag);
	if (n == SSC_ENORECORD)
		n = ssc_diag_set(diag, SSC_ENORECORD, "%s item %02X (%s) is missing", fname, tag,
				 it.label);
	return n < 0 ? n : 0;
}

/* 姓名 ‖ 姓名扩展: both stripped of their padding, joined, then converted once from GB 18030 (a
 * card written elsewhere may have cut a character between the two records; sscard never does). */
static int ssc_basic_name(struct ssc_card *c, char *text, size_t cap, struct ssc_diag *diag)
{
	static const struct item_def name_def = { 0x09, 2, 2, 50, ITEM_FMT_AN, 0,
						  "姓名 name" };
	struct item_file f;
	struct item_def it09, it4e;
	uint8_t raw[64], ext[APDU_MAX_DATA];
	int n, m = 0, rc;

	if (ssc_lookup("SSSE/EF06", 0x09, &f, &it09) || ssc_lookup("SSSE/EF06", 0x4E, &f, &it4e))
		return SSC_EINTERNAL;
	n = ssc_read_item(c, &f, &it09, 0, raw, 30, diag);
	if (n == SSC_ENORECORD)
		return ssc_diag_set(diag, n, "SSSE/EF06 item 09 (姓名 name) is missing");
	if (n < 0)
		return n;
	while (n > 0 && (raw[n - 1] == 0x00 || raw[n - 1] == 0xFF))
		n--;
	if (c->gen >= 2) {
		m = ssc_read_item(c, &f, &it4e, 0, ext, 20, diag);
		if (m == SSC_ENORECORD)
			m = 0;   /* a card without the extension record has a short name */
		if (m < 0) {
			rc = m;
			goto out;
		}
		memcpy(raw + n, ext, (size_t)m);
	}
	rc = items_decode(&f, &name_def, raw, (size_t)(n + m), text, cap, diag);
	rc = rc < 0 ? rc : 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(ext, sizeof(ext));
	return rc;
}

int ssc_read_basic(struct ssc_card *c, struct ssc_basic *b, struct ssc_diag *diag)
{
	char today[9];
	int rc;

	memset(b, 0, sizeof(*b));
	/* EF05 first: the spec version decides EF06's layout, the card id the diversification. */
	rc = ssc_ensure_gen(c, diag);
	if (rc)
		return rc;
	memcpy(b->spec_version, c->spec_version, sizeof(c->spec_version));
	rc = ssc_ensure_card_id(c, diag);
	if (rc)
		return rc;
	hex_encode(c->card_id, 16, b->card_id, sizeof(b->card_id), HEX_UPPER);
	memcpy(b->region_code, b->card_id, 6);
	rc = ssc_basic_text(c, "SSSE/EF05", 0x05, b->issue_date, sizeof(b->issue_date), diag);
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF05", 0x06, b->expiry_date, sizeof(b->expiry_date),
				    diag);
	if (!rc)
		rc = ssc_card_number(c, diag);
	if (!rc)
		memcpy(b->card_number, c->card_number, sizeof(c->card_number));
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF06", 0x08, b->ssn, sizeof(b->ssn), diag);
	if (!rc)
		rc = ssc_basic_name(c, b->name, sizeof(b->name), diag);
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF06", 0x0A, b->sex, sizeof(b->sex), diag);
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF06", 0x0B, b->nation, sizeof(b->nation), diag);
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF06", 0x0C, b->birth_place, sizeof(b->birth_place),
				    diag);
	if (!rc)
		rc = ssc_basic_text(c, "SSSE/EF06", 0x0D, b->birth_date, sizeof(b->birth_date),
				    diag);
	if (rc) {
		OPENSSL_cleanse(b, sizeof(*b));
		return rc;
	}
	hex_encode(c->hist, c->hist_len, b->atr_historical, sizeof(b->atr_historical), HEX_UPPER);
	/* The card is valid through its expiry date; the daemon's clock, as a UTC date. */
	ssc_today(today);
	b->expired = b->expiry_date[0] != '\0' && strcmp(today, b->expiry_date) > 0;
	return 0;
}

int ssc_card_number(struct ssc_card *c, struct ssc_diag *diag)
{
	char v[ITEM_TEXT_MAX];
	int rc;

	if (c->have_card_number)
		return 0;
	rc = ssc_basic_text(c, "SSSE/EF05", 0x07, v, sizeof(v), diag);
	if (rc == 0 && strlen(v) >= sizeof(c->card_number))
		rc = ssc_diag_set(diag, SSC_EBADCARDDATA, "SSSE/EF05 item 07 (卡号) is too long");
	if (rc == 0) {
		memcpy(c->card_number, v, strlen(v) + 1);
		c->have_card_number = 1;
	}
	OPENSSL_cleanse(v, sizeof(v));
	return rc;
}

/* ---- PIN (spec §12.5) -------------------------------------------------------------------- */

int ssc_pin_parse(struct ssc_pin *p, const char *text, size_t len, int min_len, int max_len,
		  struct ssc_diag *diag)
{
	memset(p, 0, sizeof(*p));
	if (max_len > SSC_PIN_MAX)
		max_len = SSC_PIN_MAX;
	if (len < (size_t)min_len || len > (size_t)max_len)
		return ssc_diag_set(diag, SSC_EPINFORMAT, "the PIN must be %d to %d digits",
				    min_len, max_len);
	for (size_t i = 0; i < len; i++)
		if (text[i] < '0' || text[i] > '9')
			return ssc_diag_set(diag, SSC_EPINFORMAT, "the PIN must be digits only");
	memcpy(p->digits, text, len);
	p->len = len;
	return 0;
}

int ssc_pin_equal(const struct ssc_pin *a, const struct ssc_pin *b)
{
	/* The whole zero-padded buffer, so that the time does not depend on where they differ. */
	return (CRYPTO_memcmp(a->digits, b->digits, sizeof(a->digits)) == 0) & (a->len == b->len);
}

void ssc_pin_wipe(struct ssc_pin *p)
{
	OPENSSL_cleanse(p, sizeof(*p));
}

/* The PIN as BCD, an odd digit count padded with F. Returns the byte count (at most 6). */
static size_t ssc_pin_bcd(const struct ssc_pin *p, uint8_t *out)
{
	size_t n = (p->len + 1) / 2;

	memset(out, 0xFF, n);
	for (size_t i = 0; i < p->len; i++) {
		uint8_t d = (uint8_t)(p->digits[i] - '0');

		out[i / 2] = i % 2 ? (uint8_t)((out[i / 2] & 0xF0) | d) : (uint8_t)(d << 4 | 0x0F);
	}
	return n;
}

/* Writes a command's header CLA INS P1 P2 Lc into cmd[0..4] (its body is built in place after). */
static void ssc_header(uint8_t *cmd, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2, size_t lc)
{
	cmd[0] = cla;
	cmd[1] = ins;
	cmd[2] = p1;
	cmd[3] = p2;
	cmd[4] = (uint8_t)lc;
}

/* Sends a command whose body is secret and maps its status word in ctx. */
static int ssc_secret_command(struct ssc_card *c, const uint8_t *cmd, size_t len,
			      enum apdu_sw_ctx ctx, const char *what, struct ssc_diag *diag)
{
	uint8_t resp[APDU_MAX_DATA];
	uint16_t sw = 0;
	int n;

	n = apdu_exchange(c->io, cmd, len, resp, sizeof(resp), &sw, CARDIO_SECRET, diag);
	OPENSSL_cleanse(resp, sizeof(resp));
	if (n < 0)
		return n;
	/* A wrong MAC (6988 / 9302) counts no PIN try: the PSAM's key is not this card's. */
	if (sw == 0x6988 || sw == 0x9302)
		ctx = APDU_CTX_SM;
	return apdu_sw_error(sw, ctx, what, diag);
}

/*
 * VERIFY (00 20 00 00: pin) and CHANGE PIN (80 5E 01 00: pin ‖ FF ‖ new_pin; the separator FF is
 * no BCD PIN byte), the PIN commands in clear: SSSE selected, the command sent as a secret, wiped.
 */
static int ssc_clear_pin_command(struct ssc_card *c, uint8_t cla, uint8_t ins, uint8_t p1,
				 const struct ssc_pin *pin, const struct ssc_pin *new_pin,
				 const char *what, struct ssc_diag *diag)
{
	uint8_t cmd[5 + 16];
	size_t n;
	int rc;

	rc = ssc_select_df(c, 0, diag);
	if (rc)
		return rc;
	n = ssc_pin_bcd(pin, cmd + 5);
	if (new_pin) {
		cmd[5 + n++] = 0xFF;
		n += ssc_pin_bcd(new_pin, cmd + 5 + n);
	}
	ssc_header(cmd, cla, ins, p1, 0x00, n);
	rc = ssc_secret_command(c, cmd, 5 + n, APDU_CTX_PIN, what, diag);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return rc;
}

int ssc_verify_pin(struct ssc_card *c, const struct ssc_pin *pin, struct ssc_diag *diag)
{
	return ssc_clear_pin_command(c, 0x00, 0x20, 0x00, pin, NULL, "VERIFY", diag);
}

int ssc_change_pin(struct ssc_card *c, const struct ssc_pin *old_pin,
		   const struct ssc_pin *new_pin, struct ssc_diag *diag)
{
	return ssc_clear_pin_command(c, 0x80, 0x5E, 0x01, old_pin, new_pin, "CHANGE PIN", diag);
}

/*
 * The secure-messaging MAC4 of spec §12.5 over data (the command's CLA INS P1 P2 Lc' ‖ body),
 * from the key provider, with the IV from the challenge r: DES R[0..3] ‖ 00⁴, SM4 R ‖ 00⁸.
 */
static int ssc_sm_mac(struct ssc_card *c, const struct config_key *key,
		      const struct keyprov_div *div, const uint8_t r[8], const uint8_t *data,
		      size_t len, uint8_t mac[4], struct ssc_diag *diag)
{
	uint8_t iv[16] = { 0 };

	memcpy(iv, r, c->alg == SSC_ALG_SM4 ? 8 : 4);
	return c->kp->ops->mac(c->kp, c->alg, key, div, iv, data, len, mac, c->io->deadline_ms,
			       diag);
}

int ssc_reload_pin(struct ssc_card *c, const struct ssc_pin *new_pin, struct ssc_diag *diag)
{
	struct keyprov_div div;
	uint8_t r[8], cmd[5 + 8 + 4];
	size_t n;
	int rc;

	rc = ssc_select_df(c, 0, diag);
	if (!rc)
		rc = ssc_auth_prepare(c, &div, diag);
	if (!rc)
		rc = ssc_get_challenge(c, r, diag);
	if (rc)
		return rc;
	n = ssc_pin_bcd(new_pin, cmd + 5);
	ssc_header(cmd, 0x80, 0x5E, 0x00, 0x00, n + 4);   /* Lc' counts the MAC (spec §12.5) */
	rc = ssc_sm_mac(c, &c->cfg->key_pin_reload, &div, r, cmd, 5 + n, cmd + 5 + n, diag);
	if (!rc)
		rc = ssc_secret_command(c, cmd, 5 + n + 4, APDU_CTX_PIN, "RELOAD PIN", diag);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return rc;
}

int ssc_unblock_pin(struct ssc_card *c, const struct ssc_pin *new_pin, struct ssc_diag *diag)
{
	struct keyprov_div div;
	uint8_t r[8], blk[16], cmd[5 + 16 + 4];
	size_t n, bs;
	int rc;

	rc = ssc_select_df(c, 0, diag);
	if (!rc)
		rc = ssc_auth_prepare(c, &div, diag);
	if (rc)
		return rc;
	bs = c->alg == SSC_ALG_SM4 ? 16 : 8;
	/* L (BCD bytes) ‖ PIN ‖ 80 ‖ 00..: 6 bytes of PIN at most, so one DES block holds it. */
	memset(blk, 0, sizeof(blk));
	n = ssc_pin_bcd(new_pin, blk + 1);
	blk[0] = (uint8_t)n;
	blk[1 + n] = 0x80;
	rc = c->kp->ops->encrypt(c->kp, c->alg, &c->cfg->key_pin_unblock, &div, blk, bs, cmd + 5,
				 c->io->deadline_ms, diag);
	OPENSSL_cleanse(blk, sizeof(blk));
	if (!rc)
		rc = ssc_get_challenge(c, r, diag);
	if (!rc) {
		ssc_header(cmd, 0x84, 0x24, 0x00, 0x00, bs + 4);
		rc = ssc_sm_mac(c, &c->cfg->key_pin_unblock, &div, r, cmd, 5 + bs, cmd + 5 + bs,
				diag);
	}
	if (!rc)
		rc = ssc_secret_command(c, cmd, 5 + bs + 4, APDU_CTX_PIN, "UNBLOCK PIN", diag);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return rc;
}

/* ---- record writes (spec §12.5) ---------------------------------------------------------- */

int ssc_write_record(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		     int append, uint8_t reclen, const uint8_t *val, size_t len,
		     struct ssc_diag *diag)
{
	struct keyprov_div div;
	uint8_t r[8], cmd[SSC_CMD_APDU_MAX], resp[APDU_MAX_DATA];
	int secure = f->wkey == ITEM_WKEY_STK, tries = 0, rc;
	enum ssc_read_mode mode;
	uint16_t sw = 0;
	char what[48];
	size_t body, n;

	if (len > reclen || (append && !f->cyclic) || f->wkey == ITEM_WKEY_NONE ||
	    2 + (size_t)reclen + 4 > 255)
		return ssc_diag_set(diag, SSC_EINVAL, "%s: bad record write", f->name);
	rc = ssc_ensure_gen(c, diag);
	if (rc)
		return rc;
	if (c->gen == 1)
		return ssc_diag_set(diag, SSC_EUNSUPPORTED,
				    "unsupported card: spec 1.00 cards cannot be written");
	if (f->min_gen && c->gen < f->min_gen)
		return ssc_diag_set(diag, SSC_EUNSUPPORTED, "%s exists on spec %d.00 cards only",
				    f->name, f->min_gen);
	/* The factors first: learning the card id may SELECT SSSE. */
	if (secure)
		rc = ssc_auth_prepare(c, &div, diag);
	if (!rc)
		rc = ssc_select_df(c, f->df, diag);
	if (rc)
		return rc;
	mode = f->generic ? SSC_READ_BY_TAG : c->read_mode;
	snprintf(what, sizeof(what), "%s %s %02X", append ? "APPEND RECORD" : "UPDATE RECORD",
		 f->name, it->tag);
	for (;;) {
		cmd[0] = secure ? 0x04 : 0x00;
		cmd[1] = append ? 0xE2 : 0xDC;
		if (append) {
			cmd[2] = 0x00;
			cmd[3] = (uint8_t)(f->sfi << 3);
		} else {
			cmd[2] = mode == SSC_READ_BY_NUMBER ? it->rec : it->tag;
			cmd[3] = (uint8_t)(f->sfi << 3 |
					   (mode == SSC_READ_BY_NUMBER ? 0x04 : 0x00));
		}
		body = 2 + len;
		cmd[4] = (uint8_t)(body + (secure ? 4 : 0));
		cmd[5] = it->tag;
		cmd[6] = reclen;
		memcpy(cmd + 7, val, len);
		n = 5 + body;
		if (secure) {
			rc = ssc_get_challenge(c, r, diag);
			if (!rc)
				rc = ssc_sm_mac(c, &c->cfg->key_stk, &div, r, cmd, n, cmd + n, diag);
			if (rc)
				goto out;
			n += 4;
		}
		rc = apdu_exchange(c->io, cmd, n, resp, sizeof(resp), &sw, CARDIO_SECRET, diag);
		if (rc < 0)
			goto out;
		if (sw == 0x6A86 && !append && !f->generic && !c->mode_switched && tries++ == 0) {
			/* As for reads: this card lacks the mode; the other one from now on. */
			mode = ssc_mode_switch(c, mode);
			continue;
		}
		break;
	}
	rc = apdu_sw_error(sw, secure ? APDU_CTX_SM : APDU_CTX_GENERIC, what, diag);
out:
	OPENSSL_cleanse(cmd, sizeof(cmd));
	OPENSSL_cleanse(resp, sizeof(resp));
	return rc;
}
