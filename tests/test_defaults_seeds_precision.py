"""The library facts behind KL101-KL104 and KL201-KL205, read from the installed Keras 3 /
TensorFlow / NumPy (in child processes, so the test run itself never imports TensorFlow),
and a few execution-order cases the fixtures do not show."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from keraslint.api import check_source
from keraslint.config import Config
from keraslint import timeline as T
from keraslint.rules import precision as P


def _run(code: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="random")
    env.pop("KERAS_BACKEND", None)
    env.pop("TF_USE_LEGACY_KERAS", None)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


FACTS = r'''
import inspect, json, random, warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tensorflow as tf
from keras.src.random import seed_generator
from keras.src.utils import rng_utils
from tensorflow.python.framework import config as tf_config

out = {}
out["keras_version"] = keras.__version__
out["backend"] = keras.backend.backend()
out["floatx"] = keras.config.floatx()
out["make_default_seed"] = inspect.getsource(seed_generator.make_default_seed)
out["set_random_seed"] = inspect.getsource(rng_utils.set_random_seed)
out["tf_keras_is_keras"] = [tf.keras.__version__ == keras.__version__, tf.keras.layers.Dense is keras.layers.Dense,
                            tf.keras.utils.set_random_seed is keras.utils.set_random_seed]
out["compat_v1_keras_is_keras"] = tf.compat.v1.keras.layers.Dense is keras.layers.Dense
out["op_determinism_default"] = tf_config.is_op_determinism_enabled()
out["has_enable_op_determinism"] = hasattr(tf.config.experimental, "enable_op_determinism")
out["seed_apis"] = [callable(f) for f in (tf.random.set_seed, tf.compat.v1.set_random_seed,
                    tf.compat.v1.random.set_random_seed, np.random.seed, random.seed)]

# Which layers / initializers draw a seed from Python's `random` in their constructor.
tries = [(), (4,), (4, 3), (0.5,), ((2, 2),), (4, (3, 3)), ((4,),), (0.1, 0.1), (4, 4), (2, 4), (4, 2, 1)]
draw, nodraw = [], []
for name in sorted(dir(keras.layers)):
    cls = getattr(keras.layers, name)
    if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
        continue
    if name == "Bidirectional":
        inner = keras.layers.LSTM(2)
        st = random.getstate(); keras.layers.Bidirectional(inner)
        (draw if random.getstate() != st else nodraw).append(name)
        continue
    for args in tries:
        try:
            st = random.getstate()
            cls(*args)
        except Exception:
            continue
        (draw if random.getstate() != st else nodraw).append(name)
        break
out["draw"], out["nodraw"] = draw, nodraw
inits = []
for name in sorted(dir(keras.initializers)):
    cls = getattr(keras.initializers, name)
    if inspect.isclass(cls):
        st = random.getstate()
        try:
            cls()
        except Exception:
            continue
        if random.getstate() != st:
            inits.append(name)
out["draw_inits"] = inits

# Seed parameter positions.
def pos(f):
    return list(inspect.signature(f).parameters).index("seed")
out["keras_random_pos"] = {n: pos(getattr(keras.random, n)) for n in
                           ["normal", "uniform", "truncated_normal", "randint", "dropout", "shuffle", "categorical",
                            "gamma", "binomial", "beta"]}
out["tf_random_pos"] = {n: pos(getattr(tf.random, n)) for n in
                        ["normal", "uniform", "truncated_normal", "shuffle", "categorical", "gamma", "poisson"]}
out["tf_image_pos"] = {n: pos(getattr(tf.image, n)) for n in
                       ["random_flip_left_right", "random_flip_up_down", "random_brightness", "random_contrast",
                        "random_crop", "random_hue", "random_saturation", "random_jpeg_quality"]}
out["tf_dropout_pos"] = pos(tf.nn.dropout)
out["dataset_shuffle_pos"] = list(inspect.signature(tf.data.Dataset.shuffle).parameters).index("seed") - 1

# KL202: the first layer fixes the global dtype policy.
keras.backend.clear_session()
a = keras.layers.Dense(2)
keras.config.set_floatx("float64")
b = keras.layers.Dense(2)
out["after_layer"] = [a.dtype, b.dtype, keras.config.floatx(), keras.backend.standardize_dtype(keras.ops.ones((1,)).dtype)]
keras.config.set_floatx("float32"); keras.backend.clear_session()
inp = keras.Input((3,))
keras.config.set_floatx("float64")
out["after_input"] = keras.layers.Dense(2).dtype
keras.config.set_floatx("float32"); keras.backend.clear_session()
harmless = [keras.initializers.GlorotUniform(), keras.losses.MeanSquaredError(), keras.metrics.Mean(),
            keras.optimizers.Adam(learning_rate=1e-3)]
keras.config.set_floatx("float64")
out["after_harmless"] = keras.layers.Dense(2).dtype
keras.config.set_floatx("float32"); keras.backend.clear_session()

# KL203: what a mixed policy computes in.
keras.mixed_precision.set_global_policy("mixed_float16")
x = np.ones((2, 3), dtype="float32")
sd = keras.backend.standardize_dtype
out["mixed_dense"] = sd(keras.layers.Dense(2)(x).dtype)
out["mixed_dense32"] = sd(keras.layers.Dense(2, dtype="float32")(x).dtype)
out["mixed_act32"] = sd(keras.layers.Activation("softmax", dtype="float32")(keras.layers.Dense(2)(x)).dtype)
out["bf16_compute"] = keras.mixed_precision.Policy("mixed_bfloat16").compute_dtype
keras.mixed_precision.set_global_policy("float32")
out["policy_setters"] = [callable(keras.mixed_precision.set_global_policy),
                         callable(keras.mixed_precision.set_dtype_policy), callable(keras.config.set_dtype_policy)]
out["f16"] = [float(np.finfo(np.float16).max), float(np.finfo(np.float16).eps)]
import ml_dtypes
out["bf16_eps"] = float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)

# KL204: Keras 2 objects in Keras 3.
try:
    tf.compat.v1.layers.Dense
    out["tf1_layers"] = "ok"
except AttributeError as e:
    out["tf1_layers"] = str(e)
from tensorflow.python.keras import layers as old_layers
try:
    keras.Sequential([old_layers.Dense(1)])
    out["keras2_layer"] = "ok"
except ValueError as e:
    out["keras2_layer"] = str(e)

# KL205: TF1 graph mode (last: it is process-wide).
tf.compat.v1.disable_eager_execution()
try:
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    m.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0)
    out["graph_fit"] = "ok"
except RuntimeError as e:
    out["graph_fit"] = str(e)
print(json.dumps(out))
'''

SEEDS = r'''
import json, random, warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tensorflow as tf

def kernel_sum(layer):
    layer.build((None, 4))
    return float(np.asarray(layer.kernel).sum())

out = {}
tf.random.set_seed(0)
out["tf_only"] = kernel_sum(keras.layers.Dense(3))
np.random.seed(0)
out["np_only"] = kernel_sum(keras.layers.Dense(3))
early = keras.layers.Dense(3)
keras.utils.set_random_seed(0)
out["before"] = kernel_sum(early)
keras.utils.set_random_seed(0)
out["after"] = kernel_sum(keras.layers.Dense(3))
random.seed(0)
out["py_only"] = kernel_sum(keras.layers.Dense(3))
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def facts():
    return _run(FACTS)


@pytest.fixture(scope="module")
def seeds():
    return _run(SEEDS), _run(SEEDS)


# -- KL1 ---------------------------------------------------------------------------


def test_set_random_seed_covers_python_numpy_tensorflow(facts):
    src = facts["set_random_seed"]
    assert "random.seed(seed)" in src and "np.random.seed(seed)" in src and "tf.random.set_seed(seed)" in src
    assert 'backend.backend() == "torch"' in src and "torch.manual_seed(seed)" in src
    assert T.SEED_APIS[T.SET_RANDOM_SEED] == {T.PY, T.NP, T.TF}
    assert all(facts["seed_apis"])
    # tf.keras.utils.set_random_seed is the same function (canonicalized alike).
    assert facts["tf_keras_is_keras"][2]


def test_keras_draws_default_seed_from_python_random(facts):
    assert T.KERAS_SEED_DRAW in facts["make_default_seed"]
    assert "python_random.randint" in facts["make_default_seed"]


def test_drawing_layers_and_initializers(facts):
    drawn = set(facts["draw"])
    assert drawn <= T.DRAWING_LAYERS, f"draws but not listed: {sorted(drawn - T.DRAWING_LAYERS)}"
    # Listed layers that could be constructed with simple arguments all draw.
    listed_not_drawing = T.DRAWING_LAYERS & set(facts["nodraw"])
    assert not listed_not_drawing, listed_not_drawing
    for name in ("Dense", "Conv2D", "Embedding", "LSTM", "Dropout", "RandomFlip", "MultiHeadAttention",
                 "Bidirectional"):
        assert name in drawn
    for name in ("BatchNormalization", "LayerNormalization", "Flatten", "InputLayer", "ReLU", "PReLU"):
        assert name in facts["nodraw"] and name not in T.DRAWING_LAYERS
    assert set(facts["draw_inits"]) == T.DRAWING_INITIALIZERS


def test_seed_parameter_positions(facts):
    assert facts["keras_random_pos"] == T.KERAS_RANDOM_SEED_POS
    for n, p in facts["tf_random_pos"].items():
        assert T.TF_RANDOM_SEED_POS[f"tensorflow.random.{n}"] == p, n
    for n, p in facts["tf_image_pos"].items():
        assert T.TF_RANDOM_SEED_POS[f"tensorflow.image.{n}"] == p, n
    assert T.TF_RANDOM_SEED_POS["tensorflow.nn.dropout"] == facts["tf_dropout_pos"]
    assert facts["dataset_shuffle_pos"] == 1  # Dataset.shuffle(buffer_size, seed=...)


def test_layers_draw_their_seed_in_the_constructor(seeds):
    """KL103/KL102: a Dense constructed before the seed, or under tf/np seeds only, differs
    across fresh processes; after set_random_seed (or random.seed alone) it is the same."""
    a, b = seeds
    assert a["after"] == b["after"]
    assert a["py_only"] == b["py_only"]
    assert a["before"] != b["before"]
    assert a["tf_only"] != b["tf_only"]
    assert a["np_only"] != b["np_only"]


def test_op_determinism_is_off_by_default_and_backend_is_tensorflow(facts):
    assert facts["op_determinism_default"] is False
    assert facts["has_enable_op_determinism"]
    assert facts["backend"] == "tensorflow"


# -- KL2 ---------------------------------------------------------------------------


def test_default_floatx(facts):
    assert facts["floatx"] == P.DEFAULT_FLOATX == "float32"


def test_first_layer_fixes_the_dtype_policy(facts):
    # The layer made before set_floatx and the one made after both stay float32, while
    # floatx() and keras.ops follow the switch.
    assert facts["after_layer"] == ["float32", "float32", "float64", "float64"]
    assert facts["after_input"] == "float32"
    # Initializers, losses, metrics and optimizers do not fix it (KL202 ignores them).
    assert facts["after_harmless"] == "float64"


def test_mixed_policy_outputs(facts):
    assert facts["mixed_dense"] == "float16"
    assert facts["mixed_dense32"] == "float32"
    assert facts["mixed_act32"] == "float32"
    assert facts["bf16_compute"] == "bfloat16" == P.MIXED_FACTS["mixed_bfloat16"][0]
    assert P.MIXED_FACTS["mixed_float16"][0] == "float16"
    f16_max, f16_eps = facts["f16"]
    assert f16_max == 65504.0 and f"{f16_eps:.1e}" == "9.8e-04"
    assert "65504" in P.MIXED_FACTS["mixed_float16"][1] and "9.8e-4" in P.MIXED_FACTS["mixed_float16"][1]
    assert f"{facts['bf16_eps']:.1e}" == "7.8e-03" and "7.8e-3" in P.MIXED_FACTS["mixed_bfloat16"][1]
    assert all(facts["policy_setters"])


def test_tf_keras_is_keras3_so_not_a_mix(facts):
    assert facts["tf_keras_is_keras"][:2] == [True, True]
    assert facts["compat_v1_keras_is_keras"] is True
    src = "import keras\nimport tensorflow as tf\nm = keras.Sequential([tf.keras.layers.Dense(1)])\n" \
          "n = tf.compat.v1.keras.layers.Dense(1)\n"
    assert [f for f in check_source(src, select=["KL204"])] == []


def test_keras2_objects_fail_in_keras3(facts):
    assert P.TF1_LAYERS_ERROR in facts["tf1_layers"]
    assert P.KERAS2_LAYER_ERROR in facts["keras2_layer"]


def test_graph_mode_fit_fails(facts):
    assert facts["graph_fit"] == P.GRAPH_MODE_FIT_ERROR


# -- execution order (static) --------------------------------------------------------


def _codes(src: str, select=("KL1", "KL2"), config=None) -> list:
    return [(f.line, f.code) for f in check_source(textwrap.dedent(src), select=list(select), config=config)]


# KL101 needs a reason to compare runs (a command-line experiment, determinism asked for);
# `strict` reports every unseeded training script. The execution-order tests use strict.
STRICT = Config(root=".", strict=True)


def test_app_run_main_is_followed():
    src = """
    import keras
    from absl import app

    def main(argv):
        model = keras.Sequential([keras.layers.Dense(1)])
        model.fit(x, y, epochs=1)

    if __name__ == "__main__":
        app.run(main)
    """
    assert _codes(src, config=STRICT) == [(6, "KL101")]


def test_unknown_seed_helper_counts_as_a_seed():
    src = """
    import keras
    from myproject.utils import seed_everything

    seed_everything(0)
    model = keras.Sequential([keras.layers.Dense(1)])
    """
    assert _codes(src, select=("KL101", "KL102", "KL103")) == []


def test_reseeding_from_entropy_is_not_a_seed():
    src = """
    import random
    import keras

    random.seed()
    model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(x, y, epochs=1)
    """
    assert _codes(src, select=("KL101",), config=STRICT) == [(6, "KL101")]


def test_library_module_is_not_a_script():
    src = """
    import keras

    def build(units):
        return keras.Sequential([keras.layers.Dense(units)])

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.d = keras.layers.Dense(4)
    """
    assert _codes(src) == []


def test_seed_in_helper_called_after_build():
    src = """
    import keras
    import tensorflow as tf

    def seeds():
        keras.utils.set_random_seed(0)
        tf.config.experimental.enable_op_determinism()

    def main():
        model = keras.Sequential([keras.layers.Dense(1)])
        seeds()

    main()
    """
    # reported at the late call site, not inside the helper (which is fine in itself)
    assert _codes(src) == [(11, "KL103")]


def test_torch_unseeded_beside_keras_seed():
    src = """
    import keras
    import tensorflow as tf
    import torch

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    k = keras.Sequential([keras.layers.Dense(1)])
    t = torch.nn.Linear(4, 1)
    k.fit(x, y, epochs=1)
    """
    found = check_source(textwrap.dedent(src), select=["KL102"])
    assert [(f.line, f.code) for f in found] == [(6, "KL102")]
    assert "PyTorch" in found[0].message and found[0].fix is None


def test_legacy_env_makes_tf_keras_keras2():
    src = """
    import os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import keras
    from tensorflow.keras import layers
    """
    assert _codes(src, select=("KL204",)) == [(5, "KL204")]


def test_alternative_imports_are_not_a_mix():
    src = """
    import sys
    if sys.version_info < (3, 9):
        import tf_keras as keras
    else:
        import keras
    """
    assert _codes(src, select=("KL204",)) == []


def test_seed_fix_uses_configured_seed():
    from keraslint import engine, fixer
    from keraslint.registry import all_rules

    src = "import keras\n\nmodel = keras.Sequential([keras.layers.Dense(1)])\nmodel.fit(x, y, epochs=1)\n"
    cfg = Config(root=".", seed=7, strict=True)
    s = engine.read_source("m.py", data=src.encode())
    res = fixer.fix_source(s, [r for r in all_rules() if r.code == "KL101"], cfg, unsafe=True)
    assert b"keras.utils.set_random_seed(7)" in res.new_bytes


def test_unseeded_inference_script_is_not_flagged():
    # a loaded model and a pretrained application only predict: nothing random happens
    src = """
    import numpy as np
    import keras

    model = keras.models.load_model("model.keras")
    base = keras.applications.MobileNetV2(weights="imagenet")
    print(model.predict(np.zeros((1, 4))), base.predict(np.zeros((1, 224, 224, 3))))
    """
    assert _codes(src) == []


def test_unseeded_finding_skips_preprocessing_layers():
    # a TextVectorization adapted before the model draws nothing: the model starts at Input
    src = """
    import numpy as np
    import keras
    from keras import layers

    vectorize = layers.TextVectorization(max_tokens=100, output_sequence_length=8)
    vectorize.adapt(np.array(["a b", "c d"]))
    inputs = keras.Input(shape=(8,))
    outputs = layers.Dense(1)(layers.Embedding(100, 4)(inputs))
    model = keras.Model(inputs, outputs)
    model.fit(x, y, epochs=1)
    """
    assert _codes(src, config=STRICT) == [(8, "KL101")]


def test_pretrained_model_fine_tuned_with_a_new_head_is_flagged():
    # fine-tuning a fully loaded model: flagged at `fit` (dropout and batch order unseeded);
    # a pretrained backbone with a new head: flagged where the new model starts (its Input)
    src = """
    import numpy as np
    import keras

    model = keras.models.load_model("model.keras")
    model.fit(np.zeros((4, 4)), np.zeros(4), batch_size=2, epochs=1)
    """
    assert _codes(src, ("KL101",), config=STRICT) == [(6, "KL101")]
    src = """
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights="imagenet")
    inputs = keras.Input((224, 224, 3))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    model = keras.Model(inputs, outputs)
    model.fit(x, y, epochs=1)
    """
    assert _codes(src, config=STRICT) == [(5, "KL101")]


def test_model_built_by_self_method_and_sklearn_wrapper():
    src = """
    import keras

    class Agent:
        def __init__(self):
            self.net = self.make()

        def make(self):
            return keras.Sequential([keras.layers.Dense(2)])

    def build(X=None, y=None):
        return keras.Sequential([keras.layers.Dense(1)])

    def main():
        reg = keras.wrappers.SKLearnRegressor(model=build)
        agent = Agent()
        reg.fit(x, y)

    main()
    """
    assert _codes(src, config=STRICT) == [(12, "KL101")]


def test_compiled_model_from_an_imported_factory_is_a_keras_model():
    # real train.py layout: the factory lives in another module; `compile(optimizer=, loss=)`
    # is Keras's signature, so the `fit` that follows trains a Keras model
    src = """
    import keras
    from model import build_model

    if __name__ == "__main__":
        model = build_model(100)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=2)
    """
    assert _codes(src, ("KL101",), config=STRICT) == [(8, "KL101")]
    # near misses: torch's `Module.compile()` takes neither argument; another name is compiled
    src = """
    import keras
    from model import build_model, Regressor

    if __name__ == "__main__":
        net = build_model(100)
        net.compile()
        net.fit(x, y)
        reg = Regressor()
        other = build_model(1)
        other.compile(optimizer="adam", loss="mse")
        reg.fit(x, y)
    """
    assert _codes(src, ("KL101",), config=STRICT) == []


def test_fit_with_keras_callbacks_trains_a_keras_model():
    # only a Keras model's `fit` takes Keras callbacks: the imported factory's model is one
    src = """
    import tensorflow as tf
    from model import build_model

    def main():
        model = build_model(8)
        cbs = [tf.keras.callbacks.EarlyStopping(patience=3)]
        model.fit(x, y, callbacks=cbs)

    if __name__ == "__main__":
        main()
    """
    assert _codes(src, ("KL101",), config=STRICT) == [(8, "KL101")]
    # near miss: xgboost-style callbacks are not Keras's
    src = """
    import tensorflow as tf
    import xgboost as xgb
    from model import build_model

    def main():
        booster = build_model(8)
        booster.fit(x, y, callbacks=[xgb.callback.EarlyStopping(rounds=3)])

    if __name__ == "__main__":
        main()
    """
    assert _codes(src, ("KL101",), config=STRICT) == []
