#!/usr/bin/python3
"""sscardd end to end, the PIN methods (issue 4): card.verify_pin, card.change_pin, card.reload_pin
and card.unblock_pin against simulated gen2 (DES) and gen3 (SM4) cards with their PSAMs, through a
real pcscd + vpcd + sscard-sim + sscardd and a client on the socket.

- right PIN, wrong PIN (retries_left falls 2, 1; std_code -51), blocked (-52, also the pin-blocked
  profile), change (the new PIN works, the old one fails), reload (PSAM MAC) and unblock (PSAM PIN
  block and MAC) of a blocked PIN, after which the new PIN verifies;
- what the card holds is checked independently in the simulator's state file (pin, pin_tries_left);
- format errors (letters, 3 digits, 13 digits, ...) are SSC_EPINFORMAT (-33) and send NO APDU (the
  simulators' apdus counters do not move); the new-PIN policies (SSC_EPININITIAL, SSC_EPINSAME, -36;
  SSC_EPINNOTCHANGED, -35, with refuse_initial_pin) are refused before any APDU too;
- no PIN value (as digits or as the BCD hex of an APDU) ever appears in the daemon's log at trace
  level, in `sscardctl journal export` (where the PIN calls are audited), or in the journal's
  files;
- after the calls, no PIN (digits or BCD) is left anywhere in the daemon's memory (/proc/PID/mem).

Expected values are written by hand from firmware-stubs/profiles/{gen2,gen3,pin-blocked}.json
(PINs 123456 / 888888, pin_tries default 3, pin-blocked pin_tries_left 0), docs/api.md (codes) and
docs/simulator.md (VERIFY/CHANGE/RELOAD/UNBLOCK behaviour).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_pin.py [-k name]
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

GEN2, GEN3 = 0, 1            # card slots (one vpcd entry)
DES_PSAM, SM4_PSAM = 2, 3    # PSAM slots (the other entry)


class PinCase(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.pins_used = set()

    # The PIN and tries left of each shipped profile used here, copied from its JSON file.
    PROFILE_PIN = {'gen2': ('123456', 3), 'gen3': ('888888', 3), 'pin-blocked': ('123456', 0),
                   'gen2-wrongkey': ('123456', 3)}

    def start(self, cards, config=None):
        """cards: {slot: profile}; PSAMs of both algorithms; sscardd at trace level."""
        self.cards = {slot: self.h.start_card(p, slot=slot, state=True)
                      for slot, p in cards.items()}
        self.profiles = dict(cards)
        self.psams = [self.h.start_psam('gen2', slot=DES_PSAM),
                      self.h.start_psam('gen3', slot=SM4_PSAM)]
        self.start_daemon(log_level='trace', config=config)
        roles = {slot: 'user' for slot in cards}
        roles.update({DES_PSAM: 'psam', SM4_PSAM: 'psam'})
        self.wait_roles(roles)

    # -- calls
    def pin_state(self, slot):
        """(pin, pin_tries_left) as the card holds them: its state file, or, before the card
        saved anything, the profile's values."""
        st = self.cards[slot].state()
        if st is None:
            return self.PROFILE_PIN[self.profiles[slot]]
        return st['pin'], st['pin_tries_left']

    def pin_call(self, slot, method, **params):
        for k in ('pin', 'old_pin', 'new_pin'):
            if isinstance(params.get(k), str) and len(params[k]) >= 5:
                self.pins_used.add(params[k])   # shorter strings occur in any log
        params['reader'] = slot_id(slot)
        return self.c.call(method, params)

    def pin_error(self, slot, method, **params):
        try:
            r = self.pin_call(slot, method, **params)
        except sscardd.RpcError as e:
            return e
        raise AssertionError(f'{method} succeeded: {r}')

    def assertWrong(self, slot, left, method='card.verify_pin', **params):
        e = self.pin_error(slot, method, **params)
        self.assertRpcError(e, 'SSC_EPINWRONG', std_code=-51, code=1019)
        self.assertEqual(e.retries_left, left, e)
        self.assertEqual(e.sw, f'63C{left}', e)
        self.assertEqual(e.reader, slot_id(slot))
        # For the desk: the tries in words and the right number; the SW only in data.sw.
        self.assertEqual(e.message, f'wrong PIN: {left} {"try" if left == 1 else "tries"} left')
        self.assertEqual(self.pin_state(slot)[1], left)

    # docs/errors.md: the failure that uses the last try (63C0) and every try after it (6983)
    # are SSC_EPINBLOCKED (-52) with retries_left 0.
    BLOCKED_MESSAGES = {'63C0': 'wrong PIN, and that was the last try: the PIN is now blocked',
                        '6983': 'the PIN is blocked'}

    def assertBlocked(self, slot, method='card.verify_pin', **params):
        e = self.pin_error(slot, method, **params)
        self.assertRpcError(e, 'SSC_EPINBLOCKED', std_code=-52, code=1020)
        self.assertEqual(e.retries_left, 0, e)
        self.assertEqual(e.message, self.BLOCKED_MESSAGES.get(e.sw), e)
        self.assertEqual(self.pin_state(slot)[1], 0)

    def assertVerifies(self, slot, pin):
        self.assertEqual(self.pin_call(slot, 'card.verify_pin', pin=pin), {'verified': True})
        self.assertEqual(self.pin_state(slot), (pin, 3))

    def apdu_counts(self):
        return [s.status()['apdus'] for s in list(self.cards.values()) + self.psams]

    # -- secrecy
    def assertNoPinAnywhere(self):
        """No PIN used in this test appears in the daemon's log (trace level: APDUs included,
        where a PIN would show as its BCD digits), the journal export or the journal's files."""
        self.assertTrue(self.pins_used)
        log = self.d.log_text()
        self.assertIn(' trace apdu ', log)        # the APDU trace was on
        self.assertIn(' > 0020', log)             # ... and VERIFY went through it (masked)
        rows = sscardd.journal_settled(self.d)
        self.assertIn(('card.verify_pin', 'SSC_OK'),
                      {(r['method'], r['result']) for r in rows if r['kind'] == 'audit'})
        export = '\n'.join(str(r) for r in rows)
        raw = b''
        for suffix in ('', '-wal'):
            path = self.d.journal_path + suffix
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    raw += f.read()
        # Chain hashes and keyed refs are long lower-case hex (the APDU trace is upper case):
        # a PIN's digits turn up in them by chance (about once in 500 exports), so blank them.
        hashes = re.compile(r'[0-9a-f]{32,}')
        log = hashes.sub('#', log)
        export = hashes.sub('#', export)
        raw = re.sub(rb'[0-9a-f]{32,}', b'#', raw)
        for pin in self.pins_used:
            self.assertNotIn(pin, log, f'PIN {pin} in the daemon log')
            self.assertNotIn(pin, export, f'PIN {pin} in the journal export')
            self.assertNotIn(pin.encode(), raw, f'PIN {pin} in the journal file')


