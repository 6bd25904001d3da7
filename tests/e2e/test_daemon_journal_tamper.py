#!/usr/bin/python3
"""sscardd end to end, what the journal's chain covers beyond its rows (issue 12, defects 1 and 2;
issue 11, lost cards): a journal key file replaced or missing while the daemon was stopped leaves
the journal unavailable with the reason named (writes refused, reads served) until the right key
is back; a deliberate key rotation with `sscardctl journal rotate-key` (refused while the daemon
runs), after which the daemon and verify carry on; the lost-card list edited behind sscard's back
(while the daemon runs, and found again at a restart); a journal made by the version before
(tests/e2e/data/journal-v1) migrated in place; and taking cards off the list with `sscardctl
blacklist remove` / looking at it with `blacklist list`. Real pcscd + vpcd + sscard-sim (card and
PSAM) + sscardd + sscardctl, real journal files.

Expected values are copied by hand from firmware-stubs/profiles/gen2.json (card number X00000019,
card id 330100D15600000500BF7C7AC9FC0FEC, DF04/EF05 item 31 = "11"), from
tests/e2e/data/journal-v1/README.md (its rows and list) and from docs/operations.md.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_journal_tamper.py [-k name]
"""

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import RpcError, ctl, journal_rows  # noqa: E402

GEN2_NUMBER = 'X00000019'
GEN2_ID = '330100D15600000500BF7C7AC9FC0FEC'
V1_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'journal-v1')


def list_digest(db):
    """The lost-card list's digest computed here from the format docs/security.md gives (SHA-256
    over the entries in ref order; each field as an 8-byte big-endian length and its bytes: ref,
    kind, added, uid in decimal), not by sscard."""
    h = hashlib.sha256()
    with sqlite3.connect(db) as con:
        entries = con.execute('SELECT ref, kind, added, uid FROM blacklist ORDER BY ref').fetchall()
    con.close()
    for entry in entries:
        for field in entry:
            b = str(field).encode()
            h.update(len(b).to_bytes(8, 'big') + b)
    return h.hexdigest(), len(entries)


def hashes(db):
    """The rows' chain hashes, read with SQLite itself (no key needed)."""
    with sqlite3.connect(db) as con:
        out = [h for (h,) in con.execute('SELECT hash FROM rows ORDER BY seq')]
    con.close()
    return out


def tamper(db, sql):
    """SQL on the file behind sscard's back, as the attacker in issue 12 did."""
    with sqlite3.connect(db) as con:
        con.execute(sql)
    con.close()


