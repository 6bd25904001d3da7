/*
 * This file contains what the files of the card operations share among themselves (src/ops.h is
 * the module's one public header): their limits, the parameter checks (ops_params.c), the
 * transaction records (ops_txn.c), the card as every operation opens it (ops_card.c), the
 * resolution of pending intents (ops_recover.c), card.read_basic's answer (ops_basic.c), and
 * the check and run functions of each family that ops.c's table names (ops_read.c, ops_pin.c,
 * ops_write.c, ops_hsm.c) and idempotent requests (ops_request.c). Calls run down only: ops.c
 * -> ops_read.c, ops_pin.c, ops_write.c, ops_hsm.c -> ops_basic.c -> ops_card.c -> ops_recover.c
 * -> ops_txn.c -> ops_params.c; a family may skip a layer (ops_write.c calls ops_recover.c, the
 * families ops_request.c and ops_params.c), never call up; ops_request.c calls only the journal.
 */
#ifndef SSC_OPS_INT_H
#define SSC_OPS_INT_H

#include <stdint.h>

#include "items.h"
#include "ops.h"
#include "ssc.h"

#define OPS_MAX_ITEMS 64          /* items in one card.read_items / card.write_items request */

/*
 * The environment as one operation sees it from start to end. The daemon publishes the journal
 * with an atomic store (NULL while it is out of service); an operation reads it once, so that it
 * cannot vanish between an intent and its outcome. The handle stays valid meanwhile: the daemon
 * suspends a failed journal, it never frees it while workers run.
 */
static inline void ops_env_snapshot(const struct op_env *env, struct op_env *out)
{
	out->cfg = env->cfg;
	out->kp = env->kp;
	out->journal = __atomic_load_n(&env->journal, __ATOMIC_ACQUIRE);
}

/* Failures after which nobody knows what the card did with the last command. */
static inline int ops_transport(int rc)
{
	return rc == SSC_ETIMEDOUT || rc == SSC_ECARDREMOVED || rc == SSC_ENOCARD ||
	       rc == SSC_EREADER || rc == SSC_EIO || rc == SSC_EPROTO || rc == SSC_ESHUTDOWN;
}

/* ---- ops_params.c: the checks of an operation's params (no card, no journal) --------------- */

/*
 * The start of every operation's params: an object or absent (SSC_EINVAL), no member outside
 * allowed (NULL-terminated; SSC_EINVAL naming it, with its own message for "allow_lost"), and
 * "reader", when present, a string (the core resolves it).
 */
int ops_params_check(json_t *params, const char *const *allowed, struct ssc_diag *diag);
/* The check (op_check_fn) of an operation whose only param is "reader" (optional). */
int ops_params_reader_only(const struct op_desc *op, const struct op_env *env, json_t *params,
			   struct ssc_diag *diag);

/*
 * Refuses any member of the object o (NULL: none) not in allowed (NULL-terminated): SSC_EINVAL
 * naming it.
 */
int ops_params_known(json_t *o, const char *const *allowed, struct ssc_diag *diag);

/* An optional boolean param: *out keeps its default when absent; SSC_EINVAL when no boolean. */
int ops_params_bool(json_t *params, const char *name, int *out, struct ssc_diag *diag);

/* internal_auth: the param asks for it, [card] require_internal_auth imposes it. */
int ops_params_internal_auth(const struct op_env *env, json_t *params, int *out,
			     struct ssc_diag *diag);

/* ---- ops_request.c: idempotent writes (a client's request_id) ------------------------------ */

#define OPS_REQUEST_ID_MAX 64     /* characters of a request_id (printable ASCII) */

/* A request_id and its params' fingerprint, and whether this thread holds it as running. */
struct ops_request {
	char id[OPS_REQUEST_ID_MAX + 1];   /* "" = none given: the call is not idempotent */
	char fp[JOURNAL_REF_HEX + 1];
	int claimed;
};

/* What ops_request_lookup() found of an earlier request with the same request_id. */
enum ops_request_state {
	OPS_REQ_NEW = 0,          /* none, or one that failed with nothing applied: run it */
	OPS_REQ_APPLIED = 1,      /* applied: answer its result, send nothing */
	OPS_REQ_PENDING = 2,      /* its intent has no outcome: read the card back, or unknown */
};

