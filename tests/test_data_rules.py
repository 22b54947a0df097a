"""KL501–KL505 (tf.data pipelines): the facts the messages and docs state, checked against
the installed TensorFlow/Keras, and the data-flow cases the fixtures do not show."""

import inspect
import os
import textwrap
import warnings

import numpy as np
import pytest

from keraslint import engine, fixer
from keraslint.api import check_source
from keraslint.registry import rules_by_code
from keraslint.dataflow import KERAS_DATASET_UTILS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def codes(src: str, select=("KL5",)) -> list:
    """[(flagged line's text, code)]"""
    text = textwrap.dedent(src)
    lines = text.splitlines()
    return [(lines[f.line - 1].strip(), f.code) for f in check_source(text, path="t.py", select=list(select))]


def fixed(src: str, unsafe: bool = True) -> str:
    text = textwrap.dedent(src)
    source = engine.read_source("t.py", data=text.encode())
    classes = [c for code, c in rules_by_code().items() if code.startswith("KL5")]
    res = fixer.fix_source(source, classes, unsafe=unsafe)
    return res.new_bytes.decode() if res.new_bytes is not None else text


# ---------------------------------------------------------------------------
# What the installed libraries do (the rules' messages quote it)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_keras():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    return tf, keras


def test_keras_dataset_utils_batch_by_default(tf_keras):
    _, keras = tf_keras
    for name, (pos, default_bs, default_shuffle) in KERAS_DATASET_UTILS.items():
        sig = inspect.signature(getattr(keras.utils, name))
        params = list(sig.parameters)
        assert params.index("batch_size") == pos, name
        assert sig.parameters["batch_size"].default == default_bs, name
        assert sig.parameters["shuffle"].default is default_shuffle, name
        if "format" in sig.parameters:
            assert sig.parameters["format"].default == "tf", name


def test_keras_dataset_utils_prefetch_and_batch_size_none_unbatches(tf_keras):
    tf, keras = tf_keras
    series = np.zeros((20, 2), "float32")
    ds = keras.utils.timeseries_dataset_from_array(series, None, sequence_length=3)
    assert _has_prefetch(ds)  # (before its batch, for this one: KL505 counts a prefetch anywhere)
    assert not _has_prefetch(tf.data.Dataset.range(3).batch(2))
    assert ds.element_spec.shape.rank == 3  # (batch, steps, features)
    rows = keras.utils.timeseries_dataset_from_array(series, None, sequence_length=3, batch_size=None)
    assert rows.element_spec.shape.rank == 2  # (steps, features): no batch axis


def _pipeline_ends_in(tf, ds, names) -> bool:
    """Does the *optimized* pipeline (what an iterator really runs, after TensorFlow's
    graph rewrites) continue with the transformations ``names`` after ``ds``'s source?
    `assert_next` checks the transformations that follow it when the iterator is made;
    nothing is timed."""
    from tensorflow.python.data.experimental.ops import testing

    try:
        list(ds(tf.data.Dataset.range(8).apply(testing.assert_next(names))).as_numpy_iterator())
        return True
    except tf.errors.InvalidArgumentError as e:
        assert "Asserted" in str(e)
        return False


def _options(tf, **fields):
    o = tf.data.Options()
    for k, v in fields.items():
        setattr(o.experimental_optimization, k, v)
    return o


