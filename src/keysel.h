/*
 * This file contains the choice between key providers: a struct keyprov that serves each key
 * operation with the first of two providers (the PSAM in a reader, the network PSAM) that can
 * serve the card's algorithm, in the configured order ([hsm] prefer).
 */
#ifndef SSC_KEYSEL_H
#define SSC_KEYSEL_H

#include "keyprov.h"

/*
 * Creates the choice of first, then second (both borrowed; they must outlive it; either may be
 * NULL). Each operation goes to the first provider whose available(alg) is 0. When that one fails
 * because the key server cannot be used for it (an SSC_EHSM* error: down, timed out, refused, no
 * PSAM of the algorithm, a malformed answer) and the other provider is available for alg, the
 * other serves the same operation before its deadline: a key operation sends nothing to the card,
 * so the card sees the same commands whichever provider answered. A PSAM's own refusal
 * (SSC_EPSAM) or a PSAM in a reader that failed is not retried elsewhere. available() is 0 when
 * either is; otherwise SSC_EPSAMALGO when either answered that (a key store, none for alg), else
 * SSC_ENOPSAM. The name is that of the provider serving (not known before an operation: "keysel").
 * Returns 0 and *out (keyprov_free() frees the choice only), or SSC_ENOMEM. Thread-safe: no state.
 */
int keysel_new(struct keyprov *first, struct keyprov *second, struct keyprov **out);

/* 1 when err says that the key server could not be used for an operation (SSC_EHSM*), else 0. */
int keysel_failover(int err);

#endif
