#!/usr/bin/python3
"""sscardd end to end, access control with a second, unprivileged uid (issue 4 "Done when"):
a process running as uid 65534 (nobody), with the socket's group as a supplementary group, reads
and writes a card through the API, and the journal attributes every one of its calls, and its write
intent, to uid 65534 and its pid and executable; the same uid without the group cannot connect;
and it cannot read the journal or its key.

test_daemon_socket.py covers the socket's mode and group and a system.info call; this covers card
operations and the audit trail. The socket's group is "users" (or a temporary group).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_access.py
"""

import errno
import grp
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sscardd  # noqa: E402

OTHER_UID = 65534       # nobody
OTHER_GID = 65534       # nogroup

# Run as the other uid: each request of argv[2] (a JSON list of [method, params]) in turn on one
# connection; prints one JSON line: {"pid", "connect": errno or 0, "replies": [...]}.
CLIENT = r'''
import json, os, socket, sys
out = {"pid": os.getpid(), "connect": 0, "replies": []}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(15)
try:
    s.connect(sys.argv[1])
except OSError as e:
    out["connect"] = e.errno
    print(json.dumps(out)); sys.exit(0)
buf = b""
for i, (method, params) in enumerate(json.loads(sys.argv[2])):
    req = {"jsonrpc": "2.0", "id": i + 1, "method": method}
    if params is not None:
        req["params"] = params
    s.sendall(json.dumps(req).encode() + b"\n")
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    line, _, buf = buf.partition(b"\n")
    out["replies"].append(json.loads(line) if line else None)
print(json.dumps(out))
'''

# Run as the other uid: tries to open each path for reading; prints {path: errno or 0}.
OPENER = r'''
import json, sys
res = {}
for p in sys.argv[1:]:
    try:
        open(p, "rb").close(); res[p] = 0
    except OSError as e:
        res[p] = e.errno
print(json.dumps(res))
'''


def run_as_other(groups, script, *args):
    argv = ['setpriv', f'--reuid={OTHER_UID}', f'--regid={OTHER_GID}']
    argv += [f'--groups={",".join(str(g) for g in groups)}'] if groups else ['--clear-groups']
    argv += [sys.executable, '-c', script, *args]
    out = subprocess.run(argv, capture_output=True, timeout=40, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


class Access(sscardd.DaemonTestCase):
    readers = 2

    def socket_group(self):
        try:
            g = grp.getgrnam('users')
            return g.gr_name, g.gr_gid
        except KeyError:
            pass
        name = f'ssce2e{os.getpid()}'
        subprocess.run(['groupadd', name], check=True, timeout=20)
        self.addCleanup(subprocess.run, ['groupdel', name], timeout=20)
        return name, grp.getgrnam(name).gr_gid

    def test_group_member_reads_and_writes_audited(self):
        name, gid = self.socket_group()
        os.chmod(self.h.dir, 0o711)          # let the other uid reach the socket inside
        self.h.start_pcscd()
        card = self.h.start_card('gen2', slot=0, state=True)
        self.h.start_psam('gen2', slot=1)
        self.start_daemon(config={'daemon': {'socket_group': name}})
        self.wait_roles({0: 'user', 1: 'psam'})

        # Outside the group: no connection at all.
        out = run_as_other([], CLIENT, self.d.socket_path, '[]')
        self.assertEqual(out['connect'], errno.EACCES)
        out = run_as_other([OTHER_GID], CLIENT, self.d.socket_path, '[]')
        self.assertEqual(out['connect'], errno.EACCES)

        # In the group: it reads, writes and verifies a PIN.
        calls = [['system.info', None],
                 ['card.read_items', {'file': 'DF04/EF05', 'items': ['31']}],
                 ['card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'}}],
                 ['card.read_items', {'file': 'DF04/EF05', 'items': ['31']}],
                 ['card.verify_pin', {'pin': '123456'}]]
        out = run_as_other([gid], CLIENT, self.d.socket_path, json.dumps(calls))
        self.assertEqual(out['connect'], 0)
        replies = out['replies']
        self.assertTrue(all(r and 'result' in r for r in replies), replies)
        info, before, wrote, after, pin = (r['result'] for r in replies)
        self.assertEqual((info['peer']['uid'], info['peer']['gid'], info['peer']['pid']),
                         (OTHER_UID, OTHER_GID, out['pid']))
        self.assertEqual(before['items'], {'31': '11'})              # gen2.json category
        self.assertEqual(wrote['items'], {'31': '21'})
        self.assertEqual(after['items'], {'31': '21'})
        self.assertEqual(pin, {'verified': True})
        rec = [r for r in card.state()['files']['DF04/EF05'] if r.upper().startswith('31')]
        self.assertEqual(rec, ['31023231'])

        # The journal names the other uid, its pid and executable for each call and the intent.
        rows = sscardd.journal_settled(self.d)
        mine = [r for r in rows if r['uid'] == OTHER_UID]
        self.assertEqual([(r['kind'], r['method'], r['result']) for r in mine
                          if r['kind'] == 'audit'],
                         [('audit', m, 'SSC_OK') for m, _ in calls])
        intent = [r for r in rows if r['kind'] == 'intent']
        self.assertEqual(len(intent), 1)
        self.assertEqual(intent[0]['seq'], wrote['journal_id'])
        self.assertEqual((intent[0]['uid'], intent[0]['pid']), (OTHER_UID, out['pid']))
        exe = os.path.realpath(sys.executable)
        self.assertTrue(all(r['pid'] == out['pid'] and r['exe'] == exe for r in mine), mine)
        self.assertIn(f'uid {OTHER_UID} gid {OTHER_GID} pid {out["pid"]}', self.d.log_text())

        # Being in the socket's group does not open the journal or its key.
        db = self.d.journal_path
        res = run_as_other([gid], OPENER, db, db + '.key')
        self.assertEqual(res, {db: errno.EACCES, db + '.key': errno.EACCES})
        self.assertEqual(os.stat(db).st_mode & 0o777, 0o640)
        self.assertEqual(os.stat(db + '.key').st_mode & 0o777, 0o600)


if __name__ == '__main__':
    unittest.main(verbosity=2)
