/*
 * This file contains the card operations behind the API's card.* methods: each one checks its
 * params, runs on a reader's worker thread with the card connected, and builds its JSON result.
 * JSON in, JSON out; the transport (socket, JSON-RPC framing) is src/rpc.c's business.
 */
#ifndef SSC_OPS_H
#define SSC_OPS_H

#include <jansson.h>

#include "cardio.h"
#include "config.h"
#include "keyprov.h"
#include "sscard/error.h"

/* What an operation may use besides the card. All borrowed; shared by all workers. */
struct op_env {
	const struct config *cfg;
	struct keyprov *kp;      /* the key provider (PSAM today) */
};

/*
 * An operation. params: the request's params (a private deep copy; may be NULL). Returns 0 and sets
 * *result (a new reference), or returns SSC_E* with diag filled (sw, retries_left, msg).
 * *insertion_flags and *reset_card as in readers.h job_run_fn.
 */
typedef int (*op_run_fn)(const struct op_env *env, struct card_io *io, json_t *params,
			 unsigned *insertion_flags, int *reset_card, json_t **result,
			 struct ssc_diag *diag);

/*
 * Checks params before the job is queued, so that bad params are answered at once with
 * SSC_EINVAL / SSC_EBADITEM / SSC_EVALUE and a message. Loop thread; never touches a card.
 */
typedef int (*op_check_fn)(const struct op_env *env, json_t *params, struct ssc_diag *diag);

struct op_desc {
	const char *method;      /* "card.read_basic" */
	op_check_fn check;
	op_run_fn run;
};

/* The table of card operations, terminated by an entry with method NULL. */
extern const struct op_desc ops_table[];

/* The operation for method, or NULL. */
const struct op_desc *ops_find(const char *method);

#endif
