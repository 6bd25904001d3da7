#!/usr/bin/python3
"""sscardd end to end, claim.verify_holder (issue 15, part 2): the benefit-claim desk proves the
holder present (VERIFY) and the card genuine (INTERNAL AUTH), and gets a receipt signed by the
desk's key, through a real pcscd + vpcd + sscard-sim (gen2 with the DES PSAM, gen3 with the SM4
PSAM) + sscardd.

- the result: holder (card.read_basic's fields), genuine, pin_verified, the receipt (one compact
  JSON object with the fields of docs/api.md, in that order), the signature and "SM2-SM3";
- the receipt's signature verified with the openssl command line (SM3, distid 1234567812345678)
  and a receipt with one byte altered rejected; with an Ed25519 key: "Ed25519", the same check
  without digest;
- the receipt's internal_auth: the plaintext is the first 8 bytes of SM3 over
  "request_id|time|terminal_number|card_id" (openssl dgst), and the card's answer is recomputed
  here from the profile's master key (firmware-stubs/profiles/*.json "internal", spec §12.2/§12.3,
  with `openssl enc`; the helper is checked first against spec §12.8's vector);
- a fake card (gen2-wrongkey) gets SSC_ENOTGENUINE (std −21) and its PIN counter is unchanged (a
  wrong VERIFY afterwards still has 2 tries left); a wrong PIN gets SSC_EPINWRONG (std −51,
  retries_left 2) and no receipt;
- no [receipts] key_file: SSC_ECONFIG before the card; a key file others can read: the daemon
  refuses to start; sscardctl claim / receipt pubkey / receipt verify;
- medical.credentials (gen2, gen3): the NHSA fields against card.read_basic and DF04/EF05 30, its
  proof recomputed the same way, SSC_ENOTGENUINE for the fake card; sscardctl medical credentials.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_claim.py [-k name]
"""

import base64
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import hsmkit  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

GEN2, GEN3, WRONG, DES_PSAM, SM4_PSAM = 0, 1, 2, 4, 5

# The profiles' INTERNAL AUTH master keys (PSAM usage 47 / index 11) and PINs, copied by hand.
INTERNAL_MASTER = {'des': '4711A00102030405060708090A0B0C0D',     # gen2.json
                   'sm4': '4711B00102030405060708090A0B0C0D'}     # gen3.json
PINS = {GEN2: '123456', GEN3: '888888', WRONG: '123456'}
ORDER = ['version', 'time', 'request_id', 'terminal_number', 'reader', 'card_number', 'card_id',
         'ssn', 'region_code', 'atr_historical', 'algorithm', 'internal_auth', 'pin_verified']


