/*
 * This file contains the checks and conversions of a profile's text values (sim_text.h).
 */
#include "sim_text.h"

#include <iconv.h>
#include <string.h>

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

void sim_text_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0F];
	}
	out[2 * n] = 0;
}

int sim_text_unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), i;

	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

bool sim_text_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

bool sim_text_all_digits(const char *s, size_t n)
{
	return strlen(s) == n && sim_text_digits(s, n);
}

void sim_text_bcd(const char *s, uint8_t *out, size_t nbytes)
{
	size_t i, len = strlen(s);

	memset(out, 0xFF, nbytes);
	for (i = 0; i < len && i < 2 * nbytes; i++) {
		uint8_t d = (uint8_t)(s[i] - '0');

		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(d << 4 | 0x0F);
		else
			out[i / 2] = (uint8_t)((out[i / 2] & 0xF0) | d);
	}
}

bool sim_text_date_ok(const char *s)
{
	int y, m, d;
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (!sim_text_all_digits(s, 8))
		return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[4] - '0') * 10 + (s[5] - '0');
	d = (s[6] - '0') * 10 + (s[7] - '0');
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	return true;
}

static int alnum_value(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A' + 10;
	return -1;
}

char sim_text_card_number_check(const char *s)
{
	static const int w[8] = { 3, 7, 9, 10, 5, 8, 4, 2 };
	int sum = 0, i, r;

	for (i = 0; i < 8; i++) {
		int v = alnum_value((unsigned char)s[i]);

		if (v < 0)
			return 0;
		sum += v * w[i];
	}
	r = 11 - sum % 11;
	if (r == 10)
		return 'X';
	if (r == 11)
		return '0';
	return (char)('0' + r);
}

char sim_text_ssn_check(const char *s)
{
	static const int w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 };
	static const char map[] = "10X98765432";
	int sum = 0, i;

	for (i = 0; i < 17; i++)
		sum += (s[i] - '0') * w[i];
	return map[sum % 11];
}

int sim_text_gb18030(const char *utf8, uint8_t *out, size_t outcap)
{
	iconv_t cd = iconv_open("GB18030", "UTF-8");
	char *in = (char *)utf8, *op = (char *)out;
	size_t inleft = strlen(utf8), outleft = outcap, r;

	if (cd == (iconv_t)-1)
		return -1;
	r = iconv(cd, &in, &inleft, &op, &outleft);
	if (r != (size_t)-1)
		r = iconv(cd, NULL, NULL, &op, &outleft);
	iconv_close(cd);
	if (r == (size_t)-1 || inleft != 0)
		return -1;
	return (int)(outcap - outleft);
}

size_t sim_text_gb18030_whole(const uint8_t *p, size_t len, size_t max)
{
	size_t i = 0, n;

	while (i < len) {
		n = 2;
		if (p[i] < 0x80)
			n = 1;
		else if (i + 1 < len && p[i + 1] >= 0x30 && p[i + 1] <= 0x39)
			n = 4;
		if (i + n > max || i + n > len)
			break;
		i += n;
	}
	return i;
}
