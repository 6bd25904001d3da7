"""End-to-end test harness for sscard: a private pcscd with vpcd readers, simulated cards, PC/SC.

Each test gets, under one per-test directory:

* a **namespace holder**: a process in its own mount and network namespace (``unshare -m -n
  --propagation private``) with ``lo`` up and a private directory bound over ``/run/pcscd``;
* a **private pcscd** (:class:`Pcscd`) run inside that namespace with its own reader.conf directory:
  N vpcd entries, each with its own copy of ``libifdvpcd.so`` and its own CHANNELID, so 2*N readers
  ("slots") listening on ``base_port + slot`` *inside the namespace only* (vpcd listens on 0.0.0.0);
  it can be stopped and restarted in the same namespace (a restart is a new pcscd);
* **simulators** (:class:`Sim`): ``sscard-sim card|psam`` run inside the namespace's network (they
  must reach vpcd's ports), with a control socket for remove / insert / status / drop-after,
  optional state file, SIGSTOP / SIGCONT / kill -9 / restart;
* any other **process under test** (:meth:`Harness.spawn`), e.g. ``sscardd``, started inside the
  network namespace or outside it, always with ``PCSCLITE_CSOCK_NAME`` pointing at the private
  pcscd (clients reach pcscd through that Unix socket from any namespace);
* an in-process **PC/SC client** (:class:`PcscClient`, pyscard) with deadlines on every wait.

Teardown (also on failure, and when the test process dies: every child gets PR_SET_PDEATHSIG;
note that this fires when the *thread* that started the child exits, so start processes from the
test's main thread, not from a short-lived helper thread)
stops processes under test first, then simulators (pcscd takes 1.5 s to stop while a card is
connected), then pcscd, then the namespace holder; the namespace and its mounts vanish with their
last process. A watchdog kills everything when a test overruns its deadline, so that a PC/SC call
blocked on a stopped simulator (``SCardTransmit`` has no timeout) returns instead of hanging.

Environment:

* ``SSC_BUILD_DIR``  build directory (default ``$SSC_SOURCE_DIR/build``)
* ``SSC_SOURCE_DIR`` source tree (default: two levels above this file)
* ``SSC_E2E_TMPDIR`` where per-test directories are created (default ``/tmp``)
* ``SSC_E2E_KEEP=1`` keep per-test directories (they are always kept, and logs printed, on failure)
* ``SSC_E2E_VERBOSE=1`` run simulators with ``--verbose`` and pcscd with ``-d -a``

Typical use::

    import harness

    class MyTest(harness.TestCase):          # a unittest.TestCase with self.h = Harness(...)
        readers = 2                          # vpcd slots (rounded up to an even number)

        def test_read(self):
            self.h.start_pcscd()
            self.h.start_card('gen3', slot=0)
            card = self.h.pcsc().connect(self.h.reader_name(0))   # waits for the card
            data, sw = card.transmit('00A4040006D15600000590')

Needs root (namespaces, bind mount), util-linux (unshare, nsenter), iproute2, pcscd and
vsmartcard-vpcd; pyscard only for :class:`PcscClient`.
"""

