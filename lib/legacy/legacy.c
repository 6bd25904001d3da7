/*
 * This file contains the functions of libSSCardDriver.so (include/sscard/SSCardDriver.h): each
 * opens a libsscard connection, calls the daemon, and turns the answer into the standard's
 * strings and return codes with the codecs of legacy_codec.c. The one state kept between calls is
 * the HSM session of iReadCardBas_HSM_Step1/2, under a lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_codec.h"
#include "sscard/SSCardDriver.h"
#include "sscard/client.h"

/* One legacy call: its connection, the error text's buffer and the readers iType allows. */
struct call {
	struct sscard_client *c;
	struct sscard_error e;
	char *out;                   /* pOutInfo, or NULL */
	const char *readers[2];      /* in order of preference; NULL = the daemon's choice */
	int nreaders;
};

static pthread_mutex_t hsm_lock = PTHREAD_MUTEX_INITIALIZER;
static char *hsm_session;        /* the session of the last Step1, under hsm_lock */

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] ? v : NULL;
}

/* Writes the failure text for code into call->out (when there is one); returns code. */
static int fail(struct call *k, int code, const char *name, const char *msg)
{
	if (k->out)
		legacy_error_text(code, name, msg, k->out);
	return code;
}

/* The failure of a libsscard call (k->e filled). */
static int fail_e(struct call *k)
{
	return fail(k, legacy_code_of(&k->e), k->e.name, k->e.message);
}

/* Checks iType and the output buffer, connects. 0 or a failure (text written). */
static int begin(struct call *k, int iType, char *out)
{
	const char *contact = env("SSCARD_READER"), *contactless = env("SSCARD_CONTACTLESS_READER");
	const char *t = env("SSCARD_TIMEOUT_MS");
	int timeout = t ? atoi(t) : SSCARD_DEFAULT_TIMEOUT_MS;

	memset(k, 0, sizeof(*k));
	k->out = out;
	if (out)
		out[0] = '\0';
	if (timeout <= 0)
		timeout = SSCARD_DEFAULT_TIMEOUT_MS;
	switch (iType) {
	case 1:
		k->readers[k->nreaders++] = contact;
		break;
	case 3:
		k->readers[k->nreaders++] = contact;
		if (contactless)
			k->readers[k->nreaders++] = contactless;
		break;
	case 2:
	case 4:
		if (!contactless)
			return fail(k, LEGACY_EUNSUPPORTED, "SSC_EUNSUPPORTED", "no contactless "
				    "reader is configured (SSCARD_CONTACTLESS_READER)");
		k->readers[k->nreaders++] = contactless;
		if (iType == 4)
			k->readers[k->nreaders++] = contact;
		break;
	default:
		return fail(k, LEGACY_EPARAM, "SSC_EINVAL", "iType must be 1, 2, 3 or 4");
	}
	if (sscard_connect(NULL, timeout, &k->c, &k->e) != 0)
		return fail_e(k);
	sscard_set_timeout(k->c, timeout);
	return 0;
}

static void end(struct call *k)
{
	sscard_close(k->c);
	k->c = NULL;
}

/* Calls method with params (borrowed; "reader" is set per try) on the readers of iType in turn:
 * the next one is tried when a reader holds no card. */
static int call_readers(struct call *k, const char *method, json_t *params, json_t **result)
{
	int rc = SSC_EINVAL;

	for (int i = 0; i < k->nreaders; i++) {
		if (k->readers[i])
			json_object_set_new(params, "reader", json_string(k->readers[i]));
		else
			json_object_del(params, "reader");
		rc = sscard_call(k->c, method, params, -1, result, &k->e);
		if (rc != SSC_ENOCARD)
			break;
	}
	return rc;
}

/* Writes UTF-8 text into out as GB18030; −42 when it does not fit (text written). */
static int put_gb(struct call *k, const char *utf8)
{
	int n = legacy_to_gb(utf8, k->out, LEGACY_OUT_MAX);

	if (n == SSC_ELIMIT)
		return fail(k, LEGACY_ELENGTH, "SSC_ELIMIT", "the result is longer than the "
			    "1024-byte output buffer");
	if (n < 0)
		return fail(k, LEGACY_EDATA, "SSC_EVALUE", "the result is not valid text");
	return 0;
}

/* A result object's string member key (borrowed), NULL when absent. */
static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