class Lifecycle(PinCase):

    def lifecycle(self, slot, initial, wrong, a, b, c):
        """verify right / wrong / blocked, reload, change, unblock, on the card in slot."""
        self.assertEqual(self.pin_state(slot), (initial, 3))
        self.assertVerifies(slot, initial)
        # Wrong: the counter falls 2, 1; a right PIN resets it.
        self.assertWrong(slot, 2, pin=wrong)
        self.assertWrong(slot, 1, pin=wrong)
        self.assertVerifies(slot, initial)
        # Three wrong in a row: the last try answers 63C0, which is "blocked".
        self.assertWrong(slot, 2, pin=wrong)
        self.assertWrong(slot, 1, pin=wrong)
        self.assertBlocked(slot, pin=wrong)
        # Blocked: even the right PIN is refused (6983), and so is a change.
        self.assertBlocked(slot, pin=initial)
        self.assertBlocked(slot, 'card.change_pin', old_pin=initial, new_pin=a)
        self.assertEqual(self.pin_state(slot), (initial, 0))

        # Reload (PSAM MAC) lifts the block and sets the new PIN.
        self.assertEqual(self.pin_call(slot, 'card.reload_pin', new_pin=a), {'reloaded': True})
        self.assertEqual(self.pin_state(slot), (a, 3))
        self.assertVerifies(slot, a)
        self.assertWrong(slot, 2, pin=initial)
        self.assertVerifies(slot, a)

        # Change: old -> new; the new one works, the old one fails.
        self.assertEqual(self.pin_call(slot, 'card.change_pin', old_pin=a, new_pin=b),
                         {'changed': True})
        self.assertEqual(self.pin_state(slot), (b, 3))
        self.assertVerifies(slot, b)
        self.assertWrong(slot, 2, pin=a)
        # A change with a wrong old PIN costs a try and changes nothing.
        self.assertWrong(slot, 1, 'card.change_pin', old_pin=a, new_pin=c)
        self.assertEqual(self.pin_state(slot), (b, 1))
        self.assertVerifies(slot, b)

        # Block it again; unblock (PIN block enciphered by the PSAM, and a MAC) sets a new PIN.
        for left in (2, 1):
            self.assertWrong(slot, left, pin=a)
        self.assertBlocked(slot, pin=a)
        self.assertEqual(self.pin_call(slot, 'card.unblock_pin', new_pin=c), {'unblocked': True})
        self.assertEqual(self.pin_state(slot), (c, 3))
        self.assertVerifies(slot, c)
        self.assertWrong(slot, 2, pin=b)
        self.assertVerifies(slot, c)

    def test_gen2_des(self):
        self.start({GEN2: 'gen2'})
        # gen2.json: "pin": "123456"; the odd-length PIN exercises the F padding.
        self.lifecycle(GEN2, '123456', '918273', '246813', '5792468', '31415926')
        self.assertNoPinAnywhere()

    def test_gen3_sm4(self):
        self.start({GEN3: 'gen3'})
        # gen3.json: "pin": "888888"; SM4 reload MAC and a 16-byte unblock PIN block.
        self.lifecycle(GEN3, '888888', '736251', '642531', '80808', '1357924680')
        self.assertNoPinAnywhere()

    def test_wrong_pin_names_and_messages(self):
        # Which name comes when (docs/errors.md): 63C2 and 63C1 are SSC_EPINWRONG with 2 and 1
        # tries left; the attempt that uses the last try answers 63C0: SSC_EPINBLOCKED with 0,
        # as does every later one (6983). Through sscardctl too: "1 try left", not "1 tries".
        self.start({GEN3: 'gen3'})
        wrong = '736251'
        self.pins_used.add(wrong)
        for left, sw in ((2, '63C2'), (1, '63C1')):
            rc, out, err = sscardd.ctl('--socket', self.d.socket_path, 'call', 'card.verify_pin',
                                       f'{{"pin":"{wrong}","reader":"{slot_id(GEN3)}"}}')
            self.assertEqual(rc, 1, err)
            self.assertEqual(out, '')
            word = 'try' if left == 1 else 'tries'
            self.assertEqual(err, f'sscardctl: SSC_EPINWRONG: wrong PIN: {left} {word} left '
                             f'(code 1019), standard code -51, SW {sw}, reader {slot_id(GEN3)}\n')
            self.assertEqual(self.pin_state(GEN3)[1], left)
        rc, out, err = sscardd.ctl('--socket', self.d.socket_path, 'call', 'card.verify_pin',
                                   f'{{"pin":"{wrong}","reader":"{slot_id(GEN3)}"}}')
        self.assertEqual(rc, 1, err)
        self.assertEqual(err, 'sscardctl: SSC_EPINBLOCKED: wrong PIN, and that was the last try: '
                         'the PIN is now blocked (code 1020), standard code -52, SW 63C0, '
                         f'no tries left, reader {slot_id(GEN3)}\n')
        e = self.pin_error(GEN3, 'card.verify_pin', pin='888888')
        self.assertRpcError(e, 'SSC_EPINBLOCKED', std_code=-52, code=1020)
        self.assertEqual((e.sw, e.retries_left, e.message), ('6983', 0, 'the PIN is blocked'))
        self.assertEqual(self.pin_call(GEN3, 'card.reload_pin', new_pin='642531'),
                         {'reloaded': True})
        self.assertVerifies(GEN3, '642531')
        self.assertNoPinAnywhere()

    def test_pin_blocked_profile(self):
        # pin-blocked.json: "pin": "123456", "pin_tries_left": 0.
        self.start({GEN2: 'pin-blocked'})
        self.assertBlocked(GEN2, pin='123456')
        self.assertBlocked(GEN2, 'card.change_pin', old_pin='123456', new_pin='445566')
        self.assertEqual(self.pin_call(GEN2, 'card.reload_pin', new_pin='445566'),
                         {'reloaded': True})
        self.assertVerifies(GEN2, '445566')
        self.assertNoPinAnywhere()


