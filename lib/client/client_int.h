/*
 * This file contains what the files of libsscard share and do not export: filling a struct
 * sscard_error, and the socket path rule. Nothing here is part of the public API.
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

#endif
