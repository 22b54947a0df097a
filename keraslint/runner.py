"""Run the engine over many files: content-hash cache, then a process pool for the misses.

The main process reads every file once (its bytes are both the cache key and the worker's
input), answers what it can from the cache, and sends the rest in chunks to worker
processes. Results come back in a deterministic order whatever the number of processes.
A worker that dies gives an internal-error finding for each of its files, never a hang.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import stat
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

from keraslint import __version__
from keraslint.rule import Finding, syntax_finding

INTERNAL_NAME = "internal-error"


@dataclass
class Options:
    select: Optional[list] = None
    ignore: Optional[list] = None
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False
    no_cache: bool = False
    cache_dir: Optional[str] = None
    jobs: Optional[int] = None
    gate: bool = True  # token gates and parse skipping (off only to prove they change nothing)


@dataclass
class Task:
    path: str
    codes: tuple
    data: Optional[bytes]
    key: Optional[str] = None
    syntax: Any = None  # engine.Verdict from the summaries' parse of these bytes, or None


@dataclass
class Outcome:
    path: str
    findings: list = field(default_factory=list)
    diff: Optional[str] = None
    fixes_applied: int = 0
    error: Optional[str] = None  # a line for stderr; makes the run exit 2


@dataclass
class RunResult:
    findings: list
    diffs: list
    errors: list
    fixes_applied: int = 0
    files_checked: int = 0
    cache_hits: int = 0


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------


def default_cache_dir(config) -> str:
    env = os.environ.get("KERASLINT_CACHE_DIR")
    if env:
        return env
    if config is not None and config.cache_dir:
        return config.cache_dir
    return os.path.join(config.root if config is not None else os.getcwd(), ".keraslint_cache")


class Cache:
    def __init__(self, directory: str) -> None:
        self.dir = os.path.join(directory, __version__)
        self.ok = True
        try:
            os.makedirs(self.dir, exist_ok=True)
            gi = os.path.join(directory, ".gitignore")
            if not os.path.exists(gi):
                _atomic_write_text(gi, "# Automatically created by keraslint.\n*\n")
            tag = os.path.join(directory, "CACHEDIR.TAG")
            if not os.path.exists(tag):
                _atomic_write_text(tag, "Signature: 8a477f597d28d172789f06886806bc55\n# keraslint cache\n")
        except OSError:
            self.ok = False

    def _file(self, key: str) -> str:
        return os.path.join(self.dir, key[:2], key + ".json")

    def get(self, key: str) -> Optional[list]:
        if not self.ok:
            return None
        try:
            with open(self._file(key), encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, list):
                return None
            return data
        except (OSError, ValueError):
            return None  # missing, truncated or corrupt: recompute

    def put(self, key: str, findings: list) -> None:
        if not self.ok:
            return
        payload = _payload(findings)
        path = self._file(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
        except OSError:
            pass


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _atomic_write_text(path: str, text: str) -> None:
    _atomic_write(path, text.encode("utf-8"))


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Manifest:
    """The last run's answer per file, in one file (``manifest.marshal``) so that a warm run
    opens one file, not one per checked file: ``path -> (size, mtime_ns, ctime_ns, inode,
    sha256 of the bytes, cache key, findings)``. The stat fields let a warm run take the sha
    without reading the file (as git does): any write or ``utime`` moves the ctime, and a
    file changed within two seconds of being read is not recorded (a coarse clock could
    hide a second change). The findings are used only under the same cache key, i.e. the
    same bytes, codes, config and project digest; anything else goes to the cache proper."""

    def __init__(self, directory: str) -> None:
        self.file = os.path.join(directory, "manifest.marshal")
        self.entries: dict = {}
        self.new: dict = {}
        try:
            import marshal

            with open(self.file, "rb") as fh:
                data = marshal.load(fh)
            if isinstance(data, dict):
                self.entries = data
        except Exception:  # noqa: BLE001 - missing, damaged, another Python
            self.entries = {}

    def sha_for(self, path: str, st: os.stat_result) -> Optional[str]:
        e = self.entries.get(os.path.abspath(path))
        if e is None or not isinstance(e, tuple) or len(e) != 7:
            return None
        if (e[0], e[1], e[2], e[3]) != (st.st_size, st.st_mtime_ns, st.st_ctime_ns, (st.st_dev, st.st_ino)):
            return None
        return e[4]

    def findings_for(self, path: str, key: str) -> Optional[list]:
        e = self.entries.get(os.path.abspath(path))
        if e is None or not isinstance(e, tuple) or len(e) != 7 or e[5] != key or not isinstance(e[6], list):
            return None
        return e[6]

    def record(self, path: str, st: Optional[os.stat_result], sha: str, key: str, payload: list, now_ns: int) -> None:
        if st is None or max(st.st_mtime_ns, st.st_ctime_ns) > now_ns - 2_000_000_000:
            return
        self.new[os.path.abspath(path)] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, (st.st_dev, st.st_ino),
                                           sha, key, payload)

    def save(self) -> None:
        if not self.new or all(self.entries.get(p) == e for p, e in self.new.items()):
            return
        try:
            import marshal

            merged = dict(self.entries)
            merged.update(self.new)
            _atomic_write(self.file, marshal.dumps(merged))
        except (OSError, ValueError):
            pass


def _payload(findings: list) -> list:
    return [{k: v for k, v in f.to_json().items() if k != "path"} for f in findings]


def cache_key(data: bytes, codes: tuple, config, gate: bool, project: str = "", *,
              data_sha: Optional[str] = None, fingerprint: Optional[str] = None) -> str:
    """``project``: the digest of the summaries of the project modules the file imports
    (keraslint/project.py), so that a change there re-checks the file. ``data_sha`` (the
    sha256 of ``data``, already computed) and ``fingerprint`` (the config's) save work."""
    h = hashlib.sha256()
    if project:
        h.update(b"project:" + project.encode() + b"\0")
    h.update(__version__.encode())
    h.update(b"\0")
    h.update(",".join(codes).encode())
    h.update(b"\0")
    if fingerprint is None:
        fingerprint = config.fingerprint() if config is not None else ""
    h.update(fingerprint.encode())
    h.update(b"\1" if gate else b"\0")
    h.update(b"\0")
    if data_sha is None:
        data_sha = hashlib.sha256(data).hexdigest()
    h.update(b"sha256:" + data_sha.encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Work in a worker process (or inline)
# ---------------------------------------------------------------------------

_WORKER_STATE: dict = {}


def _init_worker(config, options, pool: bool = False) -> None:
    _WORKER_STATE["config"] = config
    _WORKER_STATE["options"] = options
    # in a pool, a file that crashes libcst's native parser kills only a worker, and the
    # run re-checks that worker's files one by one in processes of their own: there the
    # cheap nesting screen replaces CPython's full pre-parse (engine.needs_cpython_guard)
    _WORKER_STATE["pool"] = pool
    if pool:
        # What the worker inherited (imports, the run's views and summaries) lives as long
        # as the worker: out of the collector's sight, so that the collection every 50
        # files scans only what the files left behind (measured: 36 ms a collection, 5%
        # of a cold run's CPU, before)
        gc.freeze()


def _internal(path: str, message: str) -> Finding:
    return syntax_finding(path, 1, 1, message, rule=INTERNAL_NAME)


def _work_chunk(tasks: list) -> list:
    return [_work(t) for t in tasks]


def _work(task: Task) -> Outcome:
    config = _WORKER_STATE["config"]
    options: Options = _WORKER_STATE["options"]
    # No cyclic garbage collection while a file is analyzed: building a libcst tree of a
    # large file triggers dozens of full collections that scan the tree being built
    # (measured: 10% of a cold run's CPU). Trees are freed by reference counting
    # (analyze(keep_tree=False) breaks the cycles rules leave); a collection every 50
    # files picks up anything else.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_one(task, config, options)
    except Exception as e:  # noqa: BLE001 - a rule bug must not stop the run
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
        msg = f"internal error: {type(e).__name__}: {e} (at {where})"
        return Outcome(task.path, [_internal(task.path, msg)], error=f"{task.path}: {msg}")
    finally:
        if enabled:
            gc.enable()
        n = _WORKER_STATE["done"] = _WORKER_STATE.get("done", 0) + 1
        if n % 50 == 0:
            gc.collect()


def _check_one(task: Task, config, options: Options) -> Outcome:
    from keraslint import engine
    from keraslint.registry import rules_by_code

    src = engine.read_source(task.path, data=task.data)
    if isinstance(src, Finding):
        return Outcome(task.path, [src])
    by_code = rules_by_code()
    classes = [by_code[c] for c in task.codes if c in by_code]
    severity = config.severity if config is not None else None
    if options.fix or options.diff:
        from keraslint import fixer

        res = fixer.fix_source(src, classes, config, unsafe=options.unsafe_fixes, severity=severity, gate=options.gate)
        out = Outcome(task.path, res.findings, fixes_applied=res.applied)
        if res.new_bytes is not None:
            if options.diff:
                out.diff = fixer.unified_diff(src, res.new_bytes)
            else:
                try:
                    fixer.write_atomic(task.path, res.new_bytes, expected=src.raw)
                except OSError as e:
                    out.error = f"{task.path}: cannot write fixed file: {e.strerror or e}; the file was left as it was"
                    out.fixes_applied = 0
                    out.findings = getattr(res, "original_findings", out.findings)  # the file as it is
        return out
    if task.syntax is not None:
        precheck = task.syntax
    else:
        precheck = engine.GUARD if _WORKER_STATE.get("pool") else engine.FULL
    analysis = engine.analyze(src, classes, config, gate=options.gate, severity=severity, keep_tree=False,
                              precheck=precheck)
    return Outcome(task.path, analysis.findings)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def run(files: list, config, options: Options, codes_for) -> RunResult:
    """``codes_for(path) -> tuple of enabled codes`` (select/ignore/per-file-ignores)."""
    writing = options.fix or options.diff
    cache = None if (options.no_cache or writing) else Cache(options.cache_dir or default_cache_dir(config))
    tasks: list = []
    outcomes: dict = {}
    hits = 0
    # Cross-module summaries (ast, cached by content hash beside the findings): each checked
    # file gets the view of the project modules it imports, before the workers fork.
    from keraslint import project as project_mod

    project = project_mod.for_run(config, cache.dir if cache is not None and cache.ok else None)
    fingerprint = config.fingerprint() if config is not None else ""
    manifest = Manifest(cache.dir) if cache is not None and cache.ok else None
    now_ns = time.time_ns()
    views: dict = {}
    read: list = []  # [path, codes, data | None (not read: the manifest knows its sha), sha, stat]
    for path in files:
        codes = codes_for(path)
        try:
            # A FIFO, socket or device named like a source file would block the read (or
            # never end): only regular files are read.
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) and not os.path.isdir(path):
                outcomes[path] = Outcome(path, [syntax_finding(path, 1, 1, "not a regular file (a pipe, socket or device)")])
                continue
            sha = manifest.sha_for(path, st) if manifest is not None else None
            if sha is None:
                with open(path, "rb") as fh:
                    data = fh.read()
                sha = hashlib.sha256(data).hexdigest()
            else:
                data = None
        except OSError as e:
            if os.path.isdir(path):
                msg = "is a directory, not a file"
            else:
                msg = f"cannot read file: {e.strerror or e}"
            outcomes[path] = Outcome(path, [syntax_finding(path, 1, 1, msg)])
            continue
        project.known_hash(path, sha)  # every checked file hashed once, read once
        read.append([path, codes, data, sha, st])
    # A warm run takes each file's digest from the project index when nothing it depends on
    # changed (no import is resolved); the views themselves are only needed by the files
    # that are analyzed again.
    quick: list = []
    keys: dict = {}
    for item in read:
        path, codes, data, sha, st = item
        digest = None
        if cache is not None:
            try:
                digest = project.quick_digest(path)
            except Exception:  # noqa: BLE001
                digest = None
        if digest is None:
            if data is None:
                data = item[2] = _read(path)
                if data is None:
                    outcomes[path] = Outcome(path, [syntax_finding(path, 1, 1, "cannot read file")])
                    continue
            try:
                view = project.view(path, data)
            except Exception:  # noqa: BLE001 - the summaries are a help: never a reason to fail a run
                view = None
            if view is not None:
                views[path] = view
            digest = view.digest() if view is not None else ""
        else:
            quick.append(item)
        key = None
        if cache is not None:
            key = keys[path] = cache_key(data, codes, config, options.gate, digest, data_sha=sha,
                                         fingerprint=fingerprint)
            cached = manifest.findings_for(path, key) if manifest is not None else None
            if cached is None:
                cached = cache.get(key)
            if cached is not None:
                try:
                    outcomes[path] = Outcome(path, [Finding.from_json({**d, "path": path}) for d in cached])
                    hits += 1
                    if manifest is not None:
                        manifest.record(path, st, sha, key, cached, now_ns)
                    continue
                except (KeyError, TypeError):
                    pass
        if data is None:
            data = item[2] = _read(path)
            if data is None:
                outcomes[path] = Outcome(path, [syntax_finding(path, 1, 1, "cannot read file")])
                continue
            if hashlib.sha256(data).hexdigest() != sha:
                key = None  # changed while this run looked at it: not cached under the old key
        tasks.append(Task(path, codes, data, key))
    if tasks and quick:
        # the files analyzed again see the same project as in a cold run: every file's view
        # (they share one name table)
        for item in quick:
            if item[2] is None:
                item[2] = _read(item[0])
            try:
                view = project.view(item[0], item[2])
            except Exception:  # noqa: BLE001
                view = None
            if view is not None:
                views[item[0]] = view
    stats = {item[0]: (item[4], item[3]) for item in read} if manifest is not None else {}
    del read, quick
    if cache is not None:
        project.save_index()
    if views and tasks:
        _summarize_modules(project, views, tasks, options)
    project_mod.set_views(views)

    for outcome, task in _execute(tasks, config, options):
        outcomes[task.path] = outcome
        if cache is not None and task.key is not None and outcome.error is None:
            cache.put(task.key, outcome.findings)
            if manifest is not None and task.path in stats:
                st, sha = stats[task.path]
                manifest.record(task.path, st, sha, task.key, _payload(outcome.findings), now_ns)
    project_mod.set_views({})  # the views belong to this run only
    if manifest is not None:
        manifest.save()

    findings, diffs, errors, applied = [], [], [], 0
    for path in files:
        o = outcomes.get(path)
        if o is None:
            continue
        findings.extend(o.findings)
        if o.diff:
            diffs.append(o.diff)
        if o.error:
            errors.append(o.error)
        applied += o.fixes_applied
    findings.sort(key=Finding.sort_key)
    return RunResult(findings, diffs, errors, applied, len(files), hits)


def _summarize_one(item: tuple) -> tuple:
    from keraslint import project as project_mod

    path, data = item
    try:
        return project_mod.summarize_for_check(path, data)
    except Exception:  # noqa: BLE001 - a summary is a help, never a reason to fail
        return None, None


def _summarize_chunk(items: list) -> list:
    gc.disable()  # as in _work: the ast trees are freed by reference counting
    try:
        return [_summarize_one(i) for i in items]
    finally:
        gc.enable()


def _summarize_modules(project, views: dict, tasks: list, options: Options) -> None:
    """Summarize, before the analysis, every project module a checked file's view needs and
    that no cache holds: in parallel, one ``ast`` parse each, which is also the syntax
    pre-check of the modules that are checked in this run (their Task carries the verdict,
    so the engine does not parse them with CPython again). The analysis workers fork after
    this, so they inherit the summaries; none is made twice."""
    store = project.store
    needed = set()
    for v in views.values():
        needed |= v.closure
    by_abs = {os.path.abspath(t.path): t for t in tasks}
    items, owners = [], []
    for f in sorted(needed):
        t = by_abs.get(f)
        data = t.data if t is not None else _read(f)  # read once: key, worker and store use it
        if data is None or store.known(f, data):
            continue
        items.append((f, data))
        owners.append(t)
    if not items:
        return
    results = _map_chunks(_summarize_chunk, items, options)
    for (f, data), t, (summ, verdict) in zip(items, owners, results):
        if verdict is not None or summ is not None:
            store.put(f, data, summ)
        if t is not None and verdict is not None:
            t.syntax = verdict


def _fork_context():
    """Workers forked from this process inherit the loaded rules and the run's views."""
    import multiprocessing as mp

    try:
        return mp.get_context("fork")
    except ValueError:  # pragma: no cover - no fork on this platform
        return mp.get_context("spawn")


def _map_chunks(fn, items: list, options: Options) -> list:
    """``fn`` over chunks of ``items`` (sizes balanced like the analysis), in processes when
    it pays; results in the order of ``items``."""
    jobs = min(options.jobs or os.cpu_count() or 1, max(1, len(items) // 8))
    if jobs <= 1:
        return fn(items)
    import concurrent.futures as cf

    chunks = plan_chunks([len(d) for _, d in items], jobs)
    out: list = [(None, None)] * len(items)
    try:
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=_fork_context()) as pool:
            futures = [pool.submit(fn, [items[i] for i in c]) for c in chunks]
            for fut, c in zip(futures, chunks):
                try:
                    for i, r in zip(c, fut.result()):
                        out[i] = r
                except Exception:  # noqa: BLE001 - a dead worker: those modules stay unsummarized
                    pass
    except Exception:  # noqa: BLE001
        pass
    return out


HUGE_BYTES = 256 * 1024  # one libcst tree of such a file takes ~200 MB or more


def plan_chunks(sizes: list, jobs: int) -> list:
    """Chunks of task indices for a pool of ``jobs`` processes. Largest first (so no
    worker is left alone with a big file at the end); the huge files form one chunk of
    their own, so two of their trees never sit in memory at once; the rest is cut into
    about 12 chunks per process by bytes, to balance and to amortize pickling."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    huge = [i for i in order if sizes[i] >= HUGE_BYTES]
    rest = [i for i in order if sizes[i] < HUGE_BYTES]
    chunks = [huge] if huge else []
    target = max(1, sum(sizes[i] for i in rest) // max(1, jobs * 12))
    cur, acc = [], 0
    for i in rest:
        cur.append(i)
        acc += sizes[i]
        if acc >= target:
            chunks.append(cur)
            cur, acc = [], 0
    if cur:
        chunks.append(cur)
    return chunks


def _execute(tasks: list, config, options: Options):
    if not tasks:
        return
    jobs = options.jobs or os.cpu_count() or 1
    if jobs <= 1 or len(tasks) < 4:
        _init_worker(config, options)
        gc.freeze()  # as in a pool worker (see _init_worker); undone after the run
        try:
            for t in tasks:
                yield _work(t), t
        finally:
            gc.unfreeze()
        return
    import concurrent.futures as cf

    # Load the rules before forking so that workers inherit them.
    from keraslint import engine  # noqa: F401
    from keraslint.registry import all_rules

    all_rules()
    ctx = _fork_context()
    jobs = min(jobs, len(tasks))
    # Chunks: small enough to balance, large enough to amortize pickling.
    chunks = [[tasks[i] for i in c] for c in plan_chunks([len(t.data or b"") for t in tasks], jobs)]
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(config, options, True)) as pool:
        futures = [pool.submit(_work_chunk, c) for c in chunks]
        broken: list = []
        for fut, chunk in zip(futures, chunks):
            try:
                results = fut.result()
            except Exception:  # noqa: BLE001 - BrokenProcessPool and friends
                broken.extend(chunk)
                continue
            for t, o in zip(chunk, results):
                yield o, t
    # A dying worker breaks the whole pool: every unfinished chunk fails, not only the file
    # that killed it. Retry those files one by one, each in a fresh process, so that only
    # the culprit gets the internal error.
    for t in broken:
        try:
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker,
                                        initargs=(config, options)) as solo:
                o = solo.submit(_work_chunk, [t]).result()[0]
        except Exception as e:  # noqa: BLE001
            msg = f"internal error: worker process died while checking this file ({type(e).__name__})"
            o = Outcome(t.path, [_internal(t.path, msg)], error=f"{t.path}: {msg}")
        yield o, t
