"""Hostile notebooks: broken JSON, odd shapes, nbformat 3, other kernels, IPython syntax.
Each gives findings at the right cell and line, or one KL000, or nothing; never a crash."""

import json
import os
import subprocess
import sys

import pytest

from keraslint.api import check_source

HAZARD_CELL = ["class L(keras.layers.Layer):\n", "    def call(self, x):\n", "        return np.exp(x)\n"]
IMPORTS = ["import numpy as np\n", "import keras\n"]


def nb(cells, lang="python", nbformat=4, **meta):
    metadata = {"kernelspec": {"language": lang, "name": lang}} if lang else {}
    metadata.update(meta)
    return {"cells": cells, "metadata": metadata, "nbformat": nbformat, "nbformat_minor": 5}


def code(source, **extra):
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None, **extra}


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def check(obj_or_text, path="n.ipynb"):
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
    return check_source(text, path)


def locs(findings):
    return [(f.code, f.cell, f.line, f.column) for f in findings]


def only_kl000(findings, *words):
    assert [f.code for f in findings] == ["KL000"], locs(findings)
    for w in words:
        assert w in findings[0].message, findings[0].message
    return findings[0]


# -- broken files -------------------------------------------------------------------------

GOOD = json.dumps(nb([code(IMPORTS), code(HAZARD_CELL)]), indent=1)


@pytest.mark.parametrize("text,words", [
    ('{"cells": [], "metadata": {},}', ("invalid notebook JSON",)),
    ('{"cells": [1, 2,], "metadata": {}}', ("invalid notebook JSON",)),
    (GOOD[: len(GOOD) // 2], ("invalid notebook JSON",)),
    (GOOD[:1], ("invalid notebook JSON",)),
    ("", ("invalid notebook JSON",)),
    ("[]", ("top level",)),
    ('"cells"', ("top level",)),
    ("null", ("top level",)),
    ('{"metadata": {}}', ("cells",)),
    ('{"cells": {"a": 1}}', ("not a list",)),
    ('{"cells": "import keras"}', ("not a list",)),
    ('{"cells": null}', ("not a list",)),
])
def test_invalid_notebooks_are_one_kl000(text, words):
    only_kl000(check(text), *words)


def test_truncated_at_every_100_bytes():
    for cut in range(0, len(GOOD), 100):
        f = check(GOOD[:cut])
        assert [x.code for x in f] == ["KL000"], cut


def test_not_utf8_notebook_is_kl000():
    from keraslint import engine

    f = engine.read_source("n.ipynb", data=b'{"cells": [], "x": "\xff"}')
    assert f.code == "KL000" and "UTF-8" in f.message


def test_bom_notebook_is_read():
    from keraslint import engine
    from keraslint.api import _classes

    src = engine.read_source("n.ipynb", data=b"\xef\xbb\xbf" + GOOD.encode())
    assert locs(engine.analyze(src, _classes()).findings) == [("KL301", 2, 3, 16)]


# -- odd shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("cells", [
    [],
    [md("# only markdown")],
    [code([])],
    [code("")],
    [{"cell_type": "code"}],  # no source at all
    [{"cell_type": "code", "source": None}],
    [{"cell_type": "code", "source": 42}],
    [{"cell_type": "code", "source": [1, None, {"a": 1}]}],
    [{"cell_type": "raw", "source": "import numpy as np\nnp.exp(x)\n"}],
    [None, 1, "code", [], {"cell_type": None}],
    [{"source": "import keras\n"}],  # no cell_type
])
def test_empty_and_odd_cells_are_silent(cells):
    assert check(nb(cells)) == []


def test_source_as_string_or_list_gives_same_positions():
    as_list = nb([code(IMPORTS), md("text"), code(HAZARD_CELL)])
    as_str = nb([code("".join(IMPORTS)), md("text"), code("".join(HAZARD_CELL))])
    mixed = nb([code("".join(IMPORTS)), md(["te", "xt"]), code(HAZARD_CELL)])
    want = [("KL301", 3, 3, 16)]
    assert locs(check(as_list)) == locs(check(as_str)) == locs(check(mixed)) == want


