"""`check --add-noqa`: every current finding gets `# keraslint: ignore[KLnnn]` on a line the
engine honours, never inside a string or after a line continuation, merged into an
existing directive; notebooks are edited cell by cell; a second run adds nothing and
`check` is then clean. The slow test does this on a copy of the installed keras +
keras-hub sources."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from keraslint.noqa import add_to_text


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "KERASLINT_CACHE_DIR"}
    return subprocess.run([sys.executable, "-m", "keraslint", "check", "--no-cache", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=1800)


# -- placing and merging (unit) --------------------------------------------------------------------


def test_appends_to_the_finding_line():
    new, n, unplaced, fallback = add_to_text("x = f(1)\ny = 2\n", [(1, 1, "KL301")])
    assert new == "x = f(1)  # keraslint: ignore[KL301]\ny = 2\n" and n == 1
    assert unplaced == [] and fallback == []


def test_merges_codes_into_an_existing_directive_and_keeps_other_comments():
    text = "a = 1  # keraslint: ignore[KL301]\nb = 2  # type: ignore\nc = 3   \n"
    new, n, _, _ = add_to_text(text, [(1, 1, "KL302"), (1, 1, "KL301"), (2, 2, "KL401"), (3, 3, "KL1"),
                                      (3, 3, "KL0")])
    assert new.splitlines() == [
        "a = 1  # keraslint: ignore[KL301, KL302]",
        "b = 2  # type: ignore  # keraslint: ignore[KL401]",
        "c = 3  # keraslint: ignore[KL0, KL1]",
    ]
    assert n == 3
    again = add_to_text(new, [(1, 1, "KL302"), (2, 2, "KL401")])
    assert again[0] == new and again[1] == 0  # nothing to add


def test_multi_line_string_and_backslash_use_a_line_that_can_hold_a_comment():
    text = 'x = f("""a\nb""")\ny = g(1) + \\\n    h(2)\nz = k(\n    3)\n'
    # a finding spanning lines 1-2 (starts inside nothing, but line 1 ends inside the string)
    new, n, _, fallback = add_to_text(text, [(1, 2, "KL1"), (3, 4, "KL2"), (5, 6, "KL3")])
    assert new == ('x = f("""a\nb""")  # keraslint: ignore[KL1]\ny = g(1) + \\\n    h(2)  # keraslint: ignore[KL2]\n'
                   'z = k(  # keraslint: ignore[KL3]\n    3)\n')
    assert fallback == []
    compile(new, "t", "exec")
    # A finding on one line that ends inside a string: the end of the statement.
    new, _, _, fallback = add_to_text('s = f(x) + len("""a\nb""")\n', [(1, 1, "KL301")])
    assert new == 's = f(x) + len("""a\nb""")  # keraslint: ignore[KL301]\n' and fallback == [(1, "KL301")]


def test_crlf_and_no_final_newline_and_untokenizable():
    new, n, _, _ = add_to_text("a = f()\r\nb = 1", [(1, 1, "KL1"), (2, 2, "KL2")])
    assert new == "a = f()  # keraslint: ignore[KL1]\r\nb = 1  # keraslint: ignore[KL2]" and n == 2
    assert add_to_text('x = """never closed\n', [(1, 1, "KL1")]) is None


# -- through the CLI --------------------------------------------------------------------------------

HAZARD = (
    "import numpy as np\n"
    "import keras\n"
    "\n"
    "\n"
    "class Scale(keras.layers.Layer):\n"
    "    def call(self, x):\n"
    "        y = np.sin(x)  # keraslint: ignore[KL302]\n"
    "        z = np.exp(x)  # noqa: E501\n"
    '        s = np.cos(x) + len("""a\n'
    '        b""") + \\\n'
    "            np.tan(x)\n"
    "        return np.clip(\n"
    "            y + z + s, 0.0, 1.0)\n"
)


