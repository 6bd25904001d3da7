"""sscardctl as a user runs it: from a shell, with PINs on stdin or typed at a terminal, its output
piped into other programs, its configuration found the way sscardd finds it (issue 11; issue 12,
defect 7 is in tests/unit/core/test_server_cli.c).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_sscardctl.py [-k name]
"""

import json
import os
import shlex
import subprocess
import unittest

import harness
import sscardd


def clean_env(**extra):
    """The environment without SSCARD_SOCKET / SSCARD_CONFIG, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in ('SSCARD_SOCKET', 'SSCARD_CONFIG')}
    env.update(extra)
    return env


def ctl(*args, env=None, stdin=None, ns=None, timeout=30):
    """Runs sscardctl with exactly the environment env (clean_env() when None), inside the harness
    ns's mount namespace when given; returns (exit status, stdout, stderr)."""
    argv = [sscardd.ctl_binary(), *args]
    if ns is not None:
        argv = ns.ns.enter_argv(argv, mount=True)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                       env=clean_env() if env is None else env)
    return p.returncode, p.stdout, p.stderr


def shell(cmd, env=None, timeout=60):
    """Runs cmd with bash -o pipefail (so a pipeline's status is sscardctl's); returns
    (exit status, stdout, stderr)."""
    p = subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], capture_output=True, text=True,
                       env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Pipes(sscardd.DaemonTestCase):
    """Output into a pipe that the reader closes early."""

    def test_journal_export_into_head(self):
        d = self.start_daemon()
        c = d.client()
        ids = [c.request('system.info') for _ in range(1200)]
        sscardd.gather({c: ids}, timeout=60)
        rows = sscardd.journal_settled(d)
        self.assertGreater(len(rows), 1200)
        # More than a pipe holds (64 KiB), so sscardctl is still writing when head exits.
        self.assertGreater(sum(len(json.dumps(r)) for r in rows), 200 * 1024)
        ctl = shlex.quote(sscardd.ctl_binary())
        db = shlex.quote(d.journal_path)
        rc, out, err = shell(f'{ctl} journal export --journal {db} | head -n 2')
        self.assertEqual(rc, 0, err)
        self.assertEqual([json.loads(line)['seq'] for line in out.splitlines()], [1, 2])
        self.assertNotIn('failed', err)
        self.assertNotIn('Broken pipe', err)
        self.assertNotIn('Bad file descriptor', err)
        # A real write error is still one: /dev/full.
        rc, out, err = shell(f'{ctl} journal export --journal {db} >/dev/full')
        self.assertEqual(rc, 4, err)
        self.assertIn('writing the rows failed: No space left on device', err)


class BareDaemon(sscardd.Daemon):
    """sscardd started as an operator would, with neither --config nor --socket: it finds its
    configuration on its own ($SSCARD_CONFIG, else /etc/sscard/sscardd.conf)."""

    def argv(self):
        return [sscardd.daemon_binary(), '--foreground', '--log-level', 'debug']


