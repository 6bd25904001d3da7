#!/usr/bin/python3
"""sscardd as a systemd service (issue 19), without a running systemd (there is none here, nor in CI):

* the shipped units (systemd/sscardd.service as cmake configures it, sscardd.socket) pass
  `systemd-analyze verify` with their paths made to exist, and the service is rated 2.0 or lower
  by `systemd-analyze security --offline=true --threshold=20` (a unit without the hardening is
  refused by the same command, so the threshold does bite); the sysusers.d and tmpfiles.d files
  make the user and the state directory in a scratch root (systemd-sysusers/-tmpfiles --root);
* socket activation: `systemd-socket-activate` listens, execs the daemon on the first connection
  and passes only the environment named with -E; the daemon serves on the passed socket (a card
  read through it), leaves the socket file to the manager, and tells NOTIFY_SOCKET (a datagram
  socket of this test) READY=1, its STATUS, WATCHDOG=1 every half WATCHDOG_USEC and STOPPING=1;
* what a service manager may pass wrongly: two sockets, or a socket that is not a listening Unix
  stream socket, stop the daemon (exit 1, a line that says what to fix); a socket at another path
  than [daemon] socket_path is served, with a warning;
* the watchdog: with the loop frozen by the test build's hook (SIGUSR2 with
  $SSCARDD_TEST_FREEZE_MS), no WATCHDOG=1 comes between the hook's two notices, and the pings
  resume after; and with the journal writer stuck in one append (another process holds the
  journal's write lock), no WATCHDOG=1 comes although the loop answers, and the pings resume once
  the append is through;
* [daemon] user: started as root with user = nobody, the daemon drops to uid/gid 65534 after the
  socket is open (all of /proc/PID/status's ids), creates the journal's directory for it and
  works; without the key it says that it runs as root; an unknown user stops it (exit 1).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_service.py
"""

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR',
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
UNIT_DIR = os.path.join(SOURCE_DIR, 'systemd')


def ops_doc():
    with open(os.path.join(SOURCE_DIR, 'docs', 'operations.md'), encoding='utf-8') as f:
        return f.read()


def run(argv, check=True, timeout=60):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f'{argv}: exit {p.returncode}\n{p.stdout}\n{p.stderr}')
    return p