def test_cell_without_trailing_newline_and_crlf_sources():
    cells = [code(["import numpy as np\r\n", "import keras"]), code(["class L(keras.layers.Layer):\r\n",
                                                                       "    def call(self, x):\r\n",
                                                                       "        return np.exp(x)"])]
    assert locs(check(nb(cells))) == [("KL301", 2, 3, 16)]


def test_empty_notebook_object():
    assert check("{}") and check("{}")[0].code == "KL000"
    assert check(nb([])) == []


# -- nbformat 3 ---------------------------------------------------------------------------

def test_nbformat3_worksheets_input():
    v3 = {
        "metadata": {"name": "old"},
        "nbformat": 3, "nbformat_minor": 0,
        "worksheets": [{"cells": [
            {"cell_type": "markdown", "source": "# title"},
            {"cell_type": "code", "language": "python", "input": IMPORTS, "outputs": []},
            {"cell_type": "code", "language": "python", "input": "".join(HAZARD_CELL), "outputs": []},
        ]}],
    }
    assert locs(check(v3)) == [("KL301", 3, 3, 16)]


@pytest.mark.parametrize("worksheets", [[], [{}], [None], [{"cells": None}], "x"])
def test_nbformat3_odd_worksheets(worksheets):
    f = check({"nbformat": 3, "metadata": {}, "worksheets": worksheets})
    assert f == [] or [x.code for x in f] == ["KL000"]


# -- other kernels ------------------------------------------------------------------------

@pytest.mark.parametrize("meta", [
    {"kernelspec": {"language": "R", "name": "ir"}},
    {"kernelspec": {"language": "julia", "name": "julia-1.9"}},
    {"language_info": {"name": "scala"}},
])
def test_non_python_kernels_are_skipped(meta):
    cells = [code(["library(keras)\n", "x <- np$exp(1)\n", "if (x) { print('{') }\n"])]  # not Python at all
    obj = {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}
    assert check(obj) == []


def test_odd_kernel_metadata_is_treated_as_python():
    for meta in ({"kernelspec": None}, {"kernelspec": {"language": 3}}, {"language_info": []}, []):
        obj = {"cells": [code(IMPORTS), code(HAZARD_CELL)], "metadata": meta, "nbformat": 4}
        assert locs(check(obj)) == [("KL301", 2, 3, 16)], meta


# -- IPython syntax keeps positions ----------------------------------------------------------

MAGICS = [
    "%matplotlib inline\n",
    "!pip install keras\n",
    "files = !ls\n",
    "np?\n",
    "np.exp??\n",
    "%time x = 1\n",
    "%load_ext autoreload\n",
]


def test_hazard_in_cell_3_after_magics():
    cells = [
        code(["%matplotlib inline\n", "!pip install -q keras\n"] + IMPORTS + ["x = !ls\n", "np?\n"]),
        code(["%%bash\n", "echo 'not python ((('\n", "for i in 1 2; do echo $i; done\n"]),
        code(MAGICS + HAZARD_CELL + ["%time y = 1\n"]),
    ]
    got = locs(check(nb(cells)))
    assert got == [("KL301", 3, len(MAGICS) + 3, 16)], got


def test_line_magic_inside_function_body_and_cell_magic_python():
    cells = [
        code(IMPORTS),
        code(["%%time\n", "class L(keras.layers.Layer):\n", "    def call(self, x):\n", "        %time pass\n",
              "        return np.exp(x)\n"]),
    ]
    assert locs(check(nb(cells))) == [("KL301", 2, 5, 16)]


def test_broken_cell_is_kl000_and_other_cells_still_checked():
    cells = [code(IMPORTS), code(["def broken(:\n"]), code(HAZARD_CELL), code(["x = (\n"])]
    got = sorted(locs(check(nb(cells))), key=lambda t: t[1])
    assert [(c, cell) for c, cell, _, _ in got] == [("KL000", 2), ("KL301", 3), ("KL000", 4)], got


def test_every_cell_broken():
    cells = [code(["def (:\n"]) for _ in range(5)]
    got = check(nb(cells))
    assert got and {f.code for f in got} == {"KL000"}


def test_marker_text_inside_a_cell_does_not_confuse_positions():
    cells = [code(IMPORTS + ["# %% keraslint-cell 7\n"]), code(["s = '''\n", "# %% keraslint-cell 1\n", "'''\n"]),
             code(HAZARD_CELL)]
    assert locs(check(nb(cells))) == [("KL301", 3, 3, 16)]


