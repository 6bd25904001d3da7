#!/usr/bin/python3
"""sscardd end to end, SIGKILL at random points of card writes, again and again (issue 4: "the
daemon killed with SIGKILL between intent and outcome ... every intent is resolved correctly, no
write is lost or doubled, and journal verify passes").

Each round writes an append to DF04/EF08 (a new settlement number), an update of DF04/EF05 tag 31
(a new value) or an update of two SSSE/EF06 records (which a kill can cut in half), and kills the
daemon at a random point: a random time after the request, a random time after its intent row
appears, or the moment the card has saved (the first record of) the write (its answer is then
still held back by --apdu-delay-ms). The daemon is started again on the same journal (the
card present), and then:

- no intent is left pending, each has exactly one outcome, and "applied" means the card holds the
  write (each settlement number on the card at most once, and exactly when an intent of it was
  applied; the updated values are on the card exactly when their intent was applied; a write cut
  in half is "partial", naming the record that is on the card);
- the client then does what a client does: if the write is not on the card it writes again (once),
  if it is, a retried append is refused (SSC_EEXIST);
- `sscardctl journal verify` passes (with --log at the end).

The seed is printed; SSC_E2E_SEED=N repeats a run, SSC_E2E_KILL_ROUNDS=N changes the number of
rounds (default 6).

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/e2e/test_daemon_crashloop.py
"""

import collections
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import harness  # noqa: E402
import sscardd  # noqa: E402

ROUNDS = int(os.environ.get('SSC_E2E_KILL_ROUNDS', '6'))


def ssse_hex(values):
    """The SSSE/EF06 records of (民族, 出生地) as the card holds them: 0B 01 nn, 0C 03 nnnnnn."""
    return [f'0B01{values[0]}', f'0C03{values[1]}']


def ssse_records(state):
    return [] if state is None else [r.upper() for r in state['files']['SSSE/EF06']]


class KillLoop(crashkit.WriteFaultCase):
    card_delay_ms = 30
    deadline = 240.0

    def test_random_kill_points(self):
        seed = int(os.environ.get('SSC_E2E_SEED') or random.SystemRandom().randrange(1 << 30))
        sys.stderr.write(f'\n  SSC_E2E_SEED={seed} rounds={ROUNDS}\n')
        rng = random.Random(seed)
        # How long one write takes here (a clean one, on this card and machine).
        t0 = time.monotonic()
        self.write('DF04/EF05', {'31': '20'})
        span = time.monotonic() - t0
        stats = collections.Counter()

        for rnd in range(ROUNDS):
            kind = rng.choice(('append', 'update', 'ssse'))
            append = kind == 'append'
            if append:
                t = crashkit.txn(100 + rnd)
                file, items = 'DF04/EF08', {'40': t}
            elif kind == 'update':
                value = f'{30 + rnd}'
                file, items = 'DF04/EF05', {'31': value}
            else:
                # 民族 and 出生地, new values each round (cn: BCD digits).
                ssse = (f'{10 + rnd:02d}', f'3301{10 + rnd:02d}')
                file, items = 'SSSE/EF06', {'0B': ssse[0], '0C': ssse[1]}
            point = rng.choice(('time', 'intent', 'card'))
            known = self.peek.intents()
            saved = self.card.state_id()
            self.write_request(file, items)
            if point == 'time':
                time.sleep(rng.uniform(0, span * 1.2))
            elif point == 'intent':
                self.wait_intent(known)
                time.sleep(rng.uniform(0, span / 2))
            else:
                harness.wait_until(lambda: self.card.state_id() != saved, 15.0,
                                   'the card to save the write', interval=0.001)
            self.d.kill9()
            new = [s for s in self.peek.intents() if s not in known]
            left_pending = bool(new) and not self.peek.outcomes(new[0])
            self.start_sscardd()
            self.wait_resolved()
            intents, outcomes = self.assertInvariants()
            what = f'round {rnd} (seed {seed}): {file} {items}, kill at {point}'
            self.assertLessEqual(len(new), 1, what)
            state = self.card.state()
            if append:
                on_card = t['settlement_no'] in crashkit.settlements_on_card(state)
            elif kind == 'update':
                on_card = crashkit.category_on_card(state) == value
            else:
                halves = [x in ssse_records(state) for x in ssse_hex(ssse)]
                on_card = all(halves)
            if new:
                o = outcomes[new[0]][0]
                self.assertEqual(o['method'] == 'applied', on_card, f'{what}: {o}')
                if kind == 'ssse' and any(halves) and not on_card:
                    self.assertEqual(o['method'], 'partial', f'{what}: {o}')
                    self.assertEqual(o['detail'], 'readback; written 0B; not written 0C'
                                     if halves[0] else 'readback; written 0C; not written 0B',
                                     f'{what}: {o}')
                    stats['ssse cut in half'] += 1
                else:
                    self.assertEqual(o['detail'], 'readback' if left_pending else 'card', what)
                stats[f'{point}: intent {o["method"]} ({o["detail"]})'] += 1
            else:
                self.assertFalse(on_card, f'{what}: on the card without an intent')
                stats[f'{point}: no intent yet'] += 1
            # The client: write it if it is not there, else a retried append is refused.
            if not on_card:
                self.assertEqual(self.write(file, items)['items'], items, what)
            elif append:
                e = self.c.call_error('card.write_items', {'file': file, 'items': items},
                                      timeout=20)
                self.assertRpcError(e, 'SSC_EEXIST')
            self.assertInvariants()
            state = self.card.state()
            if append:
                self.assertEqual(crashkit.settlements_on_card(state).count(t['settlement_no']),
                                 1, what)
            elif kind == 'update':
                self.assertEqual(crashkit.category_on_card(state), value, what)
            else:
                for x in ssse_hex(ssse):
                    self.assertIn(x, ssse_records(state), what)

        sys.stderr.write('  ' + ', '.join(f'{k}: {v}' for k, v in sorted(stats.items())) + '\n')
        self.d.stop()
        rc, out = sscardd.journal_verify(self.d.journal_path, self.h.path('sscardd.log'))
        self.assertEqual(rc, 0, out)
        self.assertIn('it reaches the logged head', out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
