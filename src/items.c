/*
 * This file contains the table of card files and items the API knows (spec §2.2–2.4, §12.7) and
 * the conversions between card bytes and API values (§12.9). Reads and, in a later issue, writes
 * are driven by these rows; nothing else in the daemon knows a record layout.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "gb18030.h"
#include "hex.h"
#include "items.h"

static const struct item_def items_ssse_ef05[] = {
	{ 0x01, 1, 1, 16, ITEM_FMT_B, ITEM_READONLY, "卡识别码 card id" },
	{ 0x02, 2, 2, 1, ITEM_FMT_AN, ITEM_EXACT, "卡类别 card type" },
	{ 0x03, 3, 3, 4, ITEM_FMT_AN, ITEM_READONLY, "规范版本 spec version" },
	{ 0x04, 4, 4, 12, ITEM_FMT_AN, 0, "初始化机构编号 initialising institution" },
	{ 0x05, 5, 5, 4, ITEM_FMT_DATE, 0, "发卡日期 issue date" },
	{ 0x06, 6, 6, 4, ITEM_FMT_DATE, 0, "卡有效期 expiry date" },
	{ 0x07, 7, 7, 9, ITEM_FMT_AN, ITEM_CHECK_CARDNO | ITEM_READONLY,
	  "卡号 card number" },
};

/* Spec 1.00 cards have no 姓名扩展 and keep 性别 in record 3 (§2.3). */
static const struct item_def items_ssse_ef06[] = {
	{ 0x08, 1, 1, 18, ITEM_FMT_AN, ITEM_EXACT | ITEM_CHECK_SSN,
	  "社会保障号码 social security number" },
	{ 0x09, 2, 2, 30, ITEM_FMT_AN, ITEM_NAME, "姓名 name" },
	{ 0x4E, 3, 0, 20, ITEM_FMT_AN, ITEM_NAME_EXT, "姓名扩展 name extension" },
	{ 0x0A, 4, 3, 1, ITEM_FMT_AN, ITEM_EXACT | ITEM_CHECK_SEX, "性别 sex" },
	{ 0x0B, 5, 4, 1, ITEM_FMT_CN, ITEM_EXACT, "民族 nation" },
	{ 0x0C, 6, 5, 3, ITEM_FMT_CN, ITEM_EXACT, "出生地 birth place" },
	{ 0x0D, 7, 6, 4, ITEM_FMT_DATE, 0, "出生日期 birth date" },
};

static const struct item_def items_ssse_ef0d[] = {
	{ 0xEA, 1, 0, 12, ITEM_FMT_AN, 0, "人员识别码 person id" },
	{ 0xEB, 2, 0, 3, ITEM_FMT_CN, ITEM_EXACT, "初次申领地 first application region" },
};

static const struct item_def items_df04_ef05[] = {
	{ 0x30, 1, 1, 3, ITEM_FMT_CN, ITEM_EXACT, "参保地区划 insured region" },
	{ 0x31, 2, 2, 2, ITEM_FMT_AN, 0, "人员类别 person category" },
	{ 0x32, 3, 3, 20, ITEM_FMT_AN, 0, "医保个人编号 insurance person number" },
	{ 0x33, 4, 4, 12, ITEM_FMT_AN, 0, "定点医疗机构编号 designated institution" },
	{ 0x34, 5, 5, 1, ITEM_FMT_AN, ITEM_EXACT, "异地安置标志 relocation flag" },
};

static const struct item_def items_df04_ef06[] = {
	{ 0x41, 1, 1, 1, ITEM_FMT_B, ITEM_EXACT, "临时脱网结算 offline settlement pending" },
};

static const struct item_def items_df04_ef08[] = {
	{ 0x40, 1, 1, 0x33, ITEM_FMT_TXN, 0, "医疗交易明细 medical transactions" },
};

#define ITEMS_N(a) (sizeof(a) / sizeof((a)[0]))

