/*
 * This file contains the emulated USB CCID reader: umockdev device descriptions and hotplug, the
 * usbfs ioctl handler (URB submit / reap / discard, the busy-poll mitigation), the device side of
 * USB CCID Rev 1.1 (descriptors, PC_to_RDR messages, RDR_to_PC replies, NotifySlotChange) over the
 * card lines of icc.c, and the CCID-level faults. Handlers run on umockdev's worker thread, control
 * calls on the caller's, delayed replies on our timer thread; one mutex guards all state.
 */
#include "ccid_emu.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <umockdev.h>

#define EP_OUT 0x01
#define EP_IN 0x82
#define EP_INT 0x83
#define BUSNUM 1
#define CCID_HDR 10
#define DEFAULT_MAX_MSG 271           /* 10 + 261: a short APDU or a T=1 block of IFS 254 */
#define XAPDU_MAX_MSG 65554           /* 10 + 65544: an extended APDU */
#define USB_SPEED_FULL_VALUE 2        /* enum usb_device_speed: USB_SPEED_FULL */

/* CCID bError values (CCID Rev 1.1 §6.2.6). */
#define ERR_CMD_NOT_SUPPORTED 0x00
#define ERR_BAD_LENGTH 0x01           /* offset of dwLength */
#define ERR_BAD_SLOT 0x05             /* offset of bSlot */
#define ERR_BAD_POWERSELECT 0x07      /* offset of bPowerSelect / bProtocolNum */
#define ERR_BAD_LEVEL 0x08            /* offset of wLevelParameter */
#define ERR_ICC_MUTE 0xFE
#define ERR_CMD_SLOT_BUSY 0xE0
#define ERR_CMD_ABORTED 0xFF

enum ccid_fault {
	F_TIMEEXT = 0, F_SEQ, F_TRUNC, F_OVERSIZE, F_STALL, F_MUTE, F_COUNT
};
static const char *const fault_names[F_COUNT] = {
	"timeext", "seq", "trunc", "oversize", "stall", "mute"
};
static const char *const icc_fault_names[ICC_FAULT_COUNT] = {
	"lrc", "lost", "lostcmd", "wtx", "ns"
};
static const char *const level_names[] = { "apdu", "xapdu", "t0", "t1" };

struct urb {
	struct urb *next;
	UMockdevIoctlData *data;      /* the struct usbdevfs_urb (ref) */
	UMockdevIoctlData *buf;       /* its buffer (ref), NULL for a zero-length transfer */
	unsigned long addr;           /* the URB's address in the client */
};

struct urbq {
	struct urb *head, *tail;
};

struct msg {
	struct msg *next;
	int64_t ready_at;             /* monotonic µs */
	size_t len;
	uint8_t data[];
};

struct plug;

struct conn {
	struct conn *next;
	struct plug *plug;
	UMockdevIoctlClient *client;  /* ref */
	struct urbq bulk_in, intr_in, done;
	UMockdevIoctlClient *reap;    /* a parked REAPURBNDELAY (ref), or NULL */
	UMockdevIoctlData *reap_arg;  /* its argument, resolved (ref) */
	int64_t reap_deadline;
	int empty_reaps;
	gulong notify_id;
};

struct ccid_dev;

/* One plugged-in period of a device: its own ioctl handler, so that old fds stay dead. */
struct plug {
	struct plug *next;            /* all plugs ever made (freed with the emulator) */
	struct ccid_dev *dev;
	UMockdevIoctlBase *handler;
	bool gone;
	struct conn *conns;
};

struct slot {
	struct sim_profile *prof;
	struct sim_token *tok;
	struct icc icc;
	bool present, powered, changed;
	uint8_t proto;                /* current protocol (0: T=0, 1: T=1) */
	uint8_t params[7];
};

struct dev_stats {
	unsigned long msgs_in, replies, time_ext, busy, swallowed, bad_len, notify, stalls, plugs;
	unsigned long urbs_shutdown, discards, aborted, class_aborts;
};

struct ccid_dev {
	struct ccid_emu *emu;
	int index;
	struct ccid_dev_cfg cfg;
	uint8_t desc[18 + 93];        /* device + configuration descriptors */
	size_t desc_len;
	uint32_t max_msg;
	int devnum;
	char syspath[128], ifpath[160], devnode[64];
	struct plug *plug;            /* current, NULL while unplugged */
	struct slot slot[CCID_EMU_SLOTS_MAX];
	struct msg *replies;          /* bulk IN queue */
	size_t reply_off;             /* bytes of the head already delivered */
	bool int_pending;             /* a NotifySlotChange is due */
	int fault[F_COUNT];
	struct dev_stats st;
};

struct ccid_emu {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t timer;
	bool timer_started, stop, verbose, closing;
	UMockdevTestbed *tb;
	char root[CCID_EMU_PATH_MAX];
	struct ccid_dev *dev[CCID_EMU_DEVICES_MAX];
	int ndev;
	int next_devnum;
	int reap_wait_ms;
	struct plug *plugs;
};

static bool flush_slot(struct ccid_dev *d, uint8_t slot, uint8_t status, uint8_t error,
		       bool count_removal);
static uint8_t icc_status_of(struct ccid_dev *d, unsigned slot);

/* Completions are collected under the lock and made after it is released. */
struct done_item {
	UMockdevIoctlClient *client;  /* ref */
	long res;
	int err;
};
struct done_list {
	struct done_item v[64];
	size_t n;
};

static void done_add(struct done_list *d, UMockdevIoctlClient *client, long res, int err)
{
	if (d->n == sizeof(d->v) / sizeof(d->v[0])) {
		/* Cannot happen with the few fds a test opens; complete anyway (no lock re-entry). */
		umockdev_ioctl_client_complete(client, res, err);
		return;
	}
	d->v[d->n].client = g_object_ref(client);
	d->v[d->n].res = res;
	d->v[d->n].err = err;
	d->n++;
}

static void done_flush(struct done_list *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		umockdev_ioctl_client_complete(d->v[i].client, d->v[i].res, d->v[i].err);
		g_object_unref(d->v[i].client);
	}
	d->n = 0;
}

static int64_t now_us(void)
{
	return g_get_monotonic_time();
}

