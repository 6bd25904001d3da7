/*
 * This file contains the PSAM's commands of spec §12.6 as bytes: DELIVER KEY, CIPHER, MAC and
 * ENCRYPT, built the same way whether they go to a PSAM in a reader (src/psam.c) or to the network
 * PSAM of a key server (src/hsm_keyprov.c, spec §13.2), so that both key providers send the same
 * commands and read the same answers.
 */
#ifndef SSC_PSAM_CMD_H
#define SSC_PSAM_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keyprov.h"

#define PSAM_CMD_MAX 261       /* room for any command built here */

/*
 * DELIVER KEY BF DE usage index (spec §12.6): cardDiv ‖ cityDiv ‖ R (DES, Lc 18) or cardDiv ‖
 * cityDiv ‖ R ‖ 00⁸ (SM4, Lc 20), to derive K_card and the session key; r NULL gives cardDiv ‖
 * cityDiv (Lc 10), K_card only. Writes into cmd (cap bytes). Returns the length, or SSC_EINVAL
 * (an algorithm other than DES or SM4, cmd too small).
 */
int psam_cmd_deliver_key(uint8_t *cmd, size_t cap, enum ssc_alg alg, const struct config_key *key,
			 const struct keyprov_div *div, const uint8_t *r);

/*
 * CIPHER 80 FA 00 00 of x: DES Lc 08 (the PSAM answers 61 08 and C comes with GET RESPONSE), SM4
 * Lc 10 with x ‖ 00⁸ (the PSAM answers the 16 bytes C16 that the terminal folds). Same returns.
 */
int psam_cmd_cipher(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t x[8]);

/*
 * MAC 80 FA 05 00 with iv (8 bytes DES, 16 SM4) ‖ data (len bytes, unpadded: the PSAM pads).
 * The command carries what is MAC'd (a RELOAD PIN command with its new PIN, a record of personal
 * data): the caller sends it as a secret and wipes cmd. Same returns, SSC_EINVAL also when iv ‖
 * data exceeds 255 bytes.
 */
int psam_cmd_mac(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t *iv,
		 const uint8_t *data, size_t len);

/*
 * ENCRYPT 80 FA 01 00 of len bytes (a multiple of the algorithm's block, 8 DES or 16 SM4, at most
 * 32): the PIN block of UNBLOCK PIN. A secret, as for MAC. Same returns.
 */
int psam_cmd_encrypt(uint8_t *cmd, size_t cap, enum ssc_alg alg, const uint8_t *in, size_t len);

/*
 * The 8-byte cryptogram from CIPHER's answer data (len bytes): DES the 8 bytes as they are, SM4
 * the 16 bytes of C16 folded, C16[0..7] ⊕ C16[8..15] (spec §12.3). Returns 0, or SSC_EPROTO for
 * another length.
 */
int psam_cmd_cryptogram(enum ssc_alg alg, const uint8_t *data, size_t len, uint8_t c[8]);

#endif
