#!/usr/bin/python3
"""sscardd end to end: recovery from a card or PSAM that vanishes at an awkward moment (regression
tests of bugs found by the end-to-end suite; each comment says what went wrong and how it was fixed).
A future known bug goes here as a test marked unittest.expectedFailure with a "BUG:" comment (what
goes wrong, where, a fix idea): the suite stays green until the fix lands, then an unexpected
success fails the run, and the decorator goes with the fix.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_recovery.py [-k name]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402
from sscardd import slot_id  # noqa: E402
from test_daemon_read import NO_TERMINAL, SM4_TERMINAL, expected  # noqa: E402
from test_daemon_removal import RemovalHelpers  # noqa: E402


class Recovery(RemovalHelpers, sscardd.DaemonTestCase):
    prefetch = 'no'     # every read talks to the card (and to its PSAM)

    # Was a bug (fixed in drivers/pcsc.c pcsc_connect_card: an unexpected SCardConnect failure
    # now asks the reader's state once and reports SSC_ENOCARD when the card is gone):
    # a card that vanishes while the daemon connects to it (the first step of every
    # operation: user cards are connected per operation) gives SSC_EPROTO, "malformed answer from
    # the card or reader", instead of the no-card / card-removed error (std_code -2 either way).
    # pcscd 1.9.9 powers the card up, the ATR read fails, and SCardConnect answers
    # SCARD_E_PROTO_MISMATCH ("Protocol T=1 requested but unsupported by the card"), which
    # drivers/pcsc.c pcsc_map() turns into SSC_EPROTO. Fix idea: in pcsc_connect_card(), when
    # SCardConnect fails, ask the reader's state once (SCardGetStatusChange, timeout 0) and report
    # SSC_ENOCARD if the card is no longer there.
    def test_pulled_while_connecting(self):
        self.h.start_pcscd()
        card = self.h.start_card('gen2', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})
        self.assertEqual(self.c.call('card.read_basic'), expected('gen2', NO_TERMINAL))
        card.sigstop()
        # pcscd's presence poll now waits on the stopped card; the daemon's connect waits behind.
        sscardd.harness.wait_until(lambda: card.link_rx_queue() == 3, 3, 'the presence poll')
        mid = self.c.request('card.read_basic')
        self.d.wait_reader(self.c, self.h.reader_name(0), timeout=3, busy=True)
        time.sleep(0.1)
        card.kill9()
        err = None
        try:
            self.c.result(mid, timeout=5)
        except sscardd.RpcError as e:
            err = e
        self.assertIsNotNone(err)
        self.assertIn(err.name, ('SSC_ECARDREMOVED', 'SSC_ENOCARD'), str(err))
        self.assertEqual(err.std_code, -2)


    # Was a bug (fixed in src/readers.c: a probe that cannot tell the card's kind is retried with a
    # back-off, 200 ms doubling, six times): a PSAM that fails mid-use and is put back before pcscd's presence poll (~0.4 s) stays
    # unusable (reader.list: card true, role "unknown") until it is pulled and inserted again.
    # readers.c (rd_psam_release / rd_psam_acquire) drops the slot and sets reprobe; the worker
    # probes at once, before vpcd has taken the new link, the probe's SELECT fails
    # (SCARD_E_NOT_TRANSACTED -> SSC_ECARDREMOVED), the log says "could not tell the card's kind:
    # the card was removed during the operation", and the role stays unknown: pcscd reports no
    # change (to it the card never left), so nothing triggers another probe, and read-authorised
    # reads fail with SSC_ENOPSAM meanwhile. The same would follow any transient probe failure.
    # Fix idea: when a probe fails at transport level while the card is still present, probe
    # again later (a short back-off, a few tries) or at the next PSAM acquire.
    def test_psam_quick_reinsertion(self):
        self.setup_readauth(psam_delay=False)
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))
        for attempt in range(3):
            # The PSAM's next APDU (the SELECT of its key application) is never answered.
            self.psam.arm_drop(1)
            self.c.events.clear()
            err = self.c.call_error('card.read_basic')
            self.assertIn(err.name, ('SSC_ENOPSAM', 'SSC_EPSAM'), str(err))
            self.psam.insert()           # put back at once
            try:
                self.c.next_event(timeout=1.0, type='card.removed', reader=slot_id(2))
            except sscardd.harness.HarnessError:
                break
            self.c.next_event(timeout=5, type='card.inserted', reader=slot_id(2))
            self.wait_roles({2: 'psam'})
        self.wait_roles({2: 'psam'}, timeout=5)
        self.assertEqual(self.c.call('card.read_basic'), expected('gen3-readauth', SM4_TERMINAL))


if __name__ == '__main__':
    unittest.main(verbosity=2)
