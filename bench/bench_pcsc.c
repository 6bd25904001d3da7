/*
 * This file contains the bare PC/SC client of the benchmark (bench_pcsc.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "bench_pcsc.h"
#include "bench_stats.h"

struct bench_pcsc_conn {
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto;
	int have_ctx, have_card;
};

static int bench_pcsc_fail(const char *what, LONG rv)
{
	fprintf(stderr, "sscard-bench: %s: %s (0x%08lX)\n", what, pcsc_stringify_error(rv),
		(unsigned long)rv);
	return 1;
}

static int bench_pcsc_open_ctx(struct bench_pcsc_conn *c)
{
	LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c->ctx);

	if (rv != SCARD_S_SUCCESS)
		return bench_pcsc_fail("SCardEstablishContext", rv);
	c->have_ctx = 1;
	return 0;
}

/* What the daemon's driver does to find its reader: list them all (the result is not needed). */
static int bench_pcsc_list(struct bench_pcsc_conn *c)
{
	char buf[4096];
	DWORD len = sizeof(buf);
	LONG rv = SCardListReaders(c->ctx, NULL, buf, &len);

	return rv == SCARD_S_SUCCESS ? 0 : bench_pcsc_fail("SCardListReaders", rv);
}

static int bench_pcsc_connect(struct bench_pcsc_conn *c, const char *reader)
{
	unsigned char atr[MAX_ATR_SIZE];
	char name[256];
	DWORD nlen = sizeof(name), state, proto, alen = sizeof(atr);
	double give_up = bench_now_us() + 5e6;
	LONG rv;

	/* The daemon keeps a card connected for a moment after an operation (card_hold_ms). */
	while ((rv = SCardConnect(c->ctx, reader, SCARD_SHARE_EXCLUSIVE,
				  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &c->card, &c->proto)) ==
		       SCARD_E_SHARING_VIOLATION &&
	       bench_now_us() < give_up)
		usleep(10000);
	if (rv != SCARD_S_SUCCESS)
		return bench_pcsc_fail("SCardConnect", rv);
	c->have_card = 1;
	rv = SCardStatus(c->card, name, &nlen, &state, &proto, atr, &alen);
	return rv == SCARD_S_SUCCESS ? 0 : bench_pcsc_fail("SCardStatus", rv);
}

static void bench_pcsc_close(struct bench_pcsc_conn *c, DWORD disposition, int keep_ctx)
{
	if (c->have_card)
		(void)SCardDisconnect(c->card, disposition);
	c->have_card = 0;
	if (c->have_ctx && !keep_ctx) {
		(void)SCardReleaseContext(c->ctx);
		c->have_ctx = 0;
	}
}

static void bench_pcsc_hex(const char *dir, const uint8_t *p, size_t n)
{
	fprintf(stderr, "%s ", dir);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%02X", p[i]);
	fprintf(stderr, "\n");
}

/* One run of the script over open connections. */
static int bench_pcsc_script(const struct bench_seq *s, struct bench_pcsc_conn *card,
			     struct bench_pcsc_conn *psam, int first, int verbose)
{
	struct bench_seq_vars vars;
	uint8_t cmd[BENCH_SEQ_APDU_MAX], resp[BENCH_SEQ_RESP_MAX + 2];
	char err[160];

	memset(&vars, 0, sizeof(vars));
	for (size_t i = 0; i < s->n; i++) {
		const struct bench_seq_step *st = &s->steps[i];
		struct bench_pcsc_conn *c = st->target == BENCH_SEQ_PSAM ? psam : card;
		const SCARD_IO_REQUEST *pci = c->proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0
									     : SCARD_PCI_T1;
		DWORD rlen = sizeof(resp);
		uint16_t sw;
		LONG rv;
		int n;

		if (st->once && !first)
			continue;
		n = bench_seq_expand(st, &vars, cmd, err, sizeof(err));
		if (n < 0) {
			fprintf(stderr, "sscard-bench: step %zu: %s\n", i + 1, err);
			return 1;
		}
		rv = SCardTransmit(c->card, pci, cmd, (DWORD)n, NULL, resp, &rlen);
		if (rv != SCARD_S_SUCCESS)
			return bench_pcsc_fail("SCardTransmit", rv);
		if (verbose) {
			bench_pcsc_hex(st->target == BENCH_SEQ_PSAM ? "psam >" : "card >", cmd, (size_t)n);
			bench_pcsc_hex(st->target == BENCH_SEQ_PSAM ? "psam <" : "card <", resp, rlen);
		}
		if (rlen < 2) {
			fprintf(stderr, "sscard-bench: step %zu: answer of %lu bytes\n", i + 1,
				(unsigned long)rlen);
			return 1;
		}
		sw = (uint16_t)(resp[rlen - 2] << 8 | resp[rlen - 1]);
		if (sw != st->sw) {
			fprintf(stderr, "sscard-bench: step %zu (%s): status %04X, the script expects "
				"%04X\n", i + 1, st->tmpl, sw, st->sw);
			return 1;
		}
		if (st->save[0] && bench_seq_vars_set(&vars, st->save, resp, rlen - 2) != 0) {
			fprintf(stderr, "sscard-bench: too many variables\n");
			return 1;
		}
	}
	return 0;
}

