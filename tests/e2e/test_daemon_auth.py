#!/usr/bin/python3
"""sscardd end to end, card authenticity (issue 4): card.internal_auth, and read_basic / read_items
with internal_auth, through a real pcscd + vpcd + sscard-sim (cards and PSAMs) + sscardd.

- gen2 (DES) and gen3 (SM4) cards are genuine with the PSAM of their profile;
- gen2-wrongkey (its keys derived from inverted masters, docs/simulator.md "wrong_keys") is not
  genuine: SSC_ENOTGENUINE, std_code -21, for card.internal_auth and for reads that ask for it or
  whose configuration imposes it ([card] require_internal_auth); a plain read still works;
- each authentication draws a fresh challenge (two INTERNAL AUTHENTICATE commands differ);
- without a PSAM, or with one of the other algorithm: SSC_ENOPSAM (-2201) / SSC_EPSAMALGO (-2202);
- a spec "1.00" card is read but never authenticated or written (SSC_EUNSUPPORTED, spec §12.1).

Expected values are copied by hand from firmware-stubs/profiles/*.json (card numbers, terminal
numbers <region>000001) and docs/api.md.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_auth.py [-k name]
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

CARD_A, CARD_B = 0, 1        # card slots (one vpcd entry)
DES_PSAM, SM4_PSAM = 2, 3    # PSAM slots (the other entry)


class Auth(sscardd.DaemonTestCase):
    readers = 4

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()

    def start(self, cards, psams=('des', 'sm4'), config=None, verbose=False):
        self.cards = {slot: self.h.start_card(p, slot=slot, verbose=verbose)
                      for slot, p in cards.items()}
        roles = {slot: 'user' for slot in cards}
        if 'des' in psams:
            self.h.start_psam('gen2', slot=DES_PSAM)
            roles[DES_PSAM] = 'psam'
        if 'sm4' in psams:
            self.h.start_psam('gen3', slot=SM4_PSAM)
            roles[SM4_PSAM] = 'psam'
        self.start_daemon(config=config)
        self.wait_roles(roles)

    def call(self, slot, method, **params):
        params['reader'] = slot_id(slot)
        return self.c.call(method, params)

    def error(self, slot, method, **params):
        params['reader'] = slot_id(slot)
        return self.c.call_error(method, params)

    def audits(self):
        return [(r['method'], r['result']) for r in sscardd.journal_settled(self.d)
                if r['kind'] == 'audit' and r['method'].startswith('card.')]

    def test_genuine_gen2_and_gen3(self):
        self.start({CARD_A: 'gen2', CARD_B: 'gen3'}, verbose=True)
        self.assertEqual(self.call(CARD_A, 'card.internal_auth'),
                         {'genuine': True, 'algorithm': 'des'})
        self.assertEqual(self.call(CARD_B, 'card.internal_auth'),
                         {'genuine': True, 'algorithm': 'sm4'})
        # read_basic with internal_auth: the usual data, plus genuine: true.
        for slot, number, terminal, alg in ((CARD_A, 'X00000019', '330100000001', 'des'),
                                            (CARD_B, 'A12345674', '330200000001', 'sm4')):
            b = self.call(slot, 'card.read_basic', internal_auth=True)
            self.assertIs(b['genuine'], True)
            self.assertEqual((b['card_number'], b['terminal_number'], b['algorithm']),
                             (number, terminal, alg))
            self.assertNotIn('genuine', self.call(slot, 'card.read_basic'))
            r = self.call(slot, 'card.read_items', file='SSSE/EF05', items=['07'],
                          internal_auth=True)
            self.assertEqual(r, {'file': 'SSSE/EF05', 'items': {'07': number}, 'genuine': True})
        # Every authentication is a fresh challenge: the INTERNAL AUTHENTICATE data (process
        # factor and plaintext, 16 bytes) differs from one call to the next.
        for slot in (CARD_A, CARD_B):
            cmds = re.findall(r'> 0088000010([0-9A-F]{32})', self.cards[slot].proc.log_text())
            self.assertEqual(len(cmds), 3, cmds)
            self.assertEqual(len(set(cmds)), 3, cmds)
        self.assertIn(('card.internal_auth', 'SSC_OK'), self.audits())

    def test_not_genuine(self):
        self.start({CARD_A: 'gen2-wrongkey', CARD_B: 'gen2'}, psams=('des',))
        e = self.error(CARD_A, 'card.internal_auth')
        self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21, code=1018)
        self.assertEqual(e.reader, slot_id(CARD_A))
        e = self.error(CARD_A, 'card.read_basic', internal_auth=True)
        self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21)
        e = self.error(CARD_A, 'card.read_items', file='SSSE/EF05', items=['07'],
                       internal_auth=True)
        self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21)
        # Not asked: the card reads (gen2-wrongkey.json: card number X00000051, 钱七).
        b = self.call(CARD_A, 'card.read_basic')
        self.assertEqual((b['card_number'], b['name']), ('X00000051', '钱七'))
        # The genuine card beside it, with the same PSAM, is genuine.
        self.assertEqual(self.call(CARD_B, 'card.internal_auth'),
                         {'genuine': True, 'algorithm': 'des'})
        self.assertEqual(self.audits().count(('card.internal_auth', 'SSC_ENOTGENUINE')), 1)
        self.assertEqual(self.audits().count(('card.read_basic', 'SSC_ENOTGENUINE')), 1)

    def test_required_by_configuration(self):
        self.start({CARD_A: 'gen2-wrongkey', CARD_B: 'gen3'},
                   config={'card': {'require_internal_auth': 'yes'}})
        # Whatever the client asks, reads prove the card first.
        for params in ({}, {'internal_auth': False}):
            e = self.error(CARD_A, 'card.read_basic', **params)
            self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21)
            e = self.error(CARD_A, 'card.read_items', file='SSSE/EF05', items=['07'], **params)
            self.assertRpcError(e, 'SSC_ENOTGENUINE', std_code=-21)
            b = self.call(CARD_B, 'card.read_basic', **params)
            self.assertIs(b['genuine'], True)
            self.assertEqual(b['card_number'], 'A12345674')

    def test_psam_needed(self):
        # gen3 is SM4: a DES PSAM alone is the wrong algorithm; gen2 with no PSAM at all.
        self.start({CARD_A: 'gen2', CARD_B: 'gen3'}, psams=('des',))
        e = self.error(CARD_B, 'card.internal_auth')
        self.assertRpcError(e, 'SSC_EPSAMALGO', std_code=-2202, code=1012)
        e = self.error(CARD_B, 'card.read_basic', internal_auth=True)
        self.assertRpcError(e, 'SSC_EPSAMALGO', std_code=-2202)
        self.assertEqual(self.call(CARD_A, 'card.internal_auth'),
                         {'genuine': True, 'algorithm': 'des'})
        self.h.sims[-1].remove()      # the DES PSAM leaves
        self.wait_roles({DES_PSAM: None})
        e = self.error(CARD_A, 'card.internal_auth')
        self.assertRpcError(e, 'SSC_ENOPSAM', std_code=-2201, code=1011)
        # Reads that do not ask for it need no PSAM.
        self.assertEqual(self.call(CARD_A, 'card.read_basic')['terminal_number'],
                         '000000000000')

    def test_gen1_cannot_authenticate(self):
        # Spec §12.1: "1.00" cards may be read; writes and authentication on them are refused
        # with a clear "unsupported card" error (the simulated card itself would accept them).
        card = self.h.start_card('gen1', slot=CARD_A, state=True)
        self.h.start_psam('gen1', slot=DES_PSAM)
        self.start_daemon()
        self.wait_roles({CARD_A: 'user', DES_PSAM: 'psam'})
        for method, params in (('card.internal_auth', {}),
                               ('card.read_basic', {'internal_auth': True}),
                               ('card.reload_pin', {'new_pin': '246813'}),
                               ('card.unblock_pin', {'new_pin': '246813'}),
                               ('card.write_items', {'file': 'DF04/EF05',
                                                     'items': {'31': '21'}})):
            e = self.error(CARD_A, method, **params)
            self.assertRpcError(e, 'SSC_EUNSUPPORTED', std_code=-1, code=1016)
        self.assertIsNone(card.state())                         # nothing changed on the card
        rows = sscardd.journal_rows(self.d.journal_path)
        self.assertEqual([r for r in rows if r['kind'] in ('intent', 'outcome')], [])
        # gen1.json: card number X00000086, 吴十, spec 1.00: it reads.
        b = self.call(CARD_A, 'card.read_basic')
        self.assertEqual((b['card_number'], b['name'], b['spec_version']),
                         ('X00000086', '吴十', '1.00'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
