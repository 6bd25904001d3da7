/*
 * This file contains the fuzz target of the simulator's card OS (sim_token_apdu): a session of
 * command APDUs against a card or PSAM personalised from one of the shipped profiles, with resets
 * in between, checking the contract of simcos.h on every answer (2..258 bytes, no data with an
 * error status word). The card's challenge is fixed so that seeds can carry valid cryptograms.
 *
 * Input: byte 0 selects the profile (low 7 bits, modulo the number of profiles) and the role
 * (bit 7: PSAM); then chunks (fuzzlib.h): a chunk of length 0 is a reset (power cycle), any other
 * is one command APDU. FUZZ_TRACE=1 in the environment prints every exchange (to check seeds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzzlib.h"
#include "sim_testhook.h"
#include "simcos.h"

static struct sim_profile *profiles[FUZZ_MAX_PROFILES];
static size_t n_profiles;
static int trace;

/* R = X of spec §12.8: every GET CHALLENGE answers it. */
static const uint8_t fixed_challenge[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	n_profiles = fuzz_load_profiles(profiles);
	trace = getenv("FUZZ_TRACE") != NULL;
	return 0;
}

static void trace_hex(const char *dir, const uint8_t *p, size_t n)
{
	fprintf(stderr, "%s ", dir);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%02X", p[i]);
	fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t sel = fuzz_byte(&in, 0), resp[SIM_RESP_MAX], atr[SIM_ATR_MAX];
	enum sim_role role = (sel & 0x80) ? SIM_ROLE_PSAM : SIM_ROLE_CARD;
	struct sim_token *t = sim_token_new(profiles[(sel & 0x7F) % n_profiles], role);
	const uint8_t *cmd;
	size_t len;

	if (!t)
		abort();
	if (sim_token_atr(t, atr) == 0)
		abort();
	while (fuzz_chunk(&in, &cmd, &len) == 0) {
		size_t n;

		if (len == 0) {
			if (trace)
				fprintf(stderr, "reset\n");
			sim_token_reset(t);
			continue;
		}
		sim_token_test_set_challenge(t, fixed_challenge);
		n = sim_token_apdu(t, cmd, len, resp);
		if (trace) {
			trace_hex(">", cmd, len);
			trace_hex("<", resp, n);
		}
		if (n < 2 || n > SIM_RESP_MAX)
			abort();
		/* Error answers carry no data (61xx and 62xx warnings may). */
		if (n > 2 && resp[n - 2] != 0x90 && resp[n - 2] != 0x61 && resp[n - 2] != 0x62)
			abort();
	}
	sim_token_free(t);
	return 0;
}
