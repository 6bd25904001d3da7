"""The province's key server as the two-step read (spec §13.1) needs it, played by a test: from a
step-1 string and the master keys of a simulator profile, the key string 内部认证结果|外部认证数据|.

The cryptography is written from spec §12.2–12.3 with python3-cryptography (3DES, SM4), not taken
from sscard, and checked at import against the §13.1 vectors (DES and SM4), so that a test that
uses it compares the daemon with the spec rather than with itself.
"""

import json

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:
    TripleDES = algorithms.TripleDES

import harness

H = bytes.fromhex


def _ecb(alg, data):
    e = Cipher(alg, modes.ECB()).encryptor()
    return e.update(data) + e.finalize()


def _enc3(k, x):
    """2-key 3DES-EDE (K1 K2 K1), written as the 3-key form the library wants."""
    return _ecb(TripleDES(k + k[:8]), x)


def _sm4(k, x):
    return _ecb(algorithms.SM4(k), x)


def _div(alg, k, f):
    inv = bytes(~b & 0xFF for b in f)
    return _enc3(k, f) + _enc3(k, inv) if alg == 'des' else _sm4(k, f + inv)


def cryptogram(alg, master, region, card_div, r, x):
    """C of §12.3 with K_card = Div(Div(master, cityDiv), cardDiv), cityDiv = region ‖ "sx"."""
    kc = _div(alg, _div(alg, master, region.encode() + b'sx'), card_div)
    if alg == 'des':
        return _ecb(TripleDES(_enc3(kc, r) * 3), x)   # single DES: K K K
    c16 = _sm4(_sm4(kc, r + bytes(8)), x + bytes(8))
    return bytes(a ^ b for a, b in zip(c16[:8], c16[8:]))


def key_string(step1, internal_master, read_auth_master):
    """The key server's answer to a step-1 string (both masters as bytes)."""
    f = step1.split('|')
    if len(f) != 10 or f[9] != '':
        raise ValueError(f'not a step-1 string: {step1!r}')
    region, hist, alg_id, _card_id, p, x, r1, r2, _term = f[:9]
    alg = {'01': 'des', '03': 'sm4'}[alg_id]
    card_div = H(hist)[-8:]
    c = cryptogram(alg, internal_master, region, card_div, H(p), H(x))
    ext = ''
    if r1:
        assert r1 == r2
        ext = (cryptogram(alg, read_auth_master, region, card_div, H(r1), H(r1)) + H(r1)).hex()
    return f'{c.hex().upper()}|{ext.upper()}|'


def profile_masters(profile):
    """(internal, read_auth) master keys of a shipped simulator profile."""
    with open(harness.profile_path(profile)) as f:
        keys = json.load(f)['card']['keys']
    return H(keys['internal']), H(keys['read_auth'])


def _check_vectors():
    master = H('00112233445566778899AABBCCDDEEFF')
    for alg_id, want in (('01', 'D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|'),
                         ('03', 'D9B357F70108DCD8|5E581E4BB536B2071122334455667788|')):
        step1 = (f'330100|0011223344556677|{alg_id}|330100D15600000544556677A1DF7BC8|'
                 '0102030405060708|A1A2A3A4A5A6A7A8|1122334455667788|1122334455667788|'
                 '000000000000|')
        got = key_string(step1, master, master)
        if got != want:
            raise AssertionError(f'province.py disagrees with spec §13.1: {got} != {want}')


_check_vectors()
