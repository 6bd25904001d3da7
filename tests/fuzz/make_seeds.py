#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (a developer tool:
the seeds are committed; CI does not run this). Every seed is written by hand from the spec
(ssc-card.md §2, §3, §12) and docs/simulator.md: a valid case of each path and the malformed cases
that reach the error paths. The §12 cryptography needed for valid cryptograms and MACs is computed
here with python3-cryptography and checked first against the §12.8 vectors.

    /usr/bin/python3 tests/fuzz/make_seeds.py          # rewrites every corpus directory it knows

Input formats are those the targets' file comments describe (fuzzlib.h chunks: a length byte, or
FF and a 16-bit length, then the bytes).
"""

import json
import os
import shutil
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:                         # python3-cryptography 38 (Debian 12)
    TripleDES = algorithms.TripleDES

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
PROFILES = os.path.join(SOURCE, 'firmware-stubs', 'profiles')
CORPUS = os.path.join(HERE, 'corpus')

H = bytes.fromhex


# ---------------------------------------------------------------------------------------------
# §12 cryptography

def _ecb(alg, data):
    e = Cipher(alg, modes.ECB()).encryptor()
    return e.update(data) + e.finalize()


def _ecb_dec(alg, data):
    d = Cipher(alg, modes.ECB()).decryptor()
    return d.update(data) + d.finalize()


def enc3(k, x):
    return _ecb(TripleDES(k), x)


def enc1(k, x):
    return _ecb(TripleDES(k + k), x)


def sm4(k, x):
    return _ecb(algorithms.SM4(k), x)


def inv(b):
    return bytes(~v & 0xFF for v in b)


def div(alg, k, f):
    return enc3(k, f) + enc3(k, inv(f)) if alg == 'des' else sm4(k, f + inv(f))


def k_card(alg, master, city, card):
    return div(alg, div(alg, master, city), card)


def cryptogram(alg, kc, r, x):
    if alg == 'des':
        return enc1(enc3(kc, r), x)
    ks = sm4(kc, r + bytes(8))
    c16 = sm4(ks, x + bytes(8))
    return bytes(a ^ b for a, b in zip(c16[:8], c16[8:]))


def pad80(data, block):
    data = data + b'\x80'
    return data + bytes(-len(data) % block)


def mac4(alg, kc, iv, data):
    if alg == 'des':
        m = pad80(data, 8)
        h = iv
        kl, kr = kc[:8], kc[8:]
        for i in range(0, len(m), 8):
            h = enc1(kl, bytes(a ^ b for a, b in zip(h, m[i:i + 8])))
        h = enc1(kl, _ecb_dec(TripleDES(kr + kr), h))
        return h[:4]
    m = pad80(data, 16)
    h = iv
    for i in range(0, len(m), 16):
        h = sm4(kc, bytes(a ^ b for a, b in zip(h, m[i:i + 16])))
    return h[:4]


def check_vectors():
    """Spec §12.8: the cryptography above must give these bytes, or no seed is written."""
    m, city, card = H('00112233445566778899AABBCCDDEEFF'), H('3333303130307378'), H('0011223344556677')
    r = H('1122334455667788')
    kd = k_card('des', m, city, card)
    ks = k_card('sm4', m, city, card)
    assert div('des', m, city) == H('BB4EB3154D6ACD6591D32A3B0CAB50C8')
    assert kd == H('6338AE1CE827A076114743A2BB2FB55E')
    assert cryptogram('des', kd, r, r) == H('4BA5C1F9D6C57F0F')
    assert ks == H('3D41F42177A78BF3C435D48F6F53C7C0')
    assert cryptogram('sm4', ks, r, r) == H('5E581E4BB536B207')
    p, x = H('0102030405060708'), H('A1A2A3A4A5A6A7A8')
    assert cryptogram('des', kd, p, x) == H('D2FFA2E969F241C5')
    assert cryptogram('sm4', ks, p, x) == H('D9B357F70108DCD8')
    cmd = H('04E200400E') + H('40330102030405060708')
    assert mac4('des', kd, H('1122334400000000'), cmd) == H('F45CDC9E')
    assert mac4('sm4', ks, r + bytes(8), cmd) == H('F0BBB681')
    assert enc3(kd, H('0312345680000000')) == H('DA44BA6FAA847AB5')
    assert sm4(ks, H('03123456800000000000000000000000')) == H('83C3ED41A77006B703C3722B4878B665')
    issuer = H('0123456789ABCDEFFEDCBA9876543210')
    assert mac4('des', issuer, bytes(8), H('330100D15600000500BF7C7A')) == H('C9FC0FEC')


# ---------------------------------------------------------------------------------------------
# Helpers

def chunk(b):
    """A fuzzlib.h chunk."""
    if len(b) < 0xFF:
        return bytes([len(b)]) + b
    return b'\xff' + len(b).to_bytes(2, 'big') + b


RESET = b'\x00'


def apdu(cla, ins, p1, p2, data=b'', le=None):
    b = bytes([cla, ins, p1, p2])
    if data:
        b += bytes([len(data)]) + data
    if le is not None:
        b += bytes([le & 0xFF])
    return b


def bcd_pin(pin):
    s = pin + ('F' if len(pin) % 2 else '')
    return H(s)


def write_corpus(target, seeds):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
    print(f'{target}: {len(seeds)} seeds')


SSSE_NAME = H('7378312E73682EC9E7BBE1B1A3D5CF')
SELECT_SSSE = apdu(0x00, 0xA4, 0x04, 0x00, SSSE_NAME)
PSAM_AID = H('D15600000590')
R = H('1122334455667788')          # the challenge fuzz_sim_apdu fixes


def profiles():
    """The shipped profiles in the order fuzzlib.h loads them (sorted file names)."""
    out = []
    for name in sorted(os.listdir(PROFILES)):
        if name.endswith('.json'):
            with open(os.path.join(PROFILES, name), 'rb') as f:
                raw = f.read()
            out.append((name[:-5], raw, json.loads(raw)))
    return out


def atr_hist(atr):
    """ISO 7816-3 historical bytes (the profiles' ATRs are well formed)."""
    y, k, i, tck = atr[1] >> 4, atr[1] & 0x0F, 2, False
    while True:
        i += bin(y & 7).count('1')
        if not y & 8:
            break
        td = atr[i]
        i += 1
        tck = tck or (td & 0x0F) != 0
        y = td >> 4
    return atr[i:i + k]


class Card:
    """The card of a profile: its keys as the card holds them (§12.2)."""

    def __init__(self, prof):
        c = prof['card']
        self.alg = c['algorithm']
        self.atr = H(c['atr'])
        self.card_div = atr_hist(self.atr)[-8:]
        self.city_div = c['region'].encode() + b'sx'
        self.pin = c['pin']
        q = c.get('quirks', {})
        wrong = q.get('wrong_keys', False)
        self.keys = {}
        for slot, hexkey in c['keys'].items():
            if slot == 'issuer':
                continue
            m = H(hexkey)
            self.keys[slot] = k_card(self.alg, inv(m) if wrong else m, self.city_div,
                                     self.card_div)
        self.gen = int(c['spec_version'][0])

    def ext_auth(self, slot, kid):
        c = cryptogram(self.alg, self.keys[slot], R, R)
        return apdu(0x00, 0x82, 0x00, kid, c + R + (b'\x01' if self.alg == 'sm4' else b''))

    def iv(self):
        return R[:4] + bytes(4) if self.alg == 'des' else R + bytes(8)

    def sm(self, slot, cla, ins, p1, p2, data):
        """A command with MAC4 over CLA INS P1 P2 Lc' ‖ data (§12.5)."""
        head = bytes([cla, ins, p1, p2, len(data) + 4])
        return head + data + mac4(self.alg, self.keys[slot], self.iv(), head + data)

    def pin_block(self, pin):
        p = bcd_pin(pin)
        blk = pad80(bytes([len(p)]) + p, 8 if self.alg == 'des' else 16)
        k = self.keys['puk']
        return enc3(k, blk) if self.alg == 'des' else sm4(k, blk)


GET_CHALLENGE = apdu(0x00, 0x84, 0x00, 0x00, le=0x08)


def read(p1, sfi, by_tag=False, le=0x00):
    return apdu(0x00, 0xB2, p1, sfi << 3 | (0 if by_tag else 4), le=le)


# ---------------------------------------------------------------------------------------------
# fuzz_sim_apdu

def sim_apdu_seeds():
    seeds = {}
    profs = profiles()
    for idx, (name, _raw, prof) in enumerate(profs):
        card = Card(prof)
        sel = bytes([idx])
        basic = [SELECT_SSSE] + [read(n, 5) for n in range(1, 8)] + \
                [read(n, 6) for n in range(1, 8)]
        seeds[f'{name}-read-basic'] = sel + b''.join(chunk(a) for a in basic)
        tagged = [SELECT_SSSE] + [read(t, 5, True) for t in (1, 3, 5, 6, 7)] + \
                 [read(t, 6, True) for t in (0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D)]
        seeds[f'{name}-read-tag'] = sel + b''.join(chunk(a) for a in tagged)
        if card.gen == 1:
            continue
        # Read authorisation, then the SSSE write after EXTERNAL AUTH 04 (plain and with MAC).
        s = [SELECT_SSSE, read(1, 6), GET_CHALLENGE, card.ext_auth('read_auth', 0x0A), read(1, 6),
             GET_CHALLENGE, card.ext_auth('ext_auth', 0x04),
             apdu(0x00, 0xDC, 0x06, 0x2C, H('0604') + H('20350101')),
             apdu(0x00, 0xDC, 0x06, 0x28, H('0604') + H('20360101')),
             apdu(0x00, 0xDC, 0x06, 0x2C, H('0704') + H('20350101')),            # wrong tag
             apdu(0x00, 0xDC, 0x06, 0x2C, H('0605') + H('2035010101')),          # too long
             GET_CHALLENGE, card.sm('stk', 0x04, 0xDC, 0x06, 0x2C, H('0604') + H('20370101'))]
        if card.gen == 3:
            s += [GET_CHALLENGE, card.ext_auth('ef0d', 0x0D),
                  apdu(0x00, 0xDC, 0x01, 0x6C, H('EA0C') + b'P00000000002')]
        seeds[f'{name}-ext-auth-write'] = sel + b''.join(chunk(a) for a in s)
        # PIN: verify (right, wrong, empty), change, reload and unblock with MACs.
        p = bcd_pin(card.pin)
        newp = bcd_pin('654321')
        reload_data = newp
        s = [SELECT_SSSE, apdu(0x00, 0x20, 0x00, 0x00, p), apdu(0x00, 0x20, 0x00, 0x00, H('111111')),
             apdu(0x00, 0x20, 0x00, 0x00),
             apdu(0x80, 0x5E, 0x01, 0x00, p + b'\xff' + newp),
             apdu(0x80, 0x5E, 0x01, 0x00, H('999999') + b'\xff' + newp),
             apdu(0x00, 0x20, 0x00, 0x00, H('111111')), apdu(0x00, 0x20, 0x00, 0x00, H('111111')),
             apdu(0x00, 0x20, 0x00, 0x00, H('111111')),
             GET_CHALLENGE, card.sm('pin_reload', 0x80, 0x5E, 0x00, 0x00, reload_data),
             GET_CHALLENGE, card.sm('puk', 0x84, 0x24, 0x00, 0x00, card.pin_block('123456')),
             GET_CHALLENGE, card.sm('puk', 0x84, 0x24, 0x00, 0x00, bytes(len(card.pin_block('1'))))]
        seeds[f'{name}-pin'] = sel + b''.join(chunk(a) for a in s)
        # DF04: medical files, the cyclic EF08, UPDATE and APPEND with the STK MAC.
        txn = H('4033') + H('20240401120000') + b'H33010000001' + b'S2024040100000000003' + \
            (1000).to_bytes(4, 'big') + (200).to_bytes(4, 'big') + (800).to_bytes(4, 'big')
        s = [SELECT_SSSE, apdu(0x00, 0xA4, 0x04, 0x00, H('D15600000503')), read(1, 5), read(1, 8),
             read(2, 8), read(0x40, 8, True), read(1, 6),
             apdu(0x00, 0xDC, 0x01, 0x2C, H('300333') + H('0100')),                # plain: 6982
             GET_CHALLENGE, card.sm('stk', 0x04, 0xDC, 0x01, 0x2C, H('3003330100')),
             GET_CHALLENGE, card.sm('stk', 0x04, 0xE2, 0x00, 0x40, txn),
             GET_CHALLENGE, card.sm('stk', 0x04, 0xE2, 0x00, 0x40, txn[:-1] + b'\x01'),
             GET_CHALLENGE, card.sm('stk', 0x04, 0xDC, 0x01, 0x34, H('410101')),
             read(1, 8), read(11, 8),
             apdu(0x00, 0xA4, 0x00, 0x00, H('DF01')), read(1, 5),
             apdu(0x00, 0xA4, 0x04, 0x00, H('D15600000504')), apdu(0x00, 0xA4, 0x00, 0x00, H('3F00'))]
        seeds[f'{name}-df04'] = sel + b''.join(chunk(a) for a in s)
        # Internal authentication and the status words of malformed commands.
        s = [SELECT_SSSE, apdu(0x00, 0x88, 0x00, 0x00, H('0102030405060708A1A2A3A4A5A6A7A8')),
             apdu(0x00, 0x88, 0x00, 0x01, H('0102030405060708A1A2A3A4A5A6A7A8')),
             apdu(0x00, 0x82, 0x00, 0x04, bytes(16)),                              # no challenge
             GET_CHALLENGE, apdu(0x00, 0x82, 0x00, 0x04, bytes(8) + R + b'\x02'),
             GET_CHALLENGE, apdu(0x00, 0x82, 0x00, 0x04, bytes(8) + bytes(8)),     # X != R
             GET_CHALLENGE, apdu(0x00, 0x82, 0x00, 0x05, bytes(16)),
             apdu(0x00, 0x84, 0x00, 0x00, le=0x04), apdu(0x00, 0x84, 0x01, 0x00, le=0x08),
             H('00'), H('00B2'), H('00B20104'), apdu(0x00, 0xB2, 0x01, 0x2C, b'\x01'),
             H('00A4040010') + SSSE_NAME, H('00A40400000000'), apdu(0x00, 0xA4, 0x04, 0x00, H('A000')),
             apdu(0x00, 0xA4, 0x05, 0x00, SSSE_NAME), apdu(0x00, 0xA4, 0x04, 0x0C, SSSE_NAME),
             apdu(0x00, 0xC0, 0x00, 0x00, le=0), apdu(0x00, 0x00, 0x00, 0x00), apdu(0xA0, 0xB2, 1, 4),
             apdu(0x00, 0xB2, 0x00, 0x2C, le=0), apdu(0x00, 0xB2, 0x01, 0xFC, le=0),
             apdu(0x00, 0xB2, 0x01, 0x2D, le=0), apdu(0x00, 0xB2, 0x01, 0x04, le=0),
             apdu(0x00, 0xB2, 0x01, 0x7C, le=0), apdu(0x00, 0xB2, 0x01, 0x2C, le=3),
             apdu(0x00, 0xB2, 0x01, 0x2C, le=0x40), RESET, read(1, 5),
             apdu(0x04, 0xDC, 0x01, 0x2C, H('3003330100') + bytes(4)),
             apdu(0x04, 0xE2, 0x01, 0x40, bytes(8)), apdu(0x00, 0xE2, 0x00, 0x40, bytes(8)),
             bytes([0x00, 0xB2, 0x01, 0x2C, 0xFF]) + bytes(255) + b'\x00']
        seeds[f'{name}-errors'] = sel + b''.join(chunk(a) for a in s)
    # The PSAMs (one per algorithm is enough; every profile's PSAM is reachable by the selector).
    for idx, (name, _raw, prof) in enumerate(profs):
        if name not in ('gen2', 'gen3'):
            continue
        card = Card(prof)
        sel = bytes([0x80 | idx])
        d = card.card_div + card.city_div
        rx = R + (bytes(8) if card.alg == 'sm4' else b'')
        iv = bytes(8) if card.alg == 'des' else bytes(16)
        blk = bytes(8) if card.alg == 'des' else bytes(16)
        s = [apdu(0x00, 0xB0, 0x96, 0x00, le=6), apdu(0x00, 0xB0, 0x00, 0x02, le=4),
             apdu(0x00, 0xB0, 0x96, 0x07, le=1), apdu(0x00, 0xB0, 0x97, 0x00, le=6),
             apdu(0xBF, 0xDE, 0x48, 0x12, d + rx),                                 # no app: 6A88
             apdu(0x00, 0xA4, 0x04, 0x00, PSAM_AID), apdu(0x00, 0xA4, 0x04, 0x0C, PSAM_AID),
             apdu(0xBF, 0xDE, 0x48, 0x12, d + rx), apdu(0x80, 0xFA, 0x00, 0x00, rx),
             apdu(0x00, 0xC0, 0x00, 0x00, le=8), apdu(0x80, 0xFA, 0x05, 0x00, iv + H('04E200400E')),
             apdu(0x80, 0xFA, 0x01, 0x00, blk), apdu(0x80, 0xFA, 0x01, 0x00, blk[:5]),
             apdu(0xBF, 0xDE, 0x46, 0x15, d), apdu(0x80, 0xFA, 0x00, 0x00, rx),   # no Ks: 6985
             apdu(0x80, 0xFA, 0x05, 0x00, iv + bytes(40)),
             apdu(0xBF, 0xDE, 0x48, 0x99, d + rx), apdu(0xBF, 0xDE, 0x48, 0x12, d + R + bytes(16)),
             apdu(0x80, 0xFA, 0x02, 0x00, blk), apdu(0x80, 0xFA, 0x00, 0x01, blk),
             apdu(0x80, 0xFA, 0x00, 0x00, bytes(3)), apdu(0x00, 0xA4, 0x00, 0x00, H('3F00')),
             apdu(0x80, 0xFA, 0x05, 0x00, iv + bytes(8)), apdu(0x00, 0xA4, 0x04, 0x00, SSSE_NAME),
             apdu(0x00, 0x84, 0x00, 0x00, le=8), apdu(0xC0, 0xA4, 0, 0), RESET,
             apdu(0x00, 0xA4, 0x00, 0x00)]
        seeds[f'psam-{name}'] = sel + b''.join(chunk(a) for a in s)
    # The T=0 card: GET RESPONSE in pieces and the exact-Le rule.
    for idx, (name, _raw, prof) in enumerate(profs):
        if name != 't0-quirks':
            continue
        s = [SELECT_SSSE, apdu(0x00, 0xC0, 0x00, 0x00, le=0x05), apdu(0x00, 0xC0, 0x00, 0x00, le=0),
             apdu(0x00, 0xC0, 0x00, 0x00, le=0), read(1, 5), read(1, 5, le=0x12),
             apdu(0x00, 0xC0, 0x00, 0x00, le=0x12), read(1, 5, le=0x12), read(2, 5),
             apdu(0x00, 0xC0, 0x01, 0x00, le=0), read(1, 5, le=0x12),
             apdu(0x00, 0xC0, 0x00, 0x00, b'\x01')]
        seeds[f'{name}-get-response'] = bytes([idx]) + b''.join(chunk(a) for a in s)
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_sim_profile

def sim_profile_seeds():
    seeds = {}
    profs = profiles()
    for name, raw, _prof in profs:
        seeds[name] = raw
    base = next(p for n, _r, p in profs if n == 'gen2')
    gen3 = next(p for n, _r, p in profs if n == 'gen3')

    def variant(tag, edit, src=base):
        p = json.loads(json.dumps(src))
        edit(p)
        seeds['bad-' + tag] = json.dumps(p, ensure_ascii=False, indent=1).encode()

    def setp(path, value):
        def edit(p):
            *head, last = path.split('.')
            o = p
            for k in head:
                o = o[k]
            if value is KeyError:
                del o[last]
            else:
                o[last] = value
        return edit

    cases = {
        'format': ('format', 'sscard-sim-profile/2'),
        'name': ('name', 'Bad Name!'),
        'unknown-member': ('card.colour', 'blue'),
        'no-card': ('card', KeyError),
        'no-psam': ('psam', KeyError),
        'atr-ts': ('card.atr', '3A8E80010081544C92868433010000BF7C7A8D'),
        'atr-tck': ('card.atr', '3B8E80010081544C92868433010000BF7C7A8E'),
        'atr-short': ('card.atr', '3B'),
        'atr-hex': ('card.atr', '3B8E8001008154ZZ'),
        'atr-few-hist': ('card.atr', '3B84800100815400D5'),
        'spec-version': ('card.spec_version', '4.00'),
        'algorithm': ('card.algorithm', 'ssf33'),
        'region': ('card.region', '33010A'),
        'card-id-mac': ('card.card_id', '330100D15600000500BF7C7AC9FC0FED'),
        'card-id-rid': ('card.card_id', '330100D15600000600BF7C7AC9FC0FEC'),
        'card-id-len': ('card.card_id', '330100D156'),
        'card-type': ('card.card_type', '33'),
        'init-org': ('card.init_org', '3301000000010'),
        'issue-date': ('card.issue_date', '20240230'),
        'expiry-before-issue': ('card.expiry_date', '20230101'),
        'card-number-check': ('card.card_number', 'X00000018'),
        'card-number-len': ('card.card_number', 'X0000001'),
        'ssn-check': ('card.holder.ssn', '330102199003071231'),
        'ssn-letters': ('card.holder.ssn', '33010219900307123A'),
        'name-long': ('card.holder.name', '张' * 26),
        'name-split': ('card.holder.name', 'A' + '张' * 14 + '𫖯' + '张' * 8 + 'B'),
        'name-empty': ('card.holder.name', ''),
        'sex': ('card.holder.sex', '3'),
        'nation': ('card.holder.nation', '1'),
        'birth-place': ('card.holder.birth_place', '3301'),
        'birth-date': ('card.holder.birth_date', '19901301'),
        'ef0d-gen2': ('card.ef0d', {'person_id': 'P1', 'first_region': '330100'}),
        'medical-region': ('card.medical.region', 330100),
        'medical-person-no': ('card.medical.person_no', '3' * 21),
        'txn-capacity': ('card.medical.transaction_capacity', 65),
        'txn-time': ('card.medical.transactions', [{'time': '20241301000000', 'institution': 'H',
                                                     'settlement_no': 'S', 'total': 1,
                                                     'personal_account': 0, 'pooled': 1}]),
        'txn-amount': ('card.medical.transactions', [{'time': '20240101000000', 'institution': 'H',
                                                       'settlement_no': 'S', 'total': 4294967296,
                                                       'personal_account': 0, 'pooled': 1}]),
        'txn-member': ('card.medical.transactions', [{'time': '20240101000000'}]),
        'pin-short': ('card.pin', '123'),
        'pin-letters': ('card.pin', '12345a'),
        'pin-tries': ('card.pin_tries', 16),
        'pin-tries-left': ('card.pin_tries_left', 4),
        'key-tries': ('card.key_tries', 0),
        'key-hex': ('card.keys.stk', '4615A00102030405060708090A0B0C'),
        'key-missing': ('card.keys.puk', KeyError),
        'key-ids-dup': ('card.key_ids', {'ext_auth': '05'}),
        'key-ids-bad': ('card.key_ids', {'nope': '05'}),
        'quirks-unknown': ('card.quirks', {'fast': True}),
        'quirks-modes': ('card.quirks', {'read_record_modes': 'sometimes'}),
        'quirks-bool': ('card.quirks', {'exact_le': 1}),
        'psam-algorithm': ('psam.algorithm', 'rsa'),
        'psam-terminal': ('psam.terminal_number', '33010000000'),
        'psam-key-refs': ('psam.key_refs', {'ext_auth': '4713'}),
        'psam-key-refs-bad': ('psam.key_refs', {'ext_auth': '47'}),
        # Found by this target: an unknown slot name here read past the end of the loader's
        # slot-name table (key_names had no NULL terminator for ld_known).
        'psam-key-refs-unknown': ('psam.key_refs', {'ext_au4h': '4812'}),
        'key-ids-unknown': ('card.key_ids', {'nope': '05'}),
        'psam-atr': ('psam.atr', '3B6C0000'),
        'description': ('description', 7),
    }
    for tag, (path, value) in cases.items():
        variant(tag, setp(path, value))
    variant('gen3-no-ef0d', setp('card.ef0d', KeyError), gen3)
    variant('gen3-ef0d-region', setp('card.ef0d.first_region', '33020'), gen3)
    variant('gen1-name-ext', setp('card.spec_version', '1.00'), gen3)
    seeds['bad-not-json'] = b'{"format": "sscard-sim-profile/1", "name": '
    seeds['bad-array'] = b'[1, 2, 3]'
    seeds['bad-empty'] = b''
    seeds['bad-nul'] = b'{"format": "sscard-sim-profile/1"\x00}'
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_items (mode, pair, cap, value): the pair index counts the items in the order of
# fuzz_items.c's file list and each file's items by ascending tag.

ITEM_FILES = [
    ('SSSE/EF05', [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]),
    ('SSSE/EF06', [0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x4E]),
    ('SSSE/EF0D', [0xEA, 0xEB]),
    ('DF04/EF05', [0x30, 0x31, 0x32, 0x33, 0x34]),
    ('DF04/EF06', [0x41]),
    ('DF04/EF08', [0x40]),
    ('DF01/EF05', [0x01, 0x30]),
    ('DF03/EF1E', [0x01, 0x30]),
]


def item_index(fname, tag):
    i = 0
    for f, tags in ITEM_FILES:
        for t in tags:
            if (f, t) == (fname, tag):
                return i
            i += 1
    raise KeyError((fname, tag))


def items_seeds():
    seeds = {}
    txn = H('20240401120000') + b'H33010000001' + b'S2024040100000000003' + \
        (1000).to_bytes(4, 'big') + (200).to_bytes(4, 'big') + (800).to_bytes(4, 'big')

    def dec(tag, fname, t, value, cap=0):
        seeds[f'decode-{tag}'] = bytes([0, item_index(fname, t), cap]) + value

    def enc(tag, fname, t, text, cap=0):
        seeds[f'encode-{tag}'] = bytes([1, item_index(fname, t), cap]) + text

    dec('card-id', 'SSSE/EF05', 0x01, H('330100D15600000500BF7C7AC9FC0FEC'))
    dec('card-id-small-cap', 'SSSE/EF05', 0x01, H('330100D15600000500BF7C7AC9FC0FEC'), 8)
    dec('spec-version', 'SSSE/EF05', 0x03, b'2.00')
    dec('init-org', 'SSSE/EF05', 0x04, b'330100000001')
    dec('date', 'SSSE/EF05', 0x05, H('20240101'))
    dec('date-ff', 'SSSE/EF05', 0x06, H('FFFFFFFF'))
    dec('date-bad', 'SSSE/EF05', 0x06, H('2024130A'))
    dec('date-short', 'SSSE/EF05', 0x06, H('2024'))
    dec('card-number', 'SSSE/EF05', 0x07, b'X00000019')
    dec('card-number-check', 'SSSE/EF05', 0x07, b'X00000018')
    dec('card-number-short', 'SSSE/EF05', 0x07, b'X0000')
    dec('ssn', 'SSSE/EF06', 0x08, b'330102199003071230')
    dec('name-gbk', 'SSSE/EF06', 0x09, '张三'.encode('gbk') + bytes(26))
    dec('name-gbk-cut', 'SSSE/EF06', 0x09, '张三'.encode('gbk')[:3] + bytes(27))
    dec('name-ff', 'SSSE/EF06', 0x09, '王'.encode('gbk') + b'\xff' * 28)
    dec('name-invalid', 'SSSE/EF06', 0x09, b'\x81\x20\xff\x80' + bytes(26))
    dec('name-small-cap', 'SSSE/EF06', 0x09, '张三李四'.encode('gbk') + bytes(22), 4)
    dec('name-ext', 'SSSE/EF06', 0x4E, '·吐尔逊江'.encode('gbk') + bytes(10))
    # GB 18030 beyond GBK: 张䶮𫖯 = D5C5 FE9F 9838F537; then bytes that are no GB 18030.
    dec('name-gb18030', 'SSSE/EF06', 0x09, H('D5C5FE9F9838F537') + bytes(22))
    dec('name-gb18030-cut', 'SSSE/EF06', 0x09, H('D5C59838F5') + bytes(25))
    dec('name-not-gb18030', 'SSSE/EF06', 0x09, H('D5C5B47F') + bytes(26))
    dec('name-past-bmp', 'SSSE/EF06', 0x4E, H('8431A530') + bytes(16))
    dec('sex', 'SSSE/EF06', 0x0A, b'1')
    dec('nation', 'SSSE/EF06', 0x0B, H('01'))
    dec('nation-bad', 'SSSE/EF06', 0x0B, H('1A'))
    dec('birth-place', 'SSSE/EF06', 0x0C, H('330102'))
    dec('birth-place-f', 'SSSE/EF06', 0x0C, H('3301FF'))
    dec('birth-date', 'SSSE/EF06', 0x0D, H('19900307'))
    dec('person-id', 'SSSE/EF0D', 0xEA, b'P00000000001')
    dec('first-region', 'SSSE/EF0D', 0xEB, H('330200'))
    dec('med-region', 'DF04/EF05', 0x30, H('330100'))
    dec('med-person-no', 'DF04/EF05', 0x32, b'33010000000000000001')
    dec('offline', 'DF04/EF06', 0x41, H('01'))
    dec('txn', 'DF04/EF08', 0x40, txn)
    dec('txn-short', 'DF04/EF08', 0x40, txn[:50])
    dec('txn-bad-time', 'DF04/EF08', 0x40, H('20241301120000') + txn[7:])
    dec('generic', 'DF01/EF05', 0x30, H('0102030405'))
    dec('generic-long', 'DF03/EF1E', 0x01, bytes(range(256)))
    dec('empty', 'SSSE/EF06', 0x08, b'')
    enc('date', 'SSSE/EF05', 0x06, b'20350101')
    enc('date-bad', 'SSSE/EF05', 0x06, b'20351301')
    enc('date-short', 'SSSE/EF05', 0x06, b'203501')
    enc('card-number', 'SSSE/EF05', 0x07, b'X00000019')
    enc('card-number-bad', 'SSSE/EF05', 0x07, b'X00000010')
    enc('name', 'SSSE/EF06', 0x09, '张三'.encode())
    enc('name-long', 'SSSE/EF06', 0x09, ('张' * 16).encode())
    enc('name-4byte', 'SSSE/EF06', 0x09, '\U0001F600'.encode())
    enc('name-gb18030', 'SSSE/EF06', 0x09, '张䶮𫖯'.encode())
    enc('control', 'DF04/EF05', 0x31, b'\x01')
    enc('name-bad-utf8', 'SSSE/EF06', 0x09, b'\xc3\x28abc')
    enc('name-small-cap', 'SSSE/EF06', 0x09, '张三李四'.encode(), 3)
    enc('nation', 'SSSE/EF06', 0x0B, b'01')
    enc('nation-odd', 'SSSE/EF06', 0x0B, b'1')
    enc('nation-letters', 'SSSE/EF06', 0x0B, b'0A')
    enc('birth-place', 'SSSE/EF06', 0x0C, b'330102')
    enc('birth-place-long', 'SSSE/EF06', 0x0C, b'33010233')
    enc('card-id', 'SSSE/EF05', 0x01, b'330100D15600000500BF7C7AC9FC0FEC')
    enc('hex-odd', 'DF04/EF06', 0x41, b'0')
    enc('hex-bad', 'DF04/EF06', 0x41, b'0G')
    enc('generic', 'DF01/EF05', 0x30, b'0102AABB')
    enc('txn', 'DF04/EF08', 0x40, b'20240401120000')
    enc('empty', 'DF04/EF05', 0x31, b'')
    for name in ('SSSE/EF05', 'ssse/ef06', 'DF04/EF08', 'DF01/EF1E', 'DF02/EF1F', 'DF05/EF00',
                 'DF06/EF05', 'DF04/EF0X', 'SSSE/EF0', 'SSSE/EF055', '4E', 'zz', ''):
        seeds['names-' + (name.replace('/', '_') or 'empty')] = bytes([2, 0, 0]) + name.encode()
    seeds['hex'] = bytes([3, 0, 0]) + bytes(range(32))
    seeds['hex-small'] = bytes([3, 0, 9]) + bytes(range(8))
    seeds['card-number'] = bytes([4, 0, 0]) + b'X00000019'
    seeds['card-number-bad'] = bytes([4, 0, 0]) + b'x0000001!'
    seeds['txn-any'] = bytes([5, 0, 0]) + txn
    # mode 6: a transaction from its fields (chunks: time, institution, settlement; then amounts)
    fields = chunk(b'20240401120000') + chunk(b'H33010000001') + chunk(b'S2024040100000000003')
    seeds['txn-encode'] = bytes([6, 0, 0]) + fields + bytes([0, 1, 2, 3])
    seeds['txn-encode-small-cap'] = bytes([6, 0, 50]) + fields
    seeds['txn-encode-bad-time'] = bytes([6, 0, 0]) + chunk(b'20241301250000') + fields[15:]
    seeds['txn-encode-no-serial'] = bytes([6, 0, 0]) + chunk(b'20240401120000') + \
        chunk(b'H1') + chunk(b'')
    seeds['txn-encode-gbk'] = bytes([6, 0, 0]) + chunk(b'20240401120000') + \
        chunk('医院'.encode()) + chunk(b'S1')
    # mode 7: padding to the record length
    seeds['pad-cn'] = bytes([7, item_index('SSSE/EF06', 0x0C), 3]) + H('3301')
    seeds['pad-an'] = bytes([7, item_index('SSSE/EF06', 0x09), 30]) + '张'.encode('gbk')
    seeds['pad-too-long'] = bytes([7, item_index('SSSE/EF05', 0x06), 2]) + H('20350101')
    # mode 8: a name split between 姓名 (09) and 姓名扩展 (4E)
    seeds['name-split'] = bytes([8, 0, 0]) + '阿卜杜热合曼·买买提艾力·吐𫖯䶮'.encode()
    seeds['name-split-short'] = bytes([8, 0, 0]) + '张䶮𫖯'.encode()
    seeds['name-split-over'] = bytes([8, 0, 0]) + ('A' + '张' * 14 + '𫖯' + '张' * 8 + 'B').encode()
    seeds['name-split-empty'] = bytes([8, 0, 0])
    # Found by the fuzzer: an exact-length text item (社会保障号码, 18 characters) into a 5-byte buffer.
    seeds['an-exact-small-cap'] = bytes([1, 7, 5]) + b'012404000199664227'
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_tlv (mode, tag3, buffer)

def tlv(tag, value):
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82]) + n.to_bytes(2, 'big')
    return tag + ln + value


