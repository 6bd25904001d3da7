#!/usr/bin/python3
"""sscardd end to end, idempotent writes (issue 15, part 1): the optional request_id of
card.write_items, card.change_pin, card.reload_pin and card.unblock_pin, through a real pcscd +
vpcd + sscard-sim (a gen2 card with a state file, its DES PSAM on the other vpcd entry) + sscardd.

- a repeat with the same request_id and params (reader aside) returns the first call's result
  and sends no APDU (the simulators' apdus counters stay), also after a daemon restart and with
  the card out of the reader; with other params it is refused (SSC_EREQCONFLICT, 1064), also
  while the first still runs; the journal holds one intent, carrying the request_id and a keyed
  fingerprint, never a value of the params;
- a repeat while the first waits at a frozen PSAM waits for it, and both get one result: one
  record on the card;
- a write cut off by the card leaving (the link dropped on the APPEND RECORD): a repeat without
  the card is refused as SSC_EOUTCOME (1065) and sends nothing; once the card is back and read
  back (not applied), the repeat runs again and appends once;
- the daemon killed (SIGKILL) after the intent, before the card got the record, and after the
  card saved it: the repeat after a restart appends once or answers the first result: never lost,
  never doubled (crashkit's invariants);
- a PIN change with a request_id: a repeat answers {"changed": true} without APDUs; killed after
  the card saved the new PIN, the repeat after a restart verifies the new PIN (read-back) and
  answers {"changed": true}, the intent recorded applied by readback; a request_id of a write
  used for a PIN change is refused.

Expected values: docs/api.md (request_id), docs/errors.md (codes: 1000 - value), crashkit.py for
the card's records (decoded by hand there), firmware-stubs/profiles/gen2.json (PIN 123456).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_idempotent.py [-k name]
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402
from crashkit import CARD  # noqa: E402
from sscardd import slot_id  # noqa: E402


class IdemCase(crashkit.WriteFaultCase):
    readers = 6

    def apdus(self):
        return (self.card.status()['apdus'], self.psam.status()['apdus'])

    def req(self, client, method, params):
        return client.request(method, params)

    def append(self, rid, t, client=None, **more):
        params = {'file': 'DF04/EF08', 'items': {'40': t}, 'request_id': rid}
        params.update(more)
        return (client or self.c).call('card.write_items', params, timeout=20)

    def append_error(self, rid, t, client=None):
        params = {'file': 'DF04/EF08', 'items': {'40': t}, 'request_id': rid}
        return (client or self.c).call_error('card.write_items', params, timeout=20)

    def intent_details(self):
        return [json.loads(r[0]) for r in self.peek.query(
            "SELECT detail FROM rows WHERE kind = 'intent' ORDER BY seq")]

    def on_card(self):
        return crashkit.settlements_on_card(self.card.state())


class Repeat(IdemCase):

    def test_repeat_answers_the_first_result(self):
        t = crashkit.txn(1)
        first = self.append('desk-7/0001', t)
        self.assertEqual(first['items'], {'40': t})
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        before = self.apdus()
        # The same request again, with and without the reader: the first result, no APDU.
        self.assertEqual(self.append('desk-7/0001', t), first)
        self.assertEqual(self.append('desk-7/0001', t, reader=slot_id(CARD)), first)
        self.assertEqual(self.apdus(), before)
        # Other params under the same request_id: refused, nothing sent.
        e = self.append_error('desk-7/0001', crashkit.txn(2))
        self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        self.assertIn('other params', e.message)
        e = self.c.call_error('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'},
                                                   'request_id': 'desk-7/0001'})
        self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        self.assertEqual(self.apdus(), before)
        # One intent, carrying the request_id and a 32-hex fingerprint; the same 51-byte record
        # is not in it (its ref is, as before).
        details = self.intent_details()
        self.assertEqual(len(details), 1)
        self.assertEqual(details[0]['request_id'], 'desk-7/0001')
        self.assertRegex(details[0]['fp'], r'^[0-9a-f]{32}$')
        self.assertNotIn('15000', json.dumps(details[0]))

        # An update (padded on the card) answers the same after a restart, card or none.
        up = self.c.call('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'},
                                              'request_id': 'desk-7/0002'})
        self.assertEqual(up['items'], {'31': '21'})
        self.d.stop()
        self.start_sscardd()
        before = self.apdus()
        self.assertEqual(self.append('desk-7/0001', t), first)
        self.assertEqual(self.c.call('card.write_items', {
            'file': 'DF04/EF05', 'items': {'31': '21'}, 'request_id': 'desk-7/0002'}), up)
        self.assertEqual(self.apdus(), before)
        self.card.remove()
        self.wait_roles({CARD: None, crashkit.PSAM: 'psam'})
        self.assertEqual(self.append('desk-7/0001', t), first)
        self.card.insert()
        self.wait_roles({CARD: 'user', crashkit.PSAM: 'psam'})
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        # The audit trail says which calls were answered from the journal.
        replayed = self.peek.query("SELECT count(*) FROM rows WHERE kind = 'audit' AND "
                                   "method = 'card.write_items' AND detail LIKE '%replayed%'")
        self.assertEqual(replayed[0][0], 5)
        self.assertInvariants()

    def test_bad_request_ids(self):
        t = crashkit.txn(1)
        for rid in ('', 'x' * 65, 'tab\there', 'é', 42):
            e = self.append_error(rid, t)
            self.assertRpcError(e, 'SSC_EINVAL', code=-32602)
            self.assertIn('request_id', e.message)
        self.assertEqual(self.append('x' * 64, t)['items'], {'40': t})
        e = self.c.call_error('card.verify_pin', {'pin': '123456', 'request_id': 'v1'})
        self.assertRpcError(e, 'SSC_EINVAL', code=-32602)

    def test_concurrent_repeat_waits(self):
        t = crashkit.txn(4)
        params = {'file': 'DF04/EF08', 'items': {'40': t}, 'request_id': 'both'}
        other = self.d.client()
        known = self.peek.intents()
        mark = len(self.new_log())
        self.psam.sigstop()
        try:
            a = self.c.request('card.write_items', params)
            self.wait_intent(known)
            self.wait_at_the_psam(mark)
            b = other.request('card.write_items', params)
            # Other params while the first runs: refused at once.
            e = other.call_error('card.write_items', dict(params, items={'40': crashkit.txn(5)}))
            self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        finally:
            self.psam.sigcont()
        ra = self.c.result(a, timeout=20)
        rb = other.result(b, timeout=20)
        self.assertEqual(ra, rb)
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertEqual(len(self.peek.intents()), 1)
        self.assertInvariants()


class Removed(IdemCase):

    def test_card_pulled_mid_write(self):
        t = crashkit.txn(6)
        known = self.peek.intents()
        mark = len(self.new_log())
        self.psam.sigstop()
        try:
            mid = self.c.request('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t},
                                                      'request_id': 'pulled'})
            seq = self.wait_intent(known)
            self.wait_at_the_psam(mark)
            self.card.arm_drop(1)
        finally:
            self.psam.sigcont()
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.result(mid, timeout=20)
        self.assertRpcError(cm.exception, 'SSC_ECARDREMOVED', code=1006)
        self.wait_roles({CARD: None, crashkit.PSAM: 'psam'})
        # Without the card nobody knows: a named error, and nothing is sent anywhere.
        before = self.psam.status()['apdus']
        e = self.append_error('pulled', t)
        self.assertRpcError(e, 'SSC_EOUTCOME', code=1065)
        self.assertIn('not here', e.message)
        self.assertEqual(self.psam.status()['apdus'], before)
        self.assertEqual(self.peek.pending(), [seq])
        # The card comes back, is read back (not applied), and the repeat runs again: once.
        self.card.insert()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        r = self.append('pulled', t)
        self.assertEqual(r['items'], {'40': t})
        self.assertNotEqual(r['journal_id'], seq)
        self.assertEqual(self.append('pulled', t), r)
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertInvariants()


class KilledBeforeTheCard(IdemCase):

    def test_killed_before_the_card(self):
        t = crashkit.txn(7)
        known = self.peek.intents()
        self.psam.sigstop()
        try:
            self.c.request('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t},
                                                'request_id': 'k1'})
            seq = self.wait_intent(known)
            self.d.kill9()
        finally:
            self.psam.sigcont()
        self.start_sscardd()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        r = self.append('k1', t)
        self.assertEqual(r['items'], {'40': t})
        self.assertEqual(self.append('k1', t), r)
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertInvariants()


class KilledAfterTheCard(IdemCase):
    # The card's answer waits this long after its state is saved: the time the test has to see
    # the saved state and freeze the card (generous: the machine may be loaded), with a deadline
    # that leaves room for every APDU's delay.
    card_delay_ms = 600
    daemon_kw = {'op_timeout_ms': 60000, 'log_level': 'trace'}

    def kill_after_the_card(self, method, params):
        known = self.peek.intents()
        saved = self.card.state_id()
        self.c.request(method, params)
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
        self.start_sscardd()
        return seq

    def test_append_killed_after_the_card(self):
        t = crashkit.txn(8)
        seq = self.kill_after_the_card('card.write_items', {
            'file': 'DF04/EF08', 'items': {'40': t}, 'request_id': 'k2'})
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        r = self.append('k2', t)
        self.assertEqual(r, {'file': 'DF04/EF08', 'items': {'40': t}, 'journal_id': seq})
        self.assertEqual(self.on_card(), [t['settlement_no']] + crashkit.GEN2_SETTLEMENTS)
        self.assertInvariants()

    def test_pin_change_killed_after_the_card(self):
        pins = {'old_pin': '123456', 'new_pin': '246810', 'request_id': 'pin-1'}
        seq = self.kill_after_the_card('card.change_pin', pins)
        # A PIN cannot be read back without the PINs: the insertion leaves the intent alone.
        self.assertEqual(self.peek.pending(), [seq])
        self.assertEqual(self.peek.query("SELECT file FROM rows WHERE seq = ?", (seq,)),
                         [('PIN',)])
        detail = json.loads(self.peek.query("SELECT detail FROM rows WHERE seq = ?",
                                            (seq,))[0][0])
        self.assertEqual(set(detail), {'op', 'cmd', 'request_id', 'fp'})
        self.assertEqual((detail['op'], detail['cmd']), ('pin', 'change'))
        # The repeat brings the PINs: VERIFY with the new one tells that the card took it.
        self.assertEqual(self.c.call('card.change_pin', pins, timeout=20), {'changed': True})
        self.assertEqual(self.peek.outcomes(seq), [('applied', 'SSC_OK', 'readback')])
        before = self.apdus()
        self.assertEqual(self.c.call('card.change_pin', pins, timeout=20), {'changed': True})
        self.assertEqual(self.apdus(), before)
        self.assertEqual(self.c.call('card.verify_pin', {'pin': '246810'}, timeout=20),
                         {'verified': True})
        # The request_id of a PIN change is not a write's, nor another PIN command's.
        e = self.c.call_error('card.reload_pin', {'new_pin': '135790', 'request_id': 'pin-1'})
        self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        self.assertInvariants()


if __name__ == '__main__':
    unittest.main()