def notebook():
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
             "source": ["%matplotlib inline\n", "import numpy as np\n", "import keras\n"]},
            {"cell_type": "code", "execution_count": 3, "metadata": {"tags": ["x"]}, "outputs": [],
             "source": ["!pip install keras\n", "class L(keras.layers.Layer):\n", "    def call(self, x):\n",
                        "        return np.exp(x)"]},
        ],
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_add_noqa_py_and_notebook_then_clean(tmp_path):
    (tmp_path / "h.py").write_text(HAZARD)
    nb_text = json.dumps(notebook(), indent=1)
    (tmp_path / "n.ipynb").write_text(nb_text)
    before = json.loads(run("--format", "json", cwd=tmp_path).stdout)
    assert {f["path"] for f in before} == {"h.py", "n.ipynb"}

    r = run("--add-noqa", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Added 5 noqa directives.\n"  # np.cos and np.tan share the last line
    text = (tmp_path / "h.py").read_text()
    compile(text, "h.py", "exec")
    assert "np.sin(x)  # keraslint: ignore[KL302, KL301]\n" in text
    assert "np.exp(x)  # noqa: E501  # keraslint: ignore[KL301]\n" in text
    assert "np.tan(x)  # keraslint: ignore[KL301]\n" in text  # not inside the string, not after the backslash
    assert "np.clip(  # keraslint: ignore[KL301]\n" in text
    assert '"""a\n        b""")' in text
    # np.cos on a line that ends inside a string: directive on the statement's last line
    assert "KL301 starts and ends on lines inside a string" in r.stderr

    nb = json.loads((tmp_path / "n.ipynb").read_text())
    assert nb["cells"][2]["source"] == ["!pip install keras\n", "class L(keras.layers.Layer):\n",
                                        "    def call(self, x):\n",
                                        "        return np.exp(x)  # keraslint: ignore[KL301]"]
    expected = notebook()
    expected["cells"][2]["source"][-1] += "  # keraslint: ignore[KL301]"
    assert (tmp_path / "n.ipynb").read_text() == json.dumps(expected, indent=1)  # only that string changed

    again = run("--add-noqa", cwd=tmp_path)
    assert again.stdout == "Added 0 noqa directives.\n"
    after = json.loads(run("--format", "json", cwd=tmp_path).stdout)
    # everything is suppressed except the one the engine cannot see yet (statement's last line)
    assert [(f["path"], f["line"], f["code"]) for f in after] == [("h.py", 9, "KL301")]


def test_add_noqa_usage_errors_and_read_only_file(tmp_path):
    (tmp_path / "h.py").write_text(HAZARD)
    for flag in ("--fix", "--diff", "--statistics"):
        r = run("--add-noqa", flag, cwd=tmp_path)
        assert r.returncode == 2 and f"--add-noqa cannot be combined with {flag}" in r.stderr
    if os.geteuid() != 0:
        os.chmod(tmp_path / "h.py", 0o444)
        r = run("--add-noqa", cwd=tmp_path)
        assert r.returncode == 2 and "h.py" in r.stderr
        assert (tmp_path / "h.py").read_text() == HAZARD


# -- keras + keras-hub --------------------------------------------------------------------------------


@pytest.mark.slow
def test_add_noqa_on_keras_and_keras_hub(tmp_path):
    import importlib.util

    roots = []
    for name in ("keras", "keras_hub"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{name} is not installed")
        roots.append((name, list(spec.submodule_search_locations)[0]))
    tree = tmp_path / "tree"
    for name, root in roots:
        shutil.copytree(root, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    files = [os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs if f.endswith((".py", ".ipynb"))]
    t = time.perf_counter()
    r = run("--select", "ALL", "--strict", "--add-noqa", ".", cwd=tree)
    took = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    added = int(r.stdout.split()[1])
    print(f"\n--add-noqa on keras + keras_hub: {len(files)} files, {added} directives, {took:.1f} s")
    assert added > 0
    for f in files:
        if f.endswith(".py"):
            with open(f, "rb") as fh:
                compile(fh.read(), f, "exec", dont_inherit=True)  # every file still compiles
    again = run("--select", "ALL", "--strict", "--add-noqa", ".", cwd=tree)
    assert again.stdout == "Added 0 noqa directives.\n", again.stderr[-2000:]
    final = run("--select", "ALL", "--strict", "--format", "json", ".", cwd=tree)
    assert final.returncode == 0 and json.loads(final.stdout) == [], final.stdout[:2000]
