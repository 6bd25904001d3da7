#!/usr/bin/python3
"""sscardd end to end, authenticated writes (issue 4): card.write_items on SSSE (EXTERNAL
AUTHENTICATE with the PSAM's cryptogram, then UPDATE RECORD) and DF04 (UPDATE / APPEND RECORD with a
MAC from the PSAM), through a real pcscd + vpcd + sscard-sim (cards and PSAMs) + sscardd.

- SSSE/EF05, SSSE/EF06, SSSE/EF0D (gen3), DF04/EF05, DF04/EF06 and an append to DF04/EF08: each
  write reads back identically through card.read_items and, independently of the daemon, in the
  simulator's state file (the record bytes, encoded by hand below), and again after the simulator
  was killed and restarted from that file;
- the result's journal_id is an intent row of that file with exactly one outcome "applied" (SSC_OK,
  learnt from the card) in `sscardctl journal export`, and `journal verify --log` passes;
- a card whose keys do not match the PSAM (gen2-wrongkey) refuses the write: SSC_EAUTHFAILED for
  SSSE (with the key's tries left), the card's refusal for DF04; the intent is journaled with an
  outcome "failed" naming the error, and the card is unchanged;
- an expired card: reads work (expired: true), writes are refused (SSC_EEXPIRED) before any intent;
- a settlement number already on the card (DF04/EF08) is refused (SSC_EEXIST), never doubled;
- values too long or of the wrong format, unknown or read-only items: -32602 / SSC_EVALUE /
  SSC_EBADITEM before any APDU (the simulators' apdus counters do not move), and no intent;
- a failed outcome rewritten as applied, a deleted row or a forged row is caught by
  `sscardctl journal verify`.

Expected values: firmware-stubs/profiles/{gen2,gen3,gen2-wrongkey,expired}.json, the record layouts
of docs/simulator.md ("The card": tag, length, format; an padded with 00, cn BCD) and spec §12.7
(the 51-byte EF08 record), docs/api.md for the codes.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_write.py [-k name]
"""

import json
import os
import shutil
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

CARD_A, CARD_B = 0, 1        # card slots (one vpcd entry)
DES_PSAM, SM4_PSAM = 2, 3    # PSAM slots (the other entry)

# A settlement appended to DF04/EF08, and its 51-byte record as the card must hold it, by hand:
# 40 33 | time 7 bytes BCD | institution 12 an | settlement number 20 an | total, personal
# account, pooled: 4 bytes big-endian each (15000 = 3A98, 5000 = 1388, 10000 = 2710 fen).
TXN = {'time': '20261124083000', 'institution': 'H33010000007',
       'settlement_no': 'S2026112400000000123', 'total': 15000, 'personal_account': 5000,
       'pooled': 10000}
TXN_RECORD = ('4033' '20261124083000' '483333303130303030303037'
              '5332303236313132343030303030303030313233' '00003A98' '00001388' '00002710')

# gen2.json's two transactions as read_items shows them (newest first), and their records.
GEN2_TXNS = [
    {'time': '20240315093000', 'institution': 'H33010000001',
     'settlement_no': 'S2024031500000000002', 'total': 12850, 'personal_account': 2850,
     'pooled': 10000},
    {'time': '20240302151205', 'institution': 'H33010000007',
     'settlement_no': 'S2024030200000000001', 'total': 4600, 'personal_account': 4600,
     'pooled': 0},
]
GEN2_TXN_RECORDS = [
    '4033' '20240315093000' '483333303130303030303031' '5332303234303331353030303030303030303032'
    '00003232' '00000B22' '00002710',
    '4033' '20240302151205' '483333303130303030303037' '5332303234303330323030303030303030303031'
    '000011F8' '000011F8' '00000000',
]


