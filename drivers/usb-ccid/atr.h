/*
 * This file contains ATR parsing (ISO/IEC 7816-3 §8) for the USB CCID driver: the protocols a card
 * offers, its transmission parameters (TA1 Fi/Di, TC1, TC2 WI, TA2 specific mode, the T=1 bytes
 * IFSC, BWI/CWI and EDC), the choice of protocol and speed against a reader's abilities, the PPS
 * request and its check (§9), and the CCID SetParameters bytes. Pure functions, no I/O.
 */
#ifndef SSC_ATR_H
#define SSC_ATR_H

#include <stddef.h>
#include <stdint.h>

#define ATR_MAX 33
#define ATR_FIDI_DEFAULT 0x11      /* Fd = 372, Dd = 1 */
#define ATR_PPS_MAX 4              /* PPSS PPS0 [PPS1] PCK: this driver never sends PPS2/PPS3 */

struct atr_info {
	uint8_t ts;                /* 0x3B direct, 0x3F inverse convention */
	uint16_t protocols;        /* bit t set: T=t offered (T=15 "global" included as bit 15) */
	uint8_t default_proto;     /* the first offered protocol (T of TD1; 0 when no TD1) */
	int has_ta1;
	uint8_t ta1;               /* Fi (high nibble) / Di (low nibble) index */
	int has_tc1;
	uint8_t tc1;               /* extra guard time N */
	int specific;              /* TA2 present: specific mode, no PPS */
	uint8_t ta2;               /* b8 mode cannot change, b5 implicit parameters, b4-b1 T */
	uint8_t wi;                /* T=0 waiting integer from TC2, default 10 */
	uint8_t ifsc;              /* T=1 from the first TA after a TD that says T=1, default 32 */
	uint8_t bwi, cwi;          /* T=1 from the first such TB, defaults 4 and 13 */
	int crc;                   /* T=1 EDC: 1 = CRC (first such TC bit 1), 0 = LRC */
	int has_tck;
	size_t hist_off, hist_len; /* historical bytes within the ATR */
};

/* The choice of protocol and speed for one card in one reader. */
struct atr_choice {
	uint8_t proto;             /* 0 or 1 */
	uint8_t fidi;              /* Fi/Di to use after a successful PPS (or in specific mode) */
	int need_pps;              /* negotiable mode and something other than the defaults wanted */
};

/*
 * Parses an ATR of len bytes into *out. Checks TS (3B or 3F), that the interface bytes and the
 * historical bytes fit exactly in len (with TCK when a protocol other than T=0 is indicated), and
 * TCK (the XOR of T0 to TCK must be 0). A TA for T=1 outside 1..254 leaves the default IFSC.
 * Returns 0, SSC_EPROTO (malformed), or SSC_EINVAL (NULL).
 */
int atr_parse(const uint8_t *atr, size_t len, struct atr_info *out);

/* Fi for a TA1 high nibble, 0 when RFU. */
unsigned atr_fi(uint8_t fidi);

/* Di for a TA1 low nibble, 0 when RFU. */
unsigned atr_di(uint8_t fidi);

/*
 * Chooses the protocol and speed. reader_protocols is the reader's dwProtocols (bit 0 T=0, bit 1
 * T=1); max_rate_bps and clock_khz (its dwMaxDataRate and dwDefaultClock; 0 = unknown, then TA1
 * is not used) say whether the reader can run the card's TA1 speed. T=1 is preferred when both
 * sides can do both. In specific mode (TA2) the card's one protocol must be the reader's.
 * Returns 0, or SSC_EPROTO (no protocol in common, or a specific mode the reader cannot run).
 */
int atr_choose(const struct atr_info *a, uint32_t reader_protocols, uint32_t max_rate_bps,
	       uint32_t clock_khz, struct atr_choice *out);

/*
 * Builds a PPS request for protocol proto (0 or 1) and Fi/Di fidi (ATR_FIDI_DEFAULT: no PPS1)
 * into out (at least ATR_PPS_MAX bytes). Returns its length (3 or 4), or SSC_EINVAL.
 */
int atr_pps_build(uint8_t proto, uint8_t fidi, uint8_t *out);

/*
 * Checks the card's PPS response against the request (ISO 7816-3 §9.3): PPSS FF, the same
 * protocol, PPS1 either echoed or absent (then the defaults hold), no PPS2/PPS3 we did not ask
 * for, the length the PPS0 bits announce, and PCK. Sets *fidi_out to the Fi/Di now in force.
 * Returns 0, or SSC_EPROTO (the negotiation failed: the card must be reset).
 */
int atr_pps_check(const uint8_t *req, size_t req_len, const uint8_t *resp, size_t resp_len,
		  uint8_t *fidi_out);

/*
 * Writes the abProtocolDataStructure of PC_to_RDR_SetParameters for protocol proto (0: 5 bytes,
 * 1: 7 bytes) with Fi/Di fidi and the ATR's other parameters into out (at least 7 bytes).
 * Returns the length, or SSC_EINVAL.
 */
int atr_ccid_params(const struct atr_info *a, uint8_t proto, uint8_t fidi, uint8_t *out);

/*
 * The card's longest waiting time in milliseconds (rounded up): T=0 WWT = 960 * WI * Fi / f,
 * T=1 BWT = 11 etu + 2^BWI * 960 * 372 / f, at clock_khz (0: 4000 kHz, ISO's lowest usual clock)
 * and Fi/Di fidi. Never less than 1.
 */
unsigned atr_wait_ms(const struct atr_info *a, uint8_t proto, uint8_t fidi, uint32_t clock_khz);

#endif
