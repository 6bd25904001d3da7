/*
 * This file contains tests of the emulated CCID reader through real libusb in this process (the
 * program re-executes itself under libumockdev-preload): descriptors, strings, every PC_to_RDR
 * message, the three exchange levels with hand-written expectations from the profiles, T=1 chaining
 * and recovery from each injected fault, CCID-level faults, slot change notifications, and hotplug.
 * The small CCID / T=1 host here is test-only and shares nothing with the daemon's driver.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libusb.h>

#include "ccid_emu.h"

#define PRELOAD "libumockdev-preload.so.0"
#define TMO 2000

static struct ccid_emu *emu;
static libusb_context *ctx;
static int dev_apdu, dev_t0, dev_t1, dev_hot, dev_x;

/* ---- helpers -------------------------------------------------------------------------------- */

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

static void tohex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02X", p[i]);
	out[2 * n] = '\0';
}

static void expect_bytes(const uint8_t *got, size_t n, const char *want_hex, int line)
{
	uint8_t w[1024];
	size_t wn = hex(want_hex, w, sizeof(w));
	char g[2100], e[2100];

	tohex(got, n, g);
	tohex(w, wn, e);
	if (n != wn || memcmp(got, w, n) != 0)
		fail_msg("line %d:\n  got  %s\n  want %s", line, g, e);
}
#define EXPECT(got, n, want) expect_bytes((got), (n), (want), __LINE__)

struct rd {
	libusb_device_handle *h;
	uint8_t seq;
	int index;
};

static libusb_device *find_dev(int index)
{
	char node[64];
	unsigned bus = 0, devnum = 0;
	libusb_device **list, *found = NULL;
	ssize_t n, i;

	ccid_emu_devnode(emu, index, node, sizeof(node));
	if (sscanf(node, "/dev/bus/usb/%u/%u", &bus, &devnum) != 2)
		return NULL;
	n = libusb_get_device_list(ctx, &list);
	for (i = 0; i < n; i++) {
		if (libusb_get_bus_number(list[i]) == bus &&
		    libusb_get_device_address(list[i]) == devnum) {
			found = libusb_ref_device(list[i]);
			break;
		}
	}
	libusb_free_device_list(list, 1);
	return found;
}

static void rd_open(struct rd *r, int index)
{
	libusb_device *d = NULL;
	int i;

	for (i = 0; i < 100 && d == NULL; i++) {
		d = find_dev(index);
		if (d == NULL) {
			struct timeval tv = { 0, 20000 };

			libusb_handle_events_timeout_completed(ctx, &tv, NULL);
		}
	}
	assert_non_null(d);
	memset(r, 0, sizeof(*r));
	r->index = index;
	assert_int_equal(libusb_open(d, &r->h), 0);
	libusb_unref_device(d);
	assert_int_equal(libusb_claim_interface(r->h, 0), 0);
}

static void rd_close(struct rd *r)
{
	if (r->h) {
		libusb_release_interface(r->h, 0);
		libusb_close(r->h);
		r->h = NULL;
	}
}

static int rd_send(struct rd *r, uint8_t type, uint8_t slot, uint8_t b7, uint8_t b8, uint8_t b9,
		   const uint8_t *data, size_t n)
{
	uint8_t m[10 + 1024];
	int done = 0, rc;

	m[0] = type;
	m[1] = (uint8_t)n;
	m[2] = (uint8_t)(n >> 8);
	m[3] = m[4] = 0;
	m[5] = slot;
	m[6] = r->seq++;
	m[7] = b7;
	m[8] = b8;
	m[9] = b9;
	if (n)
		memcpy(m + 10, data, n);
	rc = libusb_bulk_transfer(r->h, 0x01, m, (int)(10 + n), &done, TMO);
	if (rc == 0 && done != (int)(10 + n))
		return LIBUSB_ERROR_IO;
	return rc;
}

static int rd_recv(struct rd *r, uint8_t *buf, size_t cap, int timeout)
{
	int done = 0, rc = libusb_bulk_transfer(r->h, 0x82, buf, (int)cap, &done, (unsigned)timeout);

	return rc < 0 ? rc : done;
}

/* One command and its reply (time-extension replies skipped and counted). */
static int rd_cmd(struct rd *r, uint8_t type, uint8_t slot, uint8_t b7, const uint8_t *data,
		  size_t n, uint8_t *reply, size_t cap, int *time_ext)
{
	int rc = rd_send(r, type, slot, b7, 0, 0, data, n);

	if (rc < 0)
		return rc;
	for (;;) {
		rc = rd_recv(r, reply, cap, TMO);
		if (rc < 0)
			return rc;
		if (rc >= 10 && (reply[7] & 0xC0) == 0x80) {
			if (time_ext)
				(*time_ext)++;
			continue;
		}
		return rc;
	}
}

static size_t power_on(struct rd *r, uint8_t slot, uint8_t *atr)
{
	uint8_t m[64];
	int n = rd_cmd(r, 0x62, slot, 0, NULL, 0, m, sizeof(m), NULL);

	assert_true(n >= 10);
	assert_int_equal(m[0], 0x80);
	assert_int_equal(m[7], 0x00);
	memcpy(atr, m + 10, (size_t)n - 10);
	return (size_t)n - 10;
}

/* An XfrBlock; returns the abData length (answer in out) or -1 for a failed status (bError in
 * *err). */
