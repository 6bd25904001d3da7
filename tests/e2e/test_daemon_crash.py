#!/usr/bin/python3
"""sscardd end to end, the daemon killed (SIGKILL) between a write's intent and its outcome
(issue 4 "Done when"), both ways, placed deterministically and without test hooks in the daemon:

- not applied: the PSAM is frozen (SIGSTOP) before the request, so the daemon stops at its first
  PSAM command, after the intent is durable and before the record goes to the card (crashkit.py);
  the daemon is killed there. The card never saw the write.
- applied: the card answers each APDU after --apdu-delay-ms, and saves its state file BEFORE that
  delay (docs/simulator.md). The test waits for the intent row, then for the state file to change
  (the card has processed and persisted the write), freezes the card (SIGSTOP) so that its answer
  cannot leave, checks that no outcome was recorded, and kills the daemon.

Then sscardd is started again on the same journal with the card present; with no client call, it
reads the card back and records the outcome (applied / failed as the card says, how = readback;
partial, naming the items on the card, for a write killed between its records).
The client's retry is applied once (or refused as a duplicate settlement: never doubled), the
invariants of crashkit.WriteFaultCase.assertInvariants hold, and `journal verify --log` passes.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_crash.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402


def ssse_nation(state):
    """SSSE/EF06 tag 0B (民族, 1 byte BCD) in a simulator state (None: gen2.json's "01")."""
    if state is None:
        return '01'
    rec = next(r for r in state['files']['SSSE/EF06'] if r.upper().startswith('0B'))
    return rec[4:6]


class KillCase(crashkit.WriteFaultCase):

    def restart_and_resolve(self, seq, outcome):
        """Starts sscardd again (the card is present); waits until the intent seq is resolved by
        reading the card back, as outcome ('applied' or 'failed')."""
        self.start_sscardd()
        self.wait_resolved()
        result = 'SSC_OK' if outcome == 'applied' else 'SSC_ENOTFOUND'
        self.assertEqual(self.peek.outcomes(seq), [(outcome, result, 'readback')])
        self.assertIn('write intent(s) pending', self.new_log())
        self.wait_log(f'resolved by reading the card back: {outcome}')

    def finish(self, expect):
        """The invariants, the outcomes in order, and the chain up to the logged head."""
        intents, outcomes = self.assertInvariants()
        self.assertEqual([(outcomes[s][0]['method'], outcomes[s][0]['detail'])
                          for s in sorted(intents)], expect)
        self.d.stop()
        rc, out = sscardd.journal_verify(self.d.journal_path, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)


class KillBeforeTheCard(KillCase):

    def kill_at_the_psam(self, file, items):
        known = self.peek.intents()
        before = self.card.state()
        generation = self.card.status()['generation']
        self.psam.sigstop()
        try:
            self.write_request(file, items)
            seq = self.wait_intent(known)
            self.d.kill9()
        finally:
            self.psam.sigcont()
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.card.status()['generation'], generation)
        self.assertEqual(self.card.state(), before)
        self.restart_and_resolve(seq, 'failed')
        return seq

    def test_not_applied(self):
        t = crashkit.txn(2)
        self.kill_at_the_psam('DF04/EF08', {'40': t})
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         crashkit.GEN2_SETTLEMENTS)
        self.assertEqual(self.write('DF04/EF08', {'40': t})['items'], {'40': t})
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t}})
        self.assertRpcError(e, 'SSC_EEXIST')

        self.kill_at_the_psam('DF04/EF05', {'31': '21'})
        self.assertEqual(crashkit.category_on_card(self.card.state()), '11')
        self.assertEqual(self.write('DF04/EF05', {'31': '21'})['items'], {'31': '21'})

        self.kill_at_the_psam('SSSE/EF06', {'0B': '03'})
        self.assertEqual(ssse_nation(self.card.state()), '01')
        self.assertEqual(self.write('SSSE/EF06', {'0B': '03'})['items'], {'0B': '03'})
        self.assertEqual(ssse_nation(self.card.state()), '03')
        self.finish([('failed', 'readback'), ('applied', 'card')] * 3)


class KillAfterTheCard(KillCase):
    card_delay_ms = 150       # the card's answer waits this long after its state is saved

    def kill_after_the_card(self, file, items):
        known = self.peek.intents()
        saved = self.card.state_id()
        self.write_request(file, items)
        seq = self.wait_intent(known)
        harness.wait_until(lambda: self.card.state_id() != saved, 15.0,
                           'the card to save the write', interval=0.001)
        self.card.sigstop()              # its answer cannot leave now
        try:
            self.assertEqual(self.peek.outcomes(seq), [],
                             'the daemon had the answer before the kill (test too slow?)')
            self.d.kill9()
        finally:
            self.card.sigcont()
        self.restart_and_resolve(seq, 'applied')
        return seq

    def test_applied(self):
        t = crashkit.txn(3)
        self.kill_after_the_card('DF04/EF08', {'40': t})
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        # The client that lost its answer reads the card, or retries: never a second record.
        got = self.c.call('card.read_items', {'file': 'DF04/EF08', 'items': ['40']},
                          timeout=20)
        self.assertEqual(got['items']['40'][0], t)
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t}},
                              timeout=20)
        self.assertRpcError(e, 'SSC_EEXIST')
        self.assertEqual(crashkit.settlements_on_card(self.card.state()),
                         [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)

        self.kill_after_the_card('DF04/EF05', {'31': '22'})
        self.assertEqual(crashkit.category_on_card(self.card.state()), '22')
        self.assertEqual(self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31']},
                                     timeout=20)['items'], {'31': '22'})
        self.finish([('applied', 'readback')] * 2)

    def test_killed_after_the_first_of_three_records(self):
        # issue 12, defect 3: the daemon dies right after the card saved the first of three
        # DF04/EF05 records. The next start reads the card back and records "partial", naming
        # the item on the card and the two that are not (not "failed | SSC_EBADCARDDATA").
        items = {'31': '23', '33': 'H33010000008', '34': '1'}
        known = self.peek.intents()
        saved = self.card.state_id()
        self.write_request('DF04/EF05', items)
        seq = self.wait_intent(known)
        harness.wait_until(lambda: self.card.state_id() != saved, 15.0,
                           'the card to save the first record', interval=0.001)
        self.card.sigstop()
        try:
            self.assertEqual(self.peek.outcomes(seq), [])
            self.d.kill9()
        finally:
            self.card.sigcont()
        self.assertEqual(crashkit.category_on_card(self.card.state()), '23')
        self.start_sscardd()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('partial', 'SSC_ENOTFOUND',
                                                    'readback; written 31; not written 33 34')])
        self.wait_log(f'intent {seq} (DF04/EF05) resolved by reading the card back: partial')
        self.assertEqual(self.c.call('card.read_items', {'file': 'DF04/EF05',
                                                         'items': ['31', '33', '34']},
                                     timeout=20)['items'],
                         {'31': '23', '33': 'H33010000001', '34': '0'})
        self.assertEqual(self.write('DF04/EF05', items)['items'], items)
        self.finish([('partial', 'readback; written 31; not written 33 34'), ('applied', 'card')])


if __name__ == '__main__':
    unittest.main(verbosity=2)
