/*
 * This file contains the PC_to_RDR messages the CCID codec's unit test (test_ccid.c) builds with
 * ccid_encode(), one builder a message type, each checking its message's own rules. The driver
 * sends these messages through ccid_encode() directly; only PC_to_RDR_Abort has a builder of its
 * own in the product (ccid_enc_abort, for the abort sequence). Header-only, static inline.
 */
#ifndef TEST_CCID_ENC_H
#define TEST_CCID_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "sscard/error.h"

#include "../../../drivers/usb-ccid/ccid.h"

/* PC_to_RDR_IccPowerOn; power_select 0 automatic, 1 5 V, 2 3 V, 3 1.8 V. As ccid_encode(). */
static inline int cu_enc_power_on(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq,
				  uint8_t power_select)
{
	const struct ccid_msg m = { CCID_PC_ICC_POWER_ON, slot, seq, power_select, 0, 0, NULL, 0 };

	if (power_select > 3)
		return SSC_EINVAL;
	return ccid_encode(out, cap, &m);
}

/* PC_to_RDR_IccPowerOff. As ccid_encode(). */
static inline int cu_enc_power_off(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq)
{
	const struct ccid_msg m = { CCID_PC_ICC_POWER_OFF, slot, seq, 0, 0, 0, NULL, 0 };

	return ccid_encode(out, cap, &m);
}

/* PC_to_RDR_GetSlotStatus. As ccid_encode(). */
static inline int cu_enc_get_slot_status(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq)
{
	const struct ccid_msg m = { CCID_PC_GET_SLOT_STATUS, slot, seq, 0, 0, 0, NULL, 0 };

	return ccid_encode(out, cap, &m);
}

/* PC_to_RDR_GetParameters. As ccid_encode(). */
static inline int cu_enc_get_parameters(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq)
{
	const struct ccid_msg m = { CCID_PC_GET_PARAMETERS, slot, seq, 0, 0, 0, NULL, 0 };

	return ccid_encode(out, cap, &m);
}

/*
 * PC_to_RDR_SetParameters for protocol (0: T=0 with 5 bytes of parameters, 1: T=1 with 7).
 * Returns as ccid_encode(), or SSC_EINVAL for another protocol or a wrong parameter length.
 */
static inline int cu_enc_set_parameters(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq,
					uint8_t protocol, const uint8_t *params, size_t len)
{
	const struct ccid_msg m = { CCID_PC_SET_PARAMETERS, slot, seq, protocol, 0, 0, params, len };

	if ((protocol == 0 && len != 5) || (protocol == 1 && len != 7) || protocol > 1)
		return SSC_EINVAL;
	return ccid_encode(out, cap, &m);
}

/* PC_to_RDR_XfrBlock with bBWI and wLevelParameter (little-endian on the wire). */
static inline int cu_enc_xfr_block(uint8_t *out, size_t cap, uint8_t slot, uint8_t seq,
				   uint8_t bwi, uint16_t level_param, const uint8_t *data,
				   size_t len)
{
	const struct ccid_msg m = { CCID_PC_XFR_BLOCK, slot, seq, bwi, (uint8_t)level_param,
				    (uint8_t)(level_param >> 8), data, len };

	return ccid_encode(out, cap, &m);
}

#endif
