/*
 * This file contains sscardctl's medical commands (src/ctl/ctl_medical.c): medical credentials,
 * settle TRANSACTION-JSON|-, pending [SINCE], ack ID..., clear-flag: their method and params (the
 * answers are printed as JSON: a hospital system takes them).
 */
#ifndef SSC_CTL_MEDICAL_H
#define SSC_CTL_MEDICAL_H

#include <jansson.h>

/*
 * The method and params (owned, may be NULL) of `medical SUB ...` from args[1..n-1];
 * request_id: whether --request-id was given (settle needs it; only settle and clear-flag take
 * it), reader: whether --reader was given (not for pending and ack). Returns 0, or 2 (the usage
 * exit status) after saying why on stderr.
 */
int ctl_medical_request(const char *const *args, int n, int request_id, int reader,
			const char **method, json_t **params);

#endif
