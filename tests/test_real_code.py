"""Real Keras code: the installed sources of keras and keras-hub (about 1,600 files written by
people who know Keras) are checked with every rule. Each finding there was read and judged
defensible; they are pinned in ``real_code_findings.txt`` with the judgement per group.
A new finding is a false positive until shown otherwise; a lost one is a lost true
positive. Regenerate after a reviewed rule change with:

    python tests/test_real_code.py --update
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SNAPSHOT = os.path.join(HERE, "real_code_findings.txt")


def _roots() -> list:
    roots = []
    for pkg in ("keras", "keras_hub"):
        spec = importlib.util.find_spec(pkg)  # no import: keras_hub is installed --no-deps
        if spec is None or spec.origin is None:
            pytest.skip(f"{pkg} is not installed")
        roots.append(os.path.join(os.path.dirname(spec.origin), "src"))
    return roots


def current() -> list:
    roots = _roots()
    site = os.path.dirname(os.path.dirname(roots[0]))
    env = {k: v for k, v in os.environ.items() if k != "KERASLINT_CACHE_DIR"}
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", "--no-cache", "--format", "json", *roots],
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    assert not r.stderr.strip(), r.stderr[-3000:]
    out = []
    for f in json.loads(r.stdout):
        assert f["code"] != "KL000", f"keraslint failed on real code: {f}"
        out.append(f"{os.path.relpath(f['path'], site)}:{f['line']}:{f['code']}")
    return sorted(out)


def pinned() -> list:
    with open(SNAPSHOT, encoding="utf-8") as fh:
        return sorted(ln.strip() for ln in fh if ln.strip() and not ln.startswith("#"))


@pytest.mark.slow
def test_real_keras_code_findings_are_the_reviewed_ones():
    got, want = current(), pinned()
    new = sorted(set(got) - set(want))
    lost = sorted(set(want) - set(got))
    assert not new and not lost, (
        f"{len(new)} new findings on keras/keras-hub (false positives until reviewed): {new[:20]}\n"
        f"{len(lost)} pinned findings lost: {lost[:20]}"
    )


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    header = []
    if os.path.exists(SNAPSHOT):
        with open(SNAPSHOT, encoding="utf-8") as fh:
            header = [ln for ln in fh if ln.startswith("#")]
    lines = current()
    with open(SNAPSHOT, "w", encoding="utf-8") as fh:
        fh.writelines(header)
        fh.write("\n".join(lines) + "\n")
    print(f"{len(lines)} findings written to {SNAPSHOT}")
