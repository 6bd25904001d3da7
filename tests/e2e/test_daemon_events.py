#!/usr/bin/python3
"""sscardd end to end: the events of an insertion and card.ready (issue 11), through real pcscd +
vpcd + sscard-sim + sscardd and a subscribed client on the daemon's socket.

docs/api.md (Notifications) promises, per insertion: card.inserted, then card.ready once the
reader's role is known (after the probe, at once on a reader configured "user"), or with role
"unknown" and an "error" name when the probe could not tell (another card.ready follows if a retry
finds the role), then card.removed; card.ready costs no APDU of its own. The APDU counts below are
the probe's, counted by hand from src/psam.c: a user card gets one SELECT of the PSAM application
(answered 6A82), a PSAM that SELECT and the READ BINARY of its terminal number; a reader configured
"user" is never probed. Expected ATRs are copied from firmware-stubs/profiles/*.json. The daemon runs
with [card] prefetch = no here, so that the APDUs counted are the probe's alone; with the read-ahead,
card.ready follows one read of the card (tests/e2e/test_daemon_ahead.py).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_events.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import DES_TERMINAL, expected  # noqa: E402

GEN2_ATR = '3B8E80010081544C92868433010000BF7C7A8D'         # gen2.json card.atr
SM4_PSAM_ATR = '3B6C00005053414D2D534D342D303031'           # gen3.json psam.atr
DES_PSAM_ATR = '3B6C00005053414D2D4445532D303031'           # gen2.json psam.atr
PROBE_APDUS_USER = 1       # SELECT D15600000590 -> 6A82
PROBE_APDUS_PSAM = 2       # SELECT D15600000590 -> FCI, READ BINARY 96 (terminal number)
SETTLE = 0.5               # seconds to watch for an APDU that must not come


def reader_events(c, reader, n, timeout=10.0):
    """The next n card.* event notifications of reader (params), in order; others are dropped."""
    got = []

    def enough():
        while c.events and len(got) < n:
            p = c.events.popleft().get('params') or {}
            if p.get('reader') == reader and p.get('type', '').startswith('card.'):
                got.append(p)
        return got if len(got) == n else None
    try:
        return c._wait(enough, timeout, f'{n} events of {reader}')
    except sscardd.harness.HarnessError as e:
        raise sscardd.harness.HarnessError(f'{e}; got only {got}') from None


class CardReady(sscardd.DaemonTestCase):
    prefetch = 'no'     # the probe's APDUs alone

    readers = 4

    def ready_checks(self, ev, slot, role, atr, apdus):
        """card.ready of slot: its fields, reader.list agreeing at once, and the simulator's
        APDU count (the probe's only) then and a little later."""
        self.assertEqual((ev['type'], ev['role'], ev['card'], ev['atr']),
                         ('card.ready', role, True, atr), ev)
        self.assertNotIn('error', ev)
        entry = self.d.reader(self.c, self.h.reader_name(slot))
        self.assertEqual((entry['role'], entry['card']), (role, True))
        sim = next(s for s in self.h.sims if s.slot == slot)
        self.assertEqual(sim.status()['apdus'], apdus)
        time.sleep(SETTLE)
        self.assertEqual(sim.status()['apdus'], apdus)

    def test_probed_psam_and_user_card(self):
        self.h.start_pcscd()
        self.start_daemon()
        self.wait_roles({0: None, 1: None})

        self.h.start_psam('gen2', slot=1)
        ins, ready = reader_events(self.c, slot_id(1), 2)
        self.assertEqual((ins['type'], ins['role']), ('card.inserted', 'unknown'))
        # The probe's algorithm and terminal number (gen2.json psam), at card.ready, not before.
        self.assertEqual((ready['algorithm'], ready.get('terminal_number')),
                         ('des', '330100000001'))
        self.assertNotIn('terminal_number', ins)
        self.ready_checks(ready, 1, 'psam', DES_PSAM_ATR, PROBE_APDUS_PSAM)

        self.h.start_card('gen2', slot=0)
        ins, ready = reader_events(self.c, slot_id(0), 2)
        self.assertEqual((ins['type'], ins['role']), ('card.inserted', 'unknown'))
        self.ready_checks(ready, 0, 'user', GEN2_ATR, PROBE_APDUS_USER)
        # card.ready means "read now": the read works without any wait of the client's.
        self.assertEqual(self.c.call('card.read_basic'), expected('gen2', DES_TERMINAL))

        # The card leaves: card.removed, and nothing between the ready and the removal.
        self.h.sims[-1].remove()
        (gone,) = reader_events(self.c, slot_id(0), 1)
        self.assertEqual((gone['type'], gone['card']), ('card.removed', False))
        # In again: the same pair once more, with the probe's one APDU.
        before = self.h.sims[-1].status()['apdus']
        self.h.sims[-1].insert()
        ins, ready = reader_events(self.c, slot_id(0), 2)
        self.assertEqual((ins['type'], ready['type'], ready['role']),
                         ('card.inserted', 'card.ready', 'user'))
        self.assertEqual(self.h.sims[-1].status()['apdus'], before + PROBE_APDUS_USER)

    def test_configured_roles(self):
        self.h.start_pcscd()
        self.start_daemon(config={'readers': {f'role.{slot_id(0)}': 'user',
                                              f'role.{slot_id(1)}': 'psam'}})
        self.wait_roles({0: None, 1: None})

        # A reader configured "user" is never probed: its card is ready at its insertion, and
        # no APDU reaches it until a client asks for one.
        self.h.start_card('gen2', slot=0)
        ins, ready = reader_events(self.c, slot_id(0), 2)
        self.assertEqual((ins['type'], ins['role']), ('card.inserted', 'user'))
        self.ready_checks(ready, 0, 'user', GEN2_ATR, 0)

        # A reader configured "psam" is still probed for its algorithm and terminal number:
        # ready after that probe, with the algorithm.
        self.h.start_psam('gen3', slot=1)
        ins, ready = reader_events(self.c, slot_id(1), 2)
        self.assertEqual((ins['type'], ins['role']), ('card.inserted', 'psam'))
        self.assertEqual((ready['algorithm'], ready.get('terminal_number')),
                         ('sm4', '330200000001'))                  # gen3.json psam
        self.assertNotIn('terminal_number', ins)
        self.ready_checks(ready, 1, 'psam', SM4_PSAM_ATR, PROBE_APDUS_PSAM)

    def test_probe_cut_off(self):
        # The card leaves at the probe's first APDU: card.ready says the role is unknown and
        # why, before the card.removed; the next insertion is probed and ready as usual.
        self.h.start_pcscd()
        self.start_daemon()
        self.wait_roles({0: None, 1: None})
        card = self.h.start_card('gen2', slot=0, drop_after=1)
        ins, ready, gone = reader_events(self.c, slot_id(0), 3)
        self.assertEqual([e['type'] for e in (ins, ready, gone)],
                         ['card.inserted', 'card.ready', 'card.removed'])
        self.assertEqual(ready['role'], 'unknown')
        self.assertEqual(ready.get('error'), 'SSC_ECARDREMOVED', ready)
        card.insert()
        ins, ready = reader_events(self.c, slot_id(0), 2)
        self.assertEqual((ins['type'], ready['type'], ready['role']),
                         ('card.inserted', 'card.ready', 'user'))
        self.assertNotIn('error', ready)

    def test_probe_refused_then_retried(self):
        # Another program holds the reader (a direct PC/SC connection, which needs no card):
        # the probe cannot have the card exclusively. card.ready says so (role unknown, error);
        # once the other program lets go, a retry of the probe finds the user card and a second
        # card.ready says that, with no new card.inserted.
        from smartcard import scard
        self.h.start_pcscd()
        self.start_daemon(config={'timeouts': {'connect_timeout_ms': 300}})
        self.wait_roles({0: None, 1: None})
        pc = self.h.pcsc()
        hr, handle, _ = scard.SCardConnect(pc.ctx, self.h.reader_name(0),
                                            scard.SCARD_SHARE_DIRECT, 0)
        self.assertEqual(hr, scard.SCARD_S_SUCCESS, 'a direct connection to the empty reader')
        try:
            self.h.start_card('gen2', slot=0)
            ins, ready = reader_events(self.c, slot_id(0), 2)
            self.assertEqual((ins['type'], ready['type'], ready['role']),
                             ('card.inserted', 'card.ready', 'unknown'))
            self.assertEqual(ready.get('error'), 'SSC_EREADERBUSY', ready)
            self.assertEqual(self.d.reader(self.c, self.h.reader_name(0))['role'], 'unknown')
        finally:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        (again,) = reader_events(self.c, slot_id(0), 1, timeout=15.0)
        self.assertEqual((again['type'], again['role'], again['atr']),
                         ('card.ready', 'user', GEN2_ATR))
        self.assertNotIn('error', again)
        self.assertEqual(self.d.reader(self.c, self.h.reader_name(0))['role'], 'user')


if __name__ == '__main__':
    unittest.main(verbosity=2)
