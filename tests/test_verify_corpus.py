"""keraslint verify on its corpus (tests/verify_corpus): each hazard's positive script is
confirmed, its clean twin is not, and removing the hazard brings the metric under its tolerance
(or, where parity is impossible — Adam's/RMSprop's ε placement — shrinks the gap).

The whole corpus runs once per session through ``verify_many`` (single-process experiments of
all scripts share one child per Keras backend, so TensorFlow starts a handful of times instead
of once per script); the per-script tests only read the answers. The table of verdicts, values
and seconds is printed at the end (pytest -s)."""

import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "verify_corpus")
LIMIT_S = 30.0  # every verdict within 30 s on an unloaded 2-core CPU

# (script, code, steps, expected verdict, how value_fixed must compare)
CASES = [
    ("kl101_bad.py", "KL101", 3, "confirmed", "below"),
    ("kl101_good.py", "KL101", 3, "not-confirmed", "below"),
    ("kl102_bad.py", "KL102", 3, "confirmed", "below"),
    ("kl102_good.py", "KL102", 3, "not-confirmed", "below"),
    ("kl103_bad.py", "KL103", 3, "confirmed", "below"),
    ("kl103_good.py", "KL103", 3, "not-confirmed", "below"),
    ("kl104_bad.py", "KL104", 8, "confirmed", "below"),
    ("kl104_good.py", "KL104", 8, "not-confirmed", "below"),
    ("kl201_bad.py", "KL201", 10, "confirmed", "below"),
    ("kl201_good.py", "KL201", 10, "not-confirmed", "below"),
    ("kl202_bad.py", "KL202", 10, "confirmed", "below"),
    ("kl202_good.py", "KL202", 10, "not-confirmed", "below"),
    ("kl203_bad.py", "KL203", 3, "confirmed", "below"),
    ("kl203_good.py", "KL203", 3, "not-confirmed", "below"),
    ("kl205_bad.py", "KL205", 3, "confirmed", "below"),
    ("kl205_good.py", "KL205", 3, "not-confirmed", "below"),
    ("kl301_bad.py", "KL301", 3, "confirmed", "below"),
    ("kl301_good.py", "KL301", 3, "not-confirmed", "below"),
    ("kl302_bad.py", "KL302", 3, "confirmed", "below"),
    ("kl302_good.py", "KL302", 3, "not-confirmed", "below"),
    ("kl303_bad.py", "KL303", 3, "confirmed", "below"),
    ("kl303_good.py", "KL303", 3, "not-confirmed", "below"),
    ("kl304_bad.py", "KL304", 6, "confirmed", "below"),
    ("kl304_good.py", "KL304", 6, "not-confirmed", "below"),
    ("kl304_training.py", "KL304", 6, "confirmed", "below"),
    ("kl304_train_step.py", "KL304", 6, "confirmed", "below"),
    ("kl304_train_step_good.py", "KL304", 6, "not-confirmed", "below"),
    ("kl305_bad.py", "KL305", 3, "confirmed", "below"),
    ("kl305_tfvar.py", "KL305", 3, "confirmed", "below"),
    ("kl305_good.py", "KL305", 3, "not-confirmed", "below"),
    ("kl306_bad.py", "KL306", 2, "confirmed", "below"),
    ("kl306_good.py", "KL306", 2, "not-confirmed", "below"),
    ("kl401_bad.py", "KL401", 20, "confirmed", "shrinks"),
    ("kl401_good.py", "KL401", 20, "not-confirmed", "below"),
    ("kl401_residual.py", "KL401", 10, "confirmed", "shrinks"),
    ("kl401_residual_good.py", "KL401", 10, "not-confirmed", "below"),
    ("kl403_bad.py", "KL403", 3, "confirmed", "below"),
    ("kl403_good.py", "KL403", 3, "not-confirmed", "below"),
    ("kl404_bad.py", "KL404", 10, "confirmed", "below"),
    ("kl404_good.py", "KL404", 10, "not-confirmed", "below"),
    ("kl404_tf_cached_logits.py", "KL404", 10, "not-confirmed", "below"),
    ("kl404_torch_backend.py", "KL404", 10, "confirmed", "below"),
    ("kl406_bad.py", "KL406", 2, "confirmed", "below"),
    ("kl406_good.py", "KL406", 2, "not-confirmed", "below"),
    ("kl501_bad.py", "KL501", 3, "confirmed", "below"),
    ("kl501_good.py", "KL501", 3, "not-confirmed", "below"),
    ("kl501_rows.py", "KL501", 3, "confirmed", "below"),
    ("kl501_rows_good.py", "KL501", 3, "not-confirmed", "below"),
    ("kl502_bad.py", "KL502", 2, "confirmed", "below"),
    ("kl502_good.py", "KL502", 2, "not-confirmed", "below"),
    ("kl503_bad.py", "KL503", 2, "confirmed", "below"),
    ("kl503_good.py", "KL503", 2, "not-confirmed", "below"),
    ("kl504_bad.py", "KL504", 2, "confirmed", "below"),
    ("kl504_good.py", "KL504", 2, "not-confirmed", "below"),
    ("kl601_bad.py", "KL601", 20, "confirmed", "below"),
    ("kl601_good.py", "KL601", 20, "not-confirmed", "below"),
    ("kl601_multi_input.py", "KL601", 10, "confirmed", "below"),
    ("kl601_multi_input_good.py", "KL601", 10, "not-confirmed", "below"),
    ("kl602_bad.py", "KL602", 2, "confirmed", "below"),
    ("kl602_good.py", "KL602", 2, "not-confirmed", "below"),
    ("kl603_subclassed.py", "KL603", 10, "confirmed", "shrinks"),
    ("kl603_subclassed_good.py", "KL603", 10, "not-confirmed", "below"),
    ("kl604_bad.py", "KL604", 2, "confirmed", "below"),
    ("kl604_good.py", "KL604", 2, "not-confirmed", "below"),
    ("kl605_cnn_bn.py", "KL605", 2, "confirmed", "below"),
    ("kl605_cnn_bn_good.py", "KL605", 2, "not-confirmed", "below"),
    ("kl606_lstm_text.py", "KL606", 2, "confirmed", "below"),
    ("kl606_lstm_text_good.py", "KL606", 2, "not-confirmed", "below"),
    ("kl607_bad.py", "KL607", 2, "confirmed", "below"),
    ("kl607_good.py", "KL607", 2, "not-confirmed", "below"),
    # programs with their own PyTorch port: the hazard measured in that port (as in --port)
    ("port_cnn_bn.py", "KL601", 1, "confirmed", "below"),
    ("port_cnn_bn_good.py", "KL601", 1, "not-confirmed", "below"),
    ("port_lstm_text.py", "KL606", 1, "confirmed", "below"),
    ("port_lstm_text_good.py", "KL606", 1, "not-confirmed", "below"),
    ("port_residual_mlp.py", "KL607", 1, "confirmed", "below"),
    ("port_residual_mlp_good.py", "KL607", 1, "not-confirmed", "below"),
]

