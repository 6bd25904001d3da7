/*
 * This file contains the PC/SC reader driver's card connections (ssc_driver_pcsc,
 * include/sscard/driver.h; the reader list and its monitor are in drivers/pcsc.c): connect,
 * transmit, reconnect, status, share and claim, disconnect. Every slot owns its SCARDCONTEXT and
 * card handle; the core hands a slot to one thread at a time (under its per-reader card lock).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "log.h"
#include "pcsc.h"
#include "sscard/driver.h"
#include "sscard/error.h"

#define PCSC_SHARING_RETRY_MS 50     /* pause between two exclusive connects refused as shared */
#define PCSC_RECV_MAX 264            /* pcsc-lite's MAX_BUFFER_SIZE: a short answer always fits */

struct ssc_slot {
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto;
	int have_ctx;
	int have_card;
	int broken;                          /* context or handle died: reconnect from scratch */
	int card_gone;                       /* a transmit said the card left (or was reset) */
	int connect_retry_ms;
	char name[SSC_READER_NAME_MAX];
};

/* Finds the name of the reader whose id is reader_id, on the slot's context. */
static int pcsc_find_name(struct ssc_slot *s, const char *reader_id)
{
	char *names = NULL;
	char id[SSC_READER_ID_MAX];
	DWORD len = 0;
	LONG rv;
	int found = 0;

	pcsc_gate_enter(0);
	rv = pcsc_list_names(s->ctx, &names, &len);
	pcsc_gate_leave();
	if (rv != SCARD_S_SUCCESS)
		return pcsc_rv_dead(rv) ? SSC_EREADER : pcsc_map(rv);
	for (const char *p = names; p && len > 0 && *p; p += strlen(p) + 1) {
		if (strlen(p) >= SSC_READER_NAME_MAX)
			continue;
		pcsc_reader_id(p, id, sizeof(id));
		if (strcmp(id, reader_id) == 0) {
			memcpy(s->name, p, strlen(p) + 1);
			found = 1;
			break;
		}
	}
	if (names)
		(void)SCardFreeMemory(s->ctx, names);
	return found ? 0 : SSC_ENOREADER;
}

/* Reads the ATR of the connected card, and the reader's state (*state) with it. */
static int pcsc_read_atr(struct ssc_slot *s, uint8_t *atr, size_t *atr_len, DWORD *state)
{
	unsigned char buf[MAX_ATR_SIZE];
	char rname[SSC_READER_NAME_MAX];
	DWORD rlen = sizeof(rname), proto = 0, alen = sizeof(buf);
	LONG rv;

	pcsc_gate_enter(0);
	rv = SCardStatus(s->card, rname, &rlen, state, &proto, buf, &alen);
	pcsc_gate_leave();
	if (rv != SCARD_S_SUCCESS) {
		if (pcsc_rv_dead(rv))
			s->broken = 1;
		return pcsc_map(rv);
	}
	if (alen > SSC_ATR_MAX)
		return SSC_EPROTO;
	memcpy(atr, buf, alen);
	*atr_len = alen;
	return 0;
}

/* SCardConnect (exclusive, T=0 or T=1), retrying a sharing violation until deadline. */
/* Whether the reader of s reports a card right now (1), or is empty or unreadable (0). */
static int pcsc_card_in_reader(struct ssc_slot *s)
{
	SCARD_READERSTATE st;
	LONG rv;

	memset(&st, 0, sizeof(st));
	st.szReader = s->name;
	st.dwCurrentState = SCARD_STATE_UNAWARE;
	pcsc_gate_enter(0);
	rv = SCardGetStatusChange(s->ctx, 0, &st, 1);
	pcsc_gate_leave();
	if (rv != SCARD_S_SUCCESS)
		return 0;
	return (st.dwEventState & SCARD_STATE_PRESENT) != 0;
}

/*
 * Another program holds the card (a sharing violation): waits a moment before the next try, or
 * returns SSC_EREADERBUSY at the deadline.
 */
