/*
 * This file contains the card operations behind the API's card.* methods: each one checks its
 * params, runs on a reader's worker thread with the card connected, and builds its JSON result.
 * JSON in, JSON out; the transport (socket, JSON-RPC framing) is src/rpc.c's business. The one
 * public header of ops.c (the table), ops_read.c, ops_pin.c, ops_write.c, ops_card.c,
 * ops_recover.c and ops_params.c; what they share among themselves is in src/ops_int.h.
 */
#ifndef SSC_OPS_H
#define SSC_OPS_H

#include <jansson.h>

#include "cardio.h"
#include "config.h"
#include "journal.h"
#include "keyprov.h"
#include "sscard/error.h"

/* What an operation may use besides the card. All borrowed; shared by all workers. */
struct op_env {
	const struct config *cfg;
	struct keyprov *kp;      /* the key provider (PSAM today) */
	/*
	 * The journal: lost-card list, card refs for the audit trail, write intents. NULL while it
	 * is out of service (and in unit tests): reads go on without the lost-card check, writes
	 * are refused with SSC_EJOURNAL (never a write without a durable intent). The daemon may
	 * change it at any time with an atomic store (__atomic_store_n, release); each operation
	 * loads it once (acquire) and uses that handle to its end, so a handle once published must
	 * stay valid (suspended, not freed) while workers run.
	 */
	struct journal *journal;
};

/* One API call as its operation sees it. */
struct op_call {
	json_t *params;                        /* the request's params (a private deep copy; may be
						* NULL); PIN strings in it are wiped by the op */
	const struct journal_peer *peer;       /* who called (borrowed; NULL = unknown) */
	char card_ref[JOURNAL_REF_HEX + 1];    /* set by the op once it knows the card number
						* (journal_card_ref), for the audit row; "" until then */
	json_t *error_data;                    /* set by an op that fails: members added to the
						* error's data (a new reference, or NULL); e.g.
						* card.write_items' "written" */
	/*
	 * The lost-card check (ops_identify): allow_lost is set by a read whose params ask for it
	 * ("allow_lost": true): a listed card is then answered, not refused. lost is what the
	 * check found: 1 listed, 0 not, -1 not checked (the journal unavailable).
	 */
	int allow_lost;
	int lost;
	char audit_detail[64];                 /* the audit row's detail (a JSON object), "" = none */
	/*
	 * The reader's lease (readers.h, struct job): the lease the call belongs to, from the
	 * op's lease() (card.hsm_step2); or set by run() with lease_ms to ask for one
	 * (card.hsm_step1).
	 */
	uint64_t lease;
	int lease_ms;
};

/*
 * A bit of the card's per-insertion memory (job_run_fn's *insertion_flags, beside ssc.h's
 * CARD_FLAG_*): the journal's pending intents were checked for this insertion.
 */
#define CARD_FLAG_RESOLVED 0x2

struct op_desc;

/*
 * An operation. op is its own table entry (for its variant). Returns 0 and sets *result (a new
 * reference), or returns SSC_E* with diag filled (sw, retries_left, msg) and, when it has more to
 * say, call->error_data. Either way call->card_ref names the card when the op learned it.
 * *insertion_flags and *reset_card as in readers.h job_run_fn. Worker thread.
 */
typedef int (*op_run_fn)(const struct op_desc *op, const struct op_env *env, struct card_io *io,
			 struct op_call *call, unsigned *insertion_flags, int *reset_card,
			 json_t **result, struct ssc_diag *diag);

/*
 * Checks params before the job is queued, so that bad params are answered at once with
 * SSC_EINVAL / SSC_EBADITEM / SSC_EVALUE, the PIN format and policy errors (SSC_EPINFORMAT,
 * SSC_EPININITIAL, SSC_EPINSAME, SSC_EPINNOTCHANGED), SSC_ECONFIG, or SSC_EJOURNAL (a write while
 * the journal is out of service), with a message. op is its own table entry. Loop thread; never
 * touches a card.
 */
typedef int (*op_check_fn)(const struct op_desc *op, const struct op_env *env, json_t *params,
			   struct ssc_diag *diag);

/*
 * Optional, after check(): the reader and the lease a request belongs to, from its params rather
 * than its "reader" (card.hsm_step2: its session's). Writes the reader id (reader_cap bytes) and
 * *lease. Returns 0, or an error answered at once (SSC_EHSMSESSION, SSC_EHSMEXPIRED). Loop thread;
 * never touches a card.
 */
typedef int (*op_lease_fn)(const struct op_env *env, json_t *params, char *reader,
			   size_t reader_cap, uint64_t *lease, struct ssc_diag *diag);

