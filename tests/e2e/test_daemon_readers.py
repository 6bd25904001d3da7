#!/usr/bin/python3
"""sscardd end to end: choosing the reader, reader.list, and the clear errors for no card, no
reader and no pcscd (real pcscd + vpcd + sscard-sim + sscardd, a client on the socket).

Expected values are written by hand from firmware-stubs/profiles/*.json, docs/api.md and
include/sscard/error.h (code = 1000 - value, std_code from the SSC_ERROR_LIST).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_readers.py [-k name]
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
from test_daemon_read import DES_TERMINAL, SM4_TERMINAL, expected  # noqa: E402

GEN2_ATR = '3B8E80010081544C92868433010000BF7C7A8D'         # gen2.json card.atr
GEN3_ATR = '3B8E80010081544C928684330200013C5A7E2E'         # gen3.json card.atr
SM4_PSAM_ATR = '3B6C00005053414D2D534D342D303031'           # gen3.json psam.atr
DES_PSAM_ATR = '3B6C00005053414D2D4445532D303031'           # gen2.json psam.atr
AT_ONCE = 1.0     # seconds: "a clear error at once" (no waiting for a card or a deadline)
# Every card.* method with params that pass its checks (docs/api.md), to aim at a PSAM's reader.
PSAM_READER_CALLS = (
    ('card.read_basic', {}),
    ('card.read_items', {'file': 'SSSE/EF06', 'items': ['09']}),
    ('card.internal_auth', {}),
    ('card.verify_pin', {'pin': '135790'}),
    ('card.change_pin', {'old_pin': '135790', 'new_pin': '246802'}),
    ('card.reload_pin', {'new_pin': '246802'}),
    ('card.unblock_pin', {'new_pin': '246802'}),
    ('card.write_items', {'file': 'DF04/EF05', 'items': {'34': '1'}}),
)


class ChoosingTheReader(sscardd.DaemonTestCase):
    readers = 6

    def test_two_user_cards_and_psams(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.h.start_card('gen3', slot=1)
        self.h.start_psam('gen3', slot=2)
        self.h.start_psam('gen2', slot=4)
        self.start_daemon()
        self.wait_roles({0: 'user', 1: 'user', 2: 'psam', 3: None, 4: 'psam', 5: None})

        # reader.list: every reader with its id, name, driver, card, role; ATR; a PSAM's algorithm
        # and terminal number (as its probe read it; none for a user card or an empty reader).
        # (The order is the driver's: docs/api.md promises none.)
        readers = sorted(self.d.readers(self.c), key=lambda r: r['id'])
        self.assertEqual(readers, [
            {'id': 'pcsc-virtual-pcd-a-00-00', 'name': 'Virtual PCD A 00 00', 'driver': 'pcsc',
             'card': True, 'role': 'user', 'busy': False, 'atr': GEN2_ATR},
            {'id': 'pcsc-virtual-pcd-a-00-01', 'name': 'Virtual PCD A 00 01', 'driver': 'pcsc',
             'card': True, 'role': 'user', 'busy': False, 'atr': GEN3_ATR},
            {'id': 'pcsc-virtual-pcd-b-00-00', 'name': 'Virtual PCD B 00 00', 'driver': 'pcsc',
             'card': True, 'role': 'psam', 'busy': False, 'atr': SM4_PSAM_ATR,
             'algorithm': 'sm4', 'terminal_number': '330200000001'},     # gen3.json psam
            {'id': 'pcsc-virtual-pcd-b-00-01', 'name': 'Virtual PCD B 00 01', 'driver': 'pcsc',
             'card': False, 'role': 'unknown', 'busy': False},
            {'id': 'pcsc-virtual-pcd-c-00-00', 'name': 'Virtual PCD C 00 00', 'driver': 'pcsc',
             'card': True, 'role': 'psam', 'busy': False, 'atr': DES_PSAM_ATR,
             'algorithm': 'des', 'terminal_number': '330100000001'},     # gen2.json psam
            {'id': 'pcsc-virtual-pcd-c-00-01', 'name': 'Virtual PCD C 00 01', 'driver': 'pcsc',
             'card': False, 'role': 'unknown', 'busy': False},
        ])

        # Reader omitted with two user cards: SSC_EREADERSELECT naming both (not the PSAMs).
        for method, params in (('card.read_basic', None),
                               ('card.read_items', {'file': 'SSSE/EF06', 'items': ['09']})):
            with self.subTest(method=method):
                t = time.monotonic()
                err = self.c.call_error(method, params)
                self.assertLess(time.monotonic() - t, AT_ONCE)
                self.assertRpcError(err, 'SSC_EREADERSELECT', std_code=-14, code=1009)
                self.assertIn('pcsc-virtual-pcd-a-00-00', err.message)
                self.assertIn('pcsc-virtual-pcd-a-00-01', err.message)
                self.assertNotIn('pcsc-virtual-pcd-b-00-00', err.message)
                self.assertNotIn('pcsc-virtual-pcd-c-00-00', err.message)

        # With the reader named, each reads its own card, with its algorithm's PSAM.
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen2', DES_TERMINAL))
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(1)}),
                         expected('gen3', SM4_TERMINAL))
        got = self.c.call('card.read_items', {'reader': slot_id(1), 'file': 'SSSE/EF06',
                                              'items': ['08']})
        self.assertEqual(got['items'], {'08': '330203198511110029'})

        # A PSAM is not a social security card (a card is there: not "no card"), for every
        # card method aimed at its reader, before anything reaches a card; an empty reader has no
        # card; an unknown id is no reader.
        for method, params in PSAM_READER_CALLS:
            with self.subTest(method=method):
                err = self.c.call_error(method, dict(params, reader=slot_id(2)))
                self.assertRpcError(err, 'SSC_ENOTSSC', std_code=-1, code=1015)
                self.assertIn('PSAM', err.message)
                self.assertEqual(err.reader, slot_id(2))
        err = self.c.call_error('card.read_basic', {'reader': slot_id(3)})
        self.assertRpcError(err, 'SSC_ENOCARD', std_code=-2, code=1005)
        self.assertEqual(err.reader, slot_id(3))
        err = self.c.call_error('card.read_basic', {'reader': 'pcsc-no-such-reader'})
        self.assertRpcError(err, 'SSC_ENOREADER', std_code=-11, code=1007)

        # One user card left: the reader may be omitted again.
        self.h.sims[1].remove()
        self.wait_roles({1: None})
        self.assertEqual(self.c.call('card.read_basic'), expected('gen2', DES_TERMINAL))


class NoCard(sscardd.DaemonTestCase):
    readers = 4

    def test_no_card_at_once(self):
        self.h.start_pcscd()
        self.h.start_psam('gen2', slot=1)          # a PSAM is not a user card
        self.start_daemon()
        self.wait_roles({0: None, 1: 'psam', 2: None, 3: None})
        for method, params in (('card.read_basic', None),
                               ('card.read_basic', {'reader': slot_id(0)}),
                               ('card.read_items', {'file': 'SSSE/EF05', 'items': ['07']}),
                               ('card.read_items', {'reader': slot_id(2), 'file': 'SSSE/EF05',
                                                    'items': ['07']})):
            with self.subTest(method=method, params=params):
                t = time.monotonic()
                err = self.c.call_error(method, params)
                self.assertLess(time.monotonic() - t, AT_ONCE)
                self.assertRpcError(err, 'SSC_ENOCARD', std_code=-2, code=1005)
        # The card arrives: it reads, and the event says so.
        self.h.start_card('gen2', slot=0)
        ev = self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(0))
        self.assertEqual((ev['name'], ev['driver'], ev['card'], ev['atr']),
                         ('Virtual PCD A 00 00', 'pcsc', True, GEN2_ATR))
        self.wait_roles({0: 'user'})
        self.assertEqual(self.c.call('card.read_basic'), expected('gen2', DES_TERMINAL))
        # It leaves: card.removed, then no card again at once.
        self.h.sims[-1].remove()
        ev = self.c.next_event(timeout=5, type='card.removed', reader=slot_id(0))
        self.assertFalse(ev['card'])
        t = time.monotonic()
        err = self.c.call_error('card.read_basic')
        self.assertLess(time.monotonic() - t, AT_ONCE)
        self.assertRpcError(err, 'SSC_ENOCARD', std_code=-2)

    def test_psam_just_inserted(self):
        # A read aimed at a reader the moment a PSAM arrives there, before or while the daemon
        # probes it: once the probe has found a PSAM, the answer is SSC_ENOTSSC, not no card.
        self.h.start_pcscd()
        self.start_daemon()
        self.wait_roles({0: None, 1: None})
        self.h.start_psam('gen2', slot=1)
        self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(1))
        err = self.c.call_error('card.read_basic', {'reader': slot_id(1)})
        self.assertRpcError(err, 'SSC_ENOTSSC', std_code=-1, code=1015)
        self.assertIn('PSAM', err.message)

    def test_no_pcscd(self):
        # pcscd is not running at all: no readers, and a read is a clear error at once.
        self.start_daemon()
        self.assertEqual(self.d.readers(self.c), [])
        t = time.monotonic()
        err = self.c.call_error('card.read_basic')
        self.assertLess(time.monotonic() - t, AT_ONCE)
        self.assertRpcError(err, 'SSC_ENOCARD', std_code=-2)
        err = self.c.call_error('card.read_basic', {'reader': slot_id(0)})
        self.assertRpcError(err, 'SSC_ENOREADER', std_code=-11)
        info = self.c.call('system.info')
        self.assertEqual(info['api_level'], 1)
        self.assertEqual(info['peer'], {'uid': os.getuid(), 'gid': os.getgid(),
                                        'pid': os.getpid()})


class Sscardctl(sscardd.DaemonTestCase):
    """The command-line client that comes with the daemon, as a script would use it (--json)."""

    readers = 2

    def ctl(self, *args):
        p = subprocess.run([sscardd.ctl_binary(), '--socket', self.d.socket_path, '--json',
                            '--timeout', '10000'] + list(args),
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_sscardctl_json(self):
        self.h.start_pcscd()
        self.start_daemon()
        rc, out, err = self.ctl('read-basic')
        self.assertEqual(rc, 1, (out, err))                 # the daemon answered with an error
        self.assertIn('SSC_ENOCARD', err)
        self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=1)
        self.wait_roles({0: 'user', 1: 'psam'})
        rc, out, err = self.ctl('read-basic')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), expected('gen2', DES_TERMINAL))
        rc, out, err = self.ctl('read-items', 'SSSE/EF06', '09', '0D', '--reader', slot_id(0))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['items'], {'09': '张三', '0D': '19900307'})
        rc, out, err = self.ctl('readers')
        self.assertEqual(rc, 0, err)
        roles = {r['id']: r['role'] for r in json.loads(out)['readers']}
        self.assertEqual(roles, {slot_id(0): 'user', slot_id(1): 'psam'})


class UsbLibrary(sscardd.DaemonTestCase):
    """libusb is loaded only for the USB CCID driver ([drivers] usb = yes; drivers/usb-ccid/
    usb_lib.c): a daemon on pcscd alone maps neither it nor libudev; one with the driver on and
    no libusb to load stops at start with SSC_EUSBLIB and what to do (docs/errors.md)."""

    readers = 1

    def test_only_with_the_usb_driver(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        d = self.start_daemon()
        self.wait_roles({0: 'user'})
        self.assertEqual(self.c.call('card.read_basic')['ssn'], '330102199003071230')
        for lib in ('libusb-1.0', 'libudev'):
            self.assertFalse(harness.library_mapped(d.pid, lib), f'{lib} mapped with usb = no')
        d.stop()
        on = sscardd.Daemon(self.h, config={'drivers': {'usb': 'yes'}}, name='usb',
                            socket_name='usb.sock', in_mountns=True).start()
        self.assertTrue(harness.library_mapped(on.pid, 'libusb-1.0.so.0'), 'libusb not loaded')

    def test_library_missing(self):
        # libusb-1.0.so.0 cannot be loaded (LD_LIBRARY_PATH finds a file that is no library
        # first): the daemon refuses to start rather than run without the readers it was told
        # to use; the same daemon with usb = no starts and serves.
        self.h.start_pcscd()
        libdir = self.h.path('nolib')
        os.makedirs(libdir)
        with open(os.path.join(libdir, 'libusb-1.0.so.0'), 'w') as f:
            f.write('not a shared library\n')
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        d = sscardd.Daemon(self.h, config={'drivers': {'usb': 'yes'}}, name='nousb',
                           socket_name='nousb.sock', in_mountns=True, env=env)
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        proc = self.h.spawn('nousb', d.argv(), env=env, in_mountns=True)
        self.assertEqual(proc.wait(20), 1)
        log = proc.log_text()
        self.assertIn('usb-ccid: [drivers] usb is on, but libusb cannot be loaded (SSC_EUSBLIB: '
                      f'{libdir}/libusb-1.0.so.0: ', log)
        self.assertIn('install the package libusb-1.0-0 (apt-get install libusb-1.0-0), or set '
                      '[drivers] usb = no', log)
        self.assertFalse(os.path.exists(d.socket_path))
        plain = sscardd.Daemon(self.h, name='plain', socket_name='plain.sock', in_mountns=True,
                               env=env).start()
        self.assertIn('readers', plain.client().call('reader.list'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