def openssl(*args, data=None):
    p = subprocess.run(['openssl', *args], input=data, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def enc(cipher, key_hex, data):
    extra = ['-provider', 'legacy', '-provider', 'default'] if cipher == '-des-ecb' else []
    rc, out, err = openssl('enc', cipher, '-K', key_hex, '-nopad', '-e', *extra, data=data)
    assert rc == 0, err
    return out


def not_(b):
    return bytes(x ^ 0xFF for x in b)


def cryptogram(alg, master_hex, region, card_div, p, x):
    """Spec §12.2 and §12.3, computed here with openssl enc: K_card from the master key, then the
    session key from P and the cryptogram of X (8 bytes)."""
    city = region.encode() + b'sx'
    if alg == 'des':
        def div(k, f):
            return enc('-des-ede', k.hex(), f) + enc('-des-ede', k.hex(), not_(f))
        k_card = div(div(bytes.fromhex(master_hex), city), card_div)
        ks = enc('-des-ede', k_card.hex(), p)
        return enc('-des-ecb', ks.hex(), x)
    def div4(k, f):
        return enc('-sm4-ecb', k.hex(), f + not_(f))
    k_card = div4(div4(bytes.fromhex(master_hex), city), card_div)
    ks = enc('-sm4-ecb', k_card.hex(), p + bytes(8))
    c16 = enc('-sm4-ecb', ks.hex(), x + bytes(8))
    return bytes(a ^ b for a, b in zip(c16[:8], c16[8:]))


class Desk(sscardd.DaemonTestCase):
    """Three user cards (gen2, gen3, gen2-wrongkey) and the DES and SM4 PSAMs; helpers only."""
    readers = 6

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.cards = {GEN2: self.h.start_card('gen2', slot=GEN2),
                      GEN3: self.h.start_card('gen3', slot=GEN3),
                      WRONG: self.h.start_card('gen2-wrongkey', slot=WRONG)}
        self.h.start_psam('gen2', slot=DES_PSAM)
        self.h.start_psam('gen3', slot=SM4_PSAM)

    def key(self, algorithm='SM2', mode=0o600):
        path = self.h.path(f'receipt-{algorithm}.pem')
        rc, out, err = openssl('genpkey', '-algorithm', algorithm, '-out', path)
        self.assertEqual(rc, 0, err)
        os.chmod(path, mode)
        pub = path + '.pub'
        rc, out, err = openssl('pkey', '-in', path, '-pubout', '-out', pub)
        self.assertEqual(rc, 0, err)
        return path, pub

    def start(self, key_file=None):
        config = {'receipts': {'key_file': key_file}} if key_file else None
        self.start_daemon(config=config)
        self.wait_roles({GEN2: 'user', GEN3: 'user', WRONG: 'user', DES_PSAM: 'psam',
                         SM4_PSAM: 'psam'})

    def claim(self, slot, pin=None, **more):
        params = {'reader': slot_id(slot), 'pin': pin or PINS[slot]}
        params.update(more)
        return self.c.call('claim.verify_holder', params, timeout=20)

    def openssl_verify(self, pub, receipt, sig, sm2=True):
        d = self.h.path('verify')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'receipt'), 'wb') as f:
            f.write(receipt)
        with open(os.path.join(d, 'sig'), 'wb') as f:
            f.write(sig)
        args = ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in',
                os.path.join(d, 'receipt'), '-sigfile', os.path.join(d, 'sig')]
        if sm2:
            args += ['-digest', 'sm3', '-pkeyopt', 'distid:1234567812345678']
        rc, out, err = openssl(*args)
        return rc == 0 and b'Signature Verified Successfully' in out