static void vlog(struct ccid_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vlog(struct ccid_dev *d, const char *fmt, ...)
{
	va_list ap;

	if (!d->emu->verbose)
		return;
	fprintf(stderr, "ccid-emu[%s]: ", d->cfg.name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void put_le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- configuration -------------------------------------------------------------------------- */

static int parse_uint(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

static int parse_slot(const char *spec, const char *profiles_dir, struct ccid_slot_cfg *s,
		      char *err, size_t errlen)
{
	char buf[CCID_EMU_PATH_MAX], *role, *prof, *flag;
	int n;

	if (copy_text(buf, sizeof(buf), spec) != 0) {
		seterr(err, errlen, "slot spec too long: %s", spec);
		return -EINVAL;
	}
	role = buf;
	prof = strchr(buf, ':');
	if (prof == NULL) {
		seterr(err, errlen, "slot '%s': expected ROLE:PROFILE[:absent]", spec);
		return -EINVAL;
	}
	*prof++ = '\0';
	flag = strchr(prof, ':');
	if (flag != NULL) {
		*flag++ = '\0';
		if (strcmp(flag, "absent") != 0) {
			seterr(err, errlen, "slot '%s': unknown flag '%s'", spec, flag);
			return -EINVAL;
		}
		s->absent = true;
	}
	if (strcmp(role, "card") == 0)
		s->role = SIM_ROLE_CARD;
	else if (strcmp(role, "psam") == 0)
		s->role = SIM_ROLE_PSAM;
	else {
		seterr(err, errlen, "slot '%s': role must be card or psam", spec);
		return -EINVAL;
	}
	if (*prof == '\0' || copy_text(s->profile_name, sizeof(s->profile_name), prof) != 0) {
		seterr(err, errlen, "slot '%s': bad profile name", spec);
		return -EINVAL;
	}
	if (strchr(prof, '/') != NULL || (strlen(prof) > 5 && strcmp(prof + strlen(prof) - 5,
								       ".json") == 0))
		n = snprintf(s->profile, sizeof(s->profile), "%s", prof);
	else
		n = snprintf(s->profile, sizeof(s->profile), "%s/%s.json",
			     profiles_dir ? profiles_dir : ".", prof);
	if (n < 0 || (size_t)n >= sizeof(s->profile)) {
		seterr(err, errlen, "slot '%s': profile path too long", spec);
		return -EINVAL;
	}
	return 0;
}

int ccid_emu_parse_device(const char *spec, const char *profiles_dir, struct ccid_dev_cfg *out,
			  char *err, size_t errlen)
{
	char buf[2048], *save = NULL, *tok;
	struct ccid_dev_cfg c;
	unsigned long v = 0;

	memset(&c, 0, sizeof(c));
	c.level = ICC_LEVEL_APDU;
	c.vid = 0x1209;
	c.pid = 0x0001;
	c.iface_class = 0x0B;
	c.ifsc = 32;
	c.wtx_multiplier = 2;
	c.mute_ms = 150;
	c.timeext_ms = 100;
	snprintf(c.manufacturer, sizeof(c.manufacturer), "sscard tests");
	if (copy_text(buf, sizeof(buf), spec) != 0) {
		seterr(err, errlen, "device spec too long");
		return -EINVAL;
	}
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');
		int bad = 0;

		if (val == NULL) {
			seterr(err, errlen, "device spec: '%s' is not key=value", tok);
			return -EINVAL;
		}
		*val++ = '\0';
		if (strcmp(tok, "mode") == 0) {
			size_t i;

			for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
				if (strcmp(val, level_names[i]) == 0)
					break;
			if (i == sizeof(level_names) / sizeof(level_names[0]))
				bad = 1;
			else
				c.level = (enum icc_level)i;
		} else if (strcmp(tok, "slots") == 0) {
			char sbuf[1024], *s2 = NULL, *st;

			if (copy_text(sbuf, sizeof(sbuf), val) != 0) {
				bad = 1;
			} else {
				c.nslots = 0;
				for (st = strtok_r(sbuf, "+", &s2); st; st = strtok_r(NULL, "+", &s2)) {
					int r;

					if (c.nslots == CCID_EMU_SLOTS_MAX) {
						seterr(err, errlen, "at most %d slots", CCID_EMU_SLOTS_MAX);
						return -EINVAL;
					}
					r = parse_slot(st, profiles_dir, &c.slot[c.nslots], err, errlen);
					if (r < 0)
						return r;
					c.nslots++;
				}
			}
		} else if (strcmp(tok, "name") == 0) {
			bad = copy_text(c.name, sizeof(c.name), val);
		} else if (strcmp(tok, "vid") == 0) {
			bad = parse_uint(val, 16, 0xFFFF, &v);
			c.vid = (uint16_t)v;
		} else if (strcmp(tok, "pid") == 0) {
			bad = parse_uint(val, 16, 0xFFFF, &v);
			c.pid = (uint16_t)v;
		} else if (strcmp(tok, "class") == 0) {
			bad = parse_uint(val, 16, 0xFF, &v);
			c.iface_class = (uint8_t)v;
		} else if (strcmp(tok, "manufacturer") == 0) {
			bad = copy_text(c.manufacturer, sizeof(c.manufacturer), val);
		} else if (strcmp(tok, "product") == 0) {
			bad = copy_text(c.product, sizeof(c.product), val);
		} else if (strcmp(tok, "serial") == 0) {
			bad = copy_text(c.serial, sizeof(c.serial), val);
		} else if (strcmp(tok, "port") == 0) {
			bad = parse_uint(val, 10, 15, &v) || v == 0;
			c.port = (int)v;
		} else if (strcmp(tok, "ifsc") == 0) {
			bad = parse_uint(val, 10, 254, &v) || v == 0;
			c.ifsc = (uint8_t)v;
		} else if (strcmp(tok, "wtx") == 0) {
			bad = parse_uint(val, 10, 255, &v) || v == 0;
			c.wtx_multiplier = (uint8_t)v;
		} else if (strcmp(tok, "maxmsg") == 0) {
			bad = parse_uint(val, 10, 65554, &v) || v < 64;
			c.max_msg = (uint32_t)v;
		} else if (strcmp(tok, "autogr") == 0) {
			bad = parse_uint(val, 10, 1, &v);
			c.auto_get_response = v == 1;
		} else if (strcmp(tok, "mute_ms") == 0) {
			bad = parse_uint(val, 10, 60000, &v);
			c.mute_ms = (int)v;
		} else if (strcmp(tok, "timeext_ms") == 0) {
			bad = parse_uint(val, 10, 60000, &v);
			c.timeext_ms = (int)v;
		} else {
			seterr(err, errlen, "device spec: unknown key '%s'", tok);
			return -EINVAL;
		}
		if (bad) {
			seterr(err, errlen, "device spec: bad value for %s: '%s'", tok, val);
			return -EINVAL;
		}
	}
	if (c.nslots == 0) {
		seterr(err, errlen, "device spec: slots= is required");
		return -EINVAL;
	}
	*out = c;
	return 0;
}

/* ---- descriptors ---------------------------------------------------------------------------- */

static uint32_t dev_features(const struct ccid_dev *d)
{
	/* Automatic: parameters from the ATR (02), voltage (08), clock (10), baud rate (20), PPS
	 * according to the active parameters (80); APDU readers also negotiate themselves (40). */
	switch (d->cfg.level) {
	case ICC_LEVEL_T0:
	case ICC_LEVEL_T1:
		return 0x00010000 | 0xBA;
	case ICC_LEVEL_XAPDU:
		return 0x00040000 | 0xFA;
	case ICC_LEVEL_APDU:
	default:
		return 0x00020000 | 0xFA;
	}
}

static uint32_t dev_protocols(const struct ccid_dev *d)
{
	if (d->cfg.level == ICC_LEVEL_T0)
		return 0x01;
	if (d->cfg.level == ICC_LEVEL_T1)
		return 0x02;
	return 0x03;
}

static void build_descriptors(struct ccid_dev *d)
{
	uint8_t *p = d->desc, *cc;

	/* Device descriptor. */
	p[0] = 18;
	p[1] = 0x01;
	put_le16(p + 2, 0x0200);
	p[4] = p[5] = p[6] = 0;             /* class per interface */
	p[7] = 64;
	put_le16(p + 8, d->cfg.vid);
	put_le16(p + 10, d->cfg.pid);
	put_le16(p + 12, 0x0100);
	p[14] = 1;                          /* iManufacturer */
	p[15] = 2;                          /* iProduct */
	p[16] = d->cfg.serial[0] ? 3 : 0;   /* iSerialNumber */
	p[17] = 1;
	p += 18;
	/* Configuration descriptor. */
	p[0] = 9;
	p[1] = 0x02;
	put_le16(p + 2, 9 + 9 + 54 + 7 * 3);
	p[4] = 1;
	p[5] = 1;
	p[6] = 0;
	p[7] = 0x80;
	p[8] = 50;
	p += 9;
	/* Interface descriptor. */
	p[0] = 9;
	p[1] = 0x04;
	p[2] = 0;
	p[3] = 0;
	p[4] = 3;
	p[5] = d->cfg.iface_class;
	p[6] = 0;
	p[7] = 0;
	p[8] = 0;
	p += 9;
	/* CCID class descriptor (CCID Rev 1.1 §5.1), 54 bytes. */
	cc = p;
	cc[0] = 0x36;
	cc[1] = 0x21;
	put_le16(cc + 2, 0x0110);                   /* bcdCCID */
	cc[4] = (uint8_t)(d->cfg.nslots - 1);       /* bMaxSlotIndex */
	cc[5] = 0x07;                               /* bVoltageSupport: 5 V, 3 V, 1.8 V */
	put_le32(cc + 6, dev_protocols(d));         /* dwProtocols */
	put_le32(cc + 10, 4000);                    /* dwDefaultClock, kHz */
	put_le32(cc + 14, 4000);                    /* dwMaximumClock */
	cc[18] = 0;                                 /* bNumClockSupported */
	put_le32(cc + 19, 10752);                   /* dwDataRate, bps */
	put_le32(cc + 23, 344086);                  /* dwMaxDataRate */
	cc[27] = 0;                                 /* bNumDataRatesSupported */
	put_le32(cc + 28, 254);                     /* dwMaxIFSD */
	put_le32(cc + 32, 0);                       /* dwSynchProtocols */
	put_le32(cc + 36, 0);                       /* dwMechanical */
	put_le32(cc + 40, dev_features(d));         /* dwFeatures */
	put_le32(cc + 44, d->max_msg);              /* dwMaxCCIDMessageLength */
	cc[48] = 0xFF;                              /* bClassGetResponse: echo */
	cc[49] = 0xFF;                              /* bClassEnvelope: echo */
	put_le16(cc + 50, 0);                       /* wLcdLayout */
	cc[52] = 0;                                 /* bPINSupport */
	cc[53] = 1;                                 /* bMaxCCIDBusySlots */
	p += 54;
	/* Endpoints: bulk OUT, bulk IN, interrupt IN. */
	p[0] = 7; p[1] = 0x05; p[2] = EP_OUT; p[3] = 0x02; put_le16(p + 4, 64); p[6] = 0;
	p += 7;
	p[0] = 7; p[1] = 0x05; p[2] = EP_IN; p[3] = 0x02; put_le16(p + 4, 64); p[6] = 0;
	p += 7;
	p[0] = 7; p[1] = 0x05; p[2] = EP_INT; p[3] = 0x03; put_le16(p + 4, 8); p[6] = 16;
	p += 7;
	d->desc_len = (size_t)(p - d->desc);
}

/* A string descriptor (UTF-16LE of ASCII text) into out; returns its length. */
static size_t string_desc(const struct ccid_dev *d, uint8_t index, uint8_t *out, size_t cap)
{
	const char *s;
	size_t i, n;

	if (cap < 4)
		return 0;
	if (index == 0) {
		out[0] = 4;
		out[1] = 0x03;
		out[2] = 0x09;
		out[3] = 0x04;
		return 4;
	}
	s = index == 1 ? d->cfg.manufacturer : index == 2 ? d->cfg.product :
	    index == 3 && d->cfg.serial[0] ? d->cfg.serial : NULL;
	if (s == NULL)
		return 0;
	n = strlen(s);
	if (2 + 2 * n > cap)
		n = (cap - 2) / 2;
	if (2 + 2 * n > 255)
		n = 126;
	out[0] = (uint8_t)(2 + 2 * n);
	out[1] = 0x03;
	for (i = 0; i < n; i++) {
		out[2 + 2 * i] = (uint8_t)s[i];
		out[3 + 2 * i] = 0;
	}
	return 2 + 2 * n;
}

/*
 * Answers a control transfer: setup (8 bytes) and data (the data stage, cap bytes for IN).
 * Returns the bytes of the data stage, or -EPIPE (stall).
 */
static int control(struct ccid_dev *d, const uint8_t *setup, uint8_t *data, size_t cap)
{
	uint8_t rt = setup[0], req = setup[1];
	uint16_t value = (uint16_t)(setup[2] | setup[3] << 8);
	uint16_t length = (uint16_t)(setup[6] | setup[7] << 8);
	uint8_t tmp[512];
	size_t n = 0;

	if (length < cap)
		cap = length;
	if (rt == 0x80 && req == 0x06) {                      /* GET_DESCRIPTOR */
		uint8_t type = (uint8_t)(value >> 8), index = (uint8_t)value;

		if (type == 0x01) {
			memcpy(tmp, d->desc, 18);
			n = 18;
		} else if (type == 0x02 && index == 0) {
			memcpy(tmp, d->desc + 18, d->desc_len - 18);
			n = d->desc_len - 18;
		} else if (type == 0x03) {
			n = string_desc(d, index, tmp, sizeof(tmp));
			if (n == 0)
				return -EPIPE;
		} else {
			return -EPIPE;
		}
	} else if (rt == 0x80 && req == 0x00) {               /* GET_STATUS */
		tmp[0] = tmp[1] = 0;
		n = 2;
	} else if (rt == 0x80 && req == 0x08) {               /* GET_CONFIGURATION */
		tmp[0] = 1;
		n = 1;
	} else if ((rt & 0x7F) == 0x21 && req == 0x01) {      /* CCID ABORT */
		vlog(d, "control: class ABORT slot %u seq %u", (unsigned)(value & 0xFF),
		     (unsigned)(value >> 8));
		d->st.class_aborts++;
		/* CCID §5.3.1: the command in progress ends with CMD_ABORTED. */
		flush_slot(d, (uint8_t)(value & 0xFF), 0x40 | icc_status_of(d, value & 0xFF),
			   ERR_CMD_ABORTED, false);
		n = 0;
	} else if (rt == 0xA1 && req == 0x02) {               /* GET_CLOCK_FREQUENCIES */
		put_le32(tmp, 4000);
		n = 4;
	} else if (rt == 0xA1 && req == 0x03) {               /* GET_DATA_RATES */
		put_le32(tmp, 10752);
		n = 4;
	} else if ((rt & 0x80) == 0) {
		return 0;                                     /* SET_* and friends: accepted */
	} else {
		return -EPIPE;
	}
	if (n > cap)
		n = cap;
	memcpy(data, tmp, n);
	return (int)n;
}

/* ---- URB queues ----------------------------------------------------------------------------- */

static void urbq_push(struct urbq *q, struct urb *u)
{
	u->next = NULL;
	if (q->tail)
		q->tail->next = u;
	else
		q->head = u;
	q->tail = u;
}

static struct urb *urbq_pop(struct urbq *q)
{
	struct urb *u = q->head;

	if (u) {
		q->head = u->next;
		if (q->head == NULL)
			q->tail = NULL;
		u->next = NULL;
	}
	return u;
}

static struct urb *urbq_take(struct urbq *q, unsigned long addr)
{
	struct urb *u, *prev = NULL;

	for (u = q->head; u; prev = u, u = u->next) {
		if (u->addr != addr)
			continue;
		if (prev)
			prev->next = u->next;
		else
			q->head = u->next;
		if (q->tail == u)
			q->tail = prev;
		u->next = NULL;
		return u;
	}
	return NULL;
}

static void urb_free(struct urb *u)
{
	if (u == NULL)
		return;
	if (u->buf)
		g_object_unref(u->buf);
	if (u->data)
		g_object_unref(u->data);
	free(u);
}

static struct usbdevfs_urb *urb_struct(struct urb *u)
{
	return (struct usbdevfs_urb *)u->data->data;
}

/* Finishes a URB (status, actual length) and makes it reapable. */
static void urb_finish(struct conn *c, struct urb *u, int status, int actual)
{
	struct usbdevfs_urb *s = urb_struct(u);

	s->status = status;
	s->actual_length = actual;
	urbq_push(&c->done, u);
}

/* ---- replies -------------------------------------------------------------------------------- */

static int queue_reply(struct ccid_dev *d, const uint8_t *m, size_t len, int64_t ready_at)
{
	struct msg *x = malloc(sizeof(*x) + len), **pp;

	if (x == NULL)
		return -ENOMEM;
	x->next = NULL;
	x->ready_at = ready_at;
	x->len = len;
	memcpy(x->data, m, len);
	for (pp = &d->replies; *pp; pp = &(*pp)->next)
		;
	*pp = x;
	d->st.replies++;
	return 0;
}

static void drop_replies(struct ccid_dev *d)
{
	while (d->replies) {
		struct msg *x = d->replies;

		d->replies = x->next;
		memset(x->data, 0, x->len);
		free(x);
	}
	d->reply_off = 0;
}

static bool dev_busy(const struct ccid_dev *d, int64_t now)
{
	const struct msg *x;

	for (x = d->replies; x; x = x->next)
		if (x->ready_at > now)
			return true;
	return false;
}

static uint8_t icc_status(const struct slot *s)
{
	if (!s->present)
		return 2;
	return s->powered ? 0 : 1;
}

/* A reply header into m; returns CCID_HDR. */
static size_t hdr(uint8_t *m, uint8_t type, uint32_t len, uint8_t slot, uint8_t seq, uint8_t b7,
		  uint8_t b8, uint8_t b9)
{
	m[0] = type;
	put_le32(m + 1, len);
	m[5] = slot;
	m[6] = seq;
	m[7] = b7;
	m[8] = b8;
	m[9] = b9;
	return CCID_HDR;
}

static uint8_t reply_type(uint8_t cmd)
{
	switch (cmd) {
	case 0x62: case 0x6F: case 0x69:
		return 0x80;                        /* RDR_to_PC_DataBlock */
	case 0x61: case 0x6C: case 0x6D:
		return 0x82;                        /* RDR_to_PC_Parameters */
	case 0x6B:
		return 0x83;                        /* RDR_to_PC_Escape */
	case 0x73:
		return 0x84;                        /* RDR_to_PC_DataRateAndClockFrequency */
	default:
		return 0x81;                        /* RDR_to_PC_SlotStatus */
	}
}

/* The first protocol an ATR offers (TD1's low nibble; T=0 when there is no TD1). */
static uint8_t atr_first_protocol(const uint8_t *atr, size_t n)
{
	size_t i = 2;

	if (n < 2 || !(atr[1] & 0x80))
		return 0;
	i += (size_t)(!!(atr[1] & 0x10) + !!(atr[1] & 0x20) + !!(atr[1] & 0x40));
	if (i >= n)
		return 0;
	return (atr[i] & 0x0F) == 1 ? 1 : 0;
}

static void default_params(struct ccid_dev *d, struct slot *s)
{
	uint8_t atr[SIM_ATR_MAX];
	size_t n = icc_atr(&s->icc, atr);

	if (d->cfg.level == ICC_LEVEL_T1)
		s->proto = 1;
	else if (d->cfg.level == ICC_LEVEL_T0)
		s->proto = 0;
	else
		s->proto = atr_first_protocol(atr, n);
	memset(s->params, 0, sizeof(s->params));
	s->params[0] = 0x11;                        /* bmFindexDindex: Fi 372, Di 1 */
	if (s->proto == 1) {
		s->params[1] = 0x10;                /* bmTCCKST1: LRC, direct convention */
		s->params[2] = 0x00;                /* bGuardTimeT1 */
		s->params[3] = 0x45;                /* bmWaitingIntegersT1: BWI 4, CWI 5 */
		s->params[4] = 0x00;                /* bClockStop */
		s->params[5] = d->cfg.ifsc;         /* bIFSC */
		s->params[6] = 0x00;                /* bNadValue */
	} else {
		s->params[1] = 0x00;                /* bmTCCKST0 */
		s->params[2] = 0x00;                /* bGuardTimeT0 */
		s->params[3] = 0x0A;                /* bWaitingIntegerT0 */
		s->params[4] = 0x00;                /* bClockStop */
	}
}

static size_t params_len(const struct slot *s)
{
	return s->proto == 1 ? 7 : 5;
}

/* Queues reply m/len for the command with sequence seq, applying the armed CCID-level faults. */
static void send_reply(struct ccid_dev *d, uint8_t *m, size_t len, bool xfr, int64_t at)
{
	int64_t t = at;

	if (xfr && d->fault[F_TIMEEXT] > 0) {
		int i, k = d->fault[F_TIMEEXT];
		uint8_t te[CCID_HDR];

		d->fault[F_TIMEEXT] = 0;
		for (i = 0; i < k; i++) {
			/* bStatus: time extension requested; bError: the BWT multiplier. */
			hdr(te, 0x80, 0, m[5], m[6], (uint8_t)(0x80 | (m[7] & 0x03)), 0x01, 0x00);
			queue_reply(d, te, CCID_HDR, t);
			d->st.time_ext++;
			t += (int64_t)d->cfg.timeext_ms * 1000;
		}
	}
	if (xfr && d->fault[F_OVERSIZE] > 0) {
		uint8_t big[CCID_HDR + 300];

		d->fault[F_OVERSIZE]--;
		hdr(big, 0x80, 300, m[5], m[6], m[7], m[8], m[9]);
		memset(big + CCID_HDR, 0xA5, 300);
		queue_reply(d, big, sizeof(big), t);
		return;
	}
	if (d->fault[F_SEQ] > 0) {
		d->fault[F_SEQ]--;
		m[6] = (uint8_t)(m[6] + 1);
	}
	if (xfr && d->fault[F_TRUNC] > 0) {
		d->fault[F_TRUNC]--;
		len = len > CCID_HDR ? CCID_HDR + (len - CCID_HDR) / 2 : 7;
	}
	queue_reply(d, m, len, t);
}

static void fail_reply(struct ccid_dev *d, const uint8_t *cmd, uint8_t status, uint8_t error)
{
	uint8_t m[CCID_HDR];

	hdr(m, reply_type(cmd[0]), 0, cmd[5], cmd[6], (uint8_t)(0x40 | status), error, 0);
	send_reply(d, m, CCID_HDR, false, now_us());
}

static void slot_notify(struct ccid_dev *d)
{
	d->int_pending = true;
}

/* Handles one PC_to_RDR message (one bulk OUT transfer). */
static void ccid_command(struct ccid_dev *d, const uint8_t *cmd, size_t len)
{
	static uint8_t m[CCID_HDR + ICC_RESP_MAX + 16];
	uint8_t type, slotno, seq;
	uint32_t dlen;
	struct slot *s;
	int64_t now = now_us();

	d->st.msgs_in++;
	if (len < CCID_HDR) {
		vlog(d, "bulk OUT of %zu bytes: no CCID header, ignored", len);
		d->st.bad_len++;
		return;
	}
	type = cmd[0];
	dlen = get_le32(cmd + 1);
	slotno = cmd[5];
	seq = cmd[6];
	vlog(d, "<- %02X len %u slot %u seq %u [%02X %02X %02X]%s", type, dlen, slotno, seq, cmd[7],
	     cmd[8], cmd[9], len >= 14 && type == 0x6F && d->cfg.level != ICC_LEVEL_T1 ?
	     " (apdu header follows)" : "");
	if (d->fault[F_MUTE] > 0) {
		d->st.swallowed++;
		vlog(d, "mute: no answer");
		return;
	}
	if (type == 0x72 && slotno < d->cfg.nslots) {
		/* PC_to_RDR_Abort is never "busy": it ends whatever the slot was doing. */
		flush_slot(d, slotno, 0x40 | icc_status(&d->slot[slotno]), ERR_CMD_ABORTED, false);
		hdr(m, 0x81, 0, slotno, seq, icc_status(&d->slot[slotno]), 0,
		    d->slot[slotno].powered ? 0x00 : 0x01);
		send_reply(d, m, CCID_HDR, false, now);
		return;
	}
	if (dev_busy(d, now)) {
		d->st.busy++;
		fail_reply(d, cmd, slotno < d->cfg.nslots ? icc_status(&d->slot[slotno]) : 2,
			   ERR_CMD_SLOT_BUSY);
		return;
	}
	if ((size_t)dlen + CCID_HDR != len || len > d->max_msg) {
		d->st.bad_len++;
		fail_reply(d, cmd, slotno < d->cfg.nslots ? icc_status(&d->slot[slotno]) : 2,
			   ERR_BAD_LENGTH);
		return;
	}
	if (slotno >= d->cfg.nslots) {
		fail_reply(d, cmd, 2, ERR_BAD_SLOT);
		return;
	}
	s = &d->slot[slotno];
	switch (type) {
	case 0x62: {                                        /* PC_to_RDR_IccPowerOn */
		uint8_t atr[SIM_ATR_MAX];
		size_t n;

		if (!s->present) {
			fail_reply(d, cmd, 2, ERR_ICC_MUTE);
			return;
		}
		if (cmd[7] > 3) {
			fail_reply(d, cmd, icc_status(s), ERR_BAD_POWERSELECT);
			return;
		}
		icc_power_on(&s->icc);
		s->powered = true;
		default_params(d, s);
		n = icc_atr(&s->icc, atr);
		hdr(m, 0x80, (uint32_t)n, slotno, seq, 0x00, 0x00, 0x00);
		memcpy(m + CCID_HDR, atr, n);
		send_reply(d, m, CCID_HDR + n, false, now);
		return;
	}
	case 0x63:                                          /* PC_to_RDR_IccPowerOff */
		s->powered = false;
		hdr(m, 0x81, 0, slotno, seq, icc_status(s), 0, 0x00);
		send_reply(d, m, CCID_HDR, false, now);
		return;
	case 0x65:                                          /* PC_to_RDR_GetSlotStatus */
	case 0x6E:                                          /* PC_to_RDR_IccClock */
	case 0x72:                                          /* PC_to_RDR_Abort */
		hdr(m, 0x81, 0, slotno, seq, icc_status(s), 0, s->powered ? 0x00 : 0x01);
		send_reply(d, m, CCID_HDR, false, now);
		return;
	case 0x6F: {                                        /* PC_to_RDR_XfrBlock */
		size_t out_len = 0;
		enum icc_outcome o;

		if (!s->present || !s->powered) {
			fail_reply(d, cmd, icc_status(s), ERR_ICC_MUTE);
			return;
		}
		if ((cmd[8] | cmd[9]) != 0) {
			fail_reply(d, cmd, icc_status(s), ERR_BAD_LEVEL);
			return;
		}
		o = icc_xfr(&s->icc, cmd + CCID_HDR, dlen, m + CCID_HDR, ICC_RESP_MAX, &out_len);
		if (o == ICC_MUTE) {
			vlog(d, "slot %u: card mute (answered after %d ms)", slotno, d->cfg.mute_ms);
			hdr(m, 0x80, 0, slotno, seq, 0x40 | icc_status(s), ERR_ICC_MUTE, 0);
			send_reply(d, m, CCID_HDR, true, now + (int64_t)d->cfg.mute_ms * 1000);
			return;
		}
		hdr(m, 0x80, (uint32_t)out_len, slotno, seq, icc_status(s), 0, 0);
		send_reply(d, m, CCID_HDR + out_len, true, now);
		return;
	}
	case 0x6C:                                          /* PC_to_RDR_GetParameters */
	case 0x6D:                                          /* PC_to_RDR_ResetParameters */
	case 0x61: {                                        /* PC_to_RDR_SetParameters */
		if (!s->present) {
			fail_reply(d, cmd, 2, ERR_ICC_MUTE);
			return;
		}
		if (type == 0x6D) {
			default_params(d, s);
		} else if (type == 0x61) {
			uint8_t proto = cmd[7];
			bool ok = proto <= 1 && (d->cfg.level == ICC_LEVEL_T0 ? proto == 0 :
						 d->cfg.level == ICC_LEVEL_T1 ? proto == 1 : true);

			if (!ok) {
				fail_reply(d, cmd, icc_status(s), ERR_BAD_POWERSELECT);
				return;
			}
			if (dlen != (proto ? 7u : 5u)) {
				fail_reply(d, cmd, icc_status(s), ERR_BAD_LENGTH);
				return;
			}
			if (proto == 1 && (cmd[CCID_HDR + 1] & 0x01)) {
				/* CRC was not offered in the ATR (no TC3): refuse it. */
				fail_reply(d, cmd, icc_status(s), CCID_HDR + 1);
				return;
			}
			s->proto = proto;
			memcpy(s->params, cmd + CCID_HDR, dlen);
		}
		hdr(m, 0x82, (uint32_t)params_len(s), slotno, seq, icc_status(s), 0, s->proto);
		memcpy(m + CCID_HDR, s->params, params_len(s));
		send_reply(d, m, CCID_HDR + params_len(s), false, now);
		return;
	}
	case 0x73:                                          /* SetDataRateAndClockFrequency */
		hdr(m, 0x84, 8, slotno, seq, icc_status(s), 0, 0);
		put_le32(m + CCID_HDR, 4000);
		put_le32(m + CCID_HDR + 4, 10752);
		send_reply(d, m, CCID_HDR + 8, false, now);
		return;
	default:                                            /* Escape, T0APDU, Secure, Mechanical... */
		fail_reply(d, cmd, icc_status(s), ERR_CMD_NOT_SUPPORTED);
		return;
	}
}

/*
 * Ends the command a slot is still working on (an answer not yet ready, e.g. behind injected
 * time extensions): its queued replies are dropped and one failed reply (status, error) takes
 * their place. Returns whether there was such a command.
 */
static bool flush_slot(struct ccid_dev *d, uint8_t slot, uint8_t status, uint8_t error,
		       bool count_removal)
{
	struct msg **pp = &d->replies, *x;
	uint8_t last[CCID_HDR];
	bool dropped = false;
	int64_t now = now_us();

	while ((x = *pp) != NULL) {
		if (x->len >= CCID_HDR && x->data[5] == slot && x->ready_at > now &&
		    !(x == d->replies && d->reply_off > 0)) {
			memcpy(last, x->data, CCID_HDR);
			dropped = true;
			*pp = x->next;
			memset(x->data, 0, x->len);
			free(x);
			continue;
		}
		pp = &x->next;
	}
	if (dropped) {
		hdr(last, last[0], 0, slot, last[6], status, error, 0);
		queue_reply(d, last, CCID_HDR, now);
		if (count_removal)
			d->st.aborted++;
	}
	return dropped;
}

static uint8_t icc_status_of(struct ccid_dev *d, unsigned slot)
{
	return slot < (unsigned)d->cfg.nslots ? icc_status(&d->slot[slot]) : 2;
}

/* ---- delivery ------------------------------------------------------------------------------- */

static bool plug_live(const struct plug *p)
{
	return p != NULL && !p->gone && p->dev->plug == p;
}

/* Hands a reapable URB to a parked REAP of c, if both exist. */
static void deliver_reap(struct conn *c, struct done_list *dl)
{
	struct urb *u;

	if (c->reap == NULL || c->done.head == NULL)
		return;
	u = urbq_pop(&c->done);
	umockdev_ioctl_data_set_ptr(c->reap_arg, 0, u->data);
	g_object_unref(c->reap_arg);
	c->reap_arg = NULL;
	done_add(dl, c->reap, 0, 0);
	g_object_unref(c->reap);
	c->reap = NULL;
	c->empty_reaps = 0;
	urb_free(u);
}

/* Moves ready replies and notifications into pending IN URBs; wakes parked reaps. */
static void pump_dev(struct ccid_dev *d, struct done_list *dl)
{
	struct plug *p = d->plug;
	struct conn *c;
	int64_t now = now_us();

	if (!plug_live(p))
		return;
	for (c = p->conns; c; c = c->next) {
		while (c->bulk_in.head && d->replies && d->replies->ready_at <= now) {
			struct urb *u = urbq_pop(&c->bulk_in);
			struct usbdevfs_urb *s = urb_struct(u);
			struct msg *x = d->replies;
			size_t cap = (size_t)(s->buffer_length > 0 ? s->buffer_length : 0), n;

			if (d->fault[F_STALL] > 0) {
				d->fault[F_STALL]--;
				d->st.stalls++;
				urb_finish(c, u, -EPIPE, 0);
				continue;
			}
			n = x->len - d->reply_off;
			if (u->buf == NULL || cap == 0) {
				urb_finish(c, u, 0, 0);
				continue;
			}
			if (n > cap && cap % 64 != 0) {
				/* The device sends more than the host asked for: babble. */
				memcpy(u->buf->data, x->data + d->reply_off, cap);
				urb_finish(c, u, -EOVERFLOW, (int)cap);
				n = x->len - d->reply_off;
			} else {
				if (n > cap)
					n = cap;
				memcpy(u->buf->data, x->data + d->reply_off, n);
				urb_finish(c, u, 0, (int)n);
			}
			vlog(d, "-> %02X len %u slot %u seq %u [%02X %02X %02X] (%zu bytes)",
			     x->data[0], x->len >= 5 ? get_le32(x->data + 1) : 0,
			     x->len > 5 ? x->data[5] : 0, x->len > 6 ? x->data[6] : 0,
			     x->len > 7 ? x->data[7] : 0, x->len > 8 ? x->data[8] : 0,
			     x->len > 9 ? x->data[9] : 0, n);
			d->reply_off += n;
			if (d->reply_off >= x->len) {
				d->replies = x->next;
				d->reply_off = 0;
				memset(x->data, 0, x->len);
				free(x);
			}
		}
		if (d->int_pending && c->intr_in.head) {
			struct urb *u = urbq_pop(&c->intr_in);
			struct usbdevfs_urb *s = urb_struct(u);
			uint8_t msg[1 + (2 * CCID_EMU_SLOTS_MAX + 7) / 8] = { 0x50 };
			size_t n = 1 + (size_t)(2 * d->cfg.nslots + 7) / 8;
			int i;

			for (i = 0; i < d->cfg.nslots; i++) {
				struct slot *sl = &d->slot[i];
				uint8_t bits = (uint8_t)((sl->present ? 1 : 0) | (sl->changed ? 2 : 0));

				msg[1 + (2 * i) / 8] |= (uint8_t)(bits << ((2 * i) % 8));
				sl->changed = false;
			}
			if (u->buf && s->buffer_length > 0) {
				if ((size_t)s->buffer_length < n)
					n = (size_t)s->buffer_length;
				memcpy(u->buf->data, msg, n);
			} else {
				n = 0;
			}
			urb_finish(c, u, 0, (int)n);
			d->int_pending = false;
			d->st.notify++;
			vlog(d, "-> NotifySlotChange %02X", n > 1 ? msg[1] : 0);
		}
		deliver_reap(c, dl);
	}
}

static void pump_all(struct ccid_emu *emu, struct done_list *dl)
{
	int i;

	for (i = 0; i < emu->ndev; i++)
		pump_dev(emu->dev[i], dl);
}

/* ---- the timer thread ----------------------------------------------------------------------- */

static void expire_reaps(struct ccid_emu *emu, struct done_list *dl, int64_t now)
{
	struct plug *p;

	for (p = emu->plugs; p; p = p->next) {
		struct conn *c;

		for (c = p->conns; c; c = c->next) {
			if (c->reap == NULL || c->reap_deadline > now)
				continue;
			g_object_unref(c->reap_arg);
			c->reap_arg = NULL;
			done_add(dl, c->reap, -1, p->gone && !c->bulk_in.head && !c->intr_in.head ?
				 ENODEV : EAGAIN);
			g_object_unref(c->reap);
			c->reap = NULL;
		}
	}
}

static int64_t next_wake(struct ccid_emu *emu, int64_t now)
{
	int64_t t = now + 1000000;
	struct plug *p;
	int i;

	for (p = emu->plugs; p; p = p->next) {
		struct conn *c;

		for (c = p->conns; c; c = c->next)
			if (c->reap && c->reap_deadline < t)
				t = c->reap_deadline;
	}
	for (i = 0; i < emu->ndev; i++) {
		const struct msg *x;

		for (x = emu->dev[i]->replies; x; x = x->next)
			if (x->ready_at > now && x->ready_at < t)
				t = x->ready_at;
	}
	return t;
}

static void *timer_main(void *arg)
{
	struct ccid_emu *emu = arg;
	struct done_list dl = { .n = 0 };

	pthread_mutex_lock(&emu->lock);
	while (!emu->stop) {
		int64_t now = now_us(), wake = next_wake(emu, now);
		struct timespec ts;

		if (wake > now) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)((wake - now) / 1000000);
			ts.tv_nsec += (long)(((wake - now) % 1000000) * 1000);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&emu->cond, &emu->lock, &ts);
			if (emu->stop)
				break;
		}
		now = now_us();
		pump_all(emu, &dl);
		expire_reaps(emu, &dl, now);
		if (dl.n) {
			pthread_mutex_unlock(&emu->lock);
			done_flush(&dl);
			pthread_mutex_lock(&emu->lock);
		}
	}
	pthread_mutex_unlock(&emu->lock);
	return NULL;
}