class WriteCase(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()

    def start(self, cards, config=None):
        self.cards = {slot: self.h.start_card(p, slot=slot, state=True)
                      for slot, p in cards.items()}
        self.psams = [self.h.start_psam('gen2', slot=DES_PSAM),
                      self.h.start_psam('gen3', slot=SM4_PSAM)]
        self.start_daemon(config=config)
        roles = {slot: 'user' for slot in cards}
        roles.update({DES_PSAM: 'psam', SM4_PSAM: 'psam'})
        self.wait_roles(roles)

    def call(self, slot, method, **params):
        params['reader'] = slot_id(slot)
        return self.c.call(method, params)

    def error(self, slot, method, **params):
        params['reader'] = slot_id(slot)
        return self.c.call_error(method, params)

    def rows(self):
        return sscardd.journal_rows(self.d.journal_path)

    def apdu_counts(self):
        return [s.status()['apdus'] for s in list(self.cards.values()) + self.psams]

    def record(self, slot, file, tag):
        """The record of file holding tag, in the simulator's state file (upper-case hex)."""
        recs = self.cards[slot].state()['files'][file]
        found = [r.upper() for r in recs if r.upper().startswith(tag)]
        self.assertEqual(len(found), 1, f'{file} {tag}: {recs}')
        return found[0]

    def write(self, slot, file, items, written=None):
        """Writes, checks the result (written: the items the card now holds, when they differ
        from items: a name given to 09 also writes 4E), the read-back and the journal rows;
        returns journal_id."""
        written = items if written is None else written
        r = self.call(slot, 'card.write_items', file=file, items=items)
        jid = r.pop('journal_id')
        self.assertEqual(r, {'file': file, 'items': written})
        tags = list(written)
        back = self.call(slot, 'card.read_items', file=file, items=tags)
        if file == 'DF04/EF08':
            self.assertEqual(back['items']['40'][0], items['40'])
        else:
            self.assertEqual(back, {'file': file, 'items': written})
        rows = self.rows()
        intents, outcomes = sscardd.intents_and_outcomes(rows)
        self.assertIn(jid, intents)
        self.assertEqual(intents[jid]['file'], file)
        self.assertEqual(intents[jid]['reader'], slot_id(slot))
        self.assertEqual(intents[jid]['uid'], 0)
        self.assertEqual(len(intents[jid]['card']), 32)
        self.assertEqual([(o['method'], o['result'], o['detail']) for o in outcomes[jid]],
                         [('applied', 'SSC_OK', 'card')])
        return jid

    def assertNoPersonalData(self, texts):
        """None of texts (card numbers, names, ID numbers, written values) is in the journal:
        neither in `sscardctl journal export` nor in its files (UTF-8 and GB 18030)."""
        export = '\n'.join(str(r) for r in self.rows())
        raw = b''
        for suffix in ('', '-wal'):
            if os.path.exists(self.d.journal_path + suffix):
                with open(self.d.journal_path + suffix, 'rb') as f:
                    raw += f.read()
        for t in texts:
            self.assertNotIn(t, export)
            self.assertNotIn(t.encode(), raw)
            self.assertNotIn(t.encode('gb18030'), raw)

    def verify_journal(self):
        self.d.stop()
        rc, out = sscardd.journal_verify(self.d.journal_path, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)


class Writes(WriteCase):

    def test_ssse_gen2(self):
        self.start({CARD_A: 'gen2'})
        self.write(CARD_A, 'SSSE/EF05', {'02': '5', '04': '330100000009'})
        self.assertEqual(self.record(CARD_A, 'SSSE/EF05', '02'), '020135')
        self.assertEqual(self.record(CARD_A, 'SSSE/EF05', '04'),
                         '040C' '333330313030303030303039')
        # The items that name the card did not move (gen2.json).
        self.assertEqual(self.record(CARD_A, 'SSSE/EF05', '07'), '0709' '583030303030303139')
        self.write(CARD_A, 'SSSE/EF06', {'09': '李四', '0B': '03', '0C': '330106'},
                   {'09': '李四', '4E': '', '0B': '03', '0C': '330106'})
        # 李四 in GBK is C0EE CBC4, padded with 00 to the 30 bytes of tag 09.
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '09'),
                         '091E' 'C0EECBC4' + '00' * 26)
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '4E'), '4E14' + '00' * 20)
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '0B'), '0B0103')
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '0C'), '0C03330106')
        b = self.call(CARD_A, 'card.read_basic')
        self.assertEqual((b['name'], b['nation'], b['birth_place'], b['card_number']),
                         ('李四', '03', '330106', 'X00000019'))
        # The external authentications used no try (a success with a full counter).
        self.assertEqual(self.cards[CARD_A].state()['key_tries_left']['ext_auth'], 5)
        # The journal names the card and the values by keyed hashes only (gen2.json's holder).
        self.assertNoPersonalData(['X00000019', '张三', '李四', '330102199003071230',
                                   '330100000009'])
        self.verify_journal()

    def test_gen3_ef0d_and_df04(self):
        self.start({CARD_A: 'gen2', CARD_B: 'gen3'})
        self.write(CARD_B, 'SSSE/EF0D', {'EA': 'P33020000099', 'EB': '330203'})
        self.assertEqual(self.record(CARD_B, 'SSSE/EF0D', 'EA'),
                         'EA0C' '503333303230303030303939')
        self.assertEqual(self.record(CARD_B, 'SSSE/EF0D', 'EB'), 'EB03330203')
        # gen3.json: offline_pending true (41 = 01); the upload is done.
        self.assertEqual(self.call(CARD_B, 'card.read_items', file='DF04/EF06', items=['41']),
                         {'file': 'DF04/EF06', 'items': {'41': '01'}})
        self.write(CARD_B, 'DF04/EF06', {'41': '00'})
        self.assertEqual(self.record(CARD_B, 'DF04/EF06', '41'), '410100')
        self.write(CARD_B, 'SSSE/EF06', {'0B': '01'})
        self.assertEqual(self.record(CARD_B, 'SSSE/EF06', '0B'), '0B0101')
        # EF0D does not exist on a 2nd-generation card: refused, and no intent for it.
        before = len([r for r in self.rows() if r['kind'] == 'intent'])
        e = self.error(CARD_A, 'card.write_items', file='SSSE/EF0D', items={'EA': 'P1'})
        self.assertRpcError(e, 'SSC_EUNSUPPORTED')
        self.assertEqual(len([r for r in self.rows() if r['kind'] == 'intent']), before)
        self.assertIsNone(self.cards[CARD_A].state())
        self.verify_journal()

    def test_df04_gen2_and_restart(self):
        self.start({CARD_A: 'gen2'})
        self.write(CARD_A, 'DF04/EF05', {'31': '21', '33': 'H3301', '34': '1'})
        self.assertEqual(self.record(CARD_A, 'DF04/EF05', '31'), '31023231')
        # Shorter than the record: padded with 00 by the card (an).
        self.assertEqual(self.record(CARD_A, 'DF04/EF05', '33'),
                         '330C' '4833333031' + '00' * 7)
        self.assertEqual(self.record(CARD_A, 'DF04/EF05', '34'), '340131')
        self.write(CARD_A, 'DF04/EF06', {'41': '01'})
        self.assertEqual(self.record(CARD_A, 'DF04/EF06', '41'), '410101')
        jid = self.write(CARD_A, 'DF04/EF08', {'40': TXN})
        self.assertEqual([r.upper() for r in self.cards[CARD_A].state()['files']['DF04/EF08']],
                         [TXN_RECORD] + GEN2_TXN_RECORDS)
        intent = [r for r in self.rows() if r['seq'] == jid][0]
        self.assertEqual(intent['detail']['op'], 'append')
        self.assertEqual(intent['detail']['settlement_no'], TXN['settlement_no'])
        # The same settlement again: refused before an intent, the card unchanged.
        gen = self.cards[CARD_A].status()['generation']
        e = self.error(CARD_A, 'card.write_items', file='DF04/EF08', items={'40': TXN})
        self.assertRpcError(e, 'SSC_EEXIST', code=1042)
        self.assertEqual(self.cards[CARD_A].status()['generation'], gen)
        self.assertEqual(len([r for r in self.rows() if r['kind'] == 'intent']), 3)

        # The simulator dies and comes back from its state file: the card still holds it all.
        self.cards[CARD_A].restart(kill=True)
        self.d.wait_reader(self.c, self.h.reader_name(CARD_A), card=True, role='user',
                           busy=False)
        self.assertEqual(self.call(CARD_A, 'card.read_items', file='DF04/EF05',
                                   items=['30', '31', '33', '34']),
                         {'file': 'DF04/EF05', 'items': {'30': '330100', '31': '21',
                                                         '33': 'H3301', '34': '1'}})
        self.assertEqual(self.call(CARD_A, 'card.read_items', file='DF04/EF06', items=['41']),
                         {'file': 'DF04/EF06', 'items': {'41': '01'}})
        self.assertEqual(self.call(CARD_A, 'card.read_items', file='DF04/EF08', items=['40']),
                         {'file': 'DF04/EF08', 'items': {'40': [TXN] + GEN2_TXNS}})
        self.assertNoPersonalData(['X00000019', '33010000000000000001', 'H3301'])
        self.verify_journal()


