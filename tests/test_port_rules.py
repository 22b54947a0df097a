"""KL601–KL607 (Keras ↔ PyTorch ports): the defaults and argument positions the rules
rely on, read from the installed Keras and PyTorch; the silence of single-framework files;
and the numbers KL604's message quotes, measured by copying a Keras kernel into PyTorch."""

import inspect
import os
import textwrap

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from keraslint.api import check_source  # noqa: E402
from keraslint.rules import port  # noqa: E402


def _params(cls):
    """Parameters of ``cls.__init__`` after ``self`` (name -> (index, default))."""
    ps = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    return {p.name: (i, p.default) for i, p in enumerate(ps) if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _codes(src, path="port.py", select=("KL6",)):
    return [(f.line, f.code) for f in check_source(textwrap.dedent(src), path=path, select=list(select))]


# ---------------------------------------------------------------------------
# Defaults and positions, from the installed libraries
# ---------------------------------------------------------------------------


def _check_param(kcls, tcls, p, pos_offset_torch=0):
    kp, tp = _params(kcls), _params(tcls)
    assert p.k_kw in kp, (kcls, p.k_kw)
    k_index, k_default = kp[p.k_kw]
    assert k_default == pytest.approx(p.k_default) if isinstance(p.k_default, float) else k_default == p.k_default, \
        (kcls.__name__, p.k_kw, k_default, p.k_default)
    if p.k_pos is not None:
        assert k_index == p.k_pos, (kcls.__name__, p.k_kw, k_index)
    assert p.t_kw in tp, (tcls, p.t_kw)
    t_index, t_default = tp[p.t_kw]
    if p.t_index is not None:
        t_default = t_default[p.t_index]
    assert t_default == pytest.approx(p.t_default) if isinstance(p.t_default, float) else t_default == p.t_default, \
        (tcls.__name__, p.t_kw, t_default, p.t_default)
    if p.t_pos is not None:
        assert t_index == p.t_pos, (tcls.__name__, p.t_kw, t_index)


def test_batchnorm_defaults_and_positions():
    for tcls in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm):
        for p in port.BN_PARAMS:
            _check_param(keras.layers.BatchNormalization, tcls, p)
        assert _params(tcls)["track_running_stats"][0] == 4
    for tcls in (torch.nn.LazyBatchNorm1d, torch.nn.LazyBatchNorm2d, torch.nn.LazyBatchNorm3d):
        for p in port.BN_PARAMS_LAZY:
            _check_param(keras.layers.BatchNormalization, tcls, p)
        assert _params(tcls)["track_running_stats"][0] == 3
    # the constants quoted in docs and messages
    assert _params(keras.layers.BatchNormalization)["momentum"][1] == port.KERAS_BN_MOMENTUM == 0.99
    assert _params(keras.layers.BatchNormalization)["epsilon"][1] == port.KERAS_BN_EPSILON == 1e-3
    assert _params(torch.nn.BatchNorm2d)["momentum"][1] == port.TORCH_BN_MOMENTUM == 0.1
    assert _params(torch.nn.BatchNorm2d)["eps"][1] == port.TORCH_BN_EPS == 1e-5


def test_torch_momentum_is_the_new_batch_weight():
    """PyTorch momentum 0.1 ≙ Keras momentum 0.9: one step from (mean 0) towards a batch mean of 1."""
    bn = torch.nn.BatchNorm1d(1)
    bn(torch.tensor([[0.0], [2.0]]))  # batch mean 1
    assert float(bn.running_mean[0]) == pytest.approx(0.1)  # 0.9 * 0 + 0.1 * 1
    kbn = keras.layers.BatchNormalization(momentum=0.9)
    kbn(np.array([[0.0], [2.0]], "float32"), training=True)
    assert float(kbn.moving_mean.numpy()[0]) == pytest.approx(0.1, rel=1e-6)