import atexit
import ctypes
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# Absolute: a process started inside the namespace's mount namespace starts in its root directory.
SOURCE_DIR = os.path.abspath(os.environ.get('SSC_SOURCE_DIR') or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_DIR = os.path.abspath(os.environ.get('SSC_BUILD_DIR') or os.path.join(SOURCE_DIR, 'build'))
VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so'
PCSCD = '/usr/sbin/pcscd'
DEFAULT_BASE_PORT = 0x8C7B          # 35963, vpcd's own default; private to each namespace
SUN_PATH_MAX = 107                  # sockaddr_un.sun_path minus the terminating NUL
VERBOSE = os.environ.get('SSC_E2E_VERBOSE') == '1'


class HarnessError(Exception):
    """The harness could not set something up or a wait ran out of time."""


def sim_binary():
    """Path of the sscard-sim program in the build directory."""
    return os.path.join(BUILD_DIR, 'firmware-stubs', 'sscard-sim')


def profile_path(name):
    """A profile by name ('gen3' -> firmware-stubs/profiles/gen3.json) or an existing path."""
    if os.sep in name or name.endswith('.json'):
        return name
    return os.path.join(SOURCE_DIR, 'firmware-stubs', 'profiles', name + '.json')


def missing_requirements():
    """A list of what this machine lacks to run the end-to-end tests (empty when all is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append('root (namespaces and bind mounts)')
    for tool in ('unshare', 'nsenter', 'ip'):
        if not shutil.which(tool):
            missing.append(tool)
    for path in (PCSCD, VPCD_DRIVER, sim_binary()):
        if not os.path.exists(path):
            missing.append(path)
    return missing


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls predicate() until it returns a true value (returned) or raises HarnessError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f'timed out after {timeout:.1f} s waiting for {what}')
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Processes

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def library_mapped(pid, name):
    """Whether a shared library whose file name starts with name is mapped into process pid (the
    file name only: a test's directory, in the journal's mapped paths, may name the library)."""
    with open(f'/proc/{pid}/maps') as f:
        return any(os.path.basename(line.split()[-1]).startswith(name) and '.so' in line
                   for line in f if len(line.split()) >= 6)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies, so nothing outlives it."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """One child process with its output in a log file; every wait has a deadline."""

    def __init__(self, name, argv, log_path, env=None, stdout_pipe=False):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, 'ab')
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log, stderr=self._log,
            env=env, preexec_fn=_die_with_parent, start_new_session=True, close_fds=True)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def sigstop(self):
        self.signal(signal.SIGSTOP)

    def sigcont(self):
        self.signal(signal.SIGCONT)

    def wait(self, timeout):
        """Waits for the exit; returns the exit status (negative: killed by that signal)."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f'{self.name} (pid {self.pid}) still running after {timeout} s')

    def kill9(self):
        """SIGKILL and reap (a stopped process dies too)."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(timeout=10)
        self._close_log()

    def stop(self, timeout=5.0):
        """SIGTERM (after SIGCONT, in case it is stopped); SIGKILL if it outlives timeout."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            self.popen.send_signal(signal.SIGCONT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._close_log()
        return self.popen.returncode

    def _close_log(self):
        if self.popen.stdout:
            self.popen.stdout.close()
        if not self._log.closed:
            self._log.close()

    def log_text(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''


# ---------------------------------------------------------------------------------------------
# Namespace and pcscd

class Namespace:
    """A process holding a private mount + network namespace, with lo up and run_dir on /run/pcscd."""

    def __init__(self, workdir, run_dir):
        self.run_dir = run_dir
        os.makedirs('/run/pcscd', exist_ok=True)       # the bind target; the bind stays private
        script = ('ip link set lo up && mount --bind "$0" /run/pcscd && echo ready && '
                  'exec sleep infinity')
        self.holder = Proc('namespace', ['unshare', '-m', '-n', '--propagation', 'private',
                                         'sh', '-c', script, run_dir],
                           os.path.join(workdir, 'namespace.log'), stdout_pipe=True)
        ready, _, _ = select.select([self.holder.popen.stdout], [], [], 10)
        line = self.holder.popen.stdout.readline() if ready else b''
        if line.strip() != b'ready':
            self.holder.kill9()
            raise HarnessError('namespace setup failed: ' + self.holder.log_text())

    @property
    def pid(self):
        return self.holder.pid

    def enter_argv(self, argv, mount=False):
        """argv run inside the namespace's network (and mount namespace when mount is true)."""
        prefix = ['nsenter', f'--net=/proc/{self.pid}/ns/net']
        if mount:
            prefix.append(f'--mount=/proc/{self.pid}/ns/mnt')
        return prefix + ['--'] + list(argv)

    def listening_ports(self):
        """TCP ports in LISTEN state inside the namespace (read from /proc, no tool needed)."""
        ports = set()
        for name in ('tcp', 'tcp6'):
            try:
                with open(f'/proc/{self.pid}/net/{name}') as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if fields[3] == '0A':
                            ports.add(int(fields[1].rsplit(':', 1)[1], 16))
            except OSError:
                pass
        return ports

    def close(self):
        self.holder.kill9()


class Pcscd:
    """A private pcscd with 2 * entries vpcd readers ("slots"); slot k listens on base_port + k."""

    def __init__(self, ns, workdir, entries=1, base_port=DEFAULT_BASE_PORT, names=None,
                 debug=VERBOSE):
        self.ns = ns
        self.workdir = workdir
        self.run_dir = ns.run_dir
        self.entries = entries
        self.base_port = base_port
        self.names = names or [f'Virtual PCD {chr(ord("A") + i)}' for i in range(entries)]
        self.debug = debug
        self.proc = None
        self.starts = 0
        self.conf_dir = os.path.join(workdir, 'reader.conf.d')
        os.makedirs(self.conf_dir, exist_ok=True)
        for i in range(entries):
            # Entries that share one LIBPATH overwrite each other inside the driver: one copy each.
            lib = os.path.join(workdir, f'libifdvpcd-{i}.so')
            shutil.copyfile(VPCD_DRIVER, lib)
            port = base_port + 2 * i
            with open(os.path.join(self.conf_dir, f'vpcd-{i}'), 'w') as f:
                f.write(f'FRIENDLYNAME "{self.names[i]}"\nDEVICENAME /dev/null:{port}\n'
                        f'LIBPATH {lib}\nCHANNELID {port}\n')
        if len(self.socket_path) > SUN_PATH_MAX:
            raise HarnessError(f'socket path too long for sockaddr_un: {self.socket_path}')

    @property
    def slots(self):
        return 2 * self.entries

    @property
    def socket_path(self):
        return os.path.join(self.run_dir, 'pcscd.comm')

    def port(self, slot):
        self._check_slot(slot)
        return self.base_port + slot

    def reader_name(self, slot):
        """pcscd's name for a slot: '<FRIENDLYNAME> 00 00' and '... 00 01' for the entry's two ports."""
        self._check_slot(slot)
        return f'{self.names[slot // 2]} 00 {slot % 2:02X}'

    def _check_slot(self, slot):
        if not 0 <= slot < self.slots:
            raise HarnessError(f'no slot {slot}: this pcscd has {self.slots}')

    def client_env(self, base=None):
        """An environment for a PC/SC client of this pcscd (any namespace)."""
        env = dict(os.environ if base is None else base)
        env['PCSCLITE_CSOCK_NAME'] = self.socket_path
        return env

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def start(self, timeout=10.0):
        """Starts pcscd in the namespace; returns when its socket exists and all vpcd ports listen."""
        if self.alive():
            raise HarnessError('pcscd is already running')
        # A pcscd killed with SIGKILL leaves its socket and pid file; a new one refuses to start.
        for leftover in ('pcscd.comm', 'pcscd.pid'):
            try:
                os.unlink(os.path.join(self.run_dir, leftover))
            except FileNotFoundError:
                pass
        self.starts += 1
        argv = [PCSCD, '-f', '-c', self.conf_dir] + (['-d', '-a'] if self.debug else [])
        self.proc = Proc('pcscd', self.ns.enter_argv(argv, mount=True),
                         os.path.join(self.workdir, 'pcscd.log'))
        ports = {self.base_port + k for k in range(self.slots)}

        def ready():
            if not self.proc.alive():
                raise HarnessError('pcscd exited: ' + self.proc.log_text()[-2000:])
            return os.path.exists(self.socket_path) and ports <= self.ns.listening_ports()
        wait_until(ready, timeout, 'pcscd socket and vpcd ports')

    def stop(self, timeout=5.0):
        """SIGTERM (SIGKILL after timeout). Stop the simulators first: with a card connected pcscd
        needs 1.5 s to exit."""
        if self.proc:
            self.proc.stop(timeout)

    def kill9(self):
        if self.proc:
            self.proc.kill9()

    def restart(self, timeout=10.0):
        """A new pcscd in the same namespace (same ports, same socket path)."""
        self.stop()
        self.start(timeout)


# ---------------------------------------------------------------------------------------------
# Simulators

class Sim:
    """One sscard-sim process (card or PSAM) on a pcscd slot, with a control socket.

    The arguments survive restart(): a restarted simulator loads the same state file, so what was
    acknowledged before a kill -9 must be there again."""

    def __init__(self, harness, role, profile, slot, state=None, drop_after=None,
                 apdu_delay_ms=None, absent=False, verbose=VERBOSE, extra_args=(), name=None):
        self.h = harness
        self.role = role
        self.profile = profile_path(profile)
        self.slot = slot
        self.port = harness.pcscd.port(slot)
        self.name = name or f'{role}{slot}'
        self.state_path = (os.path.join(harness.dir, f'{self.name}.state') if state is True
                           else state)
        self.control_path = os.path.join(harness.dir, f'{self.name}.ctl')
        self.drop_after = drop_after
        self.apdu_delay_ms = apdu_delay_ms
        self.absent = absent
        self.verbose = verbose
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0
        if len(self.control_path) > SUN_PATH_MAX:
            raise HarnessError(f'control socket path too long: {self.control_path}')

    def argv(self):
        a = [sim_binary(), self.role, '--port', str(self.port), '--profile', self.profile,
             '--control', self.control_path]
        if self.state_path:
            a += ['--state', self.state_path]
        if self.drop_after is not None:
            a += ['--drop-after', str(self.drop_after)]
        if self.apdu_delay_ms is not None:
            a += ['--apdu-delay-ms', str(self.apdu_delay_ms)]
        if self.absent:
            a.append('--absent')
        if self.verbose:
            a.append('--verbose')
        return a + self.extra_args

    def start(self, timeout=5.0):
        """Starts the simulator in the namespace's network; returns when its control socket answers."""
        if self.proc and self.proc.alive():
            raise HarnessError(f'{self.name} is already running')
        self.starts += 1
        self.proc = Proc(self.name, self.h.ns.enter_argv(self.argv()),
                         os.path.join(self.h.dir, f'{self.name}.log'))

        def ready():
            if not self.proc.alive():
                raise HarnessError(f'{self.name} exited with status {self.proc.returncode()}: '
                                   + self.proc.log_text()[-2000:])
            try:
                return self.status()
            except OSError:
                return None
        wait_until(ready, timeout, f'{self.name} control socket')
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self, timeout=5.0):
        if self.proc:
            return self.proc.stop(timeout)
        return None

    def kill9(self):
        if self.proc:
            self.proc.kill9()

    def restart(self, timeout=5.0, kill=False, wait_removed=True):
        """Stops (or kill -9s) and starts again with the same arguments and state file.

        A restart faster than pcscd's presence poll (~0.4 s) can go unnoticed: pcscd then keeps
        the old card's state and the next transmit fails. So, while pcscd runs, this waits until
        pcscd reports the slot empty before starting again (wait_removed=False skips that)."""
        self.kill9() if kill else self.stop()
        if wait_removed and self.h.pcscd.alive():
            self.h.wait_card(self.slot, present=False, timeout=timeout)
        return self.start(timeout)

    def sigstop(self):
        self.proc.sigstop()

    def sigcont(self):
        self.proc.sigcont()

    def toggle(self):
        """SIGUSR1: toggles presence (remove / insert)."""
        self.proc.signal(signal.SIGUSR1)

    def command(self, line, timeout=2.0):
        """Sends one control line and returns the answer line (deadline timeout)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control_path)
            s.sendall(line.encode() + b'\n')
            buf = b''
            while not buf.endswith(b'\n'):
                chunk = s.recv(512)
                if not chunk:
                    break
                buf += chunk
        return buf.decode().strip()

    def _ok(self, line):
        answer = self.command(line)
        if answer != 'ok':
            raise HarnessError(f'{self.name}: {line!r} answered {answer!r}')

    def remove(self):
        self._ok('remove')

    def insert(self):
        self._ok('insert')

    def arm_drop(self, n):
        """Drops the link when the n-th APDU from now arrives (unanswered); 0 disarms."""
        self._ok(f'drop-after {n}')

    def status(self):
        """The control socket's status as a dict: present (bool), link, apdus, generation, drop_left."""
        words = self.command('status').split()
        if not words or words[0] not in ('present', 'absent'):
            raise HarnessError(f'{self.name}: bad status answer {words!r}')
        st = {'present': words[0] == 'present'}
        for w in words[1:]:
            k, _, v = w.partition('=')
            st[k] = int(v) if v.isdigit() else v
        return st

    def state(self):
        """The simulator's state file, parsed (see docs/simulator.md "State files"): what the card
        holds, read without asking the card. None when there is no state file (yet)."""
        if not self.state_path or not os.path.exists(self.state_path):
            return None
        import json
        with open(self.state_path) as f:
            return json.load(f)

    def state_id(self):
        """(inode, mtime_ns) of the state file, or None: it changes with every save (a rename of
        a new file), so a poll of it sees the card persist a write even while the simulator
        sleeps in --apdu-delay-ms before answering."""
        try:
            st = os.stat(self.state_path)
        except (OSError, TypeError):
            return None
        return st.st_ino, st.st_mtime_ns

    def link_rx_queue(self):
        """Bytes vpcd sent on the simulator's link that the simulator has not read yet (None when
        no link is established), from the namespace's /proc/net/tcp. Works while the simulator
        is stopped (SIGSTOP), when its control socket cannot answer: 3 bytes queued is a pending
        presence poll (GET ATR, 00 01 04), more is an APDU."""
        try:
            with open(f'/proc/{self.h.ns.pid}/net/tcp') as f:
                next(f)
                for line in f:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(':', 1)[1], 16)
                    if remote_port == self.port and fields[3] == '01':    # ESTABLISHED
                        return int(fields[4].split(':')[1], 16)
        except OSError:
            pass
        return None

    def wait_link(self, up=True, timeout=5.0):
        """Waits until the simulator's TCP link to vpcd is up (or down)."""
        wait_until(lambda: (self.status()['link'] == 'up') == up, timeout,
                   f'{self.name} link {"up" if up else "down"}')


