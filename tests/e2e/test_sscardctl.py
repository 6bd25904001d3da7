"""sscardctl as a user runs it: from a shell, with PINs on stdin or typed at a terminal, its output
piped into other programs, its configuration found the way sscardd finds it (issue 11; issue 12,
defect 7 is in tests/unit/core/test_server_cli.c).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_sscardctl.py [-k name]
"""

import json
import os
import select
import shlex
import subprocess
import time
import unittest

import harness
import sscardd
from sscardd import slot_id

CARD, PSAM = 0, 1
GEN2_PIN = '123456'          # firmware-stubs/profiles/gen2.json "pin"


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


def on_terminal(argv, typed, timeout=20):
    """Runs argv with its stdin (and nothing else) on a new pseudo-terminal, typing each of typed
    (a list of lines) when the terminal shows the prompt before it ((prompt, line) pairs).
    Returns (exit status, what the terminal showed, stdout, stderr)."""
    master, slave = os.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env(), start_new_session=True)
    os.close(slave)
    shown = b''
    deadline = time.monotonic() + timeout
    try:
        for prompt, line in typed:
            while prompt.encode() not in shown:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f'no prompt {prompt!r} on the terminal: {shown!r}')
                r, _, _ = select.select([master], [], [], left)
                if r:
                    try:
                        shown += os.read(master, 1024)
                    except OSError:
                        break
            shown = shown.replace(prompt.encode(), b'<' + prompt.encode() + b'>', 1)
            os.write(master, line.encode() + b'\n')
        out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return p.returncode, shown.decode('utf-8', 'replace'), out.decode(), err.decode()


