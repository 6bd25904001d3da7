/*
 * This file contains the pending GET RESPONSE answer of sim_pending.h.
 */
#include "sim_pending.h"

#include <string.h>

#include "sim_crypto.h"

void sim_pending_set(struct sim_pending *p, const uint8_t *data, size_t len)
{
	if (len > sizeof(p->data))
		len = sizeof(p->data);
	memcpy(p->data, data, len);
	p->len = len;
	p->has = true;
}

void sim_pending_clear(struct sim_pending *p)
{
	p->has = false;
	p->len = 0;
	sim_crypto_wipe(p->data, sizeof(p->data));
}

uint16_t sim_pending_get_response(struct sim_pending *p, const struct sim_apdu *a, uint8_t *out,
				  size_t *outlen)
{
	size_t le, n;

	if (a->p1 != 0 || a->p2 != 0)
		return SW_BAD_P1P2;
	if (a->lc != 0)
		return SW_WRONG_LENGTH;
	if (!p->has)
		return SW_CONDITIONS;
	le = a->has_le ? a->le : 256;
	n = le < p->len ? le : p->len;
	memcpy(out, p->data, n);
	*outlen = n;
	if (n < p->len) {
		/* Hand out the rest with the next GET RESPONSE. */
		memmove(p->data, p->data + n, p->len - n);
		p->len -= n;
		return (uint16_t)(SW_BYTES_LEFT | (p->len & 0xFF));
	}
	p->has = false;
	p->len = 0;
	return SW_OK;
}
