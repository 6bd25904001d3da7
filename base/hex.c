/*
 * This file contains the hex codec of base/hex.h.
 */
#include "hex.h"

#include "sscard/error.h"

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_encode(const uint8_t *p, size_t len, char *out, size_t cap, enum hex_case hc)
{
	const char *digits = hc == HEX_LOWER ? "0123456789abcdef" : "0123456789ABCDEF";
	size_t fit;

	if (cap == 0)
		return SSC_ELIMIT;
	fit = (cap - 1) / 2;
	if (fit > len)
		fit = len;
	for (size_t i = 0; i < fit; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0F];
	}
	out[2 * fit] = '\0';
	return fit == len ? (int)(2 * len) : SSC_ELIMIT;
}

int hex_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	if (len % 2 != 0)
		return SSC_EINVAL;
	if (len / 2 > cap)
		return SSC_ELIMIT;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return SSC_EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(len / 2);
}
