#!/usr/bin/python3
"""sscard's benchmark: starts a private pcscd + vpcd, simulated cards and PSAMs (sscard-sim) and
sscardd (through tests/e2e/harness.py and sscardd.py), drives the C measuring clients of
sscard-bench against them, and prints one line per figure:

* APDUs per operation, counted by the simulators (control socket ``status``: apdus=N), beside the
  minimum the spec allows (docs/performance.md gives the reasoning for each minimum);
* card.read_basic latency through the daemon (median, p99) beside a bare C PC/SC client sending
  the same minimal APDU sequence straight to pcscd, in the same run, with the two APDU traces
  compared (simulator --verbose logs); the same with the simulator delaying each APDU;
* where the daemon's time goes: the bare client again with the PC/SC calls the daemon makes
  around each operation added one by one, and with each run handed to a second thread and back
  (the hand-off any daemon makes: --handoff);
* the CPU time per read of the daemon (all its threads) and of the bare client;
* throughput with N clients on one reader and M readers in parallel, with the daemon's memory;
* a repeated read of the same card without the read-ahead, and what a cache checked by 2 APDUs
  could save; card.read_basic answered from the read-ahead ([card] prefetch = yes) at 15 ms per APDU
  beside the bare client's whole read (the other sections run the daemon with prefetch = no: they
  measure what a read costs);
* journal rows per second with the durability the design promises;
* the extra latency per read with the network PSAM (the simulated key server, sscard-sim hsm, over
  real TLS with client certificates on loopback) against a PSAM in a reader: card.read_basic of a
  card that demands read authorisation, and card.internal_auth (one key operation each).

    sudo ./scripts/bench.sh                     # builds, then runs this
    sudo SSC_BUILD_DIR=build /usr/bin/python3 bench/run.py [--quick] [--json FILE]

Needs root (namespaces), like the end-to-end tests. Nothing here asserts: these are measurements.
"""

import argparse
import json
import os
import platform
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'e2e'))
import harness  # noqa: E402
import sscardd  # noqa: E402

SEQ = os.path.join(HERE, 'seq')
RESULTS = {'figures': []}


def bench_binary():
    return os.path.join(harness.BUILD_DIR, 'bench', 'sscard-bench')


def say(line):
    print(line, flush=True)


def figure(kind, name, **values):
    """Records one figure (for --json) and returns it."""
    f = dict(kind=kind, name=name, **values)
    RESULTS['figures'].append(f)
    return f


def run_bench(args, env=None, timeout=600):
    """Runs sscard-bench; returns {label: {key: value}} from its key=value lines (a label seen
    again gets a numbered key: 'load_error', 'load_error#2')."""
    p = subprocess.run([bench_binary()] + [str(a) for a in args], env=env, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f'sscard-bench {" ".join(map(str, args))} failed ({p.returncode}):\n'
                           f'{p.stdout}{p.stderr}')
    out = {}
    for line in p.stdout.splitlines():
        words = line.split()
        if not words:
            continue
        label, k = words[0], 2
        while label in out:
            label = f'{words[0]}#{k}'
            k += 1
        out[label] = {}
        for w in words[1:]:
            key, _, v = w.partition('=')
            try:
                out[label][key] = float(v)
            except ValueError:
                out[label][key] = v
    out['_stderr'] = p.stderr
    return out


