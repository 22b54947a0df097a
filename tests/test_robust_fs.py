"""File-system trouble and bad command lines: each problem gives one stderr line or one
KL000 finding, the run goes on, and the exit code follows the contract (0 clean, 1
findings, 2 usage/config/internal error). Tests run as root here, so "unreadable" is
simulated by making the OS calls fail."""

import builtins
import errno
import json
import os
import subprocess
import sys

import pytest

from keraslint import cli

HAZARD = (
    "import numpy as np\nimport keras\n\n\nclass L(keras.layers.Layer):\n"
    "    def call(self, x):\n        return np.exp(x)\n"
)
CLEAN = "import keras\n\nx = keras.ops.ones((2, 2))\n"


def run(*args, cwd=None):
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "keraslint", "check", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def main(capsys, *args):
    rc = cli.main(["check", "--no-cache", "-j", "1", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def proj(tmp_path, monkeypatch):
    (tmp_path / "hazard.py").write_text(HAZARD)
    (tmp_path / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KERASLINT_CACHE_DIR", raising=False)
    return tmp_path


def codes_by_file(out):
    return sorted((os.path.basename(f["path"]), f["code"]) for f in json.loads(out))


def _deny(monkeypatch, name, err=errno.EACCES):
    real_open = builtins.open

    def fake_open(file, *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.basename(os.fsdecode(file)) == name:
            raise PermissionError(err, os.strerror(err), os.fsdecode(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)


# -- unreadable files and folders ---------------------------------------------------------

def test_unreadable_file_is_kl000_and_the_run_goes_on(proj, capsys, monkeypatch):
    (proj / "secret.py").write_text(HAZARD)
    _deny(monkeypatch, "secret.py")
    rc, out, err = main(capsys, "--format", "json", ".")
    assert rc == 1 and err == ""
    assert codes_by_file(out) == [("hazard.py", "KL301"), ("secret.py", "KL000")]
    f = [f for f in json.loads(out) if f["code"] == "KL000"][0]
    assert "cannot read file: Permission denied" in f["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chmod 000 denies only non-root users; here it is real")
def test_chmod_000_is_not_enough_for_root(proj, capsys):
    """Documents why the other tests simulate EACCES: root reads a mode-000 file."""
    p = proj / "secret.py"
    p.write_text(HAZARD)
    p.chmod(0)
    rc, out, err = main(capsys, "--format", "json", "secret.py")
    assert codes_by_file(out) == [("secret.py", "KL301")]


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as root: chmod 000 does not deny reading")
def test_chmod_000_file_really_unreadable(proj, capsys):  # pragma: no cover - non-root only
    p = proj / "secret.py"
    p.write_text(HAZARD)
    p.chmod(0)
    try:
        rc, out, err = main(capsys, "--format", "json", ".")
    finally:
        p.chmod(0o644)
    assert rc == 1 and ("secret.py", "KL000") in codes_by_file(out)


def test_unreadable_folder_is_one_stderr_line_and_the_run_goes_on(proj, capsys, monkeypatch):
    sub = proj / "locked"
    sub.mkdir()
    (sub / "inner.py").write_text(HAZARD)
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if os.path.basename(os.fsdecode(path)) == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    rc, out, err = main(capsys, "--format", "json", ".")
    lines = err.splitlines()
    assert len(lines) == 1 and "locked" in lines[0] and "cannot read folder: Permission denied" in lines[0], err
    assert "Traceback" not in err
    assert codes_by_file(out) == [("hazard.py", "KL301")]
    assert rc == 2  # the rest was checked and reported, but a folder asked for was not


def test_file_that_vanishes_between_discovery_and_reading(proj, capsys, monkeypatch):
    from keraslint import discovery

    (proj / "gone.py").write_text(HAZARD)
    real = discovery.discover

    def discover_then_delete(*a, **k):
        files = real(*a, **k)
        os.unlink(proj / "gone.py")
        return files

    monkeypatch.setattr(discovery, "discover", discover_then_delete)
    rc, out, err = main(capsys, "--format", "json", ".")
    assert rc == 1 and err == ""
    assert codes_by_file(out) == [("gone.py", "KL000"), ("hazard.py", "KL301")]
    assert "No such file" in [f for f in json.loads(out) if f["code"] == "KL000"][0]["message"]


def test_read_error_mid_file_is_kl000(proj, capsys, monkeypatch):
    """EIO while reading (a dying disk, a FUSE mount): the file is a KL000, others go on."""
    (proj / "eio.py").write_text(HAZARD)
    _deny(monkeypatch, "eio.py", errno.EIO)
    rc, out, err = main(capsys, "--format", "json", ".")
    assert rc == 1 and ("eio.py", "KL000") in codes_by_file(out)
    assert ("hazard.py", "KL301") in codes_by_file(out)


# -- links, odd names ----------------------------------------------------------------------

def test_symlink_loops_dangling_links_and_py_folders(proj):
    os.symlink("loop_b.py", proj / "loop_a.py")
    os.symlink("loop_a.py", proj / "loop_b.py")
    os.symlink("nowhere.py", proj / "dangling.py")
    os.symlink("..", proj / "up")  # a folder loop: folder links are not followed
    os.symlink(".", proj / "self")
    (proj / "pkg.py").mkdir()
    (proj / "pkg.py" / "inner.py").write_text(HAZARD)
    (proj / "nb.ipynb").mkdir()
    r = run("--no-cache", "--format", "json", ".", cwd=proj)
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""
    got = codes_by_file(r.stdout)
    assert ("hazard.py", "KL301") in got and ("inner.py", "KL301") in got
    assert ("loop_a.py", "KL000") in got and ("loop_b.py", "KL000") in got and ("dangling.py", "KL000") in got
    assert not any(name in ("pkg.py", "nb.ipynb") for name, _ in got)
    assert len([g for g in got if g[0] == "hazard.py"]) == 1  # no double visit through `self`/`up`


def test_explicit_py_folder_is_walked_like_a_folder(proj):
    (proj / "pkg.py").mkdir()
    (proj / "pkg.py" / "inner.py").write_text(HAZARD)
    r = run("--no-cache", "--format", "json", "pkg.py", "hazard.py", cwd=proj)
    assert r.returncode == 1 and r.stderr == ""
    assert codes_by_file(r.stdout) == [("hazard.py", "KL301"), ("inner.py", "KL301")]


def test_non_utf8_file_name(proj):
    name = b"caf\xe9_\xff.py"
    with open(os.path.join(os.fsencode(proj), name), "wb") as fh:
        fh.write(HAZARD.encode())
    for fmt in ("json", "text", "github", "sarif"):
        r = subprocess.run([sys.executable, "-m", "keraslint", "check", "--no-cache", "--format", fmt, "."],
                           capture_output=True, cwd=proj, timeout=120)
        assert r.returncode == 1, (fmt, r.stderr)
        assert b"Traceback" not in r.stderr and r.stderr == b"", r.stderr
        if fmt in ("json", "sarif"):
            json.loads(r.stdout)
    r = run("--no-cache", "--format", "json", ".", cwd=proj)
    assert sum(1 for f in json.loads(r.stdout) if f["code"] == "KL301") == 2


def test_fifo_is_not_read(proj):
    """A named pipe named like a source file blocked the run forever (the reader waits
    for a writer); now it is a KL000 "not a regular file"."""
    os.mkfifo(proj / "pipe.py")
    r = run("--no-cache", "--format", "json", ".", cwd=proj)
    assert r.returncode == 1 and r.stderr == ""
    assert codes_by_file(r.stdout) == [("hazard.py", "KL301"), ("pipe.py", "KL000")]
    r = run("--no-cache", "pipe.py", cwd=proj)  # named explicitly
    assert r.returncode == 1 and "not a regular file" in r.stdout


# -- bad command lines: one line, exit 2 -----------------------------------------------------

def one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("keraslint: error: ")
    assert r.stdout == ""
    return lines[0]


@pytest.mark.parametrize("args,words", [
    (["missing.py"], ["missing.py", "no such file"]),
    (["hazard.py", "missing_dir/"], ["missing_dir"]),
    (["--select", "KL999", "."], ["KL999", "--select"]),
    (["--select", "KL3,XYZ", "."], ["XYZ"]),
    (["--ignore", "KL30X", "."], ["KL30X", "--ignore"]),
    (["--format", "xml", "."], ["xml", "--format"]),
    (["--format", "", "."], ["--format"]),
    (["--jobs", "0", "."], ["--jobs"]),
    (["--jobs", "two", "."], ["two"]),
    (["--config", "nope.toml", "."], ["nope.toml"]),
    (["--frobnicate"], ["--frobnicate"]),
])
def test_bad_command_lines(proj, args, words):
    line = one_line_error(run(*args, cwd=proj))
    for w in words:
        assert w in line, line


@pytest.mark.parametrize("table,words", [
    ('colour = "red"', ["colour"]),
    ('select = ["KL3"]\n[tool.keraslint.per-file-ignores]\n"tests/*" = ["KL9"]', ["KL9"]),
    ('select = 3', ["select"]),
    ('seed = "x"', ["seed"]),
    ('severity = { KL301 = "fatal" }', ["KL301"]),
    ('select = [', ["invalid TOML"]),
])
def test_bad_config_names_key_and_file(proj, table, words):
    (proj / "pyproject.toml").write_text(f"[tool.keraslint]\n{table}\n")
    line = one_line_error(run(".", cwd=proj))
    assert "pyproject.toml" in line
    for w in words:
        assert w in line, line


def test_unreadable_config_is_exit_2(proj, capsys, monkeypatch):
    """An unreadable pyproject.toml used to be skipped silently (checked with the
    defaults, ignoring the user's select/ignore); now it is a configuration error."""
    (proj / "pyproject.toml").write_text("[tool.keraslint]\nselect = [\"KL3\"]\n")
    _deny(monkeypatch, "pyproject.toml")
    rc, out, err = main(capsys, ".")
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and "pyproject.toml" in lines[0], err