static int xfr(struct rd *r, uint8_t slot, const char *cmd_hex, uint8_t *out, uint8_t *err)
{
	uint8_t c[600], m[600];
	size_t cn = hex(cmd_hex, c, sizeof(c));
	int n = rd_cmd(r, 0x6F, slot, 0, c, cn, m, sizeof(m), NULL);

	assert_true(n >= 10);
	assert_int_equal(m[0], 0x80);
	if ((m[7] & 0xC0) == 0x40) {
		if (err)
			*err = m[8];
		return -1;
	}
	memcpy(out, m + 10, (size_t)n - 10);
	return n - 10;
}

static json_t *status_dev(int index)
{
	char *s = ccid_emu_status(emu);
	json_error_t je;
	json_t *root = json_loads(s, 0, &je), *d;

	free(s);
	assert_non_null(root);
	d = json_incref(json_array_get(json_object_get(root, "devices"), (size_t)index));
	json_decref(root);
	return d;
}

static long slot_stat(int index, int slot, const char *key)
{
	json_t *d = status_dev(index);
	json_t *st = json_object_get(json_array_get(json_object_get(d, "slots"), (size_t)slot), "stats");
	json_t *v = json_object_get(st, key);
	long out;

	if (v == NULL)
		v = json_object_get(json_object_get(st, "faults_fired"), key);
	assert_non_null(v);
	out = (long)json_integer_value(v);
	json_decref(d);
	return out;
}

/* ---- descriptors ---------------------------------------------------------------------------- */

static void test_descriptors(void **state)
{
	libusb_device *d = find_dev(dev_t1);
	struct libusb_device_descriptor dd;
	struct libusb_config_descriptor *cfg;
	const struct libusb_interface_descriptor *ifd;
	libusb_device_handle *h;
	unsigned char s[128];

	(void)state;
	assert_non_null(d);
	assert_int_equal(libusb_get_device_descriptor(d, &dd), 0);
	assert_int_equal(dd.idVendor, 0x1209);
	assert_int_equal(dd.idProduct, 0x0001);
	assert_int_equal(libusb_get_active_config_descriptor(d, &cfg), 0);
	assert_int_equal(cfg->bNumInterfaces, 1);
	ifd = &cfg->interface[0].altsetting[0];
	assert_int_equal(ifd->bInterfaceClass, 0x0B);
	assert_int_equal(ifd->bNumEndpoints, 3);
	assert_int_equal(ifd->endpoint[0].bEndpointAddress, 0x01);
	assert_int_equal(ifd->endpoint[1].bEndpointAddress, 0x82);
	assert_int_equal(ifd->endpoint[2].bEndpointAddress, 0x83);
	assert_int_equal(ifd->endpoint[2].bmAttributes & 3, LIBUSB_TRANSFER_TYPE_INTERRUPT);
	assert_int_equal(ifd->extra_length, 54);
	/* CCID Rev 1.1 §5.1, written out: 36 21, bcdCCID 0110, bMaxSlotIndex 1 (two slots),
	 * bVoltageSupport 07, dwProtocols 2 (T=1), clocks 4000 kHz, bNumClockSupported 0, data
	 * rates 10752 / 344086, 0, dwMaxIFSD 254, dwSynchProtocols 0, dwMechanical 0, dwFeatures
	 * 000100BA (TPDU level), dwMaxCCIDMessageLength 271, FF FF, wLcdLayout 0, bPINSupport 0,
	 * bMaxCCIDBusySlots 1. */
	EXPECT(ifd->extra, (size_t)ifd->extra_length,
	       "3621 1001 01 07 02000000 A00F0000 A00F0000 00 002A0000 16400500 00 FE000000"
	       "00000000 00000000 BA000100 0F010000 FF FF 0000 00 01");
	libusb_free_config_descriptor(cfg);
	assert_int_equal(libusb_open(d, &h), 0);
	assert_true(libusb_get_string_descriptor_ascii(h, dd.iProduct, s, sizeof(s)) > 0);
	assert_string_equal((char *)s, "Emulated CCID t1 (t1)");
	assert_true(libusb_get_string_descriptor_ascii(h, dd.iSerialNumber, s, sizeof(s)) > 0);
	assert_string_equal((char *)s, "EMU-T1");
	libusb_close(h);
	libusb_unref_device(d);
}

/* Extended APDU level, another VID:PID, a vendor interface class (needs an allow-list). */
static void test_xapdu_descriptors(void **state)
{
	libusb_device *d = find_dev(dev_x);
	struct libusb_device_descriptor dd;
	struct libusb_config_descriptor *cfg;
	const struct libusb_interface_descriptor *ifd;
	struct rd r;
	uint8_t atr[64], out[600];
	int n;

	(void)state;
	assert_non_null(d);
	assert_int_equal(libusb_get_device_descriptor(d, &dd), 0);
	assert_int_equal(dd.idVendor, 0x072f);
	assert_int_equal(dd.idProduct, 0xb100);
	assert_int_equal(dd.iSerialNumber, 0);
	assert_int_equal(libusb_get_active_config_descriptor(d, &cfg), 0);
	ifd = &cfg->interface[0].altsetting[0];
	assert_int_equal(ifd->bInterfaceClass, 0xFF);
	/* bMaxSlotIndex 0, dwProtocols 3, dwFeatures 000400FA, dwMaxCCIDMessageLength 65554. */
	EXPECT(ifd->extra, (size_t)ifd->extra_length,
	       "3621 1001 00 07 03000000 A00F0000 A00F0000 00 002A0000 16400500 00 FE000000"
	       "00000000 00000000 FA000400 12000100 FF FF 0000 00 01");
	libusb_free_config_descriptor(cfg);
	libusb_unref_device(d);
	rd_open(&r, dev_x);
	power_on(&r, 0, atr);
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00", out, NULL);
	assert_int_equal(n, 29);
	/* An extended-length APDU reaches the card, which takes short APDUs only. */
	n = xfr(&r, 0, "00B20134000000", out, NULL);
	EXPECT(out, (size_t)n, "6700");
	rd_close(&r);
}

