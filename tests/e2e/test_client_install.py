#!/usr/bin/python3
"""Install rules end to end: `cmake --install BUILD --prefix P` into a temporary prefix, then
examples/read_card.c is compiled with `pkg-config --cflags --libs sscard` (PKG_CONFIG_PATH at the
prefix only) and run against the real sscardd + pcscd + vpcd + the simulated gen2 card, and so is
examples/legacy_read.c against the installed libSSCardDriver.so (张三 is GB18030 D5C5C8FD). Also:
what the prefix holds (programs, libraries with their soname links, headers, sscard.pc, the
example configuration, docs, examples), written by hand.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_client_install.py
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sscardd  # noqa: E402


def run(argv, env=None, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f'{argv}: exit {p.returncode}\n{p.stdout}\n{p.stderr}')
    return p.stdout


class Install(sscardd.DaemonTestCase):
    readers = 2

    def setUp(self):
        super().setUp()
        self.prefix = tempfile.mkdtemp(prefix='sscard-prefix.')
        self.addCleanup(shutil.rmtree, self.prefix, True)
        run(['cmake', '--install', harness.BUILD_DIR, '--prefix', self.prefix])

    def libdir(self):
        """The prefix's library directory (lib or lib/<multiarch>), found by sscard.pc."""
        pcs = glob.glob(os.path.join(self.prefix, 'lib*', '**', 'pkgconfig', 'sscard.pc'),
                        recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        return os.path.dirname(os.path.dirname(pcs[0]))

    def test_layout(self):
        p = self.prefix
        lib = self.libdir()
        for f in ['sbin/sscardd', 'bin/sscardctl', 'bin/sscard-sim']:
            self.assertTrue(os.access(os.path.join(p, f), os.X_OK), f)
        for f in ['include/sscard/client.h', 'include/sscard/error.h',
                  'include/sscard/SSCardDriver.h', 'share/doc/sscard/examples/sscardd.conf',
                  'share/doc/sscard/clients.md', 'share/doc/sscard/api.md',
                  'share/doc/sscard/README.md', 'share/doc/sscard/examples/read_card.c']:
            self.assertTrue(os.path.isfile(os.path.join(p, f)), f)
        self.assertEqual(os.readlink(os.path.join(lib, 'libsscard.so')), 'libsscard.so.0')
        self.assertEqual(os.readlink(os.path.join(lib, 'libsscard.so.0')), 'libsscard.so.0.1.0')
        self.assertEqual(os.readlink(os.path.join(lib, 'libSSCardDriver.so')),
                         'libSSCardDriver.so.0')
        self.assertEqual(os.readlink(os.path.join(lib, 'libSSCardDriver.so.0')),
                         'libSSCardDriver.so.0.1.0')

    def test_example_builds_and_reads(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.libdir(), 'pkgconfig'))
        flags = run(['pkg-config', '--cflags', '--libs', 'sscard'], env=env).split()
        self.assertEqual([os.path.normpath(f[2:]) for f in flags if f.startswith('-I')],
                         [os.path.join(self.prefix, 'include')])
        self.assertEqual([os.path.normpath(f[2:]) for f in flags if f.startswith('-L')],
                         [self.libdir()])
        exe = os.path.join(self.prefix, 'read_card')
        src = os.path.join(self.prefix, 'share/doc/sscard/examples/read_card.c')
        run(['cc', '-Wall', '-Werror', '-o', exe, src, *flags], env=env)

        self.h.start_pcscd()
        self.h.start_card('gen2', slot=0)
        self.start_daemon()
        self.wait_roles({0: 'user'})
        renv = dict(os.environ, SSCARD_SOCKET=self.d.socket_path,
                    LD_LIBRARY_PATH=self.libdir())
        out = run([exe], env=renv)
        self.assertEqual(out, 'name:        张三\n'
                              'card number: X00000019\n'
                              'card id:     330100D15600000500BF7C7AC9FC0FEC\n'
                              'region:      330100\n'
                              'valid until: 20340101\n'
                              'generation:  2.00 (des)\n')
        # The installed program finds the installed library (not the build tree's).
        ldd = run(['ldd', exe], env=renv)
        self.assertIn(os.path.join(self.libdir(), 'libsscard.so.0'), ldd)

        # The legacy-style example against the installed libSSCardDriver.so; GB18030 output.
        legacy = os.path.join(self.prefix, 'legacy_read')
        run(['cc', '-Wall', '-Werror', '-o', legacy,
             os.path.join(self.prefix, 'share/doc/sscard/examples/legacy_read.c'),
             '-I', os.path.join(self.prefix, 'include'), '-L', self.libdir(), '-lSSCardDriver'])
        p = subprocess.run([legacy], capture_output=True, env=renv, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout,
                         b'330100|330102199003071230|X00000019|330100D15600000500BF7C7AC9FC0FEC|'
                         b'\xD5\xC5\xC8\xFD|0081544C92868433010000BF7C7A|2.00|20240101|20340101|'
                         b'000000000000||\n'
                         b'330102199003071230|\xD5\xC5\xC8\xFD|1|19900307|\n')


if __name__ == '__main__':
    unittest.main()
