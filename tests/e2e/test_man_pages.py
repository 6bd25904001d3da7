#!/usr/bin/python3
"""The man pages (issue 19): sscardd(8), sscardd.conf(5) and sscardctl(1), built from man/*.scd by
scdoc into the build directory,

* render with `LANG=C.UTF-8 man --warnings -l PAGE` with nothing on stderr (groff's warnings
  included) and with their NAME line;
* name every long option of `sscardd --help` and every command of `sscardctl --help`, so that the
  pages follow the programs (sscardd.conf(5) against the key table: tests/unit/core/test_config_man.c);
* are installed by `cmake --install` under share/man/man{1,5,8}.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_man_pages.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR',
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
PAGES = {'sscardd.8': 'sscardd - the social security card daemon',
         'sscardd.conf.5': 'sscardd.conf - the configuration of sscardd',
         'sscardctl.1': 'sscardctl - talk to sscardd, and check its journal'}


def source(page):
    with open(os.path.join(SOURCE_DIR, 'man', page + '.scd')) as f:
        return f.read()


class ManPages(unittest.TestCase):
    def test_render_clean(self):
        env = dict(os.environ, LANG='C.UTF-8', MANWIDTH='80')
        env.pop('LC_ALL', None)
        for page, name in PAGES.items():
            path = os.path.join(harness.BUILD_DIR, 'man', page)
            self.assertTrue(os.path.isfile(path), f'{path}: not built (is scdoc installed?)')
            p = subprocess.run(['man', '--warnings', '-l', path], capture_output=True, text=True,
                               env=env, timeout=60)
            self.assertEqual((p.returncode, p.stderr), (0, ''), page)
            self.assertIn(name, re.sub(r'\s+', ' ', p.stdout))

    def test_options_and_commands(self):
        out = subprocess.run([sscardd.daemon_binary(), '--help'], capture_output=True,
                             text=True).stdout
        opts = set(re.findall(r'(--[a-z][a-z-]+)', out))
        self.assertIn('--check-config', opts)
        page = source('sscardd.8')
        for o in opts:
            self.assertIn(f'*{o}*', page, f'sscardd {o} is not in man/sscardd.8.scd')
        out = subprocess.run([sscardd.ctl_binary(), '--help'], capture_output=True,
                             text=True).stdout
        cmds = set()
        for line in out.splitlines():
            m = re.match(r'^  ((?:journal |blacklist |web )?[a-z][a-z-]+)\b', line)
            if m:
                cmds.add(m.group(1))
        self.assertIn('journal verify', cmds)
        self.assertIn('read-basic', cmds)
        page = source('sscardctl.1')
        for c in cmds:
            self.assertRegex(page, r'\*' + re.escape(c) + r'\*',
                             f'sscardctl {c} is not in man/sscardctl.1.scd')

    def test_installed(self):
        prefix = tempfile.mkdtemp(prefix='sscard-man.')
        self.addCleanup(shutil.rmtree, prefix, True)
        p = subprocess.run(['cmake', '--install', harness.BUILD_DIR, '--prefix', prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for page in PAGES:
            sec = page[-1]
            self.assertTrue(os.path.isfile(os.path.join(prefix, 'share', 'man', f'man{sec}',
                                                        page)), page)


if __name__ == '__main__':
    unittest.main()
