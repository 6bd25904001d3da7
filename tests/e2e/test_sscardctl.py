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


if __name__ == '__main__':
    unittest.main(verbosity=2)
