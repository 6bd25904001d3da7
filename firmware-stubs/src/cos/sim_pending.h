/*
 * This file contains a token's pending answer for GET RESPONSE (ISO 7816-4 §7.6.1), its own module
 * so that the card and the PSAM, which store and hand out the answer, and the token, which frames
 * T=0-style answers and drops what is left at the next other command, call it from below and never
 * one another.
 */
#ifndef SIM_PENDING_H
#define SIM_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_apdu.h"

#define SIM_DATA_MAX 256

/* The answer waiting for GET RESPONSE. Zeroed: nothing pending. */
struct sim_pending {
	bool has;
	size_t len;
	uint8_t data[SIM_DATA_MAX];
};

/* Stores len bytes of data (cut to SIM_DATA_MAX) as the pending answer. */
void sim_pending_set(struct sim_pending *p, const uint8_t *data, size_t len);

/* Drops the pending answer and wipes its bytes. */
void sim_pending_clear(struct sim_pending *p);

/*
 * GET RESPONSE: hands out the pending data (Le bytes at most, then 61xx for the rest). Returns
 * the status word (6A86 for P1-P2 not 0000, 6700 for a data field, 6985 when nothing is
 * pending); data goes to out (*outlen bytes, at most SIM_DATA_MAX).
 */
uint16_t sim_pending_get_response(struct sim_pending *p, const struct sim_apdu *a, uint8_t *out,
				  size_t *outlen);

#endif