def test_cli_on_a_folder_of_broken_notebooks(tmp_path):
    (tmp_path / "a.ipynb").write_text('{"cells": [],}')
    (tmp_path / "b.ipynb").write_text(GOOD)
    (tmp_path / "c.ipynb").write_text(json.dumps(nb([code(["library(x)\n"])], lang="R")))
    (tmp_path / "d.ipynb").write_bytes(b"\x00\x01\x02")
    (tmp_path / "e.ipynb").write_text("")
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", "--no-cache", "--format", "json", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr == "", r.stderr
    got = sorted((os.path.basename(f["path"]), f["code"], f.get("cell")) for f in json.loads(r.stdout))
    assert got == [("a.ipynb", "KL000", None), ("b.ipynb", "KL301", 2), ("d.ipynb", "KL000", None),
                   ("e.ipynb", "KL000", None)]


def test_bash_cell_then_fix_keeps_cells():
    """A `%%bash` cell used to add one line to the combined module (the empty piece after
    its last newline became `#`), so every later cell's findings were one line off."""
    fixer = pytest.importorskip("keraslint.fixer", reason="keraslint/fixer.py does not exist yet")
    from keraslint import engine
    from keraslint.api import _classes

    bash = ["%%bash\n", "echo 'not python ((('\n"]
    hazard = [ln.replace("np.exp", "np.abs") for ln in HAZARD_CELL]
    obj = nb([code(IMPORTS), code(bash), code(hazard)])
    assert locs(check(obj)) == [("KL301", 3, 3, 16)]
    text = json.dumps(obj, indent=1)
    res = fixer.fix_source(engine.read_source("n.ipynb", data=text.encode()), _classes())
    assert res.new_bytes is not None
    new = json.loads(res.new_bytes)
    assert new["cells"][1]["source"] == bash
    assert "".join(new["cells"][2]["source"]) == "".join(hazard).replace("np.abs", "keras.ops.abs")


# -- only a line that starts a logical line is IPython syntax (issue 13) ----------------------

def neutral(src):
    from keraslint import notebook

    cell = notebook.Cell(0, src, 2, src.count("\n"))
    text = notebook._neutralize(cell)
    assert text.count("\n") == src.count("\n") + (0 if src.endswith("\n") else 1), (src, text)
    return text, cell.magic_lines


@pytest.mark.parametrize("src", [
    'print("%d of %d" %\n      (1, 2))\n',  # `%` starting a continuation line in brackets: the operator
    'msg = ("%d items"\n       % 3)\n',
    's = """\n%not a magic\n!not shell\n"""\n',
    'total = 5 \\\n    % 3\n',  # backslash continuation: the operator again
])
def test_percent_inside_a_logical_line_is_python(src):
    text, magics = neutral(src)
    assert magics == {} and text == src, text
    compile(text, "<cell>", "exec")


@pytest.mark.parametrize("src,magic_lines", [
    ("!saved_model_cli show --dir '{p}' --tag_set serve \\\n      --signature_def serving_default\n", {0, 1}),
    ("!pip install \\\n   keras \\\n   tensorflow\nimport keras\n", {0, 1, 2}),
    ("%pip install \\\n  keras\n", {0, 1}),
    ("files = !ls \\\n   -la\n", {0, 1}),
    ("pip install -q keras-hub\nimport keras\n", {0}),
    ("cd ~/repo\nls *.py\nimport keras\n", {0, 1}),
    ("ls -la\n", set()),  # valid Python (ls - la)
    ("cd /content/repo\n", set()),  # valid Python (divisions): no syntax error to avoid
    ("import keras\nfor i in range(2):\n    !echo it's (( $i\n    print(i)\n", {2}),
    ("?keras.Model\n", {0}),
    ("??keras.Model.fit\n", {0}),
    ("keras.Model?\n", {0}),
    ("keras.Model.fit??\n", {0}),
    ("%%time\nx = 1\n", {0}),
    ('x = ("%d" %\n     3)\n!ls\n', {2}),
])
def test_ipython_syntax_at_a_logical_start(src, magic_lines):
    text, magics = neutral(src)
    assert set(magics) == magic_lines, (text, magics)
    compile(text, "<cell>", "exec")


