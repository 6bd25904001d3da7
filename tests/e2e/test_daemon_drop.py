#!/usr/bin/python3
"""sscardd end to end, a card pulled in the middle of a write (issue 4 "Done when": the simulator
dropped in the middle of a write): the card's link drops exactly on the record-writing APDU (APPEND
RECORD to DF04/EF08, UPDATE RECORD with MAC to DF04/EF05, UPDATE RECORD after EXTERNAL AUTHENTICATE
to SSSE/EF06), which the card never processes.

How the drop is aimed, without counting APDUs: the PSAM is frozen (SIGSTOP) before the request, so
the daemon stops at its first PSAM command, after the intent is durable (see crashkit.py); then the
card is armed to drop its next APDU (DF04: the write itself) or the one after (SSSE: EXTERNAL
AUTHENTICATE, then the write), and the PSAM is let go.

Checked: the client gets a clear error (SSC_ECARDREMOVED) at once; the intent stays pending; the
card is unchanged; when the card is inserted again the daemon reads it back by itself and records
the outcome "failed" (SSC_ENOTFOUND, readback); the client's retry is applied once, a second append
of the same settlement is refused (SSC_EEXIST): nothing doubled; `journal verify --log` passes.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_drop.py [-k name]
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import sscardd  # noqa: E402
from crashkit import CARD  # noqa: E402
from sscardd import slot_id  # noqa: E402


class Drop(crashkit.WriteFaultCase):

    def drop_during(self, file, items, drop_at, header):
        """One write whose record APDU (the drop_at-th card APDU after the PSAM is released) is
        dropped; header: the start of that APDU as the daemon's trace shows it."""
        known = self.peek.intents()
        before = self.card.state()
        self.psam.sigstop()
        try:
            mid = self.write_request(file, items)
            seq = self.wait_intent(known)
            self.card.arm_drop(drop_at)
        finally:
            self.psam.sigcont()
        with self.assertRaises(sscardd.RpcError) as cm:
            self.c.result(mid)
        e = cm.exception
        self.assertRpcError(e, 'SSC_ECARDREMOVED', std_code=-2, code=1006)
        self.assertEqual(e.reader, slot_id(CARD))
        self.assertTrue(e.message)
        # The card dropped the link on the record write, which it never processed.
        self.assertIn('arrived and is left unanswered', self.card.proc.log_text())
        sent = re.findall(rf'trace apdu {slot_id(CARD)} > (\S+)', self.new_log())
        self.assertTrue(sent[-1].startswith(header), sent[-3:])
        self.assertEqual(self.card.state(), before)
        self.assertEqual(self.peek.outcomes(seq), [])
        self.assertEqual(self.peek.pending(), [seq])
        self.assertIn(f'intent {seq} ({file}) left pending', self.new_log())

        # Inserted again: the daemon reads the card back on its own (no client call).
        self.wait_roles({CARD: None, crashkit.PSAM: 'psam'})
        self.card.insert()
        self.wait_resolved()
        self.assertEqual(self.peek.outcomes(seq), [('failed', 'SSC_ENOTFOUND', 'readback')])
        self.assertIn(f'intent {seq} ({file}) resolved by reading the card back: failed',
                      self.new_log())
        self.wait_roles({CARD: 'user', crashkit.PSAM: 'psam'})
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


if __name__ == '__main__':
    unittest.main(verbosity=2)
