/*
 * This file contains the PSAM key provider (a struct keyprov that drives PSAM cards through a
 * struct psam_source, spec §12.6) and the PSAM probe that sscardd gives the reader core to tell
 * whether a newly inserted card is a PSAM or a user card (readers_probe_fn).
 */
#ifndef SSC_PSAM_H
#define SSC_PSAM_H

#include "cardio.h"
#include "config.h"
#include "keyprov.h"
#include "psam_source.h"

/*
 * Asks the card in io whether it is a PSAM: SELECT 00 A4 04 00 06 D15600000590 (the default PSAM
 * key application; the probe runs before any configuration is at hand). A PSAM answers 9000
 * with an FCI; its 9F0C algorithm byte gives *alg (01 DES, 03 SM4; no 9F0C means DES), and
 * READ BINARY 00 B0 96 00 06 gives the terminal number as 12 hex digits in term
 * ("000000000000" when the PSAM has none). Sends at most two APDUs.
 * Returns 0 (a PSAM), SSC_ENOTFOUND (not a PSAM: the card refused the selection, e.g. 6A82 from
 * a user card, or answered without an FCI), SSC_EPSAMALGO (a PSAM of an algorithm sscard does not
 * speak), or the transport's error (SSC_ETIMEDOUT, SSC_ECARDREMOVED, SSC_EPROTO, ...).
 * Blocks for the exchanges (bounded by io->deadline_ms). The worker thread of io's reader.
 */
int psam_probe(struct card_io *io, enum ssc_alg *alg, char term[13]);

/*
 * Creates the PSAM key provider over src (borrowed; must outlive the provider) and cfg
 * (borrowed; must outlive it too). src's acquire() hands out a PSAM with its key application
 * (cfg->psam_aid) already selected. Every operation acquires a PSAM of the card's
 * algorithm from src for its own duration only, and releases it (marked broken after a
 * transport failure). Returns 0 and *out (free it with keyprov_free()), or SSC_ENOMEM.
 * Thread-safe: the provider has no mutable state; src serialises access to each PSAM.
 *
 * What the operations send (spec §12.6), and their errors:
 * - cryptogram: DELIVER KEY BF DE usage index with cardDiv ‖ cityDiv ‖ R (DES Lc 18; SM4 ‖ 00⁸,
 *   Lc 20), then CIPHER 80 FA 00 00 (DES: X, 61 08, GET RESPONSE; SM4: X ‖ 00⁸, 16 bytes folded).
 * - mac: DELIVER KEY (Lc 10), then 80 FA 05 00 IV ‖ data, sent with CARDIO_SECRET (the data
 *   may be a RELOAD PIN command or a record of personal data: the APDU log shows no body).
 * - encrypt: DELIVER KEY (Lc 10), then 80 FA 01 00 block.
 * - terminal_number: READ BINARY 00 B0 96 00 06 ("000000000000" when the PSAM refuses it).
 * A PSAM status word other than 9000 gives SSC_EPSAM with diag->sw; no PSAM SSC_ENOPSAM; none of
 * the algorithm SSC_EPSAMALGO; all busy until the deadline SSC_ETIMEDOUT; a malformed PSAM answer
 * SSC_EPROTO.
 */
int psam_keyprov_new(struct psam_source *src, const struct config *cfg, struct keyprov **out);

#endif
