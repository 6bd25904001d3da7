#!/usr/bin/python3
"""libsscard end to end: tests/clients/client_probe (linked with the shared libsscard.so, as an
application is) against the real sscardd, pcscd + vpcd and the simulated gen2 card and DES PSAM.

- typed read (sscard_read_basic) equal to the values written by hand in test_daemon_read.py;
  sscard_read_items; reader.list through sscard_readers;
- structured errors: a wrong PIN (name, code 1019, std_code -51, sw, retries_left), an unknown
  method (-32601 -> SSC_ENOTFOUND), an unknown file (SSC_EBADITEM, std_code -14), no card
  (SSC_ENOCARD, std_code -2);
- pipelining: four requests sent at once, answers collected in reverse order, each by its id;
- events through sscard_event_fd() + sscard_next_event(): card.removed then card.inserted;
- a daemon that is not running: SSC_EIO at once; a daemon that stops answering (SIGSTOP): the
  call returns SSC_ETIMEDOUT at its deadline, not later;
- the workflow helpers (ClientCWorkflow): a NULL required argument gives SSC_EINVAL (code 0) from
  the library, before anything is sent; sscard_medical_credentials (the gen2 profile's values, by
  hand); sscard_claim_verify_holder (a wrong PIN: SSC_EPINWRONG with retries_left; the right one:
  the receipt, its SM2 signature checked with openssl); sscard_medical_settle_offline ->
  sscard_medical_pending lists it -> sscard_medical_clear_flag refused (SSC_EMEDPENDING) ->
  sscard_medical_acknowledge (an unknown id: SSC_ENOTFOUND) -> pending empty ->
  clear_flag was_set true, then false; sscard_hsm_step1 / sscard_hsm_step2 with the key string
  computed by tests/e2e/province.py: step 2 fills struct sscard_basic as sscard_read_basic does;
- docs/clients.md's workflow examples (C, compiled with -Wall -Werror against this libsscard, and
  Python) run and print exactly the output the docs show.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_c.py [-k name]
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import province  # noqa: E402
import sscardd  # noqa: E402
import test_claim  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import DES_TERMINAL, expected  # noqa: E402

PROBE = os.path.join(harness.BUILD_DIR, 'tests', 'clients', 'client_probe')


def probe(sock, *args, timeout=30):
    """Runs client_probe; returns its JSON lines as a list of dicts."""
    p = subprocess.run([PROBE, '--socket', sock, *args], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f'client_probe {args}: exit {p.returncode}: {p.stderr}')
    return [json.loads(line) for line in p.stdout.splitlines()]


def sm2_receipt_key(tc):
    """Makes an SM2 receipt key (and its public key) in tc's harness directory: (key, pub)."""
    key = tc.h.path('receipt.pem')
    rc, _, err = test_claim.openssl('genpkey', '-algorithm', 'SM2', '-out', key)
    tc.assertEqual(rc, 0, err)
    os.chmod(key, 0o600)
    rc, _, err = test_claim.openssl('pkey', '-in', key, '-pubout', '-out', key + '.pub')
    tc.assertEqual(rc, 0, err)
    return key, key + '.pub'


def assert_receipt_verifies(tc, pub, r):
    """openssl alone checks the SM2-SM3 signature of a claim result r with the public key pub."""
    d = tc.h.path('verify')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'receipt'), 'wb') as f:
        f.write(r['receipt'].encode())
    with open(os.path.join(d, 'sig'), 'wb') as f:
        f.write(base64.b64decode(r['signature'], validate=True))
    rc, _, err = test_claim.openssl(
        'pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in',
        os.path.join(d, 'receipt'), '-sigfile', os.path.join(d, 'sig'), '-digest', 'sm3',
        '-pkeyopt', 'distid:1234567812345678')
    tc.assertEqual(rc, 0, err)


class ProbeCase(sscardd.DaemonTestCase):
    """The gen2 card in slot 0 and the DES PSAM in slot 2; helpers only."""
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=2)
        self.start_daemon()
        self.wait_roles({0: 'user', 2: 'psam'})
        self.sock = self.d.socket_path

    def one(self, *args, **kw):
        lines = probe(self.sock, *args, **kw)
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def assertError(self, out, name, code, std_code=0):
        self.assertIn('error', out, out)
        e = out['error']
        self.assertEqual((e['name'], e['code'], e['std_code']), (name, code, std_code), out)
        self.assertEqual(out['rc'], e['err'])
        return e