def fci(alg=b'\x01', inner=True, sfi=True):
    a5 = (tlv(H('88'), b'\x05') if sfi else b'') + (tlv(H('9F0C'), tlv(H('86'), alg)) if inner else b'')
    body = tlv(H('84'), SSSE_NAME) + tlv(H('A5'), a5)
    if not inner and alg is not None:
        body += tlv(H('9F0C'), tlv(H('86'), alg))
    return tlv(H('6F'), body)


def tlv_seeds():
    seeds = {}
    t0 = b'\x00\x00\x00'
    f = fci()
    for mode, prefix in ((0, 'walk'), (2, 'fci')):
        seeds[f'{prefix}-des'] = bytes([mode]) + t0 + f
        seeds[f'{prefix}-sm4'] = bytes([mode]) + t0 + fci(b'\x03')
        seeds[f'{prefix}-ssf33'] = bytes([mode]) + t0 + fci(b'\x02')
        seeds[f'{prefix}-no-9f0c'] = bytes([mode]) + t0 + fci(inner=False, alg=None)
        seeds[f'{prefix}-9f0c-outside'] = bytes([mode]) + t0 + fci(inner=False)
        seeds[f'{prefix}-86-long'] = bytes([mode]) + t0 + tlv(H('6F'), tlv(H('A5'), tlv(H('9F0C'), tlv(H('86'), b'\x01\x01'))))
        seeds[f'{prefix}-truncated'] = bytes([mode]) + t0 + f[:-3]
        seeds[f'{prefix}-len81'] = bytes([mode]) + t0 + tlv(H('6F'), tlv(H('84'), bytes(200)))
        seeds[f'{prefix}-len82'] = bytes([mode]) + t0 + tlv(H('6F'), tlv(H('84'), bytes(300)))
        seeds[f'{prefix}-len83'] = bytes([mode]) + t0 + H('6F83000001') + b'\x00'
        seeds[f'{prefix}-filler'] = bytes([mode]) + t0 + b'\x00\xff' + f + b'\xff\xff'
        seeds[f'{prefix}-no-6f'] = bytes([mode]) + t0 + tlv(H('A5'), b'')
        seeds[f'{prefix}-tag3'] = bytes([mode]) + t0 + tlv(H('5F9F01'), b'\x01') + tlv(H('9F'), b'')
        seeds[f'{prefix}-tag4'] = bytes([mode]) + t0 + H('5F9F8F0100')
    seeds['find-9f0c'] = b'\x01\x00\x9f\x0c' + tlv(H('84'), b'\x01') + tlv(H('9F0C'), tlv(H('86'), b'\x03'))
    seeds['find-absent'] = b'\x01\x00\x00\x88' + f
    seeds['find-tag3'] = b'\x01\x5f\x9f\x01' + tlv(H('5F9F01'), b'\x01')
    seeds['find-malformed'] = b'\x01\x00\x00\x88' + H('6F05840F')
    for name, _raw, prof in profiles():
        seeds[f'atr-{name}'] = b'\x03' + t0 + H(prof['card']['atr'])
        seeds[f'atr-{name}-psam'] = b'\x03' + t0 + H(prof['psam']['atr'])
    seeds['atr-t0-ta-tb-tc'] = b'\x03' + t0 + H('3B F8 11 22 33 40 ') + b'0123456789ABCDE'[:8] + H('00')
    seeds['atr-td-chain'] = b'\x03' + t0 + H('3B8F8081F1FE') + bytes(15) + b'\x00'
    seeds['atr-td-cut'] = b'\x03' + t0 + H('3B8F80')
    seeds['atr-ts'] = b'\x03' + t0 + H('3A00')
    seeds['atr-len'] = b'\x03' + t0 + H('3B0201')
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_card (op, params, switches, profile, mutations...): ops in fuzz_card.c's table order, each
# with the number of params it lists there.

