"""The `keraslint verify` contract: JSON shape, exit codes, --rule without a finding,
entry points, --plot, progress on stderr, and that neither `check`, `--help` nor the verify
parent process imports TensorFlow, PyTorch or JAX."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "verify_corpus")
KEYS = ["code", "rule", "path", "line", "verdict", "experiment", "metric", "value", "tolerance",
        "value_fixed", "detail"]
HEAVY = ("tensorflow", "torch", "jax", "keras")


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "keraslint", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _check_shape(report: dict) -> None:
    assert list(report) == ["target", "results", "summary"]
    assert list(report["summary"]) == ["confirmed", "not_confirmed", "inconclusive"]
    for r in report["results"]:
        assert list(r) == KEYS
        assert r["verdict"] in ("confirmed", "not-confirmed", "inconclusive")
        assert isinstance(r["detail"], str) and r["detail"]
    counts = {"confirmed": 0, "not_confirmed": 0, "inconclusive": 0}
    for r in report["results"]:
        counts[r["verdict"].replace("-", "_")] += 1
    assert counts == report["summary"]


@pytest.mark.slow
def test_findings_drive_the_experiments_json_only_on_stdout():
    target = os.path.join("tests", "verify_corpus", "kl301_bad.py")
    p = cli("verify", target, "--steps", "2", "--format", "json")
    report = json.loads(p.stdout)  # nothing else on stdout
    _check_shape(report)
    assert report["target"] == target
    kl301 = [r for r in report["results"] if r["code"] == "KL301"]
    assert [r["line"] for r in kl301] == [11]
    assert kl301[0]["verdict"] == "confirmed" and kl301[0]["rule"] == "numpy-in-graph"
    assert kl301[0]["experiment"] == "eager-vs-compiled"
    assert p.returncode == 1
    assert "keraslint verify:" not in p.stderr  # no progress with --format json


@pytest.mark.slow
def test_rule_without_finding_is_answered_text_progress(tmp_path):
    target = os.path.join("tests", "verify_corpus", "kl301_good.py")
    png = tmp_path / "plot.png"
    p = cli("verify", target, "--rule", "KL301", "--steps", "2", "--plot", str(png))
    assert p.returncode == 0, p.stderr
    assert "KL301 numpy-in-graph: not-confirmed" in p.stdout
    assert "0 confirmed, 1 not confirmed, 0 inconclusive" in p.stdout
    assert "KL301 eager-vs-compiled: started" in p.stderr and "not-confirmed in" in p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rule_line_is_null_without_finding():
    p = subprocess.run([sys.executable, "-m", "keraslint.verify", os.path.join(CORPUS, "kl404_good.py"), "--rule",
                        "KL404", "--steps", "2", "--format", "json"], capture_output=True, text=True, timeout=240)
    report = json.loads(p.stdout)
    _check_shape(report)
    [r] = report["results"]
    assert r["line"] is None and r["verdict"] == "not-confirmed"


@pytest.mark.slow
def test_entry_point_function(tmp_path):
    png = tmp_path / "p.png"
    target = os.path.join(CORPUS, "entry_kl301.py") + "::build"
    p = subprocess.run([sys.executable, "-m", "keraslint.verify", target, "--rule", "KL301", "--steps", "2",
                        "--format", "json", "--plot", str(png)], capture_output=True, text=True, timeout=240)
    report = json.loads(p.stdout)
    [r] = report["results"]
    assert r["verdict"] == "confirmed", r["detail"]
    assert r["value_fixed"] == 0.0
    assert p.returncode == 1 and png.exists()


def test_bad_target_is_a_usage_error():
    p = cli("verify", "no/such/file.py")
    assert p.returncode == 2 and "no such file" in p.stderr


def _imported(args) -> set:
    p = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    mods = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return mods


def test_check_and_help_import_no_ml_framework():
    target = os.path.join("tests", "verify_corpus", "kl301_bad.py")
    for args in (["-m", "keraslint", "check", "--no-cache", target], ["-m", "keraslint", "--help"],
                 ["-m", "keraslint", "verify", "--help"]):
        mods = _imported(args)
        assert "keraslint" in mods
        assert not mods & set(HEAVY), (args, mods & set(HEAVY))


@pytest.mark.slow
def test_verify_parent_process_imports_no_ml_framework():
    code = ("import sys, io, contextlib\n"
            "from keraslint.verify import run_cli\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            f"    rc = run_cli({os.path.join(CORPUS, 'kl301_bad.py')!r}, ['KL301'], 2, 120.0, 'json', None)\n"
            "assert rc == 1, rc\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'jax', 'keras')]\n"
            "assert not heavy, heavy\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