class Units(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tempfile.mkdtemp(prefix='sscard-units.')
        self.addCleanup(shutil.rmtree, self.dir, True)
        # The service as cmake configured it, with ExecStart= at the build's daemon: the paths
        # systemd-analyze verify checks must exist.
        with open(os.path.join(harness.BUILD_DIR, 'systemd', 'sscardd.service')) as f:
            text = f.read()
        m = re.search(r'^ExecStart=(\S+)', text, re.M)
        self.assertIsNotNone(m)
        self.assertTrue(m.group(1).endswith('/sbin/sscardd'), m.group(1))
        self.service = text.replace(m.group(1), sscardd.daemon_binary())
        self.write('sscardd.service', self.service)
        shutil.copy(os.path.join(UNIT_DIR, 'sscardd.socket'), self.dir)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), 'w') as f:
            f.write(text)
        return os.path.join(self.dir, name)

    def test_verify(self):
        p = run(['systemd-analyze', 'verify', '--man=no',
                 os.path.join(self.dir, 'sscardd.service'),
                 os.path.join(self.dir, 'sscardd.socket')])
        self.assertEqual(p.stderr.strip(), '')

    def test_security_rating(self):
        p = run(['systemd-analyze', 'security', '--offline=true', '--threshold=20',
                 os.path.join(self.dir, 'sscardd.service')])
        m = re.search(r'Overall exposure level for sscardd.service: (\d+\.\d+)', p.stdout)
        self.assertIsNotNone(m, p.stdout[-2000:])
        self.assertLessEqual(float(m.group(1)), 2.0)
        # docs/operations.md gives the rating as measured here.
        self.assertIn(f'`systemd-analyze security sscardd.service` rates the shipped unit '
                      f'{m.group(1)} ', ops_doc())
        # The same unit without its hardening section is refused by that command.
        bare = re.sub(r'\n# Hardening\..*?\n\[Install\]', '\n[Install]', self.service, flags=re.S)
        self.assertNotIn('NoNewPrivileges', bare)
        weak = self.write('weak.service', bare)
        p = run(['systemd-analyze', 'security', '--offline=true', '--threshold=20', weak],
                check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout[-1500:])

    def test_offline_dropin(self):
        # sscardd-offline.conf installed as docs/operations.md says, as a drop-in of the service
        # (its settings come after the unit's own: a list such as RestrictAddressFamilies= is
        # merged with the unit's unless the drop-in empties it first).
        def rating(text):
            return {k: (ok, float(v) if v else 0.0) for ok, k, v in re.findall(
                r'^([✓✗]) (\S+)\s.*?\s(\d+\.\d+)?$', text, re.M)}
        p = run(['systemd-analyze', 'security', '--offline=true', '--threshold=20',
                 os.path.join(self.dir, 'sscardd.service')])
        online = rating(p.stdout)
        self.assertEqual(online['PrivateNetwork='][0], '✗')
        self.assertEqual(online['RestrictAddressFamilies=~AF_(INET|INET6)'][0], '✗')
        m = re.search(r'Overall exposure level for sscardd.service: (\d+\.\d+)', p.stdout)
        dropins = os.path.join(self.dir, 'sscardd.service.d')
        os.makedirs(dropins)
        shutil.copy(os.path.join(UNIT_DIR, 'sscardd-offline.conf'),
                    os.path.join(dropins, 'offline.conf'))
        p = run(['systemd-analyze', 'verify', '--man=no',
                 os.path.join(self.dir, 'sscardd.service'),
                 os.path.join(self.dir, 'sscardd.socket')])
        self.assertEqual(p.stderr.strip(), '')
        p = run(['systemd-analyze', 'security', '--offline=true', '--threshold=20',
                 os.path.join(self.dir, 'sscardd.service')])
        offline = rating(p.stdout)
        for check in ('PrivateNetwork=', 'IPAddressDeny=',
                      'RestrictAddressFamilies=~AF_(INET|INET6)',
                      'RestrictAddressFamilies=~AF_PACKET'):
            self.assertEqual(offline[check][0], '✓', (check, p.stdout))
        # What the pcscd socket and USB hot-plug need stays.
        self.assertEqual(offline['RestrictAddressFamilies=~AF_UNIX'][0], '✗')
        self.assertEqual(offline['RestrictAddressFamilies=~AF_NETLINK'][0], '✗')
        m2 = re.search(r'Overall exposure level for sscardd.service: (\d+\.\d+)', p.stdout)
        self.assertLess(float(m2.group(1)), float(m.group(1)))
        self.assertIn(f'`AF_UNIX AF_NETLINK` only (rated {m2.group(1)})', ops_doc())

    def test_units_match_the_default_configuration(self):
        # The shipped configuration's socket is the one sscardd.socket listens on, with its mode
        # and group (the daemon warns when they differ; sscardctl reads the configuration), and
        # its journal lies in the service's StateDirectory=.
        with open(os.path.join(UNIT_DIR, 'sscardd.socket')) as f:
            sock = dict(re.findall(r'^(\w+)=(.*)$', f.read(), re.M))
        state = re.search(r'^StateDirectory=(\S+)$', self.service, re.M).group(1)
        env = {k: v for k, v in os.environ.items() if k != 'SSCARD_CONFIG'}
        p = subprocess.run([sscardd.daemon_binary(), '--check-config', '--config',
                            os.path.join(SOURCE_DIR, 'conf', 'sscardd.conf')],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"config: socket {sock['ListenStream']} (mode {sock['SocketMode']}, "
                      f"group {sock['SocketGroup']})", p.stderr)
        self.assertIn(f'config: journal /var/lib/{state}/journal.db ', p.stderr)

    def test_udev_rule_in_docs(self):
        # The rule docs/usb-ccid.md shows is the shipped one (there is no udevd here to run it).
        with open(os.path.join(UNIT_DIR, '60-sscard.rules')) as f:
            rules = [line for line in f.read().splitlines() if line and not line.startswith('#')]
        self.assertEqual(len(rules), 1)
        self.assertIn('ENV{ID_USB_INTERFACES}=="*:0b????:*"', rules[0])
        self.assertIn('GROUP="sscard", MODE="0660"', rules[0])
        with open(os.path.join(SOURCE_DIR, 'docs', 'usb-ccid.md')) as f:
            self.assertIn('\n  ' + rules[0] + '\n', f.read())

    def test_sysusers_tmpfiles(self):
        root = os.path.join(self.dir, 'root')
        os.makedirs(os.path.join(root, 'etc'))
        run(['systemd-sysusers', f'--root={root}', os.path.join(UNIT_DIR, 'sscard.sysusers')])
        with open(os.path.join(root, 'etc', 'passwd')) as f:
            users = {line.split(':')[0]: line.split(':') for line in f}
        self.assertIn('sscard', users)
        uid, gid = int(users['sscard'][2]), int(users['sscard'][3])
        self.assertLess(uid, 1000)                       # a system user
        self.assertEqual(users['sscard'][6].strip(), '/usr/sbin/nologin')
        with open(os.path.join(root, 'etc', 'group')) as f:
            groups = {line.split(':')[0]: int(line.split(':')[2]) for line in f}
        self.assertEqual(groups['sscard'], gid)
        run(['systemd-tmpfiles', f'--root={root}', '--create',
             os.path.join(UNIT_DIR, 'sscard.tmpfiles')])
        st = os.stat(os.path.join(root, 'var', 'lib', 'sscard'))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (uid, gid, 0o750))