# model kinds besides chains, each covered by at least one positive and one clean script above
MODEL_KINDS = {
    "residual": ["kl401_residual.py", "kl401_residual_good.py"],
    "multi-input + shared layer": ["kl601_multi_input.py", "kl601_multi_input_good.py"],
    "subclassed": ["kl603_subclassed.py", "kl603_subclassed_good.py", "kl304_bad.py", "kl306_bad.py"],
    "CNN + BatchNormalization": ["kl605_cnn_bn.py", "kl605_cnn_bn_good.py"],
    "Embedding + LSTM": ["kl606_lstm_text.py", "kl606_lstm_text_good.py"],
    "custom train_step": ["kl304_train_step.py", "kl304_train_step_good.py"],
    "tf.data": ["kl503_bad.py", "kl503_good.py", "kl501_rows.py", "kl104_bad.py"],
}


@pytest.fixture(scope="module")
def answers():
    from keraslint.verify.driver import verify_many

    t0 = time.monotonic()
    items = [(os.path.join(CORPUS, s), code, steps) for s, code, steps, _, _ in CASES]
    results = verify_many(items, timeout=120.0)
    total = time.monotonic() - t0
    yield dict(zip([c[0] for c in CASES], results))
    print(f"\nverify corpus: {len(CASES)} verdicts in {total:.0f} s")
    print("| script | code | verdict | value | value_fixed | s |\n|---|---|---|---|---|---|")
    for (s, code, _, _, _), r in zip(CASES, results):
        fmt = lambda v: "null" if v is None else f"{v:.3g}"  # noqa: E731
        print(f"| {s} | {code} | {r['verdict']} | {fmt(r['value'])} | {fmt(r['value_fixed'])} | {r['seconds']:.1f} |")


@pytest.mark.slow
@pytest.mark.parametrize("script,code,steps,verdict,fixed", CASES, ids=[c[0] for c in CASES])
def test_corpus(answers, script, code, steps, verdict, fixed):
    r = answers[script]
    assert r["verdict"] == verdict, r["detail"]
    assert r["value_fixed"] is not None, r["detail"]
    assert r["tolerance"] is not None
    if fixed == "below":
        assert r["value_fixed"] <= r["tolerance"], r["detail"]
    else:  # parity impossible: the fix narrows the gap without closing it
        assert r["value_fixed"] < r["value"], r["detail"]
    if verdict == "confirmed" and r["value"] is not None:
        assert r["value"] > r["tolerance"]
    if verdict == "not-confirmed":
        assert r["value"] <= r["tolerance"]
    assert "\x1b" not in r["detail"] and "\n" not in r["detail"]
    assert r["seconds"] < 4 * LIMIT_S  # generous: CI machines are shared; the table prints the real times
    with open(os.path.join(CORPUS, script)) as f:
        assert len(f.read().splitlines()) < 60


def test_corpus_covers_every_verifiable_code_and_four_model_kinds():
    from keraslint.verify.catalog import EXPERIMENTS

    by_code = {}
    for s, code, _, verdict, _ in CASES:
        by_code.setdefault(code, set()).add(verdict)
        assert os.path.isfile(os.path.join(CORPUS, s)), s
    for code in EXPERIMENTS:
        assert by_code.get(code) == {"confirmed", "not-confirmed"}, code
    names = {c[0] for c in CASES}
    assert len(MODEL_KINDS) >= 4
    for kind, scripts in MODEL_KINDS.items():
        assert set(scripts) <= names, kind


@pytest.mark.slow
def test_softmax_with_from_logits_is_harmful_on_the_torch_backend():
    """The script that is not-confirmed on TensorFlow (cached logits) is confirmed when the
    environment selects torch (and kl404_torch_backend.py, which selects torch itself, above)."""
    cmd = [sys.executable, "-m", "keraslint.verify", os.path.join(CORPUS, "kl404_tf_cached_logits.py"), "--rule",
           "KL404", "--steps", "10", "--format", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, KERAS_BACKEND="torch"))
    [r] = json.loads(p.stdout)["results"]
    assert r["verdict"] == "confirmed", r["detail"]
    assert "torch backend" in r["detail"]
    assert r["value_fixed"] <= r["tolerance"]
