#!/usr/bin/python3
"""The Debian package (issue 19), built, linted, and installed, upgraded, removed and purged in a
chroot that the test makes with mmdebstrap (minbase, from the Debian archive configured in the
host's /etc/apt/sources.list*), never on the host itself:

* scripts/package.sh builds it with debhelper and lintian --fail-on error passes;
* the .deb holds the programs (sscardd in /usr/sbin, without the test build's hooks; no
  simulator), the libraries, the units, sysusers.d and tmpfiles.d entries, the udev rule, the
  configuration as a conffile, the man pages and the docs; its maintainer scripts create the user
  (systemd-sysusers), enable the socket, set the configuration's owner and mode, and remove the
  state on purge only;
* in the chroot: dpkg -i creates the user and group sscard, /etc/sscard/sscardd.conf root:sscard
  0640, /var/lib/sscard sscard 0750, the socket enabled; sscardd --check-config passes as the user
  sscard; the packaged daemon started as root with [daemon] user = sscard drops to it, answers
  sscardctl info and writes its journal as sscard;
* an upgrade keeps a changed conffile, the journal and the statoverride; remove keeps the
  configuration and the journal; purge removes both.

Slow (a package build and a chroot: minutes), so it is labelled "package" and runs in its own step of
scripts/test.sh (./scripts/test.sh --package runs only it).
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR',
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))


def run(argv, check=True, timeout=900, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f'{argv}: exit {p.returncode}\n{p.stdout[-3000:]}\n'
                             f'{p.stderr[-3000:]}')
    return p


def archive_sources():
    """The host's apt source files that name the Debian archive (for mmdebstrap)."""
    files = ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list') +
                                               glob.glob('/etc/apt/sources.list.d/*.sources'))
    out = []
    for f in files:
        try:
            with open(f) as fh:
                text = fh.read()
        except OSError:
            continue
        if re.search(r'^\s*(deb\s|URIs:).*debian', text, re.M):
            out.append(f)
    return out


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='sscard-pkgtest.')
        t0 = time.monotonic()
        p = run([os.path.join(SOURCE_DIR, 'scripts', 'package.sh'),
                 os.path.join(cls.dir, 'out')], timeout=1800)
        cls.build_s = time.monotonic() - t0
        cls.deb = p.stdout.strip().splitlines()[-1]
        cls.lintian = p.stderr
        cls.root = os.path.join(cls.dir, 'chroot')
        cls.chroot_s = None

    @classmethod
    def tearDownClass(cls):
        print(f'\npackage build {cls.build_s:.0f} s, chroot {cls.chroot_s or 0:.0f} s')
        shutil.rmtree(cls.dir, ignore_errors=True)

    # -- the chroot
    def make_chroot(self):
        deps = run(['dpkg-deb', '-f', self.deb, 'Depends']).stdout
        names = [alt.split('|')[0].strip().split()[0] for alt in deps.split(',')]
        names = [n for n in names if not n.startswith('libc6')]
        names += ['init-system-helpers']
        # systemd itself is no service here: the sysusers part of it stands alone.
        names = ['systemd-standalone-sysusers' if n == 'systemd' else n for n in names]
        names += ['systemd-standalone-tmpfiles']
        t0 = time.monotonic()
        run(['mmdebstrap', '--variant=minbase', '--include=' + ','.join(names), 'bookworm',
             self.root, *archive_sources()], timeout=1200)
        type(self).chroot_s = time.monotonic() - t0

    def sh(self, script, check=True, user=None):
        """script run by /bin/sh inside the chroot, with /proc and /dev, in a mount namespace of
        its own (nothing stays mounted)."""
        chroot = ['chroot'] + ([f'--userspec={user}'] if user else []) + [self.root]
        inner = (f'mount -t proc proc {self.root}/proc && mount --rbind /dev {self.root}/dev && '
                 f'exec "$@"')
        return run(['unshare', '--mount', '--fork', 'sh', '-c', inner, 'sh', *chroot,
                    '/bin/sh', '-c', script], check=check, timeout=300,
                   env={'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8'})

    def path(self, p):
        return os.path.join(self.root, p.lstrip('/'))

    def repack(self, version):
        """The same package with another version (an upgrade, as dpkg sees it)."""
        x = os.path.join(self.dir, f'repack-{version}')
        run(['dpkg-deb', '-R', self.deb, x])
        ctl = os.path.join(x, 'DEBIAN', 'control')
        with open(ctl) as f:
            text = re.sub(r'^Version: .*$', f'Version: {version}', f.read(), flags=re.M)
        with open(ctl, 'w') as f:
            f.write(text)
        out = os.path.join(self.dir, f'sscard_{version}_amd64.deb')
        run(['dpkg-deb', '-b', x, out])
        return out

    # -- the tests (one method: the chroot's states follow each other)
    def test_build_lint_install_upgrade_purge(self):
        # Lintian ran, and found no error.
        self.assertIn('== lintian', self.lintian)
        self.assertNotRegex(self.lintian, r'(?m)^E: ')

        # What the package holds.
        files = run(['dpkg-deb', '-c', self.deb]).stdout
        for f in ['./usr/sbin/sscardd', './usr/bin/sscardctl', './etc/sscard/sscardd.conf',
                  './lib/systemd/system/sscardd.service', './lib/systemd/system/sscardd.socket',
                  './usr/lib/sysusers.d/sscard.conf', './usr/lib/tmpfiles.d/sscard.conf',
                  './lib/udev/rules.d/60-sscard.rules', './usr/share/man/man8/sscardd.8.gz',
                  './usr/share/man/man5/sscardd.conf.5.gz', './usr/share/man/man1/sscardctl.1.gz',
                  './usr/share/doc/sscard/operations.md.gz',
                  './usr/share/doc/sscard/prometheus/sscard-alerts.yml',
                  './usr/share/doc/sscard/examples/sscardd-offline.conf',
                  './usr/include/sscard/client.h']:
            self.assertIn(f, files)
        self.assertRegex(files, r'libsscard\.so\.0 ')
        self.assertNotIn('sscard-sim', files)
        info = os.path.join(self.dir, 'info')
        run(['dpkg-deb', '-e', self.deb, info])
        with open(os.path.join(info, 'conffiles')) as f:
            self.assertIn('/etc/sscard/sscardd.conf', f.read().split())
        with open(os.path.join(info, 'postinst')) as f:
            postinst = f.read()
        self.assertIn('systemd-sysusers', postinst)
        self.assertIn("deb-systemd-helper enable 'sscardd.socket'", postinst)
        self.assertIn('dpkg-statoverride --update --add root sscard 0640', postinst)
        self.assertLess(postinst.index('systemd-sysusers'), postinst.index('dpkg-statoverride'))
        with open(os.path.join(info, 'postrm')) as f:
            postrm = f.read()
        self.assertRegex(postrm, r'"purge" \]; then\n\trm -rf /var/lib/sscard')
        x = os.path.join(self.dir, 'x')
        run(['dpkg-deb', '-x', self.deb, x])
        with open(os.path.join(x, 'usr', 'sbin', 'sscardd'), 'rb') as f:
            self.assertNotIn(b'SSCARDD_TEST_FREEZE_MS', f.read())

        # Install in a fresh chroot.
        self.make_chroot()
        shutil.copy(self.deb, self.path('/tmp/sscard.deb'))
        self.sh('dpkg -i /tmp/sscard.deb')
        pw = self.sh('getent passwd sscard').stdout.strip().split(':')
        self.assertEqual((pw[5], pw[6]), ('/var/lib/sscard', '/usr/sbin/nologin'))
        gid = self.sh('getent group sscard').stdout.strip().split(':')[2]
        self.assertEqual(pw[3], gid)
        self.assertEqual(self.sh('stat -c "%U:%G %a" /etc/sscard/sscardd.conf').stdout.strip(),
                         'root:sscard 640')
        self.assertEqual(self.sh('stat -c "%U:%G %a" /var/lib/sscard').stdout.strip(),
                         'sscard:sscard 750')
        self.assertEqual(os.readlink(self.path(
            '/etc/systemd/system/sockets.target.wants/sscardd.socket')),
            '/lib/systemd/system/sscardd.socket')
        self.assertFalse(os.path.exists(self.path(
            '/etc/systemd/system/multi-user.target.wants/sscardd.service')))
        out = self.sh('sscardd --check-config', user='sscard:sscard')
        self.assertIn('configuration OK', out.stdout)
        self.assertIn('config: file /etc/sscard/sscardd.conf', out.stderr)

        # The packaged daemon, started as root, drops to sscard and serves.
        with open(self.path('/tmp/t.conf'), 'w') as f:
            f.write('[daemon]\nuser = sscard\n')     # pcscd is not running: it retries
        out = self.sh('sscardd --foreground --config /tmp/t.conf >/tmp/d.log 2>&1 & pid=$!; '
                      'i=0; while [ ! -S /run/sscard/sscardd.sock ] && [ $i -lt 100 ]; do '
                      'sleep 0.1; i=$((i+1)); done; '
                      'sscardctl --config /tmp/t.conf info; rc=$?; '
                      'stat -c "%U %a" /var/lib/sscard/journal.db; '
                      'kill -TERM $pid; wait $pid; echo "daemon exit $?"; echo "rc $rc"; '
                      'cat /tmp/d.log')
        log = out.stdout
        self.assertIn('rc 0\n', log)
        self.assertIn('running as user sscard', log)
        self.assertIn('api_level', out.stdout.lower().replace(' ', '_'))
        self.assertIn('sscard 640', out.stdout)
        self.assertIn('daemon exit 0', out.stdout)

        # Upgrade: a changed conffile, the journal and the statoverride stay.
        with open(self.path('/etc/sscard/sscardd.conf'), 'a') as f:
            f.write('; changed on this desk\n')
        new = self.repack('0.1.0+upgrade1')
        shutil.copy(new, self.path('/tmp/sscard-new.deb'))
        self.sh('dpkg -i --force-confold /tmp/sscard-new.deb')
        self.assertEqual(self.sh("dpkg-query -W -f '${Version}' sscard").stdout,
                         '0.1.0+upgrade1')
        with open(self.path('/etc/sscard/sscardd.conf')) as f:
            self.assertIn('; changed on this desk', f.read())
        self.assertTrue(os.path.exists(self.path('/var/lib/sscard/journal.db')))
        self.assertEqual(self.sh('stat -c "%U:%G %a" /etc/sscard/sscardd.conf').stdout.strip(),
                         'root:sscard 640')

        # Remove keeps the configuration and the state; purge removes them.
        self.sh('dpkg -r sscard')
        self.assertFalse(os.path.exists(self.path('/usr/sbin/sscardd')))
        self.assertTrue(os.path.exists(self.path('/etc/sscard/sscardd.conf')))
        self.assertTrue(os.path.exists(self.path('/var/lib/sscard/journal.db')))
        self.sh('dpkg -P sscard')
        self.assertFalse(os.path.exists(self.path('/etc/sscard')))
        self.assertFalse(os.path.exists(self.path('/var/lib/sscard')))
        self.assertEqual(self.sh('dpkg-statoverride --list /etc/sscard/sscardd.conf',
                                 check=False).stdout, '')


if __name__ == '__main__':
    unittest.main()
