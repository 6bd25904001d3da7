#!/usr/bin/python3
"""sscard-sim on the vpcd wire, against a fake vpcd written here (no pcscd).

The fake behaves like vpcd 3.3 where it matters (it is the TCP server; it sends the length and the
payload with two send() calls and no TCP_NODELAY) and also sends what a real vpcd never does (empty
frames, unknown control bytes, 64 KiB of garbage, a frame that never completes), so that these tests
check the simulator's framing, its deadlines, its presence controls and its state file directly.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_sim_wire.py
Expected values are written by hand from firmware-stubs/profiles/gen2.json and spec §12.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# From firmware-stubs/profiles/gen2.json, copied by hand.
GEN2_ATR = bytes.fromhex('3B8E80010081544C92868433010000BF7C7A8D')
GEN2_PSAM_ATR = bytes.fromhex('3B6C00005053414D2D4445532D303031')
GEN2_TERMINAL = bytes.fromhex('330100000001')
GEN2_PIN = '123456'
SELECT_SSSE = '00A404000F7378312E73682EC9E7BBE1B1A3D5CF'


class FakeVpcd:
    """The server end of one vpcd slot on 127.0.0.1 (an ephemeral port)."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.port = self.lsock.getsockname()[1]
        self.conn = None

    def listen(self):
        self.lsock.listen(1)

    def accept(self, timeout=5.0):
        r, _, _ = select.select([self.lsock], [], [], timeout)
        if not r:
            raise AssertionError(f'the simulator did not connect within {timeout} s')
        self.conn, _ = self.lsock.accept()
        return self.conn

    def send_frame(self, payload, split=True):
        hdr = struct.pack('>H', len(payload))
        if split:                 # like vpcd 3.3: two send() calls, Nagle on
            self.conn.sendall(hdr)
            self.conn.sendall(payload)
        else:
            self.conn.sendall(hdr + payload)

    def _recv_exact(self, n, timeout):
        buf = b''
        deadline = time.monotonic() + timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f'no answer within {timeout} s')
            self.conn.settimeout(left)
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_frame(self, timeout=3.0):
        """The next frame's payload, or None when the simulator closed the link."""
        hdr = self._recv_exact(2, timeout)
        if hdr is None:
            return None
        n = struct.unpack('>H', hdr)[0]
        return self._recv_exact(n, timeout) if n else b''

    def closed_by_peer(self, timeout=3.0):
        """True when the simulator closes the link (EOF) within timeout, without sending anything."""
        self.conn.settimeout(timeout)
        try:
            return self.conn.recv(1) == b''
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def nothing_within(self, seconds):
        r, _, _ = select.select([self.conn], [], [], seconds)
        return not r

    def get_atr(self):
        self.send_frame(b'\x04')
        return self.recv_frame()

    def apdu(self, hexstr):
        self.send_frame(bytes.fromhex(hexstr.replace(' ', '')))
        resp = self.recv_frame()
        if resp is None:
            raise AssertionError('the simulator closed the link instead of answering')
        return resp[:-2], resp[-2] << 8 | resp[-1]

    def close_conn(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def close(self):
        self.close_conn()
        self.lsock.close()


class SimWireTest(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(harness.sim_binary()):
            self.fail(f'{harness.sim_binary()} is missing: build first (SSC_BUILD_DIR)')
        self.dir = tempfile.mkdtemp(prefix='ssce2e-wire-')
        self.vpcd = FakeVpcd()
        self.addCleanup(self.vpcd.close)
        self.procs = []
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        for p in self.procs:
            p.stop()
        failed = self._outcome is not None and not getattr(self._outcome, 'success', True)
        if failed:
            for p in self.procs:
                sys.stderr.write(f'----- {p.name} -----\n{p.log_text()[-3000:]}\n')
        else:
            subprocess.run(['rm', '-rf', self.dir], check=False)

    def sim(self, *extra, role='card', profile='gen2', name=None):
        name = name or f'{role}{len(self.procs)}'
        argv = [harness.sim_binary(), role, '--port', str(self.vpcd.port), '--profile',
                harness.profile_path(profile), '--control', os.path.join(self.dir, name + '.ctl')]
        p = harness.Proc(name, argv + list(extra), os.path.join(self.dir, name + '.log'))
        p.ctl = os.path.join(self.dir, name + '.ctl')
        self.procs.append(p)
        return p

    def ctl(self, p, line):
        harness.wait_until(lambda: os.path.exists(p.ctl), 5, 'control socket')
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(p.ctl)
            s.sendall(line.encode() + b'\n')
            return s.recv(512).decode().strip()

    def run_sim(self, *args, timeout=5):
        """Runs sscard-sim to completion (for argument errors); returns (status, stderr)."""
        r = subprocess.run([harness.sim_binary()] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stderr

    # ---------------------------------------------------------------------------------------

    def test_atr_any_time_and_power_controls(self):
        self.vpcd.listen()
        self.sim()
        self.vpcd.accept()
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        self.vpcd.send_frame(b'\x01')                    # power on: no answer
        self.assertTrue(self.vpcd.nothing_within(0.2))
        _, sw = self.vpcd.apdu(SELECT_SSSE)
        self.assertEqual(sw, 0x9000)
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)  # between APDUs
        # A challenge dies with a reset (spec §12.5): EXTERNAL AUTH then finds none -> 6984.
        r, sw = self.vpcd.apdu('0084000008')
        self.assertEqual((len(r), sw), (8, 0x9000))
        self.vpcd.send_frame(b'\x02')
        self.vpcd.apdu(SELECT_SSSE)
        _, sw = self.vpcd.apdu('0082000410' + '00' * 16)
        self.assertEqual(sw, 0x6984)
        # The same after power off / power on.
        self.vpcd.apdu('0084000008')
        self.vpcd.send_frame(b'\x00')
        self.vpcd.send_frame(b'\x01')
        self.vpcd.apdu(SELECT_SSSE)
        _, sw = self.vpcd.apdu('0082000410' + '00' * 16)
        self.assertEqual(sw, 0x6984)

    def test_quick_ack_keeps_round_trips_fast(self):
        # vpcd sends length and payload in two segments with Nagle on; unless the simulator ACKs
        # at once, each payload waits for its delayed ACK (~40 ms): 200 round trips would take 8 s.
        self.vpcd.listen()
        self.sim()
        self.vpcd.accept()
        self.vpcd.get_atr()
        start = time.monotonic()
        for _ in range(200):
            _, sw = self.vpcd.apdu(SELECT_SSSE)
            self.assertEqual(sw, 0x9000)
            self.vpcd.get_atr()
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 1.5, f'400 round trips took {elapsed:.2f} s: quick ACK missing?')

    def test_garbage_from_vpcd_never_kills_the_card(self):
        self.vpcd.listen()
        p = self.sim()
        self.vpcd.accept()
        self.vpcd.send_frame(b'')                         # empty frame: ignored
        self.vpcd.send_frame(b'\x07')                     # unknown control byte: ignored
        self.vpcd.send_frame(b'\xff')
        self.assertTrue(self.vpcd.nothing_within(0.3))
        for junk in (b'\x00\x00', b'\xff' * 3, bytes(range(256)) * 20, b'\xa5' * 65535):
            self.vpcd.send_frame(junk)
            resp = self.vpcd.recv_frame()
            self.assertIsNotNone(resp, f'link closed after {len(junk)} junk bytes')
            self.assertGreaterEqual(len(resp), 2)
            self.assertNotEqual(resp[-2:], b'\x90\x00', f'junk of {len(junk)} bytes accepted')
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        self.assertTrue(p.alive())

    def test_incomplete_frame_hits_the_deadline_and_reconnects(self):
        self.vpcd.listen()
        p = self.sim()
        self.vpcd.accept()
        self.vpcd.conn.sendall(b'\x00\x20' + b'\x00' * 10)   # announces 32 bytes, sends 10
        self.assertFalse(self.vpcd.closed_by_peer(3.0), 'dropped a partial frame too early')
        self.assertTrue(self.vpcd.closed_by_peer(4.0), 'a partial frame was waited for forever')
        self.vpcd.close_conn()
        self.vpcd.accept(10.0)                               # reconnects on its own
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        self.assertTrue(p.alive())

    def test_waits_for_vpcd_and_reconnects(self):
        p = self.sim()
        time.sleep(0.6)                   # refused a few times: back-off 100, 200, 400 ms ...
        self.assertTrue(p.alive())
        self.vpcd.listen()
        self.vpcd.accept(10.0)            # comes back (the back-off never exceeds 1 s; generous for a loaded machine)
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        self.vpcd.close_conn()            # vpcd closes (pcscd stopped): the card reconnects
        self.vpcd.accept(10.0)
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        self.assertIn('connected', p.log_text())

    def test_drop_after_then_insert(self):
        self.vpcd.listen()
        p = self.sim('--drop-after', '3')
        self.vpcd.accept()
        self.vpcd.get_atr()               # control bytes are not APDUs: not counted
        self.assertEqual(self.vpcd.apdu(SELECT_SSSE)[1], 0x9000)
        self.assertEqual(self.vpcd.apdu('0084000008')[1], 0x9000)
        self.vpcd.send_frame(bytes.fromhex('0084000008'))
        self.assertTrue(self.vpcd.closed_by_peer(), 'the 3rd APDU was not dropped')
        self.vpcd.close_conn()
        self.assertEqual(self.ctl(p, 'status').split()[:2], ['absent', 'link=down'])
        r, _, _ = select.select([self.vpcd.lsock], [], [], 1.5)
        self.assertFalse(r, 'the simulator came back without "insert"')
        self.assertEqual(self.ctl(p, 'insert'), 'ok')
        self.vpcd.accept(10.0)
        self.assertEqual(self.vpcd.apdu(SELECT_SSSE)[1], 0x9000)   # one-shot: no second drop
        self.assertEqual(self.vpcd.apdu(SELECT_SSSE)[1], 0x9000)
        self.assertEqual(self.vpcd.apdu(SELECT_SSSE)[1], 0x9000)
        # Armed again through the control socket: the 2nd APDU from now is dropped.
        self.assertEqual(self.ctl(p, 'drop-after 2'), 'ok')
        self.assertEqual(self.vpcd.apdu(SELECT_SSSE)[1], 0x9000)
        self.vpcd.send_frame(bytes.fromhex(SELECT_SSSE))
        self.assertTrue(self.vpcd.closed_by_peer())
        st = self.ctl(p, 'status')
        self.assertTrue(st.startswith('absent'), st)
        self.assertIn('apdus=8', st)

    def test_sigusr1_and_control_socket_toggle_presence(self):
        self.vpcd.listen()
        p = self.sim('--absent')
        r, _, _ = select.select([self.vpcd.lsock], [], [], 0.5)
        self.assertFalse(r, '--absent connected anyway')
        p.signal(signal.SIGUSR1)          # insert
        self.vpcd.accept(10.0)
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)
        p.signal(signal.SIGUSR1)          # remove
        self.assertTrue(self.vpcd.closed_by_peer())
        self.vpcd.close_conn()
        self.assertEqual(self.ctl(p, 'insert'), 'ok')
        self.vpcd.accept(10.0)
        self.assertTrue(self.ctl(p, 'status').startswith('present link=up'))
        self.assertEqual(self.ctl(p, 'remove'), 'ok')
        self.assertTrue(self.vpcd.closed_by_peer())
        self.assertTrue(self.ctl(p, 'status').startswith('absent link=down'))
        self.assertTrue(self.ctl(p, 'bogus').startswith('error'))
        self.assertTrue(self.ctl(p, 'drop-after x').startswith('error'))
        self.assertTrue(self.ctl(p, 'x' * 500).startswith('error'))
        self.assertTrue(p.alive())

    def test_state_is_saved_before_the_answer(self):
        state = os.path.join(self.dir, 'card.state')
        self.vpcd.listen()
        p = self.sim('--state', state)
        self.vpcd.accept()
        self.vpcd.apdu(SELECT_SSSE)
        self.assertFalse(os.path.exists(state))
        # A wrong PIN moves the persistent try counter (3 tries by default, spec §12.5).
        _, sw = self.vpcd.apdu('0020000003999999')
        self.assertEqual(sw, 0x63C2)
        self.assertTrue(os.path.exists(state), 'answered before the state was saved')
        p.kill9()
        self.vpcd.close_conn()
        self.sim('--state', state)
        self.vpcd.accept()
        self.vpcd.apdu(SELECT_SSSE)
        self.assertEqual(self.vpcd.apdu('0020000003999999')[1], 0x63C1)
        self.assertEqual(self.vpcd.apdu('0020000003' + GEN2_PIN)[1], 0x9000)

    def test_apdu_delay(self):
        self.vpcd.listen()
        self.sim('--apdu-delay-ms', '150')
        self.vpcd.accept()
        t = time.monotonic()
        self.assertEqual(self.vpcd.get_atr(), GEN2_ATR)     # control bytes are not delayed
        self.assertLess(time.monotonic() - t, 0.1)
        t = time.monotonic()
        self.vpcd.apdu(SELECT_SSSE)
        self.assertGreaterEqual(time.monotonic() - t, 0.15)

    def test_verbose_log_masks_pins(self):
        self.vpcd.listen()
        p = self.sim('--verbose')
        self.vpcd.accept()
        self.vpcd.apdu(SELECT_SSSE)
        self.vpcd.apdu('0020000003' + GEN2_PIN)
        self.vpcd.apdu('805E010007' + GEN2_PIN + 'FF' + '654321')
        self.vpcd.apdu('8424000014' + '12345678' * 5)
        p.stop()
        log = p.log_text()
        self.assertIn('> 00A404000F7378312E', log)
        self.assertIn('> 0020000003 <3 bytes masked>', log)
        self.assertIn('> 805E010007 <7 bytes masked>', log)
        self.assertIn('> 8424000014 <20 bytes masked>', log)
        for secret in (GEN2_PIN, '654321', '12345678'):
            self.assertNotIn(secret, log)

    def test_psam_role(self):
        self.vpcd.listen()
        self.sim(role='psam')
        self.vpcd.accept()
        self.assertEqual(self.vpcd.get_atr(), GEN2_PSAM_ATR)
        self.assertEqual(self.vpcd.apdu('00A4040006D15600000590')[1], 0x9000)
        self.assertEqual(self.vpcd.apdu('00B0960006'), (GEN2_TERMINAL, 0x9000))

    def test_bad_arguments_and_profiles(self):
        prof = harness.profile_path('gen2')
        cases = [
            ([], 'mode'),
            (['reader', '--port', '1', '--profile', prof], 'mode'),
            (['card', '--profile', prof], '--port is required'),
            (['card', '--port', '1'], '--profile is required'),
            (['card', '--port', '0', '--profile', prof], '--port'),
            (['card', '--port', '65536', '--profile', prof], '--port'),
            (['card', '--port', '-5', '--profile', prof], '--port'),
            (['card', '--port', '12x', '--profile', prof], '--port'),
            (['card', '--port', '1', '--profile', prof, '--host', 'localhost'], '--host'),
            (['card', '--port', '1', '--profile', prof, '--drop-after', '0'], '--drop-after'),
            (['card', '--port', '1', '--profile', prof, '--apdu-delay-ms', '60001'],
             '--apdu-delay-ms'),
            (['card', '--port', '1', '--profile', prof, '--frobnicate'], '--frobnicate'),
            (['card', '--port', '1', '--profile', prof, 'extra'], 'extra'),
        ]
        for args, needle in cases:
            status, err = self.run_sim(*args)
            self.assertEqual(status, 2, f'{args}: {err}')
            self.assertIn(needle, err, args)
        r = subprocess.run([harness.sim_binary(), '--help'], capture_output=True, text=True,
                           timeout=5)
        self.assertEqual(r.returncode, 0)
        self.assertIn('usage: sscard-sim card|psam', r.stdout)

        missing = os.path.join(self.dir, 'nope.json')
        status, err = self.run_sim('card', '--port', '1', '--profile', missing)
        self.assertEqual(status, 2)
        self.assertIn('nope.json', err)
        broken = os.path.join(self.dir, 'broken.json')
        with open(prof) as f:
            text = f.read()
        with open(broken, 'w') as f:
            f.write(text[:len(text) // 2])
        status, err = self.run_sim('card', '--port', '1', '--profile', broken)
        self.assertEqual(status, 2)
        self.assertIn('broken.json', err)

        # A state file that is not a state file: refused with the loader's message, exit 2.
        bad_state = os.path.join(self.dir, 'bad.state')
        with open(bad_state, 'w') as f:
            f.write('not a state file\n')
        status, err = self.run_sim('card', '--port', '1', '--profile', prof, '--state', bad_state)
        self.assertEqual(status, 2, err)
        self.assertIn('bad.state', err)

        # A regular file where the control socket should go is never replaced.
        regular = os.path.join(self.dir, 'ctl-file')
        with open(regular, 'w') as f:
            f.write('keep me')
        status, err = self.run_sim('card', '--port', '1', '--profile', prof, '--control', regular)
        self.assertEqual(status, 2)
        with open(regular) as f:
            self.assertEqual(f.read(), 'keep me')

    def test_sigterm_stops_cleanly(self):
        self.vpcd.listen()
        p = self.sim()
        self.vpcd.accept()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait(5), 0)
        self.assertTrue(self.vpcd.closed_by_peer())
        self.assertFalse(os.path.exists(p.ctl), 'control socket left behind')


if __name__ == '__main__':
    unittest.main(verbosity=2)
