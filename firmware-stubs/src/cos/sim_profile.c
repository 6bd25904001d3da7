/*
 * This file contains the profile loader: it reads one JSON profile (a card + PSAM set), checks
 * every field strictly (types, lengths, check characters, the ATR, the 卡识别码 and its MAC) and
 * stores the card items already encoded. Every error names the file and the field. The value
 * checks and conversions that know no JSON are in sim_text.c.
 */
#include "sim_profile.h"
#include "sim_text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define PROFILE_FORMAT "sscard-sim-profile/1"
#define PROFILE_MAX_BYTES (1024 * 1024)
#define PATH_MAX_LEN 96

/* NULL-terminated: ld_known() walks it for psam.key_refs. */
static const char *const key_names[SIM_KEY_COUNT + 1] = {
	"ext_auth", "ef0d", "read_auth", "internal", "stk", "pin_reload", "puk", NULL,
};
/* Defaults of §12.4. */
static const uint8_t default_key_id[SIM_KEY_COUNT] = { 0x04, 0x0D, 0x0A, 0x00, 0x05, 0x06, 0x07 };
static const uint8_t default_usage[SIM_KEY_COUNT] = { 0x48, 0x48, 0x48, 0x47, 0x46, 0x44, 0x43 };
static const uint8_t default_index[SIM_KEY_COUNT] = { 0x12, 0x13, 0x1A, 0x11, 0x15, 0x16, 0x17 };
static const uint8_t rid[5] = { 0xD1, 0x56, 0x00, 0x00, 0x05 };

const char *sim_profile_key_name(enum sim_key_slot slot)
{
	return (unsigned)slot < SIM_KEY_COUNT ? key_names[slot] : "?";
}

/* The loader's context: where messages go and what they are prefixed with. */
struct ld {
	const char *name;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int ld_fail(struct ld *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->err == NULL || c->errlen == 0)
		return -1;
	n = snprintf(c->err, c->errlen, "%s: %s%s", c->name, path, path[0] ? ": " : "");
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void ld_path(char out[PATH_MAX_LEN], const char *prefix, const char *key)
{
	/* Field paths are short; a truncated one is still a useful message. */
	if (snprintf(out, PATH_MAX_LEN, "%s%s%s", prefix, prefix[0] ? "." : "", key) >= PATH_MAX_LEN)
		out[PATH_MAX_LEN - 1] = 0;
}

/*
 * The DF04 fields' earlier names and the API's names that replaced them (docs/api.md), so that a
 * profile written with an old name gets a message that says what to write instead.
 */
static const char *const renamed_fields[][2] = {
	{ "hospital", "institution" },
	{ "serial", "settlement_no" },
	{ "account", "personal_account" },
};

/* Refuses any member of obj not in allowed (NULL-terminated): typos must not pass silently. */
static int ld_known(struct ld *c, json_t *obj, const char *prefix, const char *const *allowed)
{
	const char *k;
	json_t *v;
	char path[PATH_MAX_LEN];
	size_t i, r;

	json_object_foreach(obj, k, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (allowed[i] != NULL)
			continue;
		ld_path(path, prefix, k);
		for (r = 0; r < sizeof(renamed_fields) / sizeof(renamed_fields[0]); r++) {
			const char *now = renamed_fields[r][1];

			if (strcmp(k, renamed_fields[r][0]) != 0)
				continue;
			for (i = 0; allowed[i] != NULL; i++)
				if (strcmp(now, allowed[i]) == 0)
					return ld_fail(c, path, "unknown field (renamed: \"%s\", "
						       "as in the API)", now);
		}
		return ld_fail(c, path, "unknown field");
	}
	return 0;
}

/* Returns 1 and sets *out when present, 0 when absent and optional, -1 on error. */
static int ld_member(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		     json_t **out)
{
	char path[PATH_MAX_LEN];

	*out = json_object_get(obj, key);
	if (*out != NULL)
		return 1;
	if (!required)
		return 0;
	ld_path(path, prefix, key);
	return ld_fail(c, path, "missing");
}

static int ld_object(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		     json_t **out)
{
	char path[PATH_MAX_LEN];
	int rc = ld_member(c, obj, prefix, key, required, out);

	if (rc == 1 && !json_is_object(*out)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected an object");
	}
	return rc;
}

static int ld_string(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		     const char **out)
{
	char path[PATH_MAX_LEN];
	json_t *v;
	int rc = ld_member(c, obj, prefix, key, required, &v);

	*out = NULL;
	if (rc != 1)
		return rc;
	if (!json_is_string(v)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected a string");
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "contains a NUL character");
	}
	*out = json_string_value(v);
	return 1;
}

