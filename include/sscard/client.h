/*
 * This file contains libsscard, the C client of the sscardd socket API (docs/api.md): a connection,
 * a generic JSON-RPC call, pipelined requests matched by id, event notifications, and typed helpers
 * for the common methods. pkg-config name `sscard`; link with `pkg-config --libs sscard`.
 *
 * Conventions (those of include/sscard/error.h): every function returns 0 on success, a count >= 0
 * where documented, or a negative SSC_E* code. When the daemon answered with an error, the return
 * value is that error's SSC_E* value (JSON-RPC code 1000 - value; -32602 gives SSC_EINVAL) and the
 * struct sscard_error the caller passed (it may be NULL) holds its name, std_code, sw, retries_left,
 * reader and message. Failures of the library itself have err->code == 0:
 *   SSC_EIO        the daemon cannot be reached (not running: no socket, or nobody listening), or
 *                  the connection broke; err->message names the socket and the cause
 *   SSC_EPERM      the socket refused us (the application's user is not in the socket's group)
 *   SSC_ETIMEDOUT  no answer before the call's deadline
 *   SSC_EPROTO     the daemon sent something that is not a JSON-RPC answer (the connection is then
 *                  closed: every later call on it fails with SSC_EIO)
 *   SSC_ENOMEM, SSC_EINVAL (a bad argument), SSC_ELIMIT (a limit of this library, below)
 *
 * Deadlines: every function that waits has one. A call waits at most its timeout_ms (or the
 * connection's default, sscard_set_timeout(), 20000 ms unless set) in all: connecting, sending,
 * waiting for the reply and for the connection's lock. When a call's deadline passes, its reply
 * (should it come later) is dropped.
 *
 * Threads: a struct sscard_client may be used from several threads at once; its functions take
 * the connection's lock, so calls on one connection are carried out one after another (a call
 * waits for the lock within its own deadline). For card operations on several readers in
 * parallel, use one connection per thread, or sscard_send() + sscard_wait() from one thread.
 * Distinct connections share nothing. Functions not on a connection are stated below.
 *
 * Global state: none. The library reads the environment variable SSCARD_SOCKET in
 * sscard_connect() only, installs no signal handler (it sends with MSG_NOSIGNAL) and never logs.
 *
 * JSON values are jansson's json_t. "Borrowed" means the library does not keep or free it;
 * "owned" means the caller must json_decref() it. Text in and out is UTF-8.
 */
#ifndef SSCARD_CLIENT_H
#define SSCARD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sscard/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SSCARD_DEFAULT_SOCKET "/run/sscard/sscardd.sock"
#define SSCARD_DEFAULT_TIMEOUT_MS 20000  /* the daemon's op_timeout_ms (10 s) plus its queue */
#define SSCARD_MAX_LINE (1024 * 1024)    /* longest answer line accepted (SSC_EPROTO beyond) */
#define SSCARD_MAX_PENDING 64            /* requests sent and not yet collected (SSC_ELIMIT) */
#define SSCARD_MAX_EVENTS 1024           /* events kept unread; older ones are dropped */

struct sscard_client;            /* one connection to the daemon; opaque */

/* What went wrong, beside a negative return value. Every string is NUL-terminated. */
struct sscard_error {
	int err;                 /* the SSC_E* value the function returned */
	int code;                /* JSON-RPC error.code; 0 when the failure is the library's own */
	int std_code;            /* error.data.std_code (spec §5), 0 when absent */
	int retries_left;        /* error.data.retries_left, -1 when absent */
	char name[48];           /* the stable name, "SSC_ENOCARD"; a library failure's too */
	char sw[8];              /* error.data.sw, four hex digits, "" when absent */
	char reader[64];         /* error.data.reader, "" when absent */
	char message[512];       /* the daemon's message, or the library's detail (English) */
};

/*
 * Connects to the daemon's socket: path, or when path is NULL the environment variable
 * SSCARD_SOCKET, or when that is unset or empty SSCARD_DEFAULT_SOCKET. Waits at most timeout_ms
 * (< 0: SSCARD_DEFAULT_TIMEOUT_MS) when the daemon's accept queue is full; a daemon that is not
 * running is reported at once. Sends nothing.
 * Returns 0 and sets *out (owned: sscard_close()), or SSC_EIO (no daemon there), SSC_EPERM,
 * SSC_ETIMEDOUT, SSC_EINVAL (path too long), SSC_ENOMEM. Thread-safe (no shared state).
 */