class Claim(Desk):

    def test_cryptogram_helper(self):
        # Spec §12.8: the helper's session key and cryptogram from a given K_card agree.
        k_card = bytes.fromhex('6338AE1CE827A076114743A2BB2FB55E')
        ks = enc('-des-ede', k_card.hex(), bytes.fromhex('0102030405060708'))
        self.assertEqual(enc('-des-ecb', ks.hex(), bytes.fromhex('A1A2A3A4A5A6A7A8')).hex(),
                         'd2ffa2e969f241c5')
        k_card = bytes.fromhex('3D41F42177A78BF3C435D48F6F53C7C0')
        ks = enc('-sm4-ecb', k_card.hex(), bytes.fromhex('0102030405060708') + bytes(8))
        c16 = enc('-sm4-ecb', ks.hex(), bytes.fromhex('A1A2A3A4A5A6A7A8') + bytes(8))
        self.assertEqual(bytes(a ^ b for a, b in zip(c16[:8], c16[8:])).hex(),
                         'd9b357f70108dcd8')

    def check_claim(self, slot, pub, request_id):
        basic = self.c.call('card.read_basic', {'reader': slot_id(slot)})
        r = self.claim(slot, request_id=request_id)
        self.assertEqual(set(r), {'holder', 'genuine', 'pin_verified', 'receipt', 'signature',
                                  'algorithm'})
        self.assertEqual((r['genuine'], r['pin_verified'], r['algorithm']),
                         (True, True, 'SM2-SM3'))
        for k, v in r['holder'].items():
            self.assertEqual(v, basic[k], k)
        self.assertEqual(set(basic) - set(r['holder']),
                         {'terminal_number', 'terminal_device', 'algorithm', 'standard'})
        self.assertIsInstance(r['receipt'], str)
        rec = json.loads(r['receipt'])
        self.assertEqual(list(rec), ORDER)
        self.assertEqual(r['receipt'], json.dumps(rec, separators=(',', ':'),
                                                  ensure_ascii=False))
        self.assertEqual(rec['version'], 1)
        self.assertRegex(rec['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertEqual(rec['request_id'], request_id)
        self.assertEqual(rec['reader'], slot_id(slot))
        for k in ('terminal_number', 'card_number', 'card_id', 'ssn', 'region_code',
                  'atr_historical', 'algorithm'):
            self.assertEqual(rec[k], basic[k], k)
        self.assertNotIn('name', rec)
        self.assertIs(rec['pin_verified'], True)
        ia = rec['internal_auth']
        self.assertEqual(set(ia), {'factor', 'plaintext', 'answer'})
        # The plaintext binds the card's answer to this receipt.
        rc, out, err = openssl('dgst', '-sm3', '-binary', data='|'.join(
            [request_id, rec['time'], rec['terminal_number'], rec['card_id']]).encode())
        self.assertEqual(ia['plaintext'], out[:8].hex().upper())
        # The card's answer, recomputed from the master key (cardDiv: the ATR's last 8
        # historical bytes; region: the 卡识别码's first 6 digits).
        want = cryptogram(rec['algorithm'], INTERNAL_MASTER[rec['algorithm']], rec['card_id'][:6],
                          bytes.fromhex(rec['atr_historical'])[-8:],
                          bytes.fromhex(ia['factor']), bytes.fromhex(ia['plaintext']))
        self.assertEqual(ia['answer'], want.hex().upper())
        sig = base64.b64decode(r['signature'], validate=True)
        self.assertTrue(self.openssl_verify(pub, r['receipt'].encode(), sig))
        altered = bytearray(r['receipt'].encode())
        altered[altered.index(b'"pin_verified":true') + 16] = ord('T')
        self.assertFalse(self.openssl_verify(pub, bytes(altered), sig))
        return r

    def test_gen2_and_gen3(self):
        key, pub = self.key()
        self.start(key)
        r2 = self.check_claim(GEN2, pub, 'claim-0001')
        self.assertEqual(json.loads(r2['receipt'])['algorithm'], 'des')
        r3 = self.check_claim(GEN3, pub, 'claim-0002')
        self.assertEqual(json.loads(r3['receipt'])['algorithm'], 'sm4')
        # The request_id only labels the receipt: a repeat runs again (a new answer).
        again = self.claim(GEN2, request_id='claim-0001')
        self.assertNotEqual(json.loads(again['receipt'])['internal_auth']['factor'],
                            json.loads(r2['receipt'])['internal_auth']['factor'])
        # Without one, the receipt is named by 16 random hex digits.
        self.assertRegex(json.loads(self.claim(GEN3)['receipt'])['request_id'],
                         r'^[0-9a-f]{16}$')

    def test_fake_card_and_wrong_pin(self):
        key, pub = self.key()
        self.start(key)
        e = self.c.call_error('claim.verify_holder', {'reader': slot_id(WRONG),
                                                      'pin': '123456'}, timeout=20)
        self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21, code=1018)
        self.assertNotIn('receipt', e.data)
        # No PIN try was spent: the first wrong VERIFY after it still leaves 2 of 3.
        e = self.c.call_error('card.verify_pin', {'reader': slot_id(WRONG), 'pin': '000000'})
        self.assertRpcError(e, 'SSC_EPINWRONG', std_code=-51)
        self.assertEqual(e.retries_left, 2)
        e = self.c.call_error('claim.verify_holder', {'reader': slot_id(GEN2), 'pin': '000000'},
                              timeout=20)
        self.assertRpcError(e, 'SSC_EPINWRONG', std_code=-51, code=1019)
        self.assertEqual(e.retries_left, 2)
        self.assertNotIn('receipt', e.data)
        # The right PIN afterwards: a receipt, and the counter is full again.
        self.assertTrue(self.claim(GEN2)['pin_verified'])

    def test_ed25519(self):
        key, pub = self.key('ED25519')
        self.start(key)
        r = self.claim(GEN2, request_id='ed-1')
        self.assertEqual(r['algorithm'], 'Ed25519')
        sig = base64.b64decode(r['signature'], validate=True)
        self.assertEqual(len(sig), 64)
        self.assertTrue(self.openssl_verify(pub, r['receipt'].encode(), sig, sm2=False))
        self.assertFalse(self.openssl_verify(pub, r['receipt'].encode()[:-1] + b' ', sig,
                                             sm2=False))

    def test_key_missing_or_readable(self):
        self.start()
        e = self.c.call_error('claim.verify_holder', {'pin': '123456'})
        self.assertRpcError(e, 'SSC_ECONFIG')
        self.assertIn('[receipts] key_file', e.message)
        self.d.stop()
        key, pub = self.key(mode=0o644)
        d = sscardd.Daemon(self.h, config={'receipts': {'key_file': key}}, name='readable')
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        p = subprocess.run(d.argv(), capture_output=True, timeout=30,
                           env=self.h.pcscd.client_env(dict(os.environ)))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b'[receipts] key_file', p.stderr + p.stdout)

    def test_sscardctl(self):
        key, pub = self.key()
        self.start(key)
        env = dict(os.environ, SSCARD_SOCKET=self.d.socket_path)
        ctl = [sscardd.ctl_binary()]
        p = subprocess.run(ctl + ['--json', 'claim', '--reader', slot_id(GEN2),
                                  '--request-id', 'ctl-claim'],
                           input=b'123456\n', capture_output=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        res = json.loads(p.stdout)
        self.assertEqual(json.loads(res['receipt'])['request_id'], 'ctl-claim')
        path = self.h.path('claim.json')
        with open(path, 'wb') as f:
            f.write(p.stdout)
        p = subprocess.run(ctl + ['receipt', 'verify', '--pubkey', pub, path],
                           capture_output=True, timeout=30, env=env)
        self.assertEqual((p.returncode, p.stderr), (0, b''))
        self.assertIn(b'signature good', p.stdout)
        bad = dict(res, receipt=res['receipt'].replace('"pin_verified":true',
                                                       '"pin_verified":fals'))
        p = subprocess.run(ctl + ['receipt', 'verify', '--pubkey', pub, '-'],
                           input=json.dumps(bad).encode(), capture_output=True, timeout=30,
                           env=env)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b'does not match', p.stderr)
        conf = self.d.config_path
        p = subprocess.run(ctl + ['--config', conf, 'receipt', 'pubkey'], capture_output=True,
                           timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(pub, 'rb') as f:
            self.assertEqual(p.stdout, f.read())


class MedicalCredentials(Desk):
    """medical.credentials: the NHSA identification of the insured, read in one operation with an
    internal-authentication proof (its plaintext: SM3 over "|time|terminal_number|card_id", no
    request_id)."""

    def test_credentials(self):
        self.start()
        for slot, region in ((GEN2, '330100'), (GEN3, None)):
            reader = {'reader': slot_id(slot)}
            basic = self.c.call('card.read_basic', reader)
            ef05 = self.c.call('card.read_items', dict(reader, file='DF04/EF05', items=['30']))
            r = self.c.call('medical.credentials', reader, timeout=20)
            self.assertEqual(set(r), {'mdtrt_cert_type', 'mdtrt_cert_no', 'card_sn',
                                      'psn_cert_type', 'certno', 'psn_name', 'insuplc_admdvs',
                                      'standard', 'internal_auth'})
            self.assertEqual((r['mdtrt_cert_type'], r['psn_cert_type']), ('03', '01'))
            self.assertEqual((r['mdtrt_cert_no'], r['card_sn'], r['certno'], r['psn_name'],
                              r['standard']),
                             (basic['card_number'], basic['card_id'], basic['ssn'],
                              basic['name'], basic['standard']))
            self.assertEqual(r['insuplc_admdvs'], ef05['items']['30'])
            if region:
                self.assertEqual(r['insuplc_admdvs'], region)   # gen2.json medical.region
            ia = r['internal_auth']
            self.assertEqual((ia['terminal_number'], ia['algorithm']),
                             (basic['terminal_number'], basic['algorithm']))
            rc, out, err = openssl('dgst', '-sm3', '-binary', data='|'.join(
                ['', ia['time'], ia['terminal_number'], basic['card_id']]).encode())
            self.assertEqual(ia['plaintext'], out[:8].hex().upper())
            want = cryptogram(ia['algorithm'], INTERNAL_MASTER[ia['algorithm']],
                              basic['card_id'][:6],
                              bytes.fromhex(basic['atr_historical'])[-8:],
                              bytes.fromhex(ia['factor']), bytes.fromhex(ia['plaintext']))
            self.assertEqual(ia['answer'], want.hex().upper())
        e = self.c.call_error('medical.credentials', {'reader': slot_id(WRONG)}, timeout=20)
        self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21)
        e = self.c.call_error('medical.credentials', {'reader': slot_id(GEN2), 'pin': '1'})
        self.assertRpcError(e, 'SSC_EINVAL', code=-32602)
        # sscardctl medical credentials: the same fields, as JSON.
        p = subprocess.run([sscardd.ctl_binary(), 'medical', 'credentials', '--reader',
                            slot_id(GEN2)], capture_output=True, timeout=30,
                           env=dict(os.environ, SSCARD_SOCKET=self.d.socket_path))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out['mdtrt_cert_type'], out['insuplc_admdvs']), ('03', '330100'))