def test_layernorm_defaults_and_positions():
    for p in port.LN_PARAMS:
        _check_param(keras.layers.LayerNormalization, torch.nn.LayerNorm, p)
    assert _params(keras.layers.LayerNormalization)["epsilon"][1] == 1e-3
    assert _params(torch.nn.LayerNorm)["eps"][1] == 1e-5


@pytest.mark.parametrize("name", sorted(port.OPTIMIZER_PARAMS))
def test_optimizer_defaults_and_positions(name):
    kcls = getattr(keras.optimizers, name)
    tcls = getattr(torch.optim, "NAdam" if name == "Nadam" else name)
    for p in port.OPTIMIZER_PARAMS[name]:
        _check_param(kcls, tcls, p)


def test_the_differences_the_issue_names():
    kp = lambda c, n: _params(c)[n][1]  # noqa: E731
    assert kp(keras.optimizers.Adam, "epsilon") == 1e-7 and kp(torch.optim.Adam, "eps") == 1e-8
    assert kp(keras.optimizers.AdamW, "weight_decay") == 0.004 and kp(torch.optim.AdamW, "weight_decay") == 0.01
    assert kp(keras.optimizers.RMSprop, "rho") == 0.9 and kp(torch.optim.RMSprop, "alpha") == 0.99
    assert kp(keras.optimizers.RMSprop, "learning_rate") == 1e-3 and kp(torch.optim.RMSprop, "lr") == 1e-2
    # compile()'s default optimizer
    compile_params = inspect.signature(keras.Model.compile).parameters
    assert compile_params["optimizer"].default == port.KERAS_COMPILE_DEFAULT_OPTIMIZER
    assert list(compile_params)[1:3] == ["optimizer", "loss"]  # positions 0 and 1 after self


def test_conv_and_pool_positions():
    for name, off in port.KERAS_CONVS.items():
        ps = _params(getattr(keras.layers, name))
        assert ps["kernel_size"][0] == off and ps["strides"][0] == off + 1 and ps["padding"][0] == off + 2, name
    for name in port.KERAS_POOLS:
        ps = _params(getattr(keras.layers, name))
        assert ps["pool_size"][0] == 0 and ps["strides"][0] == 1 and ps["padding"][0] == 2, name
        assert ps["strides"][1] is None  # strides default to the pool size
        # Keras 3 AveragePooling has no default pool size (tf.keras 2 had (2, 2)); MaxPooling does
        if ps["pool_size"][1] is not inspect.Parameter.empty:
            assert ps["pool_size"][1] == port.KERAS_POOL_DEFAULT_SIZE[name[-2:]], name
    # torch RNNs take *args: build one with batch_first at the position the rule reads
    for cls in (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN):
        assert cls(3, 4).batch_first is False
        pos = port.TORCH_RNN_BATCH_FIRST_POS[cls.__name__]
        args = [3, 4, 1, "tanh", True][:pos] if cls is torch.nn.RNN else [3, 4, 1, True][:pos]
        assert cls(*args, True).batch_first is True, cls


def test_same_padding_is_asymmetric_in_tensorflow():
    """The fact KL605 states: a 3x3 stride-2 "same" conv on an even input pads 0 on top, 1 at
    the bottom; PyTorch's padding=1 gives the same shape but different numbers."""
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    conv = keras.layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False)
    y_keras = conv(x).numpy()[0, :, :, 0]
    k = conv.kernel.numpy()
    t = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(k).permute(3, 2, 0, 1))
        y_sym = t(torch.from_numpy(x).permute(0, 3, 1, 2))[0, 0].numpy()
        y_asym = t.__class__(1, 1, 3, stride=2, padding=0, bias=False)
        y_asym.weight.copy_(t.weight)
        xp = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (0, 1, 0, 1))
        y_asym = y_asym(xp)[0, 0].numpy()
    assert y_keras.shape == y_sym.shape == (4, 4)
    assert np.abs(y_keras - y_sym).max() > 0.1
    assert np.abs(y_keras - y_asym).max() < 1e-5
    # a 1x1 kernel never pads, whatever the stride: KL605 does not flag it
    c1 = keras.layers.Conv2D(1, 1, strides=2, padding="same", use_bias=False)
    y1 = c1(x).numpy()[0, :, :, 0]
    t1 = torch.nn.Conv2d(1, 1, 1, stride=2, bias=False)
    with torch.no_grad():
        t1.weight.copy_(torch.from_numpy(c1.kernel.numpy()).permute(3, 2, 0, 1))
        d = np.abs(y1 - t1(torch.from_numpy(x).permute(0, 3, 1, 2))[0, 0].numpy()).max()
    assert d < 1e-5


