/*
 * This file contains GBK <-> UTF-8 conversion over glibc's iconv, bounded on both sides. Opening a
 * descriptor costs more than converting a name, so each thread keeps one per direction (a
 * descriptor is not shared between threads, so no lock), reset before every use and closed when
 * the thread ends.
 */
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gbk.h"
#include "sscard/error.h"

enum { GBK_TO_UTF8, GBK_FROM_UTF8, GBK_DIRECTIONS };

struct gbk_cds {
	iconv_t cd[GBK_DIRECTIONS];
};

static pthread_key_t gbk_key;
static pthread_once_t gbk_once = PTHREAD_ONCE_INIT;
static int gbk_key_ok;

static void gbk_cds_free(void *p)
{
	struct gbk_cds *c = p;

	for (int i = 0; i < GBK_DIRECTIONS; i++)
		if (c->cd[i] != (iconv_t)-1)
			iconv_close(c->cd[i]);
	free(c);
}

static void gbk_key_init(void)
{
	gbk_key_ok = pthread_key_create(&gbk_key, gbk_cds_free) == 0;
}

/* This thread's descriptor for dir, opened on first use; (iconv_t)-1 when iconv cannot. */
static iconv_t gbk_cd(int dir)
{
	static const char *const names[GBK_DIRECTIONS][2] = {
		[GBK_TO_UTF8] = { "UTF-8", "GBK" }, [GBK_FROM_UTF8] = { "GBK", "UTF-8" },
	};
	struct gbk_cds *c;

	pthread_once(&gbk_once, gbk_key_init);
	if (!gbk_key_ok)
		return (iconv_t)-1;
	c = pthread_getspecific(gbk_key);
	if (!c) {
		c = malloc(sizeof(*c));
		if (!c)
			return (iconv_t)-1;
		for (int i = 0; i < GBK_DIRECTIONS; i++)
			c->cd[i] = (iconv_t)-1;
		if (pthread_setspecific(gbk_key, c) != 0) {
			free(c);
			return (iconv_t)-1;
		}
	}
	if (c->cd[dir] == (iconv_t)-1)
		c->cd[dir] = iconv_open(names[dir][0], names[dir][1]);
	return c->cd[dir];
}

/* Converts in (len bytes) in direction dir into out (cap bytes); bad input gives bad_err. */
static int gbk_iconv(int dir, const char *in, size_t len, char *out, size_t cap, int bad_err)
{
	iconv_t cd = gbk_cd(dir);
	char *ip = (char *)in, *op = out;
	size_t il = len, ol = cap;

	if (cd == (iconv_t)-1)
		return SSC_EINTERNAL;
	iconv(cd, NULL, NULL, NULL, NULL);   /* the initial state, whatever the last call left */
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1)
		return errno == E2BIG ? SSC_ELIMIT : bad_err;
	if (iconv(cd, NULL, NULL, &op, &ol) == (size_t)-1)
		return errno == E2BIG ? SSC_ELIMIT : bad_err;
	return (int)(cap - ol);
}

int gbk_to_utf8(const uint8_t *in, size_t len, char *out, size_t cap)
{
	int n;

	if (cap == 0)
		return SSC_ELIMIT;
	if (memchr(in, 0, len))
		return SSC_EBADCARDDATA;
	n = gbk_iconv(GBK_TO_UTF8, (const char *)in, len, out, cap - 1, SSC_EBADCARDDATA);
	if (n < 0) {
		out[0] = '\0';
		return n;
	}
	out[n] = '\0';
	return n;
}

int gbk_from_utf8(const char *in, uint8_t *out, size_t cap)
{
	return gbk_iconv(GBK_FROM_UTF8, in, strlen(in), (char *)out, cap, SSC_EVALUE);
}
