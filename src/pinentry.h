/*
 * This file contains how sscardctl reads a PIN: from the terminal without echo when its input is
 * one, else one line of its input (a pipe or a file), never from the command line, where other
 * users could read it in the process list. The buffers that held a PIN are wiped.
 */
#ifndef SSC_PINENTRY_H
#define SSC_PINENTRY_H

#include <stddef.h>

/* The longest PIN line accepted, newline excluded (a PIN has at most 12 digits). */
#define PINENTRY_MAX 64

/*
 * Reads one PIN from fd into out (cap bytes, at least PINENTRY_MAX + 1), NUL-terminated, without
 * the line's "\n" or "\r\n". When fd is a terminal, prompt is written to the terminal (fd's own
 * device, else stderr), echo is off while the line is typed, and the terminal is restored
 * afterwards, also when SIGINT, SIGTERM, SIGHUP, SIGQUIT or SIGTSTP interrupt the typing (the signal
 * then takes its default action). Otherwise exactly one line is read, a byte at a time, so that
 * the next call reads the next line. Blocks until a line (or end of input) comes.
 * Returns 0; SSC_ENOTFOUND at end of input before any byte of a line; SSC_EINVAL for a line
 * longer than PINENTRY_MAX (the rest of it is read and dropped) or a NUL byte in it; SSC_EIO when
 * reading fails. On any error out holds "" and no byte of the line is left in a buffer of ours.
 */
int pinentry_read(int fd, const char *prompt, char *out, size_t cap);

/* Wipes a PIN buffer of len bytes (OPENSSL_cleanse: not optimised away). */
void pinentry_wipe(void *buf, size_t len);

#endif