class JournalTamper(sscardd.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=1)
        self.log_mark = 0

    def start(self, **config):
        """(Re)starts sscardd on the same configuration file name and log; waits for the card."""
        log = self.h.path('sscardd.log')
        self.log_mark = os.path.getsize(log) if os.path.exists(log) else 0
        journal = {'reopen_interval_ms': 1000}
        journal.update(config)
        self.start_daemon(config={'journal': journal})
        self.wait_roles({0: 'user', 1: 'psam'})
        return self.d.journal_path

    def new_log(self):
        with open(self.h.path('sscardd.log'), 'rb') as f:
            return f.read()[self.log_mark:].decode('utf-8', 'replace')

    def write(self, value):
        return self.c.call('card.write_items', {'file': 'DF04/EF05', 'items': {'31': value}})

    def journal_state(self):
        return self.c.call('system.info')['journal']

    def assertWriteRefused(self, name='SSC_EJOURNAL'):
        before = self.card.status()['apdus']
        with self.assertRaises(RpcError) as cm:
            self.write('99')
        self.assertRpcError(cm.exception, name)
        if name == 'SSC_EJOURNAL':
            self.assertEqual(self.card.status()['apdus'], before)   # the card was not touched
        return cm.exception

    def list_file(self, name, text):
        path = self.h.path(name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    # -- defect 1: the key file

    def test_replaced_or_missing_key_leaves_the_journal_unavailable(self):
        db = self.start()
        self.assertEqual(self.write('21')['items'], {'31': '21'})
        self.d.stop()
        key = db + '.key'
        with open(key, 'rb') as f:
            good = f.read()
        before = journal_rows(db)
        value = '21'
        for case, new in (('replaced', '22'), ('missing', '23')):
            with self.subTest(case=case):
                if case == 'replaced':
                    with open(key, 'r+b') as f:      # 32 random bytes over the key file
                        f.write(os.urandom(32))
                    reason = "is not this journal's key"
                else:
                    os.unlink(key)
                    reason = 'is missing but the journal exists'
                self.start()
                state = self.journal_state()
                self.assertTrue(state.startswith('unavailable: journal: the key file'), state)
                self.assertIn(reason, state)
                self.assertIn(f'is unavailable: journal: the key file {key}', self.new_log())
                self.assertIn(reason, self.new_log())
                self.assertWriteRefused()
                self.assertEqual(
                    self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31']}),
                    {'file': 'DF04/EF05', 'items': {'31': value}})
                # Nothing was appended under another key, and no key was made in its place.
                self.assertEqual(hashes(db), [r['hash'] for r in before])
                if case == 'missing':
                    self.assertFalse(os.path.exists(key))
                # The operator puts the right key back: the journal returns by itself.
                with open(key, 'wb') as f:
                    f.write(good)
                os.chmod(key, 0o600)
                harness.wait_until(lambda: self.journal_state() == 'ok', 10.0,
                                   'the journal to come back with its key')
                self.assertIn('is available again', self.new_log())
                self.assertEqual(self.write(new)['items'], {'31': new})
                value = new
                self.d.stop()
                before = journal_rows(db)
        rc, out = sscardd.journal_verify(db, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)

    def test_key_rotation(self):
        db = self.start()
        lost = self.list_file('lost.txt', f'# lost\n{GEN2_NUMBER}\n')
        rc, out, err = ctl('blacklist', 'import', lost, '--journal', db)
        self.assertEqual((rc, out), (0, 'blacklist import: 1 added\n'), err)
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED')
        # Not while the daemon runs: it holds the key file.
        rc, out, err = ctl('journal', 'rotate-key', '--journal', db, '--lost-cards', lost)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('is in use: stop sscardd first', err)
        self.d.stop()
        rows = journal_rows(db)
        old_head = rows[-1]
        # The list names cards by keyed hashes: without the cards' numbers it cannot be re-keyed.
        rc, out, err = ctl('journal', 'rotate-key', '--journal', db)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('holds 1 entries, and no list was given', err)
        self.assertEqual(journal_rows(db), rows)
        with open(db + '.key', 'rb') as f:
            old_key = f.read()
        rc, out, err = ctl('journal', 'rotate-key', '--journal', db, '--lost-cards', lost)
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f'it records the old head seq={old_head["seq"]} hash={old_head["hash"]}',
                      out)
        self.assertIn('lost-card list: 1 entries re-keyed', out)
        with open(db + '.key', 'rb') as f:
            new_key = f.read()
        self.assertEqual(len(new_key), 32)
        self.assertNotEqual(new_key, old_key)
        kept = [n for n in os.listdir(os.path.dirname(db))
                if n.startswith(os.path.basename(db) + '.key.old-')]
        self.assertEqual(len(kept), 1)
        kept = os.path.join(os.path.dirname(db), kept[0])
        with open(kept, 'rb') as f:
            self.assertEqual(f.read(), old_key)
        self.assertEqual(os.stat(kept).st_mode & 0o777, 0o600)
        key_row = journal_rows(db)[-1]
        self.assertEqual((key_row['seq'], key_row['kind'], key_row['method']),
                         (old_head['seq'] + 1, 'key', 'journal.rotate_key'))
        self.assertEqual(key_row['detail']['old_head_seq'], old_head['seq'])
        self.assertEqual(key_row['detail']['old_head_hash'], old_head['hash'])
        self.assertEqual(key_row['detail']['entries'], 1)
        # The daemon carries on under the new key; the re-keyed list still refuses the card.
        self.start()
        self.assertEqual(self.journal_state(), 'ok')
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED')
        rc, out, err = ctl('blacklist', 'remove', lost, '--journal', db)
        self.assertEqual((rc, out), (0, 'blacklist remove: 1 removed (0 not on the list)\n'), err)
        self.assertEqual(self.c.call('card.read_basic')['card_number'], GEN2_NUMBER)
        self.assertEqual(self.write('23')['items'], {'31': '23'})
        self.d.stop()
        # Verify: rows before the rotation need the old key; with it, every row is checked.
        log = self.h.path('sscardd.log')
        rc, out, err = ctl('journal', 'verify', '--journal', db, '--log', log)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('it reaches the logged head', out)
        self.assertIn(f'note: rows 1..{old_head["seq"]} were written under an earlier key', out)
        rc, out, err = ctl('journal', 'verify', '--journal', db, '--old-key', kept)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('1 key rotation(s): every row was checked under the key of its time', out)
        n = len(journal_rows(db))
        self.assertIn(f'journal intact: {n} rows', out)
        # The old key no longer opens the journal for the daemon.
        shutil.copyfile(kept, db + '.key')
        self.start()
        self.assertIn("is not this journal's key", self.journal_state())

    # -- defect 2: the lost-card list

    def test_list_edited_behind_the_daemon(self):
        db = self.start()
        rc, out, err = ctl('blacklist', 'import', '-', '--journal', db, stdin=f'{GEN2_NUMBER}\n')
        self.assertEqual(rc, 0, err)
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED')
        # The attack of issue 12 while the daemon runs.
        tamper(db, 'DELETE FROM blacklist')
        # The next card operation finds the list changed: the journal goes out of service.
        basic = self.c.call('card.read_basic')      # a read goes on, unchecked (documented)
        self.assertEqual(basic['card_number'], GEN2_NUMBER)
        harness.wait_until(lambda: self.journal_state().startswith('unavailable'), 10.0,
                           'the journal to go out of service')
        state = self.journal_state()
        self.assertIn('the lost-card list (0 entries) does not match the digest chained', state)
        self.assertIn('it was changed outside sscard', self.new_log())
        self.assertWriteRefused()
        # Verify says so too.
        rc, out, err = ctl('journal', 'verify', '--journal', db)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('journal NOT intact: journal: the lost-card list (0 entries) does not match '
                      'the digest chained in row', out)
        # A restart does not make it go away.
        self.d.stop()
        self.start()
        self.assertIn('the lost-card list (0 entries) does not match', self.journal_state())
        self.assertWriteRefused()

    def test_journal_of_the_version_before_migrated(self):
        db = self.h.path('v1-journal.db')
        shutil.copyfile(os.path.join(V1_DIR, 'journal.db'), db)
        shutil.copyfile(os.path.join(V1_DIR, 'journal.db.key'), db + '.key')
        os.chmod(db + '.key', 0o600)
        # As it is (read-only, not migrated): intact, its list not chained yet.
        rc, out, err = ctl('journal', 'verify', '--journal', db)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('journal intact: 10 rows, head seq=14', out)
        self.assertIn('the lost-card list is not in the chain yet', out)
        self.start(path=db)
        self.assertEqual(self.journal_state(), 'ok')
        # Its list (X00000019 among three) still refuses the card.
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED')
        self.d.stop()
        rows = journal_rows(db)
        migrate = rows[10]
        self.assertEqual((migrate['seq'], migrate['kind'], migrate['method']),
                         (15, 'blacklist', 'blacklist.migrate'))
        digest, n = list_digest(db)
        self.assertEqual(n, 3)
        self.assertEqual(migrate['detail'], {'schema': 2, 'entries': 3, 'list_digest': digest})
        rc, out, err = ctl('journal', 'verify', '--journal', db)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('lost-card list: 3 entries, as the chain records them (row 15)', out)
        # Who imported them (root, rows 13 and 14 of the fixture) is found again.
        rc, out, err = ctl('blacklist', 'list', '--journal', db)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[-1], '3 entries')
        self.assertEqual([ln.split()[0] for ln in lines[1:-1]], ['unknown'] * 3)
        self.assertTrue(all(ln.endswith(' 0 (root)') for ln in lines[1:-1]), out)
        # From now on a change to the list is caught.
        tamper(db, "DELETE FROM blacklist WHERE rowid = 1")
        rc, out, err = ctl('journal', 'verify', '--journal', db)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('(2 entries) does not match the digest chained in row 15 (3 entries)', out)

    # -- issue 11: taking a card off the list, and what the list holds

    def test_blacklist_remove_and_list(self):
        db = self.start()
        self.c.call('card.read_basic')
        lost = self.list_file('lost.txt', f'{GEN2_NUMBER}\n{GEN2_ID}\n')
        rc, out, err = ctl('blacklist', 'import', lost, '--journal', db)
        self.assertEqual((rc, out), (0, 'blacklist import: 2 added\n'), err)
        rc, out, err = ctl('blacklist', 'list', '--journal', db)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:3], ['KIND', 'REF', '(keyed'])
        self.assertEqual(lines[-1], '2 entries')
        self.assertEqual(sorted(ln.split()[0] for ln in lines[1:3]), ['id', 'number'])
        for ln in lines[1:3]:
            fields = ln.split()
            self.assertEqual(len(fields[1]), 32)
            self.assertEqual(fields[3], str(os.getuid()))
        self.assertNotIn(GEN2_NUMBER, out)
        self.assertNotIn(GEN2_ID, out.upper())
        rc, out, err = ctl('blacklist', 'list', '--json', '--journal', db)
        self.assertEqual(rc, 0, err)
        entries = [json.loads(ln) for ln in out.splitlines()]
        self.assertEqual(sorted(e['kind'] for e in entries), ['id', 'number'])
        self.assertEqual({e['uid'] for e in entries}, {os.getuid()})
        # The number's entry goes; the card is still refused by its id.
        rc, out, err = ctl('blacklist', 'remove', '-', '--journal', db,
                           stdin=f'# found\n{GEN2_NUMBER}\nY00000017\n')
        self.assertEqual((rc, out), (0, 'blacklist remove: 1 removed (1 not on the list)\n'),
                         err)
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED')
        rc, out, err = ctl('blacklist', 'remove', '-', '--journal', db, stdin=GEN2_ID.lower())
        self.assertEqual((rc, out), (0, 'blacklist remove: 1 removed (0 not on the list)\n'),
                         err)
        self.assertEqual(self.c.call('card.read_basic')['card_number'], GEN2_NUMBER)
        self.assertEqual(self.write('21')['items'], {'31': '21'})
        # A malformed line removes nothing.
        rc, out, err = ctl('blacklist', 'remove', '-', '--journal', db, stdin='not-a-card\n')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('line 1: expected a 9-character card number', err)
        rc, out, err = ctl('blacklist', 'list', '--journal', db)
        self.assertEqual((rc, out), (0, 'the lost-card list is empty\n'), err)
        self.d.stop()
        # Each removal is a chained row with the refs removed; no card number in the file.
        removals = [r for r in journal_rows(db) if r['method'] == 'blacklist.remove']
        self.assertEqual([(r['detail']['removed'], r['detail']['not_listed'],
                           len(r['detail']['refs']), r['detail']['entries'])
                          for r in removals], [(1, 1, 1, 1), (1, 0, 1, 0)])
        self.assertEqual(removals[-1]['detail']['list_digest'], list_digest(db)[0])
        rc, out, err = ctl('journal', 'show', '--journal', db)
        self.assertIn('1 removed, 1 not listed, of 3 lines; list of 1', out)
        text = b''
        for path in (db, db + '-wal'):
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    text += f.read()
        self.assertNotIn(GEN2_NUMBER.encode(), text)
        rc, out = sscardd.journal_verify(db, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