class Notify:
    """A datagram socket for NOTIFY_SOCKET, as systemd has one: every message, in order."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        self.messages.append(data.decode())
        return self.messages[-1]

    def wait(self, pred, timeout, what, start=0):
        """The index of the first message from index start on that pred accepts."""
        end = time.monotonic() + timeout
        for i in range(start, len(self.messages)):
            if pred(self.messages[i]):
                return i
        while time.monotonic() < end:
            if self.pump(min(0.5, max(0.01, end - time.monotonic()))) is not None:
                if pred(self.messages[-1]):
                    return len(self.messages) - 1
        raise AssertionError(f'no {what} within {timeout} s; got {self.messages[start:]}')

    def close(self):
        self.sock.close()


class Activation(sscardd.DaemonTestCase):
    readers = 2

    def test_socket_activation_notify_watchdog(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        notify = Notify(self.h.path('notify.sock'))
        self.addCleanup(notify.close)
        d = sscardd.Daemon(self.h, socket_name='act.sock')
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC='400000',
                   SSCARDD_TEST_FREEZE_MS='2500')
        passed = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'SSCARDD_TEST_FREEZE_MS',
                  'PCSCLITE_CSOCK_NAME']
        passed += [v for v in ('ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS') if v in env]
        argv = ['systemd-socket-activate', '-l', d.socket_path]
        for v in passed:
            argv += ['-E', v]
        argv += [sscardd.daemon_binary(), '--foreground', '--config', d.config_path,
                 '--log-level', 'debug']
        d.proc = self.h.spawn('sscardd', argv, env=env)
        harness.wait_until(lambda: os.path.exists(d.socket_path), 10, 'the activation socket')
        self.assertEqual(notify.messages, [])

        # The first connection starts the daemon, which answers on the socket it was passed. (The
        # socket file exists a moment before systemd-socket-activate listens: a refused connect
        # is no connection, try again.)
        def connect():
            try:
                return sscardd.Client(d.socket_path, timeout=10.0)
            except ConnectionRefusedError:
                return None
        c = harness.wait_until(connect, 10, 'systemd-socket-activate to listen')
        self.addCleanup(c.close)
        info = c.call('system.info', timeout=15.0)
        self.assertIn('version', info)
        log = d.log_text()
        self.assertIn('the socket the service manager passed (socket activation)', log)
        self.assertNotIn('not [daemon] socket_path', log)
        ready = notify.wait(lambda m: 'READY=1' in m.split('\n'), 10, 'READY=1')
        status = [m for m in notify.messages if m.startswith('STATUS=serving on')]
        self.assertTrue(status, notify.messages)
        self.assertIn(f'STATUS=serving on {d.socket_path}; journal ok', status)
        notify.wait(lambda m: m == 'WATCHDOG=1', 10, 'a first WATCHDOG=1')
        self.assertGreater(len(notify.messages), ready)
        self.assertIn('WATCHDOG=1 every 200 ms', d.log_text())

        # Reads go through the passed socket.
        d.wait_reader(c, self.h.reader_name(0), card=True, role='user', timeout=15)
        basic = c.call('card.read_basic', timeout=15)
        self.assertEqual(basic['name'], '张三')

        # The watchdog: pings stop while the loop is frozen, and resume after.
        harness.wait_until(lambda: notify.pump(0.5) is not None and
                           notify.messages.count('WATCHDOG=1') >= 3, 10, 'three pings')
        n_before = len(notify.messages)
        os.kill(d.pid, signal.SIGUSR2)
        i0 = notify.wait(lambda m: m == 'STATUS=test hook: loop frozen', 10, 'the freeze',
                         start=n_before)
        i1 = notify.wait(lambda m: m == 'STATUS=test hook: loop thawed', 15, 'the thaw', start=i0)
        self.assertGreaterEqual(i0, n_before)
        self.assertEqual([m for m in notify.messages[i0:i1] if m == 'WATCHDOG=1'], [],
                         notify.messages[i0:i1 + 1])
        notify.wait(lambda m: m == 'WATCHDOG=1', 10, 'WATCHDOG=1 after the thaw', start=i1)
        self.assertIn('the event loop is frozen for 2500 ms', d.log_text())

        # SIGTERM: STOPPING=1, a clean exit, and the socket file is the manager's to remove.
        c.close()
        os.kill(d.pid, signal.SIGTERM)
        notify.wait(lambda m: 'STOPPING=1' in m.split('\n'), 10, 'STOPPING=1')
        d.proc.wait(10)
        self.assertEqual(d.proc.returncode(), 0)
        self.assertTrue(os.path.exists(d.socket_path))

    def test_log_from_journalctl(self):
        # docs/operations.md, "Upgrading": under the unit the log is in the systemd journal;
        # `journalctl -o cat` gives the daemon's lines as written, which `journal verify --log`
        # takes; journalctl's default output (its date, host and unit before each line) it
        # does not.
        self.h.start_pcscd()
        d = self.start_daemon()
        d.client().call('reader.list')
        d.stop()
        self.assertEqual(d.proc.returncode(), 0)
        lines = [l for l in d.log_text().splitlines() if re.match(r'^\d{4}-\d\d-\d\dT', l)]
        self.assertTrue(any(' info  journal head seq=' in l for l in lines))
        cat = self.h.path('cat.log')
        with open(cat, 'w') as f:
            f.write(''.join(l + '\n' for l in lines))
        rc, out = sscardd.journal_verify(d.journal_path, log=cat)
        self.assertEqual(rc, 0, out)
        self.assertIn('journal intact', out)
        short = self.h.path('short.log')
        with open(short, 'w') as f:
            f.write(''.join(f'Dec 06 08:00:00 desk-0001 sscardd[{d.pid}]: {l}\n' for l in lines))
        rc, out = sscardd.journal_verify(d.journal_path, log=short)
        self.assertNotEqual(rc, 0, out)
        self.assertIn('has no "journal head seq=N hash=H" line from sscardd', out)

    def test_without_manager(self):
        # No NOTIFY_SOCKET, no LISTEN_FDS: the daemon makes its own socket as before.
        self.h.start_pcscd()
        d = self.start_daemon()
        self.assertIn(f'listening on {d.socket_path} (mode', d.log_text())
        self.assertNotIn('watchdog', d.log_text())
        self.assertIn('running as root: set [daemon] user', d.log_text())
        # The protocol is ours (src/svc.c): libsystemd and its libraries are not mapped (issue 18).
        with open(f'/proc/{d.pid}/maps') as f:
            maps = f.read()
        for lib in ('libsystemd', 'libgcrypt', 'liblz4', 'libzstd'):
            self.assertFalse(lib in maps, f'{lib} mapped')


class WatchdogJournal(sscardd.DaemonTestCase):
    """WATCHDOG=1 only while the journal writer is alive too: another process holds the
    journal's write lock (as a stuck disk or a long checkpoint would keep an append waiting),
    the audit row of a call waits for it, and the pings stop although the loop runs on."""

    def test_stuck_append_stops_the_pings(self):
        self.h.start_pcscd()
        notify = Notify(self.h.path('notify.sock'))
        self.addCleanup(notify.close)
        d = sscardd.Daemon(self.h)
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC='400000')
        d.proc = self.h.spawn('sscardd', d.argv(), env=env)
        notify.wait(lambda m: 'READY=1' in m.split('\n'), 15, 'READY=1')
        harness.wait_until(lambda: notify.pump(0.5) is not None and
                           notify.messages.count('WATCHDOG=1') >= 3, 15, 'three pings')
        c = d.client(timeout=10.0)
        sscardd.journal_settled(d)

        # Marks of this test in the notify socket's queue: a datagram socket keeps the order in
        # which messages arrive, so what lies between two marks was sent between them.
        mark = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(mark.close)

        def put_mark(text):
            mark.sendto(text.encode(), notify.path)
            return notify.wait(lambda m: m == text, 10, text, start=len(notify.messages))

        db = sqlite3.connect(d.journal_path, timeout=10, isolation_level=None)
        self.addCleanup(db.close)
        db.execute('BEGIN IMMEDIATE')
        try:
            c.call('reader.list')              # answered; its audit row waits for the lock
            harness.wait_until(lambda: 'watchdog: the journal writer has been in one append'
                               in d.log_text(), 4, 'the stuck append in the log')
            # The log line is written where the ping is withheld: every ping sent before it is
            # already queued, before the first mark.
            i0 = put_mark('MARK=stuck')
            # The loop still answers while the writer waits.
            self.assertIn('version', c.call('system.info'))
            time.sleep(0.6)                    # three watchdog periods
            i1 = put_mark('MARK=still stuck')
        finally:
            db.execute('COMMIT')
        self.assertEqual([m for m in notify.messages[i0:i1] if m == 'WATCHDOG=1'], [],
                         notify.messages[i0:i1 + 1])
        # The append goes through once the lock is free, and the pings resume.
        notify.wait(lambda m: m == 'WATCHDOG=1', 10, 'WATCHDOG=1 after the lock', start=i1)
        harness.wait_until(lambda: 'watchdog: healthy again after' in d.log_text(), 10,
                           'the recovery line')
        self.assertIn('watchdog: the daemon is not healthy', d.log_text())
        rows = sscardd.journal_settled(d)
        self.assertIn('reader.list', [r['method'] for r in rows])
        self.assertEqual(c.call('system.info')['journal'], 'ok')
        d.stop()
        self.assertEqual(d.proc.returncode(), 0)


class ActivationRefused(sscardd.DaemonTestCase):
    """What the service manager may pass wrongly (docs/operations.md, "Socket activation"): two
    sockets, or one that is not a listening Unix stream socket, stop the daemon with exit 1 and a
    line that says what to fix; a socket at another path than [daemon] socket_path is served,
    with a warning that sscardctl will look at the configured one."""

    def activate(self, listen, extra=(), config=None):
        d = sscardd.Daemon(self.h, socket_name='conf.sock', config=config)
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        env = dict(os.environ)
        argv = ['systemd-socket-activate', *extra]
        for path in listen:
            argv += ['-l', path]
        for v in ('PCSCLITE_CSOCK_NAME', 'ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS'):
            if v in env or v == 'PCSCLITE_CSOCK_NAME':
                argv += ['-E', v]
        argv += [sscardd.daemon_binary(), '--foreground', '--config', d.config_path]
        d.proc = self.h.spawn('sscardd', argv, env=env)
        for path in listen:
            harness.wait_until(lambda: os.path.exists(path), 10, f'the socket {path}')
        return d

    def knock(self, path, kind=socket.SOCK_STREAM):
        """Connects until systemd-socket-activate listens (the daemon starts on it)."""
        def connect():
            s = socket.socket(socket.AF_UNIX, kind)
            try:
                s.connect(path)
                return s
            except ConnectionRefusedError:
                s.close()
                return None
        s = harness.wait_until(connect, 10, f'systemd-socket-activate to listen on {path}')
        self.addCleanup(s.close)
        return s

    def refused(self, d, line):
        d.proc.wait(15)
        self.assertEqual(d.proc.returncode(), 1, d.log_text()[-2000:])
        self.assertIn(line, d.log_text())
        self.assertNotIn('listening on', d.log_text())

    def test_two_sockets(self):
        self.h.start_pcscd()
        a, b = self.h.path('a.sock'), self.h.path('b.sock')
        d = self.activate([a, b])
        self.knock(a)
        self.refused(d, 'socket activation: 2 sockets passed, expected one (ListenStream= once '
                        'in sscardd.socket)')

    def test_not_a_stream_socket(self):
        self.h.start_pcscd()
        a = self.h.path('seq.sock')
        d = self.activate([a], extra=['--seqpacket'])
        self.knock(a, socket.SOCK_SEQPACKET)
        self.refused(d, 'socket activation: the socket passed is not a listening Unix stream '
                        'socket (ListenStream=/run/sscard/sscardd.sock in sscardd.socket)')

    def test_other_path_than_configured(self):
        self.h.start_pcscd()
        a = self.h.path('passed.sock')
        d = self.activate([a])
        s = self.knock(a)
        s.close()
        c = sscardd.Client(a, timeout=10.0)
        self.addCleanup(c.close)
        self.assertIn('version', c.call('system.info', timeout=15.0))
        self.assertIn(f'the socket passed is {a}, not [daemon] socket_path {d.socket_path}: '
                      'sscardctl and clients that read the configuration look for the latter',
                      d.log_text())
        self.assertFalse(os.path.exists(d.socket_path))
        c.close()
        d.stop()
        self.assertEqual(d.proc.returncode(), 0)


def proc_ids(pid):
    ids = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('Uid', 'Gid', 'Groups'):
                ids[k] = v.split()
    return ids


class UserDrop(sscardd.DaemonTestCase):
    readers = 2

    def test_drops_to_user(self):
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        os.chmod(self.h.dir, 0o711)          # nobody must reach its journal's directory in here
        state = self.h.path('state')
        d = self.start_daemon(config={'daemon': {'user': 'nobody'},
                                      'journal': {'path': os.path.join(state, 'j.db')}})
        ids = proc_ids(d.pid)
        self.assertEqual(ids['Uid'], ['65534'] * 4)
        self.assertEqual(ids['Gid'], ['65534'] * 4)
        self.assertEqual(ids['Groups'], ['65534'])
        st = os.stat(state)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (65534, 65534, 0o750))
        c = d.client()
        self.assertEqual(c.call('system.info')['journal'], 'ok')
        d.wait_reader(c, self.h.reader_name(0), card=True, role='user', timeout=15)
        self.assertEqual(c.call('card.read_basic', timeout=15)['name'], '张三')
        self.assertEqual(os.stat(os.path.join(state, 'j.db')).st_uid, 65534)
        # Without root, the daemon may not read another user's /proc/PID/exe (as under the
        # unit, User=sscard with no capability): the log shows "?" and the audit rows nothing for this
        # test's client (root), as docs/security.md says; the uid and pid are the kernel's.
        rows = sscardd.journal_settled(d)
        read = [r for r in rows if r['method'] == 'card.read_basic']
        self.assertEqual(len(read), 1)
        self.assertEqual((read[0]['uid'], read[0]['pid'], read[0]['exe']), (0, os.getpid(), ''))
        self.assertRegex(d.log_text(), rf'connected: uid 0 gid 0 pid {os.getpid()} exe \?\n')
        log = d.log_text()
        self.assertIn('running as user nobody (uid 65534 gid 65534)', log)
        # The socket was made as root, before the drop.
        self.assertLess(log.index('listening on'), log.index('running as user nobody'))
        d.stop()
        self.assertEqual(d.proc.returncode(), 0)

    def test_root_user(self):
        # user = root would drop nothing: refused, before any reader or journal is used.
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h, config={'daemon': {'user': 'root'}})
        with self.assertRaises(harness.HarnessError):
            d.start(timeout=10)
        d.proc.wait(10)
        self.assertEqual(d.proc.returncode(), 1)
        self.assertIn('[daemon] user "root" is root: set an unprivileged user (sscard)',
                      d.log_text())
        self.assertFalse(os.path.exists(d.journal_path))

    def test_unknown_user(self):
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h, config={'daemon': {'user': 'no-such-user-here'}})
        with self.assertRaises(harness.HarnessError):
            d.start(timeout=10)
        d.proc.wait(10)
        self.assertEqual(d.proc.returncode(), 1)
        self.assertIn('[daemon] user "no-such-user-here": no such user', d.log_text())


if __name__ == '__main__':
    unittest.main()
