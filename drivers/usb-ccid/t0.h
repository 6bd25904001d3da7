/*
 * This file contains the transport of short APDUs over T=0 (ISO/IEC 7816-3 §12.2) for readers
 * that exchange TPDUs: the command cases 1-4 mapped to TPDUs, 6Cxx answered by sending the
 * command again with P3 = xx, and 61xx by GET RESPONSE until the card has handed out all its
 * data. A pure function over a callback that carries one TPDU (the CCID XfrBlock); the reader
 * itself handles the procedure bytes.
 */
#ifndef SSC_T0_H
#define SSC_T0_H

#include <stddef.h>
#include <stdint.h>

#define T0_RESP_MAX 258      /* one TPDU's answer: 256 data bytes + SW1 SW2 */
#define T0_MAX_EXCHANGES 64  /* TPDUs one APDU may take (GET RESPONSE rounds, 6Cxx resends) */

/*
 * Carries one TPDU (len bytes: 5-byte header, then P3 data bytes for an incoming command) and
 * writes the card's answer (data, then SW1 SW2) into resp (rcap bytes, at least T0_RESP_MAX).
 * Returns the answer's length or a negative SSC_E* (returned as is by t0_transceive()).
 */
typedef int (*t0_xfer_fn)(void *ctx, const uint8_t *tpdu, size_t len, uint8_t *resp,
			  size_t rcap);

/*
 * Sends a short command APDU (len 4..261 bytes; cases 1, 2, 3 and 4, ISO/IEC 7816-4 §5.1) as
 * TPDUs and writes the whole answer (data, then the final SW1 SW2) into resp (cap bytes).
 *   case 1: CLA INS P1 P2 00; case 3: as given.
 *   case 2: CLA INS P1 P2 Le; on 6Cxx sent again with P3 = xx.
 *   case 4: sent without Le; on 61xx the data is fetched with GET RESPONSE.
 * After case 2 or 4, while the card answers 61xx, GET RESPONSE (00 C0 00 00 xx, the logical
 * channel of CLA kept) fetches xx more bytes (6Cxx to a GET RESPONSE: again with P3 = xx). The
 * answers of cases 1 and 3 are returned as they come, 61xx included, as the APDU level would.
 * Returns the answer's length (>= 2), or SSC_EINVAL (not a short APDU: an extended length or an
 * Lc that disagrees with len), SSC_EPROTO (an answer shorter than 2 bytes, longer than asked,
 * more than cap in all, or more than T0_MAX_EXCHANGES TPDUs), or the callback's error.
 */
int t0_transceive(const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap, t0_xfer_fn xfer,
		  void *ctx);

#endif
