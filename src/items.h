/*
 * This file contains the card's data dictionary as a table: which files the API may name
 * ("SSSE/EF06", "DF04/EF05"), their SFI, DF and write key, and their items (tag, record number,
 * length, format), with the decoding of card bytes into API values (spec §2.2–2.4, §12.7, §12.9)
 * and the encoding the writes of a later issue check before any APDU.
 */
#ifndef SSC_ITEMS_H
#define SSC_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sscard/error.h"

enum item_fmt {
	ITEM_FMT_CN = 0,  /* BCD digits, right-padded with F nibbles: drop them */
	ITEM_FMT_DATE,    /* cn 4: YYYYMMDD ("" when all F) */
	ITEM_FMT_AN,      /* GB 18030 text right-padded with 00: drop trailing 00 and FF bytes only */
	ITEM_FMT_B,       /* binary: upper-case hex */
	ITEM_FMT_TXN,     /* a DF04/EF08 transaction record (§12.7), see struct item_txn */
};

/* Which key protects writes to a file (spec §12.4). */
enum item_wkey { ITEM_WKEY_NONE = 0, ITEM_WKEY_SSSE, ITEM_WKEY_EF0D, ITEM_WKEY_STK };

#define ITEM_CHECK_CARDNO 0x1   /* the value is a card number with a check character (§2.6) */
#define ITEM_READONLY 0x2       /* issuer data naming the card: never written through the API */
#define ITEM_NAME 0x4           /* 姓名 (09): a write takes the whole name, 姓名扩展 the rest */
#define ITEM_NAME_EXT 0x8       /* 姓名扩展 (4E): written only as the rest of a name given to 09 */
#define ITEM_EXACT 0x10         /* a write fills the item: len bytes (cn: 2 * len digits) */
#define ITEM_CHECK_SSN 0x20     /* 17 digits and a GB 11643 check character (0-9, X) */
#define ITEM_CHECK_SEX 0x40     /* a GB/T 2261.1 code: 0, 1, 2 or 9 */

struct item_def {
	uint8_t tag;
	uint8_t rec;        /* record number on spec 2.00/3.00 cards */
	uint8_t rec_v1;     /* record number on spec 1.00 cards; 0 = no such item there */
	uint8_t len;        /* the record's value length, which is also the maximum */
	enum item_fmt fmt;
	unsigned checks;    /* ITEM_CHECK_* */
	const char *label;  /* "姓名 name": for messages and human output, never a value */
};

/* A file as the API names it; a value (copy it freely), pointing into static tables. */
struct item_file {
	char name[12];      /* canonical "SSSE/EF06" */
	uint8_t df;         /* 0 = SSSE itself; 1..5 = DF01..DF05 (AID D156000005 00..04) */
	uint8_t sfi;
	enum item_wkey wkey;
	uint8_t min_gen;    /* 3 for EF0D; 0 = any generation */
	uint8_t cyclic;     /* records by number, newest = record 1 (DF04/EF08) */
	uint8_t generic;    /* layout unknown in v1 (DF01-DF03, DF05): any tag, binary, by tag */
	const struct item_def *items;
	size_t n_items;
};

/* Largest decoded text of one item (UTF-8 of 50 GB 18030 bytes, hex of 255 bytes), with the NUL. */
#define ITEM_TEXT_MAX 512

/* A DF04/EF08 record, decoded. Amounts in fen. */
struct item_txn {
	char time[15];          /* YYYYMMDDhhmmss */
	char institution[40];   /* 医疗机构编号, UTF-8 */
	char settlement[64];    /* 结算流水号, UTF-8 */
	uint32_t total, personal_account, pooled;
};

/*
 * Parses a file name: "SSSE/EF05", "SSSE/EF06", "SSSE/EF0D", "DF04/EF05", "DF04/EF06",
 * "DF04/EF08", and the generic "DF01/EFxx" .. "DF03/EFxx", "DF05/EFxx" (xx 01..1E hex).
 * Case-insensitive; out->name is canonical upper case. Returns 0 or SSC_EBADITEM.
 */
int items_file_parse(const char *name, struct item_file *out);

/* Parses an item tag of exactly two hex digits ("08", "4e"). Returns 0 or SSC_EBADITEM. */
int items_parse_tag(const char *s, uint8_t *tag);

/*
 * Fills *out with the definition of tag in file f (a generic file accepts any tag: binary, by tag,
 * up to 255 bytes). Returns 0 or SSC_EBADITEM.
 */
