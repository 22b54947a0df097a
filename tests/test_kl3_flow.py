"""KL303/KL304 premises for the value-flow patterns (issue 14) and the contexts that turn
KL304 off (issue 13), measured on the installed Keras / TensorFlow (TF backend)."""

import contextlib
import io
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF backend semantics")

X = np.ones((4, 3), "float32")


class Aug(keras.layers.Layer):
    @tf.function
    def random_apply(self, prob):
        return tf.random.uniform([], 0, 1) < prob

    def call(self, x):
        if self.random_apply(0.5):
            return x * 2.0
        return x


class Jitter(keras.layers.Layer):
    def build(self, shape):
        self.noise = tf.random.normal(())

    def call(self, x):
        if self.noise > 0:
            return x + 1.0
        return x


class NoneTest(keras.layers.Layer):
    def build(self, shape):
        self.table = tf.random.normal(())

    def call(self, x):
        if self.table == None:  # noqa: E711
            return x
        return x + self.table


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def test_if_on_tensor_from_helper_or_attribute_raises_even_inside_dataset_map():
    ds = tf.data.Dataset.from_tensor_slices(X)
    for cls in (Aug, Jitter):
        assert _error(lambda: cls()(X[0])) is None  # eager works
        layer = cls()
        # Dataset.map converts the mapped lambda with AutoGraph, but not the layer's call.
        err = _error(lambda: list(ds.map(lambda x: layer(x))))
        assert isinstance(err, tf.errors.OperatorNotAllowedInGraphError), err
        assert isinstance(_error(lambda: keras.Sequential([cls()]).predict(X, verbose=0)),
                          tf.errors.OperatorNotAllowedInGraphError)
    # near-miss: `t == None` is a Python bool (TF's __eq__ returns False for None)
    assert _error(lambda: keras.Sequential([NoneTest()]).predict(X, verbose=0)) is None


def test_trace_time_print_shows_the_symbolic_tensor_once():
    @tf.function
    def f(x):
        print("value", x)
        return x

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        f(tf.constant(1.0))
        f(tf.constant(2.0))
    out = buf.getvalue()
    assert out.count("value") == 1 and 'Tensor("x:0"' in out


def test_run_eagerly_runs_train_step_python_every_step():
    class Counting(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(1)
            self.steps = 0

        def call(self, x):
            return self.d(x)

        def train_step(self, data):
            self.steps += 1
            return super().train_step(data)

    x = np.ones((32, 3), "float32")
    y = np.ones((32, 1), "float32")
    eager, traced = Counting(), Counting()
    eager.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    traced.compile(optimizer="sgd", loss="mse")
    eager.fit(x, y, batch_size=4, epochs=1, verbose=0)
    traced.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert eager.steps == 8  # every step
    assert traced.steps < 8  # trace time only


def test_tf_internal_aliases_are_the_public_objects():
    from tensorflow.python.eager import def_function
    from tensorflow.python.framework import ops as fops
    from tensorflow.python.ops import math_ops, random_ops

    from keraslint.names import canonical

    pairs = [
        (fops.disable_eager_execution, "tensorflow.python.framework.ops.disable_eager_execution",
         tf.compat.v1.disable_eager_execution),
        (math_ops.reduce_sum, "tensorflow.python.ops.math_ops.reduce_sum", tf.math.reduce_sum),
        (random_ops.random_uniform, "tensorflow.python.ops.random_ops.random_uniform", tf.random.uniform),
        (def_function.function, "tensorflow.python.eager.def_function.function", tf.function),
    ]
    for internal, qual, public in pairs:
        assert internal is public
        mod, _, name = canonical(qual).rpartition(".")
        obj = tf
        for part in mod.split(".")[1:]:
            obj = getattr(obj, part)
        assert getattr(obj, name) is public


def test_call_of_a_trainer_is_traced_only_by_predict():
    class Sampler(keras.Model):
        def __init__(self):
            super().__init__()
            self.g = keras.layers.Dense(2)

        def train_step(self, data):
            out = self.g(data)
            return {"m": keras.ops.mean(out)}

        def call(self, z):
            return self.g(z).numpy()  # works only eagerly

    s = Sampler()
    s.compile(optimizer="sgd")
    s.fit(X, epochs=1, verbose=0)  # fit runs only train_step: `call` is never traced
    assert s(X).shape == (4, 2)  # a direct call is eager
    assert _error(lambda: s.predict(X, verbose=0)) is not None  # predict traces `call`


def test_kl304_prints_of_tensors_are_strict_only():
    from keraslint.api import check_source
    from keraslint.config import Config

    path = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "KL304", "bad.py")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    marked = {i for i, line in enumerate(text.splitlines(), 1) if "# strict only" in line}
    assert len(marked) == 3
    default = {f.line for f in check_source(text, select=["KL304"])}
    strict = {f.line for f in check_source(text, select=["KL304"], config=Config(root=".", strict=True))}
    assert not (marked & default)
    assert marked <= strict


def test_if_on_a_weight_raises_eagerly_too():
    class Biased(keras.layers.Layer):
        def build(self, shape):
            self.bias = self.add_weight(shape=(), initializer="ones")

        def call(self, x):
            if self.bias:  # meant: `is not None`
                return x + self.bias
            return x

    # A Keras 3 variable has no truth value at all: eager and compiled calls both raise.
    for run in (lambda: Biased()(X), lambda: keras.Sequential([Biased()]).predict(X, verbose=0)):
        err = _error(run)
        assert isinstance(err, TypeError) and "A Keras Variable cannot be used as a boolean" in str(err)
