#!/usr/bin/python3
"""The simulated card and PSAM through real PC/SC: pcscd + vpcd + sscard-sim, a terminal in pyscard.

Each test has its own pcscd (private namespaces, tests/e2e/harness.py) with the card on slot 0 and the
PSAM on slot 1, and acts as a counter terminal would: external authentication through the PSAM (DES
and SM4), internal authentication, PIN verify / change, a plain UPDATE RECORD after authentication, an
APPEND RECORD with a PSAM MAC, removal in the middle of a transaction, kill -9 in a loop of writes, and
restarts that keep the card's state. The test never computes a key or a cryptogram itself: the PSAM
does (so a wrong answer from either side shows), and the values checked are written by hand from
firmware-stubs/profiles/*.json and spec ssc-card.md §12.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_sim_pcsc.py [-k name]
"""

import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PcscError  # noqa: E402

OK = 0x9000
SELECT_SSSE = '00A404000F7378312E73682EC9E7BBE1B1A3D5CF'
SELECT_DF04 = '00A4040006D15600000503'
SELECT_PSAM_APP = '00A4040006D15600000590'


class Profile:
    """What a test needs of a profile, copied by hand from its JSON file."""

    def __init__(self, name, alg, atr, card_div, region, pin, expiry):
        self.name = name
        self.alg = alg                          # 'des' or 'sm4'
        self.atr = bytes.fromhex(atr)
        self.card_div = bytes.fromhex(card_div)  # last 8 historical bytes of the ATR (not TCK)
        self.city_div = region.encode() + b'sx'  # ASCII region code ‖ "sx" (spec §12.2)
        self.pin = pin
        self.expiry = expiry                    # SSSE/EF05 tag 06 (卡有效期), YYYYMMDD


# From firmware-stubs/profiles/*.json, by hand. ATR 3B 8E 80 01 + 14 historical bytes + TCK.
GEN2 = Profile('gen2', 'des', '3B8E80010081544C92868433010000BF7C7A8D', '8433010000BF7C7A',
               '330100', '123456', '20340101')
GEN3 = Profile('gen3', 'sm4', '3B8E80010081544C928684330200013C5A7E2E', '84330200013C5A7E',
               '330200', '888888', '20350601')
GEN2_WRONGKEY = Profile('gen2-wrongkey', 'des', '3B8E80010081544C92868433010000BAD0BAE4',
                        '8433010000BAD0BA', '330100', '123456', '20340101')


