"""keraslint verify survives whatever the user's program does: each case ends as an
`inconclusive` result with its reason, within --timeout plus a few seconds, with no process
left behind."""

import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "verify_corpus")
TIMEOUT = 20.0


def run(script: str, timeout: float = TIMEOUT, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    cmd = [sys.executable, "-m", "keraslint.verify", os.path.join(CORPUS, script), "--rule", "KL301",
           "--timeout", str(timeout), "--steps", "2", "--format", "json"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, env=env, cwd=ROOT)
    elapsed = time.monotonic() - t0
    report = json.loads(p.stdout)
    [r] = report["results"]
    assert r["verdict"] == "inconclusive"
    assert p.returncode == 0
    assert report["summary"] == {"confirmed": 0, "not_confirmed": 0, "inconclusive": 1}
    return r, elapsed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for a reaper is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_hang_times_out():
    r, elapsed = run("iso_hang.py", timeout=8)
    assert "timed out after 8 s" in r["detail"]
    assert elapsed < 8 + 8


@pytest.mark.slow
def test_segfault():
    r, _ = run("iso_segfault.py")
    assert "SIGSEGV" in r["detail"]


@pytest.mark.slow
def test_sys_exit_before_fit():
    r, _ = run("iso_sys_exit.py")
    assert "sys.exit(3)" in r["detail"]


@pytest.mark.slow
def test_os_exit_before_fit():
    r, _ = run("iso_os_exit.py")
    assert "exited with code 0" in r["detail"]


@pytest.mark.slow
def test_fork_is_killed_with_the_group(tmp_path):
    pidfile = tmp_path / "pid"
    r, elapsed = run("iso_fork.py", timeout=8, env_extra={"KERASLINT_TEST_PIDFILE": str(pidfile)})
    assert "timed out" in r["detail"]
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the forked process outlived the experiment"


@pytest.mark.slow
def test_flood_of_output_is_bounded():
    r, elapsed = run("iso_output.py", timeout=15)
    assert any(s in r["detail"] for s in ("timed out", "MB of output", "SIGXFSZ", "File too large"))
    assert elapsed < 15 + 8


@pytest.mark.slow
def test_memory_blowup():
    # filling 512 MB chunks is slow on a loaded machine: a longer limit, or it times out first
    r, _ = run("iso_memory.py", timeout=60.0, env_extra={"KERASLINT_VERIFY_MEMORY_MB": "5000"})
    assert "MemoryError" in r["detail"] or "memory" in r["detail"]
