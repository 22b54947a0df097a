"""KL3 across modules: a function mapped over a pipeline that an imported helper returns
(fixtures/KL3_project: the pipeline comes from data.py) is a graph context."""

import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, os.pardir, "fixtures", "KL3_project")
EXPECT = re.compile(r"#\s*expect:\s*(KL\d{3})")


def _cli(*args, cwd):
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", *args, "--select", "KL3", "--format", "json",
                        "--exit-zero", "--no-cache"], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return {(os.path.basename(f["path"]), f["line"], f["code"]) for f in json.loads(r.stdout)}


def test_mapped_function_over_an_imported_pipeline_is_traced(tmp_path):
    d = tmp_path / "proj"
    shutil.copytree(PROJECT, d, ignore=shutil.ignore_patterns("__pycache__"))
    want = set()
    for name in sorted(os.listdir(d)):
        if name.endswith(".py"):
            for i, line in enumerate((d / name).read_text().splitlines(), 1):
                m = EXPECT.search(line)
                if m:
                    want.add((name, i, m.group(1)))
    assert want and _cli(".", cwd=d) == want
    assert _cli("train.py", cwd=d) == want  # one file still reads data.py
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(d / "train.py", alone / "train.py")
    assert _cli(".", cwd=alone) == set()  # without data.py nothing says it is a pipeline
