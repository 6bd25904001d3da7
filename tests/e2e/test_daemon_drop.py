#!/usr/bin/python3
"""sscardd end to end, a card pulled in the middle of a write (issue 4 "Done when": the simulator
dropped in the middle of a write): the card's link drops exactly on the record-writing APDU (APPEND
RECORD to DF04/EF08, UPDATE RECORD with MAC to DF04/EF05, UPDATE RECORD after EXTERNAL AUTHENTICATE
to SSSE/EF06), which the card never processes.

How the drop is aimed, without counting APDUs: the PSAM is frozen (SIGSTOP) before the request, so
the daemon stops at its first PSAM command, after the intent is durable and the card's GET
CHALLENGE is answered (see crashkit.py; the daemon's trace shows when it got there); then the card
is armed to drop its next APDU (DF04: the write itself) or the one after (SSSE: EXTERNAL
AUTHENTICATE, then the write), and the PSAM is let go.

Checked: the client gets a clear error (SSC_ECARDREMOVED) at once; the intent stays pending; the
card is unchanged; when the card is inserted again the daemon reads it back by itself and records
the outcome "failed" (SSC_ENOTFOUND, readback); the client's retry is applied once, a second append
of the same settlement is refused (SSC_EEXIST): nothing doubled; `journal verify --log` passes.

Also:
- a two-record write cut after its first record (read back as "partial", naming the record that is
  on the card, with a warning; the client's error names it too; the retry completes it);
- a three-record DF04/EF05 write cut after its first record (issue 12, defect 3): the client's error
  says which item is on the card, the outcome is "partial" with the items written and not, and
  `sscardctl journal show` and `export` show it;
- a card that comes back in another reader, after another card was served there (resolved where
  it turns up);
- a card pulled after it wrote and saved the record but before its answer left (read back as
  applied; the retry is refused, not doubled);
- a card that needs read authorisation for SSSE/EF06 (gen3-readauth: the read-back authorises
  itself);
- the deadline passing mid-write (SSC_ETIMEDOUT; the late worker does not write; the next use
  resolves it);
- a client that disconnects mid-write (the write completes and is journaled).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_drop.py [-k name]
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402
from crashkit import CARD  # noqa: E402
from sscardd import slot_id  # noqa: E402


class Drop(crashkit.WriteFaultCase):
    readers = 6

    def drop_write(self, file, items, drop_at, header, written=None):
        """One write whose drop_at-th card APDU after the PSAM is released is dropped (header:
        the start of that APDU as the daemon's trace shows it); written: the items the client's
        error names as on the card (data.written; None: not there). Returns the pending
        intent."""
        known = self.peek.intents()
        before = self.card.state()
        mark = len(self.new_log())
        self.psam.sigstop()
        try:
            mid = self.write_request(file, items)
            seq = self.wait_intent(known)
            self.wait_at_the_psam(mark)
            self.card.arm_drop(drop_at)
        finally:
            self.psam.sigcont()
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.result(mid)
        e = cm.exception
        self.assertRpcError(e, 'SSC_ECARDREMOVED', std_code=-2, code=1006)
        self.assertEqual(e.reader, slot_id(CARD))
        self.assertTrue(e.message)
        self.assertEqual(e.data.get('written'), written, e)
        # The card dropped the link on that APDU, which it never processed.
        self.assertIn('arrived and is left unanswered', self.card.proc.log_text())
        sent = re.findall(rf'trace apdu {slot_id(CARD)} > (\S+)', self.new_log())
        self.assertTrue(sent[-1].startswith(header), sent[-3:])
        if not written and (drop_at == 1 or file.startswith('DF04')):
            self.assertEqual(self.card.state(), before)
        elif written:
            self.assertEqual(e.data.get('journal_id'), seq, e)
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.peek.pending(), [seq])
        self.assertIn(f'intent {seq} ({file}) left pending', self.new_log())
        return seq

    def reinsert(self, seq, file, outcome='failed', result='SSC_ENOTFOUND', how='readback'):
        """The card comes back; the daemon reads it back on its own (no client call)."""
        self.wait_roles({CARD: None, crashkit.PSAM: 'psam'})
        self.card.insert()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [(outcome, result, how)])
        self.wait_log(f'intent {seq} ({file}) resolved by reading the card back: {outcome}')
        self.wait_roles({CARD: 'user', crashkit.PSAM: 'psam'})

    def drop_during(self, file, items, drop_at, header):
        seq = self.drop_write(file, items, drop_at, header)
        self.reinsert(seq, file)
        return seq

    def test_drop_on_the_record_write(self):
        # DF04/EF08: the append is the card's next APDU after the PSAM's MAC.
        t = crashkit.txn(1)
        self.drop_during('DF04/EF08', {'40': t}, 1, '04E20040')
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         crashkit.GEN2_SETTLEMENTS)
        # The client learnt nothing: it reads back, finds no record, and writes it again: once.
        got = self.c.call('card.read_items', {'file': 'DF04/EF08', 'items': ['40']})
        self.assertNotIn(t['settlement_no'], [x['settlement_no'] for x in got['items']['40']])
        self.assertEqual(self.write('DF04/EF08', {'40': t})['items'], {'40': t})
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t}})
        self.assertRpcError(e, 'SSC_EEXIST', code=1042)
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)

        # DF04/EF05: an UPDATE RECORD with MAC.
        self.drop_during('DF04/EF05', {'31': '21'}, 1, '04DC')
        self.assertEqual(crashkit.category_on_card(self.card.state()), '11')
        self.assertEqual(self.write('DF04/EF05', {'31': '21'})['items'], {'31': '21'})
        self.assertEqual(crashkit.category_on_card(self.card.state()), '21')

        # SSSE/EF06: EXTERNAL AUTHENTICATE passes, the UPDATE RECORD after it is dropped.
        self.drop_during('SSSE/EF06', {'0B': '03'}, 2, '00DC')
        self.assertIn('0B0101', [r.upper() for r in self.card.state()['files']['SSSE/EF06']])
        self.assertEqual(self.write('SSSE/EF06', {'0B': '03'})['items'], {'0B': '03'})
        self.assertIn('0B0103', [r.upper() for r in self.card.state()['files']['SSSE/EF06']])

        intents, outcomes = self.assertInvariants()
        self.assertEqual(len(intents), 6)
        self.assertEqual([outcomes[s][0]['method'] for s in sorted(intents)],
                         ['failed', 'applied'] * 3)
        self.d.stop()
        rc, out = sscardd.journal_verify(self.d.journal_path, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)

    def test_partial_write(self):
        # Two records of SSSE/EF06: EXTERNAL AUTHENTICATE, the first UPDATE RECORD, and the
        # second is dropped. The card holds the first new value and the second old one: the
        # write in part. Read-back records it as partial, naming both, and says so in the log.
        items = {'0B': '03', '0C': '330106'}
        seq = self.drop_write('SSSE/EF06', items, 3, '00DC', written=['0B'])
        recs = [r.upper() for r in self.card.state()['files']['SSSE/EF06']]
        self.assertIn('0B0103', recs)                           # new
        self.assertIn('0C03330102', recs)                       # old (gen2.json: 330102)
        self.reinsert(seq, 'SSSE/EF06', 'partial', 'SSC_ENOTFOUND',
                      'readback; written 0B; not written 0C')
        self.assertIn(f'intent {seq} (SSSE/EF06) was written in part: the new values of 0B are '
                      'on the card, 0C keep their old ones; recorded as partial', self.new_log())
        # The client writes again: both values, applied, from the state the card is in.
        self.assertEqual(self.write('SSSE/EF06', items)['items'], items)
        recs = [r.upper() for r in self.card.state()['files']['SSSE/EF06']]
        self.assertIn('0B0103', recs)
        self.assertIn('0C03330106', recs)
        intents, outcomes = self.assertInvariants()
        self.assertEqual([(outcomes[s][0]['method'], outcomes[s][0]['result'])
                          for s in sorted(intents)],
                         [('partial', 'SSC_ENOTFOUND'), ('applied', 'SSC_OK')])

    def test_three_records_cut_after_the_first(self):
        # issue 12, defect 3: a 3-item write to DF04/EF05 (each record: GET CHALLENGE, the PSAM's
        # MAC, UPDATE RECORD with MAC), the card pulled right after the first UPDATE RECORD: it
        # holds the first new value and the two old ones. Before, the outcome said "failed |
        # SSC_EBADCARDDATA | readback" and only a log line said "written in part".
        items = {'31': '21', '33': 'H33010000009', '34': '1'}
        # After the PSAM is let go: the first UPDATE RECORD (answered), then the GET CHALLENGE of
        # the second record, which the card never answers.
        seq = self.drop_write('DF04/EF05', items, 2, '0084', written=['31'])
        recs = [r.upper() for r in self.card.state()['files']['DF04/EF05']]
        self.assertIn('3102' + b'21'.hex().upper(), recs)                     # new
        self.assertIn('330C' + b'H33010000001'.hex().upper(), recs)           # old (gen2.json)
        self.assertIn('3401' + b'0'.hex().upper(), recs)                      # old
        self.reinsert(seq, 'DF04/EF05', 'partial', 'SSC_ENOTFOUND',
                      'readback; written 31; not written 33 34')
        self.assertIn(f'intent {seq} (DF04/EF05) was written in part: the new values of 31 are '
                      'on the card, 33 34 keep their old ones; recorded as partial', self.new_log())
        # The operator sees it: `journal show` (the outcome column and the note) and `export`.
        rc, out, err = sscardd.ctl('journal', 'show', '--journal', self.d.journal_path)
        self.assertEqual(rc, 0, err)
        line = next(x for x in out.splitlines() if f' of intent {seq} ' in x)
        self.assertEqual(line.split()[2:3] + line.split()[6:7], ['outcome', 'partial'], line)
        self.assertTrue(line.endswith(f'of intent {seq} (readback; written 31; not written 33 '
                                      '34)'), line)
        rows = sscardd.journal_rows(self.d.journal_path)
        outcome = [r for r in rows if r['kind'] == 'outcome' and r['intent'] == seq]
        self.assertEqual([(o['method'], o['result'], o['detail']) for o in outcome],
                         [('partial', 'SSC_ENOTFOUND', 'readback; written 31; not written 33 34')])
        # The client reads back and writes what is missing; then all three are there.
        got = self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31', '33', '34']})
        self.assertEqual(got['items'], {'31': '21', '33': 'H33010000001', '34': '0'})
        self.assertEqual(self.write('DF04/EF05', {'33': 'H33010000009', '34': '1'})['items'],
                         {'33': 'H33010000009', '34': '1'})
        self.assertEqual(self.c.call('card.read_items', {'file': 'DF04/EF05',
                                                         'items': ['31', '33', '34']})['items'],
                         items)
        self.assertInvariants()

    def test_resolved_in_another_reader(self):
        # The card with a pending intent is not put back where it was: another card comes to
        # that desk first (its writes are not held up by the other card's intent), then the
        # first card turns up in another reader, and is resolved there.
        t = crashkit.txn(4)
        seq = self.drop_write('DF04/EF08', {'40': t}, 1, '04E20040')
        self.h.start_psam('gen3', slot=3)
        other = self.h.start_card('gen3', slot=1, state=True)
        self.wait_roles({1: 'user', 3: 'psam'})
        self.assertEqual(self.c.call('card.write_items', {
            'reader': slot_id(1), 'file': 'DF04/EF06', 'items': {'41': '00'}})['items'],
            {'41': '00'})
        self.assertEqual(self.peek.pending(), [seq])
        other.stop()
        self.wait_roles({1: None})
        self.card.stop()
        moved = self.h.sim('card', 'gen2', slot=4, state=self.card.state_path,
                           name='gen2-moved').start()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        self.wait_log(f'of the card in {slot_id(4)} resolved by reading it back')
        self.wait_roles({4: 'user'})
        self.assertEqual(self.c.call('card.write_items', {
            'reader': slot_id(4), 'file': 'DF04/EF08', 'items': {'40': t}})['items'], {'40': t})
        self.assertEqual(crashkit.settlements_on_card(moved.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)


class LostAfterWriting(crashkit.WriteFaultCase):
    card_delay_ms = 150       # the card's answer waits this long after its state is saved

    def test_card_lost_after_writing(self):
        # The card processes the append and saves it, and is pulled before its answer leaves
        # (frozen, then killed: the link drops). The client gets an error, but the write IS on
        # the card: read-back marks it applied, and the client's retry is refused, not doubled.
        t = crashkit.txn(5)
        known = self.peek.intents()
        saved = self.card.state_id()
        mid = self.write_request('DF04/EF08', {'40': t})
        seq = self.wait_intent(known)
        harness.wait_until(lambda: self.card.state_id() != saved, 15.0,
                           'the card to save the write', interval=0.001)
        self.card.sigstop()
        self.assertEqual(self.peek.outcomes(seq), [],
                         'the daemon had the answer before the card left (test too slow?)')
        self.card.kill9()
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.result(mid)
        self.assertRpcError(cm.exception, 'SSC_ECARDREMOVED', std_code=-2)
        self.assertEqual(self.peek.pending(), [seq])
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        # Put back (the same card: its state file), quicker this time.
        self.card.apdu_delay_ms = None
        self.card.restart()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        self.wait_roles({CARD: 'user', crashkit.PSAM: 'psam'})
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t}})
        self.assertRpcError(e, 'SSC_EEXIST')
        self.assertInvariants()


class ReadAuthCard(crashkit.WriteFaultCase):
    # gen3-readauth.json: SM4, and SSSE/EF06 cannot be read before an EXTERNAL AUTHENTICATE with
    # the read key (ef06_read_auth): both the write's "old values" and the read-back need it.
    # The PSAM is needed before the intent here, so the drop is aimed by counting the APDUs of an
    # identical write instead, and checked in the daemon's trace.
    profile = 'gen3-readauth'

    def per_write(self):
        """APDUs of one two-record write to SSSE/EF06, once the daemon knows this insertion
        needs read authorisation (a first write teaches it)."""
        items = {'0B': '03', '0C': '330105'}
        self.assertEqual(self.write('SSSE/EF06', items)['items'], items)
        before = self.card.status()['apdus']
        self.assertEqual(self.write('SSSE/EF06', items)['items'], items)
        return self.card.status()['apdus'] - before

    def test_read_back_with_read_authorisation(self):
        # Dropped on the first UPDATE RECORD: not applied. On the second: half applied.
        for last, new, outcome in ((False, {'0B': '04', '0C': '330106'},
                                    ('failed', 'SSC_ENOTFOUND')),
                                   (True, {'0B': '05', '0C': '330107'},
                                    ('partial', 'SSC_ENOTFOUND'))):
            n = self.per_write()
            known = self.peek.intents()
            self.card.arm_drop(n if last else n - 1)
            e = self.c.call_error('card.write_items', {'file': 'SSSE/EF06', 'items': new})
            self.assertRpcError(e, 'SSC_ECARDREMOVED')
            sent = re.findall(rf'trace apdu {slot_id(CARD)} > (\S+)', self.new_log())
            self.assertTrue(sent[-1].startswith('00DC'), sent[-3:])      # an UPDATE RECORD
            seq = self.wait_intent(known)
            self.assertEqual(self.peek.pending(), [seq])
            self.wait_roles({CARD: None})
            self.card.insert()
            self.wait_resolved()
            how = 'readback; written 0B; not written 0C' if last else 'readback'
            self.assertEqual(self.peek.outcomes(seq), [outcome + (how,)])
            self.assertEqual(e.data.get('written'), ['0B'] if last else None, e)
            self.wait_roles({CARD: 'user', crashkit.PSAM: 'psam'})
        # The first UPDATE of the second write went through (05), its second did not.
        self.assertEqual(self.c.call('card.read_items', {'file': 'SSSE/EF06',
                                                         'items': ['0B', '0C']})['items'],
                         {'0B': '05', '0C': '330105'})
        self.assertInvariants()


class DeadlineAndClientGone(crashkit.WriteFaultCase):
    daemon_kw = {'op_timeout_ms': 1500, 'log_level': 'trace'}

    def test_deadline_mid_write(self):
        # The PSAM hangs after the intent: the client gets SSC_ETIMEDOUT at op_timeout_ms, the
        # reader stays busy; when the PSAM answers, the late worker does not write the card after
        # the deadline, and the next use of the card resolves the intent (not applied).
        t = crashkit.txn(6)
        known = self.peek.intents()
        self.psam.sigstop()
        try:
            mid = self.write_request('DF04/EF08', {'40': t})
            seq = self.wait_intent(known)
            with self.assertRaises(sscardd.RpcError) as cm:
                self.c.result(mid, timeout=10)
            self.assertRpcError(cm.exception, 'SSC_ETIMEDOUT', code=1004)
            self.assertTrue(self.d.reader(self.c, self.h.reader_name(CARD))['busy'])
        finally:
            self.psam.sigcont()
        self.d.wait_reader(self.c, self.h.reader_name(CARD), busy=False)
        self.assertIn(f'intent {seq} (DF04/EF08) left pending: SSC_ETIMEDOUT', self.new_log())
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         crashkit.GEN2_SETTLEMENTS)
        # The next use of the card (a read) resolves it first.
        got = self.c.call('card.read_items', {'file': 'DF04/EF08', 'items': ['40']})
        self.assertEqual([x['settlement_no'] for x in got['items']['40']],
                         crashkit.GEN2_SETTLEMENTS)
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        self.assertEqual(self.write('DF04/EF08', {'40': t})['items'], {'40': t})
        self.assertInvariants()

    def test_client_gone_mid_write(self):
        # docs/api.md: an operation already running goes on when its client disconnects; the
        # write is completed and journaled, the result dropped.
        t = crashkit.txn(7)
        known = self.peek.intents()
        self.psam.sigstop()
        try:
            self.write_request('DF04/EF08', {'40': t})
            seq = self.wait_intent(known)
            self.c.close()
        finally:
            self.psam.sigcont()
        harness.wait_until(lambda: self.peek.outcomes(seq), 10.0, 'the outcome')
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'card')])
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertInvariants()


if __name__ == '__main__':
    unittest.main(verbosity=2)