# ---------------------------------------------------------------------------
# KL604: the numbers its message quotes
# ---------------------------------------------------------------------------


def test_dense_kernel_layout_and_copy():
    rng = np.random.default_rng(0)
    # non-square: (in, out) vs (out, in) is a shape error for copy_
    dense = keras.layers.Dense(3)
    x = rng.normal(size=(2, 5)).astype("float32")
    y = dense(x).numpy()
    kernel, bias = dense.get_weights()
    lin = torch.nn.Linear(5, 3)
    assert kernel.shape == (5, 3) and tuple(lin.weight.shape) == (3, 5)
    with torch.no_grad(), pytest.raises(RuntimeError):
        lin.weight.copy_(torch.from_numpy(kernel))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kernel.T))
        lin.bias.copy_(torch.from_numpy(bias))
        assert np.abs(lin(torch.from_numpy(x)).numpy() - y).max() < 1e-5
    # `.weight.data = ...` accepts the wrong shape; the forward pass fails
    lin.weight.data = torch.from_numpy(kernel)
    with pytest.raises(RuntimeError):
        lin(torch.from_numpy(x))

    # square: the copy succeeds and the layer silently computes x @ W.T instead of x @ W
    sq = keras.layers.Dense(4, use_bias=False)
    xs = rng.normal(size=(16, 4)).astype("float32")
    ys = sq(xs).numpy()
    k = sq.get_weights()[0]
    lin4 = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        lin4.weight.copy_(torch.from_numpy(k))
        wrong = np.abs(lin4(torch.from_numpy(xs)).numpy() - ys).max()
        lin4.weight.copy_(torch.from_numpy(k.T))
        right = np.abs(lin4(torch.from_numpy(xs)).numpy() - ys).max()
    print(f"\nKL604 square Dense 4x4: max|Δ| without .T = {wrong:.3f}, with .T = {right:.1e}")
    assert wrong > 0.1  # O(1) for unit inputs
    assert right < 1e-5


def test_conv_kernel_layout_and_copy():
    rng = np.random.default_rng(0)
    conv = keras.layers.Conv2D(4, 3, use_bias=False)
    x = rng.normal(size=(1, 6, 6, 2)).astype("float32")
    y = conv(x).numpy()
    k = conv.kernel.numpy()
    t = torch.nn.Conv2d(2, 4, 3, bias=False)
    assert k.shape == (3, 3, 2, 4) and tuple(t.weight.shape) == (4, 2, 3, 3)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad(), pytest.raises(RuntimeError):
        t.weight.copy_(torch.from_numpy(k))
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(k).reshape(4, 2, 3, 3))  # fits: silent scramble
        scrambled = np.abs(t(xt).permute(0, 2, 3, 1).numpy() - y).max()
        t.weight.copy_(torch.from_numpy(k).permute(3, 2, 0, 1))
        right = np.abs(t(xt).permute(0, 2, 3, 1).numpy() - y).max()
    print(f"\nKL604 Conv2D 3x3x2→4 reshaped: max|Δ| = {scrambled:.3f}, permuted: {right:.1e}")
    assert scrambled > 0.1
    assert right < 1e-5


