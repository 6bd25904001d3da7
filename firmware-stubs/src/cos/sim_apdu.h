/*
 * This file contains the simulator's command APDU parser (ISO 7816-4 short cases 1-4) and the
 * status words it answers with. Extended lengths are not supported: they answer 6700.
 */
#ifndef SIM_APDU_H
#define SIM_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_OK             0x9000
#define SW_BYTES_LEFT     0x6100   /* | count: GET RESPONSE needed */
#define SW_WRONG_LENGTH   0x6700
#define SW_TRIES_LEFT     0x63C0   /* | tries */
#define SW_INCOMPATIBLE   0x6981   /* command incompatible with the file structure */
#define SW_SECURITY       0x6982
#define SW_BLOCKED        0x6983
#define SW_NO_CHALLENGE   0x6984
#define SW_CONDITIONS     0x6985
#define SW_NO_CURRENT_EF  0x6986
#define SW_BAD_MAC        0x6988
#define SW_BAD_DATA       0x6A80
#define SW_NOT_FOUND      0x6A82
#define SW_NO_RECORD      0x6A83
#define SW_BAD_P1P2       0x6A86
#define SW_NO_KEY         0x6A88
#define SW_BAD_OFFSET     0x6B00
#define SW_EXACT_LE       0x6C00   /* | exact length */
#define SW_BAD_INS        0x6D00
#define SW_BAD_CLA        0x6E00
#define SW_TECHNICAL      0x6F00

/* A parsed command. data points into the caller's buffer (borrowed). le is 1..256 when has_le. */
struct sim_apdu {
	uint8_t cla, ins, p1, p2;
	const uint8_t *data;
	size_t lc;                 /* 0 when no data */
	bool has_le;
	size_t le;                 /* Le byte 00 means 256 */
};

/*
 * Parses cmd (len bytes, cmd may be NULL when len is 0) into *a. Returns SW_OK, or SW_WRONG_LENGTH
 * when the bytes are no valid short APDU (fewer than 4 bytes, Lc 00 or Lc inconsistent with len).
 */
uint16_t sim_apdu_parse(const uint8_t *cmd, size_t len, struct sim_apdu *a);

#endif
