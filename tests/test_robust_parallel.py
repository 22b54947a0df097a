"""Parallel runs and the cache under stress: a worker process that dies gives internal-error
findings for its file and exit 2 naming it, never a hang; corrupt or truncated cache
entries are ignored and rebuilt; concurrent runs sharing one cache agree."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest

HAZARD = (
    "import numpy as np\nimport keras\n\n\nclass L(keras.layers.Layer):\n"
    "    def call(self, x):\n        return np.exp(x)\n"
)

DRIVER = textwrap.dedent(
    """\
    import os, sys
    import keraslint.runner as r
    orig = r._check_one
    def crashing(task, config, options):
        if os.path.basename(task.path) == "crash.py":
            os._exit(7)  # the worker dies: no exception, no result
        return orig(task, config, options)
    r._check_one = crashing
    from keraslint.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def env():
    e = dict(os.environ)
    e.pop("KERASLINT_CACHE_DIR", None)
    return e


@pytest.fixture
def many(tmp_path):
    for i in range(24):
        (tmp_path / f"m{i:02d}.py").write_text(f"# file {i}\n" + HAZARD)  # distinct cache keys
    (tmp_path / "crash.py").write_text(HAZARD)
    return tmp_path


def test_worker_crash_is_internal_error_exit_2_no_hang(many):
    r = subprocess.run([sys.executable, "-c", DRIVER, "check", "--no-cache", "--format", "json", "--jobs", "2",
                        str(many)], capture_output=True, text=True, env=env(), timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    found = json.loads(r.stdout)
    internal = [f for f in found if f["code"] == "KL000" and "internal error" in f["message"]]
    assert [os.path.basename(f["path"]) for f in internal] == ["crash.py"], internal
    assert "crash.py" in r.stderr
    # every other file still gets its own finding, not an internal error
    ok = {os.path.basename(f["path"]) for f in found if f["code"] == "KL301"}
    assert ok == {f"m{i:02d}.py" for i in range(24)}


def test_worker_crash_inline_path_is_not_reached_with_jobs_1(many):
    """With --jobs 1 the check runs in the CLI process itself (no pool): documented here so
    that a change to that trade-off is deliberate."""
    r = subprocess.run([sys.executable, "-c", DRIVER, "check", "--no-cache", "--jobs", "1", str(many)],
                       capture_output=True, text=True, env=env(), timeout=120)
    assert r.returncode == 7


# -- cache -------------------------------------------------------------------------------

def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "keraslint", "check", *args], capture_output=True, text=True,
                          cwd=cwd, env=env(), timeout=300)


def _entries(cache):
    return sorted(p for p in glob.glob(os.path.join(cache, "**", "*.json"), recursive=True))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong-shape", "wrong-fields", "binary",
                                    "directory"])
def test_damaged_cache_entries_are_ignored_and_rebuilt(many, tmp_path_factory, damage):
    cache = str(tmp_path_factory.mktemp("cache"))
    first = run("--format", "json", "--cache-dir", cache, "-j", "1", ".", cwd=many)
    assert first.returncode == 1
    entries = _entries(cache)
    assert len(entries) == 25
    for p in entries:
        data = open(p, "rb").read()
        if damage == "directory":
            os.unlink(p)
            os.mkdir(p)
            continue
        new = {
            "truncate": data[: len(data) // 2],
            "garbage": b"{not json",
            "empty": b"",
            "wrong-shape": b'{"code": "KL301"}',
            "wrong-fields": b'[{"code": 1, "line": "x"}]',
            "binary": os.urandom(64),
        }[damage]
        with open(p, "wb") as fh:
            fh.write(new)
    second = run("--format", "json", "--cache-dir", cache, "-j", "1", ".", cwd=many)
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    if damage != "directory":
        third = run("--format", "json", "--cache-dir", cache, "-j", "1", ".", cwd=many)
        assert json.loads(third.stdout) == json.loads(first.stdout)
        for p in _entries(cache):  # rebuilt: valid again
            assert isinstance(json.load(open(p)), list)


def test_unwritable_cache_dir_does_not_stop_the_run(many, tmp_path):
    blocker = tmp_path / "cachefile"
    blocker.write_text("a file where the cache folder should be")
    r = run("--format", "json", "--cache-dir", str(blocker), ".", cwd=many)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(json.loads(r.stdout)) == 25


def test_concurrent_runs_sharing_one_cache_agree(many, tmp_path):
    cache = str(tmp_path / "shared-cache")
    args = [sys.executable, "-m", "keraslint", "check", "--format", "json", "--cache-dir", cache, "-j", "1", "."]
    procs = [subprocess.Popen(args, cwd=many, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [1, 1, 1], [e for _, e in outs]
    results = [json.loads(o) for o, _ in outs]
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 25
    assert not [p for p in glob.glob(os.path.join(cache, "**", ".tmp-*"), recursive=True)]
    warm = run("--format", "json", "--cache-dir", cache, "-j", "1", ".", cwd=many)
    assert json.loads(warm.stdout) == results[0]
