/*
 * This file contains the conversion between the card's text and the UTF-8 of the API. Card text is
 * GB 18030 (spec §2 says GBK; GB 18030 is its superset with the same bytes for every GBK
 * character, and its four-byte forms carry every other Unicode character, so names beyond GBK
 * (生僻字) can be read and written). The conversion is glibc's iconv "GB18030".
 */
#ifndef SSC_GB18030_H
#define SSC_GB18030_H

#include <stddef.h>
#include <stdint.h>

/*
 * Converts len GB 18030 bytes to UTF-8 in out (cap bytes, NUL-terminated). Returns the UTF-8 length
 * (without the NUL), SSC_EBADCARDDATA (not GB 18030 text: a byte that starts no character, a
 * character cut off at the end, or an embedded NUL byte; *bad_at, when bad_at is not NULL, is the
 * offset of the first byte that does not convert) or SSC_ELIMIT (out too small). out holds "" on
 * any error. Never blocks; thread-safe (each thread has its own iconv descriptors).
 */
int gb18030_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap, size_t *bad_at);

/*
 * Converts a NUL-terminated UTF-8 string to GB 18030 in out (cap bytes, not terminated): GBK's
 * two bytes for every GBK character, four bytes for the others. Returns the length, SSC_EVALUE
 * (not valid UTF-8) or SSC_ELIMIT (longer than cap). *need, when need is not NULL, receives the
 * whole length the text takes in GB 18030, on success and on SSC_ELIMIT (so that a message can
 * say by how much a value is too long).
 */
int gb18030_from_utf8(const char *in, uint8_t *out, size_t cap, size_t *need);

/*
 * The length of the longest prefix of p (len bytes of valid GB 18030, as gb18030_from_utf8
 * writes it) that holds whole characters only and is at most max bytes: where a text that must
 * be split across two records (姓名 and 姓名扩展) may be cut without breaking a character.
 */
size_t gb18030_prefix(const uint8_t *p, size_t len, size_t max);

#endif