int items_find(const struct item_file *f, uint8_t tag, struct item_def *out);

/* The key protecting writes to f, from cfg; NULL for none. */
const struct config_key *items_write_key(const struct config *cfg, const struct item_file *f);

/*
 * Decodes the value bytes of item it (of file f) into text (cap bytes, NUL-terminated) per
 * §12.9: cn drops trailing F nibbles, dates are YYYYMMDD, an drops trailing 00/FF and converts
 * GB 18030 to UTF-8 (text that is not GB 18030 is SSC_EBADCARDDATA, the message says at which
 * offset), binary is upper-case hex; applies it->checks. Returns the text length or
 * SSC_EBADCARDDATA (message names the file and item, never the value), SSC_ELIMIT (cap), or
 * SSC_EINVAL (it is a ITEM_FMT_TXN item).
 */
int items_decode(const struct item_file *f, const struct item_def *it, const uint8_t *v,
		 size_t len, char *text, size_t cap, struct ssc_diag *diag);

/* Decodes a §12.7 transaction record value (51 bytes). Returns 0 or SSC_EBADCARDDATA. */
int items_decode_txn(const uint8_t *v, size_t len, struct item_txn *t, struct ssc_diag *diag);

/*
 * Encodes the API value text of item it into the card's bytes (out, cap bytes) before any APDU is
 * sent: cn digits to BCD padded with F to whole bytes, dates (real days from 1900 on), an UTF-8
 * to GB 18030 (GBK's bytes wherever GBK has the character; no control characters), binary from
 * hex; checks the length against it->len, exactly for ITEM_EXACT items and as a maximum for the
 * others (the message says which, and the length), and it->checks. Returns the value length (the card pads
 * the rest of the record), SSC_EVALUE (message names the item) or SSC_EUNSUPPORTED (a
 * transaction record: not writable as text).
 */
int items_encode(const struct item_file *f, const struct item_def *it, const char *text,
		 uint8_t *out, size_t cap, struct ssc_diag *diag);

/* The length of a §12.7 transaction record value. */
#define ITEM_TXN_LEN 0x33

/*
 * Encodes a transaction record (§12.7) from its fields into out (cap >= ITEM_TXN_LEN): time as
 * cn7 (YYYYMMDDhhmmss, a calendar date and a clock time), institution an12 and settlement an20
 * (UTF-8 to GB 18030, padded with 00; the settlement number must not be empty: it names the record),
 * then the three amounts as 4-byte big-endian fen. Returns ITEM_TXN_LEN or SSC_EVALUE (the message
 * names the field, never its value).
 */
int items_encode_txn(const struct item_txn *t, uint8_t *out, size_t cap, struct ssc_diag *diag);

/*
 * Encodes a whole name (UTF-8, not empty) for 姓名 (09) and 姓名扩展 (4E) of f (SSSE/EF06): in
 * GB 18030, 09 takes the longest run of whole characters that fits its 30 bytes (name, *name_len)
 * and 4E the rest (ext, *ext_len, 0 when the name fits 09), so that reading 09 ‖ 4E gives the name
 * back and neither record ends or starts inside a character. name and ext hold at least 30 and 20
 * bytes; *ext_def receives 4E's definition. Returns 0, SSC_EVALUE (empty, or too long: the
 * message says the limits) or SSC_EINVAL (f has no such items).
 */
int items_encode_name(const struct item_file *f, const char *text, uint8_t *name, size_t *name_len,
		      uint8_t *ext, size_t *ext_len, struct item_def *ext_def, struct ssc_diag *diag);

/*
 * Pads an encoded value (len bytes in buf) to reclen bytes the way the card pads a shorter value
 * (spec §12.5): cn and dates with FF, an and binary with 00. Returns reclen, or SSC_EVALUE when
 * len > reclen (the message names the item).
 */
int items_pad(const struct item_file *f, const struct item_def *it, uint8_t *buf, size_t len,
	      size_t reclen, struct ssc_diag *diag);

/* Checks the check character of a 9-character card number (§2.6). Returns 0 or SSC_EVALUE. */
int items_check_card_number(const char *s, size_t len);

/*
 * Checks an 18-character 社会保障号码 (公民身份号码): 17 digits and the GB 11643 check character
 * (0-9 or an upper-case X). Returns 0 or SSC_EVALUE.
 */
int items_check_ssn(const char *s, size_t len);

#endif
