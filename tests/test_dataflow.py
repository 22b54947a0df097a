"""keraslint.dataflow: the tf.data value flow the Context owns (``ctx.datasets``), driven by
the engine's one traversal, and ``ctx.is_dataset``, which asks it first."""

import textwrap

import libcst as cst
import pytest

from keraslint import dataflow, engine, semantics
from keraslint.rule import Rule


class _Probe(Rule):
    """Asks for the flow before the traversal (as the KL5 rules do) and records
    ``ctx.is_dataset`` of the first argument of every ``fit`` when it is visited."""

    code = "KL999"
    name = "probe"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.flow = ctx.datasets
        self.answers: list = []

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "fit" and node.args:
            self.answers.append(self.ctx.is_dataset(node.args[0].value))


def _run(src: str) -> tuple:
    text = textwrap.dedent(src)
    result = engine.analyze(engine.read_source("t.py", data=text.encode()), [_Probe])
    probe = result.rules[0]
    return probe.flow, probe.answers


def _fit_alternatives(flow) -> list:
    """[(batch state, step names)] of each alternative of the dataset given to the one fit."""
    (site,) = flow.fit_sites()
    return sorted((f.summary()[0], tuple(s.name for s in f.steps)) for f in flow.known(site.x_val))


def test_if_else_may_hold_both_arms():
    flow, answers = _run("""
        import tensorflow as tf
        def train(model, x, y, small):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if small:
                ds = ds.batch(8)
            else:
                ds = ds.batch(64).prefetch(2)
            model.fit(ds)
    """)
    assert _fit_alternatives(flow) == [("B", ("batch",)), ("B", ("batch", "prefetch"))]
    assert answers == [True]


def test_one_armed_if_may_keep_the_value_from_before():
    flow, _ = _run("""
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices(([1.0], [0]))
        if BIG:
            ds = ds.batch(64)
        model.fit(ds)
    """)
    assert _fit_alternatives(flow) == [("B", ("batch",)), ("U", ())]


def test_a_loop_that_inspects_the_dataset_does_not_change_it():
    flow, answers = _run("""
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100).batch(32)
        for images, labels in ds.take(1):
            print(images.shape)
        model.fit(ds, epochs=2)
    """)
    assert _fit_alternatives(flow) == [("B", ("shuffle", "batch"))]
    assert answers == [True]


def test_a_loop_variable_is_not_the_dataset():
    flow, answers = _run("""
        import tensorflow as tf
        def train(model, x, y, x_train):
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
            for ds in [x_train]:
                model.fit(ds)
    """)
    assert _fit_alternatives(flow) == []
    assert answers == [False]


def test_helper_returning_a_pipeline_wherever_it_is_defined():
    flow, _ = _run("""
        import tensorflow as tf
        def main(model, x, y):
            train = make(x, y, 16)
            model.fit(train)

        def make(x, y, bs):
            return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100).batch(bs)
    """)
    assert _fit_alternatives(flow) == [("B", ("shuffle", "batch"))]
    (site,) = flow.fit_sites()
    (flat,) = flow.known(site.x_val)
    batch = flat.steps[-1]
    assert flow.helper_argument(batch.fn, "bs", site.x_val).value == "16"


def test_is_dataset_asks_the_flow_for_a_helper_result():
    # The helper's own variable holds the pipeline: the syntactic answer (the helper's
    # return expression read in the caller) did not know it.
    flow, answers = _run("""
        import tensorflow as tf
        def get_dataset(a, b):
            dataset = tf.data.Dataset.from_tensor_slices((a, b))
            dataset = dataset.batch(4)
            return dataset
        train_dataset = get_dataset(x, y)
        model.fit(train_dataset)
    """)
    assert _fit_alternatives(flow) == [("B", ("batch",))]
    assert answers == [True]


def test_shuffle_after_batch_only_on_training_pipelines():
    flow, _ = _run("""
        import tensorflow as tf
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).shuffle(10)
        preview = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).shuffle(10)
        model.fit(train)
    """)
    hits = flow.shuffle_after_batch()
    assert len(hits) == 1
    shuffle, batch = hits[0][:2]
    assert (shuffle.name, batch.name) == ("shuffle", "batch")
    assert flow.chain(shuffle.call).target == "train"


def test_the_flow_must_be_requested_before_the_traversal():
    text = "import tensorflow as tf\nx = 1\n"
    module = cst.parse_module(text)
    ctx = semantics.Context(module, "t.py", text)

    class Late(Rule):
        code = "KL998"

        def visit_Assign(self, node):
            self.ctx.datasets

    visit, leave = engine._build_dispatch(ctx, [Late(ctx)])
    with pytest.raises(RuntimeError):
        engine.walk(module, ctx, visit, leave)


def test_a_file_that_mentions_datasets_gets_the_flow_without_a_rule_asking():
    text = "import tensorflow as tf\nds = tf.data.Dataset.range(3)\n"
    module = cst.parse_module(text)
    ctx = semantics.Context(module, "t.py", text)
    engine.walk(module, ctx, *engine._build_dispatch(ctx, []))
    assert ctx._datasets is not None
    text = "import numpy as np\nx = np.zeros(3)\n"
    module = cst.parse_module(text)
    ctx = semantics.Context(module, "t.py", text)
    engine.walk(module, ctx, *engine._build_dispatch(ctx, []))
    assert ctx._datasets is None


def test_one_table_of_sources_and_methods():
    assert semantics.DATASET_SOURCES is dataflow.DATASET_SOURCES
    assert semantics.DATASET_METHODS is dataflow.DATASET_METHODS
    assert dataflow.BATCH_METHODS | dataflow.OPAQUE_METHODS | dataflow.KEEP_METHODS <= dataflow.DATASET_METHODS
    assert "tensorflow.data.Dataset.from_tensor_slices" in dataflow.DATASET_SOURCES
    assert "keras.utils.image_dataset_from_directory" in dataflow.DATASET_SOURCES


def test_is_dataset_does_not_depend_on_the_rules_selected():
    # KL102 asks (through the timeline) whether `fit` gets arrays, which it shuffles with
    # tf.random.shuffle: the flow answers whether or not a KL5 rule is active
    from keraslint.api import check_source

    src = textwrap.dedent("""
        import random
        import tensorflow as tf
        import keras

        random.seed(0)

        def get_dataset(a, b):
            dataset = tf.data.Dataset.from_tensor_slices((a, b))
            dataset = dataset.batch(4)
            return dataset

        train = get_dataset(x, y)
        noise = tf.random.uniform((2,))
        model = keras.Sequential([keras.layers.Dense(1)])
        model.compile(loss="mse")
        model.fit(train)
    """)
    alone = [f.message for f in check_source(src, path="t.py", select=["KL102"])]
    with_kl5 = [f.message for f in check_source(src, path="t.py", select=["KL102", "KL5"]) if f.code == "KL102"]
    assert alone == with_kl5 and len(alone) == 1
    assert "fit` shuffles arrays" not in alone[0]
