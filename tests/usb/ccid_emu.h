/*
 * This file contains the emulated USB CCID reader used by the USB tests: a umockdev testbed holding
 * one or more CCID devices (USB CCID Rev 1.1: class descriptor, bulk OUT/IN and interrupt IN
 * endpoints, every PC_to_RDR message), each with one or more slots holding a simulated card or PSAM
 * (simcos) at APDU, T=0 TPDU or T=1 TPDU level, with hotplug, card insertion and removal, and fault
 * injection. An unmodified libusb program sees real-looking devices through libumockdev-preload.
 * Test code only (tests/usb/); see docs in tests/usb/README.md.
 */
#ifndef CCID_EMU_H
#define CCID_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

#define CCID_EMU_SLOTS_MAX 4
#define CCID_EMU_DEVICES_MAX 8
#define CCID_EMU_TEXT_MAX 64
#define CCID_EMU_PATH_MAX 512

/* One slot of a device as configured. */
struct ccid_slot_cfg {
	enum sim_role role;                  /* card or PSAM */
	char profile[CCID_EMU_PATH_MAX];     /* path of the profile JSON */
	char profile_name[CCID_EMU_TEXT_MAX];/* as given ("gen2") */
	bool absent;                         /* starts with the card out of the slot */
};

/* One device as configured (ccid_emu_parse_device fills it from a command-line spec). */
struct ccid_dev_cfg {
	char name[CCID_EMU_TEXT_MAX];        /* name for control commands (default: its index) */
	enum icc_level level;
	int nslots;
	struct ccid_slot_cfg slot[CCID_EMU_SLOTS_MAX];
	uint16_t vid, pid;                   /* default 1209:0001 (pid.codes test PID) */
	uint8_t iface_class;                 /* default 0x0B (smart card) */
	char manufacturer[CCID_EMU_TEXT_MAX];
	char product[CCID_EMU_TEXT_MAX];
	char serial[CCID_EMU_TEXT_MAX];      /* "" = no iSerialNumber */
	int port;                            /* USB port on bus 1; 0 = index + 1 */
	uint8_t ifsc;                        /* T=1 IFSC announced in the ATR (default 32) */
	uint8_t wtx_multiplier;              /* T=1 S(WTX request) value (default 2) */
	uint32_t max_msg;                    /* dwMaxCCIDMessageLength; 0 = 271 (65554 for xapdu) */
	bool auto_get_response;              /* APDU levels: the reader fetches 61xx itself */
	int mute_ms;                         /* delay before reporting ICC_MUTE (default 150) */
	int timeext_ms;                      /* spacing of injected time extensions (default 100) */
};

struct ccid_emu;

/*
 * Parses one device spec, comma-separated key=value pairs, e.g.
 *   "mode=t1,slots=card:gen3+psam:gen3,serial=EMU01,ifsc=32"
 * keys: name, mode (apdu|xapdu|t0|t1), slots (ROLE:PROFILE[:absent] joined by '+'), vid, pid
 * (hex), class (hex), manufacturer, product, serial, port, ifsc, wtx, maxmsg, autogr (0|1),
 * mute_ms, timeext_ms. A PROFILE without '/' or ".json" is profiles_dir/PROFILE.json. Returns 0,
 * or -EINVAL with a message in err.
 */
int ccid_emu_parse_device(const char *spec, const char *profiles_dir, struct ccid_dev_cfg *out,
			  char *err, size_t errlen);

/*
 * Creates the testbed (this sets UMOCKDEV_DIR in the environment; in one process it must come
 * before libusb_init) and the emulator's timer thread. verbose: log every CCID message header to
 * stderr (APDU bodies are never logged). Returns NULL with a message in err.
 * CCID_EMU_REAP_WAIT_MS (environment, default 2) bounds how long an empty REAPURBNDELAY is held
 * back to stop libusb from spinning on the always-ready fake device node.
 */
struct ccid_emu *ccid_emu_new(bool verbose, char *err, size_t errlen);

/* Stops the timer thread, removes the testbed and frees everything. NULL is a no-op. */
void ccid_emu_free(struct ccid_emu *emu);

/*
 * Adds a device (profiles loaded, tokens made) and plugs it in. Returns its index (>= 0), or
 * -EINVAL / -ENOMEM / -ENOSPC with a message in err.
 */
int ccid_emu_add(struct ccid_emu *emu, const struct ccid_dev_cfg *cfg, char *err, size_t errlen);

/* Finds a device by name or index text. Returns its index or -ENOENT. */
int ccid_emu_find(struct ccid_emu *emu, const char *name);

/*
 * Plugs a device in (a new device number on the same port, an "add" uevent) or unplugs it (pending
 * URBs complete with -ESHUTDOWN, later ioctls fail with ENODEV, a "remove" uevent). The cards stay
 * in their slots. Return 0, -EALREADY, or -ENOENT.
 */
int ccid_emu_plug(struct ccid_emu *emu, int dev);
int ccid_emu_unplug(struct ccid_emu *emu, int dev);

/* Inserts or removes the card of a slot (NotifySlotChange on the interrupt endpoint). Return 0,
 * -EALREADY, -ENOENT. */
int ccid_emu_insert(struct ccid_emu *emu, int dev, int slot);
int ccid_emu_remove(struct ccid_emu *emu, int dev, int slot);

/*
 * Arms a fault on a device: CCID level "timeext" (count time-extension replies before the next
 * answer), "seq" (wrong bSeq), "trunc" (truncated reply), "oversize" (a reply longer than any
 * answer), "stall" (bulk IN stalls), "mute" (the reader stops answering until "clear"), "clear"
 * (disarms everything); T=1 line (slot given, default 0) "lrc", "lost", "lostcmd", "wtx", "ns".
 * count: occurrences (default 1). Returns 0 or -EINVAL with a message in err.
 */
int ccid_emu_fault(struct ccid_emu *emu, int dev, const char *kind, int count, int slot,
		   char *err, size_t errlen);

/* A JSON text (malloc'd, one line) with every device, slot, fault and counter. NULL on ENOMEM. */
char *ccid_emu_status(struct ccid_emu *emu);

/* The testbed's root (UMOCKDEV_DIR), borrowed. */
const char *ccid_emu_root(const struct ccid_emu *emu);

/* The /dev node of a device while plugged ("" when unplugged), copied into buf. */
void ccid_emu_devnode(struct ccid_emu *emu, int dev, char *buf, size_t len);

#endif
