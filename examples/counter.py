#!/usr/bin/python3
"""A counter script with the sscard Python package: waits for a card, reads the holder's basic data,
shows it to the clerk, and waits for the next card. Errors are shown by their stable name.

    python3 examples/counter.py           # run at the desk (Ctrl-C to stop)
    python3 examples/counter.py --once    # read the card in the reader now, print, exit

It finds the package installed, or in the source tree (python/) when run from there.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'python'))
import sscard  # noqa: E402


def show(c, reader=None):
    try:
        b = c.read_basic(reader=reader)
    except sscard.SscardError as e:
        print(f'cannot read the card: {e.name} ({e.message})')
        return False
    print(f'{b["name"]}  card {b["card_number"]}  valid until {b["expiry_date"]}'
          + ('  EXPIRED' if b['expired'] else ''))
    return True


def main():
    try:
        c = sscard.connect()
    except sscard.SscardError as e:
        print(f'sscard: {e.name}: {e.message}', file=sys.stderr)
        return 1
    with c:
        if '--once' in sys.argv[1:]:
            return 0 if show(c) else 1
        c.subscribe()
        print('waiting for a card …')
        for ev in c.events():
            if ev['type'] == 'card.ready' and ev.get('role') == 'user':
                show(c, ev['reader'])
            elif ev['type'] == 'card.removed':
                print('card removed')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
