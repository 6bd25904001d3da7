#!/usr/bin/python3
"""sscardd end to end: how long the daemon keeps a user card to itself ([timeouts] card_hold_ms).

After an operation that leaves no security state, the daemon keeps its exclusive connection for
card_hold_ms, so that the next operation needs no new connection; another program meanwhile gets a
sharing violation, and gets the card once the time is up. An operation that leaves a security state
(a verified PIN) releases the card at once, with a reset. With card_hold_ms = 0 the card is released
after every operation.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_hold.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import harness  # noqa: E402

SCARD_E_SHARING_VIOLATION = 0x8010000B


class Hold(sscardd.DaemonTestCase):
    readers = 2

    def start(self, hold_ms):
        self.h.start_pcscd()
        self.sim = self.h.start_card('gen2', slot=0)
        self.start_daemon(config={'timeouts': {'card_hold_ms': str(hold_ms)}})
        self.wait_roles({0: 'user'})
        self.pcsc = self.h.pcsc()
        self.reader = self.h.reader_name(0)

    def try_connect(self):
        """Connects as another program would (shared): None on success, else the PC/SC code."""
        try:
            card = self.pcsc.connect(self.reader, wait=False)
        except harness.PcscError as e:
            return e.hr
        card.disconnect()
        return None

    def test_card_held_then_released(self):
        self.start(1500)
        ssn = self.c.call('card.read_basic')['ssn']
        self.assertEqual(ssn, '330102199003071230')
        t0 = time.monotonic()
        self.assertEqual(self.try_connect(), SCARD_E_SHARING_VIOLATION)
        # A second operation within the hold time is served on the held connection.
        self.assertEqual(self.c.call('card.read_basic')['ssn'], ssn)
        # Released within the hold time (counted from the last operation) plus a margin.
        harness.wait_until(lambda: self.try_connect() is None, 6.0, 'the held card released')
        self.assertGreater(time.monotonic() - t0, 1.0)

    def test_security_state_releases_at_once(self):
        self.start(30000)
        self.c.call('card.read_basic')
        self.assertEqual(self.try_connect(), SCARD_E_SHARING_VIOLATION)
        # A verified PIN is a security state: the card is reset and released with the answer.
        self.assertEqual(self.c.call('card.verify_pin', {'pin': '123456'}), {'verified': True})
        harness.wait_until(lambda: self.try_connect() is None, 2.0,
                           'the card released after verify_pin')

    def test_no_hold(self):
        self.start(0)
        self.c.call('card.read_basic')
        self.assertIsNone(self.try_connect())

    def test_removed_while_held(self):
        self.start(30000)
        self.c.call('card.read_basic')
        self.sim.remove()
        self.pcsc.wait_card(self.reader, present=False, timeout=5)
        self.sim.insert()
        self.pcsc.wait_card(self.reader, present=True, timeout=5)
        # The held connection is stale: the next operation reconnects and reads normally.
        deadline = time.monotonic() + 5
        while True:
            try:
                self.assertEqual(self.c.call('card.read_basic')['ssn'], '330102199003071230')
                break
            except sscardd.RpcError as e:
                if time.monotonic() > deadline or e.name not in ('SSC_ENOCARD',
                                                                 'SSC_ECARDREMOVED'):
                    raise
                time.sleep(0.1)


if __name__ == '__main__':
    unittest.main(verbosity=2)
