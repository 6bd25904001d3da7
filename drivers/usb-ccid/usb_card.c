/*
 * This file contains the USB CCID driver's activation of a card: IccPowerOn at the voltages the
 * reader offers, the ATR, the choice of protocol and speed (a PPS where the reader leaves it to
 * us, SetParameters or GetParameters), the T=1 IFSD, and the slot marked powered with its ATR.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sscard/error.h"
#include "usb_card.h"
#include "usb_io.h"
#include "usb_state.h"

#define USB_CARD_RESET 1   /* the card refused the PPS: reset it, then go on without */

/*
 * IccPowerOn with the voltages the reader offers (automatic first when it selects by itself).
 * Returns the ATR length, or SSC_ENOCARD, SSC_EPROTO (the card does not answer), SSC_ETIMEDOUT,
 * SSC_EREADER.
 */
static int usb_power_on(struct usb_dev *d, unsigned idx, uint8_t *atr, int64_t deadline)
{
	uint8_t volts[4];
	size_t nv = 0;
	int rc = SSC_EPROTO;

	if (d->desc.features & CCID_FEAT_AUTO_VOLTAGE)
		volts[nv++] = 0;
	if (d->desc.voltage_support & 0x01)
		volts[nv++] = 1;
	if (d->desc.voltage_support & 0x02)
		volts[nv++] = 2;
	if (d->desc.voltage_support & 0x04)
		volts[nv++] = 3;
	if (nv == 0)
		volts[nv++] = 0;

	for (size_t i = 0; i < nv;) {
		struct usb_io_cmd c;
		int64_t left = deadline - usb_now_ms();

		if (left <= 0)
			return SSC_ETIMEDOUT;
		usb_io_cmd_init(&c, CCID_PC_ICC_POWER_ON, CCID_RDR_DATA_BLOCK,
				usb_now_ms() + (left < USB_POWERON_TIMEOUT_MS ? left
									  : USB_POWERON_TIMEOUT_MS));
		c.b7 = volts[i];
		c.guard_ms = USB_POWERON_TIMEOUT_MS;
		c.out = atr;
		c.out_cap = SSC_ATR_MAX;
		rc = usb_io_cmd(d, idx, &c);
		if (rc == 0) {
			if (c.out_len < 2)
				return SSC_EPROTO;
			return (int)c.out_len;
		}
		if (!c.failed)
			return rc;
		if ((c.status & CCID_ICC_MASK) == CCID_ICC_ABSENT)
			return SSC_ENOCARD;
		if (c.error == CCID_ERR_BUSY_AUTO_SEQUENCE || c.error == CCID_ERR_CMD_SLOT_BUSY) {
			/* The reader is activating the card by itself: ask again shortly. */
			struct timespec ts = { 0, USB_BUSY_RETRY_MS * 1000000L };

			nanosleep(&ts, NULL);
			continue;
		}
		rc = c.error == CCID_ERR_HW_ERROR ? SSC_EREADER : SSC_EPROTO;
		i++;   /* mute, class not supported, bad bPowerSelect...: try the next voltage */
	}
	return rc;
}

/* Sends a PPS through XfrBlock (TPDU level). Returns 0 with *fidi, or < 0 (reset the card). */
static int usb_pps(struct usb_dev *d, unsigned idx, uint8_t proto, uint8_t want_fidi,
		   uint8_t *fidi, int64_t deadline)
{
	uint8_t req[ATR_PPS_MAX], resp[16];
	struct usb_io_block b = { .data = req, .out = resp, .out_cap = sizeof(resp) };
	int n, len = atr_pps_build(proto, want_fidi, req);

	if (len < 0)
		return len;
	b.len = (size_t)len;
	n = usb_io_xfr(d, idx, &b, deadline);
	if (n < 0)
		return n == SSC_EIO ? SSC_EPROTO : n;
	return atr_pps_check(req, (size_t)len, resp, (size_t)n, fidi);
}

/* GetParameters: the protocol the reader runs now (0 or 1), or < 0. */
static int usb_get_protocol(struct usb_dev *d, unsigned idx, int64_t deadline)
{
	uint8_t p[16];
	struct usb_io_cmd c;
	int rc;

	usb_io_cmd_init(&c, CCID_PC_GET_PARAMETERS, CCID_RDR_PARAMETERS, deadline);
	c.out = p;
	c.out_cap = sizeof(p);
	rc = usb_io_cmd(d, idx, &c);
	if (rc != 0)
		return rc;
	return c.param <= 1 ? c.param : SSC_EPROTO;
}

