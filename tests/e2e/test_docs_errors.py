#!/usr/bin/python3
"""docs/errors.md and docs/api.md against the error vocabulary and the real daemon (issue 11, "Docs
that match the daemon"):

- every name of include/sscard/error.h has its row in errors.md, with code 1000 − value, the fixed
  message, and a std_code cell that agrees with the header: the standard's own code where the
  header has one; "—" or "−(SW)" (the code comes from the card's status word) where it has none;
- errors provoked on simulated cards through the real daemon (pcscd + vpcd + sscard-sim): each
  reply's name is in the error list api.md gives for that method (its own section or the list of
  every card method), its std_code is what errors.md's column promises (the fixed code, or
  −(SW1·256+SW2) of data.sw, or none), and its message, which a clerk may read, shows no status
  word (SSC_ECARDSW and SSC_EPSAM, whose status word is their substance, aside).

The provoked errors are written by hand from the profiles (firmware-stubs/profiles/gen2.json: PIN
123456, 3 tries; gen2-wrongkey.json: keys of other issuers) and docs/simulator.md (DF01's files are
empty: a READ answers 6A83; DF05 has no files: 6A82).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_docs_errors.py [-k name]
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docsref  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

GEN2, WRONGKEY, PSAM = 0, 1, 2

# Errors whose message is about the status word itself.
SW_IN_MESSAGE_OK = {'SSC_ECARDSW', 'SSC_EPSAM'}


class Vocabulary(unittest.TestCase):
    """errors.md's table against include/sscard/error.h (no daemon)."""

    maxDiff = None

    def test_every_name_documented(self):
        header = docsref.header_errors()
        table = docsref.errors_table()
        self.assertGreater(len(header), 40)
        self.assertEqual(sorted(set(header) - set(table)), [], 'names missing from errors.md')
        self.assertEqual(sorted(set(table) - set(header)), [], 'errors.md names unknown names')
        for name, (value, std, message) in header.items():
            row = table[name]
            with self.subTest(name=name):
                self.assertEqual(row['code'], 1000 - value)
                self.assertTrue(row['message'].startswith(message), row['message'])
                if std:
                    self.assertEqual(row['std'], std, row['std_text'])
                else:
                    # No code of the standard's own: either a status word gives it, or none.
                    self.assertIn(row['std'], (None, docsref.SW_RULE), row['std_text'])


