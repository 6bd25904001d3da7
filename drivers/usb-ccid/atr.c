/*
 * This file contains ATR parsing, protocol and speed choice, PPS building and checking, and the
 * CCID SetParameters bytes (atr.h), after ISO/IEC 7816-3 §8 and §9 and CCID Rev 1.1 §6.1.7.
 * Pure functions: no I/O, no allocation, no logging.
 */
#include <string.h>

#include "atr.h"
#include "sscard/error.h"

#define ATR_CLOCK_DEFAULT_KHZ 4000
#define ATR_IFS_DEFAULT 32
#define ATR_BWI_DEFAULT 4
#define ATR_CWI_DEFAULT 13
#define ATR_WI_DEFAULT 10

static const unsigned atr_fi_table[16] = { 372, 372, 558, 744, 1116, 1488, 1860, 0,
					   0,   512, 768, 1024, 1536, 2048, 0, 0 };
static const unsigned atr_di_table[16] = { 0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0 };

unsigned atr_fi(uint8_t fidi)
{
	return atr_fi_table[fidi >> 4];
}

unsigned atr_di(uint8_t fidi)
{
	return atr_di_table[fidi & 0x0F];
}

int atr_parse(const uint8_t *atr, size_t len, struct atr_info *out)
{
	size_t i = 1, k;
	uint8_t y, t_prev = 0;
	unsigned group = 1;
	int t1_seen_ta = 0, t1_seen_tb = 0, t1_seen_tc = 0, need_tck = 0;

	if (!atr || !out)
		return SSC_EINVAL;
	memset(out, 0, sizeof(*out));
	out->wi = ATR_WI_DEFAULT;
	out->ifsc = ATR_IFS_DEFAULT;
	out->bwi = ATR_BWI_DEFAULT;
	out->cwi = ATR_CWI_DEFAULT;
	if (len < 2 || len > ATR_MAX)
		return SSC_EPROTO;
	if (atr[0] != 0x3B && atr[0] != 0x3F)
		return SSC_EPROTO;
	out->ts = atr[0];
	y = atr[1] >> 4;
	k = atr[1] & 0x0F;
	i = 2;
	for (;;) {
		/* Group `group` holds TA(group) TB(group) TC(group) TD(group), as y says. */
		uint8_t ta = 0, tb = 0, tc = 0;
		int has_ta = 0, has_tb = 0, has_tc = 0;

		if (y & 0x1) {
			if (i >= len)
				return SSC_EPROTO;
			ta = atr[i++];
			has_ta = 1;
		}
		if (y & 0x2) {
			if (i >= len)
				return SSC_EPROTO;
			tb = atr[i++];
			has_tb = 1;
		}
		if (y & 0x4) {
			if (i >= len)
				return SSC_EPROTO;
			tc = atr[i++];
			has_tc = 1;
		}
		if (group == 1) {
			out->has_ta1 = has_ta;
			out->ta1 = ta;
			out->has_tc1 = has_tc;
			out->tc1 = tc;
		} else if (group == 2) {
			if (has_ta) {
				out->specific = 1;
				out->ta2 = ta;
			}
			if (has_tc)
				out->wi = tc;
		} else if (t_prev == 1) {
			/* The first TA/TB/TC after a TD that says T=1 are T=1's own. */
			if (has_ta && !t1_seen_ta) {
				t1_seen_ta = 1;
				if (ta >= 1 && ta <= 254)
					out->ifsc = ta;
			}
			if (has_tb && !t1_seen_tb) {
				t1_seen_tb = 1;
				out->bwi = tb >> 4;
				out->cwi = tb & 0x0F;
			}
			if (has_tc && !t1_seen_tc) {
				t1_seen_tc = 1;
				out->crc = tc & 0x01;
			}
		}
		if (!(y & 0x8))
			break;
		if (i >= len)
			return SSC_EPROTO;
		{
			uint8_t td = atr[i++];
			uint8_t t = td & 0x0F;

			if (group == 1)
				out->default_proto = t;
			out->protocols |= (uint16_t)(1u << t);
			if (t != 0)
				need_tck = 1;
			t_prev = t;
			y = td >> 4;
		}
		group++;
	}
	if (out->protocols == 0)
		out->protocols = 1;   /* no TD1: T=0 only */
	if (k > len || i > len - k)
		return SSC_EPROTO;
	out->hist_off = i;
	out->hist_len = k;
	i += k;
	if (need_tck) {
		uint8_t x = 0;

		if (i + 1 != len)
			return SSC_EPROTO;
		for (size_t j = 1; j < len; j++)
			x ^= atr[j];
		if (x != 0)
			return SSC_EPROTO;
		out->has_tck = 1;
	} else if (i != len) {
		return SSC_EPROTO;
	}
	return 0;
}

/* Whether the reader runs Fi/Di fidi at its clock (the rate f * Di / Fi must not pass its max). */
static int atr_reader_can(uint8_t fidi, uint32_t max_rate_bps, uint32_t clock_khz)
{
	unsigned fi = atr_fi(fidi), di = atr_di(fidi);
	uint64_t rate;

	if (fi == 0 || di == 0 || max_rate_bps == 0 || clock_khz == 0)
		return 0;
	rate = (uint64_t)clock_khz * 1000u * di / fi;
	return rate <= max_rate_bps;
}