/* SetParameters for protocol proto at Fi/Di fidi. Returns 0 or < 0. */
static int usb_set_parameters(struct usb_dev *d, unsigned idx, const struct atr_info *ai,
			      uint8_t proto, uint8_t fidi, int64_t deadline)
{
	uint8_t p[7], back[16];
	struct usb_io_cmd c;
	int n = atr_ccid_params(ai, proto, fidi, p);

	if (n < 0)
		return n;
	usb_io_cmd_init(&c, CCID_PC_SET_PARAMETERS, CCID_RDR_PARAMETERS, deadline);
	c.b7 = proto;
	c.data = p;
	c.len = (size_t)n;
	c.out = back;
	c.out_cap = sizeof(back);
	return usb_io_cmd(d, idx, &c);
}

/*
 * TPDU level: the protocol and speed that both the card and the reader speak; after a refused PPS
 * (after_pps), the card's first protocol at the default speed. Returns 0 or < 0 (logged).
 */
static int usb_card_choose(struct usb_dev *d, unsigned idx, int after_pps, struct atr_choice *ch)
{
	const struct atr_info *ai = &d->slot[idx].ai;
	int rc;

	/* t1.c does the LRC only: a card that wants T=1 with CRC gets T=0 or nothing. */
	rc = atr_choose(ai, ai->crc ? d->desc.protocols & ~CCID_PROTO_T1 : d->desc.protocols,
			d->desc.max_data_rate_bps, d->desc.default_clock_khz, ch);
	if (rc != 0) {
		log_warn("usb-ccid: %s slot %u: no protocol both the card (%04X%s) and the "
			 "reader (%X) speak", d->base_id, idx, ai->protocols,
			 ai->crc ? ", T=1 with CRC" : "", d->desc.protocols);
		return rc;
	}
	if (after_pps) {
		/*
		 * The PPS failed and the card was reset: it runs its first protocol at the default
		 * speed. Should the reader not speak that one, go on with our choice unnegotiated:
		 * some readers switch on SetParameters alone.
		 */
		if (ai->default_proto <= 1 && (d->desc.protocols & (1u << ai->default_proto)))
			ch->proto = ai->default_proto;
		ch->fidi = ATR_FIDI_DEFAULT;
		ch->need_pps = 0;
	}
	return 0;
}

/*
 * TPDU level: agrees on ch with the card and the reader: a PPS where the reader leaves it to us,
 * then SetParameters (or, where the reader negotiates by itself, GetParameters to learn what it
 * chose). Returns 0 (ch as agreed), USB_CARD_RESET (the card refused the PPS: reset it and go on
 * with its defaults), or < 0.
 */
static int usb_card_negotiate(struct usb_dev *d, unsigned idx, struct atr_choice *ch,
			      int64_t deadline)
{
	int rc;

	if (ch->need_pps && !(d->desc.features & (CCID_FEAT_AUTO_NEGOTIATION | CCID_FEAT_AUTO_PPS))) {
		uint8_t fidi = ATR_FIDI_DEFAULT;

		rc = usb_pps(d, idx, ch->proto, ch->fidi, &fidi, deadline);
		if (rc != 0) {
			if (rc != SSC_EPROTO && rc != SSC_ETIMEDOUT)
				return rc;
			log_info("usb-ccid: %s slot %u: PPS refused; resetting the card", d->base_id,
				 idx);
			return USB_CARD_RESET;
		}
		ch->fidi = fidi;
	}
	/* With CCID_FEAT_AUTO_PPS, the SetParameters below makes the reader send the PPS. */
	if (d->desc.features & CCID_FEAT_AUTO_NEGOTIATION) {
		rc = usb_get_protocol(d, idx, deadline);
		if (rc >= 0)
			ch->proto = (uint8_t)rc;
		return 0;
	}
	rc = usb_set_parameters(d, idx, &d->slot[idx].ai, ch->proto, ch->fidi, deadline);
	if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
		return SSC_ENOCARD;
	if (rc == SSC_ETIMEDOUT)
		return rc;
	if (rc != 0) {
		/* Refused: keep what the reader runs, if it says. */
		rc = usb_get_protocol(d, idx, deadline);
		if (rc >= 0)
			ch->proto = (uint8_t)rc;
		log_info("usb-ccid: %s slot %u: SetParameters refused; using T=%u", d->base_id, idx,
			 ch->proto);
	}
	return 0;
}

