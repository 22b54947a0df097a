"""How a file reaches libcst safely, and the cross-module summaries' single parse.

libcst's native parser dies (SIGSEGV) on pathological nesting. The engine protects the
process it runs in: in-process (API, one file, the language server) CPython parses every
file first; in a pool worker, whose death the runner survives, a cheap screen sends only
suspicious files to CPython. A module summarized for the project view is parsed once by
CPython (summary + syntax verdict) and once by libcst.
"""

from __future__ import annotations

import os
import textwrap

import pytest

from keraslint import engine, project
from keraslint.api import check_paths, check_source

ORDINARY = textwrap.dedent(
    """\
    import keras
    from keras import layers

    def build(units):
        if units > 4:
            x = layers.Dense(units)
        elif units > 2:
            x = layers.Dense(2)
        else:
            x = None
        return keras.Sequential([layers.Input((4,)), x])
    """
)


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 150 + "]" * 150 + "\n",  # deep brackets (3,000 crash libcst)
        "x = " + "-" * 2500 + "1\n",  # a long line (unary chains)
        "if a:\n    pass\n" + "elif a:\n    pass\n" * 1001,  # thousands of elif
        "x = 1 \\\n" + "+ 1 \\\n" * 201 + "+ 1\n",  # backslash continuations
        "x = (1\n" + "+1\n" * 3001 + ")\n",  # a chain over thousands of lines
    ],
    ids=["brackets", "long-line", "elif", "backslashes", "many-lines"],
)
def test_screen_sends_suspicious_text_to_cpython(text):
    assert engine.needs_cpython_guard(text)


def test_screen_passes_ordinary_code():
    assert not engine.needs_cpython_guard(ORDINARY)
    with open(engine.__file__, encoding="utf-8") as fh:
        assert not engine.needs_cpython_guard(fh.read())


def test_guard_and_full_give_the_same_findings_on_the_fixtures():
    from keraslint.api import _classes

    root = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures")
    classes = _classes()
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                src = engine.read_source(os.path.join(dirpath, f))
                src2 = engine.read_source(os.path.join(dirpath, f))
                full = engine.analyze(src, classes, keep_tree=False, precheck=engine.FULL).findings
                guard = engine.analyze(src2, classes, keep_tree=False, precheck=engine.GUARD).findings
                assert full == guard, f
                n += 1
    assert n > 60


def test_syntax_error_position_is_cpythons_in_guard_mode():
    text = "import keras\nx = keras.layers.Dense(3\ny = 2\n"
    full = engine.analyze(engine.read_source("a.py", data=text.encode()), [], gate=False, precheck=engine.FULL)
    guard = engine.analyze(engine.read_source("a.py", data=text.encode()), [], gate=False, precheck=engine.GUARD)
    assert [f.code for f in full.findings] == ["KL000"]
    assert [(f.line, f.column, f.message) for f in full.findings] == [(f.line, f.column, f.message) for f in guard.findings]


def test_pool_survives_a_file_that_passes_the_screen_and_crashes_libcst(tmp_path):
    # 10,000 nested lambdas in 50 lines of 1,600 characters: no line, bracket nest, line
    # count or elif count the screen looks at, and libcst's native parser overflows its
    # stack (SIGSEGV). The worker dies; the run re-checks that chunk's files one by one
    # with CPython first: the culprit gets a KL000, every other file its own findings.
    bad = tmp_path / "generated.py"
    body = "\n".join("lambda: " * 200 for _ in range(50))
    bad.write_text("import keras\nx = (\n" + body + "\n1)\n")
    assert not engine.needs_cpython_guard(bad.read_text())
    deep = tmp_path / "deep.py"
    deep.write_text("import keras\nx = " + "[" * 3000 + "]" * 3000 + "\n")
    for i in range(4):
        (tmp_path / f"ok{i}.py").write_text(
            "import keras\nmodel = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile(loss='mse')\n"
            "model.fit(x, y)\n"
        )
    found = check_paths([str(tmp_path)], jobs=2)
    by_file: dict = {}
    for f in found:
        by_file.setdefault(os.path.basename(f.path), []).append(f)
    assert [f.code for f in by_file["generated.py"]] == ["KL000"]
    assert "nested too deeply" in by_file["generated.py"][0].message
    assert [f.code for f in by_file["deep.py"]] == ["KL000"]
    for i in range(4):
        assert [f.code for f in by_file[f"ok{i}.py"]] == ["KL101"], by_file


def test_in_process_check_never_gives_libcst_the_crashing_file():
    text = "import keras\nx = (\n" + "\n".join("lambda: " * 200 for _ in range(50)) + "\n1)\n"
    found = check_source(text, "generated.py")
    assert [f.code for f in found] == ["KL000"]


def test_summary_and_verdict_come_from_one_parse(tmp_path, monkeypatch):
    (tmp_path / "data.py").write_text(
        "import tensorflow as tf\n\ndef make(x):\n    return tf.data.Dataset.from_tensor_slices(x)\n"
    )
    (tmp_path / "broken.py").write_text("import keras\ndef f(:\n    pass\n")
    (tmp_path / "train.py").write_text(
        "import keras\nfrom data import make\nimport broken\n\nds = make([1, 2])\n"
        "model = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile(loss='mse')\nmodel.fit(ds)\n"
    )
    summ, verdict = project.summarize_for_check(str(tmp_path / "data.py"), None)
    assert summ["functions"]["make"]["returns"] and verdict == engine.Verdict(None)
    summ, verdict = project.summarize_for_check(str(tmp_path / "broken.py"), None)
    assert summ is None and verdict.error is not None and not verdict.fatal

    calls = {"cpython": 0, "summarize": 0}
    real_tree, real_summarize = engine.cpython_tree, project.summarize

    def counting(text):
        calls["cpython"] += 1
        return real_tree(text)

    def summarize(text):  # the lazy path: a second parse of a module
        calls["summarize"] += 1
        return real_summarize(text)

    monkeypatch.setattr(engine, "cpython_tree", counting)
    monkeypatch.setattr(project, "summarize", summarize)
    found = check_paths([str(tmp_path)], jobs=1)
    # three files, each parsed by CPython once: data.py and broken.py for their summaries
    # (whose verdicts the engine reuses), train.py by the engine's own pre-check
    assert calls == {"cpython": 3, "summarize": 0}
    codes = sorted((os.path.basename(f.path), f.code) for f in found)
    assert ("broken.py", "KL000") in codes
    assert ("train.py", "KL501") in codes
