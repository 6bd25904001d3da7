/*
 * This file contains the fuzz target of the byte parsers under the card layer: the BER-TLV reader
 * of src/apdu.c (walked recursively into constructed elements, and searched by tag), the FCI
 * algorithm lookup and the ATR's historical bytes of src/ssc.c. Every element found must lie
 * inside the buffer it was found in.
 *
 * Input: byte 0 = mode (modulo 4: walk, find, FCI, ATR), bytes 1..3 = the tag to find; the rest
 * is the buffer.
 */
#include <stdint.h>
#include <stdlib.h>

#include "apdu.h"
#include "ssc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const uint8_t *buf, size_t len, const struct apdu_tlv *t)
{
	if (t->val < buf || t->val > buf + len || t->len > (size_t)(buf + len - t->val))
		abort();
}

/* Walks every element at this level and below; depth bounds the recursion as a parser would. */
static void walk(const uint8_t *buf, size_t len, int depth)
{
	struct apdu_tlv t;
	size_t off = 0, last = 0;
	int rc;

	while ((rc = apdu_tlv_next(buf, len, &off, &t)) == 1) {
		check_inside(buf, len, &t);
		if (off <= last || off > len)
			abort();   /* no progress, or past the end */
		last = off;
		if (t.constructed && depth < 8)
			walk(t.val, t.len, depth + 1);
	}
	if (rc != 0 && rc != SSC_EPROTO)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct apdu_tlv t;
	const uint8_t *hist;
	size_t hist_len;
	uint32_t tag;
	uint8_t alg, mode;
	int rc;

	if (size < 4)
		return 0;
	mode = data[0] % 4;
	tag = (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	if (data[1] == 0)
		tag &= 0xFFFF;
	if (data[1] == 0 && data[2] == 0)
		tag &= 0xFF;
	data += 4;
	size -= 4;

	switch (mode) {
	case 0:
		walk(data, size, 0);
		break;
	case 1:
		rc = apdu_tlv_find(data, size, tag, &t);
		if (rc == 1) {
			check_inside(data, size, &t);
			if (t.tag != tag)
				abort();
		}
		break;
	case 2:
		rc = apdu_fci_alg(data, size, &alg);
		if (rc != 0 && rc != 1 && rc != SSC_EPROTO)
			abort();
		break;
	default:
		if (ssc_atr_historical(data, size, &hist, &hist_len) == 0 &&
		    (hist < data || hist_len > 15 || hist + hist_len > data + size))
			abort();
		break;
	}
	return 0;
}