def test_tensorflow_injects_a_prefetch_by_default(tf_keras):
    """KL505's premise: inject_prefetch is None (documented "If None, defaults to True"), and
    a pipeline that ends in a synchronous `batch` runs with a Prefetch appended; turning the
    injection or the default optimizations off removes it."""
    tf, _ = tf_keras
    from keraslint.dataflow import PREFETCH_OFF_OPTIONS

    opt = tf.data.Options().experimental_optimization
    for field in PREFETCH_OFF_OPTIONS:
        assert getattr(opt, field) is None, field
    assert "If None, defaults to True" in type(opt).inject_prefetch.__doc__

    def batched(d):
        return d.batch(2)

    assert _pipeline_ends_in(tf, batched, ["BatchV2", "Prefetch"]) or _pipeline_ends_in(tf, batched, ["Batch", "Prefetch"])
    for off in ({"inject_prefetch": False}, {"apply_default_optimizations": False}):
        def off_ds(d, off=off):
            return d.batch(2).with_options(_options(tf, **off))
        assert not _pipeline_ends_in(tf, off_ds, ["BatchV2", "Prefetch"])
        assert not _pipeline_ends_in(tf, off_ds, ["Batch", "Prefetch"])

        def explicit(d, off=off):
            return d.batch(2).with_options(_options(tf, **off)).prefetch(1)
        assert _pipeline_ends_in(tf, explicit, ["BatchV2", "Prefetch"]) or _pipeline_ends_in(tf, explicit, ["Batch", "Prefetch"])


def test_map_then_batch_runs_ahead_without_the_injection(tf_keras):
    """KL505's near-miss: with only inject_prefetch off, `map().batch()` is still fused into
    an asynchronous MapAndBatch, and a parallel map stays a ParallelMap; with the default
    optimizations off neither rewrite happens."""
    tf, _ = tf_keras

    def fused(d, **off):
        return d.map(lambda v: v * 2).batch(2).with_options(_options(tf, **off))
    assert _pipeline_ends_in(tf, lambda d: fused(d, inject_prefetch=False), ["MapAndBatch"])
    assert not _pipeline_ends_in(tf, lambda d: fused(d, apply_default_optimizations=False), ["MapAndBatch"])

    def parallel(d):
        return d.batch(2).map(lambda v: v * 2, num_parallel_calls=2).with_options(_options(tf, inject_prefetch=False))
    assert _pipeline_ends_in(tf, parallel, ["BatchV2", "ParallelMapV2"]) or _pipeline_ends_in(tf, parallel, ["Batch", "ParallelMapV2"])


def _has_prefetch(ds) -> bool:
    todo = [ds]
    while todo:
        d = todo.pop()
        if "Prefetch" in type(d).__name__:
            return True
        todo.extend(d._inputs())
    return False


def _model(keras, with_input):
    layers = [keras.Input((4,))] if with_input else []
    m = keras.Sequential(layers + [keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return m


def test_unbatched_rows_fail_in_fit(tf_keras):
    tf, keras = tf_keras
    x = np.random.rand(16, 4).astype("float32")
    y = np.random.rand(16, 1).astype("float32")
    with pytest.raises(ValueError, match=r"Expected shape \(None, 4\), but input has incompatible shape \(4,\)"):
        _model(keras, True).fit(tf.data.Dataset.from_tensor_slices((x, y)), epochs=1, verbose=0, shuffle=False)


def test_unbatched_sequences_train_silently_on_rows(tf_keras):
    tf, keras = tf_keras
    x = np.random.rand(16, 8, 4).astype("float32")
    y = np.random.rand(16, 8, 1).astype("float32")
    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    _model(keras, False).fit(tf.data.Dataset.from_tensor_slices((x, y)), epochs=1, verbose=0, shuffle=False,
                             callbacks=[Count()])
    assert len(steps) == 16  # one "batch" of 8 time steps per sample


def test_batch_size_is_ignored_silently_with_a_dataset(tf_keras):
    tf, keras = tf_keras
    x = np.random.rand(64, 4).astype("float32")
    y = np.random.rand(64, 1).astype("float32")
    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _model(keras, True).fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), batch_size=4, epochs=1,
                                verbose=0, shuffle=False, callbacks=[Count()])
    assert len(steps) == 4  # 64 / 16, not 64 / 4
    assert not [w for w in caught if "batch_size" in str(w.message)]


