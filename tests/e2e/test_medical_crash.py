#!/usr/bin/python3
"""sscardd end to end, an offline settlement (medical.settle_offline) cut off at each of its steps
(gen2 DES and gen3 SM4 cards for the kills, gen2 for the rest)
(issue 15 "Done when"): never lost, never doubled.

- SIGKILL of the daemon right after each step, placed by the test builds' hook
  $SSCARDD_TEST_SETTLE_KILL (src/ops_settle.c): after the intent (with its queue row) is durable
  and before the card got the record; after the APPEND RECORD, before the flag; after the flag,
  before the outcome (which queues it); after the outcome, before the answer. The daemon is
  started again without the hook on the same journal with the card present: it reads the card
  back and completes the settlement (record found: the flag set where missing, the queue row
  queued) or records that nothing was applied (the queue row void, its personal data wiped). The
  client's repeat of its request_id then gets the settlement's result (applied) or runs it again
  (not applied): the card holds the record once, the queue lists it once.
- the card pulled mid-settlement (the link dropped on the APPEND RECORD, and on the flag after the
  record): the error names what is known; a repeat without the card is SSC_EOUTCOME and sends
  nothing; with the card back it is read back and completed, and the repeat answers once.
- the same request_id from two clients at once (the first held at the frozen PSAM): one
  settlement, both get its result.

Expected values: crashkit.py (the card's records decoded by hand), firmware-stubs/profiles/
gen2.json (DF04/EF06 41 = 00 at first), spec §12.7, docs/errors.md (codes: 1000 - value).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_medical_crash.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402
from crashkit import CARD, PSAM  # noqa: E402
from test_medical_offline import CARDS, MedCase  # noqa: E402

HOOK = 'SSCARDD_TEST_SETTLE_KILL'


class Killed(MedCase):
    """The daemon starts with the hook set to self.step; restarted without it."""

    step = None

    def start_sscardd(self):
        if self.daemons == 0 and self.step:
            os.environ[HOOK] = self.step
        try:
            super().start_sscardd()
        finally:
            os.environ.pop(HOOK, None)

    def initial(self):
        """The profile's EF08 settlement numbers, newest first."""
        return CARDS[self.profile]['settlements']

    def medq(self):
        return self.peek.query("SELECT id, state, card_number <> '' FROM medq ORDER BY id")

    def kill_at_step(self):
        """Sends the settlement; waits until the hook killed the daemon; returns (txn, seq)."""
        t = crashkit.txn(40)
        known = self.peek.intents()
        self.c.request('medical.settle_offline', {'request_id': 'crash-1', 'transaction': t})
        harness.wait_until(lambda: not self.d.alive(), 20.0, 'the hook to kill sscardd')
        self.assertIn(f'test hook: killed after the settlement\'s {self.step}', self.new_log())
        seq = [s for s in self.peek.intents() if s not in known][0]
        return t, seq

    def restart(self):
        self.start_sscardd()
        self.wait_resolved()

    def check_once(self, t, first_id):
        """The repeat answers (or runs) once; the card and the queue hold the settlement once."""
        r = self.settle('crash-1', t)
        self.assertEqual((r['id'], r['transaction']), (first_id, t))
        before = self.apdus()
        self.assertEqual(self.settle('crash-1', t), r)
        self.assertEqual(self.apdus(), before)
        self.assertEqual(self.on_card(), [t['settlement_no']] + self.initial())
        self.assertEqual(self.flag(), '01')
        p = self.pending()
        self.assertEqual([(s['id'], s['request_id'], s['transaction']['settlement_no'])
                          for s in p['settlements']], [(first_id, 'crash-1', t['settlement_no'])])
        self.assertEqual([f['pending'] for f in p['flags']], [1])
        self.assertInvariants()
        return r


class KilledAfterTheIntent(Killed):
    step = 'intent'

    def test_killed_after_the_intent(self):
        before = self.card.state()
        t, seq = self.kill_at_step()
        # Durable: the intent and its queue row (in state "intent", with its data); not on the
        # card.
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.medq(), [(1, 'intent', 1)])
        self.assertEqual(self.card.state(), before)
        self.restart()
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        # Not applied: void, its personal data wiped; nothing to upload.
        self.assertEqual(self.medq(), [(1, 'void', 0)])
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        # The repeat runs again (a new intent, queue id 2) and settles once.
        self.check_once(t, 2)


class KilledAfterTheAppend(Killed):
    step = 'append'

    def test_killed_after_the_append(self):
        t, seq = self.kill_at_step()
        self.assertEqual(self.on_card(), [t['settlement_no']] + self.initial())
        self.assertEqual(self.flag(), CARDS[self.profile]['flag'])   # as it was: not set yet
        self.assertEqual(self.medq(), [(1, 'intent', 1)])
        self.restart()
        # Read back: the record is there; the flag set by the recovery; queued.
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        self.assertEqual(self.flag(), '01')
        self.assertEqual(self.medq(), [(1, 'queued', 1)])
        self.check_once(t, 1)


class KilledAfterTheFlag(Killed):
    step = 'flag'

    def test_killed_after_the_flag(self):
        t, seq = self.kill_at_step()
        self.assertEqual(self.flag(), '01')
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.medq(), [(1, 'intent', 1)])   # the queue row not queued yet
        self.restart()
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        self.assertEqual(self.medq(), [(1, 'queued', 1)])
        self.check_once(t, 1)


