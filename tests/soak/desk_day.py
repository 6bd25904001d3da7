#!/usr/bin/python3
"""The simulated desk day (issue 18): sscardd under a long, mixed, hostile load, with invariants.

One private pcscd (tests/e2e/harness.py) with 10 vpcd readers: slots 0-7 take user cards, slot 8
holds the DES PSAM, slot 9 stays empty. Eleven simulated cards, one of every shipped profile
(docs/simulator.md: gen1, gen2, gen2-badcardid, gen2-tagmode, gen2-wrongkey, gen3, gen3-gb18030,
gen3-readauth, t0-quirks with its T=0 GET RESPONSE and exact-Le quirks, expired, pin-blocked),
each with its own state file; gen3-readauth is used as a copy with its own card number and ID
number (the shipped one shares gen3's, and the journal names a card by its number), so that every
card's data is its own. The SM4 cards' keys come from the simulated key server (the network PSAM,
tests/e2e/hsmkit.py), the only SM4 key provider. sscardd runs in the namespace
(tests/e2e/sscardd.py).

For the run's length (--seconds / --minutes):

* 50 clients (threads, one connection each, 10 of them subscribed to events) mix card.read_basic,
  card.read_items, medical.credentials, card.internal_auth, card.write_items (DF04/EF08 appends
  and DF04/EF05 updates, with a request_id, some appends without), card.verify_pin, change_pin,
  reload_pin, unblock_pin (with a request_id), the two-step read, system.info, reader.list, and
  bad requests (not JSON, unknown method, bad params, batches, notifications, too deep, too long);
* the main thread pulls and inserts cards, swaps them between readers (also faster than pcscd's
  poll), pulls them in the middle of an operation (the simulator's drop-after), restarts pcscd,
  SIGKILLs sscardd and starts it again, and makes the key server fail (503, TLS refused, dropped
  connections, too slow, killed) and come back.

Invariants (each breach is a violation; any violation fails the run):

* every request is answered by its deadline (op_timeout_ms from sending, plus GRACE_S for a loaded
  machine); a request in flight when the daemon is killed sees its connection closed instead, and
  its client repeats it by request_id once the daemon is back: the repeat must answer the first
  result or a named error (never SSC_EREQCONFLICT for the same params); no answer is
  SSC_EINTERNAL; an error of a card method carries an SSC_E* name; a bad request gets its
  documented error code;
* no answer carries another card's data: the card number, ID number, 卡识别码 (and ATR of an
  event) of every answer belong to a card that was in that reader at some moment between the
  request and its answer, or pulled less than PRESENCE_LAG_S before it (the read-ahead's documented
  window); a confirmed write's journal intent names such a card too;
* events keep their documented order per reader (card.inserted, card.ready, card.removed);
* at the end every write intent in the journal has its outcome (after every card has been put back
  in a reader, and the PIN changes left without an answer repeated); each card's state file holds
  exactly what the journal says was applied to it: its DF04/EF08 settlements (nothing lost, nothing
  doubled, newest first within its capacity), its DF04/EF05 item 31 and its PIN (the values of the
  applied intents, known by their request_id); every confirmed write's intent is applied; the
  journal's chain verifies;
* sscardd's RSS and open file descriptors stay flat: under 10 % growth from the end of warm-up to
  the end of each daemon lifetime long enough to judge (medians of 5 samples). Under the ASan
  build RSS is reported but not judged (ASan's quarantine holds freed memory back by design;
  LeakSanitizer at the daemon's clean stop finds leaks instead);
* no sanitizer report in any log of the run (the ASan build).

It prints one summary line (operations, insertions, pulls, restarts, violations) and exits 1 on any
violation (the details on stderr, the run's directory kept).

Run: ./scripts/soak.sh --minutes N, or
     SSC_BUILD_DIR=build /usr/bin/python3 tests/soak/desk_day.py --seconds 120 [--seed S]
Needs root (namespaces), like the end-to-end tests.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'e2e'))
import crashkit  # noqa: E402
import harness  # noqa: E402
import hsmkit  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

CARD_SLOTS = list(range(8))
PSAM_SLOT = 8
EMPTY_SLOT = 9
READERS = 10
CLIENTS = 50
SUBSCRIBERS = 10
OP_TIMEOUT_MS = 30000          # generous: the ASan build on a shared machine is slow
GRACE_S = 15.0                 # scheduling of 50 client threads on a loaded machine
INITIAL_PINS = ('123456', '888888')
# A card counts as in its reader until this long after it was pulled: pcscd learns of a removal
# from vpcd only at its next poll (every 400 ms), and until then the daemon may answer a read from
# the data it read ahead at the card's insertion, as docs/security.md ("As good as the reader's
# presence detection") says. One second covers the poll and pcscd's scheduling on a loaded
# machine; an answer from a card gone longer than that (a stale read-ahead, a card swapped between
# polls) is still a violation.
PRESENCE_LAG_S = 1.0
SAN_PATTERN = re.compile(r'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |'
                         r'SUMMARY: UndefinedBehaviorSanitizer')
PROFILES = ['gen2', 'gen3', 'gen3-gb18030', 'gen3-readauth', 't0-quirks', 'expired',
            'pin-blocked', 'gen2-wrongkey', 'gen2-tagmode', 'gen2-badcardid', 'gen1']


def say(text):
    """A progress line on stderr."""
    sys.stderr.write(f'soak: {time.strftime("%H:%M:%S")} {text}\n')
    sys.stderr.flush()


# --- the cards ------------------------------------------------------------------------------

def card_number_check(first8):
    """The 卡号 check character (spec §2.6): weights 3,7,9,10,5,8,4,2 over digits and A-Z=10..35."""
    vals = [int(c) if c.isdigit() else ord(c) - ord('A') + 10 for c in first8]
    r = 11 - sum(v * w for v, w in zip(vals, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    return 'X' if r == 10 else '0' if r == 11 else str(r)


def ssn_check(first17):
    """The GB 11643 check character of an ID number."""
    s = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(first17))
    return '10X98765432'[s % 11]


class SoakCard:
    """One simulated card: its profile (a path), its identity and its state file."""

    def __init__(self, name, profile_path, state_path):
        self.name = name
        self.profile_path = profile_path
        self.state_path = state_path
        with open(profile_path) as f:
            p = json.load(f)
        c = p['card']
        self.card_number = c['card_number']
        self.ssn = c['holder']['ssn']
        self.card_id = c['card_id'].upper()
        self.atr = c['atr'].upper()
        self.initial_pin = c['pin']
        med = c['medical']
        self.capacity = med.get('transaction_capacity', 10)
        self.initial_settlements = [t['settlement_no'] for t in med.get('transactions', [])]
        self.initial_category = med['category']
        self.sim = None          # the harness.Sim while it runs
        self.slot = None         # the slot it is in (its simulator runs there), or None
        self.ref = None          # the journal's name of it (learnt at the start)

    def ident(self):
        return (self.card_number, self.ssn, self.card_id)


def make_cards(h):
    """The run's cards: the shipped profiles, gen3-readauth as a copy with its own numbers."""
    cards = []
    for name in PROFILES:
        path = harness.profile_path(name)
        if name == 'gen3-readauth':
            with open(path) as f:
                p = json.load(f)
            p['name'] = 'soak-gen3-readauth'
            num = 'A1234569'
            p['card']['card_number'] = num + card_number_check(num)
            ssn = '33020319851111003'
            p['card']['holder']['ssn'] = ssn + ssn_check(ssn)
            path = h.path('soak-gen3-readauth.json')
            with open(path, 'w') as f:
                json.dump(p, f, ensure_ascii=False, indent=1)
        cards.append(SoakCard(name, path, h.path(f'{name}.state')))
    numbers = [c.card_number for c in cards]
    assert len(set(numbers)) == len(numbers), f'card numbers not distinct: {numbers}'
    return cards