class Terminal:
    """A counter terminal: one card and one PSAM, both through PC/SC, and the §12 flows."""

    def __init__(self, test, card, psam, prof):
        self.t = test
        self.card = card
        self.psam = psam
        self.p = prof

    # -- plumbing
    def tx(self, dev, apdu, expect=OK):
        data, sw = dev.transmit(apdu)
        if expect is not None:
            self.t.assertEqual(sw, expect, f'{apdu[:10] if isinstance(apdu, str) else apdu[:5].hex()}'
                                           f' answered {sw:04X}, expected {expect:04X}')
        return data, sw

    def psam_select(self):
        self.tx(self.psam, SELECT_PSAM_APP)

    def psam_cipher(self, usage, index, factor, x):
        """DELIVER KEY (usage, index) with cardDiv ‖ cityDiv ‖ factor, then CIPHER x -> C (8 bytes).
        DES: the PSAM answers 61 08 and C comes with GET RESPONSE. SM4: it answers C16, which the
        terminal folds into C = C16[0..7] xor C16[8..15] (spec §12.3, §12.6)."""
        self.psam_select()
        div = self.p.card_div + self.p.city_div
        if self.p.alg == 'des':
            self.tx(self.psam, bytes([0xBF, 0xDE, usage, index, 0x18]) + div + factor)
            data, sw = self.tx(self.psam, b'\x80\xFA\x00\x00\x08' + x, expect=0x6108)
            self.t.assertEqual(data, b'')
            c, _ = self.tx(self.psam, '00C0000008')
            self.t.assertEqual(len(c), 8)
            return c
        self.tx(self.psam, bytes([0xBF, 0xDE, usage, index, 0x20]) + div + factor + bytes(8))
        c16, _ = self.tx(self.psam, b'\x80\xFA\x00\x00\x10' + x + bytes(8))
        self.t.assertEqual(len(c16), 16)
        return bytes(a ^ b for a, b in zip(c16[:8], c16[8:]))

    def psam_mac(self, usage, index, iv, data):
        """DELIVER KEY (K_card only, Lc 10) then MAC: 80 FA 05 00 Lc IV ‖ data -> MAC4."""
        self.psam_select()
        self.tx(self.psam, bytes([0xBF, 0xDE, usage, index, 0x10]) + self.p.card_div + self.p.city_div)
        mac, _ = self.tx(self.psam, bytes([0x80, 0xFA, 0x05, 0x00, len(iv) + len(data)]) + iv + data)
        self.t.assertEqual(len(mac), 4)
        return mac

    def challenge(self):
        r, _ = self.tx(self.card, '0084000008')
        self.t.assertEqual(len(r), 8)
        return r

    # -- flows
    def external_auth(self, kid=0x04, psam_ref=(0x48, 0x12), corrupt=False, expect=OK):
        """GET CHALLENGE on the card, cryptogram from the PSAM, EXTERNAL AUTH on the card."""
        r = self.challenge()
        c = self.psam_cipher(psam_ref[0], psam_ref[1], r, r)
        if corrupt:
            c = bytes([c[0] ^ 0x01]) + c[1:]
        body = c + r + (b'\x01' if self.p.alg == 'sm4' else b'')
        return self.tx(self.card, bytes([0x00, 0x82, 0x00, kid, len(body)]) + body, expect=expect)[1]

    def internal_auth(self):
        """Random P and X; the card's C and the PSAM's (key 47/11) C. Returns both."""
        p, x = os.urandom(8), os.urandom(8)
        c_card, _ = self.tx(self.card, b'\x00\x88\x00\x00\x10' + p + x)
        self.t.assertEqual(len(c_card), 8)
        c_psam = self.psam_cipher(0x47, 0x11, p, x)
        return c_card, c_psam

    def mac_iv(self, r):
        return r[:4] + bytes(4) if self.p.alg == 'des' else r + bytes(8)

    def append_ef08(self, record, corrupt_mac=False, expect=OK):
        """APPEND RECORD with MAC on DF04/EF08 (DF04 must be selected): 04 E2 00 40 Lc' rec ‖ MAC4."""
        r = self.challenge()
        header = bytes([0x04, 0xE2, 0x00, 0x40, len(record) + 4])
        mac = self.psam_mac(0x46, 0x15, self.mac_iv(r), header + record)
        if corrupt_mac:
            mac = bytes([mac[0] ^ 0x80]) + mac[1:]
        return self.tx(self.card, header + record + mac, expect=expect)[1]

    def read_ef08(self):
        """All records of DF04/EF08, newest first (record 1 is the newest)."""
        out = []
        for n in range(1, 11):
            data, sw = self.tx(self.card, bytes([0x00, 0xB2, n, 0x44, 0x00]), expect=None)
            if sw == 0x6A83:
                break
            self.t.assertEqual(sw, OK)
            out.append(data)
        return out


def txn_record(serial, total=12345, account=2345, pooled=10000):
    """A DF04/EF08 record (spec §12.7): 40 33 ‖ time cn7 ‖ institution an12 ‖ settlement_no an20 ‖
    3 amounts (total, personal_account, pooled)."""
    value = (bytes.fromhex('20250301093000') + b'H33010000001' + serial.encode().ljust(20, b'\x00')
             + total.to_bytes(4, 'big') + account.to_bytes(4, 'big') + pooled.to_bytes(4, 'big'))
    assert len(value) == 0x33
    return b'\x40\x33' + value


def pin_bcd(pin):
    digits = pin + ('F' if len(pin) % 2 else '')
    return bytes.fromhex(digits)


