/*
 * This file contains unit tests of the emulated reader's card line (icc.c) without USB: the ATR
 * at each level, T=0 TPDU mapping (61xx, 6Cxx, refusals), and the T=1 block protocol of ISO/IEC
 * 7816-3 11.6 from the card's side (chaining both ways, IFS, RESYNCH, ABORT, invalid blocks, R-block
 * rules, WTX, every fault). Expected blocks are written out by hand, LRC included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "icc.h"
#include "simcos.h"

static struct sim_profile *prof;

static size_t hex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;

	while (*h) {
		unsigned v;

		if (*h == ' ') {
			h++;
			continue;
		}
		if (sscanf(h, "%2x", &v) != 1 || n >= cap)
			fail_msg("bad test hex at %s", h);
		out[n++] = (uint8_t)v;
		h += 2;
	}
	return n;
}

/* Sends in_hex; checks the outcome and (for ICC_OK) the answer against want_hex. */
static void xfr(struct icc *c, const char *in_hex, enum icc_outcome want_o, const char *want_hex,
		int line)
{
	uint8_t in[600], out[ICC_RESP_MAX], w[600];
	size_t n = hex(in_hex, in, sizeof(in)), on = 0, wn;
	enum icc_outcome o = icc_xfr(c, in, n, out, sizeof(out), &on);
	char got[2 * ICC_RESP_MAX + 1];
	size_t i;

	for (i = 0; i < on; i++)
		snprintf(got + 2 * i, 3, "%02X", out[i]);
	got[2 * on] = '\0';
	if (o != want_o)
		fail_msg("line %d: outcome %d, want %d (answer %s)", line, o, want_o, got);
	if (o != ICC_OK)
		return;
	wn = hex(want_hex, w, sizeof(w));
	if (on != wn || memcmp(out, w, on) != 0)
		fail_msg("line %d: sent %s\n  got  %s\n  want %s", line, in_hex, got, want_hex);
}
#define XFR(c, in, want) xfr((c), (in), ICC_OK, (want), __LINE__)
#define MUTE(c, in) xfr((c), (in), ICC_MUTE, "", __LINE__)

struct line {
	struct sim_token *tok;
	struct icc icc;
};

static void line_open(struct line *l, enum icc_level level, uint8_t ifsc)
{
	struct icc_params p = { .level = level, .ifsc = ifsc, .wtx_multiplier = 2 };

	l->tok = sim_token_new(prof, SIM_ROLE_CARD);
	assert_non_null(l->tok);
	icc_init(&l->icc, l->tok, &p);
	icc_power_on(&l->icc);
}

static void line_close(struct line *l)
{
	icc_done(&l->icc);
	sim_token_free(l->tok);
}

#define SSSE "7378312E73682EC9E7BBE1B1A3D5CF"
#define FCI "6F19840F" SSSE "A5069F0C03860101"
#define SSN_REC "0812333330313032313939303033303731323330"   /* gen2.json EF06 record 1 */

static void test_atr(void **state)
{
	struct line l;
	uint8_t atr[SIM_ATR_MAX];
	size_t off, n;

	(void)state;
	line_open(&l, ICC_LEVEL_APDU, 32);
	n = icc_atr(&l.icc, atr);
	assert_int_equal(n, 19);
	assert_memory_equal(atr, "\x3B\x8E\x80\x01\x00\x81\x54\x4C\x92\x86\x84\x33\x01\x00\x00\xBF"
			    "\x7C\x7A\x8D", 19);
	assert_int_equal(icc_atr_historical(atr, n, &off, &n), 0);
	assert_int_equal(off, 4);
	assert_int_equal(n, 14);
	line_close(&l);
	line_open(&l, ICC_LEVEL_T0, 32);
	n = icc_atr(&l.icc, atr);
	assert_int_equal(n, 16);
	assert_memory_equal(atr, "\x3B\x0E\x00\x81\x54\x4C\x92\x86\x84\x33\x01\x00\x00\xBF\x7C\x7A",
			    16);
	line_close(&l);
	line_open(&l, ICC_LEVEL_T1, 0xFE);
	n = icc_atr(&l.icc, atr);
	/* 3B, T0 8E, TD1 81, TD2 31, TA3 FE (IFSC), TB3 45, the 14 historical bytes, TCK. */
	assert_int_equal(n, 21);
	assert_memory_equal(atr, "\x3B\x8E\x81\x31\xFE\x45\x00\x81\x54\x4C\x92\x86\x84\x33\x01\x00"
			    "\x00\xBF\x7C\x7A", 20);
	assert_int_equal(atr[20], 0x8E ^ 0x81 ^ 0x31 ^ 0xFE ^ 0x45 ^ 0x00 ^ 0x81 ^ 0x54 ^ 0x4C ^
			 0x92 ^ 0x86 ^ 0x84 ^ 0x33 ^ 0x01 ^ 0x00 ^ 0x00 ^ 0xBF ^ 0x7C ^ 0x7A);
	line_close(&l);
	/* Malformed ATRs. */
	assert_int_equal(icc_atr_historical((const uint8_t *)"\x3B", 1, &off, &n), -1);
	assert_int_equal(icc_atr_historical((const uint8_t *)"\x3B\x8E\x80", 3, &off, &n), -1);
	assert_int_equal(icc_atr_historical((const uint8_t *)"\x3B\x05\x01\x02", 4, &off, &n), -1);
}

