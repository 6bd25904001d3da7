/*
 * This file contains the signed receipts of claim.verify_holder (issue 15): the receipt text (one
 * compact JSON object, the exact bytes signed), the internal-authentication plaintext bound to it,
 * and the desk's signature over it (SM2 with SM3 and the ID 1234567812345678, or Ed25519), made
 * by the daemon and checked by sscardctl. Pure functions over OpenSSL: no card, no log, no state.
 */
#ifndef SSC_RECEIPT_H
#define SSC_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "sscard/error.h"

#define RECEIPT_VERSION 1
#define RECEIPT_SM2_ID "1234567812345678"   /* GM/T 0009's default ID, set explicitly */
#define RECEIPT_ALG_SM2 "SM2-SM3"
#define RECEIPT_ALG_ED25519 "Ed25519"

/* What a receipt says. Strings borrowed; none may be NULL. */
struct receipt_in {
	const char *time;            /* UTC, RFC 3339: 2026-03-01T08:00:00Z */
	const char *request_id;
	const char *terminal_number; /* the desk's PSAM terminal number (12 hex) */
	const char *reader;
	const char *card_number, *card_id, *ssn, *region_code, *atr_historical;
	const char *algorithm;       /* the card's: "des" or "sm4" */
	uint8_t factor[8];           /* INTERNAL AUTH: the process factor sent */
	uint8_t plaintext[8];        /* the plaintext sent (receipt_plaintext) */
	uint8_t answer[8];           /* the card's answer, first 8 bytes */
	int pin_verified;
};

/*
 * The plaintext of the receipt's INTERNAL AUTH: the first 8 bytes of SM3 over
 * "request_id|time|terminal_number|card_id", so that an answer of the card belongs to this
 * receipt and no other. Returns 0 or SSC_ECRYPTO.
 */
int receipt_plaintext(const struct receipt_in *in, uint8_t out[8]);

/*
 * The receipt text: {"version", "time", "request_id", "terminal_number", "reader", "card_number",
 * "card_id", "ssn", "region_code", "atr_historical", "algorithm", "internal_auth": {"factor",
 * "plaintext", "answer"} (upper-case hex), "pin_verified"}, compact, in this order, UTF-8.
 * Returns a new string (free()), or NULL when out of memory.
 */
char *receipt_text(const struct receipt_in *in);

/*
 * Loads the desk's private key (PEM) from path into *out. A file that others than its owner and
 * group may read, or a key that is neither SM2 nor Ed25519, is refused: SSC_ECONFIG naming why.
 */
int receipt_key_load(const char *path, EVP_PKEY **out, struct ssc_diag *diag);

/* The signature algorithm of key: RECEIPT_ALG_SM2, RECEIPT_ALG_ED25519, or NULL for neither. */
const char *receipt_key_algorithm(EVP_PKEY *key);

/*
 * Signs msg (len bytes) with key: *sig_b64 a new base64 string (free()) of the DER signature (SM2)
 * or the 64 raw bytes (Ed25519). Returns 0, SSC_ECRYPTO or SSC_ENOMEM.
 */
int receipt_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, char **sig_b64,
		 struct ssc_diag *diag);

/*
 * Checks sig_b64 over msg with the public key pub, for the algorithm named alg (must be pub's).
 * Returns 0 (good), SSC_EBADCARDDATA (a bad signature), SSC_EINVAL (not base64, an algorithm that
 * is not the key's), SSC_ECRYPTO.
 */
int receipt_verify(EVP_PKEY *pub, const char *alg, const uint8_t *msg, size_t len,
		   const char *sig_b64, struct ssc_diag *diag);

#endif
