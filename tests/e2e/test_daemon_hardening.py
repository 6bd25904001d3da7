#!/usr/bin/python3
"""sscardd end to end, the process and its socket against a local attacker (issue 12, points 8 and
10), with the attacker as uid 65534 (nobody) in child processes (setpriv):

* core dumps and memory: the daemon, run as 65534 itself, has RLIMIT_CORE 0 and is not dumpable,
  so another process of the same uid can read neither its memory nor its environment
  (/proc/PID/mem, /proc/PID/environ: where PINs and keys would be), and no core file can be
  written; root still can (the PIN memory scan of test_daemon_pin.py runs as root).
* the socket's directory: with the socket in a directory that another user owns or may write,
  that user can replace the socket and read what a client sends ({"pin": ...}). The daemon must
  refuse to start there, naming the directory and the fix: a directory owned by uid 65534, a
  group- or world-writable one, a sticky world-writable one like /tmp (the socket could be
  replaced once the daemon stops), and a path through a symbolic link to such a directory. In a
  directory only root can write, the attacker cannot move the socket.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_hardening.py
"""

import errno
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

OTHER_UID = 65534       # nobody
OTHER_GID = 65534       # nogroup
AS_OTHER = ['setpriv', f'--reuid={OTHER_UID}', f'--regid={OTHER_GID}', '--clear-groups']

# Run as the other uid: what it can read of process argv[1]; prints {what: errno or 0}.
PEEK = r'''
import json, sys
pid = sys.argv[1]
out = {}
try:
    with open(f"/proc/{pid}/environ", "rb") as f:
        f.read()
    out["environ"] = 0
except OSError as e:
    out["environ"] = e.errno
try:
    with open(f"/proc/{pid}/maps") as f:
        start = int(f.readline().split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb", 0) as f:
        f.seek(start)
        f.read(16)
    out["mem"] = 0
except OSError as e:
    out["mem"] = e.errno
print(json.dumps(out))
'''

# Run as the other uid: the attack of issue 12 point 8. Moves the daemon's socket argv[1] aside,
# listens on the same path, and prints the first line a client sends (within 10 s).
HIJACK = r'''
import json, os, socket, sys
path = sys.argv[1]
try:
    os.rename(path, path + ".moved")
except OSError as e:
    print(json.dumps({"moved": e.errno})); sys.exit(0)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(1)
print(json.dumps({"moved": 0}), flush=True)
s.settimeout(10)
c, _ = s.accept()
c.settimeout(10)
buf = b""
while b"\n" not in buf:
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
print(json.dumps({"captured": buf.decode(errors="replace")}), flush=True)
'''

# Run as the other uid: what it can do to the socket argv[1] and its directory.
TAMPER = r'''
import json, os, socket, sys
path = sys.argv[1]
out = {}
for what, fn in (("rename", lambda: os.rename(path, path + ".moved")),
                 ("unlink", lambda: os.unlink(path)),
                 ("bind", lambda: socket.socket(socket.AF_UNIX).bind(path + ".other"))):
    try:
        fn()
        out[what] = 0
    except OSError as e:
        out[what] = e.errno
print(json.dumps(out))
'''


def as_other(script, *args, timeout=30):
    p = subprocess.run([*AS_OTHER, sys.executable, '-c', script, *args], capture_output=True,
                       timeout=timeout, check=True)
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


