/*
 * A minimal card reader with libsscard: connects to sscardd (the socket in $SSCARD_SOCKET, else
 * the default), reads the cardholder's basic data and prints it. Build it with
 *     cc -o read_card read_card.c $(pkg-config --cflags --libs sscard)
 * Run: ./read_card [READER_ID]   Exit status 0, or 1 with the error's name and message.
 */
#include <stdio.h>

#include <sscard/client.h>

int main(int argc, char **argv)
{
	struct sscard_client *c;
	struct sscard_basic b;
	struct sscard_error err;
	int rc;

	rc = sscard_connect(NULL, 5000, &c, &err);
	if (rc == 0) {
		rc = sscard_read_basic(c, argc > 1 ? argv[1] : NULL, 0, &b, &err);
		sscard_close(c);
	}
	if (rc != 0) {
		/* err.name is stable: branch on it; err.std_code is the standard interface's code. */
		fprintf(stderr, "read_card: %s (std_code %d): %s\n", err.name, err.std_code,
			err.message);
		return 1;
	}
	printf("name:        %s\n", b.name);
	printf("card number: %s\n", b.card_number);
	printf("card id:     %s\n", b.card_id);
	printf("region:      %s\n", b.region_code);
	printf("valid until: %s%s\n", b.expiry_date, b.expired ? " (expired)" : "");
	printf("generation:  %s (%s)\n", b.spec_version, b.algorithm);
	return 0;
}
