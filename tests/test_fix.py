"""The fixer's machinery (keraslint/fixer.py), tested with small rules defined here so that
it does not depend on which built-in rules have fixes: node-identity edits, imports,
argument and statement removal, insertion, rounds, dropped fixes, suppression,
encodings, notebooks, diffs and atomic writes."""

import codecs
import json
import os
import stat
import textwrap

import libcst as cst
import pytest

from keraslint import cli, engine, fixer, registry
from keraslint.rule import AddImport, Finding, Fix, InsertStatements, Replace, Rule


# ---------------------------------------------------------------------------
# Toy rules (codes KL98x are not in the catalog)
# ---------------------------------------------------------------------------


class ToySin(Rule):
    """np.sin(...) -> keras.ops.sin(...) by replacing the function name (safe)."""

    code = "KL981"
    name = "toy-sin"
    severity = "error"
    fix_applicability = "safe"
    tokens = ("sin",)

    def visit_Call(self, node):
        if self.ctx.resolve(node.func) == "numpy.sin":
            self.report(node, "np.sin", fix=Fix.safe(Replace(node.func, cst.parse_expression("keras.ops.sin")),
                                                     AddImport("keras")))


class ToyCos(Rule):
    """np.cos(...) -> ops.cos(...) by replacing the whole call (nested calls overlap)."""

    code = "KL982"
    name = "toy-cos"
    severity = "error"
    fix_applicability = "safe"
    tokens = None

    def visit_Call(self, node):
        if self.ctx.resolve(node.func) == "numpy.cos":
            new = node.with_changes(func=cst.parse_expression("ops.cos"))
            self.report(node, f"np.cos {len(self.reports)}", fix=Fix.safe(Replace(node, new), AddImport("keras", "ops")))


class ToyBatchSize(Rule):
    """Drop batch_size= from .fit(...) (safe)."""

    code = "KL983"
    name = "toy-batch-size"
    severity = "warning"
    fix_applicability = "safe"
    tokens = None

    def visit_Call(self, node):
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "fit":
            for a in node.args:
                if a.keyword is not None and a.keyword.value == "batch_size":
                    self.report(a, "batch_size", fix=Fix.safe(Replace(a, None)))


class ToySeed(Rule):
    """np.random.seed(n) statement -> removed, keras.utils.set_random_seed(n) after the imports (unsafe)."""

    code = "KL984"
    name = "toy-seed"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = None

    def visit_Call(self, node):
        if self.ctx.resolve(node.func) == "numpy.random.seed":
            stmt = next(s for s in reversed(self.ctx.stack) if isinstance(s, cst.SimpleStatementLine))
            seed = cst.Module([]).code_for_node(node.args[0].value)
            self.report(node, "seed", fix=Fix.unsafe(Replace(stmt, None),
                                                     InsertStatements(f"keras.utils.set_random_seed({seed})\n"),
                                                     AddImport("keras")))


class ToyBroken(Rule):
    """np.tan(x) -> `yield x`: the fixed file would not compile; the fixer must drop it."""

    code = "KL985"
    name = "toy-broken"
    severity = "error"
    fix_applicability = "safe"
    tokens = None

    def visit_Call(self, node):
        if self.ctx.resolve(node.func) == "numpy.tan":
            self.report(node, "tan", fix=Fix.safe(Replace(node, "yield 1")))


class ToyStuck(Rule):
    """A fix that never makes its finding go away: inserted once, then no more."""

    code = "KL986"
    name = "toy-stuck"
    severity = "info"
    fix_applicability = "safe"
    tokens = None

    def visit_Call(self, node):
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            self.report(node, "stuck", fix=Fix.safe(InsertStatements("STUCK = 1\n")))


class ToyBefore(Rule):
    """Insert a statement before the statement holding `build()` (unsafe)."""

    code = "KL987"
    name = "toy-before"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = None

    def visit_Call(self, node):
        if isinstance(node.func, cst.Name) and node.func.value == "build" and "SEEDED" not in self.ctx.imports:
            if any(isinstance(s, cst.Assign) and isinstance(s.targets[0].target, cst.Name)
                   and s.targets[0].target.value == "SEEDED" for s in self._assigns()):
                return
            self.report(node, "before", fix=Fix.unsafe(InsertStatements("SEEDED = True\n", anchor=node, after=False)))

    def _assigns(self):
        for s in self.ctx.module.body:
            if isinstance(s, cst.SimpleStatementLine):
                yield from s.body


