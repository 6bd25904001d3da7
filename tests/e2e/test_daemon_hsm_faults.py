#!/usr/bin/python3
"""sscardd end to end with a failing network PSAM (issue 14, spec §13.2): every way the province key
server can fail gives a clear, named key-provider error within the deadline, never a hang; no APDU
reaches the card after the failed key step; the write intent is recorded failed at once (not left
pending as after a card transport failure); a multi-record write cut off by the key server dying
is recorded partial, naming what is on the card. Real pcscd + vpcd + simulated gen2 card, no PSAM
reader, sscard-sim hsm over real TLS with client certificates.

The failures, each with the switch or setup that provokes it (docs/simulator.md), and the name
and std_code the client must get (docs/errors.md):

| key server | error | std_code |
|---|---|---|
| not running | SSC_EHSMDOWN | −2201 |
| refuses the desk in the TLS handshake (switch, or a desk certificate of another CA) | SSC_EHSMDENIED | −2201 |
| answers 403 | SSC_EHSMDENIED | −2201 |
| a certificate the desk's ca_file did not sign | SSC_EHSMCERT | −2201 |
| answers after the request's timeout | SSC_EHSMTIMEOUT | −2201 |
| answers 500 / 503 | SSC_EHSMSERVER | −2201 |
| closes the connection unanswered | SSC_EHSMDROPPED | −2201 |
| answers 200 with a malformed body | SSC_EHSMPROTO | −2201 |
| has no PSAM of the card's algorithm (404 no_psam) | SSC_EHSMNOPSAM | −2202 |
| nothing at the URL (a bare 404) | SSC_EHSMURL | −2201 |

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_hsm_faults.py [-k name]
"""

import os
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import docsref  # noqa: E402
import hsmkit  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

CARD = 0
TIMEOUT_MS = 1500          # [hsm] timeout_ms in these tests
WRITE = {'file': 'SSSE/EF06', 'items': {'0B': '02'}}