/*
 * The optional "request_id" param into *rq (rq->id "" when absent): SSC_EINVAL when it is not a
 * string of 1 to OPS_REQUEST_ID_MAX printable ASCII characters.
 */
int ops_request_param(json_t *params, struct ops_request *rq, struct ssc_diag *diag);
/* The start of params that may carry a request_id: ops_params_check, then the id into rq. */
int ops_request_params(json_t *params, const char *const *allowed, struct ops_request *rq,
		       struct ssc_diag *diag);

/*
 * rq->fp: the journal's keyed hash of method and the params without reader, request_id and the
 * PINs (never stored, not even hashed), in canonical JSON (sorted keys). SSC_ENOMEM.
 */
int ops_request_fingerprint(struct journal *j, const char *method, json_t *params,
			    struct ops_request *rq, struct ssc_diag *diag);

/*
 * Marks rq as running in this daemon; while another thread runs the same request_id with the
 * same fingerprint, waits until it ends (until deadline_ms, cardio_now_ms: then SSC_EOUTCOME);
 * with another fingerprint SSC_EREQCONFLICT at once; SSC_ELIMIT when too many run. Blocks.
 */
int ops_request_claim(struct ops_request *rq, int64_t deadline_ms, struct ssc_diag *diag);

/* Ends what ops_request_claim() began (wakes the waiters). No-op when rq is not claimed. */
void ops_request_release(struct ops_request *rq);

/*
 * The journal's word on rq: enum ops_request_state (jr filled when found), SSC_EREQCONFLICT (the
 * request_id came with other params), the first request's error when it was applied in part
 * (JOURNAL_PARTIAL: never run again), SSC_EJOURNAL.
 */
int ops_request_lookup(struct journal *j, const struct ops_request *rq,
		       struct journal_request *jr, struct ssc_diag *diag);

/*
 * SSC_EOUTCOME for a request whose intent jr stays without an outcome, the message saying why:
 * card_ref NULL (no card here), another card's ref, or the card's own (not read back yet).
 */
int ops_request_unknown(const struct journal_request *jr, const char *card_ref,
			struct ssc_diag *diag);
/* The result of an applied earlier request (its intent), rebuilt from this one's params req. */
typedef int (*ops_rebuild_fn)(const struct op_env *env, const void *req, int64_t intent,
			      json_t **result, struct ssc_diag *diag);
/*
 * A write with a request_id rq, before the card (when = 0) and once this card's pending intents
 * were read back (when = 1): 0 to write, 1 with *result (the first call's, from rebuild(env, req,
 * ...); the audit row says it was replayed), or an error (SSC_EOUTCOME when still unknown after
 * the card).
 */
int ops_request_repeat(const struct op_env *env, struct op_call *call, const struct ops_request *rq,
		       int when, ops_rebuild_fn rebuild, const void *req, json_t **result,
		       struct ssc_diag *diag);

/* Builds the result of an applied request from its repeated params and its intent's id. */
typedef int (*ops_request_result_fn)(const struct op_desc *op, const struct op_env *env,
				     json_t *params, int64_t intent, json_t **result,
				     struct ssc_diag *diag);

/*
 * An op_replay_fn's body (ops.h), with build for the op's result.
 */
int ops_request_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		       int no_card, ops_request_result_fn build, json_t **result,
		       struct ssc_diag *diag);

/* ---- ops_txn.c: the transaction records of DF04/EF08 ---------------------------------------- */

/*
 * A DF04/EF08 record as read_items shows it ({time, institution, settlement_no, total,
 * personal_account, pooled}) into *t: SSC_EINVAL (shape), SSC_EVALUE (a value out of range).
 */
int ops_txn_parse(json_t *o, struct item_txn *t, struct ssc_diag *diag);

/* A §12.7 transaction record as the API shows it (a new reference), NULL when out of memory. */
json_t *ops_txn_json(const struct item_txn *t);

/*
 * Called with each record read (recno from 1, the newest; v holds n bytes, wiped after the
 * call). Returns 0 to go on, OPS_TXN_STOPPED to stop, or a negative SSC_E* that stops.
 */
