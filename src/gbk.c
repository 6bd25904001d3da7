/*
 * This file contains GBK <-> UTF-8 conversion over glibc's iconv, bounded on both sides. A fresh
 * descriptor per call keeps it thread-safe without a lock; conversions are short and rare.
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "gbk.h"
#include "sscard/error.h"

/* Converts in (len bytes) with cd into out (cap bytes); bad input gives bad_err. */
static int gbk_iconv(const char *to, const char *from, const char *in, size_t len, char *out,
		     size_t cap, int bad_err)
{
	iconv_t cd = iconv_open(to, from);
	char *ip = (char *)in, *op = out;
	size_t il = len, ol = cap;
	int rc;

	if (cd == (iconv_t)-1)
		return SSC_EINTERNAL;
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1)
		rc = errno == E2BIG ? SSC_ELIMIT : bad_err;
	else if (iconv(cd, NULL, NULL, &op, &ol) == (size_t)-1)
		rc = errno == E2BIG ? SSC_ELIMIT : bad_err;
	else
		rc = (int)(cap - ol);
	iconv_close(cd);
	return rc;
}

int gbk_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap)
{
	int n;

	if (cap == 0)
		return SSC_ELIMIT;
	if (memchr(in, 0, len))
		return SSC_EBADCARDDATA;
	n = gbk_iconv("UTF-8", "GBK", (const char *)in, len, out, cap - 1, SSC_EBADCARDDATA);
	if (n < 0) {
		out[0] = '\0';
		return n;
	}
	out[n] = '\0';
	return n;
}

int gbk_from_utf8(const char *in, uint8_t *out, size_t cap)
{
	return gbk_iconv("GBK", "UTF-8", in, strlen(in), (char *)out, cap, SSC_EVALUE);
}