int sscard_connect(const char *path, int timeout_ms, struct sscard_client **out,
		   struct sscard_error *err);

/* Closes the connection and frees everything it holds, unread events included. NULL is a no-op.
 * Must not be called while another thread uses c. Never blocks. */
void sscard_close(struct sscard_client *c);

/* Sets the default deadline of later calls on c (ms, > 0). Thread-safe. */
void sscard_set_timeout(struct sscard_client *c, int timeout_ms);

/*
 * Calls method with params (an object, borrowed; NULL = no params) and waits for its answer for
 * at most timeout_ms (< 0: the connection's default). On success sets *result (owned; the
 * "result" member of the answer) when result is not NULL.
 * Returns 0, or the daemon's error, or a library failure (see the top of this file).
 * Thread-safe (serialised on c).
 */
int sscard_call(struct sscard_client *c, const char *method, json_t *params, int timeout_ms,
		json_t **result, struct sscard_error *err);

/*
 * sscard_call() with params and result as JSON text: params_json is a JSON object's text or
 * NULL; on success *result_json (owned: free()) is the result's compact JSON text.
 * Returns as sscard_call(), and SSC_EINVAL when params_json is not a JSON object.
 */
int sscard_call_json(struct sscard_client *c, const char *method, const char *params_json,
		     int timeout_ms, char **result_json, struct sscard_error *err);

/*
 * Pipelining. sscard_send() writes one request and returns at once with its id in *id (ids are
 * 1, 2, 3 … per connection); sscard_wait() waits for the answer of that id (answers may come in
 * any order; others are kept for their own sscard_wait()). A request whose sscard_wait() timed out
 * may be waited for again; sscard_forget() drops it (its answer is then discarded on arrival).
 * At most SSCARD_MAX_PENDING requests may be outstanding (SSC_ELIMIT).
 * sscard_send returns 0, SSC_ELIMIT, SSC_EIO, SSC_ETIMEDOUT (the socket stayed full),
 * SSC_ENOMEM; sscard_wait returns as sscard_call(), and SSC_ENOTFOUND for an id that is not
 * outstanding. Thread-safe (serialised on c): several threads may each wait for their own id.
 */
int sscard_send(struct sscard_client *c, const char *method, json_t *params, uint64_t *id,
		struct sscard_error *err);
int sscard_wait(struct sscard_client *c, uint64_t id, int timeout_ms, json_t **result,
		struct sscard_error *err);
void sscard_forget(struct sscard_client *c, uint64_t id);

/*
 * Events. sscard_subscribe() asks the daemon for event notifications (events.subscribe) on this
 * connection; from then on they are queued as they arrive (at most SSCARD_MAX_EVENTS; beyond, the
 * oldest is dropped and the next event returned has "lost": true added).
 * sscard_next_event() returns the oldest queued event, waiting at most timeout_ms for one
 * (0 = do not wait). The event is the notification's params object (owned): {"type":
 * "card.inserted", "reader": ID, …} (docs/api.md, Notifications). Returns 0 and *event, or
 * SSC_ETIMEDOUT (none arrived in time), SSC_EIO (connection lost), SSC_EPROTO.
 * sscard_event_fd() gives a descriptor that polls readable (POLLIN) while an event may be
 * waiting: call sscard_next_event(c, 0, …) until it returns SSC_ETIMEDOUT. It may wake without
 * an event (a reply arrived); it belongs to c (do not close it). Returns the descriptor or
 * SSC_EINVAL. All three thread-safe (serialised on c).
 */
int sscard_subscribe(struct sscard_client *c, struct sscard_error *err);
int sscard_next_event(struct sscard_client *c, int timeout_ms, json_t **event,
		      struct sscard_error *err);
int sscard_event_fd(struct sscard_client *c);