typedef int (*ops_txn_fn)(void *arg, int recno, const uint8_t *v, size_t n,
			  struct ssc_diag *diag);

#define OPS_TXN_STOPPED 1         /* fn stopped the reading */
#define OPS_TXN_HIDDEN 2          /* at the end: the card holds older records it cannot address */

/*
 * Reads the records of the cyclic file f (its item it) from the newest, at most 255, and hands
 * each to fn. Returns 0 at the end of the records, OPS_TXN_HIDDEN at the end when the card holds
 * older ones it cannot address (a card that reads records by tag only shows the newest one),
 * OPS_TXN_STOPPED, or the card's error or fn's (the reading stops). diag is cleared at the end.
 * Blocks on the card. Worker thread.
 */
int ops_txn_each(struct ssc_card *c, const struct item_file *f, const struct item_def *it,
		 ops_txn_fn fn, void *arg, struct ssc_diag *diag);
/*
 * Whether the transaction record v (n bytes) carries the settlement number settlement: 1, 0, or
 * the decoder's error. The decoded record is wiped.
 */
int ops_txn_same_settlement(const uint8_t *v, size_t n, const char *settlement,
			    struct ssc_diag *diag);

/* ---- ops_recover.c: pending intents resolved by reading the card back ---------------------- */

/* One pending intent as the journal listed it; detail is owned by the list it sits in. */
struct ops_pending {
	int64_t id;
	char file[32];
	char *detail;
};

/*
 * Reads back what one intent would have changed and records its outcome (cause: the error that
 * cut the write, when this daemon saw it; NULL after an interruption). Returns 1 (resolved), 0
 * (left pending: a detail this code cannot read, or resolved meanwhile by someone else), or the
 * card's error (the intent stays pending). Worker thread; env->journal not NULL.
 */
int ops_recover_one(const struct op_env *env, struct ssc_card *c, const struct ops_pending *p,
		    const char *cause, struct ssc_diag *diag);

/*
 * Sets the DF04/EF06 flag (record 41) of card c to value (0x01: an offline settlement awaits
 * upload, 0x00: none), by UPDATE RECORD with the STK MAC; with check_first, reads it first and
 * writes only when it differs. Returns 0 or the errors of ssc_read_item / ssc_write_record.
 */
int ops_recover_flag(struct ssc_card *c, uint8_t value, int check_first, struct ssc_diag *diag);
/* 1 when the card's DF04/EF06 flag reads value, 0 when anything else, or the card's error. */
int ops_recover_flag_is(struct ssc_card *c, uint8_t value, struct ssc_diag *diag);

/*
 * Resolves the pending intents of the card c (card_ref, or learned from the card when NULL).
 * Returns the number resolved, or an error (transport errors stop the pass at once). Worker
 * thread; env->journal not NULL.
 */
int ops_recover_card(const struct op_env *env, struct ssc_card *c, const char *card_ref,
		     struct ssc_diag *diag);

/* ---- ops_card.c: the card as every operation opens it -------------------------------------- */

/*
 * SELECT SSSE, then, on the first operation of an insertion while the journal holds pending
 * intents (of any card: which card this is costs APDUs to learn), resolves this card's intents
 * and sets CARD_FLAG_RESOLVED in *flags. A clean journal costs no APDU. A failure to resolve
 * that is not the card leaving is logged and the operation goes on; the next insertion tries
 * again. Returns 0 or the card's errors. Worker thread.
 */
int ops_card_open(const struct op_env *env, struct card_io *io, unsigned *flags,
		  struct ssc_card *c, struct ssc_diag *diag);

/*
 * The card's identity for the journal: its card number and 卡识别码 (read once, two READ RECORDs
 * unless the op read them already), call->card_ref, and the lost-card list (call->lost). Without a
 * journal there is nothing to check (reads go on) or a write is refused. A listed card is refused
 * (SSC_EBLACKLISTED) unless call->allow_lost (a read that asked to see a lost card).
 * writing: a journal error refuses the op (SSC_EJOURNAL) instead of being logged and passed over.
 */
