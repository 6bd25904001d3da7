/*
 * This file contains the USB CCID message codec (CCID Rev 1.1): the class descriptor, the
 * PC_to_RDR bulk-OUT commands, the RDR_to_PC bulk-IN replies and the interrupt-IN notifications,
 * as pure functions over byte buffers. It does no I/O, so that it can be unit-tested and fuzzed;
 * drivers/usb-ccid/usb.c moves the bytes.
 */
#ifndef SSC_CCID_H
#define SSC_CCID_H

#include <stddef.h>
#include <stdint.h>

#define CCID_HDR_LEN 10                /* every bulk message: type, dwLength, bSlot, bSeq, 3 more */
#define CCID_CLASS_DESC_LEN 54         /* the CCID class descriptor (bDescriptorType 0x21) */
#define CCID_CLASS_DESC_TYPE 0x21
#define CCID_MAX_SLOTS 16              /* slots this driver serves per device (bMaxSlotIndex < 16) */

/* bulk OUT, PC_to_RDR_* */
#define CCID_PC_SET_PARAMETERS 0x61
#define CCID_PC_ICC_POWER_ON 0x62
#define CCID_PC_ICC_POWER_OFF 0x63
#define CCID_PC_GET_SLOT_STATUS 0x65
#define CCID_PC_ESCAPE 0x6B
#define CCID_PC_GET_PARAMETERS 0x6C
#define CCID_PC_RESET_PARAMETERS 0x6D
#define CCID_PC_XFR_BLOCK 0x6F
#define CCID_PC_ABORT 0x72

/* bulk IN, RDR_to_PC_* */
#define CCID_RDR_DATA_BLOCK 0x80
#define CCID_RDR_SLOT_STATUS 0x81
#define CCID_RDR_PARAMETERS 0x82
#define CCID_RDR_ESCAPE 0x83
#define CCID_RDR_DATA_RATE_CLOCK 0x84

/* interrupt IN */
#define CCID_RDR_NOTIFY_SLOT_CHANGE 0x50
#define CCID_RDR_HARDWARE_ERROR 0x51

/* bStatus */
#define CCID_ICC_MASK 0x03
#define CCID_ICC_ACTIVE 0x00           /* present and powered */
#define CCID_ICC_INACTIVE 0x01         /* present, not powered */
#define CCID_ICC_ABSENT 0x02
#define CCID_CMD_MASK 0xC0
#define CCID_CMD_OK 0x00
#define CCID_CMD_FAILED 0x40
#define CCID_CMD_TIME_EXT 0x80

/* bError when the command failed */
#define CCID_ERR_CMD_NOT_SUPPORTED 0x00
#define CCID_ERR_CMD_ABORTED 0xFF
#define CCID_ERR_ICC_MUTE 0xFE
#define CCID_ERR_XFR_PARITY 0xFD
#define CCID_ERR_XFR_OVERRUN 0xFC
#define CCID_ERR_HW_ERROR 0xFB
#define CCID_ERR_BAD_ATR_TS 0xF8
#define CCID_ERR_BAD_ATR_TCK 0xF7
#define CCID_ERR_PROTOCOL_NOT_SUPPORTED 0xF6
#define CCID_ERR_CLASS_NOT_SUPPORTED 0xF5
#define CCID_ERR_PROCEDURE_BYTE_CONFLICT 0xF4
#define CCID_ERR_DEACTIVATED_PROTOCOL 0xF3
#define CCID_ERR_BUSY_AUTO_SEQUENCE 0xF2
#define CCID_ERR_PIN_TIMEOUT 0xF0
#define CCID_ERR_PIN_CANCELLED 0xEF
#define CCID_ERR_CMD_SLOT_BUSY 0xE0