/* Everything one run does (i counts from 0, warm-up included): 0 or 1 (said why). */
static int bench_pcsc_one(const struct bench_seq *s, const struct bench_pcsc_opts *o,
			  struct bench_pcsc_conn *card, struct bench_pcsc_conn *psam, int i)
{
	DWORD disp = o->reset_per_run ? SCARD_RESET_CARD : SCARD_LEAVE_CARD;

	if (o->context_per_run && (bench_pcsc_open_ctx(card) || bench_pcsc_list(card)))
		return 1;
	if ((o->connect_per_run || o->context_per_run) && bench_pcsc_connect(card, o->card_reader))
		return 1;
	if (bench_pcsc_script(s, card, psam, i == 0, o->verbose && i == 0))
		return 1;
	if (o->connect_per_run || o->context_per_run)
		bench_pcsc_close(card, disp, !o->context_per_run);
	return 0;
}

/*
 * --handoff: the runs happen on this thread, each started by a byte on go[0] and answered with
 * its result on done[1], as a daemon's event loop hands a request to a reader worker and takes
 * the answer back. A daemon cannot do with fewer hand-offs (docs/performance.md).
 */
struct bench_handoff {
	const struct bench_seq *s;
	const struct bench_pcsc_opts *o;
	struct bench_pcsc_conn *card, *psam;
	int go[2], done[2];
};

static void *bench_pcsc_worker(void *arg)
{
	struct bench_handoff *h = arg;
	char b;

	for (int i = 0; read(h->go[0], &b, 1) == 1; i++) {
		b = (char)bench_pcsc_one(h->s, h->o, h->card, h->psam, i);
		if (write(h->done[1], &b, 1) != 1)
			break;
	}
	return NULL;
}

int bench_pcsc_run_all(const struct bench_seq *s, const struct bench_pcsc_opts *o)
{
	struct bench_pcsc_conn card, psam;
	struct bench_stats st;
	struct bench_handoff h = { s, o, &card, &psam, { -1, -1 }, { -1, -1 } };
	pthread_t worker;
	int have_worker = 0;
	int rc = 1;

	memset(&card, 0, sizeof(card));
	memset(&psam, 0, sizeof(psam));
	memset(&st, 0, sizeof(st));
	if (s->uses_psam && !o->psam_reader) {
		fprintf(stderr, "sscard-bench: the script talks to a PSAM: give --psam-reader\n");
		return 1;
	}
	if (s->uses_psam && (bench_pcsc_open_ctx(&psam) || bench_pcsc_connect(&psam, o->psam_reader)))
		goto out;
	if (!o->context_per_run && bench_pcsc_open_ctx(&card))
		goto out;
	if (!o->connect_per_run && !o->context_per_run && bench_pcsc_connect(&card, o->card_reader))
		goto out;
	if (o->handoff) {
		if (pipe(h.go) != 0 || pipe(h.done) != 0 ||
		    pthread_create(&worker, NULL, bench_pcsc_worker, &h) != 0) {
			perror("sscard-bench: --handoff");
			goto out;
		}
		have_worker = 1;
	}
	for (int i = 0; i < o->warmup + o->runs; i++) {
		double t0 = bench_now_us();
		char b = 0;

		if (!o->handoff) {
			if (bench_pcsc_one(s, o, &card, &psam, i))
				goto out;
		} else if (write(h.go[1], &b, 1) != 1 || read(h.done[0], &b, 1) != 1 || b != 0) {
			goto out;
		}
		if (i >= o->warmup && bench_stats_add(&st, bench_now_us() - t0) != 0)
			goto out;
	}
	if (o->samples && bench_stats_write(&st, o->samples) != 0)
		goto out;
	bench_stats_print(stdout, "pcsc", &st);
	rc = 0;
out:
	if (have_worker) {
		close(h.go[1]);   /* the worker's read ends: it returns */
		h.go[1] = -1;
		pthread_join(worker, NULL);
	}
	for (int k = 0; k < 2; k++) {
		if (h.go[k] >= 0)
			close(h.go[k]);
		if (h.done[k] >= 0)
			close(h.done[k]);
	}
	bench_pcsc_close(&card, SCARD_LEAVE_CARD, 0);
	bench_pcsc_close(&psam, SCARD_LEAVE_CARD, 0);
	bench_stats_free(&st);
	return rc;
}