int ops_card_identify(const struct op_env *env, struct op_call *call, struct ssc_card *c,
		      int writing, struct ssc_diag *diag);

/* ---- ops_basic.c: card.read_basic's answer (card.read_basic, card.hsm_step2) ---------------- */

/*
 * The terminal number a read reports (12 hex digits and a NUL into term): the key provider's for
 * the card's algorithm; 000000000000 without a provider of that algorithm, or when the key server
 * cannot give one (logged). Returns 0, or a PSAM's error other than its absence. Worker thread.
 */
int ops_basic_terminal(const struct op_env *env, const struct ssc_card *c, char term[13],
		       struct ssc_diag *diag);
/*
 * The opening of the operations that answer with the holder's basic data and a terminal number
 * (claim.verify_holder, medical.credentials): the card opened (ops_card_open), its basic data
 * read into b, the card identified for the journal and the lost-card check, the terminal number
 * into term (ops_basic_terminal). Returns 0 or the first error. Worker thread.
 */
int ops_basic_open(const struct op_env *env, struct card_io *io, struct op_call *call,
		   unsigned *insertion_flags, struct ssc_card *c, struct ssc_basic *b,
		   char term[13], struct ssc_diag *diag);

/*
 * card.read_basic's result object for b (term: the terminal number, serial: the reader's, alg:
 * the card's algorithm), with the iReadCardBas string; a new reference, or NULL (no memory).
 */
json_t *ops_basic_result(const struct ssc_basic *b, const char term[13], const char *serial,
			 enum ssc_alg alg);

/* ---- the families, named by ops.c's table (contracts: op_check_fn, op_run_fn in ops.h) ----- */

/* ops_read.c: card.read_basic, card.read_items, card.internal_auth. */
int ops_read_basic_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag);
int ops_read_basic_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag);
int ops_read_items_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag);
int ops_read_items_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag);
int ops_read_auth_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag);

/*
 * ops_pin.c: card.verify_pin, card.change_pin, card.reload_pin, card.unblock_pin: one check and
 * one run, told apart by the table entry's variant.
 */
enum ops_pin_cmd { OPS_PIN_VERIFY, OPS_PIN_CHANGE, OPS_PIN_RELOAD, OPS_PIN_UNBLOCK };

int ops_pin_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		  struct ssc_diag *diag);
int ops_pin_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		struct ssc_diag *diag);
int ops_pin_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		   int no_card, json_t **result, struct ssc_diag *diag);

/* ops_write.c: card.write_items. */
/* Writes are refused on an expired card: SSC_EEXPIRED, or the read's errors. */
int ops_write_expiry(struct ssc_card *c, struct ssc_diag *diag);
/*
 * The card as every write opens it: opened (ops_card_open), identified for writing (the journal,
 * the lost-card check), its generation known, a spec 1.00 card refused (SSC_EUNSUPPORTED).
 */
int ops_write_card_open(const struct op_env *env, struct card_io *io, struct op_call *call,
			unsigned *insertion_flags, struct ssc_card *c, struct ssc_diag *diag);
/*
 * Before a write intent: this card's earlier intents resolved by reading back (an intent read
 * back against values a later write changed could no longer tell). 0, the card's errors, or
 * SSC_EJOURNAL (intents that cannot be resolved yet: writes are refused).
 */
int ops_write_resolve_first(const struct op_env *env, struct ssc_card *c, const char *card_ref,
			    struct ssc_diag *diag);
int ops_write_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		    struct ssc_diag *diag);
int ops_write_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		  struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		  struct ssc_diag *diag);
int ops_write_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		     int no_card, json_t **result, struct ssc_diag *diag);