class ConfigPath(sscardd.DaemonTestCase):
    """sscardd and sscardctl read one configuration: --config, else $SSCARD_CONFIG, else
    /etc/sscard/sscardd.conf when it exists; sscardctl names the journal it uses on stderr."""

    def start_bare(self, env_config=None, in_mountns=False):
        saved = os.environ.pop('SSCARD_CONFIG', None)
        if env_config:
            os.environ['SSCARD_CONFIG'] = env_config
        try:
            self.d = BareDaemon(self.h, in_mountns=in_mountns).start()
        finally:
            os.environ.pop('SSCARD_CONFIG', None)
            if saved is not None:
                os.environ['SSCARD_CONFIG'] = saved
        self.c = self.d.client()
        return self.d

    def test_sscard_config_env(self):
        self.h.start_pcscd()
        d = self.start_bare(env_config=self.h.path('sscardd.conf'))
        conf = d.config_path
        self.assertIn(f'config: file {conf}', d.log_text())
        env = clean_env(SSCARD_CONFIG=conf)
        # The socket: the configuration's socket_path, not /run/sscard/sscardd.sock.
        rc, out, err = ctl('--json', 'info', env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['journal'], 'ok')
        # $SSCARD_SOCKET and --socket still come first.
        rc, out, err = ctl('info', env=clean_env(SSCARD_CONFIG=conf,
                                                 SSCARD_SOCKET=self.h.path('nothing.sock')))
        self.assertEqual(rc, 3)
        self.assertIn(f'cannot connect to {self.h.path("nothing.sock")}', err)
        self.assertIn('that socket is $SSCARD_SOCKET', err)
        rc, out, err = ctl('--socket', d.socket_path, 'info',
                           env=clean_env(SSCARD_SOCKET=self.h.path('nothing.sock')))
        self.assertEqual(rc, 0, err)
        # The journal: the daemon's, named on stderr.
        sscardd.journal_settled(d)
        rc, out, err = ctl('journal', 'verify', env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn('journal intact', out)
        self.assertIn(f'sscardctl: journal {d.journal_path} (the [journal] path of {conf})',
                      err)
        # blacklist import writes into the journal the daemon uses: the card is refused.
        self.h.start_card('gen2', slot=0)
        self.wait_roles({0: 'user'}, client=self.c)
        rc, out, err = ctl('blacklist', 'import', '-', env=env, stdin='X00000019\n')
        self.assertEqual(rc, 0, err)
        self.assertIn(f'sscardctl: journal {d.journal_path} (', err)
        self.assertRpcError(self.c.call_error('card.read_basic'), 'SSC_EBLACKLISTED')
        # --config names another file for both.
        rc, out, err = ctl('--config', conf, 'journal', 'show', '--limit', '1')
        self.assertEqual(rc, 0, err)
        self.assertIn(f'(the [journal] path of {conf})', err)
        # Without any, the built-in default is used, and said.
        rc, out, err = ctl('journal', 'show')
        self.assertIn('sscardctl: journal /var/lib/sscard/journal.db (the built-in default', err)
        rc, out, err = ctl('info')
        self.assertIn('cannot connect to /run/sscard/sscardd.sock', err)
        self.assertIn('that socket is the built-in default', err)

    def test_missing_env_config_refused(self):
        missing = self.h.path('no-such.conf')
        env = clean_env(SSCARD_CONFIG=missing)
        p = subprocess.run([sscardd.daemon_binary(), '--check-config'], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(missing, p.stderr)
        rc, out, err = ctl('journal', 'verify', env=env)
        self.assertEqual(rc, 2, err)
        self.assertIn(missing, err)
        rc, out, err = ctl('readers', env=env)
        self.assertEqual(rc, 2, err)
        self.assertIn(missing, err)

    def test_etc_default(self):
        """/etc/sscard/sscardd.conf, in a private mount namespace (an overlay over /etc there, so
        the machine's /etc is not touched)."""
        upper, work = self.h.path('etc-upper'), self.h.path('etc-work')
        os.makedirs(os.path.join(upper, 'sscard'))
        os.makedirs(work)
        self.h.ns_run(['mount', '-t', 'overlay', 'overlay', '-o',
                       f'lowerdir=/etc,upperdir={upper},workdir={work}', '/etc'])
        self.h.start_pcscd()
        d = BareDaemon(self.h, in_mountns=True)
        # Daemon.start() writes config_path from outside the namespace: the overlay's upper
        # directory, which is /etc/sscard/sscardd.conf inside it.
        d.config_path = os.path.join(upper, 'sscard', 'sscardd.conf')
        self.d = d.start()
        self.assertIn('config: file /etc/sscard/sscardd.conf', d.log_text())
        rc, out, err = ctl('--json', 'readers', ns=self.h)
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl('journal', 'verify', ns=self.h)
        self.assertEqual(rc, 0, err)
        self.assertIn(f'sscardctl: journal {d.journal_path} (the [journal] path of '
                      '/etc/sscard/sscardd.conf)', err)
        # $SSCARD_CONFIG overrides it.
        other = self.h.path('other.conf')
        with open(other, 'w') as f:
            f.write(f'[journal]\npath = {self.h.path("other.db")}\n')
        rc, out, err = ctl('journal', 'verify', ns=self.h, env=clean_env(SSCARD_CONFIG=other))
        self.assertEqual(rc, 3, err)
        self.assertIn(f'sscardctl: journal {self.h.path("other.db")} (the [journal] path of '
                      f'{other})', err)


if __name__ == '__main__':
    unittest.main(verbosity=2)
