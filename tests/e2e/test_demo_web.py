"""scripts/demo.sh --web (issue 17): it starts the browser bridge beside its daemon and prints the
demo page's URL and a pairing code; the page must be served at that URL, the code must pair a page of
that origin (which then reads the card through the bridge), the bridge must run as nobody, and the
printed Stop line must end it all.

The demo listens on the fixed port 8732, so the whole demo runs in a network namespace of this
test's own (other tests, and other checkouts' tests, may run at the same time); what the test
sends to the bridge is sent from inside that namespace (nsenter).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_demo_web.py
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

DEMO = os.path.join(harness.SOURCE_DIR, 'scripts', 'demo.sh')

# Runs inside the demo's network namespace with the printed code: an unpaired call, the pairing and
# a read ('first'), or the pairing again ('again'); prints what each gave as JSON.
PAGE = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import webtest
code, mode = sys.argv[2], sys.argv[3]


def page():
    return webtest.WebSocket(('127.0.0.1', 8732), 'http://127.0.0.1:8732', '127.0.0.1:8732',
                             '/v1', 20)


out = {}
if mode == 'first':
    ws = page()
    out['unpaired'] = ws.call_error('system.info').name
    ws.close()
    ws = page()
    pair = ws.call('bridge.pair', {'code': code}, timeout=20)
    out['pair'] = sorted(pair)
    out['origin'] = pair['origin']
    basic = ws.call('card.read_basic', timeout=20)
    out['name'], out['ssn'] = basic['name'], basic['ssn']
else:
    out['again'] = page().call_error('bridge.pair', {'code': code}, timeout=20).name
print(json.dumps(out))
'''


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ', 1)[1][0] != 'Z'
    except OSError:
        return False


class DemoWeb(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        missing = harness.missing_requirements()
        if missing:
            self.fail('missing: ' + ', '.join(missing))
        self.pids = []
        self.work = None
        self.addCleanup(self.cleanup)

    def cleanup(self):
        """What the test did not stop (it failed first): the pids the demo named, and any process
        whose command line names its directory."""
        pids = set(self.pids)
        if self.work:
            for d in os.listdir('/proc'):
                try:
                    with open(f'/proc/{d}/cmdline', 'rb') as f:
                        if self.work.encode() in f.read():
                            pids.add(int(d))
                except (OSError, ValueError):
                    pass
        for pid in pids:
            if pid != os.getpid() and alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.work and os.path.isdir(self.work) and self.work.startswith('/tmp/sscard-demo.'):
            subprocess.run(['rm', '-rf', self.work], check=False)

    def in_ns(self, argv, timeout=60):
        return subprocess.run(['nsenter', f'--net=/proc/{self.web_pid}/ns/net'] + argv,
                              capture_output=True, text=True, timeout=timeout)

    def page(self, code, mode):
        r = self.in_ns([sys.executable, '-c', PAGE, os.path.dirname(os.path.abspath(__file__)),
                        code, mode])
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return json.loads(r.stdout.strip().splitlines()[-1])

    def test_web(self):
        env = dict(os.environ, SSC_BUILD_DIR=harness.BUILD_DIR)
        p = subprocess.run(['unshare', '-n', 'sh', '-c',
                            f'ip link set lo up && exec bash {DEMO} --simulate --web'],
                           capture_output=True, text=True, timeout=900, env=env)
        out = p.stdout
        procs = {}
        for pid, name in re.findall(r'^  pid (\d+) +(\S.*?)  ', out, re.M):
            procs[name] = int(pid)
        self.pids = list(procs.values())
        work = re.search(r'(/tmp/sscard-demo\.[A-Za-z0-9]+)/', out)
        self.work = work.group(1) if work else None
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertIn('sscard-web', procs, out[-3000:])
        self.web_pid = procs['sscard-web']
        # The bridge runs as nobody, never as root.
        with open(f'/proc/{self.web_pid}/status') as f:
            uids = re.search(r'^Uid:\s+(\d+)\s+(\d+)', f.read(), re.M).groups()
        self.assertEqual(uids, ('65534', '65534'))
        # The URL and the code, as printed.
        m = re.search(r'^  Open the demo page: +(\S+)$', out, re.M)
        self.assertIsNotNone(m, out[-3000:])
        self.assertEqual(m.group(1), 'http://127.0.0.1:8732/')
        m = re.search(r'^  Pairing code for it .*:\n  (\S+)$', out, re.M)
        self.assertIsNotNone(m, out[-3000:])
        code = m.group(1)
        self.assertRegex(code, r'^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$')
        # The page is served at that URL.
        r = self.in_ns(['curl', '-s', '--max-time', '10', 'http://127.0.0.1:8732/'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('<html', r.stdout)
        self.assertIn('app.js', r.stdout)
        # Before pairing the page gets nothing; with the printed code it pairs and reads.
        got = self.page(code, 'first')
        self.assertEqual(got['unpaired'], 'SSC_ENOTPAIRED')
        self.assertEqual(got['pair'], ['origin', 'token'])
        self.assertEqual(got['origin'], 'http://127.0.0.1:8732')
        self.assertRegex(got['ssn'], r'^\d{17}[\dX]$')
        self.assertTrue(got['name'])
        # The code was single use: the same one again is refused.
        self.assertEqual(self.page(code, 'again'), {'again': 'SSC_EBADCODE'})
        # The Stop line, exactly: everything it started ends (the bridge included).
        stop = re.search(r'^Stop \(sscardd, the simulators, then pcscd\): (.*)$', out, re.M)
        self.assertIsNotNone(stop, out[-2000:])
        self.assertIn(str(self.web_pid), stop.group(1))
        s = subprocess.run(['bash', '-c', stop.group(1)], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(s.returncode, 0, s.stderr)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual([pid for pid in self.pids if alive(pid)], [])
        self.assertFalse(os.path.exists(self.work))


if __name__ == '__main__':
    unittest.main(verbosity=2)
