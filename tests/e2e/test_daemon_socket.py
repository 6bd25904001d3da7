#!/usr/bin/python3
"""sscardd end to end: the API socket's permissions are the access control (docs/api.md,
design.md: mode 0660, group from [daemon] socket_group; membership lets an application in).

A client runs as another uid (65534) in a child process (setpriv): without the socket's group
its connect() fails with EACCES; with the group as a supplementary group it connects, is served,
and the daemon sees (and logs) its uid. The socket's group is the existing group "users" (so the
test leaves nothing behind); a temporary group is created with groupadd only where there is none.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_socket.py [-k name]
"""

import errno
import grp
import json
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402

OTHER_UID = 65534       # nobody
OTHER_GID = 65534       # nogroup

# Run as the other uid: connect, send system.info, print one JSON line with the outcome.
CLIENT = r'''
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.errno})); sys.exit(0)
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"system.info"}\n')
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(json.dumps({"connect": 0, "reply": json.loads(buf) if buf else None}))
'''


def run_as_other(path, groups):
    """Runs CLIENT as OTHER_UID with exactly these supplementary groups; returns its JSON line."""
    argv = ['setpriv', f'--reuid={OTHER_UID}', f'--regid={OTHER_GID}']
    argv += [f'--groups={",".join(str(g) for g in groups)}'] if groups else ['--clear-groups']
    argv += [sys.executable, '-c', CLIENT, path]
    out = subprocess.run(argv, capture_output=True, timeout=20, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


class SocketPermissions(sscardd.DaemonTestCase):
    readers = 2

    def socket_group(self):
        """(name, gid) of a group for the socket: "users", else a temporary one."""
        try:
            g = grp.getgrnam('users')
            return g.gr_name, g.gr_gid
        except KeyError:
            pass
        name = f'ssce2e{os.getpid()}'
        subprocess.run(['groupadd', name], check=True, timeout=20)
        self.addCleanup(subprocess.run, ['groupdel', name], timeout=20)
        return name, grp.getgrnam(name).gr_gid

    def test_other_uid_refused_group_member_allowed(self):
        name, gid = self.socket_group()
        # The per-test directory is 0700; let the other uid reach the socket inside it.
        os.chmod(self.h.dir, 0o711)
        self.start_daemon(config={'daemon': {'socket_group': name}})
        st = os.stat(self.d.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, gid)

        # Not in the group: refused by the file system, before the daemon sees anything.
        self.assertEqual(run_as_other(self.d.socket_path, []), {'connect': errno.EACCES})
        self.assertEqual(run_as_other(self.d.socket_path, [OTHER_GID]),
                         {'connect': errno.EACCES})
        self.assertNotIn(f'uid {OTHER_UID}', self.d.log_text())

        # In the group: served, and the daemon knows who it is.
        out = run_as_other(self.d.socket_path, [gid])
        self.assertEqual(out['connect'], 0)
        result = out['reply']['result']
        self.assertEqual(result['peer']['uid'], OTHER_UID)
        self.assertEqual(result['peer']['gid'], OTHER_GID)
        self.assertEqual(result['api_level'], 1)
        self.assertIn(f'uid {OTHER_UID} gid {OTHER_GID}', self.d.log_text())

        # Root's own client still works, and the daemon is unharmed.
        self.assertEqual(self.c.call('system.info')['peer']['uid'], 0)

    def test_group_that_does_not_exist(self):
        # docs: a socket_group that does not exist is a warning, not an error.
        self.start_daemon(config={'daemon': {'socket_group': 'no-such-group-e2e'}})
        self.assertEqual(stat.S_IMODE(os.stat(self.d.socket_path).st_mode), 0o660)
        self.assertIn('no-such-group-e2e', self.d.log_text())
        self.assertEqual(self.c.call('system.info')['api_level'], 1)


if __name__ == '__main__':
    unittest.main(verbosity=2)
