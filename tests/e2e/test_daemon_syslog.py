#!/usr/bin/python3
"""Audit shipping to syslog (issue 19, [audit] syslog = yes), end to end: a test listener on its own
datagram socket path takes what the daemon sends during reads, a write (intent and outcome) and a
failed call, and

* every message is RFC 5424 (<PRI>1 TIMESTAMP HOST sscardd PID MSGID [sscard@32473 ...] BOM MSG),
  facility authpriv, severity info for SSC_OK and notice otherwise;
* the messages match the journal row for row: every row appended while the daemon ran, with its
  sequence number, chain hash, time, kind, uid, pid, exe, method, reader, keyed card reference,
  result, duration, intent, file and detail;
* `sscardctl journal verify --head SEQ:HASH` accepts the head taken from the last message (and
  refuses one whose hash was changed);
* no personal data in any message (not the card number, the ID number, the name);
* without a listener the daemon serves on, says once that syslog does not take rows, and sends
  again once one is there.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_syslog.py
"""

import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

HEADER = re.compile(r'^<(\d+)>1 (\S+) (\S+) sscardd (\d+) (\S+) \[sscard@32473((?: [a-z_]+='
                    r'"(?:[^"\\\]]|\\["\\\]])*")+)\] \ufeff(.*)$', re.S)
PARAM = re.compile(r' ([a-z_]+)="((?:[^"\\\]]|\\["\\\]])*)"')


def parse(msg):
    m = HEADER.match(msg)
    assert m, msg
    params = {k: re.sub(r'\\(["\\\]])', r'\1', v) for k, v in PARAM.findall(m.group(6))}
    return {'pri': int(m.group(1)), 'time': m.group(2), 'host': m.group(3),
            'procid': int(m.group(4)), 'msgid': m.group(5), 'sd': params, 'msg': m.group(7)}


def doc_example():
    """The message docs/operations.md shows under "Audit to syslog"."""
    with open(os.path.join(harness.SOURCE_DIR, 'docs', 'operations.md'), encoding='utf-8') as f:
        text = f.read()
    sec = text[text.index('## Audit to syslog'):]
    m = re.search(r'```\n(<\d+>1 .*?)\n```', sec)
    assert m, 'no example message under "Audit to syslog"'
    # The docs leave out the byte order mark RFC 5424 puts before the text (it is invisible).
    return re.sub(r'\] journal row', '] \ufeffjournal row', m.group(1))


