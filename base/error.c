/*
 * This file contains the names, messages and standard-interface codes of sscard's errors
 * (include/sscard/error.h), and the diag helpers that carry details beside an error code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sscard/error.h"

struct err_entry {
	int code;
	int std;
	const char *name;
	const char *msg;
};

static const struct err_entry err_table[] = {
#define SSC_X_ROW(name, value, std, msg) { value, std, #name, msg },
	SSC_ERROR_LIST(SSC_X_ROW)
#undef SSC_X_ROW
};

static const struct err_entry *err_find(int err)
{
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return NULL;
}

const char *ssc_strerror_name(int err)
{
	const struct err_entry *e;

	if (err >= 0)
		return "SSC_OK";
	e = err_find(err);
	return e ? e->name : "SSC_EUNKNOWN";
}

const char *ssc_strerror(int err)
{
	const struct err_entry *e;

	if (err >= 0)
		return "success";
	e = err_find(err);
	return e ? e->msg : "unknown error";
}

int ssc_std_code(int err, uint16_t sw)
{
	const struct err_entry *e;

	if (err >= 0)
		return 0;
	e = err_find(err);
	if (e && e->std != 0)
		return e->std;
	if (sw != 0)
		return -(int)sw;
	return 0;
}

void ssc_diag_init(struct ssc_diag *d)
{
	if (!d)
		return;
	d->sw = 0;
	d->retries_left = -1;
	d->msg[0] = '\0';
}

int ssc_diag_set(struct ssc_diag *d, int err, const char *fmt, ...)
{
	va_list ap;

	if (!d)
		return err;
	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	va_end(ap);
	return err;
}
