"""KL4: every number and behaviour the training rules quote, checked against the installed
Keras 3 (TensorFlow backend) and PyTorch, plus the rules' own edge cases."""

import inspect
import os
import subprocess
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest

from keraslint import engine, fixer
from keraslint.api import _classes, check_source
from keraslint.config import Config
from keraslint.rules import training as T


def keras_mod():
    import keras

    assert keras.backend.backend() == "tensorflow"
    return keras


# KL401 needs a parity context; the fix and matching tests run on Keras-only snippets with
# `strict` on (which reports hidden defaults everywhere).
STRICT = Config(root=".", strict=True)


def fix_text(code: str, unsafe: bool = False, select=("KL4",), config=STRICT) -> str:
    src = engine.read_source("t.py", data=code.encode())
    res = fixer.fix_source(src, _classes(select), config=config, unsafe=unsafe)
    return res.new_bytes.decode() if res.new_bytes is not None else code


def codes(code: str, select=("KL4",), config=STRICT) -> list:
    return [(f.line, f.code) for f in check_source(code, select=list(select), config=config)]


# ---------------------------------------------------------------------------
# KL401: the optimizer table is the installed Keras's own defaults
# ---------------------------------------------------------------------------


def _numeric_defaults(cls) -> tuple:
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        d = p.default
        if name == "ema_momentum" or isinstance(d, bool) or not isinstance(d, (int, float)):
            continue
        out.append((name, d))
    return tuple(out)


@pytest.mark.parametrize("ident", sorted(T.OPTIMIZER_DEFAULTS))
def test_optimizer_string_defaults_match_installed_keras(ident):
    keras = keras_mod()
    cls_name, params = T.OPTIMIZER_DEFAULTS[ident]
    opt = keras.optimizers.get(ident)
    assert type(opt).__name__ == cls_name
    assert type(opt) is getattr(keras.optimizers, cls_name)
    assert sorted(params) == sorted(_numeric_defaults(type(opt)))
    # and the built instance really holds them
    for name, value in params:
        got = getattr(opt, name, None)
        if name == "learning_rate":
            got = float(keras.ops.convert_to_numpy(opt.learning_rate))
            assert got == pytest.approx(value)
        elif got is not None and not callable(got):
            assert got == pytest.approx(value), name


def test_every_optimizer_string_keras_accepts_is_in_the_table():
    keras = keras_mod()
    from keras.src import optimizers as ko

    accepted = set()
    for key in ko.ALL_OBJECTS_DICT:
        try:
            opt = keras.optimizers.get(key)
        except Exception:  # noqa: BLE001 - needs arguments (wrappers, base class)
            continue
        accepted.add(key)
        assert key in T.OPTIMIZER_DEFAULTS, key
        assert keras.optimizers.get(key.upper()).__class__ is opt.__class__  # case-insensitive
    assert accepted == set(T.OPTIMIZER_DEFAULTS)


@pytest.mark.parametrize("ident", sorted(T.TORCH_COUNTERPART))
def test_torch_counterpart_defaults_match_installed_torch(ident):
    import torch

    name, params = T.TORCH_COUNTERPART[ident]
    sig = inspect.signature(getattr(torch.optim, name).__init__).parameters
    keras_params = dict(T.OPTIMIZER_DEFAULTS[ident][1])
    keras_names = {"lr": "learning_rate", "eps": "epsilon", "alpha": "rho"}
    for pname, value in params:
        assert sig[pname].default == value, (name, pname)
        # each quoted PyTorch value differs from Keras's
        kv = keras_params.get(keras_names.get(pname, pname))
        assert kv is not None and kv != value, (name, pname, kv)


def test_adam_and_rmsprop_numbers_from_the_issue():
    keras = keras_mod()
    import torch

    assert keras.optimizers.Adam().epsilon == 1e-7
    assert inspect.signature(torch.optim.Adam).parameters["eps"].default == 1e-8
    rms = keras.optimizers.RMSprop()
    assert rms.rho == 0.9 and float(rms.learning_rate) == pytest.approx(1e-3)
    p = inspect.signature(torch.optim.RMSprop).parameters
    assert p["alpha"].default == 0.99 and p["lr"].default == 1e-2


