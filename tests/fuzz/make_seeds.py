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
        'name-not-gbk': ('card.holder.name', '\U0001F600'),
        'name-empty': ('card.holder.name', ''),
        'sex': ('card.holder.sex', '3'),
        'nation': ('card.holder.nation', '1'),
        'birth-place': ('card.holder.birth_place', '3301'),
        'birth-date': ('card.holder.birth_date', '19901301'),
        'ef0d-gen2': ('card.ef0d', {'person_id': 'P1', 'first_region': '330100'}),
        'medical-region': ('card.medical.region', 330100),
        'medical-person-no': ('card.medical.person_no', '3' * 21),
        'txn-capacity': ('card.medical.transaction_capacity', 65),
        'txn-time': ('card.medical.transactions', [{'time': '20241301000000', 'hospital': 'H',
                                                     'serial': 'S', 'total': 1, 'account': 0,
                                                     'pooled': 1}]),
        'txn-amount': ('card.medical.transactions', [{'time': '20240101000000', 'hospital': 'H',
                                                       'serial': 'S', 'total': 4294967296,
                                                       'account': 0, 'pooled': 1}]),
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
    enc('name-not-gbk', 'SSSE/EF06', 0x09, '\U0001F600'.encode())
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


def main():
    check_vectors()
    write_corpus('fuzz_sim_apdu', sim_apdu_seeds())
    write_corpus('fuzz_sim_profile', sim_profile_seeds())
    write_corpus('fuzz_items', items_seeds())
    write_corpus('fuzz_tlv', tlv_seeds())
    for extra in EXTRA:
        extra()


EXTRA = []   # later corpora register here

if __name__ == '__main__':
    sys.exit(main())