def test_kl604_message_quotes_the_layouts():
    src = """
        import keras, torch
        dense = keras.layers.Dense(3)
        conv = keras.layers.Conv2D(4, 3)
        lin = torch.nn.Linear(5, 3)
        tconv = torch.nn.Conv2d(2, 4, 3)
        lin.weight.data = torch.from_numpy(dense.get_weights()[0])
        tconv.weight.data.copy_(torch.from_numpy(conv.kernel.numpy()).reshape(4, 2, 3, 3))
    """
    fs = check_source(textwrap.dedent(src), path="p.py", select=["KL604"])
    assert [(f.line, f.code) for f in fs] == [(7, "KL604"), (8, "KL604")]
    assert "(in, out)" in fs[0].message and "(out, in)" in fs[0].message and "shape error" in fs[0].message
    assert "(kh, kw, in, out)" in fs[1].message and "(out, in, kh, kw)" in fs[1].message
    assert "reshape" in fs[1].message and "permute(3, 2, 0, 1)" in fs[1].message


# ---------------------------------------------------------------------------
# Single-framework files stay silent; extra near misses
# ---------------------------------------------------------------------------

TORCH_ONLY = """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.ln = nn.LayerNorm(8)
            self.rnn = nn.LSTM(8, 8)
            self.drop = nn.Dropout(0.5)
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(self.drop(self.bn(self.conv(x)).mean((2, 3))))

    net = Net()
    opt = torch.optim.Adam(net.parameters())
    other = Net()
    other.fc.weight.data = net.fc.weight.data
    x = torch.ones(2, 3, 8, 8)
    assert torch.allclose(net(x), other(x))
"""

KERAS_ONLY = """
    import keras
    import numpy as np
    from keras import layers

    model = keras.Sequential([
        layers.Conv2D(8, 3, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.LayerNormalization(),
        layers.LSTM(8),
        layers.Dropout(0.5),
        layers.Dense(8),
    ])
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    other = keras.models.clone_model(model)
    other.layers[-1].kernel.assign(model.layers[-1].get_weights()[0])
    x = np.ones((2, 8, 8, 3))
    np.testing.assert_allclose(model.predict(x), other.predict(x))
"""

BOTH_ALL_HAZARDS = """
    import keras
    import numpy as np
    import torch
    from keras import layers
    from torch import nn

    model = keras.Sequential([
        layers.Conv2D(8, 3, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.LayerNormalization(),
        layers.LSTM(8),
        layers.Dense(8),
    ])
    model.compile(optimizer="adam", loss="mse")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.ln = nn.LayerNorm(8)
            self.rnn = nn.LSTM(8, 8)
            self.drop = nn.Dropout(0.5)
            self.fc = nn.Linear(8, 8)

    net = Net()
    opt = torch.optim.Adam(net.parameters())
    net.fc.weight.data = torch.tensor(model.layers[-1].get_weights()[0])
    x = np.ones((2, 8, 8, 3), "float32")
    np.testing.assert_allclose(model.predict(x), net(torch.tensor(x)).detach().numpy())
"""


def test_torch_only_file_is_silent():
    assert _codes(TORCH_ONLY) == []


def test_keras_only_file_is_silent():
    assert _codes(KERAS_ONLY) == []


def test_both_frameworks_file_flags_every_family():
    got = _codes(BOTH_ALL_HAZARDS)
    assert got == [
        (9, "KL605"), (10, "KL601"), (11, "KL602"), (15, "KL603"), (21, "KL601"), (22, "KL602"),
        (23, "KL606"), (28, "KL603"), (29, "KL604"), (31, "KL607"),
    ], got


def test_tf_keras_spelling_counts_as_keras():
    src = """
        import tensorflow as tf
        import torch
        k = tf.keras.layers.LayerNormalization()
        t = torch.nn.LayerNorm(8)
    """
    assert _codes(src) == [(4, "KL602"), (5, "KL602")]