static const struct item_file items_files[] = {
	{ "SSSE/EF05", 0, 0x05, ITEM_WKEY_SSSE, 0, 0, 0, items_ssse_ef05, ITEMS_N(items_ssse_ef05) },
	{ "SSSE/EF06", 0, 0x06, ITEM_WKEY_SSSE, 0, 0, 0, items_ssse_ef06, ITEMS_N(items_ssse_ef06) },
	{ "SSSE/EF0D", 0, 0x0D, ITEM_WKEY_EF0D, 3, 0, 0, items_ssse_ef0d, ITEMS_N(items_ssse_ef0d) },
	{ "DF04/EF05", 4, 0x05, ITEM_WKEY_STK, 0, 0, 0, items_df04_ef05, ITEMS_N(items_df04_ef05) },
	{ "DF04/EF06", 4, 0x06, ITEM_WKEY_STK, 0, 0, 0, items_df04_ef06, ITEMS_N(items_df04_ef06) },
	{ "DF04/EF08", 4, 0x08, ITEM_WKEY_STK, 0, 1, 0, items_df04_ef08, ITEMS_N(items_df04_ef08) },
};

int items_file_parse(const char *name, struct item_file *out)
{
	int hi, lo, sfi, df;

	if (!name || strlen(name) != 9)
		return SSC_EBADITEM;
	for (size_t i = 0; i < ITEMS_N(items_files); i++) {
		if (strcasecmp(name, items_files[i].name) == 0) {
			*out = items_files[i];
			return 0;
		}
	}
	/* DF01-DF03 and DF05: selectable, layouts not in v1 (spec §12.4): any EF by SFI. */
	if (strncasecmp(name, "DF0", 3) != 0 || strncasecmp(name + 4, "/EF", 3) != 0)
		return SSC_EBADITEM;
	df = name[3] - '0';
	if (df != 1 && df != 2 && df != 3 && df != 5)
		return SSC_EBADITEM;
	hi = hex_digit(name[7]);
	lo = hex_digit(name[8]);
	if (hi < 0 || lo < 0)
		return SSC_EBADITEM;
	sfi = hi << 4 | lo;
	if (sfi < 0x01 || sfi > 0x1E)
		return SSC_EBADITEM;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "DF%02d/EF%02X", df, (unsigned)sfi);
	out->df = (uint8_t)df;
	out->sfi = (uint8_t)sfi;
	out->wkey = ITEM_WKEY_STK;
	out->generic = 1;
	return 0;
}

int items_parse_tag(const char *s, uint8_t *tag)
{
	int hi, lo;

	if (!s || strlen(s) != 2)
		return SSC_EBADITEM;
	hi = hex_digit(s[0]);
	lo = hex_digit(s[1]);
	if (hi < 0 || lo < 0)
		return SSC_EBADITEM;
	*tag = (uint8_t)(hi << 4 | lo);
	return 0;
}

int items_find(const struct item_file *f, uint8_t tag, struct item_def *out)
{
	if (f->generic) {
		/* Tags 00 and FF cannot identify a record (filler bytes). */
		if (tag == 0x00 || tag == 0xFF)
			return SSC_EBADITEM;
		*out = (struct item_def){ tag, 0, 0, 255, ITEM_FMT_B, 0, "item" };
		return 0;
	}
	for (size_t i = 0; i < f->n_items; i++) {
		if (f->items[i].tag == tag) {
			*out = f->items[i];
			return 0;
		}
	}
	return SSC_EBADITEM;
}

const struct config_key *items_write_key(const struct config *cfg, const struct item_file *f)
{
	switch (f->wkey) {
	case ITEM_WKEY_SSSE:
		return &cfg->key_write_ssse;
	case ITEM_WKEY_EF0D:
		return &cfg->key_write_ef0d;
	case ITEM_WKEY_STK:
		return &cfg->key_stk;
	default:
		return NULL;
	}
}

/* BCD nibbles to digits, dropping trailing F nibbles; any other non-digit is an error. */
static int items_bcd(const uint8_t *v, size_t len, char *out, size_t cap)
{
	size_t nd = 2 * len, n = 0;

	while (nd > 0 && ((v[(nd - 1) / 2] >> ((nd - 1) % 2 ? 0 : 4)) & 0x0F) == 0x0F)
		nd--;
	if (nd + 1 > cap)
		return SSC_ELIMIT;
	for (size_t i = 0; i < nd; i++) {
		uint8_t d = (v[i / 2] >> (i % 2 ? 0 : 4)) & 0x0F;

		if (d > 9)
			return SSC_EBADCARDDATA;
		out[n++] = (char)('0' + d);
	}
	out[n] = '\0';
	return (int)n;
}

