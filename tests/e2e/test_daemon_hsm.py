#!/usr/bin/python3
"""sscardd end to end with the network PSAM (issue 14, spec §13.2): a desk with no PSAM in a
reader, whose keys are on the simulated province key server (sscard-sim hsm) over real TLS with
client certificates, through a real pcscd + vpcd + simulated cards + sscardd.

- every operation that needs keys works on gen2 (DES) and gen3 (SM4) cards, gen3-readauth
  included: read authorisation, internal authentication, external authentication before SSSE
  writes (04, and 0D for EF0D), MAC'd DF04 writes and an append, PIN reload and unblock; the
  values read back and the terminal number are the key server's PSAM's;
- the card's APDU trace is the same with a PSAM in a reader and with the network PSAM, once the
  parts that change from run to run (challenges, cryptograms, process factors, MACs) are masked;
- one request per key operation over one kept-alive connection (the key server counts TLS
  connections and exchanges);
- [hsm] prefer: with both a PSAM and the key server, the preferred one serves, and the other
  takes over when the key server is down.

Expected values by hand from firmware-stubs/profiles/{gen2,gen3,gen3-readauth}.json (card numbers,
the PSAMs' terminal numbers) and docs/api.md.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_hsm.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hsmkit  # noqa: E402
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402

GEN2, GEN3, READAUTH = 0, 1, 2
DES_PSAM, SM4_PSAM = 4, 5

TXN = {'time': '20261124083000', 'institution': 'H33010000007',
       'settlement_no': 'S2026112400000000123', 'total': 15000, 'personal_account': 5000,
       'pooled': 10000}


class Hsm(sscardd.DaemonTestCase):
    readers = 6
    deadline = 240.0

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.pki = hsmkit.make_pki(self.h)

    def call(self, slot, method, **params):
        params['reader'] = slot_id(slot)
        return self.c.call(method, params)

    def key_operations(self, slot, gen):
        """Every operation that needs keys, on the card in slot; returns their results."""
        out = [self.call(slot, 'card.read_basic', internal_auth=True),
               self.call(slot, 'card.internal_auth'),
               self.call(slot, 'card.write_items', file='SSSE/EF06', items={'0B': '02'}),
               self.call(slot, 'card.write_items', file='DF04/EF05',
                         items={'31': '21', '33': 'H33010000099'}),
               self.call(slot, 'card.write_items', file='DF04/EF08', items={'40': TXN}),
               self.call(slot, 'card.reload_pin', new_pin='246810'),
               self.call(slot, 'card.unblock_pin', new_pin='135790'),
               self.call(slot, 'card.verify_pin', pin='135790')]
        if gen == 3:
            out.append(self.call(slot, 'card.write_items', file='SSSE/EF0D',
                                 items={'EA': 'P33020000099'}))
        return out

    def check_results(self, results, number, terminal, alg):
        basic = results[0]
        self.assertEqual((basic['card_number'], basic['terminal_number'], basic['algorithm'],
                          basic['genuine']), (number, terminal, alg, True))
        self.assertEqual(results[1], {'genuine': True, 'algorithm': alg})
        self.assertEqual(results[2]['items'], {'0B': '02'})
        self.assertEqual(results[3]['items'], {'31': '21', '33': 'H33010000099'})
        self.assertEqual(results[4]['items']['40'], TXN)
        self.assertEqual(results[5], {'reloaded': True})
        self.assertEqual(results[6], {'unblocked': True})
        self.assertEqual(results[7], {'verified': True})

    def test_every_key_operation_without_a_psam(self):
        cards = {GEN2: self.h.start_card('gen2', slot=GEN2, state=True),
                 GEN3: self.h.start_card('gen3', slot=GEN3, state=True),
                 READAUTH: self.h.start_card('gen3-readauth', slot=READAUTH, state=True,
                                             verbose=True)}
        ks = hsmkit.KeyServer(self.h, self.pki).start()
        self.start_daemon(config=hsmkit.daemon_config(self.pki), in_mountns=True)
        self.wait_roles({GEN2: 'user', GEN3: 'user', READAUTH: 'user'})
        # No PSAM at all: the reader list has none.
        self.assertEqual([r['role'] for r in self.d.readers(self.c) if r['card']],
                         ['user', 'user', 'user'])
        # gen2.json's DES PSAM has terminal 330100000001, gen3.json's SM4 one 330200000001.
        self.check_results(self.key_operations(GEN2, 2), 'X00000019', '330100000001', 'des')
        self.check_results(self.key_operations(GEN3, 3), 'A12345674', '330200000001', 'sm4')
        # The card that demands read authorisation of EF06: read_basic and read_items.
        b = self.call(READAUTH, 'card.read_basic')
        self.assertEqual((b['algorithm'], b['terminal_number']), ('sm4', '330200000001'))
        r = self.call(READAUTH, 'card.read_items', file='SSSE/EF06', items=['08', '0A'])
        self.assertEqual(r['items']['0A'], b['sex'])
        self.assertIn('> 0082000A11', cards[READAUTH].proc.log_text())
        # What the card holds now, in the simulators' own state (not the daemon's word).
        for slot in (GEN2, GEN3):
            st = cards[slot].state()
            self.assertEqual((st['pin'], st['pin_tries_left']), ('135790', 3))
        # One request per key operation; connections kept alive: far fewer TLS connections
        # than requests (each card.write_items of DF04/EF05 alone makes two exchanges).
        s = ks.status()
        self.assertGreaterEqual(s['exchanges'], 20, s)
        self.assertLessEqual(s['connections'], 4, s)
        # Neither side logged a new PIN or a record body.
        for text in (self.d.log_text(), ks.log_text()):
            for secret in ('246810', '135790', 'H33010000099'.encode().hex().upper()):
                self.assertNotIn(secret, text)

    def run_ops(self, tag, card_profiles, provider):
        """Starts the cards (fresh state) and a daemon with the provider ('psam' or 'hsm'), runs
        the key operations on each, stops everything; returns {slot: masked card trace}."""
        cards = {slot: self.h.start_card(p, slot=slot, state=self.h.path(f'{tag}{slot}.state'),
                                         name=f'{tag}{slot}', verbose=True)
                 for slot, p in card_profiles.items()}
        psams, ks, config = [], None, None
        roles = {slot: 'user' for slot in cards}
        if provider == 'psam':
            psams = [self.h.start_psam('gen2', slot=DES_PSAM, name=f'{tag}psam4'),
                     self.h.start_psam('gen3', slot=SM4_PSAM, name=f'{tag}psam5')]
            roles.update({DES_PSAM: 'psam', SM4_PSAM: 'psam'})
        else:
            ks = hsmkit.KeyServer(self.h, self.pki, name=f'{tag}hsm').start()
            config = hsmkit.daemon_config(self.pki)
        # prefetch = no: the traces compared are those of the operations below (with the read-ahead,
        # what the card gets at start depends on whether the PSAMs were probed before it).
        config = {k: dict(v) for k, v in (config or {}).items()}
        config['card'] = {'prefetch': 'no'}
        self.d = sscardd.Daemon(self.h, config=config, name=f'{tag}sscardd',
                                socket_name=f'{tag}.sock', in_mountns=True).start()
        self.c = self.d.client()
        self.wait_roles(roles)
        for slot, p in card_profiles.items():
            if p == 'gen3-readauth':
                self.call(slot, 'card.read_basic')
                self.call(slot, 'card.read_items', file='SSSE/EF06', items=['08'])
            self.key_operations(slot, 3 if p.startswith('gen3') else 2)
        self.d.stop()
        for s in list(cards.values()) + psams:
            s.stop()
        if ks:
            self.assertGreater(ks.status()['exchanges'], 0)
            ks.stop()
        for slot in cards:
            self.h.wait_card(slot, present=False)
        return {slot: hsmkit.card_trace(cards[slot].proc.log_text()) for slot in cards}

    def test_trace_same_as_local_psam(self):
        profiles = {GEN2: 'gen2', GEN3: 'gen3-readauth'}
        local = self.run_ops('l', profiles, 'psam')
        remote = self.run_ops('n', profiles, 'hsm')
        # Authentications were made on both runs, and their random parts masked: external
        # authentication 04 (DES, Lc 10) before the EF06 write, read authorisation 0A (SM4, Lc
        # 11) of gen3-readauth.
        wanted = {GEN2: ('>', '0082000410' + 'x' * 32), GEN3: ('>', '0082000A11' + 'x' * 34)}
        for slot in profiles:
            with self.subTest(card=profiles[slot]):
                self.assertGreater(len(local[slot]), 40)
                self.assertIn(wanted[slot], local[slot])
                self.assertIn(wanted[slot], remote[slot])
                self.assertEqual(remote[slot], local[slot])

    def test_prefer_and_take_over(self):
        self.h.start_card('gen2', slot=GEN2)
        self.h.start_psam('gen2', slot=DES_PSAM)
        ks = hsmkit.KeyServer(self.h, self.pki).start()
        # Key server first: the exchange count moves, the PSAM is not needed.
        self.start_daemon(config=hsmkit.daemon_config(self.pki, prefer='hsm'), in_mountns=True)
        self.wait_roles({GEN2: 'user', DES_PSAM: 'psam'})
        before = ks.status()['exchanges']
        self.assertEqual(self.call(GEN2, 'card.internal_auth')['genuine'], True)
        self.assertEqual(ks.status()['exchanges'], before + 1)
        # The key server down: the PSAM in the reader takes over, and the log says so.
        ks.stop()
        self.assertEqual(self.call(GEN2, 'card.internal_auth')['genuine'], True)
        self.assertIn('keys: the key server failed (SSC_EHSMDOWN); a PSAM in a reader serves '
                      'this operation', self.d.log_text())
        self.d.stop()
        # PSAM first (the default): the key server is not asked.
        ks = hsmkit.KeyServer(self.h, self.pki, name='hsm2').start()
        self.d = sscardd.Daemon(self.h, config=hsmkit.daemon_config(self.pki), name='sscardd2',
                                socket_name='s2.sock', in_mountns=True).start()
        self.c = self.d.client()
        self.wait_roles({GEN2: 'user', DES_PSAM: 'psam'})
        self.assertEqual(self.call(GEN2, 'card.internal_auth')['genuine'], True)
        self.assertEqual(self.call(GEN2, 'card.read_basic')['terminal_number'], '330100000001')
        self.assertEqual(ks.status()['requests'], 0)


if __name__ == '__main__':
    unittest.main()