CARD_OPS = [('read_basic', 5), ('read_items', 8), ('internal_auth', 2), ('verify_pin', 2),
            ('change_pin', 2), ('reload_pin', 2), ('unblock_pin', 2), ('write_items', 7),
            ('hsm_step1', 2), ('hsm_step2', 2), ('claim', 3), ('medical_credentials', 2),
            ('medical_settle', 3), ('medical_clear_flag', 2)]
RESOLVE = len(CARD_OPS)

# Mutation kinds of fuzz_card.c.
PASS, REPLACE, SW, TRUNC, XOR, REMOVED, TIMEOUT, SKIP = range(8)


def card_seeds():
    seeds = {}
    names = [n for n, _r, _p in profiles()]

    def seed(tag, op, par, sw, prof, muts=b''):
        seeds[tag] = bytes([op, par, sw, names.index(prof)]) + muts

    # Every operation with every params list on the gen2 card (DES) and the gen3 card (SM4),
    # answers untouched: the valid paths.
    for op, (name, n) in enumerate(CARD_OPS):
        for par in range(n):
            for prof in ('gen2', 'gen3'):
                seed(f'{name}-{par}-{prof}', op, par, 0x40, prof)
    for prof in names:
        seed(f'read_basic-{prof}', 0, 0, 0, prof)
        seed(f'read_basic-{prof}-internal-auth', 0, 2, 0x40, prof)
    # Read authorisation: auto, always, never, remembered; no PSAM; the wrong PSAM; PSAM errors.
    for ra, tag in ((0, 'auto'), (1, 'always'), (2, 'never')):
        seed(f'readauth-{tag}', 0, 0, ra, 'gen3-readauth')
    seed('readauth-remembered', 0, 0, 0x08, 'gen3-readauth')
    seed('readauth-no-psam', 0, 0, 0x04, 'gen3-readauth')
    seed('readauth-other-psam', 0, 0, 0x10, 'gen3-readauth')
    seed('readauth-psam-sw', 0, 0, 0x80, 'gen3-readauth', bytes([SKIP, 7, SW, 0x6A, 0x88]))
    seed('internal-auth-psam-removed', 2, 0, 0x80, 'gen2', bytes([SKIP, 4, REMOVED]))
    seed('write-no-psam', 7, 3, 0x04, 'gen2')
    seed('pin-blocked-verify', 3, 0, 0, 'pin-blocked')
    seed('wrongkey-write', 7, 0, 0, 'gen2-wrongkey')
    seed('badcardid-verify-id', 0, 3, 0x40, 'gen2-badcardid')
    seed('gen1-write', 7, 0, 0, 'gen1')
    seed('expired-write', 7, 3, 0, 'expired')
    seed('t0-read-items', 1, 1, 0, 't0-quirks')
    seed('tagmode-read-items', 1, 0, 0, 'gen2-tagmode')
    # Answers mutated on the way (the first APDU is SELECT SSSE; reads follow).
    seed('select-6a82', 0, 0, 0, 'gen2', bytes([SW, 0x6A, 0x82]))
    seed('select-fci-garbage', 0, 0, 0, 'gen2', bytes([REPLACE]) + chunk(H('6F05A5039F0C') + H('9000')))
    seed('select-fci-ssf33', 0, 0, 0, 'gen2', bytes([REPLACE]) + chunk(
        H('6F0DA50B9F0C03860102') + H('88010501') + H('9000')))
    seed('select-no-fci', 0, 0, 0, 'gen2', bytes([REPLACE]) + chunk(H('9000')))
    seed('select-61xx', 0, 0, 0, 'gen2', bytes([REPLACE]) + chunk(H('611B')))
    seed('select-short', 0, 0, 0, 'gen2', bytes([REPLACE]) + chunk(H('90')))
    seed('select-removed', 0, 0, 0, 'gen2', bytes([REMOVED]))
    seed('select-timeout', 0, 0, 0, 'gen2', bytes([TIMEOUT]))
    seed('read-6cxx', 0, 0, 0, 'gen2', bytes([PASS, SW, 0x6C, 0x06]))
    seed('read-6cxx-twice', 0, 0, 0, 'gen2', bytes([PASS, SW, 0x6C, 0x06, SW, 0x6C, 0x05]))
    seed('read-6a86', 0, 0, 0, 'gen2', bytes([PASS, SW, 0x6A, 0x86]))
    seed('read-6a83', 0, 0, 0, 'gen2', bytes([PASS, SW, 0x6A, 0x83]))
    seed('read-wrong-tag', 0, 0, 0, 'gen2', bytes([PASS, XOR, 0, 0x01]))
    seed('read-wrong-len', 0, 0, 0, 'gen2', bytes([PASS, XOR, 1, 0x01]))
    seed('read-truncated', 0, 0, 0, 'gen2', bytes([PASS, TRUNC, 3]))
    seed('read-spec-version', 0, 0, 0, 'gen2', bytes([PASS, REPLACE]) + chunk(b'\x03\x042x00\x90\x00'))
    seed('read-card-id-rid', 0, 0, 0, 'gen2', bytes([PASS, PASS, XOR, 5, 0xFF]))
    seed('read-card-id-bcd', 0, 0, 0, 'gen2', bytes([PASS, PASS, XOR, 2, 0x0F]))
    seed('read-date-bad', 0, 0, 0, 'gen2', bytes([SKIP, 3, XOR, 3, 0xFF]))
    seed('read-card-number-check', 0, 0, 0, 'gen2', bytes([SKIP, 5, XOR, 10, 0x01]))
    seed('read-name-not-text', 0, 0, 0, 'gen2', bytes([SKIP, 7, XOR, 2, 0x7F]))
    seed('read-ssn-61xx', 0, 0, 0, 'gen2', bytes([SKIP, 6, REPLACE]) + chunk(H('6114')))
    seed('read-6982-noauth', 0, 0, 0, 'gen2', bytes([SKIP, 6, SW, 0x69, 0x82]))
    seed('read-removed-midway', 0, 0, 0, 'gen2', bytes([SKIP, 8, REMOVED]))
    seed('ext-auth-63c2', 0, 0, 0, 'gen3-readauth', bytes([SKIP, 7, PASS, SW, 0x63, 0xC2]))
    seed('ext-auth-63c0', 0, 0, 0, 'gen3-readauth', bytes([SKIP, 7, PASS, SW, 0x63, 0xC0]))
    seed('ext-auth-6983', 0, 0, 0, 'gen3-readauth', bytes([SKIP, 7, PASS, SW, 0x69, 0x83]))
    seed('challenge-short', 0, 0, 0, 'gen3-readauth', bytes([SKIP, 7, TRUNC, 6]))
    seed('internal-auth-short', 2, 0, 0, 'gen2', bytes([SKIP, 4, TRUNC, 5]))
    seed('internal-auth-6a88', 2, 0, 0, 'gen2', bytes([SKIP, 4, SW, 0x6A, 0x88]))
    seed('internal-auth-wrong', 2, 0, 0, 'gen2', bytes([SKIP, 4, XOR, 0, 0x01]))
    seed('verify-63c1', 3, 0, 0, 'gen2', bytes([SKIP, 3, SW, 0x63, 0xC1]))
    seed('verify-6983', 3, 0, 0, 'gen2', bytes([SKIP, 3, SW, 0x69, 0x83]))
    seed('reload-6988', 5, 0, 0, 'gen2', bytes([SKIP, 5, SW, 0x69, 0x88]))
    seed('unblock-6a80', 6, 0, 0, 'gen2', bytes([SKIP, 5, SW, 0x6A, 0x80]))
    seed('write-removed-after-intent', 7, 3, 0x20, 'gen2', bytes([SKIP, 8, REMOVED]))
    seed('write-timeout-after-intent', 7, 0, 0x20, 'gen2', bytes([SKIP, 6, TIMEOUT]))
    seed('write-6988', 7, 3, 0, 'gen2', bytes([SKIP, 8, SW, 0x69, 0x88]))
    seed('append-removed', 7, 5, 0x20, 'gen2', bytes([SKIP, 7, REMOVED]))
    seed('write-ef06-6982', 7, 1, 0, 'gen2', bytes([SKIP, 8, SW, 0x69, 0x82]))
    # The two-step read's step 1 (spec §13.1): read authorisation asked by a READ answered
    # 6982, then the challenge; the card's INTERNAL AUTH answer cut short.
    seed('hsm-step1-readauth', 8, 0, 0, 'gen3-readauth')
    seed('hsm-step1-int-auth-short', 8, 0, 0, 'gen2', bytes([SKIP, 3, TRUNC, 5]))
    seed('hsm-step1-challenge-6985', 8, 0, 0, 'gen3-readauth', bytes([SKIP, 5, SW, 0x69, 0x85]))
    seed('resolve-nothing', RESOLVE, 0, 0, 'gen2')
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_rpc (switches, request lines)

