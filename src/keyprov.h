/*
 * This file contains the key-provider seam: everything that needs a card key (external and internal
 * authentication, secure-messaging MACs, the PIN block) asks a provider, never a key in memory. The
 * PSAM provider (src/psam.c) drives a PSAM card through a reader; a remote-HSM provider comes later
 * behind the same table.
 */
#ifndef SSC_KEYPROV_H
#define SSC_KEYPROV_H

#include <stddef.h>
#include <stdint.h>

#include "cardio.h"
#include "config.h"
#include "sscard/error.h"

/* The two diversification factors of spec §12.2. */
struct keyprov_div {
	uint8_t card_div[8];   /* chip serial: the last 8 historical bytes of the ATR */
	uint8_t city_div[8];   /* ASCII region code ‖ "sx" */
};

struct keyprov;

struct keyprov_ops {
	const char *name;   /* "psam", later "hsm" */

	/*
	 * Whether this provider can work for alg now. Returns 0, SSC_ENOPSAM (no key store at all) or
	 * SSC_EPSAMALGO (none for this algorithm). Does not block.
	 */
	int (*available)(struct keyprov *kp, enum ssc_alg alg);

	/*
	 * Derives K_card for key (usage/index) and div, the session key from r, and the 8-byte
	 * cryptogram of x (spec §12.3; SM4 folded). Used for EXTERNAL AUTH (r = the card's challenge)
	 * and for the expected INTERNAL AUTH answer (r = the process factor).
	 * Blocks at most until deadline_ms (CLOCK_MONOTONIC ms). Returns 0, SSC_ENOPSAM, SSC_EPSAMALGO,
	 * SSC_EPSAM (with diag->sw), SSC_ETIMEDOUT.
	 */
	int (*cryptogram)(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			  const struct keyprov_div *div, const uint8_t r[8], const uint8_t x[8],
			  uint8_t c[8], int64_t deadline_ms, struct ssc_diag *diag);

	/*
	 * MAC4 of data (unpadded; the provider pads 80 00..) under K_card of key, with the IV
	 * (8 bytes DES, 16 bytes SM4; spec §12.5). Same returns as cryptogram.
	 */
	int (*mac)(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		   const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data, size_t len,
		   uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag);

	/*
	 * ECB-encrypts len bytes (a multiple of the block size, at most 32) under K_card of key: the
	 * PIN block of UNBLOCK PIN. Same returns as cryptogram.
	 */
	int (*encrypt)(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
		       const struct keyprov_div *div, const uint8_t *in, size_t len, uint8_t *out,
		       int64_t deadline_ms, struct ssc_diag *diag);

	/*
	 * The terminal number (终端机编号, 12 hex digits + NUL) of the key store used for alg, or
	 * SSC_ENOPSAM / SSC_EPSAMALGO. Same blocking rule.
	 */
	int (*terminal_number)(struct keyprov *kp, enum ssc_alg alg, char out[13],
			       int64_t deadline_ms, struct ssc_diag *diag);

	/* Frees the provider. NULL-safe via keyprov_free(). */
	void (*free)(struct keyprov *kp);
};

struct keyprov {
	const struct keyprov_ops *ops;
	void *ctx;
};

/* Frees a provider through its ops->free. NULL is a no-op. */
void keyprov_free(struct keyprov *kp);

#endif