/* ---- typed helpers: one per method, on the connection's default deadline ------------------- */
/*
 * Each takes `reader` (a reader id from reader.list, or NULL for "the one reader holding a user
 * card", docs/api.md) and returns as sscard_call(). Thread-safe (serialised on c). A required
 * argument that is NULL gives SSC_EINVAL (err->code 0) and sends nothing. The workflow methods
 * (claim.*, medical.*, card.hsm_*) have theirs below the PIN methods.
 */

/* Options of the reads (a bit set). */
#define SSCARD_INTERNAL_AUTH  0x1u  /* also prove the card genuine (result "genuine") */
#define SSCARD_VERIFY_CARD_ID 0x2u  /* also check the 卡识别码 MAC (needs the issuer key configured) */

/* card.read_basic's result (docs/api.md), strings NUL-terminated UTF-8. */
struct sscard_basic {
	char region_code[8];     /* 6 digits */
	char ssn[24];            /* 18 characters */
	char card_number[16];    /* 9 characters */
	char card_id[40];        /* 32 hex digits */
	char name[160];          /* 姓名 ‖ 姓名扩展: 50 GB18030 bytes at most, 75 in UTF-8 */
	char sex[4];
	char nation[4];
	char birth_place[8];
	char birth_date[12];
	char spec_version[8];
	char issue_date[12];
	char expiry_date[12];
	char atr_historical[36]; /* at most 15 bytes, hex */
	char terminal_number[16];
	char terminal_device[72];
	char algorithm[8];       /* "des" or "sm4" */
	char standard[512];      /* the 11-field iReadCardBas string, UTF-8 */
	int expired;             /* 1 when past the expiry date (daemon's clock) */
	int genuine;             /* 1 when SSCARD_INTERNAL_AUTH was asked for and passed, else 0 */
	int card_id_verified;    /* 1 when SSCARD_VERIFY_CARD_ID was asked for and passed, else 0 */
};

/* card.read_basic. Fills *out. A field longer than its array (a daemon newer than this header
 * that sends longer values) gives SSC_EPROTO rather than a cut value. */
int sscard_read_basic(struct sscard_client *c, const char *reader, unsigned options,
		      struct sscard_basic *out, struct sscard_error *err);

/* card.read_items: file like "SSSE/EF06", n tags like "09" (borrowed). *items (owned) is the
 * result's "items" object {tag: value}; options: SSCARD_INTERNAL_AUTH. */
int sscard_read_items(struct sscard_client *c, const char *reader, const char *file,
		      const char *const *tags, size_t n, unsigned options, json_t **items,
		      struct sscard_error *err);

/* card.write_items: items {tag: value} (borrowed). *result (owned, may be NULL) is the whole
 * result ({"file", "items", "journal_id"}). */
int sscard_write_items(struct sscard_client *c, const char *reader, const char *file,
		       json_t *items, json_t **result, struct sscard_error *err);

/* card.internal_auth: 0 when the card proved genuine (SSC_ENOTGENUINE when not). */
int sscard_internal_auth(struct sscard_client *c, const char *reader, struct sscard_error *err);

/*
 * The PIN methods. PINs are digit strings (borrowed); the library wipes its own copies (the
 * request text) before returning. A wrong PIN is SSC_EPINWRONG with err->retries_left.
 */
int sscard_verify_pin(struct sscard_client *c, const char *reader, const char *pin,
		      struct sscard_error *err);
int sscard_change_pin(struct sscard_client *c, const char *reader, const char *old_pin,
		      const char *new_pin, struct sscard_error *err);
int sscard_reload_pin(struct sscard_client *c, const char *reader, const char *new_pin,
		      struct sscard_error *err);
int sscard_unblock_pin(struct sscard_client *c, const char *reader, const char *new_pin,
		       struct sscard_error *err);

/*
 * The workflow methods (docs/api.md, docs/workflows.md). Each hands back the method's whole
 * result object in *result (owned: json_decref()), set to NULL on failure; for the methods that
 * change something (claim, settle, acknowledge, clear_flag) result may be NULL.
 * request_id: 1 to 64 printable ASCII characters of the desk's making (docs/api.md, Idempotent
 * requests), or NULL for none where it is optional.
 */

