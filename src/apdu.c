/*
 * This file contains the APDU layer: short command building, the exchange helper that follows
 * 61xx and 6Cxx answers with bounded retries and checks every length, the status-word mapping to
 * sscard errors, and a BER-TLV reader that never reads outside its buffer (and the FCI's algorithm
 * byte read with it).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apdu.h"

#define APDU_GET_RESPONSE_ROUNDS 8   /* 8 x 256 bytes is more than any short answer we accept */

int apdu_build(uint8_t *out, size_t cap, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
	       const uint8_t *data, size_t lc, int le)
{
	size_t n = 4 + (lc ? 1 + lc : 0) + (le != APDU_LE_NONE ? 1 : 0);

	if (lc > 255 || le < APDU_LE_NONE || le > 256 || n > cap || (lc && !data))
		return SSC_EINVAL;
	out[0] = cla;
	out[1] = ins;
	out[2] = p1;
	out[3] = p2;
	n = 4;
	if (lc) {
		out[n++] = (uint8_t)lc;
		memcpy(out + n, data, lc);
		n += lc;
	}
	if (le != APDU_LE_NONE)
		out[n++] = (uint8_t)(le & 0xFF);
	return (int)n;
}

/* Sets (or adds) the Le byte of the command in c (*len bytes, room for SSC_CMD_APDU_MAX). */
static int apdu_set_le(uint8_t *c, size_t *len, uint8_t le)
{
	size_t lc;

	if (*len == 4) {
		c[(*len)++] = le;
		return 0;
	}
	if (*len == 5) {
		c[4] = le;
		return 0;
	}
	lc = c[4];
	if (*len == 5 + lc && *len < SSC_CMD_APDU_MAX) {
		c[(*len)++] = le;
		return 0;
	}
	if (*len == 6 + lc) {
		c[*len - 1] = le;
		return 0;
	}
	return SSC_EINVAL;
}

/* ISO 7816-4 status words have SW1 61..6F or 90..9F; anything else is line noise. */
static int apdu_sw_plausible(uint16_t sw)
{
	uint8_t sw1 = (uint8_t)(sw >> 8);

	return (sw1 >= 0x61 && sw1 <= 0x6F) || (sw1 >= 0x90 && sw1 <= 0x9F);
}

int apdu_exchange(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *data,
		  size_t cap, uint16_t *sw, unsigned flags, struct ssc_diag *diag)
{
	uint8_t c[SSC_CMD_APDU_MAX];
	uint8_t r[SSC_RESP_APDU_MAX];
	size_t clen = cmd_len, have = 0;
	int resent = 0, rounds = 0;
	int rc;

	if (cmd_len < 4 || cmd_len > sizeof(c))
		return ssc_diag_set(diag, SSC_EINVAL, "command APDU of %zu bytes", cmd_len);
	memcpy(c, cmd, cmd_len);
	for (;;) {
		int n = io->transmit(io, c, clen, r, sizeof(r), flags);
		uint16_t s;
		size_t dlen;

		if (n < 0) {
			rc = n;
			goto out;
		}
		if (n < 2 || (size_t)n > sizeof(r)) {
			rc = ssc_diag_set(diag, SSC_EPROTO, "answer of %d bytes to %02X %02X", n,
					  c[0], c[1]);
			goto out;
		}
		s = (uint16_t)(r[n - 2] << 8 | r[n - 1]);
		dlen = (size_t)n - 2;
		if (!apdu_sw_plausible(s)) {
			diag->sw = s;
			rc = ssc_diag_set(diag, SSC_EPROTO, "%04X is not a status word", s);
			goto out;
		}
		if ((s >> 8) == 0x6C) {
			/* Wrong Le: the card says how many bytes it has. Re-send once. */
			if (resent) {
				rc = ssc_diag_set(diag, SSC_EPROTO, "second 6Cxx answer");
				goto out;
			}
			if (apdu_set_le(c, &clen, (uint8_t)(s & 0xFF))) {
				rc = ssc_diag_set(diag, SSC_EPROTO, "6Cxx to a command without Le");
				goto out;
			}
			resent = 1;
			io->le_retries++;
			continue;
		}
		if (dlen > cap - have) {
			rc = ssc_diag_set(diag, SSC_EPROTO, "answer longer than %zu bytes", cap);
			goto out;
		}
		if (dlen)
			memcpy(data + have, r, dlen);
		have += dlen;
		if ((s >> 8) == 0x61) {
			/* More data waits (T=0 style): fetch it, a bounded number of times. */
			if (++rounds > APDU_GET_RESPONSE_ROUNDS) {
				rc = ssc_diag_set(diag, SSC_EPROTO, "endless GET RESPONSE chain");
				goto out;
			}
			if (flags & CARDIO_SECRET)
				OPENSSL_cleanse(c, sizeof(c));
			c[0] = 0x00;
			c[1] = 0xC0;
			c[2] = 0x00;
			c[3] = 0x00;
			c[4] = (uint8_t)(s & 0xFF);
			clen = 5;
			flags &= ~(unsigned)CARDIO_SECRET;   /* GET RESPONSE carries no secret */
			continue;
		}
		*sw = s;
		rc = (int)have;
		goto out;
	}
out:
	if (flags & CARDIO_SECRET)
		OPENSSL_cleanse(c, sizeof(c));   /* our copy of a PIN-bearing command */
	OPENSSL_cleanse(r, sizeof(r));       /* may hold personal data or cryptograms */
	return rc;
}