class SimPcscBase(harness.TestCase):
    readers = 2
    deadline = 60.0

    def start(self, card_profile, psam_profile=None, **card_kw):
        self.h.start_pcscd()
        self.card_sim = self.h.start_card(card_profile.name, slot=0, **card_kw)
        self.psam_sim = self.h.start_psam((psam_profile or card_profile).name, slot=1)
        self.pcsc = self.h.pcsc()
        return self.connect(card_profile)

    def connect(self, prof):
        card = self.pcsc.connect(self.h.reader_name(0), timeout=5)
        psam = self.pcsc.connect(self.h.reader_name(1), timeout=5)
        return Terminal(self, card, psam, prof)

    def reconnect_card(self, term, timeout=5):
        """After a removal: waits for the card to be back and connects again."""
        self.pcsc.wait_card(self.h.reader_name(0), True, timeout)
        term.card = self.pcsc.connect(self.h.reader_name(0), wait=False)


class ExternalAuthMixin:
    """Run for both generations (PROFILE set by the subclasses below)."""
    PROFILE = None

    def test_external_auth_update_and_read_back(self):
        term = self.start(self.PROFILE)
        self.assertEqual(term.card.atr(), self.PROFILE.atr)
        term.tx(term.card, SELECT_SSSE)
        # Before any authentication the record cannot be written (§12.4 access rules).
        new_expiry = bytes.fromhex('0604' + '20391231')
        term.tx(term.card, b'\x00\xDC\x06\x2C\x06' + new_expiry, expect=0x6982)
        # A wrong cryptogram costs a try (5 by default: 63C4), a right one passes and resets it.
        self.assertEqual(term.external_auth(corrupt=True, expect=0x63C4), 0x63C4)
        self.assertEqual(term.external_auth(), OK)
        term.tx(term.card, b'\x00\xDC\x06\x2C\x06' + new_expiry)        # record 6 of SFI 5
        data, _ = term.tx(term.card, '00B2062C00')
        self.assertEqual(data, new_expiry)
        data, _ = term.tx(term.card, '00B2062800')                        # tag mode, same record
        self.assertEqual(data, new_expiry)
        # A challenge is single-use: replaying the same EXTERNAL AUTH data fails.
        r = term.challenge()
        c = term.psam_cipher(0x48, 0x12, r, r)
        body = c + r + (b'\x01' if self.PROFILE.alg == 'sm4' else b'')
        apdu = bytes([0x00, 0x82, 0x00, 0x04, len(body)]) + body
        term.tx(term.card, apdu)
        term.tx(term.card, apdu, expect=0x6984)
        # The try counter was reset by the success: one wrong try leaves 4 again.
        self.assertEqual(term.external_auth(corrupt=True, expect=0x63C4), 0x63C4)

    def test_internal_auth(self):
        term = self.start(self.PROFILE)
        term.tx(term.card, SELECT_SSSE)
        for _ in range(3):
            c_card, c_psam = term.internal_auth()
            self.assertEqual(c_card, c_psam)

    def test_append_ef08_with_mac(self):
        term = self.start(self.PROFILE)
        term.tx(term.card, SELECT_SSSE)
        term.tx(term.card, SELECT_DF04)
        before = term.read_ef08()
        rec = txn_record('S-MAC-0001')
        term.tx(term.card, b'\x00\xE2\x00\x40' + bytes([len(rec)]) + rec, expect=0x6982)  # plain
        term.append_ef08(rec, corrupt_mac=True, expect=0x6988)
        self.assertEqual(term.read_ef08(), before)
        term.append_ef08(rec)
        after = term.read_ef08()
        self.assertEqual(after[0], rec)
        self.assertEqual(after[1:], before[:len(after) - 1])


class Gen2ExternalAuth(ExternalAuthMixin, SimPcscBase):
    PROFILE = GEN2


class Gen3ExternalAuth(ExternalAuthMixin, SimPcscBase):
    PROFILE = GEN3