long iReadCardBas(int iType, char *pOutInfo)
{
	struct call k;
	json_t *params, *r = NULL;
	int rc;

	if (!pOutInfo)
		return LEGACY_EPARAM;
	rc = begin(&k, iType, pOutInfo);
	if (rc < 0)
		return rc;
	params = json_object();
	rc = call_readers(&k, "card.read_basic", params, &r);
	json_decref(params);
	if (rc < 0)
		rc = fail_e(&k);
	else if (!str(r, "standard"))
		rc = fail(&k, LEGACY_ECONNECT, "SSC_EPROTO", "the answer has no standard string");
	else
		rc = put_gb(&k, str(r, "standard"));
	json_decref(r);
	end(&k);
	return rc;
}

/* Reads 卡识别码 and 卡号 and compares them with pCardInfo's (card_id upper-case hex). Also makes
 * the card prove itself genuine when auth is set. 0 or a failure (text written). */
static int check_card(struct call *k, const char *card_id, const char *card_number, int auth)
{
	json_t *params = json_pack("{s:s, s:[s,s]}", "file", "SSSE/EF05", "items", "01", "07");
	json_t *r = NULL, *items;
	const char *id, *num;
	int rc;

	if (auth)
		json_object_set_new(params, "internal_auth", json_true());
	rc = call_readers(k, "card.read_items", params, &r);
	json_decref(params);
	if (rc < 0)
		return fail_e(k);
	items = json_object_get(r, "items");
	id = str(items, "01");
	num = str(items, "07");
	if (!id || !num || strcasecmp(id, card_id) != 0 || strcmp(num, card_number) != 0)
		rc = fail(k, LEGACY_EMISMATCH, "SSC_EVALUE", "pCardInfo does not name the card in "
			  "the reader");
	json_decref(r);
	return rc;
}

/* Appends one value in its legacy form to the UTF-8 text t (cap bytes), then '|'.
 * 0 or SSC_ELIMIT. */
static int append_value(char *t, size_t cap, json_t *v, int record)
{
	size_t n = strlen(t);
	char *dump = NULL;
	const char *s = "";
	int w;

	if (json_is_array(v)) {
		/* DF04/EF08 tag 40: record NN (1 = newest), the newest without a number. */
		v = json_array_get(v, record > 0 ? (size_t)record - 1 : 0);
		if (json_is_object(v)) {
			w = snprintf(t + n, cap - n, "%s,%s,%s,%lld,%lld,%lld|", str(v, "time") ?
				     str(v, "time") : "", str(v, "institution") ?
				     str(v, "institution") : "", str(v, "settlement_no") ?
				     str(v, "settlement_no") : "",
				     (long long)json_integer_value(json_object_get(v, "total")),
				     (long long)json_integer_value(json_object_get(v,
								"personal_account")),
				     (long long)json_integer_value(json_object_get(v, "pooled")));
			return w < 0 || (size_t)w >= cap - n ? SSC_ELIMIT : 0;
		}
	}
	if (json_is_string(v))
		s = json_string_value(v);
	else if (v && !json_is_null(v))
		s = dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	w = snprintf(t + n, cap - n, "%s|", s ? s : "");
	free(dump);
	return w < 0 || (size_t)w >= cap - n ? SSC_ELIMIT : 0;
}

/* Parses pCardInfo and pFileAddr for iReadCard / iWriteCard. 0 or a failure (text written). */
static int parse_args(struct call *k, const char *pCardInfo, const char *pFileAddr,
		      char *card_id, char *card_number, struct legacy_addr *a)
{
	int rc = legacy_parse_cardinfo(pCardInfo, card_id, card_number);

	if (rc < 0)
		return fail(k, rc, rc == LEGACY_EPARAM ? "SSC_EINVAL" : "SSC_EVALUE",
			    "pCardInfo must be 卡识别码|卡号| (32 hex digits, 9 characters)");
	if (legacy_parse_addr(pFileAddr, a) < 0)
		return fail(k, LEGACY_EPARAM, "SSC_EINVAL", "pFileAddr is not of the form "
			    "[3F00]PATH|TAG|...|$ (docs/clients.md)");
	return 0;
}