struct apdu_sw_text {
	uint16_t sw;
	const char *text;
};

static const struct apdu_sw_text apdu_sw_texts[] = {
	{ 0x6281, "returned data may be corrupted" },
	{ 0x6283, "selected file invalidated" },
	{ 0x6581, "memory failure" },
	{ 0x6700, "wrong length" },
	{ 0x6981, "command incompatible with file structure" },
	{ 0x6982, "security status not satisfied" },
	{ 0x6983, "authentication method blocked" },
	{ 0x6984, "reference data invalid (no challenge?)" },
	{ 0x6985, "conditions of use not satisfied" },
	{ 0x6986, "command not allowed (no current EF)" },
	{ 0x6988, "secure messaging MAC wrong" },
	{ 0x6A80, "incorrect data" },
	{ 0x6A81, "function not supported or application locked" },
	{ 0x6A82, "file not found" },
	{ 0x6A83, "record not found" },
	{ 0x6A84, "not enough memory in file" },
	{ 0x6A86, "incorrect P1 P2" },
	{ 0x6A88, "key or reference data not found" },
	{ 0x6B00, "wrong parameters" },
	{ 0x6D00, "instruction not supported" },
	{ 0x6E00, "class not supported" },
	{ 0x6F00, "no precise diagnosis" },
	{ 0x9302, "MAC invalid" },
	{ 0x9303, "application permanently locked" },
	{ 0x9403, "not supported" },
	{ 0x9406, "MAC unavailable" },
};

static const char *apdu_sw_text(uint16_t sw)
{
	for (size_t i = 0; i < sizeof(apdu_sw_texts) / sizeof(apdu_sw_texts[0]); i++)
		if (apdu_sw_texts[i].sw == sw)
			return apdu_sw_texts[i].text;
	return "error status";
}

/* "1 try left", "2 tries left": the counter of a PIN or a key, in words. */
static const char *apdu_tries(int left)
{
	return left == 1 ? "try" : "tries";
}

int apdu_sw_error(uint16_t sw, enum apdu_sw_ctx ctx, const char *what, struct ssc_diag *diag)
{
	int err;

	if (sw == APDU_SW_OK)
		return 0;
	if (!what)
		what = "command";
	diag->sw = sw;
	/*
	 * The try counters. The messages are for the person at the desk: the status word itself
	 * stays in diag->sw (data.sw). 63C0 is the failure that used the last try: the PIN or key
	 * is blocked from now on, so it is named blocked (spec §12.5: treat 63C0 and 6983 alike).
	 */
	if ((sw & 0xFFF0) == 0x63C0) {
		int left = sw & 0x0F;

		diag->retries_left = left;
		if (ctx == APDU_CTX_PIN && left)
			return ssc_diag_set(diag, SSC_EPINWRONG, "wrong PIN: %d %s left", left,
					    apdu_tries(left));
		if (ctx == APDU_CTX_PIN)
			return ssc_diag_set(diag, SSC_EPINBLOCKED, "wrong PIN, and that was the "
					    "last try: the PIN is now blocked");
		if (left)
			return ssc_diag_set(diag, SSC_EAUTHFAILED, "%s: the card refused the "
					    "terminal's key: %d %s left before the card blocks it",
					    what, left, apdu_tries(left));
		return ssc_diag_set(diag, SSC_EKEYBLOCKED, "%s: the card refused the terminal's "
				    "key, and that was the last try: the key is now blocked", what);
	}
	switch (sw) {
	case 0x6A82:
		return ssc_diag_set(diag, SSC_ENOFILE, "%s: the card has no such file", what);
	case 0x6A83:
		return ssc_diag_set(diag, SSC_ENORECORD, "%s: the card has no such record", what);
	case 0x6982:
		return ssc_diag_set(diag, SSC_ESECURITY, "%s: the card wants an authentication "
				    "first (security status not satisfied)", what);
	case 0x6983:
		diag->retries_left = 0;
		if (ctx == APDU_CTX_PIN)
			return ssc_diag_set(diag, SSC_EPINBLOCKED, "the PIN is blocked");
		return ssc_diag_set(diag, SSC_EKEYBLOCKED, "%s: the card's key for this is "
				    "blocked", what);
	case 0x6A81:
	case 0x6D00:
		return ssc_diag_set(diag, SSC_EUNSUPPORTED, "%s: the card does not support it (%s)",
				    what, apdu_sw_text(sw));
	case 0x6988:
	case 0x9302:
		/* The card computed another MAC: the key the PSAM used is not the card's. */
		if (ctx == APDU_CTX_SM)
			return ssc_diag_set(diag, SSC_EAUTHFAILED, "%s: the card refused the "
					    "PSAM's MAC: the PSAM's key is not this card's", what);
		err = SSC_ECARDSW;
		break;
	default:
		err = SSC_ECARDSW;
		break;
	}
	return ssc_diag_set(diag, err, "%s: %04X %s", what, sw, apdu_sw_text(sw));
}

