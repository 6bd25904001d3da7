"""Helpers for the fault tests of card writes (test_daemon_drop.py, test_daemon_crash.py,
test_daemon_crashloop.py): a gen2 card with a state file and a DES PSAM on another vpcd entry, the
daemon started again on the same journal, a read-only look into the journal file while the daemon
writes it, and the invariants every interrupted write must keep.

The PSAM sits on the other vpcd entry (slot 2) on purpose: pcscd serialises the two slots of one
entry, and these tests freeze the PSAM (SIGSTOP) to hold the daemon at a known point of a write.
After the intent is committed, a write's first PSAM command is the PSAM's SELECT (the MAC or the
external authentication's cryptogram comes after the card's GET CHALLENGE): with the PSAM frozen,
the daemon stops there, with the intent durable and the card's record not yet sent.
"""

import os
import sqlite3

import harness
import sscardd
from sscardd import slot_id

CARD, PSAM = 0, 2

# gen2.json: DF04/EF05 tag 31 (人员类别) is "11"; two EF08 transactions, these settlement numbers.
GEN2_CATEGORY = '11'
GEN2_SETTLEMENTS = ['S2024031500000000002', 'S2024030200000000001']
GEN2_EF08_CAPACITY = 10      # "transaction_capacity": 10
# The EF08 settlement numbers each profile used here starts with (newest first).
PROFILE_SETTLEMENTS = {'gen2': GEN2_SETTLEMENTS, 'gen3-readauth': ['N2025070100000000042']}


def txn(n):
    """A transaction for DF04/EF08 with settlement number S20261124000000nnnnn (20 characters)."""
    return {'time': '20261124083000', 'institution': 'H33010000007',
            'settlement_no': f'S20261124000000{n:05d}', 'total': 15000,
            'personal_account': 5000, 'pooled': 10000}


def settlements_on_card(state, initial=GEN2_SETTLEMENTS):
    """The settlement numbers of the EF08 records in a simulator state (None = initial, the
    profile's), newest first, decoded by hand: bytes 2+7+12 .. +20 of each record are the number
    (ASCII)."""
    if state is None:
        return list(initial)
    out = []
    for rec in state['files']['DF04/EF08']:
        b = bytes.fromhex(rec)
        out.append(b[2 + 7 + 12:2 + 7 + 12 + 20].rstrip(b'\0').decode('ascii'))
    return out


def category_on_card(state):
    """DF04/EF05 tag 31 (an, 2 bytes, 00-padded) in a simulator state (None = the profile's)."""
    if state is None:
        return GEN2_CATEGORY
    rec = next(r for r in state['files']['DF04/EF05'] if r.upper().startswith('31'))
    return bytes.fromhex(rec)[2:].rstrip(b'\0').decode('ascii')


class Peek:
    """Read-only queries of the journal file while the daemon writes it (WAL: never blocks it)."""

    def __init__(self, path):
        self.path = path

    def query(self, sql, args=()):
        if not os.path.exists(self.path):
            return []
        try:
            con = sqlite3.connect(f'file:{self.path}?mode=ro', uri=True, timeout=1.0)
        except sqlite3.Error:
            return []
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.Error:
            return []
        finally:
            con.close()

    def intents(self):
        return [r[0] for r in self.query("SELECT seq FROM rows WHERE kind = 'intent'")]

    def pending(self):
        return [r[0] for r in self.query(
            "SELECT seq FROM rows AS i WHERE kind = 'intent' AND NOT EXISTS "
            "(SELECT 1 FROM rows AS o WHERE o.kind = 'outcome' AND o.intent = i.seq)")]

    def outcomes(self, intent):
        return self.query("SELECT method, result, detail FROM rows WHERE kind = 'outcome' "
                          "AND intent = ?", (intent,))


