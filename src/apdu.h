/*
 * This file contains the APDU layer over struct card_io: building short command APDUs, one robust
 * exchange helper (61xx GET RESPONSE, 6Cxx re-send, length checks), the mapping of status words to
 * sscard errors, and a BER-TLV reader for FCIs (with the algorithm byte that the card and the PSAM
 * both announce in theirs). It knows no card application.
 */
#ifndef SSC_APDU_H
#define SSC_APDU_H

#include <stddef.h>
#include <stdint.h>

#include "cardio.h"
#include "sscard/error.h"

#define APDU_LE_NONE (-1)      /* no Le byte (case 1 / case 3) */
#define APDU_MAX_DATA 256      /* largest data part of a short response */

#define APDU_SW_OK 0x9000

/*
 * Builds a short command APDU into out (cap bytes): CLA INS P1 P2 [Lc data] [Le]. lc may be 0 (no
 * Lc byte); le is APDU_LE_NONE or 0..256 (256 and 0 are both encoded 00 and mean "all").
 * Returns the APDU length, or SSC_EINVAL (lc > 255, le out of range, out too small).
 */
int apdu_build(uint8_t *out, size_t cap, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
	       const uint8_t *data, size_t lc, int le);

/*
 * Sends cmd and collects the whole answer: on 61xx it sends GET RESPONSE (00 C0 00 00 xx) and
 * appends what comes back (at most 8 rounds); on 6Cxx it re-sends cmd once with Le = xx. Copies
 * the response data (at most cap bytes) into data and the final status word into *sw.
 * flags go to io->transmit (CARDIO_SECRET, CARDIO_PERSONAL).
 * Returns the data length (>= 0) with *sw set, whatever the status word; or a transport error
 * (SSC_ETIMEDOUT, SSC_ECARDREMOVED, SSC_EREADER, ...) or SSC_EPROTO (answer shorter than 2 bytes,
 * longer than the buffer, a status word that is no status word, a second 6Cxx, a GET RESPONSE
 * loop) with diag->msg set. Blocks for the transmissions (bounded by io->deadline_ms).
 */
int apdu_exchange(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *data,
		  size_t cap, uint16_t *sw, unsigned flags, struct ssc_diag *diag);

/* What a status word answers, for the mapping of 63Cx / 6983. */
enum apdu_sw_ctx {
	APDU_CTX_GENERIC = 0,  /* 63Cx / 6983 as a key's try counter */
	APDU_CTX_PIN,          /* 63Cx / 6983 as the PIN's try counter */
	APDU_CTX_SM,           /* a command with a MAC: 6988 / 9302 mean the key is wrong */
};

/*
 * Maps a status word other than 9000 to an sscard error, sets diag->sw and, for 63Cx / 6983,
 * diag->retries_left; returns the error (0 for 9000). 6A82 SSC_ENOFILE, 6A83 SSC_ENORECORD, 6982
 * SSC_ESECURITY, 6A81 and 6D00 SSC_EUNSUPPORTED. The try counters: in APDU_CTX_PIN 63Cx (x > 0)
 * SSC_EPINWRONG, 63C0 (the failure that used the last try) and 6983 SSC_EPINBLOCKED; otherwise
 * 63Cx SSC_EAUTHFAILED, 63C0 and 6983 SSC_EKEYBLOCKED. In APDU_CTX_SM 6988 and 9302 (MAC
 * wrong) SSC_EAUTHFAILED. Everything else SSC_ECARDSW, whose message names the word and reads it.
 * The messages of the named errors are for the person at the desk and do not repeat the status
 * word (it is in diag->sw).
 * what names the command for the message ("READ RECORD SSSE/EF06 08"; never personal data).
 */
int apdu_sw_error(uint16_t sw, enum apdu_sw_ctx ctx, const char *what, struct ssc_diag *diag);

/* Sends cmd, expects 9000 (else apdu_sw_error with APDU_CTX_GENERIC); returns the data length. */
int apdu_exchange_ok(struct card_io *io, const uint8_t *cmd, size_t cmd_len, uint8_t *data,
		     size_t cap, unsigned flags, const char *what, struct ssc_diag *diag);

/* One BER-TLV element found in a buffer; val points into that buffer (borrowed). */
struct apdu_tlv {
	uint32_t tag;          /* the tag bytes as a number: 0x6F, 0x9F0C, ... */
	int constructed;       /* bit 6 of the first tag byte */
	const uint8_t *val;
	size_t len;
};

/*
 * Reads the BER-TLV element at *off of buf (len bytes) and advances *off past it. Tags of up to 3
 * bytes, lengths in short form or 81 / 82 long form. Skips 00 and FF filler bytes between elements.
 * Returns 1 (an element in *out), 0 (end of buffer) or SSC_EPROTO (truncated or malformed);
 * never reads outside buf.
 */
int apdu_tlv_next(const uint8_t *buf, size_t len, size_t *off, struct apdu_tlv *out);

/*
 * Finds the first element with tag among the elements at the top level of buf. Returns 1 (found),
 * 0 (absent) or SSC_EPROTO (malformed before it was found).
 */
int apdu_tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct apdu_tlv *out);

/*
 * Reads the algorithm identifier from an FCI, as the card and the PSAM both announce it (spec
 * §12.4: 6F ... A5 ... 9F0C 03 86 01 xx; 9F0C also accepted directly under 6F), as BER-TLV, never
 * by position. Returns 1 with *alg_id set, 0 when the FCI has no 9F0C, or SSC_EPROTO (no 6F
 * template, or malformed TLV).
 */
int apdu_fci_alg(const uint8_t *fci, size_t len, uint8_t *alg_id);

#endif
