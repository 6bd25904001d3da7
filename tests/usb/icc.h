/*
 * This file contains the card side of the line between an emulated CCID reader and its card: the
 * simulated card OS (simcos) seen through one exchange level, short/extended APDU, T=0 TPDU or T=1
 * TPDU (ISO/IEC 7816-3), with the ATR presented for that level and the T=1 faults a test can inject.
 * Pure: no I/O, no clock, no locks (the caller serialises). Test code only; it shares nothing with
 * the daemon's driver on purpose.
 */
#ifndef ICC_H
#define ICC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simcos.h"

#define ICC_T1_INF_MAX 254          /* largest INF field of a T=1 block (IFS 254) */
#define ICC_T1_BLOCK_MAX (3 + ICC_T1_INF_MAX + 1)
#define ICC_T1_IFSD_DEFAULT 32      /* ISO 7816-3 11.4.2: IFSD before any S(IFS request) */
#define ICC_APDU_MAX 1024           /* longest command APDU a chain may assemble */
#define ICC_RESP_MAX 1024           /* longest answer the level can hand back at once */

/* How the reader talks to the card. */
enum icc_level {
	ICC_LEVEL_APDU = 0,  /* short APDU level: the reader carries APDUs, the card OS answers as is */
	ICC_LEVEL_XAPDU,     /* short and extended APDU level (the card OS refuses extended lengths) */
	ICC_LEVEL_T0,        /* T=0 TPDU level: 5-byte headers, 61xx / 6Cxx as a T=0 card answers */
	ICC_LEVEL_T1,        /* T=1 TPDU level: I/R/S blocks with LRC, chaining, IFS, WTX */
};

/* Faults on the T=1 line; each armed fault applies to the next block it can apply to. */
enum icc_fault {
	ICC_FAULT_LRC = 0,   /* the card's next block goes out with a wrong LRC */
	ICC_FAULT_LOST,      /* the card's next block is lost: the reader reports the card mute */
	ICC_FAULT_LOSTCMD,   /* the host's next block never reaches the card (reader: mute) */
	ICC_FAULT_WTX,       /* the card asks for a waiting time extension before its next answer */
	ICC_FAULT_NS,        /* the card's next new I-block carries the wrong N(S) once */
	ICC_FAULT_COUNT
};

/* What icc_xfr made of one transfer. */
enum icc_outcome {
	ICC_OK = 0,          /* an answer is in out */
	ICC_MUTE,            /* no answer: the reader reports ICC_MUTE (lost block, refused TPDU) */
};

/* Counters a test reads to prove that a recovery path really ran. */
struct icc_stats {
	unsigned long xfrs;          /* transfers seen */
	unsigned long apdus;         /* APDUs handed to the card OS */
	unsigned long refused;       /* traffic a TPDU card could not take (answered mute or 61xx) */
	unsigned long case4_as_case3;/* T=0: case-4 APDUs received, answered as T=0 does (61xx) */
	unsigned long t0_61xx;       /* T=0: 61xx answers made by this layer */
	unsigned long t0_6cxx;       /* T=0: 6Cxx answers made by this layer */
	unsigned long t1_i_in;       /* T=1: I-blocks received (chained ones included) */
	unsigned long t1_chain_in;   /* T=1: I-blocks received with the M bit */
	unsigned long t1_chain_out;  /* T=1: I-blocks sent with the M bit */
	unsigned long t1_r_in;       /* T=1: R-blocks received */
	unsigned long t1_r_out;      /* T=1: R-blocks sent */
	unsigned long t1_resent;     /* T=1: blocks sent again on request */
	unsigned long t1_bad_in;     /* T=1: invalid blocks received (LRC, LEN, PCB) */
	unsigned long t1_ifs;        /* T=1: S(IFS request) received */
	unsigned long t1_resynch;    /* T=1: S(RESYNCH request) received */
	unsigned long t1_abort;      /* T=1: S(ABORT request) received */
	unsigned long t1_wtx_out;    /* T=1: S(WTX request) sent */
	unsigned long t1_wtx_in;     /* T=1: S(WTX response) received and accepted */
	unsigned long faults_fired[ICC_FAULT_COUNT];
};

