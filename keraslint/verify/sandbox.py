"""Run one verifier child process under limits (standard library only).

The child is ``python -m keraslint.verify.child SPEC.json``. It gets its own session
(process group) so that a timeout kills it together with anything it forked, an address-space
cap (``RLIMIT_AS``) and a file-size cap (``RLIMIT_FSIZE``) set before it imports anything,
and its stdout/stderr go to files of which only a bounded tail is ever read back. Whatever the
user's code does (hang, ``sys.exit``, ``os._exit``, segfault, fork, megabytes of output) the
call returns within ``timeout`` plus a second or two, with a one-line reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

MEMORY_LIMIT_MB = int(os.environ.get("KERASLINT_VERIFY_MEMORY_MB", "8000"))
FILE_LIMIT_MB = 256
TAIL_BYTES = 4000


@dataclass
class ChildResult:
    ok: bool
    data: dict = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0
    stderr_tail: str = ""


def child_env() -> dict:
    env = dict(os.environ)
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "KERAS_BACKEND": env.get("KERAS_BACKEND", "tensorflow"),
        "PYTHONHASHSEED": env.get("PYTHONHASHSEED", "0"),
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
    })
    return env


def _tail(path: str, limit: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def run_child(spec: dict, timeout: float, workdir: Optional[str] = None,
              tick: Optional[Callable[[float], None]] = None) -> ChildResult:
    """Run one child with ``spec``; the child writes its JSON answer to ``spec['out']``."""
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="keraslint-verify-")
    fd, spec_path = tempfile.mkstemp(suffix=".json", dir=workdir)
    out_path = spec_path[:-5] + ".out.json"
    log_out, log_err = spec_path[:-5] + ".stdout", spec_path[:-5] + ".stderr"
    spec = dict(spec, out=out_path, memory_mb=MEMORY_LIMIT_MB, file_mb=FILE_LIMIT_MB)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    start = time.monotonic()
    with open(log_out, "wb") as fo, open(log_err, "wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "keraslint.verify.child", spec_path],
                                stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=dict(child_env(), **(spec.get("env") or {})),
                                start_new_session=True, close_fds=True)
    pgid = proc.pid  # start_new_session: the child leads its own group
    reason = ""
    next_tick = start + 10.0
    try:
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now - start > timeout:
                reason = f"timed out after {timeout:.3g} s"
                break
            if tick is not None and now >= next_tick:
                tick(now - start)
                next_tick = now + 10.0
            for p in (log_out, log_err):
                try:
                    if os.path.getsize(p) > FILE_LIMIT_MB * 2**20:
                        reason = f"wrote more than {FILE_LIMIT_MB} MB of output"
                except OSError:
                    pass
            if reason:
                break
    finally:
        _kill_group(pgid)  # the child and anything it forked
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
    seconds = time.monotonic() - start
    err_tail = _tail(log_err)
    data: dict = {}
    if not reason:
        try:
            with open(out_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        if not data:
            rc = proc.returncode
            if rc is not None and rc < 0:
                sig = _signal_name(-rc)
                reason = f"the program was killed by {sig}" + (
                    " (crashed in native code)" if sig in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGABRT") else
                    " (memory or file-size limit)" if sig in ("SIGKILL", "SIGXFSZ") else "")
            else:
                reason = f"the program exited with code {rc} before handing over its model (os._exit?)"
            last = _last_line(err_tail)
            if last:
                reason += f"; last stderr line: {last}"
    if own_dir:
        _cleanup(workdir)
    if reason:
        return ChildResult(False, {}, reason, seconds, err_tail)
    if data.get("error"):
        return ChildResult(False, data, data["error"], seconds, err_tail)
    return ChildResult(True, data, "", seconds, err_tail)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _cleanup(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
