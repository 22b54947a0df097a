"""Fixture-driven fix tests: every ``fixtures/KLnnn/fixed.py`` is a test case (no per-rule
code). ``keraslint check --fix`` (plus ``--unsafe-fixes`` when the rule's fix is unsafe) on a
copy of ``bad.py`` must give exactly ``fixed.py``; the result re-parses and compiles; a second
``--fix`` changes nothing; ``--diff`` writes nothing and exits 1."""

import os
import re
import shutil

import libcst as cst
import pytest

from keraslint import cli
from keraslint.registry import rules_by_code

from conftest import FIXTURES

CASES = sorted(
    d for d in os.listdir(FIXTURES)
    if re.fullmatch(r"KL\d{3}", d) and os.path.isfile(os.path.join(FIXTURES, d, "fixed.py"))
)


def _flags(case):
    rule = rules_by_code().get(case)
    assert rule is not None, f"fixtures/{case} has no rule"
    assert rule.fix_applicability in ("safe", "unsafe"), f"{case} has fixed.py but no fix"
    return ["--fix", "--unsafe-fixes"] if rule.fix_applicability == "unsafe" else ["--fix"]


def _run(args, monkeypatch, cwd):
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("KERASLINT_CACHE_DIR", raising=False)
    # every rule, as tests/test_fixtures.py: an opt-in rule's fix is tested too
    return cli.main(["check", "-j", "1", "--no-cache", "--select", "ALL", *args])


def _copy(case, tmp_path, name="bad.py"):
    dst = tmp_path / "bad.py"
    shutil.copyfile(os.path.join(FIXTURES, case, name), dst)
    return dst


def _read(case, name):
    with open(os.path.join(FIXTURES, case, name), "rb") as fh:
        return fh.read()


def test_every_fixable_rule_has_fixed_py():
    missing = [code for code, cls in rules_by_code().items()
               if cls.fix_applicability in ("safe", "unsafe")
               and os.path.isdir(os.path.join(FIXTURES, code))
               and not os.path.isfile(os.path.join(FIXTURES, code, "fixed.py"))]
    assert not missing, f"rules with a fix but no fixtures/KLnnn/fixed.py: {missing}"


@pytest.mark.parametrize("case", CASES)
def test_fix_gives_fixed_py(case, tmp_path, monkeypatch, capsys):
    flags = _flags(case)
    p = _copy(case, tmp_path)
    _run([*flags, "bad.py"], monkeypatch, tmp_path)
    err = capsys.readouterr().err
    assert "error:" not in err, err
    got = p.read_bytes()
    want = _read(case, "fixed.py")
    assert got == want, (
        f"`keraslint check {' '.join(flags)}` on fixtures/{case}/bad.py differs from fixed.py:\n"
        + "".join(__import__("difflib").unified_diff(want.decode().splitlines(True), got.decode().splitlines(True),
                                                     "fixed.py", "output")))
    text = got.decode("utf-8")
    cst.parse_module(text)
    compile(text, "fixed.py", "exec")


@pytest.mark.parametrize("case", CASES)
def test_second_fix_changes_nothing(case, tmp_path, monkeypatch, capsys):
    flags = _flags(case)
    p = _copy(case, tmp_path, "fixed.py")
    _run([*flags, "bad.py"], monkeypatch, tmp_path)
    capsys.readouterr()
    assert p.read_bytes() == _read(case, "fixed.py")


@pytest.mark.parametrize("case", CASES)
def test_diff_writes_nothing(case, tmp_path, monkeypatch, capsys):
    flags = [f for f in _flags(case) if f != "--fix"]
    p = _copy(case, tmp_path)
    rc = _run(["--diff", *flags, "bad.py"], monkeypatch, tmp_path)
    out = capsys.readouterr().out
    assert rc == 1
    assert out.startswith("--- a/bad.py\n+++ b/bad.py\n"), out[:200]
    assert p.read_bytes() == _read(case, "bad.py")
    # and nothing left to diff on the fixed file
    p2 = _copy(case, tmp_path, "fixed.py")
    _run(["--diff", *flags, "bad.py"], monkeypatch, tmp_path)
    assert not capsys.readouterr().out.startswith("---")
    assert p2.read_bytes() == _read(case, "fixed.py")
