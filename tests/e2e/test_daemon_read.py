#!/usr/bin/python3
"""sscardd end to end: card.read_basic of every shipped profile and card.read_items, through real
pcscd + vpcd + sscard-sim + sscardd and a JSON-RPC client on the daemon's socket.

Every expected value below is copied by hand from firmware-stubs/profiles/*.json and the spec
(ssc-card.md §2, §5, §12.7, §12.9): nothing is computed by the code under test or derived from its
output. The ATR's historical bytes were cut by hand from each profile's ATR (T0 = 8E or 6E: 14
historical bytes; 3B 8E 80 01 ... TCK, or 3B 6E 00 00 ... without TCK). The 姓名 / 姓名扩展 split
is the 30-byte limit of tag 09 (15 two-byte characters; "·" is GBK A1A4). gen3-gb18030's name 张䶮𫖯
is GB 18030 (D5C5 FE9F 9838F537, checked with iconv -t GB18030): it was unreadable while card text
was decoded as GBK ("not GBK text").

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_read.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

NO_TERMINAL = '000000000000'
DES_TERMINAL = '330100000001'      # psam.terminal_number of the DES profiles (gen2.json ...)
SM4_TERMINAL = '330200000001'      # psam.terminal_number of gen3.json / gen3-readauth.json
ISSUER_KEY = '0123456789ABCDEFFEDCBA9876543210'   # card.keys.issuer of every profile


def basic(region_code, ssn, card_number, card_id, name, sex, nation, birth_place, birth_date,
          spec_version, issue_date, expiry_date, expired, atr_historical, algorithm, standard):
    """The card.read_basic result of a profile, without the terminal number (which depends on the
    PSAMs a test inserts): standard holds "{term}" where the terminal number goes."""
    return dict(region_code=region_code, ssn=ssn, card_number=card_number, card_id=card_id,
                name=name, sex=sex, nation=nation, birth_place=birth_place, birth_date=birth_date,
                spec_version=spec_version, issue_date=issue_date, expiry_date=expiry_date,
                expired=expired, atr_historical=atr_historical, terminal_device='',
                algorithm=algorithm, standard=standard)


# firmware-stubs/profiles/<name>.json, by hand.
BASIC = {
    'gen2': basic(
        '330100', '330102199003071230', 'X00000019', '330100D15600000500BF7C7AC9FC0FEC', '张三',
        '1', '01', '330102', '19900307', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000BF7C7A', 'des',
        '330100|330102199003071230|X00000019|330100D15600000500BF7C7AC9FC0FEC|张三|'
        '0081544C92868433010000BF7C7A|2.00|20240101|20340101|{term}||'),
    'gen3': basic(
        '330200', '330203198511110029', 'A12345674', '330200D156000005013C5A7E0A29D26E',
        '阿卜杜热合曼·买买提艾力·吐尔逊江', '1', '05', '650102', '19851111', '3.00', '20250601',
        '20350601', False, '0081544C928684330200013C5A7E', 'sm4',
        '330200|330203198511110029|A12345674|330200D156000005013C5A7E0A29D26E|'
        '阿卜杜热合曼·买买提艾力·吐尔逊江|0081544C928684330200013C5A7E|3.00|20250601|20350601|'
        '{term}||'),
    'gen3-gb18030': basic(
        '330200', '330203198808080027', 'A12345703', '330200D156000005001803017C54CD9D', '张䶮𫖯',
        '2', '01', '330203', '19880808', '3.00', '20250601', '20350601', False,
        '0081544C92868433020000180301', 'sm4',
        '330200|330203198808080027|A12345703|330200D156000005001803017C54CD9D|张䶮𫖯|'
        '0081544C92868433020000180301|3.00|20250601|20350601|{term}||'),
    'gen3-readauth': basic(
        '330200', '330203198511110029', 'A12345674', '330200D156000005013C5A7F8E4DC9A5',
        '阿卜杜热合曼·买买提艾力·吐尔逊江', '1', '05', '650102', '19851111', '3.00', '20250601',
        '20350601', False, '0081544C928684330200013C5A7F', 'sm4',
        '330200|330203198511110029|A12345674|330200D156000005013C5A7F8E4DC9A5|'
        '阿卜杜热合曼·买买提艾力·吐尔逊江|0081544C928684330200013C5A7F|3.00|20250601|20350601|'
        '{term}||'),
    'gen1': basic(
        '330100', '33010219700101011X', 'X00000086', '330100D156000005001001002B87B98A', '吴十',
        '1', '01', '330102', '19700101', '1.00', '20240101', '20340101', False,
        '0081544C92868433010000100100', 'des',
        '330100|33010219700101011X|X00000086|330100D156000005001001002B87B98A|吴十|'
        '0081544C92868433010000100100|1.00|20240101|20340101|{term}||'),
    'gen2-tagmode': basic(
        '330100', '330102198001010077', 'X0000006X', '330100D15600000500AB000198A52F9E', '孙八',
        '1', '02', '330102', '19800101', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000AB0001', 'des',
        '330100|330102198001010077|X0000006X|330100D15600000500AB000198A52F9E|孙八|'
        '0081544C92868433010000AB0001|2.00|20240101|20340101|{term}||'),
    't0-quirks': basic(
        '330100', '330106199202290028', 'X00000027', '330100D15600000500C0FFEE0BC88AE8', '李四',
        '2', '01', '330106', '19920229', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000C0FFEE', 'des',
        '330100|330106199202290028|X00000027|330100D15600000500C0FFEE0BC88AE8|李四|'
        '0081544C92868433010000C0FFEE|2.00|20240101|20340101|{term}||'),
    'expired': basic(
        '330100', '330105197006150014', 'X00000035', '330100D15600000500E0E0E0779D0B5F', '王五',
        '1', '01', '330105', '19700615', '2.00', '20100101', '20200101', True,
        '0081544C92868433010000E0E0E0', 'des',
        '330100|330105197006150014|X00000035|330100D15600000500E0E0E0779D0B5F|王五|'
        '0081544C92868433010000E0E0E0|2.00|20100101|20200101|{term}||'),
    'gen2-badcardid': basic(
        '330100', '330102198001010157', 'X00000078', '330100D15600000500BAD1D0629FC40C', '周九',
        '2', '01', '330102', '19800101', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000BAD1D0', 'des',
        '330100|330102198001010157|X00000078|330100D15600000500BAD1D0629FC40C|周九|'
        '0081544C92868433010000BAD1D0|2.00|20240101|20340101|{term}||'),
    'gen2-wrongkey': basic(
        '330100', '330109199505050055', 'X00000051', '330100D15600000500BAD0BA38B7994D', '钱七',
        '1', '01', '330109', '19950505', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000BAD0BA', 'des',
        '330100|330109199505050055|X00000051|330100D15600000500BAD0BA38B7994D|钱七|'
        '0081544C92868433010000BAD0BA|2.00|20240101|20340101|{term}||'),
    'pin-blocked': basic(
        '330100', '330108198812080042', 'X00000043', '330100D15600000500B10C4D49386A73', '赵六',
        '2', '01', '330108', '19881208', '2.00', '20240101', '20340101', False,
        '0081544C92868433010000B10C4D', 'des',
        '330100|330108198812080042|X00000043|330100D15600000500B10C4D49386A73|赵六|'
        '0081544C92868433010000B10C4D|2.00|20240101|20340101|{term}||'),
}

# Every profile the simulator ships must have an expected result here.
PROFILE_DIR = os.path.join(sscardd.harness.SOURCE_DIR, 'firmware-stubs', 'profiles')


def expected(profile, term):
    """The whole card.read_basic result of profile with terminal number term."""
    e = dict(BASIC[profile])
    e['terminal_number'] = term
    e['standard'] = e['standard'].format(term=term)
    return e


def terminal_for(profile, des_psam, sm4_psam):
    alg = BASIC[profile]['algorithm']
    if alg == 'des':
        return DES_TERMINAL if des_psam else NO_TERMINAL
    return SM4_TERMINAL if sm4_psam else NO_TERMINAL


# Profiles on slots 0..10; the PSAMs go on the two slots after them.
PROFILES = ['gen2', 'gen3', 'gen3-readauth', 'gen1', 'gen2-tagmode', 't0-quirks', 'expired',
            'gen2-badcardid', 'gen2-wrongkey', 'pin-blocked', 'gen3-gb18030']
DES_PSAM_SLOT, SM4_PSAM_SLOT = len(PROFILES), len(PROFILES) + 1


class ReadBasicEveryProfile(sscardd.DaemonTestCase):
    """Eleven user cards and two PSAMs on fourteen vpcd readers of one pcscd (seven vpcd
    entries)."""

    readers = 14

    def test_shipped_profiles_all_covered(self):
        shipped = sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith('.json'))
        self.assertEqual(shipped, sorted(BASIC))
        self.assertEqual(sorted(PROFILES), sorted(BASIC))

    def test_every_profile_with_des_and_sm4_psams(self):
        self.h.start_pcscd()
        for slot, prof in enumerate(PROFILES):
            self.h.start_card(prof, slot=slot)
        self.h.start_psam('gen2', slot=DES_PSAM_SLOT)
        self.h.start_psam('gen3-readauth', slot=SM4_PSAM_SLOT)
        self.start_daemon(config={'card': {'card_id_mac_key': ISSUER_KEY}})
        roles = {slot: 'user' for slot in range(len(PROFILES))}
        roles.update({DES_PSAM_SLOT: 'psam', SM4_PSAM_SLOT: 'psam'})
        seen = self.wait_roles(roles)
        self.assertEqual(seen[self.h.reader_name(DES_PSAM_SLOT)]['algorithm'], 'des')
        self.assertEqual(seen[self.h.reader_name(SM4_PSAM_SLOT)]['algorithm'], 'sm4')
        for slot, prof in enumerate(PROFILES):
            with self.subTest(profile=prof):
                got = self.c.call('card.read_basic', {'reader': slot_id(slot)})
                self.assertEqual(got, expected(prof, terminal_for(prof, True, True)))

        # Opt-in checks (docs/api.md): the 卡识别码 MAC with the issuer key, internal authentication.
        for slot, prof in enumerate(PROFILES):
            with self.subTest(profile=prof, check='verify_card_id'):
                if prof == 'gen2-badcardid':
                    err = self.c.call_error('card.read_basic', {'reader': slot_id(slot),
                                                                'verify_card_id': True})
                    self.assertRpcError(err, 'SSC_EBADCARDDATA', std_code=-22)
                    self.assertEqual(err.reader, slot_id(slot))
                else:
                    got = self.c.call('card.read_basic', {'reader': slot_id(slot),
                                                          'verify_card_id': True})
                    self.assertIs(got.pop('card_id_verified'), True)
                    self.assertEqual(got, expected(prof, terminal_for(prof, True, True)))
        got = self.c.call('card.read_basic', {'reader': slot_id(0), 'internal_auth': True})
        self.assertIs(got.pop('genuine'), True)
        self.assertEqual(got, expected('gen2', DES_TERMINAL))
        got = self.c.call('card.read_basic', {'reader': slot_id(1), 'internal_auth': True})
        self.assertIs(got.pop('genuine'), True)
        self.assertEqual(got, expected('gen3', SM4_TERMINAL))
        err = self.c.call_error('card.read_basic', {'reader': slot_id(8), 'internal_auth': True})
        self.assertRpcError(err, 'SSC_ENOTGENUINE', std_code=-21, code=1018)

    def test_every_profile_without_psam(self):
        self.h.start_pcscd()
        for slot, prof in enumerate(PROFILES):
            self.h.start_card(prof, slot=slot)
        self.start_daemon()
        self.wait_roles({slot: 'user' for slot in range(len(PROFILES))})
        for slot, prof in enumerate(PROFILES):
            with self.subTest(profile=prof):
                if prof == 'gen3-readauth':
                    # EF06 needs read authorisation and no PSAM is there: a clear error.
                    err = self.c.call_error('card.read_basic', {'reader': slot_id(slot)})
                    self.assertRpcError(err, 'SSC_ENOPSAM', std_code=-2201, code=1011)
                    self.assertEqual(err.reader, slot_id(slot))
                else:
                    got = self.c.call('card.read_basic', {'reader': slot_id(slot)})
                    self.assertEqual(got, expected(prof, NO_TERMINAL))


class ReadBasicPsamAlgorithm(sscardd.DaemonTestCase):
    readers = 6

    def test_psam_of_the_wrong_algorithm(self):
        # Only a DES PSAM: the SM4 card that demands read authorisation cannot be read (-2202); an
        # SM4 card without read authorisation reads with no terminal number; DES cards get it.
        self.h.start_pcscd()
        self.h.start_card('gen3-readauth', slot=0)
        self.h.start_card('gen3', slot=1)
        self.h.start_card('gen2', slot=2)
        self.h.start_psam('gen2', slot=4)
        self.start_daemon()
        self.wait_roles({0: 'user', 1: 'user', 2: 'user', 4: 'psam'})
        err = self.c.call_error('card.read_basic', {'reader': slot_id(0)})
        self.assertRpcError(err, 'SSC_EPSAMALGO', std_code=-2202, code=1012)
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(1)}),
                         expected('gen3', NO_TERMINAL))
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(2)}),
                         expected('gen2', DES_TERMINAL))
        # The right PSAM arrives: the same card now reads, with the SM4 PSAM's terminal number.
        self.h.start_psam('gen3-readauth', slot=5)
        self.wait_roles({5: 'psam'})
        self.assertEqual(self.c.call('card.read_basic', {'reader': slot_id(0)}),
                         expected('gen3-readauth', SM4_TERMINAL))


# Items (docs/api.md card.read_items; spec §2.2, §2.3, §2.4, §12.7, §12.9), by hand from the
# profiles. 09 + 4E: the first 30 GBK bytes of the name and the rest.
ITEMS = {
    ('gen2', 'SSSE/EF05'): {'01': '330100D15600000500BF7C7AC9FC0FEC', '02': '3', '03': '2.00',
                            '04': '330100000001', '05': '20240101', '06': '20340101',
                            '07': 'X00000019'},
    ('gen2', 'SSSE/EF06'): {'08': '330102199003071230', '09': '张三', '4E': '', '0A': '1',
                            '0B': '01', '0C': '330102', '0D': '19900307'},
    ('gen2', 'DF04/EF05'): {'30': '330100', '31': '11', '32': '33010000000000000001',
                            '33': 'H33010000001', '34': '0'},
    ('gen2', 'DF04/EF06'): {'41': '00'},
    ('gen2', 'DF04/EF08'): {'40': [
        {'time': '20240315093000', 'institution': 'H33010000001',
         'settlement_no': 'S2024031500000000002', 'total': 12850, 'personal_account': 2850,
         'pooled': 10000},
        {'time': '20240302151205', 'institution': 'H33010000007',
         'settlement_no': 'S2024030200000000001', 'total': 4600, 'personal_account': 4600,
         'pooled': 0}]},
    ('gen3-readauth', 'SSSE/EF06'): {'08': '330203198511110029',
                                     '09': '阿卜杜热合曼·买买提艾力·吐尔', '4E': '逊江',
                                     '0A': '1', '0B': '05', '0C': '650102', '0D': '19851111'},
    ('gen3-readauth', 'SSSE/EF0D'): {'EA': 'P33020000001', 'EB': '330200'},
    ('gen3-readauth', 'DF04/EF05'): {'30': '330200', '31': '11', '32': '33020000000000000001',
                                     '33': 'H33020000001', '34': '0'},
    ('gen3-readauth', 'DF04/EF06'): {'41': '01'},
    ('gen3-readauth', 'DF04/EF08'): {'40': [
        {'time': '20250701080102', 'institution': 'H33020000009',
         'settlement_no': 'N2025070100000000042', 'total': 99999, 'personal_account': 0,
         'pooled': 99999}]},
    ('gen3-gb18030', 'SSSE/EF06'): {'08': '330203198808080027', '09': '张䶮𫖯', '4E': '',
                                    '0A': '2', '0B': '01', '0C': '330203', '0D': '19880808'},
    ('gen1', 'SSSE/EF06'): {'08': '33010219700101011X', '09': '吴十', '4E': None, '0A': '1',
                            '0B': '01', '0C': '330102', '0D': '19700101'},
    ('expired', 'DF04/EF08'): {'40': []},
}


class ReadItems(sscardd.DaemonTestCase):
    readers = 6

    def test_read_items(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.h.start_card('gen3-readauth', slot=1)
        self.h.start_psam('gen3-readauth', slot=2)
        self.h.start_card('gen1', slot=3)
        self.h.start_card('gen3-gb18030', slot=4)
        self.start_daemon()
        self.wait_roles({0: 'user', 1: 'user', 2: 'psam', 3: 'user', 4: 'user'})
        slots = {'gen2': 0, 'gen3-readauth': 1, 'gen1': 3, 'gen3-gb18030': 4}
        for (prof, f), items in ITEMS.items():
            if prof not in slots:
                continue
            with self.subTest(profile=prof, file=f):
                got = self.c.call('card.read_items', {'reader': slot_id(slots[prof]), 'file': f,
                                                      'items': list(items)})
                self.assertEqual(got, {'file': f, 'items': items})
        # Tags in lower case and a subset, in another order; the file name is case-insensitive.
        got = self.c.call('card.read_items', {'reader': slot_id(0), 'file': 'ssse/ef06',
                                              'items': ['0d', '09']})
        self.assertEqual(got['items'], {'0D': '19900307', '09': '张三'})
        # Errors: unknown file, unknown tag, a file the card lacks, bad params.
        err = self.c.call_error('card.read_items', {'reader': slot_id(0), 'file': 'SSSE/EF99',
                                                    'items': ['01']})
        self.assertRpcError(err, 'SSC_EBADITEM', std_code=-14, code=1032)
        err = self.c.call_error('card.read_items', {'reader': slot_id(0), 'file': 'SSSE/EF06',
                                                    'items': ['01']})
        self.assertRpcError(err, 'SSC_EBADITEM', std_code=-14)
        err = self.c.call_error('card.read_items', {'reader': slot_id(0), 'file': 'SSSE/EF0D',
                                                    'items': ['EA']})
        self.assertRpcError(err, 'SSC_ENOFILE', code=1030)
        for params in ({'reader': slot_id(0), 'file': 'SSSE/EF06', 'items': []},
                       {'reader': slot_id(0), 'file': 'SSSE/EF06', 'items': ['08', '08']},
                       {'reader': slot_id(0), 'file': 'SSSE/EF06'},
                       {'reader': slot_id(0), 'items': ['08']},
                       {'reader': '', 'file': 'SSSE/EF06', 'items': ['08']}):
            with self.subTest(params=params):
                err = self.c.call_error('card.read_items', params)
                self.assertRpcError(err, 'SSC_EINVAL', std_code=-14, code=-32602)


class ReadItemsMore(sscardd.DaemonTestCase):
    readers = 2

    def test_empty_transaction_file(self):
        self.h.start_pcscd()
        self.h.start_card('expired', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})
        # The only user card: reader may be omitted.
        for (prof, f), items in ITEMS.items():
            if prof == 'expired':
                self.assertEqual(self.c.call('card.read_items', {'file': f, 'items': list(items)}),
                                 {'file': f, 'items': items})
        self.assertEqual(self.c.call('card.read_basic'), expected('expired', NO_TERMINAL))


if __name__ == '__main__':
    unittest.main(verbosity=2)