def summary(samples):
    """median, p99 (nearest rank), mean of samples in microseconds -> milliseconds."""
    s = sorted(samples)
    n = len(s)
    rank = max(1, min(n, -(-99 * n // 100)))
    return {'n': n, 'median_ms': statistics.median(s) / 1000, 'p99_ms': s[rank - 1] / 1000,
            'mean_ms': statistics.fmean(s) / 1000, 'min_ms': s[0] / 1000}


def read_samples(path):
    with open(path) as f:
        return [float(x) for x in f if x.strip()]


def proc_memory(pid):
    """VmRSS and VmHWM of a process in KiB."""
    mem = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(('VmRSS:', 'VmHWM:')):
                k, v = line.split(':', 1)
                mem[k] = int(v.split()[0])
    return mem


def proc_cpu_ns(pid):
    """CPU time of all of a process's threads so far, in ns (schedstat: exact, not ticks)."""
    total = 0
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass          # a thread that ended meanwhile
    return total


def children_cpu_s():
    """CPU time of this process's waited-for children so far, in s (user + system)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_cpu(rig, script, runs, label):
    """CPU time per read: the daemon's (all its threads, while a client calls it runs times)
    against the bare client's (a process doing the same runs): what the daemon costs in work,
    which the cross-CPU wake-ups that move the latency figures on a VM do not blur."""
    pid = rig.d.proc.pid
    rpc = ['rpc', '--socket', rig.d.socket_path, '--method', 'card.read_basic', '--warmup', 0]
    run_bench(rpc + ['-n', 5])       # the card connected and warm
    before = proc_cpu_ns(pid)
    run_bench(rpc + ['-n', runs])
    daemon_ms = (proc_cpu_ns(pid) - before) / 1e6 / runs
    before = children_cpu_s()
    run_bench(['pcsc', '--reader', rig.h.reader_name(0), '-n', runs, '--warmup', 0, '--script',
               os.path.join(SEQ, script)], env=rig.env())
    bare_ms = (children_cpu_s() - before) * 1000 / runs
    say(f'cpu     {label}: daemon {daemon_ms:.3f} ms per read (all threads), bare client '
        f'{bare_ms:.3f} ms per read (the process, start-up included); the daemon\'s work beyond '
        f'the bare client: {daemon_ms - bare_ms:.3f} ms ({runs} reads each)')
    figure('cpu', label, daemon_ms=daemon_ms, bare_ms=bare_ms, runs=runs)


def machine():
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem_kb = int(line.split()[1])

    def version(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return '?'
    pcscd = version(['dpkg-query', '-W', '-f', '${Version}', 'pcscd'])
    vpcd = version(['dpkg-query', '-W', '-f', '${Version}', 'vsmartcard-vpcd'])
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(mem_kb / 1048576, 1),
            'kernel': platform.release(), 'os': platform.freedesktop_os_release().get(
                'PRETTY_NAME', '?') if hasattr(platform, 'freedesktop_os_release') else '?',
            'pcscd': pcscd, 'vsmartcard_vpcd': vpcd}


class Rig:
    """One harness (namespace, pcscd with `readers` vpcd slots) and one sscardd on it."""

    def __init__(self, name, readers, deadline=900.0):
        self.h = harness.Harness(None, readers=readers, deadline=deadline, name=name)
        self.h.start_pcscd()
        self.d = None
        self.c = None
        self.sims = {}

    def card(self, slot, profile, **kw):
        self.sims[slot] = self.h.start_card(profile, slot=slot, name=f'card{slot}-{profile}', **kw)
        return self.sims[slot]

    def psam(self, slot, profile, **kw):
        self.sims[slot] = self.h.start_psam(profile, slot=slot, name=f'psam{slot}-{profile}', **kw)
        return self.sims[slot]

    def remove(self, slot):
        """Stops the simulator on slot and waits until the daemon sees the reader empty."""
        self.sims.pop(slot).stop()
        if self.d:
            self.d.wait_reader(self.c, self.h.reader_name(slot), card=False)

    def daemon(self, config=None, in_mountns=False, prefetch=False):
        """Starts sscardd. Without the read-ahead unless asked: the other sections measure what
        a read costs, and a card.read_basic answered from the read-ahead sends the card nothing."""
        config = {k: dict(v) for k, v in (config or {}).items()}
        config.setdefault('card', {})['prefetch'] = 'yes' if prefetch else 'no'
        self.d = sscardd.Daemon(self.h, config=config, log_level='info',
                                in_mountns=in_mountns).start()
        self.c = self.d.client(timeout=10.0)
        return self.d

    def wait(self, roles):
        want = {}
        for slot, role in roles.items():
            want[self.h.reader_name(slot)] = ({'card': False} if role is None else
                                              {'card': True, 'role': role, 'busy': False})
        return self.d.wait_readers(self.c, want, timeout=15.0)

    def apdus(self, slot):
        return self.sims[slot].status()['apdus']

    def env(self):
        return self.h.pcscd.client_env()

    def close(self):
        self.h.close()


def sim_commands(sim, since, until=None):
    """The command APDUs (hex) a --verbose simulator logged between two byte offsets of its log."""
    with open(sim.proc.log_path, 'rb') as f:
        f.seek(since)
        text = f.read(-1 if until is None else until - since).decode('utf-8', 'replace')
    return re.findall(r': > ([0-9A-F]+)', text)


def log_size(sim):
    return os.path.getsize(sim.proc.log_path)


# ---------------------------------------------------------------------------------------------
# APDUs per operation

# card.read_basic per profile: (minimum card APDUs, minimum PSAM APDUs, why); docs/performance.md
# gives the reasoning in full. The PSAM minimum counts its key application as selected once per
# PSAM session and its terminal number as read once per PSAM insertion (the probe reads it).
MINIMUM = {
    'gen2': (13, 0, 'SELECT SSSE + 12 READ RECORD (one per reported item, SFI addressing)'),
    'gen3': (13, 0, 'as gen2 (SM4 changes nothing for a read)'),
    'gen1': (12, 0, 'spec 1.00: no 姓名扩展 record'),
    'gen2-tagmode': (13, 0, 'as gen2, every READ RECORD by tag'),
    't0-quirks': (26, 0, 'every command needs GET RESPONSE; exact Le known from the layout'),
    'gen3-readauth': (15, 2, 'read authorisation: + GET CHALLENGE + EXTERNAL AUTH 0A; PSAM: '
                             'DELIVER KEY + CIPHER'),
}

TRACES = False      # --traces: print the command APDUs of every counted operation


def take_trace(rig, since):
    """The command APDUs the simulators on slots 0 (card) and 1 (PSAM) logged since the marks."""
    out = []
    for slot, who in ((0, 'card'), (1, 'psam')):
        if slot in rig.sims and slot in since:
            out += [f'{who} > {cmd}' for cmd in sim_commands(rig.sims[slot], since[slot])]
    return out


def show_trace(trace):
    if TRACES:
        for line in trace:
            say(f'        {line}')


def marks(rig):
    return {s: log_size(sim) for s, sim in rig.sims.items()}


def bench_apdus(quick):
    """APDUs per operation for every shipped kind of card, with the PSAM of its algorithm present
    (a desk's normal state) and, for read_basic, without any PSAM."""
    rig = Rig('bench-apdus', readers=4)
    try:
        rig.daemon()
        for profile, (min_card, min_psam, why) in MINIMUM.items():
            alg_psam = 'gen3' if profile.startswith('gen3') else 'gen2'
            rig.card(0, profile, verbose=True)
            rig.psam(1, alg_psam, verbose=True)
            rig.wait({0: 'user', 1: 'psam'})
            counts, traces = [], []
            for i in range(2):
                c0, p0, m = rig.apdus(0), rig.apdus(1), marks(rig)
                rig.c.call('card.read_basic')
                counts.append((rig.apdus(0) - c0, rig.apdus(1) - p0))
                traces.append(take_trace(rig, m))
            (card1, psam1), (card2, psam2) = counts
            f = figure('apdus', f'card.read_basic {profile}', card=card2, psam=psam2,
                       first_card=card1, first_psam=psam1, min_card=min_card, min_psam=min_psam,
                       why=why)
            first = '' if (card1, psam1) == (card2, psam2) else \
                f' (first read of the insertion: card {card1} + PSAM {psam1})'
            say(f'apdus card.read_basic {profile:33s} daemon card {card2:2d} + PSAM {psam2} '
                f'| minimum card {min_card:2d} + PSAM {min_psam}{first}')
            show_trace(traces[1])
            if first and TRACES:
                say('      the first read of the insertion:')
                show_trace(traces[0])
            if profile == 'gen2':
                rig.remove(1)
                c0, m = rig.apdus(0), marks(rig)
                rig.c.call('card.read_basic')
                n = rig.apdus(0) - c0
                trace = take_trace(rig, m)
                figure('apdus', 'card.read_basic gen2 no PSAM', card=n, psam=0, min_card=13,
                       min_psam=0)
                say(f'apdus card.read_basic gen2 (no PSAM)                 daemon card {n:2d} + PSAM 0 '
                    f'| minimum card 13 + PSAM 0')
                show_trace(trace)
                rig.psam(1, alg_psam, verbose=True)
                rig.wait({0: 'user', 1: 'psam'})
                bench_apdus_other_ops(rig)
            rig.remove(0)
            rig.remove(1)
    finally:
        rig.close()


def count_call(rig, method, params):
    """(card APDUs, PSAM APDUs, error name or None) of one call on slot 0 with the PSAM on 1."""
    c0, p0, m = rig.apdus(0), rig.apdus(1), marks(rig)
    err = None
    try:
        rig.c.call(method, params)
    except sscardd.RpcError as e:
        err = e.name or str(e.code)
    return rig.apdus(0) - c0, rig.apdus(1) - p0, err, take_trace(rig, m)


# (method, params, minimum card, minimum PSAM, the design's minimum card, reason); on the gen2
# card (DES PSAM), PIN 123456. The design's minimum adds what the daemon's documented duties need
# beyond the card protocol: every card.* method checks the card number and 卡识别码 against the
# lost-card list (docs/api.md), and a write records the old value in its intent first.
OTHER_OPS = [
    ('card.read_basic', {'internal_auth': True}, 14, 3, 14,
     'read_basic + INTERNAL AUTH; PSAM: DELIVER KEY 47/11 + CIPHER + GET RESPONSE (DES)'),
    ('card.internal_auth', None, 4, 3, 5,
     'SELECT SSSE, READ EF05 03 (1.00 is refused) and 01 (cityDiv), INTERNAL AUTH; PSAM as above; '
     'design: + READ EF05 07 (lost-card list)'),
    ('card.verify_pin', {'pin': '123456'}, 2, 0, 4,
     'SELECT SSSE + VERIFY; design: + READ EF05 07 and 01 (lost-card list)'),
    ('card.write_items', {'file': 'DF04/EF05', 'items': {'31': '12'}}, 7, 2, 9,
     'SELECT SSSE, READ EF05 01 (cityDiv), 03 (1.00 is refused), 06 (expired is refused), '
     'SELECT DF04, GET CHALLENGE, UPDATE RECORD with MAC; PSAM: DELIVER KEY (Lc 10) + MAC; '
     'design: + READ EF05 07 (lost-card list, the intent names the card) + READ the old record '
     '(the intent holds its ref)'),
]


def bench_apdus_other_ops(rig):
    for method, params, min_card, min_psam, design_card, why in OTHER_OPS:
        card, psam, err, trace = count_call(rig, method, params)
        if err in ('-32601', 'code-32601') or (err and 'METHOD' in err.upper()):
            say(f'apdus {method:28s} not available yet (issue 4)')
            figure('apdus', method, available=False)
            continue
        if err is None or err == 'None':
            label = method + (' ' + json.dumps(params, ensure_ascii=False) if params else '')
            design = '' if design_card == min_card else f' (the design: card {design_card})'
            say(f'apdus {label:48s} daemon card {card:2d} + PSAM {psam} '
                f'| minimum card {min_card:2d} + PSAM {min_psam}{design}')
            figure('apdus', label, card=card, psam=psam, min_card=min_card, min_psam=min_psam,
                   design_card=design_card, why=why)
            show_trace(trace)
        else:
            say(f'apdus {method:28s} answered {err} (card {card}, PSAM {psam})')
            figure('apdus', method, error=err, card=card, psam=psam)


# ---------------------------------------------------------------------------------------------
# Latency: daemon vs bare PC/SC

# Commands whose data is a fresh random or what was derived from one (a challenge, a cryptogram):
# traces compare only their header (CLA INS P1 P2 Lc) there.
RANDOM_DATA = ('0082', '0088', 'BFDE', '80FA')


PSAM_SELECT = '00A4040006D15600000590'


def normalise(cmd):
    return cmd[:10] + '..' if cmd[2:6] in RANDOM_DATA or cmd[:4] in RANDOM_DATA else cmd


def trace_check(rig, scripts, label, reader_slot=0, psam_slot=None, roles=None):
    """One daemon read and one bare run on --verbose simulators: are their command APDUs the
    same sequence? (With a PSAM the daemon is stopped for the bare run: it holds its PSAMs.)"""
    sims = [reader_slot] + ([psam_slot] if psam_slot is not None else [])
    before = {s: log_size(rig.sims[s]) for s in sims}
    rig.c.call('card.read_basic')
    mid = {s: log_size(rig.sims[s]) for s in sims}
    args = ['pcsc', '--reader', rig.h.reader_name(reader_slot), '-n', 1, '--warmup', 0]
    for sc in scripts:
        args += ['--script', os.path.join(SEQ, sc)]
    if psam_slot is not None:
        args += ['--psam-reader', rig.h.reader_name(psam_slot)]
        rig.d.stop()
    run_bench(args, env=rig.env())
    end = {s: log_size(rig.sims[s]) for s in sims}
    if psam_slot is not None:
        rig.daemon()
        rig.wait(roles)
    for s in sims:
        daemon = [normalise(c) for c in sim_commands(rig.sims[s], before[s], mid[s])]
        bare = [normalise(c) for c in sim_commands(rig.sims[s], mid[s], end[s])]
        if s != reader_slot:
            # The PSAM's key application is selected once per PSAM session, not per read: its
            # SELECT is left out on both sides.
            daemon = [c for c in daemon if c != PSAM_SELECT]
            bare = [c for c in bare if c != PSAM_SELECT]
        same = daemon == bare
        who = 'card' if s == reader_slot else 'PSAM'
        figure('trace', f'{label} {who}', identical=same, daemon=len(daemon), bare=len(bare),
               daemon_trace=daemon, bare_trace=bare)
        if same:
            say(f'trace   {label} {who}: identical, {len(daemon)} command APDUs')
        else:
            say(f'trace   {label} {who}: DIFFERENT: daemon {len(daemon)} vs minimal '
                f'{len(bare)} command APDUs')
            for i in range(max(len(daemon), len(bare))):
                a = daemon[i] if i < len(daemon) else '-'
                b = bare[i] if i < len(bare) else '-'
                say(f'    {i + 1:2d} {"  " if a == b else "!="} daemon {a:40s} minimal {b}')


# Untimed runs at the start of every block of timed_pair: a new client process (and its
# --handoff thread) runs its first reads slower while the scheduler settles where it runs.
WARMUP = 20


def timed_pair(rig, scripts, runs, blocks, label, extra_variants=(), psam_slot=None,
               params=None, roles=None, warmup=WARMUP):
    """Blocks of daemon card.read_basic runs and bare PC/SC runs, in an order shuffled anew for
    every block (so that drift hits all alike, and no side always runs first: the first client
    after the daemon's block waits for it to release the card, and a process that came first
    after such a pause was seen to run up to 20% faster or slower than the next); prints and
    returns the summaries and the ratio. A bare run that talks to a PSAM needs the daemon stopped
    (it keeps its PSAMs connected, exclusively): such runs come after the shuffled ones of their
    block, with the daemon stopped, and the daemon is started again after them (roles says what
    to wait for then)."""
    tmp = tempfile.mkdtemp(prefix='sscard-bench-')
    per = max(1, runs // blocks)
    variants = [('bare', [])] + list(extra_variants)
    samples = {'daemon': []}
    for name, _ in variants:
        samples[name] = []
    base = ['pcsc', '--reader', rig.h.reader_name(0), '-n', per, '--warmup', warmup]
    for sc in scripts:
        base += ['--script', os.path.join(SEQ, sc)]
    if psam_slot is not None:
        base += ['--psam-reader', rig.h.reader_name(psam_slot)]
    rpc = ['rpc', '--socket', rig.d.socket_path, '--method', 'card.read_basic', '-n', per,
           '--warmup', warmup]
    if params:
        rpc += ['--params', json.dumps(params)]
    needs_psam = [psam_slot is not None or '--psam-reader' in e for _, e in variants]
    early = [k for k in range(len(variants)) if not needs_psam[k]]
    late = [k for k in range(len(variants)) if needs_psam[k]]
    order = random.Random(f'{label} {runs} {blocks}')   # the same orders in every run of the bench

    def run_variant(k):
        name, extra = variants[k]
        path = os.path.join(tmp, f'variant{k}')
        run_bench(base + list(extra) + ['--samples', path], env=rig.env())
        samples[name] += read_samples(path)

    for _ in range(blocks):
        steps = ['daemon'] + early
        order.shuffle(steps)
        for k in steps:
            if k != 'daemon':
                run_variant(k)
                continue
            path = os.path.join(tmp, 'daemon')
            run_bench(rpc + ['--samples', path])
            samples['daemon'] += read_samples(path)
        if late:
            order.shuffle(late)
            rig.d.stop()
            for k in late:
                run_variant(k)
            rig.daemon()
            rig.wait(roles)
            rpc[2] = rig.d.socket_path
    res = {k: summary(v) for k, v in samples.items()}
    d, bare = res['daemon'], res['bare']
    ratio = d['median_ms'] / bare['median_ms']
    ratio99 = d['p99_ms'] / bare['p99_ms']
    say(f'latency {label} daemon   : median {d["median_ms"]:.3f} ms  p99 {d["p99_ms"]:.3f} ms  '
        f'(n={d["n"]})')
    say(f'latency {label} bare PC/SC: median {bare["median_ms"]:.3f} ms  p99 '
        f'{bare["p99_ms"]:.3f} ms  (n={bare["n"]})  ratio {ratio:.2f}x median, '
        f'{ratio99:.2f}x p99')
    for name, _ in extra_variants:
        v = res[name]
        say(f'latency {label} bare {name:28s}: median {v["median_ms"]:.3f} ms  p99 '
            f'{v["p99_ms"]:.3f} ms')
    figure('latency', label, results=res, ratio_median=ratio, ratio_p99=ratio99)
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    return res, ratio


# What the daemon adds around one operation, added to the bare client one at a time: the hand-off
# to a worker thread and back, and the PC/SC calls its pcsc driver makes.
ATTRIBUTION = [
    ('+hand-off to a thread and back', ['--handoff']),
    ('+connect/status/disconnect', ['--connect-per-run']),
    ('+context/list/connect/status/disc.', ['--context-per-run']),
]


def bench_latency(quick):
    runs = 100 if quick else 250
    rig = Rig('bench-latency', readers=2)
    try:
        rig.daemon()
        # The trace check on a --verbose simulator, then the timing on a quiet one.
        rig.card(0, 'gen2', verbose=True)
        rig.wait({0: 'user', 1: None})
        trace_check(rig, ['read_basic.seq'], 'card.read_basic gen2 (no PSAM)')
        rig.remove(0)
        rig.card(0, 'gen2', verbose=False)
        rig.wait({0: 'user', 1: None})
        timed_pair(rig, ['read_basic.seq'], runs * 4, 10, 'card.read_basic gen2 (no PSAM)',
                   extra_variants=ATTRIBUTION)
        bench_cpu(rig, 'read_basic.seq', 200 if quick else 1000, 'card.read_basic gen2 (no PSAM)')
        # Repeated reads of one inserted card: every read costs the whole sequence; a safe cache
        # would still check the card (card_check.seq).
        res = run_bench(['pcsc', '--reader', rig.h.reader_name(0), '--script',
                         os.path.join(SEQ, 'card_check.seq'), '-n', runs, '--warmup', 5],
                        env=rig.env())['pcsc']
        say(f'repeat  card.read_basic gen2: every read repeats all 13 APDUs (the daemon does not '
            f'cache); a cache checked by SELECT + READ 卡识别码 (2 APDUs, bare): median '
            f'{res["median_us"] / 1000:.3f} ms')
        figure('repeat', 'card_check bare', median_ms=res['median_us'] / 1000,
               p99_ms=res['p99_us'] / 1000)
        # With a PSAM of the card's algorithm: the daemon also reads the terminal number.
        rig.psam(1, 'gen2')
        rig.wait({0: 'user', 1: 'psam'})
        timed_pair(rig, ['read_basic.seq'], runs * 4, 10, 'card.read_basic gen2 (DES PSAM)',
                   extra_variants=[('+PSAM terminal number (2 APDUs)', ['--script', os.path.join(
                       SEQ, 'psam_terminal.seq'), '--psam-reader', rig.h.reader_name(1)])],
                   roles={0: 'user', 1: 'psam'})
        rig.remove(0)
        rig.remove(1)
        # Read authorisation: gen3-readauth with the SM4 PSAM.
        rig.card(0, 'gen3-readauth', verbose=True)
        rig.psam(1, 'gen3', verbose=True)
        rig.wait({0: 'user', 1: 'psam'})
        rig.c.call('card.read_basic')      # the first read of the insertion learns it needs auth
        trace_check(rig, ['read_basic_readauth.seq'], 'card.read_basic gen3-readauth', psam_slot=1,
                    roles={0: 'user', 1: 'psam'})
        timed_pair(rig, ['read_basic_readauth.seq'], runs // 2, 10,
                   'card.read_basic gen3-readauth (SM4 PSAM, verbose sims)', psam_slot=1,
                   roles={0: 'user', 1: 'psam'})
    finally:
        rig.close()


def bench_delay(quick):
    runs = 10 if quick else 30
    rig = Rig('bench-delay', readers=2)
    try:
        rig.daemon()
        rig.card(0, 'gen2', apdu_delay_ms=15)
        rig.wait({0: 'user', 1: None})
        # 15 ms per APDU dwarfs the few microseconds a new process's first reads lose: 2 warm-ups.
        pair, _ = timed_pair(rig, ['read_basic.seq'], runs, 2, 'card.read_basic gen2 15 ms/APDU',
                             warmup=2)
        res = run_bench(['pcsc', '--reader', rig.h.reader_name(0), '--script',
                         os.path.join(SEQ, 'card_check.seq'), '-n', runs, '--warmup', 2],
                        env=rig.env())['pcsc']
        say(f'repeat  card.read_basic gen2 15 ms/APDU: a cache checked by 2 APDUs would answer in '
            f'{res["median_us"] / 1000:.1f} ms (bare)')
        figure('repeat', 'card_check bare 15ms', median_ms=res['median_us'] / 1000)
        bench_ahead(rig, runs, pair['bare'])
    finally:
        rig.close()


def bench_ahead(rig, runs, bare):
    """The read-ahead (issue 18, [card] prefetch = yes) at 15 ms per APDU: the card inserted with
    the daemon running, card.ready awaited (the read-ahead comes before it), then card.read_basic
    answered from what was read, beside the bare client's whole read (bare: its summary)."""
    rig.remove(0)
    rig.d.stop()
    rig.daemon(config={'timeouts': {'card_hold_ms': '60000'}}, prefetch=True)
    rig.c.call('events.subscribe')
    t0 = time.monotonic()
    rig.card(0, 'gen2', apdu_delay_ms=15)
    rig.c.next_event(timeout=15.0, type='card.ready', reader=sscardd.slot_id(0))
    to_ready = (time.monotonic() - t0) * 1000
    before = rig.apdus(0)
    samples = rpc_samples(rig, 'card.read_basic', {}, runs * 10, 2)
    sent = rig.apdus(0) - before
    a = summary(samples)
    say(f'ahead   card.read_basic gen2 15 ms/APDU from the read-ahead: median {a["median_ms"]:.3f} ms'
        f'  p99 {a["p99_ms"]:.3f} ms  (n={a["n"]}, {sent} APDUs sent for them); bare PC/SC '
        f'client: median {bare["median_ms"]:.1f} ms; simulator start to card.ready '
        f'{to_ready:.0f} ms (one read, before anyone asks)')
    figure('ahead', 'card.read_basic gen2 15ms read-ahead', results=a, apdus=sent,
           bare_median_ms=bare['median_ms'], start_to_ready_ms=to_ready)

    # Past the hold (card_hold_ms 50 ms here): the daemon watches the card over a shared
    # connection ([card] prefetch_shared); each read first checks that handle and takes the card
    # back exclusively (SCardStatus, SCardReconnect), then answers from the read-ahead.
    rig.d.stop()
    rig.daemon(config={'timeouts': {'card_hold_ms': '50'}}, prefetch=True)
    rig.wait({0: 'user'})
    before = rig.apdus(0)
    late = []
    for _ in range(max(20, runs)):
        time.sleep(0.2)            # the hold is over: the card is let go of, shared
        t = time.monotonic()
        rig.c.call('card.read_basic')
        late.append((time.monotonic() - t) * 1e6)
    sent = rig.apdus(0) - before
    b = summary(late)
    say(f'ahead   card.read_basic gen2 15 ms/APDU from the read-ahead past card_hold_ms (shared '
        f'connection taken back): median {b["median_ms"]:.3f} ms  p99 {b["p99_ms"]:.3f} ms  '
        f'(n={b["n"]}, {sent} APDUs sent for them; python client)')
    figure('ahead', 'card.read_basic gen2 15ms read-ahead past the hold', results=b, apdus=sent)


# ---------------------------------------------------------------------------------------------
# Throughput

def bench_throughput(quick):
    seconds = 2 if quick else 5
    rig = Rig('bench-load', readers=8)
    try:
        rig.daemon()
        for slot in range(8):
            rig.card(slot, 'gen2')
        rig.wait({slot: 'user' for slot in range(8)})
        pid = rig.d.pid
        mem = proc_memory(pid)
        say(f'memory  sscardd idle, 8 readers: VmRSS {mem["VmRSS"]} KiB, VmHWM {mem["VmHWM"]} KiB')
        figure('memory', 'idle 8 readers', **mem)
        ids = [sscardd.slot_id(s) for s in range(8)]
        for clients in (1, 10, 100):
            out = run_bench(['load', '--socket', rig.d.socket_path, '--method', 'card.read_basic',
                             '--params', json.dumps({'reader': ids[0]}), '--clients', clients,
                             '--seconds', seconds, '--retry-ms', 20], timeout=seconds + 120)
            report_load(out, f'{clients} clients, 1 reader', pid)
        for readers in (1, 4, 8):
            params = []
            for r in range(readers):
                params += ['--params', json.dumps({'reader': ids[r]})]
            out = run_bench(['load', '--socket', rig.d.socket_path, '--method', 'card.read_basic',
                             '--clients', 2 * readers, '--seconds', seconds, '--retry-ms', 20]
                            + params, timeout=seconds + 120)
            report_load(out, f'{readers} readers, 2 clients each', pid)
        # Every call is audited, refusals included; the daemon says at exit what it had to drop.
        rig.d.stop()
        m = re.search(r'(\d+) audit row\(s\) could not be written', rig.d.log_text())
        dropped = int(m.group(1)) if m else 0
        say(f'journal audit rows dropped by the daemon during the load runs: {dropped}')
        figure('load', 'audit rows dropped', dropped=dropped)
    finally:
        rig.close()


def report_load(out, label, pid):
    load = out['load']
    lat = out['load_latency']
    errors = {v['name']: int(v['n']) for k, v in out.items() if k.startswith('load_error')}
    mem = proc_memory(pid)
    err = ', '.join(f'{n} {k}' for k, v in errors.items() for n in [v]) or 'none'
    say(f'load    {label:28s}: {load["ok_per_s"]:7.1f} reads/s, median {lat["median_us"] / 1000:.2f}'
        f' ms p90 {lat["p90_us"] / 1000:.2f} ms p99 {lat["p99_us"] / 1000:.2f} ms max '
        f'{lat["max_us"] / 1000:.2f} ms; refused: {err}; VmRSS {mem["VmRSS"]} KiB '
        f'VmHWM {mem["VmHWM"]} KiB')
    figure('load', label, reads_per_s=load['ok_per_s'], ok=load['ok'], errors=errors,
           median_ms=lat['median_us'] / 1000, p90_ms=lat['p90_us'] / 1000,
           p99_ms=lat['p99_us'] / 1000, max_ms=lat['max_us'] / 1000, **mem)


# ---------------------------------------------------------------------------------------------
# Cold start and idle memory

def first_answer(d, method, params, t0, timeout=30.0):
    """Milliseconds from t0 (time.monotonic() just before the daemon's exec) to the first answer
    of method with a result: a connect, the request and its reply, tried again every half
    millisecond (an error such as SSC_ENOCARD before the reader is seen counts as not yet)."""
    line = json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': method,
                       **({'params': params} if params else {})}).encode() + b'\n'
    end = t0 + timeout
    while time.monotonic() < end:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(d.socket_path)
            s.sendall(line)
            buf = b''
            while b'\n' not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.close()
            if b'\n' in buf and 'result' in json.loads(buf.split(b'\n')[0]):
                return (time.monotonic() - t0) * 1000
        except OSError:
            pass
        time.sleep(0.0005)
    raise RuntimeError(f'{method}: no answer within {timeout} s of the exec')


def cold_start(rig, method, params, config=None, in_mountns=False):
    """Starts sscardd on the rig (its configuration written first) and returns (ms from exec to
    the first answer of method, the daemon's CPU time by then in ms, all its threads)."""
    d = sscardd.Daemon(rig.h, config=config, log_level='info', in_mountns=in_mountns)
    with open(d.config_path, 'w') as f:
        f.write(sscardd.ini_text(d.sections))
    if os.path.exists(d.socket_path):
        os.unlink(d.socket_path)
    t0 = time.monotonic()
    d.proc = rig.h.spawn(d.name, d.argv(), in_mountns=in_mountns)
    ms = first_answer(d, method, params, t0)
    cpu_ms = proc_cpu_ns(d.proc.pid) / 1e6
    rig.d = d
    rig.c = d.client(timeout=10.0)
    return ms, cpu_ms


def bench_start(quick):
    """sscardd from exec to answering: system.info with no reader and with 8, card.read_basic of a
    card already in its reader (with the default read-ahead); the daemon's CPU time by then; idle
    memory with 8 readers, with [metrics] off and on. The journal exists (a first start, not
    counted, created it), as at a desk's restart."""
    runs = 3 if quick else 10
    out = {}

    def starts(rig, label, method, params):
        jcfg = {'journal': {'path': rig.h.path('start.db')}}
        cold_start(rig, 'system.info', None, config=jcfg)      # creates the journal
        rig.d.stop()
        out[label] = []
        for _ in range(runs):
            out[label].append(cold_start(rig, method, params, config=jcfg))
            rig.d.stop()
    rig = Rig('bench-start0', readers=0)
    try:
        starts(rig, 'system.info, no reader', 'system.info', None)
    finally:
        rig.close()
    rig = Rig('bench-start8', readers=8)
    try:
        for slot in range(8):
            rig.card(slot, 'gen2')
        starts(rig, 'system.info, 8 readers with cards', 'system.info', None)
        starts(rig, 'card.read_basic, card in the reader (8 readers)', 'card.read_basic',
               {'reader': sscardd.slot_id(0)})
        for label, pairs in out.items():
            ms = sorted(p[0] for p in pairs)
            cpu = sorted(p[1] for p in pairs)
            say(f'start   exec -> {label}: median {statistics.median(ms):.1f} ms, min {ms[0]:.1f}'
                f', max {ms[-1]:.1f} ms; the daemon\'s CPU time by then median '
                f'{statistics.median(cpu):.1f} ms ({len(ms)} starts)')
            figure('start', label, median_ms=statistics.median(ms), min_ms=ms[0], max_ms=ms[-1],
                   cpu_median_ms=statistics.median(cpu), n=len(ms))
        # Idle memory: the daemon settled (every card probed and read ahead) and a few seconds idle.
        for label, config in (('metrics off', None),
                              ('metrics on', {'metrics': {'listen': '127.0.0.1:9464'}})):
            rig.daemon(config=config, in_mountns=True)
            rig.wait({slot: 'user' for slot in range(8)})
            time.sleep(3)
            mem = proc_memory(rig.d.pid)
            say(f'memory  sscardd idle, 8 readers with cards, {label}: VmRSS {mem["VmRSS"]} KiB, '
                f'VmHWM {mem["VmHWM"]} KiB')
            figure('memory', f'idle 8 readers {label}', **mem)
            rig.d.stop()
    finally:
        rig.close()


# ---------------------------------------------------------------------------------------------
# Journal

def bench_journal(quick):
    d = '/var/tmp'
    fs = subprocess.run(['findmnt', '-n', '-o', 'FSTYPE,SOURCE', '-T', d], text=True,
                        stdout=subprocess.PIPE).stdout.strip()
    out = run_bench(['journal', '--dir', d, '--audit-rows', 500 if quick else 5000,
                     '--intents', 100 if quick else 500])
    a, i = out['journal_audit'], out['journal_intent']
    al, il = out['journal_audit_latency'], out['journal_intent_latency']
    say(f'journal audit rows (WAL, synchronous=NORMAL) on {d} ({fs}): {a["rows_per_s"]:.0f} rows/s'
        f', median {al["median_us"] / 1000:.3f} ms p99 {al["p99_us"] / 1000:.3f} ms')
    b, bl = out['journal_audit_batch'], out['journal_audit_batch_latency']
    say(f'journal audit rows, 64 per transaction (the audit writer when rows gather): '
        f'{b["rows_per_s"]:.0f} rows/s ({b["rows_per_s"] / a["rows_per_s"]:.1f}x one per '
        f'transaction), median {bl["median_us"] / 1000:.3f} ms per transaction')
    figure('journal', 'audit batch 64', rows_per_s=b['rows_per_s'],
           median_ms=bl['median_us'] / 1000, p99_ms=bl['p99_us'] / 1000,
           ratio=b['rows_per_s'] / a['rows_per_s'])
    say(f'journal write intent + outcome (synchronous=FULL): {i["rows_per_s"]:.0f} pairs/s, '
        f'median {il["median_us"] / 1000:.3f} ms p99 {il["p99_us"] / 1000:.3f} ms')
    figure('journal', 'audit', rows_per_s=a['rows_per_s'], median_ms=al['median_us'] / 1000,
           p99_ms=al['p99_us'] / 1000, fs=fs)
    figure('journal', 'intent+outcome', pairs_per_s=i['rows_per_s'],
           median_ms=il['median_us'] / 1000, p99_ms=il['p99_us'] / 1000)


def rpc_samples(rig, method, params, runs, warmup):
    """Latency samples (microseconds) of runs calls of method through the daemon."""
    tmp = tempfile.mkdtemp(prefix='sscard-bench-')
    path = os.path.join(tmp, 'samples')
    try:
        run_bench(['rpc', '--socket', rig.d.socket_path, '--method', method, '-n', runs,
                   '--warmup', warmup, '--params', json.dumps(params), '--samples', path])
        return read_samples(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)


def bench_hsm(quick):
    """The network PSAM against a PSAM in a reader (issue 14): the same operations on the same
    cards with each provider, in alternating blocks (so that drift hits both alike); prints the
    median and p99 of each and the difference, the extra latency per read. The key server runs
    on loopback in the harness's network namespace (no network delay: what remains is TLS, HTTP,
    JSON and the hand-off), so a real desk adds its round trip to the province per key
    operation."""
    import hsmkit
    runs = 40 if quick else 200
    blocks = 4 if quick else 10
    per = max(1, runs // blocks)
    rig = Rig('bench-hsm', readers=4)
    try:
        pki = hsmkit.make_pki(rig.h)
        rig.card(0, 'gen3-readauth', verbose=False)
        rig.card(1, 'gen2', verbose=False)
        ks = hsmkit.KeyServer(rig.h, pki, psams=('gen2', 'gen3'), verbose=False).start()
        ops = [('card.read_basic gen3-readauth (read authorisation)', 'card.read_basic',
                {'reader': sscardd.slot_id(0)}),
               ('card.internal_auth gen2', 'card.internal_auth', {'reader': sscardd.slot_id(1)})]
        samples = {(label, who): [] for label, _, _ in ops for who in ('psam', 'hsm')}
        for b in range(blocks):
            for who in (('psam', 'hsm') if b % 2 == 0 else ('hsm', 'psam')):
                if who == 'psam':
                    rig.psam(2, 'gen2')
                    rig.psam(3, 'gen3')
                    rig.daemon(in_mountns=True)
                    rig.wait({0: 'user', 1: 'user', 2: 'psam', 3: 'psam'})
                else:
                    rig.daemon(config=hsmkit.daemon_config(pki), in_mountns=True)
                    rig.wait({0: 'user', 1: 'user', 2: None, 3: None})
                for label, method, params in ops:
                    samples[(label, who)] += rpc_samples(rig, method, params, per, 3)
                if who == 'psam':
                    rig.remove(2)
                    rig.remove(3)
                rig.d.stop()
        st = ks.status()
        for label, _, _ in ops:
            p, h = summary(samples[(label, 'psam')]), summary(samples[(label, 'hsm')])
            extra = h['median_ms'] - p['median_ms']
            extra99 = h['p99_ms'] - p['p99_ms']
            say(f'hsm     {label} PSAM in a reader: median {p["median_ms"]:.3f} ms  p99 '
                f'{p["p99_ms"]:.3f} ms  (n={p["n"]})')
            say(f'hsm     {label} network PSAM    : median {h["median_ms"]:.3f} ms  p99 '
                f'{h["p99_ms"]:.3f} ms  (n={h["n"]})  extra per read {extra:+.3f} ms median, '
                f'{extra99:+.3f} ms p99')
            figure('hsm', label, psam=p, hsm=h, extra_median_ms=extra, extra_p99_ms=extra99)
        say(f'hsm     key server during the runs: {st["exchanges"]} exchanges (one per key operation), '
            f'{st["requests"]} requests, {st["connections"]} TLS connections ({blocks} daemon '
            f'starts)')
        figure('hsm', 'key server counters', exchanges=st['exchanges'], requests=st['requests'],
               connections=st['connections'], daemon_starts=blocks)
    finally:
        rig.close()


SECTIONS = {'apdus': bench_apdus, 'latency': bench_latency, 'delay': bench_delay,
            'throughput': bench_throughput, 'start': bench_start, 'journal': bench_journal,
            'hsm': bench_hsm}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer runs (a smoke test of the bench)')
    ap.add_argument('--json', help='also write every figure as JSON to this file')
    ap.add_argument('--traces', action='store_true',
                    help='apdus: print the command APDUs of every counted operation')
    ap.add_argument('--one-cpu', action='store_true',
                    help='run everything (pcscd, simulators, daemon, clients) on CPU 0: on a '
                         'small VM this takes the cost of waking a thread on another vCPU out '
                         'of both sides of every comparison')
    ap.add_argument('sections', nargs='*', metavar='SECTION',
                    help=f'run only these ({", ".join(SECTIONS)}); default all')
    a = ap.parse_args()
    for name in a.sections:
        if name not in SECTIONS:
            ap.error(f'unknown section {name} (sections: {", ".join(SECTIONS)})')
    missing = harness.missing_requirements()
    for path in (bench_binary(), sscardd.daemon_binary()):
        if not os.path.exists(path):
            missing.append(path)
    if missing:
        sys.exit('bench/run.py: missing ' + ', '.join(missing) + ' (build first: scripts/bench.sh)')
    global TRACES
    TRACES = a.traces
    if a.one_cpu:
        os.sched_setaffinity(0, {0})   # every process started from here inherits it
    RESULTS['machine'] = machine()
    m = RESULTS['machine']
    m['cpus_used'] = sorted(os.sched_getaffinity(0))
    say(f'machine {m["cpu"]}, {m["cores"]} cores, {m["memory_gib"]} GiB, {m["os"]}, kernel '
        f'{m["kernel"]}, pcscd {m["pcscd"]}, vsmartcard-vpcd {m["vsmartcard_vpcd"]}; '
        f'bench on CPU(s) {",".join(map(str, m["cpus_used"]))}')
    start = time.monotonic()
    failed = []
    for name in a.sections or list(SECTIONS):
        try:
            SECTIONS[name](a.quick)
        except Exception as e:     # a measurement that failed: say so, go on with the others
            failed.append(name)
            say(f'FAILED  section {name}: {type(e).__name__}: {e}')
    say(f'bench done in {time.monotonic() - start:.0f} s' +
        (f'; failed sections: {", ".join(failed)}' if failed else ''))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(RESULTS, f, indent=1, ensure_ascii=False)
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