def rpc_seeds():
    seeds = {}

    def req(method, params=None, rid=1):
        m = {'jsonrpc': '2.0', 'id': rid, 'method': method}
        if params is not None:
            m['params'] = params
        return json.dumps(m, ensure_ascii=False)

    def seed(tag, sw, lines):
        seeds[tag] = bytes([sw]) + b'\n'.join(x if isinstance(x, bytes) else x.encode()
                                               for x in lines)

    everything = [req('system.info'), req('reader.list', rid=2), req('events.subscribe', rid=3),
                  req('card.read_basic', rid=4),
                  req('card.read_basic', {'reader': 'pcsc-virtual-pcd-a-00-00',
                                          'internal_auth': True}, rid=5),
                  req('card.read_items', {'file': 'DF04/EF08', 'items': ['40']}, rid=6),
                  req('card.internal_auth', rid=7),
                  req('card.verify_pin', {'pin': '123456'}, rid=8),
                  req('card.change_pin', {'old_pin': '123456', 'new_pin': '654321'}, rid=9),
                  req('card.reload_pin', {'new_pin': '123456'}, rid=10),
                  req('card.unblock_pin', {'new_pin': '135790'}, rid=11),
                  req('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '12'}}, rid=12),
                  req('events.unsubscribe', rid=13)]
    seed('all-methods', 0x01, everything)
    seed('all-methods-at-end', 0x00, everything)
    seed('all-methods-client-gone', 0x02, everything)
    seed('all-methods-refused', 0x04, everything)
    seed('all-methods-no-backend', 0x08, everything)
    seed('all-methods-low-limits', 0x10, everything)
    seed('events', 0x21, [req('events.subscribe'), req('reader.list', rid=2)])
    seed('client-full', 0x40, everything[:3])
    seed('parse-errors', 0x01, ['{', '[]', '[1]', '"x"', '1', 'null', '{"jsonrpc":"2.0"', '',
                                '\r', '{}\r', b'\xff\xfe', b'{"jsonrpc":"2.0","id":1,"method":"system.info"\x00}'])
    seed('envelope', 0x01, [
        '{"jsonrpc":"1.0","id":1,"method":"system.info"}',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"2.0","id":{"a":1},"method":"system.info"}',
        '{"jsonrpc":"2.0","id":[1],"method":"system.info"}',
        '{"jsonrpc":"2.0","id":1.5,"method":"system.info"}',
        '{"jsonrpc":"2.0","id":"abc\\n{\\"journal\\"","method":"system.info"}',
        '{"jsonrpc":"2.0","id":null,"method":"system.info"}',
        '{"jsonrpc":"2.0","method":"system.info"}',
        '{"jsonrpc":"2.0","id":1,"method":7}',
        '{"jsonrpc":"2.0","id":1,"method":"nope"}',
        '{"jsonrpc":"2.0","id":1,"method":"card.read_basic","params":[]}',
        '{"jsonrpc":"2.0","id":1,"method":"card.read_basic","params":"x"}',
        '{"jsonrpc":"2.0","id":1,"method":"system.info","params":{"x":1}}',
        '{"jsonrpc":"2.0","id":1,"method":"system.info","extra":1}',
        '{"jsonrpc":"2.0","id":99999999999999999999,"method":"system.info"}',
        '{"jsonrpc":"2.0","id":-1,"method":"system.info"}',
        '{"jsonrpc":"2.0","id":1,"method":"system.info","id":2}',
        '{"jsonrpc":"2.0","id":"\\ud800","method":"system.info"}',
        '{"jsonrpc":"2.0","id":1,"method":"card.\\u0000read_basic"}'])
    seed('deep', 0x11, ['{"jsonrpc":"2.0","id":1,"method":"card.read_basic","params":{"reader":'
                        + '[' * 40 + ']' * 40 + '}}', '[' * 5000])
    seed('params', 0x01, [
        req('card.read_basic', {'reader': 7}),
        req('card.read_basic', {'reader': ''}),
        req('card.read_basic', {'internal_auth': 'yes'}),
        req('card.read_basic', {'verify_card_id': True}),
        req('card.read_basic', {'colour': 'blue'}),
        req('card.read_items', {'file': 'SSSE/EF99', 'items': ['01']}),
        req('card.read_items', {'file': 'SSSE/EF05', 'items': []}),
        req('card.read_items', {'file': 'SSSE/EF05', 'items': ['01', '01']}),
        req('card.read_items', {'file': 'SSSE/EF05', 'items': ['zz']}),
        req('card.read_items', {'file': 'SSSE/EF05', 'items': ['%02X' % i for i in range(70)]}),
        req('card.read_items', {'file': 'DF02/EF1E', 'items': ['01']}),
        req('card.verify_pin', {'pin': '12'}),
        req('card.verify_pin', {'pin': '12345a'}),
        req('card.verify_pin', {'pin': 123456}),
        req('card.verify_pin', {}),
        req('card.change_pin', {'old_pin': '123456', 'new_pin': '123456'}),
        req('card.change_pin', {'old_pin': '654321', 'new_pin': '123456'}),
        req('card.reload_pin', {'new_pin': '1' * 13}),
        req('card.write_items', {'file': 'SSSE/EF05', 'items': {'01': '00'}}),
        req('card.write_items', {'file': 'SSSE/EF05', 'items': {'06': '20351301'}}),
        req('card.write_items', {'file': 'SSSE/EF06', 'items': {'09': '张' * 20}}),
        req('card.write_items', {'file': 'DF04/EF08', 'items': {'40': {'time': 'x'}}}),
        req('card.write_items', {'file': 'DF04/EF08', 'items': {'40': {
            'time': '20240401120000', 'institution': 'H1', 'settlement_no': 'S1', 'total': -1,
            'personal_account': 0, 'pooled': 0}}}),
        req('card.write_items', {'file': 'DF04/EF05', 'items': {}}),
        req('card.write_items', {'file': 'DF04/EF05', 'items': ['31']}),
    ])
    seed('inflight', 0x10, [req('card.read_basic', rid=i) for i in range(1, 6)])
    seed('unicode', 0x01, [req('card.read_items', {'file': 'SSSE/EF06\u0000', 'items': ['09']}),
                           b'{"jsonrpc":"2.0","id":"\xe5\xbc","method":"system.info"}'])
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_ccid (mode, a, b, message): written from CCID Rev 1.1 §6 and ISO/IEC 7816-3 §8, §9, §11.

