"""Shared helpers of the peer benchmark scripts (bench/peers_ipp.py,
bench/peers_dask.py), run by bench/run.lua with /usr/bin/python3.

Protocol: the driver runs one script per (repetition, phase):

    python3 bench/peers_X.py --phase N --counts exec_rt=200,apply_rt=200,...

The script starts a cluster of N engines/workers, runs every workload whose
count is > 0, stops the cluster and ends every process it started, and
prints one JSON object a line on stdout:

    {"kind": "info", "system": ..., "version": ...}
    {"kind": "samples", "w": WORKLOAD, "v": [sample, ...]}
    {"kind": "error", "w": WORKLOAD, "message": ...}
    {"kind": "done"}

Samples are in the units the driver uses: seconds ("s"), bytes per second
(push/pull of strings), tasks per second, bytes (RSS).
"""
import argparse
import json
import os
import signal
import sys
import time
import traceback

now = time.perf_counter

MB = 10**6
SIZES = {"1MB": 1 * MB, "10MB": 10 * MB, "100MB": 100 * MB}
NUMBERS = 10**6


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--phase", type=int, required=True, help="engines to start")
    p.add_argument("--counts", default="", help="WORKLOAD=N,... samples to take")
    p.add_argument("--workdir", help="directory to work in (Dask writes there)")
    a = p.parse_args()
    if a.workdir:
        os.chdir(a.workdir)
    counts = {}
    for item in a.counts.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            counts[k] = int(v)
    a.counts = counts
    return a


def on_term():
    """SIGTERM (the driver ending us, or its time limit) and SIGINT unwind
    like an exception, so that the `finally` blocks stop the clusters."""
    def handler(signum, frame):
        # once: a second signal must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def rss(pid):
    """VmRSS of pid in bytes, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def pss(pid):
    """Proportional set size of pid in bytes (shared pages divided among
    the processes sharing them), or None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def children(pid):
    """Direct children of pid (from /proc/*/stat)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        # the command may hold spaces and parentheses: ppid follows the last ')'
        fields = s[s.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(d))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid):
    """Every process under pid, except multiprocessing's resource tracker,
    which stays until its parent (this script) exits and then exits too."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            if "multiprocessing.resource_tracker" in cmdline(c):
                continue
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        if s[s.rfind(")") + 2:].split()[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
    except OSError:
        return False
    return True


def end_processes(pids, grace=5.0):
    """Make sure every pid in `pids` is gone: give them `grace` seconds to
    finish exiting, then TERM, then KILL. Returns the pids that had to be
    signalled (they outlived the cluster's own stop)."""
    def wait(ps, secs):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline and any(alive(p) for p in ps):
            time.sleep(0.05)
        return [p for p in ps if alive(p)]

    left = wait([p for p in pids if p], grace)
    for p in left:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    for p in wait(left, 3.0):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return left


class Runner:
    """Runs workloads by name when the driver asked for them, emitting their
    samples or their error (a failing workload does not stop the others)."""

    def __init__(self, counts):
        self.counts = counts

    def wants(self, name):
        return self.counts.get(name, 0) > 0

    def run(self, name, fn):
        n = self.counts.get(name, 0)
        if n <= 0:
            return
        try:
            samples = fn(n)
        except Exception as e:  # noqa: BLE001 -- reported to the driver
            log(traceback.format_exc())
            emit(kind="error", w=name, message=f"{type(e).__name__}: {e}"[:300])
            return
        emit(kind="samples", w=name, v=[float(x) for x in samples])


    def run_warm(self, name, fn, first=None):
        """Like run, with one more sample taken before the n: the first
        transfer of a size, on buffers no transfer has warmed yet. It is left
        out of name's samples and reported as `first` when that is wanted."""
        n = self.counts.get(name, 0)
        if n <= 0:
            return
        try:
            samples = fn(n + 1)
        except Exception as e:  # noqa: BLE001 -- reported to the driver
            log(traceback.format_exc())
            emit(kind="error", w=name, message=f"{type(e).__name__}: {e}"[:300])
            return
        if first and self.counts.get(first, 0) > 0:
            emit(kind="samples", w=first, v=[float(samples[0])])
        emit(kind="samples", w=name, v=[float(x) for x in samples[1:]])


def timed(n, op, warm=0):
    """Run op() warm times untimed, then n times timed: the seconds each."""
    for _ in range(warm):
        op()
    out = []
    for _ in range(n):
        t = now()
        op()
        out.append(now() - t)
    return out


def split(seq, k):
    """Contiguous, nearly equal parts (as plush's scatter makes them)."""
    n = len(seq)
    base, extra = divmod(n, k)
    parts, pos = [], 0
    for i in range(k):
        size = base + (1 if i < extra else 0)
        parts.append(seq[pos:pos + size])
        pos += size
    return parts