static int pcsc_sharing_wait(int64_t deadline)
{
	int64_t left = deadline - pcsc_now_ms();

	if (left <= 0)
		return SSC_EREADERBUSY;
	pcsc_sleep_ms(left < PCSC_SHARING_RETRY_MS ? (int)left : PCSC_SHARING_RETRY_MS);
	return 0;
}

static int pcsc_connect_card(struct ssc_slot *s, int64_t deadline)
{
	LONG rv;

	for (;;) {
		rv = SCardConnect(s->ctx, s->name, SCARD_SHARE_EXCLUSIVE,
				  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &s->card, &s->proto);
		if (rv == SCARD_S_SUCCESS) {
			s->have_card = 1;
			return 0;
		}
		if (rv == SCARD_E_SHARING_VIOLATION) {
			if (pcsc_sharing_wait(deadline) != 0)
				return SSC_EREADERBUSY;
			continue;
		}
		if (pcsc_rv_dead(rv)) {
			s->broken = 1;
			return SSC_EREADER;
		}
		/* No card, or a card that left: for a new connection both mean "no card". */
		if (rv == SCARD_W_REMOVED_CARD || rv == SCARD_E_NO_SMARTCARD)
			return SSC_ENOCARD;
		/*
		 * A card pulled while pcscd powers it up makes SCardConnect fail with what looks
		 * like a card fault (SCARD_E_PROTO_MISMATCH, SCARD_W_UNRESPONSIVE_CARD...). Ask
		 * once whether a card is still there, so that the client hears "no card" (std
		 * code -2), not "malformed answer".
		 */
		if (!pcsc_card_in_reader(s)) {
			log_debug("pcsc: %s: connect failed (%s) and the reader is now empty", s->name,
				  pcsc_stringify_error(rv));
			return SSC_ENOCARD;
		}
		return pcsc_map(rv);
	}
}

static void pcsc_slot_release(struct ssc_slot *s, DWORD disposition)
{
	if (s->have_card)
		(void)SCardDisconnect(s->card, disposition);
	s->have_card = 0;
	if (s->have_ctx)
		(void)SCardReleaseContext(s->ctx);
	s->have_ctx = 0;
}

static int pcsc_connect(struct ssc_driver *drv, const char *reader_id, int timeout_ms,
			struct ssc_slot **out, uint8_t *atr, size_t *atr_len)
{
	struct ssc_slot *s;
	int64_t deadline = pcsc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	LONG rv;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return SSC_ENOMEM;
	s->connect_retry_ms = pcsc_connect_retry_ms(drv);
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &s->ctx);
	if (rv != SCARD_S_SUCCESS) {
		free(s);
		return SSC_EREADER;
	}
	s->have_ctx = 1;
	r = pcsc_find_name(s, reader_id);
	if (r == 0)
		r = pcsc_connect_card(s, deadline);
	if (r == 0)
		r = pcsc_read_atr(s, atr, atr_len, &(DWORD){ 0 });
	if (r != 0) {
		pcsc_slot_release(s, SCARD_LEAVE_CARD);
		free(s);
		return r == SSC_ECARDREMOVED ? SSC_ENOCARD : r;
	}
	*out = s;
	return 0;
}

