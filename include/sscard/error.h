/*
 * This file contains sscard's one error vocabulary. Every function in the daemon, its drivers and
 * its libraries returns int: 0 for success, a count >= 0 where documented, or a negative SSC_E*
 * code from this enum. Native codes (SCARD_*, LIBUSB_*, errno, OpenSSL, card status words) are
 * translated at the boundary that meets them, and nowhere else.
 *
 * The names are stable: they are the API's error names (JSON-RPC error.data.name), the journal's
 * result names and what docs/errors.md documents. Never renumber or rename; only append.
 */
#ifndef SSCARD_ERROR_H
#define SSCARD_ERROR_H

#include <stddef.h>
#include <stdint.h>

#define SSC_ERROR_LIST(X)                                                                          \
	/* name,                 value, std_code, message */                                            \
	X(SSC_EINVAL,              -1,       -14, "invalid argument")                                    \
	X(SSC_ENOMEM,              -2,         0, "out of memory")                                       \
	X(SSC_EIO,                 -3,         0, "input/output error")                                  \
	X(SSC_ETIMEDOUT,           -4,         0, "the operation did not finish before its deadline")   \
	X(SSC_ENOCARD,             -5,        -2, "no card in the reader")                              \
	X(SSC_ECARDREMOVED,        -6,        -2, "the card was removed during the operation")          \
	X(SSC_ENOREADER,           -7,       -11, "no such reader")                                     \
	X(SSC_EREADERBUSY,         -8,       -11, "the reader is busy with an earlier operation")       \
	X(SSC_EREADERSELECT,       -9,       -14, "several readers hold a card: name one")              \
	X(SSC_EREADER,            -10,       -11, "reader or driver error")                             \
	X(SSC_ENOPSAM,            -11,     -2201, "no PSAM available for this operation")              \
	X(SSC_EPSAMALGO,          -12,     -2202, "no PSAM supports the card's algorithm")             \
	X(SSC_EPSAM,              -13,     -2201, "the PSAM refused or failed the operation")          \
	X(SSC_ECARDSW,            -14,         0, "the card answered with an error status word")       \
	X(SSC_ENOTSSC,            -15,        -1, "the card is not a social security card")            \
	X(SSC_EUNSUPPORTED,       -16,        -1, "the card does not support this operation")          \
	X(SSC_EBADCARDDATA,       -17,       -22, "the card holds malformed or inconsistent data")      \
	X(SSC_ENOTGENUINE,        -18,       -21, "internal authentication failed: card not genuine")  \
	X(SSC_EPINWRONG,          -19,       -51, "wrong PIN")                                          \
	X(SSC_EPINBLOCKED,        -20,       -52, "the PIN is blocked")                                 \
	X(SSC_EPINFORMAT,         -21,       -33, "the PIN must be 4 to 12 digits")                     \
	X(SSC_EPININITIAL,        -22,       -36, "the new PIN must not be the initial PIN")            \
	X(SSC_EPINSAME,           -23,       -36, "the new PIN must differ from the old one")           \
	X(SSC_EAUTHFAILED,        -24,         0, "external authentication failed")                    \
	X(SSC_EKEYBLOCKED,        -25,         0, "the card key is blocked (no tries left)")           \
	X(SSC_ESECURITY,          -26,         0, "security status not satisfied")                     \
	X(SSC_EEXPIRED,           -27,       -22, "the card has expired: writes are refused")          \
	X(SSC_EBLACKLISTED,       -28,       -22, "the card is on the lost-card list")                 \
	X(SSC_EJOURNAL,           -29,         0, "the journal is unavailable: writes are refused")    \
	X(SSC_ENOFILE,            -30,         0, "no such file on the card")                          \
	X(SSC_ENORECORD,          -31,         0, "no such record or item on the card")               \
	X(SSC_EBADITEM,           -32,       -14, "unknown file or item")                              \
	X(SSC_EVALUE,             -33,       -23, "value not valid for this item")                     \
	X(SSC_EPROTO,             -34,        -4, "malformed answer from the card or reader")          \
	X(SSC_ECONFIG,            -35,         0, "configuration error")                               \
	X(SSC_ELIMIT,             -36,         0, "a limit was reached")                               \
	X(SSC_EPERM,              -37,         0, "permission denied")                                 \
	X(SSC_ESHUTDOWN,          -38,         0, "the daemon is shutting down")                       \
	X(SSC_EINTERNAL,          -39,         0, "internal error")                                    \
	X(SSC_ECRYPTO,            -40,         0, "cryptographic library error")                       \
	X(SSC_ENOTFOUND,          -41,         0, "not found")                                         \
	X(SSC_EEXIST,             -42,         0, "already exists")                                    \
	X(SSC_EPINNOTCHANGED,     -43,       -35, "the initial PIN must be changed before use")       \
	X(SSC_ECANCELED,          -44,         0, "cancelled: the client left before it started")  \
	X(SSC_EHSMDOWN,           -45,     -2201, "the key server cannot be reached")              \
	X(SSC_EHSMTIMEOUT,        -46,     -2201, "the key server did not answer in time")         \
	X(SSC_EHSMTLS,            -47,     -2201, "the secure connection to the key server failed") \
	X(SSC_EHSMCERT,           -48,     -2201, "the key server's certificate is not trusted")   \
	X(SSC_EHSMDENIED,         -49,     -2201, "the key server refused this desk's certificate") \
	X(SSC_EHSMNOPSAM,         -50,     -2202, "the key server has no PSAM for the card's algorithm") \
	X(SSC_EHSMURL,            -51,     -2201, "nothing answers at the key server's URL (404)") \
	X(SSC_EHSMSERVER,         -52,     -2201, "the key server failed or is busy")              \
	X(SSC_EHSMPROTO,          -53,     -2201, "malformed exchange with the key server")        \
	X(SSC_EHSMDROPPED,        -54,     -2201, "the key server closed the connection without an answer")  \
	X(SSC_ENOTPAIRED,         -55,         0, "this page is not paired with the card service")  \
	X(SSC_EBADTOKEN,          -56,         0, "the page's pairing token is wrong or was revoked") \
	X(SSC_EBADCODE,           -57,         0, "the pairing code is wrong, used or expired")     \
	X(SSC_EPOLICY,            -58,         0, "this page's origin may not call this method") \
	X(SSC_EHSMMISMATCH,       -59,       -25, "the card's internal authentication does not match the key server's") \
	X(SSC_EHSMKEY,            -60,       -23, "the key string of the two-step read is malformed") \
	X(SSC_EHSMSESSION,        -61,       -12, "no such two-step read session (none, or it ended)") \
	X(SSC_EHSMEXPIRED,        -62,       -12, "the two-step read session expired")               \
	X(SSC_EREADERLEASED,      -63,       -11, "the reader is held by a two-step read") \
	X(SSC_EREQCONFLICT,       -64,         0, "this request_id was used before with other parameters") \
	X(SSC_EOUTCOME,           -65,         0, "the outcome of the first request with this request_id is not known yet") \
	X(SSC_EHSMLIB,            -66,         0, "the key server's HTTPS library (libcurl) cannot be loaded") \
	X(SSC_ESETTLED,           -67,         0, "this settlement number is already on the card or in the upload queue") \
	X(SSC_EMEDPENDING,        -68,         0, "settlements of this card still wait for upload: the offline flag stays set") \
	X(SSC_EMETRICSLIB,        -69,         0, "the metrics endpoint's HTTP library (libmicrohttpd) cannot be loaded") \
	X(SSC_EUSBLIB,            -70,         0, "the USB reader driver's library (libusb) cannot be loaded")

