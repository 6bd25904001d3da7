#!/usr/bin/python3
"""sscardd end to end: a reader's queue shared by clients (issue 12, defect 4), through real pcscd +
vpcd + sscard-sim + sscardd on a slow card (the simulator's --apdu-delay-ms).

* A client that pipelines a card operation after another and closes its connection (in both
  directions) has its queued operations cancelled: another client's read is not stuck behind the
  abandoned work, which is audited as SSC_ECANCELED (docs/api.md, Audit).
* A client that half-closes after sending (shutdown(SHUT_WR)) still gets every answer.
* A live client with many operations queued does not hold the reader for another client: the
  reader serves its queue round-robin across clients (docs/api.md, Choosing the reader).

Timing is only used with wide margins: a card operation here takes about half a second (100 ms per
APDU), and the deadlines are many of them.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_queue.py [-k name]
"""

import json
import os
import select
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import NO_TERMINAL, expected  # noqa: E402

APDU_DELAY_MS = 100
READ_ITEMS = {'reader': slot_id(0), 'file': 'SSSE/EF05', 'items': ['07']}
CARD_NUMBER = {'file': 'SSSE/EF05', 'items': {'07': 'X00000019'}}     # gen2.json card_number


def requests(ids, method='card.read_items', params=READ_ITEMS):
    """Request lines for ids, as one block of bytes (pipelined in one write)."""
    return b''.join(json.dumps({'jsonrpc': '2.0', 'id': i, 'method': method,
                                'params': params}).encode() + b'\n' for i in ids)


class Queue(sscardd.DaemonTestCase):
    readers = 2

    def setup_slow_card(self, op_timeout_ms):
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0, apdu_delay_ms=APDU_DELAY_MS)
        self.start_daemon(op_timeout_ms=op_timeout_ms)
        self.wait_roles({0: 'user', 1: None})

    def test_abandoned_queue_is_cancelled(self):
        # The attack: one connection pipelines 16 reads on the slow card and closes after
        # 50 ms. Before the fix, the daemon ran all 16 (8 s of card time) for nobody, and the
        # victim's read waited behind them past its 6 s deadline.
        self.setup_slow_card(op_timeout_ms=6000)
        victim = self.d.client()
        attacker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        attacker.connect(self.d.socket_path)
        attacker.sendall(requests(range(1, 17)))
        time.sleep(0.05)
        attacker.close()

        t0 = time.monotonic()
        self.assertEqual(victim.call('card.read_basic', {'reader': slot_id(0)}, timeout=10),
                         expected('gen2', NO_TERMINAL))
        took = time.monotonic() - t0
        self.assertLess(took, 5.0, 'the victim waited behind the abandoned work')

        # The abandoned work does not run: the card falls quiet once the victim is served.
        quiet = self.card.status()['apdus']
        time.sleep(1.5)
        self.assertEqual(self.card.status()['apdus'], quiet, 'APDUs of a gone client still run')

        # Audited: each of the 16 either ran (the one on the card when the client left, at most
        # one more that started before the close was seen) or was cancelled, SSC_ECANCELED.
        rows = [r for r in sscardd.journal_settled(self.d)
                if r['kind'] == 'audit' and r['method'] == 'card.read_items']
        results = sorted(r['result'] for r in rows)
        self.assertEqual(len(rows), 16, results)
        cancelled = results.count('SSC_ECANCELED')
        self.assertGreaterEqual(cancelled, 14, results)
        self.assertEqual(set(results) - {'SSC_ECANCELED'}, {'SSC_OK'}, results)
        self.assertEqual(self.d.log_count('SSC_ECANCELED'), cancelled)

    def test_half_close_still_answered(self):
        # shutdown(SHUT_WR) after the last request is a normal end of a client: it gets every
        # answer, then the daemon closes.
        self.setup_slow_card(op_timeout_ms=20000)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.connect(self.d.socket_path)
        s.sendall(requests(range(1, 5)))
        s.shutdown(socket.SHUT_WR)
        c = sscardd.Client(self.d.socket_path, sock=s)
        got = sscardd.gather({c: [1, 2, 3, 4]}, timeout=20)
        for i in range(1, 5):
            self.assertEqual(got[(c, i)].get('result'), CARD_NUMBER, got[(c, i)])
        c.wait_closed(timeout=5)
        rows = [r for r in sscardd.journal_settled(self.d)
                if r['kind'] == 'audit' and r['method'] == 'card.read_items']
        self.assertEqual([r['result'] for r in rows], ['SSC_OK'] * 4)

    def test_round_robin_across_clients(self):
        # A live client queues 12 reads; another client's one read, sent once the first of the
        # 12 is answered, is served next (after the one on the card), not after the other 11.
        self.setup_slow_card(op_timeout_ms=30000)
        bulk = self.d.client()
        other = self.d.client()
        bulk.send_raw(requests(range(1, 13)))
        bulk.reply(1, timeout=10)
        other.request('card.read_items', READ_ITEMS, msg_id='other')

        order = []
        pending = {bulk: set(range(2, 13)), other: {'other'}}
        deadline = time.monotonic() + 30
        while any(pending.values()):
            self.assertLess(time.monotonic(), deadline, f'replies missing: {pending}')
            r, _, _ = select.select([bulk.sock, other.sock], [], [], 1.0)
            for c in (bulk, other):
                if c.sock in r:
                    c.read_available()
                for i in list(pending[c]):
                    if i in c.replies:
                        m = c.replies.pop(i)
                        self.assertEqual(m.get('result'), CARD_NUMBER, m)
                        pending[c].discard(i)
                        order.append(i)
        before = order.index('other')
        # Round-robin: at most the read on the card when "other" came, and one more that may
        # have started before its request was read. First come, first served would give 11.
        self.assertLessEqual(before, 2, order)
        self.assertEqual(sorted(i for i in order if i != 'other'), list(range(2, 13)))


if __name__ == '__main__':
    unittest.main(verbosity=2)