# ---------------------------------------------------------------------------------------------
# In-process PC/SC client (pyscard)

class PcscError(Exception):
    """A PC/SC call failed; hr is the SCARD_* code (None when PC/SC reported success but the
    answer was unusable), name its symbolic name."""

    def __init__(self, call, hr, detail=None):
        from smartcard import scard
        self.call = call
        self.hr = None if hr is None else hr & 0xFFFFFFFF
        if self.hr is None:
            self.name = detail or 'unusable answer'
            super().__init__(f'{call}: {self.name}')
            return
        self.name = next((n for n in dir(scard) if n.startswith(('SCARD_E_', 'SCARD_W_', 'SCARD_F_'))
                          and isinstance(getattr(scard, n), int)
                          and getattr(scard, n) & 0xFFFFFFFF == self.hr), hex(self.hr))
        super().__init__(f'{call}: {self.name} ({self.hr:#010x})')


_client_link_dir = None


def _point_client_at(socket_path):
    """libpcsclite reads PCSCLITE_CSOCK_NAME once per process and caches it. So the process-wide
    variable names a symlink in a per-process directory, re-pointed at the pcscd in use: tests that
    run one after another in one process can then each have their own pcscd."""
    global _client_link_dir
    if _client_link_dir is None:
        _client_link_dir = tempfile.mkdtemp(prefix='ssce2e-client-')
        atexit.register(shutil.rmtree, _client_link_dir, True)
    link = os.path.join(_client_link_dir, 'pcscd.comm')
    tmp = link + '.new'
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(socket_path, tmp)
    os.replace(tmp, link)
    os.environ['PCSCLITE_CSOCK_NAME'] = link


