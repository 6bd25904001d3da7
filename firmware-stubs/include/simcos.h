/*
 * This file contains the simulated card operating system's interface: a social security card or a
 * PSAM (spec ssc-card.md §2, §3, §12) as a pure APDU-in / APDU-out object with no I/O. The vpcd link
 * (sscard-sim) and the USB CCID emulator (tests/) both carry one of these; unit tests drive it
 * directly. It shares no code with the daemon on purpose: a misreading of the spec must not be
 * able to hide in a shared helper.
 */
#ifndef SIMCOS_H
#define SIMCOS_H

#include <stddef.h>
#include <stdint.h>

#define SIM_ATR_MAX 33
#define SIM_RESP_MAX 258       /* 256 data bytes + SW1 SW2 */

enum sim_role { SIM_ROLE_CARD = 0, SIM_ROLE_PSAM = 1 };

struct sim_profile;   /* a card + PSAM set, loaded from one JSON file (firmware-stubs/profiles/) */
struct sim_token;     /* one card or one PSAM, personalised from a profile */

/*
 * Loads a profile. On failure returns NULL and writes into err (errlen bytes) a message naming the
 * file and the offending field ("profiles/x.json: card.holder.ssn: check digit is 7, expected 3").
 */
struct sim_profile *sim_profile_load(const char *path, char *err, size_t errlen);

/* Same, from a JSON text in memory (name is used in messages). */
struct sim_profile *sim_profile_parse(const char *json, size_t len, const char *name, char *err,
				      size_t errlen);

/* NULL is a no-op. Wipes the keys the profile holds. */
void sim_profile_free(struct sim_profile *p);

/* Creates a card or PSAM personalised from p (p is borrowed only for the call). NULL on ENOMEM. */
struct sim_token *sim_token_new(const struct sim_profile *p, enum sim_role role);

/* NULL is a no-op; wipes keys. */
void sim_token_free(struct sim_token *t);

/* Writes the ATR (at most SIM_ATR_MAX bytes) and returns its length. */
size_t sim_token_atr(const struct sim_token *t, uint8_t *atr);

/* Power-on / reset: clears the security state, the current DF/EF and the challenge. */
void sim_token_reset(struct sim_token *t);

/*
 * Processes one command APDU (any bytes, any length: malformed input gets the proper ISO status
 * word) and writes the answer (data then SW1 SW2) into resp (SIM_RESP_MAX bytes). Returns the
 * answer length, always >= 2. Never crashes, never blocks.
 */
size_t sim_token_apdu(struct sim_token *t, const uint8_t *cmd, size_t len, uint8_t *resp);

/*
 * A counter that moves whenever the persistent state (records, PIN, try counters) changes, so that
 * the program knows when to save.
 */
uint64_t sim_token_generation(const struct sim_token *t);

/*
 * Saves the persistent state to path atomically (temporary file, fsync, rename, fsync of the
 * directory). Returns 0 or -errno.
 */
int sim_token_save(const struct sim_token *t, const char *path);

/*
 * Loads state saved by sim_token_save over the profile's initial state. A missing file is not an
 * error (returns 1: nothing loaded). A state file that does not belong to this profile/role or is
 * malformed returns -EINVAL with a message in err.
 */
int sim_token_load(struct sim_token *t, const char *path, char *err, size_t errlen);

#endif