class ClientC(ProbeCase):

    def test_reads_and_errors(self):
        want = expected('gen2', DES_TERMINAL)
        want.update(genuine=False, card_id_verified=False)
        out = self.one('basic')
        self.assertEqual((out['rc'], out['result']), (0, want), out)
        out = self.one('basic', slot_id(0), 'auth')
        self.assertEqual(out['rc'], 0, out)
        self.assertTrue(out['result']['genuine'])
        self.assertEqual(self.one('items', 'SSSE/EF06', '09', '0A', '0D')['result'],
                         {'09': '张三', '0A': '1', '0D': '19900307'})
        readers = self.one('readers')['result']
        self.assertIn({'id': slot_id(0), 'role': 'user', 'card': True, 'algorithm': ''},
                      readers)
        self.assertIn({'id': slot_id(2), 'role': 'psam', 'card': True, 'algorithm': 'des'},
                      readers)

        e = self.assertError(self.one('verify', '000000'), 'SSC_EPINWRONG', 1019, -51)
        self.assertEqual((e['sw'], e['retries_left'], e['reader']), ('63C2', 2, slot_id(0)))
        self.assertEqual(self.one('verify', '123456')['rc'], 0)
        self.assertError(self.one('call', 'card.no_such_method'), 'SSC_ENOTFOUND', -32601)
        self.assertError(self.one('call', 'card.read_items',
                                  '{"file":"SSSE/EF99","items":["01"]}'),
                         'SSC_EBADITEM', 1032, -14)
        self.assertError(self.one('call', 'card.read_basic', '[1]'), 'SSC_EINVAL', 0)

        # Pipelining: ids 1..4 sent at once, collected 4, 3, 2, 1.
        lines = probe(self.sock, 'pipeline', '4')
        self.assertEqual([ln['result']['id'] for ln in lines], [4, 3, 2, 1], lines)
        self.assertEqual(lines[1]['result']['value']['card_number'], 'X00000019')
        self.assertEqual(lines[3]['result']['value']['card_number'], 'X00000019')
        self.assertEqual(lines[0]['result']['value']['api_level'], 1)

        self.card.remove()
        self.wait_roles({0: None})
        self.assertError(self.one('basic'), 'SSC_ENOCARD', 1005, -2)

    def test_events(self):
        p = subprocess.Popen([PROBE, '--socket', self.sock, 'events', '2', '10000'],
                             stdout=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            self.assertEqual(first['result'], 'subscribed', first)
            self.card.remove()
            self.wait_roles({0: None})
            self.card.insert()
            out, _ = p.communicate(timeout=20)
        finally:
            p.kill()
            p.wait()
        events = [json.loads(line)['result'] for line in out.splitlines()]
        self.assertEqual([(ev['type'], ev['reader']) for ev in events],
                         [('card.removed', slot_id(0)), ('card.inserted', slot_id(0))])

    def test_daemon_gone_or_stopped(self):
        # No daemon behind the path: a clear error at once.
        t0 = time.monotonic()
        out = probe(self.h.path('nobody.sock'), 'basic')[0]
        self.assertLess(time.monotonic() - t0, 2.0)
        e = self.assertError(out, 'SSC_EIO', 0)
        self.assertIn('is sscardd running?', e['message'])

        # A daemon that stops answering: the call ends at its deadline (2 s).
        self.d.proc.sigstop()
        try:
            t0 = time.monotonic()
            out = probe(self.sock, '--timeout', '2000', 'basic')[0]
            took = time.monotonic() - t0
        finally:
            self.d.proc.sigcont()
        self.assertError(out, 'SSC_ETIMEDOUT', 0)
        self.assertGreaterEqual(out['ms'], 1900)
        self.assertLess(took, 8.0)
        # Once it runs again, the next call works.
        self.assertEqual(self.one('basic')['result']['card_number'], 'X00000019')


# The gen2 profile's holder (firmware-stubs/profiles/gen2.json) and its DES PSAM's terminal
# number, by hand.
GEN2_CREDENTIALS = {
    'mdtrt_cert_type': '03', 'mdtrt_cert_no': 'X00000019',
    'card_sn': '330100D15600000500BF7C7AC9FC0FEC', 'psn_cert_type': '01',
    'certno': '330102199003071230', 'psn_name': '张三', 'insuplc_admdvs': '330100',
    'standard': '330100|330102199003071230|X00000019|330100D15600000500BF7C7AC9FC0FEC|张三|'
                '0081544C92868433010000BF7C7A|2.00|20240101|20340101|330100000001||'}
TXN = {'time': '20260301101500', 'institution': 'H33010000001',
       'settlement_no': 'S2026030100000000011', 'total': 15000, 'personal_account': 5000,
       'pooled': 10000}


class ClientCWorkflow(ProbeCase):
    """The workflow helpers, with a receipt key (SM2) configured."""

    def start_daemon(self, **kw):
        key, self.pub = sm2_receipt_key(self)
        super().start_daemon(config={'receipts': {'key_file': key}}, **kw)

    def test_null_arguments(self):
        lines = probe(self.sock, 'nulls')
        self.assertEqual(len(lines), 12, lines)
        for out in lines:
            self.assertError(out, 'SSC_EINVAL', 0)
        msgs = [out['error']['message'] for out in lines]
        self.assertEqual(msgs[0], 'the PIN is NULL')
        self.assertIn('request_id is NULL', msgs[2])
        self.assertIn('settlement_no', msgs[3])
        self.assertIn('no ids to acknowledge', msgs[6])
        self.assertIn('no ids to acknowledge', msgs[7])
        # Nothing reached the card or the queue.
        self.assertEqual(self.one('pending')['result'], {'settlements': [], 'flags': []})

    def test_credentials_and_claim(self):
        out = self.one('credentials')
        self.assertEqual(out['rc'], 0, out)
        r = out['result']
        ia = r.pop('internal_auth')
        self.assertEqual(r, GEN2_CREDENTIALS)
        self.assertEqual(sorted(ia), ['algorithm', 'answer', 'factor', 'plaintext',
                                      'terminal_number', 'time'])
        self.assertEqual((ia['algorithm'], ia['terminal_number']), ('des', '330100000001'))

        e = self.assertError(self.one('claim', '000000', 'claim-0007'), 'SSC_EPINWRONG', 1019,
                             -51)
        self.assertEqual((e['sw'], e['retries_left'], e['reader']), ('63C2', 2, slot_id(0)))
        out = self.one('claim', '123456', 'claim-0007')
        self.assertEqual(out['rc'], 0, out)
        r = out['result']
        self.assertEqual((r['genuine'], r['pin_verified'], r['algorithm']),
                         (True, True, 'SM2-SM3'))
        self.assertEqual((r['holder']['card_number'], r['holder']['name']),
                         ('X00000019', '张三'))
        rec = json.loads(r['receipt'])
        self.assertEqual((rec['request_id'], rec['card_number'], rec['ssn'], rec['reader']),
                         ('claim-0007', 'X00000019', '330102199003071230', slot_id(0)))
        assert_receipt_verifies(self, self.pub, r)
        # Without request_id: the receipt is named by 16 random hex digits.
        out = self.one('claim', '123456')
        self.assertRegex(json.loads(out['result']['receipt'])['request_id'], r'^[0-9a-f]{16}$')

    def test_offline_settlement(self):
        args = ['settle', 'h1-20260301-0001', TXN['time'], TXN['institution'],
                TXN['settlement_no'], '15000', '5000', '10000']
        out = self.one(*args)
        self.assertEqual(out['rc'], 0, out)
        r = out['result']
        self.assertIsInstance(r.pop('journal_id'), int)
        self.assertEqual(r, {'id': 1, 'request_id': 'h1-20260301-0001', 'transaction': TXN})
        # The repeat answers the same result.
        self.assertEqual(self.one(*args)['result']['id'], 1)

        p = self.one('pending')['result']
        self.assertEqual(len(p['settlements']), 1, p)
        s = p['settlements'][0]
        queued = s.pop('queued')
        self.assertRegex(queued, r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertEqual(s, {'id': 1, 'request_id': 'h1-20260301-0001',
                             'card_number': 'X00000019',
                             'card_id': '330100D15600000500BF7C7AC9FC0FEC', 'transaction': TXN})
        self.assertEqual(p['flags'], [{'card_number': 'X00000019',
                                       'card_id': '330100D15600000500BF7C7AC9FC0FEC',
                                       'since': queued, 'pending': 1, 'clearable': False}])
        self.assertEqual(self.one('pending', '1')['result']['settlements'], [])
        self.assertEqual(len(self.one('pending', '0')['result']['settlements']), 1)

        self.assertError(self.one('clearflag', 'h1-clear'), 'SSC_EMEDPENDING', 1068)
        e = self.assertError(self.one('ack', '1', '2'), 'SSC_ENOTFOUND', 1041)
        self.assertIn('2', e['message'])
        self.assertEqual(self.one('ack', '1')['result'], {'acknowledged': [1], 'newly': 1})
        self.assertEqual(self.one('pending')['result']['settlements'], [])

        out = self.one('clearflag', 'h1-clear')
        self.assertEqual(out['rc'], 0, out)
        self.assertIsInstance(out['result'].pop('journal_id'), int)
        self.assertEqual(out['result'], {'cleared': True, 'was_set': True})
        self.assertEqual(self.one('clearflag')['result'], {'cleared': True, 'was_set': False})
        self.assertEqual(self.one('pending')['result'], {'settlements': [], 'flags': []})

    def docs_block(self, lang, after):
        """The code block of language lang in docs/clients.md that follows the line starting with
        after, and the plain block after it (the output it shows)."""
        with open(os.path.join(harness.SOURCE_DIR, 'docs', 'clients.md'), encoding='utf-8') as f:
            text = f.read()
        m = re.search(re.escape(after) + r'.*?\n```' + lang + r'\n(.*?)```\n.*?\n```\n(.*?)```',
                      text, re.S)
        self.assertIsNotNone(m, after)
        return m.group(1), m.group(2)

    def test_docs_example_c(self):
        code, want = self.docs_block('c', 'The workflow helpers at a desk')
        src = self.h.path('example.c')
        with open(src, 'w', encoding='utf-8') as f:
            f.write('#include <stdio.h>\n#include <sscard/client.h>\n\nint main(void)\n{\n'
                    '\tstruct sscard_client *c;\n\tstruct sscard_error err;\n\tjson_t *r;\n'
                    '\tint rc;\n\n\tif (sscard_connect(NULL, 5000, &c, &err) != 0)\n'
                    '\t\treturn 1;\n' + code + '\tsscard_close(c);\n\treturn rc < 0;\n}\n')
        exe = self.h.path('example')
        jansson = subprocess.run(['pkg-config', '--cflags', '--libs', 'jansson'],
                                 capture_output=True, text=True, check=True).stdout.split()
        lib = os.path.join(harness.BUILD_DIR, 'lib')
        p = subprocess.run(['cc', '-Wall', '-Werror', '-o', exe, src,
                            '-I' + os.path.join(harness.SOURCE_DIR, 'include'), '-L' + lib,
                            '-lsscard', '-Wl,-rpath,' + lib, *jansson],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        env = dict(os.environ, SSCARD_SOCKET=self.sock)
        p = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, want), p.stderr)


    def test_docs_example_python(self):
        code, want = self.docs_block('python', 'The workflow methods at a desk')
        src = self.h.path('example.py')
        with open(src, 'w', encoding='utf-8') as f:
            f.write(code)
        env = dict(os.environ, SSCARD_SOCKET=self.sock,
                   PYTHONPATH=os.path.join(harness.SOURCE_DIR, 'python'))
        p = subprocess.run([sys.executable, src], env=env, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, want), p.stderr)

    def test_hsm_two_step(self):
        basic = self.one('basic')['result']
        out = self.one('hsm1')
        self.assertEqual(out['rc'], 0, out)
        s1 = out['result']
        self.assertRegex(s1['session'], r'^[0-9a-f]{32}$')
        self.assertEqual(s1['expires_in_ms'], 60000)
        f = s1['step1'].split('|')
        self.assertEqual(f[:4] + f[6:], ['330100', '0081544C92868433010000BF7C7A', '01',
                                         '330100D15600000500BF7C7AC9FC0FEC', '', '',
                                         '330100000001', ''])
        key = province.key_string(s1['step1'], *province.profile_masters('gen2'))
        out = self.one('hsm2', s1['session'], key)
        self.assertEqual((out['rc'], out['result']), (0, basic), out)
        # The session is over.
        self.assertError(self.one('hsm2', s1['session'], key), 'SSC_EHSMSESSION', 1061, -12)


if __name__ == '__main__':
    unittest.main()
