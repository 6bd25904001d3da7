"""The simulated province key server for end-to-end tests (spec §13.2, issue 14).

* :func:`make_pki` writes, with the openssl command line, a CA for the key server, the server's
  certificate for 127.0.0.1, a CA for desks with one desk's certificate and key (0600), and a
  second, unrelated "rogue" CA with a desk certificate of its own (what a stranger would present).
* :class:`KeyServer` runs ``sscard-sim hsm`` inside the harness's network namespace (the daemon
  reaches it on 127.0.0.1 when it runs there too: ``Daemon(..., in_mountns=True)``), with a control
  socket to flip its fault switches and read its counters.
* :func:`daemon_config` gives the ``[hsm]`` section for a daemon that uses it.
* :func:`card_trace` reads a simulated card's APDU log (``--verbose``) with the parts that differ
  from run to run masked (challenges, cryptograms, process factors, MACs), so that two runs that
  sent the same commands compare equal.
"""

import os
import re
import subprocess
import time

import harness

PORT = 8443        # private to each test's network namespace


def _openssl(*args, cwd):
    p = subprocess.run(['openssl', *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise harness.HarnessError(f'openssl {" ".join(args)}: {p.stderr}')


def _ca(d, name, cn):
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-keyout', f'{name}.key', '-out', f'{name}.pem', '-days', '30', '-subj',
             f'/CN={cn}', cwd=d)


def _leaf(d, name, ca, cn, ext=None):
    _openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
             '-keyout', f'{name}.key', '-out', f'{name}.csr', '-subj', f'/CN={cn}', cwd=d)
    args = ['x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem', '-CAkey', f'{ca}.key',
            '-CAcreateserial', '-out', f'{name}.pem', '-days', '30']
    if ext:
        with open(os.path.join(d, f'{name}.ext'), 'w') as f:
            f.write(ext + '\n')
        args += ['-extfile', f'{name}.ext']
    _openssl(*args, cwd=d)
    os.chmod(os.path.join(d, f'{name}.key'), 0o600)


class Pki:
    """Paths of the certificates make_pki() wrote."""

    def __init__(self, d):
        self.dir = d
        p = lambda n: os.path.join(d, n)   # noqa: E731
        self.server_ca, self.server_cert, self.server_key = (p('server-ca.pem'), p('server.pem'),
                                                             p('server.key'))
        self.desk_ca, self.desk_cert, self.desk_key = (p('desk-ca.pem'), p('desk.pem'),
                                                       p('desk.key'))
        self.rogue_ca, self.rogue_cert, self.rogue_key = (p('rogue-ca.pem'), p('rogue.pem'),
                                                          p('rogue.key'))


def make_pki(h):
    """Writes the test certificates into <test dir>/pki (openssl CLI); returns a Pki."""
    d = h.path('pki')
    os.makedirs(d, exist_ok=True)
    _ca(d, 'server-ca', 'sscard test key server CA')
    _leaf(d, 'server', 'server-ca', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost')
    _ca(d, 'desk-ca', 'sscard test desk CA')
    _leaf(d, 'desk', 'desk-ca', 'desk 1')
    _ca(d, 'rogue-ca', 'not the province')
    _leaf(d, 'rogue', 'rogue-ca', 'desk 1')
    return Pki(d)


def daemon_config(pki, port=PORT, timeout_ms=None, prefer=None, url=None, ca=None, cert=None,
                  key=None):
    """The [hsm] section of a daemon that uses the key server (as a config dict)."""
    sec = {'url': url or f'https://127.0.0.1:{port}', 'ca_file': ca or pki.server_ca,
           'cert_file': cert or pki.desk_cert, 'key_file': key or pki.desk_key}
    if timeout_ms is not None:
        sec['timeout_ms'] = timeout_ms
    if prefer is not None:
        sec['prefer'] = prefer
    return {'hsm': sec}


class KeyServer:
    """sscard-sim hsm in the harness's network namespace, with a control socket."""

    def __init__(self, h, pki, psams=('gen2', 'gen3'), port=PORT, name='hsm', extra_args=(),
                 verbose=True):
        self.h = h
        self.pki = pki
        self.port = port
        self.name = name
        self.control_path = h.path(f'{name}.ctl')
        self.argv = [harness.sim_binary(), 'hsm', '--listen', f'127.0.0.1:{port}',
                     '--cert', pki.server_cert, '--key', pki.server_key,
                     '--client-ca', pki.desk_ca, '--control', self.control_path]
        for p in psams:
            self.argv += ['--psam', harness.profile_path(p)]
        if verbose:
            self.argv.append('--verbose')
        self.argv += list(extra_args)
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = self.h.spawn(self.name, self.h.ns.enter_argv(self.argv), pcsc=False)

        def ready():
            if not self.proc.alive():
                raise harness.HarnessError(f'{self.name} exited with status '
                                           f'{self.proc.returncode()}: {self.proc.log_text()}')
            if self.port not in self.h.ns.listening_ports():
                return None
            try:
                return self.status()
            except OSError:
                return None
        harness.wait_until(ready, timeout, 'the key server to listen')
        return self

    def command(self, line, timeout=3.0):
        import socket
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

    def switch(self, name, value):
        answer = self.command(f'{name} {value}')
        if answer != 'ok':
            raise harness.HarnessError(f'{self.name}: {name} {value}: {answer}')

    def status(self):
        """The counters and switches: {'requests': 3, 'exchanges': 2, ..., 'refuse': 'none'}."""
        out = {}
        for kv in self.command('status').split():
            k, v = kv.split('=', 1)
            out[k] = int(v) if v.isdigit() else v
        return out

    def log_text(self):
        return self.proc.log_text() if self.proc else ''

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        if self.proc:
            self.proc.stop()

    def kill9(self):
        if self.proc:
            self.proc.kill9()

    def wait_exit(self, timeout=10.0):
        return self.proc.wait(timeout)


# --- the card's APDU trace, with what changes from run to run masked ----------------------------

_LINE = re.compile(r'sscard-sim\[[^\]]*\]: ([<>]) ([0-9A-F]+)(\.\.\.| <\d+ bytes masked>)?$')


def _mask_command(h):
    cla, ins = h[0:2], h[2:4]
    if ins in ('82', '88') and len(h) > 10:      # EXTERNAL / INTERNAL AUTH: C ‖ R, P ‖ X
        return h[:10] + 'x' * (len(h) - 10)
    if cla == '04' and len(h) > 10:              # UPDATE / APPEND RECORD with MAC: the MAC4
        return h[:-8] + 'x' * 8
    return h


def card_trace(log_text):
    """[(direction, hex)] of a card simulator's --verbose log, masked: GET CHALLENGE's answer,
    EXTERNAL and INTERNAL AUTHENTICATE's data and INTERNAL AUTHENTICATE's answer, the MAC4 of a
    MAC'd record command; PIN commands come masked from the simulator itself."""
    out = []
    last_cmd = ''
    for line in log_text.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        d, h, tail = m.group(1), m.group(2), m.group(3) or ''
        if d == '>':
            last_cmd = h
            out.append(('>', _mask_command(h) + tail))
            continue
        ins = last_cmd[2:4]
        if ins in ('84', '88') and len(h) > 4:       # a challenge, a cryptogram: then the SW
            h = 'x' * (len(h) - 4) + h[-4:]
        out.append(('<', h + tail))
    return out


def elapsed(fn):
    """(result or exception, seconds) of fn()."""
    t0 = time.monotonic()
    try:
        r = fn()
    except Exception as e:   # noqa: BLE001 - the caller looks at it
        r = e
    return r, time.monotonic() - t0