class Listener:
    """A syslog daemon's socket, read by a thread of its own as a syslog daemon reads it."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.raw = []
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.closed:
            try:
                self.raw.append(self.sock.recv(65536).decode('utf-8'))
            except socket.timeout:
                continue
            except OSError:
                return

    def drain(self, quiet=0.5):
        """Every message so far, parsed, once none came for quiet seconds."""
        n = -1
        while n != len(self.raw):
            n = len(self.raw)
            time.sleep(quiet)
        return [parse(m) for m in list(self.raw)]

    def close(self):
        self.closed = True
        self.thread.join(2)
        self.sock.close()


class Syslog(sscardd.DaemonTestCase):
    readers = 2

    def start(self, sock):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=1)
        d = self.start_daemon(config={'audit': {'syslog': 'yes', 'syslog_socket': sock}})
        self.c = d.client()
        d.wait_readers(self.c, {self.h.reader_name(0): {'card': True, 'role': 'user'},
                                self.h.reader_name(1): {'card': True, 'role': 'psam'}},
                       timeout=15)
        return d

    def test_rows_match_the_journal(self):
        path = self.h.path('log.sock')
        lst = Listener(path)
        self.addCleanup(lst.close)
        d = self.start(path)
        basic = self.c.call('card.read_basic', timeout=15)
        self.c.call('card.write_items', {'file': 'SSSE/EF05', 'items': {'02': '5'}}, timeout=15)
        with self.assertRaises(sscardd.RpcError):
            self.c.call('card.read_items', {'file': 'SSSE/EF99', 'items': ['01']})
        self.c.close()
        d.stop()
        self.assertEqual(d.proc.returncode(), 0)
        msgs = lst.drain()
        rows = sscardd.journal_rows(d.journal_path)
        by_seq = {m['sd']['seq']: m for m in msgs}
        self.assertEqual(len(by_seq), len(msgs))               # one message per row
        first = min(int(s) for s in by_seq)
        shipped = [r for r in rows if r['seq'] >= first]
        self.assertEqual(sorted(int(s) for s in by_seq), [r["seq"] for r in shipped], shipped[-2:])
        # Everything since the daemon opened the journal: its audit rows, intent and outcome.
        kinds = [r['kind'] for r in shipped]
        self.assertIn('intent', kinds)
        self.assertIn('outcome', kinds)
        self.assertGreaterEqual(kinds.count('audit'), 5)
        host = socket.gethostname()
        for r in shipped:
            m = by_seq[str(r['seq'])]
            sd = m['sd']
            self.assertEqual(m['procid'], d.pid)
            self.assertEqual(m['host'], host)
            self.assertEqual(m['msgid'], r['kind'])
            self.assertEqual(m['time'], r['time'])
            self.assertEqual(m['pri'], 10 * 8 + (6 if r['result'] in ('SSC_OK', '') else 5))
            for k in ('hash', 'kind', 'exe', 'method', 'reader', 'card', 'result'):
                self.assertEqual(sd[k], r[k], (k, m, r))
            for k in ('uid', 'pid', 'duration_ms'):
                self.assertEqual(int(sd[k]), r[k], (k, m, r))
            self.assertEqual(int(sd.get('intent', '0')), r.get('intent', 0))
            self.assertEqual(sd.get('file', ''), r.get('file', ''))
            detail = r.get('detail', '')       # the export shows a JSON detail parsed
            self.assertEqual(json.loads(sd['detail']) if isinstance(detail, (dict, list))
                             else sd.get('detail', ''), detail)
            self.assertEqual(m['msg'], f"journal row {r['seq']}: {r['kind']} "
                                       f"{r['method'] or '-'} {r['result'] or '-'}")
        reads = [r for r in shipped if r['method'] == 'card.read_basic']
        self.assertEqual(len(reads), 1)
        # docs/operations.md's example is a message of this kind, as the listener gets it: the
        # same header, the same parameters in the same order, the same text.
        real = by_seq[str(reads[0]['seq'])]
        example = parse(doc_example())
        self.assertEqual(list(example['sd']), list(real['sd']))
        self.assertEqual((example['pri'], example['msgid']), (real['pri'], real['msgid']))
        self.assertRegex(example['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
        self.assertRegex(real['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
        self.assertEqual(example['msg'], f"journal row {example['sd']['seq']}: audit "
                                         f"card.read_basic SSC_OK")
        self.assertRegex(reads[0]['card'], r'^[0-9a-f]{32}$')  # a keyed reference, not a number
        failed = [r for r in shipped if r['method'] == 'card.read_items']
        self.assertEqual(by_seq[str(failed[0]['seq'])]['pri'], 85)
        raw = repr(msgs)
        for secret in (basic['card_number'], basic['ssn'], basic['name']):
            self.assertNotIn(secret, raw)

        # The collector's head verifies the journal; a changed hash does not.
        last = by_seq[str(shipped[-1]['seq'])]['sd']
        rc, out, err = sscardd.ctl('journal', 'verify', '--journal', d.journal_path,
                                   '--head', f"{last['seq']}:{last['hash']}")
        self.assertEqual(rc, 0, out + err)
        self.assertIn('journal intact', out + err)
        bad = last['hash'][:-1] + ('0' if last['hash'][-1] != '0' else '1')
        rc, out, err = sscardd.ctl('journal', 'verify', '--journal', d.journal_path,
                                   '--head', f"{last['seq']}:{bad}")
        self.assertNotEqual(rc, 0, out + err)

    def test_no_listener_then_one(self):
        path = self.h.path('late.sock')
        d = self.start(path)
        self.c.call('reader.list')
        sscardd.journal_settled(d)
        harness.wait_until(lambda: 'does not take rows' in d.log_text(), 10, 'the warning')
        lst = Listener(path)
        self.addCleanup(lst.close)
        time.sleep(1.2)                        # the sender tries to connect again once a second
        self.c.call('reader.list')

        def got():
            msgs = lst.drain(0.1)
            return [m for m in msgs if m['sd']['method'] == 'reader.list'] or None
        harness.wait_until(got, 10, 'a row once the listener is there')
        harness.wait_until(lambda: 'takes rows again' in d.log_text(), 10, 'the recovery line')
        self.assertEqual(d.log_count('does not take rows'), 1)
        self.assertTrue(d.alive())


if __name__ == '__main__':
    unittest.main()
