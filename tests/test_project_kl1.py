"""KL1 across modules: an imported helper silences "no seed" only if its module's summary
says it really seeds (today's name heuristic is kept only for functions of no project
module), and a model built by another module's factory is the build KL101 reports."""

import json
import os
import shutil
import subprocess
import sys

from conftest import FIXTURES


def _check(folder, *args):
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", ".", "--no-cache", "--format", "json",
                        "--exit-zero", *args], cwd=folder, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return [(os.path.basename(f["path"]), f["line"], f["code"]) for f in json.loads(r.stdout)]


def test_factory_of_another_module_is_the_reported_build_and_a_fake_seed_helper_does_not_count(tmp_path):
    proj = tmp_path / "p"
    shutil.copytree(os.path.join(FIXTURES, "project_basic"), proj)
    got = _check(proj, "--select", "KL101")
    assert got == [("train.py", 17, "KL101")]


def test_a_helper_that_really_seeds_silences_kl101(tmp_path):
    proj = tmp_path / "p"
    shutil.copytree(os.path.join(FIXTURES, "project_basic"), proj)
    train = (proj / "train.py").read_text()
    (proj / "train.py").write_text(train.replace("from utils import seed_banner", "from utils import seed_everything")
                                   .replace("seed_banner(0)", "seed_everything(0)"))
    assert _check(proj, "--select", "KL101") == []


def test_an_unknown_helper_named_like_a_seed_keeps_the_old_benefit_of_the_doubt(tmp_path):
    # not a project module (an installed package): its coverage is unknown, so no KL101
    (tmp_path / "train.py").write_text(
        "import keras\nfrom somepkg.utils import seed_everything\nseed_everything(0)\n"
        "model = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile(loss='mse')\nmodel.fit(x, y)\n")
    assert _check(tmp_path, "--select", "KL101") == []