class CardCommands(sscardd.DaemonTestCase):
    """verify-pin, change-pin, reload-pin, unblock-pin, internal-auth, write-items and `call
    METHOD -`: PINs typed at a terminal without echo, or one a line on stdin; never argv."""

    def setUp(self):
        super().setUp()
        self.h.start_pcscd()
        self.h.start_card('gen2', slot=CARD)
        self.h.start_psam('gen2', slot=PSAM)
        self.start_daemon()
        self.wait_roles({CARD: 'user', PSAM: 'psam'})
        self.env = clean_env(SSCARD_SOCKET=self.d.socket_path)

    def ctl(self, *args, stdin=None):
        return ctl(*args, env=self.env, stdin=stdin)

    def test_pins_on_stdin(self):
        rc, out, err = self.ctl('verify-pin', stdin=GEN2_PIN + '\n')
        self.assertEqual((rc, out, err), (0, '密码正确 PIN verified\n', ''))
        # A wrong PIN: exit 5 and the tries left, in the right number; the PIN is never shown.
        for left in ('2 tries left', '1 try left'):
            rc, out, err = self.ctl('verify-pin', '--reader', slot_id(CARD), stdin='000000\n')
            self.assertEqual(rc, 5, err)
            self.assertEqual(out, '')
            self.assertIn(f'SSC_EPINWRONG: wrong PIN: {left} ', err)
            self.assertNotIn('000000', err)
        rc, out, err = self.ctl('--json', 'verify-pin', stdin=GEN2_PIN + '\r\n')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {'verified': True})   # and the tries are back
        # change-pin: the old PIN, then the new one, one a line.
        rc, out, err = self.ctl('change-pin', stdin=f'{GEN2_PIN}\n246813\n')
        self.assertEqual((rc, out, err), (0, '密码已修改 PIN changed\n', ''))
        rc, out, err = self.ctl('change-pin', stdin='999999\n135792\n')
        self.assertEqual(rc, 5, err)
        self.assertIn('2 tries left', err)
        # Blocked: the last try, then any PIN: exit 6.
        rc, out, err = self.ctl('verify-pin', stdin='999999\n')
        self.assertEqual(rc, 5, err)
        self.assertIn('1 try left', err)
        rc, out, err = self.ctl('verify-pin', stdin='999999\n')
        self.assertEqual(rc, 6, err)
        self.assertIn('SSC_EPINBLOCKED', err)
        self.assertIn('no tries left', err)
        rc, out, err = self.ctl('verify-pin', stdin='246813\n')
        self.assertEqual(rc, 6, err)
        # unblock-pin and reload-pin: a new PIN through the PSAM.
        rc, out, err = self.ctl('unblock-pin', stdin='975310\n')
        self.assertEqual((rc, out, err), (0, '密码已解锁 PIN unblocked\n', ''))
        rc, out, err = self.ctl('verify-pin', stdin='975310\n')
        self.assertEqual(rc, 0, err)
        rc, out, err = self.ctl('reload-pin', '--reader', slot_id(CARD), stdin='864200\n')
        self.assertEqual((rc, out, err), (0, '密码已重置 PIN reloaded\n', ''))
        rc, out, err = self.ctl('verify-pin', stdin='864200\n')
        self.assertEqual(rc, 0, err)
        # The daemon's own refusals are exit 1 (not a wrong PIN).
        rc, out, err = self.ctl('reload-pin', stdin='123456\n')
        self.assertEqual(rc, 1, err)
        self.assertIn('SSC_EPININITIAL', err)
        # call METHOD -: the params from stdin.
        rc, out, err = self.ctl('call', 'card.verify_pin', '-', stdin='{"pin": "864200"}')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {'verified': True})
        rc, out, err = self.ctl('call', 'card.verify_pin', '-', stdin='{"pin": ')
        self.assertEqual(rc, 2)
        self.assertIn('the params on stdin must be a JSON object', err)

    def test_no_pin_refused_before_the_daemon(self):
        before = len(sscardd.journal_settled(self.d))
        # A PIN given as an argument is refused (it would be in the process list) ...
        rc, out, err = self.ctl('verify-pin', GEN2_PIN)
        self.assertEqual(rc, 2, err)
        self.assertNotIn(GEN2_PIN, err)
        # ... no PIN at all, a second PIN missing, a line that cannot be a PIN.
        rc, out, err = self.ctl('verify-pin', stdin='')
        self.assertEqual(rc, 2, err)
        self.assertIn('no PIN: the input ended first', err)
        rc, out, err = self.ctl('change-pin', stdin='123456\n')
        self.assertEqual(rc, 2, err)
        self.assertIn('no new PIN', err)
        rc, out, err = self.ctl('verify-pin', stdin='1' * 100 + '\n')
        self.assertEqual(rc, 2, err)
        self.assertIn('longer than 64 characters', err)
        # None of these reached the daemon: only the barrier's row was added.
        rows = sscardd.journal_settled(self.d)
        self.assertEqual([r['method'] for r in rows[before:]
                          if not r['method'].startswith('e2e.barrier')], [])

    def test_pins_on_a_terminal(self):
        ctl_argv = [sscardd.ctl_binary(), '--socket', self.d.socket_path]
        rc, shown, out, err = on_terminal(ctl_argv + ['verify-pin'], [('PIN: ', GEN2_PIN)])
        self.assertEqual((rc, out, err), (0, '密码正确 PIN verified\n', ''), shown)
        self.assertIn('<PIN: >', shown)
        self.assertNotIn(GEN2_PIN, shown)        # typed without echo
        # A new PIN is typed twice; two that differ send nothing.
        rc, shown, out, err = on_terminal(ctl_argv + ['change-pin'], [
            ('Old PIN: ', GEN2_PIN), ('New PIN: ', '246813'), ('New PIN again: ', '246831')])
        self.assertEqual(rc, 2, (shown, err))
        self.assertIn('the two new PINs differ: nothing was sent', err)
        rc, shown, out, err = on_terminal(ctl_argv + ['change-pin'], [
            ('Old PIN: ', GEN2_PIN), ('New PIN: ', '246813'), ('New PIN again: ', '246813')])
        self.assertEqual((rc, out), (0, '密码已修改 PIN changed\n'), (shown, err))
        self.assertNotIn(GEN2_PIN, shown)
        self.assertNotIn('246813', shown)
        rc, shown, out, err = on_terminal(ctl_argv + ['verify-pin'], [('PIN: ', '246813')])
        self.assertEqual(rc, 0, (shown, err))

    def test_info_and_readers(self):
        rc, out, err = self.ctl('info')
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[-1], 'journal: ok')
        rc, out, err = self.ctl('readers')
        self.assertEqual(rc, 0, err)
        rows = [line.split() for line in out.splitlines()]
        self.assertEqual(rows[0], ['ID', 'DRIVER', 'CARD', 'ROLE', 'ALGO', 'TERMINAL', 'BUSY',
                                   'NAME'])
        # TERMINAL: the PSAM's terminal number (gen2.json psam.terminal_number), "-" otherwise.
        self.assertEqual(sorted(r[:7] for r in rows[1:]), [
            [slot_id(CARD), 'pcsc', 'yes', 'user', '-', '-', 'no'],
            [slot_id(PSAM), 'pcsc', 'yes', 'psam', 'des', '330100000001', 'no']])
        # --json passes reader.list through, terminal_number with it.
        rc, out, err = self.ctl('--json', 'readers')
        self.assertEqual(rc, 0, err)
        terms = {r['id']: r.get('terminal_number') for r in json.loads(out)['readers']}
        self.assertEqual(terms, {slot_id(CARD): None, slot_id(PSAM): '330100000001'})
        # A reader busy with an operation (its card does not answer) says so. (card.read_items:
        # card.read_basic is answered from the read-ahead without the card.)
        self.h.sims[CARD].sigstop()
        c = self.d.client()
        mid = c.request('card.read_items', {'file': 'SSSE/EF05', 'items': ['07']})
        self.d.wait_reader(c, self.h.reader_name(CARD), busy=True)
        rc, out, err = self.ctl('readers')
        self.h.sims[CARD].sigcont()
        row = next(line.split() for line in out.splitlines() if line.startswith(slot_id(CARD)))
        self.assertEqual(row[4:7], ['-', '-', 'yes'])
        c.reply(mid)

    def test_internal_auth_and_write_items(self):
        rc, out, err = self.ctl('internal-auth')
        self.assertEqual((rc, err), (0, ''))
        self.assertEqual(out, '算法 algorithm: des\n真卡 genuine (internal authentication): yes\n')
        rc, out, err = self.ctl('--json', 'internal-auth', '--reader', slot_id(CARD))
        self.assertEqual(json.loads(out), {'genuine': True, 'algorithm': 'des'})
        rc, out, err = self.ctl('write-items', 'DF04/EF05', '31=21', '34=1')
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[:2], ['31: 21', '34: 1'])
        self.assertRegex(lines[2], r'^日志 journal row: [0-9]+$')
        self.assertEqual(len(lines), 3)
        txn = {'time': '20261124083000', 'institution': 'H33010000007',
               'settlement_no': 'S2026112400000000123', 'total': 15000,
               'personal_account': 5000, 'pooled': 10000}
        rc, out, err = self.ctl('--json', 'write-items', 'DF04/EF08', '40=' + json.dumps(txn))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['items'], {'40': txn})
        rc, out, err = self.ctl('--json', 'read-items', 'DF04/EF05', '31', '34')
        self.assertEqual(json.loads(out)['items'], {'31': '21', '34': '1'})
        # Arguments that are not TAG=VALUE, a tag twice, a '{' that is not JSON: nothing sent.
        for args, msg in ((['31'], 'expected TAG=VALUE'), (['=5'], 'expected TAG=VALUE'),
                          (['31=1', '31=2'], 'item 31 given twice'),
                          (['40={"time":'], 'is not a JSON object')):
            rc, out, err = self.ctl('write-items', 'DF04/EF05', *args)
            self.assertEqual(rc, 2, err)
            self.assertIn(msg, err)
        # The daemon checks the values: its error, exit 1.
        rc, out, err = self.ctl('write-items', 'DF04/EF05', '99=1')
        self.assertEqual(rc, 1, err)
        self.assertIn('SSC_EBADITEM', err)

    def test_request_id(self):
        # --request-id makes a write and a PIN change idempotent (issue 15): the repeat prints
        # the first answer, journal row included; other values under it: the daemon's error.
        args = ('--json', 'write-items', 'DF04/EF05', '31=22', '--request-id', 'ctl-1')
        rc, first, err = self.ctl(*args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(first)['items'], {'31': '22'})
        rc, again, err = self.ctl(*args)
        self.assertEqual((rc, again, err), (0, first, ''))
        rc, out, err = self.ctl('write-items', 'DF04/EF05', '31=23', '--request-id', 'ctl-1')
        self.assertEqual(rc, 1, err)
        self.assertIn('SSC_EREQCONFLICT', err)
        rc, out, err = self.ctl('change-pin', '--request-id', 'ctl-2',
                                stdin=GEN2_PIN + '\n' + '246810\n')
        self.assertEqual(rc, 0, err)
        rc, out2, err = self.ctl('change-pin', '--request-id', 'ctl-2',
                                 stdin=GEN2_PIN + '\n' + '246810\n')
        self.assertEqual((rc, out2), (0, out))
        # Not for reads or VERIFY: refused before anything is asked or sent.
        for cmd in ('verify-pin', 'read-basic', 'internal-auth'):
            rc, out, err = self.ctl(cmd, '--request-id', 'x', stdin='')
            self.assertEqual(rc, 2, err)
            self.assertIn('--request-id only goes with', err)


