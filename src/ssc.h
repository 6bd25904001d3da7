/*
 * This file contains the social security card application over one card connection: selecting
 * SSSE and its DFs, learning the algorithm and generation, reading records in either addressing
 * mode, EF06 read authorisation, external and internal authentication through a key provider, and
 * the basic read of iReadCardBas (spec §2, §12). One struct ssc_card lives for one operation.
 */
#ifndef SSC_SSC_H
#define SSC_SSC_H

#include <stddef.h>
#include <stdint.h>

#include "cardio.h"
#include "config.h"
#include "items.h"
#include "keyprov.h"
#include "sscard/error.h"

/*
 * The card application's memory of one insertion, bits of the word the reader core keeps per
 * insertion (job_run_fn's *insertion_flags: zero on a new insertion; the core never looks in).
 * 0x2 is ops.h's CARD_FLAG_RESOLVED.
 */
#define CARD_FLAG_READ_AUTH 0x1    /* EF06 needed read authorisation on this insertion */
#define CARD_FLAG_TAG_MODE 0x4     /* the card refused READ RECORD by number (6A86): by tag */
#define CARD_FLAG_EXACT_LE 0x8     /* the card answered Le 00 with 6Cxx: the exact length */

/* READ RECORD addressing (spec §2.1): P2 low bits 100 (record number) or 000 (tag). */
enum ssc_read_mode { SSC_READ_BY_NUMBER = 0, SSC_READ_BY_TAG = 1 };

/* The state of one operation on one card. Fill with ssc_open(); nothing to free. */
struct ssc_card {
	struct card_io *io;           /* borrowed */
	const struct config *cfg;     /* borrowed */
	struct keyprov *kp;           /* borrowed; NULL = no key provider at all */
	unsigned *insertion_flags;    /* borrowed: the core's per-insertion memory (CARD_FLAG_*) */

	uint8_t hist[15];             /* ATR historical bytes */
	size_t hist_len;
	enum ssc_alg alg;             /* from the FCI's 9F0C; SSC_ALG_NONE until known */
	int gen;                      /* 1, 2, 3 (first digit of the spec version); 0 = not read */
	char spec_version[8];         /* "2.00" once EF05 03 was read */
	uint8_t card_id[16];          /* 卡识别码 once EF05 01 was read */
	int have_card_id;
	enum ssc_read_mode read_mode; /* the mode that works on this card, learned on 6A86 */
	int mode_switched;            /* the other mode was tried once already */
	int cur_df;                   /* selected: 0 SSSE, 1..5 DF01..DF05, -1 unknown */
	int read_authed;              /* EF06 read authorisation done since SSSE was selected */
	int authenticated;            /* some EXTERNAL AUTH succeeded: the caller should reset */
	char card_number[16];         /* 卡号 once ssc_card_number() read it */
	int have_card_number;
};

#define SSC_PIN_MAX 12                /* digits: the card's limit (spec §12.5) */

/*
 * A PIN, as digits. It lives on the stack of one operation and is wiped with ssc_pin_wipe() on
 * every path; nothing formats it into a message or a log.
 */
struct ssc_pin {
	char digits[SSC_PIN_MAX + 1];
	size_t len;
};

/* What card.read_basic reports; strings are UTF-8, NUL-terminated. */
struct ssc_basic {
	char region_code[7];
	char ssn[64];
	char card_number[32];
	char card_id[33];
	char name[160];
	char sex[8];
	char nation[8];
	char birth_place[8];
	char birth_date[9];
	char spec_version[16];
	char issue_date[9];
	char expiry_date[9];
	char atr_historical[31];
	int expired;                  /* the expiry date lies before today (UTC) */
};

/*
 * Finds the historical bytes of an ATR (ISO 7816-3: TS, T0 with Y1 and K, the interface bytes
 * chained by TDi, K historical bytes, then TCK when any TDi names a protocol other than T=0).
 * *hist points into atr. Returns 0, or SSC_EPROTO for an ATR whose length does not add up.
 */