TOYS = [ToySin, ToyCos, ToyBatchSize, ToySeed, ToyBroken, ToyStuck, ToyBefore]


def fix(text, rules=TOYS, unsafe=False, path="m.py", data=None):
    src = engine.read_source(path, data=data if data is not None else text.encode("utf-8"))
    assert not isinstance(src, Finding), src
    return fixer.fix_source(src, rules, None, unsafe=unsafe, severity=None, gate=True)


def fixed_text(text, **kw):
    r = fix(text, **kw)
    return r.new_bytes.decode("utf-8") if r.new_bytes is not None else text


def D(s):
    return textwrap.dedent(s)


# ---------------------------------------------------------------------------
# Edits
# ---------------------------------------------------------------------------


def test_replace_keeps_everything_outside_the_node():
    src = D('''\
        """Module doc."""
        import numpy as np   # numpy!
        import keras


        def f(x):
            # a comment
            y = np.sin( x )  # trailing comment
            return  y * 2 ;



        z = 'single quotes'
        ''')
    r = fix(src)
    new = r.new_bytes.decode()
    assert new == src.replace("np.sin( x )", "keras.ops.sin( x )")
    assert r.applied == 1 and r.findings == []


def test_add_import_once_after_last_import_in_file_style():
    src = D('''\
        import numpy as np
        from keras import layers


        def f(x):
            return np.cos(np.sin(x)) + np.sin(x)
        ''')
    new = fixed_text(src)
    assert new == D('''\
        import numpy as np
        from keras import layers
        import keras
        from keras import ops


        def f(x):
            return ops.cos(keras.ops.sin(x)) + keras.ops.sin(x)
        ''')
    assert fixed_text(new) == new


def test_existing_import_is_not_duplicated():
    src = "import keras.ops\nimport numpy as np\nfrom keras import ops\n\nnp.sin(1)\nnp.cos(2)\n"
    assert fixed_text(src) == src.replace("np.sin", "keras.ops.sin").replace("np.cos", "ops.cos")


def test_import_that_would_rebind_a_name_is_dropped():
    # `keras` is tf.keras here: adding `import keras` would change what the file uses.
    src = "from tensorflow import keras\nimport numpy as np\n\nnp.sin(1)\n"
    r = fix(src)
    assert r.new_bytes is None
    assert [f.code for f in r.findings] == ["KL981"]
    assert any("already names" in why for _, why in r.dropped)


def test_remove_argument_keeps_comma_style():
    src = D('''\
        model.fit(x, y, epochs=3, batch_size=32)
        model.fit(x, batch_size=32, y=y)
        model.fit(batch_size=32)
        model.fit(
            x,
            y,
            batch_size=32,
        )
        model.fit(
            x,
            batch_size=32,  # why
            epochs=2,
        )
        ''')
    assert fixed_text(src) == D('''\
        model.fit(x, y, epochs=3)
        model.fit(x, y=y)
        model.fit()
        model.fit(
            x,
            y,
        )
        model.fit(
            x,
            epochs=2,
        )
        ''')


def test_statement_removal_and_insert_after_imports():
    src = D('''\
        """Train."""
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import numpy as np

        # seed numpy
        np.random.seed(42)
        model = build()
        ''')
    new = fixed_text(src, rules=[ToySeed], unsafe=True)
    assert new == D('''\
        """Train."""
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import numpy as np
        import keras

        keras.utils.set_random_seed(42)

        # seed numpy
        model = build()
        ''')
    assert fix(new, rules=[ToySeed], unsafe=True).new_bytes is None


def test_emptied_block_gets_pass():
    src = "import numpy as np\n\n\ndef seed():\n    np.random.seed(1)\n"
    new = fixed_text(src, rules=[ToySeed], unsafe=True)
    assert new == "import numpy as np\nimport keras\n\nkeras.utils.set_random_seed(1)\n\n\ndef seed():\n    pass\n"


