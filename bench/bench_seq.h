/*
 * This file contains the APDU scripts of the bare PC/SC client (bench/seq/NAME.seq): the minimal
 * command sequence of an operation, written by hand from the spec, one command per line, with the
 * status word each must get and placeholders for what earlier answers returned (a challenge, a
 * cryptogram). Syntax, one step per line ('#' starts a comment):
 *
 *     [once] card|psam HEX... [-> VAR] [= SW]
 *
 * once: the step runs in the first run only (selecting the PSAM's key application once per
 * session, for instance).
 * HEX may contain spaces and {VAR} (the data of an earlier answer saved with -> VAR) or
 * {fold VAR} (a 16-byte SM4 cryptogram folded to 8 bytes: C16[0..7] xor C16[8..15], spec §12.3).
 * SW defaults to 9000.
 */
#ifndef BENCH_SEQ_H
#define BENCH_SEQ_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_SEQ_VARS_MAX 8
#define BENCH_SEQ_VAR_NAME_MAX 16
#define BENCH_SEQ_APDU_MAX 261
#define BENCH_SEQ_RESP_MAX 258

enum bench_seq_target { BENCH_SEQ_CARD = 0, BENCH_SEQ_PSAM = 1 };

struct bench_seq_step {
	enum bench_seq_target target;
	char *tmpl;                      /* the HEX part, owned */
	char save[BENCH_SEQ_VAR_NAME_MAX];     /* "" = keep nothing */
	uint16_t sw;
	int once;
};

struct bench_seq {
	struct bench_seq_step *steps;          /* owned */
	size_t n;
	int uses_psam;
};

/* Variables of one run: the data of the answers saved so far. */
struct bench_seq_vars {
	char name[BENCH_SEQ_VARS_MAX][BENCH_SEQ_VAR_NAME_MAX];
	uint8_t val[BENCH_SEQ_VARS_MAX][BENCH_SEQ_RESP_MAX];
	size_t len[BENCH_SEQ_VARS_MAX];
	size_t n;
};

/*
 * Loads a script and appends its steps to out (zero it before the first script: several scripts
 * make one sequence). Returns 0, or -1 with a message naming the file and line in err (errlen
 * bytes); out is then freed.
 */
int bench_seq_load(const char *path, struct bench_seq *out, char *err, size_t errlen);

/* Frees a script; NULL-safe on a zeroed struct. */
void bench_seq_free(struct bench_seq *s);

/*
 * Builds the command of step st with vars into out (BENCH_SEQ_APDU_MAX bytes). Returns its
 * length, or -1 with a message in err (an unknown variable, odd hex, too long).
 */
int bench_seq_expand(const struct bench_seq_step *st, const struct bench_seq_vars *vars,
		     uint8_t *out, char *err, size_t errlen);

/* Saves data (len bytes) as variable name (replacing an earlier value). Returns 0 or -1 (full). */
int bench_seq_vars_set(struct bench_seq_vars *vars, const char *name, const uint8_t *data,
		       size_t len);

#endif