static int ld_bool(struct ld *c, json_t *obj, const char *prefix, const char *key, bool *out)
{
	char path[PATH_MAX_LEN];
	json_t *v;
	int rc = ld_member(c, obj, prefix, key, false, &v);

	if (rc != 1)
		return rc;
	if (!json_is_boolean(v)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected true or false");
	}
	*out = json_is_true(v);
	return 1;
}

/* An integer in [min, max]; absent: *out = def (or an error when required). */
static int ld_int(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		  long long def, long long min, long long max, long long *out)
{
	char path[PATH_MAX_LEN];
	json_t *v;
	int rc = ld_member(c, obj, prefix, key, required, &v);

	*out = def;
	if (rc != 1)
		return rc;
	ld_path(path, prefix, key);
	if (!json_is_integer(v))
		return ld_fail(c, path, "expected an integer");
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return ld_fail(c, path, "%lld is out of range %lld..%lld", (long long)json_integer_value(v),
			       min, max);
	*out = json_integer_value(v);
	return 1;
}

static int ld_hex(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		  uint8_t *out, size_t n)
{
	char path[PATH_MAX_LEN];
	const char *s;
	int rc = ld_string(c, obj, prefix, key, required, &s);

	if (rc != 1)
		return rc;
	if (sim_text_unhex(s, out, n) != (int)n) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected %zu hex digits", 2 * n);
	}
	return 1;
}

/* Exactly n decimal digits; the string is returned in *out. */
static int ld_digits(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		     size_t n, const char **out)
{
	char path[PATH_MAX_LEN];
	int rc = ld_string(c, obj, prefix, key, required, out);

	if (rc != 1)
		return rc;
	if (!sim_text_all_digits(*out, n)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected %zu decimal digits", n);
	}
	return 1;
}

/* A cn field of exactly ndigits digits, into nbytes BCD. */
static int ld_cn(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		 size_t ndigits, uint8_t *out, size_t nbytes)
{
	const char *s;
	int rc = ld_digits(c, obj, prefix, key, required, ndigits, &s);

	if (rc == 1)
		sim_text_bcd(s, out, nbytes);
	return rc;
}

/* A date YYYYMMDD into 4 BCD bytes; *str gets the text. */
static int ld_date(struct ld *c, json_t *obj, const char *prefix, const char *key, uint8_t out[4],
		   const char **str)
{
	char path[PATH_MAX_LEN];
	int rc = ld_string(c, obj, prefix, key, true, str);

	if (rc != 1)
		return rc;
	if (!sim_text_date_ok(*str)) {
		ld_path(path, prefix, key);
		return ld_fail(c, path, "expected a date YYYYMMDD");
	}
	sim_text_bcd(*str, out, 4);
	return 1;
}

/* An an field of printable ASCII, at most maxlen characters, padded with 00. */
static int ld_an(struct ld *c, json_t *obj, const char *prefix, const char *key, bool required,
		 uint8_t *out, size_t maxlen)
{
	char path[PATH_MAX_LEN];
	const char *s;
	size_t i, len;
	int rc = ld_string(c, obj, prefix, key, required, &s);

	if (rc != 1)
		return rc;
	ld_path(path, prefix, key);
	len = strlen(s);
	if (len > maxlen)
		return ld_fail(c, path, "longer than %zu characters", maxlen);
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7E)
			return ld_fail(c, path, "expected printable ASCII");
	memset(out, 0, maxlen);
	memcpy(out, s, len);
	return 1;
}

/*
 * Parses the ATR: TS, T0, the interface bytes TA..TD, K historical bytes, and TCK when a protocol
 * other than T=0 is indicated (checked). The chip serial is the last 8 historical bytes.
 */