def _train(keras, optimizer, steps=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps, 8, 6)).astype("float32")
    y = rng.normal(size=(steps, 8, 3)).astype("float32")
    model.compile(optimizer=optimizer, loss="mse")
    for i in range(steps):
        model.train_on_batch(x[i], y[i])
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("ident", sorted(T.OPTIMIZER_DEFAULTS))
def test_kl401_fix_is_bit_identical(ident):
    """`compile(optimizer="adam")` and the fix's explicit constructor train to the very
    same weights from the same initial weights and batches (TF backend)."""
    keras = keras_mod()
    fixed = fix_text(f'import keras\nm = keras.Sequential()\nm.compile(optimizer="{ident}", loss="mse")\n')
    expr = fixed.splitlines()[2].split("optimizer=", 1)[1].rsplit(", loss=", 1)[0]
    assert expr.startswith("keras.optimizers.")
    explicit = eval(expr, {"keras": keras})  # noqa: S307 - our own fix output
    a = _train(keras, ident)
    b = _train(keras, explicit)
    for wa, wb in zip(a, b):
        assert np.array_equal(wa, wb), ident
    # and the training moved the weights (the comparison is not vacuous)
    keras.utils.set_random_seed(0)
    init = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(init.get_weights(), a))


@pytest.mark.parametrize(
    "header, spelled, added",
    [
        ("import keras\n", "keras.optimizers.Adam(", ""),
        ("import tensorflow as tf\n", "tf.keras.optimizers.Adam(", ""),
        ("from tensorflow import keras\n", "keras.optimizers.Adam(", ""),
        ("from keras import optimizers, Sequential as S\n", "optimizers.Adam(", ""),
        ("from keras.optimizers import Adam\nfrom keras import Sequential as S\n", "Adam(", ""),
        ("from keras import Sequential as S\n", "keras.optimizers.Adam(", "import keras\n"),
        ("from tensorflow.keras import Sequential as S\n", "tensorflow.keras.optimizers.Adam(", "import tensorflow\n"),
    ],
)
def test_kl401_fix_uses_the_files_namespace(header, spelled, added):
    model = "S()" if "as S" in header else ("tf.keras.Sequential()" if "as tf" in header else "keras.Sequential()")
    code = header + f"m = {model}\nm.compile(optimizer='adam', loss='mse')\n"
    out = fix_text(code)
    assert spelled + "learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)" in out
    if added:
        assert added in out
    assert codes(out) == []


def test_kl401_needs_a_parity_context():
    """A string optimizer is only reported where the file compares Keras with another
    implementation; the message names the evidence and its line."""
    keras_only = "import keras\nm = keras.Sequential()\nm.compile(optimizer='adam', loss='mse')\n"
    assert codes(keras_only, config=None) == []
    assert codes(keras_only) == [(3, "KL401")]  # strict
    port = "import torch\nimport keras\nref = torch.optim.Adam(params)\n" + keras_only.split("\n", 1)[1]
    found = check_source(port, select=["KL401"])
    assert [f.line for f in found] == [5]
    assert "this file also builds `torch.optim.Adam` (line 3) with its own defaults" in found[0].message
    tf1 = "import tensorflow as tf\nimport keras\nref = tf.compat.v1.train.AdamOptimizer(1e-3)\n" + \
        keras_only.split("\n", 1)[1]
    # TF1 code beside Keras (a migration guide shows both) is a reference only where the
    # file compares their numbers
    assert check_source(tf1, select=["KL401"]) == []
    found = check_source(tf1 + "import numpy as np\nnp.testing.assert_allclose(a, b)\n", select=["KL401"])
    assert [f.line for f in found] == [5] and "`tensorflow.compat.v1.train.AdamOptimizer` (line 3)" in found[0].message
    getstep = "import tensorflow as tf\nimport numpy as np\nimport keras\ns = tf.compat.v1.train.get_global_step()\n" \
        "np.allclose(a, b)\n" + keras_only.split("\n", 1)[1]
    assert check_source(getstep, select=["KL401"]) == []
    module = "import torch\nimport keras\nclass Net(torch.nn.Module):\n    pass\n" + keras_only.split("\n", 1)[1]
    found = check_source(module, select=["KL401"])
    assert [f.line for f in found] == [6]
    assert "this file compares Keras with PyTorch (a subclass of `torch.nn.Module`, line 3)" in found[0].message