def test_insert_in_file_without_imports_or_after_docstring():
    src = '"""Doc."""\n\n\ndef f():\n    np.random.seed(3)\n'
    # np is unresolved: nothing to do
    assert fix(src, rules=[ToySeed], unsafe=True).new_bytes is None
    src = '"""Doc."""\nfrom numpy import random\n\n\nclass A:\n    random.seed(3)\n'
    new = fixed_text(src, rules=[ToySeed], unsafe=True)
    assert new == ('"""Doc."""\nfrom numpy import random\nimport keras\n\nkeras.utils.set_random_seed(3)\n\n\n'
                   'class A:\n    pass\n')


def test_insert_before_anchor_keeps_attached_comment():
    src = "x = 1\n\n# the model\nmodel = build()\n"
    new = fixed_text(src, rules=[ToyBefore], unsafe=True)
    assert new == "x = 1\n\nSEEDED = True\n# the model\nmodel = build()\n"


def test_unsafe_fixes_need_the_flag():
    src = "import numpy as np\nnp.random.seed(0)\n"
    r = fix(src, rules=[ToySeed], unsafe=False)
    assert r.new_bytes is None and r.applied == 0
    assert [(f.code, f.fix) for f in r.findings] == [("KL984", "unsafe")]
    r = fix(src, rules=[ToySeed], unsafe=True)
    assert r.new_bytes is not None and r.findings == []


def test_suppressed_findings_are_not_fixed():
    src = "import numpy as np\na = np.sin(1)  # noqa: KL981\nb = np.sin(2)  # keraslint: ignore[KL9]\nc = np.sin(3)\n"
    assert fixed_text(src, rules=[ToySin]) == src.replace("np.sin(3)", "keras.ops.sin(3)").replace(
        "import numpy as np\n", "import numpy as np\nimport keras\n")


def test_overlapping_fixes_compose_over_rounds():
    src = "import numpy as np\nfrom keras import ops\n\ny = np.cos(np.cos(np.cos(1)))\n"
    r = fix(src, rules=[ToyCos])
    assert r.new_bytes.decode() == src.replace("np.cos", "ops.cos")
    assert r.applied == 3 and r.rounds == 3 and r.findings == []


def test_broken_fix_is_dropped_and_others_applied():
    src = "import numpy as np\n\na = np.tan(1)\nb = np.sin(1)\n"
    r = fix(src, rules=[ToyBroken, ToySin])
    new = r.new_bytes.decode()
    assert new == "import numpy as np\nimport keras\n\na = np.tan(1)\nb = keras.ops.sin(1)\n"
    assert [f.code for f in r.findings] == ["KL985"]
    assert any(code == "KL985" for code, _ in r.dropped)
    compile(new, "m.py", "exec")


def test_fix_that_does_not_remove_its_finding_is_applied_once():
    src = "import keras\n\nmodel.compile()\n"
    r = fix(src, rules=[ToyStuck])
    assert r.new_bytes.decode().count("STUCK = 1") == 1
    assert [f.code for f in r.findings] == ["KL986"]


def test_every_round_reparses_and_compiles():
    # A fix whose replacement needs parentheses gets them.
    class Paren(ToySin):
        code = "KL988"

        def visit_Call(self, node):
            if self.ctx.resolve(node.func) == "numpy.sin":
                self.report(node, "p", fix=Fix.safe(Replace(node, cst.parse_expression("a + b"))))

    src = "import numpy as np\nc = np.sin(x) * 2\nd = np.sin(x).T\ne = f(np.sin(x))\n"
    assert fixed_text(src, rules=[Paren]) == "import numpy as np\nc = (a + b) * 2\nd = (a + b).T\ne = f(a + b)\n"


# ---------------------------------------------------------------------------
# Encodings and newlines
# ---------------------------------------------------------------------------