/* ---- APDU level ----------------------------------------------------------------------------- */

static void test_apdu_level(void **state)
{
	struct rd r;
	uint8_t atr[64], out[600], m[64], err = 0;
	int n;

	(void)state;
	rd_open(&r, dev_apdu);
	/* XfrBlock before power-on: the card is inactive. */
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, &err);
	assert_int_equal(n, -1);
	assert_int_equal(err, 0xFE);
	/* The card's own ATR (gen2.json). */
	n = (int)power_on(&r, 0, atr);
	EXPECT(atr, (size_t)n, "3B8E80010081544C92868433010000BF7C7A8D");
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, NULL);
	EXPECT(out, (size_t)n, "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860101 9000");
	/* EF06 record 1, SSN 330102199003071230 (gen2.json), a case-2 APDU with Le 00. */
	n = xfr(&r, 0, "00B2013400", out, NULL);
	EXPECT(out, (size_t)n, "0812 333330313032313939303033303731323330 9000");
	/* A case-4 APDU is fine at APDU level. */
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00", out, NULL);
	assert_int_equal(n, 29);
	/* Slot 1 does not exist: bError 5 (offset of bSlot). */
	n = rd_cmd(&r, 0x65, 1, 0, NULL, 0, m, sizeof(m), NULL);
	assert_int_equal(n, 10);
	assert_int_equal(m[0], 0x81);
	assert_int_equal(m[7], 0x42);
	assert_int_equal(m[8], 0x05);
	/* GetSlotStatus: present and active. */
	n = rd_cmd(&r, 0x65, 0, 0, NULL, 0, m, sizeof(m), NULL);
	assert_int_equal(m[6], (uint8_t)(r.seq - 1));
	m[6] = 0;
	EXPECT(m, (size_t)n, "81 00000000 00 00 00 00 00");
	/* A dwLength that does not match the transfer: bError 1. */
	{
		uint8_t bad[12] = { 0x6F, 5, 0, 0, 0, 0, r.seq++, 0, 0, 0, 0x00, 0x84 };
		int done = 0;

		assert_int_equal(libusb_bulk_transfer(r.h, 0x01, bad, sizeof(bad), &done, TMO), 0);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(n, 10);
		assert_int_equal(m[7], 0x40);
		assert_int_equal(m[8], 0x01);
	}
	/* Unknown message (Escape): command not supported. */
	n = rd_cmd(&r, 0x6B, 0, 0, NULL, 0, m, sizeof(m), NULL);
	assert_int_equal(m[0], 0x83);
	assert_int_equal(m[7], 0x40);
	assert_int_equal(m[8], 0x00);
	/* GetParameters after power-on: T=0 (the ATR offers T=0 first), Fi/Di 11. */
	n = rd_cmd(&r, 0x6C, 0, 0, NULL, 0, m, sizeof(m), NULL);
	m[6] = 0;
	EXPECT(m, (size_t)n, "82 05000000 00 00 00 00 00 1100000A00");
	/* SetParameters to T=1 with 7 bytes. */
	{
		uint8_t p1[7] = { 0x11, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00 };

		n = rd_cmd(&r, 0x61, 0, 1, p1, sizeof(p1), m, sizeof(m), NULL);
		m[6] = 0;
		EXPECT(m, (size_t)n, "82 07000000 00 00 00 00 01 11100045 00FE00");
		/* ... with the wrong length for its protocol: bError 1. */
		n = rd_cmd(&r, 0x61, 0, 1, p1, 5, m, sizeof(m), NULL);
		assert_int_equal(m[7], 0x40);
		assert_int_equal(m[8], 0x01);
	}
	/* IccPowerOff: present, inactive. */
	n = rd_cmd(&r, 0x63, 0, 0, NULL, 0, m, sizeof(m), NULL);
	m[6] = 0;
	EXPECT(m, (size_t)n, "81 00000000 00 00 01 00 00");
	rd_close(&r);
}

/* ---- T=0 TPDU level ------------------------------------------------------------------------- */

