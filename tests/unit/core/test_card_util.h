/*
 * This file contains helpers shared by the card-layer unit tests (test_apdu, test_items, test_ssc,
 * test_psam): hex parsing, and a scripted struct card_io that answers commands from a table and
 * checks that they arrive in order. Header-only, static inline, so each test links alone.
 */
#ifndef TEST_CARD_UTIL_H
#define TEST_CARD_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cardio.h"
#include "config.h"
#include "crypto.h"
#include "journal.h"
#include "keyprov.h"
#include "ops.h"
#include "psam.h"
#include "simcos.h"
#include "test_crypto_ref.h"

/* Parses hex (spaces allowed) into out; returns the byte count. Fails the test on bad hex. */
static inline size_t tu_unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*s) {
		char b[3];

		if (*s == ' ') {
			s++;
			continue;
		}
		assert_true(s[1] != '\0');
		assert_true(n < cap);
		b[0] = s[0];
		b[1] = s[1];
		b[2] = '\0';
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
		s += 2;
	}
	return n;
}

#define TU_HEX(name, str) \
	uint8_t name[300]; \
	size_t name##_len = tu_unhex(str, name, sizeof(name)); \
	(void)name##_len

/* One step of a scripted card: the exact command expected and the answer to give. */
struct tu_step {
	const char *cmd;    /* hex; a trailing '*' matches any rest; NULL ends the script */
	const char *resp;   /* hex, data then SW; "" for a 0-byte answer */
	int rc;             /* when < 0: transmit returns this error instead */
};

struct tu_script {
	struct card_io io;
	const struct tu_step *steps;
	size_t next;
	unsigned last_flags;
};

static inline int tu_script_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len,
				     uint8_t *resp, size_t resp_cap, unsigned flags)
{
	struct tu_script *s = io->ctx;
	const struct tu_step *st = &s->steps[s->next];
	uint8_t want[300];
	size_t wl, rl;

	if (!st->cmd)
		fail_msg("unexpected command after the script ended (step %zu)", s->next);
	{
		char pat[600];
		size_t pl = strlen(st->cmd);
		int prefix = pl > 0 && st->cmd[pl - 1] == '*';

		assert_true(pl < sizeof(pat));
		memcpy(pat, st->cmd, pl + 1);
		if (prefix)
			pat[pl - 1] = '\0';
		wl = tu_unhex(pat, want, sizeof(want));
		if (prefix && cmd_len >= wl)
			cmd_len = wl;   /* compare the prefix only */
	}
	if (wl != cmd_len || memcmp(want, cmd, wl) != 0) {
		char got[600] = "";

		for (size_t i = 0; i < cmd_len && i < 290; i++)
			snprintf(got + 2 * i, 3, "%02X", cmd[i]);
		fail_msg("step %zu: expected %s, got %s", s->next, st->cmd, got);
	}
	s->next++;
	s->last_flags = flags;
	if (st->rc < 0)
		return st->rc;
	rl = tu_unhex(st->resp, resp, resp_cap);
	return (int)rl;
}

static inline void tu_script_init(struct tu_script *s, const struct tu_step *steps)
{
	memset(s, 0, sizeof(*s));
	s->steps = steps;
	s->io.transmit = tu_script_transmit;
	s->io.ctx = s;
	s->io.deadline_ms = INT64_MAX;
}

/* Asserts that every step of the script was used. */
static inline void tu_script_done(const struct tu_script *s)
{
	assert_null(s->steps[s->next].cmd);
}

/*
 * A software key provider for scripted tests: every key is derived from one master key, as the
 * §12.8 vectors are (crypto.c itself is checked against those vectors in test_crypto).
 */
struct tu_kp {
	struct keyprov kp;
	uint8_t master[16];
	unsigned algs;          /* bit (1 << alg) per algorithm it serves; 0 = no PSAM */
	int calls;
	struct config_key last_key;
};

static inline int tu_kp_available(struct keyprov *kp, enum ssc_alg alg)
{
	struct tu_kp *t = kp->ctx;

	if (!t->algs)
		return SSC_ENOPSAM;
	return (t->algs & (1u << alg)) ? 0 : SSC_EPSAMALGO;
}

