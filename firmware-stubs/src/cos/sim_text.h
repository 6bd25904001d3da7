/*
 * This file contains the checks and conversions of the text values a simulator profile gives:
 * hex, decimal digits and BCD, dates, the card number's and the SSN's check characters, GB 18030.
 * No JSON and no messages: the profile loader (sim_profile.c) says what is wrong where.
 */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes the 2 * n upper-case hex digits of p and a NUL to out (2 * n + 1 bytes). */
void sim_text_hex(const uint8_t *p, size_t n, char *out);

/*
 * Decodes the hex string s (digit pairs, either case, no separators) of at most cap bytes into
 * out; returns the byte count or -1.
 */
int sim_text_unhex(const char *s, uint8_t *out, size_t cap);

/* Whether the first n characters of s are decimal digits. */
bool sim_text_digits(const char *s, size_t n);

/* Whether s is exactly n decimal digits. */
bool sim_text_all_digits(const char *s, size_t n);

/* Packs the digit string s into BCD over nbytes, padding with F nibbles (format cn). */
void sim_text_bcd(const char *s, uint8_t *out, size_t nbytes);

/* Whether s is a real date YYYYMMDD from 1900 on. */
bool sim_text_date_ok(const char *s);

/* §2.6: the check character of an 8-character card number, or 0 when a character is invalid. */
char sim_text_card_number_check(const char *s);

/* GB 11643: the check character of the 17 digits of s. */
char sim_text_ssn_check(const char *s);

/*
 * UTF-8 to GB 18030 with iconv (GBK's bytes for GBK's characters, four bytes for the others);
 * returns the length or -1 (not valid UTF-8, or too long).
 */
int sim_text_gb18030(const char *utf8, uint8_t *out, size_t outcap);

/*
 * The longest prefix of p (len bytes that iconv wrote as GB 18030) made of whole characters and
 * at most max bytes long. GB 18030: a byte below 80 is a character; a lead byte 81..FE followed
 * by a digit 30..39 starts a four-byte character, followed by anything else a two-byte one.
 */
size_t sim_text_gb18030_whole(const uint8_t *p, size_t len, size_t max);

#endif