def test_kl401_needs_the_pytorch_twin_when_the_file_builds_optimizers():
    """A chapter that trains a PyTorch model with SGD and a Keras one with "rmsprop" has no
    PyTorch RMSprop for the hidden defaults to drift from; "adam" beside torch.optim.Adam does."""
    head = "import torch\nimport keras\nopt = torch.optim.SGD(net.parameters(), lr=0.1)\nm = keras.Sequential()\n"
    assert codes(head + "m.compile(optimizer='rmsprop', loss='mse')\n", config=None) == []
    assert codes(head + "m.compile(optimizer='sgd', loss='mse')\n", config=None) == [(5, "KL401")]
    no_opt = "import torch\nimport keras\nnet = torch.nn.Linear(2, 1)\nm = keras.Sequential()\n"
    assert codes(no_opt + "m.compile(optimizer='rmsprop', loss='mse')\n", config=None) == [(5, "KL401")]
    # a pretrained PyTorch model loaded for inference: no optimizer to drift from
    hf = ("import transformers\nimport keras\n"
          "clf = transformers.AutoModelForSequenceClassification.from_pretrained('bert-base-uncased')\n"
          "m = keras.Sequential()\nm.compile(optimizer='nadam', loss='mse')\n")
    assert codes(hf, config=None) == []
    # a torch module wrapped into a Keras layer is part of the Keras model, trained by Keras
    wrapped = ("import torch\nimport keras\n"
               "layer = keras.layers.TorchModuleWrapper(torch.nn.Linear(4, 1))\n"
               "m = keras.Sequential([layer])\nm.compile(optimizer='sgd', loss='mse')\n")
    assert codes(wrapped, config=None) == []
    # a Flax module without an Optax optimizer (the JAX backend's own integration)
    flax = ("import flax.linen as nn\nimport keras\nclass Net(nn.Module):\n    pass\n"
            "m = keras.Sequential()\nm.compile(optimizer='adam', loss='mse')\n")
    assert codes(flax, config=None) == []
    assert codes(flax.replace("import keras\n", "import keras\nimport optax\ntx = optax.adam(1e-3)\n"),
                 config=None) == [(8, "KL401")]


def test_kl401_silent_on_a_pytorch_training_wrapper():
    """torchkeras/poutyne `compile(optimizer="adam")` is torch.optim.Adam, not Keras's."""
    code = (
        "import torch\nimport torchkeras\nfrom torch import nn\n"
        "net = nn.Sequential(nn.Linear(4, 1))\n"
        "trainer = torchkeras.Model(net)\n"
        "trainer.compile(loss_func=nn.MSELoss(), optimizer='adam')\n"
    )
    assert codes(code, config=None) == []


def test_kl401_only_strings_that_reach_compile():
    code = (
        "import re\nimport keras\n"
        "OPT = 'adam'\n"
        "cfg = {'optimizer': 'adam'}\n"
        "rx = re.compile('adam')\n"
        "m = keras.Sequential()\n"
        "m.compile(optimizer=keras.optimizers.get(cfg), loss='mse')\n"
        "m.compile(optimizer='auto', loss='mse')\n"  # not a Keras optimizer name (keras-hub's own)
        "m.compile(loss='mse', optimizer='Adam')\n"
    )
    assert codes(code) == [(9, "KL401")]


# ---------------------------------------------------------------------------
# KL402
# ---------------------------------------------------------------------------


def test_optimizer_classes_reject_lr_and_ignore_decay():
    keras = keras_mod()
    public = {n for n in dir(keras.optimizers) if n[:1].isupper()
              and isinstance(getattr(keras.optimizers, n), type)
              and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)}
    wrappers = {"LossScaleOptimizer", "MultiOptimizer", "OptimizerMap"}  # take an inner optimizer
    assert T.OPTIMIZER_CLASSES == public - wrappers
    for name in sorted(T.OPTIMIZER_CLASSES):
        cls = getattr(keras.optimizers, name)
        base = {"learning_rate": 0.01} if name == "Optimizer" else {}
        with pytest.raises(ValueError, match=r"Argument\(s\) not recognized: \{'lr': 0.1\}"):
            cls(lr=0.1, **base)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            opt = cls(decay=1e-4, **base)
        assert any("Argument `decay` is no longer supported and will be ignored" in str(m.message) for m in w)
        assert not hasattr(opt, "decay")