static int ld_atr(struct ld *c, json_t *obj, const char *prefix, uint8_t *atr, size_t *atr_len,
		  uint8_t *chip_serial)
{
	char path[PATH_MAX_LEN];
	const char *s;
	size_t n, i, k, hist;
	uint8_t y, x = 0;
	bool tck = false;
	int rc = ld_string(c, obj, prefix, "atr", true, &s);

	if (rc != 1)
		return rc;
	ld_path(path, prefix, "atr");
	n = strlen(s) / 2;
	if (strlen(s) % 2 != 0 || n < 2 || n > SIM_ATR_MAX || sim_text_unhex(s, atr, n) != (int)n)
		return ld_fail(c, path, "expected 4 to %d hex digits", 2 * SIM_ATR_MAX);
	if (atr[0] != 0x3B && atr[0] != 0x3F)
		return ld_fail(c, path, "TS must be 3B or 3F");
	y = atr[1] >> 4;
	k = atr[1] & 0x0F;
	i = 2;
	for (;;) {
		uint8_t td;

		i += (size_t)((y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1));
		if (!(y & 8))
			break;
		if (i >= n)
			return ld_fail(c, path, "interface bytes run past the end");
		td = atr[i++];
		if ((td & 0x0F) != 0)
			tck = true;
		y = td >> 4;
	}
	hist = i;
	if (hist + k + (tck ? 1 : 0) != n)
		return ld_fail(c, path, "length %zu does not match T0/TDi (%zu historical bytes%s)", n, k,
			       tck ? " and TCK" : "");
	if (chip_serial != NULL && k < 8)
		return ld_fail(c, path, "needs at least 8 historical bytes (the chip serial), has %zu", k);
	if (tck) {
		for (i = 1; i < n; i++)
			x ^= atr[i];
		if (x != 0)
			return ld_fail(c, path, "TCK is wrong");
	}
	*atr_len = n;
	if (chip_serial != NULL)
		memcpy(chip_serial, atr + hist + k - 8, 8);
	return 1;
}

static int ld_algorithm(struct ld *c, json_t *obj, const char *prefix, enum sim_alg *alg)
{
	char path[PATH_MAX_LEN];
	const char *s;
	int rc = ld_string(c, obj, prefix, "algorithm", true, &s);

	if (rc != 1)
		return rc;
	if (strcmp(s, "des") == 0)
		*alg = SIM_ALG_DES;
	else if (strcmp(s, "sm4") == 0)
		*alg = SIM_ALG_SM4;
	else {
		ld_path(path, prefix, "algorithm");
		return ld_fail(c, path, "expected \"des\" or \"sm4\"");
	}
	return 1;
}

static int ld_holder(struct ld *c, json_t *card, struct sim_card_profile *cp)
{
	static const char *const known[] = { "ssn", "name", "sex", "nation", "birth_place",
					     "birth_date", NULL };
	json_t *h;
	const char *s;
	uint8_t gb[64];
	int n;
	size_t maxname = cp->generation == 1 ? 30 : 50, cut;

	if (ld_object(c, card, "card", "holder", true, &h) < 0 || ld_known(c, h, "card.holder", known))
		return -1;
	if (ld_string(c, h, "card.holder", "ssn", true, &s) < 0)
		return -1;
	if (strlen(s) != 18 || !sim_text_digits(s, 17) ||
	    !(s[17] == 'X' || (s[17] >= '0' && s[17] <= '9')))
		return ld_fail(c, "card.holder.ssn", "expected 17 digits and a check character (0-9 or X)");
	if (sim_text_ssn_check(s) != s[17])
		return ld_fail(c, "card.holder.ssn", "check character is %c, expected %c", s[17],
			       sim_text_ssn_check(s));
	memcpy(cp->ssn, s, 18);

	if (ld_string(c, h, "card.holder", "name", true, &s) < 0)
		return -1;
	n = sim_text_gb18030(s, gb, sizeof(gb));
	if (n < 0)
		return ld_fail(c, "card.holder.name", "not valid UTF-8, or longer than %zu bytes in "
			       "GB 18030", maxname);
	if (n == 0 || (size_t)n > maxname)
		return ld_fail(c, "card.holder.name", "%d bytes in GB 18030, expected 1 to %zu", n,
			       maxname);
	if (memchr(gb, 0, (size_t)n) != NULL)
		return ld_fail(c, "card.holder.name", "contains a NUL character");
	/*
	 * 姓名 takes the longest run of whole characters that fits its 30 bytes, 姓名扩展 the rest;
	 * the reader concatenates them (§2.3). No character is cut in two, so each record is text.
	 */
	cut = sim_text_gb18030_whole(gb, (size_t)n, 30);
	if ((size_t)n - cut > sizeof(cp->name_ext))
		return ld_fail(c, "card.holder.name", "%d bytes in GB 18030: cut between whole "
			       "characters, 姓名 takes %zu and the %zu left exceed 姓名扩展's 20", n, cut,
			       (size_t)n - cut);
	memset(cp->name, 0, sizeof(cp->name));
	memset(cp->name_ext, 0, sizeof(cp->name_ext));
	memcpy(cp->name, gb, cut);
	memcpy(cp->name_ext, gb + cut, (size_t)n - cut);

	if (ld_an(c, h, "card.holder", "sex", true, cp->sex, 1) < 0)
		return -1;
	if (strchr("0129", cp->sex[0]) == NULL || cp->sex[0] == 0)
		return ld_fail(c, "card.holder.sex", "expected \"0\", \"1\", \"2\" or \"9\" (GB/T 2261.1)");
	if (ld_cn(c, h, "card.holder", "nation", true, 2, cp->nation, 1) < 0 ||
	    ld_cn(c, h, "card.holder", "birth_place", true, 6, cp->birth_place, 3) < 0 ||
	    ld_date(c, h, "card.holder", "birth_date", cp->birth_date, &s) < 0)
		return -1;
	return 0;
}

