/*
 * This file contains the fuzz target of the simulator's profile loader (sim_profile_parse): any
 * bytes as a profile's JSON text. A profile the loader accepts must personalise a card and a PSAM
 * that answer a SELECT; a refused one must come with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simcos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t select_ssse[] = { 0x00, 0xA4, 0x04, 0x00, 0x0F, 0x73, 0x78, 0x31,
					       0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1,
					       0xB1, 0xA3, 0xD5, 0xCF };
	char err[256] = "";
	uint8_t resp[SIM_RESP_MAX];
	struct sim_profile *p = sim_profile_parse((const char *)data, size, "fuzz.json", err,
						  sizeof(err));

	if (!p) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();   /* every refusal names the problem */
		return 0;
	}
	for (int role = SIM_ROLE_CARD; role <= SIM_ROLE_PSAM; role++) {
		struct sim_token *t = sim_token_new(p, (enum sim_role)role);
		size_t n;

		if (!t)
			abort();
		n = sim_token_apdu(t, select_ssse, sizeof(select_ssse), resp);
		if (n < 2 || n > SIM_RESP_MAX)
			abort();
		sim_token_free(t);
	}
	sim_profile_free(p);
	return 0;
}