def test_optimizer_string_and_compile_default():
    src = """
        import keras, torch
        def a(m, net):
            m.compile(optimizer="rmsprop", loss="mse")
            return torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        def b(m):
            m.compile(loss="mse")
    """
    fs = check_source(textwrap.dedent(src), path="p.py", select=["KL603"])
    # the torch side is explicit and differs from nothing Keras relies on... except
    # compile's RMSprop, which relies on every default: matches lr/alpha/eps here.
    assert fs == []
    src2 = src.replace("lr=1e-3, alpha=0.9, eps=1e-7", "lr=1e-3")
    got = [(f.line, f.code, "rho=0.9" in f.message and "alpha=0.99" in f.message) for f in check_source(textwrap.dedent(src2), path="p.py",
                                                                        select=["KL603"])]
    assert got == [(4, "KL603", True), (5, "KL603", True), (7, "KL603", True)], got


def test_kl601_only_the_defaulting_side():
    src = """
        import keras, torch
        k = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        t = torch.nn.BatchNorm2d(8)
        k2 = keras.layers.BatchNormalization(momentum=0.9)
        t2 = torch.nn.BatchNorm2d(8, eps=1e-5, momentum=0.1)
        t3 = torch.nn.BatchNorm2d(8, track_running_stats=False, eps=1e-5)
    """
    fs = check_source(textwrap.dedent(src), path="p.py", select=["KL601"])
    # t relies on eps=1e-5 while k2 uses 1e-3; k2 relies on epsilon=1e-3 while t2 uses 1e-5.
    # k and t2/t3 set everything that matters explicitly.
    assert [(f.line, f.code) for f in fs] == [(4, "KL601"), (5, "KL601")]
    assert "default eps=1e-5" in fs[0].message and "momentum" not in fs[0].message
    assert "default epsilon=0.001" in fs[1].message and "momentum" not in fs[1].message


def test_kl606_time_major_keras_and_torch_cells():
    src = """
        import tensorflow as tf, torch
        k = tf.keras.layers.LSTM(8, time_major=True)
        t = torch.nn.LSTM(4, 8)
        c = torch.nn.LSTMCell(4, 8)
    """
    assert _codes(src) == []
    src = """
        import keras, torch
        k = keras.layers.SimpleRNN(8)
        ok = torch.nn.RNN(4, 8, 1, "tanh", True, True)
        bad = torch.nn.RNN(4, 8, 1, "tanh", True)
        chosen = torch.nn.GRU(4, 8, batch_first=False)
        unknown = torch.nn.GRU(4, 8, batch_first=flag)
    """
    # `batch_first=False` by keyword is the author's choice (fed time-major), like every
    # explicit value in KL601-603; a positional False filling the signature is not
    assert _codes(src) == [(5, "KL606")]


def test_kl607_eval_variants():
    base = """
        import keras, numpy as np, torch
        from torch import nn
        k = keras.Sequential([keras.layers.Dense(4)])
        t = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)){eval}
        {extra}
        x = np.ones((1, 4), "float32")
        out = t(torch.tensor(x)).detach().numpy()
        assert np.allclose(k(x), out)
    """
    flagged = _codes(base.format(eval="", extra=""))
    assert flagged == [(8, "KL607")], flagged
    assert _codes(base.format(eval=".eval()", extra="")) == []
    assert _codes(base.format(eval="", extra="t.train(False)")) == []
    assert _codes(base.format(eval="", extra="t.eval()")) == []


def test_kl604_tuple_unpacking_and_rnn():
    src = """
        import keras, torch
        lstm = keras.layers.LSTM(8)
        t = torch.nn.LSTM(4, 8, batch_first=True)
        k, rk, b = lstm.get_weights()
        t.weight_ih_l0.data = torch.tensor(k)
        t.weight_hh_l0.data = torch.tensor(rk.T)
        t.bias_ih_l0.data = torch.tensor(b)
    """
    fs = check_source(textwrap.dedent(src), path="p.py", select=["KL604"])
    assert [(f.line, f.code) for f in fs] == [(6, "KL604")]
    assert "4·units" in fs[0].message


