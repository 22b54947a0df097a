"""Hostile file contents never crash `check`: findings or one KL000, never a traceback,
never exit 2 for what a file holds; `--fix` output always re-parses.

A fixed budget runs here (a few hundred examples); `scripts/fuzz.py` runs the long
campaign with the same generators and property (`check_bytes`).
"""

import importlib.util
import json
import os
import random
import subprocess
import sys
import warnings

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("kl_fuzz", os.path.join(ROOT, "scripts", "fuzz.py"))
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")  # hypothesmith compiles what it draws

SEEDS = fuzz.fixture_texts()
FIXER = fuzz._fixer() is not None


def assert_ok(data, path="fuzz.py", fix=True, gates=False):
    problems = fuzz.check_bytes(data, path, fix=fix, gates=gates)
    assert not problems, "\n".join(problems)


def cli(*args, cwd=None, timeout=300):
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "keraslint", "check", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def test_seeds_exist():
    assert len(SEEDS) >= 20


# -- fixture mutations --------------------------------------------------------------------

@pytest.mark.parametrize("name,data", SEEDS[::3], ids=[n for n, _ in SEEDS[::3]])
def test_truncation_at_every_line(name, data):
    lines = data.splitlines(keepends=True)
    for k in range(len(lines) + 1):
        assert_ok(b"".join(lines[:k]), fix=False)
        if k < len(lines):
            assert_ok(b"".join(lines[:k]) + lines[k][: len(lines[k]) // 2], fix=False)


@pytest.mark.parametrize("kind", ["bom", "crlf", "cr", "mixed-eol", "tabs", "latin1", "nul", "bom-crlf-latin1",
                                  "bad-cookie", "utf16", "no-final-newline"])
def test_every_fixture_under_each_transformation(kind):
    rng = random.Random(kind)
    orig = fuzz.mutations
    for name, data in SEEDS:
        # Force the transformation by retrying the random choice.
        for _ in range(200):
            k, mutated = orig(data, rng)
            if k == kind:
                break
        else:
            raise AssertionError(f"mutation {kind} never drawn")
        assert_ok(mutated, fix=FIXER)


def test_random_mutations_fixed_budget():
    rng = random.Random(1234)
    n = 0
    for i in range(300):
        name, data = SEEDS[i % len(SEEDS)]
        kind, mutated = fuzz.mutations(data, rng)
        if rng.random() < 0.3:
            k2, mutated = fuzz.mutations(mutated, rng)
            kind += "+" + k2
        problems = fuzz.check_bytes(mutated, "fuzz.py", fix=FIXER and i % 3 == 0)
        assert not problems, f"{name} {kind}:\n" + "\n".join(problems)
        n += 1
    assert n == 300


def test_crlf_and_cr_keep_positions():
    data = dict(SEEDS)["KL301/bad.py"]
    from keraslint.api import check_source

    base = [(f.code, f.line, f.column) for f in check_source(data.decode(), "m.py")]
    assert base and all(c == "KL301" for c, _, _ in base)
    for eol in ("\r\n", "\r"):
        got = [(f.code, f.line, f.column) for f in check_source(data.decode().replace("\n", eol), "m.py")]
        assert got == base, eol


def test_latin1_cookie_is_decoded_and_checked():
    from keraslint import engine
    from keraslint.api import _classes

    data = b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + dict(SEEDS)["KL301/bad.py"]
    src = engine.read_source("m.py", data=data)
    assert src.encoding.replace("_", "-").lower() in ("latin-1", "iso-8859-1")
    codes = {f.code for f in engine.analyze(src, _classes()).findings}
    assert codes == {"KL301"}


def test_undecodable_bytes_give_kl000_with_position():
    from keraslint import engine

    f = engine.read_source("m.py", data=b"import keras\nx = 'caf\xe9'\n")
    assert f.code == "KL000" and f.line == 2 and "decode" in f.message


# -- hypothesmith ------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.hypothesmith_strategy("grammar"))
def test_hypothesmith_grammar(pair):
    code, how = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_ok(fuzz.hypothesmith_variant(code, how).encode("utf-8", "surrogatepass"), fix=FIXER)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.hypothesmith_strategy("node"))
def test_hypothesmith_node(pair):
    code, how = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_ok(fuzz.hypothesmith_variant(code, how).encode("utf-8", "surrogatepass"), fix=FIXER)


# -- deep nesting and huge files (bugs found by fuzzing) -----------------------------------

@pytest.mark.parametrize("kind,depth", [("list", 1500), ("call", 1500), ("attr", 8000), ("elif", 10000),
                                        ("not", 10000), ("lambda", 10000)])
def test_hostile_nesting_is_kl000_not_a_segfault(tmp_path, kind, depth):
    """libcst's native parser overflowed the C stack on these (the whole CLI died with
    SIGSEGV, exit -11) or took minutes; CPython rejects them, so they are KL000."""
    p = tmp_path / f"deep_{kind}.py"
    p.write_bytes(fuzz.nested(depth, kind))
    r = cli("--no-cache", "--format", "json", "-j", "1", str(p), timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr[-500:])
    found = json.loads(r.stdout)
    assert [f["code"] for f in found] == ["KL000"], found
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("kind,depth", [("list", 150), ("call", 150), ("attr", 600), ("binop", 1000),
                                        ("elif", 1000), ("not", 900), ("if", 90)])
def test_deep_but_valid_python_is_checked_through_the_api(kind, depth):
    """Valid Python (CPython compiles it) gets no KL000 through the API either: it used to
    raise RecursionError (attr 600) or report a false KL000 (binop/elif 1000) because only
    the CLI's workers raised the recursion limit."""
    data = fuzz.nested(depth, kind)
    assert fuzz.cpython_compiles(data.decode())
    assert_ok(data, fix=False)
    from keraslint.api import check_source

    assert not [f for f in check_source(data.decode(), "m.py") if f.code == "KL000"]


def test_hundred_thousand_lines(tmp_path):
    p = tmp_path / "big.py"
    p.write_bytes(b"import keras\nimport numpy as np\n" + b"x = 1\n" * 100_000 + b"y = 'end'\n")
    r = cli("--no-cache", "--format", "json", str(p), timeout=240)
    assert r.returncode == 0, r.stderr[-500:]
    assert json.loads(r.stdout) == []


# -- the CLI on a folder of hostile files ---------------------------------------------------

def _hostile_folder(d, n=40):
    rng = random.Random(7)
    for i in range(n):
        name, data = SEEDS[i % len(SEEDS)]
        kind, mutated = fuzz.mutations(data, rng)
        (d / f"m{i:03d}_{kind}.py").write_bytes(mutated)
    (d / "deep.py").write_bytes(fuzz.nested(1500, "list"))
    (d / "nul.py").write_bytes(b"import keras\x00\n")
    (d / "bom_crlf.py").write_bytes(b"\xef\xbb\xbfimport keras\r\nx = 1\r\n")
    (d / "latin1.py").write_bytes(b"# coding: latin-1\nimport keras\ns = '\xe9'\n")
    (d / "empty.py").write_bytes(b"")
    (d / "only_bom.py").write_bytes(b"\xef\xbb\xbf")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_cli_on_hostile_folder_exit_0_or_1_and_valid_json(tmp_path, jobs):
    _hostile_folder(tmp_path)
    r = cli("--no-cache", "--format", "json", "-j", jobs, str(tmp_path))
    assert r.returncode in (0, 1), (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr == "", r.stderr
    found = json.loads(r.stdout)
    assert {"KL000"} <= {f["code"] for f in found}
    assert all(f["line"] >= 1 and f["column"] >= 1 for f in found)


def test_cli_text_format_on_hostile_folder(tmp_path):
    _hostile_folder(tmp_path, n=10)
    r = cli("--no-cache", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr == ""


@pytest.mark.skipif(not FIXER, reason="keraslint/fixer.py does not exist yet")
def test_cli_fix_on_hostile_folder_leaves_parseable_files(tmp_path):
    import libcst as cst

    _hostile_folder(tmp_path, n=30)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    r = cli("--no-cache", "--fix", "--unsafe-fixes", "--format", "json", str(tmp_path))
    assert r.returncode in (0, 1), (r.returncode, r.stderr[-2000:])
    json.loads(r.stdout)
    from keraslint import engine
    from keraslint.rule import Finding

    changed = 0
    for p in tmp_path.iterdir():
        data = p.read_bytes()
        if data == before[p.name]:
            continue
        changed += 1
        src = engine.read_source(str(p), data=data)
        assert not isinstance(src, Finding), (p.name, src)
        cst.parse_module(src.text)
        old = engine.read_source(str(p), data=before[p.name])
        if fuzz.cpython_compiles(old.text):
            assert fuzz.cpython_compiles(src.text), p.name
    assert changed >= 1


@pytest.mark.skipif(not FIXER, reason="keraslint/fixer.py does not exist yet")
def test_fix_keeps_a_second_bom():
    """Found by scripts/fuzz.py: a file starting with two BOMs and a latin-1 cookie lost its
    second U+FEFF in --fix output, which then no longer decoded (BOM + non-UTF-8 cookie).
    The fixer now leaves such a file alone."""
    data = b"\xef\xbb\xbf\xef\xbb\xbf# coding: latin-1\r\n" + dict(SEEDS)["KL102/bad.py"].replace(b"\n", b"\r\n")
    assert_ok(data, fix=True)