class Refusals(PinCase):

    def test_format_errors_send_nothing(self):
        self.start({GEN2: 'gen2', GEN3: 'gen3'})
        before = self.apdu_counts()
        bad = ['12a456', '123', '1234567890123', '', '12 456', '+123456', '-12345', '１２３４５６',
               '0x1234', '12345\u00b2']
        for slot in (GEN2, GEN3):
            for pin in bad:
                for method, params in (
                        ('card.verify_pin', {'pin': pin}),
                        ('card.change_pin', {'old_pin': pin, 'new_pin': '246813'}),
                        ('card.change_pin', {'old_pin': '888888', 'new_pin': pin}),
                        ('card.reload_pin', {'new_pin': pin}),
                        ('card.unblock_pin', {'new_pin': pin})):
                    e = self.pin_error(slot, method, **params)
                    self.assertRpcError(e, 'SSC_EPINFORMAT', std_code=-33, code=1021)
                    self.assertIsNone(e.retries_left)
                    if len(pin) > 2:
                        self.assertNotIn(pin, e.message)
        # Not a string, or missing: a params error.
        for method, params in (('card.verify_pin', {'pin': 123456}),
                               ('card.verify_pin', {}),
                               ('card.change_pin', {'old_pin': '123456'}),
                               ('card.reload_pin', {'new_pin': None}),
                               ('card.unblock_pin', {'pin': '246813'})):
            e = self.pin_error(GEN2, method, **params)
            self.assertRpcError(e, 'SSC_EINVAL', std_code=-14, code=-32602)
        # No APDU reached a card or a PSAM, and the cards' counters are untouched.
        self.assertEqual(self.apdu_counts(), before)
        for slot in (GEN2, GEN3):
            self.assertIsNone(self.cards[slot].state())       # nothing changed on the cards
        self.assertVerifies(GEN2, '123456')
        self.assertVerifies(GEN3, '888888')
        self.assertNoPinAnywhere()

    def test_new_pin_policies(self):
        self.start({GEN2: 'gen2', GEN3: 'gen3'})
        before = self.apdu_counts()
        # [card] initial_pins defaults to both initial PINs in use, 123456 (gen2.json) and 888888
        # (gen3.json): neither is ever a new PIN, on any card, without reading the card.
        for slot, old in ((GEN2, '123456'), (GEN3, '888888')):
            for initial in ('123456', '888888'):
                e = self.pin_error(slot, 'card.change_pin', old_pin=old, new_pin=initial)
                self.assertRpcError(e, 'SSC_EPININITIAL', std_code=-36, code=1022)
                self.assertEqual(e.message, 'the new PIN must not be an initial PIN')
                for method in ('card.reload_pin', 'card.unblock_pin'):
                    e = self.pin_error(slot, method, new_pin=initial)
                    self.assertRpcError(e, 'SSC_EPININITIAL', std_code=-36, code=1022)
        # The new PIN must differ from the old one.
        for slot in (GEN2, GEN3):
            e = self.pin_error(slot, 'card.change_pin', old_pin='246813', new_pin='246813')
            self.assertRpcError(e, 'SSC_EPINSAME', std_code=-36, code=1023)
        self.assertEqual(self.apdu_counts(), before)
        for slot in (GEN2, GEN3):
            self.assertIsNone(self.cards[slot].state())       # the PINs are unchanged
        self.assertVerifies(GEN2, '123456')
        self.assertVerifies(GEN3, '888888')
        self.assertNoPinAnywhere()

    def test_initial_pins_configured(self):
        # A list of one: only 888888 is an initial PIN here, so 123456 may be a new PIN; the gen2
        # card (whose PIN is 123456) still changes away from it.
        self.start({GEN2: 'gen2', GEN3: 'gen3'}, config={'card': {'initial_pins': '888888'}})
        e = self.pin_error(GEN2, 'card.reload_pin', new_pin='888888')
        self.assertRpcError(e, 'SSC_EPININITIAL', std_code=-36)
        self.assertEqual(self.pin_call(GEN3, 'card.change_pin', old_pin='888888',
                                       new_pin='123456'), {'changed': True})
        self.assertVerifies(GEN3, '123456')
        self.assertIn('1 initial PIN(s)', self.d.log_text())
        self.assertNotIn('deprecated', self.d.log_text())
        self.assertNoPinAnywhere()

    def test_initial_pin_deprecated_key(self):
        # The old one-PIN key still loads (docs/operations.md), as a list of that PIN, with a
        # warning that names the file, the line and the key to use.
        self.start({GEN2: 'gen2', GEN3: 'gen3'}, config={'card': {'initial_pin': '123456'}})
        e = self.pin_error(GEN3, 'card.change_pin', old_pin='888888', new_pin='123456')
        self.assertRpcError(e, 'SSC_EPININITIAL', std_code=-36)
        self.assertEqual(self.pin_call(GEN2, 'card.reload_pin', new_pin='888888'),
                         {'reloaded': True})
        self.assertVerifies(GEN2, '888888')
        log = self.d.log_text()
        self.assertRegex(log, r' warn +config: \S+sscardd\.conf:\d+: \[card\] initial_pin is '
                              r'deprecated: .* write initial_pins instead')
        self.assertIn('1 initial PIN(s)', log)
        self.assertNoPinAnywhere()

    def test_initial_pin_and_pins_refused_together(self):
        # Both keys in one file: a configuration error at start, naming both lines.
        d = sscardd.Daemon(self.h, config={'card': {'initial_pins': '123456 888888',
                                                    'initial_pin': '888888'}})
        with self.assertRaises(harness.HarnessError) as cm:
            d.start(timeout=5.0)
        self.assertIn('[card] initial_pin: set initial_pins only', str(cm.exception))

    def test_reload_unblock_refused_by_a_card_of_other_keys(self):
        # gen2-wrongkey: the PSAM's MAC is not the card's (6988, no try counted): refused with
        # SSC_EAUTHFAILED, and the PIN stays what it was.
        self.start({GEN2: 'gen2-wrongkey'})
        for method in ('card.reload_pin', 'card.unblock_pin'):
            e = self.pin_error(GEN2, method, new_pin='246813')
            self.assertRpcError(e, 'SSC_EAUTHFAILED', std_code=-0x6988, code=1024)
            self.assertEqual(e.sw, '6988')
        self.assertIsNone(self.cards[GEN2].state())
        self.assertVerifies(GEN2, '123456')
        self.assertNoPinAnywhere()

    def test_refuse_initial_pin(self):
        self.start({GEN2: 'gen2', GEN3: 'gen3'},
                   config={'card': {'refuse_initial_pin': 'yes'}})
        before = self.apdu_counts()
        # Both initial PINs of the default list are refused for VERIFY, before any APDU.
        for slot, pin in ((GEN2, '123456'), (GEN3, '888888')):
            e = self.pin_error(slot, 'card.verify_pin', pin=pin)
            self.assertRpcError(e, 'SSC_EPINNOTCHANGED', std_code=-35, code=1043)
        self.assertEqual(self.apdu_counts(), before)
        # The holders change them; then they verify.
        self.assertEqual(self.pin_call(GEN2, 'card.change_pin', old_pin='123456',
                                       new_pin='606162'), {'changed': True})
        self.assertVerifies(GEN2, '606162')
        self.assertEqual(self.pin_call(GEN3, 'card.change_pin', old_pin='888888',
                                       new_pin='717273'), {'changed': True})
        self.assertVerifies(GEN3, '717273')
        self.assertNoPinAnywhere()

    def test_malformed_request_pin_not_logged(self):
        # Was a bug (fixed in src/rpc.c rpc_handle_line: the log gets the line and column of a
        # parse error, the reply alone gets jansson's text): jansson's parse error text quotes
        # the offending token ("... near '"2468135'"), so a PIN inside a request that does not
        # parse (a control character or \u0000 in the string, a cut-off line) reached the log.
        self.start({GEN2: 'gen2'})
        for line in (b'{"jsonrpc":"2.0","id":7,"method":"card.verify_pin",'
                     b'"params":{"pin":"2468135\\u0000"}}\n',
                     b'{"jsonrpc":"2.0","id":8,"method":"card.verify_pin",'
                     b'"params":{"pin":"2468135\t"}}\n',
                     b'{"jsonrpc":"2.0","id":9,"method":"card.verify_pin",'
                     b'"params":{"pin":"2468135\n'):
            self.c.send_raw(line)
            reply = self.c.null_reply()
            self.assertEqual(reply['error']['code'], -32700)
        self.assertEqual(self.c.call('system.info')['api_level'], 1)   # all answered
        self.assertIn('parse error', self.d.log_text())
        self.assertNotIn('2468135', self.d.log_text())