class Card:
    """A connected card (SCardConnect handle)."""

    def __init__(self, client, reader, handle, protocol):
        self.client = client
        self.reader = reader
        self.handle = handle
        self.protocol = protocol

    def transmit(self, apdu):
        """Sends an APDU (bytes or hex string, spaces allowed); returns (data bytes, sw int).
        Raises PcscError when PC/SC fails or the answer has no status word (card removed, reader
        gone ...). SCardTransmit itself has no timeout: the harness watchdog bounds it."""
        from smartcard import scard
        if isinstance(apdu, str):
            apdu = bytes.fromhex(apdu.replace(' ', ''))
        hr, resp = scard.SCardTransmit(self.handle, self.protocol, list(apdu))
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardTransmit', hr)
        if len(resp) < 2:
            # vpcd reports a card that vanished during the exchange as a successful empty answer.
            raise PcscError('SCardTransmit', None, f'answer of {len(resp)} bytes (card removed?)')
        return bytes(resp[:-2]), resp[-2] << 8 | resp[-1]

    def atr(self):
        """The card's ATR as pcscd reports it (SCardStatus)."""
        from smartcard import scard
        hr, _reader, _state, _protocol, atr = scard.SCardStatus(self.handle)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardStatus', hr)
        return bytes(atr)

    def reconnect(self, disposition=None):
        from smartcard import scard
        hr, self.protocol = scard.SCardReconnect(
            self.handle, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            scard.SCARD_RESET_CARD if disposition is None else disposition)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardReconnect', hr)

    def disconnect(self, disposition=None):
        from smartcard import scard
        if self.handle is not None:
            scard.SCardDisconnect(self.handle, scard.SCARD_LEAVE_CARD if disposition is None
                                  else disposition)
            self.handle = None