def test_kl604_export_maps_like_keras_hub():
    """Patterns of keras_hub's Hugging Face exporters, with torch imported: norms and
    embeddings via ``.weights[0]`` and GPT-2's Conv1D (stored (in, out)) stay silent; a kernel
    under an f-string key of a known ``nn.Linear`` is flagged."""
    src = """
        import keras, torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.up_proj = nn.Linear(8, 32)

        def export(backbone, block, i):
            weights = {}
            weights[f"layers.{i}.input_layernorm.weight"] = block.pre_attention_norm.weights[0]
            weights["embed_tokens.weight"] = backbone.token_embedding.weights[0]
            weights[f"h.{i}.mlp.c_fc.weight"] = block.ffn_dense.kernel
            weights[f"layers.{i}.mlp.up_proj.weight"] = keras.ops.transpose(block.up_dense.kernel)
            weights[f"layers.{i}.mlp.up_proj.weight"] = block.up_dense.kernel
            return weights
    """
    fs = check_source(textwrap.dedent(src), path="p.py", select=["KL604"])
    assert [(f.line, f.code) for f in fs] == [(16, "KL604")], [(f.line, f.message) for f in fs]


# ---------------------------------------------------------------------------
# Near-misses found on real port scripts (review)
# ---------------------------------------------------------------------------


def test_kl603_compile_of_a_torch_wrapper_is_not_keras():
    """torchkeras-style wrappers (`Model(net).compile(optimizer="Adam")`) are PyTorch."""
    src = """
        import keras, torch
        from mylib import Model

        class Trainer:
            def compile(self, loss, optimizer):
                self.optimizer = optimizer

        class Net(torch.nn.Module):
            pass

        net = Net()
        Model(net).compile(loss="ce", optimizer="adam")
        wrapped = Model(net)
        wrapped.compile(loss="ce", optimizer="adam")
        trainer = Trainer()
        trainer.compile(loss="ce", optimizer="adam")
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        (x, y), _ = keras.datasets.mnist.load_data()
    """
    assert _codes(src) == []
    keras_model = src.replace("wrapped = Model(net)", "wrapped = keras.Sequential([keras.layers.Dense(2)])")
    assert [c for _, c in _codes(keras_model)] == ["KL603", "KL603"]


def test_kl605_only_asymmetric_same_padding():
    """On sizes divisible by the stride "same" pads k - s: asymmetric only for an odd k - s."""
    src = """
        import keras, torch
        from keras import layers
        a = layers.Conv2D(8, 4, strides=2, padding="same")
        b = layers.MaxPooling2D(2, padding="same")
        c = layers.Conv2D(8, 2, strides=2, padding="same")
        d = layers.Conv2D(8, 5, strides=2, padding="same")
        e = layers.Conv2D(8, (4, 3), strides=2, padding="same")
        t = torch.nn.Conv2d(3, 8, 3, 2)
        p = torch.nn.MaxPool2d(2)
    """
    assert _codes(src) == [(7, "KL605"), (8, "KL605")]
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    conv = keras.layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False)
    y_keras = conv(x).numpy()[0, :, :, 0]
    t = torch.nn.Conv2d(1, 1, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(conv.kernel.numpy()).permute(3, 2, 0, 1))
        y_torch = t(torch.from_numpy(x).permute(0, 3, 1, 2))[0, 0].numpy()
    assert np.abs(y_keras - y_torch).max() < 1e-5  # 4x4/2 "same" == padding=1
    pool = keras.layers.MaxPooling2D(2, padding="same")(x).numpy()[0, :, :, 0]
    assert np.abs(pool - torch.nn.MaxPool2d(2)(torch.from_numpy(x).permute(0, 3, 1, 2))[0, 0].numpy()).max() == 0