int atr_choose(const struct atr_info *a, uint32_t reader_protocols, uint32_t max_rate_bps,
	       uint32_t clock_khz, struct atr_choice *out)
{
	unsigned avail;

	if (!a || !out)
		return SSC_EINVAL;
	memset(out, 0, sizeof(*out));
	out->fidi = ATR_FIDI_DEFAULT;
	if (a->specific) {
		uint8_t t = a->ta2 & 0x0F;

		if (t > 1 || !(reader_protocols & (1u << t)))
			return SSC_EPROTO;
		out->proto = t;
		if (!(a->ta2 & 0x10) && a->has_ta1) {
			/* The card runs TA1 from the start: the reader must keep up. */
			if (a->ta1 != ATR_FIDI_DEFAULT &&
			    !atr_reader_can(a->ta1, max_rate_bps, clock_khz))
				return SSC_EPROTO;
			out->fidi = a->ta1;
		}
		return 0;
	}
	avail = a->protocols & reader_protocols & 0x3u;
	if (avail == 0)
		return SSC_EPROTO;
	out->proto = (avail & 0x2u) ? 1 : 0;
	if (a->has_ta1 && a->ta1 != ATR_FIDI_DEFAULT &&
	    atr_reader_can(a->ta1, max_rate_bps, clock_khz))
		out->fidi = a->ta1;
	out->need_pps = out->proto != a->default_proto || out->fidi != ATR_FIDI_DEFAULT;
	return 0;
}

int atr_pps_build(uint8_t proto, uint8_t fidi, uint8_t *out)
{
	size_t n = 0;
	uint8_t pck = 0;

	if (!out || proto > 1)
		return SSC_EINVAL;
	out[n++] = 0xFF;
	out[n++] = (uint8_t)((fidi != ATR_FIDI_DEFAULT ? 0x10 : 0x00) | proto);
	if (fidi != ATR_FIDI_DEFAULT)
		out[n++] = fidi;
	for (size_t i = 0; i < n; i++)
		pck ^= out[i];
	out[n++] = pck;
	return (int)n;
}

int atr_pps_check(const uint8_t *req, size_t req_len, const uint8_t *resp, size_t resp_len,
		  uint8_t *fidi_out)
{
	uint8_t x = 0;
	size_t want;

	if (!req || !resp || !fidi_out || req_len < 3)
		return SSC_EINVAL;
	if (resp_len < 3 || resp[0] != 0xFF)
		return SSC_EPROTO;
	if ((resp[1] & 0x0F) != (req[1] & 0x0F))
		return SSC_EPROTO;          /* another protocol: refused */
	if (resp[1] & 0x60)
		return SSC_EPROTO;          /* PPS2/PPS3 we did not send */
	if ((resp[1] & 0x10) && !(req[1] & 0x10))
		return SSC_EPROTO;          /* a PPS1 we did not send */
	want = 3 + ((resp[1] & 0x10) ? 1 : 0);
	if (resp_len != want)
		return SSC_EPROTO;
	for (size_t i = 0; i < resp_len; i++)
		x ^= resp[i];
	if (x != 0)
		return SSC_EPROTO;
	if (resp[1] & 0x10) {
		if (resp[2] != req[2])
			return SSC_EPROTO;
		*fidi_out = resp[2];
	} else {
		*fidi_out = ATR_FIDI_DEFAULT;   /* PPS1 not echoed: Fd and Dd stay */
	}
	return 0;
}

int atr_ccid_params(const struct atr_info *a, uint8_t proto, uint8_t fidi, uint8_t *out)
{
	uint8_t conv = a && a->ts == 0x3F ? 0x02 : 0x00;

	if (!a || !out || proto > 1)
		return SSC_EINVAL;
	if (proto == 0) {
		out[0] = fidi;                         /* bmFindexDindex */
		out[1] = conv;                         /* bmTCCKST0 */
		out[2] = a->has_tc1 ? a->tc1 : 0;      /* bGuardTimeT0 */
		out[3] = a->wi;                        /* bWaitingIntegerT0 */
		out[4] = 0;                            /* bClockStop: not allowed */
		return 5;
	}
	out[0] = fidi;
	out[1] = (uint8_t)(0x10 | conv | (a->crc ? 0x01 : 0x00));   /* bmTCCKST1 */
	out[2] = a->has_tc1 ? a->tc1 : 0;          /* bGuardTimeT1 */
	out[3] = (uint8_t)(a->bwi << 4 | (a->cwi & 0x0F));   /* bmWaitingIntegersT1 */
	out[4] = 0;                                /* bClockStop */
	out[5] = a->ifsc;                          /* bIFSC */
	out[6] = 0;                                /* bNadValue */
	return 7;
}

unsigned atr_wait_ms(const struct atr_info *a, uint8_t proto, uint8_t fidi, uint32_t clock_khz)
{
	uint64_t f = (uint64_t)(clock_khz ? clock_khz : ATR_CLOCK_DEFAULT_KHZ) * 1000u;
	unsigned fi = atr_fi(fidi) ? atr_fi(fidi) : 372, di = atr_di(fidi) ? atr_di(fidi) : 1;
	uint64_t us;

	if (!a)
		return 1;
	if (proto == 0) {
		/* WWT = 960 * WI * Fi / f seconds */
		us = (960ull * a->wi * fi * 1000000ull + f - 1) / f;
	} else {
		/* BWT = 11 etu + 2^BWI * 960 * 372 / f; one etu = Fi / (Di * f) */
		unsigned bwi = a->bwi > 15 ? 15 : a->bwi;
		uint64_t etu11 = (11ull * fi * 1000000ull + di * f - 1) / (di * f);

		us = etu11 + (((uint64_t)1 << bwi) * 960ull * 372ull * 1000000ull + f - 1) / f;
	}
	us = (us + 999) / 1000;
	return us == 0 ? 1 : (unsigned)(us > 0xFFFFFFFFu ? 0xFFFFFFFFu : us);
}
