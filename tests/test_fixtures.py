"""Fixture-driven rule tests: every folder ``fixtures/KLnnn`` is a test case, so a new rule
needs no new test code.

* ``bad.py``: every line carrying ``# expect: KLnnn[, KLmmm]`` is flagged with exactly those
  codes, and no other line is flagged, by *all* rules together;
* ``good.py``: no rule flags anything;
* both hold with the token gates / parse skipping switched off (shortcuts change nothing).
"""

import os
import re

import pytest

from keraslint.api import check_source
from keraslint.registry import rules_by_code

from conftest import FIXTURES

EXPECT = re.compile(r"#\s*expect:\s*(KL\d{3}(?:\s*,\s*KL\d{3})*)")
CASES = sorted(d for d in os.listdir(FIXTURES) if re.fullmatch(r"KL\d{3}", d))


def expected(text: str) -> set:
    out = set()
    for i, line in enumerate(text.splitlines(), 1):
        m = EXPECT.search(line)
        if m:
            out.update((i, c.strip()) for c in m.group(1).split(","))
    return out


def _read(case, name):
    with open(os.path.join(FIXTURES, case, name), encoding="utf-8") as fh:
        return fh.read()


def test_every_fixture_folder_is_a_rule():
    codes = set(rules_by_code())
    assert set(CASES) <= codes, f"fixture folders without a rule: {sorted(set(CASES) - codes)}"


def test_every_rule_has_fixtures():
    missing = [c for c in rules_by_code() if c not in CASES]
    assert not missing, f"rules without fixtures/KLnnn: {missing}"


@pytest.mark.parametrize("gate", [True, False], ids=["shortcuts", "no-shortcuts"])
@pytest.mark.parametrize("case", CASES)
def test_bad(case, gate):
    text = _read(case, "bad.py")
    want = expected(text)
    assert any(code == case for _, code in want), f"{case}/bad.py has no `# expect: {case}` line"
    got = {(f.line, f.code) for f in check_source(text, path=f"fixtures/{case}/bad.py", gate=gate)}
    missing = sorted(want - got)
    extra = sorted(got - want)
    assert not missing and not extra, f"missing (line, code): {missing}; unexpected: {extra}"


@pytest.mark.parametrize("gate", [True, False], ids=["shortcuts", "no-shortcuts"])
@pytest.mark.parametrize("case", CASES)
def test_good(case, gate):
    text = _read(case, "good.py")
    got = [(f.line, f.code, f.message) for f in check_source(text, path=f"fixtures/{case}/good.py", gate=gate)]
    assert not got, f"{case}/good.py must be silent: {got}"


@pytest.mark.parametrize("case", CASES)
def test_rule_docs_have_four_parts(case):
    doc = rules_by_code()[case].doc()
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert section in doc, f"{case} doc lacks {section!r}"