enum ssc_error {
	SSC_OK = 0,
#define SSC_X_ENUM(name, value, std, msg) name = value,
	SSC_ERROR_LIST(SSC_X_ENUM)
#undef SSC_X_ENUM
};

/* Stable name of an error code ("SSC_ENOCARD"); "SSC_OK" for 0, "SSC_EUNKNOWN" for others. */
const char *ssc_strerror_name(int err);

/* One-line English message for an error code. Never NULL. */
const char *ssc_strerror(int err);

/*
 * The reader-interface code (spec §5) for an error: the standard negative code where the standard
 * interface has one for this error; otherwise, when a status word is known, -(SW1*256+SW2) (e.g.
 * 6982 -> -27010); otherwise 0 (no standard code).
 */
int ssc_std_code(int err, uint16_t sw);

/*
 * What an operation learned about a failure, beside its return code: the last status word, the
 * tries left (PIN or key), and a human detail. Never holds a secret or personal data.
 */
struct ssc_diag {
	uint16_t sw;       /* last card/PSAM status word of interest, 0 = none */
	int retries_left;  /* tries left after a PIN or key failure, -1 = not applicable */
	char msg[256];     /* detail for the user, "" = use ssc_strerror() */
};

/* Resets a diag to "nothing known". */
void ssc_diag_init(struct ssc_diag *d);

/* Formats the detail message (printf-style, truncated to fit). d may be NULL. Returns err. */
int ssc_diag_set(struct ssc_diag *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
