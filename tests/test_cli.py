"""The CLI contract of DESIGN.md: exit codes, JSON/SARIF/GitHub shapes, config, suppression,
error paths (one line, exit 2, no traceback), and no heavy imports."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES, ROOT

HAZARD = textwrap.dedent(
    """\
    import numpy as np
    import keras


    class Scale(keras.layers.Layer):
        def call(self, x):
            return np.sin(x)
    """
)
CLEAN = "import keras\n\nx = keras.ops.ones((2, 2))\n"


def run(*args, cwd=None, env=None):
    e = dict(os.environ)
    e.pop("KERASLINT_CACHE_DIR", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "keraslint", *args], capture_output=True, text=True, cwd=cwd,
                          env=e, timeout=120)


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "hazard.py").write_text(HAZARD)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0].startswith("keraslint: error: ")
    return lines[0]


# -- exit codes -----------------------------------------------------------------------------

def test_exit_0_on_clean(proj):
    r = run("check", "clean.py", "--no-cache", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "All checks passed." in r.stdout


def test_exit_1_on_findings_and_text_format(proj):
    r = run("check", "hazard.py", "--no-cache", cwd=proj)
    assert r.returncode == 1
    first = r.stdout.splitlines()[0]
    assert first.startswith("hazard.py:7:16: KL301 ")
    assert "Found 1 finding (1 error) in 1 file." in r.stdout


def test_exit_zero_flag(proj):
    assert run("check", "hazard.py", "--exit-zero", "--no-cache", cwd=proj).returncode == 0


def test_no_path_checks_current_folder(proj):
    r = run("check", "--no-cache", "--format", "json", cwd=proj)
    assert r.returncode == 1
    assert {f["path"] for f in json.loads(r.stdout)} == {"hazard.py"}


def test_python_dash_m_and_console_script_agree(proj):
    exe = os.path.join(os.path.dirname(sys.executable), "keraslint")
    a = subprocess.run([exe, "check", "hazard.py", "--no-cache", "--format", "json"], capture_output=True, text=True,
                       cwd=proj)
    b = run("check", "hazard.py", "--no-cache", "--format", "json", cwd=proj)
    assert a.returncode == b.returncode == 1
    assert a.stdout == b.stdout


# -- JSON -------------------------------------------------------------------------------------

def test_json_shape(proj):
    r = run("check", "hazard.py", "--format", "json", "--no-cache", cwd=proj)
    data = json.loads(r.stdout)  # stdout is one JSON array and nothing else
    assert isinstance(data, list) and len(data) == 1
    f = data[0]
    assert list(f) == ["code", "rule", "severity", "path", "line", "column", "end_line", "end_column", "message", "fix"]
    assert f["code"] == "KL301" and f["rule"] == "numpy-in-graph" and f["severity"] == "error"
    assert (f["line"], f["column"], f["end_line"], f["end_column"]) == (7, 16, 7, 25)
    assert f["path"] == "hazard.py"
    assert f["fix"] is None or set(f["fix"]) == {"applicability"}


def test_json_empty_array_when_clean(proj):
    r = run("check", "clean.py", "--format", "json", "--no-cache", cwd=proj)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_notebook_cell_positions(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
            {"cell_type": "code", "metadata": {}, "source": ["%matplotlib inline\n", "import numpy as np\n",
                                                              "import keras\n"], "outputs": [],
             "execution_count": None},
            {"cell_type": "code", "metadata": {}, "source": ["!pip install keras\n", "class L(keras.layers.Layer):\n",
                                                              "    def call(self, x):\n",
                                                              "        return np.exp(x)\n"], "outputs": [],
             "execution_count": None},
        ],
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    (tmp_path / "n.ipynb").write_text(json.dumps(nb))
    r = run("check", "n.ipynb", "--format", "json", "--no-cache", cwd=tmp_path)
    data = json.loads(r.stdout)
    assert [(f["code"], f["cell"], f["line"], f["column"]) for f in data] == [("KL301", 3, 4, 16)]
    t = run("check", "n.ipynb", "--no-cache", cwd=tmp_path)
    assert t.stdout.startswith("n.ipynb:cell 3:4:16: KL301")


# -- SARIF and GitHub ------------------------------------------------------------------------------

def test_sarif_validates_against_sarif_model(proj):
    sarif_pydantic = pytest.importorskip("sarif_pydantic")
    r = run("check", "hazard.py", "--format", "sarif", "--no-cache", cwd=proj)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    log = sarif_pydantic.Sarif.model_validate(doc)
    assert log.version == "2.1.0"
    run0 = log.runs[0]
    assert run0.tool.driver.name == "keraslint"
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    res = doc["runs"][0]["results"][0]
    assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == "KL301"
    assert res["level"] == "error"
    region = res["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (7, 16)
    for rule in rules:  # rule metadata: every rule documented
        assert rule["fullDescription"]["text"].startswith("## What it does")


def test_github_format(proj):
    r = run("check", "hazard.py", "--format", "github", "--no-cache", cwd=proj)
    assert r.returncode == 1
    line = r.stdout.strip()
    assert line.startswith("::error file=hazard.py,line=7,col=16,endLine=7,endColumn=25,title=KL301 numpy-in-graph::")


# -- selection, config, suppression -----------------------------------------------------------------

def test_select_and_ignore_prefixes(proj):
    assert run("check", "hazard.py", "--select", "KL3", "--no-cache", cwd=proj).returncode == 1
    assert run("check", "hazard.py", "--ignore", "KL3", "--no-cache", cwd=proj).returncode == 0
    assert run("check", "hazard.py", "--select", "KL301", "--ignore", "KL301", "--no-cache", cwd=proj).returncode == 0


def test_suppression_comments(tmp_path):
    for comment in ("# keraslint: ignore[KL301]", "# keraslint: ignore", "# noqa: KL301", "# noqa"):
        (tmp_path / "s.py").write_text(HAZARD.replace("return np.sin(x)", f"return np.sin(x)  {comment}"))
        assert run("check", "s.py", "--no-cache", cwd=tmp_path).returncode == 0, comment
    (tmp_path / "s.py").write_text(HAZARD.replace("return np.sin(x)", "return np.sin(x)  # noqa: KL302"))
    assert run("check", "s.py", "--no-cache", cwd=tmp_path).returncode == 1


def test_config_from_nearest_pyproject(proj):
    sub = proj / "pkg"
    sub.mkdir()
    (sub / "m.py").write_text(HAZARD)
    (proj / "pyproject.toml").write_text('[tool.keraslint]\nper-file-ignores = { "pkg/*" = ["KL301"] }\n')
    r = run("check", "--no-cache", "--format", "json", cwd=proj)
    assert {f["path"] for f in json.loads(r.stdout)} == {"hazard.py"}
    (proj / "pyproject.toml").write_text('[tool.keraslint]\nexclude = ["hazard.py", "pkg/"]\n')
    assert run("check", "--no-cache", cwd=proj).returncode == 0
    (proj / "pyproject.toml").write_text('[tool.keraslint]\nignore = ["KL3"]\n')
    assert run("check", "--no-cache", cwd=sub).returncode == 0
    (proj / "pyproject.toml").write_text('[tool.keraslint]\nseverity = { KL301 = "info" }\n')
    r = run("check", "hazard.py", "--no-cache", "--format", "json", cwd=proj)
    assert json.loads(r.stdout)[0]["severity"] == "info"


def test_gitignore_is_honoured(proj):
    (proj / ".gitignore").write_text("hazard.py\n")
    assert run("check", "--no-cache", cwd=proj).returncode == 0
    # An explicit path is always checked.
    assert run("check", "hazard.py", "--no-cache", cwd=proj).returncode == 1


# -- error paths: one line, exit 2 ---------------------------------------------------------------

def test_missing_path(proj):
    assert "nope.py" in one_line_error(run("check", "nope.py", cwd=proj))


def test_unknown_code_in_select_and_ignore(proj):
    assert "KL999" in one_line_error(run("check", "--select", "KL999", cwd=proj))
    assert "XY1" in one_line_error(run("check", "--ignore", "XY1", cwd=proj))


def test_invalid_format(proj):
    assert "--format" in one_line_error(run("check", "--format", "xml", cwd=proj))


def test_unknown_config_key_names_key_and_file(proj):
    (proj / "pyproject.toml").write_text("[tool.keraslint]\nselct = ['KL3']\n")
    line = one_line_error(run("check", cwd=proj))
    assert "selct" in line and "pyproject.toml" in line


def test_bad_config_values(proj):
    (proj / "pyproject.toml").write_text("[tool.keraslint]\nselect = ['KL777']\n")
    assert "KL777" in one_line_error(run("check", cwd=proj))
    (proj / "pyproject.toml").write_text("[tool.keraslint]\nseverity = { KL301 = 'fatal' }\n")
    assert "fatal" in one_line_error(run("check", cwd=proj))
    (proj / "pyproject.toml").write_text("[tool.keraslint\n")
    assert "TOML" in one_line_error(run("check", cwd=proj))


def test_unknown_option_and_explain_unknown_code(proj):
    one_line_error(run("check", "--frobnicate", cwd=proj))
    assert "KL999" in one_line_error(run("explain", "KL999", cwd=proj))


def test_syntax_error_is_kl000_and_run_goes_on(proj):
    (proj / "broken.py").write_text("import keras\ndef f(:\n    pass\n")
    r = run("check", "--no-cache", "--format", "json", cwd=proj)
    data = json.loads(r.stdout)
    assert r.returncode == 1
    codes = {(f["path"], f["code"]) for f in data}
    assert ("broken.py", "KL000") in codes and ("hazard.py", "KL301") in codes
    kl000 = next(f for f in data if f["code"] == "KL000")
    assert kl000["line"] == 2 and kl000["rule"] == "syntax-error"


# -- rules / explain ---------------------------------------------------------------------------------

def test_rules_and_explain():
    r = run("rules", "--format", "json")
    data = json.loads(r.stdout)
    assert r.returncode == 0
    codes = [d["code"] for d in data]
    assert codes == sorted(codes) and "KL301" in codes
    for d in data:
        assert d["severity"] in ("error", "warning", "info") and d["fix"] in (None, "safe", "unsafe")
    e = run("explain", "kl301")
    assert e.returncode == 0 and "## Why is this bad?" in e.stdout


# -- no heavy imports ------------------------------------------------------------------------------

HEAVY = ("tensorflow", "torch", "jax", "keras")


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["check", "{file}", "--no-cache"],
                                  ["check", "{file}"], ["rules"], ["explain", "KL301"]])
def test_check_never_imports_frameworks(args, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(HAZARD)
    argv = [a.replace("{file}", str(f)) for a in args]
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['keraslint'] + {argv!r}\n"
        "try:\n"
        "    runpy.run_module('keraslint', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print('HEAVY=' + ','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", line


def test_explicit_folders_inside_an_ignored_folder_are_checked(tmp_path):
    """`check A B` where both live under a git-ignored folder (say .venv/): both are
    checked, whatever their order (the parent's .gitignore must not hide them)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("venv-like/\n*.tmp.py\n")
    for name in ("a", "b"):
        d = tmp_path / "venv-like" / name
        d.mkdir(parents=True)
        (d / "m.py").write_text(HAZARD)
        (d / "skip.tmp.py").write_text(HAZARD)
    for order in (("a", "b"), ("b", "a")):
        paths = [str(tmp_path / "venv-like" / n) for n in order]
        r = run("check", *paths, "--no-cache", "--format", "json", cwd=tmp_path)
        got = sorted(os.path.relpath(f["path"], tmp_path) for f in json.loads(r.stdout))
        assert got == ["venv-like/a/m.py", "venv-like/b/m.py"], (order, got)


def test_diff_with_json_keeps_stdout_one_json_array(tmp_path):
    (tmp_path / "t.py").write_text(
        "import keras\nkeras.utils.set_random_seed(0)\nm = keras.Sequential([keras.layers.Dense(1)])\n"
        "m.compile(optimizer='adam', loss='mse')\n")
    r = run("check", "t.py", "--diff", "--format", "json", "--no-cache", "--select", "KL401", "--strict", cwd=tmp_path)
    assert r.returncode == 1
    data = json.loads(r.stdout)  # what would remain after the fixes: nothing
    assert data == []
    assert "+++ " in r.stderr and "Adam(" in r.stderr
    t = run("check", "t.py", "--diff", "--no-cache", "--select", "KL401", "--strict", cwd=tmp_path)
    assert t.stdout.startswith("--- ") and "Adam(" in t.stdout


def test_explicit_folder_in_exclude_is_checked_but_inner_patterns_apply(proj):
    sub = proj / "vendor"
    sub.mkdir()
    (sub / "m.py").write_text(HAZARD)
    (sub / "gen_pb2.py").write_text(HAZARD)
    (proj / "pyproject.toml").write_text('[tool.keraslint]\nexclude = ["vendor/", "*_pb2.py"]\n')
    r = run("check", "--no-cache", "--format", "json", cwd=proj)
    assert {f["path"] for f in json.loads(r.stdout)} == {"hazard.py"}
    r = run("check", "vendor", "--no-cache", "--format", "json", cwd=proj)
    assert {f["path"] for f in json.loads(r.stdout)} == {os.path.join("vendor", "m.py")}


def test_verify_without_the_extra_is_one_clear_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    from keraslint import cli

    script = tmp_path / "train.py"
    script.write_text(CLEAN)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real(name, *a))
    assert cli.main(["verify", str(script)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keraslint[verify]" in err[0]


# -- typer: help, version, usage errors, completion ------------------------------------------------


def test_help_version_and_no_command():
    h = run("--help")
    assert h.returncode == 0
    for cmd in ("check", "verify", "rules", "explain", "server"):
        assert cmd in h.stdout
    assert "--install-completion" in h.stdout and "--show-completion" in h.stdout
    assert run().returncode == 0 and "Usage: keraslint" in run().stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("keraslint ")
    c = run("check", "--help")
    for flag in ("--select", "--ignore", "--fix", "--unsafe-fixes", "--diff", "--format", "--exit-zero", "--no-cache",
                 "--cache-dir", "--config", "--jobs", "--strict", "--statistics", "--add-noqa"):
        assert flag in c.stdout, flag
    assert "--no-shortcuts" not in c.stdout


@pytest.mark.parametrize("args,needle", [
    (["check", "--frobnicate"], "--frobnicate"),
    (["check", "-j", "x"], "'x' is not a valid"),
    (["check", "--select"], "--select"),
    (["explain"], "CODE"),
    (["verify"], "TARGET"),
    (["frobnicate"], "frobnicate"),
    (["check", "--jobs", "0"], "--jobs must be at least 1"),
])
def test_usage_errors_are_one_plain_line(args, needle, tmp_path):
    line = one_line_error(run(*args, cwd=tmp_path))
    assert needle in line
    assert not any(ch in line for ch in "╭╮╰╯│─"), line  # no rich boxes
    assert "\x1b[" not in line


def test_show_completion_prints_a_script():
    r = run("--show-completion", "bash")
    assert r.returncode == 0, r.stderr
    assert "_KERASLINT_COMPLETE" in r.stdout and "complete -o default -F _keraslint_completion keraslint" in r.stdout
    z = run("--show-completion", "zsh")
    assert z.returncode == 0 and z.stdout.startswith("#compdef keraslint")
    assert "tcsh" in one_line_error(run("--show-completion", "tcsh"))


def test_completion_of_options_codes_and_formats():
    def complete(words, cword):
        e = dict(os.environ, _KERASLINT_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
        exe = os.path.join(os.path.dirname(sys.executable), "keraslint")
        return subprocess.run([exe], capture_output=True, text=True, env=e, timeout=60).stdout.split()

    assert complete("keraslint check --sel", 2) == ["--select"]
    assert "KL301" in complete("keraslint check --select KL30", 3)
    assert complete("keraslint check --format ", 3) == ["text", "json", "sarif", "github"]
    assert "KL101" in complete("keraslint explain KL1", 2)


def test_check_imports_no_lsp_and_no_rich(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(HAZARD)
    code = (
        "import sys\n"
        f"sys.argv = ['keraslint', 'check', {str(f)!r}, '--no-cache']\n"
        "from keraslint.cli import main\n"
        "main()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pygls', 'lsprotocol', 'rich', 'pydantic', 'cattrs'))\n"
        "print('LOADED=' + ','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "LOADED=", r.stdout


# -- --strict, rules default set -----------------------------------------------------------------------

PARITY_FREE = (
    "import keras\n\nmodel = keras.Sequential([keras.layers.Dense(1)])\n"
    "model.compile(optimizer='sgd', loss='mse')\n"
)


def test_strict_reports_hidden_defaults_outside_a_parity_context(tmp_path):
    (tmp_path / "t.py").write_text(PARITY_FREE)
    plain = json.loads(run("check", "t.py", "--no-cache", "--format", "json", "--select", "KL401", cwd=tmp_path).stdout)
    strict = run("check", "t.py", "--no-cache", "--format", "json", "--select", "KL401", "--strict", cwd=tmp_path)
    assert plain == []
    assert strict.returncode == 1 and [f["code"] for f in json.loads(strict.stdout)] == ["KL401"]
    # the cache keeps the two apart
    cached = run("check", "t.py", "--format", "json", "--select", "KL401", cwd=tmp_path)
    cached_strict = run("check", "t.py", "--format", "json", "--select", "KL401", "--strict", cwd=tmp_path)
    assert json.loads(cached.stdout) == [] and len(json.loads(cached_strict.stdout)) == 1


def test_rules_show_the_default_set():
    from keraslint.registry import all_rules

    data = json.loads(run("rules", "--format", "json").stdout)
    for d in data:
        assert list(d)[:4] == ["code", "name", "severity", "fix"] and isinstance(d["default"], bool)
    by_code = {c.code: c for c in all_rules()}
    assert {d["code"]: d["default"] for d in data} == {c: bool(getattr(k, "default", True)) for c, k in by_code.items()}
    text = run("rules").stdout.splitlines()
    for line, d in zip(text, data):
        assert line.split()[0] == d["code"]
        assert line.split()[3] == ("default" if d["default"] else "opt-in")


# -- the GitHub Action ---------------------------------------------------------------------------------


def test_action_yml_structure():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, "action.yml"), encoding="utf-8") as fh:
        action = yaml.safe_load(fh)
    assert action["name"] and action["description"]
    assert set(action["inputs"]) >= {"paths", "args", "sarif", "version"}
    for spec in action["inputs"].values():
        assert "description" in spec and "default" in spec
    assert action["inputs"]["sarif"]["default"] == "false"
    runs = action["runs"]
    assert runs["using"] == "composite"
    steps = runs["steps"]
    for s in steps:
        assert ("uses" in s) != ("run" in s)
        if "run" in s:
            assert s["shell"] == "bash"
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/setup-python", "github/codeql-action/upload-sarif"]
    install = next(s for s in steps if "run" in s and "pip install" in s["run"])
    assert "keraslint==$KERASLINT_VERSION" in install["run"]
    assert install["env"]["KERASLINT_VERSION"] == "${{ inputs.version }}"
    check = next(s for s in steps if s.get("id") == "check")
    assert "--format github" in check["run"] and "--format sarif" in check["run"]
    assert set(check["env"].values()) == {"${{ inputs.paths }}", "${{ inputs.args }}", "${{ inputs.sarif }}"}
    upload = steps[-1]
    assert "inputs.sarif == 'true'" in upload["if"]
    assert upload["with"]["sarif_file"] == "${{ steps.check.outputs.sarif-file }}"
    # inputs reach the shell through env, never pasted into the script (no injection)
    for s in steps:
        if "run" in s:
            assert "${{" not in s["run"]


def test_action_check_step_runs_locally(tmp_path):
    """The check step's script, run with bash against this checkout's keraslint."""
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, "action.yml"), encoding="utf-8") as fh:
        step = next(s for s in yaml.safe_load(fh)["runs"]["steps"] if s.get("id") == "check")
    (tmp_path / "hazard.py").write_text(HAZARD)
    bindir = os.path.dirname(sys.executable)
    for sarif, want in (("false", 1), ("true", 0)):
        out = tmp_path / f"out-{sarif}"
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], KERASLINT_PATHS="hazard.py",
                   KERASLINT_ARGS="--no-cache", KERASLINT_SARIF=sarif, RUNNER_TEMP=str(tmp_path),
                   GITHUB_OUTPUT=str(out))
        r = subprocess.run(["bash", "-c", step["run"]], capture_output=True, text=True, cwd=tmp_path, env=env,
                           timeout=120)
        assert r.returncode == want, r.stderr
        outputs = dict(ln.split("=", 1) for ln in out.read_text().splitlines())
        assert outputs["exit-code"] == "1"
        if sarif == "true":
            doc = json.loads((tmp_path / "keraslint.sarif").read_text())
            assert doc["runs"][0]["results"][0]["ruleId"] == "KL301"
        else:
            assert r.stdout.startswith("::error file=hazard.py,line=7")


