/*
 * This file contains the codecs of libSSCardDriver's legacy strings (spec §5): GB18030 text in
 * and out, the pFileAddr grammar, pCardInfo, the |-separated value lists, the HSM key string, and
 * the mapping of sscard errors to the standard return codes with their Chinese wording. No I/O:
 * every function is pure and thread-safe, and is unit-tested on its own
 * (tests/clients/test_legacy_codec.c).
 */
#ifndef SSCARD_LEGACY_CODEC_H
#define SSCARD_LEGACY_CODEC_H

#include <stddef.h>

#include "sscard/client.h"

#define LEGACY_OUT_MAX 1024      /* bytes of every caller-owned output buffer, NUL included */
#define LEGACY_GROUPS_MAX 8      /* file groups in one pFileAddr */
#define LEGACY_ITEMS_MAX 64      /* items in one pFileAddr (the API's limit per file) */

/* Standard return codes (spec §5) the library itself produces. */
enum legacy_code {
	LEGACY_OK = 0,
	LEGACY_ENOCARD = -2,
	LEGACY_ENOANSWER = -4,
	LEGACY_ECONNECT = -11,
	LEGACY_ENOSESSION = -12,
	LEGACY_EUNSUPPORTED = -13,
	LEGACY_EPARAM = -14,
	LEGACY_ECARDIDFORMAT = -20,
	LEGACY_EMISMATCH = -22,
	LEGACY_EDATA = -23,
	LEGACY_EAUTHLEVEL = -24,
	LEGACY_ELENGTH = -42,
};

/* One item of a pFileAddr: its tag ("09", upper-case hex) and, for TAG:NN, the record number. */
struct legacy_item {
	char tag[3];
	int record;              /* 1..99 for TAG:NN, else 0 */
};

/* One group of a pFileAddr: the API's file name and its items (a slice of legacy_addr.items). */
struct legacy_group {
	char file[12];           /* "SSSE/EF06", "DF04/EF08" */
	size_t first, count;
};

struct legacy_addr {
	struct legacy_group groups[LEGACY_GROUPS_MAX];
	size_t ngroups;
	struct legacy_item items[LEGACY_ITEMS_MAX];
	size_t nitems;
};

/*
 * Parses pFileAddr (ASCII): one or more groups, each
 *     [3F00|MF] PATH '|' ITEM '|' { ITEM '|' } '$'
 * PATH is EF05, EF06 or EF0D (SSSE) or DFxxEFyy (x, y hex digits); ITEM is two hex digits, or
 * two hex digits ':' two decimal digits (a record number, 01..99, of DF04/EF08's tag 40 only).
 * Letters in either case. Returns 0 and fills *a, or LEGACY_EPARAM for anything else (NULL,
 * empty, a missing '$', too many groups or items, an unknown path form).
 */
int legacy_parse_addr(const char *s, struct legacy_addr *a);

/*
 * Parses pCardInfo "卡识别码|卡号|": 32 hex digits (stored upper-case in card_id, 33 bytes) and
 * 9 characters [0-9A-Z] (card_number, 10 bytes). Returns 0, LEGACY_EPARAM (NULL or not two
 * '|'-ended fields), LEGACY_ECARDIDFORMAT (the first field is not 32 hex digits) or LEGACY_EDATA
 * (the card number is not 9 digits/capitals).
 */
int legacy_parse_cardinfo(const char *s, char *card_id, char *card_number);

/*
 * Splits a UTF-8 value list "v1|v2|…|" in place (each value ends with '|'): stores at most max
 * pointers into s in values. Returns the count, or LEGACY_EPARAM (a value not ended by '|', or
 * more than max).
 */
int legacy_split_values(char *s, char **values, size_t max);

/*
 * Checks the HSM key string of spec §13.1, "内部认证结果|外部认证数据|": 16 or 32 hex digits, then
 * empty or 32 hex digits. Returns 0 or LEGACY_EDATA.
 */
int legacy_check_hsm_key(const char *s);

/*
 * Converts UTF-8 to GB18030 (GBK's bytes for every character GBK has) into out (cap bytes,
 * NUL-terminated). Returns the length, SSC_ELIMIT (does not fit) or SSC_EVALUE (not UTF-8).
 */
int legacy_to_gb(const char *utf8, char *out, size_t cap);

/* GB18030 (and so GBK) to UTF-8, as above; SSC_EVALUE for bytes that are not GB18030. */
int legacy_from_gb(const char *gb, char *out, size_t cap);

/* The standard return code of an sscard error (e as libsscard filled it). Never 0. */
int legacy_code_of(const struct sscard_error *e);

/* The standard's Chinese wording of a code (UTF-8), e.g. -2 → "无卡"; a card status word's
 * code −(SW1·256+SW2) gets "卡片返回错误" (with its meaning where known). Never NULL. */
const char *legacy_wording(int code);

/*
 * Writes the error text for code into out (LEGACY_OUT_MAX bytes, GB18030, NUL-terminated):
 * the wording, then " (NAME: message)" with the stable error name and libsscard's or the
 * daemon's message (English; characters outside printable ASCII become '?'), cut to fit.
 * For a card status word the wording is followed by " SW=XXXX". Returns code.
 */
int legacy_error_text(int code, const char *name, const char *message, char *out);

#endif
