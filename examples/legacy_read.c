/*
 * A legacy-style program: it calls the standard reader-interface functions (spec §5) exactly as
 * an application written for a vendor's SSCardDriver library does, here served by sscard's
 * libSSCardDriver.so. Output is GB18030 text, as the standard's. Build it with
 *     cc -o legacy_read legacy_read.c -I PREFIX/include -L PREFIX/lib -lSSCardDriver
 * Run: ./legacy_read   Exit status 0, or 1 with the standard code and its text.
 */
#include <stdio.h>
#include <string.h>

#include <sscard/SSCardDriver.h>

int main(void)
{
	char basic[1024], card_info[1024], out[1024];
	char *field[11];
	char *p = basic;
	long rc;
	int n = 0;

	rc = iReadCardBas(1, basic);   /* 1: the contact reader */
	if (rc != 0) {
		fprintf(stderr, "iReadCardBas: %ld %s\n", rc, basic);
		return 1;
	}
	printf("%s\n", basic);
	/* pCardInfo = 卡识别码|卡号| from fields 4 and 3 of the basic string. */
	while (n < 11 && (field[n] = strsep(&p, "|")) != NULL)
		n++;
	if (n < 11)
		return 1;
	snprintf(card_info, sizeof(card_info), "%s|%s|", field[3], field[2]);
	rc = iReadCard(1, 0, card_info, "3F00EF06|08|09|0A|0D|$", out);
	if (rc != 0) {
		fprintf(stderr, "iReadCard: %ld %s\n", rc, out);
		return 1;
	}
	printf("%s\n", out);
	return 0;
}
