#!/usr/bin/python3
"""sscardd end to end, the offline medical settlement (issue 15): medical.settle_offline,
medical.pending, medical.acknowledge and medical.clear_flag through a real pcscd + vpcd +
sscard-sim (a card with a state file, its PSAM on the other vpcd entry) + sscardd, on gen2 (DES)
and gen3 (SM4) cards:

- a settlement appends the DF04/EF08 record (newest first), sets the DF04/EF06 flag (record 41 =
  01) and queues it: medical.pending shows it with the card's number and 卡识别码 (from the
  profile, by hand), the transaction and the time queued, and the card among the flags to clear;
  a repeat of its request_id answers the same result and sends no APDU; the request_id with other
  params is refused (SSC_EREQCONFLICT);
- the checks: request_id and transaction required, amounts integers >= 0, personal_account +
  pooled <= total, the §12.7 lengths (time YYYYMMDDhhmmss, institution 12, settlement number 20);
  a settlement number already queued or on the card is refused (SSC_ESETTLED, 1067);
- medical.acknowledge: all or none, unknown ids named (SSC_ENOTFOUND, data.unknown), a repeat
  acknowledges nothing new, the audit row names the ids, the queue row's personal data wiped;
- medical.clear_flag: refused while a settlement of the card waits (SSC_EMEDPENDING, 1068),
  allowed after the acknowledgement (the card's record 41 = 00), a card whose flag another desk set
  (gen3's profile) cleared as well;
- 11 settlements on the 10-record cyclic file: the card keeps the newest 10, the queue all 11;
- sscardctl medical settle | pending | ack | clear-flag.

Expected values: firmware-stubs/profiles/gen2.json and gen3.json (card numbers, 卡识别码, the
profiles' EF08 records), spec §12.7 (record 41 of DF04/EF06, 01 = pending), docs/errors.md
(codes: 1000 - value).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_medical_offline.py [-k name]
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

# From the profiles, by hand.
CARDS = {
    'gen2': {'card_number': 'X00000019', 'card_id': '330100D15600000500BF7C7AC9FC0FEC',
             'settlements': ['S2024031500000000002', 'S2024030200000000001'], 'flag': '00'},
    'gen3': {'card_number': 'A12345674', 'card_id': '330200D156000005013C5A7E0A29D26E',
             'settlements': ['N2025070100000000042'], 'flag': '01'},
}
crashkit.PROFILE_SETTLEMENTS.setdefault('gen3', CARDS['gen3']['settlements'])


def flag_on_card(state, profile):
    """DF04/EF06 record 41's value (hex) in a simulator state (None: the profile's)."""
    if state is None:
        return CARDS[profile]['flag']
    rec = next(r for r in state['files']['DF04/EF06'] if r.upper().startswith('41'))
    return rec[4:6].upper()


class MedCase(crashkit.WriteFaultCase):
    readers = 4

    def settle(self, rid, t, client=None, **more):
        params = {'request_id': rid, 'transaction': t}
        params.update(more)
        return (client or self.c).call('medical.settle_offline', params, timeout=30)

    def settle_error(self, rid, t, client=None):
        params = {'transaction': t}
        if rid is not None:
            params['request_id'] = rid
        return (client or self.c).call_error('medical.settle_offline', params, timeout=30)

    def pending(self, **params):
        return self.c.call('medical.pending', params or None)

    def on_card(self):
        return crashkit.settlements_on_card(self.card.state(), CARDS[self.profile]['settlements'])

    def flag(self):
        return flag_on_card(self.card.state(), self.profile)

    def apdus(self):
        return (self.card.status()['apdus'], self.psam.status()['apdus'])


class Settle:
    """The methods and their errors; run on gen2 and gen3 (the subclasses below)."""

    def test_settle_pending_ack_clear(self):
        card = CARDS[self.profile]
        t = crashkit.txn(1)
        r = self.settle('hosp-1/0001', t)
        self.assertEqual(r['id'], 1)
        self.assertEqual(r['request_id'], 'hosp-1/0001')
        self.assertEqual(r['transaction'], t)
        self.assertIsInstance(r['journal_id'], int)
        self.assertEqual(self.on_card(), [t['settlement_no']] + card['settlements'])
        self.assertEqual(self.flag(), '01')
        p = self.pending()
        self.assertEqual(len(p['settlements']), 1)
        s = p['settlements'][0]
        self.assertEqual({k: s[k] for k in ('id', 'request_id', 'card_number', 'card_id',
                                            'transaction')},
                         {'id': 1, 'request_id': 'hosp-1/0001',
                          'card_number': card['card_number'], 'card_id': card['card_id'],
                          'transaction': t})
        self.assertRegex(s['queued'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertEqual(p['flags'], [{'card_number': card['card_number'],
                                       'card_id': card['card_id'], 'since': s['queued'],
                                       'pending': 1, 'clearable': False}])

        # The repeat answers the first result and sends nothing; other params are refused.
        before = self.apdus()
        self.assertEqual(self.settle('hosp-1/0001', t), r)
        self.assertEqual(self.settle('hosp-1/0001', t, reader=slot_id(CARD)), r)
        self.assertEqual(self.apdus(), before)
        e = self.settle_error('hosp-1/0001', crashkit.txn(2))
        self.assertRpcError(e, 'SSC_EREQCONFLICT', code=1064)
        self.assertEqual(self.apdus(), before)

        # The same settlement number under a new request_id: in the queue.
        e = self.settle_error('hosp-1/0002', t)
        self.assertRpcError(e, 'SSC_ESETTLED', code=1067)
        self.assertIn('queue (id 1)', e.message)
        # One of the profile's, on the card (not in the queue).
        old = dict(t, settlement_no=card['settlements'][0])
        e = self.settle_error('hosp-1/0003', old)
        self.assertRpcError(e, 'SSC_ESETTLED', code=1067)
        self.assertIn('already on the card', e.message)
        self.assertEqual(self.on_card(), [t['settlement_no']] + card['settlements'])

        # clear_flag while it waits: refused, the flag stays.
        e = self.c.call_error('medical.clear_flag', {}, timeout=30)
        self.assertRpcError(e, 'SSC_EMEDPENDING', code=1068)
        self.assertEqual(self.flag(), '01')

        # Acknowledge: unknown ids named, nothing done; then all; then again (nothing new).
        e = self.c.call_error('medical.acknowledge', {'ids': [1, 77, 78]})
        self.assertRpcError(e, 'SSC_ENOTFOUND', code=1041)
        self.assertEqual(e.data['unknown'], [77, 78])
        self.assertIn('77, 78', e.message)
        self.assertEqual(len(self.pending()['settlements']), 1)
        self.assertEqual(self.c.call('medical.acknowledge', {'ids': [1]}),
                         {'acknowledged': [1], 'newly': 1})
        self.assertEqual(self.c.call('medical.acknowledge', {'ids': [1]}),
                         {'acknowledged': [1], 'newly': 0})
        p = self.pending()
        self.assertEqual(p['settlements'], [])
        self.assertEqual([(f['card_number'], f['pending'], f['clearable']) for f in p['flags']],
                         [(card['card_number'], 0, True)])
        # The queue row keeps no personal data once acknowledged; the audit row names the id.
        self.assertEqual(self.peek.query("SELECT state, card_number, card_id, txn FROM medq"),
                         [('acknowledged', '', '', '')])
        def acks():
            return self.peek.query("SELECT result, detail FROM rows WHERE kind = 'audit' AND "
                                   "method = 'medical.acknowledge' ORDER BY seq")
        # The audit rows are written behind the answers (the audit writer).
        harness.wait_until(lambda: len(acks()) == 3, 10.0, 'the three audit rows')
        acks = acks()
        self.assertEqual([a[0] for a in acks], ['SSC_ENOTFOUND', 'SSC_OK', 'SSC_OK'])
        self.assertEqual(json.loads(acks[1][1]), {'acknowledged': [1], 'newly': 1})

        # Now the flag may be cleared; the card leaves the list.
        r = self.c.call('medical.clear_flag', {'request_id': 'hosp-1/clear-1'}, timeout=30)
        self.assertEqual((r['cleared'], r['was_set']), (True, True))
        self.assertEqual(self.flag(), '00')
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        before = self.apdus()
        self.assertEqual(self.c.call('medical.clear_flag', {'request_id': 'hosp-1/clear-1'}), r)
        self.assertEqual(self.apdus(), before)
        # A flag that is not set: nothing written.
        self.assertEqual(self.c.call('medical.clear_flag', {}, timeout=30),
                         {'cleared': True, 'was_set': False})
        self.assertInvariants()

    def test_bad_params(self):
        t = crashkit.txn(3)
        cases = [
            (None, t, 'SSC_EINVAL', 'request_id'),
            ('', t, 'SSC_EINVAL', 'request_id'),
            ('r', None, 'SSC_EINVAL', 'transaction'),
            ('r', dict(t, total=-1), 'SSC_EVALUE', 'total'),
            ('r', dict(t, total=1.5), 'SSC_EINVAL', 'total'),
            ('r', dict(t, pooled='10000'), 'SSC_EINVAL', 'pooled'),
            ('r', dict(t, personal_account=5001), 'SSC_EVALUE', 'exceed the total'),
            ('r', dict(t, total=2 ** 32), 'SSC_EVALUE', 'total'),
            ('r', dict(t, time='2026112408300'), 'SSC_EVALUE', 'YYYYMMDDhhmmss'),
            ('r', dict(t, time='20261124253000'), 'SSC_EVALUE', 'YYYYMMDDhhmmss'),
            ('r', dict(t, institution='H330100000071'), 'SSC_EVALUE', 'institution'),
            ('r', dict(t, settlement_no='S' * 21), 'SSC_EVALUE', 'settlement'),
            ('r', dict(t, settlement_no=''), 'SSC_EVALUE', 'settlement'),
            ('r', dict(t, extra=1), 'SSC_EINVAL', 'extra'),
        ]
        before = self.apdus()
        for rid, txn, name, word in cases:
            with self.subTest(rid=rid, txn=txn):
                params = {}
                if rid is not None:
                    params['request_id'] = rid
                if txn is not None:
                    params['transaction'] = txn
                e = self.c.call_error('medical.settle_offline', params)
                self.assertRpcError(e, name)
                self.assertIn(word, e.message)
        e = self.c.call_error('medical.settle_offline', {'request_id': 'r', 'transaction': t,
                                                         'pin': '123456'})
        self.assertRpcError(e, 'SSC_EINVAL')
        for params in ({'since': -1}, {'since': 'x'}, {'other': 1}):
            self.assertRpcError(self.c.call_error('medical.pending', params), 'SSC_EINVAL')
        for params in (None, {'ids': []}, {'ids': [0]}, {'ids': ['1']}, {'ids': 1},
                       {'ids': [1], 'x': 1}):
            self.assertRpcError(self.c.call_error('medical.acknowledge', params), 'SSC_EINVAL')
        self.assertRpcError(self.c.call_error('medical.clear_flag', {'x': 1}), 'SSC_EINVAL')
        self.assertEqual(self.apdus(), before)
        self.assertEqual(self.peek.intents(), [])
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})


class Gen2(Settle, MedCase):
    profile = 'gen2'

    def test_eleven_settlements(self):
        """11 settlements on the 10-record cyclic file: the card keeps the newest 10, the queue
        all 11; since= pages through it."""
        ts = [crashkit.txn(100 + i) for i in range(11)]
        ids = [self.settle(f'hosp-2/{i:04d}', t)['id'] for i, t in enumerate(ts)]
        self.assertEqual(ids, list(range(1, 12)))
        want = [t['settlement_no'] for t in reversed(ts)]
        self.assertEqual(self.on_card(), want[:10])
        p = self.pending()
        self.assertEqual([s['transaction']['settlement_no'] for s in p['settlements']],
                         [t['settlement_no'] for t in ts])
        self.assertEqual([s['id'] for s in self.pending(since=9)['settlements']], [10, 11])
        self.assertEqual(p['flags'][0]['pending'], 11)
        # The oldest, no longer on the card, is still refused as a duplicate (the queue has it).
        e = self.settle_error('hosp-2/again', ts[0])
        self.assertRpcError(e, 'SSC_ESETTLED')
        self.assertEqual(self.c.call('medical.acknowledge', {'ids': ids}),
                         {'acknowledged': ids, 'newly': 11})
        self.assertEqual(self.pending()['settlements'], [])
        self.assertInvariants()

    def test_write_items_bypasses_the_queue(self):
        """card.write_items on DF04/EF08 appends without queueing or flagging."""
        t = crashkit.txn(5)
        self.c.call('card.write_items', {'file': 'DF04/EF08', 'items': {'40': t}}, timeout=30)
        self.assertEqual(self.on_card()[0], t['settlement_no'])
        self.assertEqual(self.flag(), '00')
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        # Its number is on the card: a settlement with it is refused.
        self.assertRpcError(self.settle_error('hosp-3/1', t), 'SSC_ESETTLED')

    def test_sscardctl(self):
        """sscardctl medical settle | pending | ack | clear-flag."""
        t = crashkit.txn(9)
        sock = self.d.socket_path
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'settle', '--request-id',
                                   'ctl-1', json.dumps(t))
        self.assertEqual(rc, 0, err)
        r = json.loads(out)
        self.assertEqual((r['id'], r['transaction']), (1, t))
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'pending')
        self.assertEqual(rc, 0, err)
        p = json.loads(out)
        self.assertEqual([s['id'] for s in p['settlements']], [1])
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'clear-flag')
        self.assertEqual(rc, 1, out)
        self.assertIn('SSC_EMEDPENDING', err)
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'ack', '1')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {'acknowledged': [1], 'newly': 1})
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'clear-flag')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['cleared'], True)
        self.assertEqual(self.flag(), '00')
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'settle', json.dumps(t))
        self.assertEqual(rc, 2, out)
        self.assertIn('--request-id', err)
        # The same settlement again, from stdin: the first result.
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'settle', '--request-id',
                                   'ctl-1', '-', stdin=json.dumps(t))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), r)
        rc, out, err = sscardd.ctl('--socket', sock, 'medical', 'pending', '1')
        self.assertEqual((rc, json.loads(out)), (0, {'settlements': [], 'flags': []}), err)


class Gen3(Settle, MedCase):
    profile = 'gen3'

    def test_flag_of_another_desk(self):
        """gen3's profile comes with the flag set and nothing in this desk's queue: the card is
        not among the flags to clear, and clear_flag clears it (docs/workflows.md)."""
        self.assertEqual(self.flag(), '01')
        self.assertEqual(self.pending(), {'settlements': [], 'flags': []})
        r = self.c.call('medical.clear_flag', {}, timeout=30)
        self.assertEqual((r['cleared'], r['was_set']), (True, True))
        self.assertEqual(self.flag(), '00')


if __name__ == '__main__':
    unittest.main()