/* dwFeatures */
#define CCID_FEAT_AUTO_PARAM_ATR 0x00000002u      /* parameters from the ATR by the reader */
#define CCID_FEAT_AUTO_ACTIVATION 0x00000004u
#define CCID_FEAT_AUTO_VOLTAGE 0x00000008u
#define CCID_FEAT_AUTO_CLOCK 0x00000010u
#define CCID_FEAT_AUTO_BAUD 0x00000020u
#define CCID_FEAT_AUTO_NEGOTIATION 0x00000040u    /* the reader negotiates protocol and speed */
#define CCID_FEAT_AUTO_PPS 0x00000080u            /* the reader sends the PPS for SetParameters */
#define CCID_FEAT_AUTO_IFSD 0x00000400u           /* the reader sends S(IFS) as first T=1 block */
#define CCID_FEAT_LEVEL_MASK 0x00070000u
#define CCID_FEAT_LEVEL_TPDU 0x00010000u
#define CCID_FEAT_LEVEL_SHORT_APDU 0x00020000u
#define CCID_FEAT_LEVEL_EXT_APDU 0x00040000u

/* dwProtocols */
#define CCID_PROTO_T0 0x1u
#define CCID_PROTO_T1 0x2u

/* wLevelParameter / bChainParameter at extended APDU level */
#define CCID_CHAIN_BEGIN_END 0x00
#define CCID_CHAIN_BEGIN 0x01
#define CCID_CHAIN_END 0x02
#define CCID_CHAIN_MIDDLE 0x03
#define CCID_CHAIN_CONTINUE 0x10      /* empty XfrBlock: "send the next part of the answer" */

enum ccid_level {
	CCID_LEVEL_CHAR = 0,          /* character level: not supported by this driver */
	CCID_LEVEL_TPDU,
	CCID_LEVEL_SHORT_APDU,
	CCID_LEVEL_EXT_APDU,
};

/* The CCID class descriptor, field by field (CCID Rev 1.1 §5.1), integers in host order. */
struct ccid_class_desc {
	uint16_t bcd_ccid;
	uint8_t max_slot_index;
	uint8_t voltage_support;       /* 0x01 5 V, 0x02 3 V, 0x04 1.8 V */
	uint32_t protocols;            /* CCID_PROTO_* */
	uint32_t default_clock_khz;
	uint32_t max_clock_khz;
	uint8_t num_clocks;
	uint32_t data_rate_bps;
	uint32_t max_data_rate_bps;
	uint8_t num_data_rates;
	uint32_t max_ifsd;
	uint32_t synch_protocols;
	uint32_t mechanical;
	uint32_t features;             /* CCID_FEAT_* */
	uint32_t max_msg_len;          /* dwMaxCCIDMessageLength, header included */
	uint8_t class_get_response;
	uint8_t class_envelope;
	uint16_t lcd_layout;
	uint8_t pin_support;
	uint8_t max_busy_slots;
};

/* A decoded bulk-IN message. data points into the buffer that was decoded (borrowed). */
struct ccid_reply {
	uint8_t type;                  /* CCID_RDR_* */
	uint32_t len;                  /* dwLength: bytes at data */
	uint8_t slot;
	uint8_t seq;
	uint8_t status;                /* bStatus */
	uint8_t error;                 /* bError */
	uint8_t param;                 /* bChainParameter / bClockStatus / bProtocolNum / RFU */
	const uint8_t *data;
};

/*
 * Parses a CCID class descriptor (its first byte is bLength). len is what the caller has; the
 * descriptor must be exactly CCID_CLASS_DESC_LEN long by its bLength, of type 0x21 (or 0xFF,
 * which some early readers used), with bMaxSlotIndex < CCID_MAX_SLOTS.
 * Returns 0, or SSC_EPROTO (truncated, wrong type or length, too many slots), SSC_EINVAL (NULL).
 */
int ccid_parse_class_desc(const uint8_t *p, size_t len, struct ccid_class_desc *out);

/*
 * Finds the CCID class descriptor among the extra descriptors of an interface or endpoint (a run
 * of bLength/bDescriptorType records, as libusb hands them over). Returns the offset of the
 * descriptor within p (>= 0), or SSC_ENOTFOUND (none, or a malformed record ends the run).
 */
int ccid_find_class_desc(const uint8_t *p, size_t len);

/* The exchange level from dwFeatures (the highest level flagged wins). */
enum ccid_level ccid_exchange_level(uint32_t features);

/* One PC_to_RDR message, as ccid_encode() puts it on the wire. */
struct ccid_msg {
	uint8_t type;                  /* CCID_PC_* */
	uint8_t slot;                  /* bSlot */
	uint8_t seq;                   /* bSeq */
	uint8_t b7, b8, b9;            /* the three message-specific header bytes */
	const uint8_t *data;           /* len bytes after the header (may be NULL when len is 0) */
	size_t len;
};

