#!/usr/bin/python3
"""sscardd end to end, the read-ahead on insertion (issue 18, [card] prefetch).

When a user card goes in, the reader's worker reads what card.read_basic answers before it posts
card.ready, and keeps it for the insertion: while it holds the card (card_hold_ms), and after that
over a shared connection that sees a removal or a reset by another program. A card.read_basic after card.ready
is answered from it with no APDU (the simulator's APDU count proves it); one sent during the
read-ahead waits for it instead of reading the card a second time. The data never outlives the
insertion it was read on: a removal before the request, two cards swapped while the daemon did not
look, a reset by another PC/SC client once the daemon let go of the card, and a write through the
daemon each lead to a fresh read or an error, never to the old data. The lost-card check and the
audit row apply to an answer from the read-ahead as to a read. prefetch = no behaves as before.
Real pcscd + vpcd + sscard-sim (card and PSAM) + sscardd.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_ahead.py [-k name]
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import RpcError, ctl, harness  # noqa: E402

# The gen2 profile's card (firmware-stubs/profiles/gen2.json), written out by hand.
GEN2 = {
    'ssn': '330102199003071230',
    'name': '张三',
    'card_number': 'X00000019',
    'card_id': '330100D15600000500BF7C7AC9FC0FEC',
    'birth_date': '19900307',
    'spec_version': '2.00',
    'algorithm': 'des',
}
# The gen3-readauth profile's card: its EF06 is read only after read authorisation (PSAM).
READAUTH_SSN = '330203198511110029'
HOLD_MS = 30000          # long enough that every test below runs within one hold
WATCHED = 'watched for the data read ahead'   # the daemon's debug line when its hold ends


class Ahead(sscardd.DaemonTestCase):
    readers = 2

    def start(self, profile='gen2', psam=None, config=None, absent=False, state=False):
        """pcscd, the card in slot 0 (absent: inserted later by the test), the PSAM of psam in
        slot 1, and the daemon (card_hold_ms HOLD_MS unless config says otherwise)."""
        self.h.start_pcscd()
        self.sim = self.h.start_card(profile, slot=0, absent=absent, state=state)
        roles = {0: None if absent else 'user'}
        if psam:
            self.h.start_psam(psam, slot=1)
            roles[1] = 'psam'
        cfg = {'timeouts': {'card_hold_ms': str(HOLD_MS)}}
        for section, keys in (config or {}).items():
            cfg.setdefault(section, {}).update(keys)
        self.start_daemon(config=cfg)
        self.reader = self.h.reader_name(0)
        self.rid = sscardd.slot_id(0)
        self.wait_roles(roles)
        self.pcsc = self.h.pcsc()

    def apdus(self):
        return self.sim.status()['apdus']

    def insert_and_wait_ready(self):
        """Inserts the card and waits for its card.ready; returns the APDU count then."""
        self.c.events.clear()
        self.sim.insert()
        ev = self.c.next_event(timeout=10, type='card.ready', reader=self.rid)
        self.assertNotIn('error', ev)
        return self.apdus()

    def assertGen2(self, basic):
        self.assertEqual({k: basic[k] for k in GEN2}, GEN2)

    # ---- answers from the read-ahead ------------------------------------------------------------

    def test_answer_without_apdu(self):
        self.start(absent=True)
        before = self.apdus()
        at_ready = self.insert_and_wait_ready()
        self.assertGreater(at_ready, before)              # the read-ahead read the card
        basic = self.c.call('card.read_basic')
        self.assertEqual(self.apdus(), at_ready)           # ... and the answer needed no APDU
        self.assertGen2(basic)
        self.assertEqual(basic['terminal_number'], '000000000000')   # no PSAM: as a read says
        # Again: the data stays for the insertion (while the daemon holds the card).
        self.assertEqual(self.c.call('card.read_basic'), basic)
        self.assertEqual(self.apdus(), at_ready)
        # What needs the card still goes to the card.
        self.c.call('card.read_items', {'file': 'SSSE/EF05', 'items': ['07']})
        self.assertGreater(self.apdus(), at_ready)

    def test_read_authorisation_through_psam(self):
        self.start('gen3-readauth', psam='gen3-readauth', absent=True)
        at_ready = self.insert_and_wait_ready()
        basic = self.c.call('card.read_basic')
        self.assertEqual(self.apdus(), at_ready)
        self.assertEqual(basic['ssn'], READAUTH_SSN)
        self.assertEqual(basic['terminal_number'], '330200000001')

    def test_reader_configured_user(self):
        # A reader configured "user" is not probed: the read-ahead is the first its card gets,
        # and card.ready follows it.
        self.start(absent=True, config={'readers': {f'role.{sscardd.slot_id(0)}': 'user'}})
        self.c.events.clear()
        self.sim.insert()
        ins = self.c.next_event(timeout=10, type='card.inserted', reader=self.rid)
        self.assertEqual(ins['role'], 'user')
        ready = self.c.next_event(timeout=10, type='card.ready', reader=self.rid)
        self.assertNotIn('error', ready)
        at_ready = self.apdus()
        self.assertGreater(at_ready, 0)
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertEqual(self.apdus(), at_ready)

    def test_no_key_provider_answers_as_before(self):
        # EF06 needs read authorisation and there is no PSAM: nothing usable is kept, and
        # card.read_basic answers what it answers without read-ahead (standard code -2201).
        self.start('gen3-readauth', absent=True)
        at_ready = self.insert_and_wait_ready()
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertEqual(cm.exception.std_code, -2201, str(cm.exception))
        self.assertGreater(self.apdus(), at_ready)         # it asked the card, as before

    def test_request_during_read_ahead_waits_for_it(self):
        # 60 ms per APDU: the read-ahead takes long enough for a request to come during it.
        self.start(absent=True)
        self.sim.stop()
        self.sim = self.h.sim('card', 'gen2', 0, absent=True, apdu_delay_ms=60)
        self.sim.start()
        # One read-ahead alone: how many APDUs an insertion costs.
        alone0 = self.apdus()
        alone = self.insert_and_wait_ready() - alone0
        self.sim.remove()
        self.c.next_event(timeout=10, type='card.removed', reader=self.rid)
        # Now a card.read_basic sent as soon as the card is seen going in.
        self.c.events.clear()
        n0 = self.apdus()
        self.sim.insert()
        self.c.next_event(timeout=10, type='card.inserted', reader=self.rid)
        msg_id = self.c.request('card.read_basic')
        self.assertGen2(self.c.result(msg_id))
        self.c.next_event(timeout=10, type='card.ready', reader=self.rid)
        self.assertEqual(self.apdus() - n0, alone)         # one read, not two

    def test_lost_card_and_audit_apply(self):
        self.start(absent=True)
        db = self.d.journal_path
        rc, _, err = ctl('blacklist', 'import', '-', '--journal', db,
                         stdin=f"{GEN2['card_number']}\n")
        self.assertEqual(rc, 0, err)
        at_ready = self.insert_and_wait_ready()
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertRpcError(cm.exception, 'SSC_EBLACKLISTED', std_code=-22)
        self.assertEqual(self.apdus(), at_ready)           # refused from the read-ahead
        # An operation that failed drops the data: this one reads the card again.
        basic = self.c.call('card.read_basic', {'allow_lost': True})
        self.assertIs(basic['lost'], True)
        self.assertGen2(basic)
        rows = [r for r in sscardd.journal_settled(self.d)
                if r['kind'] == 'audit' and r['method'] == 'card.read_basic']
        self.assertEqual([r['result'] for r in rows], ['SSC_EBLACKLISTED', 'SSC_OK'])
        self.assertEqual(rows[1].get('detail'), {'allow_lost': True, 'lost': True})
        self.assertTrue(all(len(r['card']) == 32 for r in rows), rows)

    # ---- never across a removal -----------------------------------------------------------------

    def test_removal_before_request(self):
        self.start(absent=True)
        self.insert_and_wait_ready()
        self.sim.remove()
        # As soon as pcscd saw it go (its poll): the daemon may not have taken the event yet.
        self.pcsc.wait_card(self.reader, present=False, timeout=5)
        with self.assertRaises(RpcError) as cm:
            self.c.call('card.read_basic')
        self.assertIn(cm.exception.name, ('SSC_ENOCARD', 'SSC_ECARDREMOVED'), str(cm.exception))

    def test_swap_between_polls(self):
        # Another card with the same ATR (the daemon's monitor cannot tell it from the first by
        # the ATR) goes in while the daemon is stopped: only pcscd saw the removal.
        other = self.other_profile()
        self.start(absent=True)
        self.insert_and_wait_ready()
        self.d.proc.sigstop()
        try:
            self.sim.stop()
            self.pcsc.wait_card(self.reader, present=False, timeout=5)
            self.sim = self.h.sim('card', other, 0)
            self.sim.start()
            self.pcsc.wait_card(self.reader, present=True, timeout=5)
        finally:
            self.d.proc.sigcont()
        n0 = self.apdus()
        try:
            basic = self.c.call('card.read_basic')
        except RpcError as e:
            self.assertIn(e.name, ('SSC_ENOCARD', 'SSC_ECARDREMOVED'), str(e))
            basic = self.c.call('card.read_basic')
        self.assertEqual(basic['name'], '李四')             # the card that is there now
        self.assertGreater(self.apdus(), n0)               # read afresh

    def other_profile(self):
        """gen2 with another holder's name: the same ATR and card id, so that only what the
        card holds tells the two apart."""
        with open(harness.profile_path('gen2'), encoding='utf-8') as f:
            p = json.load(f)
        p['card']['holder']['name'] = '李四'
        path = self.h.path('gen2-other.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(p, f, ensure_ascii=False)
        return path

    def test_reset_by_another_program(self):
        # Another program can reach the card only once the daemon let go of it (card_hold_ms);
        # the daemon's shared handle sees the other program's reset, so the next read asks the
        # card again.
        self.start(absent=True, config={'timeouts': {'card_hold_ms': '800'}})
        self.insert_and_wait_ready()
        card = harness.wait_until(self.try_connect, 10, 'the card released by the daemon')
        card.transmit('00A4040006D15600000590')   # anything: the other program's own use
        from smartcard import scard
        card.disconnect(scard.SCARD_RESET_CARD)
        n0 = self.apdus()
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertGreater(self.apdus(), n0)

    # ---- past the hold: the card watched over a shared connection ----------------------------

    def released(self):
        """Another program's shared connection, once the daemon let go of the card (its hold
        over): the proof that the hold ended; None while the daemon still holds the card."""
        return self.try_connect()

    def test_kept_past_the_hold(self):
        # The daemon holds the card exclusively for card_hold_ms, then lets other programs use it
        # while it keeps the data: a clerk who asks a minute later gets it with no APDU.
        self.start(absent=True, config={'timeouts': {'card_hold_ms': '300'}})
        at_ready = self.insert_and_wait_ready()
        other = harness.wait_until(self.released, 10, 'the card let go by the daemon')
        other.transmit('00A4040006D15600000590')   # another program's read: no reset
        from smartcard import scard
        other.disconnect(scard.SCARD_LEAVE_CARD)
        # The daemon's handle is shared: a program that wants the card exclusively is refused at
        # once (never left waiting in pcscd, as a handle reconnected to shared would leave it
        # with pcsc-lite 1.9.9).
        hr, _, _ = scard.SCardConnect(self.pcsc.ctx, self.reader, scard.SCARD_SHARE_EXCLUSIVE,
                                      scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        self.assertEqual(hr & 0xFFFFFFFF, scard.SCARD_E_SHARING_VIOLATION & 0xFFFFFFFF)
        n0 = self.apdus()
        self.assertEqual(n0, at_ready + 1)                 # the other program's one APDU
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertEqual(self.apdus(), n0)                 # no APDU: the read-ahead's data
        # Past the next hold, again.
        harness.wait_until(self.released, 10, 'the card let go again').disconnect(
            scard.SCARD_LEAVE_CARD)
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertEqual(self.apdus(), n0)

    def test_prefetch_shared_off(self):
        # prefetch_shared = no: past the hold the daemon lets go of the card entirely (another
        # program gets it exclusively) and of the data with it: the next read asks the card.
        from smartcard import scard
        self.start(absent=True, config={'timeouts': {'card_hold_ms': '300'},
                                        'card': {'prefetch_shared': 'no'}})
        at_ready = self.insert_and_wait_ready()

        def exclusive():
            hr, handle, _ = scard.SCardConnect(self.pcsc.ctx, self.reader,
                                               scard.SCARD_SHARE_EXCLUSIVE,
                                               scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            return handle if hr == scard.SCARD_S_SUCCESS else None
        handle = harness.wait_until(exclusive, 10, 'the card let go entirely')
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertGreater(self.apdus(), at_ready)

    def test_kept_past_the_hold_read_authorised(self):
        # A card whose EF06 needs read authorisation (the read-ahead resets it after the read):
        # kept past the hold as well.
        self.start('gen3-readauth', psam='gen3-readauth', absent=True,
                   config={'timeouts': {'card_hold_ms': '300'}})
        n = self.d.log_count(WATCHED)
        at_ready = self.insert_and_wait_ready()
        harness.wait_until(lambda: self.d.log_count(WATCHED) > n or None, 10,
                           'the hold to end with the card watched')
        self.assertEqual(self.c.call('card.read_basic')['ssn'], READAUTH_SSN)
        self.assertEqual(self.apdus(), at_ready)

    def test_psam_after_the_card(self):
        # The card is read ahead before any PSAM is ready (as at a daemon start with both in their
        # readers, when the card's probe ends first): its read authorisation has no PSAM, and
        # nothing is kept. When the PSAM comes, the card is read ahead again.
        self.h.start_pcscd()
        self.sim = self.h.start_card('gen3-readauth', slot=0)
        psam = self.h.sim('psam', 'gen3-readauth', 1, absent=True).start()
        self.start_daemon()
        self.rid = sscardd.slot_id(0)
        self.wait_roles({0: 'user'})
        self.c.events.clear()
        psam.insert()
        self.c.next_event(timeout=10, type='card.ready', reader=sscardd.slot_id(1))
        harness.wait_until(lambda: self.d.log_count('card read ahead') >= 1 or None, 10,
                           'the card read ahead again')
        n0 = self.apdus()
        self.assertEqual(self.c.call('card.read_basic')['ssn'], READAUTH_SSN)
        self.assertEqual(self.apdus(), n0)                 # from the second read-ahead

    def test_past_the_hold_removal_and_return(self):
        # Pulled and put back after the hold: a new insertion, read afresh (a new read-ahead).
        self.start(absent=True, config={'timeouts': {'card_hold_ms': '300'}})
        self.insert_and_wait_ready()
        harness.wait_until(self.released, 10, 'the card let go by the daemon').disconnect()
        self.c.events.clear()
        self.sim.remove()
        self.c.next_event(timeout=10, type='card.removed', reader=self.rid)
        at_ready = self.insert_and_wait_ready()
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertEqual(self.apdus(), at_ready)

    def try_connect(self):
        try:
            return self.pcsc.connect(self.reader, wait=False)
        except harness.PcscError:
            return None

    def test_write_in_between(self):
        self.start(psam='gen2', absent=True, state=True)
        self.insert_and_wait_ready()
        self.assertEqual(self.c.call('card.read_basic')['name'], '张三')
        r = self.c.call('card.write_items', {'file': 'SSSE/EF06', 'items': {'09': '李四'}})
        self.assertEqual(r['items']['09'], '李四')
        n0 = self.apdus()
        self.assertEqual(self.c.call('card.read_basic')['name'], '李四')
        self.assertGreater(self.apdus(), n0)

    # ---- prefetch = no --------------------------------------------------------------------------

    def test_prefetch_off(self):
        self.start(absent=True, config={'card': {'prefetch': 'no'}})
        before = self.apdus()
        at_ready = self.insert_and_wait_ready()
        self.assertEqual(at_ready - before, 1)              # the probe's SELECT only
        self.assertGen2(self.c.call('card.read_basic'))
        self.assertGreater(self.apdus(), at_ready)


if __name__ == '__main__':
    unittest.main(verbosity=2)
