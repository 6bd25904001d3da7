#!/usr/bin/python3
"""sscardd end to end: a card simulator frozen with SIGSTOP in the middle of a read.

SCardTransmit and vpcd have no timeout of their own, so the daemon's worker for that reader stays
blocked inside pcscd. docs/api.md promises: the client gets SSC_ETIMEDOUT at op_timeout_ms; the
reader stays busy (SSC_EREADERBUSY for new requests, reader.list busy: true) until the call
returns; other readers carry on. After SIGCONT the call returns, the reader is free again and
reads normally.

The other card sits on another vpcd entry: pcscd serialises the two slots of one entry (vpcd is
not thread-safe), so a frozen card also holds its sibling slot inside pcscd, which no daemon can
change.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_freeze.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import NO_TERMINAL, expected  # noqa: E402

OP_TIMEOUT_MS = 2000
APDU_DELAY_MS = 50       # the frozen card answers slowly, so that a read lasts long enough to
                         # be caught in the middle (about 15 APDUs)


class Freeze(sscardd.DaemonTestCase):
    prefetch = 'no'     # a card frozen in the middle of a read: every read talks to the card
    readers = 4

    def test_sigstop_mid_read(self):
        self.h.start_pcscd()
        frozen = self.h.start_card('gen2', slot=0, apdu_delay_ms=APDU_DELAY_MS)
        self.h.start_card('gen3', slot=2)
        self.start_daemon(op_timeout_ms=OP_TIMEOUT_MS)
        self.assertEqual(self.d.info['limits']['op_timeout_ms'], OP_TIMEOUT_MS)
        self.wait_roles({0: 'user', 2: 'user'})
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen2', NO_TERMINAL))

        base = frozen.status()['apdus']
        t0 = time.monotonic()
        stuck = self.c.request('card.read_basic', {'reader': slot_id(0)})
        harness.wait_until(lambda: frozen.status()['apdus'] >= base + 3, 5, 'the read under way')
        frozen.sigstop()

        # While it is frozen, the other reader serves, promptly, again and again.
        other = self.d.client()
        while time.monotonic() - t0 < OP_TIMEOUT_MS / 1000 - 0.3:
            t = time.monotonic()
            self.assertEqual(other.call('card.read_basic', {'reader': slot_id(2)}, timeout=5),
                             expected('gen3', NO_TERMINAL))
            self.assertLess(time.monotonic() - t, 1.0)
        self.assertTrue(self.d.reader(other, self.h.reader_name(0))['busy'])

        # The frozen read ends at its deadline with SSC_ETIMEDOUT.
        err = None
        try:
            self.c.result(stuck, timeout=OP_TIMEOUT_MS / 1000 + 10)
        except sscardd.RpcError as e:
            err = e
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(err, 'a read of a frozen card succeeded')
        self.assertRpcError(err, 'SSC_ETIMEDOUT', code=1004)
        self.assertEqual(err.reader, slot_id(0))
        self.assertGreater(elapsed, OP_TIMEOUT_MS / 1000 - 0.1)
        self.assertLess(elapsed, OP_TIMEOUT_MS / 1000 + 1.5)

        # Still frozen: the reader is busy; new requests to it are refused at once, others work.
        listing = {r['id']: r for r in self.d.readers(self.c)}
        self.assertTrue(listing[slot_id(0)]['busy'])
        self.assertTrue(listing[slot_id(0)]['card'])
        self.assertFalse(listing[slot_id(2)]['busy'])
        for _ in range(2):
            t = time.monotonic()
            err = self.c.call_error('card.read_basic', {'reader': slot_id(0)})
            self.assertLess(time.monotonic() - t, 0.5)
            self.assertRpcError(err, 'SSC_EREADERBUSY', std_code=-11, code=1008)
        err = self.c.call_error('card.read_items', {'reader': slot_id(0), 'file': 'SSSE/EF05',
                                                    'items': ['07']})
        self.assertRpcError(err, 'SSC_EREADERBUSY', std_code=-11)
        self.assertEqual(self.c.call('card.read_items', {'reader': slot_id(2),
                                                         'file': 'SSSE/EF05', 'items': ['07']}),
                         {'file': 'SSSE/EF05', 'items': {'07': 'A12345674'}})

        # SIGCONT: the blocked call returns, the reader is free, and it reads normally.
        frozen.sigcont()
        self.d.wait_reader(self.c, self.h.reader_name(0), timeout=5, card=True, busy=False)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen2', NO_TERMINAL))
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(2)}),
                         expected('gen3', NO_TERMINAL))

    def test_frozen_before_the_request(self):
        # Frozen while idle: the next read blocks from its first APDU (or its connect) and gets
        # its timeout at the deadline; a second request queued behind it shares the deadline rule
        # (op_timeout_ms counts from submission, waiting included).
        self.h.start_pcscd()
        frozen = self.h.start_card('gen2', slot=0)
        self.h.start_card('gen3', slot=2)
        self.start_daemon(op_timeout_ms=OP_TIMEOUT_MS)
        self.wait_roles({0: 'user', 2: 'user'})
        frozen.sigstop()
        t0 = time.monotonic()
        first = self.c.request('card.read_basic', {'reader': slot_id(0)})
        second = self.c.request('card.read_items', {'reader': slot_id(0), 'file': 'SSSE/EF05',
                                                    'items': ['07']})
        answers = {}
        for mid in (first, second):
            try:
                self.c.result(mid, timeout=OP_TIMEOUT_MS / 1000 + 10)
                answers[mid] = None
            except sscardd.RpcError as e:
                answers[mid] = (e.name, time.monotonic() - t0)
        self.assertEqual(answers[first][0], 'SSC_ETIMEDOUT')
        self.assertEqual(answers[second][0], 'SSC_ETIMEDOUT')
        for name, elapsed in answers.values():
            self.assertGreater(elapsed, OP_TIMEOUT_MS / 1000 - 0.1)
            self.assertLess(elapsed, OP_TIMEOUT_MS / 1000 + 1.5)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(2)}),
                         expected('gen3', NO_TERMINAL))
        frozen.sigcont()
        self.d.wait_reader(self.c, self.h.reader_name(0), timeout=5, card=True, busy=False)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen2', NO_TERMINAL))


if __name__ == '__main__':
    unittest.main(verbosity=2)
