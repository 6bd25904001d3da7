/*
 * This file contains the fuzz target of the card layer's APDU answer handling: one card operation
 * of src/ops*.c (read_basic, read_items, internal_auth, the PIN commands, write_items; all of
 * ssc.c, apdu.c and the PSAM provider psam.c under them) against a simulated card and PSAM
 * (simcos, one of the shipped profiles) whose answers the fuzz input mutates on the way: replaced,
 * truncated, a byte flipped, another status word, a removal, a timeout. A journal in a temporary
 * directory lets writes get as far as the card. Every result must be JSON or an SSC_E* code with a
 * message, and every command the layer sends must be one the core's choke point would let pass.
 *
 * Input: byte 0 = the operation (modulo the table; one past it: ops_resolve_pending), byte 1 =
 * which params (modulo that op's list below), byte 2 = switches (bits 0-1 read_auth auto / always
 * / never, bit 2 no PSAM, bit 3 the insertion already needed read authorisation, bit 4 the PSAM
 * comes from the next profile (another algorithm, perhaps), bit 5 resolve pending intents
 * afterwards, bit 6 the card id MAC key is configured, bit 7 PSAM answers are mutated too),
 * byte 3 = the profile (low 7 bits, modulo the shipped profiles, sorted; bit 7: the reader core
 * does not know the PSAM's terminal number); then one mutation per APDU, each a
 * kind byte (modulo 8): 0 pass, 1 replace the answer by a chunk (fuzzlib.h), 2 another status
 * word (2 bytes), 3 truncate to n bytes, 4 xor the byte at i with v, 5 the card is removed, 6 the
 * APDU times out, 7 let the next n answers pass. When the input runs out, answers pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config.h"
#include "fuzzcard.h"
#include "fuzzlib.h"
#include "journal.h"
#include "ops.h"
#include "psam.h"
#include "readers.h"
#include "ssc.h"
#include "sim_testhook.h"
#include "simcos.h"
#include "sscard/error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Params per operation, in ops_table order; written by hand from docs/api.md. */
static const char *const params_basic[] = {
	NULL, "{}", "{\"internal_auth\":true}", "{\"verify_card_id\":true}",
	"{\"internal_auth\":true,\"verify_card_id\":true}",
};
static const char *const params_items[] = {
	"{\"file\":\"SSSE/EF05\",\"items\":[\"01\",\"02\",\"03\",\"04\",\"05\",\"06\",\"07\"]}",
	"{\"file\":\"SSSE/EF06\",\"items\":[\"08\",\"09\",\"4E\",\"0A\",\"0B\",\"0C\",\"0D\"]}",
	"{\"file\":\"SSSE/EF0D\",\"items\":[\"EA\",\"EB\"]}",
	"{\"file\":\"DF04/EF05\",\"items\":[\"30\",\"31\",\"32\",\"33\",\"34\"]}",
	"{\"file\":\"DF04/EF06\",\"items\":[\"41\"]}",
	"{\"file\":\"DF04/EF08\",\"items\":[\"40\"]}",
	"{\"file\":\"DF01/EF05\",\"items\":[\"01\",\"30\"]}",
	"{\"file\":\"SSSE/EF06\",\"items\":[\"08\"],\"internal_auth\":true}",
};
static const char *const params_auth[] = { NULL, "{}" };
static const char *const params_verify[] = { "{\"pin\":\"123456\"}", "{\"pin\":\"1234\"}" };
static const char *const params_change[] = {
	"{\"old_pin\":\"123456\",\"new_pin\":\"654321\"}",
	"{\"old_pin\":\"123456\",\"new_pin\":\"1234567\"}",
};
static const char *const params_reload[] = {
	"{\"new_pin\":\"654321\"}", "{\"new_pin\":\"97531\"}",
};
static const char *const params_write[] = {
	"{\"file\":\"SSSE/EF05\",\"items\":{\"06\":\"20350101\"}}",
	"{\"file\":\"SSSE/EF06\",\"items\":{\"09\":\"张三\",\"0A\":\"2\",\"0B\":\"01\"}}",
	"{\"file\":\"SSSE/EF0D\",\"items\":{\"EA\":\"P00000000002\",\"EB\":\"330200\"}}",
	"{\"file\":\"DF04/EF05\",\"items\":{\"31\":\"12\",\"32\":\"33010000000000000009\"}}",
	"{\"file\":\"DF04/EF06\",\"items\":{\"41\":\"01\"}}",
	"{\"file\":\"DF04/EF08\",\"items\":{\"40\":{\"time\":\"20240401120000\","
	"\"institution\":\"H33010000001\",\"settlement_no\":\"S2024040100000000003\","
	"\"total\":1000,\"personal_account\":200,\"pooled\":800}}}",
	"{\"file\":\"DF01/EF05\",\"items\":{\"30\":\"0102\"}}",
};