def test_kl605_torch_side_pads_by_hand():
    src = """
        import keras, torch
        import torch.nn.functional as F
        k = keras.layers.Conv2D(8, 3, strides=2, padding="same")
        t = torch.nn.Conv2d(3, 8, 3, 2)
        def forward(x):
            return t(F.pad(x, (0, 1, 0, 1)))
    """
    assert _codes(src) == []
    assert _codes(src.replace("F.pad(x, (0, 1, 0, 1))", "x")) == [(4, "KL605")]


def test_kl607_identity_dropout_and_training_keras():
    src = """
        import numpy as np, torch
        from tensorflow import keras
        x = np.ones((4, 3), "float32")
        t = torch.nn.Dropout(p=0.0)
        np.testing.assert_allclose(t(torch.from_numpy(x)).numpy(), keras.layers.Dropout(0.0)(x).numpy())
        bn = torch.nn.BatchNorm1d(3, eps=1e-3, momentum=0.01)
        k = keras.layers.BatchNormalization()
        np.testing.assert_allclose(bn(torch.from_numpy(x)).detach().numpy(), k(x, training=True).numpy())
        np.testing.assert_allclose(bn(torch.from_numpy(x)).detach().numpy(), k(x).numpy())
    """
    assert _codes(src) == [(10, "KL607")]


def test_kl606_time_major_data_swapped_for_keras():
    """The data is time-major and the author swaps its first two axes for Keras."""
    src = """
        import keras, numpy as np, torch
        inp = keras.Input((100, 16))
        k = keras.Model(inp, keras.layers.LSTM(8, return_sequences=True)(inp))
        t = torch.nn.LSTM(16, 8)
        x = torch.rand((100, 2, 16))
        y, _ = t(x)
        keras_y = k.predict(x.numpy().transpose(1, 0, 2))
    """
    assert _codes(src) == []
    assert _codes(src.replace("transpose(1, 0, 2)", "transpose(0, 2, 1)")) == [(5, "KL606")]
    assert _codes(src.replace("x.numpy().transpose(1, 0, 2)", "np.swapaxes(x.numpy(), 0, 1)")) == []
    assert _codes(src.replace("x.numpy().transpose(1, 0, 2)", "x.numpy()")) == [(5, "KL606")]


def test_kl603_imported_factory_stays_keras():
    """An imported model factory is still a Keras model; only a wrapper of a PyTorch module is not."""
    src = """
        import keras, torch
        from models import build_model, Model
        from torchkeras import KerasModel

        model = build_model()
        model.compile(loss="mse", optimizer="adam")
        wrapped = Model(torch.nn.Linear(4, 2))
        wrapped.compile(loss="mse", optimizer="adam")
        km = KerasModel(build_model())
        km.compile(loss="mse", optimizer="adam")
        opt = torch.optim.Adam([torch.zeros(1)], lr=1e-3)
    """
    assert _codes(src) == [(7, "KL603"), (12, "KL603")]


# ---------------------------------------------------------------------------
# Hidden defaults matter only in a port (issue 13): the parity context
# ---------------------------------------------------------------------------

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@pytest.mark.parametrize("path", sorted(
    os.path.join(d, f) for d in os.listdir(FIXTURES) if d.startswith("KL6")
    for f in os.listdir(os.path.join(FIXTURES, d)) if f.startswith("good_") and f.endswith(".py")))
def test_extra_good_fixtures_are_silent(path):
    """fixtures/KL6xx/good_*.py: near-misses that need a file of their own (a file whose
    whole point is that it has no PyTorch side)."""
    with open(os.path.join(FIXTURES, path), encoding="utf-8") as fh:
        text = fh.read()
    got = [(f.line, f.code, f.message) for f in check_source(text, path=path)]
    assert not got, got