/* T=1: the block protocol's state, and the IFSD we ask the card for (unless the reader does). */
static void usb_card_t1_init(struct usb_dev *d, unsigned idx)
{
	struct usb_slot_state *st = &d->slot[idx];
	size_t cap = d->desc.max_msg_len - CCID_HDR_LEN - T1_PROLOGUE - 1;
	uint32_t ifsd = d->desc.max_ifsd ? d->desc.max_ifsd : T1_INF_MAX;

	if (cap > T1_INF_MAX)
		cap = T1_INF_MAX;
	if (ifsd > cap)
		ifsd = (uint32_t)cap;
	t1_init(&st->t1, st->ai.ifsc, (uint8_t)cap);
	st->ifsd_want = (d->desc.features & CCID_FEAT_AUTO_IFSD) ? 0 : (uint8_t)ifsd;
	st->ifsd_tries = 0;
	if (d->desc.features & CCID_FEAT_AUTO_IFSD)
		st->t1.ifsd = (uint8_t)ifsd;   /* the reader announced its own */
}

/*
 * TPDU level, after the ATR (parsed into the slot): protocol, speed and parameters, and the T=1
 * state. Returns 0, USB_CARD_RESET (as usb_card_negotiate()), or < 0.
 */
static int usb_card_tpdu(struct usb_dev *d, unsigned idx, int after_pps, int64_t deadline)
{
	struct usb_slot_state *st = &d->slot[idx];
	struct atr_choice ch;
	int rc = usb_card_choose(d, idx, after_pps, &ch);

	if (rc == 0)
		rc = usb_card_negotiate(d, idx, &ch, deadline);
	if (rc != 0)
		return rc;
	st->proto = ch.proto;
	st->fidi = ch.fidi;
	st->wait_ms = atr_wait_ms(&st->ai, ch.proto, ch.fidi, d->desc.default_clock_khz);
	if (st->proto == 1)
		usb_card_t1_init(d, idx);
	return 0;
}

/*
 * APDU level: the reader runs the protocol; SetParameters from the ATR where the reader does not
 * take them from it by itself. parsed: the slot holds the parsed ATR. Returns 0 or SSC_ENOCARD.
 */
static int usb_card_apdu(struct usb_dev *d, unsigned idx, int parsed, int64_t deadline)
{
	struct usb_slot_state *st = &d->slot[idx];
	struct atr_choice ch;

	st->proto = USB_PROTO_APDU;
	if (parsed && !(d->desc.features & (CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_NEGOTIATION)) &&
	    atr_choose(&st->ai, d->desc.protocols, d->desc.max_data_rate_bps,
		       d->desc.default_clock_khz, &ch) == 0) {
		int rc = usb_set_parameters(d, idx, &st->ai, ch.proto, ATR_FIDI_DEFAULT, deadline);

		if (rc == SSC_ENOCARD || rc == SSC_ECARDREMOVED)
			return SSC_ENOCARD;
	}
	if (parsed)
		st->wait_ms = atr_wait_ms(&st->ai, st->ai.default_proto > 1 ? 0 : st->ai.default_proto,
					  ATR_FIDI_DEFAULT, d->desc.default_clock_khz);
	return 0;
}

int usb_card_activate(struct usb_dev *d, unsigned idx, int64_t deadline, uint8_t *atr,
		      size_t *atr_len, unsigned *gen)
{
	struct usb_slot_state *st = &d->slot[idx];
	uint8_t buf[SSC_ATR_MAX];
	int n, rc, parsed;

	for (int after_pps = 0;; after_pps = 1) {
		n = usb_power_on(d, idx, buf, deadline);
		if (n < 0)
			return n;
		parsed = atr_parse(buf, (size_t)n, &st->ai) == 0;
		st->fidi = ATR_FIDI_DEFAULT;
		st->wait_ms = 0;
		if (d->level != CCID_LEVEL_TPDU) {
			rc = usb_card_apdu(d, idx, parsed, deadline);
		} else if (!parsed) {
			log_warn("usb-ccid: %s slot %u: malformed ATR", d->base_id, idx);
			rc = SSC_EPROTO;
		} else {
			rc = usb_card_tpdu(d, idx, after_pps, deadline);
		}
		if (rc != USB_CARD_RESET)
			break;
		usb_io_power_off(d, idx, deadline);
	}
	if (rc != 0)
		return rc;
	if (!parsed)
		log_debug("usb-ccid: %s slot %u: ATR not understood; the reader handles it",
			  d->base_id, idx);

	pthread_mutex_lock(&d->drv->lock);
	*gen = usb_state_active_locked(d, idx, buf, (size_t)n);
	pthread_mutex_unlock(&d->drv->lock);
	memcpy(atr, buf, (size_t)n);
	*atr_len = (size_t)n;
	log_debug("usb-ccid: %s slot %u: card active, %s", d->base_id, idx,
		  st->proto == USB_PROTO_APDU ? "APDU level" : st->proto == 1 ? "T=1" : "T=0");
	return 0;
}