class Refused(WriteCase):

    def test_wrong_key_refused_and_journaled(self):
        self.start({CARD_A: 'gen2-wrongkey'})
        e = self.error(CARD_A, 'card.write_items', file='SSSE/EF06', items={'0B': '03'})
        self.assertRpcError(e, 'SSC_EAUTHFAILED', code=1024)
        self.assertEqual(e.retries_left, 4)            # key_tries default 5, one used
        self.assertEqual(e.sw, '63C4')
        # DF04: the card finds the PSAM's MAC wrong (6988): the key is not the card's.
        e2 = self.error(CARD_A, 'card.write_items', file='DF04/EF05', items={'31': '21'})
        self.assertRpcError(e2, 'SSC_EAUTHFAILED', code=1024, std_code=-0x6988)
        self.assertEqual(e2.sw, '6988', e2)
        # The card holds what it held (gen2-wrongkey.json) and counted the failed key.
        st = self.cards[CARD_A].state()
        self.assertEqual(st['key_tries_left']['ext_auth'], 4)
        self.assertIn('0B0101', [r.upper() for r in st['files']['SSSE/EF06']])
        self.assertIn('31023131', [r.upper() for r in st['files']['DF04/EF05']])
        # Both writes were intended, and both are journaled as failed, naming the error.
        intents, outcomes = sscardd.intents_and_outcomes(self.rows())
        self.assertEqual([i['file'] for i in intents.values()], ['SSSE/EF06', 'DF04/EF05'])
        got = [[(o['method'], o['result'], o['detail']) for o in outcomes[s]] for s in intents]
        self.assertEqual(got, [[('failed', 'SSC_EAUTHFAILED', 'card')],
                               [('failed', e2.name, 'card')]])
        audits = [(r['method'], r['result']) for r in sscardd.journal_settled(self.d)
                  if r['kind'] == 'audit'
                  and r['method'] == 'card.write_items']
        self.assertEqual(audits, [('card.write_items', 'SSC_EAUTHFAILED'),
                                  ('card.write_items', e2.name)])
        self.verify_journal()

    def test_expired_card(self):
        self.start({CARD_A: 'expired'})
        b = self.call(CARD_A, 'card.read_basic')
        self.assertEqual((b['card_number'], b['expiry_date'], b['expired']),
                         ('X00000035', '20200101', True))
        for file, items in (('DF04/EF05', {'31': '21'}), ('SSSE/EF06', {'0B': '03'}),
                            ('DF04/EF08', {'40': TXN})):
            e = self.error(CARD_A, 'card.write_items', file=file, items=items)
            self.assertRpcError(e, 'SSC_EEXPIRED', std_code=-22, code=1027)
        self.assertEqual(self.call(CARD_A, 'card.read_items', file='DF04/EF05', items=['31']),
                         {'file': 'DF04/EF05', 'items': {'31': '11'}})
        self.assertIsNone(self.cards[CARD_A].state())          # nothing changed on the card
        self.assertEqual([r for r in self.rows() if r['kind'] in ('intent', 'outcome')], [])

    def test_bad_values_before_any_apdu(self):
        self.start({CARD_A: 'gen2', CARD_B: 'gen3'})
        long_txn = dict(TXN, settlement_no='S' + '0' * 20)               # 21 > 20
        cases = [
            # (file, items, name, code)
            ('DF04/EF05', {'31': '123'}, 'SSC_EVALUE', 1033),             # an, 2 bytes
            ('DF04/EF05', {'33': 'H330100000012'}, 'SSC_EVALUE', 1033),   # 13 > 12
            ('DF04/EF05', {'30': '33010A'}, 'SSC_EVALUE', 1033),          # cn: digits only
            ('DF04/EF05', {'30': '3301000'}, 'SSC_EVALUE', 1033),         # cn: 3 bytes
            ('SSSE/EF06', {'0D': '1990-03-07'}, 'SSC_EVALUE', 1033),      # a date: YYYYMMDD
            ('SSSE/EF06', {'09': '张' * 26}, 'SSC_EVALUE', 1033),          # 52 bytes > 30 + 20
            ('SSSE/EF06', {'4E': '江'}, 'SSC_EBADITEM', 1032),             # only with 09
            ('DF04/EF06', {'41': '0'}, 'SSC_EVALUE', 1033),               # b: hex bytes
            ('DF04/EF06', {'41': '0101'}, 'SSC_EVALUE', 1033),            # b: 1 byte
            ('DF04/EF08', {'40': long_txn}, 'SSC_EVALUE', 1033),
            ('DF04/EF08', {'40': dict(TXN, total=-1)}, 'SSC_EVALUE', 1033),
            ('DF04/EF08', {'40': dict(TXN, total=1 << 32)}, 'SSC_EVALUE', 1033),
            ('DF04/EF08', {'40': dict(TXN, time='2026112408300')}, 'SSC_EVALUE', 1033),
            ('DF04/EF05', {'31': 21}, 'SSC_EINVAL', -32602),             # not a string
            ('DF04/EF05', {}, 'SSC_EINVAL', -32602),
            ('DF04/EF08', {'40': {k: v for k, v in TXN.items() if k != 'pooled'}},
             'SSC_EINVAL', -32602),
            ('DF04/EF08', {'40': TXN, '41': '01'}, None, None),           # one record a call
            ('DF04/EF05', {'99': '1'}, 'SSC_EBADITEM', 1032),             # no such tag
            ('SSSE/EF99', {'01': '1'}, 'SSC_EBADITEM', 1032),             # no such file
            ('SSSE/EF05', {'07': 'X00000027'}, 'SSC_EBADITEM', 1032),     # names the card
            ('SSSE/EF05', {'01': '00' * 16}, 'SSC_EBADITEM', 1032),
            ('SSSE/EF05', {'03': '3.00'}, 'SSC_EBADITEM', 1032),
        ]
        before = self.apdu_counts()
        for file, items, name, code in cases:
            for slot in (CARD_A, CARD_B):
                e = self.error(slot, 'card.write_items', file=file, items=items)
                if name is None:
                    self.assertIn(e.name, ('SSC_EINVAL', 'SSC_EBADITEM'), (file, items, e))
                else:
                    self.assertEqual((e.name, e.code), (name, code), (file, items, e))
        self.assertEqual(self.apdu_counts(), before)
        self.assertEqual([r for r in self.rows() if r['kind'] in ('intent', 'outcome')], [])
        for slot in (CARD_A, CARD_B):
            self.assertIsNone(self.cards[slot].state())

    def test_item_formats_and_lengths(self):
        """Each item against its format and length (issue 12, defect 9), before any APDU, with a
        message that says the rule (docs/api.md "Items: format and length")."""
        self.start({CARD_A: 'gen2'})
        cases = [
            # Accepted before: a control character in an an item, 5 digits for a region code.
            ('DF04/EF05', {'31': '\u0001'},
             'DF04/EF05 item 31 (人员类别 person category): contains a control character (U+0001)'),
            ('DF04/EF05', {'30': '12345'},
             'DF04/EF05 item 30 (参保地区划 insured region): expected exactly 6 digits, this '
             'value has 5'),
            # Refused before with the wrong message ("expected an even number of hex digits").
            ('DF04/EF06', {'41': '0102'},
             'DF04/EF06 item 41 (临时脱网结算 offline settlement pending): expected exactly 2 hex '
             'digits (1 byte)'),
            # "too long for the item" now says the maximum.
            ('DF04/EF05', {'33': 'H330100000012'},
             'DF04/EF05 item 33 (定点医疗机构编号 designated institution): too long: at most 12 '
             'bytes in GB 18030, this value takes 13'),
            ('SSSE/EF06', {'09': '张' * 26},
             'SSSE/EF06 item 09 (姓名 name): too long: a name holds at most 50 bytes in GB 18030 '
             '(30 in 09, 20 in 4E), this one takes 52'),
            ('SSSE/EF06', {'0D': '19900230'},
             'SSSE/EF06 item 0D (出生日期 birth date): not a calendar date (YYYYMMDD, from 1900)'),
            ('SSSE/EF06', {'0B': '1'},
             'SSSE/EF06 item 0B (民族 nation): expected exactly 2 digits, this value has 1'),
            ('SSSE/EF06', {'0A': '3'}, 'SSSE/EF06 item 0A (性别 sex): expected "0", "1" (male), '
             '"2" (female) or "9" (GB/T 2261.1)'),
            ('SSSE/EF06', {'08': '330102199003071231'},
             'SSSE/EF06 item 08 (社会保障号码 social security number): the check character is '
             'wrong (GB 11643)'),
            ('SSSE/EF06', {'09': '李\u0085四'},
             'SSSE/EF06 item 09 (姓名 name): contains a control character (U+0085)'),
            ('DF04/EF05', {'34': ''},
             'DF04/EF05 item 34 (异地安置标志 relocation flag): expected exactly 1 byte in '
             'GB 18030, this value takes 0'),
            ('DF04/EF08', {'40': dict(TXN, time='20260230083000')},
             'DF04/EF08 item 40 (交易时间 time): expected YYYYMMDDhhmmss'),
        ]
        before = self.apdu_counts()
        for file, items, message in cases:
            with self.subTest(file=file, items=items):
                e = self.error(CARD_A, 'card.write_items', file=file, items=items)
                self.assertRpcError(e, 'SSC_EVALUE', std_code=-23, code=1033)
                self.assertEqual(e.message, message)
        self.assertEqual(self.apdu_counts(), before)
        self.assertEqual([r for r in self.rows() if r['kind'] in ('intent', 'outcome')], [])
        self.assertIsNone(self.cards[CARD_A].state())

    def test_tag_mode_card_never_doubles_a_settlement(self):
        # Was a bug: on a card that reads records by tag only (gen2-tagmode.json,
        # read_record_modes "tag": READ RECORD by number answers 6A86) the duplicate check saw the
        # newest EF08 record only, so a settlement already on the card (not the newest) was
        # appended a second time. Fixed in src/ops_write.c write_prepare_append: when the card
        # cannot address older records, the journal's applied appends for this card are checked
        # too.
        self.start({CARD_A: 'gen2-tagmode'})
        first, second = dict(TXN, settlement_no='S2026112400000000201'), \
            dict(TXN, settlement_no='S2026112400000000202')
        self.write(CARD_A, 'DF04/EF08', {'40': first})
        self.write(CARD_A, 'DF04/EF08', {'40': second})
        try:
            self.call(CARD_A, 'card.write_items', file='DF04/EF08', items={'40': first})
        except sscardd.RpcError:
            pass
        recs = [r.upper() for r in self.cards[CARD_A].state()['files']['DF04/EF08']]
        serials = [bytes.fromhex(r)[21:41].decode() for r in recs]
        self.assertEqual(serials.count(first['settlement_no']), 1, serials)

    def test_tag_mode_card_says_its_transaction_list_is_truncated(self):
        # Was a bug: card.read_items DF04/EF08 on a tag-mode card returned the newest record only,
        # as if the card held no more. The card cannot address older records (6A86), so the list
        # is what it can show, and the result now says so: "truncated": true (docs/api.md).
        self.start({CARD_A: 'gen2-tagmode', CARD_B: 'gen2'})
        first, second = dict(TXN, settlement_no='S2026112400000000301'), \
            dict(TXN, settlement_no='S2026112400000000302')
        self.write(CARD_A, 'DF04/EF08', {'40': first})
        self.write(CARD_A, 'DF04/EF08', {'40': second})
        got = self.call(CARD_A, 'card.read_items', file='DF04/EF08', items=['40'])
        self.assertEqual(got['items']['40'][0], second)
        self.assertIs(got.get('truncated'), True, got)
        # A card that addresses every record shows them all and no flag.
        self.write(CARD_B, 'DF04/EF08', {'40': first})
        self.write(CARD_B, 'DF04/EF08', {'40': second})
        got = self.call(CARD_B, 'card.read_items', file='DF04/EF08', items=['40'])
        self.assertEqual(got['items']['40'][:2], [second, first])
        self.assertNotIn('truncated', got)