def ccid_seeds():
    seeds = {}

    def hdr(t, length, slot=0, seq=0, b7=0, b8=0, b9=0):
        return bytes([t]) + length.to_bytes(4, 'little') + bytes([slot, seq, b7, b8, b9])

    atr = H('3B8E80010081544C92868433010000BF7C7A8D')
    # Replies (mode 0; a = expected type offset, b = slot).
    seeds['reply-datablock-atr'] = bytes([0, 0, 0]) + hdr(0x80, len(atr)) + atr
    seeds['reply-datablock-9000'] = bytes([0, 0, 0]) + hdr(0x80, 2, seq=1) + H('9000')
    seeds['reply-time-extension'] = bytes([0, 0, 0]) + hdr(0x80, 0, b7=0x80, b8=0x01)
    seeds['reply-failed-mute'] = bytes([0, 0, 0]) + hdr(0x80, 0, b7=0x41, b8=0xFE)
    seeds['reply-absent'] = bytes([0, 1, 0]) + hdr(0x81, 0, b7=0x42, b8=0xFE)
    seeds['reply-busy'] = bytes([0, 0, 0]) + hdr(0x80, 0, b7=0x40, b8=0xE0)
    seeds['reply-parameters-t1'] = bytes([0, 2, 0]) + hdr(0x82, 7, b9=1) + H('1100FE00000020')
    seeds['reply-escape'] = bytes([0, 3, 0]) + hdr(0x83, 1) + b'\x01'
    seeds['reply-rate'] = bytes([0, 4, 0]) + hdr(0x84, 8) + bytes(8)
    seeds['reply-truncated'] = bytes([0, 0, 0]) + hdr(0x80, 5) + H('9000')
    seeds['reply-trailing'] = bytes([0, 0, 0]) + hdr(0x80, 1) + H('9000')
    seeds['reply-unknown-type'] = bytes([0, 0, 0]) + hdr(0x99, 0)
    seeds['reply-wrong-slot'] = bytes([0, 0, 5]) + hdr(0x80, 0, slot=3)
    seeds['reply-seq-checked'] = bytes([0, 0x80, 0]) + hdr(0x80, 0, seq=7)
    seeds['reply-huge-length'] = bytes([0, 0, 0]) + hdr(0x80, 0xFFFFFFFF)
    # Class descriptor (mode 1), as an interface's extra descriptors.
    desc = bytes([54, 0x21]) + H('1001') + bytes([0, 7]) + (3).to_bytes(4, 'little') + \
        (4000).to_bytes(4, 'little') + (8000).to_bytes(4, 'little') + b'\x00' + \
        (10752).to_bytes(4, 'little') + (344086).to_bytes(4, 'little') + b'\x00' + \
        (254).to_bytes(4, 'little') + bytes(4) + bytes(4) + (0x000404BE).to_bytes(4, 'little') + \
        (271).to_bytes(4, 'little') + b'\xff\xff' + bytes(2) + b'\x00\x01'
    assert len(desc) == 54
    seeds['desc-alone'] = bytes([1, 0, 0]) + desc
    seeds['desc-after-other'] = bytes([1, 0, 0]) + bytes([9, 0x24, 1, 2, 3, 4, 5, 6, 7]) + desc
    seeds['desc-type-ff'] = bytes([1, 0, 0]) + desc[:1] + b'\xff' + desc[2:]
    seeds['desc-short-length'] = bytes([1, 0, 0]) + b'\x36\x21' + desc[2:40]
    seeds['desc-zero-length-record'] = bytes([1, 0, 0]) + b'\x00\x24' + desc
    seeds['desc-many-slots'] = bytes([1, 0, 0]) + desc[:4] + b'\x20' + desc[5:]
    # Interrupt IN (mode 2; a = slots).
    seeds['notify-1-slot'] = bytes([2, 1, 0]) + H('5003')
    seeds['notify-5-slots'] = bytes([2, 5, 0]) + H('50FFFF03')
    seeds['notify-short'] = bytes([2, 9, 0]) + H('50FF')
    seeds['hw-error'] = bytes([2, 1, 0]) + H('51000102')
    seeds['interrupt-unknown'] = bytes([2, 1, 0]) + H('52')
    # ATRs (mode 3; a = reader protocols + max rate switch, b = clock / 100 kHz).
    seeds['atr-gen2-t1'] = bytes([3, 3, 40]) + atr
    seeds['atr-t0'] = bytes([3, 1, 40]) + H('3B6C00005053414D2D4445532D303031')
    seeds['atr-ta1-fast'] = bytes([3, 3, 40]) + H('3B9613801F038031A073BE21') + bytes(1)
    seeds['atr-ta2-specific'] = bytes([3, 2, 40]) + H('3BD518FF8191FE1FC38073C821100A')
    seeds['atr-t1-ifsc-bwi'] = bytes([3, 2, 40]) + H('3BF81300008131FE45') + b'JCOP41V2' + b'\x00'
    seeds['atr-tck-bad'] = bytes([3, 3, 40]) + atr[:-1] + bytes([atr[-1] ^ 1])
    seeds['atr-inverse'] = bytes([3, 3, 0]) + H('3F2400') + H('3000')
    seeds['atr-no-common-protocol'] = bytes([3, 1, 40]) + atr
    # T=1 (mode 4; a = IFSC (bit 0: negotiate IFSD, bit 1: resync on failure), b = cap).
    def blk(pcb, inf=b''):
        b = bytes([0, pcb, len(inf)]) + inf
        x = 0
        for v in b:
            x ^= v
        return b + bytes([x])
    apdu = H('00A404000F') + SSSE_NAME
    seeds['t1-simple'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0x00, H('9000')))
    seeds['t1-ifsd'] = bytes([4, 0x21, 0]) + chunk(apdu) + chunk(blk(0xE1, b'\xfe')) + \
        chunk(blk(0x00, H('9000')))
    seeds['t1-chained-answer'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0x20, H('6F19'))) + \
        chunk(blk(0x40, H('9000')))
    seeds['t1-chained-command'] = bytes([4, 0x08, 0]) + chunk(apdu) + chunk(blk(0x90)) + \
        chunk(blk(0x80)) + chunk(blk(0x00, H('9000')))
    seeds['t1-wtx'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0xC3, b'\x05')) + \
        chunk(blk(0x00, H('9000')))
    seeds['t1-ifs-request'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0xC1, b'\x40')) + \
        chunk(blk(0x00, H('9000')))
    seeds['t1-abort'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0xC2))
    seeds['t1-bad-lrc'] = bytes([4, 0x22, 0]) + chunk(apdu) + chunk(H('000002900093')) + \
        chunk(blk(0x00, H('9000')))
    seeds['t1-lost-blocks'] = bytes([4, 0x22, 0]) + chunk(apdu) + chunk(b'\xee') * 4 + \
        chunk(blk(0xE0)) + chunk(blk(0x00, H('9000')))
    seeds['t1-r-block-error'] = bytes([4, 0x20, 0]) + chunk(apdu) + chunk(blk(0x81)) + \
        chunk(blk(0x00, H('9000')))
    seeds['t1-answer-too-long'] = bytes([4, 0x20, 4]) + chunk(apdu) + chunk(blk(0x00, bytes(20)))
    # T=0 (mode 5; b = cap).
    seeds['t0-case2-6c'] = bytes([5, 0, 0]) + chunk(H('00B2012C00')) + chunk(H('6C12')) + \
        chunk(bytes(18) + H('9000'))
    seeds['t0-case4-61'] = bytes([5, 0, 0]) + chunk(apdu) + chunk(H('611B')) + \
        chunk(bytes(27) + H('9000'))
    seeds['t0-61-chain'] = bytes([5, 0, 0]) + chunk(apdu) + chunk(H('6110')) + \
        chunk(bytes(16) + H('6105')) + chunk(bytes(5) + H('9000'))
    seeds['t0-case1'] = bytes([5, 0, 0]) + chunk(H('00A40000')) + chunk(H('9000'))
    seeds['t0-bad-lc'] = bytes([5, 0, 0]) + chunk(H('00A4040005') + b'\x01')
    seeds['t0-extended'] = bytes([5, 0, 0]) + chunk(H('00B2000000FFFF'))
    seeds['t0-short-answer'] = bytes([5, 0, 0]) + chunk(H('00B2012C00')) + chunk(H('90'))
    seeds['t0-too-much'] = bytes([5, 0, 8]) + chunk(H('00B2012C00')) + chunk(bytes(20) + H('9000'))
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_hsm_wire (mode, two parameter bytes, body): the key server's answers of spec §13.2, written
# by hand from the spec: an exchange's responses, the terminal number, the error bodies.

