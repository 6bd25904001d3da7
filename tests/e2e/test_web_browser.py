#!/usr/bin/env python3
"""sscard-web in a real browser (issue 17): headless Chromium (Debian's chromium + chromium-driver,
driven by python3-selenium) with the real daemon, the real bridge and the simulated card.

* A page of an allowed origin (the demo page's files served by a plain HTTP server on another loopback
  port) pairs with a code from `sscardctl web pair`, reads the card, sees card.removed and
  card.inserted when the simulated card is pulled and put back (`sscard-sim ctl`), and is refused a
  write its policy does not allow (SSC_EPOLICY).
* The same page from an origin that is not allowed gets nothing: its handshake is refused (403).
* The same page served from an address of a network namespace this test creates (not loopback):
  Chromium's Local Network Access decides whether it may open ws://127.0.0.1 at all. What it did is
  written to lna.json in the test's directory and checked against what docs/web.md says.
* The demo page served by the bridge itself, after a read: a screenshot demo-after-read.png in the
  test's directory, copied with lna.json to BUILD_DIR/test-output/web/ (and $SSC_WEB_SHOTS when set).

Never skipped: scripts/deps.sh installs chromium, chromium-driver and python3-selenium, so a
missing one fails every test here with what to install (a skipped browser test would pass in no
time and prove nothing). It runs in the sanitizer build too, where the daemon and the bridge that
the browser drives are built with ASan."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import sscardd  # noqa: E402
import webtest  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    SELENIUM_ERROR = None
except ImportError as e:
    SELENIUM_ERROR = str(e)

CHROMIUM = '/usr/lib/chromium/chromium'
DRIVER = '/usr/bin/chromedriver'
NS_ADDR_HOST, NS_ADDR_PAGE = '10.231.77.1', '10.231.77.2'   # the test's own namespace only


def missing_browser():
    """What is missing for the browser (None when nothing is): the test then fails, naming it."""
    if SELENIUM_ERROR:
        return (f'python3-selenium cannot be imported by {sys.executable} ({SELENIUM_ERROR}): '
                'scripts/deps.sh installs it')
    for p in (CHROMIUM, DRIVER):
        if not os.access(p, os.X_OK):
            return f'{p} is missing: scripts/deps.sh installs chromium and chromium-driver'
    return None


def keep_output(path):
    """Copies a result file to the build's test-output/web/ (the per-test directory is removed
    when the test passes), and to $SSC_WEB_SHOTS when set."""
    for d in (os.path.join(harness.BUILD_DIR, 'test-output', 'web'),
              os.environ.get('SSC_WEB_SHOTS')):
        if d:
            os.makedirs(d, exist_ok=True)
            shutil.copy(path, d)


class PageServer:
    """python3 -m http.server serving web/static at addr:port (optionally inside a network namespace)."""

    def __init__(self, h, name, addr, port, netns=None):
        argv = [sys.executable, '-m', 'http.server', '--bind', addr, '--directory',
                webtest.static_dir(), str(port)]
        if netns:
            argv = ['ip', 'netns', 'exec', netns] + argv
        self.origin = f'http://{addr}:{port}'
        self.proc = h.spawn(name, argv, pcsc=False)
        harness.wait_until(lambda: self._up(netns, addr, port), 10, f'{name} to listen')

    def _up(self, netns, addr, port):
        probe = ['curl', '-s', '-o', '/dev/null', '--max-time', '1', f'http://{addr}:{port}/']
        if netns:
            probe = ['ip', 'netns', 'exec', netns] + probe
        return subprocess.run(probe).returncode == 0 or None


class Browser(sscardd.DaemonTestCase):
    readers = 2
    deadline = 300.0

    def setUp(self):
        missing = missing_browser()
        if missing:
            self.fail(missing)
        super().setUp()
        self.h.start_pcscd()
        self.card = self.h.start_card('gen2', slot=0)
        self.h.start_psam('gen2', slot=1)
        self.d = webtest.start_daemon(self)
        self.wait_roles({0: 'user', 1: 'psam'})
        self.page_port = webtest.free_port()
        self.page = PageServer(self.h, 'pages', '127.0.0.1', self.page_port)
        self.netns = None
        self.b = None
        self.drivers = []

    def start_bridge(self, extra_origins=()):
        self.b = webtest.Bridge(self.h, self.d,
                                origins=[self.page.origin, *extra_origins]).start()
        return self.b

    def browser(self, extra_args=()):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
                  '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
                  '--window-size=1000,900', '--lang=zh-CN',
                  f'--user-data-dir={tempfile.mkdtemp(prefix="chromium-", dir=self.h.dir)}',
                  *extra_args):
            opts.add_argument(a)
        d = webdriver.Chrome(service=Service(DRIVER, log_output=self.h.path('chromedriver.log'))
                             if 'log_output' in Service.__init__.__code__.co_varnames
                             else Service(DRIVER, log_path=self.h.path('chromedriver.log')),
                             options=opts)
        d.set_page_load_timeout(30)
        d.set_script_timeout(30)
        self.drivers.append(d)
        self.addCleanup(d.quit)
        return d

    @staticmethod
    def text(d, elem_id):
        return d.find_element(By.ID, elem_id).text

    def wait_text(self, d, elem_id, pred, what, timeout=20):
        return harness.wait_until(lambda: (lambda t: t if pred(t) else None)(
            self.text(d, elem_id)), timeout, what)

    def pair(self, d, origin):
        code = webtest.pair_code(self.d, origin)
        harness.wait_until(lambda: d.find_element(By.ID, 'pairing').is_displayed() or None, 20,
                           'the pairing form')
        d.find_element(By.ID, 'code').send_keys(code)
        d.find_element(By.ID, 'pair').click()
        harness.wait_until(lambda: d.find_element(By.ID, 'desk').is_displayed() or None, 20,
                           'the page to pair (status: ' + self.text(d, 'status') + ')')

    def page_call(self, d, method, params):
        """Calls through the page's own connection (its call()); ['ok', result] or ['err', e]."""
        return d.execute_async_script(
            'const cb = arguments[arguments.length - 1];'
            'call(arguments[0], arguments[1]).then(r => cb(["ok", r]), e => cb(["err", e]));',
            method, params)

    def test_allowed_page_pairs_reads_gets_events_and_is_refused_a_write(self):
        b = self.start_bridge()
        d = self.browser()
        d.get(f'{self.page.origin}/index.html?bridge=127.0.0.1:{b.port}')
        self.pair(d, self.page.origin)
        with self.d.client() as c:
            want = c.call('card.read_basic')
        d.find_element(By.ID, 'read').click()
        self.wait_text(d, 'f-name', lambda t: t == want['name'], 'the name on the page')
        self.assertEqual(self.text(d, 'f-ssn'), want['ssn'])
        # Pull the simulated card and put it back, as a person would (sscard-sim ctl).
        ctl = [harness.sim_binary(), 'ctl', self.card.control_path]
        self.assertEqual(subprocess.run(ctl + ['remove'], capture_output=True, text=True,
                                        timeout=10).stdout.strip(), 'ok')
        self.wait_text(d, 'events', lambda t: 'card.removed' in t, 'card.removed on the page')
        self.assertEqual(self.text(d, 'f-name'), '')
        self.assertEqual(subprocess.run(ctl + ['insert'], capture_output=True, text=True,
                                        timeout=10).stdout.strip(), 'ok')
        self.wait_text(d, 'events', lambda t: 'card.inserted' in t, 'card.inserted on the page')
        # A write is not in this origin's policy: refused by the bridge.
        r = self.page_call(d, 'card.write_items', {'file': 'DF04/EF05', 'items': {'31': '21'}})
        self.assertEqual(r[0], 'err')
        self.assertEqual(r[1]['data']['name'], 'SSC_EPOLICY')
        # The holder's PIN is (the demo page's and this origin's policy has no verify_pin).
        r = self.page_call(d, 'card.verify_pin', {'pin': '123456'})
        self.assertEqual(r[1]['data']['name'], 'SSC_EPOLICY')
        # A reload keeps the pairing (the token in localStorage, bridge.hello).
        d.refresh()
        harness.wait_until(lambda: d.find_element(By.ID, 'desk').is_displayed() or None, 20,
                           'the page to come back paired')
        rows = webtest.journal_web_rows(self.d)
        self.assertIn(('bridge.pair', 'SSC_OK', self.page.origin), rows)
        self.assertIn(('bridge.hello', 'SSC_OK', self.page.origin), rows)
        self.assertIn(('card.read_basic', 'SSC_OK', self.page.origin), rows)
        self.assertIn(('card.write_items', 'SSC_EPOLICY', self.page.origin), rows)
        self.assertIn(('card.verify_pin', 'SSC_EPOLICY', self.page.origin), rows)

    def test_other_origin_gets_nothing(self):
        other = PageServer(self.h, 'other-pages', '127.0.0.1', webtest.free_port())
        b = self.start_bridge()
        d = self.browser()
        d.get(f'{other.origin}/index.html?bridge=127.0.0.1:{b.port}')
        st = self.wait_text(d, 'status', lambda t: t.startswith('disconnected'),
                            'the refused connection')
        self.assertEqual(st, 'disconnected (1006)')
        self.assertFalse(d.find_element(By.ID, 'pairing').is_displayed())
        self.assertFalse(d.find_element(By.ID, 'desk').is_displayed())
        self.assertIn(f'Origin "{other.origin}" is not allowed', b.log_text())
        self.assertNotIn(other.origin, json.dumps(webtest.journal_web_rows(self.d)))

    def make_netns(self):
        """A network namespace of this test's own with a veth pair: the page's server listens on
        NS_ADDR_PAGE inside it; the browser reaches it from here through NS_ADDR_HOST."""
        name = f'sscweb{os.getpid()}'
        host_if, ns_if = f'sw{os.getpid() % 100000}h', f'sw{os.getpid() % 100000}n'
        cmds = [['ip', 'netns', 'add', name],
                ['ip', 'link', 'add', host_if, 'type', 'veth', 'peer', 'name', ns_if],
                ['ip', 'link', 'set', ns_if, 'netns', name],
                ['ip', 'addr', 'add', f'{NS_ADDR_HOST}/30', 'dev', host_if],
                ['ip', 'link', 'set', host_if, 'up'],
                ['ip', '-n', name, 'addr', 'add', f'{NS_ADDR_PAGE}/30', 'dev', ns_if],
                ['ip', '-n', name, 'link', 'set', ns_if, 'up'],
                ['ip', '-n', name, 'link', 'set', 'lo', 'up']]
        self.addCleanup(subprocess.run, ['ip', 'netns', 'del', name])
        self.addCleanup(subprocess.run, ['ip', 'link', 'del', host_if], capture_output=True)
        for c in cmds:
            p = subprocess.run(c, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, f'cannot make a network namespace: {c}: '
                             f'{p.stderr.strip()}')
        self.netns = name
        return name

    def lna_try(self, d, url, timeout=15):
        """Loads url and returns what became of the page's WebSocket: 'paired-form' (it connected:
        the pairing form shows) or the status text when it did not."""
        d.get(url)

        def settled():
            st = self.text(d, 'status')
            if d.find_element(By.ID, 'pairing').is_displayed():
                return 'connected'
            return st if st.startswith('disconnected') else None
        return harness.wait_until(settled, timeout, 'the page to connect or fail')

    def test_page_from_a_network_address_local_network_access(self):
        ns = self.make_netns()
        port = webtest.free_port()
        remote = PageServer(self.h, 'ns-pages', NS_ADDR_PAGE, port, netns=ns)
        b = self.start_bridge(extra_origins=[remote.origin])
        url = f'{remote.origin}/index.html?bridge=127.0.0.1:{b.port}'
        public = f'--ip-address-space-overrides={NS_ADDR_PAGE}:{port}=public'
        seen = {'chromium': subprocess.run([CHROMIUM, '--version'], capture_output=True,
                                           text=True).stdout.strip(), 'page': remote.origin}
        cases = {
            # The page on a private (RFC 1918) address, as Chromium comes.
            'private': [],
            # The same page as if on a public address (Chromium's own switch for testing).
            'public': [public],
            # With the checks off (what a managed browser's opt-out does).
            'public+checks-off': [public, '--disable-features=LocalNetworkAccessChecks'],
        }
        for name, args in cases.items():
            before = b.log_text().count(f'({remote.origin}) connected')
            d = self.browser(args)
            seen[name] = self.lna_try(d, url)
            seen[name + ' handshakes'] = b.log_text().count(
                f'({remote.origin}) connected') - before
            if name == 'public':
                # Can the permission be given to the page (what the prompt's "Allow" does)?
                for key, origin in (('grant to the http page', remote.origin),
                                    ('grant to an https origin', 'https://his.example.cn')):
                    try:
                        d.execute_cdp_cmd('Browser.grantPermissions', {
                            'origin': origin, 'permissions': ['localNetworkAccess']})
                        seen[key] = 'granted'
                    except Exception as e:  # selenium's InvalidArgumentException
                        seen[key] = str(e).strip().splitlines()[0]
            d.quit()
        with open(self.h.path('lna.json'), 'w') as f:
            json.dump(seen, f, indent=1)
        keep_output(self.h.path('lna.json'))
        sys.stderr.write(f'\nLocal Network Access, measured: {json.dumps(seen)}\n')
        # What docs/web.md reports for Debian's Chromium 156: a page on a private address may
        # open ws://127.0.0.1; a page on a public address is stopped by the browser before any
        # handshake (the bridge sees nothing), and an http:// page cannot even be granted the
        # permission (not a secure context); without the checks it connects.
        self.assertEqual((seen['private'], seen['private handshakes']), ('connected', 1))
        self.assertEqual((seen['public'], seen['public handshakes']), ('disconnected (1006)', 0))
        self.assertIn('feature cannot be used in insecure context',
                      seen['grant to the http page'])
        self.assertEqual(seen['grant to an https origin'], 'granted')
        self.assertEqual((seen['public+checks-off'], seen['public+checks-off handshakes']),
                         ('connected', 1))

    def test_demo_page_screenshot_after_a_read(self):
        b = self.start_bridge()
        d = self.browser()
        d.get(f'http://127.0.0.1:{b.port}/')
        self.pair(d, b.own_origin)
        with self.d.client() as c:
            want = c.call('card.read_basic')
        d.find_element(By.ID, 'read').click()
        self.wait_text(d, 'f-name', lambda t: t == want['name'], 'the name on the page')
        d.find_element(By.ID, 'pin').send_keys('123456')
        d.find_element(By.ID, 'verify').click()
        self.wait_text(d, 'f-verified', lambda t: t != '', 'the PIN check on the page')
        shot = self.h.path('demo-after-read.png')
        d.save_screenshot(shot)
        self.assertGreater(os.path.getsize(shot), 10000)
        keep_output(shot)


if __name__ == '__main__':
    unittest.main(verbosity=2)