class SimPcscTest(SimPcscBase):

    def test_wrong_key_card_fails_internal_auth(self):
        term = self.start(GEN2_WRONGKEY)
        term.tx(term.card, SELECT_SSSE)
        c_card, c_psam = term.internal_auth()
        self.assertNotEqual(c_card, c_psam)
        # ... and its external authentication fails too (its keys are not the PSAM's).
        self.assertEqual(term.external_auth(expect=0x63C4), 0x63C4)

    def test_pin_verify_and_change(self):
        term = self.start(GEN2)
        term.tx(term.card, SELECT_SSSE)
        pin, new = GEN2.pin, '2580'
        wrong = '000000' if pin != '000000' else '111111'
        verify = lambda p: b'\x00\x20\x00\x00' + bytes([len(pin_bcd(p))]) + pin_bcd(p)  # noqa: E731
        term.tx(term.card, verify(pin))
        term.tx(term.card, verify(wrong), expect=0x63C2)
        term.tx(term.card, verify(pin))                        # resets the counter
        term.tx(term.card, verify(wrong), expect=0x63C2)
        body = pin_bcd(pin) + b'\xFF' + pin_bcd(new)
        term.tx(term.card, bytes([0x80, 0x5E, 0x01, 0x00, len(body)]) + body)
        term.tx(term.card, verify(pin), expect=0x63C2)
        term.tx(term.card, verify(new))
        # CHANGE PIN with a wrong old PIN counts a failure like VERIFY.
        body = pin_bcd(wrong) + b'\xFF' + pin_bcd(pin)
        term.tx(term.card, bytes([0x80, 0x5E, 0x01, 0x00, len(body)]) + body, expect=0x63C2)
        term.tx(term.card, verify(wrong), expect=0x63C1)
        term.tx(term.card, verify(wrong), expect=0x63C0)
        term.tx(term.card, verify(new), expect=0x6983)        # blocked, even with the right PIN

    def test_removal_mid_transaction(self):
        # --drop-after 3: SELECT (1), GET CHALLENGE (2), then the EXTERNAL AUTH (3) never arrives.
        term = self.start(GEN2, drop_after=3)
        term.tx(term.card, SELECT_SSSE)
        r = term.challenge()
        c = term.psam_cipher(0x48, 0x12, r, r)
        with self.assertRaises(PcscError):
            term.card.transmit(b'\x00\x82\x00\x04\x10' + c + r)
        self.pcsc.wait_card(self.h.reader_name(0), present=False, timeout=3)
        self.assertFalse(self.card_sim.status()['present'])
        self.card_sim.insert()
        self.reconnect_card(term)
        # The card works again; the authentication did not survive the removal.
        term.tx(term.card, SELECT_SSSE)
        term.tx(term.card, b'\x00\xDC\x06\x2C\x06' + bytes.fromhex('060420391231'), expect=0x6982)
        self.assertEqual(term.external_auth(), OK)
        term.tx(term.card, b'\x00\xDC\x06\x2C\x06' + bytes.fromhex('060420391231'))

    def test_restart_keeps_written_state(self):
        term = self.start(GEN2, state=True)
        term.tx(term.card, SELECT_SSSE)
        data, _ = term.tx(term.card, '00B2062C00')
        self.assertEqual(data, bytes.fromhex('0604' + GEN2.expiry))
        term.external_auth()
        term.tx(term.card, b'\x00\xDC\x06\x2C\x06' + bytes.fromhex('060420391231'))
        term.tx(term.card, SELECT_DF04)
        rec = txn_record('S-RESTART-1')
        term.append_ef08(rec)
        # A clean stop and start of the simulator, then a pcscd restart: the state stays.
        self.card_sim.restart()
        self.pcsc.wait_card(self.h.reader_name(0), present=True, timeout=5)
        self.h.pcscd.restart()
        self.card_sim.wait_link(up=True)
        self.psam_sim.wait_link(up=True)
        self.pcsc = self.h.pcsc()
        term = self.connect(GEN2)
        term.tx(term.card, SELECT_SSSE)
        data, _ = term.tx(term.card, '00B2062C00')
        self.assertEqual(data, bytes.fromhex('060420391231'))
        term.tx(term.card, SELECT_DF04)
        self.assertEqual(term.read_ef08()[0], rec)
        # A simulator started without --state begins again from the profile.
        self.card_sim.stop()
        self.pcsc.wait_card(self.h.reader_name(0), present=False, timeout=3)
        fresh = self.h.sim('card', GEN2.name, 0, name='fresh').start()
        self.reconnect_card(term)
        term.tx(term.card, SELECT_SSSE)
        data, _ = term.tx(term.card, '00B2062C00')
        self.assertEqual(data, bytes.fromhex('0604' + GEN2.expiry))
        fresh.stop()

    def test_kill9_in_a_loop_of_writes(self):
        term = self.start(GEN2, state=True)
        rng = random.Random(int.from_bytes(os.urandom(4), 'big'))
        acked = []           # serials of acknowledged appends, oldest first
        serial = 0
        for rnd in range(6):
            term.tx(term.card, SELECT_SSSE)
            term.tx(term.card, SELECT_DF04)
            killer = threading.Timer(rng.uniform(0.05, 0.4), self.card_sim.kill9)
            killer.start()
            in_flight = None
            try:
                while True:
                    serial += 1
                    in_flight = f'K{serial:06d}'
                    term.append_ef08(txn_record(in_flight))
                    acked.append(in_flight)
                    in_flight = None
            except PcscError:
                pass
            killer.join()
            self.assertGreater(serial, 0)
            # The state file must load (start() fails if the simulator refuses it) and hold every
            # acknowledged append; the one in flight may or may not have been saved.
            self.pcsc.wait_card(self.h.reader_name(0), present=False, timeout=3)
            self.card_sim.start()
            self.reconnect_card(term)
            term.tx(term.card, SELECT_SSSE)
            term.tx(term.card, SELECT_DF04)
            found = [bytes(r[2 + 7 + 12:2 + 7 + 12 + 20]).rstrip(b'\x00').decode() for r in
                     term.read_ef08()]
            expected = list(reversed(acked))[:10]
            if in_flight is not None and found and found[0] == in_flight:
                found = found[1:]
                expected = expected[:9]
                acked.append(in_flight)
            self.assertEqual(found[:len(expected)], expected, f'round {rnd}')