class Tamper(WriteCase):
    readers = 2

    def test_journal_edits_detected(self):
        # Someone with the file but not the key rewrites the history of a write: turns a failed
        # outcome into an applied one, deletes a row in the middle, or appends a forged one.
        # `sscardctl journal verify` names the first bad row (docs/operations.md).
        self.cards = {CARD_A: self.h.start_card('gen2-wrongkey', slot=CARD_A, state=True)}
        self.psams = [self.h.start_psam('gen2', slot=1)]
        self.start_daemon()
        self.wait_roles({CARD_A: 'user', 1: 'psam'})
        e = self.error(CARD_A, 'card.write_items', file='DF04/EF05', items={'31': '21'})
        self.assertRpcError(e, 'SSC_EAUTHFAILED')
        self.call(CARD_A, 'card.read_basic')
        self.d.stop()
        db = self.d.journal_path
        with sqlite3.connect(db) as con:
            con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        con.close()
        rc, out = sscardd.journal_verify(db)
        self.assertEqual(rc, 0, out)
        rows = self.rows()
        outcome = [r for r in rows if r['kind'] == 'outcome'][0]
        self.assertEqual((outcome['method'], outcome['result']), ('failed', 'SSC_EAUTHFAILED'))
        last = rows[-1]['seq']
        middle = outcome['seq'] - 1
        cases = [
            (f"UPDATE rows SET method = 'applied', result = 'SSC_OK' WHERE seq = "
             f"{outcome['seq']}",
             f"row {outcome['seq']} does not match its chain hash"),
            (f'DELETE FROM rows WHERE seq = {middle}',
             f'row {middle + 1} follows row {middle - 1}: rows are missing'),
            (f'INSERT INTO rows SELECT seq + 1, ts, ts_unix, kind, uid, pid, exe, method, reader,'
             f' card, result, duration_ms, intent, file, detail, hash FROM rows WHERE seq = {last}',
             f'row {last + 1} does not match its chain hash'),
        ]
        for i, (sql, message) in enumerate(cases):
            copy = self.h.path(f'tampered-{i}.db')
            shutil.copyfile(db, copy)
            shutil.copyfile(db + '.key', copy + '.key')
            with sqlite3.connect(copy) as con:
                con.execute(sql)
            con.close()
            rc, out = sscardd.journal_verify(copy)
            self.assertEqual(rc, 1, f'{sql}: {out}')
            self.assertIn('NOT intact', out)
            self.assertIn(message, out, sql)