/* ---- the ioctl handler ---------------------------------------------------------------------- */

static void conn_drop(struct conn *c)
{
	struct urb *u;

	while ((u = urbq_pop(&c->bulk_in)))
		urb_free(u);
	while ((u = urbq_pop(&c->intr_in)))
		urb_free(u);
	while ((u = urbq_pop(&c->done)))
		urb_free(u);
	if (c->reap_arg)
		g_object_unref(c->reap_arg);
	if (c->reap)
		g_object_unref(c->reap);
	if (c->notify_id)
		g_signal_handler_disconnect(c->client, c->notify_id);
	g_object_unref(c->client);
	free(c);
}

static void on_client_notify(GObject *obj, GParamSpec *pspec, gpointer user)
{
	struct plug *p = user;
	struct ccid_emu *emu = p->dev->emu;
	struct conn **pp, *gone = NULL;

	(void)pspec;
	if (umockdev_ioctl_client_get_connected(UMOCKDEV_IOCTL_CLIENT(obj)))
		return;
	pthread_mutex_lock(&emu->lock);
	for (pp = &p->conns; *pp; pp = &(*pp)->next) {
		if ((*pp)->client == (UMockdevIoctlClient *)obj) {
			gone = *pp;
			*pp = gone->next;
			break;
		}
	}
	pthread_mutex_unlock(&emu->lock);
	if (gone) {
		/* A parked REAP of a vanished client is dropped, not completed. */
		if (gone->reap) {
			g_object_unref(gone->reap);
			gone->reap = NULL;
		}
		conn_drop(gone);
	}
}