/* A T=1 block in hex: NAD 00, PCB, LEN, INF, and the LRC (ISO 7816-3 11.4.4: XOR of all bytes). */
static const char *blk(uint8_t pcb, const char *inf_hex)
{
	static char out[8][700];
	static int k;
	uint8_t inf[300];
	size_t n = hex(inf_hex, inf, sizeof(inf)), i;
	uint8_t x = (uint8_t)(pcb ^ n);
	char *o = out[k++ % 8];

	for (i = 0; i < n; i++)
		x ^= inf[i];
	snprintf(o, 16, "00%02X%02X", pcb, (unsigned)n);
	for (i = 0; i < n; i++)
		snprintf(o + 6 + 2 * i, 3, "%02X", inf[i]);
	snprintf(o + 6 + 2 * n, 3, "%02X", x);
	return o;
}

static void test_t0(void **state)
{
	struct line l;

	(void)state;
	line_open(&l, ICC_LEVEL_T0, 32);
	/* Case 3: the FCI is held, 61 1B; GET RESPONSE in two parts, then 9000. */
	XFR(&l.icc, "00A404000F" SSSE, "611B");
	XFR(&l.icc, "00C0000010", "6F19840F7378312E73682EC9E7BBE1B1 610B");
	XFR(&l.icc, "00C000000C", "6C0B");                      /* longer than what is left */
	XFR(&l.icc, "00C000000B", "A3D5CFA5069F0C03860101 9000");
	/* Nothing held any more: GET RESPONSE goes to the card OS, which has nothing either. */
	XFR(&l.icc, "00C000000B", "6985");
	/* Case 2: P3 00 means 256; the record is 20 bytes: 6C 14; exact: the record. */
	XFR(&l.icc, "00B2013400", "6C14");
	XFR(&l.icc, "00B2013414", SSN_REC "9000");
	XFR(&l.icc, "00B2013405", "0812333330 9000");
	/* An error status passes as it is. */
	XFR(&l.icc, "00B2093400", "6A83");
	/* A case-4 APDU: the Le byte never reaches a T=0 card; 61xx, counted as refused. */
	XFR(&l.icc, "00A404000F" SSSE "00", "611B");
	assert_int_equal(l.icc.stats.case4_as_case3, 1);
	/* Another command drops what was held. */
	XFR(&l.icc, "00B2013414", SSN_REC "9000");
	XFR(&l.icc, "00C000001B", "6985");
	/* What a T=0 card cannot take: mute. */
	MUTE(&l.icc, "00A40000");                               /* 4 bytes: no P3 */
	MUTE(&l.icc, "00A404000F7378");                         /* fewer data bytes than P3 */
	MUTE(&l.icc, "00A4040000AA");                           /* data with P3 = 0 */
	MUTE(&l.icc, "00A4040002AABBCCDD");                     /* more than P3 + Le */
	assert_int_equal(l.icc.stats.refused, 5);
	/* Power-on forgets held data. */
	XFR(&l.icc, "00A404000F" SSSE, "611B");
	icc_power_on(&l.icc);
	XFR(&l.icc, "00C000001B", "6985");
	line_close(&l);
}

static void test_apdu_auto_get_response(void **state)
{
	struct sim_profile *q;
	struct sim_token *t;
	struct icc c;
	struct icc_params p = { .level = ICC_LEVEL_APDU, .auto_get_response = true };
	char err[256], path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/t0-quirks.json", CCID_EMU_PROFILES_DIR);
	q = sim_profile_load(path, err, sizeof(err));
	assert_non_null(q);
	t = sim_token_new(q, SIM_ROLE_CARD);
	icc_init(&c, t, &p);
	icc_power_on(&c);
	/* The card answers 61 1B; the reader fetches it. */
	XFR(&c, "00A404000F" SSSE "00", FCI "9000");
	/* exact_le: 6C 14 to Le 00; the reader re-issues with 14. */
	XFR(&c, "00B2013400", "0812333330313036313939323032323930303238 9000");
	icc_done(&c);
	sim_token_free(t);
	/* Without the option the card's own answers pass through. */
	p.auto_get_response = false;
	t = sim_token_new(q, SIM_ROLE_CARD);
	icc_init(&c, t, &p);
	icc_power_on(&c);
	XFR(&c, "00A404000F" SSSE "00", "611B");
	icc_done(&c);
	sim_token_free(t);
	sim_profile_free(q);
}

