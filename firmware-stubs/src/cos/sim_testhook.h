/*
 * This file contains test hooks of the simulated card OS, for unit tests only (not part of
 * simcos.h): they let a test reproduce the spec's vectors, which need a known challenge.
 */
#ifndef SIM_TESTHOOK_H
#define SIM_TESTHOOK_H

#include <stdint.h>

#include "simcos.h"

/* The next GET CHALLENGE of card t answers r instead of random bytes (once). */
void sim_token_test_set_challenge(struct sim_token *t, const uint8_t r[8]);

#endif
