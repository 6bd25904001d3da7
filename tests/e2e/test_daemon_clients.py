#!/usr/bin/python3
"""sscardd end to end: many clients at once, and clients that misbehave.

* 50 clients connected at the same time, each with a card read and two other requests in flight,
  each answered correctly (matched by id; replies may come out of order);
* malformed input: not JSON, not UTF-8, duplicate keys (-32700); invalid requests (-32600);
  unknown methods (-32601); bad params (-32602); nesting beyond the limit (-32600 SSC_ELIMIT)
  and very deep nesting; notifications get no reply. The connection stays usable after each;
* a 10 MB line: an error and a close for that client, while the others (one with a card read in
  flight, one subscribed to events) are unaffected;
* clients that vanish mid-request or mid-line, or half-close: the others are unaffected, the
  daemon keeps serving, the card reads normally afterwards.

The expected codes are docs/api.md's; expected card data is hand-copied (test_daemon_read.py).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_clients.py [-k name]
"""

import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import NO_TERMINAL, expected  # noqa: E402

PROFILES = ['gen2', 'gen3', 't0-quirks', 'expired']      # on slots 0..3, no PSAM


def reply_or_null(c, rid, timeout=5.0):
    """The reply to rid, or a reply with id null (when the daemon could not read the id)."""
    return c._wait(lambda: c.replies.pop(rid, None) or (c.null_replies.pop(0) if c.null_replies
                                                        else None), timeout, f'reply {rid!r}')


class ManyClients(sscardd.DaemonTestCase):
    readers = 4

    def start_four(self, **kw):
        self.h.start_pcscd()
        for slot, prof in enumerate(PROFILES):
            self.h.start_card(prof, slot=slot)
        self.start_daemon(**kw)
        self.wait_roles({slot: 'user' for slot in range(4)})

    def test_fifty_clients_at_once(self):
        self.start_four()
        clients = [self.d.client() for _ in range(50)]
        # All 50 are connected before anyone sends: each sees its own connection's peer.
        pending = {}
        for i, c in enumerate(clients):
            ids = [c.request('card.read_basic', {'reader': slot_id(i % 4)}, msg_id=f'read-{i}'),
                   c.request('system.info', msg_id=1000 + i),
                   c.request('reader.list', msg_id=None)]
            pending[c] = ids
        got = sscardd.gather(pending, timeout=30)
        for i, c in enumerate(clients):
            with self.subTest(client=i):
                r = got[(c, f'read-{i}')]
                self.assertEqual(r.get('result'), expected(PROFILES[i % 4], NO_TERMINAL), r)
                self.assertEqual(r['jsonrpc'], '2.0')
                info = got[(c, 1000 + i)]['result']
                self.assertEqual(info['peer']['pid'], os.getpid())
                listing = got[(c, pending[c][2])]['result']['readers']
                self.assertEqual(sorted(x['id'] for x in listing), [slot_id(k) for k in range(4)])
        # Every connection is still open and usable.
        pending = {c: [c.request('system.info')] for c in clients}
        got = sscardd.gather(pending, timeout=10)
        self.assertEqual(len(got), 50)
        self.assertTrue(all(not c.eof for c in clients))

    def test_pipelined_on_one_connection(self):
        # Several card operations in flight on one connection, on four readers: all answered,
        # matched by id.
        self.start_four()
        ids = {self.c.request('card.read_basic', {'reader': slot_id(k % 4)}): k % 4
               for k in range(12)}
        for mid, slot in ids.items():
            self.assertEqual(self.c.result(mid, timeout=15), expected(PROFILES[slot], NO_TERMINAL))