static const char *const params_hsm_step1[] = { NULL, "{}" };
/* No session of this name (a step 2 needs its step 1's lease): the refusal before the card. */
static const char *const params_hsm_step2[] = {
	"{\"session\":\"00000000000000000000000000000000\",\"key\":\"D2FFA2E969F241C5||\"}",
	"{\"session\":\"x\",\"key\":\"\"}",
};
/* The holder's PIN of the profiles (gen2 123456, gen3 888888) and a wrong one; with a label. */
static const char *const params_claim[] = {
	"{\"pin\":\"123456\"}",
	"{\"pin\":\"888888\",\"request_id\":\"case-2026-0001\"}",
	"{\"pin\":\"000000\"}",
};
static const char *const params_medical_cred[] = { NULL, "{}" };
/* An offline settlement (request_id required), one whose amounts do not add up, a repeat. */
static const char *const params_settle[] = {
	"{\"request_id\":\"settle-1\",\"transaction\":{\"time\":\"20240401120000\","
	"\"institution\":\"H33010000001\",\"settlement_no\":\"S2024040100000000004\","
	"\"total\":1000,\"personal_account\":200,\"pooled\":800}}",
	"{\"request_id\":\"settle-2\",\"transaction\":{\"time\":\"20240401120000\","
	"\"institution\":\"H33010000001\",\"settlement_no\":\"S2024040100000000005\","
	"\"total\":1000,\"personal_account\":201,\"pooled\":800}}",
	"{\"request_id\":\"settle-1\",\"transaction\":{\"time\":\"20240401120000\","
	"\"institution\":\"H33010000001\",\"settlement_no\":\"S2024040100000000004\","
	"\"total\":1000,\"personal_account\":200,\"pooled\":800}}",
};
static const char *const params_clear_flag[] = { NULL, "{\"request_id\":\"clear-1\"}" };