static inline int tu_kp_cryptogram(struct keyprov *kp, enum ssc_alg alg,
				   const struct config_key *key, const struct keyprov_div *div,
				   const uint8_t r[8], const uint8_t x[8], uint8_t c[8],
				   int64_t deadline_ms, struct ssc_diag *diag)
{
	struct tu_kp *t = kp->ctx;
	int rc = tu_kp_available(kp, alg);

	(void)deadline_ms;
	(void)diag;
	if (rc)
		return rc;
	t->calls++;
	t->last_key = *key;
	return ref_cryptogram_master(alg, t->master, div, r, x, c);
}

static inline int tu_kp_mac(struct keyprov *kp, enum ssc_alg alg, const struct config_key *key,
			    const struct keyprov_div *div, const uint8_t *iv, const uint8_t *data,
			    size_t len, uint8_t mac[4], int64_t deadline_ms, struct ssc_diag *diag)
{
	struct tu_kp *t = kp->ctx;
	uint8_t k[16];
	int rc = tu_kp_available(kp, alg);

	(void)deadline_ms;
	(void)diag;
	if (rc)
		return rc;
	t->calls++;
	t->last_key = *key;
	rc = ref_card_key(alg, t->master, div, k);
	if (rc == 0)
		rc = ref_mac(alg, k, iv, data, len, mac);
	return rc;
}

static inline int tu_kp_encrypt(struct keyprov *kp, enum ssc_alg alg,
				const struct config_key *key, const struct keyprov_div *div,
				const uint8_t *in, size_t len, uint8_t *out, int64_t deadline_ms,
				struct ssc_diag *diag)
{
	struct tu_kp *t = kp->ctx;
	uint8_t k[16];
	int rc = tu_kp_available(kp, alg);

	(void)deadline_ms;
	(void)diag;
	if (rc)
		return rc;
	t->calls++;
	t->last_key = *key;
	rc = ref_card_key(alg, t->master, div, k);
	if (rc == 0)
		rc = ref_ecb(alg, k, in, len, out);
	return rc;
}

static inline int tu_kp_terminal(struct keyprov *kp, enum ssc_alg alg, char out[13],
				 int64_t deadline_ms, struct ssc_diag *diag)
{
	int rc = tu_kp_available(kp, alg);

	(void)deadline_ms;
	(void)diag;
	if (rc)
		return rc;
	memcpy(out, "123456789012", 13);
	return 0;
}

static inline void tu_kp_init(struct tu_kp *t, const char *master_hex, unsigned algs)
{
	static const struct keyprov_ops ops = {
		.name = "test",
		.available = tu_kp_available,
		.cryptogram = tu_kp_cryptogram,
		.mac = tu_kp_mac,
		.encrypt = tu_kp_encrypt,
		.terminal_number = tu_kp_terminal,
	};

	memset(t, 0, sizeof(*t));
	tu_unhex(master_hex, t->master, sizeof(t->master));
	t->algs = algs;
	t->kp.ops = &ops;
	t->kp.ctx = t;
}

/* ---- the simulator's card OS behind a struct card_io ----------------------------------- */

enum tu_corrupt {
	TU_CORRUPT_NONE = 0,
	TU_CORRUPT_TRUNCATE,   /* drop the last data byte, keep SW1 SW2 */
	TU_CORRUPT_SW,         /* a status word that is none (12 34) */
	TU_CORRUPT_SHORT,      /* a 1-byte answer */
	TU_CORRUPT_EMPTY,      /* a 0-byte answer (vpcd's removal quirk) */
	TU_CORRUPT_GARBAGE,    /* every data byte replaced by A5, SW kept */
};

#define TU_LOG_MAX 96

struct tu_sim_io {
	struct card_io io;
	struct sim_token *t;
	int apdus;                 /* commands sent since the last reset of the counter */
	int corrupt_at;            /* 1-based answer to corrupt; 0 = none */
	enum tu_corrupt corrupt;
	char log[TU_LOG_MAX][64];  /* each command's first 31 bytes, hex */
	unsigned flags[TU_LOG_MAX];/* the CARDIO_* flags each command was sent with */
};