static struct conn *conn_get(struct plug *p, UMockdevIoctlClient *client)
{
	struct conn *c;

	for (c = p->conns; c; c = c->next)
		if (c->client == client)
			return c;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->plug = p;
	c->client = g_object_ref(client);
	c->notify_id = g_signal_connect(client, "notify::connected", G_CALLBACK(on_client_notify), p);
	c->next = p->conns;
	p->conns = c;
	return c;
}

static void submit_urb(struct ccid_dev *d, struct conn *c, UMockdevIoctlClient *client,
		       UMockdevIoctlData *arg, size_t size, struct done_list *dl)
{
	UMockdevIoctlData *data;
	struct usbdevfs_urb *s;
	struct urb *u;
	GError *gerr = NULL;

	data = umockdev_ioctl_data_resolve(arg, 0, size, &gerr);
	if (data == NULL) {
		g_clear_error(&gerr);
		done_add(dl, client, -1, EFAULT);
		return;
	}
	if (!plug_live(c->plug)) {
		g_object_unref(data);
		done_add(dl, client, -1, ENODEV);
		return;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		g_object_unref(data);
		done_add(dl, client, -1, ENOMEM);
		return;
	}
	u->data = data;
	u->addr = data->client_addr;
	s = (struct usbdevfs_urb *)data->data;
	if (s->buffer_length > 0 && s->buffer != NULL) {
		u->buf = umockdev_ioctl_data_resolve(data, offsetof(struct usbdevfs_urb, buffer),
						     (gsize)s->buffer_length, &gerr);
		if (u->buf == NULL) {
			g_clear_error(&gerr);
			urb_free(u);
			done_add(dl, client, -1, EFAULT);
			return;
		}
	}
	switch (s->type) {
	case USBDEVFS_URB_TYPE_CONTROL: {
		int r;

		if (u->buf == NULL || s->buffer_length < 8) {
			urb_free(u);
			done_add(dl, client, -1, EINVAL);
			return;
		}
		r = control(d, u->buf->data, u->buf->data + 8, (size_t)s->buffer_length - 8);
		urb_finish(c, u, r < 0 ? r : 0, r < 0 ? 0 : r);
		break;
	}
	case USBDEVFS_URB_TYPE_BULK:
		if (s->endpoint == EP_OUT) {
			int n = s->buffer_length;

			ccid_command(d, u->buf ? u->buf->data : (const uint8_t *)"", u->buf ? (size_t)n : 0);
			urb_finish(c, u, 0, n);
		} else if (s->endpoint == EP_IN) {
			urbq_push(&c->bulk_in, u);
		} else {
			urb_free(u);
			done_add(dl, client, -1, EINVAL);
			return;
		}
		break;
	case USBDEVFS_URB_TYPE_INTERRUPT:
		if (s->endpoint != EP_INT) {
			urb_free(u);
			done_add(dl, client, -1, EINVAL);
			return;
		}
		urbq_push(&c->intr_in, u);
		break;
	default:
		urb_free(u);
		done_add(dl, client, -1, EINVAL);
		return;
	}
	done_add(dl, client, 0, 0);
	pump_dev(d, dl);
	pthread_cond_signal(&d->emu->cond);
}

