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

#include <cmocka.h>

#include "cardio.h"
#include "crypto.h"
#include "keyprov.h"

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
	return crypto_cryptogram_master(alg, t->master, div, r, x, c);
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
		.terminal_number = tu_kp_terminal,
	};

	memset(t, 0, sizeof(*t));
	tu_unhex(master_hex, t->master, sizeof(t->master));
	t->algs = algs;
	t->kp.ops = &ops;
	t->kp.ctx = t;
}

#endif