def test_crlf_and_bom_are_kept():
    text = "import numpy as np\r\n\r\n\r\ndef f(x):\r\n    return np.cos(x)\r\n"
    data = codecs.BOM_UTF8 + text.encode()
    r = fix(None, data=data)
    assert r.new_bytes.startswith(codecs.BOM_UTF8)
    body = r.new_bytes[3:].decode()
    assert body == "import numpy as np\r\nfrom keras import ops\r\n\r\n\r\ndef f(x):\r\n    return ops.cos(x)\r\n"


def test_declared_encoding_is_kept():
    text = "# -*- coding: latin-1 -*-\nimport numpy as np\nname = 'Müller'\nnp.sin(1)\n"
    r = fix(None, data=text.encode("latin-1"))
    assert r.new_bytes == text.replace("np.sin", "keras.ops.sin").replace(
        "import numpy as np\n", "import numpy as np\nimport keras\n").encode("latin-1")


# ---------------------------------------------------------------------------
# Notebooks
# ---------------------------------------------------------------------------

NB = (
    '{\n'
    '   "cells": [\n'
    '      {\n'
    '         "cell_type": "markdown",\n'
    '         "metadata": {},\n'
    '         "source": ["# Título ünïcode"]\n'
    '      },\n'
    '      {\n'
    '         "cell_type": "code",\n'
    '         "execution_count": 1,\n'
    '         "metadata": {"collapsed": true},\n'
    '         "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\\n"]}],\n'
    '         "source": [\n'
    '            "%matplotlib inline\\n",\n'
    '            "import numpy as np\\n",\n'
    '            "import keras"\n'
    '         ]\n'
    '      },\n'
    '      {\n'
    '         "cell_type": "code",\n'
    '         "execution_count": 2,\n'
    '         "metadata": {},\n'
    '         "outputs": [\n'
    '            {"data": {"image/png": "iVBORw0KGgo="}, "metadata": {}, "output_type": "display_data"}\n'
    '         ],\n'
    '         "source": [\n'
    '            "!pip install foo\\n",\n'
    '            "def f(x):\\n",\n'
    '            "    y = np.sin(x)   # keep\\n",\n'
    '            "    %time z = 1\\n",\n'
    '            "    return y"\n'
    '         ]\n'
    '      },\n'
    '      {\n'
    '         "cell_type": "code",\n'
    '         "execution_count": null,\n'
    '         "metadata": {},\n'
    '         "outputs": [],\n'
    '         "source": "print(np.sin(2))"\n'
    '      }\n'
    '   ],\n'
    '   "metadata": {"kernelspec": {"language": "python", "name": "python3"}, "zeta": 1, "alpha": 2},\n'
    '   "nbformat": 4,\n'
    '   "nbformat_minor": 5\n'
    '}'
)


def test_notebook_changed_cells_only_layout_kept():
    r = fix(None, path="nb.ipynb", data=NB.encode("utf-8"))
    new = r.new_bytes.decode("utf-8")
    expected = NB.replace('"    y = np.sin(x)   # keep\\n"', '"    y = keras.ops.sin(x)   # keep\\n"').replace(
        '"source": "print(np.sin(2))"', '"source": "print(keras.ops.sin(2))"')
    assert new == expected  # byte-identical outside the changed cells (no trailing newline either)
    assert r.findings == []
    json.loads(new)
    # fixed once for all
    again = fix(None, path="nb.ipynb", data=r.new_bytes)
    assert again.new_bytes is None


def test_notebook_new_import_goes_into_the_first_code_cell():
    nb = json.loads(NB)
    nb["cells"][1]["source"] = ["%matplotlib inline\n", "import numpy as np"]
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    r = fix(None, path="nb.ipynb", data=text.encode())
    new = json.loads(r.new_bytes)
    assert new["cells"][1]["source"] == ["%matplotlib inline\n", "import numpy as np\n", "import keras"]
    assert new["cells"][2]["source"][2] == "    y = keras.ops.sin(x)   # keep\n"
    assert new["cells"][2]["source"][3] == "    %time z = 1\n"
    assert new["cells"][0] == nb["cells"][0] and new["metadata"] == nb["metadata"]
    assert r.new_bytes.decode().endswith("}\n")
    assert r.new_bytes.decode() == json.dumps(new, indent=1, ensure_ascii=False) + "\n"


