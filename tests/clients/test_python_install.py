#!/usr/bin/python3
"""The documented offline install of the sscard Python package, for real: a virtual environment
with the system's packages visible, then pip with no index and no build isolation from the
source tree (docs/clients.md):

    python3 -m venv --system-site-packages V && V/bin/pip install --no-build-isolation --no-index ./python

and the installed package is imported from outside the source tree (its file lies in V).

Run standalone: /usr/bin/python3 tests/clients/test_python_install.py
"""

import os
import shutil
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR') or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))


class VenvInstall(unittest.TestCase):
    def test_install(self):
        tmp = tempfile.mkdtemp(prefix='sscard-venv-')
        self.addCleanup(shutil.rmtree, tmp, True)
        # pip builds in a copy: the source tree stays clean (no build/ or egg-info in python/).
        src = os.path.join(tmp, 'src')
        shutil.copytree(os.path.join(SOURCE_DIR, 'python'), src)
        venv = os.path.join(tmp, 'V')
        env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
        env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
        subprocess.run(['/usr/bin/python3', '-m', 'venv', '--system-site-packages', venv],
                       check=True, capture_output=True, env=env, timeout=120)
        p = subprocess.run([os.path.join(venv, 'bin', 'pip'), 'install', '--no-build-isolation',
                            '--no-index', '.'], cwd=src, capture_output=True, text=True, env=env,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = subprocess.run([os.path.join(venv, 'bin', 'python'), '-c',
                            'import sscard; print(sscard.__file__); print(sscard.__version__)'],
                           cwd=tmp, capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        path, version = p.stdout.split()
        self.assertTrue(path.startswith(venv + os.sep), path)
        self.assertEqual(version, '0.1.0')


if __name__ == '__main__':
    unittest.main()