static int pcsc_transmit(struct ssc_slot *s, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
			 size_t resp_cap, int timeout_ms)
{
	const SCARD_IO_REQUEST *pci;
	uint8_t buf[PCSC_RECV_MAX];
	DWORD len = sizeof(buf);
	LONG rv;
	int r;

	(void)timeout_ms;   /* PC/SC has no transmit timeout: the core bounds the wait outside */
	if (!s->have_card || s->broken)
		return SSC_ECARDREMOVED;
	if (cmd_len > SSC_CMD_APDU_MAX)
		return SSC_EINVAL;
	if (s->proto == SCARD_PROTOCOL_T0)
		pci = SCARD_PCI_T0;
	else if (s->proto == SCARD_PROTOCOL_T1)
		pci = SCARD_PCI_T1;
	else
		pci = SCARD_PCI_RAW;
	rv = SCardTransmit(s->card, pci, cmd, (DWORD)cmd_len, NULL, buf, &len);
	if (rv != SCARD_S_SUCCESS) {
		log_debug("pcsc: SCardTransmit %s: %s (0x%08lX)", s->name, pcsc_stringify_error(rv),
			  (unsigned long)rv);
		if (pcsc_rv_dead(rv) || rv == SCARD_E_UNKNOWN_READER ||
		    rv == SCARD_E_READER_UNAVAILABLE) {
			s->broken = 1;
			return SSC_EREADER;
		}
		r = pcsc_map(rv);
		if (r == SSC_ECARDREMOVED || r == SSC_ENOCARD)
			s->card_gone = 1;
		return r;
	}
	if (len == 0) {
		log_debug("pcsc: SCardTransmit %s: success with an empty answer", s->name);
		/*
		 * vpcd 3.3 answers success with no bytes when the card vanished after it was sent the
		 * APDU (test-harness.md §2 case 4): a removal, not a protocol fault.
		 */
		r = SSC_ECARDREMOVED;
		s->card_gone = 1;
	} else if (len < 2 || len > resp_cap || len > sizeof(buf)) {
		r = SSC_EPROTO;
	} else {
		memcpy(resp, buf, len);
		r = (int)len;
	}
	explicit_bzero(buf, sizeof(buf));   /* the answer may hold personal data */
	return r;
}

/* Connects s to its card afresh (within its retry time) and reads the ATR. Returns 0 or < 0. */
static int pcsc_connect_atr(struct ssc_slot *s, uint8_t *atr, size_t *atr_len)
{
	int r = pcsc_connect_card(s, pcsc_now_ms() + s->connect_retry_ms);

	return r == 0 ? pcsc_read_atr(s, atr, atr_len, &(DWORD){ 0 }) : r;
}

static int pcsc_reconnect(struct ssc_slot *s, uint8_t *atr, size_t *atr_len)
{
	LONG rv;
	int r;

	if (s->have_card && !s->broken && s->card_gone) {
		/*
		 * Never reset a card that left: pcsc-lite 1.9.9 then fails the reset, marks the reader
		 * empty in its shared state and, if the card came back before its presence poll saw it
		 * go, never corrects that (the reader looks empty until the card is pulled again). A
		 * card that was pulled and put back has been powered up afresh anyway.
		 */
		(void)SCardDisconnect(s->card, SCARD_LEAVE_CARD);
		s->have_card = 0;
		s->card_gone = 0;
		r = pcsc_connect_atr(s, atr, atr_len);
		if (r == 0)
			return 0;
		if (!s->broken)
			return (r == SSC_ENOCARD || r == SSC_ECARDREMOVED) ? SSC_ENOCARD : SSC_EREADER;
	}
	if (s->have_card && !s->broken) {
		rv = SCardReconnect(s->card, SCARD_SHARE_EXCLUSIVE,
				    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_RESET_CARD, &s->proto);
		if (rv == SCARD_S_SUCCESS) {
			r = pcsc_read_atr(s, atr, atr_len, &(DWORD){ 0 });
			return r == 0 ? 0 : (r == SSC_ECARDREMOVED || r == SSC_ENOCARD) ? SSC_ENOCARD
										    : SSC_EREADER;
		}
		if (rv == SCARD_E_NO_SMARTCARD || rv == SCARD_W_REMOVED_CARD)
			return SSC_ENOCARD;
		if (!pcsc_rv_dead(rv))
			return SSC_EREADER;
	}
	/* The context or handle died (pcscd restarted): start over on a new context. */
	pcsc_slot_release(s, SCARD_LEAVE_CARD);
	s->broken = 0;
	s->card_gone = 0;
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &s->ctx);
	if (rv != SCARD_S_SUCCESS)
		return SSC_EREADER;
	s->have_ctx = 1;
	r = pcsc_connect_atr(s, atr, atr_len);
	return r == 0 ? 0 : (r == SSC_ENOCARD || r == SSC_ECARDREMOVED) ? SSC_ENOCARD : SSC_EREADER;
}

