"""scripts/demo.sh --keep, as a new user runs it (issue 11): it must say which process is which, give
the `export` lines that point sscardctl at its daemon, start its simulators with control sockets and
say how to remove and insert the simulated card; and every command it prints must work exactly as
printed, the "Stop" line included.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_demo.py
"""

import os
import re
import signal
import subprocess
import time
import unittest

import harness

DEMO = os.path.join(harness.SOURCE_DIR, 'scripts', 'demo.sh')


def bash(cmd, timeout=60):
    """Runs cmd with bash (a clean environment but PATH); returns (status, stdout, stderr)."""
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LANG': 'C.UTF-8'}
    p = subprocess.run(['bash', '-c', cmd], capture_output=True, text=True, timeout=timeout,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ', 1)[1][0] != 'Z'
    except OSError:
        return False


class Demo(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        missing = harness.missing_requirements()
        if missing:
            self.skipTest('missing: ' + ', '.join(missing))
        self.pids = []
        self.work = None
        self.addCleanup(self.cleanup)

    def cleanup(self):
        """Whatever the test did not stop (it failed first) is stopped here: the pids the demo
        named, and any process whose command line names its directory."""
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

    def test_keep(self):
        env = dict(os.environ, SSC_BUILD_DIR=harness.BUILD_DIR)
        p = subprocess.run(['bash', DEMO, '--simulate', '--keep'], capture_output=True,
                           text=True, timeout=900, env=env)
        out = p.stdout
        m = re.search(r'^Left running:\n((?:  pid .*\n)+)', out, re.M)
        procs = {}
        for line in (m.group(1).splitlines() if m else []):
            pid, name = re.match(r'  pid (\d+) +(\S.*?)  ', line).groups()
            procs[name] = int(pid)
        self.pids = list(procs.values())
        work = re.search(r'(/tmp/sscard-demo\.[A-Za-z0-9]+)/', out)
        self.work = work.group(1) if work else None
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertIsNotNone(m, out[-3000:])
        # Each process by name, and it is that process.
        self.assertEqual(sorted(procs), ['pcscd (private)', 'simulated PSAM', 'simulated card',
                                         'sscardd'])
        comm = {}
        for name, pid in procs.items():
            with open(f'/proc/{pid}/comm') as f:
                comm[name] = f.read().strip()
        self.assertEqual(comm, {'sscardd': 'sscardd', 'simulated card': 'sscard-sim',
                                'simulated PSAM': 'sscard-sim', 'pcscd (private)': 'pcscd'})

        def block(title):
            b = re.search(r'^' + re.escape(title) + r'.*\n((?:  \S.*\n)+)', out, re.M)
            self.assertIsNotNone(b, f'no block {title!r} in:\n{out[-3000:]}')
            return [line[2:] for line in b.group(1).splitlines()]
        talk = block('Talk to sscardd')
        exports = [c for c in talk if c.startswith('export ')]
        self.assertEqual([c.split('=')[0] for c in exports],
                         ['export SSCARD_CONFIG', 'export SSCARD_SOCKET'])
        commands = [c for c in talk if not c.startswith('export ')]
        card = block('Remove and insert the simulated card')
        self.assertEqual(len(card), 2)
        self.assertTrue(card[0].endswith('/card.ctl remove') and card[1].endswith(
            '/card.ctl insert'), card)
        prefix = '; '.join(exports) + '; '
        results = {}
        watch = None
        for c in commands:
            if ' events ' in c:
                # The watch runs while the card is removed and inserted, as printed.
                watch = subprocess.Popen(['bash', '-c', prefix + c], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True,
                                         env={'PATH': os.environ.get('PATH', '/usr/bin:/bin')})
                time.sleep(1.0)
                for cc in card:
                    results[cc] = bash(cc)
                    time.sleep(1.5)
            else:
                results[c] = bash(prefix + c)
        for c, (rc, o, e) in results.items():
            self.assertEqual(rc, 0, f'{c}: {o} {e}')
        self.assertIsNotNone(watch, commands)
        w_out, w_err = watch.communicate(timeout=60)
        self.assertEqual(watch.returncode, 0, w_err)
        self.assertRegex(w_out, r'card\.removed +pcsc-virtual-pcd-00-00')
        self.assertRegex(w_out, r'card\.inserted +pcsc-virtual-pcd-00-00')
        by = {c.split()[-1] if 'sscardctl' not in c else c.split('sscardctl ', 1)[1]: r
              for c, r in results.items()}
        self.assertEqual(by['remove'][1], 'ok\n')
        self.assertEqual(by['insert'][1], 'ok\n')
        self.assertIn('psam     sm4', by['readers'][1])
        self.assertIn('姓名 name: ', by['read-basic'][1])
        self.assertEqual(by['verify-pin'][1], '密码正确 PIN verified\n')
        self.assertIn(f'sscardctl: journal {self.work}/journal.db (the [journal] path of '
                      f'{self.work}/sscardd.conf)', by['journal show --limit 5'][2])
        # The Stop line, exactly: everything it started ends, its directory is gone.
        stop = re.search(r'^Stop \(sscardd, the simulators, then pcscd\): (.*)$', out, re.M)
        self.assertIsNotNone(stop, out[-2000:])
        rc, o, e = bash(stop.group(1))
        self.assertEqual(rc, 0, e)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual([pid for pid in self.pids if alive(pid)], [])
        self.assertFalse(os.path.exists(self.work))

    def test_hsm(self):
        """--hsm: no PSAM reader, the keys from the simulated key server over TLS with the
        certificates the script made. gen3-readauth (the default profile) demands read
        authorisation of EF06, so without keys its read fails with SSC_ENOPSAM: this read
        succeeds only through the key server, whose terminal number (gen3-readauth.json's PSAM:
        330200000001) it reports, and whose counters show the exchange."""
        env = dict(os.environ, SSC_BUILD_DIR=harness.BUILD_DIR)
        p = subprocess.run(['bash', DEMO, '--hsm'], capture_output=True, text=True, timeout=900,
                           env=env)
        out = p.stdout
        work = re.search(r'(/tmp/sscard-demo\.[A-Za-z0-9]+)/', out)
        self.work = work.group(1) if work else None
        self.assertEqual(p.returncode, 0, out[-3000:] + p.stderr[-3000:])
        self.assertIn('no PSAM reader', out)
        self.assertIn('终端机编号 terminal number: 330200000001', out)
        self.assertIn('姓名 name: ', out)
        m = re.search(r'^connections=\d+ requests=\d+ exchanges=(\d+)', out, re.M)
        self.assertIsNotNone(m, out[-3000:])
        self.assertGreaterEqual(int(m.group(1)), 1)
        # Without --keep everything it started is gone, its directory too.
        self.assertFalse(os.path.exists(self.work))


if __name__ == '__main__':
    unittest.main(verbosity=2)