class SimPcscHarnessTest(SimPcscBase):
    """What later suites rely on: several vpcd entries, and a stopped simulator."""
    readers = 4

    def test_four_readers_and_sigstop(self):
        self.h.start_pcscd()
        self.pcsc = self.h.pcsc()
        self.assertEqual(sorted(self.pcsc.readers()), ['Virtual PCD A 00 00', 'Virtual PCD A 00 01',
                                                       'Virtual PCD B 00 00', 'Virtual PCD B 00 01'])
        gen2 = self.h.start_card(GEN2.name, slot=0)
        self.h.start_card(GEN3.name, slot=2)
        self.h.start_psam(GEN3.name, slot=3)
        # The second vpcd entry (its own copy of the driver) serves its card and PSAM.
        card = self.pcsc.connect(self.h.reader_name(2))
        psam = self.pcsc.connect(self.h.reader_name(3))
        self.assertEqual(card.atr(), GEN3.atr)
        term = Terminal(self, card, psam, GEN3)
        term.tx(card, SELECT_SSSE)
        c_card, c_psam = term.internal_auth()
        self.assertEqual(c_card, c_psam)
        self.pcsc.wait_card(self.h.reader_name(1), present=False, timeout=0.1)
        # SCardTransmit has no deadline: a stopped simulator holds the caller until SIGCONT.
        other = self.pcsc.connect(self.h.reader_name(0))
        gen2.sigstop()
        threading.Timer(0.5, gen2.sigcont).start()
        t = time.monotonic()
        _, sw = other.transmit(SELECT_SSSE)
        self.assertEqual(sw, OK)
        self.assertGreaterEqual(time.monotonic() - t, 0.45)


if __name__ == '__main__':
    unittest.main(verbosity=2)
