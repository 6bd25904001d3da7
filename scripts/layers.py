#!/usr/bin/env python3
"""Checks the shape of sscard's product code (issue 13): no file over 1000 lines, no two files that
include or call each other (no cycle of any length, the simulator included), dependencies only down
the layers, and no logging from the client libraries or the simulator's card OS.

The include graph comes from the sources, each #include "..." resolved as the compiler resolves it
(the file's own directory, then the -I directories of its compile command in compile_commands.json).
The call graph comes from the object files: `nm` lists what each object defines and what it needs
(undefined symbols), which is exact (a call through a function pointer is no dependency). Both need a
configured and built tree.

    scripts/layers.py --build build            check: exit 1 on a violation not in ALLOWED below,
                                               or on an ALLOWED entry that no longer occurs
    scripts/layers.py --build build --report   print the graph's layers, every violation and the
                                               allow-list's state; exit 0
    scripts/layers.py --build build --dot      the file graph in Graphviz dot

Product code: *.c and *.h under base/, drivers/, src/, lib/, firmware-stubs/src/ and include/.
Standard library only (python3 of Debian 12); nm from binutils.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict

MAX_LINES = 1000
PRODUCT_ROOTS = ("base/", "drivers/", "src/", "lib/", "web/", "firmware-stubs/src/",
                 "firmware-stubs/include/", "include/")
LINE_ROOTS = ("base/", "drivers/", "src/", "lib/", "web/", "firmware-stubs/src/")

# The layers of issue 13, lowest first. A file may depend on (include, or call into) files of its
# own layer or of lower ones; never higher. Within a layer only cycles are refused. The journal is
# beside the operations (the same rank). The client libraries and the simulator are worlds of their
# own: see ISOLATED. Each file's layer is found by the first pattern (a regular expression on its
# path from the source root) that matches: name new files by these prefixes, or add a pattern.
LAYERS = [
    ("base", 0, [r"base/", r"include/sscard/error\.h$"]),
    ("drivers", 1, [r"drivers/", r"include/sscard/driver\.h$"]),
    # What the daemon's every layer reads: its configuration.
    ("daemon base", 2, [r"src/config\.", r"src/jsontext\."]),
    # An origin's canonical form: shared by the daemon's web methods and the browser bridge.
    ("origin", 2, [r"src/origin\."]),
    # The signed receipts of claim.verify_holder: made by the operations, checked by sscardctl.
    ("receipts", 2, [r"src/receipt\."]),
    ("reader core", 3, [r"src/readers?[._]", r"src/rd_", r"src/jobq\.", r"src/cardio\.",
                        r"src/transport", r"src/monitor", r"src/sched", r"src/worker",
                        r"src/drvtab", r"src/ifd"]),
    ("card application", 4, [r"src/apdu[._]", r"src/ssc[._]", r"src/items[._]", r"src/psam",
                             r"src/crypto\.", r"src/keyprov", r"src/gb18030\.",
                             # the key providers: the PSAM's, the key server's, and their choice
                             r"src/hsm_", r"src/keysel\."]),
    ("operations", 5, [r"src/ops[._]", r"src/op_"]),
    ("journal", 5, [r"src/journal", r"src/audit\.", r"src/syslog_audit\."]),
    # The browser pairings (codes, tokens in the journal's database), beside the journal.
    ("web pairing", 5, [r"src/webpair\."]),
    # The metrics observe the operations, the readers and the server (the reader core reports its
    # APDUs through readers_setup's counter, a function pointer: no dependency).
    ("RPC/server", 6, [r"src/rpc[._]", r"src/server[._]", r"src/listener\.", r"src/connlog\.",
                       r"src/service\.", r"src/svc\.", r"src/metrics[._]"]),
    ("sscardd main", 7, [r"src/sscardd[._]", r"src/daemon"]),
    ("sscardctl", 8, [r"src/sscardctl\.", r"src/ctl/", r"src/pinentry\."]),
    ("client libraries", 9, [r"lib/", r"include/sscard/client\.h$",
                             r"include/sscard/SSCardDriver\.h$"]),
    ("simulator card OS", 10, [r"firmware-stubs/src/cos/", r"firmware-stubs/include/"]),
    ("simulator program", 11, [r"firmware-stubs/src/sim/"]),
    ("browser bridge", 12, [r"web/"]),
]

# Layers that may depend only on the layers listed (not on everything below them).
ISOLATED = {
    "client libraries": {"client libraries", "base"},
    "simulator card OS": {"simulator card OS"},
    "simulator program": {"simulator program", "simulator card OS"},
    "browser bridge": {"browser bridge", "origin", "base"},
}

# Layers whose objects must not refer to the logger (docs/architecture.md, "Logging").
NO_LOGGING = {"client libraries", "simulator card OS"}
LOG_SYMBOLS = re.compile(r"^log_(msg|enabled|set_level|get_level)$")

# Known violations, each helper of issue 13 removing its own as it lands (the check fails on a new
# violation, and on an entry here that no longer occurs). Strings as the check prints them.
ALLOWED = set([
])


def rel(path, root):
    return os.path.relpath(os.path.realpath(path), root)


def is_product(path):
    return path.startswith(PRODUCT_ROOTS) and path.endswith((".c", ".h"))


def layer_of(path):
    for name, rank, patterns in LAYERS:
        for p in patterns:
            if re.match(p, path):
                return name, rank
    return None, None


def load_compile_commands(build, root):
    """Returns {source: (object path, [-I dirs])} for the product sources of the build."""
    with open(os.path.join(build, "compile_commands.json"), encoding="utf-8") as f:
        entries = json.load(f)
    out = {}
    for e in entries:
        src = rel(e["file"], root)
        if not is_product(src):
            continue
        args = e.get("arguments") or shlex.split(e["command"])
        incs, obj = [], None
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-o":
                obj = args[i + 1]
                i += 1
            elif a.startswith("-o") and len(a) > 2:
                obj = a[2:]
            elif a in ("-I", "-isystem", "-iquote"):
                incs.append(args[i + 1])
                i += 1
            elif a.startswith("-I"):
                incs.append(a[2:])
            i += 1
        if obj:
            obj = os.path.join(e["directory"], obj)
        # A source compiled into several targets keeps its first object (the same code).
        out.setdefault(src, (obj, [os.path.realpath(os.path.join(e["directory"], d)) for d in incs]))
    return out


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def include_graph(root, commands):
    """Edges file -> header for every #include "..." reached from a compiled product source."""
    edges = defaultdict(set)
    unresolved = set()
    for src, (_obj, incs) in commands.items():
        todo, seen = [src], set()
        while todo:
            f = todo.pop()
            if f in seen:
                continue
            seen.add(f)
            try:
                with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            for name in INCLUDE.findall(text):
                target = None
                for d in [os.path.dirname(os.path.join(root, f))] + incs:
                    cand = os.path.join(d, name)
                    if os.path.isfile(cand):
                        target = rel(cand, root)
                        break
                if target is None:
                    unresolved.add((f, name))
                    continue
                if not is_product(target):
                    continue
                if target != f:
                    edges[f].add(target)
                todo.append(target)
    return edges, unresolved


