"""sscard: the Python client of sscardd, the social security card daemon (standard library only).

One connection to the daemon's socket (newline-delimited JSON-RPC 2.0, docs/api.md)::

    import sscard

    with sscard.connect() as c:                 # $SSCARD_SOCKET, else /run/sscard/sscardd.sock
        basic = c.read_basic()                  # dict: name, card_number, card_id, ...
        items = c.read_items('SSSE/EF06', ['09', '0A'])
        try:
            c.verify_pin('123456')
        except sscard.SscardError as e:         # e.name 'SSC_EPINWRONG', e.std_code -51, ...
            print(e.name, e.retries_left)
        c.subscribe()
        for event in c.events(timeout=60):      # {'type': 'card.inserted', 'reader': ...}
            ...

Rules (as libsscard's, docs/clients.md):

* Every call has a deadline (``timeout`` seconds, default the connection's, 20 s): no call hangs when
  the daemon stops answering; it raises SscardError with name ``SSC_ETIMEDOUT``.
* Errors are :class:`SscardError` with ``name`` (the stable ``SSC_E*`` name), ``code`` (the JSON-RPC
  code; 0 for failures of this module: ``SSC_EIO`` when the daemon cannot be reached or the
  connection broke, ``SSC_EPERM``, ``SSC_ETIMEDOUT``, ``SSC_EPROTO``), ``std_code``, ``sw``,
  ``retries_left``, ``reader`` and ``message``.
* Threads: a Client may be shared; its calls are serialised by a lock (each waits within its own
  deadline). Requests may be pipelined with :meth:`Client.send` and :meth:`Client.wait`.
* No global state; the module reads ``SSCARD_SOCKET`` in :func:`connect` only.
"""

import json
import os
import select
import socket
import threading
import time
from collections import deque

__all__ = ['SscardError', 'Client', 'connect', 'DEFAULT_SOCKET', 'DEFAULT_TIMEOUT']
__version__ = '0.1.0'

DEFAULT_SOCKET = '/run/sscard/sscardd.sock'
DEFAULT_TIMEOUT = 20.0          # seconds: the daemon's op_timeout_ms (10 s) plus its queue
MAX_LINE = 1024 * 1024          # longest answer line accepted
MAX_EVENTS = 1024               # unread events kept; older ones are dropped


class SscardError(Exception):
    """A failed call: the daemon's error answer, or this module's own failure (code 0)."""

    def __init__(self, name, message, code=0, std_code=None, sw=None, retries_left=None,
                 reader=None, data=None):
        self.name = name
        self.message = message
        self.code = code
        self.std_code = std_code
        self.sw = sw
        self.retries_left = retries_left
        self.reader = reader
        self.data = data or {}
        super().__init__(f'{name}: {message}')

    @classmethod
    def from_answer(cls, error):
        """The exception for a JSON-RPC error object. A -32601 without a name is SSC_ENOTFOUND,
        other protocol errors without one SSC_EPROTO."""
        data = error.get('data') if isinstance(error.get('data'), dict) else {}
        code = error.get('code', 0)
        name = data.get('name')
        if not name:
            name = 'SSC_ENOTFOUND' if code == -32601 else 'SSC_EPROTO'
        return cls(name, error.get('message', ''), code=code, std_code=data.get('std_code'),
                   sw=data.get('sw'), retries_left=data.get('retries_left'),
                   reader=data.get('reader'), data=data)


def _local(name, message):
    return SscardError(name, message, code=0)


