"""KL306's condition, measured on the installed Keras (TF backend): which operations ask a
custom class for its config (and so raise NotImplementedError without `get_config`), and
which never do. The rule fires only where the file serializes the class."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import copy
import pickle

import numpy as np
import pytest

from keraslint.api import check_source

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF backend semantics")

X = np.ones((4, 3), "float32")


class Req(keras.Model):
    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.d = keras.layers.Dense(units)

    def call(self, x):
        return self.d(x)


class Wrap(keras.layers.Layer):
    def __init__(self, inner, **kw):
        super().__init__(**kw)
        self.inner = inner

    def call(self, x):
        return self.inner(x)


class Holder(keras.Model):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.w = Wrap(keras.layers.Dense(2))

    def call(self, x):
        return self.w(x)


class Dflt(keras.Model):
    def __init__(self, scale=1.0, **kw):
        super().__init__(**kw)
        self.scale = scale

    def call(self, x):
        return x * self.scale


def _raises(fn):
    try:
        fn()
    except NotImplementedError as e:
        assert "non-serializable argument values" in str(e)
        return True
    return False


def test_what_serializes_and_what_does_not(tmp_path):
    m = Req(3)
    m(X)
    m.compile(optimizer="sgd", loss="mse")
    # Serialization: each asks for the config and raises.
    assert _raises(lambda: m.save(str(tmp_path / "m.keras")))
    assert _raises(lambda: keras.models.clone_model(m))
    assert _raises(m.to_json)
    assert _raises(lambda: pickle.dumps(m))
    assert _raises(lambda: copy.deepcopy(m))
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "c.keras"))  # save_weights_only=False
    assert _raises(lambda: m.fit(X, X, verbose=0, callbacks=[ckpt]))
    # Weights only: never asks for the config.
    assert not _raises(lambda: m.save_weights(str(tmp_path / "m.weights.h5")))
    assert not _raises(lambda: tf.train.Checkpoint(model=m).save(str(tmp_path / "ck" / "c")))
    wck = keras.callbacks.ModelCheckpoint(str(tmp_path / "c.weights.h5"), save_weights_only=True)
    assert not _raises(lambda: m.fit(X, X, verbose=0, callbacks=[wck]))
    assert not _raises(lambda: tf.saved_model.save(m, str(tmp_path / "sm")))


def test_layers_built_in_a_subclass_constructor_are_not_serialized(tmp_path):
    # Saving a subclassed model stores its own config; the layers its __init__ builds
    # are rebuilt by the constructor, so Wrap's missing get_config never matters there...
    h = Holder()
    h(X)
    h.save(str(tmp_path / "h.keras"))
    # ...while the same layer in a functional model is serialized and raises.
    inp = keras.Input((3,))
    f = keras.Model(inp, Wrap(keras.layers.Dense(2))(inp))
    assert _raises(lambda: f.save(str(tmp_path / "f.keras")))


def test_defaults_only_round_trip_is_exact(tmp_path):
    d = Dflt()
    d(X)
    d.save(str(tmp_path / "d.keras"))
    back = keras.saving.load_model(str(tmp_path / "d.keras"), custom_objects={"Dflt": Dflt})
    assert back.scale == 1.0  # the only value ever passed: nothing lost
    d5 = Dflt(scale=5.0)
    d5(X)
    d5.save(str(tmp_path / "d5.keras"))
    back5 = keras.saving.load_model(str(tmp_path / "d5.keras"), custom_objects={"Dflt": Dflt})
    assert back5.scale == 1.0  # the hazard: 5.0 silently became the default


SRC = (
    "import keras\nimport tensorflow as tf\n"
    "from keras import layers\n\n\n"
    "class GAN(keras.Model):\n"
    "    def __init__(self, generator, latent_dim, **kwargs):\n"
    "        super().__init__(**kwargs)\n"
    "        self.generator = generator\n\n"
    "    def call(self, x):\n"
    "        return self.generator(x)\n\n\n"
    "gan = GAN(keras.Sequential([layers.Dense(2)]), 8)\n"
    "gan.fit(x, y)\n"
)


@pytest.mark.parametrize("tail,flagged", [
    ("", False),
    ("gan.save_weights('g.weights.h5')\n", False),
    ("tf.train.Checkpoint(model=gan).save('ck')\n", False),
    ("gan.generator.save('gen.keras')\n", False),
    ("gan.save('gan.keras')\n", True),
    ("keras.saving.save_model(gan, 'gan.keras')\n", True),
    ("keras.models.clone_model(gan)\n", True),
    ("cfg = gan.get_config()\n", True),
])
def test_kl306_fires_only_where_the_class_is_serialized(tail, flagged):
    got = [f.line for f in check_source(SRC + tail, select=["KL306"])]
    assert got == ([6] if flagged else [])