long iReadCard(int iType, int iAuthType, char *pCardInfo, char *pFileAddr, char *pOutInfo)
{
	struct legacy_addr a;
	struct call k;
	char card_id[33], card_number[10], text[4 * LEGACY_OUT_MAX] = "";
	int rc;

	if (!pOutInfo)
		return LEGACY_EPARAM;
	pOutInfo[0] = '\0';
	k.out = pOutInfo;
	if (iAuthType != 0 && iAuthType != 1)
		return fail(&k, LEGACY_EPARAM, "SSC_EINVAL", "iAuthType must be 0 or 1");
	rc = parse_args(&k, pCardInfo, pFileAddr, card_id, card_number, &a);
	if (rc < 0)
		return rc;
	rc = begin(&k, iType, pOutInfo);
	if (rc < 0)
		return rc;
	rc = check_card(&k, card_id, card_number, iAuthType == 1);
	for (size_t g = 0; rc == 0 && g < a.ngroups; g++) {
		const struct legacy_group *grp = &a.groups[g];
		json_t *params = json_pack("{s:s, s:[]}", "file", grp->file, "items"), *r = NULL;
		json_t *items;

		/* Each tag once: the API refuses a repeated tag (40:01|40:02 reads 40 once). */
		for (size_t i = grp->first; i < grp->first + grp->count; i++) {
			int seen = 0;

			for (size_t j = grp->first; j < i; j++)
				seen |= strcmp(a.items[j].tag, a.items[i].tag) == 0;
			if (!seen)
				json_array_append_new(json_object_get(params, "items"),
						      json_string(a.items[i].tag));
		}
		rc = call_readers(&k, "card.read_items", params, &r);
		json_decref(params);
		if (rc < 0) {
			rc = fail_e(&k);
			break;
		}
		items = json_object_get(r, "items");
		for (size_t i = grp->first; rc == 0 && i < grp->first + grp->count; i++)
			if (append_value(text, sizeof(text), json_object_get(items, a.items[i].tag),
					 a.items[i].record) < 0)
				rc = fail(&k, LEGACY_ELENGTH, "SSC_ELIMIT", "the result is longer "
					  "than the 1024-byte output buffer");
		json_decref(r);
	}
	if (rc == 0)
		rc = put_gb(&k, text);
	end(&k);
	return rc;
}

/* The API's value for one legacy write value: a DF04/EF08 transaction from
 * "time,institution,settlement_no,total,personal_account,pooled", else the string. NULL when a
 * transaction is malformed. */
static json_t *write_value(const char *file, const char *tag, const char *v)
{
	char f[6][64];
	long long amount[3];
	int n = 0;
	const char *p = v;

	if (strcmp(file, "DF04/EF08") != 0 || strcmp(tag, "40") != 0)
		return json_string(v);
	while (n < 6) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len >= sizeof(f[0]))
			return NULL;
		memcpy(f[n], p, len);
		f[n++][len] = '\0';
		if (!comma)
			break;
		p = comma + 1;
	}
	if (n != 6 || strchr(p, ','))
		return NULL;
	for (int i = 0; i < 3; i++) {
		char *end;

		amount[i] = strtoll(f[3 + i], &end, 10);
		if (!f[3 + i][0] || *end)
			return NULL;
	}
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "time", f[0], "institution", f[1],
			 "settlement_no", f[2], "total", (json_int_t)amount[0],
			 "personal_account", (json_int_t)amount[1], "pooled", (json_int_t)amount[2]);
}

long iWriteCard(int iType, char *pCardInfo, char *pFileAddr, char *pWriteData, char *pOutInfo)
{
	struct legacy_addr a;
	struct call k;
	char card_id[33], card_number[10], data[4 * LEGACY_OUT_MAX];
	char *values[LEGACY_ITEMS_MAX];
	size_t written = 0;
	int rc, n;

	if (!pOutInfo)
		return LEGACY_EPARAM;
	pOutInfo[0] = '\0';
	k.out = pOutInfo;
	rc = parse_args(&k, pCardInfo, pFileAddr, card_id, card_number, &a);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < a.nitems; i++)
		if (a.items[i].record)
			return fail(&k, LEGACY_EPARAM, "SSC_EINVAL", "a record number (TAG:NN) "
				    "cannot be written: DF04/EF08 is appended to");
	if (!pWriteData || legacy_from_gb(pWriteData, data, sizeof(data)) < 0)
		return fail(&k, LEGACY_EDATA, "SSC_EVALUE", "pWriteData is not GB18030 text");
	n = legacy_split_values(data, values, LEGACY_ITEMS_MAX);
	if (n < 0 || (size_t)n != a.nitems)
		return fail(&k, LEGACY_EPARAM, "SSC_EINVAL", "pWriteData must have one '|'-ended "
			    "value per item of pFileAddr");
	rc = begin(&k, iType, pOutInfo);
	if (rc < 0)
		return rc;
	rc = check_card(&k, card_id, card_number, 0);
	for (size_t g = 0; rc == 0 && g < a.ngroups; g++) {
		const struct legacy_group *grp = &a.groups[g];
		json_t *items = json_object(), *params;

		for (size_t i = grp->first; rc == 0 && i < grp->first + grp->count; i++) {
			json_t *v = write_value(grp->file, a.items[i].tag, values[i]);

			if (!v)
				rc = fail(&k, LEGACY_EDATA, "SSC_EVALUE", "a DF04/EF08 transaction is "
					  "time,institution,settlement_no,total,personal_account,"
					  "pooled");
			else
				json_object_set_new(items, a.items[i].tag, v);
		}
		if (rc < 0) {
			json_decref(items);
			break;
		}
		params = json_pack("{s:s, s:o}", "file", grp->file, "items", items);
		rc = call_readers(&k, "card.write_items", params, NULL);
		json_decref(params);
		if (rc < 0) {
			char msg[sizeof(k.e.message) + 64];

			snprintf(msg, sizeof(msg), "%s (groups written before this one: %zu)",
				 k.e.message, written);
			rc = fail(&k, legacy_code_of(&k.e), k.e.name, msg);
			break;
		}
		written++;
	}
	explicit_bzero(data, sizeof(data));
	end(&k);
	return rc;
}

