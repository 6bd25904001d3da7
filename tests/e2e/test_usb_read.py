#!/usr/bin/python3
"""sscardd over USB, end to end: the unmodified daemon drives emulated USB CCID readers (usbtest,
tests/usb/) through libusb, at short APDU level, T=0 TPDU level and T=1 TPDU level. In each: every
shipped profile is read with card.read_basic on multi-slot readers that also hold the PSAMs (a user
card and a PSAM in one device), a PIN is verified (right, wrong, blocked), and DF04 files are
written with the PSAM's MAC and read back.

Every expected value is copied by hand from firmware-stubs/profiles/*.json and the spec (ssc-card.md
§2, §5, §12.9); historical bytes were cut by hand from each profile's ATR (T0 = 8E or 6E: the last
14 bytes before TCK, or the last 14 for 6E without TCK). Nothing is taken from the daemon's output.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_usb_read.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usbharness  # noqa: E402

NO_TERMINAL = '000000000000'
DES_TERMINAL = '330100000001'     # psam.terminal_number of gen2.json (DES)
SM4_TERMINAL = '330200000001'     # psam.terminal_number of gen3.json (SM4)

# profile: (region, ssn, card_number, card_id, name, sex, nation, birth_place, birth_date,
#           spec_version, issue_date, expiry_date, expired, historical bytes, algorithm)
PROFILES = {
    'gen2': ('330100', '330102199003071230', 'X00000019', '330100D15600000500BF7C7AC9FC0FEC',
             '张三', '1', '01', '330102', '19900307', '2.00', '20240101', '20340101', False,
             '0081544C92868433010000BF7C7A', 'des'),
    'gen3': ('330200', '330203198511110029', 'A12345674', '330200D156000005013C5A7E0A29D26E',
             '阿卜杜热合曼·买买提艾力·吐尔逊江', '1', '05', '650102', '19851111', '3.00', '20250601',
             '20350601', False, '0081544C928684330200013C5A7E', 'sm4'),
    'gen3-readauth': ('330200', '330203198511110029', 'A12345674',
                      '330200D156000005013C5A7F8E4DC9A5', '阿卜杜热合曼·买买提艾力·吐尔逊江', '1',
                      '05', '650102', '19851111', '3.00', '20250601', '20350601', False,
                      '0081544C928684330200013C5A7F', 'sm4'),
    'gen1': ('330100', '33010219700101011X', 'X00000086', '330100D156000005001001002B87B98A',
             '吴十', '1', '01', '330102', '19700101', '1.00', '20240101', '20340101', False,
             '0081544C92868433010000100100', 'des'),
    'gen2-tagmode': ('330100', '330102198001010077', 'X0000006X',
                     '330100D15600000500AB000198A52F9E', '孙八', '1', '02', '330102', '19800101',
                     '2.00', '20240101', '20340101', False, '0081544C92868433010000AB0001', 'des'),
    't0-quirks': ('330100', '330106199202290028', 'X00000027', '330100D15600000500C0FFEE0BC88AE8',
                  '李四', '2', '01', '330106', '19920229', '2.00', '20240101', '20340101', False,
                  '0081544C92868433010000C0FFEE', 'des'),
    'expired': ('330100', '330105197006150014', 'X00000035', '330100D15600000500E0E0E0779D0B5F',
                '王五', '1', '01', '330105', '19700615', '2.00', '20100101', '20200101', True,
                '0081544C92868433010000E0E0E0', 'des'),
    'gen2-badcardid': ('330100', '330102198001010157', 'X00000078',
                       '330100D15600000500BAD1D0629FC40C', '周九', '2', '01', '330102', '19800101',
                       '2.00', '20240101', '20340101', False, '0081544C92868433010000BAD1D0',
                       'des'),
    'gen2-wrongkey': ('330100', '330109199505050055', 'X00000051',
                      '330100D15600000500BAD0BA38B7994D', '钱七', '1', '01', '330109', '19950505',
                      '2.00', '20240101', '20340101', False, '0081544C92868433010000BAD0BA',
                      'des'),
    'pin-blocked': ('330100', '330108198812080042', 'X00000043',
                    '330100D15600000500B10C4D49386A73', '赵六', '2', '01', '330108', '19881208',
                    '2.00', '20240101', '20340101', False, '0081544C92868433010000B10C4D', 'des'),
}


def expected(profile, terminal, device_serial):
    (region, ssn, number, card_id, name, sex, nation, place, birth, spec, issue, expiry, expired,
     hist, alg) = PROFILES[profile]
    # iReadCardBas (spec §5): 区划|社保号|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|有效期|终端机编号|终端设备号|
    standard = '|'.join([region, ssn, number, card_id, name, hist, spec, issue, expiry, terminal,
                         device_serial]) + '|'
    return dict(region_code=region, ssn=ssn, card_number=number, card_id=card_id, name=name,
                sex=sex, nation=nation, birth_place=place, birth_date=birth, spec_version=spec,
                issue_date=issue, expiry_date=expiry, expired=expired, atr_historical=hist,
                terminal_number=terminal, terminal_device=device_serial, algorithm=alg,
                standard=standard)


# (device, slot) -> profile; slot 3 of devices a and c holds a PSAM.
LAYOUT = {
    ('a', 0): 'gen2', ('a', 1): 'gen3', ('a', 2): 'gen3-readauth',
    ('b', 0): 'gen1', ('b', 1): 'gen2-tagmode', ('b', 2): 't0-quirks', ('b', 3): 'expired',
    ('c', 0): 'gen2-badcardid', ('c', 1): 'gen2-wrongkey', ('c', 2): 'pin-blocked',
}


def devices(mode):
    return [
        f'name=a,mode={mode},slots=card:gen2+card:gen3+card:gen3-readauth+psam:gen3,serial=A{mode}',
        f'name=b,mode={mode},slots=card:gen1+card:gen2-tagmode+card:t0-quirks+card:expired,'
        f'serial=B{mode}',
        f'name=c,mode={mode},slots=card:gen2-badcardid+card:gen2-wrongkey+card:pin-blocked+'
        f'psam:gen2,serial=C{mode}',
    ]


class UsbRead:
    """The same end-to-end assertions at each exchange level (mixed into a TestCase below)."""

    mode = None

    def start_all(self):
        self.start(devices(self.mode), op_timeout_ms=8000)
        self.assertEqual(self.wait_reader('a', 3, card=True, role='psam')['algorithm'], 'sm4')
        self.assertEqual(self.wait_reader('c', 3, card=True, role='psam')['algorithm'], 'des')
        self.ids = {k: self.wait_user(*k) for k in LAYOUT}

    def test_read_pin_write(self):
        self.start_all()
        # The readers are the daemon's usb-ccid readers, one per slot, with their serials.
        for (dev, slot), rid in self.ids.items():
            r = self.reader_of(dev, slot)
            self.assertEqual(r['driver'], 'usb-ccid')
            self.assertTrue(rid.startswith('usb-ccid-'), rid)

        # card.read_basic of every profile.
        for (dev, slot), prof in LAYOUT.items():
            with self.subTest(profile=prof):
                alg = PROFILES[prof][-1]
                term = DES_TERMINAL if alg == 'des' else SM4_TERMINAL
                got = self.c.call('card.read_basic', {'reader': self.ids[(dev, slot)]})
                self.assertEqual(got, expected(prof, term, f'{dev.upper()}{self.mode}'))

        # card.read_items: SSSE/EF05 card number and DF04/EF05 of gen2 (profile medical block).
        gen2 = self.ids[('a', 0)]
        got = self.c.call('card.read_items', {'reader': gen2, 'file': 'SSSE/EF05',
                                              'items': ['07']})
        self.assertEqual(got['items'], {'07': 'X00000019'})
        got = self.c.call('card.read_items', {'reader': gen2, 'file': 'DF04/EF05',
                                              'items': ['30', '31', '32', '33', '34']})
        self.assertEqual(got['items'], {'30': '330100', '31': '11', '32': '33010000000000000001',
                                        '33': 'H33010000001', '34': '0'})

        # PIN (gen2.json: 123456, 3 tries).
        self.assertEqual(self.c.call('card.verify_pin', {'reader': gen2, 'pin': '123456'}),
                         {'verified': True})
        err = self.c.call_error('card.verify_pin', {'reader': gen2, 'pin': '000000'})
        self.assertRpcError(err, 'SSC_EPINWRONG', std_code=-51)
        self.assertEqual(err.retries_left, 2)
        self.assertEqual(self.c.call('card.verify_pin', {'reader': gen2, 'pin': '123456'}),
                         {'verified': True})
        err = self.c.call_error('card.verify_pin', {'reader': self.ids[('c', 2)],
                                                    'pin': '123456'})
        self.assertRpcError(err, 'SSC_EPINBLOCKED', std_code=-52)

        # Writes: DF04/EF05 (UPDATE RECORD with the PSAM's MAC) on the DES and the SM4 card, then
        # an EF08 transaction appended to the SM4 card (a 60-byte APDU: chained at T=1, IFSC 32).
        for key in (('a', 0), ('a', 1)):
            with self.subTest(write=key):
                rid = self.ids[key]
                got = self.c.call('card.write_items', {'reader': rid, 'file': 'DF04/EF05',
                                                       'items': {'31': '21', '34': '1'}})
                self.assertEqual(got['file'], 'DF04/EF05')
                self.assertEqual(got['items'], {'31': '21', '34': '1'})
                self.assertIsInstance(got['journal_id'], int)
                back = self.c.call('card.read_items', {'reader': rid, 'file': 'DF04/EF05',
                                                       'items': ['31', '34']})
                self.assertEqual(back['items'], {'31': '21', '34': '1'})
        tx = {'time': '20260301101500', 'institution': 'H33020000001',
              'settlement_no': 'S2026030100000000009', 'total': 3200, 'personal_account': 3200,
              'pooled': 0}
        got = self.c.call('card.write_items', {'reader': self.ids[('a', 1)], 'file': 'DF04/EF08',
                                               'items': {'40': tx}})
        self.assertEqual(got['items'], {'40': tx})
        self.check_line()

    def check_line(self):
        """Per-level checks on the emulator's counters."""