class Client:
    """One connection to sscardd. Use :func:`connect`; close with :meth:`close` or ``with``."""

    def __init__(self, path=None, timeout=DEFAULT_TIMEOUT):
        self.path = path or os.environ.get('SSCARD_SOCKET') or DEFAULT_SOCKET
        self.timeout = timeout
        self._lock = threading.Lock()
        self._buf = b''
        self._next_id = 1
        self._pending = {}          # id -> answer (None until it arrives)
        self._events = deque()
        self._lost = False
        self._broken = None         # SscardError once the connection is unusable
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
        except FileNotFoundError as e:
            self._sock.close()
            raise _local('SSC_EIO', f'cannot connect to {self.path}: {e.strerror} (is sscardd '
                                    'running? SSCARD_SOCKET names another socket)') from None
        except ConnectionRefusedError as e:
            self._sock.close()
            raise _local('SSC_EIO', f'cannot connect to {self.path}: {e.strerror} (is sscardd '
                                    'running? SSCARD_SOCKET names another socket)') from None
        except PermissionError as e:
            self._sock.close()
            raise _local('SSC_EPERM', f'cannot connect to {self.path}: {e.strerror} (the socket '
                                      "is for the daemon's group, usually sscard)") from None
        except socket.timeout:
            self._sock.close()
            raise _local('SSC_ETIMEDOUT', f'cannot connect to {self.path}: no answer') from None
        except OSError as e:
            self._sock.close()
            raise _local('SSC_EIO', f'cannot connect to {self.path}: {e}') from None
        self._sock.setblocking(False)

    # -- the connection
    def close(self):
        """Closes the connection. Harmless twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if self._broken is None:
                self._broken = _local('SSC_EIO', 'the connection is closed')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self):
        """The socket's descriptor, for select()/poll(): readable when a message may be waiting.
        Events already read are in the queue: call next_event(0) until it returns None."""
        return self._sock.fileno() if self._sock is not None else -1

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _acquire(self, deadline):
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise _local('SSC_ETIMEDOUT', 'another call on this connection held it past this '
                                          "call's deadline")

    def _break(self, err):
        if self._broken is None:
            self._broken = err
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self._broken

    def _dispatch(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            raise self._break(_local('SSC_EPROTO', 'the daemon sent a line that is not JSON'))
        if not isinstance(msg, dict):
            raise self._break(_local('SSC_EPROTO', 'the daemon sent a line that is not an '
                                                   'object'))
        if 'method' in msg:
            if msg.get('method') == 'event' and isinstance(msg.get('params'), dict):
                if len(self._events) == MAX_EVENTS:
                    self._events.popleft()
                    self._lost = True
                self._events.append(msg['params'])
        elif msg.get('id') is None:
            if isinstance(msg.get('error'), dict):   # e.g. too many clients, then closed
                self._broken = SscardError.from_answer(msg['error'])
        elif msg['id'] in self._pending and self._pending[msg['id']] is None:
            self._pending[msg['id']] = msg

    def _pump(self, deadline):
        """Reads what comes before deadline (at least one wait) and dispatches whole lines.
        Returns True when something was read."""
        if self._sock is None:
            raise self._broken
        left = max(deadline - time.monotonic(), 0)
        r, _, _ = select.select([self._sock], [], [], left)
        if not r:
            return False
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            raise self._break(_local('SSC_EIO', f'the connection to the daemon broke: {e}'))
        if not data:
            raise self._break(_local('SSC_EIO', 'the daemon closed the connection'))
        self._buf += data
        while b'\n' in self._buf:
            line, self._buf = self._buf.split(b'\n', 1)
            if line.strip():
                self._dispatch(line)
        if len(self._buf) > MAX_LINE:
            raise self._break(_local('SSC_EPROTO', 'the daemon sent a line longer than '
                                                   'MAX_LINE'))
        return True

    def _send(self, method, params, deadline):
        if self._sock is None:
            raise self._broken
        if len(self._pending) >= 64:
            raise _local('SSC_ELIMIT', '64 requests are outstanding on this connection')
        msg_id = self._next_id
        req = {'jsonrpc': '2.0', 'id': msg_id, 'method': method}
        if params is not None:
            req['params'] = params
        data = bytearray(json.dumps(req, ensure_ascii=False, separators=(',', ':')).encode()
                         + b'\n')
        view = memoryview(data)
        try:
            while view:
                left = deadline - time.monotonic()
                _, w, _ = select.select([], [self._sock], [], max(left, 0))
                if not w:
                    if len(view) == len(data):
                        raise _local('SSC_ETIMEDOUT', 'the daemon did not read the request '
                                                      'before the deadline')
                    raise self._break(_local('SSC_ETIMEDOUT', 'the daemon did not read the '
                                                              'request before the deadline'))
                try:
                    n = self._sock.send(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise self._break(_local('SSC_EIO', f'sending to the daemon: {e}'))
                view = view[n:]
        finally:
            view.release()
            data[:] = bytes(len(data))   # the request may hold a PIN
        self._next_id += 1
        self._pending[msg_id] = None
        return msg_id

    def _wait(self, msg_id, deadline):
        if msg_id not in self._pending:
            raise _local('SSC_ENOTFOUND', f'request {msg_id} is not outstanding')
        while self._pending[msg_id] is None:
            if not self._pump(deadline) and time.monotonic() >= deadline:
                raise _local('SSC_ETIMEDOUT', 'no answer from the daemon before the deadline')
        msg = self._pending.pop(msg_id)
        if 'error' in msg:
            raise SscardError.from_answer(msg['error'] if isinstance(msg['error'], dict) else {})
        if 'result' not in msg:
            raise _local('SSC_EPROTO', "the daemon's answer has neither result nor error")
        return msg['result']

    # -- calls
    def call(self, method, params=None, timeout=None):
        """Calls method with params (a dict or None); returns the result. Raises SscardError."""
        deadline = self._deadline(timeout)
        self._acquire(deadline)
        try:
            msg_id = self._send(method, params, deadline)
            try:
                return self._wait(msg_id, deadline)
            finally:
                self._pending.pop(msg_id, None)   # a late answer is dropped on arrival
        finally:
            self._lock.release()

    def send(self, method, params=None):
        """Sends a request without waiting; returns its id for wait()."""
        deadline = self._deadline(None)
        self._acquire(deadline)
        try:
            return self._send(method, params, deadline)
        finally:
            self._lock.release()

    def wait(self, msg_id, timeout=None):
        """Waits for the answer to a request sent with send(); returns its result. A request
        whose wait timed out may be waited for again."""
        deadline = self._deadline(timeout)
        self._acquire(deadline)
        try:
            return self._wait(msg_id, deadline)
        finally:
            self._lock.release()

    # -- typed helpers (docs/api.md)
    @staticmethod
    def _params(reader, **kw):
        p = {k: v for k, v in kw.items() if v is not None}
        if reader is not None:
            p['reader'] = reader
        return p

    def info(self):
        return self.call('system.info')

    def readers(self):
        """reader.list's readers (a list of dicts)."""
        return self.call('reader.list')['readers']

    def read_basic(self, reader=None, internal_auth=None, verify_card_id=None):
        return self.call('card.read_basic', self._params(reader, internal_auth=internal_auth,
                                                         verify_card_id=verify_card_id))

    def read_items(self, file, items, reader=None, internal_auth=None):
        """The {tag: value} of items (tags like '09') of file (like 'SSSE/EF06')."""
        return self.call('card.read_items', self._params(reader, file=file, items=list(items),
                                                         internal_auth=internal_auth))['items']

    def write_items(self, file, items, reader=None):
        """Writes {tag: value}; returns the whole result (file, items, journal_id)."""
        return self.call('card.write_items', self._params(reader, file=file, items=dict(items)))

    def internal_auth(self, reader=None):
        """True when the card proved genuine (SscardError SSC_ENOTGENUINE when not)."""
        return self.call('card.internal_auth', self._params(reader))['genuine']

    def verify_pin(self, pin, reader=None):
        return self.call('card.verify_pin', self._params(reader, pin=pin))['verified']

    def change_pin(self, old_pin, new_pin, reader=None):
        return self.call('card.change_pin', self._params(reader, old_pin=old_pin,
                                                         new_pin=new_pin))['changed']

    def reload_pin(self, new_pin, reader=None):
        return self.call('card.reload_pin', self._params(reader, new_pin=new_pin))['reloaded']

    def unblock_pin(self, new_pin, reader=None):
        return self.call('card.unblock_pin', self._params(reader, new_pin=new_pin))['unblocked']

    def hsm_step1(self, reader=None):
        """Step 1 of the two-step read with the province's key server (card.hsm_step1): a dict
        with session, step1 (the string for the key server) and expires_in_ms. The reader stays
        held for the session until hsm_step2(), the card's removal or the expiry."""
        return self.call('card.hsm_step1', self._params(reader))

    def hsm_step2(self, session, key):
        """Step 2 (card.hsm_step2): key is the key server's answer ('C|DATA|'); returns what
        read_basic() returns. Any step 2, right or wrong, ends the session."""
        return self.call('card.hsm_step2', {'session': session, 'key': key})

    # -- the workflow methods (docs/workflows.md): each returns the method's whole result dict
    def claim_verify_holder(self, pin, reader=None, request_id=None):
        """claim.verify_holder: the card proved genuine and the PIN verified, with a receipt
        signed by the desk's key: {holder, genuine, pin_verified, receipt, signature,
        algorithm}. request_id only labels the receipt. A wrong PIN raises SSC_EPINWRONG with
        retries_left."""
        if pin is None:
            raise _local('SSC_EINVAL', 'the PIN is None')
        return self.call('claim.verify_holder', self._params(reader, pin=pin,
                                                             request_id=request_id))

    def medical_credentials(self, reader=None):
        """medical.credentials: the insured's identification in the platform's names
        (mdtrt_cert_no, certno, psn_name, insuplc_admdvs, ...) with a proof of the card."""
        return self.call('medical.credentials', self._params(reader))

    def medical_settle_offline(self, request_id, transaction, reader=None):
        """medical.settle_offline: transaction is a dict {time, institution, settlement_no,
        total, personal_account, pooled} (amounts in fen). request_id is required: repeat the
        call with the same one after a timeout. Returns {id, request_id, journal_id,
        transaction}."""
        if request_id is None:
            raise _local('SSC_EINVAL', 'request_id is None: an offline settlement needs one, '
                                       'so that a timeout can be retried safely')
        if not isinstance(transaction, dict):
            raise _local('SSC_EINVAL', 'the transaction is not a dict')
        return self.call('medical.settle_offline',
                         self._params(reader, request_id=request_id,
                                      transaction=dict(transaction)))

    def medical_pending(self, since=None):
        """medical.pending (no card): {settlements, flags}; since: only the settlements after
        that queue id."""
        return self.call('medical.pending', self._params(None, since=since))

    def medical_acknowledge(self, ids):
        """medical.acknowledge (no card): marks the queue ids uploaded, all or none; returns
        {acknowledged, newly}. Unknown ids raise SSC_ENOTFOUND (e.data['unknown'])."""
        ids = list(ids)
        if not ids:
            raise _local('SSC_EINVAL', 'no ids to acknowledge')
        return self.call('medical.acknowledge', {'ids': ids})

    def medical_clear_flag(self, reader=None, request_id=None):
        """medical.clear_flag: clears the card's offline-settlement flag; returns {cleared,
        was_set, journal_id?}. SSC_EMEDPENDING while settlements of the card wait here."""
        return self.call('medical.clear_flag', self._params(reader, request_id=request_id))

    # -- events
    def subscribe(self):
        """Asks for event notifications on this connection (events.subscribe)."""
        return self.call('events.subscribe')['subscribed']

    def next_event(self, timeout=0.0):
        """The oldest unread event (the notification's params, a dict), waiting at most timeout
        seconds (None: forever); None when none came. After dropped events, the next one has
        'lost': True."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._acquire(time.monotonic() + (1e9 if timeout is None else timeout + 1.0))
        try:
            while not self._events:
                if deadline is not None and time.monotonic() >= deadline:
                    # One look at what is already on the socket, even with timeout 0.
                    if not self._pump(deadline) or not self._events:
                        return None
                    break
                self._pump(deadline if deadline is not None else time.monotonic() + 3600)
            ev = self._events.popleft()
            if self._lost:
                ev = dict(ev, lost=True)
                self._lost = False
            return ev
        finally:
            self._lock.release()

    def events(self, timeout=None):
        """An iterator of events; it ends when none comes for timeout seconds (None: never)."""
        while True:
            ev = self.next_event(timeout)
            if ev is None:
                return
            yield ev


def connect(path=None, timeout=DEFAULT_TIMEOUT):
    """A connection to the daemon: path, else $SSCARD_SOCKET, else DEFAULT_SOCKET. Raises
    SscardError (SSC_EIO when no daemon listens there: at once)."""
    return Client(path, timeout)