class WriteFaultCase(sscardd.DaemonTestCase):
    """A gen2 card (slot 0, state file) and the DES PSAM (slot 2), or those of another profile;
    the daemon at trace level."""

    readers = 4
    card_delay_ms = None
    profile = 'gen2'         # the card's and the PSAM's profile
    daemon_kw = {'op_timeout_ms': 8000, 'log_level': 'trace'}

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card(self.profile, slot=CARD, state=True,
                                      apdu_delay_ms=self.card_delay_ms)
        self.psam = self.h.start_psam(self.profile, slot=PSAM)
        self.daemons = 0
        self.start_sscardd()
        self.peek = Peek(self.d.journal_path)

    def start_sscardd(self):
        """(Re)starts sscardd on the same configuration and journal; self.c is a new client.
        self.log_mark is where this daemon's part of the shared log file begins."""
        log = self.h.path('sscardd.log')
        self.log_mark = os.path.getsize(log) if os.path.exists(log) else 0
        self.start_daemon(**self.daemon_kw)
        self.daemons += 1
        self.wait_roles({CARD: 'user', PSAM: 'psam'}, timeout=20)

    def new_log(self):
        """This daemon's lines of the log (the file is shared by every start)."""
        with open(self.h.path('sscardd.log'), 'rb') as f:
            return f.read()[self.log_mark:].decode('utf-8', 'replace')

    def wait_log(self, text, timeout=5.0):
        """Waits until this daemon's log has text (a line written after a journal row may come
        a moment after the row is visible)."""
        harness.wait_until(lambda: text in self.new_log(), timeout, f'the log line {text!r}')

    def wait_at_the_psam(self, mark):
        """With the PSAM frozen: waits until the daemon's trace (after offset mark of this
        daemon's log) shows its first PSAM command (the SELECT of the key application on a new
        PSAM connection, DELIVER KEY on one that has it selected), which it logs just before the
        call that blocks. Everything the card was to get before it (GET CHALLENGE) is done."""
        command = f'trace apdu {slot_id(PSAM)} > '
        harness.wait_until(lambda: command in self.new_log()[mark:], 10.0,
                           'the daemon to reach the frozen PSAM')

    def write_request(self, file, items):
        return self.c.request('card.write_items', {'file': file, 'items': items})

    def write(self, file, items, timeout=20.0):
        return self.c.call('card.write_items', {'file': file, 'items': items}, timeout=timeout)

    def wait_intent(self, known, timeout=10.0):
        """Waits for an intent row not in known; returns its seq."""
        def new():
            fresh = [s for s in self.peek.intents() if s not in known]
            return fresh[0] if fresh else None
        return harness.wait_until(new, timeout, 'the write intent in the journal', interval=0.002)

    def wait_resolved(self, timeout=20.0):
        """Waits until no intent is pending (every one has its outcome)."""
        harness.wait_until(lambda: not self.peek.pending(), timeout,
                           f'the pending intents {self.peek.pending()} to be resolved')

    def assertInvariants(self):
        """Every intent has exactly one outcome; the card's EF08 holds exactly the settlements of
        the append intents recorded as applied (newest first, within its capacity), so none is
        lost or doubled; the chain verifies."""
        rows = sscardd.journal_rows(self.d.journal_path)
        intents, outcomes = sscardd.intents_and_outcomes(rows)
        state = self.card.state()
        initial = PROFILE_SETTLEMENTS[self.profile]
        on_card = settlements_on_card(state, initial)
        self.assertEqual(len(on_card), len(set(on_card)), f'a settlement doubled: {on_card}')
        applied = []          # settlement numbers of the append intents recorded as applied
        for seq in sorted(intents):
            intent = intents[seq]
            outs = outcomes.get(seq, [])
            self.assertEqual(len(outs), 1, f'intent {seq}: outcomes {outs}')
            o = outs[0]
            self.assertIn(o['method'], ('applied', 'failed', 'partial'))
            if o['method'] == 'partial':
                # Read back, naming the items on the card and those not (docs/operations.md).
                self.assertRegex(o['detail'], r'^readback; written [0-9A-F]{2}( [0-9A-F]{2})*; '
                                              r'not written [0-9A-F]{2}( [0-9A-F]{2})*$')
            else:
                self.assertIn(o['detail'], ('card', 'readback'))
            if o['method'] == 'applied':
                self.assertEqual(o['result'], 'SSC_OK')
            if intent['file'] == 'DF04/EF08' and o['method'] == 'applied':
                applied.insert(0, intent['detail']['settlement_no'])
        # The cyclic EF08 (capacity 10) holds exactly the applied appends, newest first, then
        # the profile's records, as far as they fit: nothing lost, nothing doubled.
        self.assertEqual(on_card, (applied + initial)[:GEN2_EF08_CAPACITY],
                         f'EF08 on the card vs the applied appends {applied}')
        rc, out = sscardd.journal_verify(self.d.journal_path)
        self.assertEqual(rc, 0, out)
        return intents, outcomes