static void test_t0_level(void **state)
{
	struct rd r;
	uint8_t atr[64], out[600], err = 0, m[64];
	int n;

	(void)state;
	rd_open(&r, dev_t0);
	n = (int)power_on(&r, 0, atr);
	/* T=0 only: 3B 0E and gen2's 14 historical bytes. */
	EXPECT(atr, (size_t)n, "3B0E 0081544C92868433010000BF7C7A");
	/* SetParameters T=1 on a T=0 reader: bError 7 (bProtocolNum). */
	{
		uint8_t p1[7] = { 0x11, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00 };

		n = rd_cmd(&r, 0x61, 0, 1, p1, sizeof(p1), m, sizeof(m), NULL);
		assert_int_equal(m[7], 0x40);
		assert_int_equal(m[8], 0x07);
	}
	/* Case 3 TPDU: the card keeps the FCI (27 bytes) and answers 61 1B. */
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, NULL);
	EXPECT(out, (size_t)n, "611B");
	/* GET RESPONSE with a longer Le: 6C 1B; with the right one: the FCI. */
	n = xfr(&r, 0, "00C0000020", out, NULL);
	EXPECT(out, (size_t)n, "6C1B");
	n = xfr(&r, 0, "00C000001B", out, NULL);
	EXPECT(out, (size_t)n, "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860101 9000");
	/* Case 2 with P3 00 (256) for a 20-byte record: 6C 14; then exact. */
	n = xfr(&r, 0, "00B2013400", out, NULL);
	EXPECT(out, (size_t)n, "6C14");
	n = xfr(&r, 0, "00B2013414", out, NULL);
	EXPECT(out, (size_t)n, "0812 333330313032313939303033303731323330 9000");
	/* A shorter P3 gets that many bytes. */
	n = xfr(&r, 0, "00B2013402", out, NULL);
	EXPECT(out, (size_t)n, "0812 9000");
	/* A case-4 APDU (with Le) is taken as T=0 takes it: 61xx, not the data. */
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00", out, NULL);
	EXPECT(out, (size_t)n, "611B");
	assert_int_equal(slot_stat(dev_t0, 0, "case4_as_case3"), 1);
	/* Any other command drops the held answer. */
	n = xfr(&r, 0, "00B2013414", out, NULL);
	assert_int_equal(n, 22);
	n = xfr(&r, 0, "00C000001B", out, NULL);
	EXPECT(out, (size_t)n, "6985");
	/* A 4-byte case-1 APDU cannot be a T=0 TPDU: the card stays mute (bError FE). */
	n = xfr(&r, 0, "00A40000", out, &err);
	assert_int_equal(n, -1);
	assert_int_equal(err, 0xFE);
	/* Header announcing more data than sent: mute too. */
	n = xfr(&r, 0, "00A404000F7378", out, &err);
	assert_int_equal(n, -1);
	assert_int_equal(err, 0xFE);
	rd_close(&r);
}

/* ---- T=1 TPDU level: a small test host ------------------------------------------------------ */

struct t1h {
	struct rd *r;
	uint8_t slot;
	uint8_t ns, nr;      /* host's next N(S); N(S) expected from the card */
	uint8_t ifsc;
	int r_sent, wtx_answered, mute_seen, bad_lrc_seen, chained_in;
};

static uint8_t lrc(const uint8_t *p, size_t n)
{
	uint8_t x = 0;

	while (n--)
		x ^= *p++;
	return x;
}

static size_t blk(uint8_t *b, uint8_t pcb, const uint8_t *inf, size_t n)
{
	b[0] = 0;
	b[1] = pcb;
	b[2] = (uint8_t)n;
	if (n)
		memcpy(b + 3, inf, n);
	b[3 + n] = lrc(b, 3 + n);
	return 4 + n;
}

/* Sends one block, returns the card's block (length) or -1 when the reader reported it mute. */
static int t1_xchg(struct t1h *t, const uint8_t *b, size_t n, uint8_t *in)
{
	uint8_t m[600];
	int k = rd_cmd(t->r, 0x6F, t->slot, 0, b, n, m, sizeof(m), NULL);

	assert_true(k >= 10);
	if ((m[7] & 0xC0) == 0x40) {
		assert_int_equal(m[8], 0xFE);
		t->mute_seen++;
		return -1;
	}
	memcpy(in, m + 10, (size_t)k - 10);
	return k - 10;
}

/* A whole APDU over T=1 with chaining and the recovery rules of ISO 7816-3 11.6.3. */
static size_t t1_apdu(struct t1h *t, const uint8_t *apdu, size_t n, uint8_t *resp)
{
	uint8_t out[300], in[300];
	size_t off = 0, rlen = 0, olen;
	int k, tries;
	bool sending = true;

	/* Send the command, chained by IFSC. */
	for (;;) {
		size_t chunk = n - off > t->ifsc ? t->ifsc : n - off;
		bool more = off + chunk < n;

		olen = blk(out, (uint8_t)((t->ns << 6) | (more ? 0x20 : 0)), apdu + off, chunk);
		for (tries = 0;; tries++) {
			assert_true(tries < 6);
			k = t1_xchg(t, out, olen, in);
			if (k < 0 || lrc(in, (size_t)k) != 0) {
				/* Nothing or garbage: R-block asking for what we expect. */
				if (k >= 0)
					t->bad_lrc_seen++;
				olen = blk(out, (uint8_t)(0x80 | (t->nr << 4) | (k < 0 ? 0x02 : 0x01)),
					   NULL, 0);
				t->r_sent++;
				continue;
			}
			break;
		}
		if (more) {
			/* The card acknowledges with R(N(R) = our next N(S)). */
			if ((in[1] & 0xC0) == 0x80 && ((in[1] >> 4) & 1) != t->ns) {
				t->ns ^= 1;
				off += chunk;
				continue;
			}
			if ((in[1] & 0xC0) == 0x80) {
				/* The card asks for the block again. */
				continue;
			}
			fail_msg("unexpected block %02X while chaining", in[1]);
		}
		t->ns ^= 1;
		sending = false;
		break;
	}
	(void)sending;
	/* Receive the answer, possibly chained, handling WTX, bad LRC, mute, wrong N(S). */
	for (tries = 0; tries < 40; tries++) {
		if ((in[1] & 0xC0) == 0xC0 && (in[1] & 0x3F) == 0x03) {
			/* S(WTX request): answer with the same value. */
			olen = blk(out, 0xE3, in + 3, 1);
			t->wtx_answered++;
		} else if ((in[1] & 0x80) == 0 && ((in[1] >> 6) & 1) == t->nr) {
			memcpy(resp + rlen, in + 3, in[2]);
			rlen += in[2];
			t->nr ^= 1;
			if (!(in[1] & 0x20))
				return rlen;
			t->chained_in++;
			olen = blk(out, (uint8_t)(0x80 | (t->nr << 4)), NULL, 0);
		} else if ((in[1] & 0xC0) == 0x80 && ((in[1] >> 4) & 1) == (t->ns ^ 1)) {
			/* The card wants our last I-block again (it never got it). */
			t->ns ^= 1;
			olen = blk(out, (uint8_t)(t->ns << 6), apdu + off, n - off);
			t->ns ^= 1;
		} else {
			/* Wrong N(S) or anything unexpected: R-block for the block we expect. */
			olen = blk(out, (uint8_t)(0x80 | (t->nr << 4) | 0x02), NULL, 0);
			t->r_sent++;
		}
		for (;;) {
			k = t1_xchg(t, out, olen, in);
			if (k >= 0 && lrc(in, (size_t)k) == 0)
				break;
			if (k >= 0)
				t->bad_lrc_seen++;
			olen = blk(out, (uint8_t)(0x80 | (t->nr << 4) | (k < 0 ? 0x02 : 0x01)), NULL, 0);
			t->r_sent++;
		}
	}
	fail_msg("T=1 exchange did not finish");
	return 0;
}

