/*
 * This file contains what the fuzz targets of the daemon's card layer share: a simulated card or
 * PSAM (simcos) behind a struct card_io whose answers the fuzz input may mutate, and a
 * struct psam_source over one simulated PSAM for the real PSAM key provider (src/psam.c).
 * Header-only, static inline: each target is one program.
 */
#ifndef FUZZCARD_H
#define FUZZCARD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardio.h"
#include "fuzzlib.h"
#include "keyprov.h"
#include "psam_source.h"
#include "sim_testhook.h"
#include "simcos.h"
#include "sscard/error.h"

struct fuzzcard_token {
	struct card_io io;
	struct sim_token *t;
	struct fuzz_in *in;         /* the mutations; NULL: answers pass untouched */
	unsigned skip;              /* answers to let pass before the next mutation */
};

/* R = X of spec §12.8 for every GET CHALLENGE: the same input always gives the same run. */
static const uint8_t fuzzcard_challenge[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

static inline int fuzzcard_transmit(struct card_io *io, const uint8_t *cmd, size_t cmd_len,
				    uint8_t *resp, size_t resp_cap, unsigned flags)
{
	struct fuzzcard_token *ft = io->ctx;
	uint8_t ans[SIM_RESP_MAX];
	const uint8_t *p;
	size_t n, l;
	uint8_t kind;

	(void)flags;
	/* What the core's choke point would refuse: the layer above must never send it. */
	if (!cmd || cmd_len < 4 || cmd_len > SSC_CMD_APDU_MAX || !resp || resp_cap < 2)
		abort();
	sim_token_test_set_challenge(ft->t, fuzzcard_challenge);
	n = sim_token_apdu(ft->t, cmd, cmd_len, ans);
	kind = 0;
	if (ft->in && ft->skip > 0)
		ft->skip--;
	else if (ft->in)
		kind = fuzz_byte(ft->in, 0) % 8;
	switch (kind) {
	case 1:
		if (fuzz_chunk(ft->in, &p, &l) != 0)
			break;
		n = l < sizeof(ans) ? l : sizeof(ans);
		memcpy(ans, p, n);
		break;
	case 2:
		if (n < 2)
			n = 2;
		ans[n - 2] = fuzz_byte(ft->in, 0x6F);
		ans[n - 1] = fuzz_byte(ft->in, 0x00);
		break;
	case 3:
		l = fuzz_byte(ft->in, 0);
		if (l < n)
			n = l;
		break;
	case 4:
		l = fuzz_byte(ft->in, 0);
		if (n > 0)
			ans[l % n] ^= fuzz_byte(ft->in, 0xFF);
		break;
	case 5:
		return SSC_ECARDREMOVED;
	case 6:
		return SSC_ETIMEDOUT;
	case 7:
		ft->skip = fuzz_byte(ft->in, 0);
		break;
	default:
		break;
	}
	/* As the choke point: an answer without a status word, or too long, is a protocol fault. */
	if (n < 2 || n > resp_cap)
		return n == 0 ? SSC_ECARDREMOVED : SSC_EPROTO;
	memcpy(resp, ans, n);
	return (int)n;
}

static inline void fuzzcard_token_init(struct fuzzcard_token *ft, const struct sim_profile *p,
				       enum sim_role role, struct fuzz_in *in, int64_t deadline)
{
	memset(ft, 0, sizeof(*ft));
	ft->t = sim_token_new(p, role);
	if (!ft->t)
		abort();
	ft->in = in;
	ft->io.transmit = fuzzcard_transmit;
	ft->io.ctx = ft;
	ft->io.atr_len = sim_token_atr(ft->t, ft->io.atr);
	ft->io.deadline_ms = deadline;
	snprintf(ft->io.reader_id, sizeof(ft->io.reader_id), "pcsc-fuzz-00-0%d", (int)role);
	snprintf(ft->io.reader_serial, sizeof(ft->io.reader_serial), "FUZZ%d", (int)role);
}

/* The PSAM source: one simulated PSAM, its key application selected at every acquire. */
struct fuzzcard_psam {
	struct fuzzcard_token tok;
	int present;
	enum ssc_alg alg;
	int broken;
	int term_known;             /* the probe read its terminal number */
};

static inline int fuzzcard_psam_acquire(void *ctx, enum ssc_alg alg, int64_t deadline_ms,
					struct card_io **io)
{
	static const uint8_t select_app[] = { 0x00, 0xA4, 0x04, 0x00, 0x06,
					      0xD1, 0x56, 0x00, 0x00, 0x05, 0x90 };
	struct fuzzcard_psam *ps = ctx;
	uint8_t resp[SIM_RESP_MAX];

	(void)deadline_ms;
	if (!ps->present)
		return SSC_ENOPSAM;
	if (alg != ps->alg)
		return SSC_EPSAMALGO;
	(void)sim_token_apdu(ps->tok.t, select_app, sizeof(select_app), resp);
	*io = &ps->tok.io;
	return 0;
}

static inline void fuzzcard_psam_release(void *ctx, struct card_io *io, int broken)
{
	struct fuzzcard_psam *ps = ctx;

	if (io != &ps->tok.io)
		abort();   /* released what was not acquired */
	if (broken)
		ps->broken = 1;
}

static inline unsigned fuzzcard_psam_algorithms(void *ctx);

/*
 * The terminal number the probe would have read, from memory (psam_source.terminal_number): the
 * PSAM's EF16 as 12 hex digits, or SSC_ENOTFOUND when the source is told not to know it.
 */
static inline int fuzzcard_psam_terminal(void *ctx, enum ssc_alg alg, char out[13])
{
	static const uint8_t read_term[] = { 0x00, 0xB0, 0x96, 0x00, 0x06 };
	static const char hex[] = "0123456789ABCDEF";
	struct fuzzcard_psam *ps = ctx;
	uint8_t resp[SIM_RESP_MAX];
	size_t n;

	if (!ps->present)
		return SSC_ENOPSAM;
	if (alg != ps->alg)
		return SSC_EPSAMALGO;
	if (!ps->term_known)
		return SSC_ENOTFOUND;
	n = sim_token_apdu(ps->tok.t, read_term, sizeof(read_term), resp);
	if (n != 8)
		return SSC_ENOTFOUND;
	for (int i = 0; i < 6; i++) {
		out[2 * i] = hex[resp[i] >> 4];
		out[2 * i + 1] = hex[resp[i] & 0x0F];
	}
	out[12] = '\0';
	return 0;
}

/* Fills src with the functions above over ps (every member set; later ones NULL). */
static inline void fuzzcard_psam_source(struct psam_source *src, struct fuzzcard_psam *ps)
{
	memset(src, 0, sizeof(*src));
	src->acquire = fuzzcard_psam_acquire;
	src->release = fuzzcard_psam_release;
	src->algorithms = fuzzcard_psam_algorithms;
	src->terminal_number = fuzzcard_psam_terminal;
	src->ctx = ps;
}

static inline unsigned fuzzcard_psam_algorithms(void *ctx)
{
	struct fuzzcard_psam *ps = ctx;

	return ps->present ? 1u << ps->alg : 0;
}

/* The PSAM's algorithm, from its FCI's 9F0C (the probe's job in the daemon). */
static inline enum ssc_alg fuzzcard_psam_alg(struct sim_token *t)
{
	static const uint8_t select_app[] = { 0x00, 0xA4, 0x04, 0x00, 0x06,
					      0xD1, 0x56, 0x00, 0x00, 0x05, 0x90 };
	uint8_t resp[SIM_RESP_MAX];
	size_t n = sim_token_apdu(t, select_app, sizeof(select_app), resp);

	return n >= 3 && resp[n - 3] == 0x03 ? SSC_ALG_SM4 : SSC_ALG_DES;
}

#endif
