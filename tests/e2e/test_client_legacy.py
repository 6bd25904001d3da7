#!/usr/bin/python3
"""libSSCardDriver.so end to end: every legacy function (spec §5) through tests/clients/legacy_call
(linked with the library as a legacy application is) against the real sscardd, pcscd + vpcd and
the simulated gen2 (DES) and gen3 (SM4) cards with their PSAMs.

- iReadCardBas: the 11-field string in GB18030, bytes compared with hex written by hand;
- iReadCard: groups chained over two files, internal authentication (iAuthType 1), a record of
  DF04/EF08 by number; pCardInfo of another card → −22; a bad pFileAddr → −14;
- iWriteCard: DF04/EF05 items, a DF04/EF08 transaction, a name in GB18030 (read back as bytes);
- iGetReaderInfo: the reader serial and the PSAM's terminal number: with the card in (two PSAMs:
  the one of the card's algorithm), without a card (the PSAM's, from reader.list; the first of two),
  without a PSAM (000000000000), a card in a stopped simulator with one PSAM (no card read);
- the PIN functions: −13 at once, with or without a daemon;
- iReadCardBas_HSM_Step1/2 (issue 14), the test playing the key server (province.py): Step2 writes
  exactly what iReadCardBas writes; a wrong 内部认证结果 is −25; Step2 without a session: −12;
- iType 2 / 4 without a contactless reader: −13; iType 9: −14;
- no card (−2, 无卡), a card whose link drops mid-read (−2), a daemon that is not running (−11 at
  once), a daemon that stops answering (SIGSTOP: −4 at the SSCARD_TIMEOUT_MS deadline).
Every error text starts with the standard's wording in GB18030 and names the sscard error.

Expected values are written by hand from firmware-stubs/profiles/{gen2,gen3}.json, spec §5 and
docs/clients.md; GB18030 bytes were written by hand and checked with `iconv -t GB18030`.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_legacy.py [-k name]
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import province  # noqa: E402
import sscardd  # noqa: E402
from test_daemon_read import DES_TERMINAL, SM4_TERMINAL  # noqa: E402

CALL = os.path.join(harness.BUILD_DIR, 'tests', 'clients', 'legacy_call')
CARD, DES_PSAM, SM4_PSAM = 0, 2, 3

# By hand from the profiles (and test_daemon_read.py's table).
PROFILES = {
    'gen2': dict(
        card_info='330100D15600000500BF7C7AC9FC0FEC|X00000019|',
        standard_hex=('330100|330102199003071230|X00000019|330100D15600000500BF7C7AC9FC0FEC|'.encode()
                      + bytes.fromhex('D5C5C8FD')     # 张三
                      + b'|0081544C92868433010000BF7C7A|2.00|20240101|20340101|'
                      + DES_TERMINAL.encode() + b'||').hex().upper(),
        ef06='330102199003071230|1|19900307|', number='X00000019', terminal=DES_TERMINAL),
    'gen3': dict(
        card_info='330200D156000005013C5A7E0A29D26E|A12345674|',
        standard=('330200|330203198511110029|A12345674|330200D156000005013C5A7E0A29D26E|'
                  '阿卜杜热合曼·买买提艾力·吐尔逊江|0081544C928684330200013C5A7E|3.00|20250601|'
                  f'20350601|{SM4_TERMINAL}||'),
        ef06='330203198511110029|1|19851111|', number='A12345674', terminal=SM4_TERMINAL),
}
OTHER = {'gen2': 'gen3', 'gen3': 'gen2'}
TRANSACTION = '20260301101500,H33010000001,S2026030100000000009,3200,3200,0'


def gb(text):
    """Hex of GB18030 bytes: only for ASCII and for wordings whose bytes are asserted by hand
    elsewhere; used to build expected hex for ASCII-only values."""
    return text.encode('ascii').hex().upper()


def call(*args, env=None, timeout=60):
    p = subprocess.run([CALL, *[str(a) for a in args]], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f'legacy_call {args}: exit {p.returncode}: {p.stderr}')
    r = json.loads(p.stdout)
    r['bytes'] = bytes.fromhex(r['out'])
    r['text'] = r['bytes'].decode('gb18030')
    return r


class Legacy(sscardd.DaemonTestCase):
    # card_gone() pulls the card in the middle of a read: every read must talk to the card (with
    # the read-ahead, one within card_hold_ms of the last would be answered without it).
    prefetch = 'no'
    readers = 4

    def start(self, profile):
        self.h.start_pcscd()
        self.card = self.h.start_card(profile, slot=CARD)
        self.h.start_psam('gen2', slot=DES_PSAM)
        self.h.start_psam('gen3', slot=SM4_PSAM)
        self.start_daemon()
        self.wait_roles({CARD: 'user', DES_PSAM: 'psam', SM4_PSAM: 'psam'})
        self.env = dict(os.environ, SSCARD_SOCKET=self.d.socket_path)
        for k in ('SSCARD_READER', 'SSCARD_CONTACTLESS_READER', 'SSCARD_TIMEOUT_MS'):
            self.env.pop(k, None)

    def call(self, *args, env=None):
        return call(*args, env=env or self.env)

    def hsm_pair(self, profile, change):
        """iReadCardBas_HSM_Step1, then Step2 with change(the key server's answer), in one
        legacy process: ({rc, out} of Step1, the final {rc, out, text} of Step2)."""
        p = subprocess.Popen([CALL, 'hsm_interactive', '1'], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=self.env)
        try:
            r1 = json.loads(p.stdout.readline())
            key = ''
            if r1['rc'] == 0:
                key = province.key_string(bytes.fromhex(r1['out']).decode('ascii'),
                                          *province.profile_masters(profile))
            p.stdin.write(change(key) + '\n')
            p.stdin.close()
            r2 = json.loads(p.stdout.readline())
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        r2['text'] = bytes.fromhex(r2['out']).decode('gb18030')
        return r1, r2

    def assertFails(self, r, code, wording_hex, name):
        """rc == code; the text is the wording's GB18030 bytes (hand-written hex), then the
        stable error name."""
        self.assertEqual(r['rc'], code, r['text'])
        self.assertTrue(r['out'].startswith(wording_hex), r['text'])
        self.assertIn(f'({name}: ', r['text'])

    def legacy_functions(self, profile):
        p = PROFILES[profile]
        r = self.call('iReadCardBas', 1)
        self.assertEqual(r['rc'], 0, r['text'])
        if 'standard_hex' in p:
            self.assertEqual(r['out'], p['standard_hex'])
        else:
            self.assertEqual(r['text'], p['standard'])
        self.assertEqual(self.call('iReadCardBas', 3)['text'], r['text'])

        # Two files chained; then with internal authentication.
        addr = '3F00EF06|08|0A|0D|$EF05|07|$'
        want = p['ef06'] + p['number'] + '|'
        for auth in (0, 1):
            r = self.call('iReadCard', 1, auth, p['card_info'], addr)
            self.assertEqual((r['rc'], r['text']), (0, want))
        # The card identity check: another card's pCardInfo.
        self.assertFails(self.call('iReadCard', 1, 0, PROFILES[OTHER[profile]]['card_info'],
                                   addr),
                         -22, 'B4ABC8EBCAFDBEDDD3EBBFA8C4DAB2BBB7FB', 'SSC_EVALUE')
        self.assertFails(self.call('iReadCard', 1, 0, p['card_info'], '3F00EF06|08|'),
                         -14, 'C3FCC1EEB2CECAFDB4ED', 'SSC_EINVAL')     # 命令参数错
        self.assertFails(self.call('iReadCard', 1, 0, 'nonsense', addr), -14,
                         'C3FCC1EEB2CECAFDB4ED', 'SSC_EINVAL')
        self.assertFails(self.call('iReadCard', 1, 5, p['card_info'], addr), -14,
                         'C3FCC1EEB2CECAFDB4ED', 'SSC_EINVAL')

        # Writes: DF04/EF05 items, a transaction, a name in GB18030.
        r = self.call('iWriteCard', 1, p['card_info'], 'DF04EF05|31|34|$', gb('21|1|'))
        self.assertEqual((r['rc'], r['text']), (0, ''))
        r = self.call('iWriteCard', 1, p['card_info'], '3F00DF04EF08|40|$', gb(TRANSACTION + '|'))
        self.assertEqual((r['rc'], r['text']), (0, ''))
        r = self.call('iWriteCard', 1, p['card_info'], 'EF06|09|$', 'C0EECBC47C')  # 李四|
        self.assertEqual((r['rc'], r['text']), (0, ''))
        r = self.call('iReadCard', 1, 0, p['card_info'],
                      'DF04EF05|31|34|$DF04EF08|40:01|$3F00EF06|09|$')
        self.assertEqual(r['rc'], 0, r['text'])
        self.assertEqual(r['out'], gb(f'21|1|{TRANSACTION}|') + 'C0EECBC4' + '7C')
        self.assertFails(self.call('iWriteCard', 1, p['card_info'], 'DF04EF05|31|34|$',
                                   gb('21|')), -14, 'C3FCC1EEB2CECAFDB4ED', 'SSC_EINVAL')
        self.assertFails(self.call('iWriteCard', 1, PROFILES[OTHER[profile]]['card_info'],
                                   'DF04EF05|31|$', gb('22|')),
                         -22, 'B4ABC8EBCAFDBEDDD3EBBFA8C4DAB2BBB7FB', 'SSC_EVALUE')

        r = self.call('iGetReaderInfo')
        self.assertEqual((r['rc'], r['text'], bytes.fromhex(r['out2']).decode()),
                         (0, '', p['terminal']))

        # The PIN functions: no PIN pad, −13 at once, nothing sent.
        for args in (('iVerifyPIN', 1), ('iChangePIN', 1), ('iReloadPIN', 1, p['card_info']),
                     ('iUnblockPIN', 1, p['card_info'])):
            r = self.call(*args)
            self.assertFails(r, -13, 'B2BBD6A7B3D6B8C3C3FCC1EE', 'SSC_EUNSUPPORTED')   # 不支持该命令
            self.assertLess(r['ms'], 1000)

        # The HSM pair (issue 14): Step2 in a process without a Step1 is −12 (未建立连接), at once.
        self.assertFails(self.call('iReadCardBas_HSM_Step2',
                                   'D2FFA2E969F241C5|4BA5C1F9D6C57F0F1122334455667788|'),
                         -12, 'CEB4BDA8C1A2C1ACBDD3', 'SSC_ENOTFOUND')
        # Step1 then Step2 in one process, the test playing the key server: Step2 writes what
        # iReadCardBas writes. A wrong 内部认证结果: −25 (内部认证与加密机不一致), nothing read.
        basic = self.call('iReadCardBas', 1)
        r1, r2 = self.hsm_pair(profile, lambda key: key)
        self.assertEqual(r1['rc'], 0, r1)
        step1 = bytes.fromhex(r1['out']).decode('ascii')
        self.assertEqual(step1.split('|')[3], basic['text'].split('|')[3])   # 卡识别码
        self.assertEqual((r2['rc'], r2['out']), (0, basic['out']))
        r1, r2 = self.hsm_pair(profile, lambda key: 'F' + key[1:] if key[0] != 'F' else
                               '0' + key[1:])
        self.assertFails(r2, -25, 'C4DAB2BFC8CFD6A4D3EBBCD3C3DCBBFAB2BBD2BBD6C2',
                         'SSC_EHSMMISMATCH')
        # The session is over: the reader serves iReadCardBas again at once.
        self.assertEqual(self.call('iReadCardBas', 1)['rc'], 0)

        # iType: no contactless reader configured; out of range.
        for t in (2, 4):
            self.assertFails(self.call('iReadCardBas', t), -13, 'B2BBD6A7B3D6B8C3C3FCC1EE',
                             'SSC_EUNSUPPORTED')
        self.assertFails(self.call('iReadCardBas', 9), -14, 'C3FCC1EEB2CECAFDB4ED', 'SSC_EINVAL')
        # A contactless reader configured (here the same reader): iType 2 reads.
        env = dict(self.env, SSCARD_CONTACTLESS_READER=sscardd.slot_id(CARD))
        self.assertEqual(self.call('iReadCardBas', 2, env=env)['rc'], 0)
        # SSCARD_READER names the reader; a PSAM's reader is not a user card (issue 11).
        env = dict(self.env, SSCARD_READER=sscardd.slot_id(CARD))
        self.assertEqual(self.call('iReadCardBas', 1, env=env)['rc'], 0)
        env = dict(self.env, SSCARD_READER='pcsc-no-such-reader')
        self.assertFails(self.call('iReadCardBas', 1, env=env), -11, 'B6C1BFA8C6F7C1ACBDD3B4ED',
                         'SSC_ENOREADER')                           # 读卡器连接错

    def card_gone(self):
        # A link that drops in the middle of a read: the card is gone (SSC_ECARDREMOVED, −2).
        self.card.arm_drop(3)
        r = self.call('iReadCardBas', 1)
        self.assertEqual(r['rc'], -2, r['text'])
        self.assertTrue(r['out'].startswith('CEDEBFA8'), r['text'])   # 无卡
        self.wait_roles({CARD: None})
        r = self.call('iReadCardBas', 1)
        self.assertFails(r, -2, 'CEDEBFA8', 'SSC_ENOCARD')
        r = self.call('iReadCard', 1, 0, PROFILES['gen2']['card_info'], 'EF05|07|$')
        self.assertFails(r, -2, 'CEDEBFA8', 'SSC_ENOCARD')
        # No card: 0 all the same, with the terminal number of the first PSAM in reader.list's
        # order (the card's algorithm cannot choose between the two); the empty reader's serial
        # (vpcd has none).
        first = next(e['id'] for e in self.d.readers(self.c) if e['role'] == 'psam')
        want = {sscardd.slot_id(DES_PSAM): DES_TERMINAL, sscardd.slot_id(SM4_PSAM): SM4_TERMINAL}
        r = self.call('iGetReaderInfo')
        self.assertEqual((r['rc'], r['out'], bytes.fromhex(r['out2']).decode()),
                         (0, '', want[first]))

    def test_gen2(self):
        self.start('gen2')
        self.legacy_functions('gen2')
        self.card_gone()

    def test_gen3(self):
        self.start('gen3')
        self.legacy_functions('gen3')

    def test_gen3_gb18030(self):
        """A name beyond GBK (issue 11): GB18030 out of iReadCardBas and iReadCard and in through
        iWriteCard. Bytes by hand (张 D5C5, 䶮 FE9F: a two-byte code GBK lacks, 𫖯 9838F537: four
        bytes; iconv -t GB18030 agrees), the rest from firmware-stubs/profiles/gen3-gb18030.json."""
        self.start('gen3-gb18030')
        r = self.call('iReadCardBas', 1)
        self.assertEqual(r['rc'], 0, r['text'])
        self.assertEqual(r['out'], (
            '330200|330203198808080027|A12345703|330200D156000005001803017C54CD9D|'.encode()
            + bytes.fromhex('D5C5FE9F9838F537')
            + b'|0081544C92868433020000180301|3.00|20250601|20350601|'
            + SM4_TERMINAL.encode() + b'||').hex().upper())
        info = '330200D156000005001803017C54CD9D|A12345703|'
        r = self.call('iWriteCard', 1, info, 'EF06|09|$', '9838F537FE9FD5C5' '7C')   # 𫖯䶮张|
        self.assertEqual((r['rc'], r['text']), (0, ''))
        r = self.call('iReadCard', 1, 0, info, '3F00EF06|09|4E|$')
        self.assertEqual((r['rc'], r['out']), (0, '9838F537FE9FD5C5' '7C' '7C'))

    def test_reader_info_without_card(self):
        """iGetReaderInfo at a desk's start-up, before any card: the PSAM's terminal number from
        reader.list; 000000000000 without a PSAM; a reader named by SSCARD_READER that is not
        there: −11."""
        self.h.start_pcscd()
        psam = self.h.start_psam('gen2', slot=DES_PSAM)
        self.start_daemon()
        self.wait_roles({CARD: None, DES_PSAM: 'psam'})
        self.env = dict(os.environ, SSCARD_SOCKET=self.d.socket_path)
        for k in ('SSCARD_READER', 'SSCARD_CONTACTLESS_READER', 'SSCARD_TIMEOUT_MS'):
            self.env.pop(k, None)
        r = self.call('iGetReaderInfo')
        self.assertEqual((r['rc'], r['out'], bytes.fromhex(r['out2']).decode()),
                         (0, '', '330100000001'))                # gen2.json psam.terminal_number
        env = dict(self.env, SSCARD_READER=sscardd.slot_id(CARD))
        r = self.call('iGetReaderInfo', env=env)
        self.assertEqual((r['rc'], bytes.fromhex(r['out2']).decode()), (0, '330100000001'))
        env = dict(self.env, SSCARD_READER='pcsc-no-such-reader')
        r = self.call('iGetReaderInfo', env=env)
        self.assertEqual((r['rc'], r['out'], r['out2']), (-11, '', ''))
        # A card in a simulator that does not answer (SIGSTOP), one PSAM: answered from
        # reader.list, the card never asked (a card read would end in −4 at the deadline).
        card = self.h.start_card('gen2', slot=CARD)
        self.wait_roles({CARD: 'user', DES_PSAM: 'psam'})
        card.sigstop()
        try:
            r = self.call('iGetReaderInfo', env=dict(self.env, SSCARD_TIMEOUT_MS='3000'))
        finally:
            card.sigcont()
        self.assertEqual((r['rc'], bytes.fromhex(r['out2']).decode()), (0, '330100000001'))
        # No PSAM (taken out): 000000000000, with and without the card.
        psam.remove()
        self.wait_roles({CARD: 'user', DES_PSAM: None})
        r = self.call('iGetReaderInfo')
        self.assertEqual((r['rc'], bytes.fromhex(r['out2']).decode()), (0, '000000000000'))
        card.remove()
        self.wait_roles({CARD: None, DES_PSAM: None})
        r = self.call('iGetReaderInfo')
        self.assertEqual((r['rc'], r['out'], bytes.fromhex(r['out2']).decode()),
                         (0, '', '000000000000'))

    def test_daemon_gone_or_stopped(self):
        self.start('gen2')
        # Not running: −11 at once, saying so.
        env = dict(self.env, SSCARD_SOCKET=self.h.path('nobody.sock'))
        t0 = time.monotonic()
        r = self.call('iReadCardBas', 1, env=env)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertFails(r, -11, 'B6C1BFA8C6F7C1ACBDD3B4ED', 'SSC_EIO')
        self.assertIn('is sscardd running?', r['text'])
        r = self.call('iVerifyPIN', 1, env=env)
        self.assertEqual(r['rc'], -13)

        # Stopped: the call returns −4 at its deadline (SSCARD_TIMEOUT_MS = 2000).
        env = dict(self.env, SSCARD_TIMEOUT_MS='2000')
        self.d.proc.sigstop()
        try:
            t0 = time.monotonic()
            r = self.call('iReadCard', 1, 0, PROFILES['gen2']['card_info'], 'EF05|07|$', env=env)
            took = time.monotonic() - t0
        finally:
            self.d.proc.sigcont()
        self.assertFails(r, -4, 'BFA8CEDED3A6B4F0', 'SSC_ETIMEDOUT')     # 卡无应答
        self.assertGreaterEqual(r['ms'], 1900)
        self.assertLess(took, 8.0)
        self.assertEqual(self.call('iReadCardBas', 1)['rc'], 0)


if __name__ == '__main__':
    unittest.main()
