"""``verify --port``: a user's own PyTorch port diffed layer by layer against their Keras model.
Three kinds of port (CNN + BatchNormalization, Embedding + LSTM text model, residual MLP), each
with a planted hazard that must be named at the right layer and proven by re-running with it
removed, and a correct twin that must be cleared (max |Δ| ≤ 1e-5 at every aligned layer)."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "verify_corpus")
PORT_KEYS = ["keras", "torch", "layers", "first_divergent", "code", "max_abs_diff_fixed", "detail"]

# script -> (code, first divergent index, the Keras layer there) or None for a correct port
PORTS = {
    "port_cnn_bn.py": ("KL601", 1, "batch_normalization (BatchNormalization)"),
    "port_lstm_text.py": ("KL606", 1, "lstm (LSTM)"),
    "port_residual_mlp.py": ("KL607", 1, "dropout (Dropout)"),
    "port_cnn_bn_good.py": None,
    "port_lstm_text_good.py": None,
    "port_residual_mlp_good.py": None,
}


@pytest.fixture(scope="module")
def reports():
    from keraslint.verify.driver import Progress, public, verify

    def one(script):
        return script, public(verify(os.path.join(CORPUS, script), None, 1, 120.0, Progress(False), port=""))
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, list(PORTS)))


@pytest.mark.slow
@pytest.mark.parametrize("script", list(PORTS))
def test_port(reports, script):
    report = reports[script]
    port = report["port"]
    assert list(port) == PORT_KEYS
    assert port["keras"] == "k_model" and port["torch"] == "t_model"
    for i, row in enumerate(port["layers"]):
        assert list(row) == ["index", "keras_layer", "torch_module", "max_abs_diff"] and row["index"] == i
    expected = PORTS[script]
    if expected is None:
        assert port["first_divergent"] is None and port["code"] is None, port["detail"]
        assert all(row["max_abs_diff"] <= 1e-5 for row in port["layers"] if row["max_abs_diff"] is not None)
        assert report["results"] == []
        return
    code, index, layer = expected
    assert port["code"] == code, port["detail"]
    assert port["first_divergent"] == index
    assert port["layers"][index]["keras_layer"] == layer
    assert port["layers"][index]["max_abs_diff"] > 1e-3
    assert all(row["max_abs_diff"] <= 1e-5 for row in port["layers"][:index])
    assert port["max_abs_diff_fixed"] <= 1e-5
    [r] = report["results"]
    assert r["code"] == code and r["verdict"] == "confirmed" and r["experiment"] == "port-diff"


@pytest.mark.slow
def test_port_cli_names_the_objects_text_table_and_plot(tmp_path):
    png = tmp_path / "port.png"
    target = os.path.join(CORPUS, "port_lstm_text.py")
    p = subprocess.run([sys.executable, "-m", "keraslint.verify", target, "--port", "k_model,t_model", "--plot",
                        str(png)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "port: Keras k_model vs PyTorch t_model" in p.stdout
    assert "lstm (LSTM)" in p.stdout and "<- first divergence" in p.stdout
    assert "first divergent layer: 1; hazard: KL606" in p.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_port_names_not_found_fall_back_to_what_the_program_built_or_answer_inconclusive():
    """A name that is no top-level object (a local of main(), a typo) falls back to the last module
    the program built, and says so; a program without a torch.nn.Module is inconclusive."""
    target = os.path.join(CORPUS, "port_residual_mlp_good.py")
    p = subprocess.run([sys.executable, "-m", "keraslint.verify", target, "--port", "k_model,nope", "--format",
                        "json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(p.stdout)
    assert list(report["port"]) == PORT_KEYS
    assert "nope" in report["port"]["torch"] and "TorchResMLP" in report["port"]["torch"]
    assert report["port"]["first_divergent"] is None and report["results"] == []
    p = subprocess.run([sys.executable, "-m", "keraslint.verify", os.path.join(CORPUS, "kl301_good.py"), "--port",
                        "--format", "json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(p.stdout)
    assert list(report["port"]) == PORT_KEYS and report["port"]["first_divergent"] is None
    [r] = report["results"]
    assert r["verdict"] == "inconclusive" and "torch.nn.Module" in r["detail"], r["detail"]