def test_torch_optimizers_take_lr():
    import torch

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert torch.optim.Adam(p, lr=0.1).param_groups[0]["lr"] == 0.1


def test_inverse_time_decay_is_keras2_decay():
    keras = keras_mod()
    s = keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1e-2)
    for step in (0, 1, 10, 100):
        assert float(s(step)) == pytest.approx(0.1 / (1 + 1e-2 * step))


def test_keras2_only_apis_are_gone_from_installed_keras():
    """KL402 stays silent in a file that also uses these: it targets Keras 2 (where `lr=` is
    right) and fails on Keras 3 before any optimizer is built."""
    import importlib

    keras = keras_mod()
    for m in T.KERAS2_ONLY_METHODS:
        assert not hasattr(keras.Model, m) and not hasattr(keras.Sequential, m), m
    for mod in T.KERAS2_ONLY_MODULES:
        with pytest.raises(ImportError):
            importlib.import_module(mod)
    for q in T.KERAS2_ONLY_NAMES:
        mod, name = q.rsplit(".", 1)
        assert not hasattr(importlib.import_module(mod), name), q


def test_kl402_in_a_keras2_file_says_it_needs_porting():
    """A file written for Keras 2 (it also uses APIs Keras 3 removed) is still reported: a
    reader running it on Keras 3 hits `lr=` first (the judged real-code sample accepted
    these); the message adds that the file needs porting as a whole."""
    code = (
        "from keras import optimizers\n"
        "m.compile(optimizer=optimizers.RMSprop(lr=1e-4), loss='mse')\n"
    )
    assert codes(code, select=("KL402",)) == [(2, "KL402")]
    plain = check_source(code, select=["KL402"])[0].message
    assert "porting" not in plain
    for extra in ("m.fit_generator(gen, steps_per_epoch=10)\n",
                  "from keras.layers.core import Dense\n",
                  "from keras.utils.np_utils import to_categorical\n",
                  "from keras.preprocessing.image import ImageDataGenerator\n",
                  "from keras import backend as K\nsess = K.get_session()\n",
                  "from keras.utils.generic_utils import Progbar\n",
                  "from tensorflow.keras.mixed_precision import experimental as mixed_precision\n"):
        got = check_source(code + extra, select=["KL402"])
        assert [(f.line, f.code) for f in got] == [(2, "KL402")], extra
        assert "porting to Keras 3 as a whole" in got[0].message, extra
    # sklearn's predict_proba is not a sign of Keras 2
    got = check_source(code + "clf.predict_proba(x)\n", select=["KL402"])
    assert "porting" not in got[0].message


def test_kl402_names_an_imported_project_module_that_needs_keras2(tmp_path):
    """The project summaries show that a module this file imports uses a Keras-2-only
    module: the project runs on Keras 2 (keras-rl's examples and its `rl` package)."""
    import json as _json

    (tmp_path / "lib.py").write_text("from keras.utils.generic_utils import Progbar\n")
    train = "from keras.optimizers import Adam\nimport lib\nopt = Adam(lr=1e-3)\n"
    (tmp_path / "train.py").write_text(train)
    (tmp_path / "alone.py").write_text(train.replace("import lib\n", ""))
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", str(tmp_path), "--select", "KL402",
                        "--format", "json", "--exit-zero", "--no-cache"], capture_output=True, text=True, timeout=300)
    found = {os.path.basename(f["path"]): f for f in _json.loads(r.stdout)}
    assert sorted((k, f["line"]) for k, f in found.items()) == [("alone.py", 2), ("train.py", 3)]
    assert "lib.py" in found["train.py"]["message"] and "porting" not in found["alone.py"]["message"]