@pytest.mark.parametrize("src", [
    "ls = [1, 2]\n",  # valid Python with a magic's name: Python
    "time = 3\nprint(time)\n",
    "run(1)\n",
    "env\n",
    "pwd\n",
])
def test_magic_names_in_valid_python_stay_python(src):
    text, magics = neutral(src)
    assert magics == {} and text == src


def test_foreign_cell_magic_ending_with_continuation_keeps_positions():
    text, magics = neutral("%%bash\necho a \\\n  b\n")
    assert text == "pass\n#\n#\n" and set(magics) == {0, 1, 2}
    text, magics = neutral("!echo a \\\n")
    assert text == "pass\n" and set(magics) == {0}


def test_unparsable_text_before_a_magic_falls_back_to_line_starts():
    # An inconsistent dedent makes tokenize fail: every `%`/`!` line start counts as IPython.
    text, magics = neutral("if x:\n        a = 1\n    b = 2\n%ls\n")
    assert set(magics) == {3}


def test_real_kl000_false_alarms_are_gone():
    """Patterns from real notebooks (Hands-on ML ch. 19, DLwP): each used to be a KL000."""
    cells = [
        code(IMPORTS),
        code(["!saved_model_cli show --dir '{model_path}' --tag_set serve \\\n",
              "                      --signature_def serving_default"]),
        code(['print("Epoch %d: %.3f" %\n', '      (1, 0.5))\n']),
        code(["pip install -q keras\n"]),
        code(["cd /tmp\n", "ls\n"]),
        code(HAZARD_CELL),
    ]
    assert locs(check(nb(cells))) == [("KL301", 6, 3, 16)]


def test_a_real_syntax_error_after_a_magic_is_still_kl000():
    cells = [code(IMPORTS), code(["!ls \\\n", "  -la\n", "x = (\n"]), code(["y\u00a0= 1\n"]), code(HAZARD_CELL)]
    got = sorted(locs(check(nb(cells))), key=lambda t: t[1])
    assert [(c, cell) for c, cell, _, _ in got] == [("KL000", 2), ("KL000", 3), ("KL301", 4)], got


def test_a_cell_with_a_common_leading_indent_runs_in_ipython():
    """IPython's ``leading_indent`` cleanup strips the first line's indent from every line
    starting with it (tf docs guide/data c177, guide/extension_type c80): no KL000, and a
    hazard in such a cell is still found at its line."""
    cells = [
        code(IMPORTS),
        code([" for x in range(3):\n", "   print(x, end=' ')\n"]),
        code(["\n", "  @staticmethod\n", "  def f(x):\n", "    return x\n"]),
        code(["\t\n", "  " + HAZARD_CELL[0]] + ["  " + ln for ln in HAZARD_CELL[1:]]),
    ]
    got = locs(check(nb(cells)))
    assert [(c, cell, line) for c, cell, line, _ in got] == [("KL301", 4, 4)], got
    text, _ = neutral("  a = 1\n\n  if a:\n    b = 2\n")
    assert text == "a = 1\n\nif a:\n  b = 2\n"


@pytest.mark.parametrize("src", [
    ["x = 1\n", "  y = 2\n"],  # the first line is not indented: nothing is stripped
    [" x = 1\n", "  y = 2\n"],  # the second line keeps one space more: still an IndentationError
    ["  x = 1\n", " y = 2\n"],  # a line indented less than the first: unindent mismatch
])
def test_leading_indent_near_misses_are_still_kl000(src):
    only_kl000(check(nb([code(src)])))


def test_syntax_error_message_counts_lines_in_the_cell():
    """CPython says "after function definition on line 73" in the combined module's lines;
    the finding says it in the cell's (t81_558 assignment template)."""
    import json as _json

    from keraslint.api import check_source as _check

    cells = [{"cell_type": "code", "source": "import keras\nx = 1\n", "metadata": {}, "outputs": [],
              "execution_count": None},
             {"cell_type": "code", "source": "y = 2\ndef f():\n# todo\n", "metadata": {}, "outputs": [],
              "execution_count": None}]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    found = _check(_json.dumps(nb), "n.ipynb")
    assert [(f.code, f.cell, f.line) for f in found] == [("KL000", 2, 3)]
    assert found[0].message.endswith("after function definition on line 2")
