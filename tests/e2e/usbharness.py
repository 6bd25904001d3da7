"""USB end-to-end harness: the unmodified sscardd under ``usbtest`` (tests/usb/), which builds a
umockdev testbed with emulated USB CCID readers holding simulated cards and PSAMs, then runs the
daemon with ``LD_PRELOAD=libumockdev-preload.so.0`` so that its libusb sees them.

* :class:`UsbDaemon` is a :class:`sscardd.Daemon` whose process is ``usbtest --device SPEC ...
  --control SOCKET -- sscardd ...``; ``[drivers] usb = yes`` and ``pcsc = no`` unless asked
  (``pcsc=True`` for a configuration with both drivers, with the harness's private pcscd).
* :class:`Usb` is a client of usbtest's control socket: ``plug`` / ``unplug`` a device, ``insert``
  / ``remove`` a card, ``fault`` (``timeext seq trunc oversize stall mute clear`` on any device,
  ``lrc lost lostcmd wtx ns`` on the T=1 line of a slot), ``status`` (devices, slots, counters).
* :class:`UsbTestCase` starts one such daemon per test with a subscribed client, and finds the
  daemon's reader for (device, slot).

A device spec is what usbtest takes, e.g. ``name=a,mode=t1,slots=card:gen3+psam:gen3,serial=A1``
(modes ``apdu``, ``xapdu``, ``t0``, ``t1``; see ``usbtest --help``). Give every device a ``name``
and a ``product``-unique name: readers are matched to devices by the product string usbtest puts
in the USB descriptors ("Emulated CCID <name> (<mode>)"), which the daemon shows in the reader
name, and by slot ("slot N" / "-sN" on multi-slot devices).

Typical use::

    class T(usbharness.UsbTestCase):
        def test_read(self):
            self.start(['name=a,mode=t1,slots=card:gen2'])
            rid = self.wait_user('a')
            self.c.call('card.read_basic', {'reader': rid})
            self.usb.unplug('a')

Environment: as harness.py, plus ``CCID_EMU_REAP_WAIT_MS`` (usbtest's anti-spin wait, default 2)
and ``CCID_EMU_VERBOSE=1`` (usbtest logs every CCID message header into the daemon's log).
"""

import json
import os
import socket
import time

import harness
import sscardd


def usbtest_binary():
    """Path of the usbtest runner in the build directory."""
    return os.path.join(harness.BUILD_DIR, 'tests', 'usbtest')


def missing_requirements():
    """What this machine lacks to run the USB end-to-end tests (empty when all is there)."""
    missing = []
    for path in (usbtest_binary(), sscardd.daemon_binary()):
        if not os.path.exists(path):
            missing.append(path)
    found = False
    for d in ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/lib'):
        if os.path.exists(os.path.join(d, 'libumockdev-preload.so.0')):
            found = True
    if not found:
        missing.append('libumockdev-preload.so.0 (package libumockdev0)')
    return missing


class UsbError(Exception):
    """usbtest answered a control command with an error."""


class Usb:
    """A client of usbtest's control socket (one connection per command; deadlines everywhere)."""

    def __init__(self, path):
        self.path = path

    def command(self, line, timeout=5.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.path)
            s.sendall(line.encode() + b'\n')
            buf = b''
            deadline = time.monotonic() + timeout
            while not buf.endswith(b'\n'):
                if time.monotonic() > deadline:
                    raise harness.HarnessError(f'usbtest: no answer to {line!r}')
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return buf.decode().strip()

    def ok(self, line):
        answer = self.command(line)
        if answer != 'ok':
            raise UsbError(f'usbtest: {line!r} answered {answer!r}')

    def status(self):
        answer = self.command('status')
        if not answer.startswith('{'):
            raise UsbError(f'usbtest: status answered {answer!r}')
        return json.loads(answer)

    def device(self, dev):
        for d in self.status()['devices']:
            if d['name'] == str(dev) or d['index'] == dev:
                return d
        raise UsbError(f'usbtest: no device {dev!r}')

    def slot_stats(self, dev, slot=0):
        """The card line counters of a slot (icc.h struct icc_stats), faults_fired flattened."""
        st = dict(self.device(dev)['slots'][slot]['stats'])
        fired = st.pop('faults_fired')
        st.update({f'fired_{k}': v for k, v in fired.items()})
        return st

    def dev_stats(self, dev):
        return self.device(dev)['stats']

    def plug(self, dev):
        self.ok(f'plug {dev}')

    def unplug(self, dev):
        self.ok(f'unplug {dev}')

    def insert(self, dev, slot=0):
        self.ok(f'insert {dev} {slot}')

    def remove(self, dev, slot=0):
        self.ok(f'remove {dev} {slot}')

    def fault(self, dev, kind, count=1, slot=0):
        self.ok(f'fault {dev} {kind} {count} {slot}')

    def clear(self, dev):
        self.ok(f'fault {dev} clear')

    def wait_ready(self, timeout=10.0, proc=None):
        def ready():
            if proc is not None and not proc.alive():
                raise harness.HarnessError('usbtest exited: ' + proc.log_text()[-3000:])
            try:
                return self.command('ping', timeout=1.0) == 'ok'
            except OSError:
                return False
        harness.wait_until(ready, timeout, 'usbtest control socket')


