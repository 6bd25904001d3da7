/*
 * This file contains sscardctl's receipt commands (src/ctl/ctl_receipt.c): receipt pubkey,
 * receipt verify --pubkey PEM FILE|-, and the printing of claim's answer for people.
 */
#ifndef SSC_CTL_RECEIPT_H
#define SSC_CTL_RECEIPT_H

#include <jansson.h>

#include "ctl.h"

/*
 * `receipt pubkey` (the public half of [receipts] key_file, PEM) or `receipt verify --pubkey PEM
 * FILE|-` (FILE: claim.verify_holder's answer as `sscardctl --json claim` prints it). Returns
 * EXIT_OK, EXIT_API (a signature that does not match), EXIT_USAGE, EXIT_ANSWER. load_config
 * reads the daemon's configuration (sscardctl's ctl_load_config, given so that this file does
 * not call back into sscardctl.c).
 */
typedef int (*ctl_config_fn)(const struct ctl_opts *o, struct config *cfg, const char **file);

int ctl_receipt_run(const struct ctl_opts *o, ctl_config_fn load_config);

/* Prints claim.verify_holder's answer for people: holder, genuine, PIN, receipt, signature. */
void ctl_receipt_print(const json_t *r);

#endif