int ssc_atr_historical(const uint8_t *atr, size_t len, const uint8_t **hist, size_t *hist_len);

/*
 * Starts an operation: parses io's ATR, SELECTs SSSE by name (00 A4 04 00 0F 7378312E…D5CF) and
 * reads the algorithm from its FCI. cfg, kp (may be NULL) and insertion_flags are borrowed for
 * the life of c. One APDU (plus GET RESPONSE on a T=0-style card).
 * Returns 0; SSC_ENOTSSC (no SSSE application), SSC_EUNSUPPORTED (an algorithm other than DES or
 * SM4), SSC_EPROTO (malformed ATR or FCI), or a transport error.
 */
int ssc_open(struct ssc_card *c, struct card_io *io, const struct config *cfg, struct keyprov *kp,
	     unsigned *insertion_flags, struct ssc_diag *diag);

/*
 * Selects a DF under SSSE (df 1..5: AID D156000005 00..04) or SSSE again (df 0), unless it is the
 * current one. Selecting another DF drops the security state. Returns 0, SSC_ENOFILE, or errors.
 */
int ssc_select_df(struct ssc_card *c, int df, struct ssc_diag *diag);

/*
 * Reads one record of file f holding item it into val (cap bytes): record number recno (0 = the
 * item's own, by the card's generation) in number mode, or the item's tag in tag mode, with SFI
 * in P2 (no SELECT of the EF). Falls back to the other mode once on 6A86 and keeps the mode that
 * works. For SSSE/EF06 applies the read-authorisation policy (cfg->read_auth): on 6982 (auto)
 * authenticates with cfg->key_read_auth, sets CARD_FLAG_READ_AUTH in *insertion_flags and reads
 * again; with the flag set or read_auth = always it authenticates first. Checks the record's tag
 * and length. Reading EF05 01 or 03 also records the card id / spec version in c.
 * Returns the value length; SSC_ENORECORD (no such record: the item is absent), SSC_ENOFILE,
 * SSC_ESECURITY (read authorisation refused by policy or failed), SSC_EPROTO (malformed record),
 * SSC_EBADCARDDATA, the authentication errors of ssc_external_auth, or transport errors.
 */
int ssc_read_item(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		  int recno, uint8_t *val, size_t cap, struct ssc_diag *diag);

/*
 * Reads an item and decodes it to text (items_decode). Same returns, plus the length of text.
 */
int ssc_read_text(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		  char *text, size_t cap, struct ssc_diag *diag);

/*
 * The card's generation (1, 2, 3) and algorithm, reading EF05 03 when not known yet (the FCI had
 * no 9F0C, or the generation is needed). Return 0 or the read's errors; SSC_EBADCARDDATA for a
 * spec version that is not "d.dd".
 */
int ssc_ensure_gen(struct ssc_card *c, struct ssc_diag *diag);

/*
 * The diversification factors (spec §12.2): cardDiv from the ATR's last 8 historical bytes,
 * cityDiv from the 卡识别码's region (read from EF05 01 when not known yet).
 * Returns 0, SSC_EBADCARDDATA (fewer than 8 historical bytes, a region that is not BCD), or the
 * read's errors.
 */
int ssc_div(struct ssc_card *c, struct keyprov_div *div, struct ssc_diag *diag);

/*
 * EXTERNAL AUTHENTICATE with card key key->card_kid: GET CHALLENGE (8 bytes), the cryptogram
 * C of R from the key provider (usage/index), then 00 82 00 KID with C ‖ R (DES, Lc 10) or
 * C ‖ R ‖ 01 (SM4, Lc 11), in the currently selected DF. Sets c->authenticated.
 * Returns 0; SSC_EUNSUPPORTED (spec 1.00 card); SSC_ENOPSAM / SSC_EPSAMALGO / SSC_EPSAM (key
 * provider); SSC_EAUTHFAILED (63Cx, diag->retries_left); SSC_EKEYBLOCKED (63C0 / 6983); other
 * card status words; transport errors. Blocks on the card and the PSAM, bounded by the deadline.
 */
