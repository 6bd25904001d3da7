#!/usr/bin/python3
"""sscardd under valgrind (memcheck), end to end: no memory error and no definite leak.

The daemon runs under ``valgrind --leak-check=full --errors-for-leak-kinds=definite`` with two
user cards (gen2 DES, gen3-readauth SM4 that demands read authorisation) and a PSAM of each
algorithm, serves a session that goes through every layer (reads with read authorisation and
internal authentication, read_items, a PIN verification, a journaled write, an event
subscription with a removal and an insertion, malformed requests, a client that vanishes
mid-request), then gets SIGTERM. It must exit 0 (valgrind's --error-exitcode would make it 99)
and valgrind's log must report 0 errors and nothing definitely lost.

Skipped when valgrind is missing or the build is sanitized (valgrind cannot run ASan binaries):
scripts/test.sh runs it in the normal build.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_valgrind.py
"""

import os
import re
import shutil
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

VALGRIND_EXIT = 99


def sanitized_build():
    """True when the build directory was configured with a sanitizer (or for fuzzing)."""
    try:
        with open(os.path.join(harness.BUILD_DIR, 'CMakeCache.txt')) as f:
            cache = f.read()
    except OSError:
        return False
    return bool(re.search(r'^SSC_(SANITIZE|FUZZ):BOOL=ON$', cache, re.M))


class ValgrindDaemon(sscardd.Daemon):
    """sscardd started under valgrind memcheck, its report in <test dir>/valgrind.log."""

    def __init__(self, h, **kw):
        super().__init__(h, **kw)
        self.vg_log = h.path('valgrind.log')

    def argv(self):
        return ['valgrind', '--tool=memcheck', '--leak-check=full',
                '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
                f'--error-exitcode={VALGRIND_EXIT}', '--num-callers=40',
                f'--log-file={self.vg_log}'] + super().argv()


@unittest.skipIf(shutil.which('valgrind') is None, 'valgrind is not installed')
@unittest.skipIf(sanitized_build(), 'a sanitized build: valgrind cannot run it')
class Valgrind(sscardd.DaemonTestCase):
    readers = 4
    deadline = 600.0

    def test_session_under_valgrind(self):
        h = self.h
        h.start_pcscd()
        card0 = h.start_card('gen2', slot=0, state=True)
        h.start_psam('gen2', slot=1)
        h.start_card('gen3-readauth', slot=2)
        h.start_psam('gen3', slot=3)
        # Everything is ten to fifty times slower under valgrind: generous deadlines.
        self.d = ValgrindDaemon(h, op_timeout_ms=60000, log_level='debug',
                                config={'card': {'card_id_mac_key':
                                                 '0123456789ABCDEFFEDCBA9876543210'}})
        self.d.start(timeout=120.0)
        self.c = self.d.client(timeout=60.0)
        self.c.subscribe()
        self.wait_roles({0: 'user', 1: 'psam', 2: 'user', 3: 'psam'}, timeout=120.0)
        c = self.c
        t = 120.0

        info = c.call('system.info', timeout=t)
        self.assertEqual(info['api_level'], 1)
        basic = c.call('card.read_basic', {'reader': slot_id(0), 'internal_auth': True,
                                           'verify_card_id': True}, timeout=t)
        self.assertEqual(basic['card_number'], 'X00000019')       # gen2.json, by hand
        self.assertIs(basic['genuine'], True)
        for _ in range(2):   # the first read learns the read authorisation, the second uses it
            basic = c.call('card.read_basic', {'reader': slot_id(2)}, timeout=t)
            self.assertEqual(basic['card_number'], 'A12345674')   # gen3-readauth.json
        items = c.call('card.read_items', {'reader': slot_id(0), 'file': 'DF04/EF08',
                                           'items': ['40']}, timeout=t)
        self.assertEqual(len(items['items']['40']), 2)          # two transactions in gen2.json
        c.call('card.verify_pin', {'reader': slot_id(0), 'pin': '123456'}, timeout=t)
        c.call('card.write_items', {'reader': slot_id(0), 'file': 'DF04/EF05',
                                    'items': {'31': '12'}}, timeout=t)
        err = c.call_error('card.verify_pin', {'reader': slot_id(0), 'pin': '1'}, timeout=t)
        self.assertEqual(err.name, 'SSC_EPINFORMAT')

        # Malformed input, then a client that leaves with a read in flight.
        c.send_raw(b'{"jsonrpc":"2.0","id":1,"method"\n[1,2\n\xff\xfe\n')
        for _ in range(3):
            c.null_reply(timeout=t)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.d.socket_path)
            s.sendall(b'{"jsonrpc":"2.0","id":7,"method":"card.read_basic","params":'
                      b'{"reader":"' + slot_id(0).encode() + b'"}}\n')

        # A removal and an insertion: events to a subscriber.
        card0.remove()
        c.next_event(timeout=t, type='card.removed', reader=slot_id(0))
        card0.insert()
        c.next_event(timeout=t, type='card.inserted', reader=slot_id(0))
        basic = c.call('card.read_basic', {'reader': slot_id(0)}, timeout=t)
        self.assertEqual(basic['card_number'], 'X00000019')

        # An orderly stop: valgrind writes its leak report at exit.
        self.d.proc.signal(signal.SIGTERM)
        status = self.d.proc.wait(timeout=180)
        with open(self.d.vg_log) as f:
            report = f.read()
        self.assertEqual(status, 0, f'sscardd under valgrind exited {status}:\n{report[-6000:]}')
        self.assertRegex(report, r'ERROR SUMMARY: 0 errors', report[-6000:])
        lost = re.search(r'definitely lost: ([\d,]+) bytes', report)
        self.assertTrue(lost is None or lost.group(1) == '0', report[-6000:])


if __name__ == '__main__':
    unittest.main(verbosity=2)