def test_cache_after_shuffle_replays_the_first_order(tf_keras):
    tf, _ = tf_keras
    tf.random.set_seed(0)
    frozen = tf.data.Dataset.range(16).shuffle(16).cache()
    orders = [list(frozen.as_numpy_iterator()) for _ in range(3)]
    assert orders[0] == orders[1] == orders[2]
    live = tf.data.Dataset.range(16).cache().shuffle(16)
    orders = [tuple(live.as_numpy_iterator()) for _ in range(3)]
    assert len(set(orders)) > 1


def test_shuffle_after_batch_keeps_batch_composition(tf_keras):
    tf, _ = tf_keras
    tf.random.set_seed(0)
    ds = tf.data.Dataset.range(8).batch(2).shuffle(4)
    epochs = [sorted(tuple(b) for b in ds.as_numpy_iterator()) for _ in range(3)]
    assert epochs[0] == epochs[1] == epochs[2] == [(0, 1), (2, 3), (4, 5), (6, 7)]


# ---------------------------------------------------------------------------
# Data flow
# ---------------------------------------------------------------------------

HEAD = """\
import tensorflow as tf
import keras
model = keras.Sequential([keras.layers.Dense(1)])
"""


def test_reassignment_inside_function_and_loop_variable():
    src = HEAD + """
def main(x):
    ds = tf.data.Dataset.from_tensor_slices(x)
    ds = ds.map(lambda v: v * 2)
    model.predict(ds)
    ds = ds.batch(8)
    model.predict(ds)
    for ds in [tf.data.Dataset.from_tensor_slices(x)]:
        model.predict(ds)
"""
    assert codes(src) == [("model.predict(ds)", "KL501")]


def test_tuple_returning_helper_and_methods():
    src = HEAD + """
def datasets(x):
    train = tf.data.Dataset.from_tensor_slices(x).batch(4).prefetch(2)
    val = tf.data.Dataset.from_tensor_slices(x)
    return train, val

class Trainer:
    def make(self, x):
        return tf.data.Dataset.from_tensor_slices(x)

    def run(self, x):
        model.evaluate(self.make(x))

tr, va = datasets(1)
model.fit(tr, validation_data=va)
"""
    assert codes(src) == [("model.evaluate(self.make(x))", "KL501"),
                          ("model.fit(tr, validation_data=va)", "KL501")]


def test_helper_defined_after_use():
    src = HEAD + """
def main():
    model.fit(build())

def build():
    return tf.data.Dataset.range(10).batch(2).with_options(OFF)

OFF = tf.data.Options()
OFF.experimental_optimization.inject_prefetch = False
"""
    assert codes(src) == [("model.fit(build())", "KL505")]


def test_unknown_or_mixed_origins_are_not_flagged():
    src = HEAD + """
import tensorflow_datasets as tfds

def maybe_batched(x, batched):
    ds = tf.data.Dataset.from_tensor_slices(x)
    if batched:
        return ds.batch(8)
    return ds

def fit_it(ds: tf.data.Dataset):
    model.fit(ds)

model.fit(maybe_batched(1, True).prefetch(1))
model.predict(tfds.load("mnist", split="train"))
model.predict(tfds.load("mnist", split="train").unbatch().prefetch(1))
model.predict(tf.data.Dataset.from_generator(lambda: iter([]), output_signature=None).prefetch(1))
grain_ds = keras.utils.image_dataset_from_directory("d", batch_size=None, format="grain")
model.predict(grain_ds)
"""
    # an explicit unbatch() is known to unbatch, whatever the origin
    assert codes(src) == [('model.predict(tfds.load("mnist", split="train").unbatch().prefetch(1))', "KL501")]


def test_keras_utility_subset_both_and_batch_size_none():
    src = HEAD + """
train, val = keras.utils.image_dataset_from_directory("d", validation_split=0.2, subset="both", seed=1)
model.fit(train, validation_data=val)
rows_a, rows_b = keras.utils.image_dataset_from_directory("d", validation_split=0.2, subset="both", seed=1,
                                                          batch_size=None)
model.fit(rows_a, validation_data=rows_b)
"""
    assert codes(src) == [("model.fit(rows_a, validation_data=rows_b)", "KL501")] * 2