static int ld_txn(struct ld *c, json_t *t, const char *prefix, uint8_t rec[SIM_TXN_LEN])
{
	static const char *const known[] = { "time", "institution", "settlement_no", "total",
					     "personal_account", "pooled", NULL };
	static const char *const amounts[3] = { "total", "personal_account", "pooled" };
	char path[PATH_MAX_LEN];
	const char *s;
	long long v;
	int i;

	if (!json_is_object(t))
		return ld_fail(c, prefix, "expected an object");
	if (ld_known(c, t, prefix, known) < 0 || ld_digits(c, t, prefix, "time", true, 14, &s) < 0)
		return -1;
	{
		char date[9];
		int hh = (s[8] - '0') * 10 + (s[9] - '0'), mm = (s[10] - '0') * 10 + (s[11] - '0'),
		    ss = (s[12] - '0') * 10 + (s[13] - '0');

		memcpy(date, s, 8);
		date[8] = 0;
		if (!sim_text_date_ok(date) || hh > 23 || mm > 59 || ss > 59) {
			ld_path(path, prefix, "time");
			return ld_fail(c, path, "expected YYYYMMDDhhmmss");
		}
	}
	sim_text_bcd(s, rec, 7);
	if (ld_an(c, t, prefix, "institution", true, rec + 7, 12) < 0 ||
	    ld_an(c, t, prefix, "settlement_no", true, rec + 19, 20) < 0)
		return -1;
	for (i = 0; i < 3; i++) {
		uint8_t *p = rec + 39 + 4 * i;

		if (ld_int(c, t, prefix, amounts[i], true, 0, 0, 0xFFFFFFFFLL, &v) < 0)
			return -1;
		p[0] = (uint8_t)(v >> 24);
		p[1] = (uint8_t)(v >> 16);
		p[2] = (uint8_t)(v >> 8);
		p[3] = (uint8_t)v;
	}
	return 0;
}

static int ld_medical(struct ld *c, json_t *card, struct sim_card_profile *cp)
{
	static const char *const known[] = { "region", "category", "person_no", "institution",
					     "relocated", "offline_pending", "transactions",
					     "transaction_capacity", NULL };
	char path[PATH_MAX_LEN];
	json_t *m, *list, *t;
	bool offline = false;
	long long cap;
	size_t i;

	if (ld_object(c, card, "card", "medical", true, &m) < 0 ||
	    ld_known(c, m, "card.medical", known) < 0 ||
	    ld_cn(c, m, "card.medical", "region", true, 6, cp->med_region, 3) < 0 ||
	    ld_an(c, m, "card.medical", "category", true, cp->med_category, 2) < 0 ||
	    ld_an(c, m, "card.medical", "person_no", true, cp->med_person_no, 20) < 0 ||
	    ld_an(c, m, "card.medical", "institution", true, cp->med_institution, 12) < 0 ||
	    ld_an(c, m, "card.medical", "relocated", true, cp->med_relocated, 1) < 0 ||
	    ld_bool(c, m, "card.medical", "offline_pending", &offline) < 0 ||
	    ld_int(c, m, "card.medical", "transaction_capacity", false, 10, 1, SIM_TXN_MAX, &cap) < 0)
		return -1;
	cp->med_offline[0] = offline ? 0x01 : 0x00;
	cp->txn_cap = (int)cap;
	cp->txn_count = 0;
	if (ld_member(c, m, "card.medical", "transactions", false, &list) < 0)
		return -1;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return ld_fail(c, "card.medical.transactions", "expected an array (newest first)");
	if (json_array_size(list) > (size_t)cp->txn_cap)
		return ld_fail(c, "card.medical.transactions", "%zu transactions, capacity is %d",
			       json_array_size(list), cp->txn_cap);
	json_array_foreach(list, i, t) {
		snprintf(path, sizeof(path), "card.medical.transactions[%zu]", i);
		if (ld_txn(c, t, path, cp->txn[i]) < 0)
			return -1;
		cp->txn_count++;
	}
	return 0;
}

