#!/usr/bin/python3
"""sscardd end to end: file descriptors (issue 12, defect 6).

Before the fix, with `ulimit -n 128` the connections beyond about 111 were reset silently (libuv
accepted and closed them), with no log line and no "too many clients" answer, and max_clients =
1024 was never reconciled with RLIMIT_NOFILE. Now:

* a soft limit below what max_clients needs is raised at start (up to the hard limit), and the log
  says so: with `prlimit --nofile=64:4096`, 150 clients are all served;
* a hard limit below it lowers max_clients to what fits, with a warning: with 128:128, 150
  connections are each either served or answered "too many clients (at most 64)" (SSC_ELIMIT), none
  is closed without an answer;
* out of descriptors while running (the limit lowered under the daemon with prlimit --pid), a new
  connection is answered "too many clients (the daemon has no file descriptor left …)" through the
  reserve descriptor, the refusal is logged, and the daemon serves again once descriptors are back.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_fds.py
"""

import os
import resource
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

OVERHEAD = 128          # descriptors sscardd keeps besides its clients' (FD_OVERHEAD in sscardd.c)


def nofile(pid):
    """(soft, hard) RLIMIT_NOFILE of process pid."""
    return resource.prlimit(pid, resource.RLIMIT_NOFILE)


def open_fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def outcomes(clients, timeout=15.0):
    """Sends system.info on each client, then waits for each answer. Returns a list, one per
    client: ('served', uid), ('refused', message) or ('none', what happened)."""
    out = []
    for c in clients:
        try:
            c.request('system.info', msg_id=1)
        except sscardd.Closed:
            pass                        # refused at once: the answer is already there
    deadline = time.monotonic() + timeout
    for c in clients:
        while True:
            if 1 in c.replies:
                m = c.replies.pop(1)
                out.append(('served', m['result']['peer']['uid']) if 'result' in m
                           else ('error', m['error']['message']))
                break
            if c.null_replies:
                e = c.null_replies.pop(0)['error']
                out.append(('refused', e['message']) if e.get('data', {}).get('name') ==
                           'SSC_ELIMIT' else ('error', e['message']))
                break
            if c.eof:
                out.append(('none', 'closed without an answer'))
                break
            if time.monotonic() >= deadline:
                out.append(('none', 'no answer in time'))
                break
            c._read_some(min(deadline, time.monotonic() + 0.2))   # returns once data came
    return out


class Fds(sscardd.DaemonTestCase):
    readers = 2

    def connect_many(self, d, n):
        """n connections, each opened (connect() succeeded) before the next."""
        cs = []
        for _ in range(n):
            cs.append(d.client())
        return cs

    def test_soft_limit_raised(self):
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h, wrap=['prlimit', '--nofile=64:4096']).start()
        res = outcomes(self.connect_many(d, 150))
        self.assertEqual(res, [('served', 0)] * 150)
        self.assertEqual(nofile(d.pid), (1024 + OVERHEAD, 4096))
        self.assertIn(f'open files: limit raised from 64 to {1024 + OVERHEAD} (max_clients 1024 '
                      f'+ {OVERHEAD} ', d.log_text())

    def test_hard_limit_too_low(self):
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h, wrap=['prlimit', '--nofile=128:128']).start()
        res = outcomes(self.connect_many(d, 150))
        served = res.count(('served', 0))
        refused = res.count(('refused', 'too many clients (at most 64)'))
        self.assertEqual(served + refused, 150, [r for r in res if r[0] not in ('served',
                                                                                'refused')])
        self.assertGreaterEqual(served, 60)
        self.assertLessEqual(served, 64)
        self.assertEqual(nofile(d.pid), (128, 128))
        self.assertIn('open files: the limit is 128 (hard limit 128), below the '
                      f'{1024 + OVERHEAD} that max_clients 1024 needs: at most 64 clients are '
                      'served', d.log_text())
        self.assertIn('refused: uid 0 ', d.log_text())
        self.assertIn(': too many clients (at most 64)', d.log_text())
        for c in d.clients:
            c.close()
        d.clients.clear()
        def info():
            # Until the daemon has seen the others close, a new client may still be refused (an
            # error reply, or the connection closed at once): try again.
            try:
                with sscardd.Client(d.socket_path) as c:
                    return c.reply(c.request('system.info'), 5.0).get('result')
            except sscardd.Closed:
                return None
        r = harness.wait_until(info, 20.0, 'a client served once the others closed')
        self.assertEqual(r['limits']['max_clients_per_uid'], 64)

    def test_out_of_descriptors(self):
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h).start()
        self.assertEqual(d.client().call('system.info')['peer']['uid'], 0)
        # Leave the daemon 3 descriptors: the reserve answers everyone beyond. (The soft limit
        # only: raising a hard limit again takes CAP_SYS_RESOURCE, which a test may not have.)
        soft, hard = nofile(d.pid)
        limit = open_fds(d.pid) + 3
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, hard))
        res = outcomes(self.connect_many(d, 20))
        served = res.count(('served', 0))
        why = ('too many clients (the daemon has no file descriptor left: its limit is '
               f'{limit})')
        refused = res.count(('refused', why))
        self.assertEqual(served + refused, 20, res)
        self.assertGreaterEqual(refused, 15, res)
        self.assertIn(f'refused: uid 0 gid 0 pid {os.getpid()} exe ', d.log_text())
        self.assertIn(f': {why}', d.log_text())

        # Descriptors back: served again.
        for c in d.clients:
            c.close()
        d.clients.clear()
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (soft, hard))
        res = harness.wait_until(
            lambda: (lambda r: r if r == [('served', 0)] * 5 else None)(
                outcomes(self.connect_many(d, 5))), 10.0, 'the daemon to serve again')
        self.assertTrue(d.alive())


if __name__ == '__main__':
    unittest.main(verbosity=2)
