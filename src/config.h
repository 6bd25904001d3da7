/*
 * This file contains the daemon's configuration: one struct filled with defaults, then from the INI
 * file (--config), then from the command line. Every number the spec marks (cfg) lives here, never
 * as a literal in the code that uses it. docs/operations.md documents every key.
 */
#ifndef SSC_CONFIG_H
#define SSC_CONFIG_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define CONFIG_PATH_MAX 512
#define CONFIG_MAX_ROLES 16
#define CONFIG_MAX_INITIAL_PINS 8
#define CONFIG_PIN_TEXT 13            /* a PIN of at most 12 digits, with its NUL */

/* A key as the card and the PSAM name it (spec §12.4). */
struct config_key {
	uint8_t card_kid;   /* card key id (P2 of EXTERNAL AUTH), 0 where unused */
	uint8_t usage;      /* PSAM key usage (P1 of DELIVER KEY) */
	uint8_t index;      /* PSAM key index (P2 of DELIVER KEY) */
};

enum config_read_auth { READ_AUTH_AUTO = 0, READ_AUTH_ALWAYS, READ_AUTH_NEVER };

/* Which key provider goes first when both a PSAM in a reader and the key server could serve. */
enum config_hsm_prefer { HSM_PREFER_PSAM = 0, HSM_PREFER_HSM };

/* A reader role fixed by configuration: reader id (or name) -> "user" | "psam" | "ignore". */
struct config_role {
	char reader[128];
	char role[8];
};

struct config {
	/* [daemon] */
	char socket_path[CONFIG_PATH_MAX];  /* default /run/sscard/sscardd.sock */
	char socket_group[64];              /* default "sscard"; "" = leave the group alone */
	unsigned socket_mode;               /* default 0660 */
	char log_level[16];                 /* default "info" */
	char user[64];                      /* started as root: drop to this user; "" = stay root */

	/* [limits] */
	int max_clients;                    /* all peers, default 1024 */
	int max_clients_per_uid;            /* default 256 */
	size_t max_request_bytes;           /* one JSON line, default 65536 */
	int max_json_depth;                 /* default 16 */
	int max_inflight_per_client;        /* default 16 */
	int max_queued_per_reader;          /* operations waiting on one reader; 0 (default) = as
					     * many as the clients may have in flight
					     * (config_queued_per_reader) */
	int idle_timeout_ms;                /* a client with nothing in flight, default 600000 */

	/* [timeouts] */
	int op_timeout_ms;                  /* one API card operation end to end, default 10000 */
	int apdu_timeout_ms;                /* one APDU, default 5000 */
	int connect_timeout_ms;             /* exclusive access retry, default 2000 */
	int psam_timeout_ms;                /* waiting for the PSAM lock, default 5000 */
	int card_hold_ms;                   /* keep a user card connected after an op, default 1000 */
	int hsm_session_ms;                 /* a two-step read's lease of its reader, default 60000 */

	/* [drivers] */
	int driver_pcsc;                    /* enabled, default 1 */
	int driver_usb;                     /* enabled, default 0 */
	char usb_allow[256];                /* extra VID:PID list for usb-ccid */
	int poll_interval_ms;               /* default 500 */

	/* [readers] */
	struct config_role roles[CONFIG_MAX_ROLES];
	int n_roles;

	/* [card] */
	enum config_read_auth read_auth;    /* default auto */
	int verify_card_id_mac;             /* check the 卡识别码 MAC by default, default 0 */
	uint8_t card_id_mac_key[16];        /* issuer key for the 卡识别码 MAC (secret) */
	int card_id_mac_key_set;
	int pin_min_len, pin_max_len;       /* default 4, 12 */
	int require_internal_auth;          /* reads prove the card genuine first, default 0 */
	int prefetch;                       /* read a user card ahead on insertion, default 1 */
	int prefetch_shared;                /* past card_hold_ms, watch the card over a shared
					     * connection for its insertion, keeping the read-ahead's
					     * data; 0: let go of it (and the data), default 1 */
	/* The issuers' initial PINs (4..12 digits each), default "123456" and "888888" (both are
	 * in use, spec §12.4); a new PIN may be none of them. 0 of them = no such policy. */
	char initial_pins[CONFIG_MAX_INITIAL_PINS][CONFIG_PIN_TEXT];
	int n_initial_pins;
	int refuse_initial_pin;             /* VERIFY with an initial PIN is refused, default 0 */

	/* [keys] (spec §12.4) */
	struct config_key key_write_ssse;   /* 04 / 48 / 12 */
	struct config_key key_write_ef0d;   /* 0D / 48 / 13 */
	struct config_key key_read_auth;    /* 0A / 48 / 1A */
	struct config_key key_internal;     /* 00 / 47 / 11 */
	struct config_key key_stk;          /* 05 / 46 / 15 */
	struct config_key key_pin_reload;   /* 06 / 44 / 16 */
	struct config_key key_pin_unblock;  /* 07 / 43 / 17 */
	uint8_t psam_aid[16];               /* D156000005 90 */
	size_t psam_aid_len;

