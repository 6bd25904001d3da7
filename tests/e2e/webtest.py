"""The browser bridge under test: sscard-web started beside a test's sscardd, and a WebSocket client
written here with the standard library (RFC 6455: the handshake, masked client frames, text, close,
ping), so that a test can send what no browser would: a forged Origin, a bad Host, a 10 MB frame, or
never read.

Typical use::

    import harness, sscardd, webtest

    class T(sscardd.DaemonTestCase):
        def test_pair(self):
            ...start pcscd, a card, then:
            d = webtest.start_daemon(self)            # sscardd with [web] bridge_user = nobody
            b = webtest.Bridge(self.h, d, origins=['http://counter.test']).start()
            code = webtest.pair_code(d, 'http://counter.test')
            ws = b.connect('http://counter.test')
            token = ws.call('bridge.pair', {'code': code})['token']
"""

import base64
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import time

import harness
import sscardd

BRIDGE_USER = 'nobody'


def bridge_binary():
    return os.path.join(harness.BUILD_DIR, 'web', 'sscard-web')


def static_dir(h=None):
    """The demo page's files. With h: a copy in h's directory, which the bridge (nobody) can read
    wherever the source tree is (a clone under a 0700 directory is out of its reach)."""
    src = os.path.join(harness.SOURCE_DIR, 'web', 'static')
    if h is None:
        return src
    dst = h.path('static')
    if not os.path.isdir(dst):
        shutil.copytree(src, dst)
        os.chmod(h.dir, os.stat(h.dir).st_mode | 0o111)
        for root, dirs, files in os.walk(dst):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
    return dst


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's choice; tests run side by side)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_daemon(tc, config=None, **kw):
    """sscardd for the bridge: [web] bridge_user = nobody, a socket nobody may use. Opens tc.c."""
    cfg = {'web': {'bridge_user': BRIDGE_USER}, 'daemon': {'socket_mode': '0666'}}
    for sec, keys in (config or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    # The bridge runs as nobody: it must reach the socket through the test's directory.
    os.chmod(tc.h.dir, 0o711)
    return tc.start_daemon(config=cfg, **kw)


def pair_code(daemon, origin):
    """`sscardctl web pair ORIGIN` as root: the code on its last line."""
    rc, out, err = sscardd.ctl('--socket', daemon.socket_path, 'web', 'pair', origin)
    if rc != 0:
        raise harness.HarnessError(f'sscardctl web pair: exit {rc}: {err}')
    return out.strip().splitlines()[-1]


class Bridge:
    """sscard-web as nobody on a free loopback port, its configuration in the test's directory."""

    def __init__(self, h, daemon, origins=(), policies=None, web=None, name='sscard-web'):
        self.h = h
        self.daemon = daemon
        self.port = free_port()
        self.name = name
        self.config_path = h.path(f'{name}.conf')
        self.web = {'listen': f'127.0.0.1:{self.port}', 'origins': ', '.join(origins),
                    'static_dir': static_dir(h), 'log_level': 'debug'}
        self.web.update(web or {})
        self.policies = policies or {}
        self.proc = None

    @property
    def own_origin(self):
        return f'http://127.0.0.1:{self.port}'

    def start(self, timeout=10.0):
        sections = {'web': self.web}
        for origin, methods in self.policies.items():
            sections[f'origin {origin}'] = {'methods': methods}
        with open(self.config_path, 'w') as f:
            f.write(sscardd.ini_text(sections))
        os.chmod(self.config_path, 0o644)
        argv = ['setpriv', f'--reuid={BRIDGE_USER}', '--regid=nogroup', '--clear-groups',
                bridge_binary(), '--foreground', '--config', self.config_path,
                '--socket', self.daemon.socket_path]
        self.proc = self.h.spawn(self.name, argv, pcsc=False)

        def ready():
            if not self.proc.alive():
                raise harness.HarnessError(f'sscard-web exited ({self.proc.returncode()}): '
                                           + self.proc.log_text()[-2000:])
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.5).close()
                return True
            except OSError:
                return None
        harness.wait_until(ready, timeout, 'sscard-web to listen')
        return self

    def log_text(self):
        return self.proc.log_text() if self.proc else ''

    def connect(self, origin, host=None, path='/v1', timeout=5.0, rcvbuf=None):
        """A WebSocket; raises Refused with the HTTP status when the handshake is refused."""
        return WebSocket(('127.0.0.1', self.port), origin,
                         host if host is not None else f'127.0.0.1:{self.port}', path, timeout,
                         rcvbuf)

    def http_get(self, path='/', host=None, timeout=5.0):
        """(status, headers dict, body bytes) of a plain HTTP GET."""
        s = socket.create_connection(('127.0.0.1', self.port), timeout=timeout)
        try:
            hv = host if host is not None else f'127.0.0.1:{self.port}'
            s.sendall(f'GET {path} HTTP/1.1\r\nHost: {hv}\r\nConnection: close\r\n\r\n'.encode())
            data = b''
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(':')
            headers[k.strip().lower()] = v.strip()
        return status, headers, body


class Refused(Exception):
    """The handshake was answered with an HTTP status other than 101 (or the connection closed)."""

    def __init__(self, status, text):
        self.status = status
        super().__init__(f'handshake refused: {status} {text[:200]!r}')