static size_t t1_hex(struct t1h *t, const char *apdu_hex, uint8_t *resp)
{
	uint8_t a[300];
	size_t n = hex(apdu_hex, a, sizeof(a));

	return t1_apdu(t, a, n, resp);
}

#define SEL_SSSE "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"
#define FCI_SM4 "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103 9000"
#define SSN_GEN3 "0812 333330323033313938353131313130303239 9000"

static void t1_start(struct rd *r, struct t1h *t, uint8_t slot)
{
	uint8_t atr[64];
	size_t n;

	memset(t, 0, sizeof(*t));
	t->r = r;
	t->slot = slot;
	t->ifsc = 16;
	n = power_on(r, slot, atr);
	if (slot == 0)
		/* 3B 8E, TD1 81, TD2 31, TA3 IFSC 16, TB3 45, gen3's 14 historical bytes, TCK. */
		EXPECT(atr, n, "3B8E 81 31 10 45 0081544C928684330200013C5A7E 4A");
}

static void test_t1_basic(void **state)
{
	struct rd r;
	struct t1h t;
	uint8_t resp[600], in[64], out[64];
	size_t n;
	int k;

	(void)state;
	rd_open(&r, dev_t1);
	t1_start(&r, &t, 0);
	/* SELECT SSSE is 20 bytes, IFSC 16: sent as a chain of two. */
	n = t1_hex(&t, SEL_SSSE, resp);
	EXPECT(resp, n, FCI_SM4);
	assert_int_equal(slot_stat(dev_t1, 0, "t1_chain_in"), 1);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	/* The name record is 32 bytes + SW: more than IFSD 32, so the card chains its answer. */
	n = t1_hex(&t, "00B2023400", resp);
	assert_int_equal(n, 34);
	assert_int_equal(resp[0], 0x09);
	assert_int_equal(resp[1], 0x1E);
	assert_int_equal(t.chained_in, 1);
	/* S(IFS request 254): S(IFS response 254); the record then comes unchained. */
	k = t1_xchg(&t, out, blk(out, 0xC1, (const uint8_t *)"\xFE", 1), in);
	EXPECT(in, (size_t)k, "00 E1 01 FE 1E");
	n = t1_hex(&t, "00B2023400", resp);
	assert_int_equal(n, 34);
	assert_int_equal(t.chained_in, 1);
	/* A block with a bad LRC from the host: R-block with the EDC error bit. */
	n = blk(out, (uint8_t)(t.ns << 6), (const uint8_t *)"\x00\xB2\x01\x34\x00", 5);
	out[n - 1] ^= 0xFF;
	k = t1_xchg(&t, out, n, in);
	assert_int_equal(k, 4);
	assert_int_equal(in[1], 0x80 | (t.ns << 4) | 0x01);
	/* S(RESYNCH): both sequence numbers back to 0. */
	k = t1_xchg(&t, out, blk(out, 0xC0, NULL, 0), in);
	EXPECT(in, (size_t)k, "00 E0 00 E0");
	t.ns = t.nr = 0;
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	/* The PSAM in slot 1 answers too (its own T=1 line). */
	{
		struct t1h p;

		t1_start(&r, &p, 1);
		n = t1_hex(&p, "00A4040006D15600000590", resp);
		assert_int_equal(resp[n - 2], 0x90);
	}
	rd_close(&r);
}

static void test_t1_faults(void **state)
{
	struct rd r;
	struct t1h t;
	uint8_t resp[600];
	char err[128];
	size_t n;

	(void)state;
	rd_open(&r, dev_t1);
	t1_start(&r, &t, 0);
	n = t1_hex(&t, SEL_SSSE, resp);
	EXPECT(resp, n, FCI_SM4);

	/* A bad LRC on the card's answer: R-block (EDC) and the card sends it again. */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "lrc", 1, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	assert_int_equal(t.bad_lrc_seen, 1);
	assert_int_equal(slot_stat(dev_t1, 0, "lrc"), 1);

	/* The card's answer lost: the reader says mute, the host R-block recovers it. */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "lost", 1, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	assert_int_equal(t.mute_seen, 1);
	assert_true(slot_stat(dev_t1, 0, "t1_resent") >= 1);

	/* The host's block lost: the card answers R(N(R)) and gets the I-block again. */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "lostcmd", 1, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	assert_int_equal(t.mute_seen, 2);

	/* Two WTX requests before the answer. */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "wtx", 2, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);
	assert_int_equal(t.wtx_answered, 2);
	assert_int_equal(slot_stat(dev_t1, 0, "t1_wtx_in"), 2);

	/* A wrong N(S) once: the host's R-block gets the right block. */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "ns", 1, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2013400", resp);
	EXPECT(resp, n, SSN_GEN3);

	/* Faults during a chained answer (name record, IFSD 32). */
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "lrc", 2, 0, err, sizeof(err)), 0);
	n = t1_hex(&t, "00B2023400", resp);
	assert_int_equal(n, 34);

	/* T=1 faults are refused on other levels. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "lrc", 1, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(ccid_emu_fault(emu, dev_t1, "nonsense", 1, 0, err, sizeof(err)), -EINVAL);
	rd_close(&r);
}

/* ---- CCID-level faults ---------------------------------------------------------------------- */