class ApduLevel(UsbRead, usbharness.UsbTestCase):
    mode = 'apdu'


class XApduLevel(UsbRead, usbharness.UsbTestCase):
    mode = 'xapdu'


class T0Level(UsbRead, usbharness.UsbTestCase):
    mode = 't0'

    def check_line(self):
        # A T=0 TPDU reader: the driver must have mapped every APDU to TPDUs itself (no case-4
        # APDU with Le, no 4-byte case 1, no length the header does not announce), and the T=0
        # answers (61xx from case-3 TPDUs, 6Cxx on a wrong P3) must have come up.
        for dev in ('a', 'b', 'c'):
            for slot in range(4):
                st = self.usb.slot_stats(dev, slot)
                with self.subTest(dev=dev, slot=slot):
                    self.assertEqual(st['refused'], 0, st)
                    self.assertEqual(st['case4_as_case3'], 0, st)
        st = self.usb.slot_stats('a', 0)
        self.assertGreater(st['t0_61xx'], 0, st)


class T1Level(UsbRead, usbharness.UsbTestCase):
    mode = 't1'

    def check_line(self):
        # IFSC 32: the 60-byte APPEND RECORD went as a chain; the 32-byte name record plus SW is
        # longer than the default IFSD 32, so answers are chained too unless the driver raised
        # IFSD with S(IFS request).
        st = self.usb.slot_stats('a', 1)
        self.assertGreater(st['t1_chain_in'], 0, st)
        self.assertGreater(st['t1_chain_out'] + st['t1_ifs'], 0, st)
        for dev in ('a', 'b', 'c'):
            for slot in range(4):
                st = self.usb.slot_stats(dev, slot)
                with self.subTest(dev=dev, slot=slot):
                    self.assertEqual(st['t1_bad_in'], 0, st)


class AllowList(usbharness.UsbTestCase):
    """Readers with a vendor-specific interface class are claimed only when [drivers] usb_allow
    names their VID:PID."""

    def test_usb_allow(self):
        self.start(['name=v,mode=apdu,slots=card:gen2,class=ff,vid=072f,pid=b100,serial=V1',
                    'name=w,mode=apdu,slots=card:gen3,class=ff,vid=1209,pid=0002,serial=W1',
                    'name=k,mode=apdu,slots=card:gen2-tagmode,serial=K1'],
                   config={'drivers': {'usb_allow': '072F:B100'}})
        allowed = self.wait_user('v')
        self.wait_user('k')
        self.assertEqual(self.c.call('card.read_basic', {'reader': allowed})['ssn'],
                         '330102199003071230')
        # The other vendor-class device is left alone (give the monitor a few polls).
        time.sleep(1.5)
        self.assertIsNone(self.reader_of('w'))
        self.assertEqual(len([r for r in self.d.readers(self.c) if r['driver'] == 'usb-ccid']), 2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