static int items_date_ok(const char *s)
{
	int m = (s[4] - '0') * 10 + (s[5] - '0');
	int d = (s[6] - '0') * 10 + (s[7] - '0');

	return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/*
 * A date to write: 8 digits naming a day of the Gregorian calendar from 1900 on (20240230 and
 * 20230229 are no days). Reads accept what items_date_ok does, so that a card with an odd date can
 * still be served; writes put only real dates on a card.
 */
static int items_date_real(const char *s)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (strlen(s) < 8 || strspn(s, "0123456789") < 8)
		return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[4] - '0') * 10 + (s[5] - '0');
	d = (s[6] - '0') * 10 + (s[7] - '0');
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1900 || m < 1 || m > 12 || d < 1)
		return 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

int items_check_card_number(const char *s, size_t len)
{
	static const int w[8] = { 3, 7, 9, 10, 5, 8, 4, 2 };
	int sum = 0, r;
	char want;

	if (len != 9)
		return SSC_EVALUE;
	for (int i = 0; i < 8; i++) {
		int c;

		if (s[i] >= '0' && s[i] <= '9')
			c = s[i] - '0';
		else if (s[i] >= 'A' && s[i] <= 'Z')
			c = s[i] - 'A' + 10;
		else
			return SSC_EVALUE;
		sum += c * w[i];
	}
	r = 11 - sum % 11;
	want = r == 10 ? 'X' : r == 11 ? '0' : (char)('0' + r);
	return s[8] == want ? 0 : SSC_EVALUE;
}

int items_check_ssn(const char *s, size_t len)
{
	static const int w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 };
	static const char check[] = "10X98765432";
	int sum = 0;

	if (len != 18)
		return SSC_EVALUE;
	for (int i = 0; i < 17; i++) {
		if (s[i] < '0' || s[i] > '9')
			return SSC_EVALUE;
		sum += (s[i] - '0') * w[i];
	}
	return s[17] == check[sum % 11] ? 0 : SSC_EVALUE;
}

/*
 * The first control character of UTF-8 text (C0, DEL or C1: U+0000..U+001F, U+007F..U+009F), as
 * a code point, or -1: no item holds one, and a control character in a name or a number is a
 * client's encoding fault that would otherwise reach the card unseen.
 */
static long items_control_char(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7F)
			return *p;
		if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			return p[1];
	}
	return -1;
}

static int items_bad(const struct item_file *f, const struct item_def *it, const char *why,
		     struct ssc_diag *diag)
{
	return ssc_diag_set(diag, SSC_EBADCARDDATA, "%s item %02X (%s): %s", f->name, it->tag,
			    it->label, why);
}

int items_decode(const struct item_file *f, const struct item_def *it, const uint8_t *v,
		 size_t len, char *text, size_t cap, struct ssc_diag *diag)
{
	size_t at = 0;
	int n;

	if (cap == 0)
		return SSC_ELIMIT;
	text[0] = '\0';
	if (len > it->len)
		return items_bad(f, it, "longer than the item", diag);
	switch (it->fmt) {
	case ITEM_FMT_CN:
		n = items_bcd(v, len, text, cap);
		if (n == SSC_EBADCARDDATA)
			return items_bad(f, it, "not BCD digits", diag);
		return n;
	case ITEM_FMT_DATE:
		n = items_bcd(v, len, text, cap);
		if (n == SSC_EBADCARDDATA || (n != 0 && n != 8) || (n == 8 && !items_date_ok(text))) {
			text[0] = '\0';
			return items_bad(f, it, "not a YYYYMMDD date", diag);
		}
		return n;
	case ITEM_FMT_AN:
		/* Only 00 and FF are padding: an ASCII 'F' may be the second byte of a character. */
		while (len > 0 && (v[len - 1] == 0x00 || v[len - 1] == 0xFF))
			len--;
		n = gb18030_to_utf8(v, len, text, cap, &at);
		if (n == SSC_EBADCARDDATA) {
			char why[80];

			snprintf(why, sizeof(why), "not GB 18030 text (the bytes from offset %zu form no "
				 "character)", at);
			return items_bad(f, it, why, diag);
		}
		if (n >= 0 && (it->checks & ITEM_CHECK_CARDNO) &&
		    items_check_card_number(text, (size_t)n)) {
			text[0] = '\0';
			return items_bad(f, it, "check character is wrong", diag);
		}
		return n;
	case ITEM_FMT_B:
		return hex_encode(v, len, text, cap, HEX_UPPER);
	default:
		return SSC_EINVAL;
	}
}