def doc_text(name):
    with open(os.path.join(harness.SOURCE_DIR, name), encoding='utf-8') as f:
        return f.read()


class ByHand(sscardd.DaemonTestCase):
    """The docs' "by hand" commands use what the project installs: `sscardctl call` for the
    daemon, `sscard-sim ctl` for a simulator's control socket (no socat, no netcat)."""

    def test_no_foreign_tools_in_docs(self):
        for name in ('README.md', 'docs/api.md', 'docs/simulator.md', 'docs/operations.md'):
            text = doc_text(name)
            self.assertNotIn('socat', text, name)
            self.assertNotRegex(text, r'\bnc -', name)

    def test_api_by_hand(self):
        api = doc_text('docs/api.md')
        self.assertIn('sscardctl call system.info', api)
        self.h.start_pcscd()
        d = self.start_daemon()
        rc, out, err = shell('sscardctl call system.info',
                             env=clean_env(SSCARD_SOCKET=d.socket_path,
                                           PATH=os.path.dirname(sscardd.ctl_binary()) + ':' +
                                           os.environ['PATH']))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)['api_level'], 1)

    def test_sim_ctl(self):
        sim_doc = doc_text('docs/simulator.md')
        for cmd in ('remove', 'insert', 'status'):
            self.assertIn(f'sscard-sim ctl /tmp/card.ctl {cmd}', sim_doc)
        self.h.start_pcscd()
        card = self.h.start_card('gen2', slot=CARD)
        d = self.start_daemon()
        self.wait_roles({CARD: 'user'})
        sim = [harness.sim_binary(), 'ctl', card.control_path]

        def run(*args):
            p = subprocess.run(sim + list(args), capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout, p.stderr
        self.assertEqual(run('remove'), (0, 'ok\n', ''))
        d.wait_reader(self.c, self.h.reader_name(CARD), card=False)
        rc, out, err = run('status')
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith('absent link='), out)
        self.assertEqual(run('insert'), (0, 'ok\n', ''))
        self.wait_roles({CARD: 'user'})
        self.assertEqual(run('drop-after', '0'), (0, 'ok\n', ''))
        rc, out, err = run('frobnicate')
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith('error unknown command'), out)
        p = subprocess.run([harness.sim_binary(), 'ctl', self.h.path('nobody.ctl'), 'status'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn('is a simulator running with --control on that socket?', p.stderr)
        p = subprocess.run([harness.sim_binary(), 'ctl', card.control_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)


    def test_events(self):
        """sscardctl events prints each event on a line: card.ready with the role found."""
        self.h.start_pcscd()
        card = self.h.start_card('gen2', slot=CARD)
        d = self.start_daemon()
        self.wait_roles({CARD: 'user'})
        p = subprocess.Popen([sscardd.ctl_binary(), 'events', '--count', '3', '--for', '30000'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=clean_env(SSCARD_SOCKET=d.socket_path))
        try:
            # Its subscription is live once it says it waits.
            self.assertIn('waiting for events', p.stderr.readline())
            sim = [harness.sim_binary(), 'ctl', card.control_path]
            subprocess.run(sim + ['remove'], check=True, capture_output=True, timeout=30)
            d.wait_reader(self.c, self.h.reader_name(CARD), card=False)
            subprocess.run(sim + ['insert'], check=True, capture_output=True, timeout=30)
            out, err = p.communicate(timeout=40)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        lines = [line.split(None, 2)[2] for line in out.splitlines()]
        reader = self.h.reader_name(CARD)
        self.assertEqual(lines, [f'card.removed   {slot_id(CARD)} ({reader})',
                                 f'card.inserted  {slot_id(CARD)} ({reader})',
                                 f'card.ready     {slot_id(CARD)} ({reader}) role user'])


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
