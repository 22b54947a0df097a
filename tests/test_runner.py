"""Runner: identical output with 1 and N processes, with and without the cache, with and
without the token-gate shortcuts; the cache is keyed by content, version and config."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT

SITE = os.path.dirname(os.path.dirname(__import__("libcst").__file__))
KERAS_SRC = os.path.join(SITE, "keras", "src")


def run(*args, cwd=None, env=None):
    e = dict(os.environ)
    e.pop("KERASLINT_CACHE_DIR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "keraslint", "check", *args], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Fixtures plus a slice of real Keras code, copied so that paths are stable."""
    d = tmp_path_factory.mktemp("corpus")
    shutil.copytree(FIXTURES, d / "fixtures")
    for sub in ("layers/core", "layers/normalization", "optimizers", "trainers"):
        src = os.path.join(KERAS_SRC, sub)
        if os.path.isdir(src):
            shutil.copytree(src, d / "keras" / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return d


def test_one_vs_many_processes_and_cache(corpus, tmp_path):
    base = run(".", "--no-cache", "--format", "json", "--jobs", "1", cwd=corpus)
    assert base.returncode in (0, 1), base.stderr
    many = run(".", "--no-cache", "--format", "json", "--jobs", "2", cwd=corpus)
    assert many.stdout == base.stdout
    cache = tmp_path / "cache"
    cold = run(".", "--cache-dir", str(cache), "--format", "json", "--jobs", "2", cwd=corpus)
    assert cold.stdout == base.stdout
    entries = [f for _, _, fs in os.walk(cache) for f in fs if f.endswith(".json")]
    assert entries, "the cache was not written"
    warm = run(".", "--cache-dir", str(cache), "--format", "json", cwd=corpus)
    assert warm.stdout == base.stdout
    assert (cache / ".gitignore").read_text().strip().endswith("*")


def test_shortcuts_change_nothing_on_corpus(corpus):
    a = run(".", "--no-cache", "--format", "json", cwd=corpus)
    b = run(".", "--no-cache", "--format", "json", "--no-shortcuts", cwd=corpus)
    assert a.stdout == b.stdout


def test_cache_env_var_and_default_location(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.keraslint]\n")
    (tmp_path / "m.py").write_text("import numpy as np\nimport keras\nclass L(keras.layers.Layer):\n"
                                   "    def call(self, x):\n        return np.sin(x)\n")
    r = run("m.py", cwd=tmp_path)
    assert r.returncode == 1
    assert (tmp_path / ".keraslint_cache").is_dir()
    envdir = tmp_path / "envcache"
    r2 = run("m.py", cwd=tmp_path, env={"KERASLINT_CACHE_DIR": str(envdir)})
    assert r2.stdout == r.stdout and envdir.is_dir()


def test_cache_invalidated_by_content_and_config(tmp_path):
    cache = tmp_path / "c"
    f = tmp_path / "m.py"
    hazard = ("import numpy as np\nimport keras\nclass L(keras.layers.Layer):\n"
              "    def call(self, x):\n        return np.sin(x)\n")
    f.write_text(hazard)
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 1
    f.write_text(hazard.replace("np.sin(x)", "keras.ops.sin(x)"))
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 0
    f.write_text(hazard)
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 1
    (tmp_path / "pyproject.toml").write_text("[tool.keraslint]\nseverity = { KL301 = 'info' }\n")
    r = run("m.py", "--cache-dir", str(cache), "--format", "json", cwd=tmp_path)
    assert json.loads(r.stdout)[0]["severity"] == "info"


def test_corrupt_cache_entries_are_ignored(tmp_path):
    cache = tmp_path / "c"
    f = tmp_path / "m.py"
    f.write_text("import numpy as np\nimport keras\nclass L(keras.layers.Layer):\n"
                 "    def call(self, x):\n        return np.sin(x)\n")
    first = run("m.py", "--cache-dir", str(cache), "--format", "json", cwd=tmp_path)
    for d, _, files in os.walk(cache):
        for name in files:
            if name.endswith(".json"):
                p = os.path.join(d, name)
                with open(p, "r+") as fh:
                    content = fh.read()
                    fh.seek(0)
                    fh.truncate()
                    fh.write(content[: len(content) // 2])
    again = run("m.py", "--cache-dir", str(cache), "--format", "json", cwd=tmp_path)
    assert again.stdout == first.stdout and again.returncode == 1


def test_manifest_trusts_no_stat_that_a_write_could_keep(tmp_path):
    """The warm path takes a file's hash from the manifest only while size, mtime, ctime
    and inode all hold: an edit of the same size with its mtime put back is still seen
    (the ctime moves), and a damaged manifest is ignored."""
    import time

    cache = tmp_path / "c"
    f = tmp_path / "m.py"
    bad = ("import numpy as np\nimport keras\nclass L(keras.layers.Layer):\n"
           "    def call(self, x):\n        return np.sin(x)\n")
    f.write_text(bad)
    old = time.time() - 60
    os.utime(f, (old, old))
    time.sleep(2.1)  # the ctime cannot be dated back: a file changed in the last 2 s is not kept
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 1
    assert (cache / __import__("keraslint").__version__ / "manifest.marshal").exists()
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 1  # from the manifest
    good = bad.replace("np.sin(x)", "np.sin(1)")
    assert len(good) == len(bad)
    time.sleep(0.05)
    f.write_text(good)
    os.utime(f, (old, old))  # same size, same mtime: only the ctime tells
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 0
    (cache / __import__("keraslint").__version__ / "manifest.marshal").write_bytes(b"\x00\x01")
    assert run("m.py", "--cache-dir", str(cache), cwd=tmp_path).returncode == 0