SCAN_CHUNK = 1 << 20                # read /proc/PID/mem a mebibyte at a time
MAX_SCANNED_MAPPING = 256 << 20     # larger mappings are ASan's shadow or reserve (terabytes)


def scan_memory(pid, needles):
    """{needle: [mapping names]} of every place the process's writable or anonymous memory
    (heap, thread stacks, library data) holds one of needles (bytes). Read through
    /proc/PID/mem, which root may read."""
    hits = {n: [] for n in needles}
    with open(f'/proc/{pid}/maps') as f:
        maps = f.read().splitlines()
    with open(f'/proc/{pid}/mem', 'rb', 0) as mem:
        for line in maps:
            parts = line.split()
            name = parts[5] if len(parts) > 5 else '[anon]'
            if 'r' not in parts[1] or name in ('[vvar]', '[vsyscall]', '[vdso]') or \
                    (name.startswith('/') and 'w' not in parts[1]):
                continue           # code and read-only data of files cannot hold a PIN
            start, end = (int(x, 16) for x in parts[0].split('-'))
            if end - start > MAX_SCANNED_MAPPING:
                continue           # a sanitizer's shadow or reserved space, not the heap
            # In chunks that overlap by a needle's length, so that nothing is missed at a seam.
            overlap = max(len(n) for n in needles) - 1
            pos, tail = start, b''
            while pos < end:
                try:
                    mem.seek(pos)
                    chunk = mem.read(min(SCAN_CHUNK, end - pos))
                except OSError:
                    break
                if not chunk:
                    break
                data = tail + chunk
                for n in needles:
                    if n in data and name not in hits[n]:
                        hits[n].append(name)
                tail = data[-overlap:] if overlap else b''
                pos += len(chunk)
    return hits


