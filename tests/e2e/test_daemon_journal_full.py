#!/usr/bin/python3
"""sscardd end to end, a journal that becomes unwritable while the daemon runs (issue 4: "an
unwritable journal file stops writes with a clear error (reads may go on) rather than writing
without a record"; docs/security.md "If an append fails while the daemon runs (disk full, I/O
error ...)").

The journal lives on a small tmpfs mounted inside the test's own mount namespace (it vanishes with
the namespace, even if the test dies); sscardd runs in that namespace. Root ignores file modes, so
the file system itself is made to refuse: it is filled to the last byte (ENOSPC). (A read-only
remount is not possible while the daemon holds the files open for writing.) Then:

- a card write is refused with SSC_EJOURNAL (1029) and a message naming the journal, and the card
  is not written;
- system.info says "journal": "unavailable: ..."; the log has the error line;
- reads go on; further writes are refused before any APDU;
- while it stays full, the journal stays out of service (no coming back at each retry only to fail
  at the next append);
- once the file system takes writes again, the daemon picks the journal up by itself (within
  reopen_interval_ms), a write is applied and journaled, no intent is left without an outcome,
  and `journal verify --log` passes.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_journal_full.py
"""

import errno
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

REOPEN_MS = 1000


class JournalUnwritable(sscardd.DaemonTestCase):
    readers = 2

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0, state=True)
        self.psam = self.h.start_psam('gen2', slot=1)
        self.jdir = self.h.path('jfs')
        self.h.ns_mount(self.jdir, options='size=2m,mode=0700')
        self.db = os.path.join(self.jdir, 'journal.db')
        self.start_daemon(in_mountns=True, config={
            'journal': {'path': self.db, 'reopen_interval_ms': REOPEN_MS}})
        self.wait_roles({0: 'user', 1: 'psam'})
        self.assertEqual(self.c.call('system.info')['journal'], 'ok')

    def write(self, value):
        return self.c.call('card.write_items', {'file': 'DF04/EF05', 'items': {'31': value}})

    def category(self):
        return self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31']})['items']

    def fill(self):
        """Fills the tmpfs to the last byte; returns the filler's path (seen from outside)."""
        path = self.h.ns_path(os.path.join(self.jdir, 'filler'))
        with open(path, 'wb', buffering=0) as f:
            for size in (1 << 16, 1 << 12, 1):
                while True:
                    try:
                        f.write(b'\xAA' * size)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
                        break
        return path

    def settle(self):
        """Waits until the audit row of a system.info call made now is in the file: the audit
        writer has nothing left, so the next append is the one this test causes."""
        n = len(sscardd.journal_rows(self.db, ns=self.h))
        self.c.call('system.info')
        harness.wait_until(
            lambda: any(r['method'] == 'system.info'
                        for r in sscardd.journal_rows(self.db, ns=self.h)[n:]),
            5.0, 'the audit row of system.info')

    def refused_write(self):
        """Fills the disk; a write is refused with SSC_EJOURNAL and the card is not written.
        Returns (the error, the filler's path)."""
        self.assertEqual(self.write('21')['items'], {'31': '21'})
        self.settle()
        filler = self.fill()
        generation = self.card.status()['generation']
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '22'}})
        self.assertRpcError(e, 'SSC_EJOURNAL', code=1029)
        self.assertEqual(self.card.status()['generation'], generation)
        self.assertEqual(self.category(), {'31': '21'})
        return e, filler

    def test_disk_full(self):
        e, filler = self.refused_write()
        self.assertIn('nothing was written', e.message)
        # Out of service: said so (with the cause in the log), reads go on, writes are refused
        # before any APDU.
        info = self.c.call('system.info')
        self.assertTrue(info['journal'].startswith('unavailable: '), info)
        self.assertIn('disk is full', info['journal'])
        self.assertRegex(self.d.log_text(), r'error journal \S+ is unavailable: .*disk is full.*'
                         r' Card writes are refused \(SSC_EJOURNAL\)')
        self.assertEqual(self.c.call('card.read_basic')['card_number'], 'X00000019')
        apdus = self.card.status()['apdus']
        generation = self.card.status()['generation']
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '23'}})
        self.assertRpcError(e, 'SSC_EJOURNAL', code=1029)
        self.assertIn('journal', e.message)
        self.assertEqual(self.card.status()['apdus'], apdus)
        self.assertEqual(self.card.status()['generation'], generation)

        # While the disk stays full the journal stays down: no "available again" and a new
        # failure at every retry (it was so before journal_room: the database reopens fine on
        # a full disk and the next append fails). Three retries, with calls that append.
        deadline = time.monotonic() + 3.5 * REOPEN_MS / 1000
        while time.monotonic() < deadline:
            self.assertEqual(self.c.call('card.read_basic')['card_number'], 'X00000019')
            time.sleep(0.2)
        info = self.c.call('system.info')
        self.assertIn('disk is full', info['journal'])
        self.assertNotIn('is available again', self.d.log_text())
        self.assertEqual(self.d.log_text().count(' is unavailable: '), 1)
        self.assertFalse(os.path.exists(self.h.ns_path(self.db + '.probe')))

        # Repaired: the daemon takes the journal back by itself; writes are journaled again.
        os.unlink(filler)
        harness.wait_until(lambda: self.c.call('system.info')['journal'] == 'ok',
                           REOPEN_MS / 1000 * 5, 'the journal to come back')
        self.assertIn('is available again: card writes are accepted', self.d.log_text())
        r = self.write('24')
        self.assertEqual(r['items'], {'31': '24'})
        self.assertEqual(self.category(), {'31': '24'})
        rows = sscardd.journal_rows(self.db, ns=self.h)
        intents, outcomes = sscardd.intents_and_outcomes(rows)
        self.assertEqual(len(intents), 2)             # the refused write left no intent
        self.assertEqual(max(intents), r['journal_id'])
        self.assertEqual({s: [(o['method'], o['result']) for o in outcomes.get(s, [])]
                          for s in intents},
                         {s: [('applied', 'SSC_OK')] for s in intents})
        self.d.stop()
        rc, out = sscardd.journal_verify(self.db, self.h.path('sscardd.log'), ns=self.h)
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)

    def test_refusal_names_the_cause(self):
        # Was a bug (fixed in src/ops_write.c ops_write_run: the journal's reason is copied
        # before the refusal is formatted): the message formatted diag->msg into itself, and the
        # client got "the write intent could not be recorded (l): ..." instead of the cause.
        e, _ = self.refused_write()
        self.assertIn('disk is full', e.message)

if __name__ == '__main__':
    unittest.main(verbosity=2)