/*
 * The fields of a DF04/EF08 transaction record (§12.4), decoded and encoded as items of their own
 * (the record's items are whole-record; these name its parts in messages).
 */
static const struct item_file txn_file = { "DF04/EF08", 4, 0x08, ITEM_WKEY_STK, 0, 1, 0, NULL, 0 };
static const struct item_def txn_time = { 0x40, 1, 1, 7, ITEM_FMT_CN, 0, "交易时间 time" };
static const struct item_def txn_inst = { 0x40, 1, 1, 12, ITEM_FMT_AN, 0,
					  "医疗机构编号 institution" };
static const struct item_def txn_serial = { 0x40, 1, 1, 20, ITEM_FMT_AN, 0,
					    "结算流水号 settlement number" };

static uint32_t items_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int items_decode_txn(const uint8_t *v, size_t len, struct item_txn *t, struct ssc_diag *diag)
{
	int n;

	memset(t, 0, sizeof(*t));
	if (len != 0x33)
		return items_bad(&txn_file, &items_df04_ef08[0], "record is not 51 bytes", diag);
	n = items_decode(&txn_file, &txn_time, v, 7, t->time, sizeof(t->time), diag);
	if (n < 0)
		return n;
	if (n != 14 || !items_date_ok(t->time))
		return items_bad(&txn_file, &txn_time, "not a YYYYMMDDhhmmss time", diag);
	n = items_decode(&txn_file, &txn_inst, v + 7, 12, t->institution, sizeof(t->institution),
			 diag);
	if (n < 0)
		return n;
	n = items_decode(&txn_file, &txn_serial, v + 19, 20, t->settlement, sizeof(t->settlement),
			 diag);
	if (n < 0)
		return n;
	t->total = items_be32(v + 39);
	t->personal_account = items_be32(v + 43);
	t->pooled = items_be32(v + 47);
	return 0;
}

static int items_value_err(const struct item_file *f, const struct item_def *it, const char *why,
			   struct ssc_diag *diag)
{
	return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): %s", f->name, it->tag, it->label,
			    why);
}

/* The value's text checks before it is converted: control characters, then it->checks. */
static int items_text_check(const struct item_file *f, const struct item_def *it,
			    const char *text, struct ssc_diag *diag)
{
	size_t tl = strlen(text);
	long cc = items_control_char(text);

	if (cc >= 0)
		return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): contains a control "
				    "character (U+%04lX)", f->name, it->tag, it->label, cc);
	if ((it->checks & ITEM_CHECK_CARDNO) && items_check_card_number(text, tl))
		return items_value_err(f, it, "not a card number with a valid check character",
				       diag);
	if ((it->checks & ITEM_CHECK_SSN) && items_check_ssn(text, tl))
		return items_value_err(f, it, tl == 18 && strspn(text, "0123456789") >= 17 ?
				       "the check character is wrong (GB 11643)" :
				       "expected 18 characters: 17 digits and a check character "
				       "(0-9 or X)", diag);
	if ((it->checks & ITEM_CHECK_SEX) && (tl != 1 || !strchr("0129", text[0])))
		return items_value_err(f, it, "expected \"0\", \"1\" (male), \"2\" (female) or "
				       "\"9\" (GB/T 2261.1)", diag);
	return 0;
}

