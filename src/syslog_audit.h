/*
 * This file contains audit shipping to syslog (issue 19, [audit] syslog = yes): every row the
 * journal appends, as one RFC 5424 message with structured data (the chain's sequence number and
 * hash included, so that a central collector holds the chain heads off the desk), formatted here
 * (glibc's syslog() writes RFC 3164 to a fixed /dev/log) and sent to [audit] syslog_socket. The
 * rows carry what the journal carries: keyed card references, never personal data.
 */
#ifndef SSC_SYSLOG_AUDIT_H
#define SSC_SYSLOG_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"

/* A message is at most this long (a longer value is cut: the row is in the journal whole). */
#define SYSLOG_AUDIT_MAX 8192
/* The structured data's id: sscard at the example enterprise number of RFC 5612. */
#define SYSLOG_AUDIT_SDID "sscard@32473"

struct syslog_audit;

/*
 * A sender to the datagram socket at path (absolute), with its thread. It connects on first use
 * and again, at most once a second, after the socket went away (the syslog daemon restarted);
 * one send waits at most 1 s for the syslog daemon. Returns 0 and *out, or SSC_ENOMEM.
 */
int syslog_audit_new(const char *path, struct syslog_audit **out);

/*
 * Formats row and queues it for the sender thread; never blocks beyond a mutex. A row is dropped
 * and counted when 4096 wait already, or when the syslog daemon does not take it (none there, or
 * its queue still full after 1 s); the first drop after a success is logged. Any thread. Returns
 * 0 queued, or SSC_ELIMIT dropped.
 */
int syslog_audit_send(struct syslog_audit *s, const struct journal_row *row);

/* Rows sent and dropped so far. Any thread. */
void syslog_audit_counts(struct syslog_audit *s, uint64_t *sent, uint64_t *dropped);

/*
 * Formats row as the RFC 5424 message syslog_audit_send() sends (host and pid as given) into buf
 * (cap bytes; NUL-terminated). Returns its length (without the NUL), at most cap - 1. For tests.
 */
size_t syslog_audit_format(const struct journal_row *row, const char *host, long pid, char *buf,
			   size_t cap);

/*
 * Sends what is queued (for at most 1 s more), stops the thread, closes the socket and frees s.
 * NULL is a no-op.
 */
void syslog_audit_free(struct syslog_audit *s);

#endif
