/*
 * This file contains the USB CCID message codec (ccid.h): class descriptor parsing, PC_to_RDR
 * encoding, RDR_to_PC decoding and checking, interrupt notifications, and the one mapping of CCID
 * bStatus/bError to sscard errors. Pure functions; no I/O, no allocation, no logging.
 */
#include <string.h>

#include "ccid.h"
#include "sscard/error.h"

static uint32_t ccid_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t ccid_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int ccid_parse_class_desc(const uint8_t *p, size_t len, struct ccid_class_desc *out)
{
	if (!p || !out)
		return SSC_EINVAL;
	if (len < CCID_CLASS_DESC_LEN || p[0] != CCID_CLASS_DESC_LEN)
		return SSC_EPROTO;
	/* 0xFF: some readers made before CCID 1.0 was final give the descriptor this type. */
	if (p[1] != CCID_CLASS_DESC_TYPE && p[1] != 0xFF)
		return SSC_EPROTO;
	memset(out, 0, sizeof(*out));
	out->bcd_ccid = ccid_le16(p + 2);
	out->max_slot_index = p[4];
	out->voltage_support = p[5];
	out->protocols = ccid_le32(p + 6);
	out->default_clock_khz = ccid_le32(p + 10);
	out->max_clock_khz = ccid_le32(p + 14);
	out->num_clocks = p[18];
	out->data_rate_bps = ccid_le32(p + 19);
	out->max_data_rate_bps = ccid_le32(p + 23);
	out->num_data_rates = p[27];
	out->max_ifsd = ccid_le32(p + 28);
	out->synch_protocols = ccid_le32(p + 32);
	out->mechanical = ccid_le32(p + 36);
	out->features = ccid_le32(p + 40);
	out->max_msg_len = ccid_le32(p + 44);
	out->class_get_response = p[48];
	out->class_envelope = p[49];
	out->lcd_layout = ccid_le16(p + 50);
	out->pin_support = p[52];
	out->max_busy_slots = p[53];
	if (out->max_slot_index >= CCID_MAX_SLOTS)
		return SSC_EPROTO;
	return 0;
}

int ccid_find_class_desc(const uint8_t *p, size_t len)
{
	size_t off = 0;

	if (!p)
		return SSC_ENOTFOUND;
	while (off + 2 <= len) {
		uint8_t blen = p[off];

		if (blen < 2 || off + blen > len)
			return SSC_ENOTFOUND;   /* a malformed record: nothing after it can be trusted */
		if (blen == CCID_CLASS_DESC_LEN &&
		    (p[off + 1] == CCID_CLASS_DESC_TYPE || p[off + 1] == 0xFF))
			return (int)off;
		off += blen;
	}
	return SSC_ENOTFOUND;
}

enum ccid_level ccid_exchange_level(uint32_t features)
{
	if (features & CCID_FEAT_LEVEL_EXT_APDU)
		return CCID_LEVEL_EXT_APDU;
	if (features & CCID_FEAT_LEVEL_SHORT_APDU)
		return CCID_LEVEL_SHORT_APDU;
	if (features & CCID_FEAT_LEVEL_TPDU)
		return CCID_LEVEL_TPDU;
	return CCID_LEVEL_CHAR;
}

int ccid_encode(uint8_t *out, size_t cap, const struct ccid_msg *m)
{
	size_t len;

	if (!out || !m)
		return SSC_EINVAL;
	len = m->len;
	if ((len > 0 && !m->data) || len > 0xFFFFFFFFu - CCID_HDR_LEN || cap < CCID_HDR_LEN ||
	    len > cap - CCID_HDR_LEN)
		return SSC_EINVAL;
	if (len > (size_t)0x7FFFFFFF - CCID_HDR_LEN)
		return SSC_EINVAL;   /* the length must fit the int we return */
	out[0] = m->type;
	out[1] = (uint8_t)len;
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)(len >> 16);
	out[4] = (uint8_t)(len >> 24);
	out[5] = m->slot;
	out[6] = m->seq;
	out[7] = m->b7;
	out[8] = m->b8;
	out[9] = m->b9;
	if (len > 0)
		memcpy(out + CCID_HDR_LEN, m->data, len);
	return (int)(CCID_HDR_LEN + len);
}

int ccid_enc_abort(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq)
{
	const struct ccid_msg m = { .type = CCID_PC_ABORT, .slot = slot, .seq = seq };

	return ccid_encode(out, cap, &m);
}

int ccid_decode(const uint8_t *msg, size_t n, size_t max_data, struct ccid_reply *out)
{
	uint32_t len;

	if (!msg || !out)
		return SSC_EINVAL;
	if (n < CCID_HDR_LEN)
		return SSC_EPROTO;   /* truncated header */
	switch (msg[0]) {
	case CCID_RDR_DATA_BLOCK:
	case CCID_RDR_SLOT_STATUS:
	case CCID_RDR_PARAMETERS:
	case CCID_RDR_ESCAPE:
	case CCID_RDR_DATA_RATE_CLOCK:
		break;
	default:
		return SSC_EPROTO;
	}
	len = ccid_le32(msg + 1);
	if (len > max_data)
		return SSC_EPROTO;   /* oversized: more than the caller (or dwMaxCCIDMessageLength) allows */
	if ((size_t)len != n - CCID_HDR_LEN)
		return SSC_EPROTO;   /* truncated body, or bytes after the message */
	out->type = msg[0];
	out->len = len;
	out->slot = msg[5];
	out->seq = msg[6];
	out->status = msg[7];
	out->error = msg[8];
	out->param = msg[9];
	out->data = msg + CCID_HDR_LEN;
	return 0;
}