static void test_ccid_faults(void **state)
{
	struct rd r;
	uint8_t atr[64], m[600], out[600];
	char err[128];
	int n, te = 0;

	(void)state;
	rd_open(&r, dev_apdu);
	power_on(&r, 0, atr);
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, NULL);
	assert_int_equal(n, 29);

	/* Two time extensions (bStatus 80, bError 01 = multiplier) before the answer. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "timeext", 2, 0, err, sizeof(err)), 0);
	n = rd_cmd(&r, 0x6F, 0, 0, (const uint8_t *)"\x00\xB2\x01\x34\x00", 5, m, sizeof(m), &te);
	assert_int_equal(te, 2);
	EXPECT(m + 10, (size_t)n - 10, "0812 333330313032313939303033303731323330 9000");

	/* A wrong bSeq in the reply. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "seq", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x65, 0, 0, 0, 0, NULL, 0), 0);
	n = rd_recv(&r, m, sizeof(m), TMO);
	assert_int_equal(n, 10);
	assert_int_equal(m[6], (uint8_t)(r.seq));           /* sent seq + 1 */

	/* A truncated reply: fewer bytes than dwLength says. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "trunc", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x6F, 0, 0, 0, 0, (const uint8_t *)"\x00\xB2\x01\x34\x00", 5), 0);
	n = rd_recv(&r, m, sizeof(m), TMO);
	assert_int_equal(m[1], 22);
	assert_int_equal(n, 10 + 11);

	/* An oversize answer: 300 bytes of data. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "oversize", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x6F, 0, 0, 0, 0, (const uint8_t *)"\x00\xB2\x01\x34\x00", 5), 0);
	n = rd_recv(&r, m, sizeof(m), TMO);
	assert_int_equal(n, 310);
	assert_int_equal(m[1] | m[2] << 8, 300);
	/* ... and into a too small buffer (not a multiple of the packet size): overflow. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "oversize", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x6F, 0, 0, 0, 0, (const uint8_t *)"\x00\xB2\x01\x34\x00", 5), 0);
	n = rd_recv(&r, m, 271, TMO);
	assert_int_equal(n, LIBUSB_ERROR_OVERFLOW);

	/* A stalled bulk IN: LIBUSB_ERROR_PIPE; after CLEAR_HALT the reply is still there. */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "stall", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x65, 0, 0, 0, 0, NULL, 0), 0);
	n = rd_recv(&r, m, sizeof(m), TMO);
	assert_int_equal(n, LIBUSB_ERROR_PIPE);
	assert_int_equal(libusb_clear_halt(r.h, 0x82), 0);
	n = rd_recv(&r, m, sizeof(m), TMO);
	assert_int_equal(n, 10);
	assert_int_equal(m[0], 0x81);

	/* ABORT (CCID §5.3.1) of a command held up by time extensions: the class request, then
	 * PC_to_RDR_Abort; the command ends with CMD_ABORTED, the Abort gets its SlotStatus, and
	 * nothing else of the old command follows. */
	{
		uint8_t xseq;

		assert_int_equal(ccid_emu_fault(emu, dev_apdu, "timeext", 20, 0, err, sizeof(err)), 0);
		xseq = r.seq;
		assert_int_equal(rd_send(&r, 0x6F, 0, 0, 0, 0,
					 (const uint8_t *)"\x00\xB2\x01\x34\x00", 5), 0);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(m[7], 0x80);
		assert_int_equal(libusb_control_transfer(r.h, 0x21, 0x01, (uint16_t)(r.seq << 8 | 0),
							 0, NULL, 0, TMO), 0);
		assert_int_equal(rd_send(&r, 0x72, 0, 0, 0, 0, NULL, 0), 0);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(n, 10);
		assert_int_equal(m[0], 0x80);
		assert_int_equal(m[6], xseq);
		assert_int_equal(m[7], 0x40);
		assert_int_equal(m[8], 0xFF);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(n, 10);
		assert_int_equal(m[0], 0x81);
		assert_int_equal(m[6], (uint8_t)(xseq + 1));
		assert_int_equal(m[7], 0x00);
		n = rd_recv(&r, m, sizeof(m), 300);
		assert_int_equal(n, LIBUSB_ERROR_TIMEOUT);
	}

	/* Mute: the reader answers nothing until cleared (libusb times out, DISCARDURB path). */
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "mute", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x65, 0, 0, 0, 0, NULL, 0), 0);
	n = rd_recv(&r, m, sizeof(m), 300);
	assert_int_equal(n, LIBUSB_ERROR_TIMEOUT);
	assert_int_equal(ccid_emu_fault(emu, dev_apdu, "clear", 1, 0, err, sizeof(err)), 0);
	n = xfr(&r, 0, "00B2013400", out, NULL);
	EXPECT(out, (size_t)n, "0812 333330313032313939303033303731323330 9000");
	rd_close(&r);
}

