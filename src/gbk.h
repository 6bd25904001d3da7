/*
 * This file contains the conversion between the card's GBK text and the UTF-8 of the API, over
 * iconv. The card stores names and other "an" items in GBK (spec §2); the socket speaks UTF-8.
 */
#ifndef SSC_GBK_H
#define SSC_GBK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Converts len GBK bytes to UTF-8 in out (cap bytes, NUL-terminated). Returns the UTF-8 length
 * (without the NUL), SSC_EBADCARDDATA (not valid GBK, or an embedded NUL byte) or SSC_ELIMIT (out
 * too small). Never blocks; thread-safe (each thread has its own iconv descriptors).
 */
int gbk_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap);

/*
 * Converts a NUL-terminated UTF-8 string to GBK in out (cap bytes, not terminated). Returns the GBK
 * length, SSC_EVALUE (not valid UTF-8, or a character GBK cannot hold) or SSC_ELIMIT (longer than
 * cap).
 */
int gbk_from_utf8(const char *in, uint8_t *out, size_t cap);

#endif
