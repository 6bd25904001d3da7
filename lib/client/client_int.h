/*
 * This file contains what the files of libsscard share and do not export: filling a struct
 * sscard_error, the socket path rule, and the typed helpers' common pieces (client_ops.c). Nothing here is part of the public API.
 */
#ifndef SSCARD_CLIENT_INT_H
#define SSCARD_CLIENT_INT_H

#include "sscard/client.h"

/* Resets e (NULL allowed) to "nothing known". */
void client_error_init(struct sscard_error *e);

/* Fills e (NULL allowed) for a failure of the library itself (code 0) with err's name and the
 * printf-style detail. Returns err. */
int client_fail(struct sscard_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fills e (NULL allowed) from a JSON-RPC error object (borrowed). Returns the SSC_E* value. */
int client_error_from_json(json_t *error, struct sscard_error *e);

/* path when non-empty, else $SSCARD_SOCKET when non-empty, else SSCARD_DEFAULT_SOCKET. */
const char *client_socket_path(const char *path);

/* params with "reader" set when reader is not NULL; NULL when out of memory. Owned. */
json_t *client_params_new(const char *reader);

/* 1 when the member key of obj (borrowed) is true, else 0. */
int client_flag(json_t *obj, const char *key);

/* Fills *out from a card.read_basic result r (borrowed): a missing or longer field than its array
 * gives SSC_EPROTO (and *out zeroed). Returns 0 or SSC_EPROTO. */
int client_basic_from(json_t *r, struct sscard_basic *out, struct sscard_error *e);

/* Overwrites every string value of params (PINs, keys) in place before it is freed: jansson
 * frees without wiping. */
void client_wipe_strings(json_t *params);

#endif