def test_verify_port_takes_an_optional_value(tmp_path, monkeypatch, capsys):
    import keraslint.verify as verify

    from keraslint import cli

    script = tmp_path / "train.py"
    script.write_text(CLEAN)
    seen = []
    monkeypatch.setattr(verify, "run_cli", lambda **kw: seen.append(kw) or 0)
    s = str(script)
    assert cli.main(["verify", s]) == 0 and "port" not in seen[-1]
    assert cli.main(["verify", s, "--port"]) == 0 and seen[-1]["port"] == ""
    assert cli.main(["verify", s, "--port", "--steps", "3"]) == 0 and (seen[-1]["port"], seen[-1]["steps"]) == ("", 3)
    assert cli.main(["verify", s, "--port", "model,net"]) == 0 and seen[-1]["port"] == "model,net"
    assert cli.main(["verify", "--port", "model,net", s]) == 0 and seen[-1]["port"] == "model,net"
    capsys.readouterr()
    assert cli.main(["verify", s, "--port", "model"]) == 2
    assert "--port takes two names" in capsys.readouterr().err


def test_server_without_the_extra_is_one_clear_line(monkeypatch, capsys):
    import importlib.util

    from keraslint import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygls" else real(name, *a))
    assert cli.main(["server"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keraslint[lsp]" in err[0] and "pygls" in err[0]


def test_explain_says_what_verify_measures_or_why_it_cannot():
    measured = run("explain", "KL601")
    assert measured.returncode == 0 and "## Verify\nverify (" in measured.stdout
    unmeasurable = run("explain", "KL505")
    assert "## Verify\nverify: not measurable:" in unmeasurable.stdout


def test_verify_rule_accepts_every_catalog_code_and_answers_without_running():
    r = run("verify", os.path.join(ROOT, "tests", "verify_corpus", "kl301_good.py"), "--rule", "KL000",
            "--rule", "KL505", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [x["verdict"] for x in out["results"]] == ["inconclusive", "inconclusive"]
    assert all(x["detail"] and "\n" not in x["detail"] for x in out["results"])
