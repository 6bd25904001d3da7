#!/usr/bin/python3
"""The examples of docs/api.md, run against the real daemon (issue 11: "examples should be real
outputs of a shipped profile, produced by a test that checks them, so they stay true").

Every fenced block of docs/api.md that shows a request (`→ {...}`) must be preceded by a tag that
says how to reproduce it:

    <!-- example: card=gen2 psam=gen2 vary=error.data.journal_id -->

For each tagged block the test starts, in a fresh private namespace, pcscd with one vpcd entry named
"Virtual PCD" (so the readers are "Virtual PCD 00 00" and "... 00 01", ids pcsc-virtual-pcd-00-00
and -00-01, as the demo has them), the simulated card of the shipped profile in slot 0 and the PSAM
in slot 1, and sscardd; waits until the daemon knows their roles; sends each `→` line exactly as
written; and compares what comes back with the `←` lines that follow it: the reply with the same
id, and the notifications (lines with a "method") in order. Tag settings:

- `card=PROFILE`, `psam=PROFILE`: the shipped profiles (firmware-stubs/profiles) in slots 0 and 1;
  either may be left out (no card, no PSAM);
- `absent`: the card starts removed;
- `steps=insert,remove`: after the requests are answered, the card is inserted (and the test waits
  until the daemon has probed it), then removed; the notifications are compared after them;
- `drop=N`: before the block's last request, the card is armed to drop its link at its N-th APDU
  from then on (harness.Sim.arm_drop): a card pulled in the middle of an operation;
- `receipts=SM2` (or `ED25519`): a new key of that algorithm is made with `openssl genpkey` and
  configured as `[receipts] key_file`;
- `lost=ENTRY,...`: once the daemon runs, these card numbers / card ids are put on the lost-card list
  with `sscardctl blacklist import` (as an operator does);
- `vary=PATH,...`: members that legitimately differ from run to run (peer pid, journal ids), as
  dotted paths into the message (`result.peer`, `error.data.journal_id`); they must be present,
  and their values are not compared; digits index an array (`result.settlements.0.queued`).

Shell blocks tagged the same way run each line that calls `sscardctl` (pipelines included, through
bash, with this build's sscardctl first in $PATH and the test daemon's socket in $SSCARD_SOCKET):
it must succeed and print something, and the lines shown under a command, if any, are compared with
its output (as JSON when both parse, else as text). An untagged block with a `→` line fails the
test: every request shown runs.

On a mismatch the failure shows the daemon's own line, ready to paste into the docs.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_docs_examples.py [-k name]
"""

import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docsref  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402

DOC = 'api.md'
TAG = re.compile(r'^<!--\s*example:(.*?)-->\s*$')
KNOWN_SETTINGS = {'card', 'psam', 'absent', 'steps', 'drop', 'vary', 'lost', 'receipts'}
CARD, PSAM = 0, 1
READER_NAMES = ['Virtual PCD']


class Example:
    """One tagged block: where it is, its settings and its lines."""

    def __init__(self, line, heading, settings, lang, lines):
        self.line = line                  # the line of the opening fence (1-based)
        self.heading = heading            # the "###" section it belongs to
        self.settings = settings
        self.lang = lang
        self.lines = lines

    @property
    def name(self):
        return f'{DOC}:{self.line} ({self.heading})'


def parse_settings(text, where):
    out = {}
    for word in text.split():
        key, eq, value = word.partition('=')
        if key not in KNOWN_SETTINGS:
            raise AssertionError(f'{where}: unknown example setting {key!r} '
                                 f'(known: {sorted(KNOWN_SETTINGS)})')
        out[key] = value if eq else True
    return out


def examples(text):
    """(tagged examples, [names of untagged blocks that show a request])."""
    found, untagged = [], []
    heading, tag, tag_line = '', None, 0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = TAG.match(line)
        if line.startswith('#'):
            heading = line.lstrip('#').strip()
        if m:
            tag, tag_line = m.group(1), i + 1
        elif line.startswith('```'):
            lang = line[3:].strip()
            j = i + 1
            while j < len(lines) and not lines[j].startswith('```'):
                j += 1
            body = lines[i + 1:j]
            where = f'{DOC}:{i + 1} ({heading})'
            if tag is not None:
                found.append(Example(i + 1, heading, parse_settings(tag, f'{DOC}:{tag_line}'),
                                     lang, body))
            elif any(b.startswith('→ ') for b in body):
                untagged.append(where)
            tag = None
            i = j
        elif line.strip():
            tag = None           # a tag belongs to the block right after it
        i += 1
    return found, untagged


