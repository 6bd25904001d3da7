#!/usr/bin/python3
"""sscardd end to end, the journal as the daemon runs it: a write interrupted by the card leaving
is resolved by reading the card back as soon as the card is inserted again (no client call
needed), the chain head in the daemon's log lets `sscardctl journal verify --log` pass and catch a
cut tail, a corrupt journal leaves reads working and refuses writes, and the lost-card list
refuses a listed card. Real pcscd + vpcd + sscard-sim (card and PSAM) + sscardd.

Expected values are copied by hand from firmware-stubs/profiles/gen2.json (card number X00000019,
DF04/EF05 item 31 = "11") and docs/api.md / docs/operations.md.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_journal.py [-k name]
"""

import json
import os
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import RpcError  # noqa: E402

GEN2_CARD_NUMBER = 'X00000019'


def ctl(*args, stdin=None):
    """Runs sscardctl; returns (exit status, stdout, stderr)."""
    p = subprocess.run([sscardd.ctl_binary(), *args], input=stdin, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def rows(db):
    """The journal's rows, through sscardctl journal export."""
    rc, out, err = ctl('journal', 'export', '--journal', db)
    if rc != 0:
        raise AssertionError(f'journal export: {rc} {err}')
    return [json.loads(line) for line in out.splitlines()]


class Journal(sscardd.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0, state=True)
        self.h.start_psam('gen2', slot=1)

    def journal_path(self):
        return self.d.sections['journal']['path']

    def write(self, value, timeout=15.0):
        return self.c.call('card.write_items', {'file': 'DF04/EF05', 'items': {'31': value}},
                           timeout=timeout)

    def test_interrupted_write_resolved_on_insertion(self):
        self.start_daemon(op_timeout_ms=4000)
        self.wait_roles({0: 'user', 1: 'psam'})
        db = self.journal_path()
        # Two clean writes: the second tells how many card APDUs a write takes on this insertion.
        self.assertEqual(self.write('21')['items'], {'31': '21'})
        before = self.card.status()['apdus']
        self.assertEqual(self.write('22')['items'], {'31': '22'})
        per_write = self.card.status()['apdus'] - before
        self.assertGreater(per_write, 1)
        # The third write loses the card on its last APDU (the UPDATE RECORD itself).
        self.card.arm_drop(per_write)
        with self.assertRaises(RpcError) as cm:
            self.write('23')
        self.assertIn(cm.exception.name, ('SSC_ECARDREMOVED', 'SSC_ETIMEDOUT', 'SSC_EREADER'))
        intents = [r for r in rows(db) if r['kind'] == 'intent']
        self.assertEqual(len(intents), 3)
        last = intents[-1]['seq']
        self.assertFalse([r for r in rows(db) if r['kind'] == 'outcome' and r['intent'] == last])

        # The card is inserted again. Nobody calls the API: the daemon reads it back on insertion
        # and records the outcome.
        self.wait_roles({0: None, 1: 'psam'})
        self.card.insert()
        harness.wait_until(lambda: 'resolved by reading it back' in self.d.log_text(), 15.0,
                           'the insertion-time resolution')
        outcomes = [r for r in rows(db) if r['kind'] == 'outcome' and r['intent'] == last]
        self.assertEqual(len(outcomes), 1)
        self.assertEqual(outcomes[0]['detail'], 'readback')
        self.assertIn(outcomes[0]['method'], ('applied', 'failed'))
        # What the card holds agrees with the outcome.
        self.wait_roles({0: 'user', 1: 'psam'})
        now = self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31']})
        self.assertEqual(now['items']['31'], '23' if outcomes[0]['method'] == 'applied' else '22')

        # The chain holds, up to the head the daemon logged last; a cut tail is caught.
        self.d.stop()
        log = os.path.join(self.h.dir, 'sscardd.log')
        rc, out, err = ctl('journal', 'verify', '--journal', db, '--log', log)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('it reaches the logged head', out)
        # Every audit row names the card by its ref, never by its number.
        text = b''
        for path in (db, db + '-wal'):
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    text += f.read()
        self.assertNotIn(GEN2_CARD_NUMBER.encode(), text)
        n = max(r['seq'] for r in rows(db))
        with sqlite3.connect(db) as con:     # behind sscard's back, as an attacker would
            con.execute('DELETE FROM rows WHERE seq = ?', (n,))
        con.close()
        rc, out, err = ctl('journal', 'verify', '--journal', db, '--log', log)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('the tail was cut off', out)

    def test_corrupt_journal_reads_served_writes_refused(self):
        jdb = self.h.path('bad-journal.db')
        with open(jdb, 'wb') as f:
            f.write(b'not a database ' * 400)
        with open(jdb + '.key', 'wb') as f:
            f.write(os.urandom(32))
        self.start_daemon(config={'journal': {'path': jdb, 'reopen_interval_ms': 1000}})
        self.wait_roles({0: 'user', 1: 'psam'})
        info = self.c.call('system.info')
        self.assertTrue(info['journal'].startswith('unavailable: '), info['journal'])
        self.assertEqual(self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31']}),
                         {'file': 'DF04/EF05', 'items': {'31': '11'}})
        before = self.card.status()['apdus']
        with self.assertRaises(RpcError) as cm:
            self.write('21')
        self.assertRpcError(cm.exception, 'SSC_EJOURNAL', code=1029)
        # Refused before any command reached the card.
        self.assertEqual(self.card.status()['apdus'], before)
        self.assertEqual(self.d.log_count('Card writes are refused (SSC_EJOURNAL)'), 1)
        # Repaired by the operator: writes are accepted again without a restart.
        os.unlink(jdb)
        os.unlink(jdb + '.key')
        harness.wait_until(lambda: self.c.call('system.info')['journal'] == 'ok', 10.0,
                           'the journal to come back')
        self.assertEqual(self.write('24')['items'], {'31': '24'})

    def test_lost_card_refused_and_audited(self):
        self.start_daemon()
        self.wait_roles({0: 'user', 1: 'psam'})
        db = self.journal_path()
        self.c.call('card.read_basic')
        rc, out, err = ctl('blacklist', 'import', '-', '--journal', db,
                           stdin=f'# lost\n{GEN2_CARD_NUMBER}\n')
        self.assertEqual((rc, out), (0, 'blacklist import: 1 added\n'), err)
        # The running daemon sees the list at once.
        for method, params in (('card.read_basic', None),
                               ('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'}})):
            with self.assertRaises(RpcError) as cm:
                self.c.call(method, params)
            self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED', std_code=-22)
        self.d.stop()
        audits = [r for r in rows(db) if r['kind'] == 'audit']
        self.assertEqual([(r['method'], r['result']) for r in audits[-2:]],
                         [('card.read_basic', 'SSC_EBLACKLISTED'),
                          ('card.write_items', 'SSC_EBLACKLISTED')])
        read = [r for r in audits if r['method'] == 'card.read_basic' and r['result'] == 'SSC_OK']
        self.assertEqual(len(read), 1)
        self.assertEqual(len(read[0]['card']), 32)
        self.assertEqual(audits[-1]['card'], read[0]['card'])   # the same card, by its ref
        self.assertEqual(audits[-2]['card'], read[0]['card'])


if __name__ == '__main__':
    unittest.main(verbosity=2)