static inline int tu_sim_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len,
				  uint8_t *resp, size_t resp_cap, unsigned flags)
{
	struct tu_sim_io *s = io->ctx;
	uint8_t r[SIM_RESP_MAX];
	size_t n;

	assert_true(cmd_len <= SSC_CMD_APDU_MAX);
	if (s->apdus < TU_LOG_MAX) {
		s->flags[s->apdus] = flags;
		for (size_t i = 0; i < cmd_len && i < 31; i++)
			snprintf(s->log[s->apdus] + 2 * i, 3, "%02X", cmd[i]);
	}
	s->apdus++;
	n = sim_token_apdu(s->t, cmd, cmd_len, r);
	assert_true(n >= 2 && n <= resp_cap);
	if (s->corrupt_at == s->apdus) {
		switch (s->corrupt) {
		case TU_CORRUPT_TRUNCATE:
			if (n > 2) {
				r[n - 3] = r[n - 2];
				r[n - 2] = r[n - 1];
				n--;
			}
			break;
		case TU_CORRUPT_SW:
			r[n - 2] = 0x12;
			r[n - 1] = 0x34;
			break;
		case TU_CORRUPT_SHORT:
			n = 1;
			break;
		case TU_CORRUPT_EMPTY:
			n = 0;
			break;
		case TU_CORRUPT_GARBAGE:
			memset(r, 0xA5, n - 2);
			break;
		default:
			break;
		}
	}
	memcpy(resp, r, n);
	return (int)n;
}

static inline void tu_sim_io_init(struct tu_sim_io *s, struct sim_token *t, const char *serial)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->io.transmit = tu_sim_transmit;
	s->io.ctx = s;
	s->io.atr_len = sim_token_atr(t, s->io.atr);
	s->io.deadline_ms = INT64_MAX;
	snprintf(s->io.reader_serial, sizeof(s->io.reader_serial), "%s", serial);
	snprintf(s->io.reader_id, sizeof(s->io.reader_id), "sim-%s", serial);
}

/* Whether the command log holds a command starting with hex. */
static inline int tu_sim_sent(const struct tu_sim_io *s, const char *hex)
{
	for (int i = 0; i < s->apdus && i < TU_LOG_MAX; i++)
		if (strncmp(s->log[i], hex, strlen(hex)) == 0)
			return 1;
	return 0;
}

/* The flags of the first logged command starting with hex; fails when there is none. */
static inline unsigned tu_sim_flags(const struct tu_sim_io *s, const char *hex)
{
	for (int i = 0; i < s->apdus && i < TU_LOG_MAX; i++)
		if (strncmp(s->log[i], hex, strlen(hex)) == 0)
			return s->flags[i];
	fail_msg("no command %s was sent", hex);
	return 0;
}

/* How many logged commands start with hex. */
static inline int tu_sim_count(const struct tu_sim_io *s, const char *hex)
{
	int n = 0;

	for (int i = 0; i < s->apdus && i < TU_LOG_MAX; i++)
		n += strncmp(s->log[i], hex, strlen(hex)) == 0;
	return n;
}

/* A card + PSAM desk from one profile, with the PSAM provider over a psam_source. */
struct tu_sim {
	struct sim_profile *prof;
	struct sim_token *card_t, *psam_t;
	struct tu_sim_io card, psam;
	struct psam_source src;
	int have_psam;
	enum ssc_alg psam_alg;
	char psam_term[13];
	int acquired, released;
	struct config cfg;
	struct keyprov *kp;
	struct op_env env;
	struct op_call call;       /* of the last operation (its card_ref) */
	struct journal_peer peer;
	unsigned flags;
	int reset;
	struct ssc_diag d;
	json_t *result;
};

static inline int tu_src_acquire(void *ctx, enum ssc_alg alg, int64_t deadline_ms,
				 struct card_io **io)
{
	struct tu_sim *s = ctx;
	uint8_t cmd[32], resp[SSC_RESP_APDU_MAX];
	int n;