int ssc_external_auth(struct ssc_card *c, const struct config_key *key, struct ssc_diag *diag);

/*
 * INTERNAL AUTHENTICATE (spec §12.5): random process factor P and plaintext X (RAND_bytes),
 * 00 88 00 KID 10 P ‖ X with cfg->key_internal, and the expected answer from the key provider;
 * compares the first 8 bytes in constant time. Returns 0; SSC_ENOTGENUINE (mismatch, or the card
 * refused); SSC_EUNSUPPORTED (spec 1.00); SSC_EPROTO (answer shorter than 8 bytes); key provider
 * and transport errors.
 */
int ssc_internal_auth(struct ssc_card *c, struct ssc_diag *diag);

/*
 * ssc_internal_auth() with the caller's P ‖ X (px: the process factor, then the plaintext), for a
 * receipt that binds the card's answer to itself; answer gets the card's first 8 bytes (also when
 * they do not match: SSC_ENOTGENUINE). Same returns.
 */
int ssc_internal_auth_px(struct ssc_card *c, const uint8_t px[16], uint8_t answer[8],
			 struct ssc_diag *diag);

/*
 * The INTERNAL AUTHENTICATE command alone, for ssc_internal_auth_px and the two-step read
 * (src/ssc_hsm.c): 00 88 00 KID(cfg->key_internal) 10 px, the card's first 8 answer bytes into
 * out. Returns 0; SSC_ENOTGENUINE (the card refused, its status word in diag); SSC_EPROTO (fewer
 * than 8 bytes); transport errors.
 */
int ssc_internal_auth_command(struct ssc_card *c, const uint8_t px[16], uint8_t out[8],
			      struct ssc_diag *diag);
/*
 * GET CHALLENGE 00 84 00 00 08: the card's single-use random R (spec §12.5) into r. Returns 0, or
 * the card's error (SSC_EPROTO when the answer is not 8 bytes).
 */
int ssc_get_challenge(struct ssc_card *c, uint8_t r[8], struct ssc_diag *diag);

/*
 * The basic read (card.read_basic / iReadCardBas): EF05 01 03 05 06 07 and EF06 08 09 [4E] 0A
 * 0B 0C 0D, one READ RECORD each after the SELECT of ssc_open (plus read authorisation where the
 * card needs it); validates the card number's check character and the 卡识别码's region and RID;
 * sets expired by comparing the expiry date with today's UTC date (the card is valid through its
 * expiry date). Returns 0 or the errors of ssc_read_item / items_decode.
 */
int ssc_read_basic(struct ssc_card *c, struct ssc_basic *b, struct ssc_diag *diag);

/*
 * The 卡识别码 (EF05 01) into c->card_id, read once per operation, with its region and RID checked.
 * Returns 0, SSC_EBADCARDDATA, or the read's errors.
 */
int ssc_ensure_card_id(struct ssc_card *c, struct ssc_diag *diag);

/*
 * The card number (卡号, EF05 07, check character verified) into c->card_number, read once per
 * operation. Returns 0 or the errors of ssc_read_text.
 */
int ssc_card_number(struct ssc_card *c, struct ssc_diag *diag);

/*
 * What every authenticated command needs, checked without touching the key provider's keys: a
 * generation 2 or 3 card, the diversification factors into *div, and a key provider that serves
 * the card's algorithm. Returns 0; SSC_EUNSUPPORTED (spec 1.00); SSC_ENOPSAM / SSC_EPSAMALGO; the
 * errors of ssc_div.
 */
int ssc_auth_prepare(struct ssc_card *c, struct keyprov_div *div, struct ssc_diag *diag);

/*
 * Parses a PIN from text (len bytes, not NUL-terminated): digits only, min_len..max_len of them
 * (the configuration's limits, at most SSC_PIN_MAX). Returns 0 or SSC_EPINFORMAT (the message
 * gives the rule, never the text).
 */
