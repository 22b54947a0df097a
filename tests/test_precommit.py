"""The real ``pre-commit`` against this checkout (``pre-commit try-repo``), in a temporary git
repository: the ``keraslint`` hook fails on a hazardous file, ``keraslint-fix`` fixes it, and
a second run passes.

try-repo installs the hook from this repository into pre-commit's cache with pip (offline on
machines with a local package index). The hazard is taken from a fixture: the bad.py of a rule
with a safe fix whose fixed.py has no finding of that rule left; the temporary repository
selects only that rule, so the test needs no per-rule code.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from keraslint.api import check_source
from keraslint.registry import rules_by_code

from conftest import FIXTURES, ROOT

PRE_COMMIT = os.path.join(os.path.dirname(sys.executable), "pre-commit")


def _pick_case():
    for case in sorted(os.listdir(FIXTURES)):
        cls = rules_by_code().get(case)
        fixed = os.path.join(FIXTURES, case, "fixed.py")
        if cls is None or cls.fix_applicability != "safe" or not os.path.isfile(fixed):
            continue
        with open(fixed, encoding="utf-8") as fh:
            if not check_source(fh.read(), path="fixed.py", select=[case]):
                return case
    return None


@pytest.mark.skipif(not os.path.exists(PRE_COMMIT) or shutil.which("git") is None,
                    reason="pre-commit (dev extra) or git not installed")
def test_pre_commit_hooks(tmp_path):
    case = _pick_case()
    if case is None:
        pytest.skip("no rule with a safe fix and a fixed.py fixture yet")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(os.environ)
    env.pop("KERASLINT_CACHE_DIR", None)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env.setdefault("GIT_AUTHOR_NAME", "t")
    env.setdefault("GIT_AUTHOR_EMAIL", "t@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "t")
    env.setdefault("GIT_COMMITTER_EMAIL", "t@example.com")

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    def hook(hook_id):
        r = subprocess.run([PRE_COMMIT, "try-repo", ROOT, hook_id, "--all-files"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=600)
        return r.returncode, r.stdout + r.stderr

    git("init", "-q", ".")
    (repo / "pyproject.toml").write_text(f'[tool.keraslint]\nselect = ["{case}"]\n')
    shutil.copyfile(os.path.join(FIXTURES, case, "bad.py"), repo / "train.py")
    git("add", "pyproject.toml", "train.py")
    before = (repo / "train.py").read_bytes()

    rc, out = hook("keraslint")
    assert rc == 1, out
    assert re.search(rf"train\.py:\d+:\d+: {case}", out), out
    assert (repo / "train.py").read_bytes() == before  # the check hook writes nothing

    rc, out = hook("keraslint-fix")
    assert rc == 1, out  # pre-commit fails a hook that modified files
    assert "files were modified by this hook" in out, out
    after = (repo / "train.py").read_bytes()
    assert after != before
    compile(after, "train.py", "exec")

    git("add", "-u")
    rc, out = hook("keraslint")
    assert rc == 0, out
    rc, out = hook("keraslint-fix")
    assert rc == 0, out
    assert (repo / "train.py").read_bytes() == after