def test_kl402_negligible_decay_is_not_reported():
    """decay=1e-8 (DLwP's GAN): Keras 2's lr / (1 + decay * step) moves by 0.1% in 100k
    steps, so Keras 3 ignoring it changes nothing; decay=1e-4 halves the rate by step 10k."""
    keras = keras_mod()
    schedule = keras.optimizers.schedules.InverseTimeDecay(1.0, decay_steps=1, decay_rate=1e-8)
    assert abs(float(schedule(T.DECAY_STEPS)) - 1.0) < T.DECAY_NEGLIGIBLE
    big = keras.optimizers.schedules.InverseTimeDecay(1.0, decay_steps=1, decay_rate=1e-4)
    assert float(big(10_000)) == pytest.approx(0.5)
    code = "import keras\na = keras.optimizers.RMSprop(learning_rate=1e-3, decay=1e-8)\n" \
           "b = keras.optimizers.RMSprop(learning_rate=1e-3, decay=1e-4)\n"
    assert codes(code, select=("KL402",)) == [(3, "KL402")]


def test_kl402_fix_only_when_unambiguous():
    code = (
        "import keras\n"
        "a = keras.optimizers.Adam(lr=0.1)\n"
        "b = keras.optimizers.Adam(0.1, lr=0.2)\n"
        "c = keras.optimizers.Adam(learning_rate=0.1, lr=0.2)\n"
        "d = keras.optimizers.Adam(**cfg, lr=0.2)\n"
    )
    out = fix_text(code)
    assert "a = keras.optimizers.Adam(learning_rate=0.1)\n" in out
    assert out.splitlines()[2:] == code.splitlines()[2:]


def test_kl402_not_on_torch_or_legacy_or_tf_keras():
    code = (
        "import torch\nimport keras\nimport tf_keras\nfrom torch.optim import Adam\n"
        "a = Adam(params, lr=0.1)\n"
        "b = torch.optim.SGD(params, lr=0.1)\n"
        "c = tf_keras.optimizers.legacy.SGD(lr=0.1, decay=1e-4)\n"
        "d = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)\n"
    )
    assert codes(code, select=("KL402",)) == []


# ---------------------------------------------------------------------------
# KL403
# ---------------------------------------------------------------------------


def _two(keras):
    x = np.random.rand(16, 4).astype("float32")
    y = np.random.rand(16, 2).astype("float32")

    def mk():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    return mk, x, y


def test_shared_optimizer_raises_unknown_variable():
    keras = keras_mod()
    mk, x, y = _two(keras)
    opt = keras.optimizers.Adam(learning_rate=1e-3)
    a, b = mk(), mk()
    a.compile(optimizer=opt, loss="mse")
    b.compile(optimizer=opt, loss="mse")
    a.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Unknown variable: .*This optimizer can only be called for the "
                                         "variables it was originally built with"):
        b.fit(x, y, epochs=1, verbose=0)


def test_frozen_discriminator_sharing_an_optimizer_does_not_raise():
    """KL403's GAN near-miss, measured: `d.compile(opt); d.trainable = False;
    combined.compile(opt)` then training both. The frozen d has no trainable weights when it
    trains (Keras warns and skips the optimizer), so only `combined` builds the optimizer:
    no `Unknown variable`, and d's weights never change (another hazard, not KL403's)."""
    keras = keras_mod()
    opt = keras.optimizers.Adam(1e-3)
    d = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    d.compile(loss="binary_crossentropy", optimizer=opt)
    g = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4)])
    d.trainable = False
    z = keras.Input((2,))
    combined = keras.Model(z, d(g(z)))
    combined.compile(loss="binary_crossentropy", optimizer=opt)
    before = [w.numpy().copy() for w in d.weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d.train_on_batch(np.ones((8, 4)), np.ones((8, 1)))
    combined.train_on_batch(np.ones((8, 2)), np.ones((8, 1)))
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, d.weights))
    assert int(opt.iterations.numpy()) == 1


