"""The README stays true: its first lines are the two commands, CI runs command 2 exactly,
and its rule table matches the registry (code, name, severity, fix)."""

import os
import re

from keraslint.registry import all_rules

from conftest import ROOT


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_first_lines_are_the_two_commands_and_ci_runs_the_second():
    lines = _readme().splitlines()
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 5]
    run_cmd, test_cmd = block[1], block[3]
    assert "keraslint check examples/" in run_cmd
    assert "pytest" in test_cmd and "constraints.txt" in test_cmd
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    assert test_cmd in ci, "CI must run exactly the README's command 2"


def test_rule_table_matches_registry():
    rows = {}
    for line in _readme().splitlines():
        m = re.match(r"\| (KL\d{3}) \| ([a-z0-9-]+) \| (error|warning|info) \| (safe|unsafe|–) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), None if m.group(4) == "–" else m.group(4))
    for rule in all_rules():
        assert rows.get(rule.code) == (rule.name, rule.severity, rule.fix_applicability), rule.code
    assert set(rows) - {"KL000"} == {r.code for r in all_rules()}


def test_examples_have_findings_of_every_family():
    from keraslint.api import check_paths

    codes = {f.code for f in check_paths([os.path.join(ROOT, "examples")])}
    for family in ("KL1", "KL2", "KL3", "KL4", "KL5", "KL6"):
        assert any(c.startswith(family) for c in codes), family