class UsbDaemon(sscardd.Daemon):
    """sscardd run by usbtest with the given device specs. usb/pcsc: the [drivers] switches."""

    def __init__(self, h, devices, usb=True, pcsc=False, config=None, usbtest_args=(),
                 name='sscardd', **kw):
        merged = {'drivers': {'usb': 'yes' if usb else 'no', 'pcsc': 'yes' if pcsc else 'no'}}
        for sec, keys in (config or {}).items():
            merged.setdefault(sec, {}).update(keys)
        super().__init__(h, config=merged, name=name, **kw)
        self.devices = list(devices)
        self.control_path = h.path(f'{name}-usbtest.ctl')
        if len(self.control_path) > harness.SUN_PATH_MAX:
            raise harness.HarnessError(f'control path too long: {self.control_path}')
        self.usbtest_args = list(usbtest_args)
        self.usb = Usb(self.control_path)

    def argv(self):
        a = [usbtest_binary(), '--control', self.control_path]
        for spec in self.devices:
            a += ['--device', spec]
        return a + self.usbtest_args + ['--'] + super().argv()

    def start(self, timeout=15.0):
        super().start(timeout)
        self.usb.wait_ready(timeout, self.proc)
        return self


def product(name, mode):
    """The product string usbtest gives a device that sets no product= (ccid_emu.c)."""
    return f'Emulated CCID {name} ({mode})'


class UsbTestCase(sscardd.DaemonTestCase):
    """A test case with self.start(devices, ...) -> UsbDaemon; self.usb, self.c (subscribed)."""

    readers = 2
    deadline = 120.0

    def setUp(self):
        missing = missing_requirements()
        if missing:
            self.skipTest('missing: ' + ', '.join(missing))
        os.environ.setdefault('CCID_EMU_REAP_WAIT_MS', '2')
        super().setUp()

    def start(self, devices, **kw):
        if self.prefetch is not None:     # sscardd.DaemonTestCase.prefetch
            config = {k: dict(v) for k, v in (kw.pop('config', None) or {}).items()}
            config.setdefault('card', {})['prefetch'] = self.prefetch
            kw['config'] = config
        self.d = UsbDaemon(self.h, devices, **kw).start()
        self.usb = self.d.usb
        self.specs = {}
        for spec in devices:
            kv = dict(p.split('=', 1) for p in spec.split(','))
            self.specs[kv['name']] = kv
        self.c = self.d.client()
        self.c.subscribe()
        return self.d

    # -- finding the daemon's reader of (device, slot)
    def _match(self, r, dev, slot):
        kv = self.specs[dev]
        prod = kv.get('product') or product(dev, kv.get('mode', 'apdu'))
        if r.get('driver') != 'usb-ccid' or prod not in r.get('name', ''):
            return False
        nslots = len(kv['slots'].split('+'))
        if nslots == 1:
            return True
        return r['id'].endswith(f'-s{slot}') or r['name'].endswith(f'slot {slot}')

    def reader_of(self, dev, slot=0, client=None):
        """The reader.list entry of (device, slot), or None."""
        rs = [r for r in sscardd.Daemon.readers(client or self.c) if self._match(r, dev, slot)]
        if len(rs) > 1:
            raise harness.HarnessError(f'several readers match {dev} slot {slot}: {rs}')
        return rs[0] if rs else None

    def wait_reader(self, dev, slot=0, timeout=10.0, gone=False, **want):
        """Waits until (dev, slot) is listed with every field in want (or is not listed, with
        gone=True); returns its entry (None when gone)."""
        def ok():
            r = self.reader_of(dev, slot)
            if gone:
                return r is None
            if r is not None and all(r.get(k) == v for k, v in want.items()):
                return r
            return None
        try:
            r = harness.wait_until(ok, timeout, f'usb reader {dev} slot {slot} '
                                   f'{"gone" if gone else want}', interval=0.05)
        except harness.HarnessError as e:
            raise harness.HarnessError(f'{e}; reader.list: {sscardd.Daemon.readers(self.c)}') \
                from None
        return None if gone else r

    def wait_user(self, dev, slot=0, timeout=10.0):
        """Waits for a user card in (dev, slot); returns the reader id."""
        return self.wait_reader(dev, slot, timeout, card=True, role='user', busy=False)['id']

    def wait_psam(self, dev, slot, timeout=10.0):
        return self.wait_reader(dev, slot, timeout, card=True, role='psam')['id']

    def events_until(self, want, timeout=10.0):
        """Collects event params until every (type, reader) in want has been seen; returns them
        in arrival order (the others that came too are included)."""
        want = set(want)
        seen = []
        deadline = time.monotonic() + timeout
        while want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError(f'events still missing: {sorted(want)}; got {seen}')
            p = self.c.next_event(timeout=left)
            seen.append(p)
            want.discard((p.get('type'), p.get('reader')))
        return seen