def step_into(node, k):
    """node[k] for a dict's key, or a list's index (a path's digits); None when it is not there."""
    if isinstance(node, dict):
        return node.get(k)
    if isinstance(node, list) and k.isdigit() and int(k) < len(node):
        return node[int(k)]
    return None


def drop_path(msg, path, where):
    """Removes a dotted path from msg (it must be there); digits index an array
    (result.settlements.0.queued)."""
    keys = path.split('.')
    node = msg
    for k in keys[:-1]:
        node = step_into(node, k)
        if node is None:
            raise AssertionError(f'{where}: "{path}" is marked as varying but is not there: {msg}')
    if not isinstance(node, dict) or keys[-1] not in node:
        raise AssertionError(f'{where}: "{path}" is marked as varying but is not there: {msg}')
    del node[keys[-1]]


def without(msg, paths, where):
    msg = json.loads(json.dumps(msg))
    for p in paths:
        drop_path(msg, p, where)
    return msg


class DocsExamples(sscardd.DaemonTestCase):
    """One test per tagged example (added below, by the example's line)."""

    readers = 2

    def setUp(self):
        # One vpcd entry named as the demo's, not the harness's "Virtual PCD A".
        self.h = harness.Harness(None, readers=self.readers, names=READER_NAMES,
                                 deadline=self.deadline, name=self.id().rsplit('.', 1)[-1])
        self.addCleanup(self._close_harness)

    # -- the desk of one example
    def desk(self, ex):
        s = ex.settings
        self.h.start_pcscd()
        self.card = self.h.start_card(s['card'], slot=CARD, state=True) if 'card' in s else None
        self.psam = self.h.start_psam(s['psam'], slot=PSAM) if 'psam' in s else None
        if s.get('absent'):
            self.card.remove()
        config = None
        if 'receipts' in s:
            key = self.h.path('receipt.key')
            p = subprocess.run(['openssl', 'genpkey', '-algorithm', s['receipts'], '-out', key],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            os.chmod(key, 0o600)
            config = {'receipts': {'key_file': key}}
        self.d = sscardd.Daemon(self.h, config=config).start()
        roles = {}
        if self.card:
            roles[CARD] = None if s.get('absent') else 'user'
        if self.psam:
            roles[PSAM] = 'psam'
        with self.d.client() as c:
            self.wait_roles(roles, client=c)
        lost = [e for e in s.get('lost', '').split(',') if e]
        if lost:
            rc, out, err = sscardd.ctl('blacklist', 'import', '-', '--journal',
                                       self.d.journal_path, stdin=''.join(e + '\n' for e in lost))
            self.assertEqual(rc, 0, f'{ex.name}: blacklist import: {err}')

    def step(self, what):
        name = self.h.reader_name(CARD)
        with self.d.client() as c:
            if what == 'insert':
                self.card.insert()
                self.d.wait_reader(c, name, card=True, role='user')
            elif what == 'remove':
                self.card.remove()
                self.d.wait_reader(c, name, card=False)
            else:
                raise AssertionError(f'unknown step {what!r}')

    def assertMessage(self, ex, got, want, raw):
        vary = [p for p in ex.settings.get('vary', '').split(',') if p]
        where = f'{ex.name}: {json.dumps(want, ensure_ascii=False)[:100]}'
        # Every varying path marked must be in both; what is left must be equal.
        got_v = without(got, [p for p in vary if self.has_path(want, p)], where + ' (daemon)')
        want_v = without(want, [p for p in vary if self.has_path(want, p)], where)
        self.assertEqual(got_v, want_v, f'{ex.name}: the daemon answered\n← {raw}')

    @staticmethod
    def has_path(msg, path):
        node = msg
        for k in path.split('.'):
            node = step_into(node, k)
            if node is None:
                return False
        return True

    # -- JSON-RPC blocks
    def run_rpc(self, ex):
        self.desk(ex)
        c = self.d.client()
        requests = [i for i, line in enumerate(ex.lines) if line.startswith('→ ')]
        self.assertTrue(requests, f'{ex.name}: no request')
        want_events = []
        for n, i in enumerate(requests):
            line = ex.lines[i][2:]
            req = json.loads(line)
            if n == len(requests) - 1 and 'drop' in ex.settings:
                self.card.arm_drop(int(ex.settings['drop']))
            c.send_raw(line.encode() + b'\n')
            for answer in ex.lines[i + 1:]:
                if answer.startswith('→ '):
                    break
                if not answer.startswith('← '):
                    continue
                want = json.loads(answer[2:])
                if 'method' in want:
                    want_events.append(want)
                    continue
                self.assertEqual(want.get('id'), req.get('id'), f'{ex.name}: {answer}')
                got = c.reply(req['id'], timeout=20)
                raw = next(r for r in reversed(c.raw_lines)
                           if json.loads(r).get('id') == req['id']).decode()
                self.assertMessage(ex, got, want, raw)
        for what in [w for w in ex.settings.get('steps', '').split(',') if w]:
            self.step(what)
        if want_events:
            harness.wait_until(lambda: c.pump(0.05) and len(c.events) >= len(want_events) or None,
                               10.0, f'{len(want_events)} notifications')
            c.pump(0.2)       # and nothing more
        events = list(c.events)
        raws = [r.decode() for r in c.raw_lines if b'"method"' in r]
        self.assertEqual(len(events), len(want_events),
                         f'{ex.name}: notifications\n' + '\n'.join(f'← {r}' for r in raws))
        for got, want, raw in zip(events, want_events, raws):
            self.assertMessage(ex, got, want, raw)

    # -- shell blocks: sscardctl commands and what they print
    def run_shell(self, ex):
        self.desk(ex)
        # "sscardctl" is the one of this build; the socket is the test daemon's.
        bindir = self.h.path('bin')
        os.makedirs(bindir, exist_ok=True)
        os.symlink(sscardd.ctl_binary(), os.path.join(bindir, 'sscardctl'))
        env = dict(os.environ, SSCARD_SOCKET=self.d.socket_path,
                   PATH=bindir + os.pathsep + os.environ.get('PATH', ''))
        env.pop('SSCARD_CONFIG', None)
        commands = []
        for line in ex.lines:
            text = line[2:] if line.startswith('$ ') else line
            if not text.strip() or text.lstrip().startswith('#'):
                continue
            if re.search(r'(^|[|;&]\s*)sscardctl\b', text):
                commands.append((text, []))
            elif commands:
                commands[-1][1].append(line)       # what the command before prints
        self.assertTrue(commands, f'{ex.name}: no sscardctl command')
        for cmd, shown in commands:
            p = subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], env=env,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, f'{ex.name}: {cmd}: {p.stderr}')
            self.assertTrue(p.stdout.strip(), f'{ex.name}: {cmd}: printed nothing')
            if not shown:
                continue
            want = '\n'.join(shown)
            try:
                got_j, want_j = json.loads(p.stdout), json.loads(want)
            except ValueError:
                self.assertEqual(p.stdout.rstrip('\n'), want, f'{ex.name}: {cmd}')
                continue
            self.assertMessage(ex, got_j, want_j, p.stdout.strip())