int apdu_exchange_ok(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *data,
		     size_t cap, unsigned flags, const char *what, struct ssc_diag *diag)
{
	uint16_t sw = 0;
	int n = apdu_exchange(io, cmd, cmd_len, data, cap, &sw, flags, diag);

	if (n < 0)
		return n;
	if (sw != APDU_SW_OK)
		return apdu_sw_error(sw, APDU_CTX_GENERIC, what, diag);
	return n;
}

int apdu_tlv_next(const uint8_t *buf, size_t len, size_t *off, struct apdu_tlv *out)
{
	size_t i = *off;
	uint32_t tag;
	size_t vlen;

	/* ISO 7816-4 allows 00 and FF filler between BER-TLV objects. */
	while (i < len && (buf[i] == 0x00 || buf[i] == 0xFF))
		i++;
	if (i >= len) {
		*off = i;
		return 0;
	}
	out->constructed = (buf[i] & 0x20) != 0;
	tag = buf[i++];
	if ((tag & 0x1F) == 0x1F) {
		int more = 0;

		do {
			if (i >= len || ++more > 2)
				return SSC_EPROTO;
			tag = tag << 8 | buf[i];
		} while (buf[i++] & 0x80);
	}
	if (i >= len)
		return SSC_EPROTO;
	if (buf[i] < 0x80) {
		vlen = buf[i++];
	} else if (buf[i] == 0x81) {
		if (len - i < 2)
			return SSC_EPROTO;
		vlen = buf[i + 1];
		i += 2;
	} else if (buf[i] == 0x82) {
		if (len - i < 3)
			return SSC_EPROTO;
		vlen = (size_t)buf[i + 1] << 8 | buf[i + 2];
		i += 3;
	} else {
		return SSC_EPROTO;
	}
	if (vlen > len - i)
		return SSC_EPROTO;
	out->tag = tag;
	out->val = buf + i;
	out->len = vlen;
	*off = i + vlen;
	return 1;
}

int apdu_tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct apdu_tlv *out)
{
	size_t off = 0;
	int rc;

	while ((rc = apdu_tlv_next(buf, len, &off, out)) == 1)
		if (out->tag == tag)
			return 1;
	return rc;
}

int apdu_fci_alg(const uint8_t *fci, size_t len, uint8_t *alg_id)
{
	struct apdu_tlv t6f, ta5, t9f, t86;
	int rc;

	rc = apdu_tlv_find(fci, len, 0x6F, &t6f);
	if (rc <= 0)
		return SSC_EPROTO;
	rc = apdu_tlv_find(t6f.val, t6f.len, 0xA5, &ta5);
	if (rc < 0)
		return rc;
	if (rc == 1)
		rc = apdu_tlv_find(ta5.val, ta5.len, 0x9F0C, &t9f);
	if (rc == 0)
		rc = apdu_tlv_find(t6f.val, t6f.len, 0x9F0C, &t9f);
	if (rc <= 0)
		return rc;
	/* 9F0C's value is itself a TLV: 86 01 xx. */
	rc = apdu_tlv_find(t9f.val, t9f.len, 0x86, &t86);
	if (rc <= 0 || t86.len != 1)
		return SSC_EPROTO;
	*alg_id = t86.val[0];
	return 1;
}
