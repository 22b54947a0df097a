"""KL3 (graph mode): the library behaviour the rules' messages claim, measured on the
installed Keras / TensorFlow, and the KL301 safe fix (bit-identical numbers, 1:1 keywords,
the file's own spelling).

Run with the TensorFlow backend (the backend the messages describe)."""

import inspect
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from keraslint import engine
from keraslint.api import check_source
from keraslint.fixer import fix_source
from keraslint.registry import all_rules
from keraslint.rules import graph

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
ops = keras.ops

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF backend semantics")


# ---------------------------------------------------------------------------
# KL301: the safe fix table is bit-identical
# ---------------------------------------------------------------------------

def _float32_inputs(n=20011, seed=0):
    """Normal float32 values over many magnitudes plus ±0, ±inf, NaN and .5 ties.
    Subnormals are left out: TensorFlow's CPU kernels flush them to zero in every op
    (np.add(1e-45, 1e-45) = 3e-45, tf.add = 0), which no replacement can match."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n) * rng.choice([1e-30, 1e-3, 1.0, 1e3, 1e30], n)
    a = a.astype("float32")
    tiny = np.finfo(np.float32).tiny
    a[np.abs(a) < tiny] = 0.0
    a[:10] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5, 1.5, 2.5, -2.5, np.finfo(np.float32).max]
    return a


def _bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    if a.dtype.kind == "f":
        na, nb = np.isnan(a), np.isnan(b)
        assert (na == nb).all(), "NaN positions differ"
        ia = a.view(np.uint32)[~na]
        ib = b.view(np.uint32)[~nb]
        return int((ia != ib).sum())
    return int((a != b).sum())


X = _float32_inputs()
Y = _float32_inputs(seed=1)
M = X[:20000].reshape(100, 200)

# name -> (positional args, numpy keyword args): the calls checked for each table entry.
CASES = {
    "abs": ((X,), {}), "absolute": ((X,), {}), "negative": ((X,), {}), "square": ((X,), {}),
    "sqrt": ((X,), {}), "floor": ((X,), {}), "ceil": ((X,), {}), "sign": ((X,), {}),
    "round": ((X,), {}), "isnan": ((X,), {}), "isinf": ((X,), {}), "isfinite": ((X,), {}),
    "maximum": ((X, Y), {}), "minimum": ((X, Y), {}),
    "where": ((X > 0, X, Y), {}),
    "clip": ((X,), {"a_min": -1.0, "a_max": 2.0}),
    "max": ((M,), {"axis": -1, "keepdims": True}), "amax": ((M, 0), {}),
    "min": ((M,), {"axis": 1}), "amin": ((M,), {"keepdims": True}),
    "reshape": ((M,), {"shape": (200, 100)}),
    "transpose": ((M,), {"axes": (1, 0)}),
    "expand_dims": ((M,), {"axis": 1}),
    "squeeze": ((M[None],), {"axis": 0}),
    "concatenate": (([M, M],), {"axis": 1}),
    "stack": (([M, M],), {"axis": -1}),
}


def test_every_safe_fix_has_a_numeric_case():
    assert set(CASES) == set(graph._SAFE_FIXES)


def _call(ns, name, args, kwargs, kwmap):
    fn = ns
    for part in name.split("."):
        fn = getattr(fn, part)
    targs = [tf.constant(a) if isinstance(a, np.ndarray) else [tf.constant(e) for e in a] if isinstance(a, list)
             else a for a in args]
    return fn(*targs, **{kwmap[k]: v for k, v in kwargs.items()})


@pytest.mark.parametrize("name", sorted(graph._SAFE_FIXES))
def test_safe_fix_is_bit_identical(name):
    ops_name, tf_name, max_pos, kw_ops, kw_tf = graph._SAFE_FIXES[name]
    args, kwargs = CASES[name]
    with np.errstate(all="ignore"):
        want = getattr(np, name)(*[tf.constant(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs)
    assert _bits_equal(want, _call(ops, ops_name, args, kwargs, kw_ops)) == 0
    assert _bits_equal(want, _call(tf, tf_name, args, kwargs, kw_tf)) == 0


@pytest.mark.parametrize("name", sorted(graph._SAFE_FIXES))
def test_safe_fix_keywords_exist(name):
    ops_name, tf_name, max_pos, kw_ops, kw_tf = graph._SAFE_FIXES[name]
    np_params = inspect.signature(getattr(np, name)).parameters
    ops_params = inspect.signature(getattr(ops, ops_name)).parameters
    tf_fn = tf
    for part in tf_name.split("."):
        tf_fn = getattr(tf_fn, part)
    tf_params = inspect.signature(tf_fn).parameters
    for np_kw, ops_kw in kw_ops.items():
        assert np_kw in np_params or np_kw == "newshape", (name, np_kw)
        assert ops_kw in ops_params, (name, ops_kw)
        assert kw_tf[np_kw] in tf_params, (name, kw_tf[np_kw])
    assert len([p for p in ops_params.values() if p.kind != p.VAR_KEYWORD]) >= max_pos


@pytest.mark.parametrize("name", ["exp", "log", "sin", "tanh", "reciprocal"])
def test_transcendentals_are_not_bit_identical(name):
    """Why they get no safe fix: TF's kernels round differently from NumPy's."""
    x = np.abs(X[np.isfinite(X)]) + 1.0 if name == "log" else X[np.isfinite(X)]
    x = x[np.abs(x) < 80] if name == "exp" else x
    assert name not in graph._SAFE_FIXES
    with np.errstate(all="ignore"):
        want = getattr(np, name)(tf.constant(x))
    assert _bits_equal(want, getattr(ops, name)(tf.constant(x))) > 0


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reductions_are_not_bit_identical(name):
    """Summation order differs: no safe fix for sum/mean."""
    assert name not in graph._SAFE_FIXES
    m = np.nan_to_num(M, nan=0.0, posinf=0.0, neginf=0.0)
    assert _bits_equal(getattr(np, name)(tf.constant(m), axis=-1), getattr(ops, name)(tf.constant(m), axis=-1)) > 0


# ---------------------------------------------------------------------------
# KL301 fix: spelling, imports, keyword mapping
# ---------------------------------------------------------------------------

def _fixed(text, path="m.py"):
    src = engine.read_source(path, data=text.encode())
    res = fix_source(src, list(all_rules()))
    return res.new_bytes.decode() if res.new_bytes is not None else text


def test_fix_uses_the_files_ops_spelling_and_renames_keywords():
    text = (
        "import numpy as np\nfrom keras import layers, ops as K\n\n\n"
        "class L(layers.Layer):\n    def call(self, x):\n"
        "        return np.clip(np.abs(x), a_min=0.0, a_max=1.0)\n"
    )
    out = _fixed(text)
    assert "return K.clip(K.abs(x), x_min=0.0, x_max=1.0)" in out


def test_fix_adds_the_keras_ops_import_when_missing():
    text = (
        "import numpy as np\nfrom keras import layers\n\n\n"
        "class L(layers.Layer):\n    def call(self, x):\n        return np.sqrt(x)\n"
    )
    out = _fixed(text)
    assert "from keras import ops" in out
    assert "return ops.sqrt(x)" in out


def test_fix_in_tensorflow_only_file_uses_tf():
    text = (
        "import numpy as np\nimport tensorflow as tf\n\n\n"
        "@tf.function\ndef f(x, y):\n"
        "    a = np.ceil(x)\n"
        "    b = np.transpose(y, axes=(1, 0))\n"
        "    c = np.concatenate([a, a])\n"
        "    return np.max(b, axis=0), c\n"
    )
    out = _fixed(text)
    assert "a = tf.math.ceil(x)" in out
    assert "b = tf.transpose(y, perm=(1, 0))" in out
    assert "c = np.concatenate([a, a])" in out  # tf.concat has no default axis: no fix
    assert "return tf.reduce_max(b, axis=0), c" in out


def test_no_fix_for_unmapped_keywords_or_functions():
    text = (
        "import numpy as np\nimport keras\n\n\n"
        "class L(keras.layers.Layer):\n    def call(self, x):\n"
        "        return np.max(x, initial=0.0) + np.sin(x) + np.where(x > 0)[0]\n"
    )
    findings = [f for f in check_source(text) if f.code == "KL301"]
    assert len(findings) == 3
    assert all(f.fix is None for f in findings)


# ---------------------------------------------------------------------------
# What Keras 3 / TF really do (the rules' messages quote these)
# ---------------------------------------------------------------------------

def _error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def _predict(layer, x):
    return keras.Sequential([layer]).predict(x, verbose=0)


X4 = np.ones((4, 3), "float32")


def test_kl303_keras_does_not_autograph_call():
    class Gate(keras.layers.Layer):
        def call(self, x):
            if ops.sum(x) > 0:
                return x
            return -x

    assert _error_of(lambda: Gate()(X4)) is None  # eager works
    err = _error_of(lambda: _predict(Gate(), X4))
    assert isinstance(err, tf.errors.OperatorNotAllowedInGraphError)
    assert "OperatorNotAllowedInGraphError" in graph.PythonBranchOnTensor.__doc__


def test_kl303_tf_function_converts_if_but_not_assert():
    @tf.function
    def branch(x):
        if tf.reduce_sum(x) > 0:
            x = x * 2
        return x

    @tf.function
    def check(x):
        assert tf.reduce_min(x) >= 0
        return x

    assert float(tf.reduce_sum(branch(X4))) == 24.0
    assert isinstance(_error_of(lambda: check(X4)), tf.errors.OperatorNotAllowedInGraphError)


def test_kl302_float_of_tensor_fails_under_predict():
    class Norm(keras.layers.Layer):
        def call(self, x):
            return x / float(ops.max(x))

    assert _error_of(lambda: Norm()(X4)) is None
    assert isinstance(_error_of(lambda: _predict(Norm(), X4)), TypeError)


def test_kl305_messages_match_keras():
    class AW(keras.layers.Layer):
        def call(self, x):
            return x * self.add_weight(shape=(3,), initializer="ones")

    class TV(keras.layers.Layer):
        def call(self, x):
            return x * tf.Variable(tf.ones((3,)))

    class KV(keras.layers.Layer):
        def call(self, x):
            return x * keras.Variable(np.ones((3,), "float32"))

    assert "You cannot add new elements of state" in str(_error_of(lambda: AW()(X4)))
    assert _error_of(lambda: TV()(X4)) is None  # eagerly: a fresh variable per call
    assert "only supports singleton tf.Variables created on the first call" in str(_error_of(lambda: _predict(TV(), X4)))
    assert "create a variable while in a stateless scope" in str(_error_of(lambda: _predict(KV(), X4)))
    msgs = " ".join(m for _, (_, m) in graph._VARIABLE_CTORS.items())
    assert "only supports singleton tf.Variables created on the first call" in msgs
    assert "create a variable while in a stateless scope" in msgs


def test_kl306_keras3_auto_config():
    class Plain(keras.layers.Layer):
        def __init__(self, units, rate=0.1, sizes=(1, 2), opts=None, **kw):
            super().__init__(**kw)
            self.units = units

    class Wrap(keras.layers.Layer):
        def __init__(self, inner, **kw):
            super().__init__(**kw)
            self.inner = inner

    class Arr(keras.layers.Layer):
        def __init__(self, table, **kw):
            super().__init__(**kw)
            self.table = table

    class Req(keras.Model):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units = units

    class Dflt(keras.Model):
        def __init__(self, scale=1.0, **kw):
            super().__init__(**kw)
            self.scale = scale

    cfg = Plain(4, rate=0.2, sizes=[3, 4], opts={"a": 1}).get_config()
    assert (cfg["units"], cfg["rate"], cfg["sizes"], cfg["opts"]) == (4, 0.2, [3, 4], {"a": 1})
    for obj in (Wrap(keras.layers.Dense(2)), Wrap(ops.relu), Wrap(lambda t: t), Arr(np.arange(3)), Req(3)):
        err = _error_of(obj.get_config)
        assert isinstance(err, NotImplementedError)
        assert "non-serializable argument values" in str(err)
    # A Model subclass records its *defaults*, not the arguments it was given.
    assert Dflt(scale=5.0).get_config()["scale"] == 1.0


# ---------------------------------------------------------------------------
# KL306 on Keras 2 (tf_keras) code: every extra constructor argument needs get_config
# ---------------------------------------------------------------------------

def test_kl306_tf_keras_any_extra_argument():
    text = (
        "import tf_keras\n\n\n"
        "class Block(tf_keras.layers.Layer):\n"
        "    def __init__(self, units, rate=0.1, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.units = units\n\n\n"
        "class Configured(tf_keras.layers.Layer):\n"
        "    def __init__(self, units, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.units = units\n\n"
        "    def get_config(self):\n"
        "        return {**super().get_config(), 'units': self.units}\n\n\n"
        "class NoArgs(tf_keras.layers.Layer):\n"
        "    def __init__(self, name=None, trainable=True, **kwargs):\n"
        "        super().__init__(name=name, trainable=trainable, **kwargs)\n\n\n"
        "model = tf_keras.Sequential([Block(4), Configured(2), NoArgs()])\n"
        "model.save('model.h5')\n"
    )
    got = [(f.line, f.code) for f in check_source(text, select=["KL306"])]
    assert got == [(4, "KL306")]
    msg = check_source(text, select=["KL306"])[0].message
    assert "`units`, `rate`" in msg and "tf_keras" in msg


def test_kl306_keras3_layer_with_plain_arguments_is_silent():
    text = (
        "import keras\n\n\n"
        "class Block(keras.layers.Layer):\n"
        "    def __init__(self, units, rate=0.1, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.units = units\n\n\n"
        "blocks = [Block(4), Block(8, rate=0.5)]\n"
    )
    assert not check_source(text, select=["KL306"])


def test_kl305_lazy_variables():
    class LazyTF(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.v = None

        def call(self, x):
            if self.v is None:
                self.v = tf.Variable(tf.ones((3,)))
            return x * self.v

    class LazyKeras(LazyTF):
        def call(self, x):
            if self.v is None:
                self.v = keras.Variable(np.ones((3,), "float32"))
            return x * self.v

    model = keras.Sequential([keras.layers.Dense(3), LazyTF()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(X4, X4, epochs=1, verbose=0)  # runs...
    assert len(model.layers[1].weights) == 0  # ...but Keras never sees the variable
    assert "You cannot add new elements of state" in str(_error_of(lambda: LazyKeras()(X4)))
