#!/usr/bin/python3
"""sscardd end to end, the two-step read (issue 14, spec §13.1): card.hsm_step1 / card.hsm_step2
with the test playing the province's key server (tests/e2e/province.py: the key string computed
from the step-1 string and the profile's master keys, from the spec, not from sscard), through a
real pcscd + vpcd + simulated cards + sscardd, with no PSAM and no key server configured.

- gen2 (DES) and gen3-readauth (SM4, read authorisation by the server's cryptogram): the step-1
  string's fields, then step 2 answers exactly what card.read_basic answers (for gen2, compared
  with card.read_basic itself; for gen3-readauth, which card.read_basic cannot read without keys,
  with the profile's values written by hand);
- the lease: while a session is open, every other operation on that reader (another step 1
  included) gets SSC_EREADERLEASED at once with data.lease_left_ms; the card keeps its challenge;
- a wrong 内部认证结果 → SSC_EHSMMISMATCH (std −25), a malformed key → SSC_EHSMKEY (−23), in both
  cases no command reaches the card, and the session and the lease end;
- an unknown session → SSC_EHSMSESSION (−12); a second step 2 of a session → SSC_EHSMSESSION;
- expiry ([timeouts] hsm_session_ms): SSC_EHSMEXPIRED (−12), the reader free again, the card reset;
- removal between the steps: step 2 → SSC_ECARDREMOVED, the reader free again.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_hsm_read.py [-k name]
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docsref  # noqa: E402
import province  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

GEN2, READAUTH, DES_PSAM = 0, 1, 2


class TwoStep(sscardd.DaemonTestCase):
    readers = 3

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.cards = {GEN2: self.h.start_card('gen2', slot=GEN2, verbose=True),
                      READAUTH: self.h.start_card('gen3-readauth', slot=READAUTH, verbose=True)}
        self.profiles = {GEN2: 'gen2', READAUTH: 'gen3-readauth'}

    def start(self, **config):
        self.start_daemon(config=config or None)
        self.wait_roles({GEN2: 'user', READAUTH: 'user'})

    def step1(self, slot):
        return self.c.call('card.hsm_step1', {'reader': slot_id(slot)})

    def key(self, slot, step1):
        return province.key_string(step1, *province.profile_masters(self.profiles[slot]))

    def apdus(self, slot):
        return self.cards[slot].status()['apdus']

    def assertError(self, method, params, name, std, code=None):
        e = self.c.call_error(method, params)
        self.assertRpcError(e, name, std_code=std, code=code)
        # As the docs say: api.md lists it for the method, errors.md gives that std_code.
        self.assertIn(name, docsref.method_errors(method))
        self.assertEqual(docsref.errors_table()[name]['std'], std)
        return e

    def test_gen2_equals_read_basic(self):
        self.start()
        basic = self.c.call('card.read_basic', {'reader': slot_id(GEN2)})
        s1 = self.step1(GEN2)
        self.assertEqual(sorted(s1), ['expires_in_ms', 'session', 'step1'])
        self.assertEqual(s1['expires_in_ms'], 60000)
        self.assertRegex(s1['session'], r'^[0-9a-f]{32}$')
        f = s1['step1'].split('|')
        # region | historical bytes | 01 DES | 卡识别码 | P | X | no R | no R | terminal |
        self.assertEqual(len(f), 10)
        self.assertEqual(f[:4], ['330100', basic['atr_historical'], '01', basic['card_id']])
        self.assertRegex(f[4], r'^[0-9A-F]{16}$')
        self.assertRegex(f[5], r'^[0-9A-F]{16}$')
        self.assertEqual(f[6:], ['', '', '000000000000', ''])
        # P ‖ X are what the card got in INTERNAL AUTHENTICATE.
        self.assertIn(f'> 0088000010{f[4]}{f[5]}', self.cards[GEN2].proc.log_text())
        r = self.c.call('card.hsm_step2', {'session': s1['session'],
                                           'key': self.key(GEN2, s1['step1'])})
        self.assertEqual(r, basic)
        # The session is over: a second step 2 finds nothing; the reader is free.
        self.assertError('card.hsm_step2', {'session': s1['session'],
                                            'key': self.key(GEN2, s1['step1'])},
                         'SSC_EHSMSESSION', -12, code=1061)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(GEN2)}), basic)

    def test_terminal_number_of_a_psam(self):
        """With a PSAM of the card's algorithm at the desk, the step-1 string carries its terminal
        number (spec §13.1: what card.read_basic reports here), and so does step 2's answer;
        the two-step read itself uses no key of it (gen2.json's DES PSAM: 330100000001)."""
        psam = self.h.start_psam('gen2', slot=DES_PSAM)
        self.start_daemon()
        self.wait_roles({GEN2: 'user', READAUTH: 'user', DES_PSAM: 'psam'})
        basic = self.c.call('card.read_basic', {'reader': slot_id(GEN2)})
        self.assertEqual(basic['terminal_number'], '330100000001')
        s1 = self.step1(GEN2)
        self.assertEqual(s1['step1'].split('|')[8], '330100000001')
        before = psam.status()['apdus']
        r = self.c.call('card.hsm_step2', {'session': s1['session'],
                                           'key': self.key(GEN2, s1['step1'])})
        self.assertEqual(r, basic)
        # Step 2 reports step 1's terminal number and uses no key of the desk: the PSAM got
        # no command.
        self.assertEqual(psam.status()['apdus'], before)

    def test_readauth_and_the_lease(self):
        self.start()
        s1 = self.step1(READAUTH)
        f = s1['step1'].split('|')
        self.assertEqual(f[2], '03')                   # SM4
        self.assertRegex(f[6], r'^[0-9A-F]{16}$')      # the card's challenge R, twice
        self.assertEqual(f[6], f[7])
        # The challenge is the card's last answer: the GET CHALLENGE came last.
        log = self.cards[READAUTH].proc.log_text()
        self.assertIn(f'< {f[6]}9000', log.splitlines()[-1])
        # Leased: every other operation on the reader is refused at once, with the time left.
        before = self.apdus(READAUTH)
        for method, params in (('card.read_basic', {}), ('card.hsm_step1', {}),
                               ('card.internal_auth', {})):
            t0 = time.monotonic()
            e = self.assertError(method, dict(params, reader=slot_id(READAUTH)),
                                 'SSC_EREADERLEASED', -11, code=1063)
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertTrue(0 < e.data['lease_left_ms'] <= 60000, e)
            self.assertIn('two-step read', e.message)
        self.assertEqual(self.apdus(READAUTH), before)
        # The other reader is not held.
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(GEN2)})
                         ['card_number'], 'X00000019')
        r = self.c.call('card.hsm_step2', {'session': s1['session'],
                                           'key': self.key(READAUTH, s1['step1'])})
        # gen3-readauth.json, by hand; no key provider at all on this desk.
        self.assertEqual((r['card_number'], r['ssn'], r['name'], r['algorithm'],
                          r['terminal_number'], r['card_id']),
                         ('A12345674', '330203198511110029',
                          '阿卜杜热合曼·买买提艾力·吐尔逊江', 'sm4', '000000000000',
                          '330200D156000005013C5A7F8E4DC9A5'))
        self.assertTrue(r['standard'].startswith('330200|330203198511110029|A12345674|'))
        # The card got the server's cryptogram and R (SM4: key version 01), read auth key 0A.
        ext = self.key(READAUTH, s1['step1']).split('|')[1]
        self.assertIn(f'> 0082000A11{ext}01', self.cards[READAUTH].proc.log_text())
        # The lease is over: the reader serves others (a plain read needs keys this card
        # demands: without a key provider that is SSC_ENOPSAM, not SSC_EREADERLEASED).
        self.assertError('card.read_basic', {'reader': slot_id(READAUTH)}, 'SSC_ENOPSAM', -2201)

    def test_wrong_and_malformed_keys(self):
        self.start()
        for slot in (GEN2, READAUTH):
            for bad, name, std in (('wrong', 'SSC_EHSMMISMATCH', -25),
                                   ('malformed', 'SSC_EHSMKEY', -23),
                                   ('no R', 'SSC_EHSMKEY', -23)):
                with self.subTest(card=self.profiles[slot], key=bad):
                    s1 = self.step1(slot)
                    good = self.key(slot, s1['step1'])
                    c, ext = good.split('|')[:2]
                    key = {'wrong': f'{int(c, 16) ^ 1:016X}|{ext}|',
                           'malformed': good[:-1],
                           'no R': f'{c}|{"" if ext else "00" * 16}|'}[bad]
                    n = self.apdus(slot)
                    self.assertError('card.hsm_step2', {'session': s1['session'], 'key': key},
                                     name, std)
                    # Nothing reached the card; the session and the lease are over.
                    self.assertEqual(self.apdus(slot), n)
                    self.assertError('card.hsm_step2', {'session': s1['session'], 'key': good},
                                     'SSC_EHSMSESSION', -12)
        self.assertError('card.hsm_step2', {'session': '0' * 32, 'key': 'x|'},
                         'SSC_EHSMSESSION', -12)
        # Params: both strings, nothing else (−32602).
        for params in ({'session': 's'}, {'session': 1, 'key': 'k'},
                       {'session': 's', 'key': 'k', 'reader': slot_id(GEN2)}):
            self.assertRpcError(self.c.call_error('card.hsm_step2', params), 'SSC_EINVAL',
                                code=-32602)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(GEN2)})
                         ['card_number'], 'X00000019')

    def test_expiry(self):
        self.start(timeouts={'hsm_session_ms': 2000})
        s1 = self.step1(READAUTH)
        self.assertEqual(s1['expires_in_ms'], 2000)
        self.assertError('card.read_basic', {'reader': slot_id(READAUTH)},
                         'SSC_EREADERLEASED', -11)
        time.sleep(2.5)
        n = self.apdus(READAUTH)
        self.assertError('card.hsm_step2', {'session': s1['session'],
                                            'key': self.key(READAUTH, s1['step1'])},
                         'SSC_EHSMEXPIRED', -12, code=1062)
        self.assertEqual(self.apdus(READAUTH), n)
        # The reader is free, and the card was reset: its challenge is gone (an EXTERNAL AUTH
        # now would answer 6984). A new step 1 works.
        after = self.cards[READAUTH].proc.log_text().split(f'< {s1["step1"].split("|")[6]}9000')
        self.assertRegex(after[-1], r'reset|power off')
        s2 = self.step1(READAUTH)
        r = self.c.call('card.hsm_step2', {'session': s2['session'],
                                           'key': self.key(READAUTH, s2['step1'])})
        self.assertEqual(r['card_number'], 'A12345674')

    def test_removal_ends_the_session(self):
        self.start()
        s1 = self.step1(GEN2)
        self.cards[GEN2].remove()
        self.h.wait_card(GEN2, present=False)
        # The daemon sees the removal before the card comes back (else its reader list could
        # still show the old insertion, and step 2 meet the reader empty: SSC_ENOCARD).
        self.d.wait_reader(self.c, self.h.reader_name(GEN2), card=False)
        self.cards[GEN2].insert()
        self.d.wait_reader(self.c, self.h.reader_name(GEN2), card=True, role='user')
        e = self.assertError('card.hsm_step2', {'session': s1['session'],
                                                'key': self.key(GEN2, s1['step1'])},
                             'SSC_ECARDREMOVED', -2)
        self.assertIn('removed after step 1', e.message)
        # The new insertion is not held.
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(GEN2)})
                         ['card_number'], 'X00000019')

    def test_python_client(self):
        """The Python package's helpers (python/sscard): hsm_step1 and hsm_step2, a wrong key
        as SscardError with the spec's std_code."""
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), 'python'))
        import sscard
        self.start()
        with sscard.connect(self.d.socket_path, timeout=15) as c:
            basic = c.read_basic(reader=slot_id(GEN2))
            s1 = c.hsm_step1(reader=slot_id(GEN2))
            self.assertEqual(sorted(s1), ['expires_in_ms', 'session', 'step1'])
            self.assertEqual(c.hsm_step2(s1['session'], self.key(GEN2, s1['step1'])), basic)
            s1 = c.hsm_step1(reader=slot_id(GEN2))
            with self.assertRaises(sscard.SscardError) as cm:
                c.hsm_step2(s1['session'], '0000000000000000||')
            self.assertEqual((cm.exception.name, cm.exception.std_code),
                             ('SSC_EHSMMISMATCH', -25))

    def test_sscardctl(self):
        self.start()
        sock = ('--socket', self.d.socket_path)
        rc, out, err = sscardd.ctl(*sock, 'read-basic', '--hsm-step1', '--reader',
                                   slot_id(READAUTH))
        self.assertEqual(rc, 0, err)
        lines = dict(line.split(': ', 1) for line in out.splitlines())
        self.assertEqual(sorted(lines), ['expires in', 'session', 'step1'])
        self.assertEqual(lines['expires in'], '60000 ms')
        key = self.key(READAUTH, lines['step1'])
        rc, out, err = sscardd.ctl(*sock, '--json', 'read-basic', '--hsm-step2',
                                   lines['session'], key)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['card_number'], 'A12345674')
        # A second step 2: the daemon's error, exit 1, its name on stderr.
        rc, out, err = sscardd.ctl(*sock, 'read-basic', '--hsm-step2', lines['session'], key)
        self.assertEqual(rc, 1)
        self.assertIn('SSC_EHSMSESSION', err)
        # Usage: step 2 takes its session's reader, and goes with read-basic alone.
        for args in (('read-basic', '--hsm-step2', 'S', '--reader', slot_id(GEN2), key),
                     ('read-basic', '--hsm-step1', '--internal-auth'),
                     ('read-items', '--hsm-step1', 'SSSE/EF05', '01'),
                     ('read-basic', '--hsm-step2', 'S')):
            self.assertEqual(sscardd.ctl(*sock, *args)[0], 2, args)


if __name__ == '__main__':
    unittest.main()