def test_same_model_recompiled_with_its_optimizer_is_fine():
    keras = keras_mod()
    mk, x, y = _two(keras)
    opt = keras.optimizers.Adam(learning_rate=1e-3)
    m = mk()
    m.compile(optimizer=opt, loss="mse")
    m.fit(x, y, epochs=1, verbose=0)
    m.compile(optimizer=opt, loss="mae")
    m.fit(x, y, epochs=1, verbose=0)
    # and from_config per model is a fresh optimizer
    other = mk()
    other.compile(optimizer=keras.optimizers.Adam.from_config(opt.get_config()), loss="mse")
    other.fit(x, y, epochs=1, verbose=0)


def test_kl403_factory_helper_that_returns_a_string_is_not_an_optimizer():
    code = (
        "import keras\n"
        "def pick():\n    return 'adam'\n"
        "opt = pick()\n"
        "a = keras.Sequential()\nb = keras.Sequential()\n"
        "a.compile(optimizer=opt, loss='mse')\n"
        "b.compile(optimizer=opt, loss='mse')\n"
    )
    assert codes(code, select=("KL403",)) == []
    code2 = code.replace("return 'adam'", "return keras.optimizers.Adam(learning_rate=1e-3)")
    assert codes(code2, select=("KL403",)) == [(8, "KL403")]


# ---------------------------------------------------------------------------
# KL404: what the TensorFlow backend and the other backends really do
# ---------------------------------------------------------------------------


def _clf(keras, activation):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation=activation)])


def _losses(keras, activation, from_logits, steps=3):
    model = _clf(keras, activation)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 4, size=(32,))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    out = []
    for _ in range(steps):
        out.append(float(model.train_on_batch(x, y)))
    return np.array(out), [w.copy() for w in model.get_weights()]


def test_tf_backend_reuses_cached_logits_and_warns():
    keras = keras_mod()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        wrong, w_wrong = _losses(keras, "softmax", from_logits=True)
    assert any("received `from_logits=True`, but the `output` argument was produced by a Softmax" in str(m.message)
               for m in w)
    right, w_right = _losses(keras, "softmax", from_logits=False)
    np.testing.assert_allclose(wrong, right, rtol=1e-5)
    for a, b in zip(w_wrong, w_right):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_linear_head_with_probability_loss_is_wrong_on_tf():
    keras = keras_mod()
    wrong, _ = _losses(keras, None, from_logits=False)
    right, _ = _losses(keras, None, from_logits=True)
    assert np.max(np.abs(wrong - right)) > 0.5, (wrong, right)
    # the raw scores are clipped as probabilities: binary case
    y = np.array([[1.0], [0.0]], "float32")
    scores = np.array([[-2.0], [3.0]], "float32")
    bce = keras.losses.binary_crossentropy(y, scores)
    # both rows are clipped to ε = 1e-7 (1 - ε in float32): the loss is ≈ -log(1e-7) ≈ 16.1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bce), -np.log(keras.config.epsilon()), rtol=2e-2)


TORCH_SCRIPT = r"""
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras
assert keras.backend.backend() == "torch"
keras.utils.set_random_seed(0)
x = np.random.default_rng(2).normal(size=(32, 6)).astype("float32")
y = np.random.default_rng(3).integers(0, 4, size=(32,))
m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
probs = keras.ops.convert_to_numpy(m(x))
wrong = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, m(x), from_logits=True)).mean()
right = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, m(x))).mean()
twice = np.exp(probs) / np.exp(probs).sum(-1, keepdims=True)
manual = -np.log(twice[np.arange(32), y]).mean()
print(wrong, right, manual)
"""


def test_other_backends_apply_softmax_twice():
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", TORCH_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wrong, right, manual = map(float, out.stdout.split()[-3:])
    assert abs(wrong - manual) < 1e-5  # softmax applied twice
    assert abs(wrong - right) > 1e-3
    assert abs(wrong - np.log(4)) < abs(right - np.log(4))  # squashed towards log(n_classes)


