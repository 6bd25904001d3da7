/*
 * This file contains the in-memory form of a simulator profile (one card + PSAM set) and the
 * names of its key slots. The loader (sim_profile.c) validates the JSON strictly and stores every
 * card item already encoded (BCD, GB 18030, padded to its record length), so that personalising a card
 * is a copy. The structure is flat (no pointers): a token keeps its own copy.
 */
#ifndef SIM_PROFILE_H
#define SIM_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simcos.h"
#include "sim_crypto.h"

/* Key slots: each is a card key id and a PSAM (usage, index), with one master key (§12.4). */
enum sim_key_slot {
	SIM_KEY_EXT_AUTH = 0,   /* card 04, PSAM 48/12: external auth before writing SSSE EF05/EF06 */
	SIM_KEY_EF0D,           /* card 0D, PSAM 48/13: external auth before writing EF0D */
	SIM_KEY_READ_AUTH,      /* card 0A, PSAM 48/1A: RKSSSE, read authorisation of EF06 */
	SIM_KEY_INTERNAL,       /* card 00, PSAM 47/11: internal authentication (IRK) */
	SIM_KEY_STK,            /* card 05, PSAM 46/15: MAC of secure writes */
	SIM_KEY_PIN_RELOAD,     /* card 06, PSAM 44/16 */
	SIM_KEY_PUK,            /* card 07, PSAM 43/17: PIN unblock */
	SIM_KEY_COUNT
};

enum sim_read_modes { SIM_RMODES_BOTH = 0, SIM_RMODES_NUMBER, SIM_RMODES_TAG };

#define SIM_TXN_LEN 51   /* DF04/EF08 record value length (0x33, §12.7) */
#define SIM_TXN_MAX 64   /* upper bound of the configurable EF08 capacity */
#define SIM_NAME_MAX 64

/* Behaviour switches of the card (docs/simulator.md, "Behaviour switches"). */
struct sim_quirks {
	bool t0_get_response;            /* SELECT SSSE and READ RECORD answer 61xx */
	bool exact_le;                   /* READ RECORD: any Le but the exact length -> 6Cxx */
	bool ef06_read_auth;             /* READ of SSSE/EF06 needs EXTERNAL AUTH with the read key */
	bool omit_9f0c;                  /* SSSE FCI without 9F0C */
	bool card_id_mac_bad;            /* the 卡识别码 MAC is wrong */
	bool wrong_keys;                 /* the card's keys come from ~master: not genuine */
	enum sim_read_modes read_modes;  /* the READ RECORD modes the card accepts */
};

struct sim_card_profile {
	uint8_t atr[SIM_ATR_MAX];
	size_t atr_len;
	uint8_t chip_serial[8];          /* last 8 historical bytes of the ATR = cardDiv */
	uint8_t city_div[8];             /* ASCII region || "sx" */
	enum sim_alg alg;
	int generation;                  /* 1, 2 or 3: first digit of the spec version */

	/* Initial record values, encoded and padded to the record lengths of §2.2-2.4 and §12.7. */
	uint8_t card_id[16], card_type[1], spec_version[4], init_org[12], issue_date[4],
		expiry_date[4], card_number[9];
	uint8_t ssn[18], name[30], name_ext[20], sex[1], nation[1], birth_place[3], birth_date[4];
	uint8_t person_id[12], first_region[3];                               /* EF0D, gen 3 */
	uint8_t med_region[3], med_category[2], med_person_no[20], med_institution[12], med_relocated[1];
	uint8_t med_offline[1];
	int txn_cap;                     /* EF08 capacity (cfg, default 10) */
	int txn_count;
	uint8_t txn[SIM_TXN_MAX][SIM_TXN_LEN];   /* txn[0] is the newest = record 1 */

	char pin[13];                    /* digits, NUL-terminated */
	int pin_tries, pin_tries_left, pin_min, pin_max;
	int key_tries;

	uint8_t master[SIM_KEY_COUNT][SIM_KEY_LEN];
	uint8_t key_id[SIM_KEY_COUNT];
	uint8_t issuer_key[SIM_KEY_LEN];
	struct sim_quirks q;
};

struct sim_psam_profile {
	uint8_t atr[SIM_ATR_MAX];
	size_t atr_len;
	enum sim_alg alg;
	uint8_t terminal[6];             /* BCD terminal number */
	uint8_t usage[SIM_KEY_COUNT], index[SIM_KEY_COUNT];
};

struct sim_profile {
	char name[SIM_NAME_MAX + 1];
	uint8_t digest[32];              /* SHA-256 of the JSON text: ties state files to the profile */
	struct sim_card_profile card;
	struct sim_psam_profile psam;
};

/* The JSON name of a key slot ("ext_auth", "stk", ...). */
const char *sim_profile_key_name(enum sim_key_slot slot);

#endif