class Memory(PinCase):

    def test_pins_wiped_from_memory(self):
        # After the calls, no PIN is left in the daemon's memory: neither as the digits of the
        # request nor as the BCD bytes of an APDU or a PSAM PIN block. 12-digit PINs, so that a
        # 6-byte BCD form cannot turn up by chance.
        self.start({GEN2: 'gen2', GEN3: 'gen3'})
        pins = {'reload': '120934875601', 'change': '564738291023', 'unblock': '908172635445',
                'wrong': '777766665555', 'gen3': '246802468024'}
        self.assertEqual(self.pin_call(GEN2, 'card.reload_pin', new_pin=pins['reload']),
                         {'reloaded': True})
        self.assertVerifies(GEN2, pins['reload'])
        self.assertWrong(GEN2, 2, pin=pins['wrong'])
        self.assertEqual(self.pin_call(GEN2, 'card.change_pin', old_pin=pins['reload'],
                                       new_pin=pins['change']), {'changed': True})
        self.assertEqual(self.pin_call(GEN2, 'card.unblock_pin', new_pin=pins['unblock']),
                         {'unblocked': True})
        self.assertEqual(self.pin_call(GEN3, 'card.unblock_pin', new_pin=pins['gen3']),
                         {'unblocked': True})
        self.assertVerifies(GEN3, pins['gen3'])
        bad = ['12093487560x', '1209348756011']                  # refused formats
        for pin in bad:
            e = self.pin_error(GEN2, 'card.verify_pin', pin=pin)
            self.assertRpcError(e, 'SSC_EPINFORMAT')
        self.assertEqual(self.c.call('system.info')['api_level'], 1)   # everything answered
        needles = [p.encode() for p in list(pins.values()) + bad]
        needles += [bytes.fromhex(p) for p in pins.values()]
        try:
            hits = scan_memory(self.d.pid, needles)
        except PermissionError as e:
            self.skipTest(f'cannot read the daemon\'s memory: {e}')
        self.assertEqual({n: h for n, h in hits.items() if h}, {})
        # The scan does find what is meant to stay: the reader id.
        self.assertTrue(scan_memory(self.d.pid, [slot_id(GEN2).encode()])[
            slot_id(GEN2).encode()])


if __name__ == '__main__':
    unittest.main(verbosity=2)