def test_module_level_names_read_in_functions():
    src = HEAD + """
ds = tf.data.Dataset.from_tensor_slices([1.0]).prefetch(1)

def train():
    model.fit(ds)

ds = ds.batch(4)
train()
rows = tf.data.Dataset.from_tensor_slices([1.0]).prefetch(1)

def predict():
    model.predict(rows)
"""
    # `ds` may be batched when train() runs; `rows` is only ever unbatched
    assert codes(src) == [("model.predict(rows)", "KL501")]


def test_index_sources_mapped_to_batches():
    src = HEAD + """
def make_batch(i):
    return tf.random.normal((32, 4)), tf.zeros((32, 1))

model.fit(tf.data.Dataset.range(10).map(make_batch).prefetch(1))
model.predict(tf.data.Dataset.range(10).prefetch(1))
"""
    assert codes(src) == [("model.predict(tf.data.Dataset.range(10).prefetch(1))", "KL501")]


def test_recursive_helpers_terminate():
    src = HEAD + """
def grow(ds, n):
    if n:
        return grow(ds.map(lambda v: v), n - 1)
    return grow(ds, n)

ds = grow(tf.data.Dataset.range(3), 4)

def again():
    return ds.batch(2)

ds = again()
model.fit(ds)
model.fit(grow(tf.data.Dataset.range(3), 2))
"""
    assert codes(src) == []


def test_comprehension_variables_shadow():
    src = HEAD + """
d = tf.data.Dataset.from_tensor_slices([1.0]).prefetch(1)
sets = [tf.data.Dataset.from_tensor_slices([1.0]).batch(1)]
scores = [model.predict(d) for d in sets]

def run():
    return [model.evaluate(d) for d in sets]
"""
    assert codes(src) == []


def test_if_else_arms_do_not_see_each_other():
    # The else arm starts from the dataset before the `if`, not from the body's batched one
    # (the flow once read `ds` there as `ds.batch(8)`: a KL503 on a shuffle before batching).
    # Both arms assign, so after the `if` the unbatched dataset is gone; every arm of an
    # if/elif/else mapping without batching leaves it unbatched.
    src = HEAD + """
def train(x, small):
    ds = tf.data.Dataset.from_tensor_slices(x)
    if small:
        ds = ds.batch(8)
    else:
        ds = ds.shuffle(100).batch(8)
    model.fit(ds)

def train2(x, a, b):
    ds = tf.data.Dataset.from_tensor_slices(x)
    if a:
        ds = ds.map(f)
    elif b:
        ds = ds.map(g)
    else:
        ds = ds.map(h)
    model.fit(ds)

def train3(x, a):
    ds = tf.data.Dataset.from_tensor_slices(x)
    if a:
        ds = ds.batch(8)
    model.fit(ds)
"""
    found = [(f.line, f.code) for f in check_source(src, path="t.py", select=["KL5"])]
    assert found == [(src.splitlines().index("        ds = ds.map(h)") + 2, "KL501")]  # train2's fit


def test_not_datasets():
    src = HEAD + """
import pandas as pd
frame = pd.DataFrame({"a": [1]})
series = frame["a"].map(str)
model.fit(series.to_numpy(), batch_size=4)
batches = [1, 2]
model.predict(batches, batch_size=2)
"""
    assert codes(src) == []


# ---------------------------------------------------------------------------
# Fixes
# ---------------------------------------------------------------------------


def test_prefetch_fix_adds_tensorflow_import_when_needed():
    src = """\
    import keras
    from tensorflow.data import Dataset, Options

    off = Options()
    off.experimental_optimization.apply_default_optimizations = False
    model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(Dataset.range(8).batch(2).with_options(off))
    """
    out = fixed(src, unsafe=False)
    assert "import tensorflow\n" in out
    assert "model.fit(Dataset.range(8).batch(2).with_options(off).prefetch(tensorflow.data.AUTOTUNE))" in out


