/*
 * This file contains the inside of a simulated token (card or PSAM): its copy of the profile, its
 * persistent state (the card's files, PIN and try counters) and its volatile state (current
 * DF/EF, security state, challenge, pending GET RESPONSE data), shared by sim_token.c (dispatch),
 * sim_card.c, sim_psam.c and sim_state.c. The calls run one way: sim_token.c calls sim_card.c and
 * sim_psam.c, which call sim_pending.c, sim_fs.c and sim_crypto.c; none calls back up.
 */
#ifndef SIM_TOKEN_H
#define SIM_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simcos.h"
#include "sim_apdu.h"
#include "sim_crypto.h"
#include "sim_fs.h"
#include "sim_pending.h"
#include "sim_profile.h"

/* A card key: K_card of one slot, its key id and (for external-auth keys) its try counter. */
struct sim_card_key {
	uint8_t id;
	uint8_t k[SIM_KEY_LEN];
	int tries_left;
};

struct sim_card_state {
	/* persistent */
	struct sim_fs fs;
	struct sim_card_key key[SIM_KEY_COUNT];
	char pin[13];
	int pin_tries_left;
	/* volatile: cleared by reset */
	int cur_df;
	struct sim_ef *cur_ef;
	uint8_t auth[32];            /* bitmap of key ids externally authenticated in cur_df */
	bool pin_ok;
	bool has_chal;
	uint8_t chal[8];
	/* test hook: the next GET CHALLENGE answers this (sim_testhook.h) */
	bool has_forced;
	uint8_t forced[8];
};

struct sim_psam_state {
	bool app;                    /* the SSC key application is selected */
	bool ef16;                   /* the terminal-number file is the current EF */
	bool has_k, has_ks;          /* DELIVER KEY gave K_card / K_card and Ks */
	uint8_t k[SIM_KEY_LEN];
	uint8_t ks[SIM_KEY_LEN];
};

struct sim_token {
	enum sim_role role;
	struct sim_profile prof;
	uint64_t generation;
	struct sim_pending pending;  /* the answer for GET RESPONSE (sim_pending.c) */
	struct sim_card_state card;
	struct sim_psam_state psam;
};

/* Personalises the card part of t from t->prof. Returns 0 or -ENOMEM / -EIO. */
int sim_card_init(struct sim_token *t);
void sim_card_done(struct sim_token *t);
void sim_card_reset(struct sim_token *t);

/*
 * Processes one parsed card command: data into out (at most SIM_DATA_MAX bytes, *outlen),
 * returns the status word. *t0 is set when the answer is one a T=0-style card hands out with 61xx.
 */
uint16_t sim_card_apdu(struct sim_token *t, const struct sim_apdu *a, uint8_t *out, size_t *outlen,
		       bool *t0);

void sim_psam_reset(struct sim_token *t);

/* As sim_card_apdu, for the PSAM. */
uint16_t sim_psam_apdu(struct sim_token *t, const struct sim_apdu *a, uint8_t *out, size_t *outlen);

#endif