def test_notebook_diff_names_cells():
    src = engine.read_source("nb.ipynb", data=NB.encode())
    r = fixer.fix_source(src, TOYS, None, unsafe=False, severity=None, gate=True)
    d = fixer.unified_diff(engine.read_source("nb.ipynb", data=NB.encode()), r.new_bytes)
    assert "--- a/nb.ipynb (cell 3)\n+++ b/nb.ipynb (cell 3)\n" in d
    assert "-    y = np.sin(x)   # keep\n+    y = keras.ops.sin(x)   # keep\n" in d
    assert "(cell 4)" in d and "(cell 2)" not in d


def test_python_diff_format():
    src_text = "import numpy as np\nimport keras\nnp.sin(1)\n"
    src = engine.read_source("pkg/m.py", data=src_text.encode())
    r = fixer.fix_source(src, TOYS, None, unsafe=False, severity=None, gate=True)
    d = fixer.unified_diff(src, r.new_bytes)
    assert d.startswith("--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ ")
    assert "-np.sin(1)\n+keras.ops.sin(1)\n" in d


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def test_write_atomic_keeps_mode(tmp_path):
    p = tmp_path / "m.py"
    p.write_bytes(b"old\n")
    os.chmod(p, 0o751)
    fixer.write_atomic(str(p), b"new\n", expected=b"old\n")
    assert p.read_bytes() == b"new\n"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o751
    assert sorted(os.listdir(tmp_path)) == ["m.py"]