# --- shared record of what happened ---------------------------------------------------------

class Record:
    """What the run did and saw; every member is guarded by lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.violations = []
        self.counts = {k: 0 for k in (
            'ops', 'answered', 'errors', 'closed', 'repeats', 'insertions', 'pulls', 'swaps',
            'midop_pulls', 'pcscd_restarts', 'daemon_restarts', 'hsm_outages', 'writes_confirmed',
            'events', 'bad_requests')}
        self.error_names = {}
        self.history = {s: [] for s in range(READERS)}     # slot -> [[card, t_in, t_out]]
        self.daemon_gen = 0          # odd while sscardd is being killed, +2 for every kill
        self.requests = {}       # request_id -> (method, params)
        self.confirmed = []      # (journal_id, request_id, file, value, slot, t0, t1)
        self.next_no = 0

    def violation(self, text):
        with self.lock:
            self.violations.append(f'{time.strftime("%H:%M:%S")} {text}')
        sys.stderr.write(f'VIOLATION: {text}\n')

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def serial(self):
        with self.lock:
            self.next_no += 1
            return self.next_no

    def card_in(self, slot, card, t):
        with self.lock:
            self.history[slot].append([card, t, None])

    def card_out(self, slot, card, t):
        with self.lock:
            for e in reversed(self.history[slot]):
                if e[0] is card and e[2] is None:
                    e[2] = t
                    return

    def cards_between(self, slot, t0, t1):
        """The cards that were in slot at some moment of [t0, t1] (or pulled less than
        PRESENCE_LAG_S before t0)."""
        with self.lock:
            return [e[0] for e in self.history[slot]
                    if e[1] <= t1 and (e[2] is None or e[2] + PRESENCE_LAG_S >= t0)]


# --- the clients ----------------------------------------------------------------------------

class Closed(Exception):
    pass


class SoakClient(threading.Thread):
    """One desk application: a connection, a loop of random operations, checks of every answer."""

    def __init__(self, soak, index, subscriber):
        super().__init__(name=f'client{index}', daemon=True)
        self.s = soak
        self.rec = soak.rec
        self.index = index
        self.subscriber = subscriber
        self.rng = random.Random(soak.seed * 1000 + index)
        self.c = None
        self.gen = None
        self.sub_t0 = None
        self.ev_state = {}
        self.n = 0

    # -- connection
    def connect(self):
        while not self.s.stopping.is_set():
            gen = self.rec.daemon_gen
            try:
                c = sscardd.Client(self.s.d.socket_path, timeout=5.0)
            except OSError:
                time.sleep(0.3)
                continue
            self.c, self.gen = c, gen
            self.ev_state = {}
            if self.subscriber:
                try:
                    r = self.call('events.subscribe', None)
                except Closed:
                    continue
                if r is not None and r.get('result') != {'subscribed': True}:
                    self.rec.violation(f'{self.name}: events.subscribe answered {r}')
                self.sub_t0 = time.monotonic()
            return True
        return False

    def drop(self):
        if self.c:
            self.c.close()
        self.c = None

    def closed_ok(self):
        """A closed connection is expected when the daemon was killed since we connected, or
        was being killed as we connected (daemon_gen is odd from just before the SIGKILL until
        the process is reaped)."""
        return self.rec.daemon_gen != self.gen or self.gen % 2 == 1

    def call(self, method, params, msg_id=None, raw=None):
        """Sends a request and waits for its reply until the deadline. Returns the reply (None for
        one that gets none); raises Closed when the connection ended (a violation unless the
        daemon was killed meanwhile)."""
        t0 = time.monotonic()
        deadline = OP_TIMEOUT_MS / 1000 + GRACE_S
        self.rec.count('ops')
        try:
            if raw is not None:
                self.c.send_raw(raw)
                mid = msg_id
            else:
                mid = self.c.request(method, params)
            if mid is None:
                return None
            if mid == 'null':
                m = self.c.null_reply(deadline)
            elif isinstance(mid, tuple):
                # Either by its id or with id null (the daemon could not tell the id).
                c, i = self.c, mid[0]
                m = c._wait(lambda: c.replies.pop(i, None) or (
                    c.null_replies.pop(0) if c.null_replies else None), deadline, f'reply {i}')
            else:
                m = self.c.reply(mid, deadline)
        except (sscardd.Closed, OSError) as e:
            self.rec.count('closed')
            if not self.closed_ok():
                self.rec.violation(f'{self.name}: {method}: connection closed by the daemon, '
                                   f'which was not killed: {e}')
            raise Closed() from e
        except harness.HarnessError as e:
            self.rec.violation(f'{self.name}: {method} {params}: no answer in {deadline:.0f} s '
                               f'({e})')
            self.drop()
            raise Closed() from e
        finally:
            self.drain_events()
        m['_t0'], m['_t1'] = t0, time.monotonic()
        self.rec.count('answered')
        if 'error' in m:
            self.rec.count('errors')
            data = m['error'].get('data') or {}
            name = data.get('name')
            with self.rec.lock:
                key = name or str(m['error'].get('code'))
                self.rec.error_names[key] = self.rec.error_names.get(key, 0) + 1
            if name == 'SSC_EINTERNAL':
                self.rec.violation(f'{self.name}: {method}: SSC_EINTERNAL: {m["error"]}')
            if method and method.startswith(('card.', 'medical.')) and \
                    m['error'].get('code', 0) >= 1000 and not name:
                self.rec.violation(f'{self.name}: {method}: error without a name: {m["error"]}')
        return m

    # -- events
    def drain_events(self):
        if not self.c:
            return
        while self.c.events:
            ev = self.c.events.popleft().get('params') or {}
            self.rec.count('events')
            self.check_event(ev)

    def check_event(self, ev):
        typ, rid = ev.get('type'), ev.get('reader')
        slot = self.s.slot_of_id.get(rid)
        state = self.ev_state.get(rid)
        bad = None
        if typ in ('reader.added', 'reader.removed'):
            if state is True:
                bad = f'{typ} while a card is in'
            self.ev_state[rid] = False
        elif typ == 'card.inserted':
            if state is True:
                bad = 'card.inserted twice without card.removed'
            self.ev_state[rid] = True
        elif typ == 'card.ready':
            if state is False:
                bad = 'card.ready with no card in'
        elif typ == 'card.removed':
            if state is False:
                bad = 'card.removed with no card in'
            self.ev_state[rid] = False
        if bad:
            self.rec.violation(f'{self.name}: events of {rid}: {bad}: {ev}')
        atr = ev.get('atr')
        if atr and slot is not None and slot in CARD_SLOTS and self.sub_t0 is not None:
            cards = self.rec.cards_between(slot, self.sub_t0 - 1, time.monotonic())
            if not any(c.atr == atr.upper() for c in cards):
                self.rec.violation(f'{self.name}: event {typ} of {rid} has the ATR {atr} of no '
                                   f'card that was in it: {[c.name for c in cards]}')

    # -- the operations
    def run(self):
        try:
            self.loop()
        except Exception as e:      # noqa: BLE001 - a client's own failure is a finding
            import traceback
            self.rec.violation(f'{self.name}: the client failed: {e!r}\n'
                               f'{traceback.format_exc()}')

    def loop(self):
        ops = [(self.op_read_basic, 20), (self.op_read_ident, 8), (self.op_read_ssn, 5),
               (self.op_read_medical, 5), (self.op_read_txns, 3), (self.op_credentials, 3),
               (self.op_internal_auth, 3), (self.op_append, 8), (self.op_update, 6),
               (self.op_verify_pin, 5), (self.op_change_pin, 3), (self.op_reload_pin, 2),
               (self.op_unblock_pin, 1), (self.op_two_step, 1), (self.op_info, 5),
               (self.op_bad, 6)]
        funcs = [f for f, _ in ops]
        weights = [w for _, w in ops]
        while not self.s.stopping.is_set():
            if self.c is None and not self.connect():
                return
            op = self.rng.choices(funcs, weights)[0]
            try:
                op()
            except Closed:
                self.drop()
                continue
            time.sleep(self.rng.uniform(0.05, 0.6))
        self.drop()

    def pick_slot(self):
        """Mostly a reader with a card in it; now and then an empty one, the PSAM's, any."""
        r = self.rng.random()
        if r < 0.03:
            return PSAM_SLOT
        if r < 0.06:
            return EMPTY_SLOT
        now = time.monotonic()
        full = [s for s in CARD_SLOTS if self.rec.cards_between(s, now, now)]
        if full and r < 0.9:
            return self.rng.choice(full)
        return self.rng.choice(CARD_SLOTS)

    def check_ident(self, m, slot, what, number=None, ssn=None, card_id=None):
        """The answer's card data belongs to a card that was in slot between request and answer."""
        cards = self.rec.cards_between(slot, m['_t0'], m['_t1'])
        for c in cards:
            if (number is None or number == c.card_number) and (ssn is None or ssn == c.ssn) \
                    and (card_id is None or card_id.upper() == c.card_id):
                return c
        owner = [c.name for c in self.s.cards if number in (None, c.card_number) and
                 ssn in (None, c.ssn) and (card_id is None or card_id.upper() == c.card_id)]
        self.rec.violation(f'{self.name}: {what} on slot {slot} answered the data of '
                           f'{owner or "no known card"} (number {number}, ssn {ssn}, card_id '
                           f'{card_id}); cards in the reader meanwhile: {[c.name for c in cards]}')
        return None

    def card_call(self, method, params, slot):
        p = dict(params or {})
        p['reader'] = slot_id(slot)
        return self.call(method, p)

    def op_read_basic(self):
        slot = self.pick_slot()
        m = self.card_call('card.read_basic', {}, slot)
        if 'result' in m:
            r = m['result']
            self.check_ident(m, slot, 'card.read_basic', r.get('card_number'), r.get('ssn'),
                             r.get('card_id'))
            fields = r.get('standard', '').split('|')
            if len(fields) < 4 or fields[1] != r.get('ssn') or fields[2] != r.get('card_number'):
                self.rec.violation(f'{self.name}: read_basic standard {r.get("standard")} does '
                                   f'not match its fields')

    def op_read_ident(self):
        slot = self.pick_slot()
        m = self.card_call('card.read_items', {'file': 'SSSE/EF05', 'items': ['01', '07']}, slot)
        if 'result' in m:
            it = m['result']['items']
            self.check_ident(m, slot, 'read_items SSSE/EF05', it.get('07'), None, it.get('01'))

    def op_read_ssn(self):
        slot = self.pick_slot()
        m = self.card_call('card.read_items', {'file': 'SSSE/EF06', 'items': ['08']}, slot)
        if 'result' in m:
            self.check_ident(m, slot, 'read_items SSSE/EF06', None, m['result']['items'].get('08'))

    def op_read_medical(self):
        slot = self.pick_slot()
        self.card_call('card.read_items', {'file': 'DF04/EF05', 'items': ['31', '30']}, slot)

    def op_read_txns(self):
        slot = self.pick_slot()
        self.card_call('card.read_items', {'file': 'DF04/EF08', 'items': ['40']}, slot)

    def op_credentials(self):
        slot = self.pick_slot()
        m = self.card_call('medical.credentials', {}, slot)
        if 'result' in m:
            r = m['result']
            self.check_ident(m, slot, 'medical.credentials', r.get('mdtrt_cert_no'),
                             r.get('certno'), r.get('card_sn'))

    def op_internal_auth(self):
        self.card_call('card.internal_auth', {}, self.pick_slot())

    def op_two_step(self):
        slot = self.pick_slot()
        m = self.card_call('card.hsm_step1', {}, slot)
        if 'result' in m:
            fields = m['result']['step1'].split('|')
            self.check_ident(m, slot, 'card.hsm_step1', card_id=fields[3])
            m2 = self.call('card.hsm_step2', {'session': m['result']['session'],
                                               'key': '0000000000000000||'})
            if 'result' in m2:
                self.rec.violation(f'{self.name}: hsm_step2 with a made-up key succeeded')

    def op_info(self):
        if self.rng.random() < 0.5:
            m = self.call('system.info', None)
            if 'result' not in m:
                self.rec.violation(f'{self.name}: system.info failed: {m}')
        else:
            m = self.call('reader.list', None)
            if 'result' not in m:
                self.rec.violation(f'{self.name}: reader.list failed: {m}')

    # -- writes and PINs, with request_ids
    def rid(self):
        self.n += 1
        return f'soak-{self.index}-{self.n}'

    def write(self, method, params, slot, check):
        """A request that changes the card; repeated by request_id after a daemon kill."""
        rid = params.get('request_id')
        if rid:
            with self.rec.lock:
                self.rec.requests[rid] = (method, dict(params))
        p = dict(params)
        p['reader'] = slot_id(slot)
        t0 = time.monotonic()
        try:
            m = self.call(method, p)
        except Closed:
            if not rid:
                raise
            m = self.repeat(method, p)
            if m is None:
                raise
        if 'result' in m:
            check(m, rid, slot, t0)
        return m

    def repeat(self, method, p):
        """The request again, on a new connection, until it is answered (the daemon is back)."""
        self.drop()
        for _ in range(20):
            if self.s.stopping.is_set() or not self.connect():
                return None
            self.rec.count('repeats')
            try:
                m = self.call(method, p)
            except Closed:
                self.drop()
                continue
            if 'error' in m:
                name = (m['error'].get('data') or {}).get('name')
                if not name or name == 'SSC_EREQCONFLICT':
                    self.rec.violation(f'{self.name}: repeat of {method} {p.get("request_id")} '
                                       f'answered {m["error"]}')
            return m
        return None

    def confirm(self, m, rid, slot, t0, file, value):
        r = m['result']
        jid = r.get('journal_id')
        if not isinstance(jid, int):
            self.rec.violation(f'{self.name}: write answered without a journal_id: {r}')
            return
        self.rec.count('writes_confirmed')
        with self.rec.lock:
            self.rec.confirmed.append((jid, rid, file, value, slot, t0, m['_t1']))

    def op_append(self):
        slot = self.pick_slot()
        no = f'SOAK{self.rec.serial():08d}'
        t = {'time': '20261206093000', 'institution': 'H33010000007', 'settlement_no': no,
             'total': self.rng.randint(0, 100000), 'personal_account': 100, 'pooled': 0}
        params = {'file': 'DF04/EF08', 'items': {'40': t}}
        if self.rng.random() < 0.8:
            params['request_id'] = self.rid()

        def check(m, rid, slot, t0):
            if m['result'].get('items') != {'40': t}:
                self.rec.violation(f'{self.name}: append answered {m["result"]}, asked {t}')
            self.confirm(m, rid, slot, t0, 'DF04/EF08', no)
        self.write('card.write_items', params, slot, check)

    def op_update(self):
        slot = self.pick_slot()
        v = str(self.rng.randint(10, 99))
        params = {'file': 'DF04/EF05', 'items': {'31': v}, 'request_id': self.rid()}

        def check(m, rid, slot, t0):
            if m['result'].get('items') != {'31': v}:
                self.rec.violation(f'{self.name}: update answered {m["result"]}, asked 31={v}')
            self.confirm(m, rid, slot, t0, 'DF04/EF05', v)
        self.write('card.write_items', params, slot, check)

    def believed_pin(self, slot):
        c = self.s.occupant.get(slot)
        return self.s.pins.get(c.name) if c else '123456'

    def new_pin(self, old=None):
        while True:
            p = f'{self.rng.randint(0, 999999):06d}'
            if p not in INITIAL_PINS and p != old:
                return p

    def pin_done(self, slot, new):
        c = self.s.occupant.get(slot)
        if c:
            self.s.pins[c.name] = new

    def op_verify_pin(self):
        slot = self.pick_slot()
        pin = self.believed_pin(slot) if self.rng.random() < 0.9 else '000000'
        self.card_call('card.verify_pin', {'pin': pin}, slot)

    def op_change_pin(self):
        slot = self.pick_slot()
        old = self.believed_pin(slot)
        new = self.new_pin(old)
        params = {'old_pin': old, 'new_pin': new, 'request_id': self.rid()}
        self.write('card.change_pin', params, slot,
                   lambda m, rid, slot, t0: self.pin_done(slot, new))

    def op_reload_pin(self):
        slot = self.pick_slot()
        new = self.new_pin()
        self.write('card.reload_pin', {'new_pin': new, 'request_id': self.rid()}, slot,
                   lambda m, rid, slot, t0: self.pin_done(slot, new))

    def op_unblock_pin(self):
        slot = self.pick_slot()
        new = self.new_pin()
        self.write('card.unblock_pin', {'new_pin': new, 'request_id': self.rid()}, slot,
                   lambda m, rid, slot, t0: self.pin_done(slot, new))

    # -- bad requests, each with its documented answer
    def op_bad(self):
        self.rec.count('bad_requests')
        kind = self.rng.randrange(11)
        rid = slot_id(self.rng.choice(CARD_SLOTS))
        c = self.c
        if kind == 0:
            m = self.call('(not json)', None, msg_id='null', raw=b'{"jsonrpc": "2.0", "id": \n')
            self.want(m, -32700)
        elif kind == 1:
            self.want(self.call('no.such_method', None), -32601)
        elif kind == 2:
            i = c.new_id()
            m = self.call('(params array)', None, msg_id=i, raw=json.dumps(
                {'jsonrpc': '2.0', 'id': i, 'method': 'card.read_basic', 'params': [1]}) + '\n')
            self.want(m, -32602)
        elif kind == 3:
            i = c.new_id()
            m = self.call('(extra member)', None, msg_id=i, raw=json.dumps(
                {'jsonrpc': '2.0', 'id': i, 'method': 'system.info', 'param': {}}) + '\n')
            self.want(m, -32600)
        elif kind == 4:
            m = self.call('(batch)', None, msg_id='null', raw=json.dumps(
                [{'jsonrpc': '2.0', 'id': 1, 'method': 'system.info'}]) + '\n')
            self.want(m, -32600)
        elif kind == 5:
            self.want(self.call('card.verify_pin', {'pin': '12ab', 'reader': rid}), 1021)
        elif kind == 6:
            self.want(self.call('card.write_items', {'file': 'DF04/EF05', 'items': {'30': '12345'},
                                                     'reader': rid}), 1033)
        elif kind == 7:
            self.want(self.call('card.read_items', {'file': 'SSSE/EF99', 'items': ['01'],
                                                    'reader': rid}), 1032)
        elif kind == 8:
            # A notification: no answer at all; the connection still serves the next request.
            self.call('system.info', None, msg_id=None, raw=json.dumps(
                {'jsonrpc': '2.0', 'method': 'system.info'}) + '\n')
            self.op_info()
        elif kind == 9:
            i = c.new_id()
            deep = {'a': 1}
            for _ in range(20):
                deep = {'a': deep}
            m = self.call('(too deep)', None, msg_id=(i,), raw=json.dumps(
                {'jsonrpc': '2.0', 'id': i, 'method': 'system.info', 'params': deep}) + '\n')
            self.want(m, -32600)
        else:
            if self.rng.random() < 0.3:
                self.too_long()
            else:
                self.want(self.call('card.write_items', {
                    'file': 'DF04/EF08', 'items': {'40': {'time': 'x'}}, 'reader': rid,
                    'request_id': 'bad id \t'}), -32602)

    def too_long(self):
        """A line over max_request_bytes: -32600, then the connection is closed (the framing
        cannot be trusted any more)."""
        line = (b'{"jsonrpc":"2.0","id":1,"method":"system.info","params":{"x":"' +
                b'x' * 70000 + b'"}}\n')
        self.rec.count('ops')
        try:
            self.c.send_raw(line)
            self.c.wait_closed(OP_TIMEOUT_MS / 1000 + GRACE_S)
        except sscardd.Closed:
            pass
        except harness.HarnessError:
            self.rec.violation(f'{self.name}: a too long line left the connection open')
        except OSError:
            pass
        if self.closed_ok():
            self.drop()
            return
        self.rec.count('answered')
        if not self.c.null_replies or self.c.null_replies[0].get('error', {}).get('code') != -32600:
            self.rec.violation(f'{self.name}: a too long line was answered '
                               f'{self.c.null_replies} before the close')
        self.drop()

    def want(self, m, code):
        if m is None:
            return
        got = m.get('error', {}).get('code')
        if got != code:
            self.rec.violation(f'{self.name}: a bad request expected error {code}, got {m}')


