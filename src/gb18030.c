/*
 * This file contains GB 18030 <-> UTF-8 conversion over glibc's iconv, bounded on both sides.
 * Opening a descriptor costs more than converting a name, so each thread keeps one per direction
 * (a descriptor is not shared between threads, so no lock), reset before every use and closed
 * when the thread ends.
 */
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gb18030.h"
#include "sscard/error.h"

enum { GB18030_TO_UTF8, GB18030_FROM_UTF8, GB18030_DIRECTIONS };

struct gb18030_cds {
	iconv_t cd[GB18030_DIRECTIONS];
};

static pthread_key_t gb18030_key;
static pthread_once_t gb18030_once = PTHREAD_ONCE_INIT;
static int gb18030_key_ok;

static void gb18030_cds_free(void *p)
{
	struct gb18030_cds *c = p;

	for (int i = 0; i < GB18030_DIRECTIONS; i++)
		if (c->cd[i] != (iconv_t)-1)
			iconv_close(c->cd[i]);
	free(c);
}

static void gb18030_key_init(void)
{
	gb18030_key_ok = pthread_key_create(&gb18030_key, gb18030_cds_free) == 0;
}

/* This thread's descriptor for dir, opened on first use; (iconv_t)-1 when iconv cannot. */
static iconv_t gb18030_cd(int dir)
{
	static const char *const names[GB18030_DIRECTIONS][2] = {
		[GB18030_TO_UTF8] = { "UTF-8", "GB18030" },
		[GB18030_FROM_UTF8] = { "GB18030", "UTF-8" },
	};
	struct gb18030_cds *c;

	pthread_once(&gb18030_once, gb18030_key_init);
	if (!gb18030_key_ok)
		return (iconv_t)-1;
	c = pthread_getspecific(gb18030_key);
	if (!c) {
		c = malloc(sizeof(*c));
		if (!c)
			return (iconv_t)-1;
		for (int i = 0; i < GB18030_DIRECTIONS; i++)
			c->cd[i] = (iconv_t)-1;
		if (pthread_setspecific(gb18030_key, c) != 0) {
			free(c);
			return (iconv_t)-1;
		}
	}
	if (c->cd[dir] == (iconv_t)-1)
		c->cd[dir] = iconv_open(names[dir][0], names[dir][1]);
	return c->cd[dir];
}

/*
 * Converts in (len bytes) in direction dir into out (cap bytes); bad input gives bad_err with
 * *bad_at its offset. On E2BIG, *need (when not NULL) is completed by converting the rest into a
 * scratch buffer that is thrown away.
 */
static int gb18030_iconv(int dir, const char *in, size_t len, char *out, size_t cap, int bad_err,
			 size_t *bad_at, size_t *need)
{
	iconv_t cd = gb18030_cd(dir);
	char *ip = (char *)in, *op = out;
	size_t il = len, ol = cap, more = 0;
	int rc;

	if (cd == (iconv_t)-1)
		return SSC_EINTERNAL;
	iconv(cd, NULL, NULL, NULL, NULL);   /* the initial state, whatever the last call left */
	if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1) {
		if (need)
			*need = cap - ol;
		return (int)(cap - ol);
	}
	if (errno != E2BIG) {
		*bad_at = (size_t)(ip - in);
		return bad_err;
	}
	rc = SSC_ELIMIT;
	while (need && il > 0) {
		char scratch[64], *sp = scratch;
		size_t sl = sizeof(scratch);

		if (iconv(cd, &ip, &il, &sp, &sl) == (size_t)-1 && errno != E2BIG) {
			*bad_at = (size_t)(ip - in);
			rc = bad_err;
			break;
		}
		more += sizeof(scratch) - sl;
	}
	if (need)
		*need = cap - ol + more;
	return rc;
}

int gb18030_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap, size_t *bad_at)
{
	const uint8_t *nul;
	size_t at = 0;
	int n;

	if (cap == 0)
		return SSC_ELIMIT;
	out[0] = '\0';
	/* A NUL converts to a NUL, which would cut the text short: not text a card may hold. */
	nul = memchr(in, 0, len);
	n = gb18030_iconv(GB18030_TO_UTF8, (const char *)in, nul ? (size_t)(nul - in) : len, out,
			  cap - 1, SSC_EBADCARDDATA, &at, NULL);
	if (n >= 0 && nul) {
		at = (size_t)(nul - in);
		n = SSC_EBADCARDDATA;
	}
	if (n < 0) {
		out[0] = '\0';
		if (bad_at)
			*bad_at = at;
		return n;
	}
	out[n] = '\0';
	return n;
}

int gb18030_from_utf8(const char *in, uint8_t *out, size_t cap, size_t *need)
{
	size_t at;

	return gb18030_iconv(GB18030_FROM_UTF8, in, strlen(in), (char *)out, cap, SSC_EVALUE, &at,
			     need);
}

/*
 * The character lengths of GB 18030: a byte below 80 is one character; a lead byte 81..FE
 * followed by a digit 30..39 starts a four-byte character, followed by anything else a two-byte
 * one. Only called on text that iconv wrote, so the bytes are known to be well formed.
 */
size_t gb18030_prefix(const uint8_t *p, size_t len, size_t max)
{
	size_t i = 0;

	while (i < len) {
		size_t n = 2;

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