int items_encode(const struct item_file *f, const struct item_def *it, const char *text,
		 uint8_t *out, size_t cap, struct ssc_diag *diag)
{
	size_t tl = strlen(text), nb, need = 0;
	int n;

	switch (it->fmt) {
	case ITEM_FMT_DATE:
		if (tl != 8 || strspn(text, "0123456789") != 8)
			return items_value_err(f, it, "expected a date YYYYMMDD (8 digits)", diag);
		if (!items_date_real(text))
			return items_value_err(f, it, "not a calendar date (YYYYMMDD, from 1900)", diag);
		__attribute__((fallthrough));   /* encoded as the digits it is */
	case ITEM_FMT_CN:
		if (strspn(text, "0123456789") != tl)
			return items_value_err(f, it, "digits only", diag);
		nb = (tl + 1) / 2;
		if ((it->checks & ITEM_EXACT) && tl != 2 * (size_t)it->len)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): expected exactly "
					    "%u digits, this value has %zu", f->name, it->tag,
					    it->label, 2 * (unsigned)it->len, tl);
		if (nb > it->len || nb > cap)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): too long: at most "
					    "%u digits, this value has %zu", f->name, it->tag,
					    it->label, 2 * (unsigned)it->len, tl);
		memset(out, 0xFF, nb);
		for (size_t i = 0; i < tl; i++) {
			uint8_t d = (uint8_t)(text[i] - '0');

			out[i / 2] = i % 2 ? (uint8_t)((out[i / 2] & 0xF0) | d)
					   : (uint8_t)((d << 4) | 0x0F);
		}
		return (int)nb;
	case ITEM_FMT_AN:
		n = items_text_check(f, it, text, diag);
		if (n < 0)
			return n;
		n = gb18030_from_utf8(text, out, cap < it->len ? cap : it->len, &need);
		if (n == SSC_ELIMIT && need <= it->len)   /* fits the item, not the caller's buffer */
			return ssc_diag_set(diag, SSC_EINVAL, "%s item %02X (%s): the value takes %zu "
					    "bytes, the buffer holds %zu", f->name, it->tag, it->label,
					    need, cap);
		if (n == SSC_ELIMIT && (it->checks & ITEM_EXACT))
			n = (int)need;   /* said below, with the length it must have */
		else if (n == SSC_ELIMIT)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): too long: at most %u "
					    "bytes in GB 18030, this value takes %zu", f->name, it->tag,
					    it->label, (unsigned)it->len, need);
		if (n < 0)
			return items_value_err(f, it, "not valid UTF-8 text", diag);
		if ((it->checks & ITEM_EXACT) && (size_t)n != it->len)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): expected exactly %u "
					    "byte%s in GB 18030, this value takes %d", f->name, it->tag,
					    it->label, (unsigned)it->len, it->len == 1 ? "" : "s", n);
		return n;
	case ITEM_FMT_B:
		if (tl % 2)
			return items_value_err(f, it, "expected hex digits in pairs (whole bytes)",
					       diag);
		if ((it->checks & ITEM_EXACT) && tl / 2 != it->len)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): expected exactly %u "
					    "hex digits (%u byte%s)", f->name, it->tag, it->label,
					    2 * (unsigned)it->len, (unsigned)it->len,
					    it->len == 1 ? "" : "s");
		if (tl / 2 > it->len || tl / 2 > cap)
			return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): too long: at most %u "
					    "hex digits (%u bytes)", f->name, it->tag, it->label,
					    2 * (unsigned)it->len, (unsigned)it->len);
		if (hex_decode(text, tl, out, cap) < 0)
			return items_value_err(f, it, "not hex", diag);
		return (int)(tl / 2);
	default:
		return ssc_diag_set(diag, SSC_EUNSUPPORTED, "%s item %02X is not writable as text",
				    f->name, it->tag);
	}
}