/* ---- slot changes and hotplug --------------------------------------------------------------- */

static int read_intr(struct rd *r, uint8_t *buf, int timeout)
{
	int done = 0, rc = libusb_interrupt_transfer(r->h, 0x83, buf, 8, &done, (unsigned)timeout);

	return rc < 0 ? rc : done;
}

static void test_slot_change(void **state)
{
	struct rd r;
	uint8_t b[8], atr[64], out[64], err = 0;
	int n;

	(void)state;
	rd_open(&r, dev_hot);
	/* Whatever was pending since the plug (card present, changed) is read first. */
	read_intr(&r, b, 100);
	power_on(&r, 0, atr);
	assert_int_equal(ccid_emu_remove(emu, dev_hot, 0), 0);
	n = read_intr(&r, b, TMO);
	EXPECT(b, (size_t)n, "50 02");                      /* slot 0: absent, changed */
	n = xfr(&r, 0, "00B2013400", out, &err);
	assert_int_equal(n, -1);
	assert_int_equal(err, 0xFE);
	assert_int_equal(ccid_emu_insert(emu, dev_hot, 0), 0);
	n = read_intr(&r, b, TMO);
	EXPECT(b, (size_t)n, "50 03");                      /* present, changed */
	/* A new insertion is inactive until powered. */
	n = xfr(&r, 0, "00B2013400", out, &err);
	assert_int_equal(n, -1);
	power_on(&r, 0, atr);
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, NULL);
	assert_int_equal(n, 29);
	assert_int_equal(ccid_emu_insert(emu, dev_hot, 0), -EALREADY);

	/* The card pulled while the reader works on a command (time extensions running): the
	 * answer becomes "no card, mute". */
	{
		char err2[128];
		uint8_t m[64];

		assert_int_equal(ccid_emu_fault(emu, dev_hot, "timeext", 5, 0, err2, sizeof(err2)), 0);
		assert_int_equal(rd_send(&r, 0x6F, 0, 0, 0, 0, (const uint8_t *)"\x00\xB2\x01\x34\x00",
					 5), 0);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(n, 10);
		assert_int_equal(m[7], 0x80);                   /* a time extension */
		assert_int_equal(ccid_emu_remove(emu, dev_hot, 0), 0);
		n = rd_recv(&r, m, sizeof(m), TMO);
		assert_int_equal(n, 10);
		assert_int_equal(m[0], 0x80);
		assert_int_equal(m[6], (uint8_t)(r.seq - 1));
		assert_int_equal(m[7], 0x42);
		assert_int_equal(m[8], 0xFE);
		n = read_intr(&r, b, TMO);
		EXPECT(b, (size_t)n, "50 02");
		/* Nothing else follows. */
		n = rd_recv(&r, m, sizeof(m), 300);
		assert_int_equal(n, LIBUSB_ERROR_TIMEOUT);
		assert_int_equal(ccid_emu_insert(emu, dev_hot, 0), 0);
		n = read_intr(&r, b, TMO);
		EXPECT(b, (size_t)n, "50 03");
	}
	rd_close(&r);
}

static int hp_arrived, hp_left;

static int LIBUSB_CALL on_hotplug(libusb_context *c, libusb_device *d, libusb_hotplug_event ev,
				  void *user)
{
	(void)c;
	(void)d;
	(void)user;
	if (ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED)
		hp_arrived++;
	else
		hp_left++;
	return 0;
}

static void wait_events(int *counter, int want)
{
	int i;

	for (i = 0; i < 200 && *counter < want; i++) {
		struct timeval tv = { 0, 20000 };

		libusb_handle_events_timeout_completed(ctx, &tv, NULL);
	}
	assert_int_equal(*counter, want);
}

static void LIBUSB_CALL on_done(struct libusb_transfer *tr)
{
	*(int *)tr->user_data = (int)tr->status;
}

static void test_unplug_pending(void **state)
{
	struct rd r;
	uint8_t atr[64], m[64], out[64];
	libusb_hotplug_callback_handle cb;
	struct libusb_transfer *tr;
	char err[128], node1[64], node2[64];
	int n, done_status = -1;

	(void)state;
	assert_int_equal(libusb_hotplug_register_callback(
				 ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
				 0, 0x1209, 0x0001, LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, NULL, &cb), 0);
	rd_open(&r, dev_hot);
	power_on(&r, 0, atr);
	ccid_emu_devnode(emu, dev_hot, node1, sizeof(node1));
	/* A transfer pending in a mute reader when the reader goes: it completes NO_DEVICE. */
	assert_int_equal(ccid_emu_fault(emu, dev_hot, "mute", 1, 0, err, sizeof(err)), 0);
	assert_int_equal(rd_send(&r, 0x65, 0, 0, 0, 0, NULL, 0), 0);
	tr = libusb_alloc_transfer(0);
	libusb_fill_bulk_transfer(tr, r.h, 0x82, m, sizeof(m), on_done, &done_status, 5000);
	assert_int_equal(libusb_submit_transfer(tr), 0);
	{
		struct timeval tv = { 0, 100000 };

		libusb_handle_events_timeout_completed(ctx, &tv, NULL);
	}
	assert_int_equal(done_status, -1);
	assert_int_equal(ccid_emu_unplug(emu, dev_hot), 0);
	wait_events(&done_status, LIBUSB_TRANSFER_NO_DEVICE);
	libusb_free_transfer(tr);
	/* Everything after the unplug: no device. */
	assert_int_equal(rd_send(&r, 0x65, 0, 0, 0, 0, NULL, 0), LIBUSB_ERROR_NO_DEVICE);
	wait_events(&hp_left, 1);
	rd_close(&r);
	assert_int_equal(ccid_emu_unplug(emu, dev_hot), -EALREADY);
	assert_int_equal(ccid_emu_fault(emu, dev_hot, "clear", 1, 0, err, sizeof(err)), 0);
	/* Replug: same port, a new device number, found again and working. */
	assert_int_equal(ccid_emu_plug(emu, dev_hot), 0);
	wait_events(&hp_arrived, 1);
	ccid_emu_devnode(emu, dev_hot, node2, sizeof(node2));
	assert_string_not_equal(node1, node2);
	rd_open(&r, dev_hot);
	{
		libusb_device *d = libusb_get_device(r.h);
		uint8_t ports[8];

		assert_int_equal(libusb_get_port_numbers(d, ports, 8), 1);
		assert_int_equal(ports[0], 4);
	}
	power_on(&r, 0, atr);
	n = xfr(&r, 0, "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", out, NULL);
	assert_int_equal(n, 29);
	n = xfr(&r, 0, "00B2013400", out, NULL);
	EXPECT(out, (size_t)n, "0812 333330313032313939303033303731323330 9000");
	rd_close(&r);
	libusb_hotplug_deregister_callback(ctx, cb);
}