class Daemon(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=GEN2, state=True)
        self.h.start_card('gen2-wrongkey', slot=WRONGKEY, state=True)
        self.h.start_psam('gen2', slot=PSAM)
        self.start_daemon()
        self.wait_roles({GEN2: 'user', WRONGKEY: 'user', PSAM: 'psam'})
        self.table = docsref.errors_table()
        self.sections = docsref.api_sections()

    def provoke(self, method, params, name, sw=None, retries_left=None):
        """Calls method (it must fail with name, and data.sw == sw), then holds the reply to the
        docs. Returns the RpcError."""
        e = self.c.call_error(method, params)
        self.assertEqual((e.name, e.sw), (name, sw), e)
        if retries_left is not None:
            self.assertEqual(e.retries_left, retries_left, e)
        self.assertDocumented(method, e)
        return e

    def assertDocumented(self, method, e):
        listed = docsref.method_errors(method, self.sections)
        self.assertIn(e.name, listed, f'docs/api.md does not list {e.name} for {method} ({e})')
        self.assertIn(e.name, self.table)
        self.assertEqual(e.std_code, docsref.expected_std_code(self.table, e.name, e.sw),
                         f'{e.name}: std_code against errors.md "{self.table[e.name]["std_text"]}" '
                         f'({e})')
        if e.code != -32602:
            self.assertEqual(e.code, self.table[e.name]['code'], e)
        if e.name not in SW_IN_MESSAGE_OK:
            self.assertIsNone(re.search(r'\b(6[0-9A-F]{3}|9[0-9A-F]{3})\b', e.message),
                              f'{e.name}: a status word in the message {e.message!r}')

    def test_card_errors_as_documented(self):
        g2 = slot_id(GEN2)
        wk = slot_id(WRONGKEY)
        # A regional DF01 record the card was issued without: SSC_ENORECORD, 6A83, -27267.
        e = self.provoke('card.write_items', {'reader': g2, 'file': 'DF01/EF05',
                                              'items': {'01': '00'}}, 'SSC_ENORECORD', '6A83')
        self.assertEqual(e.std_code, -27267)
        self.provoke('card.read_items', {'reader': g2, 'file': 'DF05/EF05', 'items': ['01']},
                     'SSC_ENOFILE', '6A82')
        self.provoke('card.write_items', {'reader': g2, 'file': 'DF05/EF05',
                                          'items': {'01': '00'}}, 'SSC_ENOFILE', '6A82')
        self.provoke('card.read_items', {'reader': g2, 'file': 'SSSE/EF99', 'items': ['01']},
                     'SSC_EBADITEM')
        self.provoke('card.write_items', {'reader': g2, 'file': 'SSSE/EF05',
                                          'items': {'07': 'X00000019'}}, 'SSC_EBADITEM')
        self.provoke('card.write_items', {'reader': g2, 'file': 'SSSE/EF06',
                                          'items': {'0D': '1990011'}}, 'SSC_EVALUE')
        self.provoke('card.verify_pin', {'reader': g2, 'pin': '12a456'}, 'SSC_EPINFORMAT')
        self.provoke('card.change_pin', {'reader': g2, 'old_pin': '123456',
                                         'new_pin': '123456'}, 'SSC_EPININITIAL')
        self.provoke('card.change_pin', {'reader': g2, 'old_pin': '246813',
                                         'new_pin': '246813'}, 'SSC_EPINSAME')
        self.provoke('card.verify_pin', {'reader': g2}, 'SSC_EINVAL')
        # The PIN's counter (gen2: 3 tries): wrong, wrong, the last try, blocked.
        self.provoke('card.verify_pin', {'reader': g2, 'pin': '918273'}, 'SSC_EPINWRONG',
                     '63C2', 2)
        self.provoke('card.change_pin', {'reader': g2, 'old_pin': '918273',
                                         'new_pin': '246813'}, 'SSC_EPINWRONG', '63C1', 1)
        self.provoke('card.verify_pin', {'reader': g2, 'pin': '918273'}, 'SSC_EPINBLOCKED',
                     '63C0', 0)
        self.provoke('card.verify_pin', {'reader': g2, 'pin': '123456'}, 'SSC_EPINBLOCKED',
                     '6983', 0)
        self.assertEqual(self.c.call('card.unblock_pin', {'reader': g2, 'new_pin': '246813'}),
                         {'unblocked': True})
        # A card of other keys: its own answers (the key's counter, the MAC, not genuine).
        e = self.c.call_error('card.write_items', {'reader': wk, 'file': 'SSSE/EF06',
                                                   'items': {'0B': '03'}})
        self.assertEqual(e.name, 'SSC_EAUTHFAILED', e)
        self.assertRegex(e.sw or '', '^63C[1-9A-F]$', e)
        self.assertEqual(e.retries_left, int(e.sw[3], 16), e)
        self.assertDocumented('card.write_items', e)
        self.provoke('card.write_items', {'reader': wk, 'file': 'DF04/EF05',
                                          'items': {'31': '21'}}, 'SSC_EAUTHFAILED', '6988')
        self.provoke('card.reload_pin', {'reader': wk, 'new_pin': '246813'}, 'SSC_EAUTHFAILED',
                     '6988')
        self.provoke('card.internal_auth', {'reader': wk}, 'SSC_ENOTGENUINE')
        self.provoke('card.read_basic', {'reader': wk, 'internal_auth': True},
                     'SSC_ENOTGENUINE')
        self.provoke('card.read_basic', {'reader': 'pcsc-no-such-reader'}, 'SSC_ENOREADER')
        self.provoke('card.read_basic', {}, 'SSC_EREADERSELECT')


if __name__ == '__main__':
    unittest.main(verbosity=2)