class NetworkPsam(Desk):
    """The same desk with no PSAM in a reader: the keys come from the simulated province key
    server (issue 14's network PSAM). The claim's receipt, medical.credentials' proof and an
    offline settlement's MAC'd write all go through it, on gen2 (DES) and gen3 (SM4)."""

    def setUp(self):
        sscardd.DaemonTestCase.setUp(self)
        self.h.start_pcscd()
        self.cards = {GEN2: self.h.start_card('gen2', slot=GEN2),
                      GEN3: self.h.start_card('gen3', slot=GEN3)}
        self.pki = hsmkit.make_pki(self.h)
        self.ks = hsmkit.KeyServer(self.h, self.pki).start()

    def test_claim_credentials_settle(self):
        key_file, pub = self.key()
        config = hsmkit.daemon_config(self.pki)
        config['receipts'] = {'key_file': key_file}
        self.start_daemon(config=config, in_mountns=True)
        self.wait_roles({GEN2: 'user', GEN3: 'user'})
        for slot, alg, number in ((GEN2, 'des', 'X00000019'), (GEN3, 'sm4', 'A12345674')):
            r = Claim.check_claim(self, slot, pub, f'net-claim-{slot}')
            rec = json.loads(r['receipt'])
            self.assertEqual((rec['algorithm'], rec['card_number']), (alg, number))
            cred = self.c.call('medical.credentials', {'reader': slot_id(slot)}, timeout=20)
            self.assertEqual((cred['mdtrt_cert_type'], cred['mdtrt_cert_no']), ('03', number))
            txn = {'time': '20261206120000', 'institution': 'H33010000001',
                   'settlement_no': f'S20261206000000000{slot}9', 'total': 1000,
                   'personal_account': 400, 'pooled': 600}
            s = self.c.call('medical.settle_offline', {'reader': slot_id(slot),
                                                       'request_id': f'net-settle-{slot}',
                                                       'transaction': txn}, timeout=20)
            self.assertEqual(s['transaction'], txn)
            back = self.c.call('card.read_items', {'reader': slot_id(slot), 'file': 'DF04/EF08',
                                                   'items': ['40']})
            self.assertIn(txn, back['items']['40'])          # the cyclic file's records
        pending = self.c.call('medical.pending')
        self.assertEqual(sorted(p['request_id'] for p in pending['settlements']),
                         ['net-settle-0', 'net-settle-1'])
        # No PSAM is in a reader: the key server did the work (internal authentication for two
        # claims and two credentials, a MAC for each settlement's record and flag).
        self.assertEqual([r for r in self.c.call('reader.list')['readers']
                          if r.get('role') == 'psam'], [])
        self.assertGreaterEqual(self.ks.status()['exchanges'], 8)


if __name__ == '__main__':
    unittest.main()