struct op_params {
	const char *method;
	const char *const *params;
	size_t n;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const struct op_params op_params[] = {
	{ "card.read_basic", params_basic, N(params_basic) },
	{ "card.read_items", params_items, N(params_items) },
	{ "card.internal_auth", params_auth, N(params_auth) },
	{ "card.verify_pin", params_verify, N(params_verify) },
	{ "card.change_pin", params_change, N(params_change) },
	{ "card.reload_pin", params_reload, N(params_reload) },
	{ "card.unblock_pin", params_reload, N(params_reload) },
	{ "card.write_items", params_write, N(params_write) },
	{ "card.hsm_step1", params_hsm_step1, N(params_hsm_step1) },
	{ "card.hsm_step2", params_hsm_step2, N(params_hsm_step2) },
	{ "claim.verify_holder", params_claim, N(params_claim) },
	{ "medical.credentials", params_medical_cred, N(params_medical_cred) },
	{ "medical.settle_offline", params_settle, N(params_settle) },
	{ "medical.clear_flag", params_clear_flag, N(params_clear_flag) },
};

/* ---- the journal ---------------------------------------------------------------------------- */

static struct journal *journal;
static char journal_dir[512];

static int collect_pending(void *arg, const struct journal_intent_row *row)
{
	int64_t *ids = arg;

	if (ids[0] < 63)
		ids[++ids[0]] = row->id;
	return 0;
}

/* Marks every intent the input left pending as failed: the next input starts from a clean state. */
static void journal_reset(void)
{
	int64_t ids[64] = { 0 };
	struct ssc_diag d;

	(void)journal_pending(journal, NULL, collect_pending, ids);
	for (int64_t i = 1; i <= ids[0]; i++) {
		ssc_diag_init(&d);
		(void)journal_outcome(journal, ids[i], JOURNAL_FAILED, "SSC_ECARDREMOVED", "card", &d);
	}
}

static void journal_cleanup(void)
{
	char path[600];
	static const char *const files[] = { "j.db", "j.db-wal", "j.db-shm", "j.db.key",
					      "receipt.key" };

	journal_close(journal);
	for (size_t i = 0; i < N(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", journal_dir, files[i]);
		(void)unlink(path);
	}
	(void)rmdir(journal_dir);
}

static struct sim_profile *profiles[FUZZ_MAX_PROFILES];
static size_t n_profiles;
static char receipt_key[600];   /* claim.verify_holder's signing key (Ed25519), made at start */

/* Writes a new Ed25519 key, mode 0600, to receipt_key. */
static void make_receipt_key(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f;

	snprintf(receipt_key, sizeof(receipt_key), "%s/receipt.key", journal_dir);
	f = fopen(receipt_key, "w");
	if (!key || !f || fchmod(fileno(f), 0600) != 0 ||
	    !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL))
		abort();
	fclose(f);
	EVP_PKEY_free(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	struct ssc_diag d;
	char path[600];

	(void)argc;
	(void)argv;
	/* A new card.* operation must be fuzzed too: list its params in op_params above. */
	for (const struct op_desc *op = ops_table; op->method; op++) {
		size_t i;

		for (i = 0; i < N(op_params) && strcmp(op_params[i].method, op->method) != 0; i++)
			;
		if (i == N(op_params)) {
			fprintf(stderr, "fuzz_card: %s is in ops_table but not in fuzz_card.c's "
				"op_params: add its params there (and seeds to make_seeds.py)\n",
				op->method);
			abort();
		}
	}
	n_profiles = fuzz_load_profiles(profiles);
	snprintf(journal_dir, sizeof(journal_dir), "%s/sscard-fuzz-card.XXXXXX",
		 tmp && tmp[0] && strlen(tmp) < 400 ? tmp : "/tmp");
	if (!mkdtemp(journal_dir))
		abort();
	snprintf(path, sizeof(path), "%s/j.db", journal_dir);
	ssc_diag_init(&d);
	if (journal_open(path, NULL, 0, &journal, &d) != 0) {
		fprintf(stderr, "fuzz_card: %s\n", d.msg);
		abort();
	}
	atexit(journal_cleanup);
	make_receipt_key();
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_diag(int rc, const struct ssc_diag *diag)
{
	if (rc >= 0)
		return;
	if (!ssc_strerror_name(rc) || memchr(diag->msg, '\0', sizeof(diag->msg)) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct journal_peer peer = { .uid = 1000, .pid = 4242, .exe = "fuzz" };
	struct config cfg;
	struct op_env env;
	struct op_call call;
	struct fuzzcard_token card;
	struct fuzzcard_psam ps;
	struct psam_source src;
	struct keyprov *kp = NULL;
	struct fuzz_in in;
	struct ssc_diag diag;
	const struct op_desc *op;
	size_t n_ops = N(op_params), prof;
	unsigned flags;
	uint8_t sel, psel, sw;
	int64_t deadline = now_ms() + 60000;
	json_t *params = NULL, *result = NULL;
	int reset = 0, rc;

	if (size < 4)
		return 0;
	sel = data[0];
	psel = data[1];
	sw = data[2];
	prof = (data[3] & 0x7F) % n_profiles;
	in.p = data + 4;
	in.n = size - 4;

	config_defaults(&cfg);
	snprintf(cfg.receipts_key_file, sizeof(cfg.receipts_key_file), "%s", receipt_key);
	cfg.read_auth = (enum config_read_auth)((sw & 3) % 3);
	if (sw & 0x40) {
		static const uint8_t issuer[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
						    0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10 };

		memcpy(cfg.card_id_mac_key, issuer, sizeof(issuer));
		cfg.card_id_mac_key_set = 1;
	}
	fuzzcard_token_init(&card, profiles[prof], SIM_ROLE_CARD, &in, deadline);
	memset(&ps, 0, sizeof(ps));
	fuzzcard_token_init(&ps.tok, profiles[(sw & 0x10) ? (prof + 1) % n_profiles : prof], SIM_ROLE_PSAM,
		   (sw & 0x80) ? &in : NULL, deadline);
	ps.present = !(sw & 4);
	ps.term_known = !(data[3] & 0x80);
	ps.alg = fuzzcard_psam_alg(ps.tok.t);
	fuzzcard_psam_source(&src, &ps);
	if (psam_keyprov_new(&src, &cfg, &kp) != 0)
		abort();
	env.cfg = &cfg;
	env.kp = kp;
	env.journal = journal;
	flags = (sw & 8) ? CARD_FLAG_READ_AUTH : 0;
	ssc_diag_init(&diag);

	if (sel % (n_ops + 1) == n_ops) {
		rc = ops_resolve_pending(&env, &card.io, &diag);
		check_diag(rc, &diag);
		goto out;
	}
	{
		const struct op_params *opp = &op_params[sel % (n_ops + 1)];
		const char *text = opp->params[psel % opp->n];
		json_error_t je;

		op = ops_find(opp->method);
		if (!op)
			abort();   /* the table above names a method the daemon lost */
		if (text) {
			params = json_loads(text, 0, &je);
			if (!params)
				abort();
		}
	}
	rc = op->check(op, &env, params, &diag);
	check_diag(rc, &diag);
	if (rc == 0) {
		memset(&call, 0, sizeof(call));
		call.params = params;
		call.peer = &peer;
		ssc_diag_init(&diag);
		rc = op->run(op, &env, &card.io, &call, &flags, &reset, &result, &diag);
		check_diag(rc, &diag);
		if ((rc == 0) != (result != NULL))
			abort();
		if (memchr(call.card_ref, '\0', sizeof(call.card_ref)) == NULL)
			abort();
		/* Extra error data (a cut-off write's "written") only beside an error. */
		if (rc == 0 && call.error_data)
			abort();
		json_decref(call.error_data);
		json_decref(result);
	}
	if (sw & 0x20) {
		/* The card comes back: resolve what the operation left pending. */
		sim_token_reset(card.t);
		ssc_diag_init(&diag);
		rc = ops_resolve_pending(&env, &card.io, &diag);
		check_diag(rc, &diag);
	}
out:
	json_decref(params);
	keyprov_free(kp);
	sim_token_free(card.t);
	sim_token_free(ps.tok.t);
	journal_reset();
	return 0;
}
