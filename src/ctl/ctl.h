/*
 * This file contains what the files of sscardctl share (src/sscardctl.c and src/ctl/): its options
 * as the command line gave them, its exit codes, the clock of its deadlines, and how it reads the
 * daemon's configuration. These files are sscardctl's alone: they are not part of sscard_core.
 */
#ifndef SSC_CTL_H
#define SSC_CTL_H

#include <time.h>

#include "config.h"

/* Exit codes (docs/operations.md, sscardctl --help). */
#define EXIT_OK 0
#define EXIT_API 1       /* the daemon answered with an error */
#define EXIT_USAGE 2
#define EXIT_CONNECT 3   /* cannot connect to the socket */
#define EXIT_ANSWER 4    /* no answer before the deadline, connection lost, malformed answer */
#define EXIT_PIN_WRONG 5   /* the PIN commands: a wrong PIN (the message names the tries left) */
#define EXIT_PIN_BLOCKED 6 /* the PIN commands: the PIN is blocked */

#define MAX_ITEMS 64
#define OLD_KEYS_MAX 8             /* --old-key given at most this often */

struct ctl_opts {
	const char *socket;
	int json;
	int timeout_ms;
	const char *reader;
	int internal_auth;
	int verify_card_id;
	int allow_lost;          /* --allow-lost: read a card on the lost-card list */
	int hsm_step1;           /* read-basic --hsm-step1: card.hsm_step1 */
	const char *hsm_step2;   /* read-basic --hsm-step2 SESSION KEY: card.hsm_step2 */
	const char *request_id;  /* --request-id ID: a write or PIN change made idempotent */
	const char *pubkey;      /* --pubkey PEM: receipt verify */
	long count;        /* events: stop after this many (0 = no limit) */
	long for_ms;       /* events: stop after this long (0 = until Ctrl-C) */
	/* The journal commands: */
	const char *journal;     /* --journal PATH */
	const char *config;      /* --config FILE */
	const char *head;        /* --head SEQ:HASH */
	const char *log;         /* --log FILE */
	long long since;         /* --since SEQ (-1 = not given) */
	long long limit;         /* --limit N (0 = not given) */
	const char *old_keys[OLD_KEYS_MAX];   /* --old-key FILE (verify; repeatable) */
	int n_old_keys;
	const char *lost_cards;  /* --lost-cards FILE (rotate-key) */
	const char *args[MAX_ITEMS + 2];
	int n_args;
};

/* The monotonic clock, in ms, of every deadline. */
static inline long long ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds until deadline (0 once it passed); -1 (no limit) when deadline < 0. */
static inline int ctl_remaining(long long deadline)
{
	long long r;

	if (deadline < 0)
		return -1;   /* no deadline: only `events` without --for */
	r = deadline - ctl_now_ms();
	return r < 0 ? 0 : (int)(r > 1000000000 ? 1000000000 : r);
}

/*
 * Reads the daemon's configuration as sscardd does: --config, else config_default_path()
 * ($SSCARD_CONFIG, else /etc/sscard/sscardd.conf when it exists), else the built-in defaults
 * (*file = NULL). Returns 0, or EXIT_USAGE after saying why the file cannot be read; on success the
 * caller wipes cfg (config_wipe()). Defined in src/ctl/ctl_config.c, like the next.
 */
int ctl_load_config(const struct ctl_opts *o, struct config *cfg, const char **file);

/*
 * The daemon's socket: --socket, else $SSCARD_SOCKET, else [daemon] socket_path of the daemon's
 * configuration (ctl_load_config), else the built-in default; into path (CONFIG_PATH_MAX bytes),
 * with where it came from in from (from_len bytes). Returns 0 or an exit code.
 */
int ctl_socket_path(const struct ctl_opts *o, char *path, char *from, size_t from_len);

#endif
