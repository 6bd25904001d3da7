#!/usr/bin/python3
"""sscardd end to end: pcscd comes and goes under the daemon.

* pcscd started after the daemon (as socket-activated pcscd does on a real desk): the readers
  appear, subscribers get reader.added and card.inserted, and the cards read;
* pcscd restarted (SIGTERM, then a new pcscd) and killed (SIGKILL, then a new one) under the
  daemon: the same daemon process carries on, subscribers see card.removed / reader.removed and
  then reader.added / card.inserted again, reader ids stay the same, and reads work after.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_pcscd.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import DES_TERMINAL, SM4_TERMINAL, expected  # noqa: E402

EVENT_WAIT = 15.0     # seconds for the daemon to notice pcscd (it retries with a back-off)


def collect_events(client, wanted, timeout):
    """Reads events until every (type, reader) in wanted has been seen; returns all events seen,
    in order. Raises HarnessError at the deadline, listing what is missing."""
    seen = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout
    while missing:
        left = deadline - time.monotonic()
        if left <= 0:
            got = [(e['type'], e['reader']) for e in seen]
            raise harness.HarnessError(f'events still missing after {timeout} s: '
                                       f'{sorted(missing)}; seen {got}')
        try:
            ev = client.next_event(timeout=left)
        except harness.HarnessError:
            continue
        seen.append(ev)
        missing.discard((ev['type'], ev['reader']))
    return seen


def index_of(events, type_, reader):
    return next(i for i, e in enumerate(events) if e['type'] == type_ and e['reader'] == reader)


class Pcscd(sscardd.DaemonTestCase):
    readers = 4

    def test_pcscd_started_after_the_daemon(self):
        d = self.start_daemon()
        pid = d.pid
        self.assertEqual(d.readers(self.c), [])
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=1)
        self.h.start_card('gen3', slot=2)
        ids = [slot_id(k) for k in range(4)]
        seen = collect_events(self.c, [('reader.added', i) for i in ids] +
                              [('card.inserted', i) for i in ids[:3]], EVENT_WAIT)
        for i in ids[:3]:
            # A reader is announced before the card in it.
            self.assertLess(index_of(seen, 'reader.added', i), index_of(seen, 'card.inserted', i))
        added = next(e for e in seen if e['type'] == 'reader.added' and e['reader'] == ids[3])
        self.assertEqual((added['name'], added['driver'], added['card']),
                         ('Virtual PCD B 00 01', 'pcsc', False))
        self.wait_roles({0: 'user', 1: 'psam', 2: 'user', 3: None})
        self.assertEqual(self.c.call('card.read_basic', {'reader': ids[0]}),
                         expected('gen2', DES_TERMINAL))
        self.assertEqual(self.c.call('card.read_basic', {'reader': ids[2]}),
                         expected('gen3', '000000000000'))
        self.assertTrue(d.alive())
        self.assertEqual(d.pid, pid)

    def test_pcscd_restarted_and_killed_under_the_daemon(self):
        self.h.start_pcscd()
        self.h.start_card('gen3-readauth', slot=0)
        self.h.start_psam('gen3-readauth', slot=1)
        self.h.start_card('gen2', slot=2)
        d = self.start_daemon()
        pid = d.pid
        ids = [slot_id(k) for k in range(4)]
        self.wait_roles({0: 'user', 1: 'psam', 2: 'user', 3: None})
        self.assertEqual(self.c.call('card.read_basic', {'reader': ids[0]}),
                         expected('gen3-readauth', SM4_TERMINAL))
        other = d.client()          # a second subscriber
        other.subscribe()

        for how in ('restart', 'kill -9'):
            with self.subTest(how=how):
                self.c.events.clear()
                other.events.clear()
                if how == 'restart':
                    self.h.pcscd.restart()
                else:
                    self.h.pcscd.kill9()
                    self.h.pcscd.start()
                # Gone: every reader removed (its card first), then back with the cards.
                wanted = ([('reader.removed', i) for i in ids] +
                          [('card.removed', i) for i in ids[:3]] +
                          [('reader.added', i) for i in ids] +
                          [('card.inserted', i) for i in ids[:3]])
                for client in (self.c, other):
                    seen = collect_events(client, wanted, EVENT_WAIT)
                    for i in ids[:3]:
                        self.assertLess(index_of(seen, 'card.removed', i),
                                        index_of(seen, 'reader.removed', i))
                        self.assertLess(index_of(seen, 'reader.removed', i),
                                        index_of(seen, 'reader.added', i))
                        self.assertLess(index_of(seen, 'reader.added', i),
                                        index_of(seen, 'card.inserted', i))
                self.wait_roles({0: 'user', 1: 'psam', 2: 'user', 3: None})
                self.assertEqual(sorted(r['id'] for r in d.readers(self.c)), ids)
                self.assertEqual(self.c.call('card.read_basic', {'reader': ids[0]}),
                                 expected('gen3-readauth', SM4_TERMINAL))
                self.assertEqual(self.c.call('card.read_basic', {'reader': ids[2]}),
                                 expected('gen2', '000000000000'))
                self.assertTrue(d.alive())
                self.assertEqual(d.pid, pid)
                self.assertEqual(self.c.call('system.info')['peer']['pid'], os.getpid())


if __name__ == '__main__':
    unittest.main(verbosity=2)