def test_write_atomic_updates_symlink_target(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "m.py"
    target.write_bytes(b"old\n")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    fixer.write_atomic(str(link), b"new\n", expected=b"old\n")
    assert os.path.islink(link)
    assert target.read_bytes() == b"new\n"
    assert sorted(os.listdir(real)) == ["m.py"]


def test_write_atomic_refuses_file_changed_on_disk(tmp_path):
    p = tmp_path / "m.py"
    p.write_bytes(b"edited meanwhile\n")
    with pytest.raises(OSError, match="changed on disk"):
        fixer.write_atomic(str(p), b"new\n", expected=b"old\n")
    assert p.read_bytes() == b"edited meanwhile\n"


def test_rename_failure_leaves_original_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "m.py"
    p.write_bytes(b"old\n")

    def boom(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        fixer.write_atomic(str(p), b"new\n", expected=b"old\n")
    assert p.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["m.py"]


def test_read_only_file_raises(tmp_path):
    p = tmp_path / "m.py"
    p.write_bytes(b"old\n")
    os.chmod(p, 0o444)
    with pytest.raises(OSError, match="read-only"):
        fixer.write_atomic(str(p), b"new\n", expected=b"old\n")
    assert p.read_bytes() == b"old\n"


# -- through the CLI, with the toy rules registered ------------------------------------------


@pytest.fixture
def toy_cli(monkeypatch):
    monkeypatch.setattr(registry, "all_rules", lambda: tuple(TOYS))
    monkeypatch.delenv("KERASLINT_CACHE_DIR", raising=False)

    def run(*args):
        return cli.main(["check", "-j", "1", "--no-cache", *args])

    return run


HAZARD = "import numpy as np\nimport keras\n\nprint(np.sin(1))\n"


def test_cli_fix_writes_and_reports(tmp_path, toy_cli, capsys):
    p = tmp_path / "m.py"
    p.write_text(HAZARD)
    assert toy_cli("--fix", str(p)) == 0
    assert p.read_text() == HAZARD.replace("np.sin", "keras.ops.sin")
    assert "Fixed 1" in capsys.readouterr().out


def test_cli_diff_writes_nothing(tmp_path, toy_cli, capsys):
    p = tmp_path / "m.py"
    p.write_text(HAZARD)
    assert toy_cli("--diff", str(p)) == 1
    out = capsys.readouterr().out
    assert "+print(keras.ops.sin(1))" in out
    assert p.read_text() == HAZARD


def test_cli_read_only_file_exit_2_one_line(tmp_path, toy_cli, capsys):
    p = tmp_path / "m.py"
    p.write_text(HAZARD)
    os.chmod(p, 0o444)
    assert toy_cli("--fix", str(p)) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "read-only" in err[0] and "left as it was" in err[0], err
    assert p.read_text() == HAZARD


def test_cli_rename_failure_exit_2(tmp_path, toy_cli, capsys, monkeypatch):
    p = tmp_path / "m.py"
    p.write_text(HAZARD)
    real_replace = os.replace

    def boom(a, b):
        if str(b).endswith("m.py"):
            raise OSError(5, "Input/output error")
        return real_replace(a, b)

    monkeypatch.setattr(os, "replace", boom)
    assert toy_cli("--fix", str(p)) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Input/output error" in err[0], err
    assert p.read_text() == HAZARD
    assert os.listdir(tmp_path) == ["m.py"]


def test_cli_fixes_symlinked_file(tmp_path, toy_cli):
    (tmp_path / "src").mkdir()
    target = tmp_path / "src" / "m.py"
    target.write_text(HAZARD)
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert toy_cli("--fix", str(link)) == 0
    assert link.is_symlink()
    assert target.read_text() == HAZARD.replace("np.sin", "keras.ops.sin")


def test_cli_notebook_fix(tmp_path, toy_cli):
    p = tmp_path / "nb.ipynb"
    p.write_bytes(NB.encode())
    assert toy_cli("--fix", str(p)) == 0
    assert b"keras.ops.sin(x)" in p.read_bytes()
    assert b'"image/png": "iVBORw0KGgo="' in p.read_bytes()


def test_cli_unwritable_file_reports_its_own_findings(tmp_path, toy_cli, capsys):
    p = tmp_path / "m.py"
    p.write_text(HAZARD)
    os.chmod(p, 0o444)
    assert toy_cli("--fix", "--format", "json", str(p)) == 2
    out = json.loads(capsys.readouterr().out)
    assert [(f["code"], f["line"], f["column"], f["fix"]) for f in out] == [("KL981", 4, 7, {"applicability": "safe"})]


# ---------------------------------------------------------------------------
# Real code: --fix --unsafe-fixes over a copy of the installed keras + keras-hub sources
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_fix_real_sources_still_compile(tmp_path):
    import shutil
    import subprocess
    import sys

    import importlib.util

    # Locate without importing: keras_hub is installed --no-deps (its tokenizers need `regex`).
    roots = [os.path.join(os.path.dirname(importlib.util.find_spec(m).origin), "src") for m in ("keras", "keras_hub")]
    copies = []
    for i, r in enumerate(roots):
        dst = tmp_path / f"src{i}"
        shutil.copytree(r, dst, ignore=shutil.ignore_patterns("__pycache__"))
        copies.append(dst)
    before = {}
    for d in copies:
        for dirpath, _, names in os.walk(d):
            for n in names:
                if n.endswith(".py"):
                    p = os.path.join(dirpath, n)
                    with open(p, "rb") as fh:
                        before[p] = fh.read()
    env = {k: v for k, v in os.environ.items() if k != "KERASLINT_CACHE_DIR"}
    cmd = [sys.executable, "-m", "keraslint", "check", "--no-cache", "--fix", "--unsafe-fixes", "--exit-zero",
           "--format", "json", *map(str, copies)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    changed = {}
    for p, old in before.items():
        with open(p, "rb") as fh:
            new = fh.read()
        if new != old:
            changed[p] = new
            text = new.decode("utf-8")
            compile(text, p, "exec")
            cst.parse_module(text)
    print(f"{len(changed)} of {len(before)} files changed")
    # fixing again changes nothing
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    moved = []
    for p, old in before.items():
        with open(p, "rb") as fh:
            now = fh.read()
        if now != changed.get(p, old):
            moved.append(p)
    assert not moved, f"a second --fix changed {len(moved)} files: {moved[:5]}"


def test_notebook_with_broken_cell_and_nbformat3():
    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["import numpy as np\n", "import keras\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": ["def f(:\n", "    np.sin(1)\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": ["np.sin(2)\r\n", "x = 1"]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 2}
    text = json.dumps(nb, indent=2)
    r = fix(None, path="nb.ipynb", data=text.encode())
    new = json.loads(r.new_bytes)
    assert new["cells"][1] == nb["cells"][1]
    assert new["cells"][2]["source"] == ["keras.ops.sin(2)\r\n", "x = 1"]
    assert [(f.code, f.cell) for f in r.findings] == [("KL000", 2)]
    assert r.new_bytes.decode() == text.replace('"np.sin(2)\\r\\n"', '"keras.ops.sin(2)\\r\\n"')

    nb3 = {"worksheets": [{"cells": [
        {"cell_type": "code", "language": "python", "input": ["import numpy as np\n", "import keras\n", "np.sin(1)"],
         "outputs": []}]}], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}
    text = json.dumps(nb3, indent=1, sort_keys=True) + "\n"
    r = fix(None, path="nb.ipynb", data=text.encode())
    assert r.new_bytes.decode() == text.replace('"np.sin(1)"', '"keras.ops.sin(1)"')


class ToyMove(Rule):
    """Move `SEED = ...` above the first `build()` statement (remove + insert the same code)."""

    code = "KL989"
    name = "toy-move"
    severity = "error"
    fix_applicability = "unsafe"
    tokens = None

    def finish(self):
        body = self.ctx.module.body
        builds = [s for s in body if "build()" in self.ctx.module.code_for_node(s.with_changes(leading_lines=()))]
        seeds = [s for s in body if self.ctx.module.code_for_node(s.with_changes(leading_lines=())).startswith("SEED")]
        if builds and seeds and body.index(seeds[0]) > body.index(builds[0]):
            s = seeds[0]
            code = cst.Module([]).code_for_node(s.with_changes(leading_lines=()))
            self.report(s, "move", fix=Fix.unsafe(Replace(s, None), InsertStatements(code, anchor=builds[0], after=False)))


def test_moved_statement_takes_its_comment_along():
    src = "import keras\n\n# the model\nmodel = build()\n\n# seed it\nSEED = 1  # why\nfit()\n"
    new = fixed_text(src, rules=[ToyMove], unsafe=True)
    assert new == "import keras\n\n# seed it\nSEED = 1  # why\n# the model\nmodel = build()\n\nfit()\n"


def test_rules_undoing_each_other_stop():
    class AtoB(ToySin):
        code = "KL990"

        def visit_Name(self, node):
            if node.value == "aaa":
                self.report(node, "a", fix=Fix.safe(Replace(node, cst.Name("bbb"))))

    class BtoA(ToySin):
        code = "KL991"

        def visit_Name(self, node):
            if node.value == "bbb":
                self.report(node, "b", fix=Fix.safe(Replace(node, cst.Name("aaa"))))

    r = fix("x = aaa\n", rules=[AtoB, BtoA])
    assert r.rounds < fixer.MAX_ROUNDS
    assert r.new_bytes in (b"x = bbb\n", None)


@pytest.mark.parametrize("style", [
    dict(indent=None),
    dict(indent=None, separators=(",", ":")),
    dict(indent="\t"),
    dict(indent=1, sort_keys=True),
    dict(indent=2, ensure_ascii=True),
    dict(indent=4, ensure_ascii=False),
], ids=["compact", "minified", "tabs", "sorted", "ascii", "unicode"])
def test_notebook_json_styles_are_kept(style):
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"b": 1, "a": [1, 2]},
          "cells": [
              {"cell_type": "code", "id": "x1", "metadata": {}, "execution_count": 3,
               "outputs": [{"output_type": "stream", "name": "stdout", "text": ["déjà vu\n"]}],
               "source": ["import numpy as np\n", "import keras\n", "# café\n", "y = np.sin(1)  # é"]},
              {"cell_type": "code", "id": "x2", "metadata": {}, "execution_count": None, "outputs": [], "source": []},
          ]}
    text = json.dumps(nb, **style) + "\n"
    r = fix(None, path="nb.ipynb", data=text.encode())
    nb["cells"][0]["source"][3] = "y = keras.ops.sin(1)  # é"
    assert r.new_bytes.decode() == json.dumps(nb, **style) + "\n"