def hsm_wire_seeds():
    seeds = {}

    def exch(name, n_sent, body):
        seeds[f'exchange-{name}'] = bytes([0, n_sent - 1, 0]) + body.encode()

    def term(name, body):
        seeds[f'terminal-{name}'] = b'\x01\x00\x00' + body.encode()

    def err(name, status, body):
        seeds[f'http-{name}'] = b'\x02' + status.to_bytes(2, 'big') + body.encode()

    exch('des-cryptogram', 2, '{"responses": ["9000", "4BA5C1F9D6C57F0F9000"]}')
    exch('sm4-cryptogram', 2, '{"responses":["9000","5E581E4BB536B207A1A2A3A4A5A6A7A89000"]}')
    exch('mac', 2, '{"responses":["9000","F45CDC9E9000"]}')
    exch('encrypt', 2, '{"responses":["9000","DA44BA6FAA847AB59000"]}')
    exch('stopped', 2, '{"responses":["6A88"]}')
    exch('second-refused', 2, '{"responses":["9000","6985"]}')
    exch('ran-on', 2, '{"responses":["6A88","9000"]}')
    exch('short', 2, '{"responses":["9000"]}')
    exch('too-many', 1, '{"responses":["9000","9000"]}')
    exch('unfollowed-61', 2, '{"responses":["9000","6108"]}')
    exch('odd-hex', 1, '{"responses":["900"]}')
    exch('not-hex', 1, '{"responses":["90g0"]}')
    exch('number', 1, '{"responses":[36864]}')
    exch('empty', 1, '{"responses":[]}')
    exch('not-array', 1, '{"responses":"9000"}')
    exch('duplicate', 1, '{"responses":["9000"],"responses":["9000"]}')
    exch('extra-members', 1, '{"id":1,"responses":["9000"],"x":{"y":[null,true]}}')
    exch('long', 1, '{"responses":["' + 'AB' * 256 + '9000"]}')
    exch('too-long', 1, '{"responses":["' + 'AB' * 257 + '9000"]}')
    exch('sixteen', 16, '{"responses":[' + ','.join(['"9000"'] * 16) + ']}')
    exch('escaped', 1, '{"responses":["\\u0039000"]}')
    exch('cut', 1, '{"responses":["9000"]')
    term('good', '{"terminal_number": "330200000001"}')
    term('lower', '{"terminal_number":"0a0b0c0d0e0f"}')
    term('short', '{"terminal_number":"33020000000"}')
    term('number', '{"terminal_number":330200000001}')
    term('not-hex', '{"terminal_number":"33020000000Z"}')
    term('array', '["330200000001"]')
    err('no-psam', 404, '{"error":{"name":"no_psam","message":"no SM4 PSAM"}}')
    err('bare-404', 404, '<html><body>Not Found</body></html>')
    err('403', 403, '{"error":{"name":"forbidden","message":"desk suspended"}}')
    err('401', 401, '')
    err('503', 503, '{"error":{"name":"busy","message":"all PSAMs busy"}}')
    err('500', 500, '{"error":{"name":"internal","message":"\\u001b[31m\\u4e2d"}}')
    err('400', 400, '{"error":{"name":"bad_request","message":"apdus must be an array"}}')
    err('302', 302, '')
    err('error-not-object', 404, '{"error":"no_psam"}')
    return seeds


def main():
    check_vectors()
    write_corpus('fuzz_sim_apdu', sim_apdu_seeds())
    write_corpus('fuzz_sim_profile', sim_profile_seeds())
    write_corpus('fuzz_items', items_seeds())
    write_corpus('fuzz_tlv', tlv_seeds())
    write_corpus('fuzz_card', card_seeds())
    write_corpus('fuzz_rpc', rpc_seeds())
    write_corpus('fuzz_ccid', ccid_seeds())
    write_corpus('fuzz_hsm_wire', hsm_wire_seeds())

if __name__ == '__main__':
    sys.exit(main())