def nm_all(objs):
    """{object: (defined global symbols, undefined symbols)}, from one nm run over all objects."""
    out = subprocess.run(["nm", "-A", "-g"] + sorted(objs), capture_output=True, text=True,
                         check=True).stdout
    syms = {o: (set(), set()) for o in objs}
    for ln in out.splitlines():
        # "obj:ADDR T sym" or "obj:                 U sym" (-A prefixes the object's name).
        obj, sep, rest = ln.rpartition(".o:")
        if not sep:
            continue
        parts = rest.split()
        entry = syms.get(obj + ".o")
        if entry is None or len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        if kind == "U":
            entry[1].add(name)
        elif kind not in ("w", "v"):
            entry[0].add(name)
    return syms


def call_graph(commands):
    """Edges source -> source where the first's object uses a symbol the second's defines."""
    objs = {}
    for src, (obj, _incs) in commands.items():
        if not obj or not os.path.isfile(obj):
            raise SystemExit(f"layers.py: no object for {src} ({obj}): build the tree first")
        objs[src] = obj
    syms = nm_all(set(objs.values()))
    defs = defaultdict(set)
    needs = {}
    for src, obj in objs.items():
        d, u = syms[obj]
        for s in d:
            defs[s].add(src)
        needs[src] = u
    edges = defaultdict(set)
    uses = defaultdict(set)
    for src, u in needs.items():
        for s in u:
            uses[src].add(s)
            if s == "main":
                continue
            for t in defs.get(s, ()):
                if t != src:
                    edges[src].add(t)
    return edges, uses