class Malformed(sscardd.DaemonTestCase):
    readers = 2

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})

    def assertStillServes(self, c):
        """The connection still works: a card read answers correctly."""
        self.assertEqual(c.call('card.read_basic'), expected('gen2', NO_TERMINAL))

    def expect_error(self, c, raw, code, name=None, reply_id=None):
        """Sends raw (one line); returns the error reply after checking code (and data.name)."""
        c.send_raw(raw)
        m = c.null_reply() if reply_id is None else c.reply(reply_id, timeout=5)
        self.assertIn('error', m, m)
        self.assertEqual(m['error']['code'], code, m)
        if name is not None:
            self.assertEqual(m['error'].get('data', {}).get('name'), name, m)
        self.assertNotIn('result', m)
        return m

    def test_parse_errors(self):
        c = self.c
        for raw in (b'{"jsonrpc":"2.0","id":1,"method":\n',
                    b'not json at all\n',
                    b'{"jsonrpc":"2.0","id":1,"method":"system.info"}}\n',
                    b'\xff\xfe{"jsonrpc":"2.0","id":1,"method":"system.info"}\n',
                    b'{"jsonrpc":"2.0","id":1,"method":"system.info","id":2}\n',
                    b'{"jsonrpc":"2.0","id":"\xc3\x28","method":"system.info"}\n'):
            with self.subTest(raw=raw[:40]):
                self.expect_error(c, raw, -32700)
        self.assertStillServes(c)

    def test_invalid_requests(self):
        c = self.c
        cases = [
            (b'[]\n', None),
            (b'[{"jsonrpc":"2.0","id":1,"method":"system.info"}]\n', None),
            (b'42\n', None),
            (b'"system.info"\n', None),
            (b'{"jsonrpc":"1.0","id":11,"method":"system.info"}\n', 11),
            (b'{"id":12,"method":"system.info"}\n', 12),
            (b'{"jsonrpc":"2.0","id":13}\n', 13),
            (b'{"jsonrpc":"2.0","id":14,"method":7}\n', 14),
            (b'{"jsonrpc":"2.0","id":15,"method":"system.info","param":{}}\n', 15),
            (b'{"jsonrpc":"2.0","id":{"a":1},"method":"system.info"}\n', None),
            (b'{"jsonrpc":"2.0","id":1.5,"method":"system.info"}\n', None),
        ]
        for raw, rid in cases:
            with self.subTest(raw=raw):
                c.send_raw(raw)
                m = c.reply(rid, timeout=5) if rid is not None else c.null_reply()
                self.assertEqual(m['error']['code'], -32600, m)
        m = self.expect_error(c, b'[]\n', -32600)
        self.assertIn('batch', m['error']['message'])
        self.assertStillServes(c)

    def test_unknown_method_and_bad_params(self):
        c = self.c
        for method in ('no.such.method', 'card.no_such_op', 'system.info2', 'System.Info', ''):
            with self.subTest(method=method):
                err = c.call_error(method)
                self.assertEqual(err.code, -32601, err)
        bad = [
            ('card.read_basic', []),
            ('card.read_basic', [1, 2]),
            ('card.read_basic', {'reader': 5}),
            ('card.read_basic', {'reader': ''}),
            ('card.read_basic', {'readr': slot_id(0)}),
            ('card.read_basic', {'internal_auth': 'yes'}),
            ('card.read_items', {'file': 'SSSE/EF06', 'items': '08'}),
            ('card.read_items', {'file': 7, 'items': ['08']}),
            ('card.read_items', {'file': 'SSSE/EF06', 'items': [8]}),
            ('card.read_items', {'file': 'SSSE/EF06', 'items': ['08'] * 65}),
            ('reader.list', []),
        ]
        for method, params in bad:
            with self.subTest(method=method, params=params):
                err = c.call_error(method, params)
                self.assertEqual(err.code, -32602, err)
                self.assertEqual(err.name, 'SSC_EINVAL', err)
                self.assertEqual(err.std_code, -14, err)
        self.assertStillServes(c)

    def test_notifications_get_no_reply(self):
        c = self.d.client()                  # not subscribed: no events either
        c.send({'jsonrpc': '2.0', 'method': 'system.info'})
        c.send({'jsonrpc': '2.0', 'method': 'no.such.method'})
        c.send({'jsonrpc': '2.0', 'method': 'card.read_basic', 'params': []})
        self.assertEqual(c.call('system.info')['api_level'], 1)
        c.pump(0.3)
        self.assertEqual(c.replies, {})
        self.assertEqual(c.null_replies, [])
        self.assertEqual(len(c.raw_lines), 1)    # the system.info reply, nothing else

    def test_deep_json(self):
        c = self.c
        limit = self.d.info['limits']['max_json_depth']
        self.assertEqual(limit, 16)
        # Nesting inside params: at the limit it is parsed (and the params are refused), beyond
        # it the request is refused as too deep; very deep input must not hurt the daemon.
        at_limit = '[' * (limit - 2) + ']' * (limit - 2)
        m = self.expect_error(c, '{"jsonrpc":"2.0","id":1,"method":"reader.list","params":{"a":'
                              + at_limit + '}}\n', -32602, reply_id=1)
        # (Lines stay under max_request_bytes, 65536: that limit is another test's.)
        for depth in (limit + 1, 1000, 30000):
            with self.subTest(depth=depth):
                raw = ('{"jsonrpc":"2.0","id":2,"method":"system.info","params":{"a":'
                       + '[' * depth + ']' * depth + '}}\n')
                c.send_raw(raw)
                m = reply_or_null(c, 2)
                self.assertEqual(m['error']['code'], -32600, m)
                self.assertEqual(m['error']['data']['name'], 'SSC_ELIMIT', m)
        self.expect_error(c, '[' * 50000 + '\n', -32600, name='SSC_ELIMIT')
        self.expect_error(c, '{"a":' * 12000 + '\n', -32600, name='SSC_ELIMIT')
        self.assertStillServes(c)
        self.assertFalse(c.eof)

    def test_ten_megabyte_line(self):
        # A bystander with a card read in flight, a subscriber, and the flooder.
        bystander = self.d.client()
        listener = self.d.client()
        listener.subscribe()
        flood = self.d.client()
        limit = self.d.info['limits']['max_request_bytes']
        read = bystander.request('card.read_basic')
        head = b'{"jsonrpc":"2.0","id":1,"method":"system.info","params":{"x":"'
        body = head + b'a' * (10 * 1024 * 1024) + b'"}}\n'
        try:
            flood.send_raw(body, timeout=20)
        except sscardd.Closed:
            pass                      # the daemon hung up while we were still sending
        flood.wait_closed(timeout=10)
        # The flooder was told why before the close (docs/api.md: -32600, SSC_ELIMIT).
        self.assertEqual(len(flood.null_replies), 1, flood.raw_lines)
        err = flood.null_replies[0]['error']
        self.assertEqual((err['code'], err['data']['name']), (-32600, 'SSC_ELIMIT'))
        self.assertLessEqual(sum(len(x) for x in flood.raw_lines), 4096)
        # Everyone else is unaffected.
        self.assertEqual(bystander.result(read), expected('gen2', NO_TERMINAL))
        self.assertStillServes(bystander)
        self.assertStillServes(self.c)
        self.h.sims[0].remove()
        self.assertEqual(listener.next_event(timeout=5, type='card.removed')['reader'],
                         slot_id(0))
        self.assertGreaterEqual(limit, 1024)
        # A line just over the limit, without a newline, is refused the same way.
        flood2 = self.d.client()
        try:
            flood2.send_raw(b'{"x":"' + b'b' * (limit + 10), timeout=10)
        except sscardd.Closed:
            pass
        flood2.wait_closed(timeout=10)
        self.assertEqual(flood2.null_replies[0]['error']['code'], -32600)
        self.assertEqual(self.d.readers(self.c)[0]['id'], slot_id(0))
        self.assertTrue(self.d.alive())