/* claim.verify_holder: the card proved genuine, the PIN (borrowed; the library wipes its copies)
 * verified, and a signed receipt: {"holder", "genuine", "pin_verified", "receipt", "signature",
 * "algorithm"}. request_id (NULL: none) labels the receipt. A wrong PIN is SSC_EPINWRONG with
 * err->retries_left; SSC_ECONFIG when the desk has no receipt key. */
int sscard_claim_verify_holder(struct sscard_client *c, const char *reader, const char *pin,
			       const char *request_id, json_t **result, struct sscard_error *err);

/* medical.credentials: {"mdtrt_cert_type", "mdtrt_cert_no", "card_sn", "psn_cert_type",
 * "certno", "psn_name", "insuplc_admdvs", "standard", "internal_auth"}. result is required. */
int sscard_medical_credentials(struct sscard_client *c, const char *reader, json_t **result,
			       struct sscard_error *err);

/* An offline settlement's transaction (medical.settle_offline), strings borrowed UTF-8; amounts
 * in fen (分), personal_account + pooled <= total. */
struct sscard_settlement {
	const char *time;            /* 交易时间, YYYYMMDDhhmmss */
	const char *institution;     /* 医疗机构编号, at most 12 characters */
	const char *settlement_no;   /* 结算流水号, 1 to 20 characters */
	uint32_t total;              /* 总金额 */
	uint32_t personal_account;   /* 个人账户支付 */
	uint32_t pooled;             /* 统筹支付 */
};

/* medical.settle_offline: request_id is required (repeat it, with the same t, after a timeout);
 * *result {"id", "request_id", "journal_id", "transaction"}. */
int sscard_medical_settle_offline(struct sscard_client *c, const char *reader,
				  const char *request_id, const struct sscard_settlement *t,
				  json_t **result, struct sscard_error *err);

/* medical.pending (no card): the settlements after queue id since (< 0: all) and the flagged
 * cards, {"settlements": [...], "flags": [...]}. result is required. */
int sscard_medical_pending(struct sscard_client *c, int64_t since, json_t **result,
			   struct sscard_error *err);

/* medical.acknowledge (no card): the n (>= 1) queue ids ids (borrowed), all or none;
 * *result {"acknowledged", "newly"}. Unknown ids: SSC_ENOTFOUND. */
int sscard_medical_acknowledge(struct sscard_client *c, const int64_t *ids, size_t n,
			       json_t **result, struct sscard_error *err);

/* medical.clear_flag: request_id NULL for none; *result {"cleared", "was_set", "journal_id"?}.
 * SSC_EMEDPENDING while settlements of the card wait in this desk's queue. */
int sscard_medical_clear_flag(struct sscard_client *c, const char *reader,
			      const char *request_id, json_t **result, struct sscard_error *err);

/* card.hsm_step1, the two-step read with the province's key server: *result (required)
 * {"session", "step1", "expires_in_ms"}; the reader stays held until step 2, the card's removal or
 * the expiry. card.hsm_step2: session and key (the key server's answer "C|DATA|"; borrowed, the
 * library wipes its copies) give what sscard_read_basic() gives, in *out. Any step 2 ends the
 * session. */
int sscard_hsm_step1(struct sscard_client *c, const char *reader, json_t **result,
		     struct sscard_error *err);
int sscard_hsm_step2(struct sscard_client *c, const char *session, const char *key,
		     struct sscard_basic *out, struct sscard_error *err);

/* One reader of reader.list. */
struct sscard_reader {
	char id[64];
	char name[128];
	char driver[16];
	char role[16];           /* "user", "psam" or "unknown" */
	char serial[64];         /* "" when the driver does not know it */
	char atr[72];            /* hex, "" without a card */
	char algorithm[8];       /* a PSAM's "des" / "sm4", else "" */
	int card;                /* 1 when a card is present */
	int busy;
};

/* reader.list: writes at most max readers into out; returns how many the daemon listed (which may
 * be more than max: only max were written). */
int sscard_readers(struct sscard_client *c, struct sscard_reader *out, size_t max,
		   struct sscard_error *err);

/* The SSC_E* value of a stable error name ("SSC_ENOCARD" -> SSC_ENOCARD), 0 when unknown.
 * Thread-safe (no state). */
int sscard_error_value(const char *name);

#ifdef __cplusplus
}
#endif

#endif