	(void)deadline_ms;
	if (!s->have_psam)
		return SSC_ENOPSAM;
	if (alg != s->psam_alg)
		return SSC_EPSAMALGO;
	/* As the reader core does: select the key application on every acquire. */
	n = 5 + (int)s->cfg.psam_aid_len;
	cmd[0] = 0x00;
	cmd[1] = 0xA4;
	cmd[2] = 0x04;
	cmd[3] = 0x00;
	cmd[4] = (uint8_t)s->cfg.psam_aid_len;
	memcpy(cmd + 5, s->cfg.psam_aid, s->cfg.psam_aid_len);
	n = s->psam.io.transmit(&s->psam.io, cmd, (size_t)n, resp, sizeof(resp), 0);
	assert_true(n >= 2);
	assert_int_equal(resp[n - 2], 0x90);
	s->acquired++;
	*io = &s->psam.io;
	return 0;
}

static inline void tu_src_release(void *ctx, struct card_io *io, int broken)
{
	struct tu_sim *s = ctx;

	(void)broken;
	assert_ptr_equal(io, &s->psam.io);
	s->released++;
}

static inline unsigned tu_src_algorithms(void *ctx)
{
	struct tu_sim *s = ctx;

	return s->have_psam ? 1u << s->psam_alg : 0;
}

/* Sets up from a loaded profile; with_psam 0 leaves the desk without a PSAM. */
static inline void tu_sim_setup(struct tu_sim *s, struct sim_profile *prof, int with_psam)
{
	memset(s, 0, sizeof(*s));
	s->prof = prof;
	s->card_t = sim_token_new(prof, SIM_ROLE_CARD);
	s->psam_t = sim_token_new(prof, SIM_ROLE_PSAM);
	assert_non_null(s->card_t);
	assert_non_null(s->psam_t);
	tu_sim_io_init(&s->card, s->card_t, "SIM0001");
	tu_sim_io_init(&s->psam, s->psam_t, "SIM0002");
	config_defaults(&s->cfg);
	if (with_psam) {
		/* The role decision of the reader core: the probe must call it a PSAM. */
		assert_int_equal(psam_probe(&s->psam.io, &s->psam_alg, s->psam_term), 0);
		s->have_psam = 1;
	}
	s->src.acquire = tu_src_acquire;
	s->src.release = tu_src_release;
	s->src.algorithms = tu_src_algorithms;
	s->src.ctx = s;
	assert_int_equal(psam_keyprov_new(&s->src, &s->cfg, &s->kp), 0);
	s->env.cfg = &s->cfg;
	s->env.kp = s->kp;
	ssc_diag_init(&s->d);
}

/* Loads firmware-stubs/profiles/<name>.json from $SSC_SOURCE_DIR. */
static inline void tu_sim_open(struct tu_sim *s, const char *name, int with_psam)
{
	const char *src = getenv("SSC_SOURCE_DIR");
	char path[512], err[512] = "";
	struct sim_profile *p;

	snprintf(path, sizeof(path), "%s/firmware-stubs/profiles/%s.json", src ? src : ".", name);
	p = sim_profile_load(path, err, sizeof(err));
	if (!p)
		fail_msg("cannot load %s: %s", path, err);
	tu_sim_setup(s, p, with_psam);
}

static inline void tu_sim_close(struct tu_sim *s)
{
	json_decref(s->result);
	json_decref(s->call.error_data);
	keyprov_free(s->kp);
	sim_token_free(s->card_t);
	sim_token_free(s->psam_t);
	sim_profile_free(s->prof);
	memset(s, 0, sizeof(*s));
}

