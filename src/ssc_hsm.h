/*
 * This file contains the card side of the two-step read of spec §13.1 (what
 * iReadCardBas_HSM_Step1/2 do): step 1 asks the card for its internal-authentication answer and,
 * where it demands read authorisation, a challenge, and writes the step-1 string for the
 * province's key server; step 2 checks the key server's answer against the card's, then
 * read-authorises with the server's cryptogram and reads as card.read_basic does. No key provider
 * is used: the keys are the key server's, reached by the client.
 */
#ifndef SSC_SSC_HSM_H
#define SSC_SSC_HSM_H

#include <stddef.h>
#include <stdint.h>

#include "ssc.h"

/* What step 1 learnt, kept by the session until step 2. Not secret (it is the step-1 string). */
struct ssc_hsm_step1 {
	enum ssc_alg alg;
	uint8_t hist[15];          /* the ATR's historical bytes */
	size_t hist_len;
	uint8_t card_id[16];       /* 卡识别码 */
	uint8_t p[8], x[8];        /* the process factor and plaintext of INTERNAL AUTHENTICATE */
	uint8_t c[8];              /* the card's answer to it */
	uint8_t r[8];              /* the card's challenge, when has_r */
	int has_r;                 /* the card demands read authorisation of SSSE/EF06 */
};

#define SSC_HSM_STEP1_MAX 160      /* the step-1 string with its NUL */

/*
 * Step 1 on c (ssc_open done; c->kp is not used): reads the 卡识别码 (EF05 01) and, when the
 * FCI gave none, the algorithm (EF05 03); INTERNAL AUTHENTICATE 00 88 00 KID 10 P ‖ X with px =
 * P ‖ X (16 bytes the caller drew from a CSPRNG) and cfg->key_internal's card key id, keeping the
 * card's answer C; then, when the card demands read authorisation of EF06 (cfg read_auth always;
 * CARD_FLAG_READ_AUTH of this insertion; or, with auto, a READ RECORD of EF06 08 answered 6982,
 * which sets that flag), GET CHALLENGE as the last command, so that the challenge R is what the
 * card expects in step 2. Fills *st. Returns 0; SSC_EUNSUPPORTED (a spec 1.00 card, or an
 * algorithm other than DES and SM4); SSC_ENOTGENUINE (the card refused INTERNAL AUTHENTICATE);
 * SSC_EPROTO (an answer shorter than 8 bytes); the reads' errors; transport errors.
 */
int ssc_hsm_step1(struct ssc_card *c, const uint8_t px[16], struct ssc_hsm_step1 *st,
		  struct ssc_diag *diag);

/*
 * The step-1 string of spec §13.1, each field followed by '|': region | ATR historical bytes |
 * algorithm (01 DES, 03 SM4) | 卡识别码 | P | X | R | R | terminal number |, hex upper case, the two
 * R fields empty without a challenge; term is 12 hex digits. Returns its length, or SSC_ELIMIT
 * when out (cap bytes) is too small.
 */
int ssc_hsm_step1_string(const struct ssc_hsm_step1 *st, const char term[13], char *out,
			 size_t cap);

/*
 * Checks the key server's answer (len bytes, not NUL-terminated) against step 1, before any
 * command goes to the card: the key string 内部认证结果|外部认证数据| — 16 or 32 hex digits (only the
 * first 16 are compared), then empty or 32 hex digits, then nothing else. Fills ext (C_ext ‖ R)
 * and *has_ext. Returns 0; SSC_EHSMKEY (std −23) for a malformed string, and for 外部认证数据
 * present where step 1 had no challenge, absent where it had one, or not ending with step 1's R;
 * SSC_EHSMMISMATCH (std −25) when 内部认证结果 is not the card's answer (constant-time compare).
 * The message names the rule broken, never the string.
 */
int ssc_hsm_check_key(const struct ssc_hsm_step1 *st, const char *key, size_t len,
		      uint8_t ext[16], int *has_ext, struct ssc_diag *diag);

/*
 * Step 2 on c (ssc_open done on the card of step 1, still powered since: its challenge stands):
 * with has_ext, EXTERNAL AUTHENTICATE 00 82 00 KID with ext (and the key version 01 for SM4,
 * spec §12.5), KID the card key id of cfg->key_read_auth; then the reads of ssc_read_basic,
 * without any key provider. Returns 0 with *b filled; SSC_EAUTHFAILED / SSC_EKEYBLOCKED (the card
 * refused the key server's cryptogram); the errors of ssc_read_basic; transport errors.
 */
int ssc_hsm_step2(struct ssc_card *c, const struct ssc_hsm_step1 *st, const uint8_t ext[16],
		  int has_ext, struct ssc_basic *b, struct ssc_diag *diag);

#endif