/*
 * ops_hsm.c: the two-step read of spec §13.1, with the table of its sessions, each holding its
 * reader's lease (struct job in readers.h), and the runs of both steps on the card (ssc_hsm.c).
 * card.hsm_step1 {reader?}: step 1 on the card (P and X from RAND_bytes), a new session (32 hex
 * digits, from RAND_bytes) that holds the reader's lease for [timeouts] hsm_session_ms, and the
 * result {session, step1, expires_in_ms}. The terminal number in the string is what
 * card.read_basic would report. Errors: those of ssc_hsm_step1, SSC_ELIMIT (64 sessions open).
 * card.hsm_step2 {session, key}: check() takes the two strings (SSC_EINVAL otherwise); lease()
 * finds the session (SSC_EHSMSESSION: none, or its step 2 came already; SSC_EHSMEXPIRED) and
 * ends it for any later step 2, giving its reader and lease; run() checks the key (SSC_EHSMKEY,
 * SSC_EHSMMISMATCH, before any command), read-authorises with it and reads: card.read_basic's
 * result, the lost-card check included. The job ends the reader's lease whatever its result.
 */
int ops_hsm_step1_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			struct ssc_diag *diag);
int ops_hsm_step1_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag);
int ops_hsm_step2_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			struct ssc_diag *diag);
int ops_hsm_step2_lease(const struct op_env *env, json_t *params, char *reader, size_t reader_cap,
			uint64_t *lease, struct ssc_diag *diag);
int ops_hsm_step2_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		      struct op_call *call, unsigned *insertion_flags, int *reset_card,
		      json_t **result, struct ssc_diag *diag);

/*
 * ops_claim.c: claim.verify_holder {reader?, pin, request_id?}: the basic data, INTERNAL AUTH
 * with P random and X = receipt_plaintext() (SSC_ENOTGENUINE: no VERIFY, no try spent), VERIFY
 * (SSC_EPINWRONG / SSC_EPINBLOCKED with retries_left: no receipt), then the receipt signed with
 * [receipts] key_file (SSC_ECONFIG when unset or unusable, before the card). Result: holder,
 * genuine, pin_verified, receipt (the signed text), signature (base64), algorithm.
 */
int ops_claim_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		    struct ssc_diag *diag);
int ops_claim_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		  struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		  struct ssc_diag *diag);

/*
 * ops_medical.c: medical.credentials {reader?}: mdtrt_cert_type "03", mdtrt_cert_no (卡号),
 * card_sn (卡识别码), psn_cert_type "01", certno (社会保障号码), psn_name, insuplc_admdvs (DF04/EF05
 * 30; "" and a note without it), standard (iReadCardBas), internal_auth {time, terminal_number,
 * algorithm, factor, plaintext, answer} (SSC_ENOTGENUINE when the card fails it).
 */
int ops_medical_cred_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
			 struct op_call *call, unsigned *insertion_flags, int *reset_card,
			 json_t **result, struct ssc_diag *diag);

/*
 * ops_settle.c: medical.settle_offline {reader?, request_id, transaction}: the transaction checked
 * (ops_txn_parse, personal_account + pooled <= total, §12.7 lengths), refused with SSC_ESETTLED
 * when its settlement number is in this desk's queue or on the card; the intent and the queue row
 * in one transaction (journal_medq_intent), APPEND RECORD with MAC, the DF04/EF06 flag 01, the
 * outcome (which queues it). Result: {id (queue), request_id, journal_id, transaction}.
 * medical.clear_flag {reader?, request_id?}: SSC_EMEDPENDING while a settlement of the card waits
 * in this desk's queue; else the flag 00 (an update intent of DF04/EF06 41) when it is set.
 * Result: {cleared, was_set, journal_id (when written)}.
 */
int ops_settle_check(const struct op_desc *op, const struct op_env *env, json_t *params,
		     struct ssc_diag *diag);
int ops_settle_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		   struct op_call *call, unsigned *insertion_flags, int *reset_card, json_t **result,
		   struct ssc_diag *diag);
int ops_settle_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
		      int no_card, json_t **result, struct ssc_diag *diag);
int ops_clear_flag_check(const struct op_desc *op, const struct op_env *env, json_t *params,
			 struct ssc_diag *diag);
int ops_clear_flag_run(const struct op_desc *op, const struct op_env *env, struct card_io *io,
		       struct op_call *call, unsigned *insertion_flags, int *reset_card,
		       json_t **result, struct ssc_diag *diag);
int ops_clear_flag_replay(const struct op_desc *op, const struct op_env *env, json_t *params,
			  int no_card, json_t **result, struct ssc_diag *diag);

#endif