/* Runs an operation (check, then run) on the card; the result stays in s->result. */
static inline int tu_sim_op(struct tu_sim *s, const char *method, const char *params)
{
	const struct op_desc *op = ops_find(method);
	json_t *p = NULL;
	int rc;

	assert_non_null(op);
	if (params) {
		p = json_loads(params, 0, NULL);
		assert_non_null(p);
	}
	json_decref(s->result);
	s->result = NULL;
	s->reset = 0;
	ssc_diag_init(&s->d);
	json_decref(s->call.error_data);
	memset(&s->call, 0, sizeof(s->call));
	s->call.params = p;
	s->call.peer = &s->peer;
	rc = op->check(op, &s->env, p, &s->d);
	if (rc == 0)
		rc = op->run(op, &s->env, &s->card.io, &s->call, &s->flags, &s->reset, &s->result,
			     &s->d);
	s->call.params = NULL;
	if (s->reset)
		sim_token_reset(s->card_t);   /* what the core's disconnect(reset) does */
	json_decref(p);
	return rc;
}

/* ---- a journal in a temporary directory ---------------------------------------------- */

struct tu_journal {
	char dir[64];
	char db[128];
	struct journal *j;
};

static inline void tu_journal_open(struct tu_journal *tj)
{
	struct ssc_diag d;

	memset(tj, 0, sizeof(*tj));
	snprintf(tj->dir, sizeof(tj->dir), "/tmp/ssc-test-journal-XXXXXX");
	assert_non_null(mkdtemp(tj->dir));
	snprintf(tj->db, sizeof(tj->db), "%s/journal.db", tj->dir);
	ssc_diag_init(&d);
	if (journal_open(tj->db, NULL, 0, &tj->j, &d) != 0)
		fail_msg("journal_open: %s", d.msg);
}

static inline void tu_journal_close(struct tu_journal *tj)
{
	static const char *const files[] = { "journal.db", "journal.db.key", "journal.db-wal",
					     "journal.db-shm", "bl.txt" };
	char path[192];

	journal_close(tj->j);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tj->dir, files[i]);
		unlink(path);
	}
	rmdir(tj->dir);
	memset(tj, 0, sizeof(*tj));
}

/* The outcome rows of one intent, as journal_rows() reports them. */
struct tu_outcome {
	int64_t intent;
	int count;              /* outcome rows for the intent: 0 pending, 1 resolved */
	char outcome[16];       /* "applied" / "failed" / "partial" */
	char result[48];
	char how[224];          /* "card" / "readback" / "readback; written 33; not written 34" */
};

static inline int tu_outcome_cb(void *arg, const struct journal_row *row)
{
	struct tu_outcome *o = arg;

	if (strcmp(row->kind, "outcome") == 0 && row->intent == o->intent) {
		o->count++;
		snprintf(o->outcome, sizeof(o->outcome), "%s", row->method);
		snprintf(o->result, sizeof(o->result), "%s", row->result);
		snprintf(o->how, sizeof(o->how), "%s", row->detail);
	}
	return 0;
}

static inline void tu_journal_outcome(struct journal *j, int64_t intent, struct tu_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->intent = intent;
	assert_int_equal(journal_rows(j, 0, 0, tu_outcome_cb, o), 0);
}

/* The id and detail of the last intent row (detail copied into detail, cap bytes). */
struct tu_last_intent {
	int64_t id;
	char file[32];
	char card[JOURNAL_REF_HEX + 1];
	char detail[2048];
};

static inline int tu_last_intent_cb(void *arg, const struct journal_row *row)
{
	struct tu_last_intent *l = arg;

	if (strcmp(row->kind, "intent") == 0) {
		l->id = row->seq;
		snprintf(l->file, sizeof(l->file), "%s", row->file);
		snprintf(l->card, sizeof(l->card), "%s", row->card);
		snprintf(l->detail, sizeof(l->detail), "%s", row->detail);
	}
	return 0;
}

static inline void tu_journal_last_intent(struct journal *j, struct tu_last_intent *l)
{
	memset(l, 0, sizeof(*l));
	assert_int_equal(journal_rows(j, 0, 0, tu_last_intent_cb, l), 0);
}

/* Checks the whole chain. */
static inline void tu_journal_verify(struct journal *j)
{
	struct ssc_diag d;
	int64_t rows = 0;

	ssc_diag_init(&d);
	if (journal_verify(j, 0, NULL, &rows, &d) != 0)
		fail_msg("journal_verify: %s", d.msg);
	assert_true(rows >= 0);
}

#endif