class KilledAfterTheOutcome(Killed):
    step = 'outcome'

    def test_killed_after_the_outcome(self):
        t, seq = self.kill_at_step()
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'card')])
        self.assertEqual(self.medq(), [(1, 'queued', 1)])
        self.restart()
        self.check_once(t, 1)


class KilledClearingTheFlag(Killed):
    step = 'clear'

    def test_killed_after_the_clear(self):
        """medical.clear_flag killed after the card cleared the flag, before its outcome: read
        back at the restart (applied), the card leaves the flags to clear; the repeat answers."""
        t = crashkit.txn(70)
        r = self.settle('clear-s1', t)
        self.c.call('medical.acknowledge', {'ids': [r['id']]})
        self.assertEqual([f['clearable'] for f in self.pending()['flags']], [True])
        known = self.peek.intents()
        self.c.request('medical.clear_flag', {'request_id': 'clear-1'})
        harness.wait_until(lambda: not self.d.alive(), 20.0, 'the hook to kill sscardd')
        seq = [s for s in self.peek.intents() if s not in known][0]
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.flag(), '00')
        self.restart()
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        before = self.apdus()
        self.assertEqual(self.c.call('medical.clear_flag', {'request_id': 'clear-1'}),
                         {'cleared': True, 'was_set': True, 'journal_id': seq})
        self.assertEqual(self.apdus(), before)
        self.assertInvariants()


# The same on the gen3 card (SM4; its profile's flag is set already, by another desk).
class KilledAfterTheIntentGen3(KilledAfterTheIntent):
    profile = 'gen3'


class KilledAfterTheAppendGen3(KilledAfterTheAppend):
    profile = 'gen3'


class KilledAfterTheFlagGen3(KilledAfterTheFlag):
    profile = 'gen3'


class KilledAfterTheOutcomeGen3(KilledAfterTheOutcome):
    profile = 'gen3'


class Pulled(MedCase):

    def pull_at(self, drop_after, rid, t):
        """The PSAM frozen at the settlement's first MAC; the link armed to drop on the
        drop_after-th APDU from then; returns the error and the intent's seq."""
        known = self.peek.intents()
        mark = len(self.new_log())
        self.psam.sigstop()
        try:
            mid = self.c.request('medical.settle_offline', {'request_id': rid, 'transaction': t})
            seq = self.wait_intent(known)
            self.wait_at_the_psam(mark)
            self.card.arm_drop(drop_after)
        finally:
            self.psam.sigcont()
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.result(mid, timeout=30)
        self.wait_roles({CARD: None, PSAM: 'psam'})
        return cm.exception, seq

    def repeat_without_the_card(self, rid, t, seq):
        before = self.psam.status()['apdus']
        e = self.settle_error(rid, t)
        self.assertRpcError(e, 'SSC_EOUTCOME', code=1065)
        self.assertIn('not here', e.message)
        self.assertEqual(self.psam.status()['apdus'], before)
        self.assertEqual(self.peek.pending(), [seq])
        self.card.insert()
        self.wait_resolved()

    def test_pulled_on_the_append(self):
        t = crashkit.txn(50)
        e, seq = self.pull_at(1, 'pulled-1', t)
        self.assertRpcError(e, 'SSC_ECARDREMOVED', code=1006)
        self.assertEqual((e.data['journal_id'], e.data['appended']), (seq, False))
        self.repeat_without_the_card('pulled-1', t, seq)
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        r = self.settle('pulled-1', t)
        self.assertEqual(r['id'], 2)
        self.assertEqual(self.settle('pulled-1', t), r)
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertEqual([s['id'] for s in self.pending()['settlements']], [2])
        self.assertInvariants()

    def test_pulled_on_the_flag(self):
        """The record appended, the link dropped on the flag's first APDU (its GET CHALLENGE):
        read back, the flag set, queued; the repeat answers the settlement."""
        t = crashkit.txn(51)
        e, seq = self.pull_at(2, 'pulled-2', t)
        self.assertRpcError(e, 'SSC_ECARDREMOVED', code=1006)
        self.assertEqual((e.data['journal_id'], e.data['id'], e.data['appended']),
                         (seq, 1, True))
        self.assertEqual(self.flag(), '00')
        self.repeat_without_the_card('pulled-2', t, seq)
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        self.assertEqual(self.flag(), '01')
        r = self.settle('pulled-2', t)
        self.assertEqual((r['id'], r['journal_id']), (1, seq))
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertEqual([s['id'] for s in self.pending()['settlements']], [1])
        self.assertInvariants()


class TwoClients(MedCase):

    def test_same_request_id_at_once(self):
        t = crashkit.txn(60)
        params = {'request_id': 'both', 'transaction': t}
        other = self.d.client()
        known = self.peek.intents()
        mark = len(self.new_log())
        self.psam.sigstop()
        try:
            a = self.c.request('medical.settle_offline', params)
            self.wait_intent(known)
            self.wait_at_the_psam(mark)
            b = other.request('medical.settle_offline', params)
            e = other.call_error('medical.settle_offline',
                                 dict(params, transaction=crashkit.txn(61)))
            self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        finally:
            self.psam.sigcont()
        ra = self.c.result(a, timeout=30)
        rb = other.result(b, timeout=30)
        self.assertEqual(ra, rb)
        self.assertEqual(ra['id'], 1)
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertEqual(len(self.peek.intents()), 1)
        self.assertEqual([s['id'] for s in self.pending()['settlements']], [1])
        self.assertInvariants()


if __name__ == '__main__':
    unittest.main()
