"""sscardd under test: a daemon with a generated configuration, and JSON-RPC clients of its socket.

* :class:`Daemon` starts ``sscardd --foreground`` through a :class:`harness.Harness` (so it talks to
  that harness's private pcscd and is stopped at teardown), with a configuration file written into
  the per-test directory: the API socket, the journal and anything a test overrides (short
  timeouts, limits, reader roles, ``socket_group``).
* :class:`Client` is one connection to the API socket: newline-delimited JSON-RPC 2.0 with request
  ids, replies matched by id (they may come out of order), a queue of ``event`` notifications for
  ``events.subscribe``, raw-bytes sending for malformed input, and a deadline on every wait.
* :class:`RpcError` is a JSON-RPC error answer, with its ``data`` (``name``, ``std_code``, ``sw``,
  ``retries_left``, ``reader``) as attributes.

Typical use::

    import harness, sscardd

    class T(harness.TestCase):
        def test_read(self):
            self.h.start_pcscd()
            self.h.start_card('gen2', slot=0)
            d = sscardd.Daemon(self.h, op_timeout_ms=3000).start()
            c = d.client()
            d.wait_reader(c, self.h.reader_name(0), card=True, role='user')
            basic = c.call('card.read_basic')
"""

import collections
import errno
import json
import os
import select
import socket
import time

import harness

DEFAULT_TIMEOUT = 15.0


def daemon_binary():
    """Path of sscardd in the build directory."""
    return os.path.join(harness.BUILD_DIR, 'src', 'sscardd')


def ctl_binary():
    """Path of sscardctl in the build directory."""
    return os.path.join(harness.BUILD_DIR, 'src', 'sscardctl')


class RpcError(Exception):
    """A JSON-RPC error answer. data is the error's data object ({} when it has none)."""

    def __init__(self, error, msg_id=None):
        self.error = error
        self.id = msg_id
        self.code = error.get('code')
        self.message = error.get('message')
        self.data = error.get('data') or {}
        self.name = self.data.get('name')
        self.std_code = self.data.get('std_code')
        self.sw = self.data.get('sw')
        self.retries_left = self.data.get('retries_left')
        self.reader = self.data.get('reader')
        super().__init__(f'{self.code} {self.name}: {self.message} (data {self.data})')


class Closed(Exception):
    """The daemon closed the connection (EOF or reset) while the client waited for something."""


