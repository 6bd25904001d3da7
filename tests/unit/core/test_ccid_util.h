/*
 * This file contains helpers shared by the USB CCID driver's pure unit tests (test_ccid,
 * test_ccid_t0, test_atr, test_t1): hex parsing and a scripted peer that checks each block or
 * TPDU sent and gives the scripted answer. Header-only, static inline, so each test links alone.
 */
#ifndef TEST_CCID_UTIL_H
#define TEST_CCID_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sscard/error.h"

/* Parses hex (spaces allowed) into out; returns the byte count. Fails the test on bad hex. */
static inline size_t cu_unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*s) {
		char b[3];

		if (*s == ' ') {
			s++;
			continue;
		}
		assert_true(s[1] != '\0');
		assert_true(n < cap);
		b[0] = s[0];
		b[1] = s[1];
		b[2] = '\0';
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
		s += 2;
	}
	return n;
}

#define CU_HEX(name, str) \
	uint8_t name[600]; \
	size_t name##_len = cu_unhex(str, name, sizeof(name)); \
	(void)name##_len

/* Formats bytes as hex for failure messages. */
static inline const char *cu_hex(const uint8_t *p, size_t n, char *buf, size_t cap)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n && o + 3 < cap; i++) {
		buf[o++] = hx[p[i] >> 4];
		buf[o++] = hx[p[i] & 0xF];
	}
	buf[o] = '\0';
	return buf;
}

/*
 * One step of a scripted peer. expect is the exact hex the code must send; answer the hex it
 * gets back. For T=1 blocks (cu_peer.lrc set) both are written without the LRC: the peer checks
 * and appends it with its own XOR, so the scripts stay readable.
 */
#define CU_BAD_LRC 0x1      /* the answer's LRC is wrong */
#define CU_FAIL 0x2         /* return rc instead of an answer */

struct cu_step {
	const char *expect;   /* NULL ends the script */
	const char *answer;
	unsigned flags;
	int rc;               /* with CU_FAIL */
	unsigned wtx;         /* T=1: the wtx the code must pass (0 = do not check) */
};

struct cu_peer {
	const struct cu_step *steps;
	size_t next;
	int lrc;              /* T=1 framing */
};

static inline uint8_t cu_xor(const uint8_t *p, size_t n)
{
	uint8_t x = 0;

	for (size_t i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

static inline int cu_peer_xfer(struct cu_peer *pe, const uint8_t *out, size_t len, uint8_t *in,
			       size_t cap, unsigned wtx)
{
	const struct cu_step *st = &pe->steps[pe->next];
	uint8_t want[600];
	size_t wl, al;
	char h1[1300], h2[1300];

	if (!st->expect)
		fail_msg("step %zu: unexpected %s after the script ended", pe->next,
			 cu_hex(out, len, h1, sizeof(h1)));
	wl = cu_unhex(st->expect, want, sizeof(want) - 1);
	if (pe->lrc)
		want[wl] = cu_xor(want, wl), wl++;
	if (wl != len || memcmp(want, out, len) != 0)
		fail_msg("step %zu: sent %s, expected %s", pe->next, cu_hex(out, len, h1, sizeof(h1)),
			 cu_hex(want, wl, h2, sizeof(h2)));
	if (st->wtx)
		assert_int_equal(wtx, st->wtx);
	pe->next++;
	if (st->flags & CU_FAIL)
		return st->rc;
	al = cu_unhex(st->answer, in, cap);
	if (pe->lrc) {
		assert_true(al < cap);
		in[al] = cu_xor(in, al);
		if (st->flags & CU_BAD_LRC)
			in[al] ^= 0x5A;
		al++;
	}
	return (int)al;
}

/* The script must have been used up. */
static inline void cu_peer_done(const struct cu_peer *pe)
{
	if (pe->steps[pe->next].expect)
		fail_msg("script stopped at step %zu of more", pe->next);
}

#endif