/* The PIN functions: no PIN pad yet (spec §5 reads the PIN from one). At once, nothing sent. */
static long no_pin_pad(char *pOutInfo)
{
	struct call k = { .out = pOutInfo };

	if (pOutInfo)
		pOutInfo[0] = '\0';
	return fail(&k, LEGACY_EUNSUPPORTED, "SSC_EUNSUPPORTED", "this desk has no PIN pad: "
		    "the PIN functions need one; use card.verify_pin etc. of the sscard API");
}

long iVerifyPIN(int iType, char *pOutInfo)
{
	return no_pin_pad(pOutInfo);
}

long iChangePIN(int iType, char *pOutInfo)
{
	return no_pin_pad(pOutInfo);
}

long iReloadPIN(int iType, char *pCardInfo, char *pOutInfo)
{
	return no_pin_pad(pOutInfo);
}

long iUnblockPIN(int iType, char *pCardInfo, char *pOutInfo)
{
	return no_pin_pad(pOutInfo);
}

/* Whether a reader.list entry's member key is the string want. */
static int is(json_t *entry, const char *key, const char *want)
{
	const char *v = str(entry, key);

	return v && strcmp(v, want) == 0;
}

/*
 * The reader.list entry iGetReaderInfo reports the serial of: SSCARD_READER's, else the last that
 * holds a user card (as before), else the first that is no PSAM's (a reader without a card).
 * NULL when there is none.
 */
static json_t *info_reader(json_t *list)
{
	const char *want = env("SSCARD_READER");
	json_t *v, *user = NULL, *other = NULL;
	size_t i;

	json_array_foreach(list, i, v) {
		if (want) {
			if (is(v, "id", want))
				return v;
		} else if (is(v, "role", "user")) {
			user = v;
		} else if (!other && !is(v, "role", "psam")) {
			other = v;
		}
	}
	return user ? user : other;
}

/*
 * The desk's terminal number from reader.list, as each PSAM's probe read it: the first PSAM's
 * (in the list's order) that has one, "000000000000" without a PSAM. Returns 1 when the list
 * cannot tell which number a card read would report: no PSAM (a key server may serve), or PSAMs
 * whose numbers differ or are unknown (the daemon takes the PSAM of the card's algorithm).
 */
static int info_terminal(json_t *list, char term[13])
{
	json_t *v;
	size_t i;
	int psams = 0, have = 0, unsure = 0;

	memcpy(term, "000000000000", 13);
	json_array_foreach(list, i, v) {
		const char *t = str(v, "terminal_number");
		int ok = t && strlen(t) == 12;

		if (!json_is_true(json_object_get(v, "card")) || !is(v, "role", "psam"))
			continue;
		psams++;
		if (ok && !have) {
			memcpy(term, t, 13);
			have = 1;
		} else if (!ok || strcmp(t, term) != 0) {
			unsure = 1;
		}
	}
	return psams == 0 || unsure;
}

