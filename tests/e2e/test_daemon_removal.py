#!/usr/bin/python3
"""sscardd end to end: a card pulled in the middle of card.read_basic, in each of the ways PC/SC
reports it (spec/test-harness.md §2; pcsc-lite 1.9.9 with vpcd 3.3, as measured here):

* an empty answer: the card's link closes after vpcd sent an APDU (sscard-sim --drop-after);
  vpcd answers "success" with no bytes;
* SCARD_E_NOT_TRANSACTED: the link dies while an APDU waits to be sent. The card simulator is
  stopped (SIGSTOP) while the daemon talks to a slow PSAM on another vpcd entry; pcscd's presence
  poll then blocks on the stopped card, the daemon's next APDU to the card waits behind it inside
  pcscd, and kill -9 resets the link (RST: the poll's bytes are unread), so the poll ejects the
  card and the waiting APDU finds no link;
* SCARD_W_REMOVED_CARD: the card leaves while the daemon talks to the slow PSAM, pcscd's
  presence poll notices, and the daemon's next APDU on its (old) handle is refused.

Each must give the client SSC_ECARDREMOVED (std_code -2) promptly, and the next insertion must
read normally. The daemon runs with --log-level debug, which logs each PC/SC transmit failure with
its code: the tests check that the case they meant is the one that happened.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_removal.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import SM4_TERMINAL, NO_TERMINAL, expected  # noqa: E402

EMPTY_ANSWER = 'success with an empty answer'     # drivers/pcsc.c debug lines
NOT_TRANSACTED = '(0x80100016)'
REMOVED_CARD = '(0x80100069)'
PSAM_DELAY_S = 0.4      # the slow PSAM: each of its answers takes this long
PROMPT = 1.5            # seconds from the removal to the error: no waiting for a deadline


class RemovalHelpers:
    """Set-up and checks shared with test_daemon_bugs.py (a mixin: no tests of its own).

    Card on vpcd entry A (slot 0), PSAM on entry B (slot 2): pcscd serialises the two slots of
    one vpcd entry (the driver is not thread-safe), so a slow PSAM there would delay the card's
    presence poll too."""

    readers = 4

    def setup_readauth(self, psam_delay=True):
        """gen3-readauth on slot 0 (its EF06 needs the PSAM), the SM4 PSAM on slot 2, slowed so
        that a read spends about a second with the PSAM between two card APDUs."""
        self.h.start_pcscd()
        self.card = self.h.start_card('gen3-readauth', slot=0)
        self.psam = self.h.start_psam(
            'gen3-readauth', slot=2, verbose=True,
            apdu_delay_ms=int(PSAM_DELAY_S * 1000) if psam_delay else None)
        self.start_daemon()
        self.wait_roles({0: 'user', 2: 'psam'})

    def psam_log_count(self, text):
        """Occurrences of text in the PSAM simulator's log (--verbose: "> APDU" when one arrives,
        before the delay; "< answer" when it is sent)."""
        return self.psam.proc.log_text().count(text)

    def wait_inserted_and_read(self, profile, term, slot=0):
        """The next insertion: the daemon reports it, and the card reads normally."""
        self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(slot))
        self.wait_roles({slot: 'user'})
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(slot)}),
                         expected(profile, term))

    def assert_removed_error(self, err, slot=0):
        self.assertRpcError(err, 'SSC_ECARDREMOVED', std_code=-2, code=1006)
        self.assertEqual(err.reader, slot_id(slot))



class Removal(RemovalHelpers, sscardd.DaemonTestCase):
    prefetch = 'no'     # a removal in the middle of a read: every read talks to the card

    def test_empty_answer(self):
        self.h.start_pcscd()
        card = self.h.start_card('gen2', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})
        self.assertEqual(self.c.call('card.read_basic'), expected('gen2', NO_TERMINAL))
        card.arm_drop(5)              # the 5th APDU of the next read is never answered
        t = time.monotonic()
        err = self.c.call_error('card.read_basic')
        self.assertLess(time.monotonic() - t, PROMPT)
        self.assert_removed_error(err)
        self.assertEqual(self.d.log_count(EMPTY_ANSWER), 1)
        self.c.next_event(timeout=5, type='card.removed', reader=slot_id(0))
        err = self.c.call_error('card.read_basic')
        self.assertRpcError(err, 'SSC_ENOCARD', std_code=-2)
        card.insert()
        self.wait_inserted_and_read('gen2', NO_TERMINAL)
        # read_items the same way.
        card.arm_drop(2)
        err = self.c.call_error('card.read_items', {'file': 'DF04/EF08', 'items': ['40']})
        self.assert_removed_error(err)
        self.c.next_event(timeout=5, type='card.removed', reader=slot_id(0))
        card.insert()
        self.wait_inserted_and_read('gen2', NO_TERMINAL)
        self.assertEqual(self.d.log_count(EMPTY_ANSWER), 2)

    def test_not_transacted(self):
        self.setup_readauth()
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))
        # A race by construction; should pcscd's poll still come first, the attempt is repeated.
        for attempt in range(3):
            ciphers = self.psam_log_count(': > 80FA')
            base = self.psam_log_count(': > ')
            mid = self.c.request('card.read_basic')
            # The read is with the PSAM (its first APDU arrived): freeze the card.
            harness.wait_until(lambda: self.psam_log_count(': > ') > base, 5, 'PSAM use')
            self.card.sigstop()
            # pcscd's presence poll (GET ATR, 3 bytes) now waits on the stopped card.
            harness.wait_until(lambda: self.card.link_rx_queue() == 3, 3,
                               'the presence poll to wait on the stopped card')
            # The PSAM answers the CIPHER; the daemon's EXTERNAL AUTHENTICATE then waits in pcscd.
            harness.wait_until(lambda: self.psam_log_count(': > 80FA') > ciphers, 5, 'CIPHER')
            time.sleep(PSAM_DELAY_S + 0.2)
            queued = self.card.link_rx_queue()
            t = time.monotonic()
            self.card.kill9()
            err = None
            try:
                self.c.result(mid, timeout=5)
            except sscardd.RpcError as e:
                err = e
            self.assertLess(time.monotonic() - t, PROMPT)
            self.assertIsNotNone(err, 'the read succeeded on a killed card')
            self.assert_removed_error(err)
            self.c.next_event(timeout=5, type='card.removed', reader=slot_id(0))
            self.card.start()
            self.wait_inserted_and_read('gen3-readauth', SM4_TERMINAL)
            if queued == 3 and self.d.log_count(NOT_TRANSACTED) >= 1:
                break
        self.assertGreaterEqual(self.d.log_count(NOT_TRANSACTED), 1,
                                'never got SCARD_E_NOT_TRANSACTED')

    def test_removed_card_on_old_handle(self):
        self.setup_readauth()
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))
        base = self.psam_log_count(': > ')
        mid = self.c.request('card.read_basic')
        harness.wait_until(lambda: self.psam_log_count(': > ') > base, 5, 'PSAM use')
        # The card leaves while the daemon waits for the PSAM; pcscd's poll notices, and the
        # daemon's next APDU to the card goes to its old handle.
        self.card.remove()
        t = time.monotonic()
        err = None
        try:
            self.c.result(mid, timeout=10)
        except sscardd.RpcError as e:
            err = e
        self.assertIsNotNone(err, 'the read succeeded without the card')
        self.assert_removed_error(err)
        self.assertLess(time.monotonic() - t, 4 * PSAM_DELAY_S + PROMPT)
        self.assertEqual(self.d.log_count(REMOVED_CARD), 1)
        self.card.insert()
        self.wait_inserted_and_read('gen3-readauth', SM4_TERMINAL)

    def test_psam_removed_between_requests(self):
        # The daemon keeps its PSAM connected between uses: the next use after a removal finds
        # its handle stale. A clear error, and the PSAM serves again once it is back.
        self.setup_readauth(psam_delay=False)
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))
        self.psam.remove()
        self.h.wait_card(2, present=False)
        t = time.monotonic()
        err = self.c.call_error('card.read_basic')
        self.assertLess(time.monotonic() - t, PROMPT)
        self.assertRpcError(err, 'SSC_ENOPSAM', std_code=-2201)
        self.psam.insert()
        self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(2))
        self.wait_roles({2: 'psam'})
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))


    # A card pulled mid-read and put back within pcscd's presence poll (~0.4 s): pcscd never sees
    # it go. The daemon must not reset the vanished card when it lets go of it: pcsc-lite 1.9.9
    # then marks the reader empty for good (fixed in drivers/pcsc.c, 25104ba). The PSAM's case:
    # test_daemon_bugs.py test_psam_quick_reinsertion.
    def test_quick_reinsertion(self):
        self.setup_readauth(psam_delay=False)
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))
        for attempt in range(3):
            # APDU 10 of a read is the first READ RECORD of EF06 after the read authorisation
            # (SELECT SSSE, 5 x EF05, READ EF06 -> 6982, GET CHALLENGE, EXTERNAL AUTH, READ ...).
            self.card.arm_drop(10)
            self.c.events.clear()
            err = self.c.call_error('card.read_basic')
            self.assert_removed_error(err)
            self.card.insert()           # put back at once, before pcscd's next presence poll
            try:
                self.c.next_event(timeout=1.0, type='card.removed', reader=slot_id(0))
            except sscardd.harness.HarnessError:
                break                    # pcscd never saw it go: the case this test is about
            # pcscd's poll fell between the two: an ordinary removal, not this case. Again.
            self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(0))
            self.wait_roles({0: 'user'})
        self.wait_roles({0: 'user'}, timeout=5)
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))


if __name__ == '__main__':
    unittest.main(verbosity=2)
