#!/usr/bin/python3
"""The sscard Python package end to end (imported from the source tree's python/) against the real
sscardd, pcscd + vpcd and the simulated gen3 card with its SM4 PSAM: read_basic equal to the
values written by hand in test_daemon_read.py, read_items, internal_auth, a wrong PIN as
SscardError (name, std_code, retries_left), a right one, events as an iterator (card.removed,
card.inserted, card.ready), no card, examples/counter.py --once, a daemon that is not running
(SSC_EIO at once) and one that stops answering (SIGSTOP: SSC_ETIMEDOUT at the deadline).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_python.py
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import SM4_TERMINAL, expected  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, 'python'))
import sscard  # noqa: E402


class Python(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen3', slot=0)
        self.h.start_psam('gen3', slot=2)
        self.start_daemon()
        self.wait_roles({0: 'user', 2: 'psam'})

    def test_calls_and_events(self):
        with sscard.connect(self.d.socket_path, timeout=15) as c:
            self.assertEqual(c.read_basic(), expected('gen3', SM4_TERMINAL))
            self.assertTrue(c.read_basic(reader=slot_id(0), internal_auth=True)['genuine'])
            self.assertEqual(c.read_items('SSSE/EF05', ['07', '03']),
                             {'07': 'A12345674', '03': '3.00'})
            self.assertTrue(c.internal_auth())
            with self.assertRaises(sscard.SscardError) as cm:
                c.verify_pin('000000')
            e = cm.exception
            self.assertEqual((e.name, e.code, e.std_code, e.retries_left, e.reader),
                             ('SSC_EPINWRONG', 1019, -51, 2, slot_id(0)))
            self.assertTrue(c.verify_pin('888888'))
            self.assertEqual([r['id'] for r in c.readers()][:1], [slot_id(0)])

            p = subprocess.run([sys.executable, os.path.join(harness.SOURCE_DIR, 'examples',
                                                             'counter.py'), '--once'],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, SSCARD_SOCKET=self.d.socket_path))
            self.assertEqual((p.returncode, p.stdout),
                             (0, '阿卜杜热合曼·买买提艾力·吐尔逊江  card A12345674  valid until '
                                 '20350601\n'))

            self.assertTrue(c.subscribe())
            self.card.remove()
            ev = next(c.events(timeout=10))
            self.assertEqual((ev['type'], ev['reader']), ('card.removed', slot_id(0)))
            with self.assertRaises(sscard.SscardError) as cm:
                c.read_basic()
            self.assertEqual((cm.exception.name, cm.exception.std_code), ('SSC_ENOCARD', -2))
            self.card.insert()
            kinds = []
            for ev in c.events(timeout=10):
                kinds.append((ev['type'], ev['reader']))
                if ev['type'] == 'card.ready':
                    self.assertEqual(ev['role'], 'user')
                    break
            self.assertEqual(kinds, [('card.inserted', slot_id(0)), ('card.ready', slot_id(0))])
            self.assertEqual(c.read_basic()['card_number'], 'A12345674')

    def test_daemon_gone_or_stopped(self):
        t0 = time.monotonic()
        with self.assertRaises(sscard.SscardError) as cm:
            sscard.connect(self.h.path('nobody.sock'))
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(cm.exception.name, 'SSC_EIO')
        p = subprocess.run([sys.executable, os.path.join(harness.SOURCE_DIR, 'examples',
                                                         'counter.py'), '--once'],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, SSCARD_SOCKET=self.h.path('nobody.sock')))
        self.assertEqual(p.returncode, 1)
        self.assertIn('sscard: SSC_EIO: cannot connect', p.stderr)

        with sscard.connect(self.d.socket_path) as c:
            self.d.proc.sigstop()
            try:
                t0 = time.monotonic()
                with self.assertRaises(sscard.SscardError) as cm:
                    c.call('card.read_basic', timeout=2.0)
                took = time.monotonic() - t0
            finally:
                self.d.proc.sigcont()
            self.assertEqual((cm.exception.name, cm.exception.code), ('SSC_ETIMEDOUT', 0))
            self.assertGreaterEqual(took, 1.9)
            self.assertLess(took, 8.0)
            # The late answer is dropped; the next call gets its own.
            self.assertEqual(c.read_basic()['card_number'], 'A12345674')


if __name__ == '__main__':
    unittest.main()
