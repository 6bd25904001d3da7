#!/usr/bin/python3
"""sscardd end to end, reading a card that is on the lost-card list (issue 11): refused by default
as before; with "allow_lost": true, card.read_basic and card.read_items answer with the data and
lost: true (false when checked and not listed, null when the list could not be checked); every
write, PIN operation and authentication stays refused with SSC_EBLACKLISTED (and "allow_lost" is
refused as a param of those); the audit row says which; sscardctl read-basic/read-items
--allow-lost. Real pcscd + vpcd + sscard-sim (card and PSAM) + sscardd + sscardctl.

Expected values are copied by hand from firmware-stubs/profiles/gen2.json (card number X00000019,
name 张三... as the profile holds it is not compared here: the card number is; PIN 123456,
DF04/EF05 item 31 = "11") and docs/api.md.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_lost.py [-k name]
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import RpcError, ctl, journal_settled  # noqa: E402

GEN2_NUMBER = 'X00000019'
GEN2_PIN = '123456'


class LostCard(sscardd.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0, state=True)
        self.h.start_psam('gen2', slot=1)

    def refused(self, method, params=None):
        with self.assertRaises(RpcError) as cm:
            self.c.call(method, params)
        return cm.exception

    def sscardctl(self, *args):
        return ctl('--socket', self.d.socket_path, *args)

    def test_allow_lost(self):
        self.start_daemon()
        self.wait_roles({0: 'user', 1: 'psam'})
        db = self.d.journal_path
        plain = self.c.call('card.read_basic')
        self.assertNotIn('lost', plain)            # the default answer is as it was
        # Asked, on a card that is not listed: lost is false.
        self.assertIs(self.c.call('card.read_basic', {'allow_lost': True})['lost'], False)
        rc, out, err = ctl('blacklist', 'import', '-', '--journal', db, stdin=f'{GEN2_NUMBER}\n')
        self.assertEqual(rc, 0, err)

        # The default stays a refusal (clients rely on it).
        self.assertRpcError(self.refused('card.read_basic'), 'SSC_EBLACKLISTED', std_code=-22)
        self.assertRpcError(self.refused('card.read_items', {'file': 'DF04/EF05', 'items': ['31']}),
                            'SSC_EBLACKLISTED')
        # Asked for: the data, and lost: true.
        basic = self.c.call('card.read_basic', {'allow_lost': True})
        self.assertIs(basic['lost'], True)
        self.assertEqual({k: v for k, v in basic.items() if k != 'lost'}, plain)
        items = self.c.call('card.read_items', {'file': 'DF04/EF05', 'items': ['31'],
                                                'allow_lost': True})
        self.assertEqual(items, {'file': 'DF04/EF05', 'items': {'31': '11'}, 'lost': True})
        self.assertIs(self.c.call('card.read_basic', {'allow_lost': True,
                                                      'internal_auth': True})['genuine'], True)
        e = self.refused('card.read_basic', {'allow_lost': 'yes'})
        self.assertRpcError(e, 'SSC_EINVAL', code=-32602)

        # Everything else stays refused, before any command that changes the card.
        state = self.card.state()
        for method, params in (
                ('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'}}),
                ('card.verify_pin', {'pin': GEN2_PIN}),
                ('card.change_pin', {'old_pin': GEN2_PIN, 'new_pin': '135790'}),
                ('card.reload_pin', {'new_pin': '135790'}),
                ('card.unblock_pin', {'new_pin': '135790'}),
                ('card.internal_auth', None)):
            with self.subTest(method=method):
                self.assertRpcError(self.refused(method, params), 'SSC_EBLACKLISTED')
                # "allow_lost" does not exist for them.
                e = self.refused(method, dict(params or {}, allow_lost=True))
                self.assertRpcError(e, 'SSC_EINVAL', code=-32602)
                self.assertIn('"allow_lost" is for card.read_basic and card.read_items only',
                              e.message)
        self.assertEqual(self.card.state(), state)

        # The audit rows say which.
        rows = [r for r in journal_settled(self.d) if r['kind'] == 'audit'
                and r['method'] in ('card.read_basic', 'card.read_items')]
        self.assertEqual([(r['method'], r['result'], r.get('detail')) for r in rows], [
            ('card.read_basic', 'SSC_OK', None),
            ('card.read_basic', 'SSC_OK', {'allow_lost': True, 'lost': False}),
            ('card.read_basic', 'SSC_EBLACKLISTED', None),
            ('card.read_items', 'SSC_EBLACKLISTED', None),
            ('card.read_basic', 'SSC_OK', {'allow_lost': True, 'lost': True}),
            ('card.read_items', 'SSC_OK', {'allow_lost': True, 'lost': True}),
            ('card.read_basic', 'SSC_OK', {'allow_lost': True, 'lost': True}),
            ('card.read_basic', 'SSC_EINVAL', None),
        ])
        rc, out, err = ctl('journal', 'show', '--journal', db)
        self.assertIn('allow_lost (lost: yes, read anyway)', out)

        # sscardctl as the clerk runs it.
        rc, out, err = self.sscardctl('read-basic')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('SSC_EBLACKLISTED', err)
        rc, out, err = self.sscardctl('read-basic', '--allow-lost')
        self.assertEqual(rc, 0, err)
        self.assertIn(f'卡号 card number: {GEN2_NUMBER}\n', out)
        self.assertIn('挂失 on the lost-card list: yes\n', out)
        rc, out, err = self.sscardctl('read-items', 'DF04/EF05', '31', '--allow-lost')
        self.assertEqual((rc, out), (0, '31: 11\n挂失 on the lost-card list: yes\n'), err)
        rc, out, err = self.sscardctl('call', 'card.verify_pin', '--allow-lost')
        self.assertEqual(rc, 2, out + err)
        self.assertIn('--allow-lost only goes with read-basic and read-items', err)

    def test_allow_lost_when_the_list_cannot_be_checked(self):
        jdb = self.h.path('bad-journal.db')
        with open(jdb, 'wb') as f:
            f.write(b'not a database ' * 400)
        with open(jdb + '.key', 'wb') as f:
            f.write(os.urandom(32))
        self.start_daemon(config={'journal': {'path': jdb}})
        self.wait_roles({0: 'user', 1: 'psam'})
        self.assertTrue(self.c.call('system.info')['journal'].startswith('unavailable'))
        basic = self.c.call('card.read_basic', {'allow_lost': True})
        self.assertIsNone(basic['lost'])
        self.assertEqual(basic['card_number'], GEN2_NUMBER)
        rc, out, err = self.sscardctl('read-basic', '--allow-lost')
        self.assertEqual(rc, 0, err)
        self.assertIn('挂失 on the lost-card list: not checked (the lost-card list could not be '
                      'read)\n', out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
