#!/usr/bin/env python3
"""sscard-web, the browser bridge, without a browser (issue 17): the real daemon, the real bridge
running as its [web] bridge_user (nobody), and a WebSocket client written with the standard library
(tests/e2e/webtest.py) that sends what a local program could: forged Origins, a bad Host, wrong
tokens, replayed and expired pairing codes, 200 connections, a 10 MB frame, a page that never reads.
Each is answered as docs/web.md says, and the daemon and the other pages carry on."""

import json
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import sscardd  # noqa: E402
import webtest  # noqa: E402

SITE = 'http://counter.test:8080'
OTHER = 'https://his.test'
WRITER = 'http://writer.test'


class WebBridge(sscardd.DaemonTestCase):
    readers = 2
    deadline = 240.0

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.d = webtest.start_daemon(self, config={'web': {'pairing_code_ttl_s': '5'}})
        self.wait_roles({0: 'user'})
        self.b = webtest.Bridge(self.h, self.d, origins=[SITE, OTHER, WRITER],
                                policies={WRITER: 'default, card.write_items'}).start()

    def paired(self, origin=SITE):
        """A connection of origin that paired with a fresh code; (ws, token)."""
        ws = self.b.connect(origin)
        token = ws.call('bridge.pair', {'code': webtest.pair_code(self.d, origin)})['token']
        return ws, token

    def assertRefused(self, status, **kw):
        with self.assertRaises(webtest.Refused) as cm:
            self.b.connect(**kw)
        self.assertEqual(cm.exception.status, status, str(cm.exception))

    def test_pair_read_policy_and_audit(self):
        ws, token = self.paired()
        self.assertRegex(token, r'^[0-9a-f]{64}$')
        basic = ws.call('card.read_basic')
        self.assertEqual(len(basic['ssn']), 18)
        # A write is not in the default policy: refused by the bridge, never sent to the daemon.
        e = ws.call_error('card.write_items', {'file': 'SSSE/EF05', 'items': {'0B': '20300101'}})
        self.assertEqual((e.code, e.name), (1058, 'SSC_EPOLICY'))
        e = ws.call_error('bridge.bind', {'origin': OTHER})
        self.assertEqual(e.name, 'SSC_EPOLICY')
        # The page's own ids come back as it sent them, even a string and a repeated one.
        i1 = ws.request('system.info', msg_id='a')
        self.assertIn('result', ws.reply(i1))
        ws.close()
        # A later connection shows its token first.
        ws2 = self.b.connect(SITE)
        self.assertEqual(ws2.call('bridge.hello', {'token': token}), {'origin': SITE})
        self.assertIn('readers', ws2.call('reader.list'))
        ws2.close()
        # The daemon audited every call with the origin it came from, the write the bridge
        # refused too (bridge.refused: never run, but in the audit as refused), once.
        rows = webtest.journal_web_rows(self.d)
        self.assertIn(('bridge.pair', 'SSC_OK', SITE), rows)
        self.assertIn(('card.read_basic', 'SSC_OK', SITE), rows)
        self.assertIn(('bridge.hello', 'SSC_OK', SITE), rows)
        self.assertEqual([r for r in rows if r[0] in ('card.write_items', 'bridge.refused')],
                         [('card.write_items', 'SSC_EPOLICY', SITE)])
        # A policy that allows the write lets it through to the daemon (which checks the item
        # itself: this one is not in the file, so the daemon's own error comes back).
        wsw, _ = self.paired(WRITER)
        e = wsw.call_error('card.write_items', {'file': 'SSSE/EF05', 'items': {'0B': '20300101'}})
        self.assertEqual(e.name, 'SSC_EBADITEM')
        self.assertIn(('card.write_items', 'SSC_EBADITEM', WRITER),
                      webtest.journal_web_rows(self.d))

    def test_origin_and_host_checks(self):
        # Not on the list, missing, or not exact: 403 before any message.
        self.assertRefused(403, origin='http://evil.test')
        self.assertRefused(403, origin=None)
        self.assertRefused(403, origin=SITE + '/')
        self.assertRefused(403, origin='http://COUNTER.test:8080')
        self.assertRefused(403, origin='http://counter.test:8081')
        # DNS rebinding: a name that resolves to 127.0.0.1 sends its own Host.
        self.assertRefused(403, origin=SITE, host=f'evil.test:{self.b.port}')
        self.assertRefused(403, origin=SITE, host='127.0.0.1')
        self.assertRefused(403, origin=SITE, host=f'127.0.0.1:{self.b.port + 1}')
        self.assertRefused(404, origin=SITE, path='/v2')
        # localhost with the right port is this bridge.
        self.b.connect(SITE, host=f'localhost:{self.b.port}').close()
        # The demo page's files get the same Host check.
        st, hdr, body = self.b.http_get('/', host=f'evil.test:{self.b.port}')
        self.assertEqual(st, 403)
        st, hdr, body = self.b.http_get('/')
        self.assertEqual(st, 200)
        self.assertIn(b'<html', body)
        self.assertEqual(hdr.get('x-frame-options'), 'DENY')
        self.assertIn("frame-ancestors 'none'", hdr.get('content-security-policy', ''))

    def test_no_forged_log_lines(self):
        # What a page or a local program sends is logged with its control characters replaced:
        # neither a header nor a method name can start a line of the bridge's log of its own.
        forged = '2026-01-01T00:00:00.000Z error FORGED'
        for origin, host in ((f'http://evil.test\x1b[2K\r{forged}', None),
                             (SITE, f'evil.test\x0b{forged}:{self.b.port}')):
            with self.assertRaises(webtest.Refused) as cm:
                self.b.connect(origin, host=host)
            self.assertIn(cm.exception.status, (400, 403), str(cm.exception))
        ws, _ = self.paired()
        e = ws.call_error(f'card.x\n{forged}')
        self.assertEqual(e.name, 'SSC_EPOLICY')
        self.assertIn('readers', ws.call('reader.list'))
        harness.wait_until(lambda: self.b.log_text().count('FORGED') >= 2 or None, 10,
                           'the refusals in the log')
        text = self.b.log_text()
        self.assertNotRegex(text, r'[\x00-\x08\x0b-\x1f\x7f]')
        for line in text.split('\n'):
            self.assertFalse(line.startswith(forged), repr(line))

    def test_forged_origin_without_token_wrong_token_three_strikes(self):
        # A local program can forge an allowed Origin; without a token it gets nothing.
        ws = self.b.connect(SITE)
        e = ws.call_error('card.read_basic')
        self.assertEqual((e.code, e.name), (1055, 'SSC_ENOTPAIRED'))
        e = ws.call_error('bridge.hello', {'token': '0' * 64})
        self.assertEqual(e.name, 'SSC_EBADTOKEN')
        e = ws.call_error('reader.list')
        self.assertEqual(e.name, 'SSC_ENOTPAIRED')
        self.assertEqual(ws.wait_closed()[0], 1008)
        # The daemon audited the refusals with the origin the program claimed.
        rows = webtest.journal_web_rows(self.d)
        self.assertIn(('card.read_basic', 'SSC_ENOTPAIRED', SITE), rows)
        self.assertIn(('reader.list', 'SSC_ENOTPAIRED', SITE), rows)
        self.assertIn(('bridge.hello', 'SSC_EBADTOKEN', SITE), rows)
        # Only the bridge's user may report a refusal.
        e = self.c.call_error('bridge.refused', {'method': 'card.write_items',
                                                 'error': 'SSC_EPOLICY'})
        self.assertEqual(e.name, 'SSC_EPERM')
        # A token paired for one origin is no token for another.
        ws1, token = self.paired(SITE)
        ws2 = self.b.connect(OTHER)
        self.assertEqual(ws2.call_error('bridge.hello', {'token': token}).name, 'SSC_EBADTOKEN')
        # Revoked: refused at once on the live connection and at the next hello.
        rc, out, err = sscardd.ctl('--socket', self.d.socket_path, 'web', 'revoke', SITE)
        self.assertEqual(rc, 0, err)
        self.assertIn('1 paired page(s) revoked', out)
        self.assertEqual(ws1.call_error('reader.list').name, 'SSC_EBADTOKEN')
        ws3 = self.b.connect(SITE)
        self.assertEqual(ws3.call_error('bridge.hello', {'token': token}).name, 'SSC_EBADTOKEN')
        # Only root (or [web] admin_group) makes codes; only the bridge's user binds an origin.
        p = webtest.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups',
                         sscardd.ctl_binary(), '--socket', self.d.socket_path, 'web', 'pair',
                         SITE])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('SSC_EPERM', p.stderr)
        e = self.c.call_error('bridge.bind', {'origin': SITE})
        self.assertEqual(e.name, 'SSC_EPERM')
        e = self.c.call_error('bridge.pair', {'code': 'AAAAA-AAAAA'})
        self.assertEqual(e.name, 'SSC_EPERM')

    def test_codes_single_use_expiry_origin_and_rate_limit(self):
        code = webtest.pair_code(self.d, SITE)
        self.assertRegex(code, r'^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$')
        ws = self.b.connect(SITE)
        ws.call('bridge.pair', {'code': code.lower()})
        # Replayed: used already.
        ws2 = self.b.connect(SITE)
        e = ws2.call_error('bridge.pair', {'code': code})
        self.assertEqual((e.code, e.name), (1057, 'SSC_EBADCODE'))
        # Made for another origin.
        code2 = webtest.pair_code(self.d, OTHER)
        e = ws2.call_error('bridge.pair', {'code': code2})
        self.assertEqual(e.name, 'SSC_EBADCODE')
        self.assertIn('another origin', e.message)
        # Expired ([web] pairing_code_ttl_s = 5 here; 300 by default).
        code3 = webtest.pair_code(self.d, SITE)
        time.sleep(5.5)
        ws3 = self.b.connect(SITE)
        e = ws3.call_error('bridge.pair', {'code': code3})
        self.assertEqual(e.name, 'SSC_EBADCODE')
        self.assertIn('expired', e.message)
        # Wrong codes are rate-limited: 10 a minute, then even a right one waits.
        for _ in range(7):
            w = self.b.connect(SITE)
            w.call_error('bridge.pair', {'code': 'ZZZZZ-ZZZZZ'})
            w.close()
        good = webtest.pair_code(self.d, SITE)
        w = self.b.connect(SITE)
        e = w.call_error('bridge.pair', {'code': good})
        self.assertEqual(e.name, 'SSC_ELIMIT')
        # A refusal for a limit is summed up with its like of that second: its row comes when
        # the second is over (docs/operations.md, The journal).
        rows = harness.wait_until(
            lambda: (lambda rs: rs if ('bridge.pair', 'SSC_ELIMIT', SITE) in rs else None)(
                webtest.journal_web_rows(self.d)), 10, 'the refused pairing\'s audit row')
        self.assertGreaterEqual(sum(1 for r in rows if r[:2] == ('bridge.pair', 'SSC_EBADCODE')),
                                9)
        rc, out, err = sscardd.ctl('--socket', self.d.socket_path, 'web', 'list')
        self.assertEqual(rc, 0, err)
        self.assertIn(SITE, out)

    def test_limits_connections_big_frame_and_a_page_that_never_reads(self):
        ws, token = self.paired(OTHER)
        # 200 connections of one origin: 8 are served (max_connections_per_origin), the rest
        # refused with 429 before any message; the other origin's page is not disturbed.
        held, refused = [], 0
        for _ in range(200):
            try:
                held.append(self.b.connect(SITE))
            except webtest.Refused as e:
                self.assertEqual(e.status, 429)
                refused += 1
        self.assertEqual((len(held), refused), (8, 192))
        self.assertIn('readers', ws.call('reader.list'))
        for w in held:
            w.close()
        # Closed ones are uncounted: a new one gets in.
        harness.wait_until(lambda: self._try_connect(SITE), 10, 'a connection after the flood')
        # A 10 MB frame: closed with 1009 (message too big) without being buffered whole.
        big = self.b.connect(SITE)
        try:
            big.send_frame(0x1, b'{"jsonrpc":"2.0","id":1,"method":"system.info","params":{"x":"'
                           + b'A' * (10 * 1024 * 1024) + b'"}}')
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertEqual(big.wait_closed()[0], 1009)
        self.assertIn('readers', ws.call('reader.list'))
        # A page that never reads: it asks and asks; its answers pile up to max_queued_bytes, or
        # stay untaken for 10 s (the bridge then stops reading it too): either way it is closed.
        # The daemon and the other page carry on meanwhile.
        slow = self.b.connect(OTHER, rcvbuf=4096)
        slow.call('bridge.hello', {'token': token})
        msg = json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': 'system.info'}).encode()
        closed = False
        deadline = time.monotonic() + 90
        slow.sock.settimeout(1.0)
        while time.monotonic() < deadline and not closed:
            try:
                for _ in range(200):
                    slow.send_frame(0x1, msg)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            except socket.timeout:
                pass
            if re.search(r'unread(?: for \d+ ms)?: closed', self.b.log_text()):
                closed = True
            # Meanwhile the other page is served.
            self.assertIn('readers', ws.call('reader.list', timeout=5))
        self.assertTrue(closed, 'the page that never reads was not closed')
        self.assertRegex(self.b.log_text(), r'unread(?: for \d+ ms)?: closed')
        self.assertIn('readers', ws.call('reader.list'))
        with self.d.client() as c:
            self.assertIn('version', c.call('system.info'))
        self.assertTrue(self.b.proc.alive() and self.d.alive())

    def test_calls_in_flight_and_pages_that_vanish(self):
        ws, token = self.paired(OTHER)
        # 40 card reads sent at once: 16 go to the daemon (max_pending), the others are answered
        # SSC_ELIMIT by the bridge at once; every one is answered, with the page's own id.
        burst = webtest.WebSocket(('127.0.0.1', self.b.port), OTHER, f'127.0.0.1:{self.b.port}',
                                  '/v1', 10)
        burst.call('bridge.hello', {'token': token})
        frames = b''
        for i in range(40):
            text = json.dumps({'jsonrpc': '2.0', 'id': f'r{i}', 'method': 'card.read_basic'})
            frames += webtest.frame(0x1, text.encode())
        burst.sock.sendall(frames)
        answers = {f'r{i}': burst.reply(f'r{i}', timeout=60) for i in range(40)}
        # (The daemon has the same limit per connection, "on this connection"; the bridge's
        # comes first.)
        names = [a['error']['data']['name'] + (' (bridge)' if 'on this page' in
                                               a['error']['message'] else '')
                 if 'error' in a else 'ok' for a in answers.values()]
        self.assertEqual(set(names) - {'ok', 'SSC_ELIMIT (bridge)'}, set(), names)
        self.assertGreaterEqual(names.count('ok'), 16, names)
        self.assertGreaterEqual(names.count('SSC_ELIMIT (bridge)'), 1, names)
        burst.close()
        # Pages that ask for a read and vanish at once (a reset, no close frame): the bridge
        # drops their daemon connections; the daemon's answers find no page. The others go on.
        for _ in range(20):
            gone = webtest.WebSocket(('127.0.0.1', self.b.port), OTHER,
                                     f'127.0.0.1:{self.b.port}', '/v1', 10)
            gone.sock.sendall(
                webtest.frame(0x1, json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': 'bridge.hello',
                                               'params': {'token': token}}).encode()) +
                webtest.frame(0x1, b'{"jsonrpc":"2.0","id":2,"method":"card.read_basic"}'))
            gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            gone.sock.close()
        self.assertEqual(len(ws.call('card.read_basic', timeout=30)['ssn']), 18)
        with self.d.client() as c:
            self.assertIn('version', c.call('system.info'))
        self.assertTrue(self.b.proc.alive() and self.d.alive())
        # Their connections are uncounted: 8 of one origin get in again.
        harness.wait_until(lambda: self._n_connect(OTHER, 7), 15, 'the vanished pages uncounted')

    def _n_connect(self, origin, n):
        held = []
        try:
            for _ in range(n):
                held.append(self.b.connect(origin))
            return True
        except webtest.Refused:
            return None
        finally:
            for w in held:
                w.close()

    def _try_connect(self, origin):
        try:
            self.b.connect(origin).close()
            return True
        except webtest.Refused:
            return None

    def test_listen_refuses_non_loopback(self):
        for addr in ('0.0.0.0:8732', '192.0.2.1:8732', 'localhost:8732', '[::]:8732'):
            p = webtest.run([webtest.bridge_binary(), '--listen', addr, '--socket', '/nonexistent'])
            self.assertEqual(p.returncode, 2, addr)
            self.assertIn('--listen', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
