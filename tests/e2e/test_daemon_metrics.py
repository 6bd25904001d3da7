#!/usr/bin/python3
"""The Prometheus endpoint ([metrics] listen, issue 19), end to end: the daemon (inside the test's
network namespace, so that its loopback and ports are the test's own) serves /metrics;

* `promtool check metrics` accepts the text;
* a real Prometheus server (Debian's prometheus), started by the test in the same namespace with a
  1 s scrape interval and the alert rules of docs/prometheus/sscard-alerts.yml, scrapes it (target
  up, a counter queried through its HTTP API) and loads the rules;
* counters move by exactly one per operation: one card.read_basic moves
  sscard_operations_total{method="card.read_basic",result="SSC_OK"} and the latency histogram's
  count by 1, the audit rows by 1, and sscard_apdus_total{driver="pcsc"} by exactly the APDUs the
  simulated card and PSAM received; a failed call counts under its error name, an unknown method
  (or a number sent as a method) under method="other"; a connection over max_clients_per_uid
  under limit="max_clients_per_uid";
* the gauges: readers and cards by role, queue depth per reader, clients, journal up;
* the journal down: sscard_journal_up 0, and every call's audit row counted in
  sscard_audit_rows_dropped_total;
* key-provider failures: with the simulated key server answering 500, each failed write moves
  sscard_key_provider_failures_total{provider="hsm"} by one; working calls move it not at all;
* no personal data in the text: not the card number, the ID number or the name;
* anything but GET /metrics is 404 / 405; with no [metrics] listen nothing listens; with the port
  taken, an error line and the desk served without metrics;
* libmicrohttpd (and GnuTLS with it) is mapped only with [metrics] listen; when it cannot be loaded
  the daemon stops at start with SSC_EMETRICSLIB and the package to install (exit 1;
  --check-config exits 2), and without [metrics] it starts regardless;
* the alert rules: `promtool check rules`, the file as docs/operations.md shows it, and
  `promtool test rules` on series of desks that lose their reader or their journal, a healthy desk
  and one that never had a reader (each alert fires after its 5 minutes, only where it should).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_metrics.py
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import hsmkit  # noqa: E402
import sscardd  # noqa: E402

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR',
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
RULES = os.path.join(SOURCE_DIR, 'docs', 'prometheus', 'sscard-alerts.yml')
PORT = 9477
PROM_PORT = 9090

FETCH = r'''
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=sys.argv[2]), timeout=10)
    sys.stdout.write(f'{r.status}\n{r.headers.get("Content-Type")}\n' + r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(f'{e.code}\n{e.headers.get("Content-Type")}\n' + e.read().decode())
'''


def parse(text):
    """{(name, frozenset(labels)): value} of the sample lines."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^([a-z_:]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ''))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def fetch(h, path='/metrics', method='GET', port=PORT):
    """(status, content type, body) of an HTTP request inside the test's network namespace."""
    out = h.ns_run(['/usr/bin/python3', '-c', FETCH, f'http://127.0.0.1:{port}{path}', method])
    status, ctype, body = out.split('\n', 2)
    return int(status), ctype, body