class Faults(sscardd.DaemonTestCase):
    readers = 2
    deadline = 240.0

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.pki = hsmkit.make_pki(self.h)
        self.card = self.h.start_card('gen2', slot=CARD, state=True, verbose=True)
        self.ks = None
        self.n = 0

    def start(self, ks_args=(), psams=('gen2', 'gen3'), **hsm):
        if ks_args is not None:
            self.ks = hsmkit.KeyServer(self.h, self.pki, psams=psams, extra_args=ks_args).start()
        hsm.setdefault('timeout_ms', TIMEOUT_MS)
        self.n += 1
        self.d = sscardd.Daemon(self.h, config=hsmkit.daemon_config(self.pki, **hsm),
                                name=f'sscardd{self.n}', socket_name=f's{self.n}.sock',
                                in_mountns=True, op_timeout_ms=8000).start()
        self.c = self.d.client()
        self.wait_roles({CARD: 'user'})

    def restart_ks(self, *args):
        self.ks.stop()
        self.ks = hsmkit.KeyServer(self.h, self.pki, name=f'hsm{time.monotonic_ns()}',
                                   extra_args=args).start()

    def last_command(self):
        """The last command APDU the card received (its simulator's log)."""
        cmds = [h for d, h in hsmkit.card_trace(self.card.proc.log_text()) if d == '>']
        return cmds[-1] if cmds else None

    def assertKeyFailure(self, name, std=-2201, method='card.write_items', params=WRITE,
                         last='0084000008', within=TIMEOUT_MS / 1000 + 3.0):
        """method fails with name and std_code within the time given; the last APDU the card
        got is last (the key step's own: GET CHALLENGE before external authentication), and
        nothing follows it; a write's intent is failed with that name at once."""
        p = dict(params, reader=slot_id(CARD))
        before = self.card.status()['apdus']
        e, took = hsmkit.elapsed(lambda: self.c.call(method, p, timeout=30))
        self.assertIsInstance(e, sscardd.RpcError, e)
        self.assertRpcError(e, name, std_code=std)
        self.assertLess(took, within, f'{name} after {took:.1f} s')
        # As the docs say: api.md lists it for the method, errors.md gives that std_code.
        self.assertIn(name, docsref.method_errors(method))
        self.assertEqual(docsref.errors_table()[name]['std'], std)
        self.assertGreater(self.card.status()['apdus'], before)
        self.assertEqual(self.last_command(), last)
        n = self.card.status()['apdus']
        time.sleep(0.5)
        self.assertEqual(self.card.status()['apdus'], n, 'APDUs after the failed key step')
        if method == 'card.write_items':
            rows = sscardd.journal_settled(self.d)
            intents, outcomes = sscardd.intents_and_outcomes(rows)
            last_intent = max(intents)
            self.assertEqual([(o['method'], o['result']) for o in outcomes[last_intent]],
                             [('failed', name)])
        return e

    def test_server_side_failures(self):
        self.start()
        # A working server first: the connection is up and kept alive.
        self.assertEqual(self.c.call('card.write_items', dict(WRITE, reader=slot_id(CARD)))
                         ['items'], {'0B': '02'})
        self.ks.switch('refuse', '403')
        e = self.assertKeyFailure('SSC_EHSMDENIED')
        self.assertIn('HTTP 403', e.message)
        self.ks.switch('refuse', 'none')
        for status in (500, 503):
            self.ks.switch('fail', status)
            e = self.assertKeyFailure('SSC_EHSMSERVER')
            self.assertIn(f'HTTP {status}', e.message)
        self.ks.switch('fail', 'none')
        self.ks.switch('garble', 'on')
        self.assertKeyFailure('SSC_EHSMPROTO')
        self.ks.switch('garble', 'off')
        # Dropped unanswered: curl retries once on a fresh connection, so drop both.
        self.ks.switch('drop', 2)
        self.assertKeyFailure('SSC_EHSMDROPPED')
        # Slower than [hsm] timeout_ms: the answer comes at that timeout, not later.
        self.ks.switch('delay', 6000)
        e, took = hsmkit.elapsed(lambda: self.assertKeyFailure('SSC_EHSMTIMEOUT'))
        self.assertGreater(took, TIMEOUT_MS / 1000 - 0.2)
        self.ks.switch('delay', 0)
        # The other key operations stop the same way, none with an APDU after the key step:
        # internal authentication (INTERNAL AUTHENTICATE, then the key server), a MAC'd DF04
        # write and a PIN reload (GET CHALLENGE, then the MAC), an unblock (the PIN block is
        # encrypted first: the card gets nothing after reading the card number).
        self.ks.switch('fail', 500)
        self.assertKeyFailure('SSC_EHSMSERVER', method='card.internal_auth', params={},
                              last='0088000010' + 'x' * 32)
        self.assertKeyFailure('SSC_EHSMSERVER', params={'file': 'DF04/EF05',
                                                        'items': {'31': '21'}})
        self.assertKeyFailure('SSC_EHSMSERVER', method='card.reload_pin',
                              params={'new_pin': '246810'})
        self.assertKeyFailure('SSC_EHSMSERVER', method='card.unblock_pin',
                              params={'new_pin': '246810'}, last='00B2032C00')
        self.ks.switch('fail', 'none')
        # Back to normal: the same operations work again, on the same daemon.
        self.assertEqual(self.c.call('card.internal_auth', {'reader': slot_id(CARD)})
                         ['genuine'], True)

    def test_server_down_and_handshake(self):
        self.start()
        self.ks.stop()
        self.assertKeyFailure('SSC_EHSMDOWN')
        # The desk refused in the TLS handshake: a switch of the server, and a stranger's
        # certificate (another CA signed it) beside it.
        self.restart_ks('--refuse', 'tls')
        e = self.assertKeyFailure('SSC_EHSMDENIED')
        self.assertIn('TLS handshake', e.message)
        self.assertGreater(self.ks.status()['refused_tls'], 0)
        self.restart_ks()
        self.d.stop()
        self.start(ks_args=None, cert=self.pki.rogue_cert, key=self.pki.rogue_key)
        self.assertKeyFailure('SSC_EHSMDENIED')
        # A server whose certificate the desk's CA did not sign (a man in the middle).
        self.d.stop()
        self.start(ks_args=None, ca=self.pki.rogue_ca)
        e = self.assertKeyFailure('SSC_EHSMCERT')
        self.assertIn('[hsm] ca_file', e.message)

    def test_no_psam_and_wrong_url(self):
        # A key server with no DES PSAM: 404 no_psam, std_code -2202.
        self.start(psams=('gen3',))
        self.assertKeyFailure('SSC_EHSMNOPSAM', std=-2202)
        self.d.stop()
        self.ks.stop()
        self.start(url=f'https://127.0.0.1:{hsmkit.PORT}/wrong/prefix')
        e = self.assertKeyFailure('SSC_EHSMURL')
        self.assertIn('[hsm] url', e.message)

    def test_deadline_of_the_operation(self):
        # [hsm] timeout_ms longer than what the operation has left: the request stops at the
        # operation's deadline (op_timeout_ms 3000), never later.
        self.start(timeout_ms=60000)
        self.d.stop()
        self.d = sscardd.Daemon(self.h, config=hsmkit.daemon_config(self.pki, timeout_ms=60000),
                                name='sscardd-op', socket_name='op.sock', in_mountns=True,
                                op_timeout_ms=3000).start()
        self.c = self.d.client()
        self.wait_roles({CARD: 'user'})
        self.ks.switch('delay', 20000)
        p = dict(WRITE, reader=slot_id(CARD))
        e, took = hsmkit.elapsed(lambda: self.c.call('card.write_items', p, timeout=30))
        self.assertIsInstance(e, sscardd.RpcError, e)
        self.assertIn(e.name, ('SSC_EHSMTIMEOUT', 'SSC_ETIMEDOUT'))
        self.assertLess(took, 5.0)
        # The intent is resolved (failed), not pending: the key step sent nothing to the card.
        def resolved():
            rows = sscardd.journal_settled(self.d)
            intents, outcomes = sscardd.intents_and_outcomes(rows)
            return outcomes.get(max(intents))
        outs = hsmkit_wait(resolved, 10)
        self.assertEqual([(o['method'], o['result']) for o in outs],
                         [('failed', 'SSC_EHSMTIMEOUT')])

    def test_key_server_dies_mid_write(self):
        # Three DF04/EF05 records, each with its own MAC (one exchange each): the server dies
        # when the second exchange arrives. The first record is on the card, the others not.
        self.start(ks_args=('--die-after', '1'))
        items = {'31': '21', '33': 'H33010000099', '34': '1'}
        p = {'reader': slot_id(CARD), 'file': 'DF04/EF05', 'items': items}
        e, took = hsmkit.elapsed(lambda: self.c.call('card.write_items', p, timeout=30))
        self.assertIsInstance(e, sscardd.RpcError, e)
        # Which failure the desk sees depends on when the server's process went: the request
        # unanswered, then (curl retries once on a fresh connection) a connection refused, or
        # reset during the new handshake.
        self.assertIn(e.name, ('SSC_EHSMDROPPED', 'SSC_EHSMDOWN', 'SSC_EHSMTLS'))
        self.assertEqual(self.ks.wait_exit(), 3)
        self.assertLess(took, TIMEOUT_MS / 1000 + 3)
        self.assertEqual(e.data.get('written'), ['31'])
        # The card holds the first value, and the old ones of the rest (its own state file).
        recs = {r[:2].upper(): r.upper() for r in self.card.state()['files']['DF04/EF05']}
        self.assertEqual(recs['31'], '31023231')
        self.assertEqual(recs['33'], '330C' + 'H33010000001'.encode().hex().upper())
        # The journal: resolved at once by reading back, partial, naming what is on the card.
        rows = sscardd.journal_settled(self.d)
        intents, outcomes = sscardd.intents_and_outcomes(rows)
        out = outcomes[e.data['journal_id']]
        self.assertEqual(len(out), 1, out)
        self.assertEqual((out[0]['method'], out[0]['result']), ('partial', e.name))
        self.assertIn('written 31; not written 33 34', out[0]['detail'])
        self.assertEqual(sscardd.journal_verify(self.d.journal_path)[0], 0)

    def test_terminal_number_unavailable(self):
        # No key server at all: a card that needs no key still reads, terminal 000000000000, and
        # the log says why.
        self.start(ks_args=None)
        b = self.c.call('card.read_basic', {'reader': slot_id(CARD)})
        self.assertEqual((b['card_number'], b['terminal_number']), ('X00000019', '000000000000'))
        self.assertIn('|000000000000|', b['standard'])
        self.assertIn('no terminal number from the key server', self.d.log_text())
        self.assertIn('SSC_EHSMDOWN', self.d.log_text())
        # The server comes up: the next read (after the retry pause) gets its number.
        self.ks = hsmkit.KeyServer(self.h, self.pki).start()
        time.sleep(10.5)
        b = self.c.call('card.read_basic', {'reader': slot_id(CARD)})
        self.assertEqual(b['terminal_number'], '330100000001')

    def test_key_file_others_can_read(self):
        os.chmod(self.pki.desk_key, 0o644)
        d = sscardd.Daemon(self.h, config=hsmkit.daemon_config(self.pki), name='refused')
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        p = subprocess.run([*d.argv(), '--check-config'], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(f'[hsm] key_file {self.pki.desk_key}: others may access it (mode 0644)',
                      p.stderr)
        proc = self.h.spawn('refused', d.argv())
        self.assertEqual(proc.wait(10), 2)
        self.assertIn('others may access it', proc.log_text())
        # 0640 (the daemon's group may read it) is accepted.
        os.chmod(self.pki.desk_key, 0o640)
        p = subprocess.run([*d.argv(), '--check-config'], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(stat.S_IMODE(os.stat(self.pki.desk_key).st_mode), 0o640)

    def test_libcurl_only_with_hsm(self):
        # The daemon loads libcurl for the key server only (docs/operations.md, [hsm]): without
        # [hsm] it is not in the process at all, with [hsm] url it is, from the start.
        plain = sscardd.Daemon(self.h, name='plain', socket_name='plain.sock').start()
        self.assertFalse(harness.library_mapped(plain.pid, 'libcurl'),
                         'libcurl mapped without [hsm]')
        self.assertFalse(harness.library_mapped(plain.pid, 'libssh2'),
                         'libcurl\'s libraries mapped')
        # It lets go of the card, which it keeps watching otherwise ([card] prefetch_shared):
        # the next daemon needs the card exclusively.
        plain.stop()
        self.start()
        self.assertTrue(harness.library_mapped(self.d.pid, 'libcurl.so.4'),
                        'libcurl not loaded for [hsm]')
        b = self.c.call('card.read_basic', {'reader': slot_id(CARD)})
        self.assertEqual(b['terminal_number'], '330100000001')

    def test_libcurl_missing(self):
        # libcurl.so.4 cannot be loaded (here: LD_LIBRARY_PATH finds a file that is no library
        # first): with [hsm] url the daemon refuses to start, naming SSC_EHSMLIB and what to do;
        # without [hsm] it starts and serves, since it never needs libcurl.
        libdir = self.h.path('nolib')
        os.makedirs(libdir)
        with open(os.path.join(libdir, 'libcurl.so.4'), 'w') as f:
            f.write('not a shared library\n')
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        d = sscardd.Daemon(self.h, config=hsmkit.daemon_config(self.pki), name='nocurl',
                           socket_name='nocurl.sock')
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        p = subprocess.run([*d.argv(), '--check-config'], capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(p.returncode, 2, p)
        want = '[hsm] url is set, but libcurl cannot be loaded (SSC_EHSMLIB: '
        self.assertIn(want, p.stderr)
        self.assertIn('libcurl.so.4', p.stderr)
        self.assertIn('install the package libcurl4, or remove [hsm] url', p.stderr)
        proc = self.h.spawn('nocurl', d.argv(), env=env)
        self.assertEqual(proc.wait(20), 1)
        self.assertIn(want, proc.log_text())
        self.assertFalse(os.path.exists(d.socket_path))
        plain = sscardd.Daemon(self.h, name='plain', socket_name='plain.sock', env=env).start()
        self.assertFalse(harness.library_mapped(plain.pid, 'libcurl'))
        self.d, self.c = plain, plain.client()
        self.wait_roles({CARD: 'user'})
        b = self.c.call('card.read_basic', {'reader': slot_id(CARD)})
        self.assertEqual(b['card_number'], 'X00000019')


def hsmkit_wait(fn, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = fn()
        if r:
            return r
        time.sleep(0.1)
    raise AssertionError('timed out')


if __name__ == '__main__':
    unittest.main()
