/*
 * This file contains the signed receipts (src/receipt.h): the text signed, the plaintext bound to
 * it, and SM2-SM3 / Ed25519 signatures through OpenSSL's EVP interface.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "hex.h"
#include "jsontext.h"
#include "receipt.h"

int receipt_plaintext(const struct receipt_in *in, uint8_t out[8])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_MD *sm3 = EVP_MD_fetch(NULL, "SM3", NULL);
	const char *parts[4] = { in->request_id, in->time, in->terminal_number, in->card_id };
	int ok = ctx && sm3 && EVP_DigestInit_ex(ctx, sm3, NULL) == 1;

	for (int i = 0; ok && i < 4; i++)
		ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i])) == 1 &&
		     (i == 3 || EVP_DigestUpdate(ctx, "|", 1) == 1);
	ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n >= 8;
	if (ok)
		memcpy(out, md, 8);
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(sm3);
	return ok ? 0 : SSC_ECRYPTO;
}

char *receipt_text(const struct receipt_in *in)
{
	char f[17], p[17], a[17];
	json_t *o;
	char *s;

	hex_encode(in->factor, 8, f, sizeof(f), HEX_UPPER);
	hex_encode(in->plaintext, 8, p, sizeof(p), HEX_UPPER);
	hex_encode(in->answer, 8, a, sizeof(a), HEX_UPPER);
	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
		      " s:{s:s, s:s, s:s}, s:b}",
		      "version", RECEIPT_VERSION, "time", in->time, "request_id", in->request_id,
		      "terminal_number", in->terminal_number, "reader", in->reader,
		      "card_number", in->card_number, "card_id", in->card_id, "ssn", in->ssn,
		      "region_code", in->region_code, "atr_historical", in->atr_historical,
		      "algorithm", in->algorithm, "internal_auth", "factor", f, "plaintext", p,
		      "answer", a, "pin_verified", in->pin_verified);
	s = jsontext_dump(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

const char *receipt_key_algorithm(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "SM2"))
		return RECEIPT_ALG_SM2;
	if (EVP_PKEY_is_a(key, "ED25519"))
		return RECEIPT_ALG_ED25519;
	return NULL;
}

int receipt_key_load(const char *path, EVP_PKEY **out, struct ssc_diag *diag)
{
	struct stat st;
	EVP_PKEY *key;
	FILE *f;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ssc_diag_set(diag, SSC_ECONFIG, "[receipts] key_file %.200s: %s", path,
				    strerror(errno));
	/* The desk's signing key: whoever can read it can sign receipts in the desk's name. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IRWXO)) {
		close(fd);
		return ssc_diag_set(diag, SSC_ECONFIG, "[receipts] key_file %.200s: others may read "
				    "it (or it is no plain file): chmod 0600 or 0640", path);
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return ssc_diag_set(diag, SSC_ENOMEM, "cannot read the key file");
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key)
		return ssc_diag_set(diag, SSC_ECONFIG, "[receipts] key_file %.200s: no PEM private "
				    "key", path);
	if (!receipt_key_algorithm(key)) {
		EVP_PKEY_free(key);
		return ssc_diag_set(diag, SSC_ECONFIG, "[receipts] key_file %.200s: the key is "
				    "neither SM2 nor Ed25519", path);
	}
	*out = key;
	return 0;
}

/*
 * A digest-sign or -verify context for key: SM2 with SM3 and the ID set explicitly (OpenSSL 3.0's
 * EVP default is the empty ID, which no other SM2 implementation uses), Ed25519 without digest.
 * *pk gets the SM2 key context given to it (NULL for Ed25519), which stays ours to free: the digest
 * context does not own a key context set with EVP_MD_CTX_set_pkey_ctx().
 */