long iGetReaderInfo(char *pReaderSN, char *pPsamTermNo)
{
	struct call k;
	json_t *list, *user, *r = NULL, *b = NULL;
	const char *serial, *t;
	char term[13];
	int rc;

	if (!pReaderSN || !pPsamTermNo)
		return LEGACY_EPARAM;
	pReaderSN[0] = pPsamTermNo[0] = '\0';
	rc = begin(&k, 1, NULL);
	if (rc < 0)
		return rc;
	rc = sscard_call(k.c, "reader.list", NULL, -1, &r, &k.e);
	if (rc < 0) {
		rc = legacy_code_of(&k.e);
		goto out;
	}
	list = json_object_get(r, "readers");
	user = json_is_array(list) ? info_reader(list) : NULL;
	if (!user) {
		rc = LEGACY_ECONNECT;   /* no reader for the user card (or SSCARD_READER unknown) */
		goto out;
	}
	serial = str(user, "serial") ? str(user, "serial") : "";
	/* Only when reader.list cannot tell, and a user card is in: what the card read reports. */
	if (info_terminal(list, term) && is(user, "role", "user")) {
		json_t *params = json_pack("{s:s}", "reader", str(user, "id"));

		if (sscard_call(k.c, "card.read_basic", params, -1, &b, &k.e) == 0 &&
		    (t = str(b, "terminal_number")) && strlen(t) == 12)
			memcpy(term, t, 13);
		json_decref(params);
	}
	if (strlen(serial) >= LEGACY_OUT_MAX) {
		rc = LEGACY_ECONNECT;
		goto out;
	}
	snprintf(pReaderSN, LEGACY_OUT_MAX, "%s", serial);
	snprintf(pPsamTermNo, LEGACY_OUT_MAX, "%s", term);
	rc = 0;
out:
	json_decref(b);
	json_decref(r);
	end(&k);
	return rc;
}

/* A printable-ASCII string from the daemon into out, or −42 / a protocol failure. */
static int put_ascii(struct call *k, const char *s)
{
	if (!s)
		return fail(k, LEGACY_ECONNECT, "SSC_EPROTO", "the answer lacks a field");
	if (strlen(s) >= LEGACY_OUT_MAX)
		return fail(k, LEGACY_ELENGTH, "SSC_ELIMIT", "the result is longer than the "
			    "1024-byte output buffer");
	for (const char *p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7E)
			return fail(k, LEGACY_ECONNECT, "SSC_EPROTO", "the step-1 string is not "
				    "ASCII");
	memcpy(k->out, s, strlen(s) + 1);
	return 0;
}

long iReadCardBas_HSM_Step1(int iType, char *pOutInfo)
{
	struct call k;
	json_t *params, *r = NULL;
	const char *session;
	int rc;

	if (!pOutInfo)
		return LEGACY_EPARAM;
	rc = begin(&k, iType, pOutInfo);
	if (rc < 0)
		return rc;
	params = json_object();
	rc = call_readers(&k, "card.hsm_step1", params, &r);
	json_decref(params);
	if (rc < 0) {
		rc = fail_e(&k);
		goto out;
	}
	session = str(r, "session");
	if (!session) {
		rc = fail(&k, LEGACY_ECONNECT, "SSC_EPROTO", "the answer has no session");
		goto out;
	}
	rc = put_ascii(&k, str(r, "step1"));
	if (rc == 0) {
		char *copy = strdup(session);

		if (!copy) {
			rc = fail(&k, LEGACY_ECONNECT, "SSC_ENOMEM", "out of memory");
			goto out;
		}
		pthread_mutex_lock(&hsm_lock);
		free(hsm_session);
		hsm_session = copy;
		pthread_mutex_unlock(&hsm_lock);
	}
out:
	json_decref(r);
	end(&k);
	return rc;
}

long iReadCardBas_HSM_Step2(char *pKey, char *pOutInfo)
{
	struct call k;
	json_t *params, *r = NULL;
	char *session;
	int rc;

	if (!pOutInfo)
		return LEGACY_EPARAM;
	pOutInfo[0] = '\0';
	k.out = pOutInfo;
	/* Any Step2, right or wrong, ends the session (spec §13.1). */
	pthread_mutex_lock(&hsm_lock);
	session = hsm_session;
	hsm_session = NULL;
	pthread_mutex_unlock(&hsm_lock);
	if (!session)
		return fail(&k, LEGACY_ENOSESSION, "SSC_ENOTFOUND", "no session: call "
			    "iReadCardBas_HSM_Step1 first");
	if (legacy_check_hsm_key(pKey) < 0) {
		free(session);
		return fail(&k, LEGACY_EDATA, "SSC_EVALUE", "pKey must be 内部认证结果|外部认证数据| "
			    "(16 or 32 hex digits, then empty or 32 hex digits)");
	}
	rc = begin(&k, 1, pOutInfo);
	if (rc < 0) {
		free(session);
		return rc;
	}
	params = json_pack("{s:s, s:s}", "session", session, "key", pKey);
	rc = sscard_call(k.c, "card.hsm_step2", params, -1, &r, &k.e);
	json_decref(params);
	free(session);
	if (rc < 0)
		rc = fail_e(&k);
	else if (!str(r, "standard"))
		rc = fail(&k, LEGACY_ECONNECT, "SSC_EPROTO", "the answer has no standard string");
	else
		rc = put_gb(&k, str(r, "standard"));
	json_decref(r);
	end(&k);
	return rc;
}