static int ld_keys(struct ld *c, json_t *card, struct sim_card_profile *cp)
{
	static const char *const known[] = { "ext_auth", "ef0d", "read_auth", "internal", "stk",
					     "pin_reload", "puk", "issuer", NULL };
	char path[PATH_MAX_LEN];
	json_t *k, *ids, *v;
	int i, j;

	if (ld_object(c, card, "card", "keys", true, &k) < 0 || ld_known(c, k, "card.keys", known) < 0)
		return -1;
	for (i = 0; i < SIM_KEY_COUNT; i++)
		if (ld_hex(c, k, "card.keys", key_names[i], true, cp->master[i], SIM_KEY_LEN) < 0)
			return -1;
	if (ld_hex(c, k, "card.keys", "issuer", true, cp->issuer_key, SIM_KEY_LEN) < 0)
		return -1;

	memcpy(cp->key_id, default_key_id, sizeof(cp->key_id));
	if (ld_object(c, card, "card", "key_ids", false, &ids) < 0 ||
	    (ids != NULL && ld_known(c, ids, "card.key_ids", known) < 0))
		return -1;
	if (ids != NULL && json_object_get(ids, "issuer") != NULL)
		return ld_fail(c, "card.key_ids.issuer", "the issuer key has no card key id");
	for (i = 0; ids != NULL && i < SIM_KEY_COUNT; i++) {
		v = json_object_get(ids, key_names[i]);
		if (v != NULL && ld_hex(c, ids, "card.key_ids", key_names[i], true, &cp->key_id[i], 1) < 0)
			return -1;
	}
	for (i = 0; i < SIM_KEY_COUNT; i++)
		for (j = i + 1; j < SIM_KEY_COUNT; j++)
			if (cp->key_id[i] == cp->key_id[j]) {
				ld_path(path, "card.key_ids", key_names[j]);
				return ld_fail(c, path, "key id %02X is also %s's", cp->key_id[j],
					       key_names[i]);
			}
	return 0;
}