static EVP_MD_CTX *receipt_ctx(EVP_PKEY *key, int sign, EVP_PKEY_CTX **pk)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;
	int ok;

	*pk = NULL;
	if (!m)
		return NULL;
	if (EVP_PKEY_is_a(key, "SM2")) {
		p = EVP_PKEY_CTX_new(key, NULL);
		ok = p && EVP_PKEY_CTX_set1_id(p, RECEIPT_SM2_ID, strlen(RECEIPT_SM2_ID)) == 1;
		if (ok)
			EVP_MD_CTX_set_pkey_ctx(m, p);
		ok = ok && (sign ? EVP_DigestSignInit(m, NULL, EVP_sm3(), NULL, key)
				 : EVP_DigestVerifyInit(m, NULL, EVP_sm3(), NULL, key)) == 1;
	} else {
		ok = (sign ? EVP_DigestSignInit(m, NULL, NULL, NULL, key)
			   : EVP_DigestVerifyInit(m, NULL, NULL, NULL, key)) == 1;
	}
	if (!ok) {
		EVP_MD_CTX_free(m);
		EVP_PKEY_CTX_free(p);
		return NULL;
	}
	*pk = p;
	return m;
}

/* Frees a context of receipt_ctx and the key context it was given (pk, may be NULL). */
static void receipt_ctx_free(EVP_MD_CTX *m, EVP_PKEY_CTX *pk)
{
	EVP_MD_CTX_free(m);
	EVP_PKEY_CTX_free(pk);
}

int receipt_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, char **sig_b64,
		 struct ssc_diag *diag)
{
	EVP_PKEY_CTX *pk;
	EVP_MD_CTX *m = receipt_ctx(key, 1, &pk);
	uint8_t *sig = NULL;
	size_t n = 0;
	int rc = SSC_ECRYPTO;

	*sig_b64 = NULL;
	if (!m || EVP_DigestSign(m, NULL, &n, msg, len) != 1 || !(sig = malloc(n)) ||
	    EVP_DigestSign(m, sig, &n, msg, len) != 1)
		goto out;
	*sig_b64 = malloc(4 * ((n + 2) / 3) + 1);
	if (!*sig_b64) {
		rc = SSC_ENOMEM;
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)*sig_b64, sig, (int)n);
	rc = 0;
out:
	free(sig);
	receipt_ctx_free(m, pk);
	return rc ? ssc_diag_set(diag, rc, "cannot sign the receipt") : 0;
}

int receipt_verify(EVP_PKEY *pub, const char *alg, const uint8_t *msg, size_t len,
		   const char *sig_b64, struct ssc_diag *diag)
{
	const char *key_alg = receipt_key_algorithm(pub);
	size_t b64 = strlen(sig_b64), n;
	uint8_t *sig;
	EVP_PKEY_CTX *pk;
	EVP_MD_CTX *m;
	int r, pad = 0, made;

	if (!key_alg || strcmp(key_alg, alg) != 0)
		return ssc_diag_set(diag, SSC_EINVAL, "the receipt says %.20s, the key is %s", alg,
				    key_alg ? key_alg : "neither SM2 nor Ed25519");
	if (b64 == 0 || b64 % 4 != 0 || b64 > 4096)
		return ssc_diag_set(diag, SSC_EINVAL, "the signature is not base64");
	sig = malloc(b64);
	if (!sig)
		return SSC_ENOMEM;
	r = EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, (int)b64);
	if (r < 0) {
		free(sig);
		return ssc_diag_set(diag, SSC_EINVAL, "the signature is not base64");
	}
	pad = (sig_b64[b64 - 1] == '=') + (b64 > 1 && sig_b64[b64 - 2] == '=');
	n = (size_t)r - (size_t)pad;
	m = receipt_ctx(pub, 0, &pk);
	made = m != NULL;
	r = m ? EVP_DigestVerify(m, sig, n, msg, len) : -1;
	receipt_ctx_free(m, pk);
	free(sig);
	if (r == 1)
		return 0;
	if (r == 0 || made)
		return ssc_diag_set(diag, SSC_EBADCARDDATA, "the signature does not match the "
				    "receipt: it was altered, or signed by another key");
	return ssc_diag_set(diag, SSC_ECRYPTO, "cannot check the signature");
}
