/*
 * This file contains legacy_call, a test program that calls one function of libSSCardDriver.so
 * (linked as a legacy application links it) and prints {"rc": N, "out": HEX, "out2": HEX,
 * "ms": T}: the return value, the output buffer's bytes up to its NUL in hex (GB18030 text
 * stays bytes), and how long the call took. Each output buffer is exactly 1024 bytes from
 * malloc (ASan sees any write past it), filled with 'Q' before the call; the program fails
 * (exit 3) when a buffer holds no NUL within its 1024 bytes after the call.
 *   legacy_call iReadCardBas ITYPE
 *   legacy_call iReadCard ITYPE AUTHTYPE CARDINFO FILEADDR
 *   legacy_call iWriteCard ITYPE CARDINFO FILEADDR WRITEDATA_HEX
 *   legacy_call iVerifyPIN|iChangePIN ITYPE;  iReloadPIN|iUnblockPIN ITYPE CARDINFO
 *   legacy_call iGetReaderInfo;  iReadCardBas_HSM_Step1 ITYPE;  iReadCardBas_HSM_Step2 KEY
 *   legacy_call hsm_both ITYPE KEY   (Step1 then Step2 in one process)
 *   legacy_call hsm_interactive ITYPE  (Step1, its {"rc", "out"} on one line; then one line of
 *                                       stdin, the key server's answer, for Step2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sscard/SSCardDriver.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hex(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		printf("%02X", *p);
}

static char *unhex(const char *h)
{
	size_t n = strlen(h) / 2;
	char *s = calloc(1, n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		sscanf(h + 2 * i, "%2x", &v);
		s[i] = (char)v;
	}
	return s;
}

int main(int argc, char **argv)
{
	char *out = malloc(SSCARD_DRIVER_OUT_MAX), *out2 = malloc(SSCARD_DRIVER_OUT_MAX);
	const char *f = argc > 1 ? argv[1] : "";
	long long t0;
	long rc;

	memset(out, 'Q', SSCARD_DRIVER_OUT_MAX);
	memset(out2, 'Q', SSCARD_DRIVER_OUT_MAX);
	out2[0] = '\0';
	t0 = now_ms();
#define ARG(i) (argc > (i) ? argv[i] : "")
#define NUM(i) atoi(ARG(i))
	if (strcmp(f, "iReadCardBas") == 0) {
		rc = iReadCardBas(NUM(2), out);
	} else if (strcmp(f, "iReadCard") == 0) {
		rc = iReadCard(NUM(2), NUM(3), argv[4], argv[5], out);
	} else if (strcmp(f, "iWriteCard") == 0) {
		char *data = unhex(ARG(5));

		rc = iWriteCard(NUM(2), argv[3], argv[4], data, out);
		free(data);
	} else if (strcmp(f, "iVerifyPIN") == 0) {
		rc = iVerifyPIN(NUM(2), out);
	} else if (strcmp(f, "iChangePIN") == 0) {
		rc = iChangePIN(NUM(2), out);
	} else if (strcmp(f, "iReloadPIN") == 0) {
		rc = iReloadPIN(NUM(2), argv[3], out);
	} else if (strcmp(f, "iUnblockPIN") == 0) {
		rc = iUnblockPIN(NUM(2), argv[3], out);
	} else if (strcmp(f, "iGetReaderInfo") == 0) {
		rc = iGetReaderInfo(out, out2);
	} else if (strcmp(f, "iReadCardBas_HSM_Step1") == 0) {
		rc = iReadCardBas_HSM_Step1(NUM(2), out);
	} else if (strcmp(f, "iReadCardBas_HSM_Step2") == 0) {
		rc = iReadCardBas_HSM_Step2(argv[2], out);
	} else if (strcmp(f, "hsm_interactive") == 0) {
		char key[SSCARD_DRIVER_OUT_MAX];

		rc = iReadCardBas_HSM_Step1(NUM(2), out);
		printf("{\"rc\": %ld, \"out\": \"", rc);
		hex(out);
		printf("\"}\n");
		fflush(stdout);
		if (rc == 0 && fgets(key, sizeof(key), stdin)) {
			key[strcspn(key, "\r\n")] = '\0';
			memset(out, 'Q', SSCARD_DRIVER_OUT_MAX);
			rc = iReadCardBas_HSM_Step2(key, out);
		}
	} else if (strcmp(f, "hsm_both") == 0) {
		rc = iReadCardBas_HSM_Step1(NUM(2), out);
		if (rc == 0)
			rc = iReadCardBas_HSM_Step2(argv[3], out);
	} else {
		fprintf(stderr, "legacy_call: unknown function %s\n", f);
		return 2;
	}
	if (!memchr(out, '\0', SSCARD_DRIVER_OUT_MAX) || !memchr(out2, '\0', SSCARD_DRIVER_OUT_MAX)) {
		fprintf(stderr, "legacy_call: an output buffer is not NUL-terminated\n");
		return 3;
	}
	printf("{\"rc\": %ld, \"out\": \"", rc);
	hex(out);
	printf("\", \"out2\": \"");
	hex(out2);
	printf("\", \"ms\": %lld}\n", now_ms() - t0);
	free(out);
	free(out2);
	return 0;
}