def sccs(nodes, edges):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def product_files(root):
    for top in PRODUCT_ROOTS:
        for dirpath, _dirs, files in os.walk(os.path.join(root, top)):
            for f in files:
                p = rel(os.path.join(dirpath, f), root)
                if is_product(p):
                    yield p


def check(root, build):
    commands = load_compile_commands(build, root)
    inc, unresolved = include_graph(root, commands)
    calls, uses = call_graph(commands)
    files = set(product_files(root))
    violations = []

    for f in sorted(files):
        if f.startswith(LINE_ROOTS):
            with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                n = sum(1 for _ in fh)
            if n > MAX_LINES:
                violations.append((f"lines: {f}", f"{n} lines (at most {MAX_LINES})"))

    for f in sorted(files | set(commands)):
        if layer_of(f)[0] is None:
            violations.append((f"unmapped: {f}", "no layer in scripts/layers.py LAYERS"))

    edges = defaultdict(set)
    why = defaultdict(set)
    for a, bs in inc.items():
        for b in bs:
            edges[a].add(b)
            why[(a, b)].add("includes")
    for a, bs in calls.items():
        for b in bs:
            edges[a].add(b)
            why[(a, b)].add("calls")

    nodes = files | set(edges) | {b for bs in edges.values() for b in bs}
    for comp in sccs(nodes, edges):
        if len(comp) > 1:
            inside = sorted(f"{a} {'+'.join(sorted(why[(a, b)]))} {b}"
                            for a in comp for b in edges[a] if b in comp)
            violations.append((f"cycle: {' '.join(comp)}", "; ".join(inside)))

    for a in sorted(edges):
        la, ra = layer_of(a)
        if la is None:
            continue
        for b in sorted(edges[a]):
            lb, rb = layer_of(b)
            if lb is None or la == lb:
                continue
            allowed = ISOLATED.get(la)
            bad = (lb not in allowed) if allowed is not None else (rb > ra or lb in ISOLATED)
            if bad:
                violations.append((f"layer: {a} -> {b}",
                                   f"{la} {'+'.join(sorted(why[(a, b)]))} {lb}"))

    for src in sorted(uses):
        la = layer_of(src)[0]
        if la in NO_LOGGING:
            logs = sorted(s for s in uses[src] if LOG_SYMBOLS.match(s))
            if logs:
                violations.append((f"logging: {src}", f"{la} must not log ({', '.join(logs)})"))

    for f, name in sorted(unresolved):
        if not name.startswith(("sscard/",)):
            violations.append((f"unresolved: {f} {name}", "include not found"))
    return violations, edges, why


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="a configured and built build directory")
    ap.add_argument("--source", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--report", action="store_true", help="print everything, exit 0")
    ap.add_argument("--dot", action="store_true", help="print the graph as Graphviz dot")
    args = ap.parse_args()
    root = os.path.realpath(args.source)
    violations, edges, why = check(root, os.path.realpath(args.build))

    if args.dot:
        print("digraph sscard {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}" [label="{"+".join(sorted(why[(a, b)]))}"];')
        print("}")
        return 0

    keys = {k for k, _ in violations}
    new = [(k, d) for k, d in violations if k not in ALLOWED]
    stale = sorted(ALLOWED - keys)
    if args.report:
        print(f"{len(violations)} violation(s), {len(ALLOWED)} allowed, {len(new)} new, "
              f"{len(stale)} allowed but gone")
        for k, d in violations:
            print(f"{'  ' if k in ALLOWED else 'NEW '}{k}\n      {d}")
        for k in stale:
            print(f"GONE {k}  (remove it from ALLOWED)")
        return 0
    for k, d in new:
        print(f"layers.py: {k}\n    {d}", file=sys.stderr)
    for k in stale:
        print(f"layers.py: fixed, remove from ALLOWED in scripts/layers.py: {k}", file=sys.stderr)
    if new or stale:
        return 1
    print(f"layers.py: ok ({len(ALLOWED)} known violation(s) allowed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