class Hardening(sscardd.DaemonTestCase):
    readers = 2

    def other_dir(self, name, mode=0o755):
        """A directory in the per-test directory, owned by the other uid."""
        p = self.h.path(name)
        os.mkdir(p)
        os.chown(p, OTHER_UID, OTHER_GID)
        os.chmod(p, mode)
        return p

    def test_memory_closed_to_same_uid(self):
        # The daemon as uid 65534, with its socket, journal and log in a directory of its own.
        os.chmod(self.h.dir, 0o711)
        own = self.other_dir('own', 0o700)
        d = sscardd.Daemon(self.h, socket_name='own/sscardd.sock', wrap=AS_OTHER,
                           config={'journal': {'path': os.path.join(own, 'journal.db')}})
        d.start()
        with open(f'/proc/{d.pid}/status') as f:
            uids = next(line for line in f if line.startswith('Uid:')).split()[1:]
        self.assertEqual(uids, [str(OTHER_UID)] * 4)

        # Another process of the same uid sees none of its memory.
        self.assertEqual(as_other(PEEK, str(d.pid)), {'environ': errno.EACCES,
                                                      'mem': errno.EACCES})

        # No core file, whatever the shell's limit was.
        with open(f'/proc/{d.pid}/limits') as f:
            core = next(line for line in f if line.startswith('Max core file size')).split()
        self.assertEqual(core[4:6], ['0', '0'], core)
        self.assertIn('core dumps disabled', d.log_text())

        # Root still can (the PIN memory scan of test_daemon_pin.py relies on it), and the
        # daemon still serves.
        with open(f'/proc/{d.pid}/environ', 'rb') as f:
            self.assertIn(b'PCSCLITE_CSOCK_NAME=', f.read())
        self.assertEqual(d.client().call('system.info')['peer']['uid'], 0)

    def refused(self, sock, *expect):
        """Starts the daemon with its socket at sock; it must exit 1 at once, with a log that
        holds every string of expect. If it starts (the code before issue 12), the attacker
        replaces its socket and captures a client's PIN, which fails the test."""
        name = f'sscardd-{len(self.h.procs)}'
        d = sscardd.Daemon(self.h, name=name, socket_name=os.path.relpath(sock, self.h.dir))
        try:
            d.start(timeout=10.0)
        except harness.HarnessError:
            self.assertEqual(d.proc.wait(5.0), 1, d.log_text())
            log = d.log_text()
            for text in expect:
                self.assertIn(text, log)
            self.assertIn('cannot serve on', log)
            self.assertFalse(os.path.exists(sock), f'{sock} left behind')
            return
        # It started: show what the attacker does with that.
        p = subprocess.Popen([*AS_OTHER, sys.executable, '-c', HIJACK, sock],
                             stdout=subprocess.PIPE)
        try:
            first = json.loads(p.stdout.readline())
            if first['moved'] == 0:
                with sscardd.Client(sock) as c:
                    c.request('card.verify_pin', {'pin': '123456'})
                    captured = json.loads(p.stdout.readline()).get('captured', '')
            else:
                captured = ''
        finally:
            p.kill()
            p.wait()
        self.fail(f'sscardd started with its socket in {os.path.dirname(sock)}; the attacker '
                  f'{"captured " + captured.strip() if captured else "moved it " + str(first)}')

    def test_socket_directory_others_can_write(self):
        os.chmod(self.h.dir, 0o711)
        # Owned by another user (it could move the socket and put its own there).
        owned = self.other_dir('owned')
        self.refused(os.path.join(owned, 's.sock'), f'socket directory {owned} belongs to uid '
                     f'{OTHER_UID}', 'such as /run/sscard')

        # Root's, but writable by its group or by everyone.
        for name, mode, who in (('group', 0o775, 'its group'), ('world', 0o777, 'everyone')):
            p = self.h.path(name)
            os.mkdir(p)
            os.chmod(p, mode)
            self.refused(os.path.join(p, 's.sock'),
                         f'socket directory {p} is writable by {who} (mode {mode:04o})')

        # Sticky and world-writable, like /tmp: others cannot move our socket while it is there,
        # but can put theirs at the path once the daemon has stopped.
        sticky = self.h.path('sticky')
        os.mkdir(sticky)
        os.chmod(sticky, 0o1777)
        self.refused(os.path.join(sticky, 's.sock'), f'socket directory {sticky} is writable by '
                     'everyone (mode 1777)', 'once the daemon stops')

        # A symbolic link (in a safe directory) to the other user's directory: checked where it
        # leads. A safe directory reached through the other user's directory: checked on the way.
        os.symlink(owned, self.h.path('link'))
        self.refused(self.h.path('link/s.sock'), f'socket directory {self.h.path("link")} '
                     f'belongs to uid {OTHER_UID}')
        safe = self.h.path('safe')
        os.mkdir(safe, 0o755)
        os.symlink(safe, os.path.join(owned, 'tosafe'))
        self.refused(os.path.join(owned, 'tosafe', 's.sock'),
                     f'socket directory {owned} belongs to uid {OTHER_UID}')

        # A sticky directory above the socket's own is fine (the per-test directory is in /tmp
        # in every other test); so is a directory that only root writes: the attacker can
        # neither move the socket nor add one beside it.
        d = sscardd.Daemon(self.h, name='sscardd-safe', socket_name='sticky/safe/s.sock')
        os.mkdir(os.path.dirname(d.socket_path), 0o755)
        d.start()
        self.assertEqual(as_other(TAMPER, d.socket_path),
                         {'rename': errno.EACCES, 'unlink': errno.EACCES, 'bind': errno.EACCES})
        self.assertEqual(d.client().call('system.info')['peer']['uid'], 0)
        d.stop()
        self.assertFalse(os.path.exists(d.socket_path))


if __name__ == '__main__':
    unittest.main(verbosity=2)