static int ld_quirks(struct ld *c, json_t *card, struct sim_quirks *q)
{
	static const char *const known[] = { "t0_get_response", "exact_le", "ef06_read_auth",
					     "omit_9f0c", "card_id_mac_bad", "wrong_keys",
					     "read_record_modes", NULL };
	json_t *o;
	const char *s;

	memset(q, 0, sizeof(*q));
	if (ld_object(c, card, "card", "quirks", false, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	if (ld_known(c, o, "card.quirks", known) < 0 ||
	    ld_bool(c, o, "card.quirks", "t0_get_response", &q->t0_get_response) < 0 ||
	    ld_bool(c, o, "card.quirks", "exact_le", &q->exact_le) < 0 ||
	    ld_bool(c, o, "card.quirks", "ef06_read_auth", &q->ef06_read_auth) < 0 ||
	    ld_bool(c, o, "card.quirks", "omit_9f0c", &q->omit_9f0c) < 0 ||
	    ld_bool(c, o, "card.quirks", "card_id_mac_bad", &q->card_id_mac_bad) < 0 ||
	    ld_bool(c, o, "card.quirks", "wrong_keys", &q->wrong_keys) < 0 ||
	    ld_string(c, o, "card.quirks", "read_record_modes", false, &s) < 0)
		return -1;
	if (s == NULL || strcmp(s, "both") == 0)
		q->read_modes = SIM_RMODES_BOTH;
	else if (strcmp(s, "number") == 0)
		q->read_modes = SIM_RMODES_NUMBER;
	else if (strcmp(s, "tag") == 0)
		q->read_modes = SIM_RMODES_TAG;
	else
		return ld_fail(c, "card.quirks.read_record_modes", "expected \"both\", \"number\" or \"tag\"");
	return 0;
}

/* The 卡识别码 (§2.5): checked against region, RID, chip serial and the issuer-key MAC, or built. */
static int ld_card_id(struct ld *c, json_t *card, struct sim_card_profile *cp, const char *region)
{
	uint8_t body[16], mac[4];
	int rc;

	sim_text_bcd(region, body, 3);
	memcpy(body + 3, rid, 5);
	memcpy(body + 8, cp->chip_serial + 4, 4);
	if (sim_crypto_mac(SIM_ALG_DES, cp->issuer_key, (const uint8_t[8]){ 0 }, body, 12, mac) != 0)
		return ld_fail(c, "card.card_id", "cannot compute the MAC (OpenSSL failed)");
	rc = ld_hex(c, card, "card", "card_id", false, cp->card_id, 16);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		/* Absent: built here, with the MAC inverted when the profile wants it wrong. */
		memcpy(cp->card_id, body, 12);
		for (int i = 0; i < 4; i++)
			cp->card_id[12 + i] = cp->q.card_id_mac_bad ? (uint8_t)~mac[i] : mac[i];
		return 0;
	}
	if (memcmp(cp->card_id, body, 3) != 0)
		return ld_fail(c, "card.card_id", "bytes 0..2 are %02X%02X%02X, expected the region %s",
			       cp->card_id[0], cp->card_id[1], cp->card_id[2], region);
	if (memcmp(cp->card_id + 3, rid, 5) != 0)
		return ld_fail(c, "card.card_id", "bytes 3..7 must be D156000005");
	if (memcmp(cp->card_id + 8, body + 8, 4) != 0)
		return ld_fail(c, "card.card_id",
			       "bytes 8..11 are %02X%02X%02X%02X, expected chip serial bytes 4..7 "
			       "%02X%02X%02X%02X (card.atr)",
			       cp->card_id[8], cp->card_id[9], cp->card_id[10], cp->card_id[11],
			       body[8], body[9], body[10], body[11]);
	if (!cp->q.card_id_mac_bad && memcmp(cp->card_id + 12, mac, 4) != 0)
		return ld_fail(c, "card.card_id", "MAC is %02X%02X%02X%02X, expected %02X%02X%02X%02X "
			       "(card.keys.issuer)", cp->card_id[12], cp->card_id[13], cp->card_id[14],
			       cp->card_id[15], mac[0], mac[1], mac[2], mac[3]);
	if (cp->q.card_id_mac_bad && memcmp(cp->card_id + 12, mac, 4) == 0)
		return ld_fail(c, "card.card_id", "MAC is correct but card.quirks.card_id_mac_bad is set");
	return 0;
}

static int ld_pin(struct ld *c, json_t *card, struct sim_card_profile *cp)
{
	const char *pin;
	long long v;
	size_t n;

	if (ld_int(c, card, "card", "pin_min_digits", false, 4, 1, 12, &v) < 0)
		return -1;
	cp->pin_min = (int)v;
	if (ld_int(c, card, "card", "pin_max_digits", false, 12, cp->pin_min, 12, &v) < 0)
		return -1;
	cp->pin_max = (int)v;
	if (ld_string(c, card, "card", "pin", true, &pin) < 0)
		return -1;
	n = strlen(pin);
	if (n < (size_t)cp->pin_min || n > (size_t)cp->pin_max || !sim_text_all_digits(pin, n))
		return ld_fail(c, "card.pin", "expected %d to %d decimal digits", cp->pin_min,
			       cp->pin_max);
	memcpy(cp->pin, pin, n + 1);
	if (ld_int(c, card, "card", "pin_tries", false, 3, 1, 15, &v) < 0)
		return -1;
	cp->pin_tries = (int)v;
	if (ld_int(c, card, "card", "pin_tries_left", false, cp->pin_tries, 0, cp->pin_tries, &v) < 0)
		return -1;
	cp->pin_tries_left = (int)v;
	if (ld_int(c, card, "card", "key_tries", false, 5, 1, 15, &v) < 0)
		return -1;
	cp->key_tries = (int)v;
	return 0;
}

static int ld_card(struct ld *c, json_t *root, struct sim_card_profile *cp)
{
	static const char *const known[] = {
		"atr", "spec_version", "algorithm", "region", "card_id", "card_type", "init_org",
		"issue_date", "expiry_date", "card_number", "holder", "ef0d", "medical", "pin",
		"pin_tries", "pin_tries_left", "pin_min_digits", "pin_max_digits", "key_tries", "keys",
		"key_ids", "quirks", NULL };
	static const char *const ef0d_known[] = { "person_id", "first_region", NULL };
	json_t *card, *ef0d;
	const char *s, *region, *issue, *expiry;

	if (ld_object(c, root, "", "card", true, &card) < 0 || ld_known(c, card, "card", known) < 0)
		return -1;
	if (ld_atr(c, card, "card", cp->atr, &cp->atr_len, cp->chip_serial) < 0)
		return -1;
	if (ld_string(c, card, "card", "spec_version", true, &s) < 0)
		return -1;
	if (strlen(s) != 4 || s[0] < '1' || s[0] > '3' || s[1] != '.' || !sim_text_digits(s + 2, 2))
		return ld_fail(c, "card.spec_version", "expected \"1.00\", \"2.00\" or \"3.00\"");
	memcpy(cp->spec_version, s, 4);
	cp->generation = s[0] - '0';
	if (ld_algorithm(c, card, "card", &cp->alg) < 0 ||
	    ld_digits(c, card, "card", "region", true, 6, &region) < 0)
		return -1;
	memcpy(cp->city_div, region, 6);
	cp->city_div[6] = 0x73;   /* "sx" (§12.2) */
	cp->city_div[7] = 0x78;
	if (ld_quirks(c, card, &cp->q) < 0 || ld_keys(c, card, cp) < 0 ||
	    ld_card_id(c, card, cp, region) < 0)
		return -1;
	if (ld_an(c, card, "card", "card_type", true, cp->card_type, 1) < 0 ||
	    ld_an(c, card, "card", "init_org", true, cp->init_org, 12) < 0 ||
	    ld_date(c, card, "card", "issue_date", cp->issue_date, &issue) < 0 ||
	    ld_date(c, card, "card", "expiry_date", cp->expiry_date, &expiry) < 0)
		return -1;
	if (strcmp(expiry, issue) <= 0)
		return ld_fail(c, "card.expiry_date", "not after card.issue_date");
	if (ld_string(c, card, "card", "card_number", true, &s) < 0)
		return -1;
	if (strlen(s) != 9 || sim_text_card_number_check(s) == 0 ||
	    !(s[8] == 'X' || (s[8] >= '0' && s[8] <= '9')))
		return ld_fail(c, "card.card_number", "expected 8 characters 0-9/A-Z and a check character");
	if (sim_text_card_number_check(s) != s[8])
		return ld_fail(c, "card.card_number", "check character is %c, expected %c", s[8],
			       sim_text_card_number_check(s));
	memcpy(cp->card_number, s, 9);
	if (ld_holder(c, card, cp) < 0 || ld_medical(c, card, cp) < 0 || ld_pin(c, card, cp) < 0)
		return -1;
	if (ld_object(c, card, "card", "ef0d", cp->generation == 3, &ef0d) < 0)
		return -1;
	if (ef0d != NULL && cp->generation != 3)
		return ld_fail(c, "card.ef0d", "only generation 3 (spec version 3.xx) cards have EF0D");
	if (ef0d != NULL &&
	    (ld_known(c, ef0d, "card.ef0d", ef0d_known) < 0 ||
	     ld_an(c, ef0d, "card.ef0d", "person_id", true, cp->person_id, 12) < 0 ||
	     ld_cn(c, ef0d, "card.ef0d", "first_region", true, 6, cp->first_region, 3) < 0))
		return -1;
	return 0;
}

static int ld_psam(struct ld *c, json_t *root, struct sim_psam_profile *pp)
{
	static const char *const known[] = { "atr", "algorithm", "terminal_number", "key_refs", NULL };
	char path[PATH_MAX_LEN];
	json_t *psam, *refs;
	uint8_t ref[2];
	int i, j, rc;

	if (ld_object(c, root, "", "psam", true, &psam) < 0 || ld_known(c, psam, "psam", known) < 0 ||
	    ld_atr(c, psam, "psam", pp->atr, &pp->atr_len, NULL) < 0 ||
	    ld_algorithm(c, psam, "psam", &pp->alg) < 0 ||
	    ld_cn(c, psam, "psam", "terminal_number", true, 12, pp->terminal, 6) < 0)
		return -1;
	memcpy(pp->usage, default_usage, sizeof(pp->usage));
	memcpy(pp->index, default_index, sizeof(pp->index));
	if (ld_object(c, psam, "psam", "key_refs", false, &refs) < 0)
		return -1;
	if (refs != NULL && ld_known(c, refs, "psam.key_refs", key_names) < 0)
		return -1;
	for (i = 0; refs != NULL && i < SIM_KEY_COUNT; i++) {
		rc = ld_hex(c, refs, "psam.key_refs", key_names[i], false, ref, 2);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			pp->usage[i] = ref[0];
			pp->index[i] = ref[1];
		}
	}
	for (i = 0; i < SIM_KEY_COUNT; i++)
		for (j = i + 1; j < SIM_KEY_COUNT; j++)
			if (pp->usage[i] == pp->usage[j] && pp->index[i] == pp->index[j]) {
				ld_path(path, "psam.key_refs", key_names[j]);
				return ld_fail(c, path, "usage/index %02X%02X is also %s's", pp->usage[j],
					       pp->index[j], key_names[i]);
			}
	return 0;
}