int ccid_error_map(uint8_t status, uint8_t error)
{
	if ((status & CCID_ICC_MASK) == CCID_ICC_ABSENT)
		return SSC_ECARDREMOVED;
	switch (error) {
	case CCID_ERR_ICC_MUTE:
		return SSC_ETIMEDOUT;
	case CCID_ERR_XFR_PARITY:
	case CCID_ERR_XFR_OVERRUN:
		return SSC_EIO;
	case CCID_ERR_BAD_ATR_TS:
	case CCID_ERR_BAD_ATR_TCK:
	case CCID_ERR_PROTOCOL_NOT_SUPPORTED:
	case CCID_ERR_CLASS_NOT_SUPPORTED:
	case CCID_ERR_PROCEDURE_BYTE_CONFLICT:
	case CCID_ERR_DEACTIVATED_PROTOCOL:
		return SSC_EPROTO;
	case CCID_ERR_CMD_SLOT_BUSY:
	case CCID_ERR_BUSY_AUTO_SEQUENCE:
		return SSC_EREADERBUSY;
	default:
		break;
	}
	if ((status & CCID_ICC_MASK) == CCID_ICC_INACTIVE)
		return SSC_ECARDREMOVED;
	return SSC_EREADER;
}

const char *ccid_error_name(uint8_t error)
{
	switch (error) {
	case CCID_ERR_CMD_NOT_SUPPORTED:
		return "command not supported";
	case CCID_ERR_CMD_ABORTED:
		return "CMD_ABORTED";
	case CCID_ERR_ICC_MUTE:
		return "ICC_MUTE";
	case CCID_ERR_XFR_PARITY:
		return "XFR_PARITY_ERROR";
	case CCID_ERR_XFR_OVERRUN:
		return "XFR_OVERRUN";
	case CCID_ERR_HW_ERROR:
		return "HW_ERROR";
	case CCID_ERR_BAD_ATR_TS:
		return "BAD_ATR_TS";
	case CCID_ERR_BAD_ATR_TCK:
		return "BAD_ATR_TCK";
	case CCID_ERR_PROTOCOL_NOT_SUPPORTED:
		return "ICC_PROTOCOL_NOT_SUPPORTED";
	case CCID_ERR_CLASS_NOT_SUPPORTED:
		return "ICC_CLASS_NOT_SUPPORTED";
	case CCID_ERR_PROCEDURE_BYTE_CONFLICT:
		return "PROCEDURE_BYTE_CONFLICT";
	case CCID_ERR_DEACTIVATED_PROTOCOL:
		return "DEACTIVATED_PROTOCOL";
	case CCID_ERR_BUSY_AUTO_SEQUENCE:
		return "BUSY_WITH_AUTO_SEQUENCE";
	case CCID_ERR_PIN_TIMEOUT:
		return "PIN_TIMEOUT";
	case CCID_ERR_PIN_CANCELLED:
		return "PIN_CANCELLED";
	case CCID_ERR_CMD_SLOT_BUSY:
		return "CMD_SLOT_BUSY";
	default:
		return error >= 1 && error <= 0x7F ? "bad parameter" : "unknown error";
	}
}

int ccid_check_reply(const struct ccid_reply *r, uint8_t expect_type, uint8_t slot, uint8_t seq,
		     int check_seq)
{
	if (!r)
		return SSC_EINVAL;
	if (r->slot != slot || (check_seq && r->seq != seq))
		return SSC_EPROTO;
	if (r->type != expect_type &&
	    !(r->type == CCID_RDR_SLOT_STATUS && (r->status & CCID_CMD_MASK) == CCID_CMD_FAILED))
		return SSC_EPROTO;
	switch (r->status & CCID_CMD_MASK) {
	case CCID_CMD_OK:
		return 0;
	case CCID_CMD_TIME_EXT:
		return 1;
	case CCID_CMD_FAILED:
		return ccid_error_map(r->status, r->error);
	default:
		return SSC_EPROTO;   /* bmCommandStatus 3 is RFU */
	}
}

size_t ccid_notify_len(unsigned n_slots)
{
	return 1 + ((size_t)n_slots * 2 + 7) / 8;
}

int ccid_parse_interrupt(const uint8_t *p, size_t n, unsigned n_slots, uint32_t *present,
			 uint32_t *changed, uint8_t *hw_slot, uint8_t *hw_code)
{
	if (!p || n < 1)
		return SSC_EPROTO;
	if (p[0] == CCID_RDR_NOTIFY_SLOT_CHANGE) {
		uint32_t pr = 0, ch = 0;

		if (n_slots > 32 || n < ccid_notify_len(n_slots))
			return SSC_EPROTO;
		for (unsigned s = 0; s < n_slots; s++) {
			uint8_t bits = (uint8_t)(p[1 + s / 4] >> ((s % 4) * 2));

			if (bits & 0x01)
				pr |= 1u << s;
			if (bits & 0x02)
				ch |= 1u << s;
		}
		*present = pr;
		*changed = ch;
		return CCID_RDR_NOTIFY_SLOT_CHANGE;
	}
	if (p[0] == CCID_RDR_HARDWARE_ERROR) {
		if (n < 4)
			return SSC_EPROTO;
		*hw_slot = p[1];
		*hw_code = p[3];
		return CCID_RDR_HARDWARE_ERROR;
	}
	return SSC_EPROTO;
}
