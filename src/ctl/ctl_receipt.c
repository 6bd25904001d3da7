/*
 * This file contains sscardctl's receipt commands (issue 15): `receipt pubkey` prints the public
 * half of the desk's receipt key ([receipts] key_file), `receipt verify --pubkey PEM FILE|-` checks
 * a claim's answer (its receipt and signature) offline, and the printing of `claim`'s answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "ctl_receipt.h"
#include "receipt.h"

#define RECEIPT_FILE_MAX (256 * 1024)   /* a claim's answer is a few kilobytes */

/* The public key of [receipts] key_file, as PEM on stdout. */
static int receipt_pubkey(const struct ctl_opts *o, ctl_config_fn load_config)
{
	struct config cfg;
	struct ssc_diag d;
	const char *file;
	EVP_PKEY *key = NULL;
	int rc = load_config(o, &cfg, &file);

	if (rc)
		return rc;
	ssc_diag_init(&d);
	if (!cfg.receipts_key_file[0]) {
		fprintf(stderr, "sscardctl: receipt pubkey: [receipts] key_file is not set in %s\n",
			file ? file : "the configuration");
		rc = EXIT_USAGE;
	} else if (receipt_key_load(cfg.receipts_key_file, &key, &d) != 0) {
		fprintf(stderr, "sscardctl: receipt pubkey: %s\n", d.msg);
		rc = EXIT_USAGE;
	} else if (PEM_write_PUBKEY(stdout, key) != 1 || fflush(stdout) != 0) {
		fprintf(stderr, "sscardctl: receipt pubkey: cannot write the key\n");
		rc = EXIT_ANSWER;
	}
	EVP_PKEY_free(key);
	config_wipe(&cfg);
	return rc;
}

/* The whole of path ("-": stdin), at most RECEIPT_FILE_MAX bytes, as JSON. NULL after saying why. */
static json_t *receipt_read(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	json_error_t e;
	json_t *j;
	char *buf;
	size_t n;

	if (!f) {
		fprintf(stderr, "sscardctl: receipt verify: cannot open %s\n", path);
		return NULL;
	}
	buf = malloc(RECEIPT_FILE_MAX + 1);
	n = buf ? fread(buf, 1, RECEIPT_FILE_MAX + 1, f) : 0;
	if (f != stdin)
		fclose(f);
	if (!buf || n > RECEIPT_FILE_MAX) {
		fprintf(stderr, "sscardctl: receipt verify: %s is larger than %d bytes\n", path,
			RECEIPT_FILE_MAX);
		free(buf);
		return NULL;
	}
	j = json_loadb(buf, n, 0, &e);
	free(buf);
	if (!json_is_object(j))
		fprintf(stderr, "sscardctl: receipt verify: %s is not the JSON answer of "
			"claim.verify_holder (%s)\n", path, j ? "not an object" : e.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Checks a claim's answer ({receipt, signature, algorithm}) with a public key file. */
static int receipt_check(const struct ctl_opts *o)
{
	const char *path = o->n_args == 3 ? o->args[2] : NULL;
	const char *text, *sig, *alg;
	struct ssc_diag d;
	EVP_PKEY *pub = NULL;
	json_t *j;
	FILE *f;
	int rc;

	if (!o->pubkey || !path) {
		fprintf(stderr, "sscardctl: receipt verify --pubkey PEM FILE|-\n");
		return EXIT_USAGE;
	}
	f = fopen(o->pubkey, "r");
	pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!pub) {
		fprintf(stderr, "sscardctl: receipt verify: %s holds no PEM public key\n", o->pubkey);
		return EXIT_USAGE;
	}
	j = receipt_read(path);
	text = json_string_value(json_object_get(j, "receipt"));
	sig = json_string_value(json_object_get(j, "signature"));
	alg = json_string_value(json_object_get(j, "algorithm"));
	if (j && (!text || !sig || !alg))
		fprintf(stderr, "sscardctl: receipt verify: %s lacks \"receipt\", \"signature\" or "
			"\"algorithm\"\n", path);
	if (!text || !sig || !alg) {
		json_decref(j);
		EVP_PKEY_free(pub);
		return EXIT_USAGE;
	}
	ssc_diag_init(&d);
	rc = receipt_verify(pub, alg, (const uint8_t *)text, json_string_length(json_object_get(j,
			    "receipt")), sig, &d);
	if (rc == 0)
		printf("签名有效 signature good (%s): the receipt is as the desk signed it\n", alg);
	else
		fprintf(stderr, "sscardctl: receipt verify: %s\n", d.msg);
	json_decref(j);
	EVP_PKEY_free(pub);
	return rc == 0 ? EXIT_OK : EXIT_API;
}

int ctl_receipt_run(const struct ctl_opts *o, ctl_config_fn load_config)
{
	if (o->n_args == 2 && strcmp(o->args[1], "pubkey") == 0)
		return receipt_pubkey(o, load_config);
	if (o->n_args >= 2 && strcmp(o->args[1], "verify") == 0)
		return receipt_check(o);
	fprintf(stderr, "sscardctl: receipt pubkey | receipt verify --pubkey PEM FILE|-\n");
	return EXIT_USAGE;
}

void ctl_receipt_print(const json_t *r)
{
	const json_t *h = json_object_get(r, "holder");

	printf("持卡人 holder: %s (card %s)\n", json_string_value(json_object_get(h, "name")),
	       json_string_value(json_object_get(h, "card_number")));
	printf("真卡 genuine: %s\n", json_is_true(json_object_get(r, "genuine")) ? "yes" : "no");
	printf("密码正确 PIN verified: %s\n",
	       json_is_true(json_object_get(r, "pin_verified")) ? "yes" : "no");
	printf("回执 receipt: %s\n", json_string_value(json_object_get(r, "receipt")));
	printf("签名 signature (%s): %s\n", json_string_value(json_object_get(r, "algorithm")),
	       json_string_value(json_object_get(r, "signature")));
}