int ssc_pin_parse(struct ssc_pin *p, const char *text, size_t len, int min_len, int max_len,
		  struct ssc_diag *diag);

/* 1 when the two PINs are equal (constant time), else 0. */
int ssc_pin_equal(const struct ssc_pin *a, const struct ssc_pin *b);

/* Wipes a PIN (OPENSSL_cleanse). */
void ssc_pin_wipe(struct ssc_pin *p);

/*
 * The PIN commands of spec §12.5, in SSSE, each sent with CARDIO_SECRET (the APDU log shows no
 * body) and every buffer that held the PIN wiped:
 * - ssc_verify_pin: VERIFY 00 20 00 00 Lc PIN (BCD, odd length padded F).
 * - ssc_change_pin: CHANGE PIN 80 5E 01 00 Lc old ‖ FF ‖ new.
 * - ssc_reload_pin: GET CHALLENGE, the MAC from the key provider with cfg->key_pin_reload over
 *   80 5E 00 00 Lc ‖ PIN, then RELOAD PIN 80 5E 00 00 Lc PIN ‖ MAC4.
 * - ssc_unblock_pin: the PIN block L ‖ PIN ‖ 80 ‖ 00.. (8 bytes DES, 16 SM4) encrypted by the key
 *   provider with cfg->key_pin_unblock, GET CHALLENGE, the MAC with the same key over
 *   84 24 00 00 Lc ‖ enc, then UNBLOCK PIN 84 24 00 00 Lc enc ‖ MAC4.
 * Returns 0; SSC_EPINWRONG (63Cx, diag->retries_left = x); SSC_EPINBLOCKED (63C0 / 6983,
 * retries_left 0); SSC_EAUTHFAILED (6988: the card refused the MAC, a wrong reload/unblock key);
 * for reload and unblock the errors of ssc_auth_prepare and of the key provider; other card
 * status words; transport errors. Blocks on the card (and the PSAM), bounded by the deadline.
 */
int ssc_verify_pin(struct ssc_card *c, const struct ssc_pin *pin, struct ssc_diag *diag);
int ssc_change_pin(struct ssc_card *c, const struct ssc_pin *old_pin,
		   const struct ssc_pin *new_pin, struct ssc_diag *diag);
int ssc_reload_pin(struct ssc_card *c, const struct ssc_pin *new_pin, struct ssc_diag *diag);
int ssc_unblock_pin(struct ssc_card *c, const struct ssc_pin *new_pin, struct ssc_diag *diag);

/*
 * Writes one record of file f holding item it (spec §12.5): data = tag ‖ reclen ‖ val (len <=
 * reclen bytes; the card pads the rest). The caller has encoded and padded val and checked the
 * file's generation.
 * - SSSE files (write key 04 or 0D): plain UPDATE RECORD 00 DC P1 P2; the caller has done the
 *   EXTERNAL AUTH with the file's key (ssc_external_auth) in this operation.
 * - DF files (STK): GET CHALLENGE, the MAC from the key provider with cfg->key_stk over the
 *   command header (CLA 04, Lc' = data + 4) ‖ data, then UPDATE RECORD 04 DC P1 P2 or, with
 *   append, APPEND RECORD 04 E2 00 (SFI << 3).
 * UPDATE addresses the record by number or by tag as reads do on this card (one retry in the
 * other mode on 6A86). The command body is sent with CARDIO_SECRET (personal data).
 * Returns 0; SSC_EAUTHFAILED (6988: wrong STK MAC); SSC_ESECURITY (6982: no authentication);
 * SSC_ENORECORD; SSC_EUNSUPPORTED (spec 1.00, or a file of a later generation); SSC_EINVAL
 * (append to a file that is not cyclic, len > reclen); key provider errors; other status words;
 * transport errors.
 */
int ssc_write_record(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		     int append, uint8_t reclen, const uint8_t *val, size_t len,
		     struct ssc_diag *diag);

/* Today's UTC date as YYYYMMDD (out 9 bytes). */
void ssc_today(char out[9]);

#endif