class PcscClient:
    """A PC/SC context on the harness's pcscd, in this process. Every wait takes a timeout."""

    def __init__(self, pcscd):
        from smartcard import scard
        self._scard = scard
        self.pcscd = pcscd
        _point_client_at(pcscd.socket_path)
        hr, self.ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardEstablishContext', hr)
        self.cards = []

    def readers(self):
        scard = self._scard
        hr, readers = scard.SCardListReaders(self.ctx, [])
        if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardListReaders', hr)
        return list(readers)

    def card_present(self, reader):
        """True when pcscd reports a card in reader (one immediate status query)."""
        scard = self._scard
        hr, states = scard.SCardGetStatusChange(self.ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardGetStatusChange', hr)
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)

    def wait_reader(self, reader, timeout=5.0):
        wait_until(lambda: reader in self.readers(), timeout, f'reader {reader!r}')

    def wait_card(self, reader, present=True, timeout=5.0):
        """Waits until pcscd sees a card in reader (or none). pcscd polls vpcd every ~0.4 s."""
        self.wait_reader(reader, timeout)
        scard = self._scard
        deadline = time.monotonic() + timeout
        state = scard.SCARD_STATE_UNAWARE
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            hr, states = scard.SCardGetStatusChange(self.ctx, max(left_ms, 0), [(reader, state)])
            if hr == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if bool(state & scard.SCARD_STATE_PRESENT) == present and \
                        not (present and state & scard.SCARD_STATE_MUTE):
                    return
            elif hr != scard.SCARD_E_TIMEOUT:
                raise PcscError('SCardGetStatusChange', hr)
            if time.monotonic() >= deadline:
                raise HarnessError(f'timed out after {timeout} s waiting for the card in '
                                   f'{reader!r} to be {"present" if present else "absent"}')

    def connect(self, reader, timeout=5.0, wait=True):
        """Waits for a card in reader (unless wait is false) and connects (shared, T=0|T=1)."""
        scard = self._scard
        if wait:
            self.wait_card(reader, True, timeout)
        hr, handle, protocol = scard.SCardConnect(self.ctx, reader, scard.SCARD_SHARE_SHARED,
                                                  scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if hr != scard.SCARD_S_SUCCESS:
            raise PcscError('SCardConnect', hr)
        card = Card(self, reader, handle, protocol)
        self.cards.append(card)
        return card

    def close(self):
        for card in self.cards:
            try:
                card.disconnect()
            except Exception:
                pass
        self.cards = []
        if self.ctx is not None:
            self._scard.SCardReleaseContext(self.ctx)
            self.ctx = None


# ---------------------------------------------------------------------------------------------
# The per-test fixture

class Harness:
    """Everything one test runs: a per-test directory, the namespace, pcscd, simulators, other
    processes and PC/SC clients. close() (registered with the TestCase when one is given) tears it
    all down in the right order."""

    def __init__(self, testcase=None, readers=2, base_port=DEFAULT_BASE_PORT, names=None,
                 deadline=120.0, name=None):
        missing = missing_requirements()
        if missing:
            raise HarnessError('cannot run end-to-end tests, missing: ' + ', '.join(missing))
        label = name or (testcase.id().rsplit('.', 1)[-1] if testcase else 'e2e')
        base = os.environ.get('SSC_E2E_TMPDIR', '/tmp')
        self.dir = tempfile.mkdtemp(prefix=f'ssce2e-{label[:24]}-', dir=base)
        self.keep = os.environ.get('SSC_E2E_KEEP') == '1'
        self.failed = False
        self.sims = []
        self.procs = []
        self.clients = []
        self._client = None
        self._client_pcscd_start = 0
        self.ns = None
        self.pcscd = None
        self._lock = threading.Lock()
        self._closed = False
        self._expired = False
        if testcase is not None:
            testcase.addCleanup(self.close)
        try:
            run_dir = os.path.join(self.dir, 'run')
            os.makedirs(run_dir)
            self.ns = Namespace(self.dir, run_dir)
            self.pcscd = Pcscd(self.ns, self.dir, entries=(readers + 1) // 2, base_port=base_port,
                               names=names)
        except BaseException:
            self.close()
            raise
        self._watchdog = threading.Thread(target=self._watch, args=(deadline,), daemon=True)
        self._watchdog.start()

    # -- building blocks
    def start_pcscd(self, timeout=10.0):
        self.pcscd.start(timeout)
        return self.pcscd

    def reader_name(self, slot):
        return self.pcscd.reader_name(slot)

    def sim(self, role, profile, slot, **kw):
        """A simulator, not yet started (see Sim for the keyword arguments)."""
        s = Sim(self, role, profile, slot, **kw)
        with self._lock:
            self.sims.append(s)
        return s

    def start_card(self, profile, slot=0, **kw):
        return self.sim('card', profile, slot, **kw).start()

    def start_psam(self, profile, slot=1, **kw):
        return self.sim('psam', profile, slot, **kw).start()

    def spawn(self, name, argv, in_netns=False, env=None, pcsc=True, in_mountns=False):
        """Starts a process under test (e.g. sscardd) with its output in <dir>/<name>.log.
        in_netns: run it inside the namespace's network (it then sees vpcd's ports and nothing of
        the machine's network). in_mountns: inside the namespace's network and mount namespace
        (it then sees mounts made with ns_mount(), e.g. a small tmpfs). pcsc: point
        PCSCLITE_CSOCK_NAME at the private pcscd."""
        env = dict(os.environ if env is None else env)
        if pcsc:
            env = self.pcscd.client_env(env)
        if in_mountns:
            full = self.ns.enter_argv(argv, mount=True)
        else:
            full = self.ns.enter_argv(argv) if in_netns else list(argv)
        p = Proc(name, full, os.path.join(self.dir, f'{name}.log'), env=env)
        with self._lock:
            self.procs.append(p)
        return p

    def ns_run(self, argv, timeout=20.0):
        """Runs argv to completion inside the namespace's mount (and network) namespace; returns
        its stdout. HarnessError when it fails. E.g. ns_run(['mount', '-t', 'tmpfs', ...])."""
        p = subprocess.run(self.ns.enter_argv(argv, mount=True), capture_output=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise HarnessError(f'{argv} failed ({p.returncode}): '
                               f'{p.stderr.decode("utf-8", "replace")}')
        return p.stdout.decode('utf-8', 'replace')

    def ns_mount(self, path, fstype='tmpfs', options='size=1m'):
        """Mounts a file system (a tmpfs by default) on the directory path (created if missing)
        inside the namespace only: it vanishes with the namespace, even when the test dies.
        Processes started with spawn(..., in_mountns=True) see it; from outside the namespace,
        its files are reached through ns_path(path)."""
        os.makedirs(path, exist_ok=True)
        self.ns_run(['mount', '-t', fstype, '-o', options, fstype, path])

    def ns_path(self, path):
        """The path, as the namespace's mount namespace sees it, reached from outside it
        (/proc/PID/root/...): the files of a tmpfs mounted with ns_mount()."""
        return f'/proc/{self.ns.pid}/root' + os.path.abspath(path)

    def pcsc(self):
        """A new in-process PC/SC client of this harness's pcscd (closed at teardown)."""
        c = PcscClient(self.pcscd)
        self.clients.append(c)
        return c

    def wait_card(self, slot, present=True, timeout=5.0):
        """Waits until pcscd reports a card in slot (or none), through a client of the harness's
        own (re-created after a pcscd restart)."""
        if self._client is None or self._client_pcscd_start != self.pcscd.starts:
            if self._client is not None:
                self._client.close()
            self._client = self.pcsc()
            self._client_pcscd_start = self.pcscd.starts
        self._client.wait_card(self.reader_name(slot), present, timeout)

    def path(self, name):
        """A path inside the per-test directory."""
        return os.path.join(self.dir, name)

    # -- teardown
    def _watch(self, deadline):
        end = time.monotonic() + deadline
        while not self._closed:
            if time.monotonic() >= end:
                self._expired = True
                sys.stderr.write(f'harness: test overran its {deadline:.0f} s deadline; killing its '
                                 f'processes so that blocked calls return ({self.dir})\n')
                self._kill_all()
                return
            time.sleep(0.2)

    def _kill_all(self):
        with self._lock:
            procs = list(self.procs)
            sims = list(self.sims)
        for p in procs:
            p.kill9()
        for s in sims:
            s.kill9()
        if self.pcscd:
            self.pcscd.kill9()
        if self.ns:
            self.ns.close()

    def logs(self, tail=4000):
        """The tails of every log in the per-test directory, for failure reports."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith('.log'):
                with open(os.path.join(self.dir, name), 'rb') as f:
                    text = f.read().decode('utf-8', 'replace')
                out.append(f'----- {name} (last {tail} chars) -----\n{text[-tail:]}')
        return '\n'.join(out)

    def close(self):
        """Stops everything (processes under test, simulators, pcscd, namespace) and removes the
        per-test directory unless the test failed or SSC_E2E_KEEP=1. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        for p in self.procs:
            p.stop()
        for s in self.sims:
            s.stop()
        if self.pcscd:
            self.pcscd.stop()
        if self.ns:
            self.ns.close()
        if self.failed or self._expired:
            sys.stderr.write(f'harness: keeping {self.dir}\n{self.logs()}\n')
        elif not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class TestCase(unittest.TestCase):
    """A unittest.TestCase with self.h, a fresh Harness per test (class attributes: readers,
    deadline). On failure the per-test directory is kept and the logs are printed."""

    readers = 2
    deadline = 120.0

    def setUp(self):
        self.h = Harness(None, readers=self.readers, deadline=self.deadline,
                         name=self.id().rsplit('.', 1)[-1])
        self.addCleanup(self._close_harness)

    def _close_harness(self):
        self.h.failed = self._test_failed()
        self.h.close()

    def _test_failed(self):
        outcome = getattr(self, '_outcome', None)
        if getattr(outcome, 'expectedFailure', None):
            return False          # a known bug (unittest.expectedFailure): no logs, no kept dir
        result = getattr(outcome, 'result', None)
        if result is None:
            return False
        for kind in ('errors', 'failures'):
            for test, _ in getattr(result, kind, []):
                if test is self:
                    return True
        # Python >= 3.11 records the outcome of the test body before the cleanups run.
        return not getattr(outcome, 'success', True)