class ClosedByPeer(Exception):
    """The bridge closed the WebSocket: code and reason of its close frame (None when none)."""

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason
        super().__init__(f'closed by the bridge: {code} {reason!r}')


class WebSocket:
    """A WebSocket client connection (RFC 6455) with JSON-RPC helpers; every wait has a deadline."""

    def __init__(self, addr, origin, host, path, timeout, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.replies = {}
        self.closed = None
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f'GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n'
               f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
               f'Sec-WebSocket-Version: 13\r\n')
        if origin is not None:
            req += f'Origin: {origin}\r\n'
        self.sock.sendall((req + '\r\n').encode())
        end = time.monotonic() + timeout
        while b'\r\n\r\n' not in self.buf:
            if time.monotonic() > end:
                raise harness.HarnessError('no handshake answer')
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                self.sock.close()
                raise Refused(0, 'connection closed without an answer: ' + self.buf.decode(
                    'latin-1'))
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b'\r\n\r\n')
        status_line = head.split(b'\r\n')[0].decode('latin-1')
        status = int(status_line.split()[1])
        if status != 101:
            self.sock.close()
            raise Refused(status, head.decode('latin-1'))

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(frame(opcode, payload, fin))

    def send_text(self, text):
        self.send_frame(0x1, text.encode('utf-8'))

    def request(self, method, params=None, msg_id=None):
        if msg_id is None:
            self.next_id += 1
            msg_id = self.next_id
        m = {'jsonrpc': '2.0', 'id': msg_id, 'method': method}
        if params is not None:
            m['params'] = params
        self.send_text(json.dumps(m))
        return msg_id

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError('no message from the bridge in time')
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b''
            if not chunk:
                raise ClosedByPeer(None, 'connection closed')
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_message(self, timeout=10.0):
        """The next text message (str); ClosedByPeer at a close frame or EOF."""
        deadline = time.monotonic() + timeout
        text = b''
        while True:
            b0, b1 = self._read_exact(2, deadline)
            op, n = b0 & 0x0f, b1 & 0x7f
            if n == 126:
                n = struct.unpack('>H', self._read_exact(2, deadline))[0]
            elif n == 127:
                n = struct.unpack('>Q', self._read_exact(8, deadline))[0]
            payload = self._read_exact(n, deadline)
            if op == 0x8:
                code = struct.unpack('>H', payload[:2])[0] if len(payload) >= 2 else None
                self.closed = (code, payload[2:].decode('utf-8', 'replace'))
                raise ClosedByPeer(*self.closed)
            if op == 0x9:
                continue
            text += payload
            if b0 & 0x80:
                return text.decode('utf-8')

    def reply(self, msg_id, timeout=10.0):
        deadline = time.monotonic() + timeout
        while msg_id not in self.replies:
            m = json.loads(self.recv_message(max(0.01, deadline - time.monotonic())))
            if 'id' in m:
                self.replies[m['id']] = m
            else:
                self.events.append(m)
        return self.replies.pop(msg_id)

    def call(self, method, params=None, timeout=10.0):
        m = self.reply(self.request(method, params), timeout)
        if 'error' in m:
            raise sscardd.RpcError(m['error'], m.get('id'))
        return m['result']

    def call_error(self, method, params=None, timeout=10.0):
        m = self.reply(self.request(method, params), timeout)
        if 'error' not in m:
            raise AssertionError(f'{method}: expected an error, got {m}')
        return sscardd.RpcError(m['error'], m.get('id'))

    def next_event(self, timeout=10.0, type=None):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if type is None or e['params'].get('type') == type:
                    return self.events.pop(i)['params']
            m = json.loads(self.recv_message(max(0.01, deadline - time.monotonic())))
            if 'id' in m:
                self.replies[m['id']] = m
            else:
                self.events.append(m)

    def wait_closed(self, timeout=10.0):
        """The close (code, reason) the bridge sent, reading and dropping anything before it."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv_message(max(0.01, deadline - time.monotonic()))
        except ClosedByPeer as e:
            return e.code, e.reason

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def frame(opcode, payload, fin=True):
    """One client frame (masked, as RFC 6455 wants of a client): to send several in one write."""
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        hdr += bytes([0x80 | n])
    elif n < 65536:
        hdr += bytes([0x80 | 126]) + struct.pack('>H', n)
    else:
        hdr += bytes([0x80 | 127]) + struct.pack('>Q', n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 65536 else \
        _mask_big(payload, mask)
    return hdr + mask + masked


def _mask_big(payload, mask):
    """Masks a large payload quickly (int arithmetic on 4-byte words)."""
    n = len(payload)
    pad = (-n) % 4
    data = payload + b'\0' * pad
    m = int.from_bytes(mask * ((n + pad) // 4), 'big')
    out = (int.from_bytes(data, 'big') ^ m).to_bytes(n + pad, 'big')
    return out[:n]


def journal_web_rows(daemon):
    """The daemon's audit rows that came through the bridge: [(method, result, origin)]."""
    rows = sscardd.journal_settled(daemon)
    out = []
    for r in rows:
        d = r.get('detail')
        if isinstance(d, dict) and 'origin' in d:
            out.append((r['method'], r['result'], d['origin']))
    return out


def run(argv, timeout=30):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
