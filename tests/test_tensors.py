"""keraslint.tensors: is this expression a tensor here (the KL3 rules' value model)."""

import textwrap

import libcst as cst

from keraslint import engine, tensors
from keraslint.rule import Rule

HEAD = """\
import keras
import tensorflow as tf
"""


def _probe(body: str) -> dict:
    """Tested expression text -> (certainly a tensor now, a tensor once the file is seen),
    asked at every ``if`` inside a graph-context function, as KL303 asks."""
    now: dict = {}
    later: list = []

    class Probe(Rule):
        code = "KL999"
        name = "probe"

        def __init__(self, ctx) -> None:
            super().__init__(ctx)
            self.attrs = tensors.attributes(ctx)

        def visit_If(self, node: cst.If) -> None:
            fn = self.ctx.function
            if fn is None or not fn.tainted:
                return
            text = cst.Module([]).code_for_node(node.test)
            now[text] = tensors.tensor_value(self.ctx, node.test) or tensors.tensor_param(self.ctx, node.test)
            later.append((text, tensors.deferred_operands(self.ctx, fn, node.test)))

        def finish(self) -> None:
            for text, keys in later:
                done[text] = (now[text], now[text] or any(self.attrs.deferred_is_tensor(k) for k in keys))

    done: dict = {}
    src = engine.read_source("layer.py", data=(HEAD + textwrap.dedent(body)).encode())
    engine.analyze(src, [Probe], gate=False)
    return done


def test_a_tensor_drawn_from_tf_random_inside_call():
    seen = _probe("""
        class Drop(keras.layers.Layer):
            def call(self, x):
                p = tf.random.uniform([])
                if p < 0.5:
                    return x
                return x * 2.0
    """)
    assert seen["p < 0.5"] == (True, True)


def test_a_helper_method_that_returns_a_tensor():
    seen = _probe("""
        class Aug(keras.layers.Layer):
            def random_apply(self, prob):
                return tf.random.uniform([]) < prob

            def call(self, x):
                if self.random_apply(0.5):
                    return x * 2.0
                return x
    """)
    assert seen["self.random_apply(0.5)"] == (False, True)


def test_an_attribute_set_to_a_tensor_in_build_and_read_in_call():
    seen = _probe("""
        class Noisy(keras.layers.Layer):
            def build(self, input_shape):
                self.noise = tf.random.normal([1])
                self.scale = 2.0

            def call(self, x):
                if self.noise > 0:
                    return x
                if self.scale > 1:
                    return x * 2.0
                return -x
    """)
    assert seen["self.noise > 0"] == (False, True)
    assert seen["self.scale > 1"] == (False, False)


def test_a_keras_weight_attribute_is_a_keras_variable():
    src = engine.read_source("layer.py", data=(HEAD + textwrap.dedent("""
        class Dense(keras.layers.Layer):
            def build(self, input_shape):
                self.bias = self.add_weight(shape=(1,))
                self.units = 3
    """)).encode())
    analysis = engine.analyze(src, [_Asker], gate=False)
    attrs = tensors.attributes(analysis.ctx)
    assert attrs.is_tensor("Dense", "bias") and ("Dense", "bias") in attrs.var_attrs
    assert not attrs.is_tensor("Dense", "units")


class _Asker(Rule):
    code = "KL998"
    name = "asker"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        tensors.attributes(ctx)


def test_the_static_shape_is_not_a_tensor():
    seen = _probe("""
        class Crop(keras.layers.Layer):
            def call(self, x):
                if x.shape[-1] == 3:
                    return x[..., :1]
                if keras.ops.sum(x) > 0:
                    return x
                return -x
    """)
    assert seen["x.shape[-1] == 3"] == (False, False)
    assert seen["keras.ops.sum(x) > 0"] == (True, True)