class Names(WriteCase):
    """Names beyond GBK (issue 11) and name writes that keep 姓名 and 姓名扩展 consistent (issue 12,
    defect 9), with gen3-gb18030.json (张䶮𫖯) and gen3.json (阿卜杜热合曼·买买提艾力·吐尔逊江, whose last
    4 bytes are in 4E). GB 18030 bytes by hand, checked with iconv -t GB18030: 张 D5C5, 䶮 FE9F (a
    two-byte code GBK lacks), 𫖯 9838F537 (four bytes), 李四 C0EE CBC4, and 阿卜杜热合曼·买买提艾力·吐
    B0A2 B2B7 B6C5 C8C8 BACF C2FC A1A4 C2F2 C2F2 CCE1 B0AC C1A6 A1A4 CDC2 (28 bytes)."""

    LONG_28 = 'B0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6A1A4CDC2'

    def read_name(self, slot):
        b = self.call(slot, 'card.read_basic')
        self.assertEqual(b['standard'].split('|')[4], b['name'])   # the legacy string's 姓名
        return b['name']

    def test_gb18030_names_round_trip(self):
        self.start({CARD_A: 'gen3-gb18030', CARD_B: 'gen3'})
        self.assertEqual(self.read_name(CARD_A), '张䶮𫖯')
        # A long name whose four-byte 𫖯 would straddle 09's 30 bytes: 09 stops before it.
        name = '阿卜杜热合曼·买买提艾力·吐𫖯䶮'
        self.write(CARD_A, 'SSSE/EF06', {'09': name},
                   {'09': '阿卜杜热合曼·买买提艾力·吐', '4E': '𫖯䶮'})
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '09'), '091E' + self.LONG_28 + '0000')
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '4E'),
                         '4E14' '9838F537' 'FE9F' + '00' * 14)
        self.assertEqual(self.read_name(CARD_A), name)
        # The card keeps it (a simulator restarted from its state file).
        self.cards[CARD_A].restart(kill=True)
        self.wait_roles({CARD_A: 'user'})
        self.assertEqual(self.read_name(CARD_A), name)
        # 09 and 4E as card.read_items shows them: joined, and cut again the same way.
        self.write(CARD_A, 'SSSE/EF06', {'09': '阿卜杜热合曼·买买提艾力·吐', '4E': '𫖯䶮'},
                   {'09': '阿卜杜热合曼·买买提艾力·吐', '4E': '𫖯䶮'})
        self.assertEqual(self.read_name(CARD_A), name)
        # Back to a short name with the four-byte form: 4E is emptied with it.
        self.write(CARD_A, 'SSSE/EF06', {'09': '张䶮𫖯'}, {'09': '张䶮𫖯', '4E': ''})
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '09'),
                         '091E' 'D5C5FE9F9838F537' + '00' * 22)
        self.assertEqual(self.record(CARD_A, 'SSSE/EF06', '4E'), '4E14' + '00' * 20)
        self.assertEqual(self.read_name(CARD_A), '张䶮𫖯')
        # Was a bug: writing 09 alone kept gen3's 姓名扩展 (逊江), and read_basic answered 李四逊江.
        self.assertEqual(self.read_name(CARD_B), '阿卜杜热合曼·买买提艾力·吐尔逊江')
        self.write(CARD_B, 'SSSE/EF06', {'09': '李四'}, {'09': '李四', '4E': ''})
        self.assertEqual(self.record(CARD_B, 'SSSE/EF06', '09'), '091E' 'C0EECBC4' + '00' * 26)
        self.assertEqual(self.record(CARD_B, 'SSSE/EF06', '4E'), '4E14' + '00' * 20)
        self.assertEqual(self.read_name(CARD_B), '李四')
        self.assertNoPersonalData(['张䶮𫖯', '李四', name])
        self.verify_journal()

    def test_text_that_is_not_gb18030(self):
        """A card whose 姓名 holds bytes that are GB 18030 nowhere (张, then B4 7F: 7F is no
        second byte) gives a clear SSC_EBADCARDDATA naming the item and the offset, never a
        garbled name; the other items still read."""
        self.start({CARD_A: 'gen3-gb18030'})
        self.write(CARD_A, 'DF04/EF05', {'34': '1'})     # the simulator now keeps a state file
        self.cards[CARD_A].stop()
        self.h.wait_card(CARD_A, present=False)
        with open(self.cards[CARD_A].state_path) as f:
            st = json.load(f)
        recs = st['files']['SSSE/EF06']
        i = [r.upper()[:2] for r in recs].index('09')
        recs[i] = '091E' 'D5C5B47F' + '00' * 26
        with open(self.cards[CARD_A].state_path, 'w') as f:
            json.dump(st, f, sort_keys=True)
        self.cards[CARD_A].start()
        self.wait_roles({CARD_A: 'user'})
        for method, params in (('card.read_basic', {}),
                               ('card.read_items', {'file': 'SSSE/EF06', 'items': ['09']})):
            with self.subTest(method=method):
                e = self.error(CARD_A, method, **params)
                self.assertRpcError(e, 'SSC_EBADCARDDATA', std_code=-22, code=1017)
                self.assertIn('item 09', e.message)
                self.assertIn('not GB 18030 text (the bytes from offset 2 form no character)',
                              e.message)
        self.assertEqual(self.call(CARD_A, 'card.read_items', file='SSSE/EF06',
                                   items=['08', '4E'])['items'],
                         {'08': '330203198808080027', '4E': ''})


if __name__ == '__main__':
    unittest.main(verbosity=2)