# --- the run --------------------------------------------------------------------------------

class Soak:

    def __init__(self, seconds, seed):
        self.seconds = seconds
        self.seed = seed
        self.rng = random.Random(seed)
        self.rec = Record()
        self.stopping = threading.Event()
        self.occupant = {}            # slot -> SoakCard (what the main thread put there)
        self.pins = {}                # card name -> the PIN believed (clients' guess only)
        self.samples = []             # (daemon generation, t since its start, rss kB, fds)
        self.asan = self.asan_build()
        self.h = None

    @staticmethod
    def asan_build():
        try:
            with open(os.path.join(harness.BUILD_DIR, 'CMakeCache.txt')) as f:
                return 'SSC_SANITIZE:BOOL=ON' in f.read()
        except OSError:
            return False

    # -- set-up
    def setup(self):
        self.h = harness.Harness(None, readers=READERS, deadline=self.seconds + 1200,
                                 name='soak-desk-day')
        h = self.h
        h.start_pcscd()
        self.cards = make_cards(h)
        for c in self.cards:
            self.pins[c.name] = c.initial_pin
        self.psam = h.start_psam('gen2', slot=PSAM_SLOT)
        self.pki = hsmkit.make_pki(h)
        self.ks = hsmkit.KeyServer(h, self.pki, verbose=False).start()
        self.ks_down = None
        self.slot_of_id = {slot_id(s): s for s in range(READERS)}
        cfg = hsmkit.daemon_config(self.pki, timeout_ms=3000)
        self.d = sscardd.Daemon(h, config=cfg, op_timeout_ms=OP_TIMEOUT_MS, log_level='info',
                                in_mountns=True)
        self.d.start(timeout=60)
        self.daemon_t0 = time.monotonic()
        self.peek = crashkit.Peek(self.d.journal_path)
        self.learn_refs()

    def start_sim(self, card, slot):
        card.sim = harness.Sim(self.h, 'card', card.profile_path, slot, state=card.state_path,
                               name=card.name)
        with self.h._lock:
            self.h.sims.append(card.sim)
        self.rec.card_in(slot, card, time.monotonic())
        card.sim.start(timeout=20)
        card.slot = slot
        self.occupant[slot] = card
        self.rec.count('insertions')

    def stop_sim(self, card):
        slot = card.slot
        card.sim.stop()
        self.rec.card_out(slot, card, time.monotonic())
        card.slot = None
        self.occupant.pop(slot, None)

    def place(self, cards):
        """Puts these cards (at most one per card slot) in the card slots, the others out."""
        want = dict(zip(CARD_SLOTS, cards))
        for c in self.cards:
            if c.slot is not None and want.get(c.slot) is not c:
                self.stop_sim(c)
        for slot, c in want.items():
            if c.slot is None:
                if self.h.pcscd.alive():
                    self.h.wait_card(slot, present=False, timeout=20)
                self.start_sim(c, slot)
            elif not c.sim.status()['present']:
                self.rec.card_in(slot, c, time.monotonic())
                c.sim.insert()
                self.rec.count('insertions')
        cl = sscardd.Client(self.d.socket_path)
        try:
            for slot in want:
                self.d.wait_reader(cl, self.h.reader_name(slot), timeout=60, card=True,
                                   role='user')
        finally:
            cl.close()

    def learn_refs(self):
        """The journal names a card by a keyed hash of its number: learn each card's name from the
        audit row of one read on a known reader, with nothing else running."""
        rounds = [self.cards[i:i + len(CARD_SLOTS)]
                  for i in range(0, len(self.cards), len(CARD_SLOTS))]
        for group in rounds:
            self.place(group)
            cl = sscardd.Client(self.d.socket_path)
            try:
                for slot, c in zip(CARD_SLOTS, group):
                    r = cl.call('card.read_items', {'file': 'SSSE/EF05', 'items': ['07'],
                                                    'reader': slot_id(slot)}, timeout=60)
                    assert r['items']['07'] == c.card_number, (c.name, r)
            finally:
                cl.close()
            rows = sscardd.journal_settled(self.d, timeout=30)
            for slot, c in zip(CARD_SLOTS, group):
                mine = [r for r in rows if r['kind'] == 'audit' and
                        r['method'] == 'card.read_items' and r['reader'] == slot_id(slot)]
                c.ref = mine[-1]['card']
        refs = [c.ref for c in self.cards]
        assert len(set(refs)) == len(refs), f'journal refs not distinct: {refs}'
        # The run starts with the first eight in, the others out.
        self.place(self.cards[:len(CARD_SLOTS)])

    # -- chaos (main thread: processes must be started from it)
    def chaos_step(self):
        r = self.rng.random()
        slot = self.rng.choice(CARD_SLOTS)
        card = self.occupant.get(slot)
        out = [c for c in self.cards if c.slot is None]
        if card is None:
            if out:
                self.start_sim(self.rng.choice(out), slot)
            return
        st = self.sim_status(card)
        if st is not None and not st['present']:
            # Pulled (by us or by drop-after): put it back, or another card in its place.
            self.rec.card_out(slot, card, time.monotonic())
            if out and self.rng.random() < 0.4:
                self.swap(card, self.rng.choice(out), fast=self.rng.random() < 0.2)
            else:
                self.rec.card_in(slot, card, time.monotonic())
                card.sim.insert()
                self.rec.count('insertions')
            return
        if r < 0.35:
            card.sim.remove()
            # It stays out until a later step picks this slot and puts it (or another) in.
            self.rec.card_out(slot, card, time.monotonic())
            self.rec.count('pulls')
        elif r < 0.55:
            card.sim.arm_drop(self.rng.randint(1, 12))
            self.rec.count('midop_pulls')
        elif r < 0.8 and out:
            self.swap(card, self.rng.choice(out), fast=self.rng.random() < 0.2)
        else:
            pass

    def sim_status(self, card):
        try:
            return card.sim.status()
        except (OSError, harness.HarnessError):
            return None

    def swap(self, old, new, fast=False):
        slot = old.slot
        self.stop_sim(old)
        if not fast and self.h.pcscd.alive():
            try:
                self.h.wait_card(slot, present=False, timeout=10)
            except (harness.HarnessError, harness.PcscError):
                pass
        self.start_sim(new, slot)
        self.rec.count('swaps')

    def restart_pcscd(self):
        self.h.pcscd.restart(timeout=30)
        self.rec.count('pcscd_restarts')

    def kill_daemon(self):
        self.sample()
        with self.rec.lock:
            self.rec.daemon_gen += 1
        self.d.kill9()
        with self.rec.lock:
            self.rec.daemon_gen += 1
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.d.start(timeout=90)
        self.daemon_t0 = time.monotonic()
        self.rec.count('daemon_restarts')

    def hsm_fault(self):
        kind = self.rng.choice(['fail 503', 'refuse tls', 'drop 50', 'delay 4000', 'kill'])
        if kind == 'kill':
            self.ks.kill9()
        else:
            name, value = kind.split()
            self.ks.switch(name, value)
        self.ks_down = kind
        self.rec.count('hsm_outages')

    def hsm_heal(self):
        if self.ks_down == 'kill':
            self.ks = hsmkit.KeyServer(self.h, self.pki, verbose=False,
                                       name=f'hsm{self.rec.counts["hsm_outages"]}').start()
        elif self.ks_down:
            name = self.ks_down.split()[0]
            self.ks.switch(name, {'fail': 'none', 'refuse': 'none', 'drop': '0',
                                  'delay': '0'}[name])
        self.ks_down = None

    def sample(self):
        pid = self.d.pid
        try:
            with open(f'/proc/{pid}/status') as f:
                rss = int(next(line for line in f if line.startswith('VmRSS:')).split()[1])
            fds = len(os.listdir(f'/proc/{pid}/fd'))
        except (OSError, StopIteration):
            return
        self.samples.append((self.rec.daemon_gen, time.monotonic() - self.daemon_t0, rss, fds))

    def schedule(self):
        """(time from start, action) of the rare events, spread over the run."""
        D = self.seconds
        ev = []
        n = max(1, round(D / 300))
        ev += [((i + 0.75) / n * D, self.kill_daemon) for i in range(n)]
        n = max(1, round(D / 240))
        ev += [((i + 0.3) / n * D, self.restart_pcscd) for i in range(n)]
        n = max(2, round(D / 60))
        for i in range(n):
            t = (i + 0.15) / n * D
            ev += [(t, self.hsm_fault), (t + self.rng.uniform(5, 15), self.hsm_heal)]
        return sorted(ev, key=lambda e: e[0])

    def run_chaos(self):
        t_start = time.monotonic()
        events = self.schedule()
        next_sample = 0
        while True:
            now = time.monotonic() - t_start
            if now >= self.seconds:
                break
            if events and events[0][0] <= now:
                _, action = events.pop(0)
                action()
                continue
            if now >= next_sample:
                self.sample()
                next_sample = now + 2.0
            self.chaos_step()
            time.sleep(self.rng.uniform(0.3, 1.5))
        while events:               # a heal that fell after the end
            _, action = events.pop(0)
            if action == self.hsm_heal:
                action()
        if self.ks_down:
            self.hsm_heal()

    # -- the end
    def settle(self):
        """Every card back in a reader (in rounds), the PIN changes left unknown repeated, until
        every intent has its outcome."""
        self.hsm_heal()
        if not self.h.pcscd.alive():
            self.h.pcscd.start(timeout=30)
        for c in self.cards:
            if c.slot is not None:
                st = self.sim_status(c)
                if st is not None and not st['present']:
                    self.rec.card_out(c.slot, c, time.monotonic())
                    self.stop_sim(c)
        rounds = [self.cards[i:i + len(CARD_SLOTS)]
                  for i in range(0, len(self.cards), len(CARD_SLOTS))]
        for group in rounds + rounds:
            t0 = time.monotonic()
            self.place(group)
            t1 = time.monotonic()
            self.resolve(group, t0, t1)

    def pending_of(self, refs):
        rows = self.peek.query(
            "SELECT seq, card, file, detail FROM rows AS i WHERE kind = 'intent' AND NOT EXISTS "
            "(SELECT 1 FROM rows AS o WHERE o.intent <> 0 AND o.intent = i.seq AND "
            "o.kind = 'outcome')")      # intent <> 0: SQLite then uses the index rows_intent
        return [r for r in rows if r[1] in refs]

    def resolve(self, group, t0, t1):
        slot_of = {c.ref: c.slot for c in group}
        cl = sscardd.Client(self.d.socket_path)
        try:
            for c in group:
                # Any operation on the card resolves its interrupted writes (read back).
                cl.reply(cl.request('card.read_items', {'file': 'DF04/EF05', 'items': ['31'],
                                                        'reader': slot_id(c.slot)}), 60)
            for seq, ref, file, detail in self.pending_of(slot_of):
                rid = json.loads(detail).get('request_id')
                req = self.rec.requests.get(rid)
                if req is None:
                    continue
                method, params = req
                p = dict(params)
                p['reader'] = slot_id(slot_of[ref])
                cl.reply(cl.request(method, p), 60)
        finally:
            cl.close()
        t2 = time.monotonic()
        try:
            harness.wait_until(lambda: not self.pending_of(slot_of), 60, 'intents resolved')
        except harness.HarnessError:
            pass
        say(f'cards {[c.name for c in group]}: placed in {t1 - t0:.1f} s, read and repeated in '
            f'{t2 - t1:.1f} s, intents resolved in {time.monotonic() - t2:.1f} s; still pending: '
            f'{self.pending_of(slot_of)}')

    def check_end(self):
        rows = sscardd.journal_rows(self.d.journal_path)
        intents, outcomes = sscardd.intents_and_outcomes(rows)
        by_ref = {c.ref: c for c in self.cards}
        for seq, it in sorted(intents.items()):
            outs = outcomes.get(seq, [])
            if len(outs) != 1:
                self.rec.violation(f'intent {seq} ({it["file"]}, card '
                                   f'{getattr(by_ref.get(it["card"]), "name", it["card"])}) has '
                                   f'{len(outs)} outcomes: {outs}')
        # The confirmed writes: their intents applied, on a card that was in that reader.
        for jid, rid, file, value, slot, t0, t1 in self.rec.confirmed:
            it = intents.get(jid)
            if it is None:
                self.rec.violation(f'a confirmed write names journal_id {jid}, not an intent')
                continue
            det = it.get('detail') or {}
            if rid and det.get('request_id') != rid:
                self.rec.violation(f'confirmed write {rid}: intent {jid} carries '
                                   f'{det.get("request_id")}')
            if file == 'DF04/EF08' and det.get('settlement_no') != value:
                self.rec.violation(f'confirmed append {value}: intent {jid} is {det}')
            outs = outcomes.get(jid, [])
            if [o['method'] for o in outs] != ['applied']:
                self.rec.violation(f'confirmed write {rid or value}: intent {jid} outcome {outs}')
            card = by_ref.get(it['card'])
            if card not in self.rec.cards_between(slot, t0, t1):
                self.rec.violation(f'confirmed write {rid or value} on slot {slot} went to '
                                   f'{getattr(card, "name", it["card"])}, which was not there')
        # Each card's state file against the applied intents.
        for c in self.cards:
            mine = [(seq, intents[seq]) for seq in sorted(intents) if intents[seq]['card'] == c.ref]
            applied_txns, category, pin = [], c.initial_category, c.initial_pin
            unknown = []
            for seq, it in mine:
                outs = outcomes.get(seq, [])
                if len(outs) != 1 or outs[0]['method'] != 'applied':
                    if outs and outs[0]['method'] == 'partial':
                        self.rec.violation(f'{c.name}: intent {seq} partial: {outs}')
                    continue
                det = it.get('detail') or {}
                req = self.rec.requests.get(det.get('request_id'))
                if it['file'] == 'DF04/EF08':
                    applied_txns.insert(0, det.get('settlement_no'))
                elif it['file'] == 'DF04/EF05':
                    if req is None:
                        unknown.append(seq)
                        continue
                    category = req[1]['items']['31']
                elif it['file'] == 'PIN':
                    if req is None:
                        unknown.append(seq)
                        continue
                    pin = req[1]['new_pin']
                else:
                    self.rec.violation(f'{c.name}: intent {seq} of an unexpected file {it}')
            if unknown:
                self.rec.violation(f'{c.name}: applied intents {unknown} of no request of ours')
            try:
                with open(c.state_path) as f:
                    state = json.load(f)
            except FileNotFoundError:
                # A card never changed has no state file: it holds its profile's values.
                state = {'pin': c.initial_pin}
                on_card, got = list(c.initial_settlements), c.initial_category
            else:
                on_card = crashkit.settlements_on_card(state)
                got = crashkit.category_on_card(state)
            want = (applied_txns + c.initial_settlements)[:c.capacity]
            if len(on_card) != len(set(on_card)):
                self.rec.violation(f'{c.name}: a settlement doubled on the card: {on_card}')
            if on_card != want:
                self.rec.violation(f'{c.name}: DF04/EF08 holds {on_card}, the journal says '
                                   f'{want}')
            if got != category:
                self.rec.violation(f'{c.name}: DF04/EF05 31 holds {got!r}, the journal says '
                                   f'{category!r}')
            if state.get('pin') != pin:
                self.rec.violation(f'{c.name}: the card\'s PIN is not the one the journal says '
                                   f'was applied last')
        say(f'{len(intents)} intents, {len(self.rec.confirmed)} confirmed writes checked')
        rc, out = sscardd.journal_verify(self.d.journal_path)
        if rc != 0:
            self.rec.violation(f'sscardctl journal verify: {rc}: {out}')

    def warm_up(self):
        """Seconds of a daemon's life before its RSS and fds are expected flat (its journal's
        page cache, the key server's TLS library, the readers' threads settle first)."""
        return min(90.0, max(45.0, self.seconds / 4))

    def check_flat(self):
        """RSS and fds of each daemon lifetime long enough to judge: < 10 % growth."""
        warm = self.warm_up()
        report = []
        for gen in sorted({s[0] for s in self.samples}):
            ss = [s for s in self.samples if s[0] == gen and s[1] >= warm]
            if len(ss) < 12:
                continue
            for i, what in ((2, 'RSS'), (3, 'open fds')):
                first = statistics.median(s[i] for s in ss[:5])
                last = statistics.median(s[i] for s in ss[-5:])
                growth = (last - first) / first if first else 0
                report.append(f'{what} {first}->{last} ({growth:+.1%}, daemon {gen})')
                if growth >= 0.10:
                    if what == 'RSS' and self.asan:
                        continue     # ASan's quarantine: see the module's docstring
                    self.rec.violation(f'sscardd {what} grew {growth:.1%} after warm-up '
                                       f'({first} -> {last}, daemon {gen}, over '
                                       f'{ss[-1][1] - ss[0][1]:.0f} s)')
        return report

    def check_sanitizers(self):
        for name in os.listdir(self.h.dir):
            if name.endswith('.log'):
                with open(os.path.join(self.h.dir, name), 'rb') as f:
                    text = f.read().decode('utf-8', 'replace')
                m = SAN_PATTERN.search(text)
                if m:
                    self.rec.violation(f'sanitizer report in {name}: '
                                       f'{text[m.start():m.start() + 2000]}')

    def run(self):
        t0 = time.monotonic()
        try:
            self.setup()
            say(f'set up (ASan build: {self.asan}); {CLIENTS} clients for {self.seconds:.0f} s')
            clients = [SoakClient(self, i, i < SUBSCRIBERS) for i in range(CLIENTS)]
            for c in clients:
                c.start()
            self.run_chaos()
            self.stopping.set()
            for c in clients:
                c.join(OP_TIMEOUT_MS / 1000 + GRACE_S + 30)
                if c.is_alive():
                    self.rec.violation(f'{c.name} still waiting after the end')
            say('chaos over; every card back in a reader to resolve its intents')
            self.settle()
            say('settled; checking the journal and the cards')
            self.sample()
            rc = self.d.stop(timeout=60)
            if rc != 0:
                self.rec.violation(f'sscardd exited with status {rc} at its stop')
            for c in self.cards:
                if c.sim:
                    c.sim.stop()
            self.check_end()
            flat = self.check_flat()
            self.check_sanitizers()
        except Exception as e:      # noqa: BLE001 - the harness failing is a failure of the run
            import traceback
            self.rec.violation(f'the soak itself failed: {e!r}\n{traceback.format_exc()}')
            flat = []
        finally:
            if self.h:
                self.h.failed = bool(self.rec.violations)
                self.h.close()
        k = self.rec.counts
        errors = ' '.join(f'{n}={v}' for n, v in sorted(self.rec.error_names.items(),
                                                         key=lambda kv: -kv[1])[:12])
        sys.stderr.write(f'soak: error answers: {errors}\nsoak: {"; ".join(flat)}\n')
        for v in self.rec.violations[:50]:
            sys.stderr.write(f'  {v}\n')
        print(f'soak: {time.monotonic() - t0:.0f} s, seed {self.seed}: '
              f'operations={k["ops"]} answered={k["answered"]} (errors {k["errors"]}) '
              f'closed={k["closed"]} repeats={k["repeats"]} writes_confirmed='
              f'{k["writes_confirmed"]} bad_requests={k["bad_requests"]} events={k["events"]} '
              f'insertions={k["insertions"]} pulls={k["pulls"]} midop_pulls={k["midop_pulls"]} '
              f'swaps={k["swaps"]} pcscd_restarts={k["pcscd_restarts"]} '
              f'daemon_restarts={k["daemon_restarts"]} hsm_outages={k["hsm_outages"]} '
              f'violations={len(self.rec.violations)}', flush=True)
        return 1 if self.rec.violations else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=None)
    ap.add_argument('--minutes', type=float, default=None)
    ap.add_argument('--seed', type=int, default=None)
    a = ap.parse_args()
    seconds = a.seconds if a.seconds is not None else (a.minutes or 2) * 60
    seed = a.seed if a.seed is not None else int(time.time()) % 100000
    missing = harness.missing_requirements()
    if missing:
        print('soak: cannot run, missing: ' + ', '.join(missing), file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    return Soak(seconds, seed).run()


if __name__ == '__main__':
    sys.exit(main())