	/* [journal] (issue 4) */
	char journal_path[CONFIG_PATH_MAX]; /* default /var/lib/sscard/journal.db */
	char journal_key_path[CONFIG_PATH_MAX]; /* the HMAC key file; "" = journal_path + ".key" */
	int journal_retention_days;         /* rows older are pruned daily; 0 = keep, default 365 */
	int journal_reopen_ms;              /* retrying an unavailable journal, default 30000 */
	int journal_head_ms;                /* head logged at least this often, default 60000 */
	int journal_audit_batch_ms;         /* audit rows gather this long per commit, default 20 */

	/* [metrics] (issue 19) */
	char metrics_listen[128];           /* "ADDR:PORT" of the Prometheus endpoint; "" = off */

	/* [audit] (issue 19) */
	int audit_syslog;                   /* every journal row to syslog as RFC 5424, default 0 */
	char audit_syslog_socket[CONFIG_PATH_MAX]; /* a datagram socket, default /dev/log */

	/* [hsm] (issue 14): the network PSAM, a key server reached over HTTPS with mutual TLS
	 * (spec §13.2). Unset url = none. */
	char hsm_url[CONFIG_PATH_MAX];      /* base URL, https://HOST[:PORT][/PREFIX], "" = none */
	char hsm_ca_file[CONFIG_PATH_MAX];  /* the CA that signed the key server's certificate */
	char hsm_cert_file[CONFIG_PATH_MAX]; /* the desk's client certificate (PEM) */
	char hsm_key_file[CONFIG_PATH_MAX]; /* its private key (PEM; not readable by others) */
	int hsm_timeout_ms;                 /* one request, default 3000 (inside the op's deadline) */
	enum config_hsm_prefer hsm_prefer;  /* default psam: a PSAM in a reader first */
	/* [receipts] (issue 15): the desk's key that signs claim.verify_holder's receipts (PEM, SM2
	 * or Ed25519; not readable by others); "" = no receipts, claim.verify_holder refused. */
	char receipts_key_file[CONFIG_PATH_MAX];
	/* [web] (issue 17): the browser bridge, docs/web.md */
	char web_bridge_user[64];           /* the bridge's user; "" = no bridge accepted */
	char web_admin_group[64];           /* may pair, revoke and list besides root; "" = root */
	int web_code_ttl_s;                 /* a pairing code's life, default 300 */

	/* What config_load() found worth a warning in a file it accepted (a deprecated key), for
	 * the program to log; "" = nothing. Never holds a secret. */
	char notice[256];
};

/* The configuration file sscardd and sscardctl read when no --config names one. */
#define CONFIG_DEFAULT_PATH "/etc/sscard/sscardd.conf"
/* The environment variable that names another one (and overrides CONFIG_DEFAULT_PATH). */
#define CONFIG_ENV "SSCARD_CONFIG"

/*
 * The configuration file to read when no --config names one, the same for sscardd and sscardctl
 * so that both agree on the socket and the journal: $SSCARD_CONFIG when it is set and not empty
 * (whether or not the file exists: reading it then says so), else CONFIG_DEFAULT_PATH when that
 * file exists, else NULL (the built-in defaults). The string is borrowed (the environment or a
 * constant). Never blocks.
 */
const char *config_default_path(void);

/* Fills cfg with the defaults above. */
void config_defaults(struct config *cfg);

/*
 * Reads an INI file over the current values. Unknown sections or keys, and malformed values, are
 * errors naming the file, line and key in err (errlen bytes). Returns 0, SSC_ECONFIG or SSC_EIO.
 * A deprecated key that is still accepted ([card] initial_pin, now initial_pins) leaves a line
 * in cfg->notice for the caller to log.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/*
 * Parses an address to listen on, as [metrics] listen takes it: "IPv4:PORT" or "[IPv6]:PORT" with
 * a numeric address and a port 1..65535 (no names: nothing is looked up). Fills *ss and *len.
 * Returns 0, or SSC_ECONFIG.
 */
int config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/*
 * The keys of the configuration file, in the order of the loader's one table (which the man page
 * sscardd.conf(5) is checked against): *section and *name of key i, or 0 past the last. [readers]
 * role.<reader> is not in the table (its names are the operator's); it is key i with name
 * "role.<reader>". Never blocks.
 */
int config_key_at(size_t i, const char **section, const char **name);

/*
 * The operations that may wait on one reader at once: max_queued_per_reader, or when it is 0
 * max_clients × max_inflight_per_client (what the clients may have in flight in all, so that a
 * reader's queue refuses nothing the per-client limits let through), at most 1048576.
 */
int config_queued_per_reader(const struct config *cfg);

/* Wipes the secrets the struct holds (the 卡识别码 MAC key). */
void config_wipe(struct config *cfg);

#endif