static void test_t1_basic(void **state)
{
	struct line l;

	(void)state;
	line_open(&l, ICC_LEVEL_T1, 32);
	/* An R-block before anything was sent: R(N(R) = 0), the I-block the card expects. */
	XFR(&l.icc, blk(0x80, ""), blk(0x80, ""));
	/* I(0): SELECT; I(0) FCI back. */
	XFR(&l.icc, blk(0x00, "00A404000F" SSSE), blk(0x00, FCI "9000"));
	/* I(1): READ RECORD; I(1) back. */
	XFR(&l.icc, blk(0x40, "00B2013400"), blk(0x40, SSN_REC "9000"));
	/* The host did not get it: R(N(R) = 1) gets the same block again. */
	XFR(&l.icc, blk(0x90, ""), blk(0x40, SSN_REC "9000"));
	assert_int_equal(l.icc.stats.t1_resent, 1);
	/* The name record (张三 in GBK, 00-padded to 30) and SW: 34 bytes > IFSD 32, chained. */
	XFR(&l.icc, blk(0x00, "00B2023400"),
	    blk(0x20, "091ED5C5C8FD0000000000000000000000000000000000000000000000000000"));
	XFR(&l.icc, blk(0x90, ""), blk(0x40, "9000"));           /* R(1): the next link */
	/* S(IFS request FE): S(IFS response FE); the record then fits in one block. */
	XFR(&l.icc, blk(0xC1, "FE"), blk(0xE1, "FE"));
	XFR(&l.icc, blk(0x40, "00B2023400"),
	    blk(0x00, "091ED5C5C8FD0000000000000000000000000000000000000000000000000000 9000"));
	assert_int_equal(l.icc.stats.t1_chain_out, 1);
	/* Invalid blocks: bad LRC -> R(N(R)=0, EDC); then, while the card's last block is that
	 * R-block, any invalid block gets the same R-block again (rule 7.2): a bad LEN, a wrong N(S). */
	XFR(&l.icc, "000005 00B2013400 00", blk(0x81, ""));
	XFR(&l.icc, "000006 00B2013400 B7", blk(0x81, ""));
	XFR(&l.icc, blk(0x40, "00B2013400"), blk(0x81, ""));
	/* The right I(0) goes through (the card's N(S) is 1 now). */
	XFR(&l.icc, blk(0x00, "00B2013400"), blk(0x40, SSN_REC "9000"));
	/* Wrong N(S) from the host (1 is due): R(N(R)=1, other error). */
	XFR(&l.icc, blk(0x00, "00B2013400"), blk(0x92, ""));
	/* S(IFS) with a bad value: invalid, the R-block again. */
	XFR(&l.icc, blk(0xC1, "FF"), blk(0x92, ""));
	/* S(RESYNCH): both N(S) back to 0. An unrequested S response, an unknown S: invalid. */
	XFR(&l.icc, blk(0xC0, ""), blk(0xE0, ""));
	XFR(&l.icc, blk(0xE1, "20"), blk(0x82, ""));
	XFR(&l.icc, blk(0xC5, ""), blk(0x82, ""));
	/* S(ABORT): answered. */
	XFR(&l.icc, blk(0xC2, ""), blk(0xE2, ""));
	XFR(&l.icc, blk(0x00, "00B2013400"), blk(0x00, SSN_REC "9000"));
	/* A NAD other than 0 is not taken: R(N(R)=1, other). */
	XFR(&l.icc, "01 40 05 00B2013400 C3", blk(0x92, ""));
	line_close(&l);
}

static void test_t1_host_chaining(void **state)
{
	struct line l;
	char big[2 * 254 + 1];

	(void)state;
	line_open(&l, ICC_LEVEL_T1, 16);
	/* SELECT is 20 bytes, IFSC 16: I(0, M) with 16, the card acks R(1), then I(1) with 4. */
	XFR(&l.icc, blk(0x20, "00A404000F7378312E73682EC9E7BBE1"), blk(0x90, ""));
	/* The ack got lost: the host asks again with an R-block; the card repeats its R-block. */
	XFR(&l.icc, blk(0x80, ""), blk(0x90, ""));
	XFR(&l.icc, blk(0x40, "B1A3D5CF"), blk(0x00, FCI "9000"));
	assert_int_equal(l.icc.stats.t1_chain_in, 1);
	/* A block longer than IFSC: invalid. */
	XFR(&l.icc, blk(0x00, "00B2013400000000000000000000000000"), blk(0x82, ""));
	line_close(&l);

	/* A chain longer than any APDU the card can take: refused, the chain is dropped. */
	line_open(&l, ICC_LEVEL_T1, 254);
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	XFR(&l.icc, blk(0x20, big), blk(0x90, ""));
	XFR(&l.icc, blk(0x60, big), blk(0x80, ""));
	XFR(&l.icc, blk(0x20, big), blk(0x90, ""));
	XFR(&l.icc, blk(0x60, big), blk(0x80, ""));
	XFR(&l.icc, blk(0x20, big), blk(0x82, ""));
	assert_int_equal(l.icc.rx_len, 0);
	line_close(&l);
}

