/*
 * This file contains sscard's invariant assertions, after SQLite's ALWAYS() and NEVER(): a
 * condition the code relies on, stated where a state changes. They are checked in test builds
 * (SSC_INVARIANTS: on by default with the test hooks in every build type but Release and
 * MinSizeRel, so in the default, ASan and fuzz builds the tests use; off in the Debian package):
 * a broken one prints where and aborts, so that a test or a sanitizer run stops at the first wrong
 * step rather than at its consequence. Unchecked, INVARIANT(x) costs nothing (x is not evaluated:
 * it must have no side effects), and ALWAYS(x) and NEVER(x) are x, keeping the defensive branch.
 *
 *   INVARIANT(x)        x holds here; nothing to do when it does not
 *   if (ALWAYS(x)) ...  x holds; the code still copes when it does not (release)
 *   if (NEVER(x)) ...   x does not hold; the code still copes when it does (release)
 */
#ifndef SSC_INVARIANT_H
#define SSC_INVARIANT_H

#ifdef SSC_INVARIANTS

#include <stdio.h>
#include <stdlib.h>

/* Where and what, then abort(): a broken invariant is a bug, never an error to report. */
static inline _Noreturn void invariant_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, expr);
	abort();
}

#define INVARIANT(x) ((x) ? (void)0 : invariant_failed(#x, __FILE__, __LINE__))
#define ALWAYS(x) ((x) ? 1 : (invariant_failed(#x, __FILE__, __LINE__), 0))
#define NEVER(x) ((x) ? (invariant_failed(#x, __FILE__, __LINE__), 1) : 0)

#else

#define INVARIANT(x) ((void)sizeof(!(x)))
#define ALWAYS(x) (x)
#define NEVER(x) (x)

#endif

#endif