/* SCardStatus on the handle: pcscd's mark of a removal or reset since it connected, its counter. */
static int pcsc_status(struct ssc_slot *s, uint32_t *insertions)
{
	uint8_t atr[SSC_ATR_MAX];
	size_t n;
	DWORD state = 0;
	int r = s->card_gone || s->broken ? SSC_ECARDREMOVED : pcsc_read_atr(s, atr, &n, &state);

	if (r == SSC_ECARDREMOVED || r == SSC_ENOCARD || (r == 0 && !(state & SCARD_PRESENT)))
		s->card_gone = 1;   /* reconnect() connects afresh, never resets a card that left */
	*insertions = (uint32_t)(state >> 16) & 0xFFFFu;   /* pcsc-lite's event counter */
	return s->card_gone ? SSC_ECARDREMOVED : r == 0 ? 0 : SSC_EREADER;
}

/*
 * A shared handle instead of the exclusive one, the card left as it is: others may use it, and
 * this handle sees their resets. Not SCardReconnect(SCARD_SHARE_SHARED): pcsc-lite 1.9.9 (Debian
 * 12) then keeps the exclusive lock (RFUnlockSharing refuses to drop the last one), and every other
 * program's SCardConnect to that reader waits in pcscd until this handle is closed. So the
 * exclusive handle is closed and a shared one opened at once; what happens in between (a removal
 * and insertion) shows in pcscd's event counter, which the caller compares after this.
 */
static int pcsc_share(struct ssc_slot *s)
{
	LONG rv;

	if (!s->have_card || s->broken || s->card_gone)
		return SSC_ECARDREMOVED;
	(void)SCardDisconnect(s->card, SCARD_LEAVE_CARD);
	s->have_card = 0;
	rv = SCardConnect(s->ctx, s->name, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
			  &s->card, &s->proto);
	if (rv == SCARD_S_SUCCESS) {
		s->have_card = 1;
		return 0;
	}
	if (pcsc_rv_dead(rv))
		s->broken = 1;
	s->card_gone = 1;   /* nothing to reset: the caller closes the slot */
	return pcsc_map(rv);   /* never 0: rv is no success */
}

/*
 * Exclusive again, the card left as it is. The caller asked status() first: SCardReconnect clears
 * the handle's marks of a removal or reset.
 */
static int pcsc_claim(struct ssc_slot *s, int timeout_ms)
{
	int64_t deadline = pcsc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	LONG rv;

	if (!s->have_card || s->broken || s->card_gone)
		return SSC_ECARDREMOVED;
	for (;;) {
		rv = SCardReconnect(s->card, SCARD_SHARE_EXCLUSIVE,
				    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD, &s->proto);
		if (rv == SCARD_E_SHARING_VIOLATION) {
			if (pcsc_sharing_wait(deadline) != 0)
				return SSC_EREADERBUSY;
			continue;
		}
		if (rv != SCARD_S_SUCCESS && pcsc_rv_dead(rv))
			s->broken = 1;
		if (rv == SCARD_W_REMOVED_CARD || rv == SCARD_E_NO_SMARTCARD)
			s->card_gone = 1;
		return pcsc_map(rv);
	}
}

static void pcsc_disconnect(struct ssc_slot *s, int reset)
{
	if (!s)
		return;
	/* A card that left has no security state left to clear; resetting it would do harm (see
	 * pcsc_reconnect). */
	pcsc_slot_release(s, reset && !s->card_gone && !s->broken ? SCARD_RESET_CARD
								   : SCARD_LEAVE_CARD);
	free(s);
}

const struct ssc_driver_ops ssc_driver_pcsc = {
	.name = "pcsc",
	.open = pcsc_open,
	.close = pcsc_close,
	.list = pcsc_list,
	.wait_change = pcsc_wait_change,
	.wake = pcsc_wake,
	.connect = pcsc_connect,
	.transmit = pcsc_transmit,
	.reconnect = pcsc_reconnect,
	.disconnect = pcsc_disconnect,
	.status = pcsc_status,
	.share = pcsc_share,
	.claim = pcsc_claim,
};