struct sim_profile *sim_profile_parse(const char *json, size_t len, const char *name, char *err,
				      size_t errlen)
{
	static const char *const known[] = { "format", "name", "description", "card", "psam", NULL };
	struct ld c = { .name = name != NULL ? name : "profile", .err = err, .errlen = errlen };
	struct sim_profile *p;
	json_error_t jerr;
	json_t *root;
	const char *s;
	size_t i;

	if (err != NULL && errlen > 0)
		err[0] = 0;
	if (json == NULL) {
		ld_fail(&c, "", "no text");
		return NULL;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		ld_fail(&c, "", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		ld_fail(&c, "", "out of memory");
		goto out_json;
	}
	if (!json_is_object(root)) {
		ld_fail(&c, "", "expected a JSON object");
		goto out_fail;
	}
	if (ld_known(&c, root, "", known) < 0 || ld_string(&c, root, "", "format", true, &s) < 0)
		goto out_fail;
	if (strcmp(s, PROFILE_FORMAT) != 0) {
		ld_fail(&c, "format", "expected \"%s\"", PROFILE_FORMAT);
		goto out_fail;
	}
	if (ld_string(&c, root, "", "name", true, &s) < 0)
		goto out_fail;
	for (i = 0; s[i] != 0; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_' || s[i] == '.'))
			break;
	if (i == 0 || s[i] != 0 || i > SIM_NAME_MAX) {
		ld_fail(&c, "name", "expected 1 to %d characters a-z 0-9 . _ -", SIM_NAME_MAX);
		goto out_fail;
	}
	memcpy(p->name, s, i + 1);
	if (ld_string(&c, root, "", "description", false, &s) < 0 || ld_card(&c, root, &p->card) < 0 ||
	    ld_psam(&c, root, &p->psam) < 0)
		goto out_fail;
	if (sim_crypto_sha256(json, len, p->digest) != 0) {
		ld_fail(&c, "", "SHA-256 failed");
		goto out_fail;
	}
	json_decref(root);
	return p;
out_fail:
	sim_profile_free(p);
out_json:
	json_decref(root);
	return NULL;
}

struct sim_profile *sim_profile_load(const char *path, char *err, size_t errlen)
{
	struct ld c = { .name = path != NULL ? path : "(null)", .err = err, .errlen = errlen };
	struct sim_profile *p = NULL;
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	if (path == NULL) {
		ld_fail(&c, "", "no path");
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ld_fail(&c, "", "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PROFILE_MAX_BYTES) {
		ld_fail(&c, "", "not a regular file of at most %d bytes", PROFILE_MAX_BYTES);
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		ld_fail(&c, "", "out of memory");
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != (size_t)st.st_size)
		ld_fail(&c, "", "short read");
	else
		p = sim_profile_parse(buf, got, path, err, errlen);
	free(buf);
out_close:
	close(fd);
	return p;
}

void sim_profile_free(struct sim_profile *p)
{
	if (p == NULL)
		return;
	sim_crypto_wipe(p, sizeof(*p));
	free(p);
}
