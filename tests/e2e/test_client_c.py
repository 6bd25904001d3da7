#!/usr/bin/python3
"""libsscard end to end: tests/clients/client_probe (linked with the shared libsscard.so, as an
application is) against the real sscardd, pcscd + vpcd and the simulated gen2 card and DES PSAM.

- typed read (sscard_read_basic) equal to the values written by hand in test_daemon_read.py;
  sscard_read_items; reader.list through sscard_readers;
- structured errors: a wrong PIN (name, code 1019, std_code -51, sw, retries_left), an unknown
  method (-32601 -> SSC_ENOTFOUND), an unknown file (SSC_EBADITEM, std_code -14), no card
  (SSC_ENOCARD, std_code -2);
- pipelining: four requests sent at once, answers collected in reverse order, each by its id;
- events through sscard_event_fd() + sscard_next_event(): card.removed then card.inserted;
- a daemon that is not running: SSC_EIO at once; a daemon that stops answering (SIGSTOP): the
  call returns SSC_ETIMEDOUT at its deadline, not later.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_c.py [-k name]
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
from test_daemon_read import DES_TERMINAL, expected  # noqa: E402

PROBE = os.path.join(harness.BUILD_DIR, 'tests', 'clients', 'client_probe')


def probe(sock, *args, timeout=30):
    """Runs client_probe; returns its JSON lines as a list of dicts."""
    p = subprocess.run([PROBE, '--socket', sock, *args], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f'client_probe {args}: exit {p.returncode}: {p.stderr}')
    return [json.loads(line) for line in p.stdout.splitlines()]


class ClientC(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=2)
        self.start_daemon()
        self.wait_roles({0: 'user', 2: 'psam'})
        self.sock = self.d.socket_path

    def one(self, *args, **kw):
        lines = probe(self.sock, *args, **kw)
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def assertError(self, out, name, code, std_code=0):
        self.assertIn('error', out, out)
        e = out['error']
        self.assertEqual((e['name'], e['code'], e['std_code']), (name, code, std_code), out)
        self.assertEqual(out['rc'], e['err'])
        return e

    def test_reads_and_errors(self):
        want = expected('gen2', DES_TERMINAL)
        want.update(genuine=False, card_id_verified=False)
        out = self.one('basic')
        self.assertEqual((out['rc'], out['result']), (0, want), out)
        out = self.one('basic', slot_id(0), 'auth')
        self.assertEqual(out['rc'], 0, out)
        self.assertTrue(out['result']['genuine'])
        self.assertEqual(self.one('items', 'SSSE/EF06', '09', '0A', '0D')['result'],
                         {'09': '张三', '0A': '1', '0D': '19900307'})
        readers = self.one('readers')['result']
        self.assertIn({'id': slot_id(0), 'role': 'user', 'card': True, 'algorithm': ''},
                      readers)
        self.assertIn({'id': slot_id(2), 'role': 'psam', 'card': True, 'algorithm': 'des'},
                      readers)

        e = self.assertError(self.one('verify', '000000'), 'SSC_EPINWRONG', 1019, -51)
        self.assertEqual((e['sw'], e['retries_left'], e['reader']), ('63C2', 2, slot_id(0)))
        self.assertEqual(self.one('verify', '123456')['rc'], 0)
        self.assertError(self.one('call', 'card.no_such_method'), 'SSC_ENOTFOUND', -32601)
        self.assertError(self.one('call', 'card.read_items',
                                  '{"file":"SSSE/EF99","items":["01"]}'),
                         'SSC_EBADITEM', 1032, -14)
        self.assertError(self.one('call', 'card.read_basic', '[1]'), 'SSC_EINVAL', 0)

        # Pipelining: ids 1..4 sent at once, collected 4, 3, 2, 1.
        lines = probe(self.sock, 'pipeline', '4')
        self.assertEqual([ln['result']['id'] for ln in lines], [4, 3, 2, 1], lines)
        self.assertEqual(lines[1]['result']['value']['card_number'], 'X00000019')
        self.assertEqual(lines[3]['result']['value']['card_number'], 'X00000019')
        self.assertEqual(lines[0]['result']['value']['api_level'], 1)

        self.card.remove()
        self.wait_roles({0: None})
        self.assertError(self.one('basic'), 'SSC_ENOCARD', 1005, -2)

    def test_events(self):
        p = subprocess.Popen([PROBE, '--socket', self.sock, 'events', '2', '10000'],
                             stdout=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            self.assertEqual(first['result'], 'subscribed', first)
            self.card.remove()
            self.wait_roles({0: None})
            self.card.insert()
            out, _ = p.communicate(timeout=20)
        finally:
            p.kill()
            p.wait()
        events = [json.loads(line)['result'] for line in out.splitlines()]
        self.assertEqual([(ev['type'], ev['reader']) for ev in events],
                         [('card.removed', slot_id(0)), ('card.inserted', slot_id(0))])

    def test_daemon_gone_or_stopped(self):
        # No daemon behind the path: a clear error at once.
        t0 = time.monotonic()
        out = probe(self.h.path('nobody.sock'), 'basic')[0]
        self.assertLess(time.monotonic() - t0, 2.0)
        e = self.assertError(out, 'SSC_EIO', 0)
        self.assertIn('is sscardd running?', e['message'])

        # A daemon that stops answering: the call ends at its deadline (2 s).
        self.d.proc.sigstop()
        try:
            t0 = time.monotonic()
            out = probe(self.sock, '--timeout', '2000', 'basic')[0]
            took = time.monotonic() - t0
        finally:
            self.d.proc.sigcont()
        self.assertError(out, 'SSC_ETIMEDOUT', 0)
        self.assertGreaterEqual(out['ms'], 1900)
        self.assertLess(took, 8.0)
        # Once it runs again, the next call works.
        self.assertEqual(self.one('basic')['result']['card_number'], 'X00000019')


if __name__ == '__main__':
    unittest.main()
