"""KL1/KL2 on real code (issue 13): the conditions that make each hazard real, with the
library facts behind them read from the installed TensorFlow / Keras / PyTorch (in child
processes), and the near-misses found in real tutorials, guides and conversion scripts.

Facts measured here:
- a seeded TensorFlow training run on CPU is bitwise repeatable in two fresh processes
  without op determinism (KL104 matters on GPUs only, so it is not a default rule);
- Keras 3 losses convert predictions to their own dtype, float32, so a float16 output is
  rounded (and large logits overflow) *before* the loss; `predict` returns float16 (KL203);
- a Keras model in float64 and a float32 PyTorch reference agree only to float32 precision,
  a float64 reference (`.double()`) to float64 precision (KL201);
- TensorFlow's internal names are the very objects of `tf.compat.v1` (KL205).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from keraslint.api import check_source
from keraslint.config import Config
from keraslint.registry import rules_by_code
from keraslint.rules import precision as P

STRICT = Config(root=".", strict=True)


def _run(code: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="random", CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.pop("TF_DETERMINISTIC_OPS", None)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _codes(src: str, select=("KL1", "KL2"), config=None) -> list:
    return [(f.line, f.code) for f in check_source(textwrap.dedent(src), select=list(select), config=config)]


def _messages(src: str, select, config=None) -> list:
    return [f.message for f in check_source(textwrap.dedent(src), select=list(select), config=config)]


# ---------------------------------------------------------------------------------------
# Library facts
# ---------------------------------------------------------------------------------------

SEEDED_TRAINING = r'''
import hashlib, json, warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

keras.utils.set_random_seed(0)  # no enable_op_determinism()
rng = np.random.default_rng(1)
x = rng.normal(size=(128, 8, 8, 3)).astype("float32")
y = rng.integers(0, 3, size=(128,))
model = keras.Sequential([
    keras.Input((8, 8, 3)),
    keras.layers.Conv2D(4, 3, activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dropout(0.3),
    keras.layers.Dense(3),
])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(128).map(
    lambda a, b: (a * 1.0, b), num_parallel_calls=tf.data.AUTOTUNE).batch(16)
hist = model.fit(ds, epochs=2, verbose=0)
w = np.concatenate([v.numpy().ravel() for v in model.weights])
print(json.dumps({"loss": hist.history["loss"], "weights": hashlib.sha1(w.tobytes()).hexdigest(),
                  "determinism": tf_config.is_op_determinism_enabled(),
                  "gpus": len(tf.config.list_physical_devices("GPU"))}))
'''


def test_seeded_cpu_training_repeats_without_op_determinism():
    """KL104's premise holds on GPUs only: on CPU two fresh seeded runs are identical."""
    a, b = _run(SEEDED_TRAINING), _run(SEEDED_TRAINING)
    assert a["gpus"] == 0 and a["determinism"] is False
    assert a["loss"] == b["loss"] and a["weights"] == b["weights"]
    # the harmless twin of the rule: with this measured, KL104 is opt-in and says "on a GPU"
    rule = rules_by_code()["KL104"]
    assert rule.severity == "info"
    assert "GPU" in rule.doc() and "CPU" in rule.doc()