static void test_t1_faults(void **state)
{
	struct line l;
	uint8_t in[64], out[ICC_RESP_MAX];
	size_t n, on;

	(void)state;
	line_open(&l, ICC_LEVEL_T1, 32);
	XFR(&l.icc, blk(0x00, "00A404000F" SSSE), blk(0x00, FCI "9000"));

	/* LRC: the answer comes with a wrong LRC; R(N(R)=1, EDC) gets it right. */
	icc_fault(&l.icc, ICC_FAULT_LRC, 1);
	n = hex(blk(0x40, "00B2013400"), in, sizeof(in));
	assert_int_equal(icc_xfr(&l.icc, in, n, out, sizeof(out), &on), ICC_OK);
	assert_int_equal(on, 26);
	assert_int_not_equal(out[25], 0);
	{
		uint8_t x = 0;
		size_t i;

		for (i = 0; i < on; i++)
			x ^= out[i];
		assert_int_not_equal(x, 0);                  /* the LRC check fails */
	}
	XFR(&l.icc, blk(0x91, ""), blk(0x40, SSN_REC "9000"));

	/* LOST: the card's answer never arrives; R(N(R)=0) gets it. */
	icc_fault(&l.icc, ICC_FAULT_LOST, 1);
	MUTE(&l.icc, blk(0x00, "00B2013400"));
	XFR(&l.icc, blk(0x82, ""), blk(0x00, SSN_REC "9000"));

	/* LOSTCMD: the host's block never reached the card: the card asks for it with R(N(R)=1). */
	icc_fault(&l.icc, ICC_FAULT_LOSTCMD, 1);
	MUTE(&l.icc, blk(0x40, "00B2013400"));
	XFR(&l.icc, blk(0x92, ""), blk(0x90, ""));
	XFR(&l.icc, blk(0x40, "00B2013400"), blk(0x40, SSN_REC "9000"));

	/* WTX: S(WTX request 02); a wrong response gets the request again; the right one, the answer. */
	icc_fault(&l.icc, ICC_FAULT_WTX, 1);
	XFR(&l.icc, blk(0x00, "00B2013400"), blk(0xC3, "02"));
	XFR(&l.icc, blk(0xE3, "03"), blk(0xC3, "02"));
	XFR(&l.icc, blk(0x80, ""), blk(0xC3, "02"));
	XFR(&l.icc, blk(0xE3, "02"), blk(0x00, SSN_REC "9000"));
	assert_int_equal(l.icc.stats.t1_wtx_in, 1);

	/* NS: the answer carries N(S) 0 where 1 is due; R(N(R)=1) gets the right block. */
	icc_fault(&l.icc, ICC_FAULT_NS, 1);
	XFR(&l.icc, blk(0x40, "00B2013400"), blk(0x00, SSN_REC "9000"));
	XFR(&l.icc, blk(0x92, ""), blk(0x40, SSN_REC "9000"));
	assert_int_equal(l.icc.stats.faults_fired[ICC_FAULT_NS], 1);

	/* Disarming. */
	icc_fault(&l.icc, ICC_FAULT_LOST, 5);
	icc_fault(&l.icc, ICC_FAULT_LOST, 0);
	XFR(&l.icc, blk(0x00, "00B2013400"), blk(0x00, SSN_REC "9000"));
	line_close(&l);
}

static void test_lrc(void **state)
{
	(void)state;
	assert_int_equal(icc_lrc((const uint8_t *)"\x00\xE1\x01\x80", 4), 0x60);
	assert_int_equal(icc_lrc(NULL, 0), 0);
}

static int setup(void **state)
{
	char err[256], path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/gen2.json", CCID_EMU_PROFILES_DIR);
	prof = sim_profile_load(path, err, sizeof(err));
	if (prof == NULL)
		fprintf(stderr, "%s\n", err);
	return prof ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	sim_profile_free(prof);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lrc),
		cmocka_unit_test(test_atr),
		cmocka_unit_test(test_t0),
		cmocka_unit_test(test_apdu_auto_get_response),
		cmocka_unit_test(test_t1_basic),
		cmocka_unit_test(test_t1_host_chaining),
		cmocka_unit_test(test_t1_faults),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
