#!/usr/bin/python3
"""sscardd end to end, durability order of a card write (issue 4: "before a card write, the intended
records are committed durably (surviving power loss, not only a crash); after the card answers,
the outcome"), observed from outside with strace on the running daemon:

- the intent's frames are written to the journal's WAL and the WAL is fdatasync'ed (or fsync'ed)
  BEFORE the record-writing APDU leaves for pcscd (APPEND RECORD 04 E2 00 40 / UPDATE RECORD with
  MAC 04 DC), on the same worker thread;
- the outcome's frames are written and synced after that APDU and before the client's reply.

A power cut cannot be simulated here; the fdatasync before the card command is what makes the
intent survive one (docs/security.md "Durability of each kind of row").

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_durable.py
"""

import os
import re
import select
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402

LINE = re.compile(r'^(\d+)\s+(\w+)\((\d+)<([^>]*)>(?:, "([^"]*)")?')


def decode(text):
    """strace -xx text ('\\x04\\xe2...') to bytes (only \\xNN escapes appear with -xx)."""
    return bytes(int(h, 16) for h in re.findall(r'\\x([0-9a-f]{2})', text))


RESUMED = re.compile(r'^(\d+)\s+<\.\.\. (\w+) resumed>')


def parse(path):
    """strace -f -y -xx output -> [(tid, syscall, fd path, data bytes)] of complete calls. A call
    that strace splits ("<unfinished ...>" while another thread ran, then "<... X resumed>") is
    placed where it completed, with its fd from the first part (a sync counts once it returned)."""
    out = []
    pending = {}
    with open(path) as f:
        for line in f:
            r = RESUMED.match(line)
            if r:
                first = pending.pop((int(r.group(1)), r.group(2)), None)
                if first is not None:
                    out.append(first)
                continue
            m = LINE.match(line)
            if not m:
                continue
            tid, call, _fd, fdpath, data = m.groups()
            entry = (int(tid), call, decode(fdpath).decode('utf-8', 'replace'),
                     decode(data or ''))
            if 'unfinished' in line:
                # The data of a split write may be cut: only its place and fd are kept.
                pending[(entry[0], call)] = entry[:3] + (b'',)
                continue
            out.append(entry)
    return out


@unittest.skipUnless(shutil.which('strace'), 'strace is not installed')
class Durable(crashkit.WriteFaultCase):

    def trace(self):
        """Attaches strace to every thread of the daemon; returns (process, output path)."""
        out = self.h.path('strace.out')
        p = subprocess.Popen(['strace', '-f', '-y', '-xx', '-s', '256', '-e',
                              'trace=fsync,fdatasync,pwrite64,write,sendto,sendmsg',
                              '-o', out, '-p', str(self.d.pid)],
                             stderr=subprocess.PIPE, start_new_session=True)
        self.addCleanup(p.stderr.close)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        seen = []

        def attached():
            # "strace: Process N attached with M threads", once all of them are.
            if select.select([p.stderr], [], [], 0.05)[0]:
                seen.append(p.stderr.readline())
            return any(b'attached' in s for s in seen)
        harness.wait_until(attached, 10.0, 'strace to attach to the daemon')
        return p, out

    def check_order(self, calls, apdu_head):
        wal = self.d.journal_path + '-wal'
        sock = [i for i, (_, c, fd, data) in enumerate(calls)
                if c in ('sendto', 'write', 'sendmsg') and fd.startswith('socket:')
                and data.startswith(apdu_head)]
        self.assertEqual(len(sock), 1, f'the record APDU {apdu_head.hex()} sent once')
        i_apdu = sock[0]
        worker = calls[i_apdu][0]
        mine = [(i, c, fd) for i, (t, c, fd, _) in enumerate(calls) if t == worker]
        before = [(i, c) for i, c, fd in mine if i < i_apdu and fd == wal]
        writes = [i for i, c in before if c == 'pwrite64']
        syncs = [i for i, c in before if c in ('fdatasync', 'fsync')]
        self.assertTrue(writes, 'no intent written to the WAL before the card write')
        self.assertTrue(syncs and syncs[-1] > writes[-1],
                        'the intent was not synced to disk before the card write')
        # The outcome: written and synced after the APDU, before the reply to the client.
        reply = [i for i, (_, c, fd, data) in enumerate(calls)
                 if i > i_apdu and c == 'write' and b'"journal_id"' in data]
        self.assertTrue(reply, 'no reply')
        after = [(i, c) for i, c, fd in mine if i_apdu < i < reply[0] and fd == wal]
        writes = [i for i, c in after if c == 'pwrite64']
        syncs = [i for i, c in after if c in ('fdatasync', 'fsync')]
        self.assertTrue(writes, 'no outcome written before the reply')
        self.assertTrue(syncs and syncs[-1] > writes[-1],
                        'the outcome was not synced before the reply')

    def test_intent_synced_before_the_card_is_written(self):
        p, out = self.trace()
        t = crashkit.txn(8)
        self.assertEqual(self.write('DF04/EF08', {'40': t})['items'], {'40': t})
        self.assertEqual(self.write('DF04/EF05', {'31': '21'})['items'], {'31': '21'})
        p.terminate()
        p.wait(timeout=10)
        calls = parse(out)
        # APPEND RECORD to EF08 (SFI 8): 04 E2 00 40; UPDATE RECORD of EF05 tag 31 with MAC.
        self.check_order(calls, bytes.fromhex('04E20040'))
        self.check_order(calls, bytes.fromhex('04DC'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
