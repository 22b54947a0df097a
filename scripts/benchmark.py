#!/usr/bin/env python3
"""Benchmark keraslint against libcst's parse-only speed on the same files, in the same run.

    python scripts/benchmark.py                 # fetches keras==3.15.1 + keras-hub==0.32.0
    python scripts/benchmark.py path/to/tree    # any folder

Prints files, lines, the libcst parse-only baseline (same number of processes), cold
``keraslint check --no-cache`` and warm (cached) wall time, lines/s, the cold/parse ratio,
the one-file wall time (the pre-commit case) and the peak memory (PSS) of the process tree.
Warm and one-file times are medians of five runs; the 1-minute load average at the start
is printed too (on a shared machine every number moves with it).
"""

from __future__ import annotations

import argparse
import glob
import resource
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WHEELS = {"keras": ("keras==3.15.1", "keras/src"), "keras_hub": ("keras-hub==0.32.0", "keras_hub/src")}


def fetch_tree(dest: str) -> str:
    """Download the two wheels with pip (no dependencies) and unpack their ``src`` trees."""
    tree = os.path.join(dest, "tree")
    if os.path.isdir(tree) and glob.glob(os.path.join(tree, "*", "src")):
        return tree
    wheels = os.path.join(dest, "wheels")
    os.makedirs(wheels, exist_ok=True)
    for spec, _ in WHEELS.values():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", wheels, spec], check=True)
    for whl in glob.glob(os.path.join(wheels, "*.whl")):
        with zipfile.ZipFile(whl) as z:
            for name in z.namelist():
                if any(name.startswith(sub + "/") for _, sub in WHEELS.values()) and name.endswith(".py"):
                    z.extract(name, tree)
    return tree


def py_files(tree: str) -> list:
    out = []
    for d, dirs, files in os.walk(tree):
        dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x != "__pycache__")
        out.extend(os.path.join(d, f) for f in sorted(files) if f.endswith(".py"))
    return out


def _parse_chunk(paths: list) -> int:
    import libcst

    n = 0
    for p in paths:
        with open(p, "rb") as fh:
            data = fh.read()
        try:
            libcst.parse_module(data)
        except Exception:  # noqa: BLE001
            pass
        n += 1
    return n


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_baseline(files: list, jobs: int) -> float:
    """Wall seconds for libcst to parse every file, on ``jobs`` processes."""
    import concurrent.futures as cf
    import multiprocessing as mp

    import libcst  # noqa: F401 - imported before forking, like keraslint does

    from keraslint.runner import plan_chunks  # the same scheduling keraslint gets

    chunks = [[files[i] for i in c] for c in plan_chunks([os.path.getsize(f) for f in files], jobs)]
    t = time.perf_counter()
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
        sum(pool.map(_parse_chunk, chunks))
    return time.perf_counter() - t


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (forked workers share the parent's imports)
    are divided among the processes sharing them, so the sum over a tree is not inflated.
    Falls back to RSS where smaps_rollup is missing."""
    for name, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(name) as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            continue
    return 0


class PeakRSS:
    """Samples the summed memory (PSS) of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _tree(self) -> list:
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            p = frontier.pop()
            try:
                with open(f"/proc/{p}/task/{p}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except OSError:
                kids = []
            pids.extend(kids)
            frontier.extend(kids)
        return pids

    def _run(self) -> None:
        while not self._stop:
            total = 0
            for p in self._tree():
                total += _pss(p)
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop = True
        self.t.join()
        return self.peak


def run_check(args: list, cwd: str, env: dict, memory: bool = False) -> tuple:
    """Wall seconds (and, with ``memory``, peak PSS in a run of its own: sampling
    /proc/*/smaps_rollup steals CPU from the workers on a 2-core machine)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "keraslint", "check", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mon = PeakRSS(proc.pid) if memory else None
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    peak = mon.stop() if mon is not None else 0
    return wall, peak, proc.returncode, out, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", nargs="?", help="folder to check (default: fetch keras + keras-hub sources)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", default=os.path.join(ROOT, "bench"), help="where to unpack the fetched tree")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    args = ap.parse_args()
    tree = os.path.abspath(args.tree) if args.tree else fetch_tree(args.work)
    files = py_files(tree)
    lines = 0
    for f in files:
        with open(f, "rb") as fh:
            lines += fh.read().count(b"\n")
    load0 = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    cache = tempfile.mkdtemp(prefix="keraslint-bench-cache-")
    jobs = ["--jobs", str(args.jobs)]
    try:
        c0 = children_cpu()
        parse_s = parse_baseline(files, args.jobs)
        c1 = children_cpu()
        cold_s, _, rc, out, err = run_check([tree, "--no-cache", "--format", "json", *jobs], tree, env)
        c2 = children_cpu()
        parse_cpu, cold_cpu = c1 - c0, c2 - c1
        _, cold_peak, *_ = run_check([tree, "--no-cache", "--format", "json", *jobs], tree, env, memory=True)
        if rc not in (0, 1):
            print(err.decode(errors="replace"), file=sys.stderr)
            return 2
        findings = json.loads(out)
        run_check([tree, "--cache-dir", cache, "--format", "json", *jobs], tree, env)  # fill the cache
        warm_times = []
        for _ in range(5):  # the median of five: one run is at the mercy of the machine's load
            w, _, _, out2, _ = run_check([tree, "--cache-dir", cache, "--format", "json", *jobs], tree, env)
            warm_times.append(w)
        warm_s = statistics.median(warm_times)
        _, warm_peak, *_ = run_check([tree, "--cache-dir", cache, "--format", "json", *jobs], tree, env, memory=True)
        assert json.loads(out2) == findings, "warm run differs from cold run"
        by_size = sorted(files, key=os.path.getsize)
        one = by_size[len(by_size) // 2] if files else None  # a typical file (median size)
        big = by_size[-1] if files else None
        one_times = [run_check([one, "--no-cache"], tree, env)[0] for _ in range(5)]
        big_s = run_check([big, "--no-cache"], tree, env)[0]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    by_code: dict = {}
    for f in findings:
        by_code[f["code"]] = by_code.get(f["code"], 0) + 1
    table = {
        "load_avg_1m": round(load0, 2),
        "files": len(files),
        "lines": lines,
        "jobs": args.jobs,
        "libcst_parse_only_s": round(parse_s, 2),
        "parse_lines_per_s": round(lines / parse_s),
        "cold_s": round(cold_s, 2),
        "cold_lines_per_s": round(lines / cold_s),
        "cold_over_parse": round(cold_s / parse_s, 2),
        "parse_cpu_s": round(parse_cpu, 2),
        "cold_cpu_s": round(cold_cpu, 2),
        "cold_over_parse_cpu": round(cold_cpu / parse_cpu, 2),
        "warm_s": round(warm_s, 3),
        "one_file_s": round(statistics.median(one_times), 3),
        "one_file_lines": open(one, "rb").read().count(b"\n") if one else 0,
        "largest_file_s": round(big_s, 3),
        "largest_file_lines": open(big, "rb").read().count(b"\n") if big else 0,
        "peak_pss_mb_cold": round(cold_peak / 2**20),
        "peak_pss_mb_warm": round(warm_peak / 2**20),
        "findings": len(findings),
        "findings_by_code": dict(sorted(by_code.items())),
    }
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        w = max(len(k) for k in table)
        for k, v in table.items():
            print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
