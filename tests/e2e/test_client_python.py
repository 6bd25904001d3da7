#!/usr/bin/python3
"""The sscard Python package end to end (imported from the source tree's python/) against the real
sscardd, pcscd + vpcd and the simulated gen3 card with its SM4 PSAM: read_basic equal to the
values written by hand in test_daemon_read.py, read_items, internal_auth, a wrong PIN as
SscardError (name, std_code, retries_left), a right one, events as an iterator (card.removed,
card.inserted, card.ready), no card, examples/counter.py --once, a daemon that is not running
(SSC_EIO at once) and one that stops answering (SIGSTOP: SSC_ETIMEDOUT at the deadline).

The workflow methods (Workflow, the gen2 card with its DES PSAM and an SM2 receipt key):
medical_credentials (the gen2 profile's values, by hand), claim_verify_holder (a wrong PIN:
SSC_EPINWRONG with retries_left; the right one: the receipt, its signature checked with openssl),
medical_settle_offline -> medical_pending lists it -> medical_clear_flag refused (SSC_EMEDPENDING)
-> medical_acknowledge (an unknown id: SSC_ENOTFOUND with data.unknown) -> pending empty ->
medical_clear_flag was_set true; a missing required argument: SSC_EINVAL (code 0) before anything
is sent.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_python.py
"""

import json
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
from test_client_c import (GEN2_CREDENTIALS, TXN, assert_receipt_verifies,  # noqa: E402
                           sm2_receipt_key)

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


class Workflow(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=2)
        key, self.pub = sm2_receipt_key(self)
        self.start_daemon(config={'receipts': {'key_file': key}})
        self.wait_roles({0: 'user', 2: 'psam'})

    def assertSscardError(self, fn, name, code, *args, **kw):
        with self.assertRaises(sscard.SscardError) as cm:
            fn(*args, **kw)
        self.assertEqual((cm.exception.name, cm.exception.code), (name, code))
        return cm.exception

    def test_credentials_and_claim(self):
        with sscard.connect(self.d.socket_path, timeout=20) as c:
            r = c.medical_credentials()
            ia = r.pop('internal_auth')
            self.assertEqual(r, GEN2_CREDENTIALS)
            self.assertEqual((ia['algorithm'], ia['terminal_number']), ('des', '330100000001'))
            self.assertEqual(c.medical_credentials(reader=slot_id(0))['certno'],
                             '330102199003071230')

            e = self.assertSscardError(c.claim_verify_holder, 'SSC_EPINWRONG', 1019, '000000')
            self.assertEqual((e.std_code, e.retries_left, e.reader), (-51, 2, slot_id(0)))
            r = c.claim_verify_holder('123456', request_id='claim-0008')
            self.assertEqual((r['genuine'], r['pin_verified'], r['algorithm']),
                             (True, True, 'SM2-SM3'))
            self.assertEqual((r['holder']['card_number'], r['holder']['name']),
                             ('X00000019', '张三'))
            rec = json.loads(r['receipt'])
            self.assertEqual((rec['request_id'], rec['card_number'], rec['reader']),
                             ('claim-0008', 'X00000019', slot_id(0)))
            assert_receipt_verifies(self, self.pub, r)
            r = c.claim_verify_holder('123456', reader=slot_id(0))
            self.assertRegex(json.loads(r['receipt'])['request_id'], r'^[0-9a-f]{16}$')

    def test_offline_settlement(self):
        with sscard.connect(self.d.socket_path, timeout=30) as c:
            # Missing required arguments: refused here, nothing sent.
            self.assertSscardError(c.medical_settle_offline, 'SSC_EINVAL', 0, None, TXN)
            self.assertSscardError(c.medical_settle_offline, 'SSC_EINVAL', 0, 'h1-x', None)
            self.assertSscardError(c.medical_acknowledge, 'SSC_EINVAL', 0, [])
            self.assertSscardError(c.claim_verify_holder, 'SSC_EINVAL', 0, None)
            self.assertEqual(c.medical_pending(), {'settlements': [], 'flags': []})
            # The daemon's own check of the transaction comes through as its error.
            e = self.assertSscardError(c.medical_settle_offline, 'SSC_EVALUE', 1033,
                                       'h1-20260301-0009', dict(TXN, pooled=10001))
            self.assertEqual(e.std_code, -23)

            r = c.medical_settle_offline('h1-20260301-0001', TXN)
            self.assertIsInstance(r.pop('journal_id'), int)
            self.assertEqual(r, {'id': 1, 'request_id': 'h1-20260301-0001', 'transaction': TXN})
            p = c.medical_pending()
            self.assertEqual(len(p['settlements']), 1, p)
            s = p['settlements'][0]
            queued = s.pop('queued')
            self.assertEqual(s, {'id': 1, 'request_id': 'h1-20260301-0001',
                                 'card_number': 'X00000019',
                                 'card_id': '330100D15600000500BF7C7AC9FC0FEC',
                                 'transaction': TXN})
            self.assertEqual(p['flags'], [{'card_number': 'X00000019',
                                           'card_id': '330100D15600000500BF7C7AC9FC0FEC',
                                           'since': queued, 'pending': 1, 'clearable': False}])
            self.assertEqual(c.medical_pending(since=1)['settlements'], [])

            self.assertSscardError(c.medical_clear_flag, 'SSC_EMEDPENDING', 1068)
            e = self.assertSscardError(c.medical_acknowledge, 'SSC_ENOTFOUND', 1041, [1, 2])
            self.assertEqual(e.data['unknown'], [2])
            self.assertEqual(c.medical_acknowledge([1]), {'acknowledged': [1], 'newly': 1})
            self.assertEqual(c.medical_acknowledge((1,)), {'acknowledged': [1], 'newly': 0})
            self.assertEqual(c.medical_pending()['settlements'], [])
            r = c.medical_clear_flag(request_id='h1-clear')
            self.assertIsInstance(r.pop('journal_id'), int)
            self.assertEqual(r, {'cleared': True, 'was_set': True})
            self.assertEqual(c.medical_clear_flag(reader=slot_id(0)),
                             {'cleared': True, 'was_set': False})
            self.assertEqual(c.medical_pending(), {'settlements': [], 'flags': []})


if __name__ == '__main__':
    unittest.main()