/*
 * Idempotent writes (a "request_id" in params): before the job is queued, whether the journal
 * answers the call without the card. Returns 0 (queue the job: no request_id, a new one, one
 * that failed with nothing applied, or one whose outcome the card must tell), 1 with *result (a
 * new reference: the first call's result, rebuilt from these params; nothing is sent to the
 * card), or SSC_E* with diag: SSC_EREQCONFLICT (the request_id came with other params), the
 * first call's error when it was applied in part, SSC_EJOURNAL; with no_card (the job could not
 * be queued for want of a card) also SSC_EOUTCOME for a request whose outcome is unknown. Loop
 * thread; a journal lookup, never a card. NULL for an operation that writes nothing.
 */
typedef int (*op_replay_fn)(const struct op_desc *op, const struct op_env *env, json_t *params,
			    int no_card, json_t **result, struct ssc_diag *diag);

struct op_desc {
	const char *method;      /* "card.read_basic" */
	op_check_fn check;
	op_run_fn run;
	int variant;             /* which of its family's methods (ops_pin.c: enum ops_pin_cmd) */
	op_lease_fn lease;       /* NULL: the reader is the "reader" param, no lease */
	op_replay_fn replay;     /* NULL: the method takes no request_id */
};

/*
 * The table of card operations (src/ops.c), terminated by an entry with method NULL; rpc.c
 * serves each as a method, in this order.
 */
extern const struct op_desc ops_table[];

/* The operation for method, or NULL. */
const struct op_desc *ops_find(const char *method);

/*
 * Overwrites the PIN strings ("pin", "old_pin", "new_pin") of a request's params (an object;
 * anything else or NULL is left alone). Best effort: jansson keeps a string in a heap buffer of
 * its own, which json_string_value() hands out as const only to prevent accidents; other copies
 * of the request (the socket's line buffer, jansson's parser buffers) are out of its reach. The
 * PIN operations call it on their private copy; rpc.c on the request it parsed.
 */
void ops_wipe_pins(json_t *params);

/*
 * Whether op only reads the card (card.read_basic, card.read_items, card.internal_auth,
 * medical.credentials): the reader core keeps the read-ahead's data past such a job (readers.h,
 * job->ahead_keep); every other operation may change the card and drops it. NULL: 0.
 */
int ops_reads_only(const struct op_desc *op);

/*
 * The read-ahead of a user card just inserted (src/readers.h, struct readers_ahead; arg: the
 * daemon's struct op_env): what card.read_basic reads (SELECT SSSE, EF05 and EF06, with read
 * authorisation through the key provider when the card needs it; the pending intents of the card
 * are left to the job sscardd queues for them on card.inserted, which keeps the data). Returns 0 and *kept (owned by the caller, freed with
 * ops_ahead_drop(); never logged, never written anywhere), or the read's error with nothing kept
 * (a card that needs read authorisation with no key provider: card.read_basic then reads as
 * without read-ahead and answers the same error). *reset_card as a job's. Worker thread; blocks on
 * the card until io->deadline_ms.
 */
int ops_ahead_read(void *arg, struct card_io *io, unsigned *insertion_flags, int *reset_card,
		   void **kept);

/* Wipes (explicit_bzero) and frees the data of ops_ahead_read(). NULL is a no-op. */
void ops_ahead_drop(void *kept);

/*
 * Resolves the write intents left pending (no outcome: the card left, the daemon died, the
 * deadline passed mid-write) for the card in io, by reading it back (issue 4): SELECT SSSE, read
 * the card number, and for each pending intent of this card (oldest first):
 * - update: every record equal to its "new" ref -> applied (SSC_OK); every record equal to its
 *   "old" ref -> failed, SSC_ENOTFOUND (not applied); some equal to their "new" ref and the rest
 *   to their "old" -> partial, SSC_ENOTFOUND, how = "readback; written TAGS; not written TAGS"
 *   (a write cut off between its records), with a warning in the log; a record equal to neither
 *   -> failed, SSC_EBADCARDDATA (changed elsewhere), with a warning naming the intent id;
 * - append: a DF04/EF08 record with the intent's settlement number and record ref -> applied,
 *   else failed, SSC_ENOTFOUND.
 * Outcomes are recorded with how = "readback"; an intent already resolved meanwhile is left
 * alone (never resolved twice). The reader core calls it on card insertion, then sets
 * CARD_FLAG_RESOLVED; the card.* operations do it themselves on a card whose insertion has no
 * CARD_FLAG_RESOLVED yet, only while the journal has pending intents.
 * Returns the number of intents resolved (>= 0); 0 at once when env->journal is NULL or has no
 * pending intent at all (no APDU sent); SSC_EJOURNAL; the card's errors (an intent whose records
 * cannot be read stays pending). Reading SSSE/EF06 back may need its read authorisation (a
 * security state for reading only): the caller should reset the card afterwards when this
 * returns non-zero, as for a job that sets reset_card. Blocks on the card, bounded by
 * io->deadline_ms. Worker thread.
 */
int ops_resolve_pending(const struct op_env *env, struct card_io *io, struct ssc_diag *diag);

#endif
