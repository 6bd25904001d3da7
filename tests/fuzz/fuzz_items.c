/*
 * This file contains the fuzz target of the card's data dictionary (src/items.c): decoding card
 * record values into API text for every item of every file (cn, dates, GB 18030 text, binary,
 * transaction records), the encoding of API text into card bytes that writes check, and the
 * parsers of file names, tags and card numbers. Output buffers are allocated at the exact
 * capacity the call is given, so that a write past it is caught by ASan.
 *
 * Input: byte 0 = mode (modulo 9: decode, encode, names, hex, card number, transaction record,
 * transaction encode from fields split at NULs, padding of an encoded value to a record length,
 * a name split between 姓名 and 姓名扩展),
 * byte 1 = which (file, item) pair, byte 2 = output capacity (0 = ITEM_TEXT_MAX); the rest is the
 * value (bytes for a decode, text for an encode or a name).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "hex.h"
#include "items.h"

#define PAIRS_MAX 96

struct pair {
	struct item_file f;
	struct item_def it;
};

static struct pair pairs[PAIRS_MAX];
static size_t n_pairs;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const files[] = { "SSSE/EF05", "SSSE/EF06", "SSSE/EF0D", "DF04/EF05",
					     "DF04/EF06", "DF04/EF08", "DF01/EF05", "DF03/EF1E" };

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct item_file f;

		if (items_file_parse(files[i], &f) != 0)
			abort();
		for (int tag = 0; tag < 256 && n_pairs < PAIRS_MAX; tag++) {
			/* A generic file takes any tag the same way: two of them are enough. */
			if (f.generic && tag != 0x01 && tag != 0x30)
				continue;
			if (items_find(&f, (uint8_t)tag, &pairs[n_pairs].it) == 0)
				pairs[n_pairs++].f = f;
		}
	}
	if (n_pairs == 0)
		abort();
	return 0;
}

