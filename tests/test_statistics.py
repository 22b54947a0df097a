"""`check --statistics`: a count per code, most frequent first, with the rule name and the
fixable count (text and JSON), consistent with the findings `check` reports."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

SOURCE = (
    "import numpy as np\n"
    "import keras\n"
    "\n"
    "\n"
    "class A(keras.layers.Layer):\n"
    "    def call(self, x):\n"
    "        return np.clip(x, -1.0, 1.0) + np.clip(x, 0.0, 1.0) + np.sin(x)\n"
    "\n"
    "\n"
    "model = keras.Sequential([keras.layers.Dense(1)])\n"
    "model.compile(optimizer='sgd', loss='mse')\n"
    "model.fit([[1.0]], [[1.0]])\n"
)


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "KERASLINT_CACHE_DIR"}
    return subprocess.run([sys.executable, "-m", "keraslint", "check", "--no-cache", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE)
    (tmp_path / "n.py").write_text(SOURCE.split("\n\n\nmodel")[0] + "\n")
    return tmp_path


def expected(findings, kinds=("safe",)):
    count = Counter(f["code"] for f in findings)
    fixable = Counter(f["code"] for f in findings if f["fix"] and f["fix"]["applicability"] in kinds)
    names = {f["code"]: f["rule"] for f in findings}
    return sorted(({"code": c, "name": names[c], "count": n, "fixable": fixable[c]} for c, n in count.items()),
                  key=lambda r: (-r["count"], r["code"]))


@pytest.mark.parametrize("extra", [[], ["--strict"]])
def test_json_statistics_match_the_findings(proj, extra):
    findings = json.loads(run("--format", "json", *extra, cwd=proj).stdout)
    r = run("--statistics", "--format", "json", *extra, cwd=proj)
    assert r.returncode == 1, r.stderr
    rows = json.loads(r.stdout)  # one JSON array and nothing else
    assert rows == expected(findings)
    assert all(list(row) == ["code", "name", "count", "fixable"] for row in rows)
    kl301 = next(row for row in rows if row["code"] == "KL301")
    assert (kl301["name"], kl301["count"], kl301["fixable"]) == ("numpy-in-graph", 6, 4)
    counts = [row["count"] for row in rows]
    assert counts == sorted(counts, reverse=True)


def test_unsafe_fixes_count_as_fixable_with_the_flag(proj):
    findings = json.loads(run("--format", "json", "--strict", cwd=proj).stdout)
    r = run("--statistics", "--format", "json", "--strict", "--unsafe-fixes", cwd=proj)
    assert json.loads(r.stdout) == expected(findings, ("safe", "unsafe"))


def test_text_statistics(proj):
    r = run("--statistics", "--strict", cwd=proj)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["6", "KL301", "numpy-in-graph", "4", "fixable"]
    assert lines[-1].startswith("Found ") and "findings" in lines[-1]
    for ln in lines[1:-1]:
        n, code, name, *rest = ln.split()
        assert int(n) <= 6 and code.startswith("KL") and name
        assert rest == [] or (len(rest) == 2 and rest[1] == "fixable" and int(rest[0]) <= int(n))


def test_clean_and_exit_zero_and_bad_format(proj, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "c.py").write_text("import keras\n")
    r = run("--statistics", cwd=clean)
    assert r.returncode == 0 and r.stdout == "All checks passed.\n"
    r = run("--statistics", "--format", "json", cwd=clean)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    assert run("--statistics", "--exit-zero", cwd=proj).returncode == 0
    r = run("--statistics", "--format", "sarif", cwd=proj)
    assert r.returncode == 2 and r.stderr.strip().startswith("keraslint: error: --statistics")


def test_statistics_rows_unit():
    from keraslint import reporters
    from keraslint.rule import Finding

    def f(code, fix=None):
        return Finding(code, code.lower(), "error", "p.py", 1, 1, 1, 2, "m", fix)

    rows = reporters.statistics_rows([f("KL2"), f("KL1", "safe"), f("KL2", "unsafe"), f("KL3"), f("KL1", "safe"),
                                      f("KL1")])
    assert rows == [{"code": "KL1", "name": "kl1", "count": 3, "fixable": 2},
                    {"code": "KL2", "name": "kl2", "count": 2, "fixable": 0},
                    {"code": "KL3", "name": "kl3", "count": 1, "fixable": 0}]
    assert reporters.statistics_rows([f("KL2", "unsafe")], ("safe", "unsafe"))[0]["fixable"] == 1