class Metrics(sscardd.DaemonTestCase):
    readers = 2
    deadline = 240.0

    def fetch(self, path='/metrics', method='GET', port=PORT):
        return fetch(self.h, path, method, port)

    def scrape(self):
        status, ctype, body = self.fetch()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, 'text/plain; version=0.0.4; charset=utf-8')
        return body

    def start(self, **config):
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.psam = self.h.start_psam('gen2', slot=1)
        # prefetch = no: the APDUs counted are those of the read below, which must talk to the card.
        cfg = {'metrics': {'listen': f'127.0.0.1:{PORT}'}, 'card': {'prefetch': 'no'}}
        cfg.update(config)
        d = sscardd.Daemon(self.h, config=cfg, in_mountns=True).start()
        self.c = d.client()
        d.wait_readers(self.c, {self.h.reader_name(0): {'card': True, 'role': 'user'},
                                 self.h.reader_name(1): {'card': True, 'role': 'psam'}},
                       timeout=15)
        return d

    def test_counters_and_prometheus(self):
        d = self.start(limits={'max_clients_per_uid': 3})
        text = self.scrape()
        p = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True,
                           text=True)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ''))
        self.assertIn('sscard_build_info{version="', text)

        # One read: exactly one more of everything it is, and exactly the APDUs the simulators saw.
        sscardd.journal_settled(d)
        before = parse(self.scrape())
        apdus = self.card.status()['apdus'] + self.psam.status()['apdus']
        basic = self.c.call('card.read_basic', timeout=15)
        apdus = self.card.status()['apdus'] + self.psam.status()['apdus'] - apdus
        self.assertGreater(apdus, 2)
        sscardd.journal_settled(d)
        text = self.scrape()
        after = parse(text)

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)
        self.assertEqual(delta('sscard_operations_total', method='card.read_basic',
                               result='SSC_OK'), 1)
        self.assertEqual(delta('sscard_operation_duration_seconds_count',
                               method='card.read_basic'), 1)
        self.assertEqual(delta('sscard_operation_duration_seconds_bucket',
                               method='card.read_basic', le='+Inf'), 1)
        # journal_settled()'s barrier is a call too: an unknown method, one more audit row.
        self.assertEqual(delta('sscard_journal_rows_total', kind='audit'), 2)
        self.assertEqual(delta('sscard_operations_total', method='other',
                               result='RPC_METHOD_NOT_FOUND'), 1)
        self.assertEqual(delta('sscard_apdus_total', driver='pcsc'), apdus)
        # The scrapes between are not API calls: system.info counted only the harness's.
        self.assertEqual(delta('sscard_operations_total', method='system.info', result='SSC_OK'),
                         0)
        # No personal data anywhere in the text.
        for secret in (basic['card_number'], basic['ssn'], basic['name']):
            self.assertNotIn(secret, text)

        # Errors under their names; unknown methods (and numbers sent as methods) as "other".
        before = after
        with self.assertRaises(sscardd.RpcError):
            self.c.call('card.read_basic', {'reader': 'no-such-reader'})
        for method in ('no.such_method', '330102199003071230'):
            self.c.send({'jsonrpc': '2.0', 'id': 99, 'method': method})
            self.assertIn('error', self.c.reply(99))
        # A fourth connection of this uid (the harness's probe is gone; self.c and two more).
        extra = [d.client(), d.client()]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(d.socket_path)
            self.assertIn(b'SSC_ELIMIT', s.recv(4096))
        text = self.scrape()
        after = parse(text)
        self.assertEqual(delta('sscard_operations_total', method='card.read_basic',
                               result='SSC_ENOREADER'), 1)
        self.assertEqual(delta('sscard_operations_total', method='other',
                               result='RPC_METHOD_NOT_FOUND'), 2)
        self.assertNotIn('330102199003071230', text)
        self.assertNotIn('no.such_method', text)
        self.assertEqual(delta('sscard_connections_refused_total', limit='max_clients_per_uid'),
                         1)

        # Gauges.
        self.assertEqual(val(after, 'sscard_clients_connected'), 3)
        self.assertEqual(val(after, 'sscard_readers_present', driver='pcsc'), 2)
        self.assertEqual(val(after, 'sscard_cards_present', role='user'), 1)
        self.assertEqual(val(after, 'sscard_cards_present', role='psam'), 1)
        self.assertEqual(val(after, 'sscard_journal_up'), 1)
        ids = {r['id'] for r in d.readers(self.c)}
        for rid in ids:
            self.assertIn(('sscard_reader_queue_depth', frozenset({('reader', rid)})), after)
        for c in extra:
            c.close()

        # A real Prometheus scrapes it and loads the alert rules.
        prom_dir = self.h.path('prometheus')
        os.makedirs(prom_dir)
        conf = os.path.join(prom_dir, 'prometheus.yml')
        with open(conf, 'w') as f:
            f.write('global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
                    f'rule_files:\n  - {RULES}\n'
                    'scrape_configs:\n  - job_name: sscard\n    static_configs:\n'
                    f"      - targets: ['127.0.0.1:{PORT}']\n")
        self.h.spawn('prometheus', ['prometheus', f'--config.file={conf}',
                                    f'--storage.tsdb.path={prom_dir}/data',
                                    f'--web.listen-address=127.0.0.1:{PROM_PORT}'],
                     in_netns=True, pcsc=False)

        def query(q):
            try:
                status, _, body = self.fetch('/api/v1/query?query=' + urllib.parse.quote(q),
                                             port=PROM_PORT)
            except harness.HarnessError:
                return None
            if status != 200:
                return None
            res = json.loads(body)['data']['result']
            return res or None
        up = harness.wait_until(lambda: query('up{job="sscard"} == 1'), 90,
                                'Prometheus to scrape sscardd')
        self.assertEqual(up[0]['value'][1], '1')
        want = val(after, 'sscard_operations_total', method='card.read_basic', result='SSC_OK')
        got = harness.wait_until(
            lambda: query('sscard_operations_total{method="card.read_basic",result="SSC_OK"}'),
            30, 'the counter in Prometheus')
        self.assertEqual(float(got[0]['value'][1]), want)
        status, _, body = self.fetch('/api/v1/rules', port=PROM_PORT)
        rules = [r for g in json.loads(body)['data']['groups'] for r in g['rules']]
        self.assertEqual(sorted(r['name'] for r in rules),
                         ['SscardJournalDown', 'SscardReaderGone'])
        self.assertTrue(all(r['health'] == 'ok' for r in rules), rules)
        self.assertTrue(all(r['state'] == 'inactive' for r in rules), rules)

    def test_endpoint(self):
        self.start()
        self.assertEqual(self.fetch('/')[0], 404)
        self.assertEqual(self.fetch('/metrics?x=1')[0], 200)
        self.assertEqual(self.fetch('/metrics', method='POST')[0], 405)
        self.assertEqual(self.fetch('/metrics', method='HEAD')[0], 200)

    def test_journal_down(self):
        # The journal cannot open (its directory's place is taken by a file): sscard_journal_up
        # is 0 (what SscardJournalDown alerts on) and every call's audit row is counted dropped.
        self.h.start_pcscd()
        blocker = self.h.path('not-a-directory')
        open(blocker, 'w').close()
        d = sscardd.Daemon(self.h, in_mountns=True,
                           config={'metrics': {'listen': f'127.0.0.1:{PORT}'},
                                   'journal': {'path': os.path.join(blocker, 'j.db')}}).start()
        c = d.client()
        self.assertTrue(c.call('system.info')['journal'].startswith('unavailable'))
        before = parse(self.scrape())
        self.assertEqual(val(before, 'sscard_journal_up'), 0)
        for _ in range(3):
            c.call('reader.list')
        after = parse(self.scrape())
        self.assertEqual(val(after, 'sscard_audit_rows_dropped_total') -
                         val(before, 'sscard_audit_rows_dropped_total'), 3)
        self.assertEqual(val(after, 'sscard_journal_rows_total', kind='audit'), 0)
        self.assertEqual(val(after, 'sscard_journal_up'), 0)

    def test_port_taken(self):
        # Another program has the port: an error line, and the desk is served without metrics.
        self.h.start_pcscd()
        self.h.spawn('squatter', ['/usr/bin/python3', '-c',
                                  'import socket, time\n'
                                  's = socket.socket()\n'
                                  f's.bind(("127.0.0.1", {PORT}))\n'
                                  's.listen()\n'
                                  'time.sleep(600)\n'], in_netns=True, pcsc=False)
        harness.wait_until(lambda: PORT in self.h.ns.listening_ports(), 10, 'the squatter')
        d = sscardd.Daemon(self.h, config={'metrics': {'listen': f'127.0.0.1:{PORT}'}},
                           in_mountns=True).start()
        self.assertIn(f'metrics: cannot listen on 127.0.0.1:{PORT}: Address already in use',
                      d.log_text())
        self.assertEqual(d.client().call('system.info')['journal'], 'ok')
        self.assertTrue(d.alive())

    def test_port_below_1024_after_drop(self):
        # The endpoint opens after root is dropped ([daemon] user; the unit has no capability):
        # a port below 1024 is refused with an error line, and the desk is served without it.
        self.h.start_pcscd()
        os.chmod(self.h.dir, 0o711)
        d = sscardd.Daemon(self.h, in_mountns=True,
                           config={'daemon': {'user': 'nobody'},
                                   'metrics': {'listen': '127.0.0.1:80'},
                                   'journal': {'path': self.h.path('state/j.db')}}).start()
        self.assertIn('metrics: cannot listen on 127.0.0.1:80: Permission denied', d.log_text())
        self.assertNotIn(80, self.h.ns.listening_ports())
        self.assertEqual(d.client().call('system.info')['journal'], 'ok')

    def test_off_by_default(self):
        self.h.start_pcscd()
        d = sscardd.Daemon(self.h, in_mountns=True).start()
        self.assertNotIn(PORT, self.h.ns.listening_ports())
        self.assertIn('config: metrics off', d.log_text())

    def test_library_only_when_on(self):
        # The daemon loads libmicrohttpd for the endpoint only (docs/operations.md, [metrics]):
        # with the metrics off neither it nor GnuTLS and GnuTLS's libraries are in the process;
        # with [metrics] listen they are, from the start, and the endpoint answers.
        self.h.start_pcscd()
        off = sscardd.Daemon(self.h, name='off', socket_name='off.sock', in_mountns=True).start()
        for lib in ('libmicrohttpd', 'libgnutls', 'libp11-kit', 'libnettle', 'libhogweed'):
            self.assertFalse(harness.library_mapped(off.pid, lib),
                             f'{lib} mapped with the metrics off')
        off.stop()
        d = sscardd.Daemon(self.h, config={'metrics': {'listen': f'127.0.0.1:{PORT}'}},
                           in_mountns=True).start()
        self.assertTrue(harness.library_mapped(d.pid, 'libmicrohttpd.so.12'),
                        'libmicrohttpd not loaded')
        self.assertTrue(harness.library_mapped(d.pid, 'libgnutls'),
                        'libmicrohttpd\'s GnuTLS not loaded')
        self.assertIn('sscard_build_info{', self.scrape())

    def test_library_missing(self):
        # libmicrohttpd.so.12 cannot be loaded (here: LD_LIBRARY_PATH finds a file that is no
        # library first): with [metrics] listen the daemon refuses to start, naming
        # SSC_EMETRICSLIB and the package to install, instead of serving without its metrics;
        # with the metrics off it starts and serves, since it never needs libmicrohttpd.
        self.h.start_pcscd()
        libdir = self.h.path('nolib')
        os.makedirs(libdir)
        with open(os.path.join(libdir, 'libmicrohttpd.so.12'), 'w') as f:
            f.write('not a shared library\n')
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        d = sscardd.Daemon(self.h, config={'metrics': {'listen': f'127.0.0.1:{PORT}'}},
                           name='nomhd', socket_name='nomhd.sock', in_mountns=True, env=env)
        with open(d.config_path, 'w') as f:
            f.write(sscardd.ini_text(d.sections))
        want = ('[metrics] listen is set, but libmicrohttpd cannot be loaded (SSC_EMETRICSLIB: '
                f'{libdir}/libmicrohttpd.so.12: ')
        todo = ('install the package libmicrohttpd12 (apt-get install libmicrohttpd12), or '
                'remove [metrics] listen')
        p = subprocess.run([*d.argv(), '--check-config'], capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(f'sscardd: {d.config_path}: {want}', p.stderr)
        self.assertIn(todo, p.stderr)
        self.assertNotIn('configuration OK', p.stdout)
        proc = self.h.spawn('nomhd', d.argv(), env=env, in_mountns=True)
        self.assertEqual(proc.wait(20), 1)
        self.assertIn(want, proc.log_text())
        self.assertIn(todo, proc.log_text())
        self.assertFalse(os.path.exists(d.socket_path))
        self.assertNotIn(PORT, self.h.ns.listening_ports())
        plain = sscardd.Daemon(self.h, name='plain', socket_name='plain.sock', in_mountns=True,
                               env=env).start()
        self.assertFalse(harness.library_mapped(plain.pid, 'libmicrohttpd'))
        self.assertEqual(plain.client().call('system.info')['journal'], 'ok')


class KeyProvider(sscardd.DaemonTestCase):
    """sscard_key_provider_failures_total{provider="hsm"}: a key-server failure is counted once per
    failed key operation, a working one not at all (the daemon wraps its key providers)."""
    readers = 2
    deadline = 240.0

    def test_hsm_failures_counted(self):
        self.h.start_pcscd()
        pki = hsmkit.make_pki(self.h)
        self.h.start_card('gen2', slot=0)
        ks = hsmkit.KeyServer(self.h, pki).start()
        cfg = hsmkit.daemon_config(pki, timeout_ms=1500)
        cfg['metrics'] = {'listen': f'127.0.0.1:{PORT}'}
        d = sscardd.Daemon(self.h, config=cfg, in_mountns=True, op_timeout_ms=8000).start()
        c = d.client()
        d.wait_reader(c, self.h.reader_name(0), card=True, role='user', timeout=15)

        def failures():
            status, _, body = fetch(self.h)
            self.assertEqual(status, 200)
            return val(parse(body), 'sscard_key_provider_failures_total', provider='hsm')
        write = {'file': 'SSSE/EF06', 'items': {'0B': '02'}}
        # A working key server (the terminal number is asked for here, once) counts nothing.
        c.call('card.write_items', write, timeout=30)
        self.assertEqual(failures(), 0)
        ks.switch('fail', 500)
        for n in (1, 2):
            with self.assertRaises(sscardd.RpcError) as e:
                c.call('card.write_items', write, timeout=30)
            self.assertEqual(e.exception.name, 'SSC_EHSMSERVER')
            self.assertEqual(failures(), n)
        ks.switch('fail', 'none')
        c.call('card.write_items', write, timeout=30)
        self.assertEqual(failures(), 2)


class Rules(unittest.TestCase):
    def test_rules_and_docs(self):
        p = subprocess.run(['promtool', 'check', 'rules', RULES], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('SUCCESS: 2 rules found', p.stdout)
        # docs/operations.md shows the file as it is.
        with open(RULES) as f:
            rules = f.read()
        with open(os.path.join(SOURCE_DIR, 'docs', 'operations.md')) as f:
            self.assertIn('```yaml\n' + rules + '```', f.read())

    def test_scrape_config_example(self):
        # The scrape configuration docs/operations.md shows, with its rule file where the docs
        # put it (here: the shipped file's path), passes `promtool check config`.
        with open(os.path.join(SOURCE_DIR, 'docs', 'operations.md')) as f:
            blocks = re.findall(r'```yaml\n(scrape_configs:.*?)```', f.read(), re.S)
        self.assertEqual(len(blocks), 1)
        self.assertIn('- /etc/prometheus/rules/sscard-alerts.yml\n', blocks[0])
        d = tempfile.mkdtemp(prefix='sscard-scrape.')
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, 'prometheus.yml')
        with open(path, 'w') as f:
            f.write(blocks[0].replace('/etc/prometheus/rules/sscard-alerts.yml', RULES))
        p = subprocess.run(['promtool', 'check', 'config', path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('SUCCESS: 2 rules found', p.stdout)

    def test_rules_fire(self):
        # `promtool test rules`: the two alerts fire on the series a desk would show, after their
        # 5 minutes, and not for a healthy desk nor for one that never had a reader. Series every
        # minute; 'AxN' is A repeated N more times.
        d = tempfile.mkdtemp(prefix='sscard-rules.')
        self.addCleanup(shutil.rmtree, d, True)
        gone = {'severity': 'warning', 'instance': 'desk-1:9477'}
        gone_ann = {'summary': 'sscardd on desk-1:9477 sees no card reader',
                    'description': "Check the reader's cable and pcscd (systemctl status pcscd); "
                                   "the daemon's log names the readers it lost."}
        down = {'severity': 'critical', 'instance': 'desk-1:9477', 'job': 'sscard'}
        down_ann = {'summary': 'sscardd on desk-1:9477: the journal is unavailable, card writes '
                               'are refused',
                    'description': "See 'journalctl -u sscardd' for why (disk full, "
                                   "permissions); the daemon retries by itself."}

        def series(metric, instance, values, **labels):
            lab = ','.join(f'{k}="{v}"' for k, v in
                           dict(instance=instance, job='sscard', **labels).items())
            return {'series': f'{metric}{{{lab}}}', 'values': values}
        spec = {
            'rule_files': [RULES],
            'evaluation_interval': '1m',
            'tests': [{
                'interval': '1m',
                'input_series': [
                    # desk-1: its pcsc reader goes at minute 31, its journal at minute 11.
                    series('sscard_readers_present', 'desk-1:9477', '1x30 0x80', driver='pcsc'),
                    series('sscard_readers_present', 'desk-1:9477', '0x110', driver='usb-ccid'),
                    series('sscard_journal_up', 'desk-1:9477', '1x10 0x50'),
                    # desk-2: healthy. desk-3: never had a reader (not set up yet).
                    series('sscard_readers_present', 'desk-2:9477', '2x60', driver='pcsc'),
                    series('sscard_readers_present', 'desk-2:9477', '0x60', driver='usb-ccid'),
                    series('sscard_journal_up', 'desk-2:9477', '1x60'),
                    series('sscard_readers_present', 'desk-3:9477', '0x60', driver='pcsc'),
                    series('sscard_journal_up', 'desk-3:9477', '1x60'),
                ],
                'alert_rule_test': [
                    {'eval_time': '30m', 'alertname': 'SscardReaderGone', 'exp_alerts': []},
                    {'eval_time': '34m', 'alertname': 'SscardReaderGone', 'exp_alerts': []},
                    {'eval_time': '40m', 'alertname': 'SscardReaderGone',
                     'exp_alerts': [{'exp_labels': gone, 'exp_annotations': gone_ann}]},
                    {'eval_time': '90m', 'alertname': 'SscardReaderGone',
                     'exp_alerts': [{'exp_labels': gone, 'exp_annotations': gone_ann}]},
                    # An hour after the last reader was seen, the alert's look-back is empty.
                    {'eval_time': '95m', 'alertname': 'SscardReaderGone', 'exp_alerts': []},
                    {'eval_time': '14m', 'alertname': 'SscardJournalDown', 'exp_alerts': []},
                    {'eval_time': '20m', 'alertname': 'SscardJournalDown',
                     'exp_alerts': [{'exp_labels': down, 'exp_annotations': down_ann}]},
                ],
            }],
        }
        path = os.path.join(d, 'sscard-alerts-test.yml')
        with open(path, 'w') as f:
            json.dump(spec, f)                 # JSON is YAML
        p = subprocess.run(['promtool', 'test', 'rules', path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('SUCCESS', p.stdout)


if __name__ == '__main__':
    unittest.main()