def test_loss_table_matches_installed_keras():
    keras = keras_mod()
    for ident in T.LOSS_STRINGS:
        loss = keras.losses.get(ident)
        fl = getattr(loss, "from_logits", None)
        if fl is None and hasattr(loss, "_fn_kwargs"):
            fl = loss._fn_kwargs.get("from_logits")
        if fl is None:
            fl = inspect.signature(loss).parameters["from_logits"].default
        assert fl is False, ident
    for cls_name, pos in T.LOSS_CLASSES.items():
        params = list(inspect.signature(getattr(keras.losses, cls_name)).parameters)
        assert params.index("from_logits") == pos, cls_name
        assert getattr(keras.losses, cls_name)().get_config()["from_logits"] is False
    for fn in T.LOSS_FUNCTIONS:
        assert inspect.signature(getattr(keras.losses, fn)).parameters["from_logits"].default is False


# ---------------------------------------------------------------------------
# KL405 / KL406
# ---------------------------------------------------------------------------


def test_fit_defaults_for_arrays():
    keras = keras_mod()
    params = inspect.signature(keras.Model.fit).parameters
    assert params["shuffle"].default is T.FIT_DEFAULTS["shuffle"]
    assert params["batch_size"].default is None  # ... which means 32 for arrays:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    model.fit(np.zeros((96, 2)), np.zeros((96, 1)), epochs=1, verbose=0, callbacks=[Count()])
    assert len(seen) == 96 // T.FIT_DEFAULTS["batch_size"]


def test_validation_split_takes_the_last_rows_and_rejects_datasets():
    keras = keras_mod()
    import tensorflow as tf
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    x = np.arange(10, dtype="float32").reshape(10, 1)
    (tx,), (vx,) = train_validation_split((x,), validation_split=0.2)
    assert vx.ravel().tolist() == [8.0, 9.0]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    ds = tf.data.Dataset.from_tensor_slices((x, x)).batch(2)
    with pytest.raises(ValueError, match="`validation_split` is only supported for tensors or NumPy arrays"):
        model.fit(ds, validation_split=0.2, verbose=0)  # noqa: KL505


def test_keras_datasets_that_load_data_shuffles():
    """KL406's near-miss: imdb, reuters and boston_housing shuffle in load_data (seed 113),
    so their last rows are a random sample; KL406 needs visible order evidence anyway."""
    import inspect as _inspect

    keras = keras_mod()
    for name in ("imdb", "reuters", "boston_housing"):
        fn = getattr(keras.datasets, name).load_data
        assert _inspect.signature(fn).parameters["seed"].default == 113, name
        src = _inspect.getsource(fn)
        assert "shuffle" in src or "permutation" in src, name


def test_kl406_needs_visible_order():
    code = (
        "import numpy as np\nimport keras\n"
        "x = np.random.rand(100, 4)\n"
        "model.fit(x, y, validation_split=0.2)\n"
        "s = np.sort(x, axis=0)\n"
        "model.fit(s, y, validation_split=0.2)\n"
        "w = np.array([x[i:i + 5] for i in range(90)])\n"
        "model.fit(w, y, validation_split=0.2)\n"
        "df = frame.sort_values('date')\n"
        "model.fit(df.values, y, validation_split=0.2)\n"
    )
    # windows cut from a series in order (line 8): the last stretch is time-based validation
    assert codes(code, select=("KL406",)) == [(6, "KL406"), (10, "KL406")]


def test_kl406_not_on_datasets_or_without_y():
    code = (
        "import tensorflow as tf\nimport keras\nimport numpy as np\n"
        "ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).prefetch(2)\n"
        "model.fit(ds, validation_split=0.2)\n"
        "model.fit(gen, validation_split=0.2)\n"
        "model.fit(np.concatenate([a, b]), y, validation_split=0.2)\n"
    )
    assert codes(code, select=("KL406",)) == [(7, "KL406")]


def test_kl405_needs_a_training_tape_and_the_same_kind_of_model():
    base = (
        "import tensorflow as tf\nimport keras\n"
        "def build():\n    return keras.Sequential()\n"
        "def other():\n    return keras.Sequential()\n"
        "a = build()\nopt = keras.optimizers.SGD(learning_rate=0.1)\n"
        "for xb, yb in data:\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_mean(a(xb))\n"
        "    grads = tape.gradient(loss, a.trainable_variables)\n"
        "    opt.apply_gradients(zip(grads, a.trainable_variables))\n"
        "b = {maker}()\nb.compile(optimizer=opt2, loss='mse')\nb.fit(x, y)\n"
    )
    assert codes(base.format(maker="build"), select=("KL405",)) == [(16, "KL405")]
    assert codes(base.format(maker="other"), select=("KL405",)) == []
    # a tape that only computes input gradients (saliency, FGSM) is not a training loop
    saliency = base.format(maker="build").replace("    opt.apply_gradients(zip(grads, a.trainable_variables))\n", "")
    assert codes(saliency, select=("KL405",)) == []