def _add_tests():
    found, _ = examples(docsref.read_doc(DOC))
    for ex in found:
        def test(self, ex=ex):
            if any(line.startswith('→ ') for line in ex.lines):
                self.run_rpc(ex)
            else:
                self.run_shell(ex)
        slug = re.sub(r'[^a-z0-9]+', '_', ex.heading.lower()).strip('_')
        setattr(DocsExamples, f'test_line_{ex.line:04d}_{slug}', test)


_add_tests()


class Coverage(unittest.TestCase):
    """Every request shown is run; every card method and the other methods have an example."""

    def test_every_request_example_is_tagged(self):
        found, untagged = examples(docsref.read_doc(DOC))
        self.assertEqual(untagged, [], 'blocks with a request but no <!-- example: ... --> tag')
        methods = set()
        for ex in found:
            for line in ex.lines:
                if line.startswith('→ '):
                    methods.add(json.loads(line[2:])['method'])
        # Those the simulator can serve: every method of API level 1 but events.unsubscribe,
        # whose example would be events.subscribe's.
        self.assertLessEqual({'system.info', 'reader.list', 'events.subscribe',
                              'card.read_basic', 'card.read_items', 'card.internal_auth',
                              'card.verify_pin', 'card.write_items'}, methods)


if __name__ == '__main__':
    unittest.main(verbosity=2)