int items_encode_name(const struct item_file *f, const char *text, uint8_t *name, size_t *name_len,
		      uint8_t *ext, size_t *ext_len, struct item_def *ext_def, struct ssc_diag *diag)
{
	struct item_def it09, it4e;
	uint8_t all[64];
	size_t need = 0, cut;
	int n, rc = 0;

	if (items_find(f, 0x09, &it09) || items_find(f, 0x4E, &it4e) ||
	    !(it09.checks & ITEM_NAME) || !(it4e.checks & ITEM_NAME_EXT))
		return SSC_EINVAL;
	if (text[0] == '\0')
		return items_value_err(f, &it09, "a name must not be empty", diag);
	n = items_text_check(f, &it09, text, diag);
	if (n < 0)
		return n;
	n = gb18030_from_utf8(text, all, (size_t)it09.len + it4e.len, &need);
	if (n == SSC_ELIMIT)
		return ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): too long: a name holds at "
				    "most %u bytes in GB 18030 (%u in 09, %u in 4E), this one takes %zu",
				    f->name, it09.tag, it09.label, (unsigned)(it09.len + it4e.len),
				    (unsigned)it09.len, (unsigned)it4e.len, need);
	if (n < 0)
		return items_value_err(f, &it09, "not valid UTF-8 text", diag);
	if (memchr(all, 0, (size_t)n)) {
		rc = items_value_err(f, &it09, "contains a NUL character", diag);
		goto out;
	}
	/* 09 takes whole characters only, so that each record is text on its own. */
	cut = gb18030_prefix(all, (size_t)n, it09.len);
	if ((size_t)n - cut > it4e.len) {
		rc = ssc_diag_set(diag, SSC_EVALUE, "%s item %02X (%s): too long: %u bytes in "
				  "GB 18030, but cut between whole characters 09 takes %zu of its %u "
				  "and the %zu left exceed 4E's %u", f->name, it09.tag, it09.label,
				  (unsigned)n, cut, (unsigned)it09.len, (size_t)n - cut,
				  (unsigned)it4e.len);
		goto out;
	}
	memcpy(name, all, cut);
	*name_len = cut;
	memcpy(ext, all + cut, (size_t)n - cut);
	*ext_len = (size_t)n - cut;
	*ext_def = it4e;
out:
	OPENSSL_cleanse(all, sizeof(all));
	return rc;
}

int items_pad(const struct item_file *f, const struct item_def *it, uint8_t *buf, size_t len,
	      size_t reclen, struct ssc_diag *diag)
{
	uint8_t fill = it->fmt == ITEM_FMT_CN || it->fmt == ITEM_FMT_DATE ? 0xFF : 0x00;

	if (len > reclen)
		return items_value_err(f, it, "longer than the card's record", diag);
	memset(buf + len, fill, reclen - len);
	return (int)reclen;
}

static void items_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int items_encode_txn(const struct item_txn *t, uint8_t *out, size_t cap, struct ssc_diag *diag)
{
	const char *tm = t->time;
	int n;

	if (cap < ITEM_TXN_LEN)
		return SSC_EINVAL;
	if (strlen(tm) != 14 || strspn(tm, "0123456789") != 14 || !items_date_real(tm) ||
	    (tm[8] - '0') * 10 + (tm[9] - '0') > 23 || (tm[10] - '0') * 10 + (tm[11] - '0') > 59 ||
	    (tm[12] - '0') * 10 + (tm[13] - '0') > 59)
		return items_value_err(&txn_file, &txn_time, "expected YYYYMMDDhhmmss", diag);
	n = items_encode(&txn_file, &txn_time, tm, out, 7, diag);
	if (n != 7)
		return n < 0 ? n : items_value_err(&txn_file, &txn_time, "expected YYYYMMDDhhmmss",
						   diag);
	n = items_encode(&txn_file, &txn_inst, t->institution, out + 7, 12, diag);
	if (n < 0)
		return n;
	memset(out + 7 + n, 0x00, (size_t)(12 - n));
	if (t->settlement[0] == '\0')
		return items_value_err(&txn_file, &txn_serial, "must not be empty", diag);
	n = items_encode(&txn_file, &txn_serial, t->settlement, out + 19, 20, diag);
	if (n < 0)
		return n;
	memset(out + 19 + n, 0x00, (size_t)(20 - n));
	items_put_be32(out + 39, t->total);
	items_put_be32(out + 43, t->personal_account);
	items_put_be32(out + 47, t->pooled);
	return ITEM_TXN_LEN;
}