class Client:
    """One connection to the daemon's socket. Not thread-safe: use one per thread.

    Every wait has a deadline (seconds); on expiry it raises harness.HarnessError. Replies are
    kept by id until asked for; notifications (messages with a method) go to self.events."""

    def __init__(self, path, timeout=5.0, sock=None):
        self.path = path
        self.events = collections.deque()
        self.replies = {}            # id -> the whole reply message
        self.null_replies = []       # replies with "id": null (parse errors, limits)
        self.raw_lines = []          # every line received, as bytes (kept for checks)
        self.eof = False
        self._buf = b''
        self._next_id = 1
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.sock.setblocking(False)

    # -- sending
    def new_id(self):
        i = self._next_id
        self._next_id += 1
        return i

    def send_raw(self, data, timeout=5.0):
        """Sends bytes as they are (no newline added). Raises Closed when the daemon hung up."""
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError(f'sending {len(data)} bytes: still {len(view)} to go '
                                           f'after {timeout} s')
            _, w, _ = select.select([], [self.sock], [], left)
            if not w:
                continue
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError) as e:
                raise Closed(f'daemon closed the connection while we sent: {e}') from e
            view = view[n:]

    def send(self, message):
        """Sends one message (a dict, serialised on one line)."""
        self.send_raw(json.dumps(message, ensure_ascii=False).encode() + b'\n')

    def request(self, method, params=None, msg_id=None):
        """Sends a request without waiting; returns its id."""
        if msg_id is None:
            msg_id = self.new_id()
        m = {'jsonrpc': '2.0', 'id': msg_id, 'method': method}
        if params is not None:
            m['params'] = params
        self.send(m)
        return msg_id

    # -- receiving
    def _read_some(self, deadline):
        """Reads what is there (waiting until deadline for something). Returns False at EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return True
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            chunk = b''
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        while b'\n' in self._buf:
            line, self._buf = self._buf.split(b'\n', 1)
            self._dispatch(line)
        return True

    def _dispatch(self, line):
        self.raw_lines.append(line)
        msg = json.loads(line.decode('utf-8'))
        if 'method' in msg:
            self.events.append(msg)
        elif msg.get('id') is None:
            self.null_replies.append(msg)
        else:
            self.replies[msg['id']] = msg

    def read_available(self):
        """Reads and dispatches what has arrived, without waiting. Returns False at EOF."""
        while not self.eof:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                self.eof = True
                return False
            self._buf += chunk
            while b'\n' in self._buf:
                line, self._buf = self._buf.split(b'\n', 1)
                self._dispatch(line)
        return False

    def pump(self, timeout=0.0):
        """Reads whatever arrives within timeout (dispatching it); returns False once at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if self.eof:
                return False
            if not self._read_some(deadline) or time.monotonic() >= deadline:
                return not self.eof

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value is not None:
                return value
            if self.eof:
                raise Closed(f'daemon closed the connection while we waited for {what}')
            if time.monotonic() >= deadline:
                raise harness.HarnessError(f'timed out after {timeout:.1f} s waiting for {what}')
            self._read_some(deadline)

    def reply(self, msg_id, timeout=DEFAULT_TIMEOUT):
        """The whole reply message to request msg_id (waits for it)."""
        return self._wait(lambda: self.replies.pop(msg_id, None), timeout, f'reply {msg_id!r}')

    def null_reply(self, timeout=5.0):
        """The next reply with "id": null (parse errors and the like)."""
        return self._wait(lambda: self.null_replies.pop(0) if self.null_replies else None,
                          timeout, 'a reply with id null')

    def result(self, msg_id, timeout=DEFAULT_TIMEOUT):
        """The result of request msg_id; raises RpcError for an error answer."""
        m = self.reply(msg_id, timeout)
        if 'error' in m:
            raise RpcError(m['error'], msg_id)
        return m['result']

    def call(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """Request + result (RpcError for an error answer)."""
        return self.result(self.request(method, params), timeout)

    def call_error(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """Request that must fail: returns its RpcError (AssertionError when it succeeded)."""
        try:
            r = self.call(method, params, timeout)
        except RpcError as e:
            return e
        raise AssertionError(f'{method} {params} succeeded, an error was expected: {r}')

    def next_event(self, timeout=5.0, type=None, reader=None):
        """The params of the next event notification matching type and reader (others that come
        before it are discarded)."""
        def match():
            while self.events:
                p = self.events.popleft().get('params') or {}
                if (type is None or p.get('type') == type) and \
                        (reader is None or p.get('reader') == reader):
                    return p
            return None
        return self._wait(match, timeout, f'event {type or "(any)"} {reader or ""}')

    def subscribe(self):
        r = self.call('events.subscribe', timeout=5.0)
        if r != {'subscribed': True}:
            raise harness.HarnessError(f'events.subscribe answered {r}')

    def wait_closed(self, timeout=5.0):
        """Waits until the daemon closes the connection (EOF); data before it is dispatched."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() >= deadline:
                raise harness.HarnessError(f'connection still open after {timeout} s')
            self._read_some(deadline)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def gather(pending, timeout=DEFAULT_TIMEOUT):
    """Waits, with one select() over all the clients, for the replies to pending {client: [ids]};
    returns {(client, id): reply message}. HarnessError at the deadline (listing what is missing),
    Closed if a client's connection ends first."""
    want = {(c, i) for c, ids in pending.items() for i in ids}
    got = {}
    deadline = time.monotonic() + timeout
    while True:
        for c, i in list(want):
            if i in c.replies:
                got[(c, i)] = c.replies.pop(i)
                want.discard((c, i))
            elif c.eof:
                raise Closed(f'connection to {c.path} closed before reply {i!r}')
        if not want:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            raise harness.HarnessError(f'{len(want)} replies still missing after {timeout} s')
        socks = {c.sock: c for c, _ in want}
        r, _, _ = select.select(list(socks), [], [], left)
        for s in r:
            socks[s].read_available()


def ini_text(sections):
    """An INI file from {section: {key: value}} (values written as they are)."""
    out = []
    for sec, keys in sections.items():
        out.append(f'[{sec}]')
        for k, v in keys.items():
            out.append(f'{k} = {v}')
        out.append('')
    return '\n'.join(out)


class Daemon:
    """sscardd started through a Harness, with a configuration file in the per-test directory.

    config: {section: {key: value}} merged over the defaults written here ([daemon] socket_path
    and socket_group = "" (leave the group alone), [journal] path). Convenience keywords:
    op_timeout_ms, apdu_timeout_ms, log_level ('debug' logs every PC/SC transmit error).
    wrap: a command the daemon's argv is appended to (e.g. ['prlimit', '--nofile=64:64'] or
    setpriv as another uid); it must exec the daemon, so that pid is the daemon's. env: its
    environment (default: the test's)."""

    def __init__(self, h, config=None, op_timeout_ms=None, apdu_timeout_ms=None,
                 log_level='debug', name='sscardd', socket_name='sscardd.sock', extra_args=(),
                 in_mountns=False, wrap=(), env=None):
        self.h = h
        self.env = env                   # the daemon's environment (None: the test's own)
        self.wrap = list(wrap)
        self.in_mountns = in_mountns     # run inside the harness's mount namespace (ns_mount)
        self.name = name
        self.socket_path = h.path(socket_name)
        if len(self.socket_path) > harness.SUN_PATH_MAX:
            raise harness.HarnessError(f'socket path too long: {self.socket_path}')
        self.config_path = h.path(f'{name}.conf')
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.sections = {
            'daemon': {'socket_path': self.socket_path, 'socket_group': ''},
            'journal': {'path': h.path(f'{name}-journal.db')},
        }
        if op_timeout_ms is not None:
            self.sections.setdefault('timeouts', {})['op_timeout_ms'] = op_timeout_ms
        if apdu_timeout_ms is not None:
            self.sections.setdefault('timeouts', {})['apdu_timeout_ms'] = apdu_timeout_ms
        for sec, keys in (config or {}).items():
            self.sections.setdefault(sec, {}).update(keys)
        self.proc = None
        self.clients = []

    def argv(self):
        a = [*self.wrap, daemon_binary(), '--foreground', '--socket', self.socket_path,
             '--config', self.config_path]
        if self.log_level:
            a += ['--log-level', self.log_level]
        return a + self.extra_args

    def start(self, timeout=10.0):
        """Writes the configuration, starts the daemon and waits until system.info answers."""
        with open(self.config_path, 'w') as f:
            f.write(ini_text(self.sections))
        self.proc = self.h.spawn(self.name, self.argv(), in_mountns=self.in_mountns, env=self.env)

        def ready():
            if not self.proc.alive():
                raise harness.HarnessError(f'sscardd exited with status {self.proc.returncode()}: '
                                           + self.proc.log_text()[-3000:])
            if not os.path.exists(self.socket_path):
                return None
            try:
                with Client(self.socket_path, timeout=1.0) as c:
                    return c.call('system.info', timeout=2.0)
            except (OSError, Closed, harness.HarnessError):
                return None
        self.info = harness.wait_until(ready, timeout, 'sscardd to answer system.info')
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def client(self, timeout=5.0):
        """A new connection (closed at teardown)."""
        c = Client(self.socket_path, timeout)
        self.clients.append(c)
        self.h.clients.append(_Closer(c))
        return c

    def log_text(self):
        return self.proc.log_text() if self.proc else ''

    def log_count(self, text):
        return self.log_text().count(text)

    @property
    def journal_path(self):
        """The journal's path as configured ([journal] path)."""
        return self.sections['journal']['path']

    def kill9(self):
        """SIGKILL: the daemon dies at once, with no shutdown (no last head line, no outcome)."""
        for c in self.clients:
            c.close()
        self.proc.kill9()

    def stop(self, timeout=5.0):
        for c in self.clients:
            c.close()
        return self.proc.stop(timeout) if self.proc else None

    # -- waiting for the daemon's view of the readers
    @staticmethod
    def readers(client):
        return client.call('reader.list', timeout=5.0)['readers']

    def reader(self, client, name):
        """The reader.list entry with this PC/SC name, or None."""
        return next((r for r in self.readers(client) if r['name'] == name), None)

    def wait_reader(self, client, name, timeout=10.0, **want):
        """Waits until reader.list has the reader called name with every field in want (e.g.
        card=True, role='user', busy=False); returns its entry."""
        def ok():
            r = self.reader(client, name)
            if r is not None and all(r.get(k) == v for k, v in want.items()):
                return r
            return None
        try:
            return harness.wait_until(ok, timeout, f'reader {name!r} with {want}', interval=0.05)
        except harness.HarnessError as e:
            raise harness.HarnessError(f'{e}; reader.list: {self.readers(client)}') from None

    def wait_readers(self, client, want, timeout=10.0):
        """want: {name: {field: value}}; waits for all of them; returns {name: entry}."""
        deadline = time.monotonic() + timeout
        out = {}
        for name, fields in want.items():
            out[name] = self.wait_reader(client, name, max(deadline - time.monotonic(), 0.1),
                                         **fields)
        return out


def ctl(*args, stdin=None, timeout=30, ns=None):
    """Runs sscardctl; returns (exit status, stdout, stderr). ns: a harness.Harness whose mount
    namespace it runs in (to reach a journal on a file system mounted there with ns_mount)."""
    import subprocess
    argv = [ctl_binary(), *args]
    if ns is not None:
        argv = ns.ns.enter_argv(argv, mount=True)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def journal_rows(db, ns=None):
    """Every row of the journal at db, through `sscardctl journal export` (a list of dicts)."""
    rc, out, err = ctl('journal', 'export', '--journal', db, ns=ns)
    if rc != 0:
        raise AssertionError(f'sscardctl journal export: exit {rc}: {err}')
    return [json.loads(line) for line in out.splitlines()]


_barriers = [0]


def journal_settled(daemon, timeout=5.0):
    """The journal's rows once every call answered so far is audited. Audit rows are written by
    a background thread just after each reply, in order; so the daemon is sent a request for a
    made-up method with a unique name (answered -32601, and audited under that name,
    docs/api.md), and the rows are read once its row is there."""
    _barriers[0] += 1
    marker = f'e2e.barrier_{os.getpid()}_{_barriers[0]}'
    with Client(daemon.socket_path) as c:
        m = c.reply(c.request(marker), timeout)
    if m.get('error', {}).get('code') != -32601:
        raise harness.HarnessError(f'{marker}: unexpected answer {m}')
    return harness.wait_until(
        lambda: (lambda rs: rs if any(r['method'] == marker for r in rs) else None)(
            journal_rows(daemon.journal_path)),
        timeout, 'the audit rows of the calls so far')


def journal_verify(db, log=None, ns=None):
    """`sscardctl journal verify` (with --log when given): (exit status, stdout + stderr)."""
    args = ['journal', 'verify', '--journal', db]
    if log:
        args += ['--log', log]
    rc, out, err = ctl(*args, ns=ns)
    return rc, out + err


def intents_and_outcomes(rows):
    """({intent seq: intent row}, {intent seq: [outcome rows]}) of journal rows."""
    intents = {r['seq']: r for r in rows if r['kind'] == 'intent'}
    outcomes = {}
    for r in rows:
        if r['kind'] == 'outcome':
            outcomes.setdefault(r['intent'], []).append(r)
    return intents, outcomes


class _Closer:
    """Adapts a Client to the harness's teardown (which calls close() on its PC/SC clients)."""

    def __init__(self, c):
        self.c = c

    def close(self):
        self.c.close()


def connect_error(path, timeout=2.0):
    """Tries to connect; returns None on success (the socket is closed again) or the errno."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        return None
    except OSError as e:
        return e.errno or errno.EIO
    finally:
        s.close()


def slot_id(slot):
    """The reader id sscardd gives harness slot k ("Virtual PCD A 00 00" ...), written out from the
    documented rule (docs/api.md: "<driver>-<slug>", lower case, runs of other characters -> '-'),
    not asked from the daemon: slot 0 -> pcsc-virtual-pcd-a-00-00, 3 -> pcsc-virtual-pcd-b-00-01."""
    return f'pcsc-virtual-pcd-{"abcdefgh"[slot // 2]}-00-{slot % 2:02d}'


class DaemonTestCase(harness.TestCase):
    """A harness.TestCase with helpers to start sscardd and wait for its readers."""

    maxDiff = None
    # [card] prefetch for the daemons of start_daemon(): None = the default (yes). 'no' for tests
    # whose every card.read_basic must talk to the card (the read path itself, its APDUs).
    prefetch = None

    def start_daemon(self, **kw):
        """Starts sscardd (keywords as for Daemon) and opens self.c, a subscribed client."""
        if self.prefetch is not None:
            config = {k: dict(v) for k, v in (kw.pop('config', None) or {}).items()}
            config.setdefault('card', {})['prefetch'] = self.prefetch
            kw['config'] = config
        self.d = Daemon(self.h, **kw).start()
        self.c = self.d.client()
        self.c.subscribe()
        return self.d

    def wait_roles(self, roles, timeout=10.0, client=None):
        """roles: {slot: 'user' | 'psam' | None (no card)}; waits until reader.list agrees."""
        want = {}
        for slot, role in roles.items():
            want[self.h.reader_name(slot)] = ({'card': False} if role is None
                                              else {'card': True, 'role': role, 'busy': False})
        return self.d.wait_readers(client or self.c, want, timeout)

    def assertRpcError(self, err, name, std_code=None, code=None):
        """err is an RpcError with data.name == name (and std_code / code when given)."""
        self.assertIsInstance(err, RpcError)
        self.assertEqual(err.name, name, f'error {err}')
        if std_code is not None:
            self.assertEqual(err.std_code, std_code, f'error {err}')
        if code is not None:
            self.assertEqual(err.code, code, f'error {err}')