def test_kl404_conditional_heads_are_unknown():
    code = '''import keras
from keras import layers

model = keras.Sequential()
model.add(layers.Dense(10))
if not use_logits:
    model.add(layers.Softmax())
model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

inputs = keras.Input((4,))
outputs = layers.Dense(3)(inputs)
if probabilities:
    outputs = layers.Softmax()(outputs)
m2 = keras.Model(inputs, outputs)
m2.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(from_logits=True))


def build(flag):
    x_in = keras.Input((4,))
    if flag:
        out = layers.Dense(2, activation="softmax")(x_in)
        return keras.Model(x_in, out)
    out = layers.Dense(2)(x_in)
    return keras.Model(x_in, out)


m3 = build(True)
m3.compile(optimizer=opt, loss="categorical_crossentropy")


def build_linear():
    x = keras.Input((4,))
    x_in = x
    x = layers.Dense(8, activation="relu")(x)
    x = layers.Dense(2)(x)
    return keras.Model(x_in, x)


m4 = build_linear()
m4.compile(optimizer=opt, loss="categorical_crossentropy")
'''
    assert codes(code, select=("KL404",)) == [(40, "KL404")]


def test_kl401_no_fix_in_keras2_files():
    code = "import tensorflow as tf\nimport tf_keras\nm = tf_keras.Sequential()\nm.compile(optimizer='adam', loss='mse')\n"
    found = check_source(code, select=["KL401"], config=STRICT)
    assert [(f.line, f.fix) for f in found] == [(4, None)]


def test_kl405_needs_the_two_trainings_compared():
    code = (
        "import tensorflow as tf\nimport keras\nimport numpy as np\n"
        "def build():\n    return keras.Sequential()\n"
        "a = build()\nopt = keras.optimizers.SGD(learning_rate=0.1)\n"
        "ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)\n"
        "for xb, yb in ds:\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_mean(a(xb))\n"
        "    grads = tape.gradient(loss, a.trainable_variables)\n"
        "    opt.apply_gradients(zip(grads, a.trainable_variables))\n"
        "b = build()\nb.compile(optimizer=opt2, loss='mse')\nb.fit(x, y)\n"
    )
    assert codes(code, select=("KL405",), config=None) == []
    compared = code + "np.testing.assert_allclose(a.predict(x), b.predict(x), atol=1e-5)\n"
    found = check_source(compared, select=["KL405"])
    assert [f.line for f in found] == [16] and "compares the two trainings, line 17" in found[0].message
    # the same name trained by the loop, then by fit: one model, nothing to compare
    same = code.replace("b = build()\nb.compile", "a = build()\na.compile").replace("b.fit(x, y)", "a.fit(x, y)")
    assert codes(same + "print(a.predict(x))\n", select=("KL405",), config=None) == []


def test_kl405_silent_when_fit_defaults_equal_the_loop():
    code = (
        "import tensorflow as tf\nimport keras\n"
        "def build():\n    return keras.Sequential()\n"
        "a = build()\nopt = keras.optimizers.SGD(learning_rate=0.1)\n"
        "ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100).batch({bs})\n"
        "for xb, yb in ds:\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_mean(a(xb))\n"
        "    grads = tape.gradient(loss, a.trainable_variables)\n"
        "    opt.apply_gradients(zip(grads, a.trainable_variables))\n"
        "b = build()\nb.compile(optimizer=opt2, loss='mse')\nb.fit(x, y)\n"
    )
    assert codes(code.format(bs=32), select=("KL405",)) == []
    found = check_source(code.format(bs=16), select=["KL405"], config=STRICT)
    assert [(f.line, f.fix) for f in found] == [(15, "unsafe")]
    assert "b.fit(x, y, batch_size=16)\n" in fix_text(code.format(bs=16), unsafe=True)
