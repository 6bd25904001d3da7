/*
 * This file contains sscard's one hex codec: bytes to hex text (upper or lower case) and hex text
 * back to bytes, with every length checked. Used by the core, the drivers and the journal alike.
 */
#ifndef SSC_HEX_H
#define SSC_HEX_H

#include <stddef.h>
#include <stdint.h>

enum hex_case { HEX_UPPER, HEX_LOWER };

/* The value 0..15 of one hex digit (either case), or -1 for any other character. */
int hex_digit(char c);

/*
 * Writes the 2 * len hex digits of p[0..len) and a NUL into out (cap bytes). Returns 2 * len, or
 * SSC_ELIMIT when they do not fit (cap < 2 * len + 1): out then holds the digits of as many whole
 * bytes as fit and a NUL (nothing when cap is 0), so that a caller may show a cut-short dump.
 */
int hex_encode(const uint8_t *p, size_t len, char *out, size_t cap, enum hex_case hc);

/*
 * Decodes the len characters of s (hex digits in pairs, either case, nothing else: no spaces, no
 * sign, no "0x") into out (cap bytes). Returns the byte count len / 2; SSC_EINVAL for an odd
 * len or a character that is not a hex digit; SSC_ELIMIT when len / 2 > cap (checked first,
 * nothing written). On an error out's content is unspecified.
 */
int hex_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