class Abandoned(sscardd.DaemonTestCase):
    readers = 4

    def test_client_gone_mid_request(self):
        self.h.start_pcscd()
        slow = self.h.start_card('gen2', slot=0, apdu_delay_ms=30)   # a read takes ~0.5 s
        self.h.start_card('gen3', slot=2)
        self.start_daemon()
        self.wait_roles({0: 'user', 2: 'user'})
        other = self.d.client()
        in_flight = other.request('card.read_basic', {'reader': slot_id(2)})
        for k in range(5):
            with self.subTest(round=k):
                gone = self.d.client()
                base = slow.status()['apdus']
                gone.request('card.read_basic', {'reader': slot_id(0)})
                gone.request('card.read_items', {'reader': slot_id(0), 'file': 'DF04/EF08',
                                                 'items': ['40']})
                # Wait until the card is being read, then vanish without reading the answers.
                sscardd.harness.wait_until(lambda: slow.status()['apdus'] > base, 5, 'the read')
                gone.close()
        # A client that dies in the middle of a line, and one with a half-sent request.
        half = self.d.client()
        half.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"card.read_basic","par')
        half.close()
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(self.d.socket_path)
        raw.sendall(b'{"jsonrpc":"2.0","id":1,"method":"system.info"}\n' * 100)
        raw.close()
        # Everyone else is served, and the card reads normally afterwards (left in a clean state).
        self.assertEqual(other.result(in_flight), expected('gen3', NO_TERMINAL))
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen2', NO_TERMINAL))
        self.assertEqual(self.c.call('card.read_items', {'reader': slot_id(0),
                                                         'file': 'SSSE/EF05', 'items': ['07']}),
                         {'file': 'SSSE/EF05', 'items': {'07': 'X00000019'}})
        self.assertTrue(self.d.alive())

    def test_half_close(self):
        # docs/api.md: after shutdown(SHUT_WR) the daemon still answers what it received.
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})
        c = self.d.client()
        c.request('card.read_basic', msg_id='r')
        c.request('system.info', msg_id='i')
        c.sock.shutdown(socket.SHUT_WR)
        c.wait_closed(timeout=15)
        self.assertEqual(c.replies['r']['result'], expected('gen2', NO_TERMINAL))
        self.assertEqual(c.replies['i']['result']['api_level'], 1)
        for line in c.raw_lines:
            json.loads(line)


if __name__ == '__main__':
    unittest.main(verbosity=2)
