#!/usr/bin/python3
"""sscardd with both drivers active: PC/SC readers (the harness's private pcscd + vpcd +
sscard-sim) and USB CCID readers (usbtest) together in reader.list, each read through its own
driver, with the PSAM on one driver serving a card on the other: an SM4 PSAM behind pcscd
authorises the read of a USB read-auth card, and a DES PSAM on USB computes the MAC of a write to
a PC/SC card.

Expected card data is copied by hand from firmware-stubs/profiles/*.json.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_usb_mixed.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import usbharness  # noqa: E402
from sscardd import slot_id  # noqa: E402


class BothDrivers(usbharness.UsbTestCase):
    readers = 2

    def test_pcsc_and_usb_together(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen3', slot=1)
        self.start(['name=u,mode=t1,slots=card:gen3-readauth+psam:gen2,serial=U1'], pcsc=True)
        self.wait_roles({0: 'user', 1: 'psam'})
        usb_card = self.wait_user('u', 0)
        usb_psam = self.wait_psam('u', 1)

        readers = {r['id']: r for r in self.d.readers(self.c)}
        self.assertEqual(readers[slot_id(0)]['driver'], 'pcsc')
        self.assertEqual(readers[slot_id(1)]['driver'], 'pcsc')
        self.assertEqual(readers[usb_card]['driver'], 'usb-ccid')
        self.assertEqual(readers[usb_psam]['driver'], 'usb-ccid')
        self.assertEqual(readers[slot_id(1)]['algorithm'], 'sm4')
        self.assertEqual(readers[usb_psam]['algorithm'], 'des')
        self.assertEqual(len(readers), 4, readers)

        # Two user cards: the reader must be named; the message lists both candidates (api.md).
        err = self.c.call_error('card.read_basic')
        self.assertRpcError(err, 'SSC_EREADERSELECT')
        self.assertIn(usb_card, err.message)
        self.assertIn(slot_id(0), err.message)

        # gen3-readauth.json over USB, authorised by the SM4 PSAM behind pcscd.
        got = self.c.call('card.read_basic', {'reader': usb_card})
        self.assertEqual((got['ssn'], got['card_id'], got['terminal_number'],
                          got['terminal_device']),
                         ('330203198511110029', '330200D156000005013C5A7F8E4DC9A5',
                          '330200000001', 'U1'))
        # gen2.json through pcscd, with the DES PSAM on USB for its terminal number and a write.
        got = self.c.call('card.read_basic', {'reader': slot_id(0)})
        self.assertEqual((got['ssn'], got['terminal_number']),
                         ('330102199003071230', '330100000001'))
        got = self.c.call('card.write_items', {'reader': slot_id(0), 'file': 'DF04/EF05',
                                               'items': {'31': '21'}})
        self.assertEqual(got['items'], {'31': '21'})

        # Unplugging the USB reader leaves the PC/SC ones alone.
        self.usb.unplug('u')
        self.wait_reader('u', 0, gone=True)
        self.assertEqual(sorted(r['id'] for r in self.d.readers(self.c)),
                         sorted([slot_id(0), slot_id(1)]))
        self.assertEqual(self.c.call('card.read_basic')['ssn'], '330102199003071230')


if __name__ == '__main__':
    unittest.main(verbosity=2)