def test_prefetch_fix_uses_the_files_alias():
    src = """\
    import keras
    import tensorflow as tfx

    off = tfx.data.Options()
    off.experimental_optimization.inject_prefetch = False
    model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(tfx.data.Dataset.range(8).batch(2).with_options(off))
    """
    assert "with_options(off).prefetch(tfx.data.AUTOTUNE))" in fixed(src, unsafe=False)


def test_batch_fix_at_the_use_and_in_parentheses():
    src = """\
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Dense(1)])
    ds = (tf.data.Dataset.from_tensor_slices([1.0, 2.0])
          .map(lambda v: v + 1))
    model.predict(ds)
    """
    assert "ds = (tf.data.Dataset.from_tensor_slices([1.0, 2.0])\n      .map(lambda v: v + 1)\n      .batch(32))" in fixed(src)


def test_comments_are_not_duplicated():
    src = """\
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Dense(1)])
    ds = (
        tf.data.Dataset.from_tensor_slices([1.0, 2.0])
        .map(lambda v: v + 1)  # scale
        .prefetch(1)
    )
    model.predict(ds)
    """
    out = fixed(src)
    assert out.count("# scale") == 1
    assert ".map(lambda v: v + 1)  # scale\n    .batch(32)\n    .prefetch(1)\n" in out


def test_move_shuffle_across_statements_keeps_other_names():
    src = """\
    import tensorflow as tf

    raw = tf.data.Dataset.range(8)
    batched = raw.batch(2)
    mixed = batched.shuffle(4)
    """
    out = fixed(src)
    assert "batched = raw.shuffle(4).batch(2)" in out
    assert "mixed = batched\n" in out
    assert codes(out) == []


def test_no_move_into_a_branch():
    src = """\
    import tensorflow as tf

    def make(use_cache):
        ds = tf.data.Dataset.range(8)
        ds = ds.shuffle(8)
        if use_cache:
            ds = ds.cache()
        return ds
    """
    assert codes(src) == [("ds = ds.cache()", "KL504")]
    assert fixed(src) == textwrap.dedent(src)


def test_fixes_are_idempotent_on_fixtures():
    # the fixture tests check fixed.py; here: a second run finds nothing fixable
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for case in ("KL501", "KL502", "KL503", "KL504", "KL505"):
        with open(os.path.join(here, "fixtures", case, "fixed.py"), encoding="utf-8") as fh:
            text = fh.read()
        assert all(f.fix is None for f in check_source(text, path="fixed.py", select=[case])), case


def test_pipelines_from_another_module_of_the_project(tmp_path):
    """`from data import make_unbatched`: the project summaries say what the function
    returns (its steps by name), so KL501 sees an unbatched pipeline made in data.py."""
    import json
    import subprocess
    import sys

    (tmp_path / "data.py").write_text(textwrap.dedent("""\
        import tensorflow as tf

        def make_unbatched(x, y):
            return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100)

        def make_batched(x, y):
            ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100)
            return ds.batch(32)
        """))
    (tmp_path / "train.py").write_text(textwrap.dedent("""\
        import keras
        from data import make_batched, make_unbatched

        model = keras.Sequential([keras.layers.Dense(1)])
        model.fit(make_unbatched(x, y), epochs=1)
        model.fit(make_batched(x, y), epochs=1, batch_size=64)
        """))
    r = subprocess.run([sys.executable, "-m", "keraslint", "check", str(tmp_path), "--select", "KL5",
                        "--format", "json", "--exit-zero", "--no-cache"], capture_output=True, text=True, timeout=300)
    found = [(os.path.basename(f["path"]), f["line"], f["code"]) for f in json.loads(r.stdout)]
    assert found == [("train.py", 5, "KL501")]
    assert "make_unbatched() in data.py" in json.loads(r.stdout)[0]["message"]