def test_a_keras_model_on_the_torch_backend_is_a_torch_module():
    """The premise of the torch-backend near-miss, measured: with KERAS_BACKEND=torch a Keras
    model *is* an ``nn.Module`` whose ``parameters()`` are its Keras weights, so
    ``torch.optim.Adam(model.parameters())`` trains the Keras model itself (one
    implementation, no port). Run in a child process: the backend is fixed at import."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import keras, torch
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        opt = torch.optim.Adam(m.parameters(), lr=0.1)
        before = m.layers[0].kernel.numpy().copy()
        loss = m(torch.ones(4, 3)).sum()
        loss.backward()
        opt.step()
        after = m.layers[0].kernel.numpy()
        print(isinstance(m, torch.nn.Module), len(list(m.parameters())), bool((before != after).any()))
    """)
    env = dict(os.environ, KERAS_BACKEND="torch")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-3:] == ["True", "2", "True"], r.stdout


def test_kl603_silent_without_a_pytorch_model_and_names_the_context():
    keras_only_loop = """
        import keras, torch
        def get_model():
            return keras.Sequential([keras.layers.Dense(1)])
        model = get_model()
        opt = torch.optim.Adam(model.parameters())
        kopt = keras.optimizers.Adam()
    """
    assert _codes(keras_only_loop) == []
    port_file = keras_only_loop + """
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(3, 1)
        net = Net()
        topt = torch.optim.Adam(net.parameters())
    """
    got = check_source(textwrap.dedent(port_file), path="port.py", select=["KL603"])
    assert [(f.line, f.code) for f in got] == [(6, "KL603"), (7, "KL603"), (14, "KL603")]
    assert all("this file compares Keras with PyTorch (a subclass of `torch.nn.Module`, line 9)" in f.message
               for f in got), got[0].message


@pytest.mark.parametrize("src,kind", [
    # a pretrained checkpoint of the other framework is a reference where the file compares
    # numbers (a conversion check), not where it is only used (a book chapter's pipeline)
    ("import keras, transformers\nm = transformers.AutoModel.from_pretrained('x')\n", None),
    ("import keras, numpy as np, transformers\nm = transformers.AutoModel.from_pretrained('x')\n"
     "np.testing.assert_allclose(a, b)\n", "pytorch"),
    ("from transformers import BertModel\nimport keras, numpy as np\nm = BertModel.from_pretrained('x')\n"
     "print(np.abs(k - t).max())\n", "pytorch"),
    ("from transformers import BertModel\nimport keras, numpy as np\nm = BertModel.from_pretrained('x')\n"
     "print(np.abs(k).max())\n", None),
    # a Hugging Face TensorFlow model is a Keras model used as a component (BERT inside a model)
    ("import keras, numpy as np, transformers\nm = transformers.TFAutoModel.from_pretrained('x')\n"
     "np.allclose(a, b)\n", None),
    ("import keras, transformers\nt = transformers.AutoTokenizer.from_pretrained('x')\n", None),
    ("import keras, timm\nm = timm.create_model('resnet50')\n", None),
    ("import keras, timm, torch\nm = timm.create_model('resnet50')\ntorch.testing.assert_close(a, b)\n", "pytorch"),
    ("import keras, torchvision, numpy as np\nm = torchvision.models.resnet50()\nnp.allclose(a, b)\n", "pytorch"),
    # a torch Parameter is no model
    ("import keras, torch\nw = torch.nn.parameter.Parameter(torch.zeros(3))\n", None),
    ("import keras, torch\nloss = torch.nn.CrossEntropyLoss()\n", None),
    ("import keras, torch\nm = keras.Sequential()\nopt = torch.optim.SGD(m.trainable_weights, lr=1)\n", None),
    ("import keras, torch\ndef f(net):\n    return torch.optim.SGD(net.parameters(), lr=1)\n", "pytorch"),
])
def test_parity_evidence_of_a_second_implementation(src, kind):
    from keraslint import engine, parity
    from keraslint.rule import Rule

    got = {}

    class P(Rule):
        code, name, severity, fix_applicability = "KL998", "probe", "warning", None

        def finish(self):
            got["ctx"] = parity.context_of(self.ctx)

    engine.analyze(engine.Source("p.py", src), [P], gate=False)
    ctx = got["ctx"]
    assert (ctx.kind if ctx else None) == kind, ctx
