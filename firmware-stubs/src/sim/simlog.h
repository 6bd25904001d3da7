/*
 * This file contains sscard-sim's logging: one line per event on stderr, prefixed with the program,
 * the role and the port, and the APDU trace for --verbose with the bodies of PIN-carrying commands
 * masked. The simulator is a program, so it logs; the card OS library (simcos) never does.
 */
#ifndef SIMLOG_H
#define SIMLOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Sets the prefix put before every line (e.g. "card:35963"); the string is copied, truncated to 63
 * bytes. verbose != 0 enables simlog_apdu(). Never fails, never blocks beyond a write to stderr.
 */
void simlog_init(const char *tag, int verbose);

/* True when --verbose is on. */
int simlog_verbose(void);

/* Writes one line "HH:MM:SS.mmm sscard-sim[TAG]: MESSAGE" to stderr. */
void simlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Logs one APDU in hex when verbose ("> " for a command, "< " for an answer). A command whose INS is
 * VERIFY (20), CHANGE/RELOAD PIN (5E) or UNBLOCK PIN (24), and a PSAM ENCRYPT (80 FA 01, which
 * carries a clear PIN block), is logged as its 4-byte header and Lc with the body replaced by
 * "<N bytes masked>". Answers to those commands are status words only, so they are logged as sent.
 * p is borrowed; len may be anything (long APDUs are cut after 64 bytes with "...").
 */
void simlog_apdu(int is_command, const uint8_t *p, size_t len);

#endif