/* The input's tail as a NUL-terminated string (embedded NULs end it early, as in C callers). */
static char *fuzz_text(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ssc_diag diag;
	const struct pair *pr;
	size_t cap;
	uint8_t mode;
	char *text, *out;
	int rc;

	if (size < 3)
		return 0;
	mode = data[0] % 9;
	pr = &pairs[data[1] % n_pairs];
	cap = data[2] == 0 ? ITEM_TEXT_MAX : data[2];
	data += 3;
	size -= 3;
	ssc_diag_init(&diag);

	switch (mode) {
	case 0:   /* card bytes -> API text */
		out = malloc(cap);
		if (!out)
			abort();
		if (pr->it.fmt == ITEM_FMT_TXN) {
			struct item_txn t;

			rc = items_decode_txn(data, size, &t, &diag);
			if (rc == 0 && (memchr(t.time, '\0', sizeof(t.time)) == NULL ||
					memchr(t.institution, '\0', sizeof(t.institution)) == NULL ||
					memchr(t.settlement, '\0', sizeof(t.settlement)) == NULL))
				abort();
		} else {
			rc = items_decode(&pr->f, &pr->it, data, size, out, cap, &diag);
			if (rc >= 0 && ((size_t)rc >= cap || out[rc] != '\0'))
				abort();   /* the text and its NUL fit in cap */
		}
		free(out);
		break;
	case 1:   /* API text -> card bytes */
		text = fuzz_text(data, size);
		out = malloc(cap);
		if (!out)
			abort();
		rc = items_encode(&pr->f, &pr->it, text, (uint8_t *)out, cap, &diag);
		if (rc > (int)cap || rc > (int)pr->it.len)
			abort();
		if (rc > 0) {
			/* What a write would send must decode again. */
			char back[ITEM_TEXT_MAX];

			(void)items_decode(&pr->f, &pr->it, (const uint8_t *)out, (size_t)rc, back,
					   sizeof(back), &diag);
		}
		free(out);
		free(text);
		break;
	case 2: { /* file names and tags, as the API receives them */
		struct item_file f;
		struct item_def it;
		uint8_t tag;

		text = fuzz_text(data, size);
		if (items_file_parse(text, &f) == 0) {
			if (memchr(f.name, '\0', sizeof(f.name)) == NULL)
				abort();
			(void)items_find(&f, 0x01, &it);
		}
		if (items_parse_tag(text, &tag) == 0)
			(void)items_find(&pr->f, tag, &it);
		free(text);
		break;
	}
	case 3:   /* hex of binary items (base/hex.c) */
		out = malloc(cap);
		if (!out)
			abort();
		rc = hex_encode(data, size, out, cap, HEX_UPPER);
		if (rc >= 0 && ((size_t)rc != 2 * size || out[rc] != '\0'))
			abort();
		free(out);
		break;
	case 4:   /* the card number's check character */
		(void)items_check_card_number((const char *)data, size);
		break;
	case 5: { /* a transaction record, whatever the pair */
		struct item_txn t;

		(void)items_decode_txn(data, size, &t, &diag);
		break;
	}
	case 6: { /* a transaction record from its fields, as card.write_items gets them */
		struct item_txn t;
		struct fuzz_in in = { data, size };
		const uint8_t *p;
		size_t l;
		uint8_t *rec = malloc(cap);

		if (!rec)
			abort();
		memset(&t, 0, sizeof(t));
		if (fuzz_chunk(&in, &p, &l) == 0)
			memcpy(t.time, p, l < sizeof(t.time) - 1 ? l : sizeof(t.time) - 1);
		if (fuzz_chunk(&in, &p, &l) == 0)
			memcpy(t.institution, p, l < sizeof(t.institution) - 1 ? l
								: sizeof(t.institution) - 1);
		if (fuzz_chunk(&in, &p, &l) == 0)
			memcpy(t.settlement, p, l < sizeof(t.settlement) - 1 ? l
							      : sizeof(t.settlement) - 1);
		t.total = (uint32_t)fuzz_byte(&in, 0) << 24 | fuzz_byte(&in, 0);
		t.personal_account = fuzz_byte(&in, 0);
		t.pooled = (uint32_t)fuzz_byte(&in, 0) << 8;
		rc = items_encode_txn(&t, rec, cap, &diag);
		if (rc >= 0) {
			struct item_txn back;

			if (rc != ITEM_TXN_LEN || cap < ITEM_TXN_LEN)
				abort();
			/* What a write sends must read back as the same record. */
			if (items_decode_txn(rec, (size_t)rc, &back, &diag) != 0 ||
			    back.total != t.total || back.pooled != t.pooled ||
			    back.personal_account != t.personal_account)
				abort();
		}
		free(rec);
		break;
	}
	case 8: { /* a name for 姓名 (09) and 姓名扩展 (4E), as card.write_items splits it */
		struct item_file f;
		struct item_def it09, it4e, ext_def;
		uint8_t name[30], ext[20];
		size_t name_len = 0, ext_len = 0;
		char back[ITEM_TEXT_MAX];

		if (items_file_parse("SSSE/EF06", &f) || items_find(&f, 0x09, &it09) ||
		    items_find(&f, 0x4E, &it4e))
			abort();
		text = fuzz_text(data, size);
		rc = items_encode_name(&f, text, name, &name_len, ext, &ext_len, &ext_def, &diag);
		if (rc == 0) {
			/* Each record holds whole characters: both decode on their own. */
			if (name_len > sizeof(name) || ext_len > sizeof(ext) ||
			    items_decode(&f, &it09, name, name_len, back, sizeof(back), &diag) < 0 ||
			    items_decode(&f, &it4e, ext, ext_len, back, sizeof(back), &diag) < 0)
				abort();
		}
		free(text);
		break;
	}
	default: { /* padding an encoded value to the record's length, as a write does */
		uint8_t *buf = malloc(cap);
		size_t len = size < cap ? size : cap;

		if (!buf)
			abort();
		memcpy(buf, data, len);
		rc = items_pad(&pr->f, &pr->it, buf, len, cap, &diag);
		if (rc >= 0 && (size_t)rc != cap)
			abort();
		free(buf);
		break;
	}
	}
	return 0;
}