/* Settings of one card line. */
struct icc_params {
	enum icc_level level;
	uint8_t ifsc;                /* T=1: the card's IFSC announced in the ATR (TA3), 1..254 */
	uint8_t wtx_multiplier;      /* T=1: the multiplier the card asks for in S(WTX request) */
	bool auto_get_response;      /* APDU levels: the reader fetches 61xx and re-issues 6Cxx itself */
};

enum icc_last { ICC_LAST_NONE = 0, ICC_LAST_I, ICC_LAST_R, ICC_LAST_S };

/* One card line. Embedded by the reader slot; icc_init / icc_done. */
struct icc {
	struct sim_token *tok;       /* borrowed; outlives the line */
	struct icc_params p;
	struct icc_stats stats;
	int fault[ICC_FAULT_COUNT];  /* armed counts */

	/* T=0: an answer held for GET RESPONSE after 61xx */
	uint8_t t0_pending[SIM_RESP_MAX];
	size_t t0_pending_len;
	bool t0_has_pending;

	/* T=1 */
	uint8_t ifsd;                /* the host's IFSD */
	uint8_t ns_card;             /* N(S) of the card's next new I-block */
	uint8_t nr_expect;           /* N(S) expected in the host's next I-block */
	uint8_t rx[ICC_APDU_MAX];    /* command APDU being assembled from a chain */
	size_t rx_len;
	uint8_t tx[ICC_RESP_MAX];    /* answer APDU being sent, possibly in a chain */
	size_t tx_len, tx_off;       /* tx_off: bytes already sent in earlier (acknowledged) blocks */
	size_t tx_chunk;             /* bytes carried by the last I-block sent */
	bool tx_active;              /* an answer chain is under way (last I-block had M = 1) */
	uint8_t last[ICC_T1_BLOCK_MAX]; /* the last block sent (correct form), for resending */
	size_t last_len;
	enum icc_last last_kind;
	bool wtx_pending;            /* S(WTX request) sent; held[] goes out after S(WTX response) */
	uint8_t held[ICC_T1_BLOCK_MAX];
	size_t held_len;
	uint8_t wtx_sent_value;
	int wtx_more;                /* further WTX requests still to make before the answer */
};

/* Starts a line over tok (borrowed) with params p. The card is taken as unpowered. */
void icc_init(struct icc *c, struct sim_token *tok, const struct icc_params *p);

/* Wipes held answers (they may hold card data). */
void icc_done(struct icc *c);

/*
 * Writes the ATR the reader reports at this level into atr (SIM_ATR_MAX bytes) and returns its
 * length. APDU levels: the card's own ATR. T=0: 3B 0K <historical bytes> (T=0 only). T=1:
 * 3B 8K 81 31 <IFSC> 45 <historical bytes> TCK (T=1 only, BWI 4, CWI 5). The historical bytes, and
 * with them the chip serial (cardDiv), are always the card's own.
 */
size_t icc_atr(const struct icc *c, uint8_t *atr);

/* Power-on or warm reset: resets the card OS and every transport state (T=1: N(S) 0, IFSD 32). */
void icc_power_on(struct icc *c);

/* Arms count more occurrences of fault f (count <= 0 disarms it). */
void icc_fault(struct icc *c, enum icc_fault f, int count);

/*
 * One transfer: in/len is what the host put in the XfrBlock (an APDU, a T=0 TPDU or a T=1 block).
 * Writes the card's answer into out (cap bytes, at least ICC_RESP_MAX) and its length into
 * *out_len. Returns ICC_OK or ICC_MUTE (the reader must then report the card mute). Never blocks.
 */
enum icc_outcome icc_xfr(struct icc *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			 size_t *out_len);

/* The exclusive-or of p[0..n), i.e. the T=1 LRC of those bytes. */
uint8_t icc_lrc(const uint8_t *p, size_t n);

/*
 * Finds the historical bytes of an ATR. Returns 0 and sets *off and *n, or -1 when the ATR is
 * malformed (shorter than its T0/TDi bytes say).
 */
int icc_atr_historical(const uint8_t *atr, size_t len, size_t *off, size_t *n);

#endif