static void reap_urb(struct ccid_emu *emu, struct conn *c, UMockdevIoctlClient *client,
		     UMockdevIoctlData *arg, struct done_list *dl)
{
	UMockdevIoctlData *data;
	GError *gerr = NULL;
	bool dead = !plug_live(c->plug);

	data = umockdev_ioctl_data_resolve(arg, 0, sizeof(void *), &gerr);
	if (data == NULL) {
		g_clear_error(&gerr);
		done_add(dl, client, -1, EFAULT);
		return;
	}
	if (c->done.head) {
		struct urb *u = urbq_pop(&c->done);

		umockdev_ioctl_data_set_ptr(data, 0, u->data);
		g_object_unref(data);
		urb_free(u);
		c->empty_reaps = 0;
		done_add(dl, client, 0, 0);
		return;
	}
	if (c->empty_reaps++ == 0 || emu->reap_wait_ms == 0) {
		/* libusb drains with reap-until-EAGAIN: the first empty reap answers at once. */
		g_object_unref(data);
		done_add(dl, client, -1, dead ? ENODEV : EAGAIN);
		return;
	}
	/* The fake node is always "ready": hold this reap back a little instead of spinning. */
	c->reap = g_object_ref(client);
	c->reap_arg = data;
	c->reap_deadline = now_us() + (int64_t)(dead ? 20 : emu->reap_wait_ms) * 1000;
	pthread_cond_signal(&emu->cond);
}