static void test_parse(void **state)
{
	struct ccid_dev_cfg c;
	char err[256];

	(void)state;
	assert_int_equal(ccid_emu_parse_device("mode=t1,slots=card:gen3+psam:gen3:absent,ifsc=20,"
					       "serial=X1,vid=072f,pid=b100", "/p", &c, err,
					       sizeof(err)), 0);
	assert_int_equal(c.level, ICC_LEVEL_T1);
	assert_int_equal(c.nslots, 2);
	assert_string_equal(c.slot[0].profile, "/p/gen3.json");
	assert_int_equal(c.slot[1].role, SIM_ROLE_PSAM);
	assert_true(c.slot[1].absent);
	assert_int_equal(c.ifsc, 20);
	assert_int_equal(c.vid, 0x072f);
	assert_int_equal(c.pid, 0xb100);
	assert_string_equal(c.serial, "X1");
	assert_int_equal(ccid_emu_parse_device("mode=t2,slots=card:gen2", "/p", &c, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(ccid_emu_parse_device("mode=t1", "/p", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(ccid_emu_parse_device("slots=reader:gen2", "/p", &c, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(ccid_emu_parse_device("slots=card:gen2,ifsc=255", "/p", &c, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(ccid_emu_parse_device("slots=card:gen2,bogus=1", "/p", &c, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(ccid_emu_parse_device("slots=card:/x/y.json", "/p", &c, err, sizeof(err)), 0);
	assert_string_equal(c.slot[0].profile, "/x/y.json");
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int add(const char *spec)
{
	struct ccid_dev_cfg c;
	char err[512];
	int r;

	if (ccid_emu_parse_device(spec, CCID_EMU_PROFILES_DIR, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", spec, err);
		return -1;
	}
	r = ccid_emu_add(emu, &c, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "%s: %s\n", spec, err);
	return r;
}

static int group_setup(void **state)
{
	char err[256];

	(void)state;
	emu = ccid_emu_new(getenv("CCID_EMU_VERBOSE") != NULL, err, sizeof(err));
	if (emu == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	dev_apdu = add("name=apdu,mode=apdu,slots=card:gen2,serial=EMU-APDU");
	dev_t0 = add("name=t0,mode=t0,slots=card:gen2");
	dev_t1 = add("name=t1,mode=t1,slots=card:gen3+psam:gen3,serial=EMU-T1,ifsc=16");
	dev_hot = add("name=hot,mode=apdu,slots=card:gen2,port=4");
	dev_x = add("name=x,mode=xapdu,slots=card:gen2,vid=072f,pid=b100,class=ff,product=Other");
	if (dev_apdu < 0 || dev_t0 < 0 || dev_t1 < 0 || dev_hot < 0 || dev_x < 0)
		return -1;
	/* The testbed must exist before libusb_init (libusb checks /dev/bus/usb then). */
	return libusb_init(&ctx) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	libusb_exit(ctx);
	ccid_emu_free(emu);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_xapdu_descriptors),
		cmocka_unit_test(test_apdu_level),
		cmocka_unit_test(test_t0_level),
		cmocka_unit_test(test_t1_basic),
		cmocka_unit_test(test_t1_faults),
		cmocka_unit_test(test_ccid_faults),
		cmocka_unit_test(test_slot_change),
		cmocka_unit_test(test_unplug_pending),
	};
	const char *pre = getenv("LD_PRELOAD");

	(void)argc;
	if (pre == NULL || strstr(pre, PRELOAD) == NULL) {
		/* libusb in this process must see the testbed: run under the umockdev preload. */
		char buf[1024];
		const char *asan = getenv("ASAN_OPTIONS");

		snprintf(buf, sizeof(buf), "%s%s%s", pre ? pre : "", pre && *pre ? ":" : "", PRELOAD);
		setenv("LD_PRELOAD", buf, 1);
		snprintf(buf, sizeof(buf), "%s%sverify_asan_link_order=0", asan ? asan : "",
			 asan && *asan ? ":" : "");
		setenv("ASAN_OPTIONS", buf, 1);
		execv("/proc/self/exe", argv);
		perror("re-exec under the umockdev preload");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