PRECISION_FACTS = r'''
import json, warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tensorflow as tf
import torch
from tensorflow.python.framework import ops
from tensorflow.python.compat import v2_compat
from tensorflow.python.client import session
from tensorflow.python.ops import array_ops

out = {}
# KL201: a float64 Keras model beside a float32 / float64 PyTorch reference, same weights
keras.config.set_floatx("float64")
dense = keras.layers.Dense(16)
xs = np.random.default_rng(0).normal(size=(64, 32))
k_out = np.asarray(dense(xs))
out["keras_dtype"] = str(k_out.dtype)
lin = torch.nn.Linear(32, 16)
lin64 = torch.nn.Linear(32, 16).double()
out["torch_default"] = str(lin.weight.dtype)
with torch.no_grad():
    for m in (lin, lin64):  # the same (float64) weights, stored in each module's dtype
        m.weight.copy_(torch.from_numpy(np.asarray(dense.kernel).T.copy()))
        m.bias.copy_(torch.from_numpy(np.asarray(dense.bias).copy()))
t32 = lin(torch.from_numpy(xs).float()).detach().numpy()
t64 = lin64(torch.from_numpy(xs)).detach().numpy()
out["diff_float32_reference"] = float(np.abs(k_out - t32).max() / np.abs(k_out).max())
out["diff_float64_reference"] = float(np.abs(k_out - t64).max() / np.abs(k_out).max())
out["eps"] = {k: float(np.finfo(k).eps) for k in ("float64", "float32", "float16")}
keras.config.set_floatx("float32")

# KL203: a float16 output, and what the loss does with it
keras.mixed_precision.set_global_policy("mixed_float16")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
fixed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Activation("softmax", dtype="float32")])
x = np.ones((2, 4), "float32")
loss = keras.losses.CategoricalCrossentropy()
out["output_dtype"] = str(model(x).dtype.name)
out["fixed_output_dtype"] = str(fixed(x).dtype.name)
out["predict_dtype"] = str(model.predict(x, verbose=0).dtype)
out["loss_dtype"] = loss.dtype
out["loss_value_dtype"] = str(loss(np.eye(3)[:2], model(x)).dtype.name)
out["f16_overflow"] = str(np.float16(70000.0))

# KL205: TensorFlow's internal names are the tf.compat.v1 objects
v1 = tf.compat.v1
out["aliases"] = [ops.disable_eager_execution is v1.disable_eager_execution,
                  v2_compat.disable_v2_behavior is v1.disable_v2_behavior,
                  session.Session is v1.Session, session.InteractiveSession is v1.InteractiveSession,
                  array_ops.placeholder is v1.placeholder,
                  array_ops.placeholder_with_default is v1.placeholder_with_default]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def precision_facts():
    return _run(PRECISION_FACTS)


def test_mixed_output_is_float16_and_losses_cast_to_float32(precision_facts):
    f = precision_facts
    assert f["output_dtype"] == "float16" and f["predict_dtype"] == "float16"
    assert f["fixed_output_dtype"] == "float32"  # the fix and its harmless twin
    # the loss does not "see float16": it converts predictions to float32 (after the rounding)
    assert f["loss_dtype"] == "float32" and f["loss_value_dtype"] == "float32"
    assert f["f16_overflow"] == "inf"
    msg = "losses cast predictions to float32"
    src = """
    import keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    """
    # a Keras-only mixed-precision model: a float16 output is what mixed precision is for
    assert _messages(src, ("KL203",)) == []
    assert len(_messages(src, ("KL203",), config=STRICT)) == 1
    port = """
    import keras
    import torch
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    reference = torch.nn.Linear(4, 3)
    """
    (m,) = _messages(port, ("KL203",))
    assert msg in m and "loss sees" not in m and "PyTorch" in m and "float32 reference" in m


def test_float64_keras_agrees_with_float32_reference_only_to_float32(precision_facts):
    f = precision_facts
    assert f["keras_dtype"] == "float64" and f["torch_default"] == "torch.float32"
    assert f["diff_float32_reference"] > 10 * f["eps"]["float64"] * 1e6  # float32 rounding, ~1e-7
    assert f["diff_float32_reference"] < 100 * f["eps"]["float32"]
    assert f["diff_float64_reference"] < 1e3 * f["eps"]["float64"]  # the shared-switch twin
    for k, eps in f["eps"].items():
        assert f"{eps:.1e}".replace("e-0", "e-") == P.FLOAT_EPS[k]


def test_tf_internal_names_are_the_public_objects(precision_facts):
    assert all(precision_facts["aliases"])
    assert set(P.TF_INTERNAL_ALIASES.values()) <= set(P.TF1_GRAPH_CALLS)


# ---------------------------------------------------------------------------------------
# KL101: training from random weights, with a reason to compare runs
# ---------------------------------------------------------------------------------------

def test_unseeded_training_in_programs_and_documents_is_flagged():
    # a program, a literate tutorial (keras.io style: the text in module-level string
    # blocks) and a notebook that train: their printed results cannot be reproduced
    program = """
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=3)
    """
    assert _codes(program) == [(4, "KL101")]
    literate = '''
    """
    Title: Regression
    """
    import keras

    """
    ## Build the model
    """
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    """
    ## Train it
    """
    model.compile(optimizer="adam", loss="mse")
    """
    The loss goes down:
    """
    model.fit(x, y, epochs=3)
    '''
    found = check_source(textwrap.dedent(literate), select=["KL101"])
    assert [(f.line, f.code) for f in found] == [(10, "KL101")] and "reader who reruns" in found[0].message
    cells = ["import keras\n", "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\n",
             "model.compile(optimizer='adam', loss='mse')\nmodel.fit(x, y, epochs=3)\n"]
    nb = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
                                "execution_count": None} for c in cells],
                     "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    assert [f.code for f in check_source(nb, path="t.ipynb", select=["KL101"])] == ["KL101"]


def test_command_line_experiment_and_determinism_intent_are_contexts():
    src = """
    import argparse
    import keras

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="mse")
    model.fit(x, y, epochs=3)
    """
    found = check_source(textwrap.dedent(src), select=["KL101"])
    assert [(f.line, f.code) for f in found] == [(8, "KL101")]
    assert "command line" in found[0].message and "line 5" in found[0].message and "line 10" in found[0].message
    src = """
    import tensorflow as tf
    import keras

    tf.config.experimental.enable_op_determinism()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=3)
    """
    found = check_source(textwrap.dedent(src), select=["KL101"])
    assert [(f.line, f.code) for f in found] == [(6, "KL101")]
    assert "asks for repeatable runs" in found[0].message


def test_parity_context_alone_is_no_reason_for_kl101():
    # a Keras model trained with a torch optimizer (torch backend guide): seeding Keras would
    # not make it equal a PyTorch run anyway
    src = '''
    """Training a Keras model with a PyTorch optimizer."""
    import torch
    import keras

    """
    ## Model
    """
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    """
    ## Optimizer
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """
    ## Train
    """
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1)
    '''
    (m,) = _messages(src, ("KL101",))
    assert "PyTorch" not in m


def test_scripts_that_do_not_train_are_not_flagged_even_strict():
    # a guide that calls a layer to show its mask
    guide = """
    import keras
    from keras import layers

    embedding = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)
    masked_output = embedding(raw_inputs)
    print(masked_output._keras_mask)
    """
    # a checkpoint conversion: build, load the original weights, compare outputs
    conversion = """
    import numpy as np
    import keras
    import keras_hub
    from absl import app, flags

    FLAGS = flags.FLAGS
    flags.DEFINE_string("preset", None, "preset")

    def main(_):
        keras.config.set_floatx("float32")
        backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
                                                 hidden_dim=8, intermediate_dim=16)
        backbone.load_weights("converted.weights.h5")
        np.random.seed(0)  # the same input for both frameworks
        ids = np.random.randint(0, 100, size=(1, 8))
        print(np.abs(backbone.predict(ids) - reference(ids)).max())

    if __name__ == "__main__":
        app.run(main)
    """
    # a saliency map: a GradientTape that computes gradients, applies none
    saliency = """
    import argparse
    import tensorflow as tf
    import keras

    args = argparse.ArgumentParser().parse_args()
    model = keras.applications.ResNet50(weights="imagenet")
    head = keras.layers.Dense(2)
    with tf.GradientTape() as tape:
        tape.watch(image)
        score = model(image)[:, 1]
    grads = tape.gradient(score, image)
    """
    for src in (guide, conversion, saliency):
        assert _codes(src, ("KL101", "KL104"), config=STRICT) == [], src
    # fine-tuning a fully loaded model does train: dropout masks and batch order are drawn
    loaded = """
    import sys
    import keras

    model = keras.models.load_model(sys.argv[1])
    model.load_weights("best.weights.h5")
    model.fit(x, y, epochs=1)
    """
    (m,) = _messages(loaded, ("KL101",))
    assert "fine-tunes a loaded Keras model" in m and "batch order" in m


def test_custom_loop_that_applies_gradients_trains():
    src = """
    import argparse
    import tensorflow as tf
    import keras

    args = argparse.ArgumentParser().parse_args()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(1e-2)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))

    for x, y in dataset:
        train_step(x, y)
    """
    assert _codes(src, ("KL101",)) == [(7, "KL101")]


def test_fine_tuning_a_preset_with_or_without_a_new_head():
    src = """
    import keras_hub
    from absl import flags

    flags.DEFINE_integer("epochs", 1, "epochs")
    classifier = keras_hub.models.BertClassifier.from_preset("bert_tiny_en_uncased", num_classes=2)
    classifier.fit(ds, epochs=1)
    """
    (m,) = _messages(src, ("KL101",))
    assert "random weights" in m and "fine-tunes" not in m
    # the same preset used as is (a task without a new head): loaded weights fine-tuned
    src = src.replace(", num_classes=2", "")
    (m,) = _messages(src, ("KL101",))
    assert "fine-tunes a loaded Keras model" in m


def test_imported_factory_model_trained_here_is_seen():
    # issue 14: `model = build_model(); model.fit(...)` with the factory in a project module
    src = """
    import argparse
    from models import build_model

    def main():
        args = argparse.ArgumentParser().parse_args()
        model = build_model(args)
        model.fit(train_ds, validation_data=val_ds, epochs=args.epochs)

    if __name__ == "__main__":
        main()
    """
    assert _codes(src, ("KL101",)) == [(8, "KL101")]
    # an imported helper named like a seeder still counts as a seed: no cross-module index
    # yet tells whether it really seeds (kept as before)
    seeded = src.replace("from models import build_model", "from models import build_model\n    from utils import set_seed")
    seeded = seeded.replace("        model = build_model(args)", "        set_seed(0)\n        model = build_model(args)")
    assert _codes(seeded, ("KL101",)) == []


def test_api_demo_on_random_targets_is_not_flagged():
    # keras repo demo: fit on targets drawn at random, and a custom loop fed random pairs
    src = """
    import numpy as np
    import keras

    model = keras.Sequential([keras.Input((128,)), keras.layers.Dense(16)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.random((50000, 128))
    y = np.random.random((50000, 16))
    model.fit(x, y, batch_size=32, epochs=1)
    """
    assert _codes(src, ("KL101",)) == []
    src = """
    import numpy as np
    import keras

    class Dataset:
        def __iter__(self):
            for _ in range(10):
                yield (np.random.random((32, 128)), np.random.random((32, 4)).astype("float32"))

    model = keras.Sequential([keras.Input((128,)), keras.layers.Dense(4)])
    optimizer = keras.optimizers.SGD()
    for x, y in Dataset():
        optimizer.apply(grads_of(model, x, y), model.trainable_weights)
    """
    assert _codes(src, ("KL101",)) == []
    # the near miss: targets computed from the inputs (a synthetic task) are learnable
    src = """
    import numpy as np
    import keras

    model = keras.Sequential([keras.Input((128,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.random((50000, 128))
    model.fit(x, x.sum(axis=1), epochs=1)
    """
    assert _codes(src, ("KL101",)) == [(5, "KL101")]


def test_library_module_with_a_train_step_is_not_a_script():
    src = """
    import tensorflow as tf
    import keras

    class GAN(keras.Model):
        def __init__(self):
            super().__init__()
            self.gen = keras.Sequential([keras.layers.Dense(4)])
            self.opt = keras.optimizers.Adam()

        def train_step(self, data):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(self.gen(data))
            grads = tape.gradient(loss, self.gen.trainable_weights)
            self.opt.apply_gradients(zip(grads, self.gen.trainable_weights))
            return {"loss": loss}

    def train(model, ds):
        model.fit(ds, epochs=10)
    """
    assert _codes(src, ("KL101", "KL104"), config=STRICT) == []


def test_factory_given_a_checkpoint_is_fine_tuning_loaded_weights():
    # research fine-tuning script: the model comes from a factory handed a checkpoint, and
    # no new layer is added (a pretrained LM fine-tuned as is)
    src = """
    from bert4keras.models import build_transformer_model
    from keras.models import Model

    checkpoint_path = "/data/bert_model.ckpt"
    model = build_transformer_model(config_path, checkpoint_path, application="lm")
    model = Model(model.inputs, model.outputs)
    model.compile(optimizer="adam")
    model.fit(train_generator, epochs=5)
    """
    (m,) = _messages(src, ("KL101",))
    assert "fine-tunes a loaded Keras model" in m and "dropout" in m
    # with a new (random) head it trains random weights
    src = """
    from bert4keras.models import build_transformer_model
    from keras.layers import Dense
    from keras.models import Model

    bert = build_transformer_model(config_path, checkpoint_path)
    output = Dense(2, activation="softmax")(bert.output)
    model = Model(bert.inputs, output)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train_generator, epochs=5)
    """
    assert _codes(src, ("KL101",)) == [(7, "KL101")]


def test_sklearn_fit_is_not_keras_training():
    src = """
    import argparse
    import keras
    from sklearn.linear_model import LogisticRegression

    args = argparse.ArgumentParser().parse_args()
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    clf = LogisticRegression().fit(encoder.predict(x), y)
    """
    assert _codes(src, ("KL101",)) == []


# The former fixtures/KL101/good.py (now a non-training near-miss script): library
# factories, and seeds set in helpers that run first (a function, a method).
SEEDED_BY_HELPERS = """'''Model factories, and a script whose seed is set in a helper that main() calls first.

A library module that only defines layers and factories is not a script: nothing here
builds a model at import time except through main().
'''
import numpy as np
import tensorflow as tf
import keras
from keras import layers


def make_block(units):
    return keras.Sequential([layers.Dense(units, activation="relu"), layers.Dropout(0.1)])


class Head(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.proj = layers.Dense(units)

    def call(self, x):
        return self.proj(x)


def set_seeds(seed):
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class Experiment:
    '''Seeds in one method and builds in another; __init__ calls them in that order.'''

    def __init__(self, seed):
        self._seed(seed)
        self.model = self._build()

    def _seed(self, seed):
        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()

    def _build(self):
        return keras.Sequential([layers.Input((4,)), layers.Dense(1)])


def main():
    set_seeds(0)
    model = keras.Sequential([layers.Input((4,)), make_block(8), Head(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    x = np.linspace(0.0, 1.0, 64, dtype="float32").reshape(16, 4)
    model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)


if __name__ == "__main__":
    Experiment(1)
    main()
"""


def test_seeds_set_by_helpers_that_run_first_are_seeds():
    assert _codes(SEEDED_BY_HELPERS, ("KL101", "KL102", "KL103"), config=STRICT) == []


# ---------------------------------------------------------------------------------------
# KL102 / KL104
# ---------------------------------------------------------------------------------------

def test_seed_inside_a_teaching_helper_is_not_the_scripts_seeding():
    src = """
    import numpy as np
    import keras

    def apply_noise(x, seed):
        np.random.seed(seed)
        return x * np.random.normal(size=(3,))

    y = apply_noise(x, 1337)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1)
    """
    assert _codes(src, ("KL102", "KL103", "KL104")) == []
    # the same seed at module level is the script's seeding, and it is partial
    src2 = """
    import numpy as np
    import keras

    np.random.seed(1337)
    y = x * np.random.normal(size=(3,))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1)
    """
    assert _codes(src2, ("KL102",)) == [(5, "KL102")]


def test_seed_for_sampling_after_training_covers_only_the_samples():
    # seeded only to draw the latent vectors of a demo, after the model was trained/loaded
    src = """
    import tensorflow as tf
    import keras

    gan = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    gan.load_weights("gan.weights.h5")
    tf.random.set_seed(196)
    z = tf.random.normal((2, 8))
    images = gan(z)
    """
    assert _codes(src, ("KL102",)) == []


def test_partial_seeding_in_a_script_that_does_not_train_is_not_flagged():
    # a conversion check: Keras seeded, the shared input drawn from torch's generator
    src = """
    import keras
    import torch

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.load_weights("converted.weights.h5")
    x = torch.randint(0, 10, (2, 4)).float()
    print(model.predict(x.numpy()) - reference(x).detach().numpy())
    """
    assert _codes(src, ("KL102",)) == []


def test_op_determinism_only_with_training_and_only_when_selected():
    src = """
    import numpy as np
    import torch
    import keras

    np.random.seed(0)
    torch.manual_seed(0)
    x = np.random.normal(size=(2, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    print(np.abs(model.predict(x) - ref(torch.from_numpy(x)).detach().numpy()).max())
    """
    assert _codes(src, ("KL104",)) == []  # seeds for a forward comparison: nothing trains
    src = """
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1)
    """
    assert _codes(src, ("KL104",)) == [(4, "KL104")]


# ---------------------------------------------------------------------------------------
# KL201 / KL203 / KL205
# ---------------------------------------------------------------------------------------

def test_set_floatx_needs_a_reference_that_does_not_share_it():
    keras_only = """
    import keras
    keras.config.set_floatx("float64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    """
    assert _codes(keras_only, ("KL201",)) == []
    assert _codes(keras_only, ("KL201",), config=STRICT) == [(3, "KL201")]
    shared = """
    import torch
    import keras
    keras.config.set_floatx("float64")
    torch.set_default_dtype(torch.float64)
    reference = torch.nn.Linear(4, 1)
    """
    assert _codes(shared, ("KL201",)) == []
    float32_ref = shared.replace("    torch.set_default_dtype(torch.float64)\n", "")
    found = check_source(textwrap.dedent(float32_ref), select=["KL201"])
    assert [(f.line, f.code) for f in found] == [(4, "KL201")]
    assert "PyTorch" in found[0].message and "line 5" in found[0].message and "1.2e-7" in found[0].message


def test_mixed_policy_after_the_model_and_inner_blocks():
    src = """
    import keras
    import torch
    from keras import layers

    reference = torch.nn.Linear(4, 10)

    def build_model(hp):
        return keras.Sequential([layers.Dense(hp.Int("u", 8, 32)), layers.Dense(10, activation="softmax")])

    tuner = kt.RandomSearch(build_model, objective="val_accuracy")
    tuner.search(x, y, epochs=2)
    early = keras.Sequential([keras.Input((4,)), layers.Dense(10, activation="softmax")])
    keras.mixed_precision.set_global_policy("mixed_float16")

    def late_model():
        return keras.Sequential([keras.Input((4,)), layers.Dense(10, activation="softmax")])

    inp = keras.Input((4,))
    encoder = keras.Model(inp, layers.UnitNormalization()(layers.Dense(8)(inp)))

    class Siamese(keras.Model):
        def __init__(self, encoder, **kwargs):
            pair = keras.Input((2, 4))
            super().__init__(inputs=pair, outputs=encoder(pair[:, 0]), **kwargs)

    siamese = Siamese(encoder)
    """
    # only the model of the function defined after the policy; not the inner encoder, not
    # the tuner's function nor the model built before the policy
    assert _codes(src, ("KL203",)) == [(17, "KL203")]


def test_tf_internal_disable_eager_execution_is_kl205():
    src = """
    import keras
    from tensorflow.python.framework.ops import disable_eager_execution

    disable_eager_execution()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    """
    found = check_source(textwrap.dedent(src), select=["KL205"])
    assert [(f.line, f.code) for f in found] == [(5, "KL205")]
    assert "disable_eager_execution" in found[0].message  # (names.py may canonicalize the alias itself)


def test_kl205_estimator_program_is_not_a_keras_hazard():
    # TF1 Estimator tutorial: graph mode for the Estimator; its Keras model lives in model_fn
    src = """
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()

    def model_fn(features, labels, mode):
        model = tf.keras.Sequential([tf.keras.layers.Dense(10)])
        logits = model(features, training=False)
        loss = tf.reduce_mean(logits)
        return tf.estimator.EstimatorSpec(mode, loss=loss)

    classifier = tf.estimator.Estimator(model_fn=model_fn, model_dir="/tmp/m")
    """
    assert check_source(textwrap.dedent(src), select=["KL205"]) == []
    # a Keras model built outside the model_fn is still affected by the global switch
    src2 = textwrap.dedent(src) + "net = tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
    assert [(f.line, f.code) for f in check_source(src2, select=["KL205"])] == [(4, "KL205")]


def test_kl204_kl205_own_graph_and_shim_near_misses():
    src = """
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Dense(1)])
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4))
        y = tf.compat.v1.layers.dense(x, 1)
        sess = tf.compat.v1.Session()
        sess.run(y, {x: [[0.0] * 4]})
    z = tf.compat.v1.placeholder(tf.float32, (None, 4))
    """
    found = check_source(textwrap.dedent(src), select=["KL204", "KL205"])
    assert [(f.line, f.code) for f in found] == [(12, "KL205")]


def test_kl204_silent_on_tensorflow_1_code_and_fires_on_its_tf2_twin():
    """keras-bert's TPU notebook (TF 1.x: tf.contrib, K.get_session) mixes tf.keras and
    tensorflow.python.keras, which on TF 1.x are the same Keras 2: nothing to mix."""
    tf1 = """
    import tensorflow as tf
    from tensorflow.python import keras
    from tensorflow.python.keras import backend as K

    resolver = tf.contrib.cluster_resolver.TPUClusterResolver(tpu="grpc://x")
    model = tf.keras.Sequential([tf.keras.layers.Dense(2)])
    sess = K.get_session()
    """
    assert check_source(textwrap.dedent(tf1), select=["KL204"]) == []
    tf2 = textwrap.dedent(tf1).replace("tf.contrib.cluster_resolver.TPUClusterResolver", "tf.distribute.cluster_resolver.TPUClusterResolver")
    assert [f.code for f in check_source(tf2, select=["KL204"])] == ["KL204", "KL204"]


def test_kl101_tf1_optimizer_trains_no_keras_model():
    """TensorFlow-Examples' multi-GPU notebook: tf.layers + tf.train.AdamOptimizer in a
    Session. There is no Keras model, so no Keras seeding claim; the same loop with a Keras
    optimizer over a Keras model's weights is reported."""
    tf1 = """
    import sys
    import tensorflow as tf
    import keras

    lr = float(sys.argv[1])
    x = tf.compat.v1.placeholder(tf.float32, (None, 4))
    logits = tf.compat.v1.layers.dense(x, 2)
    loss = tf.reduce_mean(logits)
    optimizer = tf.train.AdamOptimizer(learning_rate=lr)
    grads = optimizer.compute_gradients(loss)
    train_op = optimizer.apply_gradients(grads)
    """
    assert check_source(textwrap.dedent(tf1), select=["KL101"]) == []
    k3 = """
    import sys
    import tensorflow as tf
    import keras

    lr = float(sys.argv[1])
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(tf.ones((1, 4))))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    """
    assert [f.code for f in check_source(textwrap.dedent(k3), select=["KL101"])] == ["KL101"]


def test_kl101_reported_on_the_model_that_trains_not_an_earlier_demo():
    """DLwP / keras.io shapes: a demo layer or an augmentation pipeline is built first, the
    trained model later (directly, or by a helper); the finding is where the trained
    model starts. A wrapper given models built before (`VAE(encoder, decoder)`) keeps the
    first of those models."""
    src = """
    import sys
    import keras
    from keras import layers

    lr = float(sys.argv[1])
    demo = layers.Dense(4)
    print(demo(keras.ops.ones((1, 3))).shape)
    augment = keras.Sequential([layers.RandomFlip("horizontal")])

    def get_model():
        inputs = keras.Input((8,))
        outputs = layers.Dense(1)(augment(inputs))
        return keras.Model(inputs, outputs)

    model = get_model()
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    model.fit(x, y)
    """
    found = check_source(textwrap.dedent(src), select=["KL101"])
    assert [(f.line, f.code) for f in found] == [(12, "KL101")], found
    wrapper = """
    import sys
    import keras
    from keras import layers

    lr = float(sys.argv[1])
    encoder = keras.Sequential([layers.Dense(2)])
    decoder = keras.Sequential([layers.Dense(8)])

    class VAE(keras.Model):
        def __init__(self, encoder, decoder):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder

    vae = VAE(encoder, decoder)
    vae.compile(optimizer=keras.optimizers.Adam(lr))
    vae.fit(x)
    """
    found = check_source(textwrap.dedent(wrapper), select=["KL101"])
    assert [(f.line, f.code) for f in found] == [(7, "KL101")], found


def test_kl101_multi_output_fit_on_random_targets_is_a_demo():
    """DLwP chapter 7: a multi-output model fit on `[priority_data, department_data]`, both
    drawn with np.random: an API demo, like `fit(x, np.random.random(...))`."""
    src = """
    import sys
    import numpy as np
    import keras

    lr = float(sys.argv[1])
    a = np.random.random((10, 1))
    b = np.random.randint(0, 3, size=(10, 1))
    inp = keras.Input((4,))
    model = keras.Model(inp, [keras.layers.Dense(1)(inp), keras.layers.Dense(3)(inp)])
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"])
    model.fit(np.ones((10, 4)), [a, b])
    """
    src = textwrap.dedent(src)
    assert check_source(src, select=["KL101"]) == []
    assert check_source(src.replace("{'x': a, 'y': b}", "").replace("[a, b])", "{'p': a, 'd': b})"), select=["KL101"]) == []
    assert [f.code for f in check_source(src.replace("[a, b])", "[a, labels])"), select=["KL101"])] == ["KL101"]


def test_kl101_input_then_pretrained_backbone_only_is_fine_tuning():
    """keras.io sentence_embeddings_with_sbert: `keras.Input` -> RobertaBackbone.from_preset
    -> pooling -> UnitNormalization. The only weights are loaded: the finding is the
    fine-tuning one (dropout, batch order), not "starts a model with random weights"."""
    src = textwrap.dedent("""
    import sys
    import keras
    import keras_hub

    lr = float(sys.argv[1])
    backbone = keras_hub.models.RobertaBackbone.from_preset("roberta_base_en")
    inputs = keras.Input(shape=(1,), dtype="string")
    x = keras.layers.GlobalAveragePooling1D()(backbone(inputs))
    outputs = keras.layers.UnitNormalization(axis=1)(x)
    encoder = keras.Model(inputs, outputs)
    encoder.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    encoder.fit(ds, epochs=1)
    """)
    found = check_source(src, select=["KL101"])
    assert [(f.line, "fine-tunes a loaded" in f.message) for f in found] == [(13, True)]
    found = check_source(src.replace("UnitNormalization(axis=1)", "Dense(8)"), select=["KL101"])
    assert [(f.line, "random weights" in f.message) for f in found] == [(8, True)]


@pytest.mark.parametrize("optout", [
    "options = tf.data.Options()\noptions.experimental_deterministic = False\n",
    "ds = ds.map(parse, deterministic=False)\n",
    'os.environ["CUDA_VISIBLE_DEVICES"] = "-1"\n',
    'tf.config.set_visible_devices([], "GPU")\n',
    "cpus = tf.config.list_physical_devices('CPU')\n"
    "tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 8)\n",
], ids=["options", "map", "cuda-env", "hidden-gpus", "virtual-cpus"])
def test_kl104_silent_where_the_author_opts_out_or_trains_on_cpu(optout):
    """keras.io multiple-choice example (experimental_deterministic = False on purpose) and
    the TF DTensor tutorial (8 virtual CPUs): op determinism is about GPU kernels."""
    base = textwrap.dedent("""
    import os
    import tensorflow as tf
    import keras

    keras.utils.set_random_seed(42)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(ds, epochs=2)
    """)
    assert [f.code for f in check_source(base, select=["KL104"])] == ["KL104"]
    lines = base.split("\n")
    with_optout = "\n".join(lines[:6] + optout.split("\n") + lines[6:])
    assert check_source(with_optout, select=["KL104"]) == []


def test_kl101_input_feeding_a_pretrained_backbone_is_reported_at_the_new_head():
    """keras-cv's training scripts: `Input` -> `ResNet50(weights="imagenet")` -> new head.
    The random weights start at the head; with `weights=None` the Input starts them."""
    src = textwrap.dedent("""
    import sys
    import keras

    lr = float(sys.argv[1])
    inputs = keras.Input((224, 224, 3))
    x = keras.applications.ResNet50(include_top=False, weights="imagenet")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(ds)
    """)
    assert [f.line for f in check_source(src, select=["KL101"])] == [9]
    assert [f.line for f in check_source(src.replace('weights="imagenet"', "weights=None"), select=["KL101"])] == [6]
