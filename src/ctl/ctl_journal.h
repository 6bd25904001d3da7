/*
 * This file contains sscardctl's operator commands (src/ctl/ctl_journal.c): journal verify, show,
 * export and rotate-key, blacklist import, remove and list. They open the journal file, not the
 * daemon's socket, and name the journal they use on stderr.
 */
#ifndef SSC_CTL_JOURNAL_H
#define SSC_CTL_JOURNAL_H

#include "ctl/ctl.h"

#define SHOW_DEFAULT_LIMIT 50   /* journal show without --limit: the last this many rows */

/*
 * Runs the journal or blacklist command of o (o->args[0] is "journal" or "blacklist"), checking
 * its arguments first. Returns the exit status (docs/operations.md: 0, EXIT_USAGE, and the
 * journal commands' own 1, 3, 4) after printing what it found.
 */
int ctl_journal_run(const struct ctl_opts *o);

#endif
