"""Across the modules of a project (keraslint/project.py, issue 14): per-module summaries
with ``ast``, resolved through the project's imports, exposed to rules as ``ctx.project``,
cached by content hash; the fixture project fixtures/project_basic has findings that need
two modules."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import FIXTURES

from keraslint import project as P
from keraslint import runner

PROJECT = os.path.join(FIXTURES, "project_basic")
EXPECT = re.compile(r"#\s*expect:\s*(KL\d{3}(?:\s*,\s*KL\d{3})*)")
PENDING = re.compile(r"#\s*expect-pending:\s*(KL\d{3}(?:\s*,\s*KL\d{3})*)")


def _write(root, files):
    for name, text in files.items():
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(textwrap.dedent(text))


def _expected(folder, pattern):
    out = set()
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                m = pattern.search(line)
                if m:
                    out.update((name, i, c.strip()) for c in m.group(1).split(","))
    return out


def _cli(*args, cwd):
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", *args, "--format", "json", "--exit-zero"],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return {(os.path.basename(f["path"]), f["line"], f["code"]) for f in json.loads(r.stdout)}


@pytest.fixture()
def basic(tmp_path):
    """The fixture project copied out of the repo (whose config excludes fixtures/)."""
    d = tmp_path / "proj"
    shutil.copytree(PROJECT, d, ignore=shutil.ignore_patterns("__pycache__"))
    return d


# -- the fixture project -------------------------------------------------------------------

def test_fixture_project_findings_need_two_modules(basic):
    got = _cli(".", "--no-cache", cwd=basic)
    want = _expected(basic, EXPECT)
    pending = _expected(basic, PENDING)
    assert want <= got, f"missing: {sorted(want - got)}"
    assert got - want <= pending, f"unexpected: {sorted(got - want - pending)}"
    # each finding needs the other module: train.py alone in a folder of its own is silent
    alone = basic.parent / "alone"
    alone.mkdir()
    shutil.copy(basic / "train.py", alone / "train.py")
    assert {g for g in _cli(".", "--no-cache", cwd=alone) if g[2] in {c for _, _, c in want}} == set()


def test_one_file_still_reads_the_modules_it_imports(basic):
    got = _cli("train.py", "--no-cache", cwd=basic)
    assert {g for g in got if g[2] == "KL607"} == {("train.py", 23, "KL607")}


# -- summaries ---------------------------------------------------------------------------

def test_summaries_of_the_fixture_project(basic):
    view = P.Project(None).view(str(basic / "train.py"))
    assert view is not None
    banner = view.function("utils.seed_banner")
    assert banner is not None and not banner.seeds
    assert view.function("models.build_keras_model").returns == "model"
    net = view.klass("models.TorchNet")
    assert net.kind == "torch" and net.train_mode
    assert view.keras_class("models.KerasNet") == "model"
    assert view.keras_class("models.TorchNet") is None
    ds = view.function("data.make_dataset")
    assert ds.returns == "dataset" and ds.dataset_steps == ("from_tensor_slices", "shuffle", "map", "batch")
    assert view.function("data.augment").mapped
    assert view.function("numpy.random.seed") is None and view.function("data.nothing") is None
    other = P.Project(None).view(str(basic / "compare_eval.py"))
    ev = other.function("utils.seed_everything")
    assert ev.seeds and ev.seed_apis == ("keras.utils.set_random_seed", "numpy.random.seed", "random.seed")


def test_package_layout_relative_imports_and_reexports(tmp_path):
    _write(tmp_path, {
        "pyproject.toml": "[project]\nname = 'p'\n",
        "src/pkg/__init__.py": "from .seeding import seed_all\n",
        "src/pkg/seeding.py": """
            import tensorflow as tf
            from . import helpers
            def seed_all(s):
                helpers.numpy_seed(s)
                tf.random.set_seed(s)
        """,
        "src/pkg/helpers.py": "import numpy\ndef numpy_seed(s):\n    numpy.random.seed(s)\n",
        "src/pkg/data.py": """
            import tensorflow as tf
            from .seeding import seed_all as _unused
            def base():
                return tf.data.TFRecordDataset("x")
            def pipeline():
                ds = base().map(parse)
                ds = ds.shuffle(10)
                return ds.batch(8).prefetch(1)
            def parse(r):
                return r
        """,
        "src/pkg/train.py": """
            import pkg
            import pkg.data as data
            from pkg.helpers import numpy_seed
            from .models import Net
        """,
        "src/pkg/models.py": "import keras\nclass Base(keras.layers.Layer):\n    pass\nclass Net(Base):\n    pass\n",
    })
    view = P.Project(str(tmp_path)).view(str(tmp_path / "src/pkg/train.py"))
    assert view.function("pkg.seed_all").seed_apis == ("numpy.random.seed", "tensorflow.random.set_seed")
    d = view.function("pkg.data.pipeline")
    assert d.returns == "dataset" and d.dataset_steps == ("TFRecordDataset", "map", "shuffle", "batch", "prefetch")
    assert view.function("pkg.data.parse").mapped
    assert view.function("pkg.helpers.numpy_seed").seeds
    assert view.keras_class(".models.Net") == "layer"


def test_import_scan_without_a_parse():
    data = b"from a.b import (c,\n  d as e)\nimport x.y as z, w\nfrom . import m\n  from .q import r  # c\n"
    assert P.imported_names(data) == [("a.b", ["c", "d"]), ("x.y", []), ("w", []), (".", ["m"]), (".q", ["r"])]


def test_a_module_that_does_not_parse_has_no_summary(tmp_path):
    _write(tmp_path, {"broken.py": "def f(:\n", "main.py": "from broken import f\nfrom ok import g\n",
                      "ok.py": "def g():\n    return 1\n"})
    view = P.Project(None).view(str(tmp_path / "main.py"))
    assert view.function("broken.f") is None and view.function("ok.g") is not None


# -- ctx.project in rules, and the parity judge ----------------------------------------------

def test_ctx_project_is_none_without_a_run():
    from keraslint import engine
    from keraslint.rule import Rule

    seen = []

    class Probe(Rule):
        code, name, severity, fix_applicability = "KL998", "probe", "warning", None

        def finish(self):
            seen.append(self.ctx.project)

    engine.analyze(engine.Source("t.py", "import keras\n"), [Probe], gate=False)
    assert seen == [None]


def test_torch_optimizer_over_an_imported_keras_factory_is_no_port(tmp_path):
    """KL603 near-miss that needs two modules: the model trained by torch.optim comes from a
    Keras factory in models.py (Keras on the torch backend)."""
    _write(tmp_path, {
        "models.py": "import keras\ndef get_model():\n    return keras.Sequential([keras.layers.Dense(1)])\n",
        "loop.py": """
            import keras, torch
            from models import get_model
            model = get_model()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            keras_optimizer = keras.optimizers.Adam(learning_rate=1e-3)
        """,
    })
    assert _cli("loop.py", "--no-cache", "--select", "KL603", cwd=tmp_path) == set()
    (tmp_path / "models.py").write_text("import torch\nclass get_model(torch.nn.Module):\n    pass\n")
    assert {c for _, _, c in _cli("loop.py", "--no-cache", "--select", "KL603", cwd=tmp_path)} == {"KL603"}


# -- cache: a change to an imported module re-checks its importers, and nothing else ---------

def _run(root, cache):
    from keraslint import config as cfgmod

    cfg = cfgmod.load(str(root))
    files = sorted(str(p) for p in root.glob("*.py"))
    opts = runner.Options(cache_dir=str(cache), jobs=1)
    res = runner.run(files, cfg, opts, lambda p: tuple(sorted(cfg.enabled_codes(_all_codes()))))
    return res


def _all_codes():
    from keraslint.registry import rules_by_code

    return set(rules_by_code())


def test_cache_rechecks_importers_of_a_changed_module(basic, tmp_path):
    cache = tmp_path / "cache"
    first = _run(basic, cache)
    assert any(f.code == "KL607" for f in first.findings)
    again = _run(basic, cache)
    assert again.cache_hits == again.files_checked
    # TorchNet loses its dropout: models.py and its importers train.py and compare_eval.py are
    # checked again; data.py and utils.py come from the cache
    models = basic / "models.py"
    models.write_text(models.read_text().replace("torch.nn.Dropout(0.5)", "torch.nn.Identity()"))
    third = _run(basic, cache)
    assert third.cache_hits == third.files_checked - 3
    assert not any(f.code == "KL607" for f in third.findings)
    # utils.py changes: its importers train.py and compare_eval.py are checked again
    utils = basic / "utils.py"
    utils.write_text(utils.read_text() + "# a comment\n")
    fourth = _run(basic, cache)
    assert fourth.cache_hits == fourth.files_checked - 3
    # summaries are kept in the cache folder, keyed by content (made when a rule asks)
    assert list((cache / __import__("keraslint").__version__ / "summaries").rglob("*.json"))
    # a warm run reads no summary at all
    from keraslint import project as project_mod

    seen = []
    real = project_mod.set_views
    project_mod.set_views = lambda views: (seen.append(dict(views)), real(views))
    try:
        again = _run(basic, cache)
    finally:
        project_mod.set_views = real
    assert again.cache_hits == again.files_checked
    views = [v for batch in seen for v in batch.values()]
    # (no view at all when the project index answered: see the index test below)
    assert all(v.modules.store.parsed == 0 and not v.modules.store.by_file for v in views)
    assert project_mod.current(str(basic / "train.py")) is None  # the views end with the run


def test_cycles_odd_files_and_deep_nesting_never_break_a_view(tmp_path):
    _write(tmp_path, {
        "a.py": "from b import g\ndef f():\n    return g()\ndef s():\n    t()\ndef t():\n    s()\n",
        "b.py": "from a import f\ndef g():\n    return f()\n",
        "deep.py": "x = " + "[" * 5000 + "]" * 5000 + "\ndef h():\n    pass\n",
        "main.py": "from a import f, s\nfrom deep import h\nimport binary\nfrom missing import nothing\n",
    })
    (tmp_path / "binary.py").write_bytes(b"\xff\xfe\x00def x(): pass\n")
    view = P.Project(None).view(str(tmp_path / "main.py"))
    assert view.function("a.f").returns is None and not view.function("a.s").seeds
    assert view.function("deep.h") is None or not view.function("deep.h").seeds
    assert view.function("binary.x") is None and view.function("missing.nothing") is None


# -- the project index: a warm run resolves no import; a new module is still seen ------------

def _age(root, seconds=30):
    """Date files and folders back, as a project not edited this instant (the index keeps
    no folder stamp younger than two seconds)."""
    import time

    t = time.time() - seconds
    for d, dirs, files in os.walk(root):
        for name in files + dirs:
            os.utime(os.path.join(d, name), (t, t))
        os.utime(d, (t, t))


def test_project_index_warm_run_resolves_nothing_and_sees_new_modules(basic, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (basic / "train.py").write_text((basic / "train.py").read_text() + "from helpers import late\n")
    _age(basic)
    first = _run(basic, cache)
    assert list((cache / __import__("keraslint").__version__).glob("project-index-*.marshal"))
    calls = []
    real_resolve = P.Layout.resolve
    monkeypatch.setattr(P.Layout, "resolve", lambda self, *a: (calls.append(a), real_resolve(self, *a))[1])
    again = _run(basic, cache)
    assert again.cache_hits == again.files_checked and calls == []
    assert sorted(map(str, again.findings)) == sorted(map(str, first.findings))
    # a module that did not exist appears: its folder's listing changed, train.py (which
    # imports it) is checked again, the others come from the cache
    (basic / "helpers.py").write_text("import random\ndef late():\n    random.seed(0)\n")
    _age(basic)
    third = _run(basic, cache)
    assert calls, "the index must not be trusted after a folder changed"
    assert third.cache_hits == third.files_checked - 2  # train.py and the new helpers.py
    # the damaged index is ignored, never fatal
    for f in (cache / __import__("keraslint").__version__).glob("*.marshal"):
        f.write_bytes(b"\x00garbage")
    fourth = _run(basic, cache)
    assert sorted(map(str, fourth.findings)) == sorted(map(str, third.findings))
