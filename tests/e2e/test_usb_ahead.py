#!/usr/bin/python3
"""sscardd over USB, the read-ahead on insertion (issue 18, [card] prefetch): on an emulated CCID
reader (usbtest, tests/usb/) the card is read before its card.ready, card.read_basic is answered
with no APDU (the emulated slot's APDU counter proves it), and a card pulled and put back at once,
or pulled before the request, is never answered from what was read before: the slot-change
notifications of the reader's interrupt endpoint move the slot's count, which the daemon checks.
Past the daemon's hold (card_hold_ms) the data is kept for the insertion, with the same checks.

Expected values are copied by hand from firmware-stubs/profiles/gen2.json.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_usb_ahead.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
import usbharness  # noqa: E402
from sscardd import harness  # noqa: E402

GEN2_SSN = '330102199003071230'
GEN2_NAME = '张三'
HOLD = {'timeouts': {'card_hold_ms': '30000'}}


class UsbAhead(usbharness.UsbTestCase):
    def apdus(self):
        return self.usb.slot_stats('a')['apdus']

    def insert_and_wait_ready(self, card):
        self.c.events.clear()
        self.usb.insert('a')
        self.events_until({('card.ready', card)})
        return self.apdus()

    def start_pulled(self, mode):
        self.start([f'name=a,mode={mode},slots=card:gen2,serial=A1'], config=HOLD)
        card = self.wait_user('a')
        self.usb.remove('a')
        self.events_until({('card.removed', card)})
        return card

    def test_answer_without_apdu(self):
        card = self.start_pulled('t1')
        before = self.apdus()
        at_ready = self.insert_and_wait_ready(card)
        self.assertGreater(at_ready, before)                  # read ahead, before card.ready
        basic = self.c.call('card.read_basic', {'reader': card})
        self.assertEqual((basic['ssn'], basic['name'], basic['terminal_device']),
                         (GEN2_SSN, GEN2_NAME, 'A1'))
        self.assertEqual(self.apdus(), at_ready)              # no APDU for the answer
        self.assertEqual(self.c.call('card.read_basic', {'reader': card}), basic)
        self.assertEqual(self.apdus(), at_ready)

    def out_in_and_read(self, card):
        """Pulls the card and puts it back at once, then card.read_basic (asked again while the
        request meets the card on its way out)."""
        self.usb.remove('a')
        self.usb.insert('a')
        for _ in range(3):
            try:
                return self.c.call('card.read_basic', {'reader': card})
            except sscardd.RpcError as e:
                self.assertIn(e.name, ('SSC_ENOCARD', 'SSC_ECARDREMOVED'), str(e))
                self.wait_user('a')
        self.fail('card.read_basic failed three times after the card came back')

    def test_pulled_and_put_back_is_read_again(self):
        card = self.start_pulled('t1')
        at_ready = self.insert_and_wait_ready(card)
        # Out and in at once: whether the monitor reports it or not, the slot's count moved.
        self.assertEqual(self.out_in_and_read(card)['ssn'], GEN2_SSN)
        self.assertGreater(self.apdus(), at_ready)            # the card was read again

    # ---- past the hold: the card stays watched for its insertion ------------------------------

    WATCHED = 'watched for the data read ahead'

    def start_watched(self):
        """The card inserted and read ahead, and the daemon's hold (200 ms) over: the data is kept
        past it (the daemon says so in its debug log). Returns (reader id, APDUs at card.ready)."""
        self.start(['name=a,mode=t1,slots=card:gen2,serial=A1'],
                   config={'timeouts': {'card_hold_ms': '200'}})
        card = self.wait_user('a')
        self.usb.remove('a')
        self.events_until({('card.removed', card)})
        n = self.d.log_count(self.WATCHED)
        at_ready = self.insert_and_wait_ready(card)
        harness.wait_until(lambda: self.d.log_count(self.WATCHED) > n or None, 10,
                           'the hold to end with the card watched')
        return card, at_ready

    def test_kept_past_the_hold(self):
        card, at_ready = self.start_watched()
        basic = self.c.call('card.read_basic', {'reader': card})
        self.assertEqual((basic['ssn'], basic['name']), (GEN2_SSN, GEN2_NAME))
        self.assertEqual(self.apdus(), at_ready)              # no APDU past the hold either

    def test_pulled_and_put_back_past_the_hold(self):
        card, at_ready = self.start_watched()
        self.assertEqual(self.out_in_and_read(card)['ssn'], GEN2_SSN)
        self.assertGreater(self.apdus(), at_ready)            # read again, never the old data

    def test_pulled_before_the_request(self):
        card = self.start_pulled('t1')
        self.insert_and_wait_ready(card)
        self.usb.remove('a')
        self.events_until({('card.removed', card)})
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.call('card.read_basic', {'reader': card})
        self.assertIn(cm.exception.name, ('SSC_ENOCARD', 'SSC_ECARDREMOVED'), str(cm.exception))


if __name__ == '__main__':
    unittest.main(verbosity=2)