static void discard_urb(struct conn *c, UMockdevIoctlClient *client, UMockdevIoctlData *arg,
			struct done_list *dl)
{
	unsigned long addr = *(unsigned long *)arg->data;
	struct urb *u = urbq_take(&c->bulk_in, addr);

	if (u == NULL)
		u = urbq_take(&c->intr_in, addr);
	if (u == NULL) {
		done_add(dl, client, -1, EINVAL);
		return;
	}
	c->plug->dev->st.discards++;
	urb_finish(c, u, -ENOENT, 0);
	done_add(dl, client, 0, 0);
	deliver_reap(c, dl);
}

static void reset_device(struct ccid_dev *d)
{
	int i;

	drop_replies(d);
	for (i = 0; i < d->cfg.nslots; i++)
		d->slot[i].powered = false;
}

static gboolean on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user)
{
	struct plug *p = user;
	struct ccid_dev *d = p->dev;
	struct ccid_emu *emu = d->emu;
	unsigned long req = umockdev_ioctl_client_get_request(client);
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	struct done_list dl = { .n = 0 };
	struct conn *c;
	bool live;

	(void)handler;
	pthread_mutex_lock(&emu->lock);
	if (emu->closing) {
		pthread_mutex_unlock(&emu->lock);
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	c = conn_get(p, client);
	if (c == NULL) {
		pthread_mutex_unlock(&emu->lock);
		umockdev_ioctl_client_complete(client, -1, ENOMEM);
		return TRUE;
	}
	live = plug_live(p);
	if (req == USBDEVFS_REAPURBNDELAY || req == USBDEVFS_REAPURB) {
		reap_urb(emu, c, client, arg, &dl);
	} else if (!live) {
		done_add(&dl, client, -1, ENODEV);
	} else if (req == USBDEVFS_SUBMITURB) {
		submit_urb(d, c, client, arg, _IOC_SIZE(req), &dl);
	} else if (req == USBDEVFS_DISCARDURB) {
		discard_urb(c, client, arg, &dl);
	} else if (req == USBDEVFS_GET_CAPABILITIES) {
		GError *gerr = NULL;
		UMockdevIoctlData *data = umockdev_ioctl_data_resolve(arg, 0, sizeof(uint32_t), &gerr);

		if (data) {
			*(uint32_t *)data->data = USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_BULK_CONTINUATION |
				USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT;
			g_object_unref(data);
			done_add(&dl, client, 0, 0);
		} else {
			g_clear_error(&gerr);
			done_add(&dl, client, -1, EFAULT);
		}
	} else if (req == USBDEVFS_GETDRIVER || req == USBDEVFS_IOCTL) {
		done_add(&dl, client, -1, ENODATA);        /* no kernel driver bound */
	} else if (req == USBDEVFS_CLAIMINTERFACE || req == USBDEVFS_RELEASEINTERFACE ||
		   req == USBDEVFS_SETINTERFACE || req == USBDEVFS_SETCONFIGURATION ||
		   req == USBDEVFS_CLEAR_HALT || req == USBDEVFS_RESETEP) {
		done_add(&dl, client, 0, 0);
	} else if (req == USBDEVFS_RESET) {
		reset_device(d);
		done_add(&dl, client, 0, 0);
	} else if (req == USBDEVFS_GET_SPEED) {
		done_add(&dl, client, USB_SPEED_FULL_VALUE, 0);
	} else if (req == USBDEVFS_CONNECTINFO) {
		GError *gerr = NULL;
		UMockdevIoctlData *data = umockdev_ioctl_data_resolve(
			arg, 0, sizeof(struct usbdevfs_connectinfo), &gerr);

		if (data) {
			struct usbdevfs_connectinfo *ci = (void *)data->data;

			ci->devnum = (unsigned)d->devnum;
			ci->slow = 0;
			g_object_unref(data);
			done_add(&dl, client, 0, 0);
		} else {
			g_clear_error(&gerr);
			done_add(&dl, client, -1, EFAULT);
		}
	} else if (req == USBDEVFS_CONTROL) {
		GError *gerr = NULL;
		UMockdevIoctlData *data = umockdev_ioctl_data_resolve(
			arg, 0, sizeof(struct usbdevfs_ctrltransfer), &gerr);

		if (data) {
			struct usbdevfs_ctrltransfer *ct = (void *)data->data;
			uint8_t setup[8];
			UMockdevIoctlData *buf = NULL;
			uint8_t dummy[1];
			int r;

			setup[0] = ct->bRequestType;
			setup[1] = ct->bRequest;
			setup[2] = (uint8_t)ct->wValue;
			setup[3] = (uint8_t)(ct->wValue >> 8);
			setup[4] = (uint8_t)ct->wIndex;
			setup[5] = (uint8_t)(ct->wIndex >> 8);
			setup[6] = (uint8_t)ct->wLength;
			setup[7] = (uint8_t)(ct->wLength >> 8);
			if (ct->wLength > 0 && ct->data != NULL)
				buf = umockdev_ioctl_data_resolve(
					data, offsetof(struct usbdevfs_ctrltransfer, data),
					ct->wLength, &gerr);
			g_clear_error(&gerr);
			r = control(d, setup, buf ? buf->data : dummy, buf ? ct->wLength : 0);
			if (buf)
				g_object_unref(buf);
			g_object_unref(data);
			done_add(&dl, client, r < 0 ? -1 : r, r < 0 ? -r : 0);
		} else {
			g_clear_error(&gerr);
			done_add(&dl, client, -1, EFAULT);
		}
	} else {
		vlog(d, "unhandled ioctl 0x%lx: ENOTTY", req);
		done_add(&dl, client, -1, ENOTTY);
	}
	pthread_mutex_unlock(&emu->lock);
	done_flush(&dl);
	return TRUE;
}

/* ---- devices, plugging ---------------------------------------------------------------------- */

static int dev_text(struct ccid_dev *d, char *out, size_t cap)
{
	char hex[2 * sizeof(d->desc) + 1];
	size_t i;
	int n, minor = (BUSNUM - 1) * 128 + d->devnum - 1;

	for (i = 0; i < d->desc_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", d->desc[i]);
	n = snprintf(out, cap,
		     "P: %s\n"
		     "N: bus/usb/%03d/%03d\n"
		     "E: SUBSYSTEM=usb\n"
		     "E: DEVNAME=/dev/bus/usb/%03d/%03d\n"
		     "E: DEVTYPE=usb_device\n"
		     "E: DRIVER=usb\n"
		     "E: PRODUCT=%x/%x/100\n"
		     "E: TYPE=0/0/0\n"
		     "E: BUSNUM=%03d\n"
		     "E: DEVNUM=%03d\n"
		     "E: MAJOR=189\n"
		     "E: MINOR=%d\n"
		     "A: busnum=%d\n"
		     "A: devnum=%d\n"
		     "A: devpath=%d\n"
		     "A: speed=12\n"
		     "A: dev=189:%d\n"
		     "A: bConfigurationValue=1\n"
		     "A: bNumConfigurations=1\n"
		     "A: bNumInterfaces= 1\n"
		     "A: bDeviceClass=00\n"
		     "A: bcdDevice=0100\n"
		     "A: idVendor=%04x\n"
		     "A: idProduct=%04x\n"
		     "A: manufacturer=%s\n"
		     "A: product=%s\n"
		     "%s%s%s"
		     "A: maxchild=0\n"
		     "H: descriptors=%s\n"
		     "\n"
		     "P: %s\n"
		     "E: SUBSYSTEM=usb\n"
		     "E: DEVTYPE=usb_interface\n"
		     "E: INTERFACE=%d/0/0\n"
		     "E: PRODUCT=%x/%x/100\n"
		     "E: TYPE=0/0/0\n"
		     "A: bInterfaceClass=%02x\n"
		     "A: bInterfaceSubClass=00\n"
		     "A: bInterfaceProtocol=00\n"
		     "A: bInterfaceNumber=00\n"
		     "A: bAlternateSetting= 0\n"
		     "A: bNumEndpoints=03\n"
		     "\n",
		     d->syspath + 4, BUSNUM, d->devnum, BUSNUM, d->devnum, d->cfg.vid, d->cfg.pid, BUSNUM,
		     d->devnum, minor, BUSNUM, d->devnum, d->cfg.port, minor, d->cfg.vid, d->cfg.pid,
		     d->cfg.manufacturer, d->cfg.product, d->cfg.serial[0] ? "A: serial=" : "",
		     d->cfg.serial, d->cfg.serial[0] ? "\n" : "", hex, d->ifpath + 4, d->cfg.iface_class,
		     d->cfg.vid, d->cfg.pid, d->cfg.iface_class);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return 0;
}

static int do_plug(struct ccid_emu *emu, struct ccid_dev *d)
{
	char text[4096];
	GError *gerr = NULL;
	struct plug *p;
	int i;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	d->devnum = emu->next_devnum;
	emu->next_devnum = emu->next_devnum >= 127 ? 2 : emu->next_devnum + 1;
	if (dev_text(d, text, sizeof(text)) != 0) {
		free(p);
		return -ENOSPC;
	}
	p->dev = d;
	p->handler = umockdev_ioctl_base_new();
	g_signal_connect(p->handler, "handle-ioctl", G_CALLBACK(on_ioctl), p);
	pthread_mutex_lock(&emu->lock);
	p->next = emu->plugs;
	emu->plugs = p;
	d->plug = p;
	snprintf(d->devnode, sizeof(d->devnode), "/dev/bus/usb/%03d/%03d", BUSNUM, d->devnum);
	drop_replies(d);
	for (i = 0; i < d->cfg.nslots; i++) {
		d->slot[i].powered = false;
		d->slot[i].changed = d->slot[i].present;
	}
	d->int_pending = true;
	d->st.plugs++;
	pthread_mutex_unlock(&emu->lock);
	/*
	 * The ioctl handler goes in before the device node and its "add" uevent: a program that
	 * opens the node as soon as it hears of it must reach this handler, not umockdev's default
	 * one (which would answer every usbfs ioctl with an error).
	 */
	if (!umockdev_testbed_attach_ioctl(emu->tb, d->devnode, p->handler, &gerr)) {
		fprintf(stderr, "ccid-emu: attach_ioctl %s: %s\n", d->devnode, gerr ? gerr->message : "?");
		g_clear_error(&gerr);
		goto fail;
	}
	if (!umockdev_testbed_add_from_string(emu->tb, text, &gerr)) {
		fprintf(stderr, "ccid-emu: adding %s failed: %s\n", d->syspath,
			gerr ? gerr->message : "?");
		g_clear_error(&gerr);
		umockdev_testbed_detach_ioctl(emu->tb, d->devnode, NULL);
		goto fail;
	}
	if (!umockdev_in_mock_environment()) {
		/* In the mock environment add_from_string sent the uevents itself. */
		umockdev_testbed_uevent(emu->tb, d->syspath, "add");
		umockdev_testbed_uevent(emu->tb, d->ifpath, "add");
	}
	vlog(d, "plugged in at %s (port %d)", d->devnode, d->cfg.port);
	return 0;
fail:
	pthread_mutex_lock(&emu->lock);
	p->gone = true;
	d->plug = NULL;
	d->devnode[0] = '\0';
	pthread_mutex_unlock(&emu->lock);
	return -EIO;
}

static void do_unplug(struct ccid_emu *emu, struct ccid_dev *d)
{
	struct done_list dl = { .n = 0 };
	struct plug *p;
	struct conn *c;
	GError *gerr = NULL;
	char node[sizeof(d->devnode)];
	int i;

	pthread_mutex_lock(&emu->lock);
	p = d->plug;
	p->gone = true;
	d->plug = NULL;
	for (c = p->conns; c; c = c->next) {
		struct urb *u;

		while ((u = urbq_pop(&c->bulk_in))) {
			urb_finish(c, u, -ESHUTDOWN, 0);
			d->st.urbs_shutdown++;
		}
		while ((u = urbq_pop(&c->intr_in))) {
			urb_finish(c, u, -ESHUTDOWN, 0);
			d->st.urbs_shutdown++;
		}
		deliver_reap(c, &dl);
	}
	drop_replies(d);
	for (i = 0; i < d->cfg.nslots; i++)
		d->slot[i].powered = false;
	memcpy(node, d->devnode, sizeof(node));
	d->devnode[0] = '\0';
	pthread_mutex_unlock(&emu->lock);
	done_flush(&dl);
	umockdev_testbed_uevent(emu->tb, d->ifpath, "remove");
	umockdev_testbed_uevent(emu->tb, d->syspath, "remove");
	/* The interface first: removing only the parent leaves its /sys/bus link behind. */
	umockdev_testbed_remove_device(emu->tb, d->ifpath);
	umockdev_testbed_remove_device(emu->tb, d->syspath);
	if (!umockdev_testbed_detach_ioctl(emu->tb, node, &gerr)) {
		fprintf(stderr, "ccid-emu: detach_ioctl %s: %s\n", node, gerr ? gerr->message : "?");
		g_clear_error(&gerr);
	}
	vlog(d, "unplugged");
}

struct ccid_emu *ccid_emu_new(bool verbose, char *err, size_t errlen)
{
	struct ccid_emu *emu = calloc(1, sizeof(*emu));
	const char *w = getenv("CCID_EMU_REAP_WAIT_MS");
	pthread_condattr_t ca;
	gchar *root;

	if (emu == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&emu->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&emu->cond, &ca);
	pthread_condattr_destroy(&ca);
	emu->verbose = verbose;
	emu->next_devnum = 2;
	emu->reap_wait_ms = 2;
	if (w && *w) {
		unsigned long v;

		if (parse_uint(w, 10, 1000, &v) == 0)
			emu->reap_wait_ms = (int)v;
	}
	emu->tb = umockdev_testbed_new();
	if (emu->tb == NULL) {
		seterr(err, errlen, "umockdev_testbed_new failed");
		ccid_emu_free(emu);
		return NULL;
	}
	root = umockdev_testbed_get_root_dir(emu->tb);
	snprintf(emu->root, sizeof(emu->root), "%s", root);
	g_free(root);
	if (pthread_create(&emu->timer, NULL, timer_main, emu) != 0) {
		seterr(err, errlen, "cannot start the timer thread");
		ccid_emu_free(emu);
		return NULL;
	}
	emu->timer_started = true;
	return emu;
}

const char *ccid_emu_root(const struct ccid_emu *emu)
{
	return emu->root;
}

void ccid_emu_free(struct ccid_emu *emu)
{
	int i, j;

	if (emu == NULL)
		return;
	pthread_mutex_lock(&emu->lock);
	emu->stop = true;
	emu->closing = true;
	pthread_cond_broadcast(&emu->cond);
	pthread_mutex_unlock(&emu->lock);
	if (emu->timer_started)
		pthread_join(emu->timer, NULL);
	while (emu->plugs) {
		struct plug *p = emu->plugs;

		emu->plugs = p->next;
		if (p->handler)
			g_signal_handlers_disconnect_by_data(p->handler, p);
		while (p->conns) {
			struct conn *c = p->conns;

			p->conns = c->next;
			if (c->reap) {
				/* Let a client still waiting in a reap go. */
				umockdev_ioctl_client_complete(c->reap, -1, ENODEV);
				g_object_unref(c->reap);
				c->reap = NULL;
			}
			conn_drop(c);
		}
		p->next = NULL;
		/* The handler object stays referenced by the testbed until it goes. */
		free(p);
	}
	if (emu->tb)
		g_object_unref(emu->tb);
	for (i = 0; i < emu->ndev; i++) {
		struct ccid_dev *d = emu->dev[i];

		drop_replies(d);
		for (j = 0; j < d->cfg.nslots; j++) {
			icc_done(&d->slot[j].icc);
			sim_token_free(d->slot[j].tok);
			sim_profile_free(d->slot[j].prof);
		}
		free(d);
	}
	pthread_cond_destroy(&emu->cond);
	pthread_mutex_destroy(&emu->lock);
	free(emu);
}

int ccid_emu_add(struct ccid_emu *emu, const struct ccid_dev_cfg *cfg, char *err, size_t errlen)
{
	struct ccid_dev *d;
	int i, r;

	if (emu->ndev == CCID_EMU_DEVICES_MAX) {
		seterr(err, errlen, "at most %d devices", CCID_EMU_DEVICES_MAX);
		return -ENOSPC;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->emu = emu;
	d->index = emu->ndev;
	d->cfg = *cfg;
	if (d->cfg.name[0] == '\0')
		snprintf(d->cfg.name, sizeof(d->cfg.name), "%d", d->index);
	if (d->cfg.port == 0)
		d->cfg.port = d->index + 1;
	if (d->cfg.product[0] == '\0')
		snprintf(d->cfg.product, sizeof(d->cfg.product), "Emulated CCID %.40s (%s)",
			 d->cfg.name, level_names[d->cfg.level]);
	d->max_msg = cfg->max_msg ? cfg->max_msg :
		     cfg->level == ICC_LEVEL_XAPDU ? XAPDU_MAX_MSG : DEFAULT_MAX_MSG;
	snprintf(d->syspath, sizeof(d->syspath), "/sys/devices/usb%d/%d-%d", BUSNUM, BUSNUM,
		 d->cfg.port);
	snprintf(d->ifpath, sizeof(d->ifpath), "%s/%d-%d:1.0", d->syspath, BUSNUM, d->cfg.port);
	for (i = 0; i < emu->ndev; i++) {
		if (emu->dev[i]->cfg.port == d->cfg.port || strcmp(emu->dev[i]->cfg.name,
								   d->cfg.name) == 0) {
			seterr(err, errlen, "device %s: port %d or name already used", d->cfg.name,
			       d->cfg.port);
			free(d);
			return -EINVAL;
		}
	}
	for (i = 0; i < cfg->nslots; i++) {
		struct slot *s = &d->slot[i];
		struct icc_params ip = {
			.level = cfg->level, .ifsc = d->cfg.ifsc, .wtx_multiplier = d->cfg.wtx_multiplier,
			.auto_get_response = cfg->auto_get_response,
		};
		char perr[256];

		s->prof = sim_profile_load(cfg->slot[i].profile, perr, sizeof(perr));
		if (s->prof == NULL) {
			seterr(err, errlen, "device %s slot %d: %s", d->cfg.name, i, perr);
			r = -EINVAL;
			goto fail;
		}
		s->tok = sim_token_new(s->prof, cfg->slot[i].role);
		if (s->tok == NULL) {
			seterr(err, errlen, "out of memory");
			r = -ENOMEM;
			goto fail;
		}
		icc_init(&s->icc, s->tok, &ip);
		s->present = !cfg->slot[i].absent;
		default_params(d, s);
	}
	build_descriptors(d);
	emu->dev[emu->ndev++] = d;
	r = do_plug(emu, d);
	if (r < 0) {
		seterr(err, errlen, "device %s: plugging in failed (%d)", d->cfg.name, r);
		return r;
	}
	return d->index;
fail:
	for (i = 0; i < cfg->nslots; i++) {
		sim_token_free(d->slot[i].tok);
		sim_profile_free(d->slot[i].prof);
	}
	free(d);
	return r;
}

int ccid_emu_find(struct ccid_emu *emu, const char *name)
{
	int i;

	for (i = 0; i < emu->ndev; i++)
		if (strcmp(emu->dev[i]->cfg.name, name) == 0)
			return i;
	return -ENOENT;
}

int ccid_emu_plug(struct ccid_emu *emu, int dev)
{
	if (dev < 0 || dev >= emu->ndev)
		return -ENOENT;
	if (emu->dev[dev]->plug)
		return -EALREADY;
	return do_plug(emu, emu->dev[dev]);
}

int ccid_emu_unplug(struct ccid_emu *emu, int dev)
{
	if (dev < 0 || dev >= emu->ndev)
		return -ENOENT;
	if (emu->dev[dev]->plug == NULL)
		return -EALREADY;
	do_unplug(emu, emu->dev[dev]);
	return 0;
}

static int set_present(struct ccid_emu *emu, int dev, int slot, bool present)
{
	struct done_list dl = { .n = 0 };
	struct ccid_dev *d;
	struct slot *s;

	if (dev < 0 || dev >= emu->ndev)
		return -ENOENT;
	d = emu->dev[dev];
	if (slot < 0 || slot >= d->cfg.nslots)
		return -ENOENT;
	pthread_mutex_lock(&emu->lock);
	s = &d->slot[slot];
	if (s->present == present) {
		pthread_mutex_unlock(&emu->lock);
		return -EALREADY;
	}
	s->present = present;
	s->powered = false;
	s->changed = true;
	if (!present)
		flush_slot(d, (uint8_t)slot, 0x40 | 2, ERR_ICC_MUTE, true);
	slot_notify(d);
	pump_dev(d, &dl);
	pthread_mutex_unlock(&emu->lock);
	done_flush(&dl);
	vlog(d, "slot %d: card %s", slot, present ? "inserted" : "removed");
	return 0;
}

int ccid_emu_insert(struct ccid_emu *emu, int dev, int slot)
{
	return set_present(emu, dev, slot, true);
}

int ccid_emu_remove(struct ccid_emu *emu, int dev, int slot)
{
	return set_present(emu, dev, slot, false);
}

int ccid_emu_fault(struct ccid_emu *emu, int dev, const char *kind, int count, int slot,
		   char *err, size_t errlen)
{
	struct done_list dl = { .n = 0 };
	struct ccid_dev *d;
	int i, r = -EINVAL;

	if (dev < 0 || dev >= emu->ndev) {
		seterr(err, errlen, "no such device");
		return -ENOENT;
	}
	d = emu->dev[dev];
	if (count <= 0)
		count = 1;
	pthread_mutex_lock(&emu->lock);
	if (strcmp(kind, "clear") == 0) {
		memset(d->fault, 0, sizeof(d->fault));
		for (i = 0; i < d->cfg.nslots; i++) {
			int f;

			for (f = 0; f < ICC_FAULT_COUNT; f++)
				icc_fault(&d->slot[i].icc, (enum icc_fault)f, 0);
		}
		r = 0;
		goto out;
	}
	for (i = 0; i < F_COUNT; i++) {
		if (strcmp(kind, fault_names[i]) == 0) {
			d->fault[i] = count;
			r = 0;
			goto out;
		}
	}
	for (i = 0; i < ICC_FAULT_COUNT; i++) {
		if (strcmp(kind, icc_fault_names[i]) != 0)
			continue;
		if (d->cfg.level != ICC_LEVEL_T1) {
			seterr(err, errlen, "fault %s needs a T=1 device (mode=t1)", kind);
			goto out;
		}
		if (slot < 0 || slot >= d->cfg.nslots) {
			seterr(err, errlen, "no slot %d", slot);
			goto out;
		}
		icc_fault(&d->slot[slot].icc, (enum icc_fault)i, count);
		r = 0;
		goto out;
	}
	seterr(err, errlen, "unknown fault '%s'", kind);
out:
	pump_dev(d, &dl);
	pthread_cond_signal(&emu->cond);
	pthread_mutex_unlock(&emu->lock);
	done_flush(&dl);
	return r;
}

void ccid_emu_devnode(struct ccid_emu *emu, int dev, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	if (dev < 0 || dev >= emu->ndev)
		return;
	pthread_mutex_lock(&emu->lock);
	snprintf(buf, len, "%s", emu->dev[dev]->devnode);
	pthread_mutex_unlock(&emu->lock);
}

static json_t *icc_stats_json(const struct icc_stats *s)
{
	json_t *o = json_object(), *f = json_object();
	int i;

	json_object_set_new(o, "xfrs", json_integer((json_int_t)s->xfrs));
	json_object_set_new(o, "apdus", json_integer((json_int_t)s->apdus));
	json_object_set_new(o, "refused", json_integer((json_int_t)s->refused));
	json_object_set_new(o, "case4_as_case3", json_integer((json_int_t)s->case4_as_case3));
	json_object_set_new(o, "t0_61xx", json_integer((json_int_t)s->t0_61xx));
	json_object_set_new(o, "t0_6cxx", json_integer((json_int_t)s->t0_6cxx));
	json_object_set_new(o, "t1_i_in", json_integer((json_int_t)s->t1_i_in));
	json_object_set_new(o, "t1_chain_in", json_integer((json_int_t)s->t1_chain_in));
	json_object_set_new(o, "t1_chain_out", json_integer((json_int_t)s->t1_chain_out));
	json_object_set_new(o, "t1_r_in", json_integer((json_int_t)s->t1_r_in));
	json_object_set_new(o, "t1_r_out", json_integer((json_int_t)s->t1_r_out));
	json_object_set_new(o, "t1_resent", json_integer((json_int_t)s->t1_resent));
	json_object_set_new(o, "t1_bad_in", json_integer((json_int_t)s->t1_bad_in));
	json_object_set_new(o, "t1_ifs", json_integer((json_int_t)s->t1_ifs));
	json_object_set_new(o, "t1_resynch", json_integer((json_int_t)s->t1_resynch));
	json_object_set_new(o, "t1_abort", json_integer((json_int_t)s->t1_abort));
	json_object_set_new(o, "t1_wtx_out", json_integer((json_int_t)s->t1_wtx_out));
	json_object_set_new(o, "t1_wtx_in", json_integer((json_int_t)s->t1_wtx_in));
	for (i = 0; i < ICC_FAULT_COUNT; i++)
		json_object_set_new(f, icc_fault_names[i], json_integer((json_int_t)s->faults_fired[i]));
	json_object_set_new(o, "faults_fired", f);
	return o;
}

char *ccid_emu_status(struct ccid_emu *emu)
{
	json_t *root = json_object(), *devs = json_array();
	char *text;
	int i, j;

	pthread_mutex_lock(&emu->lock);
	for (i = 0; i < emu->ndev; i++) {
		struct ccid_dev *d = emu->dev[i];
		json_t *o = json_object(), *slots = json_array(), *faults = json_object(), *st;

		json_object_set_new(o, "index", json_integer(i));
		json_object_set_new(o, "name", json_string(d->cfg.name));
		json_object_set_new(o, "mode", json_string(level_names[d->cfg.level]));
		json_object_set_new(o, "plugged", json_boolean(d->plug != NULL));
		json_object_set_new(o, "devnode", json_string(d->devnode));
		json_object_set_new(o, "port", json_integer(d->cfg.port));
		json_object_set_new(o, "busnum", json_integer(BUSNUM));
		json_object_set_new(o, "devnum", json_integer(d->devnum));
		json_object_set_new(o, "product", json_string(d->cfg.product));
		json_object_set_new(o, "serial", json_string(d->cfg.serial));
		for (j = 0; j < F_COUNT; j++)
			json_object_set_new(faults, fault_names[j], json_integer(d->fault[j]));
		json_object_set_new(o, "faults", faults);
		st = json_object();
		json_object_set_new(st, "msgs_in", json_integer((json_int_t)d->st.msgs_in));
		json_object_set_new(st, "replies", json_integer((json_int_t)d->st.replies));
		json_object_set_new(st, "time_ext", json_integer((json_int_t)d->st.time_ext));
		json_object_set_new(st, "busy", json_integer((json_int_t)d->st.busy));
		json_object_set_new(st, "swallowed", json_integer((json_int_t)d->st.swallowed));
		json_object_set_new(st, "bad_len", json_integer((json_int_t)d->st.bad_len));
		json_object_set_new(st, "notify", json_integer((json_int_t)d->st.notify));
		json_object_set_new(st, "stalls", json_integer((json_int_t)d->st.stalls));
		json_object_set_new(st, "plugs", json_integer((json_int_t)d->st.plugs));
		json_object_set_new(st, "urbs_shutdown", json_integer((json_int_t)d->st.urbs_shutdown));
		json_object_set_new(st, "discards", json_integer((json_int_t)d->st.discards));
		json_object_set_new(st, "aborted", json_integer((json_int_t)d->st.aborted));
		json_object_set_new(st, "class_aborts", json_integer((json_int_t)d->st.class_aborts));
		json_object_set_new(o, "stats", st);
		for (j = 0; j < d->cfg.nslots; j++) {
			struct slot *s = &d->slot[j];
			json_t *so = json_object();
			uint8_t atr[SIM_ATR_MAX];
			char hex[2 * SIM_ATR_MAX + 1];
			size_t n = icc_atr(&s->icc, atr), k;

			for (k = 0; k < n; k++)
				snprintf(hex + 2 * k, 3, "%02X", atr[k]);
			hex[2 * n] = '\0';
			json_object_set_new(so, "role", json_string(d->cfg.slot[j].role == SIM_ROLE_CARD ?
								    "card" : "psam"));
			json_object_set_new(so, "profile", json_string(d->cfg.slot[j].profile_name));
			json_object_set_new(so, "present", json_boolean(s->present));
			json_object_set_new(so, "powered", json_boolean(s->powered));
			json_object_set_new(so, "protocol", json_integer(s->proto));
			json_object_set_new(so, "atr", json_string(hex));
			json_object_set_new(so, "ifsd", json_integer(s->icc.ifsd));
			json_object_set_new(so, "stats", icc_stats_json(&s->icc.stats));
			json_array_append_new(slots, so);
		}
		json_object_set_new(o, "slots", slots);
		json_array_append_new(devs, o);
	}
	pthread_mutex_unlock(&emu->lock);
	json_object_set_new(root, "devices", devs);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}