/*
 * Encodes the PC_to_RDR message m: its header (dwLength from m->len) followed by its data. Writes
 * at most cap bytes into out. Returns the message length (CCID_HDR_LEN + len), or SSC_EINVAL (out
 * too small, m or out NULL, or data NULL with len > 0).
 */
int ccid_encode(uint8_t *out, size_t cap, const struct ccid_msg *m);

/* PC_to_RDR_Abort, the bulk half of the abort sequence (CCID §5.3.1). As ccid_encode(). */
int ccid_enc_abort(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq);

/*
 * Decodes one bulk-IN message of n bytes (one USB transfer). The message must be a known
 * RDR_to_PC type, at least CCID_HDR_LEN long, exactly CCID_HDR_LEN + dwLength long (shorter:
 * truncated; longer: trailing bytes), and dwLength must not exceed max_data.
 * Returns 0 with *out filled (out->data borrows msg), or SSC_EPROTO, or SSC_EINVAL (NULL).
 */
int ccid_decode(const uint8_t *msg, size_t n, size_t max_data, struct ccid_reply *out);

/*
 * Checks a decoded reply against the command it answers: its slot and sequence number, and its
 * type (expect_type; a RDR_to_PC_SlotStatus that reports a failed command is accepted in reply to
 * any command, as some readers answer so). Returns:
 *   0                the command succeeded (bmCommandStatus 0);
 *   1                time extension requested (bmCommandStatus 2): read again, the answer follows;
 *   SSC_EPROTO       wrong slot, wrong type, unknown bmCommandStatus, or (only when seq matters,
 *                    check_seq != 0) wrong sequence number;
 *   < 0              the command failed: ccid_error_map() of its bStatus and bError.
 */
int ccid_check_reply(const struct ccid_reply *r, uint8_t expect_type, uint8_t slot, uint8_t seq,
		     int check_seq);

/*
 * Maps a failed command's bStatus and bError to the error vocabulary:
 *   card absent (bmICCStatus 2)                         SSC_ECARDREMOVED
 *   ICC_MUTE                                            SSC_ETIMEDOUT
 *   XFR_PARITY_ERROR, XFR_OVERRUN                       SSC_EIO (a transmission error: T=1
 *                                                      recovers from it; callers above say EPROTO)
 *   BAD_ATR_TS, BAD_ATR_TCK, PROTOCOL_NOT_SUPPORTED,
 *   CLASS_NOT_SUPPORTED, PROCEDURE_BYTE_CONFLICT,
 *   DEACTIVATED_PROTOCOL                                SSC_EPROTO
 *   CMD_SLOT_BUSY, BUSY_WITH_AUTO_SEQUENCE              SSC_EREADERBUSY
 *   card present but inactive (and not one of the above) SSC_ECARDREMOVED (it was reset)
 *   anything else (HW_ERROR, CMD_ABORTED, not supported, bad parameter index) SSC_EREADER
 */
int ccid_error_map(uint8_t status, uint8_t error);

/* A readable name for a bError value ("ICC_MUTE", "bad parameter", ...). Never NULL. */
const char *ccid_error_name(uint8_t error);

/*
 * The length of RDR_to_PC_NotifySlotChange for a device with n_slots slots: 1 + two bits per slot
 * rounded up to whole bytes.
 */
size_t ccid_notify_len(unsigned n_slots);

/*
 * Parses an interrupt-IN message of n bytes. For RDR_to_PC_NotifySlotChange it sets bit s of
 * *present and *changed for each slot s < n_slots (a message shorter than ccid_notify_len() is
 * SSC_EPROTO, as is a device of more than 32 slots) and returns CCID_RDR_NOTIFY_SLOT_CHANGE. For
 * RDR_to_PC_HardwareError (4 bytes: type, slot, seq, code) it sets *hw_slot and *hw_code and
 * returns CCID_RDR_HARDWARE_ERROR. Anything else is SSC_EPROTO. Pointers may not be NULL.
 */
int ccid_parse_interrupt(const uint8_t *p, size_t n, unsigned n_slots, uint32_t *present,
			 uint32_t *changed, uint8_t *hw_slot, uint8_t *hw_code);

#endif
